"""Tests for core.stereo_matching on rendered rectified pairs (640x480, textured rectangles at known disparity)."""
from __future__ import annotations

import warnings

import cv2
import numpy as np
import pytest

from object_permanence.core.stereo_matching import match_patches, refine_disparities, row_nanmedian

H, W = 480, 640


def texture(height: int, width: int, seed: int, blur_px: float = 1.5, contrast: float = 50.0) -> np.ndarray:
    """(height, width) float32 smooth random texture, mean 128, std ``contrast`` grey levels."""
    noise = np.random.default_rng(seed).normal(0.0, 1.0, (height, width)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), blur_px)
    return smooth / smooth.std() * contrast + 128.0


def paste(image: np.ndarray, patch: np.ndarray, x: float, y: float) -> np.ndarray:
    """``patch`` drawn with its top-left corner at sub-pixel ``(x, y)`` (bilinear warp, anti-aliased edges)."""
    shift = np.float32([[1, 0, x], [0, 1, y]])
    layer = cv2.warpAffine(patch.astype(np.float32), shift, (W, H), flags=cv2.INTER_LINEAR)
    mask = cv2.warpAffine(np.ones(patch.shape, np.float32), shift, (W, H), flags=cv2.INTER_LINEAR)
    return image * (1.0 - mask) + layer * mask


