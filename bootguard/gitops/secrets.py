"""Secret detection for `bootguard commit` and for dirty-tree backups: what must never reach a ref.

`commit` scans exactly what it commits: the blobs staged in a temporary index (see
`gitops.commit`), not the work tree, so a file changed after the scan cannot slip in. Every
blob is read whole (up to `MAX_BLOB`), UTF-16 text is decoded, and tar/zip/gzip archives are
opened (bounded), so a key after 1 MiB of padding, inside a tarball or in UTF-16 is still found.

Two detectors:

- bootguard's own rules (`_RULES`, `_binary_rule`): PEM/OpenSSH/PGP/DER/PKCS#12/JKS private keys,
  PuTTY keys, age identities, WireGuard keys, Nix binary-cache signing keys, kubeconfig tokens,
  .netrc and htpasswd entries, URLs with a password, AWS/GitHub/GitLab/Slack/Google/Stripe/
  Tailscale/Vault tokens, Docker registry auth, plaintext passwords in `.nix` files, unencrypted
  SOPS files (a `.sops.yaml` `path_regex` matches, no SOPS metadata) and `.env` credentials;
- Yelp's detect-secrets (its keyword and vendor-token plugins, heuristic filters on; its
  high-entropy plugins off: Nix store hashes and SRI hashes would drown everything), when it is
  installed.

The user allows what is meant to be committed in `.bootguard-secrets-allow` at the top of the
repository: one entry per line, `#` comments; a path glob (fnmatch, `*` crosses `/`) allows
every finding in matching files, `sha256:HEX` allows one finding anywhere by the fingerprint
the refusal prints. A detect-secrets baseline (`.secrets.baseline`) is honoured too: its
`hashed_secret` values allow those secrets.

Rules without `path_regex` (catch-alls used for manual `sops FILE`) are not enforced: they would
claim every file. Python's `re` reads the RE2 patterns sops uses; a pattern it cannot compile is
reported as a warning.
"""

from __future__ import annotations

import enum
import fnmatch
import hashlib
import io
import os
import re
from collections.abc import Iterable, Iterator

import attrs

from bootguard.gitops import git

SOPS_CONFIG_NAMES = (".sops.yaml", ".sops.yml")
ALLOW_FILE = ".bootguard-secrets-allow"
BASELINE_FILE = ".secrets.baseline"
MAX_BLOB = 64 << 20  # a bigger blob is refused unscanned (allow it by path if it must be committed)
MAX_EXPANDED = 128 << 20  # bytes unpacked from archives, per blob
MAX_MEMBERS = 4096
MAX_DEPTH = 3  # archives inside archives
_LONG_LINE = 10000  # lines longer than this are left to bootguard's own rules, not detect-secrets

_SOPS_META = re.compile(rb'(?m)^sops:[ \t]*$|"sops"\s*:\s*\{|^sops_(?:version|mac)=|^\[sops\][ \t]*$')
_ENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.]*)\s*=\s*(.*?)\s*$")
_CREDENTIAL_NAME = re.compile(
    r"PASSWORD|PASSWD|PASSPHRASE|SECRET|TOKEN|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIAL|_PASS$|^PASS$",
    re.IGNORECASE,
)
_ENV_TEMPLATE_SUFFIXES = (".example", ".sample", ".template", ".dist", ".defaults")
_PATH_REGEX_LINE = re.compile(r"^\s*(?:-\s+)?path_regex\s*:\s*(.+?)\s*$")
# A password part that is a placeholder, not a password: $VAR, ${VAR}, <password>, %s, ***, xxx.
_PLACEHOLDER = re.compile(rb"^(?:[$<%*{@]|x+$|X+$|\.\.\.$|password$|PASSWORD$|pass$|secret$|changeme$)")


