"""Markers for VM tests: which scenario a test boots, and which bootguard commands it still waits for."""

from __future__ import annotations

import importlib.util

import pytest

from tests.vm.harness.suite import Builder

SCENARIO_MARK = "vm_scenario"


def command_module(command: str) -> str:
    """`pin-golden` → `bootguard.cli.commands.pin_golden`; `list` → `…list_` (as cli/main.py names them)."""
    name = command.replace("-", "_")
    return f"bootguard.cli.commands.{name}_" if name == "list" else f"bootguard.cli.commands.{name}"


def command_exists(command: str) -> bool:
    return importlib.util.find_spec(command_module(command)) is not None


def missing_commands(*commands: str) -> list[str]:
    return [c for c in commands if not command_exists(c)]


def boots(builder: Builder) -> pytest.MarkDecorator:
    """The test asserts on the result of `builder(loader_major)`, run by the session's VmSuite."""
    # `with_args`: a lone callable argument would otherwise be taken as the decorated function.
    return pytest.mark.vm_scenario.with_args(builder)


def pending_on(*commands: str) -> pytest.MarkDecorator:
    """Not run (reported as xfail "pending") while any of `bootguard COMMAND…` is not written yet.

    Once every command exists this marker does nothing and the test runs for real (and must pass):
    nothing stays silently expected-to-fail.
    """
    missing = missing_commands(*commands)
    reason = "pending: needs `bootguard " + "`, `bootguard ".join(missing) + "` (not written yet)"
    return pytest.mark.xfail(bool(missing), reason=reason, run=False, strict=True)
