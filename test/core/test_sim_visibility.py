"""Visible fraction and visible-part boxes of the simulated world, and the sources of reflections.

The geometry is checked against hand-computed cases and against a brute-force pixel raster; the
world's ground truth against the scene's own occluders.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from object_permanence.core.sim import SimWorld, make_scenario
from object_permanence.core.sim.geometry import clipped_boxes, visible_parts
from object_permanence.core.types import ObjectKind

W, H = 640, 480


def _one(target: list[float], blockers: list[list[float]], blocker_rank: list[int] | None = None,
         target_rank: int = 5) -> tuple[float, np.ndarray]:
    """(visible fraction, visible box) of one target rect behind the given blockers (nearer by default)."""
    ranks = np.array(blocker_rank if blocker_rank is not None else [0] * len(blockers), dtype=np.int64)
    parts = visible_parts(np.array([target], float), np.array([target_rank]), np.array(blockers, float).reshape(-1, 4),
                          ranks, W, H)
    return float(parts.fraction[0]), parts.box[0]


@pytest.mark.parametrize(("case", "target", "blockers", "fraction", "box"), [
    # half behind a pillar on the right: the free left half is what a detector would box
    ("half_behind_pillar", [100, 100, 200, 200], [[150, 0, 300, 480]], 0.5, [125, 150, 50, 100]),
    # split by a thin pillar in the middle: the visible box spans both free sides
    ("thin_pillar_in_middle", [100, 100, 200, 200], [[140, 0, 160, 480]], 0.8, [150, 150, 100, 100]),
    # the image border cuts it: only the in-image corner is visible
    ("off_image_corner", [-50, 400, 50, 520], [], 50 * 80 / (100 * 120), [25, 440, 50, 80]),
    # a strip on the left and one along the bottom leave the upper right block
    ("two_strips", [100, 100, 200, 200], [[90, 90, 130, 210], [90, 180, 210, 210]], 70 * 80 / 1e4,
     [165, 140, 70, 80]),
    # a corner covered: the visible L-shape's bounding box is the whole rect
    ("corner_covered", [100, 100, 200, 200], [[150, 150, 250, 250]], 0.75, [150, 150, 100, 100]),
    # a pillar and the image border together
    ("pillar_and_border", [600, 100, 700, 200], [[590, 0, 620, 480]], 20 * 100 / 1e4, [630, 150, 20, 100]),
    ("wholly_covered", [100, 100, 200, 200], [[50, 50, 250, 250]], 0.0, [0, 0, 0, 0]),
    ("wholly_off_image", [650, 100, 700, 200], [], 0.0, [0, 0, 0, 0]),
    ("nothing_in_front", [100, 100, 200, 200], [], 1.0, [150, 150, 100, 100]),
])
def test_visible_parts_hand_computed(case: str, target: list[float], blockers: list[list[float]],
                                     fraction: float, box: list[float]) -> None:
    got_fraction, got_box = _one(target, blockers)
    assert got_fraction == pytest.approx(fraction, abs=1e-12), case
    np.testing.assert_allclose(got_box, box, atol=1e-9, err_msg=case)


def test_only_nearer_blockers_hide_and_a_target_never_hides_itself() -> None:
    target = [100, 100, 200, 200]
    assert _one(target, [[150, 0, 300, 480]], blocker_rank=[7])[0] == 1.0  # the pillar stands behind
    # the target listed among the blockers with its own rank (as the world does) does not hide itself
    fraction, box = _one(target, [target, [150, 0, 300, 480]], blocker_rank=[5, 2])
    assert fraction == pytest.approx(0.5)
    np.testing.assert_allclose(box, [125, 150, 50, 100])
    empty = visible_parts(np.zeros((0, 4)), np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(0, np.int64), W, H)
    assert empty.fraction.shape == (0,) and empty.box.shape == (0, 4)


def test_visible_parts_match_a_pixel_raster() -> None:
    """Integer rects: each pixel is wholly covered or free, so a raster gives the exact answer."""
    rng = np.random.default_rng(11)
    n, m = 30, 12
    corners = np.column_stack([rng.integers(-80, 700, size=n + m), rng.integers(-80, 540, size=n + m)])
    rects = np.concatenate([corners, corners + rng.integers(5, 220, size=(n + m, 2))], axis=1).astype(float)
    targets, blockers = rects[:n], rects[n:]
    target_rank, blocker_rank = rng.integers(0, 10, size=n), rng.integers(0, 10, size=m)
    parts = visible_parts(targets, target_rank, blockers, blocker_rank, W, H)
    for i, (x1, y1, x2, y2) in enumerate(targets.astype(int)):
        mask = np.zeros((H, W), bool)
        mask[max(y1, 0):max(y2, 0), max(x1, 0):max(x2, 0)] = True
        for (bx1, by1, bx2, by2), rank in zip(blockers.astype(int), blocker_rank):
            if rank < target_rank[i]:
                mask[max(by1, 0):max(by2, 0), max(bx1, 0):max(bx2, 0)] = False
        assert parts.fraction[i] == pytest.approx(mask.sum() / ((x2 - x1) * (y2 - y1)), abs=1e-12)
        if mask.any():
            rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
            expected = [(cols[0] + cols[-1] + 1) / 2, (rows[0] + rows[-1] + 1) / 2, cols[-1] + 1 - cols[0],
                        rows[-1] + 1 - rows[0]]
            np.testing.assert_allclose(parts.box[i], expected, atol=1e-9)
        else:
            np.testing.assert_array_equal(parts.box[i], np.zeros(4))
    assert 0 < (parts.fraction == 0).sum() < n and 0 < (parts.fraction == 1).sum() < n  # every case occurs


def _world(name: str, seed: int = 0) -> SimWorld:
    return SimWorld(replace(make_scenario(name), textures="synthetic"), seed=seed)


def _corners(box: np.ndarray) -> np.ndarray:
    return np.concatenate([box[:2] - box[2:] / 2, box[:2] + box[2:] / 2])


@pytest.mark.parametrize(("name", "seed"), [("cluttered", 0), ("noisy", 3)])
def test_world_visible_boxes_lie_in_the_amodal_box_and_vanish_with_visibility(name: str, seed: int) -> None:
    world = _world(name, seed)
    partial = 0
    for k in range(0, 300, 3):
        truth = world.ground_truth(k)
        for g in truth.left + truth.right:
            assert g.visible_box.shape == (4,) and np.isfinite(g.visible_box).all()
            if g.visibility == 0.0:
                np.testing.assert_array_equal(g.visible_box, np.zeros(4))
                continue
            assert g.visible_box[2] > 0 and g.visible_box[3] > 0
            vx1, vy1, vx2, vy2 = _corners(g.visible_box)
            bx1, by1, bx2, by2 = _corners(g.box)
            assert bx1 - 1e-9 <= vx1 and vx2 <= bx2 + 1e-9 and by1 - 1e-9 <= vy1 and vy2 <= by2 + 1e-9
            if g.visibility == 1.0:
                np.testing.assert_allclose(g.visible_box, g.box, atol=1e-9)
            else:
                partial += 1
    assert partial > 50


def test_objects_passing_a_pillar_are_boxed_beside_it() -> None:
    """While a scripted object is partly behind the full-height pillar, its visible box runs exactly
    from the object's free edge to the pillar's edge (pillars are wider than objects)."""
    world = _world("long_occlusion", 0)
    passes = [spec.object_id for spec in world.objects if spec.role == "occlusion_pass"]
    checked = 0
    for k in range(300):
        truth = world.ground_truth(k)
        pillars = world.occluder_rects(k)
        for view, entries in enumerate((truth.left, truth.right)):
            px1, _, px2, _ = pillars[view, 0]
            for g in entries:
                if g.object_id not in passes or not 0.0 < g.visibility < 1.0:
                    continue
                vx1, _, vx2, _ = _corners(g.visible_box)
                bx1, _, bx2, _ = _corners(g.box)
                if bx1 <= 0.0 or bx2 >= W or bx2 <= px1 or bx1 >= px2:
                    continue  # cut by the image border as well, or hidden by something else
                # the free side, exactly: from the object's edge to the pillar's
                expected = (bx1, px1) if bx1 < px1 else (px2, bx2)
                np.testing.assert_allclose((vx1, vx2), expected, atol=1e-9)
                # the visible part (visibility x full area) fits in its box
                assert g.visible_box[2] * g.visible_box[3] >= g.visibility * g.box[2] * g.box[3] * (1 - 1e-9)
                checked += 1
    assert checked > 20


def test_reflections_name_their_source_object() -> None:
    world = _world("noisy", 2)
    n = world.config.n_objects
    counted = 0
    for k in range(0, 300, 2):
        truth = world.ground_truth(k)
        for entries in (truth.left, truth.right):
            objects = {g.object_id: g for g in entries if g.kind == ObjectKind.OBJECT}
            for g in entries:
                if g.kind != ObjectKind.REFLECTION:
                    assert g.source_id == 0
                    continue
                assert 1 <= g.source_id <= n
                source = objects[g.source_id]
                assert g.class_id == source.class_id
                sx1, _, sx2, _ = _corners(source.box)
                if entries is truth.left and 0.0 < sx1 and sx2 < W:  # a mirror image: same columns, same size
                    assert g.box[0] == pytest.approx(source.box[0]) and g.box[2] == pytest.approx(source.box[2])
                    assert g.box[3] == pytest.approx(source.box[3])
                    counted += 1
    assert counted > 20


def test_clipped_boxes_are_the_amodal_boxes_cut_to_the_image() -> None:
    rects = np.array([[-20.0, 10.0, 30.0, 50.0], [600.0, 460.0, 700.0, 520.0], [700.0, 0.0, 720.0, 10.0]])
    np.testing.assert_allclose(clipped_boxes(rects, W, H), [[15, 30, 30, 40], [620, 470, 40, 20], [640, 5, 0, 10]])
