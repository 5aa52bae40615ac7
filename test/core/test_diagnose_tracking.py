"""Tests for tools/diagnose_tracking (misses at birth vs later, box accuracy)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from object_permanence.core.types import GroundTruthObject, ObjectKind
from object_permanence.tools import diagnose_tracking
from object_permanence.tools.diagnose_tracking import DETECTIONS, miss_breakdown


def _object(oid: int, visibility: float = 1.0) -> GroundTruthObject:
    return GroundTruthObject(object_id=oid, kind=ObjectKind.OBJECT, class_id=0,
                             box=np.array([100.0, 100.0, 20.0, 40.0]), visibility=visibility,
                             position=np.full(3, np.nan))


def test_miss_breakdown_counts_births_and_later_misses() -> None:
    truth = [[_object(1)] for _ in range(6)]
    hit = np.array([[100.0, 100.0, 20.0, 40.0]])
    boxes = [np.zeros((0, 4))] * 2 + [hit] * 2 + [np.zeros((0, 4))] * 2
    b = miss_breakdown(truth, boxes, birth_frames=3)
    assert (b.births_missed, b.later_missed, b.matched, b.mean_iou) == (2, 2, 2, 1.0)
    shifted = [hit + np.array([[10.0, 0.0, 0.0, 0.0]])] * 6  # IoU 1/3: below the 0.5 needed
    assert miss_breakdown(truth, shifted).later_missed == 3
    with pytest.raises(ValueError, match="frames"):
        miss_breakdown(truth, boxes[:5])


def test_hidden_entries_are_not_scored_and_a_return_is_a_new_birth() -> None:
    """An entry below the metrics' visibility (0.25) is neither a miss nor a hit, and the object's
    next visible frames are a new birth (a tracker needs a few hits to publish it again)."""
    vis = [1.0, 1.0, 1.0, 1.0, 0.1, 0.1, 1.0, 1.0, 1.0, 1.0]
    truth = [[_object(1, v)] for v in vis]
    b = miss_breakdown(truth, [np.zeros((0, 4))] * len(vis), birth_frames=3)
    assert (b.births_missed, b.later_missed, b.matched) == (6, 2, 0)


def test_diagnose_tracking_on_tud_campus(tmp_path, capsys, shared_data) -> None:
    """The raw detections miss at birth only what the perturbation dropped; a tracker that needs
    a few hits to publish misses more there."""
    out = tmp_path / "t.json"
    assert diagnose_tracking.main(["--seeds", "0-1", "--trackers", "ours,sort", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert set(rows) == {"ours", "sort", DETECTIONS}
    assert rows["ours"]["births_missed"] > rows[DETECTIONS]["births_missed"]
    assert all(0.5 <= r["mean_iou"] <= 1.0 for r in rows.values())
    assert "misses at birth" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        diagnose_tracking.main(["--seeds", "1000"])
