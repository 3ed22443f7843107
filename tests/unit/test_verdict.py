"""The one blesser: what a validation verdict does on a real tree."""

from __future__ import annotations

from bootguard.demo.simloader import SimulatedLoader
from bootguard.seams.efivars import EfiVars
from bootguard.seams.statestore import StateStore
from bootguard.services import verdict
from bootguard.services.bootview import BootView
from tests.hosttree import HostTree


def _view(host: HostTree) -> BootView:
    return BootView.gather(str(host.esp), None, str(host.efivars))


def _on_trial(host: HostTree) -> SimulatedLoader:
    host.add_entry("gen-1.conf", version="1")
    host.add_entry("gen-2.conf", version="2")
    loader = SimulatedLoader(str(host.esp), str(host.efivars), "systemd-boot 262.1-1")
    loader.boot()
    assert host.cli("pin-golden", "gen-2.conf")[0] == 0
    host.add_entry("gen-3.conf", version="3")
    assert host.cli("trial", "gen-3.conf")[0] == 0
    loader.boot()
    return loader


def test_pass_blesses_and_finishes_trial(host: HostTree) -> None:
    """Passing checks on a trial bless it and remove bootguard's trial copy."""
    _on_trial(host)
    v = verdict.passed(_view(host), StateStore(host.state), EfiVars(str(host.efivars)))
    assert v.next == verdict.CONTINUE
    assert "bootguard-trial.conf" not in host.entries()
    assert not any(n.startswith("bootguard-trial") for n in host.entries())


def test_failure_marks_bad_and_asks_for_reboot(host: HostTree) -> None:
    """A failed validation of the trial marks it bad (+0-N) and asks for a reboot into golden."""
    loader = _on_trial(host)
    v = verdict.failed(_view(host), StateStore(host.state), "check sshd failed")
    assert v.next == verdict.REBOOT
    assert "bootguard-trial+0-1.conf" in host.entries()
    sim = loader.boot()
    assert sim.selection.entry is not None and sim.selection.entry.filename == "bootguard-golden.conf"


def test_failure_on_golden_halts_without_reboot(host: HostTree) -> None:
    """When golden itself fails validation bootguard halts: no reboot, status explains it."""
    loader = _on_trial(host)
    verdict.failed(_view(host), StateStore(host.state), "check sshd failed")
    loader.boot()  # now on golden
    v = verdict.failed(_view(host), StateStore(host.state), "check sshd failed")
    assert v.next == verdict.HALT
    status = host.cli_json("status")
    assert isinstance(status, dict)
    assert "golden" in str(status["halted"])
    assert any("stopped rearranging" in a for a in status["advice"])
