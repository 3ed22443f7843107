"""`bootguard initrd-files`: exactly what an initramfs needs to run the early-boot step.

The module list is measured, not guessed: a probe runs the early-boot step twice, as the initrd's
wrapper does (`-S -c '…; from bootguard.cli.main import entry; entry()'`), on a sandbox tree, and every
module it imported is mapped back to its file. Then the interpreter, the shared libraries of the interpreter
and of every extension module (via ldd), and bootguard's own modules on the path are added. The
packaging in initrd/ (dracut, initramfs-tools) copies this list verbatim.
"""

from __future__ import annotations

import os
import sys
import tempfile

from bootguard.errors import BootguardError
from bootguard.seams import proc

# Modules the early-boot step loads through importlib (invisible to a static scan) or only on paths a
# sandbox cannot reach (arming a real device, mounting the ESP).
EXPLICIT = (
    "bootguard.cli.commands.initrd",
    "bootguard.seams.proc",  # mounting the ESP by LoaderDevicePartUUID (--mount-esp), grub-editenv
    "bootguard.seams.grubenv",  # GRUB hosts (--grub-env)
    "bootguard.services.grubtrial",
    "bootguard.services.statetrial",  # a trial bootguard counts itself, and the port of every action
    "bootguard.seams.staging",  # imported inside fallback/statetrial's writing functions
    "bootguard.model.nixos",  # likewise (the trial's generation)
    "bootguard.seams.watchdog",  # arming (--watchdog-timeout): the probe's sandbox has no device
    "bootguard.seams._wd_python",
    "bootguard.seams._wd_native",
    "encodings.utf_16_le",
    "encodings.ascii",
    "encodings.latin_1",
    "array",
    "fcntl",
    "json",  # jsoncodec hands errors and unusual values to json (the normal path does not import it)
    "zlib",
    "subprocess",
    # fs.syncfs/renameat2 (lazily imported) when the step removes or renames entry files on the ESP, e.g.
    # a used-up trial's copies; found missing by the distribution guest booting Debian's initramfs.
    "ctypes",
)

SEP = "\x1f"  # joins one run's arguments into one argv word (argv cannot hold NUL)
# main() and __import__, as the wrapper and the CLI themselves: runpy (`-m`) and importlib.import_module
# would list the importlib package, which the step never loads.
_PROBE = """
import sys
from bootguard.cli.main import main
for argv in sys.argv[1:]:
    if main(argv.split(SEP)) != 0:
        sys.exit("the early-boot step failed on the sandbox")
for name in EXPLICIT:
    __import__(name)
for name in sorted(sys.modules):
    print(name)
"""


def _sandbox(tmp: str) -> list[str]:
    """A realistic host tree: a counted trial booted, a watchdog reset seen, a panic log kept."""
    import struct

    for d in ("esp/loader/entries", "efivars", "state", "sysfs/watchdog0", "pstore"):
        os.makedirs(os.path.join(tmp, d))
    with open(os.path.join(tmp, "esp/loader/entries/a+1-1.conf"), "w", encoding="ascii") as f:
        f.write("title a\nversion 1\nlinux /k\n")
    with open(os.path.join(tmp, "esp/loader/loader.conf"), "w", encoding="ascii") as f:
        f.write("default a*\n")
    guid = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"
    for name, value in (
        ("LoaderInfo", "systemd-boot 252.39-1~deb12u2"),
        ("LoaderBootCountPath", "\\loader\\entries\\a+1-1.conf"),
        ("LoaderEntrySelected", "a+2.conf"),
    ):
        with open(os.path.join(tmp, "efivars", f"{name}-{guid}"), "wb") as f:
            f.write(struct.pack("<I", 6) + (value + "\0").encode("utf-16-le"))
    for name, value in (("identity", "i6300ESB timer"), ("bootstatus", "32"), ("timeout", "30")):
        with open(os.path.join(tmp, "sysfs/watchdog0", name), "w", encoding="ascii") as f:
            f.write(value + "\n")
    with open(os.path.join(tmp, "pstore/dmesg-efi-1"), "w", encoding="ascii") as f:
        f.write("Kernel panic - not syncing\n")
    common = [
        "--esp",
        f"{tmp}/esp",
        "--efivars",
        f"{tmp}/efivars",
        "--state-dir",
        f"{tmp}/state",
        "initrd",
        "--watchdog-sysfs",
        f"{tmp}/sysfs",
        "--pstore",
        f"{tmp}/pstore",
    ]
    # The first run reads the kernel's boot id; the second looks like the next boot.
    return [SEP.join(common), SEP.join([*common, "--boot-id", "probe-next-boot"])]


