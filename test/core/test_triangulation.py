"""Tests for core.triangulation (StereoTriangulator) on a synthetic rectified rig
(fx = fy = 500, 640x480, B = 0.12 m; see stereo_scenes)."""
from __future__ import annotations

import numpy as np
import pytest

from object_permanence.core.box_disparity import DisparitySource
from object_permanence.core.id_allocator import IdAllocator
from object_permanence.core.triangulation import StereoTriangulator, _occluders, raw_measurement
from object_permanence.core.triangulator_config import TriangulatorConfig
from object_permanence.core.types import TrackState, duplicate_track_ids
from stereo_scenes import (
    B,
    FX,
    board_texture,
    board_tracks,
    project,
    projections,
    render_stereo,
    stereo_tracks,
    track,
)

#: Box-centre noise of 0.5 px per coordinate, whatever the box size.
HALF_PX = TriangulatorConfig(detection_std_px=0.5, detection_std_frac=0.0)


def with_measurements(tracks: list, offsets: np.ndarray) -> list:
    """Give each track a raw detection box: its box moved by ``offsets`` (N, 2) px."""
    for t, offset in zip(tracks, offsets):
        t.measurement = t.box + np.r_[offset, 0.0, 0.0]
    return tracks


def test_points_from_1_to_10_m_triangulate_back_exactly():
    rng = np.random.default_rng(0)
    z = np.linspace(1.0, 10.0, 10)
    points = np.stack([rng.uniform(-0.3, 0.3, 10) * z, rng.uniform(-0.2, 0.2, 10) * z, z], 1)
    tri = StereoTriangulator(*projections())
    for k, point in enumerate(points):
        left, right = stereo_tracks(point[None], np.array([0.5]), first_id=10 * k + 1)
        (out,) = tri.step(left, right, stamp=float(k))
        assert np.max(np.abs(out.position - point)) < 1e-6


def test_covariance_is_the_detectors_noise_propagated_and_grows_with_depth():
    tri = StereoTriangulator(*projections(), HALF_PX)
    depths = np.array([1.0, 2.0, 4.0, 8.0])
    points = np.stack([np.linspace(-0.5, 0.5, 4) * depths / 2, np.array([-0.2, 0.0, 0.2, 0.4]) * depths / 2, depths], 1)
    left, right = stereo_tracks(points, np.full(4, 0.5), sigma_px=30.0)  # a 2D Kalman covariance, not used
    out = sorted(tri.step(left, right, 0.0), key=lambda t: t.position[2])
    assert [t.left_track_id for t in out] == [1, 2, 3, 4]
    var_z = np.array([t.covariance[2, 2] for t in out])
    np.testing.assert_allclose(var_z, (depths**2 / (FX * B)) ** 2 * 2 * 0.25, rtol=1e-9)  # σ_Z² = (Z²/fB)² · 2σ²
    for t in out:
        np.testing.assert_allclose(t.covariance, t.covariance.T)
        assert np.all(np.linalg.eigvalsh(t.covariance) > 0)


def test_measurement_noise_scales_with_the_box_size():
    """σ_u = max(detection_std_px, detection_std_frac * w): a 0.04 * 60 = 2.4 px centre std on a
    60 px wide box (σ_Z² = (Z²/fB)² · 2σ_u²)."""
    tri = StereoTriangulator(*projections(), TriangulatorConfig(detection_std_px=1.0, detection_std_frac=0.04))
    point = np.array([[0.0, 0.0, 3.0]])
    (out,) = tri.step(*stereo_tracks(point, np.array([0.6])), 0.0)  # h = 100 px, w = 60 px at 3 m
    assert out.covariance[2, 2] == pytest.approx((9.0 / (FX * B)) ** 2 * 2 * 2.4**2, rel=1e-9)


def test_the_raw_detection_is_triangulated_not_the_filtered_box():
    """The 2D filters lag a moving object (their boxes 3 px behind in both views, 2.5 px apart in
    disparity); this frame's matched detections are where the object is."""
    point = np.array([[0.3, -0.1, 3.0]])
    left, right = stereo_tracks(point, np.array([0.6]))
    exact = [t.box.copy() for t in left + right]
    left[0].box[0] -= 3.0
    right[0].box[0] -= 0.5
    lagging = StereoTriangulator(*projections()).step(left, right, 0.0)[0]  # no measurement: the fallback
    assert np.linalg.norm(lagging.position - point[0]) > 0.3
    left[0].measurement, right[0].measurement = exact
    (raw,) = StereoTriangulator(*projections()).step(left, right, 0.0)
    np.testing.assert_allclose(raw.position, point[0], atol=1e-9)
    left[0].measurement = np.full(4, np.nan)  # not matched this frame in one view: its filtered box
    (mixed,) = StereoTriangulator(*projections()).step(left, right, 0.0)
    assert np.linalg.norm(mixed.position - point[0]) > 0.3


def test_raw_measurement_reads_only_usable_boxes():
    t = track(1, (300.0, 200.0), 50.0)
    assert raw_measurement(t) is None  # no field
    for bad in (np.full(4, np.nan), np.array([1.0, 2.0, 0.0, 3.0]), np.ones(3)):
        t.measurement = bad
        assert raw_measurement(t) is None
    box = np.asarray(t.box, dtype=float)
    t.measurement = box + [3.0, -2.0, 4.0, -5.0]  # the detection the filtered box was updated with
    np.testing.assert_array_equal(raw_measurement(t), box + [3.0, -2.0, 4.0, -5.0])
    # unlike the box the pair was gated on: garbage from whoever published it, not a measurement
    for far in (box + [0.0, 1e9, 0.0, 0.0], box * [1.0, 1.0, 5.0, 1.0], box + [3.0 * box[2], 0.0, 0.0, 0.0]):
        t.measurement = far
        assert raw_measurement(t) is None


