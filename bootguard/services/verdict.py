"""What a validation verdict does to the boot: the one blesser.

Pass → bless the booted entry (if counted), finish a trial, record the good boot, optionally promote
to golden after K good boots. Fail → mark the entry bad and ask for a reboot — unless the host is on
golden: then there is nothing better to fall back to, so bootguard halts (records why, changes nothing
more, does not reboot) instead of driving a reboot loop of its own.
"""

from __future__ import annotations

import enum
import time

from bootguard.model._frozen import Frozen
from bootguard.model.events import Event, EventKind
from bootguard.model.state import Outcome
from bootguard.seams.efivars import EfiVars
from bootguard.seams.statestore import StateStore
from bootguard.services import fallback, golden, statetrial
from bootguard.services.bless import Verb, mark
from bootguard.services.bootview import BootView
from bootguard.services.earlyboot import LAST_BOOT

TYPE_CHECKING = False
if TYPE_CHECKING:
    from bootguard.model.state import State


class Next(enum.Enum):
    CONTINUE = "continue"  # boot is good
    REBOOT = "reboot"  # boot is bad; a reboot lets the loader try the next attempt or golden
    HALT = "halt"  # bad, but on golden: stay up, tell a person


class Verdict(Frozen):
    __slots__ = ("messages", "next")
    next: Next
    messages: tuple[str, ...]

    def __init__(self, next: Next, messages: list[str]) -> None:
        self._init(next=next, messages=tuple(messages))


def _on_golden(view: BootView, store: StateStore) -> bool:
    b, g = view.booted, store.load().state.golden
    return b is not None and (fallback.is_golden_copy(b) or (g is not None and b.filename == g.filename))


def record_verdict(store: StateStore, verdict: str) -> None:
    """Tell the next early-boot step that this boot got a verdict (so it is not taken for a crash)."""

    def change(s: State) -> State:
        last = s.extra.get(LAST_BOOT)
        return s.with_extra(LAST_BOOT, {**last, "verdict": verdict}) if isinstance(last, dict) else s

    store.update(change)


def passed(view: BootView, store: StateStore, efivars: str, *, promote_after: int | None = None) -> Verdict:
    messages = []
    if view.counted:
        messages.append(mark(view, Verb.GOOD).describe())
    booted = view.booted.filename if view.booted else "?"
    store.update(lambda s: s.with_attempt(booted, Outcome.GOOD, None, time.time()).with_halted(None))
    record_verdict(store, "good")
    store.append_event(Event.new(EventKind.BLESSED, f"boot of {booted} validated good", entry=booted))
    if statetrial.is_trial_boot(view, store.load().state.trial):
        trial = fallback.finish_trial(
            BootView.gather(view.esp.root, view.xbootldr.root if view.xbootldr else None, efivars),
            store,
            EfiVars(efivars),
        )
        if trial is not None:
            messages.append(f"trial of {trial.filename} passed; normal boot configuration restored")
            messages += _maybe_promote(view, store, trial.filename, promote_after)
    return Verdict(Next.CONTINUE, messages)


def _maybe_promote(view: BootView, store: StateStore, filename: str, promote_after: int | None) -> list[str]:
    if not promote_after:
        return []
    good = store.load().state.attempts_for(filename).good
    if good < promote_after:
        return []
    entry = next((e for e in view.entries if e.filename == filename), None)
    if entry is None:
        return []
    golden.pin(view, store, entry)
    store.append_event(
        Event.new(
            EventKind.PROMOTED, f"{filename} promoted to golden after {good} good boots", entry=filename
        )
    )
    return [f"{filename} promoted to golden after {good} good boots"]


def halt(store: StateStore, golden: str, reason: str) -> list[str]:
    """Golden failed validation: record it and stop; a reboot would only bring up golden again."""
    why = f"golden ({golden}) failed validation too: {reason}"
    store.update(lambda s: s.with_halted(why))
    store.append_event(
        Event.new(
            EventKind.HALTED,
            why + "; bootguard stops rearranging and will not reboot",
            entry=golden,
            cause="validation-failed",
        )
    )
    return [why, "halted: no reboot; see `bootguard status`"]


def failed(view: BootView, store: StateStore, reason: str) -> Verdict:
    booted = view.booted.filename if view.booted else "?"
    record_verdict(store, "bad")
    store.update(lambda s: s.with_attempt(booted, Outcome.FAILED, "validation-failed", time.time()))
    if _on_golden(view, store):
        return Verdict(Next.HALT, halt(store, booted, reason))
    messages = [f"validation of {booted} failed: {reason}"]
    if view.counted:
        messages.append(mark(view, Verb.BAD).describe())
    store.append_event(
        Event.new(
            EventKind.MARKED_BAD,
            f"{booted} failed validation: {reason}",
            entry=booted,
            cause="validation-failed",
        )
    )
    return Verdict(Next.REBOOT, messages)
