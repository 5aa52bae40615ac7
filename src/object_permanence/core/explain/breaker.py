"""A circuit breaker for the explainer's language-model server.

Without one, every request to a server that is down or slow waits the full timeout, one after
the other, and the bounded queue behind it overflows. The breaker opens after
``failure_threshold`` consecutive failures (an error, a timeout, or an answer slower than
``slow_call_s``); while open, requests are not sent (the worker serves the template at once);
once per ``backoff_s`` one trial request is let through (half-open): a success closes the
breaker, a failure opens it for another period.
"""
from __future__ import annotations

import enum
import math
import threading
import time
from collections.abc import Callable


class BreakerState(enum.Enum):
    """CLOSED: calls go to the server. OPEN: they do not. HALF_OPEN: one trial call is under way."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class BreakerEvent(enum.Enum):
    """A state change worth a log line, returned by the ``record_*`` methods."""

    OPENED = "opened"  # closed -> open: the server just started failing
    STILL_FAILING = "still failing"  # a trial call failed: open for another period
    RECOVERED = "recovered"  # a trial call succeeded: closed again


class CircuitBreaker:
    """Decides whether the next request may go to the server (thread-safe).

    Args:
        failure_threshold: consecutive failures that open the breaker, >= 1.
        backoff_s: seconds the breaker stays open before one trial call, > 0.
        slow_call_s: a successful call that took longer than this (seconds) counts as a
            failure, > 0 (``math.inf``: never).
        clock: seconds, monotonic; injectable for tests.

    Raises:
        ValueError: failure_threshold < 1, or a non-positive backoff_s or slow_call_s.
    """

    def __init__(self, failure_threshold: int = 2, backoff_s: float = 15.0, slow_call_s: float = math.inf,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be >= 1, got {failure_threshold!r}")
        if not (backoff_s > 0 and math.isfinite(backoff_s)):
            raise ValueError(f"backoff_s must be a finite number of seconds > 0, got {backoff_s!r}")
        if not slow_call_s > 0:
            raise ValueError(f"slow_call_s must be > 0 seconds (inf: never slow), got {slow_call_s!r}")
        self.failure_threshold = int(failure_threshold)
        self.backoff_s = float(backoff_s)
        self.slow_call_s = float(slow_call_s)
        self._clock = clock
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._failures = 0  # consecutive
        self._retry_at = 0.0
        self.opened_count = 0

    @property
    def state(self) -> BreakerState:
        with self._lock:
            return self._state

    def allows_call(self) -> bool:
        """Whether :meth:`acquire` would let a call through now (nothing is reserved)."""
        with self._lock:
            return self._allows(self._clock())

    def _allows(self, now: float) -> bool:
        return self._state is BreakerState.CLOSED or (self._state is BreakerState.OPEN and now >= self._retry_at)

    def retry_in_s(self) -> float:
        """Seconds until the next trial call may go (0 while calls are allowed)."""
        with self._lock:
            if self._state is not BreakerState.OPEN:
                return 0.0
            return max(0.0, self._retry_at - self._clock())

    def acquire(self) -> bool:
        """Take the right to call the server now: always while closed; once the back-off has
        passed while open (the trial call: the breaker is half-open until it is recorded)."""
        with self._lock:
            if not self._allows(self._clock()):
                return False
            if self._state is BreakerState.OPEN:
                self._state = BreakerState.HALF_OPEN
            return True

    def record_success(self, duration_s: float) -> BreakerEvent | None:
        """Record a call that answered after ``duration_s`` seconds (slower than
        ``slow_call_s``: a failure)."""
        if duration_s > self.slow_call_s:
            return self.record_failure()
        with self._lock:
            self._failures = 0
            if self._state is BreakerState.CLOSED:
                return None
            self._state = BreakerState.CLOSED
            return BreakerEvent.RECOVERED

    def record_failure(self) -> BreakerEvent | None:
        """Record a failed (or too slow) call."""
        with self._lock:
            self._failures += 1
            if self._state is BreakerState.CLOSED and self._failures < self.failure_threshold:
                return None
            event = BreakerEvent.OPENED if self._state is BreakerState.CLOSED else BreakerEvent.STILL_FAILING
            self._state = BreakerState.OPEN
            self._retry_at = self._clock() + self.backoff_s
            if event is BreakerEvent.OPENED:
                self.opened_count += 1
            return event
