"""Drawing of the simulated stereo scene: textures, occluders, reflections, glare.

The world decides *where* things are (:mod:`world`); this module only paints a list of
:class:`Sprite` onto a cached background, in order. Every sprite is a texture stretched over a
float pixel rectangle ``(x1, y1, x2, y2)``: pixel ``i`` is painted when its centre ``i + 0.5``
lies in ``[x1, x2)``, so the painted area matches the ground-truth box geometry exactly. Each
texture is resized to the sprite's whole pixel extent (cached) and the in-image part copied, blended or
added with numpy slicing.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from enum import IntEnum

import cv2
import numpy as np

TEXTURE_SIZE = 64  # px, side of the square object textures (bottles are 2.5x taller)
GLARE_KEY = -1  # texture key of the shared glare alpha profile
_CACHE_SIZE = 128  # scaled textures kept


class Blend(IntEnum):
    """How a sprite is combined with what is already in the image."""

    OPAQUE = 0  # objects, occluders: replace the pixels
    DIMMED = 1  # reflections: out = (1 - alpha) * image + alpha * texture
    GLARE = 2  # glare: out = image + profile * (255 - image), saturating the core


@dataclass(frozen=True)
class Sprite:
    """One thing to paint: texture ``key`` stretched over ``rect`` (x1, y1, x2, y2) in pixels."""

    key: int
    rect: tuple[float, float, float, float]
    blend: Blend = Blend.OPAQUE
    alpha: float = 1.0
    flip_vertical: bool = False


def hue_to_bgr(hue: float, saturation: int = 230, value: int = 230) -> np.ndarray:
    """(3,) uint8 BGR colour of an OpenCV hue in [0, 180)."""
    hsv = np.array([[[int(hue) % 180, saturation, value]]], dtype=np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]


def object_texture(rng: np.random.Generator, class_id: int, base_bgr: np.ndarray,
                   accent_bgr: np.ndarray) -> np.ndarray:
    """(h, w, 3) uint8 texture of one object: a base colour with a class-specific accent pattern.

    Class 0 (box): a checkerboard; class 1 (ball): concentric rings; class 2 (bottle, 2.5x taller):
    horizontal bands. The accent covers about a third of the area so the base colour dominates a
    colour histogram while the pattern keeps the texture trackable.
    """
    height = TEXTURE_SIZE * 5 // 2 if class_id == 2 else TEXTURE_SIZE
    ys, xs = np.mgrid[0:height, 0:TEXTURE_SIZE].astype(np.float32)
    period = float(rng.uniform(10.0, 18.0))
    if class_id == 0:
        accent = ((xs // period + ys // period) % 2 == 0) & ((xs % period) < 0.6 * period)
    elif class_id == 1:
        radius = np.hypot(xs - TEXTURE_SIZE / 2, ys - height / 2)
        accent = (radius % period) < 0.35 * period
    else:
        accent = (ys % period) < 0.35 * period
    texture = np.empty((height, TEXTURE_SIZE, 3), dtype=np.uint8)
    texture[:] = base_bgr
    texture[accent] = accent_bgr
    noise = rng.normal(0.0, 4.0, size=texture.shape)
    texture = np.clip(texture + noise, 0, 255).astype(np.uint8)
    cv2.rectangle(texture, (0, 0), (TEXTURE_SIZE - 1, height - 1), (20, 20, 20), 2)
    return texture


def occluder_texture(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """(h, w, 3) uint8 texture of an occluder: a desaturated panel with vertical grooves."""
    height, width = shape
    grey = float(rng.uniform(70.0, 120.0))
    tint = rng.uniform(-12.0, 12.0, size=3)
    texture = np.empty((height, width, 3), dtype=np.float32)
    texture[:] = grey + tint
    groove = (np.arange(width) % max(4, width // 6)) < 2
    texture[:, groove] *= 0.6
    texture += rng.normal(0.0, 3.0, size=texture.shape).astype(np.float32)
    return np.clip(texture, 0, 255).astype(np.uint8)


def glare_profile(size: int = TEXTURE_SIZE) -> np.ndarray:
    """(size, size) float32 alpha of a glare blob: saturated core (radius 0.5), cosine fall-off to 1."""
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size * 2.0 - 1.0
    rho = np.hypot(coords[None, :], coords[:, None])
    fall = 0.5 * (1.0 + np.cos(np.pi * np.clip((rho - 0.5) / 0.5, 0.0, 1.0)))
    return np.where(rho <= 0.5, 1.0, fall).astype(np.float32)


def stereo_background(rng: np.random.Generator, width: int, height: int,
                      disparity_px: int) -> tuple[np.ndarray, np.ndarray]:
    """Left and right (H, W, 3) uint8 views of a far textured wall with a floor band.

    The wall stands at a depth whose disparity is ``disparity_px``: the right view is the same
    canvas shifted so that a wall point at column ``c`` of the left image lies at ``c - d`` on the right.
    """
    canvas_w = width + disparity_px
    coarse = rng.normal(0.0, 1.0, size=(9, 12, 1)) + rng.normal(0.0, 0.25, size=(9, 12, 3))  # mostly grey
    smooth = cv2.resize(coarse.astype(np.float32), (canvas_w, height), interpolation=cv2.INTER_CUBIC)
    rows = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    wall = 150.0 - 40.0 * rows + 10.0 * smooth
    floor_start = int(0.72 * height)
    wall[floor_start:] = 95.0 + 8.0 * smooth[floor_start:]
    wall += rng.normal(0.0, 3.0, size=wall.shape).astype(np.float32)
    canvas = np.clip(wall, 0, 255).astype(np.uint8)
    return canvas[:, :width].copy(), canvas[:, disparity_px:disparity_px + width].copy()


class SceneRenderer:
    """Paints sprites over a cached background pair.

    textures: key -> (h, w, 3) uint8 texture, plus ``GLARE_KEY`` -> (h, w) float32 alpha profile.
    backgrounds: (left, right), each (H, W, 3) uint8.
    """

    def __init__(self, backgrounds: tuple[np.ndarray, np.ndarray], textures: dict[int, np.ndarray]) -> None:
        self._backgrounds = backgrounds
        self._textures = dict(textures)
        self._textures.setdefault(GLARE_KEY, glare_profile())
        self._cache: OrderedDict[tuple[int, int, int, bool], np.ndarray] = OrderedDict()

    def render(self, view: int, sprites: list[Sprite]) -> np.ndarray:
        """(H, W, 3) uint8 BGR image of one view (0 left, 1 right) with ``sprites`` painted in order."""
        image = self._backgrounds[view].copy()
        for sprite in sprites:
            self._paint(image, sprite)
        return image

    def _scaled(self, key: int, width: int, height: int, flip: bool) -> np.ndarray:
        """Texture ``key`` resized to (height, width), optionally flipped; LRU-cached (static occluders
        and slowly scaling objects hit the cache)."""
        cache_key = (key, width, height, flip)
        scaled = self._cache.get(cache_key)
        if scaled is None:
            scaled = cv2.resize(self._textures[key], (width, height), interpolation=cv2.INTER_LINEAR)
            if flip:
                scaled = np.ascontiguousarray(scaled[::-1])
            if len(self._cache) >= _CACHE_SIZE:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(cache_key)
        self._cache[cache_key] = scaled
        return scaled

    def _paint(self, image: np.ndarray, sprite: Sprite) -> None:
        height, width = image.shape[:2]
        # pixel i is inside when its centre i + 0.5 lies in [x1, x2): i in [ceil(x1 - 0.5), ceil(x2 - 0.5))
        left, top, right, bottom = (int(np.ceil(c - 0.5)) for c in sprite.rect)
        col0, col1, row0, row1 = max(0, left), min(width, right), max(0, top), min(height, bottom)
        if col1 <= col0 or row1 <= row0:
            return
        scaled = self._scaled(sprite.key, right - left, bottom - top, sprite.flip_vertical)
        patch = scaled[row0 - top:row1 - top, col0 - left:col1 - left]
        region = image[row0:row1, col0:col1]
        if sprite.blend == Blend.OPAQUE:
            region[:] = patch
        elif sprite.blend == Blend.DIMMED:
            region[:] = cv2.addWeighted(region, 1.0 - sprite.alpha, patch, sprite.alpha, 0.0)
        else:
            alpha = (patch * np.float32(sprite.alpha))[:, :, None]
            region[:] = region + alpha * (np.float32(255.0) - region)  # saturate towards white
