"""Time the triangulator's step on a simulated scene's real tracks and images.

    python -m object_permanence.tools.bench_triangulator [--scenario cluttered --seed 1000 --frames 400]
        [--runs 3] [--out out/bench]

The scene is simulated and detected (``realistic``) and tracked by the shipped world model, as
``tools/diagnose_3d`` does (its cached runs with ``--cache``); its images are rendered once before
the clock starts. The shipped triangulator (``config/triangulator.yaml``) then steps through every
frame with that frame's confirmed tracks and images, ``--runs`` times, each from a fresh
triangulator. Reported: per run the total and the median step, and the mean step of the busiest
``--window`` consecutive frames (where a composed pipeline falls behind: README "Speed"); the
figures of the median run in ``<out>/triangulator.json``. A timing, not a test: compare runs of one
machine state.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from object_permanence.core.parameters import build_config, node_parameters
from object_permanence.core.persistence.dataset import scenario_config
from object_permanence.core.sim.world import SimWorld
from object_permanence.core.triangulation import StereoTriangulator
from object_permanence.core.triangulator_config import TriangulatorConfig
from object_permanence.core.types import TrackState, duplicate_track_ids
from object_permanence.tools.diagnose_3d import load_runs


def step_times(run, world: SimWorld, images: list, config: TriangulatorConfig) -> np.ndarray:
    """(T,) seconds of each ``StereoTriangulator.step`` over the run's frames (confirmed tracks)."""
    rig = world.rig
    tri = StereoTriangulator(rig.P_left, rig.P_right, config)
    size = (rig.width, rig.height)
    times = np.empty(len(images))
    for k, image in enumerate(images):
        left, right = run.tracks["left"][k], run.tracks["right"][k]
        confirmed = [[t for t in ts if t.state != TrackState.TENTATIVE and t.track_id not in dup]
                     for ts, dup in ((left, duplicate_track_ids(left)), (right, duplicate_track_ids(right)))]
        t0 = time.perf_counter()
        tri.step(confirmed[0], confirmed[1], run.records[k].stamp, image, size)
        times[k] = time.perf_counter() - t0
    return times


def summary(times: np.ndarray, window: int) -> dict[str, float]:
    """Total, median and busiest-window mean of one run's step times, in ms."""
    ms = times * 1e3
    busiest = np.convolve(ms, np.ones(window) / window, "valid").max() if len(ms) >= window else ms.mean()
    return {"total_ms": float(ms.sum()), "median_ms": float(np.median(ms)), "busiest_window_mean_ms": float(busiest)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", default="cluttered")
    parser.add_argument("--seed", type=int, default=1000, help="a timing, not a figure of merit: any seed")
    parser.add_argument("--frames", type=int, default=400)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--window", type=int, default=30, help="frames of the busiest stretch")
    parser.add_argument("--config-dir", type=Path, default=Path("config"))
    parser.add_argument("--cache", type=Path, default=None, help="folder of cached tracked runs (diagnose_3d's)")
    parser.add_argument("--out", type=Path, default=Path("out/bench"))
    args = parser.parse_args(argv)
    if args.frames < 1 or args.runs < 1 or args.window < 1:
        parser.error("--frames, --runs and --window must be at least 1")
    run = load_runs(args.scenario, args.seed, args.config_dir, args.cache, args.frames)
    world = SimWorld(scenario_config(args.scenario), seed=args.seed)
    images = [world.render(k) for k in range(min(args.frames, len(run.records)))]
    config = build_config(TriangulatorConfig, node_parameters(args.config_dir, "triangulator"))
    runs = [summary(step_times(run, world, images, config), args.window) for _ in range(args.runs)]
    for i, r in enumerate(runs):
        print(f"run {i + 1}/{args.runs}: {len(images)} frames in {r['total_ms']:.0f} ms, median step "
              f"{r['median_ms']:.2f} ms, busiest {args.window} frames {r['busiest_window_mean_ms']:.2f} ms a frame")
    median = sorted(runs, key=lambda r: r["total_ms"])[len(runs) // 2]
    report = {"command": "python -m object_permanence.tools.bench_triangulator " + " ".join(argv or sys.argv[1:]),
              "scenario": args.scenario, "seed": args.seed, "frames": len(images), "window": args.window,
              **median, "runs": runs}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "triangulator.json").write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
