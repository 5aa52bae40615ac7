"""Tests of the world model: lifecycle, ghosts, re-identification, robustness and speed."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from object_permanence.core.id_allocator import IdAllocator
from object_permanence.core.kalman import BoxKalmanFilter
from object_permanence.core.types import Detection, EventKind, TrackState
from object_permanence.core.world_model import StepResult, WorldModel, WorldModelConfig

FPS = 30.0
# None: the batched filter (the default); BoxKalmanFilter: one filterpy filter per track (reference)
FILTER_FACTORIES = [None, BoxKalmanFilter]


def det(cx: float, cy: float, w: float = 40.0, h: float = 80.0, emb: np.ndarray | None = None,
        score: float = 0.9, class_id: int = 0) -> Detection:
    return Detection(box=np.array([cx, cy, w, h], dtype=float), score=score, class_id=class_id,
                     class_name="thing", embedding=emb)


def unit(rng: np.random.Generator, dim: int = 32) -> np.ndarray:
    v = rng.random(dim).astype(np.float32)
    return v / np.linalg.norm(v)


def noisy(emb: np.ndarray, rng: np.random.Generator, std: float = 0.02) -> np.ndarray:
    v = np.clip(emb + rng.normal(0, std, emb.shape), 0, None).astype(np.float32)
    return v / np.linalg.norm(v)


def by_id(result: StepResult) -> dict:
    return {t.track_id: t for t in result.tracks}


def nearest_id(result: StepResult, xy: np.ndarray, states=(TrackState.VISIBLE,)) -> int | None:
    cands = [t for t in result.tracks if t.state in states]
    if not cands:
        return None
    return min(cands, key=lambda t: np.linalg.norm(t.box[:2] - xy)).track_id


@pytest.fixture(params=FILTER_FACTORIES, ids=["batched", "filterpy"])
def make_model(request):
    return lambda **kw: WorldModel(WorldModelConfig(**kw), filter_factory=request.param)


def test_lifecycle_and_events_in_order(make_model) -> None:
    # ghost_min_hit_ratio 0: hits weighted by the detection rate (9 of 12 frames) only, the cap decides
    wm = make_model(min_hits=3, max_ghost_age_s=0.5, ghost_age_per_hit_s=0.1, ghost_min_hit_ratio=0.0,
                    fast_confirm_min_score=2.0)  # no early confirmation: BIRTH after min_hits
    log: list[tuple[int, EventKind, TrackState, int]] = []
    states: list[TrackState | None] = []
    visible = [True] * 5 + [False] * 3 + [True] * 4 + [False] * 20
    for k, seen in enumerate(visible):
        r = wm.step(k / FPS, [det(100 + 3 * k, 100)] if seen else [])
        log += [(k, e.kind, e.state, e.frames_unseen) for e in r.events]
        states.append(r.tracks[0].state if r.tracks else None)
        assert all(e.track_id == 1 for e in r.events)
    lost_frame = 12 + math.floor(0.5 * FPS)  # last seen at frame 11, LOST once unseen > 0.5 s
    assert log == [(2, EventKind.BIRTH, TrackState.VISIBLE, 0),
                   (5, EventKind.OCCLUDED, TrackState.OCCLUDED, 1),
                   (8, EventKind.REACQUIRED, TrackState.VISIBLE, 3),
                   (12, EventKind.OCCLUDED, TrackState.OCCLUDED, 1),
                   (lost_frame, EventKind.LOST, TrackState.LOST, lost_frame - 11)]
    assert states[:2] == [None, None]  # tentative tracks are not published by default
    assert states[2:5] == [TrackState.VISIBLE] * 3 and states[5:8] == [TrackState.OCCLUDED] * 3
    assert states[lost_frame] == TrackState.LOST
    assert states[lost_frame + 1:] == [None] * (len(visible) - lost_frame - 1)
    assert wm.tracks == []


def test_published_track_fields(make_model) -> None:
    wm = make_model(min_hits=2, embedding_momentum=0.5)
    rng = np.random.default_rng(0)
    e1, e2 = unit(rng), unit(rng)
    wm.step(0.0, [det(50, 60, emb=e1, score=0.5)])
    r = wm.step(0.1, [det(52, 61, emb=e2, score=0.7)])
    (t,) = r.tracks
    assert (t.track_id, t.state, t.hits, t.age, t.frames_since_seen) == (1, TrackState.VISIBLE, 2, 1, 0)
    assert t.score == 0.7 and t.class_id == 0 and t.class_name == "thing"
    expected = (e1 + e2) / np.linalg.norm(e1 + e2)
    np.testing.assert_allclose(t.embedding, expected, rtol=1e-5)
    assert t.box.shape == (4,) and t.velocity.shape == (2,) and t.covariance.shape == (4, 4)
    assert t.velocity[0] > 0 and math.isnan(t.persistence_score)
    r = wm.step(0.2, [])
    assert r.tracks[0].frames_since_seen == 1 and r.tracks[0].hits == 2 and r.tracks[0].age == 2


def test_min_hits_one_and_publish_tentative(make_model) -> None:
    r = make_model(min_hits=1).step(0.0, [det(10, 10)])
    assert [e.kind for e in r.events] == [EventKind.BIRTH] and r.tracks[0].state == TrackState.VISIBLE
    r = make_model(publish_tentative=True).step(0.0, [det(10, 10)])
    assert r.events == [] and r.tracks[0].state == TrackState.TENTATIVE


def test_empty_step_only_predicts_and_equal_stamp_does_not(make_model) -> None:
    wm = make_model(min_hits=2)
    for k in range(10):
        wm.step(k / FPS, [det(100 + 90 * k / FPS, 200)])
    before = wm.tracks[0]
    r = wm.step(10 / FPS, [])
    ghost = r.tracks[0]
    assert ghost.state == TrackState.OCCLUDED
    assert ghost.box[0] == pytest.approx(before.box[0] + before.velocity[0] / FPS)
    r2 = wm.step(10 / FPS, [])  # same stamp: dt = 0, no prediction
    np.testing.assert_array_equal(r2.tracks[0].box, ghost.box)
    np.testing.assert_array_equal(r2.tracks[0].covariance, ghost.covariance)
    assert r2.tracks[0].frames_since_seen == 2


def test_ghost_covariance_grows_monotonically(make_model) -> None:
    wm = make_model(ghost_age_per_hit_s=0.2)
    for k in range(15):
        wm.step(k / FPS, [det(300 + 2 * k, 200)])
    diag_prev = wm.tracks[0].covariance.diagonal()
    for k in range(15, 15 + 60):
        (t,) = wm.step(k / FPS, []).tracks
        assert t.state == TrackState.OCCLUDED
        diag = t.covariance.diagonal()
        assert np.all(diag > diag_prev)
        diag_prev = diag


def test_stamp_backwards_raises_and_changes_nothing(make_model) -> None:
    wm = make_model()
    wm.step(1.0, [det(10, 10)])
    before = wm.tracks
    with pytest.raises(ValueError, match="backwards"):
        wm.step(0.9, [det(10, 10)])
    with pytest.raises(ValueError, match="stamp"):
        wm.step(float("nan"), [])
    after = wm.tracks
    assert len(after) == len(before) == 1 and after[0].hits == before[0].hits
    assert wm.step(1.1, [det(10, 10)]).rejected == 0 and wm.tracks[0].hits == 2


def test_invalid_detections_rejected_and_counted(make_model) -> None:
    wm = make_model(min_hits=1)
    rng = np.random.default_rng(0)
    good = [det(10, 10, emb=unit(rng)), det(300, 300, emb=unit(rng))]
    bad = [det(np.nan, 10), det(10, 10, w=0.0), det(10, 10, h=-3.0), det(10, np.inf),
           det(10, 10, score=float("nan")), det(10, 10, emb=np.full(32, np.nan, np.float32)),
           det(10, 10, emb=unit(rng, dim=8)),  # embedding length differs from the first one
           Detection(box=np.array([1.0, 2.0, 3.0]), score=0.5, class_id=0),
           Detection(box=np.array([1.0, 2.0, 3.0, 4.0]), score=None, class_id=0)]  # type: ignore[arg-type]
    r = wm.step(0.0, good + bad)
    assert r.rejected == len(bad)
    assert len(r.tracks) == 2


def test_track_ids_unique_increasing_never_reused(make_model) -> None:
    wm = make_model(min_hits=1, max_ghost_age_s=0.05, recent_ghost_s=0.0)
    seen: list[int] = []
    for k in range(30):
        r = wm.step(k * 0.1, [det(50 * (k % 7) + 10, 10 + 40 * k)])
        seen += [e.track_id for e in r.events if e.kind == EventKind.BIRTH]
    wm.reset()
    seen += [e.track_id for e in wm.step(0.0, [det(10, 10)]).events]
    assert seen == list(range(1, len(seen) + 1)) and len(seen) == 31


def test_tentative_clutter_never_confirmed(make_model) -> None:
    wm = make_model()
    rng = np.random.default_rng(5)
    for k in range(100):  # five single-frame false positives per frame, anywhere
        boxes = np.column_stack([rng.uniform(0, 1920, 5), rng.uniform(0, 1080, 5)])
        r = wm.step(k / FPS, [det(x, y, w=30, h=30, emb=unit(rng)) for x, y in boxes])
        assert r.events == [] and r.tracks == []
    assert all(t.state == TrackState.TENTATIVE for t in wm.tracks)
    assert len(wm.tracks) <= 10  # each lives at most max_tentative_misses + 1 frames


def _occlusion_trial(seed: int, hidden: int = 30) -> tuple[bool, float]:
    """One object moving straight, hidden for ``hidden`` frames, plus a distractor moving nearby.

    Returns whether the object came back with its id, and the ghost's centre error at the last
    hidden frame (pixels)."""
    rng = np.random.default_rng(seed)
    wm = WorldModel(WorldModelConfig())
    speed, heading = rng.uniform(20, 200), rng.uniform(0, 2 * np.pi)
    vel = speed * np.array([np.cos(heading), np.sin(heading)])
    size = rng.uniform(30, 90, 2)
    noise = rng.uniform(0.5, 3.0)
    start = np.array([960.0, 540.0]) - vel * 1.5
    emb_a, emb_b = unit(rng), unit(rng)
    b_start = start + rng.choice([-1, 1]) * np.array([-vel[1], vel[0]]) / speed * rng.uniform(100, 200)
    b_vel = rng.normal(0, 40, 2)
    id_before = id_after = None
    ghost_err = np.inf
    for k in range(20 + hidden + 10):
        a_xy = start + vel * k / FPS
        b_xy = b_start + b_vel * k / FPS
        dets = [det(*(b_xy + rng.normal(0, noise, 2)), w=size[1], h=size[0], emb=noisy(emb_b, rng))]
        if not 20 <= k < 20 + hidden:
            dets.append(det(*(a_xy + rng.normal(0, noise, 2)), w=size[0], h=size[1], emb=noisy(emb_a, rng)))
        r = wm.step(k / FPS, dets)
        if k == 19:
            id_before = nearest_id(r, a_xy)
        if k == 20 + hidden - 1:
            ghost = by_id(r).get(id_before)
            if ghost is not None and ghost.state == TrackState.OCCLUDED:
                ghost_err = float(np.linalg.norm(ghost.box[:2] - a_xy))
        if k == 20 + hidden + 4:
            id_after = nearest_id(r, a_xy)
    return id_before is not None and id_before == id_after, ghost_err


@pytest.mark.parametrize("ratio, taken", [(1.5, False), (3.0, True)])
def test_an_older_ghost_takes_no_box_of_another_size_on_motion_alone(make_model, ratio, taken) -> None:
    """A ghost unseen for longer than recent_ghost_s (stage 2) has a grown gate: a box twice its
    height on its predicted centre (a merged or duplicate box of the object in front of it) is
    inside it. Within ghost_max_scale_ratio 1.5 it is not the ghost's; the ghost then takes its
    object's own box when it shows."""
    wm = make_model(ghost_max_scale_ratio=ratio)
    for k in range(30):
        r = wm.step(k / FPS, [det(100 + 2 * k, 200)])
    (track,) = r.tracks
    for k in range(30, 50):  # hidden: 20 frames > recent_ghost_s (15)
        r = wm.step(k / FPS, [])
    assert by_id(r)[track.track_id].state == TrackState.OCCLUDED
    r = wm.step(50 / FPS, [det(100 + 2 * 50, 200, w=80.0, h=160.0)])
    assert (by_id(r)[track.track_id].state == TrackState.VISIBLE) is taken
    if not taken:
        r = wm.step(51 / FPS, [det(100 + 2 * 51, 200)])
        assert by_id(r)[track.track_id].state == TrackState.VISIBLE
        np.testing.assert_allclose(by_id(r)[track.track_id].box[2:], [40.0, 80.0], atol=4.0)


