"""The constant-velocity motion model: one home for the transition ``F`` and the white-noise
acceleration process noise ``Q`` of any number of axes.

State order: all positions, then all velocities, ``x = [p_1 .. p_n, v_1 .. v_n]``. Over ``dt``
seconds each axis moves ``p <- p + v dt, v <- v`` and gains the covariance of a continuous white
acceleration of unit spectral density integrated over ``dt`` (``filterpy.common.Q_continuous_white_noise``)::

    F = [[I, dt I], [0, I]],    Q_axis = [[dt³/3, dt²/2], [dt²/2, dt]]

One prediction over ``T`` and ``N`` predictions over ``T / N`` give the same covariance, so a
filter's uncertainty does not depend on the frame rate. A filter scales ``Q`` by its spectral
densities (``Q_ij = q_ij sqrt(s_i s_j)``).
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from filterpy.common import Q_continuous_white_noise


def constant_velocity_model(dt: float, n_axes: int) -> tuple[np.ndarray, np.ndarray]:
    """``F`` and unit-spectral-density ``Q``, both (2 n_axes, 2 n_axes) and read-only, for ``dt`` seconds.

    Cached: at a fixed frame rate ``dt`` repeats. The arguments are checked before the cache is
    looked up (``True`` hashes like ``1`` and must still be rejected).

    Raises:
        ValueError: when ``dt`` is negative or not finite, or ``n_axes`` is not an integer >= 1.
    """
    if isinstance(dt, bool) or not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt >= 0.0):
        raise ValueError(f"dt must be a finite number >= 0, got {dt!r}")
    if isinstance(n_axes, bool) or not isinstance(n_axes, int) or n_axes < 1:
        raise ValueError(f"n_axes must be an integer >= 1, got {n_axes!r}")
    return _cached_model(float(dt), int(n_axes))


@lru_cache(maxsize=64)
def _cached_model(dt: float, n_axes: int) -> tuple[np.ndarray, np.ndarray]:
    f = np.eye(2 * n_axes)
    f[:n_axes, n_axes:] = dt * np.eye(n_axes)  # p' = p + v dt ; v' = v
    q = Q_continuous_white_noise(dim=2, dt=dt, spectral_density=1.0, block_size=n_axes, order_by_dim=False)
    f.flags.writeable = False
    q.flags.writeable = False
    return f, q
