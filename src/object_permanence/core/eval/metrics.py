"""Evaluation of the pipeline's outputs against the simulator's ground truth.

The demo records one :class:`FrameRecord` per frame (ground truth of both cameras and everything
the pipeline published for that frame) and calls :func:`evaluate`, whose dict is written to
``out/demo/metrics.json``. Every metric is defined in the docstring of the function computing it.

Conventions shared by all metrics:

* Records are consecutive frames in order; "frames" in gap lengths count records.
* A track is labelled a real object or a nuisance through :class:`TrackToTruth` (majority vote of
  its detection-backed frames against all ground-truth entries of its camera, IoU ≥ 0.3).
* An undefined ratio (empty denominator) is reported as 0.0, never NaN (JSON has no NaN);
  :func:`evaluate_with_counts` returns the denominators so a reader can tell 0/0 from a real 0.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

if not hasattr(np, "asfarray"):  # motmetrics 1.4.0 calls np.asfarray, removed in NumPy 2
    np.asfarray = lambda a, dtype=np.float64: np.asarray(a, dtype=dtype)

import motmetrics as mm  # noqa: E402  (needs the alias above)
from trackeval.metrics import HOTA  # noqa: E402

from object_permanence.core.eval.matching import (  # noqa: E402
    CAMERAS,
    OBSERVED_STATES,
    TrackToTruth,
    box_iou,
    match_frame,
)
from object_permanence.core.types import (  # noqa: E402
    GroundTruthObject,
    ObjectKind,
    PersistenceDecision,
    Track,
    Track3D,
    TrackState,
)

METRIC_KEYS = (
    "frames",
    "idf1",
    "mota",
    "hota",
    "id_switches_per_100_frames",
    "occlusion_recovery_rate",
    "ghost_precision",
    "reacquire_error_px",
    "spurious_points_unfiltered",
    "spurious_points_filtered",
    "persistence_precision",
    "persistence_recall",
    "position_rmse_m",
    "latency_ms_p50",
    "latency_ms_p95",
)

#: IoU threshold of the CLEAR-MOT / IDF1 matching (motmetrics distance 1 - IoU ≤ 0.5).
MOT_IOU = 0.5
#: IoU threshold used to link tracks to ground truth (TrackToTruth, occlusion episodes).
LINK_IOU = 0.3


@dataclass
class FrameRecord:
    """Ground truth and published outputs of one frame, as recorded by the demo.

    gt_left / gt_right: simulator ground truth per camera (objects and nuisances).
    tracks_left / tracks_right: world-model output, all states (TENTATIVE, VISIBLE, OCCLUDED, LOST).
    decisions_left / decisions_right: persistence verdicts; ``track_id`` refers to that camera.
    tracks3d: triangulated persistent tracks (metres, left camera optical frame);
    ``left_track_id`` links to ``tracks_left``.
    tracks3d_unfiltered: the same triangulator run on all confirmed tracks (no persistence filter).
    latency_s: pipeline latency of this frame in seconds, None when not measured.
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


def _check_camera(camera: str) -> None:
    if camera not in CAMERAS:
        raise ValueError(f"camera must be one of {CAMERAS}; got {camera!r}")


def _check_unit(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1]; got {value}")


def _gt(rec: FrameRecord, camera: str) -> list[GroundTruthObject]:
    return rec.gt_left if camera == "left" else rec.gt_right


def _tracks(rec: FrameRecord, camera: str) -> list[Track]:
    return rec.tracks_left if camera == "left" else rec.tracks_right


def _decisions(rec: FrameRecord, camera: str) -> list[PersistenceDecision]:
    return rec.decisions_left if camera == "left" else rec.decisions_right


def _ratio(num: float, den: float) -> float:
    """num / den, 0.0 when the denominator is empty (documented fallback, JSON-safe)."""
    return float(num) / float(den) if den > 0 else 0.0


def _boxes(items: Sequence[GroundTruthObject | Track]) -> np.ndarray:
    """(K, 4) ``cx, cy, w, h`` boxes of ground-truth entries or tracks."""
    if not items:
        return np.zeros((0, 4), dtype=np.float64)
    return np.stack([np.asarray(i.box, dtype=np.float64) for i in items])


