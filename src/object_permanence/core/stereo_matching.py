"""Image-based sub-pixel disparity refinement of stereo box pairs.

Why: a box centre carries one to two pixels of detector jitter and Kalman lag in each view, so the
disparity of two box centres is off by as much, i.e. 0.3-0.6 m in depth at 4-5 m on a 60 px·m rig.
The object's texture does much better: matching the inside of the left box against the same rows
of the *rectified* right image gives the disparity to a tenth of a pixel, whatever the box jitter
(the jitter only moves which part of the object is matched, not its disparity).

How: for each box the inner ``inner_frac`` part of the left box (grey levels) is the template; it
slides along a strip of the right image covering the integer disparities around the guess
(``cv2.matchTemplate`` with ``TM_CCOEFF_NORMED``, the zero-mean normalised cross-correlation, NCC);
a parabola through the peak and its two neighbours gives the sub-pixel offset.

The peak NCC is returned as ``quality``; it is also stereo-consistency evidence: a glare spot or a
reflection sits at a view-dependent place and rarely has a consistent match in the other view.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass
class CellVote:
    """Result of :func:`refine_disparities_detailed` for N boxes.

    disparity: (N,) column shift ``u_left - u_right`` in pixels, NaN where too few cells agree.
    quality: (N,) mean peak NCC of the agreeing cells (best cell's NCC where none agree; NaN where
        no cell was evaluated).
    spread: (N,) standard deviation (pixels) of the agreeing cells' disparities: the match's own
        precision (a fronto-parallel, well-textured surface agrees to a few hundredths of a pixel;
        noise, slant and repetitive texture spread it); NaN with fewer than two agreeing cells.
    agreeing: (N,) number of agreeing cells.
    """

    disparity: np.ndarray
    quality: np.ndarray
    spread: np.ndarray
    agreeing: np.ndarray


def refine_disparities(
    left_bgr: np.ndarray,
    right_bgr: np.ndarray,
    left_boxes: np.ndarray,
    disparity_guess: np.ndarray,
    search_px: float = 4.0,
    min_ncc: float = 0.7,
    inner_frac: float = 0.6,
    min_patch_px: int = 8,
    min_gradient: float = 2.0,
    min_peak_curvature: float = 0.02,
    grid: int = 3,
    min_agree: int | None = None,
    agree_px: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Robust sub-pixel disparities of boxes: ``(disparity, quality)`` of :func:`refine_disparities_detailed`."""
    vote = refine_disparities_detailed(left_bgr, right_bgr, left_boxes, disparity_guess, search_px, min_ncc,
                                       inner_frac, min_patch_px, min_gradient, min_peak_curvature, grid,
                                       min_agree, agree_px)
    return vote.disparity, vote.quality


