"""A node that records what the pipeline publishes, per stamp, for offline evaluation.

Used by the demo and by the process-level tests; it converts messages to core dataclasses
as they arrive so the evaluation code never sees ROS types.
"""
from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from rclpy.node import Node
from sensor_msgs.msg import PointCloud2

from object_permanence.core.types import (
    Detection,
    GroundTruthObject,
    PersistenceDecision,
    Track,
    Track3D,
    TrackEvent,
)
from object_permanence.msg import (
    DetectionArray,
    Explanation,
    PersistenceDecisionArray,
    SimGroundTruth,
    Track3DArray,
    TrackArray,
    TrackEvent as TrackEventMsg,
)
from object_permanence.ros.conversions import (
    cloud_to_numpy,
    decision_from_msg,
    detections_from_msg,
    event_from_msg,
    sim_objects_from_msg,
    track3d_from_msg,
    track_from_msg,
)
from object_permanence.ros.qos import EVENT_QOS, RELIABLE_QOS, VIZ_QOS

Stamp = tuple[int, int]


@dataclass
class StampRecord:
    """Everything recorded for one stamp (one stereo frame)."""

    frame_index: int | None = None
    gt_left: list[GroundTruthObject] = field(default_factory=list)
    gt_right: list[GroundTruthObject] = field(default_factory=list)
    detections: dict[str, list[Detection]] = field(default_factory=dict)
    tracks: dict[str, list[Track]] = field(default_factory=dict)
    decisions: dict[str, list[PersistenceDecision]] = field(default_factory=lambda: defaultdict(list))
    tracks3d: list[Track3D] | None = None
    n_points: int | None = None
    latency_s: float | None = None


def _key(msg) -> Stamp:
    return (msg.header.stamp.sec, msg.header.stamp.nanosec)


class PipelineRecorder(Node):
    """Subscribes to ground truth, detections, 2D tracks, decisions, 3D tracks, points, events and
    explanations.

    ``latency_s`` of a stamp is the wall time at which its Track3DArray arrived minus the stamp:
    meaningful when the capture node stamps with the system clock on the same machine (it stamps
    before it captures or renders the frame, so the latency includes capture). Under simulated time
    ``latency_origin(stamp)`` gives the wall time the stamp's frame was started at instead (see
    :class:`~object_permanence.ros.sim_clock.SimClockDriver`).
    """

    def __init__(self, name: str = "pipeline_recorder",
                 latency_origin: Callable[[Stamp], float | None] | None = None, **kwargs) -> None:
        super().__init__(name, **kwargs)
        self._latency_origin = latency_origin
        self.records: dict[Stamp, StampRecord] = defaultdict(StampRecord)
        self.events: list[tuple[Stamp, str, TrackEvent]] = []
        self.explanations: list[Explanation] = []
        self.last_message_time = time.monotonic()
        self.create_subscription(SimGroundTruth, "sim/ground_truth", self._on_truth, RELIABLE_QOS)
        for cam in ("left", "right"):
            self.create_subscription(DetectionArray, f"stereo/{cam}/detections",
                                     lambda m, c=cam: self._on_detections(c, m), RELIABLE_QOS)
            self.create_subscription(TrackArray, f"stereo/{cam}/tracks", lambda m, c=cam: self._on_tracks(c, m),
                                     RELIABLE_QOS)
        self.create_subscription(PersistenceDecisionArray, "persistence/decisions", self._on_decisions, RELIABLE_QOS)
        self.create_subscription(Track3DArray, "tracks3d", self._on_tracks3d, RELIABLE_QOS)
        self.create_subscription(PointCloud2, "tracks3d/points", self._on_points, VIZ_QOS)
        self.create_subscription(TrackEventMsg, "track_events", self._on_event, EVENT_QOS)
        self.create_subscription(Explanation, "explanations", self.explanations.append, EVENT_QOS)

    def _touch(self) -> None:
        self.last_message_time = time.monotonic()

    def _on_truth(self, msg: SimGroundTruth) -> None:
        rec = self.records[_key(msg)]
        rec.frame_index = msg.frame_index
        rec.gt_left = sim_objects_from_msg(msg.left)
        rec.gt_right = sim_objects_from_msg(msg.right)
        self._touch()

    def _on_detections(self, camera: str, msg: DetectionArray) -> None:
        self.records[_key(msg)].detections[camera] = detections_from_msg(msg.detections)
        self._touch()

    def _on_tracks(self, camera: str, msg: TrackArray) -> None:
        self.records[_key(msg)].tracks[camera] = [track_from_msg(t) for t in msg.tracks]
        self._touch()

    def _on_decisions(self, msg: PersistenceDecisionArray) -> None:
        rec = self.records[_key(msg)]
        for d in msg.decisions:
            rec.decisions[d.camera].append(decision_from_msg(d))
        self._touch()

    def _on_tracks3d(self, msg: Track3DArray) -> None:
        now = time.time()
        rec = self.records[_key(msg)]
        rec.tracks3d = [track3d_from_msg(t) for t in msg.tracks]
        if self._latency_origin is None:
            rec.latency_s = now - (msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9)
        else:
            origin = self._latency_origin(_key(msg))
            rec.latency_s = None if origin is None else now - origin
        self._touch()

    def _on_points(self, msg: PointCloud2) -> None:
        self.records[_key(msg)].n_points = len(cloud_to_numpy(msg))
        self._touch()

    def _on_event(self, msg: TrackEventMsg) -> None:
        self.events.append((_key(msg), msg.camera, event_from_msg(msg)))
        self._touch()

    def complete(self) -> list[tuple[Stamp, StampRecord]]:
        """Stamps with ground truth, both cameras' tracks and 3D tracks, in stamp order."""
        return sorted(
            (k, r) for k, r in self.records.items()
            if r.frame_index is not None and len(r.tracks) == 2 and r.tracks3d is not None)
