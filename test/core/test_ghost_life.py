"""Tests of the ghost's evidence (core/ghost_life.py): each hit counts by the track's detection
rate up to its last match (``ghost_min_hit_ratio``), so a flickering track (a reflection, glare)
leaves no ghost while a steadily detected object keeps its full plain-view life; a ghost of fewer
weighted hits than ``ghost_min_hits`` is held (its identity kept) but not published."""
from __future__ import annotations

import numpy as np
import pytest

from object_permanence.core.ghost_life import effective_hits
from object_permanence.core.types import Detection, EventKind, TrackState
from object_permanence.core.world_model import WorldModel, WorldModelConfig

FPS = 30.0
IMAGE = (640, 480)


def test_a_track_detected_in_every_frame_keeps_all_its_hits() -> None:
    # age 19, last matched now (unseen 0): 20 hits in 20 frames
    assert effective_hits(np.array([20]), np.array([19]), np.array([0]), 0.55) == pytest.approx([20.0])


def test_the_gap_the_ghost_is_in_does_not_count_against_it() -> None:
    # 20 hits in the 20 frames up to the last match, then 10 frames unseen: still rate 1
    assert effective_hits(np.array([20]), np.array([29]), np.array([10]), 0.55) == pytest.approx([20.0])


def test_hits_count_by_the_rate_above_the_threshold() -> None:
    # rate 0.8 over 25 frames followed: g = (0.8 - 0.6) / 0.4 = 0.5; rate 0.5 <= 0.6: nothing
    out = effective_hits(np.array([20, 10]), np.array([24, 19]), np.array([0, 0]), 0.6)
    assert out == pytest.approx([10.0, 0.0])


def test_hits_handed_over_by_a_reidentification_clip_the_rate_at_one() -> None:
    assert effective_hits(np.array([150]), np.array([9]), np.array([0]), 0.5) == pytest.approx([150.0])


def test_threshold_zero_weights_by_the_rate_itself() -> None:
    assert effective_hits(np.array([15]), np.array([19]), np.array([0]), 0.0) == pytest.approx([15.0 * 0.75])


@pytest.mark.parametrize("ratio", [-0.1, 1.0, 1.5])
def test_a_bad_threshold_is_rejected(ratio: float) -> None:
    with pytest.raises(ValueError, match="min_hit_ratio"):
        effective_hits(np.array([1]), np.array([0]), np.array([0]), ratio)


@pytest.mark.parametrize("ratio", [-0.1, 1.0, float("nan"), True])
def test_config_rejects_a_bad_ghost_min_hit_ratio(ratio) -> None:
    with pytest.raises(ValueError, match="ghost_min_hit_ratio"):
        WorldModelConfig(ghost_min_hit_ratio=ratio)


def _det(cx: float) -> Detection:
    return Detection(box=np.array([cx, 200.0, 40.0, 80.0]), score=0.9, class_id=1, class_name="thing")


def _ghost_frames(detected, **config) -> int:
    """Feed a still object detected in the frames where ``detected`` (list of bools) is True, then
    no detection; returns the frames its last gap lasted as a ghost before the LOST event."""
    wm = WorldModel(WorldModelConfig(**config))
    k = 0
    for seen in detected:
        wm.step(k / FPS, [_det(300.0)] if seen else [], IMAGE)
        k += 1
    for gap in range(1, 300):
        if any(e.kind == EventKind.LOST for e in wm.step(k / FPS, [], IMAGE).events):
            return gap
        k += 1
    return 300


def test_a_steadily_detected_object_keeps_the_plain_view_life() -> None:
    """60 hits in 60 frames: the full plain-view cap (0.7 s, 21 frames), as without the rate."""
    assert 21 <= _ghost_frames([True] * 60) <= 23
    assert _ghost_frames([True] * 60) == _ghost_frames([True] * 60, ghost_min_hit_ratio=0.0)


