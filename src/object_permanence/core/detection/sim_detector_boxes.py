"""Box geometry of the detector simulator: localisation noise and outliers, duplicate boxes, merged
boxes, clipping. Boxes are (N, 4) ``cx, cy, w, h`` pixels; random inputs are passed in (drawn by
the caller from counter-based keys), so every function here is deterministic.
"""
from __future__ import annotations

import numpy as np

from object_permanence.core.association import iou_matrix

OUTLIER_ERROR = (0.2, 0.4)  # an outlier box is off by 20-40% of its size on centre and size (issue 5)
DUPLICATE_IOU = (0.5, 0.8)  # IoU of a duplicate with its box: what NMS at IoU 0.7 can let through
DUPLICATE_SCORE_RATIO = (0.6, 0.9)  # a duplicate's score is its box's times a ratio in this range
MIN_SIDE_PX = 1.0  # boxes narrower or lower than this after clipping are dropped


def jitter(boxes: np.ndarray, noise_frac: float, normal: np.ndarray, outlier: np.ndarray,
           outlier_u: np.ndarray) -> np.ndarray:
    """Noisy copies of ``boxes``: noise proportional to the box size, and outliers.

    normal: (N, 4) standard normal draws; outlier: (N,) bool, boxes to make outliers;
    outlier_u: (N, 4) uniforms in (0, 1) for the outliers' error sizes and signs.
    c' = c + f s n (s = w or h), s' = s exp(f n); an outlier instead has c' = c + e s,
    s' = s (1 + e) with |e| in OUTLIER_ERROR and a random sign.
    """
    size = np.concatenate([boxes[:, 2:], boxes[:, 2:]], axis=1)  # (w, h, w, h)
    out = boxes.copy()
    out[:, :2] += noise_frac * size[:, :2] * normal[:, :2]  # c' = c + f s n
    out[:, 2:] *= np.exp(noise_frac * normal[:, 2:])  # s' = s exp(f n), never negative
    low, high = OUTLIER_ERROR
    magnitude = low + (high - low) * (2.0 * np.abs(outlier_u - 0.5))  # |e| in [low, high]
    error = np.where(outlier_u < 0.5, -magnitude, magnitude)
    bad = boxes.copy()
    bad[:, :2] += error[:, :2] * size[:, :2]  # c' = c + e s
    bad[:, 2:] *= 1.0 + error[:, 2:]  # s' = s (1 + e)
    return np.where(outlier[:, None], bad, out)


def duplicates(boxes: np.ndarray, u: np.ndarray) -> np.ndarray:
    """A second box for each of ``boxes`` whose IoU with it lies in DUPLICATE_IOU.

    u: (N, 5) uniforms: target IoU t, inside/enclosing, aspect split, placement in x and y. The duplicate
    is nested in the box (area t |B|) or encloses it (area |B| / t), so IoU = t exactly before
    clipping; its width and height scale by t^a and t^(1-a), a in [0.25, 0.75].
    """
    low, high = DUPLICATE_IOU
    t = low + (high - low) * u[:, 0]
    a = 0.25 + 0.5 * u[:, 2]
    sign = np.where(u[:, 1] < 0.5, 1.0, -1.0)  # +1: nested inside, -1: enclosing
    scale = np.stack([t ** (sign * a), t ** (sign * (1.0 - a))], axis=1)  # (N, 2) w, h factors
    slack = np.abs(1.0 - scale) * boxes[:, 2:] / 2.0  # the smaller box fits with this much play
    shift = slack * (2.0 * u[:, 3:5] - 1.0)  # |shift| <= slack: one box stays inside the other
    return np.concatenate([boxes[:, :2] + shift, boxes[:, 2:] * scale], axis=1)


def merge_pairs(boxes: np.ndarray, ids: np.ndarray, min_iou: float, chosen: np.ndarray) -> list[tuple[int, int]]:
    """Disjoint pairs of rows of ``boxes`` to report as one box, most overlapping first.

    boxes: (N, 4) the entries' visible boxes; ids: (N,) their ids; chosen: (N, N) bool, pairs
    whose draw says "merge" this frame. A pair qualifies with IoU >= min_iou; each row merges at
    most once (greedy by decreasing IoU).
    """
    if len(boxes) < 2:
        return []
    iou = iou_matrix(boxes, boxes)
    rows, cols = np.nonzero(np.triu((iou >= min_iou) & chosen, k=1))
    order = np.lexsort((ids[cols], ids[rows], -iou[rows, cols]))  # ties broken by ids: deterministic
    used: set[int] = set()
    pairs = []
    for i, j in zip(rows[order].tolist(), cols[order].tolist()):  # a handful of candidates at most
        if i not in used and j not in used:
            used.update((i, j))
            pairs.append((i, j))
    return pairs


def union(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, 4) boxes covering both (N, 4) ``a`` and ``b``."""
    lo = np.minimum(a[:, :2] - a[:, 2:] / 2.0, b[:, :2] - b[:, 2:] / 2.0)
    hi = np.maximum(a[:, :2] + a[:, 2:] / 2.0, b[:, :2] + b[:, 2:] / 2.0)
    return np.concatenate([(lo + hi) / 2.0, hi - lo], axis=1)


def clip_to_image(boxes: np.ndarray, width: float, height: float) -> tuple[np.ndarray, np.ndarray]:
    """Clip (N, 4) boxes to the image; ``valid`` marks finite ones at least MIN_SIDE_PX wide and high."""
    finite = np.isfinite(boxes).all(axis=1)
    boxes = np.where(finite[:, None], boxes, 0.0)
    x = np.clip(boxes[:, [0, 0]] + np.abs(boxes[:, [2, 2]]) * [-0.5, 0.5], 0.0, width)
    y = np.clip(boxes[:, [1, 1]] + np.abs(boxes[:, [3, 3]]) * [-0.5, 0.5], 0.0, height)
    clipped = np.stack([x.mean(axis=1), y.mean(axis=1), x[:, 1] - x[:, 0], y[:, 1] - y[:, 0]], axis=1)
    return clipped, finite & (clipped[:, 2] >= MIN_SIDE_PX) & (clipped[:, 3] >= MIN_SIDE_PX)