def refine_disparities_detailed(
    left_bgr: np.ndarray,
    right_bgr: np.ndarray,
    left_boxes: np.ndarray,
    disparity_guess: np.ndarray,
    search_px: float = 4.0,
    min_ncc: float = 0.7,
    inner_frac: float = 0.6,
    min_patch_px: int = 8,
    min_gradient: float = 2.0,
    min_peak_curvature: float = 0.02,
    grid: int = 3,
    min_agree: int | None = None,
    agree_px: float = 0.5,
) -> CellVote:
    """Robust sub-pixel disparities of boxes: ``grid`` x ``grid`` overlapping cells, each half
    the size of the box's inner part and together spanning it, are each matched on their own
    (:func:`match_patches`); the box's disparity is the mean of the cells within ``agree_px`` of
    their median, when at least ``min_agree`` cells agree (default: a majority, 5 of 9), else NaN.

    Why cells: an object partly hidden by a nearer occluder (or showing background at a corner)
    mixes two depths in one template, which biases a whole-box match while still scoring a high
    NCC; the hidden cells disagree with the others (or fail) and are voted out. ``grid=1`` is
    the plain whole-box match (its spread is NaN).

    Raises:
        ValueError: naming the argument, for bad shapes, dtypes or parameter values.
    """
    if isinstance(grid, bool) or not isinstance(grid, int) or grid < 1:
        raise ValueError(f"grid must be an integer >= 1, got {grid!r}")
    if min_agree is None:
        min_agree = grid * grid // 2 + 1
    if isinstance(min_agree, bool) or not isinstance(min_agree, int) or not 1 <= min_agree <= grid * grid:
        raise ValueError(f"min_agree must be an integer in [1, grid * grid = {grid * grid}], got {min_agree!r}")
    if not np.isfinite(agree_px) or agree_px <= 0:
        raise ValueError(f"agree_px must be finite and positive, got {agree_px!r}")
    if not 0.0 < inner_frac <= 1.0:
        raise ValueError(f"inner_frac must lie in (0, 1], got {inner_frac!r}")
    boxes = np.asarray(left_boxes, dtype=np.float64).reshape(-1, 4)
    guess = np.asarray(disparity_guess, dtype=np.float64).reshape(-1)
    if grid == 1:
        disparity, quality = match_patches(left_bgr, right_bgr, boxes, guess, search_px, min_ncc, inner_frac,
                                           min_patch_px, min_gradient, min_peak_curvature)
        agreeing = np.isfinite(disparity).astype(np.int64)
        return CellVote(disparity, quality, np.full(len(disparity), np.nan), agreeing)
    if guess.shape[0] != boxes.shape[0]:
        raise ValueError(f"disparity_guess must have one entry per box ({boxes.shape[0]}), got {guess.shape[0]}")
    # grid x grid overlapping cells, each half the inner box's size, centres evenly spread so the
    # cells span the inner box: big enough to carry texture on small boxes, small enough that a
    # partial occluder spoils only some of them.
    steps = np.linspace(-0.25, 0.25, grid) if grid > 1 else np.zeros(1)  # (g,) centre offsets
    dx, dy = np.meshgrid(steps, steps)  # (g, g)
    inner_w, inner_h = inner_frac * boxes[:, 2], inner_frac * boxes[:, 3]
    cells = np.stack([
        boxes[:, 0, None] + dx.ravel()[None] * inner_w[:, None],
        boxes[:, 1, None] + dy.ravel()[None] * inner_h[:, None],
        np.repeat((inner_w / 2)[:, None], grid * grid, axis=1),
        np.repeat((inner_h / 2)[:, None], grid * grid, axis=1),
    ], axis=-1).reshape(-1, 4)  # (N * g², 4)
    d_cells, q_cells = match_patches(left_bgr, right_bgr, cells, np.repeat(guess, grid * grid), search_px, min_ncc,
                                     1.0, min_patch_px, min_gradient, min_peak_curvature)
    d_cells, q_cells = d_cells.reshape(-1, grid * grid), q_cells.reshape(-1, grid * grid)
    with np.errstate(invalid="ignore"):
        median = row_nanmedian(d_cells)  # NaN for a box whose cells all failed
        inlier = np.abs(d_cells - median[:, None]) <= agree_px  # NaN compares False
        count = inlier.sum(axis=1)
        # the sums below run over arrays with every non-inlier (NaN included) set to 0
        mean = np.sum(np.where(inlier, d_cells, 0.0), axis=1) / np.maximum(count, 1)
        disparity = np.where(count >= min_agree, mean, np.nan)
        # s² = Σ (d_k - mean)² / (n - 1) over the agreeing cells
        spread = np.sqrt(np.sum(np.where(inlier, (d_cells - mean[:, None]) ** 2, 0.0), axis=1)
                         / np.maximum(count - 1, 1))
        spread = np.where(count >= 2, spread, np.nan)
        quality = np.where(count > 0, np.sum(np.where(inlier, q_cells, 0.0), axis=1) / np.maximum(count, 1),
                           np.max(np.where(np.isfinite(q_cells), q_cells, -np.inf), axis=1, initial=-np.inf))
    quality = np.where(np.isfinite(quality), quality, np.nan)
    return CellVote(disparity, quality, spread, count)


