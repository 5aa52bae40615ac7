"""All tracks' box filters of one world model, stepped together.

The world model keeps one :class:`BoxFilterBank` (row ``i`` is its track ``i``) and calls one
predict, one gate (:meth:`BoxFilterBank.mahalanobis_sq`), one update and one re-initialisation per
frame, whatever the number of tracks. Two implementations:

* :class:`BatchedBoxKalman` (the default): the states stacked as ``x`` (N, 8) and the covariances
  as their per-axis 2x2 blocks (the model is separable, so ``P`` is block-diagonal); every
  equation is one numpy operation over all rows. Same model and same numbers as
  :class:`~object_permanence.core.kalman.BoxKalmanFilter` (tested against it to 1e-9).
* :class:`FilterList`: one :class:`~object_permanence.core.kalman.BoxFilter` object per row from a
  factory (e.g. the filterpy reference), so any single-track filter runs in the world model and the
  world-model tests run over both.

State ``x = [cx, cy, w, h, vcx, vcy, vw, vh]`` (pixels, pixels/s), measurement ``z = [cx, cy, w, h]``.
Both also keep each row's steady detected size (:class:`~object_permanence.core.ghost_onset.SteadySize`)
and can move selected states keeping ``P`` (:meth:`BatchedBoxKalman.shift`): the world model
corrects a new ghost's box and motion with them (:mod:`object_permanence.core.ghost_onset`).
"""
from __future__ import annotations

import math
from typing import Callable, Protocol

import numpy as np

from object_permanence.core.association import (
    diagonal_mahalanobis_sq,
    diagonal_mahalanobis_sq_pairs,
    mahalanobis_sq_matrix,
    mahalanobis_sq_pairs,
)
from object_permanence.core.constant_velocity import constant_velocity_model
from object_permanence.core.ghost_onset import SteadySize
from object_permanence.core.kalman import (
    DIM_X,
    DIM_Z,
    BoxFilter,
    BoxKalmanParams,
    accel_std,
    clamp_size,
    initial_std,
    measurement_std,
)
from object_permanence.core.row_selection import every_row

FilterFactory = Callable[[np.ndarray, BoxKalmanParams], BoxFilter]


def _check_dt(dt: float) -> float:
    if not (isinstance(dt, (int, float, np.floating)) and math.isfinite(dt) and dt >= 0.0):
        raise ValueError(f"dt must be a finite number >= 0, got {dt!r}")
    return float(dt)


def _check_boxes(z: np.ndarray, rows: int) -> np.ndarray:
    z = np.asarray(z, dtype=float).reshape(-1, DIM_Z)
    if z.shape[0] != rows:
        raise ValueError(f"expected {rows} boxes, got {z.shape[0]}")
    if not (np.all(np.isfinite(z)) and np.all(z[:, 2:] > 0)):
        raise ValueError(f"boxes must be finite with w, h > 0, got {z.tolist()}")
    return z


def _diagonal_matrices(diagonals: np.ndarray) -> np.ndarray:
    """(N, K, K) diagonal matrices from their diagonals (N, K) (strided writes, no index arrays)."""
    n, k = diagonals.shape
    out = np.zeros((n, k * k))
    out[:, ::k + 1] = diagonals  # entries (i, i) of the flattened K x K
    return out.reshape(n, k, k)


def diagonals(matrices: np.ndarray) -> np.ndarray:
    """(N, K) copy of the diagonals of (N, K, K) matrices."""
    return np.diagonal(matrices, axis1=1, axis2=2).copy()


