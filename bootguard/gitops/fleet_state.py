"""`<state-dir>/fleet.json`: per repository, the verdicts already published and what holds a deploy.

- `published`: keys of this host's verdicts the remote has (the outbox is the rest of the
  history in gitops.json); `pending`: how many were left after the last attempt; `source`: the
  (mtime_ns, size) of gitops.json then, so a timer run with nothing new skips the outbox cheaply.
- `held`: the quarantine or canary hold of the last run (`bootguard status` shows it).
- `candidate`: the remote commit waiting for canaries and when this host first saw it (the soak
  clock).

Everything here can be rebuilt: a lost file only republishes verdicts (deduplicated against the
remote) and restarts a soak. So a corrupt or foreign file is replaced, with a warning, never a
crash. Standard library only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from bootguard.model._frozen import Frozen
from bootguard.seams import fs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

FILE_NAME = "fleet.json"
FORMAT = "bootguard-fleet"
VERSION = 1
MAX_BYTES = 1 << 20
KEEP_KEYS = 200


class RepoFleet(Frozen):
    """What fleet.json says about one repository."""

    __slots__ = ("candidate", "held", "pending", "published", "source")

    published: tuple[tuple[str, ...], ...]
    pending: int
    source: tuple[int, int] | None
    held: dict[str, Any] | None
    candidate: tuple[str, float] | None

    def __init__(
        self,
        published: tuple[tuple[str, ...], ...] = (),
        pending: int = 0,
        source: tuple[int, int] | None = None,
        held: dict[str, Any] | None = None,
        candidate: tuple[str, float] | None = None,
    ) -> None:
        self._init(
            published=tuple(published[-KEEP_KEYS:]),
            pending=pending,
            source=source,
            held=held,
            candidate=candidate,
        )

    def __hash__(self) -> int:
        return hash((self.published, self.pending, self.source))

    @classmethod
    def from_dict(cls, obj: Any) -> RepoFleet:
        pub = obj.get("published", [])
        src = obj.get("source")
        cand = obj.get("candidate")
        held = obj.get("held")
        pending = obj.get("pending", 0)
        if not isinstance(pub, list) or not all(
            isinstance(k, list) and all(isinstance(x, str) for x in k) for k in pub
        ):
            raise ValueError("'published' must be a list of string lists")
        if not isinstance(pending, int) or not (held is None or isinstance(held, dict)):
            raise ValueError("'pending' or 'held' has the wrong type")
        source = None
        if src is not None:
            if not (isinstance(src, list) and len(src) == 2 and all(isinstance(x, int) for x in src)):
                raise ValueError("'source' must be [mtime_ns, size]")
            source = (src[0], src[1])
        candidate = None
        if cand is not None:
            if not (isinstance(cand, dict) and isinstance(cand.get("commit"), str)):
                raise ValueError("'candidate' must name a commit")
            since = cand.get("since")
            if not isinstance(since, int | float):
                raise ValueError("'candidate.since' must be a number")
            candidate = (cand["commit"], float(since))
        return cls(tuple(tuple(k) for k in pub), pending, source, held, candidate)

    def to_dict(self) -> dict[str, Any]:
        return {
            "published": [list(k) for k in self.published[-KEEP_KEYS:]],
            "pending": self.pending,
            "source": None if self.source is None else list(self.source),
            "held": self.held,
            "candidate": None
            if self.candidate is None
            else {"commit": self.candidate[0], "since": self.candidate[1]},
        }


def load(state_dir: str, repo: str) -> RepoFleet:
    return _load_all(state_dir).get(repo, RepoFleet())


def save(state_dir: str, repo: str, record: RepoFleet) -> None:
    repos = _load_all(state_dir, quiet=True)
    repos[repo] = record
    doc = {"format": FORMAT, "version": VERSION, "repos": {k: v.to_dict() for k, v in repos.items()}}
    directory = Path(state_dir)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    fs.atomic_write(
        directory / FILE_NAME, (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode(), mode=0o600
    )


def source_stamp(state_dir: str, name: str) -> tuple[int, int] | None:
    """(mtime_ns, size) of a file in the state directory, None if it does not exist."""
    try:
        st = os.stat(os.path.join(state_dir, name))
    except FileNotFoundError:
        return None
    return (st.st_mtime_ns, st.st_size)


def _load_all(state_dir: str, *, quiet: bool = False) -> dict[str, RepoFleet]:
    path = Path(state_dir) / FILE_NAME
    try:
        got = fs.read_nofollow(path, max_bytes=MAX_BYTES)
        if got is None:
            return {}
        obj = json.loads(got[0])
        if not isinstance(obj, dict) or obj.get("format") != FORMAT or obj.get("version") != VERSION:
            raise ValueError(f"not a version-{VERSION} {FORMAT} file")
        repos = obj.get("repos")
        if not isinstance(repos, dict):
            raise ValueError("'repos' must be an object")
        return {str(k): RepoFleet.from_dict(v) for k, v in repos.items() if isinstance(v, dict)}
    except (OSError, ValueError, AttributeError) as exc:
        if not quiet:
            import sys

            sys.stderr.write(
                f"bootguard: warning: {path}: {exc}; starting it afresh (verdicts are republished "
                "without duplicates, a soak restarts)\n"
            )
        return {}


def with_fleet(state_dir: str, part: dict[str, object]) -> dict[str, object]:
    """A repository's `bootguard status` entry (gitops/report.py) with its fleet part: `fleet` for
    `--json` (null when nothing is held or pending) and one note per fact for the text."""
    fleet = status_of(state_dir, str(part["repo"]))
    notes = part.get("notes")
    lines = status_lines(fleet) if fleet else []
    return {**part, "fleet": fleet, "notes": [*(notes if isinstance(notes, list) else []), *lines]}


def status_of(state_dir: str, repo: str) -> dict[str, object] | None:
    """The hold of the last run and the number of unpublished verdicts, or None if neither."""
    if not os.path.exists(os.path.join(state_dir, FILE_NAME)):
        return None
    rec = load(state_dir, repo)
    if rec.held is None and rec.pending == 0:
        return None
    return {"held": rec.held, "pending_verdicts": rec.pending}


def status_lines(part: dict[str, Any]) -> list[str]:
    """The notes `bootguard status` prints for `status_of`'s result."""
    lines = []
    held = part.get("held")
    if isinstance(held, dict):
        lines.append(f"fleet: {held.get('message')} (checked {held.get('checked_at')})")
    if part.get("pending_verdicts"):
        lines.append(
            f"fleet: {part['pending_verdicts']} verdicts not published yet (retried on the next upgrade)"
        )
    return lines
