"""The trackers under comparison behind one interface: our world model and the open-source peers.

Every tracker takes one camera's detections frame by frame and returns the tracks it publishes in
that frame as :class:`~object_permanence.core.types.Track` (the type the metrics read), so the
evaluation scores all of them with the same code:

* ``ours``: :class:`~object_permanence.core.world_model.WorldModel` (all states: TENTATIVE,
  VISIBLE, OCCLUDED ghosts, LOST; it uses appearance embeddings when detections carry them).
* ``sort``, ``bytetrack``, ``ocsort``, ``botsort``: the implementations of the ``trackers``
  package (Roboflow, Apache-2.0, pinned in ``requirements/base.txt``). They report confirmed
  tracks on the detections they matched in that frame, so every track they return is VISIBLE with
  the detection's box; they have no ghosts. They ignore classes and embeddings. BoT-SORT runs
  without re-identification (``trackers`` implements none, and no weights are downloaded) and
  with camera-motion compensation off (the stereo rig is static); that is motion + IoU BoT-SORT.

The peers run in fixed-rate mode (one call per frame, ``frame_rate`` given at construction):
the sequences evaluated have no dropped frames, so that equals the timestamp mode.
"""
from __future__ import annotations

import inspect
import itertools
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from object_permanence.core.types import Detection, Track, TrackState
from object_permanence.core.world_model import WorldModel, WorldModelConfig

OURS = "ours"
PEER_NAMES = ("sort", "bytetrack", "ocsort", "botsort")
TRACKER_NAMES = (OURS, *PEER_NAMES)

#: Settings every run of a peer gets, whatever its tuned parameters: BoT-SORT without camera
#: motion compensation (a static rig; CMC would also need the images).
FIXED_PEER_PARAMS: dict[str, dict[str, Any]] = {"botsort": {"enable_cmc": False}}

#: The parameter that decides which detections may start a track, per peer (OC-SORT has no
#: separate activation threshold: its ``high_conf_det_threshold`` gates association and births).
ACTIVATION_PARAM = {"sort": "track_activation_threshold", "bytetrack": "track_activation_threshold",
                    "ocsort": "high_conf_det_threshold", "botsort": "track_activation_threshold"}

#: The smallest IoU that associates a detection with a track, per peer.
IOU_PARAM = {"sort": "minimum_iou_threshold", "bytetrack": "minimum_iou_threshold",
             "ocsort": "minimum_iou_threshold", "botsort": "minimum_iou_threshold_first_assoc"}

#: The tuning grid: activation threshold x minimum IoU x lost-track buffer (frames at 30 fps).
ACTIVATION_VALUES = (0.3, 0.5, 0.7)
IOU_VALUES = (0.1, 0.3)
LOST_BUFFER_VALUES = (30, 90)


class FrameTracker(Protocol):
    """One camera's tracker, stepped once per frame."""

    name: str

    def step(self, stamp_s: float, detections: Sequence[Detection],
             image_size: tuple[int, int] | None = None) -> list[Track]:
        """Associate the detections of the frame at ``stamp_s`` seconds (image ``(width,
        height)`` px when known); return the tracks published for that frame."""
        ...


def _trackers_classes() -> dict[str, type]:
    """The peer classes of the ``trackers`` package (imported on first use: it is large)."""
    from trackers import BoTSORTTracker, ByteTrackTracker, OCSORTTracker, SORTTracker

    return {"sort": SORTTracker, "bytetrack": ByteTrackTracker, "ocsort": OCSORTTracker,
            "botsort": BoTSORTTracker}


def peer_parameter_names(name: str) -> tuple[str, ...]:
    """The keyword parameters the peer ``name`` accepts (besides ``frame_rate``).

    Raises:
        ValueError: ``name`` is not one of :data:`PEER_NAMES`.
    """
    if name not in PEER_NAMES:
        raise ValueError(f"peer name must be one of {PEER_NAMES}, got {name!r}")
    signature = inspect.signature(_trackers_classes()[name].__init__)
    return tuple(p for p in signature.parameters if p not in ("self", "frame_rate"))


