"""A simulator of an object detector, fed with the simulator's ground truth (for tracker evaluation).

Still a simulator, not a detector: it turns one camera's ground truth into the detections a real
detector would plausibly report, with the faults that matter downstream:

* boxes around the *visible* part of each entry (cut by occluders and the image border), with noise
  proportional to the box size and occasional outliers;
* misses whose chance rises with the hidden fraction and falls with the visible size (nothing below
  a minimum visible size or visibility), in bursts (a per-entry on/off Markov chain) and correlated
  between the two views (the chain is shared by the cameras);
* a persistent confidence level per entry (some real objects are always low) with frame noise on
  top, lowered by occlusion; reflections inherit their source's class and level (a little lower);
* glare and the world's false positives with confidences overlapping the objects', plus random
  single-frame boxes; class confusion between similar classes for a few frames; duplicate boxes
  on one entry; two heavily overlapping objects reported as one box.

Every rate is a field of :class:`SimulatedDetectorConfig` (presets ``easy | realistic | hard | sim_yolo``).
``detect`` is a pure function of (config, frame_index, camera, truth): no state is kept between
calls, so frames can be replayed in any order with the same result. All draws are counter-based,
keyed by (seed, purpose, entry id, frame, camera), so one entry's fate does not depend on the others.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
from scipy.special import betaincinv, expit, logit, ndtri

from object_permanence.core.detection import counter_random as cr
from object_permanence.core.detection import sim_detector_boxes as boxes_
from object_permanence.core.detection.sim_detector_config import (
    DIFFICULTIES,
    PRESETS,
    SimulatedDetectorConfig,
)
from object_permanence.core.detection.sim_detector_latent import (
    confidence_levels,
    confused_classes,
    detectability,
    frame_scores,
)
from object_permanence.core.sim.scenarios import CLASS_NAMES
from object_permanence.core.types import Detection, GroundTruthObject, ObjectKind

__all__ = ["CAMERA_CODES", "DIFFICULTIES", "PRESETS", "Origin", "SimulatedDetector", "SimulatedDetectorConfig",
           "TracedDetection", "miss_probability", "nuisance_report_chance"]

CAMERA_CODES = {"left": 0, "right": 1}
_PROB_EPS = 1e-9  # miss chances of 0 or 1 are taken as this far inside (0, 1) for the logit

# salts of the per-frame draws (apart from sim_detector_latent's)
_SALT_FRAME_DRAWS, _SALT_MERGE, _SALT_EXTRA_COUNT, _SALT_EXTRA = range(200, 204)
# columns of the per-(frame, camera, entry) uniforms: one hash call draws them all
_SCORE_NOISE, _OUTLIER, _DUPLICATE, _DUPLICATE_SCORE, _NUISANCE = 0, 1, 2, 3, 4
_JITTER, _OUTLIER_ERROR, _DUPLICATE_BOX = slice(5, 9), slice(9, 13), slice(13, 18)
_N_DRAWS = 18


class Origin(IntEnum):
    """Where a simulated detection comes from (for evaluating the simulator itself)."""

    TRUTH = 0  # the box of one ground-truth entry
    DUPLICATE = 1  # a second, lower-scoring box on one entry
    MERGED = 2  # one box covering two overlapping objects
    HALLUCINATED = 3  # a random box of the simulator's own, in no ground-truth entry


@dataclass
class TracedDetection:
    """A detection with its provenance: ``truth_ids`` are the ids of the ground-truth entries it
    was made from (two for a merge, none for a hallucination)."""

    detection: Detection
    origin: Origin
    truth_ids: tuple[int, ...]


@dataclass
class _Entries:
    """One camera's ground truth as arrays: ids, kinds, class_ids, visibility, source_ids (N,);
    boxes (N, 4) ``cx, cy, w, h`` of the visible part."""

    ids: np.ndarray
    kinds: np.ndarray
    class_ids: np.ndarray
    boxes: np.ndarray
    visibility: np.ndarray
    source_ids: np.ndarray

    @classmethod
    def from_truth(cls, truth: list[GroundTruthObject]) -> _Entries:
        """Arrays of ``truth``. An entry with some visibility but no visible box (all zeros: ground
        truth from a source that does not compute it, e.g. an older bag) is boxed at its amodal box."""
        n = len(truth)
        visible = np.array([g.visible_box for g in truth], dtype=np.float64).reshape(n, 4)
        amodal = np.array([g.box for g in truth], dtype=np.float64).reshape(n, 4)
        visibility = np.array([g.visibility for g in truth], dtype=np.float64)
        unset = ~((visible[:, 2] > 0.0) & (visible[:, 3] > 0.0)) & (visibility > 0.0)
        return cls(ids=np.array([g.object_id for g in truth], dtype=np.int64),
                   kinds=np.array([int(g.kind) for g in truth], dtype=np.int64),
                   class_ids=np.array([g.class_id for g in truth], dtype=np.int64),
                   boxes=np.where(unset[:, None], amodal, visible), visibility=visibility,
                   source_ids=np.array([g.source_id for g in truth], dtype=np.int64))


def miss_probability(config: SimulatedDetectorConfig, kinds: np.ndarray, visibility: np.ndarray,
                     visible_boxes: np.ndarray) -> np.ndarray:
    """(N,) chance that each entry goes unreported in one frame and camera.

    kinds: (N,) ObjectKind values; visibility: (N,) in [0, 1]; visible_boxes: (N, 4) px.
    Objects, reflections and glare: logit p = logit p_vis + (logit p_half - logit p_vis) 2 h +
    k log2(s_ref / s), with h the hidden fraction and s the square root of the visible box's area;
    1 below min_visibility or min_visible_px. (Reflections and glare are further thinned by their
    detect chances, independently: see :func:`nuisance_report_chance`.) The world's false positives
    (hallucinations) are always reported while in the image: 0.
    """
    kinds = np.asarray(kinds)
    visibility = np.asarray(visibility, dtype=np.float64)
    w, h = np.clip(visible_boxes[:, 2], 0.0, None), np.clip(visible_boxes[:, 3], 0.0, None)
    hidden = np.clip(1.0 - visibility, 0.0, 1.0)
    size = np.sqrt(w * h)
    logit_visible = logit(np.clip(config.miss_prob_visible, _PROB_EPS, 1.0 - _PROB_EPS))
    logit_half = logit(np.clip(config.miss_prob_half_hidden, _PROB_EPS, 1.0 - _PROB_EPS))
    with np.errstate(divide="ignore"):
        size_term = config.miss_logit_per_halving * np.log2(config.miss_size_ref_px / np.maximum(size, 1e-6))
    p = expit(logit_visible + (logit_half - logit_visible) * 2.0 * hidden + size_term)
    is_fp = kinds == int(ObjectKind.FALSE_POSITIVE)
    too_little = (visibility < config.min_visibility) | (np.minimum(w, h) < config.min_visible_px)
    unseen = (visibility <= 0.0) | ~np.isfinite(visible_boxes).all(axis=1) | (too_little & ~is_fp)
    return np.where(unseen, 1.0, np.where(is_fp, 0.0, p))


def nuisance_report_chance(config: SimulatedDetectorConfig, kinds: np.ndarray) -> np.ndarray:
    """(N,) chance that a detectable entry is reported, drawn per frame and camera independently of
    the misses and the score (so the reported nuisances keep their level): reflection_detect_prob
    for reflections, glare_detect_prob for glare, 1 otherwise."""
    kinds = np.asarray(kinds)
    return np.where(kinds == int(ObjectKind.REFLECTION), config.reflection_detect_prob,
                    np.where(kinds == int(ObjectKind.GLARE), config.glare_detect_prob, 1.0))


class SimulatedDetector:
    """Turns per-camera ground truth into detections a real detector would plausibly report
    (a detector simulator, not a detector)."""

    def __init__(self, config: SimulatedDetectorConfig | None = None) -> None:
        if config is not None and not isinstance(config, SimulatedDetectorConfig):
            raise ValueError(
                f"SimulatedDetector: config must be a SimulatedDetectorConfig, got {type(config).__name__}")
        self.config = config if config is not None else SimulatedDetectorConfig()

    def detect(self, truth: list[GroundTruthObject], frame_index: int, camera: str,
               image_shape: tuple[int, int]) -> list[Detection]:
        """Detections of one camera image, sorted by decreasing score.

        truth: that camera's ground-truth entries; image_shape: (height, width) px. Boxes are
        ``cx, cy, w, h`` clipped to the image (never NaN); embedding is None.

        Raises:
            ValueError: unknown camera, negative frame_index or an empty image_shape.
        """
        return [traced.detection for traced in self.detect_traced(truth, frame_index, camera, image_shape)]

    def detect_traced(self, truth: list[GroundTruthObject], frame_index: int, camera: str,
                      image_shape: tuple[int, int]) -> list[TracedDetection]:
        """:meth:`detect` with each detection's provenance (same detections, same order)."""
        _check_arguments(frame_index, camera, image_shape)
        cfg, k, cam = self.config, int(frame_index), CAMERA_CODES[camera]
        height, width = float(image_shape[0]), float(image_shape[1])
        e = _Entries.from_truth(truth)
        ids = e.ids
        detectable = detectability(cfg, ids, k, cam)
        u = cr.uniform(cfg.seed, _SALT_FRAME_DRAWS, k, cam, ids[:, None], np.arange(_N_DRAWS)[None, :])  # (N, D)
        reported = (detectable >= miss_probability(cfg, e.kinds, e.visibility, e.boxes)) & (
            u[:, _NUISANCE] < nuisance_report_chance(cfg, e.kinds))
        identity = np.where((e.kinds == int(ObjectKind.REFLECTION)) & (e.source_ids > 0), e.source_ids, ids)
        levels = confidence_levels(cfg, ids, e.kinds, e.source_ids)
        share = cfg.score_detectability_share  # n = sqrt(r) Phi^-1(detectability) + sqrt(1 - r) n_frame ~ N(0, 1)
        noise = np.sqrt(share) * ndtri(detectable) + np.sqrt(1.0 - share) * ndtri(u[:, _SCORE_NOISE])
        scores = frame_scores(cfg, levels, 1.0 - e.visibility, noise)
        classes = confused_classes(cfg, identity, e.class_ids, k)
        boxes = boxes_.jitter(e.boxes, cfg.box_noise_frac, ndtri(u[:, _JITTER]), u[:, _OUTLIER] < cfg.box_outlier_prob,
                              u[:, _OUTLIER_ERROR])

        out = _Output()
        rows = np.flatnonzero(reported)
        merged = self._merge(e, rows, boxes, scores, classes, k, out)
        single = np.setdiff1d(rows, merged)
        out.add(boxes[single], scores[single], classes[single], Origin.TRUTH, [(int(i),) for i in ids[single]])
        twin = single[u[single, _DUPLICATE] < cfg.duplicate_prob]
        low, high = boxes_.DUPLICATE_SCORE_RATIO
        out.add(boxes_.duplicates(boxes[twin], u[twin][:, _DUPLICATE_BOX]),
                scores[twin] * (low + (high - low) * u[twin, _DUPLICATE_SCORE]), classes[twin], Origin.DUPLICATE,
                [(int(i),) for i in ids[twin]])
        self._hallucinate(k, cam, width, height, out)
        return out.finish(cfg.score_threshold, width, height)

    def _merge(self, e: _Entries, rows: np.ndarray, boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray,
               frame: int, out: _Output) -> np.ndarray:
        """Report pairs of heavily overlapping reported objects as one box each; returns the rows merged.

        The pair's draw is keyed by both ids and the frame, not the camera: the views merge together
        when both see the overlap. The merged box covers both noisy boxes and takes the class of the
        higher-scoring one and its score.
        """
        cfg = self.config
        objects = rows[e.kinds[rows] == int(ObjectKind.OBJECT)]
        if cfg.merge_prob == 0.0 or len(objects) < 2:
            return np.zeros(0, dtype=np.int64)
        ids = e.ids[objects]
        lo, hi = np.minimum.outer(ids, ids), np.maximum.outer(ids, ids)
        chosen = cr.uniform(cfg.seed, _SALT_MERGE, frame, lo, hi) < cfg.merge_prob
        pairs = boxes_.merge_pairs(e.boxes[objects], ids, cfg.merge_min_iou, chosen)
        if not pairs:
            return np.zeros(0, dtype=np.int64)
        first, second = (objects[np.array(side)] for side in zip(*pairs))
        lead = np.where(scores[first] >= scores[second], first, second)
        out.add(boxes_.union(boxes[first], boxes[second]), scores[lead], classes[lead], Origin.MERGED,
                [(int(a), int(b)) for a, b in zip(e.ids[first], e.ids[second])])
        return np.concatenate([first, second])

    def _hallucinate(self, frame: int, camera: int, width: float, height: float, out: _Output) -> None:
        """Random single-frame boxes of the simulator's own (Poisson count per frame and camera)."""
        cfg = self.config
        count = int(cr.poisson(cr.uniform(cfg.seed, _SALT_EXTRA_COUNT, frame, camera),
                               cfg.extra_false_positives_per_frame))
        u = cr.uniform(cfg.seed, _SALT_EXTRA, frame, camera, np.arange(count)[:, None], np.arange(6)[None, :])
        sizes = cfg.false_positive_min_px + (cfg.false_positive_max_px - cfg.false_positive_min_px) * u[:, 0:2]
        centres = u[:, 2:4] * np.array([width, height])
        mean, total = cfg.false_positive_score_mean, cfg.level_concentration
        scores = betaincinv(mean * total, (1.0 - mean) * total, u[:, 4])  # Beta with E = a / (a + b)
        classes = np.minimum((u[:, 5] * len(CLASS_NAMES)).astype(np.int64), len(CLASS_NAMES) - 1)
        out.add(np.hstack([centres, sizes]), scores, classes, Origin.HALLUCINATED, [()] * count)


