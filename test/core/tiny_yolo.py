"""A small untrained YOLO for the detector-backend tests, built and exported in a temporary folder
(nothing is downloaded, nothing outside the folder is written).

A freshly initialised YOLOv8n hardly depends on its input (PyTorch's default init shrinks the
activations layer by layer), scores every anchor alike and draws nearly every box over the whole
image. Here the convolutions get He initialisation and the head is redrawn, so that scores spread
over about 0.3-0.7, boxes vary in size, and both depend on the image: two backends must then agree
on which boxes win and where they lie.
"""
from __future__ import annotations

import os
from pathlib import Path

NAMES = {0: "box", 1: "ball", 2: "bottle"}


def make_tiny_yolo(folder: Path, seed: int = 0) -> Path:
    """Write ``folder/tiny_yolov8n.pt``: YOLOv8n with the sim's three classes and a random class branch."""
    os.environ.setdefault("YOLO_OFFLINE", "True")
    os.environ.setdefault("YOLO_AUTOINSTALL", "False")
    import torch
    from ultralytics import YOLO
    from ultralytics.nn.tasks import DetectionModel

    torch.manual_seed(seed)
    model = DetectionModel("yolov8n.yaml", nc=len(NAMES), verbose=False)
    model.names = dict(NAMES)
    for module in model.modules():  # PyTorch's default init shrinks activations layer by layer
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    head = model.model[-1]
    for branch in head.cv2:  # box sides as distributions over 16 bins: favour the nearer ones
        branch[-1].bias.data = (-0.6 * torch.arange(16.0)).repeat(4) + 0.3 * torch.randn(64)
    for branch in head.cv3:  # class logits centred on 0 and spread wide
        branch[-1].bias.data.zero_()
        branch[-1].weight.data *= 20.0
    yolo = YOLO("yolov8n.yaml", task="detect")
    yolo.model = model
    path = folder / "tiny_yolov8n.pt"
    yolo.save(str(path))
    return path


def export_tiny(weights: Path, out: Path, input_hw: tuple[int, int], batch: int = 2) -> Path:
    """Export ``weights`` with the project's exporter (tools/export_detector)."""
    from object_permanence.tools.export_detector import export_onnx

    return export_onnx(weights, out, input_hw, batch)