class SecretKind(enum.Enum):
    """What was found; the value is how the error message names it."""

    OPENSSH_PRIVATE_KEY = "OpenSSH private key"
    PEM_PRIVATE_KEY = "PEM private key"
    DER_PRIVATE_KEY = "DER private key"
    KEYSTORE = "PKCS#12/Java keystore"
    PUTTY_PRIVATE_KEY = "PuTTY private key"
    AGE_SECRET_KEY = "age secret key"
    WIREGUARD_KEY = "WireGuard private key"
    NIX_SIGNING_KEY = "Nix binary cache signing key"
    KERBEROS_KEYTAB = "Kerberos keytab"
    UNENCRYPTED_SOPS = "unencrypted SOPS file"
    ENV_CREDENTIALS = ".env credentials"
    KUBECONFIG_CREDENTIAL = "kubeconfig credential"
    NETRC_PASSWORD = ".netrc password"
    HTPASSWD_HASH = "htpasswd/shadow password hash"
    URL_PASSWORD = "URL with a password"
    AWS_ACCESS_KEY = "AWS access key id"
    AWS_SECRET_KEY = "AWS secret access key"
    GITHUB_TOKEN = "GitHub token"
    GITLAB_TOKEN = "GitLab token"
    SLACK_TOKEN = "Slack token or webhook"
    GOOGLE_API_KEY = "Google API key"
    STRIPE_KEY = "Stripe live key"
    TAILSCALE_KEY = "Tailscale auth key"
    VAULT_TOKEN = "HashiCorp Vault token"
    DOCKER_AUTH = "Docker registry auth"
    NIX_PLAINTEXT_PASSWORD = "plaintext password in a .nix file"
    DETECTED = "detect-secrets"
    TOO_LARGE = "too large to scan"


@attrs.frozen
class Finding:
    """One secret that must not be committed, why, and where."""

    path: str  # relative to the repository; `archive.tar!member` inside archives
    kind: SecretKind
    line: int | None = None
    detail: str = ""
    fingerprint: str = ""  # sha256:… of kind and secret, for the allow-list

    def describe(self) -> str:
        where = f" line {self.line}" if self.line else ""
        extra = f", {self.detail}" if self.detail else ""
        return f"{self.path} ({self.kind.value}{where}{extra})"

    @property
    def file(self) -> str:
        """The repository path (without the archive member)."""
        return self.path.split("!", 1)[0]


def _fingerprint(kind: SecretKind | str, secret: bytes) -> str:
    label = kind.value if isinstance(kind, SecretKind) else kind
    return "sha256:" + hashlib.sha256(label.encode() + b"\0" + secret).hexdigest()[:32]


@attrs.frozen
class _Rule:
    kind: SecretKind
    pattern: re.Pattern[bytes]
    group: int = 0  # the part that is the secret (fingerprint, placeholder check)
    when: re.Pattern[bytes] | None = None  # the content must also match this (kubeconfig)
    names: tuple[str, ...] = ()  # only files whose name ends with one of these
    placeholder_check: bool = False


def _r(pattern: bytes, flags: int = 0) -> re.Pattern[bytes]:
    return re.compile(pattern, flags)


