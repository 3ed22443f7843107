"""fleet.json: round trip, a corrupt or foreign file replaced with a warning, what status shows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bootguard.gitops import fleet_state
from bootguard.gitops.fleet_state import RepoFleet


def test_round_trip_and_status(tmp_path: Path) -> None:
    held = {"kind": "quarantine", "message": "c2 is quarantined: host b failed c2", "checked_at": "t"}
    rec = RepoFleet((("b", "c", "failed", "build", "t"),), 2, (1, 2), held, ("c2", 5.0))
    fleet_state.save(str(tmp_path), "/repo", rec)
    assert fleet_state.load(str(tmp_path), "/repo") == rec
    assert (tmp_path / "fleet.json").stat().st_mode & 0o777 == 0o600
    part = fleet_state.status_of(str(tmp_path), "/repo")
    assert part == {"held": held, "pending_verdicts": 2}
    assert fleet_state.status_lines(part) == [
        "fleet: c2 is quarantined: host b failed c2 (checked t)",
        "fleet: 2 verdicts not published yet (retried on the next upgrade)",
    ]
    with_it = fleet_state.with_fleet(str(tmp_path), {"repo": "/repo", "notes": ["other"]})
    assert with_it["fleet"] == part and with_it["notes"] == ["other", *fleet_state.status_lines(part)]
    fleet_state.save(str(tmp_path), "/repo", RepoFleet())
    assert fleet_state.status_of(str(tmp_path), "/repo") is None
    assert fleet_state.with_fleet(str(tmp_path), {"repo": "/repo", "notes": []}) == {
        "repo": "/repo",
        "notes": [],
        "fleet": None,
    }


def test_published_keys_are_bounded(tmp_path: Path) -> None:
    keys = tuple(("h", str(n), "blessed", "switch", "t") for n in range(fleet_state.KEEP_KEYS + 50))
    fleet_state.save(str(tmp_path), "/repo", RepoFleet().evolve(published=keys))
    assert fleet_state.load(str(tmp_path), "/repo").published == keys[-fleet_state.KEEP_KEYS :]


@pytest.mark.parametrize(
    "content",
    [
        b"not json",
        b'{"format": "other", "version": 1, "repos": {}}',
        b'{"format": "bootguard-fleet", "version": 9, "repos": {}}',
        json.dumps(
            {"format": "bootguard-fleet", "version": 1, "repos": {"/repo": {"published": "x"}}}
        ).encode(),
        json.dumps({"format": "bootguard-fleet", "version": 1, "repos": {"/repo": {"source": [1]}}}).encode(),
        json.dumps(
            {"format": "bootguard-fleet", "version": 1, "repos": {"/repo": {"candidate": {"commit": 1}}}}
        ).encode(),
    ],
)
def test_a_bad_file_is_replaced_with_a_warning(
    tmp_path: Path, content: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "fleet.json").write_bytes(content)
    (tmp_path / "fleet.json").chmod(0o600)
    assert fleet_state.load(str(tmp_path), "/repo") == RepoFleet()
    assert "starting it afresh" in capsys.readouterr().err
    fleet_state.save(str(tmp_path), "/repo", RepoFleet(pending=1))
    assert fleet_state.load(str(tmp_path), "/repo").pending == 1
