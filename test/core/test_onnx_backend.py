"""The ONNX Runtime detector backend: decoding of the YOLO head (against ultralytics' own NMS),
the shared settings / Detection helpers, and a small YOLO exported by tools/export_detector run
through both backends on non-square images (boxes within 1 px, same classes)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")

from object_permanence.core.detection.onnx_backend import (  # noqa: E402
    OnnxDetector,
    attached_device,
    decode_end_to_end,
    decode_predictions,
    parse_names,
    resolve_provider,
)
from object_permanence.core.detection.yolo_output import (  # noqa: E402
    Agreement,
    YoloSettings,
    compare_detections,
    resolve_classes,
    to_detections,
)
from object_permanence.core.types import Detection  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tiny_yolo import NAMES, export_tiny, make_tiny_yolo  # noqa: E402


def _head(rows: list[tuple[float, float, float, float, list[float]]]) -> np.ndarray:
    """(1, 4 + nc, A) raw output from rows (cx, cy, w, h, class probabilities)."""
    return np.array([[*box, *probs] for *box, probs in rows], dtype=np.float32).T[None]


def _random_head(batch: int = 2, anchors: int = 600, nc: int = 3, seed: int = 0) -> np.ndarray:
    """(batch, 4 + nc, anchors): boxes jittered around 25 objects (so NMS has work), random probabilities."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(20, 300, (25, 2))
    sizes = rng.uniform(10, 80, (25, 2))
    pick = rng.integers(0, 25, (batch, anchors))
    xy = centres[pick] + rng.normal(0, 4, (batch, anchors, 2))
    wh = sizes[pick] * rng.uniform(0.8, 1.2, (batch, anchors, 2))
    probs = rng.uniform(0, 1, (batch, anchors, nc)) ** 3
    return np.concatenate([xy, wh, probs], axis=2).transpose(0, 2, 1).astype(np.float32)


# --- decoding -------------------------------------------------------------------------------------

def test_nms_keeps_the_best_of_overlapping_boxes_per_class() -> None:
    out = _head([
        (50, 50, 20, 20, [0.9, 0.1]),  # kept
        (51, 50, 20, 20, [0.8, 0.1]),  # same class, IoU 0.9 with the first: suppressed
        (51, 51, 20, 20, [0.1, 0.7]),  # other class: kept
        (150, 50, 20, 20, [0.25, 0.1]),  # at the threshold: a box needs score > conf
        (150, 150, 10, 30, [0.3, 0.6]),  # kept with its best class
    ])
    ((xyxy, scores, classes),) = decode_predictions(out, YoloSettings(conf=0.25, iou=0.7))
    np.testing.assert_allclose(scores, [0.9, 0.7, 0.6])
    np.testing.assert_array_equal(classes, [0, 1, 1])
    np.testing.assert_allclose(xyxy, [[40, 40, 60, 60], [41, 41, 61, 61], [145, 135, 155, 165]])
    ((_, scores, classes),) = decode_predictions(out, YoloSettings(conf=0.25, iou=0.7, classes=(1,)))
    np.testing.assert_array_equal(classes, [1, 1])
    ((_, scores, _),) = decode_predictions(out, YoloSettings(conf=0.25, iou=0.7, max_det=2))
    np.testing.assert_allclose(scores, [0.9, 0.7])
    ((xyxy, scores, classes),) = decode_predictions(out, YoloSettings(conf=0.95))
    assert xyxy.shape == (0, 4) and scores.shape == (0,) and classes.shape == (0,)


def test_agnostic_nms_keeps_one_box_per_object_whatever_its_class() -> None:
    out = _head([
        (50, 50, 20, 20, [0.9, 0.1]),  # kept
        (51, 51, 20, 20, [0.1, 0.7]),  # the same object as the other class: suppressed
        (80, 50, 20, 20, [0.1, 0.6]),  # IoU 0.2 with the first: another object, kept
    ])
    ((_, scores, classes),) = decode_predictions(out, YoloSettings(conf=0.25, iou=0.7))
    np.testing.assert_array_equal(classes, [0, 1, 1])
    ((_, scores, classes),) = decode_predictions(out, YoloSettings(conf=0.25, iou=0.7, agnostic=True))
    np.testing.assert_allclose(scores, [0.9, 0.6])
    np.testing.assert_array_equal(classes, [0, 1])
    with pytest.raises(ValueError, match="agnostic"):
        YoloSettings(agnostic="yes")


