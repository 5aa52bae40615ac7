"""The demo's metrics: every figure of ``out/demo/metrics.json`` from one list of records.

Each concept lives in its own module, where its definition (DESIGN §3, strict) is written out:

============================  =====================================================
``records.py``                :class:`FrameRecord`, consecutive records, "detected", "covers"
``mot.py``                    IDF1 / MOTA / HOTA via TrackEval; the IDF1 identity matching
``occlusion.py``              occlusion episodes, recovery, reacquire error
``ghosts.py``                 strict ghost precision
``persistence.py``            per-track persistence precision / recall / decision latency
``points3d.py``               spurious 3D points, true points lost, position RMSE
``latency.py``                pipeline latency percentiles
``export.py``                 raw MOTChallenge / CSV files and TrackEval re-scoring
============================  =====================================================

This module only aggregates them (:func:`evaluate_with_counts`) and keeps the names other tools
import from here (``FrameRecord``, ``mot_metrics``, ``occlusion_episodes``, ``ghost_counts``).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from object_permanence.core.eval.ghosts import ghost_counts, ghost_precision
from object_permanence.core.eval.latency import latency_percentiles
from object_permanence.core.eval.matching import CAMERAS
from object_permanence.core.eval.mot import identity_matching, mot_evaluation, mot_metrics
from object_permanence.core.eval.occlusion import occlusion_episodes, occlusion_recovery
from object_permanence.core.eval.persistence import persistence_counts, persistence_tracks
from object_permanence.core.eval.points3d import (
    DEPTH_BAND_3M,
    points3d_counts,
    position_rmse,
    position_rmse_per_frame,
    spurious_points,
)
from object_permanence.core.eval.records import CameraIndex, FrameRecord, check_records, ratio
from object_permanence.core.eval.spurious import CAUSES as SPURIOUS_CAUSES
from object_permanence.core.eval.spurious import spurious_causes

__all__ = [
    "METRIC_KEYS",
    "FrameRecord",
    "evaluate",
    "evaluate_with_counts",
    "ghost_counts",
    "ghost_precision",
    "identity_matching",
    "latency_percentiles",
    "mot_metrics",
    "occlusion_episodes",
    "occlusion_recovery",
    "position_rmse",
    "spurious_points",
]

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


def evaluate_with_counts(
    records: Sequence[FrameRecord],
) -> tuple[dict[str, float], dict[str, float | int]]:
    """All demo metrics (keys :data:`METRIC_KEYS`, finite floats) and their denominators.

    ``records`` must cover consecutive frame indices: a frame the pipeline dropped is a record with
    its ground truth and empty outputs, so it counts against the pipeline (ValueError on a gap).

    * ``idf1``, ``mota``, ``hota``: mean over the cameras that have ground truth (:func:`mot_metrics`).
    * ``id_switches_per_100_frames``: 100 · (switches_left + switches_right) / (2 · frames).
    * ``occlusion_recovery_rate``: recovered / episodes, both cameras pooled;
      ``reacquire_error_px``: mean of the pooled reacquire errors (:func:`occlusion_episodes`).
    * ``ghost_precision``: correct / all ghosts of the tracks the persistence filter kept (the
      published output), both cameras pooled (:func:`ghost_counts` with ``kept_only``); the counts
      also give the world model's figure over all its ghosts (``ghosts_all*``).
    * ``spurious_points_*``: counts of spurious 3D points (``points3d.py``); the counts split them
      by cause (``spurious_unfiltered_<cause>``, ``spurious_filtered_<cause>``: ``spurious.py``);
      ``persistence_precision`` / ``_recall``: per track, final decision (``persistence.py``);
      ``position_rmse_m``: :func:`position_rmse`; ``latency_ms_*``: :func:`latency_percentiles`.
      The counts add :func:`position_rmse_per_frame` (``position_rmse_per_frame_m``, and
      ``position_rmse_per_frame_3m_m`` for objects at a true depth of 3 ± 0.5 m: the 3D bar's
      figure), each with its samples and its unscored (unlinked) points.

    Every undefined ratio is 0.0; the counts dict (ints, and a few floats: per-camera scores,
    F1, latency percentiles in frames, fractions) says which denominators were empty.

    Raises:
        ValueError: records not consecutive, an id repeated within a frame.
    """
    check_records(records)
    n = len(records)
    indexes = {cam: CameraIndex(records, cam) for cam in CAMERAS}
    mot = {cam: mot_evaluation(records, cam) for cam in CAMERAS}
    counts: dict[str, float | int] = {"frames": n}
    episodes = recovered = 0
    errors: list[float] = []
    ghosts = {"ghosts": 0, "ghosts_correct": 0, "ghosts_all": 0, "ghosts_all_correct": 0}
    for cam in CAMERAS:
        m = mot[cam].metrics
        counts.update({f"gt_dets_{cam}": m["num_gt_dets"], f"hyp_dets_{cam}": m["num_hyp_dets"],
                       f"id_switches_{cam}": m["num_switches"], f"idf1_{cam}": m["idf1"],
                       f"mota_{cam}": m["mota"], f"hota_{cam}": m["hota"]})
        n_rec, n_ep, errs = occlusion_episodes(records, cam, index=indexes[cam])
        recovered, episodes, errors = recovered + n_rec, episodes + n_ep, errors + errs
        for kept_only, key in ((True, "ghosts"), (False, "ghosts_all")):
            n_ok, n_g = ghost_counts(records, cam, mot[cam].matching, kept_only=kept_only, index=indexes[cam])
            ghosts[key] += n_g
            ghosts[f"{key}_correct"] += n_ok
    tracks = persistence_tracks(records, indexes=indexes)
    decisions = persistence_counts(records, indexes=indexes)
    points = points3d_counts(records)
    causes: dict[str, int] = {}
    for output, filtered in (("unfiltered", False), ("filtered", True)):
        by_cause = spurious_causes(records, indexes, filtered)
        causes.update({f"spurious_{output}_{cause}": by_cause[cause] for cause in SPURIOUS_CAUSES})
    rmse, n_rmse = position_rmse(records, mot["left"].matching)
    per_frame = position_rmse_per_frame(records, index=indexes["left"])
    per_frame_3m = position_rmse_per_frame(records, DEPTH_BAND_3M, index=indexes["left"])
    p50, p95, n_lat = latency_percentiles(records)
    counts.update(
        occlusion_episodes=episodes,
        occlusion_recovered=recovered,
        reacquire_error_samples=len(errors),
        reacquire_error_missing=episodes - len(errors),
        **ghosts,
        **tracks.as_counts(),
        persistence_decisions=decisions.decisions,
        persistence_decisions_kept=decisions.kept,
        persistence_decisions_real=decisions.real,
        persistence_decisions_kept_real=decisions.kept_real,
        persistence_decision_precision=decisions.precision,
        persistence_decision_recall=decisions.recall,
        points3d_unfiltered=points.points_unfiltered,
        points3d_filtered=points.points_filtered,
        true_points_unfiltered=points.true_unfiltered,
        true_points_filtered=points.true_filtered,
        true_points_lost=points.true_lost,
        spurious_points_cut=ratio(points.spurious_unfiltered - points.spurious_filtered,
                                  points.spurious_unfiltered),
        true_points_lost_fraction=ratio(points.true_lost, points.true_unfiltered),
        **causes,
        rmse_samples=n_rmse,
        position_rmse_per_frame_m=per_frame.rmse_m,
        position_rmse_per_frame_samples=per_frame.samples,
        position_rmse_per_frame_unlinked=per_frame.unlinked,
        position_rmse_per_frame_3m_m=per_frame_3m.rmse_m,
        position_rmse_per_frame_3m_samples=per_frame_3m.samples,
        position_rmse_per_frame_3m_unlinked=per_frame_3m.unlinked,
        latency_samples=n_lat,
    )
    scored = [mot[cam].metrics for cam in CAMERAS if mot[cam].metrics["num_gt_dets"] > 0]
    metrics = {
        "frames": float(n),
        "idf1": float(np.mean([m["idf1"] for m in scored])) if scored else 0.0,
        "mota": float(np.mean([m["mota"] for m in scored])) if scored else 0.0,
        "hota": float(np.mean([m["hota"] for m in scored])) if scored else 0.0,
        "id_switches_per_100_frames": 100.0 * ratio(
            sum(mot[cam].metrics["num_switches"] for cam in CAMERAS), len(CAMERAS) * n),
        "occlusion_recovery_rate": ratio(recovered, episodes),
        "ghost_precision": ratio(ghosts["ghosts_correct"], ghosts["ghosts"]),
        "reacquire_error_px": float(np.mean(errors)) if errors else 0.0,
        "spurious_points_unfiltered": float(points.spurious_unfiltered),
        "spurious_points_filtered": float(points.spurious_filtered),
        "persistence_precision": tracks.precision,
        "persistence_recall": tracks.recall,
        "position_rmse_m": rmse,
        "latency_ms_p50": p50,
        "latency_ms_p95": p95,
    }
    return metrics, counts


def evaluate(records: Sequence[FrameRecord]) -> dict[str, float]:
    """The ``out/demo/metrics.json`` dict: every key of :data:`METRIC_KEYS` as a finite float."""
    return evaluate_with_counts(records)[0]
