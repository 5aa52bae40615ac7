"""Scenario knobs of the simulated stereo world and the named presets.

A :class:`ScenarioConfig` says *what* happens (how many objects, where, how fast, which occluders,
how many nuisances); :class:`~object_permanence.core.sim.world.SimWorld` turns it plus a seed into
concrete, deterministic paths and events.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

# Classes of the simulated objects (class_id -> name), shared by the simulator and its detector.
CLASS_NAMES: tuple[str, ...] = ("box", "ball", "bottle")
# Where object textures and the background come from (ScenarioConfig.textures).
TEXTURE_SOURCES: tuple[str, ...] = ("photo", "synthetic")


@dataclass(frozen=True)
class ScenarioConfig:
    """All knobs of one simulated scenario (units: metres, seconds, pixels, frames).

    Objects move on smooth sinusoidal 3D paths whose centres lie in ``depth_range``.
    ``n_occlusion_passes`` of them are scripted to pass fully behind a static occluder for
    ``occlusion_frames`` frames (in both views); ``n_crossing_pairs`` pairs cross each other in the
    image at different depths (mutual occlusion); the rest wander freely. Nuisance rates are
    births per second (reflections, glare) or entries per frame and camera (false positives).
    Background false positives (``background_fp_rate``, births per second) are detector
    hallucinations on a pattern of the background wall: seen in *both* views at the wall's
    disparity (stereo-consistent) for ``background_fp_frames`` frames — what stereo gating alone
    cannot remove and a persistence filter must.

    ``n_reentries`` objects swing sideways out of the image (wholly, in both views) for
    ``away_frames`` and come back, again and again; ``n_newcomers`` (at most ``n_reentries``)
    look-alikes of the first of them (same class and size, hue a few degrees off, same texture
    pattern) enter for the first time while their original is away. ``textures`` picks the
    object textures and background: ``"photo"`` (crops of real photographs,
    :mod:`object_permanence.core.sim.textures`) or ``"synthetic"`` (procedural patterns).
    """

    n_objects: int = 4
    n_frames: int = 300
    fps: float = 30.0
    depth_range: tuple[float, float] = (2.5, 5.0)
    depth_amplitude: float = 0.3
    box_height_px: tuple[float, float] = (50.0, 110.0)
    speed_range: tuple[float, float] = (0.3, 0.7)
    n_static_occluders: int = 0
    static_occluder_width_px: tuple[float, float] = (140.0, 180.0)
    n_moving_occluders: int = 0
    moving_occluder_width_px: tuple[float, float] = (70.0, 120.0)
    moving_occluder_height_px: tuple[float, float] = (140.0, 240.0)
    occluder_depth_range: tuple[float, float] = (1.5, 1.9)
    n_occlusion_passes: int = 0
    occlusion_frames: tuple[int, int] = (40, 75)
    n_crossing_pairs: int = 0
    reflection_rate: float = 0.0
    reflection_frames: tuple[int, int] = (30, 150)
    glare_rate: float = 0.0
    glare_frames: tuple[int, int] = (5, 60)
    flicker_prob: float = 0.0
    flicker_duty: float = 0.5
    false_positive_rate: float = 0.0
    background_fp_rate: float = 0.0
    background_fp_frames: tuple[int, int] = (2, 8)
    n_reentries: int = 0
    n_newcomers: int = 0
    away_frames: tuple[int, int] = (75, 270)
    textures: str = "photo"

    def __post_init__(self) -> None:
        if self.textures not in TEXTURE_SOURCES:
            raise ValueError(f"ScenarioConfig: textures must be one of {TEXTURE_SOURCES}, got {self.textures!r}")
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "textures":
                continue
            if isinstance(value, tuple):
                _check_range(f.name, value)
            elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"ScenarioConfig: {f.name} must be a finite number, got {value!r}")
            elif value < 0:
                raise ValueError(f"ScenarioConfig: {f.name} must be >= 0, got {value!r}")
        for name in ("n_objects", "n_frames", "n_static_occluders", "n_moving_occluders",
                     "n_occlusion_passes", "n_crossing_pairs", "n_reentries", "n_newcomers"):
            if not isinstance(getattr(self, name), int):
                raise ValueError(f"ScenarioConfig: {name} must be an int, got {getattr(self, name)!r}")
        for name in ("n_frames", "fps"):
            if getattr(self, name) <= 0:
                raise ValueError(f"ScenarioConfig: {name} must be > 0, got {getattr(self, name)!r}")
        for name in ("flicker_prob", "flicker_duty"):
            if getattr(self, name) > 1.0:
                raise ValueError(f"ScenarioConfig: {name} must lie in [0, 1], got {getattr(self, name)!r}")
        scripted = self.n_occlusion_passes + 2 * self.n_crossing_pairs + self.n_reentries + self.n_newcomers
        if scripted > self.n_objects:
            raise ValueError(
                "ScenarioConfig: n_occlusion_passes + 2 * n_crossing_pairs + n_reentries + n_newcomers must not "
                f"exceed n_objects, got {self.n_occlusion_passes} + 2 * {self.n_crossing_pairs} + "
                f"{self.n_reentries} + {self.n_newcomers} > {self.n_objects}")
        if self.n_newcomers > self.n_reentries:
            raise ValueError(f"ScenarioConfig: n_newcomers={self.n_newcomers} needs as many reentry objects to "
                             f"look like, got n_reentries={self.n_reentries}")
        if self.n_occlusion_passes > 0 and self.n_static_occluders == 0:
            raise ValueError(
                f"ScenarioConfig: n_occlusion_passes={self.n_occlusion_passes} needs n_static_occluders >= 1")
        if self.occluder_depth_range[1] >= self.depth_range[0] - self.depth_amplitude:
            raise ValueError(
                "ScenarioConfig: occluder_depth_range must stand in front of the objects' paths "
                f"(max {self.occluder_depth_range[1]} < depth_range[0] - depth_amplitude = "
                f"{self.depth_range[0] - self.depth_amplitude}), got {self.occluder_depth_range!r}")
        if self.occlusion_frames[0] < 1:
            raise ValueError(f"ScenarioConfig: occlusion_frames must be >= 1 frame, got {self.occlusion_frames!r}")
        for name in ("reflection_frames", "glare_frames", "background_fp_frames", "away_frames"):
            if getattr(self, name)[0] < 1:
                raise ValueError(f"ScenarioConfig: {name} must be >= 1 frame, got {getattr(self, name)!r}")

    @property
    def has_occluders(self) -> bool:
        """True when the scenario draws static or moving occluders."""
        return self.n_static_occluders + self.n_moving_occluders > 0


def _check_range(name: str, value: tuple) -> None:
    """Validate a ``(low, high)`` knob: two finite numbers, ``0 < low <= high``."""
    if (len(value) != 2 or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in value)
            or not all(math.isfinite(v) for v in value) or not 0 < value[0] <= value[1]):
        raise ValueError(f"ScenarioConfig: {name} must be a (low, high) pair with 0 < low <= high, got {value!r}")


_BASE = ScenarioConfig()

SCENARIOS: dict[str, ScenarioConfig] = {
    # a few well-separated objects, nothing else: the sanity baseline
    "clean": replace(_BASE, n_objects=3),
    # the demo scene: many objects, a pillar and a walking panel, every nuisance kind
    "cluttered": replace(
        _BASE, n_objects=7, n_static_occluders=1, n_moving_occluders=1, n_occlusion_passes=2,
        n_crossing_pairs=1, reflection_rate=0.4, glare_rate=0.3, flicker_prob=0.4,
        false_positive_rate=0.05, background_fp_rate=1.0),
    # few objects, nuisances everywhere: the persistence filter's test bed
    "noisy": replace(
        _BASE, n_objects=4, n_static_occluders=1, n_occlusion_passes=1, reflection_rate=1.2,
        glare_rate=1.0, glare_frames=(5, 90), flicker_prob=0.5, false_positive_rate=0.25,
        background_fp_rate=2.0),
    # a wide wall panel hides objects for 2-3 s: ghosts must survive that long
    "long_occlusion": replace(
        _BASE, n_objects=4, n_static_occluders=1, static_occluder_width_px=(260.0, 300.0),
        n_occlusion_passes=2, occlusion_frames=(60, 90), box_height_px=(50.0, 90.0)),
    # pairs at different depths crossing in the image: the nearer hides the farther for a moment
    "crossing": replace(_BASE, n_objects=6, n_crossing_pairs=3, speed_range=(0.4, 0.8)),
    # objects leave the view for 2.5-9 s and come back (4-7 returns per 20 s run); look-alike
    # newcomers enter while their originals are away (re-identification by appearance alone is tempted)
    "reentry": replace(
        _BASE, n_objects=7, n_frames=600, n_reentries=4, n_newcomers=2, speed_range=(0.7, 1.1),
        away_frames=(75, 270)),
}


def make_scenario(name: str) -> ScenarioConfig:
    """The preset called ``name``; ValueError listing the allowed names otherwise."""
    if name not in SCENARIOS:
        raise ValueError(f"make_scenario: unknown scenario {name!r}; allowed: {sorted(SCENARIOS)}")
    return SCENARIOS[name]
