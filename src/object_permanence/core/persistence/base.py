"""The interface every persistence model implements (the min-hits baseline, the learned model)."""
from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

from object_permanence.core.persistence.history import TrackHistory
from object_permanence.core.types import PersistenceDecision


@runtime_checkable
class PersistenceModel(Protocol):
    """Scores every track as persistent (a real object) or transient (reflection, glare, false positive)."""

    name: str

    def decide(self, histories: Sequence[TrackHistory]) -> list[PersistenceDecision]:
        """One decision per history, in order, all in one batch."""
        ...
