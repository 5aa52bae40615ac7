"""Exact-stamp synchronisation of several topics (the project's stand-in for message_filters).

Stereo pairs share one stamp (the capture node stamps both images of a pair alike), so
matching is exact: messages wait in a bounded per-stamp buffer until every input of that stamp
has arrived; incomplete sets are dropped oldest first and counted.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Hashable, Sequence


class ExactStampSynchronizer:
    """Calls ``callback(*msgs)`` once all ``n_inputs`` messages with one stamp have arrived."""

    def __init__(self, n_inputs: int, callback: Callable[..., None], queue_size: int = 10) -> None:
        if n_inputs < 1:
            raise ValueError(f"n_inputs must be >= 1, got {n_inputs}")
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        self._n = n_inputs
        self._callback = callback
        self._queue_size = queue_size
        self._pending: OrderedDict[Hashable, list[Any]] = OrderedDict()
        self.dropped = 0

    def add(self, index: int, stamp: Hashable, msg: Any) -> None:
        """Add input ``index``'s message of ``stamp`` (any hashable, e.g. (sec, nanosec))."""
        slots = self._pending.get(stamp)
        if slots is None:
            slots = self._pending[stamp] = [None] * self._n
            while len(self._pending) > self._queue_size:
                self._pending.popitem(last=False)
                self.dropped += 1
        slots[index] = msg
        if all(m is not None for m in slots):
            del self._pending[stamp]
            # Anything older than a completed set can no longer complete in order: drop it.
            for old in [s for s in self._pending if _older(s, stamp)]:
                del self._pending[old]
                self.dropped += 1
            self._callback(*slots)

    def inputs(self, stamp_of: Callable[[Any], Hashable]) -> Sequence[Callable[[Any], None]]:
        """One subscription callback per input, extracting the stamp with ``stamp_of``."""
        return [lambda msg, i=i: self.add(i, stamp_of(msg), msg) for i in range(self._n)]


def _older(a: Hashable, b: Hashable) -> bool:
    try:
        return a < b  # type: ignore[operator]
    except TypeError:
        return False


def header_stamp_key(msg: Any) -> tuple[int, int]:
    """The (sec, nanosec) of a stamped message's header, usable as a synchroniser key."""
    return (msg.header.stamp.sec, msg.header.stamp.nanosec)


def report_sync_drops(node, sync: ExactStampSynchronizer, reported: int) -> int:
    """Log (throttled) how many incomplete sets ``sync`` has dropped since ``reported``; returns the
    new count to remember."""
    if sync.dropped > reported:
        node.get_logger().warning(f"{sync.dropped} incomplete stereo sets dropped so far (a partner message "
                                  "never arrived: dropped images or a slow upstream node)", throttle_duration_sec=5.0)
    return sync.dropped
