"""Spurious and true 3D points, true points lost by filtering, and position RMSE
(``core.eval.points3d``) on hand-built records."""
from __future__ import annotations

import math

import numpy as np
import pytest
from test_metrics import GAP, POS1, POS2, add_nuisance, perfect_records, t3

from object_permanence.core.eval.points3d import (
    points3d_counts,
    position_rmse,
    position_rmse_per_frame,
    spurious_points,
    true_points_lost,
)
from object_permanence.core.types import TrackState


def test_points_far_from_every_real_object_are_spurious():
    records = perfect_records()
    add_nuisance(records, keep=False)  # 10 glare points 1.5 m from any object, unfiltered only
    records[50].tracks3d[1].position = np.array([-0.5, 0.1, 3.4])  # 0.4 m behind object 2
    records[51].tracks3d[1].position = np.array([-0.5, 0.1, 3.2])  # 0.2 m: within 0.3 m
    records[52].tracks3d[1].position = np.array([np.nan, 0.0, 3.0])
    # a second point on object 1, which its own track's point already stands for: a duplicate
    records[53].tracks3d.append(t3(9, TrackState.VISIBLE, POS1, 77))
    assert spurious_points(records, filtered=False) == (10, 130)
    assert spurious_points(records, filtered=True) == (3, 121)
    # judged by place, not identity: a point of another track alone on object 1 stands for it
    records[54].tracks3d[0].left_track_id = records[54].tracks3d[0].right_track_id = 77
    assert spurious_points(records, filtered=True) == (3, 121)
    with pytest.raises(ValueError, match="max_distance_m"):
        spurious_points(records, max_distance_m=0.0)


def test_ghost_points_of_hidden_objects_are_true_and_unlisted_objects_do_not_count():
    records = perfect_records()
    counts = points3d_counts(records)
    assert counts.spurious_filtered == 0 and counts.true_filtered == 120  # ghosts in GAP included
    for t in GAP:  # object 1 unlisted in both cameras: its ghost points stand for nothing known
        records[t].gt_left = records[t].gt_left[1:]
        records[t].gt_right = records[t].gt_right[1:]
    assert points3d_counts(records).spurious_filtered == len(GAP)
    records = perfect_records()
    for t in GAP:  # listed in the right camera only: its position there counts
        records[t].gt_left = records[t].gt_left[1:]
    assert points3d_counts(records).spurious_filtered == 0


def test_true_points_lost_by_filtering():
    records = perfect_records()
    add_nuisance(records, keep=False)
    for t in range(40, 46):  # the filter dropped object 2's track in six frames
        records[t].tracks3d = records[t].tracks3d[:1]
    assert true_points_lost(records) == (6, 120)
    counts = points3d_counts(records)
    assert (counts.spurious_unfiltered, counts.spurious_filtered) == (10, 0)
    assert counts.true_filtered == 114


def test_position_rmse_on_known_offset_uses_the_identity_matching():
    records = perfect_records()
    for rec in records:
        for p in rec.tracks3d:
            if p.state == TrackState.VISIBLE:
                p.position = p.position + np.array([0.03, 0.0, 0.04])  # |e| = 5 cm
            else:
                p.position = p.position + np.array([2.0, 0.0, 0.0])  # ghosts are not scored
    rmse, n = position_rmse(records)
    assert n == 105 and rmse == pytest.approx(0.05, rel=1e-12)
    records[0].tracks3d[0].position = records[0].tracks3d[0].position + np.array([0.0, 0.08, 0.0])
    expected = math.sqrt((104 * 0.05**2 + (0.03**2 + 0.08**2 + 0.04**2)) / 105)
    assert position_rmse(records)[0] == pytest.approx(expected, rel=1e-12)
    assert position_rmse(records, matching={20: 2})[1] == 60  # only object 2's points are paired


