"""The one place GitOps writes to the event log (kinds `commit`, `upgrade`, `upgrade-failed`, `backup-saved`).

Standard library only, and imported lazily by callers: the state store is the early-boot one.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

KINDS = ("commit", "upgrade", "upgrade-failed", "backup-saved")


def record(state_dir: str, kind: str, message: str, data: Mapping[str, Any] | None = None) -> None:
    """Append one event; `kind` is one of KINDS (the on-disk vocabulary of `EventKind`)."""
    from bootguard.model.events import Event, EventKind
    from bootguard.seams.statestore import StateStore

    if kind not in KINDS:
        raise ValueError(f"not a GitOps event kind: {kind!r}")
    StateStore(state_dir).append_event(Event.new(EventKind(kind), message, data=data or {}))
