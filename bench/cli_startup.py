"""Benchmark: the early-boot commands against a bare interpreter, measured in the same run.

`bootguard list --json`, `status --json`, `initrd --dry-run` and a real, writing `initrd` (what every
boot runs: a new boot id each time, so each run records the previous boot and writes the state slot
and the event log with fsync) on a 50-entry ESP with a counted trial entry, loader variables, a
watchdog reset and a pstore record. Each is compared with `python3 -I -c pass` of the same
interpreter, sampled interleaved with it so that load from other processes hits both alike.
Prints the median wall time of each and its ratio to the baseline. Targets (issues 2 and 5): ≤ 1.5×.

With `/usr/bin/python3` present (Debian's interpreter, what the initramfs runs) the initrd runs are
also timed the way initrd/bootguard-initrd starts them: `-I -S -c 'sys.path.insert…; entry()'`,
against `-I -S -c pass` of the same interpreter (issue 13's target: ≤ 1.5×, writing run included),
and so is `bench/support/initrd_floor.py`: the step's file work alone, without bootguard's code.
`--python` picks the interpreter for the `-m bootguard` rows (default: the one running this); `--tmp
/dev/shm` shows the writing run without the disk's fsync latency (a boot pays it, once per write).
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bootguard.seams.efivars import LOADER_GUID, LOADER_VARIABLES  # noqa: E402  (after ROOT is on the path)

Case = list[str] | Callable[[], list[str]]  # a fixed argv, or a factory called once per run


def _efivar(directory: Path, name: str, value: str) -> None:
    data = struct.pack("<I", 6) + (value + "\0").encode("utf-16-le")
    (directory / f"{name}-{LOADER_GUID}").write_bytes(data)


def make_tree(root: Path, n: int = 50) -> list[str]:
    """A host: n entries (every 7th counted), the newest a trial booted with tries left."""
    entries = root / "esp/loader/entries"
    entries.mkdir(parents=True)
    for i in range(n):
        counter = "+2-1" if i % 7 == 0 else ""
        (entries / f"nixos-generation-{i}{counter}.conf").write_text(
            f"title NixOS\nversion Generation {i}\nlinux /EFI/nixos/k-{i}.efi\ninitrd /EFI/nixos/i-{i}.efi\n"
            f"options init=/nix/store/x-{i}/init loglevel=4\n"
        )
    (root / "esp/loader/loader.conf").write_text("default nixos-generation-*\ntimeout 3\n")
    efivars = root / "efivars"
    efivars.mkdir()
    _efivar(efivars, "LoaderInfo", "systemd-boot 252.39-1~deb12u2")
    _efivar(efivars, "LoaderBootCountPath", "\\loader\\entries\\nixos-generation-49+2-1.conf")
    _efivar(efivars, "LoaderEntrySelected", "nixos-generation-49.conf")
    (root / "sysfs/watchdog0").mkdir(parents=True)
    for name, value in (("identity", "i6300ESB timer"), ("bootstatus", "0"), ("timeout", "30")):
        (root / "sysfs/watchdog0" / name).write_text(value + "\n")
    (root / "pstore").mkdir()
    return _host(root)


def _host(root: Path) -> list[str]:
    """The global options naming make_tree's host."""
    return [
        "--esp",
        str(root / "esp"),
        "--efivars",
        str(root / "efivars"),
        "--state-dir",
        str(root / "state"),
    ]


def device_options(root: Path) -> list[str]:
    """The watchdog sysfs and pstore of make_tree's host."""
    return ["--watchdog-sysfs", str(root / "sysfs"), "--pstore", str(root / "pstore")]


def floor_argv(python: str, root: Path) -> list[str]:
    """bench/support/initrd_floor.py run like the step (`-I -S`, from its .pyc) on make_tree's host."""
    code = f"import sys; sys.path.insert(0, {str(ROOT / 'bench/support')!r})\n"
    code += "from initrd_floor import main; main(sys.argv[1:])"
    variables = ",".join(f"{name}-{LOADER_GUID}" for name in LOADER_VARIABLES)
    return [python, "-I", "-S", "-c", code, *_host(root), *device_options(root), "--variables", variables]


def _run(argv: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - t


def _argv(case: Case) -> list[str]:
    return case() if callable(case) else list(case)


def measure(cases: dict[str, Case], runs: int) -> dict[str, float]:
    """Median seconds per case; the cases take turns so that background load hits them alike."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for argv in cases.values():  # warm-up: .pyc files, page cache, the state directory
        _run(_argv(argv), env)
    for _ in range(runs):
        for name, argv in cases.items():
            samples[name].append(_run(_argv(argv), env))
    return {name: statistics.median(s) for name, s in samples.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--python", default=sys.executable, help="interpreter of the -m bootguard rows")
    ap.add_argument(
        "--tmp",
        help="where to build the host tree (default: $TMPDIR); /dev/shm takes the disk's fsync time out",
    )
    args = ap.parse_args()
    py = os.path.realpath(args.python)
    boots = itertools.count()
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        common = make_tree(Path(tmp))
        initrd = [*common, "initrd", *device_options(Path(tmp))]

        def writing() -> list[str]:
            return [*initrd, "--boot-id", f"bench-boot-{next(boots)}"]

        rows: list[tuple[str, str, str]] = []  # (label, case, baseline case)
        cases: dict[str, Case] = {"base": [py, "-I", "-c", "pass"]}
        for name, rest in (
            ("list --json", [*common, "list", "--json"]),
            ("status --json", [*common, "status", "--json"]),
            ("initrd --dry-run", [*initrd, "--dry-run"]),
        ):
            cases[name] = [py, "-m", "bootguard", *rest]
            rows.append((f"bootguard {name}", name, "base"))
        cases["initrd"] = lambda: [py, "-m", "bootguard", *writing()]
        rows.append(("bootguard initrd (writing)", "initrd", "base"))
        debian = "/usr/bin/python3"
        if os.path.exists(debian):
            # What the initramfs runs: Debian's interpreter, isolated, no site (initrd/bootguard-initrd).
            code = f"import sys; sys.path.insert(0, {str(ROOT)!r})\n"
            code += "from bootguard.cli.main import entry; entry()"
            packaged = [debian, "-I", "-S", "-c", code]
            cases["debian base"] = [debian, "-I", "-S", "-c", "pass"]  # the wrapper's flags, issue 13
            cases["debian dry-run"] = [*packaged, *initrd, "--dry-run"]
            cases["debian initrd"] = lambda: [*packaged, *writing()]
            rows.append(("packaged initrd --dry-run", "debian dry-run", "debian base"))
            rows.append(("packaged initrd (writing)", "debian initrd", "debian base"))
            # The same file work without bootguard's code: what is left of the budget for the code.
            cases["debian floor"] = floor_argv(debian, Path(tmp))
            rows.append(("file work alone (floor)", "debian floor", "debian base"))
        t = measure(cases, args.runs)
    print(f"baseline  {py} -I -c pass  {t['base'] * 1000:7.1f} ms")
    if "debian base" in t:
        print(f"baseline  {debian} -I -S -c pass  {t['debian base'] * 1000:7.1f} ms")
    worst = 0.0
    for label, case, base in rows:
        ratio = t[case] / t[base]
        if case != "debian floor":  # a reference row, not a bootguard command
            worst = max(worst, ratio)
        print(f"{label:32} {t[case] * 1000:7.1f} ms  {ratio:5.2f}x")
    print(f"worst ratio {worst:.2f}x (target <= 1.50x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
