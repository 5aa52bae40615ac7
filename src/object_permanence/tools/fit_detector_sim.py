"""Fit the detector simulator to the trained detector (issue 9, item 4): the ``sim_yolo`` preset.

    python -m object_permanence.tools.fit_detector_sim [--seeds 40-41] [--frames 150]
        [--scenarios cluttered,noisy,long_occlusion,crossing] [--out out/eval/detector_fit]

The trained YOLO (``--weights``, with the NMS ``config/detector.yaml`` deploys) runs on rendered
runs of tuning seeds (default 40-41: neither the detector's training seeds 0-29 nor held out), and
its detections are attributed to the ground truth as the calibration does
(:mod:`detector_calibration`). The simulator is then run on the same worlds with a candidate
configuration, and the two sets of calibration figures are compared by :func:`fit_loss`: the sum
of squared differences, each divided by the scale in :data:`FIT_STATISTICS` (about what one would
call a clear difference for that figure). :func:`coordinate_search` minimises it one parameter at a
time over the grids of :data:`FIT_GRIDS` (starting from the ``realistic`` preset; ``--passes``
sweeps); each candidate is the simulator on every world with its own seed, so every candidate
sees the same random draws and the comparison between two candidates is not noise.

Writes ``<out>.json`` (the fitted values, the loss after each pass, the figures of ``realistic``,
the fit and YOLO) and ``<out>.md`` (the table). The ``sim_yolo`` preset of
:class:`SimulatedDetectorConfig` holds the fitted values (copied from ``<out>.json``). Whether the
fit holds on scenes it was not fitted on is ``eval_detector``'s calibration on held-out seeds,
where ``sim_yolo`` is a column beside ``realistic``.
"""
from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from object_permanence.core.detection.simulated import SimulatedDetector, SimulatedDetectorConfig
from object_permanence.core.parameters import detector_nms
from object_permanence.core.sim.scenarios import make_scenario
from object_permanence.core.sim.world import SimWorld
from object_permanence.tools.detector_calibration import MatchedDetector, PooledRuns, figures, run_yolo, stat_rows
from object_permanence.tools.eval_tracking import parse_seeds
from object_permanence.tools.eval_detector import RUNS
from object_permanence.tools.train_detector import offline_ultralytics

#: Calibration figures the fit matches (names of :func:`detector_calibration.stat_rows`) -> the
#: difference counted as one unit of loss.
FIT_STATISTICS: dict[str, float] = {
    "miss rate, visibility (0.0, 0.25]": 0.03,
    "miss rate, visibility (0.25, 0.5]": 0.03,
    "miss rate, visibility (0.5, 0.75]": 0.03,
    "miss rate, visibility (0.75, 1.0]": 0.01,
    "mean miss-run length (frames)": 0.5,
    "left/right miss correlation (phi)": 0.1,
    "mean score, object": 0.02,
    "mean score, reflection": 0.05,
    "fires on reflection (share of entries in view)": 0.02,
    "fires on glare (share of entries in view)": 0.02,
    "fires on false_positive (share of entries in view)": 0.02,
    "unattributed boxes per image": 0.02,
    "duplicates per image": 0.01,
    "merged boxes per image": 0.01,
    "class confusions per image": 0.03,
    "centre noise / size, all": 0.003,
    "log-size noise, all": 0.005,
}

#: Parameters of :class:`SimulatedDetectorConfig` the fit sets, each with the values it tries.
FIT_GRIDS: dict[str, tuple[float, ...]] = {
    "miss_prob_visible": (0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05),
    "miss_prob_half_hidden": (0.01, 0.02, 0.05, 0.1, 0.2, 0.4),
    "min_visibility": (0.05, 0.1, 0.15, 0.2, 0.25, 0.3),
    "miss_logit_per_halving": (0.0, 0.5, 1.0, 1.5, 2.0),
    "burst_off_fraction": (0.0, 0.005, 0.01, 0.02, 0.05, 0.1),
    "burst_mean_off_frames": (1.0, 1.5, 2.0, 3.0, 5.0, 8.0),
    "miss_spell_coherence": (0.3, 0.5, 0.7, 0.85),
    "miss_view_independence": (0.05, 0.1, 0.2, 0.3, 0.5),
    "confidence_mean": (0.7, 0.75, 0.8, 0.85, 0.9),
    "low_confidence_fraction": (0.0, 0.03, 0.06, 0.12),
    "reflection_detect_prob": (0.0, 0.02, 0.05, 0.1, 0.2, 0.4, 0.75),
    "reflection_score_offset": (0.0, 0.07, 0.15, 0.25, 0.35, 0.45),
    "glare_detect_prob": (0.0, 0.01, 0.03, 0.1, 0.3, 0.6),
    "false_positive_score_mean": (0.05, 0.1, 0.2, 0.3, 0.45),
    "extra_false_positives_per_frame": (0.0, 0.01, 0.03, 0.1),
    "duplicate_prob": (0.0, 0.005, 0.01, 0.02, 0.03),
    "merge_prob": (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9),
    "class_confusion_prob": (0.0, 0.02, 0.05, 0.1, 0.2, 0.3),
    "box_noise_frac": (0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04),
}


