"""The simulated stereo world: rig, scenarios, world (ground truth + rendering), rosbag2 export.

``bag`` is not imported here: it needs the ``rosbags`` library, which the rest does not.
"""
from object_permanence.core.sim.rig import StereoRig
from object_permanence.core.sim.scenarios import CLASS_NAMES, SCENARIOS, ScenarioConfig, make_scenario
from object_permanence.core.sim.world import SimFrameTruth, SimObjectSpec, SimWorld

__all__ = [
    "CLASS_NAMES",
    "SCENARIOS",
    "ScenarioConfig",
    "SimFrameTruth",
    "SimObjectSpec",
    "SimWorld",
    "StereoRig",
    "make_scenario",
]
