"""Tests for tools/diagnose_ghosts (every published ghost, classified)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from object_permanence.core.eval.ghosts import ghost_counts
from object_permanence.tools import diagnose_ghosts
from object_permanence.tools.diagnose_ghosts import AGES, CLASSES, age_bin, classify_ghosts, diagnose_run, drift_class
from object_permanence.tools.diagnose_runs import tracked_records

CONFIG = Path(__file__).resolve().parents[2] / "config"


def test_classes_partition_the_ghosts_and_correct_is_the_metrics_numerator() -> None:
    result = diagnose_run(("cluttered", 3), "realistic", CONFIG, 150)
    _, records = tracked_records("cluttered", 3, "realistic", CONFIG, 150)  # the same run, deterministic by seed
    total = 0
    for camera in ("left", "right"):
        counts = classify_ghosts(records, camera)
        n_correct, n_ghosts = ghost_counts(records, camera)
        assert sum(counts.values()) == n_ghosts
        assert sum(n for (cls, _), n in counts.items() if cls == "correct") == n_correct
        assert {cls for cls, _ in counts} <= set(CLASSES) and {a for _, a in counts} <= set(AGES)
        total += n_ghosts
    assert total > 0 and sum(result["counts"].values()) == total
    assert any(key.startswith(("drift", "nuisance_track")) for key in result["counts"])  # cluttered has wrong ghosts


def test_drift_class_names_the_part_that_is_off() -> None:
    obj = np.array([100.0, 100.0, 40.0, 80.0])
    assert drift_class(np.array([160.0, 100.0, 40.0, 80.0]), obj) == "drift_position"  # beside it, right size
    assert drift_class(np.array([100.0, 100.0, 8.0, 80.0]), obj) == "drift_size"  # on it, a sliver
    assert drift_class(np.array([160.0, 100.0, 8.0, 80.0]), obj) == "drift_both"
    assert drift_class(np.array([100.0, 100.0, 40.0, 80.0]), obj) == "drift"  # either fix alone passes


@pytest.mark.parametrize(("frames", "expected"), [(0, "<5"), (4, "<5"), (5, "5-14"), (14, "5-14"), (15, "15-29"),
                                                  (29, "15-29"), (30, ">=30"), (300, ">=30")])
def test_age_bins(frames: int, expected: str) -> None:
    assert age_bin(frames) == expected


def test_main_writes_counts_and_refuses_held_out_seeds(tmp_path, capsys) -> None:
    out = tmp_path / "g.json"
    assert diagnose_ghosts.main(["--scenarios", "long_occlusion", "--seeds", "2", "--frames", "120",
                                 "--workers", "1", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["seeds"] == [2] and len(report["runs"]) == 1
    assert "long_occlusion:" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        diagnose_ghosts.main(["--seeds", "1000"])
    with pytest.raises(SystemExit):
        diagnose_ghosts.main(["--scenarios", "nowhere"])
