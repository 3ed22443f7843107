"""Issue 4 scenarios 4, 6 and 8 and issue 5's packaged initramfs, on real boots in the minimal guest.

- s4 initrd failure: the trial's initrd never finds its root; `bootguard initrd --failed` leaves the cause
  in bootguard's EFI variable, the loader falls back to golden, golden's early-boot step records why.
- s8 read-only ESP: a trial staged on a writable ESP, then the boot disk attached write-protected (QEMU
  `readonly=on`): the firmware's FAT driver cannot rename the entry, so systemd-boot boots it uncounted;
  bootguard says so and refuses to change the ESP.
- s6 power cut: QEMU is SIGKILLed at chosen moments while the guest writes bootguard's state; every cut
  leaves a valid old-or-new state and an append-only event log, and the next boot reads it cleanly.
- packaged initramfs: the early-boot step from an initramfs holding only what `initrd-files` lists, no 9p.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from bootguard.seams.statestore import StateStore
from tests.vm import fallback_layouts as layouts
from tests.vm.harness import marks
from tests.vm.harness.packaged import packaged_initramfs
from tests.vm.harness.packages import LOADER_MAJORS
from tests.vm.harness.qemu import KillAfter, VmRun
from tests.vm.harness.scenario import Phase, Scenario, ScenarioResult, entry
from tests.vm.test_loader_scenarios import NIXOS, SETUP_TRIAL

pytestmark = pytest.mark.vm

BOOTGUARD_GUID = "b0075a7e-9d1e-4c1e-8f4b-3b6f0a5e2c11"
FAILURE_VAR = f"BootguardInitrdFailure-{BOOTGUARD_GUID}"
ROOT_MISSING = "root device /dev/vdz not found"

# ---------------------------------------------------------------------------------------------------
# s4: initrd failure

# Prints whether bootguard's initrd-failure EFI variable exists (hex: attribute word + UTF-16LE data).
NOTE = f"""\
note() {{ # WHEN
    f=$EFIVARS/{FAILURE_VAR}
    hex=-
    [ -e "$f" ] && hex=$(efihex "$f")
    say "NOTE n=$BOOT_N when=$1 hex=$hex"
}}
"""

# The trial's initrd: the early-boot step runs, the root device never shows up (as with a wrong root= or a
# missing driver), so the initrd's failure path records the cause and reboots, as emergency.target's
# bootguard-initrd-failure.service does.
INITRD_FAILS = f"""{NOTE}
note start
bg initrd
note recorded
mkdir -p /sysroot
if mount -t ext4 -o ro /dev/vdz /sysroot 2>/dev/null; then say "ERROR n=$BOOT_N /dev/vdz mounted"; fi
bg initrd --failed "{ROOT_MISSING}"
note failed
do_reboot
"""

GOLDEN_RECORDS = f"""{NOTE}
note start
bg initrd
note recorded
bg status
finish ok
"""


def initrd_failure(_major: str) -> Scenario:
    return Scenario(
        name="s4-initrd-failure",
        entries=(
            layouts.nixos_generation(1, "golden"),
            layouts.nixos_generation(2, "ok"),
            layouts.nixos_generation(3, "initrd-fails"),
        ),
        loader_conf="timeout 0\ndefault nixos-generation-2.conf\n",
        control={
            "boot-1.sh": SETUP_TRIAL,
            "action-initrd-fails.sh": INITRD_FAILS,
            "action-golden.sh": GOLDEN_RECORDS,
        },
        max_boots=5,
        timeout=450,
    )


def _notes(r: ScenarioResult) -> dict[tuple[int, str], str | None]:
    """(boot, when) → the failure note's text (None: no variable), from the guest's NOTE lines."""
    out: dict[tuple[int, str], str | None] = {}
    for n, when, hexdata in re.findall(r"^BGVM-NOTE n=(\d+) when=(\S+) hex=(\S+)", r.run.serial, re.M):
        if hexdata == "-":
            out[int(n), when] = None
        else:
            raw = bytes.fromhex(hexdata)
            assert raw[:4] == b"\x07\x00\x00\x00", f"attributes {raw[:4].hex()} (want non-volatile 0x7)"
            out[int(n), when] = raw[4:].decode("utf-16-le").rstrip("\0")
    return out


@pytest.mark.parametrize("loader", LOADER_MAJORS)
@marks.boots(initrd_failure)
def test_s4_initrd_failure_twice_comes_back_on_golden(loader: str, vm_result: ScenarioResult) -> None:
    """A trial whose initrd cannot find its root twice ends on golden, and the log says initrd-failure."""
    r = vm_result
    assert r.boots[0].selected == "nixos-generation-2.conf", r.describe()
    assert [b.entry_file for b in r.boots[1:]] == [
        "bootguard-trial+1-1.conf",
        "bootguard-trial+0-2.conf",
        "bootguard-golden.conf",
    ], r.describe()
    assert [b.outcome for b in r.boots] == ["reboot", "reboot", "reboot", "end:ok"], r.describe()
    # setup (pin-golden, trial), twice initrd + initrd --failed, golden's initrd and status: all succeed
    assert [rc for b in r.boots for rc, _ in b.bg_results] == [0] * 8, r.describe()
    assert _notes(r) == {
        (2, "start"): None,
        (2, "recorded"): None,
        (2, "failed"): ROOT_MISSING,
        (3, "start"): ROOT_MISSING,  # survived the reset: non-volatile
        (3, "recorded"): None,  # the early-boot step recorded it as the cause and deleted it
        (3, "failed"): ROOT_MISSING,  # written again by this boot's failure
        (4, "start"): ROOT_MISSING,
        (4, "recorded"): None,  # golden's early-boot step recorded it and deleted the variable
    }, r.describe()
    failures = [e for e in r.bootguard_events() if e.get("kind") == "counted-failure"]
    assert [e.get("cause") for e in failures] == ["initrd-failure", "initrd-failure"], r.bootguard_events()
    assert all(ROOT_MISSING in str(e.get("message")) for e in failures), failures
    assert [e.get("entry") for e in failures] == ["bootguard-trial+1-1.conf", "bootguard-trial+0-2.conf"]
    rolled_back = [e for e in r.bootguard_events() if e.get("kind") == "rolled-back"]
    assert [(e.get("entry"), e.get("cause")) for e in rolled_back] == [
        ("nixos-generation-3.conf", "initrd-failure")
    ], r.bootguard_events()
    assert not any(n.startswith("bootguard-trial") for n in r.esp_entries), r.describe()
    for name in NIXOS:
        assert name in r.esp_entries, r.describe()
    assert r.run.stopped == "poweroff", r.describe()


# ---------------------------------------------------------------------------------------------------
# s8: read-only ESP

STAGE_THEN_POWER_OFF = """\
bg pin-golden nixos-generation-1.conf
sed -i 's/^default .*/default nixos-generation-3.conf/' /esp/loader/loader.conf
settle
bg trial nixos-generation-3.conf --tries 2
finish staged
"""

# The ESP is write-protected at the device: Linux can only mount it read-only. Each command's stdout and
# stderr go to /state/out (read back on the host) and are echoed on the serial line as evidence.
ON_READONLY_ESP = """\
say "ESP-MOUNT n=$BOOT_N $(grep ' /esp ' /proc/mounts)"
mkdir -p /state/out
bg_to() { # NAME ARGS: run bootguard ARGS with stdout/stderr in /state/out/NAME.{out,err}
    name=$1
    shift
    (bg_exec "$@") >"/state/out/$name.out" 2>"/state/out/$name.err"
    rc=$?
    say "BG rc=$rc cmd=$*"
    sed "s/^/BGVM-OUT $name: /" "/state/out/$name.out" "/state/out/$name.err"
}
bg_to initrd initrd
bg_to status status --json
bg_to trial trial nixos-generation-2.conf --tries 2 --backend loader
bg_to arm arm nixos-generation-2.conf --tries 3
bg status
finish ok
"""


def readonly_esp(_major: str) -> Scenario:
    return Scenario(
        name="s8-readonly-esp",
        entries=(
            layouts.nixos_generation(1, "ok"),
            layouts.nixos_generation(2, "ok"),
            layouts.nixos_generation(3, "readonly-esp"),
        ),
        loader_conf="timeout 0\ndefault nixos-generation-2.conf\n",
        control={"boot-1.sh": STAGE_THEN_POWER_OFF, "action-readonly-esp.sh": ON_READONLY_ESP},
        max_boots=2,
        timeout=200,
        phases=(Phase(), Phase(esp_readonly=True)),
    )


def _read_out(r: ScenarioResult, name: str) -> str:
    return (r.state / "out" / name).read_text()


def _one_line_error(text: str) -> str:
    """The `bootguard: error:` line of a failed command's stderr; fails on a traceback or several errors."""
    lines = [line for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("bootguard: error:")]
    assert len(errors) == 1 and "Traceback" not in text, text
    assert all(line.startswith(("bootguard: error:", "bootguard: hint:")) for line in lines), text
    return errors[0]


