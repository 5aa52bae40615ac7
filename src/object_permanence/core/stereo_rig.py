"""A rectified horizontal stereo rig and the closed-form triangulation of its matched points.

The rig is read from the two rectified 3x4 projections (ROS convention: ``P_left[:, 3] = 0``,
``P_right[0, 3] = -fx * B``; both share fx, fy and cy, so a 3D point lands on the same image row in
both views).

Triangulation uses the closed form of a rectified pair (exact, vectorised, and its Jacobian is
analytic); the tests check it against ``cv2.triangulatePoints``. With ``xl = u_l - cx_l``,
``xr = u_r - cx_r``, disparity ``d = xl - xr`` and ``v = (v_l + v_r) / 2``::

    Z = fx * B / d,    X = xl * Z / fx,    Y = (v - cy) * Z / fy

Positions are metres in the left camera's (rectified) optical frame: x right, y down, z forward.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RectifiedRig:
    """Intrinsics of a rectified horizontal pair, read from the two 3x4 projections.

    fx, fy, cy: shared by both views (pixels); cx_left, cx_right: principal columns; baseline: metres.
    """

    fx: float
    fy: float
    cx_left: float
    cx_right: float
    cy: float
    baseline: float

    @classmethod
    def from_projections(cls, p_left: np.ndarray, p_right: np.ndarray) -> RectifiedRig:
        """Validate ``P_left``/``P_right`` as a rectified horizontal pair and extract the rig.

        Raises:
            ValueError: naming the matrix when shapes, finiteness or the rectified structure are wrong.
        """
        mats = {}
        for name, value in (("P_left", p_left), ("P_right", p_right)):
            mat = np.asarray(value, dtype=np.float64)
            if mat.shape != (3, 4) or not np.all(np.isfinite(mat)):
                raise ValueError(f"{name} must be a finite (3, 4) matrix, got {mat.tolist()}")
            if mat[0, 0] <= 0 or mat[1, 1] <= 0:
                raise ValueError(f"{name} must have fx > 0 and fy > 0, got {mat[0, 0]}, {mat[1, 1]}")
            # Rectified form [[fx, 0, cx, Tx], [0, fy, cy, 0], [0, 0, 1, 0]].
            template = np.array([[mat[0, 0], 0, mat[0, 2], mat[0, 3]], [0, mat[1, 1], mat[1, 2], 0], [0, 0, 1, 0]])
            if not np.allclose(mat, template, rtol=0.0, atol=1e-9):
                raise ValueError(f"{name} is not a rectified projection [[fx,0,cx,Tx],[0,fy,cy,0],[0,0,1,0]]: "
                                 f"{mat.tolist()}")
            mats[name] = mat
        pl, pr = mats["P_left"], mats["P_right"]
        if not np.allclose(pl[[0, 1, 1], [0, 1, 2]], pr[[0, 1, 1], [0, 1, 2]], rtol=1e-6, atol=0.0):
            raise ValueError(f"P_left and P_right must share fx, fy and cy, got {pl.tolist()} / {pr.tolist()}")
        if pl[0, 3] != 0.0:
            raise ValueError(f"P_left[0, 3] must be 0 (left is the reference camera), got {pl[0, 3]}")
        if pr[0, 3] >= 0.0:
            raise ValueError(f"P_right[0, 3] must be -fx * baseline < 0, got {pr[0, 3]}")
        return cls(fx=pl[0, 0], fy=pl[1, 1], cx_left=pl[0, 2], cx_right=pr[0, 2], cy=pl[1, 2],
                   baseline=-pr[0, 3] / pr[0, 0])

    @property
    def column_offset(self) -> float:
        """``cx_left - cx_right`` (pixels): the column shift ``u_l - u_r`` of a point is ``d + column_offset``."""
        return self.cx_left - self.cx_right

    def disparity_range(self, min_depth_m: float, max_depth_m: float) -> tuple[float, float]:
        """Disparities (pixels) of the depth range ``[min_depth_m, max_depth_m]``: ``(fx B / max, fx B / min)``."""
        fb = self.fx * self.baseline
        return fb / max_depth_m, fb / min_depth_m  # d = fx B / Z


def triangulate_rectified(rig: RectifiedRig, pts_left: np.ndarray, pts_right: np.ndarray) -> np.ndarray:
    """Closed-form triangulation of matched points of a rectified pair.

    pts_left, pts_right: (N, 2) pixel ``(u, v)``. Returns (N, 3) metres, left optical frame;
    a non-positive disparity gives non-finite values.
    """
    pts_left, pts_right = np.asarray(pts_left, np.float64), np.asarray(pts_right, np.float64)
    xl = pts_left[:, 0] - rig.cx_left
    xr = pts_right[:, 0] - rig.cx_right
    disparity = xl - xr  # d = xl - xr
    v = 0.5 * (pts_left[:, 1] + pts_right[:, 1])  # the row, averaged over both views
    with np.errstate(divide="ignore", invalid="ignore"):
        z = rig.fx * rig.baseline / np.where(disparity > 0, disparity, np.nan)  # Z = fx B / d
    return np.stack([xl * z / rig.fx, (v - rig.cy) * z / rig.fy, z], axis=1)  # X = xl Z / fx, Y = (v - cy) Z / fy


def triangulation_jacobian(rig: RectifiedRig, pts_left: np.ndarray, pts_right: np.ndarray) -> np.ndarray:
    """Jacobian (N, 3, 4) of :func:`triangulate_rectified` w.r.t. ``(u_l, v_l, u_r, v_r)``."""
    xyz = triangulate_rectified(rig, pts_left, pts_right)
    x, y, z = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    disparity = rig.fx * rig.baseline / z
    jac = np.zeros((len(xyz), 3, 4))
    jac[:, 0, 0] = rig.baseline / disparity - x / disparity  # dX/du_l = B/d - X/d
    jac[:, 0, 2] = x / disparity  # dX/du_r = xl B/d² = X/d
    jac[:, 1, 0] = -y / disparity  # dY/du_l = -Y/d
    jac[:, 1, 2] = y / disparity  # dY/du_r = Y/d
    jac[:, 1, 1] = jac[:, 1, 3] = 0.5 * z / rig.fy  # dY/dv_l = dY/dv_r = Z / (2 fy)
    jac[:, 2, 0] = -z / disparity  # dZ/du_l = -fx B/d² = -Z/d
    jac[:, 2, 2] = z / disparity  # dZ/du_r = Z/d
    return jac
