"""The simulated stereo world: objects on smooth 3D paths, occluders, nuisances, ground truth, rendering.

Everything is a closed-form function of the frame index, so any frame can be asked for in any
order and the same ``(config, seed)`` always gives the same answer. The parts live apart:

* :mod:`paths` plans where objects and occluders go (scripted occlusion passes, crossing pairs,
  objects leaving and re-entering the view, look-alike newcomers, free wanderers);
* :mod:`nuisances` makes reflections, glare, flicker and false positives;
* :mod:`geometry` computes visibility exactly on box geometry: the fraction of an entity's full
  extent inside the image and not covered by anything drawn in front of it (occluders, nearer
  objects), and the bounding box of that visible part;
* :mod:`render` paints it, with textures from real photographs (:mod:`textures`) or synthetic ones.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from object_permanence.core.sim.geometry import clipped_boxes, project_rects, visible_parts
from object_permanence.core.sim.nuisances import (
    BACKGROUND_DISPARITY_PX,
    NUISANCE_ID_BASE,
    NuisanceProcess,
    NuisanceView,
    Salt,
    is_background_false_positive,
)
from object_permanence.core.sim.paths import plan_scene
from object_permanence.core.sim.render import (
    SceneRenderer,
    Sprite,
    hue_to_bgr,
    object_texture,
    occluder_texture,
    stereo_background,
)
from object_permanence.core.sim.rig import StereoRig
from object_permanence.core.sim.scenarios import CLASS_NAMES, ScenarioConfig
from object_permanence.core.types import GroundTruthObject, ObjectKind

__all__ = ["NUISANCE_ID_BASE", "SimFrameTruth", "SimObjectSpec", "SimWorld", "is_background_false_positive"]


@dataclass(frozen=True)
class SimObjectSpec:
    """Static description of one real object.

    size_m: (width, height) of its fronto-parallel extent in metres; color_bgr: the texture's
    base colour; role: 'occlusion_pass', 'crossing', 'reentry', 'newcomer' or 'free';
    lookalike_of: for a newcomer, the id of the object it looks like (same class and size, hue a
    few degrees off, same texture pattern), else 0.
    """

    object_id: int
    class_id: int
    class_name: str
    size_m: tuple[float, float]
    color_bgr: tuple[int, int, int]
    role: str
    lookalike_of: int = 0


@dataclass
class SimFrameTruth:
    """Ground truth of one stereo frame: per-camera entries, objects first, then nuisances."""

    index: int
    time: float
    left: list[GroundTruthObject]
    right: list[GroundTruthObject]


@dataclass
class _Layout:
    """Geometry of one frame, shared by ground_truth() and render().

    obj_rects: (2, N, 4) full extents per view; occ_rects: (2, M, 4); rank: (N + M,) front-to-back
    order of objects then occluders (0 = nearest); nuisances: per view, reflections behind
    everything, glare on top, false positives not drawn.
    """

    positions: np.ndarray
    obj_rects: np.ndarray
    occ_rects: np.ndarray
    rank: np.ndarray
    nuisances: tuple[list[NuisanceView], list[NuisanceView]]


class SimWorld:
    """A deterministic simulated stereo scene with random access by frame index.

    ``ground_truth(k)`` is cheap (no rendering); ``render(k)`` draws the (left, right) BGR pair.
    Real objects have ids ``1..N``; nuisances ids ``>= 1000``, stable over a nuisance's life.
    """

    def __init__(self, config: ScenarioConfig, seed: int = 0, rig: StereoRig | None = None) -> None:
        if not isinstance(config, ScenarioConfig):
            raise ValueError(f"SimWorld: config must be a ScenarioConfig, got {type(config).__name__}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"SimWorld: seed must be a non-negative integer, got {seed!r}")
        self.config = config
        self.seed = int(seed)
        self.rig = rig if rig is not None else StereoRig()
        self._plan = plan_scene(config, self.rig, np.random.default_rng([self.seed, Salt.LAYOUT]))
        plan = self._plan
        self.objects: tuple[SimObjectSpec, ...] = tuple(
            SimObjectSpec(
                object_id=i + 1, class_id=int(plan.class_ids[i]), class_name=CLASS_NAMES[int(plan.class_ids[i])],
                size_m=(float(plan.object_size[i, 0]), float(plan.object_size[i, 1])),
                color_bgr=tuple(int(c) for c in hue_to_bgr(plan.hues[i])), role=plan.roles[i],
                lookalike_of=int(plan.lookalike_of[i]))
            for i in range(config.n_objects))
        self._nuisance_process = NuisanceProcess(config, self.rig, self.seed, plan.class_ids)
        self._renderer, self._textures = self._build_renderer()
        self._cached: tuple[int, _Layout] | None = None

    def _build_renderer(self) -> tuple[SceneRenderer, dict[int, np.ndarray]]:
        """The renderer and its textures (object id or occluder key -> (h, w, 3) uint8) for ``config.textures``.

        ``photo``: object textures and the stereo background are crops of real photographs
        (:mod:`textures`); ``synthetic``: procedural patterns (:mod:`render`). A newcomer's texture is
        drawn from its original's generator (same photo crop or pattern) with its own, slightly
        shifted base colour, so the two look nearly identical with either source.
        """
        rig, photo = self.rig, self.config.textures == "photo"
        if photo:  # imported here: only photo worlds need the photographs' package
            from object_permanence.core.sim.textures import photo_background, photo_object_texture
        textures: dict[int, np.ndarray] = {}
        for spec in self.objects:
            rng = np.random.default_rng([self.seed, Salt.TEXTURE, spec.lookalike_of or spec.object_id])
            base = np.array(spec.color_bgr, dtype=np.uint8)
            if photo:
                textures[spec.object_id] = photo_object_texture(rng, spec.class_id, base)
            else:
                accent = hue_to_bgr(self._plan.hues[spec.object_id - 1], saturation=255, value=90)  # a dark shade
                textures[spec.object_id] = object_texture(rng, spec.class_id, base, accent)
        for j in range(len(self._plan.occluder_size)):
            rng = np.random.default_rng([self.seed, Salt.TEXTURE, 10_000 + j])
            shape = (256, 48) if j < self._plan.n_static else (96, 64)
            textures[self.occluder_key(j)] = occluder_texture(rng, shape)
        background_rng = np.random.default_rng([self.seed, Salt.BACKGROUND])
        make_background = photo_background if photo else stereo_background
        backgrounds = make_background(background_rng, rig.width, rig.height, BACKGROUND_DISPARITY_PX)
        return SceneRenderer(backgrounds, textures), textures

    def texture(self, key: int) -> np.ndarray:
        """A copy of the (h, w, 3) uint8 texture drawn for object id ``key`` (or ``occluder_key(j)``)."""
        if key not in self._textures:
            raise ValueError(f"SimWorld.texture: no texture with key {key!r}; objects have ids 1..{len(self.objects)}")
        return self._textures[key].copy()

    @staticmethod
    def occluder_key(index: int) -> int:
        """Texture key of occluder ``index`` (negative, apart from object ids and the glare key)."""
        return -2 - index

    # ------------------------------------------------------------------ public API
    @property
    def n_frames(self) -> int:
        """Default number of frames of the scenario."""
        return self.config.n_frames

    def frame_time(self, k: int) -> float:
        """Time of frame k in seconds, ``k / fps``."""
        return self._check_index(k) / self.config.fps

    def object_positions(self, k: int) -> np.ndarray:
        """(N, 3) object centres at frame k, left optical frame, metres."""
        return self._plan.objects.at(self.frame_time(k))

    def occluder_rects(self, k: int) -> np.ndarray:
        """(2, M, 4) occluder rects ``x1, y1, x2, y2`` (px, unclipped) per view at frame k."""
        return self._layout(k).occ_rects

    def ground_truth(self, k: int) -> SimFrameTruth:
        """Ground truth of frame k: per camera, objects (ids 1..N) then visible nuisances (ids >= 1000)."""
        layout = self._layout(k)
        width, height = self.rig.width, self.rig.height
        n = len(self.objects)
        views: list[list[GroundTruthObject]] = []
        for view in (0, 1):
            nuisances = layout.nuisances[view]
            nuisance_rects = np.array([item.rect for item in nuisances]).reshape(-1, 4)
            targets = np.concatenate([layout.obj_rects[view], nuisance_rects])
            # reflections lie behind everything; glare and false positives only lose what is off-image
            nuisance_rank = [layout.rank.size if item.kind == ObjectKind.REFLECTION else -1 for item in nuisances]
            target_rank = np.concatenate([layout.rank[:n], np.array(nuisance_rank, dtype=np.int64)])
            blockers = np.concatenate([layout.obj_rects[view], layout.occ_rects[view]])
            parts = visible_parts(targets, target_rank, blockers, layout.rank, width, height)
            vis, boxes = parts.fraction, clipped_boxes(targets, width, height)
            entries = [
                GroundTruthObject(object_id=spec.object_id, kind=ObjectKind.OBJECT, class_id=spec.class_id,
                                  box=boxes[i], visibility=float(vis[i]), position=layout.positions[i].copy(),
                                  visible_box=parts.box[i])
                for i, spec in enumerate(self.objects)]
            entries += [
                GroundTruthObject(object_id=item.object_id, kind=item.kind, class_id=item.class_id,
                                  box=boxes[n + j], visibility=float(vis[n + j]), position=np.full(3, np.nan),
                                  visible_box=parts.box[n + j], source_id=item.source_id)
                for j, item in enumerate(nuisances) if vis[n + j] > 0.0]
            views.append(entries)
        return SimFrameTruth(index=k, time=self.frame_time(k), left=views[0], right=views[1])

    def render(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(left, right) uint8 BGR images, each (H, W, 3), of frame k."""
        layout = self._layout(k)
        n = len(self.objects)
        back_to_front = np.argsort(-layout.rank, kind="stable")
        images = []
        for view in (0, 1):
            rects = np.concatenate([layout.obj_rects[view], layout.occ_rects[view]])
            reflections = [item.sprite for item in layout.nuisances[view]
                           if item.kind == ObjectKind.REFLECTION]
            solids = [Sprite(key=int(idx) + 1 if idx < n else self.occluder_key(int(idx) - n),
                             rect=tuple(rects[idx])) for idx in back_to_front]
            glares = [item.sprite for item in layout.nuisances[view] if item.kind == ObjectKind.GLARE]
            images.append(self._renderer.render(view, reflections + solids + glares))
        return images[0], images[1]

    # ------------------------------------------------------------------ per-frame geometry
    def _check_index(self, k: int) -> int:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
            raise ValueError(f"SimWorld: frame index k must be a non-negative integer, got {k!r}")
        return int(k)

    def _layout(self, k: int) -> _Layout:
        k = self._check_index(k)
        if self._cached is not None and self._cached[0] == k:
            return self._cached[1]
        t = k / self.config.fps
        positions = self._plan.objects.at(t)
        occ_centres = self._plan.occluders.at(t)
        depth = np.concatenate([positions[:, 2], occ_centres[:, 2]])
        order = np.lexsort((np.arange(depth.size), depth))  # nearest first, ties by index
        rank = np.empty(depth.size, dtype=np.int64)
        rank[order] = np.arange(depth.size)
        obj_rects = project_rects(self.rig, positions, self._plan.object_size)
        layout = _Layout(positions=positions, obj_rects=obj_rects,
                         occ_rects=project_rects(self.rig, occ_centres, self._plan.occluder_size), rank=rank,
                         nuisances=self._nuisance_process.at(k, obj_rects))
        self._cached = (k, layout)
        return layout
