"""Three sandbox hosts in different states, made by real bootguard runs, for the Prometheus tests.

Each host is a Demo sandbox (ESP tree, efivarfs-format directory, state directory, watchdog sysfs,
bootguard's model of systemd-boot) plus a clone of one shared configuration remote. Between
simulated boots the real CLI runs: `initrd`, `pin-golden`, `trial`, `validate` (real checks, real
notifier to a closed loopback port), `upgrade` (real git, real build and switch scripts) and
`commit`. Every run writes the host's textfile (BOOTGUARD_METRICS_FILE) the node exporter reads.

- healthy: generation 1 golden; commits and pushes a change; upgrades to a new commit; a trial of
  generation 2 (built from that commit) boots, passes validation and is blessed.
- trying: a trial of generation 2 (3 tries) panicked once; its second try is booted and not validated
  yet; the hourly `bootguard commit` (nothing to commit) runs.
- rolledback: its first upgrade, to the admin's broken commit, fails (build) and is rolled back; a
  trial of generation 2 panics, then hangs (watchdog reset): the loader falls back to golden; that
  boot is not validated; the hourly upgrade runs again (the broken commit is not rebuilt).
- halted: golden fails validation (halted; the notification cannot be delivered and is queued);
  an operator's commit from yesterday was committed by `bootguard commit` but never pushed.
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import subprocess
import time
import uuid
from pathlib import Path

from bootguard.cli.main import main
from bootguard.services.demo import Demo
from tests.integration.test_gitops import BUILD_SH, SWITCH_SH, run_git

HOSTS = ("healthy", "trying", "rolledback", "halted")
LOADER = "systemd-boot 257.13-1"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


CHECKS = """
[validator]
deadline = 20
on_failure = "reboot"
[[check]]
name = "proc"
kind = "path"
path = "/proc/self"
[[check]]
name = "service"
kind = "command"
command = ["sh", "-c", "{command}"]
timeout = 5
[[notify]]
name = "ops"
kind = "webhook"
url = "http://127.0.0.1:{port}/hook"
timeout = 2
"""


class Host:
    def __init__(self, root: Path, name: str, remote: Path) -> None:
        self.name, self.root = name, root / name
        self.root.mkdir(parents=True)
        self.textfile_dir = self.root / "textfile"
        self.textfile_dir.mkdir()
        self.prom = self.textfile_dir / "bootguard.prom"
        self.demo = Demo(str(self.root / "sandbox"), LOADER, lambda _: None)
        self.repo = self.root / "config"
        run_git(self.root, "clone", "-q", "-b", "dev", str(remote), str(self.repo))
        run_git(self.repo, "config", "user.name", f"host {name}")
        run_git(self.repo, "config", "user.email", f"{name}@example.test")
        self.tools = self.root / "tools"
        self.tools.mkdir()
        (self.tools / "switch.sh").write_text(SWITCH_SH)

    def cli(self, *args: str) -> int:
        """A real bootguard run on this host's sandbox; its metrics go to this host's textfile."""
        os.environ["BOOTGUARD_METRICS_FILE"] = str(self.prom)
        d = self.demo
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            return main(["--esp", d.esp, "--efivars", d.efivars, "--state-dir", d.state, *args])

    def upgrade(self) -> int:
        return self.cli(
            "upgrade",
            "--repo",
            str(self.repo),
            "--build-command",
            f"sh build.sh {self.root / 'build.log'}",
            "--switch-command",
            f"sh {self.tools / 'switch.sh'} {self.root / 'running-config'} {{mode}}",
        )

    def validate(self, *, passing: bool) -> int:
        config = self.root / "checks.toml"
        command = "echo up" if passing else "echo down >&2; exit 1"
        config.write_text(CHECKS.format(command=command, port=closed_port()))
        return self.cli("validate", "--config", str(config))

    def boot(self, fate: str) -> None:
        """One simulated boot: panic, hang, good (`mark good`), validate-pass, validate-fail, unvalidated."""
        d = self.demo
        d.loader.boot()
        if fate == "panic":
            return
        self.cli(
            "initrd", "--boot-id", str(uuid.uuid4()), "--watchdog-sysfs", d.sysfs, "--reboot-command", "true"
        )
        d._bootstatus(0)
        if fate == "hang":
            d._bootstatus(32)  # CARDRESET: the next initrd step sees the watchdog reset
        elif fate == "good":
            self.cli("mark", "good")
        elif fate in ("validate-pass", "validate-fail"):
            self.validate(passing=fate == "validate-pass")

    def start_on_golden(self) -> None:
        self.demo.generation(1)
        self.boot("good")
        self.cli("pin-golden")


class Fleet:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.remote = root / "remote.git"
        run_git(root, "init", "-q", "--bare", "-b", "dev", str(self.remote))
        self.admin = root / "admin"
        run_git(root, "init", "-q", "-b", "dev", str(self.admin))
        run_git(self.admin, "config", "user.name", "admin")
        run_git(self.admin, "config", "user.email", "admin@example.test")
        self.admin_commit("seed", "value = 1\n", build=True)
        self.hosts = {name: Host(root, name, self.remote) for name in HOSTS}

    def admin_commit(self, message: str, config: str, *, build: bool = False) -> str:
        if not build:
            run_git(self.admin, "pull", "-q", "--rebase", str(self.remote), "dev")
        (self.admin / "config.txt").write_text(config)
        if build:
            (self.admin / "build.sh").write_text(BUILD_SH)
        run_git(self.admin, "add", "-A")
        run_git(self.admin, "commit", "-qm", message)
        run_git(self.admin, "push", "-q", str(self.remote), "dev")
        return run_git(self.admin, "rev-parse", "HEAD")

    def build(self) -> None:
        healthy, trying, rolled, halted = (self.hosts[n] for n in HOSTS)
        for h in self.hosts.values():
            h.start_on_golden()
        # healthy: a local change committed and pushed, then an upgrade to the admin's new commit
        (healthy.repo / "local.txt").write_text("from the host\n")
        assert healthy.cli("commit", "--repo", str(healthy.repo), "--push") == 0
        good = self.admin_commit("value 2", "value = 2\n")
        assert healthy.upgrade() == 0
        deployed = run_git(healthy.repo, "rev-parse", "HEAD")
        # rolledback: the admin's next commit is broken; the host's first upgrade fails and rolls back
        self.broken = self.admin_commit("break it", "value = BROKEN\n")
        assert rolled.upgrade() == 7
        # halted: an operator committed yesterday and `bootguard commit` (no push) keeps it local
        (halted.repo / "note.txt").write_text("hand edit\n")
        run_git(halted.repo, "add", "-A")
        yesterday = f"{int(time.time()) - 86400} +0000"
        env = {**os.environ, "GIT_COMMITTER_DATE": yesterday, "GIT_AUTHOR_DATE": yesterday}
        subprocess.run(["git", "-C", str(halted.repo), "commit", "-qm", "hand edit"], check=True, env=env)
        assert halted.cli("commit", "--repo", str(halted.repo)) == 0
        # boots
        healthy.demo.generation(2)
        assert healthy.cli("trial", "nixos-generation-2.conf", "--commit", deployed) == 0
        healthy.boot("validate-pass")
        trying.demo.generation(2)
        assert trying.cli("trial", "nixos-generation-2.conf", "--tries", "3") == 0
        trying.boot("panic")
        trying.boot("unvalidated")
        assert trying.cli("commit", "--repo", str(trying.repo)) == 0
        rolled.demo.generation(2)
        assert rolled.cli("trial", "nixos-generation-2.conf") == 0
        rolled.boot("panic")
        rolled.boot("hang")
        rolled.boot("unvalidated")  # golden again; its validation has not run (yet)
        rolled.upgrade()  # the hourly timer: the broken commit is not rebuilt
        halted.boot("validate-fail")
        self.good, self.deployed = good, deployed
