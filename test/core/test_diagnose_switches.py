"""Tests for tools/diagnose_switches (CLEAR ID switches, classified)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from object_permanence.core.eval.mot import TrackEvalSequence, mot_rows, preprocess, score_sequence
from object_permanence.tools import diagnose_reid, diagnose_switches
from object_permanence.tools.diagnose_runs import tracked_records
from object_permanence.tools.diagnose_switches import clear_switches, diagnose_run

CONFIG = Path(__file__).resolve().parents[2] / "config"


def _sequence(frames: list[tuple[list[int], list[int], list[list[float]]]]) -> TrackEvalSequence:
    data = dict(num_timesteps=len(frames), num_gt_ids=2, num_tracker_ids=3,
                num_gt_dets=sum(len(g) for g, _, _ in frames), num_tracker_dets=sum(len(h) for _, h, _ in frames),
                gt_ids=[np.array(g, int) for g, _, _ in frames], tracker_ids=[np.array(h, int) for _, h, _ in frames],
                similarity_scores=[np.array(s, float).reshape(len(g), len(h)) for g, h, s in frames])
    return TrackEvalSequence(data, np.arange(2), np.arange(3))


def test_switches_are_clears_own_on_a_hand_made_sequence() -> None:
    """Object 0 on tracker 0, then a frame where tracker 1 overlaps it better but 0 still passes
    (the previous match is kept: no switch), then only tracker 1 (a switch), then tracker 2 for a
    frame after a gap (a second switch, from the last match, not the previous frame); object 1
    stays on tracker 2 then on nothing."""
    seq = _sequence([([0], [0], [[0.9]]),
                     ([0], [0, 1], [[0.6, 0.9]]),
                     ([0], [1], [[0.8]]),
                     ([0], [], []),
                     ([0, 1], [2], [[0.7], [0.2]])])
    assert clear_switches(seq.data) == [(2, 0, 0, 1, 1), (4, 0, 1, 2, 2)]
    assert score_sequence(seq, 5)["num_switches"] == 2


def test_switch_count_equals_trackevals_on_a_tracked_run() -> None:
    _, records = tracked_records("cluttered", 11, "realistic", CONFIG, 200)
    for camera in ("left", "right"):
        seq = preprocess(mot_rows(records, camera))
        assert len(clear_switches(seq.data)) == score_sequence(seq, len(records))["num_switches"]
    switches = diagnose_run(("cluttered", 11), "realistic", CONFIG, 200)
    assert switches, "this run has switches to classify"
    for s in switches:
        assert s["taken_by"] in ("new_track", "older_track") and s["gap"] >= 1
        assert s["old_state"] in ("VISIBLE", "OCCLUDED", "LOST", "TENTATIVE", "gone")


@pytest.mark.parametrize("tool", [diagnose_switches, diagnose_reid])
def test_switch_diagnosis_cli(tool, tmp_path, capsys) -> None:
    """Both switch diagnosis tools share run_main: a run writes its switches and prints the
    scenario; a held-out seed is refused."""
    out = tmp_path / "s.json"
    assert tool.main(["--scenarios", "cluttered", "--seeds", "11", "--frames", "200", "--workers", "1",
                      "--out", str(out)]) == 0
    assert json.loads(out.read_text())["switches"]
    assert "cluttered" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        tool.main(["--seeds", "1000"])