def test_fused_covariance_is_consistent_with_the_error():
    """Raw detections with the configured noise, 200 frames of a static point: the normalised error
    squared of the 3D filter averages about 3 (3 dof), as for a filter that is neither over- nor
    under-confident. (With much larger disparity noise, e.g. 1.5 px per view on 20 px, the bias
    of Z = fB/d under noise makes it over-confident: box centres alone cannot reach the bar.)"""
    rng = np.random.default_rng(7)
    tri = StereoTriangulator(*projections(), HALF_PX)
    truth = np.array([0.3, -0.1, 3.0])
    nees = []
    for k in range(200):
        left, right = stereo_tracks(truth[None], np.array([0.6]))
        with_measurements(left, rng.normal(0.0, 0.5, (1, 2)))
        with_measurements(right, rng.normal(0.0, 0.5, (1, 2)))
        (out,) = tri.step(left, right, k / 30.0)
        error = out.position - truth
        if k >= 20:
            nees.append(error @ np.linalg.solve(out.covariance, error))  # e' P⁻¹ e
    assert 1.5 < np.mean(nees) < 4.5


def test_moving_pair_keeps_its_3d_id_for_50_frames():
    tri = StereoTriangulator(*projections(), HALF_PX)
    rng = np.random.default_rng(3)
    ids, errors = set(), []
    for k in range(50):
        t = k / 30.0
        points = np.array([[-0.8 + 1.2 * t, 0.1, 3.0 + t], [0.6 - t, -0.3, 5.0 - 0.5 * t]])
        left, right = stereo_tracks(points, np.array([1.7, 1.5]))
        with_measurements(left, rng.uniform(-0.3, 0.3, (2, 2)))
        with_measurements(right, rng.uniform(-0.3, 0.3, (2, 2)))
        out = {o.left_track_id: o for o in tri.step(left, right, t)}
        assert sorted(out) == [1, 2]
        ids.add((out[1].track_id, out[2].track_id))
        errors.append(np.linalg.norm(out[1].position - points[0]))
    assert ids == {(1, 2)}
    assert np.sqrt(np.mean(np.square(errors))) < 0.1


@pytest.mark.parametrize(
    ("left_state", "right_state", "expected"),
    [
        (TrackState.VISIBLE, TrackState.VISIBLE, TrackState.VISIBLE),
        (TrackState.VISIBLE, TrackState.OCCLUDED, TrackState.OCCLUDED),
        (TrackState.OCCLUDED, TrackState.TENTATIVE, TrackState.OCCLUDED),
        (TrackState.TENTATIVE, TrackState.VISIBLE, TrackState.TENTATIVE),
    ],
)
def test_state_is_the_worse_of_the_two(left_state, right_state, expected):
    tri = StereoTriangulator(*projections())
    tri.step([track(1, (320.0, 240.0), 80.0)], [track(2, (300.0, 240.0), 80.0)], 0.0)  # started when seen
    left = [track(1, (320.0, 240.0), 80.0, state=left_state, frames_since_seen=0)]
    right = [track(2, (300.0, 240.0), 80.0, state=right_state, frames_since_seen=7)]
    (out,) = tri.step(left, right, 1 / 30.0)
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


# --- identities --------------------------------------------------------------------------------------------

def test_ids_are_per_pair_and_never_reused():
    tri = StereoTriangulator(*projections(), TriangulatorConfig(pair_memory_s=1.0))
    a = [track(1, (320.0, 240.0), 80.0)]
    right = {i: track(i, (300.0, 240.0), 80.0) for i in (2, 3)}
    first = tri.step(a, [right[2], right[3]], 0.0)[0].track_id
    other = tri.step(a, [right[3], right[2]], 0.1)
    assert other[0].track_id == first  # hysteresis: the same pair while both are there
    swapped = tri.step(a, [right[3]], 0.2)[0].track_id  # right 2 is gone: a new pair
    back = tri.step(a, [right[2], right[3]], 0.3)
    assert swapped != first and back[0].right_track_id == 3 and back[0].track_id == swapped
    expired = tri.step(a, [right[2]], 5.0)[0].track_id  # (1, 3) gone, (1, 2) was forgotten: new
    assert len({first, swapped, expired}) == 3


def test_a_rebuilt_triangulator_continues_the_id_counter():
    """A new P or a time jump rebuilds the triangulator; sharing the node's allocator, its ids go on
    from the last one instead of restarting at 1."""
    ids = IdAllocator()
    left, right = stereo_tracks(np.array([[0.0, 0.0, 3.0], [0.5, 0.2, 4.0]]), np.array([0.5, 0.5]))
    first = StereoTriangulator(*projections(), ids=ids).step(left, right, 10.0)
    rebuilt = StereoTriangulator(*projections(baseline=0.125), ids=ids).step(left, right, 0.0)  # new P, time jump
    assert sorted(t.track_id for t in first) == [1, 2]
    assert sorted(t.track_id for t in rebuilt) == [3, 4]
    seeded = StereoTriangulator(*projections(), ids=IdAllocator(first_id=1_000_000)).step(left, right, 0.0)
    assert sorted(t.track_id for t in seeded) == [1_000_000, 1_000_001]


def test_a_lost_pair_is_published_once_then_forgotten():
    tri = StereoTriangulator(*projections())
    point = np.array([[0.2, 0.0, 3.0]])
    for k in range(10):
        (seen,) = tri.step(*stereo_tracks(point, np.array([0.5])), k / 30.0)
    left, right = stereo_tracks(point + [0.5, 0.0, 0.0], np.array([0.5]))  # a lost ghost drifted away
    left[0].state = TrackState.LOST
    (lost,) = tri.step(left, right, 10 / 30.0)
    assert lost.state == TrackState.LOST and lost.track_id == seen.track_id
    np.testing.assert_allclose(lost.position, seen.position, atol=1e-3)  # predicted, not updated
    # The world model reuses id 1 (or the persistence filter lets it through again): a fresh 3D
    # state, not the old one's.
    moved = np.array([[-0.6, 0.1, 5.0]])
    (fresh,) = tri.step(*stereo_tracks(moved, np.array([0.5])), 11 / 30.0)
    assert fresh.track_id != seen.track_id
    np.testing.assert_allclose(fresh.position, moved[0], atol=1e-9)
    assert np.array_equal(fresh.velocity, np.zeros(3)) and len(fresh.trail) == 1


