"""Tests for core.id_allocator: ids never handed out twice, across rebuilds and restarts."""
from __future__ import annotations

import pytest

from object_permanence.core.id_allocator import ID_EPOCH_S, IdAllocator


def test_ids_increase_from_first_id_and_stop_at_max_id():
    ids = IdAllocator(first_id=7, max_id=9)
    assert ids.next_id == 7
    assert [ids.allocate() for _ in range(3)] == [7, 8, 9]
    with pytest.raises(OverflowError, match="max_id 9"):
        ids.allocate()


def test_a_restart_starts_above_every_id_of_an_earlier_run():
    """A run started at t0 that allocated at the budgeted rate for its whole life ends below the
    first id of a run started when it ended."""
    rate = 1000.0
    t0 = ID_EPOCH_S + 3.0e7
    first_run = IdAllocator.from_clock(t0, rate, max_id=2**63)
    life_s = 120.0
    last = [first_run.allocate() for _ in range(int(life_s * rate))][-1]
    restarted = IdAllocator.from_clock(t0 + life_s, rate, max_id=2**63)
    assert restarted.allocate() > last


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"first_id": 0}, "first_id"),
    ({"first_id": 1.0}, "first_id"),
    ({"first_id": True}, "first_id"),
    ({"first_id": 11, "max_id": 10}, "first_id"),
    ({"max_id": 0}, "max_id"),
])
def test_constructor_validation_names_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        IdAllocator(**kwargs)


def test_clock_seed_validation():
    with pytest.raises(ValueError, match="now_s"):
        IdAllocator.from_clock(ID_EPOCH_S - 1.0, 10.0)
    with pytest.raises(ValueError, match="ids_per_second"):
        IdAllocator.from_clock(ID_EPOCH_S + 1.0, 0.0)
    with pytest.raises(ValueError, match="too narrow"):  # 10^6 ids/s over a year does not fit 32 bits
        IdAllocator.from_clock(ID_EPOCH_S + 3.2e7, 1e6, max_id=2**32 - 1)
