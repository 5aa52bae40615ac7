"""Tests for core.sgbm_strips (semi-global matching on box strips) and core.box_disparity (the
method choice), on rendered rectified pairs of a textured board (stereo_scenes)."""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from object_permanence.core.box_disparity import (
    BoxDisparityConfig,
    DisparitySource,
    box_disparities,
    covered_fraction,
)
from object_permanence.core.sgbm_strips import _strip, sgbm_box_disparities, sgbm_box_planes, trimmed_plane
from object_permanence.core.stereo_matching import refine_disparities, refine_disparities_detailed
from stereo_scenes import B, FX, OBJECT_TEXELS, TEXEL_M, board_texture, project, render_stereo

CENTRE = np.array([0.2, -0.1, 3.1])  # disparity 60 / 3.1 = 19.35 px: fractional
TRUE_D = FX * B / CENTRE[2]


def board_box(centre: np.ndarray = CENTRE, offset: tuple[float, float] = (0.7, -0.4)) -> np.ndarray:
    """(1, 4) left box around the board, off by ``offset`` px (detector jitter)."""
    u, v = project(centre[None])[0][0]
    size = FX * np.array(OBJECT_TEXELS) * TEXEL_M / centre[2]
    return np.array([[u + offset[0], v + offset[1], size[0], size[1]]])


@pytest.fixture(scope="module")
def flat_pair() -> tuple[np.ndarray, np.ndarray]:
    return render_stereo(CENTRE, board_texture(1))


@pytest.fixture(scope="module")
def slanted_pair() -> tuple[np.ndarray, np.ndarray]:
    """The board turned about its vertical axis: its disparity changes by 0.1 px per column (6 px
    across it), the centre's is TRUE_D."""
    return render_stereo(CENTRE, board_texture(1), slant=0.1)


@pytest.mark.parametrize("guess_error", [-3.0, 0.0, 2.5])
def test_sgbm_strip_finds_the_disparity_of_a_fronto_parallel_board(flat_pair, guess_error):
    disparity, quality = sgbm_box_disparities(*flat_pair, board_box(), np.array([TRUE_D + guess_error]))
    assert abs(disparity[0] - TRUE_D) < 0.3  # SGBM's sub-pixel bias, about 0.15 px
    assert quality[0] > 0.9


def test_sgbm_strip_fits_the_plane_of_a_slanted_board(slanted_pair):
    """Template cells disagree across a slanted surface (no NCC answer, or a wide spread); the plane
    fit of the SGBM disparities gives the centre's disparity."""
    guess = np.array([TRUE_D + 1.3])
    vote = refine_disparities_detailed(*slanted_pair, board_box(), guess)
    assert np.isnan(vote.disparity[0]) or vote.spread[0] > 0.05
    disparity, _ = sgbm_box_disparities(*slanted_pair, board_box(), guess)
    assert abs(disparity[0] - TRUE_D) < 0.3


@pytest.mark.parametrize("right_content", ["other_texture", "mirrored", "blank"])
def test_sgbm_strip_rejects_views_that_disagree(right_content):
    """A reflection (mirrored copy), another object or a blank patch in the right view: SGBM's
    smoothness still fills the box with disparities, but the right image warped by their plane does
    not look like the left box, so there is no answer."""
    board = board_texture(2)
    other = {"other_texture": board_texture(9), "mirrored": board[:, ::-1].copy(),
             "blank": np.full_like(board, 128.0)}[right_content]
    left, right = render_stereo(CENTRE, board, right_board=other)
    disparity, quality = sgbm_box_disparities(left, right, board_box(), np.array([TRUE_D + 1.0]))
    assert np.isnan(disparity[0]) and quality[0] < 0.2


