"""The simulated stereo world: objects on smooth 3D paths, occluders, nuisances, ground truth.

Everything is a closed-form function of the frame index, so any frame can be asked for in any
order and the same ``(config, seed)`` always gives the same answer:

* Paths are sums of sinusoids per axis, ``p(t) = c + sum_j a_j sin(w_j t + phi_j)``, bounded so
  objects stay in view. Scripted objects cross behind a static occluder with a chosen hidden time;
  crossing pairs pass each other in the image at different depths.
* Nuisances (reflections, glare) are born by a Poisson process drawn per block of frames from a
  generator seeded with ``(seed, kind, block)``; false positives are drawn per frame and camera;
  flicker is a hash of ``(seed, id, frame)``.
* Visibility is exact box geometry: the fraction of an entity's full extent that lies inside the
  image and is not covered by anything drawn in front of it (occluders, nearer objects).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from object_permanence.core.sim.render import (
    GLARE_KEY,
    Blend,
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

NUISANCE_ID_BASE = 1000  # nuisance ids are NUISANCE_ID_BASE + 4 * serial + kind
_BLOCK = 64  # frames per block of the nuisance birth process
_MAX_PER_BLOCK = 32  # births kept per block and kind
_MAX_FP = 8  # false positives kept per frame and camera
_MARGIN_PX = 10.0  # objects keep this far inside the image at their nearest
_BACKGROUND_DISPARITY_PX = 6  # the background wall stands at fx * B / 6 px (10 m on the default rig)
_CLASS_ASPECT = {0: (0.8, 1.25), 1: (1.0, 1.0), 2: (2.2, 2.6)}  # height / width per class
_MASK64 = (1 << 64) - 1

# generator salts: one independent stream per purpose
_SALT_LAYOUT, _SALT_TEXTURE, _SALT_REFLECTION, _SALT_GLARE, _SALT_FP, _SALT_BACKGROUND, _SALT_BG_FP = range(7)
_BG_FP_SERIAL_BASE = 1 << 24  # serial space of background false positives, apart from per-frame ones


class _ReflectionMode(IntEnum):
    """How a reflection breaks stereo consistency."""

    LEFT_ONLY = 0  # seen in the left view only
    RIGHT_ONLY = 1  # seen in the right view only
    ROW_OFFSET = 2  # rows differ by 15-40 px between the views (rectified views share rows)
    FAR_DISPARITY = 3  # disparity < 2 px: implies a depth beyond 30 m on the default rig


@dataclass(frozen=True)
class SimObjectSpec:
    """Static description of one real object.

    size_m: (width, height) of its fronto-parallel extent in metres; color_bgr: the texture's
    base colour; role: 'occlusion_pass', 'crossing' or 'free'.
    """

    object_id: int
    class_id: int
    class_name: str
    size_m: tuple[float, float]
    color_bgr: tuple[int, int, int]
    role: str


@dataclass
class SimFrameTruth:
    """Ground truth of one stereo frame: per-camera entries, objects first, then nuisances."""

    index: int
    time: float
    left: list[GroundTruthObject]
    right: list[GroundTruthObject]


@dataclass(frozen=True)
class _SinePaths:
    """Vectorised paths ``p(t) = centre + sum_j amp_j sin(omega_j t + phase_j)``.

    centre: (N, 3) metres; amp, omega, phase: (N, 3, J) in metres, rad/s, rad.
    """

    centre: np.ndarray
    amp: np.ndarray
    omega: np.ndarray
    phase: np.ndarray

    def at(self, t: float) -> np.ndarray:
        """(N, 3) positions at time t (s)."""
        return self.centre + (self.amp * np.sin(self.omega * t + self.phase)).sum(axis=2)

    def at_times(self, times: np.ndarray) -> np.ndarray:
        """(T, N, 3) positions at each of the (T,) times (s)."""
        angle = self.omega[None] * times[:, None, None, None] + self.phase[None]
        return self.centre[None] + (self.amp[None] * np.sin(angle)).sum(axis=3)


@dataclass(frozen=True)
class _Reflection:
    serial: int
    birth: int
    duration: int
    source: int  # index of the mirrored object
    mode: _ReflectionMode
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
class _NuisanceView:
    """One nuisance as present in one view: its full rect (x1, y1, x2, y2) and draw style."""

    object_id: int
    kind: ObjectKind
    class_id: int
    rect: np.ndarray
    sprite: Sprite | None


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
    nuisances: tuple[list[_NuisanceView], list[_NuisanceView]]


def visible_fraction(targets: np.ndarray, target_rank: np.ndarray, blockers: np.ndarray,
                     blocker_rank: np.ndarray, width: int, height: int) -> np.ndarray:
    """Exact visible fraction of each target rect, (N,) in [0, 1].

    targets (N, 4), blockers (M, 4): rects ``x1, y1, x2, y2`` in pixels; a blocker hides a target
    when its rank is smaller (nearer). The target is cut into cells at every blocker and image
    edge (coordinate compression), so each cell is either wholly covered or wholly free.
    """
    n = len(targets)
    if n == 0:
        return np.zeros(0)
    tx1, ty1, tx2, ty2 = targets.T
    area = (tx2 - tx1) * (ty2 - ty1)

    def cells(lo: np.ndarray, hi: np.ndarray, edges: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
        cuts = np.concatenate([lo[:, None], hi[:, None], np.broadcast_to(edges, (n, edges.size)),
                               np.broadcast_to(np.array([0.0, size]), (n, 2))], axis=1)
        cuts = np.sort(np.clip(cuts, lo[:, None], hi[:, None]), axis=1)
        return 0.5 * (cuts[:, 1:] + cuts[:, :-1]), np.diff(cuts, axis=1)  # cell centres, sizes (n, K)

    mid_x, dx = cells(tx1, tx2, blockers[:, [0, 2]].ravel(), width)
    mid_y, dy = cells(ty1, ty2, blockers[:, [1, 3]].ravel(), height)
    in_front = blocker_rank[None, :] < target_rank[:, None]  # (N, M)
    in_x = (mid_x[:, :, None] >= blockers[None, None, :, 0]) & (mid_x[:, :, None] < blockers[None, None, :, 2])
    in_y = (mid_y[:, :, None] >= blockers[None, None, :, 1]) & (mid_y[:, :, None] < blockers[None, None, :, 3])
    # covered[n, i, j] = any_m in_front[n, m] & in_x[n, i, m] & in_y[n, j, m], as a batched matmul
    hits = np.matmul((in_x & in_front[:, None, :]).astype(np.float32), in_y.transpose(0, 2, 1).astype(np.float32))
    inside = ((mid_x >= 0) & (mid_x < width))[:, :, None] & ((mid_y >= 0) & (mid_y < height))[:, None, :]
    free_area = (dx[:, :, None] * dy[:, None, :] * (inside & (hits == 0))).sum(axis=(1, 2))
    return np.clip(np.where(area > 0, free_area / np.where(area > 0, area, 1.0), 0.0), 0.0, 1.0)  # rounding


def _clipped_boxes(rects: np.ndarray, width: int, height: int) -> np.ndarray:
    """(N, 4) ``cx, cy, w, h`` of (N, 4) rects ``x1, y1, x2, y2`` clipped to the image."""
    x = np.clip(rects[:, [0, 2]], 0.0, width)
    y = np.clip(rects[:, [1, 3]], 0.0, height)
    return np.stack([x.mean(axis=1), y.mean(axis=1), x[:, 1] - x[:, 0], y[:, 1] - y[:, 0]], axis=1)


def _unit_hash(*values: int) -> float:
    """Deterministic uniform number in [0, 1) from integers (splitmix64 chain)."""
    state = 0
    for value in values:
        state = ((state ^ (value & _MASK64)) + 0x9E3779B97F4A7C15) & _MASK64
        state = ((state ^ (state >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        state = ((state ^ (state >> 27)) * 0x94D049BB133111EB) & _MASK64
        state ^= state >> 31
    return state / 2.0**64


def is_background_false_positive(object_id: int) -> bool:
    """Whether a ground-truth id belongs to a (stereo-consistent) background false positive."""
    return object_id >= _nuisance_id(_BG_FP_SERIAL_BASE, ObjectKind.OBJECT)


def _nuisance_id(serial: int, kind: ObjectKind) -> int:
    return NUISANCE_ID_BASE + 4 * serial + int(kind)


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
        rng = np.random.default_rng([self.seed, _SALT_LAYOUT])
        self._build_occluders(rng)
        self._build_objects(rng)
        self._renderer = self._build_renderer()
        self._max_duration = max(config.reflection_frames[1], config.glare_frames[1])
        self._cached: tuple[int, _Layout] | None = None

    # ------------------------------------------------------------------ construction
    def _build_occluders(self, rng: np.random.Generator) -> None:
        """Static full-height pillars and panels sweeping sideways, all in front of the objects."""
        cfg, rig = self.config, self.rig
        n_static, n_moving = cfg.n_static_occluders, cfg.n_moving_occluders
        m = n_static + n_moving
        centre, amp, omega, phase = np.zeros((m, 3)), np.zeros((m, 3, 1)), np.zeros((m, 3, 1)), np.zeros((m, 3, 1))
        size = np.zeros((m, 2))
        self._pillar_u = np.zeros(n_static)
        for j in range(n_static):
            z = rng.uniform(*cfg.occluder_depth_range)
            width_px = rng.uniform(*cfg.static_occluder_width_px)
            u = rig.width * ((j + 0.5) / n_static + rng.uniform(-0.08, 0.08) / n_static)
            self._pillar_u[j] = u
            centre[j] = [(u - rig.cx) * z / rig.fx, (rig.height / 2 - rig.cy) * z / rig.fy, z]
            size[j] = [width_px * z / rig.fx, (rig.height + 80.0) * z / rig.fy]  # spans the full image height
        for j in range(n_static, m):
            z = rng.uniform(*cfg.occluder_depth_range)
            width_px = rng.uniform(*cfg.moving_occluder_width_px)
            height_px = rng.uniform(*cfg.moving_occluder_height_px)
            u = rig.cx + rng.uniform(-0.1, 0.1) * rig.width
            v = rng.uniform(0.5, 0.75) * rig.height
            sweep_px = max(0.0, min(u, rig.width - u) - 0.25 * width_px)
            centre[j] = [(u - rig.cx) * z / rig.fx, (v - rig.cy) * z / rig.fy, z]
            size[j] = [width_px * z / rig.fx, height_px * z / rig.fy]
            amp[j, 0, 0] = sweep_px * z / rig.fx
            omega[j, 0, 0] = rng.uniform(50.0, 100.0) / max(sweep_px, 1.0)  # peak speed 50-100 px/s
            phase[j, 0, 0] = rng.uniform(0.0, 2 * np.pi)
        self._occluders = _SinePaths(centre, amp, omega, phase)
        self._occluder_size = size
        self._occluder_depth = centre[:, 2]

    def _build_objects(self, rng: np.random.Generator) -> None:
        """Object sizes, colours and paths: scripted occlusion passes, crossing pairs, free wanderers."""
        cfg = self.config
        n = cfg.n_objects
        self._centre, self._amp = np.zeros((n, 3)), np.zeros((n, 3, 2))
        self._omega, self._phase = np.zeros((n, 3, 2)), np.zeros((n, 3, 2))
        self._size = np.zeros((n, 2))
        class_ids = rng.integers(0, len(CLASS_NAMES), size=n)
        aspects = np.array([rng.uniform(*_CLASS_ASPECT[int(c)]) for c in class_ids])
        roles = (["occlusion_pass"] * cfg.n_occlusion_passes + ["crossing"] * (2 * cfg.n_crossing_pairs)
                 + ["free"] * (n - cfg.n_occlusion_passes - 2 * cfg.n_crossing_pairs))
        for i in range(cfg.n_occlusion_passes):
            self._make_pass(rng, i, aspects[i])
        for pair in range(cfg.n_crossing_pairs):
            first = cfg.n_occlusion_passes + 2 * pair
            self._make_crossing_pair(rng, first, aspects[first:first + 2])
        first_free = cfg.n_occlusion_passes + 2 * cfg.n_crossing_pairs
        for i in range(first_free, n):
            lane = -1.0 + 2.0 * (i - first_free + 0.5) / (n - first_free)  # rows spread in (-1, 1)
            self._make_free(rng, i, aspects[i], lane)
        self._paths = _SinePaths(self._centre, self._amp, self._omega, self._phase)
        self._hues = (rng.uniform(0.0, 180.0) + 180.0 * np.arange(n) / max(n, 1)) % 180.0  # evenly spread
        self.objects: tuple[SimObjectSpec, ...] = tuple(
            SimObjectSpec(
                object_id=i + 1, class_id=int(class_ids[i]), class_name=CLASS_NAMES[int(class_ids[i])],
                size_m=(float(self._size[i, 0]), float(self._size[i, 1])),
                color_bgr=tuple(int(c) for c in hue_to_bgr(self._hues[i])), role=roles[i])
            for i in range(n))

    def _make_pass(self, rng: np.random.Generator, i: int, aspect: float) -> None:
        """Object i sweeps sideways behind pillar ``i % n_static``, fully hidden in both views for D s.

        In the left view the sweep is centred half the relative disparity left of the pillar, so the
        offsets to the pillar are ``-delta/2 + A sin`` (left) and ``+delta/2 + A sin`` (right). With
        ``h`` the free play ``(pillar width - object width) / 2``, a view is hidden while
        ``|A sin(theta) -/+ delta/2| <= h``; both are while ``|A sin(theta)| <= h - delta/2``, i.e. for
        ``2 asin((h - delta/2) / A) / w`` seconds per pass (each single view a little longer).
        """
        cfg, rig = self.config, self.rig
        pillar = i % cfg.n_static_occluders
        z_pillar = self._occluder_depth[pillar]
        pillar_px = self._occluder_size[pillar, 0] * rig.fx / z_pillar
        z = rng.uniform(*cfg.depth_range)
        delta = rig.fx * rig.baseline * (1.0 / z_pillar - 1.0 / z)  # relative disparity pillar - object, px
        height_px = rng.uniform(*cfg.box_height_px)
        width_px = min(height_px / aspect, pillar_px - delta - 24.0)
        if width_px < 8.0:
            raise ValueError(
                f"ScenarioConfig: static_occluder_width_px={cfg.static_occluder_width_px} is too narrow to hide "
                f"an object fully in both views (relative disparity {delta:.1f} px)")
        height_px = width_px * aspect
        free_play = (pillar_px - width_px) / 2.0
        sweep_centre = self._pillar_u[pillar] - delta / 2.0
        amp_min = free_play + width_px + delta / 2.0 + 5.0  # fully out from behind at both ends, both views
        amp_max = min(sweep_centre, rig.width - sweep_centre) - width_px / 2.0 - 5.0
        if amp_max < amp_min:
            raise ValueError(
                f"ScenarioConfig: n_static_occluders={cfg.n_static_occluders} with widths "
                f"{cfg.static_occluder_width_px} leave no room for an object to emerge from behind them")
        amp_px = rng.uniform(amp_min, amp_max)
        hidden_s = rng.uniform(*cfg.occlusion_frames) / cfg.fps
        omega = 2.0 * math.asin((free_play - delta / 2) / amp_px) / hidden_s  # both views hidden for hidden_s
        t_pass = hidden_s / 2.0 + rng.uniform(0.7, 2.0)  # first pass: seen for 0.7-2 s before it hides
        direction = rng.choice([0.0, np.pi])
        row_px = rng.uniform(0.3, 0.7) * rig.height
        self._centre[i] = [(sweep_centre - rig.cx) * z / rig.fx, (row_px - rig.cy) * z / rig.fy, z]
        self._amp[i, 0, 0] = amp_px * z / rig.fx
        self._omega[i, 0, 0] = omega
        self._phase[i, 0, 0] = -omega * t_pass + direction  # sin(w (t - t_pass)) = 0 at the pillar
        self._amp[i, 1, 0] = 5.0 * z / rig.fy  # a gentle bob of +-5 px: the pillar spans all rows
        self._omega[i, 1, 0] = rng.uniform(0.3, 0.8)
        self._phase[i, 1, 0] = rng.uniform(0.0, 2 * np.pi)
        self._size[i] = [width_px * z / rig.fx, height_px * z / rig.fy]

    def _make_crossing_pair(self, rng: np.random.Generator, first: int, aspects: np.ndarray) -> None:
        """Two objects on one image row, a near big one and a far small one, swinging in antiphase."""
        cfg, rig = self.config, self.rig
        lo, hi = cfg.depth_range
        z_near = rng.uniform(lo, lo + 0.4 * (hi - lo))
        z_far = min(hi, z_near + rng.uniform(1.0, 1.6))
        h_lo, h_hi = cfg.box_height_px
        heights = (rng.uniform(h_lo + 0.6 * (h_hi - h_lo), h_hi), rng.uniform(h_lo, h_lo + 0.4 * (h_hi - h_lo)))
        widths = [h / a for h, a in zip(heights, aspects)]
        u_centre = rig.cx + rng.uniform(-0.1, 0.1) * rig.width
        v_centre = rng.uniform(0.3, 0.7) * rig.height
        amp_px = (min(u_centre, rig.width - u_centre) - max(widths) / 2 - _MARGIN_PX) * rng.uniform(0.7, 1.0)
        speed_px = rng.uniform(*cfg.speed_range) * rig.fx / (0.5 * (z_near + z_far))
        omega = speed_px / max(amp_px, 1.0)
        phase = rng.uniform(0.0, 2 * np.pi)
        for k, (z, h_px, w_px) in enumerate(zip((z_near, z_far), heights, widths)):
            i = first + k
            v = v_centre + rng.uniform(-8.0, 8.0)
            self._centre[i] = [(u_centre - rig.cx) * z / rig.fx, (v - rig.cy) * z / rig.fy, z]
            self._amp[i, 0, 0] = amp_px * z / rig.fx
            self._omega[i, 0, 0] = omega
            self._phase[i, 0, 0] = phase + np.pi * k  # antiphase: they meet at u_centre
            self._size[i] = [w_px * z / rig.fx, h_px * z / rig.fy]

    def _make_free(self, rng: np.random.Generator, i: int, aspect: float, lane: float) -> None:
        """A wanderer around row ``lane`` (-1 top .. 1 bottom), re-drawn until no static pillar hides
        it longer than ``occlusion_frames[1]``.

        The check runs over the scenario's ``n_frames``; after 50 draws the path with the shortest
        longest hiding is kept.
        """
        params = self._sample_free(rng, aspect, lane)
        best = (self._longest_pillar_hiding(*params), params)
        for _ in range(49):
            if best[0] <= self.config.occlusion_frames[1]:
                break
            params = self._sample_free(rng, aspect, lane)
            best = min(best, (self._longest_pillar_hiding(*params), params), key=lambda item: item[0])
        self._centre[i], self._amp[i], self._omega[i], self._phase[i], self._size[i] = best[1]

    def _sample_free(self, rng: np.random.Generator, aspect: float, lane: float) -> tuple[np.ndarray, ...]:
        """Two sinusoids per lateral axis and one in depth, bounded to stay in view at the nearest depth;
        the vertical centre sits in the object's lane so that wanderers overlap only now and then.

        Returns centre (3,), amp (3, 2), omega (3, 2), phase (3, 2), size (2,) of one object.
        """
        cfg, rig = self.config, self.rig
        amp, omega, phase = np.zeros((3, 2)), np.zeros((3, 2)), np.zeros((3, 2))
        z = rng.uniform(*cfg.depth_range)
        z_amp = cfg.depth_amplitude * rng.uniform(0.5, 1.0)
        z_min = z - z_amp
        height_m = rng.uniform(*cfg.box_height_px) * z / rig.fy
        width_m = height_m / aspect
        x_lim = max(0.0, (min(rig.cx, rig.width - rig.cx) - _MARGIN_PX) * z_min / rig.fx - width_m / 2)
        y_lim = max(0.0, (min(rig.cy, rig.height - rig.cy) - _MARGIN_PX) * z_min / rig.fy - height_m / 2)
        centre = np.array([rng.uniform(-0.3, 0.3) * x_lim, 0.7 * lane * y_lim, z])
        speed = rng.uniform(*cfg.speed_range)
        for axis, limit, fraction in ((0, x_lim, (0.6, 1.0)), (1, y_lim, (0.2, 0.6))):
            total = (limit - abs(centre[axis])) * rng.uniform(*fraction)
            split = rng.uniform(0.6, 0.85)
            ratio = rng.uniform(1.8, 2.6)
            amp[axis] = [total * split, total * (1.0 - split)]
            w1 = speed / max(total * split + total * (1.0 - split) * ratio, 1e-3)  # peak speed ~ speed
            omega[axis] = [w1, w1 * ratio]
            phase[axis] = rng.uniform(0.0, 2 * np.pi, size=2)
        amp[2, 0], omega[2, 0], phase[2, 0] = z_amp, rng.uniform(0.1, 0.3), rng.uniform(0.0, 2 * np.pi)
        return centre, amp, omega, phase, np.array([width_m, height_m])

    def _longest_pillar_hiding(self, centre: np.ndarray, amp: np.ndarray, omega: np.ndarray,
                               phase: np.ndarray, size: np.ndarray) -> int:
        """Longest run of frames (over n_frames) in which a static occluder fully hides the path in a view."""
        n_static = self.config.n_static_occluders
        if n_static == 0:
            return 0
        times = np.arange(self.config.n_frames) / self.config.fps
        positions = _SinePaths(centre[None], amp[None], omega[None], phase[None]).at_times(times)[:, 0]  # (T, 3)
        objects = self._rects(positions, np.broadcast_to(size, (len(times), 2)))  # (2, T, 4)
        pillars = self._rects(self._occluders.centre[:n_static], self._occluder_size[:n_static])  # (2, P, 4)
        inside = ((objects[:, :, None, :2] >= pillars[:, None, :, :2]).all(-1)
                  & (objects[:, :, None, 2:] <= pillars[:, None, :, 2:]).all(-1)).any(-1)  # (2, T)
        longest = 0
        for hidden in inside:
            edges = np.diff(np.concatenate([[0], hidden.astype(np.int8), [0]]))
            starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
            longest = max(longest, int((ends - starts).max(initial=0)))
        return longest

    def _build_renderer(self) -> SceneRenderer:
        rig = self.rig
        textures: dict[int, np.ndarray] = {}
        for spec in self.objects:
            rng = np.random.default_rng([self.seed, _SALT_TEXTURE, spec.object_id])
            accent = hue_to_bgr(self._hues[spec.object_id - 1], saturation=255, value=90)  # a dark shade
            textures[spec.object_id] = object_texture(
                rng, spec.class_id, np.array(spec.color_bgr, dtype=np.uint8), accent)
        for j in range(len(self._occluder_depth)):
            rng = np.random.default_rng([self.seed, _SALT_TEXTURE, 10_000 + j])
            shape = (256, 48) if j < self.config.n_static_occluders else (96, 64)
            textures[self.occluder_key(j)] = occluder_texture(rng, shape)
        backgrounds = stereo_background(np.random.default_rng([self.seed, _SALT_BACKGROUND]),
                                        rig.width, rig.height, _BACKGROUND_DISPARITY_PX)
        return SceneRenderer(backgrounds, textures)

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
        return self._paths.at(self.frame_time(k))

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
            vis = visible_fraction(targets, target_rank, blockers, layout.rank, width, height)
            boxes = _clipped_boxes(targets, width, height)
            entries = [
                GroundTruthObject(object_id=spec.object_id, kind=ObjectKind.OBJECT, class_id=spec.class_id,
                                  box=boxes[i], visibility=float(vis[i]), position=layout.positions[i].copy())
                for i, spec in enumerate(self.objects)]
            entries += [
                GroundTruthObject(object_id=item.object_id, kind=item.kind, class_id=item.class_id,
                                  box=boxes[n + j], visibility=float(vis[n + j]), position=np.full(3, np.nan))
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

    def _rects(self, centres: np.ndarray, sizes: np.ndarray) -> np.ndarray:
        """(2, N, 4) rects ``x1, y1, x2, y2`` per view of fronto-parallel rectangles (N, 3) x (N, 2) m."""
        if len(centres) == 0:
            return np.zeros((2, 0, 4))
        uv_left, uv_right = self.rig.project(centres)
        half = 0.5 * sizes * np.array([self.rig.fx, self.rig.fy]) / centres[:, 2:3]  # w = fx S / Z
        return np.stack([np.concatenate([uv - half, uv + half], axis=1) for uv in (uv_left, uv_right)])

    def _layout(self, k: int) -> _Layout:
        k = self._check_index(k)
        if self._cached is not None and self._cached[0] == k:
            return self._cached[1]
        t = k / self.config.fps
        positions = self._paths.at(t)
        occ_centres = self._occluders.at(t)
        depth = np.concatenate([positions[:, 2], occ_centres[:, 2]])
        order = np.lexsort((np.arange(depth.size), depth))  # nearest first, ties by index
        rank = np.empty(depth.size, dtype=np.int64)
        rank[order] = np.arange(depth.size)
        obj_rects = self._rects(positions, self._size)
        layout = _Layout(positions=positions, obj_rects=obj_rects,
                         occ_rects=self._rects(occ_centres, self._occluder_size), rank=rank,
                         nuisances=self._nuisances(k, obj_rects))
        self._cached = (k, layout)
        return layout

    def _nuisances(self, k: int, obj_rects: np.ndarray) -> tuple[list[_NuisanceView], list[_NuisanceView]]:
        views: tuple[list[_NuisanceView], list[_NuisanceView]] = ([], [])
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
        return not flickers or _unit_hash(self.seed, _nuisance_id(serial, kind), k) < self.config.flicker_duty

    def _reflection_block(self, block: int) -> list[_Reflection]:
        cfg = self.config
        if cfg.reflection_rate <= 0 or not self.objects:
            return []
        rng = np.random.default_rng([self.seed, _SALT_REFLECTION, block])
        count = min(int(rng.poisson(cfg.reflection_rate * _BLOCK / cfg.fps)), _MAX_PER_BLOCK)
        return [_Reflection(
            serial=block * _MAX_PER_BLOCK + j, birth=block * _BLOCK + int(rng.integers(_BLOCK)),
            duration=int(rng.integers(cfg.reflection_frames[0], cfg.reflection_frames[1] + 1)),
            source=int(rng.integers(len(self.objects))), mode=_ReflectionMode(int(rng.integers(4))),
            row_offset=float(rng.choice([-1.0, 1.0]) * rng.uniform(15.0, 40.0)),
            far_disparity=float(rng.uniform(0.0, 2.0)), below=bool(rng.random() < 0.6),
            gap=float(rng.uniform(2.0, 10.0)), alpha=float(rng.uniform(0.3, 0.5)),
            flicker=bool(rng.random() < cfg.flicker_prob)) for j in range(count)]

    def _glare_block(self, block: int) -> list[_Glare]:
        cfg, rig = self.config, self.rig
        if cfg.glare_rate <= 0:
            return []
        rng = np.random.default_rng([self.seed, _SALT_GLARE, block])
        count = min(int(rng.poisson(cfg.glare_rate * _BLOCK / cfg.fps)), _MAX_PER_BLOCK)
        lo, hi = np.array([20.0, 20.0]), np.array([rig.width - 20.0, rig.height - 20.0])
        return [_Glare(
            serial=block * _MAX_PER_BLOCK + j, birth=block * _BLOCK + int(rng.integers(_BLOCK)),
            duration=int(rng.integers(cfg.glare_frames[0], cfg.glare_frames[1] + 1)),
            class_id=int(rng.integers(len(CLASS_NAMES))), centre=rng.uniform(lo, hi, size=(2, 2)),
            velocity=rng.uniform(-0.7, 0.7, size=(2, 2)), radius=rng.uniform(8.0, 28.0, size=2),
            flicker=bool(rng.random() < cfg.flicker_prob)) for j in range(count)]

    def _place_reflection(self, refl: _Reflection, obj_rects: np.ndarray,
                          views: tuple[list[_NuisanceView], list[_NuisanceView]]) -> None:
        """Mirror the source object's rect below (floor) or above (window) it, breaking stereo on purpose."""
        rects = []
        for view in (0, 1):
            x1, y1, x2, y2 = obj_rects[view, refl.source]
            top = y2 + refl.gap if refl.below else y1 - refl.gap - (y2 - y1)
            rects.append(np.array([x1, top, x2, top + (y2 - y1)]))
        if refl.mode == _ReflectionMode.ROW_OFFSET:
            rects[1] = rects[1] + np.array([0.0, refl.row_offset, 0.0, refl.row_offset])
        elif refl.mode == _ReflectionMode.FAR_DISPARITY:
            rects[1] = rects[0] - np.array([refl.far_disparity, 0.0, refl.far_disparity, 0.0])
        shown = {_ReflectionMode.LEFT_ONLY: (0,), _ReflectionMode.RIGHT_ONLY: (1,)}.get(refl.mode, (0, 1))
        object_id = _nuisance_id(refl.serial, ObjectKind.REFLECTION)
        for view in shown:
            x1, y1, x2, y2 = rects[view]
            if x1 >= 0 and y1 >= 0 and x2 <= self.rig.width and y2 <= self.rig.height:  # wholly in view only
                sprite = Sprite(key=refl.source + 1, rect=(x1, y1, x2, y2), blend=Blend.DIMMED,
                                alpha=refl.alpha, flip_vertical=True)
                views[view].append(_NuisanceView(object_id, ObjectKind.REFLECTION,
                                                 self.objects[refl.source].class_id, rects[view], sprite))

    def _place_glare(self, glare: _Glare, k: int, views: tuple[list[_NuisanceView], list[_NuisanceView]]) -> None:
        """A saturated blob drifting independently in each view (no consistent disparity)."""
        object_id = _nuisance_id(glare.serial, ObjectKind.GLARE)
        for view in (0, 1):
            u, v = glare.centre[view] + glare.velocity[view] * (k - glare.birth)
            if not (0.0 <= u < self.rig.width and 0.0 <= v < self.rig.height):
                continue
            half = 1.5 * glare.radius[view]  # the profile's core is half its extent
            rect = np.array([u - half, v - half, u + half, v + half])
            sprite = Sprite(key=GLARE_KEY, rect=tuple(rect), blend=Blend.GLARE)
            views[view].append(_NuisanceView(object_id, ObjectKind.GLARE, glare.class_id, rect, sprite))

    def _background_false_positives(self, k: int) -> tuple[list[_NuisanceView], list[_NuisanceView]]:
        """Hallucinations on the background wall alive at frame k, in both views (the right one
        shifted by the wall's disparity). Births are drawn per frame from a seeded generator, so
        frame k only looks back over the longest life."""
        cfg, rig = self.config, self.rig
        views: tuple[list[_NuisanceView], list[_NuisanceView]] = ([], [])
        if cfg.background_fp_rate <= 0:
            return views
        lo, hi = cfg.background_fp_frames
        for birth in range(max(0, k - int(hi) + 1), k + 1):
            rng = np.random.default_rng([self.seed, _SALT_BG_FP, birth])
            for j in range(min(int(rng.poisson(cfg.background_fp_rate / cfg.fps)), _MAX_FP)):
                duration = int(rng.integers(int(lo), int(hi) + 1))
                w, h = rng.uniform(30.0, 90.0, size=2)
                u, v = rng.uniform([w / 2 + _BACKGROUND_DISPARITY_PX, h / 2], [rig.width - w / 2, rig.height - h / 2])
                class_id = int(rng.integers(len(CLASS_NAMES)))
                if birth + duration <= k:
                    continue
                oid = _nuisance_id(_BG_FP_SERIAL_BASE + birth * _MAX_FP + j, ObjectKind.FALSE_POSITIVE)
                for view, shift in ((0, 0.0), (1, float(_BACKGROUND_DISPARITY_PX))):
                    views[view].append(_NuisanceView(oid, ObjectKind.FALSE_POSITIVE, class_id,
                                                     np.array([u - shift - w / 2, v - h / 2, u - shift + w / 2,
                                                               v + h / 2]), None))
        return views

    def _false_positives(self, k: int, view: int) -> list[_NuisanceView]:
        """Single-frame detector hallucinations: GT entries with no image evidence."""
        cfg, rig = self.config, self.rig
        if cfg.false_positive_rate <= 0:
            return []
        rng = np.random.default_rng([self.seed, _SALT_FP, k, view])
        count = min(int(rng.poisson(cfg.false_positive_rate)), _MAX_FP)
        entries = []
        for j in range(count):
            w, h = rng.uniform(25.0, 100.0, size=2)
            u, v = rng.uniform([w / 2, h / 2], [rig.width - w / 2, rig.height - h / 2])
            serial = (2 * k + view) * _MAX_FP + j
            entries.append(_NuisanceView(_nuisance_id(serial, ObjectKind.FALSE_POSITIVE),
                                         ObjectKind.FALSE_POSITIVE, int(rng.integers(len(CLASS_NAMES))),
                                         np.array([u - w / 2, v - h / 2, u + w / 2, v + h / 2]), None))
        return entries
