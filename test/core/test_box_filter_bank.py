"""The batched box filter against the filterpy reference (``BoxKalmanFilter``), to 1e-9."""
from __future__ import annotations

import numpy as np
import pytest

from object_permanence.core.box_filter_bank import BatchedBoxKalman, FilterList
from object_permanence.core.kalman import BoxKalmanFilter, BoxKalmanParams

PARAMS = BoxKalmanParams(measurement_std_frac=0.05, accel_std_frac=0.5, size_accel_std_frac=0.2,
                         init_velocity_std_frac=1.0, min_std_px=1.0)


def _close(a: np.ndarray, b: np.ndarray) -> None:
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)


def _check_against(bank: BatchedBoxKalman, filters: list[BoxKalmanFilter], z: np.ndarray) -> None:
    _close(bank.x, np.array([f.x for f in filters]))
    _close(bank.P, np.array([f.P for f in filters]))
    _close(bank.boxes, np.array([f.box for f in filters]))
    _close(bank.velocities, np.array([f.velocity for f in filters]))
    _close(bank.box_covariances, np.array([f.box_covariance for f in filters]))
    _close(bank.innovation_covariances, np.array([f.innovation_covariance for f in filters]))
    d2 = bank.mahalanobis_sq(z)
    assert d2.shape == (len(filters), z.shape[0])
    for i, f in enumerate(filters):
        np.testing.assert_allclose(d2[i], f.mahalanobis_sq(z), rtol=1e-9, atol=1e-9)


def test_batched_matches_filterpy_with_variable_dt_updates_and_reinit() -> None:
    rng = np.random.default_rng(7)
    boxes = np.column_stack([rng.uniform(0, 1000, (20, 2)), rng.uniform(4, 120, (20, 2))])
    bank = BatchedBoxKalman(PARAMS)
    bank.append(boxes)
    filters = [BoxKalmanFilter(b, PARAMS) for b in boxes]
    vel = rng.normal(0, 80, (20, 4))
    t = 0.0
    for k in range(60):
        dt = float(rng.choice([0.0, rng.uniform(0.005, 0.5)]))
        t += dt
        bank.predict(dt)
        for f in filters:
            f.predict(dt)
        z = boxes + vel * t + rng.normal(0, 2, (20, 4))
        z[:, 2:] = np.maximum(z[:, 2:], 2.0)
        _check_against(bank, filters, z)
        rows = np.flatnonzero(rng.random(20) < 0.6)  # a changing subset is measured
        bank.update(rows, z[rows])
        for i in rows:
            filters[i].update(z[i])
        if k % 13 == 5:  # re-identification: restart two filters at a detection
            re = rng.choice(20, 2, replace=False)
            v = rng.normal(0, 30, (2, 2))
            bank.reinitialize(re, z[re], v)
            for i, vi in zip(re, v):
                filters[i].reinitialize(z[i], vi)
        _check_against(bank, filters, z)
    assert np.any(bank.x[:, 6:] != 0)  # the size velocities were exercised


def test_shrinking_boxes_clamped_like_the_reference() -> None:
    boxes = np.array([[50.0, 50.0, 10.0, 10.0], [80.0, 60.0, 3.0, 30.0]])
    bank = BatchedBoxKalman(PARAMS)
    bank.append(boxes)
    filters = [BoxKalmanFilter(b, PARAMS) for b in boxes]
    for k in range(1, 6):
        z = boxes - np.array([0, 0, 1.9, 0.5]) * k
        z[:, 2:] = np.maximum(z[:, 2:], 0.5)
        bank.predict(0.1)
        bank.update(np.arange(2), z)
        for f, zi in zip(filters, z):
            f.predict(0.1)
            f.update(zi)
    for _ in range(20):
        bank.predict(0.5)
        for f in filters:
            f.predict(0.5)
        assert np.all(bank.boxes[:, 2:] >= PARAMS.min_std_px)
    _check_against(bank, filters, boxes)


def test_select_and_append_keep_rows_aligned() -> None:
    bank = BatchedBoxKalman(PARAMS)
    bank.append(np.array([[10.0, 10.0, 5.0, 5.0], [20.0, 20.0, 6.0, 6.0], [30.0, 30.0, 7.0, 7.0]]))
    bank.predict(0.2)
    x, P = bank.x, bank.P
    bank.select(np.array([2, 0]))
    _close(bank.x, x[[2, 0]])
    _close(bank.P, P[[2, 0]])
    bank.append(np.array([[40.0, 40.0, 8.0, 8.0]]))
    assert len(bank) == 3
    _close(bank.P[2], BoxKalmanFilter(np.array([40.0, 40.0, 8.0, 8.0]), PARAMS).P)
    assert bank.mahalanobis_sq(np.empty((0, 4))).shape == (3, 0)
    bank.select(np.zeros(0, int))
    assert len(bank) == 0 and bank.mahalanobis_sq(np.ones((2, 4))).shape == (0, 2)
    bank.predict(0.1)  # an empty bank predicts nothing and does not fail


@pytest.mark.parametrize("make", [lambda: BatchedBoxKalman(PARAMS), lambda: FilterList(BoxKalmanFilter, PARAMS)],
                         ids=["batched", "filter-list"])
def test_bad_inputs_raise(make) -> None:
    bank = make()
    bank.append(np.array([[10.0, 10.0, 5.0, 5.0]]))
    for dt in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="dt"):
            bank.predict(dt)
    with pytest.raises(ValueError, match="box"):
        bank.reinitialize(np.array([0]), np.array([[0.0, 0.0, 0.0, 5.0]]), np.zeros((1, 2)))


def test_filter_list_matches_batched() -> None:
    rng = np.random.default_rng(1)
    boxes = np.column_stack([rng.uniform(0, 500, (6, 2)), rng.uniform(10, 60, (6, 2))])
    a, b = BatchedBoxKalman(PARAMS), FilterList(BoxKalmanFilter, PARAMS)
    for bank in (a, b):
        bank.append(boxes)
        bank.predict(0.1)
        bank.update(np.array([1, 4]), boxes[[1, 4]] + 3.0)
        bank.select(np.array([5, 1, 4]))
    for name in ("boxes", "velocities", "box_covariances"):
        _close(getattr(a, name), getattr(b, name))
    _close(a.mahalanobis_sq(boxes), b.mahalanobis_sq(boxes))
    with pytest.raises(ValueError, match="factory"):
        FilterList(3)  # type: ignore[arg-type]


def test_covariance_matrices_are_diagonal_with_the_per_axis_variances() -> None:
    bank = BatchedBoxKalman(BoxKalmanParams())
    bank.append(np.array([[10.0, 20.0, 30.0, 40.0], [50.0, 60.0, 8.0, 9.0]]))
    bank.predict(0.2)
    P = bank.P
    cov, S = bank.box_covariances, bank.innovation_covariances
    assert cov.shape == S.shape == (2, 4, 4) and cov.flags.c_contiguous
    for i in range(2):
        np.testing.assert_array_equal(cov[i], np.diag(np.diag(P[i])[:4]))
        np.testing.assert_array_equal(S[i] - np.diag(np.diag(S[i])), 0.0)
    np.testing.assert_array_equal(BatchedBoxKalman().box_covariances.shape, (0, 4, 4))
