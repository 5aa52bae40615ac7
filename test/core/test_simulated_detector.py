"""Tests of the detector simulator's output: visible-part boxes, misses (rates, bursts, views),
confidences, reflections, nuisances, class confusion, duplicates, merges, determinism, statistics.

All statistical tests use fixed seeds: they are deterministic, with tolerances of several sigma.
"""
from __future__ import annotations

import numpy as np
import pytest

from object_permanence.core.association import iou_matrix
from object_permanence.core.detection.sim_detector_stats import detector_statistics
from object_permanence.core.detection.simulated import (
    Origin,
    SimulatedDetector,
    SimulatedDetectorConfig,
    miss_probability,
    nuisance_report_chance,
)
from object_permanence.core.sim import CLASS_NAMES, SimWorld, make_scenario
from object_permanence.core.types import GroundTruthObject, ObjectKind

SHAPE = (480, 640)
# no misses, no noise, nothing added: each test switches on what it checks
QUIET = dict(miss_prob_visible=0.0, miss_prob_half_hidden=0.0, burst_off_fraction=0.0, min_visibility=0.0,
             score_threshold=0.0, extra_false_positives_per_frame=0.0, box_noise_frac=0.0, box_outlier_prob=0.0,
             class_confusion_prob=0.0, duplicate_prob=0.0, merge_prob=0.0, reflection_detect_prob=1.0,
             glare_detect_prob=1.0)


def quiet(**changes) -> SimulatedDetector:
    return SimulatedDetector(SimulatedDetectorConfig(**{**QUIET, **changes}))


def entry(object_id: int, box: tuple[float, float, float, float], visibility: float = 1.0,
          visible_box: tuple[float, float, float, float] | None = None, kind: ObjectKind = ObjectKind.OBJECT,
          class_id: int = 0, source_id: int = 0) -> GroundTruthObject:
    return GroundTruthObject(object_id=object_id, kind=kind, class_id=class_id, box=np.array(box, dtype=float),
                             visibility=visibility, position=np.full(3, np.nan),
                             visible_box=np.array(visible_box if visible_box is not None else box, dtype=float),
                             source_id=source_id)


