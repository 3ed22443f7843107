"""Secret detection for `bootguard commit`: what must never reach the shared configuration repository.

Checked on every file `git add -A` would stage (changed, new and untracked, not deleted), in the
work tree, before anything is staged:

- PEM private keys (`-----BEGIN … PRIVATE KEY-----`, PGP private key blocks),
- OpenSSH private keys (`-----BEGIN OPENSSH PRIVATE KEY-----`),
- age identities (`AGE-SECRET-KEY-1…`),
- unencrypted SOPS files: a file matching a `path_regex` of `.sops.yaml` `creation_rules` that
  carries no SOPS metadata (`sops:` in YAML, `"sops":` in JSON, `sops_version=` in dotenv,
  `[sops]` in INI) — someone created it with an editor instead of `sops`,
- `.env`-style files (`.env`, `.env.*`, `*.env`, not `*.example`/`*.sample`/`*.template`) that assign
  a non-empty value to a credential-like name (PASSWORD, SECRET, TOKEN, API_KEY, …).

Rules without `path_regex` (catch-alls used for manual `sops FILE`) are not enforced: they would
claim every file. Binary files (a NUL byte in the first 8 KiB) and symlinks are not read. Python's
`re` reads the RE2 patterns sops uses; a pattern it cannot compile is reported as a warning.
"""

from __future__ import annotations

import enum
import os
import re
from collections.abc import Iterable

import attrs

SOPS_CONFIG_NAMES = (".sops.yaml", ".sops.yml")
MAX_READ = 1 << 20
_BINARY_PROBE = 8192

_OPENSSH = re.compile(rb"-----BEGIN OPENSSH PRIVATE KEY-----")
_PEM = re.compile(rb"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")
_AGE = re.compile(rb"AGE-SECRET-KEY-1[0-9A-Z]{58}")
_SOPS_META = re.compile(rb'(?m)^sops:[ \t]*$|"sops"\s*:\s*\{|^sops_(?:version|mac)=|^\[sops\][ \t]*$')
_ENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.]*)\s*=\s*(.*?)\s*$")
_CREDENTIAL_NAME = re.compile(
    r"PASSWORD|PASSWD|PASSPHRASE|SECRET|TOKEN|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIAL|_PASS$|^PASS$",
    re.IGNORECASE,
)
_ENV_TEMPLATE_SUFFIXES = (".example", ".sample", ".template", ".dist", ".defaults")
_PATH_REGEX_LINE = re.compile(r"^\s*(?:-\s+)?path_regex\s*:\s*(.+?)\s*$")


class SecretKind(enum.Enum):
    """What was found; the value is how the error message names it."""

    OPENSSH_PRIVATE_KEY = "OpenSSH private key"
    PEM_PRIVATE_KEY = "PEM private key"
    AGE_SECRET_KEY = "age secret key"
    UNENCRYPTED_SOPS = "unencrypted SOPS file"
    ENV_CREDENTIALS = ".env credentials"


@attrs.frozen
class Finding:
    """One file that must not be committed, why, and where in it."""

    path: str  # relative to the repository
    kind: SecretKind
    line: int | None = None
    detail: str = ""

    def describe(self) -> str:
        where = f" line {self.line}" if self.line else ""
        extra = f", {self.detail}" if self.detail else ""
        return f"{self.path} ({self.kind.value}{where}{extra})"


@attrs.frozen
class SopsRules:
    """The `path_regex` patterns of a repository's `.sops.yaml` creation rules."""

    patterns: tuple[re.Pattern[str], ...] = ()
    warnings: tuple[str, ...] = ()

    @classmethod
    def from_repo(cls, repo: str) -> SopsRules:
        for name in SOPS_CONFIG_NAMES:
            path = os.path.join(repo, name)
            try:
                with open(path, encoding="utf-8", errors="replace") as f:
                    return cls.parse(f.read(), name)
            except FileNotFoundError:
                continue
        return cls()

    @classmethod
    def parse(cls, text: str, source: str = ".sops.yaml") -> SopsRules:
        """Read `path_regex:` values line by line (the file's other keys do not matter here)."""
        patterns: list[re.Pattern[str]] = []
        warnings: list[str] = []
        for number, line in enumerate(text.splitlines(), 1):
            m = _PATH_REGEX_LINE.match(line)
            if not m:
                continue
            raw = _yaml_scalar(m.group(1))
            try:
                patterns.append(re.compile(raw))
            except re.error as exc:
                warnings.append(f"{source} line {number}: path_regex {raw!r} not checked ({exc})")
        return cls(tuple(patterns), tuple(warnings))

    def claims(self, path: str) -> bool:
        """sops matches `path_regex` anywhere in the path (Go regexp MatchString): so do we."""
        return any(p.search(path) for p in self.patterns)