@pytest.mark.parametrize("agnostic", [False, True])
@pytest.mark.parametrize("classes", [None, (0, 2)])
def test_decoding_matches_ultralytics_non_max_suppression(classes, agnostic) -> None:
    torch = pytest.importorskip("torch")
    nms = pytest.importorskip("ultralytics.utils.nms")
    raw = _random_head()
    settings = YoloSettings(conf=0.3, iou=0.5, max_det=40, classes=classes, agnostic=agnostic)
    expected = nms.non_max_suppression(torch.from_numpy(raw), conf_thres=0.3, iou_thres=0.5,
                                       classes=list(classes) if classes else None, max_det=40, agnostic=agnostic)
    for (xyxy, scores, cls), ref in zip(decode_predictions(raw, settings), expected):
        ref = ref.numpy()
        assert len(ref) > 10 and len(xyxy) == len(ref)
        np.testing.assert_allclose(xyxy, ref[:, :4], atol=1e-3)
        np.testing.assert_allclose(scores, ref[:, 4], atol=1e-6)
        np.testing.assert_array_equal(cls, ref[:, 5].astype(int))


def test_end_to_end_output_is_only_thresholded() -> None:
    rows = np.array([[[0, 0, 10, 10, 0.9, 2], [5, 5, 15, 15, 0.8, 2], [0, 0, 4, 4, 0.1, 0]]], np.float32)
    ((xyxy, scores, classes),) = decode_end_to_end(rows, YoloSettings(conf=0.25))
    np.testing.assert_allclose(scores, [0.9, 0.8])
    np.testing.assert_array_equal(classes, [2, 2])
    ((xyxy, _, _),) = decode_end_to_end(rows, YoloSettings(conf=0.0, classes=(0,)))
    np.testing.assert_allclose(xyxy, [[0, 0, 4, 4]])


def test_bad_head_shapes_are_rejected() -> None:
    with pytest.raises(ValueError, match="4 \\+ nc"):
        decode_predictions(np.zeros((1, 4, 10), np.float32), YoloSettings())
    with pytest.raises(ValueError, match="end-to-end"):
        decode_end_to_end(np.zeros((1, 10, 4), np.float32), YoloSettings())


# --- shared helpers -------------------------------------------------------------------------------

def test_settings_validate_and_classes_resolve_by_id_or_name() -> None:
    for kwargs, name in (({"conf": 1.5}, "conf"), ({"iou": -0.1}, "iou"), ({"max_det": 0}, "max_det"),
                         ({"classes": (-1,)}, "classes")):
        with pytest.raises(ValueError, match=name):
            YoloSettings(**kwargs)
    assert YoloSettings(classes=()).classes is None
    assert resolve_classes(["bottle", "0", 0, "Ball"], NAMES) == (0, 1, 2)
    assert resolve_classes([], NAMES) is None and resolve_classes(None, NAMES) is None
    with pytest.raises(ValueError, match=r"\['cat', '7'\] are not among the model's classes \(0: box, 1: ball"):
        resolve_classes(["cat", "box", 7], NAMES)


def test_to_detections_converts_to_centre_size_and_drops_empty_boxes() -> None:
    dets = to_detections(np.array([[10, 20, 30, 60], [5, 5, 5, 9], [0, 0, np.nan, 1]]), np.array([0.9, 0.8, 0.7]),
                         np.array([2, 0, 1]), NAMES)
    assert len(dets) == 1
    np.testing.assert_allclose(dets[0].box, [20, 40, 20, 40])
    assert dets[0].box.dtype == np.float64 and (dets[0].class_id, dets[0].class_name) == (2, "bottle")
    assert to_detections(np.zeros((1, 4)) + [0, 0, 1, 1], [0.5], [9], NAMES)[0].class_name == "9"