@pytest.mark.parametrize("loader", LOADER_MAJORS)
@marks.boots(readonly_esp)
def test_s8_readonly_esp_boot_is_reported_not_counted(loader: str, vm_result: ScenarioResult) -> None:
    """On a write-protected ESP systemd-boot boots the trial uncounted; bootguard reports "NOT counted",
    takes over counting (golden becomes the default), refuses a loader-counted `trial` and `arm` with
    exit 5 and a one-line read-only error, and the ESP stays as it was."""
    r = vm_result
    assert [run.stopped for run in r.runs] == ["poweroff", "poweroff"], r.describe()
    setup, ro = r.boots
    assert [rc for rc, _ in setup.bg_results] == [0, 0], r.describe()
    expected_id = "bootguard-trial+2.conf" if loader in ("252", "254") else "bootguard-trial.conf"
    assert (ro.selected, ro.countpath) == (expected_id, None), r.describe()
    assert ro.action == "readonly-esp", r.describe()
    assert re.search(r"^BGVM-ESP-MOUNT n=2 /dev/vda1 /esp vfat ro,", r.run.serial, re.M), r.describe()
    # nothing on the ESP changed: the trial copy still has both tries, in the guest and on the host
    assert "bootguard-trial+2.conf" in ro.esp_entries, r.describe()
    assert r.esp_entries == sorted(ro.esp_entries), r.describe()

    not_counted = [e for e in r.bootguard_events() if e.get("kind") == "not-counted"]
    assert [e.get("entry") for e in not_counted] == ["bootguard-trial+2.conf"], r.bootguard_events()
    assert "NOT counted" in str(not_counted[0].get("message")), not_counted
    # ... and bootguard takes over counting: golden is the default from now on (NVRAM stays writable)
    taken_over = [e for e in r.bootguard_events() if "bootguard counts the trial" in str(e.get("message"))]
    assert [e.get("kind") for e in taken_over] == ["policy-corrected"], r.bootguard_events()

    status = json.loads(_read_out(r, "status.out"))
    assert (status["counted"], status["esp_writable"], status["booted"]) == (
        False,
        False,
        "bootguard-trial+2.conf",
    ), status
    assert any("not counted: the ESP is read-only" in line for line in status["advice"]), status["advice"]
    assert (status["trial"]["counted_by"], status["trial"]["try"]) == ("state", 1), status["trial"]
    assert status["next_boot"] == "bootguard-golden.conf", status

    assert r.bg_results("initrd") == [0] and r.bg_results("status") == [0, 0], r.describe()
    assert r.bg_results("trial") == [0, 5] and r.bg_results("arm") == [5], r.describe()
    for name in ("trial.err", "arm.err"):
        assert "read-only" in _one_line_error(_read_out(r, name)), name


