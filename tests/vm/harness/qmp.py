"""A minimal QMP client: handshake, commands, and every asynchronous event recorded with its time.

QEMU announces a watchdog expiry only on QMP (`WATCHDOG {"action": "reset"}` followed by `RESET`); the
serial line stays silent. A reader thread keeps the socket drained for the whole life of the VM so that
those events are timestamped when they happen, not when somebody asks.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class QmpEvent:
    """One event: name, data, and seconds since the VM was started (host clock)."""

    name: str
    data: dict[str, Any]
    at: float

    def to_json(self) -> dict[str, Any]:
        return {"event": self.name, "data": self.data, "at": round(self.at, 3)}


@dataclass
class QmpClient:
    """Connects to QEMU's `-qmp unix:PATH,server=on,wait=off` socket."""

    path: Path
    started: float
    events: list[QmpEvent] = field(default_factory=list)
    _sock: socket.socket | None = None
    _reader: threading.Thread | None = None
    _replies: list[dict[str, Any]] = field(default_factory=list)
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _closed: bool = False

    def connect(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(str(self.path))
                break
            except (FileNotFoundError, ConnectionRefusedError):
                sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self._sock = sock
        self._reader = threading.Thread(target=self._read_loop, name="qmp-reader", daemon=True)
        self._reader.start()
        self._wait_reply(lambda m: "QMP" in m, timeout)  # the greeting
        self.command("qmp_capabilities")

    def _read_loop(self) -> None:
        assert self._sock is not None
        buf = b""
        while True:
            try:
                chunk = self._sock.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if line.strip():
                    self._dispatch(json.loads(line))
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _dispatch(self, message: dict[str, Any]) -> None:
        if "event" in message:
            event = QmpEvent(
                str(message["event"]), dict(message.get("data", {})), time.monotonic() - self.started
            )
            with self._cond:
                self.events.append(event)
                self._cond.notify_all()
            return
        with self._cond:
            self._replies.append(message)
            self._cond.notify_all()

    def _wait_reply(self, match: Any, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for i, reply in enumerate(self._replies):
                    if match(reply):
                        return self._replies.pop(i)
                left = deadline - time.monotonic()
                if self._closed or left <= 0:
                    raise TimeoutError(f"QMP {self.path}: no reply")
                self._cond.wait(left)

    def command(self, name: str, timeout: float = 10.0, **arguments: Any) -> dict[str, Any]:
        """Send one command and return its reply (`return` or `error`)."""
        assert self._sock is not None
        msg: dict[str, Any] = {"execute": name}
        if arguments:
            msg["arguments"] = arguments
        self._sock.sendall(json.dumps(msg).encode() + b"\n")
        return self._wait_reply(lambda m: "return" in m or "error" in m, timeout)

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # QEMU already gone: the socket is dead either way
            self._sock.close()
        if self._reader is not None:
            self._reader.join(timeout=5)

    def note(self, name: str, data: dict[str, Any]) -> None:
        """Record an event of the harness's own (e.g. HARNESS-KICK) among QEMU's, in the same clock."""
        with self._cond:
            self.events.append(QmpEvent(name, data, time.monotonic() - self.started))

    def snapshot(self) -> list[QmpEvent]:
        with self._cond:
            return list(self.events)
