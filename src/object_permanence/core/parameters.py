"""Config dataclasses built from flat parameter values (a node's declared ROS parameters, a
parameter file's ``ros__parameters`` block), with errors that name the parameter.

ROS-free, so that evaluation and data tools build the shipped configurations as the nodes do
on machines without ROS (a GPU host, a plain Python CI).
"""
from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml


class ParameterError(ValueError):
    """A node parameter has a value outside what it allows, or names no declared parameter."""


def build_config(cls: type, values: dict[str, Any], prefix: str = "", **extra: Any) -> Any:
    """Construct config dataclass ``cls`` from declared parameter values.

    Raises:
        ParameterError: the dataclass rejected a value (its message names the field).
    """
    kwargs = {f.name: values[prefix + f.name] for f in fields(cls) if prefix + f.name in values}
    kwargs.update(extra)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        text = str(exc)
        named = [f.name for f in fields(cls) if re.search(rf"\b{re.escape(f.name)}\b", text)]
        if named:  # name the ROS parameter (the field the message is about: mentioned first)
            name = min(named, key=lambda n: re.search(rf"\b{re.escape(n)}\b", text).start())
            raise ParameterError(f"parameter '{prefix}{name}': {exc}") from exc
        raise ParameterError(str(exc)) from exc


def node_parameters(config_dir: Path, node: str) -> dict[str, Any]:
    """The ``ros__parameters`` of ``config_dir/<node>.yaml`` (a node's parameter file).

    Raises:
        ValueError: the file lacks the node's block. OSError: unreadable.
    """
    path = Path(config_dir) / f"{node}.yaml"
    document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    try:
        return dict(document[node]["ros__parameters"])
    except (KeyError, TypeError):
        raise ValueError(f"{path}: no {node}.ros__parameters block") from None


def detector_nms(config_dir: Path) -> dict[str, Any]:
    """The NMS the detector node runs, from ``config_dir/detector.yaml``: ``{"iou": float,
    "agnostic": bool}`` (the YOLO backends' keyword arguments); the node's defaults (0.7, True)
    where the file has none."""
    params = node_parameters(config_dir, "detector")
    return {"iou": float(params.get("iou_threshold", 0.7)), "agnostic": bool(params.get("agnostic_nms", True))}
