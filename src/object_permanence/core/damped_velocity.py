"""The damped-velocity motion model: an Ornstein-Uhlenbeck velocity, discretised exactly.

Each axis ``(p, v)`` follows ``dp = v dt``, ``dv = -v / tau dt + dW`` (``W`` a unit-density Wiener
process, scaled per filter as in constant velocity). An unobserved velocity decays to ``1/e`` in
``tau`` seconds, so a ghost's predicted box comes to rest after about ``tau`` instead of moving
on in a straight line for ever: objects on curved paths end nearer the prediction, and a ghost
extrapolated over seconds does not run away. The exact discretisation over ``dt`` (``a = dt/tau``,
``phi = exp(-a)``, ``e = 1 - phi``)::

    F = [[1, tau e], [0, phi]]
    Q = [[tau³ (a - e - e²/2), tau² e²/2], [tau² e²/2, tau (1 - phi²)/2]]

holds for any ``dt`` (one step over ``T`` equals ``N`` steps over ``T/N``), and tends to the
constant-velocity ``F = [[1, dt], [0, 1]]``, ``Q = [[dt³/3, dt²/2], [dt²/2, dt]]`` as
``tau -> inf``. ``e`` and ``1 - phi²`` come from ``expm1``; ``a - e - e²/2`` (cancelling to
``a³/3`` for small ``a``) from its Taylor series below ``a = 0.5``.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from object_permanence.core.box_filter_bank import BatchedBoxKalman
from object_permanence.core.kalman import BoxKalmanParams, positive_finite


# a - e - e²/2 = sum_{n>=3} (-1)^n (2 - 2^(n-1)) a^n / n!  (series of a - 3/2 + 2 e^-a - e^-2a / 2)
_SERIES_N = np.arange(3, 24)
_SERIES_C = np.array([(-1.0) ** n * (2.0 - 2.0 ** (n - 1)) / math.factorial(n) for n in _SERIES_N])
_SERIES_BELOW = 0.5


def ou_terms(dt: float, time_constant_s: float) -> tuple[float, float, float, float, float]:
    """``(b, phi, q_pp, q_pv, q_vv)`` of one axis over ``dt`` seconds: ``p' = p + b v``,
    ``v' = phi v`` and the unit-density process noise (module docstring).

    Raises:
        ValueError: ``dt`` negative or not finite, ``time_constant_s`` not positive and finite.
    """
    if not (isinstance(dt, (int, float, np.floating)) and math.isfinite(dt) and dt >= 0.0):
        raise ValueError(f"dt must be a finite number >= 0, got {dt!r}")
    tau = positive_finite("time_constant_s", time_constant_s)
    a = dt / tau
    e = -math.expm1(-a)  # e = 1 - phi
    phi = 1.0 - e  # phi = exp(-dt / tau)
    if a < _SERIES_BELOW:
        g = float(np.dot(_SERIES_C, a ** _SERIES_N))  # g = a - e - e²/2, no cancellation
    else:
        g = a - e - 0.5 * e * e
    q_pp = tau ** 3 * g  # int_0^dt tau² (1 - e^(-u/tau))² du
    q_pv = 0.5 * tau ** 2 * e * e  # int_0^dt tau (1 - e^(-u/tau)) e^(-u/tau) du
    q_vv = -0.5 * tau * math.expm1(-2.0 * a)  # int_0^dt e^(-2u/tau) du
    return tau * e, phi, q_pp, q_pv, q_vv


@lru_cache(maxsize=64)
def damped_velocity_model(dt: float, n_axes: int, time_constant_s: float) -> tuple[np.ndarray, np.ndarray]:
    """``F`` and unit-spectral-density ``Q``, both (2 n_axes, 2 n_axes), read-only, state order
    all positions then all velocities (as :func:`~object_permanence.core.constant_velocity.constant_velocity_model`).

    Raises:
        ValueError: bad ``dt`` or ``time_constant_s``; ``n_axes`` not an integer >= 1.
    """
    if isinstance(n_axes, bool) or not isinstance(n_axes, int) or n_axes < 1:
        raise ValueError(f"n_axes must be an integer >= 1, got {n_axes!r}")
    b, phi, q_pp, q_pv, q_vv = ou_terms(dt, time_constant_s)
    eye = np.eye(n_axes)
    F = np.kron(np.array([[1.0, b], [0.0, phi]]), eye)  # p' = p + b v ; v' = phi v
    Q = np.kron(np.array([[q_pp, q_pv], [q_pv, q_vv]]), eye)
    F.flags.writeable = False
    Q.flags.writeable = False
    return F, Q


class DampedVelocityBank(BatchedBoxKalman):
    """:class:`~object_permanence.core.box_filter_bank.BatchedBoxKalman` with damped velocities:
    every velocity (centre and size) decays with ``time_constant_s``; the rest (noise scales,
    update, gate) is the constant-velocity bank's.

    Args:
        params: noise scales (the spectral densities drive the velocity's random walk as in
            constant velocity).
        time_constant_s: seconds for an unobserved velocity to decay to 1/e (default
            ``params.velocity_time_constant_s``).

    Raises:
        ValueError: ``time_constant_s`` not a positive finite number.
    """

    def __init__(self, params: BoxKalmanParams | None = None, time_constant_s: float | None = None) -> None:
        super().__init__(params)
        self.time_constant_s = positive_finite(
            "time_constant_s", self.params.velocity_time_constant_s if time_constant_s is None else time_constant_s)

    def _transition(self, dt: float) -> tuple[float, float, float, float, float]:
        return ou_terms(dt, self.time_constant_s)
