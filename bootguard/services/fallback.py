"""The trial/fallback mechanism: how a new generation is tried and how the loader falls back to golden.

Why this design (proven on the real systemd-boot 252, 254, 257.13 and 262.1 binaries by
tests/vm/test_loader_fallback.py): bootguard writes two entries of its own next to the user's,
`bootguard-golden.conf` (a copy of golden) and `bootguard-trial+N.conf` (a counted copy of the trial),
and sets the LoaderEntryDefault EFI variable to the glob `bootguard-*`, which matches those two and
nothing else. systemd-boot takes the first match in its sort order, and every version sorts entries
with no tries left last. The copies carry `sort-key`/`version` lines and names that put the trial
first on every sort criterion. So while the trial has tries left it is booted; once the loader's own
counter reaches zero the trial sorts last and golden is the first match — even when the trial never
ran a line of bootguard (kernel panic). The user's entries are never renamed or edited, and the glob
does not depend on the id scheme (counter kept in ids before 257.13, stripped after), unlike an exact
id in LoaderEntryDefault (which loops forever on a bad trial on 257/262) or a glob over the counter
(which never matches on 257.13+), or `preferred` (262 only).
"""

from __future__ import annotations

import time

from bootguard.errors import ReadOnlyError, RefusedError
from bootguard.model.counter import CountedName
from bootguard.model.entry import BootEntry, EntryStatus, EntryType
from bootguard.model.events import Event, EventKind
from bootguard.model.loader import next_boot_with
from bootguard.model.state import Trial
from bootguard.seams import esp as esp_seam

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from bootguard.model.state import State
    from bootguard.seams.efivars import EfiVars
    from bootguard.seams.esp import PartitionRoot
    from bootguard.seams.staging import Staging
    from bootguard.seams.statestore import StateStore
    from bootguard.services.bootview import BootView

PREFIX = "bootguard-"
GOLDEN_STEM = "bootguard-golden"
TRIAL_STEM = "bootguard-trial"
DEFAULT_GLOB = "bootguard-*"
DEFAULT_VAR = "LoaderEntryDefault"
# sort-key ascending and version descending both put the trial before golden.
_ROLE_KEYS = {GOLDEN_STEM: ("bootguard-1", "1"), TRIAL_STEM: ("bootguard-0", "2")}


FAILED_KEY = "failed_trials"  # State.extra: entries whose trial failed; not retried unless forced


def failed_trials(state: State) -> list[str]:
    value = state.extra.get(FAILED_KEY)
    return [str(v) for v in value] if isinstance(value, list) else []


def is_bootguard_copy(entry: BootEntry) -> bool:
    return entry.name.prefix.lower().startswith(PREFIX)


def is_golden_copy(entry: BootEntry) -> bool:
    return entry.name.prefix.lower() == GOLDEN_STEM


def is_trial_copy(entry: BootEntry) -> bool:
    return entry.name.prefix.lower() == TRIAL_STEM


def is_trial_copy_name(filename: str) -> bool:
    """Whether `filename` (under any counter) is bootguard's trial copy."""
    return parse_copy_name(filename).prefix.lower() == TRIAL_STEM


def render_copy(data: bytes, stem: str, original: str, *, keyed: bool = True) -> bytes:
    """A Type #1 entry's text re-keyed for its bootguard role; every other line is kept as it is.

    `keyed=False` leaves golden without a sort-key: it then sorts after every keyed entry (systemd-boot
    lists entries with a sort-key first), so a host that boots "the first entry" keeps booting it.
    """
    sort_key, version = _ROLE_KEYS[stem]
    role = "golden" if stem == GOLDEN_STEM else "trial"
    out = [f"# written by bootguard: {role} copy of {original}; do not edit".encode()]
    for line in data.splitlines():
        key = line.strip().split(None, 1)[0].lower() if line.strip() else b""
        if key in (b"sort-key", b"version"):
            continue
        title = b"title bootguard " + role.encode() + b": " + line.strip()[5:].strip()
        out.append(title if key == b"title" else line)
    out += [f"sort-key {sort_key}".encode()] if keyed else []
    out += [f"version {version}".encode()]
    return b"\n".join(out) + b"\n"