class _GroundTruthIndex:
    """Per-camera lookup of ground truth by (frame position, object id), with each id's life span."""

    def __init__(self, records: Sequence[FrameRecord], camera: str) -> None:
        self.frames = [{g.object_id: g for g in _gt(r, camera)} for r in records]
        self.span: dict[int, tuple[int, int]] = {}
        for t, frame in enumerate(self.frames):
            for oid in frame:
                first, _ = self.span.get(oid, (t, t))
                self.span[oid] = (first, t)

    def get(self, t: int, oid: int) -> GroundTruthObject | None:
        return self.frames[t].get(oid)

    def within_life(self, t: int, oid: int) -> bool:
        """True when ``oid`` is listed in this camera at some frame ≤ t and some frame ≥ t."""
        span = self.span.get(oid)
        return span is not None and span[0] <= t <= span[1]


def _check_records(records: Sequence[FrameRecord]) -> None:
    idx = np.array([r.index for r in records], dtype=np.int64)
    if idx.size > 1 and np.any(np.diff(idx) <= 0):
        raise ValueError("records must be in strictly increasing index order")


def build_track_to_truth(
    records: Sequence[FrameRecord], iou_threshold: float = LINK_IOU
) -> TrackToTruth:
    """Feed every frame of both cameras to a :class:`TrackToTruth` and return it."""
    truth = TrackToTruth(iou_threshold)
    for rec in records:
        for camera in CAMERAS:
            truth.add_frame(camera, _gt(rec, camera), _tracks(rec, camera))
    return truth


def _xywh(boxes: np.ndarray) -> np.ndarray:
    """``cx, cy, w, h`` → motmetrics' ``x_left, y_top, w, h`` (pixels)."""
    out = boxes.copy()
    out[:, :2] -= out[:, 2:] / 2.0
    return out


def mot_metrics(
    records: Sequence[FrameRecord], camera: str = "left", min_visibility: float = 0.25
) -> dict[str, float | int]:
    """CLEAR-MOT, identity and HOTA metrics of one camera's world-model output.

    Ground truth: ``OBJECT`` entries with ``visibility >= min_visibility`` (nuisances are not
    objects to track). Hypotheses: tracks in state VISIBLE (ghosts are predictions, not
    detections; tentative tracks are not published as objects yet). Objects hidden below
    ``min_visibility`` are ignore regions, as MOTChallenge treats distractors: a hypothesis matched
    to one (Hungarian, IoU ≥ 0.5, against all objects of the frame) is removed from the frame
    rather than counted a false positive. A VISIBLE track on a nuisance is a false positive.

    motmetrics computes ``idf1``, ``mota`` and ``num_switches`` with distance 1 - IoU, pairs with
    IoU < 0.5 forbidden. ``hota`` is trackeval's ``HOTA`` on the same boxes with IoU similarity,
    averaged over its 19 alpha thresholds (0.05 … 0.95) as trackeval reports it.

    Returns a dict: ``idf1``, ``mota``, ``hota`` (0.0 when there is no ground truth),
    ``num_switches``, ``num_frames``, ``num_gt_dets``, ``num_hyp_dets``.

    Raises:
        ValueError: unknown ``camera``, ``min_visibility`` outside [0, 1], records out of order.
    """
    _check_camera(camera)
    _check_unit("min_visibility", min_visibility)
    _check_records(records)
    if not records:
        return dict(idf1=0.0, mota=0.0, hota=0.0, num_switches=0, num_frames=0, num_gt_dets=0, num_hyp_dets=0)
    acc = mm.MOTAccumulator(auto_id=False)
    gt_ids: dict[int, int] = {}
    trk_ids: dict[int, int] = {}
    hota_gt: list[np.ndarray] = []
    hota_trk: list[np.ndarray] = []
    hota_sim: list[np.ndarray] = []
    for rec in records:
        objects = [g for g in _gt(rec, camera) if g.kind == ObjectKind.OBJECT]
        hyps = [t for t in _tracks(rec, camera) if t.state == TrackState.VISIBLE]
        ignored = {i for i, g in enumerate(objects) if g.visibility < min_visibility}
        if ignored and hyps:
            drop = {ti for gi, ti in match_frame(_boxes(objects), _boxes(hyps), MOT_IOU) if gi in ignored}
            hyps = [t for i, t in enumerate(hyps) if i not in drop]
        gts = [g for i, g in enumerate(objects) if i not in ignored]
        gt_boxes, hyp_boxes = _boxes(gts), _boxes(hyps)
        dist = mm.distances.iou_matrix(_xywh(gt_boxes), _xywh(hyp_boxes), max_iou=MOT_IOU)
        acc.update([g.object_id for g in gts], [t.track_id for t in hyps], dist, frameid=rec.index)
        hota_gt.append(np.array([gt_ids.setdefault(g.object_id, len(gt_ids)) for g in gts], dtype=int))
        hota_trk.append(np.array([trk_ids.setdefault(t.track_id, len(trk_ids)) for t in hyps], dtype=int))
        hota_sim.append(box_iou(gt_boxes, hyp_boxes))
    n_gt = int(sum(len(g) for g in hota_gt))
    n_hyp = int(sum(len(t) for t in hota_trk))
    summary = mm.metrics.create().compute(acc, metrics=["idf1", "mota", "num_switches"], name=camera)
    hota = HOTA().eval_sequence(
        dict(
            num_timesteps=len(records),
            num_gt_ids=len(gt_ids),
            num_tracker_ids=len(trk_ids),
            num_gt_dets=n_gt,
            num_tracker_dets=n_hyp,
            gt_ids=hota_gt,
            tracker_ids=hota_trk,
            similarity_scores=hota_sim,
        )
    )
    defined = n_gt > 0
    return dict(
        idf1=float(summary["idf1"].iloc[0]) if defined else 0.0,
        mota=float(summary["mota"].iloc[0]) if defined else 0.0,
        hota=float(np.mean(hota["HOTA"])) if defined else 0.0,
        num_switches=int(summary["num_switches"].iloc[0]),
        num_frames=len(records),
        num_gt_dets=n_gt,
        num_hyp_dets=n_hyp,
    )


