"""Step 3, record: the decision in one state update, then its events.

Where the record goes: the state directory when it is writable (on NixOS with systemd stage 1 this is
/sysroot/var/lib/bootguard), otherwise the whole decision is spooled to /run/bootguard/spool — /run
is handed to the real root at switch-root — and the first userland bootguard command (the validator)
merges it into /var/lib/bootguard. Nothing is lost either way.
"""

from __future__ import annotations

import os
import time

from bootguard.earlyboot import act
from bootguard.model.events import Event
from bootguard.model.state import FAILED, AttemptKind, Trial
from bootguard.seams import fs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from bootguard.earlyboot.decide import BootPlan
    from bootguard.model.state import State
    from bootguard.seams.statestore import StateStore

SPOOL_DIR = "/run/bootguard/spool"
SPOOL_FILE = "decision.json"


def apply(state: State, d: BootPlan, now: float) -> State:
    """The state after recording a decision (pure): failures and blessings found, this boot's
    attempt and record, the trial as it goes on — or its end, in this same update."""
    from bootguard.services.fallback import FAILED_KEY, failed_trials

    for entry, cause in d.failures:
        state = state.with_attempt(entry, AttemptKind.FAILED, cause, now)
    for entry in d.good:
        state = state.with_attempt(entry, AttemptKind.GOOD, None, now).with_halted(None)
    if d.trial is not None:
        state = state.with_trial(d.trial)
    if d.trial_end is not None:
        outcome, why = d.trial_end
        if outcome == FAILED and state.trial is not None:
            state = state.with_extra(FAILED_KEY, sorted({*failed_trials(state), state.trial.filename}))
        state = state.with_trial_end("blessed" if outcome != FAILED else FAILED, why, now)
    if act.FORGET_TRIAL in d.actions:
        state = state.with_trial(None)
    if d.last_boot.entry:
        state = state.with_attempt(d.last_boot.entry, AttemptKind.ATTEMPTED, None, now)
    return state.with_last_boot(d.last_boot)


def record(store: StateStore, decision: BootPlan) -> None:
    now = time.time()
    store.update(lambda s: apply(s, decision, now))
    store.append_events(decision.events)  # one fsync for all of them, on every boot


def spool(spool_dir: str, decision: BootPlan) -> str:
    from bootguard.model.jsoncodec import dumps

    os.makedirs(spool_dir, mode=0o700, exist_ok=True)
    path = os.path.join(spool_dir, SPOOL_FILE)
    payload = {
        "events": [e.to_dict() for e in decision.events],
        "failures": [[entry, cause] for entry, cause in decision.failures],
        "good": list(decision.good),
        "last_boot": decision.last_boot.to_dict(),
        "trial": decision.trial.to_dict() if decision.trial else None,
        "trial_end": list(decision.trial_end) if decision.trial_end else None,
        "actions": list(decision.actions),
    }
    fs.atomic_write(path, dumps(payload).encode())
    return path


def merge_spool(store: StateStore, spool_dir: str = SPOOL_DIR) -> int:
    """Fold a decision spooled by the initrd into the state directory; returns events merged."""
    import json

    from bootguard.earlyboot.decide import BootPlan
    from bootguard.model.state import BootRecord

    path = os.path.join(spool_dir, SPOOL_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            payload = json.load(f)
    except FileNotFoundError:
        return 0
    events = [Event.from_json(json.dumps(e)) for e in payload.get("events", [])]
    failures = [(str(e), str(c)) for e, c in payload.get("failures", [])]
    trial = Trial.from_dict(payload["trial"], path) if payload.get("trial") else None
    actions = [str(a) for a in payload.get("actions", []) if a in act.ACTIONS]
    if trial is not None and act.RETRY_TRIAL in actions:  # a spooled decision's actions are not
        trial = trial.evolve(attempt=trial.attempt - 1)  # carried out: the try was never armed
    last = BootRecord.from_dict(payload["last_boot"], path)
    if last.verdict == "rebooted":
        last = last.evolve(verdict=None)  # nor was the reboot
    end = payload.get("trial_end")
    decision = BootPlan(
        events,
        actions,
        failures,
        last,
        trial,
        good=tuple(str(g) for g in payload.get("good", [])),
        trial_end=(str(end[0]), end[1]) if end else None,
    )
    record(store, decision)
    os.unlink(path)
    return len(events)


def record_shutdown(store: StateStore, boot_id: str | None) -> str:
    """This boot ends in order: give its record the verdict SHUTDOWN unless it has one already."""
    from bootguard.model.events import EventKind
    from bootguard.model.state import SHUTDOWN

    def change(s: State) -> State:
        last = s.last_boot
        if last is None or last.verdict is not None or (boot_id is not None and last.boot_id != boot_id):
            return s
        return s.with_verdict(SHUTDOWN)

    before = store.load().state.last_boot
    after = store.update(change).last_boot
    if after is None or before == after:
        return "nothing to record: this boot has a verdict already, or the early-boot step did not see it"
    message = f"boot of {after.entry or 'an unknown entry'} ends in an orderly shutdown before its verdict"
    store.append_event(Event.new(EventKind.BOOT_ENDED, message, entry=after.entry, boot_id=boot_id))
    return message


def boot_goes_on(state: State) -> State:
    """The planned reboot is off: this boot awaits a verdict like any other."""
    return state.with_verdict(None) if state.last_boot is not None else state
