"""Frame-level box matching and the per-sequence track → ground-truth mapping.

Boxes are ``(cx, cy, w, h)`` in pixels, as everywhere in the core (see ``core/types.py``).
The evaluation needs two things from here: a one-to-one matching of ground-truth boxes to track
boxes within one frame (Hungarian on IoU), and, over a whole sequence, which ground-truth entry each
track "is" — so that a track can be labelled a real object or a nuisance (reflection, glare, false
positive) when scoring ghosts, persistence decisions and 3D points.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from object_permanence.core.types import GroundTruthObject, ObjectKind, Track, TrackState

CAMERAS = ("left", "right")

#: Track states whose box is backed by a detection in that frame (a ghost's box is a prediction).
OBSERVED_STATES = frozenset({TrackState.TENTATIVE, TrackState.VISIBLE})


def _as_boxes(boxes: np.ndarray | Sequence[Sequence[float]], name: str) -> np.ndarray:
    """Return ``boxes`` as a float64 (K, 4) array; raise ValueError naming ``name`` otherwise."""
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, 4), dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"{name} must have shape (K, 4) cx, cy, w, h; got shape {arr.shape}")
    return arr


def box_iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Pairwise intersection over union of two sets of ``cx, cy, w, h`` boxes.

    boxes_a: (N, 4) pixels; boxes_b: (M, 4) pixels. Returns (N, M) IoU in [0, 1]; pairs with a zero
    union (degenerate boxes) get 0. Non-finite boxes give IoU 0 with everything.
    """
    a = _as_boxes(boxes_a, "boxes_a")
    b = _as_boxes(boxes_b, "boxes_b")
    # corners: x1 = cx - w/2, x2 = cx + w/2 (same for y)
    a_lo, a_hi = a[:, None, :2] - a[:, None, 2:] / 2.0, a[:, None, :2] + a[:, None, 2:] / 2.0
    b_lo, b_hi = b[None, :, :2] - b[None, :, 2:] / 2.0, b[None, :, :2] + b[None, :, 2:] / 2.0
    wh = np.clip(np.minimum(a_hi, b_hi) - np.maximum(a_lo, b_lo), 0.0, None)  # (N, M, 2)
    inter = wh[..., 0] * wh[..., 1]  # |A ∩ B|
    area_a = np.clip(a[:, 2], 0.0, None) * np.clip(a[:, 3], 0.0, None)
    area_b = np.clip(b[:, 2], 0.0, None) * np.clip(b[:, 3], 0.0, None)
    union = area_a[:, None] + area_b[None, :] - inter  # |A ∪ B| = |A| + |B| - |A ∩ B|
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0.0, inter / union, 0.0)
    return np.nan_to_num(iou, nan=0.0, posinf=0.0, neginf=0.0)


def match_frame(
    gt_boxes: np.ndarray, track_boxes: np.ndarray, iou_threshold: float = 0.3
) -> list[tuple[int, int]]:
    """One-to-one matching of ground-truth boxes to track boxes in one frame.

    Hungarian assignment (``scipy.optimize.linear_sum_assignment``) maximising the summed IoU;
    assigned pairs with IoU below ``iou_threshold`` are dropped.

    gt_boxes: (N, 4), track_boxes: (M, 4), both ``cx, cy, w, h`` pixels.
    Returns ``(gt_idx, trk_idx)`` pairs sorted by ``gt_idx``.

    Raises:
        ValueError: ``iou_threshold`` outside (0, 1], or a box array not of shape (K, 4).
    """
    if not 0.0 < iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in (0, 1]; got {iou_threshold}")
    iou = box_iou(gt_boxes, track_boxes)
    if iou.size == 0:
        return []
    rows, cols = linear_sum_assignment(iou, maximize=True)
    keep = iou[rows, cols] >= iou_threshold
    return [(int(r), int(c)) for r, c in zip(rows[keep], cols[keep])]


class TrackToTruth:
    """Maps each ``(camera, track_id)`` to the ground-truth entry it overlapped most over its life.

    Feed every frame of a sequence with :meth:`add_frame`; each frame, the tracks whose box is
    backed by a detection (states TENTATIVE and VISIBLE — a ghost's box is a prediction and would
    vote for whatever it drifts over) are matched with :func:`match_frame` against ALL ground-truth
    entries of that camera, nuisances and low-visibility objects included. Every match is one vote;
    a track maps to the ground-truth id with most votes (ties: the smaller id). A track that never
    matched anything maps to ``None``, i.e. it is neither a real object nor a known nuisance.
    """

    def __init__(self, iou_threshold: float = 0.3) -> None:
        """Raises ValueError when ``iou_threshold`` is outside (0, 1]."""
        if not 0.0 < iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in (0, 1]; got {iou_threshold}")
        self.iou_threshold = iou_threshold
        self._votes: dict[tuple[str, int], Counter[int]] = defaultdict(Counter)
        self._kinds: dict[tuple[str, int], ObjectKind] = {}

    def add_frame(
        self, camera: str, gt: Sequence[GroundTruthObject], tracks: Sequence[Track]
    ) -> None:
        """Add one frame's votes for ``camera`` (``"left"`` or ``"right"``).

        Raises:
            ValueError: unknown ``camera``.
        """
        if camera not in CAMERAS:
            raise ValueError(f"camera must be one of {CAMERAS}; got {camera!r}")
        for g in gt:
            self._kinds[(camera, g.object_id)] = ObjectKind(g.kind)
        observed = [t for t in tracks if t.state in OBSERVED_STATES]
        if not gt or not observed:
            return
        pairs = match_frame(
            np.stack([g.box for g in gt]), np.stack([t.box for t in observed]), self.iou_threshold
        )
        for gi, ti in pairs:
            self._votes[(camera, observed[ti].track_id)][gt[gi].object_id] += 1

    def gt_id(self, camera: str, track_id: int) -> int | None:
        """Ground-truth id the track mapped to by majority vote, or None if it never matched."""
        votes = self._votes.get((camera, track_id))
        if not votes:
            return None
        best = max(votes.values())
        return min(oid for oid, n in votes.items() if n == best)

    def gt_kind(self, camera: str, track_id: int) -> ObjectKind | None:
        """Kind of the mapped ground-truth entry, or None for an unmapped track."""
        oid = self.gt_id(camera, track_id)
        return None if oid is None else self._kinds[(camera, oid)]

    def is_real(self, camera: str, track_id: int) -> bool:
        """True when the track maps to a real object (``ObjectKind.OBJECT``)."""
        return self.gt_kind(camera, track_id) == ObjectKind.OBJECT
