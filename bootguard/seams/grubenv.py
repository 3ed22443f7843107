"""GRUB's environment block (grubenv): read it, and change it with GRUB's own `grub-editenv`.

GRUB reads `saved_entry` (the default when GRUB_DEFAULT=saved, what `grub-set-default` writes) and
`next_entry` (a one-shot, what `grub-reboot` writes; grub.cfg clears it with `save_env` on the boot
that uses it). The block is a fixed 1024-byte file that GRUB's `save_env` overwrites in place, so it is
changed only through `grub-editenv`, which keeps its size; the file is then fsynced and its file system
synced, because the next thing that happens may be a reset.
"""

from __future__ import annotations

import os

from bootguard.errors import EnvironmentProblem, NotFoundError, ReadOnlyError
from bootguard.seams import fs, proc

HEADER = b"# GRUB Environment Block\n"
DEFAULT_PATH = "/boot/grub/grubenv"
SIZE = 1024


class GrubEnv:
    """One grubenv file."""

    def __init__(self, path: str = DEFAULT_PATH) -> None:
        self.path = path

    def __repr__(self) -> str:
        return f"GrubEnv({self.path!r})"

    def read(self) -> dict[str, str]:
        try:
            with open(self.path, "rb") as f:
                data = f.read(SIZE + 1)
        except FileNotFoundError:
            raise NotFoundError(
                f"GRUB environment block {self.path} does not exist",
                hint=f"create it with: grub-editenv {self.path} create",
            ) from None
        except OSError as exc:
            raise EnvironmentProblem(f"cannot read {self.path}: {exc.strerror}") from None
        return parse(data, self.path)

    def set(self, **values: str) -> None:
        self._edit(["set", *(f"{k}={v}" for k, v in values.items())])

    def unset(self, *keys: str) -> None:
        self._edit(["unset", *keys])

    def _edit(self, args: list[str]) -> None:
        self.read()  # a clear error for a missing or foreign file before the tool runs
        if not os.access(self.path, os.W_OK) or not os.access(os.path.dirname(self.path) or ".", os.W_OK):
            raise ReadOnlyError(f"cannot change {self.path}: read-only")
        proc.run(["grub-editenv", self.path, *args], timeout=30)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        fs.fsync_dir(os.path.dirname(self.path) or ".")
        fs.syncfs(os.path.dirname(self.path) or ".")


def parse(data: bytes, where: str) -> dict[str, str]:
    """The variables of an environment block; a file that is not one is an error naming it."""
    if not data.startswith(HEADER) or len(data) != SIZE:
        raise EnvironmentProblem(f"{where} is not a GRUB environment block (1024 bytes starting {HEADER!r})")
    out: dict[str, str] = {}
    for line in data[len(HEADER) :].split(b"\n"):
        if not line or line.startswith(b"#"):
            continue
        key, sep, value = line.partition(b"=")
        if sep:
            out[key.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
    return out
