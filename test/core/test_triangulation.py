"""Tests for core.triangulation on a synthetic rectified rig (fx = fy = 500, 640x480, B = 0.12 m)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from object_permanence.core.triangulation import (
    RectifiedRig,
    StereoPairingConfig,
    StereoTriangulator,
    triangulate_rectified,
    triangulation_jacobian,
)
from object_permanence.core.types import Track, TrackState

FX, CX, CY, B = 500.0, 320.0, 240.0, 0.12


def projections(cx_right: float = CX) -> tuple[np.ndarray, np.ndarray]:
    """ROS-convention rectified projections: P_left = K [I | 0], P_right[0, 3] = -fx B."""
    p_left = np.array([[FX, 0, CX, 0], [0, FX, CY, 0], [0, 0, 1, 0]], dtype=np.float64)
    p_right = np.array([[FX, 0, cx_right, -FX * B], [0, FX, CY, 0], [0, 0, 1, 0]], dtype=np.float64)
    return p_left, p_right


def project(points: np.ndarray, cx_right: float = CX) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3) metres -> pixel centres (N, 2) in the left and right rectified images."""
    x, y, z = points.T
    v = FX * y / z + CY
    return np.stack([FX * x / z + CX, v], 1), np.stack([FX * (x - B) / z + cx_right, v], 1)


def track(track_id: int, centre, height: float, state: TrackState = TrackState.VISIBLE, class_id: int = 0,
          embedding: np.ndarray | None = None, sigma_px: float = 0.5, persistence: float = float("nan"),
          frames_since_seen: int = 0) -> Track:
    return Track(
        track_id=track_id, state=state,
        box=np.array([centre[0], centre[1], 0.6 * height, height], dtype=np.float64),
        velocity=np.zeros(2), covariance=np.diag([sigma_px**2, sigma_px**2, 4.0, 4.0]),
        score=0.9, class_id=class_id, class_name=f"class{class_id}", age=10, hits=10,
        frames_since_seen=frames_since_seen, embedding=embedding, persistence_score=persistence,
    )


def stereo_tracks(points: np.ndarray, heights_m: np.ndarray, first_id: int = 1, **kwargs) -> tuple[list, list]:
    uv_l, uv_r = project(points)
    h_px = FX * heights_m / points[:, 2]
    left = [track(first_id + k, uv_l[k], h_px[k], **kwargs) for k in range(len(points))]
    right = [track(100 + first_id + k, uv_r[k], h_px[k], **kwargs) for k in range(len(points))]
    return left, right


@pytest.fixture
def rig() -> RectifiedRig:
    return RectifiedRig.from_projections(*projections())


def test_rig_from_projections(rig):
    assert (rig.fx, rig.fy, rig.cx_left, rig.cy) == (FX, FX, CX, CY)
    assert rig.baseline == pytest.approx(B)


