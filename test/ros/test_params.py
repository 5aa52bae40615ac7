"""Parameter files and overrides that name a key no node declares fail at start-up, naming the
key and the closest declared name (a typo would otherwise run on the default, silently)."""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

pytest.importorskip("rclpy", reason="rclpy is not importable (source scripts/ros_env.sh)")
pytest.importorskip("object_permanence.msg", reason="object_permanence interfaces are not built (colcon build)")

from conftest import NodeProcess  # noqa: E402

from object_permanence.nodes.world_model import WorldModelNode  # noqa: E402
from object_permanence.ros.params import ParameterError, Param, unknown_overrides  # noqa: E402

pytestmark = pytest.mark.ros
WARN = 30  # rcl_interfaces/Log level

EXIT_TIMEOUT_S = 30.0  # a Python node process importing numpy/scipy on a busy 2-core machine

PARAMS_FILE = """\
world_model:
  ros__parameters:
    min_hitz: 2          # typo of min_hits
    max_ghost_age_s: 2.0
detector:                # another node's block: never reaches world_model
  ros__parameters:
    backend: simulated
    imgsz: 320
/**:
  ros__parameters:
    use_sim_time: false  # rclpy's own: always allowed
"""


def start_world_model(ros, cli_args: list[str] | None = None, params: dict | None = None) -> WorldModelNode:
    """A WorldModelNode in the harness's namespace, with command-line ROS arguments as a process gets them."""
    from rclpy.parameter import Parameter

    overrides = [Parameter(name, value=value) for name, value in (params or {}).items()]
    node = WorldModelNode(context=ros.context, namespace=ros.namespace, cli_args=cli_args,
                          parameter_overrides=overrides)
    ros._add(node)  # closed and destroyed with the harness
    return node


def test_an_unknown_override_names_the_key_and_the_closest_declared_name(ros) -> None:
    with pytest.raises(ParameterError, match=r"parameter 'min_hitz' is not declared by node 'world_model' "
                                             r"\(did you mean 'min_hits'\?\)"):
        ros.start(WorldModelNode, {"min_hitz": 2})


def test_a_parameter_file_applies_only_this_nodes_block_and_the_wildcard(ros, tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(PARAMS_FILE.replace("world_model:", "/**/world_model:"))  # this test's namespace
    with pytest.raises(ParameterError) as info:
        start_world_model(ros, ["--ros-args", "--params-file", str(path)])
    text = str(info.value)
    assert "'min_hitz'" in text and "'min_hits'" in text
    assert "backend" not in text and "imgsz" not in text and "use_sim_time" not in text
    path.write_text(PARAMS_FILE.replace("world_model:", "/**/world_model:").replace("min_hitz", "min_hits"))
    node = start_world_model(ros, ["--ros-args", "--params-file", str(path)])
    assert node.get_parameter("min_hits").value == 2 and node.get_parameter("max_ghost_age_s").value == 2.0
    assert unknown_overrides(node) == []


def test_rclpy_parameters_and_those_of_sibling_nodes_are_allowed(ros) -> None:
    """use_sim_time and qos_overrides.* belong to rclpy; a name that another node class of this
    process declares may be meant for it (a wildcard entry reaches every node of the composed
    pipeline), so only names no node declares fail."""
    Param("sibling_only_setting", 1, "declared by a (hypothetical) sibling node class of this process")
    node = ros.start(WorldModelNode, {"use_sim_time": False, "qos_overrides./tracks.publisher.depth": 5,
                                      "sibling_only_setting": 3})
    assert node.get_parameter("use_sim_time").value is False


def test_several_misspelt_keys_are_all_named(ros) -> None:
    with pytest.raises(ParameterError) as info:
        ros.start(WorldModelNode, {"min_hitz": 1, "max_ghost_age": 3.0})
    text = str(info.value)
    assert "'max_ghost_age' is not declared by node 'world_model' (did you mean 'max_ghost_age_s'?)" in text
    assert "'min_hitz' is not declared by node 'world_model' (did you mean 'min_hits'?)" in text


def test_a_robot_wide_key_like_no_parameter_is_warned_about_and_the_node_runs(ros, tmp_path: Path) -> None:
    """A shared parameter file's ``/**`` block holds keys for other nodes of the robot: the node
    names them in a warning and runs (a misspelt name of its own still stops it, above)."""
    path = tmp_path / "robot.yaml"
    path.write_text("/**:\n  ros__parameters:\n    robot_name: rover1\n    zzzz_qqqq: 3\n    min_hits: 4\n")
    node = start_world_model(ros, ["--ros-args", "--params-file", str(path)])
    assert node.get_parameter("min_hits").value == 4
    ros.spin_until(lambda: any("'robot_name', 'zzzz_qqqq'" in m and "not declared by node 'world_model'" in m
                               for m in ros.log_lines("world_model", WARN)), "the warning naming both keys")


def test_another_nodes_parameter_is_not_taken_for_a_typo(launcher, tmp_path: Path) -> None:
    """A robot-wide /** block that sets world_model's time_jump_reset_s reaches the explainer's
    process too: close to its timeout_s, but a parameter of another node of the package — a
    warning, and the node runs (it stopped with 'did you mean timeout_s?')."""
    from object_permanence.ros.params import package_parameter_names

    assert {"time_jump_reset_s", "stereo_slop_s", "max_frames", "min_hits"} <= package_parameter_names()
    path = tmp_path / "robot.yaml"
    path.write_text("/**:\n  ros__parameters:\n    time_jump_reset_s: 2.0\n    backend: template\n")
    argv = [str(launcher.lib_dir / "llm_explainer"), "--ros-args", "--params-file", str(path)]
    process = NodeProcess("llm_explainer", argv, tmp_path / "llm_explainer.log", launcher.env)
    launcher.processes.append(process)
    deadline = time.monotonic() + EXIT_TIMEOUT_S
    while "explainer: TemplateExplainer" not in process.output() and time.monotonic() < deadline:
        assert process.popen.poll() is None, process.output()
        time.sleep(0.2)
    output = process.output()
    assert "ignoring parameter(s) 'time_jump_reset_s'" in output and "did you mean" not in output, output
    process.stop()


def test_node_process_with_an_unknown_key_exits_non_zero_naming_it(launcher, tmp_path: Path) -> None:
    """The issue's case: `min_hitz` in a parameter file ran on defaults with exit 0. A global
    `-p` rule naming a parameter of another executable (max_frames is stereo_capture's) is like
    no world_model name: warned about, not fatal; the other node's block is ignored as before."""
    path = tmp_path / "params.yaml"
    path.write_text(PARAMS_FILE)
    argv = [str(launcher.lib_dir / "world_model"), "--ros-args", "--params-file", str(path), "-p", "max_frames:=150"]
    process = NodeProcess("world_model", argv, tmp_path / "world_model.log", launcher.env)
    launcher.processes.append(process)
    try:
        code = process.wait(timeout_s=EXIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"world_model kept running with min_hitz in its parameter file:\n{process.output()}")
    output = process.output()
    assert code == 2, output
    assert "parameter 'min_hitz' is not declared by node 'world_model' (did you mean 'min_hits'?)" in output, output
    assert "ignoring parameter(s) 'max_frames': not declared by node 'world_model'" in output, output
    assert "backend" not in output and "use_sim_time" not in output, output
    assert "Traceback" not in output, output
