"""The NixOS module (nix/): syntax, option names, presets, CLI flags, unit mirroring, install hook.

Nothing here evaluates NixOS (no nixpkgs offline; tests/unit/test_nix_shapes.py evaluates the module
against option trees shaped like nixpkgs releases and verifies its rendered units). What can be
checked without it is checked for real: `nix-instantiate` parses every .nix file and evaluates the
pure parts (roles.nix, and the option tree of module.nix with a small stand-in for lib), the real
`bootguard … --help` output is compared with the flags the module passes, and the install hook runs
against a real ESP tree with the real CLI.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.hosttree import HostTree

REPO = Path(__file__).resolve().parents[2]
NIX = REPO / "nix"
MODULE = NIX / "module.nix"
HOOK = NIX / "stage-trial.sh"
DOC = REPO / "docs" / "nixos.md"
INITRD_UNIT = REPO / "initrd" / "bootguard-initrd.service"

# Every flag the module and the hook pass to bootguard, by command (() = global options). A flag that
# appears in module.nix but not here fails test_module_passes_only_known_flags, so this table stays
# complete, and each entry is looked up in the real `--help` of its command.
FLAGS: dict[tuple[str, ...], tuple[str, ...]] = {
    (): ("--esp", "--xbootldr", "--state-dir", "--json"),
    ("validate",): ("--config", "--promote-after", "--boot-deadline", "--grub-env"),
    ("initrd",): ("--mount-esp", "--watchdog-timeout", "--watchdog-device", "--grub-env"),
    ("watchdog", "run"): ("--device", "--timeout", "--handoff"),
    ("upgrade",): (
        "--repo", "--branch", "--remote", "--strategy", "--mode", "--build-command",
        "--switch-command", "--validate-command", "--verify-signatures",
        # fleet's flags (helper "fleet", issue 16)
        "--publish-verdicts", "--canaries", "--canary-hosts", "--soak", "--ignore-quarantine", "--host",
    ),
    ("commit",): ("--repo", "--branch", "--push"),
    ("trial",): ("--tries",),
}
# Flags in the hook that belong to the hook's own command line, not to bootguard's.
HOOK_OWN_FLAGS = {"--esp", "--xbootldr", "--tries"}

# Just enough of nixpkgs' lib to read the option tree: option values are never forced.
OPTION_PATHS_EXPR = """
let
  lib = {
    mkOption = args: args // { _type = "option"; };
    mkEnableOption = name: { _type = "option"; description = name; };
    mkPackageOption = _: name: _: { _type = "option"; description = name; };
    mkRenamedOptionModule = from: to: { inherit from to; };
  };
  unused = what: throw "reading the option tree must not need ${what}";
  module = import MODULE {
    inherit lib;
    config = unused "config";
    options = unused "options";
    pkgs = unused "pkgs";
    utils = unused "utils";
  };
  walk = prefix: set: builtins.concatLists (map (name:
    let value = set.${name}; path = prefix ++ [ name ]; in
    if (value._type or null) == "option"
    then [ (builtins.concatStringsSep "." path) ]
    else walk path value) (builtins.attrNames set));
