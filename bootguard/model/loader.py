"""A model of systemd-boot's decisions: entry order, the entry it boots next, and what that boot changes.

Sources: `boot_entry_compare`, `config_select_default_entry`, `config_load_defaults`,
`boot_entry_bump_counters` and `save_selected_entry` in systemd's src/boot/boot.c, the Boot Loader
Interface, and real boots of systemd-boot 252, 254, 257.13 and 262.1 under OVMF (see
shared/reference/vm-harness.md). What differs by version:

| systemd-boot | ids (IdScheme) | `preferred` | `efi` entries counted |
|---|---|---|---|
| 252 - 257.12 | COUNTER_KEPT: file name lowercased, counter included | no | yes |
| 257.13 - 257.x | STRIPPED_KEEP_CASE (backport of PR 38897) | no | yes |
| 258 | STRIPPED_LOWER | no | yes |
| 259 | STRIPPED_LOWER | no | no (issue 40405) |
| 260+ | STRIPPED_LOWER | yes (PR 40324) | no |

Only 252, 254, 257.13 and 262.1 were observed; 257.0-257.12 are assumed to be as 252 (the backport
landed in the 257 stable series, exact point release unverified) and 258-261 as 262 (258.x may keep
case like 257.13 did; unverified). Versions before 252 parsed counters differently and are not modelled.

Default selection, first match in sorted order wins:
LoaderEntryOneShot -> [260+: LoaderEntryPreferred, then loader.conf `preferred`, both skipping bad
entries] -> LoaderEntryDefault (or LoaderEntryLastBooted when it is `@saved`) -> loader.conf `default`
(or LoaderEntryLastBooted for `@saved`) -> the first entry. A matching one-shot or default selects a
*bad* entry too (systemd issues 31215, 35529, 40192); bad entries only sort last.
LoaderEntrySysFail (258+, firmware-reported failures) is not modelled.
"""

from __future__ import annotations

import enum
from functools import cmp_to_key

from bootguard.model._frozen import Frozen
from bootguard.model.entry import BootEntry, EntryStatus, IdScheme, LoaderKind, parse_key_values
from bootguard.model.glob import ascii_lower, efi_fnmatch
from bootguard.model.vercmp import strverscmp_improved

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

__all__ = [
    "BootSimulation",
    "IdScheme",
    "LoaderConf",
    "LoaderVars",
    "LoaderVersion",
    "Selection",
    "SelectionReason",
    "compare_entries",
    "select_next",
    "simulate_boot",
    "sort_entries",
]

_SAVED = "@saved"


# --- version ---------------------------------------------------------------------------------------


class LoaderVersion(Frozen):
    """The running systemd-boot version, from the LoaderInfo variable (`systemd-boot 252.39-1~deb12u2`)."""

    __slots__ = ("known", "major", "minor", "raw")
    raw: str | None
    major: int
    minor: int
    known: bool

    @classmethod
    def parse(cls, loader_info: str | None) -> LoaderVersion:
        """Parse LoaderInfo; anything but `systemd-boot MAJOR[.MINOR]…` gives `known=False`. Never raises."""
        new = object.__new__(cls)
        text = (loader_info or "").strip()
        product, _, version = text.partition(" ")
        major, rest = _leading_int(version)
        minor, _ = _leading_int(rest[1:]) if rest.startswith(".") else (0, rest)
        known = product == "systemd-boot" and major is not None
        new._init(
            raw=loader_info, major=major if known else 0, minor=(minor or 0) if known else 0, known=known
        )
        return new

    @classmethod
    def of(cls, major: int, minor: int = 0) -> LoaderVersion:
        """A known version by number (tests, demos, `--loader-version`)."""
        return cls.parse(f"systemd-boot {major}.{minor}")

    def at_least(self, major: int, minor: int = 0) -> bool:
        return self.known and (self.major, self.minor) >= (major, minor)

    def id_scheme(self) -> IdScheme:
        """How this version names entries. Unknown loaders get the current upstream scheme."""
        if not self.known or self.major >= 258:
            return IdScheme.STRIPPED_LOWER
        if self.at_least(257, 13):
            return IdScheme.STRIPPED_KEEP_CASE
        return IdScheme.COUNTER_KEPT

    def supports_preferred(self) -> bool:
        """Whether loader.conf `preferred` and LoaderEntryPreferred are honoured (260+); False if unknown."""
        return self.at_least(260)

    def counts_efi_entries(self) -> bool:
        """Whether Type #1 entries with an `efi` line are counted (not since 259: issue 40405).

        Unknown loaders are assumed to count them: predicting a rename that does not happen is
        harmless because bootguard blesses by LoaderBootCountPath, never by prediction.
        """
        return not self.at_least(259)

    def __str__(self) -> str:
        return f"systemd-boot {self.major}.{self.minor}" if self.known else f"unknown loader ({self.raw!r})"


