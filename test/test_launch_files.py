"""Static checks of the launch files, parameter files and RViz config.

``launch``/``launch_ros`` are not installable here, so the launch files are read with ``ast``
(never executed): every executable, parameter file, launch argument and parameter override they
name must exist, and the overrides must agree with what the nodes declare (``PARAMS`` of
``object_permanence.nodes.<node>``, which needs rclpy: those checks skip without it).
"""
from __future__ import annotations

import ast
import importlib
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "object_permanence"
NODES = ("stereo_capture", "detector", "world_model", "persistence_filter", "triangulator", "llm_explainer")
LAUNCH_FILES = sorted((ROOT / "launch").glob("*.launch.py"))
LAUNCH_TEST = ROOT / "test" / "launch" / "test_pipeline_launch.py"
RVIZ_FILE = ROOT / "rviz" / "object_permanence.rviz"
#: A node-scoped parameter rule on the command line: ``node:param:=value``.
PARAM_RULE = re.compile(r"^(?P<node>\w+):(?P<param>[\w.]+):=")
LAUNCH_MODULES = ("launch", "launch_ros", "launch_testing", "launch_testing_ros")


@dataclass(frozen=True)
class Argument:
    """A ``DeclareLaunchArgument``: default (None when absent or not a literal) and choices."""

    name: str
    default: str | None
    has_default: bool
    choices: tuple[str, ...] | None
    description: str


@dataclass
class NodeAction:
    """A ``launch_ros.actions.Node`` of this package."""

    executable: str
    name: str | None
    yaml_files: set[str]
    #: parameter name -> the launch argument that sets it (None: a literal value).
    overrides: dict[str, str | None] = field(default_factory=dict)
    #: node -> {parameter -> launch argument}, from ``-p node:param:=...`` rules (composed process).
    scoped_overrides: dict[str, dict[str, str | None]] = field(default_factory=dict)


@dataclass(frozen=True)
class Include:
    """An ``IncludeLaunchDescription`` of another launch file of this package."""

    file: str
    arguments: dict[str, ast.expr]


@dataclass
class LaunchFile:
    """What one launch file names, read from its syntax tree."""

    path: Path
    source: str
    tree: ast.Module
    env: dict[str, ast.expr]
    arguments: dict[str, Argument] = field(default_factory=dict)
    nodes: list[NodeAction] = field(default_factory=list)
    includes: list[Include] = field(default_factory=list)
    other_executables: set[str] = field(default_factory=set)
    configurations: set[str] = field(default_factory=set)


