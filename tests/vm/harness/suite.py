"""Runs a session's scenarios two at a time and keeps the summary table.

pytest runs tests one after another; a VM test would leave the second core idle. So the session
submits every selected scenario to a pool of two workers up front (in test order) and each test waits
only for its own result. `qemu.VM_SLOTS` caps the number of QEMU processes at two as well.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tests.vm.harness.cache import cache_dir
from tests.vm.harness.grub import GRUB, grub_loader
from tests.vm.harness.packages import Kernel, LoaderBinary, debian_kernel, systemd_boot
from tests.vm.harness.qemu import probe_accel
from tests.vm.harness.scenario import Scenario, ScenarioResult, run_scenario

Builder = Callable[[str], Scenario]  # loader major ("257" …, or "grub") → scenario


@dataclass
class Row:
    """One line of the summary table."""

    scenario: str
    loader: str
    boots: str
    result: str
    seconds: str


class VmSuite:
    """Session-wide: the kernel, the accelerator, the pool, and every result for the summary."""

    def __init__(self, runs_root: Path | None = None) -> None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.runs = runs_root or cache_dir("runs", stamp)
        self.kernel: Kernel = debian_kernel()
        self.accel = probe_accel(self.runs / "kvm-probe")
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="vm")
        self._futures: dict[tuple[str, str], Future[ScenarioResult]] = {}
        self._loaders: dict[str, LoaderBinary] = {}
        self._lock = threading.Lock()
        self.rows: dict[str, Row] = {}  # by pytest node id

    def loader(self, major: str) -> LoaderBinary:
        with self._lock:
            if major not in self._loaders:
                self._loaders[major] = grub_loader() if major == GRUB else systemd_boot(major)
            return self._loaders[major]

    def submit(self, scn: Scenario, major: str) -> Future[ScenarioResult]:
        """Start `scn` on systemd-boot `major` or GRUB (once per name and loader); returns its future."""
        key = (scn.name, major)
        with self._lock:
            if key not in self._futures:
                self._futures[key] = self._pool.submit(self._run, scn, major)
            return self._futures[key]

    def _run(self, scn: Scenario, major: str) -> ScenarioResult:
        loader = self.loader(major)
        return run_scenario(scn, loader, self.kernel, self.accel, self.runs / f"{scn.name}-{major}")

    def close(self) -> None:
        for future in self._futures.values():
            future.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def record(self, nodeid: str, row: Row) -> None:
        self.rows[nodeid] = row

    def table(self) -> str:
        """The summary table: scenario, boot loader (systemd-boot or GRUB) version, boots, result, seconds."""
        header = Row("scenario", "loader", "boots", "result", "seconds")
        rows = [header, *self.rows.values()]
        widths = [max(len(getattr(r, f)) for r in rows) for f in ("scenario", "loader", "boots", "result")]
        lines = []
        for r in rows:
            cells = [r.scenario, r.loader, r.boots, r.result]
            lines.append(
                "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + "  " + r.seconds.rjust(7)
            )
        return "\n".join(lines)
