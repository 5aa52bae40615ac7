"""Pairing of the left and right 2D tracks of one frame: which left track is which right track.

A pair is feasible only if it satisfies the epipolar (row) constraint, a disparity inside the
configured depth range, the class and the size-ratio limits. Feasible pairs cost the weighted sum
of their normalised row difference, log size ratio and appearance distance, each in [0, 1], so a
feasible cost never exceeds ``max_cost = row_weight + size_weight + appearance_weight``; last
frame's pairs get a bonus so that a near tie does not flip the pairing from frame to frame.

The assignment is the project's gated Hungarian (:func:`object_permanence.core.association.assign`):
infeasible pairs are never assigned, and an infeasible entry costs ``max_cost + 1``, no better than
leaving both tracks unpaired, so the solver never trades the quality of the feasible pairs for
their number (a large infeasible cost would make it maximise the number of pairs first).
"""
from __future__ import annotations

import numpy as np

from object_permanence.core.association import appearance_cost, assign
from object_permanence.core.stereo_rig import RectifiedRig
from object_permanence.core.triangulator_config import TriangulatorConfig
from object_permanence.core.types import Track


class StereoPairer:
    """Frame-by-frame pairing of left and right tracks with hysteresis on last frame's pairs.

    Args:
        rig: the rectified rig (for the disparity gate).
        config: gates (``max_row_diff_*``, ``min/max_depth_m``, ``require_same_class``,
            ``max_size_ratio``), weights and ``hysteresis_bonus``.
    """

    def __init__(self, rig: RectifiedRig, config: TriangulatorConfig) -> None:
        self.rig = rig
        self.config = config
        self._disparity_range = rig.disparity_range(config.min_depth_m, config.max_depth_m)
        self._partner: dict[int, int] = {}  # left id -> right id it was paired with last frame

    @property
    def max_cost(self) -> float:
        """The largest cost of a feasible pair (before the hysteresis bonus)."""
        cfg = self.config
        return cfg.row_weight + cfg.size_weight + cfg.appearance_weight

    def cost_matrix(self, left: list[Track], right: list[Track]) -> np.ndarray:
        """(L, R) pairing cost of ``left[i]`` with ``right[j]``; ``inf`` where the pair is infeasible."""
        cfg = self.config
        bl = np.array([t.box for t in left], dtype=np.float64).reshape(-1, 4)
        br = np.array([t.box for t in right], dtype=np.float64).reshape(-1, 4)
        ul, vl, hl = bl[:, 0, None], bl[:, 1, None], bl[:, 3, None]
        ur, vr, hr = br[None, :, 0], br[None, :, 1], br[None, :, 3]

        row_tol = np.maximum(cfg.max_row_diff_px, cfg.max_row_diff_frac * 0.5 * (hl + hr))
        row_term = np.abs(vl - vr) / row_tol  # epipolar: rows agree after rectification
        disparity = (ul - ur) - self.rig.column_offset  # d = xl - xr = (u_l - u_r) - (cx_l - cx_r)
        with np.errstate(divide="ignore", invalid="ignore"):
            size_term = np.abs(np.log(hl / hr)) / np.log(cfg.max_size_ratio)
        feasible = (
            (row_term <= 1.0)
            & (disparity >= self._disparity_range[0])
            & (disparity <= self._disparity_range[1])
            & (size_term <= 1.0)
        )  # NaN anywhere compares False: NaN boxes are never paired
        if cfg.require_same_class:
            cls_l = np.array([t.class_id for t in left])
            cls_r = np.array([t.class_id for t in right])
            feasible &= cls_l[:, None] == cls_r[None, :]

        cost = cfg.row_weight * row_term + cfg.size_weight * size_term
        if cfg.appearance_weight > 0:
            cost = cost + cfg.appearance_weight * appearance_distance(left, right)
        if self._partner:
            previous = np.array([self._partner.get(t.track_id, -1) for t in left])
            ids_r = np.array([t.track_id for t in right])
            cost = cost - cfg.hysteresis_bonus * (previous[:, None] == ids_r[None, :])
        return np.where(feasible, cost, np.inf)

    def pair(self, left: list[Track], right: list[Track]) -> list[tuple[int, int]]:
        """Indices ``(i, j)`` of the gated minimum-cost pairing of ``left[i]`` with ``right[j]``;
        remembers the pairs for next frame's hysteresis."""
        if not left or not right:
            self._partner = {}
            return []
        matches, _, _ = assign(self.cost_matrix(left, right), self.max_cost)
        pairs = [(int(i), int(j)) for i, j in matches]
        self._partner = {left[i].track_id: right[j].track_id for i, j in pairs}
        return pairs


def appearance_distance(left: list[Track], right: list[Track]) -> np.ndarray:
    """(L, R) cosine distance ``(1 - cos) / 2`` in [0, 1] of the tracks' embeddings; 0.5 (uninformative)
    where an embedding is missing, all zero or of another length."""
    dist = np.full((len(left), len(right)), 0.5)
    li = [i for i, t in enumerate(left) if t.embedding is not None and np.size(t.embedding)]
    ri = [j for j, t in enumerate(right) if t.embedding is not None and np.size(t.embedding)]
    if not li or not ri:
        return dist
    size_l = {i: np.size(left[i].embedding) for i in li}
    size_r = {j: np.size(right[j].embedding) for j in ri}
    for dim in set(size_l.values()) & set(size_r.values()):  # one length at a time (one, normally)
        rows = [i for i in li if size_l[i] == dim]
        cols = [j for j in ri if size_r[j] == dim]
        el = np.array([np.ravel(left[i].embedding) for i in rows], dtype=np.float64)
        er = np.array([np.ravel(right[j].embedding) for j in cols], dtype=np.float64)
        half = 0.5 * appearance_cost(el, er)  # (1 - cos) / 2; NaN for an all-zero embedding
        dist[np.ix_(rows, cols)] = np.where(np.isfinite(half), half, 0.5)
    return dist
