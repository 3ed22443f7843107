"""Hostile `checks.toml` values: each refused with one clear error naming the key, never accepted,
never a traceback (issue 15, validator items)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bootguard.errors import ConfigError
from bootguard.validator import config
from bootguard.validator import spec as s


def _load(tmp_path: Path, text: str) -> s.ValidatorConfig:
    path = tmp_path / "checks.toml"
    path.write_text(text)
    return config.load(str(path))


_CHECK = '[[check]]\nname = "c"\nkind = "path"\npath = "/"\n'


@pytest.mark.parametrize("key", ["timeout", "backoff", "grace"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-1", "-0.5", "1e300"])
def test_bad_check_seconds_are_refused_by_name(tmp_path: Path, key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=rf"check 'c': option '{key}' must be a number from"):
        _load(tmp_path, _CHECK + f"{key} = {value}\n")


@pytest.mark.parametrize("value", ["nan", "inf", "-3", "0", "1e12"])
def test_bad_deadline_is_refused(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match=r"\[validator\]: option 'deadline' must be a number from"):
        _load(tmp_path, f"[validator]\ndeadline = {value}\n")


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
@pytest.mark.parametrize("key", ["min_free_mb", "min_free_percent"])
def test_bad_disk_thresholds_are_refused(tmp_path: Path, key: str, value: str) -> None:
    text = f'[[check]]\nname = "d"\nkind = "disk"\n{key} = {value}\n'
    with pytest.raises(ConfigError, match=rf"option '{key}' must be a number"):
        _load(tmp_path, text)


def test_percent_above_100_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="min_free_percent"):
        _load(tmp_path, '[[check]]\nname = "d"\nkind = "disk"\nmin_free_percent = 250\n')


@pytest.mark.parametrize("value", ["1000000000", "101", "-1"])
def test_retry_counts_are_bounded(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match=r"option 'retries' must be an integer from 0 to 100"):
        _load(tmp_path, _CHECK + f"retries = {value}\n")


@pytest.mark.parametrize("value", ["reboot-after:nan", "reboot-after:inf", "reboot-after:-1"])
def test_bad_reboot_delay_is_refused(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match="on_failure"):
        _load(tmp_path, f'[validator]\non_failure = "{value}"\n')


@pytest.mark.parametrize("depth", [17, 500, 100_000])
def test_deeply_nested_toml_is_refused(tmp_path: Path, depth: int) -> None:
    with pytest.raises(ConfigError, match="nested"):
        _load(tmp_path, "x = " + "[" * depth + "]" * depth + "\n")


def test_nesting_inside_strings_and_comments_is_not_counted(tmp_path: Path) -> None:
    text = _CHECK.replace('path = "/"', 'path = "/[[[[[[[[[[[[[[[[[[[[[[["') + "# " + "[" * 40 + "\n"
    assert _load(tmp_path, text).checks[0].target == s.PathTarget("/" + "[" * 23)


def test_huge_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="too large"):
        _load(tmp_path, _CHECK + "# " + "x" * (5 << 20) + "\n")


def test_backoff_never_overflows_for_late_attempts() -> None:
    check = s.CheckSpec("c", s.CheckKind.PATH, s.PathTarget("/"), retries=100, backoff=1e6)
    assert check.delay_before(5000) == 30.0


_values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.booleans(),
    st.text(max_size=5),
)


@settings(max_examples=300, deadline=None)
@given(
    key=st.sampled_from(["timeout", "backoff", "grace", "retries"]),
    value=_values,
)
def test_any_value_is_accepted_sanely_or_refused_clearly(key: str, value: object) -> None:
    """Whatever the TOML value: a ConfigError, or a check with finite, bounded numbers."""
    table: dict[str, object] = {"name": "c", "kind": "path", "path": "/", key: value}
    try:
        cfg = config.parse({"check": [table]})
    except ConfigError as exc:
        refused = exc.message
    else:
        refused = ""
    if refused:
        assert key in refused
        return
    c = cfg.checks[0]
    for number in (c.timeout, c.backoff, c.grace):
        assert math.isfinite(number) and 0 <= number <= config.MAX_SECONDS
    assert 0 <= c.retries <= config.MAX_RETRIES