def _leading_int(text: str) -> tuple[int | None, str]:
    digits = 0
    while digits < len(text) and "0" <= text[digits] <= "9" and digits < 9:
        digits += 1
    return (int(text[:digits]) if digits else None), text[digits:]


# --- loader.conf -----------------------------------------------------------------------------------


class LoaderConf(Frozen):
    """loader/loader.conf as systemd-boot reads it (last line of a key wins; problems recorded)."""

    __slots__ = ("default", "preferred", "problems", "settings", "timeout")
    default: str | None
    preferred: str | None
    timeout: str | None  # as written: seconds, menu-force, menu-hidden or menu-disabled
    settings: tuple[tuple[str, str], ...]  # every key/value line in file order
    problems: tuple[str, ...]

    @classmethod
    def parse(cls, data: bytes) -> LoaderConf:
        """Parse the file's bytes. Never raises."""
        problems: list[str] = []
        values: dict[str, str | None] = {"default": None, "preferred": None, "timeout": None}
        settings: list[tuple[str, str]] = []
        for number, key, value in parse_key_values(data, problems):
            settings.append((key, value))
            if key in ("default", "preferred") and value.startswith("@") and ascii_lower(value) != _SAVED:
                problems.append(
                    f"line {number}: unsupported special entry id {value[:40]!r} in {key!r} is ignored"
                )
                continue
            if key in values:
                values[key] = value
        new = object.__new__(cls)
        new._init(settings=tuple(settings), problems=tuple(problems), **values)
        return new

    @classmethod
    def empty(cls) -> LoaderConf:
        return cls.parse(b"")

    def get(self, key: str) -> str | None:
        """The last value of `key`, or None."""
        return next((v for k, v in reversed(self.settings) if k == key), None)


# --- EFI variables ---------------------------------------------------------------------------------


class LoaderVars(Frozen):
    """The Boot Loader Interface variables as plain values (None: variable absent)."""

    __slots__ = (
        "boot_count_path",
        "device_part_uuid",
        "entries",
        "entry_default",
        "entry_last_booted",
        "entry_oneshot",
        "entry_preferred",
        "entry_selected",
        "features",
        "info",
        "warnings",
    )
    boot_count_path: str | None  # LoaderBootCountPath, e.g. \loader\entries\a+1-1.conf
    entry_selected: str | None  # LoaderEntrySelected
    entries: tuple[str, ...]  # LoaderEntries, in menu order
    entry_default: str | None  # LoaderEntryDefault
    entry_oneshot: str | None  # LoaderEntryOneShot
    entry_preferred: str | None  # LoaderEntryPreferred (260+)
    entry_last_booted: str | None  # LoaderEntryLastBooted (`@saved`)
    info: str | None  # LoaderInfo
    features: int | None  # LoaderFeatures
    device_part_uuid: str | None  # LoaderDevicePartUUID
    warnings: tuple[str, ...]  # variables that were malformed and are treated as absent

    def __init__(
        self,
        *,
        boot_count_path: str | None = None,
        entry_selected: str | None = None,
        entries: Iterable[str] = (),
        entry_default: str | None = None,
        entry_oneshot: str | None = None,
        entry_preferred: str | None = None,
        entry_last_booted: str | None = None,
        info: str | None = None,
        features: int | None = None,
        device_part_uuid: str | None = None,
        warnings: Iterable[str] = (),
    ) -> None:
        self._init(
            boot_count_path=boot_count_path,
            entry_selected=entry_selected,
            entries=tuple(entries),
            entry_default=entry_default,
            entry_oneshot=entry_oneshot,
            entry_preferred=entry_preferred,
            entry_last_booted=entry_last_booted,
            info=info,
            features=features,
            device_part_uuid=device_part_uuid,
            warnings=tuple(warnings),
        )

    @classmethod
    def empty(cls) -> LoaderVars:
        return cls()


# --- order -----------------------------------------------------------------------------------------


def _cmp(x: int, y: int) -> int:
    return (x > y) - (x < y)


