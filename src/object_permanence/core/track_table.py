"""The world model's tracks as stacked arrays: row i of every array (and of the filter bank) is
track i, in creation order (so by increasing id).

Keeping each field as one array lets the world model update all tracks of a frame with a few numpy
operations (hits, misses, ages, lifecycle states, the appearance EMA) instead of one Python object
per track.
The appearance memories are stacked the same way (:class:`AppearanceMemory`), and so are the LOST
tracks kept for re-identification (:class:`LostGallery`).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from object_permanence.core.appearance_memory import AppearanceMemory
from object_permanence.core.box_filter_bank import BoxFilterBank
from object_permanence.core.types import Track, TrackState

#: Matched detections whose classes vote for a track's class (the most frequent one wins).
CLASS_WINDOW = 8


@dataclass
class TrackTable:
    """Every live track of one world model as arrays of N rows.

    filters: the N box filters; memory: the N appearance memories (its ``summary`` (N, D) float32
    is the published embedding, zero rows where none; ``has`` (N,) bool); ids: (N,) uint64; state:
    (N,) int8 :class:`TrackState`; class_id: (N,) int64; class_name: (N,) object (str); score: (N,)
    float64 of the last matched detection; class_recent: (N, CLASS_WINDOW) int64 classes of the
    last matched detections (a ring indexed by hits); last_seen_stamp: (N,) s; measurement: (N, 4) px,
    the detection box matched last (this frame when has_measurement (N,) bool; its centre is where the
    track was last seen); age, hits, misses (consecutive), frames_since_seen: (N,) int64;
    hidden_since_seen: (N,) bool, the track's ghost lay behind another track in some frame since its
    last match; claim_hits: (N,) int64, the hits that let its ghost be published: all of them but
    those of an earlier identity it was given back after that one was lost in plain view.
    """

    filters: BoxFilterBank
    memory: AppearanceMemory = field(default_factory=AppearanceMemory)
    ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    state: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))
    class_id: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    class_name: np.ndarray = field(default_factory=lambda: np.zeros(0, object))
    score: np.ndarray = field(default_factory=lambda: np.zeros(0))
    class_recent: np.ndarray = field(default_factory=lambda: np.zeros((0, CLASS_WINDOW), np.int64))
    last_seen_stamp: np.ndarray = field(default_factory=lambda: np.zeros(0))
    measurement: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    has_measurement: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    age: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    hits: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    misses: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    frames_since_seen: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    hidden_since_seen: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    claim_hits: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    _ROW_FIELDS = ("ids", "state", "class_id", "class_name", "score", "class_recent", "last_seen_stamp",
                   "measurement", "has_measurement", "age", "hits", "misses", "frames_since_seen",
                   "hidden_since_seen", "claim_hits")

    def __len__(self) -> int:
        return self.ids.shape[0]

    def vote_class(self, rows: np.ndarray, class_ids: np.ndarray, class_names: np.ndarray) -> None:
        """Record the classes (K,) (names (K,)) of the detections matched to ``rows`` (K,) and make
        each track's class the most frequent of its last :data:`CLASS_WINDOW` (ties: the current
        one stays unless outvoted): one confused detection does not relabel a track."""
        if rows.size == 0:
            return
        self.class_recent[rows, (self.hits[rows] - 1) % CLASS_WINDOW] = class_ids
        # only a detection of another class than the track's can switch it: the winning entry must
        # be of the new detection's class and outvote the current class, so with the same class it
        # would have exactly the current class's votes
        other = (class_ids != self.class_id[rows]).nonzero()[0]
        if other.size == 0:
            return
        rows, class_ids, class_names = rows[other], class_ids[other], class_names[other]
        recent = self.class_recent[rows]
        votes = (recent[:, :, None] == recent[:, None, :]).sum(axis=2)  # (K, W) votes of each entry's class
        current = (recent == self.class_id[rows][:, None]).sum(axis=1)
        switch = (votes.max(axis=1) > current) & (class_ids == recent[np.arange(rows.size), votes.argmax(axis=1)])
        self.class_id[rows[switch]] = class_ids[switch]
        self.class_name[rows[switch]] = class_names[switch]

    def publish(self, rows: np.ndarray, extent_offset: np.ndarray | None = None) -> list[Track]:
        """The tracks ``rows`` (int (K,)) as published :class:`Track` objects, in that order; their
        arrays are views of copies taken out of the table (later steps do not change them).
        ``extent_offset`` (K, 4), when given, is added to the published box (the world model's
        published box gain, :mod:`object_permanence.core.extent_gain`); the filters keep their state.

        One ``map`` over column lists builds the K objects, with ``Track``'s fields passed by position
        (``TRACK_FIELDS``, checked against the dataclass by the tests): keywords and per-row indexing
        cost more than the rest of a step's bookkeeping for 100 tracks."""
        if rows.size == 0:
            return []
        has_emb = self.has_embedding[rows].tolist()
        has_meas = self.has_measurement[rows].tolist()
        embeddings = _rows_or_none(self.embedding.take(rows, axis=0), has_emb)
        measurements = _rows_or_none(self.measurement.take(rows, axis=0), has_meas)
        hits = self.hits[rows].tolist()
        f = self.filters
        boxes = f.boxes.take(rows, axis=0)
        if extent_offset is not None:
            boxes += extent_offset
        return list(map(Track, self.ids[rows].tolist(), _STATE_MEMBERS.take(self.state[rows]).tolist(),
                        boxes, f.velocities.take(rows, axis=0),
                        f.box_covariances.take(rows, axis=0), self.score[rows].tolist(),
                        self.class_id[rows].tolist(), self.class_name[rows].tolist(), self.age[rows].tolist(),
                        hits, self.frames_since_seen[rows].tolist(), embeddings,
                        itertools.repeat(float("nan"), len(hits)), measurements))

    @property
    def embedding(self) -> np.ndarray:
        """(N, D) float32 published embeddings (the memory's summary; zero rows where none)."""
        return self.memory.summary

    @property
    def has_embedding(self) -> np.ndarray:
        """(N,) bool: the track has an appearance memory."""
        return self.memory.has

    def set_embedding_dim(self, dim: int) -> None:
        """Give the memory ``dim`` columns (once the first embedding's length is known; no track
        has an embedding before)."""
        self.memory.set_dim(dim)

    def select(self, rows: np.ndarray) -> None:
        """Keep only ``rows`` (int (K,)), in that order, in every array, the memory and the filters."""
        for name in self._ROW_FIELDS:
            setattr(self, name, getattr(self, name)[rows])
        self.memory.select(rows)
        self.filters.select(rows)

    def append(self, ids: np.ndarray, state: int | np.ndarray, boxes: np.ndarray, scores: np.ndarray,
               class_ids: np.ndarray, class_names: list[str] | np.ndarray, embeddings: np.ndarray,
               has_embedding: np.ndarray, stamp: float) -> None:
        """Add K new tracks seen at ``stamp`` in ``state`` (one, or (K,)), one per detection: ``boxes`` (K, 4),
        ``scores``, ``class_ids`` (K,), ``embeddings`` (K, D) raw (normalised by the memory; a zero
        or missing one leaves the track without appearance), ``has_embedding`` (K,)."""
        k = boxes.shape[0]
        if k == 0:  # nothing to add: no copies of every array
            return
        names = np.empty(k, object)
        names[:] = class_names
        new = {"ids": np.asarray(ids, np.uint64), "state": np.full(k, state, np.int8),
               "class_id": class_ids, "class_name": names, "score": scores,
               "class_recent": np.repeat(np.asarray(class_ids, np.int64)[:, None], CLASS_WINDOW, axis=1),
               "last_seen_stamp": np.full(k, stamp), "measurement": boxes,
               "has_measurement": np.ones(k, bool), "age": np.zeros(k, np.int64), "hits": np.ones(k, np.int64),
               "misses": np.zeros(k, np.int64), "frames_since_seen": np.zeros(k, np.int64),
               "hidden_since_seen": np.zeros(k, bool), "claim_hits": np.ones(k, np.int64)}
        for name in self._ROW_FIELDS:
            setattr(self, name, np.concatenate([getattr(self, name), new[name]]))
        self.memory.append(embeddings, has_embedding)
        self.filters.append(boxes)


