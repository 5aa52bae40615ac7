"""Stage 1 of the world model's association (recency cost, the near-best rule of VISIBLE tracks)
and its confirmation policy (two strong detections confirm a track)."""
from __future__ import annotations

import numpy as np
import pytest

from object_permanence.core.association import assign_keeping_own, assign_pairs, stage_one_costs
from object_permanence.core.confirmation import confirmed
from object_permanence.core.types import Detection, EventKind
from object_permanence.core.world_model import WorldModel, WorldModelConfig

FPS = 30.0
IMAGE = (640, 480)


def det(cx: float, score: float = 0.9, cy: float = 200.0) -> Detection:
    return Detection(box=np.array([cx, cy, 60.0, 120.0]), score=score, class_id=0, class_name="thing")


def matched(result) -> dict[int, int]:
    """Track id -> x of the detection it was matched to this frame."""
    return {t.track_id: round(float(t.measurement[0])) for t in result.tracks if t.measurement is not None}


def two_objects_then_one_hidden(wm: WorldModel, hidden_frames: int) -> int:
    """Objects at x = 300 (track 1) and x = 350 (track 2, its box overlapping track 1's) seen 30
    frames, then object 2 undetected for ``hidden_frames``: track 2 is a recent ghost. Returns the
    next frame index."""
    for k in range(30):
        wm.step(k / FPS, [det(300.0), det(350.0)], IMAGE)
    for k in range(30, 30 + hidden_frames):
        wm.step(k / FPS, [det(300.0)], IMAGE)
    return 30 + hidden_frames


def test_stage_one_costs_add_the_recency_cost_per_row() -> None:
    rows = np.array([0, 0, 1, 2])
    cost = np.array([0.1, 0.5, 0.2, np.inf])
    out = stage_one_costs(rows, cost, np.array([0.0, 0.3, 0.1]), 2.0)
    np.testing.assert_allclose(out, [0.1, 0.5, 0.8, np.inf])  # c + k t, t of the row
    np.testing.assert_array_equal(cost, [0.1, 0.5, 0.2, np.inf])  # the input is left as it was


def test_assign_keeping_own_solves_again_when_a_ghost_displaced_a_visible_row() -> None:
    """Row 0 (VISIBLE) costs 0.1 on column 0 and 0.6 on column 1; row 1 (a ghost) 0.3 on column 0
    only. The assignment of most matches gives column 0 to the ghost and moves row 0 to column 1;
    row 0 keeps column 0 instead. With row 1 VISIBLE too (a crowd), the assignment stands."""
    rows, cols = np.array([0, 0, 1]), np.array([0, 1, 0])
    cost = np.array([0.1, 0.6, 0.3])
    assert assign_pairs(rows, cols, cost, 2.0).tolist() == [1, 2]
    assert assign_keeping_own(rows, cols, cost, 2.0, np.array([True, False]), 0.2).tolist() == [0]
    assert assign_keeping_own(rows, cols, cost, 2.0, np.array([True, True]), 0.2).tolist() == [1, 2]
    assert assign_keeping_own(rows, cols, cost, 2.0, np.array([True, False]), 1.0).tolist() == [1, 2]
    assert assign_keeping_own(rows[:0], cols[:0], cost[:0], 2.0, np.array([True, False]), 0.2).size == 0


def test_a_ghost_does_not_take_a_detection_halfway_from_the_track_seen_last_frame() -> None:
    """The detection shows 26 px from track 1 (seen last frame) and 24 px from track 2's ghost
    (unseen 3 frames): the ghost's grown covariance makes its Mahalanobis cost the lower, but it
    is no clearly better fit, so the track seen last frame keeps it (the recency cost)."""
    wm = WorldModel(WorldModelConfig())
    k = two_objects_then_one_hidden(wm, 3)
    assert matched(wm.step(k / FPS, [det(326.0)], IMAGE)) == {1: 326}
    wm = WorldModel(WorldModelConfig(ghost_recency_cost_per_s=0.0, visible_match_margin=100.0))
    k = two_objects_then_one_hidden(wm, 3)
    assert matched(wm.step(k / FPS, [det(326.0)], IMAGE)) == {2: 326}  # without it the ghost wins