@pytest.mark.parametrize("height, taken", [(144.0, True), (176.0, False)])
def test_an_older_ghost_takes_a_box_of_another_size_by_appearance_only_within_the_gallery_ratio(
        make_model, height, taken) -> None:
    """With embeddings, a box outside ghost_max_scale_ratio may still be the ghost's object by
    appearance alone, 2 s on: within gallery_max_scale_ratio (2) it is taken and the filter
    re-initialised at it (not pulled most of the way by a Kalman update), beyond it (2.2x) it is
    refused."""
    emb = unit(np.random.default_rng(3))
    wm = make_model(ghost_max_scale_ratio=1.5, gallery_max_scale_ratio=2.0, ghost_age_per_hit_s=1.0)
    for k in range(30):
        r = wm.step(k / FPS, [det(100 + 2 * k, 200, emb=emb)])
    (track,) = r.tracks
    for k in range(30, 90):
        wm.step(k / FPS, [])
    r = wm.step(90 / FPS, [det(100 + 2 * 90, 200, w=height / 2, h=height, emb=emb)])
    ghost = by_id(r)[track.track_id]
    assert (ghost.state == TrackState.VISIBLE) is taken
    if taken:
        np.testing.assert_allclose(ghost.box, [280.0, 200.0, height / 2, height], atol=1e-6)


def test_identity_kept_through_30_frame_occlusion() -> None:
    results = [_occlusion_trial(seed) for seed in range(100)]
    kept = np.mean([ok for ok, _ in results])
    errors = np.array([err for _, err in results])
    assert kept >= 0.95, f"identity kept in {kept:.0%} of trials"
    assert np.mean(errors < 20.0) >= 0.95, f"ghost errors (px): {np.sort(errors)[-10:]}"


@pytest.mark.parametrize("velocity", [(120.0, 0.0), (-60.0, 90.0), (0.0, -150.0)])
def test_reacquire_error_constant_velocity(velocity) -> None:
    wm = WorldModel(WorldModelConfig())
    vel = np.array(velocity)
    events = []
    for k in range(60):
        xy = np.array([500.0, 400.0]) + vel * k / FPS
        r = wm.step(k / FPS, [] if 20 <= k < 50 else [det(*xy)])
        events += r.events
        if k == 49:
            (ghost,) = r.tracks
            assert ghost.state == TrackState.OCCLUDED
            assert np.linalg.norm(ghost.box[:2] - xy) < 20.0
    assert [e.kind for e in events] == [EventKind.BIRTH, EventKind.OCCLUDED, EventKind.REACQUIRED]
    assert events[-1].frames_unseen == 30