_B64 = rb"[A-Za-z0-9+/]"
_RULES: tuple[_Rule, ...] = (
    _Rule(SecretKind.OPENSSH_PRIVATE_KEY, _r(rb"-----BEGIN OPENSSH PRIVATE KEY-----")),
    _Rule(
        SecretKind.PEM_PRIVATE_KEY, _r(rb"-----BEGIN (?!OPENSSH )(?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")
    ),
    _Rule(SecretKind.PUTTY_PRIVATE_KEY, _r(rb"PuTTY-User-Key-File-[0-9]+:")),
    _Rule(SecretKind.AGE_SECRET_KEY, _r(rb"AGE-SECRET-KEY-1[0-9A-Z]{58}")),
    _Rule(
        SecretKind.WIREGUARD_KEY,
        _r(rb"(?i)private_?key\s*[=:]\s*[\"']?(" + _B64 + rb"{42}[AEIMQUYcgkosw048]=)"),
        group=1,
    ),
    _Rule(SecretKind.NIX_SIGNING_KEY, _r(rb"(?m)^\s*[A-Za-z0-9._-]+-[0-9]+:(" + _B64 + rb"{86}==)\s*$"), 1),
    _Rule(
        SecretKind.KUBECONFIG_CREDENTIAL,
        _r(rb"(?m)^\s*(?:client-key-data|token|id-token|refresh-token|password)\s*:\s*[\"']?([^\s\"'#]{8,})"),
        group=1,
        when=_r(rb"(?m)^kind:\s*Config\s*$|^clusters:\s*$"),
        placeholder_check=True,
    ),
    _Rule(SecretKind.KUBECONFIG_CREDENTIAL, _r(rb"client-key-data:\s*(" + _B64 + rb"{20,}={0,2})"), 1),
    _Rule(
        SecretKind.NETRC_PASSWORD,
        _r(rb"(?:^|\s)(?:machine\s+\S+|default)(?:\s+(?:login|account)\s+\S+)*\s+password\s+(\S+)"),
        group=1,
        placeholder_check=True,
    ),
    _Rule(
        SecretKind.HTPASSWD_HASH,
        _r(rb"(?m)^[^:\s#]+:((?:\$apr1\$|\$2[abxy]\$|\{SHA\}|\{SSHA\}|\$[156]\$|\$y\$)[^\s:]{8,})(?::|\s*$)"),
        group=1,
    ),
    _Rule(
        SecretKind.URL_PASSWORD,
        _r(rb"\b[A-Za-z][A-Za-z0-9+.-]{1,20}://[^\s:/@\"'<>()\[\]]+:([^\s/@\"'<>]+)@[A-Za-z0-9.\[\]-]+"),
        group=1,
        placeholder_check=True,
    ),
    _Rule(SecretKind.AWS_ACCESS_KEY, _r(rb"\b((?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z0-9]{16})\b"), 1),
    _Rule(
        SecretKind.AWS_SECRET_KEY,
        _r(
            rb"(?i)aws_?secret_?(?:access_?)?key\s*[\"']?\s*[=:]\s*[\"']?("
            + _B64
            + rb"{40})(?![A-Za-z0-9+/])"
        ),
        group=1,
    ),
    _Rule(
        SecretKind.GITHUB_TOKEN, _r(rb"\b(gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})"), 1
    ),
    _Rule(SecretKind.GITLAB_TOKEN, _r(rb"\b(glpat-[A-Za-z0-9_-]{20,})"), 1),
    _Rule(
        SecretKind.SLACK_TOKEN,
        _r(
            rb"\b(xox[abposr]-[A-Za-z0-9-]{10,}|hooks\.slack\.com/services/T[A-Za-z0-9]+/B[A-Za-z0-9]+/[A-Za-z0-9]+)"
        ),
        group=1,
    ),
    _Rule(SecretKind.GOOGLE_API_KEY, _r(rb"\b(AIza[0-9A-Za-z_-]{35})"), 1),
    _Rule(SecretKind.STRIPE_KEY, _r(rb"\b([sr]k_live_[0-9A-Za-z]{20,})"), 1),
    _Rule(SecretKind.TAILSCALE_KEY, _r(rb"\b(tskey-[a-z]+-[A-Za-z0-9]+-[A-Za-z0-9]+)"), 1),
    _Rule(SecretKind.VAULT_TOKEN, _r(rb"\b(hv[sbr]\.[A-Za-z0-9_-]{24,})"), 1),
    _Rule(SecretKind.DOCKER_AUTH, _r(rb'"auth"\s*:\s*"(' + _B64 + rb'{12,}={0,2})"'), 1),
    _Rule(
        SecretKind.NIX_PLAINTEXT_PASSWORD,
        # `password = "…"`, `initialPassword = "…"`, `psk = "…"`, `passphrase = "…"`, `…Secret = "…"`;
        # not hashedPassword (a crypt hash), not *File/*Path keys, not paths or @substitutions@.
        _r(
            rb"(?<![A-Za-z0-9_])(?!hashed)([A-Za-z_]*(?:[pP]assword|[pP]assphrase|[pP]assword[sS]ecret|psk|"
            rb"[sS]ecret|[tT]oken|[aA]pi[kK]ey|[aA]uth[kK]ey))\s*=\s*\"([^\"$\\\n]{4,})\""
        ),
        group=2,
        names=(".nix",),
        placeholder_check=True,
    ),
)
_NIX_VALUE_NOT_SECRET = re.compile(rb"^(?:/|\./|\.\./|ext:|@|[a-z]+://)")


