"""Identity crops from the simulated world, for training and judging appearance embeddings.

An identity is one real object of one simulated world, ``(scenario, seed, object id)``; its
crops come from both cameras and from frames spread over the run, so the network sees it at
other depths, partly hidden, against other background. Every scenario takes part, ``reentry``
included, whose look-alike newcomers (same class, size and texture pattern, hue a few degrees
off) are the hard negatives of their originals.

Crops are cut around the *visible* part of the object (what a detector boxes), moved and scaled
a little at random as a detector's boxes are; a sighting that is mostly hidden (visibility below
``min_visibility``) or tiny is skipped. Ground truth is only read here, to label the crops.

:func:`sample_probes` draws the re-identification protocol: for each identity a query and a
gallery sighting at least ``min_gap_s`` apart in time, from either camera (also across cameras).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from object_permanence.core.reid.crops import DEFAULT_CROP_SIZE, check_crop_size, crop_boxes, rect_log_aspect
from object_permanence.core.sim.scenarios import SCENARIOS, make_scenario
from object_permanence.core.sim.world import SimWorld
from object_permanence.core.types import ObjectKind

SCENARIO_NAMES: tuple[str, ...] = tuple(SCENARIOS)

Progress = Callable[[Iterable], Iterable]  # e.g. tqdm: wraps an iterable to show progress


@dataclass(frozen=True)
class WorldRef:
    """One simulated world: a scenario preset and a seed."""

    scenario: str
    seed: int

    def __post_init__(self) -> None:
        make_scenario(self.scenario)  # ValueError naming the allowed presets
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ValueError(f"WorldRef: seed must be a non-negative integer, got {self.seed!r}")

    def build(self) -> SimWorld:
        return SimWorld(make_scenario(self.scenario), int(self.seed))


def worlds_for_seeds(seeds: Iterable[int], per_seed: int = len(SCENARIO_NAMES)) -> list[WorldRef]:
    """``per_seed`` worlds of each seed, their scenarios taken in turn from :data:`SCENARIO_NAMES`
    starting at ``seed * per_seed`` (so consecutive seeds cover every scenario equally).

    Raises:
        ValueError: per_seed outside 1..len(SCENARIO_NAMES).
    """
    n = len(SCENARIO_NAMES)
    if isinstance(per_seed, bool) or not isinstance(per_seed, (int, np.integer)) or not 1 <= per_seed <= n:
        raise ValueError(f"per_seed must be an integer in [1, {n}], got {per_seed!r}")
    return [WorldRef(SCENARIO_NAMES[(int(s) * per_seed + j) % n], int(s)) for s in seeds for j in range(per_seed)]


@dataclass(frozen=True)
class SightingRules:
    """Which sightings make a crop, and how boxes are disturbed.

    min_visibility: smallest visible fraction of the object's full extent, (0, 1];
    min_box_px: smallest width and height of the visible box, pixels;
    box_jitter: std of the box centre shift (fraction of the box size) and of the log scale change.
    """

    min_visibility: float = 0.6
    min_box_px: float = 12.0
    box_jitter: float = 0.05

    def __post_init__(self) -> None:
        if not 0.0 < self.min_visibility <= 1.0:
            raise ValueError(f"SightingRules: min_visibility must be in (0, 1], got {self.min_visibility!r}")
        if not np.isfinite(self.min_box_px) or self.min_box_px < 1.0:
            raise ValueError(f"SightingRules: min_box_px must be >= 1, got {self.min_box_px!r}")
        if not 0.0 <= self.box_jitter < 0.5:
            raise ValueError(f"SightingRules: box_jitter must be in [0, 0.5), got {self.box_jitter!r}")


@dataclass
class Sightings:
    """M usable sightings of the objects of one world: frame (M,), camera (M,) 0 left / 1 right,
    object_id (M,), box (M, 4) visible box ``cx, cy, w, h`` px (undisturbed), visibility (M,)."""

    frame: np.ndarray
    camera: np.ndarray
    object_id: np.ndarray
    box: np.ndarray
    visibility: np.ndarray

    def __len__(self) -> int:
        return len(self.frame)


def world_sightings(world: SimWorld, frames: Iterable[int], rules: SightingRules) -> Sightings:
    """The sightings of real objects at ``frames`` that pass ``rules`` (both cameras)."""
    rows = []
    for k in frames:
        truth = world.ground_truth(int(k))
        for camera, entries in enumerate((truth.left, truth.right)):
            rows += [(int(k), camera, g.object_id, *g.visible_box, g.visibility) for g in entries
                     if g.kind == ObjectKind.OBJECT]
    table = np.array(rows, dtype=float).reshape(-1, 8)
    keep = ((table[:, 7] >= rules.min_visibility) & (table[:, 5] >= rules.min_box_px)
            & (table[:, 6] >= rules.min_box_px))
    table = table[keep]
    return Sightings(frame=table[:, 0].astype(np.int64), camera=table[:, 1].astype(np.int64),
                     object_id=table[:, 2].astype(np.int64), box=table[:, 3:7].copy(), visibility=table[:, 7].copy())


def jitter_boxes(boxes: np.ndarray, scale: float, rng: np.random.Generator) -> np.ndarray:
    """(N, 4) boxes moved by ``scale`` x size and rescaled by exp(``scale`` z), z ~ N(0, 1).

    c' = c + s (w, h) z_c;  (w', h') = (w, h) exp(s z_s)   (a detector's box noise, in proportion)
    """
    boxes = np.asarray(boxes, dtype=float).reshape(-1, 4)
    z = rng.standard_normal(boxes.shape)
    out = boxes.copy()
    out[:, :2] += scale * boxes[:, 2:] * z[:, :2]
    out[:, 2:] *= np.exp(scale * z[:, 2:])
    return out


def stratified_frames(n_frames: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` sorted frame indices, one drawn uniformly from each of ``count`` equal strata of
    ``0 .. n_frames - 1`` (spread over the run, never two in one stratum)."""
    count = min(count, n_frames)
    edges = np.linspace(0, n_frames, count + 1)
    return np.unique(np.floor(edges[:-1] + rng.random(count) * np.diff(edges)).astype(np.int64))


