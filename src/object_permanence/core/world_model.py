"""The world model: a multi-object tracker with object permanence ("ghosts").

A detection is an observation; the world model holds the belief. All tracks are held as stacked
arrays (:mod:`object_permanence.core.track_table`) with one batched box filter
(:mod:`object_permanence.core.box_filter_bank`): a frame is one predict, one gate, one update and a
few array operations whatever the number of tracks. When its object is not detected the track becomes a
*ghost* (``OCCLUDED``): its prediction, with growing covariance, is still published, and the same
identity is resumed when the object is seen again, after a long gap by appearance.

Lifecycle: ``TENTATIVE -> VISIBLE <-> OCCLUDED -> LOST``, confirmed after ``min_hits`` matched
frames, two of strong evidence, or at once for a strong detection of the model's first frame
(:mod:`object_permanence.core.confirmation`). Events: ``BIRTH`` (confirmed),
``OCCLUDED``, ``REACQUIRED`` (with the frames unseen), ``LOST`` (the track is published once with
state LOST, then forgotten). Tentative tracks that miss too often are deleted silently.

Association is a cascade, each stage an optimal assignment on a gated cost matrix:

1. VISIBLE and recently occluded tracks: IoU / Mahalanobis motion cost mixed with appearance,
   plus ``ghost_recency_cost_per_s`` per second unseen; a ghost cannot push a VISIBLE track off
   its own detection (:func:`.association.assign_keeping_own`, ``visible_match_margin``).
2. Older ghosts: Mahalanobis gate on the grown covariance for a box of about the ghost's height
   (``ghost_max_scale_ratio``), mixed with appearance; or, beyond that gate or that height,
   re-identification by appearance alone inside a loose motion gate and ``gallery_max_scale_ratio``
   (the filter is then re-initialised at the detection instead of being pulled across the gap).
3. TENTATIVE tracks: IoU.
4. Leftover detections start TENTATIVE tracks.
5. Young tracks (TENTATIVE, matched this frame, or new; or confirmed, below) that match a LOST
   track of the gallery (kept ``gallery_retention_s``, at most ``gallery_capacity``) or a ghost by
   long-term appearance, inside a motion-plausibility reach, take its identity back (REACQUIRED): an object
   that left the view, whose ghost's prediction missed it, or whose returning detection its ghost
   could not take (another class for a few frames), keeps its id
   (:mod:`object_permanence.core.reidentification`).

Ghost lifetime is explicit state: it grows with the track's hits (``ghost_age_per_hit_s`` each,
``ghost_age_per_hit_no_embedding_s`` for a track without appearance), weighted by its detection rate
(:mod:`object_permanence.core.ghost_life`: nuisances flicker), and is capped by where the
prediction is: behind a VISIBLE track's box, or one missed for at most ``occluder_memory_s``
(``ghost_covered_age_s``), in plain view
(``ghost_plain_view_age_s``, ``ghost_plain_view_age_no_embedding_s`` for a track without appearance;
the image size known) or unknown (``max_ghost_age_s``); a covered
ghost lives at least ``ghost_covered_min_age_s`` however few its hits; a prediction
leaving the image ends the ghost at once, and so does a ghost behind a VISIBLE track that looks the
same and was not followed beside it for ``gallery_min_hits`` frames (``twin_ghost_max_appearance_cost``:
a duplicate track of that object, not a look-alike it walked behind). A ghost of fewer weighted
hits than ``ghost_min_hits`` is held (its identity kept) but not published (the hits of an
earlier identity given back after it was lost in plain view do not count: ``claim_hits``), and so
is one whose predicted centre's standard deviation exceeds ``ghost_max_std_frac`` of its box size
(the object is no longer known to be where its box would be claimed). A LOST track enters the
gallery with ``gallery_min_hits`` hits, or ``gallery_covered_min_hits`` when its ghost was hidden
behind another track; with ``gallery_confirmed_min_hits`` hits and fewer it enters too, its identity
kept for a track confirmed on its own (and given back without its hits). Young tracks confirmed
and matched this frame stay re-identification candidates while younger than
``reid_young_max_frames``, unless they were given an earlier identity's hits. A track confirmed
while it may still be an object back from a gap (it passes the motion and scale tests against a
candidate and looks like it within a looser cap) is held TENTATIVE for up to
``reid_defer_max_frames`` frames: its identity is settled before it is published, not renamed
after. Appearance lives in a
per-track memory (:mod:`object_permanence.core.appearance_memory`: ``dual``, ``ema`` or ``bank``).

A detection of another class than the track's costs ``class_mismatch_cost`` more and needs an IoU
of ``class_mismatch_min_iou`` with the predicted box (a detector confuses classes now and then; a
hard gate would end the track and start a new one); the appearance-only re-identification of older
ghosts needs the track's class, the most frequent class of its last matched detections (one confused
detection does not relabel it); in stage 5 another class only ranks a candidate lower. Time comes
only from the ``stamp`` arguments (seconds).
Detections are validated as one array (:mod:`object_permanence.core.detection_batch`).
A track matched in the frame is published with its box moved from the filter's posterior toward
the detection by the gain matched to the persistent part of the innovations, per axis
(:mod:`object_permanence.core.extent_gain`: an articulated object's extent and a walker's centre
change in ways the motion model does not predict; the centre only for a detection of the object's
whole extent); the filter, the association and the ghosts use the posterior.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np

from object_permanence.core.appearance_memory import AppearanceMemory
from object_permanence.core.association import (
    assign_keeping_own,
    assign_pairs,
    candidate_pairs,
    iou_pairs,
    stage_one_costs,
    within_ratio,
)
from object_permanence.core.box_filter_bank import BoxFilterBank, FilterFactory, FilterList
from object_permanence.core.confirmation import confirm_matched, first_frame_births
from object_permanence.core.detection_batch import MAX_BOX_PX, DetectionBatch, validate_detections
from object_permanence.core.extent_gain import ExtentGain
from object_permanence.core.ghost_life import effective_hits
from object_permanence.core.ghost_onset import hidden_side, onset_correction
from object_permanence.core.id_allocator import IdAllocator
from object_permanence.core.motion_models import make_bank
from object_permanence.core.reidentification import (
    covered_by_visible,
    may_be_returning,
    reidentify_lost,
    twins_of_visible,
)
from object_permanence.core.row_selection import every_row
from object_permanence.core.track_table import LostGallery, TrackTable
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

    def _new_memory(self) -> AppearanceMemory:
        cfg = self.config
        return AppearanceMemory(cfg.appearance_memory, cfg.embedding_momentum, cfg.working_memory_size,
                                cfg.episodic_memory_size, cfg.bank_size)

    def reset(self) -> list[TrackEvent]:
        """Forget all tracks, the gallery and the last stamp (ids keep increasing: never reused).

        Returns the LOST event of every confirmed track that was not LOST yet (VISIBLE or
        OCCLUDED: each had its BIRTH event), so that whoever follows the events forgets them too
        (e.g. a replay that jumped back in time); empty on a new model."""
        table = getattr(self, "_table", None)
        events: list[TrackEvent] = []
        if table is not None and len(table):
            rows = np.isin(table.state, (_VISIBLE, _OCCLUDED)).nonzero()[0]
            boxes = table.filters.boxes
            events = [TrackEvent(track_id=int(table.ids[i]), kind=EventKind.LOST, state=TrackState.LOST,
                                 box=boxes[i].copy(), frames_unseen=int(table.frames_since_seen[i]))
                      for i in rows.tolist()]
        self._table = TrackTable(filters=self._new_bank(), memory=self._new_memory())
        self._gallery = LostGallery(memory=self._new_memory())
        self._outside = np.zeros(0, bool)  # (N,) of the last _miss: prediction outside the image
        self._quiet = np.zeros(0, bool)  # (N,) of the last _miss: a ghost of too little evidence to publish
        self._extent = ExtentGain(self.config.extent_gain_rate)
        self._extent_offset = np.zeros((0, 4))  # (N, 4) of this step: published box - posterior
        self._innovation_var = np.zeros((0, 4))  # (N, 4) of this step's association
        self._last_stamp: float | None = None
        self._embedding_dim: int | None = None
        return events

    @property
    def last_stamp(self) -> float | None:
        """Stamp of the last step (seconds), None before the first one or after :meth:`reset`."""
        return self._last_stamp

    @property
    def gallery_ids(self) -> list[int]:
        """Ids of the LOST tracks held for re-identification (oldest first)."""
        return [int(i) for i in self._gallery.ids]

    @property
    def tracks(self) -> list[Track]:
        """All live tracks (TENTATIVE included), sorted by id."""
        return self._table.publish(np.arange(len(self._table)))

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
        first = self._last_stamp is None
        dt = 0.0 if first else stamp - self._last_stamp
        self._last_stamp = stamp
        dets, rejections, dim = validate_detections(detections, image_size, self._embedding_dim)
        t = self._table
        if dim is not None and self._embedding_dim is None:
            self._embedding_dim = dim
            t.set_embedding_dim(dim)
            self._gallery.memory.set_dim(dim)
        if dt > 0:
            t.filters.predict(dt)
        rows, cols, reinit = self._associate(stamp, dets)
        n = len(t)
        hit = np.zeros(n, bool)
        hit[rows] = True
        hit_events = self._hit(rows, cols, reinit, dets, stamp)
        boxes = t.filters.boxes  # after the update: the boxes events and ghosts are judged on
        miss_events = self._miss(~hit, stamp, boxes, image_size)
        event_rows, event_order, event_kinds, event_unseen = (
            (np.concatenate(pair) for pair in zip(hit_events, miss_events)) if miss_events[0].size else hit_events)

        cfg = self.config
        lost, tentative = t.state == _LOST, t.state == _TENTATIVE
        alive = ~(lost | (tentative & (t.misses > cfg.max_tentative_misses)))  # not LOST, not a dead TENTATIVE
        shown = lost | (alive & ~self._quiet & (~tentative | cfg.publish_tentative))

        unmatched = np.ones(len(dets), bool)
        unmatched[cols] = False
        new_cols = unmatched.nonzero()[0]
        # a new track starts VISIBLE when one hit confirms it, or on the first frame with a score of
        # first_frame_min_score and no stronger detection overlapping it by fast_confirm_min_iou
        # (the objects in view at start-up), else TENTATIVE
        born_now = np.full(new_cols.size, cfg.min_hits <= 1)
        if first:
            born_now |= first_frame_births(dets.boxes[new_cols], dets.scores[new_cols], cfg.first_frame_min_score,
                                           cfg.fast_confirm_min_iou)
        new_state = np.where(born_now, _VISIBLE, _TENTATIVE)
        ids = np.array([self._ids.allocate() for _ in range(new_cols.size)], dtype=np.uint64)
        g = self._gallery
        g.frames_since_seen += 1
        if lost.any():
            min_hits = np.where(t.hidden_since_seen, cfg.gallery_covered_min_hits, cfg.gallery_min_hits)
            if cfg.gallery_confirmed_min_hits > 0:  # fewer hits: given back to a confirmed track only
                min_hits = np.minimum(min_hits, cfg.gallery_confirmed_min_hits)
            to_gallery = (lost & (t.hits >= min_hits) & t.memory.has).nonzero()[0]
            g.add(t, to_gallery, self._outside[to_gallery])
        g.forget(stamp, cfg.gallery_retention_s, cfg.gallery_capacity)
        if new_cols.size:
            t.append(ids, new_state, dets.boxes[new_cols], dets.scores[new_cols], dets.class_ids[new_cols],
                     dets.class_names[new_cols], dets.embeddings[new_cols], dets.has_embedding[new_cols], stamp)
        new_rows = np.arange(n, n + new_cols.size)
        young = np.zeros(len(t), bool)
        young[new_rows] = True
        young[:n] = (t.state[:n] == _TENTATIVE) & (t.misses[:n] == 0)
        births = event_rows[event_kinds == int(EventKind.BIRTH)]
        if cfg.reid_defer_max_frames > 0:  # TENTATIVE until now, and maybe held TENTATIVE again (below)
            young[births] = True
        shown_young = np.zeros(0, np.intp)  # young tracks published under their own id before
        if cfg.reid_young_max_frames > 0:  # confirmed, matched now, short-lived, not given an old identity's hits
            confirmed = (t.state[:n] == _VISIBLE) & hit & (t.age[:n] < cfg.reid_young_max_frames) \
                & (t.hits[:n] <= t.age[:n] + 1)
            young[:n] |= confirmed
            confirmed[births] = False  # not before this frame
            shown_young = confirmed.nonzero()[0]
        shown_young_ids = t.ids[shown_young]  # before a re-identification renames them
        back_rows, back_unseen, merged = reidentify_lost(self._table, self._gallery, self.config, young.nonzero()[0], stamp)
        held = self._hold_births(births, back_rows, stamp)
        shown[held] = cfg.publish_tentative
        # a track LOST this frame whose gallery entry a young track took back at once is published
        # once, as that reacquired track: its LOST row and LOST event are dropped; so is the BIRTH
        # event of a track confirmed this frame and re-identified (REACQUIRED, below) or held
        relost = lost.nonzero()[0]
        relost = relost[np.isin(t.ids[relost], t.ids[back_rows])] if back_rows.size else relost[:0]
        if back_rows.size or held.size:
            stay = ~((np.isin(event_rows, relost) & (event_kinds == int(EventKind.LOST)))
                     | (np.isin(event_rows, np.concatenate([back_rows, held])) & (event_kinds == int(EventKind.BIRTH))))
            event_rows, event_order, event_kinds, event_unseen = (
                a[stay] for a in (event_rows, event_order, event_kinds, event_unseen))
        events: list[TrackEvent] = []
        if event_rows.size:
            order = np.lexsort((event_order, event_rows))
            events = [TrackEvent(track_id=int(t.ids[i]), kind=_KINDS[k], state=_STATE_AFTER[_KINDS[k]],
                                 box=boxes[i].copy(), frames_unseen=int(u))
                      for i, k, u in zip(event_rows[order].tolist(), event_kinds[order].tolist(),
                                         event_unseen[order].tolist())]
        now_boxes = t.filters.boxes
        # a young track published under its own id and given an old identity: its own id ends here
        if shown_young.size and back_rows.size:
            renamed = np.isin(shown_young, back_rows)
            events += [TrackEvent(track_id=int(i), kind=EventKind.LOST, state=TrackState.LOST,
                                  box=now_boxes[r].copy(), frames_unseen=0)
                       for i, r in zip(shown_young_ids[renamed].tolist(), shown_young[renamed].tolist())]
        events += [TrackEvent(track_id=int(t.ids[i]), kind=EventKind.REACQUIRED, state=TrackState.VISIBLE,
                              box=now_boxes[i].copy(), frames_unseen=int(u))
                   for i, u in zip(back_rows.tolist(), back_unseen.tolist())]
        if born_now.any():
            born = new_rows[t.state[new_rows] == _VISIBLE]
            born = born[~np.isin(born, back_rows)]
            events += [TrackEvent(track_id=int(t.ids[i]), kind=EventKind.BIRTH, state=TrackState.VISIBLE,
                                  box=now_boxes[i].copy(), frames_unseen=0) for i in born.tolist()]
        shown_all = np.concatenate([shown, born_now | cfg.publish_tentative])
        shown_all[back_rows] = True
        shown_all[merged] = False
        shown_all[relost] = False
        shown_rows = shown_all.nonzero()[0]
        offset = np.concatenate([self._extent_offset, np.zeros((new_cols.size, 4))]) if new_cols.size \
            else self._extent_offset
        published = self._table.publish(shown_rows, offset.take(shown_rows, axis=0))  # the published box gain's
        keep = np.concatenate([alive, np.ones(new_cols.size, bool)])  # new tracks all stay
        keep[merged] = False  # the ghosts taken over (old rows)
        keep = keep.nonzero()[0]
        if keep.size < len(t):  # else every row stays, in order
            t.select(keep)
        return StepResult(tracks=published, events=events, rejections=rejections)

    def _associate(self, stamp: float, dets: DetectionBatch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Run the cascade; returns the matched track rows (K,; increasing) and detection rows (K,),
        and a (K,) mask of the pairs re-identified outside their motion gate (to be re-initialised).

        Costs are computed only on the candidate pairs (:func:`candidate_pairs`: every pair with
        IoU > 0 or inside the loose re-identification gate; no other pair can pass any stage), and
        each stage hands the pairs of its tracks and the still free detections to
        :func:`assign_pairs` (the assignment of the dense matrix, without building it)."""
        cfg, t = self.config, self._table
        n, m = len(t), len(dets)
        if n == 0 or m == 0:
            self._innovation_var = np.zeros((n, 4))
            empty = np.zeros(0, np.intp)
            return empty, empty, np.zeros(0, bool)
        trk_boxes = t.filters.boxes
        states = t.state
        gate = self._gate
        # Candidate pairs: the only ones any stage can accept (IoU > 0, or d² within the loose
        # re-identification gate), found by sweep and prune; every cost is computed on them only.
        cap = gate * cfg.reid_gate_scale
        self._innovation_var = t.filters.innovation_variances  # (N, 4) S_kk of cx, cy, w, h (the extent gain's)
        S_xy = self._innovation_var[:, :2]  # S_kk of cx, cy
        reach = np.maximum(trk_boxes[:, 2:4] / 2, np.sqrt(cap * S_xy))
        pr, pc = candidate_pairs(trk_boxes[:, :2], reach, dets.boxes)
        d2 = t.filters.mahalanobis_sq_pairs(dets.boxes, pr, pc)
        iou = iou_pairs(trk_boxes.take(pr, axis=0), dets.boxes.take(pc, axis=0))
        app = t.memory.cost_pairs_unit(*dets.unit, pr, pc) if self._embedding_dim is not None \
            else np.full(pr.size, np.nan)
        class_ok = t.class_id[pr] == dets.class_ids[pc]
        w = cfg.appearance_weight
        has_app = np.isfinite(app)
        app0 = np.where(has_app, app, 0.0)
        # Motion evidence: IoU with the predicted box or the Mahalanobis gate; the motion cost is
        # the mean of (1 - IoU) and the gated d², in [0, 1]. Another class costs class_mismatch_cost
        # more, and needs the boxes to overlap by class_mismatch_min_iou (> 0: a candidate) at least.
        penalty = np.where(class_ok, 0.0, cfg.class_mismatch_cost)
        motion_ok = np.where(class_ok, (iou >= cfg.iou_gate) | (d2 <= gate), iou >= cfg.class_mismatch_min_iou)
        motion = 0.5 * (1.0 - iou) + 0.5 * np.minimum(d2 / gate, 1.0) + penalty
        mixed = np.where(has_app, (1 - w) * motion + w * app0, motion)  # motion mixed with appearance

        matched: list[np.ndarray] = []  # per stage, positions in the candidate list
        free = np.ones(m, bool)

        def run(stage: np.ndarray, cost: np.ndarray, max_cost: float, solve=assign_pairs) -> np.ndarray:
            """Assign the tracks of ``stage`` (mask (N,)) to the free detections; ``cost`` (P,) of
            the candidate pairs (inf: not allowed). Returns the matched pairs' positions (by row)."""
            in_play = stage[pr] & free[pc]
            if in_play.all():  # every candidate pair (no gathers)
                won = solve(pr, pc, cost, max_cost)
            else:
                sel = in_play.nonzero()[0]
                won = sel[solve(pr[sel], pc[sel], cost[sel], max_cost)]
            free[pc[won]] = False
            matched.append(won)
            return won

        # Stage 1: VISIBLE and recent ghosts; a ghost pays for the time unseen (stage_one_costs) and
        # cannot push a VISIBLE track off its own detection (assign_keeping_own).
        occluded, visible = states == _OCCLUDED, states == _VISIBLE
        recent = visible | (occluded & (stamp - t.last_seen_stamp <= cfg.recent_ghost_s))
        missed_s = t.last_seen_stamp.max() - t.last_seen_stamp  # unseen beyond the latest seen: a frame gap is free
        cost1 = stage_one_costs(pr, np.where(motion_ok, mixed, np.inf), missed_s, cfg.ghost_recency_cost_per_s)
        keep_own = functools.partial(assign_keeping_own, keep=visible, margin=cfg.visible_match_margin)
        reinit = np.zeros(pr.size, bool)  # (P,) the pairs matched by appearance alone (stage 2)
        run(recent, cost1, max_cost=2.0, solve=keep_own)
        # Stage 2: older ghosts. With motion evidence (the gate grows with the covariance) and a
        # box of about the ghost's height the same mixed cost; without it, but inside the loose
        # gate, appearance alone, ranked after every pair with motion evidence.
        is_ghost = occluded & ~recent
        if is_ghost.any():
            g = is_ghost[pr]
            if self._embedding_dim is not None and t.memory.kind == "dual" and g.any():
                # older ghosts are re-identified with the long-term (working + episodic) similarity
                ghosts = np.flatnonzero(is_ghost)
                long_cost = t.memory.cost(dets.embeddings, ghosts, long_term=True)  # (G, M), ghosts only
                ghost_pos = np.full(n, -1, np.intp)
                ghost_pos[ghosts] = np.arange(ghosts.size)
                app = app.copy()
                app[g] = long_cost[ghost_pos[pr[g]], pc[g]]
                has_app = np.isfinite(app)
                app0 = np.where(has_app, app, 0.0)
                mixed = np.where(has_app, (1 - w) * motion + w * app0, motion)
            # motion evidence counts only for a box of about the ghost's height (ghost_max_scale_ratio);
            # appearance alone only within gallery_max_scale_ratio, and it re-initialises the filter
            scale = dets.boxes[pc, 3] / np.maximum(trk_boxes[pr, 3], 1e-9)
            by_motion = motion_ok & within_ratio(scale, cfg.ghost_max_scale_ratio)
            loose = class_ok & (d2 <= cap) & has_app & (
                np.where(has_app, app, np.inf) <= cfg.reid_max_appearance_cost) \
                & within_ratio(scale, cfg.gallery_max_scale_ratio)
            cost2 = np.where(by_motion, mixed, np.where(loose, 2.0 + app0, np.inf))
            won = run(is_ghost, cost2, max_cost=4.0)
            reinit[won] = ~by_motion[won]
        # Stage 3: TENTATIVE tracks by IoU.
        tentative = states == _TENTATIVE
        if tentative.any():
            cost3 = np.where(motion_ok & (iou >= cfg.iou_gate), 1.0 - iou + penalty, np.inf)
            run(tentative, cost3, max_cost=1.0 - cfg.iou_gate)
        won = np.concatenate(matched)
        won.sort()  # by row, as the candidates are: the stages' rows interleave
        return pr[won], pc[won], reinit[won]

    def _hold_births(self, births: np.ndarray, back_rows: np.ndarray, stamp: float) -> np.ndarray:
        """The tracks of ``births`` (confirmed this frame) not re-identified (``back_rows``),
        younger than ``reid_defer_max_frames``, that may still be an object back from a gap
        (:func:`may_be_returning`): they turn TENTATIVE again (unpublished, no BIRTH) and stay
        re-identification candidates, so the identity is settled before one is published."""
        cfg, t = self.config, self._table
        if cfg.reid_defer_max_frames == 0 or births.size == 0:
            return births[:0]
        births = np.sort(births[~np.isin(births, back_rows) & (t.age[births] < cfg.reid_defer_max_frames)])
        held = births[may_be_returning(t, self._gallery, cfg, births, stamp)]
        t.state[held] = _TENTATIVE
        return held

    def _hit(self, rows: np.ndarray, cols: np.ndarray, reinit: np.ndarray, dets: DetectionBatch,
             stamp: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Update the matched tracks ``rows`` with detections ``cols``; returns the BIRTH /
        REACQUIRED events as (rows, order within the row, kinds, frames unseen) arrays."""
        t = self._table
        z = dets.boxes.take(cols, axis=0)
        state = t.state[rows]  # as associated (those confirmed or back from a ghost turn VISIBLE last)
        at = slice(None) if every_row(rows, len(t)) else rows  # the usual frame: whole-array writes
        # before the update: the published box of this frame from the prior, innovation and R
        self._extent_offset = np.zeros((len(t), 4))
        self._extent_offset[at] = self._extent.published_offsets(
            t.ids[rows], t.filters.boxes.take(rows, axis=0), self._innovation_var.take(rows, axis=0),
            self._kalman_params, z, t.filters.steady_sizes.take(rows, axis=0),
            (state == _VISIBLE) & ~reinit, reinit)
        if reinit.any():
            r, zr = rows[reinit], z[reinit]
            gap = stamp - t.last_seen_stamp[r]
            # Mean velocity over the gap: the state restarts at the detection, with no jump.
            with np.errstate(divide="ignore", invalid="ignore"):
                velocity = np.where(gap[:, None] > 0, (zr[:, :2] - t.measurement.take(r, axis=0)[:, :2]) / gap[:, None], 0.0)
            t.filters.reinitialize(r, zr, velocity)
            t.filters.update(rows[~reinit], z[~reinit])
        else:
            t.filters.update(rows, z)
        unseen = t.frames_since_seen[rows]
        prev_scores, prev_boxes = t.score[rows], t.measurement.take(rows, axis=0)  # the last detection's, for confirm_matched()
        t.hits[at] += 1
        t.claim_hits[at] += 1
        t.age[at] += 1
        t.misses[at] = 0
        t.frames_since_seen[at] = 0
        t.hidden_since_seen[at] = False
        t.last_seen_stamp[at] = stamp
        t.measurement[at] = z
        t.has_measurement[at] = True
        t.score[at] = dets.scores[cols]
        unit, unit_ok = dets.unit
        t.memory.update_unit(rows, unit.take(cols, axis=0), unit_ok[cols], dets.has_embedding[cols])
        t.vote_class(rows, dets.class_ids[cols], dets.class_names[cols])
        born = confirm_matched(t, rows, z, dets.scores[cols], prev_boxes, prev_scores, self.config)
        emit = born | (state == _OCCLUDED)  # confirmed now or back from a ghost
        if not emit.any():  # no event
            none = np.zeros(0, np.int64)
            return rows[:0], none, none, none
        t.state[rows[emit]] = _VISIBLE
        kinds = np.where(born, int(EventKind.BIRTH), int(EventKind.REACQUIRED))
        return rows[emit], np.zeros(int(emit.sum()), np.int64), kinds[emit], np.where(born, 0, unseen)[emit]

    def _miss(self, missed: np.ndarray, stamp: float, boxes: np.ndarray,
              image_size: tuple[int, int] | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Age the unmatched tracks (mask (N,)); returns the OCCLUDED / LOST events as (rows,
        order within the row, kinds, frames unseen) arrays."""
        cfg, t = self.config, self._table
        if not missed.any():  # every track matched: no ghost, no event
            self._outside = np.zeros(len(t), bool)
            self._quiet = np.zeros(len(t), bool)
            none = np.zeros(0, np.int64)
            return none, none, none, none
        t.age[missed] += 1
        t.misses[missed] += 1
        t.frames_since_seen[missed] += 1
        t.has_measurement[missed] = False
        occluded = missed & (t.state == _VISIBLE)
        t.state[occluded] = _OCCLUDED
        onset = occluded.nonzero()[0]
        # a new ghost's box and motion (core/ghost_onset.py); the IMM bank has no ``shift`` (several
        # mode states per track): its ghosts start from the filter's state as it is
        if onset.size and hasattr(t.filters, "shift"):
            steady = t.filters.steady_sizes[onset]
            hidden = hidden_side(boxes[onset], steady, boxes[t.state == _VISIBLE])  # a moving occluder's side
            t.filters.shift(onset, onset_correction(t.filters.x[onset], steady, image_size, hidden))
        ghosts = missed & (t.state == _OCCLUDED)
        cap = np.full(len(t), cfg.max_ghost_age_s)
        outside = np.zeros(len(t), bool)
        if image_size is not None and min(image_size) > 0:
            cx, cy = boxes[:, 0], boxes[:, 1]
            outside = ~((cx >= 0.0) & (cx < image_size[0]) & (cy >= 0.0) & (cy < image_size[1]))
            cap[:] = cfg.ghost_plain_view_age_s
            if cfg.ghost_plain_view_age_no_embedding_s > 0:  # without appearance no gallery gives it back
                cap[~t.has_embedding] = cfg.ghost_plain_view_age_no_embedding_s
        # the covering tracks: VISIBLE ones and those whose own miss is at most occluder_memory_s old
        occluders = (t.state == _VISIBLE) | ((t.state == _OCCLUDED)
                                             & (stamp - t.last_seen_stamp <= cfg.occluder_memory_s))
        covered = covered_by_visible(occluders, ghosts, boxes, cfg.ghost_cover_frac)
        cap[covered] = cfg.ghost_covered_age_s
        # a ghost behind a VISIBLE look-alike it was not followed beside for gallery_min_hits frames
        # (an object's worth; a duplicate box's track is shorter) is that object's duplicate: it ends now
        twins = twins_of_visible(t, covered, boxes, cfg.ghost_cover_frac, cfg.twin_ghost_max_appearance_cost,
                                 cfg.gallery_min_hits)
        cap[twins] = 0.0
        # ghost life = min(cap, ghost_age_per_hit_s * hits weighted by the detection rate,
        # core/ghost_life.py); cap: covered, in plain view (image size known) or unknown (max_ghost_age_s)
        evidence = effective_hits(t.hits, t.age, t.frames_since_seen, cfg.ghost_min_hit_ratio)
        # a ghost of less evidence than ghost_min_hits is held (its identity kept) but not published
        # (of its claim hits: not those of an earlier identity lost in plain view, given back)
        self._quiet = ghosts & (evidence * t.claim_hits / np.maximum(t.hits, 1) < cfg.ghost_min_hits)
        if cfg.ghost_max_std_frac > 0 and ghosts.any():
            # ... or whose predicted centre is too uncertain for its box to be claimed
            g = ghosts.nonzero()[0]
            var = t.filters.box_covariances[g][:, (0, 1), (0, 1)]  # (G, 2) of cx, cy
            self._quiet[g] |= (np.sqrt(var) > cfg.ghost_max_std_frac * boxes[g, 2:4]).any(axis=1)
        per_hit = np.full(len(t), cfg.ghost_age_per_hit_s)
        if cfg.ghost_age_per_hit_no_embedding_s > 0:  # without appearance the ghost alone keeps the identity
            per_hit[~t.has_embedding] = cfg.ghost_age_per_hit_no_embedding_s
        life = np.minimum(cap, per_hit * evidence)
        # a covered ghost with any evidence lives at least ghost_covered_min_age_s (held unpublished
        # below ghost_min_hits): a young track gone behind a visible one was walked behind
        floor = covered & ~twins & (evidence > 0)
        life[floor] = np.maximum(life[floor], cfg.ghost_covered_min_age_s)
        expired = (stamp - t.last_seen_stamp > life) | outside
        self._outside = outside
        t.hidden_since_seen |= covered
        t.hidden_since_seen[twins] = False  # a duplicate of the object covering it, not hidden
        lost = ghosts & expired
        t.state[lost] = _LOST
        occ_rows, lost_rows = occluded.nonzero()[0], lost.nonzero()[0]
        rows = np.concatenate([occ_rows, lost_rows])
        order = np.concatenate([np.ones(occ_rows.size, np.int64), np.full(lost_rows.size, 2, np.int64)])
        kinds = np.concatenate([np.full(occ_rows.size, int(EventKind.OCCLUDED)),
                                np.full(lost_rows.size, int(EventKind.LOST))])
        return rows, order, kinds, t.frames_since_seen[rows]
