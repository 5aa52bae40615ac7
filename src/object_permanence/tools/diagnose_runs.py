"""What the world-model diagnosis tools share: their command line (scenarios, tuning seeds, workers),
one (scenario, seed) simulated, detected and tracked as ``make eval`` does, and the runs spread
over worker processes."""
from __future__ import annotations

import argparse
import multiprocessing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from object_permanence.core.appearance import ColorHistogramEmbedder
from object_permanence.core.detection.simulated import DIFFICULTIES
from object_permanence.core.eval.peers import make_tracker
from object_permanence.core.eval.records import FrameRecord
from object_permanence.core.eval.sequences import EvalSequence, simulate_sequences
from object_permanence.core.eval.tracking_eval import build_records, run_tracker
from object_permanence.core.sim.scenarios import SCENARIOS
from object_permanence.tools.eval_tracking import (
    HELD_OUT_SEED,
    parse_seeds,
    shipped_embedding_bins,
    shipped_world_model_config,
)


def run_parser(prog: str, description: str | None, out_help: str) -> argparse.ArgumentParser:
    """A diagnosis tool's parser with the shared ``--scenarios --seeds --difficulty --frames
    --config-dir --out --workers --allow-held-out`` (``out_help``: what ``--out`` writes)."""
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", default="cluttered,noisy,long_occlusion,crossing,reentry")
    parser.add_argument("--seeds", default="10-29", help="seeds, e.g. 10-29 (tuning seeds < 1000)")
    parser.add_argument("--difficulty", default="realistic", choices=DIFFICULTIES)
    parser.add_argument("--frames", type=int, default=None, help="frames per run (default: the scenario's)")
    parser.add_argument("--config-dir", type=Path, default=Path("config"))
    parser.add_argument("--out", type=Path, default=None, help=out_help)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--allow-held-out", action="store_true", help="allow seeds >= 1000 (confirmation only)")
    return parser


def run_jobs_of(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[list[str], list[int]]:
    """The scenarios and seeds of ``args`` (``parser.error`` on an unknown scenario, a held-out seed
    without ``--allow-held-out``, or fewer than one worker)."""
    scenarios = [s for s in args.scenarios.split(",") if s]
    unknown = sorted(set(scenarios) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenarios {unknown}; allowed: {', '.join(SCENARIOS)}")
    seeds = parse_seeds(args.seeds)
    if any(s >= HELD_OUT_SEED for s in seeds) and not args.allow_held_out:
        parser.error(f"seeds >= {HELD_OUT_SEED} are held out; pass --allow-held-out for a confirmation run")
    if args.workers < 1:
        parser.error("--workers must be >= 1")
    return scenarios, seeds


def tracked_records(scenario: str, seed: int, difficulty: str, config_dir: Path,
                    n_frames: int | None) -> tuple[EvalSequence, list[FrameRecord]]:
    """One (scenario, seed) simulated, detected at ``difficulty`` and tracked by the shipped world
    model of ``config_dir``, as ``make eval`` does: the sequence and its records."""
    wm = shipped_world_model_config(config_dir)
    embedder = ColorHistogramEmbedder(bins=shipped_embedding_bins(config_dir))
    seq = simulate_sequences(scenario, seed, (difficulty,), n_frames, embedder=embedder)[difficulty]
    return seq, build_records(seq, run_tracker(seq, lambda: make_tracker("ours", wm, {}, seq.fps)))


def run_jobs(run: Callable[[tuple[str, int]], Any], jobs: Sequence[tuple[str, int]], workers: int) -> list[Any]:
    """``run`` on every job, in order, ``workers`` processes at a time (here when 1), with progress."""
    if workers == 1:
        return [run(j) for j in tqdm(jobs, desc="diagnose", unit="run")]
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        return list(tqdm(pool.imap(run, jobs), total=len(jobs), desc="diagnose", unit="run"))
