"""YOLO detection through ultralytics (AGPL-3.0: this module is the only one that imports it).

Any ultralytics weights file works (``yolo11n.pt``, a project-trained ``.pt``); a model YAML
(``yolov8n.yaml``) builds an untrained network, useful only to exercise the code path. Nothing
is downloaded: a missing weights file is an error.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from object_permanence.core.types import Detection

DEVICES = ("auto", "cpu", "cuda")


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
    """Runs a YOLO model on a batch of BGR images (both stereo views in one forward pass)."""

    def __init__(self, weights: str, device: str = "auto", imgsz: int = 640, conf: float = 0.25,
                 iou: float = 0.7, max_det: int = 300) -> None:
        if not weights:
            raise ValueError("weights must name an ultralytics weights (.pt) or model (.yaml) file")
        if not weights.endswith(".yaml") and not Path(weights).is_file():
            raise FileNotFoundError(f"weights file not found: {weights} (nothing is downloaded at run time)")
        if imgsz < 32 or imgsz % 32:
            raise ValueError(f"imgsz must be a positive multiple of 32, got {imgsz}")
        for name, value in (("conf", conf), ("iou", iou)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if max_det < 1:
            raise ValueError(f"max_det must be >= 1, got {max_det}")
        from ultralytics import YOLO

        self.device = resolve_device(device)
        self.model = YOLO(weights, task="detect")
        self.model.to(self.device)  # load onto the device now: a bad device fails at start-up
        self.names: dict[int, str] = dict(self.model.names)
        self._kwargs = {"imgsz": imgsz, "conf": conf, "iou": iou, "max_det": max_det, "device": self.device,
                        "verbose": False}

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        """One list of detections per (H, W, 3) uint8 BGR image, in one batched call."""
        results = self.model.predict(list(images), **self._kwargs)
        out = []
        for result in results:
            boxes = result.boxes
            xywh = boxes.xywh.cpu().numpy().astype(np.float64)
            scores = boxes.conf.cpu().numpy()
            classes = boxes.cls.cpu().numpy().astype(int)
            out.append([Detection(box=xywh[i], score=float(scores[i]), class_id=int(classes[i]),
                                  class_name=self.names.get(int(classes[i]), str(classes[i])))
                        for i in range(len(scores))])
        return out
