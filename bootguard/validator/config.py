"""Read `checks.toml` and greenboot-style drop-in directories into a `ValidatorConfig`.

Drop-ins: every executable (or `*.sh`) file in `<dir>/required.d/` and `<dir>/wanted.d/` becomes a
`script` check, required or wanted, so a greenboot user can point `dropin_dirs` at
`/etc/greenboot/check` and move over unchanged. Unknown keys are errors: a typo in a health check
must not silently turn it into a check that always passes.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Callable

from bootguard.errors import ConfigError
from bootguard.validator import spec as s

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

DEFAULT_CONFIG = "/etc/bootguard/checks.toml"
_COMMON_CHECK_KEYS = ("name", "kind", "required", "timeout", "retries", "backoff", "grace", "after")
_SECRET_KEYS = ("token", "password", "secret", "api_key")
# Bounds of hostile or mistyped values: a boot validation longer than a day is a typo, more than
# 100 retries is a loop, deeper than 16 nested arrays/tables is not a health-check configuration
# (and Python's TOML parser would recurse until RecursionError), a checks.toml over 4 MiB neither.
MAX_SECONDS = 86400.0
MAX_RETRIES = 100
MAX_NESTING = 16
MAX_CONFIG_BYTES = 4 << 20


class _Table:
    """Typed access to one TOML table that remembers which keys were used."""

    def __init__(self, data: dict[str, object], where: str) -> None:
        self.data = data
        self.where = where
        self.used: set[str] = set()

    def raw(self, key: str, types: tuple[type, ...], what: str, default: object) -> object:
        self.used.add(key)
        if key not in self.data:
            return default
        value = self.data[key]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise ConfigError(f"{self.where}: option {key!r} must be {what}, not {value!r}")
        return value

    def text(self, key: str, default: str | None = None) -> str | None:
        value = self.raw(key, (str,), "a string", default)
        return value if value is None else str(value)

    def need_text(self, key: str) -> str:
        value = self.text(key)
        if not value:
            raise ConfigError(f"{self.where}: option {key!r} is required")
        return value

    def number(
        self, key: str, default: float, *, minimum: float = 0.0, maximum: float = MAX_SECONDS
    ) -> float:
        """A finite number in [minimum, maximum]: nan, inf and negatives are refused by name."""
        value = float(self.raw(key, (int, float), "a number", default))  # type: ignore[arg-type]
        if not math.isfinite(value) or not minimum <= value <= maximum:
            bounds = f"from {minimum:g} to {maximum:g}"
            raise ConfigError(f"{self.where}: option {key!r} must be a number {bounds}, not {value!r}")
        return value

    def optional_number(self, key: str, *, maximum: float = math.inf) -> float | None:
        if key not in self.data:
            self.used.add(key)
            return None
        return self.number(key, 0.0, maximum=maximum if math.isfinite(maximum) else 1e300)

    def integer(self, key: str, default: int, *, minimum: int = 0, maximum: int = MAX_RETRIES) -> int:
        value = self.raw(key, (int,), "an integer", default)
        assert isinstance(value, int)
        if not minimum <= value <= maximum:
            raise ConfigError(
                f"{self.where}: option {key!r} must be an integer from {minimum} to {maximum}, not {value}"
            )
        return value

    def flag(self, key: str, default: bool) -> bool:
        return bool(self.raw(key, (bool,), "true or false", default))

    def text_list(self, key: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        value = self.raw(key, (list,), "a list of strings", list(default))
        assert isinstance(value, list)
        if not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{self.where}: option {key!r} must be a list of strings")
        return tuple(value)

    def reject_unknown(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise ConfigError(f"{self.where}: unknown option {unknown[0]!r}")


def _command(t: _Table) -> s.Target:
    argv = t.text_list("command")
    if not argv:
        raise ConfigError(f"{t.where}: option 'command' must be a non-empty argv list")
    return s.CommandTarget(argv)


def _tcp(t: _Table) -> s.Target:
    port = t.integer("port", 0, maximum=1 << 32)
    if not 0 < port < 65536:
        raise ConfigError(f"{t.where}: option 'port' must be between 1 and 65535")
    return s.TcpTarget(t.text("host", "localhost") or "localhost", port)


def _http(t: _Table) -> s.Target:
    raw = t.raw("expect", (int, list), "a status code or a list of them", 200)
    codes: list[object] = raw if isinstance(raw, list) else [raw]
    expect = tuple(c for c in codes if isinstance(c, int) and not isinstance(c, bool) and 100 <= c <= 599)
    if len(expect) != len(codes):
        raise ConfigError(f"{t.where}: option 'expect' must hold HTTP status codes")
    return s.HttpTarget(t.need_text("url"), expect, t.flag("insecure", False))


def _disk(t: _Table) -> s.Target:
    disk = s.DiskTarget(
        t.text("path", "/") or "/",
        t.optional_number("min_free_mb"),
        t.optional_number("min_free_percent", maximum=100.0),
    )
    if disk.min_free_mb is None and disk.min_free_percent is None:
        raise ConfigError(f"{t.where}: a disk check needs 'min_free_mb' or 'min_free_percent'")
    return disk


# The kind-specific part of a `[[check]]` table, one small parser per kind.
_TARGETS: dict[s.CheckKind, Callable[[_Table], s.Target]] = {
    s.CheckKind.COMMAND: _command,
    s.CheckKind.TCP: _tcp,
    s.CheckKind.HTTP: _http,
    # `name` is the check's own name; without `host` that name is what gets resolved.
    s.CheckKind.DNS: lambda t: s.DnsTarget(t.text("host") or t.need_text("name")),
    s.CheckKind.PING: lambda t: s.PingTarget(t.need_text("host")),
    s.CheckKind.UNIT: lambda t: s.UnitTarget(t.need_text("unit")),
    s.CheckKind.NO_FAILED_UNITS: lambda t: s.NoFailedUnitsTarget(t.text_list("ignore")),
    s.CheckKind.PATH: lambda t: s.PathTarget(t.need_text("path")),
    s.CheckKind.DISK: _disk,
    s.CheckKind.SCRIPT: lambda t: s.ScriptTarget(t.need_text("path")),
}


def _check(data: dict[str, object], index: int) -> s.CheckSpec:
    name = data.get("name")
    where = f"check {name!r}" if isinstance(name, str) else f"check #{index + 1}"
    t = _Table(data, where)
    name = t.need_text("name")
    kind_text = t.need_text("kind")
    try:
        kind = s.CheckKind(kind_text)
    except ValueError:
        kinds = ", ".join(k.value for k in s.CheckKind)
        raise ConfigError(f"{where}: unknown kind {kind_text!r}", hint=f"one of: {kinds}") from None
    spec = s.CheckSpec(
        name=name,
        kind=kind,
        target=_TARGETS[kind](t),
        required=t.flag("required", True),
        timeout=t.number("timeout", 10.0, minimum=0.001),
        retries=t.integer("retries", 0, maximum=MAX_RETRIES),
        backoff=t.number("backoff", 1.0),
        grace=t.number("grace", 0.0),
        after=t.text_list("after"),
    )
    t.reject_unknown()
    return spec


def _notifier(data: dict[str, object], index: int, taken: set[str]) -> s.NotifierSpec:
    t = _Table(data, f"notify #{index + 1}")
    kind_text = t.need_text("kind")
    try:
        kind = s.NotifierKind(kind_text)
    except ValueError:
        kinds = ", ".join(k.value for k in s.NotifierKind)
        raise ConfigError(f"{t.where}: unknown kind {kind_text!r}", hint=f"one of: {kinds}") from None
    for key in _SECRET_KEYS:
        if key in data:
            raise ConfigError(
                f"{t.where}: option {key!r} would put a secret in the configuration",
                hint=f"store it in a file (e.g. a systemd credential) and use {key}_file",
            )
    name = t.text("name") or (kind.value if kind.value not in taken else f"{kind.value}-{index + 1}")
    events = t.text_list("events", ("failure", "rollback", "recovery"))
    timeout = t.number("timeout", 10.0, minimum=0.001)
    options = tuple(sorted((k, _hashable(v)) for k, v in data.items() if k not in t.used))
    from bootguard.validator.notify import required_options

    for key in required_options(kind):
        if key not in dict(options):
            raise ConfigError(f"{t.where}: a {kind.value} notifier needs option {key!r}")
    return s.NotifierSpec(name=name, kind=kind, options=options, events=events, timeout=timeout)


def _hashable(value: object) -> object:
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    return value


def _scripts(directory: str, *, required: bool, timeout: float, sequential: bool) -> list[s.CheckSpec]:
    """The checks of one required.d/ or wanted.d/ directory, in name order like greenboot."""
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return []
    except NotADirectoryError:
        raise ConfigError(f"{directory} is not a directory") from None
    specs: list[s.CheckSpec] = []
    for name in names:
        path = os.path.join(directory, name)
        if name.startswith(".") or name.endswith("~") or not os.path.isfile(path):
            continue
        if os.access(path, os.X_OK):
            target = s.ScriptTarget(path)
        elif name.endswith(".sh"):
            target = s.ScriptTarget(path, interpreter="/bin/bash")
        else:
            continue
        label = f"{os.path.basename(directory)}/{name}"
        after = (specs[-1].name,) if sequential and specs else ()
        specs.append(s.CheckSpec(label, s.CheckKind.SCRIPT, target, required, timeout, after=after))
    return specs


def _check_graph(checks: Iterable[s.CheckSpec]) -> None:
    """Names unique, dependencies known, no cycles."""
    by_name: dict[str, s.CheckSpec] = {}
    for c in checks:
        if c.name in by_name:
            raise ConfigError(f"check {c.name!r} is defined twice")
        by_name[c.name] = c
    for c in by_name.values():
        for dep in c.after:
            if dep not in by_name:
                raise ConfigError(f"check {c.name!r}: 'after' names an unknown check {dep!r}")
    state: dict[str, int] = {}

    def visit(name: str, trail: tuple[str, ...]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = " → ".join((*trail[trail.index(name) :], name))
            raise ConfigError(f"checks depend on each other in a cycle: {cycle}")
        state[name] = 1
        for dep in by_name[name].after:
            visit(dep, (*trail, name))
        state[name] = 2

    for name in by_name:
        visit(name, ())


def parse(
    data: dict[str, object], *, source: str | None = None, base_dir: str = "/etc/bootguard"
) -> s.ValidatorConfig:
    """Build the configuration from parsed TOML (and the drop-in directories it names)."""
    unknown = sorted(set(data) - {"validator", "check", "notify"})
    if unknown:
        raise ConfigError(f"{source or 'configuration'}: unknown table {unknown[0]!r}")
    raw_v = data.get("validator", {})
    if not isinstance(raw_v, dict):
        raise ConfigError(f"{source or 'configuration'}: [validator] must be a table")
    v = _Table(raw_v, "[validator]")
    deadline = v.number("deadline", 300.0, minimum=0.001)
    policy_text = v.text("on_failure", "reboot") or "reboot"
    policy = s.FailurePolicy.parse(policy_text)
    if policy is None:
        raise ConfigError(
            f"[validator]: option 'on_failure' is {policy_text!r}",
            hint="use reboot, reboot-after:SECONDS or report",
        )
    metrics = v.text("metrics_file")
    dirs = v.text_list("dropin_dirs", (os.path.join(base_dir, "check"),))
    script_timeout = v.number("script_timeout", 60.0, minimum=0.001)
    sequential = v.flag("sequential_scripts", False)
    v.reject_unknown()

    checks = [_check(_as_table(t, "check", i), i) for i, t in enumerate(_as_list(data, "check"))]
    for d in dirs:
        for sub, required in (("required.d", True), ("wanted.d", False)):
            checks += _scripts(
                os.path.join(d, sub), required=required, timeout=script_timeout, sequential=sequential
            )
    _check_graph(checks)
    taken: set[str] = set()
    notifiers = []
    for i, t in enumerate(_as_list(data, "notify")):
        n = _notifier(_as_table(t, "notify", i), i, taken)
        if n.name in taken:
            raise ConfigError(f"notifier {n.name!r} is defined twice")
        taken.add(n.name)
        notifiers.append(n)
    return s.ValidatorConfig(tuple(checks), tuple(notifiers), deadline, policy, metrics, source)


def _as_list(data: dict[str, object], key: str) -> list[object]:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise ConfigError(f"[[{key}]] must be an array of tables (write [[{key}]], not [{key}])")
    return value


def _as_table(value: object, key: str, index: int) -> dict[str, object]:
    if not isinstance(value, dict):
        raise ConfigError(f"{key} #{index + 1} must be a table")
    return value


def load(path: str | None = None, *, reader: Callable[[str], bytes] | None = None) -> s.ValidatorConfig:
    """Load `path` (default /etc/bootguard/checks.toml). A missing default file means "no checks
    declared" (drop-ins still apply); a missing file that was named explicitly is an error."""
    explicit = path is not None
    path = path or DEFAULT_CONFIG
    base_dir = os.path.dirname(os.path.abspath(path))
    try:
        raw = reader(path) if reader else _read(path)
    except FileNotFoundError:
        if explicit:
            raise ConfigError(f"{path}: no such configuration file") from None
        return parse({}, source=None, base_dir=base_dir)
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: {len(raw)} bytes is too large for a checks file (at most 4 MiB)")
    try:
        text = raw.decode("utf-8")
        depth = nesting_depth(text)
        if depth > MAX_NESTING:
            raise ConfigError(
                f"{path}: arrays or tables nested {depth} deep; at most {MAX_NESTING} levels are read"
            )
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to read") from None
    return parse(data, source=path, base_dir=base_dir)


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read(MAX_CONFIG_BYTES + 1)


def nesting_depth(text: str) -> int:
    """The deepest nesting of `[`/`{` outside strings and comments (a lexer's view, not a parser's)."""
    depth = deepest = 0
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        if c in "\"'":
            triple = text.startswith(c * 3, i)
            quote = c * 3 if triple else c
            j = i + len(quote)
            while j < n:
                if c == '"' and text[j] == "\\":
                    j += 2
                    continue
                if text.startswith(quote, j) or (not triple and text[j] == "\n"):
                    break
                j += 1
            i = j + len(quote)
            continue
        if c in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "]}":
            depth = max(0, depth - 1)
        i += 1
    return deepest
