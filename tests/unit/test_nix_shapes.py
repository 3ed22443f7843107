"""The NixOS module evaluated against option trees shaped like nixpkgs 25.05, 25.11 and unstable,
and its units rendered the way NixOS lays them out and checked by the real `systemd-analyze verify`.

nixpkgs cannot be fetched on these machines, so nix/tests/shapes.nix declares the NixOS options the
module touches per release (with nixpkgs' renames and removals: reading a removed option throws) and
nix/tests/modlib.nix is the module system (the same shapes evaluate with nixpkgs' real lib, which
is how modlib was compared). Every case is evaluated by Debian's Nix (2.8) and by trixie's (2.26,
fetched with apt-get download, tests/nixbin.py), in one `nix-instantiate` call per Nix.

Rendering follows nixos/lib/systemd-lib.nix: a unit that a package in `systemd.packages` ships and
that the module also defines becomes the package's file plus the module's settings as
`<unit>.d/overrides.conf`; services' `startAt` becomes a timer's `OnCalendar` (systemd.nix); the
packaged unit files are read from systemd/ at test time, with /usr/bin/bootguard replaced by the
package's store path as nix/package.nix does. Store paths do not exist here, so the render root
gets an executable stub at each /nix/store path an Exec*= line names: that satisfies only
`systemd-analyze verify`'s "command exists and is executable" check. Upstream units (targets etc.)
come from the host's systemd.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.nixbin import debian_nix, trixie_nix, version

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SHAPES = REPO / "nix" / "tests" / "shapes.nix"
UNITS = REPO / "systemd"
HOST_UNITS = Path("/usr/lib/systemd/system")
STORE_BOOTGUARD = "/nix/store/00000000000000000000000000000000-bootguard"

RELEASES = ("25.05", "25.11", "unstable")
ROLES = ("server", "workstation")
LOADERS = ("systemd-boot", "grub")
MATRIX = [
    {"release": r, "role": role, "handOff": h, "gitops": gi, "loader": lo}
    for r, role, h, gi, lo in itertools.product(RELEASES, ROLES, (True, False), (True, False), LOADERS)
]


def case_id(case: dict[str, Any]) -> str:
    return "-".join(
        [
            str(case["release"]),
            str(case["role"]),
            "handoff" if case["handOff"] else "keepalive",
            "gitops" if case["gitops"] else "nogitops",
            str(case["loader"]),
        ]
    )


def _user(case: dict[str, Any]) -> str:
    gitops = '{ enable = true; repo = "/etc/nixos"; }' if case["gitops"] else "{ }"
    return (
        f'{{ services.bootguard = {{ enable = true; role = "{case["role"]}"; '
        f"watchdog.handOffToSystemd = {str(case['handOff']).lower()}; gitops = {gitops}; }}; }}"
    )


def _nix(argv: list[str], expr: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*argv, "--eval", "--strict", "--json", "--readonly-mode", "-E", expr],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _case_expr(release: str, loader: str, user: str) -> str:
    return f's.evaluate {{ release = "{release}"; loader = "{loader}"; user = ({user}); }}'


class EvalFailed(AssertionError):
    """One configuration did not evaluate (its Nix error is the message)."""


def evaluate(argv: list[str], cases: dict[str, tuple[str, str, str]]) -> dict[str, Any]:
    """name → evaluation of (release, loader, user module expression), in one nix-instantiate run.

    Each case is forced inside `builtins.tryEval`, so one that throws (a removed option read, an
    option without value) fails only the tests that use it: its entry is then an EvalFailed with
    Nix's own message (the case evaluated again on its own), raised when a test reads it."""
    body = " ".join(
        f'"{name}" = let r = builtins.tryEval (let v = {_case_expr(*case)}; in builtins.deepSeq v v); '
        f"in if r.success then r.value else null;"
        for name, case in cases.items()
    )
    prelude = f"let s = import {SHAPES} {{ }}; in "
    done = _nix(argv, f"{prelude}{{ {body} }}")
    assert done.returncode == 0, done.stderr[-4000:]
    out: dict[str, Any] = json.loads(done.stdout)
    for name, value in out.items():
        if value is None:
            alone = _nix(argv, prelude + _case_expr(*cases[name]))
            out[name] = Results.failed(f"{name}: {alone.stderr.strip()[-3000:]}")
    return Results(out)


