"""sd_notify through the wrapper: READY/STATUS/WATCHDOG on a real notify socket."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from bootguard.validator.sdnotify import Notifier, watchdog_interval


@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> socket.socket:
    path = str(tmp_path / "notify")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    server.settimeout(2)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    return server


def test_ready_and_status_arrive_as_utf8(notify_socket: socket.socket) -> None:
    """READY=1 with STATUS, as UTF-8 (what systemd reads; sdnotify's own notify() encodes Latin-1 and
    would fail on these characters); a newline in a status cannot start another assignment."""
    n = Notifier()
    n.ready("checks \u2192 all passed \u2713")
    n.status("running\nREADY=0")
    assert notify_socket.recv(4096) == "READY=1\nSTATUS=checks \u2192 all passed \u2713".encode()
    assert notify_socket.recv(4096) == b"STATUS=running READY=0"


def test_watchdog_pings_are_rate_limited(notify_socket: socket.socket) -> None:
    """WATCHDOG=1 at most every half interval unless forced."""
    now = [100.0]
    n = Notifier(clock=lambda: now[0])
    assert n.interval == 1.0
    assert n.ping() is True
    assert n.ping() is False
    now[0] += 0.6
    assert n.ping() is True
    assert n.ping(force=True) is True
    assert [notify_socket.recv(64) for _ in range(3)] == [b"WATCHDOG=1"] * 3


def test_watchdog_for_another_pid_is_ignored() -> None:
    """WATCHDOG_PID naming another process means the watchdog is not ours to feed."""
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, pid=42) is None
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}, pid=42) == 15.0
    assert watchdog_interval({}, pid=42) is None


def test_outside_systemd_everything_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without NOTIFY_SOCKET nothing is sent and nothing fails."""
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    n = Notifier()
    n.ready("x")
    assert n.enabled is False and n.ping() is False
