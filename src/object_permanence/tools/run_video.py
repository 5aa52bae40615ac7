"""Detector + appearance embedding + world model on a real video, as both views of a stereo pair:
how fast the real detection path runs on this machine (no ground truth, so no accuracy figure).

    python -m object_permanence.tools.run_video --video ../shared/data/video/vtest.avi \\
        --weights models/detector/sim_yolo.onnx --out out/video

Any YOLO detection export works (``--weights yolo11n.onnx --classes person`` on a robot with a
COCO model); the shipped model knows only the simulated classes (box, ball, bottle), so on
pedestrians it measures speed, not accuracy. Each frame: both views in one detector batch, one
colour-histogram embedding per detection, one world-model step per view. Writes
``<out>/video.json`` (per-stage median ms, frames per second, detections and tracks per frame).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def make_detector(weights: str, device: str, imgsz: int, conf: float, classes: list[str] | None,
                  iou: float, agnostic: bool):
    """The backend the weights file names: .onnx -> ONNX Runtime, else ultralytics (torch), with
    NMS at ``iou`` (class-agnostic with ``agnostic``: the detector node's settings are passed)."""
    if weights.endswith(".onnx"):
        from object_permanence.core.detection.onnx_backend import OnnxDetector

        return OnnxDetector(weights, device=device, imgsz=imgsz, conf=conf, iou=iou, classes=classes,
                            agnostic=agnostic)
    from object_permanence.core.detection.ultralytics_backend import UltralyticsDetector

    return UltralyticsDetector(weights, device=device, imgsz=imgsz or 640, conf=conf, iou=iou, classes=classes,
                               agnostic=agnostic)


def main(argv: list[str] | None = None) -> int:
    import cv2
    from tqdm import tqdm

    from object_permanence.core.appearance import ColorHistogramEmbedder
    from object_permanence.core.parameters import detector_nms
    from object_permanence.core.world_model import WorldModel

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, required=True)
    parser.add_argument("--weights", required=True, help=".onnx (ONNX Runtime) or .pt (ultralytics)")
    parser.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--imgsz", type=int, default=0, help="0: the model's own size")
    parser.add_argument("--conf", type=float, default=0.25)
    parser.add_argument("--classes", default="", help="comma-separated class names or ids (default: all)")
    parser.add_argument("--frames", type=int, default=0, help="0: the whole video")
    parser.add_argument("--fps", type=float, default=0.0, help="stamp rate (0: the video's)")
    parser.add_argument("--out", type=Path, default=Path("out/video"))
    parser.add_argument("--config-dir", type=Path, default=Path("config"),
                        help="its detector.yaml gives the NMS (iou_threshold, agnostic_nms), as the detector node runs it")
    args = parser.parse_args(argv)
    capture = cv2.VideoCapture(str(args.video))
    if not capture.isOpened():
        print(f"cannot open video {args.video}", file=sys.stderr)
        return 2
    fps = args.fps or capture.get(cv2.CAP_PROP_FPS) or 30.0
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    n = min(args.frames, total) if args.frames and total else (args.frames or total)
    classes = [c for c in args.classes.split(",") if c] or None
    detector = make_detector(args.weights, args.device, args.imgsz, args.conf, classes, **detector_nms(args.config_dir))
    embedder = ColorHistogramEmbedder()
    models = (WorldModel(), WorldModel())
    stages: dict[str, list[float]] = {"detect_pair": [], "embed_pair": [], "world_model_pair": [], "frame": []}
    detections_per_view, confirmed_tracks = [], []
    k = 0
    with tqdm(total=n, desc="video frames", unit="frame", disable=None) as bar:
        while n is None or k < n:
            ok, frame = capture.read()
            if not ok:
                break
            t0 = time.perf_counter()
            views = (frame, frame)  # the same image as both views of the pair (one batch of 2)
            results = detector.detect(views)
            t1 = time.perf_counter()
            for image, dets in zip(views, results):
                if dets:
                    embeddings = embedder.embed(image, np.array([d.box for d in dets]))
                    for d, e in zip(dets, embeddings):
                        d.embedding = e
            t2 = time.perf_counter()
            size = (frame.shape[1], frame.shape[0])
            steps = [model.step(k / fps, dets, size) for model, dets in zip(models, results)]
            t3 = time.perf_counter()
            stages["detect_pair"].append(t1 - t0)
            stages["embed_pair"].append(t2 - t1)
            stages["world_model_pair"].append(t3 - t2)
            stages["frame"].append(t3 - t0)
            detections_per_view.append(len(results[0]))
            confirmed_tracks.append(sum(1 for t in steps[0].tracks if t.state.name in ("VISIBLE", "OCCLUDED")))
            k += 1
            bar.update(1)
    if k == 0:
        print(f"no frame could be read from {args.video}", file=sys.stderr)
        return 2
    summary = {
        "video": str(args.video), "weights": args.weights, "device": detector.device, "imgsz": detector.imgsz,
        "frames": k, "image_size": [int(frame.shape[1]), int(frame.shape[0])],
        **{f"{name}_ms_median": round(1e3 * float(np.median(v)), 2) for name, v in stages.items()},
        "frames_per_second": round(k / float(np.sum(stages["frame"])), 1),
        "detections_per_view_mean": round(float(np.mean(detections_per_view)), 2),
        "confirmed_tracks_per_view_mean": round(float(np.mean(confirmed_tracks)), 2),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "video.json").write_text(json.dumps(summary, indent=2) + "\n")
    for key, value in summary.items():
        print(f"  {key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
