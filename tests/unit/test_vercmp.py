"""strverscmp_improved: systemd's version order, checked against systemd's own test vectors."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bootguard.model.vercmp import strverscmp_improved

# The shared CI machine is often loaded: no per-example deadline, a bounded example count.
_RELAXED = settings(deadline=None, max_examples=150)

# systemd's test-string-util.c `TEST(strverscmp_improved)`: each is older than every later one.
ORDERED = [
    "~1", "", "ab", "abb", "abc", "0001", "002", "12", "122", "122.9", "123~rc1", "123", "123-a",
    "123-a.1", "123-a1", "123-a1.1", "123-3", "123-3.1", "123^patch1", "123^1", "123.a-1", "123.1-1",
    "123a-1", "124",
]  # fmt: skip

NEWER_PAIRS = [
    ("123.45-67.88", "123.45-67.89"),
    ("123.45-67.89", "123.45-67.89a"),
    ("123.45-67.ab", "123.45-67.89"),
    ("123.45-67.9", "123.45-67.89"),
    ("123.45-67", "123.45-67.89"),
    ("123.45-66.89", "123.45-67.89"),
    ("123.45-9.99", "123.45-67.89"),
    ("123.42-99.99", "123.45-67.89"),
    ("123-99.99", "123.45-67.89"),
    ("123~rc1-99.99", "123.45-67.89"),
    ("123~rc1-99.99", "123-45.67.89"),
    ("123~rc1-99.99", "123~rc2-67.89"),
    ("123~rc1-99.99", "123^aa2-67.89"),
    ("123~rc1-99.99", "123aa2-67.89"),
    ("123-99.99", "123^aa2-67.89"),
    ("123-99.99", "123aa2-67.89"),
    ("123^45-67.89", "123.45-67.89"),
    ("123^aa1-99.99", "123^aa2-67.89"),
    ("123^aa2-67.89", "123aa2-67.89"),
    ("123.aa2-67.89", "123aa2-67.89"),
    ("123.aa2-67.89", "123.ab2-67.89"),
    # as entry ids: newer versions of an entry sort first in systemd-boot's menu
    ("bg-1.0.conf", "bg-2.0.conf"),
    ("bg-1.5.conf", "bg-2.0+1-1.conf"),
    ("nixos-generation-9.conf", "nixos-generation-10.conf"),
]

# (a, b, expected) corner cases and rpm vectors from the same systemd test file
EXACT = [
    ("123_aa2-67.89", "123aa+2-67.89", 0),
    ("123.", "123", 1),
    ("12_3", "123", -1),
    ("12_3", "12", 1),
    ("12_3", "12.3", 1),
    ("123.0", "123", 1),
    ("123_0", "123", 1),
    ("123..0", "123.0", -1),
    ("", None, 0),
    (None, "", 0),
    ("0_", "0", 0),
    ("_0_", "0", 0),
    ("", "_", 0),
    ("", "~", 1),
    ("~", "", -1),
    ("~", "~", 0),
    ("1٠١٢٣٤٥٦٧٨٩", "1", 0),
    ("10xyz", "10.1xyz", 1),
    ("xyz.4", "8", -1),
    ("6.0.rc1", "6.0", 1),
    ("10.0001", "10.1", 0),
    ("4.999.9", "5.0", -1),
    ("2.0", "2_0", -1),
    ("a+", "a_", 0),
    ("1.0~rc1~git123", "1.0~rc1", -1),
    ("1.0^", "1.0", 1),
    ("1.0^git1", "1.01", -1),
    ("1.0^20160102", "1.0^20160101^git1", 1),
    ("1.0^git1~pre", "1.0^git1", -1),
    ("1b.fc17", "1.fc17", 1),
    ("1.1.ββ", "1.1.αα", 0),
    ("abc\0zzz", "abc", 0),  # C strings end at NUL
]


@pytest.mark.parametrize(("older", "newer"), list(itertools.combinations(ORDERED, 2)) + NEWER_PAIRS)
def test_newer_versions_compare_greater(older: str, newer: str) -> None:
    """systemd's ordered version list and pairs compare as systemd's own tests require, both ways."""
    assert strverscmp_improved(older, newer) == -1
    assert strverscmp_improved(newer, older) == 1
    assert strverscmp_improved(older, older) == 0


@pytest.mark.parametrize(("a", "b", "expected"), EXACT)
def test_corner_cases(a: str | None, b: str | None, expected: int) -> None:
    """Separators, ignored characters, NULL/empty strings and rpm oddities give systemd's answers."""
    assert strverscmp_improved(a, b) == expected


_VERSIONS = st.text(st.sampled_from([*"0123456789abzAZ~-^._+", "é", "\x00"]), max_size=8)


@_RELAXED
@given(_VERSIONS, _VERSIONS)
def test_antisymmetric(a: str, b: str) -> None:
    """Swapping the arguments negates the result; results are only -1, 0 or 1."""
    r = strverscmp_improved(a, b)
    assert r in (-1, 0, 1)
    assert strverscmp_improved(b, a) == -r


@_RELAXED
@given(_VERSIONS, _VERSIONS, _VERSIONS)
def test_transitive(a: str, b: str, c: str) -> None:
    """The order is transitive, so sorting entries by it is well defined."""
    for x, y, z in itertools.permutations((a, b, c)):
        if strverscmp_improved(x, y) <= 0 and strverscmp_improved(y, z) <= 0:
            assert strverscmp_improved(x, z) <= 0


@_RELAXED
@given(st.text(st.characters(exclude_categories=()), max_size=30), st.text(max_size=30))
def test_terminates_on_any_text(a: str, b: str) -> None:
    """Arbitrary text (surrogates included) compares without error."""
    assert strverscmp_improved(a, b) in (-1, 0, 1)
