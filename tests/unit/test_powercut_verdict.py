"""A power cut at every step of a blessing, a mark-bad and a trial's end: the next boot draws the
right conclusion and records no failure that did not happen (issue 13, part 2).

The steps are the durable changes each transaction makes, in its order: renames and removals on the
ESP, EFI variable writes and deletes, the state update, each event appended. For every k the k-th
step is cut (the process dies there: `Crash` is a BaseException nothing in bootguard catches), then
the loader model boots the machine again and the real early-boot step runs. Within one state write,
tests/unit/test_powercut.py already proves the store is the old or the new state.
"""

from __future__ import annotations

import contextlib
import functools
import uuid
from typing import TYPE_CHECKING

import pytest

from bootguard.demo.simloader import SimulatedLoader
from bootguard.seams import esp as esp_seam
from bootguard.seams.efivars import EfiVars
from bootguard.seams.statestore import StateStore
from tests.hosttree import HostTree

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from bootguard.model.state import State

LOADER = "systemd-boot 257.13-1~deb13u1"
FAILURES = {"counted-failure", "boot-failed"}


class Crash(BaseException):
    """The power is cut here."""


@contextlib.contextmanager
def cut_at(k: int | None, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Count the durable steps (and cut before the k-th, 0-based); yields the steps done."""
    done: list[str] = []
    with monkeypatch.context() as m:
        for owner, name in (
            (esp_seam, "rename_entry"),
            (esp_seam, "remove_file"),
            (esp_seam, "write_file"),
            (EfiVars, "write_str"),
            (EfiVars, "delete"),
            (StateStore, "update"),
            (StateStore, "append_event"),
            (StateStore, "append_events"),
        ):
            real = getattr(owner, name)

            def step(
                *args: object, _real: Callable[..., object] = real, _name: str = name, **kw: object
            ) -> object:
                if k is not None and len(done) == k:
                    raise Crash(_name)
                done.append(_name)
                return _real(*args, **kw)

            m.setattr(owner, name, step)
        yield done


def _state(host: HostTree) -> State:
    return StateStore(str(host.state)).load().state


def _kinds_since(host: HostTree, count: int) -> list[tuple[str, str | None]]:
    return [(str(e["kind"]), e.get("cause")) for e in host.events()[count:]]  # type: ignore[misc]


def _golden_pinned(root: Path) -> tuple[HostTree, SimulatedLoader]:
    """gen-2 booted and pinned as golden; gen-3 installed next to it."""
    root.mkdir()
    host = HostTree(root)
    host.add_entry("gen-2.conf", version="2")
    host.loader_conf("timeout 0\ndefault gen-2.conf\n")
    loader = SimulatedLoader(str(host.esp), str(host.efivars), LOADER)
    loader.boot()
    assert host.cli("pin-golden")[0] == 0
    host.add_entry("gen-3.conf", version="3")
    return host, loader


def _on_trial(root: Path) -> tuple[HostTree, SimulatedLoader]:
    host, loader = _golden_pinned(root)
    host.loader_conf("timeout 0\ndefault gen-3.conf\n")  # as an installer leaves it
    assert host.cli("trial", "gen-3.conf", "--commit", "cafe0003")[0] == 0
    assert loader.boot().renamed_to is not None  # bootguard-trial+1-1.conf
    host.initrd()
    return host, loader


def _run_cut(
    run: Callable[[], object], k: int | None, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[str], bool]:
    with cut_at(k, monkeypatch) as done:
        try:
            run()
        except Crash:
            return list(done), True
    return list(done), False


def _steps(
    setup: Callable[[Path], tuple[HostTree, SimulatedLoader]],
    run: Callable[[HostTree], object],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> list[str]:
    host, _ = setup(tmp_path / "uncut")
    done, crashed = _run_cut(lambda: run(host), None, monkeypatch)
    assert not crashed
    return done


def _bless(host: HostTree) -> object:
    code, _, err = host.cli("mark", "good")
    assert code == 0, err
    return code


def test_bless_cut_at_every_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    steps = _steps(_on_trial, _bless, tmp_path, monkeypatch)
    assert steps[0] == "rename_entry" and "update" in steps  # the rename is the first durable step
    for k in range(len(steps) + 1):
        host, loader = _on_trial(tmp_path / f"cut{k}")
        before = len(host.events())
        done, crashed = _run_cut(functools.partial(_bless, host), k, monkeypatch)
        assert crashed == (k < len(steps)), k
        loader.boot()
        host.initrd()
        seen = _kinds_since(host, before)
        state = _state(host)
        if not done:  # cut before anything durable: the boot really ended without a verdict
            assert ("counted-failure", "unknown") in seen, (k, seen)
            continue
        assert not [s for s in seen if s[0] in FAILURES], (k, done, seen)
        assert state.trial is None, (k, done)
        assert [(e.outcome, e.commit) for e in state.finished_trials] == [("blessed", "cafe0003")], (k, done)
        history = state.attempts_for("gen-3.conf")
        assert (history.good, history.failures) == (1, 0), (k, done, history)
        assert state.running_commit("gen-3.conf") == "cafe0003"
        assert not [n for n in host.entries() if n.startswith("bootguard-trial")], (k, done, host.entries())
        assert host.get_var("LoaderEntryDefault") is None, (k, done)  # the user's default (none) is back
        nxt = loader.boot().selection.entry
        assert nxt is not None and nxt.filename == "gen-3.conf", (k, done)


def _mark_bad(host: HostTree) -> object:
    code, _, err = host.cli("mark", "bad")
    assert code == 0, err
    return code


def test_mark_bad_cut_at_every_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    steps = _steps(_on_trial, _mark_bad, tmp_path, monkeypatch)
    assert steps[0] == "rename_entry"
    for k in range(len(steps) + 1):
        host, loader = _on_trial(tmp_path / f"cut{k}")
        before = len(host.events())
        done, _ = _run_cut(functools.partial(_mark_bad, host), k, monkeypatch)
        booted = loader.boot().selection.entry
        host.initrd()
        seen = _kinds_since(host, before)
        state = _state(host)
        if not done:  # nothing durable: the trial's try simply ended without a verdict; try 2 runs
            assert booted is not None and booted.filename.startswith("bootguard-trial"), k
            assert ("counted-failure", "unknown") in seen, (k, seen)
            continue
        assert booted is not None and booted.filename == "bootguard-golden.conf", (k, done)
        assert not [s for s in seen if s[0] in FAILURES and s[1] != "validation-failed"], (k, done, seen)
        history = state.attempts_for("gen-3.conf")
        assert (history.failures, history.last_cause) == (1, "validation-failed"), (k, done, history)
        assert state.trial is None
        assert [(e.outcome, e.cause) for e in state.finished_trials] == [("failed", "validation-failed")]


def _used_up(root: Path) -> tuple[HostTree, SimulatedLoader]:
    """A trial of two tries that both died before bootguard ran; the machine is on golden now."""
    host, loader = _golden_pinned(root)
    assert host.cli("trial", "gen-3.conf")[0] == 0
    loader.boot()
    loader.boot()
    golden = loader.boot().selection.entry
    assert golden is not None and golden.filename == "bootguard-golden.conf"
    return host, loader


def _step(host: HostTree) -> object:
    code, _, err = host.cli("--json", "initrd", "--boot-id", str(uuid.uuid4()), "--reboot-command", "true")
    assert code == 0, err
    return code


def test_trial_end_cut_at_every_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    steps = _steps(_used_up, _step, tmp_path, monkeypatch)
    assert "update" in steps and "remove_file" in steps
    for k in range(len(steps) + 1):
        host, loader = _used_up(tmp_path / f"cut{k}")
        _run_cut(functools.partial(_step, host), k, monkeypatch)
        nxt = loader.boot().selection.entry
        assert nxt is not None and nxt.filename == "bootguard-golden.conf", k
        host.initrd()
        state = _state(host)
        history = state.attempts_for("gen-3.conf")
        assert history.failures == 2, (k, history)  # each failed try counted once, never again
        assert history.last_cause == "failed-before-bootguard"
        assert state.trial is None
        assert [(e.outcome, e.cause) for e in state.finished_trials] == [
            ("failed", "failed-before-bootguard")
        ]
        assert not [n for n in host.entries() if n.startswith("bootguard-trial")], (k, host.entries())
