"""The metrics, alert rules and dashboard against a real Prometheus and real node exporters.

Four sandbox hosts are brought into their states by real bootguard runs (tests/integration/
promfleet.py): healthy, trying (a trial with a failed boot), rolledback (fell back to golden, watchdog
reset, failing upgrade) and halted (golden failed validation, a queued notification, a commit never
pushed). One `prometheus-node-exporter` per host serves the textfile those runs wrote; one
`prometheus` scrapes them every second and evaluates the shipped rules every second, with every
`for:` set to 0s. Then, through the HTTP API: every dashboard query returns the expected hosts and
values, every alert expression selects exactly the broken hosts, and the firing alerts are exactly
those. Servers listen on 127.0.0.1 only, on free ports, and are stopped at the end; the whole module
is bounded (DEADLINE).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bootguard.seams import proc
from tests.integration.promfleet import HOSTS, Fleet

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "monitoring" / "prometheus" / "bootguard.rules.yml"
DASHBOARD = REPO / "monitoring" / "grafana" / "bootguard-fleet.json"
DEADLINE = 60.0  # seconds for the servers to come up and evaluate the rules once

ALL = set(HOSTS)
# alert → the hosts it must fire for (the healthy host is in none)
EXPECTED_ALERTS: dict[str, set[str]] = {
    "BootguardFellBackToGolden": {"rolledback"},
    "BootguardTrialFailing": {"trying"},
    "BootguardHalted": {"halted"},
    "BootguardValidationFailing": {"halted"},
    "BootguardValidationNotRun": {"trying", "rolledback"},
    "BootguardWatchdogReset": {"rolledback"},
    "BootguardUpgradeFailing": {"rolledback"},
    "BootguardUpgradeStale": {"rolledback"},
    "BootguardUpgradeTimerNotRunning": set(),  # needs node-exporter's systemd collector: not run here
    "BootguardCommitNotPushed": {"halted"},
    "BootguardNotificationsStuck": {"halted"},
    "BootguardMetricsSourceUnreadable": set(),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    def api(self, path: str, **params: str) -> Any:
        doc = get(f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}")
        assert doc["status"] == "success", doc
        return doc["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", (expr, data)
        result: list[dict[str, Any]] = data["result"]
        return result

    def by_instance(self, expr: str) -> dict[str, float]:
        """instance → value (one series per host expected)."""
        out: dict[str, float] = {}
        for s in self.query(expr):
            inst = s["metric"].get("instance")
            assert inst not in out, f"{expr}: two series for {inst}"
            out[inst] = float(s["value"][1])
        return out


def _processes_stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    root = tmp_path_factory.mktemp("fleet")
    home = root / "home"
    home.mkdir()
    real = proc.run

    def run(argv: Any, **kw: Any) -> proc.Completed:
        # No systemd as PID 1 here: systemctl is the one thing faked (as in test_validator_cli_real).
        args = tuple(str(a) for a in argv)
        if args[0] != "systemctl":
            return real(argv, **kw)
        return proc.Completed(args, 0, "masked\n" if "is-enabled" in args else "", "")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(proc, "run", run)
        mp.delenv("NOTIFY_SOCKET", raising=False)
        mp.setenv("HOME", str(home))
        mp.setenv("GIT_CONFIG_NOSYSTEM", "1")
        mp.delenv("XDG_CONFIG_HOME", raising=False)
        mp.setenv("BOOTGUARD_METRICS_FILE", "")  # each Host.cli sets its own
        f = Fleet(root / "hosts")
        f.build()
    return f


def _config(fleet: Fleet, ports: dict[str, int], rules: Path) -> str:
    targets = "\n".join(
        f"      - targets: ['127.0.0.1:{ports[name]}']\n        labels: {{instance: {name}}}"
        for name in HOSTS
    )
    return f"""
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: ['{rules}']
scrape_configs:
  - job_name: node
    static_configs:
{targets}
"""


@pytest.fixture(scope="module")
def prom(fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    work = tmp_path_factory.mktemp("prometheus")
    # The shipped rules with every `for:` at 0s, so they fire on the first evaluation.
    rules = work / "bootguard.rules.yml"
    rules.write_text(re.sub(r"(?m)^(\s+for:) \S+$", r"\1 0s", RULES.read_text()))
    procs: list[subprocess.Popen[bytes]] = []
    ports = {name: free_port() for name in HOSTS}
    log = (work / "servers.log").open("wb")
    try:
        for name, host in fleet.hosts.items():
            procs.append(
                subprocess.Popen(
                    [
                        "prometheus-node-exporter",
                        f"--web.listen-address=127.0.0.1:{ports[name]}",
                        "--collector.disable-defaults",
                        "--collector.textfile",
                        f"--collector.textfile.directory={host.textfile_dir}",
                    ],
                    stdout=log,
                    stderr=log,
                )
            )
        port = free_port()
        (work / "prometheus.yml").write_text(_config(fleet, ports, rules))
        procs.append(
            subprocess.Popen(
                [
                    "prometheus",
                    f"--config.file={work / 'prometheus.yml'}",
                    f"--storage.tsdb.path={work / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--storage.tsdb.retention.time=1h",
                ],
                stdout=log,
                stderr=log,
            )
        )
        p = Prometheus(f"http://127.0.0.1:{port}")
        _wait_ready(p, procs, work / "servers.log")
        yield p
    finally:
        _processes_stop(procs)
        log.close()


def _wait_ready(p: Prometheus, procs: list[subprocess.Popen[bytes]], log: Path) -> None:
    """Until every host is scraped twice (increase() needs two samples) and the rules were evaluated."""
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        dead = [x.args for x in procs if x.poll() is not None]
        assert not dead, f"server exited: {dead}\n{log.read_text()[-3000:]}"
        try:
            scraped = p.by_instance("count_over_time(bootguard_metrics_timestamp_seconds[1m])")
            evaluated = p.api("rules")["groups"]
            if (
                set(scraped) == ALL
                and min(scraped.values()) >= 2
                and evaluated
                and all(r.get("lastEvaluation", "").startswith("20") for r in evaluated[0]["rules"])
                and p.query('ALERTS{alertname="BootguardHalted"}')
            ):
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.5)
    raise AssertionError(f"Prometheus not ready within {DEADLINE} s\n{log.read_text()[-3000:]}")


# --- the metrics each host exports ----------------------------------------------------------------


def test_each_host_tells_its_state(prom: Prometheus, fleet: Fleet) -> None:
    assert prom.by_instance("bootguard_running_generation") == {
        "healthy": 2,
        "trying": 2,
        "rolledback": 1,
        "halted": 1,
    }
    assert prom.by_instance("bootguard_running_golden") == {
        "healthy": 0,
        "trying": 0,
        "rolledback": 1,
        "halted": 1,
    }
    assert prom.by_instance("bootguard_halted") == {"healthy": 0, "trying": 0, "rolledback": 0, "halted": 1}
    assert prom.by_instance("bootguard_trial_tries_left") == {"trying": 1}
    assert prom.by_instance("bootguard_rollbacks_total") == {
        "healthy": 0,
        "trying": 0,
        "rolledback": 1,
        "halted": 0,
    }
    assert prom.by_instance('bootguard_boot_failures_total{cause="watchdog-reset"}')["rolledback"] == 1
    assert prom.by_instance('bootguard_boot_failures_total{cause="check-failed"}')["halted"] == 1
    assert prom.by_instance('bootguard_boot_failures_total{cause="failed-before-bootguard"}') == {
        "healthy": 0,
        "trying": 1,
        "rolledback": 1,
        "halted": 0,
    }
    running = {s["metric"]["instance"]: s["metric"] for s in prom.query("bootguard_running_info")}
    assert running["healthy"]["entry"] == "nixos-generation-2.conf"
    assert running["healthy"]["commit"] == fleet.deployed  # C1: the blessed trial's commit
    deployed = {
        s["metric"]["instance"]: s["metric"]["commit"] for s in prom.query("bootguard_gitops_deployed_info")
    }
    assert deployed == {"healthy": fleet.deployed}
    failed = prom.query("bootguard_gitops_failed_commit_info")
    assert [(s["metric"]["instance"], s["metric"]["commit"], s["metric"]["stage"]) for s in failed] == [
        ("rolledback", fleet.broken, "build")
    ]
    assert prom.by_instance("bootguard_gitops_commits_ahead") == {
        "healthy": 0,
        "trying": 0,
        "rolledback": 0,
        "halted": 1,
    }
    assert prom.by_instance("bootguard_gitops_commits_behind")["rolledback"] == 3
    assert prom.by_instance("bootguard_notifications_queued")["halted"] == 1
    checks = {
        (s["metric"]["instance"], s["metric"]["check"]): s["value"][1]
        for s in prom.query("bootguard_check_success")
    }
    assert checks[("halted", "service")] == "0" and checks[("healthy", "service")] == "1"


# --- the alert rules ------------------------------------------------------------------------------


def _alert_rules(prom: Prometheus) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = [r for g in prom.api("rules")["groups"] for r in g["rules"]]
    assert all(r["type"] == "alerting" and r["health"] == "ok" for r in rules), rules
    return rules


def test_every_alert_expression_selects_exactly_the_broken_hosts(prom: Prometheus) -> None:
    rules = _alert_rules(prom)
    assert {r["name"] for r in rules} == set(EXPECTED_ALERTS)
    got = {r["name"]: {s["metric"]["instance"] for s in prom.query(r["query"])} for r in rules}
    assert got == EXPECTED_ALERTS


def test_the_alerts_fire_for_the_broken_hosts_and_never_for_the_healthy_one(prom: Prometheus) -> None:
    firing = {
        (a["labels"]["alertname"], a["labels"]["instance"])
        for a in prom.api("alerts")["alerts"]
        if a["state"] == "firing"
    }
    assert firing == {(name, host) for name, hosts in EXPECTED_ALERTS.items() for host in hosts}
    assert not any(host == "healthy" for _, host in firing)


# --- the dashboard --------------------------------------------------------------------------------


def _targets(dash: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(panel title, refId, expr) of every query, rows' nested panels and annotations included."""
    out = []
    panels = list(dash["panels"])
    while panels:
        p = panels.pop(0)
        panels.extend(p.get("panels", []))
        for t in p.get("targets", []):
            out.append((p["title"], t["refId"], t["expr"]))
    for a in dash["annotations"]["list"]:
        out.append(("annotation " + a["name"], "", a["expr"]))
    return out