def test_crossing_objects_keep_ids() -> None:
    rng = np.random.default_rng(7)
    wm = WorldModel(WorldModelConfig())
    emb_a, emb_b = unit(rng), unit(rng)
    ids_a, ids_b = set(), set()
    for k in range(90):  # they meet at frame 45; B (behind) is hidden while they overlap
        a_xy = np.array([200.0 + 8 * k, 300.0])
        b_xy = np.array([920.0 - 8 * k, 310.0])
        dets = [det(*(a_xy + rng.normal(0, 1.5, 2)), emb=noisy(emb_a, rng))]
        if abs(k - 45) > 4:
            dets.append(det(*(b_xy + rng.normal(0, 1.5, 2)), emb=noisy(emb_b, rng)))
        r = wm.step(k / FPS, dets)
        if k >= 3:
            ids_a.add(nearest_id(r, a_xy))
            if abs(k - 45) > 4:
                ids_b.add(nearest_id(r, b_xy))
    assert len(ids_a) == 1 and len(ids_b) == 1 and ids_a != ids_b


def test_long_gap_reidentified_by_appearance_without_jump() -> None:
    """The object stops behind an occluder and reappears far from the extrapolated path."""
    rng = np.random.default_rng(3)
    wm = WorldModel(WorldModelConfig(ghost_age_per_hit_s=0.1))  # 30 hits: the ghost lives 3 s
    emb = unit(rng)
    for k in range(30):
        r = wm.step(k / FPS, [det(100 + 150 * k / FPS, 300, emb=noisy(emb, rng))])
    (track,) = r.tracks
    for k in range(30, 120):  # 3 s unseen; the prediction runs on to x ~ 700
        r = wm.step(k / FPS, [])
    assert r.tracks[0].state == TrackState.OCCLUDED
    events = []
    for k in range(120, 125):  # it comes back at x = 400, moving slowly
        r = wm.step(k / FPS, [det(400 + 20 * (k - 120) / FPS, 300, emb=noisy(emb, rng))])
        events += r.events
    assert [e.kind for e in events] == [EventKind.REACQUIRED] and events[0].track_id == track.track_id
    assert events[0].frames_unseen == 90
    (t,) = r.tracks
    assert abs(t.box[0] - (400 + 20 * 4 / FPS)) < 5.0  # at the detection, not dragged by the ghost
    assert np.linalg.norm(t.velocity) < 100.0  # no velocity spike from the 3-second gap


@pytest.mark.parametrize("near_cost", [0.4, 0.2])
def test_long_gap_other_appearance_is_a_new_track(near_cost: float) -> None:
    """A detection on the ghost's path that looks like another object (cosine distance 0.59) is
    not it, even with the looser appearance cap near the path (``gallery_near_max_appearance_cost``)."""
    rng = np.random.default_rng(4)
    wm = WorldModel(WorldModelConfig(ghost_age_per_hit_s=0.2,  # the ghost outlives the 3 s gap
                                     gallery_near_max_appearance_cost=near_cost))
    look = unit(np.random.default_rng(0))
    for k in range(30):
        wm.step(k / FPS, [det(100 + 150 * k / FPS, 300, emb=noisy(look, rng))])
    for k in range(30, 120):
        wm.step(k / FPS, [])
    other = np.where(look < np.median(look), look, 0.0)  # the colours this object has least of
    other /= np.linalg.norm(other)
    events = []
    for k in range(120, 125):
        events += wm.step(k / FPS, [det(400, 300, emb=noisy(other, rng))]).events
    assert [(e.kind, e.track_id) for e in events] == [(EventKind.BIRTH, 2)]


def test_a_return_close_to_the_path_may_look_less_alike() -> None:
    """The ghost ends (LOST, into the gallery); the object comes back on its path looking partly
    different (cosine distance 0.30: its first boxes are partial): beyond ``gallery_max_appearance_cost``
    (0.2) but within ``gallery_near_max_appearance_cost`` (0.4) close to the path it keeps its identity;
    without the near cap, or far off the path (at the edge of the motion reach), it is a new track."""
    def run(back_y: float, **config) -> list:
        rng = np.random.default_rng(4)
        wm = WorldModel(WorldModelConfig(**config))
        for k in range(30):
            wm.step(k / FPS, [det(100 + 60 * k / FPS, 300, emb=noisy(unit(np.random.default_rng(0)), rng))], IMAGE)
        for k in range(30, 60):  # 1 s unseen in plain view: LOST after 0.7 s
            wm.step(k / FPS, [], IMAGE)
        assert wm.gallery_ids == [1]
        events = []
        for k in range(60, 65):
            events += wm.step(k / FPS, [det(100 + 60 * k / FPS, back_y, emb=noisy(unit(np.random.default_rng(1)), rng))],
                              IMAGE).events
        return [(e.kind, e.track_id) for e in events]

    assert run(300.0) == [(EventKind.REACQUIRED, 1)]
    assert run(300.0, gallery_near_frac=0.0) == [(EventKind.BIRTH, 2)]
    # 150 px off the path: inside the motion reach (~165 px after ~1.1 s) but not near it
    assert run(150.0) == [(EventKind.BIRTH, 2)]
    assert run(150.0, gallery_max_appearance_cost=0.4) == [(EventKind.REACQUIRED, 1)]  # the plain cap as loose
    # with min_hits 1 the new track is VISIBLE at once: it is no rival of itself in the veto
    assert run(300.0, min_hits=1) == [(EventKind.REACQUIRED, 1)]


def test_class_must_match_when_mismatch_is_forbidden() -> None:
    wm = WorldModel(WorldModelConfig(min_hits=1, class_mismatch_cost=3.0, ghost_age_per_hit_s=0.1))
    wm.step(0.0, [det(100, 100, class_id=1)])
    r = wm.step(0.1, [det(100, 100, class_id=2)])
    assert {(t.track_id, t.class_id, t.state) for t in r.tracks} == {
        (1, 1, TrackState.OCCLUDED), (2, 2, TrackState.VISIBLE)}


def test_a_confused_class_keeps_the_track_and_its_class() -> None:
    """The detector calls the object class 2 for three frames: same track, its class stays 1
    (the most frequent of its recent detections); a distant detection of another class is not it."""
    wm = WorldModel(WorldModelConfig(min_hits=1))
    for k in range(10):
        wm.step(k / FPS, [det(100 + k, 100, class_id=1)])
    for k in range(10, 13):
        r = wm.step(k / FPS, [det(100 + k, 100, class_id=2)])
        assert [(t.track_id, t.class_id, t.state) for t in r.tracks] == [(1, 1, TrackState.VISIBLE)]
    r = wm.step(13 / FPS, [det(100 + 13 + 45, 100, class_id=2)])  # IoU with the track < 0.3
    assert {(t.track_id, t.state) for t in r.tracks} == {(1, TrackState.OCCLUDED), (2, TrackState.VISIBLE)}


def test_a_track_takes_the_class_its_detections_agree_on() -> None:
    wm = WorldModel(WorldModelConfig(min_hits=1))
    wm.step(0.0, [det(100, 100, class_id=1)])
    for k in range(1, 10):
        r = wm.step(k / FPS, [det(100, 100, class_id=2)])
    assert [(t.track_id, t.class_id) for t in r.tracks] == [(1, 2)]