def _strcmp16(a: str | None, b: str | None) -> int:
    """systemd-boot's strcmp16: NULL sorts before any string; UCS-2 code units (no astral characters)."""
    if a is None or b is None:
        return _cmp(a is not None, b is not None)
    a, b = _ucs2(a), _ucs2(b)
    return (a > b) - (a < b)


def _ucs2(s: str) -> str:
    # systemd-boot converts UTF-8 to UCS-2 and drops what does not fit (astral characters, surrogates).
    if s.isascii():
        return s
    return "".join(c for c in s if ord(c) < 0xD800 or 0xE000 <= ord(c) <= 0xFFFF)


def compare_entries(a: BootEntry, b: BootEntry, scheme: IdScheme) -> int:
    """systemd-boot's `boot_entry_compare`: negative when `a` is listed before `b`."""
    a_left, b_left = a.tries_left, b.tries_left
    r = _cmp(a_left == 0, b_left == 0)  # bad entries last
    if r:
        return r
    r = _cmp(a.sort_key is None, b.sort_key is None)  # entries with a sort-key first
    if r:
        return r
    if a.sort_key is not None and b.sort_key is not None:
        r = _strcmp16(a.sort_key, b.sort_key) or _strcmp16(a.machine_id, b.machine_id)
        if r:
            return r
        r = -strverscmp_improved(a.version, b.version)  # newest version first
        if r:
            return r
    r = -strverscmp_improved(a.id(scheme), b.id(scheme))  # newest id first
    if r or a_left is None or b_left is None:
        return r
    return -_cmp(a_left, b_left) or _cmp(a.tries_done or 0, b.tries_done or 0)


def sort_entries(entries: Iterable[BootEntry], scheme: IdScheme) -> list[BootEntry]:
    """The entries in systemd-boot's menu order (stable: ties keep the given order)."""

    def by_menu_position(a: BootEntry, b: BootEntry) -> int:
        return compare_entries(a, b, scheme)

    return sorted(entries, key=cmp_to_key(by_menu_position))


# --- selection -------------------------------------------------------------------------------------


class SelectionReason(enum.Enum):
    ONESHOT = "oneshot"  # LoaderEntryOneShot (read once, then deleted by the loader)
    EFI_PREFERRED = "efi-preferred"  # LoaderEntryPreferred (260+, skips bad entries)
    CONF_PREFERRED = "conf-preferred"  # loader.conf `preferred` (260+, skips bad entries)
    EFI_DEFAULT = "efi-default"  # LoaderEntryDefault
    SAVED = "saved"  # `@saved`: LoaderEntryLastBooted
    CONF_DEFAULT = "conf-default"  # loader.conf `default`
    FIRST_ENTRY = "first-entry"  # nothing matched: first entry in sort order
    NONE = "none"  # no entry the loader would list


class Selection(Frozen):
    """Which entry the loader boots next, why, and a sentence for people."""

    __slots__ = ("detail", "entry", "entry_id", "pattern", "reason")
    entry: BootEntry | None
    reason: SelectionReason
    detail: str
    entry_id: str | None  # the entry's id under the loader's IdScheme
    pattern: str | None  # the pattern that matched, as compared (folded)

    def __init__(
        self,
        entry: BootEntry | None,
        reason: SelectionReason,
        detail: str,
        entry_id: str | None = None,
        pattern: str | None = None,
    ) -> None:
        self._init(entry=entry, reason=reason, detail=detail, entry_id=entry_id, pattern=pattern)


class _Step(Frozen):
    __slots__ = ("pattern", "reason", "skip_bad", "source")
    reason: SelectionReason
    pattern: str | None
    source: str
    skip_bad: bool

    def __init__(
        self, reason: SelectionReason, pattern: str | None, source: str, skip_bad: bool = False
    ) -> None:
        self._init(reason=reason, pattern=pattern, source=source, skip_bad=skip_bad)


def _fold(value: str | None) -> str | None:
    return None if value is None else ascii_lower(value)


