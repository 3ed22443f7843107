"""The state record: round trips, update helpers and strict validation of foreign or damaged input."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bootguard.errors import StateError
from bootguard.model._frozen import FrozenError
from bootguard.model.state import (
    BLESSED,
    FAILED,
    FORMAT,
    MAX_FAILED_COMMITS,
    MAX_FINISHED_TRIALS,
    VERSION,
    Attempts,
    Golden,
    Outcome,
    State,
    Trial,
    TrialEnd,
    generation_key,
)

# A small alphabet with the characters that break naive JSON or file-name handling.
names = st.text(st.sampled_from('ab+-._ 0é☃"\\\n\x00'), min_size=1, max_size=12)
opt_names = st.none() | names
times = st.floats(min_value=0, max_value=4e9, allow_nan=False)
counts = st.integers(min_value=0, max_value=2**40)

commits = st.none() | st.text(st.sampled_from("0123456789abcdef"), min_size=4, max_size=40)
goldens = st.builds(Golden, names, names, st.none() | counts, times, commit=commits)
trials = st.builds(
    Trial,
    names,
    names,
    counts,
    times,
    generation=st.none() | counts,
    saved_default=opt_names,
    copy_filename=opt_names,
    commit=commits,
)
attempts = st.builds(Attempts, counts, counts, counts, opt_names, st.none() | times, commit=commits)
trial_ends = st.builds(
    TrialEnd,
    names,
    filename=opt_names,
    generation=st.none() | counts,
    commit=commits,
    outcome=st.sampled_from([BLESSED, FAILED]),
    cause=opt_names,
    at=times,
    seq=counts,
)
states = st.builds(
    State,
    seq=counts,
    golden=st.none() | goldens,
    trial=st.none() | trials,
    attempts=st.dictionaries(names, attempts, max_size=4),
    halted=opt_names,
    good_streak=counts,
    failed_commits=st.lists(names, max_size=4),
    finished_trials=st.lists(trial_ends, max_size=3),
    extra=st.dictionaries(st.sampled_from(["future_a", "x-y", "é"]), st.integers() | names, max_size=3),
)


@given(states)
def test_any_state_round_trips_through_json(state: State) -> None:
    """Every representable state serialises and parses back to an equal value."""
    assert State.from_json(state.to_json(), source="x") == state


def test_initial_state_is_empty() -> None:
    """A host never written to has no golden pin, no trial, no counters and seq 0."""
    s = State.initial()
    assert (s.seq, s.golden, s.trial, s.attempts, s.halted, s.good_streak) == (0, None, None, (), None, 0)
    assert State.from_json(s.to_json()) == s


def test_state_is_frozen() -> None:
    """Assigning to a field raises instead of silently mutating shared state."""
    with pytest.raises(FrozenError):
        State.initial().seq = 3


def test_with_attempt_counts_each_outcome_and_the_good_streak() -> None:
    """ATTEMPTED counts boots, GOOD counts blessings and extends the streak, FAILED resets it."""
    s = State.initial()
    s = s.with_attempt("a.conf", Outcome.ATTEMPTED, None, 1.0)
    s = s.with_attempt("a.conf", Outcome.GOOD, None, 2.0)
    s = s.with_attempt("a.conf", Outcome.GOOD, None, 3.0)
    assert s.good_streak == 2
    s = s.with_attempt("a.conf", Outcome.FAILED, "watchdog", 4.0)
    assert s.attempts_for("a.conf") == Attempts(
        boots=1, good=2, failures=1, last_cause="watchdog", last_time=4.0
    )
    assert s.good_streak == 0
    assert s.attempts_for("never-seen.conf") == Attempts()


def test_attempt_order_does_not_change_equality() -> None:
    """Counters recorded in a different order give an equal state and identical JSON."""
    a = (
        State.initial()
        .with_attempt("x", Outcome.ATTEMPTED, None, 1)
        .with_attempt("y", Outcome.ATTEMPTED, None, 1)
    )
    b = (
        State.initial()
        .with_attempt("y", Outcome.ATTEMPTED, None, 1)
        .with_attempt("x", Outcome.ATTEMPTED, None, 1)
    )
    assert a == b
    assert a.to_json() == b.to_json()
    assert hash(a) == hash(b)


def test_without_attempts_forgets_one_entry() -> None:
    """Forgetting one entry's counters keeps the others."""
    s = State.initial().with_attempt("x", Outcome.FAILED, "c", 1).with_attempt("y", Outcome.GOOD, None, 1)
    assert [k for k, _ in s.without_attempts("x").attempts] == ["y"]


