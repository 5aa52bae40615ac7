"""Declared, typed, validated node parameters.

Each node lists its parameters as :class:`Param` entries; :func:`declare` declares them with a
descriptor (description, type, allowed range/values) and validates the values it was started
with, raising :class:`ParameterError` naming the parameter and what is allowed. A parameter file
or override naming a key the node does not declare (a typo such as ``min_hitz``) is an error
too, naming the key and the closest declared name, instead of silently running on defaults.
Later ``set_parameters`` calls are validated by the same rules through an on-set callback.
"""
from __future__ import annotations

import difflib
import functools
import math
from dataclasses import dataclass, fields
from typing import Any, Callable, Sequence

import yaml
from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    SetParametersResult,
)
from rclpy.node import Node
from rclpy.parameter import Parameter

from object_permanence.core.parameters import ParameterError, build_config
from object_permanence.ros.shipped import shipped_config_dir

__all__ = ["ParameterError", "build_config", "Param", "declare", "config_params", "check_unknown_overrides",
           "unknown_overrides", "FIRST_TRACK_ID_PARAM"]


# Declared by rclpy itself on every node, or on demand (qos_overrides.<topic>.<policy> when a
# publisher or subscription allows QoS overrides): never unknown.
ALWAYS_ALLOWED = frozenset({"use_sim_time", "start_type_description_service"})
ALWAYS_ALLOWED_PREFIXES = ("qos_overrides.",)
# Names of every Param defined in this process (the node classes imported into it). A wildcard
# (``/**``) entry or an un-prefixed ``-p name:=value`` reaches every node of a process; in the
# composed ``pipeline`` one meant for a sibling node is therefore not an error.
_DEFINED_NAMES: set[str] = set()


