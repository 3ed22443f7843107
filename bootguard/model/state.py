"""The bootguard state record: golden generation, running trial, per-entry attempt counters.

A small versioned JSON document (`"format": "bootguard-state"`, `"version": 1`). Parsing is
strict: a wrong type, a foreign file or a future version is a `StateError` naming the file, never
a silent reset, because these counters decide whether a host falls back to its golden
generation. Keys this version does not know are kept in `extra` and written back unchanged, so
a newer bootguard's additions survive a round trip through an older one. Pure, standard library
only; `json` is imported where it is used.
"""

from __future__ import annotations

import enum

from bootguard.errors import StateError
from bootguard.model._frozen import Frozen

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from typing import Any, Final, Literal

FORMAT = "bootguard-state"
VERSION = 1
MAX_FAILED_COMMITS = 100


class Outcome(enum.Enum):
    """What one boot of an entry came to, as far as the attempt counters are concerned."""

    ATTEMPTED = "attempted"
    GOOD = "good"
    FAILED = "failed"


class Golden(Frozen):
    """The pinned known-good entry the host falls back to. `cmdline` is a token of its kernel command
    line that identifies its boots where the loader does not say which entry it booted (GRUB)."""

    __slots__ = ("cmdline", "commit", "entry_id", "filename", "generation", "pinned_at")

    entry_id: str
    filename: str
    generation: int | None
    pinned_at: float
    cmdline: str | None
    commit: str | None  # the configuration commit golden was built from, when known

    def __init__(
        self,
        entry_id: str,
        filename: str,
        generation: int | None,
        pinned_at: float,
        *,
        cmdline: str | None = None,
        commit: str | None = None,
    ) -> None:
        self._init(
            entry_id=entry_id,
            filename=filename,
            generation=generation,
            pinned_at=float(pinned_at),
            cmdline=cmdline,
            commit=commit,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "entry_id": self.entry_id,
            "filename": self.filename,
            "generation": self.generation,
            "pinned_at": self.pinned_at,
        }
        if self.cmdline is not None:
            out["cmdline"] = self.cmdline
        if self.commit is not None:
            out["commit"] = self.commit
        return out

    @classmethod
    def from_dict(cls, obj: object, where: str) -> Golden:
        r = _Reader(obj, where)
        return cls(
            r.string("entry_id"),
            r.string("filename"),
            r.opt_int("generation"),
            r.number("pinned_at"),
            cmdline=r.opt_str("cmdline"),
            commit=r.opt_str("commit"),
        )


class Backend(enum.Enum):
    """Who counts a trial's tries."""

    LOADER = "loader"  # systemd-boot, in the trial copy's file name (`+LEFT-DONE`)
    STATE = "state"  # bootguard, in this state; every try is a one-shot boot, golden is the default


class Trial(Frozen):
    """An entry being tried. With the STATE backend, `attempt` is the pending marker: the number of the
    try that was armed (written before the one-shot), and `failures` how many tries ended badly."""

    __slots__ = (
        "attempt",
        "backend",
        "cmdline",
        "commit",
        "copy_filename",
        "entry_id",
        "failures",
        "filename",
        "generation",
        "saved_default",
        "started_at",
        "tries",
    )

    entry_id: str
    filename: str
    tries: int
    started_at: float
    generation: int | None
    saved_default: str | None
    copy_filename: str | None
    backend: Backend
    attempt: int
    failures: int
    cmdline: str | None  # identifies its boots where the loader does not say (GRUB), as Golden's
    commit: str | None  # the configuration commit the trial was built from (GitOps), when known

    def __init__(
        self,
        entry_id: str,
        filename: str,
        tries: int,
        started_at: float,
        *,
        generation: int | None = None,
        saved_default: str | None = None,
        copy_filename: str | None = None,
        backend: Backend = Backend.LOADER,
        attempt: int = 0,
        failures: int = 0,
        cmdline: str | None = None,
        commit: str | None = None,
    ) -> None:
        self._init(
            entry_id=entry_id,
            filename=filename,
            tries=tries,
            started_at=float(started_at),
            generation=generation,
            saved_default=saved_default,
            copy_filename=copy_filename,
            backend=backend,
            attempt=attempt,
            failures=failures,
            cmdline=cmdline,
            commit=commit,
        )

    @property
    def used_up(self) -> bool:
        """Every try ended badly (STATE backend; the loader's own counter says so for LOADER)."""
        return self.failures >= self.tries

    def to_dict(self) -> dict[str, Any]:
        return {
            "entry_id": self.entry_id,
            "filename": self.filename,
            "tries": self.tries,
            "started_at": self.started_at,
            "generation": self.generation,
            "saved_default": self.saved_default,
            "copy_filename": self.copy_filename,
            "backend": self.backend.value,
            "attempt": self.attempt,
            "failures": self.failures,
            "cmdline": self.cmdline,
            "commit": self.commit,
        }

    @classmethod
    def from_dict(cls, obj: object, where: str) -> Trial:
        r = _Reader(obj, where)
        backend = r.opt_str("backend") or Backend.LOADER.value  # absent in states written before 0.2
        try:
            parsed = Backend(backend)
        except ValueError:
            raise r._fail("backend", "'loader' or 'state'") from None
        return cls(
            r.string("entry_id"),
            r.string("filename"),
            r.integer("tries"),
            r.number("started_at"),
            generation=r.opt_int("generation"),
            saved_default=r.opt_str("saved_default"),
            copy_filename=r.opt_str("copy_filename"),
            backend=parsed,
            attempt=r.opt_int("attempt") or 0,
            failures=r.opt_int("failures") or 0,
            cmdline=r.opt_str("cmdline"),
            commit=r.opt_str("commit"),
        )


