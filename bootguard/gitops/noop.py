"""The no-op stamp: what the last good `upgrade` run saw, so a timer run with nothing new can stop early.

`<state-dir>/gitops-upgrade.ok` holds one line, `2 REPO HEAD REMOTE-COMMIT`, written after an upgrade
run that ended well and removed when one fails. The leading `2` is the stamp's format: a stamp written
by a version without it (`REPO HEAD REMOTE-COMMIT`) predates the check for a HEAD left on a commit that
failed at boot, so it must not vouch for that check; it matches nothing, and the next run is a full
one that writes a new stamp. The unit's `ExecCondition=` pre-check (a few lines
of shell, systemd/bootguard-upgrade.service) runs `git rev-parse` + `git ls-remote` and skips the
run — Python never starts — only when all of this holds:

- the stamp exists (the previous run succeeded) and names the same repository, HEAD and remote
  commit as now;
- no state slot (`state.a.json`, `state.b.json`) is newer than the stamp: a trial that ended since
  (blessed or failed: contract C1 writes a TrialEnd in the same state update) must be settled
  (bootverdict.settle) by the next run even when git did not move;
- the initrd left no spooled record in /run/bootguard/spool (merged into the state by userland).

`needs_settle` is the same test for the Python path; with `stamped_head` it also tells when the
check for a HEAD left on a commit that failed at boot can be skipped. Standard library only.
"""

from __future__ import annotations

import os

STAMP = "gitops-upgrade.ok"
FORMAT = "2"  # the unit's ExecCondition compares the line with "2 $R $h $remote" (bootguard-upgrade.service)
STATE_SLOTS = ("state.a.json", "state.b.json")


def write(state_dir: str, repo: str, head: str, remote_commit: str) -> None:
    """Record a good run (not fsynced: losing it only costs one full run)."""
    path = os.path.join(state_dir, STAMP)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(f"{FORMAT} {repo} {head} {remote_commit}\n")
    os.replace(tmp, path)


def clear(state_dir: str) -> None:
    try:
        os.unlink(os.path.join(state_dir, STAMP))
    except FileNotFoundError:
        pass


def stamped_head(state_dir: str, repo: str) -> str | None:
    """The HEAD the last good run left in `repo`, or None (no stamp, another repository, unreadable)."""
    try:
        with open(os.path.join(state_dir, STAMP), encoding="utf-8") as f:
            words = f.read().split()
    except (OSError, UnicodeDecodeError):
        return None
    return words[2] if len(words) == 4 and words[:2] == [FORMAT, repo] else None


def needs_settle(state_dir: str) -> bool:
    """True when the state may hold a finished trial the last good run has not seen."""
    try:
        stamp = os.stat(os.path.join(state_dir, STAMP)).st_mtime_ns
    except FileNotFoundError:
        return True
    for name in STATE_SLOTS:
        try:
            if os.stat(os.path.join(state_dir, name)).st_mtime_ns >= stamp:
                return True
        except FileNotFoundError:
            continue
    return False
