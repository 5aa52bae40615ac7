"""Runs an explainer off the control loop: bounded, deduplicated queue, rate limit, circuit
breaker, fallback.

The pipeline only ever calls :meth:`ExplainerWorker.submit`, which never blocks; a request that
finds the queue full is explained by the fallback (the offline template, microseconds) instead of
waiting for the rate-limited primary, and dropped only when there is no fallback. The wall clock is used here on purpose: it rate-limits calls to an external
service, it is not part of any algorithm on sensor data.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from object_permanence.core.explain.base import Explainer, ExplainerError, Explanation, ExplanationRequest
from object_permanence.core.explain.breaker import BreakerEvent, CircuitBreaker


class TokenBucket:
    """Token bucket: on average at most ``rate_hz`` acquisitions per second, bursts up to ``capacity``.

    Args:
        rate_hz: tokens added per second.
        capacity: bucket size (largest burst); the bucket starts full.
        clock: seconds, monotonic.

    Raises:
        ValueError: non-positive rate_hz, or capacity < 1.
    """

    def __init__(self, rate_hz: float, capacity: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        if not rate_hz > 0:
            raise ValueError(f"rate_hz must be > 0, got {rate_hz!r}")
        if not capacity >= 1:
            raise ValueError(f"capacity must be >= 1, got {capacity!r}")
        self.rate_hz = float(rate_hz)
        self.capacity = float(capacity)
        self._clock = clock
        self._tokens = self.capacity
        self._last = clock()

    def try_acquire(self) -> float:
        """Take one token if there is one and return 0; else return the seconds until there is one."""
        now = self._clock()
        # tokens = min(capacity, tokens + rate * dt)
        self._tokens = min(self.capacity, self._tokens + self.rate_hz * max(0.0, now - self._last))
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self.rate_hz


class ExplainerWorker:
    """A daemon thread that explains queued requests, at most ``rate_limit_hz`` explainer calls per second.

    A request for a track that is already queued (same camera and track id) replaces the older
    one in place: only the latest decision on a track is worth explaining. A request that finds
    ``max_queue`` requests waiting for the primary goes to the fallback instead (a second queue of
    the same bound, served first and without a rate-limit token; counted ``overflowed``): a busy
    scene changes more decisions a second than a language model is asked to explain, and each
    change still gets an explanation. Only when both queues are full, or there is no fallback, is
    it dropped (counted ``dropped``). When the explainer
    raises, the fallback (normally a TemplateExplainer) explains the request instead, and the
    failure is counted and remembered. ``on_result`` runs on the worker thread; an exception
    from it is counted, never propagated.

    With a ``breaker``, a primary that fails or is slow is not asked at all while the breaker is
    open: the fallback serves each request at once, without waiting for a rate-limit token, so
    the queue drains instead of overflowing, and the primary gets one trial request per back-off
    period. Failures and breaker changes go to ``log`` as ``(logging level, text)``, at most one
    line per ``log_period_s`` (a recovery is always logged), as are replies the explainer rejected
    as ungrounded (counted as ``rejected``; the server itself answered); the text names the explainer's
    ``endpoint`` (the URL it actually uses) and the error, never a key.

    Args:
        explainer: the primary explainer (e.g. an OpenAIExplainer).
        fallback: used when the primary fails or is skipped; None drops the request instead.
        max_queue: most requests waiting at once for the primary (and, apart, for the fallback).
        rate_limit_hz: most calls to ``explainer`` per second (no bursts above one call); None: no
            limit (an in-process explainer such as the template, which costs nothing to call).
        on_result: called with each finished Explanation.
        clock: seconds, monotonic; injectable for tests (rate limit, breaker and log throttle).
        breaker: the primary's circuit breaker, or None (every request goes to the primary).
        log: receives ``(level, text)`` log lines (levels of the ``logging`` module); None: silent.
        log_period_s: the least time between two throttled log lines, > 0.

    Raises:
        ValueError: max_queue < 1 or a non-positive rate_limit_hz (other than None) or log_period_s.
    """

    def __init__(
        self,
        explainer: Explainer,
        fallback: Explainer | None,
        max_queue: int,
        rate_limit_hz: float | None,
        on_result: Callable[[Explanation], None],
        clock: Callable[[], float] = time.monotonic,
        breaker: CircuitBreaker | None = None,
        log: Callable[[int, str], None] | None = None,
        log_period_s: float = 30.0,
    ) -> None:
        if max_queue < 1:
            raise ValueError(f"max_queue must be >= 1, got {max_queue!r}")
        if rate_limit_hz is not None and not rate_limit_hz > 0:
            raise ValueError(f"rate_limit_hz must be > 0 or None, got {rate_limit_hz!r}")
        if not log_period_s > 0:
            raise ValueError(f"log_period_s must be > 0, got {log_period_s!r}")
        self._explainer = explainer
        self._fallback = fallback
        self._max_queue = int(max_queue)
        self._on_result = on_result
        self._clock = clock
        self._bucket = TokenBucket(rate_limit_hz, capacity=1.0, clock=clock) if rate_limit_hz is not None else None
        self._breaker = breaker
        self._log = log
        self._log_bucket = TokenBucket(1.0 / log_period_s, capacity=1.0, clock=clock)
        self._suppressed = 0
        self._endpoint = str(getattr(explainer, "endpoint", type(explainer).__name__))
        self._pending: OrderedDict[tuple[str, int], ExplanationRequest] = OrderedDict()
        self._overflow: OrderedDict[tuple[str, int], ExplanationRequest] = OrderedDict()  # for the fallback
        self._cond = threading.Condition()
        self._closing = False
        self._counts = dict.fromkeys(
            ("submitted", "replaced", "dropped", "overflowed", "explained", "failures", "fallbacks", "unexplained",
             "callback_errors", "short_circuited", "slow_calls", "rejected"),
            0,
        )
        self._last_error = ""
        self._thread = threading.Thread(target=self._run, name="explainer-worker", daemon=True)
        self._thread.start()

    def submit(self, request: ExplanationRequest) -> bool:
        """Queue a request without blocking (for the fallback when the primary's queue is full);
        False (and counted as dropped) when it cannot be queued or the worker is closed."""
        key = (request.camera, request.track_id)
        with self._cond:
            if self._closing:
                self._counts["dropped"] += 1
                return False
            queue = next((q for q in (self._pending, self._overflow) if key in q), None)
            if queue is not None:
                queue[key] = request  # replaces the older request, keeps its place
                self._counts["replaced"] += 1
            elif len(self._pending) < self._max_queue:
                self._pending[key] = request
            elif self._fallback is not None and len(self._overflow) < self._max_queue:
                self._overflow[key] = request
                self._counts["overflowed"] += 1
            else:
                self._counts["dropped"] += 1
                return False
            self._counts["submitted"] += 1
            self._cond.notify()
            return True

    def stats(self) -> dict[str, Any]:
        """Counters (submitted, replaced, dropped, overflowed: requests sent to the fallback because
        the primary's queue was full, explained, failures, fallbacks, unexplained,
        callback_errors, short_circuited: requests not sent because the breaker was open,
        slow_calls: answers slower than the breaker's slow_call_s, used but counted against it,
        rejected: answers the explainer itself rejected as ungrounded and replaced by its template),
        ``pending``, ``last_error`` ("" when none), ``breaker`` (its state, "none" without one)
        and ``alive``."""
        with self._cond:
            return {
                **self._counts,
                "pending": len(self._pending) + len(self._overflow),
                "last_error": self._last_error,
                "breaker": self._breaker.state.value if self._breaker is not None else "none",
                "alive": self._thread.is_alive(),
            }

    def close(self, timeout: float = 5.0) -> bool:
        """Stop the thread, discarding pending requests; True when it stopped within ``timeout`` s.

        A call to the explainer in flight is not interrupted: it ends within the explainer's own timeout.
        """
        with self._cond:
            self._closing = True
            self._pending.clear()
            self._overflow.clear()
            self._cond.notify_all()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def __enter__(self) -> ExplainerWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _next_request(self) -> tuple[ExplanationRequest, str] | None:
        """Wait for a request and, unless it goes to the fallback, a rate-limit token. Returns the
        request and its route: ``primary``, ``short_circuited`` (breaker open) or ``overflowed``;
        None when closing."""
        with self._cond:
            while not self._closing:
                if self._overflow:  # the fallback answers at once, no token
                    return self._overflow.popitem(last=False)[1], "overflowed"
                if not self._pending:
                    self._cond.wait()
                    continue
                if self._breaker is not None and not self._breaker.allows_call():
                    # open: the fallback answers at once, no token (the server is not called)
                    return self._pending.popitem(last=False)[1], "short_circuited"
                wait_s = self._bucket.try_acquire() if self._bucket is not None else 0.0
                if wait_s == 0.0:
                    ask_primary = self._breaker.acquire() if self._breaker is not None else True
                    # Taken only now, so that a replacement submitted while waiting is the one explained.
                    return self._pending.popitem(last=False)[1], "primary" if ask_primary else "short_circuited"
                self._cond.wait(wait_s)
            return None

    def _run(self) -> None:
        while (item := self._next_request()) is not None:
            result = self._explain(*item)
            if result is None:
                continue
            try:
                self._on_result(result)
            except Exception as exc:  # noqa: BLE001 - a faulty consumer must not stop the worker
                self._record("callback_errors", f"on_result raised {type(exc).__name__}: {exc}")

    def _record(self, counter: str, error: str = "") -> None:
        with self._cond:
            self._counts[counter] += 1
            if error:
                self._last_error = error

    def _emit(self, level: int, text: str, throttled: bool = True) -> None:
        """Pass a log line on, at most one throttled (failure) line per log period; the count of
        those suppressed meanwhile is appended to the next line passed on."""
        if self._log is None:
            return
        if throttled and self._log_bucket.try_acquire() > 0.0:
            self._suppressed += 1
            return
        if self._suppressed:
            text += f" ({self._suppressed} failure line{'s' if self._suppressed > 1 else ''} suppressed before this)"
            self._suppressed = 0
        self._log(level, text)

    def _on_primary_failure(self, error: str, slow: bool = False) -> None:
        """Count a failure (or a too slow answer), feed the breaker and log what changed."""
        self._record("slow_calls" if slow else "failures", "" if slow else error)
        event = self._breaker.record_failure() if self._breaker is not None else None
        if event is BreakerEvent.OPENED:
            self._emit(logging.WARNING, f"explainer server {self._endpoint} failing ({error}); serving template "
                                        "explanations at once, retrying the server every "
                                        f"{self._breaker.backoff_s:g} s")
        elif event is BreakerEvent.STILL_FAILING:
            self._emit(logging.WARNING, f"explainer server {self._endpoint} still failing ({error}); next retry in "
                                        f"{self._breaker.backoff_s:g} s")
        elif not slow:
            self._emit(logging.WARNING, f"explainer request failed, template used: {error}")

    def _explain(self, request: ExplanationRequest, route: str) -> Explanation | None:
        """The primary's explanation (route ``primary``), else the fallback's, else None; counts which."""
        if route == "primary":
            start = self._clock()
            try:
                result = self._explainer.explain(request)
            except ExplainerError as exc:
                self._on_primary_failure(str(exc))
            except Exception as exc:  # noqa: BLE001 - a bug in the explainer must not stop the worker either
                self._on_primary_failure(f"{type(exc).__name__}: {exc}")
            else:
                self._record("explained")
                self._on_primary_success(self._clock() - start)
                if result.rejected_reply is not None:  # the server answered; what it wrote was not grounded
                    self._record("rejected")
                    self._emit(logging.WARNING, f"explainer reply rejected, {result.source}: "
                                                f"{result.rejected_reply[:200]!r}")
                return result
        elif route == "short_circuited":  # (an overflowed request was counted when it was queued)
            self._record("short_circuited")
        if self._fallback is None:
            self._record("unexplained")
            return None
        try:
            result = self._fallback.explain(request)
        except Exception as exc:  # noqa: BLE001 - nor the fallback failing too
            self._record("unexplained", f"fallback failed: {type(exc).__name__}: {exc}")
            return None
        self._record("fallbacks")
        return result

    def _on_primary_success(self, duration_s: float) -> None:
        if self._breaker is None:
            return
        if duration_s > self._breaker.slow_call_s:
            self._on_primary_failure(f"answered in {duration_s:.1f} s, slower than slow_call_s="
                                     f"{self._breaker.slow_call_s:g} s", slow=True)
            return
        if self._breaker.record_success(duration_s) is BreakerEvent.RECOVERED:
            self._emit(logging.INFO, f"explainer server {self._endpoint} answers again; language-model "
                                     "explanations resumed", throttled=False)
