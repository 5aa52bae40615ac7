"""The detector calibration's matching of detections to ground truth, and its pooling of runs."""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from object_permanence.core.detection.sim_detector_stats import detector_statistics
from object_permanence.core.detection.simulated import Origin, SimulatedDetector
from object_permanence.core.eval.sequences import detector_config
from object_permanence.core.sim import SimWorld, make_scenario
from object_permanence.core.types import Detection, GroundTruthObject, ObjectKind
from object_permanence.tools.detector_calibration import (
    MatchedDetector,
    PooledRuns,
    box_and_nuisance_figures,
    match_detections,
)
from object_permanence.tools.eval_detector import write_detector_json

TRUTH = np.array([[100.0, 100.0, 40.0, 40.0],  # 0: alone
                  [300.0, 200.0, 40.0, 80.0],  # 1 and 2: side by side, a merge candidate
                  [340.0, 200.0, 40.0, 80.0]])


def test_one_to_one_then_duplicates_merges_and_hallucinations() -> None:
    dets = np.array([[101.0, 99.0, 40.0, 42.0],  # entry 0
                     [104.0, 102.0, 44.0, 40.0],  # a second box on entry 0
                     [320.0, 200.0, 80.0, 80.0],  # covers entries 1 and 2 together
                     [500.0, 400.0, 30.0, 30.0]])  # nothing there
    origin, truth = match_detections(dets, np.array([0.9, 0.5, 0.8, 0.7]), TRUTH)
    assert origin.tolist() == [Origin.TRUTH, Origin.DUPLICATE, Origin.MERGED, Origin.HALLUCINATED]
    assert truth.tolist() == [[0, -1], [0, -1], [1, 2], [-1, -1]]


def test_the_most_confident_box_claims_the_entry() -> None:
    dets = np.array([[110.0, 100.0, 40.0, 40.0], [100.0, 100.0, 40.0, 40.0]])  # the second fits exactly
    origin, truth = match_detections(dets, np.array([0.9, 0.4]), TRUTH[:1])
    assert origin.tolist() == [Origin.TRUTH, Origin.DUPLICATE]
    assert truth[:, 0].tolist() == [0, 0]
    origin, _ = match_detections(dets, np.array([0.4, 0.9]), TRUTH[:1])
    assert origin.tolist() == [Origin.DUPLICATE, Origin.TRUTH]
    with pytest.raises(ValueError, match="det_scores"):
        match_detections(dets, np.array([0.4]), TRUTH[:1])


def test_low_overlap_is_a_hallucination_and_empty_inputs() -> None:
    origin, _ = match_detections(np.array([[130.0, 100.0, 40.0, 40.0]]), [0.9], TRUTH[:1], iou_threshold=0.3)
    assert origin.tolist() == [Origin.HALLUCINATED]  # IoU 10/70 < 0.3
    origin, truth = match_detections(np.zeros((0, 4)), np.zeros(0), TRUTH)
    assert origin.shape == (0,) and truth.shape == (0, 2)
    origin, _ = match_detections(TRUTH, np.ones(3), np.zeros((0, 4)))
    assert (origin == Origin.HALLUCINATED).all()


def _entry(object_id: int, kind: ObjectKind, box: np.ndarray) -> GroundTruthObject:
    return GroundTruthObject(object_id=object_id, kind=kind, class_id=0, box=box, visibility=1.0,
                             position=np.zeros(3), visible_box=box)


def test_matched_detector_traces_ids_and_applies_its_threshold() -> None:
    truth = [_entry(1, ObjectKind.OBJECT, TRUTH[0]), _entry(1003, ObjectKind.GLARE, TRUTH[1])]
    dets = {(0, "left"): [Detection(box=TRUTH[0] + [1, 0, 0, 0], score=0.9, class_id=0),
                          Detection(box=TRUTH[1], score=0.3, class_id=0),
                          Detection(box=TRUTH[2] + [200, 0, 0, 0], score=0.1, class_id=0)]}
    traced = MatchedDetector(dets, threshold=0.25).detect_traced(truth, 0, "left", (480, 640))
    assert [(t.origin, t.truth_ids) for t in traced] == [(Origin.TRUTH, (1,)), (Origin.TRUTH, (1003,))]
    assert len(MatchedDetector(dets, threshold=0.05).detect_traced(truth, 0, "left", (480, 640))) == 3
    with pytest.raises(ValueError, match="threshold"):
        MatchedDetector(dets, threshold=1.5)


def test_pooling_one_run_changes_nothing_and_two_runs_add_up() -> None:
    worlds = [SimWorld(make_scenario("noisy"), 1000), SimWorld(make_scenario("clean"), 1001)]
    sims = [SimulatedDetector(detector_config("realistic", w.seed)) for w in worlds]
    frames = 6
    direct = detector_statistics(worlds[0], sims[0], frames)
    pooled_one = PooledRuns(worlds[:1], frames)
    pooled = detector_statistics(pooled_one, pooled_one.detector(sims[:1]), range(frames))
    # compared as JSON text: NaN figures (no miss runs in 6 frames) compare equal there
    assert json.dumps(asdict(pooled), sort_keys=True) == json.dumps(asdict(direct), sort_keys=True)
    runs = PooledRuns(worlds, frames)
    both = detector_statistics(runs, runs.detector(sims), range(runs.n_frames))
    second = detector_statistics(worlds[1], sims[1], frames)
    for key in both.counts:
        assert both.counts[key] == direct.counts[key] + second.counts[key]
    figures = box_and_nuisance_figures(runs, runs.detector(sims), range(runs.n_frames))
    assert figures["images"] == 2 * 2 * frames
    # the simulator jitters boxes by box_noise_frac of their size: the robust estimate finds about that
    assert 0.01 < figures["jitter_all"]["centre_noise_frac"] < 0.1
    kept = PooledRuns(worlds, frames, keep_truth=True)  # the fit's runs: each frame's truth computed once
    assert kept.ground_truth(frames + 1) is kept.ground_truth(frames + 1)
    again = box_and_nuisance_figures(kept, kept.detector(sims), range(kept.n_frames))
    assert json.dumps(again, sort_keys=True) == json.dumps(figures, sort_keys=True)


