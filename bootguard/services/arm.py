"""`bootguard arm ENTRY --tries N`: give an uncounted entry a boot counter (`NAME+N.conf`).

Refuses when the entry is already counted, or when a twin with the same name exists with or without
a counter: systemd-bless-boot then finds its target taken and blesses nothing (systemd issue 33504,
and one entry with and without counter is unsupported, issue 15667).
"""

from __future__ import annotations

from bootguard.errors import RefusedError
from bootguard.model.counter import with_counter
from bootguard.seams import esp as esp_seam
from bootguard.services.bootview import _stripped

TYPE_CHECKING = False
if TYPE_CHECKING:
    from bootguard.model.entry import BootEntry
    from bootguard.services.bootview import BootView


def _suffix(entry: BootEntry) -> str:
    return entry.name.suffix


def arm(view: BootView, entry: BootEntry, tries: int) -> str:
    """Rename `entry` to carry `tries` tries; returns the new path relative to its partition."""
    if entry.counter is not None:
        raise RefusedError(
            f"{entry.path} already has a boot counter ({entry.tries_left} left, {entry.tries_done} done)",
            hint="only uncounted entries can be armed",
        )
    twins = [
        e
        for e in view.entries
        if e is not entry
        and e.partition is entry.partition
        and _stripped(e.filename) == _stripped(entry.filename)
    ]
    if twins:
        raise RefusedError(
            f"cannot arm {entry.path}: {twins[0].path} is the same entry with a counter",
            hint="remove one of the two first (systemd issue 33504)",
        )
    part = view.partition_of(entry)
    part.require_writable(f"arm {entry.path}")
    new_name = with_counter(entry.filename, _suffix(entry), tries)
    return esp_seam.rename_entry(part, entry.path, new_name)
