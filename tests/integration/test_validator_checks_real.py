"""Checks against real things: processes, sockets, an HTTP server on loopback, DNS for localhost."""

from __future__ import annotations

import http.server
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bootguard.validator import config
from bootguard.validator import spec as s
from bootguard.validator.checks import probe
from bootguard.validator.results import Result
from bootguard.validator.runner import run_checks

pytestmark = pytest.mark.integration


def _check(name: str, target: s.Target, kind: s.CheckKind, **kw: object) -> s.CheckSpec:
    return s.CheckSpec(name, kind, target, **kw)  # type: ignore[arg-type]


def test_command_exit_status_and_output_decide(tmp_path: Path) -> None:
    """Exit 0 passes; non-zero fails with the last output line; a missing program says so."""
    ok = probe(_check("t", s.CommandTarget(("sh", "-c", "echo fine")), s.CheckKind.COMMAND), 5)
    bad = probe(_check("f", s.CommandTarget(("sh", "-c", "echo broken >&2; exit 3")), s.CheckKind.COMMAND), 5)
    missing = probe(_check("m", s.CommandTarget((str(tmp_path / "nope"),)), s.CheckKind.COMMAND), 5)
    assert ok.ok and ok.message == "fine"
    assert not bad.ok and bad.message == "sh exited 3: broken"
    assert not missing.ok and "command not found" in missing.message


def test_hung_check_ends_at_its_timeout_and_is_killed(tmp_path: Path) -> None:
    """`sleep 1000` with timeout 1 ends in about 1 s, and the process no longer exists afterwards."""
    pidfile = tmp_path / "pid"
    argv = ("sh", "-c", f"echo $$ > {pidfile}; exec sleep 1000")
    start = time.monotonic()
    report = run_checks([_check("hung", s.CommandTarget(argv), s.CheckKind.COMMAND, timeout=1)], deadline=60)
    elapsed = time.monotonic() - start
    assert 0.9 <= elapsed < 3.0
    c = report.checks[0]
    assert c.result is Result.TIMEOUT and "did not finish within 1 s" in c.message
    pid = int(pidfile.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_tcp_accepts_and_refuses() -> None:
    """A listening loopback socket passes; a closed port fails with the OS's reason."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert probe(_check("up", s.TcpTarget("127.0.0.1", port), s.CheckKind.TCP), 2).ok
    refused = probe(_check("down", s.TcpTarget("127.0.0.1", port), s.CheckKind.TCP), 2)
    assert not refused.ok and "refused" in refused.message.lower()


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        code = int(self.path.strip("/") or 200)
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_base() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_http_expected_status(http_base: str) -> None:
    """GET passes on an expected status (also non-2xx when expected) and fails on others."""
    assert probe(_check("h", s.HttpTarget(f"{http_base}/200"), s.CheckKind.HTTP), 5).ok
    assert probe(_check("h", s.HttpTarget(f"{http_base}/503", (503,)), s.CheckKind.HTTP), 5).ok
    bad = probe(_check("h", s.HttpTarget(f"{http_base}/500", (200, 204)), s.CheckKind.HTTP), 5)
    assert not bad.ok and bad.message.endswith("status 500, expected 200, 204")


def test_http_connection_refused_fails() -> None:
    """Nobody listening → a failure naming the URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = probe(_check("h", s.HttpTarget(f"http://127.0.0.1:{port}/"), s.CheckKind.HTTP), 2)
    assert not result.ok and f"127.0.0.1:{port}" in result.message


def test_dns_localhost_resolves_and_garbage_does_not() -> None:
    """localhost resolves through the real resolver; an invalid name fails."""
    ok = probe(_check("localhost", s.DnsTarget("localhost"), s.CheckKind.DNS), 5)
    assert ok.ok and "127.0.0.1" in ok.message
    assert not probe(_check("x", s.DnsTarget("no-such-host.invalid"), s.CheckKind.DNS), 5).ok


def test_dropin_scripts_run_as_checks(tmp_path: Path) -> None:
    """greenboot-style required.d/wanted.d scripts run for real; a failing wanted one only informs."""
    req = tmp_path / "check" / "required.d"
    wanted = tmp_path / "check" / "wanted.d"
    req.mkdir(parents=True)
    wanted.mkdir()
    (req / "10-ok.sh").write_text("echo required ok\n")  # not executable: run with bash like greenboot
    (wanted / "20-bad").write_text("#!/bin/sh\necho wanted broke >&2\nexit 1\n")
    os.chmod(wanted / "20-bad", 0o755)
    (tmp_path / "checks.toml").write_text("")
    cfg = config.load(str(tmp_path / "checks.toml"))
    report = run_checks(cfg.checks, deadline=30)
    by = {c.name: c for c in report.checks}
    assert (
        by["required.d/10-ok.sh"].result is Result.PASS and by["required.d/10-ok.sh"].message == "required ok"
    )
    assert by["wanted.d/20-bad"].result is Result.FAIL and "wanted broke" in by["wanted.d/20-bad"].message
    assert report.passed
