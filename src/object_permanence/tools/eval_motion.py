"""Choose the ghost's motion model by the tracking evaluation (issue 8, item 2a).

Candidates: constant velocity (``cv``), damped velocity (``damped``, a grid of time constants) and
the CV + CA interacting multiple model (``imm``, a grid of jerk densities and switch times), each
run as our world model (the shipped ``config/world_model.yaml`` with only ``motion_model``
changed) on the same simulated detections (``realistic`` detector, every scenario):

1. **Tuning** on seeds 0-4 (< 1000 only): every candidate; the objective, per candidate over all
   sequences, is ``(HOTA + IDF1) / 2 + occlusion recovery + recovery of the episodes of at most 30
   frames + share of episodes whose reacquire error is below 20 px`` (identity, the identity kept
   through occlusions, the bar's occlusions, and the ghost's prediction against the bar; each in
   [0, 1], so that no term outweighs the others: the mean reacquire error is not bounded, a few
   objects that left the view for seconds would decide it). The best setting of each model goes on.
2. **Held out** on seeds 1000-1004 (+ TUD-Campus with dropouts unless ``--no-tud``): the three
   chosen settings, per scenario: HOTA, IDF1, ID switches / 100 frames, occlusion recovery (all
   episodes of >= 10 frames, and those of at most 30 frames: the bar), reacquire error (px) and
   ghost precision, scored by the shared metrics of :mod:`~object_permanence.core.eval.tracking_eval`.

Writes ``<out>/motion_models.json`` (tuning objective of every candidate, the chosen settings, the
held-out rows per dataset and pooled over the simulated ones) and ``motion_models.md``; the tuning
part also as ``motion_models_tuning.json`` as soon as it is done.

    python -m object_permanence.tools.eval_motion --out out/eval [--tune-seeds 0-4]
        [--seeds 1000-1004] [--scenarios clean,crossing] [--frames N] [--workers 2] [--no-tud]
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import multiprocessing
import shlex
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from object_permanence.core.appearance import ColorHistogramEmbedder
from object_permanence.core.eval.occlusion import find_episodes
from object_permanence.core.eval.peers import make_tracker
from object_permanence.core.eval.records import CameraIndex
from object_permanence.core.eval.sequences import EvalSequence, simulate_sequences
from object_permanence.core.eval.tracking_eval import SequenceScore, aggregate, build_records, run_tracker, \
    score_run
from object_permanence.core.eval.tud_campus import DATASET as TUD_DATASET
from object_permanence.core.eval.tud_campus import tud_sequence
from object_permanence.core.motion_models import register_variant
from object_permanence.core.sim.scenarios import SCENARIOS
from object_permanence.core.world_model_config import WorldModelConfig
from object_permanence.tools.eval_tracking import (
    DEFAULT_WORKERS,
    HELD_OUT_SEED,
    _names,
    default_tud_path,
    parse_seeds,
    shipped_embedding_bins,
    shipped_world_model_config,
)

DIFFICULTY = "realistic"
#: The dataset name of the rows pooled over every simulated scenario.
ALL_SIMULATED = "all simulated"
#: The bar's occlusion length: identity kept through full occlusions of at most this many frames.
SHORT_EPISODE_FRAMES = 30
#: (base model, constants) of every candidate.
GRID: tuple[tuple[str, dict[str, float]], ...] = (
    ("cv", {}),
    *(("damped", {"time_constant_s": t}) for t in (0.5, 1.0, 2.0, 4.0, 8.0)),
    *(("imm", {"jerk_std_frac": j, "switch_time_s": s}) for j in (0.1, 0.25) for s in (1.0, 4.0)),
)
#: The bar on the reacquire error, pixels (the objective counts the episodes below it).
REACQUIRE_BAR_PX = 20.0


@dataclasses.dataclass
class MotionScore:
    """One candidate's :class:`SequenceScore` on one sequence plus its episodes of at most
    :data:`SHORT_EPISODE_FRAMES` frames (all cameras)."""

    score: SequenceScore
    short_episodes: int = 0
    short_recovered: int = 0
    short_errors: list[float] = dataclasses.field(default_factory=list)


def candidate_name(base: str, constants: dict[str, float]) -> str:
    """The ``motion_model`` name of a candidate, registered in this process (workers fork after)."""
    return register_variant(base, **constants) if constants else base


def score_candidate(seq: EvalSequence, config: WorldModelConfig, name: str) -> MotionScore:
    """Run our world model with motion model ``name`` on ``seq`` and score it."""
    cfg = dataclasses.replace(config, motion_model=name)
    tracks = run_tracker(seq, lambda: make_tracker("ours", cfg, {}, seq.fps))
    score = score_run(seq, name, tracks)
    out = MotionScore(score)
    records = build_records(seq, tracks)
    for cam in seq.streams:
        for ep in find_episodes(CameraIndex(records, cam)):
            if ep.gap[1] - ep.gap[0] <= SHORT_EPISODE_FRAMES:
                out.short_episodes += 1
                out.short_recovered += int(ep.recovered)
                if ep.error_px is not None:
                    out.short_errors.append(float(ep.error_px))
    return out


def _job(names: Sequence[str], config: WorldModelConfig, bins: tuple[int, int, int], frames: int | None,
         job: tuple[str, int, str | None]) -> list[MotionScore]:
    scenario, seed, tud = job
    if tud is not None:
        seq = tud_sequence(Path(tud), seed)
    else:
        seq = simulate_sequences(scenario, seed, [DIFFICULTY], frames,
                                 embedder=ColorHistogramEmbedder(bins=bins))[DIFFICULTY]
    return [score_candidate(seq, config, name) for name in names]


def run_grid(names: Sequence[str], config: WorldModelConfig, bins: tuple[int, int, int], frames: int | None,
             jobs: Sequence[tuple[str, int, str | None]], workers: int) -> list[MotionScore]:
    """Every candidate on every (scenario, seed, TUD path or None) job, in ``workers`` processes."""
    work = functools.partial(_job, tuple(names), config, bins, frames)
    with tqdm(total=len(jobs), desc=f"{len(names)} motion models", unit="sequence", disable=None) as bar:
        if workers <= 1:
            results = [bar.update() or work(job) for job in jobs]
        else:
            with multiprocessing.get_context("fork").Pool(workers) as pool:
                results = []
                for r in pool.imap(work, jobs, chunksize=1):  # in job order: the sums do not depend on timing
                    results.append(r)
                    bar.update()
    return [s for r in results for s in r]


def summarise(scores: Sequence[MotionScore]) -> dict[str, Any]:
    """One row (keys of ``tracking.json`` + the short-episode recovery) over ``scores`` of one
    candidate and dataset."""
    row = aggregate([s.score for s in scores])
    short = sum(s.short_episodes for s in scores)
    row["short_occlusion_episodes"] = short
    row["short_occlusion_recovery_rate"] = sum(s.short_recovered for s in scores) / short if short else None
    row["episodes"] = sum(s.score.episodes for s in scores)
    errors = [e for s in scores for e in s.score.reacquire_errors]
    row["reacquire_samples"] = len(errors)
    row["reacquire_error_median_px"] = statistics.median(errors) if errors else None
    row["reacquire_within_bar_rate"] = sum(e < REACQUIRE_BAR_PX for e in errors) / row["episodes"] \
        if row["episodes"] else None
    short_errors = [e for s in scores for e in s.short_errors]
    row["short_reacquire_error_px"] = statistics.fmean(short_errors) if short_errors else None
    return row


def objective(scores: Sequence[MotionScore]) -> dict[str, float]:
    """The tuning objective (module docstring) and its parts over all sequences of one candidate;
    the mean and median reacquire errors are reported beside it."""
    identity = statistics.fmean((s.score.hota + s.score.idf1) / 2.0 for s in scores)
    episodes = sum(s.score.episodes for s in scores)
    recovery = sum(s.score.recovered for s in scores) / episodes if episodes else 0.0
    short = sum(s.short_episodes for s in scores)
    short_recovery = sum(s.short_recovered for s in scores) / short if short else 0.0
    errors = [e for s in scores for e in s.score.reacquire_errors]
    within = sum(e < REACQUIRE_BAR_PX for e in errors) / episodes if episodes else 0.0  # no sample: a miss
    return {"objective": identity + recovery + short_recovery + within, "identity": identity, "recovery": recovery,
            "short_recovery": short_recovery, "reacquire_within_bar": within,
            "reacquire_error_px": statistics.fmean(errors) if errors else 0.0,
            "reacquire_error_median_px": statistics.median(errors) if errors else 0.0}


def _by(scores: Sequence[MotionScore], tracker: str, dataset: str | None = None) -> list[MotionScore]:
    return [s for s in scores if s.score.tracker == tracker and (dataset is None or s.score.dataset == dataset)]


_COLUMNS = (("HOTA", "hota", 100), ("IDF1", "idf1", 100), ("ID sw./100 fr.", "id_switches_per_100_frames", 1),
            ("occl. recovery", "occlusion_recovery_rate", 100),
            ("recovery ≤30 fr.", "short_occlusion_recovery_rate", 100),
            ("reacq. error px", "reacquire_error_px", 1), ("median", "reacquire_error_median_px", 1),
            ("≤30 fr. error px", "short_reacquire_error_px", 1),
            ("error < 20 px", "reacquire_within_bar_rate", 100), ("ghost precision", "ghost_precision", 100))


def markdown(doc: dict[str, Any]) -> str:
    """``motion_models.md``: the tuning objectives and the held-out table."""
    lines = ["# Motion model of the ghosts: constant velocity vs damped velocity vs IMM\n",
             f"`{doc['command']}` — {doc['elapsed_min']:.1f} min; `{DIFFICULTY}` detector, our world model with the "
             f"shipped config and only `motion_model` changed.\n",
             f"## Tuning (seeds {doc['tune_seeds'][0]}–{doc['tune_seeds'][-1]}, every scenario)\n",
             f"`{doc.get('tuning_command', doc['command'])}`\n",
             f"objective = (HOTA + IDF1)/2 + occlusion recovery + recovery ≤30 fr. + share of episodes with "
             f"reacquire error < {REACQUIRE_BAR_PX:g} px\n",
             "| candidate | objective | (HOTA+IDF1)/2 % | occl. recovery % | recovery ≤30 fr. % | "
             f"error < {REACQUIRE_BAR_PX:g} px % | reacq. error px (median) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, o in sorted(doc["tuning"].items(), key=lambda kv: -kv[1]["objective"]):
        lines.append(f"| `{name}` | {o['objective']:.4f} | {100 * o['identity']:.1f} | {100 * o['recovery']:.1f} | "
                     f"{100 * o['short_recovery']:.1f} | {100 * o['reacquire_within_bar']:.1f} | "
                     f"{o['reacquire_error_px']:.1f} ({o['reacquire_error_median_px']:.1f}) |")
    lines += ["", f"Chosen per model: " + ", ".join(f"`{v}`" for v in doc["chosen"].values()) + "\n",
              f"## Held out (seeds {doc['seeds'][0]}–{doc['seeds'][-1]}), per dataset\n",
              "| dataset | model | " + " | ".join(c[0] for c in _COLUMNS) + " | episodes (≤30 fr.) |",
              "|---|---|" + "---:|" * (len(_COLUMNS) + 1)]
    for row in doc["held_out"]:
        cells = ["—" if row[k] is None else f"{row[k] * f:.1f}" if f == 100 else f"{row[k]:.2f}"
                 for _, k, f in _COLUMNS]
        lines.append(f"| {row['dataset']} | `{row['tracker']}` | " + " | ".join(cells)
                     + f" | {row['episodes']} ({row['short_occlusion_episodes']}) |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit code (2: bad arguments or inputs)."""
    parser = argparse.ArgumentParser(prog="eval_motion", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("out/eval"), help="output folder (default out/eval)")
    parser.add_argument("--tune-seeds", default="0-4", help="tuning seeds, < 1000 (default 0-4)")
    parser.add_argument("--seeds", default=f"{HELD_OUT_SEED}-{HELD_OUT_SEED + 4}",
                        help="held-out seeds, >= 1000 (default 1000-1004)")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated (default: all)")
    parser.add_argument("--frames", type=int, default=None, help="frames per sequence (default: full length)")
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS, help="processes")
    parser.add_argument("--config-dir", type=Path, default=Path("config"), help="folder of world_model.yaml")
    parser.add_argument("--no-tud", action="store_true", help="leave TUD-Campus out of the held-out report")
    parser.add_argument("--reuse-tuning", action="store_true",
                        help="skip tuning: take the chosen models from <out>/motion_models_tuning.json of an earlier run")
    args = parser.parse_args(argv)
    command = "python -m object_permanence.tools.eval_motion " + shlex.join(
        list(argv) if argv is not None else sys.argv[1:])
    try:
        tune_seeds, seeds = parse_seeds(args.tune_seeds), parse_seeds(args.seeds)
        scenarios = _names(args.scenarios, list(SCENARIOS), "--scenarios")
    except ValueError as exc:
        parser.error(str(exc))
    if tune_seeds[-1] >= HELD_OUT_SEED or seeds[0] < HELD_OUT_SEED:
        parser.error(f"--tune-seeds must be < {HELD_OUT_SEED} and --seeds >= {HELD_OUT_SEED}")
    if (args.frames is not None and args.frames < 1) or args.workers < 1:
        parser.error("--frames and --workers must be >= 1")
    try:
        config = shipped_world_model_config(args.config_dir)
        bins = shipped_embedding_bins(args.config_dir)
    except (OSError, ValueError) as exc:
        print(f"eval_motion: error: {exc}", file=sys.stderr)
        return 2
    tud = None if args.no_tud else default_tud_path()
    if tud is not None and not tud.is_file():
        print(f"eval_motion: error: TUD-Campus ground truth not found at {tud} (or pass --no-tud)", file=sys.stderr)
        return 2
    start = time.perf_counter()
    names = {candidate_name(base, c): base for base, c in GRID}
    tuning: list[MotionScore] = []
    if args.reuse_tuning:
        try:
            earlier = json.loads((args.out / "motion_models_tuning.json").read_text(encoding="utf-8"))
            objectives, chosen, tune_seeds = earlier["tuning"], earlier["chosen"], earlier["tune_seeds"]
            tuning_command = earlier["command"]
        except (OSError, ValueError, KeyError) as exc:
            print(f"eval_motion: error: no earlier tuning to reuse ({exc})", file=sys.stderr)
            return 2
        unknown = set(chosen.values()) - set(names)
        if unknown:
            print(f"eval_motion: error: the earlier tuning chose {sorted(unknown)}, not in the grid", file=sys.stderr)
            return 2
    else:
        tuning_command = command
        tuning = run_grid(list(names), config, bins, args.frames,
                          [(s, k, None) for s in scenarios for k in tune_seeds], args.workers)
        objectives = {name: objective(_by(tuning, name)) for name in names}
        chosen = {base: max((n for n, b in names.items() if b == base), key=lambda n: objectives[n]["objective"])
                  for base in dict.fromkeys(names.values())}
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "motion_models_tuning.json").write_text(json.dumps(
            {"command": command, "tune_seeds": tune_seeds, "tuning": objectives, "chosen": chosen,
             "tuning_rows": [summarise(_by(tuning, name, d)) for d in scenarios for name in names]},
            indent=2) + "\n", encoding="utf-8")  # kept even if the held-out stage fails
    jobs = [(s, k, None) for s in scenarios for k in seeds] + ([("", k, str(tud)) for k in seeds] if tud else [])
    held = run_grid(list(chosen.values()), config, bins, args.frames, jobs, args.workers)
    tuning_rows = [summarise(_by(tuning, name, d)) for d in scenarios for name in names] if tuning else \
        json.loads((args.out / "motion_models_tuning.json").read_text(encoding="utf-8")).get("tuning_rows", [])
    datasets = [*scenarios, *([TUD_DATASET] if tud else [])]
    rows = [summarise(_by(held, name, d)) for d in datasets for name in chosen.values()]
    sim = [s for s in held if s.score.dataset != TUD_DATASET]
    pooled = [dataclasses.replace(s, score=dataclasses.replace(s.score, dataset=ALL_SIMULATED)) for s in sim]
    rows += [summarise(_by(pooled, name)) for name in chosen.values()]
    doc = {"command": command, "tuning_command": tuning_command, "elapsed_min": (time.perf_counter() - start) / 60, "difficulty": DIFFICULTY,
           "tune_seeds": tune_seeds, "seeds": seeds, "frames": args.frames or "full length",
           "objective": "(HOTA + IDF1) / 2 + occlusion recovery + recovery of episodes <= 30 frames + share of "
                        f"episodes with reacquire error < {REACQUIRE_BAR_PX:g} px, over all tuning sequences",
           "tuning": objectives, "chosen": chosen, "tuning_rows": tuning_rows, "held_out": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "motion_models.json").write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    (args.out / "motion_models.md").write_text(markdown(doc), encoding="utf-8")
    print(markdown(doc))
    print(f"eval_motion: wrote {args.out / 'motion_models.json'} and motion_models.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
