"""Object textures and far-wall backgrounds cut from real photographs.

The synthetic textures of :mod:`render` are regular patterns; a detector, an appearance
embedding and a stereo matcher tuned on them never meet the statistics of real surfaces (edges
at every scale and orientation, 1/f spectra, sensor noise, JPEG blocks). This module cuts the
textures from permissively licensed photographs instead. The photographs come from the
scikit-image wheel (``skimage/data``, installed by ``requirements/base.txt``): the files are read
straight from the installed package folder with OpenCV, so nothing is ever downloaded (the
package itself is not even imported: its data fetcher could download files the wheel lacks).
``docs/textures.md`` lists each photograph with its origin and license.

Every random choice (photograph, crop position and scale, flip) is drawn from the caller's
``np.random.Generator``, so a world seed gives the same images on every run.
"""
from __future__ import annotations

import functools
import importlib.util
import os
from dataclasses import dataclass

import cv2
import numpy as np

from object_permanence.core.sim.render import TEXTURE_SIZE

PHOTO_PACKAGE = "skimage"  # import name of scikit-image, whose wheel ships the photographs
PHOTO_PACKAGE_PIN = "scikit-image==0.26.0"

# Object textures: share of the photograph's own (mean-free) colour variation added to the
# tinted luminance, so real colour noise survives while the hue stays close enough to the base
# colour for the colour-histogram re-ID embedding.
PHOTO_CHROMA = 0.3
OBJECT_CONTRAST = 0.3  # luminance std of a texture relative to its base colour
OBJECT_CROP_FRACTION = (0.12, 0.4)  # crop width / largest crop width of that aspect
CROP_CANDIDATES = 4  # crops drawn per texture; the one with most luminance detail is kept
BORDER_BGR = (20, 20, 20)  # thin dark outline, as the synthetic textures have
# Background: grey levels and luminance std (0-255) of the far wall and the floor band,
# moderate so that saturated objects stand out against it.
FLOOR_START = 0.72  # fraction of the image height where the floor band begins (as render.py)
WALL_LEVEL = (150.0, 110.0)  # wall grey at the top and at the floor line (a soft vertical light fall-off)
WALL_CONTRAST = 18.0
FLOOR_LEVEL = 95.0
FLOOR_CONTRAST = 10.0
BACKGROUND_SATURATION = 0.4  # share of the photograph's colour deviations kept in the background
SENSOR_NOISE = 2.0  # std of the static per-pixel noise baked into the background


@dataclass(frozen=True)
class Photo:
    """One photograph shipped in the scikit-image wheel.

    Attributes:
        name: short name, also the ``skimage.data`` function that returns it.
        filename: file inside ``skimage/data``.
        shape: (H, W) pixels of the shipped file; checked on load, so a package version that ships
            another image fails loudly instead of silently changing the simulated world.
        license: license of the photograph.
        origin: who took it, where it comes from.
    """

    name: str
    filename: str
    shape: tuple[int, int]
    license: str
    origin: str


PHOTOS: dict[str, Photo] = {photo.name: photo for photo in (
    Photo("astronaut", "astronaut.png", (512, 512), "public domain",
          "NASA portrait of astronaut Eileen Collins (NASA Great Images)"),
    Photo("chelsea", "chelsea.png", (300, 451), "CC0", "Chelsea the cat, by Stefan van der Walt"),
    Photo("coffee", "coffee.png", (400, 600), "CC0",
          "coffee cup on a wooden table, by Rachel Michetti, courtesy of Pikolo Espresso Bar"),
    Photo("rocket", "rocket.jpg", (427, 640), "public domain",
          "SpaceX launch photo of DSCOVR on Falcon 9 (SpaceX Photos)"),
    Photo("camera", "camera.png", (512, 512), "CC0", "man with a camera, by Lav Varshney"),
    Photo("brick", "brick.png", (512, 512), "CC0",
          "brick wall (Bricks25, CC0Textures), rectified and converted to grey by scikit-image"),
    Photo("grass", "grass.png", (512, 512), "CC0", "grass (Grass-01 by linolafett, DeviantArt), grey"),
    Photo("gravel", "gravel.png", (512, 512), "CC0", "gravel (Gravel04, CC0Textures), grey"),
)}
OBJECT_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera", "brick", "grass", "gravel")
WALL_PHOTOS = ("brick", "coffee", "rocket", "chelsea", "camera")
FLOOR_PHOTOS = ("gravel", "grass", "brick")


