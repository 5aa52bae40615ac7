"""Config dataclasses from parameter values (core.parameters): errors name the parameter, and the
evaluation and data tools build the shipped configurations without ROS."""
from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from object_permanence.core.parameters import ParameterError, build_config


@dataclass
class _Config:
    gate: float = 1.0
    ratio: float = 0.5

    def __post_init__(self) -> None:
        if self.gate <= 0:
            raise ValueError(f"gate must be > 0, got {self.gate}")


def test_builds_from_prefixed_values_and_names_the_bad_parameter() -> None:
    assert build_config(_Config, {"wm.gate": 2.0, "other": 1}, prefix="wm.") == _Config(gate=2.0)
    assert build_config(_Config, {}, ratio=0.1) == _Config(ratio=0.1)
    with pytest.raises(ParameterError, match="parameter 'wm.gate': gate must be > 0"):
        build_config(_Config, {"wm.gate": -1.0}, prefix="wm.")
    with pytest.raises(ParameterError):
        build_config(_Config, {}, unknown=1)


def test_tools_build_the_shipped_configs_without_ros() -> None:
    """A process with rclpy made unimportable still reads config/world_model.yaml as the node does."""
    code = ("import sys; sys.modules['rclpy'] = None; sys.modules['rcl_interfaces'] = None\n"
            "from pathlib import Path\n"
            "from object_permanence.tools.eval_tracking import shipped_world_model_config, parse_seeds\n"
            "import object_permanence.tools.make_persistence_data, object_permanence.tools.make_detector_data\n"
            "root = Path(sys.argv[1])\n"
            "print(type(shipped_world_model_config(root / 'config')).__name__, parse_seeds('3-4'))\n")
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code, str(root)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "WorldModelConfig [3, 4]"


def test_detector_nms_is_what_the_detector_node_reads(tmp_path) -> None:
    from object_permanence.core.parameters import detector_nms, node_parameters

    config = Path(__file__).resolve().parents[2] / "config"
    shipped = node_parameters(config, "detector")
    assert detector_nms(config) == {"iou": shipped["iou_threshold"], "agnostic": shipped["agnostic_nms"]}
    (tmp_path / "detector.yaml").write_text("detector:\n  ros__parameters:\n    backend: simulated\n")
    assert detector_nms(tmp_path) == {"iou": 0.7, "agnostic": True}  # the node's defaults
