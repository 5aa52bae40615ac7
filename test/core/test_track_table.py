"""Tests of the stacked track table: publishing tracks, class votes, appending rows."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from object_permanence.core.appearance_memory import AppearanceMemory
from object_permanence.core.box_filter_bank import BatchedBoxKalman
from object_permanence.core.track_table import CLASS_WINDOW, STATES, TRACK_FIELDS, TrackTable
from object_permanence.core.types import Track, TrackState


def table(k: int = 5, dim: int = 4, seed: int = 0) -> TrackTable:
    rng = np.random.default_rng(seed)
    memory = AppearanceMemory("dual")
    memory.set_dim(dim)
    t = TrackTable(filters=BatchedBoxKalman(), memory=memory)
    boxes = np.column_stack([rng.uniform(0, 500, (k, 2)), rng.uniform(10, 80, (k, 2))])
    names = [f"c{i}" for i in range(k)]
    has = np.arange(k) % 2 == 0
    t.append(np.arange(10, 10 + k), int(TrackState.TENTATIVE), boxes, rng.uniform(size=k), np.arange(k),
             names, rng.random((k, dim)).astype(np.float32), has, 1.5)
    return t


def test_track_fields_are_in_the_order_publish_passes_them() -> None:
    assert TRACK_FIELDS == tuple(f.name for f in dataclasses.fields(Track))


def test_publish_copies_every_field_out_of_the_table() -> None:
    t = table()
    t.state[:] = [0, 1, 2, 3, 1]
    t.has_measurement[1] = False
    t.filters.predict(0.1)
    rows = np.array([4, 1, 2])
    published = t.publish(rows)
    boxes, velocities, covs = t.filters.boxes, t.filters.velocities, t.filters.box_covariances
    for tr, r in zip(published, rows):
        assert isinstance(tr, Track) and type(tr.track_id) is int and tr.track_id == int(t.ids[r])
        assert tr.state is STATES[t.state[r]] and isinstance(tr.state, TrackState)
        np.testing.assert_array_equal(tr.box, boxes[r])
        np.testing.assert_array_equal(tr.velocity, velocities[r])
        np.testing.assert_array_equal(tr.covariance, covs[r])
        assert (tr.score, tr.class_id, tr.class_name) == (t.score[r], t.class_id[r], t.class_name[r])
        assert (tr.age, tr.hits, tr.frames_since_seen) == (t.age[r], t.hits[r], t.frames_since_seen[r])
        assert np.isnan(tr.persistence_score)
        if t.has_embedding[r]:
            np.testing.assert_array_equal(tr.embedding, t.embedding[r])
        else:
            assert tr.embedding is None
        if t.has_measurement[r]:
            np.testing.assert_array_equal(tr.measurement, t.measurement[r])
        else:
            assert tr.measurement is None
    box, measurement, embedding = (published[0].box.copy(), published[0].measurement.copy(),
                                   published[0].embedding.copy())
    t.filters.predict(1.0)  # the table moves on; what was published does not
    t.measurement[:] = -1.0
    t.memory.summary[:] = 0.0
    np.testing.assert_array_equal(published[0].box, box)
    np.testing.assert_array_equal(published[0].measurement, measurement)
    np.testing.assert_array_equal(published[0].embedding, embedding)
    assert t.publish(np.zeros(0, np.intp)) == []


def _reference_vote(window: list[int], current: int, new: int) -> int:
    """The majority rule written plainly: the class with the most votes in the window (the first
    such entry in ring order on a tie) replaces the current one when it has more votes than the
    current class and is the new detection's class."""
    votes = [window.count(c) for c in window]
    best = window[int(np.argmax(votes))]
    return new if max(votes) > window.count(current) and best == new else current


@pytest.mark.parametrize("seed", range(3))
def test_vote_class_follows_the_majority_rule(seed: int) -> None:
    """Random class sequences against the rule (a detector drifting to another class half the
    time, confused at random now and then); the name follows the class."""
    rng = np.random.default_rng(seed)
    k = 6
    t = table(k, seed=seed)
    windows = [[int(c)] * CLASS_WINDOW for c in t.class_id]  # a new track's window holds its class
    want_id, want_name = t.class_id.copy(), t.class_name.copy()
    switches = 0
    for _ in range(60):
        rows = np.sort(rng.permutation(k)[:4])
        classes = np.where(rng.random(4) < 0.5, (t.class_id[rows] + 1) % 3, t.class_id[rows])
        classes = np.where(rng.random(4) < 0.2, rng.integers(0, 3, 4), classes)
        names = np.empty(4, object)
        names[:] = [f"name{c}" for c in classes]
        t.hits[rows] += 1  # as the world model does before voting
        for r, c, name in zip(rows.tolist(), classes.tolist(), names.tolist()):
            windows[r][(int(t.hits[r]) - 1) % CLASS_WINDOW] = c
            voted = _reference_vote(windows[r], int(want_id[r]), c)
            if voted != want_id[r]:
                want_id[r], want_name[r] = voted, name
                switches += 1
        t.vote_class(rows, classes, names)
        np.testing.assert_array_equal(t.class_id, want_id)
        assert t.class_name.tolist() == want_name.tolist()
    assert switches > 0  # the sequences did make tracks change class


def test_append_nothing_keeps_the_arrays() -> None:
    t = table()
    before = {name: getattr(t, name) for name in TrackTable._ROW_FIELDS}
    t.append(np.zeros(0, np.uint64), int(TrackState.TENTATIVE), np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64),
             [], np.zeros((0, 4), np.float32), np.zeros(0, bool), 2.0)
    assert all(getattr(t, name) is arr for name, arr in before.items())
    assert len(t) == 5 and len(t.filters) == 5 and len(t.memory) == 5