def photo_dir() -> str:
    """Folder of the installed scikit-image wheel that holds the photographs.

    Found without importing the package (no data fetcher, no network).

    Raises:
        ModuleNotFoundError: when scikit-image is not installed.
    """
    spec = importlib.util.find_spec(PHOTO_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(
            f"photographic textures need {PHOTO_PACKAGE_PIN} (requirements/base.txt), which is not "
            "installed; use the synthetic textures instead")
    return os.path.join(os.path.dirname(spec.origin), "data")


@functools.lru_cache(maxsize=None)
def load_photo(name: str) -> np.ndarray:
    """(H, W, 3) uint8 BGR photograph ``name`` (a key of :data:`PHOTOS`), read once per process.

    The array is shared by every caller and therefore read-only. Grey photographs come back with
    three equal channels.

    Raises:
        ValueError: on a name that is not in :data:`PHOTOS`.
        ModuleNotFoundError: when scikit-image is not installed.
        FileNotFoundError: when the file is missing from the installed wheel or unreadable.
        RuntimeError: when the file does not have the expected size (another package version).
    """
    photo = PHOTOS.get(name)
    if photo is None:
        raise ValueError(f"name must be one of {sorted(PHOTOS)}, got {name!r}")
    path = os.path.join(photo_dir(), photo.filename)
    image = cv2.imread(path, cv2.IMREAD_COLOR)  # decodes to BGR (RGB files are swapped on read)
    if image is None:
        raise FileNotFoundError(f"photograph {name!r} is missing or unreadable at {path} "
                                f"(reinstall {PHOTO_PACKAGE_PIN})")
    if image.shape[:2] != photo.shape:
        raise RuntimeError(f"photograph {name!r} at {path} is {image.shape[:2]}, expected {photo.shape} "
                           f"(install {PHOTO_PACKAGE_PIN})")
    image.flags.writeable = False
    return image


def _luminance(image: np.ndarray) -> np.ndarray:
    """(H, W) float32 luma Y = 0.299 R + 0.587 G + 0.114 B of a BGR image, 0-255."""
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)


def _edge_energy(luma: np.ndarray) -> float:
    """Mean absolute luminance step between neighbouring pixels: E = mean|dY/dx| + mean|dY/dy|."""
    return float(np.abs(np.diff(luma, axis=1)).mean() + np.abs(np.diff(luma, axis=0)).mean())


