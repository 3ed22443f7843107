"""The boot loader's view of the world, gathered once: partitions, entries in systemd-boot order,
loader.conf, the loader's EFI variables, which entry is booted now and which boots next, and why.

Every read-only command (`list`, `status`) and every decision of the early-boot step starts here.
"""

from __future__ import annotations

import sys

from bootguard.errors import NotFoundError
from bootguard.model._frozen import Frozen
from bootguard.model.loader import (
    IdScheme,
    LoaderConf,
    LoaderVars,
    LoaderVersion,
    Selection,
    select_next,
    sort_entries,
)
from bootguard.seams import esp as esp_seam
from bootguard.seams.efivars import EfiVars

TYPE_CHECKING = False
if TYPE_CHECKING:
    from bootguard.model.entry import BootEntry
    from bootguard.seams.esp import PartitionRoot


def _stripped(name: str) -> str:
    """A file name or id with any counter removed, lowercased: what stays the same across renames."""
    from bootguard.model.counter import CountedName

    lowered = name.lower()
    for suffix in (".conf", ".efi"):
        if lowered.endswith(suffix):
            parsed = CountedName.parse(name, name[-len(suffix) :])
            return (parsed.prefix + parsed.suffix).lower()
    return lowered


def find_entry(
    entries: list[BootEntry] | tuple[BootEntry, ...], key: str, scheme: IdScheme
) -> BootEntry | None:
    """An entry by file name, by id in the loader's scheme, or by its counter-free name."""
    for e in entries:  # an exact file name wins over an id, which may match a counted twin
        if key in (e.filename, e.path):
            return e
    for e in entries:
        if e.id(scheme) == key:
            return e
    wanted = _stripped(key.rpartition("/")[2])
    matches = [e for e in entries if _stripped(e.filename) == wanted]
    return matches[0] if len(matches) == 1 else None


def require_entry(view: BootView, key: str) -> BootEntry:
    entry = find_entry(view.entries, key, view.scheme)
    if entry is None:
        raise NotFoundError(f"no boot entry {key!r} on {view.esp.root}", hint="see `bootguard list`")
    return entry


class HostPaths(Frozen):
    """Where a host keeps what bootguard reads and changes (the CLI's global options)."""

    __slots__ = ("efivars", "esp", "state_dir", "xbootldr")
    esp: str | None
    xbootldr: str | None
    efivars: str
    state_dir: str

    def __init__(self, *, esp: str | None, xbootldr: str | None, efivars: str, state_dir: str) -> None:
        self._init(esp=esp, xbootldr=xbootldr, efivars=efivars, state_dir=state_dir)

    def view(self) -> BootView:
        return BootView.gather(self.esp, self.xbootldr, self.efivars)


class BootView(Frozen):
    """A consistent snapshot of everything the loader decides on."""

    __slots__ = (
        "_memo",
        "booted",
        "conf",
        "efi_available",
        "esp",
        "found",
        "scheme",
        "vars",
        "version",
        "xbootldr",
    )
    esp: PartitionRoot
    xbootldr: PartitionRoot | None
    found: tuple[BootEntry, ...]  # as read from disk; `entries` is the loader's order
    conf: LoaderConf
    vars: LoaderVars
    efi_available: bool
    version: LoaderVersion
    scheme: IdScheme
    booted: BootEntry | None
    _memo: dict[str, object]  # sort order and selection, computed on first use (not in early boot)

    @classmethod
    def gather(
        cls,
        esp: str | None,
        xbootldr: str | None,
        efivars_dir: str,
        *,
        scheme: IdScheme | None = None,
        lazy: bool = False,
    ) -> BootView:
        """`lazy`: entry files are read when their contents are used (the early-boot step's view)."""
        esp_root, xroot = esp_seam.discover(esp, xbootldr)
        efi = EfiVars(efivars_dir)
        available = efi.available()
        loader_vars = efi.snapshot() if available else LoaderVars.empty()
        version = LoaderVersion.parse(loader_vars.info)
        id_scheme = scheme or version.id_scheme()
        found = tuple(esp_seam.scan(esp_root, lazy=lazy) + (esp_seam.scan(xroot, lazy=lazy) if xroot else []))
        view = cls.__new__(cls)
        view._init(
            esp=esp_root,
            xbootldr=xroot,
            found=found,
            conf=esp_seam.read_loader_conf(esp_root),
            vars=loader_vars,
            efi_available=available,
            version=version,
            scheme=id_scheme,
            booted=_booted(found, loader_vars, id_scheme),
            _memo={},
        )
        conf_problems = (p for p in view.conf.problems if p.startswith(esp_seam.LOADER_CONF))
        for line in (*loader_vars.warnings, *conf_problems):
            sys.stderr.write(f"bootguard: warning: {line}\n")  # malformed but not needed: tolerated
        return view

    @property
    def entries(self) -> tuple[BootEntry, ...]:
        """Entries in systemd-boot's order (sorting is the costly part of gathering: done on demand)."""
        if "entries" not in self._memo:
            self._memo["entries"] = tuple(sort_entries(self.found, self.scheme))
        return self._memo["entries"]  # type: ignore[return-value]

    @property
    def selection(self) -> Selection:
        """Which entry the loader boots next, and why."""
        if "selection" not in self._memo:
            self._memo["selection"] = select_next(list(self.entries), self.conf, self.vars, self.version)
        return self._memo["selection"]  # type: ignore[return-value]

    @property
    def counted(self) -> bool:
        """Whether this boot is being counted: systemd-boot sets LoaderBootCountPath only then."""
        return self.vars.boot_count_path is not None

    def partition_of(self, entry: BootEntry) -> PartitionRoot:
        if entry.partition is self.esp.kind or self.xbootldr is None:
            return self.esp
        return self.xbootldr


def _booted(entries: tuple[BootEntry, ...], v: LoaderVars, scheme: IdScheme) -> BootEntry | None:
    # LoaderBootCountPath names the file as it is now (after the loader's rename); it is the only
    # reliable key for counted boots. LoaderEntrySelected holds the id *before* the rename on
    # systemd < 257.13, so it is matched by its counter-free form (see vm-harness.md).
    if v.boot_count_path:
        name = v.boot_count_path.replace("\\", "/").rpartition("/")[2]
        hit = next((e for e in entries if e.filename == name), None)
        if hit is not None:
            return hit
    if v.entry_selected:
        return find_entry(entries, v.entry_selected, scheme)
    return None
