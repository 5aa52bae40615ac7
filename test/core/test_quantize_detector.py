"""int8 quantization of the detector's ONNX export (tools/quantize_detector): which nodes stay float,
that the quantized model runs in the detector backend and keeps the float model's boxes."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from test_calibration_images import write_images
from tiny_yolo import NAMES, export_tiny, make_tiny_yolo

onnx = pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory) -> Path:
    pytest.importorskip("ultralytics", reason="the export needs ultralytics (AGPL-3.0, optional)")
    folder = tmp_path_factory.mktemp("tiny_quant")
    return export_tiny(make_tiny_yolo(folder), folder / "tiny.onnx", (64, 64), batch=2)


def test_the_box_decoding_stays_float_and_the_convolutions_do_not(tiny_onnx) -> None:
    from object_permanence.tools.quantize_detector import float_head_nodes

    model = onnx.load(str(tiny_onnx))
    keep = set(float_head_nodes(model))
    writer = next(n for n in model.graph.node if model.graph.output[0].name in n.output)
    head = writer.name.split("/")[1]
    assert writer.name in keep  # the concatenation of boxes (pixels) and class probabilities (0-1)
    assert any("/dfl/" in name for name in keep)
    assert all(name.startswith(f"/{head}/") for name in keep)
    convs = [n.name for n in model.graph.node if n.op_type == "Conv"]
    assert not keep & {c for c in convs if "/dfl/" not in c}  # every network convolution is quantized


def test_a_graph_that_is_no_ultralytics_head_is_named() -> None:
    from onnx import TensorProto, helper

    from object_permanence.tools.quantize_detector import float_head_nodes

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="relu")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    with pytest.raises(ValueError, match="not written by an Ultralytics head"):
        float_head_nodes(helper.make_model(graph))


def test_calibration_refuses_held_out_seeds() -> None:
    from object_permanence.tools.quantize_detector import calibration_pairs

    with pytest.raises(ValueError, match="tuning seeds"):
        calibration_pairs(seeds=(40, 1000))
    with pytest.raises(ValueError, match="pairs_per_run"):
        calibration_pairs(pairs_per_run=0)


def test_quantized_model_runs_in_the_backend_and_keeps_the_boxes(tiny_onnx, tmp_path) -> None:
    """The untrained tiny network quantized on two rendered tuning pairs: integer convolutions, the
    same description for the backend, and raw head outputs near the float model's on a held-out pair."""
    from object_permanence.core.detection.onnx_backend import OnnxDetector
    from object_permanence.tools.export_detector import sim_pairs
    from object_permanence.tools.quantize_detector import calibration_pairs, quantize_detector

    out = quantize_detector(tiny_onnx, tmp_path / "tiny_int8.onnx",
                            calibration_pairs(("cluttered",), (40,), pairs_per_run=2))
    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    float_model, int8_model = OnnxDetector(str(tiny_onnx), device="cpu"), OnnxDetector(str(out), device="cpu")
    assert int8_model.names == NAMES and int8_model.info.input_hw == float_model.info.input_hw
    pair = list(sim_pairs("cluttered", 1000, 1)[0])
    blob = float_model.preprocess(pair)[0].copy()
    reference, quantized = float_model.forward(blob), int8_model.forward(blob)
    boxes = np.abs(reference[:, :4] - quantized[:, :4])
    probs = np.abs(reference[:, 4:] - quantized[:, 4:])
    assert np.median(boxes) < 0.1 and np.median(probs) < 0.01, (np.median(boxes), np.median(probs))
    assert quantized[:, 4:].max() > 0.1  # class probabilities were not rounded to zero


def test_cli_writes_the_check_and_refuses_held_out_calibration_seeds(tiny_onnx, tmp_path) -> None:
    from object_permanence.tools.quantize_detector import main

    out, report = tmp_path / "cli_int8.onnx", tmp_path / "check.json"
    args = ["--onnx", str(tiny_onnx), "--out", str(out), "--calib-scenarios", "cluttered", "--calib-seeds", "40",
            "--calib-pairs", "1", "--frames", "1", "--conf", "0.5", "--report", str(report)]
    assert main([*args, "--min-matched", "0"]) == 0
    got = json.loads(report.read_text())
    assert out.is_file() and got["calib_pairs"] == 1 and "seeds 40" in got["calibrated_on"]
    assert got["check"]["seed"] == 1000 and got["check"]["scenario"] == "cluttered"
    assert got["check"]["matched"] + got["check"]["only_first"] > 0
    with pytest.raises(SystemExit):
        main([*args, "--calib-seeds", "1000"])
    with pytest.raises(SystemExit):  # a topic belongs to a rosbag2 --calib-images
        main([*args, "--calib-topic", "/stereo/left/image_raw"])


