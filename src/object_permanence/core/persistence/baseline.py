"""The honest baseline persistence rule: enough matched frames with enough mean confidence.

This is the classic "min hits" rule of SORT-style trackers plus a confidence floor. It has no
notion of stereo consistency or appearance; the learned model is measured against it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from object_permanence.core.persistence.history import FEATURES, TrackHistory
from object_permanence.core.types import PersistenceDecision

_MATCHED = FEATURES.index("matched")
_SCORE = FEATURES.index("det_score")


@dataclass(frozen=True)
class MinHitsConfig:
    """min_hits: matched frames needed (within the history window); min_mean_score: floor on the
    mean confidence of those matches, in [0, 1]."""

    min_hits: int = 3
    min_mean_score: float = 0.5

    def __post_init__(self) -> None:
        if self.min_hits < 1:
            raise ValueError(f"min_hits must be >= 1, got {self.min_hits}")
        if not 0.0 <= self.min_mean_score <= 1.0:
            raise ValueError(f"min_mean_score must be in [0, 1], got {self.min_mean_score}")


class MinHitsBaseline:
    """score = mean match confidence x min(1, hits / min_hits); keep = hits >= min_hits and
    mean confidence >= min_mean_score. Attention: uniform over the matched frames it counted
    (over every frame when none was)."""

    name = "min_hits_baseline"

    def __init__(self, config: MinHitsConfig | None = None) -> None:
        self.config = config or MinHitsConfig()

    def decide(self, histories: Sequence[TrackHistory]) -> list[PersistenceDecision]:
        out = []
        for hist in histories:
            x = hist.features()
            matched = x[:, _MATCHED] > 0.5
            hits = int(matched.sum())
            mean_score = float(x[matched, _SCORE].mean()) if hits else 0.0
            score = mean_score * min(1.0, hits / self.config.min_hits)
            keep = hits >= self.config.min_hits and mean_score >= self.config.min_mean_score
            # uniform over the matched frames it counted (over every frame when none was matched:
            # attention always sums to 1)
            attention = (matched.astype(np.float32) / hits if hits
                         else np.full(len(matched), 1.0 / len(matched), np.float32))
            out.append(PersistenceDecision(
                track_id=hist.track_id, score=score, keep=keep, attention=attention, frames_observed=len(hist),
                reason=f"min_hits:{hits}/{self.config.min_hits} mean_score:{mean_score:.2f}"
                       f"{'>=' if mean_score >= self.config.min_mean_score else '<'}{self.config.min_mean_score:.2f}"))
        return out
