"""Native journal protocol datagrams, stable MESSAGE_IDs, and the stderr fallback."""

from __future__ import annotations

import io
import socket
import struct
from pathlib import Path

from bootguard.validator.journal import Journal, MessageId, Priority, encode


def _parse(datagram: bytes) -> dict[str, str]:
    """Decode the journal native protocol (both field forms)."""
    fields: dict[str, str] = {}
    i = 0
    while i < len(datagram):
        nl = datagram.index(b"\n", i)
        line = datagram[i:nl]
        if b"=" in line:
            key, _, value = line.partition(b"=")
            fields[key.decode()] = value.decode()
            i = nl + 1
        else:
            (size,) = struct.unpack("<Q", datagram[nl + 1 : nl + 9])
            fields[line.decode()] = datagram[nl + 9 : nl + 9 + size].decode()
            i = nl + 9 + size + 1
    return fields


def test_multiline_values_use_the_binary_form() -> None:
    """A value with a newline is KEY\\n + 64-bit LE length + value + \\n, as journald requires."""
    data = encode({"MESSAGE": "a\nb", "X": "y"})
    assert data == b"MESSAGE\n" + struct.pack("<Q", 3) + b"a\nb\n" + b"X=y\n"


def test_message_goes_to_the_journal_socket_with_fields(tmp_path: Path) -> None:
    """send() delivers one datagram with MESSAGE, MESSAGE_ID, PRIORITY and BOOTGUARD_* fields."""
    path = str(tmp_path / "socket")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)
        stream = io.StringIO()
        Journal(path, stream=stream).send(
            "check sshd fail: down\nreally", MessageId.CHECK_FAILED, Priority.ERR, check="sshd", entry=None
        )
        fields = _parse(server.recv(65536))
    assert fields == {
        "MESSAGE": "check sshd fail: down\nreally",
        "MESSAGE_ID": "fd47fcd6d364428986533c888cc70c5f",
        "PRIORITY": "3",
        "SYSLOG_IDENTIFIER": "bootguard",
        "BOOTGUARD_CHECK": "sshd",
    }
    assert stream.getvalue() == ""


def test_without_a_journal_the_message_goes_to_stderr(tmp_path: Path) -> None:
    """No socket (or nobody listening) → the plain message on the fallback stream, nothing lost."""
    stream = io.StringIO()
    Journal(str(tmp_path / "absent"), stream=stream).send("hello", MessageId.BLESSED)
    dead = tmp_path / "dead"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(str(dead))
    Journal(str(dead), stream=stream).send("again", MessageId.BLESSED)
    assert stream.getvalue() == "bootguard: hello\nbootguard: again\n"


def test_message_ids_are_unique_128_bit_hex() -> None:
    """Every MESSAGE_ID is 32 lowercase hex digits and distinct (journalctl MESSAGE_ID= matching)."""
    values = [m.value for m in MessageId]
    assert len(set(values)) == len(values)
    assert all(len(v) == 32 and int(v, 16) >= 0 and v == v.lower() for v in values)
