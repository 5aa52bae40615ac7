"""Tests of the detector simulator's config, presets, counter-based draws and latent processes."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from object_permanence.core.detection import counter_random as cr
from object_permanence.core.detection.sim_detector_config import (
    CLASS_SIMILARITY,
    DIFFICULTIES,
    PRESETS,
    SimulatedDetectorConfig,
)
from object_permanence.core.detection.sim_detector_latent import (
    BLOCK_FRAMES,
    chain_states,
    confidence_levels,
    confused_classes,
    detectability,
)
from object_permanence.core.types import ObjectKind


@pytest.mark.parametrize(("field", "value"), [
    ("miss_prob_visible", 1.5), ("miss_prob_half_hidden", -0.1), ("min_visibility", float("nan")),
    ("min_visible_px", -1.0), ("miss_size_ref_px", 0.0), ("miss_logit_per_halving", -0.5),
    ("burst_off_fraction", 1.0), ("burst_mean_off_frames", 0.5), ("miss_spell_coherence", 1.2),
    ("miss_view_independence", -0.1), ("confidence_mean", 1.0), ("low_confidence_mean", 0.0),
    ("low_confidence_fraction", 2.0), ("level_concentration", 0.0), ("score_frame_noise", -1.0),
    ("score_hidden_drop", float("inf")), ("score_threshold", 1.5), ("reflection_detect_prob", -0.2),
    ("reflection_score_offset", -0.1), ("glare_detect_prob", 1.1), ("glare_score_mean", 0.0),
    ("false_positive_score_mean", 1.0), ("extra_false_positives_per_frame", -0.5), ("false_positive_min_px", 0.0),
    ("false_positive_max_px", 10.0), ("box_noise_frac", -0.01), ("box_outlier_prob", 1.5),
    ("class_confusion_prob", 0.9), ("class_confusion_frames", 0), ("class_confusion_frames", 2.5),
    ("duplicate_prob", -0.1), ("merge_prob", 1.5), ("merge_min_iou", 2.0), ("seed", -3), ("seed", True),
    ("miss_prob_visible", "0.1"), ("merge_prob", None),
])
def test_invalid_config_raises_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        SimulatedDetectorConfig(**{field: value})


@pytest.mark.parametrize(("kwargs", "needle"), [
    (dict(miss_prob_visible=0.3, miss_prob_half_hidden=0.2), "miss_prob_half_hidden"),
    (dict(miss_spell_coherence=0.7, miss_view_independence=0.4), "miss_spell_coherence"),
    (dict(burst_off_fraction=0.9, burst_mean_off_frames=1.0), "burst_mean_off_frames"),
    (dict(false_positive_min_px=50.0, false_positive_max_px=40.0), "false_positive_max_px"),
])
def test_inconsistent_fields_raise_naming_them(kwargs: dict, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        SimulatedDetectorConfig(**kwargs)


def test_presets() -> None:
    assert DIFFICULTIES == ("easy", "realistic", "hard", "sim_yolo")
    assert SimulatedDetectorConfig.preset() == SimulatedDetectorConfig() == SimulatedDetectorConfig.preset("realistic")
    easy, hard = SimulatedDetectorConfig.preset("easy"), SimulatedDetectorConfig.preset("hard")
    assert easy.burst_off_fraction == 0.0 and easy.low_confidence_fraction == 0.0 and easy.merge_prob == 0.0
    assert easy.miss_prob_visible < SimulatedDetectorConfig().miss_prob_visible < hard.miss_prob_visible
    assert set(PRESETS["hard"]) <= {f for f in SimulatedDetectorConfig.__dataclass_fields__}
    tuned = SimulatedDetectorConfig.preset("hard", seed=7, merge_prob=0.0)
    assert tuned.seed == 7 and tuned.merge_prob == 0.0 and tuned.miss_prob_visible == hard.miss_prob_visible
    with pytest.raises(ValueError, match="difficulty"):
        SimulatedDetectorConfig.preset("nightmare")
    with pytest.raises(ValueError, match="miss_prob"):
        SimulatedDetectorConfig.preset("easy", miss_prob=0.1)  # the former field name is gone
    with pytest.raises(ValueError, match="merge_prob"):
        SimulatedDetectorConfig.preset("easy", merge_prob=3.0)


def test_every_field_is_documented_with_its_source() -> None:
    from object_permanence.ros.params import _field_descriptions

    docs = _field_descriptions(SimulatedDetectorConfig)
    for name in SimulatedDetectorConfig.__dataclass_fields__:
        assert name in docs, name
        assert name == "seed" or "Source:" in docs[name], name


# --- counter-based draws -----------------------------------------------------------------------

def test_uniform_is_deterministic_open_and_uniform() -> None:
    u = cr.uniform(3, 1, np.arange(200)[:, None], np.arange(500)[None, :])
    assert u.shape == (200, 500) and 0.0 < u.min() and u.max() < 1.0
    assert u.mean() == pytest.approx(0.5, abs=0.003) and u.var() == pytest.approx(1 / 12, abs=0.002)
    np.testing.assert_array_equal(u, cr.uniform(3, 1, np.arange(200)[:, None], np.arange(500)[None, :]))
    # scalar parts (mixed in Python) give the numbers of the same parts given as arrays (numpy)
    scalar = cr.uniform(3, 1, 17, 42)
    assert scalar == cr.uniform(3, 1, np.array([17]), 42)[0] == cr.uniform(np.array([3]), 1, 17, 42)[0]
    assert cr.uniform(3, 1, 17, 42) != cr.uniform(3, 1, 42, 17)  # the order of the parts matters
    neighbours = cr.uniform(9, np.arange(100_000))
    assert abs(np.corrcoef(neighbours[:-1], neighbours[1:])[0, 1]) < 0.01


def test_normal_beta_geometric_and_poisson_draws() -> None:
    keys = np.arange(100_000)
    n = cr.normal(1, keys)
    assert n.mean() == pytest.approx(0.0, abs=0.01) and n.std() == pytest.approx(1.0, abs=0.01)
    b = cr.beta(6.0, 2.0, 2, keys)
    assert b.mean() == pytest.approx(0.75, abs=0.003)
    g = cr.geometric(cr.uniform(3, keys), 0.25, cap=1000)
    assert g.min() == 1 and g.mean() == pytest.approx(4.0, rel=0.02)
    assert (cr.geometric(cr.uniform(3, keys[:10]), 1.0, cap=64) == 1).all()
    assert (cr.geometric(cr.uniform(3, keys[:10]), 0.0, cap=64) == 64).all()
    p = cr.poisson(cr.uniform(4, keys), 1.5)
    assert p.mean() == pytest.approx(1.5, abs=0.02) and p.var() == pytest.approx(1.5, rel=0.03)
    assert (cr.poisson(cr.uniform(4, keys[:10]), 0.0) == 0).all()


# --- latent processes ----------------------------------------------------------------------------

def _off_runs(off: np.ndarray) -> np.ndarray:
    """Lengths of the runs of True along axis 0 of (T, N) flags, within each column."""
    padded = np.pad(off.T.astype(np.int8), ((0, 0), (1, 1)))
    edges = np.diff(padded, axis=1)
    return np.nonzero(edges == -1)[1] - np.nonzero(edges == 1)[1]


def test_detectability_chain_is_stationary_with_the_configured_spells() -> None:
    config = SimulatedDetectorConfig(burst_off_fraction=0.2, burst_mean_off_frames=4.0, seed=5)
    ids = np.arange(1, 301)
    off = np.array([chain_states(config, ids, k)[0] for k in range(2 * BLOCK_FRAMES)])  # (T, N)
    assert off.mean() == pytest.approx(0.2, abs=0.01)
    # block edges cut a few spells short: a mean off spell within 15% of 4 frames
    assert _off_runs(off).mean() == pytest.approx(4.0, rel=0.15)
    off_again = np.array([chain_states(config, ids, k)[0] for k in reversed(range(2 * BLOCK_FRAMES))])[::-1]
    np.testing.assert_array_equal(off, off_again)  # random access: the frame order does not matter


def test_detectability_is_uniform_bursty_and_shared_by_the_views() -> None:
    config = SimulatedDetectorConfig(burst_off_fraction=0.1, burst_mean_off_frames=8.0, miss_spell_coherence=0.85,
                                     miss_view_independence=0.1, seed=2)
    ids = np.arange(1, 201)
    left = np.array([detectability(config, ids, k, 0) for k in range(640)])
    right = np.array([detectability(config, ids, k, 1) for k in range(640)])
    for u in (left, right):
        assert u.mean() == pytest.approx(0.5, abs=0.01) and (u < 0.05).mean() == pytest.approx(0.05, abs=0.005)
    missed_left, missed_right = left < 0.05, right < 0.05
    p = missed_left.mean()
    assert _off_runs(missed_left).mean() > 2.0 / (1.0 - p)  # independent misses would give 1 / (1 - p)
    assert np.corrcoef(missed_left.ravel(), missed_right.ravel())[0, 1] > 0.5
    assert not np.array_equal(missed_left, missed_right)  # a per-camera part remains
    independent = SimulatedDetectorConfig(burst_off_fraction=0.0, burst_mean_off_frames=1.0, miss_spell_coherence=0.0,
                                          miss_view_independence=1.0, seed=2)
    left = np.array([detectability(independent, ids, k, 0) for k in range(640)]) < 0.05
    right = np.array([detectability(independent, ids, k, 1) for k in range(640)]) < 0.05
    assert _off_runs(left).mean() == pytest.approx(1.0 / (1.0 - left.mean()), abs=0.02)
    assert abs(np.corrcoef(left.ravel(), right.ravel())[0, 1]) < 0.03


def test_confidence_levels_persist_per_object_and_reflections_take_their_source() -> None:
    config = SimulatedDetectorConfig(low_confidence_fraction=0.15, seed=4)
    ids = np.arange(1, 2001)
    objects = np.full(ids.size, int(ObjectKind.OBJECT))
    levels = confidence_levels(config, ids, objects, np.zeros_like(ids))
    np.testing.assert_array_equal(levels, confidence_levels(config, ids, objects, np.zeros_like(ids)))
    always_low = confidence_levels(replace(config, low_confidence_fraction=1.0), ids, objects, np.zeros_like(ids))
    never_low = confidence_levels(replace(config, low_confidence_fraction=0.0), ids, objects, np.zeros_like(ids))
    assert always_low.mean() == pytest.approx(0.4, abs=0.01) and never_low.mean() == pytest.approx(0.75, abs=0.01)
    low = levels == always_low  # each object draws its level once, from one of the two distributions
    np.testing.assert_array_equal(levels[~low], never_low[~low])
    assert low.mean() == pytest.approx(0.15, abs=0.025)
    reflections = confidence_levels(config, ids + 5000, np.full(ids.size, int(ObjectKind.REFLECTION)), ids)
    np.testing.assert_allclose(reflections, np.clip(levels - config.reflection_score_offset, 0.02, 0.98))
    glare = confidence_levels(config, ids, np.full(ids.size, int(ObjectKind.GLARE)), np.zeros_like(ids))
    assert glare.mean() == pytest.approx(config.glare_score_mean, abs=0.01)


def test_class_confusion_prefers_similar_classes_and_lasts_a_few_frames() -> None:
    config = SimulatedDetectorConfig(class_confusion_prob=0.1, class_confusion_frames=5, seed=8)
    ids = np.arange(1, 601)
    classes = np.arange(600) % 3  # box, ball, bottle
    reported = np.array([confused_classes(config, ids, classes, k) for k in range(200)])  # (T, N)
    confused = reported != classes[None, :]
    rates = [confused[:, classes == c].mean() for c in range(3)]
    for c in range(3):  # the chance of any confusion is p times the similarity row's sum
        assert rates[c] == pytest.approx(0.1 * CLASS_SIMILARITY[c].sum(), abs=0.01)
    boxes = reported[:, classes == 0][confused[:, classes == 0]]
    assert (boxes == 2).mean() == pytest.approx(0.8, abs=0.05)  # box -> bottle four times box -> ball
    assert _off_runs(confused).mean() > 3.0  # episodes of class_confusion_frames, not single frames
    unknown = confused_classes(config, ids[:5], np.full(5, 7), 3)
    np.testing.assert_array_equal(unknown, 7)
