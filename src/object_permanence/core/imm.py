"""Interacting multiple model (IMM) box filter for N tracks at once: constant velocity (CV) and
constant acceleration (CA) modes, mixed by a Markov chain.

Every track carries one state per mode in a common 10-dimensional space
``x = [cx, cy, w, h, vcx, vcy, vw, vh, acx, acy]`` (pixels, px/s, px/s²) and the mode
probabilities ``mu`` (N, 2). The CV mode is :mod:`~object_permanence.core.kalman`'s model (its
acceleration entries are reset to 0: ``a' = 0``); the CA mode moves the centre with a white-noise
jerk (``p' = p + v dt + a dt²/2``, ``v' = v + a dt``, ``a' = a``; ``Q`` of
``filterpy.common.Q_continuous_white_noise(dim=3)`` times the jerk density) and the size as CV.

One step (Blom and Bar-Shalom's IMM, as ``filterpy.kalman.IMMEstimator``), vectorised over tracks
and modes:

* predict: ``cbar = mu M`` with the Markov matrix ``M(dt)`` (switch probability
  ``(1 - exp(-2 dt / T)) / 2``, ``T = switch_time_s``, so the chain does not depend on the frame
  rate); mixing weights ``omega_ij = M_ij mu_i / cbar_j``; mixed states ``x0_j = sum_i omega_ij x_i``
  and ``P0_j = sum_i omega_ij (P_i + (x_i - x0_j)(x_i - x0_j)')``; each mode predicts from its
  mixture; ``mu = cbar``.
* update: each mode is a Kalman update (the Joseph form, simplified for the optimal gain) with
  its likelihood ``N(y; 0, S_j)`` (``S_j`` Cholesky-whitened); ``mu_j ∝ mu_j N_j``.

What the world model reads (boxes, velocities, covariances, the gate) is the moment-matched
combination ``x = sum_j mu_j x_j``, ``P = sum_j mu_j (P_j + (x_j - x)(x_j - x)')``. Noise is
scaled with the combined box (``Q`` before the prediction, ``R`` after it), as in the CV bank.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from object_permanence.core.association import mahalanobis_sq_matrix, mahalanobis_sq_pairs, whitening
from object_permanence.core.box_filter_bank import _check_boxes, _check_dt, diagonals
from object_permanence.core.ghost_onset import SteadySize
from object_permanence.core.kalman import (
    DIM_Z,
    BoxKalmanParams,
    accel_std,
    clamp_size,
    initial_std,
    measurement_std,
    positive_finite,
    size_scale,
)

#: Dimension of the common state: box, its velocity, the centre's acceleration.
DIM_IMM = 10
#: Modes, in the order of ``mu``.
MODES = ("cv", "ca")
_LOG_2PI = math.log(2.0 * math.pi)
_ACC = np.array([8, 9])  # indices of acx, acy
_CENTRE = np.array([0, 1])


def switch_probability(dt: float, switch_time_s: float) -> float:
    """Probability that a two-mode symmetric Markov chain with mean sojourn ``switch_time_s``
    seconds ends a step of ``dt`` seconds in the other mode: ``(1 - exp(-2 dt / T)) / 2``."""
    return -0.5 * math.expm1(-2.0 * dt / switch_time_s)


@lru_cache(maxsize=64)
def imm_models(dt: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``F_cv, Q_cv, F_ca, Q_ca`` (10, 10), read-only: the transitions and unit-density process
    noises of both modes over ``dt`` seconds (each ``Q`` is scaled per track by the outer product
    of its per-entry spectral-density roots)."""
    F_cv = np.zeros((DIM_IMM, DIM_IMM))
    F_cv[:8, :8] = np.eye(8)
    F_cv[np.arange(4), np.arange(4) + 4] = dt  # p' = p + v dt ; v' = v ; a' = 0
    Q_cv = np.zeros((DIM_IMM, DIM_IMM))
    p, v = np.arange(4), np.arange(4) + 4
    Q_cv[p, p], Q_cv[p, v], Q_cv[v, p], Q_cv[v, v] = dt ** 3 / 3, dt ** 2 / 2, dt ** 2 / 2, dt  # white acceleration
    F_ca = F_cv.copy()
    F_ca[_CENTRE, _ACC] = 0.5 * dt * dt  # p' = p + v dt + a dt²/2
    F_ca[_CENTRE + 4, _ACC] = dt  # v' = v + a dt
    F_ca[_ACC, _ACC] = 1.0  # a' = a
    Q_ca = Q_cv.copy()
    for axis in _CENTRE:  # white jerk on (p, v, a) of the centre (Q_continuous_white_noise dim=3)
        idx = np.array([axis, axis + 4, axis + 8])
        Q_ca[np.ix_(idx, idx)] = [[dt ** 5 / 20, dt ** 4 / 8, dt ** 3 / 6],
                                  [dt ** 4 / 8, dt ** 3 / 3, dt ** 2 / 2],
                                  [dt ** 3 / 6, dt ** 2 / 2, dt]]
    for m in (F_cv, Q_cv, F_ca, Q_ca):
        m.flags.writeable = False
    return F_cv, Q_cv, F_ca, Q_ca


