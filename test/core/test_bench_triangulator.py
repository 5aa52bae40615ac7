"""The triangulator timing: the shipped triangulator stepped over a tracked scene's frames."""
from __future__ import annotations

import json

import numpy as np

from object_permanence.tools.bench_triangulator import main, summary


def test_summary_of_one_run() -> None:
    times = np.array([1.0, 1.0, 5.0, 7.0, 1.0]) * 1e-3  # seconds
    s = summary(times, window=2)
    assert s == {"total_ms": 15.0, "median_ms": 1.0, "busiest_window_mean_ms": 6.0}
    assert summary(times, window=9)["busiest_window_mean_ms"] == 3.0  # fewer frames than the window: their mean


def test_a_short_scene_is_timed_and_reported(tmp_path) -> None:
    out = tmp_path / "bench"
    assert main(["--scenario", "crossing", "--seed", "3", "--frames", "12", "--runs", "2", "--window", "5",
                 "--config-dir", "config", "--out", str(out)]) == 0
    report = json.loads((out / "triangulator.json").read_text())
    assert report["frames"] == 12 and len(report["runs"]) == 2
    assert 0 < report["median_ms"] <= report["busiest_window_mean_ms"] * 5 and report["total_ms"] > 0
