"""Tests for core.constant_velocity (the shared motion model) and core.track3d_filter (the 3D filter)."""
from __future__ import annotations

import copy

import numpy as np
import pytest

from object_permanence.core.constant_velocity import constant_velocity_model
from object_permanence.core.stereo_rig import RectifiedRig, triangulation_jacobian
from object_permanence.core.track3d_filter import Track3DFilter
from stereo_scenes import CX, CY, FX, project, projections


@pytest.mark.parametrize("n_axes", [1, 3, 4])
def test_constant_velocity_model_matches_its_equations(n_axes):
    dt = 0.07
    f, q = constant_velocity_model(dt, n_axes)
    assert f.shape == q.shape == (2 * n_axes, 2 * n_axes)
    eye = np.eye(n_axes)
    np.testing.assert_allclose(f, np.block([[eye, dt * eye], [0 * eye, eye]]), atol=1e-15)  # F = [[I, dt I], [0, I]]
    per_axis = np.array([[dt**3 / 3, dt**2 / 2], [dt**2 / 2, dt]])  # white-noise acceleration, unit density
    np.testing.assert_allclose(q, np.kron(per_axis, eye), rtol=1e-12, atol=1e-18)
    assert not f.flags.writeable and not q.flags.writeable


def test_constant_velocity_covariance_does_not_depend_on_the_step_count():
    """One prediction over T and ten over T / 10 give the same covariance (frame-rate independent)."""
    p0 = np.diag([0.01, 0.02, 0.03, 0.5, 0.6, 0.7])
    f, q = constant_velocity_model(0.5, 3)
    one = f @ p0 @ f.T + q
    many = p0
    f10, q10 = constant_velocity_model(0.05, 3)
    for _ in range(10):
        many = f10 @ many @ f10.T + q10  # P = F P F' + Q
    np.testing.assert_allclose(one, many, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(("dt", "n_axes", "name"), [(-0.1, 3, "dt"), (float("nan"), 3, "dt"), (0.1, 0, "n_axes"),
                                                      (0.1, 2.0, "n_axes"), (0.1, True, "n_axes")])
def test_constant_velocity_model_validation(dt, n_axes, name):
    with pytest.raises(ValueError, match=name):
        constant_velocity_model(dt, n_axes)


def test_filter_converges_to_a_constant_velocity_from_exact_positions():
    kf = Track3DFilter(np.array([-0.5, 0.0, 4.0]), 1e-4 * np.eye(3), velocity_std_mps=1.0)
    assert np.array_equal(kf.velocity, np.zeros(3))
    for k in range(1, 40):
        kf.predict(0.05, accel_noise=0.18)
        kf.update(np.array([-0.5 + 0.04 * k, 0.0, 4.0 - 0.025 * k]), 1e-4 * np.eye(3))
    np.testing.assert_allclose(kf.velocity, [0.8, 0.0, -0.5], atol=0.01)
    np.testing.assert_allclose(kf.covariance, kf.covariance.T)
    assert np.all(np.linalg.eigvalsh(kf.covariance) > 0)


def test_prediction_grows_the_covariance_at_constant_velocity():
    kf = Track3DFilter(np.zeros(3), 0.01 * np.eye(3), velocity_std_mps=0.5)
    traces = []
    for _ in range(5):
        kf.predict(0.1, accel_noise=0.2)
        traces.append(np.trace(kf.covariance))
    assert np.all(np.diff(traces) > 0)
    np.testing.assert_allclose(kf.position, np.zeros(3))


def test_outlying_measurements_are_gated_out_then_the_filter_restarts():
    """A sudden 0.8 m jump with a tight covariance (an image match latched onto an occluder, a
    detector outlier) is skipped while the filter coasts; if the jump persists, the filter restarts there."""
    sigma = np.diag([1e-4, 1e-4, 4e-4])
    kf = Track3DFilter(np.array([0.0, 0.0, 3.0]), sigma, velocity_std_mps=1.0)
    gate = 16.27  # chi² 3 dof at 0.999
    for _ in range(10):
        kf.predict(1 / 30, 0.18)
        assert kf.gated_update(np.array([0.0, 0.0, 3.0]), sigma, gate, max_rejected=3)
    for _ in range(3):  # three outliers: coasting
        kf.predict(1 / 30, 0.18)
        assert not kf.gated_update(np.array([0.0, 0.0, 3.8]), sigma, gate, max_rejected=3)
        assert kf.position[2] == pytest.approx(3.0, abs=1e-3)
    kf.predict(1 / 30, 0.18)
    assert not kf.gated_update(np.array([0.0, 0.0, 3.8]), sigma, gate, max_rejected=3)  # fourth: restart
    assert kf.position[2] == pytest.approx(3.8, abs=1e-12) and kf.rejected == 0
    np.testing.assert_allclose(kf.covariance, sigma)


@pytest.mark.parametrize(("args", "name"), [
    ((np.zeros(2), np.eye(3), 1.0), "position"),
    ((np.array([0.0, np.nan, 1.0]), np.eye(3), 1.0), "position"),
    ((np.zeros(3), np.eye(2), 1.0), "covariance"),
    ((np.zeros(3), np.eye(3), 0.0), "velocity_std_mps"),
    ((np.zeros(3), np.eye(3), float("inf")), "velocity_std_mps"),
])
def test_filter_validation_names_the_argument(args, name):
    with pytest.raises(ValueError, match=name):
        Track3DFilter(*args)


def test_damped_prediction_decays_the_velocity_and_integrates_it():
    """v' = a v, p' = p + τ (1 - a) v with a = exp(-dt / τ); without damping, constant velocity."""
    kf = Track3DFilter(np.zeros(3), 1e-4 * np.eye(3), velocity_std_mps=1.0)
    for k in range(1, 30):  # learn 0.6 m/s along x, -0.3 m/s along z
        kf.predict(1 / 30, 0.18)
        kf.update(np.array([0.02 * k, 0.0, -0.01 * k]), 1e-6 * np.eye(3))
    v0, p0 = kf.velocity, kf.position
    damped = copy.deepcopy(kf)
    damped.predict(0.4, 0.18, damping_s=0.5)
    a = np.exp(-0.4 / 0.5)
    np.testing.assert_allclose(damped.velocity, a * v0, rtol=1e-12)
    np.testing.assert_allclose(damped.position, p0 + 0.5 * (1 - a) * v0, rtol=1e-12)
    kf.predict(0.4, 0.18)  # constant velocity
    np.testing.assert_allclose(kf.position, p0 + 0.4 * v0, rtol=1e-12)
    with pytest.raises(ValueError, match="damping_s"):
        kf.predict(0.1, 0.18, damping_s=0.0)


def test_bearing_update_moves_the_point_onto_the_ray_not_along_it():
    """A pixel measurement of a point 0.2 m to the side: the filter (uncertain) moves laterally onto
    that ray; its depth, which one pixel does not observe, stays put."""
    fx = fy = 500.0
    cx, cy = 320.0, 240.0
    kf = Track3DFilter(np.array([0.0, 0.0, 4.0]), np.diag([0.25, 0.25, 0.01]), velocity_std_mps=0.5)
    truth = np.array([0.2, -0.1, 4.0])
    uv = np.array([fx * truth[0] / truth[2] + cx, fy * truth[1] / truth[2] + cy])  # u = fx X / Z + cx
    for _ in range(5):
        assert kf.update_bearing(uv, np.eye(2), fx, fy, cx, cy)
    np.testing.assert_allclose(kf.position[:2], truth[:2], atol=0.01)
    assert abs(kf.position[2] - 4.0) < 0.02
    assert np.all(np.linalg.eigvalsh(kf.covariance) > 0)
    np.testing.assert_allclose(kf.covariance, kf.covariance.T)
    assert not kf.update_bearing(np.array([np.nan, 1.0]), np.eye(2), fx, fy, cx, cy)  # nothing to update with


def test_bearing_update_keeps_the_depth_of_a_correlated_triangulation():
    """A point triangulated off-axis (X = 0.6 m at Z = 3 m) has an X-Z correlated covariance
    (lateral error grows with the depth error: X = Z (u - cx) / fx). A bearing 3 px aside, several
    frames: the point moves onto that ray sideways, its depth and depth velocity stay exactly put
    (the optimal gain would shift the depth through the correlation)."""
    fx = fy = FX
    p_left, p_right = projections()
    rig = RectifiedRig.from_projections(p_left, p_right)
    point = np.array([0.6, -0.2, 3.0])
    uv_left, uv_right = project(point[None])
    jac = triangulation_jacobian(rig, uv_left, uv_right)[0]
    covariance = jac @ np.diag([4.0, 4.0, 4.0, 4.0]) @ jac.T  # Σ3 = J Σ2 J', 2 px per coordinate
    assert abs(covariance[0, 2]) / np.sqrt(covariance[0, 0] * covariance[2, 2]) > 0.5  # strongly correlated
    kf = Track3DFilter(point, covariance, velocity_std_mps=0.5)
    kf.predict(1 / 30, 0.18)
    z0, vz0 = kf.position[2], kf.velocity[2]
    uv = uv_left[0] + np.array([3.0, 0.0])  # the bearing 3 px aside
    for _ in range(6):
        kf.predict(1 / 30, 0.18)
        assert kf.update_bearing(uv, np.eye(2), fx, fy, CX, CY)
        assert abs(kf.position[2] - z0) < 1e-9 and abs(kf.velocity[2] - vz0) < 1e-9
    ray = (uv - np.array([CX, CY])) / np.array([fx, fy])  # (X / Z, Y / Z) of the new bearing
    np.testing.assert_allclose(kf.position[:2] / kf.position[2], ray, atol=5e-4)
    assert np.all(np.linalg.eigvalsh(kf.covariance) > 0)


def test_filter_steps_are_filterpys_to_the_bit():
    """predict / update are filterpy's KalmanFilter equations in its order: the same numbers exactly
    (the 3D tracks did not move when the filter left filterpy for speed)."""
    from filterpy.kalman import KalmanFilter

    rng = np.random.default_rng(7)
    position, covariance = np.array([0.3, -0.2, 4.0]), np.diag([0.01, 0.02, 0.3])
    ours = Track3DFilter(position, covariance, velocity_std_mps=0.8)
    ref = KalmanFilter(dim_x=6, dim_z=3)
    ref.H = np.hstack([np.eye(3), np.zeros((3, 3))])
    ref.x = np.concatenate([position, np.zeros(3)])[:, None]
    ref.P = np.zeros((6, 6))
    ref.P[:3, :3], ref.P[3:, 3:] = covariance, 0.8**2 * np.eye(3)
    for _ in range(40):
        dt = float(rng.uniform(0.02, 0.2))
        ours.predict(dt, 0.18)
        f, q = constant_velocity_model(dt, 3)
        ref.predict(F=f, Q=0.18**2 * q)
        a = rng.normal(size=(3, 3))
        r = a @ a.T * 1e-3 + 1e-4 * np.eye(3)
        z = ref.x[:3, 0] + rng.normal(scale=0.05, size=3)
        ours.update(z, r)
        ref.update(z, R=r)
        assert np.array_equal(ours.position, ref.x[:3, 0]) and np.array_equal(ours.velocity, ref.x[3:, 0])
        p = ref.P[:3, :3]
        assert np.array_equal(ours.covariance, 0.5 * (p + p.T))