@dataclass
class IdentityCrops:
    """N crops of I identities.

    crops: (N, h, w, 3) uint8 BGR; log_aspect: (N,) float32 log(w / h) of the cropped rects
    (:func:`crops.rect_log_aspect`); identity: (N,) index 0..I-1; camera, frame: (N,);
    worlds: the worlds the crops come from; identity_world: (I,) index into ``worlds``;
    identity_object: (I,) object id in that world; identity_original: (I,) identity index of the
    object a look-alike newcomer imitates, -1 for every other identity.
    """

    crops: np.ndarray
    log_aspect: np.ndarray
    identity: np.ndarray
    camera: np.ndarray
    frame: np.ndarray
    worlds: list[WorldRef]
    identity_world: np.ndarray
    identity_object: np.ndarray
    identity_original: np.ndarray

    @property
    def n_identities(self) -> int:
        return len(self.identity_world)

    def save(self, path) -> None:
        """One .npz file (uncompressed: the crops barely compress and loading should be quick)."""
        np.savez(path, crops=self.crops, log_aspect=self.log_aspect, identity=self.identity, camera=self.camera,
                 frame=self.frame,
                 world_scenario=np.array([w.scenario for w in self.worlds]),
                 world_seed=np.array([w.seed for w in self.worlds], dtype=np.int64),
                 identity_world=self.identity_world, identity_object=self.identity_object,
                 identity_original=self.identity_original)

    @classmethod
    def load(cls, path) -> IdentityCrops:
        with np.load(path) as z:
            worlds = [WorldRef(str(s), int(d)) for s, d in zip(z["world_scenario"], z["world_seed"])]
            return cls(crops=z["crops"], log_aspect=z["log_aspect"], identity=z["identity"], camera=z["camera"],
                       frame=z["frame"], worlds=worlds,
                       identity_world=z["identity_world"], identity_object=z["identity_object"],
                       identity_original=z["identity_original"])


