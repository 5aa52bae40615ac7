"""What the launch tests agree on: the nodes, which launch argument sets which node parameter, what
the replay waits for, and the parameter files' values. Imported by test/test_launch_files.py and
the tests beside this file; needs neither ROS nor launch."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "object_permanence"
NODES = ("stereo_capture", "detector", "world_model", "persistence_filter", "triangulator", "llm_explainer")
#: Launch arguments that set a node parameter: argument -> (node, parameter).
NODE_ARGUMENTS = {
    "source": ("stereo_capture", "source"), "calibration_file": ("stereo_capture", "calibration_file"),
    "scenario": ("stereo_capture", "scenario"), "detector_backend": ("detector", "backend"),
    "weights": ("detector", "weights"), "device": ("detector", "device"),
    "llm_backend": ("llm_explainer", "backend"), "llm_base_url": ("llm_explainer", "base_url"),
}
#: Launch arguments (replay.launch.py's) that set one parameter of several nodes: argument ->
#: ((node, parameter), ...).
SHARED_NODE_ARGUMENTS = {
    "image_transport": (("detector", "image_transport"), ("triangulator", "image_transport")),
}
#: Launch arguments that steer the launch itself: which processes, files, clock, playback.
LAUNCH_ARGUMENTS = {"rviz", "llm", "use_sim_time", "config_dir", "composed", "nodes",
                    "bag", "rate", "player", "delay", "ros2bag_delay", "wait_timeout", "remap"}
#: What the replay's player waits for before the first message (the simulated detector adds the truth).
REPLAY_WAIT_FOR = ("/stereo/left/image_raw,/stereo/right/image_raw,"
                   "/stereo/left/camera_info,/stereo/right/camera_info")
#: The same with image_transport:=compressed (CompressedImage on <image topic>/compressed).
REPLAY_WAIT_FOR_COMPRESSED = ("/stereo/left/image_raw/compressed,/stereo/right/image_raw/compressed,"
                              "/stereo/left/camera_info,/stereo/right/camera_info")


def flatten(block: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested YAML mappings as dotted ROS parameter names."""
    out: dict[str, Any] = {}
    for key, value in block.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def load_yaml_params(config_dir: Path = ROOT / "config") -> dict[str, dict[str, Any]]:
    """``{node: {parameter: value}}`` of every ``<config_dir>/<node>.yaml`` (one block per file,
    named after its node: AssertionError otherwise)."""
    out = {}
    for node in NODES:
        document = yaml.safe_load((config_dir / f"{node}.yaml").read_text())
        assert list(document) == [node], f"config/{node}.yaml must hold one block named '{node}'"
        out[node] = flatten(document[node]["ros__parameters"])
    return out
