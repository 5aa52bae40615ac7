"""detector: detects objects in both views of a stereo pair in one batch and computes one
appearance embedding per detection (``stereo/<cam>/image_raw`` -> ``stereo/<cam>/detections``; with
``image_transport: compressed``, ``stereo/<cam>/image_raw/compressed``).

Backends: ``onnxruntime`` (a YOLO model exported to ``.onnx`` by ``tools/export_detector``: no torch
at run time, the fastest on a CPU), ``ultralytics`` (any YOLO ``.pt`` weights through torch, on
``device``, float16 on CUDA with ``half``) and ``simulated`` — a simulator of a detector (ground
truth from ``sim/ground_truth`` turned into what a real detector reports: visible-part boxes, bursty
misses, persistent confidences, nuisances, confusions, duplicates and merges; ``sim.difficulty``
easy | realistic | hard | sim_yolo), for evaluating the rest of the pipeline on the sim. ``classes`` keeps
only the named classes, whatever the backend."""
from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
from rclpy.node import Node

from object_permanence.core.appearance import ColorHistogramEmbedder
from object_permanence.core.detection.simulated import DIFFICULTIES, SimulatedDetector, SimulatedDetectorConfig
from object_permanence.core.detection.yolo_output import YoloDetector, resolve_classes
from object_permanence.core.sim.scenarios import CLASS_NAMES
from object_permanence.core.types import Detection
from object_permanence.msg import DetectionArray, SimGroundTruth
from object_permanence.ros.conversions import (
    ConversionError,
    detection_to_msg,
    sim_objects_from_msg,
)
from object_permanence.ros.params import Param, ParameterError, build_config, config_params, declare
from object_permanence.ros.diagnostics import DIAGNOSTICS_PERIOD_PARAM, NodeDiagnostics
from object_permanence.ros.guard import guarded, subscribe
from object_permanence.ros.images import IMAGE_TRANSPORT_PARAM, ImageMsg, image_subscription, image_to_bgr
from object_permanence.ros.qos import DETECTOR_IMAGE_QOS, RELIABLE_QOS
from object_permanence.ros.runner import main_for
from object_permanence.ros.shipped import on_cuda, shipped_model
from object_permanence.ros.sync import ApproximateTimeSynchronizer, SyncMonitor, header_stamp_key

BACKENDS = ("simulated", "ultralytics", "onnxruntime")
WEIGHTS_SUFFIXES = {"ultralytics": (".pt", ".yaml"), "onnxruntime": (".onnx",)}
# The YOLO backends' constructor arguments (named first in their ValueErrors) -> node parameters.
CORE_ARGUMENTS = {"weights": "weights", "device": "device", "imgsz": "imgsz", "half": "half", "threads": "threads",
                  "classes": "classes", "conf": "conf_threshold", "iou": "iou_threshold", "max_det": "max_detections",
                  "agnostic": "agnostic_nms"}
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


def _class_list(text: str) -> list[str]:
    """The ``classes`` parameter's entries: comma-separated ids or names, blanks dropped."""
    return [entry.strip() for entry in text.split(",") if entry.strip()]


