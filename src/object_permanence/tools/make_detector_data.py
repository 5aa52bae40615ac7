"""Render a YOLO-format detection data set from the simulated world.

    python -m object_permanence.tools.make_detector_data --out out/detector/data

Every scenario, both cameras, every ``--stride``-th frame of each (scenario, seed) run (a few
frames per run from many seeds: many layouts, textures and backgrounds rather than near-duplicate
neighbouring frames). Splits by seed (DESIGN §3): ``train`` and ``val`` on seeds 0-999 (train
0-899, val 900-999), ``test`` on held-out seeds >= 1000. Labels follow
:mod:`object_permanence.core.sim.yolo_labels` (visible boxes of real objects; reflections, glare
and false positives are unlabelled distractors). Writes::

    <out>/images/{train,val,test}/<scenario>_s<seed>_f<frame>_<camera>.jpg
    <out>/labels/{train,val,test}/<same stem>.txt
    <out>/data.yaml      (Ultralytics data file, absolute path, class names)
    <out>/summary.json   (images, labels per class, distractors per kind, per split)

Deterministic: the same arguments give the same files (JPEG encoding included).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from object_permanence.core.sim.rig import CAMERA_SIDES, StereoRig
from object_permanence.core.sim.scenarios import CLASS_NAMES, SCENARIOS, make_scenario
from object_permanence.core.sim.world import SimWorld
from object_permanence.core.sim.yolo_labels import LabelPolicy, format_label_rows, yolo_label_rows
from object_permanence.core.types import ObjectKind
from object_permanence.tools.eval_tracking import parse_seeds

SPLITS = ("train", "val", "test")
SPLIT_SEED_RANGES = {"train": (0, 899), "val": (900, 999), "test": (1000, None)}  # DESIGN §3 protocol


@dataclass
class SplitSummary:
    """What one split holds: image and label counts, and the unlabelled distractors it shows."""

    images: int = 0
    runs: int = 0
    labels_per_class: dict[str, int] = field(default_factory=lambda: {name: 0 for name in CLASS_NAMES})
    distractors: dict[str, int] = field(default_factory=lambda: {
        kind.name.lower(): 0 for kind in ObjectKind if kind != ObjectKind.OBJECT})
    unlabelled_objects: int = 0  # real objects in view but under the LabelPolicy cut


def run_frames(n_frames: int, seed: int, stride: int, max_frames: int | None = None) -> list[int]:
    """Frame indices sampled from a run: every ``stride``-th, starting at a seed-dependent offset.

    The offset ``(7 * seed) % stride`` spreads the sampled phases of the scripted motions over seeds.
    """
    if stride < 1:
        raise ValueError(f"run_frames: stride must be >= 1, got {stride!r}")
    frames = list(range((7 * seed) % stride, n_frames, stride))
    return frames[:max_frames] if max_frames is not None else frames


def check_split_seeds(split: str, seeds: Sequence[int]) -> None:
    """Raise ValueError when a seed lies outside its split's range (the held-out protocol)."""
    low, high = SPLIT_SEED_RANGES[split]
    bad = [s for s in seeds if s < low or (high is not None and s > high)]
    if bad:
        raise ValueError(f"make_detector_data: {split} seeds must lie in {low}-{high if high is not None else ''}, "
                         f"got {bad[:5]}")


def render_split(out: Path, split: str, seeds: Sequence[int], scenarios: Sequence[str], stride: int,
                 policy: LabelPolicy = LabelPolicy(), max_frames: int | None = None, jpeg_quality: int = 92,
                 progress: bool = True) -> SplitSummary:
    """Render and label one split under ``out/images/<split>`` and ``out/labels/<split>``."""
    check_split_seeds(split, seeds)
    image_dir, label_dir = out / "images" / split, out / "labels" / split
    for folder in (image_dir, label_dir):
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
    label_dir.with_suffix(".cache").unlink(missing_ok=True)  # Ultralytics' label cache of the old split
    summary = SplitSummary()
    encode = [int(cv2.IMWRITE_JPEG_QUALITY), int(jpeg_quality)]
    with tqdm(total=len(scenarios) * len(seeds), desc=f"render {split}", unit="run", disable=not progress) as bar:
        for scenario in scenarios:
            config = make_scenario(scenario)
            for seed in seeds:
                world = SimWorld(config, seed)
                summary.runs += 1
                for k in run_frames(config.n_frames, seed, stride, max_frames):
                    truth = world.ground_truth(k)
                    images = world.render(k)
                    for camera, image in zip(CAMERA_SIDES, images):
                        entries = getattr(truth, camera)
                        rows = yolo_label_rows(entries, world.rig.width, world.rig.height, policy)
                        stem = f"{scenario}_s{seed:04d}_f{k:04d}_{camera}"
                        if not cv2.imwrite(str(image_dir / f"{stem}.jpg"), image, encode):
                            raise OSError(f"make_detector_data: could not write {image_dir / stem}.jpg")
                        (label_dir / f"{stem}.txt").write_text(format_label_rows(rows))
                        summary.images += 1
                        _count(summary, entries, rows)
                bar.update()
    return summary


