"""Letterbox preprocessing of a batch of images for a YOLO network, and its inverse on boxes.

A YOLO network takes a fixed (H, W) input; an image of another size is scaled by one factor
(aspect ratio kept) to fit, centred, and the rest filled with grey (114). The rounding follows
ultralytics' ``LetterBox`` and ``scale_boxes`` exactly, so that an exported model fed here and the
torch model fed by ultralytics see the same pixels and their boxes map back alike.

Geometry (pixels; ``x_img`` in the original image, ``x_net`` in the network input)::

    r      = min(H / h, W / w)                         # one scale for both axes
    w', h' = max(round(w r), 1), max(round(h r), 1)    # the resized image
    left   = round((W - w') / 2 - 0.1), top = round((H - h') / 2 - 0.1)
    x_net  = x_img (w' / w) + left,  y_net = y_img (h' / h) + top   # the inverse maps boxes back
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

PAD_VALUE = 114  # ultralytics' letterbox grey


@dataclass(frozen=True)
class Letterbox:
    """Where one image sits in the network input.

    scale_x, scale_y: network pixels per image pixel along x and y (``w'/w``, ``h'/h``: equal up to
    the rounding of the resized size); width, height: the resized image's size (network pixels);
    left, top: where it is written (network pixels); image_width, image_height: the original
    image's size (pixels).
    """

    scale_x: float
    scale_y: float
    width: int
    height: int
    left: int
    top: int
    image_width: int
    image_height: int

    def boxes_to_image(self, xyxy: np.ndarray) -> np.ndarray:
        """Map (N, 4) ``x0, y0, x1, y1`` boxes from network pixels to image pixels, clipped to the image.

        Returns a new (N, 4) float64 array."""
        out = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4).copy()
        out[:, 0::2] -= self.left  # x_img = (x_net - left) / (w' / w)
        out[:, 1::2] -= self.top  # y_img = (y_net - top) / (h' / h)
        out[:, 0::2] /= self.scale_x
        out[:, 1::2] /= self.scale_y
        np.clip(out[:, 0::2], 0.0, self.image_width, out=out[:, 0::2])
        np.clip(out[:, 1::2], 0.0, self.image_height, out=out[:, 1::2])
        return out


def check_bgr_image(index: int, image: np.ndarray) -> None:
    """Raise ValueError naming ``images[index]`` unless it is an (h, w, 3) uint8 array with h, w >= 1."""
    if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3
            and image.shape[2] == 3 and image.shape[0] > 0 and image.shape[1] > 0):
        raise ValueError(f"images[{index}] must be an (h, w, 3) uint8 BGR array, got "
                         f"{getattr(image, 'shape', None)} {getattr(image, 'dtype', type(image).__name__)}")


def _check_hw(name: str, hw: Sequence[int]) -> tuple[int, int]:
    hw = tuple(int(v) for v in hw)
    if len(hw) != 2 or min(hw) < 1:
        raise ValueError(f"{name} must be two positive integers (height, width), got {hw!r}")
    return hw


def letterbox_geometry(image_hw: Sequence[int], input_hw: Sequence[int]) -> Letterbox:
    """The letterbox of an image of ``image_hw`` = (h, w) pixels in a network input of ``input_hw``
    = (H, W) pixels (ultralytics' rounding, see the module docstring).

    Raises:
        ValueError: a size that is not two positive integers.
    """
    h, w = _check_hw("image_hw", image_hw)
    big_h, big_w = _check_hw("input_hw", input_hw)
    r = min(big_h / h, big_w / w)  # r = min(H/h, W/w)
    new_w, new_h = max(int(round(w * r)), 1), max(int(round(h * r)), 1)
    left, top = int(round((big_w - new_w) / 2.0 - 0.1)), int(round((big_h - new_h) / 2.0 - 0.1))
    return Letterbox(scale_x=new_w / w, scale_y=new_h / h, width=new_w, height=new_h, left=left, top=top,
                     image_width=w, image_height=h)


def rect_input_hw(image_hw: Sequence[int], imgsz: int, stride: int = 32) -> tuple[int, int]:
    """The smallest network input (H, W) for images of ``image_hw`` at inference size ``imgsz``:
    the long side ``imgsz``, the short side padded up to a multiple of ``stride`` only (what
    ultralytics' rectangular ``LetterBox(auto=True)`` feeds a torch model). A 640x480 image at
    imgsz 320 gives (256, 320): a fifth less compute than a (320, 320) square input.

    Raises:
        ValueError: imgsz or stride not positive, or imgsz not a multiple of stride.
    """
    if stride < 1 or imgsz < stride or imgsz % stride:
        raise ValueError(f"imgsz must be a positive multiple of stride {stride}, got {imgsz}")
    box = letterbox_geometry(image_hw, (imgsz, imgsz))
    # new = unpadded + mod(imgsz - unpadded, stride)
    return (box.height + (imgsz - box.height) % stride, box.width + (imgsz - box.width) % stride)


class LetterboxBatch:
    """Letterboxes a batch of BGR images into one preallocated (B, 3, H, W) RGB blob in [0, 1].

    Per image: one ``cv2.resize`` into a scratch buffer kept between calls (none when the size
    already fits), then one write of it into the blob that swaps BGR to RGB, HWC to CHW and scales by
    1/255 in the same pass. A slot is repainted grey only when its image's placement changed (else
    the border written before is still there).
    The blob is reused: its content is valid until the next :meth:`fill`.

    Args:
        batch: number of images per blob (B).
        input_hw: the network input (H, W), pixels.
        dtype: of the blob: float32, or float16 for a half-precision model.

    Raises:
        ValueError: batch < 1, a bad input_hw, or a dtype other than float32 / float16.
    """

    def __init__(self, batch: int, input_hw: Sequence[int], dtype: type = np.float32) -> None:
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        self.input_hw = _check_hw("input_hw", input_hw)
        if np.dtype(dtype) not in (np.dtype(np.float32), np.dtype(np.float16)):
            raise ValueError(f"dtype must be float32 or float16, got {np.dtype(dtype)}")
        big_h, big_w = self.input_hw
        self.blob = np.full((batch, 3, big_h, big_w), PAD_VALUE / 255.0, dtype=dtype)
        self._scratch = [np.empty(big_h * big_w * 3, dtype=np.uint8) for _ in range(batch)]
        self._placed: list[tuple[int, int, int, int] | None] = [None] * batch

    @property
    def batch(self) -> int:
        """B, the number of images the blob holds."""
        return self.blob.shape[0]

    def fill(self, images: Sequence[np.ndarray]) -> list[Letterbox]:
        """Letterbox ``images`` ((h, w, 3) uint8 BGR, any sizes, at most B) into ``blob[:len(images)]``.

        Returns one :class:`Letterbox` per image (to map its boxes back). Slots past
        ``len(images)`` keep their earlier content.

        Raises:
            ValueError: more images than B, or an image that is not (h, w, 3) uint8 with h, w >= 1.
        """
        if len(images) > self.batch:
            raise ValueError(f"images holds {len(images)} images but the blob takes {self.batch}")
        boxes = []
        for i, image in enumerate(images):
            check_bgr_image(i, image)
            box = letterbox_geometry(image.shape[:2], self.input_hw)
            self._place(i, image, box)
            boxes.append(box)
        return boxes

    def _place(self, i: int, image: np.ndarray, box: Letterbox) -> None:
        """Write image ``i`` (resized once) into its slot; repaint the border when the placement moved."""
        placement = (box.top, box.left, box.height, box.width)
        if self._placed[i] != placement:
            self.blob[i] = PAD_VALUE / 255.0
            self._placed[i] = placement
        if image.shape[:2] == (box.height, box.width):
            resized = image
        else:
            resized = self._scratch[i][:box.height * box.width * 3].reshape(box.height, box.width, 3)
            cv2.resize(image, (box.width, box.height), dst=resized, interpolation=cv2.INTER_LINEAR)
        window = self.blob[i, :, box.top:box.top + box.height, box.left:box.left + box.width]
        # BGR HWC -> RGB CHW, x / 255 in float32 (as ultralytics: im.float() / 255)
        np.divide(resized.transpose(2, 0, 1)[::-1], np.float32(255.0), out=window, dtype=np.float32)
