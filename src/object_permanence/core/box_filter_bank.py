"""All tracks' box filters of one world model, stepped together.

The world model keeps one :class:`BoxFilterBank` (row ``i`` is its track ``i``) and calls one
predict, one gate (:meth:`BoxFilterBank.mahalanobis_sq`), one update and one re-initialisation per
frame, whatever the number of tracks. Two implementations:

* :class:`BatchedBoxKalman` (the default): the states stacked as ``x`` (N, 8) and the covariances
  as ``P`` (N, 8, 8); every equation is one numpy operation over all rows. Same model and same
  equations as :class:`~object_permanence.core.kalman.BoxKalmanFilter` (tested against it to 1e-9).
* :class:`FilterList`: one :class:`~object_permanence.core.kalman.BoxFilter` object per row from a
  factory (e.g. the filterpy reference), so any single-track filter runs in the world model and the
  world-model tests run over both.

State ``x = [cx, cy, w, h, vcx, vcy, vw, vh]`` (pixels, pixels/s), measurement ``z = [cx, cy, w, h]``.
"""
from __future__ import annotations

import math
from typing import Callable, Protocol

import numpy as np

from object_permanence.core.association import mahalanobis_sq_matrix
from object_permanence.core.constant_velocity import constant_velocity_model
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

    @property
    def boxes(self) -> np.ndarray:
        """(N, 4) ``cx, cy, w, h`` pixels (a copy)."""

    @property
    def velocities(self) -> np.ndarray:
        """(N, 2) box-centre velocities, pixels/s (a copy)."""

    @property
    def box_covariances(self) -> np.ndarray:
        """(N, 4, 4) covariances of ``cx, cy, w, h``, pixels² (a copy)."""

    def mahalanobis_sq(self, z: np.ndarray) -> np.ndarray:
        """(N, M) squared Mahalanobis distances of boxes ``z`` (M, 4) to each predicted box."""


