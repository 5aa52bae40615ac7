"""Track ids that are never handed out twice: across rebuilds, resets and restarts.

A core object that is rebuilt (a new camera calibration, a time jump) must not restart its ids at 1:
a consumer would take a new object for an old one. The node owns one :class:`IdAllocator` for its
whole life and passes it to every core object it builds. Across process restarts the first id comes
from the wall clock (:meth:`IdAllocator.from_clock`): a run that starts later starts above every id
an earlier run can have reached, as long as ids are allocated more slowly than ``ids_per_second``.
"""
from __future__ import annotations

import math

#: The clock seed counts from 2025-01-01T00:00:00Z (Unix seconds), keeping the ids small.
ID_EPOCH_S = 1_735_689_600.0
#: Track ids travel as uint64; the largest kept below 2^53 so that a float64 (PointCloud2's widest
#: field) holds each one exactly.
MAX_TRACK_ID = 2**53 - 1
#: How many new ids a second a run may average for a clock-seeded restart never to reuse one.
CLOCK_IDS_PER_SECOND = 1e6


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class IdAllocator:
    """Strictly increasing integer ids ``first_id, first_id + 1, ...`` up to ``max_id``.

    Args:
        first_id: the first id handed out (>= 1; 0 is kept free as "no id").
        max_id: the largest id the consumer can carry (2³² - 1 for a ``uint32`` message field).

    Raises:
        ValueError: naming the argument, when ``first_id`` is not an integer in ``[1, max_id]``.
    """

    def __init__(self, first_id: int = 1, max_id: int = 2**32 - 1) -> None:
        if not _is_int(max_id) or max_id < 1:
            raise ValueError(f"max_id must be an integer >= 1, got {max_id!r}")
        if not _is_int(first_id) or not 1 <= first_id <= max_id:
            raise ValueError(f"first_id must be an integer in [1, max_id = {max_id}], got {first_id!r}")
        self._next = first_id
        self.max_id = max_id

    @classmethod
    def from_clock(cls, now_s: float, ids_per_second: float, max_id: int = 2**32 - 1) -> IdAllocator:
        """An allocator starting at ``1 + floor((now_s - ID_EPOCH_S) * ids_per_second)``.

        now_s: wall-clock Unix time of the start, seconds. ids_per_second: the most ids a run
        allocates per second of its life on average; a restart then never reuses an id of an
        earlier run (whose ids stay below the clock-seeded start of any later run).

        Raises:
            ValueError: naming the argument, for a time before ``ID_EPOCH_S``, a non-positive rate, or
                a start beyond ``max_id`` (the id type is too narrow for this rate).
        """
        if not (math.isfinite(now_s) and now_s >= ID_EPOCH_S):
            raise ValueError(f"now_s must be a Unix time after 2025-01-01 ({ID_EPOCH_S}), got {now_s!r}")
        if not (math.isfinite(ids_per_second) and ids_per_second > 0):
            raise ValueError(f"ids_per_second must be finite and positive, got {ids_per_second!r}")
        first = 1 + math.floor((now_s - ID_EPOCH_S) * ids_per_second)
        if first > max_id:
            raise ValueError(f"ids_per_second={ids_per_second} seeds the first id at {first} > max_id {max_id}: "
                             "the id type is too narrow for that rate")
        return cls(first, max_id)

    @property
    def next_id(self) -> int:
        """The id the next :meth:`allocate` returns."""
        return self._next

    def allocate(self) -> int:
        """A new id, larger than every id this allocator returned before.

        Raises:
            OverflowError: when ``max_id`` has been handed out (ids are never wrapped around).
        """
        if self._next > self.max_id:
            raise OverflowError(f"track ids exhausted: max_id {self.max_id} was already handed out")
        value = self._next
        self._next += 1
        return value


def node_id_allocator(first_id: int, now_s: float) -> IdAllocator:
    """The allocator a node keeps for its life: ``first_id`` when it is > 0 (tests, a fixed
    start), else seeded from the wall clock ``now_s`` at :data:`CLOCK_IDS_PER_SECOND`, so a restarted
    node starts above every id an earlier run handed out.

    Raises:
        ValueError: naming the argument, for a negative ``first_id`` or one beyond MAX_TRACK_ID.
    """
    if first_id < 0:
        raise ValueError(f"first_id must be >= 0 (0: seeded from the clock), got {first_id!r}")
    if first_id:
        return IdAllocator(first_id, MAX_TRACK_ID)
    return IdAllocator.from_clock(now_s, CLOCK_IDS_PER_SECOND, MAX_TRACK_ID)
