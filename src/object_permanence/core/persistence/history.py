"""Per-track feature histories: what a persistence model looks at.

Each frame a track appears in adds one feature row, so a model sees the track's sequence of
appearance and motion evidence (the learned model consumes the same (T, F) arrays). A row is the
track's own state (:func:`track_features`) followed by its context in the frame
(:data:`features.CONTEXT_FEATURES`: stereo consistency, innovation, appearance stability).
"""
from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import numpy as np

from object_permanence.core.persistence.features import CONTEXT_FEATURES, N_CONTEXT, histogram_moments
from object_permanence.core.types import Track, TrackState

#: History window (frames) the learned model is trained for and the filter keeps by default
#: (``history_len`` in config/persistence_filter.yaml).
HISTORY_LEN = 32

#: Columns of the track's own state (the first columns of a history row).
TRACK_FEATURES = (
    "matched",            # 1 when a detection was matched this frame
    "det_score",          # detection confidence of the match (0 when unmatched)
    "log_w", "log_h",     # log box size (pixels)
    "vx_rel", "vy_rel",   # centre velocity in box sizes per second
    "cov_trace_rel",      # sqrt(trace of the centre covariance) / box size
    "occluded",           # 1 while the track is a ghost
    "frames_since_seen",
    "app_saturation",     # mean saturation of the track's colour histogram, [0, 1] (glare: low)
    "app_value",          # mean brightness of the track's colour histogram, [0, 1] (glare: high; reflection: dimmed)
)
#: Columns of a history row.
FEATURES = TRACK_FEATURES + CONTEXT_FEATURES
N_FEATURES = len(FEATURES)
#: The context row of a track seen without context (no other view, no innovation, no appearance change).
NO_CONTEXT = np.array([0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0], np.float32)


def track_features(track: Track) -> np.ndarray:
    """(len(TRACK_FEATURES),) float32 own-state row of one track at one frame."""
    w, h = max(float(track.box[2]), 1.0), max(float(track.box[3]), 1.0)
    size = np.sqrt(w * h)
    matched = track.frames_since_seen == 0
    saturation, value = histogram_moments(track.embedding)
    return np.array([
        float(matched),
        float(track.score) if matched else 0.0,
        np.log(w), np.log(h),
        float(track.velocity[0]) / size, float(track.velocity[1]) / size,
        np.sqrt(max(float(track.covariance[0, 0] + track.covariance[1, 1]), 0.0)) / size,
        float(track.state == TrackState.OCCLUDED),
        float(track.frames_since_seen),
        saturation, value,
    ], dtype=np.float32)


class TrackHistory:
    """The last ``max_len`` feature rows of one track, oldest first."""

    def __init__(self, track_id: int, max_len: int) -> None:
        if max_len < 1:
            raise ValueError(f"max_len must be >= 1, got {max_len}")
        self.track_id = track_id
        self._rows: deque[np.ndarray] = deque(maxlen=max_len)
        self._stacked: np.ndarray | None = None  # features() until the next append
        self.last: Track | None = None

    @classmethod
    def from_rows(cls, track_id: int, rows: np.ndarray, max_len: int) -> "TrackHistory":
        """A history holding prepared (T, N_FEATURES) rows (the newest ``max_len``), e.g. for
        benchmarks and replay; ``last`` stays None.

        Raises:
            ValueError: rows not (T, N_FEATURES).
        """
        rows = np.asarray(rows, np.float32)
        if rows.ndim != 2 or rows.shape[1] != N_FEATURES:
            raise ValueError(f"rows must have shape (T, {N_FEATURES}), got {rows.shape}")
        hist = cls(track_id, max_len)
        hist._rows.extend(rows)
        hist._stacked = None
        return hist

    @property
    def last_embedding(self) -> np.ndarray | None:
        """The embedding of the last appended track (None when none or it had none)."""
        return None if self.last is None else self.last.embedding

    def append(self, track: Track, context: np.ndarray | None = None) -> None:
        """Add the row of ``track`` at this frame; ``context``: its (N_CONTEXT,) row from
        :func:`features.context_rows` (default :data:`NO_CONTEXT`)."""
        context = NO_CONTEXT if context is None else np.asarray(context, np.float32)
        if context.shape != (N_CONTEXT,):
            raise ValueError(f"context must have shape ({N_CONTEXT},), got {context.shape}")
        self._rows.append(np.concatenate([track_features(track), context]))
        self._stacked = None
        self.last = track

    def __len__(self) -> int:
        return len(self._rows)

    def features(self) -> np.ndarray:
        """(T, N_FEATURES) float32, oldest first; read-only, stacked once per appended frame (the
        model and the decision's frame evidence both read it every frame)."""
        if self._stacked is None:
            self._stacked = np.stack(self._rows) if self._rows else np.zeros((0, N_FEATURES), np.float32)
            self._stacked.flags.writeable = False
        return self._stacked


def pad_histories(features: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Left-aligned zero-padded batch: (B, T_max, F) float32 and (B,) int64 lengths."""
    lengths = np.array([len(f) for f in features], np.int64)
    n_feat = features[0].shape[1]
    batch = np.zeros((len(features), int(lengths.max()), n_feat), np.float32)
    rows = np.concatenate(features)
    b = np.repeat(np.arange(len(features)), lengths)
    t = np.arange(len(rows)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    batch[b, t] = rows                                            # scatter each history's rows into its slot
    return batch, lengths