def _occluded_frames(detected, **config) -> int:
    """Frames in which some published track is a ghost while the detections follow ``detected``."""
    wm = WorldModel(WorldModelConfig(**config))
    return sum(any(t.state == TrackState.OCCLUDED for t in wm.step(k / FPS, [_det(300.0)] if seen else [], IMAGE).tracks)
               for k, seen in enumerate(detected))


def test_a_flickering_track_leaves_no_ghost() -> None:
    """Detected in every other frame (a flickering reflection): rate ~0.5 <= 0.55, no evidence:
    each miss ends the track (LOST) instead of publishing a ghost. With ``ghost_min_hit_ratio`` 0
    (hits weighted by the rate itself) the same track is a ghost in most of its off frames."""
    flicker = [k % 2 == 0 for k in range(90)]
    assert _occluded_frames(flicker, ghost_min_hit_ratio=0.55) == 0
    assert _occluded_frames(flicker, ghost_min_hit_ratio=0.0) >= 35


def test_an_object_with_a_short_burst_of_misses_is_still_a_ghost() -> None:
    """A real detector's misses come in bursts: 60 frames seen, 5 missed, 30 seen (rate 0.95)."""
    wm = WorldModel(WorldModelConfig())
    pattern = [True] * 60 + [False] * 5 + [True] * 30
    states = []
    for k, seen in enumerate(pattern):
        r = wm.step(k / FPS, [_det(300.0)] if seen else [], IMAGE)
        states.append([t.state for t in r.tracks])
    assert all(s == [TrackState.OCCLUDED] for s in states[60:65])
    assert states[-1] == [TrackState.VISIBLE]
    assert _ghost_frames(pattern) >= 21


def _states(pattern, **config) -> tuple[list, list]:
    """Published (id, state) lists and events per frame of a still object detected where
    ``pattern`` (bools) is True."""
    wm = WorldModel(WorldModelConfig(**config))
    states, events = [], []
    for k, seen in enumerate(pattern):
        r = wm.step(k / FPS, [_det(300.0)] if seen else [], IMAGE)
        states.append([(t.track_id, t.state) for t in r.tracks])
        events.append([(e.kind, e.track_id) for e in r.events])
    return states, events


def test_a_ghost_of_little_evidence_is_held_unpublished_and_keeps_its_identity() -> None:
    """12 steady hits < ghost_min_hits 20: the 4 missed frames publish no ghost (the OCCLUDED
    event is still sent), and the object's next detection resumes the same id (REACQUIRED)."""
    pattern = [True] * 12 + [False] * 4 + [True] * 3
    states, events = _states(pattern, ghost_min_hits=20)
    assert all(s == [] for s in states[12:16])
    assert (EventKind.OCCLUDED, 1) in events[12]
    assert events[16] == [(EventKind.REACQUIRED, 1)]
    assert states[-1] == [(1, TrackState.VISIBLE)]
    shown, _ = _states(pattern, ghost_min_hits=0)  # every ghost published
    assert all(s == [(1, TrackState.OCCLUDED)] for s in shown[12:16])


def test_a_held_ghost_ends_as_lost_once() -> None:
    """Held unpublished, the ghost still ends after its life (12 hits x 0.05 s = 0.6 s): the LOST
    state is published once, so consumers learn the track ended."""
    states, events = _states([True] * 12 + [False] * 40, ghost_min_hits=20)
    lost = [k for k, e in enumerate(events) if (EventKind.LOST, 1) in e]
    assert len(lost) == 1 and 12 + 17 <= lost[0] <= 12 + 20
    assert states[lost[0]] == [(1, TrackState.LOST)]
    assert all(s == [] for k, s in enumerate(states[12:], 12) if k != lost[0])


def test_a_ghost_of_enough_evidence_is_published() -> None:
    states, _ = _states([True] * 40 + [False] * 5, ghost_min_hits=20)
    assert all(s == [(1, TrackState.OCCLUDED)] for s in states[40:45])


@pytest.mark.parametrize("hits", [-1, 2.5, True])
def test_config_rejects_a_bad_ghost_min_hits(hits) -> None:
    with pytest.raises(ValueError, match="ghost_min_hits"):
        WorldModelConfig(ghost_min_hits=hits)