def test_thousand_detections_in_one_frame() -> None:
    rng = np.random.default_rng(0)
    wm = WorldModel(WorldModelConfig(min_hits=2))
    xy = np.column_stack([np.repeat(np.arange(40) * 50.0, 25), np.tile(np.arange(25) * 50.0, 40)])
    embs = rng.random((1000, 16)).astype(np.float32)
    for k in range(3):
        dets = [det(x + k, y, w=20, h=20, emb=e) for (x, y), e in zip(xy, embs)]
        r = wm.step(k / FPS, dets)
    assert r.rejected == 0 and len(r.tracks) == 1000
    assert {t.track_id for t in r.tracks} == set(range(1, 1001))


def test_100_objects_tracked_at_once() -> None:
    """100 moving objects with noisy detections: all confirmed and visible, none lost or split.
    (The step time is measured by `make bench`, not here.)"""
    rng = np.random.default_rng(0)
    wm = WorldModel(WorldModelConfig())
    pos = rng.uniform(0, 2000, (100, 2))
    vel = rng.uniform(-50, 50, (100, 2))
    embs = rng.random((100, 64)).astype(np.float32)
    for k in range(60):
        r = wm.step(k / FPS, [det(*(pos[i] + vel[i] * k / FPS + rng.normal(0, 1, 2)), emb=embs[i])
                              for i in range(100)])
    assert len(r.tracks) == 100 and {t.state for t in r.tracks} == {TrackState.VISIBLE}


@pytest.mark.parametrize("field, value", [
    ("min_hits", 0), ("min_hits", 2.5), ("min_hits", True), ("max_tentative_misses", -1),
    ("max_ghost_age_s", -1.0), ("max_ghost_age_s", float("nan")), ("recent_ghost_s", -0.1),
    ("iou_gate", 0.0), ("iou_gate", 1.5), ("gate_probability", 1.0), ("appearance_weight", 1.2),
    ("reid_max_appearance_cost", 3.0), ("reid_gate_scale", 0.5), ("embedding_momentum", 1.0),
    ("publish_tentative", 1), ("measurement_std_frac", 0.0), ("accel_std_frac", float("inf")),
    ("appearance_memory", "lstm"), ("working_memory_size", 0), ("episodic_memory_size", 1.5),
    ("bank_size", False), ("gallery_capacity", -1), ("reid_young_max_frames", -1), ("reid_young_max_frames", 2.5), ("gallery_min_hits", 0), ("gallery_covered_min_hits", 0), ("gallery_retention_s", -1.0),
    ("gallery_max_appearance_cost", 2.5), ("gallery_distance_per_s", float("nan")),
    ("gallery_exit_distance_per_s", -0.1), ("gallery_max_scale_ratio", 0.9), ("gallery_veto_margin", -0.1),
    ("ghost_max_scale_ratio", 0.99), ("ghost_max_scale_ratio", float("nan")),
    ("ghost_cover_frac", 0.0), ("ghost_plain_view_age_s", -1.0), ("ghost_covered_age_s", float("inf")),
    ("class_mismatch_cost", -1.0), ("class_mismatch_min_iou", 0.0),
    ("min_std_px", -1.0), ("gallery_near_frac", 1.5), ("gallery_near_frac", -0.1),
    ("gallery_near_max_appearance_cost", -0.1), ("gallery_near_max_appearance_cost", float("nan")),
    ("ghost_max_std_frac", -0.1), ("ghost_max_std_frac", float("inf")), ("occluder_memory_s", -0.2),
])
def test_config_validation(field: str, value) -> None:
    with pytest.raises(ValueError, match=field):
        WorldModelConfig(**{field: value})


def test_config_combination_and_derived_values() -> None:
    with pytest.raises(ValueError, match="recent_ghost_s .* max_ghost_age_s"):
        WorldModelConfig(max_ghost_age_s=0.1, recent_ghost_s=0.5)
    with pytest.raises(ValueError, match="recent_ghost_s .* ghost_plain_view_age_s"):
        WorldModelConfig(ghost_plain_view_age_s=0.1, recent_ghost_s=0.5)
    cfg = WorldModelConfig()
    assert cfg.mahalanobis_gate == pytest.approx(13.2767, abs=1e-3)  # chi2.ppf(0.99, 4)
    assert dataclasses.asdict(cfg.kalman_params) == {
        k: getattr(cfg, k) for k in dataclasses.asdict(cfg.kalman_params)}
    assert cfg.max_ghost_age_s > 3.0  # a 3-second occlusion survives by default


def _ghost_frames(wm: WorldModel, hits: int, max_frames: int = 200, image_size=None, vx: float = 3.0) -> int:
    """Frames a track seen ``hits`` times stays a ghost before it is LOST."""
    for k in range(hits):
        wm.step(k / FPS, [det(100 + vx * k, 100)], image_size)
    for k in range(hits, hits + max_frames):
        r = wm.step(k / FPS, [], image_size)
        if any(e.kind == EventKind.LOST for e in r.events):
            return k - hits + 1
    return max_frames


def test_ghost_life_grows_with_evidence(make_model) -> None:
    # 0.2 s per hit, capped at 4 s: a 3-hit track (glare) fades after ~0.6 s, a 50-hit one lives 4 s.
    short = _ghost_frames(make_model(ghost_age_per_hit_s=0.2, max_ghost_age_s=4.0), hits=3)
    long = _ghost_frames(make_model(ghost_age_per_hit_s=0.2, max_ghost_age_s=4.0), hits=50)
    assert 17 <= short <= 20
    assert 120 <= long <= 122


def test_ghost_leaving_the_image_is_lost_at_once(make_model) -> None:
    # Seen from x=100 to x=480 at 20 px/frame, then hidden: the ghost crosses x=640 after ~8 frames.
    inside = _ghost_frames(make_model(ghost_age_per_hit_s=0.1), hits=20, vx=20.0)  # 2 s
    outside = _ghost_frames(make_model(ghost_age_per_hit_s=0.1), hits=20, image_size=(640, 480), vx=20.0)
    assert 5 <= outside <= 12 and inside > 60


def test_config_rejects_non_positive_ghost_age_per_hit() -> None:
    with pytest.raises(ValueError, match="ghost_age_per_hit_s"):
        WorldModelConfig(ghost_age_per_hit_s=0.0)


def test_absurdly_large_boxes_are_rejected(make_model) -> None:
    wm = make_model()
    r = wm.step(0.0, [det(1e160, 100.0), det(100.0, 100.0, w=1e9), det(100.0, 100.0)])
    assert r.rejected == 2


def test_embeddings_of_any_scale_are_normalised(make_model) -> None:
    wm = make_model(min_hits=1)
    emb = np.full(8, 5.0, dtype=np.float32)  # norm 14.1: an outside detector's raw descriptor
    (track,) = wm.step(0.0, [det(100.0, 100.0, emb=emb)]).tracks
    assert np.linalg.norm(track.embedding) == pytest.approx(1.0, abs=1e-6)


def test_ids_come_from_the_allocator_and_survive_resets() -> None:
    """Two models sharing one allocator (both cameras of a node) never hand out one id twice,
    nor after a reset."""
    ids = IdAllocator(first_id=10**12, max_id=2**53 - 1)
    left, right = WorldModel(WorldModelConfig(min_hits=1), ids=ids), WorldModel(WorldModelConfig(min_hits=1), ids=ids)
    seen = [t.track_id for t in left.step(0.0, [det(100, 100)]).tracks]
    seen += [t.track_id for t in right.step(0.0, [det(100, 100), det(300, 100)]).tracks]
    left.reset()
    seen += [t.track_id for t in left.step(5.0, [det(100, 100)]).tracks]
    assert seen == [10**12, 10**12 + 1, 10**12 + 2, 10**12 + 3]


