"""Tests of the published box of matched tracks (core/extent_gain.py) and its use in the world model."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from object_permanence.core.extent_gain import N_AXES, WHOLE_TOLERANCE, ExtentGain
from object_permanence.core.kalman import BoxKalmanFilter, BoxKalmanParams
from object_permanence.core.types import Detection, TrackState
from object_permanence.core.world_model import WorldModel, WorldModelConfig

FPS = 25.0


def feed(gain: ExtentGain, innovations: np.ndarray) -> None:
    """innovations (frames, tracks, 4): one observe per frame, every track eligible."""
    ids = np.arange(1, innovations.shape[1] + 1, dtype=np.uint64)
    for e in innovations:
        gain.observe(ids, e, np.ones(ids.size, bool))


@pytest.mark.parametrize("rate", [-0.1, math.nan, math.inf, True, "0.5"])
def test_rate_must_be_a_finite_number_not_below_zero(rate) -> None:
    with pytest.raises(ValueError, match="rate"):
        ExtentGain(rate)
    with pytest.raises(ValueError, match="extent_gain_rate"):
        WorldModelConfig(extent_gain_rate=rate)


def test_the_rate_is_the_only_constructor_argument() -> None:
    """The estimator's state (log medians, the previous frame's pairs) starts from no evidence:
    it cannot be passed in, and two gains never share it."""
    assert [f.name for f in dataclasses.fields(ExtentGain) if f.init] == ["rate"]
    assert ExtentGain(rate=0.25).rate == 0.25 and ExtentGain(0.25).rate == 0.25
    for name in ("_log_m", "_prev_ids", "_prev_e"):
        with pytest.raises(TypeError, match=name):
            ExtentGain(0.5, **{name: np.zeros(0)})
    a, b = ExtentGain(rate=0.5), ExtentGain(rate=0.5)
    feed(a, np.full((40, 1, N_AXES), 3.0))  # persistent: the inflation grows
    assert (a.inflation > 1.0).all()
    np.testing.assert_array_equal(b.inflation, np.ones(N_AXES))


def test_a_fresh_gain_publishes_the_posterior() -> None:
    gain = ExtentGain()
    np.testing.assert_array_equal(gain.inflation, np.ones(N_AXES))
    rng = np.random.default_rng(0)
    nu, S = rng.normal(0, 3, (5, N_AXES)), rng.uniform(4, 9, (5, N_AXES))
    np.testing.assert_array_equal(gain.offsets(nu, S, 0.5 * S), np.zeros((5, N_AXES)))


def test_white_innovations_leave_the_gain_near_the_posterior() -> None:
    # Detector noise the filter under-rates (std 1.5 instead of 1) but white: no persistent part.
    gain = ExtentGain(0.5)
    feed(gain, np.random.default_rng(1).normal(0.0, 1.5, (400, 20, N_AXES)))
    # the online medians fluctuate (20 pairs a frame): c stays well below the persistent case's
    assert np.all(gain.inflation < 1.6), gain.inflation


def test_persistent_innovations_raise_the_gain() -> None:
    # e_k = s_k + n_k: s an AR(1) of variance 4 correlated 0.95 from frame to frame, n white of variance 1.
    rng = np.random.default_rng(2)
    frames, tracks, rho = 400, 20, 0.95
    s = np.zeros((frames, tracks, N_AXES))
    s[0] = rng.normal(0.0, 2.0, (tracks, N_AXES))
    for k in range(1, frames):
        s[k] = rho * s[k - 1] + math.sqrt(1 - rho ** 2) * rng.normal(0.0, 2.0, (tracks, N_AXES))
    gain = ExtentGain(0.5)
    feed(gain, s + rng.normal(0.0, 1.0, s.shape))
    # var(s) = 4 S units: c = 1 + 4 up to the lag-1 correlation (0.95) and the tracker's noise
    assert np.all(gain.inflation > 3.0), gain.inflation
    assert np.all(gain.inflation < 7.0), gain.inflation


def test_offsets_move_between_the_posterior_and_the_detection() -> None:
    rng = np.random.default_rng(3)
    gain = ExtentGain(0.5)
    feed(gain, np.repeat(rng.normal(0.0, 3.0, (1, 10, N_AXES)), 200, axis=0) + rng.normal(0.0, 0.3, (200, 10, N_AXES)))
    c = gain.inflation
    assert np.all(c > 1.5)
    nu, S = rng.normal(0.0, 4.0, (50, N_AXES)), rng.uniform(2.0, 20.0, (50, N_AXES))
    R = S * rng.uniform(0.1, 0.9, (50, N_AXES))
    off = gain.offsets(nu, S, R)
    K = 1.0 - R / S
    np.testing.assert_allclose(off, (np.clip(1.0 - R / (c * S), K, 1.0) - K) * nu, rtol=1e-12)
    # posterior + offset = prior + K' nu lies between the posterior (K nu) and the detection (nu)
    assert np.all(off * nu >= 0.0)
    assert np.all(np.abs(off) <= np.abs((1.0 - K) * nu) + 1e-12)


def test_pairs_need_the_same_track_in_consecutive_frames() -> None:
    gain = ExtentGain(0.5)
    rng = np.random.default_rng(4)
    for k in range(100):  # a frame with matches, then one without: never a pair
        e = rng.normal(0.0, 3.0, (5, N_AXES))
        gain.observe(np.arange(5, dtype=np.uint64), e, np.ones(5, bool)) if k % 2 == 0 else \
            gain.observe(np.zeros(0, np.uint64), np.zeros((0, N_AXES)), np.zeros(0, bool))
    np.testing.assert_array_equal(gain.inflation, np.ones(N_AXES))
    for k in range(100):  # new ids every frame: never a pair either
        gain.observe(np.arange(5 * k, 5 * k + 5, dtype=np.uint64), rng.normal(0.0, 3.0, (5, N_AXES)), np.ones(5, bool))
    np.testing.assert_array_equal(gain.inflation, np.ones(N_AXES))
    for _ in range(100):  # not eligible (tentative, re-initialised): not counted
        gain.observe(np.arange(5, dtype=np.uint64), rng.normal(0.0, 3.0, (5, N_AXES)), np.zeros(5, bool))
    np.testing.assert_array_equal(gain.inflation, np.ones(N_AXES))


def walker(k: int) -> np.ndarray:
    """A box walking right at 100 px/s whose centre sways +-4 px and whose width swings +-10 % with
    a 1.8 Hz gait (persistent from frame to frame at 25 fps, not a smooth trend the constant-velocity
    model follows; the width stays within WHOLE_TOLERANCE of its mean: the whole walker is seen)."""
    t = k / FPS
    gait = math.sin(2 * math.pi * 1.8 * t)
    return np.array([100.0 + 100.0 * t + 4.0 * gait, 240.0, 60.0 * (1.0 + 0.1 * gait), 150.0])


@pytest.mark.parametrize("factory", [None, BoxKalmanFilter], ids=["batched", "filterpy"])
def test_world_model_publishes_the_box_a_gait_gives(factory) -> None:
    models = {rate: WorldModel(WorldModelConfig(extent_gain_rate=rate), filter_factory=factory)
              for rate in (0.0, 0.5)}
    errors: dict[float, list[np.ndarray]] = {0.0: [], 0.5: []}
    missed = set(range(60, 63))  # a short dropout: the ghost is the prediction in both models
    for k in range(100):
        truth = walker(k)
        dets = [] if k in missed else [Detection(box=truth.copy(), score=0.9, class_id=0)]
        out = {rate: wm.step(k / FPS, dets, (640, 480)).tracks for rate, wm in models.items()}
        if not out[0.0]:
            continue
        (plain,), (adapted,) = out[0.0], out[0.5]
        assert plain.track_id == adapted.track_id and plain.state == adapted.state
        # the filter state and all the rest are the same: ghost, covariance, measurement
        np.testing.assert_array_equal(adapted.covariance, plain.covariance)
        if adapted.state != TrackState.VISIBLE:
            np.testing.assert_array_equal(adapted.box, plain.box)
            continue
        step = adapted.box - plain.box
        towards = truth - plain.box
        assert np.all(step * towards >= -1e-9) and np.all(np.abs(step) <= np.abs(towards) + 1e-9)
        if k >= 40:
            for rate in models:
                errors[rate].append(np.abs(out[rate][0].box - truth))
    assert len(errors[0.5]) > 40
    adapted_err, plain_err = np.mean(errors[0.5], axis=0), np.mean(errors[0.0], axis=0)
    for axis in (0, 2):  # cx, w: the gait's
        assert adapted_err[axis] < 0.6 * plain_err[axis], (axis, adapted_err, plain_err)


def test_a_partial_box_moves_the_extent_but_not_the_centre() -> None:
    """A box well below the track's steady size bounds the visible part of a partly hidden object:
    its centre is not the object's, so the published centre stays the posterior's."""
    gain = ExtentGain(0.5)
    feed(gain, np.repeat(np.random.default_rng(5).normal(0.0, 3.0, (1, 10, N_AXES)), 200, axis=0))
    assert np.all(gain.inflation > 1.5)
    prior = np.array([[100.0, 100.0, 40.0, 80.0]] * 3)
    steady = np.array([[40.0, 80.0]] * 3)
    scale = np.array([1.0, 1.0 + 0.9 * WHOLE_TOLERANCE, 0.5])  # whole, whole, half hidden
    z = np.column_stack([prior[:, :2] + 6.0, prior[:, 2:] * scale[:, None]])
    S, params = np.full((3, N_AXES), 16.0), BoxKalmanParams()
    out = gain.published_offsets(np.arange(3, dtype=np.uint64), prior, S, params, z, steady,
                                 np.zeros(3, bool), np.zeros(3, bool))
    assert np.all(out[:2, :2] > 0.0)  # toward the detection
    np.testing.assert_array_equal(out[2, :2], 0.0)
    assert np.all(out[2, 2:] < 0.0)  # the extent still follows (a smaller box)


def test_world_model_with_rate_zero_publishes_the_posterior() -> None:
    wm = WorldModel(WorldModelConfig(extent_gain_rate=0.0))
    for k in range(60):
        published = wm.step(k / FPS, [Detection(box=walker(k), score=0.9, class_id=0)]).tracks
        for track, held in zip(published, wm.tracks):
            np.testing.assert_array_equal(track.box, held.box)