def match_patches(
    left_bgr: np.ndarray,
    right_bgr: np.ndarray,
    left_boxes: np.ndarray,
    disparity_guess: np.ndarray,
    search_px: float = 4.0,
    min_ncc: float = 0.7,
    inner_frac: float = 0.6,
    min_patch_px: int = 8,
    min_gradient: float = 2.0,
    min_peak_curvature: float = 0.02,
) -> tuple[np.ndarray, np.ndarray]:
    """Sub-pixel disparities ``u_left - u_right`` (pixel columns) of boxes in a rectified image pair.

    Args:
        left_bgr, right_bgr: (H, W, 3) or (H, W) uint8 rectified images of the same shape.
        left_boxes: (N, 4) left boxes ``cx, cy, w, h`` in pixels.
        disparity_guess: (N,) disparity guesses in pixels (e.g. the box-centre disparity).
        search_px: the disparity is searched in ``[guess - search_px, guess + search_px]``.
        min_ncc: a peak NCC below this is rejected (no consistent match).
        inner_frac: side fraction of the box used as template (keeps background out of it).
        min_patch_px: templates narrower or lower than this (after clipping to the image) are rejected.
        min_gradient: templates whose RMS horizontal gradient (grey levels per pixel, the
            disparity information) is below this are rejected as flat.
        min_peak_curvature: minimum ``-(c[k-1] - 2 c[k] + c[k+1])`` of the NCC at the peak (per px²);
            a flatter peak (stripes along the rows, smooth shading) does not localise the match.

    Returns:
        disparity: (N,) float64 pixels; NaN where the peak NCC < ``min_ncc``, the peak is on the
            search border or outside the search range, the peak is too flat, or the template
            is too small, flat or out of the image (then the box centre is the best one has).
        quality: (N,) float64 peak NCC in [-1, 1]; NaN where no match was evaluated.

    Raises:
        ValueError: naming the argument, for bad shapes, dtypes or parameter values.
    """
    left_gray, right_gray, boxes, guess = box_inputs(left_bgr, right_bgr, left_boxes, disparity_guess, search_px,
                                                     min_ncc, inner_frac, min_patch_px)
    if not np.isfinite(min_gradient) or min_gradient < 0:
        raise ValueError(f"min_gradient must be finite and non-negative, got {min_gradient!r}")
    if not np.isfinite(min_peak_curvature) or min_peak_curvature <= 0:
        raise ValueError(f"min_peak_curvature must be finite and positive, got {min_peak_curvature!r}")

    n = len(boxes)
    disparity = np.full(n, np.nan)
    quality = np.full(n, np.nan)
    if n == 0:
        return disparity, quality
    width = left_gray.shape[1]

    # Template rows/columns: the inner part of the box, clipped to the left image (vectorised).
    x0, x1, y0, y1, usable = inner_windows(boxes, guess, inner_frac, min_patch_px, left_gray.shape)
    with np.errstate(invalid="ignore"):
        # Integer disparities tried: the search range widened by one so the peak has neighbours there,
        # then narrowed so the strip x0 - d_hi .. x1 - d_lo stays inside the right image.
        d_lo = np.maximum(np.floor(guess - search_px) - 1, x1 - width)
        d_hi = np.minimum(np.ceil(guess + search_px) + 1, x0)
        usable &= d_hi - d_lo >= 2  # at least three candidates: a peak and its two neighbours

    peak_k = np.zeros(n, dtype=np.int64)
    neighbours = np.full((n, 3), np.nan)  # NCC at the peak - 1, the peak, the peak + 1
    rows = np.flatnonzero(usable)
    bounds = np.stack([y0, y1, x0, x1, d_lo, d_hi], axis=1)[rows].astype(np.int64).tolist()  # ints, no NaN left
    min_gradient2 = min_gradient * min_gradient
    for i, (r0, r1, c0, c1, lo, hi) in zip(rows.tolist(), bounds):
        template = left_gray[r0:r1, c0:c1]
        # Flat along the rows (no disparity information): RMS of the column differences below
        # min_gradient, i.e. Σ (L[r, c+1] - L[r, c])² < min_gradient² n, summed exactly in integers.
        steps = template.astype(np.int32)
        steps = steps[:, 1:] - steps[:, :-1]
        if int((steps * steps).sum()) < min_gradient2 * (r1 - r0) * (c1 - c0 - 1):
            continue
        # Strip offset k is the right column c0 - hi + k, i.e. the disparity hi - k.
        ncc = cv2.matchTemplate(right_gray[r0:r1, c0 - hi:c1 - lo], template, cv2.TM_CCOEFF_NORMED)[0]
        k = int(ncc.argmax())
        peak_k[i] = k
        quality[i] = ncc[k]
        if 0 < k < ncc.size - 1:
            neighbours[i] = ncc[k - 1:k + 2]

    prev, peak, nxt = neighbours.T
    curvature = prev - 2.0 * peak + nxt  # second difference; < 0 at a strict maximum, then |offset| <= 1/2
    with np.errstate(divide="ignore", invalid="ignore"):
        offset = 0.5 * (prev - nxt) / curvature  # vertex of the parabola through the three samples
        refined = d_hi - (peak_k + offset)  # d = hi - k
        accept = (
            (quality >= min_ncc)
            & (curvature <= -min_peak_curvature)
            & (refined >= guess - search_px)
            & (refined <= guess + search_px)
        )  # NaN (border peak, not evaluated) compares False
    disparity[accept] = refined[accept]
    return disparity, quality