def build_identity_crops(worlds: Sequence[WorldRef], frames_per_world: int, rules: SightingRules = SightingRules(),
                         size: tuple[int, int] = DEFAULT_CROP_SIZE, seed: int = 0,
                         progress: Progress | None = None) -> IdentityCrops:
    """Crops of every usable sighting at ``frames_per_world`` frames of each world (both cameras).

    Deterministic for (worlds, frames_per_world, rules, size, seed). Identities with no usable
    sighting keep their index and simply have no crop.

    Raises:
        ValueError: on no worlds, frames_per_world < 1 or a bad size.
    """
    size = check_crop_size(size)
    if not worlds:
        raise ValueError("build_identity_crops: worlds must not be empty")
    if (isinstance(frames_per_world, bool) or not isinstance(frames_per_world, (int, np.integer))
            or frames_per_world < 1):
        raise ValueError(f"build_identity_crops: frames_per_world must be an integer >= 1, got {frames_per_world!r}")
    crops, aspects, identity, camera, frame = [], [], [], [], []
    ids: dict[tuple[int, int], int] = {}  # (world, object id) -> identity
    lookalike: list[tuple[int, int]] = []  # per identity: (world, id of the original or 0)
    for w, ref in enumerate(progress(worlds) if progress else worlds):
        sim = ref.build()
        for spec in sim.objects:
            ids[(w, spec.object_id)] = len(ids)
            lookalike.append((w, spec.lookalike_of))
        rng = np.random.default_rng([seed, ref.seed, SCENARIO_NAMES.index(ref.scenario)])
        seen = world_sightings(sim, stratified_frames(sim.n_frames, frames_per_world, rng), rules)
        boxes = jitter_boxes(seen.box, rules.box_jitter, rng)
        for k in np.unique(seen.frame):
            images = sim.render(int(k))
            for cam in (0, 1):
                rows = np.flatnonzero((seen.frame == k) & (seen.camera == cam))
                if rows.size:
                    crops.append(crop_boxes(images[cam], boxes[rows], size)[0])
                    aspects.append(rect_log_aspect(boxes[rows], images[cam].shape[1], images[cam].shape[0]))
                    identity += [ids[(w, int(o))] for o in seen.object_id[rows]]
                    camera += [cam] * rows.size
                    frame += [int(k)] * rows.size
    keys = list(ids)  # insertion order = identity order
    original = np.array([ids[(w, o)] if o else -1 for w, o in lookalike], dtype=np.int64)
    h, wd = size
    return IdentityCrops(crops=np.concatenate(crops) if crops else np.zeros((0, h, wd, 3), np.uint8),
                         log_aspect=np.concatenate(aspects) if aspects else np.zeros(0, np.float32),
                         identity=np.array(identity, dtype=np.int64), camera=np.array(camera, dtype=np.int64),
                         frame=np.array(frame, dtype=np.int64), worlds=list(worlds),
                         identity_world=np.array([k[0] for k in keys], dtype=np.int64),
                         identity_object=np.array([k[1] for k in keys], dtype=np.int64), identity_original=original)


@dataclass
class Probes:
    """The re-ID protocol: 2 sightings per identity, a query and a gallery one.

    Rows (P = 2 x identities kept): world (P,) index into ``worlds``; frame, camera (P,); box (P, 4)
    ``cx, cy, w, h`` px (disturbed as a detector's); identity (P,) index 0..I-1; is_query (P,) bool.
    Per identity: identity_world, identity_object, identity_original (as :class:`IdentityCrops`,
    -1 when the original object has no probe); identity_batch (I,) the sequence batch: the gallery
    of a query holds every identity of its batch.
    """

    world: np.ndarray
    frame: np.ndarray
    camera: np.ndarray
    box: np.ndarray
    identity: np.ndarray
    is_query: np.ndarray
    worlds: list[WorldRef]
    identity_world: np.ndarray
    identity_object: np.ndarray
    identity_original: np.ndarray
    identity_batch: np.ndarray

    @property
    def cross_camera(self) -> np.ndarray:
        """(I,) bool: the query and gallery sightings of the identity come from different cameras."""
        q, g = self.ordered_rows()
        return self.camera[q] != self.camera[g]

    def ordered_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """Row indices (I,) of each identity's query and gallery sighting, in identity order."""
        q = np.flatnonzero(self.is_query)
        g = np.flatnonzero(~self.is_query)
        return q[np.argsort(self.identity[q])], g[np.argsort(self.identity[g])]


