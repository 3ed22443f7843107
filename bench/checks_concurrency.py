"""Benchmark: 20 health checks of 1 s each against the longest single check, same run.

Each check is a real `sleep 1` process run through the validator's runner (threads + the subprocess
seam), exactly as `bootguard validate` runs command checks. The single check and the batch of 20
are alternated so machine load hits both alike; medians and the ratio are printed (target ≤ 1.3×:
concurrency makes the validation as long as its slowest check, not the sum).

    python3 bench/checks_concurrency.py [--runs N] [--checks N] [--seconds S] [--check]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bootguard.validator.runner import run_checks
from bootguard.validator.spec import CheckKind, CheckSpec, CommandTarget

TARGET = 1.3


def _batch(n: int, seconds: float) -> float:
    argv = ("sleep", f"{seconds:g}")
    timeout = seconds + 30
    checks = [CheckSpec(f"s{i}", CheckKind.COMMAND, CommandTarget(argv), timeout=timeout) for i in range(n)]
    start = time.monotonic()
    report = run_checks(checks, deadline=seconds + 60)
    elapsed = time.monotonic() - start
    if not report.passed:
        raise SystemExit(f"benchmark checks failed: {report.summary()}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--checks", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--check", action="store_true", help=f"exit 1 if the ratio exceeds {TARGET}")
    args = parser.parse_args()
    single, many = [], []
    for _ in range(args.runs):
        single.append(_batch(1, args.seconds))
        many.append(_batch(args.checks, args.seconds))
    s, m = statistics.median(single), statistics.median(many)
    ratio = m / s

    def runs(xs: list[float]) -> str:
        return ", ".join(f"{x:.3f}" for x in xs)

    print(f"1 check of {args.seconds:g} s:   median {s:.3f} s  (runs: {runs(single)})")
    print(f"{args.checks} checks of {args.seconds:g} s: median {m:.3f} s  (runs: {runs(many)})")
    print(f"ratio {args.checks} checks / longest single check: {ratio:.3f}x (target <= {TARGET}x)")
    return 1 if args.check and ratio > TARGET else 0


if __name__ == "__main__":
    sys.exit(main())
