"""Fleet quarantine and canaries on real git: a bare remote and hosts A, B, C cloned from it.

A pushes; B and C run `bootguard upgrade` with their own `--host` name and state directory. The
build fails when `config.txt` says BROKEN; the switch copies the configuration to a per-host
marker. Verdicts travel only through the remote's refs/bootguard/verdicts/<host>.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bootguard.cli.main import main
from bootguard.errors import ExitCode
from bootguard.gitops import fleet_outbox
from bootguard.gitops.fleet_verdict import parse

pytestmark = pytest.mark.integration

BUILD_SH = """#!/bin/sh
if grep -q BROKEN config.txt; then echo "config.txt is BROKEN" >&2; exit 1; fi
echo "$BOOTGUARD_COMMIT" >> "$1"
"""
SWITCH_SH = """#!/bin/sh
cp config.txt "$1"
"""
REPO_ROOT = Path(__file__).resolve().parents[2]


def git(repo: Path, *args: str, input: str | None = None) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, input=input, check=False
    )
    if done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)}: {done.stderr}")
    return done.stdout.strip()


class Fleet:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.remote = tmp / "remote.git"
        self.switch = tmp / "switch.sh"
        self.switch.write_text(SWITCH_SH)
        git(tmp, "init", "-q", "--bare", "-b", "dev", str(self.remote))
        seed = tmp / "seed"
        git(tmp, "init", "-q", "-b", "dev", str(seed))
        self.identity(seed, "seed")
        (seed / "config.txt").write_text("value = 1\n")
        (seed / "build.sh").write_text(BUILD_SH)
        git(seed, "add", "-A")
        git(seed, "commit", "-qm", "seed")
        git(seed, "push", "-q", str(self.remote), "dev")
        for name in "abc":
            git(tmp, "clone", "-q", "-b", "dev", str(self.remote), str(self.repo(name)))
            self.identity(self.repo(name), name)

    @staticmethod
    def identity(repo: Path, name: str) -> None:
        git(repo, "config", "user.name", f"host {name}")
        git(repo, "config", "user.email", f"{name}@example.test")

    def repo(self, name: str) -> Path:
        return self.tmp / f"host-{name}"

    def state(self, name: str) -> Path:
        return self.tmp / f"state-{name}"

    def builds(self, name: str) -> list[str]:
        log = self.tmp / f"build-{name}.log"
        return log.read_text().split() if log.exists() else []

    def push_config(self, text: str, message: str) -> str:
        """Host A commits config.txt and pushes it; the new commit."""
        a = self.repo("a")
        git(a, "pull", "-q", "--ff-only", "origin", "dev")
        (a / "config.txt").write_text(text)
        git(a, "commit", "-qam", message)
        git(a, "push", "-q", "origin", "dev")
        return git(a, "rev-parse", "HEAD")

    def args(self, name: str, *extra: str) -> list[str]:
        return [
            "--state-dir",
            str(self.state(name)),
            "upgrade",
            "--repo",
            str(self.repo(name)),
            "--host",
            name,
            "--build-command",
            f"sh build.sh {self.tmp / f'build-{name}.log'}",
            "--switch-command",
            f"sh {self.switch} {self.tmp / f'running-{name}'}",
            *extra,
        ]

    def head(self, name: str) -> str:
        return git(self.repo(name), "rev-parse", "HEAD")

    def verdicts(self, host: str) -> list[dict[str, object]]:
        """Every verdict on the remote's ref of `host`, oldest first (strictly parsed)."""
        ref = f"refs/bootguard/verdicts/{host}"
        if not git(self.remote, "for-each-ref", ref):
            return []
        out = []
        for sha in git(self.remote, "rev-list", "--reverse", ref).split():
            blob = subprocess.run(
                ["git", "-C", str(self.remote), "cat-file", "blob", f"{sha}:verdict.json"],
                capture_output=True,
                check=True,
            ).stdout
            out.append(parse(blob).to_dict())
        return out

    def events(self, name: str) -> list[dict[str, object]]:
        path = self.state(name) / "events.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def plant(self, host_ref: str, files: dict[str, bytes], parent: str | None = None) -> str:
        """Write a verdict commit with `files` straight into the remote under refs/bootguard/verdicts/."""
        entries = []
        for name, data in files.items():
            blob = (
                subprocess.run(
                    ["git", "-C", str(self.remote), "hash-object", "-w", "--stdin"],
                    input=data,
                    capture_output=True,
                    check=True,
                )
                .stdout.decode()
                .strip()
            )
            entries.append(f"100644 blob {blob}\t{name}\n")
        tree = git(self.remote, "mktree", input="".join(entries))
        args = ["commit-tree", tree, "-m", "planted"] + (["-p", parent] if parent else [])
        env = {**os.environ, "GIT_AUTHOR_NAME": "x", "GIT_AUTHOR_EMAIL": "x@x", "GIT_COMMITTER_NAME": "x"}
        env["GIT_COMMITTER_EMAIL"] = "x@x"
        sha = subprocess.run(
            ["git", "-C", str(self.remote), *args], capture_output=True, text=True, check=True, env=env
        ).stdout.strip()
        git(self.remote, "update-ref", f"refs/bootguard/verdicts/{host_ref}", sha)
        return sha


