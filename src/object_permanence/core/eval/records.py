"""What the evaluation scores: one :class:`FrameRecord` per frame, and per-camera lookups over them.

Conventions shared by every metric of ``core/eval``:

* Records cover consecutive frame indices, in order (:func:`check_records` raises on a gap). A
  frame the pipeline dropped is still a record — its ground truth with empty outputs (no
  detections, tracks, decisions or 3D tracks) — so it counts against the pipeline instead of
  leaving the denominators. Filling those records is the caller's job; a gap is an error so that
  nobody shrinks a denominator by accident.
* "Frames" in gap lengths and latencies count records (positions), not stamps.
* An object is *detected* in a frame and camera when some detection of that camera and frame has
  IoU ≥ :data:`DETECT_IOU` (0.5) with its amodal box or with its visible-part box: the first covers
  a detector that boxes the whole object, the second one that boxes only what it sees (a detector
  boxing half of a half-hidden object did find it). It is *undetected* otherwise, and in frames
  where it has no ground-truth entry.
* A track *covers* a ground-truth entry in a frame when :func:`matching.frame_links` links them
  (detection-backed tracks, Hungarian, IoU ≥ :data:`LINK_IOU` = 0.3, against all entries of the
  frame, nuisances included).
* An undefined ratio (empty denominator) is reported as 0.0, never NaN (JSON has no NaN); the
  counts returned beside every metric tell 0/0 from a real 0.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from object_permanence.core.eval.matching import CAMERAS, OBSERVED_STATES, TrackToTruth, box_iou
from object_permanence.core.types import (
    Detection,
    GroundTruthObject,
    ObjectKind,
    PersistenceDecision,
    Track,
    Track3D,
)

#: IoU a detection needs with an object's amodal or visible box for the object to count as detected.
DETECT_IOU = 0.5
#: IoU threshold linking detection-backed tracks to ground-truth entries (persistence labels,
#: occlusion episodes).
LINK_IOU = 0.3


@dataclass
class FrameRecord:
    """Ground truth and published outputs of one frame, as recorded by the demo or the eval.

    gt_left / gt_right: simulator ground truth per camera (objects and nuisances).
    tracks_left / tracks_right: world-model output, all states (TENTATIVE, VISIBLE, OCCLUDED, LOST).
    decisions_left / decisions_right: persistence verdicts; ``track_id`` refers to that camera.
    tracks3d: triangulated persistent tracks (metres, left camera optical frame);
    ``left_track_id`` links to ``tracks_left``.
    tracks3d_unfiltered: the same triangulator run on all confirmed tracks (no persistence filter).
    latency_s: pipeline latency of this frame in seconds, None when not measured.
    detections_left / detections_right: what the detector reported for this frame (empty for a
    dropped frame); needed to tell an undetected object from a tracked one.
    """

    index: int
    stamp: float
    gt_left: list[GroundTruthObject] = field(default_factory=list)
    gt_right: list[GroundTruthObject] = field(default_factory=list)
    tracks_left: list[Track] = field(default_factory=list)
    tracks_right: list[Track] = field(default_factory=list)
    decisions_left: list[PersistenceDecision] = field(default_factory=list)
    decisions_right: list[PersistenceDecision] = field(default_factory=list)
    tracks3d: list[Track3D] = field(default_factory=list)
    tracks3d_unfiltered: list[Track3D] = field(default_factory=list)
    latency_s: float | None = None
    detections_left: list[Detection] = field(default_factory=list)
    detections_right: list[Detection] = field(default_factory=list)


def check_camera(camera: str) -> None:
    """Raise ValueError unless ``camera`` is ``"left"`` or ``"right"``."""
    if camera not in CAMERAS:
        raise ValueError(f"camera must be one of {CAMERAS}; got {camera!r}")


def check_unit(name: str, value: float) -> None:
    """Raise ValueError naming ``name`` unless ``0 <= value <= 1``."""
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1]; got {value}")


def check_records(records: Sequence[FrameRecord]) -> None:
    """Raise ValueError unless the records' indices are consecutive integers in increasing order.

    A dropped frame must be present as a record with empty outputs (see the module docstring).
    """
    idx = np.array([r.index for r in records], dtype=np.int64)
    if idx.size > 1:
        step = np.diff(idx)
        if np.any(step <= 0):
            raise ValueError("records must be in strictly increasing index order")
        if np.any(step != 1):
            k = int(np.flatnonzero(step != 1)[0])
            raise ValueError(
                f"records must cover consecutive frame indices; index {idx[k]} is followed by "
                f"{idx[k + 1]} (a dropped frame is a record with its ground truth and empty outputs)")


def ratio(num: float, den: float) -> float:
    """num / den, 0.0 when the denominator is empty (documented fallback, JSON-safe)."""
    return float(num) / float(den) if den > 0 else 0.0


def gt_of(rec: FrameRecord, camera: str) -> list[GroundTruthObject]:
    """Ground truth of one camera."""
    return rec.gt_left if camera == "left" else rec.gt_right


def tracks_of(rec: FrameRecord, camera: str) -> list[Track]:
    """World-model tracks of one camera."""
    return rec.tracks_left if camera == "left" else rec.tracks_right


def decisions_of(rec: FrameRecord, camera: str) -> list[PersistenceDecision]:
    """Persistence decisions of one camera."""
    return rec.decisions_left if camera == "left" else rec.decisions_right


def detections_of(rec: FrameRecord, camera: str) -> list[Detection]:
    """Detections of one camera."""
    return rec.detections_left if camera == "left" else rec.detections_right


def boxes_of(items: Sequence[GroundTruthObject | Track | Detection]) -> np.ndarray:
    """(K, 4) ``cx, cy, w, h`` boxes of ground-truth entries, tracks or detections."""
    if not items:
        return np.zeros((0, 4), dtype=np.float64)
    return np.stack([np.asarray(i.box, dtype=np.float64) for i in items])


def detected_ids(gt: Sequence[GroundTruthObject], detections: Sequence[Detection]) -> set[int]:
    """Ids of the ground-truth entries some detection has IoU ≥ :data:`DETECT_IOU` with, on the
    amodal box or the visible-part box (see the module docstring)."""
    if not gt or not detections:
        return set()
    det = boxes_of(detections)
    amodal = box_iou(boxes_of(gt), det)  # (G, D)
    visible = box_iou(np.stack([np.asarray(g.visible_box, dtype=np.float64) for g in gt]), det)
    hit = np.any(np.maximum(amodal, visible) >= DETECT_IOU, axis=1)
    return {gt[i].object_id for i in np.flatnonzero(hit)}


class CameraIndex:
    """Per-camera lookups over a record sequence, built once and shared by the metrics.

    frames[t]: object id → ground-truth entry at record position t.
    detected[t]: ids of the entries detected at t (:func:`detected_ids`).
    links[t]: detection-backed track id → the ground-truth entry it covers at t (LINK_IOU).
    covering[t]: ``OBJECT`` id → the detection-backed track covering it at t.
    truth: the :class:`TrackToTruth` of this camera over the whole sequence.
    """

    def __init__(self, records: Sequence[FrameRecord], camera: str) -> None:
        """Raises ValueError for an unknown ``camera`` or records that are not consecutive."""
        check_camera(camera)
        check_records(records)
        self.camera = camera
        self.records = records
        self.truth = TrackToTruth(LINK_IOU)
        self.frames: list[dict[int, GroundTruthObject]] = []
        self.detected: list[set[int]] = []
        self.links: list[dict[int, GroundTruthObject]] = []
        self.covering: list[dict[int, Track]] = []
        for rec in records:
            gt = gt_of(rec, camera)
            tracks = tracks_of(rec, camera)
            links = self.truth.add_frame(camera, gt, tracks)
            by_id = {t.track_id: t for t in tracks if t.state in OBSERVED_STATES}
            self.frames.append({g.object_id: g for g in gt})
            self.detected.append(detected_ids(gt, detections_of(rec, camera)))
            self.links.append(links)
            self.covering.append({g.object_id: by_id[tid] for tid, g in links.items()
                                  if g.kind == ObjectKind.OBJECT})

    def __len__(self) -> int:
        return len(self.records)

    def get(self, t: int, oid: int) -> GroundTruthObject | None:
        """Ground-truth entry of ``oid`` at position t, None when unlisted."""
        return self.frames[t].get(oid)

    def objects(self) -> list[int]:
        """Sorted ids of every ``OBJECT`` listed in this camera at some frame."""
        return sorted({g.object_id for frame in self.frames for g in frame.values()
                       if g.kind == ObjectKind.OBJECT})

    def visibility(self, oid: int) -> np.ndarray:
        """(T,) visibility of ``oid`` per record position; 0 where it is unlisted."""
        return np.array([g.visibility if (g := frame.get(oid)) is not None else 0.0
                         for frame in self.frames], dtype=np.float64)

    def detected_mask(self, oid: int) -> np.ndarray:
        """(T,) bool: ``oid`` detected at each record position."""
        return np.array([oid in d for d in self.detected], dtype=bool)

    def first_detected(self, oid: int) -> int | None:
        """First record position at which ``oid`` is detected, None if never."""
        hits = np.flatnonzero(self.detected_mask(oid))
        return int(hits[0]) if hits.size else None


def camera_index(records: Sequence[FrameRecord], camera: str, index: CameraIndex | None = None) -> CameraIndex:
    """``index`` when given (it must be of ``camera`` and built from ``records``), else a new one.

    Raises:
        ValueError: ``index`` built for another camera or another record sequence.
    """
    if index is None:
        return CameraIndex(records, camera)
    if index.camera != camera or index.records is not records:
        raise ValueError(f"index was built for camera {index.camera!r} and other records; "
                         f"got camera {camera!r}")
    return index