def _photo_crop(rng: np.random.Generator, photo: np.ndarray, out_w: int, out_h: int,
                fraction: tuple[float, float]) -> np.ndarray:
    """(out_h, out_w, 3) uint8 crop of ``photo``, with the aspect of the output, resized to it.

    The crop width is ``fraction`` (drawn uniformly in that range) of the widest crop of that aspect
    that fits; of :data:`CROP_CANDIDATES` random positions the one with the most edge energy
    (:func:`_edge_energy`) is kept, so that a crop rarely lands on flat sky or a smooth gradient
    (a flat texture gives the stereo matcher nothing to match). Mirrored left-right with probability 1/2.
    """
    height, width = photo.shape[:2]
    aspect = out_h / out_w
    widest = min(float(width), height / aspect)
    crop_w = max(2, int(round(rng.uniform(*fraction) * widest)))
    crop_h = min(height, max(2, int(round(crop_w * aspect))))
    x0 = rng.integers(0, width - crop_w + 1, size=CROP_CANDIDATES)
    y0 = rng.integers(0, height - crop_h + 1, size=CROP_CANDIDATES)
    detail = [_edge_energy(_luminance(photo[y:y + crop_h, x:x + crop_w])) for x, y in zip(x0, y0)]
    best = int(np.argmax(detail))
    crop = photo[y0[best]:y0[best] + crop_h, x0[best]:x0[best] + crop_w]
    shrink = crop_w >= out_w
    crop = cv2.resize(crop, (out_w, out_h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    return np.ascontiguousarray(crop)


def _check_rng(rng: object) -> None:
    """Raise ValueError unless ``rng`` is a Generator (a bare seed would silently decouple worlds)."""
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")


def photo_object_texture(rng: np.random.Generator, class_id: int, base_bgr: np.ndarray) -> np.ndarray:
    """(h, w, 3) uint8 BGR texture of one object, cut from a real photograph and tinted.

    Same geometry as :func:`render.object_texture`: w = 64 and h = 64 for class 0 (box) and
    1 (ball), h = 160 for class 2 (bottle). A random crop (photo, position, scale, mirror drawn from
    ``rng``) keeps its luminance structure: each texel is the base colour darkened or lightened
    by the crop's normalised luminance, plus a share of the photograph's mean-free colour
    variation; the base colour carries the hue, so objects of different base
    colours keep clearly different colour histograms while edges and noise stay photographic::

        z = clip(c (Y - mean Y) / std Y, -0.7, 0.7)                 (c = OBJECT_CONTRAST)
        tinted = base (1 + z) where z < 0, base + z (255 - base) where z >= 0
        out = tinted + k (photo - Y - mean(photo - Y))                (k = PHOTO_CHROMA)

    A ball gets spherical shading (darker towards its rim); every texture a thin dark border.

    Args:
        rng: source of every random choice.
        class_id: 0 box, 1 ball, 2 bottle.
        base_bgr: (3,) base colour, BGR 0-255 (e.g. :func:`render.hue_to_bgr`).

    Raises:
        ValueError: on an rng that is not a Generator, an unknown class_id or a base_bgr that is
            not three finite values in [0, 255].
    """
    _check_rng(rng)
    if isinstance(class_id, bool) or not isinstance(class_id, (int, np.integer)) or class_id not in (0, 1, 2):
        raise ValueError(f"class_id must be 0, 1 or 2, got {class_id!r}")
    base = np.asarray(base_bgr, dtype=np.float32)
    if base.shape != (3,) or not np.all(np.isfinite(base)) or base.min() < 0 or base.max() > 255:
        raise ValueError(f"base_bgr must be three values in [0, 255], got {base_bgr!r}")
    height = TEXTURE_SIZE * 5 // 2 if class_id == 2 else TEXTURE_SIZE
    photo = load_photo(OBJECT_PHOTOS[int(rng.integers(len(OBJECT_PHOTOS)))])
    crop = _photo_crop(rng, photo, TEXTURE_SIZE, height, OBJECT_CROP_FRACTION).astype(np.float32)
    luma = _luminance(crop)
    mean, std = float(luma.mean()), float(luma.std())
    shade = OBJECT_CONTRAST * (luma - mean) / max(std, 1.0)  # z = c (Y - mean Y) / std Y
    if class_id == 1:
        ys, xs = np.mgrid[0:height, 0:TEXTURE_SIZE].astype(np.float32) + 0.5
        r2 = ((xs - TEXTURE_SIZE / 2) ** 2 + (ys - height / 2) ** 2) / (TEXTURE_SIZE / 2) ** 2
        shade -= 0.4 * (1.0 - np.sqrt(np.clip(1.0 - r2, 0.0, 1.0)))  # Lambert: n.l ~ sqrt(1 - r^2)
    shade = np.clip(shade, -0.7, 0.7)[:, :, None]
    # darker: scale the base, brighter: mix it with white; both keep the base hue exactly
    # (no channel clips), so the hue histogram stays the base colour's
    tinted = np.where(shade < 0.0, base * (1.0 + shade), base + shade * (255.0 - base))
    # the photo's own colour variation: its colour minus its luminance, minus the mean cast, so
    # local colour noise survives while the average hue stays the base colour's
    chroma = crop - luma[:, :, None]
    chroma -= chroma.mean(axis=(0, 1))
    texture = tinted + PHOTO_CHROMA * chroma
    texture = np.clip(texture, 0, 255).astype(np.uint8)
    cv2.rectangle(texture, (0, 0), (TEXTURE_SIZE - 1, height - 1), BORDER_BGR, 2)
    return texture


def _grey_band(rng: np.random.Generator, names: tuple[str, ...], width: int, height: int,
               top: float, bottom: float, contrast: float) -> np.ndarray:
    """(height, width, 3) float32 band cut from one of ``names``: its colour and luminance
    deviations, scaled to luminance std ``contrast`` (colour kept at BACKGROUND_SATURATION), around
    a grey level running linearly from ``top`` (first row) to ``bottom`` (last row)::

        d = s (I - mean I) + (1 - s) (Y - mean Y)     out = level(row) + contrast * d / std Y
    """
    photo = load_photo(names[int(rng.integers(len(names)))])
    crop = _photo_crop(rng, photo, width, height, (0.7, 1.0)).astype(np.float32)
    luma = _luminance(crop)
    deviation = (BACKGROUND_SATURATION * (crop - crop.mean(axis=(0, 1)))
                 + (1.0 - BACKGROUND_SATURATION) * (luma - luma.mean())[:, :, None])
    level = np.linspace(top, bottom, height, dtype=np.float32)[:, None, None]
    return level + deviation * (contrast / max(float(luma.std()), 1.0))


def photo_background(rng: np.random.Generator, width: int, height: int,
                     disparity_px: int) -> tuple[np.ndarray, np.ndarray]:
    """Left and right (H, W, 3) uint8 views of a far wall and floor cut from real photographs.

    A drop-in for :func:`render.stereo_background`: one canvas ``width + disparity_px`` wide holds
    a wall photograph above row ``FLOOR_START * height`` and a ground photograph (gravel, grass,
    brick) below it, both at moderate contrast around mid greys so that objects stand out; the
    right view is the same canvas shifted, so a wall point at column ``c`` of the left image lies
    at ``c - disparity_px`` on the right (the wall's disparity).

    Raises:
        ValueError: on an rng that is not a Generator, a non-positive width or height, or a
            negative disparity_px.
    """
    _check_rng(rng)
    for arg, value, low in (("width", width, 1), ("height", height, 2), ("disparity_px", disparity_px, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{arg} must be an integer >= {low}, got {value!r}")
    canvas_w = int(width + disparity_px)
    floor_start = max(1, min(height - 1, int(FLOOR_START * height)))
    wall = _grey_band(rng, WALL_PHOTOS, canvas_w, floor_start, *WALL_LEVEL, WALL_CONTRAST)
    floor = _grey_band(rng, FLOOR_PHOTOS, canvas_w, height - floor_start,
                       FLOOR_LEVEL, FLOOR_LEVEL, FLOOR_CONTRAST)
    canvas = np.concatenate([wall, floor], axis=0)
    canvas += rng.normal(0.0, SENSOR_NOISE, size=canvas.shape).astype(np.float32)
    canvas = np.clip(canvas, 0, 255).astype(np.uint8)
    return canvas[:, :width].copy(), canvas[:, disparity_px:disparity_px + width].copy()