# (panel, refId) → the hosts whose series the query returns in this fleet
ALL_HOSTS = ALL
DASHBOARD_EXPECTED: dict[tuple[str, str], set[str]] = {
    ("Fleet: one line per host", "A"): ALL_HOSTS,
    ("Fleet: one line per host", "B"): ALL_HOSTS,
    ("Fleet: one line per host", "C"): ALL_HOSTS,
    ("Fleet: one line per host", "D"): ALL_HOSTS,
    ("Fleet: one line per host", "E"): {"healthy", "halted"},
    ("Fleet: one line per host", "F"): ALL_HOSTS,
    ("Firing bootguard alerts", "A"): {"trying", "rolledback", "halted"},
    ("Running generation", "A"): ALL_HOSTS,
    ("Running commit", "A"): ALL_HOSTS,
    ("Running commit", "B"): {"healthy"},
    ("Golden", "A"): ALL_HOSTS,
    ("Golden", "B"): ALL_HOSTS,
    ("Trial", "A"): ALL_HOSTS,
    ("Trial", "B"): {"trying"},
    ("Trial", "C"): ALL_HOSTS,
    ("Halted / fell back", "A"): ALL_HOSTS,
    ("Halted / fell back", "B"): ALL_HOSTS,
    ("Last validation", "A"): {"healthy", "halted"},
    ("Last validation", "B"): {"healthy", "halted"},
    ("Last validation", "C"): {"healthy", "halted"},
    ("Checks in the last validation", "A"): {"healthy", "halted"},
    ("Checks in the last validation", "B"): {"healthy", "halted"},
    ("Failed boots by cause", "A"): set(),  # summed over hosts: one series per cause, checked below
    ("Upgrade lag", "A"): ALL_HOSTS,
    ("Upgrade lag", "B"): ALL_HOSTS,
    ("Upgrade lag", "C"): {"healthy"},
    ("GitOps", "A"): {"healthy", "rolledback"},
    ("GitOps", "B"): {"rolledback"},
    ("GitOps", "C"): ALL_HOSTS,
    ("GitOps", "D"): ALL_HOSTS,
    ("Events of $host (bootguard timeline)", "A"): ALL_HOSTS,
    ("Events of $host (bootguard timeline)", "B"): {"healthy"},
    ("Events of $host (bootguard timeline)", "C"): {"healthy", "halted"},
    ("Events of $host (bootguard timeline)", "D"): {"rolledback"},
    ("Events of $host (bootguard timeline)", "E"): {"rolledback"},
    ("Events of $host (bootguard timeline)", "F"): {"healthy", "rolledback"},
    ("Events of $host (bootguard timeline)", "G"): {"healthy", "trying", "halted"},
    ("Events of $host (bootguard timeline)", "H"): {"healthy"},
    ("annotation bootguard alerts", ""): {"trying", "rolledback", "halted"},
}


