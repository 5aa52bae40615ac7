"""Cut the boxes of one image into one fixed-size batch for the appearance network.

Boxes are ``cx, cy, w, h`` pixels, as the detector reports them and as
:class:`~object_permanence.core.appearance.ColorHistogramEmbedder` takes them. Each box is clipped
to the image and its pixels resized to ``size = (H, W)``: OpenCV's area interpolation when the box
shrinks (it averages the pixels, so a large box does not alias), bilinear when it grows. A box that
is empty after clipping (outside the image, zero or negative size, non-finite) gives a zero crop and
``valid = False``, so the caller can give it "no appearance".
"""
from __future__ import annotations

import cv2
import numpy as np

from object_permanence.core.appearance import check_image_and_boxes

DEFAULT_CROP_SIZE: tuple[int, int] = (64, 32)  # (H, W) pixels: upright objects (bottles are 2.5:1)


def check_crop_size(size: tuple[int, int]) -> tuple[int, int]:
    """``size`` as a validated ``(H, W)`` pair of integers >= 4.

    Raises:
        ValueError: on anything else.
    """
    try:
        height, width = size
    except (TypeError, ValueError):
        raise ValueError(f"size must be an (H, W) pair, got {size!r}") from None
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 4 for v in (height, width)):
        raise ValueError(f"size must be two integers >= 4, got {size!r}")
    return int(height), int(width)


def box_rects(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """(N, 4) int64 ``x0, y0, x1, y1`` of the boxes clipped to a ``width`` x ``height`` image.

    The pixel rows ``y0 .. y1 - 1`` and columns ``x0 .. x1 - 1`` are those the box covers (rounded
    outwards); an empty rect (``x1 <= x0`` or ``y1 <= y0``) marks a box with no pixel in the image.
    """
    boxes = np.asarray(boxes, dtype=float).reshape(-1, 4)
    half = boxes[:, 2:] / 2.0
    with np.errstate(invalid="ignore"):
        lo = np.floor(boxes[:, :2] - half)  # x0 = floor(cx - w / 2), y0 = floor(cy - h / 2)
        hi = np.ceil(boxes[:, :2] + half)  # x1 = ceil(cx + w / 2), y1 = ceil(cy + h / 2)
    finite = np.all(np.isfinite(boxes), axis=1, keepdims=True) & (boxes[:, 2:] > 0).all(axis=1, keepdims=True)
    limits = np.array([width, height], dtype=float)
    lo = np.where(finite, np.clip(np.nan_to_num(lo), 0, limits), 0.0)
    hi = np.where(finite, np.clip(np.nan_to_num(hi), 0, limits), 0.0)
    return np.concatenate([lo, hi], axis=1).astype(np.int64)


def rect_log_aspect(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """(N,) float32 ``log(w / h)`` of each box's pixel rect clipped to the image (0 for an empty rect).

    Resizing every crop to one size erases the shape of the box (a bottle's 1:2.4 and a ball's 1:1
    look alike once stretched), so the network gets it beside the pixels.
    """
    rects = box_rects(boxes, width, height).astype(float)
    size = rects[:, 2:] - rects[:, :2]
    valid = (size > 0).all(axis=1)
    ratio = np.zeros(len(size), dtype=np.float32)
    ratio[valid] = np.log(size[valid, 0] / size[valid, 1])  # a = log(w / h)
    return ratio


def crop_boxes(image_bgr: np.ndarray, boxes: np.ndarray,
               size: tuple[int, int] = DEFAULT_CROP_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Crops of each box, resized to ``size``, as uint8 (what the training set stores).

    Args:
        image_bgr: (H, W, 3) uint8 BGR image.
        boxes: (N, 4) ``cx, cy, w, h`` pixels.
        size: (h, w) of every crop.

    Returns:
        crops: (N, h, w, 3) uint8 BGR (zeros where not valid); valid: (N,) bool, False for a box
        with no pixel in the image.

    Raises:
        ValueError: on a bad image, boxes or size.
    """
    out_h, out_w = check_crop_size(size)
    boxes = check_image_and_boxes(image_bgr, boxes)
    rects = box_rects(boxes, image_bgr.shape[1], image_bgr.shape[0])
    valid = (rects[:, 2] > rects[:, 0]) & (rects[:, 3] > rects[:, 1])
    crops = np.zeros((len(boxes), out_h, out_w, 3), dtype=np.uint8)
    # Boxes differ in size, so each is resized on its own by OpenCV's C code: one call per box,
    # a few microseconds each (a vectorised gather in numpy is slower for the 5-30 boxes of a frame).
    for i in np.flatnonzero(valid):
        x0, y0, x1, y1 = rects[i]
        shrink = (x1 - x0) >= out_w and (y1 - y0) >= out_h
        crops[i] = cv2.resize(image_bgr[y0:y1, x0:x1], (out_w, out_h),
                              interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return crops, valid


def to_network_input(crops: np.ndarray) -> np.ndarray:
    """(N, h, w, 3) uint8 BGR crops -> (N, 3, h, w) float32 BGR in [0, 1] (channels first)."""
    return np.ascontiguousarray(crops.transpose(0, 3, 1, 2), dtype=np.float32) * np.float32(1.0 / 255.0)


def crop_batch(image_bgr: np.ndarray, boxes: np.ndarray,
               size: tuple[int, int] = DEFAULT_CROP_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """All boxes of one image as one network batch.

    Returns:
        batch: (N, 3, h, w) float32, BGR channels in [0, 1]; valid: (N,) bool (see :func:`crop_boxes`).

    Raises:
        ValueError: on a bad image, boxes or size.
    """
    crops, valid = crop_boxes(image_bgr, boxes, size)
    return to_network_input(crops), valid
