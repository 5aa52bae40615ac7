"""The ghost's motion model: which :class:`~object_permanence.core.box_filter_bank.BoxFilterBank`
the world model steps its tracks with (``WorldModelConfig.motion_model``).

``cv``: constant velocity (:class:`~object_permanence.core.box_filter_bank.BatchedBoxKalman`).
``damped``: the velocity decays toward 0, an Ornstein-Uhlenbeck velocity
(:class:`~object_permanence.core.damped_velocity.DampedVelocityBank`).
``imm``: interacting multiple model, constant velocity + constant acceleration
(:class:`~object_permanence.core.imm.ImmBoxBank`).

The models' own constants (time constant, jerk density, switch time) are their classes'
defaults; :func:`register_variant` adds a model with other constants under a new name, so that an
evaluation can compare settings through the unchanged world model.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

from object_permanence.core.box_filter_bank import BatchedBoxKalman, BoxFilterBank
from object_permanence.core.damped_velocity import DampedVelocityBank
from object_permanence.core.imm import ImmBoxBank
from object_permanence.core.kalman import BoxKalmanParams

#: motion_model name -> factory of an empty bank with the given noise scales.
MOTION_MODELS: dict[str, Callable[[BoxKalmanParams], BoxFilterBank]] = {
    "cv": BatchedBoxKalman,
    "damped": DampedVelocityBank,
    "imm": ImmBoxBank,
}

#: The base models only (what the ROS parameter offers); :data:`MOTION_MODELS` may also hold variants.
BASE_MODELS = tuple(MOTION_MODELS)


def make_bank(name: str, params: BoxKalmanParams) -> BoxFilterBank:
    """An empty bank of motion model ``name``; raises ValueError naming the allowed values."""
    try:
        factory = MOTION_MODELS[name]
    except KeyError:
        raise ValueError(f"motion_model must be one of {tuple(MOTION_MODELS)}, got {name!r}") from None
    return factory(params)


def register_variant(base: str, **constants: Any) -> str:
    """Register ``base`` (one of :data:`BASE_MODELS`) with other constructor constants, e.g.
    ``register_variant("damped", time_constant_s=1.0)``, and return its name
    (``"damped(time_constant_s=1.0)"``), usable as ``motion_model`` in this process.

    Raises:
        ValueError: unknown ``base``, or a constant the model rejects (checked by building one).
    """
    if base not in BASE_MODELS:
        raise ValueError(f"base must be one of {BASE_MODELS}, got {base!r}")
    factory = functools.partial(MOTION_MODELS[base], **constants)
    try:
        factory(BoxKalmanParams())
    except TypeError as exc:
        raise ValueError(f"{base} takes no such constant: {sorted(constants)} ({exc})") from None
    name = base + "(" + ", ".join(f"{k}={v!r}" for k, v in sorted(constants.items())) + ")"
    MOTION_MODELS[name] = factory
    return name
