"""stereo_capture: publishes synchronised left/right images and CameraInfo (one stamp per pair)
from the simulator, two video files (or one side-by-side), two image folders or two cameras.

The images also go out JPEG-compressed on ``stereo/<cam>/image_raw/compressed`` (image_transport's
compressed transport), encoded only while someone subscribes there: a node on another machine
(``image_transport: compressed``) or a viewer over a network link. The simulated source also
publishes its ground truth on ``sim/ground_truth`` (same stamp)."""
from __future__ import annotations

import cv2
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

from object_permanence.core.calibration import (
    camera_info_fields,
    load_stereo_calibration,
    rectified_camera_info_fields,
    rectify_maps,
)
from object_permanence.core.sim.scenarios import SCENARIOS, TEXTURE_SOURCES
from object_permanence.core.sim.source import SceneClock, SimStereoSource
from object_permanence.core.sources import open_source
from object_permanence.msg import SimGroundTruth
from object_permanence.ros.conversions import bgr_to_compressed, camera_info_msg, numpy_to_image, sim_objects_to_msg
from object_permanence.ros.diagnostics import DIAGNOSTICS_PERIOD_PARAM, NodeDiagnostics
from object_permanence.ros.params import Param, ParameterError, declare
from object_permanence.ros.qos import RELIABLE_QOS, SENSOR_QOS
from object_permanence.ros.runner import main_for

SOURCES = ("sim", "video", "images", "camera")

PARAMS = (
    Param("source", "sim", "Where frames come from.", choices=SOURCES),
    Param("fps", 30.0, "Publish rate (Hz); for cameras, the rate they are polled at.", low=0.1, high=1000.0),
    Param("max_frames", 0, "Stop after this many frames (0: the sim scenario's length / until the source ends).",
          low=0, high=10**9),
    Param("loop", False, "Restart at the first frame when the source ends (sim, video, images)."),
    Param("scenario", "cluttered", "sim: scenario preset.", choices=tuple(sorted(SCENARIOS))),
    Param("seed", 1000, "sim: random seed (the world is deterministic for a seed; seeds 0-999 are the tuning "
          "and training seeds, reported figures use seeds >= 1000).", low=0, high=2**31 - 1),
    Param("textures", "photo", "sim: object and background textures: crops of real photographs or synthetic "
          "patterns.", choices=TEXTURE_SOURCES),
    Param("publish_ground_truth", True, "sim: publish the ground truth on sim/ground_truth."),
    Param("video_left", "", "video: left video file (or the side-by-side file)."),
    Param("video_right", "", "video: right video file (empty with side_by_side)."),
    Param("side_by_side", False, "video: one file holding left|right halves."),
    Param("images_left", "", "images: folder or glob of left images."),
    Param("images_right", "", "images: folder or glob of right images."),
    Param("camera_left", 0, "camera: OpenCV device index of the left camera.", low=0, high=255),
    Param("camera_right", 1, "camera: OpenCV device index of the right camera.", low=0, high=255),
    Param("width", 640, "camera: requested frame width.", low=16, high=8192),
    Param("height", 480, "camera: requested frame height.", low=16, high=8192),
    Param("calibration_file", "", "Stereo calibration YAML (camera_calibration_parsers format, left:/right: "
          "blocks). Required for video/images/camera; the sim uses its own rig when empty."),
    Param("rectify", True, "Rectify real images with the calibration before publishing (the detector, "
          "world model and triangulator assume rectified, row-aligned views); camera_info then describes the "
          "rectified images (no distortion, R = I, K = P[:, :3]), as ROS expects of rectified images."),
    Param("max_read_failures", 30, "camera: consecutive reads without a new pair (each waits two frame periods "
          "for one) before capture stops, once the first pair came (a USB camera can drop frames and come back; "
          "before its first pair it is waited for).", low=1, high=100000),
    Param("frame_id_left", "left_camera_optical_frame", "frame_id of left images and camera_info."),
    Param("frame_id_right", "right_camera_optical_frame", "frame_id of right images and camera_info."),
    Param("jpeg_quality", 90, "JPEG quality (1-100) of stereo/<cam>/image_raw/compressed, which is encoded only "
          "while it has a subscriber.", low=1, high=100),
    DIAGNOSTICS_PERIOD_PARAM,
)


