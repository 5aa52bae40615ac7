"""Frame-level box matching and the per-sequence track → ground-truth vote.

Boxes are ``(cx, cy, w, h)`` in pixels, as everywhere in the core (see ``core/types.py``).
IoU has one home, :func:`object_permanence.core.association.iou_matrix`; ``box_iou`` here is the
same function under the name the evaluation code has always used (an alias, not a copy).

The evaluation needs two things from here: a one-to-one matching of ground-truth boxes to track
boxes within one frame (Hungarian on IoU), and, over a whole sequence, which ground-truth entry each
track mostly covered and how often it covered a real object — so that a track can be labelled a
real object or a nuisance (reflection, glare, false positive) when scoring persistence decisions.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from object_permanence.core.association import iou_matrix as box_iou
from object_permanence.core.types import GroundTruthObject, ObjectKind, Track, TrackState

__all__ = ["CAMERAS", "OBSERVED_STATES", "TrackToTruth", "box_iou", "frame_links", "match_frame"]

CAMERAS = ("left", "right")

#: Track states whose box is backed by a detection in that frame (a ghost's box is a prediction).
OBSERVED_STATES = frozenset({TrackState.TENTATIVE, TrackState.VISIBLE})


def _check_threshold(iou_threshold: float) -> None:
    if not 0.0 < iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in (0, 1]; got {iou_threshold}")


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
    _check_threshold(iou_threshold)
    iou = box_iou(gt_boxes, track_boxes)
    if iou.size == 0:
        return []
    rows, cols = linear_sum_assignment(iou, maximize=True)
    keep = iou[rows, cols] >= iou_threshold
    return [(int(r), int(c)) for r, c in zip(rows[keep], cols[keep])]


def _stack(items: Sequence[GroundTruthObject | Track]) -> np.ndarray:
    """(K, 4) boxes of ground-truth entries or tracks."""
    if not items:
        return np.zeros((0, 4), dtype=np.float64)
    return np.stack([np.asarray(i.box, dtype=np.float64) for i in items])


def frame_links(
    gt: Sequence[GroundTruthObject], tracks: Sequence[Track], iou_threshold: float = 0.3
) -> dict[int, GroundTruthObject]:
    """Detection-backed track id → the ground-truth entry it covers in one frame.

    Only tracks in :data:`OBSERVED_STATES` take part (a ghost's box is a prediction and would be
    credited with whatever it drifts over). They are matched with :func:`match_frame` against ALL
    ground-truth entries of the frame, nuisances and low-visibility objects included, so that a
    track sitting on a glare next to an object is not credited to the object.
    """
    observed = [t for t in tracks if t.state in OBSERVED_STATES]
    if not gt or not observed:
        return {}
    pairs = match_frame(_stack(gt), _stack(observed), iou_threshold)
    return {observed[ti].track_id: gt[gi] for gi, ti in pairs}


class TrackToTruth:
    """Accumulates, per ``(camera, track_id)``, what the track's detection-backed frames covered.

    Feed every frame of a sequence with :meth:`add_frame` (or :meth:`add_links`); each frame, the
    links of :func:`frame_links` (Hungarian, IoU ≥ ``iou_threshold`` against all ground-truth
    entries of that camera) give one vote per matched track. Per track it keeps

    * the number of detection-backed frames (TENTATIVE or VISIBLE) it had,
    * the votes per ground-truth id, and how many of them were for a real object (``OBJECT``).

    :meth:`gt_id` is the majority vote (ties: the smaller id), None for a track that never matched.
    :meth:`is_real`: at least ``real_fraction`` of the track's detection-backed frames matched an
    ``OBJECT`` (any object: a track that hops between two real objects is still real).
    """

    def __init__(self, iou_threshold: float = 0.3, real_fraction: float = 0.5) -> None:
        """Raises ValueError when ``iou_threshold`` is outside (0, 1] or ``real_fraction`` outside (0, 1]."""
        _check_threshold(iou_threshold)
        if not 0.0 < real_fraction <= 1.0:
            raise ValueError(f"real_fraction must be in (0, 1]; got {real_fraction}")
        self.iou_threshold = iou_threshold
        self.real_fraction = real_fraction
        self._votes: dict[tuple[str, int], Counter[int]] = defaultdict(Counter)
        self._observed: Counter[tuple[str, int]] = Counter()
        self._object_votes: Counter[tuple[str, int]] = Counter()
        self._kinds: dict[tuple[str, int], ObjectKind] = {}

    @staticmethod
    def _check_camera(camera: str) -> None:
        if camera not in CAMERAS:
            raise ValueError(f"camera must be one of {CAMERAS}; got {camera!r}")

    def add_frame(
        self, camera: str, gt: Sequence[GroundTruthObject], tracks: Sequence[Track]
    ) -> dict[int, GroundTruthObject]:
        """Add one frame of ``camera`` (``"left"`` or ``"right"``); returns that frame's links.

        Raises:
            ValueError: unknown ``camera``.
        """
        self._check_camera(camera)
        links = frame_links(gt, tracks, self.iou_threshold)
        self.add_links(camera, gt, [t.track_id for t in tracks if t.state in OBSERVED_STATES], links)
        return links

    def add_links(
        self,
        camera: str,
        gt: Sequence[GroundTruthObject],
        observed_ids: Sequence[int],
        links: dict[int, GroundTruthObject],
    ) -> None:
        """Add one frame whose links were already computed: ``observed_ids`` are the frame's
        detection-backed track ids, ``links`` maps some of them to ground-truth entries.

        Raises:
            ValueError: unknown ``camera``.
        """
        self._check_camera(camera)
        for g in gt:
            self._kinds[(camera, g.object_id)] = ObjectKind(g.kind)
        for tid in observed_ids:
            self._observed[(camera, tid)] += 1
        for tid, g in links.items():
            self._votes[(camera, tid)][g.object_id] += 1
            self._object_votes[(camera, tid)] += g.kind == ObjectKind.OBJECT

    def tracks(self, camera: str) -> list[int]:
        """Ids of the tracks of ``camera`` with at least one detection-backed frame, sorted."""
        return sorted(tid for cam, tid in self._observed if cam == camera)

    def observed_frames(self, camera: str, track_id: int) -> int:
        """Number of detection-backed frames the track had."""
        return self._observed.get((camera, track_id), 0)

    def object_fraction(self, camera: str, track_id: int) -> float:
        """Share of the track's detection-backed frames matched to a real object (0.0 if none)."""
        n = self.observed_frames(camera, track_id)
        return self._object_votes.get((camera, track_id), 0) / n if n else 0.0

    def gt_id(self, camera: str, track_id: int) -> int | None:
        """Ground-truth id the track mapped to by majority vote, or None if it never matched."""
        votes = self._votes.get((camera, track_id))
        if not votes:
            return None
        best = max(votes.values())
        return min(oid for oid, n in votes.items() if n == best)

    def gt_kind(self, camera: str, track_id: int) -> ObjectKind | None:
        """Kind of the majority ground-truth entry, or None for an unmapped track."""
        oid = self.gt_id(camera, track_id)
        return None if oid is None else self._kinds[(camera, oid)]

    def is_real(self, camera: str, track_id: int) -> bool:
        """True when ≥ ``real_fraction`` of the track's detection-backed frames matched an ``OBJECT``."""
        n = self.observed_frames(camera, track_id)
        return n > 0 and self._object_votes.get((camera, track_id), 0) >= self.real_fraction * n
