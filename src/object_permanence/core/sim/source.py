"""The simulated world as a stereo frame source, with its ground truth beside each frame, and the
clock that tells which of its frames is due."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from object_permanence.core.sim.scenarios import make_scenario
from object_permanence.core.sim.world import SimFrameTruth, SimWorld


class SimStereoSource:
    """Renders frames ``0, 1, 2, ...`` of a :class:`SimWorld` (``max_frames`` of them, or the
    scenario's ``n_frames`` when 0; ``loop`` restarts at frame 0). ``textures`` overrides the
    scenario's texture source (``"photo"`` or ``"synthetic"``) when given. ``truth`` is the ground
    truth of the frame last returned by :meth:`read`, ``position`` its place in the stream (frame
    periods since the first frame; the frame index too unless looping)."""

    def __init__(self, scenario: str, seed: int = 0, max_frames: int = 0, loop: bool = False,
                 textures: str | None = None) -> None:
        if isinstance(max_frames, bool) or not isinstance(max_frames, (int, np.integer)) or max_frames < 0:
            raise ValueError(f"SimStereoSource: max_frames must be an integer >= 0, got {max_frames!r}")
        config = make_scenario(scenario)
        if textures is not None:
            config = replace(config, textures=textures)  # validated by ScenarioConfig
        self.world = SimWorld(config, seed=seed)
        self.n_frames = max_frames or self.world.config.n_frames
        self.loop = loop
        self._next = 0
        self.position = -1
        self.truth: SimFrameTruth | None = None

    @property
    def frame_size(self) -> tuple[int, int]:
        """(width, height) of the images, pixels."""
        return self.world.rig.width, self.world.rig.height

    def read(self, due: int | None = None) -> tuple[np.ndarray, np.ndarray] | None:
        """The next (left, right) BGR pair, or None after the last frame (unless looping).

        ``due``: the stream position the caller's clock has reached (frame periods since the first
        frame). Frames before it are skipped, as a camera's are when its reader falls behind: the
        scene keeps its own time instead of slowing down with the reader. Never past the last
        frame of a stream that does not loop (the last frame is delivered).
        """
        if not self.loop and self._next >= self.n_frames:
            return None
        position = self._next if due is None else max(self._next, int(due))
        if not self.loop:
            position = min(position, self.n_frames - 1)
        self.position, self._next = position, position + 1
        k = position % self.n_frames
        self.truth = self.world.ground_truth(k)
        return self.world.render(k)

    def close(self) -> None:
        """Nothing to release (kept for the StereoSource protocol)."""


class SceneClock:
    """Which frame of a simulated camera a clock has reached, and each frame's scene time.

    Frame ``k`` of the stream is exposed at ``start + k * period_ns``; ``start`` is anchored at the
    first reading. A reader that falls behind is due a later frame (the ones in between are
    dropped, as a camera's are), so the scene keeps the clock's time. A clock that goes back
    before the last frame's time or jumps ahead by more than ``max_jump_ns`` at once (a bag or
    simulated clock restarted, a machine suspended) re-anchors instead: the stream goes on from
    the next frame at the clock's new time.

    period_ns: frame period, > 0 (a ROS timer's, ``int(1e9 / fps)``); max_jump_ns: > ``period_ns``.
    """

    def __init__(self, period_ns: int, max_jump_ns: int) -> None:
        if period_ns <= 0 or max_jump_ns <= period_ns:
            raise ValueError(f"SceneClock: need 0 < period_ns < max_jump_ns, got {period_ns}, {max_jump_ns}")
        self.period_ns = int(period_ns)
        self.max_jump_ns = int(max_jump_ns)
        self._start: int | None = None
        self.reanchored = 0

    def due(self, now_ns: int, next_position: int) -> int:
        """The stream position due at clock reading ``now_ns`` (>= ``next_position`` - 1 when
        the clock runs on; a tick a hair early is due the frame before the next)."""
        if self._start is not None:
            due = (now_ns - self._start) // self.period_ns
            if next_position - 1 <= due <= next_position + self.max_jump_ns // self.period_ns:
                return int(due)
            self.reanchored += 1
        self._start = now_ns - next_position * self.period_ns
        return next_position

    def stamp_ns(self, position: int) -> int:
        """The scene time (clock ns) of stream position ``position``."""
        if self._start is None:
            raise RuntimeError("SceneClock.stamp_ns before the first due()")
        return self._start + position * self.period_ns
