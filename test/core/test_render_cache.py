"""The renderer's reuse of unmoved sprites between renderings: same pixels, bounded memory."""
from __future__ import annotations

import numpy as np

from object_permanence.core.sim.render import Blend, SceneRenderer, Sprite
from object_permanence.core.sim.scenarios import make_scenario
from object_permanence.core.sim.world import SimWorld


def _renderer() -> SceneRenderer:
    rng = np.random.default_rng(3)
    background = rng.integers(0, 255, (90, 160, 3)).astype(np.uint8)
    return SceneRenderer((background, background[:, ::-1].copy()),
                         {1: rng.integers(0, 255, (64, 64, 3)).astype(np.uint8),
                          2: rng.integers(0, 255, (32, 48, 3)).astype(np.uint8)})


def test_sequential_rendering_matches_fresh_renderings_bit_for_bit() -> None:
    """Frames rendered one after the other (static sprites reused) equal each frame rendered by a
    fresh world (nothing reused)."""
    world = SimWorld(make_scenario("cluttered"), seed=7)
    sequential = [world.render(k) for k in range(6)]
    for k in (0, 3, 5):
        fresh = SimWorld(make_scenario("cluttered"), seed=7).render(k)
        for a, b in zip(sequential[k], fresh):
            np.testing.assert_array_equal(a, b)


def test_moved_or_reblended_sprite_is_not_taken_from_the_cache() -> None:
    renderer, reference = _renderer(), _renderer()
    still = Sprite(2, (10.0, 5.0, 58.0, 37.0))
    first = [still, Sprite(1, (40.25, 20.5, 104.25, 84.5))]
    second = [still, Sprite(1, (40.75, 20.5, 104.75, 84.5)), Sprite(2, (10.0, 5.0, 58.0, 37.0), Blend.DIMMED, 0.4)]
    for view in (0, 1):
        renderer.render(view, first)
        np.testing.assert_array_equal(renderer.render(view, second), reference.render(view, second))


def test_cache_holds_two_renderings_per_view_at_most() -> None:
    renderer = _renderer()
    for step in range(50):  # a sprite moving every rendering, one view only
        renderer.render(0, [Sprite(1, (step * 0.5, 10.0, step * 0.5 + 40.0, 50.0))])
    assert len(renderer._patches[0]) + len(renderer._previous_patches[0]) <= 2