class Results(dict[str, Any]):
    """Evaluations by case name; reading a case that failed raises its error."""

    @staticmethod
    def failed(message: str) -> EvalFailed:
        return EvalFailed(message)

    def __getitem__(self, key: str) -> Any:
        value = super().__getitem__(key)
        if isinstance(value, EvalFailed):
            raise value
        return value

    def values(self) -> Any:
        return [self[k] for k in self]

    def items(self) -> Any:
        return [(k, self[k]) for k in self]


def _matrix_cases() -> dict[str, tuple[str, str, str]]:
    return {case_id(c): (str(c["release"]), str(c["loader"]), _user(c)) for c in MATRIX}


# Single-purpose configurations: name → (release, loader, user module).
SPECIAL: dict[str, tuple[str, str, str]] = {
    "removed-2511": (
        "25.11",
        "systemd-boot",
        "{ services.bootguard.enable = true; boot.initrd.systemd.settings.Manager.RuntimeWatchdogSec"
        ' = "10s"; }',
    ),
    "plain-2511": ("25.11", "systemd-boot", "{ services.bootguard.enable = true; }"),
    "old-2505": (
        "25.05",
        "systemd-boot",
        '{ services.bootguard.enable = true; boot.initrd.systemd.extraConfig = "RuntimeWatchdogSec=10s"; }',
    ),
    "renamed-2511": (
        "25.11",
        "systemd-boot",
        "{ services.bootguard = { enable = true; watchdog.handOffToSystemd = false; }; "
        'systemd.watchdog.runtimeTime = "20s"; }',
    ),
    "nocount-unstable": (
        "unstable",
        "systemd-boot",
        "{ services.bootguard.enable = true; boot.loader.systemd-boot.bootCounting.enable = true; }",
    ),
    "norepo": (
        "25.11",
        "systemd-boot",
        "{ services.bootguard = { enable = true; gitops.enable = true; }; }",
    ),
    "grub-unmounted": (
        "25.11",
        "grub",
        '{ lib, ... }: { services.bootguard.enable = true; fileSystems."/boot".neededForBoot'
        " = lib.mkForce false; }",
    ),
    "grub-staging": ("25.11", "grub", "{ services.bootguard = { enable = true; stageTrials = true; }; }"),
    "monitoring": (
        "25.11",
        "systemd-boot",
        '{ services.bootguard = { enable = true; gitops = { enable = true; repo = "/r"; }; '
        "monitoring = { enable = true; prometheusRules = true; grafanaDashboard = true; }; }; "
        "services.prometheus.exporters.node.enable = true; }",
    ),
    "monitoring-dir": (
        "25.05",
        "systemd-boot",
        "{ services.bootguard = { enable = true; monitoring = { enable = true; nodeExporter = false; "
        'textfileDirectory = "/srv/textfiles"; }; }; services.prometheus.exporters.node = { '
        'enable = true; extraFlags = [ "--collector.textfile.directory=/srv/textfiles" ]; }; }',
    ),
    "fleet": (
        "unstable",
        "systemd-boot",
        '{ services.bootguard = { enable = true; gitops = { enable = true; repo = "/r"; fleet = { '
        'publishVerdicts = true; canaries = 2; canaryHosts = [ "a" "b" ]; soak = "2h"; '
        'ignoreQuarantine = true; host = "web1"; }; }; }; }',
    ),
    "overridden": (
        "25.11",
        "systemd-boot",
        '{ services.bootguard = { enable = true; role = "workstation"; gitops = { enable = true; '
        'repo = "/r"; autoPush = false; commit.dates = "hourly"; }; }; }',
    ),
}


