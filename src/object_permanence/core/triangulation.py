"""Stereo triangulation: left/right 2D tracks of one frame in, persistent 3D tracks out.

Inputs are world-model :class:`Track` lists of the two *rectified* cameras (ghosts included) and the
rectified rig (:mod:`object_permanence.core.stereo_rig`). Per frame:

1. Pairing (:class:`object_permanence.core.stereo_pairing.StereoPairer`) on the tracks' filtered
   boxes: gated, hysteretic, one-to-one.
2. Observations. The 3D filter must see independent measurements, so a pair is triangulated from
   this frame's raw observations, not from the 2D filters' output (filters in series would fuse
   smoothed, lagging boxes as if independent: over-confident and late):

   * each view's matched detection box, ``Track.measurement`` (4,) ``cx, cy, w, h`` (NaN when the
     track was not matched this frame), with the detector's localisation noise as covariance:
     ``σ_u = max(detection_std_px, detection_std_frac w)``, ``σ_v`` the same with ``h``.
     **Fallback:** a track without a usable ``measurement`` (a world model that does not publish it)
     is observed at its filtered box with that same covariance. A box narrower or shorter than
     its track's steady size (the object partly hidden) adds ``truncation_std_frac`` times half
     the missing extent to that standard deviation, in quadrature (:mod:`core.box_truncation`);
   * the image disparity of pairs VISIBLE in both views, when the rectified images are given
     (:func:`object_permanence.core.box_disparity.box_disparities`), with its own standard
     deviation; it replaces the box centres' column difference. It is searched first by template
     matching where the pair's 3D filter expects it, then by the configured method around the
     filtered boxes' disparity: a partial occlusion makes the two views box different parts of the
     object, which puts the boxes' disparity pixels (metres of depth) off. The left boxes of
     nearer VISIBLE pairs that overlap a pair's box (nearer: a column shift larger by
     :data:`OCCLUDER_MARGIN_PX`, the 3D filter's expected one where it has one) are masked out of
     its measurement, with the strip the right view hides too and a matching block's half-width:
     their pixels are the occluder's, and a partly hidden object was otherwise placed on it
     (tuning seeds 10-12, ``tools/diagnose_3d``: per-frame position RMSE 0.141 -> 0.076 m,
     spurious points 595 -> 463). A visible pair no image method answers takes only the bearing
     of its left box (``box_depth_without_match``);
   * ghost pairs (either view OCCLUDED or LOST) have no observation: they only predict, unless
     ``update_from_ghosts``, which uses the predicted boxes with their 2D covariance.

3. Triangulation in closed form with the covariance propagated through its Jacobian,
   ``Σ3 = J Σ2 J'``, and a gated constant-velocity Kalman update per pair
   (:class:`object_permanence.core.track3d_filter.Track3DFilter`). A triangulation from a tight
   template match (``BoxDisparities.precise``: its cells agree to ``refine_max_spread_px``) outside
   the gate of a filter that no such match has confirmed since its start restarts it (it was
   started from box centres or semi-global matching, both pixels off under occlusion). A pair
   starts its filter at its first measured triangulation; with ``confirm_new_tracks`` it is
   published once a second one, within :data:`CONFIRM_WINDOW_S`, lies inside the gate of the first
   (one that does not replaces the first: either may be the outlier, the newer is kept).
   :attr:`StereoTriangulator.last_details` tells what the last step measured (:class:`StepDetails`).

Identity. A 3D id belongs to one (left id, right id) pair. Ids come from an
:class:`object_permanence.core.id_allocator.IdAllocator` the caller may share across triangulators,
so a rebuilt triangulator (new projections, a time jump) continues the sequence instead of
restarting at 1. A pair's state is forgotten as soon as either of its tracks is LOST (published
once as LOST; a pair never published is dropped silently) or absent from the input, or after
``pair_memory_s`` unpaired: an id that comes back gets a new 3D id and a fresh filter. Duplicate
ids in one input are rejected.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import chi2

from object_permanence.core.box_disparity import DisparitySource, box_disparities
from object_permanence.core.box_truncation import SteadyExtents, truncation_std
from object_permanence.core.id_allocator import IdAllocator
from object_permanence.core.stereo_matching import gray_pair
from object_permanence.core.stereo_pairing import StereoPairer
from object_permanence.core.stereo_rig import RectifiedRig, triangulate_rectified, triangulation_jacobian
from object_permanence.core.track3d_filter import Track3DFilter
from object_permanence.core.triangulator_config import TriangulatorConfig
from object_permanence.core.types import Track, Track3D, TrackState, duplicate_track_ids

#: How bad a lifecycle state is, for "the worse of the two states" of a stereo pair.
_STATE_SEVERITY = {TrackState.VISIBLE: 0, TrackState.TENTATIVE: 1, TrackState.OCCLUDED: 2, TrackState.LOST: 3}

#: States whose 2D boxes are ghost predictions, not observations.
_GHOST_STATES = (TrackState.OCCLUDED, TrackState.LOST)


def raw_measurement(track: Track) -> np.ndarray | None:
    """The track's matched detection box of this frame, (4,) ``cx, cy, w, h``, or None when it has none
    (not matched this frame, or not a usable box: not finite, not positive, or unlike the track's own
    box — a centre more than two box sizes away or a size off by more than 4x — which the pair was
    gated on: a tracker that matched this detection to this track cannot have published that)."""
    box = track.measurement
    if box is None:
        return None
    box = np.asarray(box, dtype=np.float64).reshape(-1)
    if box.shape != (4,) or not np.all(np.isfinite(box)) or box[2] <= 0 or box[3] <= 0:
        return None
    own = np.asarray(track.box, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = box[2:] / own[2:]
    if not (np.all(np.abs(box[:2] - own[:2]) <= 2.0 * own[2:]) and np.all((ratio >= 0.25) & (ratio <= 4.0))):
        return None
    return box


#: Seconds within which a new pair's second measured triangulation may confirm its first
#: (``confirm_new_tracks``); a later one restarts it: a gate grown over a long wait (a ghost, an
#: unpaired spell) would let almost anything confirm a lone spurious first measurement.
CONFIRM_WINDOW_S = 0.3


@dataclass
class _PairState:
    """Memory of one (left id, right id) pair: its 3D id, its filter, the stamp of its last frame,
    its trail of filtered positions, whether a template-matched disparity has confirmed its
    filter since its last (re)start (``anchored``), whether it is published yet (``published``,
    see ``TriangulatorConfig.confirm_new_tracks``), the stamp its filter (re)started at and its
    position's standard deviation (largest axis, m) right after its last fused measurement."""

    track_id: int
    filter: Track3DFilter
    stamp: float
    trail: deque[np.ndarray] = field(default_factory=deque)
    anchored: bool = False
    published: bool = True
    started: float = 0.0
    measured_std: float = 0.0


