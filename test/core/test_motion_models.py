"""The ghost's motion models (``core/motion_models.py``): each bank against a straightforward
per-track reference to 1e-9, symmetric PSD covariances, variable dt, and the damped model's limit."""
from __future__ import annotations

import functools
import math

import numpy as np
import pytest
from filterpy.common import Q_continuous_white_noise
from filterpy.kalman import KalmanFilter
from scipy.linalg import expm

from object_permanence.core.box_filter_bank import BatchedBoxKalman, FilterList
from object_permanence.core.constant_velocity import constant_velocity_model
from object_permanence.core.damped_velocity import DampedVelocityBank, damped_velocity_model, ou_terms
from object_permanence.core.imm import ImmBoxBank, switch_probability
from object_permanence.core.kalman import BoxKalmanFilter, BoxKalmanParams, accel_std, clamp_size, initial_std, \
    measurement_std
from object_permanence.core.motion_models import BASE_MODELS, MOTION_MODELS, make_bank, register_variant

PARAMS = BoxKalmanParams(measurement_std_frac=0.05, accel_std_frac=0.5, size_accel_std_frac=0.2,
                         init_velocity_std_frac=1.0, min_std_px=1.0)


def _close(a: np.ndarray, b: np.ndarray, tol: float = 1e-9) -> None:
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


def _close_scaled(a: np.ndarray, b: np.ndarray, tol: float = 1e-9) -> None:
    """Equal to ``tol`` relative to each track's largest entry (the round-off of a sum of terms
    that size: an entry near 0 in a matrix of 1e4 px² carries 1e-12 of absolute error per term)."""
    b = np.asarray(b)
    scale = np.abs(b).reshape(b.shape[0], -1).max(axis=1).reshape((-1,) + (1,) * (b.ndim - 1))
    np.testing.assert_allclose(a / np.maximum(scale, 1.0), b / np.maximum(scale, 1.0), rtol=0, atol=tol)


def _scenario(seed: int, n: int = 12, steps: int = 50):
    """Boxes moving on curves, measured on a changing subset at variable dt (0 included); yields
    ``(dt, z, measured_rows, reinit_rows, reinit_velocities)`` per step."""
    rng = np.random.default_rng(seed)
    boxes = np.column_stack([rng.uniform(0, 1000, (n, 2)), rng.uniform(4, 120, (n, 2))])
    vel, acc = rng.normal(0, 80, (n, 4)), rng.normal(0, 40, (n, 4))
    vel[:, 2:] *= 0.1  # sizes drift slowly: away from the w, h clamp (a branch tiny round-off could flip)
    acc[:, 2:] = 0.0
    t = 0.0
    for k in range(steps):
        dt = float(rng.choice([0.0, rng.uniform(0.005, 0.4)]))
        t += dt
        z = boxes + vel * t + 0.5 * acc * t * t + rng.normal(0, 2, (n, 4))  # p = p0 + v t + a t²/2
        z[:, 2:] = np.maximum(z[:, 2:], 2.0)
        rows = np.flatnonzero(rng.random(n) < 0.6)
        reinit = rng.choice(n, 2, replace=False) if k % 13 == 5 else np.zeros(0, int)
        yield dt, z, rows, reinit, rng.normal(0, 30, (reinit.size, 2))


def _initial_boxes(seed: int, n: int = 12) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.uniform(0, 1000, (n, 2)), rng.uniform(4, 120, (n, 2))])


# --- damped velocity -----------------------------------------------------------------------------

def _van_loan(dt: float, tau: float) -> tuple[np.ndarray, np.ndarray]:
    """F and Q of one axis of dp = v dt, dv = -v/tau dt + dW by Van Loan's matrix exponential."""
    A = np.array([[0.0, 1.0], [0.0, -1.0 / tau]])
    G = np.array([[0.0, 0.0], [0.0, 1.0]])  # G W G', W = 1
    C = np.block([[-A, G], [np.zeros((2, 2)), A.T]]) * dt
    E = expm(C)
    F = E[2:, 2:].T
    return F, F @ E[:2, 2:]  # Q = F (E12)


