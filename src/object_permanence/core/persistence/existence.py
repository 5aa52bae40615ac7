"""Bayesian existence probability, as Autoware's multi-object tracker keeps it: a baseline for the
learned persistence model.

Per frame, a matched detection with confidence s is evidence with likelihoods p_TP = s (a real
object yields it) and p_FP = 1 - s (a nuisance does), clipped to [clip, 1 - clip]:

    P <- P p_TP / (P p_TP + (1 - P) p_FP)

and while unseen the probability decays towards zero: P <- decay * P. The track is kept once P
reaches ``keep_threshold``. ``prior`` and ``keep_threshold`` are tuned on the training seeds
(``tools/eval_persistence``).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from object_permanence.core.persistence.history import FEATURES, TrackHistory, pad_histories
from object_permanence.core.types import PersistenceDecision

_MATCHED = FEATURES.index("matched")
_SCORE = FEATURES.index("det_score")


@dataclass(frozen=True)
class ExistenceConfig:
    """prior: P before the first frame; decay: factor per unseen frame; keep_threshold: P that keeps
    a track; clip: likelihood floor (no single frame is certain). All in (0, 1)."""

    prior: float = 0.3
    decay: float = 0.9
    keep_threshold: float = 0.9
    clip: float = 0.05

    def __post_init__(self) -> None:
        for name in ("prior", "decay", "keep_threshold"):
            v = getattr(self, name)
            if not 0.0 < v < 1.0:
                raise ValueError(f"ExistenceConfig: {name} must be in (0, 1), got {v!r}")
        if not 0.0 < self.clip < 0.5:
            raise ValueError(f"ExistenceConfig: clip must be in (0, 0.5), got {self.clip!r}")


def existence_curves(x: np.ndarray, lengths: np.ndarray, config: ExistenceConfig) -> np.ndarray:
    """(B, T) existence probability after each frame of (B, T, F) left-aligned histories (padding
    frames hold the last valid value). Vectorised over tracks; the recursion runs over time."""
    b, t, _ = x.shape
    p = np.full(b, config.prior)
    out = np.empty((b, t))
    s = np.clip(x[:, :, _SCORE], config.clip, 1.0 - config.clip)
    matched = x[:, :, _MATCHED] > 0.5
    for k in range(t):
        seen = p * s[:, k] / (p * s[:, k] + (1.0 - p) * (1.0 - s[:, k]))   # P p_TP / (P p_TP + (1-P) p_FP)
        new = np.where(matched[:, k], seen, config.decay * p)                 # unseen: P <- decay P
        p = np.where(k < lengths, new, p)
        out[:, k] = p
    return out


class BayesianExistence:
    """:class:`base.PersistenceModel` keeping the Bayesian existence probability over each history
    window. Attention: the share of each frame in the log-odds gained (uniform when none)."""

    name = "existence_probability"

    def __init__(self, config: ExistenceConfig | None = None) -> None:
        self.config = config or ExistenceConfig()

    def decide(self, histories: Sequence[TrackHistory]) -> list[PersistenceDecision]:
        if not histories:
            return []
        batch, lengths = pad_histories([h.features() for h in histories])
        curves = existence_curves(batch, lengths, self.config)
        out = []
        for i, hist in enumerate(histories):
            n = int(lengths[i])
            p = float(curves[i, n - 1])
            q = np.clip(np.concatenate([[self.config.prior], curves[i, :n]]), 1e-9, 1.0 - 1e-9)
            gain = np.clip(np.diff(np.log(q) - np.log1p(-q)), 0.0, None)  # log-odds log(P / (1-P)) gained per frame
            att = gain / gain.sum() if gain.sum() > 0 else np.full(n, 1.0 / n)
            keep = p >= self.config.keep_threshold
            out.append(PersistenceDecision(
                track_id=hist.track_id, score=p, keep=bool(keep), attention=att.astype(np.float32), frames_observed=n,
                reason=f"existence:{p:.2f}{'>=' if keep else '<'}{self.config.keep_threshold:.2f}"))
        return out
