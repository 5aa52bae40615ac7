"""YOLO detection through ONNX Runtime: an ultralytics YOLOv8/11 model exported to ONNX
(``tools/export_detector``), run on both stereo views in one batch.

No torch and no ultralytics at run time: letterboxing (``letterbox.py``), the decoding of the head's
raw output, score threshold, class filter, class-aware NMS and the mapping back to the image are
done here with numpy and OpenCV, following ultralytics' ``non_max_suppression`` so that the ONNX
and the torch backend report the same boxes. Providers: the CPU one, and CUDA where the installed
onnxruntime build offers it (``onnxruntime-gpu``). Nothing is downloaded: a missing file is an error.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from object_permanence.core.detection.letterbox import Letterbox, LetterboxBatch, rect_input_hw
from object_permanence.core.detection.yolo_output import DEVICES, YoloSettings, resolve_classes, to_detections
from object_permanence.core.types import Detection

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
MAX_NMS = 30000  # candidates entering NMS at most, the highest-scoring (ultralytics' max_nms)
DEFAULT_IMGSZ = 640  # a model with a dynamic input size runs at this long side unless told otherwise


def resolve_provider(device: str, available: Sequence[str]) -> str:
    """'auto' -> 'cuda' when ``available`` (onnxruntime's providers) holds the CUDA provider, else
    'cpu'; 'cuda' without it is an error.

    Raises:
        ValueError: an unknown device, or 'cuda' where the installed onnxruntime has no CUDA provider.
    """
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    if device == "auto":
        return "cuda" if PROVIDERS["cuda"] in available else "cpu"
    if device == "cuda" and PROVIDERS["cuda"] not in available:
        raise ValueError(f"device 'cuda' requested but onnxruntime offers only {list(available)} "
                         "(the CUDA provider comes with the onnxruntime-gpu build)")
    return device


def attached_device(resolved: str, requested: str, attached: Sequence[str]) -> str:
    """The device a session really runs on. onnxruntime falls back to the CPU, with only a log line,
    when the CUDA provider is built in but cannot load CUDA or cuDNN: 'auto' follows it to 'cpu',
    an explicit 'cuda' is an error.

    Raises:
        ValueError: 'cuda' requested and the session did not attach the CUDA provider.
    """
    if resolved != "cuda" or PROVIDERS["cuda"] in attached:
        return resolved
    if requested == "cuda":
        raise ValueError(f"device 'cuda' requested but onnxruntime attached only {list(attached)}: its CUDA "
                         "provider could not load the CUDA / cuDNN libraries its build needs (see its log above)")
    return "cpu"


def parse_names(text: str | None) -> dict[int, str]:
    """Class names from ultralytics' ``names`` metadata (a Python dict literal ``{0: 'box', ...}``);
    empty when absent or unreadable."""
    try:
        parsed = ast.literal_eval(text) if text else None
    except (ValueError, SyntaxError):
        parsed = None
    return {int(k): str(v) for k, v in parsed.items()} if isinstance(parsed, dict) else {}


def decode_predictions(output: np.ndarray, settings: YoloSettings,
                       num_classes: int = 0) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Boxes of a YOLOv8/11 detection head's raw output, after threshold, class filter and NMS.

    Args:
        output: (B, 4 + nc (+ extra), A) per anchor ``cx, cy, w, h`` (network pixels) and nc class
            probabilities (already sigmoid); extra channels (e.g. mask coefficients) are ignored.
        settings: conf, iou, max_det, classes.
        num_classes: nc; 0: every channel after the box is a class.

    Returns:
        Per image ``(xyxy (N, 4) float64 network pixels, scores (N,) float32, class_ids (N,) int64)``,
        highest score first, N <= max_det. As ultralytics: each anchor takes its best class, is kept
        when that score exceeds conf and the class is in the filter, and boxes of one class (of any
        class with ``settings.agnostic``) overlapping by IoU > iou are suppressed.
    """
    if output.ndim != 3 or output.shape[1] < 5 or output.shape[1] < 4 + num_classes:
        raise ValueError(f"output must be (B, 4 + nc, A) with nc >= 1, got shape {output.shape}")
    cls = output[:, 4:4 + num_classes, :] if num_classes else output[:, 4:, :]
    best = cls.argmax(axis=1)  # (B, A): class of each anchor's best score
    score = np.take_along_axis(cls, best[:, None, :], axis=1)[:, 0, :]  # (B, A)
    keep = score > settings.conf
    if settings.classes is not None:
        keep &= np.isin(best, settings.classes)
    out = []
    for b in range(output.shape[0]):
        idx = np.flatnonzero(keep[b])
        if len(idx) > MAX_NMS:
            idx = idx[np.argsort(-score[b, idx], kind="stable")[:MAX_NMS]]
        xywh = output[b, :4, idx].astype(np.float64)  # (N, 4) cx, cy, w, h
        scores, classes = score[b, idx].astype(np.float32), best[b, idx].astype(np.int64)
        tl = xywh[:, :2] - xywh[:, 2:] / 2.0  # top-left = centre - size / 2
        groups = np.zeros(len(idx), np.int32) if settings.agnostic else classes.astype(np.int32)  # NMS groups
        kept = np.asarray(cv2.dnn.NMSBoxesBatched(np.concatenate([tl, xywh[:, 2:]], axis=1), scores,
                                                  groups, -1.0, settings.iou),
                          dtype=np.int64).reshape(-1)[:settings.max_det] if len(idx) else np.zeros(0, np.int64)
        xyxy = np.concatenate([tl[kept], tl[kept] + xywh[kept, 2:]], axis=1)
        out.append((xyxy, scores[kept], classes[kept]))
    return out


def decode_end_to_end(output: np.ndarray, settings: YoloSettings) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Boxes of an end-to-end head (YOLOv10/26 style, NMS inside the model): (B, N, 6) rows of
    ``x0, y0, x1, y1, score, class`` in network pixels; only threshold, class filter and max_det
    apply. Returns what :func:`decode_predictions` returns."""
    if output.ndim != 3 or output.shape[2] < 6:
        raise ValueError(f"an end-to-end output must be (B, N, 6), got shape {output.shape}")
    out = []
    for rows in output:
        keep = rows[:, 4] > settings.conf
        if settings.classes is not None:
            keep &= np.isin(rows[:, 5].astype(np.int64), settings.classes)
        rows = rows[keep][:settings.max_det]
        out.append((rows[:, :4].astype(np.float64), rows[:, 4].astype(np.float32), rows[:, 5].astype(np.int64)))
    return out


@dataclass(frozen=True)
class OnnxModelInfo:
    """What an exported model's file says about its input and output.

    input_hw: the fixed (H, W) input, or None when the model takes any size; batch: the fixed batch
    size, or None when dynamic; dtype: of the input (float32, or float16 for a half model);
    end_to_end: the head does its own NMS (output (B, N, 6)); stride: the largest network stride.
    """

    input_name: str
    input_hw: tuple[int, int] | None
    batch: int | None
    dtype: type
    names: dict[int, str]
    end_to_end: bool
    stride: int


def _fixed_dim(value) -> int | None:
    """A fixed dimension of an ONNX shape, or None for a symbolic one (a string such as 'batch')."""
    return value if isinstance(value, int) and value > 0 else None


def _model_info(session) -> OnnxModelInfo:
    """Read the input's shape and type and ultralytics' metadata (names, stride, end2end) of a session."""
    inp, out = session.get_inputs()[0], session.get_outputs()[0]
    meta = session.get_modelmeta().custom_metadata_map
    shape = inp.shape
    if len(shape) != 4 or shape[1] != 3:
        raise ValueError(f"the model's input {inp.name!r} must be (B, 3, H, W), got {shape}")
    if meta.get("task", "detect") not in ("detect", "segment"):  # segment: boxes lead its first output too
        raise ValueError(f"the model's task is {meta['task']!r}, not detect")
    hw = (_fixed_dim(shape[2]), _fixed_dim(shape[3]))
    end_to_end = meta.get("end2end", "False") == "True"
    parsed = parse_names(meta.get("names"))
    channels = out.shape[1] if len(out.shape) == 3 else None
    num_classes = len(parsed) if parsed or end_to_end else (channels - 4 if isinstance(channels, int) else 0)
    if num_classes < 1:
        raise ValueError(f"cannot tell the model's classes: no names metadata and output {out.name!r} "
                         f"has shape {out.shape}")
    names = {i: parsed.get(i, str(i)) for i in range(num_classes)}
    return OnnxModelInfo(
        input_name=inp.name, input_hw=hw if None not in hw else None, batch=_fixed_dim(shape[0]),
        dtype=np.float16 if inp.type == "tensor(float16)" else np.float32, names=names,
        end_to_end=end_to_end, stride=int(meta.get("stride", 32)))


class OnnxDetector:
    """Runs an exported YOLO model with ONNX Runtime on a batch of BGR images.

    Args:
        weights: the ``.onnx`` file (from ``tools/export_detector``; any ultralytics detect export works).
        device: auto (CUDA provider when present, else CPU) | cpu | cuda.
        imgsz: inference size (long side, pixels). 0: the model's fixed input size, or 640 for a
            model exported with a dynamic size (then each image gets the smallest stride-multiple
            input, as ultralytics does). A fixed-size model accepts only its own size.
        conf, iou, max_det, agnostic: see :class:`YoloSettings`; classes: ids and/or names of the
            classes to report (:func:`resolve_classes`), None or empty: all.
        threads: ONNX Runtime intra-op threads; 0: its default (one per physical core).

    Raises:
        FileNotFoundError: no such weights file. ValueError: a bad argument (named first in the
        message), or a weights file onnxruntime cannot load or that is not a YOLO detection model.
    """

    def __init__(self, weights: str, device: str = "auto", imgsz: int = 0, conf: float = 0.25,
                 iou: float = 0.7, max_det: int = 300, classes: Sequence[int | str] | None = None,
                 threads: int = 0, agnostic: bool = False) -> None:
        if not str(weights).endswith(".onnx"):
            raise ValueError(f"weights must be an .onnx file for the onnxruntime backend, got {weights!r}")
        if not Path(weights).is_file():
            raise FileNotFoundError(f"weights file not found: {weights} (nothing is downloaded at run time)")
        if imgsz < 0 or imgsz % 32:
            raise ValueError(f"imgsz must be 0 (the model's) or a positive multiple of 32, got {imgsz}")
        if threads < 0:
            raise ValueError(f"threads must be >= 0 (0: onnxruntime's default), got {threads}")
        settings = YoloSettings(conf, iou, max_det, agnostic=agnostic)  # validated before the model loads
        import onnxruntime as ort

        self.device = resolve_provider(device, ort.get_available_providers())
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        providers = [PROVIDERS["cuda"], PROVIDERS["cpu"]] if self.device == "cuda" else [PROVIDERS["cpu"]]
        if self.device == "cuda" and hasattr(ort, "preload_dlls"):
            try:  # CUDA / cuDNN from the nvidia-* wheels (torch's), where the system has none
                ort.preload_dlls()
            except (OSError, RuntimeError):
                pass  # none there: the system's are tried; attached_device() below names a failure
        try:
            self.session = ort.InferenceSession(str(weights), options, providers=providers)
        except Exception as exc:  # onnxruntime's own error types (invalid protobuf, graph, ...)
            raise ValueError(f"weights {weights}: onnxruntime cannot load it: {exc}") from exc
        self.device = attached_device(self.device, device, self.session.get_providers())
        try:
            self.info = _model_info(self.session)
        except ValueError as exc:
            raise ValueError(f"weights {weights} is not a YOLO detection model: {exc}") from exc
        self.names = self.info.names
        self.settings = replace(settings, classes=resolve_classes(classes, self.names))
        if self.info.input_hw is not None and imgsz and imgsz != max(self.info.input_hw):
            raise ValueError(f"imgsz {imgsz} does not match the model's fixed input {self.info.input_hw} "
                             "(0 takes the model's; export again for another size)")
        self.imgsz = imgsz or (max(self.info.input_hw) if self.info.input_hw else DEFAULT_IMGSZ)
        self._blobs: dict[tuple[int, tuple[int, int]], LetterboxBatch] = {}

    def input_hw(self, image_hw: tuple[int, int]) -> tuple[int, int]:
        """The network input (H, W) used for images of ``image_hw``: the model's fixed size, or for a
        dynamic model the smallest stride-multiple rectangle with long side imgsz."""
        return self.info.input_hw or rect_input_hw(image_hw, self.imgsz, self.info.stride)

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        """One list of detections per (h, w, 3) uint8 BGR image; the images are run as one batch
        (in chunks of the model's batch size when it is fixed, e.g. 2 for a stereo export).

        Raises:
            ValueError: an image that is not (h, w, 3) uint8, or images of different sizes in a
                dynamic-size model's batch.
        """
        if not len(images):
            return []
        step = self.info.batch or len(images)
        out: list[list[Detection]] = []
        for start in range(0, len(images), step):
            out += self._run(images[start:start + step])
        return out

    def _blob(self, batch: int, hw: tuple[int, int]) -> LetterboxBatch:
        key = (batch, hw)
        if key not in self._blobs:
            self._blobs[key] = LetterboxBatch(batch, hw, self.info.dtype)
        return self._blobs[key]

    def preprocess(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, list[Letterbox]]:
        """Letterbox up to one batch of images into the model's input blob.

        Returns the (B, 3, H, W) blob (B: the model's fixed batch, else len(images); reused by the next
        call) and one :class:`Letterbox` per image.

        Raises:
            ValueError: a bad image, more images than a fixed batch, or images of different sizes
                for a dynamic-size model.
        """
        sizes = {image.shape[:2] for image in images if isinstance(image, np.ndarray)}
        if self.info.input_hw is None and len(sizes) > 1:
            raise ValueError(f"a dynamic-size model takes one image size per batch, got {sorted(sizes)}")
        first = images[0].shape[:2] if isinstance(images[0], np.ndarray) else (1, 1)
        blob = self._blob(self.info.batch or len(images), self.input_hw(first))
        return blob.blob, blob.fill(images)

    def forward(self, blob: np.ndarray) -> np.ndarray:
        """The raw head output (float32) of a (B, 3, H, W) input blob."""
        (raw,) = self.session.run(None, {self.info.input_name: blob})
        return np.asarray(raw, dtype=np.float32)

    def _run(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        """Letterbox ``images`` into one blob, run it, decode and map the boxes back."""
        blob, boxes = self.preprocess(images)
        raw = self.forward(blob)[:len(images)]
        decoded = (decode_end_to_end(raw, self.settings) if self.info.end_to_end
                   else decode_predictions(raw, self.settings, len(self.names)))
        return [to_detections(box.boxes_to_image(xyxy), scores, classes, self.names)
                for box, (xyxy, scores, classes) in zip(boxes, decoded)]
