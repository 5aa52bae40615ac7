"""The 3D constant-velocity Kalman filter of one stereo track, with a validation gate.

State ``x = [x y z vx vy vz]`` (metres, m/s, left optical frame); measurement: a triangulated
position ``z`` (3,) with its propagated covariance ``R`` (3, 3), so ``H = [I 0]``. The transition
and the process noise are the shared constant-velocity model
(:func:`object_permanence.core.constant_velocity.constant_velocity_model`), rebuilt for each ``dt``.

Each measurement is an independent triangulation of one frame's raw observations (detections and
image disparity), so the filter sees what a Kalman filter assumes: white measurement noise.

While the pair is a ghost there is no triangulation. The filter then predicts with a *damped*
velocity (:meth:`Track3DFilter.predict` with ``damping_s``: a velocity estimated from a few noisy
depths must not be extrapolated for seconds), and may take the *bearing* of a 2D box
(:meth:`Track3DFilter.update_bearing`, the lateral position of that ray at the filter's depth): it
keeps the 3D ghost on the ray of the 2D ghost at its own depth.
"""
from __future__ import annotations

import math

import numpy as np

from object_permanence.core.constant_velocity import constant_velocity_model

#: The filter measures the position out of the state ``[x y z vx vy vz]``: H = [I 0].
_H = np.hstack([np.eye(3), np.zeros((3, 3))])
_I6 = np.eye(6)


