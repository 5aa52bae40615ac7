"""Tests for tools/diagnose_episodes (failed occlusion episodes, classified)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from object_permanence.core.eval.occlusion import find_episodes
from object_permanence.core.eval.records import CameraIndex
from object_permanence.tools import diagnose_episodes
from object_permanence.tools.diagnose_episodes import diagnose_run, failed_episodes
from object_permanence.tools.diagnose_runs import tracked_records

CONFIG = Path(__file__).resolve().parents[2] / "config"


def test_failures_are_the_unrecovered_short_episodes_of_the_metric() -> None:
    result = diagnose_run(("crossing", 5), "realistic", 30, CONFIG, 200)
    _, records = tracked_records("crossing", 5, "realistic", CONFIG, 200)  # the same run, deterministic by seed
    expected_n, expected_errors, expected_failed = 0, [], []
    for camera in ("left", "right"):
        for ep in find_episodes(CameraIndex(records, camera)):
            if ep.gap[1] - ep.gap[0] <= 30:
                expected_n += 1
                if ep.error_px is not None:
                    expected_errors.append(float(ep.error_px))
                if not ep.recovered:
                    expected_failed.append((camera, ep.object_id, list(ep.gap)))
    assert result["episodes"] == expected_n > 0
    assert result["errors"] == pytest.approx(expected_errors) and len(expected_errors) > 0
    assert [(f["camera"], f["object_id"], f["gap"]) for f in result["failures"]] == expected_failed
    for f in result["failures"]:
        assert f["taken_by"] in ("new_track", "other_track", "none")
        assert f["old_state_at_reacquire"] in ("gone", "OCCLUDED", "VISIBLE", "LOST", "TENTATIVE")
    n, errors, failures = failed_episodes(records, "left", max_length=1)  # no gap is that short: nothing counted
    assert (n, errors, failures) == (0, [], [])


def test_diagnose_episodes_cli(tmp_path, capsys) -> None:
    out = tmp_path / "e.json"
    assert diagnose_episodes.main(["--scenarios", "crossing", "--seeds", "5", "--frames", "200", "--workers", "1",
                                   "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["max_length"] == 30 and data["episodes"]["crossing"] > 0
    errors = data["reacquire_errors_px"]["crossing"]
    assert len(errors) > 0
    printed = capsys.readouterr().out
    assert "recovery" in printed and f"reacquire error {sum(errors) / len(errors):5.1f} px ({len(errors)})" in printed
    assert "pooled" in printed
    with pytest.raises(SystemExit):
        diagnose_episodes.main(["--seeds", "1000"])
    with pytest.raises(SystemExit):
        diagnose_episodes.main(["--scenarios", "nowhere"])
