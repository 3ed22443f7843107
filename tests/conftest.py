from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.hosttree import HostTree

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def host(tmp_path: Path) -> HostTree:
    """A real ESP/efivars/state tree under tmp_path."""
    return HostTree(tmp_path)
