"""CLEAR-MOT, Identity (IDF1) and HOTA of one camera's tracks, computed by TrackEval.

The ground truth and hypotheses are laid out exactly as TrackEval's ``MotChallenge2DBox`` would
load and preprocess the MOTChallenge files that :mod:`core.eval.export` writes, and scored with
TrackEval's own ``CLEAR``, ``Identity`` and ``HOTA`` ``eval_sequence`` — so re-scoring the exported
files with TrackEval reproduces these numbers (a test checks it). No NumPy patching is needed.

Definitions (one camera, one sequence of consecutive records):

* Ground truth: ``OBJECT`` entries with ``visibility >= min_visibility`` (0.25), box = the amodal
  box (the simulator clips it to the image). Class 1 ("pedestrian": the evaluated class).
* Distractors: ``OBJECT`` entries below ``min_visibility`` (class 8 "distractor"). As in
  TrackEval's preprocessing, each frame the hypotheses are matched to all ground-truth rows
  (Hungarian on IoU, pairs with IoU < 0.5 not allowed); a hypothesis matched to a distractor is
  removed (neither a hit nor a false positive); distractor rows are then dropped.
* Nuisances (reflections, glare, false positives) are not ground truth: a track on one is a false
  positive.
* Hypotheses: tracks in state VISIBLE (a ghost's box is a prediction, a tentative track is not
  published as an object yet). Entries or tracks with a non-finite box cannot be written to a
  MOTChallenge file and are left out (the world model rejects such boxes upstream).
* Matching threshold: IoU ≥ 0.5 for CLEAR, Identity and each HOTA alpha as TrackEval defines it.

Reported (:func:`mot_metrics`): ``idf1``; ``mota``; ``hota`` (mean of TrackEval's HOTA over its 19
alphas 0.05 … 0.95); ``num_switches`` (CLEAR IDSW); ``num_frames``; ``num_gt_dets``;
``num_hyp_dets`` (after distractor removal); and the raw ``idtp``, ``idfp``, ``idfn``, ``clr_tp``,
``clr_fp``, ``clr_fn`` counts.

The identity matching (:func:`identity_matching`) is the global one-to-one track ↔ object
assignment that IDF1 scores: TrackEval's Identity cost (IDFP + IDFN over the whole sequence, IoU ≥
0.5 per frame) minimised with the Hungarian algorithm, i.e. IDTP maximised. Other metrics use it
to say which object a track stands for.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from trackeval.datasets._base_dataset import _BaseDataset
from trackeval.metrics import CLEAR, HOTA, Identity

from object_permanence.core.eval.mot_io import cxcywh_to_xywh
from object_permanence.core.eval.records import (
    FrameRecord,
    check_camera,
    check_records,
    check_unit,
    gt_of,
    tracks_of,
)
from object_permanence.core.types import GroundTruthObject, ObjectKind, Track, TrackState

#: IoU threshold of CLEAR, Identity and the distractor preprocessing (TrackEval's defaults).
MOT_IOU = 0.5
#: TrackEval MotChallenge2DBox class ids used in the files: the evaluated class and "distractor".
PEDESTRIAN_CLASS = 1
DISTRACTOR_CLASS = 8
_EPS = np.finfo("float").eps


@dataclass
class MotRows:
    """A set of MOTChallenge rows of one frame: ids (K,) int64, boxes (K, 4) ``x_left, y_top, w, h``
    pixels, a class id per row (K,), confidence (K,) and visibility (K,)."""

    ids: np.ndarray
    xywh: np.ndarray
    classes: np.ndarray
    conf: np.ndarray
    visibility: np.ndarray

    @classmethod
    def build(
        cls,
        ids: Sequence[int],
        boxes_cxcywh: np.ndarray,
        classes: Sequence[int] | np.ndarray,
        conf: Sequence[float] | np.ndarray,
        visibility: Sequence[float] | np.ndarray,
    ) -> MotRows:
        """Rows from (K, 4) ``cx, cy, w, h`` boxes, dropping rows whose box is not finite."""
        xywh = cxcywh_to_xywh(boxes_cxcywh)
        ok = np.all(np.isfinite(xywh), axis=1)
        return cls(np.asarray(ids, dtype=np.int64).reshape(-1)[ok], xywh[ok],
                   np.asarray(classes, dtype=np.int64).reshape(-1)[ok],
                   np.asarray(conf, dtype=np.float64).reshape(-1)[ok],
                   np.asarray(visibility, dtype=np.float64).reshape(-1)[ok])


def gt_rows(gt: Sequence[GroundTruthObject], min_visibility: float) -> MotRows:
    """Ground-truth rows of one frame: every ``OBJECT``, class 1 at ``visibility >= min_visibility``,
    else class 8 (distractor); nuisances are not written."""
    objects = [g for g in gt if g.kind == ObjectKind.OBJECT]
    vis = np.array([g.visibility for g in objects], dtype=np.float64)
    classes = np.where(vis >= min_visibility, PEDESTRIAN_CLASS, DISTRACTOR_CLASS)
    boxes = np.array([g.box for g in objects], dtype=np.float64).reshape(-1, 4)
    return MotRows.build([g.object_id for g in objects], boxes, classes, np.ones(len(objects)), vis)


def track_rows(tracks: Sequence[Track], state: TrackState = TrackState.VISIBLE) -> MotRows:
    """Rows of the tracks of one frame in ``state`` (VISIBLE: hypotheses; OCCLUDED: ghosts)."""
    chosen = [t for t in tracks if t.state == state]
    boxes = np.array([t.box for t in chosen], dtype=np.float64).reshape(-1, 4)
    return MotRows.build([t.track_id for t in chosen], boxes, -np.ones(len(chosen)),
                         [t.score for t in chosen], -np.ones(len(chosen)))


def mot_rows(
    records: Sequence[FrameRecord], camera: str, min_visibility: float = 0.25
) -> list[tuple[MotRows, MotRows]]:
    """Per record position, the (ground truth, hypotheses) rows — exactly what the exported
    ``gt.txt`` and tracker files hold for that frame, in the same order."""
    return [(gt_rows(gt_of(r, camera), min_visibility), track_rows(tracks_of(r, camera))) for r in records]


def _unique_or_raise(ids: np.ndarray, what: str, t: int) -> None:
    uniq, counts = np.unique(ids, return_counts=True)
    if np.any(counts > 1):
        raise ValueError(f"{what} ids repeated within frame position {t}: {uniq[counts > 1].tolist()}")


@dataclass
class TrackEvalSequence:
    """One sequence in TrackEval's preprocessed layout, plus the original ids of its labels.

    data: the dict TrackEval's metrics take (``num_timesteps``, ``num_gt_ids``, ``num_tracker_ids``,
    ``num_gt_dets``, ``num_tracker_dets``, per-frame ``gt_ids``, ``tracker_ids``,
    ``similarity_scores``); gt_labels / tracker_labels: (n,) original id of each contiguous label.
    """

    data: dict
    gt_labels: np.ndarray
    tracker_labels: np.ndarray


def preprocess(frames: Sequence[tuple[MotRows, MotRows]]) -> TrackEvalSequence:
    """Lay out per-frame rows as TrackEval's ``MotChallenge2DBox.get_preprocessed_seq_data`` does.

    Similarities are computed by TrackEval's own IoU (``_BaseDataset._calculate_box_ious``, xywh) so
    that this path and the file path agree bit for bit. Distractor removal: Hungarian on IoU with
    pairs below 0.5 zeroed, a hypothesis assigned to a class-8 row is removed; then only class-1
    rows stay. Ids are relabelled to ``0 … n-1`` in sorted order of the original ids.

    Raises:
        ValueError: an id repeated within a frame (TrackEval rejects such files too).
    """
    gt_ids, trk_ids, sims = [], [], []
    for t, (gt, hyp) in enumerate(frames):
        _unique_or_raise(gt.ids, "ground-truth", t)
        _unique_or_raise(hyp.ids, "track", t)
        sim = _BaseDataset._calculate_box_ious(gt.xywh, hyp.xywh, box_format="xywh")  # (K, M) IoU
        keep_hyp = np.ones(len(hyp.ids), dtype=bool)
        if len(gt.ids) and len(hyp.ids):
            scores = sim.copy()
            scores[scores < MOT_IOU - _EPS] = 0.0
            rows, cols = linear_sum_assignment(-scores)
            matched = scores[rows, cols] > _EPS
            rows, cols = rows[matched], cols[matched]
            keep_hyp[cols[gt.classes[rows] == DISTRACTOR_CLASS]] = False
        keep_gt = gt.classes == PEDESTRIAN_CLASS
        gt_ids.append(gt.ids[keep_gt])
        trk_ids.append(hyp.ids[keep_hyp])
        sims.append(sim[np.ix_(keep_gt, keep_hyp)])
    gt_labels = np.unique(np.concatenate(gt_ids)) if gt_ids else np.zeros(0, np.int64)
    trk_labels = np.unique(np.concatenate(trk_ids)) if trk_ids else np.zeros(0, np.int64)
    data = dict(
        num_timesteps=len(frames),
        num_gt_ids=len(gt_labels),
        num_tracker_ids=len(trk_labels),
        num_gt_dets=int(sum(len(g) for g in gt_ids)),
        num_tracker_dets=int(sum(len(h) for h in trk_ids)),
        gt_ids=[np.searchsorted(gt_labels, g).astype(int) for g in gt_ids],
        tracker_ids=[np.searchsorted(trk_labels, h).astype(int) for h in trk_ids],
        similarity_scores=sims,
    )
    return TrackEvalSequence(data, gt_labels, trk_labels)


def identity_pairs(data: dict, threshold: float = MOT_IOU) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The global gt ↔ tracker assignment of TrackEval's ``Identity`` metric.

    Builds the same (G+T) × (G+T) cost as ``trackeval.metrics.Identity.eval_sequence`` — IDFN + IDFP
    of every pairing, with "unmatched" columns/rows for each id — and solves it with
    ``linear_sum_assignment``. Returns ``(gt_label, tracker_label, idtp)`` arrays of the pairs that
    share at least one frame at IoU ≥ ``threshold`` (a zero-IDTP pairing is no match).
    """
    n_gt, n_trk = data["num_gt_ids"], data["num_tracker_ids"]
    empty = np.zeros(0, dtype=int)
    if data["num_gt_dets"] == 0 or data["num_tracker_dets"] == 0:
        return empty, empty, empty
    potential = np.zeros((n_gt, n_trk))
    gt_count, trk_count = np.zeros(n_gt), np.zeros(n_trk)
    for gt_t, trk_t, sim in zip(data["gt_ids"], data["tracker_ids"], data["similarity_scores"]):
        gi, ti = np.nonzero(np.greater_equal(sim, threshold))
        potential[gt_t[gi], trk_t[ti]] += 1
        gt_count[gt_t] += 1
        trk_count[trk_t] += 1
    fp = np.zeros((n_gt + n_trk, n_gt + n_trk))
    fn = np.zeros((n_gt + n_trk, n_gt + n_trk))
    fp[n_gt:, :n_trk] = 1e10
    fn[:n_gt, n_trk:] = 1e10
    fn[:n_gt, :n_trk] = gt_count[:, None]  # IDFN if gt i is paired with tracker j: its unmatched frames
    fn[np.arange(n_gt), n_trk + np.arange(n_gt)] = gt_count
    fp[:n_gt, :n_trk] = trk_count[None, :]
    fp[n_gt + np.arange(n_trk), np.arange(n_trk)] = trk_count
    fn[:n_gt, :n_trk] -= potential
    fp[:n_gt, :n_trk] -= potential
    rows, cols = linear_sum_assignment(fn + fp)
    real = (rows < n_gt) & (cols < n_trk)
    rows, cols = rows[real], cols[real]
    idtp = potential[rows, cols].astype(int)
    keep = idtp > 0
    return rows[keep], cols[keep], idtp[keep]


