"""`bootguard initrd`: the early-boot step that runs on every boot, before switch-root.

1. observe: the loader's view (LoaderBootCountPath, LoaderEntrySelected, LoaderInfo, entries), the
   watchdog's bootstatus from sysfs (never opening the device: that would arm it), pstore panic logs;
2. decide (a pure function of the observation, unit-tested against the loader model): what happened to
   the previous boot(s) and why, what this boot is, and whether the loader configuration needs mending;
3. record it atomically (state + event log), or spool to /run/bootguard when the state directory is
   read-only in the initrd, for userland to merge;
4. arm the hardware watchdog and let go of it, so a hang from here until systemd (or bootguard's
   keepalive) takes over becomes a reset — and the reset becomes a counted failure on the next boot.

Standard library only; every import here is on the early-boot budget.
"""

from __future__ import annotations

import os

from bootguard.errors import BootguardError
from bootguard.model._frozen import Frozen
from bootguard.model.entry import EntryStatus
from bootguard.model.events import Event, EventKind
from bootguard.model.state import Backend, Outcome
from bootguard.services import fallback, statetrial, trialdecide
from bootguard.services.outcomes import LAST_BOOT, TRIAL_TRY, Action, Cause, explain, failure_cause

__all__ = ["LAST_BOOT", "TRIAL_TRY", "Action", "Cause", "Decision", "Observation", "decide"]

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from bootguard.model.state import State, Trial
    from bootguard.services.bootview import BootView

PSTORE_DIR = "/sys/fs/pstore"


class Observation(Frozen):
    __slots__ = (
        "boot_id",
        "cmdline",
        "failure_note",
        "grub_env",
        "panic_log",
        "problems",
        "state",
        "view",
        "watchdog_reset",
    )
    view: BootView | None
    grub_env: dict[str, str] | None  # GRUB hosts: the environment block (saved_entry, next_entry)
    cmdline: str | None  # the kernel command line (GRUB hosts: which entry this boot is)
    state: State
    watchdog_reset: bool
    panic_log: str | None
    failure_note: str | None  # left by `initrd --failed` in the previous boot (an EFI variable)
    boot_id: str | None
    problems: tuple[str, ...]

    def __init__(
        self,
        view: BootView | None,
        state: State,
        *,
        watchdog_reset: bool = False,
        panic_log: str | None = None,
        boot_id: str | None = None,
        problems: tuple[str, ...] = (),
        failure_note: str | None = None,
        grub_env: dict[str, str] | None = None,
        cmdline: str | None = None,
    ) -> None:
        self._init(
            view=view,
            grub_env=grub_env,
            cmdline=cmdline,
            state=state,
            watchdog_reset=watchdog_reset,
            panic_log=panic_log,
            failure_note=failure_note,
            boot_id=boot_id,
            problems=problems,
        )


class Decision(Frozen):
    __slots__ = ("actions", "events", "failures", "last_boot", "trial")
    events: tuple[Event, ...]
    actions: tuple[Action, ...]
    failures: tuple[tuple[str, Cause], ...]  # (entry, cause) per failed earlier boot
    last_boot: dict[str, Any]
    trial: Trial | None  # the running trial as it is to be recorded (None: unchanged)

    def __init__(
        self,
        events: list[Event],
        actions: list[Action],
        failures: list[tuple[str, Cause]],
        last_boot: dict[str, Any],
        trial: Trial | None = None,
    ) -> None:
        self._init(
            events=tuple(events),
            actions=tuple(actions),
            failures=tuple(failures),
            last_boot=last_boot,
            trial=trial,
        )


def _previous(obs: Observation) -> tuple[list[Event], list[tuple[str, Cause]]]:
    """The boot bootguard saw last: did it end without a verdict?"""
    prev = obs.state.extra.get(LAST_BOOT)
    if isinstance(prev, dict) and prev.get(TRIAL_TRY) and trialdecide.state_trial_of(obs.state) is not None:
        return [], []  # a try of a state-counted trial: _state_trial accounts for it
    if not isinstance(prev, dict) or prev.get("verdict") is not None or prev.get("boot_id") == obs.boot_id:
        if obs.watchdog_reset:
            return [
                Event.new(
                    EventKind.WATCHDOG_RESET,
                    "the watchdog reset the machine during the previous boot",
                    cause=Cause.WATCHDOG.value,
                    boot_id=obs.boot_id,
                )
            ], []
        return [], []
    entry = str(prev.get("entry") or "?")
    cause = failure_cause(obs)
    kind = EventKind.COUNTED_FAILURE if prev.get("counted") else EventKind.BOOT_FAILED
    events = [
        Event.new(
            kind,
            f"previous boot of {entry} failed: {explain(cause, obs)}",
            entry=entry,
            cause=cause.value,
            boot_id=obs.boot_id,
            data={"previous_boot_id": prev.get("boot_id")},
        )
    ]
    if cause is Cause.WATCHDOG:
        events.append(
            Event.new(
                EventKind.WATCHDOG_RESET,
                f"watchdog reset during the boot of {entry}",
                entry=entry,
                cause=cause.value,
                boot_id=obs.boot_id,
            )
        )
    return events, [(entry, cause)]


