"""efi_fnmatch and ASCII case folding, checked against systemd's own test vectors and Python's fnmatch."""

from __future__ import annotations

import fnmatch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bootguard.model.glob import ascii_lower, efi_fnmatch

# The shared CI machine is often loaded: no per-example deadline, a bounded example count.
_RELAXED = settings(deadline=None, max_examples=150)

_ALPHABET_STARS = "".join(c + "*" for c in "abcdefghijklmnopqrstuvwxyz")

# systemd's test-efi-string.c `TEST(efi_fnmatch)`, plus the bootguard-relevant patterns below it.
CASES = [
    ("", "", True),
    ("abc", "abc", True),
    ("aBc", "abc", False),
    ("b", "a", False),
    ("b", "", False),
    ("abc", "a", False),
    ("a?c", "azc", True),
    ("???", "?.9", True),
    ("1?", "1", False),
    ("***", "", True),
    ("*", "123", True),
    ("**", "abcd", True),
    ("*b*", "abcd", True),
    ("abc*d", "abc", False),
    ("start*end", "startend", True),
    ("start*end", "startendend", True),
    ("start*end", "startenddne", False),
    ("start*end", "startendstartend", True),
    ("start*end", "starten", False),
    ("*.conf", "arch.conf", True),
    ("debian-*.conf", "debian-wheezy.conf", True),
    ("debian-*.*", "debian-wheezy.efi", True),
    ("ab*cde", "abzcd", False),
    ("\\*\\a\\[", "*a[", True),
    ("[abc] [abc] [abc]", "a b c", True),
    ("abc]", "abc]", True),
    ("[abc]", "z", False),
    ("[abc", "a", False),
    ("[][!] [][!] [][!]", "[ ] !", True),
    ("[]-] []-]", "] -", True),
    ("[1\\]] [1\\]]", "1 ]", True),
    ("[$-\\+]", "&", True),
    ("[1-3A-C] [1-3A-C]", "2 B", True),
    ("[3-5] [3-5] [3-5]", "3 4 5", True),
    ("[f-h] [f-h] [f-h]", "f g h", True),
    ("[a-c-f] [a-c-f] [a-c-f] [a-c-f] [a-c-f]", "a b c - f", True),
    ("[a-c-f]", "e", False),
    ("[--0] [--0] [--0]", "- . 0", True),
    ("[+--] [+--] [+--]", "+ , -", True),
    ("[f-l]", "m", False),
    ("[b]", "z-a", False),
    ("[a\\-z]", "b", False),
    ("?a*b[.-0]c", "/a/b/c", True),
    ("debian-*-*-*.*", "debian-jessie-2018-06-17-kernel-image-5.10.0-16-amd64.efi", True),
    # these would take forever with a backtracking implementation
    (_ALPHABET_STARS, "".join(c * 4 for c in "abcdefghijklmnopqrstuvwxy"), False),
    (_ALPHABET_STARS, "".join(c * 4 for c in "abcdefghijklmnopqrstuvwxyz") + "!!!!", True),
    # no negation: '!' and '^' are members of the set
    ("[!a]", "b", False),
    ("[!a]", "!", True),
    ("[^a]", "^", True),
    # a trailing escape never matches; strings end at NUL
    ("abc\\", "abc\\", False),
    ("abc\0def", "abc", True),
    # patterns from the vm-harness scenarios
    ("bg-*", "bg-2.0+1-1.conf", True),
    ("bg-2.0+[1-9]*", "bg-2.0+1-1.conf", True),
    ("bg-2.0+[1-9]*", "bg-2.0+0-2.conf", False),
    ("bg-2.0+[1-9]*", "bg-2.0.conf", False),
    ("bg-1.0.conf", "bg-1.0.conf", True),
]  # fmt: skip


@pytest.mark.parametrize(("pattern", "haystack", "expected"), CASES)
def test_efi_fnmatch_vectors(pattern: str, haystack: str, expected: bool) -> None:
    """Each pattern matches exactly as systemd-boot's efi_fnmatch decides."""
    assert efi_fnmatch(pattern, haystack) is expected


def test_ascii_lower_folds_ascii_only() -> None:
    """Only A-Z are folded, like strtolower16: Ä and the Kelvin sign stay as they are."""
    assert ascii_lower("BG-2.0+1-1.CONF") == "bg-2.0+1-1.conf"
    assert ascii_lower("ÄK\u212a") == "Äk\u212a"


def test_patterns_are_case_sensitive_until_folded() -> None:
    """efi_fnmatch itself is case-sensitive; callers fold the pattern as systemd-boot does."""
    assert not efi_fnmatch("BG-*", "bg-1.0.conf")
    assert efi_fnmatch(ascii_lower("BG-*"), "bg-1.0.conf")


_GLOB_CHARS = st.text(st.sampled_from([*"ab-.+*?", "é"]), max_size=8)
_TEXT = st.text(st.sampled_from([*"ab-.+", "é"]), max_size=10)


@_RELAXED
@given(_GLOB_CHARS, _TEXT)
def test_agrees_with_fnmatch_without_sets_or_escapes(pattern: str, haystack: str) -> None:
    """For '*', '?' and literal characters the result equals Python's fnmatchcase."""
    assert efi_fnmatch(pattern, haystack) == fnmatch.fnmatchcase(haystack, pattern)


@_RELAXED
@given(st.text(st.sampled_from([*"ab[]-\\*?!^", "\ud800"]), max_size=10), st.text(max_size=10))
def test_never_raises(pattern: str, haystack: str) -> None:
    """Malformed sets, dangling escapes and surrogates never raise."""
    assert efi_fnmatch(pattern, haystack) in (True, False)
