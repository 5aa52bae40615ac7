"""The launch files run for real by upstream launch, every process replaced by a recorder
(launch_recorder.py beside this file): the parameters each node would get, as rclpy resolves them
from the files and overrides launch_ros passes, must carry every launch argument with precedence
over the node's YAML block and keep the rest of that block; ``nodes`` must start just the named
processes; the replay must gate its player and run the nodes on the bag's clock.

Needs ``launch``, ``launch_ros`` and rclpy (a ROS 2 install); skips elsewhere, where
test/test_launch_files.py checks the same statically.
"""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from launch_facts import (NODE_ARGUMENTS, NODES, PACKAGE, REPLAY_WAIT_FOR, REPLAY_WAIT_FOR_COMPRESSED, ROOT,
                          load_yaml_params)

RECORDER = Path(__file__).resolve().parent / "launch_recorder.py"

#: Values that differ from every YAML default, so that a lost override shows.
OVERRIDES = {"source": "video", "calibration_file": "/tmp/stereo.yaml", "scenario": "clean",
             "detector_backend": "ultralytics", "weights": "/tmp/yolo.pt", "device": "cuda",
             "llm_backend": "template", "llm_base_url": "http://127.0.0.1:9/v1"}
ROBOT_NODES = ("stereo_capture", "world_model", "persistence_filter", "triangulator", "llm_explainer")


@dataclass
class Launched:
    """What a recorded launch started: its return code, output and one record per process."""

    code: int
    output: str
    records: list[dict[str, Any]]

    def executables(self) -> list[str]:
        return sorted(r["executable"] for r in self.records)

    def params(self, node: str) -> dict[str, Any]:
        """The parameters of node ``/node`` (it must run exactly once)."""
        found = [r["nodes"][f"/{node}"] for r in self.records if f"/{node}" in r["nodes"]]
        assert len(found) == 1, f"/{node} runs {len(found)} times:\n{self.output}"
        return found[0]

    def argv(self, executable: str) -> list[str]:
        (record,) = [r for r in self.records if r["executable"] == executable]
        return record["argv"]


@pytest.fixture(scope="module")
def yaml_params() -> dict[str, dict[str, Any]]:
    return load_yaml_params()


@pytest.fixture(scope="module")
def run_launch(tmp_path_factory):
    """``run_launch(file, *name:=value)``: the launch file run by upstream launch with launch-prefix
    set to test/launch/launch_recorder.py, the package resolved to this source tree."""
    # launch_ros first: with test/ on sys.path, test/launch passes for a namespace package `launch`.
    for module in ("launch_ros", "launch", "rclpy"):
        pytest.importorskip(module, reason=f"{module} is not installed (ROS 2 install only): "
                            "test/test_launch_files.py checks the launch files statically")
    prefix = tmp_path_factory.mktemp("ament_prefix")
    index = prefix / "share" / "ament_index" / "resource_index" / "packages"
    index.mkdir(parents=True)
    (index / PACKAGE).touch()
    (prefix / "share" / PACKAGE).symlink_to(ROOT, target_is_directory=True)
    (prefix / "lib").mkdir()
    (prefix / "lib" / PACKAGE).symlink_to(ROOT / "scripts", target_is_directory=True)
    # The recorders create rclpy nodes: DDS on loopback, in a domain of this run.
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", PYTHONUNBUFFERED="1",
               ROS_DOMAIN_ID=str(random.SystemRandom().randint(100, 230)))

    def run(launch_file: str, *arguments: str) -> Launched:
        out = tmp_path_factory.mktemp("recorded")
        result = subprocess.run([sys.executable, str(RECORDER), "launch", str(out), str(prefix),
                                 str(ROOT / "launch" / launch_file), *arguments],
                                capture_output=True, text=True, timeout=120, env=env, cwd=out)
        records = [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]
        return Launched(result.returncode, result.stdout + result.stderr, records)

    return run


@pytest.mark.parametrize("composed", ["false", "true"])
def test_launch_arguments_win_over_the_parameter_files(run_launch, yaml_params, composed):
    launched = run_launch("pipeline.launch.py", f"composed:={composed}", "use_sim_time:=true",
                          *(f"{name}:={value}" for name, value in OVERRIDES.items()))
    assert launched.code == 0, launched.output
    assert launched.executables() == (["pipeline"] if composed == "true" else sorted(NODES)), launched.output
    for name, value in OVERRIDES.items():
        node, param = NODE_ARGUMENTS[name]
        assert yaml_params[node][param] != value, f"{name}: pick a value the YAML does not have"
        assert launched.params(node)[param] == value, f"composed:={composed}: {name} lost\n{launched.output}"
    overridden = set(NODE_ARGUMENTS.values())
    for node in NODES:
        params = launched.params(node)
        assert params["use_sim_time"] is True, node
        # Everything else keeps the value of the node's YAML block.
        kept = {k: v for k, v in yaml_params[node].items() if (node, k) not in overridden}
        assert {k: params.get(k) for k in kept} == kept, node


