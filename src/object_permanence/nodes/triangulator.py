"""triangulator: pairs the persistent left/right tracks of one stamp and triangulates them
(``stereo/<cam>/tracks/filtered`` + ``stereo/<cam>/camera_info`` -> ``tracks3d``,
``tracks3d/points``, ``tracks3d/markers``)."""
from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import replace

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, PointCloud2
from std_msgs.msg import Header
from visualization_msgs.msg import MarkerArray

from object_permanence.core.box_disparity import DISPARITY_METHODS
from object_permanence.core.id_allocator import node_id_allocator
from object_permanence.core.triangulation import StereoTriangulator
from object_permanence.core.triangulator_config import TriangulatorConfig
from object_permanence.core.types import Track, duplicate_track_ids
from object_permanence.msg import Track3D, Track3DArray, TrackArray
from object_permanence.ros.conversions import (
    ConversionError,
    projection_matrix,
    stamp_to_sec,
    track3d_to_msg,
    track_from_msg,
    tracks_to_cloud,
)
from object_permanence.ros.markers import tracks_to_markers
from object_permanence.ros.params import FIRST_TRACK_ID_PARAM, Param, build_config, config_params, declare
from object_permanence.ros.diagnostics import DIAGNOSTICS_PERIOD_PARAM, NodeDiagnostics
from object_permanence.ros.guard import guarded, subscribe
from object_permanence.ros.images import IMAGE_TRANSPORT_PARAM, ImageMsg, image_subscription, image_to_bgr
from object_permanence.ros.qos import RELIABLE_QOS, SENSOR_QOS, VIZ_QOS
from object_permanence.ros.runner import main_for
from object_permanence.ros.sync import ApproximateTimeSynchronizer, SyncMonitor, header_stamp_key

PARAMS = tuple(replace(p, choices=DISPARITY_METHODS) if p.name == "disparity_method" else p
               for p in config_params(TriangulatorConfig)) + (
    FIRST_TRACK_ID_PARAM,
    Param("sync_slop_s", 0.01, "Largest stamp difference (s) between the left and right track arrays of one "
          "pair (they carry their images' stamps; keep it equal to the detector's sync_slop_s).",
          low=0.0, high=1.0),
    Param("sync_queue_size", 10, "Stamps waiting for their left/right partner before the oldest is dropped.",
          low=1, high=1000),
    Param("publish_markers", True, "Publish RViz markers on tracks3d/markers."),
    Param("time_jump_reset_s", 1.0, "A stamp this many seconds or more before the previous one (a bag replayed "
          "again, a clock reset) resets the 3D tracks; a smaller step back drops that frame.", low=0.001, high=1e9),
    Param("refine_with_images", True, "Measure the disparity of visible pairs in the rectified images "
          "(stereo/<cam>/image_raw over image_transport, of the same stamp; by disparity_method); without an "
          "image of that stamp the box centres are used."),
    Param("image_buffer_s", 0.5, "refine_with_images: seconds of images kept per camera (by stamp, behind the "
          "newest) for the track arrays still to come: at least the detector-to-triangulator latency, or the "
          "images are gone when their tracks arrive (a warning says so, with the lag).", low=0.0, high=10.0),
    IMAGE_TRANSPORT_PARAM,
    DIAGNOSTICS_PERIOD_PARAM,
)


def rectified_info(info: CameraInfo) -> bool:
    """Whether a CameraInfo describes rectified images (ROS convention): no distortion
    coefficient other than 0 and R the identity (or left all zero, as some drivers do)."""
    r = np.asarray(info.r, dtype=np.float64)
    return not np.any(np.asarray(info.d, dtype=np.float64)) and (
        np.allclose(r, np.eye(3).ravel(), atol=1e-9) or not np.any(r))


def _ns(key: tuple[int, int]) -> int:
    """A (sec, nanosec) stamp key in nanoseconds."""
    return key[0] * 1_000_000_000 + key[1]


