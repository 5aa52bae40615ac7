"""Closed-form geometry of the simulated world: sinusoidal paths, rect/box helpers, exact visibility.

Rects are ``x1, y1, x2, y2`` in continuous pixels (pixel ``i`` covers ``[i, i + 1)``), boxes are
``cx, cy, w, h``. Visibility is computed exactly on box geometry (no per-pixel masks): each target
rect is cut into cells at every blocker edge and image edge (coordinate compression), so every cell
is either wholly covered or wholly free, and the free cells give both the visible fraction and the
bounding box of the visible part.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from object_permanence.core.sim.rig import StereoRig


@dataclass(frozen=True)
class SinePaths:
    """Vectorised paths ``p(t) = centre + sum_j amp_j sin(omega_j t' + phase_j)``, ``t' = max(t, hold)``.

    centre: (N, 3) metres; amp, omega, phase: (N, 3, J) in metres, rad/s, rad; hold: (N,) seconds,
    or None for no hold. Before its ``hold`` time a path stays where it is at ``hold`` (a parked
    entity waiting to enter: with the hold at a turning point of the sine the path stays smooth).
    """

    centre: np.ndarray
    amp: np.ndarray
    omega: np.ndarray
    phase: np.ndarray
    hold: np.ndarray | None = None

    def at(self, t: float) -> np.ndarray:
        """(N, 3) positions at time t (s)."""
        return self.at_times(np.array([float(t)]))[0]

    def at_times(self, times: np.ndarray) -> np.ndarray:
        """(T, N, 3) positions at each of the (T,) times (s)."""
        times = np.asarray(times, dtype=np.float64)[:, None]  # (T, 1)
        if self.hold is not None:
            times = np.maximum(times, self.hold[None, :])  # t' = max(t, hold), (T, N)
        angle = self.omega[None] * times[:, :, None, None] + self.phase[None]
        return self.centre[None] + (self.amp[None] * np.sin(angle)).sum(axis=3)


@dataclass(frozen=True)
class VisibleParts:
    """What of each target is visible.

    fraction: (N,) visible share of the full rect, [0, 1].
    box: (N, 4) ``cx, cy, w, h`` pixels of the bounding box of the visible part (cut by the image
    border and by nearer blockers); all zeros where nothing is visible.
    """

    fraction: np.ndarray
    box: np.ndarray


def rects_to_boxes(rects: np.ndarray) -> np.ndarray:
    """(N, 4) ``cx, cy, w, h`` of (N, 4) rects ``x1, y1, x2, y2``."""
    return np.stack([0.5 * (rects[:, 0] + rects[:, 2]), 0.5 * (rects[:, 1] + rects[:, 3]),
                     rects[:, 2] - rects[:, 0], rects[:, 3] - rects[:, 1]], axis=1)


def clipped_boxes(rects: np.ndarray, width: int, height: int) -> np.ndarray:
    """(N, 4) ``cx, cy, w, h`` of (N, 4) rects ``x1, y1, x2, y2`` clipped to the ``width x height`` image."""
    return rects_to_boxes(np.clip(rects, 0.0, np.array([width, height, width, height], dtype=np.float64)))


def project_rects(rig: StereoRig, centres: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """(2, N, 4) rects ``x1, y1, x2, y2`` per view (left, right) of fronto-parallel rectangles.

    centres: (N, 3) metres in the left optical frame; sizes: (N, 2) width, height in metres.
    """
    if len(centres) == 0:
        return np.zeros((2, 0, 4))
    uv_left, uv_right = rig.project(centres)
    half = 0.5 * sizes * np.array([rig.fx, rig.fy]) / centres[:, 2:3]  # w = fx S / Z
    return np.stack([np.concatenate([uv - half, uv + half], axis=1) for uv in (uv_left, uv_right)])


def off_image(rects: np.ndarray, width: int, height: int) -> np.ndarray:
    """(...) True where a rect ``x1, y1, x2, y2`` (shape (..., 4)) lies wholly outside the image."""
    return ((rects[..., 2] <= 0.0) | (rects[..., 0] >= width) | (rects[..., 3] <= 0.0) | (rects[..., 1] >= height))


def true_runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(starts, lengths) of the runs of True in a 1-D boolean array."""
    edges = np.diff(np.concatenate([[0], np.asarray(mask, dtype=np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return starts, ends - starts


def visible_parts(targets: np.ndarray, target_rank: np.ndarray, blockers: np.ndarray,
                  blocker_rank: np.ndarray, width: int, height: int) -> VisibleParts:
    """Exact visible fraction and visible bounding box of each target rect.

    targets (N, 4), blockers (M, 4): rects ``x1, y1, x2, y2`` in pixels; target_rank (N,),
    blocker_rank (M,): depth order, a blocker hides a target when its rank is smaller (nearer).
    Each target is cut into a grid of cells at every blocker edge and image edge (coordinate
    compression), so each cell is either wholly covered or wholly free; the visible fraction is the
    free cells' area over the target's, the visible box spans the free cells of positive area.
    Both axes are handled as one (N, 2, K) batch: x and y get the same number of cuts.
    Cost: O(N M^2) with M the number of blockers (a few dozen at most).
    """
    targets = np.asarray(targets, dtype=np.float64).reshape(-1, 4)
    blockers = np.asarray(blockers, dtype=np.float64).reshape(-1, 4)
    n = len(targets)
    if n == 0:
        return VisibleParts(np.zeros(0), np.zeros((0, 4)))
    lo, hi = targets[:, :2, None], targets[:, 2:, None]  # (n, 2 axes, 1)
    image = np.array([[0.0, width], [0.0, height]])
    edges = np.concatenate([blockers[:, [0, 2]].reshape(1, -1), blockers[:, [1, 3]].reshape(1, -1)])  # (2, 2M)
    cuts = np.concatenate([lo, hi, np.broadcast_to(edges, (n, 2, edges.shape[1])),
                           np.broadcast_to(image, (n, 2, 2))], axis=2)
    cuts = np.sort(np.clip(cuts, lo, hi), axis=2)  # (n, 2, K + 1) cut positions inside each target
    mid, size = 0.5 * (cuts[:, :, 1:] + cuts[:, :, :-1]), np.diff(cuts, axis=2)  # cell centres, sizes (n, 2, K)
    # inside[n, a, i, m]: cell i of axis a lies within blocker m's extent along a
    inside = ((mid[..., None] >= blockers[:, :2].T[None, :, None, :])
              & (mid[..., None] < blockers[:, 2:].T[None, :, None, :]))
    in_front = blocker_rank[None, :] < target_rank[:, None]  # (N, M)
    # covered[n, i, j] = any_m in_front[n, m] & inside[n, x, i, m] & inside[n, y, j, m], as a batched matmul
    hits = np.matmul((inside[:, 0] & in_front[:, None, :]).astype(np.float32),
                     inside[:, 1].transpose(0, 2, 1).astype(np.float32))
    usable = (mid >= 0.0) & (mid < image[None, :, 1:]) & (size > 0.0)  # (n, 2, K): in the image, not empty
    free = usable[:, 0, :, None] & usable[:, 1, None, :] & (hits == 0)  # (n, Kx, Ky)
    free_area = (size[:, 0, :, None] * size[:, 1, None, :] * free).sum(axis=(1, 2))
    area = (hi[:, 0, 0] - lo[:, 0, 0]) * (hi[:, 1, 0] - lo[:, 1, 0])
    seen = free_area > 0.0
    fraction = np.clip(free_area / np.where(seen, area, 1.0), 0.0, 1.0)  # clip: rounding
    # visible bbox per axis: low cut of the first free cell .. high cut of the last one
    used = np.stack([free.any(axis=2), free.any(axis=1)], axis=1)  # (n, 2, K)
    first = used.argmax(axis=2)[..., None]
    last = used.shape[2] - used[:, :, ::-1].argmax(axis=2)[..., None]  # index of the last free cell + 1
    low = np.take_along_axis(cuts, first, axis=2)[..., 0]  # (n, 2)
    high = np.take_along_axis(cuts, last, axis=2)[..., 0]
    box = np.where(seen[:, None], np.concatenate([0.5 * (low + high), high - low], axis=1), 0.0)  # cx, cy, w, h
    return VisibleParts(fraction=fraction, box=box)
