"""The boot counter grammar: systemd-boot's parse and rename, systemd-bless-boot's good/bad names, arming."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bootguard.errors import ParseError, UsageError
from bootguard.model.counter import (
    INT_MAX,
    UINT64_MAX,
    BlessName,
    CountedName,
    Counter,
    bless_bad_filename,
    bless_good_filename,
    with_counter,
)

# The shared CI machine is often loaded: no per-example deadline, a bounded example count.
_RELAXED = settings(deadline=None, max_examples=150)

# Every example row of shared/reference/systemd-boot-counting.md section 1:
# (file name, tries left, tries done, name after systemd-boot's rename, counter-free name as bootctl shows it)
COUNTED_ROWS = [
    ("a+3.conf", 3, 0, "a+2-1.conf", "a.conf"),
    ("a+3-0.conf", 3, 0, "a+2-1.conf", "a.conf"),
    ("a+0.conf", 0, 0, "a+0-1.conf", "a.conf"),
    ("a+0-5.conf", 0, 5, "a+0-6.conf", "a.conf"),
    ("i+03-007.conf", 3, 7, "i+2-8.conf", "i.conf"),
    ("h+1+2.conf", 2, 0, "h+1+1-1.conf", "h+1.conf"),
    ("p-1+2.conf", 2, 0, "p-1+1-1.conf", "p-1.conf"),
    ("a+2147483647.conf", INT_MAX, 0, "a+2147483646-1.conf", "a.conf"),
    ("A+3.CONF", 3, 0, "A+2-1.conf", "A.CONF"),
]
UNCOUNTED_ROWS = [
    "a+.conf",
    "a+3-.conf",
    "a+x3.conf",
    "a+3x.conf",
    "a+3-1-2.conf",
    "a+3.efi.conf",
    "a+2147483648.conf",
    "a+18446744073709551616.conf",
    "a+99999999999999999999999999.conf",
    "a.conf",
    "a+３.conf",  # a full-width digit is not an ASCII digit
]


@pytest.mark.parametrize(("filename", "left", "done", "renamed", "stripped"), COUNTED_ROWS)
def test_reference_counted_rows(filename: str, left: int, done: int, renamed: str, stripped: str) -> None:
    """Each counted example of the reference parses to its tries and renames as systemd-boot does."""
    name = CountedName.parse(filename, ".conf")
    assert name.counter == Counter(left, done)
    assert name.next_boot_filename() == renamed
    assert name.uncounted_filename == stripped
    assert str(name) == filename


@pytest.mark.parametrize("filename", UNCOUNTED_ROWS)
def test_reference_uncounted_rows(filename: str) -> None:
    """Names systemd-boot does not count keep the whole stem as prefix and rename to nothing."""
    name = CountedName.parse(filename, ".conf")
    assert name.counter is None
    assert name.counter_text == ""
    assert name.prefix == filename[: -len(".conf")]
    assert name.suffix == ".conf"
    assert name.next_boot_filename() is None


def test_type2_suffix_and_mismatched_suffix() -> None:
    """A UKI parses against .efi; a .conf name parsed as .efi and names lacking the suffix are uncounted."""
    assert CountedName.parse("linux-6.1+2-1.EFI", ".efi").next_boot_filename() == "linux-6.1+1-2.efi"
    assert CountedName.parse("a+2.conf", ".efi").counter is None
    odd = CountedName.parse("notes.txt", ".conf")
    assert (odd.prefix, odd.suffix, odd.counter) == ("notes.txt", "", None)


def test_done_counter_saturates_at_int_max() -> None:
    """Tries done stop at INT_MAX and a bad entry keeps being renamed to the same +0-INT_MAX name."""
    name = CountedName.parse(f"a+0-{INT_MAX}.conf", ".conf")
    assert name.next_boot_filename() == f"a+0-{INT_MAX}.conf"


def test_counter_refuses_out_of_range_values() -> None:
    """A Counter outside 0..INT_MAX is a programming error reported as UsageError."""
    with pytest.raises(UsageError):
        Counter(-1)
    with pytest.raises(UsageError):
        Counter(1, INT_MAX + 1)


# --- systemd-bless-boot ----------------------------------------------------------------------------

BLESS_ROWS = [
    # (LoaderBootCountPath last component, good name, bad name)
    ("a+2-1.conf", "a.conf", "a+0-1.conf"),
    ("a+3.conf", "a.conf", "a+0.conf"),
    ("a+0-2.conf", "a.conf", "a+0-2.conf"),
    ("h+1+1-1.conf", "h+1.conf", "h+1+0-1.conf"),
    ("A+2-1.CONF", "A.CONF", "A+0-1.CONF"),
    ("a+3x.conf", "ax.conf", "a+0x.conf"),  # the rest is kept as the suffix, unchecked
    ("a+2147483648-1.conf", "a.conf", "a+0-1.conf"),  # no INT_MAX cap
    ("a+1-010.conf", "a.conf", "a+0-8.conf"),  # leading 0: octal (strtoull base 0)
    (f"a+1-{UINT64_MAX}.efi", "a.efi", f"a+0-{UINT64_MAX}.efi"),
    ("uki+1-1.efi", "uki.efi", "uki+0-1.efi"),
]


@pytest.mark.parametrize(("booted", "good", "bad"), BLESS_ROWS)
def test_bless_names_match_systemd_bless_boot(booted: str, good: str, bad: str) -> None:
    """good drops the counter, bad sets tries left to 0 and keeps tries done, as systemd-bless-boot does."""
    assert bless_good_filename(booted) == good
    assert bless_bad_filename(booted) == bad


def test_bless_keeps_the_directory_of_a_boot_count_path() -> None:
    """A full LoaderBootCountPath keeps its directory; only the last component is searched for a counter."""
    assert bless_good_filename("\\loader\\entries\\a+2-1.conf") == "\\loader\\entries\\a.conf"
    assert bless_bad_filename("/EFI/x+y/k+1-1.efi") == "/EFI/x+y/k+0-1.efi"
    with pytest.raises(ParseError, match="does not contain a counter"):
        bless_good_filename("/EFI/x+1/k.efi")


@pytest.mark.parametrize(
    ("booted", "message"),
    [
        ("a.conf", "does not contain a counter"),
        ("a+.conf", "Can't parse empty 'tries left'"),
        ("a+-1.conf", "Can't parse empty 'tries left'"),
        ("a+3-.conf", "Can't parse empty 'tries done'"),
        ("a+08.conf", "Failed to parse 'tries left'"),
        ("a+1-09.conf", "Failed to parse 'tries done'"),
        (f"a+{UINT64_MAX + 1}.conf", "Failed to parse 'tries left'"),
    ],
)
def test_bless_fails_where_systemd_bless_boot_fails(booted: str, message: str) -> None:
    """Names systemd-bless-boot refuses raise ParseError with its message."""
    with pytest.raises(ParseError, match=message):
        BlessName.parse(booted)


def test_bless_octal_quirk_values() -> None:
    """Leading zeros are octal for systemd-bless-boot, decimal for systemd-boot."""
    assert BlessName.parse("i+03-007.conf").done == 7
    assert BlessName.parse("i+0010-0.conf").left == 8
    assert CountedName.parse("i+0010-0.conf", ".conf").counter == Counter(10, 0)


# --- arming ----------------------------------------------------------------------------------------


def test_with_counter_arms_an_uncounted_entry() -> None:
    """Arming appends +TRIES before the suffix, keeping the suffix as written."""
    assert with_counter("nixos-generation-7.conf", ".conf", 3) == "nixos-generation-7+3.conf"
    assert with_counter("A.CONF", ".conf", 1) == "A+1.CONF"
    assert with_counter("a+3x.conf", ".conf", 2) == "a+3x+2.conf"
    assert with_counter("k.efi", ".efi", INT_MAX) == f"k+{INT_MAX}.efi"


@pytest.mark.parametrize(
    ("filename", "tries", "message"),
    [
        ("a+2-1.conf", 3, "already has a boot counter"),
        ("a.conf", 0, "must be an integer in 1"),
        ("a.conf", INT_MAX + 1, "must be an integer in 1"),
        ("a.conf", True, "must be an integer in 1"),
        ("a.txt", 3, "does not end in"),
    ],
)
def test_with_counter_refuses(filename: str, tries: int, message: str) -> None:
    """Counted names, tries outside 1..INT_MAX and names without the suffix are refused."""
    with pytest.raises(UsageError, match=message):
        with_counter(filename, ".conf", tries)


# --- properties ------------------------------------------------------------------------------------

_ALPHABET = st.sampled_from([*"+-.0123456789aAcCfFiInNoOeEx_ ", "\ud800", "é", "\x00", "𝇉", "３"])
_NAMES = st.one_of(
    st.text(_ALPHABET, max_size=24),
    st.text(st.characters(exclude_categories=()), max_size=24),
)
_SUFFIXES = st.sampled_from([".conf", ".efi"])


@_RELAXED
@given(_NAMES, _SUFFIXES)
def test_parse_round_trips_any_name(filename: str, suffix: str) -> None:
    """Any file name, including surrogates and NULs, parses without error and formats back unchanged."""
    name = CountedName.parse(filename, suffix)
    assert str(name) == filename
    assert name.prefix + name.counter_text + name.suffix == filename


@_RELAXED
@given(_NAMES, _SUFFIXES)
def test_next_name_is_always_counted_done_form_with_lowercase_suffix(filename: str, suffix: str) -> None:
    """The rename target always has the +LEFT-DONE form, the lowercase suffix and the next counter values."""
    name = CountedName.parse(filename, suffix)
    nxt = name.next_boot_filename()
    if name.counter is None:
        assert nxt is None
        return
    assert nxt is not None
    assert nxt.endswith(suffix)
    again = CountedName.parse(nxt, suffix)
    assert again.counter == name.counter.next()
    assert again.prefix == name.prefix
    assert again.counter_text == f"+{again.counter.left}-{again.counter.done}"


@_RELAXED
@given(
    st.text(_ALPHABET, max_size=10),
    st.integers(0, 2**70),
    st.one_of(st.none(), st.integers(0, 2**70)),
    st.sampled_from([".conf", ".CONF", ".Conf", ".efi", ".EFI"]),
    st.integers(0, 3),
)
def test_generated_counters_follow_the_int_max_rule(
    prefix: str, left: int, done: int | None, suffix: str, zeros: int
) -> None:
    """NAME+LEFT[-DONE]SUFFIX is counted exactly when both numbers fit INT_MAX; leading zeros are ignored."""
    text = "+" + "0" * zeros + str(left) + ("" if done is None else "-" + str(done))
    name = CountedName.parse(prefix + text + suffix, suffix.lower())
    if left <= INT_MAX and (done or 0) <= INT_MAX:
        assert name.counter == Counter(left, done or 0)
        assert name.prefix == prefix
    else:
        assert name.counter is None


@_RELAXED
@given(_NAMES)
def test_bless_only_ever_raises_parse_error(filename: str) -> None:
    """systemd-bless-boot name computation either gives names or a ParseError, never another exception."""
    try:
        parsed = BlessName.parse(filename)
    except ParseError:
        return
    assert bless_good_filename(filename) == parsed.directory + parsed.prefix + parsed.suffix
    bad = BlessName.parse(bless_bad_filename(filename))
    assert (bad.prefix, bad.left, bad.done, bad.suffix) == (parsed.prefix, 0, parsed.done, parsed.suffix)


@_RELAXED
@given(st.text(_ALPHABET, max_size=10), st.integers(1, INT_MAX), _SUFFIXES)
def test_armed_names_are_counted_by_both_parsers(stem: str, tries: int, suffix: str) -> None:
    """A name produced by with_counter is counted by systemd-boot and blessable by systemd-bless-boot."""
    filename = stem + suffix
    if CountedName.parse(filename, suffix).counter is not None:
        return
    armed = with_counter(filename, suffix, tries)
    assert CountedName.parse(armed, suffix).counter == Counter(tries, 0)
    assert bless_good_filename(armed) == filename
