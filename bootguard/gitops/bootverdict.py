"""Close the GitOps loop across a boot: a trial's end becomes its commit's verdict in git and gitops.json.

`upgrade` stages a trial for the commit it built (BOOTGUARD_COMMIT → `bootguard trial --commit`);
the early-boot step and the validator end that trial (blessed, or rolled back after N failed boots,
a failed required check, the boot deadline) and append a `TrialEnd` to the state. The first
bootguard step in userland afterwards — the validator on the next boot that stays up, or the next
`upgrade`/`commit`, whichever comes first — calls `settle`, which for each TrialEnd not handled yet:

- blessed: records the commit as deployed (verdict `blessed`, stage `boot`);
- failed: records the commit failed (stage `boot`, the event log's cause) so `upgrade` does not
  deploy it again until a newer remote commit arrives; keeps it as `refs/bootguard/backup/<time>-
  failed-boot`; returns the repository to the commit of the generation that runs now (golden's or
  the last blessed one) after saving local commits (`-local`) and uncommitted edits (`-dirty`);
  appends an event and sends a notification.

The newest handled `seq` is kept per repository in gitops.json, so each TrialEnd is handled once.
When bootguard cannot tell which commit runs, or the repository is not in a state to reset, the
verdict is still recorded but the repository is left alone and the reason is returned (status
shows it) — never a guess. A repository left on the failed commit is returned by the next `upgrade`
or `commit` (`return_left_repository`), or they refuse to act on it.
"""

from __future__ import annotations

import datetime

import attrs

from bootguard.errors import BootguardError, RefusedError
from bootguard.gitops import backups, events, git
from bootguard.gitops.record import CommitVerdict, FailedCommit, GitopsRecord, RepoRecord

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from bootguard.model.state import State, TrialEnd
    from bootguard.validator.notify.dispatch import Dispatcher

    # (title, message) → deliver to the configured notifiers; must not raise for a delivery failure
    NotifyFn = Callable[[str, str], None]

BOOT_STAGE = "boot"
UNKNOWN_RUNNING = "bootguard cannot tell which commit the running generation was built from"


@attrs.frozen
class Settled:
    """What `settle` did for one TrialEnd in one repository (one line per fact in `messages`)."""

    repo: str
    seq: int
    commit: str
    outcome: str  # blessed | failed
    cause: str
    messages: tuple[str, ...] = ()
    backups: tuple[str, ...] = ()
    problem: str | None = None  # why the repository was left alone, if it was

    def to_dict(self) -> dict[str, object]:
        return attrs.asdict(self)


def newest_seq(state: State) -> int:
    """The seq of the newest TrialEnd (0 when none): ends after it are new to a trial staged now."""
    ends = state.finished_trials
    return max((e.seq for e in ends), default=0)


def running_commit(state: State, booted_entry: str | None) -> str | None:
    """The commit of the generation that runs now, or None when bootguard cannot tell.

    The state's per-generation record answers for the booted entry (None when that generation has
    no commit: not a guess). When the booted entry is unknown (`upgrade`, `commit`: they do not read
    the loader's variables), the fallback design leaves exactly two possibilities while no trial is
    active: the newest finished trial was blessed (it runs), or it failed (golden runs).
    """
    if booted_entry is not None:
        return state.running_commit(booted_entry)
    if state.trial is not None or not state.finished_trials:
        return None
    last = state.finished_trials[-1]
    if last.outcome == "blessed":
        return last.commit
    return None if state.golden is None else state.golden.commit