# ---------------------------------------------------------------------------------------------------
# s9: read-only ESP, trial counted by bootguard, kernel panic twice

STAGE_STATE_TRIAL = """\
bg pin-golden nixos-generation-1.conf
sed -i 's/^default .*/default nixos-generation-3.conf/' /esp/loader/loader.conf
settle
bg trial nixos-generation-3.conf --tries 2 --backend state
finish staged
"""

# golden: bootguard's early-boot step counts the failed try and reboots into the next one by itself
# (the reboot happens inside `bg initrd`); after the last try it stays, and a person looks at status.
GOLDEN_COUNTS = """\
bg initrd --reboot-command "/bin/busybox reboot -f"
mkdir -p /state/out
(bg_exec status --json) >/state/out/status.out
finish ok
"""


def readonly_esp_state_trial(_major: str) -> Scenario:
    return Scenario(
        name="s9-readonly-esp-state-counted",
        entries=(
            layouts.nixos_generation(1, "golden"),
            layouts.nixos_generation(2, "ok"),
            layouts.nixos_generation(3, "panic"),
        ),
        loader_conf="timeout 0\ndefault nixos-generation-2.conf\n",
        control={"boot-1.sh": STAGE_STATE_TRIAL, "action-golden.sh": GOLDEN_COUNTS},
        max_boots=6,
        timeout=450,
        phases=(Phase(), Phase(esp_readonly=True)),
    )


