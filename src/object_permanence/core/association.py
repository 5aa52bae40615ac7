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
    # one (N, M) array per quantity: cheaper than (N, M, 2) stacks for the sizes a tracker sees
    ax0, ax1 = (a[:, 0] - a[:, 2] / 2)[:, None], (a[:, 0] + a[:, 2] / 2)[:, None]
    ay0, ay1 = (a[:, 1] - a[:, 3] / 2)[:, None], (a[:, 1] + a[:, 3] / 2)[:, None]
    bx0, bx1 = b[:, 0] - b[:, 2] / 2, b[:, 0] + b[:, 2] / 2
    by0, by1 = b[:, 1] - b[:, 3] / 2, b[:, 1] + b[:, 3] / 2
    inter_w = np.minimum(ax1, bx1)
    inter_w -= np.maximum(ax0, bx0)
    np.maximum(inter_w, 0.0, out=inter_w)
    inter = np.minimum(ay1, by1)
    inter -= np.maximum(ay0, by0)
    np.maximum(inter, 0.0, out=inter)
    inter *= inter_w  # |A n B| = overlap_w * overlap_h
    area_a = np.clip(a[:, 2], 0, None) * np.clip(a[:, 3], 0, None)
    area_b = np.clip(b[:, 2], 0, None) * np.clip(b[:, 3], 0, None)
    union = area_a[:, None] + area_b[None, :]
    union -= inter  # |A u B| = |A| + |B| - |A n B|
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
    a = np.asarray(a)
    b = np.asarray(b)
    # float32 embeddings (as the detector sends them) stay float32: half the memory traffic, and
    # a cosine needs no more digits
    dtype = np.float32 if a.dtype == np.float32 and b.dtype == np.float32 else np.float64
    a = a.astype(dtype, copy=False)
    b = b.astype(dtype, copy=False)
    if a.ndim != 2 or b.ndim != 2 or (a.shape[1] != b.shape[1] and a.size and b.size):
        raise ValueError(f"embeddings must be (N, D) and (M, D), got {a.shape} and {b.shape}")
    if a.shape[0] == 0 or b.shape[0] == 0:
        return np.zeros((a.shape[0], b.shape[0]))
    na = np.sqrt(np.einsum("nd,nd->n", a, a))
    nb = np.sqrt(np.einsum("md,md->m", b, b))
    with np.errstate(divide="ignore", invalid="ignore"):
        # cos = a.b / (|a| |b|); einsum, not BLAS: a multi-threaded GEMM of this small size
        # stalls for milliseconds on a loaded 2-core machine
        cos = np.einsum("nd,md->nm", a, b) / (na[:, None] * nb[None, :])
    return (1.0 - np.clip(cos, -1.0, 1.0)).astype(np.float64)


def mahalanobis_sq_matrix(means: np.ndarray, covariances: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Squared Mahalanobis distance of every measurement to every predicted measurement.

    The residuals are whitened with the Cholesky factor of each ``S``: one batched
    ``np.linalg.cholesky``, then forward substitution ``L W = I`` for the whitening matrices
    ``W = L^-1`` (vectorised over the N tracks, a loop over the K components only), and one
    batched product ``u = W y`` for all N x M pairs; ``d² = |u|²``. ``S`` itself is never inverted.

    Args:
        means: (N, K) predicted measurements ``H x`` of N tracks.
        covariances: (N, K, K) innovation covariances ``S = H P H' + R`` (symmetric positive definite).
        z: (M, K) measurements.

    Returns:
        (N, M) ``y' S^-1 y`` with ``y = z - H x``.

    Raises:
        numpy.linalg.LinAlgError: when an ``S`` is not positive definite.
    """
    means = np.asarray(means, dtype=float)
    covariances = np.asarray(covariances, dtype=float)
    z = np.asarray(z, dtype=float)
    if means.shape[0] == 0 or z.shape[0] == 0:
        return np.zeros((means.shape[0], z.shape[0]))
    L = np.linalg.cholesky(covariances)  # S = L L', (N, K, K) lower triangular
    n, k_dim = means.shape
    W = np.zeros_like(L)  # W = L^-1 by forward substitution of L W = I, row by row
    for i in range(k_dim):
        row = -np.einsum("nk,nkj->nj", L[:, i, :i], W[:, :i, :]) if i else np.zeros((n, k_dim))
        row[:, i] += 1.0
        W[:, i, :] = row / L[:, i, i, None]  # W_i = (e_i - sum_k<i L_ik W_k) / L_ii
    # u = W (z - H x) = W z - W H x, all pairs in one batched product: (N, K, K) @ (K, M)
    u = W @ z.T
    u -= (W @ means[:, :, None])
    return np.einsum("nkm,nkm->nm", u, u)  # d^2 = |u|^2 = y' S^-1 y


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
    free_rows = np.ones(n, bool)
    free_rows[matches[:, 0]] = False
    free_cols = np.ones(m, bool)
    free_cols[matches[:, 1]] = False
    return matches, np.flatnonzero(free_rows), np.flatnonzero(free_cols)
