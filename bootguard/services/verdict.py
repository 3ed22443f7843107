"""The one blesser: what a verdict on this boot does, as one transaction.

Pass: (1) rename the booted counted entry to its good name (what systemd-bless-boot does); (2) one
state update that records the good attempt, the verdict, the end of a halt and, on a trial boot,
the trial's end; (3) on a trial boot, give the loader its normal configuration back (default and
trial copy); (4) the events; then, if asked, promote the generation to golden.
Fail: (1) rename to the bad name — unless the host is on golden: then there is nothing better to
fall back to, so bootguard halts instead of driving a reboot loop of its own; (2) one state update
(failed attempt, verdict, halt); (3) the events.

Why this order (tests/unit/test_powercut_verdict.py cuts the power before every step): the rename
comes first because it is what the loader acts on, and the next early-boot step reads a rename whose
state update never happened as the verdict it was (earlyboot.decide.verdict_on_disk), so a power cut
never turns a passed boot into a failure. A cut after the state update leaves at most a stale
trial copy or default, which the next early-boot step removes or restores (act.REMOVE_TRIAL_COPY,
act.RESTORE_DEFAULT). `bootguard mark good|bad`, the validator and GRUB's verdict all come here.
"""

from __future__ import annotations

import time

from bootguard.errors import ReadOnlyError
from bootguard.model._frozen import Frozen
from bootguard.model.events import Event, EventKind
from bootguard.model.state import BAD, BLESSED, GOOD, AttemptKind
from bootguard.services import fallback, golden, statetrial
from bootguard.services.bless import MarkOutcome, MarkResult, Verb, mark

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final

    from bootguard.model.state import State, Trial
    from bootguard.seams.efivars import EfiVars
    from bootguard.seams.statestore import StateStore
    from bootguard.services.bootview import BootView

CONTINUE: Final = "continue"  # the boot is good
REBOOT: Final = "reboot"  # bad; a reboot lets the loader try the next attempt or golden
HALT: Final = "halt"  # bad, but on golden: stay up, tell a person


class Consequence(Frozen):
    """What a verdict led to: what the caller does next, the rename made, and what to tell."""

    __slots__ = ("mark", "messages", "next")
    next: str  # CONTINUE, REBOOT or HALT
    mark: MarkResult | None
    messages: tuple[str, ...]

    def __init__(self, next: str, messages: list[str], mark: MarkResult | None = None) -> None:
        self._init(next=next, messages=tuple(messages), mark=mark)


def booted_name(view: BootView) -> str:
    b = view.booted
    return b.filename if b is not None else (view.vars.entry_selected or "?")


def on_golden(view: BootView, state: State) -> bool:
    b, g = view.booted, state.golden
    return b is not None and (fallback.is_golden_copy(b) or (g is not None and b.filename == g.filename))


def passed(
    view: BootView,
    store: StateStore,
    efi: EfiVars,
    *,
    promote_after: int | None = None,
    end_trial: bool = True,
    by_hand: bool = False,
) -> Consequence:
    """Bless this boot (gathered once, by the caller); `end_trial=False` leaves a trial running.
    `by_hand` (`bootguard mark good`): a boot the loader did not count is logged as such, as
    systemd-bless-boot reports it, not as blessed; its verdict is recorded all the same."""
    before = store.load().state
    result = mark(view, Verb.GOOD) if view.counted else None  # (1)
    booted = booted_name(view)
    trial = before.trial if end_trial and statetrial.is_trial_boot(view, before.trial) else None
    now = time.time()

    def change(s: State) -> State:  # (2)
        s = s.with_attempt(booted, AttemptKind.GOOD, None, now).with_halted(None).with_verdict(GOOD)
        return s.with_trial_end(BLESSED, None, now) if trial is not None and s.trial is not None else s

    store.update(change)
    left = _give_back_configuration(view, efi, trial, result) if trial is not None else None  # (3)
    messages = [result.describe()] if result is not None else []
    renamed = {"from": result.old_path, "to": result.new_path} if result is not None else None
    if by_hand and result is None:  # (4)
        uncounted = MarkResult(Verb.GOOD, MarkOutcome.NOT_COUNTED).describe()
        store.append_event(Event.new(EventKind.NOT_COUNTED, uncounted, entry=booted))
    else:
        store.append_event(
            Event.new(EventKind.BLESSED, f"boot of {booted} validated good", entry=booted, data=renamed)
        )
    if trial is not None:
        store.append_event(
            Event.new(
                EventKind.TRIAL_FINISHED,
                f"trial of {trial.filename} passed and was blessed" + (f"; {left}" if left else ""),
                entry=trial.filename,
                data={"commit": trial.commit} if trial.commit else None,
            )
        )
        messages.append(
            f"trial of {trial.filename} finished: blessed, bootguard's trial copy removed, "
            "normal default restored"
        )
    messages += _maybe_promote(view, store, booted, promote_after)
    return Consequence(CONTINUE, messages, result)