@dataclass
class LostGallery:
    """LOST tracks kept for re-identification by appearance (G rows, oldest first).

    ids: (G,) uint64; class_id: (G,) int64; class_name: (G,) object; hits: (G,) int64 of the track;
    last_seen_stamp: (G,) s; box: (G, 4) px, the last detection matched to the track; size: (G, 2)
    px, its steady ``w, h`` (the object's extent, not the sliver of its last box when it slid behind
    something: :class:`~object_permanence.core.ghost_onset.SteadySize`); velocity:
    (G, 2) px/s of its box centre when it was lost; left_view: (G,) bool, lost because its
    prediction left the image (else: unseen too long in view); frames_since_seen: (G,) int64;
    hidden: (G,) bool, its ghost lay behind another track at some frame before it was lost;
    claim_hits: (G,) int64 (:class:`TrackTable`'s); memory: their appearance memories (moved out
    of the track table).
    """

    memory: AppearanceMemory
    ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    class_id: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    class_name: np.ndarray = field(default_factory=lambda: np.zeros(0, object))
    hits: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    last_seen_stamp: np.ndarray = field(default_factory=lambda: np.zeros(0))
    box: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    size: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    velocity: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    left_view: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    frames_since_seen: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    hidden: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    claim_hits: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    _ROW_FIELDS = ("ids", "class_id", "class_name", "hits", "last_seen_stamp", "box", "size", "velocity", "left_view",
                   "frames_since_seen", "hidden", "claim_hits")

    def __len__(self) -> int:
        return self.ids.shape[0]

    def add(self, table: TrackTable, rows: np.ndarray, left_view: np.ndarray) -> None:
        """Copy the tracks ``rows`` (int (K,)) of ``table`` in (their memory too); ``left_view``
        (K,) bool: lost because the prediction left the image."""
        rows = np.asarray(rows, dtype=np.intp)
        if rows.size == 0:
            return
        new = {"ids": table.ids[rows], "class_id": table.class_id[rows], "class_name": table.class_name[rows],
               "hits": table.hits[rows], "last_seen_stamp": table.last_seen_stamp[rows],
               "box": table.measurement[rows],
               "size": table.filters.steady_sizes[rows], "velocity": table.filters.velocities[rows],
               "left_view": np.asarray(left_view, bool),
               "frames_since_seen": table.frames_since_seen[rows], "hidden": table.hidden_since_seen[rows],
               "claim_hits": table.claim_hits[rows]}
        for name in self._ROW_FIELDS:
            setattr(self, name, np.concatenate([getattr(self, name), new[name]]))
        self.memory.extend(table.memory.take(rows))

    def select(self, rows: np.ndarray) -> None:
        """Keep only ``rows`` (int (K,)), in that order."""
        for name in self._ROW_FIELDS:
            setattr(self, name, getattr(self, name)[rows])
        self.memory.select(rows)

    def forget(self, stamp: float, retention_s: float, capacity: int) -> None:
        """Drop the entries unseen longer than ``retention_s`` at ``stamp``, then the oldest ones
        beyond ``capacity`` (memory stays bounded)."""
        if not len(self):
            return
        keep = (stamp - self.last_seen_stamp <= retention_s).nonzero()[0]
        if keep.size > capacity:
            keep = keep[np.argsort(self.last_seen_stamp[keep], kind="stable")[keep.size - capacity:]]
            keep.sort()
        if keep.size != len(self):
            self.select(keep)


def _rows_or_none(values: np.ndarray, present: list[bool]) -> list[np.ndarray | None]:
    """The rows of ``values`` (K, ...) as a list, None where not ``present`` (K bools)."""
    rows = list(values)
    return rows if all(present) else [v if p else None for v, p in zip(rows, present)]


#: TrackState members by value, to turn an int8 state array into enum members without a lookup.
STATES = tuple(sorted(TrackState, key=int))
#: :data:`STATES` as an object array: one ``take`` maps a state array to its members.
_STATE_MEMBERS = np.array(STATES, dtype=object)
#: ``Track``'s fields in the order :meth:`TrackTable.publish` passes them.
TRACK_FIELDS = ("track_id", "state", "box", "velocity", "covariance", "score", "class_id", "class_name", "age",
                "hits", "frames_since_seen", "embedding", "persistence_score", "measurement")
