"""The pipeline benchmark's figures, from synthetic stamps and RSS samples (no ROS)."""
from __future__ import annotations

import os

import numpy as np
import pytest

from object_permanence.tools.bench_pipeline import fps_from_stamps, machine, rss_mb, rss_slope_mb_per_1000


def test_fps_counts_delivered_frames_over_the_stamp_span() -> None:
    stamps = 100.0 + np.arange(301) / 30.0
    assert fps_from_stamps(stamps) == pytest.approx(30.0)
    dropped = np.delete(stamps, np.arange(0, 301, 10)[1:-1])  # every 10th frame lost, ends kept
    assert fps_from_stamps(dropped) == pytest.approx((len(dropped) - 1) / 10.0)  # stamps span 10 s
    assert fps_from_stamps(np.concatenate([stamps, stamps[:5]])) == pytest.approx(30.0)  # duplicates count once
    assert fps_from_stamps(stamps[:1]) == 0.0


def test_rss_slope_is_per_1000_frames() -> None:
    frames = np.arange(0, 3000, 30)
    assert rss_slope_mb_per_1000(frames, 300.0 + 0.002 * frames) == pytest.approx(2.0)
    rng = np.random.default_rng(0)
    flat = 300.0 + rng.normal(0.0, 0.05, frames.size)
    assert abs(rss_slope_mb_per_1000(frames, flat)) < 0.1
    assert np.isnan(rss_slope_mb_per_1000(np.array([5, 5]), np.array([1.0, 2.0])))


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc")
def test_rss_and_machine_read_this_process() -> None:
    assert 1.0 < rss_mb(os.getpid()) < 1e6
    assert rss_mb(2**22 + 12345) is None  # no such process
    info = machine()
    assert info["nproc"] >= 1 and info["cpu_model"]
