"""world_model: one tracker with object permanence per camera
(``stereo/<cam>/detections`` -> ``stereo/<cam>/tracks``, ``track_events``)."""
from __future__ import annotations

import json
import time
from typing import TextIO

from rclpy.node import Node

from object_permanence.core.id_allocator import node_id_allocator
from object_permanence.core.kalman import BoxKalmanParams
from object_permanence.core.types import EventKind
from object_permanence.core.world_model import WorldModel, WorldModelConfig
from object_permanence.msg import DetectionArray, TrackArray, TrackEvent as TrackEventMsg
from object_permanence.ros.conversions import detections_from_msg, event_to_msg, stamp_to_sec, track_to_msg
from object_permanence.ros.params import (
    FIRST_TRACK_ID_PARAM,
    Param,
    ParameterError,
    build_config,
    config_params,
    declare,
)
from object_permanence.ros.diagnostics import DIAGNOSTICS_PERIOD_PARAM, NodeDiagnostics
from object_permanence.ros.guard import subscribe
from object_permanence.ros.qos import EVENT_QOS, RELIABLE_QOS
from object_permanence.ros.runner import main_for

CAMERAS = ("left", "right")

PARAMS = config_params(WorldModelConfig, docs_from=(BoxKalmanParams,)) + (
    FIRST_TRACK_ID_PARAM,
    Param("events_jsonl", "", "If set, also append every track event as one JSON line to this file."),
    Param("time_jump_reset_s", 1.0, "A stamp this many seconds or more before the previous one (a bag replayed "
          "again, a clock reset) resets the tracks; a smaller step back drops that frame.", low=0.001, high=1e9),
    DIAGNOSTICS_PERIOD_PARAM,
)


class WorldModelNode(Node):
    """Thin adapter: DetectionArray -> :class:`WorldModel` -> TrackArray + TrackEvents."""

    def __init__(self, **kwargs) -> None:
        super().__init__("world_model", **kwargs)
        p = declare(self, PARAMS)
        config = build_config(WorldModelConfig, p)
        # one allocator for both cameras and the node's life: ids unique across cameras, resets, restarts
        ids = node_id_allocator(p["first_track_id"], time.time())
        self._models = {cam: WorldModel(config, ids=ids) for cam in CAMERAS}
        self._time_jump_reset_s = p["time_jump_reset_s"]
        try:
            self._events_file: TextIO | None = open(p["events_jsonl"], "a", encoding="utf-8") \
                if p["events_jsonl"] else None
        except OSError as exc:
            raise ParameterError(f"parameter 'events_jsonl': cannot open {p['events_jsonl']!r}: {exc}") from exc
        self._pub_events = self.create_publisher(TrackEventMsg, "track_events", EVENT_QOS)
        self._diag = NodeDiagnostics(self, p["diagnostics_period_s"], "detection arrays")
        self._pub_tracks = {}
        for cam in CAMERAS:
            self._pub_tracks[cam] = self.create_publisher(TrackArray, f"stereo/{cam}/tracks", RELIABLE_QOS)
            subscribe(self, DetectionArray, f"stereo/{cam}/detections", lambda m, c=cam: self._on_detections(c, m),
                      RELIABLE_QOS)

    def _on_detections(self, camera: str, msg: DetectionArray) -> None:
        self._diag.process(msg.header.stamp, self._track, camera, msg)

    def _track(self, camera: str, msg: DetectionArray) -> bool:
        """Track one camera's detections and publish its tracks; False when they are dropped (logged)."""
        model = self._models[camera]
        stamp = stamp_to_sec(msg.header.stamp)
        if model.last_stamp is not None and stamp <= model.last_stamp - self._time_jump_reset_s:
            self.get_logger().warning(f"{camera}: time jumped back {model.last_stamp - stamp:.2f} s (replay restarted "
                                      "or clock reset): tracks reset")
            self._publish_events(camera, msg.header, stamp, model.reset())  # LOST for every live track
        size = (msg.image_width, msg.image_height) if msg.image_width and msg.image_height else None
        try:
            result = model.step(stamp, detections_from_msg(msg.detections), size)
        except ValueError as exc:  # a frame slightly out of order: drop it, keep the belief
            self.get_logger().error(f"{camera}: dropped detections: {exc}", throttle_duration_sec=2.0)
            return False
        if result.rejections:
            more = f" (and {len(result.rejections) - 3} more)" if len(result.rejections) > 3 else ""
            self.get_logger().warning(
                f"stereo/{camera}/detections: rejected {result.rejected} invalid detection(s), the rest tracked: "
                + "; ".join(result.rejections[:3]) + more, throttle_duration_sec=2.0)
        self._pub_tracks[camera].publish(TrackArray(header=msg.header, tracks=[track_to_msg(t) for t in result.tracks]))
        self._publish_events(camera, msg.header, stamp, result.events)
        return True

    def _publish_events(self, camera: str, header, stamp: float, events: list) -> None:
        """``track_events`` (and the JSONL file) for ``events`` of ``camera``."""
        for event in events:
            self._pub_events.publish(event_to_msg(event, header, camera))
            if self._events_file is not None:
                self._events_file.write(json.dumps({
                    "stamp": stamp, "camera": camera, "track_id": event.track_id,
                    "event": EventKind(event.kind).name.lower(), "state": event.state.name.lower(),
                    "frames_unseen": event.frames_unseen,
                    "cx": float(event.box[0]), "cy": float(event.box[1])}) + "\n")
        if self._events_file is not None and events:
            self._events_file.flush()

    def close(self) -> None:
        if self._events_file is not None:
            self._events_file.close()
            self._events_file = None


main = main_for(WorldModelNode)
