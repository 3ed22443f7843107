"""`make demo`: bootguard's main job on real boots, narrated boot by boot.

Real OVMF firmware, the real systemd-boot (252 by default, `BOOTGUARD_DEMO_LOADER=254|257|262` for the
others), the Debian kernel and an i6300esb watchdog under QEMU; bootguard's own code from this checkout
runs inside the guest. The story, in one QEMU process:

1. The host runs generation 2; generation 1 is pinned golden. A bad update (generation 3) arrives and is
   staged as a trial with 2 tries.
2. Generation 3 fails twice: on its first try the kernel panics before any of bootguard's code runs; on
   its second bootguard's early-boot step records that panic and arms the i6300esb, and then the system
   hangs with nobody to feed the watchdog, which resets the machine. systemd-boot counts both boots; the
   loader itself then boots golden, and bootguard's early-boot step records the reset as the cause.
3. A good update (generation 4) arrives on golden and is staged; it boots, passes validation and is
   blessed. The last boot is generation 4, uncounted, and shows `bootguard status`.

Every boot that comes up arms the watchdog in its early-boot step and hands it to `bootguard watchdog
run`, as systemd PID 1 (RuntimeWatchdogSec) takes it over on a real host, which lets go of it with the
magic close before an orderly reboot or power-off.

Output and logs: demo-out/ in the checkout.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable

from tests.vm import fallback_layouts as layouts
from tests.vm.harness import serial
from tests.vm.harness.cache import CHECKOUT
from tests.vm.harness.packages import debian_kernel, systemd_boot
from tests.vm.harness.qemu import probe_accel
from tests.vm.harness.scenario import Scenario, ScenarioResult, run_scenario

# Sourced by the actions below: the hand-off a real host's systemd PID 1 does, and its orderly end.
WATCHDOG = """\
take_over_watchdog() {
    say "SAY bootguard watchdog run takes the watchdog over, as systemd PID 1 does on a real host"
    bg_exec watchdog run >/dev/null 2>&1 &
    KEEPALIVE=$!
}
let_go_of_watchdog() {  # SIGTERM: the magic close, so that the orderly reboot is not a watchdog reset
    kill -TERM "$KEEPALIVE"
    wait "$KEEPALIVE"
    say "BG rc=$? cmd=watchdog run"
}
"""

BAD = """\
case "$(efistr LoaderBootCountPath)" in
*+1-1.conf) do_panic ;;  # a kernel that panics before userland: nothing of bootguard's runs
*)
    bg initrd --watchdog-timeout 15
    say "SAY the system hangs before anything takes the watchdog over"
    say "HANG n=$BOOT_N heartbeat=$WDT_HEARTBEAT"
    settle
    while :; do sleep 3600; done
    ;;
esac
"""

SETUP = """\
say "SAY the host runs generation 2; generation 1 is its known-good generation"
bg pin-golden nixos-generation-1.conf
say "SAY a bad update arrives: NixOS installs generation 3 and makes it the default"
sed -i 's/^default .*/default nixos-generation-3.conf/' /esp/loader/loader.conf
settle
bg trial nixos-generation-3.conf --tries 2
do_reboot
"""

GOLDEN = WATCHDOG + """\
bg initrd --watchdog-timeout 30
take_over_watchdog
say "SAY the validator runs the health checks of golden's boot, as on every boot of a real host"
bg validate --config /mnt/state/control/checks.toml
if [ ! -f /state/vm/good-update-staged ]; then
    say "SAY a good update arrives: NixOS installs generation 4 and makes it the default"
    sed -i 's/^default .*/default nixos-generation-4.conf/' /esp/loader/loader.conf
    touch /state/vm/good-update-staged
    settle
    bg trial nixos-generation-4.conf --tries 2
    let_go_of_watchdog
    do_reboot
fi
bg status
let_go_of_watchdog
finish ok
"""

GOOD = WATCHDOG + """\
bg initrd --watchdog-timeout 30
take_over_watchdog
if [ "$(efistr LoaderBootCountPath)" != - ]; then
    say "SAY the validator runs the health checks of this trial boot"
    bg validate --config /mnt/state/control/checks.toml
    let_go_of_watchdog
    do_reboot
fi
say "SAY the final system:"
bg status
let_go_of_watchdog
finish ok
"""

CHECKS = """\
[validator]
# the guest's root is read-only: the Prometheus textfile goes to the state disk
metrics_file = "/mnt/state/bootguard/bootguard.prom"

[[check]]
name = "esp-mounted"
kind = "command"
command = ["/bin/sh", "-c", "test -f /mnt/esp/loader/loader.conf"]
required = true

