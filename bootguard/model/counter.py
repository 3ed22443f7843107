"""The boot counter grammar in entry file names, as systemd-boot (>= 252) and systemd-bless-boot read it.

A counted entry is named `NAME+LEFT[-DONE]SUFFIX` (`.conf` for Type #1, `.efi` for Type #2).
Two programs parse it, with different rules, and bootguard must match each exactly:

systemd-boot (`boot_entry_parse_tries` in src/boot/boot.c) decides what is counted and the rename
done before each boot:
- the **last** `+` starts the counter; LEFT is >= 1 ASCII digit (leading zeros allowed), then
  optionally `-` and DONE (>= 1 digit); a value above INT_MAX (or overflowing u64) means *no counter*;
- what follows must equal the suffix, ASCII case-insensitively, or the name has *no counter*
  (`a+3x.conf`, `a+3-1-2.conf`, `a+3.efi.conf` are uncounted; the entry still boots);
- the next name is `NAME+max(LEFT-1,0)-min(DONE+1,INT_MAX)` + the suffix in lowercase: always the
  `-DONE` form, leading zeros dropped; bad entries (LEFT = 0) are renamed too (`+0-3` -> `+0-4`).

systemd-bless-boot (`parse_counter` in src/bless-boot/bless-boot.c) works on the last component of
LoaderBootCountPath: last `+`, >= 1 digit required, optional `-` + >= 1 digit, no INT_MAX cap, and
the rest is kept as the suffix unchecked. Its numbers go through `safe_atou64`, i.e. C `strtoull`
with base 0: a leading `0` means **octal** (`+010` is 8, `+08` fails) — systemd-boot never writes
such names, but a hand-made one is read this way. good = NAME + suffix; bad = NAME+0 + suffix when
DONE is 0, else NAME+0-DONE + suffix.

Everything here is pure: callers pass file names, nothing touches a file system.
"""

from __future__ import annotations

from bootguard.errors import ParseError, UsageError
from bootguard.model._frozen import Frozen
from bootguard.model.glob import ascii_lower

INT_MAX = 2147483647
UINT64_MAX = 2**64 - 1

_DIGITS = frozenset("0123456789")
_INT_MAX_DIGITS = len(str(INT_MAX))


class Counter(Frozen):
    """Tries left and tries done, as systemd-boot holds them (0 <= both <= INT_MAX)."""

    __slots__ = ("done", "left")
    left: int
    done: int

    def __init__(self, left: int, done: int = 0) -> None:
        for label, value in (("tries left", left), ("tries done", done)):
            if type(value) is not int or not 0 <= value <= INT_MAX:
                raise UsageError(f"{label} must be an integer in 0..{INT_MAX}, not {value!r}")
        self._init(left=left, done=done)

    @property
    def bad(self) -> bool:
        """No tries left: systemd-boot sorts the entry last (a default or one-shot may still pick it)."""
        return self.left == 0

    def next(self) -> Counter:
        """The counter after systemd-boot boots the entry once more."""
        return Counter(max(self.left - 1, 0), min(self.done + 1, INT_MAX))

    def __str__(self) -> str:
        """The canonical `+LEFT-DONE` text systemd-boot writes."""
        return f"+{self.left}-{self.done}"


def _digit_run(s: str, i: int) -> int:
    while i < len(s) and s[i] in _DIGITS:
        i += 1
    return i


def _sdboot_number(digits: str) -> int | None:
    """The value of a digit run, or None above INT_MAX (systemd-boot then sees no counter)."""
    significant = digits.lstrip("0")
    if len(significant) > _INT_MAX_DIGITS:
        return None  # also avoids int() on absurdly long strings
    value = int(significant or "0")
    return value if value <= INT_MAX else None


def _parse_sdboot_counter(filename: str, start: int, suffix: str) -> tuple[int, int, int] | None:
    """(left, done, end of counter) for the counter text at filename[start:] (just after '+'), or None."""
    end = _digit_run(filename, start)
    if end == start:
        return None
    left = _sdboot_number(filename[start:end])
    if left is None:
        return None
    done: int | None = 0
    if end < len(filename) and filename[end] == "-":
        done_end = _digit_run(filename, end + 1)
        if done_end == end + 1:
            return None
        done = _sdboot_number(filename[end + 1 : done_end])
        end = done_end
    if done is None or ascii_lower(filename[end:]) != ascii_lower(suffix):
        return None
    return left, done, end