@pytest.mark.parametrize("loader", LOADER_MAJORS)
@marks.boots(readonly_esp_state_trial)
def test_s9_readonly_esp_state_counted_trial_panics_twice_then_golden(
    loader: str, vm_result: ScenarioResult
) -> None:
    """With the ESP write-protected the loader cannot count, so bootguard does: each try is a one-shot
    boot and golden the default. The trial panics before any bootguard code twice; each time the loader
    lands on golden, whose early-boot step counts the failure and reboots into the next try; after the
    second the host stays on golden, with the same events a loader-counted rollback has."""
    r = vm_result
    assert [run.stopped for run in r.runs] == ["poweroff", "poweroff"], r.describe()
    assert r.boots[0].selected == "nixos-generation-2.conf", r.describe()
    assert [rc for rc, _ in r.boots[0].bg_results] == [0, 0], r.describe()
    assert [b.selected for b in r.boots[1:]] == [
        "nixos-generation-3.conf",  # try 1: LoaderEntryOneShot
        "bootguard-golden.conf",  # LoaderEntryDefault; its step reboots into try 2
        "nixos-generation-3.conf",
        "bootguard-golden.conf",  # stays
    ], r.describe()
    assert [b.countpath for b in r.boots[1:]] == [None] * 4, r.describe()
    # golden's first boot ends inside `bg initrd` (bootguard's reboot): no marker after it
    assert [b.outcome for b in r.boots[1:]] == ["panic", "", "panic", "end:ok"], r.describe()
    assert r.bg_results("initrd") == [0], r.describe()  # only the last one returns
    events = r.bootguard_events()
    failures = [e for e in events if e.get("kind") == "counted-failure"]
    assert [(e.get("entry"), e.get("cause")) for e in failures] == [
        ("nixos-generation-3.conf", "kernel-panic")
    ] * 2, events
    rolled_back = [e for e in events if e.get("kind") == "rolled-back"]
    assert [(e.get("entry"), e.get("cause")) for e in rolled_back] == [
        ("nixos-generation-3.conf", "kernel-panic")
    ], events
    assert any("arming try 2 of 2" in str(e.get("message")) for e in events), events
    status = json.loads((r.state / "out" / "status.out").read_text())
    assert status["trial"] is None and status["booted"] == "bootguard-golden.conf", status
    assert status["next_boot"] == "bootguard-golden.conf", status
    assert "bootguard-golden.conf" in r.esp_entries, r.describe()
    assert not any(n.startswith("bootguard-trial") for n in r.esp_entries), r.describe()


# ---------------------------------------------------------------------------------------------------
# s6: power cut during state writes

S6_LOADERS = ("252", "262")
WROTE = "BGVM-PC-WROTE"
PAUSE = "BGVM-PC-PAUSE"


