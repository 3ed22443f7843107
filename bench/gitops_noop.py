"""Benchmark: the upgrade timer run with nothing new vs a bare `git fetch` + `git rev-parse`, same run.

The timer run is what systemd does: the unit's `ExecCondition=` pre-check (its own text from
systemd/bootguard-upgrade.service, run by /bin/sh) skips `bootguard upgrade` when the last run's
stamp matches HEAD and the remote's commit and no trial ended since; that is the ratio the target
(≤ 1.2×) applies to. `bootguard upgrade` itself (Python, as run when the pre-check says "run") is
measured too. Sets up a bare "remote" and a host clone in a temporary directory, then alternates the two
(so machine load hits both alike) and prints medians and the ratio (target ≤ 1.2×). The CLI is
run the way a systemd unit runs it, `python -m bootguard …`, so interpreter start-up counts; the
interpreter's own floor (`python -c pass`) and a run without site `.pth` hooks (`python -S`) are
printed too, because on some machines a site-wide hook costs more than everything bootguard does.
Wall-clock and CPU time (user+sys from wait4, immune to other load) are both reported. The
package is byte-compiled first, as an installed one is. Exit status 1 only if a command fails;
`--check` also fails when the ratio misses the target.

    python3 bench/gitops_noop.py [--runs N] [--check]
"""

from __future__ import annotations

import argparse
import json
import os
import site
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = 1.2


def git(*args: str, cwd: Path | None = None) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def setup(base: Path) -> tuple[Path, Path]:
    remote, seed, host = base / "remote.git", base / "seed", base / "host"
    git("init", "-q", "--bare", "-b", "dev", str(remote))
    git("init", "-q", "-b", "dev", str(seed))
    (seed / "configuration.nix").write_text("{ }\n")
    git("add", "-A", cwd=seed)
    git("-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-qm", "seed", cwd=seed)
    git("push", "-q", str(remote), "dev", cwd=seed)
    git("clone", "-q", "-b", "dev", str(remote), str(host))
    state = base / "state"
    state.mkdir(mode=0o700)
    return host, state


class Sample:
    """Wall-clock and CPU (user+sys of the process and the children it waited for) seconds."""

    __slots__ = ("cpu", "wall")

    def __init__(self, wall: float, cpu: float) -> None:
        self.wall, self.cpu = wall, cpu

    def __add__(self, other: Sample) -> Sample:
        return Sample(self.wall + other.wall, self.cpu + other.cpu)


def timed(argv: list[str], env: dict[str, str], *, expect: int = 0) -> Sample:
    """Run argv; wall time, and CPU time from wait4 (immune to other load on a shared machine)."""
    start = time.perf_counter()
    child = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert child.stderr is not None
    err = child.stderr.read()
    _pid, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != expect:
        sys.exit(f"{' '.join(argv)} failed ({child.returncode}): {err.decode(errors='replace').strip()}")
    return Sample(elapsed, usage.ru_utime + usage.ru_stime)


def unit_command(unit: str, key: str) -> list[str]:
    """argv of `key=` in a unit of systemd/ as systemd sees it: lines joined, `$$` → `$`, quotes split."""
    import shlex

    text = (ROOT / "systemd" / unit).read_text().replace("\\\n", " ")
    line = next(ln for ln in text.splitlines() if ln.startswith(f"{key}="))
    return [a.replace("$$", "$") for a in shlex.split(line.split("=", 1)[1])]


def no_site_env(env: dict[str, str]) -> dict[str, str]:
    """env for `python -S`: site-packages on PYTHONPATH after the checkout, as plain directories."""
    dirs = [*site.getsitepackages(), site.getusersitepackages()]
    return {**env, "PYTHONPATH": os.pathsep.join([env["PYTHONPATH"], *dirs])}


def measure(host: Path, state: Path, runs: int, env: dict[str, str]) -> dict[str, list[Sample]]:
    upgrade = [sys.executable, "-m", "bootguard", "--state-dir", str(state), "upgrade", "--repo", str(host)]
    precheck = unit_command("bootguard-upgrade.service", "ExecCondition")
    unit_env = {
        **env,
        "BOOTGUARD_STATE_DIR": str(state),
        "BOOTGUARD_REPO": str(host),
        "BOOTGUARD_REMOTE": "origin",
        "BOOTGUARD_BRANCH": "dev",
    }
    fetch = ["git", "-C", str(host), "fetch", "-q", "origin"]
    rev_parse = ["git", "-C", str(host), "rev-parse", "HEAD", "origin/dev"]
    timed(upgrade, env)  # the first run leaves the stamp the pre-check compares with
    cases: dict[str, Callable[[], Sample]] = {
        "timer run (ExecCondition skips)": lambda: timed(precheck, unit_env, expect=1),
        "upgrade": lambda: timed(upgrade, env),
        "fetch+rev-parse": lambda: timed(fetch, env) + timed(rev_parse, env),
        "python -c pass": lambda: timed([sys.executable, "-c", "pass"], env),
        # Without site-packages' .pth hooks: site-packages stay importable through PYTHONPATH (the
        # run exports its metrics, which need attrs), but no .pth file is executed.
        "upgrade (python -S)": lambda: timed([sys.executable, "-S", *upgrade[1:]], no_site_env(env)),
    }
    for case in cases.values():
        case()  # warm caches once
    samples: dict[str, list[Sample]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, case in cases.items():  # alternate, so machine load hits every case alike
            samples[name].append(case())
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--check", action="store_true", help="exit 1 if the ratio misses the target")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GIT_TERMINAL_PROMPT": "0"}
    # An installed package is byte-compiled at install time; without this a PYTHONDONTWRITEBYTECODE
    # environment would measure the compiler on every run.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "bootguard")], check=True)
    with tempfile.TemporaryDirectory(prefix="bootguard-bench-") as tmp:
        host, state = setup(Path(tmp))
        samples = measure(host, state, args.runs, env)
    report: dict[str, dict[str, float]] = {}
    for metric in ("wall", "cpu"):
        med = {k: statistics.median(getattr(s, metric) for s in v) * 1000 for k, v in samples.items()}
        base = med["fetch+rev-parse"]
        report[metric] = {
            **{f"{k} ms": round(v, 1) for k, v in med.items()},
            "ratio": med["timer run (ExecCondition skips)"] / base,
            "ratio of bootguard upgrade itself": med["upgrade"] / base,
            "ratio without interpreter start-up": (med["upgrade"] - med["python -c pass"]) / base,
            "ratio with python -S": med["upgrade (python -S)"] / base,
        }
    for metric, rows in report.items():
        print(f"{metric} time, median of {args.runs}:")
        for name, value in rows.items():
            print(f"  {name:>36}: {value:7.1f}" if name.endswith("ms") else f"  {name:>36}: {value:7.2f}x")
    print(f"target: ratio <= {TARGET}x")
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "gitops_noop.json").write_text(json.dumps({"runs": args.runs, **report}, indent=2) + "\n")
    return 1 if args.check and report["wall"]["ratio"] > TARGET else 0


if __name__ == "__main__":
    sys.exit(main())
