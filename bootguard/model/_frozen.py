"""A tiny frozen-value base for the early-boot layer.

Why not dataclasses or attrs: importing `dataclasses` (which pulls in `inspect`) alone costs more
than the whole early-boot budget on a bare interpreter. Subclasses declare `__slots__`, assign
their fields once with `_init(...)` in a named constructor or `__init__`, and get equality, hashing,
a readable repr, immutability and `evolve`.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Self


class FrozenError(AttributeError):
    """Raised on an attempt to change a frozen value."""


class Frozen:
    """Base for immutable value objects with `__slots__`."""

    __slots__: tuple[str, ...] = ()

    @classmethod
    def _fields(cls) -> tuple[str, ...]:
        names: list[str] = []
        for klass in reversed(cls.__mro__):
            names.extend(klass.__dict__.get("__slots__", ()))
        return tuple(names)

    def _init(self, **values: Any) -> None:
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise FrozenError(f"{type(self).__name__} is frozen; use evolve()")

    def __delattr__(self, name: str) -> None:
        raise FrozenError(f"{type(self).__name__} is frozen")

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, n) for n in self._fields())

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash((type(self).__name__, *self._values()))

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in self._fields())
        return f"{type(self).__name__}({inner})"

    def evolve(self, **changes: Any) -> Self:
        """A copy with some fields changed."""
        new = object.__new__(type(self))
        values = {n: getattr(self, n) for n in self._fields()}
        values.update(changes)
        new._init(**values)
        return new
