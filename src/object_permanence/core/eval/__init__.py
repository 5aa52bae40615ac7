"""Evaluation against the simulator's ground truth: strict metrics, one concept per module
(see ``metrics.py`` for the map), and raw files that TrackEval re-scores (``export.py``)."""
from object_permanence.core.eval.export import ExportedFiles, export_raw_outputs, rescore_trackeval
from object_permanence.core.eval.ghosts import ghost_counts, ghost_precision
from object_permanence.core.eval.latency import latency_percentiles
from object_permanence.core.eval.matching import TrackToTruth, box_iou, frame_links, match_frame
from object_permanence.core.eval.metrics import METRIC_KEYS, evaluate, evaluate_with_counts
from object_permanence.core.eval.mot import identity_matching, mot_evaluation, mot_metrics
from object_permanence.core.eval.occlusion import find_episodes, occlusion_episodes, occlusion_recovery
from object_permanence.core.eval.persistence import (
    PersistenceCounts,
    PersistenceTrackCounts,
    persistence_counts,
    persistence_tracks,
)
from object_permanence.core.eval.points3d import (
    Points3DCounts,
    points3d_counts,
    position_rmse,
    spurious_points,
    true_points_lost,
)
from object_permanence.core.eval.records import CameraIndex, FrameRecord

__all__ = [
    "METRIC_KEYS",
    "CameraIndex",
    "ExportedFiles",
    "FrameRecord",
    "PersistenceCounts",
    "PersistenceTrackCounts",
    "Points3DCounts",
    "TrackToTruth",
    "box_iou",
    "evaluate",
    "evaluate_with_counts",
    "export_raw_outputs",
    "find_episodes",
    "frame_links",
    "ghost_counts",
    "ghost_precision",
    "identity_matching",
    "latency_percentiles",
    "match_frame",
    "mot_evaluation",
    "mot_metrics",
    "occlusion_episodes",
    "occlusion_recovery",
    "persistence_counts",
    "persistence_tracks",
    "points3d_counts",
    "position_rmse",
    "rescore_trackeval",
    "spurious_points",
    "true_points_lost",
]