@dataclass
class _Observations:
    """Pixel observations of N pairs: centres ``pts_left``/``pts_right`` (N, 2), the observed boxes
    (N, 4) per view and the covariance ``sigma2`` (N, 4, 4) of ``(u_l, v_l, u_r, v_r)``."""

    pts_left: np.ndarray
    pts_right: np.ndarray
    boxes_left: np.ndarray
    boxes_right: np.ndarray
    sigma2: np.ndarray


@dataclass
class StepDetails:
    """What one :meth:`StereoTriangulator.step` measured, per pair of that frame (N pairs, in the
    order of its pairing), for diagnosis and evaluation (the pipeline does not need it).

    left_ids, right_ids: (N,) int64 2D track ids of each pair.
    positions: (N, 3) metres, this frame's triangulation (before the 3D filter; NaN where none).
    disparity: (N,) pixels ``d = (u_l - u_r) - (cx_l - cx_r)`` of that triangulation.
    source: (N,) int8 :class:`DisparitySource` of the disparity (NONE: the box centres').
    precise: (N,) bool, that disparity is a tight template match (``BoxDisparities.precise``).
    measured: (N,) bool, the triangulation was offered to the pair's 3D filter.
    fused: (N,) bool, the 3D filter took it (inside its validation gate, or as its (re)start).
    """

    left_ids: np.ndarray
    right_ids: np.ndarray
    positions: np.ndarray
    disparity: np.ndarray
    source: np.ndarray
    precise: np.ndarray
    measured: np.ndarray
    fused: np.ndarray

    @classmethod
    def empty(cls) -> StepDetails:
        """Details of a frame without pairs."""
        ids = np.zeros(0, dtype=np.int64)
        return cls(ids, ids.copy(), np.zeros((0, 3)), np.zeros(0), np.zeros(0, dtype=np.int8),
                   np.zeros(0, dtype=bool), np.zeros(0, dtype=bool), np.zeros(0, dtype=bool))