def grid(n: int = 12, size: float = 60.0, visibility: float = 1.0, first_id: int = 1,
         kind: ObjectKind = ObjectKind.OBJECT) -> list[GroundTruthObject]:
    """n entries of one size on a grid of cells at least as large (no two boxes overlap)."""
    columns = 4 if size > 70.0 else 8
    rows = -(-n // columns)
    dx, dy = 640.0 / columns, 480.0 / rows
    assert size <= min(dx, dy)
    return [entry(first_id + i, (dx * (i % columns + 0.5), dy * (i // columns + 0.5), size, size), visibility,
                  kind=kind, class_id=i % len(CLASS_NAMES)) for i in range(n)]


def detected_ids(detector: SimulatedDetector, truth: list[GroundTruthObject], frames: range,
                 camera: str = "left") -> np.ndarray:
    """(T, N) bool: entry n covered by a detection of its own in frame t (provenance-based)."""
    ids = [g.object_id for g in truth]
    out = np.zeros((len(frames), len(ids)), dtype=bool)
    for t, k in enumerate(frames):
        for traced in detector.detect_traced(truth, k, camera, SHAPE):
            for object_id in traced.truth_ids:
                out[t, ids.index(object_id)] = True
    return out


def runs(flags: np.ndarray) -> np.ndarray:
    """Lengths of the runs of True along axis 0 of (T, N) flags."""
    padded = np.pad(flags.T.astype(np.int8), ((0, 0), (1, 1)))
    edges = np.diff(padded, axis=1)
    return np.nonzero(edges == -1)[1] - np.nonzero(edges == 1)[1]


# --- arguments, determinism --------------------------------------------------------------------

def test_bad_arguments_raise() -> None:
    detector = SimulatedDetector()
    with pytest.raises(ValueError, match="camera"):
        detector.detect([], 0, "centre", SHAPE)
    with pytest.raises(ValueError, match="frame_index"):
        detector.detect([], -1, "left", SHAPE)
    with pytest.raises(ValueError, match="image_shape"):
        detector.detect([], 0, "left", (0, 640))
    with pytest.raises(ValueError, match="config"):
        SimulatedDetector({"miss_prob_visible": 0.1})


def test_deterministic_with_random_access_by_frame() -> None:
    config = SimulatedDetectorConfig.preset("hard", seed=11)
    truth = grid() + [entry(900, (300.0, 300.0, 80.0, 80.0), 0.6, (320.0, 300.0, 40.0, 80.0)),
                      entry(901, (330.0, 300.0, 80.0, 80.0))]

    def rows(detector: SimulatedDetector, frame: int, camera: str) -> np.ndarray:
        return np.array([np.r_[d.box, d.score, d.class_id] for d in detector.detect(truth, frame, camera, SHAPE)])

    a, b = SimulatedDetector(config), SimulatedDetector(config)
    forward = [rows(a, k, "left") for k in range(150)]
    backward = [rows(b, k, "left") for k in reversed(range(150))][::-1]
    for x, y in zip(forward, backward):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(rows(a, 5, "left"), rows(a, 5, "right"))
    other = SimulatedDetector(SimulatedDetectorConfig.preset("hard", seed=12))
    assert not np.array_equal(rows(a, 5, "left"), rows(other, 5, "left"))
    # one entry's fate does not depend on the others present
    alone = [t for t in a.detect_traced(truth[:1], 7, "left", SHAPE) if t.origin == Origin.TRUTH]
    among = [t for t in a.detect_traced(truth, 7, "left", SHAPE) if t.truth_ids == (truth[0].object_id,)]
    assert [t.detection.score for t in alone] == [t.detection.score for t in among if t.origin == Origin.TRUTH]
    traced = a.detect_traced(truth, 9, "right", SHAPE)
    plain = a.detect(truth, 9, "right", SHAPE)
    assert [t.detection.score for t in traced] == [d.score for d in plain]
    assert [d.score for d in plain] == sorted((d.score for d in plain), reverse=True)


# --- boxes -------------------------------------------------------------------------------------

def test_boxes_follow_the_visible_part_not_the_amodal_box() -> None:
    # an object half behind a pillar on its right: the visible box is the left half
    amodal, visible = (300.0, 240.0, 100.0, 80.0), (275.0, 240.0, 50.0, 80.0)
    detector = SimulatedDetector(SimulatedDetectorConfig(**{**QUIET, "box_noise_frac": 0.04}))
    boxes = np.array([d.box for k in range(300)
                      for d in detector.detect([entry(1, amodal, 0.5, visible)], k, "left", SHAPE)])
    assert len(boxes) == 300
    iou_visible = iou_matrix(boxes, np.array([visible]))[:, 0]
    iou_amodal = iou_matrix(boxes, np.array([amodal]))[:, 0]
    assert np.median(iou_visible) > 0.85 and np.median(iou_amodal) < 0.6
    sigma_of_mean = 0.04 * np.array(visible)[[2, 3, 2, 3]] / np.sqrt(len(boxes))
    assert np.all(np.abs(boxes.mean(axis=0) - visible) < 4.0 * sigma_of_mean)  # unbiased around the visible box
    # ground truth without a visible box (zeros, e.g. an older bag) is boxed at its amodal box
    legacy = GroundTruthObject(2, ObjectKind.OBJECT, 0, np.array(amodal), 0.5, np.zeros(3))
    (d,) = quiet().detect([legacy], 0, "left", SHAPE)
    np.testing.assert_allclose(d.box, amodal)


def test_box_noise_is_proportional_to_the_size_with_rare_outliers() -> None:
    config = SimulatedDetectorConfig(**{**QUIET, "box_noise_frac": 0.04, "box_outlier_prob": 0.05})
    detector = SimulatedDetector(config)
    small, large = (150.0, 150.0, 40.0, 40.0), (400.0, 250.0, 160.0, 160.0)
    truth = [entry(1, small), entry(2, large)]
    errors: dict[int, list[np.ndarray]] = {1: [], 2: []}
    for k in range(1500):
        for t in detector.detect_traced(truth, k, "left", SHAPE):
            (object_id,) = t.truth_ids
            true_box = truth[object_id - 1].box
            errors[object_id].append((t.detection.box - true_box) / true_box[[2, 3, 2, 3]])  # error / size
    for object_id in (1, 2):
        relative = np.abs(np.array(errors[object_id]))
        outlier = relative.max(axis=1) > 0.18  # 4.5 sigma of the ordinary noise
        assert outlier.mean() == pytest.approx(0.05, abs=0.02)
        assert np.median(relative[~outlier][:, :2]) == pytest.approx(0.04 * 0.674, rel=0.1)  # median |N(0, s)|
        assert relative[outlier].max() <= 0.4 + 1e-9 and relative[outlier].max(axis=1).min() >= 0.18


def test_boxes_clipped_to_the_image_and_never_nan() -> None:
    detector = SimulatedDetector(SimulatedDetectorConfig.preset("hard", min_visibility=0.0, score_threshold=0.0,
                                                                extra_false_positives_per_frame=3.0))
    truth = [entry(1, (5.0, 5.0, 40.0, 40.0), 0.3), entry(2, (638.0, 470.0, 30.0, 60.0), 0.6),
             entry(3, (np.nan, 100.0, 30.0, 30.0)), entry(1000, (320.0, np.inf, 30.0, 30.0),
                                                           kind=ObjectKind.FALSE_POSITIVE)]
    n_boxes = 0
    for frame in range(200):
        for d in detector.detect(truth, frame, "left", SHAPE):
            cx, cy, w, h = d.box
            assert np.isfinite(d.box).all() and w >= 1.0 and h >= 1.0
            assert cx - w / 2 >= 0.0 and cx + w / 2 <= 640.0 and cy - h / 2 >= 0.0 and cy + h / 2 <= 480.0
            n_boxes += 1
    assert n_boxes > 200 * 2  # the two edge objects plus the random boxes; the NaN/inf entries are dropped


# --- misses ------------------------------------------------------------------------------------

def test_miss_probability_follows_the_logistic_model() -> None:
    config = SimulatedDetectorConfig()
    ref = config.miss_size_ref_px
    objects = np.zeros(4, dtype=np.int64)
    boxes = np.array([[0.0, 0.0, ref, ref]] * 3 + [[0.0, 0.0, ref / 2, ref / 2]])
    p = miss_probability(config, objects, np.array([1.0, 0.5, 0.0 + 0.25, 1.0]), boxes)
    assert p[0] == pytest.approx(config.miss_prob_visible) and p[1] == pytest.approx(config.miss_prob_half_hidden)
    logit = np.log(p / (1 - p))
    assert logit[3] - logit[0] == pytest.approx(config.miss_logit_per_halving)
    kinds = np.array([int(k) for k in ObjectKind])
    p_kind = miss_probability(config, kinds, np.ones(4), np.array([[0.0, 0.0, ref, ref]] * 4))
    np.testing.assert_allclose(p_kind[:3], config.miss_prob_visible)
    assert p_kind[3] == 0.0  # the world's hallucinations are always reported
    np.testing.assert_allclose(nuisance_report_chance(config, kinds),
                               [1.0, config.reflection_detect_prob, config.glare_detect_prob, 1.0])
    floors = miss_probability(config, np.zeros(3, dtype=np.int64), np.array([0.05, 1.0, 0.0]),
                              np.array([[0.0, 0.0, ref, ref], [0.0, 0.0, 5.0, ref], [0.0, 0.0, ref, ref]]))
    np.testing.assert_array_equal(floors, 1.0)


def test_miss_rate_rises_with_the_hidden_fraction_and_falls_with_size() -> None:
    detector = SimulatedDetector(SimulatedDetectorConfig(seed=3))
    frames = range(250)
    by_visibility = []
    for i, visibility in enumerate((1.0, 0.75, 0.5, 0.25)):
        truth = grid(12, size=64.0, visibility=visibility, first_id=100 * (i + 1))
        by_visibility.append(1.0 - detected_ids(detector, truth, frames).mean())
    by_size = []
    for i, size in enumerate((160.0, 64.0, 24.0, 12.0)):
        truth = grid(12, size=size, first_id=1000 + 100 * i)
        by_size.append(1.0 - detected_ids(detector, truth, frames).mean())
    assert np.all(np.diff(by_visibility) > 0.05), by_visibility
    assert np.all(np.diff(by_size) > 0.0) and by_size[-1] > 2 * by_size[1], by_size
    tiny = grid(4, size=6.0, first_id=5000)  # under min_visible_px: never reported
    sliver = grid(4, size=64.0, visibility=0.05, first_id=6000)  # under min_visibility
    assert not detected_ids(detector, tiny + sliver, range(100)).any()


def test_misses_come_in_bursts_correlated_across_views() -> None:
    config = SimulatedDetectorConfig(seed=21)  # realistic
    truth = grid(24, size=64.0)
    frames = range(500)
    left = ~detected_ids(SimulatedDetector(config), truth, frames, "left")
    right = ~detected_ids(SimulatedDetector(config), truth, frames, "right")
    p = left.mean()
    assert 0.03 < p < 0.12
    assert runs(left).mean() > 1.5 / (1.0 - p)  # independent misses: mean run 1 / (1 - p)
    assert np.corrcoef(left.ravel(), right.ravel())[0, 1] > 0.5
    easy = SimulatedDetector(SimulatedDetectorConfig.preset("easy", seed=21, miss_prob_visible=0.1,
                                                            miss_prob_half_hidden=0.2))
    left, right = (~detected_ids(easy, truth, frames, c) for c in ("left", "right"))
    assert runs(left).mean() == pytest.approx(1.0 / (1.0 - left.mean()), rel=0.05)  # easy: independent
    assert abs(np.corrcoef(left.ravel(), right.ravel())[0, 1]) < 0.1


def test_difficulties_order_the_miss_rates() -> None:
    truth = [entry(i + 1, (80.0 + 120.0 * (i % 5), 80.0 + 110.0 * (i // 5), 50.0, 70.0), visibility)
             for i, visibility in enumerate(np.linspace(0.3, 1.0, 20))]
    rates = [1.0 - detected_ids(SimulatedDetector(SimulatedDetectorConfig.preset(name, seed=2)), truth,
                                range(200)).mean() for name in ("easy", "realistic", "hard")]
    assert rates[0] + 0.05 < rates[1] and rates[1] + 0.05 < rates[2], rates


# --- confidences, reflections, nuisances -------------------------------------------------------------

def test_confidence_levels_persist_and_reflections_inherit_them() -> None:
    detector = SimulatedDetector(SimulatedDetectorConfig(**{**QUIET, "low_confidence_fraction": 0.3,
                                                            "class_confusion_prob": 0.2, "seed": 6}))
    objects = grid(12)
    reflections = [entry(2000 + g.object_id, (g.box[0], g.box[1] + 65.0, 60.0, 50.0), kind=ObjectKind.REFLECTION,
                         class_id=g.class_id, source_id=g.object_id) for g in objects[:6]]
    scores = np.zeros((200, 18))
    classes = np.zeros((200, 18), dtype=int)
    ids = [g.object_id for g in objects + reflections]
    for k in range(200):
        for t in detector.detect_traced(objects + reflections, k, "left", SHAPE):
            scores[k, ids.index(t.truth_ids[0])] = t.detection.score
            classes[k, ids.index(t.truth_ids[0])] = t.detection.class_id
    assert (scores > 0).all()
    first, second = scores[:100, :12].mean(axis=0), scores[100:, :12].mean(axis=0)
    assert np.corrcoef(first, second)[0, 1] > 0.95  # a level per object, the same all along
    low = first < 0.55
    assert 1 <= low.sum() <= 8 and (scores[:, :12][:, low] < 0.6).mean() > 0.9  # low ones stay low
    offset = scores[:, :6].mean(axis=0) - scores[:, 12:].mean(axis=0)
    # the reflection's level is its source's minus 0.07; the means differ by that plus the frame noise
    assert np.all(np.abs(offset) < 0.12) and offset.mean() == pytest.approx(0.07, abs=0.03)
    np.testing.assert_array_equal(classes[:, 12:], classes[:, :6])  # the source's class, confusions included
    assert (classes[:, :12] != np.array([g.class_id for g in objects])).any()


def test_nuisances_detected_at_their_rates_with_overlapping_scores() -> None:
    config = SimulatedDetectorConfig(seed=9)
    detector = SimulatedDetector(config)
    frames = range(400)
    glare = grid(12, size=64.0, first_id=3000, kind=ObjectKind.GLARE)
    rate = detected_ids(detector, glare, frames).mean()
    expected = config.glare_detect_prob * (1.0 - config.miss_prob_visible)
    assert rate == pytest.approx(expected, abs=0.08)  # bursty draws: a wider margin than a binomial's
    fps = grid(12, size=64.0, first_id=4000, kind=ObjectKind.FALSE_POSITIVE)
    fp_scores = [t.detection.score for k in frames for t in detector.detect_traced(fps, k, "right", SHAPE)
                 if t.origin == Origin.TRUTH]
    always = quiet(false_positive_score_mean=0.45)
    assert all(len(always.detect(fps, k, "left", SHAPE)) == 12 for k in range(20))  # hallucinations: always
    object_scores = [d.score for k in frames for d in detector.detect(grid(12), k, "left", SHAPE)]
    assert np.mean(fp_scores) < np.mean(object_scores)
    assert np.quantile(fp_scores, 0.9) > np.quantile(object_scores, 0.2)  # the distributions overlap


def test_extra_false_positives_are_poisson() -> None:
    detector = quiet(extra_false_positives_per_frame=1.5, false_positive_min_px=30.0, false_positive_max_px=40.0)
    traced = [detector.detect_traced([], k, "right", SHAPE) for k in range(2000)]
    counts = np.array([len(t) for t in traced])
    assert counts.mean() == pytest.approx(1.5, abs=4 * np.sqrt(1.5 / 2000))
    assert counts.var() == pytest.approx(1.5, rel=0.15)  # Poisson: variance = mean
    assert all(t.origin == Origin.HALLUCINATED and t.truth_ids == () for frame in traced for t in frame)


# --- class confusion, duplicates, merges -----------------------------------------------------------

def test_class_confusion_rate() -> None:
    detector = quiet(class_confusion_prob=0.05, seed=4)
    truth = grid(12)
    true_class = {g.object_id: g.class_id for g in truth}
    confused = [t.detection.class_id != true_class[t.truth_ids[0]]
                for k in range(300) for t in detector.detect_traced(truth, k, "left", SHAPE)]
    assert len(confused) == 300 * 12
    # chance of a confusion: p times the similarity row's sum (box 1.25, ball 0.5, bottle 1.25)
    assert np.mean(confused) == pytest.approx(0.05 * (1.25 + 0.5 + 1.25) / 3, abs=0.02)


def test_duplicates_overlap_their_box_with_lower_scores() -> None:
    detector = quiet(duplicate_prob=0.1, box_noise_frac=0.03, seed=5)
    truth = grid(12, size=50.0)  # away from the image border: clipping would change the IoU
    n_dup, n_truth = 0, 0
    for k in range(300):
        traced = detector.detect_traced(truth, k, "left", SHAPE)
        own = {t.truth_ids: t.detection for t in traced if t.origin == Origin.TRUTH}
        n_truth += len(own)
        for t in traced:
            if t.origin == Origin.DUPLICATE:
                n_dup += 1
                main = own[t.truth_ids]
                assert 0.5 - 1e-9 <= iou_matrix(t.detection.box[None], main.box[None])[0, 0] <= 0.8 + 1e-9
                assert t.detection.score < main.score and t.detection.class_id == main.class_id
    assert n_dup / n_truth == pytest.approx(0.1, abs=0.025)


def test_overlapping_objects_are_sometimes_merged_in_both_views() -> None:
    detector = quiet(merge_prob=0.3, merge_min_iou=0.3, seed=7)
    pair = [entry(1, (300.0, 240.0, 80.0, 80.0)), entry(2, (330.0, 240.0, 80.0, 80.0))]  # IoU 0.45
    apart = [entry(3, (100.0, 100.0, 60.0, 60.0)), entry(4, (500.0, 100.0, 60.0, 60.0))]
    merged = {}
    for camera in ("left", "right"):
        flags = []
        for k in range(400):
            traced = detector.detect_traced(pair + apart, k, camera, SHAPE)
            merges = [t for t in traced if t.origin == Origin.MERGED]
            flags.append(bool(merges))
            for t in merges:
                assert t.truth_ids == (1, 2)
                np.testing.assert_allclose(t.detection.box, (315.0, 240.0, 110.0, 80.0))  # covers both
            assert len(traced) == (3 if merges else 4)
        merged[camera] = np.array(flags)
    assert merged["left"].mean() == pytest.approx(0.3, abs=0.07)
    np.testing.assert_array_equal(merged["left"], merged["right"])  # both views merge together


# --- on the simulated world ------------------------------------------------------------------------

def test_statistics_on_the_simulated_world() -> None:
    world = SimWorld(make_scenario("cluttered"), seed=1000)
    stats = detector_statistics(world, SimulatedDetector(SimulatedDetectorConfig(seed=1)), range(0, 120))
    assert stats.frames == 120
    buckets = list(stats.recall_by_visibility.values())
    assert buckets[-1] > 0.85 and buckets[-1] > buckets[-2] > buckets[-3]
    assert stats.miss_run_mean > stats.independent_run_bound and stats.lr_miss_correlation > 0.3
    assert stats.counts["truth"] > 0 and stats.counts["hallucinated"] > 0
    table = stats.to_markdown()
    assert "| recall of visible objects |" in table and "left/right miss correlation" in table
    with pytest.raises(ValueError, match="frames"):
        detector_statistics(world, SimulatedDetector(), [])
