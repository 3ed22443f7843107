"""`bootguard pin-golden`: choose the known-good generation the host falls back to.

Golden must be an entry that has proven itself: uncounted (blessed) and present. On NixOS it is also
protected from garbage collection and `configurationLimit` by a GC root pointing at its system
profile link (nixpkgs issues 549661 and 24158 are about losing exactly that entry).
"""

from __future__ import annotations

import os
import time

from bootguard.errors import NotFoundError, RefusedError
from bootguard.model.entry import EntryStatus
from bootguard.model.events import Event, EventKind
from bootguard.model.nixos import GCROOT, entries_for_generation, generation_of, system_link
from bootguard.model.state import Golden
from bootguard.services import fallback
from bootguard.services.bootview import require_entry

TYPE_CHECKING = False
if TYPE_CHECKING:
    from bootguard.model.entry import BootEntry
    from bootguard.seams.statestore import StateStore
    from bootguard.services.bootview import BootView


def choose(view: BootView, key: str | None, generation: int | None) -> BootEntry:
    """The entry to pin: named, by NixOS generation, or the one booted now."""
    if generation is not None:
        found = entries_for_generation(view.entries, generation)
        if not found:
            raise NotFoundError(f"no boot entry for NixOS generation {generation} on {view.esp.root}")
        return found[0]
    if key is not None:
        return require_entry(view, key)
    if view.booted is None:
        raise NotFoundError(
            "cannot tell which entry is booted now (no LoaderBootCountPath or LoaderEntrySelected)",
            hint="name the entry: bootguard pin-golden ENTRY",
        )
    return view.booted


def check_pinnable(entry: BootEntry) -> None:
    if fallback.is_bootguard_copy(entry):
        raise RefusedError(f"{entry.path} is bootguard's own copy; pin the original entry instead")
    if entry.status is EntryStatus.BAD:
        raise RefusedError(f"refusing to pin {entry.path} as golden: it is marked bad (no tries left)")
    if entry.status is EntryStatus.INDETERMINATE:
        raise RefusedError(
            f"refusing to pin {entry.path} as golden: it is still on trial "
            f"({entry.tries_left} tries left) and has not been blessed",
            hint="let the validator bless it first, or pin an already blessed entry",
        )


def _store_path(nix_root: str, generation: int) -> str | None:
    """The store path of a generation (what `system-N-link` points to), or None when not NixOS."""
    link = os.path.join(nix_root, system_link(generation))
    try:
        target = os.readlink(link)
    except OSError:
        return None
    # Profile links are relative (`system-7-link -> /nix/store/…` or `…-link -> system-7-link`).
    for _ in range(8):
        if target.startswith("/nix/store/"):
            return target
        link = os.path.join(os.path.dirname(link), target)
        try:
            target = os.readlink(link)
        except OSError:
            return None
    return None


def _gc_root(nix_root: str, generation: int) -> str | None:
    """Point the bootguard GC root at golden's store path, atomically; None when not NixOS.

    The root names the store path itself, not `system-N-link`: `nix-collect-garbage -d` deletes old
    profile links, which would leave a root to a link dangling and golden collectable.
    """
    store = _store_path(nix_root, generation)
    if store is None:
        return None
    link = os.path.join(nix_root, GCROOT)
    os.makedirs(os.path.dirname(link), exist_ok=True)
    tmp = f"{link}.tmp.{os.getpid()}"
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(store, tmp)
    os.replace(tmp, link)
    return link


def pin(
    view: BootView,
    store: StateStore,
    entry: BootEntry,
    *,
    nix_root: str = "/",
    clock: float | None = None,
    commit: str | None = None,
) -> Golden:
    """Record `entry` as golden, write its fallback copy and protect it from garbage collection."""
    check_pinnable(entry)
    generation = generation_of(entry)
    now = time.time() if clock is None else clock
    # A generation blessed as a trial keeps its commit: pinning it later need not name it again.
    known = store.load().state.running_commit(entry.filename)
    golden = Golden(
        entry_id=entry.id(view.scheme),
        filename=entry.filename,
        generation=generation,
        pinned_at=now,
        commit=commit or known,
    )
    gcroot = _gc_root(nix_root, generation) if generation is not None else None

    def record() -> None:  # the ESP copy is undone if the state or the event log cannot be written
        before = store.load().state
        store.update(lambda s: s.evolve(golden=golden, halted=None))
        try:
            store.append_event(
                Event.new(
                    EventKind.GOLDEN_PINNED,
                    f"golden is now {entry.filename}"
                    + (f" (NixOS generation {generation})" if generation else ""),
                    entry=entry.filename,
                    data={"generation": generation, "gcroot": gcroot, "commit": golden.commit},
                )
            )
        except BaseException:
            store.update(lambda s: s.evolve(golden=before.golden, halted=before.halted))
            raise

    fallback.install_golden_copy(view, entry, commit=record)
    return golden
