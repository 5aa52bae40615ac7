"""Checks of the launch files, parameter files and RViz config.

Everywhere (``launch``/``launch_ros`` are not installable from PyPI) the launch files are read with
``ast``, never executed: every executable, parameter file, launch argument and parameter override
they name must exist, every argument meant for a node must reach it in both modes with precedence
over the node's YAML block, and the overrides must agree with what the nodes declare (``PARAMS``
of ``object_permanence.nodes.<node>``, which needs rclpy: those checks skip without it).

Where upstream launch is installed, test/launch/test_launch_recorded.py also runs them for real,
each process replaced by a recorder that reads back the parameters rclpy gives every node.
"""
from __future__ import annotations

import ast
import importlib
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

LAUNCH_TEST_DIR = Path(__file__).resolve().parent / "launch"
sys.path.insert(0, str(LAUNCH_TEST_DIR))
from launch_ast import (LaunchFile, call_name, configuration, keyword, literal, parse_launch_file,  # noqa: E402
                        resolve, strings)
from launch_facts import (LAUNCH_ARGUMENTS, NODE_ARGUMENTS, NODES, PACKAGE, REPLAY_WAIT_FOR,  # noqa: E402
                          REPLAY_WAIT_FOR_COMPRESSED, ROOT, SHARED_NODE_ARGUMENTS, load_yaml_params)

LAUNCH_FILES = sorted((ROOT / "launch").glob("*.launch.py"))
LAUNCH_TEST = LAUNCH_TEST_DIR / "test_pipeline_launch.py"
RVIZ_FILE = ROOT / "rviz" / "object_permanence.rviz"
LAUNCH_MODULES = ("launch", "launch_ros", "launch_testing", "launch_testing_ros")


@pytest.fixture(scope="module")
def launch_files() -> dict[str, LaunchFile]:
    assert LAUNCH_FILES, f"no launch files in {ROOT / 'launch'}"
    return {p.name: parse_launch_file(p) for p in LAUNCH_FILES}


@pytest.fixture(scope="module")
def node_params() -> dict[str, dict[str, Any]]:
    """``{node: {parameter name: Param}}`` from each node module's PARAMS (needs rclpy)."""
    try:
        importlib.import_module("rclpy")
        modules = {n: importlib.import_module(f"{PACKAGE}.nodes.{n}") for n in NODES}
    except ImportError as exc:
        pytest.skip(f"node modules need rclpy and the built interfaces "
                    f"(`source scripts/ros_env.sh` after `make build`): {exc}")
    return {n: {p.name: p for p in m.PARAMS} for n, m in modules.items()}


@pytest.fixture(scope="module")
def yaml_params() -> dict[str, dict[str, Any]]:
    """``{node: {parameter: value}}`` of every ``config/<node>.yaml`` (one block per file)."""
    return load_yaml_params()


def _installed_programs() -> set[str]:
    cmake = (ROOT / "CMakeLists.txt").read_text()
    blocks = re.findall(r"install\(\s*PROGRAMS(.*?)DESTINATION\s+lib/\$\{PROJECT_NAME\}", cmake, re.S)
    return {m for block in blocks for m in re.findall(r"scripts/(\w+)", block)}


def _overrides(launch: LaunchFile) -> Iterator[tuple[str, str, str | None]]:
    """``(node, parameter, launch argument)`` for every override a launch file sets."""
    for node in launch.nodes:
        for param, argument in node.overrides.items():
            yield node.executable, param, argument
        for scoped, params in node.scoped_overrides.items():
            for param, argument in params.items():
                yield scoped, param, argument


# --- launch files, without the nodes -----------------------------------------------------------

