"""MOT metrics via TrackEval (``core.eval.mot``), the IDF1 identity matching, and frame matching
(``core.eval.matching``) on hand-built records with known answers."""
from __future__ import annotations

import numpy as np
import pytest
from test_metrics import (
    GAP,
    GLARE,
    N_FRAMES,
    add_nuisance,
    box1,
    gt,
    perfect_records,
    trk,
)
from trackeval.metrics import Identity

from object_permanence.core.association import iou_matrix
from object_permanence.core.eval.matching import TrackToTruth, box_iou, frame_links, match_frame
from object_permanence.core.eval.mot import (
    identity_matching,
    identity_pairs,
    mot_evaluation,
    mot_metrics,
    mot_rows,
    preprocess,
)
from object_permanence.core.types import ObjectKind, TrackState

# ---------------------------------------------------------------- matching


def test_box_iou_has_one_home_and_known_values():
    assert box_iou is iou_matrix  # IoU lives in core/association; eval uses it under its old name
    a = np.array([[10.0, 10.0, 20.0, 20.0], [100.0, 100.0, 10.0, 10.0]])
    b = np.array([[20.0, 10.0, 20.0, 20.0], [10.0, 10.0, 20.0, 20.0], [500.0, 500.0, 5.0, 5.0]])
    iou = box_iou(a, b)
    assert iou[0, 0] == pytest.approx(200.0 / 600.0)  # half overlap: 10x20 / (400 + 400 - 200)
    assert iou[0, 1] == pytest.approx(1.0) and np.all(iou[1] == 0.0)
    nan_box = box_iou(np.array([[np.nan, 0, 1, 1]]), np.array([[0.0, 0.0, 1.0, 1.0]]))
    np.testing.assert_array_equal(nan_box, [[0.0]])


def test_match_frame_hungarian_prefers_global_optimum_and_thresholds():
    gts = np.array([[0.0, 0.0, 10.0, 10.0], [2.5, 0.0, 10.0, 10.0]])
    trks = np.array([[0.5, 0.0, 10.0, 10.0], [-1.0, 0.0, 10.0, 10.0]])
    # IoU: G0-T0 0.905, G0-T1 0.818, G1-T0 0.667, G1-T1 0.481. Greedy would take G0-T0 and leave
    # G1-T1 below 0.5; the Hungarian optimum pairs G0-T1 and G1-T0.
    assert match_frame(gts, trks, 0.5) == [(0, 1), (1, 0)]
    assert match_frame(gts, np.array([[100.0, 0.0, 10.0, 10.0]])) == []
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError, match="iou_threshold"):
            match_frame(gts, trks, bad)


def test_frame_links_ignore_ghosts_and_include_nuisances():
    obj, glare = gt(1, [50, 50, 20, 20]), gt(7, [200, 50, 20, 20], kind=ObjectKind.GLARE)
    tracks = [trk(5, TrackState.VISIBLE, [51, 50, 20, 20]), trk(6, TrackState.TENTATIVE, [200, 50, 20, 20]),
              trk(8, TrackState.OCCLUDED, [50, 50, 20, 20])]
    links = frame_links([obj, glare], tracks)
    assert {tid: g.object_id for tid, g in links.items()} == {5: 1, 6: 7}


def test_track_to_truth_real_is_half_of_detection_backed_frames():
    truth = TrackToTruth()
    obj, glare = gt(1, [50, 50, 20, 20]), gt(7, [200, 50, 20, 20], kind=ObjectKind.GLARE)
    for _ in range(2):  # track 5: two frames on the object, two on the glare, one on nothing
        truth.add_frame("left", [obj, glare], [trk(5, TrackState.VISIBLE, [50, 50, 20, 20])])
        truth.add_frame("left", [obj, glare], [trk(5, TrackState.VISIBLE, [200, 50, 20, 20])])
    truth.add_frame("left", [obj, glare], [trk(5, TrackState.VISIBLE, [900, 900, 20, 20])])
    for _ in range(10):  # ghost frames neither vote nor count
        truth.add_frame("left", [obj, glare], [trk(5, TrackState.OCCLUDED, [50, 50, 20, 20])])
    assert truth.observed_frames("left", 5) == 5 and truth.object_fraction("left", 5) == pytest.approx(0.4)
    assert not truth.is_real("left", 5) and truth.gt_id("left", 5) == 1  # tie 2:2 → smaller id
    truth.add_frame("left", [obj, glare], [trk(5, TrackState.VISIBLE, [50, 50, 20, 20])])
    assert truth.is_real("left", 5)  # 3 of 6 = 50%
    assert truth.gt_id("right", 5) is None and not truth.is_real("right", 5)  # cameras are separate
    with pytest.raises(ValueError, match="camera"):
        truth.add_frame("center", [obj], [])
    with pytest.raises(ValueError, match="real_fraction"):
        TrackToTruth(real_fraction=0.0)


