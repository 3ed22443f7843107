"""checks.toml and greenboot-style drop-in directories → ValidatorConfig."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bootguard.errors import ConfigError
from bootguard.validator import config
from bootguard.validator import spec as s

EXAMPLE = """
[validator]
deadline = 120
on_failure = "reboot-after:30"
metrics_file = "/tmp/x.prom"

[[check]]
name = "sshd"
kind = "command"
command = ["systemctl", "is-active", "sshd"]
timeout = 5
retries = 2
backoff = 0.5
grace = 10

[[check]]
name = "web"
kind = "http"
url = "http://127.0.0.1:8080/health"
expect = [200, 204]
required = false
after = ["sshd"]

[[check]]
name = "localhost"
kind = "dns"

[[check]]
name = "root-space"
kind = "disk"
path = "/"
min_free_percent = 5

[[notify]]
kind = "ntfy"
url = "https://ntfy.example"
topic = "hosts"
token_file = "ntfy-token"
"""


def _load(tmp_path: Path, text: str) -> s.ValidatorConfig:
    path = tmp_path / "checks.toml"
    path.write_text(text)
    return config.load(str(path))


def test_example_parses_every_documented_key(tmp_path: Path) -> None:
    """The documented example yields typed checks, policy, deadline and notifier."""
    cfg = _load(tmp_path, EXAMPLE)
    assert cfg.deadline == 120
    assert cfg.on_failure == s.FailurePolicy(s.FailureMode.REBOOT_AFTER, 30.0)
    assert cfg.metrics_file == "/tmp/x.prom"
    sshd = cfg.check("sshd")
    assert sshd is not None
    assert sshd.target == s.CommandTarget(("systemctl", "is-active", "sshd"))
    assert (sshd.required, sshd.timeout, sshd.retries, sshd.backoff, sshd.grace) == (True, 5, 2, 0.5, 10)
    web = cfg.check("web")
    assert web is not None and web.target == s.HttpTarget("http://127.0.0.1:8080/health", (200, 204))
    assert web.after == ("sshd",) and web.required is False
    assert cfg.check("localhost") == s.CheckSpec("localhost", s.CheckKind.DNS, s.DnsTarget("localhost"))
    assert cfg.notifiers[0].name == "ntfy" and cfg.notifiers[0].get("token_file") == "ntfy-token"


def test_minimal_check_gets_defaults(tmp_path: Path) -> None:
    """A check with only name/kind/command is required, 10 s timeout, no retries."""
    cfg = _load(tmp_path, '[[check]]\nname = "t"\nkind = "command"\ncommand = ["true"]\n')
    c = cfg.checks[0]
    assert (c.required, c.timeout, c.retries, c.grace, c.after) == (True, 10.0, 0, 0.0, ())
    assert cfg.on_failure.mode is s.FailureMode.REBOOT and cfg.deadline == 300


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (
            '[[check]]\nname = "a"\nkind = "command"\ncommand = ["true"]\ntimout = 3\n',
            "unknown option 'timout'",
        ),
        ('[[check]]\nname = "a"\nkind = "smoke"\n', "unknown kind 'smoke'"),
        ('[[check]]\nname = "a"\nkind = "command"\ncommand = []\n', "non-empty argv"),
        ('[[check]]\nname = "a"\nkind = "tcp"\nport = 70000\n', "between 1 and 65535"),
        ('[[check]]\nname = "a"\nkind = "disk"\n', "min_free_mb"),
        ('[[check]]\nname = "a"\nkind = "http"\nurl = "http://x"\nexpect = [999]\n', "status codes"),
        ('[[check]]\nname = "a"\nkind = "path"\npath = "/"\nrequired = "yes"\n', "true or false"),
        ('[[check]]\nname = "a"\nkind = "path"\npath = "/"\nafter = ["b"]\n', "unknown check 'b'"),
        ('[validator]\non_failure = "explode"\n', "on_failure"),
        ('[check]\nname = "a"\n', "array of tables"),
        ('[[notify]]\nkind = "ntfy"\nurl = "u"\ntopic = "t"\ntoken = "hunter2"\n', "secret"),
        ('[[notify]]\nkind = "smtp"\nhost = "h"\n', "needs option"),
        ("[[check]\n", "checks.toml"),
    ],
)
def test_bad_configuration_is_a_config_error_naming_the_option(
    tmp_path: Path, text: str, needle: str
) -> None:
    """Every invalid configuration raises ConfigError whose message names what is wrong."""
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, text)
    assert needle in info.value.message


def test_dependency_cycle_is_rejected(tmp_path: Path) -> None:
    """Checks that wait for each other would never run: the cycle is named."""
    text = "".join(
        f'[[check]]\nname = "{n}"\nkind = "path"\npath = "/"\nafter = ["{d}"]\n'
        for n, d in (("a", "b"), ("b", "a"))
    )
    with pytest.raises(ConfigError, match="cycle: a → b → a"):
        _load(tmp_path, text)


def test_duplicate_names_are_rejected(tmp_path: Path) -> None:
    """Two checks with one name would make results and dependencies ambiguous."""
    text = '[[check]]\nname = "a"\nkind = "path"\npath = "/"\n' * 2
    with pytest.raises(ConfigError, match="defined twice"):
        _load(tmp_path, text)


def test_missing_default_file_means_no_declared_checks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without /etc/bootguard/checks.toml the validator still runs (drop-ins only)."""
    monkeypatch.setattr(config, "DEFAULT_CONFIG", str(tmp_path / "absent" / "checks.toml"))
    cfg = config.load()
    assert cfg.checks == () and cfg.source is None


