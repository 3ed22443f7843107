"""Running the early-boot step: observe the host, decide (earlyboot.decide), record, arm the watchdog.

Where the record goes: the state directory when it is writable (on NixOS with systemd stage 1 this is
/sysroot/var/lib/bootguard), otherwise the whole decision is spooled to /run/bootguard/spool — /run
is handed to the real root at switch-root — and the first userland bootguard command (the validator)
merges it into /var/lib/bootguard. Nothing is lost either way.
"""

from __future__ import annotations

import os
import time

from bootguard.errors import BootguardError, ReadOnlyError
from bootguard.model._frozen import Frozen
from bootguard.model.events import Event, EventKind, read_boot_id
from bootguard.model.state import State, Trial
from bootguard.seams import fs
from bootguard.seams.statestore import StateStore
from bootguard.services import earlyboot
from bootguard.services.earlyboot import Action, Decision, Observation

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from bootguard.services.grubtrial import GrubPort
    from bootguard.services.statetrial import SdBootPort

    Port = SdBootPort | GrubPort

    from bootguard.services.bootview import BootView

SPOOL_DIR = "/run/bootguard/spool"
SPOOL_FILE = "decision.json"


class Options(Frozen):
    __slots__ = (
        "boot_id",
        "cmdline",
        "dry_run",
        "efivars",
        "esp",
        "grub_env",
        "mount_esp",
        "pstore",
        "spool_dir",
        "state_dir",
        "watchdog_device",
        "watchdog_sysfs",
        "watchdog_timeout",
        "xbootldr",
    )
    esp: str | None
    xbootldr: str | None
    efivars: str
    state_dir: str
    spool_dir: str
    watchdog_device: str | None
    watchdog_timeout: int | None
    watchdog_sysfs: str
    pstore: str
    dry_run: bool
    mount_esp: bool
    boot_id: str | None
    grub_env: str | None  # a GRUB host: its environment block (then no systemd-boot view is read)
    cmdline: str  # the kernel command line's file (GRUB hosts: which entry is booted)

    def __init__(self, **kw: Any) -> None:
        self._init(**{"grub_env": None, "cmdline": "/proc/cmdline", **kw})


def _watchdog_reset_seen(sysfs: str) -> tuple[bool, list[str]]:
    from bootguard.seams import watchdog as wd

    try:
        infos = wd.discover(sysfs_root=sysfs)
    except BootguardError as exc:
        return False, [exc.message]
    return any(wd.bootstatus_says_watchdog_reset(i) for i in infos), []


def _loader_view(opts: Options, problems: list[str]) -> tuple[BootView | None, dict[str, str] | None, str]:
    """systemd-boot's view, or on a GRUB host its environment block and the kernel command line."""
    if opts.grub_env is not None:
        from bootguard.seams.grubenv import GrubEnv
        from bootguard.services.grubtrial import read_cmdline

        try:
            return None, GrubEnv(opts.grub_env).read(), read_cmdline(opts.cmdline)
        except BootguardError as exc:
            problems.append(f"GRUB's environment unavailable, this boot is not assessed: {exc.message}")
            return None, None, ""
    from bootguard.services.bootview import BootView

    try:
        return BootView.gather(opts.esp, opts.xbootldr, opts.efivars), None, ""
    except BootguardError as exc:
        problems.append(f"boot loader view unavailable, this boot is not assessed: {exc.message}")
        return None, None, ""


def observe(opts: Options, store: StateStore) -> Observation:
    problems: list[str] = []
    view, grub_env, cmdline = _loader_view(opts, problems)
    try:
        loaded = store.load()
        state, warnings = loaded.state, list(loaded.warnings)
    except BootguardError as exc:
        state, warnings = State.initial(), [exc.message]
    reset, wd_problems = _watchdog_reset_seen(opts.watchdog_sysfs)
    return Observation(
        view,
        state,
        failure_note=take_failure_note(opts.efivars),
        watchdog_reset=reset,
        panic_log=earlyboot.find_panic_log(opts.pstore),
        boot_id=opts.boot_id or read_boot_id(),
        problems=(*problems, *warnings, *wd_problems),
        grub_env=grub_env,
        cmdline=cmdline,
    )