class CountedName(Frozen):
    """An entry file name split as systemd-boot splits it.

    Fields, with `str(name) == prefix + counter_text + suffix` == the original file name:
    - `prefix`: the name before the counter's `+` (counted), or the whole stem (uncounted: the file
      name without a trailing `expected_suffix`, or the whole file name if it lacks that suffix);
    - `counter`: the parsed Counter, or None when systemd-boot sees no valid counter;
    - `counter_text`: the counter exactly as written (`+03-007`), "" when uncounted;
    - `suffix`: the suffix exactly as in the file name (`.conf`, `.CONF`), "" if the name lacks it;
    - `expected_suffix`: the suffix the name was parsed against (`.conf` or `.efi`).
    """

    __slots__ = ("counter", "counter_text", "expected_suffix", "prefix", "suffix")
    prefix: str
    counter: Counter | None
    counter_text: str
    suffix: str
    expected_suffix: str

    @classmethod
    def parse(cls, filename: str, suffix: str) -> CountedName:
        """Split `filename` like systemd-boot >= 252 does for an entry ending in `suffix`. Never raises."""
        new = object.__new__(cls)
        plus = filename.rfind("+")
        parsed = _parse_sdboot_counter(filename, plus + 1, suffix) if plus >= 0 else None
        if parsed is not None:
            left, done, end = parsed
            new._init(
                prefix=filename[:plus],
                counter=Counter(left, done),
                counter_text=filename[plus:end],
                suffix=filename[end:],
                expected_suffix=suffix,
            )
            return new
        cut = len(filename) - len(suffix)
        has_suffix = cut >= 0 and ascii_lower(filename[cut:]) == ascii_lower(suffix)
        new._init(
            prefix=filename[:cut] if has_suffix else filename,
            counter=None,
            counter_text="",
            suffix=filename[cut:] if has_suffix else "",
            expected_suffix=suffix,
        )
        return new

    def __str__(self) -> str:
        return self.prefix + self.counter_text + self.suffix

    @property
    def filename(self) -> str:
        """The file name this was parsed from."""
        return str(self)

    @property
    def counted(self) -> bool:
        return self.counter is not None

    @property
    def stem_without_counter(self) -> str:
        """The name without counter and suffix (`a` for `a+2-1.conf`)."""
        return self.prefix

    @property
    def uncounted_filename(self) -> str:
        """The file name without its counter, suffix as written: bootctl's id (`A+3.CONF` -> `A.CONF`)."""
        return self.prefix + self.suffix

    def next_boot_filename(self) -> str | None:
        """The name systemd-boot renames the file to when it boots it, or None if uncounted."""
        if self.counter is None:
            return None
        return f"{self.prefix}{self.counter.next()}{ascii_lower(self.expected_suffix)}"


def with_counter(filename: str, suffix: str, tries: int) -> str:
    """`NAME+TRIES` + suffix for arming the uncounted entry `filename` (suffix kept as written)."""
    if type(tries) is not int or not 1 <= tries <= INT_MAX:
        raise UsageError(
            f"tries for {filename!r} must be an integer in 1..{INT_MAX}, not {tries!r}",
            hint="systemd-boot ignores counters above INT_MAX; small numbers such as 3 are usual",
        )
    name = CountedName.parse(filename, suffix)
    if name.counter is not None:
        raise UsageError(
            f"{filename!r} already has a boot counter ({name.counter_text})",
            hint="only an uncounted entry can be armed; bless or rename it first",
        )
    if not name.suffix:
        raise UsageError(f"{filename!r} does not end in {suffix!r}: systemd-boot would not count it")
    return f"{name.prefix}+{tries}{name.suffix}"


# --- systemd-bless-boot ------------------------------------------------------------------------