def _object_matches(
    records: Sequence[FrameRecord], camera: str, iou_threshold: float
) -> list[dict[int, Track]]:
    """Per frame: object id → the detection-backed track (TENTATIVE/VISIBLE) matched to it.

    All ground-truth entries (nuisances included) take part in the Hungarian matching so that a
    track sitting on a glare next to an object is not credited to the object.
    """
    out: list[dict[int, Track]] = []
    for rec in records:
        gt = _gt(rec, camera)
        observed = [t for t in _tracks(rec, camera) if t.state in OBSERVED_STATES]
        pairs = match_frame(_boxes(gt), _boxes(observed), iou_threshold) if gt and observed else []
        out.append({gt[gi].object_id: observed[ti] for gi, ti in pairs if gt[gi].kind == ObjectKind.OBJECT})
    return out


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs of True in a 1-D bool array as half-open ``(start, end)`` positions."""
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def occlusion_recovery(
    records: Sequence[FrameRecord],
    camera: str = "left",
    min_gap: int = 10,
    visible_vis: float = 0.5,
    hidden_vis: float = 0.25,
    reacquire_window: int = 5,
) -> tuple[float, int, list[float]]:
    """Fraction of occlusion episodes after which the object gets its old identity back.

    See :func:`occlusion_episodes` for the definition. Returns ``(rate, n_episodes,
    reacquire_errors_px)``; rate is 0.0 without episodes.
    """
    n_recovered, n_episodes, errors = occlusion_episodes(
        records, camera, min_gap, visible_vis, hidden_vis, reacquire_window
    )
    return _ratio(n_recovered, n_episodes), n_episodes, errors


def occlusion_episodes(
    records: Sequence[FrameRecord],
    camera: str = "left",
    min_gap: int = 10,
    visible_vis: float = 0.5,
    hidden_vis: float = 0.25,
    reacquire_window: int = 5,
) -> tuple[int, int, list[float]]:
    """Count occlusion episodes and the ones after which the object gets its old identity back.

    Visibility of an object absent from the camera's ground truth in a frame counts as 0.
    An episode of one ``OBJECT``:

    1. a gap: a maximal run of ≥ ``min_gap`` frames with ``visibility < hidden_vis``;
    2. before it (after the previous gap), the latest frame with ``visibility ≥ visible_vis`` in
       which the object is matched to a VISIBLE (confirmed) track — its id is ``A``; episodes
       without such a frame are not counted (the tracker was not holding the object);
    3. after it (before the next gap), a first frame ``r`` with ``visibility ≥ visible_vis``;
       episodes where the object never shows again are not counted.

    The episode is recovered when the first detection-backed track (TENTATIVE or VISIBLE) matched
    to the object from the gap's end up to ``r + reacquire_window - 1`` has id ``A``; no match in
    that window is a failure. Matching: Hungarian on IoU ≥ 0.3 against all ground truth entries.

    Reacquire error (every episode, recovered or not, where ``A`` was a ghost): the latest OCCLUDED
    box of ``A`` before the reacquire frame ``q`` (the first matched frame of the window, else the
    reappearance frame ``r``), propagated to ``q`` with its published velocity
    (``c + v · (stamp_q - stamp_p)``, the ghost's prediction for ``q``), minus the object's
    ground-truth box centre at ``q``; Euclidean norm in pixels. Failed episodes count too, so a
    ghost that drifted beyond the association gate is not left out.

    Returns ``(n_recovered, n_episodes, reacquire_errors_px)``.

    Raises:
        ValueError: unknown ``camera``, ``min_gap`` or ``reacquire_window`` < 1, thresholds
        outside [0, 1] or ``hidden_vis > visible_vis``, records out of order.
    """
    _check_camera(camera)
    if min_gap < 1:
        raise ValueError(f"min_gap must be >= 1; got {min_gap}")
    if reacquire_window < 1:
        raise ValueError(f"reacquire_window must be >= 1; got {reacquire_window}")
    _check_unit("visible_vis", visible_vis)
    _check_unit("hidden_vis", hidden_vis)
    if hidden_vis > visible_vis:
        raise ValueError(f"hidden_vis ({hidden_vis}) must not exceed visible_vis ({visible_vis})")
    _check_records(records)
    index = _GroundTruthIndex(records, camera)
    matches = _object_matches(records, camera, LINK_IOU)
    n_frames = len(records)
    objects = sorted({g.object_id for r in records for g in _gt(r, camera) if g.kind == ObjectKind.OBJECT})
    n_episodes, n_recovered, errors = 0, 0, []
    for oid in objects:
        vis = np.array([g.visibility if (g := index.get(t, oid)) else 0.0 for t in range(n_frames)])
        gaps = [(s, e) for s, e in _runs(vis < hidden_vis) if e - s >= min_gap]
        for k, (start, end) in enumerate(gaps):
            prev_end = gaps[k - 1][1] if k else 0
            next_start = gaps[k + 1][0] if k + 1 < len(gaps) else n_frames
            anchors = [
                t for t in range(prev_end, start)
                if vis[t] >= visible_vis and oid in matches[t] and matches[t][oid].state == TrackState.VISIBLE
            ]
            shows = np.flatnonzero(vis[end:next_start] >= visible_vis)
            if not anchors or shows.size == 0:
                continue
            track_a = matches[anchors[-1]][oid].track_id
            reappear = end + int(shows[0])
            n_episodes += 1
            window = range(end, min(reappear + reacquire_window, next_start))
            q = next((t for t in window if oid in matches[t]), None)
            n_recovered += q is not None and matches[q][oid].track_id == track_a
            q = reappear if q is None else q
            ghost = _latest_ghost(records, camera, track_a, anchors[-1], q)
            if ghost is not None and index.get(q, oid) is not None:
                p, trk = ghost
                errors.append(_reacquire_error(trk, records[q].stamp - records[p].stamp, index.get(q, oid)))
    return n_recovered, n_episodes, errors


def _reacquire_error(ghost: Track, dt: float, truth: GroundTruthObject) -> float:
    """Pixels between the ghost's centre propagated ``dt`` seconds and the ground-truth centre."""
    centre, velocity = np.asarray(ghost.box[:2], float), np.asarray(ghost.velocity, float)
    predicted = centre + velocity * dt  # c(q) = c(p) + v Δt
    return float(np.linalg.norm(predicted - np.asarray(truth.box[:2], float)))


def _latest_ghost(
    records: Sequence[FrameRecord], camera: str, track_id: int, after: int, before: int
) -> tuple[int, Track] | None:
    """Latest frame p in (after, before) where ``track_id`` is OCCLUDED, with that track."""
    for p in range(before - 1, after, -1):
        for trk in _tracks(records[p], camera):
            if trk.track_id == track_id and trk.state == TrackState.OCCLUDED:
                return p, trk
    return None


def ghost_precision(
    records: Sequence[FrameRecord],
    camera: str = "left",
    truth: TrackToTruth | None = None,
    hidden_vis: float = 0.5,
    kept_only: bool = False,
) -> tuple[float, int]:
    """Fraction of published ghosts that stand for a real, hidden object.

    See :func:`ghost_counts` for the rule. Returns ``(precision, n_ghosts)``; precision is 0.0
    without ghosts.
    """
    n_real, n_ghosts = ghost_counts(records, camera, truth, hidden_vis, kept_only)
    return _ratio(n_real, n_ghosts), n_ghosts


def ghost_counts(
    records: Sequence[FrameRecord],
    camera: str = "left",
    truth: TrackToTruth | None = None,
    hidden_vis: float = 0.5,
    kept_only: bool = False,
) -> tuple[int, int]:
    """Count published ghosts and those that stand for a real, hidden object.

    ``kept_only``: count only the ghosts of tracks the persistence filter kept in that frame
    (the pipeline's output: what is triangulated and drawn); otherwise every world-model ghost.

    Every track-frame in state OCCLUDED is one ghost. It is correct when the track maps
    (:class:`TrackToTruth`) to an ``OBJECT`` and, in that frame and camera, the ghost stands where
    that object is: its centre lies within one object size (the larger side of the ground-truth
    box, which is the full, amodal extent) of the object's centre, and the object is hidden
    (``visibility < hidden_vis``) or, visible, overlapped by the ghost with IoU >= ``LINK_IOU``
    (the detector missed it). An object without an entry in that frame counts when the frame
    lies within its listed life in this camera (hidden, not gone) — there is no box to check the
    place against. Ghosts of nuisances, of unmapped tracks, drifted away from their object or
    beside a visible one are wrong.

    Returns ``(n_correct, n_ghosts)``.

    Raises:
        ValueError: unknown ``camera``, ``hidden_vis`` outside [0, 1], records out of order.
    """
    _check_camera(camera)
    _check_unit("hidden_vis", hidden_vis)
    _check_records(records)
    truth = truth if truth is not None else build_track_to_truth(records)
    index = _GroundTruthIndex(records, camera)
    n_ghosts, n_real = 0, 0
    for t, rec in enumerate(records):
        kept = {d.track_id for d in _decisions(rec, camera) if d.keep}
        for trk in _tracks(rec, camera):
            if trk.state != TrackState.OCCLUDED or (kept_only and trk.track_id not in kept):
                continue
            n_ghosts += 1
            if not truth.is_real(camera, trk.track_id):
                continue
            oid = truth.gt_id(camera, trk.track_id)
            g = index.get(t, oid)
            if g is None:
                n_real += index.within_life(t, oid)
                continue
            near = np.linalg.norm(np.asarray(trk.box[:2]) - g.box[:2]) <= max(g.box[2], g.box[3])
            n_real += bool(near and (g.visibility < hidden_vis
                                     or box_iou(trk.box[None], g.box[None])[0, 0] >= LINK_IOU))
    return n_real, n_ghosts


@dataclass
class PersistenceCounts:
    """Confusion counts of persistence decisions (positive = real object)."""

    decisions: int
    kept: int
    real: int
    kept_real: int

    @property
    def precision(self) -> float:
        """kept ∧ real / kept (0.0 when nothing kept)."""
        return _ratio(self.kept_real, self.kept)

    @property
    def recall(self) -> float:
        """kept ∧ real / real (0.0 when nothing real)."""
        return _ratio(self.kept_real, self.real)


def persistence_counts(
    records: Sequence[FrameRecord], truth: TrackToTruth | None = None
) -> PersistenceCounts:
    """Score the persistence filter's verdicts, both cameras pooled.

    One sample per decision whose track is confirmed in that frame (the same camera's track with
    that id is VISIBLE or OCCLUDED); decisions on tentative, lost or unpublished tracks are
    skipped. Label: the track maps (:class:`TrackToTruth`) to an ``OBJECT``; nuisances and
    unmapped tracks are negatives. Prediction: ``decision.keep``.
    """
    _check_records(records)
    truth = truth if truth is not None else build_track_to_truth(records)
    confirmed = (TrackState.VISIBLE, TrackState.OCCLUDED)
    decisions = kept = real = kept_real = 0
    for rec in records:
        for camera in CAMERAS:
            states = {t.track_id: t.state for t in _tracks(rec, camera)}
            for dec in _decisions(rec, camera):
                if states.get(dec.track_id) not in confirmed:
                    continue
                is_real = truth.is_real(camera, dec.track_id)
                decisions += 1
                kept += bool(dec.keep)
                real += is_real
                kept_real += bool(dec.keep) and is_real
    return PersistenceCounts(decisions, kept, real, kept_real)


def persistence_track_counts(
    records: Sequence[FrameRecord], truth: TrackToTruth | None = None
) -> dict[str, int]:
    """Per-track view of the persistence filter, both cameras pooled (the per-decision figures
    weigh long-lived real tracks more than short-lived nuisances).

    A track is every (camera, id) with at least one decision on it while confirmed; it is kept if
    any such decision kept it. ``keep_latency_frames_median``: over real tracks first decided
    inside the records (first decision with ``frames_observed == 1``) and kept, the median of
    ``frames_observed`` at the first keep: frames of history the filter needed, counted from the
    first frame the world model published the track.
    """
    _check_records(records)
    truth = truth if truth is not None else build_track_to_truth(records)
    confirmed = (TrackState.VISIBLE, TrackState.OCCLUDED)
    born_inside: dict[tuple[str, int], bool] = {}
    first_keep: dict[tuple[str, int], int] = {}
    scored: set[tuple[str, int]] = set()
    for rec in records:
        for camera in CAMERAS:
            states = {t.track_id: t.state for t in _tracks(rec, camera)}
            for dec in _decisions(rec, camera):
                key = (camera, dec.track_id)
                born_inside.setdefault(key, dec.frames_observed == 1)
                if states.get(dec.track_id) in confirmed:
                    scored.add(key)
                    if dec.keep and key not in first_keep:
                        first_keep[key] = dec.frames_observed
    real = {k for k in scored if truth.is_real(*k)}
    kept = {k for k in scored if k in first_keep}
    latencies = [first_keep[k] for k in kept & real if born_inside[k]]
    return {"persistence_tracks": len(scored), "persistence_tracks_kept": len(kept),
            "persistence_tracks_real": len(real), "persistence_tracks_kept_real": len(kept & real),
            "keep_latency_frames_median": int(np.median(latencies)) if latencies else 0}


def _gt_position(left: _GroundTruthIndex, right: _GroundTruthIndex, t: int, oid: int) -> np.ndarray | None:
    """The object's ground-truth 3D position (metres, left optical frame) at frame t, if listed."""
    for index in (left, right):
        g = index.get(t, oid)
        if g is not None and np.all(np.isfinite(g.position)):
            return np.asarray(g.position, dtype=np.float64)
    return None


def spurious_points(
    records: Sequence[FrameRecord],
    filtered: bool = True,
    truth: TrackToTruth | None = None,
    max_error_m: float = 0.5,
) -> tuple[int, int]:
    """Count 3D track-frames that do not stand for a real object where it is.

    Over ``tracks3d`` (``filtered=True``) or ``tracks3d_unfiltered``, every 3D track in every frame
    (all states) is one point. It is spurious when its ``left_track_id`` maps (:class:`TrackToTruth`,
    left camera) to a nuisance or to nothing; or its position is not finite; or it is more than
    ``max_error_m`` metres (Euclidean) from the mapped object's ground-truth position in that frame
    (left entry, else right); or the object has no ground truth in that frame and the frame is
    outside the object's listed life in both cameras. Within its life but unlisted (position
    unknown), only the mapping is checked.

    Returns ``(n_spurious, n_points)``.

    Raises:
        ValueError: ``max_error_m`` not positive, records out of order.
    """
    if not max_error_m > 0.0:
        raise ValueError(f"max_error_m must be > 0; got {max_error_m}")
    _check_records(records)
    truth = truth if truth is not None else build_track_to_truth(records)
    left, right = _GroundTruthIndex(records, "left"), _GroundTruthIndex(records, "right")
    n_spurious = n_points = 0
    for t, rec in enumerate(records):
        for trk in rec.tracks3d if filtered else rec.tracks3d_unfiltered:
            n_points += 1
            oid = truth.gt_id("left", trk.left_track_id)
            pos = np.asarray(trk.position, dtype=np.float64)
            if not truth.is_real("left", trk.left_track_id) or not np.all(np.isfinite(pos)):
                n_spurious += 1
                continue
            gt_pos = _gt_position(left, right, t, oid)
            if gt_pos is not None:
                n_spurious += bool(np.linalg.norm(pos - gt_pos) > max_error_m)
            else:
                n_spurious += not (left.within_life(t, oid) or right.within_life(t, oid))
    return n_spurious, n_points


def position_rmse(records: Sequence[FrameRecord], truth: TrackToTruth | None = None) -> tuple[float, int]:
    """Root-mean-square 3D position error of triangulated, visible real objects (metres).

    Samples: 3D track-frames of ``tracks3d`` in state VISIBLE with a finite position whose left
    track maps to an ``OBJECT`` that has a finite ground-truth position in that frame (non-finite
    positions are counted by :func:`spurious_points` instead).
    RMSE = sqrt(mean ||p - p_gt||²). Returns ``(rmse_m, n_samples)``; 0.0 without samples.
    """
    _check_records(records)
    truth = truth if truth is not None else build_track_to_truth(records)
    left, right = _GroundTruthIndex(records, "left"), _GroundTruthIndex(records, "right")
    sq: list[float] = []
    for t, rec in enumerate(records):
        for trk in rec.tracks3d:
            pos = np.asarray(trk.position, dtype=np.float64)
            if trk.state != TrackState.VISIBLE or not np.all(np.isfinite(pos)):
                continue
            if not truth.is_real("left", trk.left_track_id):
                continue
            gt_pos = _gt_position(left, right, t, truth.gt_id("left", trk.left_track_id))
            if gt_pos is not None:
                sq.append(float(np.sum((pos - gt_pos) ** 2)))  # ||p - p_gt||²
    if not sq:
        return 0.0, 0
    return float(np.sqrt(np.mean(sq))), len(sq)  # RMSE = sqrt(mean ||p - p_gt||²)


def latency_percentiles(records: Sequence[FrameRecord]) -> tuple[float, float, int]:
    """Median and 95th percentile (linear interpolation) of per-frame latency in milliseconds.

    Frames with ``latency_s`` None or non-finite are skipped. Returns ``(p50_ms, p95_ms, n)``;
    0.0 for both without samples.
    """
    lat = np.array([r.latency_s for r in records if r.latency_s is not None], dtype=np.float64)
    lat = lat[np.isfinite(lat)]
    if lat.size == 0:
        return 0.0, 0.0, 0
    p50, p95 = np.percentile(lat * 1e3, [50.0, 95.0])
    return float(p50), float(p95), int(lat.size)


def evaluate_with_counts(records: Sequence[FrameRecord]) -> tuple[dict[str, float], dict[str, int]]:
    """All demo metrics (keys :data:`METRIC_KEYS`, finite floats) and their denominators.

    Per camera then combined:

    * ``idf1``, ``mota``, ``hota``: mean over the cameras that have ground truth (:func:`mot_metrics`).
    * ``id_switches_per_100_frames``: 100 · (switches_left + switches_right) / (2 · frames).
    * ``occlusion_recovery_rate``: recovered / episodes, episodes of both cameras pooled;
      ``reacquire_error_px``: mean of the pooled reacquire errors (:func:`occlusion_recovery`).
    * ``ghost_precision``: correct ghosts / ghosts of the tracks the persistence filter kept (the
      published output), both cameras pooled (:func:`ghost_precision`); the counts also give the
      world model's raw figure over all its ghosts (``ghosts_all``, ``ghosts_all_real``).
    * ``spurious_points_*``: counts from :func:`spurious_points`; ``persistence_*`` from
      :func:`persistence_counts`; ``position_rmse_m`` from :func:`position_rmse`;
      ``latency_ms_*`` from :func:`latency_percentiles`.

    Every undefined ratio is 0.0; the counts dict says which denominators were empty.
    """
    _check_records(records)
    truth = build_track_to_truth(records)
    counts: dict[str, int] = {"frames": len(records)}
    mot = {cam: mot_metrics(records, cam) for cam in CAMERAS}
    scored = [m for m in mot.values() if m["num_gt_dets"] > 0]
    episodes = recovered = ghosts = ghosts_real = ghosts_all = ghosts_all_real = 0
    errors: list[float] = []
    for cam in CAMERAS:
        counts[f"gt_dets_{cam}"] = mot[cam]["num_gt_dets"]
        counts[f"id_switches_{cam}"] = mot[cam]["num_switches"]
        n_rec, n_ep, errs = occlusion_episodes(records, cam)
        recovered += n_rec
        episodes += n_ep
        errors += errs
        n_correct, n_g = ghost_counts(records, cam, truth, kept_only=True)
        ghosts_real += n_correct
        ghosts += n_g
        n_correct, n_g = ghost_counts(records, cam, truth)
        ghosts_all_real += n_correct
        ghosts_all += n_g
    pers = persistence_counts(records, truth)
    spur_unf, pts_unf = spurious_points(records, filtered=False, truth=truth)
    spur_f, pts_f = spurious_points(records, filtered=True, truth=truth)
    rmse, n_rmse = position_rmse(records, truth)
    p50, p95, n_lat = latency_percentiles(records)
    counts.update(
        occlusion_episodes=episodes,
        occlusion_recovered=recovered,
        reacquire_error_samples=len(errors),
        ghosts=ghosts,
        ghosts_real=ghosts_real,
        ghosts_all=ghosts_all,
        ghosts_all_real=ghosts_all_real,
        persistence_decisions=pers.decisions,
        persistence_kept=pers.kept,
        persistence_real=pers.real,
        persistence_kept_real=pers.kept_real,
        **persistence_track_counts(records, truth),
        points3d_unfiltered=pts_unf,
        points3d_filtered=pts_f,
        rmse_samples=n_rmse,
        latency_samples=n_lat,
    )
    metrics = {
        "frames": float(len(records)),
        "idf1": float(np.mean([m["idf1"] for m in scored])) if scored else 0.0,
        "mota": float(np.mean([m["mota"] for m in scored])) if scored else 0.0,
        "hota": float(np.mean([m["hota"] for m in scored])) if scored else 0.0,
        "id_switches_per_100_frames": 100.0 * _ratio(
            sum(m["num_switches"] for m in mot.values()), len(CAMERAS) * len(records)
        ),
        "occlusion_recovery_rate": _ratio(recovered, episodes),
        "ghost_precision": _ratio(ghosts_real, ghosts),
        "reacquire_error_px": float(np.mean(errors)) if errors else 0.0,
        "spurious_points_unfiltered": float(spur_unf),
        "spurious_points_filtered": float(spur_f),
        "persistence_precision": pers.precision,
        "persistence_recall": pers.recall,
        "position_rmse_m": rmse,
        "latency_ms_p50": p50,
        "latency_ms_p95": p95,
    }
    return metrics, counts


def evaluate(records: Sequence[FrameRecord]) -> dict[str, float]:
    """The ``out/demo/metrics.json`` dict: every key of :data:`METRIC_KEYS` as a finite float."""
    return evaluate_with_counts(records)[0]