PARAMS = (
    Param("backend", "simulated", "Detector backend. simulated: a detector simulator over the sim's ground "
          "truth (for tracker evaluation); onnxruntime: a YOLO model exported to .onnx (tools/export_detector; "
          "no torch, the faster on a CPU); ultralytics: YOLO .pt weights through torch (AGPL-3.0, optional).",
          choices=BACKENDS),
    Param("weights", "", "ultralytics: weights file (.pt, or a model .yaml for an untrained network); "
          "onnxruntime: the exported .onnx. Nothing is downloaded."),
    Param("device", "auto", "ultralytics, onnxruntime: inference device (auto: CUDA when torch, or the installed "
          "onnxruntime build, sees it; else cpu).", choices=("auto", "cpu", "cuda")),
    Param("imgsz", 0, "ultralytics, onnxruntime: inference size, long side in pixels (multiple of 32). 0: the "
          "weights' own (an .onnx file's fixed input; a .pt's training size).", low=0, high=4096,
          check=lambda v: None if v % 32 == 0 else f"parameter 'imgsz' is {v}; allowed: 0 or a multiple of 32"),
    Param("half", False, "ultralytics: float16 inference on CUDA (ignored, with a log line, where device auto "
          "finds no GPU; an error with device cpu). onnxruntime runs the .onnx file's own precision."),
    Param("threads", 0, "onnxruntime: intra-op threads. 0: onnxruntime's default (one per physical core).",
          low=0, high=256),
    Param("conf_threshold", 0.25, "ultralytics, onnxruntime: minimum confidence.", low=0.0, high=1.0),
    Param("iou_threshold", 0.7, "ultralytics, onnxruntime: NMS IoU threshold (0.7: ultralytics' default; the "
          "shipped config/detector.yaml sets 0.5 for the shipped sim_yolo, which boxes a partly hidden object "
          "twice).", low=0.0, high=1.0),
    Param("agnostic_nms", True, "ultralytics, onnxruntime: class-agnostic NMS, one box per object whatever its "
          "class (false: per class, ultralytics' default). A detector torn between two similar classes otherwise "
          "reports one object twice and the world model makes two tracks of it: the shipped sim_yolo on tuning "
          "scenes, 83% fewer duplicate boxes for 0.6% fewer true ones."),
    Param("classes", "", "Classes to report: comma-separated class ids or names of the backend's model (e.g. "
          "'person,car', or '0,2'; the simulated backend's are box, ball, bottle). Empty: every class. An "
          "unknown entry fails at start-up, listing the model's classes."),
    Param("max_detections", 300, "Per image; the highest-scoring are kept beyond it (logged).", low=1, high=100000),
    Param("embedding", "colour_histogram", "Appearance embedding of every detection: colour_histogram (HSV "
          "histogram of the box) or learned (the re-ID CNN of embedding_weights, trained on simulated identities; "
          "rank-1 0.898 vs 0.771 on held-out identities, about 10x the CPU time).",
          choices=("colour_histogram", "learned")),
    Param("embedding_bins", [8, 4, 4], "colour_histogram: HSV histogram bins (H, S, V)."),
    Param("embedding_weights", "", "learned: re-ID weights (tools/train_reid: a .pt through torch, or its .onnx "
          "export through onnxruntime, CPU only, no torch); empty: the shipped one in "
          "share/object_permanence/models/reid: reid_net.onnx on the CPU, reid_net.pt on CUDA."),
    Param("embedding_threads", 1, "learned: onnxruntime threads of the embedder (1 is fastest on a loaded 2-core "
          "CPU).", low=1, high=64),
    Param("sync_slop_s", 0.01, "Largest stamp difference (s) within one synchronised set (left image, right "
          "image, sim truth). 0: identical stamps only (this package's capture node stamps both alike); "
          "independent camera drivers need about their stamp jitter, below half the frame period.",
          low=0.0, high=1.0),
    Param("sync_queue_size", 10, "Stamps waiting for their partner message(s) before the oldest is dropped.",
          low=1, high=1000),
    IMAGE_TRANSPORT_PARAM,
    DIAGNOSTICS_PERIOD_PARAM,
) + _sim_params()


