"""Benchmark: the early-boot commands against a bare interpreter, measured in the same run.

`bootguard list --json`, `status --json` and `initrd --dry-run` on a 50-entry ESP, each compared with
`python3 -I -c pass` (same interpreter). Prints the median wall time of each and its ratio to the
baseline. Targets (issues 2 and 5): ≤ 1.5×.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make_tree(root: Path, n: int = 50) -> list[str]:
    entries = root / "esp/loader/entries"
    entries.mkdir(parents=True)
    for i in range(n):
        counter = "+2-1" if i % 7 == 0 else ""
        (entries / f"nixos-generation-{i}{counter}.conf").write_text(
            f"title NixOS\nversion Generation {i}\nlinux /EFI/nixos/k-{i}.efi\ninitrd /EFI/nixos/i-{i}.efi\n"
            f"options init=/nix/store/x-{i}/init loglevel=4\n"
        )
    (root / "efivars").mkdir()
    (root / "sysfs").mkdir()
    (root / "pstore").mkdir()
    return [
        "--esp",
        str(root / "esp"),
        "--efivars",
        str(root / "efivars"),
        "--state-dir",
        str(root / "state"),
    ]


def timeit(argv: list[str], runs: int) -> float:
    samples = []
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env=env)
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    py = os.path.realpath(sys.executable)
    with tempfile.TemporaryDirectory() as tmp:
        common = make_tree(Path(tmp))
        cases = {
            "list --json": [*common, "list", "--json"],
            "status --json": [*common, "status", "--json"],
            "initrd --dry-run": [
                *common,
                "initrd",
                "--dry-run",
                "--watchdog-sysfs",
                f"{tmp}/sysfs",
                "--pstore",
                f"{tmp}/pstore",
            ],
        }
        base = timeit([py, "-I", "-c", "pass"], args.runs)
        print(f"baseline  python3 -I -c pass          {base * 1000:7.1f} ms")
        worst = 0.0
        for name, rest in cases.items():
            t = timeit([py, "-m", "bootguard", *rest], args.runs)
            worst = max(worst, t / base)
            print(f"bootguard {name:28} {t * 1000:7.1f} ms  {t / base:5.2f}x")
        debian = "/usr/bin/python3"
        if os.path.exists(debian):
            # What the initramfs runs: Debian's interpreter, isolated, no site (initrd/bootguard-initrd).
            code = f"import sys; sys.path.insert(0, {str(ROOT)!r})\n"
            code += "from bootguard.cli.main import entry; entry()"
            dbase = timeit([debian, "-I", "-c", "pass"], args.runs)
            t = timeit([debian, "-I", "-S", "-c", code, *cases["initrd --dry-run"]], args.runs)
            print(f"baseline  {debian} -I -c pass    {dbase * 1000:7.1f} ms")
            print(f"bootguard initrd as packaged (-I -S) {t * 1000:7.1f} ms  {t / dbase:5.2f}x")
            worst = max(worst, t / dbase)
    print(f"worst ratio {worst:.2f}x (target <= 1.50x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
