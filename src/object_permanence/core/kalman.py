"""Constant-velocity Kalman filter for one image-plane box.

State ``x = [cx, cy, w, h, vcx, vcy, vw, vh]`` (pixels, pixels/s), measurement
``z = [cx, cy, w, h]`` (pixels). Time steps are variable (``dt`` in seconds, from message
stamps), so the transition ``F`` and the process noise ``Q`` are rebuilt for each ``dt``.

Noise is scaled with the box size (``cx`` and ``w`` with the width, ``cy`` and ``h`` with the
height), so a far (small) and a near (large) object moving alike *relative to their size* get the
same filter behaviour. ``Q`` is the continuous white-noise acceleration model integrated over
``dt`` (``filterpy.common.Q_continuous_white_noise``): one prediction over ``T`` and ``N``
predictions over ``T / N`` give the same covariance, so a ghost's uncertainty does not depend on
the camera rate or on dropped frames. ``R`` is diagonal.

The noise terms are written once, vectorised over N boxes (:func:`measurement_std`,
:func:`initial_std`, :func:`accel_std`, :func:`clamp_size`), and shared by the single-track
filterpy filter here (the reference implementation) and the batched filter of
:mod:`object_permanence.core.box_filter_bank` that the world model runs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Callable, Protocol

import numpy as np
from filterpy.kalman import KalmanFilter

from object_permanence.core.association import mahalanobis_sq_matrix
from object_permanence.core.constant_velocity import constant_velocity_model

DIM_X = 8
DIM_Z = 4

#: A linear motion model: ``(dt, n_axes) -> (F, Q_unit)``, both (2 n_axes, 2 n_axes), state order
#: all positions then all velocities (e.g. :func:`constant_velocity_model`).
MotionModel = Callable[[float, int], tuple[np.ndarray, np.ndarray]]

# H: the measurement picks the box out of the state.
_H = np.hstack([np.eye(DIM_Z), np.zeros((DIM_Z, DIM_Z))])


@dataclass(frozen=True)
class BoxKalmanParams:
    """Noise scales of the box filter, as fractions of the box size (dimensionless).

    measurement_std_frac: measurement noise std of ``cx, w`` (``cy, h``) per pixel of width (height).
    accel_std_frac: square root of the spectral density of the centre's white-noise acceleration,
        box sizes per s^1.5 (velocity variance grows by accel_std_frac² box sizes² per s).
    size_accel_std_frac: the same for ``w, h``.
    init_velocity_std_frac: std of the (unknown) velocity of a new track, box sizes per s.
    min_std_px: floor on every std in pixels (and on w, h after a prediction), so that tiny
        boxes keep a non-singular covariance.
    velocity_time_constant_s: motion_model damped: seconds in which an unobserved velocity decays to 1/e (an Ornstein-Uhlenbeck velocity).
    imm_jerk_std_frac: motion_model imm: square root of the spectral density of the centre's white-noise jerk in the constant-acceleration mode, box sizes per s^2.5.
    imm_switch_time_s: motion_model imm: mean time between switches of the motion mode, s.
    """

    measurement_std_frac: float = 0.05
    accel_std_frac: float = 0.18
    size_accel_std_frac: float = 0.046
    init_velocity_std_frac: float = 1.0
    min_std_px: float = 1.0
    velocity_time_constant_s: float = 8.0
    imm_jerk_std_frac: float = 0.1
    imm_switch_time_s: float = 1.0

    def __post_init__(self) -> None:
        for f in fields(self):
            positive_finite(f.name, getattr(self, f.name))


def positive_finite(name: str, value: float) -> float:
    """``value`` as a float when it is a positive finite number (not a bool).

    Raises:
        ValueError: naming ``name`` and the value, otherwise.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


#: The columns ``w, h, w, h`` of a box ``cx, cy, w, h``.
_SIZE_COLUMNS = np.array([2, 3, 2, 3])


