"""detector: detects objects in both views of a stereo pair in one batch and computes one
appearance embedding per detection (``stereo/<cam>/image_raw`` -> ``stereo/<cam>/detections``).

Backends: ``ultralytics`` (any YOLO weights file, on ``device``) and ``simulated`` — a simulator
of a detector (ground truth from ``sim/ground_truth`` turned into what a real detector reports:
visible-part boxes, bursty misses, persistent confidences, nuisances, confusions, duplicates and
merges; ``sim.difficulty`` easy | realistic | hard), for evaluating the rest of the pipeline on the sim."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import Image

from object_permanence.core.appearance import ColorHistogramEmbedder
from object_permanence.core.detection.simulated import DIFFICULTIES, SimulatedDetector, SimulatedDetectorConfig
from object_permanence.core.types import Detection
from object_permanence.msg import DetectionArray, SimGroundTruth
from object_permanence.ros.conversions import (
    ConversionError,
    as_bgr,
    detection_to_msg,
    image_to_numpy,
    sim_objects_from_msg,
)
from object_permanence.ros.params import Param, ParameterError, build_config, config_params, declare
from object_permanence.ros.guard import guarded, subscribe
from object_permanence.ros.qos import RELIABLE_QOS, SENSOR_QOS
from object_permanence.ros.runner import main_for
from object_permanence.ros.sync import ApproximateTimeSynchronizer, SyncMonitor, header_stamp_key

BACKENDS = ("simulated", "ultralytics")
CAMERAS = ("left", "right")
FROM_PRESET = -1  # a sim.<rate> parameter at this value takes the sim.difficulty preset's value


def _sim_params() -> tuple[Param, ...]:
    """``sim.difficulty``, ``sim.seed`` and one ``sim.<rate>`` per SimulatedDetectorConfig field,
    defaulting to FROM_PRESET; each description lists the presets' values."""
    presets = {name: SimulatedDetectorConfig.preset(name) for name in DIFFICULTIES}
    rates = tuple(
        replace(p, default=type(p.default)(FROM_PRESET), description=f"{p.description} {FROM_PRESET} (default): the "
                f"sim.difficulty preset's value (" + ", ".join(
                    f"{name} {getattr(presets[name], p.name[4:])}" for name in DIFFICULTIES) + ").")
        for p in config_params(SimulatedDetectorConfig, prefix="sim.", skip=("seed",)))
    return (Param("sim.difficulty", "realistic", "simulated: difficulty preset of the detector simulator (misses, "
                  "box noise, confidences, nuisances, confusions, duplicates, merges); each sim.<rate> parameter "
                  f"left at {FROM_PRESET} takes its value from it.", choices=DIFFICULTIES),
            Param("sim.seed", 0, "simulated: base seed of the detector simulator's draws (its output is a pure "
                  "function of seed, frame index, camera and ground truth).", low=0, high=2**31 - 1)) + rates


def _sim_config(p: dict) -> SimulatedDetectorConfig:
    """The simulated backend's config: the sim.difficulty preset, overridden by every sim.<rate> set
    to another value than FROM_PRESET. Raises ParameterError naming the parameter of a bad value."""
    preset = SimulatedDetectorConfig.preset(p["sim.difficulty"])
    values = {name: getattr(preset, name[4:]) if value == FROM_PRESET and name != "sim.seed" else value
              for name, value in p.items() if name.startswith("sim.") and name != "sim.difficulty"}
    return build_config(SimulatedDetectorConfig, values, prefix="sim.")


PARAMS = (
    Param("backend", "simulated", "Detector backend. simulated: a detector simulator over the sim's ground "
          "truth (for tracker evaluation); ultralytics: YOLO weights (AGPL-3.0, optional).", choices=BACKENDS),
    Param("weights", "", "ultralytics: weights file (.pt). Nothing is downloaded."),
    Param("device", "auto", "ultralytics: inference device.", choices=("auto", "cpu", "cuda")),
    Param("imgsz", 640, "ultralytics: inference size (multiple of 32).", low=32, high=4096),
    Param("conf_threshold", 0.25, "ultralytics: minimum confidence.", low=0.0, high=1.0),
    Param("iou_threshold", 0.7, "ultralytics: NMS IoU threshold.", low=0.0, high=1.0),
    Param("max_detections", 300, "Per image; the highest-scoring are kept beyond it (logged).", low=1, high=100000),
    Param("embedding_bins", [8, 4, 4], "HSV histogram bins of the appearance embedding (H, S, V)."),
    Param("sync_slop_s", 0.01, "Largest stamp difference (s) within one synchronised set (left image, right "
          "image, sim truth). 0: identical stamps only (this package's capture node stamps both alike); "
          "independent camera drivers need about their stamp jitter, below half the frame period.",
          low=0.0, high=1.0),
    Param("sync_queue_size", 10, "Stamps waiting for their partner message(s) before the oldest is dropped.",
          low=1, high=1000),
) + _sim_params()


