"""Events: stable on-disk vocabulary, one-line JSON, strict parsing."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bootguard.errors import StateError
from bootguard.model import events as events_mod
from bootguard.model.events import Event, EventKind, read_boot_id

if TYPE_CHECKING:
    from pathlib import Path

# Values are written to disk and read by older/newer versions: they must never change.
STABLE_VALUES = {
    "boot-attempted", "counted-failure", "watchdog-reset", "panic-seen", "blessed", "marked-bad",
    "marked-indeterminate", "armed", "rolled-back", "golden-pinned", "trial-started", "trial-finished",
    "trial-failed", "halted", "validation", "check-failed", "notification-failed", "policy-corrected",
    "initrd-failure", "commit", "upgrade", "upgrade-failed", "backup-saved", "promoted", "not-counted",
}  # fmt: skip

text = st.text(st.sampled_from('ab +-.0é☃"\\\n\x00\u2028'), max_size=16)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)
events = st.builds(
    Event,
    time=st.floats(min_value=0, max_value=4e9, allow_nan=False),
    kind=st.sampled_from(EventKind),
    message=text,
    boot_id=st.none() | text,
    entry=st.none() | text,
    cause=st.none() | text,
    data=st.dictionaries(text, json_values, max_size=4),
)


def test_kind_values_are_stable() -> None:
    """Every documented kind keeps its exact on-disk string."""
    assert {k.value for k in EventKind} >= STABLE_VALUES


@given(events)
def test_events_round_trip_on_one_line(event: Event) -> None:
    """Any event, newlines in its strings included, is one JSON line that parses back equal."""
    line = event.to_json()
    assert "\n" not in line
    assert Event.from_json(line) == event
    assert hash(Event.from_json(line)) == hash(event)


def test_new_reads_the_boot_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Event.new stamps the current boot id and the clock's time."""
    boot_id = tmp_path / "boot_id"
    boot_id.write_text("0f9d4c1e-aaaa-bbbb-cccc-000000000001\n")
    monkeypatch.setattr(events_mod, "BOOT_ID_PATH", str(boot_id))
    e = Event.new(EventKind.BLESSED, "good boot", entry="a.conf", data={"n": 1}, clock=lambda: 12.5)
    assert (e.boot_id, e.time, e.entry, e.data) == (
        "0f9d4c1e-aaaa-bbbb-cccc-000000000001",
        12.5,
        "a.conf",
        {"n": 1},
    )


def test_new_tolerates_a_missing_boot_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without /proc (a chroot, a test) the boot id is None instead of an error."""
    monkeypatch.setattr(events_mod, "BOOT_ID_PATH", str(tmp_path / "absent"))
    assert Event.new(EventKind.ARMED, "x").boot_id is None
    assert read_boot_id(str(tmp_path)) is None  # a directory: unreadable, still tolerated


def test_explicit_boot_id_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A given boot id (e.g. of a previous boot, from the journal) is kept as given."""
    monkeypatch.setattr(events_mod, "BOOT_ID_PATH", str(tmp_path / "absent"))
    assert Event.new(EventKind.WATCHDOG_RESET, "x", boot_id="prev").boot_id == "prev"


def test_data_is_copied() -> None:
    """Changing the dict passed in does not change the event."""
    data = {"a": 1}
    e = Event.new(EventKind.VALIDATION, "m", data=data, boot_id="b")
    data["a"] = 2
    assert e.data == {"a": 1}


def _line(**changes: object) -> str:
    doc = json.loads(Event.new(EventKind.BLESSED, "m", boot_id="b", clock=lambda: 1.0).to_json())
    doc.update(changes)
    return json.dumps(doc)


@pytest.mark.parametrize(
    "line",
    [
        "",
        "{",
        "not json",
        "[1, 2]",
        _line(kind="exploded"),
        _line(time="yesterday"),
        _line(time=True),
        _line(message=None),
        _line(data=[1]),
        _line(boot_id=7),
        _line(entry=["a"]),
        _line(cause={}),
    ],
)
def test_junk_lines_are_state_errors(line: str) -> None:
    """A line that is not a valid event raises StateError naming the source."""
    with pytest.raises(StateError, match=r"^events\.jsonl line 3: "):
        Event.from_json(line, source="events.jsonl line 3")


def test_bytes_are_accepted() -> None:
    """from_json takes the raw bytes of a log line too (UTF-8)."""
    e = Event.new(EventKind.HALTED, "golden fälled", boot_id="b")
    assert Event.from_json(e.to_json().encode()) == e