def _give_back_configuration(
    view: BootView, efi: EfiVars, trial: Trial, result: MarkResult | None
) -> str | None:
    """The default the user had; the trial copy removed (under the name the blessing gave it)."""
    if trial.saved_default is None:
        efi.delete(fallback.DEFAULT_VAR)
    else:
        efi.write_str(fallback.DEFAULT_VAR, trial.saved_default)
    from bootguard.seams import esp as esp_seam

    try:
        for e in view.found:
            if not fallback.is_trial_copy(e):
                continue
            renamed = result is not None and result.outcome is MarkOutcome.RENAMED and e is view.booted
            path = result.new_path if renamed and result is not None and result.new_path else e.path
            esp_seam.remove_file(view.partition_of(e), path)
    except ReadOnlyError as exc:
        return f"its copy stays on the read-only ESP ({exc.message})"
    return None


def _maybe_promote(view: BootView, store: StateStore, booted: str, promote_after: int | None) -> list[str]:
    """Pin the booted generation as golden once it has `promote_after` good boots (its history counts
    them across the loader's renames and the trial copy), unless it is golden already or on trial."""
    if not promote_after:
        return []
    from bootguard.model.entry import EntryStatus
    from bootguard.model.state import generation_key

    state = store.load().state
    key = state.history_key(booted)
    good = state.attempts_for(key).good
    on_trial = state.trial is not None and generation_key(state.trial.filename) == key
    is_golden = state.golden is not None and generation_key(state.golden.filename) == key
    if good < promote_after or on_trial or is_golden:
        return []
    entry = next((e for e in view.entries if generation_key(e.filename) == key), None)
    if entry is None or entry.status is EntryStatus.BAD:
        return []
    filename = entry.filename
    golden.pin(view, store, entry)
    store.append_event(
        Event.new(
            EventKind.PROMOTED, f"{filename} promoted to golden after {good} good boots", entry=filename
        )
    )
    return [f"{filename} promoted to golden after {good} good boots"]


def halt_reason(golden_name: str, reason: str) -> str:
    return f"golden ({golden_name}) failed validation too: {reason}"


def halted_event(golden_name: str, why: str) -> Event:
    return Event.new(
        EventKind.HALTED,
        why + "; bootguard stops rearranging and will not reboot",
        entry=golden_name,
        cause="validation-failed",
    )


HALTED_MESSAGE = "halted: no reboot; see `bootguard status`"


def failed(view: BootView, store: StateStore, reason: str, *, may_halt: bool = True) -> Consequence:
    """Reject this boot (gathered once, by the caller). With `may_halt` (the validator), a failure on
    golden halts instead of marking golden bad; `bootguard mark bad` marks what it is told."""
    before = store.load().state
    booted = booted_name(view)
    halt = may_halt and on_golden(view, before)
    result = mark(view, Verb.BAD) if view.counted and not halt else None  # (1)
    why = halt_reason(booted, reason) if halt else None
    now = time.time()

    def change(s: State) -> State:  # (2)
        s = s.with_attempt(booted, AttemptKind.FAILED, "validation-failed", now).with_verdict(BAD)
        return s.with_halted(why) if why is not None else s

    store.update(change)
    if why is not None:  # (3)
        store.append_event(halted_event(booted, why))
        return Consequence(HALT, [why, HALTED_MESSAGE])
    store.append_event(
        Event.new(
            EventKind.MARKED_BAD,
            f"{booted} failed validation: {reason}",
            entry=booted,
            cause="validation-failed",
            data={"from": result.old_path, "to": result.new_path} if result is not None else None,
        )
    )
    messages = [f"validation of {booted} failed: {reason}"]
    if result is not None:
        messages.append(result.describe())
    return Consequence(REBOOT, messages, result)