def _steps(conf: LoaderConf, lvars: LoaderVars, version: LoaderVersion) -> list[_Step]:
    """The patterns systemd-boot tries, in order (`config_select_default_entry`)."""
    steps = [_Step(SelectionReason.ONESHOT, _fold(lvars.entry_oneshot), "LoaderEntryOneShot")]
    if version.supports_preferred():
        steps.append(
            _Step(SelectionReason.EFI_PREFERRED, _fold(lvars.entry_preferred), "LoaderEntryPreferred", True)
        )
        steps.append(
            _Step(SelectionReason.CONF_PREFERRED, _fold(conf.preferred), "loader.conf 'preferred'", True)
        )
    efi_default = _fold(lvars.entry_default)
    saved_efi = efi_default == _SAVED
    saved_conf = _fold(conf.default) == _SAVED
    # LoaderEntryLastBooted is read after systemd-boot folds the other patterns, so it is not folded.
    if saved_efi:
        steps.append(
            _Step(
                SelectionReason.SAVED,
                lvars.entry_last_booted,
                "LoaderEntryLastBooted (LoaderEntryDefault @saved)",
            )
        )
    else:
        steps.append(_Step(SelectionReason.EFI_DEFAULT, efi_default, "LoaderEntryDefault"))
    if saved_conf:
        if not saved_efi:
            steps.append(
                _Step(
                    SelectionReason.SAVED,
                    lvars.entry_last_booted,
                    "LoaderEntryLastBooted (loader.conf default @saved)",
                )
            )
    else:
        steps.append(_Step(SelectionReason.CONF_DEFAULT, _fold(conf.default), "loader.conf 'default'"))
    return [s for s in steps if s.pattern is not None]


def _listed(entries: Iterable[BootEntry], scheme: IdScheme) -> list[BootEntry]:
    return sort_entries((e for e in entries if e.loadable), scheme)


def _scheme_note(version: LoaderVersion) -> str:
    scheme = version.id_scheme()
    if scheme is IdScheme.COUNTER_KEPT:
        return f"on {version} ids keep the counter, so an exact id stops matching once the entry is renamed"
    return (
        f"on {version} ids drop the counter, so the pattern keeps matching after the entry goes bad "
        "(systemd issue 40192)"
    )


def _explain_match(step: _Step, entry: BootEntry, entry_id: str, version: LoaderVersion, skipped: int) -> str:
    text = f"{step.source} {step.pattern!r} matches id {entry_id!r} ({entry.path})"
    if skipped:
        text += f"; {skipped} matching bad entr{'y was' if skipped == 1 else 'ies were'} skipped"
    if entry.status is EntryStatus.BAD:
        text += (
            f"; the entry is bad (0 tries left) but {step.source} selects it anyway: {_scheme_note(version)}"
        )
    return text


def select_next(
    entries: Sequence[BootEntry], conf: LoaderConf, vars: LoaderVars, version: LoaderVersion
) -> Selection:
    """Which entry systemd-boot `version` boots next without user input, and why."""
    scheme = version.id_scheme()
    listed = _listed(entries, scheme)
    hidden = len(entries) - len(listed)
    if not listed:
        return Selection(None, SelectionReason.NONE, f"no bootable entries ({hidden} hidden by problems)")
    ids = [e.id(scheme) for e in listed]
    notes: list[str] = []  # why earlier steps did not decide, for the detail sentence
    if not version.supports_preferred() and (conf.preferred is not None or vars.entry_preferred is not None):
        notes.append(f"'preferred' is ignored by {version} (needs 260+)")
    for step in _steps(conf, vars, version):
        assert step.pattern is not None
        hits = [i for i, entry_id in enumerate(ids) if efi_fnmatch(step.pattern, entry_id)]
        usable = [i for i in hits if not (step.skip_bad and listed[i].status is EntryStatus.BAD)]
        if usable:
            i = usable[0]
            detail = _explain_match(step, listed[i], ids[i], version, len(hits) - len(usable))
            return Selection(listed[i], step.reason, "; ".join([*notes, detail]), ids[i], step.pattern)
        bad_note = f" (only bad entries: {len(hits)})" if hits else ""
        notes.append(f"{step.source} {step.pattern!r} matches no usable entry{bad_note}")
    first = listed[0]
    detail = "; ".join([*notes, f"the first entry in sort order boots: {ids[0]!r} ({first.path})"])
    if first.status is EntryStatus.BAD:
        detail += "; every entry is bad, so the first one boots and is renamed again"
    elif any(e.status is EntryStatus.BAD for e in listed):
        detail += "; bad entries sort last"
    return Selection(first, SelectionReason.FIRST_ENTRY, detail, ids[0], None)


# --- one boot --------------------------------------------------------------------------------------


