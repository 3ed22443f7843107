"""Real writer processes killed with SIGKILL at random points never leave a corrupt state directory."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bootguard.seams.statestore import StateStore

REPO = Path(__file__).resolve().parents[2]

# Loops forever: update (one more counted failure), report the committed seq, append an event
# carrying that seq, report it. "ready" first, so kills land in the loop, not in start-up.
WRITER = """
import sys
from bootguard.model.events import Event, EventKind
from bootguard.model.state import AttemptKind
from bootguard.seams.statestore import StateStore

store = StateStore(sys.argv[1])
print("ready", flush=True)
while True:
    s = store.update(lambda st: st.with_attempt("a.conf", AttemptKind.FAILED, "watchdog", float(st.seq)))
    print("S", s.seq, flush=True)
    store.append_event(Event.new(EventKind.COUNTED_FAILURE, "x" * 300, data={"seq": s.seq}, boot_id="b"))
    print("E", s.seq, flush=True)
"""


def start_writer(directory: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(directory)],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    return proc


def kill(proc: subprocess.Popen[str], already: str = "") -> tuple[int, int]:
    """SIGKILL the writer; return the highest seq it reported committed and its number of reported events."""
    proc.send_signal(signal.SIGKILL)
    assert proc.stdout is not None
    # Read through the same buffered stream that `already` came from (communicate() would bypass it).
    out = already + proc.stdout.read()
    proc.stdout.close()
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    # Only complete lines count: a writer killed in the middle of a print leaves a torn last line.
    lines = [line for line in out.splitlines(keepends=True) if line.endswith("\n") and len(line.split()) == 2]
    seqs = [int(line.split()[1]) for line in lines if line.startswith("S ")]
    events = sum(1 for line in lines if line.startswith("E "))
    return max(seqs, default=0), events


@pytest.mark.integration
def test_sigkill_at_random_points_leaves_old_or_new_state(tmp_path: Path) -> None:
    """50 runs of one or two writers SIGKILLed at random moments: load() never fails, seq never goes back."""
    rng = random.Random(20240601)
    directory = tmp_path / "state"
    store = StateStore(directory)
    last_seq = 0
    reported_events = 0
    damaged: set[int] = set()  # event log lines a kill tore
    kills = 0
    for run in range(50):
        writers = [start_writer(directory) for _ in range(1 if run % 3 else 2)]
        # Every other run lets the first writer commit once before the random delay, so the test makes
        # progress however slow fsync is on a busy machine; the other runs may kill before any commit.
        first = writers[0].stdout.readline() if run % 2 == 0 and writers[0].stdout else ""
        time.sleep(rng.uniform(0.005, 0.25))
        results = []
        for i, w in enumerate(writers):
            results.append(kill(w, first if i == 0 else ""))
            time.sleep(rng.uniform(0, 0.02))
        committed = max([last_seq] + [seq for seq, _ in results])
        reported_events += sum(n for _, n in results)

        loaded = store.load()  # must not raise: a killed writer never corrupts the directory
        # Everything a writer reported as committed is there; at most one unreported update per writer on top.
        assert committed <= loaded.state.seq <= committed + len(writers), (run, committed, loaded.state.seq)
        assert loaded.state.seq >= last_seq
        assert loaded.state.attempts_for("a.conf").failures == loaded.state.seq
        last_seq = loaded.state.seq

        log = store.read_events()
        assert reported_events <= len(log.events) <= reported_events + len(writers)
        reported_events = len(log.events)
        seqs = [e.data["seq"] for e in log.events]
        # Each committed update's event at most once (two writers may append out of seq order).
        assert len(set(seqs)) == len(seqs)
        assert max(seqs, default=0) <= loaded.state.seq
        # The only damage a kill can do is a torn line: incomplete while it is the last line, then (once
        # the next append starts on a fresh line) a complete line of broken JSON, skipped.
        assert all("incomplete" in w or "not valid JSON" in w for w in log.warnings), log.warnings
        damaged |= {int(m) for w in log.warnings for m in re.findall(r"line (\d+)", w)[:1]}
        kills += len(writers)

    assert last_seq >= 25  # the writers really made progress between kills (≥ 1 in every other run)
    store.update(lambda s: s.with_halted("done"))
    assert not [n for n in os.listdir(directory) if ".tmp." in n]  # crashed writes' temporaries cleaned
    assert len(damaged) <= kills


@pytest.mark.integration
def test_killed_lock_holder_does_not_block_others(tmp_path: Path) -> None:
    """flock dies with its holder: after a SIGKILL mid-update another process can write at once."""
    directory = tmp_path / "state"
    proc = start_writer(directory)
    time.sleep(0.05)
    kill(proc)
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from bootguard.seams.statestore import StateStore;"
         "print(StateStore(sys.argv[1]).update(lambda s: s.with_halted('x')).seq)", str(directory)],
        capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)}, check=True,
    )  # fmt: skip
    assert int(done.stdout) == StateStore(directory).load().state.seq
