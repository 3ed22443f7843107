"""The argparse-free fast path parses exactly what argparse would, and defers everything else."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bootguard.cli.commands import initrd, list_, status
from bootguard.cli.main import build_parser, global_options
from bootguard.cli.options import Opt, parse_fast

SAMPLES = [
    ["initrd"],
    ["--esp", "/e", "initrd", "--dry-run"],
    ["initrd", "--watchdog-timeout", "30", "--state-dir=/s", "--json"],
    ["--efivars", "/v", "initrd", "--spool-dir", "/sp", "--mount-esp", "--boot-id", "x", "--esp", "/e2"],
]


def _fast(argv: list[str]) -> dict[str, object] | None:
    ns = parse_fast(argv, "initrd", global_options(), initrd.OPTIONS)
    return None if ns is None else vars(ns)


@pytest.mark.parametrize("argv", SAMPLES)
def test_fast_path_agrees_with_argparse(argv: list[str]) -> None:
    """Every attribute argparse sets has the same value on the fast path."""
    slow = vars(build_parser("initrd").parse_args(argv))
    fast = _fast(argv)
    assert fast is not None
    assert {k: v for k, v in slow.items() if not k.startswith("_") and k != "command"} == fast


@pytest.mark.parametrize(
    "argv",
    [
        ["initrd", "--help"],
        ["initrd", "--watchdog-timeout", "x"],
        ["initrd", "--nope"],
        ["initrd", "--dry-run=1"],
        ["--dry-run", "initrd"],
        ["initrd", "--esp"],
        ["list"],
    ],
)
def test_anything_unusual_defers_to_argparse(argv: list[str]) -> None:
    """Help, typos, bad numbers and misplaced options are left to argparse's proper errors."""
    assert _fast(argv) is None


@given(
    st.lists(
        st.sampled_from(["initrd", "--dry-run", "--esp", "/x", "--watchdog-timeout", "5", "--json", "-"]),
        max_size=8,
    )
)
def test_never_crashes_and_never_disagrees(argv: list[str]) -> None:
    """On arbitrary token soups the fast path either defers or agrees with argparse."""
    fast = _fast(argv)
    if fast is None:
        return
    slow = vars(build_parser("initrd").parse_args(argv))
    assert {k: v for k, v in slow.items() if not k.startswith("_") and k != "command"} == fast


TABLED = [
    (["status"], "status", status.OPTIONS),
    (["--esp", "/e", "status", "--events", "3", "--json"], "status", status.OPTIONS),
    (["status", "--events=0", "--state-dir", "/s"], "status", status.OPTIONS),
    (["list"], "list", list_.OPTIONS),
    (["list", "--id-scheme", "stripped-lower", "--json"], "list", list_.OPTIONS),
    (["--efivars", "/v", "list", "--id-scheme=counter-kept"], "list", list_.OPTIONS),
]


@pytest.mark.parametrize(("argv", "command", "table"), TABLED)
def test_list_and_status_fast_path_agrees_with_argparse(
    argv: list[str], command: str, table: tuple[Opt, ...]
) -> None:
    """`list` and `status` run without argparse, with what argparse would have given them."""
    slow = vars(build_parser(command).parse_args(argv))
    fast = parse_fast(argv, command, global_options(), table)
    assert fast is not None
    assert {k: v for k, v in slow.items() if not k.startswith("_") and k != "command"} == vars(fast)


@pytest.mark.parametrize(
    ("argv", "command", "table"),
    [
        (["list", "--id-scheme", "bogus"], "list", list_.OPTIONS),  # argparse lists the choices
        (["list", "--id-scheme"], "list", list_.OPTIONS),
        (["status", "--events", "many"], "status", status.OPTIONS),
        (["status", "--help"], "status", status.OPTIONS),
    ],
)
def test_list_and_status_defer_the_unusual(argv: list[str], command: str, table: tuple[Opt, ...]) -> None:
    assert parse_fast(argv, command, global_options(), table) is None
