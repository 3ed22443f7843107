"""cffi API-mode build of `bootguard._native_wd` (see c_ext/watchdog.c).

Used two ways:
- by the package build: `setup(cffi_modules=["c_ext/watchdog_build.py:ffibuilder"])`;
- by hand for development: `python3 c_ext/watchdog_build.py` builds the module in place
  (bootguard/_native_wd*.so).

The cdef lists constants as `...` so the C compiler fills them in from the real <linux/watchdog.h>
and <sys/mman.h> of the target architecture; nothing here hard-codes an ioctl number.
"""

from __future__ import annotations

import pathlib

import cffi

HERE = pathlib.Path(__file__).resolve().parent
MODULE = "bootguard._native_wd"

CDEF = """
#define WDIOC_GETSUPPORT ...
#define WDIOC_GETSTATUS ...
#define WDIOC_GETBOOTSTATUS ...
#define WDIOC_GETTEMP ...
#define WDIOC_SETOPTIONS ...
#define WDIOC_KEEPALIVE ...
#define WDIOC_SETTIMEOUT ...
#define WDIOC_GETTIMEOUT ...
#define WDIOC_SETPRETIMEOUT ...
#define WDIOC_GETPRETIMEOUT ...
#define WDIOC_GETTIMELEFT ...

#define WDIOF_OVERHEAT ...
#define WDIOF_FANFAULT ...
#define WDIOF_EXTERN1 ...
#define WDIOF_EXTERN2 ...
#define WDIOF_POWERUNDER ...
#define WDIOF_CARDRESET ...
#define WDIOF_POWEROVER ...
#define WDIOF_SETTIMEOUT ...
#define WDIOF_MAGICCLOSE ...
#define WDIOF_PRETIMEOUT ...
#define WDIOF_ALARMONLY ...
#define WDIOF_KEEPALIVEPING ...
#define WDIOS_DISABLECARD ...
#define WDIOS_ENABLECARD ...
#define WDIOS_TEMPPANIC ...

#define MCL_CURRENT ...
#define MCL_FUTURE ...
#define MCL_ONFAULT ...

struct watchdog_info {
    uint32_t options;
    uint32_t firmware_version;
    uint8_t identity[32];
    ...;
};

struct bg_pinger_stats {
    uint64_t pings;
    uint64_t errors;
    uint64_t skipped;
    uint64_t max_gap_ns;
    uint64_t last_ping_ns;
    int last_errno;
    int stalled;
};
struct bg_pinger;

int bg_wd_ioctl_int(int fd, unsigned long request, int *value);
int bg_wd_get_support(int fd, struct watchdog_info *out);
int bg_wd_mlockall(int flags);
struct bg_pinger *bg_pinger_start(int fd, long interval_ms, long stall_limit_ms, int use_write, int *err);
void bg_pinger_beat(struct bg_pinger *p);
void bg_pinger_stats(struct bg_pinger *p, struct bg_pinger_stats *out);
int bg_pinger_stop(struct bg_pinger *p);
"""

ffibuilder = cffi.FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source(
    MODULE,
    (HERE / "watchdog.c").read_text(encoding="utf-8"),
    libraries=["pthread"],
    extra_compile_args=["-O2", "-Wall", "-Wextra"],
)

if __name__ == "__main__":
    # In-place development build: compile under build/cffi, then copy the module next to the
    # package sources so `import bootguard._native_wd` finds it (git-ignored).
    import shutil

    tmp = HERE.parent / "build" / "cffi"
    built = pathlib.Path(ffibuilder.compile(tmpdir=str(tmp), verbose=False))
    target = HERE.parent / "bootguard" / built.name
    shutil.copy2(built, target)
    print(f"built {MODULE}: {target}")