def test_cli_exit_status_follows_the_share_of_boxes_kept(tiny_onnx, tmp_path, monkeypatch) -> None:
    """Exit 1 when the quantized model keeps fewer than --min-matched of the float model's boxes."""
    import object_permanence.tools.quantize_detector as tool
    from object_permanence.core.detection.yolo_output import Agreement

    args = ["--onnx", str(tiny_onnx), "--out", str(tmp_path / "q.onnx"), "--calib-scenarios", "clean",
            "--calib-seeds", "40", "--calib-pairs", "1", "--frames", "1"]
    monkeypatch.setattr(tool, "check_quantized", lambda *a, **k: Agreement(matched=8, only_first=2))
    assert tool.main(args) == 1  # 80% < the default 90%
    assert tool.main([*args, "--min-matched", "0.8"]) == 0
    monkeypatch.setattr(tool, "check_quantized", lambda *a, **k: Agreement(matched=10))
    assert tool.main(args) == 0


def test_cli_calibrates_on_a_folder_of_images(tiny_onnx, tmp_path) -> None:
    from object_permanence.tools.quantize_detector import main

    write_images(tmp_path / "frames", 4)
    out, report = tmp_path / "from_images.onnx", tmp_path / "check.json"
    assert main(["--onnx", str(tiny_onnx), "--out", str(out), "--calib-images", str(tmp_path / "frames"),
                 "--calib-pairs", "1", "--frames", "1", "--min-matched", "0", "--report", str(report)]) == 0
    got = json.loads(report.read_text())
    assert out.is_file() and got["calibrated_on"] == f"4 images of {tmp_path / 'frames'}"
    assert got["check"]["images"] == str(tmp_path / "frames") and got["check"]["frames"] == 1  # its images, not the sim's


def test_a_dynamic_batch_and_size_export_quantizes_too(tmp_path, monkeypatch) -> None:
    """An export with dynamic batch and size (``--batch 0``; Ultralytics' ``dynamic=True``), whose
    symbolic shapes onnxruntime's pre-processing cannot resolve, runs three images at once after."""
    pytest.importorskip("ultralytics", reason="the export needs ultralytics (AGPL-3.0, optional)")
    from object_permanence.core.detection.onnx_backend import OnnxDetector
    from object_permanence.tools.export_detector import sim_pairs
    from object_permanence.tools.quantize_detector import calibration_pairs, quantize_detector

    import onnxruntime.quantization.shape_inference as shape_inference

    calls = []
    real = shape_inference.quant_pre_process
    monkeypatch.setattr(shape_inference, "quant_pre_process",
                        lambda *a, **k: (calls.append(k.get("skip_symbolic_shape", False)), real(*a, **k))[1])
    dynamic = export_tiny(make_tiny_yolo(tmp_path), tmp_path / "dynamic.onnx", (64, 64), batch=0)
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    out = quantize_detector(dynamic, tmp_path / "dynamic_int8.onnx",
                            calibration_pairs(("clean",), (40,), pairs_per_run=1), imgsz=64)
    assert calls == [True]  # ONNX's shape inference: onnxruntime's symbolic one does not resolve it
    assert not list((tmp_path / "cwd").iterdir())  # and nothing left in the working directory
    detector = OnnxDetector(str(out), device="cpu", imgsz=64, conf=0.5)
    assert detector.info.batch is None and detector.info.input_hw is None
    left, right = sim_pairs("clean", 1000, 1)[0]
    reference = OnnxDetector(str(dynamic), device="cpu", imgsz=64, conf=0.5)
    found, expected = detector.detect([left, right, left]), reference.detect([left, right, left])
    assert len(found) == 3 and sum(map(len, expected)) > 0
    assert abs(sum(map(len, found)) - sum(map(len, expected))) <= 0.2 * sum(map(len, expected))
