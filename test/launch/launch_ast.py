"""Reads a launch file's syntax tree (never executes it): the arguments it declares, the Node actions
of this package with their parameter files, overrides, namespace and condition, the launch files
it includes. Used by test/test_launch_files.py, where launch itself is not importable."""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from launch_facts import PACKAGE

#: A node-scoped parameter rule on the command line: ``node:param:=value``.
PARAM_RULE = re.compile(r"^(?P<node>\w+):(?P<param>[\w.]+):=")


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
    #: The ``namespace`` keyword (None when absent) and whether it is there at all.
    namespace: str | None = None
    has_namespace: bool = False
    #: Kinds of the ``parameters`` entries in order: "file" or "dict".
    parameter_kinds: list[str] = field(default_factory=list)
    #: Kinds of the ``ros_arguments`` parameter entries in order: "--params-file" or "-p".
    ros_argument_kinds: list[str] = field(default_factory=list)
    #: The ``condition`` expression, and every string constant of ``arguments``.
    condition: ast.expr | None = None
    argument_strings: list[str] = field(default_factory=list)


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


def call_name(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _assignments(tree: ast.Module) -> dict[str, ast.expr]:
    """``name = <expr>`` at any level (launch files bind each name once)."""
    return {target.id: node.value for node in ast.walk(tree) if isinstance(node, ast.Assign)
            for target in node.targets if isinstance(target, ast.Name)}


def resolve(expr: ast.expr | None, env: dict[str, ast.expr]) -> ast.expr | None:
    while isinstance(expr, ast.Name) and expr.id in env:
        expr = env[expr.id]
    return expr


def literal(expr: ast.expr | None, env: dict[str, ast.expr]) -> Any:
    """The value of a literal expression (following names), or None when it is not one."""
    expr = resolve(expr, env)
    if isinstance(expr, (ast.List, ast.Tuple)):
        values = [literal(e, env) for e in expr.elts]
        return None if None in values else tuple(values)
    return expr.value if isinstance(expr, ast.Constant) else None


def strings(expr: ast.expr, env: dict[str, ast.expr], seen: frozenset[str] = frozenset()) -> Iterator[str]:
    """Every string constant in ``expr``, following names to their assignments."""
    for node in ast.walk(expr):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.value
        elif isinstance(node, ast.Name) and node.id in env and node.id not in seen:
            yield from strings(env[node.id], env, seen | {node.id})


def configuration(expr: ast.expr, env: dict[str, ast.expr]) -> str | None:
    """The launch argument an expression reads (``LaunchConfiguration('x')``), if any."""
    for node in ast.walk(expr):
        node = resolve(node, env)
        if isinstance(node, ast.Call) and call_name(node) == "LaunchConfiguration":
            return literal(node.args[0], env)
    return None


def _node_action(call: ast.Call, env: dict[str, ast.expr]) -> NodeAction:
    namespace = keyword(call, "namespace")
    arguments = keyword(call, "arguments")
    node = NodeAction(executable=literal(keyword(call, "executable"), env),
                      name=literal(keyword(call, "name"), env),
                      yaml_files={s for s in strings(call, env) if s.endswith(".yaml")},
                      namespace=literal(namespace, env), has_namespace=namespace is not None,
                      condition=keyword(call, "condition"),
                      argument_strings=list(strings(arguments, env)) if arguments is not None else [])
    parameters = resolve(keyword(call, "parameters"), env)
    for entry in parameters.elts if isinstance(parameters, ast.List) else ():
        entry = resolve(entry, env)
        node.parameter_kinds.append("dict" if isinstance(entry, ast.Dict) else "file")
        if isinstance(entry, ast.Dict):
            for key, value in zip(entry.keys, entry.values):
                node.overrides[literal(key, env)] = configuration(value, env)
    ros_arguments = resolve(keyword(call, "ros_arguments"), env)
    for entry in ros_arguments.elts if isinstance(ros_arguments, ast.List) else ():
        if literal(entry, env) in ("--params-file", "-p"):
            node.ros_argument_kinds.append(literal(entry, env))
        parts = entry.elts if isinstance(entry, ast.List) else [entry]
        match = PARAM_RULE.match(literal(parts[0], env) or "")
        if match:
            node.scoped_overrides.setdefault(match["node"], {})[match["param"]] = \
                configuration(ast.List(elts=parts[1:]), env)
    return node


def _argument(call: ast.Call, env: dict[str, ast.expr]) -> Argument:
    default = keyword(call, "default_value")
    choices = keyword(call, "choices")
    return Argument(name=literal(call.args[0], env), default=literal(default, env), has_default=default is not None,
                    choices=literal(choices, env) if choices is not None else None,
                    description=literal(keyword(call, "description"), env) or "")


def _include(call: ast.Call, env: dict[str, ast.expr]) -> Include:
    files = [s for s in strings(call.args[0], env) if s.endswith(".launch.py")]
    arguments = resolve(keyword(call, "launch_arguments"), env)
    if isinstance(arguments, ast.Call) and isinstance(arguments.func, ast.Attribute):  # {...}.items()
        arguments = arguments.func.value
    assert len(files) == 1 and isinstance(arguments, ast.Dict), "an include names one launch file and a dict"
    return Include(file=files[0], arguments={literal(k, env): v for k, v in zip(arguments.keys, arguments.values)})


def parse_launch_file(path: Path) -> LaunchFile:
    """Read the arguments, nodes, includes and configurations a launch file names."""
    source = path.read_text()
    tree = ast.parse(source, filename=str(path))
    launch = LaunchFile(path=path, source=source, tree=tree, env=_assignments(tree))
    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
        name = call_name(call)
        if name == "DeclareLaunchArgument":
            argument = _argument(call, launch.env)
            launch.arguments[argument.name] = argument
        elif name == "Node":
            if literal(keyword(call, "package"), launch.env) == PACKAGE:
                launch.nodes.append(_node_action(call, launch.env))
            else:
                launch.other_executables.add(literal(keyword(call, "executable"), launch.env))
        elif name == "IncludeLaunchDescription":
            launch.includes.append(_include(call, launch.env))
        elif name == "LaunchConfiguration":
            launch.configurations.add(literal(call.args[0], launch.env))
    return launch
