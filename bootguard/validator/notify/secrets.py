"""Secrets come from files only (systemd credentials: `LoadCredential=` puts them in
$CREDENTIALS_DIRECTORY), never from the command line or the configuration, and never reach logs.

A relative `*_file` name is looked up in $CREDENTIALS_DIRECTORY; an absolute one is read as is.
`Secret` hides its value from repr/str, so an accidental log line shows `<secret>`.
"""

from __future__ import annotations

import os

from bootguard.errors import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping


class Secret:
    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def redact(self, text: str) -> str:
        return text.replace(self._value, "<secret>") if self._value else text

    def __repr__(self) -> str:
        return "<secret>"

    __str__ = __repr__


def resolve(name: str, env: Mapping[str, str] | None = None) -> str:
    """The path a `*_file` option names."""
    if os.path.isabs(name):
        return name
    env = os.environ if env is None else env
    base = env.get("CREDENTIALS_DIRECTORY")
    if not base:
        raise ConfigError(
            f"secret file {name!r} is relative but $CREDENTIALS_DIRECTORY is not set",
            hint="give an absolute path, or pass it with LoadCredential= in the service unit",
        )
    return os.path.join(base, name)


def read_secret(name: str, env: Mapping[str, str] | None = None) -> Secret:
    """Read a secret file; its trailing newline is not part of the secret."""
    path = resolve(name, env)
    try:
        with open(path, encoding="utf-8") as f:
            value = f.read().rstrip("\r\n")
    except FileNotFoundError:
        raise ConfigError(f"secret file {path} does not exist") from None
    except PermissionError:
        raise ConfigError(f"secret file {path} is not readable") from None
    if not value:
        raise ConfigError(f"secret file {path} is empty")
    return Secret(value)