def _uki_stub(entry: BootEntry, stem: str, *, keyed: bool = True) -> bytes:
    # Type #2 golden: a Type #1 entry that chain-loads the UKI by path. Uncounted, so the systemd 259+
    # change of not counting `efi` entries (systemd issue 40405) does not matter for golden.
    sort_key, version = _ROLE_KEYS[stem]
    key_line = f"sort-key {sort_key}\n" if keyed else ""
    return (
        f"title bootguard golden: {entry.filename}\nefi /{entry.path}\n{key_line}version {version}\n".encode()
    )


def _golden_text(view: BootView, entry: BootEntry, keyed: bool) -> bytes:
    if entry.type is EntryType.TYPE2:
        return _uki_stub(entry, GOLDEN_STEM, keyed=keyed)
    return render_copy(_read(view, entry), GOLDEN_STEM, entry.filename, keyed=keyed)


def _golden_keyed(view: BootView, entry: BootEntry) -> bool:
    """Whether golden's copy may carry its sort-key: pinning must never change what boots next.

    On a host that boots "the first entry" (no default anywhere, e.g. Debian's layout with
    `sort-key debian`), a keyed golden copy would sort first and boot next; without its sort-key
    it sorts after the keyed entries. If even that changes the next boot, the pin is refused.
    """
    before = view.selection.entry
    rel = f"{esp_seam.ENTRIES_DIR}/{GOLDEN_STEM}.conf"
    for keyed in (True, False):
        copy = BootEntry.from_conf(rel, _golden_text(view, entry, keyed), entry.partition)
        after = next_boot_with(view.found, copy, view.conf, view.vars, view.version)
        if (after and after.path, after and after.partition) == (
            before and before.path,
            before and before.partition,
        ):
            return keyed
    raise RefusedError(
        f"pinning {entry.filename} would change what boots next (bootguard's golden entry would sort "
        f"first, and no default entry is set)",
        hint="set the default entry first (bootctl set-default ID, or `default` in loader/loader.conf)",
    )


def _read(view: BootView, entry: BootEntry) -> bytes:
    return esp_seam.read_entry(view.partition_of(entry), entry.path)  # bounded, regular files only


def _remove_copies(view: BootView, stem: str) -> list[str]:
    removed = []
    for e in view.found:
        if e.name.prefix.lower() == stem:
            esp_seam.remove_file(view.partition_of(e), e.path)
            removed.append(e.path)
    return removed


def remove_copies_if_writable(view: BootView, stem: str = TRIAL_STEM) -> tuple[list[str], str | None]:
    """As _remove_copies, but a read-only ESP leaves them (and says so) instead of failing: a trial
    counted by bootguard ends without touching the ESP, and no glob points at the stale copy then."""
    try:
        return _remove_copies(view, stem), None
    except ReadOnlyError as exc:
        return [], f"its copy stays on the read-only ESP ({exc.message})"


GOLDEN_DIR = "EFI/bootguard/golden"
_IMAGE_KEYS = (b"linux", b"initrd", b"devicetree", b"efi")


def own_images(part: PartitionRoot, data: bytes, undo: Staging) -> tuple[bytes, set[str]]:
    """Point image lines at copies under EFI/bootguard/golden, so that the installer's clean-up of
    EFI/nixos (configurationLimit) cannot make golden unbootable. Returns the names in use; the
    caller prunes the rest once the pin is committed (esp_seam.copy_image never overwrites)."""
    from bootguard.seams.staging import later

    kept: set[str] = set()
    out = []
    for line in data.splitlines():
        parts = line.strip().split(None, 1)
        if len(parts) == 2 and parts[0].lower() in _IMAGE_KEYS:
            value = parts[1].decode("utf-8", "surrogateescape").strip()
            rel, new = esp_seam.copy_image(part, value, GOLDEN_DIR, kept)
            if new:
                undo.push(f"remove {rel}", later(esp_seam.remove_file, part, rel))
            out.append(parts[0] + b" /" + rel.encode("utf-8", "surrogateescape"))
        else:
            out.append(line)
    return b"\n".join(out) + b"\n", kept