def _unseen_trial_boots(obs: Observation, view: BootView) -> tuple[list[Event], list[tuple[str, Cause]]]:
    """Trial boots the loader counted but bootguard never saw: they died before the initrd step."""
    trial, tc = obs.state.trial, fallback.trial_copy(view)
    if trial is None or trial.backend is not Backend.LOADER or tc is None or tc.tries_done is None:
        return [], []
    prev = obs.state.extra.get(LAST_BOOT)
    seen = int(prev.get("trial_done", 0)) if isinstance(prev, dict) else 0
    now = tc.tries_done - (1 if view.booted is tc else 0)
    cause = Cause.INITRD if obs.failure_note else Cause.PANIC if obs.panic_log else Cause.BEFORE_BOOTGUARD
    events, failures = [], []
    for _ in range(max(0, now - seen)):
        events.append(
            Event.new(
                EventKind.COUNTED_FAILURE,
                f"a boot of trial {trial.filename} failed: {explain(cause, obs)}",
                entry=tc.filename,
                cause=cause.value,
                boot_id=obs.boot_id,
            )
        )
        failures.append((tc.filename, cause))
    return events, failures


def _this_boot(obs: Observation, view: BootView) -> Event:
    b = view.booted
    name = b.filename if b else (view.vars.entry_selected or "unknown entry")
    if view.counted and b is not None:
        left = f"{b.tries_left} {'try' if b.tries_left == 1 else 'tries'} left"
        msg = f"booting {name}: counted attempt {b.tries_done}, {left} after this one"
        return Event.new(
            EventKind.BOOT_ATTEMPTED,
            msg,
            entry=name,
            boot_id=obs.boot_id,
            data={"counted": True, "tries_left": b.tries_left, "tries_done": b.tries_done},
        )
    if b is not None and b.counter is not None and not view.esp.writable():
        return Event.new(
            EventKind.NOT_COUNTED,
            f"booting {name}, NOT counted: the ESP is read-only so the loader could not rename the entry",
            entry=name,
            boot_id=obs.boot_id,
        )
    return Event.new(
        EventKind.BOOT_ATTEMPTED,
        f"booting {name} (not counted)",
        entry=name,
        boot_id=obs.boot_id,
        data={"counted": False},
    )


def _policy(obs: Observation, view: BootView) -> tuple[list[Event], list[Action]]:
    state, tc, b = obs.state, fallback.trial_copy(view), view.booted
    events: list[Event] = []
    actions: list[Action] = []
    if state.trial is not None and state.trial.backend is Backend.STATE:
        state = state.with_trial(None)  # _state_trial applies the policy of state-counted trials
    on_golden = b is not None and (
        fallback.is_golden_copy(b) or (state.golden is not None and b.filename == state.golden.filename)
    )
    if state.trial is not None and tc is None:
        actions.append(Action.FORGET_TRIAL)
        events.append(
            Event.new(
                EventKind.POLICY_CORRECTED,
                f"the trial copy of {state.trial.filename} is gone from the ESP; the trial is forgotten",
                entry=state.trial.filename,
            )
        )
    elif state.trial is not None and tc is not None and tc.status is EntryStatus.BAD and on_golden:
        actions.append(Action.ABANDON_TRIAL)
    elif (
        state.trial is not None
        and tc is not None
        and tc.status is not EntryStatus.BAD
        and view.vars.entry_default != fallback.DEFAULT_GLOB
    ):
        actions.append(Action.RESTORE_GLOB)
        events.append(
            Event.new(
                EventKind.POLICY_CORRECTED,
                f"LoaderEntryDefault was {view.vars.entry_default!r}; "
                f"set back to {fallback.DEFAULT_GLOB!r} so the trial and golden stay in charge",
            )
        )
    if state.golden is not None and fallback.golden_copy(view) is None:
        actions.append(Action.REWRITE_GOLDEN_COPY)
        events.append(
            Event.new(
                EventKind.POLICY_CORRECTED,
                "bootguard's golden entry was missing; rewritten",
                entry=state.golden.filename,
            )
        )
    return events, actions


