"""Ground truth of one simulated camera frame -> YOLO detection labels.

A YOLO label row is ``class cx cy w h`` with the box centre and size normalised by the image
width and height (all in [0, 1]). The rows describe what a detector should box:

* only real objects (:attr:`ObjectKind.OBJECT`); reflections, glare and the simulator's false
  positives are *distractors* — they are drawn into the image (reflections, glare) or not at all
  (false positives) and must teach the detector what not to fire on, so they get no row;
* the **visible** box (the bounding box of the unhidden part), as a real annotator would draw it,
  not the amodal extent;
* only objects visible enough to recognise: a real data set (COCO, CityPersons, MOT17's
  visibility field) labels mostly-visible objects and ignores slivers, because a box around a
  10 % sliver of a ball or a few pixels at the image border carries no learnable appearance and
  teaches the detector to fire on texture fragments. :class:`LabelPolicy` holds that cut.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from object_permanence.core.types import GroundTruthObject, ObjectKind

__all__ = ["LabelPolicy", "format_label_rows", "labelled_mask", "yolo_label_rows"]


@dataclass(frozen=True)
class LabelPolicy:
    """Which real objects get a label.

    min_visibility: smallest visible fraction of the object's full extent (occluders, nearer
        objects and the image border all hide), in [0, 1]. 0.3 keeps objects a person would still
        box with confidence (about a third of a ball or box shows its shape and texture) and drops
        slivers; the same cut defines the held-out truth the mAP is measured on.
    min_side_px: smallest side, in source-image pixels, of the visible box. At the training image
        size of 320 (half of the 640-wide sim image) 6 px become 3 px, about the smallest box the
        stride-8 head of a YOLO can still place.
    """

    min_visibility: float = 0.3
    min_side_px: float = 6.0

    def __post_init__(self) -> None:
        if not (isinstance(self.min_visibility, (int, float)) and 0.0 <= self.min_visibility <= 1.0):
            raise ValueError(f"LabelPolicy: min_visibility must lie in [0, 1], got {self.min_visibility!r}")
        if not (isinstance(self.min_side_px, (int, float)) and math.isfinite(self.min_side_px)
                and self.min_side_px >= 0.0):
            raise ValueError(f"LabelPolicy: min_side_px must be a finite number >= 0, got {self.min_side_px!r}")


def labelled_mask(truth: Sequence[GroundTruthObject], policy: LabelPolicy = LabelPolicy()) -> np.ndarray:
    """(K,) bool: which entries of ``truth`` (one camera, one frame) the policy labels.

    An entry is labelled when it is a real object, its visibility is at least
    ``policy.min_visibility`` (and > 0) and both sides of its visible box are at least
    ``policy.min_side_px``.
    """
    if not truth:
        return np.zeros(0, dtype=bool)
    kind = np.array([int(g.kind) for g in truth])
    visibility = np.array([g.visibility for g in truth], dtype=np.float64)
    boxes = np.array([g.visible_box for g in truth], dtype=np.float64).reshape(-1, 4)  # (K, 4) cx, cy, w, h
    return ((kind == int(ObjectKind.OBJECT)) & (visibility > 0.0) & (visibility >= policy.min_visibility)
            & (boxes[:, 2:].min(axis=1) >= policy.min_side_px))


def yolo_label_rows(truth: Sequence[GroundTruthObject], width: int, height: int,
                    policy: LabelPolicy = LabelPolicy()) -> np.ndarray:
    """(L, 5) float64 YOLO rows ``class, cx/W, cy/H, w/W, h/H`` of the labelled entries of ``truth``.

    truth: the ground truth of one camera in one frame (``SimFrameTruth.left`` or ``.right``);
    width, height: that image's size in pixels. Boxes are clipped to the image before
    normalising, so every coordinate lies in [0, 1].

    Raises:
        ValueError: width or height not a positive integer.
    """
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(f"yolo_label_rows: {name} must be a positive integer, got {value!r}")
    keep = labelled_mask(truth, policy)
    if not keep.any():
        return np.zeros((0, 5))
    boxes = np.array([g.visible_box for g in truth], dtype=np.float64).reshape(-1, 4)[keep]
    classes = np.array([g.class_id for g in truth], dtype=np.float64)[keep]
    size = np.array([width, height, width, height], dtype=np.float64)
    corners = np.concatenate([boxes[:, :2] - boxes[:, 2:] / 2, boxes[:, :2] + boxes[:, 2:] / 2], axis=1)
    corners = np.clip(corners, 0.0, size) / size  # x1, y1, x2, y2 in [0, 1]
    centre = (corners[:, :2] + corners[:, 2:]) / 2  # (cx, cy) = (x1 + x2) / 2
    extent = corners[:, 2:] - corners[:, :2]  # (w, h) = (x2 - x1)
    return np.column_stack([classes, centre, extent])


def format_label_rows(rows: np.ndarray) -> str:
    """The text of a YOLO label file: one ``class cx cy w h`` line per row (6 decimals), '' for none."""
    rows = np.asarray(rows, dtype=np.float64).reshape(-1, 5)
    return "".join(f"{int(r[0])} {r[1]:.6f} {r[2]:.6f} {r[3]:.6f} {r[4]:.6f}\n" for r in rows)
