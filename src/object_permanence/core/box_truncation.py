"""How far a detection box's centre may lie from its object's: the part a truncated box misses.

A detector boxes the visible part of an object. With part of it hidden (an occluder in front, in
one view or both) the box is narrower or shorter than the object, and its centre is off the
object's by up to half the missing extent, on a side one frame cannot tell: an object sliding
behind a pillar and a standing one passed by a moving occluder shrink alike (the world model's
ghost onset meets the same ambiguity, :mod:`core.ghost_onset`). The triangulator therefore takes
the centre of a truncated box as that much less certain: per coordinate its standard deviation
gains ``frac * max(steady - size, 0) / 2`` (in quadrature with the detector's noise), ``steady``
the track's steady size (:class:`SteadyExtents`). One occluder hides the same side of the object in
both views, so the triangulator takes the two views' cuts as moving both centres alike (covariance
``σ_cut,left σ_cut,right``): across the ray, not in depth. Its 3D filter then leans on its own
prediction across the image while the box is cut, and on the disparity for depth.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from object_permanence.core.ghost_onset import steady_step


class SteadyExtents:
    """Each 2D track's steady box size ``w, h`` (px), keyed by track id: the rule of
    :class:`core.ghost_onset.SteadySize` (an exponential average of its detected sizes that ignores
    a size below ``STEADY_GATE`` of it), started at the track's first detected size."""

    def __init__(self) -> None:
        self._size: dict[int, np.ndarray] = {}

    def update(self, track_ids: Iterable[int], boxes: np.ndarray) -> None:
        """One detected box ``cx, cy, w, h`` (K, 4) per track id (K ids); one step for all of them
        (a new track starts at its size: a step from its own size stays there)."""
        ids = list(track_ids)
        sizes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)[:, 2:4]
        steady = steady_step(self.sizes(ids, np.pad(sizes, ((0, 0), (2, 0)))), sizes)
        self._size.update(zip(ids, steady))

    def sizes(self, track_ids: Iterable[int], boxes: np.ndarray) -> np.ndarray:
        """(K, 2) steady sizes of ``track_ids``; a track without one gets its box's size (K, 4)."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        return np.array([self._size.get(tid, box[2:4]) for tid, box in zip(track_ids, boxes)],
                        dtype=np.float64).reshape(-1, 2)

    def keep(self, track_ids: Iterable[int]) -> None:
        """Forget every track but ``track_ids``."""
        ids = set(track_ids)
        self._size = {tid: s for tid, s in self._size.items() if tid in ids}


def truncation_std(sizes: np.ndarray, steady: np.ndarray, frac: float) -> np.ndarray:
    """(K, 2) extra standard deviation (px) of the centres ``u, v`` of boxes of sizes ``sizes`` (K, 2)
    whose tracks' steady sizes are ``steady`` (K, 2): ``frac`` times half the missing extent."""
    missing = np.clip(np.asarray(steady, dtype=np.float64) - np.asarray(sizes, dtype=np.float64), 0.0, None)
    return frac * missing / 2.0
