"""Boot facts: what runs, golden, the trial, halted, and counters derived from the event log.

Counters are counts of events in the append-only event log, so they only grow (a scrape never sees
one go down unless the log itself is deleted, which Prometheus treats as a counter reset). Every
cause of the closed vocabulary below is written, zero included, so `increase()` sees the first
failure too.
"""

from __future__ import annotations

from bootguard.errors import BootguardError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from bootguard.metrics.sources import Sources
    from bootguard.metrics.textfile import Out
    from bootguard.model.entry import BootEntry
    from bootguard.model.events import Event
    from bootguard.model.state import State
    from bootguard.services.bootview import BootView

# The `cause` label of bootguard_boot_failures_total: the event log's cause words, folded into a
# closed set (low cardinality, stable across versions).
CAUSES = (
    "panic",
    "watchdog-reset",
    "initrd-failure",
    "failed-before-bootguard",
    "check-failed",
    "deadline",
    "unknown",
)
_FOLD = {
    "kernel-panic": "panic",
    "panic": "panic",
    "watchdog-reset": "watchdog-reset",
    "watchdog": "watchdog-reset",
    "initrd-failure": "initrd-failure",
    "failed-before-bootguard": "failed-before-bootguard",
    "validation-failed": "check-failed",
    "check-failed": "check-failed",
    "checks-failed": "check-failed",
    "boot-deadline": "deadline",
    "deadline": "deadline",
}
# A failed boot is one of these events (a watchdog-reset event accompanies a counted failure with the
# same cause, so it is counted separately, in bootguard_watchdog_resets_total).
# `halted` is golden failing validation: not marked bad (nothing to fall back to), but a failed boot.
_FAILED_BOOT = ("counted-failure", "boot-failed", "marked-bad", "halted")
_TRIAL_EVENTS = ("trial-started", "trial-finished", "rolled-back")


def fold_cause(cause: str | None) -> str:
    return _FOLD.get(cause or "", "unknown")


class _Tally:
    def __init__(self) -> None:
        self.boots = {"true": 0, "false": 0}
        self.failures = dict.fromkeys(CAUSES, 0)
        self.rollbacks = self.resets = self.blessed_trials = self.halts = 0
        self.last: dict[str, float] = {}
        self.last_trial_event: str | None = None
        self.failed_since_trial = 0
        self.tries_left_seen: int | None = None  # the loader's count at the last counted boot of the trial
        self.deadline_boots: set[str] = set()

    def add(self, e: Event) -> None:
        kind = e.kind.value
        self.last[kind] = max(self.last.get(kind, 0.0), e.time)
        if kind == "boot-attempted":
            self.boots["true" if e.data.get("counted") else "false"] += 1
            left = e.data.get("tries_left")
            if (
                e.data.get("counted")
                and isinstance(left, int)
                and (e.entry or "").startswith("bootguard-trial")
            ):
                self.tries_left_seen = left
        elif kind == "not-counted":
            self.boots["false"] += 1
        elif kind == "validation" and e.cause == "boot-deadline" and e.boot_id:
            self.deadline_boots.add(e.boot_id)
        elif kind == "watchdog-reset":
            self.resets += 1
        elif kind == "rolled-back":
            self.rollbacks += 1
        elif kind == "trial-finished":
            self.blessed_trials += 1
        elif kind == "halted":
            self.halts += 1
        if kind in _FAILED_BOOT:
            deadline = kind in ("marked-bad", "halted") and e.boot_id in self.deadline_boots
            self.failures["deadline" if deadline else fold_cause(e.cause)] += 1
            self.failed_since_trial += 1
        if kind in _TRIAL_EVENTS:
            self.last_trial_event = kind
            self.failed_since_trial = 0
            self.tries_left_seen = None


