"""The guards of ``ros/guard.py`` over real rclpy executors: a failing callback is logged and the
node goes on; a guarded timer is called without arguments by every executor, the EventsExecutor
included (it passes a ``TimerInfo`` to any callback whose signature accepts one)."""
from __future__ import annotations

import time
from typing import Any

import pytest

pytest.importorskip("rclpy")


def _spin(executor: Any, condition, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        executor.spin_once(timeout_sec=0.05)
    return True


def _executors() -> list[str]:
    names = ["single_threaded"]
    try:
        from rclpy.experimental import EventsExecutor  # noqa: F401
        names.append("events")
    except ImportError:  # an rclpy without it
        pass
    return names


def _make_executor(name: str, context: Any) -> Any:
    if name == "events":
        from rclpy.experimental import EventsExecutor
        return EventsExecutor(context=context)
    from rclpy.executors import SingleThreadedExecutor
    return SingleThreadedExecutor(context=context)


@pytest.mark.parametrize("executor_name", _executors())
def test_guarded_timer_ticks_without_arguments_and_survives_a_failed_tick(ros_context, executor_name) -> None:
    from rclpy.node import Node

    from object_permanence.ros.guard import guarded, guarded_timer

    node = Node("guard_timer", namespace=f"/guard_{executor_name}", context=ros_context)
    executor = _make_executor(executor_name, ros_context)
    ticks: list[int] = []
    forwarded: list[tuple] = []

    def tick() -> None:  # no parameter: a TimerInfo passed in would be a TypeError
        ticks.append(len(ticks))
        if len(ticks) == 1:
            raise RuntimeError("first tick fails")

    try:
        node.create_timer(0.02, guarded_timer(node, "test timer", tick))
        node.create_timer(0.02, guarded(node, "varargs", lambda *a: forwarded.append(a)))
        executor.add_node(node)
        assert _spin(executor, lambda: len(ticks) >= 3 and forwarded), f"ticks {ticks}"
    finally:
        executor.remove_node(node)
        executor.shutdown()
        node.destroy_node()
    assert ticks[:3] == [0, 1, 2]  # called again after the failing tick, never with an argument
    if executor_name == "events":  # what guarded_timer is for: the varargs wrapper gets a TimerInfo
        assert type(forwarded[0][0]).__name__ == "TimerInfo"


def test_guarded_subscription_drops_a_failing_message_and_takes_the_next(ros) -> None:
    from std_msgs.msg import String

    from object_permanence.ros.guard import subscribe
    from object_permanence.ros.qos import RELIABLE_QOS

    taken: list[str] = []

    def on_msg(msg: String) -> None:
        if msg.data == "bad":
            raise ValueError("malformed test message")
        taken.append(msg.data)

    node = ros.probe
    subscribe(node, String, "guarded_topic", on_msg, RELIABLE_QOS)
    pub = ros.publisher(String, "guarded_topic", RELIABLE_QOS)
    ros.wait_connected()
    pub.publish(String(data="bad"))
    pub.publish(String(data="good"))
    ros.spin_until(lambda: taken == ["good"], "the message after the failing one")
    ros.spin_until(lambda: any("guarded_topic: dropped a message: ValueError: malformed test message" in line
                               for line in ros.log_lines("probe")), "the error line naming the topic")
