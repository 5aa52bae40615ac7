"""Tests for core.calibration on the real OpenCV stereo chessboard pairs (../shared/data/stereo_calibration)."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from object_permanence.core.calibration import (
    CameraCalibration,
    StereoCalibration,
    calibrate_stereo_from_chessboards,
    camera_calibration_from_dict,
    camera_info_fields,
    find_chessboard,
    load_camera_calibration,
    load_stereo_calibration,
    rectified_camera_info_fields,
    rectify_maps,
    save_camera_calibration,
    save_stereo_calibration,
)

PATTERN = (9, 6)


def _load_pairs(calib_dir: Path) -> tuple[list[np.ndarray], list[np.ndarray]]:
    lefts = sorted(calib_dir.glob("left*.jpg"))
    rights = sorted(calib_dir.glob("right*.jpg"))
    assert lefts and rights, f"no chessboard pairs in {calib_dir}"
    return ([cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in lefts],
            [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in rights])


@pytest.fixture(scope="module")
def pairs(shared_data: Path) -> tuple[list[np.ndarray], list[np.ndarray]]:
    return _load_pairs(shared_data / "stereo_calibration")


@pytest.fixture(scope="module")
def calibrated(pairs) -> tuple[StereoCalibration, float]:
    return calibrate_stereo_from_chessboards(*pairs, pattern=PATTERN, square_size=0.025)


def _synthetic_stereo(fx: float = 500.0, baseline: float = 0.12) -> StereoCalibration:
    k = np.array([[fx, 0.0, 320.0], [0.0, fx, 240.0], [0.0, 0.0, 1.0]])
    p_left = np.hstack([k, np.zeros((3, 1))])
    p_right = p_left.copy()
    p_right[0, 3] = -fx * baseline  # Tx = -fx * B
    left = CameraCalibration(640, 480, k, np.zeros(5), np.eye(3), p_left, "plumb_bob", "left")
    right = CameraCalibration(640, 480, k, np.zeros(5), np.eye(3), p_right, "plumb_bob", "right")
    return StereoCalibration(left, right)


def test_real_calibration_rms_and_focal_length(pairs, calibrated):
    cal, rms = calibrated
    assert len(pairs[0]) == 13
    assert rms < 1.0
    assert rms == pytest.approx(0.45, abs=0.1)  # reference value of the data set
    for fx in (cal.left.K[0, 0], cal.right.K[0, 0], cal.left.P[0, 0]):
        assert abs(fx - 536.0) / 536.0 < 0.05
    assert (cal.left.width, cal.left.height) == (640, 480)
    assert cal.left.D.shape == (5,)
    np.testing.assert_allclose(cal.left.R @ cal.left.R.T, np.eye(3), atol=1e-9)  # a rotation


def test_baseline_follows_ros_convention_and_square_size(pairs, calibrated):
    cal, _ = calibrated
    assert cal.baseline == pytest.approx(-cal.right.P[0, 3] / cal.right.P[0, 0])
    assert 0.0 < cal.baseline < 0.5
    doubled, _ = calibrate_stereo_from_chessboards(*pairs, pattern=PATTERN, square_size=0.05)
    assert doubled.baseline == pytest.approx(2.0 * cal.baseline, rel=1e-3)


def test_rectified_pairs_have_aligned_rows(pairs, calibrated):
    cal, _ = calibrated
    map_lx, map_ly, map_rx, map_ry = rectify_maps(cal)
    assert map_lx.shape == (480, 640) and map_lx.dtype == np.float32
    dy_raw, dy_rect = [], []
    for left, right in zip(*pairs):
        raw_l, raw_r = find_chessboard(left, PATTERN), find_chessboard(right, PATTERN)
        rect_l = find_chessboard(cv2.remap(left, map_lx, map_ly, cv2.INTER_LINEAR), PATTERN)
        rect_r = find_chessboard(cv2.remap(right, map_rx, map_ry, cv2.INTER_LINEAR), PATTERN)
        if rect_l is None or rect_r is None:
            continue
        dy_raw.append(np.abs(raw_l[:, 1] - raw_r[:, 1]))
        dy_rect.append(np.abs(rect_l[:, 1] - rect_r[:, 1]))
    assert len(dy_rect) >= 10
    assert np.median(np.concatenate(dy_rect)) < 1.0
    assert np.median(np.concatenate(dy_raw)) > 2.0 * np.median(np.concatenate(dy_rect))


def test_stereo_yaml_round_trip_is_exact(tmp_path, calibrated):
    cal, _ = calibrated
    single = tmp_path / "stereo.yaml"
    save_stereo_calibration(cal, single)
    pair = (tmp_path / "left.yaml", tmp_path / "right.yaml")
    save_stereo_calibration(cal, pair)
    for loaded in (load_stereo_calibration(single), load_stereo_calibration(pair),
                   load_stereo_calibration([str(p) for p in pair])):
        for got, want in ((loaded.left, cal.left), (loaded.right, cal.right)):
            for name in ("K", "D", "R", "P"):
                assert np.array_equal(getattr(got, name), getattr(want, name)), name
            assert (got.width, got.height, got.distortion_model, got.camera_name) == (
                want.width, want.height, want.distortion_model, want.camera_name)
        assert loaded.baseline == cal.baseline


def test_reads_ros_camera_calibration_parsers_yaml(tmp_path):
    text = """\
image_width: 640
image_height: 480
camera_name: narrow_stereo/right
camera_matrix:
  rows: 3
  cols: 3
  data: [536.0, 0, 326.5, 0, 536.5, 250.1, 0, 0, 1]