class TriangulatorNode(Node):
    """Thin adapter: synchronised left/right TrackArrays -> :class:`StereoTriangulator`."""

    def __init__(self, **kwargs) -> None:
        super().__init__("triangulator", **kwargs)
        p = declare(self, PARAMS)
        self._config = build_config(TriangulatorConfig, p)
        self._ids = node_id_allocator(p["first_track_id"], time.time())  # wall clock: ids unique across restarts
        self._publish_markers = p["publish_markers"]
        self._info: dict[str, CameraInfo] = {}
        self._triangulator: StereoTriangulator | None = None
        self._projections: tuple[np.ndarray, np.ndarray] | None = None
        self._unrectified_warned = False
        self._pub_tracks = self.create_publisher(Track3DArray, "tracks3d", RELIABLE_QOS)
        self._pub_points = self.create_publisher(PointCloud2, "tracks3d/points", VIZ_QOS)
        self._pub_markers = self.create_publisher(MarkerArray, "tracks3d/markers", VIZ_QOS)
        self._diag = NodeDiagnostics(self, p["diagnostics_period_s"], "stereo pairs")
        self._sync = ApproximateTimeSynchronizer(2, guarded(self, "stereo track pair", self._on_pair),
                                                 p["sync_queue_size"], p["sync_slop_s"],
                                                 time_jump_reset_s=p["time_jump_reset_s"])
        self._sync_monitor = SyncMonitor(self, self._sync, 5.0, "stereo track pair", ("left", "right"))
        self._time_jump_reset_s = p["time_jump_reset_s"]
        self._last_stamp: float | None = None
        on_left, on_right = self._sync.inputs(header_stamp_key)
        subscribe(self, TrackArray, "stereo/left/tracks/filtered", on_left, RELIABLE_QOS)
        subscribe(self, TrackArray, "stereo/right/tracks/filtered", on_right, RELIABLE_QOS)
        self._images: dict[str, OrderedDict[tuple[int, int], ImageMsg]] = {"left": OrderedDict(),
                                                                            "right": OrderedDict()}
        self._image_buffer_ns = round(p["image_buffer_s"] * 1e9)
        self._time_jump_reset_ns = round(p["time_jump_reset_s"] * 1e9)
        self._first_image_ns: dict[str, int | None] = {"left": None, "right": None}  # since the last restart
        for cam in ("left", "right"):
            subscribe(self, CameraInfo, f"stereo/{cam}/camera_info", lambda m, c=cam: self._info.__setitem__(c, m),
                      SENSOR_QOS)
            if p["refine_with_images"]:
                subscribe(self, *image_subscription(cam, p["image_transport"]), lambda m, c=cam: self._on_image(c, m),
                          SENSOR_QOS)

    def _on_image(self, camera: str, msg: ImageMsg) -> None:
        """Keep each camera's images of the last ``image_buffer_s`` by stamp (messages, viewed
        without a copy, or decoded, when used); a stamp ``time_jump_reset_s`` or more back (a replay restarted)
        starts over."""
        buffer = self._images[camera]
        key = header_stamp_key(msg)
        if buffer and _ns(key) <= _ns(next(reversed(buffer))) - self._time_jump_reset_ns:
            buffer.clear()
            self._first_image_ns[camera] = None
        if self._first_image_ns[camera] is None:
            self._first_image_ns[camera] = _ns(key)
        buffer[key] = msg
        while _ns(key) - _ns(next(iter(buffer))) > self._image_buffer_ns:
            buffer.popitem(last=False)

    def _images_for(self, left: TrackArray, right: TrackArray) -> tuple[np.ndarray, np.ndarray] | None:
        """The images the two track arrays were made from, each by its own stamp (approximately
        synchronised views need not share one)."""
        msgs = [self._images[c].get(header_stamp_key(m)) for c, m in (("left", left), ("right", right))]
        if any(m is None for m in msgs):
            self._warn_if_evicted(left)
            return None
        try:
            images = tuple(image_to_bgr(m) for m in msgs)
        except ConversionError as exc:
            self.get_logger().error(f"image not usable for refinement, box centres only: {exc}",
                                    throttle_duration_sec=5.0)
            return None
        if images[0].shape != images[1].shape:
            self.get_logger().error(f"left and right images differ in size ({images[0].shape} vs {images[1].shape}), "
                                    "box centres only", throttle_duration_sec=5.0)
            return None
        info = self._info.get("left")
        if info is not None and info.width and info.height and (info.width, info.height) != \
                (images[0].shape[1], images[0].shape[0]):
            self.get_logger().error(
                f"stereo/left/camera_info says {info.width}x{info.height} but the images are "
                f"{images[0].shape[1]}x{images[0].shape[0]}: that calibration is not for these images; "
                "box centres only", throttle_duration_sec=5.0)
            return None
        return images

    def _warn_if_evicted(self, tracks: TrackArray) -> None:
        """Warn when the images of ``tracks`` were received but have left the buffer already (the
        tracks came later than ``image_buffer_s`` behind the newest image); not for tracks of
        frames from before the first image."""
        buffer, first = self._images["left"], self._first_image_ns["left"]
        stamp = _ns(header_stamp_key(tracks))
        if buffer and first is not None and first <= stamp < _ns(next(iter(buffer))):  # held once, evicted since
            lag_s = (_ns(next(reversed(buffer))) - stamp) * 1e-9
            self.get_logger().warning(
                f"the images of tracks stamped {lag_s:.2f} s behind the newest image have left the buffer: box "
                "centres only (raise image_buffer_s above the detector-to-triangulator latency)",
                throttle_duration_sec=5.0)

    def _current_triangulator(self) -> StereoTriangulator | None:
        """The triangulator for the latest camera_info pair (rebuilt when P changes)."""
        if len(self._info) < 2:
            self.get_logger().warning("waiting for left and right camera_info", throttle_duration_sec=5.0)
            return None
        left, right = self._info["left"], self._info["right"]
        if (left.width, left.height) != (right.width, right.height):
            self.get_logger().error(f"left and right camera_info sizes differ ({left.width}x{left.height} vs "
                                    f"{right.width}x{right.height}), not triangulating", throttle_duration_sec=5.0)
            return None
        if not self._unrectified_warned and not all(rectified_info(i) for i in (left, right)):
            self._unrectified_warned = True
            self.get_logger().warning(
                "camera_info has distortion or a rectifying rotation (D != 0 or R != I): by ROS convention its "
                "images are not rectified, while the triangulator (and the detector's row matching) assume "
                "rectified, row-aligned views: rectify first (stereo_capture rectify:=true, or image_proc's "
                "rectify nodes and their image_rect topics remapped to stereo/<cam>/image_raw)")
        try:
            p = (projection_matrix(left), projection_matrix(right))
            if self._projections is None or not all(np.array_equal(a, b) for a, b in zip(p, self._projections)):
                self._triangulator = StereoTriangulator(p[0], p[1], self._config, self._ids)
                self._projections = p
        except (ConversionError, ValueError) as exc:
            self.get_logger().error(f"inconsistent camera_info, not triangulating: {exc}", throttle_duration_sec=5.0)
            return None
        return self._triangulator

    def _without_duplicates(self, camera: str, tracks: list[Track]) -> list[Track]:
        """``tracks`` without those whose id occurs twice (which one is the object is unknown), logged."""
        duplicates = duplicate_track_ids(tracks)
        if not duplicates:
            return tracks
        self.get_logger().error(f"duplicate track ids {duplicates} in one stereo/{camera}/tracks/filtered message: "
                                "those tracks are left out of this frame, the rest is triangulated",
                                throttle_duration_sec=2.0)
        return [t for t in tracks if t.track_id not in duplicates]

    def _on_pair(self, left: TrackArray, right: TrackArray) -> None:
        self._diag.process(left.header.stamp, self._triangulate, left, right)

    def _triangulate(self, left: TrackArray, right: TrackArray) -> bool:
        """Triangulate and publish one stereo pair of track arrays; False when it is dropped (logged)."""
        stamp = stamp_to_sec(left.header.stamp)
        if self._last_stamp is not None and stamp <= self._last_stamp - self._time_jump_reset_s:
            self.get_logger().warning(f"time jumped back {self._last_stamp - stamp:.2f} s (replay restarted or clock "
                                      f"reset): 3D tracks reset, new ids from {self._ids.next_id}")
            self._projections = None  # rebuilt below: a fresh triangulator
        triangulator = self._current_triangulator()
        if triangulator is None:
            return False
        info = self._info["left"]
        size = (info.width, info.height) if info.width and info.height else None
        tracks_l = self._without_duplicates("left", [track_from_msg(t) for t in left.tracks])
        tracks_r = self._without_duplicates("right", [track_from_msg(t) for t in right.tracks])
        images = self._images_for(left, right)
        try:
            tracks = triangulator.step(tracks_l, tracks_r, stamp, images, size)
        except ValueError as exc:  # a pair slightly out of order: drop it, keep the 3D belief
            self.get_logger().error(f"dropped stereo pair: {exc}", throttle_duration_sec=2.0)
            return False
        self._last_stamp = stamp
        header = Header(stamp=left.header.stamp, frame_id=self._info["left"].header.frame_id or left.header.frame_id)
        self._pub_tracks.publish(Track3DArray(header=header, tracks=[track3d_to_msg(t) for t in tracks]))
        # Visualisation is built only for someone who listens (RViz, a recorder): with no
        # subscriber it is pure cost on the frame's path.
        if self._pub_points.get_subscription_count():
            self._pub_points.publish(tracks_to_cloud(tracks, header))
        if self._publish_markers and self._pub_markers.get_subscription_count():
            self._pub_markers.publish(tracks_to_markers(tracks, header))
        return True


main = main_for(TriangulatorNode)
