"""Orchestration of the user-facing verbs that change the boot: mark, arm, pin-golden, trial.

Each function gathers the loader's view, acts through the seams, records what happened in the state
and the event log, and returns a JSON-able summary whose `messages` say it in words.
"""

from __future__ import annotations

import time

from bootguard.errors import NoEfiError
from bootguard.model.events import Event, EventKind
from bootguard.model.state import Backend, Outcome
from bootguard.seams.efivars import EfiVars
from bootguard.seams.statestore import StateStore
from bootguard.services import arm as arm_service
from bootguard.services import fallback, golden, statetrial
from bootguard.services.bless import Outcome as MarkOutcome
from bootguard.services.bless import Verb
from bootguard.services.bless import mark as bless_mark
from bootguard.services.bootview import BootView, HostPaths, require_entry

TYPE_CHECKING = False
if TYPE_CHECKING:
    from bootguard.model.entry import BootEntry

_MARK_EVENTS = {
    Verb.GOOD: EventKind.BLESSED,
    Verb.BAD: EventKind.MARKED_BAD,
    Verb.INDETERMINATE: EventKind.MARKED_INDETERMINATE,
}


def _require_efi(view: BootView, efivars: str, what: str) -> None:
    if not view.efi_available:
        raise NoEfiError(
            f"cannot {what}: {efivars} is missing (not an EFI boot, or efivarfs is not mounted)",
            hint="mount -t efivarfs efivarfs /sys/firmware/efi/efivars",
        )


def mark(paths: HostPaths, verb: Verb, *, finish_trial: bool = True) -> dict[str, object]:
    esp, xbootldr, efivars, state_dir = paths.esp, paths.xbootldr, paths.efivars, paths.state_dir
    view = BootView.gather(esp, xbootldr, efivars)
    _require_efi(view, efivars, f"mark this boot {verb.value}")
    result = bless_mark(view, verb)
    messages = [result.describe()]
    store = StateStore(state_dir)
    booted = view.booted.filename if view.booted else None
    if result.outcome is not MarkOutcome.NOT_COUNTED:
        store.append_event(
            Event.new(
                _MARK_EVENTS[verb],
                result.describe(),
                entry=booted,
                data={"from": result.old_path, "to": result.new_path},
            )
        )
        if verb is not Verb.INDETERMINATE:
            outcome = Outcome.GOOD if verb is Verb.GOOD else Outcome.FAILED
            store.update(lambda s: s.with_attempt(booted or "?", outcome, None, time.time()))
    else:
        store.append_event(Event.new(EventKind.NOT_COUNTED, result.describe(), entry=booted))
    if verb is not Verb.INDETERMINATE:
        from bootguard.services.verdict import record_verdict

        record_verdict(store, "good" if verb is Verb.GOOD else "bad")
    if verb is Verb.GOOD and finish_trial and statetrial.is_trial_boot(view, store.load().state.trial):
        trial = fallback.finish_trial(BootView.gather(esp, xbootldr, efivars), store, EfiVars(efivars))
        if trial is not None:
            messages.append(
                f"trial of {trial.filename} finished: bootguard's trial copy removed, normal default restored"
            )
    return {
        "verb": verb.value,
        "outcome": result.outcome.value,
        "from": result.old_path,
        "to": result.new_path,
        "messages": messages,
    }


def arm(paths: HostPaths, key: str, tries: int) -> dict[str, object]:
    view = paths.view()
    entry = require_entry(view, key)
    new = arm_service.arm(view, entry, tries)
    StateStore(paths.state_dir).append_event(
        Event.new(
            EventKind.ARMED,
            f"{entry.path} armed with {tries} tries as {new}",
            entry=entry.filename,
            data={"tries": tries, "path": new},
        )
    )
    return {"entry": entry.path, "path": new, "tries": tries, "messages": [f"armed: {entry.path} → {new}"]}


