"""One frame's detections as stacked arrays, validated as arrays.

The world model reads a ``list[Detection]`` once into a :class:`DetectionBatch` (boxes (M, 4),
scores (M,), classes (M,), embeddings (M, D)) and checks every rule on whole arrays; a per-item
path runs only for entries that cannot be converted at all. Each dropped detection gets one line
naming its index and its first problem, in the order of the checks below.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from object_permanence.core.appearance_memory import normalise_rows
from object_permanence.core.types import Detection

#: Boxes with a coordinate or size beyond this (pixels) are rejected as invalid: no camera is that
#: large, and such values overflow the filter's covariance.
MAX_BOX_PX = 1e5


@dataclass
class DetectionBatch:
    """The usable detections of one frame, row j: detection j of the batch.

    boxes: (M, 4) float64 ``cx, cy, w, h`` pixels; scores: (M,) float64 in [0, 1];
    class_ids: (M,) int64; class_names: (M,) object array of the names (gathered by index arrays);
    embeddings: (M, D) float32 (raw scale, zero rows where none), has_embedding: (M,) bool.
    """

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    class_names: np.ndarray
    embeddings: np.ndarray
    has_embedding: np.ndarray
    _unit: tuple[np.ndarray, np.ndarray] | None = field(default=None, init=False, repr=False, compare=False)

    def __len__(self) -> int:
        return self.boxes.shape[0]

    @property
    def unit(self) -> tuple[np.ndarray, np.ndarray]:
        """:func:`~object_permanence.core.appearance_memory.normalise_rows` of the embeddings:
        (M, D) float32 unit rows and the (M,) mask of the non-zero ones; computed once per frame
        (association and the memory update both read it)."""
        if self._unit is None:
            self._unit = normalise_rows(self.embeddings)
        return self._unit


def _convert(detections: Sequence[Detection]) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                        list[np.ndarray | None] | None, np.ndarray | None,
                                                        dict[int, str]]:
    """Boxes (M, 4), scores (M,), classes (M,), embeddings (1-D float32 or None; None instead of
    the list when they are stacked), the embeddings stacked (M, D) float32 when every entry has one
    of one length D (else None), and the problems of entries that are not detections at all (their
    rows hold NaN)."""
    m = len(detections)
    problems: dict[int, str] = {}
    try:  # the fast path: every entry converts
        # one list per field, then one conversion per field (C-level maps); four comprehensions cost
        # half as much as one pass gathering a tuple per entry and transposing them
        box_list, score_list = [d.box for d in detections], [d.score for d in detections]
        class_list, raw = [d.class_id for d in detections], [d.embedding for d in detections]
        boxes = np.array(box_list, dtype=float).reshape(m, 4)
        scores = np.fromiter(map(float, score_list), float, count=m)
        class_ids = np.fromiter(map(int, class_list), np.int64, count=m)
        if m and not any(e is None for e in raw):
            try:  # one length for all (the detector's case): one array, no per-entry conversion
                stacked = np.array(raw, dtype=np.float32)
                if stacked.ndim == 2:
                    return boxes, scores, class_ids, None, stacked, problems
            except ValueError:
                pass
        embs = [None if e is None else np.asarray(e, np.float32).ravel() for e in raw]
        return boxes, scores, class_ids, embs, None, problems
    except (TypeError, ValueError):
        pass
    boxes, scores = np.full((m, 4), np.nan), np.full(m, np.nan)
    class_ids = np.zeros(m, np.int64)
    embs = [None] * m
    for i, d in enumerate(detections):  # the slow path, only when some entry is malformed
        try:
            box = np.asarray(d.box, dtype=float)
            score = float(d.score)
            class_id = int(d.class_id)
            emb = None if d.embedding is None else np.asarray(d.embedding, np.float32).ravel()
        except (TypeError, ValueError) as exc:
            problems[i] = f"not a detection ({exc})"
            continue
        if box.shape != (4,):
            problems[i] = f"box must be four finite numbers cx, cy, w, h, got {np.asarray(d.box).tolist()}"
            continue
        boxes[i], scores[i], class_ids[i], embs[i] = box, score, class_id, emb
    return boxes, scores, class_ids, embs, None, problems


def _object_array(values: list) -> np.ndarray:
    """``values`` as a (K,) object array, one entry each whatever they are (a list of lists stays 1-D)."""
    return np.fromiter(values, object, count=len(values))


def _all_usable(boxes: np.ndarray, scores: np.ndarray, embeddings: np.ndarray,
                image_size: tuple[int, int] | None) -> bool:
    """True when no rule of :func:`validate_detections` drops any of these detections (boxes (M, 4),
    scores (M,), embeddings (M, D) of the expected length); a few whole-array reductions (none of
    them warns on NaN or inf)."""
    # max |value| <= MAX_BOX_PX is False for NaN and inf too (a NaN entry makes the max NaN)
    if not (np.abs(boxes).max() <= MAX_BOX_PX and boxes[:, 2:].min() > 0
            and scores.min() >= 0.0 and scores.max() <= 1.0 and np.isfinite(embeddings).all()):
        return False
    if image_size is not None and min(image_size) > 0:
        half = boxes[:, 2:] / 2
        # x2, y2 > 0 and x1 < width, y1 < height: every box overlaps the image
        return bool((boxes[:, :2] + half).min() > 0 and ((boxes[:, :2] - half) < image_size).all())
    return True


def validate_detections(detections: Sequence[Detection], image_size: tuple[int, int] | None,
                        embedding_dim: int | None) -> tuple[DetectionBatch, list[str], int | None]:
    """The usable detections and, for each one dropped, why.

    Dropped: an entry that is not a detection; a box that is not four finite numbers, has w or
    h <= 0, is absurdly large (> MAX_BOX_PX) or lies entirely outside the image (when its size
    ``(width, height)`` is known and positive); a score that is not in [0, 1]; an embedding that is
    not finite or whose length differs from ``embedding_dim`` (or, when that is None, from the first
    usable embedding of this frame).

    Returns:
        the batch of kept detections (input order), one line per dropped detection
        (``"detection <index>: <problem>"``, by index), and the embedding length now known.
    """
    m = len(detections)
    boxes, scores, class_ids, embs, all_stacked, problems = _convert(detections)
    if not problems and all_stacked is not None and embedding_dim in (None, all_stacked.shape[1]) \
            and _all_usable(boxes, scores, all_stacked, image_size):
        # the usual frame: nothing to drop, so no per-rule masks and messages (same result)
        batch = DetectionBatch(boxes=boxes, scores=scores, class_ids=class_ids,
                               class_names=_object_array([d.class_name for d in detections]),
                               embeddings=all_stacked, has_embedding=np.ones(m, bool))
        return batch, [], all_stacked.shape[1]
    bad = np.zeros(m, dtype=bool)
    bad[list(problems)] = True

    def flag(fails: np.ndarray, message) -> None:
        for i in np.flatnonzero(fails & ~bad):
            problems[int(i)] = message(int(i))
        bad[fails] = True

    finite = np.all(np.isfinite(boxes), axis=1)
    flag(~finite, lambda i: f"box must be four finite numbers cx, cy, w, h, got {boxes[i].tolist()}")
    with np.errstate(invalid="ignore"):
        flag((boxes[:, 2] <= 0) | (boxes[:, 3] <= 0) | np.any(np.abs(boxes) > MAX_BOX_PX, axis=1),
             lambda i: f"box size must be > 0 and every value within {MAX_BOX_PX:g} px, got {boxes[i].tolist()}")
        if image_size is not None and min(image_size) > 0:
            lo = boxes[:, :2] - boxes[:, 2:] / 2  # x1, y1
            hi = boxes[:, :2] + boxes[:, 2:] / 2  # x2, y2
            outside = (hi[:, 0] <= 0) | (hi[:, 1] <= 0) | (lo[:, 0] >= image_size[0]) | (lo[:, 1] >= image_size[1])
            flag(outside, lambda i: f"box {boxes[i].tolist()} lies entirely outside the "
                                    f"{image_size[0]}x{image_size[1]} image")
        flag(~((scores >= 0.0) & (scores <= 1.0)), lambda i: f"score must lie in [0, 1], got {scores[i]}")
    if all_stacked is not None:  # every detection has an embedding, all of one length
        has_emb = np.ones(m, bool)
        lengths = np.full(m, all_stacked.shape[1], np.int64)
        dims = lengths[:1]
    else:
        has_emb = np.fromiter((e is not None for e in embs), bool, count=m)
        lengths = np.fromiter((-1 if e is None else e.shape[0] for e in embs), np.int64, count=m)
        dims = np.unique(lengths[has_emb])
    stacked = all_stacked  # (M, D) when every embedding has one length D: checked as one array
    if dims.size == 1:
        if stacked is None:
            stacked = np.zeros((m, int(dims[0])), dtype=np.float32)
            stacked[has_emb] = np.stack([e for e in embs if e is not None])
        flag(~np.all(np.isfinite(stacked), axis=1), lambda i: "embedding is not finite")
    elif dims.size > 1:
        flag(np.fromiter((e is not None and not np.isfinite(e).all() for e in embs), bool, count=m),
             lambda i: "embedding is not finite")
    if embedding_dim is None:
        first = np.flatnonzero(has_emb & ~bad)
        embedding_dim = int(lengths[first[0]]) if first.size else None
    if embedding_dim is not None:
        flag(has_emb & (lengths != embedding_dim),
             lambda i: f"embedding has {lengths[i]} values, earlier ones {embedding_dim}")
    keep = np.flatnonzero(~bad)
    kept_has_emb = has_emb[keep]
    if stacked is not None and stacked.shape[1] == embedding_dim:
        embeddings = stacked[keep]
    else:
        embeddings = np.zeros((keep.size, embedding_dim or 0), dtype=np.float32)
        if kept_has_emb.any():
            embeddings[kept_has_emb] = np.stack([embs[i] for i in keep[kept_has_emb]])
    batch = DetectionBatch(boxes=boxes[keep], scores=scores[keep], class_ids=class_ids[keep],
                           class_names=_object_array([detections[i].class_name for i in keep]),
                           embeddings=embeddings, has_embedding=kept_has_emb)
    return batch, [f"detection {i}: {problems[i]}" for i in sorted(problems)], embedding_dim
