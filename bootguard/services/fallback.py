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

import os
import time

from bootguard.errors import NotFoundError, ReadOnlyError, RefusedError
from bootguard.model.counter import CountedName
from bootguard.model.entry import EntryStatus, EntryType
from bootguard.model.events import Event, EventKind
from bootguard.model.nixos import generation_of
from bootguard.model.state import Trial
from bootguard.seams import esp as esp_seam
from bootguard.seams import fs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from bootguard.model.entry import BootEntry
    from bootguard.model.state import State
    from bootguard.seams.efivars import EfiVars
    from bootguard.seams.esp import PartitionRoot
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


def render_copy(data: bytes, stem: str, original: str) -> bytes:
    """A Type #1 entry's text re-keyed for its bootguard role; every other line is kept as it is."""
    sort_key, version = _ROLE_KEYS[stem]
    role = "golden" if stem == GOLDEN_STEM else "trial"
    out = [f"# written by bootguard: {role} copy of {original}; do not edit".encode()]
    for line in data.splitlines():
        key = line.strip().split(None, 1)[0].lower() if line.strip() else b""
        if key in (b"sort-key", b"version"):
            continue
        title = b"title bootguard " + role.encode() + b": " + line.strip()[5:].strip()
        out.append(title if key == b"title" else line)
    out += [f"sort-key {sort_key}".encode(), f"version {version}".encode()]
    return b"\n".join(out) + b"\n"


def _uki_stub(entry: BootEntry, stem: str) -> bytes:
    # Type #2 golden: a Type #1 entry that chain-loads the UKI by path. Uncounted, so the systemd 259+
    # change of not counting `efi` entries (systemd issue 40405) does not matter for golden.
    sort_key, version = _ROLE_KEYS[stem]
    return (
        f"title bootguard golden: {entry.filename}\nefi /{entry.path}\n"
        f"sort-key {sort_key}\nversion {version}\n"
    ).encode()


def _read(view: BootView, entry: BootEntry) -> bytes:
    with open(view.partition_of(entry).join(entry.path), "rb") as f:
        return f.read()


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


def _copy_image(part: PartitionRoot, src_rel: str) -> str:
    """Copy one kernel/initrd/devicetree into bootguard's own directory; returns its new path."""
    name = src_rel.rstrip("/").rpartition("/")[2]
    dst_rel = f"{GOLDEN_DIR}/{name}"
    src, dst = part.join(src_rel.lstrip("/")), part.join(dst_rel)
    if not os.path.isfile(src):
        raise NotFoundError(
            f"golden's image {src_rel} is missing from {part.root}: golden would not boot",
            hint="pin an entry whose kernel and initrd are present",
        )
    if os.path.abspath(src) != os.path.abspath(dst):
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        fs.copy_durably(src, dst)
    return dst_rel


def own_images(part: PartitionRoot, data: bytes) -> bytes:
    """Point image lines at copies under EFI/bootguard/golden, so that the installer's clean-up of
    EFI/nixos (configurationLimit) cannot make golden unbootable; stale copies are removed."""
    kept: set[str] = set()
    out = []
    for line in data.splitlines():
        parts = line.strip().split(None, 1)
        if len(parts) == 2 and parts[0].lower() in _IMAGE_KEYS:
            rel = _copy_image(part, parts[1].decode("utf-8", "surrogateescape").strip())
            kept.add(rel.rpartition("/")[2])
            out.append(parts[0] + b" /" + rel.encode("utf-8", "surrogateescape"))
        else:
            out.append(line)
    directory = part.join(GOLDEN_DIR)
    for stale in set(os.listdir(directory) if os.path.isdir(directory) else ()) - kept:
        os.unlink(os.path.join(directory, stale))
    return b"\n".join(out) + b"\n"


def install_golden_copy(view: BootView, entry: BootEntry, *, copy_images: bool = True) -> str:
    """(Re)write `bootguard-golden.conf` on the partition that holds golden's kernel."""
    part = view.partition_of(entry)
    part.require_writable("write bootguard's golden entry")
    data = (
        _uki_stub(entry, GOLDEN_STEM)
        if entry.type is EntryType.TYPE2
        else render_copy(_read(view, entry), GOLDEN_STEM, entry.filename)
    )
    if copy_images and entry.type is EntryType.TYPE1:
        data = own_images(part, data)
    for e in view.found:  # a stale golden copy on the other partition would also match the glob
        if is_golden_copy(e) and e.partition is not entry.partition:
            esp_seam.remove_file(view.partition_of(e), e.path)
    rel = f"{esp_seam.ENTRIES_DIR}/{GOLDEN_STEM}.conf"
    esp_seam.write_file(part, rel, data)
    return rel


def _write_trial_copy(view: BootView, entry: BootEntry, tries: int) -> str:
    part = view.partition_of(entry)
    part.require_writable("stage a trial")
    if entry.type is EntryType.TYPE2:
        import shutil

        rel = f"{esp_seam.UKI_DIR}/{TRIAL_STEM}+{tries}.efi"
        tmp = part.join(rel) + ".tmp"
        shutil.copyfile(part.join(entry.path), tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        fs.rename_noreplace(tmp, part.join(rel))
        fs.syncfs(part.root)
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
    """Stage `entry` as a trial with `tries` tries; golden takes over when they are used up."""
    state = store.load().state
    check_trial_candidate(view, state, entry)
    efi.require()
    _remove_copies(view, TRIAL_STEM)
    rel = _write_trial_copy(view, entry, tries)
    saved = efi.read_str(DEFAULT_VAR)
    if saved == DEFAULT_GLOB:  # restaging: keep what the user had before the first trial
        saved = state.trial.saved_default if state.trial else None
    efi.write_str(DEFAULT_VAR, DEFAULT_GLOB)
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


def trial_copy(view: BootView) -> BootEntry | None:
    return next((e for e in view.found if is_trial_copy(e)), None)


def golden_copy(view: BootView) -> BootEntry | None:
    return next((e for e in view.found if is_golden_copy(e)), None)


def parse_copy_name(filename: str) -> CountedName:
    suffix = filename[-5:] if filename.lower().endswith(".conf") else filename[-4:]
    return CountedName.parse(filename, suffix)
