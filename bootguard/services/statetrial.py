"""Trials counted by bootguard itself (the STATE backend), for boots the loader cannot count.

When it is used: the ESP is read-only to the OS (no trial copy can be written, `bootguard trial`
picks this backend by itself), or to the firmware only — systemd-boot then boots the trial copy
without renaming it, so its counter never reaches zero and a failing trial would be booted forever;
the early-boot step notices the uncounted boot and converts the trial (`convert`).

How it works: golden is the loader's default (LoaderEntryDefault = golden's entry id, what
`bootctl set-default` writes) and every try of the trial is a one-shot boot (LoaderEntryOneShot, what
`bootctl set-oneshot` writes). Both live in NVRAM, which stays writable when the ESP is not, and
systemd-boot deletes the one-shot as soon as it has read it. Before a try is armed its number is
written to the state (`Trial.attempt`, the pending marker). Whatever ends the try badly — a kernel
panic before any bootguard code, an initrd failure, a hang reset by the watchdog, failed validation —
the next boot is golden. Golden's early-boot step finds the pending try without a good verdict, counts
the failure (`Trial.failures`), and either arms the next try and reboots, or, after the configured
number of failures, drops the trial: the host stays on golden, with the same events and status as a
loader-counted rollback.

Why not leave the trial as the default and switch to golden after N failures: a trial that dies
before the early-boot step runs (kernel panic, early initrd) would never be counted and would be booted
forever. With one-shot tries the loader itself lands on golden after every failure, counted or not.
"""

from __future__ import annotations

import time

from bootguard.errors import NotFoundError
from bootguard.model.events import Event, EventKind
from bootguard.model.state import Backend, Trial
from bootguard.services import fallback

TYPE_CHECKING = False
if TYPE_CHECKING:
    from bootguard.model.entry import BootEntry
    from bootguard.model.state import State
    from bootguard.seams.efivars import EfiVars
    from bootguard.seams.statestore import StateStore
    from bootguard.services.bootview import BootView

ONESHOT_VAR = "LoaderEntryOneShot"


def golden_target(view: BootView, state: State) -> BootEntry:
    """The entry the loader falls back to: bootguard's golden copy, else the pinned entry itself."""
    copy = fallback.golden_copy(view)
    if copy is not None:
        return copy
    g = state.golden
    hit = next((e for e in view.found if g is not None and e.filename == g.filename), None)
    if hit is None:
        raise NotFoundError(
            "neither bootguard's golden entry nor the pinned golden entry is on the ESP"
            if g
            else "no golden generation is pinned: a failed trial would have nothing to fall back to",
            hint="pin one first: bootguard pin-golden",
        )
    return hit


def trial_target(view: BootView, trial: Trial) -> BootEntry | None:
    """The entry each try boots: the trial copy of a converted trial, else the user's entry."""
    if trial.copy_filename:
        copy = fallback.trial_copy(view)
        if copy is not None:
            return copy
    return next((e for e in view.found if e.filename == trial.filename), None)


def is_trial_boot(view: BootView, trial: Trial | None) -> bool:
    """Whether this boot is a boot of the running trial (its copy or, for state trials, the entry)."""
    b = view.booted
    if b is None or trial is None:
        return False
    return fallback.is_trial_copy(b) or (trial.backend is Backend.STATE and b.filename == trial.filename)


def _saved_default(efi: EfiVars, state: State) -> str | None:
    saved = efi.read_str(fallback.DEFAULT_VAR)
    if saved is not None and saved.lower().startswith(fallback.PREFIX):
        # bootguard's own setting from an earlier trial: keep what the user had before that one
        return state.trial.saved_default if state.trial else None
    return saved


def arm_try(view: BootView, efi: EfiVars, state: State, trial: Trial) -> str:
    """Golden as the default, the trial as the next boot only (its try number is already in the
    state: the pending marker); returns the one-shot id."""
    target = trial_target(view, trial)
    if target is None:
        raise NotFoundError(f"the trial's entry {trial.filename} is gone from the ESP")
    make_golden_default(view, efi, state)
    oneshot = target.id(view.scheme)
    efi.write_str(ONESHOT_VAR, oneshot)
    return oneshot


