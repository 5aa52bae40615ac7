"""The world model: a multi-object tracker with object permanence ("ghosts").

A detection is an observation; the world model holds the belief. Each track owns a box filter
(:mod:`object_permanence.core.kalman`). When its object is not detected the track becomes a
*ghost* (``OCCLUDED``): its prediction, with growing covariance, is still published, and the same
identity is resumed when the object is seen again, after a long gap by appearance.

Lifecycle: ``TENTATIVE -> VISIBLE <-> OCCLUDED -> LOST``. Events: ``BIRTH`` (confirmed),
``OCCLUDED``, ``REACQUIRED`` (with the frames unseen), ``LOST`` (the track is published once with
state LOST, then forgotten). Tentative tracks that miss too often are deleted silently.

Association is a cascade, each stage an optimal assignment on a gated cost matrix:

1. VISIBLE and recently occluded tracks: IoU / Mahalanobis motion cost mixed with appearance.
2. Older ghosts: Mahalanobis gate on the grown covariance, mixed with appearance; or, beyond that
   gate, re-identification by appearance alone inside a loose motion gate (the filter is then
   re-initialised at the detection instead of being pulled across the gap).
3. TENTATIVE tracks: IoU.
4. Leftover detections start TENTATIVE tracks.

Classes must match in every stage. Time comes only from the ``stamp`` arguments (seconds).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Callable

import numpy as np
from scipy.stats import chi2

from object_permanence.core.association import (
    appearance_cost,
    assign,
    iou_matrix,
    mahalanobis_sq_matrix,
)
from object_permanence.core.id_allocator import IdAllocator
from object_permanence.core.kalman import BoxFilter, BoxKalmanFilter, BoxKalmanParams
from object_permanence.core.types import Detection, EventKind, Track, TrackEvent, TrackState

#: Boxes with a coordinate or size beyond this (pixels) are rejected as invalid: no camera is that
#: large, and such values overflow the filter's covariance.
MAX_BOX_PX = 1e5

FilterFactory = Callable[[np.ndarray, BoxKalmanParams], BoxFilter]

_KALMAN_FIELDS = tuple(f.name for f in fields(BoxKalmanParams))


@dataclass(frozen=True)
class WorldModelConfig:
    """Tracker parameters (all scalars, so a node can declare each as a ROS parameter).

    min_hits: matched frames that confirm a TENTATIVE track (BIRTH).
    max_tentative_misses: consecutive misses after which a TENTATIVE track is deleted.
    max_ghost_age_s: seconds a confirmed track may stay unseen (a ghost) before it is LOST;
        4 s lets a 3-second occlusion survive with margin.
    ghost_age_per_hit_s: a ghost's lifetime also grows with the evidence behind it: it is
        ``min(max_ghost_age_s, max(recent_ghost_s, ghost_age_per_hit_s * hits))``, so a track
        confirmed by a few frames (glare, a brief reflection) does not haunt the scene for seconds
        (the hit-counter idea of Norfair).
    recent_ghost_s: ghosts unseen at most this long are associated with the VISIBLE tracks
        (stage 1) rather than in the re-identification stage.
    iou_gate: smallest IoU that counts as motion evidence (stages 1 and 3).
    gate_probability: the Mahalanobis gate is the chi² quantile of this probability, 4 dof.
    appearance_weight: weight of the appearance (cosine) cost against the motion cost, in [0, 1].
    reid_max_appearance_cost: largest cosine distance accepted to re-identify a ghost outside
        its Mahalanobis gate.
    reid_gate_scale: the loose motion gate of that re-identification, as a multiple of the
        Mahalanobis gate (on d²).
    embedding_momentum: weight of the old value in a track's appearance EMA, in [0, 1).
    publish_tentative: whether TENTATIVE tracks are in the published list.
    measurement_std_frac .. min_std_px: Kalman noise scales (see ``BoxKalmanParams``).

    Raises:
        ValueError: naming the field and its value, also for inconsistent combinations.
    """

    min_hits: int = 3
    max_tentative_misses: int = 1
    max_ghost_age_s: float = 4.0
    ghost_age_per_hit_s: float = 0.2
    recent_ghost_s: float = 0.5
    iou_gate: float = 0.1
    gate_probability: float = 0.99
    appearance_weight: float = 0.5
    reid_max_appearance_cost: float = 0.25
    reid_gate_scale: float = 16.0
    embedding_momentum: float = 0.9
    publish_tentative: bool = False
    measurement_std_frac: float = BoxKalmanParams.measurement_std_frac
    accel_std_frac: float = BoxKalmanParams.accel_std_frac
    size_accel_std_frac: float = BoxKalmanParams.size_accel_std_frac
    init_velocity_std_frac: float = BoxKalmanParams.init_velocity_std_frac
    min_std_px: float = BoxKalmanParams.min_std_px

    def __post_init__(self) -> None:
        def check(name: str, ok: bool, what: str) -> None:
            if not ok:
                raise ValueError(f"{name} must be {what}, got {getattr(self, name)!r}")

        def is_int(value: object) -> bool:
            return isinstance(value, (int, np.integer)) and not isinstance(value, bool)

        def is_num(value: object) -> bool:
            return isinstance(value, (int, float, np.number)) and not isinstance(value, bool) \
                and math.isfinite(value)

        check("min_hits", is_int(self.min_hits) and self.min_hits >= 1, "an integer >= 1")
        check("max_tentative_misses", is_int(self.max_tentative_misses)
              and self.max_tentative_misses >= 0, "an integer >= 0")
        check("max_ghost_age_s", is_num(self.max_ghost_age_s) and self.max_ghost_age_s >= 0,
              "a finite number >= 0")
        check("ghost_age_per_hit_s", is_num(self.ghost_age_per_hit_s) and self.ghost_age_per_hit_s > 0,
              "a finite number > 0")
        check("recent_ghost_s", is_num(self.recent_ghost_s) and self.recent_ghost_s >= 0,
              "a finite number >= 0")
        check("iou_gate", is_num(self.iou_gate) and 0 < self.iou_gate <= 1, "in (0, 1]")
        check("gate_probability", is_num(self.gate_probability) and 0 < self.gate_probability < 1,
              "in (0, 1)")
        check("appearance_weight", is_num(self.appearance_weight)
              and 0 <= self.appearance_weight <= 1, "in [0, 1]")
        check("reid_max_appearance_cost", is_num(self.reid_max_appearance_cost)
              and 0 <= self.reid_max_appearance_cost <= 2, "in [0, 2]")
        check("reid_gate_scale", is_num(self.reid_gate_scale) and self.reid_gate_scale >= 1,
              "a finite number >= 1")
        check("embedding_momentum", is_num(self.embedding_momentum)
              and 0 <= self.embedding_momentum < 1, "in [0, 1)")
        check("publish_tentative", isinstance(self.publish_tentative, bool), "a bool")
        for name in _KALMAN_FIELDS:
            check(name, is_num(getattr(self, name)) and getattr(self, name) > 0,
                  "a positive finite number")
        if self.recent_ghost_s > self.max_ghost_age_s:
            raise ValueError(f"recent_ghost_s ({self.recent_ghost_s!r}) must not exceed "
                             f"max_ghost_age_s ({self.max_ghost_age_s!r})")

    @property
    def kalman_params(self) -> BoxKalmanParams:
        """The Kalman noise scales of this configuration."""
        return BoxKalmanParams(**{name: getattr(self, name) for name in _KALMAN_FIELDS})

    @property
    def mahalanobis_gate(self) -> float:
        """Gate on the squared Mahalanobis distance: chi² quantile, 4 degrees of freedom."""
        return float(chi2.ppf(self.gate_probability, df=4))


@dataclass
class StepResult:
    """What one :meth:`WorldModel.step` produced.

    tracks: published tracks sorted by id (VISIBLE, OCCLUDED ghosts, LOST once, and TENTATIVE
        when ``publish_tentative``); events: lifecycle transitions in the order they happened;
    rejections: why each input detection dropped as invalid was dropped (one line each, naming the
        detection's index and the problem).
    """

    tracks: list[Track]
    events: list[TrackEvent]
    rejections: list[str] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        """How many input detections were dropped as invalid."""
        return len(self.rejections)


@dataclass
class _TrackRecord:
    """Internal, mutable state of one track."""

    track_id: int
    filter: BoxFilter
    state: TrackState
    class_id: int
    class_name: str
    score: float
    embedding: np.ndarray | None
    last_seen_stamp: float
    last_seen_center: np.ndarray
    measurement: np.ndarray | None = None  # the detection box matched this frame
    age: int = 0
    hits: int = 1
    misses: int = 0  # consecutive
    frames_since_seen: int = 0


class WorldModel:
    """Tracker with ghosts; feed it one camera's detections frame by frame with :meth:`step`.

    Args:
        config: parameters (validated by the dataclass).
        filter_factory: builds a :class:`BoxFilter` from a first box (4,) and the noise scales.
        ids: where track ids come from (default: 1, 2, ...). A node passes one allocator, seeded
            from the clock, for its whole life (and to both cameras' models), so that ids are never
            reused across resets and restarts.
    """

    def __init__(self, config: WorldModelConfig | None = None,
                 filter_factory: FilterFactory = BoxKalmanFilter, ids: IdAllocator | None = None) -> None:
        self.config = config if config is not None else WorldModelConfig()
        self._filter_factory = filter_factory
        self._kalman_params = self.config.kalman_params
        self._gate = self.config.mahalanobis_gate
        self._ids = ids if ids is not None else IdAllocator()
        self.reset()

    def reset(self) -> None:
        """Forget all tracks and the last stamp (ids keep increasing: they are never reused)."""
        self._tracks: list[_TrackRecord] = []
        self._last_stamp: float | None = None
        self._embedding_dim: int | None = None

    @property
    def last_stamp(self) -> float | None:
        """Stamp of the last step (seconds), None before the first one or after :meth:`reset`."""
        return self._last_stamp

    @property
    def tracks(self) -> list[Track]:
        """All live tracks (TENTATIVE included), sorted by id."""
        return [self._publish(t) for t in self._tracks]

    def step(self, stamp: float, detections: list[Detection],
             image_size: tuple[int, int] | None = None) -> StepResult:
        """Advance to ``stamp`` (seconds) and associate this frame's detections.

        ``image_size`` ``(width, height)`` in pixels, when known, lets a ghost whose predicted
        centre has left the image become LOST at once instead of haunting outside the view.

        ``dt`` is the difference to the previous stamp; the first step and a repeated stamp
        (``dt = 0``) do not predict. An empty ``detections`` only predicts (ghosts keep moving,
        their covariance grows).

        Raises:
            ValueError: if ``stamp`` is not finite or earlier than the previous one (nothing
                changes then; the caller drops the frame).
        """
        stamp = float(stamp)
        if not math.isfinite(stamp):
            raise ValueError(f"stamp must be finite, got {stamp!r}")
        if self._last_stamp is not None and stamp < self._last_stamp:
            raise ValueError(f"stamp went backwards: {stamp!r} < previous {self._last_stamp!r}")
        dt = 0.0 if self._last_stamp is None else stamp - self._last_stamp
        self._last_stamp = stamp
        dets, rejections = self._valid_detections(detections, image_size)
        if dt > 0:
            for t in self._tracks:
                t.filter.predict(dt)
        matched, reinit = self._associate(stamp, dets)
        events: list[TrackEvent] = []
        published: list[Track] = []
        survivors: list[_TrackRecord] = []
        for i, t in enumerate(self._tracks):
            j = matched.get(i)
            if j is None:
                self._miss(t, stamp, events, image_size)
            else:
                self._hit(t, dets[j], stamp, i in reinit, events)
            if t.state == TrackState.LOST:
                published.append(self._publish(t))
            elif t.state == TrackState.TENTATIVE and t.misses > self.config.max_tentative_misses:
                continue
            else:
                survivors.append(t)
                if t.state != TrackState.TENTATIVE or self.config.publish_tentative:
                    published.append(self._publish(t))
        matched_dets = set(matched.values())
        for j, det in enumerate(dets):
            if j not in matched_dets:
                t = self._new_track(det, stamp, events)
                survivors.append(t)
                if t.state != TrackState.TENTATIVE or self.config.publish_tentative:
                    published.append(self._publish(t))
        self._tracks = survivors
        return StepResult(tracks=published, events=events, rejections=rejections)

    def _valid_detections(self, detections: list[Detection],
                          image_size: tuple[int, int] | None) -> tuple[list[Detection], list[str]]:
        """The usable detections and, for each one dropped, why: a box that is not four finite
        numbers, has w or h <= 0, is absurdly large (> MAX_BOX_PX) or lies entirely outside the
        image (when its size is known); a score that is not a number in [0, 1]; an embedding that
        is not finite or whose length differs from the first one seen."""
        kept: list[Detection] = []
        problems: list[str] = []
        for i, det in enumerate(detections):
            problem = self._problem(det, image_size)
            if problem is not None:
                problems.append(f"detection {i}: {problem}")
                continue
            emb = None if det.embedding is None else np.asarray(det.embedding, np.float32).ravel()
            if emb is not None and self._embedding_dim is None:
                self._embedding_dim = emb.shape[0]
            kept.append(Detection(box=np.asarray(det.box, dtype=float), score=float(det.score),
                                  class_id=int(det.class_id), class_name=det.class_name, embedding=emb))
        return kept, problems

    def _problem(self, det: Detection, image_size: tuple[int, int] | None) -> str | None:
        """What is wrong with one detection, or None."""
        try:
            box = np.asarray(det.box, dtype=float)
            score = float(det.score)
            int(det.class_id)
            emb = None if det.embedding is None else np.asarray(det.embedding, np.float32).ravel()
        except (TypeError, ValueError) as exc:
            return f"not a detection ({exc})"
        if box.shape != (4,) or not np.all(np.isfinite(box)):
            return f"box must be four finite numbers cx, cy, w, h, got {np.asarray(det.box).tolist()}"
        if box[2] <= 0 or box[3] <= 0 or np.any(np.abs(box) > MAX_BOX_PX):
            return f"box size must be > 0 and every value within {MAX_BOX_PX:g} px, got {box.tolist()}"
        if image_size is not None and min(image_size) > 0:
            x1, y1, x2, y2 = box[0] - box[2] / 2, box[1] - box[3] / 2, box[0] + box[2] / 2, box[1] + box[3] / 2
            if x2 <= 0 or y2 <= 0 or x1 >= image_size[0] or y1 >= image_size[1]:
                return f"box {box.tolist()} lies entirely outside the {image_size[0]}x{image_size[1]} image"
        if not 0.0 <= score <= 1.0:
            return f"score must lie in [0, 1], got {score}"
        if emb is not None:
            if not np.all(np.isfinite(emb)):
                return "embedding is not finite"
            if self._embedding_dim is not None and emb.shape[0] != self._embedding_dim:
                return f"embedding has {emb.shape[0]} values, earlier ones {self._embedding_dim}"
        return None

    def _associate(self, stamp: float, dets: list[Detection]) -> tuple[dict[int, int], set[int]]:
        """Run the cascade; returns {track index: detection index} and the track indices
        re-identified outside their motion gate (to be re-initialised)."""
        cfg = self.config
        n, m = len(self._tracks), len(dets)
        if n == 0 or m == 0:
            return {}, set()
        det_boxes = np.stack([d.box for d in dets])
        det_cls = np.array([d.class_id for d in dets])
        trk_boxes = np.stack([t.filter.box for t in self._tracks])
        trk_S = np.stack([t.filter.innovation_covariance for t in self._tracks])
        trk_cls = np.array([t.class_id for t in self._tracks])
        states = np.array([int(t.state) for t in self._tracks])
        unseen_s = stamp - np.array([t.last_seen_stamp for t in self._tracks])

        d2 = mahalanobis_sq_matrix(trk_boxes, trk_S, det_boxes)  # (N, M)
        iou = iou_matrix(trk_boxes, det_boxes)
        app = self._appearance_matrix(dets)  # NaN where either side has no embedding
        class_ok = trk_cls[:, None] == det_cls[None, :]
        in_gate = d2 <= self._gate
        w = cfg.appearance_weight
        has_app = np.isfinite(app)

        def mix(motion: np.ndarray) -> np.ndarray:
            return np.where(has_app, (1 - w) * motion + w * np.nan_to_num(app), motion)

        matched: dict[int, int] = {}
        free_dets = np.arange(m)

        def run(rows: np.ndarray, cost: np.ndarray, max_cost: float) -> np.ndarray:
            nonlocal free_dets
            sub = cost[np.ix_(rows, free_dets)]
            pairs, _, _ = assign(sub, max_cost)
            for r, c in pairs:
                matched[int(rows[r])] = int(free_dets[c])
            taken = free_dets[pairs[:, 1]]
            free_dets = np.setdiff1d(free_dets, taken)
            return rows[pairs[:, 0]]

        # Motion evidence: IoU with the predicted box or the Mahalanobis gate; the motion cost is
        # the mean of (1 - IoU) and the gated d², in [0, 1].
        motion_ok = class_ok & ((iou >= cfg.iou_gate) | in_gate)
        motion = 0.5 * (1.0 - iou) + 0.5 * np.minimum(d2 / self._gate, 1.0)

        # Stage 1: VISIBLE and recent ghosts.
        recent = (states == TrackState.VISIBLE) | (
            (states == TrackState.OCCLUDED) & (unseen_s <= cfg.recent_ghost_s))
        cost1 = np.where(motion_ok, mix(motion), np.inf)
        run(np.flatnonzero(recent), cost1, max_cost=2.0)

        # Stage 2: older ghosts. With motion evidence (the gate grows with the covariance) the
        # same mixed cost; without it, but inside the loose gate, appearance alone, ranked after
        # every pair with motion evidence.
        ghosts = np.flatnonzero((states == TrackState.OCCLUDED) & ~recent)
        loose = class_ok & (d2 <= self._gate * cfg.reid_gate_scale) & has_app & (
            np.nan_to_num(app, nan=np.inf) <= cfg.reid_max_appearance_cost)
        cost2 = np.where(motion_ok, mix(motion), np.where(loose, 2.0 + np.nan_to_num(app), np.inf))
        reid_rows = run(ghosts, cost2, max_cost=4.0)
        reinit = {int(i) for i in reid_rows if not motion_ok[i, matched[int(i)]]}

        # Stage 3: TENTATIVE tracks by IoU.
        cost3 = 1.0 - iou
        cost3[~(class_ok & (iou >= cfg.iou_gate))] = np.inf
        run(np.flatnonzero(states == TrackState.TENTATIVE), cost3, max_cost=1.0 - cfg.iou_gate)
        return matched, reinit

    def _appearance_matrix(self, dets: list[Detection]) -> np.ndarray:
        """(N, M) cosine distance between track and detection embeddings, NaN where one is missing."""
        n, m = len(self._tracks), len(dets)
        out = np.full((n, m), np.nan)
        if self._embedding_dim is None:
            return out
        rows = [i for i, t in enumerate(self._tracks) if t.embedding is not None]
        cols = [j for j, d in enumerate(dets) if d.embedding is not None]
        if rows and cols:
            out[np.ix_(rows, cols)] = appearance_cost(
                np.stack([self._tracks[i].embedding for i in rows]),
                np.stack([dets[j].embedding for j in cols]))
        return out

    def _hit(self, t: _TrackRecord, det: Detection, stamp: float, reinit: bool,
             events: list[TrackEvent]) -> None:
        """Update a matched track and emit BIRTH / REACQUIRED."""
        if reinit:
            gap = stamp - t.last_seen_stamp
            # Mean velocity over the gap: the state restarts at the detection, with no jump.
            velocity = (det.box[:2] - t.last_seen_center) / gap if gap > 0 else np.zeros(2)
            t.filter.reinitialize(det.box, velocity)
        else:
            t.filter.update(det.box)
        unseen = t.frames_since_seen
        t.hits += 1
        t.age += 1
        t.misses = 0
        t.frames_since_seen = 0
        t.last_seen_stamp = stamp
        t.last_seen_center = det.box[:2].copy()
        t.measurement = det.box
        t.score = det.score
        t.embedding = self._blend(t.embedding, det.embedding)
        if t.state == TrackState.TENTATIVE and t.hits >= self.config.min_hits:
            t.state = TrackState.VISIBLE
            events.append(self._event(t, EventKind.BIRTH))
        elif t.state == TrackState.OCCLUDED:
            t.state = TrackState.VISIBLE
            events.append(self._event(t, EventKind.REACQUIRED, unseen))

    def _ghost_life_s(self, t: _TrackRecord) -> float:
        cfg = self.config
        return min(cfg.max_ghost_age_s, max(cfg.recent_ghost_s, cfg.ghost_age_per_hit_s * t.hits))

    @staticmethod
    def _outside(t: _TrackRecord, image_size: tuple[int, int] | None) -> bool:
        if image_size is None or min(image_size) <= 0:
            return False
        cx, cy = t.filter.box[:2]
        return not (0.0 <= cx < image_size[0] and 0.0 <= cy < image_size[1])

    def _miss(self, t: _TrackRecord, stamp: float, events: list[TrackEvent],
              image_size: tuple[int, int] | None = None) -> None:
        """Age an unmatched track and emit OCCLUDED / LOST."""
        t.age += 1
        t.misses += 1
        t.frames_since_seen += 1
        t.measurement = None
        if t.state == TrackState.VISIBLE:
            t.state = TrackState.OCCLUDED
            events.append(self._event(t, EventKind.OCCLUDED, t.frames_since_seen))
        if t.state == TrackState.OCCLUDED and (stamp - t.last_seen_stamp > self._ghost_life_s(t)
                                               or self._outside(t, image_size)):
            t.state = TrackState.LOST
            events.append(self._event(t, EventKind.LOST, t.frames_since_seen))

    def _new_track(self, det: Detection, stamp: float, events: list[TrackEvent]) -> _TrackRecord:
        """Start a TENTATIVE track (VISIBLE at once, with BIRTH, when ``min_hits == 1``)."""
        t = _TrackRecord(
            track_id=self._ids.allocate(), filter=self._filter_factory(det.box, self._kalman_params),
            state=TrackState.TENTATIVE, class_id=det.class_id, class_name=det.class_name,
            score=det.score, embedding=self._blend(None, det.embedding), last_seen_stamp=stamp,
            last_seen_center=det.box[:2].copy(), measurement=det.box)
        if self.config.min_hits <= 1:
            t.state = TrackState.VISIBLE
            events.append(self._event(t, EventKind.BIRTH))
        return t

    def _blend(self, old: np.ndarray | None, new: np.ndarray | None) -> np.ndarray | None:
        """EMA of L2-normalised embeddings: ``e = m e_old + (1 - m) e_new``, renormalised (the new
        one is normalised first: an outside detector may send any scale)."""
        if new is None:
            return old
        norm_new = float(np.linalg.norm(new))
        if norm_new == 0.0:
            return old
        new = new / norm_new
        e = new if old is None else self.config.embedding_momentum * old \
            + (1.0 - self.config.embedding_momentum) * new
        norm = float(np.linalg.norm(e))
        return (e / norm).astype(np.float32) if norm > 0 else old

    @staticmethod
    def _event(t: _TrackRecord, kind: EventKind, frames_unseen: int = 0) -> TrackEvent:
        return TrackEvent(track_id=t.track_id, kind=kind, state=t.state, box=t.filter.box,
                          frames_unseen=frames_unseen)

    @staticmethod
    def _publish(t: _TrackRecord) -> Track:
        return Track(track_id=t.track_id, state=t.state, box=t.filter.box,
                     velocity=t.filter.velocity, covariance=t.filter.box_covariance,
                     score=t.score, class_id=t.class_id, class_name=t.class_name, age=t.age,
                     hits=t.hits, frames_since_seen=t.frames_since_seen,
                     embedding=None if t.embedding is None else t.embedding.copy(),
                     measurement=None if t.measurement is None else t.measurement.copy())
