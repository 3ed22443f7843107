"""The early-boot decisions for trials bootguard counts itself (see statetrial.py for the mechanism).

Pure functions of the observation. The loader-specific part is reduced to `TrialFacts` — is this boot
the trial, does its entry still exist, is golden the loader's default — worked out from systemd-boot's
view (`sdboot_facts`) or from GRUB's environment block and the kernel command line (`grub_facts`), so
the counting itself is one piece of code for every loader.
"""

from __future__ import annotations

from bootguard.errors import BootguardError
from bootguard.model._frozen import Frozen
from bootguard.model.entry import EntryStatus
from bootguard.model.events import Event, EventKind
from bootguard.model.state import Backend
from bootguard.services import fallback, statetrial
from bootguard.services.outcomes import (
    LAST_BOOT,
    TRIAL_TRY,
    Action,
    Cause,
    explain,
    failure_cause,
    unseen_cause,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from bootguard.model.state import State, Trial
    from bootguard.services.bootview import BootView
    from bootguard.services.earlyboot import Observation


class TrialFacts(Frozen):
    __slots__ = ("booted", "golden_is_default", "on_trial", "target_present")
    on_trial: bool
    target_present: bool
    golden_is_default: bool
    booted: str | None  # the booted entry's name, for the event log

    def __init__(self, *, on_trial: bool, target_present: bool, golden_is_default: bool, booted: str | None):
        self._init(
            on_trial=on_trial,
            target_present=target_present,
            golden_is_default=golden_is_default,
            booted=booted,
        )


class TrialStep(Frozen):
    """What a boot means for a state-counted trial."""

    __slots__ = ("actions", "events", "failures", "this_try", "trial")
    trial: Trial | None  # as it is to be recorded
    events: list[Event]
    failures: list[tuple[str, Cause]]
    actions: list[Action]
    this_try: dict[str, Any] | None  # try_key of this boot, when it is a try

    def __init__(
        self,
        trial: Trial | None,
        events: list[Event],
        failures: list[tuple[str, Cause]],
        actions: list[Action],
        this_try: dict[str, Any] | None = None,
    ) -> None:
        self._init(trial=trial, events=events, failures=failures, actions=actions, this_try=this_try)


def state_trial_of(state: State) -> Trial | None:
    t = state.trial
    return t if t is not None and t.backend is Backend.STATE else None


def try_key(t: Trial) -> dict[str, Any]:
    """Names one try of one trial in LAST_BOOT (a later trial's try 1 is another try)."""
    return {"trial": t.filename, "started_at": t.started_at, "try": t.attempt}


def sdboot_facts(view: BootView, t: Trial, state: State) -> TrialFacts:
    try:
        golden_id = statetrial.golden_target(view, state).id(view.scheme)
        golden_is_default = view.vars.entry_default == golden_id
    except BootguardError:
        golden_is_default = True  # nothing to point the default at; the policy reports a missing golden
    return TrialFacts(
        on_trial=statetrial.is_trial_boot(view, t),
        target_present=statetrial.trial_target(view, t) is not None,
        golden_is_default=golden_is_default,
        booted=view.booted.filename if view.booted else None,
    )


def grub_booted(state: State, cmdline: str) -> str | None:
    """Which of golden and the trial this boot is, by the kernel command-line token pinned with it."""
    words = cmdline.split()
    for e in (state.trial, state.golden):
        if e is not None and e.cmdline and e.cmdline in words:
            return e.filename
    return None


def grub_facts(state: State, t: Trial, env: dict[str, str], cmdline: str) -> TrialFacts:
    return TrialFacts(
        on_trial=grub_booted(state, cmdline) == t.filename,
        target_present=True,  # GRUB's menu is generated; an unknown next_entry falls back to the default
        golden_is_default=state.golden is None or env.get("saved_entry") == state.golden.filename,
        booted=grub_booted(state, cmdline),
    )


def convert(obs: Observation, view: BootView) -> tuple[Trial | None, list[Event], list[Action]]:
    """A loader-counted trial booted without being counted: the loader cannot rename its entry (the
    firmware cannot write the ESP), so its counter would never run out. bootguard takes over counting."""
    t, tc, b = obs.state.trial, fallback.trial_copy(view), view.booted
    if t is None or t.backend is not Backend.LOADER or tc is None or b is not tc or view.counted:
        return None, [], []
    if tc.counter is None or tc.status is EntryStatus.BAD:
        return None, [], []
    done = tc.tries_done or 0
    converted = t.evolve(backend=Backend.STATE, attempt=done + 1, failures=done, copy_filename=tc.filename)
    message = (
        f"the loader could not count this boot of trial {t.filename} (it cannot rename {tc.filename}: "
        f"the ESP is read-only to the firmware); bootguard counts the trial from now on: this is try "
        f"{done + 1} of {t.tries}, golden is now the default and later tries are one-shot boots"
    )
    event = Event.new(EventKind.POLICY_CORRECTED, message, entry=tc.filename, boot_id=obs.boot_id)
    return converted, [event], [Action.GOLDEN_DEFAULT]


def _ended_try(obs: Observation, t: Trial, on_trial: bool) -> Cause | None:
    """Why the armed try ended badly, or None if it did not (or if it is this boot)."""
    if t.attempt <= t.failures:
        return None  # no try armed
    prev = obs.state.extra.get(LAST_BOOT)
    prev = prev if isinstance(prev, dict) else {}
    if obs.boot_id is not None and prev.get("boot_id") == obs.boot_id:
        return None  # the step ran already in this boot
    if prev.get(TRIAL_TRY) == try_key(t):  # the try reached this step last boot
        verdict = prev.get("verdict")
        if verdict == "good":
            return None
        return Cause.VALIDATION if verdict == "bad" else failure_cause(obs)
    return None if on_trial else unseen_cause(obs)  # its one-shot boot died before this step


def _failed_try(obs: Observation, t: Trial, cause: Cause) -> Event:
    return Event.new(
        EventKind.COUNTED_FAILURE,
        f"try {t.attempt} of {t.tries} of trial {t.filename} failed: {explain(cause, obs)}",
        entry=t.filename,
        cause=cause.value,
        boot_id=obs.boot_id,
        data={"try": t.attempt, "tries": t.tries, "counted_by": "bootguard"},
    )


def _this_try(obs: Observation, t: Trial, facts: TrialFacts) -> Event:
    return Event.new(
        EventKind.BOOT_ATTEMPTED,
        f"booting trial {t.filename}: try {t.attempt} of {t.tries}, counted by bootguard "
        f"(a failure of this boot lands on golden)",
        entry=facts.booted or t.filename,
        boot_id=obs.boot_id,
        data={"counted": False, "counted_by": "bootguard", "try": t.attempt, "tries": t.tries},
    )


def state_trial(obs: Observation, t: Trial, facts: TrialFacts) -> TrialStep:
    """Account for the last try and steer the next one."""
    if not facts.target_present:
        message = f"the trial's entry {t.filename} is gone from the ESP; the trial is forgotten"
        return TrialStep(
            None,
            [Event.new(EventKind.POLICY_CORRECTED, message, entry=t.filename)],
            [],
            [Action.FORGET_TRIAL],
        )
    events: list[Event] = []
    failures: list[tuple[str, Cause]] = []
    actions: list[Action] = []
    cause = _ended_try(obs, t, facts.on_trial)
    if cause is not None:
        t = t.evolve(failures=t.failures + 1)
        events.append(_failed_try(obs, t, cause))
        failures.append((t.filename, cause))
    this: dict[str, Any] | None = None
    if facts.on_trial and t.used_up:  # the loader did not fall back by itself: switch to golden, reboot
        actions += [Action.ABANDON_TRIAL, Action.GOLDEN_DEFAULT, Action.REBOOT]
    elif facts.on_trial:
        if t.attempt <= t.failures:  # booted again without a new one-shot: this is the next try
            t = t.evolve(attempt=t.attempt + 1)
            actions.append(Action.GOLDEN_DEFAULT)
        this = try_key(t)
        events.append(_this_try(obs, t, facts))
    elif t.used_up:
        actions.append(Action.ABANDON_TRIAL)
    elif t.attempt <= t.failures:
        t = t.evolve(attempt=t.attempt + 1)
        actions += [Action.RETRY_TRIAL, Action.REBOOT]
        message = f"arming try {t.attempt} of {t.tries} of trial {t.filename} as a one-shot boot; rebooting"
        events.append(Event.new(EventKind.POLICY_CORRECTED, message, entry=t.filename, boot_id=obs.boot_id))
    if not facts.on_trial and Action.GOLDEN_DEFAULT not in actions and not facts.golden_is_default:
        actions.append(Action.GOLDEN_DEFAULT)  # mend: a lost default would not fall back to golden
    return TrialStep(t, events, failures, actions, this)
