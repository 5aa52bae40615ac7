"""Tests of the cost matrices and the gated assignment."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from object_permanence.core.association import (
    appearance_cost,
    assign,
    iou_matrix,
    mahalanobis_sq_matrix,
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