def _sdboot(obs: Observation, view: BootView) -> Decision:
    """The boot as systemd-boot reports it."""
    events, failures = _previous(obs)
    unseen_events, unseen = _unseen_trial_boots(obs, view)
    events += unseen_events
    failures += unseen
    converted, convert_events, actions = trialdecide.convert(obs, view)
    t = converted or trialdecide.state_trial_of(obs.state)
    if t is None or converted is not None or not statetrial.is_trial_boot(view, t):
        events.append(_this_boot(obs, view))
    events += convert_events
    policy_events, policy_actions = _policy(obs, view)
    events += policy_events
    actions += policy_actions
    tc = fallback.trial_copy(view)
    last: dict[str, Any] = {
        "boot_id": obs.boot_id,
        "verdict": None,
        "entry": view.booted.filename if view.booted else view.vars.entry_selected,
        "counted": view.counted,
        "trial_done": tc.tries_done if tc and tc.tries_done else 0,
    }
    if t is None:
        return Decision(events, actions, failures, last)
    step = trialdecide.state_trial(obs, t, trialdecide.sdboot_facts(view, t, obs.state))
    actions += [a for a in step.actions if a not in actions]
    if step.this_try is not None:
        last[TRIAL_TRY] = step.this_try
    return Decision(events + step.events, actions, failures + step.failures, last, step.trial)


def _grub(obs: Observation, env: dict[str, str], cmdline: str) -> Decision:
    """The boot on GRUB, which names no entry: the command-line token pinned with golden or the trial
    says which one this is, and bootguard counts every try (GRUB has no counter)."""
    events, failures = _previous(obs)
    booted = trialdecide.grub_booted(obs.state, cmdline)
    t = trialdecide.state_trial_of(obs.state)
    facts = trialdecide.grub_facts(obs.state, t, env, cmdline) if t else None
    if facts is None or not facts.on_trial:
        message = f"booting {booted or 'an entry bootguard does not know'} (GRUB: not counted by the loader)"
        events.append(Event.new(EventKind.BOOT_ATTEMPTED, message, entry=booted, boot_id=obs.boot_id))
    last: dict[str, Any] = {"boot_id": obs.boot_id, "verdict": None, "entry": booted, "counted": False}
    if t is None or facts is None:
        return Decision(events, [], failures, last)
    step = trialdecide.state_trial(obs, t, facts)
    if step.this_try is not None:
        last[TRIAL_TRY] = step.this_try
    return Decision(events + step.events, step.actions, failures + step.failures, last, step.trial)


def decide(obs: Observation) -> Decision:
    """Everything the early-boot step will record and do, without doing it."""
    if obs.view is not None:
        d = _sdboot(obs, obs.view)
    elif obs.grub_env is not None:
        d = _grub(obs, obs.grub_env, obs.cmdline or "")
    else:  # no loader view: only what the previous boot left can be recorded
        events, failures = _previous(obs)
        d = Decision(events, [], failures, {"boot_id": obs.boot_id, "verdict": None, "entry": None})
    events = list(d.events)
    if obs.failure_note and not d.failures:  # an uncounted boot died in the initrd
        events.insert(
            0,
            Event.new(
                EventKind.INITRD_FAILURE,
                f"a boot failed in the initrd: {obs.failure_note}",
                cause=Cause.INITRD.value,
                boot_id=obs.boot_id,
            ),
        )
    for p in obs.problems:
        events.append(Event.new(EventKind.NOT_COUNTED, p, boot_id=obs.boot_id))
    last = dict(d.last_boot)
    if Action.REBOOT in d.actions:
        last["verdict"] = "rebooted"  # bootguard ends this boot on purpose: not a failure of it
    return Decision(events, list(d.actions), list(d.failures), last, d.trial)


def find_panic_log(pstore: str = PSTORE_DIR) -> str | None:
    """A pstore record of a kernel panic from the previous boot, if pstore is mounted and kept one."""
    try:
        names = sorted(os.listdir(pstore))
    except OSError:
        return None
    for name in names:
        if not name.startswith("dmesg"):
            continue
        try:
            with open(os.path.join(pstore, name), "rb") as f:
                if b"Kernel panic" in f.read(1 << 20):
                    return name
        except OSError:
            continue
    return None


def apply_state(state: State, d: Decision, now: float) -> State:
    """The state after recording a decision (pure)."""
    for entry, cause in d.failures:
        state = state.with_attempt(entry, Outcome.FAILED, cause.value, now)
    if d.last_boot.get("entry"):
        state = state.with_attempt(str(d.last_boot["entry"]), Outcome.ATTEMPTED, None, now)
    if d.trial is not None:
        state = state.with_trial(d.trial)
    if Action.FORGET_TRIAL in d.actions:
        state = state.with_trial(None)
    return state.with_extra(LAST_BOOT, d.last_boot)


def _describe_failure(exc: BootguardError) -> str:
    return f"early-boot step could not read the boot loader's view: {exc.message}"