def test_a_pair_first_seen_lost_is_not_started():
    tri = StereoTriangulator(*projections())
    left, right = stereo_tracks(np.array([[0.2, 0.0, 3.0]]), np.array([0.5]))
    right[0].state = TrackState.LOST
    assert tri.step(left, right, 0.0) == []
    right[0].state = TrackState.VISIBLE
    assert tri.step(left, right, 0.1)[0].track_id == 1


def test_a_pair_is_forgotten_as_soon_as_a_track_disappears():
    tri = StereoTriangulator(*projections(), TriangulatorConfig(pair_memory_s=100.0))
    both = stereo_tracks(np.array([[0.2, 0.0, 3.0]]), np.array([0.5]))
    first = tri.step(*both, 0.0)[0].track_id
    assert tri.step(both[0], [], 0.1) == []  # the right track is gone (LOST and dropped, filtered out)
    assert tri.step(*both, 0.2)[0].track_id != first


def test_duplicate_ids_are_rejected_naming_them():
    tri = StereoTriangulator(*projections())
    left, right = stereo_tracks(np.array([[0.0, 0.0, 3.0], [0.5, 0.2, 4.0], [-0.5, 0.1, 5.0]]), np.full(3, 0.5))
    right[2].track_id = right[0].track_id
    assert duplicate_track_ids(right) == [right[0].track_id] and duplicate_track_ids(left) == []
    with pytest.raises(ValueError, match=r"duplicate track ids in the right input: \[101\]"):
        tri.step(left, right, 0.0)
    left[1].track_id = left[2].track_id = 7
    with pytest.raises(ValueError, match=r"left input: \[7\]"):
        tri.step(left, right, 0.1)
    out = tri.step(left[:1], right[:2], 0.2)  # the rest goes through; the rejected step changed nothing
    assert [t.track_id for t in out] == [1]


def test_velocity_and_trail_from_stamps():
    """Exact observations of a constant-velocity point: the 3D filter converges from its zero-velocity
    start and the trail holds filtered positions."""
    tri = StereoTriangulator(*projections(), TriangulatorConfig(trail_length=5, detection_std_px=0.5,
                                                                detection_std_frac=0.0))
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
        ({"detection_std_px": 0.0}, "detection_std_px"),
        ({"detection_std_frac": -0.01}, "detection_std_frac"),
        ({"gate_probability": 1.0}, "gate_probability"),
        ({"max_rejected_updates": -1}, "max_rejected_updates"),
        ({"hysteresis_bonus": float("nan")}, "hysteresis_bonus"),
        ({"disparity_method": "fast"}, "disparity_method"),
        ({"refined_disparity_std_px": 0.0}, "refined_disparity_std_px"),
        ({"refined_disparity_std_px": float("nan")}, "refined_disparity_std_px"),
        ({"sgbm_disparity_std_px": -1.0}, "sgbm_disparity_std_px"),
        ({"refine_search_px": -2.0}, "refine_search_px"),
        ({"refine_min_ncc": 1.2}, "refine_min_ncc"),
        ({"refine_inner_frac": 0.0}, "refine_inner_frac"),
        ({"refine_inner_frac": 1.5}, "refine_inner_frac"),
        ({"refine_min_peak_curvature": 0.0}, "refine_min_peak_curvature"),
        ({"refine_max_spread_px": 0.0}, "refine_max_spread_px"),
        ({"sgbm_block_size": 4}, "sgbm_block_size"),
        ({"sgbm_uniqueness_ratio": 200}, "sgbm_uniqueness_ratio"),
        ({"sgbm_split_px": -1.0}, "sgbm_split_px"),
        ({"ghost_velocity_damping_s": -0.5}, "ghost_velocity_damping_s"),
        ({"ghost_velocity_damping_s": float("nan")}, "ghost_velocity_damping_s"),
        ({"ghost_velocity_damping_s": True}, "ghost_velocity_damping_s"),
        ({"accel_noise": True}, "accel_noise"),
        ({"update_from_ghosts": "false"}, "update_from_ghosts"),
        ({"update_from_ghosts": 1}, "update_from_ghosts"),
        ({"ghost_bearing_update": "false"}, "ghost_bearing_update"),
        ({"ghost_bearing_update": 0}, "ghost_bearing_update"),
        ({"box_depth_without_match": "false"}, "box_depth_without_match"),
        ({"box_depth_without_match": 1}, "box_depth_without_match"),
        ({"require_same_class": "true"}, "require_same_class"),
        ({"max_extrapolation_std_m": -0.1}, "max_extrapolation_std_m"),
        ({"max_extrapolation_std_m": float("inf")}, "max_extrapolation_std_m"),
        ({"truncation_std_frac": -0.5}, "truncation_std_frac"),
        ({"truncation_std_frac": float("nan")}, "truncation_std_frac"),
    ],
)
def test_config_validation_names_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name}\b"):
        TriangulatorConfig(**kwargs)


def test_projection_validation():
    p_left, p_right = projections()
    with pytest.raises(ValueError, match="P_right"):
        StereoTriangulator(p_left, np.where(p_right == -FX * B, FX * B, p_right))