def _count(summary: SplitSummary, entries, rows: np.ndarray) -> None:
    """Add one image's labels and distractors to ``summary``."""
    for class_id, n in zip(*np.unique(rows[:, 0].astype(int), return_counts=True)):
        summary.labels_per_class[CLASS_NAMES[class_id]] += int(n)
    in_view = sum(1 for g in entries if g.kind == ObjectKind.OBJECT and g.visibility > 0.0)
    summary.unlabelled_objects += in_view - len(rows)
    for g in entries:
        if g.kind != ObjectKind.OBJECT:
            summary.distractors[g.kind.name.lower()] += 1


def write_data_yaml(out: Path) -> Path:
    """Write ``out/data.yaml`` for Ultralytics (absolute ``path``; no ``download`` key)."""
    lines = [f"path: {out.resolve()}", "train: images/train", "val: images/val", "test: images/test", "names:"]
    lines += [f"  {i}: {name}" for i, name in enumerate(CLASS_NAMES)]
    target = out / "data.yaml"
    target.write_text("\n".join(lines) + "\n")
    return target


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("out/detector/data"))
    parser.add_argument("--train-seeds", default="0-29", help="seeds in 0-899")
    parser.add_argument("--val-seeds", default="900-901", help="seeds in 900-999")
    parser.add_argument("--test-seeds", default="1000-1004", help="held-out seeds >= 1000")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated scenario names")
    parser.add_argument("--stride", type=int, default=30, help="take every N-th frame of each run")
    parser.add_argument("--max-frames", type=int, default=None, help="at most this many frames per run")
    parser.add_argument("--min-visibility", type=float, default=LabelPolicy.min_visibility)
    parser.add_argument("--min-side-px", type=float, default=LabelPolicy.min_side_px)
    parser.add_argument("--jpeg-quality", type=int, default=92)
    parser.add_argument("--splits", default=",".join(SPLITS))
    args = parser.parse_args(argv)
    scenarios = [s for s in args.scenarios.split(",") if s]
    for name in scenarios:
        make_scenario(name)  # ValueError naming the allowed scenarios
    splits = [s for s in args.splits.split(",") if s]
    if not splits or any(s not in SPLITS for s in splits):
        parser.error(f"--splits must name some of {SPLITS}, got {args.splits!r}")
    policy = LabelPolicy(args.min_visibility, args.min_side_px)
    args.out.mkdir(parents=True, exist_ok=True)
    summaries = {}
    for split in splits:
        seeds = parse_seeds(getattr(args, f"{split}_seeds"))
        summaries[split] = asdict(render_split(args.out, split, seeds, scenarios, args.stride, policy,
                                               args.max_frames, args.jpeg_quality))
        summaries[split]["seeds"] = getattr(args, f"{split}_seeds")
    write_data_yaml(args.out)
    previous = args.out / "summary.json"  # a split rendered alone (make eval: test) keeps the others' record
    kept = json.loads(previous.read_text()).get("splits", {}) if previous.exists() else {}
    summary = {"splits": {**{k: v for k, v in kept.items() if k not in summaries}, **summaries},
               "scenarios": scenarios, "stride": args.stride, "max_frames": args.max_frames,
               "label_policy": asdict(policy), "classes": list(CLASS_NAMES),
               "image_size": [StereoRig().width, StereoRig().height]}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({s: {"images": v["images"], "labels": v["labels_per_class"]} for s, v in summaries.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
