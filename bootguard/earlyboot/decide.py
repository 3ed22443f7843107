"""Step 2, decide: a pure function of the observation, unit-tested against the loader model.

How did the boots since the step last ran end, and why (causes.attribute gives each failure its own
evidence); what is this boot; what do the trial policy and the loader configuration ask for. The
result is one `BootPlan`: what the record step writes (in one state update) and what the act step
then does.

A boot's record (`State.last_boot`, a BootRecord) is judged by its verdict; when it has none, the
ESP may still say how it ended: a blessing or a mark-bad renames the entry *before* the state is
written, so a power cut between the two leaves the rename as the only trace, and the boot is judged
by it instead of being taken for a crash.
"""

from __future__ import annotations

from bootguard.earlyboot import act, causes, decide_trial
from bootguard.earlyboot.causes import Blame
from bootguard.model._frozen import Frozen
from bootguard.model.entry import EntryStatus
from bootguard.model.events import Event, EventKind
from bootguard.model.state import BAD, GOOD, REBOOTED, SHUTDOWN, Backend, BootRecord
from bootguard.services import fallback

TYPE_CHECKING = False
if TYPE_CHECKING:
    from bootguard.earlyboot.observe import Observation
    from bootguard.model.state import State, Trial
    from bootguard.services.bootview import BootView

__all__ = ["BootPlan", "decide"]


class BootPlan(Frozen):
    __slots__ = ("actions", "ended", "events", "failures", "good", "last_boot", "trial", "trial_end")
    events: tuple[Event, ...]
    actions: tuple[str, ...]  # act.* names, carried out in this order
    failures: tuple[tuple[str, str], ...]  # (entry, cause) per failed earlier boot, oldest first
    good: tuple[str, ...]  # entries of earlier boots found blessed whose record was cut short
    last_boot: BootRecord
    trial: Trial | None  # the running trial as it is to be recorded (None: unchanged)
    trial_end: tuple[str, str | None] | None  # (outcome, cause): the trial ends in the record update
    ended: Trial | None  # the trial that ends (its saved default and copy are cleaned up by act)

    def __init__(
        self,
        events: list[Event],
        actions: list[str],
        failures: list[tuple[str, str]],
        last_boot: BootRecord,
        trial: Trial | None = None,
        *,
        good: tuple[str, ...] = (),
        trial_end: tuple[str, str | None] | None = None,
        ended: Trial | None = None,
    ) -> None:
        self._init(
            events=tuple(events),
            actions=tuple(actions),
            failures=tuple(failures),
            good=tuple(good),
            last_boot=last_boot,
            trial=trial,
            trial_end=trial_end,
            ended=ended,
        )


class _Earlier(Frozen):
    """How the boots since the step last ran ended: failures (oldest first) and a found blessing."""

    __slots__ = ("blessed", "events", "failures", "marked_bad")
    events: list[Event]
    failures: list[tuple[str, str]]
    blessed: str | None  # the entry of a boot found blessed on the ESP (record cut short)
    marked_bad: bool

    def __init__(
        self,
        events: list[Event],
        failures: list[tuple[str, str]],
        blessed: str | None = None,
        marked_bad: bool = False,
    ) -> None:
        self._init(events=events, failures=failures, blessed=blessed, marked_bad=marked_bad)


def verdict_on_disk(view: BootView | None, prev: BootRecord) -> str | None:
    """GOOD or BAD when the counted file the previous boot ran from was renamed by a blessing or a
    mark-bad whose state update never happened (a power cut); None when the ESP does not say."""
    if view is None or not prev.counted or not prev.entry:
        return None
    from bootguard.errors import ParseError
    from bootguard.model.counter import bless_bad_filename, bless_good_filename

    names = {e.filename for e in view.found}
    if prev.entry in names:
        return None
    try:
        good, bad = bless_good_filename(prev.entry), bless_bad_filename(prev.entry)
    except ParseError:
        return None
    return GOOD if good in names else BAD if bad in names else None


def _failed_event(
    kind: EventKind, message: str, entry: str, blame: Blame, obs: Observation, **data: object
) -> Event:
    return Event.new(
        kind,
        message,
        entry=entry,
        cause=blame.cause,
        boot_id=obs.boot_id,
        data={**data, "evidence": blame.record} if blame.record else data or None,
    )


