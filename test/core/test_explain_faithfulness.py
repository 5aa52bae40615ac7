"""Explanations are grounded in the decision's facts: the per-frame evidence the persistence filter
records, the facts built from it, the template's wording of them, and the language-model path
(over real HTTP against the local fake server) whose replies are rejected when they invent a number
or a frame."""
from __future__ import annotations

import json
import logging
import re
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fake_openai_server import FakeOpenAIServer  # noqa: E402

from object_permanence.core.explain import ExplainerWorker, Explanation, ExplanationRequest, TemplateExplainer  # noqa: E402
from object_permanence.core.explain.openai_client import SYSTEM_PROMPT, OpenAIExplainer  # noqa: E402
from object_permanence.core.persistence import MinHitsBaseline, PersistenceFilter  # noqa: E402
from object_permanence.core.persistence.evidence import (  # noqa: E402
    DIP,
    FRAME_CONFIDENCE_DIP,
    FRAME_MATCHED,
    FRAME_OCCLUDED,
    FRAME_STEREO_MISMATCH,
    WithFrameEvidence,
    decision_facts,
    evidence_facts,
    fact_frames,
    frame_evidence,
    template_text,
    ungrounded,
    ungrounded_frames,
    ungrounded_numbers,
)
from object_permanence.core.persistence.history import FEATURES, N_FEATURES, TrackHistory  # noqa: E402
from object_permanence.core.types import PersistenceDecision, Track, TrackState  # noqa: E402

COL = {name: i for i, name in enumerate(FEATURES)}
MODEL = "fake-model"
M, O, S, D = FRAME_MATCHED, FRAME_OCCLUDED, FRAME_STEREO_MISMATCH, FRAME_CONFIDENCE_DIP


def history_rows(matched: Sequence[int], scores: Sequence[float], stereo: Sequence[int],
                 occluded: Sequence[int]) -> np.ndarray:
    rows = np.zeros((len(matched), N_FEATURES), np.float32)
    rows[:, COL["matched"]] = matched
    rows[:, COL["det_score"]] = scores
    rows[:, COL["stereo_match"]] = stereo
    rows[:, COL["occluded"]] = occluded
    return rows


def reference_flags(rows: np.ndarray) -> np.ndarray:
    """The flags written out frame by frame, as the bits are defined."""
    matched = rows[:, COL["matched"]] > 0.5
    median = float(np.median(rows[matched, COL["det_score"]])) if matched.any() else 0.0
    out = []
    for r, m in zip(rows, matched):
        f = M if m else 0
        f |= O if r[COL["occluded"]] > 0.5 else 0
        f |= S if m and r[COL["stereo_match"]] < 0.5 else 0
        f |= D if m and r[COL["det_score"]] < median - DIP else 0
        out.append(f)
    return np.array(out, np.uint8)


def ghost_request(**overrides: object) -> ExplanationRequest:
    """Box track 17 in the left view, kept by the transformer: its attention peaks on frames 4-6
    (matched at steady confidence, a partner in the right view), the runner-up is frame 2 (a dip)."""
    attention = np.full(12, 0.02)
    attention[[1, 3, 4, 5]] = [0.09, 0.2, 0.25, 0.22]
    flags = np.full(12, M, np.uint8)
    flags[1] |= D
    flags[8:10] = O
    scores = np.full(12, 0.92, np.float32)
    scores[[1, 3, 4, 5, 8, 9]] = [0.61, 0.91, 0.93, 0.92, 0.0, 0.0]
    fields: dict[str, object] = dict(
        stamp=3.0, camera="left", track_id=17, kept=True, score=0.934, attention=attention / attention.sum(),
        frames_observed=12, reason="transformer:0.93>=0.50 top_frame:4", state="VISIBLE", class_name="box",
        hits=10, age=12, frames_since_seen=0, mean_score=0.9, box=np.array([320.0, 240.0, 40.0, 60.0]),
        model="transformer", frame_flags=flags, frame_scores=scores)
    fields.update(overrides)
    return ExplanationRequest(**fields)  # type: ignore[arg-type]


GHOST_TEXT = (
    "Kept track 17 (box, left camera): score 0.93, seen in 10 of 12 frames with mean confidence 0.90. "
    "The model looked most at frames 4-6, where it was matched at steady confidence 0.91 to 0.93, with a partner "
    "in the right view; the runner-up evidence was frame 2 (matched at a dipped confidence of 0.61, with a "
    "partner in the right view)."
)


