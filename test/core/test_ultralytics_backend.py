"""The YOLO detector backend (ultralytics, optional): batching, validation, device selection.

An untrained network built from ``yolov8n.yaml`` exercises the code path (nothing is
downloaded); the CUDA test runs where torch sees a GPU and checks it against the CPU."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ultralytics", reason="ultralytics (AGPL-3.0) is an optional backend; not installed")
import torch  # noqa: E402  (after the importorskip)

from object_permanence.core.detection.ultralytics_backend import UltralyticsDetector, resolve_device  # noqa: E402


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


def test_bad_arguments_are_named(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        UltralyticsDetector(str(tmp_path / "missing.pt"))
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
def test_cuda_path_matches_the_cpu() -> None:
    images = _images()
    cpu = _detector("cpu").detect(images)
    gpu_detector = _detector("cuda")
    assert next(gpu_detector.model.model.parameters()).device.type == "cuda"
    gpu = gpu_detector.detect(images)
    for c, g in zip(cpu, gpu):
        best_c, best_g = max(c, key=lambda d: d.score), max(g, key=lambda d: d.score)
        np.testing.assert_allclose(best_g.box, best_c.box, atol=1.0)
        assert abs(best_g.score - best_c.score) < 1e-2