def test_compare_detections_matches_one_to_one() -> None:
    def det(cx: float, cls: int = 0, score: float = 0.5) -> Detection:
        return Detection(box=np.array([cx, 50.0, 20.0, 20.0]), score=score, class_id=cls)

    a = [det(10), det(100), det(200, cls=1)]
    b = [det(10.4, score=0.52), det(200.2, cls=2), det(400)]
    got = compare_detections(a, b)
    assert (got.matched, got.only_first, got.only_second, got.class_mismatches) == (2, 1, 1, 1)
    assert got.max_box_diff_px == pytest.approx(0.4) and got.max_score_diff == pytest.approx(0.02)
    assert not got.agrees() and compare_detections(a[:1], b[:1]).agrees()
    assert (got + Agreement(matched=1, max_box_diff_px=3.0)).max_box_diff_px == 3.0


def test_device_resolution_and_names() -> None:
    assert resolve_provider("auto", ["CPUExecutionProvider"]) == "cpu"
    assert resolve_provider("auto", ["CUDAExecutionProvider", "CPUExecutionProvider"]) == "cuda"
    with pytest.raises(ValueError, match="onnxruntime-gpu"):
        resolve_provider("cuda", ["CPUExecutionProvider"])
    with pytest.raises(ValueError, match="device must be one of"):
        resolve_provider("tpu", ["CPUExecutionProvider"])
    cpu_only = ["CPUExecutionProvider"]  # what a session attaches when CUDA's libraries are missing
    assert attached_device("cuda", "auto", cpu_only) == "cpu"
    assert attached_device("cuda", "cuda", ["CUDAExecutionProvider", *cpu_only]) == "cuda"
    with pytest.raises(ValueError, match="attached only"):
        attached_device("cuda", "cuda", cpu_only)
    assert parse_names("{0: 'box', 1: 'ball'}") == {0: "box", 1: "ball"}
    assert parse_names("not a dict") == {} and parse_names(None) == {}


# --- a small exported model through both backends ---------------------------------------------------

IMAGE_HW = (80, 200)  # non-square: at imgsz 64 the rectangular input is (32, 64)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    pytest.importorskip("ultralytics", reason="the export needs ultralytics (AGPL-3.0, optional)")
    folder = tmp_path_factory.mktemp("tiny_yolo")
    weights = make_tiny_yolo(folder)
    return {"pt": weights,
            "rect": export_tiny(weights, folder / "rect.onnx", (32, 64), batch=2),
            "square": export_tiny(weights, folder / "square.onnx", (64, 64), batch=2)}


def _images(n: int = 2, hw: tuple[int, int] = IMAGE_HW) -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 256, (*hw, 3), dtype=np.uint8) for _ in range(n)]
    for image in images:  # a few solid blocks, so that the network sees structure
        for _ in range(4):
            y, x = rng.integers(0, hw[0] - 20), rng.integers(0, hw[1] - 30)
            image[y:y + 20, x:x + 30] = rng.integers(0, 256, 3)
    return images


def test_exported_model_reads_its_own_description(tiny) -> None:
    detector = OnnxDetector(str(tiny["rect"]), device="cpu")
    assert detector.names == NAMES and detector.device == "cpu"
    assert (detector.info.input_hw, detector.info.batch, detector.info.end_to_end) == ((32, 64), 2, False)
    assert detector.imgsz == 64 and detector.input_hw((480, 640)) == (32, 64)


def test_onnx_and_torch_agree_on_non_square_images(tiny) -> None:
    from object_permanence.core.detection.ultralytics_backend import UltralyticsDetector
    from object_permanence.tools.export_detector import raw_head_difference

    images = _images()
    raw = raw_head_difference(tiny["pt"], tiny["rect"], images)
    assert raw["box_px"] < 1e-2 and raw["class_prob"] < 1e-4
    onnx = OnnxDetector(str(tiny["rect"]), device="cpu", conf=0.5)
    torch_detector = UltralyticsDetector(str(tiny["pt"]), device="cpu", imgsz=64, conf=0.5)
    total = Agreement()
    for a, b in zip(torch_detector.detect(images), onnx.detect(images)):
        assert len(b) > 0
        for d in b:
            x0, y0 = d.box[:2] - d.box[2:] / 2
            x1, y1 = d.box[:2] + d.box[2:] / 2
            assert x0 >= 0 and y0 >= 0 and x1 <= IMAGE_HW[1] and y1 <= IMAGE_HW[0], "mapped back into the image"
        total = total + compare_detections(a, b)
    assert total.matched > 0 and total.agrees(box_tol_px=1.0), total