def test_reset_reports_the_confirmed_tracks_it_forgets_as_lost() -> None:
    """A VISIBLE and an OCCLUDED track get a LOST event from reset; a TENTATIVE one (never born)
    and a track already LOST do not; a new model's reset reports nothing."""
    wm = WorldModel(WorldModelConfig(min_hits=2))
    assert wm.reset() == []
    for k in range(4):
        wm.step(k / FPS, [det(100 + 2 * k, 100), det(400, 300)])
    r = wm.step(4 / FPS, [det(108, 100), det(250, 200)])  # the second goes OCCLUDED; a new one is TENTATIVE
    state = {t.track_id: t.state for t in r.tracks}
    assert sorted(state.values()) == [TrackState.VISIBLE, TrackState.OCCLUDED]
    events = wm.reset()
    assert {e.track_id for e in events} == set(state)
    assert all(e.kind == EventKind.LOST and e.state == TrackState.LOST for e in events)
    assert wm.reset() == [] and wm.last_stamp is None


def test_measurement_is_the_matched_detection_box_and_none_for_a_ghost() -> None:
    wm = WorldModel(WorldModelConfig(min_hits=1))
    for k in range(5):
        (track,) = wm.step(k / FPS, [det(100 + 2 * k, 100)]).tracks
    np.testing.assert_array_equal(track.measurement, [108.0, 100.0, 40.0, 80.0])
    assert not np.array_equal(track.box, track.measurement), "the box is the filtered state, not the detection"
    (ghost,) = wm.step(5 / FPS, []).tracks
    assert ghost.state == TrackState.OCCLUDED and ghost.measurement is None


def test_rejections_name_the_detection_and_the_problem(make_model) -> None:
    wm = make_model(min_hits=1)
    r = wm.step(0.0, [det(100, 100), det(-50, 100, w=40), det(100, 100, score=1.5), det(700, 100)], (640, 480))
    assert len(r.tracks) == 1 and r.rejected == 3
    assert "detection 1" in r.rejections[0] and "entirely outside the 640x480 image" in r.rejections[0]
    assert "detection 2" in r.rejections[1] and "score must lie in [0, 1], got 1.5" in r.rejections[1]
    assert "detection 3" in r.rejections[2] and "outside" in r.rejections[2]
    partly_out = wm.step(0.1, [det(100, 100), det(-10, 100, w=40)], (640, 480))  # overlaps the image: kept
    assert partly_out.rejected == 0


def _random_scene_outputs(filter_factory, seed: int = 11) -> list:
    """Everything a model publishes over a scene with births, misses, ghosts, re-entries, clutter
    and a class change, as comparable tuples."""
    rng = np.random.default_rng(seed)
    wm = WorldModel(WorldModelConfig(min_hits=2, max_ghost_age_s=1.0), filter_factory=filter_factory)
    pos = rng.uniform(100, 900, (12, 2))
    vel = rng.uniform(-60, 60, (12, 2))
    embs = [unit(rng) for _ in range(12)]
    out = []
    stamp = 0.0
    for k in range(80):
        stamp += float(rng.choice([1 / FPS, 2 / FPS, 0.0]))  # dropped frames and repeated stamps
        dets = [det(*(pos[i] + vel[i] * stamp + rng.normal(0, 1.5, 2)), emb=noisy(embs[i], rng),
                    class_id=int(i % 2))
                for i in range(12) if rng.random() > (0.9 if 20 <= k < 45 and i < 4 else 0.1)]
        dets += [det(*rng.uniform(0, 1000, 2), w=20, h=20, emb=unit(rng)) for _ in range(rng.integers(0, 3))]
        r = wm.step(stamp, dets, (1000, 1000))
        out.append(([(t.track_id, t.state, t.hits, t.age, t.frames_since_seen, t.box, t.velocity,
                      t.covariance, t.embedding, t.measurement) for t in r.tracks],
                    [(e.track_id, e.kind, e.state, e.box, e.frames_unseen) for e in r.events]))
    return out


def test_batched_and_filterpy_models_publish_the_same() -> None:
    """The batched filter and one filterpy filter per track give the same tracks and events
    (ids, states, counters exactly; boxes, velocities, covariances to 1e-9)."""
    batched, reference = _random_scene_outputs(None), _random_scene_outputs(BoxKalmanFilter)
    assert sum(len(tracks) for tracks, _ in batched) > 300
    assert {e[1] for _, events in batched for e in events} == set(EventKind)
    for (tracks_b, events_b), (tracks_r, events_r) in zip(batched, reference):
        assert [t[:5] for t in tracks_b] == [t[:5] for t in tracks_r]
        assert [e[:3] + e[4:] for e in events_b] == [e[:3] + e[4:] for e in events_r]
        for tb, tr in zip(tracks_b, tracks_r):
            for a, b in zip(tb[5:8], tr[5:8]):
                np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)
            np.testing.assert_array_equal(tb[8], tr[8])
            np.testing.assert_array_equal(tb[9], tr[9])
        for eb, er in zip(events_b, events_r):
            np.testing.assert_allclose(eb[3], er[3], rtol=1e-9, atol=1e-9)


def test_occluded_and_lost_in_one_step_keep_their_own_states(make_model) -> None:
    """A visible track whose prediction leaves the image when it is missed: OCCLUDED (state
    OCCLUDED) then LOST (state LOST), in that order, in the same step."""
    wm = make_model(min_hits=1)
    for k in range(10):
        wm.step(k / FPS, [det(528 + 12 * k, 100)], (640, 480))
    r = wm.step(10 / FPS, [], (640, 480))
    assert [(e.kind, e.state) for e in r.events] == [(EventKind.OCCLUDED, TrackState.OCCLUDED),
                                                     (EventKind.LOST, TrackState.LOST)]
    assert [t.state for t in r.tracks] == [TrackState.LOST] and wm.tracks == []


def test_filter_factory_must_be_callable() -> None:
    with pytest.raises(ValueError, match="filter_factory"):
        WorldModel(WorldModelConfig(), filter_factory=3)  # type: ignore[arg-type]


# --- ghost lifetime: covered, in plain view, leaving ------------------------------------------------

IMAGE = (640, 480)


def test_ghost_in_plain_view_ends_sooner_than_a_covered_one() -> None:
    """Two tracks, 60 hits each; then object A is undetected. Alone in view its ghost ends after
    ghost_plain_view_age_s; when object B's visible box covers A's prediction it lives on (to
    ghost_covered_age_s)."""
    def ghost_frames(cover: bool) -> int:
        wm = WorldModel(WorldModelConfig(ghost_plain_view_age_s=0.7, ghost_covered_age_s=4.0,
                                         ghost_age_per_hit_s=0.1))
        b_x = 300.0 if cover else 500.0
        for k in range(60):
            wm.step(k / FPS, [det(300, 200), det(b_x, 200, w=60, h=100)], IMAGE)
        for k in range(60, 300):
            r = wm.step(k / FPS, [det(b_x, 200, w=60, h=100)], IMAGE)
            if any(e.kind == EventKind.LOST and e.track_id == 1 for e in r.events):
                return k - 59
        return 240

    plain, covered = ghost_frames(False), ghost_frames(True)
    assert 20 <= plain <= 23  # 0.7 s at 30 fps
    assert 119 <= covered <= 122  # 4 s