def test_sgbm_strip_rejects_unusable_boxes(flat_pair):
    left, right = flat_pair
    boxes = np.array([
        [-100.0, 200.0, 60.0, 100.0],  # left of the image
        [320.0, 600.0, 60.0, 100.0],  # below it
        [330.0, 250.0, 6.0, 6.0],  # too small
        [np.nan, 250.0, 60.0, 100.0],
    ])
    disparity, quality = sgbm_box_disparities(left, right, boxes, np.full(4, 19.0))
    assert np.all(np.isnan(disparity)) and np.all(np.isnan(quality))
    flat = np.full_like(left, 128)  # no texture: SGBM's uniqueness check leaves nothing valid
    disparity, quality = sgbm_box_disparities(flat, flat, board_box(), np.array([19.0]))
    assert np.isnan(disparity[0]) and np.isnan(quality[0])
    empty, _ = sgbm_box_disparities(left, right, np.zeros((0, 4)), np.zeros(0))
    assert empty.shape == (0,)


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"disparity_guess": np.zeros(2)}, "disparity_guess"),
    ({"search_px": 0.0}, "search_px"),
    ({"block_size": 4}, "block_size"),
    ({"block_size": 13}, "block_size"),
    ({"uniqueness_ratio": -1}, "uniqueness_ratio"),
    ({"inner_frac": 0.0}, "inner_frac"),
    ({"min_valid_frac": 1.5}, "min_valid_frac"),
    ({"min_patch_px": 2}, "min_patch_px"),
    ({"min_ncc": -2.0}, "min_ncc"),
    ({"right_bgr": np.zeros((480, 320, 3), np.uint8)}, "same size"),
])
def test_sgbm_strip_validation_names_the_argument(flat_pair, kwargs, name):
    args = {"left_bgr": flat_pair[0], "right_bgr": flat_pair[1], "left_boxes": board_box(),
            "disparity_guess": np.array([19.0])}
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        sgbm_box_disparities(**args)


def test_trimmed_plane_ignores_outliers():
    rng = np.random.default_rng(0)
    du, dv = rng.uniform(-30, 30, 2000), rng.uniform(-50, 50, 2000)
    values = 17.3 + 0.1 * du - 0.02 * dv + rng.normal(0, 0.05, 2000)
    values[:400] = rng.uniform(0, 16, 400)  # 20% background and occluder pixels
    c0, a, b = trimmed_plane(values, du, dv)
    assert c0 == pytest.approx(17.3, abs=0.02)
    assert a == pytest.approx(0.1, abs=1e-3) and b == pytest.approx(-0.02, abs=1e-3)


def _plain_trimmed_plane(values: np.ndarray, du: np.ndarray, dv: np.ndarray) -> np.ndarray:
    """The trimmed plane fit written plainly (boolean indexing, np.median): the reference of the fast one."""
    if len(values) > 1500:
        take = np.linspace(0, len(values) - 1, 1500).astype(np.int64)
        values, du, dv = values[take], du[take], dv[take]
    design = np.stack([np.ones_like(du), du, dv], axis=1)
    keep = np.ones(len(values), dtype=bool)
    coef = np.zeros(3)
    for _ in range(4):
        a, y = design[keep], values[keep]
        coef = np.linalg.solve(np.einsum("ki,kj->ij", a, a), np.einsum("ki,k->i", a, y))
        residual = np.abs(values - design @ coef)
        new_keep = residual <= 2.5 * (1.4826 * np.median(residual[keep]) + 1e-3)
        if new_keep.sum() < 3 or np.array_equal(new_keep, keep):
            break
        keep = new_keep
    return coef


