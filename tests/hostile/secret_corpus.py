# ruff: noqa: E501  (fixture data: real-looking lines are long)
"""A planted corpus of secret kinds (all fake, generated), and ordinary NixOS files that hold none.

Used by tests/hostile/test_hostile_git_secrets.py to measure the catch rate of `bootguard commit`'s
scanner, plain and hidden (after 1 MiB of padding, inside a tar, UTF-16 encoded).
"""

from __future__ import annotations

import base64
import io
import random
import string
import tarfile

_rng = random.Random(15)


def _pick(alphabet: str, n: int) -> str:
    return "".join(_rng.choice(alphabet) for _ in range(n))


_AN = string.ascii_letters + string.digits
_UP = string.ascii_uppercase + string.digits
_B64 = _AN + "+/"
_HEX = "0123456789abcdef"


def _b64(n: int) -> str:
    return base64.b64encode(_rng.randbytes(n)).decode()


def _pem(label: str) -> bytes:
    body = "\n".join(_b64(48) for _ in range(6))
    return f"-----BEGIN {label}-----\n{body}\n-----END {label}-----\n".encode()


def _der_pkcs1() -> bytes:
    modulus = b"\x02\x82\x01\x01\x00" + _rng.randbytes(256)
    rest = (
        b"\x02\x03\x01\x00\x01"
        + b"\x02\x82\x01\x00"
        + _rng.randbytes(256)
        + b"\x02\x81\x81\x00"
        + _rng.randbytes(128)
    )
    body = b"\x02\x01\x00" + modulus + rest
    return b"\x30\x82" + len(body).to_bytes(2, "big") + body


def _der_pkcs8_ed25519() -> bytes:
    return bytes.fromhex("302e020100300506032b657004220420") + _rng.randbytes(32)


def _pkcs12() -> bytes:
    inner = b"\x30\x82\x01\x00" + _rng.randbytes(256)
    body = b"\x02\x01\x03" + inner
    return b"\x30\x82" + len(body).to_bytes(2, "big") + body


def _jwt() -> str:
    def seg(obj: str) -> str:
        return base64.urlsafe_b64encode(obj.encode()).decode().rstrip("=")

    sig = base64.urlsafe_b64encode(_rng.randbytes(32)).decode().rstrip("=")
    header = seg('{"alg":"HS256","typ":"JWT"}')
    claims = seg('{"sub":"1234567890","name":"ops"}')
    return f"{header}.{claims}.{sig}"


