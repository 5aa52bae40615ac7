"""Judge the persistence models on held-out seeds and the held-out nuisance setting.

    python -m object_permanence.tools.eval_persistence

Methods, all behind the same :class:`PersistenceFilter` (sticky, per camera, stereo context from the
other view) and scored per track by :func:`core.eval.persistence.persistence_tracks`:

* ``transformer``: the shipped weights (thresholds chosen on the validation seeds);
* ``min_hits``: the rule with the thresholds of ``config/persistence_filter.yaml`` (tuned on
  training seeds by ``tools/tune_persistence``);
* ``existence_probability``: the Bayesian existence probability (:mod:`core.persistence.existence`),
  prior, decay and keep threshold tuned here on the training sequences;
* ``gradient_boosting``: scikit-learn histogram gradient boosting on history summaries
  (:mod:`core.persistence.classical`), fitted on the training sequences, threshold on validation.

Splits: ``test_realistic`` and ``test_hard`` (every scenario, held-out seeds), ``heldout_nuisance``
(:data:`dataset.HELD_OUT_NUISANCE`, never trained on, both presets). The 3D effect: the
:class:`StereoTriangulator` on each method's kept tracks vs. on all confirmed tracks
(:mod:`core.eval.points3d`; box-centre disparities, no image refinement).

Writes ``<out>/persistence.json`` (rows: split, method, precision, recall, f1,
decision_latency_frames, spurious_points_removed, true_points_lost, + details), ``<out>/persistence.md``
and ``<out>/persistence_pr.png`` (per-track PR curves of the scores on the test split).
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import yaml
from tqdm import tqdm

from object_permanence.core.eval.persistence import PersistenceTrackCounts, persistence_tracks
from object_permanence.core.eval.points3d import points3d_counts
from object_permanence.core.eval.records import CameraIndex, ratio
from object_permanence.core.persistence import MinHitsBaseline, MinHitsConfig, PersistenceFilter
from object_permanence.core.persistence.dataset import (
    HELD_OUT_NUISANCE,
    HELD_OUT_NUISANCE_NAME,
    TrackedRun,
    TrackSequences,
    scenario_config,
    tracked_runs,
)
from object_permanence.core.persistence.existence import BayesianExistence, ExistenceConfig, existence_curves
from object_permanence.core.persistence.training import (
    HISTORY_LEN,
    choose_threshold,
    make_windows,
    prefix_scores_to_track,
)
from object_permanence.core.sim.scenarios import SCENARIOS
from object_permanence.core.sim.world import SimWorld
from object_permanence.core.triangulation import StereoTriangulator
from object_permanence.core.types import TrackState
from object_permanence.tools.eval_tracking import parse_seeds, shipped_world_model_config

WINDOW = HISTORY_LEN
PRIOR_GRID = (0.1, 0.2, 0.3, 0.5)
DECAY_GRID = (0.7, 0.8, 0.9, 0.95)


def tune_existence(train: TrackSequences) -> tuple[ExistenceConfig, dict]:
    """Prior, decay and keep threshold of the existence probability with the best per-track F1 on
    the training sequences (sticky keep), as the min-hits rule is tuned."""
    w = make_windows(train, WINDOW, 8)
    best = None
    for prior in PRIOR_GRID:
        for decay in DECAY_GRID:
            cfg = ExistenceConfig(prior=prior, decay=decay)
            curves = existence_curves(w.x, w.lengths, cfg)
            c = choose_threshold(prefix_scores_to_track(curves, w, len(train)), train.labels)
            key = (round(c["f1"], 9), c["precision"])
            if best is None or key > best[0]:
                best = (key, prior, decay, c)
    _, prior, decay, c = best
    thr = min(max(c["threshold"], 1e-6), 1 - 1e-6)
    return ExistenceConfig(prior=prior, decay=decay, keep_threshold=thr), c


def fit_classical(train: TrackSequences, val: TrackSequences, seed: int):
    """Gradient boosting fitted on the training windows, keep threshold on the validation tracks."""
    from object_permanence.core.persistence.classical import (
        BoostingPersistence,
        BoostingTraining,
        boosting_scores,
        fit_boosting,
    )

    tw, vw = make_windows(train, WINDOW, 8), make_windows(val, WINDOW, 8)
    clf = fit_boosting(tw.x, tw.lengths, tw.loss_mask, tw.labels, BoostingTraining(seed=seed))
    c = choose_threshold(prefix_scores_to_track(boosting_scores(clf, vw.x, vw.lengths), vw, len(val)), val.labels)
    return BoostingPersistence(clf, c["threshold"]), c


def run_method(run: TrackedRun, make_model: Callable[[], object], rig) -> tuple[PersistenceTrackCounts, object, dict]:
    """Filter both cameras of ``run`` with a fresh model, score per track, triangulate kept vs all
    confirmed tracks; returns the track counts, the 3D counts and per-track max scores."""
    model = make_model()
    filters = {c: PersistenceFilter(model, WINDOW, sticky=True, camera=c) for c in ("left", "right")}
    filtered, unfiltered = StereoTriangulator(rig.P_left, rig.P_right), StereoTriangulator(rig.P_left, rig.P_right)
    size = (rig.width, rig.height)
    scores: dict[tuple[str, int], float] = {}
    for k, rec in enumerate(run.records):
        left, right = run.tracks["left"][k], run.tracks["right"][k]
        res = {"left": filters["left"].step(left, right), "right": filters["right"].step(right, left)}
        rec.decisions_left, rec.decisions_right = res["left"].decisions, res["right"].decisions
        for cam, r in res.items():
            states = {t.track_id: t.state for t in (left if cam == "left" else right)}
            for d in r.decisions:
                if states.get(d.track_id) != TrackState.TENTATIVE:
                    scores[(cam, d.track_id)] = max(scores.get((cam, d.track_id), 0.0), d.score)
        rec.tracks3d = filtered.step(res["left"].kept, res["right"].kept, rec.stamp, None, size)
        confirmed = [[t for t in ts if t.state != TrackState.TENTATIVE] for ts in (left, right)]
        rec.tracks3d_unfiltered = unfiltered.step(confirmed[0], confirmed[1], rec.stamp, None, size)
    indexes = {c: CameraIndex(run.records, c) for c in ("left", "right")}
    labelled = {key: (s, indexes[key[0]].truth.is_real(*key)) for key, s in scores.items()}
    return persistence_tracks(run.records, indexes=indexes), points3d_counts(run.records), labelled


def pool(rows: list[tuple[PersistenceTrackCounts, object, dict]]) -> dict:
    """Pooled per-track and 3D figures of many runs."""
    tc = PersistenceTrackCounts()
    p3 = {k: 0 for k in ("spurious_unfiltered", "spurious_filtered", "true_unfiltered", "true_lost")}
    scores = []
    for counts, pts, labelled in rows:
        for name in ("tracks", "real", "kept", "kept_real", "ever_kept", "ever_kept_real", "nuisance"):
            setattr(tc, name, getattr(tc, name) + getattr(counts, name))
        tc.latency_real += counts.latency_real
        tc.latency_nuisance += counts.latency_nuisance
        for k in p3:
            p3[k] += getattr(pts, k)
        scores += list(labelled.values())
    s = tc.as_counts()
    latencies = tc.latency_real + tc.latency_nuisance
    return {
        "precision": tc.precision, "recall": tc.recall, "f1": s["persistence_f1"],
        "decision_latency_frames": float(np.median(latencies)) if latencies else float("nan"),
        "spurious_points_removed": ratio(p3["spurious_unfiltered"] - p3["spurious_filtered"],
                                         p3["spurious_unfiltered"]),
        "true_points_lost": ratio(p3["true_lost"], p3["true_unfiltered"]),
        "tracks": tc.tracks, "real_tracks": tc.real, "ever_kept_precision": s["persistence_ever_kept_precision"],
        "decided_within_3_frames": s["persistence_decided_within_3"],
        "latency_real_frames_p50": s["persistence_latency_real_frames_p50"],
        "latency_real_frames_p90": s["persistence_latency_real_frames_p90"],
        "latency_nuisance_frames_p50": s["persistence_latency_nuisance_frames_p50"],
        "spurious_points_unfiltered": p3["spurious_unfiltered"], "spurious_points_filtered": p3["spurious_filtered"],
        "true_points_unfiltered": p3["true_unfiltered"], "true_points_lost_count": p3["true_lost"],
        "_scores": scores,
    }


def plot_pr(curves: dict[str, list[tuple[float, bool]]], path: Path) -> None:
    """Per-track precision-recall of each method's max score (sticky keep) on one split."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    for name, pairs in curves.items():
        s = np.array([p[0] for p in pairs])
        y = np.array([p[1] for p in pairs], bool)
        order = np.argsort(-s)
        tp = np.cumsum(y[order])
        ax.plot(tp / max(y.sum(), 1), tp / np.arange(1, len(s) + 1), label=name)
    ax.set_xlabel("recall (per track)"), ax.set_ylabel("precision"), ax.set_ylim(0.8, 1.001), ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("out/persistence/data"), help="train.npz, val.npz")
    parser.add_argument("--weights", type=Path, default=Path("models/persistence/persistence_transformer.pt"))
    parser.add_argument("--out", type=Path, default=Path("out/eval"))
    parser.add_argument("--test-seeds", default="1000-1003")
    parser.add_argument("--frames", type=int, default=None)
    parser.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--config-dir", type=Path, default=Path("config"))
    args = parser.parse_args(argv)
    seeds = parse_seeds(args.test_seeds)
    if min(seeds) < 1000:
        parser.error("test seeds must be >= 1000")
    import torch

    torch.set_num_threads(1)
    from object_permanence.core.persistence.transformer_filter import TransformerPersistence

    train, val = (TrackSequences.load(args.data / f"{s}.npz") for s in ("train", "val"))
    existence_cfg, existence_tune = tune_existence(train)
    boosting, boosting_tune = fit_classical(train, val, seed=0)
    params = yaml.safe_load((args.config_dir / "persistence_filter.yaml").read_text())
    params = params["persistence_filter"]["ros__parameters"]
    min_hits = MinHitsConfig(min_hits=int(params["min_hits"]), min_mean_score=float(params["min_mean_score"]))
    transformer = TransformerPersistence(args.weights, args.device)
    methods = {
        "transformer": lambda: transformer,
        "min_hits": lambda: MinHitsBaseline(min_hits),
        "existence_probability": lambda: BayesianExistence(existence_cfg),
        "gradient_boosting": lambda: boosting,
    }
    world_model = shipped_world_model_config(args.config_dir)
    # (scenario, overrides, name, split of a run at a difficulty): each world is rendered once for both presets
    jobs = [(s, None, s, lambda d: f"test_{d}") for s in sorted(SCENARIOS)]
    jobs.append((*HELD_OUT_NUISANCE, HELD_OUT_NUISANCE_NAME, lambda d: "heldout_nuisance"))
    splits = ("test_realistic", "test_hard", "heldout_nuisance")
    results: dict[str, dict[str, list]] = {split: {m: [] for m in methods} for split in splits}
    for scenario, overrides, name, split_of in tqdm(jobs, desc="evaluate", unit="scenario"):
        rig = SimWorld(scenario_config(scenario, overrides), seed=0).rig
        for seed in seeds:
            for run in tracked_runs(scenario, seed, ("realistic", "hard"), world_model, overrides, name, args.frames):
                for method, make in methods.items():
                    results[split_of(run.difficulty)][method].append(run_method(run, make, rig))
    rows, pr = [], {}
    for split, by_method in results.items():
        for method, runs in by_method.items():
            pooled = pool(runs)
            scores = pooled.pop("_scores")
            if split == "test_realistic":
                pr[method] = scores
            rows.append({"split": split, "method": method, **pooled})
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"command": "python -m object_permanence.tools.eval_persistence " + " ".join(argv or sys.argv[1:]),
              "test_seeds": args.test_seeds, "held_out_nuisance": {"name": HELD_OUT_NUISANCE_NAME,
                                                                   "scenario": HELD_OUT_NUISANCE[0],
                                                                   "overrides": HELD_OUT_NUISANCE[1]},
              "tuned": {"min_hits": {"min_hits": min_hits.min_hits, "min_mean_score": min_hits.min_mean_score,
                                     "source": "config/persistence_filter.yaml"},
                        "existence_probability": {"prior": existence_cfg.prior, "decay": existence_cfg.decay,
                                                  "keep_threshold": existence_cfg.keep_threshold,
                                                  "train": existence_tune},
                        "gradient_boosting": {"keep_threshold": boosting.keep_threshold, "val": boosting_tune},
                        "transformer": {"keep_threshold": transformer.hysteresis.keep_threshold,
                                        "release_threshold": transformer.hysteresis.release_threshold}},
              "rows": [{k: None if isinstance(v, float) and not np.isfinite(v) else v for k, v in r.items()}
                       for r in rows]}  # JSON has no NaN: an undecided latency is null
    (args.out / "persistence.json").write_text(json.dumps(report, indent=2, default=float) + "\n")
    plot_pr(pr, args.out / "persistence_pr.png")
    head = ("| split | method | precision | recall | F1 | latency p50 (frames) | decided ≤ 3 frames | "
            "spurious 3D points removed | true 3D points lost |")
    lines = [head, "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['split']} | {r['method']} | {r['precision']:.4f} | {r['recall']:.4f} | {r['f1']:.4f} | "
              f"{r['decision_latency_frames']:.1f} | {r['decided_within_3_frames']:.3f} | "
              f"{r['spurious_points_removed']:.3f} | {r['true_points_lost']:.4f} |" for r in rows]
    (args.out / "persistence.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
