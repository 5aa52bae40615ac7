"""The published box of matched tracks: a gain matched to the persistent innovation excess.

The box filter's size model (constant velocity, small ``size_accel_std_frac``) suits rigid objects.
The box of an articulated object — a walking person — changes width from frame to frame with the
gait in a way no smooth model predicts, and a good detector follows it: the filter's posterior then
lags the true extent, and the detection is the better estimate; a walker's centre sways and stops
in the same way against the constant-velocity model. The two cases leave different
traces in the innovations of confirmed tracks, normalised per axis ``e = nu / sqrt(S)``
(``nu = z - H x``, ``S = H P H' + R``):

* detector noise the model under-rates is white: consecutive ``e`` are uncorrelated;
* object motion the model does not capture is persistent: consecutive ``e`` are correlated.

With ``e_k = s_k + n_k`` (``s`` persistent over a frame, ``n`` white), ``var(e_k + e_{k+1}) -
var(e_k - e_{k+1}) = 4 cov(e_k, e_{k+1}) = 4 var(s)``. Both variances are estimated robustly as
medians of the squares over the chi²(1) median (a short occlusion that truncates a few boxes moves
a median little), each median tracked online by a Robbins–Monro quantile step in the log domain,
so the estimate follows the detector and the scene at a cost of O(K) per frame. The unexplained
persistent variance ``var(s)`` (in units of ``S``) inflates the innovation variance the filter
expects, ``c = 1 + max(var(s), 0)``, and the box published for a track matched this frame uses the
covariance-matched gain ``K' = 1 - R / (c S)`` (clipped to ``[K, 1]``) in place of the filter's
``K = 1 - R / S``: ``box' = box + (K' - K) nu``, per axis ``cx, cy, w, h``, each with its own ``c``.
The centre moves only for a detection of the object's whole extent (width and height within
``WHOLE_TOLERANCE`` of the track's steady size): the box of an object partly hidden bounds its
visible part, whose centre is not the object's (publishing it lost on the simulated detector, whose
ground truth is the full extent). The filter state, the association and the ghosts are unchanged;
with no persistent excess (``c = 1``) the published box is the posterior. Publishing the
detection's centre outright lost on both the simulated detector and the TUD-Campus benchmark.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from object_permanence.core.kalman import BoxKalmanParams, measurement_std

#: Median of chi²(1): the median of ``e²`` for a standard normal ``e``.
CHI2_1_MEDIAN = 0.454936423119572
#: Box axes ``cx, cy, w, h``: the gain adapts each with its own estimate.
N_AXES = 4
#: Largest relative difference of a detection's ``w`` or ``h`` from the track's steady size for its
#: centre to count as the object's (a smaller box is a partial view, a larger one a merged box).
WHOLE_TOLERANCE = 0.15


def _log_median_start() -> np.ndarray:
    # e_k ± e_{k+1} of two independent standard normals has variance 2: median of its square 2 m
    return np.full((2, N_AXES), math.log(2.0 * CHI2_1_MEDIAN))


@dataclass
class ExtentGain:
    """Online estimate of the persistent innovation excess of each box axis and the offsets it gives.

    rate: step of the log-domain quantile tracker per frame, >= 0 (0: never adapts, the published
        box stays the posterior). ``log m += rate (P(x > m) - 1/2)``, with ``P`` the share of this
        frame's pairs above the current median ``m``.

    Raises:
        ValueError: ``rate`` not a finite number >= 0.
    """

    rate: float = 0.5
    # private state, not constructor arguments (init=False): it starts from no evidence
    #: (2, 4) log medians of (e_k + e_k+1)² (row 0) and (e_k - e_k+1)² (row 1) of cx, cy, w, h (columns)
    _log_m: np.ndarray = field(init=False, default_factory=_log_median_start, repr=False)
    #: (P,) ids (sorted) and (P, 4) normalised innovations of the previous frame's eligible tracks
    _prev_ids: np.ndarray = field(init=False, default_factory=lambda: np.zeros(0, np.uint64), repr=False)
    _prev_e: np.ndarray = field(init=False, default_factory=lambda: np.zeros((0, N_AXES)), repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.rate, bool) or not isinstance(self.rate, (int, float, np.number)) \
                or not math.isfinite(self.rate) or self.rate < 0:
            raise ValueError(f"rate must be a finite number >= 0, got {self.rate!r}")

    @property
    def inflation(self) -> np.ndarray:
        """(4,) ``c = 1 + max(var(s), 0)`` of ``cx, cy, w, h``, ``var(s) = (m_+ - m_-) / (4 m_chi2)``."""
        m = np.exp(self._log_m)
        var_s = (m[0] - m[1]) / (4.0 * CHI2_1_MEDIAN)  # 4 var(s) = var(e_k + e_k+1) - var(e_k - e_k+1)
        return 1.0 + np.maximum(var_s, 0.0)

    def observe(self, ids: np.ndarray, e: np.ndarray, eligible: np.ndarray) -> None:
        """Feed one frame: ``ids`` (K,) of the tracks matched in it, their normalised innovations
        ``e`` (K, 4) of ``cx, cy, w, h`` and which of them count (K,) bool: confirmed tracks updated normally.
        A pair is a track eligible in this frame and in the previous one (call once per frame, also
        with K = 0, so that a frame without matches breaks the pairs)."""
        order = eligible.nonzero()[0]
        order = order[ids.take(order).argsort()]  # kept sorted by id: found again by searchsorted
        ids, e = ids.take(order), e.take(order, axis=0)
        if self.rate > 0 and ids.size and self._prev_ids.size:
            if ids.size == self._prev_ids.size and (ids == self._prev_ids).all():  # the same tracks: all pairs
                prev, now = self._prev_e, e
            else:  # the tracks eligible in both frames
                at = np.minimum(self._prev_ids.searchsorted(ids), self._prev_ids.size - 1)
                now_at = (self._prev_ids.take(at) == ids).nonzero()[0]
                prev, now = self._prev_e.take(at.take(now_at), axis=0), e.take(now_at, axis=0)
            if now.shape[0]:
                x = np.empty((2, *now.shape))
                np.add(prev, now, out=x[0])
                np.subtract(prev, now, out=x[1])
                x *= x  # (e_k + e_k+1)², (e_k - e_k+1)²
                # Robbins-Monro quantile step: log m += rate (share above m - 1/2) -> m = median
                above = (x > np.exp(self._log_m)[:, None, :]).sum(axis=1, dtype=np.intp) / now.shape[0]
                self._log_m += self.rate * (above - 0.5)
        self._prev_ids, self._prev_e = ids, e

    def offsets(self, nu: np.ndarray, S: np.ndarray, R: np.ndarray) -> np.ndarray:
        """(K, 4) ``(K' - K) nu`` of ``cx, cy, w, h`` for innovations ``nu``, innovation variances
        ``S`` and measurement variances ``R`` (each (K, 4), pixels and pixels²), added to the
        posterior box to give the published one."""
        K = 1.0 - R / S  # K = P H' S^-1 = (S - R) / S per axis
        K_matched = np.minimum(np.maximum(1.0 - R / (self.inflation * S), K), 1.0)  # K' = 1 - R / (c S) in [K, 1]
        return (K_matched - K) * nu

    def published_offsets(self, ids: np.ndarray, prior: np.ndarray, S: np.ndarray, params: BoxKalmanParams,
                          z: np.ndarray, steady: np.ndarray, eligible: np.ndarray, reinit: np.ndarray) -> np.ndarray:
        """One frame of a world model, before its filters update K tracks with boxes ``z`` (K, 4):
        observe the normalised innovations of the ``eligible`` (K,) ones (confirmed, updated
        normally) and return (K, 4) the offsets of their published box from the posterior (zero
        where re-initialised, ``reinit`` (K,); zero on ``cx, cy`` where ``z`` is not of the track's
        steady size ``steady`` (K, 2) ``w, h`` within ``WHOLE_TOLERANCE``). ``ids`` (K,): track ids;
        ``prior`` (K, 4): predicted boxes; ``S`` (K, 4): diagonal of the innovation covariances,
        pixels²; ``params``: the filters' noise scales (R)."""
        R = measurement_std(prior, params) ** 2  # R = diag(sigma_z²)
        nu = z - prior  # nu = z - H x
        self.observe(ids, nu / np.sqrt(S), eligible)  # e = nu / sqrt(S)
        out = self.offsets(nu, S, R)
        out[reinit] = 0.0
        partial = (np.abs(z[:, 2:4] / np.maximum(steady, 1e-9) - 1.0) > WHOLE_TOLERANCE).any(axis=1)
        out[partial, :2] = 0.0
        return out
