"""Appearance-memory ablation of the world model: ``ema`` vs ``bank`` vs ``dual``, each with the
LOST gallery, on the identity scenarios.

Our world model with the shipped ``config/world_model.yaml``, changing only ``appearance_memory``
(:mod:`object_permanence.core.appearance_memory`: an EMA of α = 0.9 as StrongSORT / BoT-SORT, a
100-feature bank as DeepSORT's ``nn_budget``, the dual working + episodic memory), runs on the same
simulated detections (with their colour-histogram embeddings) of every scenario and seed, and is
scored by the shared metrics of ``make eval`` (:mod:`object_permanence.core.eval.tracking_eval`) and
the re-entry metric (:mod:`object_permanence.core.eval.reentry`).

    python -m object_permanence.tools.ablate_appearance --out out/eval [--seeds 1000-1004]
        [--scenarios reentry,long_occlusion,crossing] [--difficulty realistic] [--workers 2]

Writes ``appearance_ablation.json`` (rows ``memory``, ``dataset``, ``difficulty``, ``seeds``, ``hota``,
``idf1``, ``id_switches_per_100_frames``, ``ghost_precision`` and the re-entry keys) and
``appearance_ablation.md``.
"""
from __future__ import annotations

import argparse
import functools
import json
import multiprocessing
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from object_permanence.core.appearance import ColorHistogramEmbedder
from object_permanence.core.appearance_memory import MEMORY_KINDS
from object_permanence.core.eval.peers import make_tracker
from object_permanence.core.eval.reentry import REENTRY_KEYS, add_reentry_columns
from object_permanence.core.eval.sequences import DIFFICULTIES, simulate_sequences
from object_permanence.core.eval.tracking_eval import rows_from_scores, run_tracker, score_run
from object_permanence.core.world_model import WorldModelConfig
from object_permanence.tools.eval_tracking import (
    DEFAULT_WORKERS,
    HELD_OUT_SEED,
    RunResult,
    lookalike_newcomers,
    parse_seeds,
    sequence_reentry,
    shipped_embedding_bins,
    shipped_world_model_config,
)

DEFAULT_SCENARIOS = ("reentry", "long_occlusion", "crossing")
#: Keys of every row of ``appearance_ablation.json``, in order.
ROW_KEYS = ("memory", "dataset", "difficulty", "seeds", "hota", "idf1", "id_switches_per_100_frames",
            "ghost_precision", *REENTRY_KEYS)


def run_job(config: WorldModelConfig, difficulty: str, bins: tuple[int, int, int],
            job: tuple[str, int]) -> list[RunResult]:
    """Every memory kind on one simulated ``(scenario, seed)``; results named ``ours-<kind>``."""
    scenario, seed = job
    seq = simulate_sequences(scenario, seed, [difficulty], embedder=ColorHistogramEmbedder(bins=bins))[difficulty]
    newcomers = lookalike_newcomers(scenario, seed)
    results = []
    for kind in MEMORY_KINDS:
        cfg = replace(config, appearance_memory=kind)
        tracks = run_tracker(seq, lambda: make_tracker("ours", cfg, {}, seq.fps))
        results.append(RunResult(score_run(seq, f"ours-{kind}", tracks), sequence_reentry(seq, tracks, newcomers)))
    return results


def ablation_rows(results: Sequence[RunResult], scenarios: Sequence[str]) -> list[dict[str, Any]]:
    """One row per memory kind and scenario (keys :data:`ROW_KEYS`), pooled over seeds."""
    names = [f"ours-{kind}" for kind in MEMORY_KINDS]
    rows = rows_from_scores([r.score for r in results], names, DIFFICULTIES, scenarios)
    add_reentry_columns(rows, [(r.score.dataset, r.score.difficulty, r.score.tracker, r.reentry) for r in results])
    return [{"memory": row["tracker"].removeprefix("ours-"), **{k: row[k] for k in ROW_KEYS[1:]}} for row in rows]


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "—"
    if key in ("hota", "idf1", "ghost_precision", "reentry_identity", "lookalike_errors"):
        return f"{100.0 * value:.1f}"
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def markdown(rows: Sequence[dict[str, Any]], command: str, elapsed_s: float) -> str:
    """The ablation table: one line per scenario and memory; percentages for the shares."""
    keys = ("hota", "idf1", "id_switches_per_100_frames", "ghost_precision", "reentry_returns", "reentry_identity",
            "lookalike_newcomers", "lookalike_errors")
    heads = ("HOTA", "IDF1", "ID sw. / 100 fr.", "ghost precision", "returns", "re-entry identity",
             "look-alikes", "look-alikes re-identified")
    seeds = rows[0]["seeds"] if rows else []
    warning = "" if not seeds or min(seeds) >= HELD_OUT_SEED else (
        f"**Not a held-out figure: seeds below {HELD_OUT_SEED} are tuning seeds.**\n\n")
    lines = [f"# Appearance memory ablation (world model with the LOST gallery)\n\n{warning}`{command}` — "
             f"{elapsed_s / 60:.1f} min, seeds {seeds}. Shares in %.\n",
             "| dataset | difficulty | memory | " + " | ".join(heads) + " |",
             "|---|---|---|" + "---:|" * len(heads)]
    lines += [f"| {r['dataset']} | {r['difficulty']} | {r['memory']} | "
              + " | ".join(_cell(k, r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the process exit code (2: bad arguments or inputs)."""
    parser = argparse.ArgumentParser(prog="ablate_appearance", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("out/eval"), help="output folder (default out/eval)")
    parser.add_argument("--seeds", default=f"{HELD_OUT_SEED}-{HELD_OUT_SEED + 4}",
                        help="world seeds (default 1000-1004)")
    parser.add_argument("--scenarios", default=",".join(DEFAULT_SCENARIOS), help="comma-separated scenarios")
    parser.add_argument("--difficulty", default="realistic", choices=DIFFICULTIES, help="detector difficulty")
    parser.add_argument("--config-dir", type=Path, default=Path("config"), help="folder of world_model.yaml")
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS, help="processes")
    args = parser.parse_args(argv)
    command = "python -m object_permanence.tools.ablate_appearance " + shlex.join(
        list(argv) if argv is not None else sys.argv[1:])
    try:
        seeds = parse_seeds(args.seeds)
        scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
        for s in scenarios:
            lookalike_newcomers(s, 0)  # ValueError on an unknown scenario
        config = shipped_world_model_config(args.config_dir)
        bins = shipped_embedding_bins(args.config_dir)
    except (OSError, ValueError) as exc:
        print(f"ablate_appearance: error: {exc}", file=sys.stderr)
        return 2
    if args.workers < 1:
        parser.error(f"--workers must be >= 1, got {args.workers}")
    jobs = [(s, seed) for s in scenarios for seed in seeds]
    work = functools.partial(run_job, config, args.difficulty, bins)
    start = time.perf_counter()
    if args.workers == 1:
        results = [r for job in jobs for r in work(job)]
    else:
        with multiprocessing.get_context("fork").Pool(args.workers) as pool:
            results = [r for part in pool.map(work, jobs) for r in part]
    elapsed = time.perf_counter() - start
    rows = ablation_rows(results, scenarios)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "appearance_ablation.json").write_text(json.dumps(rows, indent=2, allow_nan=False) + "\n",
                                                      encoding="utf-8")
    table = markdown(rows, command, elapsed)
    (args.out / "appearance_ablation.md").write_text(table, encoding="utf-8")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