def _grafana(expr: str, host: str) -> str:
    """What Grafana sends for one host selected ($__rate_interval at a 1 s scrape is 4 × 1 s)."""
    return expr.replace("$host", host).replace("$__rate_interval", "4s")


def test_every_dashboard_query_returns_the_expected_series(prom: Prometheus) -> None:
    dash = json.loads(DASHBOARD.read_text())
    targets = _targets(dash)
    assert {(title, ref) for title, ref, _ in targets} == set(DASHBOARD_EXPECTED)
    for title, ref, expr in targets:
        got = {s["metric"].get("instance") for s in prom.query(_grafana(expr, ".*"))}
        if DASHBOARD_EXPECTED[(title, ref)]:
            assert got == DASHBOARD_EXPECTED[(title, ref)], (title, ref, expr)
        # one host selected: only that host's series
        for host in HOSTS:
            one = {s["metric"].get("instance") for s in prom.query(_grafana(expr, host))}
            assert one <= {host, None}, (title, ref, host, one)
    causes = prom.query(_grafana(next(e for t, _, e in targets if t == "Failed boots by cause"), ".*"))
    assert {s["metric"]["cause"] for s in causes} == {
        "panic",
        "watchdog-reset",
        "initrd-failure",
        "failed-before-bootguard",
        "check-failed",
        "deadline",
        "unknown",
    }


def test_the_host_variable_lists_every_host(prom: Prometheus) -> None:
    dash = json.loads(DASHBOARD.read_text())
    host_var = next(v for v in dash["templating"]["list"] if v["name"] == "host")
    metric = re.fullmatch(r"label_values\((\w+), instance\)", host_var["definition"])
    assert metric is not None
    values = prom.api("label/instance/values", **{"match[]": metric.group(1)})
    assert set(values) == ALL


def test_servers_listen_on_loopback_only(prom: Prometheus, fleet: Fleet) -> None:
    assert urllib.parse.urlparse(prom.url).hostname == "127.0.0.1"
    targets = prom.api("targets")["activeTargets"]
    assert {t["labels"]["instance"] for t in targets} == ALL
    assert all(t["health"] == "up" and t["scrapeUrl"].startswith("http://127.0.0.1:") for t in targets)
    # the fleet fixture restored the environment (tests/conftest.py's file, not a host's)
    assert not os.environ["BOOTGUARD_METRICS_FILE"].startswith(str(fleet.root))
