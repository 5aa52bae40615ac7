"""The simulated stereo rig: two identical, rectified pinhole cameras side by side.

Coordinates follow ROS optical-frame conventions: x right, y down, z forward (metres), with the
left camera at the origin and the right camera at ``x = +baseline``. Image coordinates are
continuous pixels, pixel ``i`` covering ``[i, i + 1)``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

CAMERA_SIDES = ("left", "right")


@dataclass(frozen=True)
class StereoRig:
    """A calibrated, rectified stereo pair sharing one intrinsic matrix K.

    cx, cy default to the image centre (``width / 2``, ``height / 2``). Both cameras have zero
    distortion and identity rectification; the right projection matrix carries the baseline
    (ROS convention ``P_right[0, 3] = -fx * baseline``).
    """

    width: int = 640
    height: int = 480
    fx: float = 500.0
    fy: float = 500.0
    cx: float | None = None
    cy: float | None = None
    baseline: float = 0.12

    def __post_init__(self) -> None:
        for name in ("width", "height"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(f"StereoRig: {name} must be a positive integer, got {value!r}")
        for name in ("fx", "fy", "baseline"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"StereoRig: {name} must be a finite positive number, got {value!r}")
        # frozen dataclass: fill the defaults through object.__setattr__
        if self.cx is None:
            object.__setattr__(self, "cx", self.width / 2.0)
        if self.cy is None:
            object.__setattr__(self, "cy", self.height / 2.0)
        for name, limit in (("cx", self.width), ("cy", self.height)):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and 0.0 <= value <= limit):
                raise ValueError(f"StereoRig: {name} must lie inside the image [0, {limit}], got {value!r}")

    @property
    def K(self) -> np.ndarray:
        """(3, 3) intrinsic matrix shared by both rectified cameras."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def P_left(self) -> np.ndarray:
        """(3, 4) left projection matrix ``K [I | 0]``."""
        return np.hstack([self.K, np.zeros((3, 1))])

    @property
    def P_right(self) -> np.ndarray:
        """(3, 4) right projection matrix ``K [I | -b e_x]``, i.e. ``P[0, 3] = -fx * baseline``."""
        P = self.P_left
        P[0, 3] = -self.fx * self.baseline  # Tx = -fx * B (ROS CameraInfo convention)
        return P

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Project (N, 3) points of the left optical frame (metres) into both images.

        Returns (uv_left (N, 2), uv_right (N, 2)) in pixels; rows of points with ``z <= 0``
        (behind the cameras) come back NaN.
        """
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        x, y, z = pts[:, 0], pts[:, 1], pts[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            inv_z = np.where(z > 0.0, 1.0 / z, np.nan)
        u_left = self.fx * x * inv_z + self.cx  # u = fx X / Z + cx
        v = self.fy * y * inv_z + self.cy  # v = fy Y / Z + cy (rows shared: rectified)
        u_right = u_left - self.fx * self.baseline * inv_z  # u_R = u_L - fx B / Z (disparity)
        return np.stack([u_left, v], axis=1), np.stack([u_right, v], axis=1)

    def disparity(self, depth: np.ndarray | float) -> np.ndarray:
        """Disparity ``d = fx * B / Z`` (pixels) of points at depth Z (metres)."""
        return self.fx * self.baseline / np.asarray(depth, dtype=np.float64)

    def camera_info(self, side: str) -> dict:
        """ROS ``sensor_msgs/CameraInfo`` fields of one camera as plain numpy values.

        Keys: width, height, distortion_model ('plumb_bob'), d (5,), k (9,), r (9,), p (12,).
        """
        if side not in CAMERA_SIDES:
            raise ValueError(f"StereoRig.camera_info: side must be one of {CAMERA_SIDES}, got {side!r}")
        P = self.P_left if side == "left" else self.P_right
        return {
            "width": int(self.width),
            "height": int(self.height),
            "distortion_model": "plumb_bob",
            "d": np.zeros(5),
            "k": self.K.reshape(9),
            "r": np.eye(3).reshape(9),
            "p": P.reshape(12),
        }
