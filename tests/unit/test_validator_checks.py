"""Probes of each kind. systemctl and ping go through the subprocess seam with recorded output."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bootguard.errors import CommandError
from bootguard.seams import proc
from bootguard.validator import spec as s
from bootguard.validator.checks import probe

# Recorded from systemd 252 (Debian 12).
FAILED_UNITS = (
    "● nginx.service         loaded failed failed A high performance web server\n"
    "  systemd-networkd-wait-online.service loaded failed failed Wait for Network to be Configured\n"
)


class Recorder:
    """A stand-in for `proc.run` answering from a table of argv → (code, stdout, stderr)."""

    def __init__(self, answers: dict[tuple[str, ...], tuple[int, str, str]]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, ...]] = []

    def __call__(self, argv: list[str], **kw: object) -> proc.Completed:
        args = tuple(argv)
        self.calls.append(args)
        if args not in self.answers:
            raise CommandError(f"{args[0]} did not finish within {kw.get('timeout')} s", argv=args)
        code, out, err = self.answers[args]
        return proc.Completed(args, code, out, err)


def _check(target: s.Target, kind: s.CheckKind) -> s.CheckSpec:
    return s.CheckSpec("c", kind, target)


@pytest.fixture
def seam(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    rec = Recorder(
        {
            ("systemctl", "is-active", "--", "sshd.service"): (0, "active\n", ""),
            ("systemctl", "is-active", "--", "nginx.service"): (3, "failed\n", ""),
            ("systemctl", "is-active", "--", "nope.service"): (4, "inactive\n", ""),
            ("ping", "-c", "1", "-W", "2", "--", "10.0.0.1"): (1, "", "1 packets transmitted, 0 received"),
            ("ping", "-c", "1", "-W", "2", "--", "gw"): (0, "1 received", ""),
        }
    )
    monkeypatch.setattr(proc, "run", rec)
    return rec


def test_unit_active_passes_and_failed_unit_fails(seam: Recorder) -> None:
    """`systemctl is-active` decides a unit check; the message says the state."""
    ok = probe(_check(s.UnitTarget("sshd.service"), s.CheckKind.UNIT), 5)
    bad = probe(_check(s.UnitTarget("nginx.service"), s.CheckKind.UNIT), 5)
    assert ok.ok and ok.message == "sshd.service is active"
    assert not bad.ok and bad.message == "nginx.service is failed"
    assert seam.calls[0] == ("systemctl", "is-active", "--", "sshd.service")


def test_systemctl_hanging_is_a_timeout(seam: Recorder) -> None:
    """A systemctl call killed at its timeout is reported as timed out, not as a state."""
    result = probe(_check(s.UnitTarget("hang.service"), s.CheckKind.UNIT), 5)
    assert result.timed_out and not result.ok


def test_no_failed_units_lists_them_and_honours_ignore(monkeypatch: pytest.MonkeyPatch) -> None:
    """Failed units (with or without the ● bullet) fail the check unless ignored."""
    argv = ("systemctl", "list-units", "--state=failed", "--plain", "--no-legend", "--no-pager")
    monkeypatch.setattr(proc, "run", Recorder({argv: (0, FAILED_UNITS, "")}))
    bad = probe(_check(s.NoFailedUnitsTarget(), s.CheckKind.NO_FAILED_UNITS), 5)
    assert not bad.ok
    assert bad.message == "2 failed unit(s): nginx.service, systemd-networkd-wait-online.service"
    ignore = ("nginx.service", "systemd-networkd-wait-online.service")
    assert probe(_check(s.NoFailedUnitsTarget(ignore), s.CheckKind.NO_FAILED_UNITS), 5).ok
    monkeypatch.setattr(proc, "run", Recorder({argv: (0, "", "")}))
    assert probe(_check(s.NoFailedUnitsTarget(), s.CheckKind.NO_FAILED_UNITS), 5).message == "no failed units"


def test_ping_uses_the_timeout_as_wait(seam: Recorder) -> None:
    """ping -c 1 -W <timeout>; a lost packet fails with ping's own words."""
    assert probe(_check(s.PingTarget("gw"), s.CheckKind.PING), 2).ok
    lost = probe(_check(s.PingTarget("10.0.0.1"), s.CheckKind.PING), 2)
    assert not lost.ok and "0 received" in lost.message


def test_path_exists(tmp_path: Path) -> None:
    """A path check passes when the path exists, fails naming it otherwise."""
    assert probe(_check(s.PathTarget(str(tmp_path)), s.CheckKind.PATH), 1).ok
    missing = probe(_check(s.PathTarget(str(tmp_path / "x")), s.CheckKind.PATH), 1)
    assert not missing.ok and str(tmp_path / "x") in missing.message


def test_disk_thresholds(tmp_path: Path) -> None:
    """Free space is compared in MiB and in percent; an impossible threshold fails."""
    st = os.statvfs(tmp_path)
    free_mb = st.f_bavail * st.f_frsize / 2**20
    assert probe(_check(s.DiskTarget(str(tmp_path), min_free_mb=1), s.CheckKind.DISK), 1).ok
    too_much = probe(_check(s.DiskTarget(str(tmp_path), min_free_mb=free_mb * 10 + 1), s.CheckKind.DISK), 1)
    assert not too_much.ok and "MiB" in too_much.message
    assert not probe(_check(s.DiskTarget(str(tmp_path), min_free_percent=100.1), s.CheckKind.DISK), 1).ok
    gone = probe(_check(s.DiskTarget(str(tmp_path / "gone"), min_free_mb=1), s.CheckKind.DISK), 1)
    assert not gone.ok and "No such file" in gone.message