@pytest.fixture(scope="module", params=["debian", "trixie"])
def nix_argv(request: pytest.FixtureRequest) -> list[str]:
    return debian_nix() if request.param == "debian" else trixie_nix()


@pytest.fixture(scope="module")
def matrix(nix_argv: list[str]) -> dict[str, Any]:
    return evaluate(nix_argv, _matrix_cases())


@pytest.fixture(scope="module")
def special() -> dict[str, Any]:
    """Single-purpose configurations (Debian's Nix: the matrix runs on both)."""
    return evaluate(debian_nix(), SPECIAL)


def _argv(exec_line: str) -> list[str]:
    argv: list[str] = json.loads("[" + ",".join(re.findall(r'"(?:[^"\\]|\\.)*"', exec_line)) + "]")
    return argv


def _exec(units: dict[str, Any], name: str) -> list[str]:
    unit = units[name]
    assert isinstance(unit, dict)
    start = unit["serviceConfig"]["ExecStart"]
    assert start[0] == "" and len(start) == 2, start  # resets the packaged command
    return _argv(start[1])


# ---------------------------------------------------------------------------------- evaluation
def test_both_nix_versions_are_what_the_shapes_need(nix_argv: list[str]) -> None:
    """Debian's Nix is the 2.8 that bookworm ships; the other is >= 2.18 (what 25.11+ require)."""
    major, minor = (int(x) for x in version(nix_argv).split(".")[:2])
    assert (major, minor) == (2, 8) or (major, minor) >= (2, 18)


def test_every_combination_evaluates_cleanly(matrix: dict[str, Any]) -> None:
    """Each release × role × hand-off × GitOps × loader: no failed assertion, no warning, no
    definition of an option that release does not have."""
    assert set(matrix) == {case_id(c) for c in MATRIX}
    for name, result in matrix.items():
        assert result["check"] is True, name
        assert result["failedAssertions"] == [], (name, result["failedAssertions"])
        assert result["warnings"] == [], (name, result["warnings"])


def test_watchdog_hand_off_uses_each_release_own_options(matrix: dict[str, Any]) -> None:
    """25.05: systemd.watchdog.*; 25.11 and unstable: systemd.settings.Manager; keepalive: neither."""
    for case in MATRIX:
        result = matrix[case_id(case)]
        runtime = "30s" if case["role"] == "server" else "60s"
        manager = result["manager"]
        if not case["handOff"]:
            assert manager in ({}, {"runtimeTime": None, "device": None}), case
            assert "--handoff" in _exec(result["services"], "bootguard-keepalive")
        elif case["release"] == "25.05":
            assert manager == {"runtimeTime": runtime, "device": "/dev/watchdog0"}, case
        else:
            assert manager == {"RuntimeWatchdogSec": runtime, "WatchdogDevice": "/dev/watchdog0"}, case


def test_role_presets_give_the_planned_commit_and_upgrade_units(matrix: dict[str, Any]) -> None:
    """server: commits weekly, never pushes, prefer-remote; workstation: daily, pushes, prefer-local.
    The commit service and its timer exist with and without push."""
    for case in MATRIX:
        result = matrix[case_id(case)]
        services, timers = result["services"], result["timers"]
        assert isinstance(services, dict) and isinstance(timers, dict)
        if not case["gitops"]:
            assert "bootguard-upgrade" not in services and "bootguard-commit" not in services
            continue
        server = case["role"] == "server"
        commit = _exec(services, "bootguard-commit")
        assert ("--push" in commit) is (not server), case
        assert timers["bootguard-commit"]["timerConfig"]["OnCalendar"] == [
            "",
            "weekly" if server else "daily",
        ]
        assert timers["bootguard-commit"]["wantedBy"] == ["timers.target"]
        upgrade = _exec(services, "bootguard-upgrade")
        strategy = upgrade[upgrade.index("--strategy") + 1]
        mode = upgrade[upgrade.index("--mode") + 1]
        assert (strategy, mode) == (("prefer-remote", "switch") if server else ("prefer-local", "boot")), case
        assert timers["bootguard-upgrade"]["timerConfig"]["OnCalendar"] == ["", "daily"]
        assert services["bootguard-upgrade"]["environment"]["BOOTGUARD_REPO"] == "/etc/nixos"


