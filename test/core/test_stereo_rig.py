"""Tests for core.stereo_rig: the rectified rig and its closed-form triangulation."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from object_permanence.core.stereo_rig import RectifiedRig, triangulate_rectified, triangulation_jacobian
from stereo_scenes import B, CX, CY, FX, project, projections


@pytest.fixture
def rig() -> RectifiedRig:
    return RectifiedRig.from_projections(*projections())


def test_rig_from_projections(rig):
    assert (rig.fx, rig.fy, rig.cx_left, rig.cy) == (FX, FX, CX, CY)
    assert rig.baseline == pytest.approx(B)
    assert rig.disparity_range(2.0, 10.0) == pytest.approx((FX * B / 10.0, FX * B / 2.0))
    assert RectifiedRig.from_projections(*projections(cx_right=CX - 17.5)).column_offset == pytest.approx(17.5)


def test_points_from_1_to_10_m_triangulate_back_exactly(rig):
    rng = np.random.default_rng(0)
    z = np.linspace(1.0, 10.0, 200)
    points = np.stack([rng.uniform(-0.3, 0.3, 200) * z, rng.uniform(-0.2, 0.2, 200) * z, z], 1)
    uv_l, uv_r = project(points)
    assert np.max(np.abs(triangulate_rectified(rig, uv_l, uv_r) - points)) < 1e-6


def test_non_positive_disparity_gives_non_finite_points(rig):
    out = triangulate_rectified(rig, np.array([[300.0, 240.0], [300.0, 240.0]]), np.array([[300.0, 240.0],
                                                                                            [310.0, 240.0]]))
    assert not np.any(np.isfinite(out[:, 2]))


@pytest.mark.parametrize("cx_right", [CX, CX - 17.5])
def test_closed_form_agrees_with_cv2_triangulate_points(cx_right):
    rng = np.random.default_rng(1)
    z = rng.uniform(1.0, 10.0, 100)
    points = np.stack([rng.uniform(-1, 1, 100), rng.uniform(-0.5, 0.5, 100), z], 1)
    p_left, p_right = projections(cx_right)
    uv_l, uv_r = project(points, cx_right)
    closed = triangulate_rectified(RectifiedRig.from_projections(p_left, p_right), uv_l, uv_r)
    homogeneous = cv2.triangulatePoints(p_left, p_right, uv_l.T, uv_r.T)  # (4, N) DLT
    dlt = (homogeneous[:3] / homogeneous[3]).T
    np.testing.assert_allclose(closed, dlt, rtol=1e-9, atol=1e-9)


def test_jacobian_matches_finite_differences(rig):
    points = np.array([[0.4, -0.2, 2.0], [-1.0, 0.5, 7.0]])
    uv_l, uv_r = project(points)
    obs = np.hstack([uv_l, uv_r])
    jac = triangulation_jacobian(rig, uv_l, uv_r)
    eps = 1e-4
    for col in range(4):
        step = np.zeros(4)
        step[col] = eps
        plus, minus = obs + step, obs - step
        numeric = (triangulate_rectified(rig, plus[:, :2], plus[:, 2:])
                   - triangulate_rectified(rig, minus[:, :2], minus[:, 2:])) / (2 * eps)
        np.testing.assert_allclose(jac[:, :, col], numeric, rtol=1e-6, atol=1e-9)


def test_noise_at_3m_matches_propagated_covariance(rig):
    """0.5 px i.i.d. noise on each centre coordinate: the empirical error matches Σ3 = J Σ2 J'.

    On this rig (fx B = 60 px m) the disparity at 3 m is 20 px, so a single frame's depth error is
    Z σ_d / d = 3 * (0.5 √2) / 20 ≈ 0.106 m from box centres alone.
    """
    rng = np.random.default_rng(2)
    n = 4000
    truth = np.array([0.3, -0.1, 3.0])
    uv_l, uv_r = project(np.repeat(truth[None], n, 0))
    noisy = triangulate_rectified(rig, uv_l + rng.normal(0, 0.5, (n, 2)), uv_r + rng.normal(0, 0.5, (n, 2)))
    jac = triangulation_jacobian(rig, uv_l[:1], uv_r[:1])[0]
    predicted = jac @ (0.25 * np.eye(4)) @ jac.T  # Σ3 = J Σ2 J'
    empirical = np.cov((noisy - truth).T)
    np.testing.assert_allclose(np.diag(empirical), np.diag(predicted), rtol=0.1)
    assert np.sqrt(empirical[2, 2]) == pytest.approx(3.0 * 0.5 * np.sqrt(2) / 20.0, rel=0.1)


def test_projection_validation():
    p_left, p_right = projections()
    with pytest.raises(ValueError, match="P_right"):
        RectifiedRig.from_projections(p_left, np.where(p_right == -FX * B, FX * B, p_right))  # right camera on the left
    skewed = p_right.copy()
    skewed[0, 1] = 3.0
    with pytest.raises(ValueError, match="P_right"):
        RectifiedRig.from_projections(p_left, skewed)
    other_fy = p_right.copy()
    other_fy[1, 1] = 510.0
    with pytest.raises(ValueError, match="share fx, fy and cy"):
        RectifiedRig.from_projections(p_left, other_fy)
    with pytest.raises(ValueError, match="P_left"):
        RectifiedRig.from_projections(p_left[:, :3], p_right)
    shifted = p_left.copy()
    shifted[0, 3] = -5.0
    with pytest.raises(ValueError, match=r"P_left\[0, 3\]"):
        RectifiedRig.from_projections(shifted, p_right)
