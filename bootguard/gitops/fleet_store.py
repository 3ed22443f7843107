"""FleetVerdict refs on the shared remote: `refs/bootguard/verdicts/<host>`, one commit per verdict.

Each host appends only to its own ref, with a plain (never forced) push whose new commit has the
remote's tip as parent, so two hosts never conflict and no verdict is lost: a rejected push (the
ref moved) is retried on the next run on top of the new tip. A verdict commit's tree holds one
blob, `verdict.json` (see fleet_verdict). Readers fetch every host's ref into
`refs/bootguard/fleet/<remote>/<host>` (forced and pruned: it mirrors the remote) and read each
ref's newest PER_HOST verdicts with two `git cat-file` processes in all; a blob larger than
MAX_BYTES is never read. A verdict whose `host` differs from its ref's name is forged and ignored.

Standard library only.
"""

from __future__ import annotations

from bootguard.errors import GitOpsError
from bootguard.gitops import git
from bootguard.gitops.fleet_verdict import (
    BLOB_NAME,
    MAX_BYTES,
    FleetVerdict,
    FleetVerdictError,
    host_problem,
    parse,
)
from bootguard.model._frozen import Frozen

REMOTE_PREFIX = "refs/bootguard/verdicts/"
PER_HOST = 100  # newest verdicts read per host
MAX_HOSTS = 500  # verdict refs read at most (a remote flooded with refs cannot stall a run)


def local_prefix(remote: str) -> str:
    return f"refs/bootguard/fleet/{remote}/"


class PublishedVerdict(Frozen):
    """A verdict as read from a verdict ref, with the commit that carries it (for signatures)."""

    __slots__ = ("sha", "verdict")

    verdict: FleetVerdict
    sha: str

    def __init__(self, verdict: FleetVerdict, sha: str) -> None:
        self._init(verdict=verdict, sha=sha)


class VerdictsRead(Frozen):
    """Every valid verdict read (oldest first per host) and one warning per ref with ignored data."""

    __slots__ = ("verdicts", "warnings")

    verdicts: tuple[PublishedVerdict, ...]
    warnings: tuple[str, ...]

    def __init__(self, verdicts: tuple[PublishedVerdict, ...], warnings: tuple[str, ...]) -> None:
        self._init(verdicts=verdicts, warnings=warnings)


def fetch(g: git.Git, remote: str) -> None:
    """Mirror every host's verdict ref from `remote` (GitOpsError if the fetch fails)."""
    spec = f"+{REMOTE_PREFIX}*:{local_prefix(remote)}*"
    done = g.run("fetch", "-q", "--no-tags", "--no-write-fetch-head", "--prune", remote, spec, check=False)
    if not done.ok:
        raise GitOpsError(
            f"cannot fetch verdicts from {remote!r} ({git.remote_url(g, remote)}): {git.reason(done)}"
        )


def read(
    g: git.Git, remote: str, *, hosts: tuple[str, ...] | None = None, per_host: int = PER_HOST
) -> VerdictsRead:
    """Parse the fetched verdict refs (all, or only `hosts`); never raises for bad verdict data."""
    warnings: list[str] = []
    chains = _chains(g, remote, hosts, per_host, warnings)
    blobs = _blobs(g, [sha for _, chain in chains for sha in chain])
    out: list[PublishedVerdict] = []
    for host, chain in chains:
        bad: list[str] = []
        for sha in chain:
            try:
                out.append(PublishedVerdict(_verdict(host, blobs.get(sha)), sha))
            except FleetVerdictError as exc:
                bad.append(f"{sha[:12]}: {exc}")
        if bad:
            more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
            warnings.append(
                f"ignored {len(bad)} of {len(chain)} verdicts in {REMOTE_PREFIX}{host}: {bad[0]}{more}"
            )
    return VerdictsRead(tuple(out), tuple(warnings))


def _chains(
    g: git.Git, remote: str, hosts: tuple[str, ...] | None, per_host: int, warnings: list[str]
) -> list[tuple[str, list[str]]]:
    """(host, its newest verdict commits, oldest first) per valid verdict ref; problems to `warnings`."""
    prefix = local_prefix(remote)
    rows = git.for_each_ref(g, prefix, ("refname", "objectname", "objecttype"))
    if len(rows) > MAX_HOSTS:
        warnings.append(f"{len(rows)} verdict refs on {remote!r}; reading only the first {MAX_HOSTS}")
        rows = rows[:MAX_HOSTS]
    chains: list[tuple[str, list[str]]] = []
    for ref, sha, kind in rows:
        host = ref[len(prefix) :]
        if hosts is not None and host not in hosts:
            continue
        problem = host_problem(host)
        if problem:
            warnings.append(f"ignored {REMOTE_PREFIX}{host}: {problem}")
        elif kind != "commit":
            warnings.append(f"ignored {REMOTE_PREFIX}{host}: it points at a {kind}, not a verdict commit")
        else:
            chain = g.run("rev-list", "--first-parent", f"--max-count={per_host}", sha, "--").stdout.split()
            chains.append((host, chain[::-1]))
    return chains


