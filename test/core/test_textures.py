"""Tests of the photographic object textures and backgrounds (core/sim/textures.py)."""
from __future__ import annotations

import socket

import numpy as np
import pytest

from object_permanence.core.appearance import ColorHistogramEmbedder
from object_permanence.core.association import appearance_cost
from object_permanence.core.sim import textures
from object_permanence.core.sim.render import TEXTURE_SIZE, hue_to_bgr, stereo_background
from object_permanence.core.sim.textures import (
    OBJECT_PHOTOS,
    PHOTOS,
    load_photo,
    photo_background,
    photo_object_texture,
)

RED = hue_to_bgr(0.0)


def _embed(textures_bgr: list[np.ndarray]) -> np.ndarray:
    """(N, D) colour-histogram embeddings of whole textures, as the detector embeds a box."""
    embedder = ColorHistogramEmbedder()
    rows = []
    for texture in textures_bgr:
        height, width = texture.shape[:2]
        rows.append(embedder.embed(texture, np.array([[width / 2, height / 2, width, height]]))[0])
    return np.stack(rows)


@pytest.mark.parametrize("name", sorted(PHOTOS))
def test_every_photo_loads_as_bgr_uint8_once(name: str) -> None:
    image = load_photo(name)
    assert image.dtype == np.uint8 and image.shape == (*PHOTOS[name].shape, 3)
    assert load_photo(name) is image  # cached: read once per process
    assert not image.flags.writeable  # shared, so callers cannot change it
    assert PHOTOS[name].license in ("public domain", "CC0")


def test_colour_photo_is_converted_to_bgr() -> None:
    """The coffee photograph is a warm (red-brown) scene: red must be the largest mean channel
    in BGR order, which fails if the RGB file were taken as BGR unchanged."""
    mean_b, _, mean_r = load_photo("coffee").reshape(-1, 3).mean(axis=0)
    assert mean_r > mean_b + 10.0


def test_unknown_photo_name_is_rejected() -> None:
    with pytest.raises(ValueError, match="name"):
        load_photo("lena")