@dataclass
class MotResult:
    """Metrics of one camera (keys in the module docstring) and its identity matching
    (track id → object id)."""

    metrics: dict[str, float | int]
    matching: dict[int, int]


def _config(**kw) -> dict:
    return {"PRINT_CONFIG": False, **kw}


def score_sequence(seq: TrackEvalSequence, num_frames: int) -> dict[str, float | int]:
    """TrackEval's CLEAR, Identity and HOTA on a preprocessed sequence, as :func:`mot_metrics` reports."""
    data = seq.data
    clear = CLEAR(_config(THRESHOLD=MOT_IOU)).eval_sequence(data)
    ident = Identity(_config(THRESHOLD=MOT_IOU)).eval_sequence(data)
    hota = HOTA().eval_sequence(data)
    return dict(
        idf1=float(ident["IDF1"]),
        mota=float(clear["MOTA"]),
        hota=float(np.mean(hota["HOTA"])),
        num_switches=int(clear["IDSW"]),
        num_frames=int(num_frames),
        num_gt_dets=int(data["num_gt_dets"]),
        num_hyp_dets=int(data["num_tracker_dets"]),
        idtp=int(ident["IDTP"]), idfp=int(ident["IDFP"]), idfn=int(ident["IDFN"]),
        clr_tp=int(clear["CLR_TP"]), clr_fp=int(clear["CLR_FP"]), clr_fn=int(clear["CLR_FN"]),
    )


