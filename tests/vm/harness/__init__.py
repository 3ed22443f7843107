"""Real-boot test harness: OVMF + real systemd-boot binaries + the Debian kernel + i6300esb under QEMU.

Modules, bottom to top:

- `cache`      — where downloaded and built artefacts live (`tests/vm/cache/` or `$BOOTGUARD_VM_CACHE`).
- `packages`   — the four real systemd-boot EFI binaries Debian ships, fetched without changing the host;
                 the Debian kernel and its modules.
- `initramfs`  — a busybox initramfs whose `/init` is `guest_init.sh`.
- `disk`       — GPT disk with a FAT ESP (mtools, no mounts), BLS entries, the ext4 state disk.
- `qmp`        — a small QMP client that records WATCHDOG/RESET/SHUTDOWN events with timestamps.
- `qemu`       — the QEMU command line, the KVM probe, one QEMU process per scenario.
- `serial`     — parsing the guest's marker lines out of the serial log.
- `scenario`   — a scenario (entries + actions + loader.conf) → run → result with boots, ESP, state.
- `suite`      — the session's pool (two VMs at once) and the summary table; `marks` — pytest markers.

See docs/vm-harness.md.
"""
