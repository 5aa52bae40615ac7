"""The trackers under comparison behind one interface (``core.eval.peers``): the adapters of the
``trackers`` peers and of our world model, the tuning grid and the peers' parameter file."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from object_permanence.core.eval.peers import (
    FIXED_PEER_PARAMS,
    OURS,
    PEER_NAMES,
    PeerTracker,
    WorldModelTracker,
    make_tracker,
    peer_grid,
    peer_parameter_names,
    read_peer_params,
)
from object_permanence.core.types import Detection, TrackState
from object_permanence.core.world_model import WorldModelConfig

REPO = Path(__file__).resolve().parents[2]


def _frame(k: int) -> list[Detection]:
    """Two objects crossing the image in opposite directions, 8 px/frame, never overlapping."""
    return [Detection(box=np.array([100.0 + 8 * k, 120.0, 40.0, 80.0]), score=0.9, class_id=0),
            Detection(box=np.array([500.0 - 8 * k, 320.0, 50.0, 50.0]), score=0.8, class_id=1)]


@pytest.mark.parametrize("name", PEER_NAMES)
def test_peer_tracks_a_tiny_sequence_with_stable_ids(name: str) -> None:
    tracker = PeerTracker(name, {}, frame_rate=30.0)
    outputs = [tracker.step(k / 30.0, _frame(k)) for k in range(12)]
    last = outputs[-1]
    assert len(last) == 2 and all(t.state == TrackState.VISIBLE for t in last)
    np.testing.assert_allclose(sorted(t.box.tolist() for t in last), sorted(d.box.tolist() for d in _frame(11)),
                               atol=0.01)  # a peer reports the detection's box
    ids = [{t.track_id for t in out} for out in outputs if len(out) == 2]
    assert len(ids) >= 8 and all(i == ids[0] for i in ids) and min(ids[0]) >= 1  # stable, 1-based
    assert max(t.hits for t in last) >= 8
    assert tracker.step(12 / 30.0, []) == []  # no ghosts: nothing is published without detections


def test_peer_arguments_are_validated() -> None:
    with pytest.raises(ValueError, match="peer name"):
        PeerTracker("deepsort")
    with pytest.raises(ValueError, match="unknown parameter"):
        PeerTracker("sort", {"max_age": 3})
    with pytest.raises(ValueError, match="fixed"):
        PeerTracker("botsort", {"enable_cmc": True})
    with pytest.raises(ValueError, match="frame_rate"):
        PeerTracker("sort", {}, frame_rate=0.0)
    with pytest.raises(ValueError, match="tracker name"):
        make_tracker("deepsort", WorldModelConfig(), {}, 30.0)
    assert PeerTracker("botsort").params == FIXED_PEER_PARAMS["botsort"]  # no CMC: a static rig


@pytest.mark.parametrize("name", PEER_NAMES)
def test_every_grid_setting_is_accepted(name: str) -> None:
    grid = list(peer_grid(name))
    assert len(grid) == 12 and len({tuple(sorted(g.items())) for g in grid}) == 12
    allowed = set(peer_parameter_names(name))
    for params in grid:
        assert set(params) <= allowed
        PeerTracker(name, params)


def test_world_model_adapter_publishes_ghosts() -> None:
    tracker = make_tracker(OURS, WorldModelConfig(), {}, 30.0)
    assert isinstance(tracker, WorldModelTracker) and tracker.name == OURS
    for k in range(5):
        tracker.step(k / 30.0, _frame(k), (640, 480))
    ghosts = tracker.step(5 / 30.0, [], (640, 480))
    assert len(ghosts) == 2 and all(t.state == TrackState.OCCLUDED for t in ghosts)


def test_peer_parameter_file() -> None:
    document = {"peers": {"sort": {"lost_track_buffer": 60}, "bytetrack": {}, "ocsort": None, "botsort": {}}}
    assert read_peer_params(document)["sort"] == {"lost_track_buffer": 60}
    assert read_peer_params(document)["ocsort"] == {}
    with pytest.raises(ValueError, match="missing"):
        read_peer_params({"peers": {"sort": {}}})
    with pytest.raises(ValueError, match="unknown"):
        read_peer_params({"peers": {**document["peers"], "deepsort": {}}})
    with pytest.raises(ValueError, match="peers.sort"):
        read_peer_params({"peers": {**document["peers"], "sort": {"max_age": 1}}})
    with pytest.raises(ValueError, match="'peers' mapping"):
        read_peer_params({})


def test_the_shipped_peer_file_is_valid_and_says_how_it_was_made() -> None:
    document = yaml.safe_load((REPO / "config" / "eval_peers.yaml").read_text())
    params = read_peer_params(document)
    for name in PEER_NAMES:
        PeerTracker(name, params[name])
    tuning = document["tuning"]
    assert "--tune-peers" in tuning["command"] and max(tuning["seeds"]) < 1000  # tuned on tuning seeds only
