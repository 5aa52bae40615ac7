"""Tests of the ghost-onset correction (core/ghost_onset.py) and its use by the world model."""
from __future__ import annotations

import numpy as np
import pytest

from object_permanence.core.box_filter_bank import BatchedBoxKalman, FilterList
from object_permanence.core.eval.matching import box_iou
from object_permanence.core.ghost_onset import TRUNCATED_FRAC, SteadySize, hidden_side, onset_correction
from object_permanence.core.imm import ImmBoxBank
from object_permanence.core.kalman import BoxKalmanFilter, BoxKalmanParams
from object_permanence.core.types import Detection, TrackState
from object_permanence.core.world_model import WorldModel, WorldModelConfig

FPS = 30.0


def state(cx: float, w: float, v_c: float, v_w: float, cy: float = 200.0, h: float = 100.0) -> np.ndarray:
    """(1, 8) state moving along x only."""
    return np.array([[cx, cy, w, h, v_c, 0.0, v_w, 0.0]])


def test_a_box_sliding_behind_an_occluder_moves_on_with_its_trailing_edge_at_full_size() -> None:
    # object 60 px wide moving right at 100 px/s behind an occluder: its right edge stopped, the
    # box (20 px left) shrinks at 100 px/s and its centre moves at 50 px/s
    x = state(cx=290.0, w=20.0, v_c=50.0, v_w=-100.0)
    new = x + onset_correction(x, np.array([[60.0, 100.0]]))
    assert new[0, 4] == pytest.approx(100.0)  # the trailing (left) edge's velocity
    assert new[0, 6] == pytest.approx(0.0)  # the size stops shrinking
    assert new[0, 2] == pytest.approx(60.0)  # the steady width
    assert new[0, 0] - new[0, 2] / 2 == pytest.approx(x[0, 0] - x[0, 2] / 2)  # the trailing edge stays
    np.testing.assert_allclose(new[0, [1, 3, 5, 7]], x[0, [1, 3, 5, 7]])  # the y axis is untouched


def test_moving_left_the_box_grows_to_the_left() -> None:
    x = state(cx=410.0, w=20.0, v_c=-50.0, v_w=-100.0)
    new = x + onset_correction(x, np.array([[60.0, 100.0]]))
    assert new[0, 4] == pytest.approx(-100.0)
    assert new[0, 0] + new[0, 2] / 2 == pytest.approx(x[0, 0] + x[0, 2] / 2)  # the right edge stays


def test_a_symmetric_shrink_or_a_growing_box_keeps_its_centre_velocity() -> None:
    # a box closing in from both sides (a receding object, centre nearly still), a growing one
    steady = np.array([[40.0, 100.0], [40.0, 100.0], [40.0, 100.0]])
    x = np.concatenate([state(cx=300.0, w=40.0, v_c=0.0, v_w=-30.0), state(cx=300.0, w=40.0, v_c=5.0, v_w=-40.0),
                        state(cx=300.0, w=40.0, v_c=20.0, v_w=10.0)])
    dx = onset_correction(x, steady)
    np.testing.assert_allclose(dx[:, 4], 0.0)
    np.testing.assert_allclose(dx[:, 6], -x[:, 6])  # only the size velocity stops
    np.testing.assert_allclose(dx[:, :4], 0.0)  # full-size boxes are not moved


def test_a_box_above_the_truncation_fraction_keeps_its_size() -> None:
    w = 60.0 * TRUNCATED_FRAC + 1.0
    x = state(cx=300.0, w=w, v_c=50.0, v_w=-100.0)
    dx = onset_correction(x, np.array([[60.0, 100.0]]))
    np.testing.assert_allclose(dx[0, :4], 0.0)


def test_a_restored_box_ends_at_the_image_border() -> None:
    # leaving through the right border (640): the grown box would reach 650, it stops at 640
    x = state(cx=620.0, w=20.0, v_c=50.0, v_w=-100.0)
    new = x + onset_correction(x, np.array([[60.0, 100.0]]), image_size=(640, 480))
    assert new[0, 0] - new[0, 2] / 2 == pytest.approx(610.0)
    assert new[0, 0] + new[0, 2] / 2 == pytest.approx(640.0)


