"""Tests of the colour-histogram appearance embedder."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from object_permanence.core.appearance import ColorHistogramEmbedder
from object_permanence.core.association import appearance_cost


def _scene() -> np.ndarray:
    """A 240x320 image with a red, a second red and a blue patch on grey (BGR)."""
    img = np.full((240, 320, 3), 128, np.uint8)
    img[20:80, 20:60] = (0, 0, 220)
    img[120:200, 200:260] = (10, 10, 200)
    img[20:100, 200:300] = (200, 40, 0)
    return img


def test_shape_dim_and_normalisation() -> None:
    emb = ColorHistogramEmbedder()
    assert emb.dim == 128
    out = emb.embed(_scene(), np.array([[40.0, 50.0, 40.0, 60.0], [250.0, 60.0, 100.0, 80.0]]))
    assert out.shape == (2, 128) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-6)
    assert ColorHistogramEmbedder(bins=(4, 2, 2)).dim == 16


def test_matches_calchist_of_the_inner_crop() -> None:
    img = _scene()
    out = ColorHistogramEmbedder(inner_frac=0.5).embed(img, np.array([[40.0, 50.0, 40.0, 60.0]]))
    crop = cv2.cvtColor(img[35:65, 30:50], cv2.COLOR_BGR2HSV)
    hist = cv2.calcHist([crop], [0, 1, 2], None, [8, 4, 4], [0, 180, 0, 256, 0, 256]).ravel()
    np.testing.assert_allclose(out[0], hist / np.linalg.norm(hist), rtol=1e-6)


def test_similar_colours_are_close_and_different_far() -> None:
    out = ColorHistogramEmbedder().embed(_scene(), np.array(
        [[40.0, 50.0, 40.0, 60.0], [230.0, 160.0, 60.0, 80.0], [250.0, 60.0, 100.0, 80.0]]))
    cost = appearance_cost(out, out)
    assert cost[0, 1] < 0.1  # two red patches
    assert cost[0, 2] > 0.9  # red vs blue


def test_boxes_clipped_and_degenerate_give_zero() -> None:
    img = _scene()
    emb = ColorHistogramEmbedder()
    boxes = np.array([[0.0, 0.0, 40.0, 40.0],  # partly outside: clipped, still valid
                      [-100.0, -100.0, 20.0, 20.0],  # fully outside
                      [50.0, 50.0, 0.0, 10.0],  # zero width
                      [50.0, 50.0, np.nan, 10.0],  # non-finite
                      [50.0, 50.0, -5.0, 10.0]])  # negative size
    out = emb.embed(img, boxes)
    assert np.linalg.norm(out[0]) == pytest.approx(1.0, rel=1e-6)
    np.testing.assert_array_equal(out[1:], 0.0)
    assert emb.embed(img, np.empty((0, 4))).shape == (0, 128)


@pytest.mark.parametrize("image", [np.zeros((10, 10), np.uint8), np.zeros((10, 10, 3), np.float32),
                                   np.zeros((10, 10, 4), np.uint8)])
def test_bad_image_raises(image) -> None:
    with pytest.raises(ValueError, match="image_bgr"):
        ColorHistogramEmbedder().embed(image, np.array([[5.0, 5.0, 2.0, 2.0]]))


def test_bad_boxes_and_arguments_raise() -> None:
    with pytest.raises(ValueError, match="boxes"):
        ColorHistogramEmbedder().embed(_scene(), np.ones((2, 3)))
    with pytest.raises(ValueError, match="bins"):
        ColorHistogramEmbedder(bins=(8, 0, 4))
    with pytest.raises(ValueError, match="bins"):
        ColorHistogramEmbedder(bins=(8, 4))
    with pytest.raises(ValueError, match="inner_frac"):
        ColorHistogramEmbedder(inner_frac=0.0)
    with pytest.raises(ValueError, match="inner_frac"):
        ColorHistogramEmbedder(inner_frac=1.5)
