"""Parameters of the world model (:class:`WorldModelConfig`), validated at construction.

All scalars, so that a node can declare each one as a ROS parameter (``config/world_model.yaml``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
from scipy.stats import chi2

from object_permanence.core.kalman import BoxKalmanParams
from object_permanence.core.motion_models import MOTION_MODELS

_KALMAN_FIELDS = tuple(f.name for f in fields(BoxKalmanParams))


@dataclass(frozen=True)
class WorldModelConfig:
    """Tracker parameters (all scalars, so a node can declare each as a ROS parameter).

    min_hits: matched frames that confirm a TENTATIVE track (BIRTH).
    max_tentative_misses: consecutive misses after which a TENTATIVE track is deleted.
    max_ghost_age_s: seconds a confirmed track may stay unseen (a ghost) before it is LOST;
        4 s lets a 3-second occlusion survive with margin.
    ghost_age_per_hit_s: a ghost's lifetime also grows with the evidence behind it: it is
        ``min(max_ghost_age_s, max(recent_ghost_s, ghost_age_per_hit_s * hits))``, so a track
        confirmed by a few frames (glare, a brief reflection) does not haunt the scene for seconds
        (the hit-counter idea of Norfair).
    recent_ghost_s: ghosts unseen at most this long are associated with the VISIBLE tracks
        (stage 1) rather than in the re-identification stage.
    iou_gate: smallest IoU that counts as motion evidence (stages 1 and 3).
    gate_probability: the Mahalanobis gate is the chi² quantile of this probability, 4 dof.
    appearance_weight: weight of the appearance (cosine) cost against the motion cost, in [0, 1].
    reid_max_appearance_cost: largest cosine distance accepted to re-identify a ghost outside
        its Mahalanobis gate.
    reid_gate_scale: the loose motion gate of that re-identification, as a multiple of the
        Mahalanobis gate (on d²).
    embedding_momentum: weight of the old value in a track's appearance EMA, in [0, 1).
    publish_tentative: whether TENTATIVE tracks are in the published list.
    motion_model: the box filter the tracks (and their ghosts) are predicted with
        (:mod:`object_permanence.core.motion_models`).
    measurement_std_frac .. min_std_px: Kalman noise scales (see ``BoxKalmanParams``).

    Raises:
        ValueError: naming the field and its value, also for inconsistent combinations.
    """

    min_hits: int = 3
    max_tentative_misses: int = 1
    max_ghost_age_s: float = 4.0
    ghost_age_per_hit_s: float = 0.2
    recent_ghost_s: float = 0.5
    iou_gate: float = 0.1
    gate_probability: float = 0.99
    appearance_weight: float = 0.5
    reid_max_appearance_cost: float = 0.25
    reid_gate_scale: float = 16.0
    embedding_momentum: float = 0.9
    publish_tentative: bool = False
    motion_model: str = "cv"
    measurement_std_frac: float = BoxKalmanParams.measurement_std_frac
    accel_std_frac: float = BoxKalmanParams.accel_std_frac
    size_accel_std_frac: float = BoxKalmanParams.size_accel_std_frac
    init_velocity_std_frac: float = BoxKalmanParams.init_velocity_std_frac
    min_std_px: float = BoxKalmanParams.min_std_px

    def __post_init__(self) -> None:
        def check(name: str, ok: bool, what: str) -> None:
            if not ok:
                raise ValueError(f"{name} must be {what}, got {getattr(self, name)!r}")

        def is_int(value: object) -> bool:
            return isinstance(value, (int, np.integer)) and not isinstance(value, bool)

        def is_num(value: object) -> bool:
            return isinstance(value, (int, float, np.number)) and not isinstance(value, bool) \
                and math.isfinite(value)

        check("min_hits", is_int(self.min_hits) and self.min_hits >= 1, "an integer >= 1")
        check("max_tentative_misses", is_int(self.max_tentative_misses)
              and self.max_tentative_misses >= 0, "an integer >= 0")
        check("max_ghost_age_s", is_num(self.max_ghost_age_s) and self.max_ghost_age_s >= 0,
              "a finite number >= 0")
        check("ghost_age_per_hit_s", is_num(self.ghost_age_per_hit_s) and self.ghost_age_per_hit_s > 0,
              "a finite number > 0")
        check("recent_ghost_s", is_num(self.recent_ghost_s) and self.recent_ghost_s >= 0,
              "a finite number >= 0")
        check("iou_gate", is_num(self.iou_gate) and 0 < self.iou_gate <= 1, "in (0, 1]")
        check("gate_probability", is_num(self.gate_probability) and 0 < self.gate_probability < 1,
              "in (0, 1)")
        check("appearance_weight", is_num(self.appearance_weight)
              and 0 <= self.appearance_weight <= 1, "in [0, 1]")
        check("reid_max_appearance_cost", is_num(self.reid_max_appearance_cost)
              and 0 <= self.reid_max_appearance_cost <= 2, "in [0, 2]")
        check("reid_gate_scale", is_num(self.reid_gate_scale) and self.reid_gate_scale >= 1,
              "a finite number >= 1")
        check("embedding_momentum", is_num(self.embedding_momentum)
              and 0 <= self.embedding_momentum < 1, "in [0, 1)")
        check("publish_tentative", isinstance(self.publish_tentative, bool), "a bool")
        check("motion_model", self.motion_model in MOTION_MODELS, f"one of {tuple(MOTION_MODELS)}")
        for name in _KALMAN_FIELDS:
            check(name, is_num(getattr(self, name)) and getattr(self, name) > 0,
                  "a positive finite number")
        if self.recent_ghost_s > self.max_ghost_age_s:
            raise ValueError(f"recent_ghost_s ({self.recent_ghost_s!r}) must not exceed "
                             f"max_ghost_age_s ({self.max_ghost_age_s!r})")

    @property
    def kalman_params(self) -> BoxKalmanParams:
        """The Kalman noise scales of this configuration."""
        return BoxKalmanParams(**{name: getattr(self, name) for name in _KALMAN_FIELDS})

    @property
    def mahalanobis_gate(self) -> float:
        """Gate on the squared Mahalanobis distance: chi² quantile, 4 degrees of freedom."""
        return float(chi2.ppf(self.gate_probability, df=4))
