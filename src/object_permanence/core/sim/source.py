"""The simulated world as a stereo frame source, with its ground truth beside each frame."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from object_permanence.core.sim.scenarios import make_scenario
from object_permanence.core.sim.world import SimFrameTruth, SimWorld


class SimStereoSource:
    """Renders frames ``0, 1, 2, ...`` of a :class:`SimWorld` (``max_frames`` of them, or the
    scenario's ``n_frames`` when 0; ``loop`` restarts at frame 0). ``textures`` overrides the
    scenario's texture source (``"photo"`` or ``"synthetic"``) when given. ``truth`` is the ground
    truth of the frame last returned by :meth:`read`."""

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
        self.truth: SimFrameTruth | None = None

    @property
    def frame_size(self) -> tuple[int, int]:
        """(width, height) of the images, pixels."""
        return self.world.rig.width, self.world.rig.height

    def read(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The next (left, right) BGR pair, or None after the last frame (unless looping)."""
        if self._next >= self.n_frames:
            if not self.loop:
                return None
            self._next = 0
        k = self._next
        self._next += 1
        self.truth = self.world.ground_truth(k)
        return self.world.render(k)

    def close(self) -> None:
        """Nothing to release (kept for the StereoSource protocol)."""