#: A clock jumping ahead by more than this between two capture ticks restarted or was suspended: the
#: simulated scene goes on from its next frame instead of skipping that time's frames.
SCENE_CLOCK_MAX_JUMP_NS = 1_000_000_000


class StereoCaptureNode(Node):
    """Timer-driven capture: read a pair, stamp it once, publish images + camera_info (+ truth)."""

    def __init__(self, **kwargs) -> None:
        super().__init__("stereo_capture", **kwargs)
        p = declare(self, PARAMS)
        self._frame_ids = {"left": p["frame_id_left"], "right": p["frame_id_right"]}
        self._source, info_fields, self._maps = self._open(p)
        # built once: per frame only the header changes (publish serialises the message at once)
        self._info = {cam: camera_info_msg(info_fields[cam], Header()) for cam in ("left", "right")}
        self._publish_truth = p["source"] == "sim" and p["publish_ground_truth"]
        self._max_frames = p["max_frames"]
        self._live = p["source"] == "camera"
        # the simulated scene keeps the clock's time: its frame k is exposed at start + k periods
        # (rclpy's timer period, int(1e9 / fps) ns, so that a simulated clock stepping by it meets them)
        self._scene_clock = SceneClock(int(1e9 / p["fps"]), SCENE_CLOCK_MAX_JUMP_NS) if p["source"] == "sim" else None
        self._sim_skipped = 0
        self._max_read_failures = p["max_read_failures"]
        self._read_failures = 0
        self._count = 0
        self._pub_image = {c: self.create_publisher(Image, f"stereo/{c}/image_raw", SENSOR_QOS) for c in self._info}
        self._pub_compressed = {c: self.create_publisher(CompressedImage, f"stereo/{c}/image_raw/compressed",
                                                         SENSOR_QOS) for c in self._info}
        self._jpeg_quality = p["jpeg_quality"]
        self._pub_info = {c: self.create_publisher(CameraInfo, f"stereo/{c}/camera_info", SENSOR_QOS)
                          for c in self._info}
        self._pub_truth = self.create_publisher(SimGroundTruth, "sim/ground_truth", RELIABLE_QOS) \
            if self._publish_truth else None
        self._diag = NodeDiagnostics(self, p["diagnostics_period_s"], "stereo pairs")
        self._timer = self.create_timer(1.0 / p["fps"], self._tick)
        self.get_logger().info(f"source '{p['source']}' at {p['fps']:.1f} Hz, "
                               f"{self._source.frame_size[0]}x{self._source.frame_size[1]}")

    def _open(self, p: dict):
        """The frame source, the CameraInfo fields per camera and the rectification maps (or None)."""
        if p["source"] == "sim":
            source = SimStereoSource(p["scenario"], p["seed"], p["max_frames"], p["loop"], p["textures"])
            fields = {c: source.world.rig.camera_info(c) for c in ("left", "right")}
            if p["calibration_file"]:
                self.get_logger().warning("calibration_file is ignored by the sim source (it uses its own rig)")
            return source, fields, None
        if not p["calibration_file"]:
            raise ParameterError(f"parameter 'calibration_file' is required for source '{p['source']}'")
        try:
            calibration = load_stereo_calibration(p["calibration_file"])
            source = open_source(p["source"], **self._source_params(p))
        except (OSError, ValueError) as exc:
            raise ParameterError(f"source '{p['source']}': {exc}") from exc
        if source.frame_size != (calibration.left.width, calibration.left.height):
            raise ParameterError(f"calibration_file is for {calibration.left.width}x{calibration.left.height} "
                                 f"but the source gives {source.frame_size[0]}x{source.frame_size[1]}")
        # rectified images get the camera_info of rectified images (D = 0, R = I, K = P[:, :3])
        info = rectified_camera_info_fields if p["rectify"] else camera_info_fields
        fields = {"left": info(calibration.left), "right": info(calibration.right)}
        return source, fields, rectify_maps(calibration) if p["rectify"] else None

    @staticmethod
    def _source_params(p: dict) -> dict:
        if p["source"] == "video":
            return {"left_path": p["video_left"], "right_path": p["video_right"] or None,
                    "side_by_side": p["side_by_side"], "loop": p["loop"]}
        if p["source"] == "images":
            return {"left": p["images_left"], "right": p["images_right"], "loop": p["loop"]}
        return {"left_device": p["camera_left"], "right_device": p["camera_right"], "width": p["width"],
                "height": p["height"], "fps": p["fps"]}

    def _tick(self) -> None:
        if self._max_frames and self._count >= self._max_frames:
            return
        # The stamp is taken before the frame is read (rendered, decoded): it is the time the frame
        # was asked for, so capture-to-output latency includes the capture itself. Live cameras are
        # grabbed on their own thread: their pair is stamped with the time it was grabbed. A
        # simulated frame is stamped with its scene time, the latest frame time the clock had reached.
        asked = self.get_clock().now()
        try:
            pair = self._read(asked)
        except (OSError, ValueError) as exc:
            self.get_logger().error(f"frame read failed: {exc}", throttle_duration_sec=2.0)
            return
        if pair is None and self._live and self._count == 0:  # cameras can take seconds to deliver a first pair
            self.get_logger().info("waiting for the cameras' first pair", throttle_duration_sec=2.0)
            return
        if pair is None:
            self._read_failures += 1
            if self._live and self._read_failures < self._max_read_failures:
                self.get_logger().warning(f"no new camera pair ({self._read_failures} reads in a row)",
                                          throttle_duration_sec=1.0)
                return
            self.get_logger().info(f"source ended after {self._count} frames"
                                   + (f" ({self._read_failures} failed reads in a row)" if self._live else ""))
            self._timer.cancel()
            return
        self._read_failures = 0
        age_s = getattr(self._source, "frame_age_s", None)
        if self._scene_clock is not None:  # the scene time of the frame rendered
            stamp = Time(nanoseconds=self._scene_clock.stamp_ns(self._source.position),
                         clock_type=asked.clock_type).to_msg()
        elif age_s is not None:
            stamp = (self.get_clock().now() - Duration(nanoseconds=round(age_s * 1e9))).to_msg()
        else:
            stamp = asked.to_msg()
        with self._diag.frame(stamp):  # its age at the end: the read (render, decode) and the publishing
            self._publish(pair, stamp)
        self._count += 1

    def _publish(self, pair, stamp) -> None:
        """Rectify (real sources) and publish one pair, its camera_info and the sim's truth."""
        images = dict(zip(("left", "right"), pair))
        if self._maps is not None:
            mlx, mly, mrx, mry = self._maps
            images = {"left": cv2.remap(images["left"], mlx, mly, cv2.INTER_LINEAR),
                      "right": cv2.remap(images["right"], mrx, mry, cv2.INTER_LINEAR)}
        for cam, image in images.items():
            header = Header(stamp=stamp, frame_id=self._frame_ids[cam])
            self._pub_image[cam].publish(numpy_to_image(image, header, "bgr8"))
            if self._pub_compressed[cam].get_subscription_count():  # encoded for a listener only
                self._pub_compressed[cam].publish(bgr_to_compressed(image, header, "jpeg", self._jpeg_quality))
            self._info[cam].header = header
            self._pub_info[cam].publish(self._info[cam])
        if self._pub_truth is not None:
            truth = self._source.truth
            self._pub_truth.publish(SimGroundTruth(
                header=Header(stamp=stamp, frame_id=self._frame_ids["left"]), frame_index=truth.index,
                left=sim_objects_to_msg(truth.left), right=sim_objects_to_msg(truth.right)))

    def _read(self, asked: Time):
        """The next pair. The simulated scene is read at the frame the clock has reached since the
        first frame (``due``), so a capture that falls behind the timer skips frames, as a camera's
        reader does, instead of slowing the world down under stamps that keep the clock's pace (the
        objects would seem to move slower and jerkily); skipped frames are logged."""
        if self._scene_clock is None:
            return self._source.read()
        expected = self._source.position + 1
        jumps = self._scene_clock.reanchored
        pair = self._source.read(self._scene_clock.due(asked.nanoseconds, expected))
        if self._scene_clock.reanchored > jumps:
            self.get_logger().warning("the clock jumped (back, or ahead by over "
                                      f"{SCENE_CLOCK_MAX_JUMP_NS / 1e9:.0f} s): the simulated scene goes on "
                                      "from its next frame at the clock's time")
        if pair is not None and self._source.position > expected:
            self._sim_skipped += self._source.position - expected
            self.get_logger().warning(f"capture fell behind the clock: {self._sim_skipped} simulated frames "
                                      "skipped so far", throttle_duration_sec=2.0)
        return pair

    def close(self) -> None:
        self._source.close()


main = main_for(StereoCaptureNode)
