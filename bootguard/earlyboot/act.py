"""After the record: carry out what the decision asks of the loader configuration, in order.

Action names are plain strings (the early-boot path imports no `enum`). Each action goes through a
port — `SdBootPort` (EFI variables and bootguard's copies on the ESP) or `GrubPort` (GRUB's
environment block) — so the decision itself is loader-neutral. A failed action is logged and the
others still run; a reboot only follows when every action before it succeeded.
"""

from __future__ import annotations

from bootguard.errors import BootguardError
from bootguard.model.events import Event, EventKind

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final, Protocol

    from bootguard.model.state import State, Trial
    from bootguard.seams.statestore import StateStore

    class Port(Protocol):
        """What the step changes on the loader: statetrial.SdBootPort, grubtrial.GrubPort."""

        def golden_default(self, state: State) -> None: ...
        def arm_try(self, state: State, trial: Trial) -> None: ...
        def remove_trial_copies(self) -> str | None: ...
        def restore_default(self, saved: str | None) -> None: ...
        def restore_glob(self) -> None: ...
        def rewrite_golden_copy(self, state: State) -> None: ...


ABANDON_TRIAL: Final = "abandon-trial"  # the trial used up its tries (recorded): drop its copy
FINISH_TRIAL: Final = "finish-trial"  # a blessed trial: its copy goes, the normal default returns
REMOVE_TRIAL_COPY: Final = "remove-stale-trial-copy"  # a trial copy left by an ended trial
RESTORE_DEFAULT: Final = "restore-default"  # LoaderEntryDefault still bootguard's glob, no trial runs
RESTORE_GLOB: Final = "restore-default-glob"  # LoaderEntryDefault lost while a trial is running
REWRITE_GOLDEN_COPY: Final = "rewrite-golden-copy"
FORGET_TRIAL: Final = "forget-trial"  # the trial's copy vanished from the ESP
GOLDEN_DEFAULT: Final = "golden-default"  # state-counted trial: the loader's default is golden
RETRY_TRIAL: Final = "retry-trial"  # state-counted trial: arm the next try as a one-shot boot
REBOOT: Final = "reboot"  # into the armed try, or off a used-up trial onto golden
ACTIONS = (
    ABANDON_TRIAL,
    FINISH_TRIAL,
    REMOVE_TRIAL_COPY,
    RESTORE_DEFAULT,
    RESTORE_GLOB,
    REWRITE_GOLDEN_COPY,
    FORGET_TRIAL,
    GOLDEN_DEFAULT,
    RETRY_TRIAL,
    REBOOT,
)


def carry_out(port: Port, store: StateStore, actions: tuple[str, ...], ended: Trial | None) -> list[str]:
    """The plan's actions in order (`ended`: the trial the plan ends); returns those done."""
    done: list[str] = []
    for action in actions:
        if action == REBOOT:
            if len(done) == len(actions) - 1:
                done.append(action)
            continue
        if action == FORGET_TRIAL:  # recorded already; nothing to change on the loader
            done.append(action)
            continue
        try:
            _do(action, port, store, ended)
            done.append(action)
        except BootguardError as exc:
            if action == RETRY_TRIAL:  # the try was never armed: take the pending marker back
                store.update(unarm)
            store.append_event(Event.new(EventKind.POLICY_CORRECTED, f"could not {action}: {exc.message}"))
    return done


def unarm(state: State) -> State:
    t = state.trial
    return state.with_trial(t.evolve(attempt=t.attempt - 1)) if t and t.attempt > t.failures else state


def _do(action: str, port: Port, store: StateStore, ended: Trial | None) -> None:
    state = store.load().state  # a retry's try number is in it already: the pending marker
    if action in (ABANDON_TRIAL, REMOVE_TRIAL_COPY):
        left = port.remove_trial_copies()
        if left and action == ABANDON_TRIAL:  # said once, when the trial ends; not on every boot after
            store.append_event(Event.new(EventKind.POLICY_CORRECTED, f"the trial's copy stays: {left}"))
    elif action == FINISH_TRIAL:
        if ended is not None:
            port.restore_default(ended.saved_default)
        port.remove_trial_copies()
    elif action == RESTORE_DEFAULT:
        last = state.finished_trials[-1] if state.finished_trials else None
        port.restore_default(last.saved_default if last is not None else None)
    elif action == RESTORE_GLOB:
        port.restore_glob()
    elif action == GOLDEN_DEFAULT:
        port.golden_default(state)
    elif action == RETRY_TRIAL:
        if state.trial is None:
            raise BootguardError("no trial to retry")
        port.arm_try(state, state.trial)
    elif action == REWRITE_GOLDEN_COPY:
        port.rewrite_golden_copy(state)