@pytest.mark.parametrize(("class_id", "height"),
                         [(0, TEXTURE_SIZE), (1, TEXTURE_SIZE), (2, TEXTURE_SIZE * 5 // 2)])
def test_object_texture_shape_dtype_and_border(class_id: int, height: int) -> None:
    texture = photo_object_texture(np.random.default_rng(0), class_id, RED)
    assert texture.shape == (height, TEXTURE_SIZE, 3) and texture.dtype == np.uint8
    np.testing.assert_array_equal(texture[0], 20)  # thin dark border, as the synthetic textures
    np.testing.assert_array_equal(texture[:, -1], 20)
    inner = texture[2:-2, 2:-2].astype(float)
    assert inner.std() > 5.0  # photographic detail, not a flat fill


def test_object_texture_is_deterministic_per_seed_and_varies_across_seeds() -> None:
    first = photo_object_texture(np.random.default_rng(7), 0, RED)
    np.testing.assert_array_equal(first, photo_object_texture(np.random.default_rng(7), 0, RED))
    others = [photo_object_texture(np.random.default_rng(seed), 0, RED) for seed in range(6)]
    for i in range(len(others)):
        for j in range(i + 1, len(others)):
            assert np.abs(others[i].astype(int) - others[j].astype(int)).mean() > 2.0, (i, j)


def test_object_texture_keeps_the_photo_luminance_structure() -> None:
    """The texture's luminance follows the photograph: with a grey base colour and the crop
    reproduced here, the correlation of the two luminance images is high."""
    rng = np.random.default_rng(3)
    texture = photo_object_texture(rng, 0, np.array([128, 128, 128], np.uint8))
    replay = np.random.default_rng(3)
    photo = load_photo(OBJECT_PHOTOS[int(replay.integers(len(OBJECT_PHOTOS)))])
    crop = textures._photo_crop(replay, photo, TEXTURE_SIZE, TEXTURE_SIZE, textures.OBJECT_CROP_FRACTION)
    a = textures._luminance(texture)[2:-2, 2:-2].ravel()
    b = textures._luminance(crop)[2:-2, 2:-2].ravel()
    assert np.corrcoef(a, b)[0, 1] > 0.9


def test_distinct_base_colours_give_distinct_histograms() -> None:
    """Re-ID by colour histogram still works: seven objects with evenly spread hues (as the world
    gives them), textured from independent crops twice; every crop is nearer in appearance to the
    other crop of its own colour than to any crop of another colour, and crops of different
    colours are nearly orthogonal."""
    n = 7
    for trial in range(4):
        hues = (17.0 * trial + 180.0 * np.arange(n) / n) % 180.0
        first = _embed([photo_object_texture(np.random.default_rng([trial, 1, i]), i % 3, hue_to_bgr(h))
                        for i, h in enumerate(hues)])
        second = _embed([photo_object_texture(np.random.default_rng([trial, 2, i]), (i + 1) % 3,
                                              hue_to_bgr(h)) for i, h in enumerate(hues)])
        cost = appearance_cost(first, second)
        same = np.diag(cost)
        other = np.where(np.eye(n, dtype=bool), np.inf, cost)
        assert np.all(same < other.min(axis=1)), (trial, same, other.min(axis=1))
        assert np.all(same < other.min(axis=0)), (trial, same, other.min(axis=0))
        assert other.min() > 0.9  # different colours share almost no histogram bin


@pytest.mark.parametrize(("args", "match"), [
    ((3, RED), "class_id"), ((True, RED), "class_id"), ((0, np.array([0, 0])), "base_bgr"),
    ((0, np.array([0.0, np.nan, 0.0])), "base_bgr"), ((0, np.array([0, 300, 0])), "base_bgr")])
def test_object_texture_rejects_bad_arguments(args: tuple, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        photo_object_texture(np.random.default_rng(0), *args)


def test_a_seed_instead_of_a_generator_is_rejected() -> None:
    with pytest.raises(ValueError, match="rng"):
        photo_object_texture(0, 0, RED)
    with pytest.raises(ValueError, match="rng"):
        photo_background(0, 64, 48, 4)


@pytest.mark.parametrize("disparity", [0, 7, 20])
def test_background_right_view_is_the_left_shifted_by_the_disparity(disparity: int) -> None:
    width, height = 160, 120
    left, right = photo_background(np.random.default_rng(1), width, height, disparity)
    assert left.shape == right.shape == (height, width, 3)
    assert left.dtype == right.dtype == np.uint8
    # a wall point at left column c lies at c - d on the right, as in render.stereo_background
    np.testing.assert_array_equal(right[:, :width - disparity], left[:, disparity:])
    synth_left, synth_right = stereo_background(np.random.default_rng(1), width, height, disparity)
    np.testing.assert_array_equal(synth_right[:, :width - disparity], synth_left[:, disparity:])


def test_background_is_deterministic_photographic_and_moderate() -> None:
    left, right = photo_background(np.random.default_rng(4), 320, 240, 12)
    again = photo_background(np.random.default_rng(4), 320, 240, 12)
    np.testing.assert_array_equal(left, again[0])
    np.testing.assert_array_equal(right, again[1])
    other, _ = photo_background(np.random.default_rng(5), 320, 240, 12)
    assert np.abs(left.astype(int) - other.astype(int)).mean() > 2.0
    luma = textures._luminance(left)
    wall, floor = luma[:int(0.7 * 240)], luma[int(0.74 * 240):]
    assert 60.0 < wall.mean() < 190.0 and wall.std() < 40.0  # mid grey, moderate contrast
    assert floor.mean() < wall.mean()  # the floor band is darker than the wall
    assert textures._edge_energy(wall) > 2.0  # real texture for the stereo matcher


@pytest.mark.parametrize(("args", "match"), [
    ((0, 120, 10), "width"), ((160, 1, 10), "height"), ((160, 120, -1), "disparity_px"),
    ((160.0, 120, 10), "width")])
def test_background_rejects_bad_arguments(args: tuple, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        photo_background(np.random.default_rng(0), *args)


def test_loading_needs_no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """With every socket refused and the cache emptied, all photographs still load from the
    installed package and both functions still work."""
    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("network access attempted")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    load_photo.cache_clear()
    try:
        for name in PHOTOS:
            assert load_photo(name).size > 0
        assert photo_object_texture(np.random.default_rng(0), 2, RED).shape == (160, 64, 3)
        assert photo_background(np.random.default_rng(0), 64, 48, 4)[0].shape == (48, 64, 3)
    finally:
        load_photo.cache_clear()


def test_missing_package_is_reported_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(textures.importlib.util, "find_spec", lambda name: None)
    load_photo.cache_clear()
    try:
        with pytest.raises(ModuleNotFoundError, match="scikit-image"):
            load_photo("coffee")
    finally:
        load_photo.cache_clear()
