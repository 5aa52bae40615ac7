"""Evaluate the trained sim detector: mAP on held-out scenes, and its behaviour against the detector simulator.

    python -m object_permanence.tools.eval_detector --weights models/detector/sim_yolo.pt

1. **mAP** (issue 9, item 6) on the held-out test split of :mod:`make_detector_data` (seeds >= 1000):
   ``map50`` / ``map50_95`` from Ultralytics ``val`` (every unlabelled thing a detection hits is a
   false positive), and ``map50_ignore`` / ``map50_95_ignore`` from pycocotools with the objects the
   label policy leaves out (in view but under its visibility or size cut) as COCO ``iscrowd``
   ignore regions — the "reasonable" protocol of CityPersons / Caltech: finding a 20 %-visible
   object is neither rewarded nor punished, while firing on reflections, glare or background still
   counts against the detector. ``map50`` / ``map50_95`` follow Ultralytics' validation convention
   (NMS IoU 0.7 per class); ``map50_deployed_nms`` / ``map50_95_deployed_nms`` are the same
   validation with the NMS the detector node runs (``iou_threshold`` and ``agnostic_nms`` of
   ``<config-dir>/detector.yaml``). Written to ``<out>/detector.json`` (keys already there are kept;
   ``reid_rank1`` / ``reid_rank1_colour_histogram`` are copied from ``<out>/reid.json`` when it exists).
   ``models``: the ``.pt`` and each of ``--models`` (the shipped ONNX export and its int8
   quantization) on one protocol — pycocotools with the ignore regions, at both NMS settings,
   the ``.onnx`` files through the detector node's onnxruntime backend — so that an export or a
   quantization is judged against its source on the same held-out images.
2. **Calibration** (item 4, :mod:`detector_calibration`): the trained detector, with the deployed
   NMS, against the detector simulator's ``realistic`` preset and its ``sim_yolo`` preset (fitted to
   this detector on tuning scenes by :mod:`fit_detector_sim`: here it is judged on scenes it was not
   fitted on) on the same held-out runs -> ``<out>/detector_calibration.json`` and ``.md``
   (statistic, each preset, trained YOLO).
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import io
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from object_permanence.core.parameters import detector_nms
from object_permanence.core.sim.scenarios import make_scenario
from object_permanence.core.sim.world import SimWorld
from object_permanence.core.sim.yolo_labels import LabelPolicy, labelled_mask
from object_permanence.core.types import ObjectKind
from object_permanence.tools.detector_calibration import calibration, calibration_markdown
from object_permanence.tools.eval_tracking import parse_seeds
from object_permanence.tools.train_detector import network_attempts, offline_ultralytics

#: The shipped exports of the trained detector: the onnxruntime backend's float model and its int8 quantization.
SHIPPED_EXPORTS = (Path("models/detector/sim_yolo.onnx"), Path("models/detector/sim_yolo_int8.onnx"))
REID_KEYS = ("reid_rank1", "reid_rank1_colour_histogram")
RUNS = Path("out/detector/runs")


def evaluate_map(weights: Path, data_yaml: Path, imgsz: int = 320, split: str = "test", runs: Path = RUNS,
                 iou: float = 0.7, agnostic: bool = False) -> dict:
    """mAP50, mAP50-95, mean precision and recall (and per class) of ``weights`` on ``split`` of ``data_yaml``.

    Ultralytics' validator (conf 0.001, rectangular letterboxed batches), no plots; NMS at ``iou``,
    class-agnostic with ``agnostic`` (the defaults are the validator's own: 0.7, per class).
    """
    ultralytics = offline_ultralytics(runs.resolve() / "ultralytics_config")
    model = ultralytics.YOLO(str(weights), task="detect")
    metrics = model.val(data=str(Path(data_yaml).resolve()), split=split, imgsz=imgsz, batch=16, device="cpu",
                        iou=iou, agnostic_nms=agnostic, plots=False, verbose=False, project=str(runs.resolve()),
                        name=f"val_{split}", exist_ok=True)
    box = metrics.box
    per_class = {model.names[int(c)]: {"map50": float(box.ap50[i]), "map50_95": float(box.ap[i])}
                 for i, c in enumerate(box.ap_class_index)}
    return {"map50": float(box.map50), "map50_95": float(box.map), "precision": float(box.mp),
            "recall": float(box.mr), "per_class": per_class}


@functools.lru_cache(maxsize=8)
def _world(scenario: str, seed: int) -> SimWorld:
    """The world of one run (cached: a split's images come run by run, in name order)."""
    return SimWorld(make_scenario(scenario), seed)


def ignored_boxes(stem: str, policy: LabelPolicy) -> tuple[np.ndarray, np.ndarray]:
    """(K, 4) ``x, y, w, h`` visible boxes and (K,) classes of the real objects in view in the image
    ``stem`` (``<scenario>_s<seed>_f<frame>_<camera>``) that ``policy`` leaves unlabelled."""
    scenario, seed, frame, camera = stem.rsplit("_", 3)
    entries = getattr(_world(scenario, int(seed[1:])).ground_truth(int(frame[1:])), camera)
    keep = ~labelled_mask(entries, policy) & np.array([g.kind == ObjectKind.OBJECT and g.visibility > 0.0
                                                       for g in entries], dtype=bool).reshape(-1)
    boxes = np.array([g.visible_box for g in entries], float).reshape(-1, 4)[keep]
    classes = np.array([g.class_id for g in entries], dtype=int)[keep]
    return np.column_stack([boxes[:, :2] - boxes[:, 2:] / 2, boxes[:, 2:]]), classes


#: One image's detections: its (height, width), (N, 4) xyxy pixels, (N,) scores, (N,) class ids.
Prediction = tuple[tuple[int, int], np.ndarray, np.ndarray, np.ndarray]


def predictor(weights: Path, imgsz: int = 320, iou: float = 0.7, agnostic: bool = False, runs: Path = RUNS
              ) -> tuple[dict[int, str], Callable[[list[Path]], Iterator[Prediction]]]:
    """The class names of ``weights`` and a function giving each image file's :data:`Prediction`
    at conf 0.001 and NMS ``iou`` / ``agnostic``: Ultralytics ``predict`` for a ``.pt``, the
    detector node's onnxruntime backend (CPU) for an ``.onnx`` (its own input size)."""
    if weights.suffix == ".onnx":
        import cv2

        from object_permanence.core.detection.onnx_backend import OnnxDetector

        detector = OnnxDetector(str(weights), device="cpu", conf=0.001, iou=iou, agnostic=agnostic)

        def run_onnx(images: list[Path]) -> Iterator[Prediction]:
            for start in range(0, len(images), 2):  # a stereo export takes two images a call
                frames = [cv2.imread(str(p)) for p in images[start:start + 2]]
                for frame, found in zip(frames, detector.detect(frames)):
                    boxes = np.array([d.box for d in found], np.float64).reshape(-1, 4)  # cx, cy, w, h
                    xyxy = np.hstack([boxes[:, :2] - boxes[:, 2:] / 2, boxes[:, :2] + boxes[:, 2:] / 2])
                    yield (frame.shape[:2], xyxy, np.array([d.score for d in found]),
                           np.array([d.class_id for d in found], int))

        return dict(detector.names), run_onnx
    ultralytics = offline_ultralytics(runs.resolve() / "ultralytics_config")
    model = ultralytics.YOLO(str(weights), task="detect")

    def run_torch(images: list[Path]) -> Iterator[Prediction]:
        for result in model.predict([str(p) for p in images], imgsz=imgsz, conf=0.001, iou=iou, agnostic_nms=agnostic,
                                    max_det=300, device="cpu", verbose=False, stream=True):
            yield (result.orig_shape, result.boxes.xyxy.numpy(), result.boxes.conf.numpy(),
                   result.boxes.cls.numpy().astype(int))

    return dict(model.names), run_torch


def coco_map(weights: Path, data_root: Path, imgsz: int = 320, split: str = "test", ignore: bool = True,
             runs: Path = RUNS, iou: float = 0.7, agnostic: bool = False) -> dict:
    """COCO mAP50 and mAP50-95 (pycocotools) of ``weights`` (``.pt`` or ``.onnx``: :func:`predictor`)
    on ``data_root/images/<split>``.

    Ground truth: the split's YOLO label files; with ``ignore``, plus the objects the label policy
    (``data_root/summary.json``) left out, as ``iscrowd`` regions that absorb detections without
    counting them. Detections: conf 0.001, NMS at ``iou`` (0.7 per class: Ultralytics' validator).
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    policy = LabelPolicy(**json.loads((data_root / "summary.json").read_text())["label_policy"])
    names, predict = predictor(weights, imgsz, iou, agnostic, runs)
    images = sorted((data_root / "images" / split).glob("*.jpg"))
    gt = {"images": [], "annotations": [], "categories": [{"id": int(c)} for c in names]}
    detections = []
    for image_id, ((height, width), xyxy, scores, classes) in enumerate(predict(images)):
        gt["images"].append({"id": image_id, "width": width, "height": height})
        rows = np.loadtxt(data_root / "labels" / split / f"{images[image_id].stem}.txt", ndmin=2).reshape(-1, 5)
        boxes = rows[:, 1:] * [width, height, width, height]  # cx, cy, w, h px
        boxes[:, :2] -= boxes[:, 2:] / 2  # x, y = cx - w / 2, cy - h / 2
        crowd_boxes, crowd_classes = ignored_boxes(images[image_id].stem, policy) if ignore else (
            np.zeros((0, 4)), np.zeros(0, int))
        for box, cls, crowd in [*((b, c, 0) for b, c in zip(boxes, rows[:, 0])),
                                *((b, c, 1) for b, c in zip(crowd_boxes, crowd_classes))]:
            gt["annotations"].append({"id": len(gt["annotations"]) + 1, "image_id": image_id, "category_id": int(cls),
                                      "bbox": [float(v) for v in box], "area": float(box[2] * box[3]),
                                      "iscrowd": crowd})
        detections += [{"image_id": image_id, "category_id": int(c), "score": float(s),
                        "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]}
                       for b, s, c in zip(xyxy, scores, classes)]
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools reports on stdout
        truth = COCO()
        truth.dataset = gt
        truth.createIndex()
        found = truth.loadRes(detections) if detections else COCO()
        evaluator = COCOeval(truth, found, "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {"map50": float(evaluator.stats[1]), "map50_95": float(evaluator.stats[0]),
            "ignored_objects": int(sum(a["iscrowd"] for a in gt["annotations"]))}


def model_rows(models: Sequence[Path], data_root: Path, nms: dict, imgsz: int = 320, split: str = "test",
               known: dict[Path, dict] | None = None) -> list[dict]:
    """One row per model file (``.pt`` or ``.onnx``) on one protocol, so that exports and quantizations
    compare with their source: COCO mAP with the ignore regions at Ultralytics' NMS (0.7 per class) and
    at the deployed ``nms`` (``iou``, ``agnostic``). ``known``: :func:`coco_map` results at the first
    of the two already computed, by file."""
    rows = []
    for path in models:
        convention = (known or {}).get(path) or coco_map(path, data_root, imgsz, split, ignore=True)
        deployed = coco_map(path, data_root, imgsz, split, ignore=True, **nms)
        rows.append({"weights": str(path), "bytes": path.stat().st_size,
                     "map50_ignore": convention["map50"], "map50_95_ignore": convention["map50_95"],
                     "map50_ignore_deployed_nms": deployed["map50"],
                     "map50_95_ignore_deployed_nms": deployed["map50_95"]})
    return rows


def write_detector_json(out: Path, figures: dict) -> Path:
    """Merge ``figures`` into ``out/detector.json`` (keeping its other keys) and copy the re-ID keys
    from ``out/reid.json`` when it exists."""
    target = out / "detector.json"
    merged = json.loads(target.read_text()) if target.exists() else {}
    merged.update(figures)
    reid = out / "reid.json"
    if reid.exists():
        found = json.loads(reid.read_text())
        merged.update({key: found[key] for key in REID_KEYS if key in found})
    target.write_text(json.dumps(merged, indent=2) + "\n")
    return target


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, default=Path("models/detector/sim_yolo.pt"))
    parser.add_argument("--data", type=Path, default=Path("out/detector/data/data.yaml"))
    parser.add_argument("--out", type=Path, default=Path("out/eval"))
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--calib-scenarios", default="cluttered,noisy,long_occlusion")
    parser.add_argument("--calib-seeds", default="1000-1001", help="held-out seeds (>= 1000)")
    parser.add_argument("--calib-frames", type=int, default=150)
    parser.add_argument("--models", default=",".join(str(m) for m in SHIPPED_EXPORTS),
                        help="comma-separated exports (.onnx, or other .pt) scored beside --weights on one protocol "
                        "(COCO mAP with ignore regions, at both NMS settings) -> the 'models' rows; empty: none")
    parser.add_argument("--skip-map", action="store_true")
    parser.add_argument("--skip-calibration", action="store_true")
    parser.add_argument("--config-dir", type=Path, default=Path("config"),
                        help="where detector.yaml gives the deployed NMS (iou_threshold, agnostic_nms)")
    args = parser.parse_args(argv)
    if not args.weights.is_file():
        parser.error(f"--weights {args.weights} not found; run make train-detector first")
    missing = [m for m in args.models.split(",") if m and not Path(m).is_file()]
    if missing and not args.skip_map:
        parser.error(f"--models: {', '.join(missing)} not found; run make export-detector first, or pass --models ''")
    seeds = parse_seeds(args.calib_seeds)
    if min(seeds) < 1000:
        parser.error(f"--calib-seeds must be held-out seeds >= 1000, got {args.calib_seeds}")
    nms = detector_nms(args.config_dir)
    offline_ultralytics(RUNS.resolve() / "ultralytics_config")
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.skip_map:
        if not args.data.exists():
            parser.error(f"--data {args.data} not found; run make_detector_data first")
        test = evaluate_map(args.weights, args.data, args.imgsz, "test")
        at_deployed = evaluate_map(args.weights, args.data, args.imgsz, "test", **nms)
        with_ignore = coco_map(args.weights, args.data.parent, args.imgsz, "test", ignore=True)
        figures = {**test, "map50_deployed_nms": at_deployed["map50"], "map50_95_deployed_nms": at_deployed["map50_95"],
                   "deployed_nms_iou": nms["iou"], "deployed_nms_agnostic": nms["agnostic"],
                   "map50_ignore": with_ignore["map50"], "map50_95_ignore": with_ignore["map50_95"],
                   "ignored_objects": with_ignore["ignored_objects"], "weights": str(args.weights),
                   "imgsz": args.imgsz, "split": "test (seeds >= 1000)"}
        write_detector_json(args.out, figures)
        print(json.dumps({k: figures[k] for k in ("map50", "map50_95", "map50_deployed_nms", "map50_95_deployed_nms",
                                                  "map50_ignore", "map50_95_ignore")}))
        models = [Path(m) for m in args.models.split(",") if m]
        if models:
            rows = model_rows([args.weights, *models], args.data.parent, nms, args.imgsz,
                              known={args.weights: with_ignore})
            write_detector_json(args.out, {"models": rows})
            print(f"{'model':<44} {'MiB':>5}  mAP50 / mAP50-95 (ignore regions), NMS 0.7 per class | deployed NMS")
            for row in rows:
                print(f"{row['weights']:<44} {row['bytes'] / 2**20:>5.1f}  {row['map50_ignore']:.4f} / "
                      f"{row['map50_95_ignore']:.4f} | {row['map50_ignore_deployed_nms']:.4f} / "
                      f"{row['map50_95_ignore_deployed_nms']:.4f}")
    if not args.skip_calibration:
        result = calibration(args.weights, [s for s in args.calib_scenarios.split(",") if s], seeds,
                             args.calib_frames, args.imgsz, nms_iou=nms["iou"], agnostic_nms=nms["agnostic"],
                             presets=("realistic", "sim_yolo"))
        (args.out / "detector_calibration.json").write_text(json.dumps(result, indent=2) + "\n")
        (args.out / "detector_calibration.md").write_text(calibration_markdown(result))
        print(calibration_markdown(result))
    if network_attempts():
        print(f"network attempts (all failed offline): {network_attempts()}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