def test_user_settings_beat_presets_and_the_old_autopush_name_still_works(
    special: dict[str, Any],
) -> None:
    result = special["overridden"]
    assert "--push" not in _exec(result["services"], "bootguard-commit")
    assert result["timers"]["bootguard-commit"]["timerConfig"]["OnCalendar"] == ["", "hourly"]
    assert any("gitops.autoPush" in w and "commit.push" in w for w in result["warnings"])


def test_initrd_watchdog_owner_is_read_from_the_release_option(special: dict[str, Any]) -> None:
    """25.11 removed boot.initrd.systemd.extraConfig (reading it throws): the module reads
    settings.Manager there, extraConfig on 25.05, and refuses RuntimeWatchdogSec in either."""
    assert special["plain-2511"]["failedAssertions"] == []
    for name in ("removed-2511", "old-2505"):
        assert any(
            "systemd in the initrd must not open it" in m for m in special[name]["failedAssertions"]
        ), name


def test_a_renamed_option_set_by_the_user_is_seen(special: dict[str, Any]) -> None:
    """systemd.watchdog.runtimeTime set on 25.11 (renamed into settings.Manager) conflicts with the
    keepalive service, and the module sees it."""
    messages = special["renamed-2511"]["failedAssertions"]
    assert any("bootguard-keepalive.service feeds the watchdog" in m for m in messages)


def test_native_boot_counting_is_refused(special: dict[str, Any]) -> None:
    assert any("bootCounting" in m for m in special["nocount-unstable"]["failedAssertions"])


def test_gitops_without_a_repository_is_an_assertion_not_a_crash(special: dict[str, Any]) -> None:
    assert any("gitops.repo" in m for m in special["norepo"]["failedAssertions"])


def test_grub_hosts_are_wired(matrix: dict[str, Any], special: dict[str, Any]) -> None:
    """GRUB: the initrd step and the validator name GRUB's environment block, no ESP options, saved
    default; /boot must be mounted in the initrd; the systemd-boot install hook is not used."""
    result = matrix[case_id(MATRIX[1])]
    assert MATRIX[1]["loader"] == "grub"
    initrd = _argv(result["initrdServices"]["bootguard-initrd"]["serviceConfig"]["ExecStart"])
    assert (
        initrd[initrd.index("--grub-env") + 1] == "/sysroot/boot/grub/grubenv" and "--mount-esp" not in initrd
    )
    validate = _exec(result["services"], "bootguard-validate")
    assert validate[validate.index("--grub-env") + 1] == "/boot/grub/grubenv" and "--esp" not in validate
    assert result["grubDefault"] == "saved" and result["sdbootInstall"] == ""
    assert any("neededForBoot" in m for m in special["grub-unmounted"]["failedAssertions"])
    assert any("stageTrials" in m for m in special["grub-staging"]["failedAssertions"])
    sdboot = matrix[case_id(MATRIX[0])]
    assert "--mount-esp" in _argv(sdboot["initrdServices"]["bootguard-initrd"]["serviceConfig"]["ExecStart"])
    assert "bootguard-stage-trial" in str(sdboot["sdbootInstall"])


def test_meta_and_package_option(matrix: dict[str, Any]) -> None:
    """meta.doc is this repository's docs/nixos.md, meta.maintainers is set, and the package
    defaults to pkgs.bootguard (mkPackageOption)."""
    result = next(iter(matrix.values()))
    assert Path(str(result["metaDoc"])) == REPO / "docs" / "nixos.md"
    assert result["maintainers"] and all("name" in m for m in result["maintainers"])
    assert result["packages"] == [STORE_BOOTGUARD] and result["packageDefault"] == "pkgs.bootguard"
    assert _exec(result["services"], "bootguard-validate")[0] == f"{STORE_BOOTGUARD}/bin/bootguard"


