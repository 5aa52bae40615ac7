"""Stereo camera calibration: the data model, ROS YAML I/O, chessboard calibration and rectification maps.

Conventions follow ROS ``sensor_msgs/CameraInfo`` and ``camera_calibration_parsers``:

* ``K`` (3, 3) intrinsics of the raw (distorted) image, ``D`` (k,) distortion coefficients,
* ``R`` (3, 3) rectification rotation (raw camera frame -> rectified frame),
* ``P`` (3, 4) projection of the rectified image. For a horizontal stereo pair the left ``P`` has
  ``Tx = P[0, 3] = 0`` and the right ``P`` has ``Tx = -fx * B`` with ``B`` the baseline in metres.

Pixels are pixels, lengths are metres. Nothing here imports ROS: the node copies
:func:`camera_info_fields` into a CameraInfo message.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

#: Distortion models understood here, with the coefficient counts ROS uses for them
#: (an empty ``D`` means "no distortion" for any model).
DISTORTION_MODELS: dict[str, tuple[int, ...]] = {
    "plumb_bob": (5,),
    "rational_polynomial": (8,),
    "equidistant": (4,),
}

#: Relative tolerance for "same fx, fy, cy" between the two rectified projections.
_RECTIFIED_RTOL = 1e-6

_PathArg = str | PathLike[str]


def _matrix(value: Any, shape: tuple[int, ...], name: str) -> np.ndarray:
    """Return ``value`` as a finite float64 array of ``shape``; raise ValueError naming ``name``."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {arr.tolist()}")
    return arr