def box_inputs(
    left_bgr: np.ndarray,
    right_bgr: np.ndarray,
    left_boxes: np.ndarray,
    disparity_guess: np.ndarray,
    search_px: float,
    min_ncc: float,
    inner_frac: float,
    min_patch_px: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Validate the arguments every box matcher takes (:func:`match_patches`,
    ``sgbm_strips.sgbm_box_disparities``; their docstrings say what each means) and return
    ``(left_gray, right_gray, boxes, guess)``: (H, W) uint8 grey images, (N, 4) float64 ``cx, cy, w,
    h`` boxes and (N,) float64 disparity guesses.

    Raises:
        ValueError: naming the argument, for bad shapes, dtypes or parameter values.
    """
    left_gray, right_gray = gray_pair(left_bgr, right_bgr)
    boxes = np.asarray(left_boxes, dtype=np.float64).reshape(-1, 4)
    guess = np.asarray(disparity_guess, dtype=np.float64).reshape(-1)
    if guess.shape[0] != boxes.shape[0]:
        raise ValueError(f"disparity_guess must have one entry per box ({boxes.shape[0]}), got {guess.shape[0]}")
    if not np.isfinite(search_px) or search_px <= 0:
        raise ValueError(f"search_px must be finite and positive, got {search_px!r}")
    if not -1.0 <= min_ncc <= 1.0:
        raise ValueError(f"min_ncc must lie in [-1, 1], got {min_ncc!r}")
    if not 0.0 < inner_frac <= 1.0:
        raise ValueError(f"inner_frac must lie in (0, 1], got {inner_frac!r}")
    if isinstance(min_patch_px, bool) or not isinstance(min_patch_px, int) or min_patch_px < 3:
        raise ValueError(f"min_patch_px must be an integer >= 3, got {min_patch_px!r}")
    return left_gray, right_gray, boxes, guess


def inner_windows(
    boxes: np.ndarray, guess: np.ndarray, inner_frac: float, min_patch_px: int, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pixel bounds of each box's centred inner part (side fraction ``inner_frac``), rounded and
    clipped to an image of ``shape = (H, W)``, and which boxes can be matched at all.

    Args:
        boxes: (N, 4) ``cx, cy, w, h`` pixels; guess: (N,) disparity guesses, pixels.

    Returns:
        ``(x0, x1, y0, y1, usable)``: (N,) float64 columns ``x0 .. x1`` and rows ``y0 .. y1``
        (ends exclusive, NaN for a non-finite box), and (N,) bool: box and guess finite and the
        clipped window at least ``min_patch_px`` wide and high.
    """
    height, width = shape
    with np.errstate(invalid="ignore"):
        half_w, half_h = 0.5 * inner_frac * boxes[:, 2], 0.5 * inner_frac * boxes[:, 3]
        x0 = np.clip(np.round(boxes[:, 0] - half_w), 0, width)  # x0 = round(cx - f w / 2), in [0, W]
        x1 = np.clip(np.round(boxes[:, 0] + half_w), 0, width)
        y0 = np.clip(np.round(boxes[:, 1] - half_h), 0, height)
        y1 = np.clip(np.round(boxes[:, 1] + half_h), 0, height)
        usable = (np.all(np.isfinite(boxes), axis=1) & np.isfinite(guess)
                  & (x1 - x0 >= min_patch_px) & (y1 - y0 >= min_patch_px))
    return x0, x1, y0, y1, usable


def row_nanmedian(values: np.ndarray) -> np.ndarray:
    """(N,) median of the finite entries of each row of ``values`` (N, K), NaN for a row without
    any: the value ``np.nanmedian(values, axis=1)`` gives (the mean ``(a + b) / 2`` of the two middle
    entries for an even count), without its per-call overhead (it is called on every frame)."""
    n, k = values.shape
    if n == 0 or k == 0:
        return np.full(n, np.nan)
    ordered = np.sort(values, axis=1)  # NaN last
    count = np.count_nonzero(~np.isnan(values), axis=1)
    low = np.maximum((count - 1) // 2, 0)[:, None]  # middle entries of the count finite ones
    high = np.minimum(count // 2, k - 1)[:, None]
    median = (np.take_along_axis(ordered, low, axis=1) + np.take_along_axis(ordered, high, axis=1))[:, 0] / 2
    return np.where(count > 0, median, np.nan)


def gray_pair(left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate the image pair and return both as (H, W) uint8 grey images."""
    out = []
    for name, image in (("left_bgr", left), ("right_bgr", right)):
        image = np.asarray(image)
        if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
            raise ValueError(f"{name} must be an (H, W, 3) or (H, W) uint8 image, got {image.dtype} {image.shape}")
        out.append(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image)
    if out[0].shape != out[1].shape:
        raise ValueError(f"left_bgr and right_bgr must have the same size, got {out[0].shape} and {out[1].shape}")
    return out[0], out[1]