def _earlier(obs: Observation, view: BootView | None) -> _Earlier:
    """The boot the step saw last and, on systemd-boot, the trial boots it never saw."""
    prev = obs.state.last_boot
    unseen = _unseen_trial_names(obs, view) if view is not None else []
    if prev is None or (obs.boot_id is not None and prev.boot_id == obs.boot_id):
        return _blame_unseen(obs, [], unseen, [])
    if prev.trial_try is not None and decide_trial.state_trial_of(obs.state) is not None:
        return _blame_unseen(obs, [], unseen, [])  # a try of a state-counted trial: decide_trial counts it
    entry = prev.entry or "?"
    verdict = prev.verdict or verdict_on_disk(view, prev)
    if verdict == GOOD and prev.verdict is None:
        message = f"boot of {entry} was blessed (renamed on the ESP); its record was cut short, completed now"
        event = Event.new(EventKind.BLESSED, message, entry=entry, boot_id=obs.boot_id)
        return _Earlier([event], [], blessed=entry)
    if verdict == BAD and prev.verdict is None:
        message = f"boot of {entry} was marked bad (renamed on the ESP) but its record was cut short"
        event = Event.new(
            EventKind.MARKED_BAD, message, entry=entry, cause=causes.VALIDATION, boot_id=obs.boot_id
        )
        return _blame_unseen(obs, [event], unseen, [(entry, causes.VALIDATION)], marked_bad=True)
    if verdict in (GOOD, BAD, REBOOTED, SHUTDOWN):
        return _blame_unseen(obs, [], unseen, [])
    return _blame_unseen(obs, [], unseen, [], failed_prev=prev)


def _blame_unseen(
    obs: Observation,
    events: list[Event],
    unseen: list[tuple[str, str]],
    failures: list[tuple[str, str]],
    *,
    failed_prev: BootRecord | None = None,
    marked_bad: bool = False,
) -> _Earlier:
    """Attribute causes, oldest first: the previous (seen) boot if it ended without a verdict, then
    the trial boots the loader counted that never reached the step."""
    reached = ([True] if failed_prev is not None else []) + [False] * len(unseen)
    blames = causes.attribute(obs, reached)
    if failed_prev is not None:
        blame, blames = blames[0], blames[1:]
        entry = failed_prev.entry or "?"
        kind = EventKind.COUNTED_FAILURE if failed_prev.counted else EventKind.BOOT_FAILED
        events.append(
            _failed_event(
                kind,
                f"previous boot of {entry} failed: {causes.explain(blame, obs)}",
                entry,
                blame,
                obs,
                previous_boot_id=failed_prev.boot_id,
            )
        )
        failures.append((entry, blame.cause))
    for (generation, name), blame in zip(unseen, blames, strict=True):
        events.append(
            _failed_event(
                EventKind.COUNTED_FAILURE,
                f"a boot of trial {generation} ({name}) failed: {causes.explain(blame, obs)}",
                generation,
                blame,
                obs,
                copy=name,
            )
        )
        failures.append((generation, blame.cause))
    if not failures and obs.watchdog_reset:
        events.append(
            Event.new(
                EventKind.WATCHDOG_RESET,
                "the watchdog reset the machine during the previous boot",
                cause=causes.WATCHDOG,
                boot_id=obs.boot_id,
            )
        )
    elif any(c == causes.WATCHDOG for _, c in failures):
        entry = next(e for e, c in failures if c == causes.WATCHDOG)
        events.append(
            Event.new(
                EventKind.WATCHDOG_RESET,
                f"watchdog reset during the boot of {entry}",
                entry=entry,
                cause=causes.WATCHDOG,
                boot_id=obs.boot_id,
            )
        )
    return _Earlier(events, failures, marked_bad=marked_bad)


def _unseen_trial_names(obs: Observation, view: BootView) -> list[tuple[str, str]]:
    """Trial boots the loader counted but the step never saw (they died before it): (the trial's
    entry, the name its copy had during that boot), oldest first."""
    trial, tc = obs.state.trial, fallback.trial_copy(view)
    if trial is None or trial.backend is not Backend.LOADER or tc is None or tc.tries_done is None:
        return []
    prev = obs.state.last_boot
    seen = prev.trial_done if prev is not None else 0
    now = tc.tries_done - (1 if view.booted is tc else 0)
    name = fallback.parse_copy_name(tc.filename)
    total = (tc.tries_left or 0) + tc.tries_done
    return [
        (trial.filename, f"{name.prefix}+{total - done}-{done}{name.suffix.lower()}")
        for done in range(seen + 1, now + 1)
    ]


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