def size_scale(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) size each of ``cx, cy, w, h`` is scaled with, ``w, h, w, h``, for boxes (N, 4)."""
    return boxes.take(_SIZE_COLUMNS, axis=1)


def measurement_std(boxes: np.ndarray, p: BoxKalmanParams) -> np.ndarray:
    """(N, 4) measurement noise std of ``cx, cy, w, h`` (pixels) for predicted boxes (N, 4);
    ``R = diag(std²)``."""
    return np.maximum(p.measurement_std_frac * size_scale(boxes), p.min_std_px)  # sigma_z = max(f s, floor)


def initial_std(boxes: np.ndarray, p: BoxKalmanParams) -> np.ndarray:
    """(N, 8) std of a new state at boxes (N, 4): twice the measurement noise on the box, the
    unknown velocity's ``init_velocity_std_frac`` box sizes per s; ``P0 = diag(std²)``."""
    size = size_scale(boxes)
    pos_std = np.maximum(2.0 * p.measurement_std_frac * size, p.min_std_px)
    vel_std = np.maximum(p.init_velocity_std_frac * size, p.min_std_px)
    return np.concatenate([pos_std, vel_std], axis=1)


def accel_std(boxes: np.ndarray, p: BoxKalmanParams) -> np.ndarray:
    """(N, 4) square roots of the white-noise acceleration spectral densities of ``cx, cy, w, h``
    for boxes (N, 4) (pixels per s^1.5)."""
    fracs = np.array([p.accel_std_frac, p.accel_std_frac, p.size_accel_std_frac, p.size_accel_std_frac])
    return np.maximum(size_scale(boxes) * fracs, p.min_std_px)


def clamp_size(x: np.ndarray, p: BoxKalmanParams) -> None:
    """In place on states (N, 8): a box cannot shrink below the floor; ``w, h`` below
    ``min_std_px`` are set to it and their velocities stop shrinking (``v = max(v, 0)``)."""
    small = x[:, 2:4] < p.min_std_px
    if small.any():
        x[:, 2:4][small] = p.min_std_px
        x[:, 6:8][small] = np.maximum(x[:, 6:8][small], 0.0)


class BoxFilter(Protocol):
    """What the world model needs from a box filter (see :class:`BoxKalmanFilter`)."""

    def predict(self, dt: float) -> None:
        """Propagate the state by ``dt`` seconds (``dt >= 0``)."""

    def update(self, z: np.ndarray) -> None:
        """Correct the state with a measured box ``z`` (4,) ``cx, cy, w, h`` pixels."""

    def reinitialize(self, z: np.ndarray, velocity: np.ndarray) -> None:
        """Restart at box ``z`` (4,) with centre velocity ``velocity`` (2,) px/s."""

    def shift(self, dx: np.ndarray) -> None:
        """Add ``dx`` (8,) to the state, keeping the covariance."""

    @property
    def x(self) -> np.ndarray:
        """(8,) state ``cx, cy, w, h, vcx, vcy, vw, vh``."""

    @property
    def box(self) -> np.ndarray:
        """(4,) ``cx, cy, w, h`` pixels."""

    @property
    def velocity(self) -> np.ndarray:
        """(2,) velocity of the box centre, pixels/s."""

    @property
    def box_covariance(self) -> np.ndarray:
        """(4, 4) covariance of ``cx, cy, w, h``, pixels²."""

    @property
    def innovation_covariance(self) -> np.ndarray:
        """(4, 4) ``S = H P H' + R`` for a measurement of the current state, pixels²."""

    def mahalanobis_sq(self, z: np.ndarray) -> np.ndarray:
        """(N,) squared Mahalanobis distances of boxes ``z`` (N, 4) to the predicted measurement."""


