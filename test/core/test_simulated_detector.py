"""Tests of the detector simulator: rates, noise, scores, nuisances, clipping, determinism, validation."""
from __future__ import annotations

import numpy as np
import pytest

from object_permanence.core.detection.simulated import SimulatedDetector, SimulatedDetectorConfig
from object_permanence.core.sim import CLASS_NAMES, SimWorld, make_scenario
from object_permanence.core.types import GroundTruthObject, ObjectKind

SHAPE = (480, 640)


def _grid_truth(kind: ObjectKind = ObjectKind.OBJECT, visibility: float = 1.0, n: int = 12) -> list[GroundTruthObject]:
    """n entries on a 4-column grid, 120 px apart: nearest-centre matching is unambiguous."""
    return [GroundTruthObject(object_id=i + 1 if kind == ObjectKind.OBJECT else 1000 + i, kind=kind,
                              class_id=i % len(CLASS_NAMES),
                              box=np.array([100.0 + 140.0 * (i % 4), 80.0 + 120.0 * (i // 4), 60.0, 50.0]),
                              visibility=visibility, position=np.full(3, np.nan))
            for i in range(n)]


def _match(truth: list[GroundTruthObject], detections: list) -> list[tuple[GroundTruthObject, object]]:
    """Pairs (truth, detection) by nearest centre within 20 px."""
    centres = np.array([g.box[:2] for g in truth])
    pairs = []
    for det in detections:
        distance = np.linalg.norm(centres - det.box[:2], axis=1)
        if distance.min() < 20.0:
            pairs.append((truth[int(distance.argmin())], det))
    return pairs


@pytest.mark.parametrize(("field", "value"), [
    ("miss_prob", 1.5), ("min_visibility", -0.1), ("center_jitter_px", -1.0), ("size_jitter_frac", float("nan")),
    ("object_score_mean", 1.0), ("nuisance_score_mean", 0.0), ("score_concentration", 0.0),
    ("nuisance_detect_prob", 2.0), ("extra_false_positives_per_frame", -0.5), ("false_positive_min_px", 0.0),
    ("false_positive_max_px", 10.0), ("seed", -3), ("miss_prob", "0.1"), ("seed", True),
])
def test_invalid_config_raises_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        SimulatedDetectorConfig(**{field: value})


def test_bad_detect_arguments_raise() -> None:
    detector = SimulatedDetector()
    with pytest.raises(ValueError, match="camera"):
        detector.detect([], 0, "centre", SHAPE)
    with pytest.raises(ValueError, match="frame_index"):
        detector.detect([], -1, "left", SHAPE)
    with pytest.raises(ValueError, match="image_shape"):
        detector.detect([], 0, "left", (0, 640))


def test_deterministic_per_seed_frame_and_camera() -> None:
    config = SimulatedDetectorConfig(miss_prob=0.3, extra_false_positives_per_frame=2.0, seed=11)
    truth = _grid_truth()

    def boxes(detector: SimulatedDetector, frame: int, camera: str) -> np.ndarray:
        return np.array([np.r_[d.box, d.score, d.class_id] for d in detector.detect(truth, frame, camera, SHAPE)])

    a, b = SimulatedDetector(config), SimulatedDetector(config)
    np.testing.assert_array_equal(boxes(a, 5, "left"), boxes(b, 5, "left"))
    boxes(a, 6, "right")  # order of calls does not matter
    np.testing.assert_array_equal(boxes(a, 5, "left"), boxes(b, 5, "left"))
    assert not np.array_equal(boxes(a, 5, "left"), boxes(a, 5, "right"))
    assert not np.array_equal(boxes(a, 5, "left"), boxes(a, 6, "left"))
    other = SimulatedDetector(SimulatedDetectorConfig(miss_prob=0.3, extra_false_positives_per_frame=2.0, seed=12))
    assert not np.array_equal(boxes(a, 5, "left"), boxes(other, 5, "left"))


def test_miss_rate_jitter_scores_and_classes_follow_the_config() -> None:
    config = SimulatedDetectorConfig(miss_prob=0.1, center_jitter_px=2.0, size_jitter_frac=0.05)
    detector = SimulatedDetector(config)
    truth = _grid_truth()
    pairs = []
    n_frames = 1500
    for frame in range(n_frames):
        pairs += _match(truth, detector.detect(truth, frame, "left", SHAPE))
    total = n_frames * len(truth)
    detected = len(pairs) / total
    assert detected == pytest.approx(0.9, abs=4 * np.sqrt(0.09 / total))  # 4 sigma of a binomial rate
    offsets = np.array([d.box[:2] - g.box[:2] for g, d in pairs])
    ratios = np.array([d.box[2:] / g.box[2:] for g, d in pairs])
    np.testing.assert_allclose(offsets.std(axis=0), 2.0, rtol=0.05)
    np.testing.assert_allclose(offsets.mean(axis=0), 0.0, atol=0.05)
    np.testing.assert_allclose(ratios.std(axis=0), 0.05, rtol=0.05)
    scores = np.array([d.score for _, d in pairs])
    assert scores.mean() == pytest.approx(0.8, abs=0.01) and 0.0 < scores.min() and scores.max() < 1.0
    assert all(d.class_id == g.class_id and d.class_name == CLASS_NAMES[g.class_id] for g, d in pairs)
    assert all(d.embedding is None for _, d in pairs)


def test_below_min_visibility_never_detected() -> None:
    detector = SimulatedDetector(SimulatedDetectorConfig(miss_prob=0.0, min_visibility=0.4))
    hidden, seen = _grid_truth(visibility=0.39, n=4), _grid_truth(visibility=0.41, n=4)
    for frame in range(50):
        assert detector.detect(hidden, frame, "right", SHAPE) == []
        assert len(detector.detect(seen, frame, "right", SHAPE)) == 4


def test_nuisances_detected_at_the_configured_rate_with_lower_overlapping_scores() -> None:
    config = SimulatedDetectorConfig(nuisance_detect_prob=0.6, miss_prob=0.0)
    detector = SimulatedDetector(config)
    reflections = _grid_truth(ObjectKind.REFLECTION)
    glare = _grid_truth(ObjectKind.GLARE)
    objects = _grid_truth(ObjectKind.OBJECT)
    n_frames = 800
    counts = {"reflection": 0, "glare": 0}
    nuisance_scores, object_scores = [], []
    for frame in range(n_frames):
        for name, truth in (("reflection", reflections), ("glare", glare)):
            detections = detector.detect(truth, frame, "left", SHAPE)
            counts[name] += len(detections)
            nuisance_scores += [d.score for d in detections]
        object_scores += [d.score for d in detector.detect(objects, frame, "left", SHAPE)]
    total = n_frames * len(reflections)
    for name, count in counts.items():
        assert count / total == pytest.approx(0.6, abs=4 * np.sqrt(0.24 / total)), name
    assert np.mean(nuisance_scores) == pytest.approx(0.6, abs=0.01)
    assert np.mean(object_scores) > np.mean(nuisance_scores) + 0.15
    assert np.quantile(nuisance_scores, 0.95) > np.quantile(object_scores, 0.05)  # the distributions overlap


def test_false_positive_truth_always_reported_and_extra_boxes_poisson() -> None:
    false_positives = _grid_truth(ObjectKind.FALSE_POSITIVE, n=3)
    detector = SimulatedDetector(SimulatedDetectorConfig(nuisance_detect_prob=0.0))
    assert all(len(detector.detect(false_positives, f, "left", SHAPE)) == 3 for f in range(100))
    extra = SimulatedDetector(SimulatedDetectorConfig(extra_false_positives_per_frame=1.5, false_positive_min_px=30.0,
                                                      false_positive_max_px=40.0))
    counts = [len(extra.detect([], frame, "right", SHAPE)) for frame in range(2000)]
    assert np.mean(counts) == pytest.approx(1.5, abs=4 * np.sqrt(1.5 / 2000))
    assert np.var(counts) == pytest.approx(1.5, rel=0.15)  # Poisson: variance = mean


def test_boxes_clipped_to_the_image_and_never_nan() -> None:
    detector = SimulatedDetector(SimulatedDetectorConfig(miss_prob=0.0, min_visibility=0.0, center_jitter_px=5.0,
                                                         extra_false_positives_per_frame=3.0))
    truth = [GroundTruthObject(1, ObjectKind.OBJECT, 0, np.array([5.0, 5.0, 40.0, 40.0]), 0.3, np.zeros(3)),
             GroundTruthObject(2, ObjectKind.OBJECT, 1, np.array([638.0, 470.0, 30.0, 60.0]), 0.2, np.zeros(3)),
             GroundTruthObject(3, ObjectKind.OBJECT, 2, np.array([np.nan, 100.0, 30.0, 30.0]), 1.0, np.zeros(3)),
             GroundTruthObject(1000, ObjectKind.FALSE_POSITIVE, 0, np.array([320.0, np.inf, 30.0, 30.0]), 1.0,
                               np.full(3, np.nan))]
    n_boxes = 0
    for frame in range(200):
        detections = detector.detect(truth, frame, "left", SHAPE)
        scores = [d.score for d in detections]
        assert scores == sorted(scores, reverse=True)
        for d in detections:
            cx, cy, w, h = d.box
            assert np.isfinite(d.box).all() and w >= 1.0 and h >= 1.0
            assert cx - w / 2 >= 0.0 and cx + w / 2 <= 640.0 and cy - h / 2 >= 0.0 and cy + h / 2 <= 480.0
            n_boxes += 1
    assert n_boxes > 200 * 2  # the two edge objects plus the random boxes; the NaN/inf entries are dropped


def test_on_simulated_world_ground_truth() -> None:
    world = SimWorld(make_scenario("cluttered"), seed=0)
    detector = SimulatedDetector(SimulatedDetectorConfig(miss_prob=0.0, nuisance_detect_prob=1.0))
    for k in range(0, 120, 4):
        truth = world.ground_truth(k)
        for camera in ("left", "right"):
            entries = getattr(truth, camera)
            detections = detector.detect(entries, k, camera, SHAPE)
            expected = [g for g in entries if g.visibility >= 0.3 or g.kind == ObjectKind.FALSE_POSITIVE]
            assert len(detections) == len(expected)
