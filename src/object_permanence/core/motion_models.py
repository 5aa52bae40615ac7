"""The ghost's motion model: which :class:`~object_permanence.core.box_filter_bank.BoxFilterBank`
the world model steps its tracks with (``WorldModelConfig.motion_model``).

``cv``: constant velocity (:class:`~object_permanence.core.box_filter_bank.BatchedBoxKalman`).
"""
from __future__ import annotations

from typing import Callable

from object_permanence.core.box_filter_bank import BatchedBoxKalman, BoxFilterBank
from object_permanence.core.kalman import BoxKalmanParams

#: motion_model name -> factory of an empty bank with the given noise scales.
MOTION_MODELS: dict[str, Callable[[BoxKalmanParams], BoxFilterBank]] = {
    "cv": BatchedBoxKalman,
}


def make_bank(name: str, params: BoxKalmanParams) -> BoxFilterBank:
    """An empty bank of motion model ``name``; raises ValueError naming the allowed values."""
    try:
        factory = MOTION_MODELS[name]
    except KeyError:
        raise ValueError(f"motion_model must be one of {tuple(MOTION_MODELS)}, got {name!r}") from None
    return factory(params)
