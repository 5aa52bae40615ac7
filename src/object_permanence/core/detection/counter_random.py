"""Counter-based random numbers: reproducible draws addressed by integer keys, vectorised.

The detector simulator must be a pure function of (seed, frame, camera, truth) with random access
by frame, and one entry's fate must not depend on which other entries are present. Seeding one
``numpy.random.Generator`` per (object, frame) would need a Python loop over objects; a
counter-based generator instead hashes a key such as ``(seed, purpose, object id, frame)`` to a
number, elementwise over numpy arrays. The hash is splitmix64's step and finaliser (Steele, Lea and
Flood, "Fast splittable pseudorandom number generators", OOPSLA 2014), chained over the key's parts.
"""
from __future__ import annotations

import numpy as np
from scipy.special import betaincinv, gammaln, ndtri

_MASK64 = (1 << 64) - 1
_GAMMA_INT, _MUL1_INT, _MUL2_INT = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
_GAMMA, _MUL1, _MUL2 = np.uint64(_GAMMA_INT), np.uint64(_MUL1_INT), np.uint64(_MUL2_INT)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)


def _mix_int(state: int, key: int) -> int:
    """One splitmix64 step on Python integers (scalar key parts: no numpy overhead)."""
    state = ((state ^ (key & _MASK64)) + _GAMMA_INT) & _MASK64  # s = (s xor k) + gamma
    state = ((state ^ (state >> 30)) * _MUL1_INT) & _MASK64
    state = ((state ^ (state >> 27)) * _MUL2_INT) & _MASK64
    return state ^ (state >> 31)


def _mix_array(state: np.ndarray | np.uint64, key: np.ndarray | np.uint64) -> np.ndarray:
    """The same step elementwise on uint64 arrays (broadcast), modulo 2**64."""
    state = (state ^ key) + _GAMMA
    state = (state ^ (state >> _S30)) * _MUL1
    state = (state ^ (state >> _S27)) * _MUL2
    return state ^ (state >> _S31)


def uniform(*keys: int | np.ndarray) -> np.ndarray:
    """Uniform numbers in the open interval (0, 1), one per element of the broadcast ``keys``.

    keys: integers or integer arrays (broadcast together); equal keys give equal numbers, and
    keys differing in any part give independent-looking numbers. Returns a float64 array of the
    broadcast shape. Scalar parts before the first array are mixed in Python: put arrays last for speed.
    """
    state: int | np.ndarray = 0
    for key in keys:
        if isinstance(key, np.ndarray) and key.ndim > 0:
            part = key.astype(np.int64, copy=False).astype(np.uint64)  # two's complement for negatives
            state = _mix_array(np.uint64(state) if isinstance(state, int) else state, part)
        elif isinstance(state, int):
            state = _mix_int(state, int(key))
        else:
            state = _mix_array(state, np.uint64(int(key) & _MASK64))
    # arrays of uint64 wrap modulo 2**64 without warnings (only numpy scalars warn)
    return ((np.asarray(state, dtype=np.uint64) >> _S11).astype(np.float64) + 0.5) * 2.0**-53  # -> (0, 1)


def normal(*keys: int | np.ndarray) -> np.ndarray:
    """Standard normal numbers (inverse CDF of :func:`uniform`), one per element of the keys."""
    return ndtri(uniform(*keys))


def beta(a: np.ndarray | float, b: np.ndarray | float, *keys: int | np.ndarray) -> np.ndarray:
    """Beta(a, b) numbers (inverse CDF of :func:`uniform`), broadcast over a, b and the keys."""
    return betaincinv(a, b, uniform(*keys))


def geometric(u: np.ndarray, q: np.ndarray, cap: int) -> np.ndarray:
    """Geometric lengths on {1, 2, ...} with success chance ``q`` from uniforms ``u`` (inverse CDF),
    capped at ``cap`` (also the length when ``q`` is 0).

    P(n >= m + 1) = (1 - q)^m, so n = 1 + floor(log u / log(1 - q)).
    """
    q = np.broadcast_to(np.asarray(q, dtype=np.float64), np.shape(u))
    with np.errstate(divide="ignore", invalid="ignore"):
        n = 1.0 + np.floor(np.log(u) / np.log1p(-np.minimum(q, 1.0)))
    n = np.where(q >= 1.0, 1.0, np.where(q <= 0.0, cap, n))
    return np.clip(np.nan_to_num(n, nan=cap, posinf=cap), 1, cap).astype(np.int64)


def poisson(u: float | np.ndarray, mean: float, cap: int = 64) -> np.ndarray:
    """Poisson(mean) counts from uniforms ``u`` (inverse CDF), at most ``cap``.

    n = number of k in [0, cap) with F(k) <= u, F the CDF: P(k) = mean^k e^-mean / k!.
    """
    k = np.arange(cap)
    log_pmf = k * np.log(mean) - mean - gammaln(k + 1.0) if mean > 0 else np.where(k == 0, 0.0, -np.inf)
    cdf = np.cumsum(np.exp(log_pmf))
    return (np.asarray(u)[..., None] >= cdf).sum(axis=-1)