#: Loss of a figure that exists on one side only (e.g. a mean reflection score where the other
#: side reports no reflection at all): as much as a difference of two scales.
ONE_SIDED_LOSS = 4.0


def fit_loss(simulated: Mapping[str, float], target: Mapping[str, float],
             scales: Mapping[str, float] = FIT_STATISTICS) -> float:
    """Sum over ``scales`` of ((simulated - target) / scale)². A figure that is NaN on both sides
    (no entries of that kind in the runs) counts nothing; one that is NaN on one side only counts
    :data:`ONE_SIDED_LOSS` (else never reporting a reflection would dodge the reflections' score)."""
    total = 0.0
    for name, scale in scales.items():
        a, b = simulated[name], target[name]
        if math.isfinite(a) and math.isfinite(b):
            total += ((a - b) / scale) ** 2
        elif math.isfinite(a) or math.isfinite(b):
            total += ONE_SIDED_LOSS
    return total


def coordinate_search(loss: Callable[[dict[str, Any]], float], start: Mapping[str, Any],
                      grids: Mapping[str, Sequence[Any]], passes: int = 2,
                      evaluate_many: Callable[[list[dict[str, Any]]], list[float]] | None = None,
                      progress: Callable[[], None] | None = None) -> tuple[dict[str, Any], list[float]]:
    """Minimise ``loss(values)`` one parameter at a time over its grid, ``passes`` sweeps.

    ``start`` holds the first values of every parameter in ``grids`` (and any fixed ones); a
    candidate ``loss`` rejects with ValueError (an invalid combination) is skipped. Ties keep the
    current value. ``evaluate_many`` (default: ``loss`` on each) evaluates a list of candidates at
    once (a process pool). Returns the best values and the loss after each pass (the first entry:
    at ``start``).
    """
    many = evaluate_many or (lambda cands: [_safe(loss, c) for c in cands])
    current = dict(start)
    best = many([current])[0]
    if not math.isfinite(best):
        raise ValueError("coordinate_search: the starting values are rejected by the loss")
    history = [best]
    for _ in range(passes):
        for name, grid in grids.items():
            candidates = [dict(current, **{name: v}) for v in grid if v != current[name]]
            for cand, value in zip(candidates, many(candidates)):
                if value < best:
                    best, current = value, cand
            if progress is not None:
                progress()
        history.append(best)
    return current, history


def _safe(loss: Callable[[dict[str, Any]], float], values: dict[str, Any]) -> float:
    try:
        return loss(values)
    except ValueError:
        return math.inf


class FitProblem:
    """The worlds, the target figures and the simulator's loss on them for a set of field values."""

    def __init__(self, worlds: Sequence[SimWorld], frames: int, target: Mapping[str, float]) -> None:
        self.runs = PooledRuns(worlds, frames, keep_truth=True)  # every candidate reads every frame's truth
        self.target = dict(target)

    def simulated(self, values: Mapping[str, Any]) -> dict[str, float]:
        """The simulator's figures (name -> value) with ``values`` on top of the ``realistic`` preset."""
        detectors = [SimulatedDetector(SimulatedDetectorConfig.preset("realistic", seed=w.seed, **values))
                     for w in self.runs.worlds]
        return dict(stat_rows(figures(self.runs, self.runs.detector(detectors))))

    def loss(self, values: Mapping[str, Any]) -> float:
        """:func:`fit_loss` of the simulator with ``values`` against the target."""
        return fit_loss(self.simulated(values), self.target)


_PROBLEM: FitProblem | None = None  # the worker processes' copy (inherited by fork)


def _worker_loss(values: dict[str, Any]) -> float:
    assert _PROBLEM is not None
    return _safe(_PROBLEM.loss, values)


def yolo_target(weights: Path, worlds: Sequence[SimWorld], frames: int, imgsz: int, config_dir: Path,
                threshold: float = 0.25) -> dict[str, float]:
    """The trained detector's calibration figures (name -> value) on the worlds, with the deployed NMS."""
    nms = detector_nms(config_dir)
    detections = run_yolo(weights, worlds, frames, imgsz, nms_iou=nms["iou"], agnostic_nms=nms["agnostic"])
    runs = PooledRuns(worlds, frames)
    return dict(stat_rows(figures(runs, runs.detector([MatchedDetector(d, threshold) for d in detections]))))


