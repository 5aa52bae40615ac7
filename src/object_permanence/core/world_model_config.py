"""Parameters of the world model (:class:`WorldModelConfig`), validated at construction.

All scalars, so that a node can declare each one as a ROS parameter (``config/world_model.yaml``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
from scipy.stats import chi2

from object_permanence.core.appearance_memory import MEMORY_KINDS
from object_permanence.core.kalman import BoxKalmanParams
from object_permanence.core.motion_models import MOTION_MODELS

_KALMAN_FIELDS = tuple(f.name for f in fields(BoxKalmanParams))


@dataclass(frozen=True)
class WorldModelConfig:
    """Tracker parameters (all scalars, so a node can declare each as a ROS parameter).

    min_hits: matched frames that confirm a TENTATIVE track (BIRTH).
    fast_confirm_min_score, fast_confirm_min_iou: a TENTATIVE track is also confirmed at two
        matched frames when both detections score at least ``fast_confirm_min_score`` (above 1:
        never), overlap by ``fast_confirm_min_iou`` and it lies on no confirmed track (strong
        evidence; a nuisance is mostly low-score and short;
        :mod:`object_permanence.core.confirmation`; tuned on seeds 0-19: 0.7).
        ``fast_confirm_min_iou`` also names, on the first frame, the overlap at which a weaker
        detection is a duplicate of a stronger one (``first_frame_min_score``).
    first_frame_min_score: a detection of the model's first frame (after construction or
        :meth:`~object_permanence.core.world_model.WorldModel.reset`) scoring at least this starts a
        confirmed track at once (BIRTH), unless it overlaps a detection of a higher score by
        ``fast_confirm_min_iou`` (a duplicate box of one object): the objects already in view
        when a robot starts have been there all along, there is no earlier frame to confirm them on
        (ByteTrack and BoT-SORT activate the first frame's tracks at once); above 1 (this default):
        never.
    max_tentative_misses: consecutive misses after which a TENTATIVE track is deleted.
    max_ghost_age_s: seconds a confirmed track may stay unseen (a ghost) before it is LOST, when
        the image size is not known; 4 s lets a 3-second occlusion survive with margin.
    ghost_age_per_hit_s: a ghost's lifetime grows with the evidence behind it: it is
        ``min(cap, ghost_age_per_hit_s * hits)``, the cap being ``max_ghost_age_s``,
        ``ghost_covered_age_s`` or ``ghost_plain_view_age_s``, so a track confirmed by a few
        frames (glare, a reflection, a burst of false positives: tracks of a few dozen hits at
        most) fades within a few frames instead of haunting the scene (the hit-counter idea of
        Norfair); an object tracked for 14 frames or more (at 30 fps) gets the full plain-view
        cap (tuned on seeds 0-4: 0.05 s).
    ghost_age_per_hit_no_embedding_s: ``ghost_age_per_hit_s`` for a track whose detections carry
        no appearance embedding (a detector without one, replayed boxes): no gallery gives such a
        track its identity back, so a young one's ghost is the only carrier of the identity through
        a detector dropout. 0 (this default): ``ghost_age_per_hit_s``; the shipped
        ``config/world_model.yaml`` sets 0.15 (TUD-Campus tuning seeds; the simulator's detections
        all carry embeddings, so its figures do not move).
    ghost_min_hit_ratio: each hit counts toward that lifetime by the track's detection rate (its
        matched frames / its frames up to its last match): ``hits * clip((rate - r) / (1 - r), 0, 1)``
        with ``r`` this value (core/ghost_life.py). Reflections, glare and bursts of false
        positives flicker, an object is detected in nearly every frame it is in view: a track
        detected in at most this fraction of its frames leaves no ghost, one detected in every
        frame keeps all its hits (tuned on seeds 0-4: 0.55).
    ghost_min_hits: a ghost whose weighted hits (above) are fewer than this is held but not
        published (its track keeps its identity and can take its object's detection back), as a
        track of so little steady evidence (a burst of false positives, a reflection or glare
        followed for a few dozen frames) is not claimed as a hidden object; 0 (this default)
        publishes every ghost, the shipped ``config/world_model.yaml`` sets 20 (tuned on seeds 0-4).
        The hits of an earlier identity given back from the gallery count only when that one was
        lost hidden behind another track or by leaving the image: one lost in plain view
        (undetected where it could be seen) was more likely a nuisance that ended, and a nuisance
        that keeps coming back (a false positive on the background, glare) was given its old
        identity, and with its hits its ghosts, again and again (on tuning seeds 10-21, noisy: a
        third of all ghost-frames, nearly all wrong).
    ghost_max_std_frac: a ghost is published while the standard deviation of its predicted centre
        (its filter's covariance) is at most this fraction of its box size on both axes (``cx``
        of the width, ``cy`` of the height); past it the ghost is held unpublished, as one of too
        little evidence is: its identity is kept for the object's return (it can still take the
        object's detection back), but no box is claimed where the object is no longer known to
        be. 0 (this default): no limit; the shipped ``config/world_model.yaml`` sets 0.15 (chosen on
        tuning seeds 10-29).
    ghost_covered_age_s: the cap on that lifetime while the
        ghost's predicted box lies behind a VISIBLE track's box (at least ``ghost_cover_frac`` of
        its area): an object hidden by a nearer one it is seen next to is expected to be unseen.
    ghost_covered_min_age_s: a covered ghost with any evidence (``effective_hits`` > 0; not a
        twin, which ends at once) lives at least this long, however few its hits: a young track
        that vanishes behind a VISIBLE one is an object walked behind, more likely than a nuisance
        that ended; below ``ghost_min_hits`` it is held unpublished, its identity kept for the
        object's return. Not in plain view: the same floor there cut more switches but cost noisy
        IDF1 0.5-0.9 points on the tuning seeds. 0 (this default): off; the shipped
        ``config/world_model.yaml`` sets 0.3 (chosen on tuning seeds 0-9 and 10-29).
    ghost_plain_view_age_s: the cap while the image size is known and the predicted box is neither
        covered nor outside the image: an object in plain view that stays undetected this long is
        more likely gone (or never was) than hidden; a ghost whose predicted centre leaves the image
        ends at once. Static occluders are not known here: an object hidden behind one for longer
        is LOST and gets its identity back from the gallery when it shows again (tuned on seeds
        0-999: 0.7 s).
    ghost_plain_view_age_no_embedding_s: that cap for a track whose detections carry no appearance
        embedding (a detector without one, replayed boxes): a LOST track comes back from the gallery
        by appearance only, so without one the ghost is the only carrier of the identity through a
        detector dropout in plain view. 0 (this default): ``ghost_plain_view_age_s``; the shipped
        ``config/world_model.yaml`` sets 1.0 (TUD-Campus tuning seeds 0-59; the simulator's
        detections all carry embeddings, so its figures do not move).
    ghost_cover_frac: the fraction of a ghost's predicted box area inside a VISIBLE track's box
        that counts as covered.
    occluder_memory_s: a track missed for at most this long (OCCLUDED, its last detection at most
        this many seconds ago) still covers the ghosts behind it, as a VISIBLE one does: a nearer
        object's own detector miss does not put the object it hides in plain view (where the ghost
        would end after ``ghost_plain_view_age_s``). 0 (this default): only VISIBLE tracks cover;
        the shipped ``config/world_model.yaml`` sets 0.2 (chosen on tuning seeds 0-9 and 10-29).
    twin_ghost_max_appearance_cost: a covered ghost whose long-term cosine distance to the
        VISIBLE track covering it is at most this is a duplicate track of that object (it got a
        second identity while this ghost lived on behind it), not an object hidden by another: it
        ends at once (LOST) instead of taking the object's detection back whenever its twin misses
        one (identity switches back and forth; tuned on seeds 0-4: 0.02) — unless the two were
        followed side by side for ``gallery_min_hits`` frames or more (a look-alike it walked
        behind).
    recent_ghost_s: ghosts unseen at most this long are associated with the VISIBLE tracks
        (stage 1) rather than in the re-identification stage.
    ghost_recency_cost_per_s: added to a stage-1 association cost per second the track went
        unseen beyond the latest matched track (a ghost's grown covariance shrinks its Mahalanobis
        cost, and without this a ghost takes the detection of the track matched to it a frame ago:
        two tracks of one object take turns on it); the soft form of DeepSORT's matching cascade
        (tuned on seeds 0-9: 1.0).
    visible_match_margin: the assignment maximises the number of matches, so a ghost competing
        for a VISIBLE track's own (cheapest) detection could push that track onto a neighbour's
        detection; a VISIBLE track matched in stage 1 more than this above its cheapest cost while
        a ghost took that detection is solved again without its pairs above the margin
        (``association.assign_keeping_own``; tuned on seeds 0-9: 0.2; a large value turns it off).
    class_mismatch_cost: added to the association cost of a detection of another class than the
        track's (a detector confuses classes at times); above the stage's largest cost (2 for
        VISIBLE tracks) it forbids such a match; in the gallery it only ranks a candidate lower.
    class_mismatch_min_iou: the IoU with the predicted box such a detection needs (motion evidence
        alone, the Mahalanobis gate, is not enough across classes).
    iou_gate: smallest IoU that counts as motion evidence (stages 1 and 3).
    gate_probability: the Mahalanobis gate is the chi² quantile of this probability, 4 dof.
    appearance_weight: weight of the appearance (cosine) cost against the motion cost, in [0, 1].
    reid_max_appearance_cost: largest cosine distance accepted to re-identify a ghost outside
        its Mahalanobis gate.
    reid_gate_scale: the loose motion gate of that re-identification, as a multiple of the
        Mahalanobis gate (on d²).
    ghost_max_scale_ratio: an older ghost (stage 2) takes a detection on motion evidence only when
        their box heights are within this ratio of each other, either way: its grown covariance
        lets a box of another size into the gate (a duplicate or merged box of the object in front
        of it, which drags the ghost off its object); appearance-only re-identification is bounded
        by ``gallery_max_scale_ratio`` instead (tuned on seeds 0-9: 1.5).
    appearance_memory: each track's appearance memory (core/appearance_memory.py): ``dual`` (a
        working memory of the last ``working_memory_size`` embeddings and a diverse episodic memory
        of up to ``episodic_memory_size``, after VLM²), ``ema`` (``embedding_momentum``, as
        StrongSORT / BoT-SORT) or ``bank`` (the last ``bank_size``, DeepSORT's nn_budget).
    embedding_momentum: weight of the old value in a track's appearance EMA, in [0, 1).
    working_memory_size: embeddings in the dual memory's FIFO working memory.
    episodic_memory_size: capacity of the dual memory's episodic memory.
    bank_size: embeddings in the bank memory.
    gallery_retention_s: seconds a LOST track stays in the gallery, where a new track (while
        TENTATIVE, or young: ``reid_young_max_frames``) that matches it by appearance takes its
        identity back (REACQUIRED).
    reid_young_max_frames: a track confirmed (VISIBLE) and matched this frame may still take back a
        LOST or ghost identity (:func:`reidentify_lost`) while younger than this many frames,
        unless it was given an earlier identity's hits (it is one already); its own new id then
        ends (a LOST event). An object coming back from a
        long occlusion is often first seen as a sliver whose look does not pass the gallery's
        appearance test, and is confirmed under a new identity before its whole extent shows.
        This default, 0, re-identifies TENTATIVE tracks only; the shipped ``config/world_model.yaml``
        uses 10 (tuned on seeds 10-29 among 0 / 10 / 30). Frames missed before its confirmation do
        not count against it: a returning object's first detections often come and go while it
        is partly hidden, and an identity only a confirmed track may take
        (``gallery_confirmed_min_hits``) must still reach it.
    reid_defer_max_frames: a track confirmed while it may still be an object back from a gap is
        held TENTATIVE (unpublished, re-identification candidate) until it is this many frames old:
        it passes the re-identification's motion, scale and started-after tests against a gallery
        entry of ``gallery_min_hits`` or more or a ghost, and its look is within
        ``reid_defer_max_appearance_cost`` of that candidate's. An object coming out from behind
        something is first seen as a sliver whose look is not yet its own; confirmed under a new id
        and renamed once its look matches, it costs two identity switches, held it costs none
        (and a few unpublished frames). This default, 0, holds nothing; the shipped
        ``config/world_model.yaml`` uses 20 (tuned on seeds 10-29 among 0 / 10 / 20 / 30).
    reid_defer_max_appearance_cost: the long-term cosine distance within which a confirmed track
        is held for ``reid_defer_max_frames`` (looser than ``gallery_max_appearance_cost``: the
        look of a sliver).
    gallery_capacity: most entries in the gallery (the oldest leave first): memory stays bounded.
    gallery_min_hits: matched frames a track needs to enter the gallery when it is LOST (glare, a
        brief reflection or a fragment does not).
    gallery_covered_min_hits: the same for a track whose ghost lay behind another track
        (``ghost_cover_frac``; not its twin) in some frame since its last detection: a young track
        that vanished behind a nearer object was that object walked behind more often than a
        nuisance (on tuning seeds about half of such entries were re-identified on objects, 9% of
        the plain-view ones), so it can keep its identity for the object's return after fewer
        frames. This default (``gallery_min_hits``'s) makes no difference, and the shipped
        ``config/world_model.yaml`` keeps it: 5 cut ID switches on some tuning seeds but not on
        others nor with the trained detector (the YAML's comment has the figures).
    gallery_confirmed_min_hits: a LOST track with at least this many matched frames, fewer than
        ``gallery_min_hits`` (``gallery_covered_min_hits``), also enters the gallery, but only a
        track confirmed on its own (VISIBLE, young: ``reid_young_max_frames``) takes its identity
        back, never a TENTATIVE one, and without its hits: an object seen for a few frames before
        a long occlusion keeps its identity, while a nuisance that keeps coming back (glare, a
        false positive on the background) is neither published from its first frame (as a
        TENTATIVE track re-identified would be) nor, with hits it was not seen for, taken for a
        steadily detected object that lives on as a ghost. 0: off.
    gallery_max_appearance_cost: largest long-term cosine distance of a gallery re-identification.
    recent_ghost_max_appearance_cost: largest long-term cosine distance at which a young track
        takes the identity of a ghost unseen at most ``recent_ghost_s`` (the re-identification
        stage, otherwise as for older ghosts): the returning object's detection missed that ghost
        in stage 1 (another class for a few frames, or just outside the gate) and would start a
        new identity; stricter than the gallery's, as a look-alike next to an object that was
        just missed (its reflection) must not take it (tuned on seeds 0-4: 0.05).
    gallery_distance_base, gallery_distance_per_s: motion plausibility of a gallery or ghost
        re-identification: the new track's centre must lie within ``h (base + per_s * gap)`` of
        the path from where the track was last seen on at its velocity for the gap (stopped or
        carried on), ``h`` its steady height (not its last box's: that of an object that sank
        behind something is a sliver of it) and ``gap`` the seconds unseen. The velocity of an object
        vanishing behind something is poorly known (its visible part shrinks), hence the growth.
    gallery_exit_distance_per_s: ``per_s`` for a track lost by leaving the image: it can only come
        back through the border, where it left (a look-alike entering elsewhere is not it).
    gallery_near_frac, gallery_near_max_appearance_cost: a re-identification whose young track's
        centre lies closer to the candidate's path than ``gallery_near_frac`` of the motion reach
        (``h (gallery_distance_base + per_s * gap)``) and than ``h`` (the reach grows with the gap)
        may look less alike: up to the larger of ``gallery_near_max_appearance_cost`` and
        ``gallery_max_appearance_cost`` (not for a recent ghost); such pairs are assigned after
        those within the plain cap, among the tracks and candidates left. The first boxes of an
        object coming back from behind something are often partial, their colours mixed with the
        background, and a look-alike is held off by the motion, not by appearance. An older ghost
        refused a detection in stage 2 (``reid_max_appearance_cost``) may so take it back in the
        same frame, near its path (``gallery_near_frac`` 0: off; 0.35 and 0.4 chosen on tuning
        seeds 0-9 / 10-29, realistic, over the 0.2 cap alone: re-entry identity 92.6 -> 94.1 /
        88.3 -> 91.4 %, look-alikes wrongly re-identified 5.0 -> 5.0 / 6.25 -> 5.0 %, ``reentry``
        IDF1 +0.45 / +0.63; ``cluttered`` IDF1 +0.12 / -0.17).
    gallery_max_scale_ratio: largest ratio of the new box height and the candidate's (either way)
        in a re-identification by appearance: in the re-identification stage the candidate's
        height as for ``gallery_distance_base``; for an older ghost taking a box beyond its motion
        evidence (stage 2) the ghost's predicted box height (grown to the steady size at the
        ghost's onset, except under ``motion_model: imm``, whose ghosts are not corrected); the
        height, as an object entering by a side edge is boxed only in part.
    gallery_veto_margin: a gallery re-identification is vetoed when a VISIBLE track looks clearly
        more like the new track (its cosine distance + this margin below the gallery one): a
        reflection or duplicate of a visible object is not given a lost identity.
    publish_tentative: whether TENTATIVE tracks are in the published list (the persistence filter
        scores them and never passes them on: a track's history then starts at its first detection).
    extent_gain_rate: step of the online estimate of the persistent part of the innovations
        (:mod:`object_permanence.core.extent_gain`) that sets the published box (``w, h``, and the
        centre for a detection of the object's whole extent) of a track matched this frame between
        the posterior and the detection; 0: always the posterior.
    motion_model: the box filter the tracks (and their ghosts) are predicted with
        (:mod:`object_permanence.core.motion_models`).
    measurement_std_frac .. imm_switch_time_s: Kalman noise scales and motion-model constants
        (see ``BoxKalmanParams``).

    Raises:
        ValueError: naming the field and its value, also for inconsistent combinations.
    """

    min_hits: int = 3
    fast_confirm_min_score: float = 0.7
    fast_confirm_min_iou: float = 0.5
    first_frame_min_score: float = 2.0
    max_tentative_misses: int = 1
    max_ghost_age_s: float = 4.0
    ghost_age_per_hit_s: float = 0.05
    ghost_age_per_hit_no_embedding_s: float = 0.0
    ghost_min_hit_ratio: float = 0.55
    ghost_min_hits: int = 0
    ghost_max_std_frac: float = 0.0
    ghost_covered_age_s: float = 4.0
    ghost_covered_min_age_s: float = 0.0
    ghost_plain_view_age_s: float = 0.7
    ghost_plain_view_age_no_embedding_s: float = 0.0
    ghost_cover_frac: float = 0.3
    occluder_memory_s: float = 0.0
    twin_ghost_max_appearance_cost: float = 0.02
    recent_ghost_s: float = 0.5
    ghost_recency_cost_per_s: float = 1.0
    visible_match_margin: float = 0.2
    class_mismatch_cost: float = 0.3
    class_mismatch_min_iou: float = 0.3
    iou_gate: float = 0.1
    gate_probability: float = 0.99
    appearance_weight: float = 0.5
    reid_max_appearance_cost: float = 0.25
    reid_gate_scale: float = 16.0
    ghost_max_scale_ratio: float = 1.5
    appearance_memory: str = "dual"
    embedding_momentum: float = 0.9
    working_memory_size: int = 8
    episodic_memory_size: int = 32
    bank_size: int = 100
    gallery_retention_s: float = 30.0
    gallery_capacity: int = 64
    reid_young_max_frames: int = 0
    reid_defer_max_frames: int = 0
    reid_defer_max_appearance_cost: float = 0.6
    gallery_min_hits: int = 10
    gallery_covered_min_hits: int = 10
    gallery_confirmed_min_hits: int = 0
    gallery_max_appearance_cost: float = 0.2
    recent_ghost_max_appearance_cost: float = 0.05
    gallery_distance_base: float = 1.0
    gallery_distance_per_s: float = 1.0
    gallery_exit_distance_per_s: float = 0.1
    gallery_near_frac: float = 0.35
    gallery_near_max_appearance_cost: float = 0.4
    gallery_max_scale_ratio: float = 2.0
    gallery_veto_margin: float = 0.05
    publish_tentative: bool = False
    extent_gain_rate: float = 0.5
    motion_model: str = "cv"
    measurement_std_frac: float = BoxKalmanParams.measurement_std_frac
    accel_std_frac: float = BoxKalmanParams.accel_std_frac
    size_accel_std_frac: float = BoxKalmanParams.size_accel_std_frac
    init_velocity_std_frac: float = BoxKalmanParams.init_velocity_std_frac
    min_std_px: float = BoxKalmanParams.min_std_px
    velocity_time_constant_s: float = BoxKalmanParams.velocity_time_constant_s
    imm_jerk_std_frac: float = BoxKalmanParams.imm_jerk_std_frac
    imm_switch_time_s: float = BoxKalmanParams.imm_switch_time_s

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
        check("fast_confirm_min_score", is_num(self.fast_confirm_min_score) and self.fast_confirm_min_score >= 0,
              "a finite number >= 0")
        check("fast_confirm_min_iou", is_num(self.fast_confirm_min_iou) and 0 < self.fast_confirm_min_iou <= 1,
              "in (0, 1]")
        check("first_frame_min_score", is_num(self.first_frame_min_score) and self.first_frame_min_score >= 0,
              "a finite number >= 0")
        check("max_tentative_misses", is_int(self.max_tentative_misses)
              and self.max_tentative_misses >= 0, "an integer >= 0")
        check("max_ghost_age_s", is_num(self.max_ghost_age_s) and self.max_ghost_age_s >= 0,
              "a finite number >= 0")
        check("ghost_age_per_hit_s", is_num(self.ghost_age_per_hit_s) and self.ghost_age_per_hit_s > 0,
              "a finite number > 0")
        check("ghost_min_hits", is_int(self.ghost_min_hits) and self.ghost_min_hits >= 0, "an integer >= 0")
        check("ghost_min_hit_ratio", is_num(self.ghost_min_hit_ratio) and 0 <= self.ghost_min_hit_ratio < 1,
              "in [0, 1)")
        for name in ("ghost_age_per_hit_no_embedding_s", "ghost_max_std_frac", "ghost_covered_age_s",
                     "ghost_covered_min_age_s", "ghost_plain_view_age_s", "ghost_plain_view_age_no_embedding_s", "occluder_memory_s", "gallery_retention_s",
                     "gallery_distance_base", "gallery_distance_per_s", "gallery_exit_distance_per_s"):
            check(name, is_num(getattr(self, name)) and getattr(self, name) >= 0, "a finite number >= 0")
        check("class_mismatch_cost", is_num(self.class_mismatch_cost) and self.class_mismatch_cost >= 0,
              "a finite number >= 0")
        check("class_mismatch_min_iou", is_num(self.class_mismatch_min_iou)
              and 0 < self.class_mismatch_min_iou <= 1, "in (0, 1]")
        check("ghost_cover_frac", is_num(self.ghost_cover_frac) and 0 < self.ghost_cover_frac <= 1, "in (0, 1]")
        check("appearance_memory", self.appearance_memory in MEMORY_KINDS, f"one of {MEMORY_KINDS}")
        for name in ("working_memory_size", "episodic_memory_size", "bank_size", "gallery_min_hits",
                     "gallery_covered_min_hits"):
            check(name, is_int(getattr(self, name)) and getattr(self, name) >= 1, "an integer >= 1")
        check("gallery_capacity", is_int(self.gallery_capacity) and self.gallery_capacity >= 0, "an integer >= 0")
        for name in ("reid_young_max_frames", "reid_defer_max_frames", "gallery_confirmed_min_hits"):
            check(name, is_int(getattr(self, name)) and getattr(self, name) >= 0, "an integer >= 0")
        check("reid_defer_max_appearance_cost", is_num(self.reid_defer_max_appearance_cost)
              and 0 <= self.reid_defer_max_appearance_cost <= 2, "in [0, 2]")
        check("gallery_max_appearance_cost", is_num(self.gallery_max_appearance_cost)
              and 0 <= self.gallery_max_appearance_cost <= 2, "in [0, 2]")
        check("twin_ghost_max_appearance_cost", is_num(self.twin_ghost_max_appearance_cost)
              and 0 <= self.twin_ghost_max_appearance_cost <= 2, "in [0, 2]")
        check("recent_ghost_max_appearance_cost", is_num(self.recent_ghost_max_appearance_cost)
              and 0 <= self.recent_ghost_max_appearance_cost <= 2, "in [0, 2]")
        check("ghost_max_scale_ratio", is_num(self.ghost_max_scale_ratio)
              and self.ghost_max_scale_ratio >= 1, "a finite number >= 1")
        check("gallery_max_scale_ratio", is_num(self.gallery_max_scale_ratio)
              and self.gallery_max_scale_ratio >= 1, "a finite number >= 1")
        check("gallery_near_frac", is_num(self.gallery_near_frac) and 0 <= self.gallery_near_frac <= 1, "in [0, 1]")
        check("gallery_near_max_appearance_cost", is_num(self.gallery_near_max_appearance_cost)
              and 0 <= self.gallery_near_max_appearance_cost <= 2, "in [0, 2]")
        check("gallery_veto_margin", is_num(self.gallery_veto_margin) and 0 <= self.gallery_veto_margin <= 2,
              "in [0, 2]")
        check("recent_ghost_s", is_num(self.recent_ghost_s) and self.recent_ghost_s >= 0,
              "a finite number >= 0")
        for name in ("ghost_recency_cost_per_s", "visible_match_margin"):
            check(name, is_num(getattr(self, name)) and getattr(self, name) >= 0, "a finite number >= 0")
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
        check("extent_gain_rate", is_num(self.extent_gain_rate) and self.extent_gain_rate >= 0,
              "a finite number >= 0")
        check("motion_model", self.motion_model in MOTION_MODELS, f"one of {tuple(MOTION_MODELS)}")
        for name in _KALMAN_FIELDS:
            check(name, is_num(getattr(self, name)) and getattr(self, name) > 0,
                  "a positive finite number")
        if self.ghost_covered_min_age_s > self.ghost_covered_age_s:
            raise ValueError(f"ghost_covered_min_age_s ({self.ghost_covered_min_age_s!r}) must not exceed "
                             f"ghost_covered_age_s ({self.ghost_covered_age_s!r})")
        caps = ["max_ghost_age_s", "ghost_covered_age_s", "ghost_plain_view_age_s"]
        if self.ghost_plain_view_age_no_embedding_s > 0:  # 0: ghost_plain_view_age_s applies
            caps.append("ghost_plain_view_age_no_embedding_s")
        for cap in caps:
            if self.recent_ghost_s > getattr(self, cap):
                raise ValueError(f"recent_ghost_s ({self.recent_ghost_s!r}) must not exceed "
                                 f"{cap} ({getattr(self, cap)!r})")

    @property
    def kalman_params(self) -> BoxKalmanParams:
        """The Kalman noise scales of this configuration."""
        return BoxKalmanParams(**{name: getattr(self, name) for name in _KALMAN_FIELDS})

    @property
    def mahalanobis_gate(self) -> float:
        """Gate on the squared Mahalanobis distance: chi² quantile, 4 degrees of freedom."""
        return float(chi2.ppf(self.gate_probability, df=4))