class Attempts(Frozen):
    """How often one generation was booted, blessed and failed, and the commit it was built from.

    Kept per generation (`generation_key`: the entry's file name without the boot counter, a trial
    copy under the trial's entry), not per file name of the moment: the loader renames counted files.
    """

    __slots__ = ("boots", "commit", "failures", "good", "last_cause", "last_time")

    boots: int
    good: int
    failures: int
    last_cause: str | None
    last_time: float | None
    commit: str | None  # set when a trial built from this commit was blessed

    def __init__(
        self,
        boots: int = 0,
        good: int = 0,
        failures: int = 0,
        last_cause: str | None = None,
        last_time: float | None = None,
        *,
        commit: str | None = None,
    ) -> None:
        self._init(
            boots=boots,
            good=good,
            failures=failures,
            last_cause=last_cause,
            last_time=None if last_time is None else float(last_time),
            commit=commit,
        )

    def record(self, outcome: Outcome, cause: str | None, when: float) -> Attempts:
        """These counters after one more `outcome`."""
        if outcome is Outcome.ATTEMPTED:
            return self.evolve(boots=self.boots + 1, last_time=float(when))
        if outcome is Outcome.GOOD:
            return self.evolve(good=self.good + 1, last_time=float(when))
        if outcome is Outcome.FAILED:
            return self.evolve(failures=self.failures + 1, last_cause=cause, last_time=float(when))
        raise AssertionError(outcome)  # pragma: no cover - exhaustive over Outcome

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "boots": self.boots,
            "good": self.good,
            "failures": self.failures,
            "last_cause": self.last_cause,
            "last_time": self.last_time,
        }
        if self.commit is not None:
            out["commit"] = self.commit
        return out

    @classmethod
    def from_dict(cls, obj: object, where: str) -> Attempts:
        r = _Reader(obj, where)
        return cls(
            r.integer("boots"),
            r.integer("good"),
            r.integer("failures"),
            r.opt_str("last_cause"),
            r.opt_number("last_time"),
            commit=r.opt_str("commit"),
        )


BLESSED: Final = "blessed"  # TrialEnd outcomes: plain strings, no enum on the early-boot path
FAILED: Final = "failed"
TRIAL_END_OUTCOMES = (BLESSED, FAILED)
MAX_FINISHED_TRIALS = 20

if TYPE_CHECKING:
    TrialOutcome = Literal["blessed", "failed"]