class Cut:
    """Where a power cut lands in the write loop of one boot.

    `at` names a point inside bootguard's write protocol where the writer stops (after printing a PAUSE
    marker) until the host's SIGKILL arrives: `slot-unsynced` (state slot's temporary file written, not
    fsynced, not renamed), `renamed-unsynced` (renamed over the slot, directory not fsynced),
    `event-unsynced` (the step's event lines, appended in one write, written and not fsynced: `k` = 1,
    the step's first append); or `random`: `delay` QEMU CPU
    seconds after the first finished step, wherever the loop happens to be.
    """

    def __init__(self, at: str, i: int = 0, k: int = 0, delay: float = 0.0) -> None:
        self.at, self.i, self.k, self.delay = at, i, k, delay

    def kill_after(self, n: int) -> KillAfter:
        if self.at == "random":
            return KillAfter(f"{WROTE} run={n} i=1 ", self.delay)
        return KillAfter(f"{PAUSE} run={n} ", 0.0)

    def control(self) -> str:
        """The writer's pause file: `AT I K` (none for a random cut)."""
        return "" if self.at == "random" else f"{self.at} {self.i} {self.k}\n"


CUTS: dict[str, tuple[Cut, ...]] = {
    "252": (Cut("random", delay=0.3), Cut("slot-unsynced", i=5), Cut("event-unsynced", i=6, k=1)),
    "262": (Cut("renamed-unsynced", i=4), Cut("random", delay=1.9), Cut("slot-unsynced", i=9)),
}

# The real early-boot step in a loop (in one process: starting Python costs seconds under TCG, which
# would leave the writes a sliver of the time), a marker line after each step has returned (its state
# slot and its events fsynced). At the boot's pause point the writer prints PAUSE and waits for the cut:
# a host's SIGKILL reacts in tens of milliseconds at best, seconds on a busy machine, so only a writer
# that waits makes the cut land at a chosen point of the write protocol whatever the load. The state
# slot's steps come from bootguard's own test hook `fs.step_hook`; the event's fsync is wrapped.
PC_WRITER = f'''\
"""Power-cut writer: `bootguard initrd --boot-id powercut-RUN-I` for I = 1, 2, … until QEMU dies."""
import os
import sys
import time

from bootguard.cli.main import main
from bootguard.seams import fs
from bootguard.seams.statestore import StateStore

run = int(sys.argv[1])
state_dir = os.environ["BOOTGUARD_STATE_DIR"]
store = StateStore(state_dir)
loaded, log = store.load(), store.read_events()
print(
    f"BGVM-PC-LOADED run={{run}} seq={{loaded.state.seq}} warnings={{len(loaded.warnings)}} "
    f"events={{len(log.events)}} event_warnings={{len(log.warnings)}}",
    flush=True,
)
try:
    with open(f"/mnt/state/control/pause-{{run}}") as f:
        at, pause_i, pause_k = f.read().split()
except FileNotFoundError:
    at, pause_i, pause_k = "random", "0", "0"
console, quiet = sys.stdout, open(os.devnull, "w")
now = {{"i": 0, "k": 0, "lines": 0, "appending": False}}


def pause_if(point):
    if point == at and str(now["i"]) == pause_i and str(now["k"]) == pause_k:
        where = f"at={{at}} i={{now['i']}} k={{now['k']}} lines={{now['lines']}}"
        console.write(f"{PAUSE} run={{run}} {{where}}\\n")
        console.flush()
        time.sleep(10)  # no CPU meanwhile; jbd2 commits only every 5 s, so nothing else gets durable


def step(name):
    pause_if({{"fsync": "slot-unsynced", "fsync-dir": "renamed-unsynced"}}.get(name))


real_fsync, real_append = os.fsync, StateStore.append_events


def fsync(fd):
    if now["appending"]:
        pause_if("event-unsynced")
    return real_fsync(fd)


def append_events(self, events):
    now["k"] += 1
    now["lines"] = len(events)
    now["appending"] = True
    try:
        return real_append(self, events)
    finally:
        now["appending"] = False


fs.step_hook = step
os.fsync = fsync
StateStore.append_events = append_events
for i in range(1, 5000):
    now.update(i=i, k=0, lines=0)
    sys.stdout = quiet
    argv = ["--esp", "/mnt/esp", "--state-dir", state_dir, "initrd", "--boot-id", f"powercut-{{run}}-{{i}}"]
    rc = main(argv)
    sys.stdout = console
    seq = store.load().state.seq
    size = os.path.getsize(store.events_path)
    print(f"{WROTE} run={{run}} i={{i}} rc={{rc}} seq={{seq}} size={{size}}", flush=True)
'''