def test_filter_velocity_smooths_noisy_positions():
    """The 3D filter's velocity beats the raw finite difference of the triangulated points by 2x."""
    rng = np.random.default_rng(5)
    noise = rng.uniform(-0.3, 0.3, (60, 2, 2))
    tri = StereoTriangulator(*projections())
    filtered_errors, raw_errors, previous = [], [], None
    for k in range(60):
        stamp = k / 30.0
        left, right = stereo_tracks(np.array([[0.5 * stamp, 0.0, 3.0]]), np.array([1.0]))
        with_measurements(left, noise[k, :1])
        with_measurements(right, noise[k, 1:])
        (out,) = tri.step(left, right, stamp)
        (first,) = StereoTriangulator(*projections()).step(left, right, stamp)  # a fresh pair: the raw point
        if k == 0:
            assert np.array_equal(out.velocity, np.zeros(3))  # unknown until observations accumulate
        elif k >= 20:
            filtered_errors.append(np.linalg.norm(out.velocity - [0.5, 0.0, 0.0]))
            raw_errors.append(np.linalg.norm((first.position - previous) * 30.0 - [0.5, 0.0, 0.0]))  # v = Δp / Δt
        previous = first.position
    assert np.sqrt(np.mean(np.square(filtered_errors))) < 0.5 * np.sqrt(np.mean(np.square(raw_errors)))


# --- image disparity and the 3D filter --------------------------------------------------------------------

def test_image_disparity_single_frame_error_under_2cm_at_3m():
    """A 1.5 px disparity error of the box centres is 0.2 m at 3 m; the image texture brings it under 2 cm."""
    centre = np.array([0.2, -0.1, 3.0])
    images = render_stereo(centre, board_texture())
    cfg = TriangulatorConfig(detection_std_px=1.5, detection_std_frac=0.0)
    left, right = board_tracks(centre, np.zeros((2, 2)))
    with_measurements(left, np.array([[0.4, -0.3]]))
    with_measurements(right, np.array([[-1.5, 0.5]]))
    (boxes_only,) = StereoTriangulator(*projections(), cfg).step(left, right, 0.0)
    (refined,) = StereoTriangulator(*projections(), cfg).step(left, right, 0.0, images=images)
    assert np.linalg.norm(boxes_only.position - centre) > 0.15
    assert np.linalg.norm(refined.position - centre) < 0.02
    # The template-matched disparity carries refined_disparity_std_px, not the boxes' 1.5 px:
    # σ_Z = Z/d σ_d (first frame: P = R).
    z = refined.position[2]
    assert np.sqrt(refined.covariance[2, 2]) == pytest.approx(z**2 / (FX * B) * 0.2, rel=1e-6)
    assert refined.covariance[2, 2] < 0.02 * boxes_only.covariance[2, 2]  # (0.2 px)² vs 2 (1.5 px)²
    np.testing.assert_allclose(refined.covariance, refined.covariance.T)
    assert np.all(np.linalg.eigvalsh(refined.covariance) > 0)


def _moving_board_rmse(with_images: bool, filtered: bool) -> float:
    """3D RMSE over 60 frames (30 Hz) of a board drifting at 0.3 m/s around 3 m, raw detections
    with 1.5 px centre noise per view (the 2D filters' boxes lag a little behind)."""
    rng = np.random.default_rng(11)
    board = board_texture(1)
    cfg = TriangulatorConfig(detection_std_px=1.5, detection_std_frac=0.0)
    tri = StereoTriangulator(*projections(), cfg)
    errors = []
    for k in range(60):
        stamp = k / 30.0
        centre = np.array([-0.3 + 0.3 * stamp, 0.05 - 0.05 * stamp, 2.9 + 0.1 * stamp])
        left, right = board_tracks(centre, np.array([[-1.0, 0.2], [-0.8, 0.2]]))  # lagging filtered boxes
        exact = [t.box - np.r_[o, 0.0, 0.0] for t, o in zip(left + right, ([-1.0, 0.2], [-0.8, 0.2]))]
        left[0].measurement, right[0].measurement = (e + np.r_[rng.normal(0.0, 1.5, 2), 0.0, 0.0] for e in exact)
        images = render_stereo(centre, board) if with_images else None
        if not filtered:
            tri = StereoTriangulator(*projections(), cfg)  # a fresh pair each frame: the raw triangulation
        (out,) = tri.step(left, right, stamp, images=images)
        errors.append(np.linalg.norm(out.position - centre))
    return float(np.sqrt(np.mean(np.square(errors))))


def test_filtered_image_disparity_rmse_at_3m_under_5cm():
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
def test_without_an_image_disparity_the_box_centres_are_used(reason):
    """No reliable match (a reflection or an occluder in one view: neither template nor semi-global
    matching agrees) with box_depth_without_match, or a pair not VISIBLE in both views: the
    box-centre disparity and covariance are used, exactly as without images."""
    cfg = TriangulatorConfig(box_depth_without_match=True)
    centre = np.array([0.0, 0.0, 3.0])
    board = board_texture(2)
    other = np.full_like(board, 128.0) if reason == "inconsistent_right_view" else None  # a blank right view
    images = render_stereo(centre, board, right_board=other)
    state = TrackState.TENTATIVE if reason == "not_visible" else TrackState.VISIBLE
    left, right = board_tracks(centre, np.array([[0.0, 0.0], [-1.5, 0.0]]), state=state)
    (plain,) = StereoTriangulator(*projections(), cfg).step(left, right, 0.0)
    (with_images,) = StereoTriangulator(*projections(), cfg).step(left, right, 0.0, images=images)
    np.testing.assert_allclose(with_images.position, plain.position, rtol=0, atol=1e-12)
    np.testing.assert_allclose(with_images.covariance, plain.covariance, rtol=0, atol=1e-15)


def test_a_slanted_surface_is_measured_by_semi_global_matching():
    """A board turned 6 px of disparity across: template cells disagree, so the default method
    falls back to SGBM on the box strip, still within centimetres at 3 m."""
    centre = np.array([0.1, 0.0, 3.0])
    images = render_stereo(centre, board_texture(3), slant=0.1)
    left, right = board_tracks(centre, np.array([[0.5, 0.0], [-1.5, 0.0]]))
    (out,) = StereoTriangulator(*projections()).step(left, right, 0.0, images=images)
    assert abs(out.position[2] - centre[2]) < 0.05
    sgbm_std = TriangulatorConfig().sgbm_disparity_std_px
    assert np.sqrt(out.covariance[2, 2]) == pytest.approx(out.position[2] ** 2 / (FX * B) * sgbm_std, rel=0.05)


