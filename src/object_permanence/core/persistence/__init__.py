"""Persistence filtering: is a track a real persistent object or a transient nuisance?"""
from object_permanence.core.persistence.base import PersistenceModel
from object_permanence.core.persistence.baseline import MinHitsBaseline, MinHitsConfig
from object_permanence.core.persistence.filter import FilterResult, PersistenceFilter
from object_permanence.core.persistence.history import FEATURES, N_FEATURES, TrackHistory, track_features

__all__ = ["PersistenceModel", "MinHitsBaseline", "MinHitsConfig", "FilterResult", "PersistenceFilter",
           "FEATURES", "N_FEATURES", "TrackHistory", "track_features"]
