"""The detector node's YOLO backends over DDS: onnxruntime on a small model exported in a temporary
folder publishes detections (with embeddings) for both views of a stereo pair; the class filter;
start-up validation of backend, weights and classes."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy is not importable (source scripts/ros_env.sh)")
pytest.importorskip("object_permanence.msg", reason="object_permanence interfaces are not built (colcon build)")

from builtin_interfaces.msg import Time  # noqa: E402
from geometry_msgs.msg import Point  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from object_permanence.msg import DetectionArray, SimGroundTruth, SimObject  # noqa: E402
from object_permanence.nodes.detector import DetectorNode  # noqa: E402
from object_permanence.ros.conversions import numpy_to_image, sec_to_stamp  # noqa: E402
from object_permanence.ros.params import ParameterError  # noqa: E402
from object_permanence.ros.qos import RELIABLE_QOS, SENSOR_QOS  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
from tiny_yolo import NAMES, export_tiny, make_tiny_yolo  # noqa: E402

pytestmark = pytest.mark.ros

CAMERAS = ("left", "right")
WIDTH, HEIGHT = 640, 480  # the sim's size: the letterbox is not square


def stamp(k: int) -> Time:
    return sec_to_stamp(2000.0 + k / 30.0)


def by_stamp(messages: list, t: Time):
    return next((m for m in messages if m.header.stamp == t), None)


def scene(shift: int) -> np.ndarray:
    """(480, 640, 3) bgr8: a textured background with a few coloured blocks, shifted ``shift`` px left."""
    rng = np.random.default_rng(5)
    image = rng.integers(40, 200, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    for x, y, colour in ((200, 150, (30, 30, 220)), (400, 260, (220, 120, 30)), (90, 330, (40, 200, 40))):
        image[y:y + 90, x - shift:x - shift + 70] = colour
    return image


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory) -> dict[str, Path]:
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    pytest.importorskip("ultralytics", reason="the export needs ultralytics (AGPL-3.0, optional)")
    folder = tmp_path_factory.mktemp("tiny_yolo_node")
    weights = make_tiny_yolo(folder)
    return {"pt": weights, "onnx": export_tiny(weights, folder / "tiny.onnx", (64, 64), batch=2)}


class Probe:
    """Publishes image pairs (and ground truth for the simulated backend), collects detections."""

    def __init__(self, ros, params: dict) -> None:
        self.ros = ros
        self.out = {c: ros.collect(DetectionArray, f"stereo/{c}/detections", RELIABLE_QOS) for c in CAMERAS}
        self._images = {c: ros.publisher(Image, f"stereo/{c}/image_raw", SENSOR_QOS) for c in CAMERAS}
        self._truth = ros.publisher(SimGroundTruth, "sim/ground_truth", RELIABLE_QOS) \
            if params.get("backend") == "simulated" else None
        ros.start(DetectorNode, params)
        ros.wait_connected()
        self.frame = 0

    def send(self) -> None:
        self.frame += 1
        for cam, shift in zip(CAMERAS, (0, 24)):
            frame_id = f"{cam}_camera_optical_frame"
            self._images[cam].publish(numpy_to_image(scene(shift), Header(stamp=stamp(self.frame),
                                                                          frame_id=frame_id), "bgr8"))
        if self._truth is not None:
            objects = [SimObject(id=1, kind=SimObject.KIND_OBJECT, class_id=0, cx=235.0 - s, cy=195.0, w=70.0, h=90.0,
                                 visibility=1.0, position=Point(x=0.0, y=0.0, z=3.0)) for s in (0, 24)]
            self._truth.publish(SimGroundTruth(header=Header(stamp=stamp(self.frame)), frame_index=self.frame,
                                               left=objects[:1], right=objects[1:]))

    def published(self) -> bool:
        return all(by_stamp(self.out[c], stamp(self.frame)) is not None for c in CAMERAS)

    def send_until_published(self) -> Time:
        self.ros.retry_until(lambda _: self.send(), self.published, "detections of an image pair", timeout_s=30.0)
        return stamp(self.frame)


def test_onnxruntime_backend_publishes_detections_for_both_views(ros, tiny_onnx) -> None:
    probe = Probe(ros, {"backend": "onnxruntime", "weights": str(tiny_onnx["onnx"]), "device": "cpu",
                        "conf_threshold": 0.5, "max_detections": 6, "embedding_bins": [8, 4, 4]})
    t = probe.send_until_published()
    assert any("backend 'onnxruntime' (cpu, imgsz 64, 3 classes" in m for m in ros.log_lines("detector"))
    for cam in CAMERAS:
        out = by_stamp(probe.out[cam], t)
        assert (out.image_width, out.image_height) == (WIDTH, HEIGHT)
        assert 0 < len(out.detections) <= 6
        for det in out.detections:
            assert det.class_name == NAMES[det.class_id] and 0.5 < det.score <= 1.0
            assert 0 <= det.cx - det.w / 2 and det.cx + det.w / 2 <= WIDTH + 1e-6, "mapped back into the image"
            assert 0 <= det.cy - det.h / 2 and det.cy + det.h / 2 <= HEIGHT + 1e-6
            assert len(det.embedding) == 8 * 4 * 4
            assert np.linalg.norm(det.embedding) == pytest.approx(1.0, abs=1e-5)


def test_class_filter_of_the_onnxruntime_backend(ros, tiny_onnx) -> None:
    probe = Probe(ros, {"backend": "onnxruntime", "weights": str(tiny_onnx["onnx"]), "device": "cpu",
                        "conf_threshold": 0.3, "classes": "ball, bottle"})
    t = probe.send_until_published()
    classes = {d.class_id for c in CAMERAS for d in by_stamp(probe.out[c], t).detections}
    assert classes and classes <= {1, 2}


def test_class_filter_of_the_simulated_backend(ros) -> None:
    """The only object is a box (class 0): with classes 'ball' nothing is reported, the arrays still are."""
    probe = Probe(ros, {"backend": "simulated", "sim.difficulty": "easy", "sim.miss_prob_visible": 0.0,
                        "sim.miss_prob_half_hidden": 0.0, "classes": "ball"})
    t = probe.send_until_published()
    assert all(len(by_stamp(probe.out[c], t).detections) == 0 for c in CAMERAS)


@pytest.mark.parametrize("params, needle", [
    pytest.param({"backend": "tensorrt"}, "'backend' is 'tensorrt'; allowed values: 'simulated', 'ultralytics', "
                 "'onnxruntime'", id="backend"),
    pytest.param({"backend": "onnxruntime", "weights": "model.pt"}, "parameter 'weights' is 'model.pt'; backend "
                 "'onnxruntime' takes a .onnx file", id="onnx-weights-suffix"),
    pytest.param({"backend": "ultralytics", "weights": "model.onnx"}, "parameter 'weights' is 'model.onnx'; backend "
                 "'ultralytics' takes a .pt or .yaml file", id="ultralytics-weights-suffix"),
    pytest.param({"backend": "onnxruntime", "weights": "/nonexistent/model.onnx"},
                 "parameter 'weights'.*weights file not found", id="onnx-weights-missing"),
    pytest.param({"backend": "simulated", "classes": "box,person"},
                 r"parameter 'classes'.*\['person'\].*0: box, 1: ball, 2: bottle", id="classes"),
    pytest.param({"imgsz": 100}, "parameter 'imgsz' is 100; allowed: 0 or a multiple of 32", id="imgsz"),
])
def test_bad_values_fail_at_start_up_naming_the_parameter(ros, params: dict, needle: str) -> None:
    with pytest.raises(ParameterError, match=needle):
        ros.start(DetectorNode, params)


def test_onnxruntime_start_up_errors_name_the_parameter(ros, tiny_onnx) -> None:
    base = {"backend": "onnxruntime", "weights": str(tiny_onnx["onnx"])}
    with pytest.raises(ParameterError, match=r"parameter 'classes' \(backend 'onnxruntime'\).*'person'"):
        ros.start(DetectorNode, {**base, "classes": "person"})
    with pytest.raises(ParameterError, match=r"parameter 'imgsz' \(backend 'onnxruntime'\): imgsz 320 does not match"):
        ros.start(DetectorNode, {**base, "imgsz": 320})


def test_learned_embedding_of_the_shipped_reid_network(ros, tiny_onnx) -> None:
    """embedding:=learned puts the re-ID network's unit vectors (not histograms) on every detection."""
    pytest.importorskip("torch", reason="the learned embedder needs torch")
    probe = Probe(ros, {"backend": "onnxruntime", "weights": str(tiny_onnx["onnx"]), "device": "cpu",
                        "conf_threshold": 0.5, "max_detections": 6, "embedding": "learned"})
    t = probe.send_until_published()
    detections = [d for c in CAMERAS for d in by_stamp(probe.out[c], t).detections]
    assert detections
    for det in detections:
        assert len(det.embedding) == 128  # the shipped ReidNet's dimension, not the 128-bin histogram's layout
        assert np.linalg.norm(det.embedding) == pytest.approx(1.0, abs=1e-4)
        assert np.min(det.embedding) < 0.0, "a CNN embedding has negative entries, a histogram never"


def test_learned_embedding_with_missing_weights_fails_at_start_up(ros) -> None:
    with pytest.raises(ParameterError, match="parameter 'embedding_weights'.*nonexistent"):
        ros.start(DetectorNode, {"embedding": "learned", "embedding_weights": "/nonexistent/reid.pt"})


def test_learned_embedding_without_torch_takes_the_export_and_names_a_checkpoint(ros, monkeypatch) -> None:
    """Where torch is absent the shipped re-ID export runs on onnxruntime; a .pt checkpoint cannot,
    and the node says which parameter asks for it."""
    from object_permanence.ros.shipped import shipped_model

    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError, as where it is absent
    node = ros.start(DetectorNode, {"embedding": "learned"})
    assert node._embedder.weights.endswith("reid_net.onnx") and node._embedder.dim == 128
    with pytest.raises(ParameterError, match="parameter 'embedding' is 'learned', which needs torch"):
        ros.start(DetectorNode, {"embedding": "learned", "embedding_weights": str(shipped_model("reid/reid_net.pt"))})
