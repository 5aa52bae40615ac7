"""Tests for tools/diagnose_3d (the 3D error diagnosis) on a short simulated run."""
from __future__ import annotations

import json

import numpy as np
import pytest

from object_permanence.tools import diagnose_3d


def test_diagnose_writes_the_cause_table_and_per_point_records(tmp_path, capsys):
    out = tmp_path / "d.json"
    assert diagnose_3d.main(["--scenarios", "clean", "--seeds", "0", "--frames", "40", "--out", str(out),
                             "--cache", str(tmp_path / "runs")]) == 0
    report = json.loads(out.read_text())
    head = report["headline"]
    assert head["rmse_points"] > 0 and 0.0 < head["position_rmse_m"] < 1.0
    assert head["rmse_per_frame_points"] > 0 and 0.0 < head["position_rmse_per_frame_m"] < 1.0
    assert head["rmse_per_frame_3m_points"] <= head["rmse_per_frame_points"]
    assert 0 <= head["rmse_per_frame_3m_unlinked"] <= head["rmse_per_frame_unlinked"]
    assert set(head["spurious_causes"]) == set(diagnose_3d.SPURIOUS_CAUSES)
    assert list(report["causes"]) == list(diagnose_3d.CAUSES)
    points = np.load(out.with_suffix(".npz"))
    visible = ~points["ghost"]
    assert visible.sum() == sum(r["points"] for c, r in report["causes"].items() if c != "ghost")
    assert np.all((points["source"] >= 0) & (points["source"] <= 2))
    np.testing.assert_allclose(points["disparity_gt"], 500.0 * 0.12 / points["depth"], rtol=1e-9)  # d = fx B / Z
    shares = sum(r["sq_error_share"] for c, r in report["causes"].items() if c != "ghost")
    assert shares == pytest.approx(1.0)
    assert "first_3d_frames" in capsys.readouterr().out
    assert (tmp_path / "runs" / "clean-0-40f.pkl").exists()  # the tracked run is cached


def test_diagnose_keeps_to_tuning_seeds_unless_told(tmp_path):
    with pytest.raises(SystemExit):
        diagnose_3d.main(["--seeds", "1000", "--out", str(tmp_path / "d.json")])
