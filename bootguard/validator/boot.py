"""The one adapter between the validator and the core's blessing (`bootguard.services.verdict`).

The core is the only blesser: on a pass it blesses the booted entry, records the good attempt,
finishes a trial and may promote to golden; on a failure it records the failed attempt and marks
the entry bad, or halts when the host is already on golden. Everything the validator needs from the
boot loader goes through the `Boot` protocol below, so tests substitute a fake here and nowhere else.
"""

from __future__ import annotations

import enum
from typing import Protocol

import attrs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from bootguard.services.bootview import BootView


class Next(enum.Enum):
    CONTINUE = "continue"
    REBOOT = "reboot"
    HALT = "halt"


@attrs.frozen
class BootDecision:
    next: Next
    messages: tuple[str, ...]


class Boot(Protocol):
    def entry(self) -> str | None:
        """The booted entry's file name, when the loader says which one it is."""

    def passed(self) -> BootDecision:
        """Bless this boot."""

    def failed(self, reason: str) -> BootDecision:
        """Reject this boot."""


class CoreBoot:
    """`Boot` backed by the core services and the real ESP/efivarfs."""

    def __init__(
        self,
        esp: str | None,
        xbootldr: str | None,
        efivars: str,
        state_dir: str,
        *,
        promote_after: int | None = None,
    ) -> None:
        self.esp, self.xbootldr, self.efivars, self.state_dir = esp, xbootldr, efivars, state_dir
        self.promote_after = promote_after

    def _view(self) -> BootView:
        """Gathered afresh each time: blessing renames the entry file."""
        from bootguard.services.bootview import BootView

        return BootView.gather(self.esp, self.xbootldr, self.efivars)

    def entry(self) -> str | None:
        booted = self._view().booted
        return None if booted is None else str(booted.filename)

    def passed(self) -> BootDecision:
        from bootguard.seams.efivars import EfiVars
        from bootguard.seams.statestore import StateStore
        from bootguard.services import verdict

        v = verdict.passed(
            self._view(), StateStore(self.state_dir), EfiVars(self.efivars), promote_after=self.promote_after
        )
        return BootDecision(Next(v.next), tuple(v.messages))

    def failed(self, reason: str) -> BootDecision:
        from bootguard.seams.statestore import StateStore
        from bootguard.services import verdict

        v = verdict.failed(self._view(), StateStore(self.state_dir), reason)
        return BootDecision(Next(v.next), tuple(v.messages))


class GrubBoot:
    """`Boot` on a GRUB host: the kernel command line says which entry this is (services/grubtrial.py)."""

    def __init__(self, grub_env: str, state_dir: str, cmdline: str = "/proc/cmdline") -> None:
        self.grub_env, self.state_dir, self.cmdline = grub_env, state_dir, cmdline

    def entry(self) -> str | None:
        from bootguard.seams.statestore import StateStore
        from bootguard.services import grubtrial

        state = StateStore(self.state_dir).load().state
        return grubtrial.booted(state, grubtrial.read_cmdline(self.cmdline))

    def passed(self) -> BootDecision:
        from bootguard.seams.grubenv import GrubEnv
        from bootguard.seams.statestore import StateStore
        from bootguard.services import grubtrial

        messages = grubtrial.verdict(
            GrubEnv(self.grub_env), StateStore(self.state_dir), True, grubtrial.read_cmdline(self.cmdline)
        )
        return BootDecision(Next.CONTINUE, tuple(messages))

    def failed(self, reason: str) -> BootDecision:
        from bootguard.seams.grubenv import GrubEnv
        from bootguard.seams.statestore import StateStore
        from bootguard.services import grubtrial

        halt, messages = grubtrial.failed(
            GrubEnv(self.grub_env), StateStore(self.state_dir), reason, grubtrial.read_cmdline(self.cmdline)
        )
        return BootDecision(Next.HALT if halt else Next.REBOOT, tuple(messages))