@pytest.mark.parametrize("with_embedding", [True, False])
def test_a_ghost_without_appearance_lives_longer_in_plain_view(with_embedding: bool) -> None:
    """ghost_plain_view_age_no_embedding_s caps the plain-view ghost of a track whose detections
    carry no embedding (no gallery can give its identity back); one with embeddings keeps
    ghost_plain_view_age_s. The same object, undetected from frame 60 on, comes back at frame 85
    (0.83 s): with appearance as a new track (LOST at 0.7 s, and one look is not enough for the
    gallery here), without it under its old id."""
    emb = unit(np.random.default_rng(0)) if with_embedding else None
    wm = WorldModel(WorldModelConfig(ghost_plain_view_age_s=0.7, ghost_plain_view_age_no_embedding_s=1.0,
                                     ghost_age_per_hit_s=0.1, gallery_retention_s=0.0))
    lost_at = None
    for k in range(120):
        dets = [det(300 + 2 * k, 200, emb=emb)] if (k < 60 or k >= 85) else []
        r = wm.step(k / FPS, dets, IMAGE)
        if lost_at is None and any(e.kind == EventKind.LOST and e.track_id == 1 for e in r.events):
            lost_at = k - 59
    if with_embedding:
        assert lost_at is not None and 20 <= lost_at <= 23  # 0.7 s
        assert {t.track_id for t in wm.tracks if t.state == TrackState.VISIBLE} == {2}
    else:
        assert lost_at is None  # back at 0.83 s < 1.0 s: the ghost took it
        assert [(t.track_id, t.state) for t in wm.tracks] == [(1, TrackState.VISIBLE)]
    with pytest.raises(ValueError, match="ghost_plain_view_age_no_embedding_s"):
        WorldModelConfig(ghost_plain_view_age_no_embedding_s=-1.0)


@pytest.mark.parametrize("with_embedding", [True, False])
def test_a_young_ghost_without_appearance_lives_longer_per_hit(with_embedding: bool) -> None:
    """ghost_age_per_hit_no_embedding_s is the life a hit buys a ghost whose detections carry no
    embedding: 10 hits then nothing, in plain view under a 2 s cap, end after 0.5 s with
    appearance (0.05 s a hit) and after 1.5 s without (0.15 s a hit)."""
    emb = unit(np.random.default_rng(0)) if with_embedding else None
    wm = WorldModel(WorldModelConfig(ghost_age_per_hit_s=0.05, ghost_age_per_hit_no_embedding_s=0.15,
                                     ghost_min_hit_ratio=0.0, ghost_plain_view_age_s=2.0, max_ghost_age_s=2.0))
    lost_after = None
    for k in range(80):
        r = wm.step(k / FPS, [det(300 + k, 200, emb=emb)] if k < 10 else [], IMAGE)
        if any(e.kind == EventKind.LOST for e in r.events):
            lost_after = (k - 9) / FPS  # seconds since the last detection
            break
    assert lost_after is not None and lost_after == pytest.approx(0.5 if with_embedding else 1.5, abs=1.5 / FPS)
    with pytest.raises(ValueError, match="ghost_age_per_hit_no_embedding_s"):
        WorldModelConfig(ghost_age_per_hit_no_embedding_s=-0.1)


# --- re-identification of LOST tracks (the gallery) -------------------------------------------------

def _leave_and_return(kind: str, back_row: float, away_s: float = 3.0, emb_scale: float = 0.02,
                      **config) -> tuple[WorldModel, list, list]:
    """An object seen 60 frames moving right at 150 px/s leaves the 640 px image on the right; an
    object of the same look enters ``away_s`` later at the right edge on row ``back_row``, moving
    left. Returns the model, the events of the departure and those of the return."""
    rng = np.random.default_rng(7)
    emb = unit(np.random.default_rng(0))
    wm = WorldModel(WorldModelConfig(appearance_memory=kind, **config))
    out: list = []
    x, k = 450.0, 0
    while x < 700:  # visible until the box centre leaves, then a few frames past the edge
        dets = [det(x, 200, emb=noisy(emb, rng, emb_scale))] if x < 630 else []
        out += wm.step(k / FPS, dets, IMAGE).events
        x += 150.0 / FPS
        k += 1
    back: list = []
    k0 = k + int(away_s * FPS)
    for j in range(k, k0):
        out += wm.step(j / FPS, [], IMAGE).events
    for j in range(10):
        back += wm.step((k0 + j) / FPS, [det(625 - 3 * j, back_row, emb=noisy(emb, rng, emb_scale))], IMAGE).events
    return wm, out, back


@pytest.mark.parametrize("kind", ["ema", "bank", "dual"])
def test_an_object_that_left_the_view_gets_its_identity_back(kind: str) -> None:
    wm, out, back = _leave_and_return(kind, back_row=205)
    assert [e.kind for e in out] == [EventKind.BIRTH, EventKind.OCCLUDED, EventKind.LOST]
    assert [(e.kind, e.track_id) for e in back] == [(EventKind.REACQUIRED, 1)]  # no BIRTH of a new id
    assert back[0].frames_unseen >= 3.0 * FPS and wm.gallery_ids == []
    assert [t.track_id for t in wm.tracks] == [1]


def test_a_look_alike_entering_elsewhere_gets_a_new_identity() -> None:
    """Same look, but it enters 220 px lower than where the object left: not plausible."""
    wm, _, back = _leave_and_return("dual", back_row=420)
    assert [(e.kind, e.track_id) for e in back] == [(EventKind.BIRTH, 2)] and wm.gallery_ids == [1]


def test_the_gallery_forgets_after_its_retention() -> None:
    _, _, back = _leave_and_return("dual", back_row=205, away_s=3.0, gallery_retention_s=2.0)
    assert [(e.kind, e.track_id) for e in back] == [(EventKind.BIRTH, 2)]


def test_a_brief_track_does_not_enter_the_gallery_and_the_gallery_is_bounded() -> None:
    wm = WorldModel(WorldModelConfig(min_hits=1, gallery_min_hits=5, gallery_capacity=3))

    def one_hot(i: int) -> np.ndarray:  # looks that share nothing: no object takes another's identity
        v = np.zeros(32, np.float32)
        v[i] = 1.0
        return v

    for i in range(6):  # six objects, each seen 10 frames then leaving the image at once
        base = 100 * i
        for k in range(10):
            wm.step((base + k) / FPS, [det(600 + 4 * k, 50 + 60 * i, emb=one_hot(2 * i))], IMAGE)
        wm.step((base + 10) / FPS, [det(20, 400, emb=one_hot(2 * i + 1))], IMAGE)  # a 1-frame track elsewhere
        for k in range(11, 30):
            wm.step((base + k) / FPS, [], IMAGE)
    assert len(wm.gallery_ids) == 3 and wm.gallery_ids == sorted(wm.gallery_ids)


@pytest.mark.parametrize("motion_model", ["cv", "damped", "imm"])
def test_an_object_lost_behind_a_low_wall_is_measured_by_its_extent_not_its_last_sliver(motion_model: str) -> None:
    """An 80 px tall object walks right, sinks behind a low wall (its box truncated from below to 30
    px, the top edge still), stays hidden 1.5 s (its ghost ends: LOST, into the gallery) and comes
    back whole on its path. Its height in the gallery is its steady extent (80 px), not the 30 px
    sliver of its last box: the return is within ``gallery_max_scale_ratio`` and the motion reach
    (both scaled by the height) and keeps the identity, whichever motion model runs."""
    rng = np.random.default_rng(11)
    emb = unit(rng)
    wm = WorldModel(WorldModelConfig(motion_model=motion_model))
    k, events = 0, []
    for k in range(30):
        events += wm.step(k / FPS, [det(100 + 3 * k, 200, h=80, emb=noisy(emb, rng))], IMAGE).events
    for h in (60.0, 45.0, 30.0):  # top edge at y = 160 while the wall covers the bottom
        k += 1
        events += wm.step(k / FPS, [det(100 + 3 * k, 160 + h / 2, h=h, emb=noisy(emb, rng))], IMAGE).events
    hidden = int(1.5 * FPS)
    for k in range(k + 1, k + 1 + hidden):
        events += wm.step(k / FPS, [], IMAGE).events
    assert [e.kind for e in events] == [EventKind.BIRTH, EventKind.OCCLUDED, EventKind.LOST]
    assert wm.gallery_ids == [1]
    back = []
    for k in range(k + 1, k + 6):
        back += wm.step(k / FPS, [det(100 + 3 * k, 200, h=80, emb=noisy(emb, rng))], IMAGE).events
    assert [(e.kind, e.track_id) for e in back] == [(EventKind.REACQUIRED, 1)]
    assert wm.gallery_ids == []