@pytest.mark.parametrize("n", [5, 6, 120, 1500, 4001])
def test_trimmed_plane_is_the_plain_fit_to_the_bit(n):
    rng = np.random.default_rng(n)
    du, dv = rng.integers(-40, 40, n) + 0.3, rng.integers(-30, 30, n) - 0.6
    values = np.round(12.0 + 0.05 * du - 0.01 * dv + rng.normal(0, 0.2, n), 4)  # SGBM's 1/16 px steps
    values[: n // 5] = rng.uniform(5, 30, n // 5)  # occluder and background pixels
    np.testing.assert_array_equal(trimmed_plane(values, du, dv), _plain_trimmed_plane(values, du, dv))


@pytest.mark.parametrize(("start", "stop"), [(10, 40), (-12, 20), (600, 652), (-5, 660)])
def test_strip_replicates_the_columns_outside_the_image(start, stop):
    image = np.random.default_rng(0).integers(0, 256, (48, 640), dtype=np.uint8)
    strip = _strip(image, 4, 30, start, stop)
    expected = image[4:30][:, np.clip(np.arange(start, stop), 0, 639)]
    assert strip.flags.c_contiguous
    np.testing.assert_array_equal(strip, expected)


def test_cell_spread_measures_the_matchs_own_precision(flat_pair, slanted_pair):
    guess = np.array([TRUE_D + 1.0])
    flat = refine_disparities_detailed(*flat_pair, board_box(), guess)
    assert abs(flat.disparity[0] - TRUE_D) < 0.05 and flat.spread[0] < 0.05 and flat.agreeing[0] >= 5
    pair = refine_disparities(*flat_pair, board_box(), guess)  # the two-value form agrees
    assert pair[0][0] == flat.disparity[0] and pair[1][0] == flat.quality[0]
    single = refine_disparities_detailed(*flat_pair, board_box(), guess, grid=1)
    assert np.isnan(single.spread[0])  # one template: no spread


def test_auto_keeps_a_precise_template_match(flat_pair):
    result = box_disparities(*flat_pair, board_box(), np.array([TRUE_D + 1.0]))
    assert result.source[0] == DisparitySource.NCC and result.answered[0]
    assert abs(result.disparity[0] - TRUE_D) < 0.05
    assert result.std_px[0] == pytest.approx(BoxDisparityConfig().ncc_std_px)


def test_auto_falls_back_to_sgbm_where_the_template_match_is_imprecise(slanted_pair):
    guess = np.array([TRUE_D + 1.0])
    result = box_disparities(*slanted_pair, board_box(), guess)
    assert result.source[0] == DisparitySource.SGBM
    assert abs(result.disparity[0] - TRUE_D) < 0.3
    assert result.std_px[0] == pytest.approx(BoxDisparityConfig().sgbm_std_px)
    ncc_only = box_disparities(*slanted_pair, board_box(), guess, BoxDisparityConfig(method="ncc"))
    assert ncc_only.source[0] in (DisparitySource.NONE, DisparitySource.NCC)


def test_each_method_uses_only_its_estimator(flat_pair):
    boxes = np.vstack([board_box(), [[330.0, 250.0, 6.0, 6.0]]])  # the second box is too small for either
    guess = np.array([TRUE_D + 1.0, 19.0])
    sgbm = box_disparities(*flat_pair, boxes, guess, BoxDisparityConfig(method="sgbm"))
    ncc = box_disparities(*flat_pair, boxes, guess, BoxDisparityConfig(method="ncc"))
    assert sgbm.source.tolist() == [DisparitySource.SGBM, DisparitySource.NONE]
    assert ncc.source.tolist() == [DisparitySource.NCC, DisparitySource.NONE]
    assert np.isnan(sgbm.disparity[1]) and np.isnan(ncc.std_px[1]) and not ncc.answered[1]
    empty = box_disparities(*flat_pair, np.zeros((0, 4)), np.zeros(0))
    assert empty.disparity.shape == empty.source.shape == (0,)


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"method": "fast"}, "method"),
    ({"search_px": 0.0}, "search_px"),
    ({"max_ncc_spread_px": float("nan")}, "max_ncc_spread_px"),
    ({"ncc_std_px": -0.1}, "ncc_std_px"),
    ({"sgbm_std_px": 0.0}, "sgbm_std_px"),
    ({"min_ncc": 1.5}, "min_ncc"),
    ({"inner_frac": 1.2}, "inner_frac"),
    ({"sgbm_block_size": 6}, "sgbm_block_size"),
    ({"sgbm_uniqueness_ratio": 101}, "sgbm_uniqueness_ratio"),
    ({"sgbm_min_ncc": 1.1}, "sgbm_min_ncc"),
    ({"sgbm_split_px": -0.5}, "sgbm_split_px"),
    ({"sgbm_split_px": float("inf")}, "sgbm_split_px"),
])
def test_config_validation_names_the_field(kwargs, name):
    with pytest.raises(ValueError, match=name):
        BoxDisparityConfig(**kwargs)


def test_template_only_never_answers_by_semi_global_matching(flat_pair, slanted_pair):
    """The flat board's precise template match is kept; the slanted board, which auto measures by
    SGBM, gets no answer at all."""
    flat = box_disparities(*flat_pair, board_box(), np.array([TRUE_D + 1.0]), template_only=True)
    assert flat.source[0] == DisparitySource.NCC and abs(flat.disparity[0] - TRUE_D) < 0.1
    slanted = box_disparities(*slanted_pair, board_box(), np.array([TRUE_D + 1.3]), template_only=True)
    auto = box_disparities(*slanted_pair, board_box(), np.array([TRUE_D + 1.3]))
    assert auto.source[0] == DisparitySource.SGBM
    assert slanted.source[0] == DisparitySource.NONE and np.isnan(slanted.disparity[0])