def fit_markdown(report: dict) -> str:
    """The fit as Markdown: fitted values beside ``realistic``'s, then the figures of all three."""
    realistic = SimulatedDetectorConfig.preset("realistic")
    lines = ["# Detector simulator fitted to the trained YOLO (`sim_yolo` preset)", "",
             f"Runs: {', '.join(report['runs'])}, {report['frames_per_run']} frames each, both cameras "
             f"(tuning seeds); loss {report['loss_history'][0]:.1f} at `realistic` -> "
             f"{report['loss_history'][-1]:.1f} (after each pass: "
             f"{', '.join(f'{v:.1f}' for v in report['loss_history'][1:])}).", "",
             f"Command: `{report['command']}`", "",
             "| parameter | `realistic` | fitted |", "|---|---|---|"]
    lines += [f"| `{name}` | {getattr(realistic, name):g} | {value:g} |" for name, value in report["fitted"].items()]
    lines += ["", "| statistic (scale) | `realistic` | fitted | trained YOLO |", "|---|---|---|---|"]
    for name, scale in FIT_STATISTICS.items():
        lines.append(f"| {name} ({scale:g}) | {report['figures']['realistic'][name]:.3f} | "
                     f"{report['figures']['fitted'][name]:.3f} | {report['figures']['yolo'][name]:.3f} |")
    return "\n".join(lines) + "\n"


def _previous_target(path: Path, runs: list[str], frames: int, weights: Path) -> dict[str, float] | None:
    """YOLO's figures from an earlier report at ``path`` of the same runs, frames and weights (else None)."""
    if not path.is_file():
        return None
    report = json.loads(path.read_text())
    if (report.get("runs"), report.get("frames_per_run"), report.get("weights")) != (runs, frames, str(weights)):
        return None
    return report["figures"]["yolo"]


def main(argv: Sequence[str] | None = None) -> int:
    global _PROBLEM
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, default=Path("models/detector/sim_yolo.pt"))
    parser.add_argument("--config-dir", type=Path, default=Path("config"),
                        help="where detector.yaml gives the deployed NMS (iou_threshold, agnostic_nms)")
    parser.add_argument("--scenarios", default="cluttered,noisy,long_occlusion,crossing")
    parser.add_argument("--seeds", default="40-41", help="tuning seeds (< 1000)")
    parser.add_argument("--frames", type=int, default=150, help="first frames of each run")
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--passes", type=int, default=3, help="sweeps over the parameters")
    parser.add_argument("--workers", type=int, default=2, help="processes evaluating candidates")
    parser.add_argument("--out", type=Path, default=Path("out/eval/detector_fit"),
                        help="writes <out>.json and <out>.md")
    parser.add_argument("--reuse-target", action="store_true",
                        help="take YOLO's figures from an existing <out>.json of the same runs instead of running it")
    args = parser.parse_args(argv)
    seeds = parse_seeds(args.seeds)
    if max(seeds) >= 1000:
        parser.error(f"--seeds must be tuning seeds < 1000 (held-out ones judge the fit), got {args.seeds}")
    if not args.weights.is_file():
        parser.error(f"--weights {args.weights} not found; run make train-detector first")
    if args.frames < 10 or args.passes < 1 or args.workers < 1:
        parser.error("--frames must be >= 10, --passes and --workers >= 1")
    scenarios = [s for s in args.scenarios.split(",") if s]
    worlds = [SimWorld(make_scenario(s), seed) for s in scenarios for seed in seeds]
    runs = [f"{s}-{seed}" for s in scenarios for seed in seeds]
    target = _previous_target(args.out.with_suffix(".json"), runs, args.frames, args.weights) \
        if args.reuse_target else None
    if target is None:
        offline_ultralytics(RUNS.resolve() / "ultralytics_config")
        target = yolo_target(args.weights, worlds, args.frames, args.imgsz, args.config_dir)
    _PROBLEM = FitProblem(worlds, args.frames, target)
    start = {name: getattr(SimulatedDetectorConfig.preset("realistic"), name) for name in FIT_GRIDS}
    bar = tqdm(total=args.passes * len(FIT_GRIDS), desc="fitting", unit="parameter")
    pool = multiprocessing.get_context("fork").Pool(args.workers) if args.workers > 1 else None
    try:
        evaluate = (lambda cands: pool.map(_worker_loss, cands)) if pool is not None else None
        fitted, history = coordinate_search(_PROBLEM.loss, start, FIT_GRIDS, args.passes, evaluate, bar.update)
    finally:
        bar.close()
        if pool is not None:
            pool.close()
            pool.join()
    report = {"command": "python -m object_permanence.tools.fit_detector_sim " + " ".join(
                  argv if argv is not None else sys.argv[1:]),
              "runs": runs, "frames_per_run": args.frames,
              "weights": str(args.weights), "fitted": fitted, "loss_history": history,
              "figures": {"realistic": _PROBLEM.simulated({}), "fitted": _PROBLEM.simulated(fitted), "yolo": target}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(fit_markdown(report))
    print(fit_markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
