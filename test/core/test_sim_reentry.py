"""The ``reentry`` scenario (objects leaving and re-entering the view, look-alike newcomers) and the
texture sources of the simulated world (real photographs or synthetic patterns)."""
from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

import cv2
import numpy as np
import pytest

from object_permanence.core.sim import ScenarioConfig, SimWorld, make_scenario
from object_permanence.core.sim.geometry import true_runs
from object_permanence.core.sim.nuisances import BACKGROUND_DISPARITY_PX, Salt
from object_permanence.core.types import ObjectKind

SEEDS = (0, 1, 7, 1000)
W = 640


@lru_cache(maxsize=None)
def _reentry(seed: int) -> tuple[SimWorld, np.ndarray, np.ndarray, np.ndarray]:
    """The world, and per view (2, T, N): off-image flags, visibility, amodal boxes (..., 4)."""
    world = SimWorld(replace(make_scenario("reentry"), textures="synthetic"), seed=seed)
    n, frames = world.config.n_objects, world.n_frames
    vis, boxes = np.zeros((2, frames, n)), np.zeros((2, frames, n, 4))
    for k in range(frames):
        truth = world.ground_truth(k)
        for view, entries in enumerate((truth.left, truth.right)):
            objects = [g for g in entries if g.kind == ObjectKind.OBJECT]
            vis[view, k] = [g.visibility for g in objects]
            boxes[view, k] = [g.box for g in objects]
            for g in objects:
                if g.box[2] * g.box[3] == 0.0:  # wholly off-image: nothing visible, no visible box
                    assert g.visibility == 0.0 and not g.visible_box.any()
    off = boxes[..., 2] * boxes[..., 3] == 0.0  # the amodal box clipped to the image is empty
    return world, off, vis, boxes


def _hue(bgr: tuple[int, int, int]) -> int:
    return int(cv2.cvtColor(np.uint8([[bgr]]), cv2.COLOR_BGR2HSV)[0, 0, 0])


def test_reentry_preset() -> None:
    config = make_scenario("reentry")
    assert config.n_frames >= 600 and config.fps == 30.0
    assert 60 <= config.away_frames[0] <= config.away_frames[1] <= 300  # 2-10 s at 30 fps
    world = SimWorld(replace(config, textures="synthetic"), seed=3)
    roles = [spec.role for spec in world.objects]
    assert roles.count("reentry") == config.n_reentries >= 2 and roles.count("newcomer") == config.n_newcomers >= 1
    for spec in world.objects:
        assert (spec.lookalike_of != 0) == (spec.role == "newcomer")


@pytest.mark.parametrize("seed", SEEDS)
def test_reentry_objects_leave_the_view_for_2_to_10_s_and_come_back(seed: int) -> None:
    world, off, vis, _ = _reentry(seed)
    frames = world.n_frames
    for spec in world.objects:
        if spec.role != "reentry":
            continue
        i = spec.object_id - 1
        gone = off[0, :, i] & off[1, :, i]  # wholly off-image in both views
        assert not gone[0]  # in the image at the start (possibly behind a nearer object)
        starts, lengths = true_runs(gone)
        complete = (starts > 0) & (starts + lengths < frames)  # left the view, then came back
        assert complete.any(), f"object {spec.object_id} never leaves and returns"
        assert ((lengths[complete] >= 60) & (lengths[complete] <= 300)).all(), lengths[complete]
        # at least one absence is followed by the object well in view again (a late one may be cut short)
        assert any(vis[:, start + length:, i].max() > 0.5 for start, length in zip(starts[complete], lengths[complete]))