def test_points_from_1_to_10_m_triangulate_back_exactly(rig):
    rng = np.random.default_rng(0)
    z = np.linspace(1.0, 10.0, 200)
    points = np.stack([rng.uniform(-0.3, 0.3, 200) * z, rng.uniform(-0.2, 0.2, 200) * z, z], 1)
    uv_l, uv_r = project(points)
    assert np.max(np.abs(triangulate_rectified(rig, uv_l, uv_r) - points)) < 1e-6

    tri = StereoTriangulator(*projections())
    for k, point in enumerate(points[::20]):
        left, right = stereo_tracks(point[None], np.array([0.5]), first_id=10 * k + 1)
        (out,) = tri.step(left, right, stamp=float(k))
        assert np.max(np.abs(out.position - point)) < 1e-6


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
    Z σ_d / d = 3 * (0.5 √2) / 20 ≈ 0.106 m; the 5 cm bar at 3 m is met from about 0.2 px centre noise
    (the world model's Kalman-filtered centres, not raw detections, are what the triangulator sees).
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

    fine = triangulate_rectified(rig, uv_l + rng.normal(0, 0.2, (n, 2)), uv_r + rng.normal(0, 0.2, (n, 2)))
    rmse = np.sqrt(np.mean(np.sum((fine - truth) ** 2, axis=1)))
    assert rmse < 0.05


def test_triangulator_covariance_is_propagated_and_grows_with_depth():
    tri = StereoTriangulator(*projections(), StereoPairingConfig(center_sigma_floor_px=0.3))
    depths = np.array([1.0, 2.0, 4.0, 8.0])
    points = np.stack([np.linspace(-0.5, 0.5, 4) * depths / 2, np.zeros(4), depths], 1)
    points[:, 1] = np.array([-0.2, 0.0, 0.2, 0.4]) * depths / 2  # distinct rows: unambiguous pairing
    left, right = stereo_tracks(points, np.full(4, 0.5), sigma_px=0.4)  # 0.4² + 0.3² = 0.5²
    out = sorted(tri.step(left, right, 0.0), key=lambda t: t.position[2])
    assert [t.left_track_id for t in out] == [1, 2, 3, 4]
    var_z = np.array([t.covariance[2, 2] for t in out])
    assert np.all(np.diff(var_z) > 0)
    np.testing.assert_allclose(var_z, (depths**2 / (FX * B)) ** 2 * 0.5, rtol=1e-9)  # σ_Z² = (Z²/fB)² · 2σ²
    left[0].covariance = np.full((4, 4), np.nan)  # a broken 2D covariance falls back to the floor
    broken = next(t for t in tri.step(left, right, 1.0) if t.left_track_id == 1)
    assert np.all(np.isfinite(broken.covariance)) and broken.covariance[2, 2] < out[0].covariance[2, 2]
    for t in out:
        assert t.covariance.shape == (3, 3)
        np.testing.assert_allclose(t.covariance, t.covariance.T)
        assert np.all(np.linalg.eigvalsh(t.covariance) > 0)


@pytest.mark.parametrize(
    ("right_centre", "why"),
    [
        ((300.0, 270.0), "30 px row offset"),
        ((320.0 - 60.0 / 50.0, 240.0), "disparity of a point at 50 m"),
        ((320.0 - 60.0 / 0.1, 240.0), "disparity of a point at 0.1 m"),
    ],
)
def test_pairing_rejects_infeasible_partners(right_centre, why):
    tri = StereoTriangulator(*projections(), StereoPairingConfig(min_depth_m=0.3, max_depth_m=40.0))
    left = [track(1, (320.0, 240.0), 80.0)]
    assert tri.step(left, [track(2, right_centre, 80.0)], 0.0) == [], why
    (ok,) = tri.step(left, [track(3, (300.0, 241.0), 80.0)], 1.0)  # control: 20 px disparity, 3 m
    assert ok.position[2] == pytest.approx(3.0)


def test_pairing_requires_same_class_and_size_ratio():
    tri = StereoTriangulator(*projections())
    left = [track(1, (320.0, 240.0), 80.0, class_id=0)]
    assert tri.step(left, [track(2, (300.0, 240.0), 80.0, class_id=1)], 0.0) == []
    assert tri.step(left, [track(3, (300.0, 240.0), 200.0)], 1.0) == []
    left_nan = [track(4, (np.nan, 240.0), 80.0)]
    assert tri.step(left_nan, [track(5, (300.0, 240.0), 80.0)], 2.0) == []


def test_moving_pair_keeps_its_3d_id_for_50_frames():
    tri = StereoTriangulator(*projections())
    rng = np.random.default_rng(3)
    ids, errors = set(), []
    for k in range(50):
        t = k / 30.0
        points = np.array([[-0.8 + 1.2 * t, 0.1, 3.0 + t], [0.6 - t, -0.3, 5.0 - 0.5 * t]])
        left, right = stereo_tracks(points, np.array([1.7, 1.5]))
        for tr in left + right:
            tr.box[:2] += rng.uniform(-0.3, 0.3, 2)
        out = {o.left_track_id: o for o in tri.step(left, right, t)}
        assert sorted(out) == [1, 2]
        ids.add((out[1].track_id, out[2].track_id))
        errors.append(np.linalg.norm(out[1].position - points[0]))
    assert ids == {(1, 2)}
    assert np.sqrt(np.mean(np.square(errors))) < 0.1


def _ambiguous_frames(n: int) -> list[tuple[list[Track], list[Track]]]:
    """Two look-alike objects on one row where both assignments are feasible and nearly tied."""
    rng = np.random.default_rng(4)
    frames = []
    for _ in range(n):
        jitter = rng.uniform(-1.0, 1.0, 4)
        left = [track(1, (300.0, 240.0 + jitter[0]), 20.0), track(2, (330.0, 240.0 + jitter[1]), 20.0)]
        right = [track(11, (290.0, 240.0 + jitter[2]), 20.0), track(12, (280.0, 240.0 + jitter[3]), 20.0)]
        frames.append((left, right))
    return frames


def test_hysteresis_keeps_an_ambiguous_pairing_stable():
    frames = _ambiguous_frames(50)

    def pairings(bonus: float) -> set[tuple[int, int]]:
        tri = StereoTriangulator(*projections(), StereoPairingConfig(hysteresis_bonus=bonus))
        seen = set()
        for k, (left, right) in enumerate(frames):
            seen |= {(o.left_track_id, o.right_track_id) for o in tri.step(left, right, k / 30.0)}
        return seen

    assert len(pairings(0.0)) > 2  # without hysteresis the near-tie flips the pairing
    assert len(pairings(1.0)) == 2  # with it the first pairing is kept while feasible


@pytest.mark.parametrize("cue", ["size", "class", "appearance"])
def test_same_row_objects_at_different_depths_pair_correctly(cue):
    """Near object A (2 m) and far object B (6 m) on one row; both assignments pass the disparity gate."""
    near, far = np.array([0.16, 0.0, 2.0]), np.array([0.24, 0.0, 6.0])
    (ul_a, ur_a), (ul_b, ur_b) = ((project(p[None])[0][0], project(p[None])[1][0]) for p in (near, far))
    heights = {"size": (FX * 1.0 / 2.0, FX * 1.0 / 6.0)}.get(cue, (60.0, 60.0))
    classes = (0, 1) if cue == "class" else (0, 0)
    if cue == "appearance":
        emb_a, emb_b = np.eye(8, dtype=np.float32)[0], np.eye(8, dtype=np.float32)[1]
    else:
        emb_a = emb_b = None
    left = [track(1, ul_a, heights[0], class_id=classes[0], embedding=emb_a),
            track(2, ul_b, heights[1], class_id=classes[1], embedding=emb_b)]
    right = [track(12, ur_b, heights[1], class_id=classes[1], embedding=emb_b),
             track(11, ur_a, heights[0], class_id=classes[0], embedding=emb_a)]
    tri = StereoTriangulator(*projections())
    assert ul_a[0] - ur_b[0] > 0 and ul_b[0] - ur_a[0] > 0  # swapped pairs are disparity-feasible too
    out = {o.left_track_id: o for o in tri.step(left, right, 0.0)}
    assert out[1].right_track_id == 11 and out[2].right_track_id == 12
    np.testing.assert_allclose(out[1].position, near, atol=1e-9)
    np.testing.assert_allclose(out[2].position, far, atol=1e-9)


@pytest.mark.parametrize(
    ("left_state", "right_state", "expected"),
    [
        (TrackState.VISIBLE, TrackState.VISIBLE, TrackState.VISIBLE),
        (TrackState.VISIBLE, TrackState.OCCLUDED, TrackState.OCCLUDED),
        (TrackState.OCCLUDED, TrackState.TENTATIVE, TrackState.OCCLUDED),
        (TrackState.TENTATIVE, TrackState.VISIBLE, TrackState.TENTATIVE),
        (TrackState.LOST, TrackState.OCCLUDED, TrackState.LOST),
        (TrackState.VISIBLE, TrackState.LOST, TrackState.LOST),
    ],
)
def test_state_is_the_worse_of_the_two(left_state, right_state, expected):
    tri = StereoTriangulator(*projections())
    left = [track(1, (320.0, 240.0), 80.0, state=left_state, frames_since_seen=0)]
    right = [track(2, (300.0, 240.0), 80.0, state=right_state, frames_since_seen=7)]
    (out,) = tri.step(left, right, 0.0)
    assert out.state == expected
    assert out.frames_since_seen == 7


@pytest.mark.parametrize(("scores", "expected"), [((0.9, 0.4), 0.4), ((np.nan, 0.7), 0.7), ((0.2, np.nan), 0.2)])
def test_persistence_score_is_nan_aware_min(scores, expected):
    tri = StereoTriangulator(*projections())
    left = [track(1, (320.0, 240.0), 80.0, persistence=scores[0])]
    right = [track(2, (300.0, 240.0), 80.0, persistence=scores[1])]
    assert tri.step(left, right, 0.0)[0].persistence_score == pytest.approx(expected)
    both_nan = tri.step([track(1, (320.0, 240.0), 80.0)], [track(2, (300.0, 240.0), 80.0)], 1.0)
    assert np.isnan(both_nan[0].persistence_score)


def test_ids_are_per_pair_and_never_reused():
    tri = StereoTriangulator(*projections(), StereoPairingConfig(pair_memory_s=1.0))
    a = [track(1, (320.0, 240.0), 80.0)]
    first = tri.step(a, [track(2, (300.0, 240.0), 80.0)], 0.0)[0].track_id
    other = tri.step(a, [track(3, (300.0, 240.0), 80.0)], 0.1)[0].track_id  # new pair -> new id
    back = tri.step(a, [track(2, (300.0, 240.0), 80.0)], 0.2)[0].track_id  # remembered pair
    expired = tri.step(a, [track(2, (300.0, 240.0), 80.0)], 5.0)[0].track_id  # forgotten -> new id
    assert other != first and back == first
    assert len({first, other, expired}) == 3


def test_velocity_and_trail_from_stamps():
    """Exact observations of a constant-velocity point: the 3D filter converges from its zero-velocity
    start (its prior fades, so the match is close but not exact) and the trail holds filtered positions."""
    tri = StereoTriangulator(*projections(), StereoPairingConfig(trail_length=5))
    stamps = np.cumsum(np.r_[0.0, np.full(29, 0.05)])
    for k, stamp in enumerate(stamps):
        point = np.array([-0.5 + 0.8 * stamp, 0.0, 4.0 - 0.5 * stamp])
        (out,) = tri.step(*stereo_tracks(point[None], np.array([1.0])), stamp=float(stamp))
        if k == 0:
            assert np.array_equal(out.velocity, np.zeros(3)) and np.allclose(out.position, point)
    np.testing.assert_allclose(out.velocity, [0.8, 0.0, -0.5], atol=0.01)
    assert len(out.trail) == 5
    np.testing.assert_allclose(out.trail[-1], out.position)
    np.testing.assert_allclose(out.trail[0], [-0.5 + 0.8 * stamps[-5], 0.0, 4.0 - 0.5 * stamps[-5]], atol=5e-3)


def test_stamps_going_backwards_raise():
    tri = StereoTriangulator(*projections())
    tri.step([], [], 2.0)
    tri.step([], [], 2.0)
    with pytest.raises(ValueError, match="backwards"):
        tri.step([], [], 1.5)
    with pytest.raises(ValueError, match="stamp"):
        tri.step([], [], float("nan"))


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"max_row_diff_px": 0.0}, "max_row_diff_px"),
        ({"max_row_diff_frac": -0.1}, "max_row_diff_frac"),
        ({"min_depth_m": 5.0, "max_depth_m": 2.0}, "max_depth_m"),
        ({"max_depth_m": float("inf")}, "max_depth_m"),
        ({"max_size_ratio": 0.9}, "max_size_ratio"),
        ({"appearance_weight": -1.0}, "appearance_weight"),
        ({"trail_length": 0}, "trail_length"),
        ({"accel_noise": 0.0}, "accel_noise"),
        ({"accel_noise": float("inf")}, "accel_noise"),
        ({"initial_velocity_std_mps": -1.0}, "initial_velocity_std_mps"),
        ({"refined_disparity_std_px": 0.0}, "refined_disparity_std_px"),
        ({"refined_disparity_std_px": float("nan")}, "refined_disparity_std_px"),
        ({"refine_search_px": -2.0}, "refine_search_px"),
        ({"refine_min_ncc": 1.2}, "refine_min_ncc"),
        ({"refine_inner_frac": 0.0}, "refine_inner_frac"),
        ({"refine_inner_frac": 1.5}, "refine_inner_frac"),
        ({"refine_min_peak_curvature": 0.0}, "refine_min_peak_curvature"),
        ({"hysteresis_bonus": float("nan")}, "hysteresis_bonus"),
        ({"center_sigma_floor_px": -0.5}, "center_sigma_floor_px"),
    ],
)
def test_config_validation_names_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        StereoPairingConfig(**kwargs)


