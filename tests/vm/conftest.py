"""Fixtures for the real-boot tests and the scenario summary table printed at the end of the session.

A VM test is `@pytest.mark.vm`, parametrized over `loader` (systemd-boot major versions), marked with
`marks.boots(builder)` and takes the `vm_result` fixture: the `ScenarioResult` of `builder(loader)`.
All selected scenarios are started up front, two at a time (see harness/suite.py).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import cast

import pytest

from tests.vm.harness.cache import cache_root
from tests.vm.harness.marks import SCENARIO_MARK
from tests.vm.harness.scenario import ScenarioResult
from tests.vm.harness.suite import Builder, Row, VmSuite

SUITE_KEY = pytest.StashKey[VmSuite]()
RESULT_KEY = pytest.StashKey[ScenarioResult]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{SCENARIO_MARK}(builder): the scenario a VM test boots")


def _builder(item: pytest.Item) -> Builder | None:
    mark = item.get_closest_marker(SCENARIO_MARK)
    return cast("Builder", mark.args[0]) if mark is not None else None


def _major(item: pytest.Item) -> str:
    callspec = getattr(item, "callspec", None)
    if callspec is None or "loader" not in callspec.params:
        raise pytest.UsageError(f"{item.nodeid}: VM tests must be parametrized over `loader`")
    return str(callspec.params["loader"])


def _pending(item: pytest.Item) -> bool:
    mark = item.get_closest_marker("xfail")
    return bool(mark is not None and mark.args and mark.args[0] and not mark.kwargs.get("run", True))


@pytest.fixture(scope="session")
def vm_suite(request: pytest.FixtureRequest) -> Generator[VmSuite, None, None]:
    """The session's VM runner; starts every selected scenario, two at a time, in test order."""
    suite = VmSuite()
    request.config.stash[SUITE_KEY] = suite
    for item in request.session.items:
        builder = _builder(item)
        if builder is not None and not _pending(item):
            major = _major(item)
            suite.submit(builder(major), major)
    yield suite
    suite.close()


@pytest.fixture
def vm_result(request: pytest.FixtureRequest, vm_suite: VmSuite) -> ScenarioResult:
    """The result of this test's scenario on this test's systemd-boot version (waits for it)."""
    builder = _builder(request.node)
    if builder is None:
        raise pytest.UsageError(f"{request.node.nodeid}: vm_result needs @marks.boots(builder)")
    major = _major(request.node)
    result = vm_suite.submit(builder(major), major).result()
    request.node.stash[RESULT_KEY] = result
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    builder = _builder(item)
    suite = item.config.stash.get(SUITE_KEY, None)
    if builder is None or suite is None:
        return report
    major = _major(item)
    if report.when == "setup" and report.skipped:  # pending (xfail run=False) or skipped
        reason = str(getattr(report, "wasxfail", "") or "skipped")
        suite.record(item.nodeid, Row(builder(major).name, major, "-", reason, "-"))
    elif report.when == "call" or (report.when == "setup" and report.failed):
        result = item.stash.get(RESULT_KEY, None)
        outcome = "passed" if report.passed else ("xfailed" if hasattr(report, "wasxfail") else "FAILED")
        suite.record(
            item.nodeid,
            Row(
                scenario=builder(major).name,
                loader=result.loader.version if result else major,
                boots=str(len(result.boots)) if result else "-",
                result=outcome + (result.run.how_it_stopped() if result else ""),
                seconds=f"{result.seconds:.0f}" if result else "-",
            ),
        )
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    suite = config.stash.get(SUITE_KEY, None)
    if suite is None or not suite.rows:
        return
    table = suite.table()
    terminalreporter.section("VM scenario summary")
    terminalreporter.write_line(f"accelerator: {suite.accel}; runs in {suite.runs}")
    terminalreporter.write_line(table)
    (suite.runs / "summary.txt").write_text(table + "\n")
    (cache_root() / "last-summary.txt").write_text(f"runs: {suite.runs}\n{table}\n")