def _verdict(host: str, blob: bytes | str | None) -> FleetVerdict:
    """The verdict in `blob`, which must be `host`'s own; FleetVerdictError otherwise."""
    if blob is None:
        raise FleetVerdictError(f"{BLOB_NAME} could not be read")
    if isinstance(blob, str):
        raise FleetVerdictError(blob)
    verdict = parse(blob)
    if verdict.host != host:
        raise FleetVerdictError(f"forged: it says host {verdict.host!r}")
    return verdict


def _blobs(g: git.Git, commits: list[str]) -> dict[str, bytes | str]:
    """Per verdict commit: its verdict.json bytes, or why there are none (missing, wrong type, too big)."""
    if not commits:
        return {}
    query = "".join(f"{sha}:{BLOB_NAME}\n" for sha in commits)
    check = g.run(
        "cat-file", "--buffer", "--batch-check=%(objectname) %(objecttype) %(objectsize)", input=query
    )
    found: dict[str, bytes | str] = {}
    wanted: dict[str, list[str]] = {}
    for sha, line in zip(commits, check.stdout.splitlines(), strict=False):
        parts = line.split()
        if len(parts) != 3 or not parts[2].isdigit():
            found[sha] = f"no {BLOB_NAME} in its tree"
        elif parts[1] != "blob":
            found[sha] = f"{BLOB_NAME} is a {parts[1]}"
        elif int(parts[2]) > MAX_BYTES:
            found[sha] = f"{parts[2]} bytes, more than the {MAX_BYTES} a verdict may have (not read)"
        else:
            wanted.setdefault(parts[0], []).append(sha)
    if wanted:
        raw = g.run("cat-file", "--buffer", "--batch", input="".join(f"{b}\n" for b in wanted)).stdout
        data = raw.encode("utf-8", "surrogateescape")  # proc decodes text; these are the original bytes
        pos = 0
        while pos < len(data):
            end = data.index(b"\n", pos)
            name, _kind, size = data[pos:end].decode("ascii").split()
            body = data[end + 1 : end + 1 + int(size)]
            pos = end + 1 + int(size) + 1
            for sha in wanted.get(name, ()):
                found[sha] = body
    return found


# --- publishing --------------------------------------------------------------------------------


def own_tip(g: git.Git, remote: str, host: str) -> str | None:
    """The remote's current tip of this host's verdict ref, fetched if we lack it (None: no ref yet)."""
    ref = REMOTE_PREFIX + host
    done = g.run("ls-remote", "--end-of-options", remote, ref, check=False)
    if not done.ok:
        raise GitOpsError(f"cannot reach remote {remote!r} ({git.remote_url(g, remote)}): {git.reason(done)}")
    tip = next((ln.split("\t")[0] for ln in done.stdout.splitlines() if ln.endswith(f"\t{ref}")), None)
    if tip is None:
        return None
    if not git.has_commit(g, tip):
        spec = f"+{ref}:{local_prefix(remote)}{host}"
        g.run("fetch", "-q", "--no-tags", "--no-write-fetch-head", remote, spec)
    return tip


def append(g: git.Git, parent: str | None, verdicts: list[FleetVerdict], *, sign: bool) -> str:
    """Commit each verdict on top of `parent` (oldest first); the new tip. Nothing is pushed."""
    tip = parent
    for v in verdicts:
        blob = g.run("hash-object", "-w", "--stdin", input=v.to_bytes().decode()).stdout.strip()
        tree = g.run("mktree", input=f"100644 blob {blob}\t{BLOB_NAME}\n").stdout.strip()
        args = ["commit-tree", tree, "-m", f"bootguard verdict: {v.describe()}"]
        if tip is not None:
            args += ["-p", tip]
        if sign:
            args.append("-S")
        tip = g.run(*args).stdout.strip()
    assert tip is not None  # callers pass at least one verdict
    return tip


def push(g: git.Git, remote: str, host: str, tip: str) -> str | None:
    """Push `tip` as this host's verdict ref, never forced: None on success, else git's reason."""
    ref = REMOTE_PREFIX + host
    done = g.run("push", "--porcelain", "--end-of-options", remote, f"{tip}:{ref}", check=False)
    for line in done.stdout.splitlines():
        flag, _, rest = line.partition("\t")
        dst, _, summary = rest.partition("\t")
        if dst.endswith(f":{ref}"):
            return None if flag in (" ", "*", "=") else summary.strip() or "rejected"
    return None if done.ok else git.reason(done)
