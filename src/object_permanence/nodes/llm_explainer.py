"""llm_explainer: says in plain words why tracks were kept or filtered
(``persistence/decisions`` + ``stereo/<cam>/tracks`` -> ``explanations``).

Never in the control loop: requests go to a bounded, rate-limited queue served by a worker
thread; a failing or absent language model falls back to the offline template explainer, and
a circuit breaker stops asking a server that is down or slow (templates at once, one retry per
back-off period).

Each explanation is grounded in the decision's facts: the score, the frames the attention weighed
most and what happened in them (the decision's ``frame_flags`` / ``frame_scores``), the runner-up
evidence; a language-model reply naming a number or frame not among them is replaced by the
template's text, the ``source`` saying so."""
from __future__ import annotations

import logging
import os

from rclpy.node import Node
from std_msgs.msg import Header

from object_permanence.core.explain import (
    BACKENDS,
    CircuitBreaker,
    ExplainerWorker,
    Explanation,
    ExplanationRequest,
    TemplateExplainer,
    make_explainer,
)
from object_permanence.core.types import TrackState
from object_permanence.msg import Explanation as ExplanationMsg, PersistenceDecisionArray, Track as TrackMsg, TrackArray
from object_permanence.ros.conversions import (
    ConversionError,
    decision_from_msg,
    sec_to_stamp,
    stamp_to_sec,
    track_from_msg,
)
from object_permanence.ros.params import Param, ParameterError, declare
from object_permanence.ros.guard import subscribe
from object_permanence.ros.qos import EVENT_QOS, RELIABLE_QOS
from object_permanence.ros.runner import main_for

CAMERAS = ("left", "right")

PARAMS = (
    Param("backend", "auto", "Explainer. auto: openai when an API key or base_url is configured, else template; "
          "template: offline sentences from the facts; openai: any OpenAI-compatible server.", choices=BACKENDS),
    Param("model", "gpt-4o-mini", "openai: model name."),
    Param("base_url", "", "openai: server URL, e.g. http://127.0.0.1:8000/v1 (empty: the client's default)."),
    Param("api_key_env", "OPENAI_API_KEY", "openai: environment variable holding the API key (never a parameter)."),
    Param("timeout_s", 5.0, "openai: request timeout (s).", low=0.1, high=120.0),
    Param("rate_limit_hz", 2.0, "Most language-model calls per second (the template explainer is not limited).",
          low=0.01, high=100.0),
    Param("max_queue", 32, "Requests waiting for the language model beyond this are explained by the template "
          "at once (up to as many again; then dropped, counted).", low=1, high=10000),
    Param("min_frames", 1, "Explain a track's decision only once it has this many frames of history.",
          low=1, high=10000),
    Param("breaker_failures", 2, "Consecutive failures (errors, timeouts, answers slower than slow_call_s) after "
          "which the language model is no longer asked: templates are served at once.", low=1, high=1000),
    Param("breaker_backoff_s", 15.0, "While the breaker is open, one trial request per this many seconds; also the "
          "least time between two failure log lines (s).", low=0.1, high=3600.0),
    Param("slow_call_s", 3.0, "An answer slower than this (s) is used but counts as a failure of the server.",
          low=0.01, high=120.0),
)


