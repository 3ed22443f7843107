"""Secret detection of `bootguard commit`, on real files in tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bootguard.gitops import secrets
from bootguard.gitops.secrets import SecretKind, SopsRules

AGE_KEY = "AGE-SECRET-KEY-1" + "QYZ" * 19 + "Q"
SOPS_YAML = """\
creation_rules:
  - path_regex: secrets/.*\\.yaml$
    age: age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq
  - path_regex: "hosts/[^/]+/secrets\\\\.json$"
  - path_regex: 'vault/.*'   # single-quoted
  - age: age1fallbackrulewithoutpathregex
"""
ENCRYPTED_YAML = """\
password: ENC[AES256_GCM,data:abc,iv:def,tag:ghi,type:str]
sops:
    mac: ENC[AES256_GCM,data:xyz]
    version: 3.8.1
"""


def write(root: Path, rel: str, text: str) -> str:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return rel


def kinds(root: Path, *rels: str) -> dict[str, SecretKind]:
    return {f.path: f.kind for f in secrets.scan(str(root), rels)}


@pytest.mark.parametrize(
    ("text", "kind", "line"),
    [
        ("-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n", SecretKind.OPENSSH_PRIVATE_KEY, 1),
        ("x\n-----BEGIN RSA PRIVATE KEY-----\nMIIE\n", SecretKind.PEM_PRIVATE_KEY, 2),
        ("-----BEGIN EC PRIVATE KEY-----\n", SecretKind.PEM_PRIVATE_KEY, 1),
        ("-----BEGIN PRIVATE KEY-----\n", SecretKind.PEM_PRIVATE_KEY, 1),
        ("-----BEGIN ENCRYPTED PRIVATE KEY-----\n", SecretKind.PEM_PRIVATE_KEY, 1),
        ("-----BEGIN PGP PRIVATE KEY BLOCK-----\n", SecretKind.PEM_PRIVATE_KEY, 1),
        (f"# created: 2024\n# public key: age1xyz\n{AGE_KEY}\n", SecretKind.AGE_SECRET_KEY, 3),
    ],
)
def test_key_material_is_found(tmp_path: Path, text: str, kind: SecretKind, line: int) -> None:
    """Private keys and age identities are found in any file, with their line."""
    rel = write(tmp_path, "some/file.txt", text)
    (finding,) = secrets.scan(str(tmp_path), [rel])
    assert (finding.kind, finding.line) == (kind, line)


def test_public_material_is_not_a_secret(tmp_path: Path) -> None:
    """Public keys, certificates and age recipients pass."""
    rels = [
        write(tmp_path, "a.pub", "ssh-ed25519 AAAAC3Nza host\n"),
        write(tmp_path, "cert.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"),
        write(tmp_path, "pub.pem", "-----BEGIN PUBLIC KEY-----\n"),
        write(tmp_path, "recipients.txt", "age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq\n"),
        write(tmp_path, "configuration.nix", "{ services.openssh.enable = true; }\n"),
    ]
    assert secrets.scan(str(tmp_path), rels) == []


def test_sops_rules_are_read_from_the_repository(tmp_path: Path) -> None:
    """path_regex values in plain, double- and single-quoted form; rules without one are ignored."""
    write(tmp_path, ".sops.yaml", SOPS_YAML)
    rules = SopsRules.from_repo(str(tmp_path))
    assert [p.pattern for p in rules.patterns] == [
        r"secrets/.*\.yaml$",
        r"hosts/[^/]+/secrets\.json$",
        "vault/.*",
    ]
    assert rules.claims("secrets/db.yaml") and rules.claims("hosts/a/secrets.json")
    assert not rules.claims("configuration.nix")


def test_unencrypted_sops_file_is_found(tmp_path: Path) -> None:
    """A file a creation rule claims is refused without SOPS metadata and accepted with it."""
    write(tmp_path, ".sops.yaml", SOPS_YAML)
    plain = write(tmp_path, "secrets/db.yaml", "password: hunter2\n")
    done = write(tmp_path, "secrets/ok.yaml", ENCRYPTED_YAML)
    json_plain = write(tmp_path, "hosts/a/secrets.json", '{"token": "abc"}\n')
    json_done = write(tmp_path, "hosts/b/secrets.json", '{"token": "ENC[x]", "sops": {"mac": "y"}}\n')
    env_done = write(tmp_path, "vault/app.env", "API_TOKEN=ENC[AES256_GCM,data:x]\nsops_version=3.8.1\n")
    ini_done = write(tmp_path, "vault/app.ini", "[app]\nkey = ENC[x]\n\n[sops]\nversion = 3.8.1\n")
    found = kinds(tmp_path, plain, done, json_plain, json_done, env_done, ini_done, ".sops.yaml")
    assert found == {plain: SecretKind.UNENCRYPTED_SOPS, json_plain: SecretKind.UNENCRYPTED_SOPS}


def test_env_credentials(tmp_path: Path) -> None:
    """.env files assigning credentials are refused; templates, empty values and references pass."""
    bad = write(tmp_path, ".env", "# comment\nDEBUG=1\nexport DB_PASSWORD='s3cret'\n")
    bad2 = write(tmp_path, "app/prod.env", "GITHUB_TOKEN=ghp_abc\n")
    example = write(tmp_path, ".env.example", "DB_PASSWORD=changeme\n")
    empty = write(tmp_path, ".env.local", "API_KEY=\nSECRET=$FROM_ENVIRONMENT\n")
    harmless = write(tmp_path, "other.env", "PORT=8080\n")
    not_env = write(tmp_path, "notes.txt", "PASSWORD=not-a-dotenv-file\n")
    findings = {
        f.path: f for f in secrets.scan(str(tmp_path), [bad, bad2, example, empty, harmless, not_env])
    }
    # A plaintext PASSWORD= outside a .env file is detect-secrets' keyword finding.
    assert set(findings) == {bad, bad2, not_env}
    assert findings[not_env].kind is SecretKind.DETECTED
    assert (
        findings[bad].line == 3
        and findings[bad].describe() == ".env (.env credentials line 3, assigns DB_PASSWORD)"
    )


def test_binary_files_are_read_symlinks_and_missing_files_are_skipped(tmp_path: Path) -> None:
    """A key in binary content is found; symlinks (git stores the target name) and vanished files
    are not read."""
    binary = tmp_path / "blob.bin"
    binary.write_bytes(b"\0\1-----BEGIN OPENSSH PRIVATE KEY-----")
    key = write(tmp_path, "outside/key", "-----BEGIN OPENSSH PRIVATE KEY-----\n")
    (tmp_path / "link").symlink_to(tmp_path / key)
    assert kinds(tmp_path, "blob.bin", "link", "gone.txt") == {"blob.bin": SecretKind.OPENSSH_PRIVATE_KEY}


def test_invalid_path_regex_is_a_warning(tmp_path: Path) -> None:
    """A pattern Python cannot compile is reported, not fatal, and the other rules still apply."""
    rules = SopsRules.parse("creation_rules:\n  - path_regex: '(unclosed'\n  - path_regex: ok/.*\n")
    assert [p.pattern for p in rules.patterns] == ["ok/.*"]
    assert len(rules.warnings) == 1 and "line 2" in rules.warnings[0]


@given(st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\0"), max_size=200))
def test_scan_content_never_crashes_and_is_consistent(text: str) -> None:
    """Arbitrary text is classified without errors, and only texts with a marker are findings."""
    finding = secrets.scan_content("file.txt", text.encode(), SopsRules())
    assert finding is None or finding.path == "file.txt"
