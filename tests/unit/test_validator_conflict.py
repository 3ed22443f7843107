"""Detecting systemd-bless-boot, the competing blesser, with recorded `systemctl is-enabled` output."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bootguard.seams import proc
from bootguard.validator import conflict


def _answer(monkeypatch: pytest.MonkeyPatch, code: int, out: str) -> list[tuple[str, ...]]:
    calls: list[tuple[str, ...]] = []

    def run(argv: list[str], **kw: object) -> proc.Completed:
        calls.append(tuple(argv))
        return proc.Completed(tuple(argv), code, out, "")

    monkeypatch.setattr(proc, "run", run)
    return calls


def _generator(root: Path) -> None:
    gen = root / "usr/lib/systemd/system-generators" / conflict.GENERATOR
    gen.parent.mkdir(parents=True)
    gen.write_text("")


def test_masked_service_is_no_conflict(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`masked` is the documented resolution: nothing to report."""
    calls = _answer(monkeypatch, 1, "masked\n")
    _generator(tmp_path)
    assert conflict.detect(root=str(tmp_path)) is None
    assert calls == [("systemctl", "is-enabled", "systemd-bless-boot.service")]


def test_generator_link_in_this_boot_is_a_conflict(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A static service pulled in by the generator this boot conflicts; the hint says how to mask it."""
    _answer(monkeypatch, 0, "static\n")
    link = tmp_path / "run/systemd/generator.early/basic.target.wants/systemd-bless-boot.service"
    link.parent.mkdir(parents=True)
    link.symlink_to("/usr/lib/systemd/system/systemd-bless-boot.service")
    found = conflict.detect(root=str(tmp_path))
    assert found is not None and "pulled" in found.reason
    assert "systemctl mask systemd-bless-boot.service" in found.hint


def test_installed_generator_is_a_conflict_unless_masked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The generator would enable bless-boot on counted boots; masking the generator also resolves it."""
    _answer(monkeypatch, 0, "static\n")
    _generator(tmp_path)
    assert conflict.detect(root=str(tmp_path)) is not None
    mask = tmp_path / "etc/systemd/system-generators" / conflict.GENERATOR
    mask.parent.mkdir(parents=True)
    os.symlink("/dev/null", mask)
    assert conflict.detect(root=str(tmp_path)) is None


def test_enabled_is_a_conflict_and_absent_is_not(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An explicitly enabled unit conflicts; a system without systemd-bless-boot does not."""
    _answer(monkeypatch, 0, "enabled\n")
    assert conflict.detect(root=str(tmp_path)) == conflict.Conflict(
        "enabled", "systemd-bless-boot.service is enabled"
    )
    _answer(monkeypatch, 1, "")  # "Failed to get unit file state … No such file" goes to stderr
    assert conflict.detect(root=str(tmp_path)) is None
