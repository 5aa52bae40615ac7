"""Deterministic, offline explanations built from the decision's facts.

Used on its own when no language model is configured, and as the fallback when one fails or
writes something the facts do not support, so that every decision that reaches the explainer
gets an explanation. The text is built from :meth:`ExplanationRequest.facts` alone (the same facts
a language model is given), so every number and frame index in it is one of those facts.
"""
from __future__ import annotations

from typing import Any

from object_permanence.core.explain.base import Explanation, ExplanationRequest
from object_permanence.core.persistence.evidence import attention_sentence

# Below this mean detection confidence a short-lived track reads as a weak, nuisance-like detection.
LOW_CONFIDENCE = 0.5
# Below this fraction of its life seen, a track reads as flickering.
INTERMITTENT_FRACTION = 0.5
# At least this fraction of its matched frames without a partner in the other view reads as stereo-inconsistent.
MISMATCH_FRACTION = 0.5


def _frames(n: int) -> str:
    return f"{n} frame" if n == 1 else f"{n} frames"


def explanation_text(facts: dict[str, Any]) -> str:
    """2-3 sentences from the facts of :meth:`ExplanationRequest.facts`: verdict, score and
    evidence; state (kept) or likely cause (filtered); the frames the attention weighed most and
    what happened in them, or that no attention model ran."""
    kept = facts["decision"] == "kept"
    sentences = [_evidence(facts), _state(facts) if kept else _cause(facts), attention_sentence(facts)]
    return " ".join(s for s in sentences if s)


class TemplateExplainer:
    """Writes :func:`explanation_text` of each request's facts."""

    source = "template"

    def explain(self, request: ExplanationRequest) -> Explanation:
        """Explain one decision; never raises for a valid request."""
        return Explanation(request=request, text=explanation_text(request.facts()), source=self.source)


def _evidence(f: dict[str, Any]) -> str:
    subject = f"{f['class_name']}, {f['camera']} camera" if f["class_name"] else f"{f['camera']} camera"
    verdict = "Kept" if f["decision"] == "kept" else "Filtered"
    hits, age = f["hits"], f["age_frames"]
    seen = f"seen in only {_frames(hits)}" if hits <= 1 else f"seen in {hits} of {_frames(max(age, hits))}"
    return f"{verdict} track {f['track_id']} ({subject}): score {f['score']:.2f}, {seen} with mean confidence " \
           f"{f['mean_confidence']:.2f}."


def _state(f: dict[str, Any]) -> str:
    sticky = " It stays kept because it was judged persistent earlier (sticky)." if f["sticky"] else ""
    if f["state"] == "OCCLUDED":
        return (f"It is currently hidden (ghost for {_frames(f['frames_since_seen'])}) and is predicted to "
                f"reappear.{sticky}")
    if f["state"] == "TENTATIVE":
        return "It is still tentative, waiting for more detections to be confirmed."
    if f["state"] == "LOST":
        return f"It has now been lost after {_frames(f['frames_since_seen'])} unseen."
    return sticky.strip()


def _cause(f: dict[str, Any]) -> str:
    counts = f.get("event_counts") or {}
    matched = counts.get("matched", 0)
    if f["hits"] <= 1:
        return "Most likely a single-frame false positive or glare."
    if matched >= 2 and counts.get("stereo_mismatch", 0) >= MISMATCH_FRACTION * matched:
        return f"It seldom had a partner in the {f['other_view']} view, as a reflection or glare does."
    if f["mean_confidence"] < LOW_CONFIDENCE:
        return "Its detections were weak, as is typical of a reflection or glare."
    if f["hits"] < INTERMITTENT_FRACTION * max(f["age_frames"], f["hits"]):
        return "It appeared only intermittently, as flicker or a reflection does."
    return "Its appearance and motion over time did not look like a persistent object."
