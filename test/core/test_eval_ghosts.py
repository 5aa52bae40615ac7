"""Strict ghost precision (``core.eval.ghosts``) on hand-built records: every failing case of the
definition, one at a time."""
from __future__ import annotations

import numpy as np
import pytest
from test_metrics import GAP, GLARE, add_nuisance, dec, perfect_records, trk

from object_permanence.core.eval.ghosts import ghost_counts, ghost_precision
from object_permanence.core.types import TrackState


def shifted(box, dx: float) -> np.ndarray:
    return np.asarray(box, float) + np.array([dx, 0.0, 0.0, 0.0])


def test_ghosts_of_a_hidden_object_in_place_are_correct():
    records = perfect_records()
    assert ghost_counts(records, "left") == (15, 15)
    assert ghost_precision(records, "right") == (1.0, 15)


@pytest.mark.parametrize(("dx", "correct"), [(24.0, 0), (19.0, 15)])
def test_a_ghost_needs_iou_03_with_the_amodal_box(dx, correct):
    """Boxes 40 px wide: a shift of 24 px gives IoU 16/64 = 0.25 (fails), 19 px gives 21/59 = 0.36."""
    records = perfect_records()
    for t in GAP:
        records[t].tracks_left[0].box = shifted(records[t].tracks_left[0].box, dx)
    assert ghost_counts(records, "left") == (correct, 15)


def test_a_ghost_of_a_visible_and_detected_object_fails():
    records = perfect_records()
    records[4].tracks_left[1].state = TrackState.OCCLUDED  # object 2 in plain view, detected
    assert ghost_counts(records, "left") == (15, 16)
    records[4].detections_left = records[4].detections_left[:1]  # the detector missed object 2
    assert ghost_counts(records, "left") == (16, 16)
    records[5].tracks_left[1].state = TrackState.OCCLUDED
    records[5].gt_left[1].visibility = 0.45  # detected but mostly hidden (< 0.5): a fair ghost
    assert ghost_counts(records, "left") == (17, 17)


def test_a_ghost_of_a_track_matched_to_another_object_fails():
    records = perfect_records()
    for t in GAP:  # track 20 (identity-matched to object 2) goes ghost over hidden object 1
        records[t].tracks_left[0] = trk(10, TrackState.LOST, records[t].tracks_left[0].box)
        records[t].tracks_left[1] = trk(20, TrackState.OCCLUDED, records[t].tracks_left[0].box)
    assert ghost_counts(records, "left") == (0, 15)


def test_a_ghost_without_a_ground_truth_entry_fails():
    records = perfect_records()
    for t in GAP:  # object 1 unlisted while hidden: no box to check the ghost against
        records[t].gt_left = [g for g in records[t].gt_left if g.object_id != 1]
    assert ghost_counts(records, "left") == (0, 15)


def test_ghosts_of_nuisances_and_unmatched_tracks_fail_and_kept_only_counts_published_ones():
    records = perfect_records()
    for t in range(40, 50):  # a ghost where no object is: never backed by a detection
        records[t].tracks_left.append(trk(40, TrackState.OCCLUDED, [300.0, 400.0, 30.0, 30.0]))
    add_nuisance(records, frames=range(5, 8))
    records[8].tracks_left.append(trk(30, TrackState.OCCLUDED, GLARE))  # the glare's ghost
    assert ghost_counts(records, "left") == (15, 26)
    # Published output: only ghosts of tracks the filter kept that frame. Track 40 has no decision
    # and the glare's track 30 was filtered, so 15 ghosts remain.
    assert ghost_counts(records, "left", kept_only=True) == (15, 15)
    records[8].decisions_left.append(dec(30, True))  # had the filter kept the glare...
    assert ghost_counts(records, "left", kept_only=True) == (15, 16)


def test_a_given_identity_matching_is_used():
    records = perfect_records()
    assert ghost_counts(records, "left", truth={10: 2, 20: 1}) == (0, 15)  # swapped pairing
    with pytest.raises(ValueError, match="hidden_vis"):
        ghost_counts(records, "left", hidden_vis=2.0)