def test_malformed_images_raise():
    tri = StereoTriangulator(*projections())
    left, right = board_tracks(np.array([0.0, 0.0, 3.0]), np.zeros((2, 2)))
    image = np.zeros((480, 640, 3), np.uint8)
    with pytest.raises(ValueError, match="images"):
        tri.step(left, right, 0.0, images=(image,))
    with pytest.raises(ValueError, match="right_bgr"):
        tri.step(left, right, 0.1, images=(image, image[:, :, 0].astype(np.float32)))


GHOST_MODES = {
    "predict": TriangulatorConfig(ghost_velocity_damping_s=0.0, ghost_bearing_update=False),
    "damped_with_bearing": TriangulatorConfig(ghost_velocity_damping_s=0.5, ghost_bearing_update=True),
    "update_from_ghosts": TriangulatorConfig(update_from_ghosts=True, ghost_velocity_damping_s=0.0,
                                             ghost_bearing_update=False),
}


@pytest.mark.parametrize("mode", list(GHOST_MODES))
def test_ghost_pairs_do_not_triangulate_their_predicted_boxes(mode):
    """While one view is a ghost its (drifting) 2D prediction does not pull the 3D filter, which
    extrapolates (at constant velocity by default; or damped and kept on the left box's ray) with a
    growing depth covariance; the config can opt back in to triangulating the ghost boxes."""
    tri = StereoTriangulator(*projections(), GHOST_MODES[mode])

    def truth(stamp: float) -> np.ndarray:
        return np.array([-0.4 + 0.5 * stamp, 0.1, 3.0 + 0.2 * stamp])

    for k in range(30):
        stamp = k / 30.0
        tri.step(*stereo_tracks(truth(stamp)[None], np.array([0.6])), stamp)
    var_z, traces, errors, depth_errors, ray_errors = [], [], [], [], []
    for k in range(30, 45):
        stamp = k / 30.0
        left, right = stereo_tracks(truth(stamp)[None], np.array([0.6]))
        right[0].state = TrackState.OCCLUDED
        right[0].box[0] += 0.4 * (k - 29)  # the 2D ghost drifts off: up to 6 px of disparity error
        right[0].measurement = np.full(4, np.nan)  # a ghost was not matched
        (out,) = tri.step(left, right, stamp)
        assert out.state == TrackState.OCCLUDED
        np.testing.assert_allclose(out.trail[-1], out.position)
        var_z.append(out.covariance[2, 2])
        traces.append(np.trace(out.covariance))
        errors.append(np.linalg.norm(out.position - truth(stamp)))
        depth_errors.append(abs(out.position[2] - truth(stamp)[2]))
        ray_errors.append(np.linalg.norm(out.position[:2] / out.position[2] - truth(stamp)[:2] / truth(stamp)[2]))
    if mode == "update_from_ghosts":
        assert errors[-1] > 0.3
    elif mode == "predict":
        assert max(errors) < 0.01  # exact constant velocity
        assert np.all(np.diff(traces) > 0)
    else:  # the damped depth lags 0.2 m/s by v (T - τ (1 - exp(-T / τ))) (a pixel does not correct it);
        # the lateral position stays on the left box's ray
        lag = 0.2 * (0.5 - 0.5 * (1 - np.exp(-0.5 / 0.5)))  # 3.7 cm after T = 0.5 s
        assert max(depth_errors) < lag + 0.01  # (+ the filter's own depth error when the ghost began, ~5 mm)
        assert max(ray_errors) < 2e-3
        assert np.all(np.diff(var_z) > 0)
    (back,) = tri.step(*stereo_tracks(truth(1.5)[None], np.array([0.6])), 1.5)  # seen again: same id
    assert back.track_id == 1 and back.state == TrackState.VISIBLE
    if mode != "update_from_ghosts":  # (after following the drift, the true point is first gated out)
        assert back.covariance[2, 2] < var_z[-1]  # updated


@pytest.mark.parametrize("damping_s", [0.0, 0.5])
def test_a_ghosts_velocity_is_damped_and_its_bearing_kept(damping_s):
    """A resting object whose last depths crept 1 m/s towards the camera (a partial occlusion
    biased them), then hidden in the right view for 2 s while the left view still sees it moving
    sideways: constant velocity extrapolates the spurious approach for the whole 2 s; damped, the
    depth creeps at most τ v; either way the left box's ray keeps the lateral position without
    moving the depth."""
    tri = StereoTriangulator(*projections(), TriangulatorConfig(ghost_velocity_damping_s=damping_s,
                                                                ghost_bearing_update=True))
    for k in range(15):
        seen = np.array([[0.0, 0.0, 4.0 - k / 30.0]])
        (out,) = tri.step(*stereo_tracks(seen, np.array([0.6])), k / 30.0)
    z_last, vz_last = out.position[2], out.velocity[2]
    assert vz_last < -0.3  # the spurious approach
    for k in range(15, 75):
        truth = np.array([0.25 * (k - 14) / 30.0, 0.0, 4.0])
        left, right = stereo_tracks(truth[None], np.array([0.6]))
        right[0].state = TrackState.OCCLUDED
        (out,) = tri.step(left, right, k / 30.0)
    # the bearings move the point sideways only: the depth follows the (damped) velocity alone,
    # z = z_last + vz T (constant velocity) or z_last + τ (1 - exp(-T / τ)) vz (damped), T = 2 s
    if damping_s == 0.0:
        assert out.position[2] == pytest.approx(z_last + vz_last * 2.0, abs=1e-9)
        assert out.position[2] < z_last - 0.6
    else:
        assert out.position[2] == pytest.approx(z_last + damping_s * (1 - np.exp(-2.0 / damping_s)) * vz_last,
                                                abs=1e-9)
        assert abs(out.position[2] - z_last) < damping_s * 1.0  # at most τ v of creep (v ≈ 1 m/s)
        ray = truth[:2] / truth[2]
        np.testing.assert_allclose(out.position[:2] / out.position[2], ray, atol=2e-3)  # on the left box's ray


