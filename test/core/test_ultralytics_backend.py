"""The YOLO detector backend (ultralytics, optional): batching, validation, device selection.

An untrained network built from ``yolov8n.yaml`` exercises the code path (nothing is
downloaded), a small YOLO with image-dependent scores (tiny_yolo.py) the class filter; the CUDA
tests (float32 and float16) run where torch sees a GPU and check it against the CPU."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ultralytics", reason="ultralytics (AGPL-3.0) is an optional backend; not installed")
import torch  # noqa: E402  (after the importorskip)

from object_permanence.core.detection.ultralytics_backend import UltralyticsDetector, resolve_device  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tiny_yolo import make_tiny_yolo  # noqa: E402


def _images(n: int = 2) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (120, 160, 3), dtype=np.uint8) for _ in range(n)]


def _detector(device: str, **kwargs) -> UltralyticsDetector:
    torch.manual_seed(0)  # the untrained network's weights
    return UltralyticsDetector("yolov8n.yaml", device=device, imgsz=64, conf=0.0, **kwargs)


def test_one_batched_call_gives_one_list_per_image() -> None:
    detector = _detector("cpu", max_det=7)
    left, right = detector.detect(_images())
    for detections in (left, right):
        assert 0 < len(detections) <= 7
        for d in detections:
            assert d.box.shape == (4,) and np.all(np.isfinite(d.box)) and d.box[2] > 0 and d.box[3] > 0
            assert 0.0 <= d.score <= 1.0 and isinstance(d.class_name, str) and d.embedding is None
            assert d.box.dtype == np.float64
    assert detector.detect([]) == []
    with pytest.raises(ValueError, match=r"images\[0\]"):
        detector.detect([np.zeros((10, 10), np.uint8)])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    """A small YOLO whose scores and boxes depend on the image (see tiny_yolo.py)."""
    return str(make_tiny_yolo(tmp_path_factory.mktemp("tiny_yolo")))


def test_class_filter_keeps_only_the_named_classes(tiny) -> None:
    everything = UltralyticsDetector(tiny, device="cpu", imgsz=64, conf=0.3).detect(_images())
    detector = UltralyticsDetector(tiny, device="cpu", imgsz=64, conf=0.3, classes=["ball", 2])
    assert detector.settings.classes == (1, 2)
    filtered = detector.detect(_images())
    expected = [[d for d in per_image if d.class_id in (1, 2)] for per_image in everything]
    assert any(expected) and any(d.class_id == 0 for per_image in everything for d in per_image)
    for got, want in zip(filtered, expected):
        np.testing.assert_allclose([d.box for d in got], [d.box for d in want], atol=1e-4)


def test_size_and_precision_defaults() -> None:
    detector = UltralyticsDetector("yolov8n.yaml", device="auto")
    assert detector.imgsz == 640, "imgsz 0: the weights' own size, 640 for a model YAML"
    assert detector.half is False
    if not torch.cuda.is_available():
        assert UltralyticsDetector("yolov8n.yaml", device="auto", half=True).half is False, "no GPU: float32"


def test_bad_arguments_are_named(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        UltralyticsDetector(str(tmp_path / "missing.pt"))
    with pytest.raises(ValueError, match="onnxruntime backend"):
        UltralyticsDetector(str(tmp_path / "model.onnx"))
    with pytest.raises(ValueError, match="half=True needs a CUDA device"):
        UltralyticsDetector("yolov8n.yaml", device="cpu", half=True)
    with pytest.raises(ValueError, match="classes"):
        UltralyticsDetector("yolov8n.yaml", device="cpu", classes=["person"])
    with pytest.raises(ValueError, match="max_det"):
        UltralyticsDetector("yolov8n.yaml", max_det=0)
    with pytest.raises(ValueError, match="imgsz"):
        UltralyticsDetector("yolov8n.yaml", imgsz=50)
    with pytest.raises(ValueError, match="conf"):
        UltralyticsDetector("yolov8n.yaml", conf=1.5)
    with pytest.raises(ValueError, match="device"):
        resolve_device("tpu")


def test_auto_device_follows_torch() -> None:
    assert resolve_device("auto") == ("cuda:0" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            resolve_device("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
@pytest.mark.parametrize("half", [False, True])
def test_cuda_path_matches_the_cpu(tiny, half: bool) -> None:
    images = _images()
    cpu = UltralyticsDetector(tiny, device="cpu", imgsz=64, conf=0.3).detect(images)
    gpu_detector = UltralyticsDetector(tiny, device="cuda", imgsz=64, conf=0.3, half=half)
    assert next(gpu_detector.model.model.parameters()).device.type == "cuda" and gpu_detector.half is half
    gpu = gpu_detector.detect(images)
    for c, g in zip(cpu, gpu):
        best_c, best_g = max(c, key=lambda d: d.score), max(g, key=lambda d: d.score)
        np.testing.assert_allclose(best_g.box, best_c.box, atol=1.0)
        assert abs(best_g.score - best_c.score) < (2e-2 if half else 1e-2)
