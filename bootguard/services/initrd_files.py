"""`bootguard initrd-files`: exactly what an initramfs needs to run the early-boot step.

The module list is measured, not guessed: a probe runs the real early-boot command
(`python3 -I -S -X importtime -m bootguard initrd --dry-run`) on an empty sandbox tree, and every module
it imported is mapped back to its file. Then the interpreter, the shared libraries of the interpreter
and of every extension module (via ldd), and bootguard's own modules on the path are added. The
packaging in initrd/ (dracut, initramfs-tools) copies this list verbatim.
"""

from __future__ import annotations

import os
import sys
import tempfile

from bootguard.errors import BootguardError
from bootguard.seams import proc

PROBE_ARGS = ("-s", "-S", "-X", "importtime", "-m", "bootguard")


def _probe_modules(python: str) -> list[str]:
    """Names of the modules the early-boot step imports, in import order."""
    with tempfile.TemporaryDirectory(prefix="bootguard-probe-") as tmp:
        for d in ("esp/loader/entries", "efivars", "state", "sysfs", "pstore"):
            os.makedirs(os.path.join(tmp, d))
        argv = [
            python,
            *PROBE_ARGS,
            "--esp",
            f"{tmp}/esp",
            "--efivars",
            f"{tmp}/efivars",
            "--state-dir",
            f"{tmp}/state",
            "initrd",
            "--dry-run",
            "--watchdog-sysfs",
            f"{tmp}/sysfs",
            "--pstore",
            f"{tmp}/pstore",
        ]
        env = {"PYTHONPATH": _package_root(), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        done = proc.run(argv, env=env, check=False, timeout=60)
    if not done.ok:
        raise BootguardError(f"the early-boot probe failed: {done.stderr.strip().splitlines()[-1:]}")
    names = []
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name and name != "imported package":
                names.append(name)
    return names


def _package_root() -> str:
    import bootguard

    return os.path.dirname(os.path.dirname(os.path.abspath(bootguard.__file__)))


def _module_files(python: str, names: list[str]) -> list[str]:
    """Map module names to files with the target interpreter itself (its stdlib may differ from ours)."""
    script = (
        "import importlib.util,sys\n"
        "for n in sys.argv[1:]:\n"
        "    try: s = importlib.util.find_spec(n)\n"
        "    except ImportError: s = None\n"
        "    o = getattr(s, 'origin', None)\n"
        "    if o and o not in ('built-in', 'frozen'): print(o)\n"
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
    own = sorted({f for f in files if f.startswith(root + os.sep)})
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
