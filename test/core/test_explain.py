"""Tests of the explainer core: template text, the real openai client over real HTTP, the worker."""
from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fake_openai_server import FakeOpenAIServer  # noqa: E402

from object_permanence.core.explain import (  # noqa: E402
    BreakerEvent,
    BreakerState,
    CircuitBreaker,
    Explainer,
    ExplainerError,
    ExplainerWorker,
    Explanation,
    ExplanationRequest,
    TemplateExplainer,
    TokenBucket,
    make_explainer,
)
from object_permanence.core.explain.openai_client import OpenAIExplainer  # noqa: E402
from object_permanence.core.types import PersistenceDecision, Track, TrackState  # noqa: E402

MODEL = "fake-model"
KEY = "test-key"


def make_request(**overrides: object) -> ExplanationRequest:
    """A kept ghost: box track 7, seen 24 of 30 frames, the transformer's attention peaked on frames
    3-5 (no per-frame flags: see test_explain_faithfulness.py for those)."""
    attention = np.full(30, 1.0)
    attention[2:5] = 10.0
    fields: dict[str, object] = dict(
        stamp=12.5,
        camera="left",
        track_id=7,
        kept=True,
        score=0.97,
        attention=attention / attention.sum(),
        frames_observed=30,
        reason="transformer:0.97>=0.50",
        state="OCCLUDED",
        class_name="box",
        hits=24,
        age=30,
        frames_since_seen=12,
        mean_score=0.83,
        box=np.array([320.0, 240.0, 40.0, 60.0]),
        model="transformer",
    )
    fields.update(overrides)
    return ExplanationRequest(**fields)  # type: ignore[arg-type]


def single_frame_glare() -> ExplanationRequest:
    return make_request(
        track_id=12, camera="right", kept=False, score=0.08, attention=np.array([1.0]), frames_observed=1,
        state="TENTATIVE", class_name="", hits=1, age=1, frames_since_seen=0, mean_score=0.41,
    )


