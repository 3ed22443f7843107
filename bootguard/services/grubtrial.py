"""GRUB hosts: golden and trials on a loader that neither counts boots nor says which entry it booted.

bootguard counts the tries in its state exactly as for a read-only ESP (statetrial.py, trialdecide.py):
golden is GRUB's default (`saved_entry`, as `grub-set-default` writes it; grub.cfg needs
GRUB_DEFAULT=saved — on NixOS `boot.loader.grub.default = "saved"`) and every try is a one-shot
(`next_entry`, as `grub-reboot` writes it; grub.cfg clears it with `save_env` as it boots it). Which
entry a boot is comes from a token of its kernel command line pinned with it (`--match`, e.g. NixOS's
`init=/nix/store/…/init`), since GRUB exports no LoaderEntrySelected.
"""

from __future__ import annotations

import time

from bootguard.errors import NotFoundError, RefusedError
from bootguard.model.events import Event, EventKind
from bootguard.model.state import BLESSED, Backend, Golden, Outcome, Trial
from bootguard.services import fallback

TYPE_CHECKING = False
if TYPE_CHECKING:
    from bootguard.model.state import State
    from bootguard.seams.grubenv import GrubEnv
    from bootguard.seams.statestore import StateStore

CMDLINE = "/proc/cmdline"


def read_cmdline(path: str = CMDLINE) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().strip()
    except FileNotFoundError:
        raise NotFoundError(f"{path} is missing: cannot tell which entry is booted") from None


def _golden(state: State) -> Golden:
    if state.golden is None:
        raise RefusedError(
            "no golden generation is pinned: a failed trial would have nothing to fall back to",
            hint="pin one first: bootguard pin-golden ENTRY --grub-env FILE --match TOKEN",
        )
    return state.golden


class GrubPort:
    """What the early-boot step changes on a GRUB host."""

    def __init__(self, env: GrubEnv) -> None:
        self.env = env

    def golden_default(self, state: State) -> None:
        self.env.set(saved_entry=_golden(state).filename)

    def arm_try(self, state: State, trial: Trial) -> None:
        self.env.set(saved_entry=_golden(state).filename, next_entry=trial.filename)

    def abandon(self, store: StateStore, cause: str) -> None:
        fallback.abandon_trial(None, store, cause)

    def restore_glob(self) -> None:
        raise RefusedError("LoaderEntryDefault is systemd-boot's; this host boots with GRUB")

    def rewrite_golden_copy(self, state: State) -> None:
        raise RefusedError("bootguard writes no golden entry for GRUB; its menu is generated")


def pin_golden(
    env: GrubEnv, store: StateStore, entry: str, token: str, cmdline: str, *, commit: str | None = None
) -> Golden:
    """Pin the GRUB entry booted now (the token must be on this boot's command line: it boots)."""
    env.read()
    if token not in cmdline.split():
        raise RefusedError(
            f"{token!r} is not on this boot's kernel command line: golden must be the entry booted now",
            hint="boot the known-good entry, then pin it",
        )
    known = store.load().state.running_commit(entry)
    golden = Golden(
        entry_id=entry,
        filename=entry,
        generation=None,
        pinned_at=time.time(),
        cmdline=token,
        commit=commit or known,
    )
    env.set(saved_entry=entry)
    store.update(lambda s: s.evolve(golden=golden, halted=None))
    store.append_event(
        Event.new(
            EventKind.GOLDEN_PINNED, f"golden is now GRUB entry {entry}", entry=entry, data={"match": token}
        )
    )
    return golden


def start(
    env: GrubEnv, store: StateStore, entry: str, token: str, tries: int, *, commit: str | None = None
) -> Trial:
    """Stage GRUB entry `entry` as a trial: golden stays the default, the entry boots next, once."""
    state = store.load().state
    golden = _golden(state)
    if entry == golden.filename:
        raise RefusedError(f"GRUB entry {entry} is golden already; a trial is for a new generation")
    if entry in fallback.failed_trials(state):
        raise RefusedError(f"GRUB entry {entry} failed its trial before; refusing to try it again")
    env.read()
    trial = Trial(
        entry_id=entry,
        filename=entry,
        tries=tries,
        started_at=time.time(),
        backend=Backend.STATE,
        attempt=1,
        cmdline=token,
        commit=commit,
    )
    store.update(lambda s: s.evolve(trial=trial, halted=None))  # the pending marker first
    env.set(saved_entry=golden.filename, next_entry=entry)
    store.append_event(
        Event.new(
            EventKind.TRIAL_STARTED,
            f"GRUB entry {entry} staged as a trial with {tries} tries counted by bootguard "
            f"(each try is a one-shot boot; {golden.filename} is the default)",
            entry=entry,
            data={"tries": tries, "backend": Backend.STATE.value, "match": token, "commit": commit},
        )
    )
    return trial


def booted(state: State, cmdline: str) -> str | None:
    from bootguard.services.trialdecide import grub_booted

    return grub_booted(state, cmdline)


def verdict(env: GrubEnv, store: StateStore, good: bool, cmdline: str) -> list[str]:
    """A verdict on this boot: recorded; a good trial becomes GRUB's default and the trial ends."""
    state = store.load().state
    name = booted(state, cmdline) or "an entry bootguard does not know"
    outcome = Outcome.GOOD if good else Outcome.FAILED
    word = "good" if good else "bad"

    from bootguard.services.verdict import record_verdict

    record_verdict(store, word)
    store.update(lambda s: s.with_attempt(name, outcome, None if good else "validation-failed", time.time()))
    kind = EventKind.BLESSED if good else EventKind.MARKED_BAD
    store.append_event(Event.new(kind, f"boot of {name} validated {word}", entry=name))
    messages = [f"boot of {name} recorded as {word} (GRUB does not count boots)"]
    trial = state.trial
    if good and trial is not None and name == trial.filename:
        env.set(saved_entry=trial.filename)
        now = time.time()
        store.update(lambda s: s.with_trial_end(BLESSED, None, now))
        store.append_event(
            Event.new(
                EventKind.TRIAL_FINISHED,
                f"trial of GRUB entry {trial.filename} passed; it is GRUB's default now",
                entry=trial.filename,
            )
        )
        messages.append(f"trial of {trial.filename} passed; GRUB's saved_entry is {trial.filename} now")
    return messages


def failed(env: GrubEnv, store: StateStore, reason: str, cmdline: str) -> tuple[bool, list[str]]:
    """A failed validation: recorded; returns (halt, messages) — halt when golden itself failed, since a
    reboot would only bring up golden again (the loop bootguard never makes)."""
    messages = verdict(env, store, False, cmdline)
    state = store.load().state
    name = booted(state, cmdline)
    if state.golden is None or name != state.golden.filename:
        return False, [f"validation of {name or 'this boot'} failed: {reason}", *messages]
    from bootguard.services.verdict import halt

    return True, halt(store, name, reason)
