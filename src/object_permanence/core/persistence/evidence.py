"""The facts behind one persistence decision, read from the model's attention, their wording, and a
faithfulness check for any text that claims to explain them.

An explanation must be grounded: the score, the frames the attention weighted most and what
happened in them (matched or not, occluded, a stereo mismatch, a confidence dip), and the runner-up
evidence. What happened in each frame is recorded where the history is at hand, in the persistence
filter, as one bit field per frame (:func:`frame_evidence`, :class:`WithFrameEvidence`), so that it
can travel in the decision message to the explainer. :func:`evidence_facts` collects the facts from
those flags and the attention; :func:`attention_sentence` and :func:`template_text` word them; and
:func:`ungrounded` lists every number and frame index of a text (the template's or a language
model's) that the facts do not contain, so an invented number is caught.
"""
from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from object_permanence.core.persistence.base import PersistenceModel
from object_permanence.core.persistence.history import FEATURES, TrackHistory, pad_histories
from object_permanence.core.types import PersistenceDecision

_COL = {name: i for i, name in enumerate(FEATURES)}
#: A matched frame whose confidence is this far below the track's median matched confidence is a dip.
DIP = 0.15

# Bits of a frame's flags (PersistenceDecision.msg has the same values as FRAME_* constants).
FRAME_MATCHED = 1            # a detection was matched in this frame
FRAME_OCCLUDED = 2           # the track was a ghost (hidden) in this frame
FRAME_STEREO_MISMATCH = 4    # matched, yet the other view had no consistent partner
FRAME_CONFIDENCE_DIP = 8     # matched at a confidence DIP below the median of the matched frames
FRAME_ALL = FRAME_MATCHED | FRAME_OCCLUDED | FRAME_STEREO_MISMATCH | FRAME_CONFIDENCE_DIP
#: Event names of the bits beyond matched / unmatched, in the order an event list names them.
EVENT_BITS = (("occluded", FRAME_OCCLUDED), ("stereo_mismatch", FRAME_STEREO_MISMATCH),
              ("confidence_dip", FRAME_CONFIDENCE_DIP))

#: Persistence models whose attention is a learned model's pooling weights. The others report
#: uniform weights (min-hits, gradient boosting) or a rule's shares: no attention model ran.
ATTENTION_MODELS = frozenset({"transformer"})
#: Attention counts as focused when its largest weight is at least this many times the uniform
#: weight 1/T; below that no frame stands out.
FOCUS_RATIO = 1.5
#: Frames whose weight is at least this fraction of the peak weight belong to the peak run.
PEAK_FRACTION = 0.5
#: Frames of the highest weights that the facts list.
TOP_K = 3

_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?")
# "frame 4", "frames 4-6", "frames 2, 4 and 6", "frames 4 to 6": every number is a frame index
_FRAME_REF = re.compile(r"\bframes?\s+(\d+(?:\s*(?:,|-|–|—|to|and|or|through)\s*(?:and\s+)?\d+)*)", re.IGNORECASE)


# --- what happened in each frame ------------------------------------------------------------------