def _probe_modules(python: str) -> list[str]:
    """Names of every module the early-boot step has loaded after two real runs on a sandbox."""
    with tempfile.TemporaryDirectory(prefix="bootguard-probe-") as tmp:
        script = _PROBE.replace("EXPLICIT", repr(EXPLICIT)).replace("SEP", repr(SEP))
        argv = [python, "-s", "-S", "-c", script, *_sandbox(tmp)]
        env = {"PYTHONPATH": _package_root(), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        done = proc.run(argv, env=env, check=False, timeout=60)
    if not done.ok:
        last = done.stderr.strip().splitlines()[-1:] or ["no output"]
        raise BootguardError(f"the early-boot probe failed: {last[0]}")
    return [line for line in done.stdout.splitlines() if line and not line.startswith("bootguard-initrd")]


def _package_root() -> str:
    import bootguard

    return os.path.dirname(os.path.dirname(os.path.abspath(bootguard.__file__)))


def _module_files(python: str, names: list[str]) -> list[str]:
    """Map module names to files with the target interpreter itself (its stdlib may differ from ours)."""
    script = (
        "import importlib.util,sys\n"
        "for n in sys.argv[1:]:\n"
        "    try: s = importlib.util.find_spec(n)\n"
        "    except (ImportError, ValueError): s = None\n"
        "    o = getattr(s, 'origin', None)\n"
        "    if o and o not in ('built-in', 'frozen'): print(o)\n"
        # os is frozen, but the interpreter looks for lib/pythonX.Y/os.py to find its prefix.
        "import sysconfig, os.path\n"
        "print(os.path.join(sysconfig.get_paths()['stdlib'], 'os.py'))\n"
    )
    env = {"PYTHONPATH": _package_root()}
    done = proc.run([python, "-s", "-S", "-c", script, *names], env=env, timeout=60)
    return [line for line in done.stdout.splitlines() if line]


def _shared_libraries(paths: list[str]) -> list[str]:
    libs: list[str] = []
    for path in paths:
        done = proc.run(["ldd", path], check=False, timeout=30)
        for line in done.stdout.splitlines():
            parts = line.split()
            if "=>" in parts and len(parts) >= 3 and parts[2].startswith("/"):
                libs.append(parts[2])
            elif parts and parts[0].startswith("/"):
                libs.append(parts[0])  # the dynamic loader itself
    return libs


def _with_bytecode(python: str, sources: list[str]) -> list[str]:
    """Each .py plus its cached .pyc for the target interpreter (an initramfs cannot afford compiling)."""
    script = "import importlib.util,sys\nfor p in sys.argv[1:]: print(importlib.util.cache_from_source(p))"
    py = [f for f in sources if f.endswith(".py")]
    done = proc.run([python, "-s", "-S", "-c", script, *py], timeout=60) if py else None
    cached = [c for c in (done.stdout.splitlines() if done else []) if os.path.exists(c)]
    return sorted({*sources, *cached})


def collect(python: str | None = None) -> dict[str, list[str]]:
    """Files by category: interpreter, libraries, stdlib, bootguard."""
    interpreter = os.path.realpath(python or sys.executable)
    files = _module_files(interpreter, _probe_modules(interpreter))
    root = _package_root()
    # `python -m bootguard` runs __main__.py as __main__, so the probe cannot import it by name.
    main_py = os.path.join(root, "bootguard", "__main__.py")
    own = sorted({f for f in [*files, main_py] if f.startswith(root + os.sep)})
    stdlib = sorted({f for f in files if f not in own})
    extensions = [f for f in stdlib if f.endswith(".so")]
    libs = sorted(set(_shared_libraries([interpreter, *extensions])))
    return {
        "interpreter": [interpreter],
        "libraries": libs,
        "stdlib": _with_bytecode(interpreter, stdlib),
        "bootguard": _with_bytecode(interpreter, own),
    }


def size_of(categories: dict[str, list[str]]) -> int:
    return sum(os.path.getsize(p) for files in categories.values() for p in files if os.path.exists(p))


INITRD_PYTHONPATH = "/usr/lib/bootguard/python"


def destination(path: str) -> str:
    """Where a listed file goes in the initramfs: bootguard's own modules under INITRD_PYTHONPATH
    (the wrapper puts it on sys.path; -I -S leaves site-packages out), everything else in place."""
    root = _package_root()
    if path.startswith(root + os.sep):
        return INITRD_PYTHONPATH + path[len(root) :]
    return path