def _tar(name: str, content: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


SOPS_YAML = "creation_rules:\n  - path_regex: secrets/.*\\.yaml$\n    age: age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq\n"

# kind → (path in the repository, content). Every entry is one distinct kind of secret.
CORPUS: dict[str, tuple[str, bytes]] = {
    "openssh-private-key": ("keys/id_ed25519", _pem("OPENSSH PRIVATE KEY")),
    "rsa-pem": ("keys/server.key", _pem("RSA PRIVATE KEY")),
    "ec-pem": ("keys/ec.key", _pem("EC PRIVATE KEY")),
    "pkcs8-pem": ("keys/tls.key", _pem("PRIVATE KEY")),
    "encrypted-pkcs8-pem": ("keys/enc.key", _pem("ENCRYPTED PRIVATE KEY")),
    "pgp-private-block": ("keys/signing.asc", _pem("PGP PRIVATE KEY BLOCK")),
    "der-rsa-pkcs1": ("keys/server.der", _der_pkcs1()),
    "der-ed25519-pkcs8": ("keys/ed.der", _der_pkcs8_ed25519()),
    "pkcs12": ("keys/client.p12", _pkcs12()),
    "java-keystore": ("keys/app.jks", b"\xfe\xed\xfe\xed\x00\x00\x00\x02" + _rng.randbytes(200)),
    "kerberos-keytab": ("etc/krb5.keytab", b"\x05\x02" + _rng.randbytes(120)),
    "putty-key": (
        "keys/admin.ppk",
        (
            "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: admin\nPublic-Lines: 2\n"
            f"{_b64(32)}\n{_b64(16)}\nPrivate-Lines: 1\n{_b64(32)}\nPrivate-MAC: {_pick(_HEX, 64)}\n"
        ).encode(),
    ),
    "age-identity": ("keys/age.txt", f"# public key: age1xyz\nAGE-SECRET-KEY-1{_pick(_UP, 58)}\n".encode()),
    "wireguard-ini": (
        "wg/wg0.conf",
        f"[Interface]\nAddress = 10.0.0.1/24\nPrivateKey = {_b64(32)}\n".encode(),
    ),
    "wireguard-nix": (
        "hosts/a/wireguard.nix",
        f'{{ networking.wireguard.interfaces.wg0 = {{ privateKey = "{_b64(32)}"; }}; }}\n'.encode(),
    ),
    "nix-cache-signing-key": ("keys/cache-priv-key.pem", f"cache.example.org-1:{_b64(64)}\n".encode()),
    "kubeconfig-token": (
        "k8s/kubeconfig",
        (
            "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    server: https://10.0.0.1:6443\n  name: c\n"
            f"users:\n- name: admin\n  user:\n    token: {_pick(_AN, 40)}\n"
        ).encode(),
    ),
    "kubeconfig-client-key": (
        "k8s/admin.conf",
        f"users:\n- user:\n    client-key-data: {_b64(120)}\n".encode(),
    ),
    "netrc": ("home/.netrc", f"machine github.com login deploy password {_pick(_AN, 20)}\n".encode()),
    "htpasswd-apr1": ("nginx/htpasswd", f"admin:$apr1${_pick(_AN, 8)}${_pick(_AN + './', 22)}\n".encode()),
    "htpasswd-bcrypt": ("nginx/.htpasswd", f"ops:$2y$05${_pick(_AN + './', 53)}\n".encode()),
    "url-with-password": (
        "hosts/a/db.nix",
        f'{{ services.app.databaseUrl = "postgres://app:{_pick(_AN, 16)}@db.internal:5432/app"; }}\n'.encode(),
    ),
    "aws-access-key-id": (
        "aws/credentials",
        f"[default]\naws_access_key_id = AKIA{_pick(_UP, 16)}\n".encode(),
    ),
    "aws-secret-access-key": ("aws/creds.ini", f"aws_secret_access_key = {_pick(_B64, 40)}\n".encode()),
    "github-classic-token": ("nix.conf", f"access-tokens = github.com=ghp_{_pick(_AN, 36)}\n".encode()),
    "github-fine-grained-token": ("ci/env.sh", f"export GH=github_pat_{_pick(_AN + '_', 82)}\n".encode()),
    "gitlab-token": ("ci/gitlab.yml", f"token_value: glpat-{_pick(_AN, 20)}\n".encode()),
    "slack-bot-token": (
        "alerts/slack.json",
        f'{{"bot": "xoxb-{_pick(string.digits, 12)}-{_pick(_AN, 24)}"}}\n'.encode(),
    ),
    "slack-webhook": (
        "alerts/hook.txt",
        f"https://hooks.slack.com/services/T{_pick(_UP, 8)}/B{_pick(_UP, 10)}/{_pick(_AN, 24)}\n".encode(),
    ),
    "google-api-key": ("maps.js", f'const key = "AIza{_pick(_AN + "_-", 35)}";\n'.encode()),
    "stripe-live-key": ("billing/config.py", f'STRIPE = "sk_live_{_pick(_AN, 24)}"\n'.encode()),
    "tailscale-auth-key": ("hosts/a/ts.txt", f"tskey-auth-k{_pick(_AN, 10)}-{_pick(_AN, 30)}\n".encode()),
    "vault-token": ("vault/token", f"hvs.{_pick(_AN, 90)}\n".encode()),
    "docker-auth": (
        "docker/config.json",
        f'{{"auths": {{"registry.example.org": {{"auth": "{_b64(24)}"}}}}}}\n'.encode(),
    ),
    "nix-plaintext-password": (
        "hosts/a/users.nix",
        b'{ users.users.alice.initialPassword = "correct-horse-42"; }\n',
    ),
    "nix-wifi-psk": (
        "hosts/a/wifi.nix",
        b'{ networking.wireless.networks.home.psk = "sunflower-meadow-9"; }\n',
    ),
    "dotenv-credentials": ("app/.env", f"DB_PASSWORD={_pick(_AN, 14)}\n".encode()),
    "unencrypted-sops": ("secrets/db.yaml", f"db_password: {_pick(_AN, 18)}\n".encode()),
    "gcp-service-account": (
        "gcp/sa.json",
        (
            '{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----\\n'
            + _b64(60)
            + '\\n"}\n'
        ).encode(),
    ),
    "jwt": ("api/token.txt", (_jwt() + "\n").encode()),
    "sendgrid": ("mail/sendgrid.txt", f"SG.{_pick(_AN + '_-', 22)}.{_pick(_AN + '_-', 43)}\n".encode()),
    "twilio": ("sms/twilio.txt", f"api_key_sid = SK{_pick(_HEX, 32)}\n".encode()),
    "npm-token": ("web/.npmrc", f"//registry.npmjs.org/:_authToken=npm_{_pick(_AN, 36)}\n".encode()),
    "pypi-token": ("py/.pypirc", f"password = pypi-AgEIcHlwaS5vcmc{_pick(_AN + '-_', 60)}\n".encode()),
    "openai-key": ("ai/key.txt", f"sk-{_pick(_AN, 20)}T3BlbkFJ{_pick(_AN, 20)}\n".encode()),
    "telegram-bot-token": (
        "bot/telegram.txt",
        f"bot_token: {_pick(string.digits, 9)}:{_pick(_AN + '_-', 35)}\n".encode(),
    ),
    "mailchimp": ("mail/mc.txt", f"mailchimp = {_pick('0123456789abcdefghij', 32)}-us12\n".encode()),
    "yaml-password": ("apps/grafana.yaml", f"admin_password: {_pick(_AN, 16)}\n".encode()),
}
BINARY_KINDS = frozenset({"der-rsa-pkcs1", "der-ed25519-pkcs8", "pkcs12", "java-keystore", "kerberos-keytab"})


def padded(content: bytes) -> bytes:
    """The secret after 1 MiB of harmless text."""
    return b"# padding\n" * (1 << 20 // 10 + 1) + content


def in_tar(path: str, content: bytes) -> bytes:
    return _tar(path.rsplit("/", 1)[-1], content)


def utf16(content: bytes) -> bytes:
    return content.decode("utf-8").encode("utf-16")


# Ordinary NixOS files: none of them may be refused.
ORDINARY: dict[str, bytes] = {
    "configuration.nix": b"""{ config, pkgs, lib, ... }:
{
  imports = [ ./hardware-configuration.nix ];
  boot.loader.systemd-boot.enable = true;
  networking.hostName = "web1";
  time.timeZone = "Europe/Berlin";
  users.users.alice = {
    isNormalUser = true;
    extraGroups = [ "wheel" ];
    hashedPassword = "$6$rounds=656000$YJ3cQ6w8n$0q6G8Jx8JfR7P1c2tH7Z7y3xvY1n3mVq8FJr2iKq4d7vZ3";
    openssh.authorizedKeys.keys = [ "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@laptop" ];
  };
  users.users.bob.passwordFile = config.sops.secrets.bob.path;
  services.openssh.enable = true;
  services.nginx.virtualHosts."example.org".sslCertificateKey = "/var/lib/acme/example.org/key.pem";
  services.grafana.settings.security.admin_password = "$__file{/run/secrets/grafana}";
  networking.wireless.networks.home.pskRaw = "ext:psk_home";
  networking.wireless.networks.cafe.psk = "@PSK_CAFE@";
  services.restic.backups.daily.passwordFile = "/run/secrets/restic";
  age.secrets.wg.file = ../secrets/wg.age;
  nix.settings.trusted-public-keys = [ "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=" ];
  nix.settings.substituters = [ "https://cache.nixos.org" ];
  system.stateVersion = "24.05";
}
""",
    "hardware-configuration.nix": b"""{ config, lib, pkgs, modulesPath, ... }:
{
  boot.initrd.availableKernelModules = [ "xhci_pci" "ahci" "nvme" "usbhid" ];
  fileSystems."/" = { device = "/dev/disk/by-uuid/0c4b5c39-5d6e-4b7e-9a8a-1f2e3d4c5b6a"; fsType = "ext4"; };
  fileSystems."/boot" = { device = "/dev/disk/by-uuid/1A2B-3C4D"; fsType = "vfat"; };
  swapDevices = [ ];
  hardware.cpu.intel.updateMicrocode = lib.mkDefault config.hardware.enableRedistributableFirmware;
}
""",
    "flake.nix": b"""{
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-24.05";
  inputs.sops-nix.url = "github:Mic92/sops-nix";
  outputs = { self, nixpkgs, sops-nix }: {
    nixosConfigurations.web1 = nixpkgs.lib.nixosSystem {
      system = "x86_64-linux";
      modules = [ ./configuration.nix sops-nix.nixosModules.sops ];
    };
  };
}
""",
    "flake.lock": b"""{
  "nodes": {
    "nixpkgs": {
      "locked": {
        "lastModified": 1717696253,
        "narHash": "sha256-1+ua0ggXlYYPLTmMl3YeYYsBXDSCqT+Gw3u6l4gvMhA=",
        "owner": "NixOS",
        "repo": "nixpkgs",
        "rev": "9b5328b7f761a7bbdc0e332ac4cf076a3eedb89b",
        "type": "github"
      }
    }
  },
  "root": "root",
  "version": 7
}
""",
    "pkgs/tool.nix": b"""{ stdenv, fetchurl }:
stdenv.mkDerivation {
  pname = "tool";
  version = "1.2.3";
  src = fetchurl {
    url = "https://example.org/tool-1.2.3.tar.gz";
    sha256 = "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9";
  };
  hash = "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";
}
""",
    "hosts/web1/wireguard.nix": b"""{ config, ... }:
{
  networking.wireguard.interfaces.wg0 = {
    ips = [ "10.100.0.2/24" ];
    privateKeyFile = config.age.secrets.wg.path;
    peers = [ { publicKey = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="; allowedIPs = [ "10.100.0.1" ]; endpoint = "vpn.example.org:51820"; } ];
  };
}
""",
    "secrets/db.yaml": b"""db_password: ENC[AES256_GCM,data:q1w2e3r4t5,iv:abc,tag:def,type:str]
sops:
    age:
        - recipient: age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq
          enc: |
            -----BEGIN AGE ENCRYPTED FILE-----
            YWdlLWVuY3J5cHRpb24ub3JnL3YxCi0+IFgyNTUxOSB4eXoKYWJjCg==
            -----END AGE ENCRYPTED FILE-----
    lastmodified: "2024-06-01T12:00:00Z"
    mac: ENC[AES256_GCM,data:zzz,iv:yyy,tag:xxx,type:str]
    version: 3.8.1
""",
    ".sops.yaml": SOPS_YAML.encode(),
    "home/alice.nix": b"""{ pkgs, ... }:
{
  programs.git = { enable = true; userName = "Alice"; userEmail = "alice@example.org"; };
  programs.ssh.matchBlocks."build".identityFile = "~/.ssh/id_ed25519";
  home.sessionVariables.EDITOR = "vim";
  services.gpg-agent.enable = true;
}
""",
    "modules/monitoring.nix": b"""{ config, ... }:
{
  services.prometheus.exporters.node.enable = true;
  services.grafana.settings.database.password = "$__file{/run/secrets/grafana-db}";
  services.postgresql.authentication = "host all all 10.0.0.0/8 scram-sha-256";
  services.nginx.virtualHosts."grafana.example.org".locations."/".proxyPass = "http://127.0.0.1:3000";
  services.mosquitto.listeners = [ { users.monitor.passwordFile = "/run/secrets/mqtt"; } ];
}
""",
    "keys/alice.pub": b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice\n",
    "keys/ca.pem": b"-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ\n-----END CERTIFICATE-----\n",
    "README.md": b"# Fleet configuration\n\nRun `sudo nixos-rebuild switch --flake .#web1`. Secrets live in secrets/ (sops).\n",
    ".env.example": b"DB_PASSWORD=changeme\n",
}