def _spool(opts: Options, decision: Decision) -> str:
    from bootguard.model.jsoncodec import dumps

    os.makedirs(opts.spool_dir, mode=0o700, exist_ok=True)
    path = os.path.join(opts.spool_dir, SPOOL_FILE)
    payload = {
        "events": [e.to_dict() for e in decision.events],
        "failures": [[entry, cause.value] for entry, cause in decision.failures],
        "last_boot": decision.last_boot,
        "trial": decision.trial.to_dict() if decision.trial else None,
        "actions": [a.value for a in decision.actions],
    }
    fs.atomic_write(path, dumps(payload).encode())
    return path


def merge_spool(store: StateStore, spool_dir: str = SPOOL_DIR) -> int:
    """Fold a decision spooled by the initrd into the state directory; returns events merged."""
    import json

    path = os.path.join(spool_dir, SPOOL_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            payload = json.load(f)
    except FileNotFoundError:
        return 0
    events = [Event.from_json(json.dumps(e)) for e in payload.get("events", [])]
    failures = [(str(e), earlyboot.Cause(c)) for e, c in payload.get("failures", [])]
    trial = Trial.from_dict(payload["trial"], path) if payload.get("trial") else None
    actions = [Action(a) for a in payload.get("actions", [])]
    if trial is not None and Action.RETRY_TRIAL in actions:  # a spooled decision's actions are not
        trial = trial.evolve(attempt=trial.attempt - 1)  # carried out: the try was never armed
    last = dict(payload["last_boot"])
    if last.get("verdict") == "rebooted":
        last["verdict"] = None  # nor was the reboot
    decision = Decision(events, actions, failures, last, trial)
    _record(store, decision)
    os.unlink(path)
    return len(events)


def _record(store: StateStore, decision: Decision) -> None:
    now = time.time()
    store.update(lambda s: earlyboot.apply_state(s, decision, now))
    for event in decision.events:
        store.append_event(event)


def _act(port: Port, store: StateStore, decision: Decision) -> list[str]:
    """Carry out the decision's actions in order; a reboot only follows when all before it succeeded."""
    done: list[str] = []
    for action in decision.actions:
        if action is Action.REBOOT:
            if len(done) == len(decision.actions) - 1:
                done.append(action.value)
            continue
        try:
            _do(action, port, store, decision)
            done.append(action.value)
        except BootguardError as exc:
            if action is Action.RETRY_TRIAL:  # the try was never armed: take the pending marker back
                store.update(_unarm)
            store.append_event(
                Event.new(EventKind.POLICY_CORRECTED, f"could not {action.value}: {exc.message}")
            )
    return done


def _port(opts: Options, obs: Observation) -> Port | None:
    if obs.view is not None:
        from bootguard.seams.efivars import EfiVars
        from bootguard.services.statetrial import SdBootPort

        return SdBootPort(obs.view, EfiVars(opts.efivars))
    if opts.grub_env is not None and obs.grub_env is not None:
        from bootguard.seams.grubenv import GrubEnv
        from bootguard.services.grubtrial import GrubPort

        return GrubPort(GrubEnv(opts.grub_env))
    return None


def _boot_goes_on(state: State) -> State:
    """The planned reboot is off: this boot awaits a verdict like any other."""
    last = state.extra.get(earlyboot.LAST_BOOT)
    if not isinstance(last, dict):
        return state
    return state.with_extra(earlyboot.LAST_BOOT, {**last, "verdict": None})


def _unarm(state: State) -> State:
    t = state.trial
    return state.with_trial(t.evolve(attempt=t.attempt - 1)) if t and t.attempt > t.failures else state


def _do(action: Action, port: Port, store: StateStore, decision: Decision) -> None:
    state = store.load().state  # a retry's try number is in it already: the pending marker
    if action is Action.ABANDON_TRIAL:
        # The cause of the try that used the trial up: seen in this boot, else the last one its
        # generation's history recorded (a validation failure marks the copy bad at once).
        cause = decision.failures[-1][1].value if decision.failures else None
        if cause is None and state.trial is not None:
            cause = state.attempts_for(state.trial.filename).last_cause
        port.abandon(store, cause or "unknown")
    elif action is Action.RESTORE_GLOB:
        port.restore_glob()
    elif action is Action.GOLDEN_DEFAULT:
        port.golden_default(state)
    elif action is Action.RETRY_TRIAL:
        if state.trial is None:
            raise BootguardError("no trial to retry")
        port.arm_try(state, state.trial)
    elif action is Action.REWRITE_GOLDEN_COPY:
        port.rewrite_golden_copy(state)


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
    import shutil  # only now: ~3 ms at early boot (bz2, lzma, fnmatch), and most boots have no record

    target = os.path.join(archive, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
    os.makedirs(target, mode=0o700, exist_ok=True)
    moved = 0
    for name in names:
        src = os.path.join(pstore, name)
        try:
            shutil.copyfile(src, os.path.join(target, name))
            os.unlink(src)
            moved += 1
        except OSError:
            continue  # a record we cannot move stays for systemd-pstore; never fail the boot for it
    fs.fsync_dir(target)
    return moved


def arm_watchdog(opts: Options) -> str:
    """Arm the watchdog with the configured timeout and let go of it without disarming (hand-off)."""
    from bootguard.seams import watchdog as wd

    if not opts.watchdog_timeout:
        return "watchdog: not armed (no --watchdog-timeout)"
    path = opts.watchdog_device
    if path is None:
        infos = wd.discover(sysfs_root=opts.watchdog_sysfs)
        if not infos:
            return "watchdog: none found; not armed"
        path = infos[0].device
    dev = wd.WatchdogDevice.open(path)
    try:
        actual = dev.set_timeout(opts.watchdog_timeout)
        dev.keepalive()
    finally:
        dev.close_armed()
    return f"watchdog: {path} armed with {actual} s and handed on (the next owner must ping it)"


ESP_MOUNT = "/run/bootguard/esp"


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


BOOTGUARD_GUID = "b0075a7e-9d1e-4c1e-8f4b-3b6f0a5e2c11"  # bootguard's own EFI variable namespace
FAILURE_VAR = "BootguardInitrdFailure"


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
        EfiVars(opts.efivars).write_str(FAILURE_VAR, reason[:200], attrs=0x7, guid=BOOTGUARD_GUID)
    return {"events": [message], "actions": [], "dry_run": opts.dry_run}


def take_failure_note(efivars: str) -> str | None:
    """The initrd-failure reason left by the previous boot (deleted by `run` once recorded)."""
    from bootguard.seams.efivars import EfiVars

    efi = EfiVars(efivars)
    if not efi.available():
        return None
    return efi.read_str(FAILURE_VAR, BOOTGUARD_GUID)


def run(opts: Options) -> dict[str, object]:
    if opts.mount_esp and opts.esp is None:
        mounted = mount_esp(opts.efivars)
        if mounted is not None:
            try:
                return run(opts.evolve(esp=mounted, mount_esp=False))
            finally:
                unmount(mounted)
    store = StateStore(opts.state_dir)
    obs = observe(opts, store)
    decision = earlyboot.decide(obs)
    report: dict[str, object] = {
        "events": [e.message for e in decision.events],
        "actions": [a.value for a in decision.actions],
        "dry_run": opts.dry_run,
    }
    if opts.dry_run:
        return report
    try:
        _record(store, decision)
        report["recorded"] = opts.state_dir
        report["pstore_archived"] = archive_pstore(opts.pstore, os.path.join(opts.state_dir, "pstore"))
        if obs.failure_note is not None:  # recorded: the note has done its job
            from bootguard.seams.efivars import EfiVars

            EfiVars(opts.efivars).delete(FAILURE_VAR, BOOTGUARD_GUID)
        port = _port(opts, obs)
        if port is not None:
            report["done"] = done = _act(port, store, decision)
            report["reboot"] = Action.REBOOT.value in done
            if Action.REBOOT in decision.actions and not report["reboot"]:
                store.update(_boot_goes_on)
    except ReadOnlyError:
        report["recorded"] = _spool(opts, decision)
    try:
        report["watchdog"] = arm_watchdog(opts)
    except BootguardError as exc:
        report["watchdog"] = f"watchdog: not armed: {exc.message}"
    return report