@dataclass
class CameraCalibration:
    """Calibration of one camera, as in a ROS CameraInfo.

    width, height: image size in pixels. K: (3, 3). D: (k,). R: (3, 3). P: (3, 4).
    Arrays are converted to float64 and validated on construction.

    Raises:
        ValueError: naming the field, for a non-positive size, a wrong shape, a non-finite entry,
            ``fx <= 0`` / ``fy <= 0`` in K or P, an unknown distortion model or a coefficient count
            that does not fit it.
    """

    width: int
    height: int
    K: np.ndarray
    D: np.ndarray
    R: np.ndarray
    P: np.ndarray
    distortion_model: str = "plumb_bob"
    camera_name: str = ""

    def __post_init__(self) -> None:
        for name in ("width", "height"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
            setattr(self, name, int(value))
        self.K = _matrix(self.K, (3, 3), "K")
        self.R = _matrix(self.R, (3, 3), "R")
        self.P = _matrix(self.P, (3, 4), "P")
        self.D = np.asarray(self.D, dtype=np.float64).ravel()
        if not np.all(np.isfinite(self.D)):
            raise ValueError(f"D must be finite, got {self.D.tolist()}")
        if self.distortion_model not in DISTORTION_MODELS:
            raise ValueError(
                f"distortion_model must be one of {sorted(DISTORTION_MODELS)}, got {self.distortion_model!r}"
            )
        allowed = DISTORTION_MODELS[self.distortion_model]
        if self.D.size != 0 and self.D.size not in allowed:
            raise ValueError(
                f"D must have {allowed} coefficients for {self.distortion_model!r} (or none), got {self.D.size}"
            )
        for name, mat in (("K", self.K), ("P", self.P)):
            if mat[0, 0] <= 0 or mat[1, 1] <= 0:
                raise ValueError(f"{name} must have fx > 0 and fy > 0, got fx={mat[0, 0]}, fy={mat[1, 1]}")

    @property
    def fx(self) -> float:
        """Focal length of the rectified image in pixels (``P[0, 0]``)."""
        return float(self.P[0, 0])


@dataclass
class StereoCalibration:
    """A rectified horizontal stereo pair: left is the reference camera.

    Raises:
        ValueError: naming the field when the two image sizes differ, the rectified projections
            disagree on fx, fy or cy (they must share them for rows to align), the left ``P`` is not
            the reference (``P[:, 3] != 0``), or the right ``P`` gives a non-positive baseline.
    """

    left: CameraCalibration
    right: CameraCalibration

    def __post_init__(self) -> None:
        sizes = (self.left.width, self.left.height), (self.right.width, self.right.height)
        if sizes[0] != sizes[1]:
            raise ValueError(f"right.width/right.height {sizes[1]} must equal left.width/left.height {sizes[0]}")
        pl, pr = self.left.P, self.right.P
        for (row, col), label in (((0, 0), "fx"), ((1, 1), "fy"), ((1, 2), "cy")):
            if not np.isclose(pl[row, col], pr[row, col], rtol=_RECTIFIED_RTOL, atol=0.0):
                raise ValueError(
                    f"right.P[{row}, {col}] ({label}={pr[row, col]}) must equal left.P[{row}, {col}] "
                    f"({pl[row, col]}) for a rectified pair"
                )
        if np.any(pl[:, 3] != 0.0):
            raise ValueError(f"left.P[:, 3] must be zero (left is the reference camera), got {pl[:, 3].tolist()}")
        if self.baseline <= 0.0:
            raise ValueError(
                f"right.P[0, 3] must be -fx * baseline with baseline > 0, got {pr[0, 3]} (baseline {self.baseline})"
            )

    @property
    def baseline(self) -> float:
        """Baseline in metres, ``B = -P_right[0, 3] / P_right[0, 0]`` (ROS ``Tx = -fx * B``)."""
        return float(-self.right.P[0, 3] / self.right.P[0, 0])


# --------------------------------------------------------------------------------------------- YAML


def _yaml_matrix(mat: np.ndarray, rows: int, cols: int) -> dict[str, Any]:
    return {"rows": rows, "cols": cols, "data": [float(v) for v in np.ravel(mat)]}


def _parse_yaml_matrix(node: Any, field: str, shape: tuple[int, int] | None) -> np.ndarray:
    """Parse a ``{rows, cols, data}`` block; ``shape=None`` accepts any ``1 x n`` vector."""
    if not isinstance(node, dict) or not {"rows", "cols", "data"} <= node.keys():
        raise ValueError(f"{field} must be a mapping with rows, cols and data, got {node!r}")
    rows, cols, data = int(node["rows"]), int(node["cols"]), node["data"] or []
    if len(data) != rows * cols:
        raise ValueError(f"{field} declares {rows}x{cols} but holds {len(data)} values")
    if shape is not None and (rows, cols) != shape:
        raise ValueError(f"{field} must be {shape[0]}x{shape[1]}, got {rows}x{cols}")
    arr = np.asarray(data, dtype=np.float64)
    return arr if shape is None else arr.reshape(shape)


def camera_calibration_to_dict(cal: CameraCalibration) -> dict[str, Any]:
    """The ``camera_calibration_parsers`` YAML mapping of one camera (plain Python types)."""
    return {
        "image_width": cal.width,
        "image_height": cal.height,
        "camera_name": cal.camera_name,
        "camera_matrix": _yaml_matrix(cal.K, 3, 3),
        "distortion_model": cal.distortion_model,
        "distortion_coefficients": _yaml_matrix(cal.D, 1, cal.D.size),
        "rectification_matrix": _yaml_matrix(cal.R, 3, 3),
        "projection_matrix": _yaml_matrix(cal.P, 3, 4),
    }


def camera_calibration_from_dict(data: Any, source: str = "calibration") -> CameraCalibration:
    """Build a :class:`CameraCalibration` from a ``camera_calibration_parsers`` mapping.

    Raises:
        ValueError: naming ``source`` and the field that is missing or malformed.
    """
    if not isinstance(data, dict):
        raise ValueError(f"{source}: expected a mapping, got {type(data).__name__}")
    required = ("image_width", "image_height", "camera_matrix", "distortion_coefficients",
                "rectification_matrix", "projection_matrix")
    missing = [key for key in required if key not in data]
    if missing:
        raise ValueError(f"{source}: missing field(s) {missing}")
    try:
        return CameraCalibration(
            width=data["image_width"],
            height=data["image_height"],
            K=_parse_yaml_matrix(data["camera_matrix"], "camera_matrix", (3, 3)),
            D=_parse_yaml_matrix(data["distortion_coefficients"], "distortion_coefficients", None),
            R=_parse_yaml_matrix(data["rectification_matrix"], "rectification_matrix", (3, 3)),
            P=_parse_yaml_matrix(data["projection_matrix"], "projection_matrix", (3, 4)),
            distortion_model=data.get("distortion_model", "plumb_bob"),
            camera_name=str(data.get("camera_name") or ""),
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{source}: {exc}") from exc


def _read_yaml(path: _PathArg) -> Any:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"calibration file not found: {path}")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from exc


def _write_yaml(data: dict[str, Any], path: _PathArg) -> None:
    Path(path).write_text(yaml.safe_dump(data, sort_keys=False, default_flow_style=None))


def load_camera_calibration(path: _PathArg) -> CameraCalibration:
    """Load one camera from a ROS ``camera_calibration_parsers`` YAML file.

    Raises:
        FileNotFoundError: when ``path`` does not exist. ValueError: naming the path and field.
    """
    return camera_calibration_from_dict(_read_yaml(path), str(path))


def save_camera_calibration(cal: CameraCalibration, path: _PathArg) -> None:
    """Write one camera as ROS ``camera_calibration_parsers`` YAML (floats round-trip exactly)."""
    _write_yaml(camera_calibration_to_dict(cal), path)


def load_stereo_calibration(path_or_paths: _PathArg | Sequence[_PathArg]) -> StereoCalibration:
    """Load a stereo calibration.

    path_or_paths: one YAML file holding ``left:`` and ``right:`` camera blocks, or a pair
    ``(left.yaml, right.yaml)`` of per-camera ROS calibration files.

    Raises:
        FileNotFoundError: for a missing file. ValueError: naming the path and field.
    """
    if isinstance(path_or_paths, (str, PathLike)):
        data = _read_yaml(path_or_paths)
        if not isinstance(data, dict) or "left" not in data or "right" not in data:
            raise ValueError(f"{path_or_paths}: a stereo calibration file needs 'left' and 'right' blocks")
        left = camera_calibration_from_dict(data["left"], f"{path_or_paths}:left")
        right = camera_calibration_from_dict(data["right"], f"{path_or_paths}:right")
    else:
        paths = list(path_or_paths)
        if len(paths) != 2:
            raise ValueError(f"path_or_paths must be one stereo file or two camera files, got {paths}")
        left, right = (load_camera_calibration(p) for p in paths)
    return StereoCalibration(left, right)


def save_stereo_calibration(cal: StereoCalibration, path_or_paths: _PathArg | Sequence[_PathArg]) -> None:
    """Write a stereo calibration as one ``left:``/``right:`` YAML file, or as two camera files."""
    if isinstance(path_or_paths, (str, PathLike)):
        _write_yaml(
            {"left": camera_calibration_to_dict(cal.left), "right": camera_calibration_to_dict(cal.right)},
            path_or_paths,
        )
        return
    paths = list(path_or_paths)
    if len(paths) != 2:
        raise ValueError(f"path_or_paths must be one stereo file or two camera files, got {paths}")
    save_camera_calibration(cal.left, paths[0])
    save_camera_calibration(cal.right, paths[1])


def camera_info_fields(cal: CameraCalibration) -> dict[str, Any]:
    """CameraInfo fields as plain Python values: width, height, distortion_model, d, k, r, p (row-major)."""
    return {
        "width": cal.width,
        "height": cal.height,
        "distortion_model": cal.distortion_model,
        "d": cal.D.tolist(),
        "k": cal.K.ravel().tolist(),
        "r": cal.R.ravel().tolist(),
        "p": cal.P.ravel().tolist(),
    }


def rectified_camera_info_fields(cal: CameraCalibration) -> dict[str, Any]:
    """CameraInfo fields of the *rectified* images of ``cal`` (ROS convention): no distortion,
    R = I, K = P[:, :3], P unchanged. Images published rectified must say so, or a consumer that
    follows the convention (RViz, image_proc) rectifies them a second time."""
    fields = camera_info_fields(cal)
    fields.update(d=[0.0] * len(fields["d"]), k=cal.P[:, :3].ravel().tolist(), r=np.eye(3).ravel().tolist())
    return fields


# -------------------------------------------------------------------------------------- calibration


def _gray(image: np.ndarray, name: str) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(f"{name} must be a uint8 grayscale or BGR image, got {image.dtype} {image.shape}")
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


def find_chessboard(gray: np.ndarray, pattern: tuple[int, int]) -> np.ndarray | None:
    """Sub-pixel inner corners (N, 2) float32 of a ``pattern = (cols, rows)`` chessboard, or None."""
    found, corners = cv2.findChessboardCorners(
        gray, pattern, flags=cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE
    )
    if not found:
        return None
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 30, 1e-3)
    return cv2.cornerSubPix(gray, corners, (11, 11), (-1, -1), criteria).reshape(-1, 2)