class DetectorNode(Node):
    """Thin adapter: synchronised image pair (+ truth) -> backend -> embeddings -> DetectionArrays."""

    def __init__(self, **kwargs) -> None:
        super().__init__("detector", **kwargs)
        p = declare(self, PARAMS)
        bins = tuple(p["embedding_bins"])
        if len(bins) != 3 or min(bins) < 1:
            raise ParameterError(f"parameter 'embedding_bins' must be three positive integers, got {list(bins)}")
        self._embedder = ColorHistogramEmbedder(bins=bins)
        self._max_detections = p["max_detections"]
        self._backend = p["backend"]
        if self._backend == "simulated":
            self._sim = SimulatedDetector(_sim_config(p))
        else:
            self._yolo = self._load_ultralytics(p)
        self._pubs = {c: self.create_publisher(DetectionArray, f"stereo/{c}/detections", RELIABLE_QOS)
                      for c in CAMERAS}
        n_inputs = 3 if self._backend == "simulated" else 2
        self._sync = ApproximateTimeSynchronizer(n_inputs, guarded(self, "stereo pair", self._on_frame),
                                                 p["sync_queue_size"], p["sync_slop_s"])
        self._sync_monitor = SyncMonitor(self, self._sync, 5.0, "stereo pair",
                                         ("left", "right", "ground truth")[:n_inputs])
        inputs = self._sync.inputs(header_stamp_key)
        for cam, callback in zip(CAMERAS, inputs):
            subscribe(self, Image, f"stereo/{cam}/image_raw", callback, SENSOR_QOS)
        if self._backend == "simulated":
            subscribe(self, SimGroundTruth, "sim/ground_truth", inputs[2], RELIABLE_QOS)
        self.get_logger().info(f"backend '{self._backend}'")

    def _load_ultralytics(self, p: dict):
        from object_permanence.core.detection.ultralytics_backend import UltralyticsDetector

        try:
            return UltralyticsDetector(p["weights"], p["device"], p["imgsz"], p["conf_threshold"],
                                       p["iou_threshold"], p["max_detections"])
        except (OSError, ValueError) as exc:
            raise ParameterError(f"backend 'ultralytics': {exc}") from exc

    def _on_frame(self, left: Image, right: Image, truth: SimGroundTruth | None = None) -> None:
        try:
            images = [as_bgr(image_to_numpy(m), m.encoding) for m in (left, right)]
        except ConversionError as exc:
            self.get_logger().error(f"dropped stereo pair: {exc}", throttle_duration_sec=2.0)
            return
        if images[0].shape[:2] != images[1].shape[:2]:
            self.get_logger().error(
                f"dropped stereo pair: left image is {images[0].shape[1]}x{images[0].shape[0]} but right is "
                f"{images[1].shape[1]}x{images[1].shape[0]} (a rectified pair has one size)", throttle_duration_sec=2.0)
            return
        if truth is not None:
            per_camera = [self._sim.detect(sim_objects_from_msg(objs), truth.frame_index, cam, image.shape[:2])
                          for cam, objs, image in zip(CAMERAS, (truth.left, truth.right), images)]
        else:
            per_camera = self._yolo.detect(images)
        for cam, msg, image, detections in zip(CAMERAS, (left, right), images, per_camera):
            detections = self._cap(cam, detections)
            if detections:
                embeddings = self._embedder.embed(image, np.array([d.box for d in detections]))
                for d, e in zip(detections, embeddings):
                    d.embedding = e
            self._pubs[cam].publish(DetectionArray(
                header=msg.header, image_width=image.shape[1], image_height=image.shape[0],
                detections=[detection_to_msg(d) for d in detections]))

    def _cap(self, camera: str, detections: list[Detection]) -> list[Detection]:
        if len(detections) <= self._max_detections:
            return detections
        self.get_logger().warning(f"{camera}: {len(detections)} detections, keeping the {self._max_detections} "
                               "highest-scoring (max_detections)", throttle_duration_sec=5.0)
        return sorted(detections, key=lambda d: -d.score)[:self._max_detections]


main = main_for(DetectorNode)
