"""The world model again on a demo run's recorded detections: tracking figures of another
configuration (or a stricter NMS, a higher score threshold) in seconds instead of a pipeline run.

    python -m object_permanence.tools.demo --detector yolo --scenario cluttered --seed 11 \\
        --save-detections --gif-frames 0 --out out/replay/cluttered-11
    python -m object_permanence.tools.replay_tracking out/replay/*/detections.npz \\
        [--config-dir config] [--nms-iou 0.5] [--min-score 0.3] [--out out/replay/tracking.json]

Each file (``demo --save-detections``) holds every frame the pipeline delivered, both cameras, and
names its scenario and seed, so the ground truth is simulated again. A fresh world model of
``--config-dir/world_model.yaml`` per camera runs from the first recorded frame (as the live one
did), with the recorded stamps and the simulator's image size; the demo's evaluated window is
scored with ``make eval``'s figures (:func:`core.eval.tracking_eval.score_run`: HOTA, IDF1, MOTA,
switches, occlusion recovery, reacquire error, ghost precision over every ghost). On the shipped
configuration the figures equal the live demo's (the world model is deterministic).

``--simulate PRESET`` replaces the recorded detections by the detector simulator's at that preset
on the same frames and stamps (each box with the colour-histogram embedding of the rendered image,
as the detector node computes it): how well a preset predicts the tracking figures of the detector
that was recorded — e.g. ``sim_yolo`` (fitted to the shipped YOLO) against ``realistic`` on runs of
that YOLO.

``--nms-iou`` adds a class-agnostic greedy NMS at that IoU on the recorded boxes (what a stricter
detector NMS would have reported, up to boxes the recorded NMS already removed); ``--min-score``
drops boxes scoring below it (exactly what a higher detector threshold reports). Tuning seeds only
(< 1000) unless ``--allow-held-out``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from object_permanence.core.appearance import ColorHistogramEmbedder
from object_permanence.core.detection.simulated import DIFFICULTIES, SimulatedDetector
from object_permanence.core.eval.recorded_detections import RecordedFrame, load_detections
from object_permanence.core.eval.records import CAMERAS
from object_permanence.core.eval.sequences import CameraStream, EvalSequence, detector_config
from object_permanence.core.eval.tracking_eval import aggregate, score_run
from object_permanence.core.sim.scenarios import make_scenario
from object_permanence.core.sim.world import SimWorld
from object_permanence.core.types import Detection
from object_permanence.core.world_model import WorldModel, WorldModelConfig
from object_permanence.tools.eval_tracking import HELD_OUT_SEED, shipped_world_model_config


def suppress(detections: list[Detection], nms_iou: float = 0.0, min_score: float = 0.0) -> list[Detection]:
    """``detections`` scoring at least ``min_score``, then (``nms_iou`` > 0) class-agnostic NMS with
    OpenCV's ``NMSBoxesBatched`` in one group, as the ONNX backend runs it: in decreasing score order, a box overlapping
    a kept one by IoU > ``nms_iou`` is dropped. Input order is kept."""
    kept = [d for d in detections if d.score >= min_score]
    if nms_iou <= 0 or len(kept) < 2:
        return kept
    boxes = np.array([d.box for d in kept], np.float64)
    xywh = np.concatenate([boxes[:, :2] - boxes[:, 2:] / 2.0, boxes[:, 2:]], axis=1)  # top-left, size
    scores = np.array([d.score for d in kept], np.float32)
    survivors = np.asarray(cv2.dnn.NMSBoxesBatched(xywh, scores, np.zeros(len(kept), np.int32), -1.0, nms_iou),
                           np.int64).reshape(-1)  # one group: class-agnostic
    return [kept[i] for i in np.sort(survivors)]


def simulated_frames(meta: dict, frames: list[RecordedFrame], preset: str) -> list[RecordedFrame]:
    """``frames`` with every camera's detections replaced by the detector simulator's at ``preset``
    (seeded with the run's seed, as the evaluation seeds it), each with its box's colour-histogram
    embedding in the rendered image."""
    world = SimWorld(make_scenario(meta["scenario"]), seed=int(meta["seed"]))
    detector = SimulatedDetector(detector_config(preset, int(meta["seed"])))
    embedder = ColorHistogramEmbedder()
    shape = (world.rig.height, world.rig.width)
    out = []
    for f in frames:
        truth, images = world.ground_truth(f.index), world.render(f.index)
        detections = {}
        for cam, image in zip(CAMERAS, images):
            dets = detector.detect(getattr(truth, cam), f.index, cam, shape)
            if dets:
                for d, e in zip(dets, embedder.embed(image, np.stack([d.box for d in dets]))):
                    d.embedding = e
            detections[cam] = dets
        out.append(RecordedFrame(f.index, f.stamp, detections))
    return out


def replay(meta: dict, frames: list[RecordedFrame], config: WorldModelConfig, nms_iou: float = 0.0,
           min_score: float = 0.0) -> tuple[EvalSequence, dict]:
    """The evaluated window of one recorded run as a sequence, and the world model's tracks per
    camera over it (the model run from the first recorded frame)."""
    world = SimWorld(make_scenario(meta["scenario"]), seed=int(meta["seed"]))
    size = (world.rig.width, world.rig.height)
    window = [f for f in frames if f.index >= int(meta["first"])]
    truths = [world.ground_truth(f.index) for f in window]
    streams, tracks = {}, {}
    for cam in CAMERAS:
        model = WorldModel(config)
        inputs = [suppress(f.detections[cam], nms_iou, min_score) for f in frames]
        published = [model.step(f.stamp, dets, size).tracks for f, dets in zip(frames, inputs)]
        tracks[cam] = published[len(frames) - len(window):]
        streams[cam] = CameraStream(detections=inputs[len(frames) - len(window):],
                                    truth=[getattr(t, cam) for t in truths])
    seq = EvalSequence(dataset=meta["scenario"], difficulty=str(meta.get("detector", "recorded")),
                       seed=int(meta["seed"]), fps=float(meta["fps"]), image_size=size, streams=streams)
    return seq, tracks


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="replay_tracking", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", type=Path, help="detections.npz files of `demo --save-detections`")
    parser.add_argument("--config-dir", type=Path, default=Path("config"))
    parser.add_argument("--nms-iou", type=float, default=0.0, help="extra class-agnostic NMS (0: none)")
    parser.add_argument("--min-score", type=float, default=0.0, help="drop boxes scoring below this")
    parser.add_argument("--simulate", choices=DIFFICULTIES, default=None,
                        help="replace the recorded detections by the detector simulator's at this preset")
    parser.add_argument("--allow-held-out", action="store_true", help="allow seeds >= 1000 (confirmation only)")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON")
    args = parser.parse_args(argv)
    if not 0.0 <= args.nms_iou < 1.0 or not 0.0 <= args.min_score <= 1.0:
        parser.error("--nms-iou must be in [0, 1) and --min-score in [0, 1]")
    config = shipped_world_model_config(args.config_dir)
    scores = []
    for path in args.files:
        meta, frames = load_detections(path)
        if int(meta["seed"]) >= HELD_OUT_SEED and not args.allow_held_out:
            parser.error(f"{path}: seed {meta['seed']} is held out; pass --allow-held-out for a confirmation run")
        if args.simulate is not None:
            frames = simulated_frames(meta, frames, args.simulate)
            meta = dict(meta, detector=f"simulated-{args.simulate}")
        seq, tracks = replay(meta, frames, config, args.nms_iou, args.min_score)
        score = score_run(seq, "ours", tracks)
        scores.append(dataclasses.replace(score, dataset="all", difficulty="recorded"))  # pooled below
        print(f"{path}: {seq.dataset} seed {seq.seed}: HOTA {score.hota:.3f} IDF1 {score.idf1:.3f} "
              f"MOTA {score.mota:.3f} switches {score.id_switches} recovered {score.recovered}/{score.episodes} "
              f"ghosts {score.ghosts_correct}/{score.ghosts}")
    pooled = aggregate(scores)
    pooled["id_switches"] = sum(s.id_switches for s in scores)
    print(json.dumps(pooled, indent=2))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"runs": [str(p) for p in args.files], "config_dir": str(args.config_dir),
                                        "nms_iou": args.nms_iou, "min_score": args.min_score,
                                        "simulate": args.simulate,
                                        "pooled": pooled}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