def collect(src: Sources, out: Out) -> None:
    from bootguard.seams.statestore import StateStore

    store = StateStore(src.state_dir)
    state = store.load().state
    events = list(store.read_events().events)
    tally = _Tally()
    for e in events:
        tally.add(e)
    view = _view(src)
    _running(out, state, view.booted if view is not None else None, _booted_name(src, view, events))
    _golden_trial(out, state, view, tally)
    _counters(out, state, tally)


def _view(src: Sources) -> BootView | None:
    """The loader's view (booted entry, the trial copy's counter); None where there is no ESP/efivarfs."""
    from bootguard.services.bootview import BootView

    try:
        return BootView.gather(src.esp, src.xbootldr, src.efivars)
    except BootguardError:
        return None


def _booted_name(src: Sources, view: BootView | None, events: list[Event]) -> str | None:
    """The booted entry: the loader's word when there is an ESP to ask, else what the early-boot step
    saw last (its boot event), else the entry the last validation ran on."""
    if view is not None and view.booted is not None:
        return view.booted.filename
    if view is not None and view.vars.entry_selected:
        return view.vars.entry_selected
    for e in reversed(events):
        if e.kind.value in ("boot-attempted", "not-counted") and e.entry:
            return e.entry
    from bootguard.metrics import validation

    doc = validation.read(src.state_dir)
    entry = doc.get("entry") if doc else None
    return entry if isinstance(entry, str) else None


def _running(out: Out, state: State, booted: BootEntry | None, name: str | None) -> None:
    from bootguard.model.nixos import generation_of
    from bootguard.model.state import generation_key

    key = state.history_key(name) if name is not None else None
    golden, trial = state.golden, state.trial
    on_golden = key is not None and golden is not None and key == generation_key(golden.filename)
    on_trial = key is not None and trial is not None and key == generation_key(trial.filename)
    generation = generation_of(booted) if booted is not None else None
    if on_golden and golden is not None and golden.generation is not None:
        generation = golden.generation
    elif on_trial and trial is not None and trial.generation is not None:
        generation = trial.generation
    else:  # a blessed trial's copy is gone once blessed: its end says which generation it was
        ended = [t for t in state.finished_trials if key is not None and generation_key(t.filename) == key]
        if ended and ended[-1].generation is not None:
            generation = ended[-1].generation
    commit = state.running_commit(name) if name is not None else None
    out.gauge(
        "bootguard_running_info",
        "The booted generation's entry file (1); `commit`: the configuration commit it was built from.",
        1 if key is not None else None,
        entry=key,
        commit=commit,
    )
    out.gauge("bootguard_running_generation", "Generation number of the booted entry (NixOS).", generation)
    known = key is not None
    out.gauge(
        "bootguard_running_golden",
        "1 when the booted entry is the golden one.",
        int(on_golden) if known else None,
    )
    out.gauge(
        "bootguard_running_trial",
        "1 when the booted entry is the running trial.",
        int(on_trial) if known else None,
    )


