"""Tune the min-hits persistence baseline on the training seeds, then measure it on held-out seeds.

    python -m object_permanence.tools.tune_persistence --out out/tune

The baseline (``min_hits_baseline``: keep a track once it has ``min_hits`` matched frames whose mean
confidence is at least ``min_mean_score``) has two thresholds. They are chosen here, by grid
search, on the tuning protocol of DESIGN §3: seeds 0–999 (default 0–4), the ``realistic``
detector simulator, every scenario but ``reentry`` (kept out of tuning). The objective is the
per-track F1 of :func:`~object_permanence.core.eval.persistence.persistence_tracks` (ties: the
higher precision, then the smaller ``min_hits``, i.e. the faster decision).

The chosen pair is then scored, unchanged, on held-out seeds (default 1000–1004) for every scenario
at ``realistic`` and ``hard`` (never tuned on). Every sequence is run through the shipped world
model (``config/world_model.yaml``) and the persistence filter exactly as the nodes run them.
Writes ``<out>/persistence_baseline.json`` (the grid, the choice, the held-out figures) and prints
the ``config/persistence_filter.yaml`` values.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from object_permanence.core.eval.persistence import PersistenceTrackCounts, persistence_tracks
from object_permanence.core.eval.records import CameraIndex, FrameRecord
from object_permanence.core.eval.sequences import EvalSequence, simulate_sequences
from object_permanence.core.eval.peers import WorldModelTracker
from object_permanence.core.eval.tracking_eval import build_records, run_tracker
from object_permanence.core.persistence import MinHitsBaseline, MinHitsConfig, PersistenceFilter
from object_permanence.core.sim.scenarios import SCENARIOS
from object_permanence.core.types import Track
from object_permanence.core.world_model import WorldModelConfig
from object_permanence.tools.eval_tracking import parse_seeds, shipped_world_model_config

#: The scenario kept out of tuning (reported only).
HELD_OUT_SCENARIO = "reentry"
#: At most 8 hits (a quarter second at 30 Hz): the rule is also the node's fallback, and its F1 on the
#: tuning seeds still rises beyond (session 32: 0.80 at 8, 0.85 at 16 hits) by keeping every track
#: 17 frames late (median), which no pipeline wants.
MIN_HITS_GRID = (1, 2, 3, 4, 5, 6, 8)
MIN_SCORE_GRID = tuple(round(0.25 + 0.05 * i, 2) for i in range(11))  # 0.25 .. 0.75
HISTORY_LEN = 30  # as config/persistence_filter.yaml


@dataclass
class TrackedSequence:
    """One simulated sequence with the world model's published tracks per camera and frame."""

    seq: EvalSequence
    records: list[FrameRecord]  # ground truth, detections and tracks; decisions filled per candidate
    tracks: dict[str, list[list[Track]]]


def track_sequences(scenarios: Sequence[str], seeds: Sequence[int], difficulty: str, config: WorldModelConfig,
                    frames: int | None) -> list[TrackedSequence]:
    """Simulate, detect and track every (scenario, seed) once (the expensive part)."""
    out = []
    for scenario in tqdm(scenarios, desc=f"simulate + track ({difficulty})", unit="scenario"):
        for seed in seeds:
            seq = simulate_sequences(scenario, seed, (difficulty,), frames)[difficulty]
            tracks = run_tracker(seq, lambda: WorldModelTracker(config))
            out.append(TrackedSequence(seq, build_records(seq, tracks), tracks))
    return out


def score_baseline(data: Sequence[TrackedSequence], min_hits: int, min_mean_score: float) -> dict[str, float]:
    """Run the persistence filter with these thresholds over every sequence and pool the per-track
    figures of both cameras over all of them."""
    model = MinHitsBaseline(MinHitsConfig(min_hits=min_hits, min_mean_score=min_mean_score))
    pooled = PersistenceTrackCounts()
    for item in data:
        for cam, frames in item.tracks.items():
            filt = PersistenceFilter(model, HISTORY_LEN, sticky=True)
            for record, tracks in zip(item.records, frames):
                setattr(record, f"decisions_{cam}", filt.step(tracks).decisions)
        counts = persistence_tracks(item.records, indexes={c: CameraIndex(item.records, c) for c in item.tracks})
        for name in ("tracks", "real", "kept", "kept_real", "ever_kept", "ever_kept_real", "nuisance"):
            setattr(pooled, name, getattr(pooled, name) + getattr(counts, name))
        pooled.latency_real += counts.latency_real
        pooled.latency_nuisance += counts.latency_nuisance
    summary = pooled.as_counts()
    return {"min_hits": min_hits, "min_mean_score": min_mean_score, "precision": pooled.precision,
            "recall": pooled.recall, "f1": summary["persistence_f1"], "tracks": pooled.tracks,
            "real_tracks": pooled.real,
            "decided_within_3_frames": summary["persistence_decided_within_3"],
            "latency_real_frames_p50": summary["persistence_latency_real_frames_p50"]}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("out/tune"))
    parser.add_argument("--tune-seeds", default="0-4", help="training seeds (0-999), e.g. 0-4")
    parser.add_argument("--eval-seeds", default="1000-1004", help="held-out seeds (>= 1000)")
    parser.add_argument("--frames", type=int, default=None, help="frames per sequence (default: the scenario's)")
    parser.add_argument("--config-dir", type=Path, default=Path("config"), help="where world_model.yaml is")
    args = parser.parse_args(argv)
    tune_seeds, eval_seeds = parse_seeds(args.tune_seeds), parse_seeds(args.eval_seeds)
    if max(tune_seeds) >= 1000 or min(eval_seeds) < 1000:
        parser.error("tuning seeds must lie in 0-999 and held-out seeds at 1000 or above")
    config = shipped_world_model_config(args.config_dir)
    tune_scenarios = [s for s in sorted(SCENARIOS) if s != HELD_OUT_SCENARIO]
    data = track_sequences(tune_scenarios, tune_seeds, "realistic", config, args.frames)
    grid = [score_baseline(data, h, s) for h in tqdm(MIN_HITS_GRID, desc="grid (min_hits)", unit="value")
            for s in MIN_SCORE_GRID]
    best = max(grid, key=lambda r: (round(r["f1"], 6), r["precision"], -r["min_hits"]))
    held_out = []
    for difficulty in ("realistic", "hard"):
        for scenario in sorted(SCENARIOS):
            test = track_sequences([scenario], eval_seeds, difficulty, config, args.frames)
            held_out.append({"scenario": scenario, "difficulty": difficulty, "seeds": args.eval_seeds,
                             **score_baseline(test, best["min_hits"], best["min_mean_score"])})
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"command": "python -m object_permanence.tools.tune_persistence " + " ".join(argv or sys.argv[1:]),
              "tuning": {"seeds": args.tune_seeds, "scenarios": tune_scenarios, "difficulty": "realistic"},
              "chosen": best, "grid": grid, "held_out": held_out}
    (args.out / "persistence_baseline.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"chosen on seeds {args.tune_seeds}: min_hits {best['min_hits']}, min_mean_score {best['min_mean_score']} "
          f"(tuning F1 {best['f1']:.3f}, precision {best['precision']:.3f}, recall {best['recall']:.3f})")
    print("held out (per track):")
    for row in held_out:
        print(f"  {row['scenario']:<15} {row['difficulty']:<9} precision {row['precision']:.3f} "
              f"recall {row['recall']:.3f} F1 {row['f1']:.3f} ({row['tracks']} tracks)")
    print(f"written: {args.out / 'persistence_baseline.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