def test_failed_commits_are_deduplicated_and_bounded() -> None:
    """A repeated commit moves to the end; only the newest MAX_FAILED_COMMITS are kept."""
    s = State.initial()
    for i in range(MAX_FAILED_COMMITS + 5):
        s = s.with_failed_commit(f"c{i}")
    s = s.with_failed_commit("c10")
    assert len(s.failed_commits) == MAX_FAILED_COMMITS
    assert s.failed_commits[-1] == "c10"
    assert s.failed_commits.count("c10") == 1
    assert "c0" not in s.failed_commits


def test_golden_trial_and_halted_helpers() -> None:
    """with_golden/with_trial/with_halted set and clear their field only."""
    g = Golden("a.conf", "a.conf", 7, 100.0)
    t = Trial("b.conf", "b+3.conf", 3, 200.0, generation=8, saved_default="a.conf")
    s = State.initial().with_golden(g).with_trial(t).with_halted("golden failed too")
    assert (s.golden, s.trial, s.halted) == (g, t, "golden failed too")
    s = s.with_trial(None).with_halted(None)
    assert (s.golden, s.trial, s.halted) == (g, None, None)


def test_unknown_keys_survive_a_round_trip() -> None:
    """Keys written by a newer bootguard of the same format version are kept, not dropped."""
    doc = json.loads(State.initial().to_json())
    doc["future_feature"] = {"x": [1, 2]}
    s = State.from_json(json.dumps(doc))
    assert s.extra == {"future_feature": {"x": [1, 2]}}
    assert json.loads(s.to_json())["future_feature"] == {"x": [1, 2]}


def test_with_extra_refuses_a_field_name() -> None:
    """An extra key may not shadow a real field."""
    with pytest.raises(ValueError, match="seq"):
        State.initial().with_extra("seq", 3)


def test_foreign_json_is_rejected_naming_the_file() -> None:
    """A JSON file without the bootguard-state marker is recognised as foreign."""
    with pytest.raises(StateError, match=r"/var/x\.json: not a bootguard state file"):
        State.from_json('{"seq": 1}', source="/var/x.json")


def test_future_version_is_rejected() -> None:
    """A state written by a newer format version is refused rather than misread."""
    doc = json.loads(State.initial().to_json())
    doc["version"] = VERSION + 1
    with pytest.raises(StateError, match="newer") as info:
        State.from_json(json.dumps(doc), source="s.json")
    assert info.value.hint


@pytest.mark.parametrize("text", ["", "{", "\x00\x01binary", "[]", "null", "42"])
def test_junk_is_a_state_error(text: str) -> None:
    """Unparseable or non-object input is a StateError naming the source."""
    with pytest.raises(StateError, match=r"^src: "):
        State.from_json(text, source="src")


def _doc(**changes: object) -> str:
    doc = json.loads(State.initial().with_golden(Golden("a", "a+1.conf", 3, 1.0)).to_json())
    for path, value in changes.items():
        target = doc
        *parents, leaf = path.split("__")
        for p in parents:
            target = target[p]
        if value is _DELETE:
            del target[leaf]
        else:
            target[leaf] = value
    return json.dumps(doc)


_DELETE = object()


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"seq": "1"}, "seq"),
        ({"seq": True}, "seq"),
        ({"seq": -1}, "seq"),
        ({"seq": 1.5}, "seq"),
        ({"seq": _DELETE}, "seq"),
        ({"version": "1"}, "version"),
        ({"good_streak": None}, "good_streak"),
        ({"golden__generation": "x"}, "generation"),
        ({"golden__entry_id": ""}, "entry_id"),
        ({"golden__pinned_at": "now"}, "pinned_at"),
        ({"golden": [1]}, "golden"),
        ({"trial": "b.conf"}, "trial"),
        ({"attempts": []}, "attempts"),
        ({"attempts": {"a": {"boots": 1}}}, "good"),
        ({"failed_commits": [1]}, "failed_commits"),
        ({"halted": 3}, "halted"),
    ],
)
def test_wrong_types_are_rejected_naming_the_key(changes: dict[str, object], key: str) -> None:
    """Each field is type-checked; the error names the file and the offending key."""
    with pytest.raises(StateError, match=rf"^st\.json: .*{key}"):
        State.from_json(_doc(**changes), source="st.json")


def test_marker_constants_are_on_disk() -> None:
    """The file carries the format marker and version so a foreign JSON file is recognised."""
    doc = json.loads(State.initial().to_json())
    assert (doc["format"], doc["version"]) == (FORMAT, 1)


# --- C1: commits of trials, golden and blessed generations; how trials ended ------------------------