def sample_probes(worlds: Sequence[WorldRef], min_gap_s: float = 2.0, frame_stride: int = 3,
                  cross_camera_share: float = 0.5, rules: SightingRules = SightingRules(),
                  seed: int = 0, seeds_per_batch: int = 1, progress: Progress | None = None) -> Probes:
    """For each identity with two usable sightings ``>= min_gap_s`` apart, a query and a gallery one.

    The query is a random usable sighting (ground truth read every ``frame_stride`` frames); the
    gallery one a random usable sighting at least ``min_gap_s`` away from it, in the other camera
    with probability ``cross_camera_share`` (when there is one) else in the same camera. Sequence
    batch = ``seed // seeds_per_batch`` of the world (1: the worlds of one seed; 6 with one world per
    seed from :func:`worlds_for_seeds`: six consecutive seeds, every scenario once).

    Raises:
        ValueError: on no worlds or a bad min_gap_s, frame_stride, cross_camera_share or seeds_per_batch.
    """
    if not worlds:
        raise ValueError("sample_probes: worlds must not be empty")
    if not np.isfinite(min_gap_s) or min_gap_s < 0:
        raise ValueError(f"sample_probes: min_gap_s must be >= 0, got {min_gap_s!r}")
    if isinstance(frame_stride, bool) or not isinstance(frame_stride, (int, np.integer)) or frame_stride < 1:
        raise ValueError(f"sample_probes: frame_stride must be an integer >= 1, got {frame_stride!r}")
    if not 0.0 <= cross_camera_share <= 1.0:
        raise ValueError(f"sample_probes: cross_camera_share must be in [0, 1], got {cross_camera_share!r}")
    if isinstance(seeds_per_batch, bool) or not isinstance(seeds_per_batch, (int, np.integer)) or seeds_per_batch < 1:
        raise ValueError(f"sample_probes: seeds_per_batch must be an integer >= 1, got {seeds_per_batch!r}")
    rows: list[tuple] = []
    kept: list[tuple[int, int, int]] = []  # (world, object id, original object id)
    for w, ref in enumerate(progress(worlds) if progress else worlds):
        sim = ref.build()
        rng = np.random.default_rng([seed, ref.seed, SCENARIO_NAMES.index(ref.scenario), 1])
        seen = world_sightings(sim, range(0, sim.n_frames, frame_stride), rules)
        gap = int(np.ceil(min_gap_s * sim.config.fps))
        for spec in sim.objects:
            mine = np.flatnonzero(seen.object_id == spec.object_id)
            if mine.size < 2:
                continue
            q = int(rng.choice(mine))
            far = mine[np.abs(seen.frame[mine] - seen.frame[q]) >= gap]
            if far.size == 0:
                continue
            other = far[seen.camera[far] != seen.camera[q]]
            same = far[seen.camera[far] == seen.camera[q]]
            pool = other if other.size and (same.size == 0 or rng.random() < cross_camera_share) else same
            g = int(rng.choice(pool))
            boxes = jitter_boxes(seen.box[[q, g]], rules.box_jitter, rng)
            for row, query, box in ((q, True, boxes[0]), (g, False, boxes[1])):
                rows.append((w, int(seen.frame[row]), int(seen.camera[row]), box, len(kept), query))
            kept.append((w, spec.object_id, spec.lookalike_of))
    index = {(w, o): i for i, (w, o, _) in enumerate(kept)}
    return Probes(
        world=np.array([r[0] for r in rows], dtype=np.int64), frame=np.array([r[1] for r in rows], dtype=np.int64),
        camera=np.array([r[2] for r in rows], dtype=np.int64), box=np.array([r[3] for r in rows]).reshape(-1, 4),
        identity=np.array([r[4] for r in rows], dtype=np.int64), is_query=np.array([r[5] for r in rows], dtype=bool),
        worlds=list(worlds), identity_world=np.array([k[0] for k in kept], dtype=np.int64),
        identity_object=np.array([k[1] for k in kept], dtype=np.int64),
        identity_original=np.array([index.get((w, o), -1) if o else -1 for w, _, o in kept], dtype=np.int64),
        identity_batch=np.array([worlds[k[0]].seed // seeds_per_batch for k in kept], dtype=np.int64))


def embed_probes(probes: Probes, embedders: Mapping[str, Callable[[np.ndarray, np.ndarray], np.ndarray]],
                 progress: Progress | None = None) -> dict[str, np.ndarray]:
    """Run every embedder on every probe row: per (world, frame, camera) one image and all its boxes.

    embedders: name -> ``embed(image_bgr (H, W, 3) uint8, boxes (n, 4)) -> (n, D)``, e.g. the
    ``embed`` methods of :class:`~object_permanence.core.appearance.ColorHistogramEmbedder` and
    :class:`~object_permanence.core.reid.embedder.LearnedEmbedder`: all see exactly the same boxes of
    exactly the same images. Returns name -> (P, D) in probe row order.
    """
    out: dict[str, np.ndarray | None] = {name: None for name in embedders}
    world_ids = np.unique(probes.world)
    for w in (progress(world_ids) if progress else world_ids):
        sim = probes.worlds[int(w)].build()
        in_world = np.flatnonzero(probes.world == w)
        for k in np.unique(probes.frame[in_world]):
            images = sim.render(int(k))
            for cam in (0, 1):
                rows = in_world[(probes.frame[in_world] == k) & (probes.camera[in_world] == cam)]
                if rows.size == 0:
                    continue
                for name, embed in embedders.items():
                    vectors = np.asarray(embed(images[cam], probes.box[rows]))
                    if out[name] is None:
                        out[name] = np.zeros((len(probes.world),) + vectors.shape[1:], dtype=vectors.dtype)
                    out[name][rows] = vectors
    return {name: (v if v is not None else np.zeros((0, 0), np.float32)) for name, v in out.items()}