POWERCUT = """\
mkdir -p /state/out
if [ "$BOOT_N" -gt 1 ]; then  # what the previous cut left, as a person would look at it
    (bg_exec --json status) >"/state/out/status-$BOOT_N.json"
    say "BG rc=$? cmd=status --json"
    settle
fi
if [ "$BOOT_N" -le "$CUTS" ]; then
    chroot /host /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \\
        PYTHONPATH="$CHECKOUT" PYTHONDONTWRITEBYTECODE=1 BOOTGUARD_STATE_DIR="$STATE_DIR" \\
        /usr/bin/python3 /mnt/state/control/pc_writer.py "$BOOT_N"
    say "ERROR n=$BOOT_N the writer stopped before the power cut"
fi
bg events --limit 4
bg initrd
finish ok
"""


def power_cut(major: str) -> Scenario:
    cuts = CUTS[major]
    pauses = {f"pause-{n}": cut.control() for n, cut in enumerate(cuts, 1) if cut.control()}
    return Scenario(
        name="s6-power-cut",
        entries=(entry("pc.conf", "powercut"),),
        loader_conf="timeout 0\ndefault pc.conf\n",
        control={"action-powercut.sh": f"CUTS={len(cuts)}\n{POWERCUT}", "pc_writer.py": PC_WRITER, **pauses},
        max_boots=len(cuts) + 1,
        timeout=120,
        phases=(*(Phase(kill_after=cut.kill_after(n)) for n, cut in enumerate(cuts, 1)), Phase()),
    )


def _last_marker(run: VmRun, n: int) -> dict[str, int]:
    """The last complete writer marker of boot `n` (a line cut off by the kill does not count)."""
    text = run.serial if run.serial.endswith("\n") else run.serial.rsplit("\n", 1)[0]
    found = re.findall(rf"^{WROTE} run={n} i=(\d+) rc=(\d+) seq=(\d+) size=(\d+)$", text, re.M)
    assert found, f"boot {n}: no writer marker before the cut\n{run.serial[-2000:]}"
    i, rc, seq, size = (int(x) for x in found[-1])
    assert rc == 0, found[-1]
    paused = re.findall(rf"^{PAUSE} run={n} at=\S+ i=\d+ k=\d+ lines=(\d+)$", text, re.M)
    pending = int(paused[-1]) if paused else 0  # event lines written, not fsynced, when the power went
    return {"i": i, "seq": seq, "size": size, "count": len(found), "pending_lines": pending}


def _check_cut(
    n: int, cut: Cut, state_dir: Path, marker: dict[str, int], *, before: bytes, torn: set[bytes]
) -> tuple[bytes, int]:
    """State old or new, never corrupt; events append-only; only a cut's last line may be torn; and
    what the cut's point in the write protocol allows (e.g. an unsynced, unrenamed slot: old state)."""
    loaded = StateStore(state_dir).load()
    assert loaded.warnings == (), loaded.warnings
    last_boot = loaded.state.last_boot
    assert last_boot is not None
    ahead = loaded.state.seq - marker["seq"]
    allowed = {"slot-unsynced": (0,), "event-unsynced": (1,)}.get(cut.at, (0, 1))
    assert ahead in allowed, f"cut {n} ({cut.at}): seq {loaded.state.seq}, last marker said {marker['seq']}"
    assert last_boot.boot_id == f"powercut-{n}-{marker['i'] + ahead}", (last_boot, marker)
    events = (state_dir / "events.jsonl").read_bytes()
    assert events.startswith(before), f"cut {n}: the event log was rewritten, not appended to"
    assert len(events) >= marker["size"], f"cut {n}: {len(events)} bytes, marker said {marker['size']}"
    *complete, tail = events.split(b"\n")
    for line in complete:
        if line not in torn:  # a line torn by an earlier cut, closed by the next append's newline
            json.loads(line)
    if tail:
        torn.add(tail)
    new_lines = events[marker["size"] :].count(b"\n")
    if cut.at in ("slot-unsynced", "renamed-unsynced"):  # the step's events come after its state
        assert new_lines == 0 and not tail, f"cut {n} ({cut.at}): events appended before the state"
    if cut.at == "event-unsynced":  # the state is durable; of the unsynced lines, any prefix may be
        assert 0 <= new_lines <= marker["pending_lines"], f"cut {n}: {new_lines} new event lines"
    return events, loaded.state.seq


