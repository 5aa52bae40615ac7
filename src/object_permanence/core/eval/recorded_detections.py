"""A run's detections, both cameras, in one ``.npz`` file: what a detector reported, frame by frame,
so that the world model can be run again on exactly that input (another configuration, another
NMS) without the detector or ROS.

Layout: ``index`` (F,) frame indices and ``stamp`` (F,) seconds; per camera ``<camera>_frame`` (K,)
the row of ``index`` each detection belongs to, ``<camera>_box`` (K, 4) ``cx, cy, w, h`` px,
``<camera>_score``, ``<camera>_class_id``, ``<camera>_class_name`` (K,), ``<camera>_embedding``
(K, D) float32 and ``<camera>_has_embedding`` (K,) bool; ``meta``: a JSON object (scenario, seed,
fps, the first evaluated frame, ...).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from object_permanence.core.eval.records import CAMERAS
from object_permanence.core.types import Detection


@dataclass
class RecordedFrame:
    """One frame's detections: ``index`` (the simulator's frame), ``stamp`` (s), per camera a list."""

    index: int
    stamp: float
    detections: dict[str, list[Detection]]


def save_detections(path: Path, frames: list[RecordedFrame], meta: dict) -> None:
    """Write ``frames`` (in order) and ``meta`` (JSON-serialisable) to ``path`` (module docstring)."""
    arrays: dict[str, np.ndarray] = {
        "index": np.array([f.index for f in frames], np.int64),
        "stamp": np.array([f.stamp for f in frames], np.float64),
        "meta": np.array(json.dumps(meta)),
    }
    for cam in CAMERAS:
        rows = [(i, d) for i, f in enumerate(frames) for d in f.detections.get(cam, [])]
        dims = {np.asarray(d.embedding).size for _, d in rows if d.embedding is not None}
        if len(dims) > 1:
            raise ValueError(f"{cam}: embeddings of several lengths {sorted(dims)} cannot be stacked")
        dim = dims.pop() if dims else 0
        arrays[f"{cam}_frame"] = np.array([i for i, _ in rows], np.int64)
        arrays[f"{cam}_box"] = np.array([np.asarray(d.box, np.float64) for _, d in rows]).reshape(-1, 4)
        arrays[f"{cam}_score"] = np.array([d.score for _, d in rows], np.float64)
        arrays[f"{cam}_class_id"] = np.array([d.class_id for _, d in rows], np.int64)
        arrays[f"{cam}_class_name"] = np.array([d.class_name for _, d in rows], dtype=str)
        arrays[f"{cam}_has_embedding"] = np.array([d.embedding is not None for _, d in rows], bool)
        embeddings = np.zeros((len(rows), dim), np.float32)
        for j, (_, d) in enumerate(rows):
            if d.embedding is not None:
                embeddings[j] = np.asarray(d.embedding, np.float32).ravel()
        arrays[f"{cam}_embedding"] = embeddings
    np.savez_compressed(path, **arrays)


def load_detections(path: Path) -> tuple[dict, list[RecordedFrame]]:
    """``(meta, frames)`` of a file written by :func:`save_detections`."""
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        frames = [RecordedFrame(int(k), float(s), {cam: [] for cam in CAMERAS})
                  for k, s in zip(z["index"], z["stamp"])]
        for cam in CAMERAS:
            names, has = z[f"{cam}_class_name"], z[f"{cam}_has_embedding"]
            for j, (i, box, score, class_id, emb) in enumerate(zip(
                    z[f"{cam}_frame"], z[f"{cam}_box"], z[f"{cam}_score"], z[f"{cam}_class_id"],
                    z[f"{cam}_embedding"])):
                frames[int(i)].detections[cam].append(Detection(
                    box=box.copy(), score=float(score), class_id=int(class_id), class_name=str(names[j]),
                    embedding=emb.copy() if has[j] else None))
    return meta, frames
