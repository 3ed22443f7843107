"""`json.dumps` / `json.loads` for the early-boot path, without importing `re`.

Every boot writes the state slot and event lines as JSON, but `import json` compiles regular
expressions at import time (json.decoder, json.scanner and json.encoder all import `re`): about 7 ms
on Debian's python3.11, a third of the early-boot budget (issue 5). This module produces exactly
what `json` produces, by the same means:

- decoding uses the C scanner `_json.make_scanner`, which is what `json.loads` itself runs; only
  the whitespace skipping around the document (a regex in json.decoder) is done with `str.lstrip`;
- encoding walks exact `dict`/`list`/`tuple`/`str`/`int`/`float`/`bool`/`None` values the way
  `json.encoder._make_iterencode` does, escaping strings with the C `_json.encode_basestring[_ascii]`.

Anything else — an error, a value of another type (an int or str subclass such as an enum, a
non-str key), a BOM or UTF-16/32 bytes, an interpreter without `_json` — is handed to the real
`json` module, so results, exceptions and messages stay exactly those of `json`; only the common
case is fast. tests/unit/test_jsoncodec.py checks equality with `json` on generated documents.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

try:
    from _json import encode_basestring, encode_basestring_ascii, make_scanner

    _FAST = True
except ImportError:  # not CPython: always use json
    _FAST = False

_WHITESPACE = " \t\n\r"  # json.decoder.WHITESPACE
_PLAIN = (str, int, float, bool, type(None))


class _Unsupported(Exception):
    """The fast path does not cover this value: let `json` handle it (and report any error)."""


class _ScanContext:
    """The attributes `_json.make_scanner` reads from a JSONDecoder, with json.loads' defaults."""

    __slots__ = ("object_hook", "object_pairs_hook", "parse_constant", "parse_float", "parse_int", "strict")

    def __init__(self) -> None:
        nan, inf = float("nan"), float("inf")
        constants = {"-Infinity": -inf, "Infinity": inf, "NaN": nan}  # json.decoder._CONSTANTS
        self.object_hook = None
        self.object_pairs_hook = None
        self.parse_float = float
        self.parse_int = int
        self.parse_constant = constants.__getitem__
        self.strict = True


_scan: Callable[[str, int], tuple[Any, int]] | None = None


def loads(text: str | bytes | bytearray) -> Any:
    """`json.loads(text)` with default options."""
    global _scan
    if not _FAST:
        return _json_loads(text)
    if isinstance(text, bytes | bytearray):
        # json.detect_encoding: a BOM or a NUL in the first bytes means UTF-16/32 or UTF-8-SIG.
        if text[:1] in (b"\xef", b"\xfe", b"\xff") or 0 in text[:4]:
            return _json_loads(text)
        text = text.decode("utf-8", "surrogatepass")
    elif not isinstance(text, str) or text.startswith("\ufeff"):
        return _json_loads(text)
    if _scan is None:
        _scan = make_scanner(_ScanContext())  # type: ignore[arg-type]  # typeshed wants a JSONDecoder
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _scan(text, start)
    except (StopIteration, ValueError, SystemError):
        # Let json raise its own error. The C scanner raises JSONDecodeError only when json.decoder is
        # already in sys.modules: its raise_errmsg looks the class up without importing it, and
        # otherwise returns NULL with no exception set, which Python reports as SystemError.
        return _json_loads(text)
    if text[end:].strip(_WHITESPACE):
        return _json_loads(text)  # raises "Extra data"
    return value


def dumps(
    value: Any,
    *,
    sort_keys: bool = False,
    indent: int | None = None,
    separators: tuple[str, str] | None = None,
    ensure_ascii: bool = True,
) -> str:
    """`json.dumps(value, ...)` for these options (the others keep their defaults)."""
    if _FAST:
        if separators is not None:
            item_sep, key_sep = separators
        else:
            item_sep, key_sep = ("," if indent is not None else ", "), ": "
        try:
            out: list[str] = []
            _Encoder(
                out,
                ascii=ensure_ascii,
                sort_keys=sort_keys,
                indent=None if indent is None else " " * indent,
                item_sep=item_sep,
                key_sep=key_sep,
            ).value(value, 0)
            return "".join(out)
        except _Unsupported:
            pass
    import json

    return json.dumps(
        value, sort_keys=sort_keys, indent=indent, separators=separators, ensure_ascii=ensure_ascii
    )


class _Encoder:
    """json.encoder._make_iterencode for exact built-in types; raises _Unsupported for the rest."""

    __slots__ = ("indent", "item_sep", "key_sep", "markers", "out", "sort_keys", "string")

    def __init__(
        self, out: list[str], *, ascii: bool, sort_keys: bool, indent: str | None, item_sep: str, key_sep: str
    ) -> None:
        self.out = out
        self.string: Callable[[str], str] = encode_basestring_ascii if ascii else encode_basestring
        self.sort_keys = sort_keys
        self.indent = indent
        self.item_sep = item_sep
        self.key_sep = key_sep
        self.markers: set[int] = set()  # containers being encoded: a cycle goes to json's error

    def value(self, o: Any, level: int) -> None:
        kind = type(o)
        if kind is str:
            self.out.append(self.string(o))
        elif o is None:
            self.out.append("null")
        elif o is True:
            self.out.append("true")
        elif o is False:
            self.out.append("false")
        elif kind is int:
            self.out.append(int.__repr__(o))
        elif kind is float:
            self.out.append(_float(o))
        elif kind is list or kind is tuple:
            self.container(o, o, level, "[]", self.value)
        elif kind is dict:
            if any(type(key) is not str for key in o):
                raise _Unsupported  # json converts number/bool/None keys (or refuses them): let it
            self.container(o, sorted(o.items()) if self.sort_keys else o.items(), level, "{}", self.pair)
        else:
            raise _Unsupported

    def pair(self, kv: tuple[str, Any], level: int) -> None:
        self.out.append(self.string(kv[0]))
        self.out.append(self.key_sep)
        self.value(kv[1], level)

    def container(
        self, o: Any, items: Any, level: int, brackets: str, each: Callable[[Any, int], None]
    ) -> None:
        if not o:
            self.out.append(brackets)
            return
        if id(o) in self.markers:
            raise _Unsupported  # a cycle: json raises "Circular reference detected"
        self.markers.add(id(o))
        open_, close = brackets[0], brackets[1]
        self.out.append(open_)
        sep = self.item_sep
        if self.indent is not None:
            level += 1
            newline = "\n" + self.indent * level
            sep += newline
            self.out.append(newline)
        first = True
        for item in items:
            if not first:
                self.out.append(sep)
            first = False
            each(item, level)
        if self.indent is not None:
            self.out.append("\n" + self.indent * (level - 1))
        self.out.append(close)
        self.markers.discard(id(o))


def _float(o: float) -> str:
    """json.encoder's floatstr with allow_nan=True."""
    if o != o:  # noqa: PLR0124 - NaN is the one float unequal to itself (math is not loaded yet)
        return "NaN"
    if o == float("inf"):
        return "Infinity"
    if o == float("-inf"):
        return "-Infinity"
    return float.__repr__(o)


def _json_loads(text: str | bytes | bytearray) -> Any:
    """The real json.loads: for everything the fast path leaves out, and for its exact errors."""
    import json

    return json.loads(text)