class StereoTriangulator:
    """Pairs left/right 2D tracks frame by frame and triangulates them into :class:`Track3D`.

    The 3D state is the worse of the two 2D states (a ghost in either view is a ghost in 3D; LOST
    if either is LOST).

    Args:
        p_left, p_right: (3, 4) rectified projections (ROS convention).
        config: the triangulator's parameters (default: :class:`TriangulatorConfig`).
        ids: where 3D ids come from; pass the same allocator to every triangulator one node builds.

    Raises:
        ValueError: when the projections are not a rectified horizontal pair.
    """

    def __init__(self, p_left: np.ndarray, p_right: np.ndarray, config: TriangulatorConfig | None = None,
                 ids: IdAllocator | None = None) -> None:
        self.rig = RectifiedRig.from_projections(p_left, p_right)
        self.config = config if config is not None else TriangulatorConfig()
        self.ids = ids if ids is not None else IdAllocator()
        self.pairer = StereoPairer(self.rig, self.config)
        self._disparity_config = self.config.disparity_config()
        self._gate = float(chi2.ppf(self.config.gate_probability, df=3))
        self._disparity_range = self.rig.disparity_range(self.config.min_depth_m, self.config.max_depth_m)
        self._pairs: dict[tuple[int, int], _PairState] = {}
        self._steady = (SteadyExtents(), SteadyExtents())  # per view: each 2D track's steady box size
        self._last_stamp: float | None = None
        self.last_details = StepDetails.empty()  # what the latest step measured (StepDetails)

    def step(self, left: list[Track], right: list[Track], stamp: float,
             images: tuple[np.ndarray, np.ndarray] | None = None,
             image_size: tuple[int, int] | None = None) -> list[Track3D]:
        """Pair, triangulate and filter the 3D tracks for one synchronised frame at ``stamp`` (seconds).

        images: optional rectified ``(left_bgr, right_bgr)`` pair, (H, W, 3) uint8, of this frame;
            when given, the disparity of each pair VISIBLE in both views is measured in them (the
            box centres' is kept where no method answers).
        image_size: ``(width, height)`` in pixels (default: the images' size, else unknown); a pair
            whose box touches the image border and has no image disparity only predicts its 3D filter.

        Raises:
            ValueError: when ``stamp`` is not finite or goes backwards, an input holds one track id
                twice (the message names the side and the ids), or ``images`` are malformed.
        """
        stamp = float(stamp)
        if not np.isfinite(stamp):
            raise ValueError(f"stamp must be finite, got {stamp}")
        if self._last_stamp is not None and stamp < self._last_stamp:
            raise ValueError(f"stamp went backwards: {stamp} < previous {self._last_stamp}")
        for side, tracks in (("left", left), ("right", right)):
            duplicates = duplicate_track_ids(tracks)
            if duplicates:
                raise ValueError(f"duplicate track ids in the {side} input: {duplicates}")
        self._last_stamp = stamp
        self._forget(left, right, stamp)
        # each input track's matched detection, once: the steady sizes and the observations read it
        raw = tuple({t.track_id: raw_measurement(t) for t in tracks} for tracks in (left, right))
        if self.config.truncation_std_frac > 0:
            self._update_steady(left, right, raw)

        matches = self.pairer.pair(left, right)
        self.last_details = StepDetails.empty()
        if not matches:
            return []
        lefts, rights = [left[i] for i, _ in matches], [right[j] for _, j in matches]
        ghost = np.array([a.state in _GHOST_STATES or b.state in _GHOST_STATES for a, b in zip(lefts, rights)])
        obs = self._observations(lefts, rights, ghost, raw)
        source = np.full(len(lefts), DisparitySource.NONE, dtype=np.int8)
        precise = np.zeros(len(lefts), dtype=bool)  # a tight template match gave the disparity
        unmatched = np.zeros(len(lefts), dtype=bool)  # visible in both views, yet no image disparity
        if images is not None:
            if len(images) != 2:
                raise ValueError(f"images must be a (left_bgr, right_bgr) pair, got {len(images)} items")
            image_size = image_size or (images[0].shape[1], images[0].shape[0])
            images = gray_pair(images[0], images[1])  # once for every search below
            visible = np.array([a.state == TrackState.VISIBLE and b.state == TrackState.VISIBLE
                                for a, b in zip(lefts, rights)])
            boxes_guess = np.array([a.box[0] - b.box[0] for a, b in zip(lefts, rights)])  # filtered u_l - u_r
            predicted = self._predicted_shift(lefts, rights, stamp)
            # the nearer visible boxes over each box (depth order: the 3D filter's expected shift, else
            # the boxes'): their pixels are another object's and are left out of its measurement
            exclude = _occluders(obs.boxes_left, np.where(np.isfinite(predicted), predicted, boxes_guess), visible,
                                 self._disparity_config.sgbm_block_size // 2 + 1)
            rows = np.flatnonzero(visible & np.isfinite(predicted))
            # where the 3D filter expects it, else around the boxes' disparity
            self._image_disparity(images, obs, predicted, rows, source, precise, True, exclude)
            rows = np.flatnonzero(visible & (source == DisparitySource.NONE))
            self._image_disparity(images, obs, boxes_guess, rows, source, precise, exclude=exclude)
            unmatched = visible & (source == DisparitySource.NONE) & (not self.config.box_depth_without_match)
        # A box cut by the image border has a biased centre (the part outside is missing): unless
        # the images gave the disparity, such a pair does not update its 3D filter.
        margin = self.config.border_margin_px
        clipped = _at_border(obs.boxes_left, image_size, margin) | _at_border(obs.boxes_right, image_size, margin)
        positions = triangulate_rectified(self.rig, obs.pts_left, obs.pts_right)
        jac = triangulation_jacobian(self.rig, obs.pts_left, obs.pts_right)
        covariances = np.einsum("nij,njk,nlk->nil", jac, obs.sigma2, jac)  # Σ3 = J Σ2 J'
        finite = np.all(np.isfinite(positions), axis=1) & np.all(np.isfinite(covariances), axis=(1, 2))
        measured = finite & ((source != DisparitySource.NONE) | ~clipped) & (~ghost | self.config.update_from_ghosts) \
            & ~unmatched
        fused = np.zeros(len(lefts), dtype=bool)
        out = []
        # the ray only: an OCCLUDED pair (its left box, seen or predicted, is on the object; a LOST
        # one's is not kept up) or an unmatched pair
        occluded = np.array([TrackState.LOST not in (a.state, b.state) for a, b in zip(lefts, rights)]) & ghost
        bearing = (occluded & self.config.ghost_bearing_update | unmatched) & ~measured
        for k, (a, b) in enumerate(zip(lefts, rights)):
            track, fused[k] = self._update_pair(a, b, positions[k], covariances[k], stamp, measured[k],
                                                (obs.pts_left[k], obs.sigma2[k, :2, :2]) if bearing[k] else None,
                                                precise=bool(precise[k]))
            if track is not None:
                out.append(track)
        self.last_details = StepDetails(
            np.array([a.track_id for a in lefts], dtype=np.int64),
            np.array([b.track_id for b in rights], dtype=np.int64),
            np.where(finite[:, None], positions, np.nan),
            (obs.pts_left[:, 0] - obs.pts_right[:, 0]) - self.rig.column_offset, source, precise, measured, fused)
        return out

    def _forget(self, left: list[Track], right: list[Track], stamp: float) -> None:
        """Drop the pairs whose left or right track is absent from this frame, and those unpaired
        for longer than ``pair_memory_s`` (LOST pairs are dropped after their last publication)."""
        ids_l, ids_r = {t.track_id for t in left}, {t.track_id for t in right}
        memory = self.config.pair_memory_s
        self._pairs = {k: s for k, s in self._pairs.items()
                       if k[0] in ids_l and k[1] in ids_r and stamp - s.stamp <= memory}

    def _update_steady(self, left: list[Track], right: list[Track],
                       raw: tuple[dict[int, np.ndarray | None], ...]) -> None:
        """Every 2D track's steady box size after this frame's detections ``raw`` (per view, track id
        -> :func:`raw_measurement`); tracks gone are forgotten."""
        for steady, tracks, boxes in zip(self._steady, (left, right), raw):
            steady.keep(t.track_id for t in tracks)
            seen = [(t.track_id, box) for t in tracks if (box := boxes[t.track_id]) is not None]
            if seen:
                steady.update([tid for tid, _ in seen], np.array([box for _, box in seen]))

    def _observations(self, lefts: list[Track], rights: list[Track], ghost: np.ndarray,
                      raw: tuple[dict[int, np.ndarray | None], ...]) -> _Observations:
        """Observed boxes and their covariance: raw detections (``raw``: per view, track id ->
        :func:`raw_measurement`; filtered boxes as fallback) with the detector's noise; ghosts at
        their predicted boxes with the 2D covariance (see the module doc)."""
        cfg = self.config
        views, cuts = [], []
        for tracks, steady, measured in zip((lefts, rights), self._steady, raw):
            boxes = np.array([t.box if (m := measured[t.track_id]) is None or g else m for t, g in zip(tracks, ghost)],
                             dtype=np.float64).reshape(-1, 4)
            # σ = max(detection_std_px, detection_std_frac * size) per coordinate, size w for u and h for v
            with np.errstate(invalid="ignore"):
                std = np.fmax(cfg.detection_std_px, cfg.detection_std_frac * np.abs(boxes[:, 2:]))
            cut = np.zeros_like(std)  # σ_cut: frac (steady - size)+ / 2 per coordinate, 0 for ghosts
            if cfg.truncation_std_frac > 0:
                cut[~ghost] = truncation_std(boxes[~ghost, 2:], steady.sizes(
                    [t.track_id for t, g in zip(tracks, ghost) if not g], boxes[~ghost]), cfg.truncation_std_frac)
            cuts.append(cut)
            block = (std**2 + cut**2)[:, :, None] * np.eye(2)[None]  # diag(σ_u², σ_v²)
            if ghost.any():
                predicted = np.array([np.asarray(t.covariance, dtype=np.float64)[:2, :2] for t in tracks])[ghost]
                predicted[~np.all(np.isfinite(predicted), axis=(1, 2))] = 0.0
                block[ghost] = predicted + cfg.detection_std_px**2 * np.eye(2)
            views.append((boxes, block))
        (boxes_l, block_l), (boxes_r, block_r) = views
        sigma2 = np.zeros((len(lefts), 4, 4))
        sigma2[:, :2, :2], sigma2[:, 2:, 2:] = block_l, block_r  # the detector's errors are independent
        # ... a cut is not: one occluder hides the same side of the object in both views, which moves
        # both centres alike (across the ray, not in depth): covariance σ_cut,l σ_cut,r per coordinate
        cross = cuts[0] * cuts[1]
        sigma2[:, 0, 2] = sigma2[:, 2, 0] = cross[:, 0]
        sigma2[:, 1, 3] = sigma2[:, 3, 1] = cross[:, 1]
        return _Observations(boxes_l[:, :2].copy(), boxes_r[:, :2].copy(), boxes_l, boxes_r, sigma2)

    def _predicted_shift(self, lefts: list[Track], rights: list[Track], stamp: float) -> np.ndarray:
        """(N,) column shift ``u_l - u_r`` (px) at which each pair's 3D filter expects it at ``stamp``
        (constant velocity from its last frame; NaN for a new pair or a prediction behind the camera):
        the image disparity is searched there first, as the boxes' disparity is off by several
        pixels under partial occlusion."""
        fb = self.rig.fx * self.rig.baseline
        out = np.full(len(lefts), np.nan)
        for k, (a, b) in enumerate(zip(lefts, rights)):
            state = self._pairs.get((a.track_id, b.track_id))
            if state is not None:
                z = state.filter.position[2] + state.filter.velocity[2] * (stamp - state.stamp)  # Z + vz dt
                if z > 0:
                    out[k] = fb / z + self.rig.column_offset  # u_l - u_r = fx B / Z + (cx_l - cx_r)
        return out

    def _image_disparity(self, images: tuple[np.ndarray, np.ndarray], obs: _Observations, guess: np.ndarray,
                         rows: np.ndarray, source: np.ndarray, precise: np.ndarray,
                         template_only: bool = False, exclude: list[np.ndarray] | None = None) -> None:
        """Measure the disparity of pairs ``rows`` in ``images`` (the rectified (H, W) uint8 grey pair)
        around ``guess`` (N,) px and put it into ``obs`` in place; ``source`` (N,) gets the
        :class:`DisparitySource` of each pair measured and ``precise`` (N,) bool whether it is a
        tight template match (``template_only``: see :func:`box_disparities`).

        A measured pair gets ``u_r = u_l - s`` (s the measured column shift) and the covariance of
        ``(u_l, v_l, u_l - s, v_r)`` with ``σ_s`` the method's standard deviation; a disparity
        outside the depth-range gate is discarded like a failed one.
        """
        if not len(rows):
            return
        result = box_disparities(images[0], images[1], obs.boxes_left[rows], guess[rows], self._disparity_config,
                                 template_only, None if exclude is None else [exclude[r] for r in rows])
        disparity = result.disparity - self.rig.column_offset  # d = (u_l - u_r) - (cx_l - cx_r)
        with np.errstate(invalid="ignore"):
            ok = (disparity >= self._disparity_range[0]) & (disparity <= self._disparity_range[1])
        measured = rows[ok]
        obs.pts_right[measured, 0] = obs.pts_left[measured, 0] - result.disparity[ok]  # u_r = u_l - s
        # Observation (u_l, v_l, s, v_r) with s independent of the rest; u_r = u_l - s: Σ2 = A Σ' A'.
        sigma_obs = obs.sigma2[measured].copy()
        sigma_obs[:, 2, :] = sigma_obs[:, :, 2] = 0.0
        sigma_obs[:, 2, 2] = result.std_px[ok] ** 2
        a = np.array([[1.0, 0, 0, 0], [0, 1, 0, 0], [1, 0, -1, 0], [0, 0, 0, 1]])
        obs.sigma2[measured] = a @ sigma_obs @ a.T
        source[measured] = result.source[ok]
        precise[measured] = result.precise[ok]

    def _update_pair(self, a: Track, b: Track, position: np.ndarray, covariance: np.ndarray, stamp: float,
                     measured: bool, bearing: tuple[np.ndarray, np.ndarray] | None,
                     precise: bool = False) -> tuple[Track3D | None, bool]:
        """Run the pair's 3D filter to ``stamp`` and publish it; returns ``(track, fused)`` (track
        None: nothing to publish; fused: this triangulation went into the filter).

        ``measured``: a finite observation (not a ghost, unless ``update_from_ghosts``) whose box is
        not cut by the border (unless the images gave the disparity) and, when images are given,
        whose disparity they measured (unless ``box_depth_without_match``). A new pair starts from
        its first measured triangulation: until then (first seen as a ghost without
        ``update_from_ghosts``, or views the images do not match: often two different objects
        paired, or the box centres of a partly hidden object, metres off in depth) it has no 3D
        track; a pair first seen LOST never starts. A known one predicts over the time since its
        last frame (a ghost pair with its velocity damped by ``ghost_velocity_damping_s``) and
        updates when measured. With ``confirm_new_tracks`` a new pair is not published until a
        second measured triangulation, within ``CONFIRM_WINDOW_S`` and not LOST, lies inside the
        gate of the first (one outside, or later, restarts it there, precise or not: a tight
        template match can latch onto an occluder too); a pair that goes LOST before that is
        dropped unpublished; with ``max_extrapolation_std_m`` a pair whose uncertainty grew that
        much since its last measurement is not published (its filter runs on). When not measured,
        ``bearing``, the left box centre (2,) px with its covariance (2, 2), updates the ray only. A
        repeated stamp is not fused twice. A LOST pair is published with its last estimate (unless
        extrapolated too far) and forgotten.

        ``precise``: the disparity came from a tight template match (its cells agree to
        ``refine_max_spread_px``: a few hundredths of a pixel). Such a measurement outside the
        validation gate of a filter that no precise one has confirmed since its (re)start restarts
        the filter at once: that filter rests on box centres or semi-global matching, which a
        partial occlusion puts pixels off.
        """
        cfg = self.config
        key = (a.track_id, b.track_id)
        worse = TrackState(max(a.state, b.state, key=_STATE_SEVERITY.__getitem__))
        state = self._pairs.get(key)
        fused = False
        if state is None:
            if not measured or worse == TrackState.LOST:  # no 3D track before a measured triangulation
                return None, False
            state = _PairState(self.ids.allocate(), Track3DFilter(position, covariance, cfg.initial_velocity_std_mps),
                               stamp, deque(maxlen=cfg.trail_length), anchored=precise,
                               published=not cfg.confirm_new_tracks, started=stamp)
            self._pairs[key] = state
            fused = True
        elif stamp > state.stamp:
            damping = cfg.ghost_velocity_damping_s if worse in _GHOST_STATES and cfg.ghost_velocity_damping_s > 0 \
                else None
            state.filter.predict(stamp - state.stamp, cfg.accel_noise, damping)  # x = F x, P = F P F' + Q
            if measured and not state.published and worse != TrackState.LOST:
                # a second measurement confirms the first (inside its gate, soon enough) or replaces it
                if state.filter.innovation_d2(position, covariance) <= self._gate \
                        and stamp - state.started <= CONFIRM_WINDOW_S:
                    state.filter.update(position, covariance)
                    state.published = True
                    state.anchored = state.anchored or precise
                else:
                    state.filter.reinitialize(position, covariance)
                    state.trail.clear()  # the replaced start was never shown
                    state.anchored = precise
                    state.started = stamp
                fused = True
            elif measured and precise and not state.anchored \
                    and state.filter.innovation_d2(position, covariance) > self._gate:
                state.filter.reinitialize(position, covariance)  # the precise measurement wins
                fused = state.anchored = True
            elif measured:
                fused = state.filter.gated_update(position, covariance, self._gate, cfg.max_rejected_updates)
                if fused or state.filter.rejected == 0:  # fused, or restarted at this measurement
                    state.anchored = precise or (fused and state.anchored)
            elif bearing is not None:
                rig = self.rig
                state.filter.update_bearing(bearing[0], bearing[1], rig.fx, rig.fy, rig.cx_left, rig.cy)
        state.stamp = stamp
        state.trail.append(state.filter.position)
        if worse == TrackState.LOST:
            del self._pairs[key]
        too_far = False
        if cfg.max_extrapolation_std_m > 0:  # uncertainty grown since the last fused measurement
            std = float(np.sqrt(max(np.linalg.eigvalsh(state.filter.covariance)[-1], 0.0)))
            if fused:
                state.measured_std = std
            too_far = std - state.measured_std > cfg.max_extrapolation_std_m
        if not state.published or too_far:
            return None, fused  # not confirmed yet, or extrapolated too far to claim a position
        return Track3D(
            track_id=state.track_id,
            state=worse,
            class_id=a.class_id,
            class_name=a.class_name,
            position=state.filter.position,
            velocity=state.filter.velocity,
            covariance=state.filter.covariance,
            left_track_id=a.track_id,
            right_track_id=b.track_id,
            persistence_score=float(np.fmin(a.persistence_score, b.persistence_score)),  # NaN-aware min
            frames_since_seen=max(a.frames_since_seen, b.frames_since_seen),
            trail=list(state.trail),
        ), fused


def _at_border(boxes: np.ndarray, image_size: tuple[int, int] | None, margin: float) -> np.ndarray:
    """(N,) whether each box ``cx, cy, w, h`` comes within ``margin`` px of the left or right image
    border (its centre column is then biased); all False when the size is unknown."""
    if image_size is None or len(boxes) == 0:
        return np.zeros(len(boxes), dtype=bool)
    return (boxes[:, 0] - boxes[:, 2] / 2 <= margin) | (boxes[:, 0] + boxes[:, 2] / 2 >= image_size[0] - margin)


#: A box counts as in front of another when its column shift is larger by this much (pixels).
OCCLUDER_MARGIN_PX = 1.0


def _occluders(boxes: np.ndarray, shift: np.ndarray, visible: np.ndarray, pad_px: float) -> list[np.ndarray]:
    """Per pair, (K, 4) rectangles ``x0, y0, x1, y1`` (left image) to leave out of its measurement:
    the left boxes of the VISIBLE pairs that overlap its left box and are nearer (column shift
    larger by ``OCCLUDER_MARGIN_PX``), grown by ``pad_px`` on every side (a matching block reaching
    over the occluder's edge mixes the two depths) and, on the left, by the difference of the two
    shifts: in the right view the nearer object is shifted further left and hides that much more
    of the farther one, whose left pixels there have no match."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    rect = np.concatenate([b[:, :2] - b[:, 2:] / 2, b[:, :2] + b[:, 2:] / 2], axis=1)
    overlap = (np.minimum(rect[:, None, 2], rect[None, :, 2]) > np.maximum(rect[:, None, 0], rect[None, :, 0])) \
        & (np.minimum(rect[:, None, 3], rect[None, :, 3]) > np.maximum(rect[:, None, 1], rect[None, :, 1]))
    with np.errstate(invalid="ignore"):
        front = overlap & (shift[None, :] > shift[:, None] + OCCLUDER_MARGIN_PX) & visible[None, :]
    np.fill_diagonal(front, False)
    grown = rect + np.array([-pad_px, -pad_px, pad_px, pad_px])
    out = []
    for i, row in enumerate(front):
        r = grown[row]  # a copy (boolean index); empty for most pairs
        r[:, 0] -= shift[row] - shift[i]  # the part of the farther object the right view hides too
        out.append(r)
    return out