@pytest.mark.parametrize("seed", SEEDS)
def test_newcomers_look_alike_and_enter_while_their_original_is_away(seed: int) -> None:
    world, off, vis, boxes = _reentry(seed)
    for spec in world.objects:
        if spec.role != "newcomer":
            continue
        original = world.objects[spec.lookalike_of - 1]
        assert original.role == "reentry" and original.class_id == spec.class_id
        hue_gap = abs(_hue(spec.color_bgr) - _hue(original.color_bgr))
        assert 1 <= min(hue_gap, 180 - hue_gap) <= 2  # 2-4 degrees apart (OpenCV hue units are 2 degrees)
        np.testing.assert_allclose(spec.size_m, original.size_m, rtol=0.06)
        assert spec.size_m[0] / spec.size_m[1] == pytest.approx(original.size_m[0] / original.size_m[1])
        i, j = spec.object_id - 1, original.object_id - 1
        shown = ~(off[0, :, i] & off[1, :, i])
        entry = int(np.argmax(shown))
        assert shown.any() and entry >= 30  # not there at the start
        assert (vis[:, :entry, i] == 0.0).all()
        # it enters while the original is away (seen before, wholly off-image now)
        assert off[0, entry, j] and off[1, entry, j] and vis[:, :entry, j].max() > 0.0
        # ... walking in over the left or right image edge
        x1 = boxes[:, entry, i, 0] - boxes[:, entry, i, 2] / 2
        x2 = boxes[:, entry, i, 0] + boxes[:, entry, i, 2] / 2
        in_view = ~off[:, entry, i]
        assert ((x1[in_view] == 0.0) | (x2[in_view] == W)).all()
        assert vis[:, entry:, i].max() > 0.5  # and comes well into view


@pytest.mark.parametrize("textures", ["synthetic", "photo"])
def test_newcomer_textures_nearly_match_their_original(textures: str) -> None:
    world = SimWorld(replace(make_scenario("reentry"), textures=textures), seed=1000)

    def square(object_id: int) -> np.ndarray:
        return cv2.resize(world.texture(object_id), (64, 64), interpolation=cv2.INTER_AREA).astype(np.float64)

    newcomers = [spec for spec in world.objects if spec.role == "newcomer"]
    assert newcomers
    for spec in newcomers:
        twin = np.abs(square(spec.object_id) - square(spec.lookalike_of)).mean()
        others = [np.abs(square(spec.object_id) - square(o.object_id)).mean() for o in world.objects
                  if o.object_id not in (spec.object_id, spec.lookalike_of)]
        assert twin < 8.0 and twin < 0.25 * min(others)


def test_texture_source_knob() -> None:
    with pytest.raises(ValueError, match=r"textures must be one of \('photo', 'synthetic'\)"):
        ScenarioConfig(textures="jpeg")
    with pytest.raises(ValueError, match="textures"):
        ScenarioConfig(textures=3)
    assert ScenarioConfig().textures == "photo"  # real photographs by default
    photo = SimWorld(make_scenario("clean"), seed=5)
    synthetic = SimWorld(replace(make_scenario("clean"), textures="synthetic"), seed=5)
    assert photo.objects == synthetic.objects  # the texture source changes the look only
    assert not np.array_equal(photo.texture(1), synthetic.texture(1))
    assert not np.array_equal(photo.render(0)[0], synthetic.render(0)[0])
    with pytest.raises(ValueError, match="key"):
        photo.texture(99)


def test_photo_worlds_take_textures_and_background_from_the_photo_module() -> None:
    from object_permanence.core.sim.textures import photo_background, photo_object_texture

    world = SimWorld(make_scenario("reentry"), seed=4)
    for spec in world.objects:
        rng = np.random.default_rng([4, Salt.TEXTURE, spec.lookalike_of or spec.object_id])
        expected = photo_object_texture(rng, spec.class_id, np.array(spec.color_bgr, dtype=np.uint8))
        np.testing.assert_array_equal(world.texture(spec.object_id), expected)
    empty = SimWorld(ScenarioConfig(n_objects=0), seed=4)  # nothing drawn over the background
    left, right = photo_background(np.random.default_rng([4, Salt.BACKGROUND]), W, 480, BACKGROUND_DISPARITY_PX)
    rendered = empty.render(17)
    np.testing.assert_array_equal(rendered[0], left)
    np.testing.assert_array_equal(rendered[1], right)
    again = SimWorld(make_scenario("reentry"), seed=4)  # deterministic per seed with photos too
    for a, b in zip(world.render(250), again.render(250)):
        np.testing.assert_array_equal(a, b)
