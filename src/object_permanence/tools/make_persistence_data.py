"""Generate the labelled track sequences the learned persistence filter is trained and judged on.

    python -m object_permanence.tools.make_persistence_data --out out/persistence/data

Every scenario, both detector presets (``realistic``, ``hard``), the shipped world model
(``config/world_model.yaml``). Splits by seed (DESIGN §3): ``train`` and ``val`` on seeds 0-999,
``test`` on held-out seeds >= 1000, ``nuisance`` the held-out nuisance setting
(:data:`dataset.HELD_OUT_NUISANCE`, never in train or val) on held-out seeds. Writes
``<out>/<split>.npz`` (:class:`dataset.TrackSequences`) and ``<out>/summary.json``.
``--workers N`` runs N (scenario, seed) runs at a time in separate processes; the result is the
same as with one (each run is deterministic by its seed and the parts are joined in job order).
"""
from __future__ import annotations

import argparse
import functools
import json
import multiprocessing
import sys
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from object_permanence.core.persistence.dataset import (
    HELD_OUT_NUISANCE,
    HELD_OUT_NUISANCE_NAME,
    TrackSequences,
    label_sequences,
    tracked_runs,
)
from object_permanence.core.persistence.features import StereoConfig
from object_permanence.core.sim.scenarios import SCENARIOS
from object_permanence.tools.eval_tracking import parse_seeds, shipped_world_model_config

DIFFICULTIES = ("realistic", "hard")


def _run_parts(job: tuple[tuple[str, dict | None, str], int], config, stereo: StereoConfig,
               frames: int | None) -> list[TrackSequences]:
    """Labelled sequences of one (scenario, overrides, name) job at one seed, every difficulty."""
    (scenario, overrides, name), seed = job
    return [label_sequences(run.records, run.tracks, seed, f"{run.name}-{run.difficulty}", stereo)
            for run in tracked_runs(scenario, seed, DIFFICULTIES, config, overrides, name, frames)]


def build_split(jobs: Sequence[tuple[str, dict | None, str]], seeds: Sequence[int], config, stereo: StereoConfig,
                frames: int | None, desc: str, workers: int = 1) -> TrackSequences:
    """Sequences of every (scenario, overrides, name) job and seed, in that order whatever ``workers``."""
    runs = [(job, seed) for job in jobs for seed in seeds]
    work = functools.partial(_run_parts, config=config, stereo=stereo, frames=frames)
    parts: list[TrackSequences] = []
    with tqdm(total=len(runs), desc=desc, unit="run") as bar:
        if workers > 1:
            with multiprocessing.get_context("spawn").Pool(workers) as pool:
                for got in pool.imap(work, runs):  # imap keeps job order: same output as one process
                    parts.extend(got)
                    bar.update()
        else:
            for run in runs:
                parts.extend(work(run))
                bar.update()
    return TrackSequences.concat(parts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("out/persistence/data"))
    parser.add_argument("--train-seeds", default="0-39")
    parser.add_argument("--val-seeds", default="40-49")
    parser.add_argument("--test-seeds", default="1000-1009")
    parser.add_argument("--nuisance-seeds", default="1000-1009")
    parser.add_argument("--frames", type=int, default=None, help="frames per run (default: the scenario's)")
    parser.add_argument("--splits", default="train,val,test,nuisance")
    parser.add_argument("--config-dir", type=Path, default=Path("config"))
    parser.add_argument("--workers", type=int, default=1, help="runs generated at a time (processes)")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"--workers must be >= 1, got {args.workers}")
    seeds = {s: parse_seeds(getattr(args, f"{s}_seeds")) for s in ("train", "val", "test", "nuisance")}
    if max(seeds["train"] + seeds["val"]) >= 1000 or min(seeds["test"] + seeds["nuisance"]) < 1000:
        parser.error("train/val seeds must lie in 0-999, test/nuisance seeds at 1000 or above")
    if set(seeds["train"]) & set(seeds["val"]):
        parser.error("train and val seeds overlap")
    config = shipped_world_model_config(args.config_dir)
    stereo = StereoConfig()
    every = [(s, None, s) for s in sorted(SCENARIOS)]
    nuisance = [(HELD_OUT_NUISANCE[0], HELD_OUT_NUISANCE[1], HELD_OUT_NUISANCE_NAME)]
    summary = {}
    for split in args.splits.split(","):
        jobs = nuisance if split == "nuisance" else every
        data = build_split(jobs, seeds[split], config, stereo, args.frames, split, args.workers)
        data.save(args.out / f"{split}.npz")
        summary[split] = {"seeds": getattr(args, f"{split}_seeds"), "tracks": len(data),
                          "real": int(data.labels.sum()), "rows": int(len(data.features))}
        print(f"{split}: {summary[split]}")
    (args.out / "summary.json").write_text(json.dumps(
        {"command": "python -m object_permanence.tools.make_persistence_data " + " ".join(argv or sys.argv[1:]),
         "held_out_nuisance": {"name": HELD_OUT_NUISANCE_NAME, "scenario": HELD_OUT_NUISANCE[0],
                               "overrides": HELD_OUT_NUISANCE[1]}, "splits": summary}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
