"""Evaluation sequences: per-camera detections and ground truth of one scenario run, on disk too.

An :class:`EvalSequence` is what every tracker under comparison is fed: per camera, the
detections of each frame (boxes, scores, classes and, for the simulator, appearance embeddings
computed from the rendered image as the detector node does) and the ground truth the metrics read.
:func:`simulate_sequences` builds them from the simulated world and the simulated detector;
:mod:`~object_permanence.core.eval.tud_campus` builds one from real MOT ground truth.

On disk each camera stream is a MOTChallenge sequence folder (``seqinfo.ini``, ``det/det.txt``,
``gt/gt.txt``; the folder of them is a TrackEval ground-truth folder), so any MOT tool can re-run
the trackers and re-score them; the harness itself
reads the detections back from those files (:func:`reload_detections`), so every tracker gets
exactly what the file holds.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from object_permanence.core.appearance import ColorHistogramEmbedder, Embedder
from object_permanence.core.detection.simulated import DIFFICULTIES, SimulatedDetector, SimulatedDetectorConfig
from object_permanence.core.eval.export import write_seqmap  # noqa: F401 (re-exported for the tools)
from object_permanence.core.eval.mot import gt_rows
from object_permanence.core.eval.mot_io import read_mot_detections, write_mot_detections, write_seqinfo
from object_permanence.core.sim.scenarios import make_scenario
from object_permanence.core.sim.world import SimWorld
from object_permanence.core.types import Detection, GroundTruthObject

#: Ground truth below this visibility is a distractor in ``gt.txt``, as the metrics treat it
#: (``mot_metrics``' default ``min_visibility``).
GT_MIN_VISIBILITY = 0.25


def detector_config(difficulty: str, seed: int) -> SimulatedDetectorConfig:
    """The simulated detector's configuration for ``difficulty`` (``easy | realistic | hard | sim_yolo``),
    seeded with ``seed`` (the world's seed: a held-out world gets held-out detector noise).

    This is the one place where the evaluation picks the detector preset.

    Raises:
        ValueError: unknown ``difficulty`` or a bad seed.
    """
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"difficulty must be one of {DIFFICULTIES}, got {difficulty!r}")
    return SimulatedDetectorConfig.preset(difficulty, seed=seed)


@dataclass
class CameraStream:
    """One camera's view of a sequence; lists are indexed by frame position 0..n-1.

    detections[k]: the detector's output at frame k (``cx, cy, w, h`` px, with embeddings when
    images exist). truth[k]: ground truth at frame k (objects and nuisances).
    """

    detections: list[list[Detection]]
    truth: list[list[GroundTruthObject]]


@dataclass
class EvalSequence:
    """One evaluation run: a dataset (scenario name or real sequence), difficulty and seed.

    fps: frame rate (stamp of frame k is ``k / fps`` s); image_size: ``(width, height)`` px;
    streams: ``{"left": ..., "right": ...}`` for the stereo simulator, ``{"left": ...}`` for a
    monocular real sequence.
    """

    dataset: str
    difficulty: str
    seed: int
    fps: float
    image_size: tuple[int, int]
    streams: dict[str, CameraStream] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """``<dataset>-<difficulty>-s<seed>``, the folder name on disk."""
        return f"{self.dataset}-{self.difficulty}-s{self.seed}"

    @property
    def n_frames(self) -> int:
        """Frames in every stream."""
        return len(next(iter(self.streams.values())).truth) if self.streams else 0


def simulate_sequences(scenario: str, seed: int, difficulties: Sequence[str], n_frames: int | None = None,
                       embed: bool = True, on_frame: Callable[[], None] | None = None,
                       embedder: Embedder | None = None) -> dict[str, EvalSequence]:
    """Run the simulated world ``scenario`` with ``seed`` once and detect every frame at each of
    ``difficulties``; returns ``{difficulty: EvalSequence}`` (both cameras).

    The world is rendered once per frame for all difficulties (rendering is most of the cost) and
    each detection gets the embedding of its box in that image, as the detector node computes it. ``embed=False`` skips rendering and embeddings (for trackers that use
    neither, e.g. when tuning the peers). ``n_frames``: default the scenario's length.
    ``on_frame`` is called after each frame (progress reporting). ``embedder``: default a
    :class:`ColorHistogramEmbedder` with its default bins (any :class:`Embedder`, e.g. the learned
    re-ID network).

    Raises:
        ValueError: unknown scenario or difficulty, bad seed, ``n_frames`` < 1.
    """
    world = SimWorld(make_scenario(scenario), seed=seed)
    n = world.n_frames if n_frames is None else n_frames
    if n < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames!r}")
    detectors = {d: SimulatedDetector(detector_config(d, seed)) for d in difficulties}
    embedder = embedder if embedder is not None else ColorHistogramEmbedder()
    size = (world.rig.width, world.rig.height)
    out = {d: EvalSequence(scenario, d, seed, world.config.fps, size,
                           {cam: CameraStream([], []) for cam in ("left", "right")}) for d in difficulties}
    for k in range(n):
        truth = world.ground_truth(k)
        images = world.render(k) if embed else (None, None)
        for cam, gt, image in zip(("left", "right"), (truth.left, truth.right), images):
            for difficulty, detector in detectors.items():
                dets = detector.detect(gt, k, cam, (size[1], size[0]))
                if image is not None and dets:
                    for d, e in zip(dets, embedder.embed(image, np.stack([d.box for d in dets]))):
                        d.embedding = e
                stream = out[difficulty].streams[cam]
                stream.detections.append(dets)
                stream.truth.append(gt)
        if on_frame is not None:
            on_frame()
    return out


def write_sequence(seq: EvalSequence, folder: Path) -> dict[str, Path]:
    """Write each camera stream as a MOTChallenge sequence ``folder/<name>-<camera>/`` with
    ``seqinfo.ini``, ``det/det.txt`` (``frame,-1,x,y,w,h,conf,class,-1,-1``, frames 1-based) and
    ``gt/gt.txt`` (``frame,id,x,y,w,h,1,class,visibility``, the rows the metrics score: real objects,
    class 1, or 8 "distractor" below the visibility the metrics require, as
    :func:`core.eval.mot.gt_rows` lays them out); with :func:`write_seqmap` (from
    :mod:`core.eval.export`, re-exported here) ``folder`` is a
    TrackEval ``MotChallenge2DBox`` ground-truth folder. Returns ``{camera: sequence folder}``.

    Raises:
        OSError: a file cannot be written.
    """
    folders = {}
    for cam, stream in seq.streams.items():
        root = folder / f"{seq.name}-{cam}"
        (root / "det").mkdir(parents=True, exist_ok=True)
        (root / "gt").mkdir(parents=True, exist_ok=True)
        write_seqinfo(root / "seqinfo.ini", root.name, seq.fps, seq.n_frames, *seq.image_size, im_ext=".png")
        write_mot_detections(root / "det" / "det.txt", {k + 1: d for k, d in enumerate(stream.detections)})
        with open(root / "gt" / "gt.txt", "w", encoding="utf-8") as f:
            for k, gt in enumerate(stream.truth):
                rows = gt_rows(gt, GT_MIN_VISIBILITY)
                f.writelines(f"{k + 1},{oid},{x!r},{y!r},{w!r},{h!r},1,{cls},{vis!r}\n"
                             for oid, (x, y, w, h), cls, vis in zip(rows.ids.tolist(), rows.xywh.tolist(),
                                                                   rows.classes.tolist(), rows.visibility.tolist()))
        folders[cam] = root
    return folders


def reload_detections(seq: EvalSequence, folders: dict[str, Path]) -> EvalSequence:
    """The sequence with each camera's detections replaced by those read back from its
    ``det/det.txt`` (boxes and scores as rounded in the file, classes from column 8); embeddings
    are carried over by position (the file keeps each frame's order).

    Raises:
        ValueError: a frame of the file holds another number of detections than the sequence.
        MotFormatError, OSError: the file cannot be read.
    """
    streams = {}
    for cam, stream in seq.streams.items():
        read = read_mot_detections(folders[cam] / "det" / "det.txt", with_class=True)
        detections = []
        for k, original in enumerate(stream.detections):
            again = read.get(k + 1, [])
            if len(again) != len(original):
                raise ValueError(f"{folders[cam]}: frame {k + 1} holds {len(again)} detections, "
                                 f"the sequence {len(original)}")
            for new, old in zip(again, original):
                new.embedding = old.embedding
                new.class_name = old.class_name
            detections.append(again)
        streams[cam] = CameraStream(detections, stream.truth)
    return EvalSequence(seq.dataset, seq.difficulty, seq.seed, seq.fps, seq.image_size, streams)