def _texture(seed: int, shape: tuple[int, int]) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0.0, 1.0, shape).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 1.5)
    return smooth / smooth.std() * 50.0 + 128.0


def _layered_pair(layers: list[tuple[np.ndarray, int, int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Rectified pair of fronto-parallel textured layers ``(texture, left column, row, integer
    disparity)`` painted back to front over a faint background at infinity."""
    views = []
    for shift in (False, True):
        image = _texture(99, (480, 640)) * 0.25 + 96.0
        for texture, x0, y0, d in layers:
            x = x0 - d if shift else x0  # u_r = u_l - d
            image[y0:y0 + texture.shape[0], x:x + texture.shape[1]] = texture
        views.append(np.repeat(np.clip(np.round(image), 0, 255).astype(np.uint8)[..., None], 3, axis=2))
    return views[0], views[1]


def test_a_box_ending_at_an_occluders_edge_is_measured_on_its_farther_half():
    """An object (disparity 14 px, columns 300-360) whose right part is hidden by a nearer panel
    (30 px, columns 340-390 in the left view); its box reaches 14 px onto the panel. SGBM's plane
    across the depth edge is pixels off; the two halves disagree and the farther one is the object."""
    left, right = _layered_pair([(_texture(1, (90, 60)), 300, 200, 14), (_texture(2, (160, 50)), 340, 170, 30)])
    box, guess = np.array([[327.0, 245.0, 54.0, 90.0]]), np.array([20.0])
    whole = box_disparities(left, right, box, guess, BoxDisparityConfig(method="sgbm", search_px=8.0))
    split = box_disparities(left, right, box, guess, BoxDisparityConfig(method="sgbm", search_px=8.0,
                                                                        sgbm_split_px=1.0))
    assert abs(whole.disparity[0] - 14.0) > 3.0
    assert abs(split.disparity[0] - 14.0) < 0.2 and split.source[0] == DisparitySource.SGBM
    flat = box_disparities(left, right, np.array([[315.0, 245.0, 26.0, 80.0]]), guess,
                           BoxDisparityConfig(method="sgbm", search_px=8.0, sgbm_split_px=1.0))
    assert abs(flat.disparity[0] - 14.0) < 0.3  # a box on the object alone: halves agree, whole box used


def test_the_halves_are_fitted_on_the_boxs_own_matching(monkeypatch):
    """sgbm_box_planes(halves=...): each half's plane comes from the box's one SGBM matching (one
    compute per box, not three), lies on its own surface at its half box's centre (cx -+ w/4),
    and is NaN where halves were not asked for."""
    left, right = _layered_pair([(_texture(1, (90, 60)), 300, 200, 14), (_texture(2, (160, 50)), 340, 170, 30)])
    boxes, guess = np.array([[327.0, 245.0, 54.0, 90.0], [327.0, 245.0, 54.0, 90.0]]), np.array([20.0, 20.0])
    computes = []
    real_create = cv2.StereoSGBM_create

    class Counting:
        def __init__(self, matcher):
            self._matcher = matcher

        def compute(self, a, b):
            computes.append(a.shape)
            return self._matcher.compute(a, b)

    monkeypatch.setattr(cv2, "StereoSGBM_create", lambda **kw: Counting(real_create(**kw)))
    planes, _, halves = sgbm_box_planes(left, right, boxes, guess, search_px=8.0, halves=np.array([True, False]))
    assert len(computes) == 2  # one matching per box
    np.testing.assert_array_equal(planes[0], planes[1])
    assert abs(halves[0, 0, 0] - 14.0) < 0.3  # the left half: the object, at cx - w/4
    assert halves[0, 1, 0] > 25.0  # the right half: mostly the nearer panel
    assert np.isnan(halves[1]).all()
    with pytest.raises(ValueError, match="halves"):
        sgbm_box_planes(left, right, boxes, guess, halves=np.array([True]))


def test_a_half_whose_views_disagree_has_no_plane():
    """The panel 8 px nearer: the right half's plane fails the warped-NCC check (0.61 < 0.63), the
    left half's, on the object, passes; a box centre between two pixel columns splits there too."""
    left, right = _layered_pair([(_texture(1, (90, 60)), 300, 200, 14), (_texture(2, (160, 50)), 340, 170, 22)])
    for cx in (327.0, 327.4):
        _, _, halves = sgbm_box_planes(left, right, np.array([[cx, 245.0, 54.0, 90.0]]), np.array([20.0]),
                                       search_px=8.0, min_ncc=0.63, halves=np.array([True]))
        assert abs(halves[0, 0, 0] - 14.0) < 0.3 and np.isnan(halves[0, 1]).all()


@pytest.mark.parametrize("slant", [0.05, 0.1])
def test_the_halves_planes_are_about_their_own_centres(slant):
    """On a board whose disparity grows by ``slant`` px per column, each half's plane gives the
    disparity at its half box's centre, cx -+ w/4: the whole box's value -+ slant w/4."""
    pair = render_stereo(CENTRE, board_texture(1), slant=slant)
    planes, _, halves = sgbm_box_planes(*pair, board_box(), np.array([TRUE_D + 1.3]), halves=np.array([True]))
    quarter = slant * board_box()[0, 2] / 4
    np.testing.assert_allclose(halves[0, :, 0], [planes[0, 0] - quarter, planes[0, 0] + quarter], atol=0.1)


@pytest.mark.parametrize("slant", [0.05, 0.1])
def test_a_slanted_board_is_not_taken_for_a_depth_edge(slant):
    """A board whose disparity grows by ``slant`` px per column: its halves' disparities at their own
    centres differ by slant * w / 2 (1.5 and 2.9 px on this 58 px box), more than sgbm_split_px,
    yet exactly what the whole box's plane predicts there; no depth edge, the whole box's disparity
    (the box centre's, within SGBM's sub-pixel bias) is kept."""
    pair = render_stereo(CENTRE, board_texture(1), slant=slant)
    guess = np.array([TRUE_D + 1.3])
    cfg = BoxDisparityConfig(method="sgbm")
    whole = box_disparities(*pair, board_box(), guess, cfg)
    split = box_disparities(*pair, board_box(), guess, dataclasses.replace(cfg, sgbm_split_px=1.0))
    assert slant * board_box()[0, 2] / 2 > 1.0  # the halves do differ by more than sgbm_split_px
    assert split.source[0] == DisparitySource.SGBM and split.disparity[0] == whole.disparity[0]
    assert abs(split.disparity[0] - TRUE_D) < 0.15


def test_precise_marks_only_tight_template_matches(flat_pair, slanted_pair):
    """precise: an NCC answer whose cells agree to max_ncc_spread_px; not an NCC answer under
    ``ncc`` whose spread exceeds it, nor an SGBM answer."""
    guess = np.array([TRUE_D + 1.0])
    tight = box_disparities(*flat_pair, board_box(), guess)
    assert tight.source[0] == DisparitySource.NCC and tight.precise.tolist() == [True]
    spread = refine_disparities_detailed(*flat_pair, board_box(), guess).spread[0]
    strict = BoxDisparityConfig(method="ncc", max_ncc_spread_px=spread / 2)  # the same match, now too loose
    loose = box_disparities(*flat_pair, board_box(), guess, strict)
    assert loose.source[0] == DisparitySource.NCC and loose.precise.tolist() == [False]
    assert box_disparities(*flat_pair, board_box(), guess, strict, template_only=True).precise.tolist() == [False]
    sgbm = box_disparities(*slanted_pair, board_box(), guess)
    assert sgbm.source[0] == DisparitySource.SGBM and sgbm.precise.tolist() == [False]
    assert sgbm.precise.dtype == bool and box_disparities(*flat_pair, np.zeros((0, 4)), np.zeros(0)).precise.shape == (0,)


def test_a_small_depth_step_at_the_box_centre_is_a_depth_edge():
    """A nearer panel (17 px) covers the object (14 px) from the box centre rightwards: the whole
    box's plane is a ramp across the step whose slope explains most of the 3 px between the halves'
    centres, yet each half is flat, off that ramp by more than sgbm_split_px at its ends; the
    farther half is the object."""
    left, right = _layered_pair([(_texture(1, (90, 60)), 300, 200, 14), (_texture(2, (160, 50)), 330, 170, 17)])
    box, guess = np.array([[330.0, 245.0, 54.0, 90.0]]), np.array([15.0])
    cfg = BoxDisparityConfig(method="sgbm", search_px=8.0)
    whole = box_disparities(left, right, box, guess, cfg)
    split = box_disparities(left, right, box, guess, dataclasses.replace(cfg, sgbm_split_px=1.0))
    assert abs(whole.disparity[0] - 14.0) > 1.0
    assert abs(split.disparity[0] - 14.0) < 0.2


def test_a_half_the_views_disagree_on_counts_as_a_depth_edge():
    """The panel 8 px nearer than the object: the right half's plane fails the warped-NCC check
    (0.61 < 0.63) while the whole box passes (0.65) pixels off; the answering left half, 2.8 px from
    the whole box's value, is the object."""
    left, right = _layered_pair([(_texture(1, (90, 60)), 300, 200, 14), (_texture(2, (160, 50)), 340, 170, 22)])
    box, guess = np.array([[327.0, 245.0, 54.0, 90.0]]), np.array([20.0])
    cfg = BoxDisparityConfig(method="sgbm", search_px=8.0, sgbm_min_ncc=0.63)
    whole = box_disparities(left, right, box, guess, cfg)
    split = box_disparities(left, right, box, guess, dataclasses.replace(cfg, sgbm_split_px=1.0))
    assert whole.disparity[0] > 16.0
    assert abs(split.disparity[0] - 14.0) < 0.2


def test_a_nearer_object_known_in_front_is_masked_out_of_the_box():
    """An object (disparity 14 px, columns 300-380) half hidden by a nearer panel (30 px, columns
    340-390 in the left view) whose box the caller knows: without it the box's disparity is the
    panel's or between the two; with its rectangle excluded, SGBM fits the object's pixels alone, and
    the template match (its cells mixing the two depths) is not used."""
    left, right = _layered_pair([(_texture(1, (90, 80)), 300, 200, 14), (_texture(2, (160, 50)), 340, 170, 30)])
    box, guess = np.array([[340.0, 245.0, 80.0, 90.0]]), np.array([20.0])
    panel = [np.array([[340.0, 170.0, 390.0, 330.0]])]
    cfg = BoxDisparityConfig(search_px=8.0)
    plain = box_disparities(left, right, box, guess, cfg)
    masked = box_disparities(left, right, box, guess, cfg, exclude=panel)
    assert abs(plain.disparity[0] - 14.0) > 3.0
    assert masked.source[0] == DisparitySource.SGBM and abs(masked.disparity[0] - 14.0) < 0.3
    assert box_disparities(left, right, box, guess, cfg, template_only=True, exclude=panel).source[0] \
        == DisparitySource.NONE  # no template match under a known occluder
    # nothing in front (an empty rectangle list) is the plain measurement
    assert box_disparities(left, right, box, guess, cfg, exclude=[np.zeros((0, 4))]).disparity[0] == plain.disparity[0]


def test_covered_fraction_of_the_matched_part():
    boxes = np.array([[100.0, 100.0, 40.0, 20.0], [100.0, 100.0, 40.0, 20.0], [100.0, 100.0, 40.0, 20.0]])
    # matched part at inner_frac 0.5: x 90-110, y 95-105 (200 px²)
    rects = [np.zeros((0, 4)), np.array([[100.0, 0.0, 200.0, 200.0]]), np.array([[0.0, 0.0, 300.0, 300.0]] * 2)]
    np.testing.assert_allclose(covered_fraction(boxes, 0.5, rects), [0.0, 0.5, 1.0])


def test_exclude_needs_one_entry_per_box(flat_pair):
    with pytest.raises(ValueError, match="exclude"):
        box_disparities(*flat_pair, board_box(), np.array([TRUE_D]), exclude=[])
    with pytest.raises(ValueError, match="exclude"):
        sgbm_box_planes(*flat_pair, board_box(), np.array([TRUE_D]), exclude=[np.zeros((0, 4))] * 2)

