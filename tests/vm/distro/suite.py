"""Runs a session's distribution scenarios two at a time next to the harness's own suite.

The harness's `VmSuite` runs minimal-guest scenarios only (its worker calls `harness.scenario.run_scenario`).
This pool shares what can be shared with it: the kernel, the accelerator probe, the run directory, the
systemd-boot binaries (fetched once, under its lock) and the summary table (`VmSuite.record`); QEMU
processes stay capped at two machine-wide by `harness.qemu.VM_SLOTS`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from tests.vm.distro.scenario import DistroResult, DistroScenario, run_distro_scenario
from tests.vm.harness.suite import VmSuite

DistroBuilder = Callable[[str], DistroScenario]  # loader major → scenario
MARK = "distro_scenario"


def distro_boots(builder: DistroBuilder) -> pytest.MarkDecorator:
    """The test asserts on the result of `builder(loader_major)`, run by the session's DistroSuite."""
    # `with_args`: a lone callable argument would otherwise be taken as the decorated function.
    return pytest.mark.distro_scenario.with_args(builder)


class DistroSuite:
    """Session-wide: a pool of two workers for distribution scenarios, keyed by (name, loader)."""

    def __init__(self, vm: VmSuite) -> None:
        self.vm = vm
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="distro")
        self._futures: dict[tuple[str, str], Future[DistroResult]] = {}
        self._lock = threading.Lock()

    def submit(self, scn: DistroScenario, major: str) -> Future[DistroResult]:
        """Start `scn` on systemd-boot `major` (once per name and loader); returns its future."""
        key = (scn.name, major)
        with self._lock:
            if key not in self._futures:
                self._futures[key] = self._pool.submit(self._run, scn, major)
            return self._futures[key]

    def _run(self, scn: DistroScenario, major: str) -> DistroResult:
        loader = self.vm.loader(major)
        workdir = self.vm.runs / f"distro-{scn.name}-{major}"
        return run_distro_scenario(scn, loader, self.vm.kernel, self.vm.accel, workdir)

    def results(self) -> list[DistroResult]:
        """The scenarios that finished, in submission order."""
        return [f.result() for f in self._futures.values() if f.done() and f.exception() is None]

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
