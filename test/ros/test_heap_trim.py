"""The heap trimmer of every node process (ros/heap_trim.py) and its environment variable."""
from __future__ import annotations

import threading

import pytest

from object_permanence.ros.heap_trim import (
    DEFAULT_PERIOD_S,
    PERIOD_ENV,
    HeapTrimmer,
    glibc_malloc_trim,
    period_from_env,
    start_heap_trimmer,
)


def test_period_from_env_default_value_and_disable() -> None:
    assert period_from_env({}) == DEFAULT_PERIOD_S
    assert period_from_env({PERIOD_ENV: " "}) == DEFAULT_PERIOD_S
    assert period_from_env({PERIOD_ENV: "2.5"}) == 2.5
    assert period_from_env({PERIOD_ENV: "0"}) == 0.0


@pytest.mark.parametrize("raw", ["-1", "nan", "inf", "soon"])
def test_period_from_env_rejects_bad_values_naming_the_variable(raw: str) -> None:
    with pytest.raises(ValueError, match=PERIOD_ENV):
        period_from_env({PERIOD_ENV: raw})


def test_trimmer_trims_periodically_until_stopped() -> None:
    calls: list[int] = []
    third = threading.Event()

    def fake_trim(pad: int) -> int:
        calls.append(pad)
        if len(calls) >= 3:
            third.set()
        return 1

    trimmer = HeapTrimmer(0.01, fake_trim).start()
    assert third.wait(10.0), "the trimmer did not trim three times"
    trimmer.stop()
    done = len(calls)
    assert calls == [0] * done and trimmer.trims == done
    threading.Event().wait(0.05)
    assert len(calls) == done, "the trimmer went on after stop()"


def test_trimmer_rejects_a_non_positive_period() -> None:
    with pytest.raises(ValueError, match="period_s"):
        HeapTrimmer(0.0, lambda pad: 0)


def test_start_heap_trimmer_is_off_at_period_zero() -> None:
    assert start_heap_trimmer(0.0) is None


def test_glibc_trim_releases_freed_heap() -> None:
    trim = glibc_malloc_trim()
    if trim is None:
        pytest.skip("this C library has no malloc_trim")
    assert trim(0) in (0, 1)  # 1: memory was released, 0: there was none to release


def test_node_process_rejects_a_bad_trim_period(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("rclpy", reason="rclpy is not importable (source scripts/ros_env.sh)")
    from object_permanence.ros.runner import spin_nodes

    def never_built() -> None:
        raise AssertionError("no node may be built with a bad environment")

    monkeypatch.setenv(PERIOD_ENV, "-3")
    assert spin_nodes([never_built], ["test"]) == 2
