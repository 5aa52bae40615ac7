"""YOLO detection through ultralytics (AGPL-3.0: this module is the only one that imports it).

Any ultralytics weights file works (``yolo11n.pt``, a project-trained ``.pt``); a model YAML
(``yolov8n.yaml``) builds an untrained network, useful only to exercise the code path. Nothing
is downloaded: a missing weights file is an error, and ultralytics' online checks and automatic
pip installs are switched off (``YOLO_OFFLINE``, ``YOLO_AUTOINSTALL``) unless the environment
already sets them. The ONNX Runtime backend (``onnx_backend.py``) runs the same model exported.
"""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import numpy as np

from object_permanence.core.detection.letterbox import check_bgr_image
from object_permanence.core.detection.yolo_output import DEVICES, YoloSettings, resolve_classes, to_detections
from object_permanence.core.types import Detection

__all__ = ["DEVICES", "UltralyticsDetector", "resolve_device"]


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda:0' when torch sees a GPU, else 'cpu'; 'cuda' without a GPU is an error."""
    import torch

    if device not in DEVICES and not device.startswith("cuda:"):
        raise ValueError(f"device must be one of {DEVICES} or 'cuda:N', got {device!r}")
    if device == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but torch sees no CUDA device")
    return "cuda:0" if device == "cuda" else device


class UltralyticsDetector:
    """Runs a YOLO model on a batch of BGR images (both stereo views in one forward pass).

    Args:
        weights: an ultralytics weights file (.pt) or model YAML (untrained network).
        device: auto (cuda:0 when torch sees a GPU, else cpu) | cpu | cuda | cuda:N.
        imgsz: inference size (long side, pixels, multiple of 32); 0: the size the weights were
            trained at (640 for a YAML). Images are letterboxed to the smallest stride-multiple
            rectangle (ultralytics' rect inference).
        conf, iou, max_det, agnostic: see :class:`YoloSettings`; classes: ids and/or names of the
            classes to report (:func:`resolve_classes`), None or empty: all.
        half: float16 inference. Only on CUDA: with device 'auto' on a CPU-only machine it is off
            (``self.half`` says which), with device 'cpu' it is an error.

    Raises:
        FileNotFoundError: no such weights file. ValueError: a bad argument, named.
    """

    def __init__(self, weights: str, device: str = "auto", imgsz: int = 0, conf: float = 0.25,
                 iou: float = 0.7, max_det: int = 300, classes: Sequence[int | str] | None = None,
                 half: bool = False, agnostic: bool = False) -> None:
        if not weights:
            raise ValueError("weights must name an ultralytics weights (.pt) or model (.yaml) file")
        if not weights.endswith((".pt", ".yaml", ".yml")):
            raise ValueError(f"weights must be an ultralytics .pt (or model .yaml) file for the ultralytics "
                             f"backend, got {weights!r} (an .onnx file runs on the onnxruntime backend)")
        if not weights.endswith((".yaml", ".yml")) and not Path(weights).is_file():
            raise FileNotFoundError(f"weights file not found: {weights} (nothing is downloaded at run time)")
        if imgsz < 0 or imgsz % 32:
            raise ValueError(f"imgsz must be 0 (the weights' own) or a positive multiple of 32, got {imgsz}")
        settings = YoloSettings(conf, iou, max_det, agnostic=agnostic)  # validated before the model loads
        self.device = resolve_device(device)
        if half and self.device == "cpu" and device != "auto":
            raise ValueError("half=True needs a CUDA device (float16 inference); got device 'cpu'")
        self.half = bool(half) and self.device.startswith("cuda")
        os.environ.setdefault("YOLO_OFFLINE", "True")  # no online checks from ultralytics
        os.environ.setdefault("YOLO_AUTOINSTALL", "False")  # no pip installs from ultralytics
        from ultralytics import YOLO

        self.model = YOLO(weights, task="detect")
        self.model.to(self.device)  # load onto the device now: a bad device fails at start-up
        self.names: dict[int, str] = dict(self.model.names)
        self.settings = replace(settings, classes=resolve_classes(classes, self.names))
        self.imgsz = imgsz or int(_trained_imgsz(self.model.overrides.get("imgsz")))
        self._kwargs = {"imgsz": self.imgsz, "conf": self.settings.conf, "iou": self.settings.iou,
                        "max_det": self.settings.max_det, "agnostic_nms": self.settings.agnostic, "classes": list(self.settings.classes or ()) or None,
                        "device": self.device, "quantize": 16 if self.half else None, "verbose": False}

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        """One list of detections per (H, W, 3) uint8 BGR image, in one batched call.

        Raises:
            ValueError: an image that is not (h, w, 3) uint8."""
        for i, image in enumerate(images):
            check_bgr_image(i, image)
        if not len(images):
            return []
        out = []
        for result in self.model.predict(list(images), **self._kwargs):
            boxes = result.boxes
            out.append(to_detections(boxes.xyxy.float().cpu().numpy(), boxes.conf.float().cpu().numpy(),
                                     boxes.cls.cpu().numpy(), self.names))
        return out


def _trained_imgsz(value) -> int:
    """The long side of an ultralytics ``imgsz`` override (an int or [h, w]); 640 when absent."""
    if isinstance(value, (list, tuple)) and value:
        return int(max(value))
    return int(value) if value else 640