def test_monitoring_options(special: dict[str, Any]) -> None:
    """The textfile directory (node exporter's, if configured), the collector, the rules file and the
    dashboard from monitoring/."""
    result = special["monitoring"]
    metrics = "/var/lib/prometheus-node-exporter-text-files/bootguard.prom"
    for unit in ("bootguard-validate", "bootguard-boot-deadline", "bootguard-upgrade", "bootguard-commit"):
        assert result["services"][unit]["environment"]["BOOTGUARD_METRICS_FILE"] == metrics, unit
    node = result["nodeExporter"]
    assert "textfile" in node["enabledCollectors"]
    assert node["extraFlags"] == [
        "--collector.textfile.directory=/var/lib/prometheus-node-exporter-text-files"
    ]
    assert result["ruleFiles"] == [str(REPO / "monitoring" / "prometheus" / "bootguard.rules.yml")]
    assert [p["name"] for p in result["grafanaProviders"]] == ["bootguard"]
    own = special["monitoring-dir"]
    assert (
        own["services"]["bootguard-validate"]["environment"]["BOOTGUARD_METRICS_FILE"]
        == "/srv/textfiles/bootguard.prom"
    )
    assert own["nodeExporter"]["extraFlags"] == ["--collector.textfile.directory=/srv/textfiles"]


def test_fleet_options_become_upgrade_arguments(special: dict[str, Any]) -> None:
    upgrade = _exec(special["fleet"]["services"], "bootguard-upgrade")
    tail = upgrade[upgrade.index("--publish-verdicts") :]
    assert tail == [
        "--publish-verdicts",
        "--canaries",
        "2",
        "--canary-hosts",
        "a,b",
        "--soak",
        "2h",
        "--ignore-quarantine",
        "--host",
        "web1",
    ]


# ------------------------------------------------------------------------------------ rendering
def _section(values: dict[str, Any]) -> str:
    """systemd-lib.nix attrsToSection: one `Key=value` line per list element, attribute order."""

    def show(v: object) -> str:
        return "true" if v is True else "false" if v is False else str(v)

    out = []
    for key in sorted(values):
        value = values[key]
        for item in value if isinstance(value, list) else [value]:
            out.append(f"{key}={show(item)}\n")
    return "".join(out)


def _unit_config(unit: dict[str, Any]) -> dict[str, Any]:
    derived: dict[str, Any] = {}
    for key, option in (
        ("Requires", "requires"),
        ("Wants", "wants"),
        ("After", "after"),
        ("Before", "before"),
        ("BindsTo", "bindsTo"),
        ("PartOf", "partOf"),
        ("Conflicts", "conflicts"),
        ("Requisite", "requisite"),
        ("Documentation", "documentation"),
    ):
        if unit[option]:
            derived[key] = " ".join(unit[option])
    if unit["description"]:
        derived["Description"] = unit["description"]
    return {**derived, **unit["unitConfig"]}


def _service_text(unit: dict[str, Any], stage2: bool = True) -> str:
    env = dict(unit["environment"])
    # stage2ServiceConfig appends a default PATH (mkAfter); stage 1 (the initrd) has none.
    path = [str(p) for p in unit["path"]] + stage2 * [
        f"/nix/store/00000000000000000000000000000000-{p}"
        for p in ("coreutils", "findutils", "gnugrep", "gnused", "systemd")
    ]
    if path:  # serviceConfig: environment.PATH = mkIf (config.path != [ ]) …
        env["PATH"] = ":".join(f"{p}/bin" for p in path) + ":" + ":".join(f"{p}/sbin" for p in path)
    lines = "".join(
        f"Environment={json.dumps(f'{k}={v}')}\n" for k, v in sorted(env.items()) if v is not None
    )
    if not unit["restartIfChanged"]:
        lines += "X-RestartIfChanged=false\n"
    text = f"[Unit]\n{_section(_unit_config(unit))}\n[Service]\n{lines}{_section(unit['serviceConfig'])}"
    return text + _install(unit)


