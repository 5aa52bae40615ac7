"""YOLO labels from simulated ground truth, and the detector data set writer on a couple of frames."""
from __future__ import annotations

import numpy as np
import pytest

from object_permanence.core.sim.yolo_labels import LabelPolicy, format_label_rows, labelled_mask, yolo_label_rows
from object_permanence.core.types import GroundTruthObject, ObjectKind

W, H = 640, 480


def _entry(kind: ObjectKind, class_id: int, visible_box: list[float], visibility: float,
           box: list[float] | None = None) -> GroundTruthObject:
    return GroundTruthObject(object_id=1, kind=kind, class_id=class_id,
                             box=np.array(box if box is not None else visible_box, dtype=float),
                             visibility=visibility, position=np.zeros(3), visible_box=np.array(visible_box, float))


def test_visible_box_of_a_real_object_is_normalised() -> None:
    # the amodal box is wider; the label must follow the visible part
    truth = [_entry(ObjectKind.OBJECT, 2, [320.0, 240.0, 64.0, 48.0], 0.6, box=[340.0, 240.0, 104.0, 48.0])]
    rows = yolo_label_rows(truth, W, H)
    np.testing.assert_allclose(rows, [[2, 0.5, 0.5, 0.1, 0.1]])


def test_nuisances_are_unlabelled_distractors() -> None:
    truth = [_entry(ObjectKind.REFLECTION, 0, [100, 100, 40, 40], 1.0),
             _entry(ObjectKind.GLARE, 0, [200, 100, 40, 40], 1.0),
             _entry(ObjectKind.FALSE_POSITIVE, 1, [300, 100, 40, 40], 1.0),
             _entry(ObjectKind.OBJECT, 1, [400, 100, 40, 40], 1.0)]
    np.testing.assert_array_equal(labelled_mask(truth), [False, False, False, True])
    rows = yolo_label_rows(truth, W, H)
    assert rows.shape == (1, 5) and rows[0, 0] == 1


@pytest.mark.parametrize(("visibility", "side", "kept"), [
    (0.29, 40.0, False),  # a sliver: under the visibility cut
    (0.30, 40.0, True),  # at the cut
    (0.9, 5.0, False),  # visible enough but too thin to box
    (0.9, 6.0, True),
    (0.0, 40.0, False),  # wholly hidden, whatever the policy
])
def test_visibility_and_size_cut(visibility: float, side: float, kept: bool) -> None:
    truth = [_entry(ObjectKind.OBJECT, 0, [300, 200, side, 50], visibility)]
    assert labelled_mask(truth).tolist() == [kept]
    assert labelled_mask(truth, LabelPolicy(min_visibility=0.0, min_side_px=0.0)).tolist() == [visibility > 0.0]


def test_boxes_at_the_border_are_clipped_into_the_unit_square() -> None:
    truth = [_entry(ObjectKind.OBJECT, 0, [630.0, 10.0, 40.0, 40.0], 0.5)]
    rows = yolo_label_rows(truth, W, H)
    x1, x2 = rows[0, 1] - rows[0, 3] / 2, rows[0, 1] + rows[0, 3] / 2
    y1, y2 = rows[0, 2] - rows[0, 4] / 2, rows[0, 2] + rows[0, 4] / 2
    np.testing.assert_allclose([x1, y1, x2, y2], [610 / W, 0.0, 1.0, 30 / H])


def test_empty_truth_and_file_text() -> None:
    assert yolo_label_rows([], W, H).shape == (0, 5)
    assert format_label_rows(np.zeros((0, 5))) == ""
    assert format_label_rows(np.array([[1, 0.5, 0.25, 0.1, 0.2]])) == "1 0.500000 0.250000 0.100000 0.200000\n"


@pytest.mark.parametrize(("kwargs", "name"), [({"min_visibility": 1.5}, "min_visibility"),
                                              ({"min_side_px": -1.0}, "min_side_px")])
def test_policy_rejects_bad_values(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        LabelPolicy(**kwargs)


def test_bad_image_size_is_named() -> None:
    with pytest.raises(ValueError, match="height"):
        yolo_label_rows([], 640, 0)


def test_make_detector_data_on_two_frames(tmp_path) -> None:
    from object_permanence.core.sim import SimWorld, make_scenario
    from object_permanence.tools.make_detector_data import main, run_frames

    assert main(["--out", str(tmp_path), "--train-seeds", "3", "--val-seeds", "900", "--test-seeds", "1000",
                 "--scenarios", "noisy", "--stride", "40", "--max-frames", "2", "--splits", "train,test"]) == 0
    images = sorted((tmp_path / "images" / "train").glob("*.jpg"))
    labels = sorted((tmp_path / "labels" / "train").glob("*.txt"))
    assert len(images) == len(labels) == 4  # 2 frames x 2 cameras
    assert {p.stem for p in images} == {p.stem for p in labels}
    frames = run_frames(make_scenario("noisy").n_frames, 3, 40, 2)
    world = SimWorld(make_scenario("noisy"), 3)
    expected = yolo_label_rows(world.ground_truth(frames[0]).right, W, H)
    written = np.loadtxt(tmp_path / "labels" / "train" / f"noisy_s0003_f{frames[0]:04d}_right.txt", ndmin=2)
    np.testing.assert_allclose(written.reshape(-1, 5), expected, atol=1e-6)
    assert "test: images/test" in (tmp_path / "data.yaml").read_text()
    assert len(list((tmp_path / "images" / "test").glob("*.jpg"))) == 4


def test_make_detector_data_keeps_the_held_out_seeds_apart(tmp_path) -> None:
    from object_permanence.tools.make_detector_data import main

    with pytest.raises(ValueError, match="test seeds"):
        main(["--out", str(tmp_path), "--test-seeds", "5", "--splits", "test", "--max-frames", "1"])
