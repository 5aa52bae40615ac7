"""The world model: a multi-object tracker with object permanence ("ghosts").

A detection is an observation; the world model holds the belief. All tracks are held as stacked
arrays (:mod:`object_permanence.core.track_table`) with one batched box filter
(:mod:`object_permanence.core.box_filter_bank`): a frame is one predict, one gate, one update and a
few array operations whatever the number of tracks. When its object is not detected the track becomes a
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
Detections are validated as one array (:mod:`object_permanence.core.detection_batch`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from object_permanence.core.association import appearance_cost, assign, iou_matrix
from object_permanence.core.box_filter_bank import BoxFilterBank, FilterFactory, FilterList
from object_permanence.core.detection_batch import MAX_BOX_PX, DetectionBatch, validate_detections
from object_permanence.core.id_allocator import IdAllocator
from object_permanence.core.motion_models import make_bank
from object_permanence.core.track_table import STATES, TrackTable
from object_permanence.core.types import Detection, EventKind, Track, TrackEvent, TrackState
from object_permanence.core.world_model_config import WorldModelConfig

__all__ = ["MAX_BOX_PX", "FilterFactory", "StepResult", "WorldModel", "WorldModelConfig"]

_TENTATIVE, _VISIBLE, _OCCLUDED, _LOST = (int(s) for s in (
    TrackState.TENTATIVE, TrackState.VISIBLE, TrackState.OCCLUDED, TrackState.LOST))

#: The state a track is in right after each event (an OCCLUDED event stays OCCLUDED in the
#: record even when the ghost is LOST later in the same step).
_STATE_AFTER = {EventKind.BIRTH: TrackState.VISIBLE, EventKind.REACQUIRED: TrackState.VISIBLE,
                EventKind.OCCLUDED: TrackState.OCCLUDED, EventKind.LOST: TrackState.LOST}
_KINDS = tuple(sorted(EventKind, key=int))


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


class WorldModel:
    """Tracker with ghosts; feed it one camera's detections frame by frame with :meth:`step`.

    Args:
        config: parameters (validated by the dataclass).
        filter_factory: None (default) runs all tracks in one :class:`BatchedBoxKalman`; a
            factory of single-track :class:`~object_permanence.core.kalman.BoxFilter` objects
            (``factory(box (4,), params)``, e.g. the filterpy reference ``BoxKalmanFilter``) runs
            one filter per track instead (:class:`FilterList`), with the same results.
        ids: where track ids come from (default: 1, 2, ...). A node passes one allocator, seeded
            from the clock, for its whole life (and to both cameras' models), so that ids are never
            reused across resets and restarts.

    Raises:
        ValueError: if ``filter_factory`` is neither None nor callable.
    """

    def __init__(self, config: WorldModelConfig | None = None,
                 filter_factory: FilterFactory | None = None, ids: IdAllocator | None = None) -> None:
        if filter_factory is not None and not callable(filter_factory):
            raise ValueError(f"filter_factory must be None or callable, got {filter_factory!r}")
        self.config = config if config is not None else WorldModelConfig()
        self._filter_factory = filter_factory
        self._kalman_params = self.config.kalman_params
        self._gate = self.config.mahalanobis_gate
        self._ids = ids if ids is not None else IdAllocator()
        self.reset()

    def _new_bank(self) -> BoxFilterBank:
        if self._filter_factory is None:
            return make_bank(self.config.motion_model, self._kalman_params)
        return FilterList(self._filter_factory, self._kalman_params)

    def reset(self) -> None:
        """Forget all tracks and the last stamp (ids keep increasing: they are never reused)."""
        self._table = TrackTable(filters=self._new_bank())
        self._last_stamp: float | None = None
        self._embedding_dim: int | None = None

    @property
    def last_stamp(self) -> float | None:
        """Stamp of the last step (seconds), None before the first one or after :meth:`reset`."""
        return self._last_stamp

    @property
    def tracks(self) -> list[Track]:
        """All live tracks (TENTATIVE included), sorted by id."""
        return self._publish(np.arange(len(self._table)))

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
        dets, rejections, dim = validate_detections(detections, image_size, self._embedding_dim)
        t = self._table
        if dim is not None and self._embedding_dim is None:
            self._embedding_dim = dim
            t.set_embedding_dim(dim)
        if dt > 0:
            t.filters.predict(dt)
        rows, cols, reinit = self._associate(stamp, dets)
        n = len(t)
        hit = np.zeros(n, bool)
        hit[rows] = True
        event_rows, event_order, event_kinds, event_unseen = self._hit(rows, cols, reinit, dets, stamp)
        boxes = t.filters.boxes  # after the update: the boxes events and ghosts are judged on
        more = self._miss(~hit, stamp, boxes, image_size)
        event_rows = np.concatenate([event_rows, more[0]])
        event_order = np.concatenate([event_order, more[1]])
        event_kinds = np.concatenate([event_kinds, more[2]])
        event_unseen = np.concatenate([event_unseen, more[3]])

        cfg = self.config
        lost = t.state == _LOST
        dead = (t.state == _TENTATIVE) & (t.misses > cfg.max_tentative_misses)
        survivors = np.flatnonzero(~lost & ~dead)
        shown = lost | (~dead & ((t.state != _TENTATIVE) | cfg.publish_tentative))

        unmatched = np.ones(len(dets), bool)
        unmatched[cols] = False
        new_cols = np.flatnonzero(unmatched)
        new_state = _VISIBLE if cfg.min_hits <= 1 else _TENTATIVE
        ids = np.array([self._ids.allocate() for _ in range(new_cols.size)], dtype=np.uint64)
        t.append(ids, new_state, dets.boxes[new_cols], dets.scores[new_cols], dets.class_ids[new_cols],
                 [dets.class_names[j] for j in new_cols], dets.embeddings[new_cols],
                 dets.has_embedding[new_cols], stamp)
        new_rows = np.arange(n, n + new_cols.size)
        order = np.lexsort((event_order, event_rows))
        events = [TrackEvent(track_id=int(t.ids[i]), kind=_KINDS[k], state=_STATE_AFTER[_KINDS[k]],
                             box=boxes[i].copy(), frames_unseen=int(u))
                  for i, k, u in zip(event_rows[order].tolist(), event_kinds[order].tolist(),
                                     event_unseen[order].tolist())]
        if new_state == _VISIBLE:
            new_boxes = dets.boxes[new_cols]
            events += [TrackEvent(track_id=int(t.ids[i]), kind=EventKind.BIRTH, state=TrackState.VISIBLE,
                                  box=new_boxes[j].copy(), frames_unseen=0) for j, i in enumerate(new_rows)]
        if new_state == _VISIBLE or cfg.publish_tentative:
            published = self._publish(np.concatenate([np.flatnonzero(shown), new_rows]))
        else:
            published = self._publish(np.flatnonzero(shown))
        t.select(np.concatenate([survivors, new_rows]))
        return StepResult(tracks=published, events=events, rejections=rejections)

    def _associate(self, stamp: float, dets: DetectionBatch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Run the cascade; returns the matched track rows (K,) and detection rows (K,), and a
        (K,) mask of the pairs re-identified outside their motion gate (to be re-initialised)."""
        cfg, t = self.config, self._table
        n, m = len(t), len(dets)
        empty = np.zeros(0, np.intp)
        if n == 0 or m == 0:
            return empty, empty, np.zeros(0, bool)
        trk_boxes = t.filters.boxes
        states = t.state
        unseen_s = stamp - t.last_seen_stamp

        d2 = t.filters.mahalanobis_sq(dets.boxes)  # (N, M), Cholesky-whitened
        iou = iou_matrix(trk_boxes, dets.boxes)
        # cosine distance; NaN where either side has no embedding (a zero row)
        app = appearance_cost(t.embedding, dets.embeddings) if self._embedding_dim is not None \
            else np.full((n, m), np.nan)
        class_ok = t.class_id[:, None] == dets.class_ids[None, :]
        in_gate = d2 <= self._gate
        w = cfg.appearance_weight
        has_app = np.isfinite(app)
        app0 = np.where(has_app, app, 0.0)

        def mix(motion: np.ndarray) -> np.ndarray:
            return np.where(has_app, (1 - w) * motion + w * app0, motion)

        match_rows: list[np.ndarray] = []
        match_cols: list[np.ndarray] = []
        free = np.ones(m, bool)

        def run(rows: np.ndarray, cost: np.ndarray, max_cost: float) -> tuple[np.ndarray, np.ndarray]:
            free_cols = np.flatnonzero(free)
            if rows.size == 0 or free_cols.size == 0:
                return empty, empty
            pairs, _, _ = assign(cost[np.ix_(rows, free_cols)], max_cost)
            r, c = rows[pairs[:, 0]], free_cols[pairs[:, 1]]
            free[c] = False
            match_rows.append(r)
            match_cols.append(c)
            return r, c

        # Motion evidence: IoU with the predicted box or the Mahalanobis gate; the motion cost is
        # the mean of (1 - IoU) and the gated d², in [0, 1].
        motion_ok = class_ok & ((iou >= cfg.iou_gate) | in_gate)
        motion = 0.5 * (1.0 - iou) + 0.5 * np.minimum(d2 / self._gate, 1.0)
        mixed = mix(motion)

        # Stage 1: VISIBLE and recent ghosts.
        recent = (states == _VISIBLE) | ((states == _OCCLUDED) & (unseen_s <= cfg.recent_ghost_s))
        run(np.flatnonzero(recent), np.where(motion_ok, mixed, np.inf), max_cost=2.0)

        # Stage 2: older ghosts. With motion evidence (the gate grows with the covariance) the
        # same mixed cost; without it, but inside the loose gate, appearance alone, ranked after
        # every pair with motion evidence.
        ghosts = np.flatnonzero((states == _OCCLUDED) & ~recent)
        reinit_parts: list[np.ndarray] = [np.zeros(sum(r.size for r in match_rows), bool)]
        if ghosts.size:
            loose = class_ok & (d2 <= self._gate * cfg.reid_gate_scale) & has_app & (
                np.where(has_app, app, np.inf) <= cfg.reid_max_appearance_cost)
            cost2 = np.where(motion_ok, mixed, np.where(loose, 2.0 + app0, np.inf))
            r, c = run(ghosts, cost2, max_cost=4.0)
            reinit_parts.append(~motion_ok[r, c])

        # Stage 3: TENTATIVE tracks by IoU.
        tentative = np.flatnonzero(states == _TENTATIVE)
        if tentative.size:
            cost3 = np.where(class_ok & (iou >= cfg.iou_gate), 1.0 - iou, np.inf)
            r, _ = run(tentative, cost3, max_cost=1.0 - cfg.iou_gate)
            reinit_parts.append(np.zeros(r.size, bool))
        if not match_rows:
            return empty, empty, np.zeros(0, bool)
        return np.concatenate(match_rows), np.concatenate(match_cols), np.concatenate(reinit_parts)

    def _hit(self, rows: np.ndarray, cols: np.ndarray, reinit: np.ndarray, dets: DetectionBatch,
             stamp: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Update the matched tracks ``rows`` with detections ``cols``; returns the BIRTH /
        REACQUIRED events as (rows, order within the row, kinds, frames unseen) arrays."""
        t = self._table
        z = dets.boxes[cols]
        if reinit.any():
            r, zr = rows[reinit], z[reinit]
            gap = stamp - t.last_seen_stamp[r]
            # Mean velocity over the gap: the state restarts at the detection, with no jump.
            with np.errstate(divide="ignore", invalid="ignore"):
                velocity = np.where(gap[:, None] > 0, (zr[:, :2] - t.last_seen_center[r]) / gap[:, None], 0.0)
            t.filters.reinitialize(r, zr, velocity)
        t.filters.update(rows[~reinit], z[~reinit])
        unseen = t.frames_since_seen[rows]
        t.hits[rows] += 1
        t.age[rows] += 1
        t.misses[rows] = 0
        t.frames_since_seen[rows] = 0
        t.last_seen_stamp[rows] = stamp
        t.last_seen_center[rows] = z[:, :2]
        t.measurement[rows] = z
        t.has_measurement[rows] = True
        t.score[rows] = dets.scores[cols]
        t.blend_embeddings(rows, dets.embeddings[cols], dets.has_embedding[cols], self.config.embedding_momentum)
        state = t.state[rows]
        born = (state == _TENTATIVE) & (t.hits[rows] >= self.config.min_hits)
        back = state == _OCCLUDED
        t.state[rows[born | back]] = _VISIBLE
        kinds = np.where(born, int(EventKind.BIRTH), int(EventKind.REACQUIRED))
        emit = born | back
        return rows[emit], np.zeros(int(emit.sum()), np.int64), kinds[emit], np.where(born, 0, unseen)[emit]

    def _miss(self, missed: np.ndarray, stamp: float, boxes: np.ndarray,
              image_size: tuple[int, int] | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Age the unmatched tracks (mask (N,)); returns the OCCLUDED / LOST events as (rows,
        order within the row, kinds, frames unseen) arrays."""
        cfg, t = self.config, self._table
        t.age[missed] += 1
        t.misses[missed] += 1
        t.frames_since_seen[missed] += 1
        t.has_measurement[missed] = False
        occluded = missed & (t.state == _VISIBLE)
        t.state[occluded] = _OCCLUDED
        # ghost life = min(max_ghost_age_s, max(recent_ghost_s, ghost_age_per_hit_s * hits))
        life = np.minimum(cfg.max_ghost_age_s, np.maximum(cfg.recent_ghost_s, cfg.ghost_age_per_hit_s * t.hits))
        expired = stamp - t.last_seen_stamp > life
        if image_size is not None and min(image_size) > 0:
            cx, cy = boxes[:, 0], boxes[:, 1]
            expired |= ~((cx >= 0.0) & (cx < image_size[0]) & (cy >= 0.0) & (cy < image_size[1]))
        lost = missed & (t.state == _OCCLUDED) & expired
        t.state[lost] = _LOST
        occ_rows, lost_rows = np.flatnonzero(occluded), np.flatnonzero(lost)
        rows = np.concatenate([occ_rows, lost_rows])
        order = np.concatenate([np.ones(occ_rows.size, np.int64), np.full(lost_rows.size, 2, np.int64)])
        kinds = np.concatenate([np.full(occ_rows.size, int(EventKind.OCCLUDED)),
                                np.full(lost_rows.size, int(EventKind.LOST))])
        return rows, order, kinds, t.frames_since_seen[rows]

    def _publish(self, rows: np.ndarray) -> list[Track]:
        """The tracks ``rows`` as published :class:`Track` objects (arrays copied out of the table)."""
        t = self._table
        if rows.size == 0:
            return []
        boxes = t.filters.boxes[rows]
        velocities = t.filters.velocities[rows]
        covariances = t.filters.box_covariances[rows]
        embeddings = t.embedding[rows]
        measurements = t.measurement[rows]
        has_emb = t.has_embedding[rows].tolist()
        has_meas = t.has_measurement[rows].tolist()
        return [Track(track_id=i, state=STATES[s], box=boxes[k], velocity=velocities[k],
                      covariance=covariances[k], score=sc, class_id=c, class_name=name, age=a, hits=h,
                      frames_since_seen=f, embedding=embeddings[k] if has_emb[k] else None,
                      measurement=measurements[k] if has_meas[k] else None)
                for k, (i, s, sc, c, name, a, h, f) in enumerate(zip(
                    t.ids[rows].tolist(), t.state[rows].tolist(), t.score[rows].tolist(),
                    t.class_id[rows].tolist(), t.class_name[rows].tolist(), t.age[rows].tolist(),
                    t.hits[rows].tolist(), t.frames_since_seen[rows].tolist()))]
