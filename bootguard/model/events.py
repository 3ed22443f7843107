"""Events: what bootguard saw and did, one JSON object per line in `events.jsonl`.

The log is the audit trail an operator reads after a bad night ("why is the host on generation
41?"), so every event names the boot it happened in, the entry involved and the cause. Values
of `EventKind` are written to disk: keep them stable, only add new ones. Standard library only;
the JSON goes through `jsoncodec`, json's own output without importing `re` (early-boot budget).
"""

from __future__ import annotations

import time as _time

from bootguard._vocab import Vocab
from bootguard.errors import StateError
from bootguard.model._frozen import Frozen

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"


class EventKind(Vocab):
    """What happened. The string values are the on-disk vocabulary."""

    BOOT_ATTEMPTED = "boot-attempted"
    COUNTED_FAILURE = "counted-failure"
    BOOT_FAILED = "boot-failed"  # an uncounted boot ended without a verdict (nothing was counted)
    NOT_COUNTED = "not-counted"
    WATCHDOG_RESET = "watchdog-reset"
    PANIC_SEEN = "panic-seen"
    BLESSED = "blessed"
    MARKED_BAD = "marked-bad"
    MARKED_INDETERMINATE = "marked-indeterminate"
    ARMED = "armed"
    ROLLED_BACK = "rolled-back"
    GOLDEN_PINNED = "golden-pinned"
    TRIAL_STARTED = "trial-started"
    TRIAL_FINISHED = "trial-finished"
    TRIAL_FAILED = "trial-failed"
    HALTED = "halted"
    VALIDATION = "validation"
    CHECK_FAILED = "check-failed"
    NOTIFICATION_FAILED = "notification-failed"
    POLICY_CORRECTED = "policy-corrected"
    INITRD_FAILURE = "initrd-failure"
    COMMIT = "commit"
    UPGRADE = "upgrade"
    UPGRADE_FAILED = "upgrade-failed"
    BACKUP_SAVED = "backup-saved"
    PROMOTED = "promoted"
    STATE_RECOVERED = "state-recovered"
    BOOT_ENDED = "boot-ended"  # an orderly shutdown or reboot before any verdict (not a failure)


def read_boot_id(path: str | None = None) -> str | None:
    """The kernel's random boot id (a UUID string), or None where /proc is not there (tests, chroots)."""
    try:
        # Bytes, then the decoder's C fast path for ascii: a text-mode open(encoding="ascii") imports
        # encodings.ascii on every early boot (issue 13, speed). Newlines as text mode reads them.
        with open(path or BOOT_ID_PATH, "rb") as f:
            raw = f.read().decode("ascii")
        value = raw.replace("\r\n", "\n").replace("\r", "\n").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return value or None


class Event(Frozen):
    """One entry of the event log. `data` is JSON-able and must be treated as immutable."""

    __slots__ = ("boot_id", "cause", "data", "entry", "kind", "message", "time")

    time: float
    kind: EventKind
    boot_id: str | None
    entry: str | None
    cause: str | None
    message: str
    data: dict[str, Any]

    def __init__(
        self,
        *,
        time: float,
        kind: EventKind,
        message: str,
        boot_id: str | None = None,
        entry: str | None = None,
        cause: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> None:
        self._init(
            time=float(time),
            kind=kind,
            boot_id=boot_id,
            entry=entry,
            cause=cause,
            message=message,
            data=dict(data) if data else {},
        )

    @classmethod
    def new(
        cls,
        kind: EventKind,
        message: str,
        *,
        entry: str | None = None,
        cause: str | None = None,
        data: Mapping[str, Any] | None = None,
        boot_id: str | None = None,
        clock: Callable[[], float] = _time.time,
    ) -> Event:
        """An event happening now, in the current boot."""
        return cls(
            time=clock(),
            kind=kind,
            message=message,
            boot_id=boot_id if boot_id is not None else read_boot_id(),
            entry=entry,
            cause=cause,
            data=data,
        )

    def __hash__(self) -> int:
        # `data` is a dict, so the generic field hash would fail; the JSON form is canonical.
        return hash(self.to_json())

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able form (also what `bootguard events --json` prints)."""
        return {
            "time": self.time,
            "kind": self.kind.value,
            "boot_id": self.boot_id,
            "entry": self.entry,
            "cause": self.cause,
            "message": self.message,
            "data": self.data,
        }

    def to_json(self) -> str:
        """One line of JSON (newlines inside strings are escaped by the encoder)."""
        from bootguard.model.jsoncodec import dumps

        return dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, line: str | bytes, *, source: str = "event") -> Event:
        """Parse one line written by `to_json`; StateError on anything else."""
        from bootguard.model.jsoncodec import loads

        try:
            obj = loads(line)
        except (ValueError, UnicodeDecodeError) as exc:
            raise StateError(f"{source}: not valid JSON ({exc})") from exc
        return cls.from_dict(obj, source=source)

    @classmethod
    def from_dict(cls, obj: object, *, source: str = "event") -> Event:
        """Validate a decoded JSON object strictly (types of every field)."""
        if not isinstance(obj, dict):
            raise StateError(f"{source}: an event must be a JSON object, got {type(obj).__name__}")
        when = obj.get("time")
        if isinstance(when, bool) or not isinstance(when, int | float):
            raise StateError(f"{source}: 'time' must be a number, got {when!r}")
        raw_kind = obj.get("kind")
        try:
            kind = EventKind(raw_kind)
        except ValueError as exc:
            raise StateError(f"{source}: unknown event kind {raw_kind!r}") from exc
        message = obj.get("message")
        if not isinstance(message, str):
            raise StateError(f"{source}: 'message' must be a string, got {message!r}")
        data = obj.get("data", {})
        if not isinstance(data, dict):
            raise StateError(f"{source}: 'data' must be an object, got {type(data).__name__}")
        return cls(
            time=when,
            kind=kind,
            message=message,
            boot_id=_opt_str(obj, "boot_id", source),
            entry=_opt_str(obj, "entry", source),
            cause=_opt_str(obj, "cause", source),
            data=data,
        )


def _opt_str(obj: dict[str, Any], key: str, source: str) -> str | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise StateError(f"{source}: {key!r} must be a string or null, got {value!r}")
    return value


class EventLog(Frozen):
    """Events read back from the log, oldest first, and what was wrong with the file."""

    __slots__ = ("events", "warnings")

    events: tuple[Event, ...]
    warnings: tuple[str, ...]

    def __init__(self, events: tuple[Event, ...] = (), warnings: tuple[str, ...] = ()) -> None:
        self._init(events=tuple(events), warnings=tuple(warnings))
