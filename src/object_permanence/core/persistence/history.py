"""Per-track feature histories: what a persistence model looks at.

Each frame a track appears in adds one feature row, so a model sees the track's sequence of
appearance and motion evidence (the learned model consumes the same (T, F) arrays).
"""
from __future__ import annotations

from collections import deque

import numpy as np

from object_permanence.core.types import Track, TrackState

#: Columns of a history row.
FEATURES = (
    "matched",            # 1 when a detection was matched this frame
    "det_score",          # detection confidence of the match (0 when unmatched)
    "log_w", "log_h",     # log box size (pixels)
    "vx_rel", "vy_rel",   # centre velocity in box sizes per second
    "cov_trace_rel",      # sqrt(trace of the centre covariance) / box size
    "occluded",           # 1 while the track is a ghost
    "frames_since_seen",
)
N_FEATURES = len(FEATURES)


def track_features(track: Track) -> np.ndarray:
    """(N_FEATURES,) float32 feature row of one track at one frame."""
    w, h = max(float(track.box[2]), 1.0), max(float(track.box[3]), 1.0)
    size = np.sqrt(w * h)
    matched = track.frames_since_seen == 0
    return np.array([
        float(matched),
        float(track.score) if matched else 0.0,
        np.log(w), np.log(h),
        float(track.velocity[0]) / size, float(track.velocity[1]) / size,
        np.sqrt(max(float(track.covariance[0, 0] + track.covariance[1, 1]), 0.0)) / size,
        float(track.state == TrackState.OCCLUDED),
        float(track.frames_since_seen),
    ], dtype=np.float32)


class TrackHistory:
    """The last ``max_len`` feature rows of one track, oldest first."""

    def __init__(self, track_id: int, max_len: int) -> None:
        if max_len < 1:
            raise ValueError(f"max_len must be >= 1, got {max_len}")
        self.track_id = track_id
        self._rows: deque[np.ndarray] = deque(maxlen=max_len)
        self.last: Track | None = None

    def append(self, track: Track) -> None:
        self._rows.append(track_features(track))
        self.last = track

    def __len__(self) -> int:
        return len(self._rows)

    def features(self) -> np.ndarray:
        """(T, N_FEATURES) float32, oldest first."""
        return np.stack(self._rows) if self._rows else np.zeros((0, N_FEATURES), np.float32)
