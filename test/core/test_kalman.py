"""Tests of the box Kalman filter against a plain-numpy reference of the same equations."""
from __future__ import annotations

import numpy as np
import pytest

from object_permanence.core.kalman import (
    BoxFilter,
    BoxKalmanFilter,
    BoxKalmanParams,
    accel_std,
    measurement_std,
    positive_finite,
    size_scale,
)

PARAMS = BoxKalmanParams(measurement_std_frac=0.05, accel_std_frac=1.0, size_accel_std_frac=0.25,
                         init_velocity_std_frac=1.0, min_std_px=1.0)


class ReferenceFilter:
    """The documented model written out with numpy only (Joseph-form update, like filterpy)."""

    def __init__(self, box: np.ndarray, p: BoxKalmanParams) -> None:
        self.p = p
        s = np.array([box[2], box[3], box[2], box[3]])
        self.x = np.concatenate([box, np.zeros(4)])
        pos = np.maximum(2 * p.measurement_std_frac * s, p.min_std_px)
        vel = np.maximum(p.init_velocity_std_frac * s, p.min_std_px)
        self.P = np.diag(np.concatenate([pos, vel]) ** 2)
        self.H = np.hstack([np.eye(4), np.zeros((4, 4))])

    def _R(self) -> np.ndarray:
        w, h = self.x[2], self.x[3]
        std = np.maximum(self.p.measurement_std_frac * np.array([w, h, w, h]), self.p.min_std_px)
        return np.diag(std**2)

    def predict(self, dt: float) -> None:
        w, h = self.x[2], self.x[3]
        sa = np.maximum(np.array([self.p.accel_std_frac * w, self.p.accel_std_frac * h,
                                  self.p.size_accel_std_frac * w, self.p.size_accel_std_frac * h]),
                        self.p.min_std_px)
        F = np.eye(8)
        F[:4, 4:] = dt * np.eye(4)
        Q = np.zeros((8, 8))
        for i in range(4):  # white-noise acceleration per axis
            q = sa[i] ** 2
            Q[i, i] = q * dt**3 / 3  # continuous white-noise acceleration integrated over dt
            Q[i, i + 4] = Q[i + 4, i] = q * dt**2 / 2
            Q[i + 4, i + 4] = q * dt
        self.x = F @ self.x
        self.P = F @ self.P @ F.T + Q
        for i in (2, 3):
            if self.x[i] < self.p.min_std_px:
                self.x[i] = self.p.min_std_px
                self.x[i + 4] = max(self.x[i + 4], 0.0)

    def update(self, z: np.ndarray) -> None:
        R = self._R()
        y = z - self.H @ self.x
        S = self.H @ self.P @ self.H.T + R
        K = self.P @ self.H.T @ np.linalg.inv(S)
        self.x = self.x + K @ y
        I_KH = np.eye(8) - K @ self.H
        self.P = I_KH @ self.P @ I_KH.T + K @ R @ K.T

    def mahalanobis_sq(self, z: np.ndarray) -> np.ndarray:
        S = self.H @ self.P @ self.H.T + self._R()
        y = z - self.x[:4]
        return np.array([yi @ np.linalg.solve(S, yi) for yi in y])


FILTERS = [BoxKalmanFilter]


def test_implements_protocol() -> None:
    f: BoxFilter = BoxKalmanFilter(np.array([10.0, 10.0, 5.0, 5.0]))
    assert all(hasattr(f, name) for name in ("predict", "update", "reinitialize", "box", "velocity",
                                             "box_covariance", "innovation_covariance", "mahalanobis_sq"))


