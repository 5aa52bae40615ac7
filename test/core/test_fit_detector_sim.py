"""Fitting the detector simulator to a detector's calibration figures (tools/fit_detector_sim)."""
from __future__ import annotations

import math

import pytest

from object_permanence.core.detection.simulated import SimulatedDetectorConfig
from object_permanence.core.sim import SimWorld, make_scenario
from object_permanence.tools.fit_detector_sim import (
    FIT_GRIDS,
    FIT_STATISTICS,
    ONE_SIDED_LOSS,
    FitProblem,
    coordinate_search,
    fit_loss,
)


def test_coordinate_search_finds_the_grid_minimum_and_skips_rejected_candidates() -> None:
    def loss(v: dict) -> float:
        if v["a"] == 3:  # an invalid combination: the config would raise
            raise ValueError("rejected")
        return (v["a"] - 2.9) ** 2 + (v["b"] - 0.5) ** 2 + 0.1 * v["a"] * v["b"]

    best, history = coordinate_search(loss, {"a": 0, "b": 0.0}, {"a": (0, 1, 2, 3, 4), "b": (0.0, 0.25, 0.5, 1.0)},
                                      passes=2)
    assert best == {"a": 2, "b": 0.5}  # a = 3 would be nearer but is rejected
    assert history[0] == loss({"a": 0, "b": 0.0}) and history[-1] == loss(best)
    assert all(later <= earlier for earlier, later in zip(history, history[1:]))


def test_a_start_the_loss_rejects_is_an_error() -> None:
    def loss(v: dict) -> float:
        raise ValueError("rejected")

    with pytest.raises(ValueError, match="starting values"):
        coordinate_search(loss, {"a": 0}, {"a": (0, 1)})


def test_the_loss_counts_only_figures_both_sides_have() -> None:
    target = {name: 0.0 for name in FIT_STATISTICS}
    simulated = dict(target)
    name, scale = next(iter(FIT_STATISTICS.items()))
    simulated[name] = 2 * scale
    assert fit_loss(simulated, target) == pytest.approx(4.0)
    target[name] = math.nan  # none of that kind on one side only: a fixed price, not a free pass
    assert fit_loss(simulated, target) == ONE_SIDED_LOSS
    simulated[name] = math.nan  # on neither side: nothing to compare
    assert fit_loss(simulated, target) == 0.0


def test_every_grid_value_is_a_valid_setting_of_its_field() -> None:
    for name, grid in FIT_GRIDS.items():
        assert getattr(SimulatedDetectorConfig(), name) in grid  # a real field; the search starts on the grid
        for value in grid:
            try:
                SimulatedDetectorConfig.preset("realistic", **{name: value})
            except ValueError as exc:  # only the documented cross-field rules may reject a value
                assert "must be" in str(exc) and name in str(exc)


def test_the_fit_recovers_the_settings_of_a_simulated_target() -> None:
    """A target made by the simulator itself with known settings: the search, started from
    ``realistic``, must land on them (the figures respond to the fitted fields, and the search
    compares candidates on the same draws)."""
    worlds = [SimWorld(make_scenario("noisy"), 3)]
    truth = {"box_noise_frac": 0.02, "duplicate_prob": 0.01}
    target = FitProblem(worlds, 60, {}).simulated(truth)
    problem = FitProblem(worlds, 60, target)
    start = {name: getattr(SimulatedDetectorConfig.preset("realistic"), name) for name in truth}
    assert start != truth
    best, history = coordinate_search(problem.loss, start, {name: FIT_GRIDS[name] for name in truth}, passes=1)
    # box jitter is a continuous figure: only the true value matches it; duplicates are counts, and
    # on 60 frames a neighbouring rate can draw the very same duplicates (then it matches exactly too)
    assert best["box_noise_frac"] == truth["box_noise_frac"]
    assert best["duplicate_prob"] != start["duplicate_prob"]
    assert fit_loss(problem.simulated(best), target) == 0.0
    assert history[-1] == 0.0 < history[0]


def test_the_sim_yolo_preset_is_a_point_of_the_fits_grid() -> None:
    """The shipped preset holds values the fit can return (copied from its report), for fitted
    fields only: the rest stay at ``realistic``."""
    from object_permanence.core.detection.sim_detector_config import PRESETS

    fitted = PRESETS["sim_yolo"]
    assert fitted and set(fitted) <= set(FIT_GRIDS)
    assert all(value in FIT_GRIDS[name] for name, value in fitted.items())
    assert SimulatedDetectorConfig.preset("sim_yolo") != SimulatedDetectorConfig.preset("realistic")
