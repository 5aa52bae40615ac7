"""Per-track persistence scores and decision latency (``core.eval.persistence``) on hand-built records."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from test_metrics import GAP, GLARE, POS1, POS2, add_nuisance, dec, det, gt, perfect_records, t3, trk

from object_permanence.core.eval.persistence import persistence_counts, persistence_tracks
from object_permanence.core.eval.records import CameraIndex
from object_permanence.core.eval.spurious import CAUSES, spurious_causes
from object_permanence.core.types import ObjectKind, TrackState

SHIPPED_WEIGHTS = Path(__file__).resolve().parents[2] / "models" / "persistence" / "persistence_transformer.pt"


def test_all_real_tracks_kept_is_perfect():
    records = perfect_records()
    add_nuisance(records, keep=False)
    pt = persistence_tracks(records)
    assert (pt.tracks, pt.real, pt.nuisance, pt.kept, pt.kept_real) == (5, 4, 1, 4, 4)
    assert (pt.precision, pt.recall) == (1.0, 1.0)
    c = pt.as_counts()
    assert c["persistence_f1"] == 1.0 and c["persistence_decided_within_3"] == 1.0
    assert c["persistence_latency_real_frames_p50"] == 0.0  # kept from the first frame


def test_a_kept_nuisance_track_lowers_per_track_precision():
    records = perfect_records()
    add_nuisance(records, keep=True)
    pt = persistence_tracks(records)
    assert pt.precision == pytest.approx(4 / 5) and pt.recall == 1.0
    assert pt.as_counts()["persistence_decided_within_3_nuisance"] == 0.0  # never filtered
    # Pooled per decision, the ten glare decisions weigh little against 240 real ones.
    pc = persistence_counts(records)
    assert (pc.decisions, pc.kept, pc.real) == (250, 250, 240) and pc.precision == pytest.approx(240 / 250)


def test_final_decision_is_the_headline_and_ever_kept_is_reported():
    records = perfect_records()
    add_nuisance(records, frames=range(5, 15), keep=False)
    records[6].decisions_left[-1] = dec(30, True)  # the glare kept once, then filtered again
    for rec in records:  # real track 20 (left) ends up dropped in the last frame
        rec.decisions_left[1] = dec(20, rec is not records[-1])
    pt = persistence_tracks(records)
    assert (pt.kept, pt.kept_real, pt.ever_kept, pt.ever_kept_real) == (3, 3, 5, 4)
    assert pt.precision == 1.0 and pt.recall == pytest.approx(3 / 4)
    c = pt.as_counts()
    assert c["persistence_ever_kept_precision"] == pytest.approx(4 / 5)
    # the glare: first detected at 5, stays filtered from 7: latency 2; track 20 undecided
    assert pt.latency_nuisance == [2] and sorted(pt.latency_real) == [0, 0, 0]
    assert c["persistence_decided_within_3_real"] == pytest.approx(3 / 4)


def test_latency_counts_from_the_objects_first_detection_to_the_stable_keep():
    records = perfect_records()
    for t, rec in enumerate(records):  # left track 20: dithers, then keeps for good from frame 6
        rec.decisions_left[1] = dec(20, t in (2, 3) or t >= 6)
    for rec in records[:4]:  # right camera: object 2 undetected in frames 0–3
        rec.detections_right = rec.detections_right[:1]
    for t, rec in enumerate(records):  # right track 20 kept from frame 5: 1 frame after detection
        rec.decisions_right[1] = dec(20, t >= 5)
    pt = persistence_tracks(records)
    assert sorted(pt.latency_real) == [0, 0, 1, 6]
    c = pt.as_counts()
    assert c["persistence_latency_real_frames_p50"] == pytest.approx(0.5)
    assert c["persistence_decided_within_3_real"] == pytest.approx(3 / 4)
    with pytest.raises(ValueError, match="within_frames"):
        persistence_tracks(records, within_frames=-1)


@pytest.mark.parametrize(("frames_on_object", "real"), [(10, True), (9, False)])
def test_a_track_is_real_when_half_its_frames_cover_an_object(frames_on_object, real):
    box3 = [250.0, 350.0, 40.0, 40.0]
    records = perfect_records(20)
    for t, rec in enumerate(records):  # left track 30: first on object 3, then on a glare; kept
        rec.gt_left += [gt(3, box3, 1.0), gt(100, GLARE, 1.0, kind=ObjectKind.GLARE)]
        rec.detections_left += [det(box3), det(GLARE)]
        rec.tracks_left.append(trk(30, TrackState.VISIBLE, box3 if t < frames_on_object else GLARE))
        rec.decisions_left.append(dec(30, True))
    pt = persistence_tracks(records)
    assert (pt.real, pt.nuisance) == ((5, 0) if real else (4, 1))
    assert pt.precision == pytest.approx(1.0 if real else 4 / 5)


def test_tracks_without_decisions_or_detections_are_not_scored():
    records = perfect_records(10)
    records[3].tracks_left.append(trk(40, TrackState.VISIBLE, GLARE))  # never decided
    records[4].decisions_left.append(dec(41, True))  # decided, never published
    assert persistence_tracks(records).tracks == 4


def test_decisions_on_tentative_frames_are_not_counted():
    """``publish_tentative``: the filter scores TENTATIVE tracks and never keeps them; a track never
    confirmed is not in the population, and a confirmed one is judged from its confirmation."""
    records = perfect_records(10)
    for t in range(2):  # left track 20 TENTATIVE (not kept) in frames 0-1, kept from its confirmation
        records[t].tracks_left[1] = replace(records[t].tracks_left[1], state=TrackState.TENTATIVE)
        records[t].decisions_left[1] = dec(20, False)
    records[5].tracks_left.append(trk(40, TrackState.TENTATIVE, GLARE))  # never confirmed
    records[5].decisions_left.append(dec(40, False))
    pt = persistence_tracks(records)
    assert (pt.tracks, pt.kept, pt.kept_real) == (4, 4, 4)
    assert sorted(pt.latency_real) == [0, 0, 0, 2]  # object 2 first detected at frame 0, kept for good at 2


def _eval_tool():
    pytest.importorskip("rclpy")  # the tool builds the shipped configs through ros.params
    from object_permanence.tools import eval_persistence

    return eval_persistence


def test_spurious_3d_points_are_named_by_cause():
    records = perfect_records()
    add_nuisance(records, keep=True)  # frames 5-14: a kept glare triangulated at (1, -1, 2)
    off = np.array([0.0, 0.0, 1.0])
    for t in GAP:  # object 1 hidden: its 3D ghost drifts 1 m; from frame 30 its left 2D ghost is off too
        rec = records[t]
        rec.tracks3d[0] = replace(rec.tracks3d[0], position=np.add(POS1, off))
        if t >= 30:
            rec.tracks_left[0] = trk(10, TrackState.OCCLUDED, [500.0, 400.0, 40.0, 80.0])
    records[1].tracks3d[1] = replace(records[1].tracks3d[1], position=np.add(POS2, off))   # a young 3D track
    records[50].tracks3d[1] = replace(records[50].tracks3d[1], position=np.add(POS2, off))  # a seen pair off
    # object 2's pair triangulated onto object 1 (as a partly hidden object onto its occluder): off, not a duplicate
    records[52].tracks3d[1] = replace(records[52].tracks3d[1], position=np.add(POS1, (0.05, 0.0, 0.0)))
    records[55].tracks3d.append(t3(11, TrackState.VISIBLE, np.add(POS1, (0.0, 0.05, 0.0)), 10))  # a second point of object 1
    swapped = replace(t3(9, TrackState.VISIBLE, (3.0, 3.0, 3.0), 10), right_track_id=20)
    records[45].tracks3d.append(swapped)  # left track of object 1 paired with the right track of object 2
    indexes = {c: CameraIndex(records, c) for c in ("left", "right")}
    causes = spurious_causes(records, indexes)
    assert dict(causes) == {"nuisance_track": 10, "ghost_3d_drift": 10, "ghost_2d_off_object": 5,
                            "first_3d_frames": 1, "visible_pair_error": 2, "wrong_pairing": 1, "duplicate_point": 1}
    assert set(causes) <= set(CAUSES)
    assert dict(spurious_causes(records, indexes, filtered=False)) == {"nuisance_track": 10}


def test_track_start_latency_and_the_decision_at_three_frames():
    ep = _eval_tool()
    tracks = ep.TrackDecisions(
        decisions={("left", 1): [(t, True) for t in range(2, 11)],                  # real, kept at once
                   ("left", 2): [(t, t >= 6) for t in range(2, 11)],                # real, kept late
                   ("left", 3): [(t, t < 4) for t in range(2, 11)],                 # nuisance kept 2 frames
                   ("right", 4): [(t, False) for t in range(50, 60)]},              # nuisance, never kept
        birth={("left", 1): 0, ("left", 2): 0, ("left", 3): 0, ("right", 4): 48}, max_score={})
    real = {("left", 1): True, ("left", 2): True, ("left", 3): False, ("right", 4): False}
    assert ep.track_start_figures(tracks, real) == {"tracks": 4, "real": 2, "fast": 2, "kept_at": 2,
                                                    "kept_real_at": 1}
    assert ep.track_start_figures(tracks, real, within=5)["fast"] == 3  # the nuisance is out by frame 4
    records = perfect_records(10)
    records[0].tracks_left[1] = replace(records[0].tracks_left[1], state=TrackState.TENTATIVE, age=0)
    records[0].decisions_left[1] = dec(20, False)
    records[1].tracks_left[1] = replace(records[1].tracks_left[1], age=1)
    records[5].tracks_left.append(replace(trk(40, TrackState.TENTATIVE, GLARE), age=0))  # never confirmed
    records[5].decisions_left.append(dec(40, False))
    collected = ep.collect_decisions(records)
    assert collected.birth[("left", 10)] == -10 and len(collected.decisions[("right", 20)]) == 10
    assert collected.max_score[("left", 20)] == pytest.approx(0.9)
    # a TENTATIVE frame is no decision (birth: the first confirmed frame less its age); one never confirmed has none
    assert collected.birth[("left", 20)] == 0 and collected.decisions[("left", 20)][0] == (1, True)
    assert ("left", 40) not in collected.decisions and ("left", 40) not in collected.max_score


@pytest.mark.skipif(not SHIPPED_WEIGHTS.is_file(), reason="no shipped persistence weights")
def test_a_job_evaluated_in_a_worker_process_equals_one_evaluated_here() -> None:
    """``--workers``: the methods travel to a spawned process and give the same pooled figures."""
    import functools
    import multiprocessing

    from object_permanence.core.persistence import MinHitsBaseline, MinHitsConfig
    from object_permanence.core.persistence.existence import ExistenceConfig
    from object_permanence.core.triangulator_config import TriangulatorConfig
    from object_permanence.core.world_model import WorldModelConfig
    from object_permanence.tools.eval_persistence import Methods, evaluate_job, pool

    methods = Methods(SHIPPED_WEIGHTS, "cpu", MinHitsConfig(), ExistenceConfig(), MinHitsBaseline(MinHitsConfig(3)))
    work = functools.partial(evaluate_job, methods=methods, world_model=WorldModelConfig(),
                             triangulator=TriangulatorConfig(), images=True, frames=20)
    job = ("noisy", None, "noisy", False, 1000)
    here = work(job)
    with multiprocessing.get_context("spawn").Pool(1) as workers:
        (there,) = workers.map(work, [job])
    assert [(s, m) for s, m, _ in here] == [(s, m) for s, m, _ in there]
    assert {s for s, _, _ in here} == {"test_realistic", "test_hard"} and len(here) == 8
    for (_, method, a), (_, _, b) in zip(here, there):
        pa, pb = pool([a]), pool([b])
        assert pa.keys() == pb.keys()
        for key in pa:
            same_nan = isinstance(pa[key], float) and np.isnan(pa[key]) and np.isnan(pb[key])
            assert same_nan or pa[key] == pb[key], (method, key)
