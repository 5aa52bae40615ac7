"""Shared scenes of the stereo tests: a synthetic rectified rig (fx = fy = 500, 640x480, B = 0.12 m),
2D tracks of projected points, and rendered image pairs of a textured board."""
from __future__ import annotations

import cv2
import numpy as np

from object_permanence.core.types import Track, TrackState

FX, CX, CY, B = 500.0, 320.0, 240.0, 0.12
IMAGE_SIZE = (640, 480)
TEXEL_M = 3.0 / FX  # one texel is one pixel at 3 m
OBJECT_TEXELS = (60, 100)  # a 0.36 m x 0.6 m board


def projections(cx_right: float = CX, baseline: float = B) -> tuple[np.ndarray, np.ndarray]:
    """ROS-convention rectified projections: P_left = K [I | 0], P_right[0, 3] = -fx B."""
    p_left = np.array([[FX, 0, CX, 0], [0, FX, CY, 0], [0, 0, 1, 0]], dtype=np.float64)
    p_right = np.array([[FX, 0, cx_right, -FX * baseline], [0, FX, CY, 0], [0, 0, 1, 0]], dtype=np.float64)
    return p_left, p_right


def project(points: np.ndarray, cx_right: float = CX) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3) metres -> pixel centres (N, 2) in the left and right rectified images."""
    x, y, z = points.T
    v = FX * y / z + CY
    return np.stack([FX * x / z + CX, v], 1), np.stack([FX * (x - B) / z + cx_right, v], 1)


def track(track_id: int, centre, height: float, state: TrackState = TrackState.VISIBLE, class_id: int = 0,
          embedding: np.ndarray | None = None, sigma_px: float = 0.5, persistence: float = float("nan"),
          frames_since_seen: int = 0, measurement: np.ndarray | None = None) -> Track:
    """A track with box ``(centre, 0.6 h, h)``; ``measurement`` (4,) sets the matched raw detection box."""
    t = Track(
        track_id=track_id, state=state,
        box=np.array([centre[0], centre[1], 0.6 * height, height], dtype=np.float64),
        velocity=np.zeros(2), covariance=np.diag([sigma_px**2, sigma_px**2, 4.0, 4.0]),
        score=0.9, class_id=class_id, class_name=f"class{class_id}", age=10, hits=10,
        frames_since_seen=frames_since_seen, embedding=embedding, persistence_score=persistence,
    )
    if measurement is not None:
        t.measurement = np.asarray(measurement, dtype=np.float64)
    return t


def stereo_tracks(points: np.ndarray, heights_m: np.ndarray, first_id: int = 1, **kwargs) -> tuple[list, list]:
    """Left tracks ``first_id + k`` and right tracks ``100 + first_id + k`` at the projections of ``points``."""
    uv_l, uv_r = project(points)
    h_px = FX * heights_m / points[:, 2]
    left = [track(first_id + k, uv_l[k], h_px[k], **kwargs) for k in range(len(points))]
    right = [track(100 + first_id + k, uv_r[k], h_px[k], **kwargs) for k in range(len(points))]
    return left, right


def board_texture(seed: int = 0) -> np.ndarray:
    """(100, 60) float32 smooth random texture of the board, mean 128, std 50 grey levels."""
    noise = np.random.default_rng(seed).normal(0.0, 1.0, OBJECT_TEXELS[::-1]).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 1.5)
    return smooth / smooth.std() * 50.0 + 128.0


def render_stereo(centre: np.ndarray, board: np.ndarray, right_board: np.ndarray | None = None,
                  slant: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Rectified BGR pair of a board centred at ``centre`` (3,) m, over a faint background at infinity.

    right_board: replaces the board in the right view (inconsistent content). slant: the right view
    of the board is compressed horizontally by ``1 - slant`` about its centre (a board turned about
    its vertical axis: the disparity grows by ``slant`` px per column to the right, the centre's unchanged).
    """
    background = cv2.GaussianBlur(np.random.default_rng(99).normal(0, 1, IMAGE_SIZE[::-1]).astype(np.float32),
                                  (0, 0), 3.0)
    background = background / background.std() * 12.0 + 128.0
    x, y, z = centre
    scale = FX * TEXEL_M / z  # pixels per texel
    views = []
    for baseline, texture, squeeze in ((0.0, board, 1.0), (B, board if right_board is None else right_board,
                                                            1.0 - slant)):
        sx = scale * squeeze
        uc = FX * (x - baseline) / z + CX  # the board centre's column
        u0 = uc - sx * (0.5 * OBJECT_TEXELS[0] - 0.5)  # texel k's centre lands on u0 + k * sx
        v0 = FX * y / z + CY - scale * (0.5 * OBJECT_TEXELS[1] - 0.5)
        warp = np.float32([[sx, 0, u0], [0, scale, v0]])
        layer = cv2.warpAffine(texture, warp, IMAGE_SIZE, flags=cv2.INTER_LINEAR)
        mask = cv2.warpAffine(np.ones_like(texture), warp, IMAGE_SIZE, flags=cv2.INTER_LINEAR)
        image = background * (1.0 - mask) + layer * mask
        views.append(np.repeat(np.clip(np.round(image), 0, 255).astype(np.uint8)[..., None], 3, axis=2))
    return views[0], views[1]


def board_tracks(centre: np.ndarray, offsets_px: np.ndarray, **kwargs) -> tuple[list, list]:
    """Left/right tracks of the board whose boxes are off by ``offsets_px`` (2, 2): rows = views, columns = (u, v)."""
    left, right = stereo_tracks(centre[None], np.array([OBJECT_TEXELS[1] * TEXEL_M]), **kwargs)
    left[0].box[:2] += offsets_px[0]
    right[0].box[:2] += offsets_px[1]
    return left, right
