"""Boot Loader Specification entries (Type #1 `.conf` snippets and Type #2 UKIs) as systemd-boot sees them.

Parsing follows systemd-boot's `line_get_key_value` (src/boot/efi-string.c) so that what bootguard
lists is what the loader lists: lines end at LF or CR; blanks and tabs around a line are dropped;
`#` starts a comment only at the start of a line; the key ends at the first blank or tab; a line
without a value is ignored; a value wrapped in matching `"` or `'` is unquoted; keys are
case-sensitive; the file ends at the first NUL byte (C string). Repeated `title`/`version`/… lines:
the last wins; `initrd` and `options` lines accumulate. A file mixing `linux`, `efi` and `uki`
is dropped by systemd-boot ("LOADER_BAD"), as is one with none of them.

Nothing here crashes on junk: invalid UTF-8, binary bytes, huge or empty files become entries with
`problems` (one sentence each), and `loadable` says whether systemd-boot would list the entry at all.
Values are decoded as UTF-8 with U+FFFD for invalid bytes (systemd-boot skips those bytes; only
entries that already carry a problem can differ).
"""

from __future__ import annotations

from bootguard._vocab import Vocab
from bootguard.model._frozen import Frozen
from bootguard.model.counter import CountedName, Counter
from bootguard.model.glob import ascii_lower

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    # An entry's contents by file name: (bytes, or b"" with the sentence saying why they are ignored).
    BodyReader = Callable[[str], tuple[bytes, str | None]]

# Callers refuse to read entry files larger than this (a real snippet is well under 4 KiB).
MAX_ENTRY_BYTES = 64 * 1024
MAX_PROBLEMS = 16

TYPE1_DIR = "loader/entries"
TYPE2_DIR = "EFI/Linux"
TYPE1_SUFFIX = ".conf"
TYPE2_SUFFIX = ".efi"

_KNOWN_KEYS = frozenset(
    {
        "title",
        "version",
        "machine-id",
        "sort-key",
        "linux",
        "initrd",
        "efi",
        "uki",
        "uki-url",
        "options",
        "devicetree",
        "devicetree-overlay",
        "architecture",
        "profile",
    }
)


class EntryType(Vocab):
    TYPE1 = "type1"  # loader/entries/*.conf
    TYPE2 = "type2"  # EFI/Linux/*.efi (unified kernel image)


class EntryStatus(Vocab):
    GOOD = "good"  # no counter (never counted, or blessed)
    INDETERMINATE = "indeterminate"  # counted, tries left > 0
    BAD = "bad"  # counted, no tries left


class Partition(Vocab):
    ESP = "esp"
    XBOOTLDR = "xbootldr"


class LoaderKind(Vocab):
    """How systemd-boot starts the entry (its LoaderType)."""

    LINUX = "linux"
    EFI = "efi"
    UKI = "uki"
    UKI_URL = "uki-url"
    TYPE2 = "type2"


class IdScheme(Vocab):
    """How a systemd-boot version derives entry ids (see `bootguard.model.loader.LoaderVersion.id_scheme`).

    The id is what LoaderEntrySelected, LoaderEntries and LoaderEntryLastBooted hold and what
    `default`/one-shot/preferred patterns are matched against.
    """

    # systemd-boot < 257.13 (Debian 252, 254): the whole file name, ASCII-lowercased, counter
    # included, so the id changes with every counted boot. Names the file *before* the rename.
    COUNTER_KEPT = "counter-kept"
    # 257.13 (backport of systemd PR 38897 for issue 38813): counter stripped (name before `+` plus
    # the literal `.conf`/`.efi`), case kept as in the file name.
    STRIPPED_KEEP_CASE = "stripped-keep-case"
    # 258+ (seen on 262.1): counter stripped and ASCII-lowercased.
    STRIPPED_LOWER = "stripped-lower"