def test_a_box_cut_by_the_image_border_only_stops_shrinking() -> None:
    # an object leaving through the right border: its box [628, 640] is cut by the image
    x = state(cx=634.0, w=12.0, v_c=50.0, v_w=-100.0)
    dx = onset_correction(x, np.array([[60.0, 100.0]]), image_size=(640, 480))
    np.testing.assert_allclose(dx[0, [0, 1, 2, 3, 4, 5, 7]], 0.0)
    assert dx[0, 6] == pytest.approx(100.0)  # v_w' = 0
    # the same box with the image size unknown is corrected
    assert onset_correction(x, np.array([[60.0, 100.0]]))[0, 4] == pytest.approx(50.0)


def test_steady_size_holds_through_a_shrink_and_follows_a_slow_change() -> None:
    s = SteadySize()
    s.append(np.array([[0.0, 0.0, 60.0, 100.0], [0.0, 0.0, 60.0, 100.0]]))
    for k in range(20):  # row 0 slides behind something (3 px a frame); row 1 comes nearer (0.5 %)
        s.update(np.array([0, 1]), np.array([[0.0, 0.0, 60.0 - 3.0 * k, 100.0],
                                             [0.0, 0.0, 60.0 * 1.005 ** k, 100.0 * 1.005 ** k]]))
    assert s.sizes[0, 0] > 0.9 * 60.0
    assert s.sizes[1, 0] > 60.0 * 1.005 ** 10
    s.select(np.array([1]))
    s.restart(np.array([0]), np.array([[0.0, 0.0, 10.0, 20.0]]))
    np.testing.assert_allclose(s.sizes, [[10.0, 20.0]])


@pytest.mark.parametrize("bank", [BatchedBoxKalman(BoxKalmanParams()), FilterList(BoxKalmanFilter, BoxKalmanParams())],
                         ids=["batched", "filterpy"])
def test_shift_moves_the_state_and_keeps_the_covariance(bank) -> None:
    bank.append(np.array([[100.0, 100.0, 40.0, 80.0], [300.0, 200.0, 50.0, 90.0]]))
    bank.predict(0.1)
    bank.update(np.array([0, 1]), np.array([[103.0, 101.0, 40.0, 80.0], [298.0, 200.0, 48.0, 90.0]]))
    x0 = bank.x
    cov0 = bank.box_covariances
    dx = np.array([[5.0, 0.0, 10.0, 0.0, 20.0, 0.0, -1.0, 0.0]])
    bank.shift(np.array([1]), dx)
    np.testing.assert_allclose(bank.x, x0 + np.concatenate([np.zeros((1, 8)), dx]))
    np.testing.assert_allclose(bank.box_covariances, cov0)
    np.testing.assert_allclose(bank.steady_sizes, [[40.0, 80.0], [49.8, 90.0]])


@pytest.mark.parametrize("bank", [BatchedBoxKalman(BoxKalmanParams()), FilterList(BoxKalmanFilter, BoxKalmanParams()),
                                  ImmBoxBank(BoxKalmanParams())], ids=["batched", "filterpy", "imm"])
def test_every_bank_keeps_the_steady_sizes_of_its_rows(bank) -> None:
    """The gallery and the re-identification read ``steady_sizes`` from whichever bank runs."""
    bank.append(np.array([[100.0, 100.0, 40.0, 80.0], [300.0, 200.0, 50.0, 90.0]]))
    bank.predict(0.1)
    bank.update(np.array([0, 1]), np.array([[103.0, 101.0, 40.0, 40.0], [298.0, 200.0, 60.0, 90.0]]))
    np.testing.assert_allclose(bank.steady_sizes, [[40.0, 80.0], [51.0, 90.0]])  # 40 < 0.85 * 80: held
    bank.reinitialize(np.array([1]), np.array([[10.0, 10.0, 20.0, 30.0]]), np.zeros((1, 2)))
    bank.select(np.array([1]))
    np.testing.assert_allclose(bank.steady_sizes, [[20.0, 30.0]])