def test_a_state_file_from_before_commits_and_trial_ends_still_loads() -> None:
    """Version-1 files written before these keys existed parse, with no commits and no trial ends."""
    doc = json.loads(
        State.initial()
        .with_golden(Golden("a.conf", "a.conf", 3, 1.0))
        .with_trial(Trial("b.conf", "b.conf", 2, 5.0))
        .to_json()
    )
    del doc["finished_trials"], doc["trial"]["commit"]
    s = State.from_json(json.dumps(doc), source="old")
    assert s.finished_trials == ()
    assert s.trial is not None and s.trial.commit is None
    assert s.golden is not None and s.golden.commit is None


def test_trial_end_records_outcome_commit_and_increasing_seq() -> None:
    """Each ended trial is kept newest last with a seq above every earlier one; the trial is cleared
    in the same value, and a blessed trial's commit stays with its generation."""
    s = State.initial().with_golden(Golden("g.conf", "g.conf", 1, 0.0, commit="aaaa"))
    s = s.with_trial(Trial("gen-3.conf", "gen-3.conf", 2, 1.0, generation=3, commit="bbbb"))
    s = s.with_trial_end(FAILED, "kernel-panic", 10.0)
    assert s.trial is None
    s = s.with_trial(Trial("gen-4.conf", "gen-4.conf", 2, 11.0, generation=4, commit="cccc"))
    s = s.with_trial_end(BLESSED, None, 20.0)
    ends = [(e.entry_id, e.generation, e.commit, e.outcome, e.cause, e.at, e.seq) for e in s.finished_trials]
    assert ends == [
        ("gen-3.conf", 3, "bbbb", "failed", "kernel-panic", 10.0, 1),
        ("gen-4.conf", 4, "cccc", "blessed", None, 20.0, 2),
    ]
    assert s.running_commit("gen-4.conf") == "cccc"  # the blessed generation keeps its commit
    assert s.running_commit("gen-3.conf") is None  # a failed one never ran as a generation
    assert s.running_commit("bootguard-golden.conf") == "aaaa"
    assert State.from_json(s.to_json()) == s


def test_trial_ends_keep_the_newest_twenty_and_seq_stays_monotonic() -> None:
    s = State.initial()
    for i in range(MAX_FINISHED_TRIALS + 5):
        s = s.with_trial(Trial(f"e{i}.conf", f"e{i}.conf", 1, float(i))).with_trial_end(FAILED, "unknown", i)
    seqs = [e.seq for e in s.finished_trials]
    assert len(seqs) == MAX_FINISHED_TRIALS
    assert seqs == list(range(6, MAX_FINISHED_TRIALS + 6))


def test_ending_no_trial_changes_nothing() -> None:
    assert State.initial().with_trial_end(BLESSED, None, 1.0) == State.initial()


def test_a_trial_end_with_an_unknown_outcome_is_refused() -> None:
    with pytest.raises(ValueError, match="blessed or failed"):
        TrialEnd("a", generation=None, commit=None, outcome="maybe", cause=None, at=0, seq=1)  # type: ignore[arg-type]
    doc = json.loads(
        State.initial().with_trial(Trial("a", "a", 1, 0.0)).with_trial_end(FAILED, None, 1).to_json()
    )
    doc["finished_trials"][0]["outcome"] = "maybe"
    with pytest.raises(StateError, match="outcome"):
        State.from_json(json.dumps(doc), source="s")


def test_history_belongs_to_the_generation_not_the_counter_of_the_moment() -> None:
    """The loader renames a counted file on every boot; a trial copy is the trial's generation."""
    assert generation_key("gen+3.conf") == "gen.conf"
    assert generation_key("gen+0-2.conf") == "gen.conf"
    assert generation_key("uki+1-1.efi") == "uki.efi"
    s = State.initial().with_trial(Trial("gen-5.conf", "gen-5.conf", 3, 0.0, commit="dddd"))
    s = s.with_attempt("bootguard-trial+2-1.conf", Outcome.FAILED, "kernel-panic", 1.0)
    s = s.with_attempt("bootguard-trial+1-2.conf", Outcome.GOOD, None, 2.0)
    assert s.attempts_map == {"gen-5.conf": Attempts(0, 1, 1, "kernel-panic", 2.0)}
    assert s.running_commit("bootguard-trial+1-2.conf") == "dddd"
    blessed = s.with_trial_end(BLESSED, None, 3.0)
    assert blessed.running_commit("bootguard-trial+1-2.conf") == "dddd"  # the blessed boot itself
    assert blessed.running_commit("gen-5.conf") == "dddd"  # and every later boot of the generation
