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


@pytest.fixture(scope="session")
def _metrics_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("node-exporter")


@pytest.fixture(autouse=True)
def _metrics_file(_metrics_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs export metrics to $BOOTGUARD_METRICS_FILE, else to node-exporter's real textfile directory
    when it exists: tests must never write the machine's /var/lib/prometheus/node-exporter."""
    monkeypatch.setenv("BOOTGUARD_METRICS_FILE", str(_metrics_dir / "bootguard.prom"))
