"""The facts behind one persistence decision, read from the model's attention, and a faithfulness
check for any text that claims to explain it.

An explanation must be grounded: the score, the frames the attention weighted most and what
happened in them (matched or not, occluded, a stereo mismatch, a confidence dip), and the runner-up
evidence. :func:`decision_facts` collects exactly those facts from a history and its decision;
:func:`template_text` words them; :func:`ungrounded_numbers` lists every number of a text (the
template's or a language model's) that the facts do not contain, so an invented number is caught.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import numpy as np

from object_permanence.core.persistence.history import FEATURES

_COL = {name: i for i, name in enumerate(FEATURES)}
#: A matched frame whose confidence is this far below the track's median matched confidence is a dip.
DIP = 0.15
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?")


def frame_events(rows: np.ndarray) -> list[list[str]]:
    """Per (T, F) history row, what happened in that frame: ``matched`` or ``unmatched``,
    ``occluded``, ``stereo_mismatch`` (matched, yet no partner in the other view), ``confidence_dip``."""
    matched = rows[:, _COL["matched"]] > 0.5
    scores = rows[:, _COL["det_score"]]
    median = float(np.median(scores[matched])) if matched.any() else 0.0
    events = []
    for k in range(len(rows)):  # a handful of rows, each turned into words
        e = ["matched" if matched[k] else "unmatched"]
        if rows[k, _COL["occluded"]] > 0.5:
            e.append("occluded")
        if matched[k] and rows[k, _COL["stereo_match"]] < 0.5:
            e.append("stereo_mismatch")
        if matched[k] and scores[k] < median - DIP:
            e.append("confidence_dip")
        events.append(e)
    return events


def decision_facts(rows: np.ndarray, attention: np.ndarray, score: float, keep: bool,
                   top_k: int = 3) -> dict[str, Any]:
    """The facts of one decision. rows: (T, F) the history the decision used, oldest first;
    attention: (T,) its weights. Frames are numbered 1..T, oldest first.

    Returns ``score`` (2 decimals), ``decision``, ``frames_total``, ``top_frames`` (the ``top_k``
    highest weights: frame, weight (2 decimals), confidence (2 decimals, matched frames), events),
    ``runner_up`` (the highest-weighted frame outside the top whose events differ from the top
    frame's, or None) and counts of each event over the history.

    Raises:
        ValueError: rows and attention of different lengths, or no frames.
    """
    rows, attention = np.asarray(rows, np.float32), np.asarray(attention, np.float64)
    if len(rows) == 0 or len(rows) != len(attention):
        raise ValueError(f"rows ({len(rows)}) and attention ({len(attention)}) must have the same length >= 1")
    events = frame_events(rows)
    order = np.argsort(-attention, kind="stable")

    def frame(k: int) -> dict[str, Any]:
        f = {"frame": int(k) + 1, "weight": round(float(attention[k]), 2), "events": events[k]}
        if "matched" in events[k]:
            f["confidence"] = round(float(rows[k, _COL["det_score"]]), 2)
        return f

    top = [frame(k) for k in order[:top_k]]
    rest = [k for k in order[top_k:] if events[k] != events[order[0]]]
    counts: dict[str, int] = {}
    for e in events:
        for name in e:
            counts[name] = counts.get(name, 0) + 1
    return {"score": round(float(score), 2), "decision": "kept" if keep else "filtered",
            "frames_total": len(rows), "top_frames": top, "runner_up": frame(rest[0]) if rest else None,
            "event_counts": counts}


_WORDS = {"matched": "a matched detection", "unmatched": "no detection", "occluded": "hidden",
          "stereo_mismatch": "no partner in the other view", "confidence_dip": "a confidence dip"}


def _describe(f: dict[str, Any]) -> str:
    what = ", ".join(_WORDS[e] for e in f["events"])
    conf = f" at confidence {f['confidence']:.2f}" if "confidence" in f else ""
    return f"frame {f['frame']} (weight {f['weight']:.2f}: {what}{conf})"


def template_text(facts: dict[str, Any]) -> str:
    """Two or three sentences using only the numbers of ``facts``."""
    top = facts["top_frames"]
    text = (f"The track was {facts['decision']} with score {facts['score']:.2f} over {facts['frames_total']} "
            f"frames. The attention weighted most {'; '.join(_describe(f) for f in top)}.")
    if facts["runner_up"] is not None:
        text += f" Runner-up evidence: {_describe(facts['runner_up'])}."
    return text


def _numbers(value: Any) -> Iterator[float]:
    if isinstance(value, bool):
        return
    if isinstance(value, (int, float, np.integer, np.floating)):
        yield float(value)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _numbers(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _numbers(v)


def ungrounded_numbers(text: str, facts: dict[str, Any]) -> list[str]:
    """The numbers written in ``text`` that are not numbers of ``facts`` (compared at the text's
    own precision: "0.8" matches a fact 0.8 or 0.80). Empty when the text is faithful."""
    known = list(_numbers(facts))
    out = []
    for token in _NUMBER.findall(text):
        decimals = len(token.split(".")[1]) if "." in token else 0
        v = float(token)
        if not any(abs(round(k, decimals) - v) < 10 ** (-decimals) / 2 for k in known):
            out.append(token)
    return out