class BootSimulation(Frozen):
    """What one automatic boot by systemd-boot does: the choice, the rename and the variables after it."""

    __slots__ = ("boot_count_path", "entries", "note", "renamed_from", "renamed_to", "selection", "vars")
    selection: Selection
    renamed_from: str | None  # path relative to the partition root
    renamed_to: str | None
    boot_count_path: str | None  # LoaderBootCountPath after the boot, e.g. \loader\entries\a+1-1.conf
    vars: LoaderVars  # the variables the booted OS sees
    entries: tuple[BootEntry, ...]  # the entries after the rename (input order)
    note: str  # a sentence on counting: renamed, not counted, rename failed

    def __init__(
        self,
        selection: Selection,
        vars: LoaderVars,
        entries: tuple[BootEntry, ...],
        *,
        note: str,
        renamed_from: str | None = None,
        renamed_to: str | None = None,
        boot_count_path: str | None = None,
    ) -> None:
        self._init(
            selection=selection,
            renamed_from=renamed_from,
            renamed_to=renamed_to,
            boot_count_path=boot_count_path,
            vars=vars,
            entries=entries,
            note=note,
        )


def _counted_by(entry: BootEntry, version: LoaderVersion) -> bool:
    if entry.counter is None:
        return False
    return entry.loader_kind is not LoaderKind.EFI or version.counts_efi_entries()


def _saves_entry(conf: LoaderConf, lvars: LoaderVars) -> bool:
    """`save_selected_entry`: LoaderEntryLastBooted is written when `@saved` is in effect."""
    efi_default = _fold(lvars.entry_default)
    return efi_default == _SAVED or (efi_default is None and _fold(conf.default) == _SAVED)


def simulate_boot(
    entries: Sequence[BootEntry],
    conf: LoaderConf,
    vars: LoaderVars,
    version: LoaderVersion,
    *,
    rename_fails: bool = False,
) -> BootSimulation:
    """One boot without user input: select, rename a counted entry, set the loader's variables.

    `rename_fails` models a read-only ESP or a firmware FAT driver that cannot rename: systemd-boot
    then boots anyway and sets no LoaderBootCountPath (the boot is not counted; systemd issue 36170).
    A rename onto an existing file name (compared case-insensitively, as FAT does) fails the same way.
    LoaderEntries lists the model's entries only (systemd-boot adds its auto-* entries after them).
    """
    selection = select_next(entries, conf, vars, version)
    scheme = version.id_scheme()
    listed_ids = tuple(e.id(scheme) for e in _listed(entries, scheme))
    after = vars.evolve(
        entry_oneshot=None,  # systemd-boot deletes it as soon as it has read it
        boot_count_path=None,  # volatile: gone after the reset
        entries=listed_ids,
        entry_selected=selection.entry_id,
        info=version.raw if version.raw is not None else vars.info,
    )
    entry = selection.entry
    if entry is None:
        return BootSimulation(selection, after, tuple(entries), note="nothing boots")
    if _saves_entry(conf, vars):
        after = after.evolve(entry_last_booted=selection.entry_id)
    if not _counted_by(entry, version):
        why = "uncounted" if entry.counter is None else f"an 'efi' entry, which {version} does not count"
        return BootSimulation(selection, after, tuple(entries), note=f"{entry.path} boots {why}; no rename")
    new_path = entry.next_boot_path()
    assert new_path is not None
    clash = any(
        o is not entry and o.partition is entry.partition and ascii_lower(o.path) == ascii_lower(new_path)
        for o in entries
    )
    if rename_fails or clash:
        reason = f"{new_path} exists" if clash else "the rename failed"
        note = f"{reason}: systemd-boot boots {entry.path} uncounted and sets no LoaderBootCountPath"
        return BootSimulation(selection, after, tuple(entries), note=note)
    renamed = entry.renamed(new_path.rpartition("/")[2])
    boot_count_path = "\\" + new_path.replace("/", "\\")
    return BootSimulation(
        selection,
        after.evolve(boot_count_path=boot_count_path),
        tuple(renamed if o is entry else o for o in entries),
        note=f"{entry.path} renamed to {new_path} before booting",
        renamed_from=entry.path,
        renamed_to=new_path,
        boot_count_path=boot_count_path,
    )


def next_boot_with(
    entries: Iterable[BootEntry],
    added: BootEntry,
    conf: LoaderConf,
    lvars: LoaderVars,
    version: LoaderVersion,
) -> BootEntry | None:
    """The entry systemd-boot boots next once `added` is on disk (replacing a file at the same path)."""
    others = [e for e in entries if not (e.path == added.path and e.partition is added.partition)]
    ordered = sort_entries([*others, added], version.id_scheme())
    return select_next(ordered, conf, lvars, version).entry
