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


def intersection_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) area of the intersection of every pair of boxes ``a`` (N, 4) and ``b`` (M, 4),
    ``cx, cy, w, h``; 0 for disjoint boxes."""
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
    return inter


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
    inter = intersection_matrix(a, b)
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


def whitening(covariances: np.ndarray) -> np.ndarray:
    """(N, K, K) ``W = L^-1`` with ``S = L L'`` (one batched ``np.linalg.cholesky``, then forward
    substitution ``L W = I`` vectorised over the N matrices, a loop over the K rows only), so that
    ``y' S^-1 y = |W y|²`` without inverting ``S``.

    Raises:
        numpy.linalg.LinAlgError: when an ``S`` is not positive definite.
    """
    L = np.linalg.cholesky(covariances)  # S = L L', (N, K, K) lower triangular
    n, k_dim = L.shape[0], L.shape[1]
    W = np.zeros_like(L)
    for i in range(k_dim):
        row = -np.einsum("nk,nkj->nj", L[:, i, :i], W[:, :i, :]) if i else np.zeros((n, k_dim))
        row[:, i] += 1.0
        W[:, i, :] = row / L[:, i, i, None]  # W_i = (e_i - sum_k<i L_ik W_k) / L_ii
    return W


def mahalanobis_sq_matrix(means: np.ndarray, covariances: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Squared Mahalanobis distance of every measurement to every predicted measurement.

    The residuals are whitened with the Cholesky factor of each ``S`` (:func:`whitening`), in one
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
    W = whitening(covariances)
    # u = W (z - H x) = W z - W H x, all pairs in one batched product: (N, K, K) @ (K, M)
    u = W @ z.T
    u -= (W @ means[:, :, None])
    return np.einsum("nkm,nkm->nm", u, u)  # d^2 = |u|^2 = y' S^-1 y


def mahalanobis_sq_pairs(means: np.ndarray, covariances: np.ndarray, z: np.ndarray, rows: np.ndarray,
                         cols: np.ndarray) -> np.ndarray:
    """(P,) ``y' S^-1 y`` of the pairs ``(rows[p], cols[p])`` only: track ``rows[p]`` (``means``
    (N, K), ``covariances`` (N, K, K)) and measurement ``cols[p]`` of ``z`` (M, K).

    Raises:
        numpy.linalg.LinAlgError: when an ``S`` is not positive definite.
    """
    means = np.asarray(means, dtype=float)
    z = np.asarray(z, dtype=float)
    rows, cols = np.asarray(rows, dtype=np.intp), np.asarray(cols, dtype=np.intp)
    if rows.size == 0:
        return np.zeros(0)
    W = whitening(np.asarray(covariances, dtype=float))
    u = np.einsum("pij,pj->pi", W[rows], z[cols] - means[rows])  # u = W (z - H x)
    return np.einsum("pi,pi->p", u, u)  # d² = |u|²


def diagonal_mahalanobis_sq(means: np.ndarray, variances: np.ndarray, z: np.ndarray) -> np.ndarray:
    """:func:`mahalanobis_sq_matrix` for diagonal ``S``: ``d² = sum_k (z_k - m_k)² / S_kk``.

    Args:
        means: (N, K) predicted measurements; variances: (N, K) diagonals of ``S`` (> 0);
        z: (M, K) measurements.

    Returns:
        (N, M) squared distances.
    """
    means = np.asarray(means, dtype=float)
    z = np.asarray(z, dtype=float)
    inv = 1.0 / np.asarray(variances, dtype=float)
    d2 = np.zeros((means.shape[0], z.shape[0]))
    y = np.empty_like(d2)
    for k in range(means.shape[1]):  # one (N, M) plane per component
        np.subtract(z[None, :, k], means[:, k, None], out=y)  # y_k = z_k - m_k
        np.multiply(y, y, out=y)
        y *= inv[:, k, None]
        d2 += y  # d² += y_k² / S_kk
    return d2


def diagonal_mahalanobis_sq_pairs(means: np.ndarray, variances: np.ndarray, z: np.ndarray, rows: np.ndarray,
                                  cols: np.ndarray) -> np.ndarray:
    """(P,) ``sum_k (z_k - m_k)² / S_kk`` of the pairs ``(rows[p], cols[p])`` (diagonal ``S``:
    ``variances`` (N, K))."""
    rows, cols = np.asarray(rows, dtype=np.intp), np.asarray(cols, dtype=np.intp)
    y = np.asarray(z, dtype=float)[cols] - np.asarray(means, dtype=float)[rows]  # y = z - H x
    return np.einsum("pk,pk->p", y * y, 1.0 / np.asarray(variances, dtype=float)[rows])


def iou_pairs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(P,) IoU of aligned boxes ``a[p]`` and ``b[p]`` (both (P, 4) ``cx, cy, w, h``); 0 where the
    union is empty. The same numbers as :func:`iou_matrix` on the pairs.

    Computed on contiguous (4, P) copies, one row per coordinate: an operation on a column pair of a
    (P, 4) array runs one short inner loop per row, several times slower for a few hundred pairs."""
    a = np.ascontiguousarray(_as_boxes(a, "a").T)
    b = np.ascontiguousarray(_as_boxes(b, "b").T)
    half_a, half_b = a[2:] / 2, b[2:] / 2
    overlap = np.minimum(a[:2] + half_a, b[:2] + half_b) - np.maximum(a[:2] - half_a, b[:2] - half_b)
    np.maximum(overlap, 0.0, out=overlap)
    inter = overlap[0] * overlap[1]  # |A n B|
    size_a, size_b = np.maximum(a[2:], 0.0), np.maximum(b[2:], 0.0)
    union = size_a[0] * size_a[1] + size_b[0] * size_b[1]
    union -= inter  # |A u B| = |A| + |B| - |A n B|
    positive = union > 0
    if positive.all():  # the usual case: a plain division (the masked one below costs more)
        return inter / union
    return np.divide(inter, union, out=np.zeros_like(inter), where=positive)  # 0 where the union is empty