def test_projection_validation():
    p_left, p_right = projections()
    with pytest.raises(ValueError, match="P_right"):
        StereoTriangulator(p_left, np.where(p_right == -FX * B, FX * B, p_right))  # right camera on the left
    skewed = p_right.copy()
    skewed[0, 1] = 3.0
    with pytest.raises(ValueError, match="P_right"):
        StereoTriangulator(p_left, skewed)
    other_fy = p_right.copy()
    other_fy[1, 1] = 510.0
    with pytest.raises(ValueError, match="share fx, fy and cy"):
        StereoTriangulator(p_left, other_fy)
    with pytest.raises(ValueError, match="P_left"):
        StereoTriangulator(p_left[:, :3], p_right)


def test_filter_velocity_smooths_noisy_positions():
    """The 3D filter's velocity beats the raw finite difference of the triangulated points by 2x."""
    rng = np.random.default_rng(5)
    noise = rng.uniform(-0.3, 0.3, (60, 2, 2))
    tri = StereoTriangulator(*projections())
    filtered_errors, raw_errors, previous = [], [], None
    for k in range(60):
        stamp = k / 30.0
        left, right = stereo_tracks(np.array([[0.5 * stamp, 0.0, 3.0]]), np.array([1.0]))
        left[0].box[:2] += noise[k, 0]
        right[0].box[:2] += noise[k, 1]
        (out,) = tri.step(left, right, stamp)
        (first,) = StereoTriangulator(*projections()).step(left, right, stamp)  # a fresh pair: the raw point
        if k == 0:
            assert np.array_equal(out.velocity, np.zeros(3))  # unknown until observations accumulate
        elif k >= 20:
            filtered_errors.append(np.linalg.norm(out.velocity - [0.5, 0.0, 0.0]))
            raw_errors.append(np.linalg.norm((first.position - previous) * 30.0 - [0.5, 0.0, 0.0]))  # v = Δp / Δt
        previous = first.position
    assert np.sqrt(np.mean(np.square(filtered_errors))) < 0.5 * np.sqrt(np.mean(np.square(raw_errors)))


