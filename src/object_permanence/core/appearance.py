"""Appearance embeddings: a colour histogram of each detection's box.

Cheap, model-free and good enough to tell apart objects of different colours when a ghost is
re-identified after an occlusion. Computed once per detection by the detector node and carried
in the detection message.
"""
from __future__ import annotations

from typing import Protocol

import cv2
import numpy as np

# OpenCV's 8-bit HSV ranges: H in [0, 180), S and V in [0, 256).
_HSV_RANGES = [0, 180, 0, 256, 0, 256]


def check_image_and_boxes(image_bgr: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Validate an (H, W, 3) uint8 image and (N, 4) boxes; returns the boxes as float64 (N, 4).

    Raises:
        ValueError: on an image that is not (H, W, 3) uint8 or boxes that are not (N, 4).
    """
    if not (isinstance(image_bgr, np.ndarray) and image_bgr.dtype == np.uint8
            and image_bgr.ndim == 3 and image_bgr.shape[2] == 3):
        shape = getattr(image_bgr, "shape", None)
        dtype = getattr(image_bgr, "dtype", type(image_bgr).__name__)
        raise ValueError(f"image_bgr must be an (H, W, 3) uint8 array, got shape {shape} dtype {dtype}")
    boxes = np.asarray(boxes, dtype=float)
    if boxes.size == 0:
        return np.zeros((0, 4))
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must have shape (N, 4), got {boxes.shape}")
    return boxes



class Embedder(Protocol):
    """What the world model's appearance needs of an embedder (the colour histogram here, the
    learned re-ID network of ``core/reid/embedder.py``): one unit vector per box of an image."""

    def embed(self, image_bgr: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """(N, D) float32 embeddings of the (N, 4) ``cx, cy, w, h`` boxes of a BGR image."""
        ...


class ColorHistogramEmbedder:
    """L2-normalised joint HSV histogram of the inner part of each box.

    Args:
        bins: number of bins for hue, saturation and value (the embedding has their product
            as dimension, 8 * 4 * 4 = 128 by default).
        inner_frac: fraction of the box width and height (centred) that is used; the border
            is left out because it mostly holds background.

    Raises:
        ValueError: on bins that are not three positive integers, or inner_frac outside (0, 1].
    """

    def __init__(self, bins: tuple[int, int, int] = (8, 4, 4), inner_frac: float = 0.8) -> None:
        bins = tuple(bins)
        if len(bins) != 3 or not all(isinstance(b, (int, np.integer)) and b > 0 for b in bins):
            raise ValueError(f"bins must be three positive integers, got {bins!r}")
        if not (0.0 < inner_frac <= 1.0):
            raise ValueError(f"inner_frac must be in (0, 1], got {inner_frac!r}")
        self.bins = tuple(int(b) for b in bins)
        self.inner_frac = float(inner_frac)

    @property
    def dim(self) -> int:
        """Length D of an embedding."""
        return self.bins[0] * self.bins[1] * self.bins[2]

    def _pixel_rects(self, boxes: np.ndarray, width: int, height: int) -> np.ndarray:
        """(N, 4) integer ``x0, y0, x1, y1`` of the inner boxes clipped to the image (may be empty)."""
        half = boxes[:, 2:] * (self.inner_frac / 2.0)
        with np.errstate(invalid="ignore"):
            lo = np.floor(boxes[:, :2] - half)
            hi = np.ceil(boxes[:, :2] + half)
        lo = np.nan_to_num(lo, nan=0.0, posinf=0.0, neginf=0.0)
        hi = np.nan_to_num(hi, nan=0.0, posinf=0.0, neginf=0.0)
        limits = np.array([width, height], dtype=float)
        lo = np.clip(lo, 0, limits)
        hi = np.clip(hi, 0, limits)
        return np.concatenate([lo, hi], axis=1).astype(np.int64)

    def embed(self, image_bgr: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Embed each box of one image.

        Args:
            image_bgr: (H, W, 3) uint8 BGR image.
            boxes: (N, 4) ``cx, cy, w, h`` pixels.

        Returns:
            (N, D) float32, each row L2-normalised. A box that is empty after clipping to the
            image (outside it, zero or negative size, non-finite) gets the zero vector: no
            appearance, which ``association.appearance_cost`` reports as NaN (undefined).

        Raises:
            ValueError: on an image that is not (H, W, 3) uint8 or boxes that are not (N, 4).
        """
        boxes = check_image_and_boxes(image_bgr, boxes)
        if boxes.shape[0] == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        height, width = image_bgr.shape[:2]
        out = np.zeros((boxes.shape[0], self.dim), dtype=np.float32)
        for i, (x0, y0, x1, y1) in enumerate(self._pixel_rects(boxes, width, height)):
            if x1 <= x0 or y1 <= y0:
                continue
            crop = cv2.cvtColor(image_bgr[y0:y1, x0:x1], cv2.COLOR_BGR2HSV)
            hist = cv2.calcHist([crop], [0, 1, 2], None, list(self.bins), _HSV_RANGES).ravel()
            out[i] = hist / np.linalg.norm(hist)  # e = h / |h| (non-zero: the crop has pixels)
        return out