def settle(
    state_dir: str,
    *,
    repos: Sequence[str] | None = None,
    booted_entry: str | None = None,
    notify: NotifyFn | None = None,
) -> list[Settled]:
    """Handle every TrialEnd not handled yet, for `repos` (default: every repository in gitops.json).

    The caller holds the GitOps lock. Raises only for an unreadable state or gitops.json.
    """
    from bootguard.seams.statestore import StateStore

    record = GitopsRecord.load(state_dir)
    names = list(record.repos) if repos is None else list(repos)
    if not names:
        return []
    state = StateStore(state_dir).load().state
    done: list[Settled] = []
    for repo in names:
        rec = record.get(repo)
        ends = [e for e in state.finished_trials if rec.trial_seq is None or e.seq > rec.trial_seq]
        if rec.trial_seq is None:
            # First sight of this repository: what ended before bootguard staged anything for it
            # is not its business. Only remember where to start.
            ends = []
        for end in ends:
            rec, settled = _settle_one(state_dir, repo, rec, state, end, booted=booted_entry)
            if settled is not None:
                done.append(settled)
                _log(state_dir, settled)
                if notify is not None and settled.outcome == "failed":
                    notify(*_notification(settled))
        newest = newest_seq(state)
        if rec.trial_seq != newest:
            rec = attrs.evolve(rec, trial_seq=newest)
        record = GitopsRecord.load(state_dir).with_repo(repo, rec)
        record.save(state_dir)
    return done


def _settle_one(
    state_dir: str, repo: str, rec: RepoRecord, state: State, end: TrialEnd, *, booted: str | None
) -> tuple[RepoRecord, Settled | None]:
    commit = end.commit
    staged = rec.staged
    if commit is None:
        return rec, None  # a trial staged by hand without a commit: nothing to say about git
    # `trial --commit` accepts an abbreviated id; what upgrade staged is always the full one.
    ours = staged is not None and staged.commit.startswith(commit.lower())
    if ours and staged is not None:
        commit = staged.commit
    in_repo = _has_commit(repo, commit)
    if not ours and in_repo is not True:
        return rec, None  # another repository's commit (or none we know)
    if not ours:
        commit = _full_id(repo, commit)
    now = _now()
    cause = end.cause or ("blessed" if end.outcome == "blessed" else "unknown")
    if ours:
        rec = attrs.evolve(rec, staged=None)
    if end.outcome == "blessed":
        rec = attrs.evolve(rec, deployed=commit, deployed_at=now)
        rec = rec.with_verdict(CommitVerdict(commit, "blessed", BOOT_STAGE, "trial blessed", now))
        msg = f"{repo}: {commit[:12]} booted and was blessed; it is the deployed commit"
        return rec, Settled(repo, end.seq, commit, "blessed", cause, (msg,))
    remote_commit = staged.remote_commit if ours and staged is not None else commit
    reason = f"the trial boot failed ({cause}) on entry {end.entry_id}"
    rec = attrs.evolve(rec, failed=FailedCommit(remote_commit, BOOT_STAGE, reason, now))
    rec = rec.with_verdict(CommitVerdict(commit, "failed", BOOT_STAGE, cause, now))
    running = running_commit(state, booted)
    messages = [f"{repo}: {commit[:12]} failed at boot ({cause}); not retried until a newer commit arrives"]
    saved: list[str] = []
    problem = None
    try:
        problem = _return_repository(
            state_dir,
            repo,
            commit,
            running=running,
            bad_in_repo=in_repo is True,
            saved=saved,
            messages=messages,
        )
    except BootguardError as exc:
        problem = exc.message
    if problem:
        messages.append(f"{repo} left as it is: {problem}")
    return rec, Settled(repo, end.seq, commit, "failed", cause, tuple(messages), tuple(saved), problem)


