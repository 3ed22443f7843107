"""`bootguard mark good|bad|indeterminate`: the renames systemd-bless-boot makes, with its outcomes.

The file is the one named by LoaderBootCountPath (ESP first, then XBOOTLDR). Of its three possible
names — counted (as the loader left it), good (counter removed) and bad (`+0[-DONE]`) — the one for the
requested verb is the target. Already there → "already done" (success, as systemd-bless-boot says);
found under another name → renamed without replacing anything, then the directory and the file
system are synced; none of the three → not found.
"""

from __future__ import annotations

import enum
import os

from bootguard.errors import NotFoundError
from bootguard.model._frozen import Frozen
from bootguard.model.counter import bless_bad_filename, bless_good_filename, normalized_boot_count_path
from bootguard.seams import esp as esp_seam

TYPE_CHECKING = False
if TYPE_CHECKING:
    from bootguard.seams.esp import PartitionRoot
    from bootguard.services.bootview import BootView


class Verb(enum.Enum):
    GOOD = "good"
    BAD = "bad"
    INDETERMINATE = "indeterminate"


class Outcome(enum.Enum):
    RENAMED = "renamed"
    ALREADY = "already"  # the file already has the requested name
    NOT_COUNTED = "not-counted"  # this boot has no LoaderBootCountPath: nothing to mark


class MarkResult(Frozen):
    __slots__ = ("new_path", "old_path", "outcome", "partition", "verb")
    verb: Verb
    outcome: Outcome
    old_path: str | None
    new_path: str | None
    partition: PartitionRoot | None

    def __init__(
        self,
        verb: Verb,
        outcome: Outcome,
        old_path: str | None = None,
        new_path: str | None = None,
        partition: PartitionRoot | None = None,
    ) -> None:
        self._init(verb=verb, outcome=outcome, old_path=old_path, new_path=new_path, partition=partition)

    def describe(self) -> str:
        if self.outcome is Outcome.NOT_COUNTED:
            return "this boot is not counted (no LoaderBootCountPath): nothing to mark"
        if self.outcome is Outcome.ALREADY:
            return f"{self.new_path} is already marked {self.verb.value}"
        return f"marked {self.verb.value}: {self.old_path} → {self.new_path}"


def _names(counted: str) -> dict[Verb, str]:
    return {
        Verb.INDETERMINATE: counted,
        Verb.GOOD: bless_good_filename(counted),
        Verb.BAD: bless_bad_filename(counted),
    }


def mark_path(parts: list[PartitionRoot], count_path: str, verb: Verb) -> MarkResult:
    """Mark the entry at `count_path` (LoaderBootCountPath, `\\` or `/`) on the first partition holding it."""
    rel = normalized_boot_count_path(count_path).lstrip("/")  # no `..`: never outside the ESP
    directory, _, counted = rel.rpartition("/")
    names = _names(counted)
    target = names[verb]
    for part in parts:
        here = part.join(directory)
        if os.path.lexists(os.path.join(here, target)):
            return MarkResult(verb, Outcome.ALREADY, new_path=f"{directory}/{target}", partition=part)
        for other in (n for v, n in names.items() if v is not verb and n != target):
            if os.path.lexists(os.path.join(here, other)):
                part.require_writable(f"mark the entry {other} {verb.value}")
                new_rel = esp_seam.rename_entry(part, f"{directory}/{other}", target)
                return MarkResult(verb, Outcome.RENAMED, f"{directory}/{other}", new_rel, part)
    where = " or ".join(p.root for p in parts)
    raise NotFoundError(
        f"cannot find the boot counter file {rel} (nor its good/bad names) on {where}",
        hint="was the entry removed or renamed since boot?",
    )


def mark(view: BootView, verb: Verb) -> MarkResult:
    """Mark the currently booted, counted entry."""
    if view.vars.boot_count_path is None:
        return MarkResult(verb, Outcome.NOT_COUNTED)
    parts = [view.esp] + ([view.xbootldr] if view.xbootldr else [])
    return mark_path(parts, view.vars.boot_count_path, verb)