@dataclass(frozen=True)
class Param:
    """One parameter: name, default (its type is the parameter's type) and its rules."""

    name: str
    default: Any
    description: str
    choices: Sequence[Any] | None = None
    low: float | None = None
    high: float | None = None
    # The nodes read their parameters once, at start-up, to build the core objects: a change at
    # run time would not take effect, so parameters are read-only unless a node applies changes.
    read_only: bool = True
    check: Callable[[Any], str | None] | None = None  # returns a reason when the value is bad

    def __post_init__(self) -> None:
        _DEFINED_NAMES.add(self.name)

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not allowed for this parameter, or None."""
        if isinstance(value, float) and not math.isfinite(value):
            return f"parameter '{self.name}' must be finite, got {value}"
        if self.choices is not None and value not in self.choices:
            return f"parameter '{self.name}' is {value!r}; allowed values: {', '.join(map(repr, self.choices))}"
        if self.low is not None and value < self.low:
            return f"parameter '{self.name}' is {value}; allowed range: [{self.low}, {self.high if self.high is not None else 'inf'}]"
        if self.high is not None and value > self.high:
            return f"parameter '{self.name}' is {value}; allowed range: [{self.low if self.low is not None else '-inf'}, {self.high}]"
        if self.check is not None:
            return self.check(value)
        return None

    def descriptor(self) -> ParameterDescriptor:
        text = self.description
        if self.choices is not None:
            text += f" Allowed: {', '.join(map(str, self.choices))}."
        d = ParameterDescriptor(description=text, read_only=self.read_only)
        if isinstance(self.default, bool) or self.low is None or self.high is None:
            return d
        if isinstance(self.default, int):
            d.integer_range = [IntegerRange(from_value=int(self.low), to_value=int(self.high), step=0)]
        elif isinstance(self.default, float):
            d.floating_point_range = [FloatingPointRange(from_value=float(self.low), to_value=float(self.high), step=0.0)]
        return d


#: The first id of the tracks a node creates (world model: 2D, triangulator: 3D).
FIRST_TRACK_ID_PARAM = Param(
    "first_track_id", 0, "First track id. 0: seeded from the wall clock at start-up (10^6 ids a second since "
    "2025), so a restarted node never reuses an id of an earlier run; resets (a time jump, new camera_info) "
    "continue the sequence: an id is never handed out twice in the life of the robot.", low=0, high=2**53 - 1)


def declare(node: Node, params: Sequence[Param]) -> dict[str, Any]:
    """Declare ``params`` on ``node``, validate the start-up values and return them by name.

    Raises:
        ParameterError: a start-up value is not allowed (the message names the parameter), or
            a parameter file or override names a key the node does not declare (see
            :func:`check_unknown_overrides`).
    """
    by_name = {p.name: p for p in params}
    values: dict[str, Any] = {}
    for p in params:
        try:
            value = node.declare_parameter(p.name, p.default, p.descriptor()).value
        except Exception as exc:  # rclpy raises several types for a wrongly typed override
            raise ParameterError(f"parameter '{p.name}': {exc}") from exc
        reason = p.problem(value)
        if reason:
            raise ParameterError(reason)
        values[p.name] = value
    check_unknown_overrides(node)

    def on_set(changes: list[Parameter]) -> SetParametersResult:
        for change in changes:
            spec = by_name.get(change.name)
            if spec is None:
                continue
            if spec.read_only:
                return SetParametersResult(successful=False, reason=f"parameter '{change.name}' is read-only")
            reason = spec.problem(change.value)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(on_set)
    return values


def unknown_overrides(node: Node) -> list[str]:
    """The keys of the parameter overrides that reach ``node`` (its block of a parameter file,
    the ``/**`` wildcard block, ``-p`` rules and constructor overrides) that it has not declared
    and that no other node defined in this process declares; sorted.

    rclpy applies an override only when the node declares that name and otherwise ignores it;
    it keeps the overrides of the node in ``Node._parameter_overrides`` (rclpy has no public
    accessor; rclcpp's is ``get_parameter_overrides()``), already limited to the entries whose
    node name matches this node, so blocks of a YAML file for other nodes never appear here.
    """
    overrides = getattr(node, "_parameter_overrides", None) or {}
    return sorted(
        name for name in overrides
        if not node.has_parameter(name) and name not in ALWAYS_ALLOWED
        and not name.startswith(ALWAYS_ALLOWED_PREFIXES) and name not in _DEFINED_NAMES
    )


@functools.cache
def package_parameter_names() -> frozenset[str]:
    """Every parameter name of this package's nodes: the keys of the ``ros__parameters`` blocks of
    the shipped ``config/*.yaml`` (each file holds every parameter of its node; test_parameters
    checks it). Empty when the folder cannot be read (then only the node's own names count)."""
    names: set[str] = set()
    try:
        for path in sorted(shipped_config_dir().glob("*.yaml")):
            for block in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).values():
                if isinstance(block, dict) and isinstance(block.get("ros__parameters"), dict):
                    names.update(block["ros__parameters"])
    except (OSError, yaml.YAMLError):
        return frozenset()
    return frozenset(names)


def check_unknown_overrides(node: Node) -> None:
    """Fail on parameter overrides that look like a misspelt parameter of this node, warn about
    the other unknown ones (see :func:`unknown_overrides`).

    A key close to one of the node's own names (difflib, ratio >= 0.6) is a typo that would leave
    the parameter on its default: the node stops. A key like no name of the node, or a parameter
    of another node of this package (:func:`package_parameter_names`: ``time_jump_reset_s`` is not a
    typo of the explainer's ``timeout_s``), is meant for someone else — a robot-wide ``/**`` block
    of a shared parameter file, a ``-p`` rule for another executable — and is named in one warning;
    the node runs (rclpy ignores it).

    Raises:
        ParameterError: naming each misspelt key and the declared name it is close to, e.g.
            ``parameter 'min_hitz' is not declared by node 'world_model' (did you mean 'min_hits'?)``.
    """
    unknown = unknown_overrides(node)
    if not unknown:
        return
    own = sorted(node.get_parameters_by_prefix(""))  # "" matches every name the node declared
    others = package_parameter_names()
    typos, foreign = [], []
    for name in unknown:
        close = [] if name in others else difflib.get_close_matches(name, own, n=1, cutoff=0.6)
        if close:
            typos.append(f"parameter '{name}' is not declared by node '{node.get_name()}' (did you mean '{close[0]}'?)")
        else:
            foreign.append(name)
    if foreign:
        node.get_logger().warning(
            f"ignoring parameter(s) {', '.join(repr(n) for n in foreign)}: not declared by node '{node.get_name()}' "
            "and like none of its names (meant for another node? see docs/parameters.md)")
    if typos:
        raise ParameterError("; ".join(typos) + " — a parameter file or override names it; rclpy would ignore it "
                             "and run on the default (see docs/parameters.md)")


def _field_descriptions(cls: type) -> dict[str, str]:
    """``name: text`` (or ``a, b: text``) entries of a config dataclass docstring, with their
    indented continuation lines joined."""
    out: dict[str, str] = {}
    current: list[str] = []
    for line in (cls.__doc__ or "").splitlines():
        stripped = line.strip()
        head, sep, text = stripped.partition(": ")
        names = [n.strip() for n in head.split(",")]
        if sep and all(n.isidentifier() for n in names):
            current = names
            for name in current:
                out[name] = text
        elif current and stripped and line.startswith(" " * 8):
            for name in current:
                out[name] += " " + stripped
        else:
            current = []
    return out


def config_params(cls: type, prefix: str = "", skip: Sequence[str] = (),
                  docs_from: Sequence[type] = ()) -> tuple[Param, ...]:
    """One :class:`Param` per field of a scalar config dataclass, described from its docstring
    (or from the docstrings of ``docs_from``, for fields it forwards to another config).

    The dataclass itself validates the values (see :func:`build_config`)."""
    descriptions = {}
    for source in (*docs_from, cls):
        descriptions.update(_field_descriptions(source))
    return tuple(
        Param(prefix + f.name, f.default, descriptions.get(f.name, f"{cls.__name__}.{f.name}"))
        for f in fields(cls) if f.name not in skip
    )
