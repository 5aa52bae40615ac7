"""Tests of the re-identification by motion alone (``motion_reid_max_gap_s``): detections without
embeddings (MOT detection files, a detector that sends none) give the gallery nothing to compare,
so an identity its ghost did not bridge comes back only along the path it was on."""
from __future__ import annotations

import numpy as np
import pytest

from object_permanence.core.types import Detection, EventKind
from object_permanence.core.world_model import WorldModel, WorldModelConfig

FPS = 30.0
IMAGE = (640, 480)
SPEED = 3.0  # px per frame


def det(cx: float, emb: np.ndarray | None = None, score: float = 0.9) -> Detection:
    return Detection(box=np.array([cx, 200.0, 40.0, 80.0]), score=score, class_id=0, class_name="thing",
                     embedding=emb)


def dropout(gap_s: float, back_offset_px: float = 0.0, max_gap_s: float = 1.5,
            emb_before: np.ndarray | None = None, emb_after: np.ndarray | None = None,
            score_after: float = 0.9) -> list:
    """An object seen 40 frames walking right, undetected in plain view for ``gap_s`` (its ghost
    ends after ``ghost_plain_view_age_s``, 0.5 s), then detected again for 10 frames where its walk
    took it, ``back_offset_px`` below that. Returns the events."""
    wm = WorldModel(WorldModelConfig(ghost_plain_view_age_s=0.5, motion_reid_max_gap_s=max_gap_s))
    back = 40 + round(gap_s * FPS)
    events = []
    for k in range(back + 10):
        if k < 40:
            dets = [det(100.0 + SPEED * k, emb_before)]
        elif k >= back:
            d = det(100.0 + SPEED * k, emb_after, score_after)
            d.box[1] += back_offset_px
            dets = [d]
        else:
            dets = []
        events += wm.step(k / FPS, dets, IMAGE).events
    return events


def kinds(events: list, track_id: int) -> list:
    return [e.kind for e in events if e.track_id == track_id]


def test_an_object_back_on_its_path_gets_its_identity_by_motion() -> None:
    events = dropout(1.0)
    assert kinds(events, 1) == [EventKind.BIRTH, EventKind.OCCLUDED, EventKind.LOST, EventKind.REACQUIRED]
    assert {e.track_id for e in events} == {1}
    back = [e for e in events if e.kind == EventKind.REACQUIRED][0]
    assert back.frames_unseen == 31  # last seen at frame 39, back at 70


def test_off_by_default() -> None:
    events = dropout(1.0, max_gap_s=0.0)
    assert kinds(events, 1) == [EventKind.BIRTH, EventKind.OCCLUDED, EventKind.LOST]
    assert EventKind.BIRTH in kinds(events, 2)


@pytest.mark.parametrize("offset", [40.0, 120.0])  # 0.5 h and 1.5 h off the path (h 80 px)
def test_a_young_track_off_the_path_starts_a_new_identity(offset: float) -> None:
    events = dropout(1.0, back_offset_px=offset)
    assert EventKind.REACQUIRED not in kinds(events, 1)
    assert EventKind.BIRTH in kinds(events, 2)


def test_an_entry_unseen_longer_than_the_gap_is_forgotten() -> None:
    events = dropout(2.0)
    assert EventKind.REACQUIRED not in kinds(events, 1)
    assert EventKind.BIRTH in kinds(events, 2)


def test_a_weak_single_box_does_not_take_the_identity_but_its_track_does_next_frame() -> None:
    """A single box below ``fast_confirm_min_score`` may be clutter: its track takes the identity
    once matched a second time (a young track of two boxes)."""
    events = dropout(1.0, score_after=0.5)
    assert kinds(events, 1)[-1] == EventKind.REACQUIRED
    assert {e.track_id for e in events} == {1}


def test_tracks_with_appearance_are_left_to_the_appearance_stage() -> None:
    """The gallery entry of a track with appearance is not matched by motion: an object on the path
    that looks unlike it is a new identity, and so is a young track without appearance."""
    a = np.zeros(16, np.float32)
    a[0] = 1.0
    b = np.zeros(16, np.float32)
    b[1] = 1.0
    events = dropout(1.0, emb_before=a, emb_after=b)
    assert EventKind.REACQUIRED not in kinds(events, 1)
    events = dropout(1.0, emb_before=a, emb_after=None)
    assert EventKind.REACQUIRED not in kinds(events, 1)
    events = dropout(1.0, emb_before=a, emb_after=a)  # the same look: the appearance stage takes it
    assert kinds(events, 1)[-1] == EventKind.REACQUIRED