def _install(unit: dict[str, Any]) -> str:
    return f"\n[Install]\nWantedBy={' '.join(unit['wantedBy'])}\n" if unit["wantedBy"] else ""


def _timer_text(unit: dict[str, Any]) -> str:
    return f"[Unit]\n{_section(_unit_config(unit))}\n[Timer]\n{_section(unit['timerConfig'])}" + _install(
        unit
    )


def _target_text(unit: dict[str, Any]) -> str:
    return f"[Unit]\n{_section(_unit_config(unit))}"


def _with_start_at(services: dict[str, Any], timers: dict[str, Any]) -> dict[str, Any]:
    """systemd.nix: a service's startAt defines its timer (wantedBy timers.target, OnCalendar)."""
    out = {k: json.loads(json.dumps(v)) for k, v in timers.items()}
    for name, service in services.items():
        start = service["startAt"]
        if start not in ([], ""):
            timer = out.setdefault(
                name,
                {
                    k: []
                    for k in (
                        "requires",
                        "wants",
                        "after",
                        "before",
                        "bindsTo",
                        "partOf",
                        "conflicts",
                        "requisite",
                        "documentation",
                        "wantedBy",
                    )
                }
                | {"description": "", "unitConfig": {}, "timerConfig": {}, "enable": True},
            )
            timer["wantedBy"] = [*timer["wantedBy"], "timers.target"]
            old = timer["timerConfig"].get("OnCalendar")
            new = start if isinstance(start, list) else [start]
            timer["timerConfig"]["OnCalendar"] = (
                old if isinstance(old, list) else [old] if old else []
            ) + new
    return out


def render(result: dict[str, Any], root: Path) -> list[str]:
    """Lay out /etc/systemd/system as NixOS's generateUnits does; returns the bootguard unit names."""
    system = root / "etc" / "systemd" / "system"
    system.mkdir(parents=True)
    shutil.copytree(HOST_UNITS, root / "usr" / "lib" / "systemd" / "system", symlinks=True)
    (root / "lib").symlink_to("usr/lib")
    shipped = set()
    # Every package in systemd.packages is bootguard here; nix/package.nix installs systemd/'s units.
    for package in result["packages"]:
        for unit in sorted(UNITS.glob("*.service")) + sorted(UNITS.glob("*.timer")):
            text = unit.read_text("utf-8").replace("/usr/bin/bootguard", f"{package}/bin/bootguard")
            (system / unit.name).write_text(text)
            shipped.add(unit.name)
    services: dict[str, Any] = result["services"]
    kinds = [
        ("service", services, _service_text),
        ("timer", _with_start_at(services, result["timers"]), _timer_text),
        ("target", result["targets"], _target_text),
    ]
    for kind, units, to_text in kinds:
        for name, unit in units.items():
            file = f"{name}.{kind}"
            if not unit["enable"]:
                (system / file).unlink(missing_ok=True)
                (system / file).symlink_to("/dev/null")
                continue
            if file in shipped or (root / "usr/lib/systemd/system" / file).exists():
                (system / f"{file}.d").mkdir(exist_ok=True)
                (system / f"{file}.d" / "overrides.conf").write_text(to_text(unit))
            else:
                (system / file).write_text(to_text(unit))
            for target in unit["wantedBy"]:
                (system / f"{target}.wants").mkdir(exist_ok=True)
                (system / f"{target}.wants" / file).symlink_to(f"../{file}")
    # The initrd's unit, as the initrd's own /etc/systemd/system would hold it (module-only).
    for name, unit in result["initrdServices"].items():
        (system / f"{name}.service").write_text(_service_text(unit, stage2=False))
    # The two paths outside the store every NixOS system has (environment.binsh, .usrbinenv).
    for path in ("bin/sh", "usr/bin/env"):
        _stub(root / path)
    names = sorted(
        p.name for p in system.iterdir() if p.name.startswith("bootguard") and not p.name.endswith(".d")
    )
    _stub_store_paths(root, names)
    return names


