"""`<state-dir>/gitops.json`: per repository, the commit that failed, the commit last deployed, and
the history of verdicts (which commit this host blessed or failed, at which stage, why).

The failing remote commit is remembered so that an hourly timer does not rebuild (and re-fail)
the same broken commit until a newer one arrives (the complaint in comin issue 59). The file is
small, versioned (`"format": "bootguard-gitops"`, `"version": 1`) and written with
`fs.atomic_write`; a foreign, corrupt or newer file is a StateError, never silently reset.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import attrs

from bootguard.errors import StateError
from bootguard.seams import fs

FILE_NAME = "gitops.json"
FORMAT = "bootguard-gitops"
VERSION = 1
MAX_BYTES = 1 << 20
_HINT = "move the file away; bootguard then only forgets which commits failed before"


@attrs.frozen
class FailedCommit:
    """A remote commit whose build, validation or switch failed on this host."""

    commit: str  # the remote commit that arrived
    stage: str  # signature | build | validate | switch | force-push
    reason: str
    at: str  # ISO 8601

    @classmethod
    def from_dict(cls, obj: Any, where: str) -> FailedCommit:
        fields = ("commit", "stage", "reason", "at")
        if not isinstance(obj, dict) or not all(isinstance(obj.get(k), str) for k in fields):
            raise StateError(
                f"{where}: 'failed' must be an object with string {', '.join(fields)}", hint=_HINT
            )
        return cls(obj["commit"], obj["stage"], obj["reason"], obj["at"])


MAX_HISTORY = 50
VERDICT_OUTCOMES = ("blessed", "failed")


@attrs.frozen
class CommitVerdict:
    """What this host decided about one commit (contract C2; newest last in RepoRecord.history).

    `outcome` is "blessed" (a trial blessed, or a direct switch that passed) or "failed";
    `stage` says where: build | validate | switch | signature | force-push | boot.
    """

    commit: str
    outcome: str
    stage: str
    cause: str
    at: str  # ISO 8601

    @classmethod
    def from_dict(cls, obj: Any, where: str) -> CommitVerdict:
        fields = ("commit", "outcome", "stage", "cause", "at")
        if not isinstance(obj, dict) or not all(isinstance(obj.get(k), str) for k in fields):
            raise StateError(
                f"{where}: each 'history' entry must be an object with string {', '.join(fields)}", hint=_HINT
            )
        if obj["outcome"] not in VERDICT_OUTCOMES:
            raise StateError(
                f"{where}: history outcome {obj['outcome']!r} is not blessed or failed", hint=_HINT
            )
        return cls(obj["commit"], obj["outcome"], obj["stage"], obj["cause"], obj["at"])


@attrs.frozen
class StagedTrial:
    """The commit `upgrade` handed to the trial hook, and the remote commit it was integrated from.

    The trial's own record (state.json) knows only the integrated commit; a boot failure must be
    refused by the *remote* commit, which differs when local commits were rebased onto it.
    """

    commit: str
    remote_commit: str
    at: str

    @classmethod
    def from_dict(cls, obj: Any, where: str) -> StagedTrial:
        fields = ("commit", "remote_commit", "at")
        if not isinstance(obj, dict) or not all(isinstance(obj.get(k), str) for k in fields):
            raise StateError(
                f"{where}: 'staged' must be an object with string {', '.join(fields)}", hint=_HINT
            )
        return cls(obj["commit"], obj["remote_commit"], obj["at"])


@attrs.frozen
class RepoRecord:
    """What bootguard remembers about one repository."""

    failed: FailedCommit | None = None
    deployed: str | None = None  # the commit last built and switched to successfully
    deployed_at: str | None = None
    history: tuple[CommitVerdict, ...] = ()  # newest last, at most MAX_HISTORY
    staged: StagedTrial | None = None  # the commit of the trial `upgrade` staged last
    trial_seq: int | None = None  # the newest State.finished_trials seq already handled

    @classmethod
    def from_dict(cls, obj: Any, where: str) -> RepoRecord:
        if not isinstance(obj, dict):
            raise StateError(f"{where}: a repository record must be an object", hint=_HINT)
        failed = obj.get("failed")
        deployed, deployed_at = obj.get("deployed"), obj.get("deployed_at")
        if not all(v is None or isinstance(v, str) for v in (deployed, deployed_at)):
            raise StateError(f"{where}: 'deployed' and 'deployed_at' must be strings or null", hint=_HINT)
        history = obj.get("history", [])  # absent in files written before the history existed
        if not isinstance(history, list):
            raise StateError(f"{where}: 'history' must be a list", hint=_HINT)
        staged = obj.get("staged")
        seq = obj.get("trial_seq")
        if seq is not None and (not isinstance(seq, int) or isinstance(seq, bool)):
            raise StateError(f"{where}: 'trial_seq' must be an integer or null", hint=_HINT)
        return cls(
            None if failed is None else FailedCommit.from_dict(failed, where),
            deployed,
            deployed_at,
            history=tuple(CommitVerdict.from_dict(v, where) for v in history)[-MAX_HISTORY:],
            staged=None if staged is None else StagedTrial.from_dict(staged, where),
            trial_seq=seq,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "failed": None if self.failed is None else attrs.asdict(self.failed),
            "deployed": self.deployed,
            "deployed_at": self.deployed_at,
            "history": [attrs.asdict(v) for v in self.history],
            "staged": None if self.staged is None else attrs.asdict(self.staged),
            "trial_seq": self.trial_seq,
        }

    def with_verdict(self, verdict: CommitVerdict) -> RepoRecord:
        """This record with `verdict` appended to the history (the oldest dropped beyond MAX_HISTORY)."""
        return attrs.evolve(self, history=(*self.history, verdict)[-MAX_HISTORY:])

    def last_verdict(self, commit: str) -> CommitVerdict | None:
        return next((v for v in reversed(self.history) if v.commit == commit), None)


@attrs.frozen
class GitopsRecord:
    """The whole file: one RepoRecord per repository path."""

    repos: dict[str, RepoRecord] = attrs.field(factory=dict, hash=False)

    @classmethod
    def load(cls, state_dir: str | os.PathLike[str]) -> GitopsRecord:
        path = Path(state_dir) / FILE_NAME
        try:
            got = fs.read_nofollow(path, max_bytes=MAX_BYTES)
        except OSError as exc:
            raise StateError(f"cannot read {path}: {exc.strerror or exc}", hint=_HINT) from exc
        if got is None:
            return cls()
        data, st = got
        problem = fs.private_file_problem(st)
        if problem:
            raise StateError(f"{path} {problem}; refusing to use it", hint=_HINT)
        return cls.parse(data, str(path))

    @classmethod
    def parse(cls, data: bytes, where: str) -> GitopsRecord:
        try:
            obj = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise StateError(f"{where}: not valid JSON ({exc})", hint=_HINT) from exc
        if not isinstance(obj, dict) or obj.get("format") != FORMAT:
            raise StateError(f"{where}: not a {FORMAT} file", hint=_HINT)
        if obj.get("version") != VERSION:
            raise StateError(
                f"{where}: version {obj.get('version')!r} is not supported", hint="upgrade bootguard"
            )
        repos = obj.get("repos")
        if not isinstance(repos, dict):
            raise StateError(f"{where}: 'repos' must be an object", hint=_HINT)
        return cls({k: RepoRecord.from_dict(v, f"{where} repos[{k!r}]") for k, v in repos.items()})

    def to_bytes(self) -> bytes:
        doc = {"format": FORMAT, "version": VERSION, "repos": {k: v.to_dict() for k, v in self.repos.items()}}
        return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()

    def save(self, state_dir: str | os.PathLike[str]) -> None:
        directory = Path(state_dir)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        fs.atomic_write(directory / FILE_NAME, self.to_bytes(), mode=0o600)

    def get(self, repo: str) -> RepoRecord:
        return self.repos.get(repo, RepoRecord())

    def with_repo(self, repo: str, record: RepoRecord) -> GitopsRecord:
        return GitopsRecord({**self.repos, repo: record})
