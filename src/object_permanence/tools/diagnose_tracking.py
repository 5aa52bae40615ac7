"""Where two trackers' detection figures differ: misses at a track's birth or later, and box accuracy.

    python -m object_permanence.tools.diagnose_tracking [--dataset TUD-Campus|<scenario>]
        [--seeds 0-19] [--trackers ours,bytetrack] [--difficulty realistic] [--out FILE]

Each sequence (TUD-Campus perturbed with the seed, or a simulated scenario; the detections
``tools/eval_tracking`` feeds every tracker) is tracked by each tracker, and every ground-truth
``OBJECT`` entry the MOT metrics score (``visibility >= 0.25``, as ``core/eval/mot.py``) is
matched one to one with the tracker's VISIBLE boxes of its frame (Hungarian, IoU ≥ 0.5,
:func:`core.eval.matching.match_frame`). Per tracker, summed over cameras and averaged over the
sequences:

* ``births_missed``: entries left unmatched within the first ``--birth-frames`` (3) frames of a
  *visible run* of the object (its first appearance, or its return after frames below the
  visibility threshold: a tracker that publishes a track later misses these);
* ``later_missed``: entries unmatched after that (dropouts bridged or not, losses);
* ``mean_iou``: mean IoU of the matched pairs (box accuracy, HOTA's LocA on these pairs).

``detections`` is the same for the raw detections (an upper bound on recall; their IoU is what a
tracker that publishes the detection box gets). Tuning seeds only (< 1000) unless
``--allow-held-out``. Prints a table; ``--out`` writes it as JSON.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from object_permanence.core.appearance import ColorHistogramEmbedder
from object_permanence.core.eval.matching import box_iou, match_frame
from object_permanence.core.eval.peers import PEER_NAMES, TRACKER_NAMES, make_tracker, read_peer_params
from object_permanence.core.detection.simulated import DIFFICULTIES
from object_permanence.core.eval.sequences import EvalSequence, simulate_sequences
from object_permanence.core.eval.tracking_eval import run_tracker
from object_permanence.core.eval.tud_campus import DATASET as TUD_DATASET
from object_permanence.core.eval.tud_campus import tud_sequence
from object_permanence.core.sim.scenarios import SCENARIOS
from object_permanence.core.types import Detection, GroundTruthObject, ObjectKind, Track, TrackState
from object_permanence.tools.eval_tracking import (
    HELD_OUT_SEED,
    default_tud_path,
    parse_seeds,
    shipped_embedding_bins,
    shipped_world_model_config,
)

#: Raw detections' row name in the table.
DETECTIONS = "detections"
#: IoU a published box needs with a ground-truth entry to cover it.
MATCH_IOU = 0.5
#: Entries below this visibility are not scored (the MOT metrics' ``min_visibility``).
MIN_VISIBILITY = 0.25


@dataclass
class MissBreakdown:
    """Counts of one tracker (or the raw detections) on one or more sequences."""

    births_missed: float = 0.0
    later_missed: float = 0.0
    matched: int = 0
    iou_sum: float = 0.0

    def __iadd__(self, other: MissBreakdown) -> MissBreakdown:
        self.births_missed += other.births_missed
        self.later_missed += other.later_missed
        self.matched += other.matched
        self.iou_sum += other.iou_sum
        return self

    @property
    def mean_iou(self) -> float:
        """Mean IoU of the matched pairs (NaN without any)."""
        return self.iou_sum / self.matched if self.matched else float("nan")


def miss_breakdown(truth: Sequence[Sequence[GroundTruthObject]], boxes: Sequence[np.ndarray],
                   birth_frames: int = 3) -> MissBreakdown:
    """Match each frame's scored ``OBJECT`` entries of ``truth`` to that frame's ``boxes`` ((M, 4)
    ``cx, cy, w, h``; module docstring).

    Raises:
        ValueError: ``truth`` and ``boxes`` of different lengths or ``birth_frames`` < 0.
    """
    if len(truth) != len(boxes):
        raise ValueError(f"truth has {len(truth)} frames, boxes {len(boxes)}")
    if birth_frames < 0:
        raise ValueError(f"birth_frames must be >= 0, got {birth_frames}")
    out = MissBreakdown()
    run_start: dict[int, int] = {}  # object id -> first frame of its current visible run
    for k, (entries, frame_boxes) in enumerate(zip(truth, boxes)):
        objects = [e for e in entries if e.kind == ObjectKind.OBJECT and e.visibility >= MIN_VISIBILITY]
        run_start = {e.object_id: run_start.get(e.object_id, k) for e in objects}  # a run ends when unscored
        if not objects:
            continue
        gt = np.array([e.box for e in objects], dtype=np.float64)
        hyp = np.asarray(frame_boxes, dtype=np.float64).reshape(-1, 4)
        pairs = match_frame(gt, hyp, MATCH_IOU) if len(hyp) else []
        for g, h in pairs:
            out.iou_sum += float(box_iou(gt[g:g + 1], hyp[h:h + 1])[0, 0])
        out.matched += len(pairs)
        covered = {g for g, _ in pairs}
        for i, e in enumerate(objects):
            if i in covered:
                continue
            if k - run_start[e.object_id] < birth_frames:
                out.births_missed += 1
            else:
                out.later_missed += 1
    return out


def _visible_boxes(frames: Sequence[Sequence[Track]]) -> list[np.ndarray]:
    return [np.array([t.box for t in f if t.state == TrackState.VISIBLE], dtype=np.float64).reshape(-1, 4)
            for f in frames]


def _detection_boxes(frames: Sequence[Sequence[Detection]]) -> list[np.ndarray]:
    return [np.array([d.box for d in f], dtype=np.float64).reshape(-1, 4) for f in frames]


def sequences(dataset: str, seeds: Sequence[int], difficulty: str, config_dir: Path) -> list[EvalSequence]:
    """The evaluation sequences of ``dataset`` (TUD-Campus or a scenario) for ``seeds``."""
    if dataset == TUD_DATASET:
        return [tud_sequence(default_tud_path(), s) for s in seeds]
    embedder = ColorHistogramEmbedder(bins=shipped_embedding_bins(config_dir))
    return [seq for s in seeds
            for seq in simulate_sequences(dataset, s, (difficulty,), None, embedder=embedder).values()]


def breakdown(seqs: Sequence[EvalSequence], trackers: Sequence[str], config_dir: Path,
              birth_frames: int = 3) -> dict[str, dict[str, float]]:
    """Per tracker and for the raw detections: misses at births and later (mean per sequence) and
    the mean IoU of matched boxes over all sequences."""
    wm_config = shipped_world_model_config(config_dir)
    peer_params = {}
    if set(trackers) & set(PEER_NAMES):
        document = yaml.safe_load((config_dir / "eval_peers.yaml").read_text(encoding="utf-8")) or {}
        peer_params = read_peer_params(document)
    totals = {name: MissBreakdown() for name in (*trackers, DETECTIONS)}
    for seq in seqs:
        runs = {name: run_tracker(seq, lambda: make_tracker(name, wm_config, peer_params, seq.fps))
                for name in trackers}
        for cam, stream in seq.streams.items():
            for name in totals:
                boxes = _detection_boxes(stream.detections) if name == DETECTIONS else _visible_boxes(runs[name][cam])
                totals[name] += miss_breakdown(stream.truth, boxes, birth_frames)
    n = max(len(seqs), 1)
    return {name: {"births_missed": t.births_missed / n, "later_missed": t.later_missed / n, "mean_iou": t.mean_iou}
            for name, t in totals.items()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="diagnose_tracking", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default=TUD_DATASET, choices=(TUD_DATASET, *SCENARIOS))
    parser.add_argument("--seeds", default="0-19", help="seeds, e.g. 0-19 (tuning seeds < 1000)")
    parser.add_argument("--trackers", default="ours,bytetrack",
                        help=f"comma-separated subset of {','.join(TRACKER_NAMES)}")
    parser.add_argument("--difficulty", default="realistic", choices=DIFFICULTIES,
                        help="detector difficulty of a simulated scenario (TUD-Campus has its own perturbation)")
    parser.add_argument("--birth-frames", type=int, default=3, help="frames of a track's start counted as its birth")
    parser.add_argument("--config-dir", type=Path, default=Path("config"))
    parser.add_argument("--out", type=Path, default=None, help="write the table as JSON here")
    parser.add_argument("--allow-held-out", action="store_true", help="allow seeds >= 1000 (confirmation only)")
    args = parser.parse_args(argv)
    seeds = parse_seeds(args.seeds)
    trackers = [t for t in args.trackers.split(",") if t]
    unknown = sorted(set(trackers) - set(TRACKER_NAMES))
    if unknown:
        parser.error(f"unknown trackers {unknown}; allowed: {', '.join(TRACKER_NAMES)}")
    if any(s >= HELD_OUT_SEED for s in seeds) and not args.allow_held_out:
        parser.error(f"seeds >= {HELD_OUT_SEED} are held out; pass --allow-held-out for a confirmation run")
    rows = breakdown(sequences(args.dataset, seeds, args.difficulty, args.config_dir), trackers, args.config_dir,
                     args.birth_frames)
    print(f"{args.dataset}, seeds {args.seeds}: per sequence, misses at birth (first {args.birth_frames} frames) "
          f"/ later, and mean IoU of matched boxes")
    for name, row in rows.items():
        print(f"  {name:12s} {row['births_missed']:8.2f} {row['later_missed']:8.2f} {row['mean_iou']:8.4f}")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"dataset": args.dataset, "seeds": seeds, "rows": rows}, indent=1) + "\n",
                            encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