distortion_model: plumb_bob
distortion_coefficients:
  rows: 1
  cols: 5
  data: [-0.29, 0.10, 0.001, -0.0002, 0]
rectification_matrix:
  rows: 3
  cols: 3
  data: [1, 0, 0, 0, 1, 0, 0, 0, 1]
projection_matrix:
  rows: 3
  cols: 4
  data: [520.0, 0, 320.0, -62.4, 0, 520.0, 240.0, 0, 0, 0, 1, 0]
"""
    path = tmp_path / "right.yaml"
    path.write_text(text)
    cal = load_camera_calibration(path)
    assert cal.camera_name == "narrow_stereo/right"
    assert cal.K[1, 2] == 250.1 and cal.D[0] == -0.29 and cal.P[0, 3] == -62.4
    save_camera_calibration(cal, tmp_path / "again.yaml")
    again = load_camera_calibration(tmp_path / "again.yaml")
    assert np.array_equal(again.P, cal.P) and np.array_equal(again.D, cal.D)


def test_camera_info_fields_are_flat_lists():
    cal = _synthetic_stereo()
    fields = camera_info_fields(cal.right)
    assert (fields["width"], fields["height"], fields["distortion_model"]) == (640, 480, "plumb_bob")
    assert [len(fields[k]) for k in ("d", "k", "r", "p")] == [5, 9, 9, 12]
    assert fields["p"][3] == pytest.approx(-500.0 * 0.12)
    assert all(type(v) is float for v in fields["p"])


def test_rectified_camera_info_fields_describe_rectified_images():
    """No distortion, R = I, K = P's left 3x3, P unchanged: what rectified images' camera_info says."""
    cal = _synthetic_stereo()
    cal.right.D[:] = [-0.2, 0.05, 0.001, 0.0, 0.0]
    raw, rect = camera_info_fields(cal.right), rectified_camera_info_fields(cal.right)
    assert any(raw["d"]) and rect["d"] == [0.0] * 5 and rect["r"] == np.eye(3).ravel().tolist()
    assert rect["p"] == raw["p"] and rect["k"] == np.reshape(raw["p"], (3, 4))[:, :3].ravel().tolist()


def test_synthetic_baseline():
    assert _synthetic_stereo(fx=500.0, baseline=0.12).baseline == pytest.approx(0.12)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"width": 0}, "width"),
        ({"height": -480}, "height"),
        ({"K": np.full((3, 3), np.nan)}, "K"),
        ({"K": np.eye(2)}, "K"),
        ({"P": np.zeros((3, 4))}, "P"),
        ({"D": [0.1, 0.2]}, "D"),
        ({"distortion_model": "pinhole_magic"}, "distortion_model"),
    ],
)
def test_camera_calibration_validation_names_the_field(change, field):
    base = _synthetic_stereo().left
    with pytest.raises(ValueError, match=field):
        replace(base, **change)


def test_stereo_calibration_validation_names_the_field():
    good = _synthetic_stereo()
    with pytest.raises(ValueError, match="width"):
        StereoCalibration(good.left, replace(good.right, width=320))
    p_bad_fx = good.right.P.copy()
    p_bad_fx[0, 0] = 510.0
    with pytest.raises(ValueError, match=r"right\.P\[0, 0\]"):
        StereoCalibration(good.left, replace(good.right, P=p_bad_fx))
    p_bad_cy = good.right.P.copy()
    p_bad_cy[1, 2] = 250.0
    with pytest.raises(ValueError, match="cy"):
        StereoCalibration(good.left, replace(good.right, P=p_bad_cy))
    p_left_of_left = good.right.P.copy()
    p_left_of_left[0, 3] = +60.0
    with pytest.raises(ValueError, match="baseline"):
        StereoCalibration(good.left, replace(good.right, P=p_left_of_left))
    with pytest.raises(ValueError, match=r"left\.P"):
        StereoCalibration(good.right, good.right)


def test_yaml_errors_name_path_and_field(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_stereo_calibration(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("image_width: 640\nimage_height: 480\n")
    with pytest.raises(ValueError, match="camera_matrix"):
        load_camera_calibration(broken)
    with pytest.raises(ValueError, match="'left' and 'right'"):
        load_stereo_calibration(broken)
    with pytest.raises(ValueError, match="projection_matrix"):
        data = {"image_width": 640, "image_height": 480,
                "camera_matrix": {"rows": 3, "cols": 3, "data": [1, 0, 0, 0, 1, 0, 0, 0, 1]},
                "distortion_coefficients": {"rows": 1, "cols": 0, "data": []},
                "rectification_matrix": {"rows": 3, "cols": 3, "data": [1, 0, 0, 0, 1, 0, 0, 0, 1]},
                "projection_matrix": {"rows": 3, "cols": 3, "data": [1, 0, 0, 0, 1, 0, 0, 0, 1]}}
        camera_calibration_from_dict(data)


def test_calibration_input_errors(pairs):
    lefts, rights = pairs
    with pytest.raises(ValueError, match="count"):
        calibrate_stereo_from_chessboards(lefts, rights[:-1])
    blank = [np.zeros((480, 640), np.uint8)] * 3
    with pytest.raises(ValueError, match="found in both views, got 0"):
        calibrate_stereo_from_chessboards(blank, blank)
    with pytest.raises(ValueError, match="square_size"):
        calibrate_stereo_from_chessboards(lefts, rights, square_size=0.0)