class BoxFilterBank(Protocol):
    """N box filters (row i: track i) advanced together; see :class:`BatchedBoxKalman`."""

    def __len__(self) -> int:
        """Number of filters N."""

    def append(self, z: np.ndarray) -> None:
        """Add filters at boxes ``z`` (K, 4) with zero velocity, as rows N .. N+K-1."""

    def select(self, rows: np.ndarray) -> None:
        """Keep only the filters ``rows`` (int (K,)), in that order."""

    def predict(self, dt: float) -> None:
        """Propagate every filter by ``dt`` seconds (``dt >= 0``)."""

    def update(self, rows: np.ndarray, z: np.ndarray) -> None:
        """Correct filters ``rows`` (int (K,), distinct) with measured boxes ``z`` (K, 4)."""

    def reinitialize(self, rows: np.ndarray, z: np.ndarray, velocity: np.ndarray) -> None:
        """Restart filters ``rows`` at boxes ``z`` (K, 4) with centre velocities (K, 2) px/s."""

    def shift(self, rows: np.ndarray, dx: np.ndarray) -> None:
        """Add ``dx`` (K, 8) to the states of ``rows`` (int (K,), distinct), keeping ``P``."""

    @property
    def x(self) -> np.ndarray:
        """(N, 8) states ``cx, cy, w, h, vcx, vcy, vw, vh`` (a copy)."""

    @property
    def steady_sizes(self) -> np.ndarray:
        """(N, 2) steady ``w, h`` of the detected boxes (:class:`~object_permanence.core.ghost_onset.SteadySize`)."""

    @property
    def boxes(self) -> np.ndarray:
        """(N, 4) ``cx, cy, w, h`` pixels (a copy)."""

    @property
    def velocities(self) -> np.ndarray:
        """(N, 2) box-centre velocities, pixels/s (a copy)."""

    @property
    def box_covariances(self) -> np.ndarray:
        """(N, 4, 4) covariances of ``cx, cy, w, h``, pixels² (a copy)."""

    @property
    def innovation_covariances(self) -> np.ndarray:
        """(N, 4, 4) ``S = H P H' + R`` of a measurement of each current state, pixels²."""

    @property
    def innovation_variances(self) -> np.ndarray:
        """(N, 4) the diagonals of :attr:`innovation_covariances`, pixels² (a copy)."""

    def mahalanobis_sq(self, z: np.ndarray) -> np.ndarray:
        """(N, M) squared Mahalanobis distances of boxes ``z`` (M, 4) to each predicted box."""

    def mahalanobis_sq_pairs(self, z: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """(P,) squared Mahalanobis distances of the pairs (filter ``rows[p]``, box ``z[cols[p]]``)."""


class BatchedBoxKalman:
    """The constant-velocity box filter of :mod:`~object_permanence.core.kalman` for N tracks at
    once, one numpy operation per equation over all rows.

    The model is separable: every axis ``(p_k, v_k)`` of ``cx, cy, w, h`` has its own transition,
    process noise (``Q`` is block-diagonal per axis), measurement (``H = [I 0]``) and noise (``R``
    diagonal), and a new state's ``P0`` is diagonal, so ``P`` stays block-diagonal with one 2x2
    block per axis for ever (the cross-axis entries of ``F P F' + Q`` and of the update are exactly
    zero). The bank therefore stores the states ``x`` (N, 8) and, per axis, the three distinct
    entries ``P_pp, P_pv, P_vv`` (N, 4 each) and runs every equation on those (N, 4) arrays: the
    same numbers as the full 8x8 filterpy reference (tested to 1e-9), without (N, 8, 8)
    temporaries, inverses or solves. ``S = P_pp + R`` is diagonal, so the gate is
    ``d² = sum_k y_k² / S_k``.

    Args:
        params: noise scales.
    """

    def __init__(self, params: BoxKalmanParams | None = None) -> None:
        self.params = params if params is not None else BoxKalmanParams()
        self._x = np.zeros((0, DIM_X))
        self._pp = np.zeros((0, DIM_Z))  # var(p_k)
        self._pv = np.zeros((0, DIM_Z))  # cov(p_k, v_k)
        self._vv = np.zeros((0, DIM_Z))  # var(v_k)
        self._steady = SteadySize()
        #: (N, 4) ``R`` of a measurement of each current state, computed once for the gate, the
        #: association's variances and the update; None after every change of the states
        self._r: np.ndarray | None = None

    def __len__(self) -> int:
        return self._x.shape[0]

    @property
    def x(self) -> np.ndarray:
        """(N, 8) copy of the states."""
        return self._x.copy()

    @property
    def P(self) -> np.ndarray:
        """(N, 8, 8) state covariances, assembled from the per-axis blocks."""
        P = np.zeros((len(self), DIM_X, DIM_X))
        p, v = np.arange(DIM_Z), np.arange(DIM_Z, DIM_X)
        P[:, p, p], P[:, p, v], P[:, v, p], P[:, v, v] = self._pp, self._pv, self._pv, self._vv
        return P

    def _initial(self, z: np.ndarray, velocity: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """States (K, 8) and the per-axis ``P_pp``, ``P_vv`` (K, 4) of filters started at ``z`` (K, 4)."""
        k = z.shape[0]
        x = np.concatenate([z, velocity, np.zeros((k, 2))], axis=1)
        var = initial_std(z, self.params) ** 2  # P0 = diag(sigma_0^2)
        return x, var[:, :DIM_Z], var[:, DIM_Z:]

    def append(self, z: np.ndarray) -> None:
        """Add filters at boxes ``z`` (K, 4), zero velocity.

        Raises:
            ValueError: if a box is not finite or has w or h <= 0.
        """
        z = np.asarray(z, dtype=float).reshape(-1, DIM_Z)
        z = _check_boxes(z, z.shape[0])
        x, pp, vv = self._initial(z, np.zeros((z.shape[0], 2)))
        self._x = np.concatenate([self._x, x])
        self._pp = np.concatenate([self._pp, pp])
        self._pv = np.concatenate([self._pv, np.zeros_like(pp)])
        self._vv = np.concatenate([self._vv, vv])
        self._r = None
        self._steady.append(z)

    def select(self, rows: np.ndarray) -> None:
        """Keep only ``rows`` (int (K,)), in that order."""
        rows = np.asarray(rows, dtype=np.intp)
        self._x, self._pp, self._pv, self._vv = self._x[rows], self._pp[rows], self._pv[rows], self._vv[rows]
        self._r = None
        self._steady.select(rows)

    def reinitialize(self, rows: np.ndarray, z: np.ndarray, velocity: np.ndarray) -> None:
        """Restart ``rows`` at boxes ``z`` (K, 4) with centre velocity ``velocity`` (K, 2) px/s; the
        size velocity restarts at zero and ``P`` at the initial covariance.

        Raises:
            ValueError: if a box is not finite or has w or h <= 0.
        """
        rows = np.asarray(rows, dtype=np.intp)
        z = _check_boxes(z, rows.shape[0])
        velocity = np.asarray(velocity, dtype=float).reshape(rows.shape[0], 2)
        self._x[rows], self._pp[rows], self._vv[rows] = self._initial(z, velocity)
        self._pv[rows] = 0.0
        self._r = None
        self._steady.restart(rows, z)

    def shift(self, rows: np.ndarray, dx: np.ndarray) -> None:
        """Add ``dx`` (K, 8) to the states of ``rows`` (int (K,), distinct); ``P`` is kept
        (w, h stay >= ``min_std_px``)."""
        rows = np.asarray(rows, dtype=np.intp)
        self._x[rows] += np.asarray(dx, dtype=float).reshape(rows.shape[0], DIM_X)
        clamp_size(self._x, self.params)
        self._r = None

    @property
    def steady_sizes(self) -> np.ndarray:
        """(N, 2) steady ``w, h`` of each row's detected boxes, px."""
        return self._steady.sizes

    def predict(self, dt: float) -> None:
        """Propagate all filters by ``dt`` seconds (``Q`` scaled with each box before the step);
        w, h are kept >= ``min_std_px``.

        Raises:
            ValueError: if ``dt`` is negative or not finite.
        """
        dt = _check_dt(dt)
        if len(self) == 0:
            return
        b, phi, q_pp, q_pv, q_vv = self._transition(dt)
        s = accel_std(self._x[:, :DIM_Z], self.params) ** 2  # (N, 4) spectral densities
        x, pp, pv, vv = self._x, self._pp, self._pv, self._vv
        x[:, :DIM_Z] += b * x[:, DIM_Z:]  # x = F x: p' = p + b v
        # P = F P F' + Q per axis, F = [[1, b], [0, phi]], Q = s [[q_pp, q_pv], [q_pv, q_vv]]
        self._pp = pp + (2.0 * b) * pv + (b * b) * vv + q_pp * s  # P_pp' = P_pp + 2b P_pv + b² P_vv + Q_pp
        self._pv = phi * (pv + b * vv) + q_pv * s  # P_pv' = phi (P_pv + b P_vv) + Q_pv
        self._vv = (phi * phi) * vv + q_vv * s  # P_vv' = phi² P_vv + Q_vv
        if phi != 1.0:
            x[:, DIM_Z:] *= phi  # v' = phi v
        clamp_size(x, self.params)
        self._r = None

    def _transition(self, dt: float) -> tuple[float, float, float, float, float]:
        """``(b, phi, q_pp, q_pv, q_vv)`` of one axis over ``dt`` seconds: ``p' = p + b v``,
        ``v' = phi v`` (``F = [[1, b], [0, phi]]``) and the process noise of unit spectral density.
        Constant velocity: ``b = dt``, ``phi = 1`` and ``Q`` of
        :func:`~object_permanence.core.constant_velocity.constant_velocity_model`; a subclass with
        another linear velocity model overrides this."""
        _, Q = constant_velocity_model(dt, 1)
        return dt, 1.0, float(Q[0, 0]), float(Q[0, 1]), float(Q[1, 1])

    def update(self, rows: np.ndarray, z: np.ndarray) -> None:
        """Correct ``rows`` (int (K,), distinct) with boxes ``z`` (K, 4); R is scaled with each
        predicted box. Joseph form, as filterpy: ``P = (I-KH) P (I-KH)' + K R K'``, per axis with
        the gains ``K = [k_p, k_v] = [P_pp, P_pv] / S``."""
        rows = np.asarray(rows, dtype=np.intp)
        if rows.size == 0:
            return
        z = np.asarray(z, dtype=float).reshape(rows.shape[0], DIM_Z)
        every = every_row(rows, len(self))  # the usual frame: the arrays themselves, no gathers
        x, pp, pv, vv, r = (a if every else a.take(rows, axis=0)
                            for a in (self._x, self._pp, self._pv, self._vv, self._measurement_variances()))
        s = pp + r  # S = H P H' + R = P_pp + r
        inv_s = 1.0 / s
        kp, kv = pp * inv_s, pv * inv_s  # K = P H' S^-1
        y = z - x[:, :DIM_Z]  # y = z - H x
        x[:, :DIM_Z] += kp * y  # x = x + K y (in place when every row)
        x[:, DIM_Z:] += kv * y
        one_kp = 1.0 - kp
        pp_new = one_kp * one_kp * pp + kp * kp * r  # (1-k_p)² P_pp + k_p² r
        pv_new = one_kp * (pv - kv * pp) + kp * kv * r  # (1-k_p)(P_pv - k_v P_pp) + k_p k_v r
        vv_new = vv - 2.0 * kv * pv + kv * kv * s  # P_vv - 2k_v P_pv + k_v² (P_pp + r)
        if every:  # x was updated in place
            self._pp, self._pv, self._vv = pp_new, pv_new, vv_new
        else:
            self._x[rows] = x
            self._pp[rows], self._pv[rows], self._vv[rows] = pp_new, pv_new, vv_new
        self._r = None
        self._steady.update(rows, z)

    @property
    def boxes(self) -> np.ndarray:
        """(N, 4) ``cx, cy, w, h`` pixels."""
        return self._x[:, :DIM_Z].copy()

    @property
    def velocities(self) -> np.ndarray:
        """(N, 2) box-centre velocities, pixels/s."""
        return self._x[:, DIM_Z:DIM_Z + 2].copy()

    @property
    def box_covariances(self) -> np.ndarray:
        """(N, 4, 4) covariances of ``cx, cy, w, h`` (diagonal), pixels²."""
        return _diagonal_matrices(self._pp)

    def _measurement_variances(self) -> np.ndarray:
        """(N, 4) ``R = diag(sigma_z^2)`` of a measurement of each current state (the cached one
        while the states are unchanged)."""
        if self._r is None:
            self._r = measurement_std(self._x[:, :DIM_Z], self.params) ** 2
        return self._r

    @property
    def innovation_variances(self) -> np.ndarray:
        """(N, 4) diagonal of ``S = H P H' + R`` for a measurement of each current state, pixels²."""
        return self._pp + self._measurement_variances()  # S = P_pp + R

    @property
    def innovation_covariances(self) -> np.ndarray:
        """(N, 4, 4) ``S = H P H' + R`` (diagonal) for a measurement of each current state, pixels²."""
        return _diagonal_matrices(self.innovation_variances)

    def mahalanobis_sq(self, z: np.ndarray) -> np.ndarray:
        """(N, M) ``y' S^-1 y``, ``y = z - H x``, for boxes ``z`` (M, 4): with ``S`` diagonal,
        ``sum_k y_k² / S_k``, one (N, M) plane per axis."""
        z = np.asarray(z, dtype=float).reshape(-1, DIM_Z)
        return diagonal_mahalanobis_sq(self._x[:, :DIM_Z], self.innovation_variances, z)

    def mahalanobis_sq_pairs(self, z: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """(P,) ``y' S^-1 y`` of filter ``rows[p]`` and box ``z[cols[p]]`` only (``S`` diagonal)."""
        z = np.asarray(z, dtype=float).reshape(-1, DIM_Z)
        return diagonal_mahalanobis_sq_pairs(self._x[:, :DIM_Z], self.innovation_variances, z, rows, cols)


class FilterList:
    """A :class:`BoxFilterBank` of single-track :class:`~object_permanence.core.kalman.BoxFilter`
    objects made by ``factory(box, params)`` (e.g. the filterpy reference ``BoxKalmanFilter``),
    stepped one by one.

    Args:
        factory: builds a filter from a first box (4,) and the noise scales.
        params: noise scales.
    """

    def __init__(self, factory: FilterFactory, params: BoxKalmanParams | None = None) -> None:
        if not callable(factory):
            raise ValueError(f"factory must be callable, got {factory!r}")
        self.params = params if params is not None else BoxKalmanParams()
        self._factory = factory
        self._filters: list[BoxFilter] = []
        self._steady = SteadySize()

    def __len__(self) -> int:
        return len(self._filters)

    @property
    def filters(self) -> list[BoxFilter]:
        """The filters, row order."""
        return list(self._filters)

    def append(self, z: np.ndarray) -> None:
        """Add filters at boxes ``z`` (K, 4)."""
        z = np.asarray(z, dtype=float).reshape(-1, DIM_Z)
        self._filters += [self._factory(b, self.params) for b in z]
        self._steady.append(z)

    def select(self, rows: np.ndarray) -> None:
        """Keep only ``rows``, in that order."""
        self._filters = [self._filters[int(i)] for i in rows]
        self._steady.select(rows)

    def predict(self, dt: float) -> None:
        """Predict every filter by ``dt`` seconds.

        Raises:
            ValueError: if ``dt`` is negative or not finite.
        """
        dt = _check_dt(dt)
        for f in self._filters:
            f.predict(dt)

    def update(self, rows: np.ndarray, z: np.ndarray) -> None:
        """Update filters ``rows`` with boxes ``z`` (K, 4)."""
        z = np.asarray(z, dtype=float).reshape(-1, DIM_Z)
        for i, b in zip(rows, z):
            self._filters[int(i)].update(b)
        self._steady.update(rows, z)

    def reinitialize(self, rows: np.ndarray, z: np.ndarray, velocity: np.ndarray) -> None:
        """Restart filters ``rows`` at boxes ``z`` (K, 4) with velocities (K, 2)."""
        z = np.asarray(z, dtype=float).reshape(-1, DIM_Z)
        velocity = np.asarray(velocity, dtype=float).reshape(-1, 2)
        for i, b, v in zip(rows, z, velocity):
            self._filters[int(i)].reinitialize(b, v)
        self._steady.restart(rows, z)

    def shift(self, rows: np.ndarray, dx: np.ndarray) -> None:
        """Add ``dx`` (K, 8) to the states of filters ``rows`` (``BoxFilter.shift``), keeping ``P``."""
        for i, d in zip(rows, np.asarray(dx, dtype=float).reshape(-1, DIM_X)):
            self._filters[int(i)].shift(d)

    @property
    def x(self) -> np.ndarray:
        """(N, 8) states."""
        return np.array([f.x for f in self._filters]).reshape(-1, DIM_X)

    @property
    def steady_sizes(self) -> np.ndarray:
        """(N, 2) steady ``w, h`` of each row's detected boxes, px."""
        return self._steady.sizes

    @property
    def boxes(self) -> np.ndarray:
        """(N, 4) boxes."""
        return np.array([f.box for f in self._filters]).reshape(-1, DIM_Z)

    @property
    def velocities(self) -> np.ndarray:
        """(N, 2) velocities."""
        return np.array([f.velocity for f in self._filters]).reshape(-1, 2)

    @property
    def box_covariances(self) -> np.ndarray:
        """(N, 4, 4) box covariances."""
        return np.array([f.box_covariance for f in self._filters]).reshape(-1, DIM_Z, DIM_Z)

    @property
    def innovation_covariances(self) -> np.ndarray:
        """(N, 4, 4) each filter's ``S``."""
        return np.array([f.innovation_covariance for f in self._filters]).reshape(-1, DIM_Z, DIM_Z)

    @property
    def innovation_variances(self) -> np.ndarray:
        """(N, 4) the diagonals of each filter's ``S``."""
        return diagonals(self.innovation_covariances)

    def mahalanobis_sq(self, z: np.ndarray) -> np.ndarray:
        """(N, M) squared Mahalanobis distances (each filter's ``S``, one batched whitening)."""
        z = np.asarray(z, dtype=float).reshape(-1, DIM_Z)
        return mahalanobis_sq_matrix(self.boxes, self.innovation_covariances, z)

    def mahalanobis_sq_pairs(self, z: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """(P,) squared Mahalanobis distances of the pairs (filter ``rows[p]``, box ``z[cols[p]]``)."""
        z = np.asarray(z, dtype=float).reshape(-1, DIM_Z)
        return mahalanobis_sq_pairs(self.boxes, self.innovation_covariances, z, rows, cols)
