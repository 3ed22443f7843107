"""Strict parsing of fleet verdicts (data from other machines) and the fleet options."""

from __future__ import annotations

import json

import pytest

from bootguard.errors import UsageError
from bootguard.gitops.fleet_options import FleetOptions, default_host, host_problem, parse_duration
from bootguard.gitops.fleet_verdict import MAX_BYTES, FleetVerdict, FleetVerdictError, VerdictOutcome, parse

SHA = "ab" * 20


def doc(**changes: object) -> dict[str, object]:
    d: dict[str, object] = {
        "format": "bootguard-verdict",
        "version": 1,
        "host": "web-1",
        "commit": SHA,
        "outcome": "failed",
        "stage": "boot",
        "cause": "panic",
        "at": "2026-12-07T04:00:00+01:00",
        "bootguard": "0.1.0",
    }
    d.update(changes)
    return d


def raw(**changes: object) -> bytes:
    return json.dumps(doc(**changes)).encode()


def test_valid_verdict_round_trips() -> None:
    v = parse(raw())
    assert (v.host, v.commit, v.outcome, v.stage, v.cause) == (
        "web-1",
        SHA,
        VerdictOutcome.FAILED,
        "boot",
        "panic",
    )
    assert parse(v.to_bytes()) == v
    assert v.key == (SHA, "failed", "boot", "2026-12-07T04:00:00+01:00")
    assert v.when.utcoffset() is not None
    assert parse(raw(commit="cd" * 32, outcome="blessed")).blessed  # SHA-256 repositories


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "foreign data"),
        (b'{"format": "other"}', "foreign data"),
        (raw(version=2), "version 2 is not supported"),
        (raw(version="1"), "'version' must be an integer"),
        (raw(version=True), "'version' must be an integer"),
        (raw(extra=1), "unknown ['extra']"),
        (json.dumps({k: v for k, v in doc().items() if k != "cause"}).encode(), "missing ['cause']"),
        (raw(host="../evil"), "not a valid host name"),
        (raw(host="a.lock"), "not a valid host name"),
        (raw(host=7), "'host' must be a string"),
        (raw(commit="HEAD"), "not a full lowercase hex object id"),
        (raw(commit=SHA.upper()), "not a full lowercase hex object id"),
        (raw(outcome="maybe"), "outcome 'maybe'"),
        (raw(stage="Boot Stage"), "not a stage word"),
        (raw(cause="x" * 1001), "'cause' is longer than 1000"),
        (raw(cause="a\nb"), "control characters"),
        (raw(cause=None), "'cause' must be a string"),
        (raw(at="yesterday"), "not an ISO 8601 time"),
        (raw(at="2026-12-07T04:00:00"), "no UTC offset"),
        (raw(bootguard="1.0 beta"), "is not a version"),
        (b"{" + b" " * MAX_BYTES + b"}", "more than the 4096"),
        (b"[" * 100_000 + b"]" * 100_000, "more than the 4096"),
        (b"[" * 500 + b"]" * 500, "foreign data"),
    ],
    ids=lambda val: val if isinstance(val, str) else None,
)
def test_bad_verdicts_are_rejected_in_one_line(data: bytes, why: str) -> None:
    with pytest.raises(FleetVerdictError) as err:
        parse(data)
    assert why in str(err.value) and "\n" not in str(err.value)


def test_local_verdict_is_made_to_fit() -> None:
    v = FleetVerdict.local(
        host="b",
        commit=SHA,
        outcome="failed",
        stage="Pre Build!",
        cause="line one\nline two" + "x" * 2000,
        at="2026-12-07T04:00:00+00:00",
        version="0.1.0",
    )
    assert v.stage == "other" and "\n" not in v.cause and len(v.cause) == 1000
    naive = FleetVerdict.local(
        host="b", commit=SHA, outcome="blessed", stage="boot", cause="", at="2026-12-07T04:00:00", version="1"
    )
    assert naive.when.utcoffset() is not None
    with pytest.raises(FleetVerdictError):
        FleetVerdict.local(
            host="b", commit="nope", outcome="failed", stage="boot", cause="", at="x", version="1"
        )


@pytest.mark.parametrize("name", ["web-1", "a", "db.example", "x_y", "A" * 63])
def test_good_host_names(name: str) -> None:
    assert host_problem(name) is None


@pytest.mark.parametrize("name", ["", "-a", "a/b", "a..b", "a.lock", "a.", "A" * 64, "a b", "ä"])
def test_bad_host_names(name: str) -> None:
    assert host_problem(name) is not None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("30m", 1800), ("6h", 21600), ("2d", 172800), ("1h30m", 5400)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "1x", "-5m", "1.5h"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(UsageError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("nodename", "host"), [("web-1.example.org", "web-1"), ("", "localhost"), ("wéb 1", "w-b-1"), ("-x", "x")]
)
def test_default_host_is_always_valid(nodename: str, host: str) -> None:
    assert default_host(nodename) == host and host_problem(host) is None


def test_fleet_options_from_strings() -> None:
    fo = FleetOptions.from_strings(host="c", canaries=1, canary_hosts="a, b", soak="1d")
    assert (fo.host, fo.canaries, fo.canary_hosts, fo.soak) == ("c", 1, ("a", "b"), 86400)
    assert FleetOptions.from_strings().host  # the hostname by default
    with pytest.raises(UsageError, match="--host"):
        FleetOptions.from_strings(host="a/b")
    with pytest.raises(UsageError, match="--canary-hosts needs --canaries"):
        FleetOptions.from_strings(host="c", canary_hosts="a")
    with pytest.raises(UsageError, match="--canaries -1"):
        FleetOptions.from_strings(host="c", canaries=-1)