def _slide_behind_occluder(filter_factory) -> tuple[list[float], int]:
    """An object 60 x 100 px moving right at 90 px/s passes behind an occluder over x in [300, 400];
    the detector boxes its visible part (when at least 6 px wide). Returns the IoU of the ghost's
    box with the object's full box in each hidden frame and the number of hidden frames (without
    the correction the ghost is a sliver that shrinks to nothing at the occluder's edge: IoU 0)."""
    wm = WorldModel(WorldModelConfig(), filter_factory=filter_factory)
    ious, hidden = [], 0
    for k in range(150):
        lo = 100.0 + 3.0 * k  # left edge; the object spans [lo, lo + 60]
        hi = lo + 60.0
        vis_lo, vis_hi = (lo, min(hi, 300.0)) if lo < 300.0 else (max(lo, 400.0), hi)
        seen = vis_hi - vis_lo >= 6.0
        dets = [Detection(box=np.array([(vis_lo + vis_hi) / 2, 240.0, vis_hi - vis_lo, 100.0]), score=0.9,
                          class_id=0, class_name="thing")] if seen else []
        r = wm.step(k / FPS, dets, image_size=(640, 480))
        truth = np.array([[lo + 30.0, 240.0, 60.0, 100.0]])
        ghosts = [t for t in r.tracks if t.state == TrackState.OCCLUDED]
        if not seen and lo > 250.0:
            hidden += 1
            ious += [float(box_iou(np.asarray(g.box, float)[None], truth)[0, 0]) for g in ghosts]
    return ious, hidden


@pytest.mark.parametrize("filter_factory", [None, BoxKalmanFilter], ids=["batched", "filterpy"])
def test_the_ghost_of_an_object_slid_behind_an_occluder_stays_on_it(filter_factory) -> None:
    ious, hidden = _slide_behind_occluder(filter_factory)
    assert hidden > 10
    assert len(ious) == hidden  # one ghost in every hidden frame
    assert min(ious) >= 0.5, np.round(ious, 2)


def test_hidden_side_is_the_edge_a_visible_box_reaches() -> None:
    box = np.array([[200.0, 240.0, 20.0, 100.0]])  # a 20 px sliver of a 60 px object, x in [190, 210]
    steady = np.array([[60.0, 100.0]])
    in_front_right = np.array([[252.0, 245.0, 80.0, 110.0]])  # x from 212: against the right edge
    np.testing.assert_array_equal(hidden_side(box, steady, in_front_right), [[1.0, 0.0]])
    in_front_left = np.array([[150.0, 240.0, 80.0, 100.0]])  # x up to 190
    np.testing.assert_array_equal(hidden_side(box, steady, in_front_left), [[-1.0, 0.0]])
    off_right = np.array([[265.0, 240.0, 40.0, 100.0]])  # x from 245: 35 px off, beyond the 15 px strip
    lagging = np.array([[222.0, 240.0, 40.0, 100.0]])  # x from 202: 8 px into the box (a predicted box lags)
    np.testing.assert_array_equal(hidden_side(box, steady, lagging), [[1.0, 0.0]])
    over_the_sliver = np.array([[212.0, 240.0, 40.0, 100.0]])  # x from 192: 18 px > 15 into it, behind it
    short = np.array([[230.0, 200.0, 40.0, 20.0]])  # against the edge, over 20 % of the box's height only
    for visible in (off_right, over_the_sliver, short, np.zeros((0, 4))):
        np.testing.assert_array_equal(hidden_side(box, steady, visible), [[0.0, 0.0]])


