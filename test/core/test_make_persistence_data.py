"""tools/make_persistence_data: the split built by worker processes equals the one built in one."""
from __future__ import annotations

import dataclasses

import numpy as np

from object_permanence.core.persistence.features import StereoConfig
from object_permanence.core.world_model import WorldModelConfig
from object_permanence.tools.make_persistence_data import build_split


def test_workers_give_the_same_split_as_one_process() -> None:
    jobs = [("crossing", None, "crossing"), ("noisy", None, "noisy")]
    args = (jobs, [3, 4], WorldModelConfig(), StereoConfig(), 25)
    one, two = build_split(*args, "one"), build_split(*args, "two", workers=2)
    assert len(one) > 0 and set(one.groups) == {f"{s}-{d}" for s in ("crossing", "noisy") for d in ("realistic", "hard")}
    for field in dataclasses.fields(one):
        np.testing.assert_array_equal(getattr(one, field.name), getattr(two, field.name), err_msg=field.name)


def test_sequences_hold_confirmed_tracks_with_their_tentative_rows() -> None:
    """``publish_tentative``: a confirmed track's history starts at its first (TENTATIVE) frame, as
    the filter sees it; a track never confirmed makes no sequence (the filter never keeps one)."""
    from object_permanence.core.persistence.dataset import camera_sequences
    from object_permanence.core.types import Track, TrackState

    def track(tid: int, state: TrackState, x: float) -> Track:
        return Track(tid, state, np.array([x, 100.0, 40.0, 40.0]), np.zeros(4), np.eye(4), 0.9, 0, "obj", 0, 1, 0)

    left = [[track(1, TrackState.TENTATIVE, 10.0), track(2, TrackState.TENTATIVE, 300.0)],
            [track(1, TrackState.TENTATIVE, 12.0)],
            [track(1, TrackState.VISIBLE, 14.0)],
            []]
    rows = camera_sequences({"left": left, "right": [[] for _ in left]}, "left", StereoConfig())
    assert list(rows) == [1] and rows[1][0].shape[0] == 3 and rows[1][1] == 2  # 2 TENTATIVE rows first
