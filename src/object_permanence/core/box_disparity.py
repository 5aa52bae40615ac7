"""The image disparity of stereo box pairs: template matching, semi-global matching, or the better
of the two per box.

Two estimators, each measured (``tools/eval_stereo.py`` on real rectified pairs with ground truth,
and the simulated rig):

* ``ncc``: cell-voted sub-pixel template matching
  (:func:`object_permanence.core.stereo_matching.refine_disparities_detailed`). On well-textured,
  nearly fronto-parallel surfaces its cells agree to a few hundredths of a pixel (the simulated
  scenes: about 0.01 px); on real images it answers for a minority of boxes, less accurately.
* ``sgbm``: StereoSGBM on each box's row strip with a trimmed plane fit
  (:func:`object_permanence.core.sgbm_strips.sgbm_box_disparities`): answers nearly every box on
  real images, with errors below StereoSGBM's full-image median in the same boxes, but carries
  SGBM's sub-pixel bias of about 0.15 px on the simulated scenes.

``auto`` (the default) takes each box's NCC disparity when its agreeing cells' spread, the match's
own precision estimate, is at most ``max_ncc_spread_px``, and the SGBM one otherwise (an
imprecise NCC answer is kept only where SGBM has none). Real images then get SGBM's accuracy and
coverage, precise matches keep NCC's accuracy.

A box that ends at an occluder's edge (a partly hidden object is boxed around its visible part)
spans a depth edge, across which SGBM's plane is off by pixels; with ``sgbm_split_px`` the box's
two halves are measured too and, when they depart from the whole box's plane (a slanted
surface's halves lie on it: they differ by its slope times half the box width), the farther one
(the occluded object) is used. When the caller knows the nearer objects in front of a box (the
triangulator does: the other tracks' boxes and depths), their pixels are masked out instead.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from object_permanence.core.sgbm_strips import sgbm_box_planes
from object_permanence.core.stereo_matching import gray_pair, refine_disparities_detailed

#: Names of the box-disparity methods, for parameters and command lines.
DISPARITY_METHODS: tuple[str, ...] = ("auto", "ncc", "sgbm")


class DisparitySource(IntEnum):
    """Which estimator answered a box."""

    NONE = 0  # no disparity: the caller keeps the box centres'
    NCC = 1
    SGBM = 2


@dataclass(frozen=True)
class BoxDisparityConfig:
    """How box disparities are measured from a rectified image pair.

    method: ``auto``, ``ncc`` or ``sgbm`` (see the module docstring).
    search_px: the true disparity is searched within this many pixels of the guess.
    min_ncc: minimum peak normalised cross-correlation of a template match.
    inner_frac: side fraction of the left box (centred) that is matched.
    min_peak_curvature: minimum sharpness (negative second difference) of the NCC peak.
    max_ncc_spread_px: ``auto`` uses an NCC disparity only when its agreeing cells' standard
        deviation is at most this (pixels).
    ncc_std_px: standard deviation (pixels) reported for an NCC disparity (at least its spread).
    sgbm_std_px: standard deviation (pixels) reported for an SGBM disparity.
    sgbm_block_size: StereoSGBM's odd block side (pixels).
    sgbm_uniqueness_ratio: StereoSGBM's uniqueness margin (percent).
    sgbm_min_ncc: smallest NCC of the left box with the right image warped by the SGBM plane.
    sgbm_split_px: when the SGBM planes of the box's left and right halves depart by more than this
        (pixels) from the whole box's plane, the farther half's disparity is used (see
        :func:`_farther_half`); 0: the whole box.

    Raises:
        ValueError: naming the field and its value.
    """

    method: str = "auto"
    search_px: float = 4.0
    min_ncc: float = 0.7
    inner_frac: float = 0.6
    min_peak_curvature: float = 0.02
    max_ncc_spread_px: float = 0.05
    ncc_std_px: float = 0.2
    sgbm_std_px: float = 0.5
    sgbm_block_size: int = 5
    sgbm_uniqueness_ratio: int = 10
    sgbm_min_ncc: float = 0.2
    sgbm_split_px: float = 0.0

    def __post_init__(self) -> None:
        if self.method not in DISPARITY_METHODS:
            raise ValueError(f"method must be one of {DISPARITY_METHODS}, got {self.method!r}")
        for name in ("search_px", "min_peak_curvature", "max_ncc_spread_px", "ncc_std_px", "sgbm_std_px"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be finite and positive, got {value!r}")
        for name in ("min_ncc", "sgbm_min_ncc"):
            if not -1.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [-1, 1], got {getattr(self, name)!r}")
        if not 0.0 < self.inner_frac <= 1.0:
            raise ValueError(f"inner_frac must lie in (0, 1], got {self.inner_frac!r}")
        if not (isinstance(self.sgbm_split_px, (int, float)) and math.isfinite(self.sgbm_split_px)
                and self.sgbm_split_px >= 0):
            raise ValueError(f"sgbm_split_px must be finite and non-negative, got {self.sgbm_split_px!r}")
        block = self.sgbm_block_size
        if isinstance(block, bool) or not isinstance(block, int) or block % 2 == 0 or not 3 <= block <= 11:
            raise ValueError(f"sgbm_block_size must be an odd integer in [3, 11], got {block!r}")
        ratio = self.sgbm_uniqueness_ratio
        if isinstance(ratio, bool) or not isinstance(ratio, int) or not 0 <= ratio <= 100:
            raise ValueError(f"sgbm_uniqueness_ratio must be an integer in [0, 100], got {ratio!r}")


#: Share of a box's matched part covered by nearer objects above which the template match is not
#: trusted (its cells mix two depths) and the masked semi-global fit answers instead.
OCCLUDED_FRAC = 0.25


def covered_fraction(boxes: np.ndarray, inner_frac: float, exclude: list[np.ndarray]) -> np.ndarray:
    """(N,) share of each box's centred part (side fraction ``inner_frac``) covered by its
    ``exclude`` rectangles ``x0, y0, x1, y1`` (overlaps between them counted twice; capped at 1)."""
    out = np.zeros(len(boxes))
    for i, (b, rects) in enumerate(zip(boxes, exclude)):
        if not len(rects):
            continue
        half = inner_frac * b[2:4] / 2
        lo, hi = b[:2] - half, b[:2] + half
        r = np.asarray(rects, dtype=np.float64).reshape(-1, 4)
        sides = np.clip(np.minimum(hi, r[:, 2:]) - np.maximum(lo, r[:, :2]), 0.0, None)  # (K, 2)
        out[i] = min(float(np.sum(sides[:, 0] * sides[:, 1]) / max(np.prod(2 * half), 1e-9)), 1.0)
    return out


@dataclass
class BoxDisparities:
    """Disparities of N boxes.

    disparity: (N,) column shift ``u_left - u_right`` in pixels, NaN where no estimator answered.
    std_px: (N,) its standard deviation in pixels (NaN where unanswered).
    source: (N,) int8 :class:`DisparitySource` of each answer.
    precise: (N,) bool, a template match whose agreeing cells' spread is at most
        ``max_ncc_spread_px`` (a few hundredths of a pixel where it answers): only NCC answers, and
        not every one of them (an imprecise one kept where SGBM has none, or any under ``ncc``).
    """

    disparity: np.ndarray
    std_px: np.ndarray
    source: np.ndarray
    precise: np.ndarray

    @property
    def answered(self) -> np.ndarray:
        """(N,) bool: a disparity was measured."""
        return self.source != DisparitySource.NONE


def box_disparities(left_bgr: np.ndarray, right_bgr: np.ndarray, left_boxes: np.ndarray,
                    disparity_guess: np.ndarray, config: BoxDisparityConfig | None = None,
                    template_only: bool = False, exclude: list[np.ndarray] | None = None) -> BoxDisparities:
    """Measure the disparity of each left box from a rectified pair by ``config.method``.

    Args:
        left_bgr, right_bgr: (H, W, 3) or (H, W) uint8 rectified images of the same shape.
        left_boxes: (N, 4) left boxes ``cx, cy, w, h`` in pixels.
        disparity_guess: (N,) column shifts ``u_left - u_right`` of the box centres, pixels.
        template_only: answer only by template matching, and with ``auto`` only where it is
            precise (where ``auto`` would take it): no semi-global matching, whose wide search
            around a wrong guess finds whatever surface is there.
        exclude: per box, (K, 4) rectangles ``x0, y0, x1, y1`` (left image pixels) of nearer
            objects in front of it (the caller knows them: other tracks' boxes, their depths).
            Their pixels are left out of the semi-global fit; a box whose matched part they cover
            by ``OCCLUDED_FRAC`` or more gets no template match (its cells would mix two depths:
            measured on the simulated scenes, the point of a partly hidden object went onto its
            occluder) and is answered by that masked fit.

    Raises:
        ValueError: naming the argument, for bad shapes or dtypes.
    """
    cfg = config if config is not None else BoxDisparityConfig()
    left, right = gray_pair(left_bgr, right_bgr)
    boxes = np.asarray(left_boxes, dtype=np.float64).reshape(-1, 4)
    guess = np.asarray(disparity_guess, dtype=np.float64).reshape(-1)
    n = len(boxes)
    disparity, std = np.full(n, np.nan), np.full(n, np.nan)
    source = np.full(n, DisparitySource.NONE, dtype=np.int8)
    precise = np.zeros(n, dtype=bool)
    if exclude is not None and len(exclude) != n:
        raise ValueError(f"exclude must have one entry per box ({n}), got {len(exclude)}")
    if n == 0:
        return BoxDisparities(disparity, std, source, precise)
    need_sgbm = np.ones(n, dtype=bool)
    if cfg.method in ("auto", "ncc"):
        vote = refine_disparities_detailed(left, right, boxes, guess, search_px=cfg.search_px, min_ncc=cfg.min_ncc,
                                           inner_frac=cfg.inner_frac, min_peak_curvature=cfg.min_peak_curvature)
        found = np.isfinite(vote.disparity)
        precise = found & (vote.spread <= cfg.max_ncc_spread_px)  # NaN spread (one cell): False
        take = found if cfg.method == "ncc" else precise
        if exclude is not None:  # a nearer object over much of the matched part: its cells mix two depths
            clear = covered_fraction(boxes, cfg.inner_frac, exclude) < OCCLUDED_FRAC
            take, found = take & clear, found & clear
        kept = take if template_only else found  # imprecise ones are kept unless SGBM answers
        disparity[kept] = vote.disparity[kept]
        std[kept] = np.fmax(cfg.ncc_std_px, vote.spread[kept])  # NaN-aware max
        source[kept] = DisparitySource.NCC
        need_sgbm = ~take if cfg.method == "auto" else np.zeros(n, dtype=bool)
    if template_only:
        return BoxDisparities(disparity, std, source, precise)
    if need_sgbm.any():
        rows = np.flatnonzero(need_sgbm)
        # the halves' test finds an occluder's edge from the pixels; a box whose occluders are known
        # is fitted on the pixels in view only
        halves = None
        if cfg.sgbm_split_px > 0:
            halves = np.ones(len(rows), dtype=bool) if exclude is None \
                else np.array([len(exclude[r]) == 0 for r in rows], dtype=bool)
        planes, _, half_planes = sgbm_box_planes(
            left, right, boxes[rows], guess[rows], search_px=cfg.search_px, block_size=cfg.sgbm_block_size,
            uniqueness_ratio=cfg.sgbm_uniqueness_ratio, min_ncc=cfg.sgbm_min_ncc,
            exclude=None if exclude is None else [exclude[r] for r in rows], halves=halves)
        sgbm = planes[:, 0]
        ok = np.isfinite(sgbm)
        if halves is not None:
            split = ok & halves
            sgbm[split] = _farther_half(boxes[rows[split]], planes[split], half_planes[split], cfg)
        disparity[rows[ok]] = sgbm[ok]
        std[rows[ok]] = cfg.sgbm_std_px
        source[rows[ok]] = DisparitySource.SGBM  # precise stays False: the need_sgbm rows are no precise NCC answers
    return BoxDisparities(disparity, std, source, precise)


def _farther_half(boxes: np.ndarray, whole: np.ndarray, halves: np.ndarray, cfg: BoxDisparityConfig) -> np.ndarray:
    """(M,) the SGBM disparity of each box, or that of its farther half when the halves depart from
    the whole box's plane.

    A partly hidden object is boxed around its visible part, so one side of its box ends at the
    occluder's edge; the occluder (nearer: larger disparity) covers a different part of the object
    in each view, and SGBM's plane fitted across that edge is off by pixels. The left and right
    halves of the box (centres ``cx ∓ w/4``) are fitted planes ``(d_h, a_h)`` of their own (``halves``
    (M, 2, 3), from :func:`sgbm_box_planes`, NaN where a half has none) and compared with the whole
    box's plane ``whole`` (M, 3) ``(c0, a, b)``. On one plane (a slanted
    surface) they lie on it: their centres differ by ``a w/2`` and their slopes are ``a``. The box
    spans a depth edge when

    * ``|(d_right - d_left) - a w/2| > sgbm_split_px`` (both halves answered), or
    * an answering half departs from the whole plane by more than ``sgbm_split_px`` somewhere over
      its width: ``|d_h - (c0 ∓ a w/4)| + |a_h - a| w/4`` (the gap at the half's ends). The whole
      box's plane fitted across an edge is a ramp (a step Δ at the box centre gives a slope of
      about 1.5 Δ / w, whose ``a w/2`` explains three quarters of the step) while each half lies on
      its own flat surface; this term also judges a half left alone when the other fails the views'
      consistency check (``sgbm_min_ncc``).

    At a depth edge the farther (smaller-disparity) answering half is the occluded object.
    """
    d_left, d_right = halves[:, 0, 0], halves[:, 1, 0]
    c0, a, quarter_w = whole[:, 0], whole[:, 1], boxes[:, 2] / 4
    lo = np.fmin(d_left, d_right)  # NaN-aware: the farther half, or the one that answered
    with np.errstate(invalid="ignore"):  # NaN (a half without an answer) compares False
        step = np.abs((d_right - d_left) - 2 * a * quarter_w)  # |(d_R - d_L) - a w/2|
        # |d_h - (c0 ∓ a w/4)| + |a_h - a| w/4: a half's largest gap to the whole plane
        gap_left = np.abs(d_left - (c0 - a * quarter_w)) + np.abs(halves[:, 0, 1] - a) * quarter_w
        gap_right = np.abs(d_right - (c0 + a * quarter_w)) + np.abs(halves[:, 1, 1] - a) * quarter_w
        edge = (step > cfg.sgbm_split_px) | (gap_left > cfg.sgbm_split_px) | (gap_right > cfg.sgbm_split_px)
    return np.where(edge, lo, c0)