def test_a_known_occluder_side_picks_the_edge_in_view_and_grows_the_box_behind_it() -> None:
    # moving left at 40 px/s, overtaken by something faster on its right: the right edge moves with
    # the occluder (-100 px/s, the faster one), the left edge with the object (-40 px/s)
    x = state(cx=200.0, w=20.0, v_c=-70.0, v_w=-60.0)
    new = x + onset_correction(x, np.array([[60.0, 100.0]]), hidden=np.array([[1.0, 0.0]]))
    assert new[0, 4] == pytest.approx(-40.0)  # the left edge's, not the faster right edge's
    assert new[0, 0] - new[0, 2] / 2 == pytest.approx(x[0, 0] - x[0, 2] / 2)  # the left edge stays
    assert new[0, 2] == pytest.approx(60.0)  # grown to the right, behind the occluder
    unknown = x + onset_correction(x, np.array([[60.0, 100.0]]))
    assert unknown[0, 4] == pytest.approx(-100.0)  # a static occluder is assumed without one


def _ghost_errors_behind(filter_factory, seed: int, a_start: float, a_speed: float, b_speed: float,
                         frames: int) -> list[float]:
    """Object A (60 px wide, left edge at ``a_start``, ``a_speed`` px/s) and, in front of it, object B
    (80 px, tracked, ``b_speed`` px/s; its left edge 20 px right of A's right edge at the start,
    B closing in on A); the detector boxes A's visible part (left of B, when at least 6 px wide).
    Returns, per frame in which A is hidden and B still covers all of it, the distance (px) of A's
    ghost's centre from A's true centre."""
    rng = np.random.default_rng(seed)
    look_a, look_b = rng.random(16), rng.random(16)
    wm = WorldModel(WorldModelConfig(), filter_factory=filter_factory)
    errors = []
    for k in range(frames):
        a_lo = a_start + a_speed * k / FPS
        b_lo = a_lo + 80.0 + (b_speed - a_speed) * k / FPS
        vis_hi = min(a_lo + 60.0, b_lo)
        dets = [Detection(box=np.array([b_lo + 40.0, 240.0, 80.0, 100.0]), score=0.9, class_id=0,
                          class_name="thing", embedding=look_b)]
        if vis_hi - a_lo >= 6.0:
            dets.append(Detection(box=np.array([(a_lo + vis_hi) / 2, 240.0, vis_hi - a_lo, 100.0]), score=0.9,
                                  class_id=0, class_name="thing", embedding=look_a))
        r = wm.step(k / FPS, dets, image_size=(640, 480))
        ghosts = [t for t in r.tracks if t.state == TrackState.OCCLUDED]
        if len(dets) == 1 and ghosts and b_lo + 80.0 > a_lo + 60.0:
            errors.append(abs(ghosts[0].box[0] - (a_lo + 30.0)))
    return errors


@pytest.mark.parametrize("filter_factory", [None, BoxKalmanFilter], ids=["batched", "filterpy"])
def test_the_ghost_of_an_object_overtaken_by_its_occluder_stays_on_it(filter_factory) -> None:
    """A moves left at 40 px/s, overtaken in front by B at 100 px/s. Once A is hidden, its ghost
    stays on A's full box: the edge in view is A's left one (the one away from B), not the faster
    right one, which moves with B."""
    errors = _ghost_errors_behind(filter_factory, 3, a_start=300.0, a_speed=-40.0, b_speed=-100.0, frames=120)
    assert len(errors) >= 10
    assert max(errors) < 8.0, np.round(errors, 1)


@pytest.mark.parametrize("filter_factory", [None, BoxKalmanFilter], ids=["batched", "filterpy"])
def test_the_ghost_of_an_object_crossing_behind_an_oncoming_one_stays_on_it(filter_factory) -> None:
    """Head on: A moves right at 40 px/s behind B moving left at 100 px/s. A's visible part shrinks
    from its right edge, which moves with B while the left one moves with A: the predicted box lags
    into B by several pixels at the onset, and the centre moves slower than the shrink, yet B is the
    occluder: the ghost follows A's left edge."""
    errors = _ghost_errors_behind(filter_factory, 4, a_start=200.0, a_speed=40.0, b_speed=-100.0, frames=60)
    assert len(errors) >= 5
    assert max(errors) < 4.0, np.round(errors, 1)  # the static rule: 11 px
