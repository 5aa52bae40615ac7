"""The real-image box-disparity evaluation (tools/eval_stereo.py) on real rectified pairs: the
triangulator's default method against OpenCV StereoSGBM's median in the same boxes."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from object_permanence.core.triangulator_config import TriangulatorConfig
from object_permanence.tools import eval_stereo


@pytest.fixture(scope="module")
def chessboard(shared_data: Path) -> list[eval_stereo.StereoCase]:
    """Three real chessboard pairs (a near-frontal board, a strongly slanted one, a far one), 25 boxes each."""
    return eval_stereo.chessboard_cases(shared_data / "stereo_calibration", np.random.default_rng(3), 25,
                                        pairs=("01", "05", "12"))


def test_chessboard_ground_truth_is_sound(chessboard):
    assert [c.name for c in chessboard] == ["chessboard01", "chessboard05", "chessboard12"]
    for case in chessboard:
        assert case.truth_residual_px < 0.5  # the 54 corners' disparities lie on a plane
        assert len(case.boxes) == 26 and np.all(np.isfinite(case.truth))
        lo, hi = case.disparity_range
        assert lo % 16 == 0 and hi % 16 == 0 and lo < case.truth.min() and case.truth.max() < hi


def test_default_method_beats_sgbm_median_on_real_chessboard_pairs(chessboard):
    """The bar: box disparity at least as accurate as StereoSGBM's median in the same boxes, >= 90% answered."""
    config = TriangulatorConfig().disparity_config()
    scores = eval_stereo.evaluate(chessboard, config, np.random.default_rng(4), methods=(config.method,))
    ours, reference = scores[config.method], scores[eval_stereo.REFERENCE]
    assert reference["coverage"] >= 0.9  # a fair reference: it answers too
    assert ours["coverage"] >= 0.9
    assert ours["mean_abs_error_px"] <= reference["mean_abs_error_px"]
    assert ours["meets_bar"]


def test_default_method_beats_sgbm_median_on_middlebury_motorcycle():
    """The Middlebury 2014 pair that scikit-image ships (loaded without a network)."""
    case = eval_stereo.motorcycle_case(np.random.default_rng(5), n_boxes=80)
    assert case.left.shape == (500, 741) and len(case.boxes) == 80
    config = TriangulatorConfig().disparity_config()
    scores = eval_stereo.evaluate([case], config, np.random.default_rng(6), methods=(config.method,))
    assert scores[config.method]["meets_bar"], scores


def test_template_matching_alone_answers_too_few_real_boxes(chessboard):
    """Why the default is not template matching alone: on real slanted, repetitive or noisy images
    its cells rarely agree."""
    scores = eval_stereo.evaluate(chessboard[:1], TriangulatorConfig().disparity_config(), np.random.default_rng(4),
                                  methods=("ncc",))
    assert scores["ncc"]["coverage"] < 0.9 and not scores["ncc"]["meets_bar"]


def test_cli_writes_the_report(tmp_path, shared_data, capsys):
    out = tmp_path / "stereo.json"
    assert eval_stereo.main(["--data", str(shared_data), "--out", str(out), "--boxes-per-pair", "2",
                             "--motorcycle-boxes", "10"]) == 0
    report = json.loads(out.read_text())
    assert set(report["datasets"]) == {"chessboard", "middlebury_motorcycle"}
    for dataset in report["datasets"].values():
        assert set(dataset["methods"]) == {eval_stereo.REFERENCE, "auto", "ncc", "sgbm"}
        assert {"coverage", "mean_abs_error_px", "median_abs_error_px", "p90_abs_error_px", "ms_per_box"} \
            <= set(dataset["methods"]["auto"])
    assert report["datasets"]["chessboard"]["pairs"] == 13
    assert "bar" in capsys.readouterr().out
    assert eval_stereo.main(["--data", str(tmp_path), "--out", str(out)]) == 2  # no chessboard images there