# --- Image-refined disparity and the 3D filter ------------------------------------------------------------

IMAGE_SIZE = (640, 480)
TEXEL_M = 3.0 / FX  # one texel is one pixel at 3 m
OBJECT_TEXELS = (60, 100)  # a 0.36 m x 0.6 m board


def board_texture(seed: int = 0) -> np.ndarray:
    """(100, 60) float32 smooth random texture of the board, mean 128, std 50 grey levels."""
    noise = np.random.default_rng(seed).normal(0.0, 1.0, OBJECT_TEXELS[::-1]).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 1.5)
    return smooth / smooth.std() * 50.0 + 128.0


def render_stereo(centre: np.ndarray, board: np.ndarray, right_board: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Rectified BGR pair of a fronto-parallel board centred at ``centre`` (3,) m, over a faint
    background at infinity; ``right_board`` replaces the board in the right view (inconsistent content)."""
    background = cv2.GaussianBlur(np.random.default_rng(99).normal(0, 1, IMAGE_SIZE[::-1]).astype(np.float32),
                                  (0, 0), 3.0)
    background = background / background.std() * 12.0 + 128.0
    x, y, z = centre
    scale = FX * TEXEL_M / z  # pixels per texel
    top_left = np.array([x - 0.5 * OBJECT_TEXELS[0] * TEXEL_M, y - 0.5 * OBJECT_TEXELS[1] * TEXEL_M])
    views = []
    for baseline, texture in ((0.0, board), (B, board if right_board is None else right_board)):
        u0 = FX * (top_left[0] - baseline) / z + CX + 0.5 * scale  # texel k's centre lands on u0 + k * scale
        v0 = FX * top_left[1] / z + CY + 0.5 * scale
        warp = np.float32([[scale, 0, u0], [0, scale, v0]])
        layer = cv2.warpAffine(texture, warp, IMAGE_SIZE, flags=cv2.INTER_LINEAR)
        mask = cv2.warpAffine(np.ones_like(texture), warp, IMAGE_SIZE, flags=cv2.INTER_LINEAR)
        image = background * (1.0 - mask) + layer * mask
        views.append(np.repeat(np.clip(np.round(image), 0, 255).astype(np.uint8)[..., None], 3, axis=2))
    return views[0], views[1]


def board_tracks(centre: np.ndarray, offsets_px: np.ndarray, sigma_px: float, **kwargs) -> tuple[list, list]:
    """Left/right tracks of the board with centre errors ``offsets_px`` (2, 2): rows = views, columns = (u, v)."""
    left, right = stereo_tracks(centre[None], np.array([OBJECT_TEXELS[1] * TEXEL_M]), sigma_px=sigma_px, **kwargs)
    left[0].box[:2] += offsets_px[0]
    right[0].box[:2] += offsets_px[1]
    return left, right


def test_refined_single_frame_error_under_2cm_at_3m():
    """A 1.5 px disparity error of the box centres is 0.2 m at 3 m; the image texture brings it under 2 cm."""
    centre = np.array([0.2, -0.1, 3.0])
    images = render_stereo(centre, board_texture())
    left, right = board_tracks(centre, np.array([[0.4, -0.3], [-1.5, 0.5]]), sigma_px=1.5)
    (boxes_only,) = StereoTriangulator(*projections()).step(left, right, 0.0)
    (refined,) = StereoTriangulator(*projections()).step(left, right, 0.0, images=images)
    assert np.linalg.norm(boxes_only.position - centre) > 0.15
    assert np.linalg.norm(refined.position - centre) < 0.02
    # The refined disparity carries refined_disparity_std_px, not the boxes' 1.5 px: σ_Z = Z/d σ_d
    # (first frame: P = R).
    z = refined.position[2]
    assert np.sqrt(refined.covariance[2, 2]) == pytest.approx(z**2 / (FX * B) * 0.2, rel=1e-6)
    assert refined.covariance[2, 2] < 0.02 * boxes_only.covariance[2, 2]  # (0.2 px)² vs 2 (1.5² + 0.25²) px²
    np.testing.assert_allclose(refined.covariance, refined.covariance.T)
    assert np.all(np.linalg.eigvalsh(refined.covariance) > 0)


def _moving_board_rmse(with_images: bool, filtered: bool) -> float:
    """3D RMSE over 60 frames (30 Hz) of a board drifting at 0.3 m/s around 3 m, 1.5 px centre noise per view."""
    rng = np.random.default_rng(11)
    board = board_texture(1)
    tri = StereoTriangulator(*projections())
    errors = []
    for k in range(60):
        stamp = k / 30.0
        centre = np.array([-0.3 + 0.3 * stamp, 0.05 - 0.05 * stamp, 2.9 + 0.1 * stamp])
        left, right = board_tracks(centre, rng.normal(0.0, 1.5, (2, 2)), sigma_px=1.5)
        images = render_stereo(centre, board) if with_images else None
        if not filtered:
            tri = StereoTriangulator(*projections())  # a fresh pair each frame: the raw triangulation
        (out,) = tri.step(left, right, stamp, images=images)
        errors.append(np.linalg.norm(out.position - centre))
    return float(np.sqrt(np.mean(np.square(errors))))


def test_filtered_refined_rmse_at_3m_under_5cm():
    """The 3D bar: < 5 cm at 3 m with 1.5 px centre noise per view (box centres alone: ~0.3 m raw)."""
    raw = _moving_board_rmse(with_images=False, filtered=False)
    filtered_boxes = _moving_board_rmse(with_images=False, filtered=True)
    refined = _moving_board_rmse(with_images=True, filtered=False)
    filtered_refined = _moving_board_rmse(with_images=True, filtered=True)
    assert raw > 0.2  # the problem: 1.5 px per view is ~0.3 m of depth at 3 m
    assert filtered_boxes < 0.6 * raw  # the filter alone helps, but cannot reach the bar from box centres
    assert refined < 0.03
    assert filtered_refined < 0.05 and filtered_refined < refined


@pytest.mark.parametrize("reason", ["inconsistent_right_view", "not_visible"])
def test_refinement_falls_back_to_box_centres(reason):
    """No reliable match (e.g. a reflection or occluder in one view), or a pair not VISIBLE in both views:
    the box-centre disparity and covariance are used, exactly as without images."""
    centre = np.array([0.0, 0.0, 3.0])
    board = board_texture(2)
    other = board[:, ::-1].copy() if reason == "inconsistent_right_view" else None
    images = render_stereo(centre, board, right_board=other)
    state = TrackState.TENTATIVE if reason == "not_visible" else TrackState.VISIBLE
    left, right = board_tracks(centre, np.array([[0.0, 0.0], [-1.5, 0.0]]), sigma_px=1.5, state=state)
    (plain,) = StereoTriangulator(*projections()).step(left, right, 0.0)
    (with_images,) = StereoTriangulator(*projections()).step(left, right, 0.0, images=images)
    np.testing.assert_allclose(with_images.position, plain.position, rtol=0, atol=1e-12)
    np.testing.assert_allclose(with_images.covariance, plain.covariance, rtol=0, atol=1e-15)


def test_malformed_images_raise():
    tri = StereoTriangulator(*projections())
    left, right = board_tracks(np.array([0.0, 0.0, 3.0]), np.zeros((2, 2)), sigma_px=1.0)
    image = np.zeros((480, 640, 3), np.uint8)
    with pytest.raises(ValueError, match="images"):
        tri.step(left, right, 0.0, images=(image,))
    with pytest.raises(ValueError, match="right_bgr"):
        tri.step(left, right, 0.1, images=(image, image[:, :, 0].astype(np.float32)))
    left[0].state = TrackState.OCCLUDED  # checked even when no pair is refined
    with pytest.raises(ValueError, match="same size"):
        tri.step(left, right, 0.2, images=(image, image[:240]))


@pytest.mark.parametrize("update_from_ghosts", [False, True])
def test_ghost_pairs_only_predict(update_from_ghosts):
    """While one view is a ghost its (drifting) 2D prediction does not pull the 3D filter, which
    extrapolates at constant velocity with a growing covariance; the config can opt back in."""
    tri = StereoTriangulator(*projections(), StereoPairingConfig(update_from_ghosts=update_from_ghosts))

    def truth(stamp: float) -> np.ndarray:
        return np.array([-0.4 + 0.5 * stamp, 0.1, 3.0 + 0.2 * stamp])

    for k in range(30):
        stamp = k / 30.0
        tri.step(*stereo_tracks(truth(stamp)[None], np.array([0.6])), stamp)
    traces, errors = [], []
    for k in range(30, 45):
        stamp = k / 30.0
        left, right = stereo_tracks(truth(stamp)[None], np.array([0.6]))
        right[0].state = TrackState.OCCLUDED
        right[0].box[0] += 0.4 * (k - 29)  # the 2D ghost drifts off: up to 6 px of disparity error
        (out,) = tri.step(left, right, stamp)
        assert out.state == TrackState.OCCLUDED
        np.testing.assert_allclose(out.trail[-1], out.position)
        traces.append(np.trace(out.covariance))
        errors.append(np.linalg.norm(out.position - truth(stamp)))
    if update_from_ghosts:
        assert errors[-1] > 0.3
    else:
        assert max(errors) < 0.01
        assert np.all(np.diff(traces) > 0)
    (back,) = tri.step(*stereo_tracks(truth(1.5)[None], np.array([0.6])), 1.5)  # seen again: same id
    assert back.track_id == 1 and back.state == TrackState.VISIBLE
    if not update_from_ghosts:  # (after following the drift, the true point is first gated out)
        assert np.trace(back.covariance) < traces[-1]  # updated


def test_outlying_triangulations_are_gated_out_then_the_filter_restarts():
    """A sudden 0.8 m jump with a tight covariance (an image match latched onto an occluder) is
    skipped while the filter coasts; if the jump persists, the filter restarts there."""
    cfg = StereoPairingConfig(max_rejected_updates=3)
    tri = StereoTriangulator(*projections(), cfg)
    sigma = np.diag([1e-4, 1e-4, 4e-4])  # a refined, confident triangulation
    # Feed the 3D filter directly through the pair update (box geometry is tested elsewhere).
    a, b = track(1, (300.0, 240.0), 60.0), track(2, (280.0, 240.0), 60.0)
    for k in range(10):
        out = tri._update_pair(a, b, np.array([0.0, 0.0, 3.0]), sigma, k / 30)
    assert out.position[2] == pytest.approx(3.0, abs=1e-3)
    for k in range(10, 13):  # three outliers: coasting
        out = tri._update_pair(a, b, np.array([0.0, 0.0, 3.8]), sigma, k / 30)
        assert out.position[2] == pytest.approx(3.0, abs=1e-3)
    out = tri._update_pair(a, b, np.array([0.0, 0.0, 3.8]), sigma, 13 / 30)  # fourth: restart
    assert out.position[2] == pytest.approx(3.8, abs=1e-6)
    with pytest.raises(ValueError, match="gate_probability"):
        StereoPairingConfig(gate_probability=1.0)
    with pytest.raises(ValueError, match="max_rejected_updates"):
        StereoPairingConfig(max_rejected_updates=-1)


def test_a_box_cut_by_the_image_border_does_not_update_the_3d_filter():
    """The visible part of a box cut by the border is off-centre: its disparity is biased, so the
    pair only predicts (without images to measure the disparity) until it is whole again."""
    tri = StereoTriangulator(*projections())
    truth = np.array([[-1.1, 0.0, 3.0]])
    for k in range(5):
        (out,) = tri.step(*stereo_tracks(truth, np.array([0.6])), k / 30, image_size=(640, 480))
    left, right = stereo_tracks(truth, np.array([0.6]))
    right[0].box[0] -= 3.0  # the clipped right box: centre shifted, its left edge on the border
    right[0].box[2] = 2 * (right[0].box[0] - 1.0)
    (cut,) = tri.step(left, right, 5 / 30, image_size=(640, 480))
    assert np.linalg.norm(cut.position - out.position) < 1e-6  # predicted only (it was at rest)
    (unknown,) = StereoTriangulator(*projections()).step(left, right, 0.0)  # size unknown: used as is
    assert abs(unknown.position[2] - 3.0) > 0.2