def _stub_store_paths(root: Path, names: list[str]) -> None:
    system = root / "etc" / "systemd" / "system"
    for name in names:
        for file in [system / name, *sorted((system / f"{name}.d").glob("*.conf"))]:
            for path in re.findall(r'^Exec\w*=[-@:+!]*"?(/nix/store/[^" ]+)', file.read_text("utf-8"), re.M):
                _stub(root / path.lstrip("/"))


def _stub(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)


def effective(system: Path, name: str) -> dict[str, list[str]]:
    """The settings of a unit after its drop-ins, list settings reset by an empty assignment."""
    out: dict[str, list[str]] = {}
    for file in [system / name, *sorted((system / f"{name}.d").glob("*.conf"))]:
        for raw in file.read_text("utf-8").splitlines():
            line = raw.strip()
            if line and not line.startswith(("#", "[")) and "=" in line:
                key, _, value = line.partition("=")
                out[key] = [] if value == "" else [*out.get(key, []), value]
    return out


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], tuple[Path, list[str]]]:
    """case name → (root, bootguard unit names), each case rendered when a test first asks for it."""
    results = evaluate(debian_nix(), _matrix_cases())
    done: dict[str, tuple[Path, list[str]]] = {}

    def get(name: str) -> tuple[Path, list[str]]:
        if name not in done:
            result = results[name]
            # NixOS refuses to build a system whose assertions fail: nothing to render then.
            assert result["failedAssertions"] == [], result["failedAssertions"]
            root = tmp_path_factory.mktemp(name)
            done[name] = (root, render(result, root))
        return done[name]

    return get


@pytest.mark.parametrize("case", MATRIX, ids=case_id)
def test_rendered_units_pass_systemd_analyze_verify(
    case: dict[str, Any], rendered: Callable[[str], tuple[Path, list[str]]]
) -> None:
    """Every bootguard unit as NixOS would install it passes the real `systemd-analyze verify`, and
    every service runs one command and every timer fires on one schedule (not the packaged one
    plus the module's)."""
    root, names = rendered(case_id(case))
    system = root / "etc" / "systemd" / "system"
    live = [n for n in names if not (system / n).is_symlink()]
    done = subprocess.run(
        ["systemd-analyze", "verify", f"--root={root}", *live],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "SYSTEMD_LOG_LEVEL": "notice"},
    )
    assert done.returncode == 0 and "Refusing" not in done.stderr, done.stderr
    for name in live:
        settings = effective(system, name)
        if name.endswith(".service"):
            assert len(settings.get("ExecStart", [])) == 1, (name, settings.get("ExecStart"))
        if name in ("bootguard-upgrade.service", "bootguard-commit.service") and case["gitops"]:
            # The module's options are the configuration: the packaged env file is dropped.
            assert settings["EnvironmentFile"] == [], (name, settings["EnvironmentFile"])
        if name in ("bootguard-upgrade.timer", "bootguard-commit.timer") and case["gitops"]:
            assert len(settings["OnCalendar"]) == 1, (name, settings["OnCalendar"])
        if name == "bootguard-boot-deadline.timer":
            assert settings["OnBootSec"] == ["15min"]
    wants = system / "sysinit.target.wants"
    assert (wants / "bootguard-keepalive.service").exists() is (not case["handOff"])
    # The shutdown recorder runs on every host: an orderly reboot is not a boot without a verdict.
    assert (system / "multi-user.target.wants" / "bootguard-shutdown.service").exists()
    assert (system / "timers.target.wants" / "bootguard-upgrade.timer").exists() is bool(case["gitops"])
    assert (system / "timers.target.wants" / "bootguard-commit.timer").exists() is bool(case["gitops"])
