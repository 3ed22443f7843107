"""bootguard.model.jsoncodec produces and accepts exactly what the json module does."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bootguard.model import jsoncodec

ROOT = Path(__file__).resolve().parents[2]

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text()
documents = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)
OPTIONS: list[dict[str, Any]] = [
    {},
    {"sort_keys": True},
    {"sort_keys": True, "separators": (",", ":"), "ensure_ascii": False},  # event lines
    {"sort_keys": True, "indent": 1, "ensure_ascii": False},  # state slots
    {"indent": 2, "separators": (", ", " = ")},
]


def _same(a: object, b: object) -> bool:
    """Equality that counts NaN as equal to NaN (json round-trips it)."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@given(documents)
def test_dumps_matches_json_for_every_option_set(doc: object) -> None:
    """Generated documents encode to the very same text as json.dumps under each option set used."""
    for options in OPTIONS:
        assert jsoncodec.dumps(doc, **options) == json.dumps(doc, **options)


@given(documents)
def test_loads_matches_json(doc: object) -> None:
    """Text json.dumps wrote (str, UTF-8 bytes, padded with whitespace) decodes to json.loads' value."""
    for text in (json.dumps(doc), json.dumps(doc, indent=1, ensure_ascii=False)):
        for form in (text, f" \n\t{text}\r\n ", text.encode("utf-8", "surrogatepass")):
            assert _same(jsoncodec.loads(form), json.loads(form))


class Shade(str):
    """A str subclass: json encodes its value, the fast path must defer to json."""


@pytest.mark.parametrize(
    "doc",
    [{1: "a", "b": 2}, {None: 1}, [Shade("x")], {"k": Shade("y")}, (True, 2.5, float("inf"))],
)
def test_dumps_defers_unusual_values_to_json(doc: object) -> None:
    """Non-str keys and subclasses of builtin types come out as json writes them."""
    assert jsoncodec.dumps(doc, sort_keys=False) == json.dumps(doc)


def test_dumps_raises_what_json_raises() -> None:
    """Unsupported objects and cycles raise json's own errors."""
    with pytest.raises(TypeError, match="not JSON serializable"):
        jsoncodec.dumps({"a": object()})
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular reference"):
        jsoncodec.dumps(loop)
    with pytest.raises(TypeError):
        jsoncodec.dumps({"a": 1, 2: 3}, sort_keys=True)


@pytest.mark.parametrize(
    "text",
    ["", "   ", '{"a": 1} x', "{'a': 1}", '{"a": 1,}', '"\x01"', "\ufeff{}", b"\xff\xfe{", b'{"a": "\xff"}'],
)
def test_loads_errors_are_json_errors(text: str | bytes) -> None:
    """Bad documents raise the same exception type and message as json.loads."""
    with pytest.raises((ValueError, UnicodeDecodeError)) as ours:
        jsoncodec.loads(text)
    with pytest.raises((ValueError, UnicodeDecodeError)) as theirs:
        json.loads(text)
    assert type(ours.value) is type(theirs.value)
    assert str(ours.value) == str(theirs.value)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32", "utf-32-be", "utf-8-sig"])
def test_loads_other_encodings_like_json(encoding: str) -> None:
    """UTF-16/32 and BOM-prefixed UTF-8 bytes (json detects them) decode as json decodes them."""
    data = '{"a": [1, "é"]}'.encode(encoding)
    assert jsoncodec.loads(data) == json.loads(data) == {"a": [1, "é"]}


def test_import_does_not_load_re_or_json() -> None:
    """Encoding and decoding in a fresh interpreter imports neither re nor json (issue 5's budget)."""
    code = (
        "import sys\n"
        "from bootguard.model import jsoncodec as j\n"
        "v = j.loads(j.dumps({'a': [1, 2.5, None, 'x\\n']}, sort_keys=True, indent=1))\n"
        "assert v == {'a': [1, 2.5, None, 'x\\n']}, v\n"
        "print(sorted(m for m in ('re', 'json', 'json.decoder') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-S", "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert done.stdout.strip() == "[]"


def test_errors_are_json_errors_before_json_was_ever_imported() -> None:
    """In a fresh interpreter (json.decoder not loaded, as in the initrd) bad input raises json's own
    JSONDecodeError, and a corrupt event line is a one-line StateError, never SystemError."""
    code = (
        "import sys\n"
        "from bootguard.model import jsoncodec\n"
        "from bootguard.model.events import Event\n"
        "from bootguard.errors import StateError\n"
        "assert 'json.decoder' not in sys.modules\n"
        "for bad in ('{\"a\": [1, 2', '{\"v\": 1, \"kind\": \"x', '[1,]', '{'):\n"
        "    try:\n"
        "        jsoncodec.loads(bad)\n"
        "    except ValueError as exc:\n"
        "        assert type(exc).__name__ == 'JSONDecodeError', repr(exc)\n"
        "    else:\n"
        "        raise AssertionError(bad)\n"
        "try:\n"
        "    Event.from_json(b'{\"v\": 1, \"kind\": \"counted-fa\\n', source='events.jsonl line 3')\n"
        "except StateError as exc:\n"
        "    assert 'not valid JSON' in exc.message, exc.message\n"
        "print('ok')\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", f"import sys; sys.path.insert(0, {str(root)!r})\n" + code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and done.stdout == "ok\n", done.stderr