def to_bgr(image: np.ndarray) -> np.ndarray:
    return np.repeat(np.clip(np.round(image), 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def render_pair(objects: list[tuple[np.ndarray, float, float, float]],
                right_patches: dict[int, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Left/right BGR images of ``(patch, x, y, disparity)`` objects over a faint background at infinity.

    right_patches: object index -> a different patch drawn in the right view (occlusion, reflection).
    """
    background = texture(H, W, seed=999, blur_px=3.0, contrast=12.0)
    left, right = background.copy(), background.copy()
    for k, (patch, x, y, disparity) in enumerate(objects):
        left = paste(left, patch, x, y)
        right = paste(right, (right_patches or {}).get(k, patch), x - disparity, y)
    return to_bgr(left), to_bgr(right)


def centre_box(x: float, y: float, width: int, height: int) -> np.ndarray:
    return np.array([x + 0.5 * width, y + 0.5 * height, width, height], dtype=np.float64)


@pytest.mark.parametrize("disparity", [12.0, 13.37, 15.5, 18.25, 20.8, 23.9])
def test_subpixel_disparity_of_a_shifted_textured_rectangle(disparity):
    """Box jitter of 1.5 px and a guess 1.8 px off still give the disparity to < 0.15 px."""
    x, y = 250.3, 180.6
    left, right = render_pair([(texture(100, 60, seed=int(disparity * 100)), x, y, disparity)])
    boxes = np.stack([centre_box(x + dx, y + dy, 60, 100) for dx, dy in [(0, 0), (1.5, -1.5), (-1.5, 1.5)]])
    guess = disparity + np.array([0.0, 1.8, -1.8])
    refined, quality = refine_disparities(left, right, boxes, guess)
    assert np.all(np.abs(refined - disparity) < 0.15), refined - disparity
    assert np.all(quality > 0.9)


def test_batch_of_20_boxes_is_accurate():
    rng = np.random.default_rng(0)
    objects, boxes = [], []
    for k in range(20):
        x, y, d = 30 + (k % 5) * 120 + rng.uniform(0, 1), 15 + (k // 5) * 115 + rng.uniform(0, 1), rng.uniform(12, 24)
        objects.append((texture(100, 60, seed=k), x, y, d))
        boxes.append(centre_box(x + rng.normal(0, 1.5), y + rng.normal(0, 1.5), 60, 100))
    truth = np.array([o[3] for o in objects])
    guess = truth + rng.uniform(-2.0, 2.0, 20)
    left, right = render_pair(objects)
    refined, quality = refine_disparities(left, right, np.array(boxes), guess)
    assert np.max(np.abs(refined - truth)) < 0.15
    assert np.all(quality > 0.9)


@pytest.mark.parametrize("pattern", ["uniform", "horizontal_stripes"])
def test_flat_patch_gives_nan(pattern):
    """No texture along the rows means no disparity information: not evaluated (quality NaN)."""
    rows = np.arange(100, dtype=np.float32)[:, None]
    patch = {"uniform": np.full((100, 60), 90.0, np.float32),
             "horizontal_stripes": np.repeat(128.0 + 60.0 * np.sin(rows / 3.0), 60, axis=1)}[pattern]
    left, right = render_pair([(patch, 300.0, 200.0, 16.0)])
    refined, quality = refine_disparities(left, right, centre_box(300.0, 200.0, 60, 100)[None], np.array([16.5]))
    assert np.isnan(refined[0]) and np.isnan(quality[0])


def test_noisy_horizontal_stripes_have_a_flat_peak_and_give_nan():
    """Stripes along the rows plus a little texture: matched (NCC ~1 at every shift), but the peak is too
    flat to localise, so no disparity; the same texture without the stripes refines."""
    rows = np.arange(100, dtype=np.float32)[:, None]
    speckle = texture(100, 60, seed=4, blur_px=1.0, contrast=5.0)
    stripes = speckle + 60.0 * np.sin(rows / 3.0)
    left, right = render_pair([(stripes, 300.0, 200.0, 16.2), (speckle * 6.0 - 5.0 * 128.0, 100.0, 200.0, 16.2)])
    boxes = np.stack([centre_box(300.0, 200.0, 60, 100), centre_box(100.0, 200.0, 60, 100)])
    refined, quality = refine_disparities(left, right, boxes, np.array([16.5, 16.5]))
    assert np.isnan(refined[0]) and quality[0] > 0.95
    assert abs(refined[1] - 16.2) < 0.15


def test_guess_beyond_search_range_gives_nan():
    left, right = render_pair([(texture(100, 60, seed=5), 300.0, 200.0, 16.3)])
    box = centre_box(300.0, 200.0, 60, 100)[None]
    ok, _ = refine_disparities(left, right, box, np.array([16.3 + 3.5]), search_px=4.0)
    assert abs(ok[0] - 16.3) < 0.15  # control: inside the range
    for wrong in (16.3 + 7.0, 16.3 - 6.0):
        refined, quality = refine_disparities(left, right, box, np.array([wrong]), search_px=4.0)
        assert np.isnan(refined[0]) and np.isfinite(quality[0]), wrong


@pytest.mark.parametrize("right_content", ["other_texture", "mirrored"])
def test_inconsistent_right_patch_gives_nan_and_low_quality(right_content):
    """An occluder in the right view, or a reflection (mirrored copy): no consistent match."""
    patch = texture(100, 60, seed=6)
    other = {"other_texture": texture(100, 60, seed=7), "mirrored": patch[:, ::-1].copy()}[right_content]
    left, right = render_pair([(patch, 300.0, 200.0, 16.0)], right_patches={0: other})
    refined, quality = refine_disparities(left, right, centre_box(300.0, 200.0, 60, 100)[None], np.array([16.0]))
    assert np.isnan(refined[0])
    assert quality[0] < 0.7


def test_out_of_image_and_tiny_boxes_give_nan():
    left, right = render_pair([(texture(100, 60, seed=8), 300.0, 200.0, 16.0)])
    boxes = np.array([
        [-100.0, 200.0, 60.0, 100.0],  # left of the image
        [320.0, 600.0, 60.0, 100.0],  # below it
        [330.0, 250.0, 10.0, 10.0],  # a 6x6 px template
        [np.nan, 250.0, 60.0, 100.0],
        [330.0, 250.0, 60.0, 100.0],  # control
    ])
    refined, quality = refine_disparities(left, right, boxes, np.array([16.0, 16.0, 16.0, 16.0, np.nan]))
    assert np.all(np.isnan(refined)) and np.all(np.isnan(quality))
    refined, _ = refine_disparities(left, right, boxes[-1:], np.array([16.0]))
    assert abs(refined[0] - 16.0) < 0.15


def test_search_clipped_by_the_image_border_still_refines():
    """The right copy is inside the image but the widest disparities would leave it: those are skipped."""
    x, disparity = 12.0, 11.4
    left, right = render_pair([(texture(100, 60, seed=9), x, 200.0, disparity)])
    box = centre_box(x, 200.0, 60, 100)[None]  # inner template starts at column 24, so d <= 24 fits
    refined, _ = refine_disparities(left, right, box, np.array([disparity + 0.5]), search_px=14.0)
    assert abs(refined[0] - disparity) < 0.15


def test_grey_images_and_empty_input():
    left, right = render_pair([(texture(100, 60, seed=10), 300.0, 200.0, 16.0)])
    box = centre_box(300.0, 200.0, 60, 100)[None]
    grey = refine_disparities(left[..., 0], right[..., 0], box, np.array([15.0]))[0]
    colour = refine_disparities(left, right, box, np.array([15.0]))[0]
    assert grey[0] == pytest.approx(colour[0], abs=0.02)
    refined, quality = refine_disparities(left, right, np.zeros((0, 4)), np.zeros(0))
    assert refined.shape == quality.shape == (0,)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"left_bgr": np.zeros((H, W, 3), np.float32)}, "left_bgr"),
        ({"right_bgr": np.zeros((H, W, 4), np.uint8)}, "right_bgr"),
        ({"right_bgr": np.zeros((H, W // 2, 3), np.uint8)}, "same size"),
        ({"disparity_guess": np.zeros(2)}, "disparity_guess"),
        ({"search_px": 0.0}, "search_px"),
        ({"min_ncc": 1.5}, "min_ncc"),
        ({"inner_frac": 0.0}, "inner_frac"),
        ({"min_patch_px": 2}, "min_patch_px"),
        ({"min_gradient": float("nan")}, "min_gradient"),
        ({"min_peak_curvature": 0.0}, "min_peak_curvature"),
    ],
)
def test_argument_validation_names_the_argument(kwargs, name):
    args = {"left_bgr": np.zeros((H, W, 3), np.uint8), "right_bgr": np.zeros((H, W, 3), np.uint8),
            "left_boxes": np.array([[320.0, 240.0, 60.0, 100.0]]), "disparity_guess": np.array([16.0])}
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        refine_disparities(**args)


def test_cells_vote_out_a_partial_occluder_that_biases_a_whole_box_match():
    """A nearer occluder covering one side of the object (at its own, larger disparity) is in a
    different place in each view: the whole-box template mixes both depths; the 3x3 cells over
    the occluded side disagree and are voted out."""
    x, y, disparity = 250.0, 180.0, 14.3
    obj = texture(100, 60, seed=5)
    occluder = texture(140, 14, seed=6, contrast=60.0)  # covers the right column of cells in both views
    left, right = render_pair([(obj, x, y, disparity), (occluder, x + 38.0, y - 20.0, 18.0)])
    box = centre_box(x, y, 60, 100)[None]
    robust, quality = refine_disparities(left, right, box, np.array([disparity + 1.0]))
    assert abs(robust[0] - disparity) < 0.2 and quality[0] > 0.8
    whole, _ = refine_disparities(left, right, box, np.array([disparity + 1.0]), grid=1)
    assert not abs(whole[0] - disparity) < 0.2  # biased, or rejected outright


def test_cell_voting_arguments_are_validated():
    left, right = render_pair([(texture(100, 60, seed=1), 200.0, 150.0, 15.0)])
    box, guess = centre_box(200.0, 150.0, 60, 100)[None], np.array([15.0])
    for kwargs, name in (({"grid": 0}, "grid"), ({"min_agree": 10}, "min_agree"), ({"agree_px": 0.0}, "agree_px")):
        with pytest.raises(ValueError, match=name):
            refine_disparities(left, right, box, guess, **kwargs)


def test_flatness_threshold_is_exact_at_min_gradient():
    """A template whose RMS column difference is exactly ``min_gradient`` is matched (quality
    evaluated); one column step smaller per row makes it flat (quality NaN)."""
    def quality_of(steps: np.ndarray) -> float:
        left = np.zeros((60, 200), np.uint8)
        left[10:50, 50:90] = np.cumsum(steps)[None, :]  # 40 columns, 39 differences per row
        left[10:50, 50:90] += np.arange(40, dtype=np.uint8)[:, None]  # rows differ: not a pure ramp
        _, quality = match_patches(left, left.copy(), np.array([[70.0, 30.0, 40.0, 40.0]]), np.array([5.0]),
                                   inner_frac=1.0, min_gradient=2.0)
        return float(quality[0])

    steps = np.full(40, 2, np.uint8)
    steps[0] = 10  # the first column's level, not a difference
    assert np.isfinite(quality_of(steps))  # Σ d² = 4 n: RMS exactly 2
    steps[20] = 1
    assert np.isnan(quality_of(steps))  # Σ d² = 4 n - 3 per row: below


@pytest.mark.parametrize("shape", [(0, 9), (1, 1), (7, 9), (300, 4), (50, 10)])
def test_row_nanmedian_is_numpys_nanmedian(shape):
    """The vote's median: every row's ``np.nanmedian`` to the bit, NaN rows included."""
    rng = np.random.default_rng(shape[0])
    values = np.round(rng.normal(16.0, 0.3, shape), int(rng.integers(1, 4)))  # ties
    values[rng.random(shape) < 0.35] = np.nan
    if shape[0] > 2:
        values[1] = np.nan  # a box whose cells all failed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows
        expected = np.nanmedian(values, axis=1) if values.size else np.zeros(shape[0])
    got = row_nanmedian(values)
    assert got.shape == (shape[0],)
    np.testing.assert_array_equal(got, expected)
