"""Deterministic, offline explanations built from the decision's facts.

Used on its own when no language model is configured, and as the fallback when one fails, so
that every decision that reaches the explainer gets an explanation.
"""
from __future__ import annotations

from object_permanence.core.explain.base import Explanation, ExplanationRequest

# Below this mean detection confidence a short-lived track reads as a weak, nuisance-like detection.
LOW_CONFIDENCE = 0.5
# Below this fraction of its life seen, a track reads as flickering.
INTERMITTENT_FRACTION = 0.5


def _frames(n: int) -> str:
    return f"{n} frame" if n == 1 else f"{n} frames"


class TemplateExplainer:
    """Writes 1-3 sentences: evidence and score; state (kept) or likely cause (filtered); attention."""

    source = "template"

    def explain(self, request: ExplanationRequest) -> Explanation:
        """Explain one decision; never raises for a valid request."""
        sentences = [self._evidence(request), self._state(request) if request.kept else self._cause(request)]
        focus = self._focus(request)
        if focus:
            sentences.append(focus)
        return Explanation(request=request, text=" ".join(s for s in sentences if s), source=self.source)

    @staticmethod
    def _evidence(r: ExplanationRequest) -> str:
        subject = f"{r.class_name}, {r.camera} camera" if r.class_name else f"{r.camera} camera"
        verdict = "Kept" if r.kept else "Filtered"
        if r.hits <= 1:
            seen = f"seen in only {_frames(r.hits)}"
        else:
            seen = f"seen in {r.hits} of {_frames(max(r.age, r.hits))}"
        return (
            f"{verdict} track {r.track_id} ({subject}): {seen} with mean confidence {r.mean_score:.2f}; "
            f"the filter scored it {r.score:.2f}."
        )

    @staticmethod
    def _state(r: ExplanationRequest) -> str:
        if r.state == "OCCLUDED":
            return (
                f"It is currently hidden (ghost for {_frames(r.frames_since_seen)}) "
                "and is predicted to reappear."
            )
        if r.state == "TENTATIVE":
            return "It is still tentative, waiting for more detections to be confirmed."
        if r.state == "LOST":
            return f"It has now been lost after {_frames(r.frames_since_seen)} unseen."
        return ""

    @staticmethod
    def _cause(r: ExplanationRequest) -> str:
        if r.hits <= 1:
            return "Most likely a single-frame false positive or glare."
        if r.mean_score < LOW_CONFIDENCE:
            return "Its detections were weak, as is typical of a reflection or glare."
        if r.hits < INTERMITTENT_FRACTION * max(r.age, r.hits):
            return "It appeared only intermittently, as flicker or a reflection does."
        return "Its appearance and motion over time did not look like a persistent object."

    @staticmethod
    def _focus(r: ExplanationRequest) -> str:
        focus = r.attention_focus()
        if focus is None:
            return ""
        start, end = focus
        frames = f"frame {start}" if start == end else f"frames {start}-{end}"
        return f"The decision weighed {frames} of {r.attention.size} most (oldest first)."