def _call_name(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _assignments(tree: ast.Module) -> dict[str, ast.expr]:
    """``name = <expr>`` at any level (launch files bind each name once)."""
    return {target.id: node.value for node in ast.walk(tree) if isinstance(node, ast.Assign)
            for target in node.targets if isinstance(target, ast.Name)}


def _resolve(expr: ast.expr | None, env: dict[str, ast.expr]) -> ast.expr | None:
    while isinstance(expr, ast.Name) and expr.id in env:
        expr = env[expr.id]
    return expr


def _literal(expr: ast.expr | None, env: dict[str, ast.expr]) -> Any:
    """The value of a literal expression (following names), or None when it is not one."""
    expr = _resolve(expr, env)
    if isinstance(expr, (ast.List, ast.Tuple)):
        values = [_literal(e, env) for e in expr.elts]
        return None if None in values else tuple(values)
    return expr.value if isinstance(expr, ast.Constant) else None


def _strings(expr: ast.expr, env: dict[str, ast.expr], seen: frozenset[str] = frozenset()) -> Iterator[str]:
    """Every string constant in ``expr``, following names to their assignments."""
    for node in ast.walk(expr):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.value
        elif isinstance(node, ast.Name) and node.id in env and node.id not in seen:
            yield from _strings(env[node.id], env, seen | {node.id})


def _configuration(expr: ast.expr, env: dict[str, ast.expr]) -> str | None:
    """The launch argument an expression reads (``LaunchConfiguration('x')``), if any."""
    for node in ast.walk(expr):
        node = _resolve(node, env)
        if isinstance(node, ast.Call) and _call_name(node) == "LaunchConfiguration":
            return _literal(node.args[0], env)
    return None


def _node_action(call: ast.Call, env: dict[str, ast.expr]) -> NodeAction:
    node = NodeAction(executable=_literal(_keyword(call, "executable"), env),
                      name=_literal(_keyword(call, "name"), env),
                      yaml_files={s for s in _strings(call, env) if s.endswith(".yaml")})
    parameters = _resolve(_keyword(call, "parameters"), env)
    for entry in parameters.elts if isinstance(parameters, ast.List) else ():
        entry = _resolve(entry, env)
        if isinstance(entry, ast.Dict):
            for key, value in zip(entry.keys, entry.values):
                node.overrides[_literal(key, env)] = _configuration(value, env)
    ros_arguments = _resolve(_keyword(call, "ros_arguments"), env)
    for entry in ros_arguments.elts if isinstance(ros_arguments, ast.List) else ():
        parts = entry.elts if isinstance(entry, ast.List) else [entry]
        match = PARAM_RULE.match(_literal(parts[0], env) or "")
        if match:
            node.scoped_overrides.setdefault(match["node"], {})[match["param"]] = \
                _configuration(ast.List(elts=parts[1:]), env)
    return node


def _argument(call: ast.Call, env: dict[str, ast.expr]) -> Argument:
    default = _keyword(call, "default_value")
    choices = _keyword(call, "choices")
    return Argument(name=_literal(call.args[0], env), default=_literal(default, env), has_default=default is not None,
                    choices=_literal(choices, env) if choices is not None else None,
                    description=_literal(_keyword(call, "description"), env) or "")


def _include(call: ast.Call, env: dict[str, ast.expr]) -> Include:
    files = [s for s in _strings(call.args[0], env) if s.endswith(".launch.py")]
    arguments = _resolve(_keyword(call, "launch_arguments"), env)
    if isinstance(arguments, ast.Call) and isinstance(arguments.func, ast.Attribute):  # {...}.items()
        arguments = arguments.func.value
    assert len(files) == 1 and isinstance(arguments, ast.Dict), "an include names one launch file and a dict"
    return Include(file=files[0], arguments={_literal(k, env): v for k, v in zip(arguments.keys, arguments.values)})


def parse_launch_file(path: Path) -> LaunchFile:
    """Read the arguments, nodes, includes and configurations a launch file names."""
    source = path.read_text()
    tree = ast.parse(source, filename=str(path))
    launch = LaunchFile(path=path, source=source, tree=tree, env=_assignments(tree))
    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
        name = _call_name(call)
        if name == "DeclareLaunchArgument":
            argument = _argument(call, launch.env)
            launch.arguments[argument.name] = argument
        elif name == "Node":
            if _literal(_keyword(call, "package"), launch.env) == PACKAGE:
                launch.nodes.append(_node_action(call, launch.env))
            else:
                launch.other_executables.add(_literal(_keyword(call, "executable"), launch.env))
        elif name == "IncludeLaunchDescription":
            launch.includes.append(_include(call, launch.env))
        elif name == "LaunchConfiguration":
            launch.configurations.add(_literal(call.args[0], launch.env))
    return launch


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


def _flatten(block: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested YAML mappings as dotted ROS parameter names."""
    out: dict[str, Any] = {}
    for key, value in block.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


@pytest.fixture(scope="module")
def yaml_params() -> dict[str, dict[str, Any]]:
    """``{node: {parameter: value}}`` of every ``config/<node>.yaml`` (one block per file)."""
    out = {}
    for node in NODES:
        document = yaml.safe_load((ROOT / "config" / f"{node}.yaml").read_text())
        assert list(document) == [node], f"config/{node}.yaml must hold one block named '{node}'"
        out[node] = _flatten(document[node]["ros__parameters"])
    return out


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
            "llm_backend", "llm_base_url", "use_sim_time", "config_dir", "composed"} <= set(pipeline.arguments)


def test_replay_runs_processing_nodes_on_the_bag_clock(launch_files):
    replay = launch_files["replay.launch.py"]
    assert sorted(n.executable for n in replay.nodes) == sorted(set(NODES) - {"stereo_capture"})
    assert not replay.arguments["bag"].has_default, "bag is a required argument"
    play = [c for c in ast.walk(replay.tree) if isinstance(c, ast.Call) and _call_name(c) == "ExecuteProcess"]
    assert len(play) == 1
    command = list(_strings(_keyword(play[0], "cmd"), replay.env))
    assert command[:3] == ["ros2", "bag", "play"] and "--clock" in command and "--rate" in command
    set_parameter = [c for c in ast.walk(replay.tree) if isinstance(c, ast.Call) and _call_name(c) == "SetParameter"]
    assert len(set_parameter) == 1
    assert _literal(_keyword(set_parameter[0], "name"), replay.env) == "use_sim_time"
    assert _literal(_keyword(set_parameter[0], "value"), replay.env) is True


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
                literal, forwarded = _literal(value, launch.env), _configuration(value, launch.env)
                if literal is not None and target[name].choices is not None:
                    assert literal in target[name].choices, (name, literal)
                if forwarded is not None and target[name].choices is not None:
                    assert launch.arguments[forwarded].choices == target[name].choices, name
    sim_demo = launch_files["sim_demo.launch.py"]
    (include,) = sim_demo.includes
    assert include.file == "pipeline.launch.py"
    assert _literal(include.arguments["source"], sim_demo.env) == "sim"
    assert _literal(include.arguments["detector_backend"], sim_demo.env) == "simulated"
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
