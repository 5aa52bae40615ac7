"""Persistence filtering: is a track a real persistent object or a transient nuisance?

torch-free exports only; the learned model lives in ``model`` and ``transformer_filter`` (torch),
the gradient-boosting baseline in ``classical`` (scikit-learn).
"""
from object_permanence.core.persistence.base import PersistenceModel
from object_permanence.core.persistence.baseline import MinHitsBaseline, MinHitsConfig
from object_permanence.core.persistence.existence import BayesianExistence, ExistenceConfig
from object_permanence.core.persistence.features import CONTEXT_FEATURES, StereoConfig
from object_permanence.core.persistence.filter import FilterResult, PersistenceFilter, step_stereo
from object_permanence.core.persistence.history import (
    FEATURES,
    HISTORY_LEN,
    N_FEATURES,
    TRACK_FEATURES,
    TrackHistory,
    track_features,
)

__all__ = ["PersistenceModel", "MinHitsBaseline", "MinHitsConfig", "BayesianExistence", "ExistenceConfig",
           "CONTEXT_FEATURES", "StereoConfig", "FilterResult", "PersistenceFilter", "step_stereo", "FEATURES", "HISTORY_LEN",
           "N_FEATURES", "TRACK_FEATURES", "TrackHistory", "track_features"]