@pytest.mark.parametrize("hidden_frames", [3, 10])
def test_a_ghost_does_not_push_a_visible_track_onto_a_neighbouring_detection(hidden_frames: int) -> None:
    """Track 1's own detection (6 px off) could also go to track 2's ghost if track 1 took the
    clutter box 30 px to its other side: two matches instead of one. Track 1 keeps its own."""
    wm = WorldModel(WorldModelConfig())
    k = two_objects_then_one_hidden(wm, hidden_frames)
    assert matched(wm.step(k / FPS, [det(306.0), det(270.0)], IMAGE)) == {1: 306}
    wm = WorldModel(WorldModelConfig(visible_match_margin=100.0, ghost_recency_cost_per_s=0.0))
    k = two_objects_then_one_hidden(wm, hidden_frames)
    assert matched(wm.step(k / FPS, [det(306.0), det(270.0)], IMAGE)) == {1: 270, 2: 306}


def test_confirmed_needs_two_strong_consistent_unexplained_detections() -> None:
    box = np.array([[100.0, 100.0, 40.0, 80.0]] * 5)
    moved = box.copy()
    moved[3, 0] += 40.0  # IoU 0: inconsistent motion
    hits = np.array([2, 2, 2, 2, 2])
    prev = np.array([0.9, 0.6, 0.9, 0.9, 0.9])
    now = np.array([0.9, 0.9, 0.9, 0.9, 0.9])
    explained = np.array([False, False, True, False, False])
    np.testing.assert_array_equal(confirmed(hits, 3, prev, now, box, moved, 0.7, 0.5, explained),
                                  [True, False, False, False, True])
    np.testing.assert_array_equal(confirmed(np.array([1, 3, 4]), 3, np.zeros(3), np.zeros(3), box[:3], box[:3],
                                            0.7, 0.5, np.ones(3, bool)), [False, True, True])


@pytest.mark.parametrize(("score", "birth_frame"), [(0.9, 1), (0.5, 2)])
def test_a_clearly_detected_object_is_confirmed_at_its_second_frame(score: float, birth_frame: int) -> None:
    wm = WorldModel(WorldModelConfig())
    births = [k for k in range(4) for e in wm.step(k / FPS, [det(300.0 + 2 * k, score)], IMAGE).events
              if e.kind == EventKind.BIRTH]
    assert births == [birth_frame]


def test_a_duplicate_box_on_a_tracked_object_waits_for_min_hits() -> None:
    """A second, high-score box on an object already tracked (track 1) is no new object: it is not
    confirmed early (born at min_hits, if at all)."""
    wm = WorldModel(WorldModelConfig())
    for k in range(10):
        wm.step(k / FPS, [det(300.0)], IMAGE)
    births = [(k, e.track_id) for k in range(10, 13)
              for e in wm.step(k / FPS, [det(300.0), det(305.0, cy=205.0)], IMAGE).events if e.kind == EventKind.BIRTH]
    assert births == [(12, 2)]


@pytest.mark.parametrize(("name", "value"), [("ghost_recency_cost_per_s", -0.1), ("visible_match_margin", -1.0),
                                             ("visible_match_margin", float("inf")),
                                             ("fast_confirm_min_score", -0.5), ("fast_confirm_min_iou", 0.0),
                                             ("fast_confirm_min_iou", 1.5), ("first_frame_min_score", -0.1),
                                             ("first_frame_min_score", float("nan"))])
def test_bad_stage_one_and_confirmation_parameters_are_rejected(name: str, value: float) -> None:
    with pytest.raises(ValueError, match=name):
        WorldModelConfig(**{name: value})