def test_per_frame_position_rmse_scores_each_frame_against_the_object_the_track_covers():
    """After an identity swap each track sits on the other object: the identity-matched RMSE
    charges the metre between them, the per-frame one (MOTP's correspondence) does not."""
    records = perfect_records()
    for rec in records[40:]:  # tracks 10 and 20 swap objects in the left camera (3D points follow)
        boxes = {t.track_id: t.box for t in rec.tracks_left}
        rec.tracks_left[0].box, rec.tracks_left[1].box = boxes[20], boxes[10]
        rec.tracks3d = [t3(1, TrackState.VISIBLE, POS2, 10), t3(2, TrackState.VISIBLE, POS1, 20)]
    assert position_rmse(records)[0] > 0.5
    assert position_rmse_per_frame(records) == (pytest.approx(0.0, abs=1e-12), 105, 0)
    for rec in records:
        for p in rec.tracks3d:
            p.position = p.position + np.array([0.0, 0.03, 0.04])  # |e| = 5 cm
    rmse, n, unlinked = position_rmse_per_frame(records)
    assert n == 105 and unlinked == 0 and rmse == pytest.approx(0.05, rel=1e-12)
    records[10].tracks3d[1].position = np.array([np.nan, 0.0, 3.0])  # not finite: not scored
    assert position_rmse_per_frame(records)[1:] == (104, 0)
    with pytest.raises(ValueError, match="depth_range_m"):
        position_rmse_per_frame(records, depth_range_m=(3.0, 3.0))


def test_per_frame_position_rmse_counts_points_it_cannot_score_and_bands_by_true_depth():
    """A VISIBLE point whose left track covers no object (off every box, or on a nuisance) is
    counted as unlinked, not scored; the band selects by the object's true depth, not the
    point's; the point is scored against its linked object even when another is nearer in 3D."""
    records = perfect_records()
    for rec in records:  # object 2 moves to 5 m; its 3D point stays at POS2 (3 m), 2 m short
        for g in (*rec.gt_left, *rec.gt_right):
            if g.object_id == 2:
                g.position = np.array([-0.5, 0.1, 5.0])
    rmse, n, unlinked = position_rmse_per_frame(records)
    assert (n, unlinked) == (105, 0) and rmse == pytest.approx(math.sqrt(60 * 4.0 / 105), rel=1e-12)
    assert position_rmse_per_frame(records, depth_range_m=(2.5, 3.5)) == (pytest.approx(0.0, abs=1e-12), 45, 0)
    assert position_rmse_per_frame(records, depth_range_m=(4.5, 5.5)) == (pytest.approx(2.0, rel=1e-12), 60, 0)
    # the point of object 1's track placed on object 2's true position: scored against object 1
    records[0].tracks3d[0].position = np.array([-0.5, 0.1, 5.0])
    assert position_rmse_per_frame(records, depth_range_m=(2.5, 3.5))[0] > 0.0
    records = perfect_records()
    for rec in records[:5]:  # track 20's left box moved off every object: its points are unlinked
        rec.tracks_left[1].box = [600.0, 400.0, 20.0, 20.0]
    add_nuisance(records, frames=range(5, 15), keep=True)  # 10 kept glare points, linked to a nuisance
    assert position_rmse_per_frame(records)[1:] == (105 - 5, 5 + 10)
    assert position_rmse_per_frame(records, depth_range_m=(2.5, 3.5))[1:] == (100, 5)  # glare at 2 m


def test_one_object_stands_behind_one_point_only():
    """Two points 0.1 and 0.25 m from one object: the nearer is true, the other a duplicate; a
    point on a second object beside them stays true (one-to-one, nearest first)."""
    from object_permanence.core.eval.points3d import true_point_mask

    objects = np.array([[0.0, 0.0, 3.0], [1.0, 0.0, 3.0]])
    points = [t3(1, TrackState.VISIBLE, (0.25, 0.0, 3.0), 1), t3(2, TrackState.VISIBLE, (0.1, 0.0, 3.0), 2),
              t3(3, TrackState.VISIBLE, (1.0, 0.0, 3.1), 3), t3(4, TrackState.VISIBLE, (np.nan, 0.0, 3.0), 4)]
    np.testing.assert_array_equal(true_point_mask(points, objects), [False, True, True, False])
    assert not true_point_mask(points, np.zeros((0, 3))).any()