def random_request(rng: np.random.Generator) -> ExplanationRequest:
    """Any decision: model, length, attention, flags (or none), state and verdict drawn at random."""
    n = int(rng.integers(1, 33))
    attention = rng.dirichlet(np.full(n, rng.choice([0.2, 1.0, 50.0])))
    matched = rng.random(n) < 0.7
    flags = (matched * M | (~matched & (rng.random(n) < 0.5)) * O | (matched & (rng.random(n) < 0.3)) * S
             | (matched & (rng.random(n) < 0.2)) * D).astype(np.uint8)
    scores = np.where(matched, rng.uniform(0.3, 1.0, n), 0.0).astype(np.float32)
    recorded = rng.random() < 0.8
    hits = int(matched.sum())
    return ExplanationRequest(
        stamp=0.0, camera=str(rng.choice(["left", "right"])), track_id=int(rng.integers(1, 2**63)),
        kept=bool(rng.random() < 0.5), score=float(rng.random()), attention=attention, frames_observed=n,
        reason=str(rng.choice(["transformer:0.40<0.50 sticky", "min_hits:3/3"])),
        state=str(rng.choice(["TENTATIVE", "VISIBLE", "OCCLUDED", "LOST"])), class_name=str(rng.choice(["", "box"])),
        hits=hits, age=n + int(rng.integers(0, 40)), frames_since_seen=int(rng.integers(0, 30)),
        mean_score=float(scores[matched].mean()) if hits else 0.0, box=np.array([1.0, 2.0, 3.0, 4.0]),
        model=str(rng.choice(["transformer", "min_hits_baseline", "gradient_boosting", ""])),
        frame_flags=flags if recorded else None, frame_scores=scores if recorded else None)


# --- what happened in each frame -------------------------------------------------------------------


def test_frame_evidence_matches_the_definition_frame_by_frame() -> None:
    rng = np.random.default_rng(3)
    histories = []
    for n in (1, 2, 5, 17, 32, 32):
        matched = (rng.random(n) < 0.7).astype(np.float32)
        histories.append(history_rows(matched, matched * rng.uniform(0.2, 1.0, n), rng.random(n) < 0.6,
                                      (1 - matched) * (rng.random(n) < 0.5)))
    out = frame_evidence(histories)
    assert len(out) == len(histories)
    for rows, (flags, scores) in zip(histories, out):
        assert flags.dtype == np.uint8 and flags.shape == scores.shape == (len(rows),)
        np.testing.assert_array_equal(flags, reference_flags(rows))
        np.testing.assert_array_equal(scores, np.where(rows[:, COL["matched"]] > 0.5, rows[:, COL["det_score"]], 0))
    assert frame_evidence([]) == []


def test_frame_flags_name_each_event() -> None:
    rows = history_rows([1, 1, 0, 1, 1], [0.9, 0.9, 0.0, 0.5, 0.9], [1, 1, 0, 1, 0], [0, 0, 1, 0, 0])
    (flags, scores), = frame_evidence([rows])
    assert flags.tolist() == [M, M, O, M | D, M | S]
    np.testing.assert_allclose(scores, [0.9, 0.9, 0.0, 0.5, 0.9])


class LastFrames:
    """A model whose attention covers only the newest ``window`` frames (as the transformer's
    covers its max_len), peaked on the newest."""

    name = "last_frames"

    def __init__(self, window: int) -> None:
        self.window = window

    def decide(self, histories: Sequence[TrackHistory]) -> list[PersistenceDecision]:
        out = []
        for h in histories:
            n = min(len(h), self.window)
            w = np.arange(1, n + 1, dtype=np.float32)
            out.append(PersistenceDecision(h.track_id, 0.5, True, w / w.sum(), len(h), "last"))
        return out


def test_with_frame_evidence_aligns_flags_with_the_attention() -> None:
    rows = history_rows([1, 0, 1, 1, 1, 1], [0.9, 0.0, 0.9, 0.4, 0.9, 0.9], [1, 0, 1, 1, 0, 1], [0, 1, 0, 0, 0, 0])
    hist = TrackHistory.from_rows(3, rows, 32)
    model = WithFrameEvidence(LastFrames(4))
    assert model.name == "last_frames"
    (d,) = model.decide([hist])
    assert len(d.attention) == len(d.frame_flags) == len(d.frame_scores) == 4
    np.testing.assert_array_equal(d.frame_flags, reference_flags(rows[-4:]))  # the newest 4 frames, judged alone
    assert d.frame_flags.tolist() == [M, M | D, M | S, M]
    (full,) = WithFrameEvidence(MinHitsBaseline()).decide([hist])
    assert len(full.frame_flags) == len(full.attention) == 6 and full.frame_flags[1] == O


