"""The vocabulary of the early-boot step: why a boot failed, what the step does about it, and where
it leaves its record of a boot for the next one (shared by earlyboot, trialdecide and the verdict)."""

from __future__ import annotations

import enum

TYPE_CHECKING = False
if TYPE_CHECKING:
    from bootguard.services.earlyboot import Observation

LAST_BOOT = "last_boot"  # State.extra key: the boot the initrd saw last, awaiting a verdict
TRIAL_TRY = "trial_try"  # LAST_BOOT key: which try of a state-counted trial that boot was


class Cause(enum.Enum):
    """Why a boot did not finish."""

    WATCHDOG = "watchdog-reset"
    PANIC = "kernel-panic"
    BEFORE_BOOTGUARD = "failed-before-bootguard"  # kernel or early initrd: bootguard never ran
    VALIDATION = "validation-failed"
    INITRD = "initrd-failure"  # the initrd could not reach the real root (recorded by `initrd --failed`)
    UNKNOWN = "unknown"  # reset button, power loss, `reboot -f` without a verdict


class Action(enum.Enum):
    ABANDON_TRIAL = "abandon-trial"  # trial used up its tries; the host is on golden
    RESTORE_GLOB = "restore-default-glob"  # LoaderEntryDefault lost while a trial is running
    REWRITE_GOLDEN_COPY = "rewrite-golden-copy"
    FORGET_TRIAL = "forget-trial"  # the trial's copy vanished from the ESP
    GOLDEN_DEFAULT = "golden-default"  # state-counted trial: the loader's default is golden
    RETRY_TRIAL = "retry-trial"  # state-counted trial: arm the next try as a one-shot boot
    REBOOT = "reboot"  # into the armed try, or off a used-up trial onto golden


def failure_cause(obs: Observation) -> Cause:
    """The cause of a boot that reached the early-boot step and then ended without a verdict."""
    if obs.failure_note:
        return Cause.INITRD
    if obs.watchdog_reset:
        return Cause.WATCHDOG
    if obs.panic_log:
        return Cause.PANIC
    return Cause.UNKNOWN


def unseen_cause(obs: Observation) -> Cause:
    """The cause of a boot that never reached the early-boot step."""
    cause = failure_cause(obs)
    return Cause.BEFORE_BOOTGUARD if cause is Cause.UNKNOWN else cause


def explain(cause: Cause, obs: Observation) -> str:
    return {
        Cause.WATCHDOG: "the hardware watchdog reset the machine (bootstatus CARDRESET): the boot hung",
        Cause.PANIC: f"the kernel panicked (pstore {obs.panic_log})",
        Cause.BEFORE_BOOTGUARD: "it failed before bootguard's early-boot step ran (kernel or early initrd)",
        Cause.VALIDATION: "health checks failed",
        Cause.INITRD: f"it failed in the initrd ({obs.failure_note or 'no root file system'})",
        Cause.UNKNOWN: "it ended without a verdict (reset, power loss or forced reboot)",
    }[cause]