@pytest.mark.parametrize("dt,tau", [(0.033, 1.5), (0.4, 0.3), (2.0, 1.0), (1e-4, 5.0), (0.7, 0.69)])
def test_damped_discretisation_is_exact(dt: float, tau: float) -> None:
    F, Q = damped_velocity_model(dt, 1, tau)
    F_ref, Q_ref = _van_loan(dt, tau)
    _close(F, F_ref, 1e-12)
    np.testing.assert_allclose(Q, Q_ref, rtol=1e-9, atol=1e-18)


def test_damped_model_splits_and_tends_to_constant_velocity() -> None:
    F1, Q1 = damped_velocity_model(0.6, 2, 0.8)
    F3, Q3 = damped_velocity_model(0.2, 2, 0.8)
    F, Q = np.eye(4), np.zeros((4, 4))
    for _ in range(3):  # three steps of T/3 give one step of T
        F, Q = F3 @ F, F3 @ Q @ F3.T + Q3
    _close(F, F1, 1e-12)
    _close(Q, Q1, 1e-12)
    for dt in (1e-3, 0.033, 0.5, 3.0):
        F_d, Q_d = damped_velocity_model(dt, 4, 1e12)
        F_c, Q_c = constant_velocity_model(dt, 4)
        _close(F_d, F_c, 1e-9)
        np.testing.assert_allclose(Q_d, Q_c, rtol=1e-9, atol=1e-15)


def test_damped_bank_matches_a_filterpy_reference() -> None:
    tau = 0.9
    boxes = _initial_boxes(3)
    bank = DampedVelocityBank(PARAMS, time_constant_s=tau)
    ref = FilterList(functools.partial(BoxKalmanFilter, model=functools.partial(damped_velocity_model,
                                                                                time_constant_s=tau)), PARAMS)
    for b in (bank, ref):
        b.append(boxes)
    for dt, z, rows, reinit, v in _scenario(3):
        for b in (bank, ref):
            b.predict(dt)
        _close(bank.boxes, ref.boxes)
        _close(bank.box_covariances, ref.box_covariances)
        _close(bank.mahalanobis_sq(z), ref.mahalanobis_sq(z))
        for b in (bank, ref):
            b.update(rows, z[rows])
            b.reinitialize(reinit, z[reinit], v)
        _close(bank.x, np.array([f.x for f in ref.filters]))
        _close(bank.P, np.array([f.P for f in ref.filters]))
    assert np.any(np.abs(bank.velocities) > 1.0)


def test_damped_bank_reduces_to_constant_velocity() -> None:
    boxes = _initial_boxes(5)
    damped, cv = DampedVelocityBank(PARAMS, time_constant_s=1e12), BatchedBoxKalman(PARAMS)
    for b in (damped, cv):
        b.append(boxes)
    for dt, z, rows, reinit, v in _scenario(5):
        for b in (damped, cv):
            b.predict(dt)
            b.update(rows, z[rows])
            b.reinitialize(reinit, z[reinit], v)
        _close(damped.x, cv.x)
        _close(damped.P, cv.P)


def test_damped_ghost_comes_to_rest() -> None:
    bank = DampedVelocityBank(PARAMS, time_constant_s=0.5)
    bank.append(np.array([[100.0, 100.0, 40.0, 40.0]]))
    bank.reinitialize(np.array([0]), np.array([[100.0, 100.0, 40.0, 40.0]]), np.array([[60.0, 0.0]]))
    for _ in range(300):
        bank.predict(1 / 30)
    # an undamped ghost would be 600 px away; the damped one stops after tau * v = 30 px
    assert bank.boxes[0, 0] == pytest.approx(100.0 + 0.5 * 60.0, abs=1e-6)
    assert abs(bank.velocities[0, 0]) < 1e-6


