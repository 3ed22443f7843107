"""Closed vocabularies without `enum` at run time: the ground floor, next to errors.py.

Why: importing `enum` (with functools, operator, types, collections, reprlib, keyword) costs about
half of a bare interpreter's start, and the early-boot step runs on every boot (issue 13). For the
type checker these bases *are* `enum.Enum`, `enum.IntEnum` and `enum.IntFlag`, so mypy checks
members, values and exhaustiveness as usual; at run time a small metaclass gives the surface
bootguard uses: members are singletons of their class found as class attributes, with `.name` and
`.value`; `Cls(value)` finds a member (ValueError otherwise); iterating the class gives the members
in definition order. Int vocabularies are ints (exit codes, ioctl flags); an int flag built from
several bits is a plain int. Members are the class body's UPPER_CASE names with a str or int value.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from enum import Enum as Vocab
    from enum import IntEnum as IntVocab
    from enum import IntFlag as FlagVocab

    __all__ = ["FlagVocab", "IntVocab", "Vocab"]
else:

    def _is_member(key, value):
        return key.isupper() and not key.startswith("_") and type(value) in (str, int)

    class _Meta(type):
        def __new__(mcls, name, bases, ns):
            members = [(k, v) for k, v in ns.items() if _is_member(k, v)]
            body = {k: v for k, v in ns.items() if not _is_member(k, v)}
            cls = super().__new__(mcls, name, bases, body)
            order, by_value = [], {}
            for key, value in members:
                member = cls._member(key, value)
                type.__setattr__(cls, key, member)
                order.append(member)
                by_value.setdefault(value, member)
            type.__setattr__(cls, "_order", tuple(order))
            type.__setattr__(cls, "_by_value", by_value)
            return cls

        def __call__(cls, value):
            if type(value) is cls:
                return value
            try:
                return cls._by_value[value]
            except (KeyError, TypeError):
                return cls._missing(value)

        def __iter__(cls):
            return iter(cls._order)

        def __len__(cls):
            return len(cls._order)

        def __getitem__(cls, key):
            # by name, as enum's; by position, as the sequence the class also is (for hypothesis)
            if isinstance(key, str):
                member = cls.__dict__.get(key)
                if type(member) is cls:
                    return member
                raise KeyError(key)
            return cls._order[key]

        def __setattr__(cls, key, value):
            raise AttributeError(f"{cls.__name__} is a closed vocabulary")

    # The classes are ordered collections of their members (what `random.choice` or hypothesis's
    # `sampled_from` take, as they take an enum); _collections_abc is loaded by `os` already.
    import _collections_abc

    _collections_abc.Sequence.register(_Meta)

    class Vocab(metaclass=_Meta):
        __slots__ = ("name", "value")

        @classmethod
        def _member(cls, name, value):
            member = object.__new__(cls)
            object.__setattr__(member, "name", name)
            object.__setattr__(member, "value", value)
            return member

        @classmethod
        def _missing(cls, value):
            raise ValueError(f"{value!r} is not a valid {cls.__name__}")

        def __setattr__(self, key, value):
            raise AttributeError(f"{type(self).__name__}.{self.name} cannot be changed")

        def __repr__(self):
            return f"<{type(self).__name__}.{self.name}: {self.value!r}>"

        def __str__(self):
            return f"{type(self).__name__}.{self.name}"

        def __reduce__(self):
            return type(self), (self.value,)

    class IntVocab(int, metaclass=_Meta):
        @classmethod
        def _member(cls, name, value):
            member = int.__new__(cls, value)
            member.__dict__["name"] = name
            return member

        @classmethod
        def _missing(cls, value):
            raise ValueError(f"{value!r} is not a valid {cls.__name__}")

        @property
        def value(self):
            return int(self)

        def __repr__(self):
            return f"<{type(self).__name__}.{self.name}: {int(self)}>"

        __str__ = int.__repr__

        def __reduce__(self):
            return type(self), (int(self),)

    class FlagVocab(IntVocab):
        @classmethod
        def _missing(cls, value):
            if type(value) is int and value >= 0:
                return value  # several bits: a plain int
            raise ValueError(f"{value!r} is not a valid {cls.__name__}")