class TrialEnd(Frozen):
    """How one trial ended: blessed, or failed (rolled back after its tries, or rejected on a boot).

    `cause` is the event log's cause word (kernel-panic, watchdog-reset, initrd-failure,
    validation-failed, failed-before-bootguard, ...; None for a blessed trial). `seq` is unique and
    increasing within one state, so a reader (GitOps) can remember which ends it has acted on.
    """

    __slots__ = ("at", "cause", "commit", "entry_id", "filename", "generation", "outcome", "seq")

    entry_id: str
    filename: str
    generation: int | None
    commit: str | None
    outcome: TrialOutcome
    cause: str | None
    at: float
    seq: int

    def __init__(
        self,
        entry_id: str,
        *,
        generation: int | None,
        commit: str | None,
        outcome: TrialOutcome,
        cause: str | None,
        at: float,
        seq: int,
        filename: str | None = None,
    ) -> None:
        if outcome not in TRIAL_END_OUTCOMES:
            raise ValueError(f"a trial ends {' or '.join(TRIAL_END_OUTCOMES)}, not {outcome!r}")
        self._init(
            entry_id=entry_id,
            filename=filename or entry_id,
            generation=generation,
            commit=commit,
            outcome=outcome,
            cause=cause,
            at=float(at),
            seq=seq,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "entry_id": self.entry_id,
            "filename": self.filename,
            "generation": self.generation,
            "commit": self.commit,
            "outcome": self.outcome,
            "cause": self.cause,
            "at": self.at,
            "seq": self.seq,
        }

    @classmethod
    def from_dict(cls, obj: object, where: str) -> TrialEnd:
        r = _Reader(obj, where)
        outcome = r.string("outcome")
        if outcome not in TRIAL_END_OUTCOMES:
            raise r._fail("outcome", "'blessed' or 'failed'")
        return cls(
            r.string("entry_id"),
            filename=r.opt_str("filename"),
            generation=r.opt_int("generation"),
            commit=r.opt_str("commit"),
            outcome=outcome,  # type: ignore[arg-type]  # checked above
            cause=r.opt_str("cause"),
            at=r.number("at"),
            seq=r.integer("seq"),
        )


GOLDEN_COPY_STEM = "bootguard-golden"  # bootguard's copies on the ESP (services/fallback.py writes them)
TRIAL_COPY_STEM = "bootguard-trial"


def generation_key(filename: str) -> str:
    """The name a boot entry's history is kept under: its file name without the boot counter, which
    the loader changes on every counted boot and a blessing removes (`a+2-1.conf` -> `a.conf`)."""
    from bootguard.model.counter import CountedName

    low = filename.lower()
    suffix = filename[-4:] if low.endswith(".efi") else ".conf"
    return CountedName.parse(filename, suffix).uncounted_filename


_KNOWN_KEYS = frozenset(
    {
        "format",
        "version",
        "seq",
        "golden",
        "trial",
        "attempts",
        "halted",
        "good_streak",
        "failed_commits",
        "finished_trials",
    }
)


