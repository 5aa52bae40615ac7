"""Subscriptions that survive bad messages: an exception raised while handling one message is
logged with the topic and the message is dropped; the node (and, in ``pipeline``, every node
beside it) keeps running."""
from __future__ import annotations

from typing import Any, Callable

from rclpy.node import Node
from rclpy.qos import QoSProfile


def guarded(node: Node, topic: str, callback: Callable[..., None]) -> Callable[..., None]:
    """``callback`` wrapped so that an exception drops the message with an error log line."""
    def run(*msgs: Any) -> None:
        try:
            callback(*msgs)
        except Exception as exc:  # one malformed message must not stop the node
            if not node.context.ok():  # shutting down: publishing into a closed context is expected
                node.get_logger().debug(f"{topic}: message dropped during shutdown: {exc}")
                return
            node.get_logger().error(f"{topic}: dropped a message: {type(exc).__name__}: {exc}",
                                    throttle_duration_sec=1.0)
    return run


def subscribe(node: Node, msg_type: type, topic: str, callback: Callable[[Any], None], qos: QoSProfile):
    """``node.create_subscription`` with a :func:`guarded` callback."""
    return node.create_subscription(msg_type, topic, guarded(node, topic, callback), qos)