def _yaml_scalar(raw: str) -> str:
    """The value of a one-line YAML scalar: quoted forms unescaped, plain forms without a comment."""
    if raw.startswith('"'):
        end = raw.rfind('"')
        body = raw[1:end] if end > 0 else raw[1:]
        import json

        try:
            value = json.loads(f'"{body}"')
        except ValueError:
            return body
        return str(value)
    if raw.startswith("'"):
        end = raw.rfind("'")
        return (raw[1:end] if end > 0 else raw[1:]).replace("''", "'")
    return re.split(r"\s+#", raw, maxsplit=1)[0]


def scan(repo: str, paths: Iterable[str], rules: SopsRules | None = None) -> list[Finding]:
    """Findings for `paths` (relative to `repo`), in path order."""
    rules = SopsRules.from_repo(repo) if rules is None else rules
    findings: list[Finding] = []
    for rel in sorted(set(paths)):
        if os.path.basename(rel) in SOPS_CONFIG_NAMES:
            continue
        data = _read(os.path.join(repo, rel))
        if data is None:
            continue
        found = scan_content(rel, data, rules)
        if found is not None:
            findings.append(found)
    return findings


def _read(path: str) -> bytes | None:
    """The start of a regular file; None for symlinks, directories (submodules), vanished files."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    except OSError as exc:
        import errno

        if exc.errno == errno.ELOOP:  # a symlink: git stores the target name, not the content
            return None
        raise
    try:
        import stat

        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return os.read(fd, MAX_READ)
    finally:
        os.close(fd)


def scan_content(rel: str, data: bytes, rules: SopsRules) -> Finding | None:
    """The first reason `data` (the file `rel`) must not be committed, if any."""
    if b"\0" in data[:_BINARY_PROBE]:
        return None
    for pattern, kind in ((_OPENSSH, SecretKind.OPENSSH_PRIVATE_KEY), (_PEM, SecretKind.PEM_PRIVATE_KEY)):
        m = pattern.search(data)
        if m:
            return Finding(rel, kind, _line_of(data, m.start()))
    m = _AGE.search(data)
    if m:
        return Finding(rel, SecretKind.AGE_SECRET_KEY, _line_of(data, m.start()))
    if rules.claims(rel) and not _SOPS_META.search(data):
        return Finding(rel, SecretKind.UNENCRYPTED_SOPS, None, "matches a .sops.yaml path_regex")
    if is_env_file(rel):
        return _env_credentials(rel, data)
    return None


def is_env_file(rel: str) -> bool:
    name = os.path.basename(rel)
    if name.endswith(_ENV_TEMPLATE_SUFFIXES):
        return False
    return name == ".env" or name.startswith(".env.") or name.endswith(".env")


def _env_credentials(rel: str, data: bytes) -> Finding | None:
    text = data.decode("utf-8", "replace")
    if _SOPS_META.search(data):
        return None  # a SOPS-encrypted dotenv file
    for number, line in enumerate(text.splitlines(), 1):
        m = _ENV_LINE.match(line)
        if not m or line.lstrip().startswith("#"):
            continue
        name, value = m.group(1), m.group(2).strip("'\"")
        if value and not value.startswith(("$", "ENC[")) and _CREDENTIAL_NAME.search(name):
            return Finding(rel, SecretKind.ENV_CREDENTIALS, number, f"assigns {name}")
    return None


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1
