"""Hostile inputs (issue 15): an attacker's or a careless operator's ESP, EFI variables and state.

Every case asserts the three things the issue counts: no traceback (a `bootguard: error:` line or
success), no wrong result, nothing lost or written outside the ESP. Each file's module docstring
names its category; `tally.py` in this directory counts the cases for the closing note.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.hosttree import HostTree

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def host(tmp_path: Path) -> HostTree:
    return HostTree(tmp_path)


def clear_error(result: tuple[int, str, str]) -> str:
    """The one-line error of a refused command (asserts it is one, with no traceback)."""
    code, out, err = result
    assert code != 0, (out, err)
    assert "Traceback" not in err, err
    assert err.startswith("bootguard: error: ") or "\nbootguard: error: " in err, err
    return err


def trial_host(host: HostTree) -> HostTree:
    """Golden a.conf pinned (booted, blessed), b.conf ready to be tried."""
    host.add_entry("a.conf", version="1")
    host.add_entry("b.conf", version="2")
    host.booted("a.conf")
    host.set_var("LoaderEntryDefault", "a.conf")
    code, _, err = host.cli("pin-golden", "a.conf")
    assert code == 0, err
    return host