def _restore(part: PartitionRoot, rel: str, before: bytes | None) -> None:
    if before is None:
        esp_seam.remove_file(part, rel)
    else:
        esp_seam.write_file(part, rel, before)


def install_golden_copy(
    view: BootView,
    entry: BootEntry,
    *,
    copy_images: bool = True,
    commit: Callable[[], object] | None = None,
) -> str:
    """(Re)write `bootguard-golden.conf` on the partition that holds golden's kernel.

    `commit` (the state update) runs once the copy is complete; if it (or any copy) fails, the
    previous golden copy and images are put back: the host keeps its old configuration.
    """
    part = view.partition_of(entry)
    part.require_writable("write bootguard's golden entry")
    from bootguard.seams.staging import Staging  # writing commands only, not the early-boot path

    rel = f"{esp_seam.ENTRIES_DIR}/{GOLDEN_STEM}.conf"
    kept: set[str] | None = None
    with Staging() as undo:
        data = _golden_text(view, entry, _golden_keyed(view, entry))
        if copy_images and entry.type is EntryType.TYPE1:
            data, kept = own_images(part, data, undo)
        before = esp_seam.read_if_present(part, rel)
        undo.push(f"restore {rel}", lambda: _restore(part, rel, before))
        esp_seam.write_file(part, rel, data)
        if commit is not None:
            commit()
    for e in view.found:  # a stale golden copy on the other partition would also match the glob
        if is_golden_copy(e) and e.partition is not entry.partition:
            esp_seam.remove_file(view.partition_of(e), e.path)
    if kept is not None:
        esp_seam.prune(part, GOLDEN_DIR, kept)
    return rel


def _write_trial_copy(view: BootView, entry: BootEntry, tries: int) -> str:
    part = view.partition_of(entry)
    part.require_writable("stage a trial")
    if entry.type is EntryType.TYPE2:
        rel = f"{esp_seam.UKI_DIR}/{TRIAL_STEM}+{tries}.efi"
        esp_seam.copy_file(part, entry.path, rel)
        return rel
    rel = f"{esp_seam.ENTRIES_DIR}/{TRIAL_STEM}+{tries}.conf"
    esp_seam.write_file(part, rel, render_copy(_read(view, entry), TRIAL_STEM, entry.filename))
    return rel


def check_trial_entry(state: State, entry: BootEntry) -> None:
    """What every trial needs, whoever counts it: a pinned golden, and an entry worth trying."""
    if state.golden is None:
        raise RefusedError(
            "no golden generation is pinned: a failed trial would have nothing to fall back to",
            hint="pin one first: bootguard pin-golden",
        )
    if is_bootguard_copy(entry):
        raise RefusedError(f"{entry.path} is bootguard's own copy; name the original entry")
    if entry.filename == state.golden.filename:
        raise RefusedError(f"{entry.path} is golden already; a trial is for a new generation")
    if entry.status is EntryStatus.BAD:
        raise RefusedError(f"{entry.path} is marked bad; refusing to try it again")


def check_trial_candidate(view: BootView, state: State, entry: BootEntry) -> None:
    """A loader-counted trial also needs bootguard's golden copy: the glob's fallback."""
    check_trial_entry(state, entry)
    if not any(is_golden_copy(e) for e in view.found):
        raise RefusedError(
            f"bootguard's golden entry is missing from {view.esp.root}",
            hint="re-pin golden (bootguard pin-golden) to rewrite it",
        )


