"""Knobs of the detector simulator and its ``easy | realistic | hard | sim_yolo`` presets.

Every rate of :class:`~object_permanence.core.detection.simulated.SimulatedDetector` is a scalar field
here (so a node can expose each as a parameter), documented with what it is and where its default
comes from. The defaults are the ``realistic`` preset, the yardstick every tracking figure is
measured on: shaped after published behaviour of real detectors where a source is named, and
guesses otherwise. ``sim_yolo`` is fitted to the project's trained detector (``models/detector``)
on rendered tuning scenes by ``tools/fit_detector_sim``: what the deployed detector does on the
simulator's own pixels, which is easier than ``realistic`` (a detector tested on the distribution
it was trained on), so it describes the shipped detector path, not a robot's camera.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from object_permanence.core.sim.scenarios import CLASS_NAMES

DIFFICULTIES: tuple[str, ...] = ("easy", "realistic", "hard", "sim_yolo")

# How alike two classes look to a detector (CLASS_NAMES order: box, ball, bottle); row c is the
# relative chance of reporting class c as each other class. Boxes and bottles are both upright
# rectangles of similar colour statistics; a ball is round. A guess, not measured.
CLASS_SIMILARITY: np.ndarray = np.array([[0.0, 0.25, 1.0],
                                         [0.25, 0.0, 0.25],
                                         [1.0, 0.25, 0.0]])
assert CLASS_SIMILARITY.shape == (len(CLASS_NAMES), len(CLASS_NAMES))

_INF = math.inf
# field -> (low, high, low included, high included): the ranges __post_init__ enforces
_RANGES: dict[str, tuple[float, float, bool, bool]] = {
    **{name: (0.0, 1.0, True, True) for name in (
        "miss_prob_visible", "miss_prob_half_hidden", "min_visibility", "miss_spell_coherence",
        "miss_view_independence", "low_confidence_fraction", "score_threshold", "score_detectability_share",
        "reflection_detect_prob", "glare_detect_prob", "box_outlier_prob", "duplicate_prob", "merge_prob",
        "merge_min_iou")},
    **{name: (0.0, 1.0, False, False) for name in (
        "confidence_mean", "low_confidence_mean", "glare_score_mean", "false_positive_score_mean")},
    **{name: (0.0, _INF, True, False) for name in (
        "miss_logit_per_halving", "min_visible_px", "score_frame_noise", "score_hidden_drop",
        "reflection_score_offset", "extra_false_positives_per_frame", "box_noise_frac")},
    **{name: (0.0, _INF, False, False) for name in (
        "miss_size_ref_px", "level_concentration", "false_positive_min_px", "false_positive_max_px")},
    "burst_off_fraction": (0.0, 1.0, True, False),
    "burst_mean_off_frames": (1.0, _INF, True, False),
    "class_confusion_prob": (0.0, 1.0 / float(CLASS_SIMILARITY.sum(axis=1).max()), True, True),
}


@dataclass(frozen=True)
class SimulatedDetectorConfig:
    """Rates of the detector simulator (defaults: the ``realistic`` preset; see :meth:`preset`).

    miss_prob_visible: chance that a wholly visible object whose visible box is miss_size_ref_px (square root of
        its area) is missed in a frame. Source: real detectors miss a few percent of well-seen medium objects
        (YOLO recall on COCO medium objects is roughly 0.9-0.97); 0.05 is a guess in that range (the sim_yolo
        preset's value is fitted to the trained detector).
    miss_prob_half_hidden: chance of a miss when half the object is hidden (same size); the logit of the miss
        chance is linear in the hidden fraction through these two points. Source: chosen to resemble recall
        against visibility of the public MOT17 detections (recall falls steeply below ~50% visibility); the
        value is a guess (sim_yolo: fitted).
    miss_size_ref_px: reference size for the two chances above: square root of the visible box's area,
        pixels. Source: 64 px is the middle of the sim's object sizes, so the chances above read directly for
        a typical object.
    miss_logit_per_halving: how much the logit of the miss chance rises each time the visible box (square root
        of its area) halves (and falls each time it doubles). Source: COCO reports AP for small objects (< 32
        px) at about half of medium ones for YOLO models; 1.0 (a 0.05 miss chance becomes 0.13 at half the size)
        is a guess in that spirit.
    min_visibility: entries seen less than this fraction of their full extent are never reported. Source:
        detectors rarely fire on slivers; 0.1 is a guess (the easy preset keeps the former simulator's 0.3).
    min_visible_px: entries whose visible box is narrower or lower than this (pixels) are never
        reported. Source: YOLO at 640 px input rarely finds objects under ~8 px (a stride-8 cell).
    burst_off_fraction: share of frames in which the latent per-object detectability chain (a two-state Markov
        chain shared by both cameras) is in its "off" state; misses happen mostly there, so they come in bursts
        (pose, blur, lighting). 0: no bursts. Source: a guess, chosen to exceed miss_prob_visible so that the
        misses of a visible object all fall in off spells.
    burst_mean_off_frames: mean length of an off spell, frames (1 with burst_off_fraction 0: the misses are
        independent per frame). Source: a guess (a quarter of a second at 30 fps; sim_yolo: fitted to the
        trained detector's miss runs).
    miss_spell_coherence: share of the variance of the within-state detectability draw held fixed over one chain
        spell (1: a spell is missed wholly or not at all; 0: frame by frame). Source: a guess; real detectors
        are consistent on near-identical frames.
    miss_view_independence: share of the variance of that draw drawn independently per camera (the rest is
        shared by the left and right views: correlated misses across views). Source: a guess; the two views see
        the object nearly alike, so their misses are strongly correlated.
    confidence_mean: mean of the Beta distribution of the persistent per-object confidence levels of ordinary
        objects. Source: typical YOLO confidences on clear, well-trained classes lie around 0.7-0.85; a guess in
        that range.
    low_confidence_fraction: share of real objects whose persistent confidence level comes from the
        low-confidence distribution (always scored low: odd textures, unusual poses). Source: a guess, so that a
        confidence floor alone cannot keep every real object.
    low_confidence_mean: mean of the persistent level of low-confidence objects. Source: a guess, well above the
        usual 0.25 reporting threshold but below the nuisances' means.
    level_concentration: a + b of the Beta distributions of the persistent levels (larger: narrower). Source: 20
        gives a standard deviation of about 0.1 around 0.75; a guess.
    score_frame_noise: standard deviation of the per-frame noise added to the logit of an entry's persistent
        level. Source: a guess; frame-to-frame confidence jitter of YOLO on video is a few hundredths to a
        tenth.
    score_detectability_share: share of the variance of that per-frame noise that follows the detectability
        process of the misses (the rest is drawn per frame and camera): scores dip where misses burst, in both
        views alike, so the confidence threshold drops boxes in bursts too. Source: a guess; a real detector's
        confidence falls as an object gets hard to see.
    score_hidden_drop: how much the logit of the score falls per unit of hidden fraction (fully hidden: this
        much lower). Source: a guess; occluded objects score lower.
    score_threshold: entries scoring below this in a frame are not reported (a detector's confidence
        threshold). Source: the ultralytics backend's default conf_threshold (0.25).
    reflection_detect_prob: chance that a detectable reflection is reported (drawn per frame and camera, on top
        of the miss model of objects). Source: a guess; dimmed mirror images of trained classes fool detectors
        often.
    reflection_score_offset: a reflection's persistent level is its source object's minus this (its class is the
        source's), so confidence alone cannot tell them apart. Source: a guess.
    glare_detect_prob: chance that a detectable glare blob is reported (drawn per frame and camera, on top of
        the miss model). Source: a guess.
    glare_score_mean: mean persistent level of glare blobs (Beta with level_concentration), chosen to overlap
        the objects' levels. Source: a guess.
    false_positive_score_mean: mean level of hallucinations: the world's FALSE_POSITIVE entries (reported
        whenever they score above score_threshold; the background ones are seen in both views for several
        frames, with one level) and the simulator's own random boxes. Source: a guess, overlapping the
        low-confidence objects.
    extra_false_positives_per_frame: Poisson mean of single-frame random boxes added per frame and camera
        (stereo-inconsistent hallucinations, on top of the world's). Source: a guess.
    false_positive_min_px: smallest side of those random boxes, pixels. Source: the sim's object sizes.
    false_positive_max_px: largest side of those random boxes, pixels. Source: the sim's object sizes.
    box_noise_frac: standard deviation of the box noise, as a fraction of the box's width and height (centre)
        and of the log size (size). Boxes are jittered around the visible part. Source: 3-5% of the box size is
        the usual localisation jitter of modern detectors at IoU 0.5-0.95 (a guess in that range).
    box_outlier_prob: chance that a reported box is an outlier with a 20-40% error of its size on centre and
        size. Source: a guess (about 1 box in 50 badly placed).
    class_confusion_prob: chance that a box is reported as the most similar other class (box and bottle); a ball
        is confused a quarter as often (CLASS_SIMILARITY). Source: a guess.
    class_confusion_frames: a confusion lasts this many frames (it is drawn per object and window of this
        length, shared by both cameras and by the object's reflections). Source: a guess.
    duplicate_prob: chance that a reported box comes with a second, lower-scoring box on the same entry, with
        IoU 0.5-0.8 to it (what NMS at IoU 0.7 lets through). Source: a guess.
    merge_prob: chance, per frame, that two reported objects whose visible boxes overlap with IoU of at least
        merge_min_iou are reported as one box covering both (shared by both cameras). Source: a guess.
    merge_min_iou: visible-box IoU from which two objects may be merged. Source: a guess.
    seed: base seed of every draw (outputs are a pure function of seed, frame, camera and truth).
    """

    miss_prob_visible: float = 0.05
    miss_prob_half_hidden: float = 0.4
    miss_size_ref_px: float = 64.0
    miss_logit_per_halving: float = 1.0
    min_visibility: float = 0.1
    min_visible_px: float = 8.0
    burst_off_fraction: float = 0.1
    burst_mean_off_frames: float = 8.0
    miss_spell_coherence: float = 0.85
    miss_view_independence: float = 0.1
    confidence_mean: float = 0.75
    low_confidence_fraction: float = 0.12
    low_confidence_mean: float = 0.4
    level_concentration: float = 20.0
    score_frame_noise: float = 0.25
    score_hidden_drop: float = 1.5
    score_detectability_share: float = 0.5
    score_threshold: float = 0.25
    reflection_detect_prob: float = 0.75
    reflection_score_offset: float = 0.07
    glare_detect_prob: float = 0.6
    glare_score_mean: float = 0.55
    false_positive_score_mean: float = 0.45
    extra_false_positives_per_frame: float = 0.1
    false_positive_min_px: float = 20.0
    false_positive_max_px: float = 100.0
    box_noise_frac: float = 0.04
    box_outlier_prob: float = 0.02
    class_confusion_prob: float = 0.02
    class_confusion_frames: int = 5
    duplicate_prob: float = 0.03
    merge_prob: float = 0.3
    merge_min_iou: float = 0.3
    seed: int = 0

    def __post_init__(self) -> None:
        for name, (low, high, low_in, high_in) in _RANGES.items():
            value = getattr(self, name)
            inside = _is_number(value) and (low <= value if low_in else low < value) and (
                value <= high if high_in else value < high)
            if not inside:
                interval = f"{'[' if low_in else '('}{low:g}, {high:g}{']' if high_in else ')'}"
                raise ValueError(f"SimulatedDetectorConfig: {name} must be a number in {interval}, got {value!r}")
        for name, low in (("class_confusion_frames", 1), ("seed", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"SimulatedDetectorConfig: {name} must be an integer >= {low}, got {value!r}")
        if self.miss_prob_half_hidden < self.miss_prob_visible:
            raise ValueError(
                f"SimulatedDetectorConfig: miss_prob_half_hidden={self.miss_prob_half_hidden!r} must be >= "
                f"miss_prob_visible={self.miss_prob_visible!r} (misses rise with the hidden fraction)")
        if self.burst_off_fraction > 0.0 and self.burst_mean_off_frames * (1.0 - self.burst_off_fraction) \
                < self.burst_off_fraction:
            raise ValueError(
                f"SimulatedDetectorConfig: burst_mean_off_frames={self.burst_mean_off_frames!r} is too short for "
                f"burst_off_fraction={self.burst_off_fraction!r} (the on spells would last under one frame)")
        if self.miss_spell_coherence + self.miss_view_independence > 1.0:
            raise ValueError(
                f"SimulatedDetectorConfig: miss_spell_coherence + miss_view_independence must be <= 1, got "
                f"{self.miss_spell_coherence!r} + {self.miss_view_independence!r}")
        if self.false_positive_min_px > self.false_positive_max_px:
            raise ValueError(
                f"SimulatedDetectorConfig: false_positive_max_px={self.false_positive_max_px!r} must be >= "
                f"false_positive_min_px={self.false_positive_min_px!r}")

    @classmethod
    def preset(cls, difficulty: str = "realistic", **overrides: Any) -> SimulatedDetectorConfig:
        """The config of a difficulty preset, with ``overrides`` (field name -> value) on top.

        easy: close to the former lenient simulator (rare independent misses, no low-confidence
        objects, no confusions, duplicates, merges or outliers); realistic: the defaults above;
        hard: more and longer misses, noisier boxes and scores, more nuisances; sim_yolo: fitted
        to the trained detector (module docstring).

        Raises:
            ValueError: unknown difficulty or field, or a value the config rejects (named).
        """
        if difficulty not in PRESETS:
            raise ValueError(f"SimulatedDetectorConfig.preset: difficulty must be one of {', '.join(DIFFICULTIES)}, "
                             f"got {difficulty!r}")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ValueError(f"SimulatedDetectorConfig.preset: unknown field(s) {', '.join(unknown)}")
        return replace(cls(), **{**PRESETS[difficulty], **overrides})


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# Field values of each preset that differ from the defaults (which are the realistic preset).
PRESETS: dict[str, dict[str, Any]] = {
    "easy": dict(
        miss_prob_visible=0.02, miss_prob_half_hidden=0.1, miss_logit_per_halving=0.5, min_visibility=0.3,
        burst_off_fraction=0.0, burst_mean_off_frames=1.0, miss_spell_coherence=0.0, miss_view_independence=1.0,
        confidence_mean=0.8, low_confidence_fraction=0.0, score_frame_noise=0.2, score_hidden_drop=1.0,
        score_detectability_share=0.0,
        reflection_detect_prob=0.7, reflection_score_offset=0.1, glare_detect_prob=0.7, glare_score_mean=0.6,
        false_positive_score_mean=0.6, extra_false_positives_per_frame=0.0, box_noise_frac=0.02,
        box_outlier_prob=0.0, class_confusion_prob=0.0, duplicate_prob=0.0, merge_prob=0.0),
    "realistic": {},
    "hard": dict(
        miss_prob_visible=0.08, miss_prob_half_hidden=0.55, miss_logit_per_halving=1.2, min_visibility=0.05,
        min_visible_px=10.0, burst_off_fraction=0.15, burst_mean_off_frames=12.0, miss_spell_coherence=0.9,
        miss_view_independence=0.05, confidence_mean=0.7, low_confidence_fraction=0.2, low_confidence_mean=0.35,
        level_concentration=15.0, score_frame_noise=0.35, score_detectability_share=0.6, score_hidden_drop=2.0,
        reflection_detect_prob=0.85, reflection_score_offset=0.05, glare_detect_prob=0.75, glare_score_mean=0.6,
        false_positive_score_mean=0.5,
        extra_false_positives_per_frame=0.3, box_noise_frac=0.06, box_outlier_prob=0.04, class_confusion_prob=0.05,
        class_confusion_frames=8, duplicate_prob=0.06, merge_prob=0.5, merge_min_iou=0.2),
    # Fitted to the trained detector by `make fit-detector-sim` (tools/fit_detector_sim.py: rendered
    # tuning scenes, seeds 40-41) from the realistic values; the report: docs/detector_fit.md.
    "sim_yolo": dict(
        miss_prob_visible=0.01, miss_prob_half_hidden=0.1, min_visibility=0.2, miss_logit_per_halving=0.5,
        burst_mean_off_frames=3.0, confidence_mean=0.9, low_confidence_fraction=0.03, reflection_detect_prob=0.0,
        glare_detect_prob=0.0, false_positive_score_mean=0.05, duplicate_prob=0.005, merge_prob=0.9,
        class_confusion_prob=0.1, box_noise_frac=0.0075),
}
assert tuple(PRESETS) == DIFFICULTIES
