"""All-or-nothing staging: steps that change the ESP, the EFI variables and the state, undone on failure.

`trial` and `pin-golden` change three places that no single transaction covers (issue 15.4: with the
state directory full they used to leave new ESP copies and a new LoaderEntryDefault behind while the
state knew nothing of them). Each step registers how to undo it; when a later step fails, the undos
run newest first, so the host keeps its old configuration. An undo that fails too is named in the
error, never hidden. Standard library only (early boot).
"""

from __future__ import annotations

from bootguard.errors import BootguardError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType


class Staging:
    """`with Staging() as undo: ...; undo.push(description, fn)` — on an exception, undo everything."""

    __slots__ = ("_undos",)

    def __init__(self) -> None:
        self._undos: list[tuple[str, Callable[[], object]]] = []

    def __enter__(self) -> Staging:
        return self

    def push(self, what: str, undo: Callable[[], object]) -> None:
        self._undos.append((what, undo))

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None:
            return
        failed = []
        for what, undo in reversed(self._undos):
            try:
                undo()
            except (OSError, BootguardError) as err:
                failed.append(f"{what} ({err})")
        if failed and isinstance(exc, BootguardError):
            exc.message += "; could not undo: " + "; ".join(failed)
            exc.args = (exc.message,)
        elif isinstance(exc, BootguardError):
            exc.message += "; nothing was changed"
            exc.args = (exc.message,)
