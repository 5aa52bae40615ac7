"""Each node's health on ``/diagnostics`` (diagnostic_msgs/DiagnosticArray), what ROS's
diagnostic_updater reports as a frequency and a time-stamp status (that package is not on PyPI; this
is the little of it a node needs), so that rqt_robot_monitor or diagnostic_aggregator on a robot
show whether frames flow through the graph, how fast, and how late.

Per period, one status per node: the frames it processed and their rate, its processing time per
frame (mean, max; the wall clock, as a measurement of the node, never an input to an algorithm),
the age of those frames when it finished them (its clock's time minus their header stamp: under
``use_sim_time`` the replayed clock's) and the frames it dropped. Level OK, or WARN when no frame
came in the period (a camera, a bag or an upstream node stopped) or frames were dropped in it (each
drop is also logged with its reason).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from std_msgs.msg import Header

from object_permanence.ros.conversions import stamp_to_sec
from object_permanence.ros.guard import guarded_timer
from object_permanence.ros.params import Param
from object_permanence.ros.qos import RELIABLE_QOS

HARDWARE_ID = "object_permanence"

DIAGNOSTICS_PERIOD_PARAM = Param(
    "diagnostics_period_s", 1.0, "Seconds between two health reports on /diagnostics (frames processed and "
    "their rate, processing time, frame age, frames dropped; WARN when no frame came or frames were dropped). "
    "0: none.", low=0.0, high=3600.0)


@dataclass
class FrameWindow:
    """The frames of one reporting period: processing times and ages (s), and the dropped ones."""

    durations_s: list[float] = field(default_factory=list)
    ages_s: list[float] = field(default_factory=list)
    dropped: int = 0

    def report(self, what: str, period_s: float, total: int) -> tuple[bytes, str, list[tuple[str, str]]]:
        """``(level, message, key-values)`` of this period; ``total``: the frames since start-up."""
        n = len(self.durations_s)
        values = [(f"{what} in the last period", str(n)), ("rate (Hz)", f"{n / period_s:.2f}"),
                  (f"{what} since start-up", str(total)), (f"{what} dropped in the last period", str(self.dropped))]
        if n:
            values += [("processing time mean (ms)", f"{1e3 * sum(self.durations_s) / n:.2f}"),
                       ("processing time max (ms)", f"{1e3 * max(self.durations_s):.2f}")]
        if self.ages_s:
            values += [("frame age at output mean (ms)", f"{1e3 * sum(self.ages_s) / len(self.ages_s):.1f}"),
                       ("frame age at output max (ms)", f"{1e3 * max(self.ages_s):.1f}")]
        if self.dropped:
            return DiagnosticStatus.WARN, f"{self.dropped} {what} dropped in the last {period_s:g} s (see the log)", \
                values
        if not n:
            return DiagnosticStatus.WARN, f"no {what} in the last {period_s:g} s", values
        return DiagnosticStatus.OK, f"{n / period_s:.1f} {what}/s", values


class FrameReport:
    """One frame being processed (see :meth:`NodeDiagnostics.frame`): ``drop()`` marks it dropped;
    ``stamp`` (its header stamp) may be set in the block when it is known only there."""

    def __init__(self, stamp: Time | None) -> None:
        self.stamp = stamp
        self.dropped = False

    def drop(self) -> None:
        self.dropped = True


class NodeDiagnostics:
    """Publishes ``node``'s :class:`FrameWindow` on ``/diagnostics`` every ``period_s`` (0: never,
    and :meth:`frame` records nothing). ``what`` names its frames in the report ("stereo pairs",
    "frames")."""

    def __init__(self, node: Node, period_s: float, what: str = "frames") -> None:
        self._node = node
        self._what = what
        self._period_s = float(period_s)
        self._window = FrameWindow()
        self._total = 0
        self._name = node.get_fully_qualified_name().lstrip("/")
        self._pub = None
        if self._period_s > 0:
            self._pub = node.create_publisher(DiagnosticArray, "/diagnostics", RELIABLE_QOS)
            node.create_timer(self._period_s, guarded_timer(node, "diagnostics", self.publish))

    @contextmanager
    def frame(self, stamp: Time | None = None) -> Iterator[FrameReport]:
        """Time the processing of one frame stamped ``stamp`` (its age is taken at the end of the
        block). A frame the block ``drop()``s, or that raises, counts as dropped (the exception goes on)."""
        report = FrameReport(stamp)
        start = time.perf_counter()
        try:
            yield report
        except Exception:
            self._window.dropped += 1
            raise
        if self._pub is None:
            return
        if report.dropped:
            self._window.dropped += 1
            return
        self._window.durations_s.append(time.perf_counter() - start)
        if report.stamp is not None:
            now_s = self._node.get_clock().now().nanoseconds * 1e-9
            self._window.ages_s.append(now_s - stamp_to_sec(report.stamp))
        self._total += 1

    def process(self, stamp: Time, handler: Callable[..., bool], *args: Any) -> None:
        """``handler(*args)`` as one frame stamped ``stamp`` (:meth:`frame`); its False return means the
        frame was dropped (the handler logs why)."""
        with self.frame(stamp) as frame:
            if not handler(*args):
                frame.drop()

    def publish(self) -> None:
        """Publish this period's status and start the next period."""
        level, message, values = self._window.report(self._what, self._period_s, self._total)
        self._window = FrameWindow()
        if self._pub is None:
            return
        status = DiagnosticStatus(level=level, name=f"{self._name}: {self._what}", message=message,
                                  hardware_id=HARDWARE_ID, values=[KeyValue(key=k, value=v) for k, v in values])
        self._pub.publish(DiagnosticArray(header=Header(stamp=self._node.get_clock().now().to_msg()),
                                          status=[status]))
