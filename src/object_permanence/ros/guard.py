"""Subscriptions and timers that survive bad messages: an exception raised while handling one
message (or one timer tick) is logged with the topic and the message is dropped; the node (and, in
``pipeline``, every node beside it) keeps running."""
from __future__ import annotations

from typing import Any, Callable

from rclpy.node import Node
from rclpy.qos import QoSProfile


def _report(node: Node, topic: str, exc: Exception, item: str = "message") -> None:
    """The log line of a message (or a timer's tick: ``item``) dropped by ``exc``: debug while
    shutting down (publishing into a closed context is expected then), else a throttled error."""
    if not node.context.ok():
        node.get_logger().debug(f"{topic}: {item} dropped during shutdown: {exc}")
        return
    node.get_logger().error(f"{topic}: dropped a {item}: {type(exc).__name__}: {exc}",
                            throttle_duration_sec=1.0)


def guarded(node: Node, topic: str, callback: Callable[..., None]) -> Callable[..., None]:
    """``callback`` wrapped so that an exception drops the message with an error log line."""
    def run(*msgs: Any) -> None:
        try:
            callback(*msgs)
        except Exception as exc:  # one malformed message must not stop the node
            _report(node, topic, exc)
    return run


def guarded_timer(node: Node, what: str, callback: Callable[[], None]) -> Callable[[], None]:
    """A timer's ``callback`` guarded as :func:`guarded` guards a subscription's. The wrapper takes
    no argument: rclpy's EventsExecutor passes a ``TimerInfo`` to any timer callback whose
    signature accepts one (``*args`` included), which :func:`guarded`'s wrapper would forward."""
    def tick() -> None:
        try:
            callback()
        except Exception as exc:  # one failed tick must not stop the node
            _report(node, what, exc, "tick")
    return tick


def subscribe(node: Node, msg_type: type, topic: str, callback: Callable[[Any], None], qos: QoSProfile):
    """``node.create_subscription`` with a :func:`guarded` callback."""
    return node.create_subscription(msg_type, topic, guarded(node, topic, callback), qos)
