"""`bootguard status`: booted entry, counting, golden, trial, next boot and why, last events."""

from __future__ import annotations

from bootguard.cli.options import Opt, add_to

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

    from bootguard.cli.main import Context

NAME = "status"
HELP = "show what state the host is in: booted entry, attempt, golden, next boot and why, last events"


# A table, so that cli.main parses it without argparse: `status` runs on the early-boot path and in
# scripts and monitoring loops, where argparse (with gettext and locale) is a tenth of its cost.
OPTIONS = (Opt("--events", int, 5, metavar="N", help="how many recent events (default 5)"),)


def configure(parser: argparse.ArgumentParser) -> None:
    add_to(parser, OPTIONS)


def _plain(r: dict[str, object]) -> list[str]:
    from bootguard.cli.output import local_time

    lines = [
        f"loader:     {r.get('loader') or 'unknown (no LoaderInfo)'}",
        f"booted:     {r.get('booted') or 'unknown'}",
    ]
    if r.get("counted"):
        left = r.get("tries_left")
        lines.append(
            f"counting:   this boot is counted (attempt {r.get('attempt')}, "
            f"{left} {'try' if left == 1 else 'tries'} left after this one)"
        )
    else:
        lines.append("counting:   this boot is not counted")
    lines.append(
        f"commit:     {r.get('running_commit') or 'unknown (no commit recorded for this generation)'}"
    )
    g = r.get("golden")
    golden_commit = f" (commit {g['commit']})" if isinstance(g, dict) and g.get("commit") else ""
    lines.append(f"golden:     {g['filename'] if isinstance(g, dict) else 'none pinned'}{golden_commit}")
    t = r.get("trial")
    if isinstance(t, dict):
        trial_commit = f" commit {t['commit']}" if t.get("commit") else ""
        if t.get("counted_by") == "state":
            lines.append(
                f"trial:      {t['filename']} (try {t['try']} of {t['tries']}, {t['failed_tries']} failed; "
                f"counted by bootguard){trial_commit}"
            )
        else:
            failed = t.get("earlier_tries_failed")
            so_far = f", {failed} {'try' if failed == 1 else 'tries'} failed so far" if failed else ""
            lines.append(
                f"trial:      {t['filename']} ({t['tries']} tries{so_far}, copy {t['copy']}){trial_commit}"
            )
    last = r.get("last_trial")
    if isinstance(last, dict):
        why = f": {last['cause']}" if last.get("cause") else ""
        commit = f" (commit {last['commit']})" if last.get("commit") else ""
        lines.append(f"last trial: {last['filename']} {last['outcome']}{why}{commit}")
    if "next_boot" in r:
        lines.append(f"next boot:  {r.get('next_boot') or 'nothing'} — {r.get('next_boot_why')}")
    lv = r.get("last_validation")
    if isinstance(lv, dict) and "result" in lv:
        if lv.get("this_boot") is False:
            when = local_time(float(lv.get("time") or 0))
            of = f"{lv['entry']}, {when}" if lv.get("entry") else when
            lines.append(f"validation: {lv['result']}, of an earlier boot ({of}); none yet on this boot")
        else:
            lines.append(f"validation: {lv['result']}")
        for c in lv.get("checks", []):
            took = f"({c.get('seconds', 0):.1f} s)"
            lines.append(f"  {c.get('result', '?'):5} {c.get('name')} {took} {c.get('message', '')}")
    events = r.get("events") or []
    if events:
        lines.append("last events:")
        for e in events:  # type: ignore[attr-defined]
            when = local_time(float(e.get("time", 0)))
            lines.append(f"  {when} {e.get('kind')}: {e.get('message')}")
    for g in r.get("gitops") or []:  # type: ignore[attr-defined]
        lines.append(f"gitops:     {g['repo']}: deployed {str(g.get('deployed') or 'nothing')[:12]}")
        if g.get("failed"):
            f = g["failed"]
            lines.append(f"  failed:   {f['commit'][:12]} at {f['stage']}: {f['reason']} (not retried)")
        for note in g.get("notes") or []:
            lines.append(f"  note:     {note}")
        for b in g.get("backups") or []:
            lines.append(f"  backup:   {b['ref']} {b['commit'][:12]} {b['subject']}")
            lines.append(f"            restore: {b['restore'][1]}")
    for p in r.get("problems") or []:  # type: ignore[attr-defined]
        lines.append(f"problem:    {p}")
    for a in r.get("advice") or []:  # type: ignore[attr-defined]
        lines.append(f"advice:     {a}")
    return lines


def run(args: argparse.Namespace, ctx: Context) -> int:
    from bootguard.cli.output import emit_json, say
    from bootguard.status import report

    r = report(ctx.esp, ctx.xbootldr, ctx.efivars, ctx.state_dir, events=args.events)
    if ctx.json:
        emit_json(r)
    else:
        for line in _plain(r):
            say(line)
    return 0
