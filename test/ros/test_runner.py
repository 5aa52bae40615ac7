"""The executor every executable spins on: chosen by OBJECT_PERMANENCE_EXECUTOR, and each one stops
when a node shuts the context down (the stop path of a real signal: test/ros/test_shutdown.py)."""
from __future__ import annotations

import pytest

pytest.importorskip("rclpy", reason="rclpy is not importable (source scripts/ros_env.sh)")

import rclpy  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.experimental import EventsExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402

from object_permanence.ros import runner  # noqa: E402
from object_permanence.ros.runner import EXECUTOR_ENV, make_executor, spin_nodes  # noqa: E402

pytestmark = pytest.mark.ros


class _RecordingLogger:
    def __init__(self) -> None:
        self.errors: list[str] = []
        self.warnings: list[str] = []

    def error(self, message: str) -> None:
        self.errors.append(message)

    def warning(self, message: str) -> None:
        self.warnings.append(message)


@pytest.mark.parametrize(("value", "kind", "logged"), [
    (None, "EventsExecutor", False),
    ("events", "EventsExecutor", False),
    ("single_threaded", "SingleThreadedExecutor", False),
    ("multi", "EventsExecutor", True),
])
def test_the_executor_is_the_one_the_environment_names(monkeypatch, value, kind, logged) -> None:
    if value is None:
        monkeypatch.delenv(EXECUTOR_ENV, raising=False)
    else:
        monkeypatch.setenv(EXECUTOR_ENV, value)
    logger = _RecordingLogger()
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        monkeypatch.setattr(runner, "SingleThreadedExecutor", lambda: SingleThreadedExecutor(context=context))
        monkeypatch.setattr("rclpy.experimental.EventsExecutor", lambda: EventsExecutor(context=context))
        executor = make_executor(logger)
        assert type(executor).__name__ == kind  # rclpy's EventsExecutor is a factory of a C++ class
        executor.shutdown()
    finally:
        rclpy.shutdown(context=context)
    assert bool(logger.errors) == logged
    if logged:
        assert EXECUTOR_ENV in logger.errors[0] and "single_threaded" in logger.errors[0]


def test_an_rclpy_without_the_events_executor_gets_the_single_threaded_one(monkeypatch) -> None:
    monkeypatch.delenv(EXECUTOR_ENV, raising=False)
    monkeypatch.setitem(__import__("sys").modules, "rclpy.experimental", None)  # import fails, as before Kilted
    logger = _RecordingLogger()
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        monkeypatch.setattr(runner, "SingleThreadedExecutor", lambda: SingleThreadedExecutor(context=context))
        executor = make_executor(logger)
        assert type(executor).__name__ == "SingleThreadedExecutor"
        executor.shutdown()
    finally:
        rclpy.shutdown(context=context)
    assert logger.warnings and "EventsExecutor" in logger.warnings[0] and not logger.errors


class _StopAfterTicks(Node):
    """Shuts the context down from its fifth timer tick, as a node asking the process to stop."""

    ticks = 0

    def __init__(self) -> None:
        super().__init__("stop_after_ticks")
        self.create_timer(0.01, self._tick)

    def _tick(self) -> None:
        type(self).ticks += 1
        if type(self).ticks == 5:
            rclpy.shutdown()


@pytest.mark.parametrize("name", ["events", "single_threaded"])
def test_spin_nodes_returns_when_a_node_shuts_down(monkeypatch, name) -> None:
    monkeypatch.setenv(EXECUTOR_ENV, name)
    _StopAfterTicks.ticks = 0
    assert spin_nodes([_StopAfterTicks], args=[], restore_signal_handlers=True) == 0
    assert _StopAfterTicks.ticks >= 5
