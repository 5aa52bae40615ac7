"""Time synchronisation of several stamped inputs (the project's stand-in for message_filters).

:class:`ApproximateTimeSynchronizer` groups one message per input whose stamps lie within
``slop_s`` of each other, as message_filters' ApproximateTimeSynchronizer does, so that two
independent camera drivers (or a bag of them) pair; with ``slop_s = 0`` it is exact matching, as
for this package's capture node, which stamps both images of a pair alike. The algorithm is
ROS-free (stamps are seconds, ``(sec, nanosec)`` pairs or anything with ``sec``/``nanosec``);
:class:`SyncMonitor` is the one piece that takes a node: a timer that says, throttled, when no
set completes and by how much the inputs' stamps differ.
"""
from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

NS_PER_S = 1_000_000_000
# Inter-message gaps remembered per input to bound when its next message can be stamped.
GAP_HISTORY = 8


@dataclass
class _Input:
    """One input's state: unused messages sorted by stamp, its newest stamp and recent gaps (ns)."""

    queue: list[tuple[int, int, Any]] = field(default_factory=list)  # (stamp, arrival number, message)
    newest_ns: int | None = None
    emitted_ns: int | None = None  # stamp of its message in the last emitted set
    gaps: deque[int] = field(default_factory=lambda: deque(maxlen=GAP_HISTORY))
    received: int = 0
    dropped: int = 0

    def earliest_next_ns(self) -> int:
        """The earliest stamp its next message can have: the newest plus the smallest recent gap
        (plus 0 while no gap is known)."""
        return self.newest_ns + (min(self.gaps) if self.gaps else 0)