def _limited(problems: list[str], text: str) -> None:
    if len(problems) < MAX_PROBLEMS:
        problems.append(text)
    elif len(problems) == MAX_PROBLEMS:
        problems.append("further problems not shown")


def _decode(raw: bytes, what: str, problems: list[str]) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        _limited(problems, f"{what}: invalid UTF-8 (systemd-boot drops the invalid bytes)")
        return raw.decode("utf-8", "replace")


def _logical_lines(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(line number, stripped line) for each non-empty, non-comment line; CR also ends a line."""
    for number, physical in enumerate(data.split(b"\n"), start=1):
        for raw in physical.split(b"\r"):
            line = raw.strip(b" \t")
            if line and not line.startswith(b"#"):
                yield number, line


def parse_key_values(data: bytes, problems: list[str]) -> list[tuple[int, str, str]]:
    """(line number, key, value) triples of a BLS-style file, as systemd-boot reads them.

    Shared by Type #1 entries and loader.conf. Appends one sentence per oddity to `problems`.
    Line numbers count LF-terminated lines.
    """
    nul = data.find(b"\0")
    if nul >= 0:
        _limited(problems, f"NUL byte at offset {nul}: systemd-boot stops reading there")
        data = data[:nul]
    result: list[tuple[int, str, str]] = []
    for number, line in _logical_lines(data):
        space, tab = line.find(b" "), line.find(b"\t")  # the key ends at the first blank
        cut = min(space, tab) if space >= 0 and tab >= 0 else max(space, tab)
        if cut < 0:
            key = _decode(line, f"line {number}", problems)
            _limited(problems, f"line {number}: {key[:40]!r} has no value and is ignored")
            continue
        key_raw, value_raw = line[:cut], line[cut:].lstrip(b" \t")
        if value_raw[:1] in (b'"', b"'") and line.endswith(value_raw[:1]):
            value_raw = value_raw[1:-1]  # a lone quote unquotes to "" as in systemd-boot
        key = _decode(key_raw, f"line {number}", problems)
        result.append((number, key, _decode(value_raw, f"line {number} ({key[:40]})", problems)))
    return result


def _name_problem(filename: str, entry_type: EntryType) -> str | None:
    """Why systemd-boot skips this file name when it scans for entries, or None if it reads it."""
    suffix = TYPE1_SUFFIX if entry_type is EntryType.TYPE1 else TYPE2_SUFFIX
    folded = ascii_lower(filename)
    if not filename or filename.startswith("."):
        return "systemd-boot skips file names starting with '.'"
    if not folded.endswith(suffix):
        return f"systemd-boot only reads file names ending in {suffix} here"
    if folded.startswith("auto-"):
        return "systemd-boot skips file names starting with 'auto-' (reserved for its own entries)"
    return None


_LOADER_KEYS = {
    "linux": LoaderKind.LINUX,
    "efi": LoaderKind.EFI,
    "uki": LoaderKind.UKI,
    "uki-url": LoaderKind.UKI_URL,
}
_SINGLE_KEYS = {
    "title": "title",
    "version": "version",
    "machine-id": "machine_id",
    "sort-key": "sort_key",
    "devicetree": "devicetree",
    "architecture": "architecture",
    "linux": "linux",
    "efi": "efi",
    "uki": "uki",
    "uki-url": "uki_url",
}


def _apply_type1(pairs: list[tuple[int, str, str]], problems: list[str]) -> dict[str, object]:
    """Fold key/value pairs into BootEntry fields the way `boot_entry_add_type1` does."""
    fields: dict[str, object] = dict.fromkeys(_SINGLE_KEYS.values())
    initrd: list[str] = []
    options: list[str] = []
    kind: LoaderKind | None = None
    for number, key, value in pairs:
        new_kind = _LOADER_KEYS.get(key)
        if new_kind is not None and kind is not None and new_kind is not kind:
            # systemd-boot marks the entry LOADER_BAD and stops reading it.
            _limited(
                problems,
                f"line {number}: {key!r} conflicts with the earlier {kind.value!r} line: "
                "systemd-boot drops this entry",
            )
            return {**fields, "initrd": tuple(initrd), "options": tuple(options), "loader_kind": None}
        kind = new_kind or kind
        if key in _SINGLE_KEYS:
            fields[_SINGLE_KEYS[key]] = value
        elif key == "initrd":
            initrd.append(value)
        elif key == "options":
            options.append(value)
        elif key not in _KNOWN_KEYS:
            _limited(problems, f"line {number}: unknown key {key[:40]!r} is ignored")
    if kind is None:
        _limited(problems, "no linux, efi or uki line: systemd-boot does not list this entry")
    return {**fields, "initrd": tuple(initrd), "options": tuple(options), "loader_kind": kind}


class BootEntry(Frozen):
    """One boot entry on the ESP or XBOOTLDR, with its counter state and any parse problems."""

    __slots__ = (
        "_read",
        "architecture",
        "devicetree",
        "efi",
        "filename",
        "initrd",
        "linux",
        "loader_kind",
        "machine_id",
        "name",
        "options",
        "partition",
        "path",
        "problems",
        "sort_key",
        "title",
        "type",
        "uki",
        "uki_url",
        "version",
    )
    filename: str
    path: str  # relative to the partition root, '/' separators: loader/entries/a+2-1.conf
    partition: Partition
    type: EntryType
    name: CountedName
    title: str | None
    version: str | None
    machine_id: str | None
    sort_key: str | None
    linux: str | None
    initrd: tuple[str, ...]
    efi: str | None
    uki: str | None
    uki_url: str | None
    options: tuple[str, ...]  # one item per `options` line
    devicetree: str | None
    architecture: str | None
    loader_kind: LoaderKind | None  # None: systemd-boot would not list it (no or conflicting loader lines)
    problems: tuple[str, ...]
    _read: BodyReader  # from_file: reads the contents when a field needs them

    @classmethod
    def from_conf(cls, path: str, data: bytes, partition: Partition) -> BootEntry:
        """A Type #1 entry from its path (relative to the partition root) and raw contents. Never raises."""
        new = cls._named(path, partition)
        new._load_body(data, None)
        return new

    @classmethod
    def from_file(cls, path: str, partition: Partition, read: BodyReader) -> BootEntry:
        """A Type #1 entry known by its file name; its contents are read and parsed (`read(filename)`)
        on the first use of a field that needs them.

        Why: the early-boot step decides on file names and counters alone, and reading and parsing
        every entry cost ~1.5 ms of a step whose budget is a few milliseconds (issue 13). The same
        entry as `from_conf` of what `read` returns, once any field is used (equality included).
        """
        new = cls._named(path, partition)
        object.__setattr__(new, "_read", read)
        return new

    @classmethod
    def _named(cls, path: str, partition: Partition) -> BootEntry:
        filename = path.rpartition("/")[2]
        new = object.__new__(cls)
        new._init(
            filename=filename,
            path=path,
            partition=partition,
            type=EntryType.TYPE1,
            name=CountedName.parse(filename, TYPE1_SUFFIX),
        )
        return new

    def _load_body(self, data: bytes, read_problem: str | None) -> None:
        """Set the fields that come from the file's contents (and the problems found in them)."""
        problems: list[str] = []
        name_problem = _name_problem(self.filename, EntryType.TYPE1)
        if name_problem:
            problems.append(name_problem)
        if len(data) > MAX_ENTRY_BYTES:
            problems.append(f"{len(data)} bytes; only the first {MAX_ENTRY_BYTES} were read")
            data = data[:MAX_ENTRY_BYTES]
        fields = _apply_type1(parse_key_values(data, problems), problems)
        if read_problem:
            problems.append(read_problem)
        self._init(problems=tuple(problems), **fields)

    if not TYPE_CHECKING:  # hidden from mypy, which would otherwise type every unknown attribute

        def __getattr__(self, name):
            # Only reached for a slot not set yet: the contents' fields of a `from_file` entry.
            if name not in _BODY_FIELDS:
                raise AttributeError(name)
            try:
                read = object.__getattribute__(self, "_read")
            except AttributeError:
                raise AttributeError(name) from None
            self._load_body(*read(self.filename))
            return object.__getattribute__(self, name)

    @classmethod
    def _fields(cls) -> tuple[str, ...]:
        return _FIELDS  # `_read` says how to get the values, it is none of them

    @classmethod
    def from_uki(cls, path: str, partition: Partition) -> BootEntry:
        """A Type #2 entry known by file name only (title, version and sort key live inside the PE file)."""
        filename = path.rpartition("/")[2]
        name_problem = _name_problem(filename, EntryType.TYPE2)
        new = object.__new__(cls)
        new._init(
            filename=filename,
            path=path,
            partition=partition,
            type=EntryType.TYPE2,
            name=CountedName.parse(filename, TYPE2_SUFFIX),
            title=None,
            version=None,
            machine_id=None,
            sort_key=None,
            linux=None,
            initrd=(),
            efi=None,
            uki=None,
            uki_url=None,
            options=(),
            devicetree=None,
            architecture=None,
            loader_kind=LoaderKind.TYPE2,
            problems=(name_problem,) if name_problem else (),
        )
        return new

    # --- identity -----------------------------------------------------------------------------

    def id(self, scheme: IdScheme) -> str:
        """The entry id systemd-boot uses under `scheme` (LoaderEntrySelected, LoaderEntries, patterns)."""
        if scheme is IdScheme.COUNTER_KEPT:
            return ascii_lower(self.filename)
        if self.name.counter is not None:
            # systemd-boot builds it from the name before '+' and its literal lowercase suffix.
            base = self.name.prefix + ascii_lower(self.name.expected_suffix)
        else:
            base = self.filename
        return base if scheme is IdScheme.STRIPPED_KEEP_CASE else ascii_lower(base)

    @property
    def directory(self) -> str:
        """The directory of the entry relative to the partition root (`loader/entries`)."""
        return self.path.rpartition("/")[0]

    @property
    def loadable(self) -> bool:
        """Whether systemd-boot lists this entry at all (loader line present, file name accepted).

        systemd-boot also hides entries whose `architecture` differs from its own and entries whose
        loader file is missing; those checks need the host and the disk and are left to callers.
        """
        if self.loader_kind is None:
            return False
        return _name_problem(self.filename, self.type) is None

    @property
    def cmdline(self) -> str:
        """All `options` lines joined by a blank, as systemd-boot passes them."""
        return " ".join(self.options)

    # --- counter state ------------------------------------------------------------------------

    @property
    def counter(self) -> Counter | None:
        return self.name.counter

    @property
    def tries_left(self) -> int | None:
        return None if self.name.counter is None else self.name.counter.left

    @property
    def tries_done(self) -> int | None:
        return None if self.name.counter is None else self.name.counter.done

    @property
    def status(self) -> EntryStatus:
        if self.name.counter is None:
            return EntryStatus.GOOD
        return EntryStatus.BAD if self.name.counter.left == 0 else EntryStatus.INDETERMINATE

    def next_boot_path(self) -> str | None:
        """The path systemd-boot renames this entry to when it boots it (None when uncounted)."""
        nxt = self.name.next_boot_filename()
        if nxt is None:
            return None
        return f"{self.directory}/{nxt}" if self.directory else nxt

    def renamed(self, filename: str) -> BootEntry:
        """The same entry after its file was renamed to `filename` in the same directory."""
        path = f"{self.directory}/{filename}" if self.directory else filename
        return self.evolve(
            filename=filename, path=path, name=CountedName.parse(filename, self.name.expected_suffix)
        )


_FIELDS = tuple(n for n in BootEntry.__slots__ if n != "_read")
_BODY_FIELDS = frozenset(_FIELDS) - {"filename", "path", "partition", "type", "name"}