def frame_evidence(histories: Sequence[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per (T_i, F) history (oldest first): ``(flags, scores)``, (T_i,) uint8 bits of ``FRAME_*``
    and (T_i,) float32 detection confidence (0 when unmatched). One vectorised pass over the
    padded batch: the persistence filter calls it for every track every frame."""
    if not histories:
        return []
    batch, lengths = pad_histories([np.asarray(h, np.float32) for h in histories])   # (B, T, F), (B,)
    n_frames = batch.shape[1]
    if n_frames == 0:
        return [(np.zeros(0, np.uint8), np.zeros(0, np.float32)) for _ in histories]
    valid = np.arange(n_frames)[None, :] < lengths[:, None]
    matched = (batch[..., _COL["matched"]] > 0.5) & valid
    scores = np.where(matched, batch[..., _COL["det_score"]], 0.0).astype(np.float32)
    # median of each history's matched confidences: sort them first (unmatched last, as +inf)
    ranked = np.sort(np.where(matched, scores, np.inf), axis=1)
    k = matched.sum(axis=1)
    lo = np.clip((k - 1) // 2, 0, n_frames - 1)[:, None]
    hi = np.clip(k // 2, 0, n_frames - 1)[:, None]
    median = np.where(k > 0, 0.5 * (np.take_along_axis(ranked, lo, 1) + np.take_along_axis(ranked, hi, 1))[:, 0],
                      0.0)                                                         # m = (s[(k-1)//2] + s[k//2]) / 2
    dip = matched & (scores < median[:, None] - DIP)                             # s_t < m - DIP
    mismatch = matched & (batch[..., _COL["stereo_match"]] < 0.5)
    occluded = (batch[..., _COL["occluded"]] > 0.5) & valid
    flags = (matched * FRAME_MATCHED | occluded * FRAME_OCCLUDED | mismatch * FRAME_STEREO_MISMATCH
             | dip * FRAME_CONFIDENCE_DIP).astype(np.uint8)
    return [(flags[i, :n], scores[i, :n]) for i, n in enumerate(lengths)]


def frame_flags(rows: np.ndarray) -> np.ndarray:
    """(T,) uint8 ``FRAME_*`` bits of one (T, F) history."""
    return frame_evidence([rows])[0][0]


def events_of(flags: np.ndarray) -> list[list[str]]:
    """Per frame flag, its events: ``matched`` or ``unmatched``, then ``occluded``,
    ``stereo_mismatch``, ``confidence_dip`` where set."""
    flags = np.asarray(flags, np.uint8)
    return [["matched" if f & FRAME_MATCHED else "unmatched"] + [name for name, bit in EVENT_BITS if f & bit]
            for f in flags.tolist()]  # a handful of frames, each turned into words


def frame_events(rows: np.ndarray) -> list[list[str]]:
    """Per (T, F) history row, what happened in that frame (see :func:`events_of`)."""
    return events_of(frame_flags(rows))


def event_counts(flags: np.ndarray) -> dict[str, int]:
    """How many frames had each event (events that never happened left out)."""
    flags = np.asarray(flags, np.uint8)
    counts = {"matched": int(np.count_nonzero(flags & FRAME_MATCHED)),
              "unmatched": int(np.count_nonzero(~flags & FRAME_MATCHED))}
    counts.update({name: int(np.count_nonzero(flags & bit)) for name, bit in EVENT_BITS})
    return {name: n for name, n in counts.items() if n}


class WithFrameEvidence:
    """A :class:`base.PersistenceModel` that fills ``frame_flags`` and ``frame_scores`` of the
    decisions of the model it wraps, aligned with each decision's attention (its newest frames),
    from the same histories the model scored."""

    def __init__(self, model: PersistenceModel) -> None:
        self.model = model
        self.name = model.name

    def decide(self, histories: Sequence[TrackHistory]) -> list[PersistenceDecision]:
        decisions = self.model.decide(histories)
        rows = []
        for hist, d in zip(histories, decisions):
            x = hist.features()
            rows.append(x[max(len(x) - len(d.attention), 0):])    # the frames the attention covers
        for d, (flags, scores), x in zip(decisions, frame_evidence(rows), rows):
            if len(x) == len(d.attention):
                d.frame_flags, d.frame_scores = flags, scores
        return decisions


# --- the facts of a decision -----------------------------------------------------------------------


def attention_focus(attention: np.ndarray) -> tuple[int, int] | None:
    """The run of frames the attention weighed most, 1-based and inclusive, oldest first.

    None when the attention is (near) uniform, i.e. its peak is below ``FOCUS_RATIO / T``, or
    there are fewer than 2 frames. The run is the contiguous stretch around the peak frame whose
    weights are at least ``PEAK_FRACTION`` of the peak.
    """
    w = np.asarray(attention, np.float64)
    if w.size < 2 or w.sum() <= 0.0:
        return None
    w = w / w.sum()
    peak = int(np.argmax(w))
    if w[peak] < FOCUS_RATIO / w.size:
        return None
    low = w < PEAK_FRACTION * w[peak]
    before = np.flatnonzero(low[:peak])
    after = np.flatnonzero(low[peak + 1:])
    start = int(before[-1]) + 1 if before.size else 0
    end = peak + int(after[0]) if after.size else w.size - 1
    return start + 1, end + 1


def evidence_facts(attention: np.ndarray, score: float, keep: bool, flags: np.ndarray | None = None,
                   scores: np.ndarray | None = None, attention_model: bool = True,
                   top_k: int = TOP_K) -> dict[str, Any]:
    """The facts of one decision. attention: (T,) weights over the frames it used, oldest first;
    flags / scores: (T,) ``FRAME_*`` bits and detection confidences of those frames, or None when
    not recorded; attention_model: whether the weights are a learned model's attention. Frames are
    numbered 1..T, oldest first.

    Returns ``score`` (2 decimals), ``decision``, ``frames_total``, ``attention_model``,
    ``attention_focus_frames`` ([first, last] of the peak run, or None when nothing stands out),
    ``top_frames`` (the ``top_k`` highest weights: frame, weight (2 decimals), events and, on
    matched frames, confidence (2 decimals); none without an attention model), ``runner_up`` (the
    highest-weighted frame outside the top whose events differ from the top frame's, or None) and
    ``event_counts`` (frames with each event, None when the flags are unknown).

    Raises:
        ValueError: flags or scores of another length than attention, top_k < 1.
    """
    attention = np.asarray(attention, np.float64)
    n = len(attention)
    for name, value in (("flags", flags), ("scores", scores)):
        if value is not None and len(value) != n:
            raise ValueError(f"{name} ({len(value)}) must have the length of attention ({n})")
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    events = events_of(flags) if flags is not None else None

    def frame(k: int) -> dict[str, Any]:
        f: dict[str, Any] = {"frame": int(k) + 1, "weight": round(float(attention[k]), 2)}
        if events is not None:
            f["events"] = events[k]
            if events[k][0] == "matched" and scores is not None:
                f["confidence"] = round(float(scores[k]), 2)
        return f

    top, runner_up, focus = [], None, None
    if attention_model and n:
        order = np.argsort(-attention, kind="stable")
        top = [frame(k) for k in order[:top_k]]
        if events is not None:
            rest = [k for k in order[top_k:] if events[k] != events[order[0]]]
            runner_up = frame(rest[0]) if rest else None
        focus = attention_focus(attention)
    return {"score": round(float(score), 2), "decision": "kept" if keep else "filtered", "frames_total": n,
            "attention_model": bool(attention_model), "attention_focus_frames": None if focus is None else list(focus),
            "top_frames": top, "runner_up": runner_up,
            "event_counts": event_counts(flags) if flags is not None else None}


def decision_facts(rows: np.ndarray, attention: np.ndarray, score: float, keep: bool,
                   top_k: int = TOP_K) -> dict[str, Any]:
    """:func:`evidence_facts` of a (T, F) history (oldest first) and its (T,) attention.

    Raises:
        ValueError: rows and attention of different lengths, or no frames.
    """
    rows, attention = np.asarray(rows, np.float32), np.asarray(attention, np.float64)
    if len(rows) == 0 or len(rows) != len(attention):
        raise ValueError(f"rows ({len(rows)}) and attention ({len(attention)}) must have the same length >= 1")
    flags, scores = frame_evidence([rows])[0]
    return evidence_facts(attention, score, keep, flags, scores, True, top_k)


# --- the facts in words ----------------------------------------------------------------------------


def _view(facts: dict[str, Any]) -> str:
    other = facts.get("other_view")
    return f"the {other} view" if other else "the other view"


def _frame_label(first: int, last: int) -> str:
    return f"frame {first}" if first == last else f"frames {first}-{last}"


def _details(group: list[dict[str, Any]], view: str) -> str:
    """What happened in a run of frames with the same events, e.g. "matched at steady confidence
    0.90 to 0.93, with a partner in the right view" ("" when the events are unknown)."""
    events = group[0].get("events")
    if events is None:
        return ""
    if events[0] == "unmatched":
        return "not detected, hidden as a ghost" if "occluded" in events else "not detected"
    conf = sorted(f["confidence"] for f in group if "confidence" in f)
    level = "" if not conf else f" {conf[0]:.2f}" if conf[0] == conf[-1] else f" {conf[0]:.2f} to {conf[-1]:.2f}"
    text = f"matched at {'a dipped confidence of' if 'confidence_dip' in events else 'steady confidence'}{level}"
    text += f", {'without' if 'stereo_mismatch' in events else 'with'} a partner in {view}"
    return text + (", yet hidden" if "occluded" in events else "")


def _groups(frames: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Frames in index order, cut into runs of consecutive indices with the same events."""
    out: list[list[dict[str, Any]]] = []
    for f in sorted(frames, key=lambda f: f["frame"]):
        if out and f["frame"] == out[-1][-1]["frame"] + 1 and f.get("events") == out[-1][-1].get("events"):
            out[-1].append(f)
        else:
            out.append([f])
    return out


def _describe(group: list[dict[str, Any]], view: str) -> str:
    """ "frames 4-6 (matched with ...)", or the bare label when the events are unknown."""
    details = _details(group, view)
    label = _frame_label(group[0]["frame"], group[-1]["frame"])
    return f"{label} ({details})" if details else label


def _counts_clause(facts: dict[str, Any]) -> str:
    """ "over the 30 frames it was matched in 24, hidden in 6 and without a partner in the right
    view in 3" ("" when the flags are unknown)."""
    counts = facts.get("event_counts")
    if not counts:
        return ""
    words = (("matched", "matched in"), ("occluded", "hidden in"), ("confidence_dip", "with a confidence dip in"),
             ("stereo_mismatch", f"without a partner in {_view(facts)} in"))
    parts = [f"{w} {counts[name]}" for name, w in words if counts.get(name)]
    if not parts:
        return f"it was not detected in any of the {facts['frames_total']} frames"
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"over the {facts['frames_total']} frames it was {listed}"


def attention_sentence(facts: dict[str, Any]) -> str:
    """One sentence on which frames the decision weighed and what happened in them, or that no
    attention model ran (then what happened over the frames, when known)."""
    view = _view(facts)
    if not facts["attention_model"]:
        model = facts.get("persistence_model")
        clause = _counts_clause(facts)
        head = f"No attention model ran ({model} decided)" if model else "No attention model ran"
        return f"{head}; {clause}." if clause else f"{head}."
    if facts["frames_total"] == 0:
        return "The model had no frames to weigh."
    if facts["frames_total"] == 1:
        return f"The model had only {_describe(facts['top_frames'], view)} to weigh."
    if facts["attention_focus_frames"] is None:
        clause = _counts_clause(facts)
        head = f"The model's attention was spread almost evenly over the {facts['frames_total']} frames"
        return f"{head}; {clause}." if clause else f"{head}, no frame stood out."
    groups = _groups(facts["top_frames"])
    if len(groups) == 1 and _details(groups[0], view):
        g = groups[0]
        looked = f"{_frame_label(g[0]['frame'], g[-1]['frame'])}, where it was {_details(g, view)}"
    else:
        parts = [_describe(g, view) for g in groups]
        looked = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    text = f"The model looked most at {looked}"
    if facts["top_frames"][0].get("events") is None:
        text += f" of {facts['frames_total']}"
    if facts["runner_up"] is not None:
        text += f"; the runner-up evidence was {_describe([facts['runner_up']], view)}"
    return text + "."


def template_text(facts: dict[str, Any]) -> str:
    """Two sentences using only the numbers of ``facts`` (those of :func:`evidence_facts`)."""
    return (f"The track was {facts['decision']} with score {facts['score']:.2f} over {facts['frames_total']} "
            f"frames. {attention_sentence(facts)}")


# --- faithfulness ------------------------------------------------------------------------------------


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
    """The numbers written in ``text`` that are not numbers of ``facts``. A decimal is compared at
    the text's own precision ("0.8" matches a fact 0.8 or 0.80, a coarser rounding of a fact is
    faithful); a whole number must equal a fact (a score 0.93 written as "1" is not)."""
    known = list(_numbers(facts))
    out = []
    for token in _NUMBER.findall(text):
        decimals = len(token.split(".")[1]) if "." in token else 0
        v = float(token)
        if decimals == 0:
            grounded = any(k == v for k in known)
        else:
            grounded = any(abs(round(k, decimals) - v) < 10 ** (-decimals) / 2 for k in known)
        if not grounded:
            out.append(token)
    return out


def fact_frames(facts: dict[str, Any]) -> set[int]:
    """The frame indices the facts speak of: the top frames, the runner-up and the focus run."""
    frames = {f["frame"] for f in facts.get("top_frames") or ()}
    if facts.get("runner_up"):
        frames.add(facts["runner_up"]["frame"])
    focus = facts.get("attention_focus_frames")
    if focus:
        frames.update(range(focus[0], focus[1] + 1))
    return frames


def ungrounded_frames(text: str, facts: dict[str, Any]) -> list[str]:
    """Frame references of ``text`` ("frame 12", "frames 4-6") naming a frame that is not one the
    facts speak of (:func:`fact_frames`), e.g. a track id or a count passed off as a frame."""
    known = fact_frames(facts)
    return [f"frame {n}" for ref in _FRAME_REF.findall(text) for n in re.findall(r"\d+", ref) if int(n) not in known]


def ungrounded(text: str, facts: dict[str, Any]) -> list[str]:
    """Everything in ``text`` that ``facts`` do not support: invented numbers, then frames the
    facts do not speak of (an invented frame index is named once, as the frame). Empty when the
    text is faithful."""
    frames = ungrounded_frames(text, facts)
    return [n for n in ungrounded_numbers(text, facts) if f"frame {n}" not in frames] + frames