def test_the_filter_records_the_evidence_of_every_decision() -> None:
    filt = PersistenceFilter(WithFrameEvidence(MinHitsBaseline()), history_len=30)

    def track(k: int, seen: bool) -> Track:
        return Track(track_id=1, state=TrackState.VISIBLE if seen else TrackState.OCCLUDED,
                     box=np.array([100.0 + k, 100.0, 20.0, 20.0]), velocity=np.zeros(2), covariance=np.eye(4),
                     score=0.9, class_id=0, class_name="box", age=k + 1, hits=k + 1, frames_since_seen=0 if seen else 1)

    other = [Track(track_id=9, state=TrackState.VISIBLE, box=np.array([90.0, 100.0, 20.0, 20.0]),
                   velocity=np.zeros(2), covariance=np.eye(4), score=0.9, class_id=0, class_name="box", age=1,
                   hits=1, frames_since_seen=0)]
    for k, (seen, partner) in enumerate([(True, True), (True, False), (False, False), (True, True)]):
        (d,) = filt.step([track(k, seen)], other if partner else None).decisions
    assert d.frame_flags.tolist() == [M, M | S, O, M]


# --- the facts and their wording ------------------------------------------------------------------


def test_facts_hold_the_attention_and_what_happened() -> None:
    facts = ghost_request().facts()
    assert json.loads(json.dumps(facts)) == facts
    assert facts["score"] == 0.93 and facts["attention_focus_frames"] == [4, 6]
    assert [(f["frame"], f["events"], f["confidence"]) for f in facts["top_frames"]] == \
        [(5, ["matched"], 0.93), (6, ["matched"], 0.92), (4, ["matched"], 0.91)]
    assert facts["runner_up"] == {"frame": 2, "weight": 0.1, "events": ["matched", "confidence_dip"],
                                  "confidence": 0.61}
    assert facts["event_counts"] == {"matched": 10, "unmatched": 2, "occluded": 2, "confidence_dip": 1}
    assert fact_frames(facts) == {2, 4, 5, 6}


def test_template_explains_the_attention_in_plain_words() -> None:
    result = TemplateExplainer().explain(ghost_request())
    assert result.text == GHOST_TEXT
    assert ungrounded(result.text, result.request.facts()) == []


def test_no_attention_model_is_said_so_and_names_no_frame() -> None:
    attention = np.where(ghost_request().frame_flags & M, 0.1, 0.0)  # min-hits: uniform over its hits
    request = ghost_request(model="min_hits_baseline", attention=attention, kept=False, score=0.2,
                            frame_flags=ghost_request().frame_flags | (ghost_request().frame_flags & M) * S)
    text = TemplateExplainer().explain(request).text
    assert text == (
        "Filtered track 17 (box, left camera): score 0.20, seen in 10 of 12 frames with mean confidence 0.90. "
        "It seldom had a partner in the right view, as a reflection or glare does. No attention model ran "
        "(min_hits_baseline decided); over the 12 frames it was matched in 10, hidden in 2, with a confidence dip "
        "in 1 and without a partner in the right view in 10."
    )
    assert "frame " not in text and ungrounded(text, request.facts()) == []


def test_every_template_text_is_grounded_in_its_facts() -> None:
    """Over many random decisions: every number and frame index of the template is a fact, and the
    text says 'no attention model' exactly when none ran."""
    rng = np.random.default_rng(11)
    for _ in range(400):
        request = random_request(rng)
        facts = request.facts()
        text = TemplateExplainer().explain(request).text
        assert ungrounded(text, facts) == [], (text, facts)
        assert ("No attention model ran" in text) == (not facts["attention_model"]), text
        mentioned = {int(n) for ref in re.findall(r"frames? (\d+(?:-\d+)?)", text) for n in ref.split("-")}
        assert mentioned <= fact_frames(facts), (text, facts)