def peer_grid(name: str) -> Iterator[dict[str, Any]]:
    """Every parameter set of the tuning grid of peer ``name`` (12 sets).

    Raises:
        ValueError: ``name`` is not one of :data:`PEER_NAMES`.
    """
    if name not in PEER_NAMES:
        raise ValueError(f"peer name must be one of {PEER_NAMES}, got {name!r}")
    for activation, iou, lost in itertools.product(ACTIVATION_VALUES, IOU_VALUES, LOST_BUFFER_VALUES):
        params: dict[str, Any] = {ACTIVATION_PARAM[name]: activation, IOU_PARAM[name]: iou,
                                  "lost_track_buffer": lost}
        if name in ("bytetrack", "botsort"):
            # the two-stage trackers: detections below the activation threshold are the
            # low-confidence ones of the second stage
            params["high_conf_det_threshold"] = activation
        yield params


class PeerTracker:
    """Adapter of one ``trackers`` tracker: ``list[Detection]`` in, VISIBLE ``Track`` list out.

    Args:
        name: one of :data:`PEER_NAMES`.
        params: keyword parameters of the tracker class (e.g. ``lost_track_buffer``); the
            :data:`FIXED_PEER_PARAMS` of that peer are applied on top.
        frame_rate: frames per second of the sequence (the peers scale their buffers with it).

    Track ids are the peer's ids + 1 (they count from 0, ours from 1). ``age`` counts frames since
    the id was first returned, ``hits`` the frames it was returned; velocity and covariance are
    zero (a peer publishes neither).

    Raises:
        ValueError: unknown ``name``, a parameter the tracker does not take, a fixed parameter
            overridden, or ``frame_rate`` not positive (or the tracker rejects a value).
    """

    def __init__(self, name: str, params: Mapping[str, Any] | None = None, frame_rate: float = 30.0) -> None:
        allowed = peer_parameter_names(name)
        params = dict(params or {})
        unknown = sorted(set(params) - set(allowed))
        if unknown:
            raise ValueError(f"{name}: unknown parameter(s) {unknown}; allowed: {list(allowed)}")
        fixed = FIXED_PEER_PARAMS.get(name, {})
        clash = sorted(k for k in fixed if k in params and params[k] != fixed[k])
        if clash:
            raise ValueError(f"{name}: parameter(s) {clash} are fixed to {fixed} for the comparison")
        if not (isinstance(frame_rate, (int, float)) and np.isfinite(frame_rate) and frame_rate > 0):
            raise ValueError(f"frame_rate must be a positive number, got {frame_rate!r}")
        self.name = name
        self.params = {**params, **fixed}
        self._tracker = _trackers_classes()[name](frame_rate=float(frame_rate), **self.params)
        self._first_frame: dict[int, int] = {}
        self._hits: dict[int, int] = {}
        self._frame = -1

    def step(self, stamp_s: float, detections: Sequence[Detection],
             image_size: tuple[int, int] | None = None) -> list[Track]:
        """Feed one frame (``stamp_s`` and ``image_size`` are unused: fixed-rate mode, no CMC);
        returns the confirmed tracks matched in this frame, sorted by id."""
        import supervision as sv

        self._frame += 1
        n = len(detections)
        boxes = np.array([d.box for d in detections], dtype=np.float64).reshape(n, 4)
        xyxy = np.concatenate([boxes[:, :2] - boxes[:, 2:] / 2, boxes[:, :2] + boxes[:, 2:] / 2], axis=1)
        result = self._tracker.update(sv.Detections(
            xyxy=xyxy.astype(np.float32) if n else np.zeros((0, 4), np.float32),
            confidence=np.array([d.score for d in detections], dtype=np.float32),
            class_id=np.array([d.class_id for d in detections], dtype=int)))
        ids = np.asarray(result.tracker_id if result.tracker_id is not None else [], dtype=np.int64)
        keep = ids >= 0
        out_xyxy = np.asarray(result.xyxy, dtype=np.float64).reshape(-1, 4)[keep]
        out_boxes = np.concatenate([(out_xyxy[:, :2] + out_xyxy[:, 2:]) / 2, out_xyxy[:, 2:] - out_xyxy[:, :2]],
                                   axis=1)  # cx = (x1 + x2) / 2, w = x2 - x1
        scores = np.ones(len(ids)) if result.confidence is None else np.asarray(result.confidence, np.float64)
        classes = np.zeros(len(ids), int) if result.class_id is None else np.asarray(result.class_id, int)
        tracks = []
        for track_id, box, score, cls in zip(ids[keep] + 1, out_boxes, scores[keep], classes[keep]):
            first = self._first_frame.setdefault(int(track_id), self._frame)
            self._hits[int(track_id)] = self._hits.get(int(track_id), 0) + 1
            tracks.append(Track(track_id=int(track_id), state=TrackState.VISIBLE, box=box,
                                velocity=np.zeros(2), covariance=np.zeros((4, 4)), score=float(score),
                                class_id=int(cls), class_name="", age=self._frame - first,
                                hits=self._hits[int(track_id)], frames_since_seen=0))
        return sorted(tracks, key=lambda t: t.track_id)