def test_a_pair_extrapolated_too_far_is_not_published_until_measured_again():
    """``max_extrapolation_std_m``: a ghost pair predicted for seconds grows that much more
    uncertain than at its last measurement and is held back (its filter runs on); measured again,
    it shows with the same 3D id. A far pair, uncertain by its measurement alone, is published."""
    tri = StereoTriangulator(*projections(), TriangulatorConfig(max_extrapolation_std_m=0.1))
    point = np.array([[0.2, 0.0, 3.0]])
    for k in range(10):
        (seen,) = tri.step(*stereo_tracks(point, np.array([0.5])), k / 30.0)
    measured = np.sqrt(np.linalg.eigvalsh(seen.covariance)[-1])
    shown = []
    for k in range(10, 130):  # 4 s as a ghost in both views: predictions only
        left, right = stereo_tracks(point, np.array([0.5]))
        left[0].state = right[0].state = TrackState.OCCLUDED
        out = tri.step(left, right, k / 30.0)
        shown.append(bool(out))
        for t in out:
            assert np.sqrt(np.linalg.eigvalsh(t.covariance)[-1]) <= measured + 0.1 + 1e-9
    assert shown[0] and not shown[-1] and shown == sorted(shown, reverse=True)  # shown, then held for good
    (back,) = tri.step(*stereo_tracks(point, np.array([0.5])), 130 / 30.0)
    assert back.track_id == seen.track_id and back.state == TrackState.VISIBLE
    far = StereoTriangulator(*projections(), TriangulatorConfig(max_extrapolation_std_m=0.1))
    (out,) = far.step(*stereo_tracks(np.array([[0.5, 0.0, 30.0]]), np.array([0.5])), 0.0)
    assert np.sqrt(np.linalg.eigvalsh(out.covariance)[-1]) > 0.1  # published however uncertain
    unlimited = StereoTriangulator(*projections())
    for k in range(10):
        unlimited.step(*stereo_tracks(point, np.array([0.5])), k / 30.0)
    left, right = stereo_tracks(point, np.array([0.5]))
    left[0].state = right[0].state = TrackState.OCCLUDED
    assert unlimited.step(left, right, 129 / 30.0)  # 0: no limit


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



# --- partial occlusion: where to search, what to trust ------------------------------------------------------

def _board_frames(offsets: list[np.ndarray], cfg: TriangulatorConfig) -> tuple[list, StereoTriangulator]:
    """Run a triangulator on a board resting at (0.1, 0, 3) m for one frame per offsets entry
    ((2, 2) px box offsets per view, the filtered and raw boxes alike); returns the outputs."""
    centre = np.array([0.1, 0.0, 3.0])
    images = render_stereo(centre, board_texture(4))
    tri = StereoTriangulator(*projections(), cfg)
    outs = []
    for k, offset in enumerate(offsets):
        left, right = board_tracks(centre, offset)
        with_measurements(left, np.zeros((1, 2)))
        with_measurements(right, np.zeros((1, 2)))
        outs.append(tri.step(left, right, k / 30.0, images=images)[0])
    return outs, tri


def test_the_image_disparity_is_searched_where_the_3d_filter_expects_it():
    """A partial occlusion puts the boxes' disparity 6 px off (each view boxes another part of the
    object), beyond a 2.5 px search around it; the 3D filter's predicted disparity still finds the
    template match."""
    cfg = TriangulatorConfig(refine_search_px=2.5, disparity_method="ncc")
    good, biased = np.zeros((2, 2)), np.array([[0.0, 0.0], [-6.0, 0.0]])
    outs, tri = _board_frames([good] * 5 + [biased] * 5, cfg)
    assert tri.last_details.source[0] == DisparitySource.NCC
    assert abs(outs[-1].position[2] - 3.0) < 0.01
    fresh = StereoTriangulator(*projections(), cfg)  # no filter yet: nothing but the boxes to search around
    left, right = board_tracks(np.array([0.1, 0.0, 3.0]), biased)
    fresh.step(left, right, 0.0, images=render_stereo(np.array([0.1, 0.0, 3.0]), board_texture(4)))
    assert fresh.last_details.source[0] == DisparitySource.NONE


@pytest.mark.parametrize("box_depth", [False, True])
def test_an_unmatched_visible_pair_updates_only_its_bearing(box_depth):
    """Images given, yet no method matches (the right view shows something else): the box centres'
    depth (1.5 px of disparity, 0.24 m, short) moves the filter only with box_depth_without_match; by
    default the left box's bearing alone is taken, which moves the point sideways, not in depth."""
    centre = np.array([0.1, 0.0, 3.0])
    cfg = TriangulatorConfig(box_depth_without_match=box_depth, detection_std_px=0.5, detection_std_frac=0.0)
    blank = render_stereo(centre, board_texture(2), right_board=np.full_like(board_texture(2), 128.0))
    tri = StereoTriangulator(*projections(), cfg)
    tri.step(*board_tracks(centre, np.zeros((2, 2))), 0.0)
    (out,) = tri.step(*board_tracks(centre, np.array([[0.0, 0.0], [1.5, 0.0]])), 1 / 30.0, images=blank)
    assert tri.last_details.source[0] == DisparitySource.NONE and tri.last_details.measured[0] == box_depth
    for mask in (tri.last_details.measured, tri.last_details.fused, tri.last_details.precise):
        assert mask.dtype == bool  # (not int64 from ~ on a Python bool)
    if box_depth:
        assert out.position[2] > 3.08
    else:
        assert abs(out.position[2] - 3.0) < 1e-3
        z_before = out.position[2]
        for k in range(2, 8):  # the left box 3 px aside, frame after frame: sideways only, never in depth
            (aside,) = tri.step(*board_tracks(centre, np.array([[3.0, 0.0], [1.5, 0.0]])), k / 30.0, images=blank)
            assert abs(aside.position[2] - z_before) < 1e-9
        assert aside.position[0] > 0.1 + 0.8 * 3.0 * 3.0 / FX  # onto the left box's ray, 3 px aside