class _Output:
    """Detections being assembled for one image (boxes, scores, classes, provenance)."""

    def __init__(self) -> None:
        self._parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self._truth_ids: list[tuple[int, ...]] = []

    def add(self, boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, origin: Origin,
            truth_ids: list[tuple[int, ...]]) -> None:
        self._parts.append((boxes.reshape(-1, 4), np.asarray(scores, dtype=np.float64).ravel(),
                            np.asarray(classes, dtype=np.int64).ravel(), np.full(len(truth_ids), int(origin))))
        self._truth_ids += truth_ids

    def finish(self, threshold: float, width: float, height: float) -> list[TracedDetection]:
        """Drop boxes scoring under ``threshold`` or degenerate once clipped; sort by decreasing score."""
        boxes, scores, classes, origins = (np.concatenate(column) for column in zip(*self._parts))
        clipped, valid = boxes_.clip_to_image(boxes, width, height)
        keep = np.flatnonzero(valid & (scores >= threshold))
        keep = keep[np.argsort(-scores[keep], kind="stable")]
        return [TracedDetection(Detection(box=clipped[i], score=float(scores[i]), class_id=int(classes[i]),
                                          class_name=_class_name(int(classes[i]))),
                                Origin(int(origins[i])), self._truth_ids[i]) for i in keep.tolist()]


def _check_arguments(frame_index: int, camera: str, image_shape: tuple[int, int]) -> None:
    if camera not in CAMERA_CODES:
        raise ValueError(f"SimulatedDetector.detect: camera must be one of {sorted(CAMERA_CODES)}, got {camera!r}")
    if isinstance(frame_index, bool) or not isinstance(frame_index, (int, np.integer)) or frame_index < 0:
        raise ValueError(f"SimulatedDetector.detect: frame_index must be a non-negative integer, got {frame_index!r}")
    if len(image_shape) < 2 or image_shape[0] <= 0 or image_shape[1] <= 0:
        raise ValueError(f"SimulatedDetector.detect: image_shape must be (height, width) > 0, got {image_shape!r}")


def _class_name(class_id: int) -> str:
    return CLASS_NAMES[class_id] if 0 <= class_id < len(CLASS_NAMES) else str(class_id)
