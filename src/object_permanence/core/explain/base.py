"""What an explainer is given, what it returns, and the interface every explainer implements.

An explanation turns one persistence-filter decision (score, keep, attention over the track's
frames) plus the track's history into a sentence or three of plain language. Explainers are
never in the control loop; they run in :class:`~object_permanence.core.explain.worker.ExplainerWorker`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from object_permanence.core.persistence import evidence
from object_permanence.core.types import PersistenceDecision, Track

CAMERAS = ("left", "right")


class ExplainerError(RuntimeError):
    """An explainer could not produce an explanation (service down, timeout, empty answer)."""


@dataclass
class ExplanationRequest:
    """The facts about one decision on one 2D track, as the explainer sees them; :meth:`facts`
    gives them to every explainer alike (the template words them, a language model is prompted
    with them, and either's text is checked against them).

    stamp: seconds, the header stamp of the decision (never the wall clock).
    camera: "left" or "right".
    score: persistence score in [0, 1]; kept: the filter's verdict.
    attention: (T,) float64 per-frame weights over the frames the decision used, oldest first.
    frames_observed: frames of history the decision used.
    reason: the filter's short machine reason, e.g. ``"min_hits:3/3 mean_score:0.82>=0.50"``.
    state: lifecycle state name of the track ("TENTATIVE", "VISIBLE", "OCCLUDED", "LOST").
    hits: frames with a matched detection; age: frames since birth;
    frames_since_seen: frames since the last matched detection (> 0 for a ghost).
    mean_score: mean detection confidence over the track's hits, [0, 1].
    box: (4,) float64 ``cx, cy, w, h`` in pixels.
    model: the persistence model that decided (the decision array's ``model``, e.g.
        ``"transformer"``); its attention is a learned model's only when it is one of
        :data:`evidence.ATTENTION_MODELS`, otherwise no attention model ran.
    frame_flags: (T,) uint8 ``evidence.FRAME_*`` bits per frame of ``attention`` (matched,
        occluded, stereo mismatch, confidence dip), None when not recorded; frame_scores: (T,)
        float32 detection confidence per frame, None when not recorded.
    context: opaque data of the caller that travels with the request to its Explanation (the
        node puts the decision's ROS header here, so that no table shared between threads
        is needed); explainers never read it.

    Raises:
        ValueError: on an unknown camera, a score or mean_score outside [0, 1], a non-1-D or negative attention,
            negative counters, a box that is not 4 finite numbers, frame flags with unknown bits or frame
            scores outside [0, 1], or either of another length than attention.
    """

    stamp: float
    camera: str
    track_id: int
    kept: bool
    score: float
    attention: np.ndarray
    frames_observed: int
    reason: str
    state: str
    class_name: str
    hits: int
    age: int
    frames_since_seen: int
    mean_score: float
    box: np.ndarray
    model: str = ""
    frame_flags: np.ndarray | None = None
    frame_scores: np.ndarray | None = None
    context: Any = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.camera not in CAMERAS:
            raise ValueError(f"camera must be one of {CAMERAS}, got {self.camera!r}")
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(f"score must be in [0, 1], got {self.score!r}")
        if not 0.0 <= self.mean_score <= 1.0:
            raise ValueError(f"mean_score must be in [0, 1], got {self.mean_score!r}")
        self.attention = np.asarray(self.attention, dtype=np.float64)
        if self.attention.ndim != 1 or not np.all(np.isfinite(self.attention)) or np.any(self.attention < 0):
            raise ValueError(f"attention must be a 1-D array of finite non-negative weights, got {self.attention!r}")
        for name in ("frames_observed", "hits", "age", "frames_since_seen"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        self.box = np.asarray(self.box, dtype=np.float64)
        if self.box.shape != (4,) or not np.all(np.isfinite(self.box)):
            raise ValueError(f"box must be 4 finite numbers (cx, cy, w, h), got {self.box!r}")
        n = self.attention.size
        if self.frame_flags is not None:
            flags = np.asarray(self.frame_flags)
            if flags.shape != (n,) or np.any(flags < 0) or np.any(flags > evidence.FRAME_ALL):
                raise ValueError(f"frame_flags must be {n} values of FRAME_* bits (one per attention weight), "
                                 f"got {self.frame_flags!r}")
            self.frame_flags = flags.astype(np.uint8)
        if self.frame_scores is not None:
            scores = np.asarray(self.frame_scores, dtype=np.float32)
            if scores.shape != (n,) or not np.all((scores >= 0.0) & (scores <= 1.0)):
                raise ValueError(f"frame_scores must be {n} confidences in [0, 1] (one per attention weight), "
                                 f"got {self.frame_scores!r}")
            self.frame_scores = scores

    @classmethod
    def from_decision(
        cls,
        decision: PersistenceDecision,
        track: Track,
        camera: str,
        stamp: float,
        mean_score: float | None = None,
        context: Any = None,
        model: str = "",
    ) -> ExplanationRequest:
        """Build a request from a filter decision and the track it was made on.

        mean_score defaults to ``track.score`` when the caller has no mean over the hits;
        model names the persistence model that decided; context is carried as it is (see the class).
        """
        return cls(
            stamp=float(stamp),
            camera=camera,
            track_id=int(decision.track_id),
            kept=bool(decision.keep),
            score=float(decision.score),
            attention=decision.attention,
            frames_observed=int(decision.frames_observed),
            reason=decision.reason,
            state=track.state.name,
            class_name=track.class_name,
            hits=int(track.hits),
            age=int(track.age),
            frames_since_seen=int(track.frames_since_seen),
            mean_score=float(track.score if mean_score is None else mean_score),
            box=track.box,
            model=model,
            frame_flags=decision.frame_flags,
            frame_scores=decision.frame_scores,
            context=context,
        )

    @property
    def attention_model(self) -> bool:
        """Whether the attention is a learned model's (see :data:`evidence.ATTENTION_MODELS`)."""
        return self.model in evidence.ATTENTION_MODELS

    def attention_focus(self) -> tuple[int, int] | None:
        """The run of frames the decision weighed most, 1-based and inclusive, oldest first
        (:func:`evidence.attention_focus`); None when no attention model ran or nothing stands out."""
        return evidence.attention_focus(self.attention) if self.attention_model else None

    def facts(self) -> dict[str, Any]:
        """The facts of this decision, JSON-serialisable and rounded as they are to be written:
        the track (id, camera, class, state, hits, age, frames since seen, mean confidence), the
        persistence model and whether it has attention, and :func:`evidence.evidence_facts` (score,
        decision, the frames the attention weighted most and what happened in them, the runner-up
        evidence, event counts). Every explainer words these and only these."""
        return {
            "track_id": self.track_id,
            "camera": self.camera,
            "other_view": "right" if self.camera == "left" else "left",
            "class_name": self.class_name,
            "state": self.state,
            "persistence_model": self.model,
            "sticky": "sticky" in self.reason.split(),
            "hits": self.hits,
            "age_frames": self.age,
            "frames_since_seen": self.frames_since_seen,
            "mean_confidence": round(self.mean_score, 2),
            **evidence.evidence_facts(self.attention, self.score, self.kept, self.frame_flags, self.frame_scores,
                                      self.attention_model),
        }


@dataclass
class Explanation:
    """A finished explanation: the request it answers, the text, and who wrote it.

    source: ``"template"``, ``"llm:<model>"``, or ``"template (llm:<model> reply rejected:
    ungrounded <what>)"`` when the language model's reply held a number or frame not in the facts.
    rejected_reply: that rejected reply, else None.
    """

    request: ExplanationRequest
    text: str
    source: str
    rejected_reply: str | None = None


@runtime_checkable
class Explainer(Protocol):
    """Anything that turns a request into an explanation."""

    def explain(self, request: ExplanationRequest) -> Explanation:
        """Explain one decision.

        Raises:
            ExplainerError: when no explanation could be produced.
        """
        ...
