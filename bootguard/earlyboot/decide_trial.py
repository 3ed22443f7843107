"""The early-boot decisions for trials bootguard counts itself (see statetrial.py for the mechanism).

Pure functions of the observation. The loader-specific part is reduced to `TrialFacts` — is this boot
the trial, does its entry still exist, is golden the loader's default — worked out from systemd-boot's
view (`sdboot_facts`) or from GRUB's environment block and the kernel command line (`grub_facts`), so
the counting itself is one piece of code for every loader.
"""

from __future__ import annotations

from bootguard.earlyboot import act, causes
from bootguard.errors import BootguardError
from bootguard.model._frozen import Frozen
from bootguard.model.entry import EntryStatus
from bootguard.model.events import Event, EventKind
from bootguard.model.state import BAD, GOOD, SHUTDOWN, Backend, TrialTry
from bootguard.services import fallback

TYPE_CHECKING = False
if TYPE_CHECKING:
    from bootguard.earlyboot.causes import Blame
    from bootguard.earlyboot.observe import Observation
    from bootguard.model.state import State, Trial
    from bootguard.services.bootview import BootView


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
    failures: list[tuple[str, str]]  # (entry, cause)
    actions: list[str]
    this_try: TrialTry | None  # this boot, when it is a try

    def __init__(
        self,
        trial: Trial | None,
        events: list[Event],
        failures: list[tuple[str, str]],
        actions: list[str],
        this_try: TrialTry | None = None,
    ) -> None:
        self._init(trial=trial, events=events, failures=failures, actions=actions, this_try=this_try)


def state_trial_of(state: State) -> Trial | None:
    t = state.trial
    return t if t is not None and t.backend is Backend.STATE else None


def sdboot_facts(view: BootView, t: Trial, state: State) -> TrialFacts:
    from bootguard.services import statetrial  # only while bootguard counts a trial itself

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


def grub_facts(state: State, t: Trial, env: dict[str, str], cmdline: str) -> TrialFacts:
    from bootguard.services.grubtrial import booted as grub_booted  # GRUB hosts only

    return TrialFacts(
        on_trial=grub_booted(state, cmdline) == t.filename,
        target_present=True,  # GRUB's menu is generated; an unknown next_entry falls back to the default
        golden_is_default=state.golden is None or env.get("saved_entry") == state.golden.filename,
        booted=grub_booted(state, cmdline),
    )


def convert(obs: Observation, view: BootView) -> tuple[Trial | None, list[Event], list[str]]:
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
    return converted, [event], [act.GOLDEN_DEFAULT]


def _ended_try(obs: Observation, t: Trial, on_trial: bool) -> Blame | str | None:
    """Why the armed try ended badly (a Blame), SHUTDOWN when it ended in an orderly shutdown before
    its verdict (not a failure: the try is armed again), or None if it did not end (or is this boot)."""
    if t.attempt <= t.failures:
        return None  # no try armed
    prev = obs.state.last_boot
    if prev is not None and obs.boot_id is not None and prev.boot_id == obs.boot_id:
        return None  # the step ran already in this boot
    if prev is not None and prev.trial_try == TrialTry.of(t):  # the try reached this step last boot
        if prev.verdict == GOOD:
            return None
        if prev.verdict == SHUTDOWN:
            return SHUTDOWN
        if prev.verdict == BAD:
            return causes.Blame(causes.VALIDATION)
        return causes.blame_one(obs, reached_step=True)
    return None if on_trial else causes.blame_one(obs, reached_step=False)  # died before this step


def _failed_try(obs: Observation, t: Trial, blame: Blame) -> Event:
    data: dict[str, object] = {"try": t.attempt, "tries": t.tries, "counted_by": "bootguard"}
    if blame.record:
        data["evidence"] = blame.record
    return Event.new(
        EventKind.COUNTED_FAILURE,
        f"try {t.attempt} of {t.tries} of trial {t.filename} failed: {causes.explain(blame, obs)}",
        entry=t.filename,
        cause=blame.cause,
        boot_id=obs.boot_id,
        data=data,
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
            [act.FORGET_TRIAL],
        )
    events: list[Event] = []
    failures: list[tuple[str, str]] = []
    actions: list[str] = []
    ended = _ended_try(obs, t, facts.on_trial)
    if ended == SHUTDOWN:  # the try neither passed nor failed: arm it again
        t = t.evolve(attempt=t.attempt - 1)
        message = f"try {t.attempt + 1} of trial {t.filename} ended in an orderly shutdown before its verdict"
        events.append(Event.new(EventKind.BOOT_ENDED, message, entry=t.filename, boot_id=obs.boot_id))
    elif ended is not None and not isinstance(ended, str):
        t = t.evolve(failures=t.failures + 1)
        events.append(_failed_try(obs, t, ended))
        failures.append((t.filename, ended.cause))
    this: TrialTry | None = None
    if facts.on_trial and t.used_up:  # the loader did not fall back by itself: switch to golden, reboot
        actions += [act.ABANDON_TRIAL, act.GOLDEN_DEFAULT, act.REBOOT]
    elif facts.on_trial:
        if t.attempt <= t.failures:  # booted again without a new one-shot: this is the next try
            t = t.evolve(attempt=t.attempt + 1)
            actions.append(act.GOLDEN_DEFAULT)
        this = TrialTry.of(t)
        events.append(_this_try(obs, t, facts))
    elif t.used_up:
        actions.append(act.ABANDON_TRIAL)
    elif t.attempt <= t.failures:
        t = t.evolve(attempt=t.attempt + 1)
        actions += [act.RETRY_TRIAL, act.REBOOT]
        message = f"arming try {t.attempt} of {t.tries} of trial {t.filename} as a one-shot boot; rebooting"
        events.append(Event.new(EventKind.POLICY_CORRECTED, message, entry=t.filename, boot_id=obs.boot_id))
    if not facts.on_trial and act.GOLDEN_DEFAULT not in actions and not facts.golden_is_default:
        actions.append(act.GOLDEN_DEFAULT)  # mend: a lost default would not fall back to golden
    return TrialStep(t, events, failures, actions, this)
