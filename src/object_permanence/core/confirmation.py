"""When a TENTATIVE track is confirmed (BIRTH): the world model's confirmation policy.

A track is confirmed after ``min_hits`` matched frames, or after two when both of its detections
are strong evidence: a score of at least ``fast_confirm_min_score`` each, consistent motion (the
two boxes overlap by ``fast_confirm_min_iou`` at least), and no confirmed track it lies on (a
duplicate box of an object already tracked is no new object). Nuisances a detector reports (a
single-frame false positive, a flicker, a glare spot) are mostly low-score and short, so they still
need ``min_hits`` frames, while a clearly detected object is published a frame earlier:
ByteTrack's rule that a track started from a high-score detection is activated on its second
frame, with the motion and duplicate checks added.

On the model's first frame a detection of ``first_frame_min_score`` or more is confirmed at once
(:func:`first_frame_births`): the objects in view when a robot starts have no earlier frame to be
confirmed on (ByteTrack and BoT-SORT activate the first frame's tracks). A detector's duplicate
box of one object is no second object: a detection overlapping a stronger one by
``fast_confirm_min_iou`` (the overlap that counts as one object's two boxes) is not (Fast NMS).
"""
from __future__ import annotations

import numpy as np

from object_permanence.core.association import iou_matrix, iou_pairs
from object_permanence.core.reidentification import covered_by_visible
from object_permanence.core.track_table import TrackTable
from object_permanence.core.types import TrackState
from object_permanence.core.world_model_config import WorldModelConfig

_TENTATIVE = int(TrackState.TENTATIVE)


def confirmed(hits: np.ndarray, min_hits: int, prev_scores: np.ndarray, scores: np.ndarray,
              prev_boxes: np.ndarray, boxes: np.ndarray, min_score: float, min_iou: float,
              explained: np.ndarray) -> np.ndarray:
    """(K,) bool: does each of K TENTATIVE tracks, matched this frame, get confirmed?

    Args:
        hits: (K,) matched frames including this one; min_hits: frames that always confirm.
        prev_scores, scores: (K,) scores of the previous and of this frame's detection.
        prev_boxes, boxes: (K, 4) ``cx, cy, w, h`` pixels of those two detections.
        min_score: both scores at least this confirm at two hits (above 1: never).
        min_iou: and the two boxes' IoU at least this.
        explained: (K,) bool, the track lies on a confirmed track (a duplicate box of an object
            already tracked): no early confirmation.
    """
    hits = np.asarray(hits)
    fast = (hits == 2) & (np.minimum(prev_scores, scores) >= min_score) & ~np.asarray(explained, bool)
    if fast.any():
        fast[fast] = iou_pairs(np.asarray(prev_boxes)[fast], np.asarray(boxes)[fast]) >= min_iou  # motion agrees
    return (hits >= min_hits) | fast


def confirm_matched(t: TrackTable, rows: np.ndarray, boxes: np.ndarray, scores: np.ndarray,
                    prev_boxes: np.ndarray, prev_scores: np.ndarray, cfg: WorldModelConfig) -> np.ndarray:
    """(K,) bool: which of the tracks ``rows`` (K,), matched this frame to detections ``boxes``
    (K, 4) with ``scores`` (K,) and already updated, are TENTATIVE tracks confirmed now
    (:func:`confirmed`); ``prev_boxes``, ``prev_scores``: their previous detections. A track at its
    second frame lies on a confirmed track when ``ghost_cover_frac`` of its box is inside that
    track's box (VISIBLE or a ghost)."""
    tentative = t.state[rows] == _TENTATIVE
    if not tentative.any():  # only confirmed tracks matched: nothing to confirm
        return tentative
    second = np.zeros(len(t), bool)
    second[rows[tentative & (t.hits[rows] == 2)]] = True
    explained = covered_by_visible(t.state != _TENTATIVE, second, t.filters.boxes, cfg.ghost_cover_frac)[rows]
    return tentative & confirmed(t.hits[rows], cfg.min_hits, prev_scores, scores, prev_boxes, boxes,
                                 cfg.fast_confirm_min_score, cfg.fast_confirm_min_iou, explained)


def first_frame_births(boxes: np.ndarray, scores: np.ndarray, min_score: float, same_iou: float) -> np.ndarray:
    """(M,) bool: which of the first frame's M new tracks (``boxes`` (M, 4) ``cx, cy, w, h``,
    ``scores`` (M,)) are confirmed at once: a score of ``min_score`` at least, and no detection of a
    higher score (itself confirmed or not: Fast NMS, one array operation) overlapping it by an IoU
    of ``same_iou`` or more (a duplicate box of one object; an object partly hidden behind another
    overlaps it less)."""
    strong = scores >= min_score
    if strong.sum() < 2:
        return strong
    s = strong.nonzero()[0]
    same = iou_matrix(boxes[s], boxes[s]) >= same_iou  # (S, S)
    stronger = scores[s][None, :] > scores[s][:, None]  # the column scores higher (ties: neither)
    strong[s] = ~(same & stronger).any(axis=1)
    return strong
