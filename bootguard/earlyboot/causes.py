"""Why a boot did not finish: the one place that decides a cause, and says it in words.

The evidence the early-boot step has about the boots since it last ran: initrd-failure notes (an
EFI variable `initrd --failed` appends to, one line per failed boot), the watchdog's bootstatus
(CARDRESET: the *last* reset was the watchdog's) and pstore's crash records (one per kernel panic,
kept until archived). Several boots can fail before the step runs again — a loader-counted trial that
panics twice never reaches it — so each piece of evidence is given to exactly one failed boot, newest
evidence to the newest failure: notes, then the watchdog's bootstatus (the newest boot only), then
crash records. A boot that is left without evidence says so
(`failed-before-bootguard` when it never reached the step, `unknown` when it reached it and then
ended without a verdict). Cause words are plain strings (they are also the event log's words; no
`enum` on the early-boot path).
"""

from __future__ import annotations

from bootguard.model._frozen import Frozen

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Final

    from bootguard.earlyboot.observe import Observation

WATCHDOG: Final = "watchdog-reset"
PANIC: Final = "kernel-panic"
BEFORE_BOOTGUARD: Final = "failed-before-bootguard"  # kernel or early initrd: bootguard never ran
VALIDATION: Final = "validation-failed"
INITRD: Final = "initrd-failure"  # the initrd could not reach the real root (`initrd --failed`)
UNKNOWN: Final = "unknown"  # reset button, power loss, `reboot -f` without a verdict
CAUSES = (WATCHDOG, PANIC, BEFORE_BOOTGUARD, VALIDATION, INITRD, UNKNOWN)


class Blame(Frozen):
    """The cause of one failed boot and the evidence it rests on (a pstore record's name)."""

    __slots__ = ("cause", "record")
    cause: str
    record: str | None

    def __init__(self, cause: str, record: str | None = None) -> None:
        self._init(cause=cause, record=record)


def attribute(obs: Observation, reached_step: Sequence[bool]) -> list[Blame]:
    """Causes of failed boots given oldest first (`reached_step[i]`: boot i ran the early-boot step)."""
    records = list(obs.panic_logs)  # oldest first
    notes = list(obs.failure_notes)  # one per boot that failed in the initrd, oldest first
    out: list[Blame] = []
    newest = len(reached_step) - 1
    for i in range(newest, -1, -1):
        if notes:
            out.append(Blame(INITRD, notes.pop()))
        elif i == newest and obs.watchdog_reset:
            # A panic that hangs (panic=0) ends in the watchdog's reset: its record is this boot's too.
            out.append(Blame(WATCHDOG, records.pop() if records else None))
        elif records:
            out.append(Blame(PANIC, records.pop()))
        else:
            out.append(Blame(UNKNOWN if reached_step[i] else BEFORE_BOOTGUARD))
    out.reverse()
    return out


def blame_one(obs: Observation, *, reached_step: bool) -> Blame:
    """The cause of the one boot that failed since the step last ran."""
    return attribute(obs, [reached_step])[0]


def explain(blame: Blame, obs: Observation) -> str:
    cause, record = blame.cause, blame.record
    if cause == WATCHDOG:
        extra = f"; pstore kept its kernel log ({record})" if record else ""
        return f"the hardware watchdog reset the machine (bootstatus CARDRESET): the boot hung{extra}"
    if cause == PANIC:
        return f"the kernel panicked (pstore {record})"
    if cause == BEFORE_BOOTGUARD:
        return (
            "it failed before bootguard's early-boot step ran (kernel or early initrd); "
            "no crash record of its own"
        )
    if cause == VALIDATION:
        return "health checks failed"
    if cause == INITRD:
        return f"it failed in the initrd ({record or 'no root file system'})"
    return "it ended without a verdict (reset, power loss or forced reboot)"