def return_left_repository(state_dir: str, repo: str, *, booted_entry: str | None = None) -> tuple[str, ...]:
    """Put `repo` back on the running commit when HEAD is a commit that failed at boot; one line per fact.

    The settle leaves a repository as it is when it cannot reach it (moved away, replaced by a plain
    directory). Moved back, HEAD is still the failed commit, which is also the remote's head: `upgrade`
    would call that "up to date" and `commit` would commit on a configuration that does not run. So
    before either acts, a HEAD whose last verdict is "failed at boot" is returned exactly as the settle
    does it (the failed-boot backup only if there is none yet). The verdict is not recorded again: the
    TrialEnd was handled once. Raises RefusedError when the repository cannot be returned (bootguard
    cannot tell which commit runs, a rebase in progress, ...): nothing is built or committed on it.
    The caller holds the GitOps lock.
    """
    from bootguard.seams.statestore import StateStore

    try:
        g = _open(repo)
        head = git.head(g).commit
    except BootguardError:
        return ()  # the caller's own git steps say why the repository cannot be used
    verdict = None if head is None else GitopsRecord.load(state_dir).get(repo).last_verdict(head)
    if head is None or verdict is None or (verdict.outcome, verdict.stage) != ("failed", BOOT_STAGE):
        return ()
    state = StateStore(state_dir).load().state
    running = running_commit(state, booted_entry)
    if running == head:
        return ()
    backed_up = any(b.commit == head and _is_failed_boot(b.name) for b in backups.list_backups(g))
    messages = [
        f"{repo}: HEAD is {head[:12]}, which failed at boot ({verdict.cause}); the host does not run it"
    ]
    saved: list[str] = []
    problem = _return_repository(
        state_dir,
        repo,
        head,
        running=running,
        bad_in_repo=True,
        saved=saved,
        messages=messages,
        backup=not backed_up,
    )
    if saved or not problem:  # a refusal that changed nothing (told before) is only the run's own event
        ends = (e.seq for e in reversed(state.finished_trials) if e.commit and head.startswith(e.commit))
        seq = next(ends, 0)
        facts, kept = tuple(messages), tuple(saved)
        _log(state_dir, Settled(repo, seq, head, "failed", verdict.cause, facts, kept, problem))
    if problem:
        raise _left_on_failed(repo, head, problem)
    return tuple(messages)


def _left_on_failed(repo: str, head: str, problem: str) -> RefusedError:
    return RefusedError(
        f"{repo} is on {head[:12]}, which failed at boot, and cannot be returned to the running "
        f"generation's commit: {problem}; nothing built or committed",
        hint=f"put it on the running configuration's commit by hand (git -C {repo} reset --hard COMMIT); "
        "`bootguard status` shows both",
    )


def _is_failed_boot(name: str) -> bool:
    """A backup named `<time>-failed-boot`, or `<time>-failed-boot-N` when several share a second."""
    return name.endswith("-failed-boot") or "-failed-boot-" in name


def _has_commit(repo: str, commit: str) -> bool | None:
    """None when `repo` is not a usable repository any more (moved, deleted, not git)."""
    try:
        return git.has_commit(_open(repo), commit)
    except BootguardError:
        return None


def _open(repo: str) -> git.Git:
    """`repo`, checked to be still the top of a git work tree; raises BootguardError otherwise.

    A plain directory put where the repository was is not it: git would answer for it "no such
    commit" (a wrong reason), or search an enclosing repository and write the backup ref there.
    """
    g = git.Git.open(repo)
    git.head(g)
    return g


def _full_id(repo: str, commit: str) -> str:
    try:
        return git.rev_parse(git.Git.open(repo), f"{commit}^{{commit}}") or commit
    except BootguardError:
        return commit


def _return_repository(
    state_dir: str,
    repo: str,
    bad: str,
    *,
    running: str | None,
    bad_in_repo: bool,
    saved: list[str],
    messages: list[str],
    backup: bool = True,
) -> str | None:
    """Back up the failed commit (unless `backup` is False: it is already) and put the repository on
    `running`; a problem line instead of a guess."""
    try:
        g = _open(repo)
    except BootguardError as exc:
        return f"not a usable repository any more (moved or deleted?): {exc.message}"
    if not bad_in_repo:
        return (
            f"{bad[:12]} is not in the repository (re-cloned, or garbage-collected?): no backup made; "
            "the commit is still refused by its id"
        )
    if backup:
        saved.append(backups.save(g, bad, "failed-boot", state_dir=state_dir).ref)
    if running is None:
        return UNKNOWN_RUNNING
    if not git.has_commit(g, running):
        return f"the running generation's commit {running[:12]} is not in the repository (re-cloned?)"
    head = git.head(g)
    busy = head.in_progress()
    if busy is not None:
        return f"{busy} is in progress"
    if head.commit is None or head.ref is None:
        return "HEAD is detached or unborn"
    if head.commit == running:
        messages.append(f"{repo} is already on the running commit {running[:12]}")
        return None
    if not git.is_ancestor(g, bad, head.commit):
        return f"HEAD {head.commit[:12]} does not contain the failed commit (moved on since)"
    g = _with_identity(g)
    if head.commit != bad:
        saved.append(backups.save(g, head.commit, "local", state_dir=state_dir).ref)
    dirty = None
    if git.status(g):
        snap = backups.snapshot_worktree(g, head, "bootguard: uncommitted changes before a boot rollback")
        dirty = backups.save(g, snap, "dirty", state_dir=state_dir)
        saved.append(dirty.ref)
    git.reset_hard(g, running)  # safe: every commit and edit dropped here is in a backup ref
    git.clean(g)
    kept = f" (saved: {', '.join(saved)})" if saved else ""
    messages.append(f"{repo} is back on the running commit {running[:12]}{kept}")
    if dirty is not None:
        if git.cherry_pick_no_commit(g, dirty.commit):
            git.reset_index(g)
        else:
            git.reset_hard(g, running)  # safe: the edits are in `dirty`
            messages.append(
                f"the uncommitted changes did not re-apply; they are in {dirty.ref} "
                f"(git -C {repo} checkout {dirty.ref} -- .)"
            )
    return None


