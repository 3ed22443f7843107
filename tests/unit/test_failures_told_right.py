"""Every failure told right (issue 13, part 3): each failed boot gets its own evidence or says it has
none; an orderly shutdown is not a failure; history and status follow the generation, not the name
the loader gave its file at the moment."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bootguard.demo.simloader import SimulatedLoader
from bootguard.seams.statestore import StateStore
from tests.hosttree import HostTree

LOADER = "systemd-boot 252.39-1~deb12u2"


def _on_trial(host: HostTree, tries: int = 3) -> SimulatedLoader:
    host.add_entry("gen-1.conf", version="1")
    host.loader_conf("timeout 0\ndefault gen-1.conf\n")
    loader = SimulatedLoader(str(host.esp), str(host.efivars), LOADER)
    loader.boot()
    assert host.cli("pin-golden")[0] == 0
    assert host.initrd()  # golden's own boot is recorded, and...
    assert host.cli("record-shutdown", "--boot-id", "x")[0] == 0  # ...ends in order (another boot id)
    host.add_entry("gen-2.conf", version="2")
    assert host.cli("trial", "gen-2.conf", "--tries", str(tries))[0] == 0
    return loader


def _panic_record(pstore: Path, name: str, when: float) -> None:
    pstore.mkdir(exist_ok=True)
    path = pstore / name
    path.write_text(f"Kernel panic - not syncing: {name}\n")
    os.utime(path, (when, when))


def _failures(host: HostTree) -> list[dict[str, Any]]:
    return [e for e in host.events() if e["kind"] == "counted-failure"]


def test_two_panics_are_blamed_on_their_own_records(host: HostTree, tmp_path: Path) -> None:
    """Two tries panic before bootguard runs; pstore kept both records: each failure names its own."""
    loader = _on_trial(host)
    pstore = tmp_path / "pstore"
    loader.boot()
    _panic_record(pstore, "dmesg-efi-111", 1000.0)
    loader.boot()
    _panic_record(pstore, "dmesg-efi-222", 2000.0)
    loader.boot()  # try 3
    host.initrd("--pstore", str(pstore))
    failures = _failures(host)
    assert [(f["cause"], (f["data"] or {}).get("evidence")) for f in failures] == [
        ("kernel-panic", "dmesg-efi-111"),
        ("kernel-panic", "dmesg-efi-222"),
    ]
    assert [f["entry"] for f in failures] == ["gen-2.conf"] * 2  # the generation, not the copy's name
    copies = [(f["data"] or {}).get("copy") for f in failures]
    assert copies == ["bootguard-trial+2-1.conf", "bootguard-trial+1-2.conf"]  # as they were named then


def test_a_failure_without_a_record_of_its_own_says_so(host: HostTree, tmp_path: Path) -> None:
    """Two failed tries, one pstore record: the newest failure gets it, the older says it has none."""
    loader = _on_trial(host)
    pstore = tmp_path / "pstore"
    loader.boot()
    loader.boot()
    _panic_record(pstore, "dmesg-efi-9", 1000.0)
    loader.boot()
    host.initrd("--pstore", str(pstore))
    failures = _failures(host)
    assert [f["cause"] for f in failures] == ["failed-before-bootguard", "kernel-panic"]
    assert "no crash record of its own" in str(failures[0]["message"])
    assert "dmesg-efi-9" in str(failures[1]["message"]) and "dmesg-efi-9" not in str(failures[0]["message"])


def test_an_orderly_shutdown_is_not_a_failure(host: HostTree) -> None:
    """A boot that shuts down in order before any verdict is recorded as such, not as a crash; a boot
    without that record still is 'ended without a verdict'."""
    host.add_entry("gen-1.conf", version="1")
    host.booted("gen-1.conf")
    host.cli("--json", "initrd", "--boot-id", "boot-1")
    code, out, err = host.cli("record-shutdown", "--boot-id", "boot-1")
    assert code == 0, err
    assert "orderly shutdown" in out
    assert host.cli("--json", "initrd", "--boot-id", "boot-2")[0] == 0
    kinds = [(e["kind"], e.get("cause")) for e in host.events()]
    assert ("boot-ended", None) in kinds
    assert not [k for k in kinds if k[0] in ("boot-failed", "counted-failure")], kinds
    assert host.cli("--json", "initrd", "--boot-id", "boot-3")[0] == 0  # boot-2 just stopped
    assert ("boot-failed", "unknown") in [(e["kind"], e.get("cause")) for e in host.events()]


def test_shutdown_keeps_a_verdict_and_ignores_another_boots_record(host: HostTree) -> None:
    host.add_entry("gen-1+1-1.conf", version="1")
    host.booted("gen-1+1-1.conf")
    host.cli("--json", "initrd", "--boot-id", "boot-1")
    assert host.cli("record-shutdown", "--boot-id", "some-other-boot")[0] == 0
    state = StateStore(str(host.state)).load().state
    assert state.last_boot is not None and state.last_boot.verdict is None
    assert host.cli("mark", "good")[0] == 0
    assert host.cli("record-shutdown", "--boot-id", "boot-1")[0] == 0
    state = StateStore(str(host.state)).load().state
    assert state.last_boot is not None and state.last_boot.verdict == "good"


def test_history_and_status_follow_the_generation(host: HostTree, tmp_path: Path) -> None:
    """The first try panics, the second passes: history is the generation's (failures=1, good=1),
    status names the copy as it is called now and says a try already failed."""
    loader = _on_trial(host)
    loader.boot()  # try 1 panics before bootguard
    loader.boot()  # try 2
    host.initrd()
    status = host.cli_json("status")
    assert isinstance(status, dict)
    trial = status["trial"]
    assert isinstance(trial, dict)
    assert (trial["copy"], trial["earlier_tries_failed"], trial["tries_left"]) == (
        "bootguard-trial+1-2.conf",
        1,
        1,
    )
    _, out, _ = host.cli("status")
    assert (
        "1 try left after this one" in out
        and "1 try failed so far" in out
        and "bootguard-trial+1-2.conf" in out
    )
    assert host.cli("mark", "good")[0] == 0
    history = StateStore(str(host.state)).load().state.attempts_map
    assert "gen-2.conf" in history and not [k for k in history if k.startswith("bootguard-trial")], history
    assert (history["gen-2.conf"].failures, history["gen-2.conf"].good) == (1, 1)


def test_promote_after_counts_the_generations_good_boots(host: HostTree) -> None:
    """--promote-after K counts good boots of the generation across the loader's renames."""
    from bootguard.seams.efivars import EfiVars
    from bootguard.services import verdict
    from bootguard.services.bootview import BootView

    loader = _on_trial(host, tries=2)
    host.loader_conf("timeout 0\ndefault gen-2.conf\n")
    loader.boot()
    host.initrd()
    store = StateStore(str(host.state))

    def validate() -> list[str]:
        view = BootView.gather(str(host.esp), None, str(host.efivars))
        return list(verdict.passed(view, store, EfiVars(str(host.efivars)), promote_after=2).messages)

    assert not any("promoted" in m for m in validate())  # the trial's boot: 1 good boot
    entry = loader.boot().selection.entry
    assert entry is not None and entry.filename == "gen-2.conf"
    host.initrd()
    messages = validate()  # the generation's second good boot, under the user's own entry name
    assert "gen-2.conf promoted to golden after 2 good boots" in messages
    state = store.load().state
    assert state.golden is not None and state.golden.filename == "gen-2.conf"
    assert state.attempts_for("gen-2.conf").good == 2
