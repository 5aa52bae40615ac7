"""Nuisances of the simulated world: reflections, glare, flicker and detector false positives.

Everything is a closed-form function of the frame index (random access, deterministic per seed):

* Reflections and glare are born by a Poisson process drawn per block of frames from a generator
  seeded with ``(seed, kind, block)``; frame k looks back only over the longest life.
* Single-frame false positives are drawn per frame and camera; background false positives
  (stereo-consistent hallucinations on the far wall) per birth frame.
* Flicker is a hash of ``(seed, id, frame)``.

Nuisance ids are ``NUISANCE_ID_BASE + 4 * serial + kind``: stable over a nuisance's life and apart
from the real objects' ids ``1..N``.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from object_permanence.core.sim.render import GLARE_KEY, Blend, Sprite
from object_permanence.core.sim.rig import StereoRig
from object_permanence.core.sim.scenarios import CLASS_NAMES, ScenarioConfig
from object_permanence.core.types import ObjectKind

NUISANCE_ID_BASE = 1000  # nuisance ids are NUISANCE_ID_BASE + 4 * serial + kind
BACKGROUND_DISPARITY_PX = 6  # the background wall stands at fx * B / 6 px (10 m on the default rig)
_BLOCK = 64  # frames per block of the nuisance birth process
_MAX_PER_BLOCK = 32  # births kept per block and kind
_MAX_FP = 8  # false positives kept per frame and camera
_MASK64 = (1 << 64) - 1
_BG_FP_SERIAL_BASE = 1 << 24  # serial space of background false positives, apart from per-frame ones



class Salt(IntEnum):
    """Generator salts of the simulated world: one independent random stream per purpose."""

    LAYOUT = 0
    TEXTURE = 1
    REFLECTION = 2
    GLARE = 3
    FALSE_POSITIVE = 4
    BACKGROUND = 5
    BACKGROUND_FP = 6


class ReflectionMode(IntEnum):
    """How a reflection breaks stereo consistency."""

    LEFT_ONLY = 0  # seen in the left view only
    RIGHT_ONLY = 1  # seen in the right view only
    ROW_OFFSET = 2  # rows differ by 15-40 px between the views (rectified views share rows)
    FAR_DISPARITY = 3  # disparity < 2 px: implies a depth beyond 30 m on the default rig


@dataclass(frozen=True)
class _Reflection:
    serial: int
    birth: int
    duration: int
    source: int  # index of the mirrored object (its id is source + 1)
    mode: ReflectionMode
    row_offset: float  # px, ROW_OFFSET mode
    far_disparity: float  # px, FAR_DISPARITY mode
    below: bool  # mirrored under the object (floor) or above it (window)
    gap: float  # px between object and reflection
    alpha: float
    flicker: bool


@dataclass(frozen=True)
class _Glare:
    serial: int
    birth: int
    duration: int
    class_id: int
    centre: np.ndarray  # (2 views, 2) px at birth
    velocity: np.ndarray  # (2 views, 2) px/frame
    radius: np.ndarray  # (2 views,) px of the saturated core
    flicker: bool


@dataclass
class NuisanceView:
    """One nuisance as present in one view.

    rect: (4,) its full extent ``x1, y1, x2, y2`` (px); sprite: how it is drawn (None: not drawn,
    a detector hallucination); source_id: for a reflection the mirrored object's id, else 0.
    """

    object_id: int
    kind: ObjectKind
    class_id: int
    rect: np.ndarray
    sprite: Sprite | None
    source_id: int = 0


def unit_hash(*values: int) -> float:
    """Deterministic uniform number in [0, 1) from integers (splitmix64 chain)."""
    state = 0
    for value in values:
        state = ((state ^ (value & _MASK64)) + 0x9E3779B97F4A7C15) & _MASK64
        state = ((state ^ (state >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        state = ((state ^ (state >> 27)) * 0x94D049BB133111EB) & _MASK64
        state ^= state >> 31
    return state / 2.0**64


def nuisance_id(serial: int, kind: ObjectKind) -> int:
    """Ground-truth id of nuisance ``serial`` of ``kind``."""
    return NUISANCE_ID_BASE + 4 * serial + int(kind)


def is_background_false_positive(object_id: int) -> bool:
    """Whether a ground-truth id belongs to a (stereo-consistent) background false positive."""
    return object_id >= nuisance_id(_BG_FP_SERIAL_BASE, ObjectKind.OBJECT)


class NuisanceProcess:
    """The nuisances alive at any frame of one world.

    object_class_ids: (N,) class of each real object (reflections inherit their source's class).
    """

    def __init__(self, config: ScenarioConfig, rig: StereoRig, seed: int, object_class_ids: np.ndarray) -> None:
        self.config = config
        self.rig = rig
        self.seed = int(seed)
        self._class_ids = np.asarray(object_class_ids, dtype=np.int64)
        self._max_duration = max(config.reflection_frames[1], config.glare_frames[1])

    def at(self, k: int, obj_rects: np.ndarray) -> tuple[list[NuisanceView], list[NuisanceView]]:
        """Per view (left, right), the nuisances present at frame k.

        obj_rects: (2, N, 4) the objects' full rects per view at frame k (reflections mirror them).
        """
        views: tuple[list[NuisanceView], list[NuisanceView]] = ([], [])
        first_block = max(0, (k - self._max_duration) // _BLOCK)
        for block in range(first_block, k // _BLOCK + 1):
            for refl in self._reflection_block(block):
                if refl.birth <= k < refl.birth + refl.duration and self._flicker_on(refl.flicker, refl.serial,
                                                                                      ObjectKind.REFLECTION, k):
                    self._place_reflection(refl, obj_rects, views)
            for glare in self._glare_block(block):
                if glare.birth <= k < glare.birth + glare.duration and self._flicker_on(glare.flicker, glare.serial,
                                                                                        ObjectKind.GLARE, k):
                    self._place_glare(glare, k, views)
        for view in (0, 1):
            views[view].extend(self._false_positives(k, view))
        for view, entries in zip((0, 1), self._background_false_positives(k)):
            views[view].extend(entries)
        return views

    def _flicker_on(self, flickers: bool, serial: int, kind: ObjectKind, k: int) -> bool:
        return not flickers or unit_hash(self.seed, nuisance_id(serial, kind), k) < self.config.flicker_duty

    def _reflection_block(self, block: int) -> list[_Reflection]:
        cfg = self.config
        if cfg.reflection_rate <= 0 or self._class_ids.size == 0:
            return []
        rng = np.random.default_rng([self.seed, Salt.REFLECTION, block])
        count = min(int(rng.poisson(cfg.reflection_rate * _BLOCK / cfg.fps)), _MAX_PER_BLOCK)
        return [_Reflection(
            serial=block * _MAX_PER_BLOCK + j, birth=block * _BLOCK + int(rng.integers(_BLOCK)),
            duration=int(rng.integers(cfg.reflection_frames[0], cfg.reflection_frames[1] + 1)),
            source=int(rng.integers(self._class_ids.size)), mode=ReflectionMode(int(rng.integers(4))),
            row_offset=float(rng.choice([-1.0, 1.0]) * rng.uniform(15.0, 40.0)),
            far_disparity=float(rng.uniform(0.0, 2.0)), below=bool(rng.random() < 0.6),
            gap=float(rng.uniform(2.0, 10.0)), alpha=float(rng.uniform(0.3, 0.5)),
            flicker=bool(rng.random() < cfg.flicker_prob)) for j in range(count)]

    def _glare_block(self, block: int) -> list[_Glare]:
        cfg, rig = self.config, self.rig
        if cfg.glare_rate <= 0:
            return []
        rng = np.random.default_rng([self.seed, Salt.GLARE, block])
        count = min(int(rng.poisson(cfg.glare_rate * _BLOCK / cfg.fps)), _MAX_PER_BLOCK)
        lo, hi = np.array([20.0, 20.0]), np.array([rig.width - 20.0, rig.height - 20.0])
        return [_Glare(
            serial=block * _MAX_PER_BLOCK + j, birth=block * _BLOCK + int(rng.integers(_BLOCK)),
            duration=int(rng.integers(cfg.glare_frames[0], cfg.glare_frames[1] + 1)),
            class_id=int(rng.integers(len(CLASS_NAMES))), centre=rng.uniform(lo, hi, size=(2, 2)),
            velocity=rng.uniform(-0.7, 0.7, size=(2, 2)), radius=rng.uniform(8.0, 28.0, size=2),
            flicker=bool(rng.random() < cfg.flicker_prob)) for j in range(count)]

    def _place_reflection(self, refl: _Reflection, obj_rects: np.ndarray,
                          views: tuple[list[NuisanceView], list[NuisanceView]]) -> None:
        """Mirror the source object's rect below (floor) or above (window) it, breaking stereo on purpose."""
        rects = []
        for view in (0, 1):
            x1, y1, x2, y2 = obj_rects[view, refl.source]
            top = y2 + refl.gap if refl.below else y1 - refl.gap - (y2 - y1)
            rects.append(np.array([x1, top, x2, top + (y2 - y1)]))
        if refl.mode == ReflectionMode.ROW_OFFSET:
            rects[1] = rects[1] + np.array([0.0, refl.row_offset, 0.0, refl.row_offset])
        elif refl.mode == ReflectionMode.FAR_DISPARITY:
            rects[1] = rects[0] - np.array([refl.far_disparity, 0.0, refl.far_disparity, 0.0])
        shown = {ReflectionMode.LEFT_ONLY: (0,), ReflectionMode.RIGHT_ONLY: (1,)}.get(refl.mode, (0, 1))
        object_id = nuisance_id(refl.serial, ObjectKind.REFLECTION)
        for view in shown:
            x1, y1, x2, y2 = rects[view]
            if x1 >= 0 and y1 >= 0 and x2 <= self.rig.width and y2 <= self.rig.height:  # wholly in view only
                sprite = Sprite(key=refl.source + 1, rect=(x1, y1, x2, y2), blend=Blend.DIMMED,
                                alpha=refl.alpha, flip_vertical=True)
                views[view].append(NuisanceView(object_id, ObjectKind.REFLECTION, int(self._class_ids[refl.source]),
                                                rects[view], sprite, source_id=refl.source + 1))

    def _place_glare(self, glare: _Glare, k: int, views: tuple[list[NuisanceView], list[NuisanceView]]) -> None:
        """A saturated blob drifting independently in each view (no consistent disparity)."""
        object_id = nuisance_id(glare.serial, ObjectKind.GLARE)
        for view in (0, 1):
            u, v = glare.centre[view] + glare.velocity[view] * (k - glare.birth)
            if not (0.0 <= u < self.rig.width and 0.0 <= v < self.rig.height):
                continue
            half = 1.5 * glare.radius[view]  # the profile's core is half its extent
            rect = np.array([u - half, v - half, u + half, v + half])
            sprite = Sprite(key=GLARE_KEY, rect=tuple(rect), blend=Blend.GLARE)
            views[view].append(NuisanceView(object_id, ObjectKind.GLARE, glare.class_id, rect, sprite))

    def _background_false_positives(self, k: int) -> tuple[list[NuisanceView], list[NuisanceView]]:
        """Hallucinations on the background wall alive at frame k, in both views (the right one
        shifted by the wall's disparity). Births are drawn per frame from a seeded generator, so
        frame k only looks back over the longest life."""
        cfg, rig = self.config, self.rig
        views: tuple[list[NuisanceView], list[NuisanceView]] = ([], [])
        if cfg.background_fp_rate <= 0:
            return views
        lo, hi = cfg.background_fp_frames
        for birth in range(max(0, k - int(hi) + 1), k + 1):
            rng = np.random.default_rng([self.seed, Salt.BACKGROUND_FP, birth])
            for j in range(min(int(rng.poisson(cfg.background_fp_rate / cfg.fps)), _MAX_FP)):
                duration = int(rng.integers(int(lo), int(hi) + 1))
                w, h = rng.uniform(30.0, 90.0, size=2)
                u, v = rng.uniform([w / 2 + BACKGROUND_DISPARITY_PX, h / 2], [rig.width - w / 2, rig.height - h / 2])
                class_id = int(rng.integers(len(CLASS_NAMES)))
                if birth + duration <= k:
                    continue
                oid = nuisance_id(_BG_FP_SERIAL_BASE + birth * _MAX_FP + j, ObjectKind.FALSE_POSITIVE)
                for view, shift in ((0, 0.0), (1, float(BACKGROUND_DISPARITY_PX))):
                    views[view].append(NuisanceView(oid, ObjectKind.FALSE_POSITIVE, class_id,
                                                    np.array([u - shift - w / 2, v - h / 2, u - shift + w / 2,
                                                              v + h / 2]), None))
        return views

    def _false_positives(self, k: int, view: int) -> list[NuisanceView]:
        """Single-frame detector hallucinations: GT entries with no image evidence."""
        cfg, rig = self.config, self.rig
        if cfg.false_positive_rate <= 0:
            return []
        rng = np.random.default_rng([self.seed, Salt.FALSE_POSITIVE, k, view])
        count = min(int(rng.poisson(cfg.false_positive_rate)), _MAX_FP)
        entries = []
        for j in range(count):
            w, h = rng.uniform(25.0, 100.0, size=2)
            u, v = rng.uniform([w / 2, h / 2], [rig.width - w / 2, rig.height - h / 2])
            serial = (2 * k + view) * _MAX_FP + j
            entries.append(NuisanceView(nuisance_id(serial, ObjectKind.FALSE_POSITIVE),
                                        ObjectKind.FALSE_POSITIVE, int(rng.integers(len(CLASS_NAMES))),
                                        np.array([u - w / 2, v - h / 2, u + w / 2, v + h / 2]), None))
        return entries