def test_pooled_runs_reject_bad_arguments() -> None:
    world = SimWorld(make_scenario("clean"), 1000)
    with pytest.raises(ValueError, match="frames"):
        PooledRuns([world], world.n_frames + 1)
    with pytest.raises(ValueError, match="one detector per world"):
        PooledRuns([world], 2).detector([])


def test_ignored_boxes_are_the_objects_in_view_under_the_label_cut() -> None:
    from object_permanence.core.sim.yolo_labels import LabelPolicy, labelled_mask
    from object_permanence.tools.eval_detector import ignored_boxes

    world = SimWorld(make_scenario("long_occlusion"), 1000)
    entries = world.ground_truth(0).left
    policy = LabelPolicy()
    expected = [g for g, kept in zip(entries, labelled_mask(entries, policy))
                if not kept and g.kind == ObjectKind.OBJECT and g.visibility > 0.0]
    boxes, classes = ignored_boxes("long_occlusion_s1000_f0000_left", policy)
    assert classes.tolist() == [g.class_id for g in expected]
    np.testing.assert_allclose(boxes[:, 2:], [g.visible_box[2:] for g in expected])  # x, y, w, h
    np.testing.assert_allclose(boxes[:, :2] + boxes[:, 2:] / 2, [g.visible_box[:2] for g in expected])


def test_detector_json_keeps_other_keys_and_copies_reid(tmp_path) -> None:
    (tmp_path / "detector.json").write_text(json.dumps({"other": 1, "map50": 0.1}))
    (tmp_path / "reid.json").write_text(json.dumps({"reid_rank1": 0.8, "reid_rank1_colour_histogram": 0.5,
                                                    "unrelated": 3}))
    write_detector_json(tmp_path, {"map50": 0.95, "map50_95": 0.7})
    assert json.loads((tmp_path / "detector.json").read_text()) == {
        "other": 1, "map50": 0.95, "map50_95": 0.7, "reid_rank1": 0.8, "reid_rank1_colour_histogram": 0.5}


def test_calibration_measures_yolo_with_the_nms_it_is_given(monkeypatch) -> None:
    """eval_detector passes the detector node's NMS (iou_threshold, agnostic_nms): the calibration
    must run the YOLO with it and say so, or the table describes a detector nobody deploys."""
    from object_permanence.core.detection import ultralytics_backend
    from object_permanence.tools.detector_calibration import calibration, calibration_markdown

    made = []

    class FakeYolo:
        def __init__(self, weights, **kwargs) -> None:
            made.append(kwargs)

        def detect(self, images):
            return [[] for _ in images]

    monkeypatch.setattr(ultralytics_backend, "UltralyticsDetector", FakeYolo)
    result = calibration("weights.pt", ["clean"], [1000], 2, 320, nms_iou=0.5, agnostic_nms=True)
    assert made == [{"device": "cpu", "imgsz": 320, "conf": 0.05, "iou": 0.5, "agnostic": True}]
    assert (result["nms_iou"], result["agnostic_nms"]) == (0.5, True)
    assert "NMS IoU 0.5 (class-agnostic)" in calibration_markdown(result)
    assert result["yolo"]["statistics"]["recall"] == 0.0  # it reported nothing, and is judged on that


MODELS = Path(__file__).resolve().parents[2] / "models" / "detector"


def test_one_protocol_scores_the_weights_and_their_exports_alike(tmp_path) -> None:
    """The shipped .pt (Ultralytics predict) and its .onnx export (the detector node's backend) on 8
    rendered held-out images: the same mAP (a box mapped back wrongly would sink the export's), and
    the int8 quantization close to both."""
    pytest.importorskip("ultralytics", reason="the .pt row needs ultralytics (AGPL-3.0, optional)")
    from object_permanence.tools.eval_detector import model_rows
    from object_permanence.tools.make_detector_data import main as make_data

    files = [MODELS / "sim_yolo.pt", MODELS / "sim_yolo.onnx", MODELS / "sim_yolo_int8.onnx"]
    if not all(f.is_file() for f in files):
        pytest.skip("the shipped detector files are not there (make train-detector)")
    assert make_data(["--out", str(tmp_path), "--splits", "test", "--test-seeds", "1000",
                      "--scenarios", "clean,cluttered", "--max-frames", "2"]) == 0
    torch_row, onnx_row, int8_row = model_rows(files, tmp_path, {"iou": 0.5, "agnostic": True})
    assert torch_row["map50_ignore"] > 0.8 and torch_row["map50_95_ignore"] > 0.7, torch_row
    for key in ("map50_ignore", "map50_95_ignore", "map50_ignore_deployed_nms", "map50_95_ignore_deployed_nms"):
        assert onnx_row[key] == pytest.approx(torch_row[key], abs=0.01), key
        assert int8_row[key] == pytest.approx(onnx_row[key], abs=0.05), key
    assert int8_row["bytes"] < 0.7 * onnx_row["bytes"]
