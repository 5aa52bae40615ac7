"""What an explainer is given, what it returns, and the interface every explainer implements.

An explanation turns one persistence-filter decision (score, keep, attention over the track's
frames) plus the track's history into a sentence or three of plain language. Explainers are
never in the control loop; they run in :class:`~object_permanence.core.explain.worker.ExplainerWorker`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from object_permanence.core.types import PersistenceDecision, Track

CAMERAS = ("left", "right")

# Attention counts as "focused" when its largest weight is at least this many times the
# uniform weight 1/T; below that no frame stands out and nothing is said about frames.
FOCUS_RATIO = 1.5
# Frames whose weight is at least this fraction of the peak weight belong to the peak run.
PEAK_FRACTION = 0.5


class ExplainerError(RuntimeError):
    """An explainer could not produce an explanation (service down, timeout, empty answer)."""


@dataclass
class ExplanationRequest:
    """The facts about one decision on one 2D track, as the explainer sees them.

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
    context: opaque data of the caller that travels with the request to its Explanation (the
        node puts the decision's ROS header here, so that no table shared between threads
        is needed); explainers never read it.

    Raises:
        ValueError: on an unknown camera, a score or mean_score outside [0, 1], a non-1-D or negative attention,
            negative counters or a box that is not 4 finite numbers.
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

    @classmethod
    def from_decision(
        cls,
        decision: PersistenceDecision,
        track: Track,
        camera: str,
        stamp: float,
        mean_score: float | None = None,
        context: Any = None,
    ) -> ExplanationRequest:
        """Build a request from a filter decision and the track it was made on.

        mean_score defaults to ``track.score`` when the caller has no mean over the hits;
        context is carried as it is (see the class).
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
            context=context,
        )

    def attention_focus(self) -> tuple[int, int] | None:
        """The run of frames the decision weighed most, 1-based and inclusive, oldest first.

        None when the attention is (near) uniform, i.e. its peak is below ``FOCUS_RATIO / T``,
        or when there are fewer than 2 frames. The run is the contiguous stretch around the
        peak frame whose weights are at least ``PEAK_FRACTION`` of the peak.
        """
        w = self.attention
        if w.size < 2 or w.sum() <= 0.0:
            return None
        w = w / w.sum()
        peak = int(np.argmax(w))
        if w[peak] < FOCUS_RATIO / w.size:
            return None
        low = w < PEAK_FRACTION * w[peak]
        before = np.flatnonzero(low[:peak])
        after = np.flatnonzero(low[peak + 1 :])
        start = int(before[-1]) + 1 if before.size else 0
        end = peak + int(after[0]) if after.size else w.size - 1
        return start + 1, end + 1

    def facts(self) -> dict[str, Any]:
        """JSON-serialisable facts (rounded for readability) for a language model prompt."""
        focus = self.attention_focus()
        return {
            "track_id": self.track_id,
            "camera": self.camera,
            "decision": "kept" if self.kept else "filtered",
            "persistence_score": round(self.score, 3),
            "filter_reason": self.reason,
            "frames_observed": self.frames_observed,
            "attention_focus_frames": None if focus is None else list(focus),
            "attention_frames_total": int(self.attention.size),
            "state": self.state,
            "class_name": self.class_name,
            "hits": self.hits,
            "age_frames": self.age,
            "frames_since_seen": self.frames_since_seen,
            "mean_detection_score": round(self.mean_score, 3),
            "box_cx_cy_w_h_px": [round(float(v), 1) for v in self.box],
        }


@dataclass
class Explanation:
    """A finished explanation: the request it answers, the text, and who wrote it.

    source: ``"template"`` or ``"llm:<model>"``.
    """

    request: ExplanationRequest
    text: str
    source: str


@runtime_checkable
class Explainer(Protocol):
    """Anything that turns a request into an explanation."""

    def explain(self, request: ExplanationRequest) -> Explanation:
        """Explain one decision.

        Raises:
            ExplainerError: when no explanation could be produced.
        """
        ...
