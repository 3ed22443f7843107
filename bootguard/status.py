"""`bootguard status`: what state the host is in, in words and as JSON.

It reports on the boot (services) and on GitOps (gitops), so it sits above both: `services` never
imports `gitops`. It never fails because one source is missing: each missing source (efivarfs, ESP,
state) becomes a line that says so, since status is what a person reads when something is already
wrong.
"""

from __future__ import annotations

import os

from bootguard.errors import BootguardError
from bootguard.model.state import Backend
from bootguard.seams.statestore import StateStore
from bootguard.services import fallback
from bootguard.services.bootview import BootView

TYPE_CHECKING = False
if TYPE_CHECKING:
    from bootguard.model.state import State


def _trial_copy_now(view: BootView) -> dict[str, object]:
    """The loader-counted trial copy under its name of now, and how many of its tries already ended
    without a blessing (the loader renamed it on each; this boot's try is not one of them)."""
    tc = fallback.trial_copy(view)
    if tc is None:
        return {}
    done = tc.tries_done or 0
    earlier = done - 1 if tc is view.booted and view.counted else done
    return {"copy": tc.filename, "earlier_tries_failed": max(earlier, 0), "tries_left": tc.tries_left}


def _boot_part(view: BootView) -> dict[str, object]:
    b = view.booted
    sel = view.selection
    counted = view.counted
    attempt = None
    if counted and b is not None and b.tries_done is not None:
        attempt = b.tries_done  # systemd-boot already added this boot to "done"
    return {
        "loader": view.vars.info,
        "efi": view.efi_available,
        "booted": b.filename if b else None,
        "booted_id": b.id(view.scheme) if b else view.vars.entry_selected,
        "counted": counted,
        "attempt": attempt,
        "tries_left": b.tries_left if b else None,
        "boot_count_path": view.vars.boot_count_path,
        "next_boot": sel.entry.filename if sel.entry else None,
        "next_boot_reason": sel.reason.value,
        "next_boot_why": sel.detail,
        "esp": view.esp.root,
        "esp_writable": view.esp.writable(),
        "trial_copy": (tc.filename if (tc := fallback.trial_copy(view)) else None),
        "golden_copy": (gc.filename if (gc := fallback.golden_copy(view)) else None),
    }


def _state_part(state: State, booted: str | None) -> dict[str, object]:
    g, t = state.golden, state.trial
    last = state.finished_trials[-1] if state.finished_trials else None
    return {
        "running_commit": None if booted is None else state.running_commit(booted),
        "golden": None
        if g is None
        else {"filename": g.filename, "entry_id": g.entry_id, "generation": g.generation, "commit": g.commit},
        "trial": None
        if t is None
        else {
            "filename": t.filename,
            "copy": t.copy_filename,
            "tries": t.tries,
            "generation": t.generation,
            "counted_by": t.backend.value,
            "try": t.attempt if t.backend is Backend.STATE else None,
            "failed_tries": t.failures if t.backend is Backend.STATE else None,
            "commit": t.commit,
        },
        "last_trial": None if last is None else last.to_dict(),
        "halted": state.halted,
    }


def _last_validation(state_dir: str) -> object:
    """The validator's last report, with `this_boot`: whether it is this boot's (None: cannot tell).

    Read before this boot's validator has run, the file is an earlier boot's, and a bare "pass" would
    read as this boot's verdict."""
    from bootguard.model.events import read_boot_id
    from bootguard.model.jsoncodec import loads  # json's results, without importing json and re

    try:
        with open(os.path.join(state_dir, "last-validation.json"), "rb") as f:
            doc = loads(f.read())
        if isinstance(doc, dict):
            recorded, now = doc.get("boot_id"), read_boot_id()
            doc["this_boot"] = None if recorded is None or now is None else recorded == now
        return doc
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        return {"error": f"unreadable: {exc}"}


def _gitops_part(state_dir: str, running: object = None) -> list[dict[str, object]]:
    """Per GitOps repository: running/deployed/failed commits, why, saved backups (gitops/report.py)."""
    if not os.path.exists(os.path.join(state_dir, "gitops.json")):
        return []  # no GitOps on this host: keep status free of the userland imports below
    from bootguard.gitops.fleet_state import with_fleet  # fleet (issue 16): quarantine/canary hold
    from bootguard.gitops.record import GitopsRecord
    from bootguard.gitops.report import repo_status

    commit = running if isinstance(running, str) else None
    return [
        with_fleet(state_dir, repo_status(repo, rec, commit))
        for repo, rec in GitopsRecord.load(state_dir).repos.items()
    ]


def advice(report: dict[str, object]) -> list[str]:
    """What a person should do, derived from the report."""
    out: list[str] = []
    if report.get("halted"):
        out.append(
            f"bootguard stopped rearranging the boot: {report['halted']}. The host stays on the entry "
            "it booted; fix it, then `bootguard pin-golden` a working entry to resume."
        )
    if report.get("counted") is False and report.get("efi") and report.get("esp_writable") is False:
        out.append(
            "this boot is not counted: the ESP is read-only, so systemd-boot could not rename the entry"
        )
    trial = report.get("trial")
    if isinstance(trial, dict) and trial.get("counted_by") == Backend.STATE.value:
        out.append(
            f"trial {trial['filename']} is counted by bootguard: try {trial['try']} of {trial['tries']} "
            f"armed, {trial['failed_tries']} failed; golden is the default and each try a one-shot boot"
        )
    if report.get("golden") is None:
        out.append("no golden generation is pinned: run `bootguard pin-golden` on a known-good boot")
    return out


def report(
    esp: str | None, xbootldr: str | None, efivars: str, state_dir: str, events: int = 5
) -> dict[str, object]:
    out: dict[str, object] = {"problems": []}
    problems: list[str] = out["problems"]  # type: ignore[assignment]
    view: BootView | None = None
    try:
        view = BootView.gather(esp, xbootldr, efivars)
        out.update(_boot_part(view))
    except BootguardError as exc:
        problems.append(exc.message)
    store = StateStore(state_dir)
    try:
        loaded = store.load()
        booted = out.get("booted") or out.get("booted_id")  # the file may be gone (a blessed trial copy)
        out.update(_state_part(loaded.state, booted if isinstance(booted, str) else None))
        trial = out.get("trial")
        if isinstance(trial, dict) and view is not None and trial.get("counted_by") == Backend.LOADER.value:
            trial.update(_trial_copy_now(view))
        problems.extend(loaded.warnings)
    except BootguardError as exc:
        problems.append(exc.message)
        out.update(
            {"golden": None, "trial": None, "halted": None, "running_commit": None, "last_trial": None}
        )
    try:
        log = store.read_events(limit=events)
        out["events"] = [e.to_dict() for e in log.events]
        problems.extend(log.warnings)
    except BootguardError as exc:
        problems.append(exc.message)
        out["events"] = []
    out["last_validation"] = _last_validation(state_dir)
    try:
        out["gitops"] = _gitops_part(state_dir, out.get("running_commit"))
    except BootguardError as exc:
        problems.append(exc.message)
        out["gitops"] = []
    out["advice"] = advice(out)
    return out