class Scanner:
    """Everything a scan needs besides the content: SOPS rules, the allow-list, detect-secrets."""

    def __init__(
        self,
        rules: SopsRules | None = None,
        allow_globs: Iterable[str] = (),
        allow_fingerprints: Iterable[str] = (),
        baseline_hashes: Iterable[str] = (),
        *,
        use_detect_secrets: bool = True,
    ) -> None:
        self.rules = rules or SopsRules()
        self.allow_globs = tuple(allow_globs)
        self.allow_fingerprints = frozenset(allow_fingerprints)
        self.baseline_hashes = frozenset(baseline_hashes)
        self.use_detect_secrets = use_detect_secrets and detect_secrets_available()

    @classmethod
    def from_texts(cls, sops: str | None, allow: str | None, baseline: str | None) -> Scanner:
        """From the contents of `.sops.yaml`, `.bootguard-secrets-allow` and `.secrets.baseline`."""
        globs, prints = parse_allow(allow or "")
        return cls(SopsRules.parse(sops) if sops else SopsRules(), globs, prints, _baseline(baseline))

    def allowed(self, finding: Finding, secret: bytes) -> bool:
        if finding.fingerprint in self.allow_fingerprints:
            return True
        if secret and hashlib.sha1(secret).hexdigest() in self.baseline_hashes:
            return True
        return any(fnmatch.fnmatchcase(finding.file, g) for g in self.allow_globs)

    def scan_blob(self, rel: str, data: bytes) -> list[Finding]:
        """Every finding in `data` (the content of `rel`), after the allow-list."""
        name = os.path.basename(rel)
        if name in SOPS_CONFIG_NAMES or name in (ALLOW_FILE, BASELINE_FILE):
            return []
        if any(fnmatch.fnmatchcase(rel, g) for g in self.allow_globs):
            return []
        if len(data) > MAX_BLOB:
            return [Finding(rel, SecretKind.TOO_LARGE, None, f"{len(data)} bytes; allow it by path")]
        found: list[Finding] = []
        budget = [MAX_EXPANDED]
        for label, view, text in _views(rel, data, 0, budget):
            for finding, secret in self._scan_view(label, view, text):
                if not self.allowed(finding, secret):
                    found.append(finding)
        return _unique(found)

    def _scan_view(self, rel: str, data: bytes, text: bool) -> Iterator[tuple[Finding, bytes]]:
        own = list(self._own_rules(rel, data, text))
        yield from own
        # detect-secrets adds what bootguard's rules miss (the same key twice is one problem).
        if text and not own and self.use_detect_secrets and not _SOPS_META.search(data):
            yield from _detect_secrets(rel, data)

    def _own_rules(self, rel: str, data: bytes, text: bool) -> Iterator[tuple[Finding, bytes]]:
        der = _binary_rule(rel, data)
        if der is not None:
            yield der
        for rule in _RULES:
            if rule.names and not rel.endswith(rule.names):
                continue
            if rule.when is not None and not rule.when.search(data):
                continue
            for m in rule.pattern.finditer(data):
                secret = m.group(rule.group)
                if rule.placeholder_check and _PLACEHOLDER.match(secret):
                    continue
                if rule.kind is SecretKind.NIX_PLAINTEXT_PASSWORD and _NIX_VALUE_NOT_SECRET.match(secret):
                    continue
                detail = (
                    m.group(1).decode("ascii", "replace")
                    if rule.kind is SecretKind.NIX_PLAINTEXT_PASSWORD
                    else ""
                )
                finding = Finding(
                    rel, rule.kind, _line_of(data, m.start()), detail, _fingerprint(rule.kind, secret)
                )
                yield finding, secret
                break  # one finding per rule and file is enough to refuse it
        if not text:
            return
        if self.rules.claims(rel) and not _SOPS_META.search(data):
            yield (
                Finding(
                    rel,
                    SecretKind.UNENCRYPTED_SOPS,
                    None,
                    "matches a .sops.yaml path_regex",
                    _fingerprint(SecretKind.UNENCRYPTED_SOPS, rel.encode()),
                ),
                b"",
            )
        if is_env_file(rel):
            env = _env_credentials(rel, data)
            if env is not None:
                yield env, b""