def test_expected_launch_files_exist():
    assert {p.name for p in LAUNCH_FILES} >= {"pipeline.launch.py", "sim_demo.launch.py", "replay.launch.py"}


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_is_plain_description(path):
    launch = parse_launch_file(path)
    assert "eval(" not in launch.source
    functions = [n.name for n in launch.tree.body if isinstance(n, ast.FunctionDef)]
    assert functions == ["generate_launch_description"]
    imported = {a.name.split(".")[0] for n in ast.walk(launch.tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(launch.tree) if isinstance(n, ast.ImportFrom)}
    assert imported <= {"launch", "launch_ros"}, f"{path.name} imports {sorted(imported)}"


def test_executables_are_installed(launch_files):
    installed = _installed_programs()
    assert set(NODES) | {"pipeline"} <= installed
    for launch in launch_files.values():
        for node in launch.nodes:
            assert node.executable in installed, f"{launch.path.name}: '{node.executable}' not in install(PROGRAMS)"
            script = ROOT / "scripts" / node.executable
            assert script.is_file() and os.access(script, os.X_OK), f"{script} missing or not executable"
        assert launch.other_executables <= {"rviz2"}, launch.other_executables


def test_parameter_files_exist_and_each_node_reads_its_own(launch_files):
    for launch in launch_files.values():
        for node in launch.nodes:
            for name in node.yaml_files:
                assert (ROOT / "config" / name).is_file(), f"{launch.path.name}: config/{name} missing"
            if node.executable == "pipeline":
                assert node.yaml_files == {f"{n}.yaml" for n in NODES}
                # A node name would rename all six nodes of the process.
                assert node.name is None, "the composed pipeline must not be given a node name"
            elif node.executable == "play_bag":
                assert not node.yaml_files and not node.overrides
            else:
                assert node.yaml_files == {f"{node.executable}.yaml"}
                assert node.name == node.executable, "the node name keys its block in the parameter file"


def test_pipeline_starts_every_node_separately_and_composed(launch_files):
    pipeline = launch_files["pipeline.launch.py"]
    assert sorted(n.executable for n in pipeline.nodes) == sorted((*NODES, "pipeline"))
    composed = next(n for n in pipeline.nodes if n.executable == "pipeline")
    separate = {n.executable: n for n in pipeline.nodes if n.executable != "pipeline"}
    # The composed process gets the same overrides as the separate nodes, scoped to their node.
    assert composed.scoped_overrides == {n: node.overrides for n, node in separate.items() if node.overrides}
    assert "rviz2" in pipeline.other_executables
    assert {"source", "calibration_file", "detector_backend", "weights", "device", "scenario", "rviz", "llm",
            "llm_backend", "llm_base_url", "use_sim_time", "config_dir", "composed", "nodes"} <= set(pipeline.arguments)


def test_every_argument_meant_for_a_node_reaches_it_in_every_mode(launch_files):
    """Each declared argument steers the launch or sets a node parameter (a new argument must be
    classified here), and one that sets a parameter reaches that node in every process that runs
    it: the separate node and the composed process, or the launch file it is forwarded to."""
    for launch in launch_files.values():
        for name in launch.arguments:
            assert name in NODE_ARGUMENTS or name in LAUNCH_ARGUMENTS or name in SHARED_NODE_ARGUMENTS, \
                f"{launch.path.name}: argument '{name}' neither steers the launch nor sets a node parameter"
        for name in sorted(set(launch.arguments) & set(SHARED_NODE_ARGUMENTS)):
            for node, param in SHARED_NODE_ARGUMENTS[name]:
                targets = [n for n in launch.nodes if n.executable == node]
                assert targets, f"{launch.path.name}: '{name}' is meant for {node}, which it does not start"
                assert all(t.overrides.get(param) == name for t in targets), \
                    f"{launch.path.name}: {name} does not reach {node}.{param}"
                for composed in (n for n in launch.nodes if n.executable == "pipeline"):
                    assert composed.scoped_overrides.get(node, {}).get(param) == name, \
                        f"{launch.path.name}: {name} does not reach {node}.{param} in the composed process"
        for name in sorted(set(launch.arguments) & set(NODE_ARGUMENTS)):
            node, param = NODE_ARGUMENTS[name]
            if not launch.nodes:  # forwarded to an included launch file, checked there
                assert any(configuration(i.arguments.get(name, ast.Constant(None)), launch.env) == name
                           for i in launch.includes), f"{launch.path.name} does not forward '{name}'"
                continue
            separate = [n for n in launch.nodes if n.executable == node]
            composed = [n for n in launch.nodes if n.executable == "pipeline"]
            assert separate, f"{launch.path.name}: '{name}' is meant for {node}, which it does not start"
            for target in separate:
                assert target.overrides.get(param) == name, f"{launch.path.name}: {name} does not reach {node}.{param}"
            for target in composed:
                assert target.scoped_overrides.get(node, {}).get(param) == name, \
                    f"{launch.path.name}: {name} does not reach {node}.{param} in the composed process"


def test_overrides_take_precedence_over_the_parameter_files(launch_files):
    """launch_ros writes a parameter dict under the node's full name only when the Node has a
    namespace, under the ``/**`` wildcard otherwise, and the node's own block in its YAML file
    beats a wildcard (the overrides were lost that way). Given a namespace, a later entry for
    the same node beats an earlier one: the dict must follow the file. In the composed process,
    the ``-p node:param:=`` rules must follow the ``--params-file`` arguments."""
    checked = 0
    for launch in launch_files.values():
        for node in launch.nodes:
            if node.overrides:
                assert node.has_namespace and node.namespace == "", \
                    f"{launch.path.name}: {node.executable} needs namespace='' for its overrides to win"
                files = [i for i, kind in enumerate(node.parameter_kinds) if kind == "file"]
                dicts = [i for i, kind in enumerate(node.parameter_kinds) if kind == "dict"]
                assert files and min(dicts) > max(files), f"{launch.path.name}: {node.executable} overrides first"
                checked += 1
            if node.scoped_overrides:
                files = [i for i, kind in enumerate(node.ros_argument_kinds) if kind == "--params-file"]
                rules = [i for i, kind in enumerate(node.ros_argument_kinds) if kind == "-p"]
                assert files and min(rules) > max(files), f"{launch.path.name}: composed overrides before the files"
                checked += 1
    assert checked >= 5


def test_no_parameter_file_sets_use_sim_time(yaml_params):
    # SetParameter passes use_sim_time as a /** wildcard rule, which a node's own block would beat.
    assert not [node for node, params in yaml_params.items() if "use_sim_time" in params]


def test_pipeline_selects_the_nodes_a_machine_starts(launch_files):
    pipeline = launch_files["pipeline.launch.py"]
    nodes = pipeline.arguments["nodes"]
    assert nodes.default == "all" and all(name in nodes.description for name in NODES)
    for node in pipeline.nodes:
        condition = resolve(node.condition, pipeline.env)
        assert isinstance(condition, ast.Call), f"{node.executable} has no condition"
        if node.executable == "pipeline":
            predicate = keyword(condition, "predicate")
            assert call_name(condition) == "Condition" and isinstance(predicate, ast.Name)
            assert predicate.id == "starts_composed"
        else:
            assert call_name(condition) == "starts", node.executable
            assert literal(condition.args[0], pipeline.env) == node.executable
            if node.executable == "llm_explainer":
                assert configuration(condition.args[1], pipeline.env) == "llm"


def test_replay_runs_processing_nodes_on_the_bag_clock(launch_files):
    replay = launch_files["replay.launch.py"]
    processing = [n for n in replay.nodes if n.executable != "play_bag"]
    assert sorted(n.executable for n in processing) == sorted(set(NODES) - {"stereo_capture"})
    assert not replay.arguments["bag"].has_default, "bag is a required argument"
    # use_sim_time is set once, in the group of the processing nodes: not for the player, which
    # publishes the clock.
    (group,) = [c for c in ast.walk(replay.tree) if isinstance(c, ast.Call) and call_name(c) == "GroupAction"]
    grouped = [c for c in ast.walk(group) if isinstance(c, ast.Call)]
    (set_parameter,) = [c for c in ast.walk(replay.tree) if isinstance(c, ast.Call) and call_name(c) == "SetParameter"]
    assert set_parameter in grouped
    assert literal(keyword(set_parameter, "name"), replay.env) == "use_sim_time"
    assert literal(keyword(set_parameter, "value"), replay.env) is True
    assert {literal(keyword(c, "executable"), replay.env) for c in grouped if call_name(c) == "Node"} == \
        set(NODES) - {"stereo_capture"} | {"rviz2"}


def test_replay_plays_once_the_graph_is_ready(launch_files):
    replay = launch_files["replay.launch.py"]
    assert replay.arguments["player"].choices == ("package", "ros2bag")
    assert replay.arguments["player"].default == "package"
    players = {n.name: n for n in replay.nodes if n.executable == "play_bag"}
    assert set(players) == {"play_bag", "wait_for_graph"}
    assert {"--clock", "--rate", "--wait-for", "--wait-timeout", "--delay"} <= set(players["play_bag"].argument_strings)
    assert {"--wait-only", "--wait-for", "--wait-timeout"} <= set(players["wait_for_graph"].argument_strings)
    assert "--clock" not in players["wait_for_graph"].argument_strings
    assert literal(replay.env["CAMERA_TOPICS"], replay.env) == REPLAY_WAIT_FOR
    assert literal(replay.env["COMPRESSED_CAMERA_TOPICS"], replay.env) == REPLAY_WAIT_FOR_COMPRESSED
    # ros2 bag play starts when the waiting player exits.
    (play,) = [c for c in ast.walk(replay.tree) if isinstance(c, ast.Call) and call_name(c) == "ExecuteProcess"]
    command = list(strings(keyword(play, "cmd"), replay.env))
    assert command[:3] == ["ros2", "bag", "play"] and {"--clock", "--rate", "--delay"} <= set(command)
    (on_exit,) = [c for c in ast.walk(replay.tree) if isinstance(c, ast.Call) and call_name(c) == "OnProcessExit"]
    target = keyword(on_exit, "target_action")
    assert isinstance(target, ast.Name) and target.id == "wait_for_graph"
    assert any(isinstance(n, ast.Name) and n.id == "play_ros2bag" for n in ast.walk(keyword(on_exit, "on_exit")))


def test_arguments_are_declared_and_described(launch_files):
    for launch in launch_files.values():
        undeclared = launch.configurations - set(launch.arguments)
        assert not undeclared, f"{launch.path.name} reads undeclared arguments {sorted(undeclared)}"
        for argument in launch.arguments.values():
            assert len(argument.description) > 10, f"{launch.path.name}: '{argument.name}' has no description"
            if argument.choices is not None and argument.default is not None:
                assert argument.default in argument.choices, argument


def test_includes_pass_declared_arguments_with_allowed_values(launch_files):
    for launch in launch_files.values():
        for include in launch.includes:
            assert include.file in launch_files, f"{launch.path.name} includes missing {include.file}"
            target = launch_files[include.file].arguments
            for name, value in include.arguments.items():
                assert name in target, f"{launch.path.name} passes '{name}', not declared by {include.file}"
                given, forwarded = literal(value, launch.env), configuration(value, launch.env)
                if given is not None and target[name].choices is not None:
                    assert given in target[name].choices, (name, given)
                if forwarded is not None and target[name].choices is not None:
                    assert launch.arguments[forwarded].choices == target[name].choices, name
    sim_demo = launch_files["sim_demo.launch.py"]
    (include,) = sim_demo.includes
    assert include.file == "pipeline.launch.py"
    assert literal(include.arguments["source"], sim_demo.env) == "sim"
    assert literal(include.arguments["detector_backend"], sim_demo.env) == "simulated"
    assert sim_demo.arguments["rviz"].default == "true"


# --- against the nodes' declared parameters -----------------------------------------------------

def test_overridden_parameters_are_declared(launch_files, node_params):
    seen = 0
    for launch in launch_files.values():
        for node, param, _ in _overrides(launch):
            assert param in node_params[node], f"{launch.path.name}: {node} declares no parameter '{param}'"
            seen += 1
    assert seen >= 8


def test_argument_choices_and_defaults_match_the_nodes(launch_files, node_params, yaml_params):
    checked = 0
    for launch in launch_files.values():
        for node, param, name in _overrides(launch):
            argument, spec = launch.arguments[name], node_params[node][param]
            if argument.choices is not None or spec.choices is not None:
                assert argument.choices is not None and spec.choices is not None, (launch.path.name, name)
                assert set(argument.choices) == set(spec.choices), (launch.path.name, name, spec.choices)
                checked += 1
            # The default of an argument must not silently change the parameter file's value.
            assert argument.default == yaml_params[node][param], (launch.path.name, name, argument.default)
    assert checked >= 6


def test_parameter_files_are_complete_and_typed(node_params, yaml_params):
    problems = []
    for node in NODES:
        declared, written = node_params[node], yaml_params[node]
        problems += [f"config/{node}.yaml sets undeclared '{n}'" for n in sorted(set(written) - set(declared))]
        problems += [f"config/{node}.yaml misses declared '{n}'" for n in sorted(set(declared) - set(written))]
        for name in sorted(set(written) & set(declared)):
            value, spec = written[name], declared[name]
            # rclpy rejects an override of another type (an integer for a double parameter).
            if type(value) is not type(spec.default) or (
                    isinstance(value, list) and not {type(v) for v in value} <= {type(v) for v in spec.default}):
                problems.append(f"{node}.{name}: {value!r} is not of the type of the default {spec.default!r}")
            elif spec.problem(value):
                problems.append(f"{node}.{name}: {spec.problem(value)}")
    assert not problems, "\n".join(problems)


# --- RViz ---------------------------------------------------------------------------------------

def test_rviz_config_shows_the_pipeline_outputs():
    config = yaml.safe_load(RVIZ_FILE.read_text())
    manager = config["Visualization Manager"]
    assert {"Panels", "Visualization Manager", "Window Geometry"} <= set(config)
    assert manager["Global Options"]["Fixed Frame"] == "left_camera_optical_frame"
    displays = {d["Class"].split("/")[-1] + ":" + (d.get("Topic") or {}).get("Value", ""): d
                for d in manager["Displays"]}
    assert set(displays) == {"Grid:", "Image:/stereo/left/image_raw", "Image:/stereo/right/image_raw",
                             "PointCloud2:/tracks3d/points", "MarkerArray:/tracks3d/markers"}
    points = displays["PointCloud2:/tracks3d/points"]
    assert (points["Color Transformer"], points["Channel Name"]) == ("Intensity", "track_id")
    assert (points["Style"], points["Size (m)"]) == ("Spheres", pytest.approx(0.1))
    for camera in ("left", "right"):
        assert displays[f"Image:/stereo/{camera}/image_raw"]["Topic"]["Reliability Policy"] == "Best Effort"
    view = manager["Views"]["Current"]
    assert view["Class"] == "rviz_default_plugins/Orbit"
    # Orbit eye = focal + d (cos p cos y, cos p sin y, sin p): it must look along +z with +y down.
    assert view["Pitch"] == pytest.approx(-1.5708, abs=0.02) and view["Yaw"] == pytest.approx(4.7124, abs=1e-3)


# --- nothing here needs launch ------------------------------------------------------------------

def _import_without_launch(path: Path) -> str:
    """Import ``path`` in a fresh interpreter where the launch packages cannot be imported;
    returns what happened: ``ok`` or the exception type name."""
    blocked = ", ".join(repr(m) for m in LAUNCH_MODULES)
    script = textwrap.dedent(f"""
        import importlib.util, sys
        for name in ({blocked},):
            sys.modules[name] = None  # any import of it raises ImportError
        spec = importlib.util.spec_from_file_location("under_test", {str(path)!r})
        module = sys.modules["under_test"] = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
            print("ok")
        except BaseException as exc:
            print(type(exc).__name__)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                            cwd=ROOT, check=True)
    return result.stdout.strip().splitlines()[-1]


def test_this_test_does_not_need_launch():
    assert _import_without_launch(Path(__file__)) == "ok"


def test_launch_test_skips_cleanly_without_launch_testing():
    assert _import_without_launch(LAUNCH_TEST) == "Skipped"


def test_parameter_reference_is_up_to_date() -> None:
    """docs/parameters.md is the output of tools/param_docs (regenerate it when a parameter changes:
    python -m object_permanence.tools.param_docs > docs/parameters.md)."""
    pytest.importorskip("rclpy", reason="the nodes' PARAMS need rclpy")
    from object_permanence.tools.param_docs import render

    assert (ROOT / "docs" / "parameters.md").read_text() == render()
