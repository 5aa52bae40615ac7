"""How long a ghost lives: the evidence behind a track, in seconds of permanence.

A ghost's life grows with the evidence that its track is a persistent object (Norfair's hit
counter): ``life = min(cap, ghost_age_per_hit_s * effective_hits)``. Detectors' nuisances differ
from objects in *how* they are detected, not only in how often: a reflection or glare flickers
(detected in some frames, not in the next), a burst of false positives comes and goes, while an
object is detected in nearly every frame it is in view (a real detector's misses come in short
bursts). So each hit counts by the track's detection rate: ``effective_hits = hits * g`` with

    rate = min(1, hits / (age - unseen + 1))           # matched frames / frames alive up to the last match
    g    = clip((rate - min_hit_ratio) / (1 - min_hit_ratio), 0, 1)

The rate is that of the frames up to the track's last match (``unseen``: frames since): the gap
the ghost is in is what its life bounds, not evidence against it. ``g`` is 1 for a track detected
in every frame and 0 at or below ``min_hit_ratio`` (a track detected in at most that fraction of
its frames leaves no ghost). ``hits`` may exceed the frames followed after a re-identification
hands a track the hits of its earlier identity: the rate is clipped to 1 then (the old hits are
evidence too). The world model also holds a ghost of fewer effective hits than
``ghost_min_hits`` unpublished (its identity kept, not claimed as a hidden object).
"""
from __future__ import annotations

import numpy as np


def effective_hits(hits: np.ndarray, age: np.ndarray, unseen: np.ndarray, min_hit_ratio: float) -> np.ndarray:
    """(N,) float: each track's ``hits`` (N,) weighted by its detection rate over the frames from
    its start to its last match: ``age`` (N,) (0 in the frame it started) less ``unseen`` (N,)
    frames since its last match (module docstring). ``min_hit_ratio`` in [0, 1): the rate at which
    a hit stops counting.

    Raises:
        ValueError: ``min_hit_ratio`` outside [0, 1).
    """
    if not 0.0 <= min_hit_ratio < 1.0:
        raise ValueError(f"min_hit_ratio must be in [0, 1), got {min_hit_ratio!r}")
    hits = np.asarray(hits, np.float64)
    followed = np.asarray(age, np.float64) - np.asarray(unseen, np.float64) + 1.0  # frames to the last match
    rate = np.minimum(1.0, hits / np.maximum(followed, 1.0))  # matched frames / frames followed
    g = np.clip((rate - min_hit_ratio) / (1.0 - min_hit_ratio), 0.0, 1.0)
    return hits * g