def mot_evaluation(
    records: Sequence[FrameRecord], camera: str = "left", min_visibility: float = 0.25
) -> MotResult:
    """:func:`mot_metrics` and :func:`identity_matching` of one camera from one preprocessing.

    Raises:
        ValueError: unknown ``camera``, ``min_visibility`` outside [0, 1], records not consecutive,
        an id repeated within a frame.
    """
    check_camera(camera)
    check_unit("min_visibility", min_visibility)
    check_records(records)
    seq = preprocess(mot_rows(records, camera, min_visibility))
    gi, ti, _ = identity_pairs(seq.data)
    matching = {int(seq.tracker_labels[t]): int(seq.gt_labels[g]) for g, t in zip(gi, ti)}
    return MotResult(score_sequence(seq, len(records)), matching)


def mot_metrics(
    records: Sequence[FrameRecord], camera: str = "left", min_visibility: float = 0.25
) -> dict[str, float | int]:
    """CLEAR-MOT, Identity and HOTA of one camera's VISIBLE tracks (definitions: module docstring).

    Returns a dict with ``idf1``, ``mota``, ``hota``, ``num_switches``, ``num_frames``,
    ``num_gt_dets``, ``num_hyp_dets`` and the raw ID/CLEAR counts. With no ground truth (or no
    hypotheses) TrackEval's early returns stand: IDF1, MOTA and HOTA 0;
    :func:`metrics.evaluate_with_counts` leaves a camera without ground truth out of its mean.

    Raises:
        ValueError: unknown ``camera``, ``min_visibility`` outside [0, 1], records not consecutive,
        an id repeated within a frame.
    """
    return mot_evaluation(records, camera, min_visibility).metrics


def identity_matching(
    records: Sequence[FrameRecord], camera: str = "left", min_visibility: float = 0.25
) -> dict[int, int]:
    """The IDF1 identity matching of one camera: track id → the object id it is globally paired
    with (module docstring). Tracks absent from the dict stand for no object.

    Raises:
        ValueError: as :func:`mot_metrics`.
    """
    return mot_evaluation(records, camera, min_visibility).matching