in walk [ ] module.options
"""


def _nix_instantiate() -> str:
    exe = shutil.which("nix-instantiate")
    if exe is None:
        pytest.fail("nix-instantiate is missing: install the Debian package nix-bin (scripts/bootstrap.sh)")
    return exe


def _nix_json(*args: str) -> object:
    done = subprocess.run(
        [_nix_instantiate(), "--eval", "--strict", "--json", *args],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _option_paths() -> set[str]:
    expr = OPTION_PATHS_EXPR.replace("MODULE", str(MODULE))
    paths = _nix_json("-E", expr)
    assert isinstance(paths, list)
    return set(paths)


def _leaves(tree: dict[str, object], prefix: str = "") -> list[str]:
    out: list[str] = []
    for key, value in tree.items():
        path = f"{prefix}{key}"
        out += _leaves(value, f"{path}.") if isinstance(value, dict) else [path]
    return out


def _help(*command: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "bootguard", *command, "--help"],
        capture_output=True, text=True, timeout=60, check=False, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, f"bootguard {' '.join(command)} --help failed:\n{done.stderr}"
    return done.stdout


def _module_text() -> str:
    return MODULE.read_text(encoding="utf-8")


def _nix_block(text: str, opening: str) -> str:
    """The balanced `{ … }` that starts at `opening` (which ends with `{`)."""
    start = text.index(opening) + len(opening) - 1
    depth = 0
    for i in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[start : i + 1]
    raise AssertionError(f"unbalanced block after {opening!r}")


# ------------------------------------------------------------------------------------------ syntax
@pytest.mark.integration
@pytest.mark.parametrize("path", sorted(NIX.rglob("*.nix")), ids=lambda p: str(p.relative_to(NIX)))
def test_every_nix_file_parses(path: Path) -> None:
    """Every .nix file under nix/ is syntactically valid Nix."""
    done = subprocess.run(
        [_nix_instantiate(), "--parse", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.integration
def test_hook_passes_shellcheck() -> None:
    """The install hook is clean for shellcheck, which writeShellApplication runs when it builds it."""
    exe = shutil.which("shellcheck")
    if exe is None:
        pytest.fail("shellcheck is missing: install the Debian package shellcheck")
    done = subprocess.run([exe, str(HOOK)], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout


# ----------------------------------------------------------------------------------------- options
@pytest.mark.integration
def test_option_tree_has_the_documented_shape() -> None:
    """The module declares the option groups the brief and docs/nixos.md describe."""
    paths = _option_paths()
    for name in (
        "enable", "package", "role", "tries", "promoteAfter", "watchdog.enable", "watchdog.device",
        "watchdog.timeout", "watchdog.handOffToSystemd", "checks", "validator.deadline",
        "validator.onFailure", "notify", "gitops.enable", "gitops.repo", "gitops.branch",
        "gitops.remote", "gitops.strategy", "gitops.commit.push", "gitops.flake", "gitops.buildCommand",
        "gitops.switchCommand", "gitops.mode",
    ):
        assert f"services.bootguard.{name}" in paths


@pytest.mark.integration
def test_every_documented_option_exists() -> None:
    """Every services.bootguard.* name in docs/nixos.md is an option, an option group, or an attribute
    under an attrsOf option (such as credentials.NAME) of module.nix."""
    paths = _option_paths()
    documented = set(re.findall(r"services\.bootguard\.[A-Za-z0-9_.]*[A-Za-z0-9_]", DOC.read_text("utf-8")))
    assert documented, "docs/nixos.md names no options"
    groups = {p.rsplit(".", i)[0] for p in paths for i in range(1, p.count(".") + 1)}
    def declared(name: str) -> bool:
        return name in paths or name in groups or any(name.startswith(f"{p}.") for p in paths)

    unknown = sorted(d for d in documented if not declared(d))
    assert not unknown, f"documented but not declared in module.nix: {unknown}"


@pytest.mark.integration
def test_every_option_is_documented() -> None:
    """Every option of module.nix has a row in docs/nixos.md."""
    text = DOC.read_text("utf-8")
    missing = sorted(p for p in _option_paths() if f"`{p}`" not in text)
    assert not missing, f"declared but not documented in docs/nixos.md: {missing}"


@pytest.mark.integration
def test_role_presets_are_options_with_the_specified_values() -> None:
    """roles.nix sets only real options, with the values the roles promise."""
    roles = _nix_json(str(NIX / "roles.nix"))
    assert isinstance(roles, dict)
    assert set(roles) == {"server", "workstation"}
    paths = _option_paths()
    for role, preset in roles.items():
        for leaf in _leaves(preset):
            assert f"services.bootguard.{leaf}" in paths, f"{role} preset sets unknown option {leaf}"
    server, workstation = roles["server"], roles["workstation"]
    assert (server["tries"], server["watchdog"]["timeout"], server["watchdog"]["runtimeSec"]) == (2, 60, 30)
    assert (server["validator"]["onFailure"], server["gitops"]["mode"], server["gitops"]["dates"]) == (
        "reboot", "switch", "daily",
    )
    assert (server["gitops"]["strategy"], server["gitops"]["commit"]) == (
        "prefer-remote", {"dates": "weekly", "push": False},
    )
    assert (workstation["tries"], workstation["watchdog"]["timeout"]) == (3, 120)
    assert (workstation["validator"]["onFailure"], workstation["gitops"]["mode"]) == ("report", "boot")
    assert (workstation["gitops"]["strategy"], workstation["gitops"]["commit"]) == (
        "prefer-local", {"dates": "daily", "push": True},
    )


def test_presets_are_applied_at_default_priority() -> None:
    """module.nix applies every preset value with mkDefault, so the user's own setting wins."""
    text = _module_text()
    assert "lib.mapAttrsRecursive (_: lib.mkDefault) preset" in text
    assert "import ./roles.nix" in text