@pytest.mark.parametrize("loader", S6_LOADERS)
@marks.boots(power_cut)
def test_s6_power_cut_leaves_old_or_new_state(loader: str, vm_result: ScenarioResult) -> None:
    """SIGKILLing QEMU mid-write leaves the state at the last or the next sequence number, the event log
    append-only with at most a torn last line, and the next boot's bootguard reads both cleanly."""
    r = vm_result
    cuts = len(CUTS[loader])
    assert [run.stopped for run in r.runs] == ["killed"] * cuts + ["poweroff"], r.describe()
    before, torn, seq = b"", set[bytes](), 0
    for n in range(1, cuts + 1):
        marker = _last_marker(r.runs[n - 1], n)
        cut = CUTS[loader][n - 1]
        state_dir = r.phase_states[n - 1] / "bootguard"
        before, seq = _check_cut(n, cut, state_dir, marker, before=before, torn=torn)
    loaded = [
        int(x) for x in re.findall(r"^BGVM-PC-LOADED run=\d+ seq=\d+ warnings=(\d+)", r.run.serial, re.M)
    ]
    assert loaded == [0] * cuts, r.describe()  # each boot's first load: no slot warnings
    for n in range(2, cuts + 2):
        status = json.loads((r.state / "out" / f"status-{n}.json").read_text())
        torn_only = [p for p in status["problems"] if "incomplete (torn write" not in p]
        assert torn_only == [], status["problems"]
    assert r.bg_results("status") == [0] * cuts, r.describe()
    assert r.bg_results("events") == [0] and r.bg_results("initrd") == [0], r.describe()
    final = StateStore(r.state / "bootguard").load()  # the last boot's `initrd` wrote on top of the cuts
    assert final.warnings == () and final.state.seq == seq + 1, (final, seq)


# ---------------------------------------------------------------------------------------------------
# packaged initramfs

PY = os.path.basename(os.path.realpath("/usr/bin/python3"))  # python3.11: the file initrd-files lists

PACKAGED = f"""\
# No host root over 9p here: only what the initramfs holds. udev would create the by-partuuid link that
# the wrapper's --mount-esp uses; busybox has no udev, so make that one link by hand.
uuid=$(efistr LoaderDevicePartUUID | tr 'A-F' 'a-f')
mkdir -p /dev/disk/by-partuuid
ln -sf /dev/vda1 "/dev/disk/by-partuuid/$uuid"
say "PKG n=$BOOT_N host_entries=$(find /host -mindepth 1 | wc -l) usr_bin=$(find /usr/bin | tr '\\n' ,)"
took() {{ awk "BEGIN {{ print $2 - $1 }}"; }}
pkg_initrd() {{ # LABEL [VAR=VALUE…]: the packaged entry point with an initrd's PATH and initrd.env settings
    label=$1
    shift
    read -r t0 _ </proc/uptime
    env PATH=/usr/sbin:/usr/bin:/sbin:/bin BOOTGUARD_STATE_DIR=/state/bootguard \\
        BOOTGUARD_WATCHDOG_TIMEOUT=30 "$@" /usr/lib/bootguard/bootguard-initrd
    rc=$?
    read -r t1 _ </proc/uptime
    say "BG rc=$rc cmd=initrd packaged $label seconds=$(took "$t0" "$t1")"
    return $rc
}}
# As installed; then, only while that fails, with the interpreter named (BOOTGUARD_PYTHON) and with the
# ESP named (BOOTGUARD_ESP, no --mount-esp), so each packaging defect shows separately and the rest of
# the step is still proven. A failed attempt stops before recording anything (checked on the host).
pkg_initrd defaults ||
    pkg_initrd python BOOTGUARD_PYTHON=/usr/bin/{PY} ||
    pkg_initrd python+esp BOOTGUARD_PYTHON=/usr/bin/{PY} BOOTGUARD_ESP=/esp
w=/sys/class/watchdog/watchdog0
say "WDT-STATE when=after-initrd state=$(cat $w/state) timeout=$(cat $w/timeout)"
read -r t0 _ </proc/uptime
/usr/bin/{PY} -I -S -c pass  # the yardstick of issue 5's start-up budget, for the report
read -r t1 _ </proc/uptime
say "PKG bare-interpreter seconds=$(took "$t0" "$t1")"
finish ok
"""