@pytest.mark.parametrize("make", FILTERS)
def test_matches_numpy_reference(make) -> None:
    rng = np.random.default_rng(3)
    box = np.array([320.0, 240.0, 40.0, 90.0])
    f, ref = make(box, PARAMS), ReferenceFilter(box, PARAMS)
    vel = np.array([60.0, -25.0, 2.0, 4.0])
    for k in range(60):
        dt = float(rng.uniform(0.01, 0.2))
        f.predict(dt)
        ref.predict(dt)
        np.testing.assert_allclose(f.x, ref.x, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(f.P, ref.P, rtol=1e-9, atol=1e-9)
        if k % 7 != 3:  # some frames without a measurement
            z = box + vel * k * 0.1 + rng.normal(0, 2, 4)
            np.testing.assert_allclose(f.mahalanobis_sq(z[None]), ref.mahalanobis_sq(z[None]), rtol=1e-9)
            f.update(z)
            ref.update(z)
        np.testing.assert_allclose(f.x, ref.x, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(f.P, ref.P, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(f.box, ref.x[:4], rtol=1e-12)
    np.testing.assert_allclose(f.velocity, ref.x[4:6], rtol=1e-12)
    np.testing.assert_allclose(f.box_covariance, ref.P[:4, :4], rtol=1e-12)


@pytest.mark.parametrize("make", FILTERS)
def test_mahalanobis_vectorised_over_detections(make) -> None:
    rng = np.random.default_rng(0)
    box = np.array([100.0, 50.0, 20.0, 30.0])
    f, ref = make(box, PARAMS), ReferenceFilter(box, PARAMS)
    f.predict(0.1)
    ref.predict(0.1)
    z = rng.normal([100, 50, 20, 30], 5, size=(7, 4))
    d2 = f.mahalanobis_sq(z)
    assert d2.shape == (7,)
    np.testing.assert_allclose(d2, ref.mahalanobis_sq(z), rtol=1e-9)
    assert f.mahalanobis_sq(np.empty((0, 4))).shape == (0,)
    assert f.mahalanobis_sq(f.box[None])[0] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("make", FILTERS)
def test_covariance_grows_without_measurements_and_shrinks_with(make) -> None:
    f = make(np.array([0.0, 0.0, 50.0, 50.0]), PARAMS)
    for _ in range(10):
        f.predict(1 / 30)
        f.update(f.box)
    traces = []
    for _ in range(30):
        f.predict(1 / 30)
        traces.append(np.trace(f.box_covariance))
    assert np.all(np.diff(traces) > 0)
    before = np.trace(f.box_covariance)
    f.update(f.box)
    assert np.trace(f.box_covariance) < before


@pytest.mark.parametrize("make", FILTERS)
def test_tracks_constant_velocity(make) -> None:
    f = make(np.array([0.0, 0.0, 40.0, 40.0]), PARAMS)
    v = np.array([90.0, -30.0])
    for k in range(1, 40):
        f.predict(1 / 30)
        f.update(np.array([v[0] * k / 30, v[1] * k / 30, 40.0, 40.0]))
    np.testing.assert_allclose(f.velocity, v, atol=2.0)


@pytest.mark.parametrize("make", FILTERS)
def test_width_height_never_negative(make) -> None:
    f = make(np.array([50.0, 50.0, 10.0, 10.0]), PARAMS)
    for k in range(1, 6):  # the box shrinks fast, then is lost
        f.predict(0.1)
        f.update(np.array([50.0, 50.0, 10.0 - 1.9 * k, 10.0 - 1.9 * k]))
    assert f.x[6] < 0
    for _ in range(20):
        f.predict(0.5)
        assert f.box[2] >= PARAMS.min_std_px and f.box[3] >= PARAMS.min_std_px
    assert f.x[6] >= 0 and f.x[7] >= 0


@pytest.mark.parametrize("make", FILTERS)
def test_zero_dt_predict_changes_nothing_and_bad_dt_raises(make) -> None:
    f = make(np.array([10.0, 10.0, 5.0, 8.0]), PARAMS)
    f.predict(0.1)
    x, P = f.x, f.P
    f.predict(0.0)
    np.testing.assert_array_equal(f.x, x)
    np.testing.assert_array_equal(f.P, P)
    for dt in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="dt"):
            f.predict(dt)


@pytest.mark.parametrize("make", FILTERS)
def test_reinitialize_sets_state_without_jump(make) -> None:
    f = make(np.array([10.0, 10.0, 5.0, 8.0]), PARAMS)
    for _ in range(20):
        f.predict(0.1)
    f.reinitialize(np.array([300.0, 200.0, 20.0, 40.0]), np.array([15.0, -5.0]))
    np.testing.assert_array_equal(f.box, [300.0, 200.0, 20.0, 40.0])
    np.testing.assert_array_equal(f.velocity, [15.0, -5.0])
    np.testing.assert_allclose(f.P, make(np.array([300.0, 200.0, 20.0, 40.0]), PARAMS).P)


@pytest.mark.parametrize("box", [[0, 0, 0, 5], [0, 0, 5, -1], [np.nan, 0, 5, 5], [0, 0, 5]])
def test_bad_initial_box_raises(box) -> None:
    with pytest.raises(ValueError, match="box"):
        BoxKalmanFilter(np.array(box, dtype=float))


def test_bad_model_raises() -> None:
    with pytest.raises(ValueError, match="model"):
        BoxKalmanFilter(np.array([10.0, 10.0, 5.0, 5.0]), model=3)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [0, -1.0, float("nan"), float("inf"), True, "1"])
def test_positive_finite(value) -> None:
    with pytest.raises(ValueError, match="tau must be a positive finite number"):
        positive_finite("tau", value)
    assert positive_finite("tau", 2) == 2.0


@pytest.mark.parametrize("name", ["measurement_std_frac", "accel_std_frac", "size_accel_std_frac",
                                  "init_velocity_std_frac", "min_std_px"])
@pytest.mark.parametrize("value", [0.0, -1.0, float("nan"), float("inf")])
def test_params_validated(name: str, value: float) -> None:
    with pytest.raises(ValueError, match=name):
        BoxKalmanParams(**{name: value})


@pytest.mark.parametrize("steps", [1, 4, 60, 240])
def test_prediction_over_a_gap_does_not_depend_on_how_it_is_split(steps) -> None:
    """Continuous white-noise acceleration: one predict over 2 s and N predicts over 2/N s give
    the same covariance, so a ghost's uncertainty does not depend on the camera rate."""
    reference = BoxKalmanFilter(np.array([320.0, 240.0, 50.0, 100.0]))
    reference.predict(2.0)
    split = BoxKalmanFilter(np.array([320.0, 240.0, 50.0, 100.0]))
    for _ in range(steps):
        split.predict(2.0 / steps)
    np.testing.assert_allclose(split.P, reference.P, rtol=1e-9, atol=1e-9)


def test_noise_scales_per_box_column() -> None:
    """``w, h, w, h`` scale ``cx, cy, w, h``; the centre and the size have their own acceleration
    fraction; every std has the pixel floor."""
    p = BoxKalmanParams(measurement_std_frac=0.05, accel_std_frac=0.2, size_accel_std_frac=0.04, min_std_px=1.5)
    boxes = np.array([[10.0, 20.0, 40.0, 80.0], [5.0, 6.0, 10.0, 2.0]])
    np.testing.assert_array_equal(size_scale(boxes), [[40.0, 80.0, 40.0, 80.0], [10.0, 2.0, 10.0, 2.0]])
    np.testing.assert_array_equal(accel_std(boxes, p), [[0.2 * 40.0, 0.2 * 80.0, 0.04 * 40.0, 0.04 * 80.0],
                                                        [0.2 * 10.0, 1.5, 1.5, 1.5]])
    np.testing.assert_array_equal(measurement_std(boxes, p), [[2.0, 4.0, 2.0, 4.0], [1.5, 1.5, 1.5, 1.5]])