class ApproximateTimeSynchronizer:
    """Calls ``callback(*msgs)`` with one message per input whose stamps lie within ``slop_s``.

    Algorithm (a documented variant of message_filters' ApproximateTime policy; inputs are
    assumed to arrive in stamp order per input, in any interleaving across inputs — true of a
    driver, a DDS writer and a bag):

    1. Each input keeps its unused messages sorted by stamp. Sets are emitted in stamp order and
       each message is used at most once.
    2. Pivot on the earliest queue head ``s`` (input ``a``). The tightest set containing ``s`` is
       the set of queue heads ``H`` (every other message is later). If ``span(H) > slop`` no set
       can ever contain ``s`` (later messages of the widest input are later still: the "no
       earlier message could still arrive" rule), so ``s`` is dropped.
    3. Otherwise ``H`` is valid. It is emitted at once unless a later message of input ``a``
       could form a tighter set with ``H``'s other members. A queued later message of ``a``
       that does makes ``s`` dropped; one not received yet is stamped no earlier than
       ``newest(a) + min gap(a)`` (the smallest of the last few gaps between its stamps, the
       rate bound message_filters takes as a parameter), and ``H`` waits for it only when that
       bound leaves room for a tighter set. Hence exact stamps and steady-rate streams pair
       without delay; only the first frames of an input (no gap known yet) can wait for its
       next message.

    For two inputs step 3 makes every set the tightest available under those assumptions; for
    more inputs it is a greedy approximation. ``slop_s = 0`` is exact matching. Choose
    ``slop_s`` below half the frame period, as for message_filters: beyond it a frame may pair
    with a neighbour's partner.

    Args:
        n_inputs: number of inputs (>= 1).
        callback: called as ``callback(msg_0, ..., msg_{n-1})`` from within :meth:`add`.
        queue_size: most unused messages kept per input; the oldest is dropped beyond it.
        slop_s: largest stamp difference (seconds) within one set, >= 0.
        time_jump_reset_s: a message stamped this much or more before its input's newest stamp
            means time went back (a bag replayed again, a clock reset): everything waiting is
            forgotten and pairing starts afresh from that message (:attr:`resets` counts it);
            a smaller step back is an out-of-order message and is dropped.

    Attributes:
        dropped: messages discarded without being part of a set (all inputs together).
        emitted: sets passed to ``callback``.
        resets: time jumps back that restarted the synchroniser.

    Raises:
        ValueError: n_inputs < 1, queue_size < 1, a negative or non-finite slop_s, a
        non-positive time_jump_reset_s.
    """

    def __init__(self, n_inputs: int, callback: Callable[..., None], queue_size: int = 10,
                 slop_s: float = 0.0, time_jump_reset_s: float = 1.0) -> None:
        if n_inputs < 1:
            raise ValueError(f"n_inputs must be >= 1, got {n_inputs}")
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        if not 0.0 <= slop_s < float("inf"):
            raise ValueError(f"slop_s must be a finite number of seconds >= 0, got {slop_s}")
        if not 0.0 < time_jump_reset_s < float("inf"):
            raise ValueError(f"time_jump_reset_s must be a finite number of seconds > 0, got {time_jump_reset_s}")
        self._n = n_inputs
        self._callback = callback
        self._queue_size = queue_size
        self.slop_s = float(slop_s)
        self._slop_ns = round(slop_s * NS_PER_S)
        self._jump_ns = round(time_jump_reset_s * NS_PER_S)
        self._inputs = [_Input() for _ in range(n_inputs)]
        self._arrivals = 0
        self.emitted = 0
        self.resets = 0

    def reset(self) -> None:
        """Forget every waiting message and stamp (the counters of dropped messages are kept)."""
        dropped = [i.dropped + len(i.queue) for i in self._inputs]
        received = [i.received for i in self._inputs]
        self._inputs = [_Input(received=r, dropped=d) for r, d in zip(received, dropped)]

    @property
    def n_inputs(self) -> int:
        return self._n

    @property
    def dropped(self) -> int:
        return sum(i.dropped for i in self._inputs)

    def dropped_per_input(self) -> list[int]:
        """Messages dropped so far, per input."""
        return [i.dropped for i in self._inputs]

    def received_per_input(self) -> list[int]:
        """Messages added so far, per input."""
        return [i.received for i in self._inputs]

    def pending_per_input(self) -> list[int]:
        """Messages waiting for a set, per input."""
        return [len(i.queue) for i in self._inputs]

    def newest_stamps(self) -> list[float | None]:
        """The newest stamp (seconds) received on each input, None for an input still silent."""
        return [None if i.newest_ns is None else i.newest_ns / NS_PER_S for i in self._inputs]

    def add(self, index: int, stamp: Any, msg: Any) -> None:
        """Add input ``index``'s message stamped ``stamp`` (seconds, ``(sec, nanosec)`` or an
        object with ``sec`` and ``nanosec``), emitting every set it completes.

        Raises:
            ValueError: an index outside [0, n_inputs) or a stamp of none of those forms.
        """
        if not 0 <= index < self._n:
            raise ValueError(f"index must be in [0, {self._n}), got {index}")
        t = stamp_ns(stamp)
        if self._inputs[index].newest_ns is not None and t <= self._inputs[index].newest_ns - self._jump_ns:
            self.reset()
            self.resets += 1
        state = self._inputs[index]
        state.received += 1
        if state.emitted_ns is not None and t <= state.emitted_ns:
            state.dropped += 1  # older than a set already emitted: it can no longer be in order
            return
        if state.newest_ns is not None and t > state.newest_ns:
            state.gaps.append(t - state.newest_ns)
        state.newest_ns = t if state.newest_ns is None else max(state.newest_ns, t)
        self._arrivals += 1
        bisect.insort(state.queue, (t, self._arrivals, msg))
        if len(state.queue) > self._queue_size:
            del state.queue[0]
            state.dropped += 1
        self._process()

    def inputs(self, stamp_of: Callable[[Any], Any] | None = None) -> Sequence[Callable[[Any], None]]:
        """One subscription callback per input; ``stamp_of(msg)`` gives the stamp
        (default: the header stamp, :func:`header_stamp_key`)."""
        key = stamp_of or header_stamp_key
        return [lambda msg, i=i: self.add(i, key(msg), msg) for i in range(self._n)]

    def _process(self) -> None:
        """Emit or drop queue heads until a set has to wait for more messages."""
        while all(i.queue for i in self._inputs):
            heads = [i.queue[0][0] for i in self._inputs]
            a = min(range(self._n), key=heads.__getitem__)
            s, end = heads[a], max(heads)
            if end - s > self._slop_ns:  # span(H) > slop: s can never be in a set
                self._drop_head(a)
                continue
            verdict = self._later_could_be_tighter(a, heads)
            if verdict == "wait":
                return
            if verdict == "drop":
                self._drop_head(a)
                continue
            self._emit()

    def _later_could_be_tighter(self, a: int, heads: list[int]) -> str:
        """Whether a later message of input ``a`` forms a tighter set with the other heads than
        its head does: "drop" (a queued one does), "wait" (one not yet received might) or "emit"."""
        if self._n == 1:
            return "emit"
        others = heads[:a] + heads[a + 1:]
        low, high = min(others), max(others)
        span = high - heads[a]  # span(H): heads[a] is the earliest head
        state = self._inputs[a]
        # span of (H without s) + t = max(high, t) - min(low, t), for each queued later t
        if any(max(high, t) - min(low, t) < span for t, _, _ in state.queue[1:]):
            return "drop"
        # for any t >= earliest_next, the tightest such a set can be is max(high, earliest_next) - low
        return "wait" if max(high, state.earliest_next_ns()) - low < span else "emit"

    def _drop_head(self, index: int) -> None:
        del self._inputs[index].queue[0]
        self._inputs[index].dropped += 1

    def _emit(self) -> None:
        msgs = []
        for state in self._inputs:
            t, _, msg = state.queue.pop(0)
            state.emitted_ns = t
            msgs.append(msg)
        self.emitted += 1
        self._callback(*msgs)


class ExactStampSynchronizer(ApproximateTimeSynchronizer):
    """Exact-stamp matching: an :class:`ApproximateTimeSynchronizer` with ``slop_s = 0``."""

    def __init__(self, n_inputs: int, callback: Callable[..., None], queue_size: int = 10,
                 time_jump_reset_s: float = 1.0) -> None:
        super().__init__(n_inputs, callback, queue_size, slop_s=0.0, time_jump_reset_s=time_jump_reset_s)


