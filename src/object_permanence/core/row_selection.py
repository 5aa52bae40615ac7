"""Which rows of the stacked per-track arrays (row i: track i) a step touches.

The world model, its filter bank and its appearance memories update the rows of the tracks matched
in a frame. Usually that is every track, in order: then whole-array reads and writes give the same
numbers as gathering and scattering by the row numbers, at a fraction of the cost (numpy copies an
(N, k) array in one pass, but writes it through an index array row by row).
"""
from __future__ import annotations

import numpy as np


def every_row(rows: np.ndarray, n: int) -> bool:
    """Whether ``rows`` (K,) int are all the rows of arrays of ``n`` rows, in order (0 .. n-1)."""
    return rows.shape[0] == n and bool((rows == np.arange(n)).all())
