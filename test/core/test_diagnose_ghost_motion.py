"""Tests for tools/diagnose_ghost_motion (a ghost's position error split into its parts)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from object_permanence.tools import diagnose_ghost_motion
from object_permanence.tools.diagnose_ghost_motion import AGES, COLUMNS, diagnose_run, format_report, summarise

CONFIG = Path(__file__).resolve().parents[2] / "config"


def test_the_parts_bound_the_ghost_error() -> None:
    """A ghost only predicts at constant velocity, so its error at age k is at most its onset offset
    plus its velocity's share plus the path's curvature (the triangle inequality): the split is exact
    bookkeeping, not a model."""
    rows = np.array(diagnose_run(("crossing", 3), "realistic", CONFIG, 200))
    assert rows.shape[1] == 2 + len(COLUMNS) and len(rows) >= 5
    assert set(rows[:, 0]) <= set(AGES) and (rows[:, 1] > 0).all()
    ghost, onset, velocity, curvature = rows[:, 2], rows[:, 3], rows[:, 4], rows[:, 5]
    assert (ghost <= onset + velocity + curvature + 1e-6).all()
    assert np.isfinite(rows[:, 2:6]).all()


def test_summary_and_report() -> None:
    rows = [(5, 40.0, 4.0, 2.0, 1.0, 0.5, 1.5, np.nan), (5, 40.0, 8.0, 4.0, 3.0, 0.5, 2.5, 2.0),
            (10, 20.0, 10.0, 5.0, 4.0, 1.0, 5.0, 6.0)]
    summary = summarise(rows)
    assert list(summary) == ["5", "10"] and summary["5"]["n"] == 2
    assert summary["5"]["ghost"] == pytest.approx({"median_px": 6.0, "mean_px": 6.0, "mean_frac_width": 0.15, "n": 2})
    assert summary["5"]["whole_box_fit"]["n"] == 1 and summary["5"]["whole_box_fit"]["mean_px"] == 2.0
    report = format_report(summary)
    assert report.splitlines()[0].split()[:3] == ["age", "n", "ghost"] and len(report.splitlines()) == 3


def test_main_writes_the_summary_and_refuses_held_out_seeds(tmp_path: Path, capsys) -> None:
    out = tmp_path / "m.json"
    assert diagnose_ghost_motion.main(["--scenarios", "crossing", "--seeds", "3", "--frames", "200",
                                       "--workers", "1", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["seeds"] == [3] and set(report["ages"]) <= {str(k) for k in AGES}
    assert "ghost centre errors" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        diagnose_ghost_motion.main(["--seeds", "1000"])
