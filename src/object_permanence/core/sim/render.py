"""Drawing of the simulated stereo scene: textures, occluders, reflections, glare.

The world decides *where* things are (:mod:`world`); this module only paints a list of
:class:`Sprite` onto a cached background, in order. Every sprite is a texture stretched over a
float pixel rectangle ``(x1, y1, x2, y2)``: pixel ``i`` is painted when its centre ``i + 0.5``
lies in ``[x1, x2)``, so the painted area matches the ground-truth box geometry exactly. Each
texture is resized to the sprite's whole pixel extent (cached) and the in-image part copied, blended or
added with numpy slicing.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum

import cv2
import numpy as np

TEXTURE_SIZE = 64  # px, side of the square object textures (bottles are 2.5x taller)
GLARE_KEY = -1  # texture key of the shared glare alpha profile


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
    colour histogram while the pattern keeps the texture trackable; smooth luminance blobs add the
    fine detail of a printed surface.
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
    # Printed-label detail: smooth luminance blobs a few texels wide, as real objects have. It
    # gives every class texture along the rows too (bands alone leave stereo matching flat).
    blobs = cv2.resize(rng.normal(0.0, 18.0, size=(height // 4, TEXTURE_SIZE // 4)).astype(np.float32),
                       (TEXTURE_SIZE, height), interpolation=cv2.INTER_CUBIC)
    noise = rng.normal(0.0, 4.0, size=texture.shape) + blobs[:, :, None]
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
        self._cache: dict[tuple[int, bool], np.ndarray] = {}
        # per view, (key, flip, rect, image size) -> (row0, row1, col0, col1, patch, coverage) of this
        # and the previous rendering: a sprite that did not move (a static occluder) is not warped
        # again, and the cache holds two renderings' sprites at most
        self._patches: dict[int, dict[tuple, tuple]] = {}
        self._previous_patches: dict[int, dict[tuple, tuple]] = {}

    def render(self, view: int, sprites: list[Sprite]) -> np.ndarray:
        """(H, W, 3) uint8 BGR image of one view (0 left, 1 right) with ``sprites`` painted in order."""
        image = self._backgrounds[view].copy()
        self._previous_patches[view] = self._patches.get(view, {})
        self._patches[view] = {}
        for sprite in sprites:
            self._paint(image, sprite, view)
        return image

    def _texture(self, key: int, flip: bool) -> np.ndarray:
        """Texture ``key`` as float32, optionally flipped vertically (cached: a few dozen keys)."""
        cache_key = (key, flip)
        texture = self._cache.get(cache_key)
        if texture is None:
            texture = self._textures[key].astype(np.float32)
            if flip:
                texture = np.ascontiguousarray(texture[::-1])
            self._cache[cache_key] = texture
        return texture

    def _paint(self, image: np.ndarray, sprite: Sprite, view: int = 0) -> None:
        """Paint one sprite with sub-pixel geometry: the texture is warped onto its exact
        (fractional) rect and blended by its coverage of each pixel, so a rect moved by 0.3 px
        moves the image content by 0.3 px (the stereo matcher measures disparity from it)."""
        located = self._patch(image.shape[:2], sprite, view)
        if located is None:
            return
        row0, row1, col0, col1, patch, coverage = located
        region = image[row0:row1, col0:col1]
        base = region.astype(np.float32)  # the one conversion of the region; the lines below keep
        # the operation order of out = region + weight * (patch - region), so the result is exact
        if sprite.blend == Blend.GLARE:
            weight = (patch * np.float32(sprite.alpha) * coverage)[:, :, None]
            blended = np.subtract(np.float32(255.0), base)
            blended *= weight
            blended += base  # out = image + weight * (255 - image): saturate towards white
        else:
            weight = (coverage * np.float32(sprite.alpha if sprite.blend == Blend.DIMMED else 1.0))[:, :, None]
            blended = np.subtract(patch, base)
            blended *= weight
            blended += base  # out = (1 - a) image + a texture
        region[:] = blended

    def _patch(self, shape: tuple[int, int], sprite: Sprite, view: int = 0):
        """``(row0, row1, col0, col1, patch, coverage)`` of a sprite in an image of ``shape`` (H, W):
        the in-image pixel range, the texture warped onto it ((h, w, 3) float32, or (h, w) for the
        glare profile) and the exact area of each pixel inside the rect ((h, w) float32); None when
        the sprite is off the image or empty. Reused from the view's previous rendering for a sprite
        that has not moved (the same rect exactly: the result is the same to the bit)."""
        cache_key = (sprite.key, sprite.flip_vertical, sprite.rect, shape)
        current = self._patches.setdefault(view, {})
        located = current.get(cache_key) or self._previous_patches.get(view, {}).get(cache_key)
        if located is not None:
            current[cache_key] = located
            return located
        height, width = shape
        x1, y1, x2, y2 = (float(c) for c in sprite.rect)
        col0, col1 = max(0, math.floor(x1)), min(width, math.ceil(x2))
        row0, row1 = max(0, math.floor(y1)), min(height, math.ceil(y2))
        if col1 <= col0 or row1 <= row0 or x2 <= x1 or y2 <= y1:
            return None
        texture = self._texture(sprite.key, sprite.flip_vertical)
        th, tw = texture.shape[:2]
        sx, sy = tw / (x2 - x1), th / (y2 - y1)
        # patch pixel (c, r) has its centre at image (col0 + c + 0.5, row0 + r + 0.5); in texture
        # index space (centres on integers): u = (x - x1) * sx - 0.5
        M = np.array([[sx, 0.0, (col0 + 0.5 - x1) * sx - 0.5],
                      [0.0, sy, (row0 + 0.5 - y1) * sy - 0.5]])
        size = (col1 - col0, row1 - row0)
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        patch = cv2.warpAffine(texture, M, size, flags=flags, borderMode=cv2.BORDER_REPLICATE)
        # exact area of each pixel [c, c + 1) x [r, r + 1) inside the rect
        cols = np.arange(col0, col1, dtype=np.float32)
        rows = np.arange(row0, row1, dtype=np.float32)
        cover_x = np.clip(np.minimum(cols + 1, x2) - np.maximum(cols, x1), 0.0, 1.0)
        cover_y = np.clip(np.minimum(rows + 1, y2) - np.maximum(rows, y1), 0.0, 1.0)
        coverage = cover_y[:, None] * cover_x[None, :]
        located = (row0, row1, col0, col1, patch, coverage)
        current[cache_key] = located
        return located