class WorldModelTracker:
    """Our world model behind the :class:`FrameTracker` interface (all published states)."""

    def __init__(self, config: WorldModelConfig) -> None:
        self.name = OURS
        self._model = WorldModel(config)

    def step(self, stamp_s: float, detections: Sequence[Detection],
             image_size: tuple[int, int] | None = None) -> list[Track]:
        """One :meth:`WorldModel.step`; returns its published tracks (ghosts included)."""
        return self._model.step(stamp_s, list(detections), image_size).tracks


def make_tracker(name: str, world_model_config: WorldModelConfig,
                 peer_params: Mapping[str, Mapping[str, Any]], frame_rate: float) -> FrameTracker:
    """A fresh tracker called ``name`` (one of :data:`TRACKER_NAMES`): ours with
    ``world_model_config``, a peer with ``peer_params[name]`` (empty: the library's defaults).

    Raises:
        ValueError: unknown ``name`` or a bad parameter (see :class:`PeerTracker`).
    """
    if name == OURS:
        return WorldModelTracker(world_model_config)
    if name not in PEER_NAMES:
        raise ValueError(f"tracker name must be one of {TRACKER_NAMES}, got {name!r}")
    return PeerTracker(name, peer_params.get(name, {}), frame_rate)


def read_peer_params(document: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The ``peers`` block of a parsed ``config/eval_peers.yaml``: ``{peer: {parameter: value}}``,
    every peer of :data:`PEER_NAMES` present and every parameter one its tracker takes.

    Raises:
        ValueError: no ``peers`` mapping, a peer missing or unknown, or an unknown parameter.
    """
    peers = document.get("peers") if isinstance(document, Mapping) else None
    if not isinstance(peers, Mapping):
        raise ValueError("the peers' parameter file needs a 'peers' mapping of peer name -> parameters")
    unknown = sorted(set(peers) - set(PEER_NAMES))
    missing = [p for p in PEER_NAMES if p not in peers]
    if unknown or missing:
        raise ValueError(f"the 'peers' mapping must name exactly {list(PEER_NAMES)}; unknown {unknown}, "
                         f"missing {missing}")
    out = {}
    for name in PEER_NAMES:
        params = dict(peers[name] or {})
        bad = sorted(set(params) - set(peer_parameter_names(name)))
        if bad:
            raise ValueError(f"peers.{name}: unknown parameter(s) {bad}")
        out[name] = params
    return out