class Track3DFilter:
    """Constant-velocity filter of one 3D track, started at a triangulated position with zero velocity.

    The predict and update steps are ``filterpy.kalman.KalmanFilter``'s, operation for operation
    (the same products in the same order, so the same numbers to the bit; the tests compare the
    two), without its per-call bookkeeping (prior/posterior copies, likelihood fields), which cost
    more than the 6x6 algebra itself at a few filters a frame.

    Args:
        position: (3,) metres; covariance: (3, 3) m², its uncertainty.
        velocity_std_mps: standard deviation (m/s) of the unknown initial velocity.

    Raises:
        ValueError: when position or covariance is malformed or not finite, or velocity_std_mps is
            not positive and finite.
    """

    def __init__(self, position: np.ndarray, covariance: np.ndarray, velocity_std_mps: float) -> None:
        if not (math.isfinite(velocity_std_mps) and velocity_std_mps > 0):
            raise ValueError(f"velocity_std_mps must be finite and positive, got {velocity_std_mps!r}")
        self._velocity_std = float(velocity_std_mps)
        self._x = np.zeros((6, 1))  # state [x y z vx vy vz]', metres and m/s
        self._p = np.zeros((6, 6))  # its covariance
        self.rejected = 0  # consecutive measurements outside the validation gate
        self.reinitialize(position, covariance)

    def reinitialize(self, position: np.ndarray, covariance: np.ndarray) -> None:
        """Restart at ``position`` (3,) m with covariance (3, 3) m², velocity 0 ± ``velocity_std_mps``.

        Raises:
            ValueError: when position or covariance is malformed or not finite.
        """
        position = np.asarray(position, dtype=np.float64)
        covariance = np.asarray(covariance, dtype=np.float64)
        if position.shape != (3,) or not np.all(np.isfinite(position)):
            raise ValueError(f"position must be 3 finite numbers, got {position.tolist()}")
        if covariance.shape != (3, 3) or not np.all(np.isfinite(covariance)):
            raise ValueError(f"covariance must be a finite (3, 3) matrix, got {covariance.tolist()}")
        self._x = np.concatenate([position, np.zeros(3)])[:, None]
        self._p = np.zeros((6, 6))
        self._p[:3, :3] = covariance
        self._p[3:, 3:] = self._velocity_std**2 * np.eye(3)
        self.rejected = 0

    def predict(self, dt: float, accel_noise: float, damping_s: float | None = None) -> None:
        """Propagate by ``dt`` seconds; ``accel_noise`` is the square root of the spectral density of
        the white-noise acceleration (m s^-1.5): velocity variance grows by accel_noise² m²/s² per s.

        damping_s: when given (seconds, > 0), the velocity decays with this time constant over the
            step, ``v' = a v`` with ``a = exp(-dt / τ)``, and the position moves by the integral of
            that velocity, ``p' = p + τ (1 - a) v`` (constant velocity as τ → ∞); the process noise
            is the constant-velocity one.

        Raises:
            ValueError: when ``dt`` is negative or not finite, or ``damping_s`` is not positive.
        """
        f, q_unit = constant_velocity_model(float(dt), 3)
        if damping_s is not None:
            if not (math.isfinite(damping_s) and damping_s > 0):
                raise ValueError(f"damping_s must be finite and positive, got {damping_s!r}")
            a = math.exp(-dt / damping_s)
            f = f.copy()
            f[:3, 3:] = damping_s * (1.0 - a) * np.eye(3)  # p' = p + τ (1 - a) v
            f[3:, 3:] = a * np.eye(3)  # v' = a v
        q = accel_noise**2 * q_unit
        self._x = np.dot(f, self._x)  # x = F x
        self._p = np.dot(np.dot(f, self._p), f.T) + q  # P = F P F' + Q

    def innovation_d2(self, z: np.ndarray, r: np.ndarray) -> float:
        """Squared Mahalanobis distance ``y' S⁻¹ y`` of measurement ``z`` (3,) with covariance ``r`` (3, 3)."""
        y = np.asarray(z, dtype=np.float64) - (_H @ self._x)[:, 0]  # y = z - H x
        s = _H @ self._p @ _H.T + r  # S = H P H' + R
        return float(y @ np.linalg.solve(s, y))

    def update(self, z: np.ndarray, r: np.ndarray) -> None:
        """Kalman update with position ``z`` (3,) m and its covariance ``r`` (3, 3) m²."""
        z = np.asarray(z, dtype=np.float64).reshape(3, 1)
        y = z - np.dot(_H, self._x)  # y = z - H x
        pht = np.dot(self._p, _H.T)
        s = np.dot(_H, pht) + r  # S = H P H' + R
        k = np.dot(pht, np.linalg.inv(s))  # K = P H' S⁻¹
        self._x = self._x + np.dot(k, y)  # x = x + K y
        i_kh = _I6 - np.dot(k, _H)
        # Joseph form: P = (I - KH) P (I - KH)' + K R K'
        self._p = np.dot(np.dot(i_kh, self._p), i_kh.T) + np.dot(np.dot(k, r), k.T)

    def gated_update(self, z: np.ndarray, r: np.ndarray, gate_d2: float, max_rejected: int) -> bool:
        """Update only inside the validation gate ``y' S⁻¹ y <= gate_d2``; returns whether ``z`` was fused.

        A triangulation outside it (a partly hidden object whose image match latched onto the
        occluder, a bad pairing, a detector outlier) is skipped and the filter coasts; after
        ``max_rejected`` rejections in a row the filter restarts at the measurement (the object
        itself has moved on).
        """
        if self.innovation_d2(z, r) <= gate_d2:
            self.update(z, r)
            self.rejected = 0
            return True
        self.rejected += 1
        if self.rejected > max_rejected:
            self.reinitialize(z, r)
        return False

    def update_bearing(self, uv: np.ndarray, r_uv: np.ndarray, fx: float, fy: float, cx: float, cy: float) -> bool:
        """Update the lateral position with the pixel ``uv`` (2,) of the point in a pinhole camera at
        the origin (``fx, fy, cx, cy`` pixels), pixel covariance ``r_uv`` (2, 2), at the filter's own
        depth Z: the measurement is the point of that ray at depth Z, ``X = (u - cx) Z / fx``,
        ``Y = (v - cy) Z / fy``, with ``R = J r_uv J'``, ``J = diag(Z / fx, Z / fy)``, and ``H`` picks
        X and Y. A pixel says nothing about the depth, so the depth is not what this corrects (a
        bearing-only extended update would explain a lateral offset by moving the depth, the least
        known coordinate): the gain's Z and vz rows are zeroed. The optimal gain would move them
        too wherever the state's covariance correlates X or Y with Z (a triangulation's does: its
        lateral error scales with its depth error), which is the same depth-from-a-pixel shift by
        another route. With that suboptimal gain the covariance update is the Joseph form, valid
        for any gain. Returns False (no update) when ``uv`` or ``r_uv`` is not finite or the state
        is not in front of the camera.
        """
        uv, r_uv = np.asarray(uv, dtype=np.float64), np.asarray(r_uv, dtype=np.float64)
        z = float(self._x[2, 0])
        if not (np.all(np.isfinite(uv)) and np.all(np.isfinite(r_uv)) and z > 0):
            return False
        lateral = np.array([(uv[0] - cx) * z / fx, (uv[1] - cy) * z / fy])  # X = (u - cx) Z / fx, Y likewise
        jac = np.diag([z / fx, z / fy])
        r = jac @ r_uv @ jac.T  # R = J r J'
        h = np.zeros((2, 6))
        h[0, 0] = h[1, 1] = 1.0
        p = self._p
        y = lateral - self._x[:2, 0]  # y = z - H x
        k = np.linalg.solve(h @ p @ h.T + r, h @ p).T  # K = P H' (H P H' + R)⁻¹ (P, S symmetric)
        k[[2, 5]] = 0.0  # no depth correction from a pixel: Z and vz rows of K zeroed
        self._x = self._x + k @ y[:, None]  # x += K y
        i_kh = np.eye(6) - k @ h
        self._p = i_kh @ p @ i_kh.T + k @ r @ k.T  # Joseph form: P = (I - KH) P (I - KH)' + K R K'
        return True

    @property
    def position(self) -> np.ndarray:
        """(3,) metres (a copy)."""
        return self._x[:3, 0].copy()

    @property
    def velocity(self) -> np.ndarray:
        """(3,) m/s (a copy)."""
        return self._x[3:, 0].copy()

    @property
    def covariance(self) -> np.ndarray:
        """(3, 3) position covariance, m², symmetrised."""
        p = self._p[:3, :3]
        return 0.5 * (p + p.T)
