"""Tests of the cost matrices and the gated assignment."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from object_permanence.core.association import (
    appearance_cost,
    assign,
    assign_pairs,
    candidate_pairs,
    diagonal_mahalanobis_sq,
    diagonal_mahalanobis_sq_pairs,
    intersection_matrix,
    iou_matrix,
    iou_pairs,
    mahalanobis_sq_matrix,
    mahalanobis_sq_pairs,
)


def _iou_loop(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.zeros((len(a), len(b)))
    for i, j in itertools.product(range(len(a)), range(len(b))):
        (acx, acy, aw, ah), (bcx, bcy, bw, bh) = a[i], b[j]
        ax0, ay0, ax1, ay1 = acx - aw / 2, acy - ah / 2, acx + aw / 2, acy + ah / 2
        bx0, by0, bx1, by1 = bcx - bw / 2, bcy - bh / 2, bcx + bw / 2, bcy + bh / 2
        inter = max(0.0, min(ax1, bx1) - max(ax0, bx0)) * max(0.0, min(ay1, by1) - max(ay0, by0))
        union = a[i, 2] * a[i, 3] + b[j, 2] * b[j, 3] - inter
        out[i, j] = inter / union
    return out


def test_iou_known_values() -> None:
    a = np.array([[5.0, 5.0, 10.0, 10.0]])
    b = np.array([[5.0, 5.0, 10.0, 10.0], [10.0, 5.0, 10.0, 10.0], [100.0, 100.0, 4.0, 4.0],
                  [15.0, 5.0, 10.0, 10.0]])
    np.testing.assert_allclose(iou_matrix(a, b), [[1.0, 50.0 / 150.0, 0.0, 0.0]])


def test_iou_matches_loop_and_is_symmetric() -> None:
    rng = np.random.default_rng(1)
    a = np.column_stack([rng.uniform(0, 100, (20, 2)), rng.uniform(5, 40, (20, 2))])
    b = np.column_stack([rng.uniform(0, 100, (15, 2)), rng.uniform(5, 40, (15, 2))])
    iou = iou_matrix(a, b)
    assert iou.shape == (20, 15)
    np.testing.assert_allclose(iou, _iou_loop(a, b), rtol=1e-12)
    np.testing.assert_allclose(iou_matrix(b, a), iou.T)
    assert np.all((iou >= 0) & (iou <= 1))


def test_intersection_known_values_and_iou_from_it() -> None:
    a = np.array([[5.0, 5.0, 10.0, 10.0], [0.0, 0.0, 2.0, 4.0]])
    b = np.array([[10.0, 5.0, 10.0, 10.0], [100.0, 100.0, 4.0, 4.0], [5.0, 5.0, 2.0, 2.0]])
    np.testing.assert_allclose(intersection_matrix(a, b), [[50.0, 0.0, 4.0], [0.0, 0.0, 0.0]])
    inter = intersection_matrix(a, b)
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None, :] - inter
    np.testing.assert_allclose(iou_matrix(a, b), inter / union)


def test_iou_empty_and_degenerate() -> None:
    assert iou_matrix(np.empty((0, 4)), np.ones((3, 4))).shape == (0, 3)
    assert iou_matrix(np.ones((2, 4)), np.empty((0, 4))).shape == (2, 0)
    np.testing.assert_array_equal(iou_matrix(np.zeros((1, 4)), np.zeros((1, 4))), [[0.0]])
    with pytest.raises(ValueError, match="a must have shape"):
        iou_matrix(np.ones((2, 3)), np.ones((2, 4)))


def test_appearance_cost() -> None:
    a = np.array([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]])
    b = np.array([[3.0, 0.0], [1.0, 1.0], [-1.0, 0.0]])
    cost = appearance_cost(a, b)
    np.testing.assert_allclose(cost[:2], [[0.0, 1 - np.sqrt(0.5), 2.0], [1.0, 1 - np.sqrt(0.5), 1.0]])
    assert np.all(np.isnan(cost[2]))  # a zero embedding has no appearance
    assert appearance_cost(np.empty((0, 2)), b).shape == (0, 3)
    with pytest.raises(ValueError, match="embeddings"):
        appearance_cost(np.ones((2, 3)), np.ones((2, 4)))


def test_mahalanobis_matrix_matches_loop() -> None:
    rng = np.random.default_rng(2)
    means = rng.normal(0, 10, (5, 4))
    A = rng.normal(0, 1, (5, 4, 4))
    S = A @ A.transpose(0, 2, 1) + 0.5 * np.eye(4)
    z = rng.normal(0, 10, (6, 4))
    d2 = mahalanobis_sq_matrix(means, S, z)
    ref = np.array([[(z[j] - means[i]) @ np.linalg.solve(S[i], z[j] - means[i]) for j in range(6)]
                    for i in range(5)])
    np.testing.assert_allclose(d2, ref, rtol=1e-9)
    assert mahalanobis_sq_matrix(np.empty((0, 4)), np.empty((0, 4, 4)), z).shape == (0, 6)


def test_assign_optimal_and_gated() -> None:
    cost = np.array([[0.1, 0.2, 5.0],
                     [0.15, 9.0, np.inf],
                     [np.nan, np.nan, np.nan]])
    matches, ur, uc = assign(cost, max_cost=1.0)
    # the greedy choice (0, 0) would leave row 1 unmatched; the optimum matches both
    np.testing.assert_array_equal(matches, [[0, 1], [1, 0]])
    np.testing.assert_array_equal(ur, [2])
    np.testing.assert_array_equal(uc, [2])


def test_assign_infeasible_pair_never_displaces_a_feasible_match() -> None:
    cost = np.array([[0.9, 0.95], [0.1, np.inf]])
    matches, ur, uc = assign(cost, max_cost=1.0)
    np.testing.assert_array_equal(matches, [[0, 1], [1, 0]])
    matches, ur, uc = assign(np.array([[2.0, 0.5]]), max_cost=1.0)
    np.testing.assert_array_equal(matches, [[0, 1]])
    np.testing.assert_array_equal(uc, [0])


@pytest.mark.parametrize("shape", [(0, 0), (0, 3), (4, 0)])
def test_assign_empty(shape) -> None:
    matches, ur, uc = assign(np.zeros(shape), max_cost=1.0)
    assert matches.shape == (0, 2)
    np.testing.assert_array_equal(ur, np.arange(shape[0]))
    np.testing.assert_array_equal(uc, np.arange(shape[1]))


def test_assign_all_infeasible_and_rectangular() -> None:
    matches, ur, uc = assign(np.full((2, 3), np.inf), max_cost=1.0)
    assert len(matches) == 0 and len(ur) == 2 and len(uc) == 3
    rng = np.random.default_rng(4)
    cost = rng.uniform(0, 1, (3, 7))
    matches, ur, uc = assign(cost, max_cost=1.0)
    assert len(matches) == 3 and len(ur) == 0 and len(uc) == 4
    best = min(sum(cost[r, c] for r, c in enumerate(p)) for p in itertools.permutations(range(7), 3))
    assert cost[matches[:, 0], matches[:, 1]].sum() == pytest.approx(best)


def _plain_gated_assignment(cost: np.ndarray, max_cost: float) -> set[tuple[int, int]]:
    """The reference: one Hungarian step on the whole gated matrix, infeasible pairs dropped after."""
    from scipy.optimize import linear_sum_assignment

    feasible = np.isfinite(cost) & (cost <= max_cost)
    rows, cols = linear_sum_assignment(np.where(feasible, cost, max_cost + 1.0))
    return {(int(r), int(c)) for r, c in zip(rows, cols) if feasible[r, c]}


@pytest.mark.parametrize("density", [0.002, 0.01, 0.05, 0.3, 1.0])
def test_assign_by_components_equals_one_hungarian_step(density: float) -> None:
    """Leaving out rows and columns without a feasible pair and matching one-edge components
    directly gives the plain gated assignment (random costs: the optimum is unique)."""
    rng = np.random.default_rng(int(density * 1000))
    for shape in ((60, 80), (90, 40), (150, 150)):
        cost = rng.uniform(0.0, 1.0, shape)
        cost[rng.random(shape) > density] = np.inf
        cost[rng.random(shape) < 0.01] = np.nan
        cost[rng.random(shape) < 0.02] = 1.5  # finite but above the gate
        matches, free_rows, free_cols = assign(cost, max_cost=1.0)
        assert {tuple(p) for p in matches.tolist()} == _plain_gated_assignment(cost, 1.0)
        assert np.all(np.diff(matches[:, 0]) > 0)
        assert sorted([*matches[:, 0], *free_rows]) == list(range(shape[0]))
        assert sorted([*matches[:, 1], *free_cols]) == list(range(shape[1]))


def _random_boxes(rng: np.random.Generator, n: int, side: float) -> np.ndarray:
    return np.column_stack([rng.uniform(0, side, (n, 2)), rng.uniform(5, 80, (n, 2))])


@pytest.mark.parametrize("n,m,side", [(40, 50, 300.0), (120, 100, 2000.0), (1, 30, 100.0), (30, 1, 100.0)])
def test_candidate_pairs_are_the_overlapping_rectangles_and_cover_every_gate(n: int, m: int, side: float) -> None:
    rng = np.random.default_rng(n * 7 + m)
    tracks, boxes = _random_boxes(rng, n, side), _random_boxes(rng, m, side)
    cov = np.array([np.diag(rng.uniform(4, 400, 4)) for _ in range(n)])
    cov[:, 0, 1] = cov[:, 1, 0] = 0.5 * np.sqrt(cov[:, 0, 0] * cov[:, 1, 1])  # correlated x, y
    cap = 13.3 * 4
    reach = np.maximum(tracks[:, 2:] / 2, np.sqrt(cap * cov[:, [0, 1], [0, 1]]))
    rows, cols = candidate_pairs(tracks[:, :2], reach, boxes)
    got = set(zip(rows.tolist(), cols.tolist()))
    brute = {(i, j) for i in range(n) for j in range(m)
             if np.all(np.abs(boxes[j, :2] - tracks[i, :2]) <= reach[i] + boxes[j, 2:] / 2)}
    assert got == brute
    assert len(got) == rows.size and np.all(np.diff(rows) >= 0)
    d2 = mahalanobis_sq_matrix(tracks, cov, boxes)
    iou = iou_matrix(tracks, boxes)
    needed = {(int(i), int(j)) for i, j in zip(*np.nonzero((d2 <= cap) | (iou > 0)))}
    assert needed <= got  # no pair that passes a gate is missed
    if rows.size:
        np.testing.assert_allclose(iou_pairs(tracks[rows], boxes[cols]), iou[rows, cols], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(mahalanobis_sq_pairs(tracks, cov, boxes, rows, cols), d2[rows, cols], rtol=1e-9)
        diag = cov[:, [0, 1, 2, 3], [0, 1, 2, 3]]
        np.testing.assert_allclose(diagonal_mahalanobis_sq_pairs(tracks, diag, boxes, rows, cols),
                                   diagonal_mahalanobis_sq(tracks, diag, boxes)[rows, cols], rtol=1e-12)
    empty = candidate_pairs(np.zeros((0, 2)), np.zeros((0, 2)), boxes)
    assert empty[0].size == 0 and empty[1].size == 0


def test_diagonal_mahalanobis_equals_the_general_one() -> None:
    rng = np.random.default_rng(3)
    means, z = _random_boxes(rng, 7, 200.0), _random_boxes(rng, 9, 200.0)
    var = rng.uniform(1, 300, (7, 4))
    full = np.zeros((7, 4, 4))
    full[:, np.arange(4), np.arange(4)] = var
    np.testing.assert_allclose(diagonal_mahalanobis_sq(means, var, z), mahalanobis_sq_matrix(means, full, z),
                               rtol=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_assign_pairs_equals_assign_on_the_dense_matrix(seed: int) -> None:
    """The sparse assignment over a pair list is the dense one, pair for pair, ties included
    (rounded costs), whatever the order of the list; positions come back sorted by row."""
    rng = np.random.default_rng(seed)
    for _ in range(200):
        n, m = rng.integers(1, 14, 2)
        cost = np.round(rng.uniform(0.0, 2.0, (n, m)), int(rng.integers(1, 4)))
        cost[rng.random((n, m)) > rng.uniform(0.1, 1.0)] = np.inf
        cost[rng.random((n, m)) < 0.05] = np.nan
        rows, cols = np.nonzero(np.isfinite(cost) | np.isnan(cost))  # inf pairs: not listed
        listed = rng.permutation(rows.size)
        rows, cols = rows[listed], cols[listed]
        picked = assign_pairs(rows, cols, cost[rows, cols], 1.5)
        matches, _, _ = assign(cost, 1.5)
        np.testing.assert_array_equal(np.stack([rows[picked], cols[picked]], axis=1), matches)
        assert np.all(cost[rows[picked], cols[picked]] <= 1.5)


def test_assign_pairs_empty_and_all_infeasible() -> None:
    none = np.zeros(0, np.intp)
    assert assign_pairs(none, none, np.zeros(0), 1.0).size == 0
    rows, cols = np.array([0, 0, 1]), np.array([0, 1, 1])
    assert assign_pairs(rows, cols, np.array([np.inf, np.nan, 3.0]), 1.0).size == 0
    np.testing.assert_array_equal(assign_pairs(rows, cols, np.array([0.5, 0.1, 0.2]), 1.0), [0, 2])


def test_iou_pairs_is_iou_matrix_on_the_pairs_degenerate_boxes_included() -> None:
    rng = np.random.default_rng(5)
    a, b = _random_boxes(rng, 30, 100.0), _random_boxes(rng, 30, 100.0)
    a[:4, 2:] = 0.0  # empty boxes: IoU 0
    b[4:6, 2] = -3.0  # negative width: no area
    b[6] = a[6]  # identical: IoU 1
    got = iou_pairs(a, b)
    np.testing.assert_array_equal(got, np.diag(iou_matrix(a, b)))
    assert np.all(got[:6] == 0.0) and got[6] == pytest.approx(1.0)