def test_nodes_argument_picks_the_processes_of_a_machine(run_launch):
    gpu_host = run_launch("pipeline.launch.py", "nodes:=detector", "device:=cuda")
    assert gpu_host.code == 0, gpu_host.output
    assert gpu_host.executables() == ["detector"], gpu_host.output
    assert gpu_host.params("detector")["device"] == "cuda"
    robot = run_launch("pipeline.launch.py", f"nodes:={','.join(ROBOT_NODES)}", "scenario:=clean")
    assert robot.code == 0, robot.output
    assert robot.executables() == sorted(ROBOT_NODES), robot.output
    assert robot.params("stereo_capture")["scenario"] == "clean"
    for composed in ("false", "true"):  # both image readers, separate or in the composed process
        compressed = run_launch("pipeline.launch.py", "image_transport:=compressed", f"composed:={composed}")
        assert compressed.code == 0, compressed.output
        assert compressed.params("detector")["image_transport"] == "compressed"
        assert compressed.params("triangulator")["image_transport"] == "compressed"
    without_llm = run_launch("pipeline.launch.py", "nodes:=all", "llm:=false")
    assert without_llm.code == 0, without_llm.output
    assert without_llm.executables() == sorted(set(NODES) - {"llm_explainer"}), without_llm.output


@pytest.mark.parametrize("arguments, message", [
    (("nodes:=detectr",), "detectr"),
    (("nodes:=",), "empty list"),
    (("nodes:=detector", "composed:=true"), "needs composed:=false"),
])
def test_a_bad_node_selection_stops_the_launch(run_launch, arguments, message):
    launched = run_launch("pipeline.launch.py", *arguments)
    assert launched.code != 0 and not launched.records, launched.output
    assert message in launched.output


def test_sim_demo_forwards_its_arguments(run_launch):
    launched = run_launch("sim_demo.launch.py", "scenario:=long_occlusion", "rviz:=false", "llm:=false")
    assert launched.code == 0, launched.output
    assert launched.executables() == sorted(set(NODES) - {"llm_explainer"}), launched.output
    assert launched.params("stereo_capture")["scenario"] == "long_occlusion"
    assert launched.params("stereo_capture")["source"] == "sim"
    assert launched.params("detector")["backend"] == "simulated"


@pytest.mark.parametrize("backend", ["simulated", "ultralytics"])
def test_replay_plays_on_a_clock_once_the_nodes_subscribed(run_launch, backend):
    launched = run_launch("replay.launch.py", "bag:=/data/run.mcap", "rviz:=false", f"detector_backend:={backend}",
                          "weights:=/tmp/yolo.pt", "device:=cuda", "llm_backend:=template", "rate:=0.5")
    assert launched.code == 0, launched.output
    assert launched.executables() == sorted({*NODES, "play_bag"} - {"stereo_capture"}), launched.output
    for node in set(NODES) - {"stereo_capture"}:
        assert launched.params(node)["use_sim_time"] is True, node
    assert launched.params("play_bag").get("use_sim_time", False) is False
    detector = launched.params("detector")
    assert (detector["backend"], detector["weights"], detector["device"]) == (backend, "/tmp/yolo.pt", "cuda")
    assert launched.params("llm_explainer")["backend"] == "template"
    argv = launched.argv("play_bag")
    wait_for = REPLAY_WAIT_FOR + (",/sim/ground_truth" if backend == "simulated" else "")
    assert argv[1:5] == ["/data/run.mcap", "--clock", "--rate", "0.5"]
    assert argv[argv.index("--wait-for") + 1] == wait_for
    assert argv[argv.index("--remap") + 1] == ""  # the bag's topics under their own names by default


def test_replay_of_compressed_images_waits_for_them_and_tells_both_image_readers(run_launch):
    launched = run_launch("replay.launch.py", "bag:=/data/run.mcap", "rviz:=false", "llm:=false",
                          "image_transport:=compressed")
    assert launched.code == 0, launched.output
    assert launched.params("detector")["image_transport"] == "compressed"
    assert launched.params("triangulator")["image_transport"] == "compressed"
    argv = launched.argv("play_bag")
    assert argv[argv.index("--wait-for") + 1] == REPLAY_WAIT_FOR_COMPRESSED + ",/sim/ground_truth"


def test_replay_with_ros2_bag_plays_after_the_wait(run_launch):
    launched = run_launch("replay.launch.py", "bag:=/data/run.mcap", "rviz:=false", "llm:=false", "player:=ros2bag")
    assert launched.code == 0, launched.output
    (waiter,) = [r["argv"] for r in launched.records if r["executable"] == "play_bag"]
    assert "--wait-only" in waiter and "--clock" not in waiter
    assert launched.argv("ros2")[:6] == ["ros2", "bag", "play", "/data/run.mcap", "--clock", "--rate"]
    assert launched.argv("ros2")[-2:] == ["--delay", "2.0"]
