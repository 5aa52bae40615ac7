"""A /clock driver that paces a pipeline by simulation time (lock-step replay on a slow CPU).

The process that records the pipeline publishes ``/clock``; every node runs with
``use_sim_time``. The driver holds simulated time at frame ``k``'s stamp until the pipeline has
delivered that frame's outputs (or a timeout passes), then advances by exactly one capture-timer
period: the capture node's ROS timer fires once per advance, so no frame is dropped however slow
the detector, and every algorithm still sees the real frame interval in its stamps. The wall time
at which each stamp was first published is kept, so the latency of a frame (capture to output) can
be measured on the wall clock apart from the pacing.
"""
from __future__ import annotations

import time

from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock

Stamp = tuple[int, int]
NS = 1_000_000_000


class SimClockDriver:
    """Publishes ``/clock`` on ``node`` in steps of ``period_ns`` nanoseconds.

    Args:
        node: the node that publishes (the recorder's).
        period_ns: one capture-timer period; the capture node's timer period must be the same
            integer number of nanoseconds (``int(1e9 / fps)``, as rclpy computes it).
        start_periods: the first stamp is ``start_periods * period_ns`` (a multiple of the period, so
            the capture timer fires exactly on each published time).
    """

    def __init__(self, node: Node, period_ns: int, start_periods: int = 30) -> None:
        if period_ns <= 0:
            raise ValueError(f"period_ns must be > 0, got {period_ns}")
        if start_periods < 1:
            raise ValueError(f"start_periods must be >= 1, got {start_periods}")
        self._pub = node.create_publisher(Clock, "/clock", QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))
        self.period_ns = int(period_ns)
        self.now_ns = int(start_periods) * self.period_ns
        self.published_wall_s: dict[Stamp, float] = {}

    @property
    def stamp(self) -> Stamp:
        """The current simulated time as a header stamp key ``(sec, nanosec)``."""
        return divmod(self.now_ns, NS)

    def publish(self) -> None:
        """(Re)publish the current time; the first publication of a stamp records its wall time."""
        sec, nsec = self.stamp
        msg = Clock()
        msg.clock.sec, msg.clock.nanosec = sec, nsec
        self.published_wall_s.setdefault((sec, nsec), time.time())
        self._pub.publish(msg)

    def advance(self) -> None:
        """Step one period forward and publish it."""
        self.now_ns += self.period_ns
        self.publish()

    def latency_origin(self, stamp: Stamp) -> float | None:
        """Wall time (s) at which ``stamp`` was first published, None if it never was."""
        return self.published_wall_s.get(stamp)