def candidate_pairs(centres: np.ndarray, reach: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (track, box) pair that may pass a gate, found without an (N, M) matrix.

    Track ``i`` reaches the rectangle ``centres[i] ± reach[i]``; box ``j`` (``cx, cy, w, h``)
    is a candidate when it overlaps that rectangle. A gate that needs ``|dx| <= r_x`` and
    ``|dy| <= r_y`` between the centres, or any overlap of the track's own box (IoU > 0), passes
    only candidates when ``reach`` is at least ``r`` and half the track's box size: for a
    Mahalanobis gate ``d² <= g``, ``r = sqrt(g S_kk)`` (``d² >= y_k² / S_kk`` for any ``S``).

    Sweep and prune: the boxes sorted by ``cx``, each track's x-window found by ``searchsorted``
    (widened by the largest half-width), then the exact x and y overlap tested on those pairs.
    Cost O((N + M) log M + pairs in the windows).

    Args:
        centres: (N, 2) track centres, pixels; reach: (N, 2) half-extents >= 0, pixels;
        boxes: (M, 4) boxes ``cx, cy, w, h``.

    Returns:
        ``rows``, ``cols`` (P,) int, the candidate pairs sorted by row then column.
    """
    centres = np.asarray(centres, dtype=float).reshape(-1, 2)
    reach = np.asarray(reach, dtype=float).reshape(-1, 2)
    boxes = _as_boxes(boxes, "boxes")
    n, m = centres.shape[0], boxes.shape[0]
    if n == 0 or m == 0:
        return np.zeros(0, np.intp), np.zeros(0, np.intp)
    # (array methods, not the np.* wrappers: their dispatch costs more than the work on small arrays)
    order = boxes[:, 0].argsort(kind="stable")
    cx = boxes[:, 0].take(order)
    widest = float(boxes[:, 2].max()) / 2
    lo = cx.searchsorted(centres[:, 0] - reach[:, 0] - widest, side="left")
    hi = cx.searchsorted(centres[:, 0] + reach[:, 0] + widest, side="right")
    counts = hi - lo
    total = int(counts.sum())
    rows = np.arange(n).repeat(counts)
    # sorted position of each pair's box: its window's start lo plus its place in the window
    # (0 .. count-1, i.e. the running index minus the window's first running index)
    cols = order[np.arange(total) + (lo - (counts.cumsum() - counts)).repeat(counts)]
    for k in (0, 1):  # the rectangles overlap in x, then (on the pairs left) in y; 1-D gathers
        inside = np.abs(boxes[:, k][cols] - centres[:, k][rows]) <= reach[:, k][rows] + boxes[:, k + 2][cols] / 2
        rows, cols = rows[inside], cols[inside]
    key = rows * m + cols  # unique per pair: sorting it sorts by row, then column
    key.sort()
    return np.divmod(key, m)


def within_ratio(ratio: np.ndarray, max_ratio: float) -> np.ndarray:
    """Whether each size ``ratio`` (new / old, any shape) is within ``max_ratio`` (>= 1) either way."""
    ratio = np.asarray(ratio, dtype=np.float64)
    return (ratio <= max_ratio) & (ratio * max_ratio >= 1.0)


def stage_one_costs(rows: np.ndarray, cost: np.ndarray, unseen_s: np.ndarray, recency_cost_per_s: float) -> np.ndarray:
    """(P,) the costs of the first association stage (tracks seen last frame and recent ghosts
    together) plus ``recency_cost_per_s * unseen_s[row]``. A ghost's covariance has grown while it
    was unseen, which shrinks its Mahalanobis cost: without the term a ghost wins a detection from
    the track that was matched to it a frame ago (two tracks of one object then take turns on it).
    DeepSORT's matching cascade gives the recently seen tracks priority for that reason; this is
    its soft form (a much better fit still goes to the ghost).

    Args:
        rows: (P,) int row (track) of each candidate pair; cost: (P,) cost of each pair (inf: not
            allowed); unseen_s: (N,) seconds each track has gone unseen beyond the most recently
            matched one (a gap between frames, shared by all, costs nothing); recency_cost_per_s: >= 0.
    """
    rows = np.asarray(rows, dtype=np.intp)
    return np.asarray(cost, dtype=float) + recency_cost_per_s * np.asarray(unseen_s, dtype=float)[rows]  # c + k t


def assign_keeping_own(rows: np.ndarray, cols: np.ndarray, cost: np.ndarray, max_cost: float, keep: np.ndarray,
                       margin: float) -> np.ndarray:
    """:func:`assign_pairs`, except that a ``keep`` row (a VISIBLE track) is not pushed off its own
    detection by another row (a ghost).

    The optimal assignment maximises the number of matches first: when a ghost competes for a
    VISIBLE track's cheapest detection, the solution may give it to the ghost and move the track
    onto a neighbour's detection (another object, a reflection, clutter) costing more. Such a
    ``keep`` row, matched to a pair more than ``margin`` above its cheapest while its cheapest
    detection went to a row not in ``keep``, is displaced: its pairs above that margin are
    forbidden and the assignment is solved again (once). Contention between ``keep`` rows (a crowd
    of VISIBLE tracks) is left to the assignment.

    Args:
        rows, cols, cost, max_cost: as :func:`assign_pairs`; keep: (N,) bool over the row ids;
        margin: >= 0.

    Returns:
        (K,) int positions of the matched pairs, sorted by row.
    """
    cost = np.asarray(cost, dtype=float)
    won = assign_pairs(rows, cols, cost, max_cost)
    if won.size == 0:
        return won
    best = np.full(int(rows.max()) + 1, np.inf)
    np.minimum.at(best, rows, np.where(cost <= max_cost, cost, np.inf))  # each row's cheapest feasible pair
    far = keep[rows[won]] & (cost[won] > best[rows[won]] + margin)
    if not far.any():
        return won
    owner = np.full(int(cols.max()) + 1, -1, np.intp)
    owner[cols[won]] = rows[won]
    cheapest = np.isin(rows, rows[won[far]]) & (cost <= best[rows])  # the far-matched rows' cheapest pairs
    taker = owner[cols[cheapest]]
    displaced = rows[cheapest][(taker >= 0) & ~keep[np.maximum(taker, 0)]]
    if displaced.size == 0:
        return won
    again = cost.copy()
    again[np.isin(rows, displaced) & (cost > best[rows] + margin)] = np.inf
    return assign_pairs(rows, cols, again, max_cost)


def assign_pairs(rows: np.ndarray, cols: np.ndarray, cost: np.ndarray, max_cost: float) -> np.ndarray:
    """:func:`assign` on a sparse cost matrix: the listed (row, column) pairs (distinct) with their
    costs; every pair not listed is infeasible. The same matching as :func:`assign` on the dense
    matrix (the same components, the same sub-matrix handed to ``linear_sum_assignment``), without
    building or scanning the N x M matrix.

    Args:
        rows, cols: (P,) int, row and column of each pair (distinct pairs).
        cost: (P,) cost of each pair; NaN, infinite or above ``max_cost``: infeasible.
        max_cost: largest accepted cost.

    Returns:
        (K,) int positions in the pair list of the matched pairs, sorted by row.
    """
    cost = np.asarray(cost, dtype=float)
    feasible = (cost <= max_cost).nonzero()[0]  # NaN compares False (no warning); +inf > max_cost
    if feasible.size == 0:
        return feasible
    r, c = rows[feasible], cols[feasible]
    row_deg, col_deg = np.bincount(r), np.bincount(c)
    lone = (row_deg[r] == 1) & (col_deg[c] == 1)  # the only feasible pair of its row and column
    picked = feasible[lone]
    rest = feasible[~lone]
    if rest.size:
        # the rows and columns left (sorted), each pair's place in that sub-matrix
        rest_rows, rest_cols = np.bincount(rows[rest]).nonzero()[0], np.bincount(cols[rest]).nonzero()[0]
        i, j = rest_rows.searchsorted(rows[rest]), rest_cols.searchsorted(cols[rest])
        sub = np.full((rest_rows.size, rest_cols.size), max_cost + 1.0)  # infeasible: max_cost + 1
        sub[i, j] = cost[rest]
        pair_at = np.full(sub.shape, -1, np.intp)
        pair_at[i, j] = rest
        solved = pair_at[linear_sum_assignment(sub)]
        picked = np.concatenate([picked, solved[solved >= 0]])  # feasible pairs only
    return picked[rows[picked].argsort(kind="stable")]


def assign(cost: np.ndarray, max_cost: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Minimum-cost one-to-one assignment with gating (``scipy.optimize.linear_sum_assignment``).

    Pairs whose cost is NaN, infinite or above ``max_cost`` are infeasible. They are given the
    cost ``max_cost + 1`` before solving (DeepSORT's gating trick: taking such a pair is no
    better than leaving both unmatched, so it never displaces a feasible match) and are
    reported as unmatched afterwards.

    With that convention the problem splits over the connected components of the graph of
    feasible pairs (the total is ``const - sum over matched feasible pairs of (max_cost + 1 - c)``,
    a maximum-weight matching with positive weights), so before the Hungarian step: rows and
    columns without a feasible pair are left out, and a feasible pair whose row and column have
    no other feasible pair (a component of one edge) is matched directly. Only the rest, usually
    few rows when the gate is tight, goes to ``linear_sum_assignment`` (:func:`assign_pairs` on
    the feasible pairs).

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
    with np.errstate(invalid="ignore"):
        rows, cols = np.nonzero(cost <= max_cost)  # the feasible pairs
    picked = assign_pairs(rows, cols, cost[rows, cols], max_cost)
    matches = np.stack([rows[picked], cols[picked]], axis=1)
    free_rows, free_cols = np.ones(n, bool), np.ones(m, bool)
    free_rows[matches[:, 0]] = False
    free_cols[matches[:, 1]] = False
    return matches, np.flatnonzero(free_rows), np.flatnonzero(free_cols)