# --------------------------------------------------------------------------------------- CLI flags
def _flags_in_module() -> set[str]:
    return set(re.findall(r'"(--[a-z][a-z-]*)"', _module_text()))


def _flags_in_hook() -> set[str]:
    flags: set[str] = set()
    for line in HOOK.read_text("utf-8").splitlines():
        if re.match(r"\s*(bootguard|bg|entry=\$\(bg|status=\$\(bg)\b", line):
            command = line.split("|", 1)[0]  # what follows a pipe is jq's
            flags |= set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", command))
    return flags


def test_module_passes_only_known_flags() -> None:
    """Every --flag literal in module.nix and in the hook's bootguard calls is in the FLAGS table."""
    known = {flag for flags in FLAGS.values() for flag in flags}
    assert _flags_in_module() - known == set()
    assert _flags_in_hook() - known - HOOK_OWN_FLAGS == set()


def test_every_tabled_flag_is_used() -> None:
    """The FLAGS table holds no flag that neither the module nor the hook uses (it would prove nothing)."""
    used = _flags_in_module() | _flags_in_hook()
    unused = {flag for flags in FLAGS.values() for flag in flags} - used
    assert unused == set()


@pytest.mark.integration
@pytest.mark.parametrize("command", sorted(FLAGS), ids=lambda c: " ".join(c) or "global")
def test_flags_exist_in_real_help(command: tuple[str, ...]) -> None:
    """Each flag the module passes to a command is in the real `bootguard COMMAND --help` output."""
    text = _help(*command)
    missing = [flag for flag in FLAGS[command] if not re.search(rf"(?<![\w-]){flag}(?![\w-])", text)]
    assert not missing, f"bootguard {' '.join(command)} --help lacks {missing}"