class BatchedBoxKalman:
    """The constant-velocity box filter of :mod:`~object_permanence.core.kalman` for N tracks at
    once: ``x`` (N, 8), ``P`` (N, 8, 8), one numpy operation per equation over all rows.

    Predict uses the block form of ``F P F'`` (``F = [[I, dt I], [0, I]]``); update is filterpy's
    Joseph form, expanded with ``H = [I 0]``; the gate whitens residuals with the Cholesky factor
    of ``S`` (:func:`~object_permanence.core.association.mahalanobis_sq_matrix`).

    Args:
        params: noise scales.
    """

    def __init__(self, params: BoxKalmanParams | None = None) -> None:
        self.params = params if params is not None else BoxKalmanParams()
        self._x = np.zeros((0, DIM_X))
        self._P = np.zeros((0, DIM_X, DIM_X))

    def __len__(self) -> int:
        return self._x.shape[0]

    @property
    def x(self) -> np.ndarray:
        """(N, 8) copy of the states."""
        return self._x.copy()

    @property
    def P(self) -> np.ndarray:
        """(N, 8, 8) copy of the state covariances."""
        return self._P.copy()

    def _initial(self, z: np.ndarray, velocity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """States (K, 8) and covariances (K, 8, 8) of filters started at ``z`` (K, 4)."""
        k = z.shape[0]
        x = np.concatenate([z, velocity, np.zeros((k, 2))], axis=1)
        P = np.zeros((k, DIM_X, DIM_X))
        diag = np.arange(DIM_X)
        P[:, diag, diag] = initial_std(z, self.params) ** 2  # P0 = diag(sigma_0^2)
        return x, P

    def append(self, z: np.ndarray) -> None:
        """Add filters at boxes ``z`` (K, 4), zero velocity.

        Raises:
            ValueError: if a box is not finite or has w or h <= 0.
        """
        z = np.asarray(z, dtype=float).reshape(-1, DIM_Z)
        z = _check_boxes(z, z.shape[0])
        x, P = self._initial(z, np.zeros((z.shape[0], 2)))
        self._x = np.concatenate([self._x, x])
        self._P = np.concatenate([self._P, P])

    def select(self, rows: np.ndarray) -> None:
        """Keep only ``rows`` (int (K,)), in that order."""
        rows = np.asarray(rows, dtype=np.intp)
        self._x = self._x[rows]
        self._P = self._P[rows]

    def reinitialize(self, rows: np.ndarray, z: np.ndarray, velocity: np.ndarray) -> None:
        """Restart ``rows`` at boxes ``z`` (K, 4) with centre velocity ``velocity`` (K, 2) px/s; the
        size velocity restarts at zero and ``P`` at the initial covariance.

        Raises:
            ValueError: if a box is not finite or has w or h <= 0.
        """
        rows = np.asarray(rows, dtype=np.intp)
        z = _check_boxes(z, rows.shape[0])
        velocity = np.asarray(velocity, dtype=float).reshape(rows.shape[0], 2)
        self._x[rows], self._P[rows] = self._initial(z, velocity)

    def predict(self, dt: float) -> None:
        """Propagate all filters by ``dt`` seconds (``Q`` scaled with each box before the step);
        w, h are kept >= ``min_std_px``.

        Raises:
            ValueError: if ``dt`` is negative or not finite.
        """
        dt = _check_dt(dt)
        if len(self) == 0:
            return
        _, Q_unit = constant_velocity_model(dt, DIM_Z)
        a = np.tile(accel_std(self._x[:, :DIM_Z], self.params), 2)  # (N, 8) sqrt spectral densities
        x, P = self._x, self._P
        x[:, :DIM_Z] += dt * x[:, DIM_Z:]  # x = F x: p' = p + v dt
        P[:, :DIM_Z, :] += dt * P[:, DIM_Z:, :]  # F P: rows of p gain dt * rows of v
        P[:, :, :DIM_Z] += dt * P[:, :, DIM_Z:]  # (F P) F': columns likewise
        P += Q_unit * a[:, :, None] * a[:, None, :]  # P = F P F' + Q ; Q_ij = q_ij sqrt(s_i s_j)
        clamp_size(x, self.params)

    def update(self, rows: np.ndarray, z: np.ndarray) -> None:
        """Correct ``rows`` (int (K,), distinct) with boxes ``z`` (K, 4); R is scaled with each
        predicted box. Joseph form, as filterpy: ``P = (I-KH) P (I-KH)' + K R K'``, which with
        ``H = [I 0]`` and ``S = HPH' + R`` expands to ``P - K HP - (K HP)' + K S K'``."""
        rows = np.asarray(rows, dtype=np.intp)
        if rows.size == 0:
            return
        z = np.asarray(z, dtype=float).reshape(rows.shape[0], DIM_Z)
        x, P = self._x[rows], self._P[rows]
        r_var = measurement_std(x[:, :DIM_Z], self.params) ** 2  # R = diag(sigma_z^2), (K, 4)
        PHt = P[:, :, :DIM_Z]  # P H', (K, 8, 4)
        S = P[:, :DIM_Z, :DIM_Z].copy()
        diag = np.arange(DIM_Z)
        S[:, diag, diag] += r_var  # S = H P H' + R
        K = np.linalg.solve(S, PHt.transpose(0, 2, 1)).transpose(0, 2, 1)  # K = P H' S^-1 (S = S')
        y = z - x[:, :DIM_Z]  # y = z - H x
        x = x + (K @ y[:, :, None])[:, :, 0]  # x = x + K y
        KHP = K @ P[:, :DIM_Z, :]  # K H P, (K, 8, 8)
        KSKt = K @ S @ K.transpose(0, 2, 1)  # K S K'
        self._x[rows] = x
        self._P[rows] = P - KHP - KHP.transpose(0, 2, 1) + KSKt

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
        """(N, 4, 4) covariances of ``cx, cy, w, h``, pixels²."""
        return self._P[:, :DIM_Z, :DIM_Z].copy()

    @property
    def innovation_covariances(self) -> np.ndarray:
        """(N, 4, 4) ``S = H P H' + R`` for a measurement of each current state, pixels²."""
        S = self._P[:, :DIM_Z, :DIM_Z].copy()
        diag = np.arange(DIM_Z)
        S[:, diag, diag] += measurement_std(self._x[:, :DIM_Z], self.params) ** 2  # S = H P H' + R
        return S

    def mahalanobis_sq(self, z: np.ndarray) -> np.ndarray:
        """(N, M) ``y' S^-1 y``, ``y = z - H x``, for boxes ``z`` (M, 4) (Cholesky-whitened)."""
        z = np.asarray(z, dtype=float).reshape(-1, DIM_Z)
        return mahalanobis_sq_matrix(self._x[:, :DIM_Z], self.innovation_covariances, z)


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

    def __len__(self) -> int:
        return len(self._filters)

    @property
    def filters(self) -> list[BoxFilter]:
        """The filters, row order."""
        return list(self._filters)

    def append(self, z: np.ndarray) -> None:
        """Add filters at boxes ``z`` (K, 4)."""
        self._filters += [self._factory(b, self.params) for b in np.asarray(z, dtype=float).reshape(-1, DIM_Z)]

    def select(self, rows: np.ndarray) -> None:
        """Keep only ``rows``, in that order."""
        self._filters = [self._filters[int(i)] for i in rows]

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
        for i, b in zip(rows, np.asarray(z, dtype=float).reshape(-1, DIM_Z)):
            self._filters[int(i)].update(b)

    def reinitialize(self, rows: np.ndarray, z: np.ndarray, velocity: np.ndarray) -> None:
        """Restart filters ``rows`` at boxes ``z`` (K, 4) with velocities (K, 2)."""
        z = np.asarray(z, dtype=float).reshape(-1, DIM_Z)
        velocity = np.asarray(velocity, dtype=float).reshape(-1, 2)
        for i, b, v in zip(rows, z, velocity):
            self._filters[int(i)].reinitialize(b, v)

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

    def mahalanobis_sq(self, z: np.ndarray) -> np.ndarray:
        """(N, M) squared Mahalanobis distances (each filter's ``S``, one batched whitening)."""
        z = np.asarray(z, dtype=float).reshape(-1, DIM_Z)
        S = np.array([f.innovation_covariance for f in self._filters]).reshape(-1, DIM_Z, DIM_Z)
        return mahalanobis_sq_matrix(self.boxes, S, z)