def _with_identity(g: git.Git) -> git.Git:
    if git.config_get(g, "user.email") and git.config_get(g, "user.name"):
        return g
    return g.evolve(env={**g.env, **backups.identity_env()})


def _notification(s: Settled) -> tuple[str, str]:
    import socket

    host = socket.gethostname()
    # The loader already put the host back on its previous generation; the title says what became of
    # the repository, which is not always returned (moved away, busy, moved on since).
    after = "repository returned" if s.problem is None else "repository left alone"
    title = f"{host}: commit {s.commit[:12]} failed at boot ({s.cause}); {after}"
    body = "\n".join((f"host: {host}", f"commit: {s.commit}", f"cause: {s.cause}", *s.messages))
    return title, body


def _log(state_dir: str, s: Settled) -> None:
    kind = "upgrade" if s.outcome == "blessed" else "upgrade-failed"
    data: dict[str, object] = {"stage": BOOT_STAGE, **s.to_dict()}
    try:
        events.record(state_dir, kind, s.messages[0], data)
    except BootguardError as exc:
        import sys

        sys.stderr.write(f"bootguard: warning: event not logged: {exc.message}\n")


def _now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def dispatcher_notifier(dispatcher: Dispatcher, *, entry: str | None = None) -> NotifyFn:
    """The validator's notifier dispatch as a NotifyFn (undelivered messages are queued and retried)."""
    import socket
    import time

    from bootguard.validator.notify.base import Notification, NotifyEvent

    def send(title: str, message: str) -> None:
        dispatcher.deliver(
            Notification(NotifyEvent.ROLLBACK, title, message, socket.gethostname(), time.time(), entry)
        )

    return send


def config_notifier(state_dir: str, config_path: str | None = None) -> NotifyFn | None:
    """The notifiers of the validator's configuration (for `upgrade`); None when there is none."""
    import os

    from bootguard.validator import config

    if not os.path.exists(config_path or config.DEFAULT_CONFIG):
        return None
    from bootguard.validator import notify
    from bootguard.validator.notify.dispatch import Dispatcher
    from bootguard.validator.notify.queue import NotifyQueue

    cfg = config.load(config_path)
    if not cfg.notifiers:
        return None
    return dispatcher_notifier(Dispatcher([notify.build(n) for n in cfg.notifiers], NotifyQueue(state_dir)))


def after_validation(state_dir: str, booted_entry: str | None, dispatcher: Dispatcher) -> list[Settled]:
    """The validator's hook, on a boot that stays up: settle finished trials for every GitOps repository.

    Nothing to do (and nothing imported beyond this module) on a host without gitops.json. A
    running upgrade holds the GitOps lock and settles itself; waiting up to 30 s is bounded.
    """
    import os

    from bootguard.gitops import noop
    from bootguard.gitops.locks import GitopsLock
    from bootguard.gitops.record import FILE_NAME

    if not os.path.exists(os.path.join(state_dir, FILE_NAME)) or not noop.needs_settle(state_dir):
        return []
    with GitopsLock(state_dir, "validate"):
        return settle(state_dir, booted_entry=booted_entry, notify=dispatcher_notifier(dispatcher))