class DetectorNode(Node):
    """Thin adapter: synchronised image pair (+ truth) -> backend -> embeddings -> DetectionArrays."""

    def __init__(self, **kwargs) -> None:
        super().__init__("detector", **kwargs)
        p = declare(self, PARAMS)
        self._embedder = self._make_embedder(p)
        self._max_detections = p["max_detections"]
        self._backend = p["backend"]
        self._classes: tuple[int, ...] | None = None  # a filter the node applies (simulated backend)
        if self._backend == "simulated":
            self._sim = SimulatedDetector(_sim_config(p))
            self._classes = self._resolve_classes(p["classes"], dict(enumerate(CLASS_NAMES)))
        else:
            self._yolo = self._load_yolo(p)
        self._pubs = {c: self.create_publisher(DetectionArray, f"stereo/{c}/detections", RELIABLE_QOS)
                      for c in CAMERAS}
        self._diag = NodeDiagnostics(self, p["diagnostics_period_s"], "stereo pairs")
        n_inputs = 3 if self._backend == "simulated" else 2
        self._sync = ApproximateTimeSynchronizer(n_inputs, guarded(self, "stereo pair", self._on_frame),
                                                 p["sync_queue_size"], p["sync_slop_s"])
        self._sync_monitor = SyncMonitor(self, self._sync, 5.0, "stereo pair",
                                         ("left", "right", "ground truth")[:n_inputs])
        inputs = self._sync.inputs(header_stamp_key)
        for cam, callback in zip(CAMERAS, inputs):
            subscribe(self, *image_subscription(cam, p["image_transport"]), callback, DETECTOR_IMAGE_QOS)
        if self._backend == "simulated":
            subscribe(self, SimGroundTruth, "sim/ground_truth", inputs[2], RELIABLE_QOS)
        self.get_logger().info(f"backend '{self._backend}'" + (f" ({self._describe_yolo()})"
                                                               if self._backend != "simulated" else ""))

    @staticmethod
    def _make_embedder(p: dict):
        """The appearance embedder (the one place it is made; it embeds every published detection)."""
        if p["embedding"] == "learned":
            from object_permanence.core.reid.embedder import LearnedEmbedder

            weights = p["embedding_weights"] or str(shipped_model(
                f"reid/reid_net.{'pt' if on_cuda(p['device']) else 'onnx'}"))
            try:
                return LearnedEmbedder(weights, p["device"], threads=p["embedding_threads"])
            except ImportError as exc:
                raise ParameterError(f"parameter 'embedding' is 'learned', which needs {exc.name or 'a module'} for "
                                     f"{weights} ({exc}); install it, or use 'colour_histogram'") from exc
            except (OSError, ValueError) as exc:
                raise ParameterError(f"parameter 'embedding_weights' ({weights}): {exc}") from exc
        bins = tuple(p["embedding_bins"])
        if len(bins) != 3 or min(bins) < 1:
            raise ParameterError(f"parameter 'embedding_bins' must be three positive integers, got {list(bins)}")
        return ColorHistogramEmbedder(bins=bins)

    @staticmethod
    def _resolve_classes(text: str, names: dict[int, str]) -> tuple[int, ...] | None:
        try:
            return resolve_classes(_class_list(text), names)
        except ValueError as exc:
            raise ParameterError(f"parameter 'classes': {exc}") from exc

    def _load_yolo(self, p: dict) -> YoloDetector:
        """The ultralytics or onnxruntime detector; a bad parameter raises ParameterError naming it."""
        backend, weights = p["backend"], p["weights"]
        allowed = WEIGHTS_SUFFIXES[backend]
        if not weights.endswith(allowed):
            raise ParameterError(f"parameter 'weights' is {weights!r}; backend '{backend}' takes a "
                                 f"{' or '.join(allowed)} file" + (" (export one with tools/export_detector)"
                                                                   if backend == "onnxruntime" else ""))
        classes = _class_list(p["classes"])
        try:
            if backend == "onnxruntime":
                from object_permanence.core.detection.onnx_backend import OnnxDetector

                if p["half"]:
                    self.get_logger().warning("parameter 'half' applies to the ultralytics backend; onnxruntime "
                                              "runs the .onnx file's own precision")
                return OnnxDetector(weights, p["device"], p["imgsz"], p["conf_threshold"], p["iou_threshold"],
                                    p["max_detections"], classes, p["threads"], p["agnostic_nms"])
            from object_permanence.core.detection.ultralytics_backend import UltralyticsDetector

            detector = UltralyticsDetector(weights, p["device"], p["imgsz"], p["conf_threshold"],
                                           p["iou_threshold"], p["max_detections"], classes, p["half"],
                                           p["agnostic_nms"])
            if p["half"] and not detector.half:
                self.get_logger().warning("parameter 'half' ignored: device 'auto' found no CUDA device (float32)")
            return detector
        except FileNotFoundError as exc:
            raise ParameterError(f"parameter 'weights': {exc}") from exc
        except ValueError as exc:  # the core names its argument first: map it to the parameter
            argument = re.match(r"[a-z_]*", str(exc)).group()
            raise ParameterError(f"parameter '{CORE_ARGUMENTS.get(argument, 'weights')}' (backend '{backend}'): "
                                 f"{exc}") from exc

    def _describe_yolo(self) -> str:
        names = self._yolo.names
        return (f"{self._yolo.device}, imgsz {self._yolo.imgsz}, {len(names)} classes"
                + (f", reporting {[names[i] for i in self._yolo.settings.classes]}" if self._yolo.settings.classes
                   else ""))

    def _on_frame(self, left: ImageMsg, right: ImageMsg, truth: SimGroundTruth | None = None) -> None:
        self._diag.process(left.header.stamp, self._detect, left, right, truth)

    def _detect(self, left: ImageMsg, right: ImageMsg, truth: SimGroundTruth | None) -> bool:
        """Detect and embed in both views and publish; False when the pair is dropped (logged)."""
        try:
            images = [image_to_bgr(m) for m in (left, right)]
        except ConversionError as exc:
            self.get_logger().error(f"dropped stereo pair: {exc}", throttle_duration_sec=2.0)
            return False
        if images[0].shape[:2] != images[1].shape[:2]:
            self.get_logger().error(
                f"dropped stereo pair: left image is {images[0].shape[1]}x{images[0].shape[0]} but right is "
                f"{images[1].shape[1]}x{images[1].shape[0]} (a rectified pair has one size)", throttle_duration_sec=2.0)
            return False
        if truth is not None:
            per_camera = [self._sim.detect(sim_objects_from_msg(objs), truth.frame_index, cam, image.shape[:2])
                          for cam, objs, image in zip(CAMERAS, (truth.left, truth.right), images)]
            if self._classes is not None:
                per_camera = [[d for d in dets if d.class_id in self._classes] for dets in per_camera]
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
        return True

    def _cap(self, camera: str, detections: list[Detection]) -> list[Detection]:
        if len(detections) <= self._max_detections:
            return detections
        self.get_logger().warning(f"{camera}: {len(detections)} detections, keeping the {self._max_detections} "
                               "highest-scoring (max_detections)", throttle_duration_sec=5.0)
        return sorted(detections, key=lambda d: -d.score)[:self._max_detections]


main = main_for(DetectorNode)