class State(Frozen):
    """The whole persistent state. Change it with the `with_*` helpers (they return new values)."""

    __slots__ = (
        "attempts",
        "extra",
        "failed_commits",
        "finished_trials",
        "golden",
        "good_streak",
        "halted",
        "seq",
        "trial",
    )

    seq: int
    golden: Golden | None
    trial: Trial | None
    attempts: tuple[tuple[str, Attempts], ...]
    halted: str | None
    good_streak: int
    failed_commits: tuple[str, ...]
    finished_trials: tuple[TrialEnd, ...]  # newest last, at most MAX_FINISHED_TRIALS
    extra: dict[str, Any]

    def __init__(
        self,
        *,
        seq: int = 0,
        golden: Golden | None = None,
        trial: Trial | None = None,
        attempts: Iterable[tuple[str, Attempts]] | Mapping[str, Attempts] = (),
        halted: str | None = None,
        good_streak: int = 0,
        failed_commits: Iterable[str] = (),
        finished_trials: Iterable[TrialEnd] = (),
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        pairs = attempts.items() if isinstance(attempts, dict) else attempts
        self._init(
            seq=seq,
            golden=golden,
            trial=trial,
            attempts=tuple(sorted(pairs)),  # sorted: equal states compare and serialise equal
            halted=halted,
            good_streak=good_streak,
            failed_commits=tuple(failed_commits),
            finished_trials=tuple(finished_trials)[-MAX_FINISHED_TRIALS:],
            extra=dict(extra) if extra else {},
        )

    @classmethod
    def initial(cls) -> State:
        """The state of a host bootguard has never written to."""
        return cls()

    def __hash__(self) -> int:
        # `extra` is a dict; the canonical JSON form hashes instead.
        return hash(self.to_json())

    # -- queries ---------------------------------------------------------------------------

    def history_key(self, filename: str) -> str:
        """The generation a boot of `filename` belongs to: bootguard's golden copy is golden, its
        trial copy the trial (or the trial it was, once blessed), anything else its own file name
        without the loader's boot counter."""
        key = generation_key(filename)
        stem = key.rpartition(".")[0].lower()
        if stem == GOLDEN_COPY_STEM and self.golden is not None:
            return generation_key(self.golden.filename)
        if stem == TRIAL_COPY_STEM:
            if self.trial is not None:
                return generation_key(self.trial.filename)
            if self.finished_trials:
                return generation_key(self.finished_trials[-1].filename)
        return key

    def attempts_for(self, entry: str) -> Attempts:
        """The counters of the generation `entry` belongs to (all zero when it was never seen)."""
        key = self.history_key(entry)
        for name, value in self.attempts:
            if name == key:
                return value
        return Attempts()

    def running_commit(self, booted: str) -> str | None:
        """The configuration commit of the generation booted as `booted` (an entry file name or id),
        or None when bootguard does not know it."""
        key = self.history_key(booted)
        if self.trial is not None and key == generation_key(self.trial.filename) and self.trial.commit:
            return self.trial.commit
        if self.golden is not None and key == generation_key(self.golden.filename) and self.golden.commit:
            return self.golden.commit
        return self.attempts_for(key).commit

    @property
    def attempts_map(self) -> dict[str, Attempts]:
        """A fresh dict of all counters (changing it does not change the state)."""
        return dict(self.attempts)

    # -- updates ---------------------------------------------------------------------------

    def with_attempt(self, entry_id: str, outcome: Outcome, cause: str | None, time: float) -> State:
        """Record one outcome of `entry_id`; GOOD extends the good streak, FAILED ends it."""
        counters = self.attempts_map
        counters[self.history_key(entry_id)] = self.attempts_for(entry_id).record(outcome, cause, time)
        streak = self.good_streak
        if outcome is Outcome.GOOD:
            streak += 1
        elif outcome is Outcome.FAILED:
            streak = 0
        return self.evolve(attempts=tuple(sorted(counters.items())), good_streak=streak)

    def without_attempts(self, entry_id: str) -> State:
        """Forget the counters of an entry (e.g. after its file was removed)."""
        return self.evolve(attempts=tuple((k, v) for k, v in self.attempts if k != entry_id))

    def with_trial_end(self, outcome: TrialOutcome, cause: str | None, at: float) -> State:
        """End the running trial: recorded in `finished_trials`; a blessed trial's commit stays with
        its generation's history (`running_commit`). The caller writes this in the same state update
        that blesses the trial or rolls it back, so the two cannot be torn apart."""
        t = self.trial
        if t is None:
            return self
        seq = self.finished_trials[-1].seq + 1 if self.finished_trials else 1
        end = TrialEnd(
            t.entry_id,
            filename=t.filename,
            generation=t.generation,
            commit=t.commit,
            outcome=outcome,
            cause=cause,
            at=at,
            seq=seq,
        )
        counters = self.attempts_map
        if outcome == BLESSED and t.commit is not None:
            key = generation_key(t.filename)
            counters[key] = self.attempts_for(key).evolve(commit=t.commit)
        return self.evolve(
            trial=None,
            finished_trials=(*self.finished_trials, end)[-MAX_FINISHED_TRIALS:],
            attempts=tuple(sorted(counters.items())),
        )

    def with_golden(self, golden: Golden | None) -> State:
        return self.evolve(golden=golden)

    def with_trial(self, trial: Trial | None) -> State:
        return self.evolve(trial=trial)

    def with_halted(self, reason: str | None) -> State:
        """Stop (reason) or resume (None) rearranging entries."""
        return self.evolve(halted=reason)

    def with_failed_commit(self, commit: str) -> State:
        """Remember a commit that failed to boot or validate (the newest MAX_FAILED_COMMITS)."""
        kept = (*(c for c in self.failed_commits if c != commit), commit)
        return self.evolve(failed_commits=kept[-MAX_FAILED_COMMITS:])

    def with_extra(self, key: str, value: Any) -> State:
        if key in _KNOWN_KEYS:
            raise ValueError(f"{key!r} is a state field, not an extra key")
        return self.evolve(extra={**self.extra, key: value})

    def next_seq(self) -> State:
        """The same state with the sequence number the store gives its next write."""
        return self.evolve(seq=self.seq + 1)

    # -- serialisation ---------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = dict(self.extra)
        doc.update(
            format=FORMAT,
            version=VERSION,
            seq=self.seq,
            golden=None if self.golden is None else self.golden.to_dict(),
            trial=None if self.trial is None else self.trial.to_dict(),
            attempts={k: v.to_dict() for k, v in self.attempts},
            halted=self.halted,
            good_streak=self.good_streak,
            failed_commits=list(self.failed_commits),
            finished_trials=[t.to_dict() for t in self.finished_trials],
        )
        return doc

    def to_json(self) -> str:
        from bootguard.model.jsoncodec import dumps

        return dumps(self.to_dict(), sort_keys=True, indent=1, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes, *, source: str = "state") -> State:
        """Parse and validate; StateError naming `source` on junk, foreign files or future versions."""
        from bootguard.model.jsoncodec import loads

        try:
            obj = loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise StateError(f"{source}: not valid JSON ({exc})") from exc
        return cls.from_dict(obj, source=source)

    @classmethod
    def from_dict(cls, obj: object, *, source: str = "state") -> State:
        if not isinstance(obj, dict) or obj.get("format") != FORMAT:
            raise StateError(
                f'{source}: not a bootguard state file (no "format": "{FORMAT}" marker)',
                hint="move the foreign file out of the state directory",
            )
        r = _Reader(obj, source)
        version = r.integer("version")
        if version > VERSION:
            raise StateError(
                f"{source}: state format version {version} is newer than this bootguard knows ({VERSION})",
                hint="upgrade bootguard, or restore the state from before the newer version wrote it",
            )
        if version < 1:
            raise StateError(f"{source}: invalid state format version {version}")
        return cls(
            seq=r.integer("seq"),
            golden=r.opt_obj("golden", Golden.from_dict),
            trial=r.opt_obj("trial", Trial.from_dict),
            attempts=r.mapping("attempts", Attempts.from_dict),
            halted=r.opt_str("halted"),
            good_streak=r.integer("good_streak"),
            failed_commits=r.str_list("failed_commits"),
            finished_trials=r.obj_list("finished_trials", TrialEnd.from_dict),
            extra={k: v for k, v in obj.items() if k not in _KNOWN_KEYS},
        )


class _Reader:
    """Typed access to one JSON object, with errors that say which file and key are wrong."""

    __slots__ = ("obj", "where")

    def __init__(self, obj: object, where: str) -> None:
        if not isinstance(obj, dict):
            raise StateError(f"{where}: expected a JSON object, got {type(obj).__name__}")
        self.obj: dict[str, Any] = obj
        self.where = where

    def _fail(self, key: str, expected: str) -> StateError:
        if key not in self.obj:
            return StateError(f"{self.where}: missing key {key!r} ({expected})")
        return StateError(f"{self.where}: {key!r} must be {expected}, got {self.obj[key]!r}")

    def integer(self, key: str) -> int:
        value = self.obj.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self._fail(key, "a non-negative integer")
        return value

    def opt_int(self, key: str) -> int | None:
        if self.obj.get(key) is None:
            return None
        return self.integer(key)

    def number(self, key: str) -> float:
        value = self.obj.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._fail(key, "a number")
        return float(value)

    def opt_number(self, key: str) -> float | None:
        if self.obj.get(key) is None:
            return None
        return self.number(key)

    def string(self, key: str) -> str:
        value = self.obj.get(key)
        if not isinstance(value, str) or not value:
            raise self._fail(key, "a non-empty string")
        return value

    def opt_str(self, key: str) -> str | None:
        if self.obj.get(key) is None:
            return None
        return self.string(key)

    def str_list(self, key: str) -> tuple[str, ...]:
        value = self.obj.get(key)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self._fail(key, "a list of strings")
        return tuple(value)

    def obj_list(self, key: str, parse: Callable[[object, str], Any]) -> tuple[Any, ...]:
        """A list of objects; absent (a state written before the key existed) is empty."""
        value = self.obj.get(key)
        if value is None:
            return ()
        if not isinstance(value, list):
            raise self._fail(key, "a list")
        return tuple(parse(v, f"{self.where}: {key}[{i}]") for i, v in enumerate(value))

    def opt_obj(self, key: str, parse: Callable[[object, str], Any]) -> Any:
        value = self.obj.get(key)
        return None if value is None else parse(value, f"{self.where}: {key}")

    def mapping(self, key: str, parse: Callable[[object, str], Any]) -> tuple[tuple[str, Any], ...]:
        value = self.obj.get(key)
        if not isinstance(value, dict):
            raise self._fail(key, "an object")
        return tuple((k, parse(v, f"{self.where}: {key}.{k}")) for k, v in value.items())