def pin_golden(
    paths: HostPaths, key: str | None, *, generation: int | None, nix_root: str, commit: str | None = None
) -> dict[str, object]:
    view = paths.view()
    entry = golden.choose(view, key, generation)
    pinned = golden.pin(view, StateStore(paths.state_dir), entry, nix_root=nix_root, commit=commit)
    msg = f"golden pinned: {pinned.filename}" + (
        f" (generation {pinned.generation})" if pinned.generation else ""
    )
    return {
        "golden": pinned.filename,
        "entry_id": pinned.entry_id,
        "generation": pinned.generation,
        "commit": pinned.commit,
        "messages": [msg, f"fallback entry written: {fallback.GOLDEN_STEM}.conf"],
    }


def _backend(view: BootView, entry: BootEntry, wanted: str) -> Backend:
    if wanted != "auto":
        return Backend(wanted)
    return Backend.LOADER if view.partition_of(entry).writable() else Backend.STATE


def trial(
    paths: HostPaths, key: str, tries: int, *, backend: str = "auto", commit: str | None = None
) -> dict[str, object]:
    view = paths.view()
    _require_efi(view, paths.efivars, "stage a trial")
    entry = require_entry(view, key)
    chosen = _backend(view, entry, backend)
    store, efi = StateStore(paths.state_dir), EfiVars(paths.efivars)
    if chosen is Backend.STATE:
        started = statetrial.start(view, store, efi, entry, tries, commit=commit)
        messages = [
            f"trial staged: {entry.filename} boots next, once (LoaderEntryOneShot); bootguard counts "
            f"{tries} tries in its state",
            f"golden is the default: every failed try lands on golden, whose early-boot step counts it "
            f"and arms the next try; after {tries} failed tries the host stays on golden",
        ]
    else:
        started = fallback.start_trial(view, store, efi, entry, tries, commit=commit)
        messages = [
            f"trial staged: {entry.filename} boots next with {tries} tries ({started.copy_filename})",
            f"after {tries} failed boots the loader falls back to golden ({fallback.GOLDEN_STEM}.conf)",
        ]
    if not view.version.known:
        messages.append(
            f"warning: unknown loader version {view.vars.info!r}; using the default-glob mechanism"
        )
    return {
        "entry": entry.filename,
        "copy": started.copy_filename,
        "tries": tries,
        "backend": chosen.value,
        "commit": commit,
        "messages": messages,
    }


def grub_pin_golden(
    paths: HostPaths, env_path: str, entry: str, token: str, cmdline: str, *, commit: str | None = None
) -> dict[str, object]:
    from bootguard.seams.grubenv import GrubEnv
    from bootguard.services import grubtrial

    pinned = grubtrial.pin_golden(
        GrubEnv(env_path),
        StateStore(paths.state_dir),
        entry,
        token,
        grubtrial.read_cmdline(cmdline),
        commit=commit,
    )
    return {
        "golden": pinned.filename,
        "match": token,
        "commit": pinned.commit,
        "messages": [f"golden pinned: GRUB entry {entry}", f"GRUB's saved_entry is {entry}"],
    }


def grub_trial(
    paths: HostPaths, env_path: str, entry: str, token: str, tries: int, *, commit: str | None = None
) -> dict[str, object]:
    from bootguard.seams.grubenv import GrubEnv
    from bootguard.services import grubtrial

    grubtrial.start(GrubEnv(env_path), StateStore(paths.state_dir), entry, token, tries, commit=commit)
    return {
        "entry": entry,
        "tries": tries,
        "commit": commit,
        "backend": Backend.STATE.value,
        "messages": [
            f"trial staged: GRUB entry {entry} boots next, once (next_entry); bootguard counts {tries} tries",
            "golden stays GRUB's saved_entry: every failed try lands on golden, whose early-boot step "
            f"counts it and arms the next try; after {tries} failed tries the host stays on golden",
        ],
    }


def grub_mark(paths: HostPaths, env_path: str, good: bool, cmdline: str) -> dict[str, object]:
    from bootguard.seams.grubenv import GrubEnv
    from bootguard.services import grubtrial

    messages = grubtrial.verdict(
        GrubEnv(env_path), StateStore(paths.state_dir), good, grubtrial.read_cmdline(cmdline)
    )
    return {"verb": "good" if good else "bad", "messages": messages}
