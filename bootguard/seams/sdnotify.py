"""sd_notify, the one seam: READY, STATUS, WATCHDOG, STOPPING to the service manager.

Over the PyPI `sdnotify` package, which connects the socket (abstract `@` names included). Its own
`notify()` is not used: sdnotify 0.3.2 encodes Latin-1 — systemd reads UTF-8, and a character
outside Latin-1 loses the whole message — and swallows every error. Here messages go out as UTF-8
over the socket it connected, and a failed send is reported once through `log`, never lost
silently. Without $NOTIFY_SOCKET (not started by systemd, or not Type=notify) the sender does
nothing. Userland only (the validator and the keepalive daemon); `sdnotify` is imported on use.
"""

from __future__ import annotations

from bootguard.errors import EnvironmentProblem

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any


class NullNotifySocket:
    """Not started by systemd: nothing to tell."""

    enabled = False

    def send(self, message: str) -> None:
        del message


class NotifySocket:
    """Messages to $NOTIFY_SOCKET as UTF-8 datagrams."""

    enabled = True

    def __init__(self, sock: Any, log: Callable[[str], None]) -> None:
        self._sock = sock
        self._log = log
        self._warned = False

    def send(self, message: str) -> None:
        try:
            self._sock.sendall(message.encode("utf-8", "replace"))
        except OSError as exc:
            if not self._warned:  # once: a daemon pinging every second must not flood its log
                self._log(f"sd_notify failed ({exc.strerror or exc}); systemd may not see READY/WATCHDOG")
                self._warned = True


def connect(env: Mapping[str, str], log: Callable[[str], None]) -> NotifySocket | NullNotifySocket:
    """A sender when systemd gave us $NOTIFY_SOCKET (in `env`), else a no-op."""
    address = env.get("NOTIFY_SOCKET")
    if not address:
        return NullNotifySocket()
    try:
        import sdnotify
    except ImportError as exc:
        raise EnvironmentProblem(
            "$NOTIFY_SOCKET is set but the sdnotify package is missing",
            hint="pip install sdnotify (or run the unit without Type=notify)",
        ) from exc
    import os

    saved = os.environ.get("NOTIFY_SOCKET")
    os.environ["NOTIFY_SOCKET"] = address  # sdnotify reads the process environment
    try:
        notifier = sdnotify.SystemdNotifier(debug=True)  # debug: raise instead of hiding the error
    except OSError as exc:
        why = exc.strerror or str(exc)
        raise EnvironmentProblem(f"cannot connect to $NOTIFY_SOCKET {address}: {why}") from exc
    finally:
        if saved is None:
            del os.environ["NOTIFY_SOCKET"]
        else:
            os.environ["NOTIFY_SOCKET"] = saved
    return NotifySocket(notifier.socket, log)
