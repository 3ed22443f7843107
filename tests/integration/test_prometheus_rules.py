"""The shipped alert rules, checked and unit-tested by the real `promtool` (Debian's prometheus package)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
RULES_DIR = Path(__file__).resolve().parents[2] / "monitoring" / "prometheus"
RULES = RULES_DIR / "bootguard.rules.yml"
TESTS = RULES_DIR / "tests" / "bootguard.rules.test.yml"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["promtool", *args], cwd=RULES_DIR, capture_output=True, text=True, timeout=60, check=False
    )


def alert_names(text: str) -> set[str]:
    return set(re.findall(r"^\s+(?:- )?alert(?:name)?: (\w+)", text, re.MULTILINE))


def test_rules_are_valid() -> None:
    done = promtool("check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(alert_names(RULES.read_text()))} rules found" in done.stdout


def test_every_alert_fires_for_the_broken_host_only() -> None:
    """promtool's unit tests: exact alert lists (labels and rendered annotations) per evaluation time."""
    done = promtool("test", "rules", str(TESTS.relative_to(RULES_DIR)))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_alert_has_a_unit_test_and_a_severity() -> None:
    rules = RULES.read_text()
    assert alert_names(rules) == alert_names(TESTS.read_text())
    assert rules.count("severity:") == len(alert_names(rules))


def test_a_wrong_expectation_fails(tmp_path: Path) -> None:
    """The harness can fail: the halted host's alert expected for the healthy one is a failure."""
    text = TESTS.read_text().replace("  - ../bootguard.rules.yml", f"  - {RULES}")
    broken = text.replace("{severity: critical, instance: bad,", "{severity: critical, instance: good,", 1)
    assert broken != text
    copy = tmp_path / "broken.test.yml"
    copy.write_text(broken)
    done = promtool("test", "rules", str(copy))
    assert done.returncode != 0 and "alertname: BootguardHalted" in done.stdout + done.stderr


def test_every_alert_is_documented() -> None:
    docs = (RULES_DIR.parents[1] / "docs" / "monitoring.md").read_text()
    assert [a for a in sorted(alert_names(RULES.read_text())) if f"`{a}`" not in docs] == []