def _golden_trial(out: Out, state: State, view: BootView | None, tally: _Tally) -> None:
    from bootguard.model.state import Backend
    from bootguard.services import fallback

    g, t = state.golden, state.trial
    out.gauge(
        "bootguard_golden_info",
        "The pinned golden entry (1 when one is pinned).",
        1 if g is not None else None,
        entry=None if g is None else g.filename,
        generation=None if g is None or g.generation is None else str(g.generation),
        commit=None if g is None else g.commit,
    )
    out.gauge("bootguard_golden_pinned", "1 when a golden entry is pinned.", int(g is not None))
    out.gauge(
        "bootguard_golden_generation",
        "Generation number of the golden entry.",
        None if g is None else g.generation,
    )
    out.gauge("bootguard_trial_active", "1 while a new generation is being tried.", int(t is not None))
    out.gauge(
        "bootguard_trial_info",
        "The entry being tried (1 while a trial runs).",
        1 if t is not None else None,
        entry=None if t is None else t.filename,
        generation=None if t is None or t.generation is None else str(t.generation),
        commit=None if t is None else t.commit,
        backend=None if t is None else t.backend.value,
    )
    left: int | None = None
    if t is not None:
        copy = fallback.trial_copy(view) if view is not None and t.backend is Backend.LOADER else None
        if copy is not None and copy.tries_left is not None:
            left = copy.tries_left
        elif t.backend is Backend.STATE:
            left = max(0, t.tries - t.failures)
        elif tally.tries_left_seen is not None:  # no ESP to ask: what the early-boot step saw
            left = tally.tries_left_seen
        else:
            left = max(0, t.tries - tally.failed_since_trial)
    out.gauge("bootguard_trial_tries", "Tries the running trial was given.", None if t is None else t.tries)
    out.gauge(
        "bootguard_trial_tries_left", "Tries the running trial has left before the host falls back.", left
    )
    out.gauge(
        "bootguard_trial_failed_boots",
        "Boots of the running trial that failed so far (0 when no trial runs).",
        tally.failed_since_trial if t is not None else 0,
    )
    out.gauge(
        "bootguard_trial_started_timestamp_seconds",
        "When the running trial was staged.",
        None if t is None else t.started_at,
    )
    out.gauge(
        "bootguard_halted",
        "1 when bootguard stopped rearranging boots (golden failed too).",
        int(state.halted is not None),
    )
    out.gauge(
        "bootguard_fell_back_to_golden",
        "1 when the last trial ended with the host back on golden and no trial was staged since.",
        int(tally.last_trial_event == "rolled-back"),
    )


def _counters(out: Out, state: State, tally: _Tally) -> None:
    out.family(
        "bootguard_boots_total",
        "counter",
        "Boots bootguard's early-boot step saw, by whether the loader counted them.",
    )
    for counted, n in sorted(tally.boots.items()):
        out.sample("bootguard_boots_total", n, counted=counted)
    out.family("bootguard_boot_failures_total", "counter", "Failed boots by cause.")
    for cause in CAUSES:
        out.sample("bootguard_boot_failures_total", tally.failures[cause], cause=cause)
    out.family(
        "bootguard_rollbacks_total",
        "counter",
        "Trials that used up their tries: the host fell back to golden.",
    )
    out.sample("bootguard_rollbacks_total", tally.rollbacks)
    out.family("bootguard_trials_blessed_total", "counter", "Trials that passed and were blessed.")
    out.sample("bootguard_trials_blessed_total", tally.blessed_trials)
    out.family("bootguard_watchdog_resets_total", "counter", "Boots ended by a hardware watchdog reset.")
    out.sample("bootguard_watchdog_resets_total", tally.resets)
    out.family("bootguard_halts_total", "counter", "Times bootguard halted because golden failed validation.")
    out.sample("bootguard_halts_total", tally.halts)
    for kind, name, text in (
        ("blessed", "bootguard_last_good_boot_timestamp_seconds", "When a boot was last blessed."),
        (
            "rolled-back",
            "bootguard_last_rollback_timestamp_seconds",
            "When the host last fell back to golden.",
        ),
        (
            "watchdog-reset",
            "bootguard_last_watchdog_reset_timestamp_seconds",
            "When the watchdog last reset the host.",
        ),
        ("boot-attempted", "bootguard_last_boot_timestamp_seconds", "When the early-boot step last ran."),
    ):
        out.gauge(name, text, tally.last.get(kind))
    # Per-entry counters kept in the state (one series per boot entry: a handful per host).
    attempts = sorted(state.attempts_map.items())
    for name, field, text in (
        ("bootguard_boot_attempts_total", "boots", "Boots of each entry seen by bootguard."),
        ("bootguard_boot_good_total", "good", "Boots of each entry validated good."),
    ):
        out.family(name, "counter", text)
        for entry, a in attempts:
            out.sample(name, getattr(a, field), entry=entry)