[[check]]
name = "state-writable"
kind = "command"
command = ["/bin/sh", "-c", "touch /mnt/state/bootguard/.probe && rm /mnt/state/bootguard/.probe"]
required = true
"""

ROLES = {
    "boot-1": "generation 2, the running system",
    "gen3-bad": "generation 3, the bad update",
    "gen1-golden": "generation 1, golden",
    "gen4-good": "generation 4, the good update",
}
EXPECTED = [
    "nixos-generation-2.conf",
    "bootguard-trial+1-1.conf",
    "bootguard-trial+0-2.conf",
    "bootguard-golden.conf",
    "bootguard-trial+1-1.conf",
    "nixos-generation-4.conf",
]


def demo_scenario() -> Scenario:
    entries = (
        layouts.nixos_generation(1, "gen1-golden"),
        layouts.nixos_generation(2, "ok"),
        layouts.nixos_generation(3, "gen3-bad"),
        layouts.nixos_generation(4, "gen4-good"),
    )
    return Scenario(
        name="demo",
        entries=entries,
        loader_conf="timeout 0\ndefault nixos-generation-2.conf\n",
        control={
            "boot-1.sh": SETUP,
            "action-gen3-bad.sh": BAD,
            "action-gen1-golden.sh": GOLDEN,
            "action-gen4-good.sh": GOOD,
            "checks.toml": CHECKS,
        },
        max_boots=7,
        timeout=600,
    )


def counter_text(boot: serial.Boot) -> str:
    if boot.countpath is None:
        return "not counted"
    match = re.search(r"\+(\d+)-(\d+)\.conf$", boot.entry_file)
    if match is None:
        return f"counted as {boot.entry_file}"
    left, done = int(match.group(1)), int(match.group(2))
    tries = "try" if left == 1 else "tries"
    return f"counted: renamed to {boot.entry_file} — attempt {done}, {left} {tries} left"


def _is_bootguard_output(line: str) -> bool:
    text = line.strip()
    noise = ("BGVM-", "[", "BdsDxe", "EFI stub", "Rebooting", "---[")
    return bool(text) and not text.startswith(noise)


class Narrator:
    """Tells each boot as soon as it has ended, from the guest's marker lines and bootguard's output."""

    def __init__(self, out: Callable[[str], None]) -> None:
        self.out = out
        self.lines: list[str] = []
        self.told = 0
        self.started = time.monotonic()
        self.boot_started: list[float] = []

    def feed(self, line: str) -> None:
        self.lines.append(line)
        if line.startswith("BGVM-BOOT "):
            self.boot_started.append(time.monotonic())
        if line.startswith(("BGVM-PANIC", "BGVM-REBOOT", "BGVM-HANG", "BGVM-END")):
            boots = serial.parse_boots("\n".join(self.lines))
            for boot in boots[self.told :]:
                self.tell(boot)
            self.told = len(boots)

    def tell(self, boot: serial.Boot) -> None:
        at = self.boot_started[boot.n - 1] - self.started if len(self.boot_started) >= boot.n else 0.0
        role = ROLES.get(boot.action, boot.action)
        self.out(f"\nboot {boot.n}  (+{at:.0f} s)  systemd-boot chose {boot.selected}  [{role}]")
        self.out(f"        {counter_text(boot)}")
        if boot.bootstatus:
            self.out(f"        watchdog bootstatus {boot.bootstatus}: the last reset was the watchdog's")
        for line in boot.lines:
            if line.startswith("BGVM-SAY "):
                self.out(f"        {line.removeprefix('BGVM-SAY ')}")
            elif line.startswith("BGVM-BG "):
                rc = re.search(r"rc=(\d+) cmd=(.*)", line)
                if rc:
                    self.out(f"        $ bootguard {rc.group(2)}   → exit {rc.group(1)}")
            elif _is_bootguard_output(line):
                self.out(f"            {line.strip()}")
        self.out(f"        {_ending(boot)}")


def _ending(boot: serial.Boot) -> str:
    return {
        "panic": "→ the kernel panics; panic=1 resets the machine",
        "reboot": "→ reboot",
        "hang": "→ hangs; the watchdog will reset the machine",
    }.get(boot.outcome, "→ power off" if boot.outcome.startswith("end") else f"→ {boot.outcome or '?'}")


def verdict(result: ScenarioResult) -> tuple[bool, str]:
    if result.entry_files != EXPECTED or result.run.stopped != "poweroff":
        return False, "the boots did not go as the story says:\n" + result.describe()
    if result.bg_results("validate") != [0, 0]:
        return False, "validation of golden or of generation 4 did not pass:\n" + result.describe()
    failures = [e for e in result.bootguard_events() if e.get("kind") in ("counted-failure", "boot-failed")]
    if [e.get("cause") for e in failures] != ["kernel-panic", "watchdog-reset"]:
        return False, f"a panic, then a hang reset by the watchdog, expected: {failures}"
    if result.boots[3].bootstatus == 0:
        return False, "golden's boot found no CARDRESET in the watchdog's bootstatus:\n" + result.describe()
    if result.bg_results("watchdog") != [0, 0, 0]:  # `watchdog run`, on the three boots that came up
        return False, "bootguard watchdog run did not take over and let go cleanly:\n" + result.describe()
    data = [e.get("data") for e in failures]
    evidence = [d.get("evidence") for d in data if isinstance(d, dict) and d.get("evidence")]
    if len(evidence) != len(set(evidence)):
        return False, f"each failure must be blamed on its own pstore record, or on none: {failures}"
    return True, (
        "the bad update failed twice (a kernel panic, then a hang the watchdog reset) and the host came "
        "back on golden by itself; the good update was validated and blessed and is what the host boots now."
    )


def main() -> int:
    major = os.environ.get("BOOTGUARD_DEMO_LOADER", "252")
    out_dir = CHECKOUT / "demo-out"
    kernel, loader = debian_kernel(), systemd_boot(major)
    accel = probe_accel(out_dir / "kvm-probe")
    print(
        f"bootguard demo: real OVMF firmware, real {loader.loader_info}, Debian kernel {kernel.release}, "
        f"i6300esb watchdog; QEMU ({accel}). Logs in {out_dir}/demo/.",
        flush=True,
    )
    narrator = Narrator(lambda text: print(text, flush=True))
    result = run_scenario(demo_scenario(), loader, kernel, accel, out_dir / "demo", on_line=narrator.feed)
    ok, message = verdict(result)
    print(
        f"\n{'OK' if ok else 'FAILED'} after {len(result.boots)} boots in {result.seconds:.0f} s: {message}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
