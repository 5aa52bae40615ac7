"""Pipeline latency percentiles over the evaluated frames.

Each record's ``latency_s`` is the pipeline's latency for that frame as the caller measured it
(DESIGN: from before the frame is captured or rendered to the 3D output). A frame without a
measurement (``None``, or not finite — e.g. a frame the pipeline dropped, which produced no output
to time) gives no sample; it still counts against the pipeline in every other metric through its
empty outputs, and ``latency_samples`` beside ``frames`` in the counts shows how many were timed.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from object_permanence.core.eval.records import FrameRecord


def latency_percentiles(records: Sequence[FrameRecord]) -> tuple[float, float, int]:
    """Median and 95th percentile (linear interpolation) of per-frame latency in milliseconds.

    Returns ``(p50_ms, p95_ms, n_samples)``; 0.0 for both without samples.
    """
    lat = np.array([r.latency_s for r in records if r.latency_s is not None], dtype=np.float64)
    lat = lat[np.isfinite(lat)]
    if lat.size == 0:
        return 0.0, 0.0, 0
    p50, p95 = np.percentile(lat * 1e3, [50.0, 95.0])  # seconds → milliseconds
    return float(p50), float(p95), int(lat.size)