def test_a_copy_of_a_visible_object_is_not_given_a_lost_identity() -> None:
    """Object B (look b) left the view; object A (look a, close to b) is visible. A detection with
    A's look appears where B left: it looks clearly more like the visible A, so B's id is not given
    to it (a reflection or duplicate of A)."""
    a = np.zeros(32, np.float32)
    a[0] = 1.0
    b = a.copy()
    b[1] = 0.5
    b /= np.linalg.norm(b)  # cos(a, b) ~ 0.89: gallery cost ~ 0.11 < 0.2
    wm = WorldModel(WorldModelConfig())
    for k in range(40):
        wm.step(k / FPS, [det(100, 100, emb=a), det(560 + 3 * k, 300, emb=b)], IMAGE)
    k = 40
    while 2 in [t.track_id for t in wm.tracks if t.state != TrackState.LOST] or k < 45:
        wm.step(k / FPS, [det(100, 100, emb=a)], IMAGE)
        k += 1
    assert wm.gallery_ids == [2]
    events = []
    for j in range(60, 65):
        events += wm.step((k + j) / FPS, [det(100, 100, emb=a), det(625, 300, emb=a)], IMAGE).events
    assert [e.kind for e in events] == [EventKind.BIRTH] and events[0].track_id > 2
    assert wm.gallery_ids == [2]


def test_a_young_track_takes_over_the_ghost_it_continues() -> None:
    """The object vanishes behind something at x = 300 while slowing down; its ghost runs on at the
    old speed; it shows again at x = 330: the new detections take the ghost's id, and the ghost
    is not left behind as a second track."""
    rng = np.random.default_rng(5)
    emb = unit(rng)
    wm = WorldModel(WorldModelConfig())
    for k in range(40):
        wm.step(k / FPS, [det(120 + 4.5 * k, 200, emb=noisy(emb, rng))], IMAGE)
    for k in range(40, 55):
        r = wm.step(k / FPS, [], IMAGE)
    assert [t.state for t in r.tracks] == [TrackState.OCCLUDED]
    events = []
    for k in range(55, 60):
        r = wm.step(k / FPS, [det(330, 200, emb=noisy(emb, rng))], IMAGE)
        events += r.events
    assert [(e.kind, e.track_id) for e in events] == [(EventKind.REACQUIRED, 1)]
    assert [(t.track_id, t.state) for t in r.tracks] == [(1, TrackState.VISIBLE)]


def _lost_frame_with_a_return(dx: float, at: int | None) -> tuple[int, object]:
    """Object 1 seen 60 frames at rest, then undetected in plain view; a detection of its look
    ``dx`` px to the right at frame ``at``. Returns the frame and step result of its LOST event (or
    of frame ``at``)."""
    emb = unit(np.random.default_rng(3))
    wm = WorldModel(WorldModelConfig())
    for k in range(60):
        wm.step(k / FPS, [det(300, 200, emb=emb)], IMAGE)
    for k in range(60, 200):
        r = wm.step(k / FPS, [det(300 + dx, 200, emb=emb)] if k == at else [], IMAGE)
        if k == at or any(e.kind == EventKind.LOST for e in r.events):
            return k, r
    raise AssertionError("the ghost never ended")


def test_a_track_lost_and_given_back_in_the_same_frame_is_published_once() -> None:
    """The frame a ghost ends, its track enters the gallery; a new detection of that object in the
    same frame, beyond the ghost's gates but within the gallery's reach, takes the identity back.
    The id is then published once (VISIBLE, REACQUIRED), not also as the LOST row it left."""
    k_lost, _ = _lost_frame_with_a_return(120.0, None)
    k, r = _lost_frame_with_a_return(120.0, k_lost)
    assert k == k_lost
    assert [(t.track_id, t.state) for t in r.tracks] == [(1, TrackState.VISIBLE)]
    assert [(e.kind, e.track_id) for e in r.events] == [(EventKind.REACQUIRED, 1)]


def test_first_frame_detections_of_a_strong_score_are_confirmed_at_once(make_model) -> None:
    # the objects in view when the model starts are born on its first frame (first_frame_min_score);
    # a weak one, and every detection of a later frame, still waits for min_hits
    wm = make_model(min_hits=3, fast_confirm_min_score=2.0, first_frame_min_score=0.6)
    r = wm.step(0.0, [det(100, 100, score=0.9), det(300, 100, score=0.4)])
    assert [(t.state, t.score) for t in r.tracks] == [(TrackState.VISIBLE, 0.9)]
    assert [(e.kind, e.track_id) for e in r.events] == [(EventKind.BIRTH, r.tracks[0].track_id)]
    r = wm.step(1 / FPS, [det(101, 100, score=0.9), det(300, 100, score=0.4), det(500, 100, score=0.9)])
    assert [t.box[0] < 200 for t in r.tracks] == [True]  # the later strong one is TENTATIVE
    assert r.events == []
    for k in (2, 3):  # each at its min_hits-th frame: the weak one (frame 0) first
        r = wm.step(k / FPS, [det(100 + k, 100, score=0.9), det(300, 100, score=0.4), det(500, 100, score=0.9)])
        assert [(e.kind, e.box[0] > 400) for e in r.events] == [(EventKind.BIRTH, k == 3)]
    assert len(r.tracks) == 3
    wm.reset()  # a reset starts a new first frame
    r = wm.step(3.0, [det(700, 100, score=0.9)])
    assert [t.state for t in r.tracks] == [TrackState.VISIBLE]
    # a duplicate box of a stronger first-frame detection (inside it) is no second object
    r = make_model(min_hits=3, first_frame_min_score=0.6).step(
        0.0, [det(100, 100, 50, 100, score=0.7), det(104, 106, 40, 80, score=0.9), det(400, 100, score=0.8)])
    assert sorted((t.box[0], t.score) for t in r.tracks) == [(104.0, 0.9), (400.0, 0.8)]
    # off (the dataclass default): the first frame waits like any other
    off = make_model(min_hits=3, fast_confirm_min_score=2.0)
    assert off.step(0.0, [det(100, 100, score=0.99)]).tracks == []


@pytest.mark.parametrize("young_frames", [0, 10])
def test_a_young_confirmed_track_takes_back_an_identity_once_it_looks_like_it(young_frames: int) -> None:
    """An object lost in plain view (into the gallery) comes back on its path first looking unlike
    itself (a sliver: cosine distance ~0.3, over the gallery's cap), so it is confirmed under a new
    id; a few frames later its whole look shows. Within ``reid_young_max_frames`` of its start
    the young track takes the old identity back: its own id ends (LOST) and the old one is
    REACQUIRED, published from then on; with 0 it keeps the new id."""
    rng = np.random.default_rng(4)
    look, sliver = unit(np.random.default_rng(0)), unit(np.random.default_rng(1))
    wm = WorldModel(WorldModelConfig(gallery_near_frac=0.0, reid_young_max_frames=young_frames))
    for k in range(30):
        wm.step(k / FPS, [det(100 + 60 * k / FPS, 300, emb=noisy(look, rng))], IMAGE)
    for k in range(30, 60):  # 1 s unseen in plain view: LOST after 0.7 s
        wm.step(k / FPS, [], IMAGE)
    assert wm.gallery_ids == [1]
    events, published = [], []
    for k in range(60, 75):
        emb = noisy(sliver if k < 64 else look, rng)
        result = wm.step(k / FPS, [det(100 + 60 * k / FPS, 300, emb=emb)], IMAGE)
        events += [(e.kind, e.track_id) for e in result.events]
        published.append([t.track_id for t in result.tracks])
    if young_frames == 0:
        assert events == [(EventKind.BIRTH, 2)] and published[-1] == [2] and wm.gallery_ids == [1]
    else:
        assert events == [(EventKind.BIRTH, 2), (EventKind.LOST, 2), (EventKind.REACQUIRED, 1)]
        assert published[-1] == [1] and wm.gallery_ids == []
        renamed = published.index([1])
        assert all(ids == [2] for ids in published[2:renamed])  # the new id until the look matched


