"""systemd-boot's entry patterns: `efi_fnmatch` and the ASCII-only case folding around it.

systemd-boot matches `default`/`preferred` lines of loader.conf and the LoaderEntryDefault,
LoaderEntryOneShot and LoaderEntryPreferred variables against entry ids with `efi_fnmatch`
(src/boot/efi-string.c). It is case-*sensitive* itself; systemd-boot gets its case-insensitivity by
folding both sides first with `strtolower16`, which lowers ASCII A-Z only. Callers must do the same:

    efi_fnmatch(ascii_lower(pattern), entry_id)   # entry_id already folded per the IdScheme

with one exception systemd-boot has: the LoaderEntryLastBooted value used for `@saved` is *not*
folded (it is read after the folding step), so it is matched as stored.

Semantics (fnmatch with reduced features, no backtracking, so no pathological run times):
- `*` any run of characters, `?` exactly one character, `\\x` the character x literally;
- `[...]` a set: `]` first is literal, `a-z` a range (a `-` first or last is literal, ranges do not
  chain: `[a-c-f]` is a, b, c, '-', f), `\\` escapes inside the set; there is **no** negation
  (`[!a]` and `[^a]` contain '!' or '^'); a set never closed matches nothing.
- Strings end at the first NUL, as C strings do.
"""

from __future__ import annotations

# str.lower() also folds non-ASCII letters (and the Kelvin sign to 'k'); systemd-boot does not.
_ASCII_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}
_NO_MATCH = (False, -1, -1)


def ascii_lower(s: str) -> str:
    """Lowercase ASCII A-Z only, as systemd-boot's `strtolower16` does."""
    return s.translate(_ASCII_LOWER)


def c_string(s: str) -> str:
    """`s` up to its first NUL: what a C (UCS-2) string holding it would contain."""
    end = s.find("\0")
    return s if end < 0 else s[:end]


def _match_set(p: str, pi: int, ch: str) -> tuple[int, bool]:
    """Match `ch` against the set opening at p[pi] == '['; returns (index of ']', matched) or (-1, False)."""
    first, can_range, match = True, True, False
    while True:
        pi += 1
        c = p[pi]
        if c == "\0":
            return -1, False
        if c == "\\":
            pi += 1
            if p[pi] == "\0":
                return -1, False
            match = match or p[pi] == ch
            can_range, first = True, False
            continue
        if c == "]" and not first:
            return pi, match
        if c == "-" and can_range and not first and p[pi + 1] != "]":
            low = p[pi - 1]
            pi += 1
            if p[pi] == "\\":
                pi += 1
            if p[pi] == "\0":
                return -1, False
            match = match or low <= ch <= p[pi]
            can_range, first = False, False  # ranges cannot be chained
            continue
        match = match or c == ch
        can_range, first = True, False


def _match_prefix(p: str, pi: int, h: str, hi: int) -> tuple[bool, int, int]:
    """Match the star-free head of p[pi:] at h[hi:].

    Returns (matched, pattern index after the next run of '*', haystack index there); the two
    indexes are -1 when the pattern ended (or failed) before reaching a '*'.
    """
    while True:
        c = p[pi]
        if c == "\0":
            return h[hi] == "\0", -1, -1
        if c == "*":
            while p[pi] == "*":
                pi += 1
            return True, pi, hi
        if c == "\\":
            pi += 1
            if p[pi] == "\0" or p[pi] != h[hi]:
                return _NO_MATCH
        elif c == "?":
            if h[hi] == "\0":
                return _NO_MATCH
        elif c == "[":
            if h[hi] == "\0":
                return _NO_MATCH
            pi, ok = _match_set(p, pi, h[hi])
            if not ok:
                return _NO_MATCH
        elif c != h[hi]:
            return _NO_MATCH
        pi += 1
        hi += 1


def efi_fnmatch(pattern: str, s: str) -> bool:
    """Whether `s` matches `pattern` exactly as systemd-boot's `efi_fnmatch` decides.

    The pattern is split at '*' runs into star-free pieces: the first must match at the start, each
    later one is searched for left to right, and the last must end at the end of `s`.
    """
    p = c_string(pattern) + "\0"
    h = c_string(s) + "\0"
    pi = hi = 0
    first = True
    while True:
        matched, tail_p, tail_h = _match_prefix(p, pi, h, hi)
        if first:
            if not matched:
                return False
            if tail_p < 0:
                return True
            first = False
        if tail_p >= 0:
            pi, hi = tail_p, tail_h
        elif matched or h[hi] == "\0":
            return matched
        else:
            hi += 1  # let the preceding '*' swallow one more character
