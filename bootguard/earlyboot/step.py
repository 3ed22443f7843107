"""`bootguard initrd`: the early-boot step that runs on every boot, before switch-root.

observe → decide → record (then act) → arm; see the package's docstring. The watchdog is armed
whatever the steps before it came to: an unusable state (both slots corrupt, an unsafe directory or
lock, a full disk) or a state lock held past LOCK_BOUND leaves this boot unrecorded — the report and
the exit code say so — but never unprotected.
"""

from __future__ import annotations

import os
import time

from bootguard.earlyboot import act, decide, observe, record
from bootguard.earlyboot.observe import BOOTGUARD_GUID, FAILURE_VAR, Options
from bootguard.errors import BootguardError, ReadOnlyError
from bootguard.seams import fs
from bootguard.seams.statestore import StateStore

TYPE_CHECKING = False
if TYPE_CHECKING:
    from bootguard.earlyboot.act import Port
    from bootguard.earlyboot.observe import Observation

MAX_NOTES = 4  # initrd-failure reasons kept in the EFI variable (each ≤ 200 characters)
LOCK_BOUND = 10.0  # seconds the early-boot step waits for another writer of the state; then it goes on


def archive_pstore(pstore: str, archive: str) -> int:
    """Move the kernel's crash records out of pstore once their cause is recorded.

    Left in place they would be blamed again for the next unrelated failure, and with the EFI
    backend they fill the firmware's variable store (as systemd-pstore.service, which also moves them).
    """
    try:
        names = sorted(n for n in os.listdir(pstore) if n.startswith("dmesg"))
    except OSError:
        return 0
    if not names:
        return 0
    target = os.path.join(archive, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
    os.makedirs(target, mode=0o700, exist_ok=True)
    moved = 0
    for name in names:
        src = os.path.join(pstore, name)
        try:
            # fs's copy, not shutil's: shutil would pack bz2, lzma and their libraries into every
            # initramfs (~0.2 MiB gzipped). The copy is complete and fsynced before the record goes.
            fs.copy_durably(src, os.path.join(target, name), mode=0o600)
            os.unlink(src)
            moved += 1
        except OSError:
            continue  # a record we cannot move stays for systemd-pstore; never fail the boot for it
    return moved


ESP_MOUNT = "/run/bootguard/esp"


def _has_loader(opts: Options, obs: Observation) -> bool:
    """Whether the step has a loader configuration to act on (systemd-boot's view or GRUB's block)."""
    return obs.view is not None or (opts.grub_env is not None and obs.grub_env is not None)


def _port(opts: Options, obs: Observation) -> Port:
    if obs.view is not None:
        from bootguard.seams.efivars import EfiVars
        from bootguard.services.statetrial import SdBootPort

        return SdBootPort(obs.view, EfiVars(opts.efivars))
    from bootguard.seams.grubenv import GrubEnv
    from bootguard.services.grubtrial import GrubPort

    assert opts.grub_env is not None
    return GrubPort(GrubEnv(opts.grub_env))


def mount_esp(efivars: str, target: str = ESP_MOUNT) -> str | None:
    """Mount the ESP the loader was started from (LoaderDevicePartUUID); None when that is impossible."""
    from bootguard.seams import proc
    from bootguard.seams.efivars import EfiVars

    uuid = EfiVars(efivars).read_str("LoaderDevicePartUUID") if EfiVars(efivars).available() else None
    if not uuid:
        return None
    device = f"/dev/disk/by-partuuid/{uuid.lower()}"
    os.makedirs(target, exist_ok=True)
    done = proc.run(
        ["mount", "-t", "vfat", "-o", "rw,nosuid,nodev,noexec", device, target], check=False, timeout=30
    )
    return target if done.ok else None


def unmount(target: str) -> None:
    from bootguard.seams import proc

    proc.run(["umount", target], check=False, timeout=30)


def record_failure(opts: Options, reason: str) -> dict[str, object]:
    """The initrd failed (no root, emergency target): leave the cause where the next boot finds it.

    The root file system is not there, and /run does not survive the reboot that follows, so the
    reason goes into a non-volatile EFI variable of bootguard's own; the next early-boot step reads
    it as the cause of the previous boot's failure and deletes it. The loader already counted the
    attempt, so after the configured tries it falls back to golden by itself.
    """
    from bootguard.seams.efivars import EfiVars

    message = (
        f"would record an initrd failure: {reason}" if opts.dry_run else f"initrd failure recorded: {reason}"
    )
    if not opts.dry_run:
        # Appended, one line per failed boot: several can fail before the next step runs, and each
        # failure is told with its own reason (causes.attribute); the newest few are kept.
        efi = EfiVars(opts.efivars)
        earlier = (efi.read_str(FAILURE_VAR, BOOTGUARD_GUID) or "").split("\n")
        line = " ".join(reason.split())[:200] or "initrd failure"
        kept = [n for n in earlier if n.strip()][-(MAX_NOTES - 1) :]
        notes = [*kept, line]
        efi.write_str(FAILURE_VAR, "\n".join(notes), attrs=0x7, guid=BOOTGUARD_GUID)
    return {"events": [message], "actions": [], "dry_run": opts.dry_run}


def run(opts: Options) -> dict[str, object]:
    if opts.mount_esp and opts.esp is None:
        mounted = mount_esp(opts.efivars)
        if mounted is not None:
            try:
                return run(opts.evolve(esp=mounted, mount_esp=False))
            finally:
                unmount(mounted)
    report: dict[str, object] = {"events": [], "actions": [], "dry_run": opts.dry_run}
    try:
        _assess(opts, report)
    except (BootguardError, OSError) as exc:
        # The state is unusable (both slots corrupt, an unsafe directory or lock, a full disk) or
        # another process holds its lock past the bound: this boot is not recorded, but it is still
        # protected. The exit code says so after the watchdog is armed.
        message = exc.message if isinstance(exc, BootguardError) else f"{exc.strerror or exc}"
        report["error"] = f"this boot is not recorded: {message}"
        report["exit_code"] = int(exc.exit_code) if isinstance(exc, BootguardError) else 1
        report["reboot"] = False
    if opts.dry_run:
        return report
    from bootguard.earlyboot.arm import arm_watchdog  # a dry run arms nothing

    try:
        report["watchdog"] = arm_watchdog(opts)
    except BootguardError as exc:
        report["watchdog"] = f"watchdog: not armed: {exc.message}"
    return report


def _assess(opts: Options, report: dict[str, object]) -> None:
    """Observe, decide, record and act; everything of the step that needs the state."""
    store = StateStore(opts.state_dir, lock_timeout=LOCK_BOUND)
    obs = observe.observe(opts, store)
    decision = decide.decide(obs)
    report["events"] = [e.message for e in decision.events]
    report["actions"] = list(decision.actions)
    if opts.dry_run:
        return
    try:
        record.record(store, decision)
        report["recorded"] = opts.state_dir
        report["pstore_archived"] = archive_pstore(opts.pstore, os.path.join(opts.state_dir, "pstore"))
        if obs.failure_note is not None:  # recorded: the note has done its job
            from bootguard.seams.efivars import EfiVars

            EfiVars(opts.efivars).delete(FAILURE_VAR, BOOTGUARD_GUID)
        if _has_loader(opts, obs):
            # The port (and statetrial or grubtrial behind it) only when there is something to do:
            # most boots have no action, and every module imported costs on every boot (issue 13).
            actions = decision.actions
            done = act.carry_out(_port(opts, obs), store, actions, decision.ended) if actions else []
            rebooting = act.REBOOT in done
            report["done"], report["reboot"] = done, rebooting
            if act.REBOOT in decision.actions and not rebooting:
                store.update(record.boot_goes_on)
    except ReadOnlyError:
        report["recorded"] = record.spool(opts.spool_dir, decision)
