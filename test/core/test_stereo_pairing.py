"""Tests for core.stereo_pairing: gates, costs, the gated assignment and hysteresis."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from object_permanence.core.stereo_pairing import StereoPairer, appearance_distance
from object_permanence.core.stereo_rig import RectifiedRig
from object_permanence.core.triangulator_config import TriangulatorConfig
from object_permanence.core.types import Track
from stereo_scenes import FX, project, projections, track


def pairer(**overrides) -> StereoPairer:
    return StereoPairer(RectifiedRig.from_projections(*projections()), TriangulatorConfig(**overrides))


def ids(pairs: list[tuple[int, int]], left: list[Track], right: list[Track]) -> list[tuple[int, int]]:
    return [(left[i].track_id, right[j].track_id) for i, j in pairs]


@pytest.mark.parametrize(
    ("right_centre", "why"),
    [
        ((300.0, 270.0), "30 px row offset"),
        ((320.0 - 60.0 / 50.0, 240.0), "disparity of a point at 50 m"),
        ((320.0 - 60.0 / 0.1, 240.0), "disparity of a point at 0.1 m"),
    ],
)
def test_infeasible_partners_are_never_paired(right_centre, why):
    p = pairer(min_depth_m=0.3, max_depth_m=40.0)
    left = [track(1, (320.0, 240.0), 80.0)]
    assert np.isinf(p.cost_matrix(left, [track(2, right_centre, 80.0)])[0, 0]), why
    assert p.pair(left, [track(2, right_centre, 80.0)]) == [], why
    assert p.pair(left, [track(3, (300.0, 241.0), 80.0)]) == [(0, 0)]  # control: 20 px disparity, 3 m


def test_class_size_ratio_and_nan_boxes_are_gates():
    p = pairer()
    left = [track(1, (320.0, 240.0), 80.0, class_id=0)]
    assert p.pair(left, [track(2, (300.0, 240.0), 80.0, class_id=1)]) == []
    assert p.pair(left, [track(3, (300.0, 240.0), 200.0)]) == []
    assert p.pair([track(4, (np.nan, 240.0), 80.0)], [track(5, (300.0, 240.0), 80.0)]) == []
    assert pairer(require_same_class=False).pair(left, [track(2, (300.0, 240.0), 80.0, class_id=1)]) == [(0, 0)]


def test_feasible_costs_stay_within_max_cost():
    rng = np.random.default_rng(0)
    left = [track(k, (rng.uniform(200, 400), rng.uniform(200, 280)), rng.uniform(40, 60),
                  embedding=rng.normal(size=8)) for k in range(20)]
    right = [track(100 + k, (rng.uniform(150, 380), rng.uniform(200, 280)), rng.uniform(40, 60),
                   embedding=rng.normal(size=8)) for k in range(20)]
    p = pairer(hysteresis_bonus=0.0)
    cost = p.cost_matrix(left, right)
    finite = np.isfinite(cost)
    assert finite.any() and (~finite).any()
    assert np.all(cost[finite] >= 0.0) and np.all(cost[finite] <= p.max_cost)


def test_the_number_of_pairs_never_beats_their_quality():
    """A left track A with an excellent partner X, and two poor but feasible cross pairs A-Y, B-X
    (B-Y is infeasible). With a large infeasible cost the Hungarian maximises the number of pairs
    first and takes the two poor ones; the gated assignment keeps the excellent pair."""
    left = [track(1, (330.0, 240.0), 20.0), track(2, (350.0, 236.6), 14.1)]  # A, B
    right = [track(11, (310.0, 240.0), 20.0), track(12, (305.0, 243.4), 28.5)]  # X, Y
    p = pairer(appearance_weight=0.0)
    cost = p.cost_matrix(left, right)
    assert cost[0, 0] < 0.01 and np.isinf(cost[1, 1])
    assert 1.5 < cost[0, 1] <= p.max_cost and 1.5 < cost[1, 0] <= p.max_cost
    rows, cols = linear_sum_assignment(np.where(np.isinf(cost), 1e6, cost))  # the large-cost convention
    assert sorted(zip(rows.tolist(), cols.tolist())) == [(0, 1), (1, 0)]
    assert ids(p.pair(left, right), left, right) == [(1, 11)]


def _ambiguous_frames(n: int) -> list[tuple[list[Track], list[Track]]]:
    """Two look-alike objects on one row where both assignments are feasible and nearly tied."""
    rng = np.random.default_rng(4)
    frames = []
    for _ in range(n):
        jitter = rng.uniform(-1.0, 1.0, 4)
        left = [track(1, (300.0, 240.0 + jitter[0]), 20.0), track(2, (330.0, 240.0 + jitter[1]), 20.0)]
        right = [track(11, (290.0, 240.0 + jitter[2]), 20.0), track(12, (280.0, 240.0 + jitter[3]), 20.0)]
        frames.append((left, right))
    return frames


def test_hysteresis_keeps_an_ambiguous_pairing_stable():
    frames = _ambiguous_frames(50)

    def pairings(bonus: float) -> set[tuple[int, int]]:
        p = pairer(hysteresis_bonus=bonus)
        return {pair for left, right in frames for pair in ids(p.pair(left, right), left, right)}

    assert len(pairings(0.0)) > 2  # without hysteresis the near-tie flips the pairing
    assert len(pairings(1.0)) == 2  # with it the first pairing is kept while feasible


@pytest.mark.parametrize("cue", ["size", "class", "appearance"])
def test_same_row_objects_at_different_depths_pair_correctly(cue):
    """Near object A (2 m) and far object B (6 m) on one row; both assignments pass the disparity gate."""
    near, far = np.array([0.16, 0.0, 2.0]), np.array([0.24, 0.0, 6.0])
    (ul_a, ur_a), (ul_b, ur_b) = ((project(p[None])[0][0], project(p[None])[1][0]) for p in (near, far))
    heights = {"size": (FX * 1.0 / 2.0, FX * 1.0 / 6.0)}.get(cue, (60.0, 60.0))
    classes = (0, 1) if cue == "class" else (0, 0)
    if cue == "appearance":
        emb_a, emb_b = np.eye(8, dtype=np.float32)[0], np.eye(8, dtype=np.float32)[1]
    else:
        emb_a = emb_b = None
    left = [track(1, ul_a, heights[0], class_id=classes[0], embedding=emb_a),
            track(2, ul_b, heights[1], class_id=classes[1], embedding=emb_b)]
    right = [track(12, ur_b, heights[1], class_id=classes[1], embedding=emb_b),
             track(11, ur_a, heights[0], class_id=classes[0], embedding=emb_a)]
    assert ul_a[0] - ur_b[0] > 0 and ul_b[0] - ur_a[0] > 0  # swapped pairs are disparity-feasible too
    assert sorted(ids(pairer().pair(left, right), left, right)) == [(1, 11), (2, 12)]


def test_appearance_distance_is_half_cosine_distance_and_neutral_when_missing():
    e = np.eye(4)
    left = [track(1, (0, 0), 10.0, embedding=e[0]), track(2, (0, 0), 10.0), track(3, (0, 0), 10.0, embedding=0 * e[0])]
    right = [track(4, (0, 0), 10.0, embedding=e[0]), track(5, (0, 0), 10.0, embedding=-e[0]),
             track(6, (0, 0), 10.0, embedding=e[1])]
    np.testing.assert_allclose(appearance_distance(left, right),
                               [[0.0, 1.0, 0.5], [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]], atol=1e-12)
    other_length = [track(7, (0, 0), 10.0, embedding=np.ones(3))]
    np.testing.assert_allclose(appearance_distance(other_length, right), 0.5)
    # lengths mixed on one side: each length against its own kind, the rest uninformative
    mixed = [track(8, (0, 0), 10.0, embedding=e[0]), track(9, (0, 0), 10.0, embedding=np.ones(3))]
    np.testing.assert_allclose(appearance_distance(mixed, right), [[0.0, 1.0, 0.5], [0.5, 0.5, 0.5]], atol=1e-12)


def test_empty_inputs_pair_nothing_and_clear_the_memory():
    p = pairer()
    left, right = [track(1, (320.0, 240.0), 80.0)], [track(2, (300.0, 240.0), 80.0)]
    assert p.pair(left, right) == [(0, 0)]
    assert p.pair([], right) == [] and p.pair(left, []) == []
    assert np.all(p.cost_matrix(left, right) >= 0.0)  # no hysteresis bonus left over
