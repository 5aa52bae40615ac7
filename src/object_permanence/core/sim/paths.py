"""Where things go in the simulated world: occluder and object paths, sizes, classes, colours, roles.

:func:`plan_scene` turns a :class:`ScenarioConfig`, a rig and a seeded generator into a
:class:`ScenePlan` of closed-form paths (:class:`SinePaths`), so any frame can be asked for in any
order. Object roles:

* ``occlusion_pass``: sweeps behind a static pillar, fully hidden in both views for a chosen time.
* ``crossing``: pairs at different depths swinging in antiphase on one image row.
* ``reentry``: swings sideways at a constant depth so far that it leaves the image (wholly, in
  both views) for ``away_frames`` and comes back, again and again over a long scenario.
* ``newcomer``: a look-alike (same class and size, hue a few degrees apart, same texture pattern) of
  a ``reentry`` object that enters for the first time while its original is away; parked off-image
  until then.
* ``free``: a wanderer kept in view.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from object_permanence.core.sim.geometry import SinePaths, off_image, project_rects, true_runs
from object_permanence.core.sim.rig import StereoRig
from object_permanence.core.sim.scenarios import CLASS_NAMES, ScenarioConfig

_MARGIN_PX = 10.0  # objects keep this far inside the image at their nearest
_CLASS_ASPECT = {0: (0.8, 1.25), 1: (1.0, 1.0), 2: (2.2, 2.6)}  # height / width per class
_LOOKALIKE_HUE_SHIFT = (-2, -1, 1, 2)  # OpenCV hue units (2 degrees each): newcomer vs original
_LOOKALIKE_SCALE = (0.95, 1.05)  # newcomer size / original size
_BOB_PX = 6.0  # vertical bob of the sideways swingers (reentry, newcomer), px


@dataclass(frozen=True)
class ScenePlan:
    """Static plan of one world (N objects, M occluders, the first ``n_static`` of them pillars).

    occluders: paths of the occluder centres; occluder_size: (M, 2) width, height in metres.
    objects: paths of the object centres; object_size: (N, 2) metres; class_ids: (N,); hues: (N,)
    OpenCV hues in [0, 180); roles: (N,) role names; lookalike_of: (N,) the id of the object an
    object looks like (newcomers), else 0; pillar_u: (n_static,) pillar centre columns, px.
    """

    occluders: SinePaths
    occluder_size: np.ndarray
    n_static: int
    pillar_u: np.ndarray
    objects: SinePaths
    object_size: np.ndarray
    class_ids: np.ndarray
    hues: np.ndarray
    roles: tuple[str, ...]
    lookalike_of: np.ndarray


def plan_scene(config: ScenarioConfig, rig: StereoRig, rng: np.random.Generator) -> ScenePlan:
    """Draw the occluders then the objects of one world from ``rng`` (ValueError on impossible configs)."""
    return _Planner(config, rig).plan(rng)


def _amplitude_ratio(target: float) -> float:
    """The r >= 1 with ``r acos(1 / r) = target`` (monotone in r), by bisection to 1e-9."""
    lo, hi = 1.0, 2.0
    while hi * math.acos(1.0 / hi) < target:
        hi *= 2.0
    while hi - lo > 1e-9:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if mid * math.acos(1.0 / mid) < target else (lo, mid)
    return 0.5 * (lo + hi)


class _Planner:
    """Fills the per-object arrays (centre, amp, omega, phase, hold, size) role by role."""

    def __init__(self, config: ScenarioConfig, rig: StereoRig) -> None:
        self.config, self.rig = config, rig

    def plan(self, rng: np.random.Generator) -> ScenePlan:
        cfg = self.config
        self._build_occluders(rng)
        n = cfg.n_objects
        self._centre, self._amp = np.zeros((n, 3)), np.zeros((n, 3, 2))
        self._omega, self._phase = np.zeros((n, 3, 2)), np.zeros((n, 3, 2))
        self._hold = np.full(n, -np.inf)
        self._size = np.zeros((n, 2))
        class_ids = rng.integers(0, len(CLASS_NAMES), size=n)
        aspects = np.array([rng.uniform(*_CLASS_ASPECT[int(c)]) for c in class_ids])
        first_reentry = cfg.n_occlusion_passes + 2 * cfg.n_crossing_pairs
        first_newcomer = first_reentry + cfg.n_reentries
        first_free = first_newcomer + cfg.n_newcomers
        roles = (["occlusion_pass"] * cfg.n_occlusion_passes + ["crossing"] * (2 * cfg.n_crossing_pairs)
                 + ["reentry"] * cfg.n_reentries + ["newcomer"] * cfg.n_newcomers + ["free"] * (n - first_free))
        lookalike_of = np.zeros(n, dtype=np.int64)
        for i in range(cfg.n_occlusion_passes):
            self._make_pass(rng, i, aspects[i])
        for pair in range(cfg.n_crossing_pairs):
            first = cfg.n_occlusion_passes + 2 * pair
            self._make_crossing_pair(rng, first, aspects[first:first + 2])
        n_swingers = cfg.n_reentries + cfg.n_newcomers
        for j in range(cfg.n_reentries):
            self._make_reentry(rng, first_reentry + j, aspects[first_reentry + j], (j + 0.5) / n_swingers)
        for j in range(cfg.n_newcomers):
            i, original = first_newcomer + j, first_reentry + j
            class_ids[i] = class_ids[original]
            lookalike_of[i] = original + 1
            self._make_newcomer(rng, i, original, (cfg.n_reentries + j + 0.5) / n_swingers)
        for i in range(first_free, n):
            lane = -1.0 + 2.0 * (i - first_free + 0.5) / (n - first_free)  # rows spread in (-1, 1)
            self._make_free(rng, i, aspects[i], lane)
        # hues evenly spread over the originals; a newcomer takes its original's hue, a few degrees off
        originals = np.flatnonzero(lookalike_of == 0)
        hues = np.zeros(n)
        hues[originals] = (rng.uniform(0.0, 180.0) + 180.0 * np.arange(originals.size) / max(originals.size, 1)) % 180.0
        for i in np.flatnonzero(lookalike_of):
            hues[i] = (hues[lookalike_of[i] - 1] + rng.choice(_LOOKALIKE_HUE_SHIFT)) % 180.0
        return ScenePlan(
            occluders=self._occluders, occluder_size=self._occluder_size, n_static=cfg.n_static_occluders,
            pillar_u=self._pillar_u,
            objects=SinePaths(self._centre, self._amp, self._omega, self._phase,
                              self._hold if np.isfinite(self._hold).any() else None),
            object_size=self._size, class_ids=class_ids, hues=hues, roles=tuple(roles), lookalike_of=lookalike_of)

    # ------------------------------------------------------------------ occluders
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
        self._occluders = SinePaths(centre, amp, omega, phase)
        self._occluder_size = size
        self._occluder_depth = centre[:, 2]

    # ------------------------------------------------------------------ objects
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

    def _swing(self, rng: np.random.Generator, i: int, z: float, size_px: np.ndarray,
               row_fraction: float) -> tuple[float, float, float]:
        """Set object i on a sideways swing ``u(t) = c + A sin(omega t + phi)`` at a constant depth z (m)
        that carries it out of the image and back.

        The object (size_px (2,): width b, height, px) is wholly outside both views while
        ``u >= R = W + b/2 + d`` or ``u <= L = -b/2`` (d = fx B / z: the right view lies d px left of
        the left one). Centred at ``c = (L + R) / 2`` with half-span ``h = (R - L) / 2``, each
        excursion is away for ``g = 2 acos(h / A) / omega`` seconds; with the peak speed
        ``s = A omega`` that is ``g = 2 h r acos(1 / r) / s`` for ``r = A / h``, solved for r given a
        drawn g (``away_frames``) and s (``speed_range``). Sets centre, amp, omega and size (the x
        phase is the caller's); returns (r, omega, g).
        """
        cfg, rig = self.config, self.rig
        width_px, height_px = size_px
        disparity = rig.fx * rig.baseline / z  # d = fx B / Z
        left, right = -width_px / 2.0, rig.width + width_px / 2.0 + disparity
        c, half = 0.5 * (left + right), 0.5 * (right - left)
        away_s = rng.uniform(*cfg.away_frames) / cfg.fps
        speed_px = rng.uniform(*cfg.speed_range) * rig.fx / z
        ratio = _amplitude_ratio(away_s * speed_px / (2.0 * half))  # r acos(1/r) = g s / (2 h)
        amp_px = ratio * half
        omega = speed_px / amp_px  # s = A omega
        row_px = (0.2 + 0.6 * row_fraction) * rig.height  # lanes 0.2-0.8 of the height
        self._centre[i] = [(c - rig.cx) * z / rig.fx, (row_px - rig.cy) * z / rig.fy, z]
        self._amp[i, 0, 0] = amp_px * z / rig.fx
        self._omega[i, 0, 0] = omega
        self._amp[i, 1, 0] = _BOB_PX * z / rig.fy
        self._omega[i, 1, 0] = rng.uniform(0.3, 0.8)
        self._phase[i, 1, 0] = rng.uniform(0.0, 2 * np.pi)
        self._size[i] = [width_px * z / rig.fx, height_px * z / rig.fy]
        return ratio, omega, away_s

    def _make_reentry(self, rng: np.random.Generator, i: int, aspect: float, row_fraction: float) -> None:
        """Object i starts in view near the middle, then leaves the image and comes back every half swing.

        The start phase lies within half the in-view arc of the centre, so the first excursion
        begins within ``1.5 asin(1 / r) / omega`` seconds.
        """
        z = rng.uniform(*self.config.depth_range)
        height_px = rng.uniform(*self.config.box_height_px)
        ratio, _, _ = self._swing(rng, i, z, np.array([height_px / aspect, height_px]), row_fraction)
        in_view_arc = math.asin(1.0 / ratio)
        self._phase[i, 0, 0] = rng.uniform(-0.5, 0.5) * in_view_arc + rng.choice([0.0, np.pi])

    def _make_newcomer(self, rng: np.random.Generator, i: int, original: int, row_fraction: float) -> None:
        """Object i, a look-alike of object ``original``, enters for the first time during its first
        complete absence (20-70% into it), from the side the original left by or the other one.

        Entering from the right at time ``t_e`` means ``u`` falls through ``R``: phase
        ``theta_e = pi - asin(1/r)``; from the left ``u`` rises through ``L``: ``theta_e = -asin(1/r)``.
        Before the preceding turning point ``t_e - acos(1/r) / omega`` the path is held there
        (off-image, at rest), so it never shows before ``t_e``. It stands at about its original's
        depth (+-15%), so it also looks about as large.
        """
        cfg, rig = self.config, self.rig
        times = np.arange(cfg.n_frames) / cfg.fps
        centres = self._paths_of([original]).at_times(times)[:, 0]  # (T, 3)
        rects = project_rects(rig, centres, np.broadcast_to(self._size[original], (len(times), 2)))  # (2, T, 4)
        away = off_image(rects, rig.width, rig.height).all(axis=0)  # (T,) gone from both views
        starts, lengths = true_runs(away)
        complete = (starts > 0) & (starts + lengths < cfg.n_frames)
        if not complete.any():
            raise ValueError(f"ScenarioConfig: n_frames={cfg.n_frames} is too short for a reentry object to "
                             f"leave and come back (away_frames={cfg.away_frames}), so no newcomer can enter")
        start, length = int(starts[complete][0]), int(lengths[complete][0])
        entry_frame = start + max(1, int(rng.uniform(0.2, 0.7) * length))
        exit_side = 1.0 if rects[0, start, 0] >= rig.width else -1.0  # +1: it left by the right edge
        side = exit_side if rng.random() < 0.5 else -exit_side
        z = float(np.clip(self._centre[original, 2] * rng.uniform(0.85, 1.15), *cfg.depth_range))
        size_m = self._size[original] * rng.uniform(*_LOOKALIKE_SCALE)
        ratio, omega, _ = self._swing(rng, i, z, size_m * np.array([rig.fx, rig.fy]) / z, row_fraction)
        t_entry = (entry_frame - 0.5) / cfg.fps  # crossing half a frame before: in view at entry_frame
        theta_entry = math.pi - math.asin(1.0 / ratio) if side > 0 else -math.asin(1.0 / ratio)
        self._phase[i, 0, 0] = theta_entry - omega * t_entry
        self._hold[i] = t_entry - math.acos(1.0 / ratio) / omega  # the turning point before entry

    def _paths_of(self, indices: list[int]) -> SinePaths:
        idx = np.asarray(indices)
        return SinePaths(self._centre[idx], self._amp[idx], self._omega[idx], self._phase[idx], self._hold[idx])

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
        positions = SinePaths(centre[None], amp[None], omega[None], phase[None]).at_times(times)[:, 0]  # (T, 3)
        objects = project_rects(self.rig, positions, np.broadcast_to(size, (len(times), 2)))  # (2, T, 4)
        pillars = project_rects(self.rig, self._occluders.centre[:n_static], self._occluder_size[:n_static])
        inside = ((objects[:, :, None, :2] >= pillars[:, None, :, :2]).all(-1)
                  & (objects[:, :, None, 2:] <= pillars[:, None, :, 2:]).all(-1)).any(-1)  # (2, T)
        return max(int(true_runs(hidden)[1].max(initial=0)) for hidden in inside)