def test_ou_terms_validate() -> None:
    with pytest.raises(ValueError, match="dt"):
        ou_terms(-1.0, 1.0)
    for tau in (0.0, -1.0, math.inf, math.nan, True):
        with pytest.raises(ValueError, match="time_constant_s"):
            DampedVelocityBank(PARAMS, time_constant_s=tau)


# --- IMM -------------------------------------------------------------------------------------------

class ReferenceImm:
    """One track's CV + CA IMM, written out: two filterpy ``KalmanFilter`` modes, explicit mixing
    loops, matrices built from ``Q_continuous_white_noise``."""

    def __init__(self, box: np.ndarray, params: BoxKalmanParams, jerk: float, switch: float) -> None:
        self.params, self.jerk, self.switch = params, jerk, switch
        self.filters = []
        for _ in range(2):
            f = KalmanFilter(dim_x=10, dim_z=4)
            f.H = np.hstack([np.eye(4), np.zeros((4, 6))])
            self.filters.append(f)
        self.reinitialize(box, np.zeros(2))

    def reinitialize(self, box: np.ndarray, velocity: np.ndarray) -> None:
        std = np.concatenate([initial_std(box[None], self.params)[0],
                              np.maximum(self.params.init_velocity_std_frac * box[2:4], self.params.min_std_px)])
        for f in self.filters:
            f.x = np.concatenate([box, velocity, np.zeros(4)]).reshape(10, 1)
            f.P = np.diag(std ** 2)
        self.mu = np.array([0.5, 0.5])

    @property
    def x(self) -> np.ndarray:
        return sum(m * f.x[:, 0] for m, f in zip(self.mu, self.filters))

    @property
    def P(self) -> np.ndarray:
        x = self.x
        return sum(m * (f.P + np.outer(f.x[:, 0] - x, f.x[:, 0] - x)) for m, f in zip(self.mu, self.filters))

    def _matrices(self, dt: float, box: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        acc = accel_std(box[None], self.params)[0]
        jerk = np.maximum(self.jerk * box[2:4], self.params.min_std_px)
        out = []
        for mode in ("cv", "ca"):
            F, Q = np.zeros((10, 10)), np.zeros((10, 10))
            for axis in range(4):
                if mode == "ca" and axis < 2:
                    idx = [axis, axis + 4, axis + 8]
                    F[np.ix_(idx, idx)] = [[1, dt, dt * dt / 2], [0, 1, dt], [0, 0, 1]]
                    Q[np.ix_(idx, idx)] = Q_continuous_white_noise(3, dt, jerk[axis] ** 2)
                else:
                    idx = [axis, axis + 4]
                    F[np.ix_(idx, idx)] = [[1, dt], [0, 1]]
                    Q[np.ix_(idx, idx)] = Q_continuous_white_noise(2, dt, acc[axis] ** 2)
            out.append((F, Q))
        return out

    def predict(self, dt: float) -> None:
        if dt == 0:
            return
        p = (1 - math.exp(-2 * dt / self.switch)) / 2
        M = np.array([[1 - p, p], [p, 1 - p]])
        cbar = self.mu @ M
        omega = np.array([[M[i, j] * self.mu[i] / cbar[j] for j in range(2)] for i in range(2)])
        mixed = []
        for j in range(2):
            x0 = sum(omega[i, j] * self.filters[i].x for i in range(2))
            P0 = sum(omega[i, j] * (self.filters[i].P + (self.filters[i].x - x0) @ (self.filters[i].x - x0).T)
                     for i in range(2))
            mixed.append((x0, P0))
        for f, (x0, P0), (F, Q) in zip(self.filters, mixed, self._matrices(dt, self.x[:4])):
            f.x, f.P, f.F, f.Q = x0, P0, F, Q
            f.predict()
            clamp_size(f.x.reshape(1, 10), self.params)
        self.mu = cbar

    def update(self, z: np.ndarray) -> None:
        R = np.diag(measurement_std(self.x[None, :4], self.params)[0] ** 2)
        ll = []
        for f in self.filters:
            f.R = R
            f.update(z.reshape(4, 1))
            ll.append(f.log_likelihood)
        w = self.mu * np.exp(np.array(ll) - max(ll))
        self.mu = w / w.sum()


def test_imm_bank_matches_the_reference_imm() -> None:
    jerk, switch = 0.8, 1.3
    boxes = _initial_boxes(11)
    bank = ImmBoxBank(PARAMS, jerk_std_frac=jerk, switch_time_s=switch)
    bank.append(boxes)
    refs = [ReferenceImm(b, PARAMS, jerk, switch) for b in boxes]
    # 20 steps: over longer runs of this harsh scenario (dt up to 0.4 s, repeated updates at dt = 0)
    # the IMM itself amplifies a 1e-13 perturbation of its input beyond 1e-9 (the likelihoods feed
    # back into the mixing), so two exact implementations drift apart by round-off alone
    for dt, z, rows, reinit, v in _scenario(11, steps=20):
        bank.predict(dt)
        for r in refs:
            r.predict(dt)
        _close_scaled(bank.mode_states, np.array([[f.x[:, 0] for f in r.filters] for r in refs]))
        _close_scaled(bank.mode_covariances, np.array([[f.P for f in r.filters] for r in refs]))
        _close_scaled(bank.mode_probabilities, np.array([r.mu for r in refs]))
        _close_scaled(bank.boxes, np.array([r.x[:4] for r in refs]))
        _close_scaled(bank.velocities, np.array([r.x[4:6] for r in refs]))
        _close_scaled(bank.box_covariances, np.array([r.P[:4, :4] for r in refs]))
        S = [r.P[:4, :4] + np.diag(measurement_std(r.x[None, :4], PARAMS)[0] ** 2) for r in refs]
        d2 = np.array([[(zj - r.x[:4]) @ np.linalg.solve(Si, zj - r.x[:4]) for zj in z] for r, Si in zip(refs, S)])
        _close_scaled(bank.mahalanobis_sq(z), d2)
        bank.update(rows, z[rows])
        for i in rows:
            refs[i].update(z[i])
        bank.reinitialize(reinit, z[reinit], v)
        for i, vi in zip(reinit, v):
            refs[i].reinitialize(z[i], vi)
        _close_scaled(bank.mode_probabilities, np.array([r.mu for r in refs]))
        _close_scaled(bank.x, np.array([r.x for r in refs]))
        _close_scaled(bank.P, np.array([r.P for r in refs]))
    mu = bank.mode_probabilities
    assert np.all(np.abs(mu - 0.5) > 1e-3)  # the likelihoods moved the mode probabilities


def test_imm_prefers_the_mode_that_fits() -> None:
    """An accelerating box ends with most weight on CA, a steady one on CV."""
    bank = ImmBoxBank(BoxKalmanParams(), jerk_std_frac=0.5, switch_time_s=2.0)
    bank.append(np.array([[100.0, 100.0, 40.0, 40.0], [100.0, 300.0, 40.0, 40.0]]))
    for k in range(1, 60):
        t = k / 30
        bank.predict(1 / 30)
        bank.update(np.arange(2), np.array([[100 + 30 * t + 150 * t * t, 100, 40, 40],
                                            [100 + 60 * t, 300, 40, 40]]))
    mu = bank.mode_probabilities
    assert mu[0, 1] > 0.8 and mu[1, 0] > 0.6 > mu[0, 0]
    assert switch_probability(0.0, 2.0) == 0.0 and switch_probability(1e9, 2.0) == pytest.approx(0.5)


def test_imm_validates() -> None:
    for kwargs in ({"jerk_std_frac": 0.0}, {"switch_time_s": -1.0}, {"switch_time_s": math.nan}):
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            ImmBoxBank(PARAMS, **kwargs)


# --- every model -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", BASE_MODELS)
def test_covariances_stay_symmetric_positive_definite(name: str) -> None:
    bank = make_bank(name, PARAMS)
    bank.append(_initial_boxes(21))
    for dt, z, rows, reinit, v in _scenario(21, steps=80):
        bank.predict(dt)
        bank.update(rows, z[rows])
        bank.reinitialize(reinit, z[reinit], v)
        P = bank.P
        scale = np.abs(P).max(axis=(1, 2))[:, None, None]
        _close(P / scale, P.transpose(0, 2, 1) / scale, 1e-10)
        assert np.all(np.linalg.eigvalsh(0.5 * (P + P.transpose(0, 2, 1))) > -1e-9 * scale[:, :, 0])
        cov = bank.box_covariances
        assert np.all(np.linalg.eigvalsh(cov) > 0)
    for _ in range(200):  # a long ghost: the covariance grows and stays positive definite
        bank.predict(1 / 30)
    assert np.all(np.linalg.eigvalsh(bank.box_covariances) > 0)
    assert np.all(np.isfinite(bank.mahalanobis_sq(_initial_boxes(2))))


@pytest.mark.parametrize("name", BASE_MODELS)
def test_an_hour_without_frames_then_a_repeated_stamp_keeps_the_covariance_positive_definite(name: str) -> None:
    """A camera stall or a paused bag: one predict over an hour (P ~ 1e15 px² against R ~ 10 px²),
    an update, then an update at the same stamp (dt = 0). The IMM's short covariance update
    P - KHP cancelled catastrophically there and the next gate's Cholesky failed."""
    bank = make_bank(name, PARAMS)
    boxes = np.array([[300.0, 200.0, 200.0, 400.0], [100.0, 120.0, 40.0, 80.0]])
    bank.append(boxes)
    for k in range(30):
        bank.predict(1 / 30)
        bank.update(np.arange(2), boxes + [k, 0, 0, 0])
    bank.predict(3600.0)
    for _ in range(2):
        bank.update(np.arange(2), boxes + [30, 0, 0, 0])
        assert np.all(np.linalg.eigvalsh(bank.box_covariances) > 0)
        bank.predict(0.0)
        assert np.all(np.isfinite(bank.mahalanobis_sq(boxes)))


@pytest.mark.parametrize("name", [*BASE_MODELS, "filter-list"])
def test_rows_stay_aligned_and_inputs_are_checked(name: str) -> None:
    boxes = _initial_boxes(4, 3)
    bank = FilterList(BoxKalmanFilter, PARAMS) if name == "filter-list" else make_bank(name, PARAMS)
    bank.append(boxes)
    bank.predict(0.2)
    bank.update(np.array([1]), boxes[[1]] + 5.0)
    before = (bank.boxes, bank.velocities, bank.box_covariances)
    bank.select(np.array([2, 1]))
    for a, b in zip((bank.boxes, bank.velocities, bank.box_covariances), before):
        _close(a, b[[2, 1]])
    bank.append(boxes[[0]])
    assert len(bank) == 3
    _close(bank.boxes[2], boxes[0])
    _close(bank.box_covariances[2], BoxKalmanFilter(boxes[0], PARAMS).box_covariance)
    assert bank.mahalanobis_sq(np.empty((0, 4))).shape == (3, 0)
    z = boxes + 4.0
    rows, cols = np.array([0, 2, 2, 1]), np.array([1, 0, 2, 2])
    _close(bank.mahalanobis_sq_pairs(z, rows, cols), bank.mahalanobis_sq(z)[rows, cols])
    S = bank.innovation_covariances
    y = z[0] - bank.boxes[0]
    _close(bank.mahalanobis_sq(z)[0, 0], y @ np.linalg.solve(S[0], y))
    for dt in (-0.1, math.nan, math.inf):
        with pytest.raises(ValueError, match="dt"):
            bank.predict(dt)
    with pytest.raises(ValueError, match="box"):
        bank.reinitialize(np.array([0]), np.array([[0.0, 0.0, 0.0, 5.0]]), np.zeros((1, 2)))
    bank.select(np.zeros(0, int))
    bank.predict(0.1)
    assert len(bank) == 0 and bank.mahalanobis_sq(np.ones((2, 4))).shape == (0, 2)


def test_registry() -> None:
    assert set(BASE_MODELS) == {"cv", "damped", "imm"}
    with pytest.raises(ValueError, match="motion_model"):
        make_bank("kalman", PARAMS)
    name = register_variant("damped", time_constant_s=0.25)
    try:
        assert name == "damped(time_constant_s=0.25)"
        assert isinstance(make_bank(name, PARAMS), DampedVelocityBank)
        assert make_bank(name, PARAMS).time_constant_s == 0.25
        with pytest.raises(ValueError, match="base"):
            register_variant("nope", x=1)
        with pytest.raises(ValueError, match="no such constant"):
            register_variant("cv", time_constant_s=1.0)
        with pytest.raises(ValueError, match="time_constant_s"):
            register_variant("damped", time_constant_s=-1.0)
    finally:
        MOTION_MODELS.pop(name, None)


# --- the evaluation tool's bookkeeping ------------------------------------------------------------

def _score(tracker: str, dataset: str, seed: int, hota: float, errors: list[float], episodes: int, recovered: int):
    from object_permanence.core.eval.tracking_eval import SequenceScore
    from object_permanence.tools.eval_motion import MotionScore

    s = SequenceScore(dataset=dataset, difficulty="realistic", seed=seed, tracker=tracker, hota=hota, idf1=hota,
                      mota=hota, camera_frames=200, id_switches=1, episodes=episodes, recovered=recovered,
                      reacquire_errors=errors, ghosts=10, ghosts_correct=9)
    return MotionScore(s, short_episodes=episodes - 1, short_recovered=max(recovered - 1, 0),
                       short_errors=errors[:1])


def test_eval_motion_objective_and_rows() -> None:
    from object_permanence.tools.eval_motion import markdown, objective, summarise

    scores = [_score("cv", "clean", 0, 0.6, [10.0, 30.0], 4, 3), _score("cv", "clean", 1, 0.8, [20.0], 2, 2)]
    o = objective(scores)
    assert o["identity"] == pytest.approx(0.7)
    assert o["recovery"] == pytest.approx(5 / 6)
    assert o["reacquire_error_px"] == pytest.approx(20.0) and o["reacquire_error_median_px"] == pytest.approx(20.0)
    assert o["short_recovery"] == pytest.approx(3 / 4)
    assert o["reacquire_within_bar"] == pytest.approx(1 / 6)  # one error below 20 px of 6 episodes
    assert o["objective"] == pytest.approx(0.7 + 5 / 6 + 3 / 4 + 1 / 6)
    row = summarise(scores)
    assert row["short_occlusion_episodes"] == 4 and row["short_occlusion_recovery_rate"] == pytest.approx(3 / 4)
    assert row["reacquire_error_px"] == pytest.approx(20.0) and row["reacquire_samples"] == 3
    assert row["short_reacquire_error_px"] == pytest.approx(15.0)
    assert row["reacquire_within_bar_rate"] == pytest.approx(1 / 6)
    assert row["id_switches_per_100_frames"] == pytest.approx(0.5)
    doc = {"command": "x", "elapsed_min": 1.0, "tune_seeds": [0], "seeds": [1000], "tuning": {"cv": o},
           "chosen": {"cv": "cv"}, "held_out": [row]}
    text = markdown(doc)
    assert "| clean | `cv` | 70.0 | 70.0 | 0.50 | 83.3 | 75.0 | 20.00 | 20.00 | 15.00 | 16.7 | 90.0 | 6 (4) |" in text


def test_eval_motion_rejects_seeds_of_the_wrong_split() -> None:
    from object_permanence.tools.eval_motion import main

    with pytest.raises(SystemExit):
        main(["--tune-seeds", "1000"])
    with pytest.raises(SystemExit):
        main(["--seeds", "3"])