def test_square_input_maps_back_like_ultralytics_onnx_predict(tiny) -> None:
    """A square model on a non-square image: letterbox, decoding and mapping back against
    ultralytics running the same .onnx file itself."""
    from ultralytics import YOLO

    images = _images()
    ours = OnnxDetector(str(tiny["square"]), device="cpu", conf=0.5).detect(images)
    results = YOLO(str(tiny["square"]), task="detect").predict(images, imgsz=64, conf=0.5, device="cpu",
                                                                 verbose=False)
    for mine, result in zip(ours, results):
        theirs = to_detections(result.boxes.xyxy.numpy(), result.boxes.conf.numpy(), result.boxes.cls.numpy(),
                               NAMES)
        got = compare_detections(theirs, mine)
        assert len(mine) > 0 and got.agrees(box_tol_px=1e-2), got


def test_batches_of_any_length_and_class_filter(tiny) -> None:
    detector = OnnxDetector(str(tiny["rect"]), device="cpu", conf=0.5)
    images = _images(3)
    one_by_one = [detector.detect([image])[0] for image in images]
    together = detector.detect(images)  # a fixed batch of 2: run as 2 + 1
    assert len(together) == 3 and detector.detect([]) == []
    for a, b in zip(one_by_one, together):
        assert compare_detections(a, b).agrees(box_tol_px=1e-3)
    only = OnnxDetector(str(tiny["rect"]), device="cpu", conf=0.5, classes=["bottle"]).detect(images)
    expected = [[d for d in dets if d.class_name == "bottle"] for dets in together]
    assert [len(d) for d in only] == [len(d) for d in expected] and any(expected)
    assert all(d.class_id == 2 for dets in only for d in dets)


def test_bad_arguments_are_named(tiny, tmp_path) -> None:
    with pytest.raises(ValueError, match="weights must be an .onnx file"):
        OnnxDetector(str(tiny["pt"]))
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        OnnxDetector(str(tmp_path / "missing.onnx"))
    with pytest.raises(ValueError, match="imgsz 320 does not match the model's fixed input"):
        OnnxDetector(str(tiny["rect"]), imgsz=320)
    with pytest.raises(ValueError, match="imgsz"):
        OnnxDetector(str(tiny["rect"]), imgsz=50)
    with pytest.raises(ValueError, match="classes"):
        OnnxDetector(str(tiny["rect"]), classes=["person"])
    with pytest.raises(ValueError, match="threads"):
        OnnxDetector(str(tiny["rect"]), threads=-1)
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="onnxruntime cannot load it"):
        OnnxDetector(str(broken))
    detector = OnnxDetector(str(tiny["rect"]), device="cpu")
    with pytest.raises(ValueError, match=r"images\[1\]"):
        detector.detect([_images(1)[0], np.zeros((10, 10), np.float32)])


def test_float16_weights_halve_the_file_and_keep_the_boxes(tiny, tmp_path) -> None:
    import shutil

    from object_permanence.tools.export_detector import store_weights_fp16

    small = tmp_path / "fp16.onnx"
    shutil.copyfile(tiny["rect"], small)
    assert store_weights_fp16(small) > 50
    assert small.stat().st_size < 0.55 * tiny["rect"].stat().st_size
    images = _images()
    full = OnnxDetector(str(tiny["rect"]), device="cpu", conf=0.5)
    half = OnnxDetector(str(small), device="cpu", conf=0.5)
    assert half.info.dtype == np.float32, "the input and the arithmetic stay float32"
    total = Agreement()
    for a, b in zip(full.detect(images), half.detect(images)):
        total = total + compare_detections(a, b)
    assert total.matched > 0 and total.max_box_diff_px < 1.0 and not total.class_mismatches, total


def test_export_tool_reports_the_agreement_on_sim_frames(tiny, tmp_path) -> None:
    import json

    from object_permanence.tools.export_detector import main

    out, report = tmp_path / "cli.onnx", tmp_path / "check.json"
    status = main(["--weights", str(tiny["pt"]), "--out", str(out), "--imgsz", "64", "--frames", "1",
                   "--conf", "0.5", "--report", str(report)])
    got = json.loads(report.read_text())
    assert out.is_file() and got["input_hw"] == [64, 64] and got["batch"] == 2
    assert got["raw_max_abs_diff"]["box_px"] < 1e-2 and got["matched"] > 0
    assert status == (0 if got["agrees"] else 1) and got["agrees"], got