def make_golden_default(view: BootView, efi: EfiVars, state: State) -> str:
    """LoaderEntryDefault = golden's id: whatever ends this boot badly, the next one is golden."""
    golden_id = golden_target(view, state).id(view.scheme)
    efi.write_str(fallback.DEFAULT_VAR, golden_id)
    return golden_id


def start(
    view: BootView,
    store: StateStore,
    efi: EfiVars,
    entry: BootEntry,
    tries: int,
    *,
    commit: str | None = None,
) -> Trial:
    """Stage `entry` as a trial whose `tries` tries bootguard counts; golden is the default throughout."""
    from bootguard.model.nixos import generation_of  # the `trial` command only, not early boot
    from bootguard.seams.staging import Staging, later

    state = store.load().state
    fallback.check_trial_entry(state, entry)
    golden = golden_target(view, state)
    efi.require()
    trial = Trial(
        entry_id=entry.id(view.scheme),
        filename=entry.filename,
        tries=tries,
        started_at=time.time(),
        generation=generation_of(entry),
        saved_default=_saved_default(efi, state),
        backend=Backend.STATE,
        attempt=1,
        commit=commit,
    )
    fallback.remove_copies_if_writable(view)  # an earlier loader-counted trial's copy is not this trial
    # The pending marker goes first: a one-shot boot that happens must always find its try recorded.
    # A later failure undoes the earlier steps (issue 15.4): the old configuration stays.
    with Staging() as undo:
        old_default, old_oneshot = efi.read_str(fallback.DEFAULT_VAR), efi.read_str(ONESHOT_VAR)
        store.update(lambda s: s.evolve(trial=trial, halted=None))
        undo.push(
            "restore the state",
            later(store.update, lambda s: s.evolve(trial=state.trial, halted=state.halted)),
        )
        undo.push(
            f"restore {fallback.DEFAULT_VAR}",
            later(fallback.put_var, efi, fallback.DEFAULT_VAR, old_default),
        )
        efi.write_str(fallback.DEFAULT_VAR, golden.id(view.scheme))
        undo.push(f"restore {ONESHOT_VAR}", later(fallback.put_var, efi, ONESHOT_VAR, old_oneshot))
        efi.write_str(ONESHOT_VAR, entry.id(view.scheme))
        store.append_event(
            Event.new(
                EventKind.TRIAL_STARTED,
                f"{entry.filename} staged as a trial with {tries} tries counted by bootguard "
                f"(each try is a one-shot boot; {golden.filename} is the default)",
                entry=entry.filename,
                data={"tries": tries, "backend": Backend.STATE.value, "commit": commit},
            )
        )
    return trial


class SdBootPort:
    """What the early-boot step changes on a systemd-boot host (GrubPort is GRUB's)."""

    def __init__(self, view: BootView, efi: EfiVars) -> None:
        self.view, self.efi = view, efi

    def golden_default(self, state: State) -> None:
        make_golden_default(self.view, self.efi, state)

    def arm_try(self, state: State, trial: Trial) -> None:
        arm_try(self.view, self.efi, state, trial)

    def remove_trial_copies(self) -> str | None:
        """Remove the trial copy; returns why it stays, when the ESP is read-only."""
        return fallback.remove_copies_if_writable(self.view)[1]

    def restore_default(self, saved: str | None) -> None:
        """Give the loader back the default the user had before the trial."""
        if saved is None:
            self.efi.delete(fallback.DEFAULT_VAR)
        else:
            self.efi.write_str(fallback.DEFAULT_VAR, saved)

    def restore_glob(self) -> None:
        self.efi.write_str(fallback.DEFAULT_VAR, fallback.DEFAULT_GLOB)

    def rewrite_golden_copy(self, state: State) -> None:
        g = state.golden
        entry = next((e for e in self.view.found if g and e.filename == g.filename), None)
        if entry is None:
            raise NotFoundError(f"golden entry {g.filename if g else '?'} is gone from the ESP")
        fallback.install_golden_copy(self.view, entry)
