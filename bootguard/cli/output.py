"""Printing for people and for scripts (JSON), shared by the commands."""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from bootguard.model.entry import BootEntry
    from bootguard.services.bootview import BootView


def emit_json(value: object) -> None:
    # jsoncodec: json's output without importing json (and `re` behind it) for plain values.
    from bootguard.model.jsoncodec import dumps

    # One write: json.dump with indent issues thousands of small writes.
    sys.stdout.write(dumps(value, indent=2, ensure_ascii=False) + "\n")


def local_time(seconds: float) -> str:
    """A moment as status and events print it: local time to the second."""
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


def say(line: str = "") -> None:
    sys.stdout.write(line + "\n")


def warn(line: str) -> None:
    sys.stderr.write(f"bootguard: warning: {line}\n")


def entry_json(view: BootView, entry: BootEntry) -> dict[str, object]:
    nxt = view.selection.entry
    return {
        "id": entry.id(view.scheme),
        "filename": entry.filename,
        "path": entry.path,
        "partition": entry.partition.value,
        "type": entry.type.value,
        "title": entry.title,
        "version": entry.version,
        "sort_key": entry.sort_key,
        "tries_left": entry.tries_left,
        "tries_done": entry.tries_done,
        "status": entry.status.value,
        "next_boot": nxt is not None and nxt.path == entry.path and nxt.partition is entry.partition,
        "booted": view.booted is not None and view.booted.path == entry.path,
        "problems": list(entry.problems),
    }


def counter_text(entry: BootEntry) -> str:
    if entry.tries_left is None:
        return "-"
    return f"{entry.tries_left} left, {entry.tries_done} done"