# ---------------------------------------------------------------- MOT metrics


def test_perfect_tracker_scores_perfectly():
    records = perfect_records()
    for cam in ("left", "right"):
        m = mot_metrics(records, cam)
        assert m["idf1"] == pytest.approx(1.0) and m["mota"] == pytest.approx(1.0)
        assert m["hota"] == pytest.approx(1.0) and m["num_switches"] == 0
        # object 1 counts in 60 - 15 frames (visibility 0.4 >= 0.25 kept), object 2 in all 60
        assert m["num_gt_dets"] == 45 + 60 and m["num_hyp_dets"] == 105 and m["num_frames"] == 60


def test_a_track_on_a_nuisance_is_a_false_positive():
    records = perfect_records()
    add_nuisance(records)  # a VISIBLE track on a glare for 10 frames (left)
    m = mot_metrics(records, "left")
    assert m["clr_fp"] == 10 and m["mota"] == pytest.approx(1.0 - 10 / 105)
    assert m["idfp"] == 10 and m["idf1"] == pytest.approx(105 / (105 + 5))


def test_low_visibility_objects_are_distractors_not_false_positives():
    records = perfect_records()
    for t in GAP:  # the tracker reports a VISIBLE track while the object is nearly hidden
        records[t].gt_left[0].visibility = 0.1
        records[t].tracks_left[0].state = TrackState.VISIBLE
    m = mot_metrics(records, "left")
    assert m["mota"] == pytest.approx(1.0) and m["num_hyp_dets"] == 105  # removed, not counted
    m_all = mot_metrics(records, "left", min_visibility=0.0)  # counted as ground truth instead
    assert m_all["num_gt_dets"] == 120 and m_all["mota"] == pytest.approx(1.0)
    # A track beside the distractor (IoU < 0.5) is not removed: it is a false positive.
    for t in GAP:
        records[t].tracks_left[0].box = records[t].tracks_left[0].box + np.array([30.0, 0, 0, 0])
    assert mot_metrics(records, "left")["clr_fp"] == len(GAP)


def test_identity_matching_pairs_each_track_with_its_object():
    records = perfect_records()
    for t in range(GAP.stop, N_FRAMES):  # object 1 comes back as track 11 in the left camera
        records[t].tracks_left[0] = trk(11, TrackState.VISIBLE, box1(t))
    # track 10 covered object 1 in 20 frames (0–19), track 11 in 25 (35–59): IDF1 pairs 11 with it
    assert identity_matching(records, "left") == {11: 1, 20: 2}
    assert identity_matching(records, "right") == {10: 1, 20: 2}
    add_nuisance(records)
    assert 30 not in identity_matching(records, "left")  # a track on a nuisance stands for nothing


def test_identity_pairs_reproduce_trackeval_idtp():
    records = perfect_records()
    add_nuisance(records)
    for t in range(40, N_FRAMES):
        records[t].tracks_left[1] = trk(21, TrackState.VISIBLE, records[t].tracks_left[1].box)
    seq = preprocess(mot_rows(records, "left"))
    _, _, idtp = identity_pairs(seq.data)
    reference = Identity({"PRINT_CONFIG": False}).eval_sequence(seq.data)
    assert int(idtp.sum()) == int(reference["IDTP"]) == mot_evaluation(records, "left").metrics["idtp"]


def test_repeated_ids_and_bad_arguments_are_rejected():
    records = perfect_records(5)
    records[2].tracks_left.append(trk(20, TrackState.VISIBLE, GLARE))
    with pytest.raises(ValueError, match="track ids repeated"):
        mot_metrics(records, "left")
    with pytest.raises(ValueError, match="camera"):
        mot_metrics(perfect_records(5), "center")
    with pytest.raises(ValueError, match="min_visibility"):
        mot_metrics(perfect_records(5), "left", min_visibility=1.5)


def test_empty_sequences_score_zero():
    assert mot_metrics([], "left")["idf1"] == 0.0
    records = perfect_records(5)
    for rec in records:
        rec.tracks_left = []
    m = mot_metrics(records, "left")
    assert (m["idf1"], m["mota"], m["hota"], m["num_gt_dets"]) == (0.0, 0.0, 0.0, 10)