def start_trial(
    view: BootView,
    store: StateStore,
    efi: EfiVars,
    entry: BootEntry,
    tries: int,
    *,
    commit: str | None = None,
) -> Trial:
    """Stage `entry` as a trial with `tries` tries; golden takes over when they are used up.

    Order: copy → state → LoaderEntryDefault → event; a failure at any step undoes the earlier ones,
    so the host keeps either its old configuration or the new one, never a mix (issue 15.4).
    """
    from bootguard.model.nixos import generation_of  # the `trial` command only, not early boot
    from bootguard.seams.staging import Staging, later

    state = store.load().state
    check_trial_candidate(view, state, entry)
    check_listed(view, entry)
    efi.require()
    before = efi.read_str(DEFAULT_VAR)
    saved = state.trial.saved_default if before == DEFAULT_GLOB and state.trial else before
    if before == DEFAULT_GLOB and not state.trial:
        saved = None  # restaging: keep what the user had before the first trial
    with Staging() as undo:
        _replace_trial_copies(view, undo)
        rel = _write_trial_copy(view, entry, tries)
        undo.push(f"remove {rel}", later(esp_seam.remove_file, view.partition_of(entry), rel))
        trial = Trial(
            entry_id=entry.id(view.scheme),
            filename=entry.filename,
            copy_filename=rel.rpartition("/")[2],
            tries=tries,
            started_at=time.time(),
            generation=generation_of(entry),
            saved_default=saved,
            commit=commit,
        )
        store.update(lambda s: s.evolve(trial=trial, halted=None))
        undo.push(
            "restore the state",
            later(store.update, lambda s: s.evolve(trial=state.trial, halted=state.halted)),
        )
        efi.write_str(DEFAULT_VAR, DEFAULT_GLOB)
        undo.push(f"restore {DEFAULT_VAR}", later(put_var, efi, DEFAULT_VAR, before))
        store.append_event(
            Event.new(
                EventKind.TRIAL_STARTED,
                f"{entry.filename} staged as a trial with {tries} tries; golden is {state.golden.filename}"
                if state.golden
                else f"{entry.filename} staged",
                entry=entry.filename,
                data={"tries": tries, "copy": rel, "commit": commit},
            )
        )
    return trial


def _replace_trial_copies(view: BootView, undo: Staging) -> None:
    """Remove earlier trial copies, keeping their text to put back if staging fails."""
    from bootguard.seams.staging import later

    for old in (e for e in view.found if is_trial_copy(e)):
        part = view.partition_of(old)
        data = esp_seam.read_if_present(part, old.path) if old.type is EntryType.TYPE1 else None
        esp_seam.remove_file(part, old.path)
        if data is not None:
            undo.push(f"restore {old.path}", later(esp_seam.write_file, part, old.path, data))


def put_var(efi: EfiVars, name: str, value: str | None) -> None:
    if value is None:
        efi.delete(name)
    else:
        efi.write_str(name, value)


def check_listed(view: BootView, entry: BootEntry) -> None:
    """Refuse a trial of an entry systemd-boot would not list (it would never boot: golden would)."""
    if entry.type is EntryType.TYPE1 and not entry.loadable:
        why = "; ".join(entry.problems[:3]) or "no linux/efi line, or a file name the loader rejects"
        raise RefusedError(
            f"{entry.path} is not an entry systemd-boot would list ({why}); refusing to stage it as a trial",
            hint="bootguard list shows each entry's problems",
        )


def trial_copy(view: BootView) -> BootEntry | None:
    return next((e for e in view.found if is_trial_copy(e)), None)


def golden_copy(view: BootView) -> BootEntry | None:
    return next((e for e in view.found if is_golden_copy(e)), None)


def parse_copy_name(filename: str) -> CountedName:
    suffix = filename[-5:] if filename.lower().endswith(".conf") else filename[-4:]
    return CountedName.parse(filename, suffix)