def verdict_bytes(**fields: object) -> bytes:
    doc: dict[str, object] = {
        "format": "bootguard-verdict",
        "version": 1,
        "host": "x",
        "commit": "0" * 40,
        "outcome": "failed",
        "stage": "boot",
        "cause": "panic",
        "at": "2026-12-07T04:00:00+00:00",
        "bootguard": "0.1.0",
    }
    doc.update(fields)
    return json.dumps(doc).encode()


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Fleet:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    return Fleet(tmp_path)


def errors(capsys: pytest.CaptureFixture[str]) -> tuple[list[str], list[str]]:
    err = capsys.readouterr().err.splitlines()
    return (
        [ln for ln in err if ln.startswith("bootguard: error:")],
        [ln for ln in err if ln.startswith("bootguard: warning:")],
    )


def test_bad_commit_stops_at_the_first_host(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    """B fails c2 and publishes; C refuses c2 quoting B; the fix c3 deploys on C only once B blessed it."""
    c1 = fleet.head("c")
    c2 = fleet.push_config("value = BROKEN\n", "break it")
    assert main(fleet.args("b", "--publish-verdicts")) == ExitCode.ROLLED_BACK
    [published] = fleet.verdicts("b")
    assert published["commit"] == c2 and published["outcome"] == "failed" and published["stage"] == "build"
    assert published["host"] == "b" and "config.txt is BROKEN" in str(published["cause"])
    capsys.readouterr()

    # C refuses c2 without building it, naming the commit, the host, the stage and the cause.
    assert main(fleet.args("c")) == ExitCode.ROLLED_BACK
    [error], _ = errors(capsys)
    assert f"{c2[:12]} is quarantined: host b failed {c2[:12]} at build" in error
    assert "config.txt is BROKEN" in error
    assert fleet.head("c") == c1 and fleet.builds("c") == []
    assert fleet.events("c")[-1]["kind"] == "upgrade-failed" and "host b failed" in str(
        fleet.events("c")[-1]["message"]
    )
    assert main(["--state-dir", str(fleet.state("c")), "--json", "status"]) in (0, 1, 4, 5)
    report = json.loads(capsys.readouterr().out)
    [repo] = report["gitops"]
    held = repo["fleet"]["held"]
    assert held["kind"] == "quarantine" and held["host"] == "b" and held["failed_commit"] == c2
    assert held["stage"] == "build" and "BROKEN" in held["cause"]
    assert main(["--state-dir", str(fleet.state("c")), "status"]) in (0, 1, 4, 5)
    [line] = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("  note:     fleet: ")]
    assert f"quarantined: host b failed {c2[:12]} at build" in line and "(checked 20" in line

    # A pushes the fix. C (canaries 1) still refuses: c2 lies between C's commit and c3, unlifted.
    c3 = fleet.push_config("value = 3\n", "fix it")
    assert main(fleet.args("c", "--canaries", "1")) == ExitCode.ROLLED_BACK
    [error], _ = errors(capsys)
    assert f"{c3[:12]} is quarantined: host b failed {c2[:12]} at build" in error
    assert f"(it lies between the running {c1[:12]} and {c3[:12]})" in error
    # B's own failure does not hold B back: it takes c3, blesses it and publishes.
    assert main(fleet.args("b", "--publish-verdicts")) == 0
    assert [(v["commit"], v["outcome"]) for v in fleet.verdicts("b")] == [(c2, "failed"), (c3, "blessed")]
    # Now C deploys c3: the blessing lifts the quarantine and is the one canary C waits for.
    assert main(fleet.args("c", "--canaries", "1")) == 0
    assert fleet.head("c") == c3 and fleet.builds("c") == [c3]
    assert (fleet.tmp / "running-c").read_text() == "value = 3\n"
    capsys.readouterr()
    assert main(["--state-dir", str(fleet.state("c")), "--json", "status"]) in (0, 1, 4, 5)
    assert json.loads(capsys.readouterr().out)["gitops"][0]["fleet"] is None  # no hold left


