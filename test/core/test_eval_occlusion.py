"""Occlusion episodes, recovery and reacquire error (``core.eval.occlusion``) on hand-built records."""
from __future__ import annotations

import math

import numpy as np
import pytest
from test_metrics import GAP, N_FRAMES, PARTIAL, box1, det, perfect_records, trk

from object_permanence.core.eval.occlusion import find_episodes, occlusion_episodes, occlusion_recovery
from object_permanence.core.eval.records import CameraIndex
from object_permanence.core.types import TrackState


def test_a_perfect_ghost_recovers_with_zero_error():
    records = perfect_records()
    for cam in ("left", "right"):
        rate, n_episodes, errors = occlusion_recovery(records, cam)
        assert (rate, n_episodes) == (1.0, 1)
        assert errors == [pytest.approx(0.0, abs=1e-9)]  # the ghost moved with the object
    (episode,) = find_episodes(CameraIndex(records, "left"))
    assert episode.gap == (GAP.start, GAP.stop) and episode.anchor == PARTIAL[0] - 1
    assert (episode.track_before, episode.track_after, episode.reacquire) == (10, 10, GAP.stop)


def test_an_id_swap_is_not_recovered_but_its_ghost_error_counts():
    records = perfect_records()
    for t in range(GAP.stop, N_FRAMES):  # the object comes back under a new id 11
        records[t].tracks_left[0] = trk(11, TrackState.VISIBLE, box1(t))
    rate, n_episodes, errors = occlusion_recovery(records, "left")
    assert (rate, n_episodes) == (0.0, 1) and errors == [pytest.approx(0.0, abs=1e-9)]


def test_reacquire_error_uses_the_propagated_ghost_prediction():
    records = perfect_records()
    ghost = records[GAP.stop - 1].tracks_left[0]
    ghost.box = ghost.box + np.array([3.0, 4.0, 0.0, 0.0])  # prediction 5 px off at reacquire
    assert occlusion_recovery(records, "left")[2] == [pytest.approx(5.0)]
    ghost.velocity = np.array([0.0, 0.0])  # without motion the prediction lags the object's 2 px step
    assert occlusion_recovery(records, "left")[2] == [pytest.approx(math.hypot(3.0 - 2.0, 4.0))]


def test_an_episode_without_a_ghost_counts_but_gives_no_error_sample():
    records = perfect_records()
    for t in GAP:  # the tracker dropped track 10 during the gap: no ghost, and it never comes back
        records[t].tracks_left = records[t].tracks_left[1:]
    n_recovered, n_episodes, errors = occlusion_episodes(records, "left")
    assert (n_recovered, n_episodes, errors) == (1, 1, [])  # id 10 resumed after the gap
    for t in range(GAP.stop, N_FRAMES):
        records[t].tracks_left[0] = trk(12, TrackState.VISIBLE, box1(t))
    assert occlusion_episodes(records, "left") == (0, 1, [])


def test_undetected_frames_extend_an_occlusion_but_a_dropout_in_plain_view_is_none():
    records = perfect_records()
    for t in GAP:  # object 1 stays in view but the detector misses it: the tracker holds a ghost
        records[t].gt_left[0].visibility = 1.0
        records[t].gt_left[0].visible_box = records[t].gt_left[0].box
    assert occlusion_episodes(records, "left")[:2] == (0, 0)  # a detector dropout, not an occlusion
    records[GAP.start + 3].gt_left[0].visibility = 0.1  # hidden once: the whole run is the gap
    assert occlusion_episodes(records, "left")[:2] == (1, 1)  # no detection of it during GAP
    (episode,) = find_episodes(CameraIndex(records, "left"))
    assert episode.gap == (GAP.start, GAP.stop)
    mid = records[GAP.start + 7]
    off = mid.gt_left[0].box + np.array([16.0, 0.0, 0.0, 0.0])  # IoU (40-16)/(40+16) = 0.43 < 0.5
    mid.detections_left.append(det(off))
    assert occlusion_episodes(records, "left")[:2] == (1, 1)  # a poor box does not detect it
    mid.detections_left[-1] = det(mid.gt_left[0].box)
    assert occlusion_episodes(records, "left")[:2] == (0, 0)  # a detection splits the gap: 7 + 7 < 10


def test_occlusion_episode_rules_and_validation():
    records = perfect_records()
    assert occlusion_recovery(records, "left", min_gap=16)[1] == 0  # the gap is 15 frames
    for t in GAP:  # hidden objects absent from the ground truth count as hidden
        records[t].gt_left = [g for g in records[t].gt_left if g.object_id != 1]
    assert occlusion_recovery(records, "left")[:2] == (1.0, 1)
    late = perfect_records()
    for t in range(PARTIAL[1], PARTIAL[1] + 10):  # not picked up again within the window
        late[t].tracks_left = late[t].tracks_left[1:]
    assert occlusion_recovery(late, "left", reacquire_window=5)[:2] == (0.0, 1)
    for kwargs, name in (({"min_gap": 0}, "min_gap"), ({"hidden_vis": 0.6}, "hidden_vis"),
                         ({"reacquire_window": 0}, "reacquire_window"), ({"camera": "x"}, "camera")):
        with pytest.raises(ValueError, match=name):
            occlusion_recovery(records, **kwargs)
    with pytest.raises(ValueError, match="index"):
        occlusion_episodes(records, "right", index=CameraIndex(records, "left"))
