"""Runs a launch file for real, with every process it starts replaced by a recorder: what each
node of each process would get as parameters, as rclpy itself resolves them (files, overrides,
wildcards, their precedence), without running any node. Used by test_launch_files.py where
upstream ``launch``/``launch_ros`` are installed.

    python launch_recorder.py launch OUT_DIR PREFIX FILE.launch.py [name:=value ...]
    python launch_recorder.py record OUT_DIR COMMAND...

``launch``: runs FILE with launch's ``launch-prefix`` set to ``record OUT_DIR``, so that each
process's command line is handed to this script instead of being executed; PREFIX is an ament
prefix put ahead of AMENT_PREFIX_PATH (the test points it at the source tree). Exits with the
launch service's return code.

``record``: writes ``OUT_DIR/<executable>-<pid>.json``: the command, and for a ROS process every
node's parameters ``{fully qualified node name: {parameter: value}}``, read from nodes created
with the process's arguments and ``automatically_declare_parameters_from_overrides``. The single
node of a per-node process takes its name from the ``__node`` remapping launch_ros adds; the
composed ``pipeline`` process holds the six nodes of the graph.
"""
from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path

COMPOSED = ("stereo_capture", "detector", "world_model", "persistence_filter", "triangulator", "llm_explainer")


def record(out_dir: Path, command: list[str]) -> int:
    import rclpy
    from rclpy.node import Node

    executable = Path(command[0]).name
    result: dict = {"executable": executable, "argv": command, "nodes": {}}
    path = out_dir / f"{executable}-{os.getpid()}.json"
    if "--ros-args" not in command:
        path.write_text(json.dumps(result, indent=1))
        return 0
    rclpy.init(args=command)
    for name in COMPOSED if executable == "pipeline" else ("recorded_node",):
        node = Node(name, automatically_declare_parameters_from_overrides=True,
                    start_parameter_services=False, enable_rosout=False)
        names = node.list_parameters([], 0).names
        result["nodes"][node.get_fully_qualified_name()] = {p.name: p.value for p in node.get_parameters(names)}
    path.write_text(json.dumps(result, indent=1))
    # Done once the file is written: exit without tearing DDS down. With several recorders starting
    # and stopping at once, Fast DDS 3.2.3 now and then segfaulted in destroy_node or deadlocked in
    # rcl_publisher_fini (seen under upstream launch: a record lost in 1 of 15-60 runs; none in 60
    # runs exiting this way).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def launch(out_dir: Path, prefix: Path, launch_file: Path, arguments: list[str]) -> int:
    from launch import LaunchDescription, LaunchService
    from launch.actions import IncludeLaunchDescription, SetLaunchConfiguration
    from launch.launch_description_sources import PythonLaunchDescriptionSource

    os.environ["AMENT_PREFIX_PATH"] = os.pathsep.join(
        [str(prefix), *filter(None, os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep))])
    recorder = " ".join(shlex.quote(p) for p in (sys.executable, str(Path(__file__).resolve()), "record",
                                                   str(out_dir)))
    service = LaunchService()
    service.include_launch_description(LaunchDescription([
        SetLaunchConfiguration("launch-prefix", recorder),
        IncludeLaunchDescription(PythonLaunchDescriptionSource(str(launch_file)),
                                 launch_arguments=[tuple(a.split(":=", 1)) for a in arguments]),
    ]))
    return service.run()


if __name__ == "__main__":
    mode, out = sys.argv[1], Path(sys.argv[2])
    if mode == "record":
        sys.exit(record(out, sys.argv[3:]))
    sys.exit(launch(out, Path(sys.argv[3]), Path(sys.argv[4]), sys.argv[5:]))