def _bless_number(digits: str, what: str, path: str) -> int:
    """`safe_atou64` on a run of digits: decimal, or octal after a leading 0 (C strtoull base 0)."""
    base = 8 if len(digits) > 1 and digits[0] == "0" else 10
    significant = digits.lstrip("0")
    fits = len(significant) <= (22 if base == 8 else 20) and not (base == 8 and set(significant) & {"8", "9"})
    value = int(significant or "0", base) if fits else UINT64_MAX + 1
    if value > UINT64_MAX:
        raise ParseError(
            f"Failed to parse '{what}' counter from LoaderBootCountPath: {path}",
            hint="systemd-bless-boot reads numbers with a leading 0 as octal and refuses values above 2^64-1",
        )
    return value


class BlessName(Frozen):
    """A LoaderBootCountPath file name as systemd-bless-boot splits it (no INT_MAX cap, suffix unchecked)."""

    __slots__ = ("directory", "done", "left", "prefix", "suffix")
    directory: str
    prefix: str
    left: int
    done: int
    suffix: str

    @classmethod
    def parse(cls, path: str) -> BlessName:
        """Split `path` (a file name or a `/`- or `\\`-separated path); ParseError where bless-boot fails."""
        cut = max(path.rfind("/"), path.rfind("\\")) + 1
        directory, name = path[:cut], path[cut:]
        plus = name.rfind("+")
        if plus < 0:
            raise ParseError(
                f"Path read from LoaderBootCountPath does not contain a counter, refusing: {path}",
                hint="this entry is not counted; there is nothing to bless",
            )
        end = _digit_run(name, plus + 1)
        if end == plus + 1:
            raise ParseError(f"Can't parse empty 'tries left' counter from LoaderBootCountPath: {path}")
        left = _bless_number(name[plus + 1 : end], "tries left", path)
        done = 0
        if end < len(name) and name[end] == "-":
            done_end = _digit_run(name, end + 1)
            if done_end == end + 1:
                raise ParseError(f"Can't parse empty 'tries done' counter from LoaderBootCountPath: {path}")
            done = _bless_number(name[end + 1 : done_end], "tries done", path)
            end = done_end
        new = object.__new__(cls)
        new._init(directory=directory, prefix=name[:plus], left=left, done=done, suffix=name[end:])
        return new

    def good_filename(self) -> str:
        """The name `systemd-bless-boot good` renames to: the counter removed."""
        return f"{self.directory}{self.prefix}{self.suffix}"

    def bad_filename(self) -> str:
        """The name `systemd-bless-boot bad` renames to: no tries left, tries done kept."""
        counter = "+0" if self.done == 0 else f"+0-{self.done}"
        return f"{self.directory}{self.prefix}{counter}{self.suffix}"


def bless_good_filename(filename: str) -> str:
    """What systemd-bless-boot renames `filename` to on `good` (ParseError where it would fail)."""
    return BlessName.parse(filename).good_filename()


def bless_bad_filename(filename: str) -> str:
    """What systemd-bless-boot renames `filename` to on `bad` (ParseError where it would fail)."""
    return BlessName.parse(filename).bad_filename()


PATH_MAX = 4096


def normalized_boot_count_path(path: str) -> str:
    """LoaderBootCountPath with `/` separators, refused as systemd-bless-boot refuses it.

    bless-boot tilts the backslashes, then requires `path_is_normalized` (no `.` or `..` component,
    no `//`, shorter than PATH_MAX) and `path_is_absolute`; anything else could name a file outside
    the ESP (`\\..\\outside\\passwd+1` reached /etc on a real host, issue 15.1).
    """
    tilted = path.replace("\\", "/")
    names = tilted.split("/")[1:]
    if (
        not tilted.startswith("/")
        or len(tilted.encode("utf-8", "surrogatepass")) >= PATH_MAX
        or "//" in tilted
        or "\0" in tilted
        or any(n in (".", "..") for n in names)
    ):
        raise ParseError(
            f"Path read from LoaderBootCountPath is not a normalized absolute path, refusing: {path!r}"
        )
    return tilted