class LlmExplainerNode(Node):
    """Explains each track's decision when it is first made and whenever it flips."""

    def __init__(self, **kwargs) -> None:
        super().__init__("llm_explainer", **kwargs)
        p = declare(self, PARAMS)
        try:
            explainer = make_explainer(p["backend"], model=p["model"], base_url=p["base_url"] or None,
                                       api_key=os.environ.get(p["api_key_env"]) or None, timeout_s=p["timeout_s"])
        except ValueError as exc:
            raise ParameterError(f"explainer backend '{p['backend']}': {exc}") from exc
        self._min_frames = p["min_frames"]
        # the newest message of each live track, converted only when one of its decisions is explained
        # (a few a second) rather than every track every frame
        self._tracks: dict[tuple[str, int], TrackMsg] = {}
        self._score_sums: dict[tuple[str, int], tuple[float, int]] = {}
        self._last_keep: dict[tuple[str, int], bool] = {}
        self._pub = self.create_publisher(ExplanationMsg, "explanations", EVENT_QOS)
        self._uses_llm = not isinstance(explainer, TemplateExplainer)
        breaker, rate_limit_hz = None, None  # the template costs microseconds: every decision change, at once
        if self._uses_llm:
            breaker = CircuitBreaker(p["breaker_failures"], p["breaker_backoff_s"], p["slow_call_s"])
            rate_limit_hz = p["rate_limit_hz"]
        self._worker = ExplainerWorker(explainer, TemplateExplainer(), p["max_queue"], rate_limit_hz,
                                       self._publish, breaker=breaker, log=self._log,
                                       log_period_s=p["breaker_backoff_s"])
        for cam in CAMERAS:
            subscribe(self, TrackArray, f"stereo/{cam}/tracks", lambda m, c=cam: self._on_tracks(c, m), RELIABLE_QOS)
        subscribe(self, PersistenceDecisionArray, "persistence/decisions", self._on_decisions, RELIABLE_QOS)
        where = f" at {explainer.endpoint}" if hasattr(explainer, "endpoint") else ""
        self.get_logger().info(f"explainer: {type(explainer).__name__}{where}")

    def _log(self, level: int, text: str) -> None:
        """The worker's log lines (on its thread; already throttled there)."""
        if level >= logging.WARNING:
            self.get_logger().warning(text)
        else:
            self.get_logger().info(text)

    def _on_tracks(self, camera: str, msg: TrackArray) -> None:
        alive = {(camera, m.id) for m in msg.tracks if m.state != TrackState.LOST}
        for key in [k for k in self._tracks if k[0] == camera and k not in alive]:  # LOST or gone
            for table in (self._tracks, self._score_sums, self._last_keep):
                table.pop(key, None)
        for m in msg.tracks:
            key = (camera, m.id)
            if key not in alive:
                continue
            self._tracks[key] = m
            if m.frames_since_seen == 0:
                total, n = self._score_sums.get(key, (0.0, 0))
                self._score_sums[key] = (total + m.score, n + 1)

    def _on_decisions(self, msg: PersistenceDecisionArray) -> None:
        stamp = stamp_to_sec(msg.header.stamp)
        for m in msg.decisions:
            key = (m.camera, m.track_id)
            track_msg = self._tracks.get(key)
            # a TENTATIVE track (published with the world model's publish_tentative) is scored, not yet
            # the filter's to keep: its first explained decision comes once it is confirmed
            if track_msg is None or track_msg.state == TrackState.TENTATIVE or m.frames_observed < self._min_frames \
                    or self._last_keep.get(key) == m.keep:
                continue
            try:  # one bad decision (or track) is reported and skipped; the rest of the message is explained
                decision = decision_from_msg(m)
            except ConversionError as exc:
                self.get_logger().error(f"persistence/decisions: {exc}; that decision is skipped",
                                        throttle_duration_sec=2.0)
                continue
            try:
                track = track_from_msg(track_msg)
            except ConversionError as exc:
                self.get_logger().error(f"stereo/{m.camera}/tracks: track {m.track_id}: {exc}; its decision is skipped",
                                        throttle_duration_sec=2.0)
                continue
            total, n = self._score_sums.get(key, (track.score, 1))
            try:
                request = ExplanationRequest.from_decision(decision, track, m.camera, stamp, total / max(n, 1),
                                                           context=msg.header, model=msg.model)
            except ValueError as exc:  # e.g. a camera name other than left / right
                self.get_logger().error(f"persistence/decisions: decision on track {m.track_id} ({m.camera}): {exc}; "
                                        "that decision is skipped", throttle_duration_sec=2.0)
                continue
            if self._worker.submit(request):
                self._last_keep[key] = m.keep
            else:  # not remembered: the next decision on this track is offered again
                self.get_logger().warning("explanation queues full, request dropped (retried with the track's next "
                                          "decision)", throttle_duration_sec=5.0)

    def _publish(self, explanation: Explanation) -> None:
        """Called on the worker thread (rclpy publishers are thread-safe); the header is the
        decision's, carried in the request itself."""
        r = explanation.request
        header = r.context if isinstance(r.context, Header) else Header(stamp=sec_to_stamp(r.stamp))
        self._pub.publish(ExplanationMsg(
            header=header, track_id=r.track_id, camera=r.camera, kept=r.kept,
            score=float(r.score), text=explanation.text, source=explanation.source,
            rejected_reply=explanation.rejected_reply or ""))

    def close(self) -> None:
        stats = self._worker.stats()
        self._worker.close()
        if stats.get("overflowed") and self._uses_llm:
            self.get_logger().info(f"decisions explained by the template because the language model's queue was full: "
                                   f"{stats['overflowed']} (rate_limit_hz, max_queue)")
        if stats.get("rejected"):
            self.get_logger().warning(f"explainer replies rejected as ungrounded (template used): {stats['rejected']}")
        if stats.get("failures") or stats.get("short_circuited"):
            self.get_logger().warning(f"explainer failures: {stats['failures']}, requests served by the template while "
                                      f"the server was skipped: {stats['short_circuited']} (last error: "
                                      f"{stats.get('last_error')})")


main = main_for(LlmExplainerNode)
