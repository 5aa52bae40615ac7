"""Dataclasses exchanged between the ROS-free core modules.

Nodes convert ROS messages to and from these types; nothing here imports rclpy.
Boxes are always ``(cx, cy, w, h)`` in pixels (float64), embeddings are L2-normalised
float32 vectors, times are seconds taken from message header stamps (never the wall clock).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np


class TrackState(IntEnum):
    """Lifecycle of a track (values match the ``STATE_*`` constants of Track.msg)."""

    TENTATIVE = 0  # new, not yet confirmed
    VISIBLE = 1  # confirmed and matched this frame
    OCCLUDED = 2  # confirmed, not matched: a ghost driven by the Kalman prediction
    LOST = 3  # ghost for too long: removed (reported once, then forgotten)


class EventKind(IntEnum):
    """Track lifecycle events (values match the constants of TrackEvent.msg)."""

    BIRTH = 0
    OCCLUDED = 1
    REACQUIRED = 2
    LOST = 3


class ObjectKind(IntEnum):
    """What a ground-truth entry of the simulator is (values match SimObject.msg)."""

    OBJECT = 0  # a real, persistent object
    REFLECTION = 1  # a dimmed mirrored copy of an object; stereo-inconsistent
    GLARE = 2  # a saturated blob at a view-dependent position
    FALSE_POSITIVE = 3  # a detector hallucination with no image evidence



@dataclass
class Detection:
    """One detection in one camera image.

    box: (4,) float64 ``cx, cy, w, h`` in pixels.
    embedding: (D,) float32, L2-normalised appearance descriptor, or None when not computed.
    """

    box: np.ndarray
    score: float
    class_id: int
    class_name: str = ""
    embedding: np.ndarray | None = None


@dataclass
class Track:
    """A world-model track as published (ghosts included).

    box: (4,) ``cx, cy, w, h`` pixels: the filter's posterior, moved toward this frame's detection
    by the persistent part of the innovations (``extent_gain_rate``, :mod:`core.extent_gain`);
    velocity: (2,) pixels/s of the box centre; covariance: (4, 4) covariance of the posterior box
    state ``cx, cy, w, h`` in pixels².
    persistence_score: probability in [0, 1] that the track is a real persistent object,
    NaN until a persistence filter has scored it.
    measurement: (4,) ``cx, cy, w, h`` pixels of the raw detection matched this frame (what a
    consumer that does its own filtering, e.g. triangulation, should measure), or None when the
    track was not matched this frame.
    """

    track_id: int
    state: TrackState
    box: np.ndarray
    velocity: np.ndarray
    covariance: np.ndarray
    score: float
    class_id: int
    class_name: str
    age: int  # frames since birth
    hits: int  # frames with a matched detection
    frames_since_seen: int
    embedding: np.ndarray | None = None
    persistence_score: float = float("nan")
    measurement: np.ndarray | None = None


def duplicate_track_ids(tracks: list[Track]) -> list[int]:
    """Sorted ids that occur more than once in ``tracks`` (one message must not name a track twice)."""
    return sorted(i for i, n in Counter(t.track_id for t in tracks).items() if n > 1)


@dataclass
class TrackEvent:
    """A lifecycle transition of one track."""

    track_id: int
    kind: EventKind
    state: TrackState
    box: np.ndarray
    frames_unseen: int = 0


@dataclass
class PersistenceDecision:
    """The persistence filter's verdict on one track.

    attention: per-frame weights over the track's history, oldest first, summing to 1
    (a baseline without attention reports uniform weights over the frames it used).
    frame_flags: (T,) uint8 per frame of ``attention``, what happened in it as bits of
    ``persistence.evidence.FRAME_*`` (matched, occluded, stereo mismatch, confidence dip);
    frame_scores: (T,) float32 detection confidence per frame (0 when unmatched). Both None
    when not recorded (see ``persistence.evidence.WithFrameEvidence``).
    """

    track_id: int
    score: float
    keep: bool
    attention: np.ndarray
    frames_observed: int
    reason: str
    frame_flags: np.ndarray | None = None
    frame_scores: np.ndarray | None = None


@dataclass
class Track3D:
    """A triangulated track in the left camera's optical frame (metres).

    covariance: (3, 3) position covariance in m².
    """

    track_id: int
    state: TrackState
    class_id: int
    class_name: str
    position: np.ndarray
    velocity: np.ndarray
    covariance: np.ndarray
    left_track_id: int
    right_track_id: int
    persistence_score: float
    frames_since_seen: int
    trail: list[np.ndarray] = field(default_factory=list)


@dataclass
class GroundTruthObject:
    """One ground-truth entry of the simulator in one camera.

    box: (4,) ``cx, cy, w, h`` pixels of the amodal box: the object's full extent (as if nothing
        hid it), clipped to the image.
    visibility: fraction of the object's full extent not hidden by occluders, nearer objects or the
        image border, [0, 1].
    position: (3,) metres in the left camera optical frame (NaN for nuisances without a 3D point).
    visible_box: (4,) ``cx, cy, w, h`` pixels of the bounding box of the visible part (what a real
        detector boxes); zeros when nothing is visible.
    source_id: for a REFLECTION, the id of the object it mirrors; 0 otherwise.
    """

    object_id: int
    kind: ObjectKind
    class_id: int
    box: np.ndarray
    visibility: float
    position: np.ndarray
    visible_box: np.ndarray = field(default_factory=lambda: np.zeros(4))
    source_id: int = 0
