"""Structured journald messages with stable MESSAGE_IDs, in the native journal protocol.

One AF_UNIX datagram to /run/systemd/journal/socket per message: `KEY=value\\n` fields, or for
values containing a newline `KEY\\n` + 64-bit little-endian length + value + `\\n`. Without a
journal (tests, containers, a failed journald) the message goes to stderr instead, so nothing is
lost. `journalctl MESSAGE_ID=…` finds every decision across boots; the IDs never change.
"""

from __future__ import annotations

import enum
import errno
import os
import socket
import struct
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO

JOURNAL_SOCKET = "/run/systemd/journal/socket"


class MessageId(enum.Enum):
    """Stable 128-bit ids (`journalctl MESSAGE_ID=…`); never change a value once released."""

    VALIDATION_PASSED = "24b7c3cb90f34ab8bbd720c1a88b894a"
    VALIDATION_FAILED = "dd6979e033f646c183aa9d9e75373f19"
    CHECK_FAILED = "fd47fcd6d364428986533c888cc70c5f"
    BLESSED = "fb7c108ba5be433eb2947d5e1df62cc5"
    MARKED_BAD = "7ac2164788e54c009cdec1fb55336ae3"
    NOTIFICATION_FAILED = "29a199b516904a6c9b41e9f388ed584a"
    BLESS_CONFLICT = "6d114a693e774a73ab4845acd20ec31c"
    BOOT_DEADLINE = "a04814b37b3a49ba9ba49f2a3e6289d8"
    REBOOTING = "22a89abc93b949aaaf1a092afd738ff6"


class Priority(enum.IntEnum):
    ERR = 3
    WARNING = 4
    NOTICE = 5
    INFO = 6


def _field(key: str, value: str) -> bytes:
    data = value.encode("utf-8", "replace")
    if b"\n" in data:
        return key.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
    return key.encode() + b"=" + data + b"\n"


def encode(fields: dict[str, str]) -> bytes:
    """The datagram for `fields` (keys upper-case ASCII, as journald requires)."""
    return b"".join(_field(k, v) for k, v in fields.items())


class Journal:
    """Send structured messages; fall back to `stream` when no journal socket accepts them."""

    def __init__(
        self,
        socket_path: str = JOURNAL_SOCKET,
        *,
        stream: TextIO | None = None,
        identifier: str = "bootguard",
    ) -> None:
        self.socket_path = socket_path
        self.stream = stream
        self.identifier = identifier

    def send(
        self, message: str, message_id: MessageId, priority: Priority = Priority.INFO, **fields: object
    ) -> None:
        record = {
            "MESSAGE": message,
            "MESSAGE_ID": message_id.value,
            "PRIORITY": str(int(priority)),
            "SYSLOG_IDENTIFIER": self.identifier,
        }
        record.update({f"BOOTGUARD_{k.upper()}": str(v) for k, v in fields.items() if v is not None})
        stream = self.stream if self.stream is not None else sys.stderr
        # Without a journal the message goes to stderr; with one, a person at a terminal sees it too.
        # (The CLI prints nothing else in text mode, so nothing is said twice.)
        if not self._to_journal(encode(record)) or stream.isatty():
            print(f"{self.identifier}: {message}", file=stream, flush=True)

    def _to_journal(self, datagram: bytes) -> bool:
        if not os.path.exists(self.socket_path):
            return False
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            try:
                sock.sendto(datagram, self.socket_path)
            except OSError as exc:
                # No listener, or a message too big for one datagram (journald would then want a
                # memfd; our messages are short, so stderr is the honest fallback).
                if exc.errno in (
                    errno.ECONNREFUSED,
                    errno.ENOENT,
                    errno.EMSGSIZE,
                    errno.ENOBUFS,
                    errno.EAGAIN,
                    errno.EACCES,
                    errno.ENOTSOCK,
                ):
                    return False
                raise
        return True