def _policy(obs: Observation, view: BootView, trial: Trial | None) -> tuple[list[Event], list[str]]:
    """What the loader configuration needs while a loader-counted trial runs, and after one ended."""
    state, tc, b = obs.state, fallback.trial_copy(view), view.booted
    events: list[Event] = []
    actions: list[str] = []
    on_golden = b is not None and (
        fallback.is_golden_copy(b) or (state.golden is not None and b.filename == state.golden.filename)
    )
    if state.trial is None and tc is not None:
        actions.append(act.REMOVE_TRIAL_COPY)  # left by a trial whose end was recorded, then power was cut
    if state.trial is None and view.vars.entry_default == fallback.DEFAULT_GLOB:
        actions.append(act.RESTORE_DEFAULT)
    if trial is not None and tc is None:
        actions.append(act.FORGET_TRIAL)
        events.append(
            Event.new(
                EventKind.POLICY_CORRECTED,
                f"the trial copy of {trial.filename} is gone from the ESP; the trial is forgotten",
                entry=trial.filename,
            )
        )
    elif trial is not None and tc is not None and tc.status is EntryStatus.BAD and on_golden:
        actions.append(act.ABANDON_TRIAL)
    elif (
        trial is not None
        and tc is not None
        and tc.status is not EntryStatus.BAD
        and view.vars.entry_default != fallback.DEFAULT_GLOB
    ):
        actions.append(act.RESTORE_GLOB)
        events.append(
            Event.new(
                EventKind.POLICY_CORRECTED,
                f"LoaderEntryDefault was {view.vars.entry_default!r}; "
                f"set back to {fallback.DEFAULT_GLOB!r} so the trial and golden stay in charge",
            )
        )
    if state.golden is not None and fallback.golden_copy(view) is None:
        actions.append(act.REWRITE_GOLDEN_COPY)
        events.append(
            Event.new(
                EventKind.POLICY_CORRECTED,
                "bootguard's golden entry was missing; rewritten",
                entry=state.golden.filename,
            )
        )
    return events, actions


def _sdboot(obs: Observation, view: BootView) -> BootPlan:
    """The boot as systemd-boot reports it."""
    earlier = _earlier(obs, view)
    events, failures = list(earlier.events), list(earlier.failures)
    trial = obs.state.trial
    ended: Trial | None = None
    trial_end: tuple[str, str | None] | None = None
    actions: list[str] = []
    blessed = earlier.blessed
    if (
        blessed
        and trial is not None
        and trial.backend is Backend.LOADER
        and fallback.is_trial_copy_name(blessed)
    ):
        ended, trial_end, trial = trial, ("blessed", None), None  # the trial was blessed: finish it now
        actions.append(act.FINISH_TRIAL)
    converted, convert_events, convert_actions = decide_trial.convert(obs, view)
    actions += convert_actions
    t = converted or decide_trial.state_trial_of(obs.state)
    if t is None or converted is not None or not _is_trial_boot(view, t):
        events.append(_this_boot(obs, view))
    events += convert_events
    loader_trial = trial if trial is not None and trial.backend is Backend.LOADER and not converted else None
    policy_events, policy_actions = _policy(obs, view, loader_trial if ended is None else None)
    if ended is not None:
        policy_actions = [a for a in policy_actions if a not in (act.REMOVE_TRIAL_COPY, act.RESTORE_DEFAULT)]
    events += policy_events
    actions += [a for a in policy_actions if a not in actions]
    tc = fallback.trial_copy(view)
    last = BootRecord(
        obs.boot_id,
        view.booted.filename if view.booted else view.vars.entry_selected,
        counted=view.counted,
        trial_done=tc.tries_done if tc and tc.tries_done else 0,
    )
    if act.ABANDON_TRIAL in actions and trial is not None:
        ended, trial_end = trial, ("failed", _rollback_cause(obs.state, trial, failures))
        events.append(_rolled_back(trial, trial_end[1], obs))
    if t is None:
        good = _good(earlier)
        return BootPlan(events, actions, failures, last, good=good, trial_end=trial_end, ended=ended)
    step = decide_trial.state_trial(obs, t, decide_trial.sdboot_facts(view, t, obs.state))
    return _with_state_trial(obs, step, earlier, events=events, actions=actions, failures=failures, last=last)


