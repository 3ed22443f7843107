"""Step 1, observe: what the loader, the watchdog, pstore and the state say about this boot.

The loader's view (LoaderBootCountPath, LoaderEntrySelected, LoaderInfo, entries) or, on a GRUB host,
its environment block and the kernel command line; the watchdog's bootstatus from sysfs (never
opening the device: that would arm it); pstore's crash records; the note `initrd --failed` left in
an EFI variable; the state. Nothing here changes anything.
"""

from __future__ import annotations

import os

from bootguard.errors import BootguardError
from bootguard.model._frozen import Frozen
from bootguard.model.events import read_boot_id
from bootguard.model.state import State

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from bootguard.seams.statestore import StateStore
    from bootguard.services.bootview import BootView

PSTORE_DIR = "/sys/fs/pstore"
BOOTGUARD_GUID = "b0075a7e-9d1e-4c1e-8f4b-3b6f0a5e2c11"  # bootguard's own EFI variable namespace
FAILURE_VAR = "BootguardInitrdFailure"


class Options(Frozen):
    """What `bootguard initrd` was told: where to look, what to arm, whether to write."""

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


class Observation(Frozen):
    __slots__ = (
        "boot_id",
        "cmdline",
        "failure_note",
        "grub_env",
        "panic_logs",
        "problems",
        "state",
        "view",
        "watchdog_reset",
    )
    view: BootView | None
    grub_env: dict[str, str] | None  # GRUB hosts: the environment block (saved_entry, next_entry)
    cmdline: str | None  # the kernel command line (GRUB hosts: which entry this boot is)
    state: State
    watchdog_reset: bool
    panic_logs: tuple[str, ...]  # pstore records of kernel panics, oldest first
    failure_note: str | None  # left by `initrd --failed` in failed boots (an EFI variable), a line each
    boot_id: str | None
    problems: tuple[str, ...]

    def __init__(
        self,
        view: BootView | None,
        state: State,
        *,
        watchdog_reset: bool = False,
        panic_logs: tuple[str, ...] = (),
        boot_id: str | None = None,
        problems: tuple[str, ...] = (),
        failure_note: str | None = None,
        grub_env: dict[str, str] | None = None,
        cmdline: str | None = None,
    ) -> None:
        self._init(
            view=view,
            grub_env=grub_env,
            cmdline=cmdline,
            state=state,
            watchdog_reset=watchdog_reset,
            panic_logs=tuple(panic_logs),
            failure_note=failure_note,
            boot_id=boot_id,
            problems=problems,
        )

    @property
    def failure_notes(self) -> tuple[str, ...]:
        """One reason per boot that failed in the initrd since the step last ran, oldest first."""
        return tuple(line for line in (self.failure_note or "").split("\n") if line.strip())


def find_panic_logs(pstore: str = PSTORE_DIR) -> tuple[str, ...]:
    """pstore's records of kernel panics (kept since the step last archived them), oldest first."""
    try:
        names = os.listdir(pstore)
    except OSError:
        return ()
    found: list[tuple[float, str]] = []
    for name in names:
        if not name.startswith("dmesg"):
            continue
        path = os.path.join(pstore, name)
        try:
            with open(path, "rb") as f:
                if b"Kernel panic" in f.read(1 << 20):
                    found.append((os.stat(path).st_mtime, name))  # pstore sets a record's time
        except OSError:
            continue
    return tuple(name for _, name in sorted(found))


def watchdog_reset_seen(sysfs: str) -> tuple[bool, list[str]]:
    # sysfs's bootstatus alone: the device module (ioctls, the full sysfs view) is for arming.
    from bootguard.seams.watchdog_sysfs import reset_seen

    try:
        return reset_seen(sysfs), []
    except BootguardError as exc:
        return False, [exc.message]


def take_failure_note(efivars: str) -> str | None:
    """The initrd-failure reason left by the previous boot (deleted by the step once recorded)."""
    from bootguard.seams.efivars import EfiVars

    efi = EfiVars(efivars)
    if not efi.available():
        return None
    return efi.read_str(FAILURE_VAR, BOOTGUARD_GUID)


def loader_view(opts: Options, problems: list[str]) -> tuple[BootView | None, dict[str, str] | None, str]:
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
        # Lazy: the decision needs file names and counters; an entry's file is read only if its
        # contents are used (rewriting golden's copy), which saves ~1.5 ms on every boot (issue 13).
        return BootView.gather(opts.esp, opts.xbootldr, opts.efivars, lazy=True), None, ""
    except BootguardError as exc:
        problems.append(f"boot loader view unavailable, this boot is not assessed: {exc.message}")
        return None, None, ""


def observe(opts: Options, store: StateStore) -> Observation:
    """Everything the decision needs. An unreadable state is an error: deciding on an empty state
    would count boots against nothing, and recording it would fail anyway."""
    problems: list[str] = []
    view, grub_env, cmdline = loader_view(opts, problems)
    loaded = store.load()
    reset, wd_problems = watchdog_reset_seen(opts.watchdog_sysfs)
    return Observation(
        view,
        loaded.state,
        failure_note=take_failure_note(opts.efivars),
        watchdog_reset=reset,
        panic_logs=find_panic_logs(opts.pstore),
        boot_id=opts.boot_id or read_boot_id(),
        problems=(*problems, *loaded.warnings, *wd_problems),
        grub_env=grub_env,
        cmdline=cmdline,
    )
