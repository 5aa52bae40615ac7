"""Real ground truth as a tracking benchmark: TUD-Campus (MOT15) turned into detections.

``shared/data/mot/TUD-Campus/gt.txt`` is MOTChallenge 2D MOT 2015 ground truth: 71 frames of a
640x480, 25 fps sequence, 8 pedestrians, no images. In that (older) layout the columns after
``conf`` are world coordinates (``-1``), not class and visibility as in MOT16+, so every row is a
pedestrian seen in full (visibility 1.0 here).

The benchmark feeds the trackers the ground truth made to look like a detector's output
(:func:`perturb_ground_truth`): a third of the identities lose their detections for one window of
1–30 consecutive frames (what a tracker must bridge), every box is jittered by 3 % of its size on
position and size, clutter boxes (about 5 % of the real box count) are added at random, and
scores are drawn as a detector's (real boxes higher on average than clutter, overlapping). All
of it is deterministic for a seed; the evaluation uses held-out seeds (>= 1000).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from object_permanence.core.eval.mot_io import MotFormatError, read_mot_array, xywh_to_cxcywh
from object_permanence.core.eval.sequences import CameraStream, EvalSequence
from object_permanence.core.types import Detection, GroundTruthObject, ObjectKind

DATASET = "TUD-Campus"
#: The sequence's frame rate (Hz) and image size (width, height) px (MOT15 seqinfo).
FPS = 25.0
IMAGE_SIZE = (640, 480)
#: Difficulty label of the real sequence in the evaluation's rows.
DIFFICULTY = "real"

_SALT = 0x7D0C  # separates these draws from any other use of the same seed


@dataclass(frozen=True)
class MotGroundTruth:
    """MOT ground truth rows: frames (N,) 1-based ints, ids (N,) ints, boxes (N, 4) ``cx, cy, w, h`` px."""

    frames: np.ndarray
    ids: np.ndarray
    boxes: np.ndarray

    @property
    def n_frames(self) -> int:
        """The last frame number (frames run 1..n_frames)."""
        return int(self.frames.max()) if self.frames.size else 0


def load_mot15_ground_truth(path: Path) -> MotGroundTruth:
    """Read MOT15 ground truth (``frame,id,x,y,w,h,conf,wx,wy,wz``); rows with ``conf == 0``
    (marked "ignore") are dropped, world coordinates are ignored.

    Raises:
        MotFormatError: a malformed line (file and line named), an id that is not a positive
            integer or a box without positive size.
        OSError: the file cannot be read.
    """
    rows = read_mot_array(path)
    rows = rows[rows[:, 6] != 0]
    bad_id = ~((rows[:, 1] >= 1) & (rows[:, 1] == np.round(rows[:, 1])))
    bad_box = ~((rows[:, 4] > 0) & (rows[:, 5] > 0))
    if np.any(bad_id | bad_box):
        i = int(np.flatnonzero(bad_id | bad_box)[0])
        raise MotFormatError(f"{path}: row {i + 1} (frame {rows[i, 0]:.0f}) has id {rows[i, 1]:g} and size "
                             f"{rows[i, 4]:g}x{rows[i, 5]:g}; ids must be integers >= 1 and sizes positive")
    order = np.lexsort((rows[:, 1], rows[:, 0]))
    rows = rows[order]
    return MotGroundTruth(frames=rows[:, 0].astype(np.int64), ids=rows[:, 1].astype(np.int64),
                          boxes=xywh_to_cxcywh(rows[:, 2:6]))


@dataclass(frozen=True)
class Perturbation:
    """How ground truth is made to look like detections.

    dropout_id_fraction: fraction of the identities (rounded to the nearest count) that get one
        dropout window; dropout_frames: (min, max) length of a window in frames (inclusive; a
        window never runs past the identity's last frame).
    jitter_frac: std of the Gaussian noise on the box centre and size, as a fraction of the box
        size (``c' = c + f s n``, ``s' = s (1 + f n)``).
    clutter_frac: clutter boxes added, as a fraction (rounded) of the real boxes kept.
    object_score_mean, clutter_score_mean, score_concentration: Beta score distributions
        (mean, ``a + b``) of real and clutter boxes.

    Raises:
        ValueError: naming the field and its value.
    """

    dropout_id_fraction: float = 1.0 / 3.0
    dropout_frames: tuple[int, int] = (1, 30)
    jitter_frac: float = 0.03
    clutter_frac: float = 0.05
    object_score_mean: float = 0.8
    clutter_score_mean: float = 0.6
    score_concentration: float = 20.0

    def __post_init__(self) -> None:
        for name in ("dropout_id_fraction", "clutter_frac", "jitter_frac"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and 0.0 <= value <= 1.0):
                raise ValueError(f"{name} must be in [0, 1], got {value!r}")
        for name in ("object_score_mean", "clutter_score_mean"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0.0 < value < 1.0):
                raise ValueError(f"{name} must be in (0, 1), got {value!r}")
        if not (isinstance(self.score_concentration, (int, float)) and math.isfinite(self.score_concentration)
                and self.score_concentration > 0):
            raise ValueError(f"score_concentration must be a finite number > 0, got {self.score_concentration!r}")
        low, high = self.dropout_frames
        if not (isinstance(low, int) and isinstance(high, int) and 1 <= low <= high):
            raise ValueError(f"dropout_frames must be integers (min, max) with 1 <= min <= max, "
                             f"got {self.dropout_frames!r}")


@dataclass
class PerturbedDetections:
    """Output of :func:`perturb_ground_truth`.

    detections: frame (1-based) -> detections, sorted by decreasing score (real and clutter);
    dropouts: id -> (first, last) frame of its dropout window (inclusive);
    n_real: real boxes kept; n_clutter: clutter boxes added.
    """

    detections: dict[int, list[Detection]]
    dropouts: dict[int, tuple[int, int]]
    n_real: int
    n_clutter: int


def _beta(rng: np.random.Generator, mean: float, concentration: float, n: int) -> np.ndarray:
    return rng.beta(mean * concentration, (1.0 - mean) * concentration, size=n)


def perturb_ground_truth(gt: MotGroundTruth, seed: int, config: Perturbation = Perturbation(),
                         image_size: tuple[int, int] = IMAGE_SIZE) -> PerturbedDetections:
    """Detections from ground truth: dropout windows, box jitter, clutter and scores (see
    :class:`Perturbation`), deterministic for ``seed``. Clutter boxes take the size of a random
    real box and lie inside the ``(width, height)`` image at a random frame and place.

    Raises:
        ValueError: ``seed`` not a non-negative integer.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    rng = np.random.default_rng([int(seed), _SALT])
    ids = np.unique(gt.ids)
    n_drop = int(round(config.dropout_id_fraction * ids.size))
    keep = np.ones(gt.ids.size, dtype=bool)
    dropouts: dict[int, tuple[int, int]] = {}
    for oid in np.sort(rng.choice(ids, size=n_drop, replace=False)):
        frames = np.sort(gt.frames[gt.ids == oid])
        length = min(int(rng.integers(config.dropout_frames[0], config.dropout_frames[1] + 1)), frames.size)
        start = int(rng.integers(0, frames.size - length + 1))
        first, last = int(frames[start]), int(frames[start + length - 1])
        dropouts[int(oid)] = (first, last)
        keep &= ~((gt.ids == oid) & (gt.frames >= first) & (gt.frames <= last))

    boxes = gt.boxes[keep].copy()
    noise = rng.standard_normal(boxes.shape)
    boxes[:, :2] += config.jitter_frac * boxes[:, 2:] * noise[:, :2]  # c' = c + f s n
    boxes[:, 2:] *= np.clip(1.0 + config.jitter_frac * noise[:, 2:], 0.5, None)  # s' = s (1 + f n)
    frames = gt.frames[keep]
    scores = _beta(rng, config.object_score_mean, config.score_concentration, boxes.shape[0])

    n_clutter = int(round(config.clutter_frac * boxes.shape[0]))
    sizes = gt.boxes[rng.integers(0, gt.boxes.shape[0], size=n_clutter), 2:] if gt.boxes.size \
        else np.zeros((n_clutter, 2))
    sizes = np.minimum(sizes, np.array(image_size, dtype=float))
    centres = sizes / 2 + rng.random((n_clutter, 2)) * (np.array(image_size) - sizes)
    clutter_frames = rng.integers(1, max(gt.n_frames, 1) + 1, size=n_clutter)
    clutter_scores = _beta(rng, config.clutter_score_mean, config.score_concentration, n_clutter)

    all_frames = np.concatenate([frames, clutter_frames])
    all_boxes = np.concatenate([boxes, np.hstack([centres, sizes])])
    all_scores = np.concatenate([scores, clutter_scores])
    order = np.lexsort((-all_scores, all_frames))
    detections: dict[int, list[Detection]] = {}
    for i in order:
        detections.setdefault(int(all_frames[i]), []).append(
            Detection(box=all_boxes[i].copy(), score=float(all_scores[i]), class_id=0, class_name="person"))
    return PerturbedDetections(detections, dropouts, int(boxes.shape[0]), n_clutter)


def ground_truth_frames(gt: MotGroundTruth) -> list[list[GroundTruthObject]]:
    """Per frame position (frame - 1) the ground truth as real, fully visible objects
    (class 0, visible box = box, no 3D position)."""
    out: list[list[GroundTruthObject]] = [[] for _ in range(gt.n_frames)]
    for frame, oid, box in zip(gt.frames, gt.ids, gt.boxes):
        out[int(frame) - 1].append(GroundTruthObject(
            object_id=int(oid), kind=ObjectKind.OBJECT, class_id=0, box=box.copy(), visibility=1.0,
            position=np.full(3, np.nan), visible_box=box.copy()))
    return out


def tud_sequence(path: Path, seed: int, config: Perturbation = Perturbation()) -> EvalSequence:
    """TUD-Campus as an :class:`EvalSequence` (one camera, ``"left"``): perturbed detections of
    ``seed`` and the ground truth, frames 1..71 at positions 0..70.

    Raises:
        MotFormatError, OSError: as :func:`load_mot15_ground_truth`; ValueError: a bad seed.
    """
    gt = load_mot15_ground_truth(path)
    perturbed = perturb_ground_truth(gt, seed, config, IMAGE_SIZE)
    detections = [perturbed.detections.get(frame, []) for frame in range(1, gt.n_frames + 1)]
    return EvalSequence(DATASET, DIFFICULTY, int(seed), FPS, IMAGE_SIZE,
                        {"left": CameraStream(detections, ground_truth_frames(gt))})
