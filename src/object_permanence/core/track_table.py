"""The world model's tracks as stacked arrays: row i of every array (and of the filter bank) is
track i, in creation order (so by increasing id).

Keeping each field as one array lets the world model update all tracks of a frame with a few numpy
operations (hits, misses, ages, lifecycle states, the appearance EMA) instead of one Python object
per track.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from object_permanence.core.box_filter_bank import BoxFilterBank
from object_permanence.core.types import TrackState


def normalise_rows(e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``e`` (K, D) divided by their L2 norm, and a (K,) mask of the rows whose norm is
    positive (the others are left as they are)."""
    norm = np.sqrt(np.einsum("kd,kd->k", e, e))  # |e|
    ok = norm > 0
    out = e.copy()
    out[ok] /= norm[ok, None]  # e / |e|
    return out, ok


@dataclass
class TrackTable:
    """Every live track of one world model as arrays of N rows.

    filters: the N box filters; ids: (N,) uint64; state: (N,) int8 :class:`TrackState`;
    class_id: (N,) int64; class_name: (N,) object (str); score: (N,) float64 of the last matched
    detection; embedding: (N, D) float32 L2-normalised appearance EMA (zero rows where none),
    has_embedding: (N,) bool; last_seen_stamp: (N,) s; last_seen_center: (N, 2) px of the last
    matched detection; measurement: (N, 4) px, the detection box matched this frame, has_measurement:
    (N,) bool; age, hits, misses (consecutive), frames_since_seen: (N,) int64.
    """

    filters: BoxFilterBank
    ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    state: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))
    class_id: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    class_name: np.ndarray = field(default_factory=lambda: np.zeros(0, object))
    score: np.ndarray = field(default_factory=lambda: np.zeros(0))
    embedding: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    has_embedding: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    last_seen_stamp: np.ndarray = field(default_factory=lambda: np.zeros(0))
    last_seen_center: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    measurement: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    has_measurement: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    age: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    hits: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    misses: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    frames_since_seen: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    _ROW_FIELDS = ("ids", "state", "class_id", "class_name", "score", "embedding", "has_embedding",
                   "last_seen_stamp", "last_seen_center", "measurement", "has_measurement", "age",
                   "hits", "misses", "frames_since_seen")

    def __len__(self) -> int:
        return self.ids.shape[0]

    def set_embedding_dim(self, dim: int) -> None:
        """Give the embedding array ``dim`` columns (once the first embedding's length is known;
        no track has an embedding before)."""
        if self.embedding.shape[1] != dim:
            self.embedding = np.zeros((len(self), dim), np.float32)
            self.has_embedding[:] = False

    def select(self, rows: np.ndarray) -> None:
        """Keep only ``rows`` (int (K,)), in that order, in every array and in the filter bank."""
        for name in self._ROW_FIELDS:
            setattr(self, name, getattr(self, name)[rows])
        self.filters.select(rows)

    def append(self, ids: np.ndarray, state: int, boxes: np.ndarray, scores: np.ndarray,
               class_ids: np.ndarray, class_names: list[str], embeddings: np.ndarray,
               has_embedding: np.ndarray, stamp: float) -> None:
        """Add K new tracks seen at ``stamp`` in ``state``, one per detection: ``boxes`` (K, 4),
        ``scores``, ``class_ids`` (K,), ``embeddings`` (K, D) raw (normalised here; a zero or
        missing one leaves the track without appearance), ``has_embedding`` (K,)."""
        k = boxes.shape[0]
        emb, nonzero = normalise_rows(embeddings.astype(np.float32, copy=False))
        has = has_embedding & nonzero
        emb[~has] = 0.0
        names = np.empty(k, object)
        names[:] = class_names
        new = {"ids": np.asarray(ids, np.uint64), "state": np.full(k, state, np.int8),
               "class_id": class_ids, "class_name": names, "score": scores, "embedding": emb,
               "has_embedding": has, "last_seen_stamp": np.full(k, stamp),
               "last_seen_center": boxes[:, :2], "measurement": boxes, "has_measurement": np.ones(k, bool),
               "age": np.zeros(k, np.int64), "hits": np.ones(k, np.int64), "misses": np.zeros(k, np.int64),
               "frames_since_seen": np.zeros(k, np.int64)}
        for name in self._ROW_FIELDS:
            setattr(self, name, np.concatenate([getattr(self, name), new[name]]))
        self.filters.append(boxes)

    def blend_embeddings(self, rows: np.ndarray, new: np.ndarray, has_new: np.ndarray,
                         momentum: float) -> None:
        """Appearance EMA of tracks ``rows`` (K,) with the embeddings ``new`` (K, D) of their
        detections (``has_new`` (K,): a detection without one leaves the track's as it is):
        ``e = m e_old + (1 - m) e_new / |e_new|``, renormalised; a track without an embedding takes
        the new one."""
        if rows.size == 0 or new.shape[1] == 0:
            return
        new_n, nonzero = normalise_rows(new.astype(np.float32, copy=False))
        use = has_new & nonzero
        old_has = self.has_embedding[rows][:, None]
        e = np.where(old_has, momentum * self.embedding[rows] + (1.0 - momentum) * new_n, new_n)
        e, ok = normalise_rows(e.astype(np.float32, copy=False))
        use &= ok
        self.embedding[rows[use]] = e[use]
        self.has_embedding[rows[use]] = True


#: TrackState members by value, to turn an int8 state array into enum members without a lookup.
STATES = tuple(sorted(TrackState, key=int))