@pytest.mark.parametrize("confirmed_min_hits", [0, 5])
def test_an_object_seen_a_few_frames_keeps_its_identity_through_a_long_gap(confirmed_min_hits: int) -> None:
    """An object detected in 6 frames (fewer than ``gallery_min_hits``) goes unseen for 1 s in
    plain view (LOST after 0.7 s). With ``gallery_confirmed_min_hits`` 5 it enters the gallery,
    and on its return it is not given back to the TENTATIVE track (a nuisance that keeps coming
    back would be published from its first frame) but to the track once confirmed on its own:
    the BIRTH of that frame becomes a REACQUIRED of the old id, without its 6 old hits. With 0
    (off) it is forgotten: the return is a new identity."""
    rng = np.random.default_rng(2)
    look = unit(np.random.default_rng(0))
    wm = WorldModel(WorldModelConfig(reid_young_max_frames=10, gallery_confirmed_min_hits=confirmed_min_hits))
    for k in range(6):
        wm.step(k / FPS, [det(100 + 60 * k / FPS, 300, emb=noisy(look, rng))], IMAGE)
    for k in range(6, 36):
        wm.step(k / FPS, [], IMAGE)
    assert wm.gallery_ids == ([1] if confirmed_min_hits else [])
    events, published = [], []
    for k in range(36, 42):
        result = wm.step(k / FPS, [det(100 + 60 * k / FPS, 300, emb=noisy(look, rng))], IMAGE)
        events += [(e.kind, e.track_id) for e in result.events]
        published.append([t.track_id for t in result.tracks])
    if confirmed_min_hits:
        assert events == [(EventKind.REACQUIRED, 1)] and wm.gallery_ids == []
        assert published == [[], [1], [1], [1], [1], [1]]  # TENTATIVE in its first frame (fast_confirm)
        assert wm.tracks[0].hits == 6  # its own, not the old identity's
    else:
        assert events == [(EventKind.BIRTH, 2)] and published[-1] == [2]


@pytest.mark.parametrize("young_max_frames", [0, 10])
def test_a_return_confirmed_late_still_takes_back_a_short_identity(young_max_frames: int) -> None:
    """As above, but the returning object's detection is missed in its second frame back, so its
    track is confirmed a frame late, with a frame of its life unmatched. Such an identity (fewer
    hits than ``gallery_min_hits``) goes back only to a confirmed track: a confirmed young track
    (``reid_young_max_frames`` 10) is still tested though it missed a frame, and takes the old
    identity back (REACQUIRED); with 0 (TENTATIVE tracks only) the return keeps a new id (BIRTH)."""
    rng = np.random.default_rng(2)
    look = unit(np.random.default_rng(0))
    wm = WorldModel(WorldModelConfig(reid_young_max_frames=young_max_frames, gallery_confirmed_min_hits=5))
    for k in range(6):
        wm.step(k / FPS, [det(100 + 60 * k / FPS, 300, emb=noisy(look, rng))], IMAGE)
    for k in range(6, 36):
        wm.step(k / FPS, [], IMAGE)
    assert wm.gallery_ids == [1]
    events = []
    for k in range(36, 44):
        dets = [] if k == 37 else [det(100 + 60 * k / FPS, 300, emb=noisy(look, rng))]
        events += [(e.kind, e.track_id) for e in wm.step(k / FPS, dets, IMAGE).events]
    if young_max_frames:
        assert events == [(EventKind.REACQUIRED, 1)] and wm.gallery_ids == []
        assert [t.track_id for t in wm.tracks] == [1]
    else:
        assert events == [(EventKind.BIRTH, 2)] and wm.gallery_ids == [1]


@pytest.mark.parametrize("defer_frames", [0, 20])
def test_a_return_that_looks_like_a_sliver_first_is_held_until_its_identity_is_known(defer_frames: int) -> None:
    """An object tracked for 20 frames is unseen for 2 s and comes back on its path, showing a
    little more of itself each frame (its look 0.49 from its memory at first, within 0.2 after six
    frames). Confirmed at its second frame under a new id (two strong detections), it would be
    published as id 2 and renamed 1 once its look matched: two identity switches. With
    ``reid_defer_max_frames`` its confirmation is held while it may be that object, and the old
    identity is published from the start (REACQUIRED, no BIRTH)."""
    look = unit(np.random.default_rng(0))
    other = np.zeros(32, np.float32)
    other[:3] = 1.0
    wm = WorldModel(WorldModelConfig(reid_young_max_frames=10, reid_defer_max_frames=defer_frames))
    for k in range(20):
        wm.step(k / FPS, [det(100 + 60 * k / FPS, 300, emb=look)], IMAGE)
    for k in range(20, 80):
        wm.step(k / FPS, [], IMAGE)
    assert wm.gallery_ids == [1]
    events, published = [], []
    for j, k in enumerate(range(80, 92)):
        a = min(1.0, 0.3 + 0.05 * j)
        e = (1 - a) * other / np.linalg.norm(other) + a * look
        result = wm.step(k / FPS, [det(100 + 60 * k / FPS, 300, emb=e / np.linalg.norm(e))], IMAGE)
        events += [(ev.kind, ev.track_id) for ev in result.events]
        published.append([t.track_id for t in result.tracks])
    if defer_frames:
        assert events == [(EventKind.REACQUIRED, 1)]
        assert all(ids in ([], [1]) for ids in published) and published[-1] == [1]
    else:
        assert events == [(EventKind.BIRTH, 2), (EventKind.LOST, 2), (EventKind.REACQUIRED, 1)]
        assert [2] in published and published[-1] == [1]


@pytest.mark.parametrize("case", ["another look", "elsewhere"])
def test_a_newcomer_unlike_a_lost_object_is_not_held(case: str) -> None:
    """The hold costs a new object nothing when it cannot be the lost one: one that looks unlike
    it (beyond ``reid_defer_max_appearance_cost``) or that looks the same but appears where the lost
    object could not have got to (2 s after it was last seen, about 340 px from its path: the
    motion reach is 80 px (1 + 1/s x 2 s) = 240 px) is confirmed and published at its second frame,
    as without the hold."""
    look = unit(np.random.default_rng(0))
    other = np.zeros(32, np.float32)
    other[:3] = 1.0 / np.sqrt(3.0)
    wm = WorldModel(WorldModelConfig(reid_young_max_frames=10, reid_defer_max_frames=20))
    for k in range(20):
        wm.step(k / FPS, [det(100 + 60 * k / FPS, 300, emb=look)], IMAGE)
    for k in range(20, 80):
        wm.step(k / FPS, [], IMAGE)
    assert wm.gallery_ids == [1]
    emb, x = (other, 260.0) if case == "another look" else (look, 600.0)
    events = []
    for k in range(80, 84):
        events.append([(e.kind, e.track_id) for e in wm.step(k / FPS, [det(x, 300, emb=emb)], IMAGE).events])
    assert events[:2] == [[], [(EventKind.BIRTH, 2)]]
