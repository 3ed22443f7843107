"""Fixtures for distribution-guest tests, their rows in the VM summary table, and a timing report.

A distribution test is `@pytest.mark.vm`, parametrized over `loader`, marked `suite.distro_boots(builder)` and
takes `distro_result`: the `DistroResult` of `builder(loader)`. Every selected scenario is started up
front, two at a time; the first one builds (or finds) the cached root image.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import cast

import pytest

from tests.vm.distro import rootfs
from tests.vm.distro.scenario import DistroResult
from tests.vm.distro.suite import MARK, DistroBuilder, DistroSuite
from tests.vm.harness.suite import Row, VmSuite

DISTRO_KEY = pytest.StashKey[DistroSuite]()
RESULT_KEY = pytest.StashKey[DistroResult]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARK}(builder): the distribution scenario a VM test boots")
    config.addinivalue_line(
        "markers", "distro_row(label): the phase a test of a shared scenario asserts (VM table)"
    )


def _builder(item: pytest.Item) -> DistroBuilder | None:
    mark = item.get_closest_marker(MARK)
    return cast("DistroBuilder", mark.args[0]) if mark is not None else None


def _major(item: pytest.Item) -> str:
    callspec = getattr(item, "callspec", None)
    if callspec is None or "loader" not in callspec.params:
        raise pytest.UsageError(f"{item.nodeid}: distribution tests must be parametrized over `loader`")
    return str(callspec.params["loader"])


@pytest.fixture(scope="session")
def distro_suite(request: pytest.FixtureRequest, vm_suite: VmSuite) -> Generator[DistroSuite, None, None]:
    """The session's distribution runner; starts every selected distribution scenario up front."""
    suite = DistroSuite(vm_suite)
    request.config.stash[DISTRO_KEY] = suite
    for item in request.session.items:
        builder = _builder(item)
        if builder is not None:
            major = _major(item)
            suite.submit(builder(major), major)
    yield suite
    suite.close()


@pytest.fixture
def distro_result(request: pytest.FixtureRequest, distro_suite: DistroSuite) -> DistroResult:
    """The result of this test's scenario on this test's systemd-boot version (waits for it)."""
    builder = _builder(request.node)
    if builder is None:
        raise pytest.UsageError(f"{request.node.nodeid}: distro_result needs @distro_boots(builder)")
    major = _major(request.node)
    result = distro_suite.submit(builder(major), major).result()
    request.node.stash[RESULT_KEY] = result
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    builder = _builder(item)
    suite = item.config.stash.get(DISTRO_KEY, None)
    if builder is None or suite is None or not (report.when == "call" or report.failed):
        return report
    major = _major(item)
    result = item.stash.get(RESULT_KEY, None)
    outcome = "passed" if report.passed else "FAILED"
    if result is not None:
        outcome += result.run.how_it_stopped()
    suite.vm.record(
        item.nodeid,
        Row(
            scenario=f"distro/{builder(major).name}"
            + (f" {row.args[0]}" if (row := item.get_closest_marker("distro_row")) else ""),
            loader=result.loader.version if result else major,
            boots=str(len(result.boots)) if result else "-",
            result=outcome,
            seconds=f"{result.seconds:.0f}" if result else "-",
        ),
    )
    return report


def _timing_lines(suite: DistroSuite) -> list[str]:
    lines = [b.describe() for b in rootfs.BUILDS]
    for r in suite.results():
        boots = ", ".join(f"#{b.n} {b.entry_file} (init at {b.uptime:.1f} s)" for b in r.boots)
        completed = ", ".join(
            f"#{s.get('n')} boot-complete at {int(s.get('complete_us') or 0) / 1e6:.1f} s"
            for s in r.sys_lines()
        )
        lines.append(
            f"{r.scenario.name} / {r.loader.major}: {r.seconds:.0f} s wall, {r.run.cpu:.0f} s QEMU CPU; "
            f"boots: {boots}" + (f"; {completed}" if completed else "")
        )
    return lines


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    suite = config.stash.get(DISTRO_KEY, None)
    if suite is None:
        return
    terminalreporter.section("distribution guest timings")
    for line in _timing_lines(suite):
        terminalreporter.write_line(line)
