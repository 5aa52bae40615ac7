"""What the detector simulator produces on a simulated world: recall by visibility, miss bursts,
cross-view miss correlation, scores by kind, duplicates, merges, class confusions.

For documenting and checking the simulator (``detector_statistics(world, detector, frames)``),
not for evaluating trackers. Detections are attributed to ground truth through their provenance
(:meth:`SimulatedDetector.detect_traced`), so the figures describe the simulator's own decisions.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from object_permanence.core.detection.simulated import CAMERA_CODES, Origin, SimulatedDetector
from object_permanence.core.sim import SimWorld
from object_permanence.core.types import ObjectKind

VISIBILITY_BUCKETS = (0.0, 0.25, 0.5, 0.75, 1.0)  # recall is reported per (low, high] bucket
WELL_SEEN = 0.75  # miss runs and the cross-view correlation use frames at least this visible


@dataclass
class DetectorStatistics:
    """Figures of one run of the simulator over a world's frames (both cameras).

    recall: share of (object, camera, frame) entries with visibility > 0 that some detection
    covers (its own box, a duplicate or a merged box); recall_by_visibility: the same per
    VISIBILITY_BUCKETS bucket, keyed ``"(low, high]"``, NaN where a bucket is empty.
    miss_rate_well_seen: miss rate at visibility >= WELL_SEEN; miss_run_mean: mean length (frames)
    of runs of consecutive misses there; independent_run_bound: 1 / (1 - p) with p that rate, the
    mean run length independent misses would give. lr_miss_correlation: correlation (phi) of the
    left and right miss indicators of objects well seen in both views.
    score_mean: mean score per source ("object", "reflection", "glare", "false_positive",
    "hallucinated"), NaN where none was reported; counts: detections per Origin name, plus
    "class_confusions" (detections of one entry with another class than its truth).
    """

    frames: int
    recall: float
    recall_by_visibility: dict[str, float]
    miss_rate_well_seen: float
    miss_run_mean: float
    independent_run_bound: float
    lr_miss_correlation: float
    score_mean: dict[str, float]
    counts: dict[str, int] = field(default_factory=dict)

    def to_markdown(self) -> str:
        """The figures as a two-column Markdown table."""
        rows = [("frames", f"{self.frames}"), ("recall of visible objects", f"{self.recall:.3f}")]
        rows += [(f"recall, visibility {bucket}", f"{value:.3f}")
                 for bucket, value in self.recall_by_visibility.items()]
        rows += [(f"miss rate, visibility >= {WELL_SEEN}", f"{self.miss_rate_well_seen:.3f}"),
                 ("mean miss-run length (frames)", f"{self.miss_run_mean:.2f}"),
                 ("same, if misses were independent: 1 / (1 - p)", f"{self.independent_run_bound:.2f}"),
                 ("left/right miss correlation", f"{self.lr_miss_correlation:.3f}")]
        rows += [(f"mean score, {name}", f"{value:.3f}") for name, value in self.score_mean.items()]
        rows += [(f"count, {name}", f"{value}") for name, value in self.counts.items()]
        return "\n".join(["| figure | value |", "|---|---|"] + [f"| {a} | {b} |" for a, b in rows])


def detector_statistics(world: SimWorld, detector: SimulatedDetector,
                        frames: int | Iterable[int]) -> DetectorStatistics:
    """Run ``detector`` on ``frames`` (a count from frame 0, or frame indices in order) of ``world``.

    Raises:
        ValueError: no frames.
    """
    indices = list(range(frames)) if isinstance(frames, int) else [int(k) for k in frames]
    if not indices:
        raise ValueError(f"detector_statistics: frames must name at least one frame, got {frames!r}")
    shape = (world.rig.height, world.rig.width)
    n_objects = len(world.objects)
    visibility = np.zeros((len(indices), 2, n_objects))  # (T, camera, object), ids 1..N
    detected = np.zeros((len(indices), 2, n_objects), dtype=bool)
    scores: dict[str, list[float]] = {name: [] for name in ("object", "reflection", "glare", "false_positive",
                                                            "hallucinated")}
    counts = {origin.name.lower(): 0 for origin in Origin} | {"class_confusions": 0}
    for t, k in enumerate(indices):
        truth = world.ground_truth(k)
        for camera, cam in CAMERA_CODES.items():
            entries = {g.object_id: g for g in getattr(truth, camera)}
            for g in entries.values():
                if g.kind == ObjectKind.OBJECT:
                    visibility[t, cam, g.object_id - 1] = g.visibility
            for traced in detector.detect_traced(list(entries.values()), k, camera, shape):
                counts[traced.origin.name.lower()] += 1
                for object_id in traced.truth_ids:
                    if entries[object_id].kind == ObjectKind.OBJECT:
                        detected[t, cam, object_id - 1] = True
                if traced.origin == Origin.HALLUCINATED:
                    scores["hallucinated"].append(traced.detection.score)
                elif traced.origin == Origin.TRUTH:
                    source = entries[traced.truth_ids[0]]
                    scores[source.kind.name.lower()].append(traced.detection.score)
                    counts["class_confusions"] += int(traced.detection.class_id != source.class_id)
    return _summarise(len(indices), visibility, detected, scores, counts)


def _summarise(n_frames: int, visibility: np.ndarray, detected: np.ndarray, scores: dict[str, list[float]],
               counts: dict[str, int]) -> DetectorStatistics:
    """Figures from (T, 2, N) visibility and detected flags, scores by source and counts."""
    visible = visibility > 0.0
    by_bucket = {}
    for low, high in zip(VISIBILITY_BUCKETS[:-1], VISIBILITY_BUCKETS[1:]):
        inside = (visibility > low) & (visibility <= high)
        by_bucket[f"({low}, {high}]"] = float(detected[inside].mean()) if inside.any() else float("nan")
    well = visibility >= WELL_SEEN
    missed = well & ~detected
    miss_rate = float(missed.sum() / max(well.sum(), 1))
    runs = _run_lengths(missed)
    both = well[:, 0] & well[:, 1]
    return DetectorStatistics(
        frames=n_frames,
        recall=float(detected[visible].mean()) if visible.any() else float("nan"),
        recall_by_visibility=by_bucket,
        miss_rate_well_seen=miss_rate,
        miss_run_mean=float(runs.mean()) if runs.size else float("nan"),
        independent_run_bound=1.0 / (1.0 - miss_rate) if miss_rate < 1.0 else float("inf"),
        lr_miss_correlation=_phi(missed[:, 0][both], missed[:, 1][both]),
        score_mean={name: float(np.mean(values)) if values else float("nan") for name, values in scores.items()},
        counts=counts)


def _run_lengths(flags: np.ndarray) -> np.ndarray:
    """Lengths of the runs of True along axis 0 of a (T, ...) bool array, every column apart."""
    columns = flags.reshape(flags.shape[0], -1).T.astype(np.int8)  # (columns, T)
    padded = np.pad(columns, ((0, 0), (1, 1)))
    edges = np.diff(padded, axis=1)  # +1 where a run starts, -1 one past where it ends
    starts, ends = np.nonzero(edges == 1), np.nonzero(edges == -1)
    return ends[1] - starts[1]  # np.nonzero orders by row then column, so starts and ends pair up


def _phi(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two bool arrays (the phi coefficient); NaN when one is constant."""
    if a.size == 0 or a.all() == a.any() or b.all() == b.any():
        return float("nan")
    return float(np.corrcoef(a.astype(float), b.astype(float))[0, 1])