def stamp_ns(stamp: Any) -> int:
    """Integer nanoseconds of ``stamp``: seconds (int or float), ``(sec, nanosec)`` or an object
    with ``sec`` and ``nanosec`` (builtin_interfaces/Time). Integers keep equal stamps equal.

    Raises:
        ValueError: anything else, or a non-finite number of seconds.
    """
    if hasattr(stamp, "sec") and hasattr(stamp, "nanosec"):
        return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)
    if isinstance(stamp, tuple) and len(stamp) == 2:
        return int(stamp[0]) * NS_PER_S + int(stamp[1])
    if isinstance(stamp, (int, float)) and not isinstance(stamp, bool):
        if stamp != stamp or stamp in (float("inf"), float("-inf")):
            raise ValueError(f"stamp must be finite, got {stamp}")
        return round(stamp * NS_PER_S)
    raise ValueError(f"stamp must be seconds, (sec, nanosec) or a Time, got {stamp!r}")


def header_stamp_key(msg: Any) -> tuple[int, int]:
    """The (sec, nanosec) of a stamped message's header."""
    return (msg.header.stamp.sec, msg.header.stamp.nanosec)


class SyncMonitor:
    """A timer on ``node`` that warns, once per ``period_s``, when ``sync`` completed no set in
    that period although messages arrived — naming how far apart the inputs' newest stamps are
    and the slop — and when it dropped messages (per input).

    The synchroniser itself never logs: a pair that never completes would otherwise go unseen.

    Args:
        node: an rclpy node (``create_timer`` and ``get_logger`` are used).
        sync: the synchroniser to watch.
        period_s: seconds between checks (> 0).
        what: what a set is called in the messages, e.g. "stereo pair".
        input_names: one name per input, e.g. ("left", "right").

    Raises:
        ValueError: a non-positive period_s or input_names of the wrong length.
    """

    def __init__(self, node: Any, sync: ApproximateTimeSynchronizer, period_s: float = 5.0,
                 what: str = "stereo pair", input_names: Sequence[str] | None = None) -> None:
        if not period_s > 0:
            raise ValueError(f"period_s must be > 0, got {period_s}")
        names = list(input_names) if input_names is not None else [f"input {i}" for i in range(sync.n_inputs)]
        if len(names) != sync.n_inputs:
            raise ValueError(f"input_names must name {sync.n_inputs} inputs, got {names}")
        self._node = node
        self._sync = sync
        self._period_s = float(period_s)
        self._what = what
        self._names = names
        self._last = (sync.emitted, sync.received_per_input(), sync.dropped_per_input())
        self.timer = node.create_timer(self._period_s, self._on_timer)

    def check(self) -> list[str]:
        """The warnings for the period since the last check (and start a new period)."""
        emitted, received, dropped = self._sync.emitted, self._sync.received_per_input(), self._sync.dropped_per_input()
        last_emitted, last_received, last_dropped = self._last
        self._last = (emitted, received, dropped)
        lines = []
        if emitted == last_emitted and sum(received) > sum(last_received):
            lines.append(f"no complete {self._what} in the last {self._period_s:g} s; {self._stamp_spread()} "
                         f"(sync_slop_s={self._sync.slop_s:g})")
        new_drops = [d - d0 for d, d0 in zip(dropped, last_dropped)]
        if any(new_drops):
            per_input = ", ".join(f"{n} {k}" for n, k in zip(self._names, new_drops) if k)
            lines.append(f"{sum(new_drops)} messages dropped without a {self._what} in the last {self._period_s:g} s "
                         f"({per_input}): a partner never arrived within sync_slop_s={self._sync.slop_s:g} "
                         "(dropped or late messages, a slow upstream node, or stamps further apart than the slop)")
        return lines

    def _stamp_spread(self) -> str:
        stamps = self._sync.newest_stamps()
        silent = [n for n, s in zip(self._names, stamps) if s is None]
        if silent:
            return f"nothing received yet on {', '.join(silent)}"
        # the spread of the inputs' newest stamps, milliseconds
        spread_ms = (max(stamps) - min(stamps)) * 1e3
        newest = ", ".join(f"{n} {s:.3f}" for n, s in zip(self._names, stamps))
        return f"newest stamps per input differ by {spread_ms:.1f} ms ({newest})"

    def _on_timer(self) -> None:
        for line in self.check():
            self._node.get_logger().warning(line)


def report_sync_drops(node: Any, sync: ApproximateTimeSynchronizer, reported: int) -> int:
    """Log (throttled) how many messages ``sync`` has dropped since ``reported``; returns the new
    count to remember. Superseded by :class:`SyncMonitor`, which also reports sets that never
    complete."""
    if sync.dropped > reported:
        node.get_logger().warning(f"{sync.dropped} messages dropped so far without a partner (dropped images, a "
                                  "slow upstream node or stamps further apart than the slop)",
                                  throttle_duration_sec=5.0)
    return sync.dropped