class ImmBoxBank:
    """A :class:`~object_permanence.core.box_filter_bank.BoxFilterBank` of CV + CA IMM filters
    (module docstring): ``X`` (N, 2, 10), ``P`` (N, 2, 10, 10), ``mu`` (N, 2).

    Args:
        params: noise scales (CV mode and the size axes of the CA mode as the CV bank; a new
            track's centre acceleration has std ``init_velocity_std_frac`` box sizes per s²).
        jerk_std_frac: root of the spectral density of the centre's white jerk in the CA mode,
            box sizes per s^2.5 (default ``params.imm_jerk_std_frac``).
        switch_time_s: mean time between mode switches, seconds (default ``params.imm_switch_time_s``).

    Raises:
        ValueError: ``jerk_std_frac`` or ``switch_time_s`` not a positive finite number.
    """

    def __init__(self, params: BoxKalmanParams | None = None, jerk_std_frac: float | None = None,
                 switch_time_s: float | None = None) -> None:
        self.params = params if params is not None else BoxKalmanParams()
        self.jerk_std_frac = positive_finite(
            "jerk_std_frac", self.params.imm_jerk_std_frac if jerk_std_frac is None else jerk_std_frac)
        self.switch_time_s = positive_finite(
            "switch_time_s", self.params.imm_switch_time_s if switch_time_s is None else switch_time_s)
        self._X = np.zeros((0, 2, DIM_IMM))
        self._P = np.zeros((0, 2, DIM_IMM, DIM_IMM))
        self._mu = np.zeros((0, 2))
        self._steady = SteadySize()

    def __len__(self) -> int:
        return self._X.shape[0]

    # --- the mode-wise state ------------------------------------------------------------------
    @property
    def mode_states(self) -> np.ndarray:
        """(N, 2, 10) copy of each mode's state."""
        return self._X.copy()

    @property
    def mode_covariances(self) -> np.ndarray:
        """(N, 2, 10, 10) copy of each mode's covariance."""
        return self._P.copy()

    @property
    def mode_probabilities(self) -> np.ndarray:
        """(N, 2) copy of ``mu`` (CV, CA)."""
        return self._mu.copy()

    def _combined(self, k: int = DIM_IMM) -> tuple[np.ndarray, np.ndarray]:
        """Moment-matched ``x`` (N, 10) and the leading (k, k) block of ``P`` (N, k, k).

        ``P = sum_j mu_j (P_j + (x_j - x)(x_j - x)')``; with two modes ``x_0 - x = -mu_1 d``,
        ``x_1 - x = mu_0 d`` (``d = x_1 - x_0``), so the spread term is ``mu_0 mu_1 d d'``."""
        mu0, mu1 = self._mu[:, 0, None], self._mu[:, 1, None]
        x = mu0 * self._X[:, 0] + mu1 * self._X[:, 1]  # x = sum_j mu_j x_j
        d = self._X[:, 1, :k] - self._X[:, 0, :k]
        P = mu0[:, :, None] * self._P[:, 0, :k, :k] + mu1[:, :, None] * self._P[:, 1, :k, :k] \
            + (mu0 * mu1)[:, :, None] * d[:, :, None] * d[:, None, :]  # + mu_0 mu_1 d d'
        return x, P

    @property
    def x(self) -> np.ndarray:
        """(N, 10) combined states."""
        return self._combined()[0]

    @property
    def P(self) -> np.ndarray:
        """(N, 10, 10) combined covariances."""
        return self._combined()[1]

    @property
    def steady_sizes(self) -> np.ndarray:
        """(N, 2) steady ``w, h`` of each row's detected boxes, px."""
        return self._steady.sizes

    # --- rows ---------------------------------------------------------------------------------
    def _initial(self, z: np.ndarray, velocity: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        k = z.shape[0]
        x = np.concatenate([z, velocity, np.zeros((k, 4))], axis=1)
        std = np.concatenate([initial_std(z, self.params),
                              np.maximum(self.params.init_velocity_std_frac * z[:, 2:4], self.params.min_std_px)],
                             axis=1)  # the acceleration: init_velocity_std_frac box sizes / s²
        P = np.zeros((k, DIM_IMM, DIM_IMM))
        diag = np.arange(DIM_IMM)
        P[:, diag, diag] = std ** 2  # P0 = diag(sigma_0^2)
        X = np.repeat(x[:, None, :], 2, axis=1)
        return X, np.repeat(P[:, None], 2, axis=1), np.full((k, 2), 0.5)  # mu0: the chain's stationary law

    def append(self, z: np.ndarray) -> None:
        """Add filters at boxes ``z`` (K, 4), zero velocity and acceleration, ``mu = (1/2, 1/2)``.

        Raises:
            ValueError: if a box is not finite or has w or h <= 0.
        """
        z = np.asarray(z, dtype=float).reshape(-1, DIM_Z)
        z = _check_boxes(z, z.shape[0])
        X, P, mu = self._initial(z, np.zeros((z.shape[0], 2)))
        self._X = np.concatenate([self._X, X])
        self._P = np.concatenate([self._P, P])
        self._mu = np.concatenate([self._mu, mu])
        self._steady.append(z)

    def select(self, rows: np.ndarray) -> None:
        """Keep only ``rows`` (int (K,)), in that order."""
        rows = np.asarray(rows, dtype=np.intp)
        self._X, self._P, self._mu = self._X[rows], self._P[rows], self._mu[rows]
        self._steady.select(rows)

    def reinitialize(self, rows: np.ndarray, z: np.ndarray, velocity: np.ndarray) -> None:
        """Restart ``rows`` at boxes ``z`` (K, 4) with centre velocity (K, 2) px/s, both modes.

        Raises:
            ValueError: if a box is not finite or has w or h <= 0.
        """
        rows = np.asarray(rows, dtype=np.intp)
        z = _check_boxes(z, rows.shape[0])
        velocity = np.asarray(velocity, dtype=float).reshape(rows.shape[0], 2)
        self._X[rows], self._P[rows], self._mu[rows] = self._initial(z, velocity)
        self._steady.restart(rows, z)

    # --- the filter ---------------------------------------------------------------------------
    def _noise_roots(self, boxes: np.ndarray) -> np.ndarray:
        """(N, 2, 10) roots of the spectral densities of every state entry in each mode."""
        acc = accel_std(boxes, self.params)  # (N, 4): cx, cy, w, h
        jerk = np.maximum(self.jerk_std_frac * size_scale(boxes)[:, :2], self.params.min_std_px)
        s = np.zeros((boxes.shape[0], 2, DIM_IMM))
        s[:, 0, :8] = np.tile(acc, 2)  # CV: (p, v) of every axis
        s[:, 1, :8] = s[:, 0, :8]
        s[:, 1, [0, 1, 4, 5, 8, 9]] = np.tile(jerk, 3)  # CA: (p, v, a) of the centre
        return s

    def predict(self, dt: float) -> None:
        """Mix, then propagate both modes of every filter by ``dt`` seconds; ``mu = cbar``.
        ``dt = 0`` changes nothing (no time passes: no switch, no motion).

        Raises:
            ValueError: if ``dt`` is negative or not finite.
        """
        dt = _check_dt(dt)
        if len(self) == 0 or dt == 0.0:
            return
        p = switch_probability(dt, self.switch_time_s)
        M = np.array([[1.0 - p, p], [p, 1.0 - p]])  # M_ij = P(mode j after | mode i before)
        mu = self._mu
        cbar = mu @ M  # cbar_j = sum_i M_ij mu_i
        omega = M[None] * mu[:, :, None] / cbar[:, None, :]  # omega_ij = M_ij mu_i / cbar_j
        x0 = np.einsum("nij,nik->njk", omega, self._X)  # x0_j = sum_i omega_ij x_i
        # P0_j = sum_i omega_ij (P_i + (x_i - x0_j)(x_i - x0_j)'); with two modes the spread term
        # is omega_0j omega_1j d d', d = x_1 - x_0 (as in _combined)
        d = self._X[:, 1] - self._X[:, 0]
        dd = d[:, :, None] * d[:, None, :]  # (N, 10, 10)
        dP = self._P[:, 1] - self._P[:, 0]
        roots = self._noise_roots(np.einsum("nm,nmk->nk", mu, self._X)[:, :DIM_Z])  # the combined box
        F_cv, Q_cv, F_ca, Q_ca = imm_models(dt)
        P = np.empty_like(self._P)
        for j, (F, Q) in enumerate(((F_cv, Q_cv), (F_ca, Q_ca))):
            P0 = dP * omega[:, 1, j, None, None]  # P0_j = P_0 + omega_1j (P_1 - P_0) + omega_0j omega_1j d d'
            P0 += self._P[:, 0]
            P0 += dd * (omega[:, 0, j] * omega[:, 1, j])[:, None, None]
            r, c = np.nonzero(Q)  # the few non-zero entries of the unit Q: Q_rc = q_rc s_r s_c
            P[:, j] = F @ P0 @ F.T  # P_j = F_j P0_j F_j' + Q_j
            P[:, j, r, c] += Q[r, c] * roots[:, j, r] * roots[:, j, c]
        self._X = np.einsum("mkl,nml->nmk", np.stack([F_cv, F_ca]), x0)  # x_j = F_j x0_j
        self._P = P
        self._mu = cbar
        clamp_size(self._X.reshape(-1, DIM_IMM), self.params)

    def update(self, rows: np.ndarray, z: np.ndarray) -> None:
        """Correct ``rows`` (int (K,), distinct) with boxes ``z`` (K, 4): a Kalman update per mode
        (R scaled with the combined predicted box) and ``mu_j ∝ mu_j N(y_j; 0, S_j)``."""
        rows = np.asarray(rows, dtype=np.intp)
        if rows.size == 0:
            return
        z = np.asarray(z, dtype=float).reshape(rows.shape[0], DIM_Z)
        X, P, mu = self._X[rows], self._P[rows], self._mu[rows]
        box = np.einsum("nm,nmk->nk", mu, X[:, :, :DIM_Z])
        r_var = measurement_std(box, self.params) ** 2  # R = diag(sigma_z^2), (K, 4)
        S = P[:, :, :DIM_Z, :DIM_Z].copy()
        diag = np.arange(DIM_Z)
        S[:, :, diag, diag] += r_var[:, None, :]  # S = H P H' + R, (K, 2, 4, 4)
        W = whitening(S.reshape(-1, DIM_Z, DIM_Z)).reshape(S.shape)  # W = L^-1, S = L L' (Cholesky)
        y = z[:, None, :] - X[:, :, :DIM_Z]  # y = z - H x, (K, 2, 4)
        u = np.einsum("nmij,nmj->nmi", W, y)  # u = L^-1 y ; y' S^-1 y = |u|²
        log_det = -2.0 * np.log(np.diagonal(W, axis1=-2, axis2=-1)).sum(axis=-1)  # log|S| = 2 sum log L_ii
        log_lik = -0.5 * (np.einsum("nmk,nmk->nm", u, u) + log_det + DIM_Z * _LOG_2PI)  # log N(y; 0, S)
        K = (P[:, :, :, :DIM_Z] @ W.swapaxes(-1, -2)) @ W  # K = P H' S^-1 = P H' W' W
        X = X + np.einsum("nmkl,nml->nmk", K, y)  # x = x + K y
        # Joseph form P = (I-KH) P (I-KH)' + K R K', as filterpy: PSD whatever the rounding. The
        # shorter P - KHP, algebraically equal for this gain, cancels catastrophically after a long
        # prediction (P ~ 1e15 px² after an hour's gap, R ~ 10 px²) and left P indefinite.
        A = np.broadcast_to(np.eye(P.shape[-1]), P.shape).copy()
        A[..., :DIM_Z] -= K  # I - K H, H = [I 0]
        KRK = (K * r_var[:, None, None, :]) @ K.swapaxes(-1, -2)  # K R K', R = diag(r_var)
        P = A @ P @ A.swapaxes(-1, -2) + KRK
        P = 0.5 * (P + P.swapaxes(-1, -2))
        w = mu * np.exp(log_lik - log_lik.max(axis=1, keepdims=True))  # mu_j N_j, rescaled
        self._X[rows], self._P[rows], self._mu[rows] = X, P, w / w.sum(axis=1, keepdims=True)
        self._steady.update(rows, z)

    # --- what the world model reads -----------------------------------------------------------
    @property
    def boxes(self) -> np.ndarray:
        """(N, 4) combined ``cx, cy, w, h`` pixels."""
        return np.einsum("nm,nmk->nk", self._mu, self._X[:, :, :DIM_Z])

    @property
    def velocities(self) -> np.ndarray:
        """(N, 2) combined box-centre velocities, pixels/s."""
        return np.einsum("nm,nmk->nk", self._mu, self._X[:, :, DIM_Z:DIM_Z + 2])

    @property
    def box_covariances(self) -> np.ndarray:
        """(N, 4, 4) combined covariances of ``cx, cy, w, h``, pixels²."""
        return self._combined(DIM_Z)[1]

    @property
    def innovation_covariances(self) -> np.ndarray:
        """(N, 4, 4) ``S = H P H' + R`` of the combined estimate, pixels²."""
        x, S = self._combined(DIM_Z)
        diag = np.arange(DIM_Z)
        S[:, diag, diag] += measurement_std(x[:, :DIM_Z], self.params) ** 2  # S = H P H' + R
        return S

    @property
    def innovation_variances(self) -> np.ndarray:
        """(N, 4) the diagonals of :attr:`innovation_covariances`, pixels²."""
        return diagonals(self.innovation_covariances)

    def mahalanobis_sq(self, z: np.ndarray) -> np.ndarray:
        """(N, M) ``y' S^-1 y`` of boxes ``z`` (M, 4) against the combined prediction."""
        z = np.asarray(z, dtype=float).reshape(-1, DIM_Z)
        return mahalanobis_sq_matrix(self.boxes, self.innovation_covariances, z)

    def mahalanobis_sq_pairs(self, z: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """(P,) ``y' S^-1 y`` of the pairs (filter ``rows[p]``, box ``z[cols[p]]``) only."""
        z = np.asarray(z, dtype=float).reshape(-1, DIM_Z)
        return mahalanobis_sq_pairs(self.boxes, self.innovation_covariances, z, rows, cols)