def _unique(found: list[Finding]) -> list[Finding]:
    seen: set[tuple[str, SecretKind, str]] = set()
    out = []
    for f in found:
        key = (f.path, f.kind, f.fingerprint or str(f.line))
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out


def parse_allow(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(path globs, fingerprints) of an allow-list file."""
    globs: list[str] = []
    prints: list[str] = []
    for line in text.splitlines():
        entry = line.split("#", 1)[0].strip() if not line.lstrip().startswith("sha256:") else line.strip()
        entry = entry.split()[0] if entry else ""
        if not entry:
            continue
        (prints if entry.startswith("sha256:") else globs).append(entry)
    return tuple(globs), tuple(prints)


def _baseline(text: str | None) -> tuple[str, ...]:
    """The `hashed_secret` values of a detect-secrets baseline (JSON)."""
    if not text:
        return ()
    import json

    try:
        results = json.loads(text).get("results", {})
    except (ValueError, AttributeError):
        return ()
    if not isinstance(results, dict):
        return ()
    return tuple(
        str(item.get("hashed_secret"))
        for items in results.values()
        if isinstance(items, list)
        for item in items
        if isinstance(item, dict) and item.get("hashed_secret")
    )


# --- views: the blob, its UTF-16 decoding, archive members --------------------------------------


def _views(rel: str, data: bytes, depth: int, budget: list[int]) -> Iterator[tuple[str, bytes, bool]]:
    """(label, bytes, is_text) for the blob and what it contains, within the unpacking budget."""
    decoded = _utf16(data)
    if decoded is not None:
        yield rel, decoded, True
        return
    text = b"\0" not in data[:8192]
    yield rel, data, text
    if depth >= MAX_DEPTH:
        return
    for member, content in _members(data, budget):
        yield from _views(f"{rel}!{member}", content, depth + 1, budget)


def _utf16(data: bytes) -> bytes | None:
    """UTF-8 for UTF-16 text (with a BOM, or mostly ASCII with NULs on one side); else None."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        codec = "utf-16"
    else:
        probe = data[:4096]
        if len(probe) < 4:
            return None
        even, odd = probe[0::2].count(0), probe[1::2].count(0)
        half = len(probe) // 2
        if odd > 0.6 * half and even < 0.05 * half:
            codec = "utf-16-le"
        elif even > 0.6 * half and odd < 0.05 * half:
            codec = "utf-16-be"
        else:
            return None
    return data.decode(codec, "replace").encode("utf-8")


def _members(data: bytes, budget: list[int]) -> Iterator[tuple[str, bytes]]:
    """Regular files inside a tar (any compression), zip or gzip blob, bounded by `budget`."""
    import tarfile
    import zipfile

    head = data[:512]
    if (
        head[:2] == b"\x1f\x8b"
        or head[:3] == b"BZh"
        or head[:6] == b"\xfd7zXZ\x00"
        or data[257:262] == b"ustar"
    ):
        try:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
                for count, info in enumerate(tar):
                    if count >= MAX_MEMBERS or budget[0] <= 0:
                        break
                    if not info.isfile() or info.size > min(MAX_BLOB, budget[0]):
                        continue
                    f = tar.extractfile(info)
                    if f is not None:
                        content = f.read()
                        budget[0] -= len(content)
                        yield info.name, content
            return
        except (tarfile.TarError, OSError, EOFError, ValueError):
            pass
        if head[:2] == b"\x1f\x8b":
            plain = _gunzip(data, budget)
            if plain is not None:
                yield "(gunzip)", plain
        return
    if head[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                for count, zinfo in enumerate(z.infolist()):
                    if count >= MAX_MEMBERS or budget[0] <= 0:
                        break
                    if zinfo.is_dir() or zinfo.file_size > min(MAX_BLOB, budget[0]):
                        continue
                    zcontent = z.read(zinfo)
                    budget[0] -= len(zcontent)
                    yield zinfo.filename, zcontent
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError, RuntimeError):
            return


def _gunzip(data: bytes, budget: list[int]) -> bytes | None:
    import zlib

    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(data, max(1, min(MAX_BLOB, budget[0])))
    except zlib.error:
        return None
    budget[0] -= len(out)
    return out


# --- binary keys ----------------------------------------------------------------------------------

_KEY_OIDS = (
    b"\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x01\x01",  # rsaEncryption
    b"\x06\x07\x2a\x86\x48\xce\x3d\x02\x01",  # id-ecPublicKey
    b"\x06\x03\x2b\x65\x70",  # Ed25519
    b"\x06\x03\x2b\x65\x71",  # Ed448
    b"\x06\x03\x2b\x65\x6e",  # X25519
    b"\x06\x07\x2a\x86\x48\xce\x38\x04\x01",  # DSA
)


def _der_body(data: bytes) -> bytes | None:
    """The content of a DER SEQUENCE that spans the whole blob (give or take trailing newline)."""
    if len(data) < 16 or data[0] != 0x30:
        return None
    first = data[1]
    if first < 0x80:
        length, start = first, 2
    elif first in (0x81, 0x82, 0x83):
        n = first - 0x80
        length, start = int.from_bytes(data[2 : 2 + n], "big"), 2 + n
    else:
        return None
    if not 0 <= len(data) - (start + length) <= 2:
        return None
    return data[start : start + length]


def _binary_rule(rel: str, data: bytes) -> tuple[Finding, bytes] | None:
    """DER private keys (PKCS#1, PKCS#8, SEC1), PKCS#12 and Java keystores, Kerberos keytabs."""
    kind: SecretKind | None = None
    body = _der_body(data)
    if body is not None:
        if body.startswith(b"\x02\x01\x00\x02"):  # PKCS#1 RSAPrivateKey: version 0, modulus
            kind = SecretKind.DER_PRIVATE_KEY
        elif body.startswith(b"\x02\x01\x00\x30") and any(oid in body[:40] for oid in _KEY_OIDS):
            kind = SecretKind.DER_PRIVATE_KEY  # PKCS#8 PrivateKeyInfo
        elif body.startswith(b"\x02\x01\x01\x04"):  # SEC1 ECPrivateKey: version 1, key octets
            kind = SecretKind.DER_PRIVATE_KEY
        elif body.startswith(b"\x02\x01\x03\x30"):  # PFX version 3
            kind = SecretKind.KEYSTORE
    if kind is None and data[:4] in (b"\xfe\xed\xfe\xed", b"\xce\xce\xce\xce"):
        kind = SecretKind.KEYSTORE
    if kind is None and data[:2] == b"\x05\x02" and rel.endswith(".keytab"):
        kind = SecretKind.KERBEROS_KEYTAB
    if kind is None:
        return None
    return Finding(rel, kind, None, "", _fingerprint(kind, data)), data


# --- detect-secrets ---------------------------------------------------------------------------

_DS_OFF = ("Base64HighEntropyString", "HexHighEntropyString", "IPPublicDetector")


def detect_secrets_available() -> bool:
    try:
        import detect_secrets  # noqa: F401
    except ImportError:
        return False
    return True


def _detect_secrets(rel: str, data: bytes) -> Iterator[tuple[Finding, bytes]]:
    """detect-secrets' findings for one text blob (written to a private temporary file: its
    filename-aware plugins and filters work on files)."""
    import tempfile

    from detect_secrets.core.secrets_collection import SecretsCollection
    from detect_secrets.settings import default_settings, transient_settings

    with default_settings() as settings:
        plugins = [p for p in settings.json()["plugins_used"] if p["name"] not in _DS_OFF]
    lines = data.decode("utf-8", "replace").splitlines()
    text = "\n".join(line if len(line) <= _LONG_LINE else "" for line in lines) + "\n"
    suffix = "".join(
        c for c in os.path.basename(rel.rsplit("!", maxsplit=1)[-1]) if c.isalnum() or c in "._-"
    )[-60:]
    with tempfile.TemporaryDirectory(prefix="bootguard-scan-") as tmp:
        path = os.path.join(tmp, suffix or "blob")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        with transient_settings({"plugins_used": plugins}):
            collection = SecretsCollection()
            collection.scan_file(path)
            found = [secret for _name, secret in collection]
    for secret in found:
        value = (secret.secret_value or "").encode()
        kind = f"detect-secrets {secret.type}"
        yield (
            Finding(rel, SecretKind.DETECTED, secret.line_number, secret.type, _fingerprint(kind, value)),
            value,
        )


# --- the older path-based API (work-tree files) --------------------------------------------------


def scan(repo: str, paths: Iterable[str], rules: SopsRules | None = None) -> list[Finding]:
    """Findings for work-tree files `paths` (relative to `repo`), in path order."""
    scanner = Scanner(SopsRules.from_repo(repo) if rules is None else rules)
    findings: list[Finding] = []
    for rel in sorted(set(paths)):
        data = _read(os.path.join(repo, rel))
        if data is not None:
            findings += scanner.scan_blob(rel, data)
    return findings


def _read(path: str) -> bytes | None:
    """A regular file's content; None for symlinks, directories (submodules), vanished files."""
    import errno
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a symlink: git stores the target name, not the content
            return None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
            if sum(map(len, chunks)) > MAX_BLOB:
                break
        return b"".join(chunks)
    finally:
        os.close(fd)


def scan_content(rel: str, data: bytes, rules: SopsRules) -> Finding | None:
    """The first reason `data` (the file `rel`) must not be committed, if any."""
    found = Scanner(rules).scan_blob(rel, data)
    return found[0] if found else None


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


# --- what an index would commit ------------------------------------------------------------------


def scanner_for(repo: str) -> Scanner:
    """The scanner for a repository: its `.sops.yaml`, allow-list and detect-secrets baseline."""

    def text(name: str) -> str | None:
        data = _read(os.path.join(repo, name))
        return None if data is None else data.decode("utf-8", "replace")

    sops = next((t for t in (text(n) for n in SOPS_CONFIG_NAMES) if t is not None), None)
    return Scanner.from_texts(sops, text(ALLOW_FILE), text(BASELINE_FILE))


def scan_index(
    g: git.Git, base: str | None, env: dict[str, str], scanner: Scanner | None = None
) -> tuple[list[Finding], list[git.StagedEntry]]:
    """Findings in every blob the index (`env`'s GIT_INDEX_FILE) adds or changes relative to `base`,
    and the changed entries. The blobs themselves are read, not the work tree."""
    scanner = scanner or scanner_for(g.repo)
    entries = git.staged_changes(g, base, env=env)
    files = [e for e in entries if e.is_file]
    sizes = git.blob_sizes(g, sorted({e.blob for e in files}))
    findings: list[Finding] = []
    for entry in files:
        size = sizes.get(entry.blob, 0)
        if size > MAX_BLOB:
            if not any(fnmatch.fnmatchcase(entry.path, glob) for glob in scanner.allow_globs):
                findings.append(
                    Finding(entry.path, SecretKind.TOO_LARGE, None, f"{size} bytes; allow it by path")
                )
            continue
        findings += scanner.scan_blob(entry.path, git.read_blob(g, entry.blob, size))
    return findings, entries
