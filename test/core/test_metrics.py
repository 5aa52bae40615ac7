"""The aggregate of the evaluation metrics (``core.eval.metrics``) on hand-built records with known
answers, and the record builders the other ``test_eval_*.py`` files share (no simulator here)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from object_permanence.core.eval.metrics import (
    METRIC_KEYS,
    FrameRecord,
    evaluate,
    evaluate_with_counts,
    ghost_counts,
    mot_metrics,
    occlusion_episodes,
)
from object_permanence.core.types import (
    Detection,
    GroundTruthObject,
    ObjectKind,
    PersistenceDecision,
    Track,
    Track3D,
    TrackState,
)

FPS = 30.0
N_FRAMES = 60
GAP = range(20, 35)  # object 1 fully hidden (15 frames)
PARTIAL = (19, 35)  # object 1 at visibility 0.4 around the gap
DISPARITY = 30.0  # right-camera boxes are shifted left by this many pixels
GLARE = [600.0, 100.0, 30.0, 30.0]


# ---------------------------------------------------------------- builders (shared)


def gt(oid: int, box, vis: float = 1.0, kind: ObjectKind = ObjectKind.OBJECT, pos=(0.0, 0.0, 3.0)) -> GroundTruthObject:
    """A ground-truth entry whose visible-part box is its amodal box (zeros when hidden)."""
    position = np.full(3, np.nan) if kind != ObjectKind.OBJECT else np.asarray(pos, float)
    box = np.asarray(box, float)
    return GroundTruthObject(oid, kind, 0, box, vis, position, visible_box=box if vis > 0 else np.zeros(4))


def trk(tid: int, state: TrackState, box, vel=(0.0, 0.0)) -> Track:
    box, vel = np.asarray(box, float), np.asarray(vel, float)
    return Track(tid, state, box, vel, np.eye(4), 0.9, 0, "obj", age=10, hits=10, frames_since_seen=0)


def det(box) -> Detection:
    return Detection(np.asarray(box, float), 0.9, 0)


def t3(tid: int, state: TrackState, pos, left_id: int) -> Track3D:
    pos = np.asarray(pos, float)
    return Track3D(tid, state, 0, "obj", pos, np.zeros(3), np.eye(3) * 1e-4, left_id, left_id, 0.9, 0)


def dec(tid: int, keep: bool, frames_observed: int = 5) -> PersistenceDecision:
    return PersistenceDecision(tid, 0.9 if keep else 0.1, keep, np.ones(1), frames_observed, "test")


def box1(t: int) -> list[float]:
    """Object 1 moves right at 2 px/frame = 60 px/s."""
    return [100.0 + 2.0 * t, 200.0, 40.0, 80.0]


BOX2 = [400.0, 220.0, 50.0, 90.0]
POS1, POS2 = (0.5, 0.0, 3.0), (-0.5, 0.1, 3.0)


def vis1(t: int) -> float:
    return 0.0 if t in GAP else 0.4 if t in PARTIAL else 1.0


def shift(box, camera: str) -> list[float]:
    return [box[0] - (DISPARITY if camera == "right" else 0.0), *box[1:]]


def perfect_records(n: int = N_FRAMES) -> list[FrameRecord]:
    """Two objects in both cameras, detected whenever any part shows; object 1 hides for 15
    frames and the tracker keeps a perfect ghost of it (track 10; object 2 is track 20)."""
    records = []
    for t in range(n):
        rec = FrameRecord(index=t, stamp=t / FPS, latency_s=0.010 + 0.001 * (t % 10))
        for cam in ("left", "right"):
            b1 = shift(box1(t), cam)
            rec_gt = [gt(1, b1, vis1(t), pos=POS1), gt(2, shift(BOX2, cam), 1.0, pos=POS2)]
            state1 = TrackState.OCCLUDED if t in GAP else TrackState.VISIBLE
            setattr(rec, f"gt_{cam}", rec_gt)
            setattr(rec, f"detections_{cam}", [det(g.box) for g in rec_gt if g.visibility > 0.0])
            setattr(rec, f"tracks_{cam}", [trk(10, state1, b1, vel=(60.0, 0.0)),
                                           trk(20, TrackState.VISIBLE, shift(BOX2, cam))])
            setattr(rec, f"decisions_{cam}", [dec(10, True), dec(20, True)])
        state1 = TrackState.OCCLUDED if t in GAP else TrackState.VISIBLE
        rec.tracks3d = [t3(1, state1, POS1, 10), t3(2, TrackState.VISIBLE, POS2, 20)]
        rec.tracks3d_unfiltered = [t3(1, state1, POS1, 10), t3(2, TrackState.VISIBLE, POS2, 20)]
        records.append(rec)
    return records


def add_nuisance(records: list[FrameRecord], frames=range(5, 15), keep: bool = False) -> None:
    """A detected glare in the left camera tracked as track 30, triangulated only when unfiltered
    unless ``keep``."""
    for t in frames:
        rec = records[t]
        rec.gt_left.append(gt(100, GLARE, 1.0, kind=ObjectKind.GLARE))
        rec.detections_left.append(det(GLARE))
        rec.tracks_left.append(trk(30, TrackState.VISIBLE, GLARE))
        rec.decisions_left.append(dec(30, keep))
        point = t3(3, TrackState.VISIBLE, (1.0, -1.0, 2.0), 30)
        rec.tracks3d_unfiltered = [*rec.tracks3d_unfiltered, point]
        if keep:
            rec.tracks3d = [*rec.tracks3d, point]


def drop_frame(rec: FrameRecord) -> None:
    """Make ``rec`` a frame the pipeline dropped: its ground truth, no outputs at all."""
    for cam in ("left", "right"):
        for name in ("tracks", "detections", "decisions"):
            setattr(rec, f"{name}_{cam}", [])
    rec.tracks3d, rec.tracks3d_unfiltered, rec.latency_s = [], [], None


# ---------------------------------------------------------------- evaluate


def test_evaluate_returns_every_key_as_finite_float():
    records = perfect_records()
    add_nuisance(records)
    metrics, counts = evaluate_with_counts(records)
    assert tuple(metrics) == METRIC_KEYS
    assert all(isinstance(v, float) and math.isfinite(v) for v in metrics.values())
    json.dumps(metrics, allow_nan=False)
    json.dumps(counts, allow_nan=False)
    assert metrics["frames"] == 60.0
    assert metrics["occlusion_recovery_rate"] == 1.0 and metrics["ghost_precision"] == 1.0
    assert metrics["reacquire_error_px"] == pytest.approx(0.0, abs=1e-9)
    assert metrics["spurious_points_unfiltered"] == 10.0 and metrics["spurious_points_filtered"] == 0.0
    assert metrics["persistence_precision"] == 1.0 and metrics["persistence_recall"] == 1.0
    assert metrics["position_rmse_m"] == pytest.approx(0.0, abs=1e-12)
    assert metrics["latency_ms_p50"] == pytest.approx(14.5)  # latencies cycle 10 … 19 ms
    assert metrics["latency_ms_p95"] == pytest.approx(19.0)
    assert metrics["mota"] < 1.0  # the VISIBLE glare track is a false positive in the left camera
    assert metrics["idf1"] < 1.0 and metrics["hota"] < 1.0
    assert counts["occlusion_episodes"] == 2 and counts["reacquire_error_samples"] == 2
    assert counts["ghosts"] == counts["ghosts_correct"] == 30
    assert counts["persistence_tracks"] == 5 and counts["persistence_tracks_real"] == 4
    assert counts["points3d_unfiltered"] == 130 and counts["true_points_unfiltered"] == 120
    assert counts["true_points_lost"] == 0 and counts["spurious_points_cut"] == 1.0
    assert counts["spurious_unfiltered_nuisance_track"] == 10  # the glare's points, by cause
    assert sum(v for k, v in counts.items() if k.startswith("spurious_unfiltered_")) == 10
    assert not any(v for k, v in counts.items() if k.startswith("spurious_filtered_"))
    assert counts["latency_samples"] == 60 and counts["rmse_samples"] == 105
    assert counts["position_rmse_per_frame_samples"] == counts["position_rmse_per_frame_3m_samples"] == 105
    assert counts["position_rmse_per_frame_m"] == pytest.approx(0.0, abs=1e-12)
    assert counts["position_rmse_per_frame_unlinked"] == counts["position_rmse_per_frame_3m_unlinked"] == 0


def test_public_names_import_from_metrics_with_their_signatures():
    """The ``make eval`` tool imports these from ``core.eval.metrics``; positional use still works."""
    records = perfect_records()
    assert mot_metrics(records, "left", 0.25)["idf1"] == pytest.approx(1.0)
    assert occlusion_episodes(records, "left", 10, 0.5, 0.25, 5)[:2] == (1, 1)
    assert ghost_counts(records, "left", None, 0.5, False) == (15, 15)


def test_an_id_swap_lowers_identity_metrics_and_counts_switches():
    records = perfect_records()
    for t in range(GAP.stop, N_FRAMES):  # object 1 comes back under a new id 11 in both cameras
        for cam in ("left", "right"):
            tracks = getattr(records[t], f"tracks_{cam}")
            tracks[0] = trk(11, TrackState.VISIBLE, tracks[0].box)
    metrics, counts = evaluate_with_counts(records)
    assert counts["id_switches_left"] == counts["id_switches_right"] == 1
    assert metrics["id_switches_per_100_frames"] == pytest.approx(100.0 * 2 / (2 * N_FRAMES))
    assert metrics["occlusion_recovery_rate"] == 0.0 and metrics["idf1"] < 1.0


def test_dropped_frames_count_against_the_pipeline():
    records = perfect_records()
    clean, _ = evaluate_with_counts(records)
    for t in (40, 41, 42):
        drop_frame(records[t])
    metrics, counts = evaluate_with_counts(records)
    assert metrics["frames"] == 60.0 and counts["gt_dets_left"] == 105  # the denominator stays
    assert counts["latency_samples"] == 57
    # 3 frames × 2 objects missed per camera: 6 false negatives of 105
    assert metrics["mota"] == pytest.approx(1.0 - 6 / 105)
    assert metrics["mota"] < clean["mota"] and metrics["idf1"] < clean["idf1"]


def test_records_must_be_consecutive():
    records = perfect_records(10)
    with pytest.raises(ValueError, match="consecutive"):
        evaluate(records[:4] + records[5:])  # frame 4 left out instead of recorded as dropped
    with pytest.raises(ValueError, match="increasing"):
        evaluate([FrameRecord(index=1, stamp=0.0), FrameRecord(index=1, stamp=0.1)])


def test_evaluate_empty_and_degenerate_inputs_are_zero_not_nan():
    for records in ([], [FrameRecord(index=0, stamp=0.0)]):
        metrics, counts = evaluate_with_counts(records)
        assert all(v == 0.0 for k, v in metrics.items() if k != "frames")
        assert counts["ghosts"] == 0 and counts["persistence_tracks_kept"] == 0
        json.dumps(counts, allow_nan=False)


def test_evaluates_300_frames_of_20_tracks():
    rng = np.random.default_rng(0)
    records = []
    base = rng.uniform([50, 50, 20, 40], [600, 400, 60, 100], size=(20, 4))
    for t in range(300):
        rec = FrameRecord(index=t, stamp=t / FPS, latency_s=0.02)
        boxes = base + np.array([1.0, 0.5, 0.0, 0.0]) * t
        vis = np.where((np.arange(20) + t // 15) % 7 == 0, 0.0, 1.0)
        for cam in ("left", "right"):
            b = boxes - (np.array([DISPARITY, 0, 0, 0]) if cam == "right" else 0.0)
            setattr(rec, f"gt_{cam}", [gt(i, b[i], vis[i], pos=(i, 0.0, 3.0)) for i in range(20)])
            setattr(rec, f"detections_{cam}", [det(b[i]) for i in range(20) if vis[i] > 0])
            states = [TrackState.OCCLUDED if v == 0.0 else TrackState.VISIBLE for v in vis]
            noisy = b + rng.normal(0.0, 1.0, b.shape)
            setattr(rec, f"tracks_{cam}", [trk(100 + i, states[i], noisy[i]) for i in range(20)])
            setattr(rec, f"decisions_{cam}", [dec(100 + i, True) for i in range(20)])
        rec.tracks3d = [t3(i, TrackState.VISIBLE, (i, 0.0, 3.01), 100 + i) for i in range(20)]
        rec.tracks3d_unfiltered = rec.tracks3d
        records.append(rec)
    metrics, counts = evaluate_with_counts(records)
    assert metrics["frames"] == 300.0 and metrics["occlusion_recovery_rate"] == 1.0
    assert counts["occlusion_episodes"] > 0 and metrics["ghost_precision"] == 1.0
    assert metrics["position_rmse_m"] == pytest.approx(0.01)
    assert metrics["persistence_precision"] == 1.0 and metrics["persistence_recall"] == 1.0