def wait_until(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        time.sleep(0.005)


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as srv:
        yield srv


class RecordingExplainer:
    """Template explainer that records the time of each call and can be held at a gate."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.calls: list[tuple[float, ExplanationRequest]] = []
        self.entered = threading.Event()
        self.gate = gate
        self._template = TemplateExplainer()

    def explain(self, request: ExplanationRequest) -> Explanation:
        self.calls.append((time.monotonic(), request))
        self.entered.set()
        if self.gate is not None and not self.gate.wait(5.0):
            raise AssertionError("gate never opened")
        return self._template.explain(request)


class Results:
    """on_result sink that a test can wait on."""

    def __init__(self) -> None:
        self.items: list[Explanation] = []
        self._lock = threading.Lock()

    def __call__(self, explanation: Explanation) -> None:
        with self._lock:
            self.items.append(explanation)

    def wait_for(self, n: int, timeout_s: float = 5.0) -> list[Explanation]:
        wait_until(lambda: len(self.items) >= n, timeout_s)
        return list(self.items)


# --- requests -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "name"),
    [
        ({"camera": "centre"}, "camera"),
        ({"score": 1.2}, "score"),
        ({"mean_score": -0.1}, "mean_score"),
        ({"attention": np.ones((2, 3))}, "attention"),
        ({"attention": np.array([0.5, -0.1])}, "attention"),
        ({"hits": -1}, "hits"),
        ({"box": np.array([1.0, 2.0, np.nan, 4.0])}, "box"),
        ({"frame_flags": np.ones(29, np.uint8)}, "frame_flags"),  # one per attention weight (30)
        ({"frame_flags": np.full(30, 16)}, "frame_flags"),  # a bit no FRAME_* constant names
        ({"frame_scores": np.full(30, 1.5)}, "frame_scores"),
        ({"frame_scores": np.full(3, 0.5)}, "frame_scores"),
    ],
)
def test_request_rejects_bad_fields_naming_them(overrides: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        make_request(**overrides)


def test_request_from_decision_and_track() -> None:
    decision = PersistenceDecision(track_id=4, score=0.3, keep=False, attention=np.array([0.2, 0.8]),
                                   frames_observed=2, reason="min_hits:2/3")
    track = Track(track_id=4, state=TrackState.VISIBLE, box=np.array([10.0, 20.0, 5.0, 6.0]), velocity=np.zeros(2),
                  covariance=np.eye(4), score=0.6, class_id=0, class_name="person", age=3, hits=2, frames_since_seen=0)
    req = ExplanationRequest.from_decision(decision, track, camera="right", stamp=1.5, mean_score=0.55)
    assert (req.track_id, req.kept, req.score, req.state, req.class_name) == (4, False, 0.3, "VISIBLE", "person")
    assert (req.hits, req.age, req.frames_observed, req.mean_score, req.stamp) == (2, 3, 2, 0.55, 1.5)
    np.testing.assert_array_equal(req.attention, [0.2, 0.8])
    assert ExplanationRequest.from_decision(decision, track, camera="left", stamp=0.0).mean_score == 0.6


@pytest.mark.parametrize(
    ("weights", "focus"),
    [
        (np.full(10, 0.1), None),  # uniform
        (np.array([1.0]), None),  # one frame: nothing to single out
        (np.array([1, 1, 1, 1, 1, 1, 1, 1, 1.3, 1.3]), None),  # peak below 1.5x uniform
        (np.array([1, 1, 8, 10, 6, 1, 1, 1, 1, 1.0]), (3, 5)),
        (np.array([1, 1, 1, 1, 1, 1, 1, 1, 9, 10.0]), (9, 10)),  # the most recent frames
        (np.array([10, 1, 1, 1, 1, 1, 1, 1, 1, 1.0]), (1, 1)),
        (np.array([1, 6, 1, 10, 1, 1, 1, 1, 1, 1.0]), (4, 4)),  # run broken by a low frame
    ],
)
def test_attention_focus(weights: np.ndarray, focus: tuple[int, int] | None) -> None:
    assert make_request(attention=weights / weights.sum()).attention_focus() == focus


def test_facts_are_json_with_the_decision() -> None:
    facts = json.loads(json.dumps(make_request().facts()))
    assert facts["track_id"] == 7 and facts["decision"] == "kept" and facts["score"] == 0.97
    assert facts["attention_model"] is True and facts["persistence_model"] == "transformer"
    assert facts["attention_focus_frames"] == [3, 5] and facts["frames_total"] == 30
    assert [f["frame"] for f in facts["top_frames"]] == [3, 4, 5]
    assert facts["event_counts"] is None and facts["runner_up"] is None  # no frame flags in this request
    assert facts["state"] == "OCCLUDED" and facts["frames_since_seen"] == 12 and facts["other_view"] == "right"
    assert "box_cx_cy_w_h_px" not in facts  # pixel coordinates would ground invented numbers


def test_min_hits_attention_is_not_called_a_focus() -> None:
    weights = np.array([0, 0, 1, 1, 0, 0, 0, 0, 0, 0.0]) / 2  # uniform over the matched frames it counted
    assert make_request(attention=weights).attention_focus() == (3, 4)
    request = make_request(attention=weights, model="min_hits_baseline")
    assert request.attention_focus() is None and request.facts()["top_frames"] == []


# --- template -------------------------------------------------------------------------------------


def test_template_kept_ghost() -> None:
    result = TemplateExplainer().explain(make_request())
    assert result.source == "template" and result.request.track_id == 7 and result.rejected_reply is None
    assert result.text == (
        "Kept track 7 (box, left camera): score 0.97, seen in 24 of 30 frames with mean confidence 0.83. "
        "It is currently hidden (ghost for 12 frames) and is predicted to reappear. "
        "The model looked most at frames 3-5 of 30."
    )


def test_template_filtered_single_frame() -> None:
    text = TemplateExplainer().explain(single_frame_glare()).text
    assert text == (
        "Filtered track 12 (right camera): score 0.08, seen in only 1 frame with mean confidence 0.41. "
        "Most likely a single-frame false positive or glare. The model had only frame 1 to weigh."
    )


@pytest.mark.parametrize(
    ("overrides", "phrase"),
    [
        ({"hits": 4, "age": 5, "mean_score": 0.3}, "weak"),
        ({"hits": 3, "age": 20, "mean_score": 0.7}, "intermittently"),
        ({"hits": 18, "age": 20, "mean_score": 0.7}, "did not look like a persistent object"),
    ],
)
def test_template_filtered_causes(overrides: dict, phrase: str) -> None:
    text = TemplateExplainer().explain(make_request(kept=False, score=0.2, state="VISIBLE", **overrides)).text
    assert text.startswith("Filtered track 7 (box, left camera): score 0.20")
    assert phrase in text
    assert text.count(". ") + 1 == 3


def test_template_visible_uniform_attention() -> None:
    text = TemplateExplainer().explain(make_request(state="VISIBLE", attention=np.full(30, 1 / 30))).text
    assert text == (
        "Kept track 7 (box, left camera): score 0.97, seen in 24 of 30 frames with mean confidence 0.83. "
        "The model's attention was spread almost evenly over the 30 frames, no frame stood out."
    )


# --- the same contract for every explainer ---------------------------------------------------------


@pytest.fixture(params=["template", "openai"])
def explainer(request: pytest.FixtureRequest) -> Iterator[Explainer]:
    if request.param == "template":
        yield TemplateExplainer()
        return
    with FakeOpenAIServer() as srv:
        yield OpenAIExplainer(MODEL, base_url=srv.base_url, api_key=KEY, timeout_s=2.0)


def test_explainer_contract(explainer: Explainer) -> None:
    assert isinstance(explainer, Explainer)
    for req in (make_request(), single_frame_glare()):
        result = explainer.explain(req)
        assert result.request is req
        assert str(req.track_id) in result.text and result.text == result.text.strip()
        assert ("Kept" in result.text or "kept" in result.text) == req.kept
        assert result.source in ("template", f"llm:{MODEL}")


# --- the openai client over real HTTP -------------------------------------------------------------


def test_openai_returns_server_text_and_sends_the_facts(server: FakeOpenAIServer) -> None:
    explainer = OpenAIExplainer(MODEL, base_url=server.base_url, api_key=KEY, timeout_s=2.0, max_tokens=64)
    result = explainer.explain(make_request())
    assert result.text == f"Track 7 was kept (fake model {MODEL})."
    assert result.source == f"llm:{MODEL}"
    assert server.request_count == 1 and server.authorizations == [f"Bearer {KEY}"]
    body = server.requests[0]
    assert body["model"] == MODEL and body["max_tokens"] == 64 and body["temperature"] == 0.2
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["system", "user"]
    assert json.loads(body["messages"][1]["content"]) == make_request().facts()


def test_openai_reads_key_from_environment(server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "env-key")
    OpenAIExplainer(MODEL, base_url=server.base_url, api_key=None, timeout_s=2.0).explain(make_request())
    monkeypatch.delenv("OPENAI_API_KEY")
    OpenAIExplainer(MODEL, base_url=server.base_url, api_key=None, timeout_s=2.0).explain(make_request())
    assert server.authorizations == ["Bearer env-key", "Bearer no-key"]


def test_openai_timeout_raises_quickly(server: FakeOpenAIServer) -> None:
    server.delay_s = 5.0
    explainer = OpenAIExplainer(MODEL, base_url=server.base_url, api_key=KEY, timeout_s=0.3)
    start = time.monotonic()
    with pytest.raises(ExplainerError, match="timed out") as info:
        explainer.explain(make_request())
    assert time.monotonic() - start < 1.5
    assert server.base_url in str(info.value)
    assert server.request_count == 1  # no retries


@pytest.mark.parametrize(
    ("switch", "cause"),
    [
        ({"status": 500}, "500"),
        ({"malformed": True}, "JSONDecodeError"),
        ({"empty": True}, "empty answer"),
    ],
)
def test_openai_server_failures_raise(server: FakeOpenAIServer, switch: dict, cause: str) -> None:
    for name, value in switch.items():
        setattr(server, name, value)
    explainer = OpenAIExplainer(MODEL, base_url=server.base_url, api_key=KEY, timeout_s=2.0)
    with pytest.raises(ExplainerError, match=cause) as info:
        explainer.explain(make_request())
    assert server.base_url in str(info.value)
    assert server.request_count == 1


def test_openai_connection_refused_raises() -> None:
    with FakeOpenAIServer() as srv:
        base_url = srv.base_url
    with pytest.raises(ExplainerError, match="APIConnectionError"):
        OpenAIExplainer(MODEL, base_url=base_url, api_key=KEY, timeout_s=1.0).explain(make_request())


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"model": ""}, "model"),
        ({"timeout_s": 0.0}, "timeout_s"),
        ({"timeout_s": -1.0}, "timeout_s"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"temperature": 3.0}, "temperature"),
        ({"base_url": None, "api_key": None}, "api_key"),
    ],
)
def test_openai_rejects_bad_arguments(kwargs: dict, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    args = {"model": MODEL, "base_url": "http://127.0.0.1:9/v1", "api_key": KEY, "timeout_s": 1.0, **kwargs}
    with pytest.raises(ValueError, match=name):
        OpenAIExplainer(**args)


def test_make_explainer_backends(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert isinstance(make_explainer("template", base_url="http://127.0.0.1:9/v1"), TemplateExplainer)
    assert isinstance(make_explainer("auto"), TemplateExplainer)
    assert isinstance(make_explainer("auto", base_url="http://127.0.0.1:9/v1"), OpenAIExplainer)
    openai_explainer = make_explainer("openai", model="m2", api_key=KEY)
    assert isinstance(openai_explainer, OpenAIExplainer) and openai_explainer.source == "llm:m2"
    monkeypatch.setenv("OPENAI_API_KEY", "env-key")
    assert isinstance(make_explainer("auto"), OpenAIExplainer)
    with pytest.raises(ValueError, match=r"backend.*'template', 'openai', 'auto'.*'gpt'"):
        make_explainer("gpt")


# --- the worker -----------------------------------------------------------------------------------


def test_token_bucket_with_fake_clock() -> None:
    now = [100.0]
    bucket = TokenBucket(rate_hz=4.0, capacity=1.0, clock=lambda: now[0])
    assert bucket.try_acquire() == 0.0  # starts full
    assert bucket.try_acquire() == pytest.approx(0.25)
    now[0] += 0.1
    assert bucket.try_acquire() == pytest.approx(0.15)
    now[0] += 0.15
    assert bucket.try_acquire() == 0.0
    now[0] += 10.0  # a long idle period refills only up to the capacity
    assert bucket.try_acquire() == 0.0
    assert bucket.try_acquire() == pytest.approx(0.25)
    with pytest.raises(ValueError, match="rate_hz"):
        TokenBucket(rate_hz=0.0)
    with pytest.raises(ValueError, match="capacity"):
        TokenBucket(rate_hz=1.0, capacity=0.5)


def test_worker_explains_through_the_llm(server: FakeOpenAIServer) -> None:
    results = Results()
    llm = OpenAIExplainer(MODEL, base_url=server.base_url, api_key=KEY, timeout_s=2.0)
    with ExplainerWorker(llm, TemplateExplainer(), max_queue=4, rate_limit_hz=50.0, on_result=results) as worker:
        assert worker.submit(make_request())
        (result,) = results.wait_for(1)
        stats = worker.stats()
    assert result.source == f"llm:{MODEL}" and result.text.startswith("Track 7 was kept")
    assert (stats["submitted"], stats["explained"], stats["failures"], stats["last_error"]) == (1, 1, 0, "")


def test_worker_falls_back_to_template_on_failure(server: FakeOpenAIServer) -> None:
    server.status = 500
    results = Results()
    llm = OpenAIExplainer(MODEL, base_url=server.base_url, api_key=KEY, timeout_s=2.0)
    with ExplainerWorker(llm, TemplateExplainer(), max_queue=4, rate_limit_hz=50.0, on_result=results) as worker:
        assert worker.submit(make_request()) and worker.submit(single_frame_glare())
        got = results.wait_for(2)
        stats = worker.stats()
    assert [r.source for r in got] == ["template", "template"]
    assert [r.request.track_id for r in got] == [7, 12]
    assert got[0].text == TemplateExplainer().explain(make_request()).text
    assert (stats["failures"], stats["fallbacks"], stats["explained"]) == (2, 2, 0)
    assert "500" in stats["last_error"] and server.base_url in stats["last_error"]


def test_worker_without_fallback_counts_unexplained(server: FakeOpenAIServer) -> None:
    server.status = 503
    results = Results()
    llm = OpenAIExplainer(MODEL, base_url=server.base_url, api_key=KEY, timeout_s=2.0)
    worker = ExplainerWorker(llm, None, max_queue=4, rate_limit_hz=50.0, on_result=results)
    worker.submit(make_request())
    wait_until(lambda: worker.stats()["unexplained"] == 1)
    assert worker.close(2.0)
    assert results.items == [] and worker.stats()["failures"] == 1


def test_worker_rate_limit_real_window() -> None:
    n, rate = 4, 5.0
    recorder = RecordingExplainer()
    results = Results()
    with ExplainerWorker(recorder, None, max_queue=n, rate_limit_hz=rate, on_result=results) as worker:
        start = time.monotonic()
        for i in range(n):
            assert worker.submit(make_request(track_id=i))
        results.wait_for(n)
        elapsed = time.monotonic() - start
    times = np.array([t for t, _ in recorder.calls])
    assert elapsed >= (n - 1) / rate
    assert np.all(np.diff(times) >= 1.0 / rate - 0.03)  # 30 ms for thread scheduling jitter
    assert [r.request.track_id for r in results.items] == list(range(n))


def test_worker_uses_the_injected_clock() -> None:
    now = [0.0]
    recorder = RecordingExplainer()
    results = Results()
    with ExplainerWorker(recorder, None, max_queue=4, rate_limit_hz=20.0, on_result=results,
                         clock=lambda: now[0]) as worker:
        worker.submit(make_request(track_id=1))
        worker.submit(make_request(track_id=2))
        results.wait_for(1)
        time.sleep(0.3)  # six real token periods, but the injected clock stands still
        assert len(recorder.calls) == 1
        now[0] += 0.05  # one token period on the injected clock
        assert [r.request.track_id for r in results.wait_for(2)] == [1, 2]


def test_worker_queue_bound_drops_and_counts() -> None:
    gate = threading.Event()
    recorder = RecordingExplainer(gate)
    results = Results()
    with ExplainerWorker(recorder, None, max_queue=2, rate_limit_hz=1000.0, on_result=results) as worker:
        assert worker.submit(make_request(track_id=0))
        assert recorder.entered.wait(2.0)  # the worker holds track 0; the queue is empty again
        assert worker.submit(make_request(track_id=1)) and worker.submit(make_request(track_id=2))
        assert not worker.submit(make_request(track_id=3))
        assert not worker.submit(make_request(track_id=4))
        assert worker.stats()["dropped"] == 2 and worker.stats()["pending"] == 2
        gate.set()
        got = results.wait_for(3)
        assert worker.stats()["submitted"] == 3
    assert [r.request.track_id for r in got] == [0, 1, 2]


def test_worker_overflow_goes_to_the_fallback_at_once() -> None:
    """A full primary queue sends the next requests to the fallback (no token, not behind the
    primary's queue); only when the fallback's queue is full too is a request dropped."""
    gate = threading.Event()
    recorder = RecordingExplainer(gate)
    results = Results()
    with ExplainerWorker(recorder, TemplateExplainer(), max_queue=1, rate_limit_hz=0.01, on_result=results) as worker:
        assert worker.submit(make_request(track_id=0))
        assert recorder.entered.wait(2.0)  # the primary holds track 0 (and its one token for 100 s)
        assert worker.submit(make_request(track_id=1))  # waits for the primary
        assert worker.submit(make_request(track_id=2))  # the primary's queue is full: the fallback
        assert worker.submit(make_request(track_id=2, score=0.5))  # replaces it in the fallback's queue
        assert not worker.submit(make_request(track_id=3))  # both queues full
        stats = worker.stats()
        assert (stats["overflowed"], stats["replaced"], stats["dropped"]) == (1, 1, 1)
        gate.set()
        got = results.wait_for(2)  # track 0 by the primary, then track 2 by the template; 1 waits for a token
        assert worker.stats()["fallbacks"] == 1 and worker.stats()["pending"] == 1
    assert [r.request.track_id for r in got] == [0, 2] and got[1].request.score == 0.5
    assert [request.track_id for _, request in recorder.calls] == [0]  # the primary saw track 0 only


def test_worker_without_rate_limit_explains_a_burst_at_once() -> None:
    recorder = RecordingExplainer()
    results = Results()
    start = time.monotonic()
    with ExplainerWorker(recorder, None, max_queue=64, rate_limit_hz=None, on_result=results) as worker:
        assert all(worker.submit(make_request(track_id=i)) for i in range(50))
        assert len(results.wait_for(50)) == 50
    assert time.monotonic() - start < 2.0


def test_worker_dedupes_by_camera_and_track() -> None:
    gate = threading.Event()
    recorder = RecordingExplainer(gate)
    results = Results()
    with ExplainerWorker(recorder, None, max_queue=3, rate_limit_hz=1000.0, on_result=results) as worker:
        worker.submit(make_request(track_id=1))
        assert recorder.entered.wait(2.0)
        assert worker.submit(make_request(track_id=2, score=0.1))
        assert worker.submit(make_request(track_id=3))
        assert worker.submit(make_request(track_id=2, score=0.9))  # replaces the queued one, keeps its place
        assert worker.submit(make_request(track_id=2, camera="right"))  # another camera: another track
        stats = worker.stats()
        gate.set()
        got = results.wait_for(4)
    assert (stats["replaced"], stats["pending"], stats["dropped"]) == (1, 3, 0)
    assert [(r.request.camera, r.request.track_id, r.request.score) for r in got] == [
        ("left", 1, 0.97), ("left", 2, 0.9), ("left", 3, 0.97), ("right", 2, 0.97)]


def test_worker_survives_a_failing_consumer() -> None:
    def on_result(explanation: Explanation) -> None:
        if explanation.request.track_id == 1:
            raise RuntimeError("consumer bug")
        results(explanation)

    results = Results()
    with ExplainerWorker(TemplateExplainer(), None, max_queue=4, rate_limit_hz=100.0, on_result=on_result) as worker:
        worker.submit(make_request(track_id=1))
        worker.submit(make_request(track_id=2))
        assert [r.request.track_id for r in results.wait_for(1)] == [2]
        stats = worker.stats()
    assert stats["callback_errors"] == 1 and "consumer bug" in stats["last_error"]


def test_worker_close_joins_promptly_while_rate_limited() -> None:
    results = Results()
    worker = ExplainerWorker(TemplateExplainer(), None, max_queue=4, rate_limit_hz=0.1, on_result=results)
    worker.submit(make_request(track_id=1))
    worker.submit(make_request(track_id=2))
    results.wait_for(1)  # track 2 now waits ten seconds for a token
    start = time.monotonic()
    assert worker.close(timeout=2.0)
    assert time.monotonic() - start < 1.0
    stats = worker.stats()
    assert not stats["alive"] and stats["pending"] == 0 and len(results.items) == 1
    assert not worker.submit(make_request(track_id=3))
    assert worker.stats()["dropped"] == 1


@pytest.mark.parametrize(("kwargs", "name"), [({"max_queue": 0}, "max_queue"), ({"rate_limit_hz": 0.0}, "rate_limit_hz"),
                                              ({"rate_limit_hz": -1.0}, "rate_limit_hz")])
def test_worker_rejects_bad_arguments(kwargs: dict, name: str) -> None:
    args = {"max_queue": 4, "rate_limit_hz": 1.0, **kwargs}
    with pytest.raises(ValueError, match=name):
        ExplainerWorker(TemplateExplainer(), None, on_result=lambda e: None, **args)


# --- the circuit breaker --------------------------------------------------------------------------


class FakeClock:
    """Seconds that move only when a test says so."""

    def __init__(self, start: float = 100.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_retries_once_per_backoff_and_recovers() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=2, backoff_s=10.0, slow_call_s=1.0, clock=clock)
    assert breaker.state is BreakerState.CLOSED and breaker.acquire()
    assert breaker.record_failure() is None  # one failure of two
    assert breaker.record_success(0.2) is None  # a success resets the count
    assert breaker.record_failure() is None
    assert breaker.record_failure() is BreakerEvent.OPENED
    assert breaker.state is BreakerState.OPEN and not breaker.allows_call() and not breaker.acquire()
    assert breaker.retry_in_s() == pytest.approx(10.0)
    clock.now += 9.9
    assert not breaker.acquire()
    clock.now += 0.1
    assert breaker.allows_call() and breaker.acquire()  # the trial call
    assert breaker.state is BreakerState.HALF_OPEN and not breaker.acquire()  # only one trial
    assert breaker.record_failure() is BreakerEvent.STILL_FAILING
    assert breaker.retry_in_s() == pytest.approx(10.0) and breaker.opened_count == 1
    clock.now += 10.0
    assert breaker.acquire() and breaker.record_success(0.5) is BreakerEvent.RECOVERED
    assert breaker.state is BreakerState.CLOSED and breaker.retry_in_s() == 0.0
    assert breaker.record_success(1.5) is None and breaker.record_success(1.5) is BreakerEvent.OPENED  # slow


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"failure_threshold": 0}, "failure_threshold"),
    ({"backoff_s": 0.0}, "backoff_s"),
    ({"backoff_s": float("inf")}, "backoff_s"),
    ({"slow_call_s": 0.0}, "slow_call_s"),
])
def test_breaker_rejects_bad_arguments(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        CircuitBreaker(**kwargs)


class LogLines:
    """``log`` sink of the worker."""

    def __init__(self) -> None:
        self.lines: list[tuple[int, str]] = []

    def __call__(self, level: int, text: str) -> None:
        self.lines.append((level, text))


def test_worker_serves_templates_at_once_while_the_server_is_down_and_recovers(server: FakeOpenAIServer) -> None:
    """A server that never answers: the first request waits for the timeout and opens the
    breaker; then every request gets the template at once (the injected clock stands still, so
    neither a timeout nor a rate-limit token could pass) and the server sees one trial request
    per back-off period; when it answers again, the language model is used again."""
    server.delay_s = 30.0
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, backoff_s=10.0, clock=clock)
    results, log = Results(), LogLines()
    llm = OpenAIExplainer(MODEL, base_url=server.base_url, api_key=KEY, timeout_s=0.3)
    with ExplainerWorker(llm, TemplateExplainer(), max_queue=32, rate_limit_hz=1.0, on_result=results, clock=clock,
                         breaker=breaker, log=log, log_period_s=60.0) as worker:
        worker.submit(make_request(track_id=0))
        results.wait_for(1)  # the timeout (0.3 s of real time) opened the breaker
        assert breaker.state is BreakerState.OPEN and server.request_count == 1
        for i in range(1, 21):  # more than a token bucket at 1 Hz on a frozen clock could pass
            assert worker.submit(make_request(track_id=i))
        got = results.wait_for(21)
        assert [r.source for r in got] == ["template"] * 21
        assert server.request_count == 1 and worker.stats()["short_circuited"] == 20

        clock.now += 10.0  # one back-off period: one trial, which fails (times out) again
        for i in range(21, 24):
            worker.submit(make_request(track_id=i))
        results.wait_for(24)
        assert server.request_count == 2 and breaker.state is BreakerState.OPEN

        server.delay_s = 0.0  # the server is back
        clock.now += 10.0
        worker.submit(make_request(track_id=24))
        assert results.wait_for(25)[-1].source == f"llm:{MODEL}"
        assert breaker.state is BreakerState.CLOSED
        clock.now += 1.0  # a rate-limit token
        worker.submit(make_request(track_id=25))
        assert results.wait_for(26)[-1].source == f"llm:{MODEL}"
        stats = worker.stats()
    assert (stats["failures"], stats["explained"], stats["short_circuited"], stats["breaker"]) == (2, 2, 22, "closed")
    assert server.request_count == 4
    texts = [text for _, text in log.lines]
    assert texts[0].startswith(f"explainer server {server.base_url} failing (explainer request to {server.base_url} "
                               "failed: APITimeoutError")
    assert "retrying the server every 10 s" in texts[0]
    assert texts[-1] == (f"explainer server {server.base_url} answers again; language-model explanations resumed "
                         "(1 failure line suppressed before this)")
    assert log.lines[-1][0] == logging.INFO and len(log.lines) == 2  # the second failure fell in the log period


def test_worker_breaker_opens_on_a_slow_server(server: FakeOpenAIServer) -> None:
    """Answers slower than slow_call_s are used but count against the server: after two, the
    breaker opens and the next request is not sent."""
    server.delay_s = 0.3
    breaker = CircuitBreaker(failure_threshold=2, backoff_s=60.0, slow_call_s=0.05)
    results, log = Results(), LogLines()
    llm = OpenAIExplainer(MODEL, base_url=server.base_url, api_key=KEY, timeout_s=5.0)
    with ExplainerWorker(llm, TemplateExplainer(), max_queue=8, rate_limit_hz=100.0, on_result=results,
                         breaker=breaker, log=log) as worker:
        for i in range(2):
            worker.submit(make_request(track_id=i))
            results.wait_for(i + 1)
        assert breaker.state is BreakerState.OPEN
        worker.submit(make_request(track_id=2))
        got = results.wait_for(3)
        stats = worker.stats()
    assert [r.source for r in got] == [f"llm:{MODEL}", f"llm:{MODEL}", "template"]
    assert server.request_count == 2
    assert (stats["slow_calls"], stats["failures"], stats["short_circuited"]) == (2, 0, 1)
    (level, text), = log.lines
    assert level == logging.WARNING and f"explainer server {server.base_url} failing (answered in" in text
    assert "slower than slow_call_s=0.05 s" in text


def test_worker_failure_log_is_throttled_names_the_url_and_never_the_key(server: FakeOpenAIServer) -> None:
    secret = "sk-test-SECRET0123456789"
    server.status = 401
    # servers echo the key, whole or masked (OpenAI: "sk-test-****6789")
    server.error_message = f"Incorrect API key provided: sk-test-****************6789 (sent: {secret})."
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=100, backoff_s=5.0, clock=clock)  # stays closed here
    results, log = Results(), LogLines()
    llm = OpenAIExplainer(MODEL, base_url=server.base_url, api_key=secret, timeout_s=2.0)
    with ExplainerWorker(llm, TemplateExplainer(), max_queue=8, rate_limit_hz=50.0, on_result=results, clock=clock,
                         breaker=breaker, log=log, log_period_s=30.0) as worker:
        for i in range(5):  # five failures within one log period: one line
            worker.submit(make_request(track_id=i))
            results.wait_for(i + 1)
            clock.now += 1.0
        assert len(log.lines) == 1
        clock.now += 30.0
        worker.submit(make_request(track_id=5))
        results.wait_for(6)
        stats = worker.stats()
    assert server.request_count == 6 and server.authorizations[0] == f"Bearer {secret}"
    texts = [text for _, text in log.lines]
    assert len(texts) == 2 and texts[1].endswith("(4 failure lines suppressed before this)")
    for text in (*texts, stats["last_error"]):
        assert server.base_url in text and "401" in text
        assert "SECRET" not in text and "****" not in text
        assert "provided: sk-*** (sent: ***)" in text


def test_openai_endpoint_is_the_url_actually_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    assert OpenAIExplainer(MODEL, api_key=KEY).endpoint == "https://api.openai.com/v1"
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    assert OpenAIExplainer(MODEL, api_key=KEY).endpoint == "http://127.0.0.1:9/v1"
    assert OpenAIExplainer(MODEL, base_url="http://127.0.0.1:8/v1/", api_key=KEY).endpoint == "http://127.0.0.1:8/v1"


def test_worker_recovers_when_a_stopped_server_comes_back() -> None:
    """Connection refused (nothing listens): templates at once; the server back at the same
    URL is used again after the back-off."""
    clock = FakeClock()
    with FakeOpenAIServer() as first:
        port, base_url = first._server.server_address[1], first.base_url
    breaker = CircuitBreaker(failure_threshold=1, backoff_s=10.0, clock=clock)
    results = Results()
    llm = OpenAIExplainer(MODEL, base_url=base_url, api_key=KEY, timeout_s=2.0)
    with ExplainerWorker(llm, TemplateExplainer(), max_queue=8, rate_limit_hz=1.0, on_result=results, clock=clock,
                         breaker=breaker) as worker:
        for i in range(4):
            worker.submit(make_request(track_id=i))
        assert [r.source for r in results.wait_for(4)] == ["template"] * 4
        assert "APIConnectionError" in worker.stats()["last_error"] and worker.stats()["short_circuited"] == 3
        with FakeOpenAIServer(port=port) as again:
            clock.now += 10.0
            worker.submit(make_request(track_id=4))
            assert results.wait_for(5)[-1].source == f"llm:{MODEL}" and again.request_count == 1


def test_each_request_carries_its_own_context() -> None:
    """The node's ROS header travels inside the request (no table shared between threads); a
    replacement of a queued request brings its own."""
    gate = threading.Event()
    recorder = RecordingExplainer(gate)
    results = Results()
    headers = [object() for _ in range(4)]
    with ExplainerWorker(recorder, None, max_queue=4, rate_limit_hz=1000.0, on_result=results) as worker:
        worker.submit(make_request(track_id=1, context=headers[0]))
        assert recorder.entered.wait(2.0)
        worker.submit(make_request(track_id=2, context=headers[1]))
        worker.submit(make_request(track_id=3, context=headers[2]))
        worker.submit(make_request(track_id=2, context=headers[3]))  # replaces track 2's request
        gate.set()
        got = results.wait_for(3)
    assert [(r.request.track_id, r.request.context) for r in got] == [(1, headers[0]), (2, headers[3]), (3, headers[2])]
    decision = PersistenceDecision(track_id=4, score=0.3, keep=False, attention=np.array([1.0]), frames_observed=1,
                                   reason="min_hits:1/3")
    track = Track(track_id=4, state=TrackState.TENTATIVE, box=np.array([1.0, 2.0, 3.0, 4.0]), velocity=np.zeros(2),
                  covariance=np.eye(4), score=0.5, class_id=0, class_name="", age=1, hits=1, frames_since_seen=0)
    request = ExplanationRequest.from_decision(decision, track, "left", 1.0, context=headers[0])
    assert request.context is headers[0] and request == ExplanationRequest.from_decision(decision, track, "left", 1.0)