def test_decision_facts_of_a_history_word_only_their_numbers() -> None:
    rows = history_rows([1, 1, 0, 1, 1], [0.9, 0.9, 0.0, 0.5, 0.9], [1, 1, 0, 1, 0], [0, 0, 1, 0, 0])
    facts = decision_facts(rows, np.array([0.3, 0.3, 0.1, 0.2, 0.1]), 0.374, True, top_k=2)
    text = template_text(facts)
    assert text == (
        "The track was kept with score 0.37 over 5 frames. The model looked most at frames 1-2, where it was "
        "matched at steady confidence 0.90, with a partner in the other view; the runner-up evidence was frame 4 "
        "(matched at a dipped confidence of 0.50, with a partner in the other view)."
    )
    assert ungrounded(text, facts) == []
    with pytest.raises(ValueError, match="flags"):
        evidence_facts(np.ones(3) / 3, 0.5, True, flags=np.zeros(2, np.uint8))


# --- the faithfulness check -------------------------------------------------------------------------


def test_ungrounded_catches_invented_numbers_and_frames() -> None:
    facts = ghost_request().facts()
    assert ungrounded_numbers("score 0.93, about 0.9, seen in 10 of 12 frames", facts) == []
    assert ungrounded_numbers("score 0.97", facts) == ["0.97"]
    # a coarser decimal rounding of a fact is faithful, a whole number must be a fact itself
    assert ungrounded_numbers("score 0.9 or 1", {"score": 0.93}) == ["1"]
    assert ungrounded_numbers("93% sure", facts) == ["93"]  # nothing computed from the facts either
    assert ungrounded_frames("frames 4-6, frame 2 and frames 4 to 6", facts) == []
    # 17 is the track id (a fact), yet no frame the facts speak of; 12 is the frame count
    assert ungrounded_frames("frame 17 mattered, then frames 2, 5 and 12", facts) == ["frame 17", "frame 12"]
    assert ungrounded("frame 17 at 0.99", facts) == ["0.99", "frame 17"]


# --- the language-model path -----------------------------------------------------------------------


def llm(server: FakeOpenAIServer) -> OpenAIExplainer:
    return OpenAIExplainer(MODEL, base_url=server.base_url, api_key="test-key", timeout_s=2.0)


def test_llm_gets_the_same_facts_and_a_grounded_reply_is_kept() -> None:
    request = ghost_request()
    reply = ("Track 17 was kept with score 0.93: the model looked most at frames 4-6, matched at confidence "
             "0.91 to 0.93 with a partner in the right view; frame 2, a confidence dip to 0.61, came next.")
    with FakeOpenAIServer(reply=reply) as server:
        result = llm(server).explain(request)
        body = server.requests[0]
    assert (result.text, result.source, result.rejected_reply) == (reply, f"llm:{MODEL}", None)
    assert json.loads(body["messages"][1]["content"]) == request.facts()  # what the template words, too
    assert body["messages"][0]["content"] == SYSTEM_PROMPT and "Use only numbers" in SYSTEM_PROMPT


@pytest.mark.parametrize(("reply", "bad"), [
    ("Track 17 was kept with score 0.97; the model looked most at frames 4-6.", "0.97"),
    ("Track 17 was kept with score 0.93, mostly because of frame 17.", "frame 17"),
    ("Track 17 was kept: it was matched in 83% of its frames.", "83"),
])
def test_llm_reply_that_invents_a_number_is_rejected_for_the_template(reply: str, bad: str) -> None:
    request = ghost_request()
    with FakeOpenAIServer(reply=reply) as server:
        result = llm(server).explain(request)
    assert result.source == f"template (llm:{MODEL} reply rejected: ungrounded {bad})"
    assert result.text == GHOST_TEXT == TemplateExplainer().explain(request).text
    assert result.rejected_reply == reply


def test_the_worker_counts_and_logs_a_rejected_reply_and_the_server_stays_trusted() -> None:
    lines: list[tuple[int, str]] = []
    results: list[Explanation] = []
    done = threading.Event()

    def on_result(e: Explanation) -> None:
        results.append(e)
        done.set()

    reply = "Track 17 was kept with score 0.97."
    with FakeOpenAIServer(reply=reply) as server, \
            ExplainerWorker(llm(server), TemplateExplainer(), 4, 100.0, on_result,
                            log=lambda level, text: lines.append((level, text))) as worker:
        assert worker.submit(ghost_request())
        assert done.wait(5.0), "no explanation within 5 s"
        stats = worker.stats()
    assert results[0].source == f"template (llm:{MODEL} reply rejected: ungrounded 0.97)"
    assert (stats["rejected"], stats["explained"], stats["failures"], stats["fallbacks"]) == (1, 1, 0, 0)
    assert lines == [(logging.WARNING, f"explainer reply rejected, template (llm:{MODEL} reply rejected: "
                                       f"ungrounded 0.97): {reply!r}")]