def calibrate_stereo_from_chessboards(
    left_images: Sequence[np.ndarray],
    right_images: Sequence[np.ndarray],
    pattern: tuple[int, int] = (9, 6),
    square_size: float = 0.025,
    alpha: float = 0.0,
) -> tuple[StereoCalibration, float]:
    """Calibrate a stereo pair from synchronised chessboard views.

    left_images, right_images: equal-length sequences of uint8 (H, W) or (H, W, 3) images of one size.
    pattern: inner corners ``(cols, rows)``; square_size: chessboard square edge in metres (sets the
    baseline's scale). alpha: stereoRectify free scaling, 0 keeps only valid pixels, 1 keeps all.

    Each camera is calibrated alone (calibrateCamera), then the extrinsics are solved with the
    intrinsics fixed (stereoCalibrate, CALIB_FIX_INTRINSIC), then rectified (stereoRectify,
    CALIB_ZERO_DISPARITY so both rectified images share cx). Pairs where the board is not found in
    both views are skipped.

    Returns:
        (calibration, rms): rms is stereoCalibrate's reprojection RMS in pixels.

    Raises:
        ValueError: for different counts or sizes, bad pattern/square_size, or fewer than 3 usable pairs.
    """
    if len(left_images) != len(right_images):
        raise ValueError(f"left_images ({len(left_images)}) and right_images ({len(right_images)}) differ in count")
    if len(pattern) != 2 or min(pattern) < 2:
        raise ValueError(f"pattern must be (cols, rows) inner corners, each >= 2, got {pattern}")
    if not np.isfinite(square_size) or square_size <= 0:
        raise ValueError(f"square_size must be a positive length in metres, got {square_size}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    cols, rows = int(pattern[0]), int(pattern[1])
    board = np.zeros((cols * rows, 3), np.float32)
    board[:, :2] = np.mgrid[0:cols, 0:rows].T.reshape(-1, 2) * square_size  # board frame, z = 0

    object_points, left_points, right_points = [], [], []
    size: tuple[int, int] | None = None
    for index, (left_img, right_img) in enumerate(zip(left_images, right_images)):
        gl, gr = _gray(left_img, f"left_images[{index}]"), _gray(right_img, f"right_images[{index}]")
        if gl.shape != gr.shape or (size is not None and gl.shape[::-1] != size):
            raise ValueError(f"image pair {index} has size {gl.shape[::-1]}/{gr.shape[::-1]}, expected {size}")
        size = (gl.shape[1], gl.shape[0])
        corners_l, corners_r = find_chessboard(gl, (cols, rows)), find_chessboard(gr, (cols, rows))
        if corners_l is not None and corners_r is not None:
            object_points.append(board)
            left_points.append(corners_l)
            right_points.append(corners_r)
    if len(object_points) < 3 or size is None:
        raise ValueError(f"need >= 3 pairs with the {pattern} board found in both views, got {len(object_points)}")

    _, k_l, d_l, _, _ = cv2.calibrateCamera(object_points, left_points, size, None, None)
    _, k_r, d_r, _, _ = cv2.calibrateCamera(object_points, right_points, size, None, None)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 100, 1e-6)
    rms, k_l, d_l, k_r, d_r, rot, trans, _, _ = cv2.stereoCalibrate(
        object_points, left_points, right_points, k_l, d_l, k_r, d_r, size,
        flags=cv2.CALIB_FIX_INTRINSIC, criteria=criteria,
    )  # x_r = R x_l + T
    r1, r2, p1, p2, _, _, _ = cv2.stereoRectify(
        k_l, d_l, k_r, d_r, size, rot, trans, flags=cv2.CALIB_ZERO_DISPARITY, alpha=alpha
    )
    width, height = size
    left = CameraCalibration(width, height, k_l, d_l.ravel(), r1, p1, "plumb_bob", "left")
    right = CameraCalibration(width, height, k_r, d_r.ravel(), r2, p2, "plumb_bob", "right")
    return StereoCalibration(left, right), float(rms)


def _undistort_rectify_map(cal: CameraCalibration) -> tuple[np.ndarray, np.ndarray]:
    size = (cal.width, cal.height)
    new_k = cal.P[:, :3]
    if cal.distortion_model == "equidistant" and cal.D.size:
        return cv2.fisheye.initUndistortRectifyMap(cal.K, cal.D, cal.R, new_k, size, cv2.CV_32FC1)
    dist = cal.D if cal.D.size else None
    return cv2.initUndistortRectifyMap(cal.K, dist, cal.R, new_k, size, cv2.CV_32FC1)


def rectify_maps(cal: StereoCalibration) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Undistort-and-rectify lookup maps for ``cv2.remap``.

    Returns:
        (map_lx, map_ly, map_rx, map_ry): each (height, width) float32, the raw-image pixel that each
        rectified pixel samples: ``rect = cv2.remap(raw, map_x, map_y, cv2.INTER_LINEAR)``.
    """
    map_lx, map_ly = _undistort_rectify_map(cal.left)
    map_rx, map_ry = _undistort_rectify_map(cal.right)
    return map_lx, map_ly, map_rx, map_ry
