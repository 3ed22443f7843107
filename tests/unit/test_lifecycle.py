"""The whole lifecycle on a real directory tree, with bootguard's model of systemd-boot between boots:
pin golden, stage a trial, fail twice, land on golden, record it; a good trial is blessed."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from bootguard.services.simloader import SimulatedLoader
from tests.hosttree import HostTree

VERSIONS = [
    "systemd-boot 252.39-1~deb12u2",
    "systemd-boot 254.26-1~bpo12+1",
    "systemd-boot 257.13-1~deb13u1",
    "systemd-boot 262.1-1",
]


def _host_on_gen2(host: HostTree, info: str) -> SimulatedLoader:
    host.add_entry("nixos-generation-1.conf", version="Generation 1")
    host.add_entry("nixos-generation-2.conf", version="Generation 2")
    host.loader_conf("timeout 0\ndefault nixos-generation-2.conf\n")
    loader = SimulatedLoader(str(host.esp), str(host.efivars), info)
    loader.boot()
    code, _, err = host.cli("pin-golden")
    assert code == 0, err
    return loader


@pytest.mark.parametrize("info", VERSIONS)
def test_failed_trial_falls_back_to_golden_and_is_recorded(host: HostTree, info: str) -> None:
    """Two failed boots of a trial end on golden on every loader version, and the log says why."""
    loader = _host_on_gen2(host, info)
    host.add_entry("nixos-generation-3.conf", version="Generation 3")
    code, _, err = host.cli("trial", "nixos-generation-3.conf")
    assert code == 0, err
    assert host.get_var("LoaderEntryDefault") == "bootguard-*"

    first = loader.boot()
    assert first.selection.entry is not None and first.selection.entry.filename == "bootguard-trial+2.conf"
    code, _, err = host.cli(
        "initrd", "--boot-id", str(uuid.uuid4())
    )  # attempt 1 reaches the initrd, then the machine is reset
    assert code == 0, err
    second = loader.boot()  # attempt 2 panics in the kernel: bootguard never runs
    assert second.renamed_to is not None and second.renamed_to.endswith("bootguard-trial+0-2.conf")
    third = loader.boot()
    assert third.selection.entry is not None and third.selection.entry.filename == "bootguard-golden.conf"
    code, _, err = host.cli("initrd", "--boot-id", str(uuid.uuid4()))
    assert code == 0, err

    status = host.cli_json("status", "--events", "20")
    assert isinstance(status, dict)
    assert status["booted"] == "bootguard-golden.conf"
    assert status["trial"] is None
    kinds = [e["kind"] for e in status["events"]]
    assert "rolled-back" in kinds
    assert kinds.count("counted-failure") == 2
    assert not any(name.startswith("bootguard-trial") for name in host.entries())


@pytest.mark.parametrize("info", VERSIONS)
def test_good_trial_is_blessed_and_configuration_restored(host: HostTree, info: str) -> None:
    """A trial that boots and is marked good is blessed, its copy removed and the old default restored."""
    loader = _host_on_gen2(host, info)
    host.add_entry("nixos-generation-3.conf", version="Generation 3")
    host.loader_conf("timeout 0\ndefault nixos-generation-3.conf\n")
    assert host.cli("trial", "nixos-generation-3.conf")[0] == 0
    sim = loader.boot()
    assert sim.selection.entry is not None and sim.selection.entry.filename == "bootguard-trial+2.conf"
    assert host.cli("initrd", "--boot-id", str(uuid.uuid4()))[0] == 0
    code, out, err = host.cli("mark", "good")
    assert code == 0, err
    assert "trial of nixos-generation-3.conf finished" in out
    assert host.get_var("LoaderEntryDefault") is None
    assert not any(n.startswith("bootguard-trial") for n in host.entries())
    after = loader.boot()
    assert after.selection.entry is not None and after.selection.entry.filename == "nixos-generation-3.conf"


def _state(host: HostTree) -> dict[str, Any]:
    from bootguard.seams.statestore import StateStore

    return StateStore(str(host.state)).load().state.to_dict()


def test_commits_of_golden_trial_and_blessed_generation_are_kept_and_shown(
    host: HostTree, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pin-golden --commit, trial with $BOOTGUARD_COMMIT: status names both; once the trial is blessed
    the running generation's commit is the trial's, and the end is recorded as blessed."""
    host.add_entry("nixos-generation-1.conf", version="Generation 1")
    host.add_entry("nixos-generation-2.conf", version="Generation 2")
    host.loader_conf("timeout 0\ndefault nixos-generation-2.conf\n")
    loader = SimulatedLoader(str(host.esp), str(host.efivars), VERSIONS[-1])
    loader.boot()
    assert host.cli("pin-golden", "--commit", "AAAA1111")[0] == 0
    host.add_entry("nixos-generation-3.conf", version="Generation 3")
    host.loader_conf("timeout 0\ndefault nixos-generation-3.conf\n")  # as the installer leaves it
    monkeypatch.setenv("BOOTGUARD_COMMIT", "bbbb2222")
    code, _, err = host.cli("trial", "nixos-generation-3.conf")
    assert code == 0, err
    status = host.cli_json("status")
    assert isinstance(status, dict)
    assert status["golden"]["commit"] == "aaaa1111"
    assert status["trial"]["commit"] == "bbbb2222"
    assert status["running_commit"] == "aaaa1111"  # booted generation 2, pinned as golden
    loader.boot()
    assert host.cli("initrd", "--boot-id", str(uuid.uuid4()))[0] == 0
    assert host.cli_json("status")["running_commit"] == "bbbb2222"  # type: ignore[index]
    assert host.cli("mark", "good")[0] == 0
    status = host.cli_json("status")
    assert isinstance(status, dict)
    assert status["running_commit"] == "bbbb2222"
    assert status["last_trial"]["outcome"] == "blessed"
    assert status["last_trial"]["commit"] == "bbbb2222"
    loader.boot()  # the user's entry of generation 3 now
    assert host.cli_json("status")["running_commit"] == "bbbb2222"  # type: ignore[index]
    code, out, _ = host.cli("status")
    assert "commit:     bbbb2222" in out and "golden:     nixos-generation-2.conf (commit aaaa1111)" in out


def test_a_trial_rolled_back_after_its_tries_is_recorded_failed_with_its_cause(host: HostTree) -> None:
    loader = _host_on_gen2(host, VERSIONS[0])
    host.add_entry("nixos-generation-3.conf", version="Generation 3")
    assert host.cli("trial", "nixos-generation-3.conf", "--commit", "cccc3333")[0] == 0
    loader.boot()
    loader.boot()  # both tries die before bootguard runs
    loader.boot()  # golden
    assert host.cli("initrd", "--boot-id", str(uuid.uuid4()))[0] == 0
    ends = _state(host)["finished_trials"]
    assert isinstance(ends, list) and len(ends) == 1
    end = ends[0]
    assert (end["entry_id"], end["commit"], end["outcome"], end["cause"], end["seq"]) == (
        "nixos-generation-3.conf",
        "cccc3333",
        "failed",
        "failed-before-bootguard",
        1,
    )
    assert _state(host)["trial"] is None  # ended in the same update


def test_a_commit_that_is_not_a_git_id_is_a_usage_error(host: HostTree) -> None:
    _host_on_gen2(host, VERSIONS[0])
    host.add_entry("nixos-generation-3.conf", version="Generation 3")
    code, _, err = host.cli("trial", "nixos-generation-3.conf", "--commit", "main; rm -rf")
    assert code != 0 and "--commit must be a git commit id" in err
