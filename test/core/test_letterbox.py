"""Letterbox preprocessing (batched, one preallocated blob) and the inverse mapping of boxes, on
non-square images; checked against ultralytics' own LetterBox where it is installed."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from object_permanence.core.detection.letterbox import (
    PAD_VALUE,
    LetterboxBatch,
    letterbox_geometry,
    rect_input_hw,
)

# (h, w) of images: landscape 4:3 (the sim's), portrait, odd sizes, one already the input size.
SIZES = [(480, 640), (640, 480), (333, 517), (101, 77), (256, 320)]


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _reference(image: np.ndarray, input_hw: tuple[int, int]) -> np.ndarray:
    """(3, H, W) float32 RGB / 255 through ultralytics' LetterBox (or, without it, resize + border)."""
    try:
        from ultralytics.data.augment import LetterBox

        boxed = LetterBox(input_hw, auto=False, scale_fill=False, scaleup=True, stride=32)(image=image)
    except ImportError:
        g = letterbox_geometry(image.shape[:2], input_hw)
        resized = cv2.resize(image, (g.width, g.height), interpolation=cv2.INTER_LINEAR)
        boxed = cv2.copyMakeBorder(resized, g.top, input_hw[0] - g.height - g.top, g.left,
                                   input_hw[1] - g.width - g.left, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3)
    return boxed[..., ::-1].transpose(2, 0, 1).astype(np.float32) / np.float32(255.0)


def test_geometry_of_a_landscape_and_a_portrait_image() -> None:
    g = letterbox_geometry((480, 640), (320, 320))
    assert (g.scale_x, g.scale_y, g.width, g.height, g.left, g.top) == (0.5, 0.5, 320, 240, 0, 40)
    g = letterbox_geometry((640, 480), (320, 320))
    assert (g.scale_x, g.scale_y, g.width, g.height, g.left, g.top) == (0.5, 0.5, 240, 320, 40, 0)
    g = letterbox_geometry((480, 640), (256, 320))  # the rectangular input of the sim's images
    assert (g.scale_x, g.scale_y, g.width, g.height, g.left, g.top) == (0.5, 0.5, 320, 240, 0, 8)
    g = letterbox_geometry((333, 517), (320, 320))  # rounding: 333 * 320 / 517 = 206.1 -> 206 rows
    assert (g.width, g.height, g.left, g.top) == (320, 206, 0, 57) and g.scale_y == 206 / 333


@pytest.mark.parametrize("input_hw", [(320, 320), (256, 320)])
def test_blob_equals_the_reference_letterbox_pixel_for_pixel(input_hw: tuple[int, int]) -> None:
    images = [_image(h, w, seed) for seed, (h, w) in enumerate(SIZES)]
    batch = LetterboxBatch(len(images), input_hw)
    assert batch.blob.shape == (len(images), 3, *input_hw) and batch.blob.dtype == np.float32
    batch.fill(images)
    for i, image in enumerate(images):
        np.testing.assert_allclose(batch.blob[i], _reference(image, input_hw), atol=1e-6, err_msg=str(image.shape))


def test_refill_reuses_the_blob_and_repaints_a_moved_border() -> None:
    batch = LetterboxBatch(1, (320, 320))
    blob = batch.blob
    batch.fill([np.full((480, 640, 3), 255, np.uint8)])  # landscape: white rows 40..279
    batch.fill([_image(640, 480)])  # portrait: the former white rows outside columns 40..279 are border now
    assert batch.blob is blob, "the blob is preallocated once"
    np.testing.assert_allclose(batch.blob[0], _reference(_image(640, 480), (320, 320)), atol=1e-6)
    assert np.all(batch.blob[0, :, :, :40] == np.float32(PAD_VALUE / 255.0))


def test_fill_writes_only_the_given_slots_and_half_precision() -> None:
    batch = LetterboxBatch(3, (64, 64), dtype=np.float16)
    before = batch.blob[2].copy()
    (box,) = batch.fill([_image(48, 64)])
    assert box.image_width == 64 and box.image_height == 48
    assert batch.blob.dtype == np.float16
    np.testing.assert_array_equal(batch.blob[2], before)
    np.testing.assert_allclose(batch.blob[0], _reference(_image(48, 64), (64, 64)), atol=1e-3)


@pytest.mark.parametrize("image_hw", SIZES)
def test_boxes_map_back_to_the_original_image(image_hw: tuple[int, int]) -> None:
    """Boxes inside the image, mapped into the network (x_net = x r + pad) and back, come out the
    same; boxes reaching into the border are clipped to the image."""
    input_hw = (320, 320)
    g = letterbox_geometry(image_hw, input_hw)
    h, w = image_hw
    rng = np.random.default_rng(1)
    p0 = rng.uniform(0, 0.5, (20, 2)) * (w, h)
    xyxy = np.concatenate([p0, p0 + rng.uniform(1, 0.5 * min(h, w), (20, 2))], axis=1)
    net = xyxy * np.array([g.scale_x, g.scale_y] * 2) + np.array([g.left, g.top] * 2)
    np.testing.assert_allclose(g.boxes_to_image(net), xyxy, atol=1e-9)
    border = np.array([[-5.0, -5.0, input_hw[1] + 5.0, input_hw[0] + 5.0]])
    np.testing.assert_allclose(g.boxes_to_image(border), [[0.0, 0.0, w, h]])


def test_inverse_agrees_with_ultralytics_scale_boxes() -> None:
    torch = pytest.importorskip("torch")
    ops = pytest.importorskip("ultralytics.utils.ops")
    net = np.array([[10.0, 50.0, 200.0, 250.0], [0.0, 40.0, 320.0, 280.0]])
    for image_hw in SIZES:
        expected = ops.scale_boxes((320, 320), torch.tensor(net), image_hw).numpy()
        np.testing.assert_allclose(letterbox_geometry(image_hw, (320, 320)).boxes_to_image(net), expected, atol=1e-4)


def test_rect_input_is_the_smallest_stride_multiple() -> None:
    assert rect_input_hw((480, 640), 320) == (256, 320)
    assert rect_input_hw((480, 640), 640) == (480, 640)
    assert rect_input_hw((720, 1280), 640) == (384, 640)
    assert rect_input_hw((640, 480), 320) == (320, 256)
    try:
        from ultralytics.data.augment import LetterBox
    except ImportError:
        return
    for h, w in SIZES:
        shape = LetterBox((320, 320), auto=True, stride=32)(image=_image(h, w)).shape[:2]
        assert rect_input_hw((h, w), 320) == shape, (h, w)


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="batch"):
        LetterboxBatch(0, (320, 320))
    with pytest.raises(ValueError, match="input_hw"):
        LetterboxBatch(2, (320,))
    with pytest.raises(ValueError, match="dtype"):
        LetterboxBatch(2, (320, 320), dtype=np.uint8)
    batch = LetterboxBatch(2, (64, 64))
    with pytest.raises(ValueError, match=r"images\[1\] must be an \(h, w, 3\) uint8"):
        batch.fill([_image(10, 10), np.zeros((10, 10), np.uint8)])
    with pytest.raises(ValueError, match="3 images"):
        batch.fill([_image(10, 10)] * 3)
    with pytest.raises(ValueError, match="imgsz"):
        rect_input_hw((480, 640), 300)