def test_missing_named_file_is_an_error(tmp_path: Path) -> None:
    """`--config FILE` naming a missing file is an error, not an empty configuration."""
    with pytest.raises(ConfigError, match="no such configuration file"):
        config.load(str(tmp_path / "nope.toml"))


def _script(path: Path, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    os.chmod(path, mode)


def test_greenboot_dropins_become_script_checks(tmp_path: Path) -> None:
    """required.d/wanted.d executables (and *.sh files, as greenboot runs them) become checks, name order."""
    green = tmp_path / "greenboot" / "check"
    _script(green / "required.d" / "20-b.sh", 0o644)
    _script(green / "required.d" / "10-a", 0o755)
    _script(green / "required.d" / ".hidden", 0o755)
    _script(green / "required.d" / "notes.txt", 0o644)
    _script(green / "wanted.d" / "50-w", 0o755)
    cfg = _load(tmp_path, f'[validator]\ndropin_dirs = ["{green}"]\nscript_timeout = 7\n')
    assert [(c.name, c.required) for c in cfg.checks] == [
        ("required.d/10-a", True),
        ("required.d/20-b.sh", True),
        ("wanted.d/50-w", False),
    ]
    assert cfg.checks[1].target == s.ScriptTarget(str(green / "required.d" / "20-b.sh"), "/bin/bash")
    assert all(c.timeout == 7 and c.after == () for c in cfg.checks)


def test_sequential_dropins_chain_in_name_order(tmp_path: Path) -> None:
    """sequential_scripts makes each drop-in wait for the previous one, as greenboot runs them."""
    d = tmp_path / "check"
    _script(d / "required.d" / "1", 0o755)
    _script(d / "required.d" / "2", 0o755)
    cfg = _load(tmp_path, "[validator]\nsequential_scripts = true\n")
    assert [c.after for c in cfg.checks] == [(), ("required.d/1",)]


def test_default_dropin_dir_sits_next_to_the_config(tmp_path: Path) -> None:
    """<config dir>/check/required.d is read without configuration."""
    _script(tmp_path / "check" / "required.d" / "ok", 0o755)
    cfg = _load(tmp_path, "")
    assert [c.name for c in cfg.checks] == ["required.d/ok"]


@given(st.floats(min_value=0, max_value=1e6, allow_nan=False))
def test_failure_policy_round_trips(delay: float) -> None:
    """reboot-after:SECONDS parses back to the same policy from its own text."""
    policy = s.FailurePolicy(s.FailureMode.REBOOT_AFTER, float(f"{delay:g}"))
    assert s.FailurePolicy.parse(str(policy)) == policy


@pytest.mark.parametrize(
    "text", ["reboot-after", "reboot-after:", "reboot-after:-1", "reboot-after:x", "Reboot"]
)
def test_failure_policy_rejects_malformed(text: str) -> None:
    """Malformed on_failure values are refused (None), never guessed."""
    assert s.FailurePolicy.parse(text) is None