def test_canaries_and_canary_hosts(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    """C waits for N blessings of exactly the commit, counting only --canary-hosts when given."""
    c2 = fleet.push_config("value = 2\n", "change")
    assert main(fleet.args("c", "--canaries", "1")) == ExitCode.ROLLED_BACK
    [error], _ = errors(capsys)
    assert f"{c2[:12]} waits for canaries: blessed by 0 of the 1 canaries needed (none yet)" in error
    assert main(fleet.args("b", "--publish-verdicts")) == 0
    # Only host a counts: b's blessing does not.
    assert main(fleet.args("c", "--canaries", "1", "--canary-hosts", "a")) == ExitCode.ROLLED_BACK
    [error], _ = errors(capsys)
    assert "blessed by 0 of the 1 canaries needed among a" in error
    assert main(fleet.args("c", "--canaries", "2")) == ExitCode.ROLLED_BACK
    [error], _ = errors(capsys)
    assert "blessed by 1 of the 2 canaries needed (b)" in error
    assert main(fleet.args("c", "--canaries", "1", "--canary-hosts", "a,b")) == 0
    assert fleet.head("c") == c2


def test_soak_and_ignore_quarantine(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    """--soak deploys an unblessed commit once it has been out long enough; --ignore-quarantine overrides."""
    c2 = fleet.push_config("value = 2\n", "change")
    assert main(fleet.args("c", "--canaries", "1", "--soak", "2s")) == ExitCode.ROLLED_BACK
    [error], _ = errors(capsys)
    assert "of the 2s soak without a failure" in error
    time.sleep(2.2)
    assert main(fleet.args("c", "--canaries", "1", "--soak", "2s")) == 0
    assert fleet.head("c") == c2
    # A failure verdict is a quarantine, which a soak never overrides; --ignore-quarantine does, for one run.
    c3 = fleet.push_config("value = BROKEN\n", "break it")
    assert main(fleet.args("b", "--publish-verdicts")) == ExitCode.ROLLED_BACK
    capsys.readouterr()
    assert main(fleet.args("c", "--soak", "0s")) == ExitCode.ROLLED_BACK
    [error], _ = errors(capsys)
    assert f"host b failed {c3[:12]}" in error
    assert main(fleet.args("c", "--ignore-quarantine")) == ExitCode.ROLLED_BACK  # its own build fails
    [error], warnings = errors(capsys)
    assert "failed to build" in error and any(
        "--ignore-quarantine: deploying although" in w for w in warnings
    )
    assert fleet.builds("c") == [c2]  # the log records successful builds only


def test_rejected_publish_is_retried_and_never_stops_the_upgrade(
    fleet: Fleet, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A remote that refuses verdict refs: B still upgrades, keeps the verdict pending, publishes later."""
    hook = fleet.remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\nif grep -q refs/bootguard/; then echo 'no verdicts here' >&2; exit 1; fi\n")
    hook.chmod(0o755)
    c2 = fleet.push_config("value = 2\n", "change")
    assert main(fleet.args("b", "--publish-verdicts")) == 0
    assert fleet.head("b") == c2
    _, warnings = errors(capsys)
    assert any("1 verdicts not published" in w and "retried on the next run" in w for w in warnings)
    assert fleet.verdicts("b") == []
    assert not (fleet.state("b") / "gitops-upgrade.ok").exists()  # the unit's pre-check will not skip
    assert main(["--state-dir", str(fleet.state("b")), "status"]) in (0, 1, 4, 5)
    assert "fleet: 1 verdicts not published yet (retried on the next upgrade)" in capsys.readouterr().out
    hook.unlink()
    assert main(fleet.args("b", "--publish-verdicts")) == 0  # nothing new on the branch: a no-op run
    assert [(v["commit"], v["outcome"]) for v in fleet.verdicts("b")] == [(c2, "blessed")]

    # Nothing new since: the outbox is not even read (no attrs, no git)...
    def untouched(*_: object) -> None:
        raise AssertionError("the outbox was read although gitops.json did not change")

    with monkeypatch.context() as m:
        m.setattr(fleet_outbox, "_history", untouched)
        assert main(fleet.args("b", "--publish-verdicts")) == 0
    # ...and a lost fleet.json republishes nothing twice (the remote's verdicts are compared).
    (fleet.state("b") / "fleet.json").unlink()
    assert main(fleet.args("b", "--publish-verdicts")) == 0
    assert len(fleet.verdicts("b")) == 1


def _upgrade_process(fleet: Fleet, name: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    # --ignore-quarantine: each host builds (and fails) every round instead of trusting the other.
    args = fleet.args(name, "--publish-verdicts", "--ignore-quarantine")
    return subprocess.Popen(
        [sys.executable, "-m", "bootguard", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_concurrent_publishes_never_conflict(fleet: Fleet) -> None:
    """B and C publish at the same moment, round after round: every verdict of both arrives."""
    pushed = []
    for n in range(3):
        pushed.append(fleet.push_config(f"value = BROKEN {n}\n", f"break {n}"))
        procs = [_upgrade_process(fleet, name) for name in "bc"]
        for p in procs:
            _, err = p.communicate(timeout=120)
            assert p.returncode == ExitCode.ROLLED_BACK, err
            assert "not published" not in err, err
    for name in "bc":
        got = [(v["commit"], v["outcome"], v["host"]) for v in fleet.verdicts(name)]
        assert got == [(c, "failed", name) for c in pushed]


def test_hostile_verdict_refs_are_ignored(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    """Garbage, huge, foreign, newer, mistyped and forged verdicts warn and change nothing."""
    c2 = fleet.push_config("value = 2\n", "change")
    fleet.plant("garbage", {"verdict.json": b"\x00\xff not json"})
    fleet.plant("huge", {"verdict.json": b"{" + b" " * (8 << 20) + b"}"})
    fleet.plant("foreign", {"verdict.json": b'{"format": "something-else"}'})
    fleet.plant("newer", {"verdict.json": verdict_bytes(host="newer", version=2, commit=c2)})
    fleet.plant("typed", {"verdict.json": verdict_bytes(host="typed", commit=c2, cause=["x"])})
    fleet.plant("empty", {"README": b"no verdict here"})
    # mallory claims to be b and fails c2: the ref name decides who spoke, so it is ignored.
    fleet.plant("mallory", {"verdict.json": verdict_bytes(host="b", commit=c2)})
    blob = git(fleet.remote, "hash-object", "-w", "--stdin", input="just a blob")
    git(fleet.remote, "update-ref", "refs/bootguard/verdicts/blobref", blob)
    assert main(fleet.args("c")) == 0
    assert fleet.head("c") == c2
    err, warnings = errors(capsys)
    assert err == []
    text = "\n".join(warnings)
    assert "verdicts/garbage: " in text and "not JSON" in text
    assert "verdicts/huge: " in text and "more than the 4096" in text and "(not read)" in text
    assert "not a bootguard-verdict (foreign data)" in text
    assert "version 2 is not supported" in text
    assert "'cause' must be a string" in text
    assert "no verdict.json in its tree" in text
    assert "verdicts/mallory: " in text and "forged: it says host 'b'" in text
    assert "refs/bootguard/verdicts/blobref: it points at a blob" in text


def test_a_genuine_failure_among_hostile_refs_still_quarantines(
    fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    """A host's ref with a garbage verdict on top of a real failure: the failure still counts."""
    c2 = fleet.push_config("value = 2\n", "change")
    good = fleet.plant("d", {"verdict.json": verdict_bytes(host="d", commit=c2, stage="boot", cause="panic")})
    fleet.plant("d", {"verdict.json": b"garbage"}, parent=good)
    assert main(fleet.args("c")) == ExitCode.ROLLED_BACK
    [error], warnings = errors(capsys)
    assert f"host d failed {c2[:12]} at boot on 2026-12-07T04:00:00+00:00: panic" in error
    assert any("ignored 1 of 2 verdicts in refs/bootguard/verdicts/d" in w for w in warnings)


def test_signed_verdicts_only(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    """With --verify-signatures only verdict commits signed by an allowed signer count."""
    if shutil.which("ssh-keygen") is None:
        pytest.fail("ssh-keygen is needed to make an SSH signing key (apt: openssh-client)")
    key = fleet.tmp / "signing"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    pub = (fleet.tmp / "signing.pub").read_text()
    signers = fleet.tmp / "allowed_signers"
    signers.write_text(f"a@example.test {pub}b@example.test {pub}")
    for name in "abc":
        git(fleet.repo(name), "config", "gpg.format", "ssh")
        git(fleet.repo(name), "config", "gpg.ssh.allowedSignersFile", str(signers))
    for name in "ab":
        git(fleet.repo(name), "config", "user.signingkey", str(key))
        git(fleet.repo(name), "config", "commit.gpgsign", "true")
    c2 = fleet.push_config("value = BROKEN\n", "break it")
    assert main(fleet.args("b", "--publish-verdicts", "--verify-signatures")) == ExitCode.ROLLED_BACK
    tip = git(fleet.remote, "rev-parse", "refs/bootguard/verdicts/b")
    assert (
        "Good"
        in subprocess.run(
            ["git", "-C", str(fleet.repo("b")), "verify-commit", tip],
            capture_output=True,
            text=True,
            check=False,
        ).stderr
    )
    # An unsigned verdict of host m that fails the fix c3.
    c3 = fleet.push_config("value = 3\n", "fix it")
    fleet.plant("m", {"verdict.json": verdict_bytes(host="m", commit=c3, cause="unsigned claim")})
    capsys.readouterr()
    assert main(fleet.args("c", "--verify-signatures")) == ExitCode.ROLLED_BACK
    [error], warnings = errors(capsys)
    assert f"host b failed {c2[:12]}" in error  # b's signed verdict counts
    assert any("of m on" in w and "not signed by an allowed signer" in w for w in warnings)
    assert main(fleet.args("b", "--publish-verdicts", "--verify-signatures")) == 0  # b blesses c3
    capsys.readouterr()
    assert main(fleet.args("c")) == ExitCode.ROLLED_BACK  # unverified, m's claim quarantines c3
    [error], _ = errors(capsys)
    assert "host m failed" in error and "unsigned claim" in error
    assert main(fleet.args("c", "--verify-signatures")) == 0  # verified: only b's verdicts count
    assert fleet.head("c") == c3


def test_boot_failure_verdict_from_the_record(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    """A boot failure recorded in gitops.json (as settling a failed trial does) is published and honoured."""
    import attrs

    from bootguard.gitops.record import CommitVerdict, FailedCommit, GitopsRecord

    c2 = fleet.push_config("value = 2\n", "change")
    repo_b = os.path.realpath(fleet.repo("b"))
    record = GitopsRecord.load(fleet.state("b"))
    at = "2026-12-07T04:10:00+00:00"
    failed = attrs.evolve(record.get(repo_b), failed=FailedCommit(c2, "boot", "watchdog-reset", at))
    verdict = CommitVerdict(c2, "failed", "boot", "watchdog-reset", at)
    record.with_repo(repo_b, failed.with_verdict(verdict)).save(fleet.state("b"))
    assert main(fleet.args("b", "--publish-verdicts")) == ExitCode.ROLLED_BACK  # not retried; published
    assert (c2, "failed", "boot", "watchdog-reset") in [
        (v["commit"], v["outcome"], v["stage"], v["cause"]) for v in fleet.verdicts("b")
    ]
    capsys.readouterr()
    assert main(fleet.args("c")) == ExitCode.ROLLED_BACK
    [error], _ = errors(capsys)
    assert f"host b failed {c2[:12]} at boot on 2026-12-07T04:10:00+00:00: watchdog-reset" in error