class BoxKalmanFilter:
    """Constant-velocity box filter on top of ``filterpy.kalman.KalmanFilter``.

    Args:
        box: (4,) initial ``cx, cy, w, h`` pixels (w, h > 0); the velocity starts at zero.
        params: noise scales.
        model: the transition and unit process noise for a ``dt``; default constant velocity,
            e.g. ``functools.partial(damped_velocity_model, time_constant_s=2.0)`` for the
            reference of :class:`~object_permanence.core.damped_velocity.DampedVelocityBank`.

    Raises:
        ValueError: if ``box`` is not 4 finite numbers with positive w, h, or ``model`` is not callable.
    """

    def __init__(self, box: np.ndarray, params: BoxKalmanParams | None = None,
                 model: MotionModel = constant_velocity_model) -> None:
        if not callable(model):
            raise ValueError(f"model must be callable, got {model!r}")
        self.params = params if params is not None else BoxKalmanParams()
        self._model = model
        self._kf = KalmanFilter(dim_x=DIM_X, dim_z=DIM_Z)
        self._kf.H = _H.copy()
        self.reinitialize(box, np.zeros(2))

    def _measurement_noise(self) -> np.ndarray:
        """R (4, 4) for the current box."""
        return np.diag(measurement_std(self.box[None], self.params)[0] ** 2)  # R = diag(sigma_z^2)

    def reinitialize(self, z: np.ndarray, velocity: np.ndarray) -> None:
        """Restart the filter at box ``z`` (4,) with centre velocity ``velocity`` (2,) px/s.

        The size velocity restarts at zero and ``P`` at the initial covariance. Used for a new
        track and when a ghost is re-identified after a gap too long for its prediction.
        """
        z = np.asarray(z, dtype=float)
        if not (z.shape == (DIM_Z,) and np.all(np.isfinite(z)) and z[2] > 0 and z[3] > 0):
            raise ValueError(f"box must be 4 finite numbers with w, h > 0, got {z!r}")
        velocity = np.asarray(velocity, dtype=float).reshape(2)
        self._kf.x = np.concatenate([z, velocity, np.zeros(2)]).reshape(DIM_X, 1)
        self._kf.P = np.diag(initial_std(z[None], self.params)[0] ** 2)  # P0 = diag(sigma_0^2)

    def shift(self, dx: np.ndarray) -> None:
        """Add ``dx`` (8,) to the state, keeping ``P``; w, h are kept >= ``min_std_px``."""
        self._kf.x = self._kf.x + np.asarray(dx, dtype=float).reshape(DIM_X, 1)
        clamp_size(self._kf.x.reshape(1, DIM_X), self.params)

    def predict(self, dt: float) -> None:
        """Propagate by ``dt`` seconds; w, h are kept >= ``min_std_px`` (and not shrinking there).

        Raises:
            ValueError: if ``dt`` is negative or not finite.
        """
        if not (math.isfinite(dt) and dt >= 0.0):
            raise ValueError(f"dt must be a finite number >= 0, got {dt!r}")
        F, Q_unit = self._model(float(dt), DIM_Z)
        a = np.tile(accel_std(self.box[None], self.params)[0], 2)
        self._kf.F = F
        self._kf.Q = Q_unit * np.outer(a, a)  # Q_ij = q_ij sqrt(s_i s_j), s the spectral densities
        self._kf.predict()  # x = F x ; P = F P F' + Q
        clamp_size(self._kf.x.reshape(1, DIM_X), self.params)  # (8, 1) -> a (1, 8) view

    def update(self, z: np.ndarray) -> None:
        """Correct with the measured box ``z`` (4,); R is scaled with the predicted box size."""
        self._kf.R = self._measurement_noise()
        # y = z - H x ; S = H P H' + R ; K = P H' S^-1 ; x = x + K y ; P = (I-KH) P (I-KH)' + K R K'
        self._kf.update(np.asarray(z, dtype=float).reshape(DIM_Z, 1))

    @property
    def x(self) -> np.ndarray:
        """(8,) copy of the full state."""
        return self._kf.x[:, 0].copy()

    @property
    def P(self) -> np.ndarray:
        """(8, 8) copy of the state covariance."""
        return self._kf.P.copy()

    @property
    def box(self) -> np.ndarray:
        """(4,) ``cx, cy, w, h`` pixels."""
        return self._kf.x[:DIM_Z, 0].copy()

    @property
    def velocity(self) -> np.ndarray:
        """(2,) velocity of the box centre, pixels/s."""
        return self._kf.x[DIM_Z:DIM_Z + 2, 0].copy()

    @property
    def box_covariance(self) -> np.ndarray:
        """(4, 4) covariance of ``cx, cy, w, h``, pixels²."""
        return self._kf.P[:DIM_Z, :DIM_Z].copy()

    @property
    def innovation_covariance(self) -> np.ndarray:
        """(4, 4) innovation covariance of a measurement of the current state."""
        H = self._kf.H
        return H @ self._kf.P @ H.T + self._measurement_noise()  # S = H P H' + R

    def mahalanobis_sq(self, z: np.ndarray) -> np.ndarray:
        """(N,) ``y' S^-1 y`` with ``y = z - H x`` for boxes ``z`` (N, 4)."""
        z = np.asarray(z, dtype=float).reshape(-1, DIM_Z)
        return mahalanobis_sq_matrix(self.box[None], self.innovation_covariance[None], z)[0]
