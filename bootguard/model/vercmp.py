"""systemd's `strverscmp_improved` (src/fundamental/string-util-fundamental.c), used to order entries.

systemd-boot sorts entry ids and `version` lines with it (newest first), so bootguard must use the
very same order to predict which entry boots. Summary of the rules (rpmvercmp-like):

- the strings are split into numeric and alphabetic segments; characters other than ASCII letters,
  digits and `~ - ^ .` are dropped and only separate segments (`123_a` equals `123a`);
- `~` marks a pre-release (older than anything else), `-` the version/release separator, `^` a
  patched release (newer than `-`), `.` a point release; no prefix is the newest;
- numeric segments compare by value (leading zeros ignored) and are newer than alphabetic ones;
  alphabetic segments compare bytewise, a longer one being newer when one is a prefix of the other;
- when one string runs out the longer one is newer (except for `~` segments, handled first).

Strings end at the first NUL, as in C. Only ASCII decides anything, so comparing Python code points
equals systemd-boot's UCS-2 and bootctl's UTF-8 comparisons.
"""

from __future__ import annotations

from bootguard.model.glob import c_string

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_VERSION_CHARS = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ~-^.")
_DIGITS = frozenset("0123456789")
_ALPHA = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _cmp(x: Any, y: Any) -> int:
    """C's CMP(): -1, 0 or 1."""
    return int(x > y) - int(x < y)


def _run(s: str, i: int, charset: frozenset[str]) -> int:
    """Index just past the run of `charset` characters starting at s[i]."""
    while s[i] in charset:
        i += 1
    return i


def _compare_numeric(x: str, y: str) -> int:
    """Two runs of digits: a missing one is older, then by value (leading zeros ignored)."""
    r = _cmp(x != "", y != "")
    if r:
        return r
    x, y = x.lstrip("0"), y.lstrip("0")
    return _cmp(len(x), len(y)) or _cmp(x, y)


def _compare_alpha(x: str, y: str) -> int:
    """Two runs of letters: bytewise on the common length, then the longer one is newer."""
    n = min(len(x), len(y))
    return _cmp(x[:n], y[:n]) or _cmp(len(x), len(y))


def strverscmp_improved(a: str | None, b: str | None) -> int:
    """-1, 0 or 1 as `a` is older than, equal to or newer than `b` (None counts as "")."""
    a = c_string(a or "") + "\0"
    b = c_string(b or "") + "\0"
    i = j = 0
    while True:
        while a[i] != "\0" and a[i] not in _VERSION_CHARS:
            i += 1
        while b[j] != "\0" and b[j] not in _VERSION_CHARS:
            j += 1
        if a[i] == "~" or b[j] == "~":
            r = _cmp(a[i] != "~", b[j] != "~")
            if r:
                return r
            i, j = i + 1, j + 1
        if a[i] == "\0" or b[j] == "\0":
            return _cmp(a[i], b[j])
        for sep in "-^.":
            if a[i] == sep or b[j] == sep:
                r = _cmp(a[i] != sep, b[j] != sep)
                if r:
                    return r
                i, j = i + 1, j + 1
        if a[i] in _DIGITS or b[j] in _DIGITS:
            ii, jj = _run(a, i, _DIGITS), _run(b, j, _DIGITS)
            r = _compare_numeric(a[i:ii], b[j:jj])
        else:
            ii, jj = _run(a, i, _ALPHA), _run(b, j, _ALPHA)
            r = _compare_alpha(a[i:ii], b[j:jj])
        if r:
            return r
        i, j = ii, jj