# ------------------------------------------------------------------------------------------- units
def _unit_directives(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for raw in path.read_text("utf-8").splitlines():
        line = raw.strip()
        if line and not line.startswith(("#", "[")) and "=" in line:
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


def test_initrd_service_mirrors_the_shared_unit() -> None:
    """The module's bootguard-initrd.service carries every dependency and setting of initrd/'s unit."""
    block = _nix_block(_module_text(), "boot.initrd.systemd.services.bootguard-initrd = {")
    literals = set(re.findall(r'"([^"]*)"', block))
    unit = _unit_directives(INITRD_UNIT)
    for key in ("After", "Wants", "Before", "WantedBy"):
        for unit_name in " ".join(unit[key]).split():
            assert unit_name in literals, f"{key}={unit_name} missing from the module's initrd service"
    for key in ("ConditionPathExists", "Type", "SuccessExitStatus", "StandardOutput"):
        assert f'{key} = "{unit[key][0]}";' in block, f"{key}={unit[key][0]} differs in the module"
    assert unit["DefaultDependencies"] == ["no"] and "DefaultDependencies = false;" in block
    # The module passes what the shared entry script passes (plus --watchdog-device).
    script = (REPO / "initrd" / "bootguard-initrd").read_text("utf-8")
    for flag in ("--state-dir", "--mount-esp", "--watchdog-timeout"):
        assert flag in script and f'"{flag}"' in _module_text()
    assert '"/sysroot${stateDir}"' in _module_text() and "/sysroot/var/lib/bootguard" in script


def test_validator_units_come_from_the_package() -> None:
    """The module overrides the packaged validator units instead of redefining them."""
    text = _module_text()
    for kind, name in (
        ("services", "bootguard-validate"),
        ("services", "bootguard-boot-deadline"),
        ("timers", "bootguard-boot-deadline"),
    ):
        assert (REPO / "systemd" / f"{name}.{kind[:-1]}").exists(), name
        assert f"systemd.{kind}.{name} =" in text
    assert "systemd.packages = [ cfg.package ];" in text
    assert "systemd.services.systemd-bless-boot.enable = false;" in text


# ---------------------------------------------------------------------------------- check-config
def _check_config(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(NIX / "check-config.py"), str(path)],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


@pytest.mark.integration
def test_check_config_accepts_what_the_module_renders(tmp_path: Path) -> None:
    """A checks.toml shaped like the module's output (nulls dropped, empty lists) passes the helper."""
    path = tmp_path / "checks.toml"
    path.write_text(
        '[validator]\ndeadline = 300\non_failure = "report"\n\n'
        '[[check]]\nname = "sshd"\nkind = "unit"\nunit = "sshd.service"\nrequired = true\nafter = []\n\n'
        '[[check]]\nname = "web"\nkind = "http"\nurl = "http://localhost/"\nretries = 3\n'
        'required = false\nafter = ["sshd"]\n\n'
        '[[notify]]\nkind = "ntfy"\nurl = "https://ntfy.example.net"\ntopic = "t"\n'
        'token_file = "ntfy-token"\n'
    )
    done = _check_config(path)
    assert done.returncode == 0, done.stderr
    assert "2 checks, 1 notifiers" in done.stdout


@pytest.mark.integration
def test_check_config_rejects_a_typo(tmp_path: Path) -> None:
    """A misspelt key fails the helper (and so the NixOS build) with the key named."""
    path = tmp_path / "checks.toml"
    path.write_text('[[check]]\nname = "sshd"\nkind = "unit"\nunit = "sshd.service"\nretires = 3\n')
    done = _check_config(path)
    assert done.returncode != 0
    assert "retires" in done.stderr


# ------------------------------------------------------------------------------------ install hook
@pytest.fixture
def host(tmp_path: Path) -> HostTree:
    h = HostTree(tmp_path / "host")
    h.add_entry("nixos-generation-5.conf", version="Generation 5 NixOS")
    h.add_entry("nixos-generation-6.conf", version="Generation 6 NixOS")
    h.loader_conf("timeout 5\ndefault nixos-generation-6.conf\n")
    h.booted("nixos-generation-5.conf")
    return h


def _run_hook(host: HostTree, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    shim = tmp_path / "bin"
    shim.mkdir(exist_ok=True)
    (shim / "bootguard").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m bootguard "$@"\n')
    (shim / "bootguard").chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{shim}:{os.environ['PATH']}",
        "PYTHONPATH": str(REPO),
        "BOOTGUARD_EFIVARS": str(host.efivars),
        "BOOTGUARD_STATE_DIR": str(host.state),
    }
    return subprocess.run(
        ["bash", str(HOOK), "--esp", str(host.esp), "--tries", "2"],
        capture_output=True, text=True, timeout=120, check=False, env=env,
    )


def _trial(host: HostTree) -> object:
    status = host.cli_json("status")
    assert isinstance(status, dict)
    return status["trial"]


@pytest.mark.integration
def test_hook_stages_the_new_default_as_a_trial(host: HostTree, tmp_path: Path) -> None:
    """With golden pinned, the entry loader.conf names as default is staged with the configured tries."""
    assert host.cli("pin-golden")[0] == 0
    done = _run_hook(host, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "bootguard-trial+2.conf" in host.entries()
    assert host.get_var("LoaderEntryDefault") == "bootguard-*"
    trial = _trial(host)
    assert isinstance(trial, dict) and (trial["filename"], trial["tries"]) == ("nixos-generation-6.conf", 2)


@pytest.mark.integration
def test_hook_leaves_a_running_trial_alone(host: HostTree, tmp_path: Path) -> None:
    """Installing the same default again keeps the trial (and its tries) as they are."""
    assert host.cli("pin-golden")[0] == 0
    assert _run_hook(host, tmp_path).returncode == 0
    before = (host.entries(), _trial(host))
    done = _run_hook(host, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "already on trial" in done.stderr
    assert (host.entries(), _trial(host)) == before


@pytest.mark.integration
def test_hook_without_golden_stages_nothing(host: HostTree, tmp_path: Path) -> None:
    """Without a pinned golden (a fresh install) the hook says so, succeeds, and changes nothing."""
    entries = host.entries()
    done = _run_hook(host, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "no golden generation is pinned" in done.stderr
    assert host.entries() == entries and host.get_var("LoaderEntryDefault") is None


@pytest.mark.integration
def test_hook_skips_golden_and_the_booted_entry(host: HostTree, tmp_path: Path) -> None:
    """A default that is golden, or that is the entry booted now, is nothing new to try."""
    assert host.cli("pin-golden")[0] == 0
    host.loader_conf("default nixos-generation-5.conf\n")
    done = _run_hook(host, tmp_path)
    assert done.returncode == 0 and "is golden" in done.stderr
    host.booted("nixos-generation-6.conf")
    host.loader_conf("default nixos-generation-6.conf\n")
    done = _run_hook(host, tmp_path)
    assert done.returncode == 0 and "booted now" in done.stderr
    assert _trial(host) is None


@pytest.mark.integration
def test_hook_reads_a_default_without_suffix_and_prefers_preferred(host: HostTree, tmp_path: Path) -> None:
    """`default NAME` without .conf is found, and a `preferred` line wins over `default`."""
    assert host.cli("pin-golden")[0] == 0
    host.add_entry("nixos-generation-7.conf", version="Generation 7 NixOS")
    host.loader_conf("default nixos-*\npreferred nixos-generation-7\n")
    done = _run_hook(host, tmp_path)
    assert done.returncode == 0, done.stderr
    trial = _trial(host)
    assert isinstance(trial, dict) and trial["filename"] == "nixos-generation-7.conf"


@pytest.mark.integration
def test_hook_fails_loudly_when_the_default_is_missing(host: HostTree, tmp_path: Path) -> None:
    """A default entry that does not exist fails the hook (and so the bootloader installation)."""
    assert host.cli("pin-golden")[0] == 0
    host.loader_conf("default nixos-generation-9.conf\n")
    done = _run_hook(host, tmp_path)
    assert done.returncode == 1
    assert "nixos-generation-9.conf" in done.stderr and _trial(host) is None


@pytest.mark.integration
def test_hook_fails_when_bootguard_refuses(host: HostTree, tmp_path: Path) -> None:
    """A default that bootguard refuses to try (marked bad) fails the hook with bootguard's exit code."""
    assert host.cli("pin-golden")[0] == 0
    (host.esp / "loader" / "entries" / "nixos-generation-6.conf").rename(
        host.esp / "loader" / "entries" / "nixos-generation-6+0-2.conf"
    )
    host.loader_conf("default nixos-generation-6+0-2.conf\n")
    done = _run_hook(host, tmp_path)
    assert done.returncode != 0
    assert "bad" in done.stderr and _trial(host) is None
