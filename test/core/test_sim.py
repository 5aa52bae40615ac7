"""Tests of the simulated stereo world: rig geometry, scenarios, ground truth, rendering, rosbag2 export.

Visible boxes and reflection sources: test_sim_visibility.py; the ``reentry`` scenario and texture
sources: test_sim_reentry.py.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from object_permanence.core.sim import SCENARIOS, ScenarioConfig, SimWorld, StereoRig, make_scenario
from object_permanence.core.types import ObjectKind
from object_permanence.core.sim.world import is_background_false_positive

RIG = StereoRig()


def _world(name: str, seed: int = 0, textures: str = "synthetic") -> SimWorld:
    """A preset world; synthetic textures unless asked (the colour checks know their base colours)."""
    return SimWorld(replace(make_scenario(name), textures=textures), seed=seed)


def _object_visibility(world: SimWorld, n_frames: int, side: str) -> np.ndarray:
    """(n_frames, N) visibility of the real objects in one camera."""
    rows = []
    for k in range(n_frames):
        entries = getattr(world.ground_truth(k), side)
        rows.append([g.visibility for g in entries if g.kind == ObjectKind.OBJECT])
    return np.array(rows)


def _hidden_runs(hidden: np.ndarray) -> list[tuple[int, int]]:
    """(start, length) of each run of True in a 1-D boolean array."""
    edges = np.diff(np.concatenate([[0], hidden.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return list(zip(starts.tolist(), (ends - starts).tolist()))


def _colour_fraction(image: np.ndarray, box: np.ndarray, colour: tuple[int, int, int], tol: int = 40) -> float:
    """Fraction of the pixels of box (shrunk by 2 px) within an L1 distance tol of colour."""
    cx, cy, w, h = box
    x1, x2 = int(np.ceil(cx - w / 2)) + 2, int(cx + w / 2) - 2
    y1, y2 = int(np.ceil(cy - h / 2)) + 2, int(cy + h / 2) - 2
    patch = image[y1:y2, x1:x2].astype(np.int32)
    return float((np.abs(patch - np.array(colour)).sum(axis=2) < tol).mean())


# ---------------------------------------------------------------- rig
def test_rig_defaults_and_matrices() -> None:
    assert (RIG.cx, RIG.cy) == (320.0, 240.0)
    np.testing.assert_allclose(RIG.K, [[500, 0, 320], [0, 500, 240], [0, 0, 1]])
    assert RIG.P_right[0, 3] == pytest.approx(-500.0 * 0.12)
    np.testing.assert_allclose(RIG.P_right[:, :3], RIG.P_left[:, :3])
    info = RIG.camera_info("right")
    assert info["distortion_model"] == "plumb_bob"
    assert (info["width"], info["height"]) == (640, 480)
    assert [info[key].shape for key in ("d", "k", "r", "p")] == [(5,), (9,), (9,), (12,)]
    np.testing.assert_allclose(info["p"].reshape(3, 4), RIG.P_right)
    np.testing.assert_allclose(info["r"].reshape(3, 3), np.eye(3))


def test_projection_matches_projection_matrices_and_disparity() -> None:
    rng = np.random.default_rng(3)
    points = np.column_stack([rng.uniform(-1, 1, 50), rng.uniform(-0.7, 0.7, 50), rng.uniform(1, 8, 50)])
    uv_left, uv_right = RIG.project(points)
    homogeneous = np.column_stack([points, np.ones(50)])
    for P, uv in ((RIG.P_left, uv_left), (RIG.P_right, uv_right)):
        projected = homogeneous @ P.T  # x = P X
        np.testing.assert_allclose(uv, projected[:, :2] / projected[:, 2:], atol=1e-9)
    np.testing.assert_allclose(uv_left[:, 1], uv_right[:, 1])  # rectified: rows align
    np.testing.assert_allclose(uv_left[:, 0] - uv_right[:, 0], 500.0 * 0.12 / points[:, 2])  # d = fx B / Z
    np.testing.assert_allclose(RIG.disparity(3.0), 20.0)
    behind = RIG.project(np.array([[0.0, 0.0, -1.0]]))[0]
    assert np.isnan(behind).all()


@pytest.mark.parametrize(("field", "value"), [("width", 0), ("fx", -1.0), ("baseline", float("nan")),
                                              ("cx", 700.0)])
def test_rig_rejects_bad_values(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        StereoRig(**{field: value})
    with pytest.raises(ValueError, match="side"):
        RIG.camera_info("middle")


# ---------------------------------------------------------------- scenarios
def test_make_scenario_and_validation() -> None:
    assert set(SCENARIOS) >= {"clean", "cluttered", "noisy", "long_occlusion", "crossing", "reentry"}
    assert 6 <= make_scenario("cluttered").n_objects <= 8
    assert make_scenario("clean").reflection_rate == 0 and not make_scenario("clean").has_occluders
    with pytest.raises(ValueError, match="cluttered"):
        make_scenario("nope")
    with pytest.raises(ValueError, match="n_occlusion_passes"):
        ScenarioConfig(n_objects=2, n_occlusion_passes=1)
    with pytest.raises(ValueError, match="flicker_prob"):
        ScenarioConfig(flicker_prob=1.5)
    with pytest.raises(ValueError, match="depth_range"):
        ScenarioConfig(depth_range=(5.0, 2.0))
    with pytest.raises(ValueError, match="occluder_depth_range"):
        ScenarioConfig(occluder_depth_range=(2.0, 3.0))
    with pytest.raises(ValueError, match="static_occluder_width_px"):
        SimWorld(ScenarioConfig(n_static_occluders=1, n_occlusion_passes=1, static_occluder_width_px=(40.0, 45.0)))
    with pytest.raises(ValueError, match="seed"):
        SimWorld(make_scenario("clean"), seed=-1)
    with pytest.raises(ValueError, match="frame index"):
        _world("clean").ground_truth(-1)
    with pytest.raises(ValueError, match="n_newcomers"):
        ScenarioConfig(n_objects=4, n_reentries=1, n_newcomers=2)
    with pytest.raises(ValueError, match="n_reentries"):
        ScenarioConfig(n_objects=2, n_reentries=2, n_newcomers=1)
    with pytest.raises(ValueError, match="away_frames"):
        ScenarioConfig(away_frames=(90, 30))
    with pytest.raises(ValueError, match="n_frames=40 is too short"):
        SimWorld(ScenarioConfig(n_objects=2, n_frames=40, n_reentries=1, n_newcomers=1, textures="synthetic"))


# ---------------------------------------------------------------- ground truth
def test_same_seed_same_world_other_seed_differs() -> None:
    a, b, c = _world("cluttered", 4), _world("cluttered", 4), _world("cluttered", 5)
    for k in (0, 57, 133, 57):  # random access, revisiting a frame
        ta, tb, tc = a.ground_truth(k), b.ground_truth(k), c.ground_truth(k)
        for side in ("left", "right"):
            la, lb = getattr(ta, side), getattr(tb, side)
            assert [(g.object_id, g.kind, g.class_id, g.visibility) for g in la] == \
                   [(g.object_id, g.kind, g.class_id, g.visibility) for g in lb]
            np.testing.assert_array_equal(np.array([g.box for g in la]), np.array([g.box for g in lb]))
        assert not np.allclose([g.box for g in ta.left[:7]], [g.box for g in tc.left[:7]])
    for image_a, image_b in zip(a.render(90), b.render(90)):
        np.testing.assert_array_equal(image_a, image_b)
    assert not np.array_equal(a.render(90)[0], c.render(90)[0])


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_preset_runs_300_frames_of_valid_ground_truth(name: str) -> None:
    world = _world(name)
    n = world.config.n_objects
    truths = [world.ground_truth(k) for k in range(300)]
    stay = [spec.role not in ("reentry", "newcomer") for spec in world.objects]  # the rest leave the view
    visible, sizes = [], []
    for k, truth in enumerate(truths):
        assert truth.index == k and truth.time == pytest.approx(k / 30.0)
        for side in ("left", "right"):
            entries = getattr(truth, side)
            objects = [g for g in entries if g.kind == ObjectKind.OBJECT]
            assert [g.object_id for g in objects] == list(range(1, n + 1))
            assert all(g.object_id >= 1000 for g in entries if g.kind != ObjectKind.OBJECT)
            boxes = np.array([g.box for g in entries])
            assert np.isfinite(boxes).all()
            corners = np.concatenate([boxes[:, :2] - boxes[:, 2:] / 2, boxes[:, :2] + boxes[:, 2:] / 2], axis=1)
            assert (corners >= -1e-9).all() and (corners <= [640, 480, 640, 480]).all()
            assert all(0.0 <= g.visibility <= 1.0 for g in entries)
            assert all(np.isfinite(g.position).all() and g.position[2] > 1.5 for g in objects)
            assert all(np.isnan(g.position).all() for g in entries if g.kind != ObjectKind.OBJECT)
            visible += [g.visibility > 0 for g, keep in zip(objects, stay) if keep]
            sizes += [max(g.box[2], g.box[3]) for g in objects if g.visibility == 1.0]
    assert np.mean(visible) > (0.6 if world.config.has_occluders else 0.95)  # objects stay mostly in view
    assert 30 <= np.median(sizes) <= 130


@pytest.mark.parametrize(("name", "seed"), [("long_occlusion", 0), ("long_occlusion", 7), ("cluttered", 0),
                                            ("cluttered", 3), ("noisy", 1)])
def test_scenarios_with_occluders_hide_objects_fully_then_show_them_again(name: str, seed: int) -> None:
    world = _world(name, seed)
    assert world.config.has_occluders
    long_runs = []
    for side in ("left", "right"):
        vis = _object_visibility(world, 300, side)
        for i in range(vis.shape[1]):
            for start, length in _hidden_runs(vis[:, i] == 0.0):
                if length >= 30 and start > 0 and (vis[start + length:, i] > 0).any():
                    long_runs.append((side, i + 1, length))
    assert {side for side, _, _ in long_runs} == {"left", "right"}
    if name == "long_occlusion":
        scripted = [length for _, obj, length in long_runs if world.objects[obj - 1].role == "occlusion_pass"]
        assert scripted and all(59 <= length <= 100 for length in scripted)


def test_crossing_pairs_occlude_each_other() -> None:
    world = _world("crossing")
    vis = _object_visibility(world, 300, "left")
    roles = [spec.role for spec in world.objects]
    assert roles.count("crossing") == 6
    far = [i for i in range(1, 6, 2)]  # the second of each pair is the far one
    assert (vis[:, far] < 0.5).any(axis=0).sum() >= 2  # most far objects get mostly covered by their partner
    assert (vis[:, far] == 0.0).any()  # and at least one disappears completely for a moment


def test_nuisances_are_labelled_persistent_and_stereo_inconsistent() -> None:
    world = _world("noisy", 2)
    seen: dict[int, dict[str, list]] = {}
    frames_of: dict[int, set[int]] = {}
    for k in range(300):
        truth = world.ground_truth(k)
        for side in ("left", "right"):
            for g in getattr(truth, side):
                if g.kind == ObjectKind.OBJECT:
                    continue
                frames_of.setdefault(g.object_id, set()).add(k)
                seen.setdefault(g.object_id, {"kind": g.kind, "left": {}, "right": {}})[side][k] = g.box
    kinds = {entry["kind"] for entry in seen.values()}
    assert kinds == {ObjectKind.REFLECTION, ObjectKind.GLARE, ObjectKind.FALSE_POSITIVE}
    reflections = {i: e for i, e in seen.items() if e["kind"] == ObjectKind.REFLECTION}
    assert len(reflections) >= 5 and max(len(frames_of[i]) for i in reflections) >= 20  # one id over its life
    for entry in reflections.values():
        for k in set(entry["left"]) & set(entry["right"]):
            left, right = entry["left"][k], entry["right"][k]
            disparity = left[0] - right[0]
            depth = 500.0 * 0.12 / disparity if disparity > 0 else np.inf
            assert abs(left[1] - right[1]) > 10.0 or not 0.5 <= depth <= 20.0
    background = {i: e for i, e in seen.items() if is_background_false_positive(i)}
    assert background and all(e["kind"] == ObjectKind.FALSE_POSITIVE for e in background.values())
    lo, hi = world.config.background_fp_frames
    for i, entry in seen.items():
        if i in background:  # on the background wall: stereo-consistent, alive for a few frames
            assert set(entry["left"]) == set(entry["right"]) and lo <= len(frames_of[i]) <= hi
            for k in entry["left"]:
                assert entry["left"][k][1] == entry["right"][k][1]
                assert entry["left"][k][0] - entry["right"][k][0] == pytest.approx(6.0)
        elif entry["kind"] == ObjectKind.FALSE_POSITIVE:
            assert len(frames_of[i]) == 1
    glare_frames = [len(frames_of[i]) for i, e in seen.items() if e["kind"] == ObjectKind.GLARE]
    assert glare_frames and max(glare_frames) > 5


def test_flicker_blinks_nuisances_on_and_off() -> None:
    config = replace(make_scenario("noisy"), flicker_prob=1.0, flicker_duty=0.5, false_positive_rate=0.0)
    world = SimWorld(config, seed=0)
    frames_of: dict[int, list[int]] = {}
    for k in range(300):
        for g in world.ground_truth(k).left:
            if g.kind == ObjectKind.GLARE:
                frames_of.setdefault(g.object_id, []).append(k)
    gaps = [np.diff(frames).max() for frames in frames_of.values() if len(frames) > 3]
    assert gaps and max(gaps) > 1  # every glare blinks: its frames are not contiguous


# ---------------------------------------------------------------- rendering
def test_render_shows_objects_at_their_boxes_and_occluders_over_them() -> None:
    world = _world("long_occlusion")
    left, right = world.render(0)
    assert left.shape == right.shape == (480, 640, 3) and left.dtype == np.uint8
    checked = hidden_checked = 0
    pillar_frames = []
    occluder = world.occluder_rects(0)[0, 0]
    # columns the pillar covers fully (its edge columns are blended by sub-pixel coverage)
    x1, x2 = max(0, int(np.ceil(occluder[0]))), min(640, int(np.floor(occluder[2])))
    y1, y2 = max(0, int(np.ceil(occluder[1]))), min(480, int(np.floor(occluder[3])))
    for k in range(0, 300, 10):
        truth = world.ground_truth(k)
        left, right = world.render(k)
        pillar_frames.append(left[y1:y2, x1:x2].copy())
        for image, entries in ((left, truth.left), (right, truth.right)):
            for g in entries:
                colour = world.objects[g.object_id - 1].color_bgr
                if g.visibility == 1.0:
                    assert _colour_fraction(image, g.box, colour) > 0.3  # base colour under pattern and label blobs
                    checked += 1
                elif g.visibility == 0.0 and g.box[2] > 10 and g.box[3] > 10:
                    assert _colour_fraction(image, g.box, colour) < 0.02
                    hidden_checked += 1
    assert checked > 50 and hidden_checked > 3
    # the pillar is drawn in front: its pixels never change although objects pass behind it
    for frame in pillar_frames[1:]:
        np.testing.assert_array_equal(frame, pillar_frames[0])
    hsv = cv2.cvtColor(pillar_frames[0], cv2.COLOR_BGR2HSV)
    assert np.median(hsv[:, :, 1]) < 60  # a grey panel, not an object colour


def test_render_draws_reflections_dimmed_and_glare_saturated() -> None:
    config = replace(make_scenario("noisy"), flicker_prob=0.0)
    world = SimWorld(config, seed=0)
    # same seed and objects, no reflections: the reference each reflection is blended over
    plain = SimWorld(replace(config, reflection_rate=0.0), seed=0)
    glare_checked = reflection_checked = 0
    for k in range(0, 300, 5):
        truth = world.ground_truth(k)
        left, reference = world.render(k)[0], plain.render(k)[0]
        glare_boxes = [g.box for g in truth.left if g.kind == ObjectKind.GLARE]
        for g in truth.left:
            cx, cy, w, h = g.box
            if g.kind == ObjectKind.GLARE and g.visibility == 1.0:
                assert (left[int(cy), int(cx)] >= 250).all()
                glare_checked += 1
            elif g.kind == ObjectKind.REFLECTION and g.visibility == 1.0 and not any(
                    abs(cx - b[0]) < (w + b[2]) / 2 and abs(cy - b[1]) < (h + b[3]) / 2 for b in glare_boxes):
                source_colour = np.array([o.color_bgr for o in world.objects if o.class_id == g.class_id])
                region = (slice(int(cy - h / 2) + 2, int(cy + h / 2) - 2),
                          slice(int(cx - w / 2) + 2, int(cx + w / 2) - 2))
                patch_mean = left[region].reshape(-1, 3).mean(axis=0)
                plain_mean = reference[region].reshape(-1, 3).mean(axis=0)
                # pulled towards a source colour, but dimmed: far from the full object colour
                assert np.abs(source_colour - patch_mean).sum(1).min() < np.abs(source_colour - plain_mean).sum(1).min()
                assert max(_colour_fraction(left, g.box, tuple(c)) for c in source_colour) < 0.1
                reflection_checked += 1
    assert glare_checked > 5 and reflection_checked > 5


# ---------------------------------------------------------------- rosbag2
def test_bag_round_trip(tmp_path: Path) -> None:
    pytest.importorskip("rosbags")
    from rosbags.rosbag2 import Reader

    from object_permanence.core.sim.bag import make_typestore, write_bag

    # the default (photo) textures, and reflections from the first frame on
    world = SimWorld(replace(make_scenario("cluttered"), reflection_rate=20.0), seed=1)
    path = write_bag(world, tmp_path / "sim_bag", n_frames=6, start_stamp_ns=10**9)
    typestore = make_typestore()
    expected_stamps = [10**9 + round(k / 30.0 * 1e9) for k in range(6)]
    with Reader(path) as reader:
        counts = {c.topic: c.msgcount for c in reader.connections}
        assert counts == {"/stereo/left/image_raw": 6, "/stereo/right/image_raw": 6, "/stereo/left/camera_info": 6,
                          "/stereo/right/camera_info": 6, "/sim/ground_truth": 6}
        by_topic: dict[str, list] = {}
        for connection, stamp, raw in reader.messages():
            msg = typestore.deserialize_cdr(raw, connection.msgtype)
            by_topic.setdefault(connection.topic, []).append((stamp, msg))
    for topic, items in by_topic.items():
        assert [stamp for stamp, _ in items] == expected_stamps, topic
        assert [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for _, m in items] == expected_stamps
    image = by_topic["/stereo/right/image_raw"][3][1]
    assert (image.encoding, image.height, image.width, image.step) == ("bgr8", 480, 640, 1920)
    assert image.header.frame_id == "right_camera_optical_frame"
    np.testing.assert_array_equal(image.data.reshape(480, 640, 3), world.render(3)[1])
    info = by_topic["/stereo/right/camera_info"][0][1]
    np.testing.assert_allclose(info.p.reshape(3, 4), world.rig.P_right)
    truth_msg = by_topic["/sim/ground_truth"][2][1]
    truth = world.ground_truth(2)
    assert truth_msg.frame_index == 2
    assert [o.id for o in truth_msg.left] == [g.object_id for g in truth.left]
    assert truth_msg.left[0].cx == pytest.approx(truth.left[0].box[0], abs=1e-3)
    assert truth_msg.left[0].position.z == pytest.approx(truth.left[0].position[2])
    # visible-part boxes and reflection sources travel too (float32 in the message)
    for msgs, entries in ((truth_msg.left, truth.left), (truth_msg.right, truth.right)):
        np.testing.assert_allclose([[o.vis_cx, o.vis_cy, o.vis_w, o.vis_h] for o in msgs],
                                   [g.visible_box for g in entries], atol=1e-3)
        assert [o.source_id for o in msgs] == [g.source_id for g in entries]
    reflections = [(k, o) for k, (_, m) in enumerate(by_topic["/sim/ground_truth"]) for o in m.left + m.right
                   if o.kind == int(ObjectKind.REFLECTION)]
    assert reflections and all(1 <= o.source_id <= world.config.n_objects for _, o in reflections)


def test_render_places_objects_with_sub_pixel_precision() -> None:
    """A sprite moved by a fraction of a pixel moves its image content by that fraction
    (the stereo matcher measures disparity from it)."""
    from object_permanence.core.sim.render import SceneRenderer, Sprite
    from object_permanence.core.stereo_matching import refine_disparities

    rng = np.random.default_rng(0)
    texture = cv2.GaussianBlur(rng.integers(0, 255, (64, 64, 3)).astype(np.uint8), (0, 0), 1.5)
    background = np.full((120, 200, 3), 90, np.uint8)
    renderer = SceneRenderer((background, background), {1: texture})
    base = renderer.render(0, [Sprite(1, (60.0, 30.0, 124.0, 94.0))])
    for shift in (0.25, 0.5, 0.75, 10.3):
        moved = renderer.render(0, [Sprite(1, (60.0 + shift, 30.0, 124.0 + shift, 94.0))])
        # the stereo matcher, used as a shift meter between the two renderings
        measured, quality = refine_disparities(moved, base, np.array([[92.0 + shift, 62.0, 64.0, 64.0]]),
                                               np.array([round(shift)], dtype=float))
        assert measured[0] == pytest.approx(shift, abs=0.05) and quality[0] > 0.95
