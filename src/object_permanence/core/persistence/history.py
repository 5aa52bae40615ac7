"""Per-track feature histories: what a persistence model looks at.

Each frame a track appears in adds one feature row, so a model sees the track's sequence of
appearance and motion evidence (the learned model consumes the same (T, F) arrays). A row is the
track's own state (:func:`track_features`) followed by its context in the frame
(:data:`features.CONTEXT_FEATURES`: stereo consistency, innovation, appearance stability).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from object_permanence.core.persistence.features import CONTEXT_FEATURES, N_CONTEXT, histogram_moment_rows
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


def track_feature_rows(tracks: Sequence[Track]) -> np.ndarray:
    """(N, len(TRACK_FEATURES)) float32 own-state rows of a frame's tracks, computed for all of
    them at once (float64, then float32)."""
    n = len(tracks)
    if n == 0:
        return np.zeros((0, len(TRACK_FEATURES)), np.float32)
    box = np.array([t.box for t in tracks], np.float64).reshape(n, 4)
    velocity = np.array([t.velocity[:2] for t in tracks], np.float64).reshape(n, 2)
    cov_trace = np.array([t.covariance[0, 0] + t.covariance[1, 1] for t in tracks], np.float64)
    unseen = np.array([t.frames_since_seen for t in tracks], np.float64)
    score = np.array([t.score for t in tracks], np.float64)
    occluded = np.array([t.state == TrackState.OCCLUDED for t in tracks], np.float64)
    wh = np.maximum(box[:, 2:4], 1.0)
    size = np.sqrt(wh[:, 0] * wh[:, 1])
    matched = unseen == 0
    out = np.empty((n, len(TRACK_FEATURES)), np.float64)
    out[:, 0] = matched
    out[:, 1] = np.where(matched, score, 0.0)
    out[:, 2:4] = np.log(wh)
    out[:, 4:6] = velocity / size[:, None]
    out[:, 6] = np.sqrt(np.maximum(cov_trace, 0.0)) / size
    out[:, 7] = occluded
    out[:, 8] = unseen
    out[:, 9:11] = histogram_moment_rows([t.embedding for t in tracks])
    return out.astype(np.float32)


def frame_feature_rows(tracks: Sequence[Track], context: np.ndarray) -> np.ndarray:
    """(N, N_FEATURES) float32 history rows of a frame's tracks: their own-state rows
    (:func:`track_feature_rows`) beside their (N, N_CONTEXT) context rows
    (:func:`features.context_rows`). The filter and the training-data generator both use it."""
    context = np.asarray(context, np.float32).reshape(len(tracks), N_CONTEXT)
    return np.concatenate([track_feature_rows(tracks), context], axis=1)


def track_features(track: Track) -> np.ndarray:
    """(len(TRACK_FEATURES),) float32 own-state row of one track at one frame."""
    return track_feature_rows([track])[0]


class TrackHistory:
    """The last ``max_len`` feature rows of one track, oldest first (in one preallocated
    (max_len, N_FEATURES) buffer: a new row shifts the older ones, nothing is re-stacked)."""

    def __init__(self, track_id: int, max_len: int) -> None:
        if max_len < 1:
            raise ValueError(f"max_len must be >= 1, got {max_len}")
        self.track_id = track_id
        self._buffer = np.zeros((max_len, N_FEATURES), np.float32)
        self._count = 0
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
        for row in rows[-max_len:]:
            hist._push(row)
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
        self.append_row(np.concatenate([track_features(track), context]), track)

    def append_row(self, row: np.ndarray, track: Track | None = None) -> None:
        """Add a prepared (N_FEATURES,) row (the filter computes a frame's rows for all tracks at
        once); ``track``: the track it is of (:attr:`last`)."""
        self._push(row)
        self.last = track

    def _push(self, row: np.ndarray) -> None:
        if self._count == len(self._buffer):
            self._buffer[:-1] = self._buffer[1:]  # the oldest row leaves
        else:
            self._count += 1
        self._buffer[self._count - 1] = row
        self._stacked = None

    def __len__(self) -> int:
        return self._count

    def features(self) -> np.ndarray:
        """(T, N_FEATURES) float32, oldest first; a read-only copy made once per appended frame
        (the model and the decision's frame evidence both read it every frame)."""
        if self._stacked is None:
            self._stacked = self._buffer[:self._count].copy()
            self._stacked.flags.writeable = False
        return self._stacked


def pad_histories(features: Sequence[np.ndarray], length: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Left-aligned zero-padded batch: (B, T, F) float32 and (B,) int64 lengths; T is the longest
    history, or ``length`` (a model exported for one sequence length), which none may exceed."""
    lengths = np.array([len(f) for f in features], np.int64)
    n_feat = features[0].shape[1]
    if length is not None and lengths.max() > length:
        raise ValueError(f"a history of {lengths.max()} rows does not fit the padded length {length}")
    batch = np.zeros((len(features), int(lengths.max()) if length is None else length, n_feat), np.float32)
    rows = np.concatenate(features)
    b = np.repeat(np.arange(len(features)), lengths)
    t = np.arange(len(rows)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    batch[b, t] = rows                                            # scatter each history's rows into its slot
    return batch, lengths