def test_a_template_match_restarts_a_filter_no_template_match_has_confirmed():
    """A pair first triangulated from box centres 4 px of disparity off (0.75 m at 3 m) and then
    confirmed by more of them; the first template match lies far outside
    the filter's gate and restarts it at once, where a gated-out box-centre point would wait for
    max_rejected_updates more."""
    centre = np.array([0.1, 0.0, 3.0])
    cfg = TriangulatorConfig(detection_std_px=0.5, detection_std_frac=0.0, max_rejected_updates=5, refine_search_px=8.0)
    tri = StereoTriangulator(*projections(), cfg)
    off = np.array([[0.0, 0.0], [4.0, 0.0]])
    for k in range(5):
        (out,) = tri.step(*board_tracks(centre, off), k / 30.0)
    assert out.position[2] > 3.5
    (out,) = tri.step(*board_tracks(centre, off), 5 / 30.0, images=render_stereo(centre, board_texture(4)))
    assert tri.last_details.source[0] == DisparitySource.NCC and tri.last_details.fused[0]
    assert abs(out.position[2] - 3.0) < 0.01
    # A confirmed filter does gate out a far template match (an occluder's texture matched instead).
    near = render_stereo(centre * np.array([1.0, 1.0, 0.8]), board_texture(4))
    left, right = board_tracks(centre * np.array([1.0, 1.0, 0.8]), np.zeros((2, 2)))
    (out,) = tri.step(left, right, 6 / 30.0, images=near)
    assert tri.last_details.source[0] == DisparitySource.NCC and not tri.last_details.fused[0]
    assert abs(out.position[2] - 3.0) < 0.01


def test_only_a_tight_template_match_restarts_an_unconfirmed_filter():
    """The same far-off filter as above, met by a template match under disparity_method ncc whose
    cells disagree by more than refine_max_spread_px: not a precise answer, so it does not restart
    the filter at once (the validation gate skips it)."""
    centre = np.array([0.1, 0.0, 3.0])
    cfg = TriangulatorConfig(detection_std_px=0.5, detection_std_frac=0.0, max_rejected_updates=5, refine_search_px=8.0,
                             disparity_method="ncc", refine_max_spread_px=1e-3)  # the board's cells spread 0.01 px
    tri = StereoTriangulator(*projections(), cfg)
    off = np.array([[0.0, 0.0], [4.0, 0.0]])
    for k in range(5):
        tri.step(*board_tracks(centre, off), k / 30.0)
    (out,) = tri.step(*board_tracks(centre, off), 5 / 30.0, images=render_stereo(centre, board_texture(4)))
    d = tri.last_details
    assert d.source[0] == DisparitySource.NCC and d.measured[0] and not d.precise[0] and not d.fused[0]
    assert out.position[2] > 3.5  # gated out: still the box centres' depth


@pytest.mark.parametrize("first", ["unmatched", "ghost"])
def test_a_pair_starts_no_3d_track_before_a_measured_triangulation(first):
    """A pair first seen with views the images do not match (the right view shows something else:
    often two different objects paired, or the box centres of a partly hidden object, here 4 px of
    disparity off, 0.75 m at 3 m), or first seen as a ghost, has no 3D track: none is published
    until a measured triangulation starts it, at the measured depth."""
    centre = np.array([0.1, 0.0, 3.0])
    cfg = TriangulatorConfig(detection_std_px=0.5, detection_std_frac=0.0, refine_search_px=8.0)
    tri = StereoTriangulator(*projections(), cfg)
    off = np.array([[0.0, 0.0], [4.0, 0.0]])
    if first == "unmatched":
        blank = render_stereo(centre, board_texture(4), right_board=np.full_like(board_texture(4), 128.0))
        assert tri.step(*board_tracks(centre, off), 0.0, images=blank) == []
        assert tri.last_details.source[0] == DisparitySource.NONE and not tri.last_details.measured[0]
    else:
        assert tri.step(*board_tracks(centre, off, state=TrackState.OCCLUDED), 0.0) == []
    (out,) = tri.step(*board_tracks(centre, off), 1 / 30.0, images=render_stereo(centre, board_texture(4)))
    assert tri.last_details.source[0] == DisparitySource.NCC and tri.last_details.fused[0]
    assert abs(out.position[2] - 3.0) < 0.01


def test_confirm_new_tracks_publishes_once_two_measurements_agree():
    """confirm_new_tracks: a pair measured once (box centres, not precise) is not published; a
    second measurement inside the gate publishes it. A second one far off (the first 8 px of
    disparity off, 0.86 m short at 3 m: the outlier) restarts it unpublished, and the next agreeing one
    publishes it there. A pair that goes LOST before it is confirmed is dropped unpublished."""
    centre = np.array([0.1, 0.0, 3.0])
    cfg = TriangulatorConfig(detection_std_px=0.5, detection_std_frac=0.0, confirm_new_tracks=True)
    tri = StereoTriangulator(*projections(), cfg)
    on, off = np.zeros((2, 2)), np.array([[0.0, 0.0], [-8.0, 0.0]])
    assert tri.step(*board_tracks(centre, off), 0.0) == []  # measured once: held
    assert tri.last_details.fused[0]
    assert tri.step(*board_tracks(centre, on), 1 / 30.0) == []  # far from the first: restarted, held
    (out,) = tri.step(*board_tracks(centre, on), 2 / 30.0)  # agrees with the restart: published
    assert abs(out.position[2] - 3.0) < 0.02
    (again,) = tri.step(*board_tracks(centre, on), 3 / 30.0)
    assert again.track_id == out.track_id
    fresh = StereoTriangulator(*projections(), cfg)
    assert fresh.step(*board_tracks(centre, on), 0.0) == []
    assert fresh.step(*board_tracks(centre, on, state=TrackState.LOST), 1 / 30.0) == []
    assert fresh.step(*board_tracks(centre, on), 2 / 30.0) == []  # forgotten: a new pair, held again