def packaged(_major: str) -> Scenario:
    return Scenario(
        name="packaged-initramfs",
        entries=(entry("pk+3.conf", "packaged"),),
        loader_conf="timeout 0\ndefault pk*\n",
        control={"action-packaged.sh": PACKAGED},
        max_boots=1,
        timeout=150,
        needs_host_root=False,
        initrd=packaged_initramfs,
    )


def _packaged_runs(r: ScenarioResult) -> list[tuple[str, int]]:
    """(label, exit status) of each attempt of the packaged entry point, in order."""
    return [
        (cmd.split()[2], rc) for b in r.boots for rc, cmd in b.bg_results if cmd.startswith("initrd packaged")
    ]


def _tail(r: ScenarioResult) -> str:
    return r.describe() + "\n" + "\n".join(r.boots[0].lines[-16:])


@pytest.mark.parametrize("loader", ["252"])
@marks.boots(packaged)
def test_packaged_initramfs_records_the_counted_boot_and_arms_the_watchdog(
    loader: str, vm_result: ScenarioResult
) -> None:
    """From an initramfs holding only the listed files (no host Python), the packaged step records the
    counted boot on the state disk and arms the watchdog with BOOTGUARD_WATCHDOG_TIMEOUT."""
    r = vm_result
    (boot,) = r.boots
    assert boot.countpath == "\\loader\\entries\\pk+2-1.conf", r.describe()
    assert re.search(r"^BGVM-PKG n=1 host_entries=0 ", r.run.serial, re.M), r.describe()  # no 9p
    assert _packaged_runs(r)[-1][1] == 0, _tail(r)
    attempted = [e for e in r.bootguard_events() if e.get("kind") == "boot-attempted"]
    assert [(e.get("entry"), e.get("data")) for e in attempted] == [
        ("pk+2-1.conf", {"counted": True, "tries_left": 2, "tries_done": 1})
    ], r.bootguard_events()
    assert "BGVM-WDT-STATE when=after-initrd state=active timeout=30" in r.run.serial, _tail(r)
    assert "Could not find platform" not in r.run.serial, r.describe()  # the interpreter found its prefix
    assert r.run.stopped == "poweroff", r.describe()


@pytest.mark.parametrize("loader", ["252"])
@marks.boots(packaged)
def test_packaged_entry_point_finds_the_listed_interpreter(loader: str, vm_result: ScenarioResult) -> None:
    """The wrapper as installed runs the interpreter the list packaged, without BOOTGUARD_PYTHON."""
    assert _packaged_runs(vm_result)[0] == ("defaults", 0), _tail(vm_result)


@pytest.mark.parametrize("loader", ["252"])
@marks.boots(packaged)
def test_packaged_files_suffice_to_mount_the_esp(loader: str, vm_result: ScenarioResult) -> None:
    """With the wrapper's default --mount-esp, the listed modules are enough (no ImportError)."""
    ran_python = [(label, rc) for label, rc in _packaged_runs(vm_result) if rc != 127]
    assert ran_python[:1] in ([("defaults", 0)], [("python", 0)]), _tail(vm_result)
