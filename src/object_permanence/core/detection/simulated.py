"""A simulator of an object detector, fed with the simulator's ground truth (for tracker evaluation).

It reproduces what matters downstream of a real detector: misses (random, and always below a
visibility threshold), box noise, a score distribution where real objects score higher than
nuisances on average but the two overlap, reflections and glare detected most of the time, and
hallucinated boxes. Output is deterministic per ``(seed, frame_index, camera)``, so left and right
streams are independent yet reproducible and frames can be replayed in any order.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from object_permanence.core.sim.scenarios import CLASS_NAMES
from object_permanence.core.types import Detection, GroundTruthObject, ObjectKind

CAMERA_CODES = {"left": 0, "right": 1}


@dataclass(frozen=True)
class SimulatedDetectorConfig:
    """Knobs of the simulated detector (scalars, so that a node can expose each as a parameter).

    miss_prob: chance that a real object with enough visibility is not reported, per frame.
    min_visibility: entries seen less than this fraction of their box are never reported.
    center_jitter_px: std of the Gaussian noise on the box centre, pixels.
    size_jitter_frac: std of the relative Gaussian noise on box width and height.
    object_score_mean: mean of the Beta-distributed scores of real objects.
    nuisance_score_mean: mean of the Beta-distributed scores of nuisances and random boxes
        (lower than objects', but the distributions overlap: scores alone do not separate them).
    score_concentration: a + b of both Beta distributions (larger: narrower).
    nuisance_detect_prob: chance that a visible reflection or glare is reported, per frame
        (ground-truth FALSE_POSITIVE entries are hallucinations: always reported).
    extra_false_positives_per_frame: Poisson mean of random boxes added per frame and camera.
    false_positive_min_px: smallest side of those random boxes, pixels.
    false_positive_max_px: largest side of those random boxes, pixels.
    seed: base seed of the per-frame generators.
    """

    miss_prob: float = 0.05
    min_visibility: float = 0.3
    center_jitter_px: float = 1.5
    size_jitter_frac: float = 0.03
    object_score_mean: float = 0.8
    nuisance_score_mean: float = 0.6
    score_concentration: float = 20.0
    nuisance_detect_prob: float = 0.7
    extra_false_positives_per_frame: float = 0.0
    false_positive_min_px: float = 20.0
    false_positive_max_px: float = 100.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("miss_prob", "min_visibility", "nuisance_detect_prob"):
            value = getattr(self, name)
            if not _is_number(value) or not 0.0 <= value <= 1.0:
                raise ValueError(f"SimulatedDetectorConfig: {name} must lie in [0, 1], got {value!r}")
        for name in ("object_score_mean", "nuisance_score_mean"):
            value = getattr(self, name)
            if not _is_number(value) or not 0.0 < value < 1.0:
                raise ValueError(f"SimulatedDetectorConfig: {name} must lie in (0, 1), got {value!r}")
        for name in ("center_jitter_px", "size_jitter_frac", "extra_false_positives_per_frame"):
            value = getattr(self, name)
            if not _is_number(value) or value < 0.0:
                raise ValueError(f"SimulatedDetectorConfig: {name} must be a finite number >= 0, got {value!r}")
        for name in ("score_concentration", "false_positive_min_px", "false_positive_max_px"):
            value = getattr(self, name)
            if not _is_number(value) or value <= 0.0:
                raise ValueError(f"SimulatedDetectorConfig: {name} must be a finite number > 0, got {value!r}")
        if self.false_positive_min_px > self.false_positive_max_px:
            raise ValueError(
                f"SimulatedDetectorConfig: false_positive_max_px={self.false_positive_max_px!r} must be >= "
                f"false_positive_min_px={self.false_positive_min_px!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ValueError(f"SimulatedDetectorConfig: seed must be a non-negative integer, got {self.seed!r}")

    def score_beta(self, mean: float) -> tuple[float, float]:
        """Beta (a, b) with the given mean and ``a + b = score_concentration``."""
        return mean * self.score_concentration, (1.0 - mean) * self.score_concentration


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class SimulatedDetector:
    """Turns per-camera ground truth into noisy detections (a detector simulator, not a detector)."""

    def __init__(self, config: SimulatedDetectorConfig | None = None) -> None:
        self.config = config if config is not None else SimulatedDetectorConfig()

    def detect(self, truth: list[GroundTruthObject], frame_index: int, camera: str,
               image_shape: tuple[int, int]) -> list[Detection]:
        """Detections of one camera image, sorted by decreasing score.

        truth: that camera's ground-truth entries; image_shape: (height, width) px. Boxes are
        ``cx, cy, w, h`` clipped to the image (never NaN); embedding is None.
        """
        if camera not in CAMERA_CODES:
            raise ValueError(f"SimulatedDetector.detect: camera must be one of {sorted(CAMERA_CODES)}, got {camera!r}")
        if isinstance(frame_index, bool) or not isinstance(frame_index, (int, np.integer)) or frame_index < 0:
            raise ValueError(
                f"SimulatedDetector.detect: frame_index must be a non-negative integer, got {frame_index!r}")
        if len(image_shape) < 2 or image_shape[0] <= 0 or image_shape[1] <= 0:
            raise ValueError(f"SimulatedDetector.detect: image_shape must be (height, width) > 0, got {image_shape!r}")
        cfg = self.config
        height, width = float(image_shape[0]), float(image_shape[1])
        rng = np.random.default_rng([cfg.seed, int(frame_index), CAMERA_CODES[camera]])
        n = len(truth)
        boxes = np.array([g.box for g in truth], dtype=np.float64).reshape(n, 4)
        kinds = np.array([int(g.kind) for g in truth], dtype=np.int64)
        visibility = np.array([g.visibility for g in truth], dtype=np.float64)
        class_ids = np.array([g.class_id for g in truth], dtype=np.int64)
        # one fixed set of draws per entry keeps each entry's fate independent of the others'
        uniform = rng.random(n)
        noise = rng.standard_normal((n, 4))
        object_scores = rng.beta(*cfg.score_beta(cfg.object_score_mean), size=n)
        nuisance_scores = rng.beta(*cfg.score_beta(cfg.nuisance_score_mean), size=n)

        is_object = kinds == int(ObjectKind.OBJECT)
        is_fp = kinds == int(ObjectKind.FALSE_POSITIVE)
        detect_prob = np.where(is_object, 1.0 - cfg.miss_prob, cfg.nuisance_detect_prob)
        seen = (visibility >= cfg.min_visibility) & np.isfinite(boxes).all(axis=1)
        keep = is_fp | (seen & (uniform < detect_prob))
        jittered = boxes.copy()
        jittered[:, :2] += cfg.center_jitter_px * noise[:, :2]  # c' = c + sigma n
        jittered[:, 2:] *= 1.0 + cfg.size_jitter_frac * noise[:, 2:]  # s' = s (1 + frac n)
        scores = np.where(is_object, object_scores, nuisance_scores)

        n_extra = int(rng.poisson(cfg.extra_false_positives_per_frame))
        sizes = rng.uniform(cfg.false_positive_min_px, cfg.false_positive_max_px, size=(n_extra, 2))
        centres = rng.uniform(0.0, 1.0, size=(n_extra, 2)) * np.array([width, height])
        extra_scores = rng.beta(*cfg.score_beta(cfg.nuisance_score_mean), size=n_extra)
        extra_classes = rng.integers(0, len(CLASS_NAMES), size=n_extra)

        keep &= np.isfinite(jittered).all(axis=1)
        all_boxes = np.concatenate([jittered[keep], np.hstack([centres, sizes])])
        all_scores = np.concatenate([scores[keep], extra_scores])
        all_classes = np.concatenate([class_ids[keep], extra_classes])
        clipped, valid = _clip_to_image(all_boxes, width, height)
        order = np.argsort(-all_scores[valid], kind="stable")
        return [Detection(box=box, score=float(score), class_id=int(cls), class_name=_class_name(int(cls)))
                for box, score, cls in zip(clipped[valid][order], all_scores[valid][order],
                                           all_classes[valid][order])]


def _clip_to_image(boxes: np.ndarray, width: float, height: float) -> tuple[np.ndarray, np.ndarray]:
    """Clip (N, 4) ``cx, cy, w, h`` boxes to the image; valid marks those at least 1 px wide and high."""
    x1 = np.clip(boxes[:, 0] - np.abs(boxes[:, 2]) / 2, 0.0, width)
    x2 = np.clip(boxes[:, 0] + np.abs(boxes[:, 2]) / 2, 0.0, width)
    y1 = np.clip(boxes[:, 1] - np.abs(boxes[:, 3]) / 2, 0.0, height)
    y2 = np.clip(boxes[:, 1] + np.abs(boxes[:, 3]) / 2, 0.0, height)
    clipped = np.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], axis=1)
    return clipped, (clipped[:, 2] >= 1.0) & (clipped[:, 3] >= 1.0)


def _class_name(class_id: int) -> str:
    return CLASS_NAMES[class_id] if 0 <= class_id < len(CLASS_NAMES) else str(class_id)
