"""What the YOLO backends (ultralytics, onnxruntime) share: their settings and the step from
arrays of boxes to :class:`~object_permanence.core.types.Detection` lists.

Both backends end with, per image, (N, 4) ``x0, y0, x1, y1`` boxes in image pixels, (N,) scores
and (N,) class ids; :func:`to_detections` turns them into what the node publishes, so both report
boxes, names and degenerate boxes alike. :func:`compare_detections` measures how two backends'
outputs on the same image agree (the export check and the bench use it).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Protocol, Sequence

import numpy as np

from object_permanence.core.association import assign, iou_matrix
from object_permanence.core.types import Detection

DEVICES = ("auto", "cpu", "cuda")


class YoloDetector(Protocol):
    """What the detector node needs of a YOLO backend (UltralyticsDetector, OnnxDetector)."""

    names: dict[int, str]  # class id -> name
    device: str  # where it runs, e.g. 'cpu', 'cuda', 'cuda:0'
    imgsz: int  # inference size (long side, pixels)
    settings: "YoloSettings"

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        """One list of detections per (h, w, 3) uint8 BGR image, the images run as one batch."""


@dataclass(frozen=True)
class YoloSettings:
    """Post-processing of a YOLO backend.

    conf: minimum confidence of a kept box (a box needs score > conf, as ultralytics).
    iou: NMS IoU threshold (a box overlapping a higher-scoring one of its class by more is dropped;
        of any class with ``agnostic``).
    max_det: boxes kept per image at most, the highest-scoring.
    classes: class ids to report (a box is labelled with its best class first, then kept only when
        that class is listed, as ultralytics' ``classes=``); None or empty: every class. Names are
        turned into ids by :func:`resolve_classes`.
    agnostic: class-agnostic NMS (ultralytics' ``agnostic_nms``): one box per object whatever its
        class. A detector that hesitates between two similar classes otherwise reports the same
        object twice, and a tracker makes two tracks of it.
    """

    conf: float = 0.25
    iou: float = 0.7
    max_det: int = 300
    classes: tuple[int, ...] | None = None
    agnostic: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.agnostic, (bool, np.bool_)):
            raise ValueError(f"agnostic must be a bool, got {self.agnostic!r}")
        for name in ("conf", "iou"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
                raise ValueError(f"{name} must be in [0, 1], got {value!r}")
        if not isinstance(self.max_det, (int, np.integer)) or self.max_det < 1:
            raise ValueError(f"max_det must be an integer >= 1, got {self.max_det!r}")
        if self.classes is not None:
            classes = tuple(self.classes)
            if not all(isinstance(c, (int, np.integer)) and c >= 0 for c in classes):
                raise ValueError(f"classes must be non-negative class ids, got {list(classes)!r}")
            object.__setattr__(self, "classes", tuple(sorted({int(c) for c in classes})) or None)


def resolve_classes(classes: Sequence[int | str] | None, names: Mapping[int, str]) -> tuple[int, ...] | None:
    """A class filter given as ids and/or names (``[0, "bottle"]``, or ``"2"``) as sorted class ids of
    a model whose classes are ``names`` (id -> name); None or empty: None (every class).

    Raises:
        ValueError: an entry that is neither a class id of the model nor one of its names (the
            message lists the model's classes).
    """
    if not classes:
        return None
    by_name = {n: i for i, n in names.items()}
    by_lower = {n.lower(): i for i, n in names.items()}
    ids, unknown = set(), []
    for entry in classes:
        text = str(entry).strip()
        if isinstance(entry, (int, np.integer)) or text.isdigit():
            class_id = int(text) if int(text) in names else None
        else:
            class_id = by_name.get(text, by_lower.get(text.lower()))
        if class_id is None:
            unknown.append(text)
        else:
            ids.add(class_id)
    if unknown:
        listed = ", ".join(f"{i}: {n}" for i, n in sorted(names.items())[:12]) + (", ..." if len(names) > 12 else "")
        raise ValueError(f"classes {unknown} are not among the model's classes ({listed})")
    return tuple(sorted(ids))


def to_detections(xyxy: np.ndarray, scores: np.ndarray, class_ids: np.ndarray,
                  names: Mapping[int, str]) -> list[Detection]:
    """One Detection per row, in the given order.

    Args:
        xyxy: (N, 4) ``x0, y0, x1, y1`` in image pixels (already clipped to the image).
        scores: (N,) confidences in [0, 1].
        class_ids: (N,) integer class ids; names maps them to names (an unknown id is named by its number).

    Returns:
        Detections with ``box`` (4,) float64 ``cx, cy, w, h`` pixels. Rows with a non-finite value or
        no area left after clipping (a box wholly outside the image) are dropped.
    """
    xyxy = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    class_ids = np.asarray(class_ids).reshape(-1).astype(np.int64)
    if not (len(xyxy) == len(scores) == len(class_ids)):
        raise ValueError(f"xyxy, scores and class_ids must have one row per box, got {len(xyxy)}, "
                         f"{len(scores)} and {len(class_ids)}")
    boxes = np.empty_like(xyxy)
    boxes[:, :2] = (xyxy[:, :2] + xyxy[:, 2:]) / 2.0  # centre = (p0 + p1) / 2
    boxes[:, 2:] = xyxy[:, 2:] - xyxy[:, :2]  # size = p1 - p0
    keep = np.isfinite(boxes).all(axis=1) & np.isfinite(scores) & (boxes[:, 2] > 0) & (boxes[:, 3] > 0)
    return [Detection(box=boxes[i], score=float(scores[i]), class_id=int(class_ids[i]),
                      class_name=names.get(int(class_ids[i]), str(int(class_ids[i]))))
            for i in np.flatnonzero(keep)]



@dataclass(frozen=True)
class Agreement:
    """How two detectors' outputs on the same images agree (e.g. the ONNX export against torch).

    matched: box pairs (one-to-one, IoU >= the matching threshold); only_first, only_second: boxes
    the other detector did not report (typically scores right at the threshold); class_mismatches:
    matched pairs with different classes; max_box_diff_px: largest |difference| of any box
    coordinate (cx, cy, w, h, pixels) over the matched pairs; max_score_diff: likewise for scores.
    """

    matched: int = 0
    only_first: int = 0
    only_second: int = 0
    class_mismatches: int = 0
    max_box_diff_px: float = 0.0
    max_score_diff: float = 0.0

    def __add__(self, other: "Agreement") -> "Agreement":
        return Agreement(self.matched + other.matched, self.only_first + other.only_first,
                         self.only_second + other.only_second, self.class_mismatches + other.class_mismatches,
                         max(self.max_box_diff_px, other.max_box_diff_px),
                         max(self.max_score_diff, other.max_score_diff))

    def agrees(self, box_tol_px: float = 1.0) -> bool:
        """Every box found by both, within box_tol_px, with the same class."""
        return (not self.only_first and not self.only_second and not self.class_mismatches
                and self.max_box_diff_px <= box_tol_px)


def compare_detections(first: Sequence[Detection], second: Sequence[Detection], min_iou: float = 0.5) -> Agreement:
    """Match two detection lists of one image one-to-one and measure how the matched pairs differ.

    Pairs need IoU >= ``min_iou``; among those, the assignment (Hungarian) minimises
    ``(1 - IoU) + 0.5 [classes differ] + |score difference|``, so that identical boxes of several
    classes (one anchor reported for two classes) pair up by class and score.

    Raises:
        ValueError: min_iou outside (0, 1].
    """
    if not 0.0 < min_iou <= 1.0:
        raise ValueError(f"min_iou must be in (0, 1], got {min_iou}")
    a = np.array([d.box for d in first], dtype=np.float64).reshape(-1, 4)
    b = np.array([d.box for d in second], dtype=np.float64).reshape(-1, 4)
    class_a = np.array([d.class_id for d in first], dtype=np.int64)
    class_b = np.array([d.class_id for d in second], dtype=np.int64)
    score_a = np.array([d.score for d in first], dtype=np.float64)
    score_b = np.array([d.score for d in second], dtype=np.float64)
    iou = iou_matrix(a, b)
    # cost = (1 - IoU) + 0.5 [class_a != class_b] + |score_a - score_b|; infeasible below min_iou
    cost = (1.0 - iou) + 0.5 * (class_a[:, None] != class_b[None, :]) + np.abs(score_a[:, None] - score_b[None, :])
    matches, free_a, free_b = assign(np.where(iou >= min_iou, cost, np.inf), 3.0)
    i, j = matches[:, 0], matches[:, 1]
    return Agreement(
        matched=len(matches), only_first=len(free_a), only_second=len(free_b),
        class_mismatches=int(np.sum(class_a[i] != class_b[j])) if len(matches) else 0,
        max_box_diff_px=float(np.abs(a[i] - b[j]).max()) if len(matches) else 0.0,
        max_score_diff=float(np.abs(score_a[i] - score_b[j]).max()) if len(matches) else 0.0)