def _is_trial_boot(view: BootView, t: Trial) -> bool:
    # Only while bootguard counts a trial itself: most boots run none and skip importing statetrial.
    from bootguard.services.statetrial import is_trial_boot

    return is_trial_boot(view, t)


def _good(earlier: _Earlier) -> tuple[str, ...]:
    return (earlier.blessed,) if earlier.blessed else ()


def _rollback_cause(state: State, trial: Trial, failures: list[tuple[str, str]]) -> str | None:
    """The cause of the try that used the trial up: seen in this boot, else the last one its
    generation's history recorded (a failed validation marks the copy bad at once)."""
    if failures:
        return failures[-1][1]
    return state.attempts_for(trial.filename).last_cause


def _rolled_back(trial: Trial, cause: str | None, obs: Observation) -> Event:
    return Event.new(
        EventKind.ROLLED_BACK,
        f"trial {trial.filename} failed {trial.tries} {'time' if trial.tries == 1 else 'times'}; "
        "the host is back on golden",
        entry=trial.filename,
        cause=cause or causes.UNKNOWN,
        boot_id=obs.boot_id,
        data={"commit": trial.commit} if trial.commit else None,
    )


def _with_state_trial(
    obs: Observation,
    step: decide_trial.TrialStep,
    earlier: _Earlier,
    *,
    events: list[Event],
    actions: list[str],
    failures: list[tuple[str, str]],
    last: BootRecord,
) -> BootPlan:
    actions += [a for a in step.actions if a not in actions]
    failures = failures + step.failures
    if step.this_try is not None:
        last = last.evolve(trial_try=step.this_try)
    trial_end: tuple[str, str | None] | None = None
    ended: Trial | None = None
    events = events + step.events
    if act.ABANDON_TRIAL in step.actions and step.trial is not None:
        ended = step.trial
        trial_end = ("failed", _rollback_cause(obs.state, step.trial, failures))
        events.append(_rolled_back(step.trial, trial_end[1], obs))
    return BootPlan(
        events, actions, failures, last, step.trial, good=_good(earlier), trial_end=trial_end, ended=ended
    )


def _grub(obs: Observation, env: dict[str, str], cmdline: str) -> BootPlan:
    """The boot on GRUB, which names no entry: the command-line token pinned with golden or the trial
    says which one this is, and bootguard counts every try (GRUB has no counter)."""
    earlier = _earlier(obs, None)
    events, failures = list(earlier.events), list(earlier.failures)
    from bootguard.services.grubtrial import booted as grub_booted  # GRUB hosts only

    booted = grub_booted(obs.state, cmdline)
    t = decide_trial.state_trial_of(obs.state)
    facts = decide_trial.grub_facts(obs.state, t, env, cmdline) if t else None
    if facts is None or not facts.on_trial:
        message = f"booting {booted or 'an entry bootguard does not know'} (GRUB: not counted by the loader)"
        events.append(Event.new(EventKind.BOOT_ATTEMPTED, message, entry=booted, boot_id=obs.boot_id))
    last = BootRecord(obs.boot_id, booted)
    if t is None or facts is None:
        return BootPlan(events, [], failures, last)
    step = decide_trial.state_trial(obs, t, facts)
    return _with_state_trial(obs, step, earlier, events=events, actions=[], failures=failures, last=last)


def decide(obs: Observation) -> BootPlan:
    """Everything the early-boot step will record and do, without doing it."""
    if obs.view is not None:
        d = _sdboot(obs, obs.view)
    elif obs.grub_env is not None:
        d = _grub(obs, obs.grub_env, obs.cmdline or "")
    else:  # no loader view: only what the previous boot left can be recorded
        earlier = _earlier(obs, None)
        d = BootPlan(list(earlier.events), [], list(earlier.failures), BootRecord(obs.boot_id, None))
    events = list(d.events)
    if obs.failure_note and not d.failures:  # an uncounted boot died in the initrd
        events.insert(
            0,
            Event.new(
                EventKind.INITRD_FAILURE,
                f"a boot failed in the initrd: {obs.failure_note}",
                cause=causes.INITRD,
                boot_id=obs.boot_id,
            ),
        )
    for p in obs.problems:
        events.append(Event.new(EventKind.NOT_COUNTED, p, boot_id=obs.boot_id))
    last = d.last_boot
    if act.REBOOT in d.actions:
        last = last.evolve(verdict=REBOOTED)  # bootguard ends this boot on purpose: not a failure of it
    return d.evolve(events=tuple(events), last_boot=last)