def test_confirm_new_tracks_holds_even_a_precise_match_until_a_second_agrees():
    """A held pair met by a precise template match outside its gate (the first measurement 8 px
    off) is restarted there, still held (a tight match can latch onto an occluder too); the next
    agreeing one publishes it, its trail without the replaced start. A pair confirmed by a precise
    match is anchored: a later far template match (an occluder's texture) is gated out, not taken
    as a restart. A precise start alone is held too."""
    centre = np.array([0.1, 0.0, 3.0])
    cfg = TriangulatorConfig(detection_std_px=0.5, detection_std_frac=0.0, refine_search_px=8.0,
                             confirm_new_tracks=True)
    images = render_stereo(centre, board_texture(4))
    tri = StereoTriangulator(*projections(), cfg)
    assert tri.step(*board_tracks(centre, np.array([[0.0, 0.0], [-8.0, 0.0]])), 0.0) == []
    assert tri.step(*board_tracks(centre, np.zeros((2, 2))), 1 / 30.0, images=images) == []
    assert tri.last_details.precise[0] and tri.last_details.fused[0]
    (out,) = tri.step(*board_tracks(centre, np.zeros((2, 2))), 2 / 30.0, images=images)
    assert abs(out.position[2] - 3.0) < 0.01 and len(out.trail) == 2
    near = centre * np.array([1.0, 1.0, 0.8])
    (out,) = tri.step(*board_tracks(near, np.zeros((2, 2))), 3 / 30.0, images=render_stereo(near, board_texture(4)))
    assert tri.last_details.precise[0] and not tri.last_details.fused[0]
    assert abs(out.position[2] - 3.0) < 0.01
    fresh = StereoTriangulator(*projections(), cfg)
    assert fresh.step(*board_tracks(centre, np.zeros((2, 2))), 0.0, images=images) == []
    assert fresh.last_details.precise[0]


def test_confirm_new_tracks_needs_the_second_measurement_soon_and_not_lost():
    """A second agreeing measurement after CONFIRM_WINDOW_S (the pair a ghost meanwhile, its gate
    grown) restarts the held pair instead of confirming it; with update_from_ghosts a LOST frame
    does not publish a pair never shown."""
    centre = np.array([0.1, 0.0, 3.0])
    cfg = TriangulatorConfig(detection_std_px=0.5, detection_std_frac=0.0, confirm_new_tracks=True)
    on = np.zeros((2, 2))
    tri = StereoTriangulator(*projections(), cfg)
    assert tri.step(*board_tracks(centre, on), 0.0) == []
    for k in range(1, 12):  # 0.37 s a ghost: predicted, not measured
        assert tri.step(*board_tracks(centre, on, state=TrackState.OCCLUDED), k / 30.0) == []
    assert tri.step(*board_tracks(centre, on), 12 / 30.0) == []  # too late to confirm: a new start
    (out,) = tri.step(*board_tracks(centre, on), 13 / 30.0)
    assert abs(out.position[2] - 3.0) < 0.02
    ghosts = StereoTriangulator(*projections(), TriangulatorConfig(confirm_new_tracks=True, update_from_ghosts=True))
    assert ghosts.step(*board_tracks(centre, on), 0.0) == []
    assert ghosts.step(*board_tracks(centre, on, state=TrackState.LOST), 1 / 30.0) == []


def test_step_details_describe_the_frames_pairs():
    centre = np.array([0.1, 0.0, 3.0])
    tri = StereoTriangulator(*projections())
    assert len(tri.last_details.left_ids) == 0
    left, right = board_tracks(centre, np.zeros((2, 2)))
    tri.step(left, right, 0.0, images=render_stereo(centre, board_texture(4)))
    d = tri.last_details
    assert d.left_ids.tolist() == [1] and d.right_ids.tolist() == [101]
    assert d.source[0] == DisparitySource.NCC and d.precise[0] and d.measured[0] and d.fused[0]
    assert abs(d.disparity[0] - FX * B / 3.0) < 0.05  # d = fx B / Z
    np.testing.assert_allclose(d.positions[0], centre, atol=0.01)
    tri.step([], right, 1 / 30.0)
    assert len(tri.last_details.left_ids) == 0


def test_occluders_are_the_nearer_visible_boxes_over_a_box():
    boxes = np.array([[100.0, 100.0, 40.0, 40.0],    # far (shift 14)
                      [125.0, 100.0, 30.0, 60.0],    # nearer (30), overlapping the first on the right
                      [300.0, 100.0, 40.0, 40.0],    # nearer still, elsewhere
                      [95.0, 95.0, 10.0, 10.0]])     # nearer, over the first, but a ghost
    shift = np.array([14.0, 30.0, 40.0, np.nan])
    visible = np.array([True, True, True, False])
    out = _occluders(boxes, shift, visible, pad_px=3.0)
    # x0, y0, x1, y1 of the second box, grown by 3 px, and on the left by 30 - 14 px: in the right
    # view the nearer box hides that much more of the farther one
    np.testing.assert_allclose(out[0], [[110.0 - 3.0 - 16.0, 67.0, 143.0, 133.0]])
    assert [len(o) for o in out] == [1, 0, 0, 0]  # nothing is in front of a nearer box; NaN orders nothing
    assert len(_occluders(boxes, np.array([14.0, 14.5, 40.0, 1.0]), visible, 3.0)[0]) == 0  # within the margin
