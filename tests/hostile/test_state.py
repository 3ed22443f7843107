"""Category "state directory" (issue 15): huge event log, rotation, recovery from two bad slots."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bootguard.model.events import Event, EventKind
from bootguard.seams import statestore
from bootguard.seams.statestore import StateStore
from tests.hostile.conftest import clear_error, trial_host

if TYPE_CHECKING:
    from tests.hosttree import HostTree


def _big_log(directory: Path, megabytes: int) -> int:
    directory.mkdir(mode=0o700, exist_ok=True)
    line = Event.new(EventKind.VALIDATION, "x" * 200).to_json().encode() + b"\n"
    count = (megabytes << 20) // len(line)
    with open(directory / "events.jsonl", "wb") as f:
        f.write(line * count)
    os.chmod(directory / "events.jsonl", 0o600)
    return count


def test_events_limit_and_status_read_only_the_end_of_a_100_mb_log(host: HostTree) -> None:
    _big_log(host.state, 100)
    StateStore(host.state).append_event(Event.new(EventKind.BLESSED, "the newest"))
    started = time.monotonic()
    data = host.cli_json("events", "--limit", "3")
    code, _out, err = host.cli("status")
    elapsed = time.monotonic() - started
    assert isinstance(data, list) and len(data) == 3 and data[-1]["message"] == "the newest"
    assert code == 0, err
    assert elapsed < 1.5, elapsed  # the whole log took 6 s before


def test_event_log_rotates_and_keeps_one_generation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(statestore, "MAX_LOG_BYTES", 4096)
    store = StateStore(tmp_path / "s")
    for i in range(200):
        store.append_event(Event.new(EventKind.VALIDATION, f"event {i}"))
    sizes = [os.path.getsize(tmp_path / "s" / n) for n in ("events.jsonl", "events.jsonl.1")]
    assert all(size <= 4096 for size in sizes)
    assert sorted(os.listdir(tmp_path / "s")) == ["events.jsonl", "events.jsonl.1", "lock"]
    log = store.read_events()
    messages = [e.message for e in log.events]
    assert messages[-1] == "event 199" and messages == sorted(messages, key=lambda m: int(m.split()[1]))
    assert [e.message for e in store.read_events(limit=40).events] == messages[-40:]


def test_state_reset_recovers_from_two_bad_slots(host: HostTree) -> None:
    trial_host(host)
    for name in statestore.SLOTS:
        if (host.state / name).exists():
            (host.state / name).write_bytes(b"garbage")
        else:
            (host.state / name).write_bytes(b"more garbage")
        os.chmod(host.state / name, 0o600)
    err = clear_error(host.cli("trial", "b.conf"))
    assert "bootguard state reset" in err
    code, out, err = host.cli("state", "reset")
    assert code == 0, err
    assert "pin-golden a.conf" in out
    kept = sorted(n for n in os.listdir(host.state) if ".bad-" in n)
    assert len(kept) == 2 and all((host.state / n).read_bytes().endswith(b"garbage") for n in kept)
    code, out, err = host.cli("status")
    assert code == 0, err
    assert host.cli("pin-golden", "a.conf")[0] == 0


def test_state_reset_refuses_a_valid_state(host: HostTree) -> None:
    trial_host(host)
    clear_error(host.cli("state", "reset"))
    assert host.cli("state", "reset", "--force")[0] == 0


@settings(max_examples=150, deadline=None)
@given(
    lines=st.lists(
        st.one_of(
            st.builds(lambda i: Event.new(EventKind.VALIDATION, f"e{i}").to_json(), st.integers(0, 999)),
            st.text(max_size=40),
            st.just("x" * 70000),
        ),
        max_size=30,
    ),
    torn=st.binary(max_size=20),
    limit=st.integers(0, 12),
)
def test_tail_read_equals_the_end_of_a_full_read(
    tmp_path_factory: pytest.TempPathFactory, lines: list[str], torn: bytes, limit: int
) -> None:
    d = tmp_path_factory.mktemp("s")
    os.chmod(d, 0o700)
    data = "".join(line.replace("\n", " ") + "\n" for line in lines).encode("utf-8", "surrogatepass") + torn
    (d / "events.jsonl").write_bytes(data)
    os.chmod(d / "events.jsonl", 0o600)
    store = StateStore(d)
    full = [e.message for e in store.read_events().events]
    tail = [e.message for e in store.read_events(limit=limit).events]
    assert tail == (full[-limit:] if limit else [])


@settings(max_examples=100, deadline=None)
@given(a=st.binary(max_size=200), b=st.binary(max_size=200))
def test_any_slot_bytes_load_or_refuse_and_reset_recovers(
    tmp_path_factory: pytest.TempPathFactory, a: bytes, b: bytes
) -> None:
    from bootguard.errors import StateError

    d = tmp_path_factory.mktemp("s")
    os.chmod(d, 0o700)
    for name, data in zip(statestore.SLOTS, (a, b), strict=True):
        (d / name).write_bytes(data)
        os.chmod(d / name, 0o600)
    store = StateStore(d)
    try:
        store.load()
    except StateError:
        moved = store.reset()
        assert len(moved) == 2
        assert store.load().slot is None
        assert sorted(Path(m).read_bytes() for m in moved) == sorted([a, b])
