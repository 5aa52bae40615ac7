"""Cost matrices and gated optimal assignment between tracks and detections.

Pure functions on numpy arrays; boxes are ``(cx, cy, w, h)`` pixels. Rows are tracks,
columns are detections.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment


def _as_boxes(boxes: np.ndarray, name: str) -> np.ndarray:
    boxes = np.asarray(boxes, dtype=float)
    if boxes.size == 0:
        return boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{name} must have shape (N, 4), got {boxes.shape}")
    return boxes


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every pair of boxes.

    Args:
        a: (N, 4) boxes ``cx, cy, w, h``.
        b: (M, 4) boxes ``cx, cy, w, h``.

    Returns:
        (N, M) IoU in [0, 1]; 0 where the union is empty (degenerate boxes).
    """
    a = _as_boxes(a, "a")
    b = _as_boxes(b, "b")
    a_lo, a_hi = a[:, None, :2] - a[:, None, 2:] / 2, a[:, None, :2] + a[:, None, 2:] / 2
    b_lo, b_hi = b[None, :, :2] - b[None, :, 2:] / 2, b[None, :, :2] + b[None, :, 2:] / 2
    inter_wh = np.clip(np.minimum(a_hi, b_hi) - np.maximum(a_lo, b_lo), 0.0, None)  # (N, M, 2)
    inter = inter_wh[..., 0] * inter_wh[..., 1]
    area_a = np.clip(a[:, 2], 0, None) * np.clip(a[:, 3], 0, None)
    area_b = np.clip(b[:, 2], 0, None) * np.clip(b[:, 3], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter  # |A u B| = |A| + |B| - |A n B|
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def appearance_cost(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine distance ``1 - cos(a_i, b_j)`` between embeddings.

    Args:
        a: (N, D) embeddings (need not be normalised).
        b: (M, D) embeddings.

    Returns:
        (N, M) cost in [0, 2]; NaN where either vector is all zeros (no appearance: undefined),
        so that a gate treats the pair as having no appearance evidence.
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.ndim != 2 or b.ndim != 2 or (a.shape[1] != b.shape[1] and a.size and b.size):
        raise ValueError(f"embeddings must be (N, D) and (M, D), got {a.shape} and {b.shape}")
    if a.shape[0] == 0 or b.shape[0] == 0:
        return np.zeros((a.shape[0], b.shape[0]))
    na = np.linalg.norm(a, axis=1)
    nb = np.linalg.norm(b, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        # cos = a.b / (|a| |b|); einsum, not BLAS: a multi-threaded GEMM of this small size
        # stalls for milliseconds on a loaded 2-core machine
        cos = np.einsum("nd,md->nm", a, b) / (na[:, None] * nb[None, :])
    return 1.0 - np.clip(cos, -1.0, 1.0)


def mahalanobis_sq_matrix(means: np.ndarray, covariances: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Squared Mahalanobis distance of every measurement to every predicted measurement.

    Args:
        means: (N, K) predicted measurements ``H x`` of N tracks.
        covariances: (N, K, K) innovation covariances ``S = H P H' + R`` (symmetric positive definite).
        z: (M, K) measurements.

    Returns:
        (N, M) ``y' S^-1 y`` with ``y = z - H x``.
    """
    means = np.asarray(means, dtype=float)
    covariances = np.asarray(covariances, dtype=float)
    z = np.asarray(z, dtype=float)
    if means.shape[0] == 0 or z.shape[0] == 0:
        return np.zeros((means.shape[0], z.shape[0]))
    S_inv = np.linalg.inv(covariances)  # (N, K, K)
    y = z[None, :, :] - means[:, None, :]  # y = z - H x, (N, M, K)
    return np.einsum("nmi,nij,nmj->nm", y, S_inv, y)  # d^2 = y' S^-1 y


def assign(cost: np.ndarray, max_cost: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Minimum-cost one-to-one assignment with gating (``scipy.optimize.linear_sum_assignment``).

    Pairs whose cost is NaN, infinite or above ``max_cost`` are infeasible. They are given the
    cost ``max_cost + 1`` before solving (DeepSORT's gating trick: taking such a pair is no
    better than leaving both unmatched, so it never displaces a feasible match) and are
    reported as unmatched afterwards.

    Args:
        cost: (N, M) cost matrix.
        max_cost: largest accepted cost.

    Returns:
        matches (K, 2) int row/column index pairs sorted by row, unmatched rows (int, sorted),
        unmatched columns (int, sorted).
    """
    cost = np.asarray(cost, dtype=float)
    if cost.ndim != 2:
        raise ValueError(f"cost must be a 2-D matrix, got shape {cost.shape}")
    n, m = cost.shape
    if n == 0 or m == 0:
        return np.empty((0, 2), dtype=int), np.arange(n), np.arange(m)
    feasible = np.isfinite(cost) & (cost <= max_cost)
    if not feasible.any():
        return np.empty((0, 2), dtype=int), np.arange(n), np.arange(m)
    gated = np.where(feasible, cost, max_cost + 1.0)
    rows, cols = linear_sum_assignment(gated)
    keep = feasible[rows, cols]
    matches = np.stack([rows[keep], cols[keep]], axis=1).astype(int)
    unmatched_rows = np.setdiff1d(np.arange(n), matches[:, 0])
    unmatched_cols = np.setdiff1d(np.arange(m), matches[:, 1])
    return matches, unmatched_rows, unmatched_cols