def test_bench_tool_writes_every_backends_rows(tiny, tmp_path) -> None:
    import json

    from object_permanence.tools.bench_detector import main

    assert main(["--out", str(tmp_path), "--weights", str(tiny["pt"]), "--imgsz", "64", "--iters", "2",
                 "--warmup", "1", "--agreement-frames", "1", "--calib-pairs", "1"]) == 0
    report = json.loads((tmp_path / "detector.json").read_text())
    rows = [r for r in report["rows"] if r["device"] == "cpu"]
    assert {r["backend"] for r in rows} == {"ultralytics", "onnxruntime", "onnxruntime-int8"}
    for r in rows:
        assert r["imgsz"] == 64 and r["input_hw"] == [64, 64] and r["ms_per_pair_median"] > 0
        assert r["cpu_ms_per_pair_median"] > 0 and r["threads"] >= 1
    assert report["agreement"]["64"]["raw_max_abs_diff"]["box_px"] < 1e-2
    assert report["agreement"]["64"]["int8_vs_float"]["matched"] > 0
    assert len(report["load_average_before"]) == 3


SHIPPED = Path(__file__).resolve().parents[2] / "models" / "detector" / "sim_yolo.onnx"
SHIPPED_INT8 = SHIPPED.with_name("sim_yolo_int8.onnx")


@pytest.mark.parametrize("model", [SHIPPED, SHIPPED_INT8], ids=["float", "int8"])
def test_shipped_model_finds_the_well_visible_sim_objects(model: Path) -> None:
    """The trained detector, and its int8 quantization, through onnxruntime on held-out frames (seed
    1000): nearly every object at least 70% visible gets a box of its class over its visible part
    (IoU >= 0.5)."""
    if not model.is_file():
        pytest.skip(f"{model} not exported (make export-detector)")
    from object_permanence.core.association import iou_matrix
    from object_permanence.core.sim.scenarios import make_scenario
    from object_permanence.core.sim.world import SimWorld
    from object_permanence.core.types import ObjectKind

    world = SimWorld(make_scenario("clean"), 1000)
    detector = OnnxDetector(str(model), device="cpu")
    assert detector.names == NAMES
    found = total = 0
    for k in (0, 40, 80, 120):
        truth = world.ground_truth(k)
        for detections, objects in zip(detector.detect(list(world.render(k))), (truth.left, truth.right)):
            seen = [g for g in objects if g.kind == ObjectKind.OBJECT and g.visibility >= 0.7]
            boxes = np.array([d.box for d in detections]).reshape(-1, 4)
            iou = iou_matrix(np.array([g.visible_box for g in seen]).reshape(-1, 4), boxes)
            same = np.array([[g.class_id == d.class_id for d in detections] for g in seen]).reshape(iou.shape)
            found += int(((iou >= 0.5) & same).any(axis=1).sum())
            total += len(seen)
    assert total >= 16 and found >= 0.85 * total, (found, total)


def _cuda_provider() -> bool:
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


@pytest.mark.skipif(not (SHIPPED.is_file() and _cuda_provider()), reason="no onnxruntime CUDA provider here")
def test_cuda_provider_matches_the_cpu() -> None:
    """The shipped model through onnxruntime's CUDA provider reports the CPU provider's boxes (within
    1 px, same classes, scores within 0.01) on held-out sim pairs; the session really attached CUDA
    (no silent fallback to the CPU)."""
    from object_permanence.tools.export_detector import sim_pairs

    cpu = OnnxDetector(str(SHIPPED), device="cpu")
    gpu = OnnxDetector(str(SHIPPED), device="cuda")
    assert gpu.device == "cuda" and gpu.session.get_providers()[0] == "CUDAExecutionProvider"
    total = Agreement()
    for pair in sim_pairs("cluttered", 1000, 5):
        for c, g in zip(cpu.detect(list(pair)), gpu.detect(list(pair))):
            total = total + compare_detections(c, g)
    # boxes within 1 px and of the same class; a score at the threshold may round either way on a GPU
    assert total.matched >= 10 and not total.class_mismatches and total.max_box_diff_px <= 1.0, total
    assert total.only_first + total.only_second <= 1 and total.max_score_diff < 0.01, total
