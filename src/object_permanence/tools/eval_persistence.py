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
(:data:`dataset.HELD_OUT_NUISANCE`, never trained on, both presets). Every method runs on the same
tracks in lockstep, frame by frame. The 3D effect: the shipped triangulator (``config/triangulator.yaml``)
on each method's kept tracks vs. on all confirmed tracks (:mod:`core.eval.points3d`), given the
rendered images as the pipeline gives them (``refine_with_images``; ``--no-images``: box centres only).

Beside the headline (the final decision per track, latency from the object's first detection as
:mod:`core.eval.persistence` defines it) each row carries

* ``decided_within_3_of_track_start``: share of tracks whose correct, stable decision came at most
  3 frames after the track's own first detection (its birth in the world model, ``age`` frames
  before it was first published) — a track re-born for an object seen long before is not charged
  the object's whole history;
* ``precision_at_3`` / ``recall_at_3`` / ``f1_at_3``: every method at equal latency — each track's
  decision at the last frame at most 3 frames after its birth (its first decision when it was
  published later), held for good;
* ``spurious_causes`` / ``spurious_causes_unfiltered``: the spurious 3D points by cause
  (:func:`core.eval.spurious.spurious_causes`).

Writes ``<out>/persistence.json`` (rows: split, method, precision, recall, f1,
decision_latency_frames, spurious_points_removed, true_points_lost, + details), ``<out>/persistence.md``
and ``<out>/persistence_pr.png`` (per-track PR curves of the scores on the test split).
``--workers N`` evaluates N (scenario, seed) runs at a time in separate processes, with the same
result as one process (runs are deterministic by seed and pooled in job order).
"""
from __future__ import annotations

import argparse
import functools
import json
import multiprocessing
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from pathlib import Path

import numpy as np
import yaml
from tqdm import tqdm

from object_permanence.core.eval.persistence import PersistenceTrackCounts, persistence_tracks
from object_permanence.core.eval.points3d import points3d_counts
from object_permanence.core.eval.records import CameraIndex, FrameRecord, ratio
from object_permanence.core.eval.spurious import CAUSES, spurious_causes
from object_permanence.core.parameters import build_config, node_parameters
from object_permanence.core.persistence import MinHitsBaseline, MinHitsConfig, PersistenceFilter
from object_permanence.core.persistence.classical import BoostingTraining, fit_persistence_boosting
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
from object_permanence.core.triangulator_config import TriangulatorConfig
from object_permanence.core.types import PersistenceDecision, Track, Track3D, TrackState, duplicate_track_ids
from object_permanence.tools.eval_tracking import parse_seeds, shipped_world_model_config

WINDOW = HISTORY_LEN
PRIOR_GRID = (0.1, 0.2, 0.3, 0.5)
DECAY_GRID = (0.7, 0.8, 0.9, 0.95)
#: Frames after a track's birth by which every method must have decided (the bar's latency).
DECIDE_FRAMES = 3


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


@dataclass
class TrackDecisions:
    """Per ``(camera, track id)``: its decisions ``(record position, keep)`` on frames the records
    hold it confirmed, in order (a track never confirmed has none), its birth
    (record position of its first detection: first published frame minus its ``age`` then) and
    its largest score on a confirmed frame."""

    decisions: dict[tuple[str, int], list[tuple[int, bool]]]
    birth: dict[tuple[str, int], int]
    max_score: dict[tuple[str, int], float]


def collect_decisions(records: Sequence[FrameRecord]) -> TrackDecisions:
    """The :class:`TrackDecisions` of records whose ``decisions_*`` are filled."""
    out = TrackDecisions({}, {}, {})
    for t, rec in enumerate(records):
        for cam, tracks, decisions in (("left", rec.tracks_left, rec.decisions_left),
                                       ("right", rec.tracks_right, rec.decisions_right)):
            by_id: dict[int, Track] = {trk.track_id: trk for trk in tracks}
            for d in decisions:
                key, trk = (cam, d.track_id), by_id.get(d.track_id)
                # a TENTATIVE track is scored, never kept: not a decision (as in core.eval.persistence)
                if trk is None or trk.state == TrackState.TENTATIVE:
                    continue
                out.birth.setdefault(key, t - int(trk.age))
                out.max_score[key] = max(out.max_score.get(key, 0.0), float(d.score))
                out.decisions.setdefault(key, []).append((t, bool(d.keep)))
    return out


def track_start_figures(tracks: TrackDecisions, real: Mapping[tuple[str, int], bool],
                        within: int = DECIDE_FRAMES) -> dict[str, int]:
    """Counts for the equal-latency comparison and the latency from the track's own birth:
    ``tracks``, ``real``, ``fast`` (correct, stable decision at most ``within`` frames after the
    birth), ``kept_at``/``kept_real_at`` (the decision at the last frame at most ``within`` frames
    after the birth, else the first decision, held for good)."""
    out = {"tracks": 0, "real": 0, "fast": 0, "kept_at": 0, "kept_real_at": 0}
    for key, decisions in tracks.decisions.items():
        frames = np.array([t for t, _ in decisions])
        keeps = np.array([k for _, k in decisions], bool)
        is_real = bool(real[key])
        birth = tracks.birth.get(key, int(frames[0]))
        wrong = np.flatnonzero(keeps != is_real)
        stable = None if keeps[-1] != is_real else int(frames[wrong[-1] + 1] if wrong.size else frames[0])
        early = np.flatnonzero(frames <= birth + within)
        at = bool(keeps[early[-1]] if early.size else keeps[0])
        out["tracks"] += 1
        out["real"] += is_real
        out["fast"] += stable is not None and stable - birth <= within
        out["kept_at"] += at
        out["kept_real_at"] += at and is_real
    return out


def run_methods(run: TrackedRun, world: SimWorld, models: Mapping[str, object], config: TriangulatorConfig,
                images: bool) -> dict[str, tuple[PersistenceTrackCounts, object, dict, dict, Counter, Counter]]:
    """Every method on the same tracks of ``run`` in lockstep (each frame rendered once): filter both
    cameras (fresh filters, sticky), triangulate kept tracks and, once, all confirmed tracks.

    Returns per method the track counts, the 3D counts, the labelled per-track max scores, the
    track-start figures (:func:`track_start_figures`) and the spurious causes (filtered, unfiltered)."""
    rig = world.rig
    size = (rig.width, rig.height)
    filters = {m: {c: PersistenceFilter(model, WINDOW, sticky=True, camera=c) for c in ("left", "right")}
               for m, model in models.items()}
    triangulators = {m: StereoTriangulator(rig.P_left, rig.P_right, config) for m in models}
    unfiltered = StereoTriangulator(rig.P_left, rig.P_right, config)
    outputs: dict[str, list[tuple[list[PersistenceDecision], list[PersistenceDecision], list[Track3D]]]] = \
        {m: [] for m in models}
    for k, rec in enumerate(run.records):
        pair = world.render(k) if images else None
        left, right = run.tracks["left"][k], run.tracks["right"][k]
        # ids published twice in one frame (a world-model fault) are left out, as the filter leaves them out
        confirmed = [[t for t in ts if t.state != TrackState.TENTATIVE and t.track_id not in dup]
                     for ts, dup in ((left, duplicate_track_ids(left)), (right, duplicate_track_ids(right)))]
        rec.tracks3d_unfiltered = unfiltered.step(confirmed[0], confirmed[1], rec.stamp, pair, size)
        for m in models:
            rl, rr = filters[m]["left"].step(left, right), filters[m]["right"].step(right, left)
            outputs[m].append((rl.decisions, rr.decisions,
                               triangulators[m].step(rl.kept, rr.kept, rec.stamp, pair, size)))
    indexes = {c: CameraIndex(run.records, c) for c in ("left", "right")}
    causes_unfiltered = spurious_causes(run.records, indexes, filtered=False)
    out = {}
    for m, frames in outputs.items():
        for rec, (dl, dr, points) in zip(run.records, frames):
            rec.decisions_left, rec.decisions_right, rec.tracks3d = dl, dr, points
        tracks = collect_decisions(run.records)
        real = {key: indexes[key[0]].truth.is_real(*key) for key in tracks.decisions}
        labelled = {key: (s, real[key]) for key, s in tracks.max_score.items()}
        out[m] = (persistence_tracks(run.records, indexes=indexes), points3d_counts(run.records), labelled,
                  track_start_figures(tracks, real), spurious_causes(run.records, indexes), causes_unfiltered)
    return out


@dataclass(frozen=True)
class Methods:
    """What every compared method is built from, picklable for worker processes: the transformer's
    weights and device, the tuned min-hits and existence settings, the fitted boosting model."""

    weights: Path
    device: str
    min_hits: MinHitsConfig
    existence: ExistenceConfig
    boosting: Any

    def build(self) -> dict[str, object]:
        """Fresh models, one per method, in the order of the report."""
        from object_permanence.core.persistence.transformer_filter import TransformerPersistence

        return {"transformer": TransformerPersistence(self.weights, self.device),
                "min_hits": MinHitsBaseline(self.min_hits),
                "existence_probability": BayesianExistence(self.existence),
                "gradient_boosting": self.boosting}


def evaluate_job(job: tuple[str, dict | None, str, bool, int], methods: Methods, world_model, triangulator,
                 images: bool, frames: int | None) -> list[tuple[str, str, tuple]]:
    """Every method on one (scenario, overrides, name, held-out nuisance?, seed) job at both
    presets: ``(split, method, row of run_methods)`` per run and method. The world is rendered
    once for both presets."""
    scenario, overrides, name, nuisance, seed = job
    world = SimWorld(scenario_config(scenario, overrides), seed=seed)
    out = []
    for run in tracked_runs(scenario, seed, ("realistic", "hard"), world_model, overrides, name, frames):
        split = "heldout_nuisance" if nuisance else f"test_{run.difficulty}"
        for method, row in run_methods(run, world, methods.build(), triangulator, images).items():
            out.append((split, method, row))
    return out


def _one_torch_thread() -> None:
    import torch

    torch.set_num_threads(1)


def pool(rows: list[tuple]) -> dict:
    """Pooled per-track and 3D figures of many runs (rows of :func:`run_methods`)."""
    tc = PersistenceTrackCounts()
    p3 = {k: 0 for k in ("spurious_unfiltered", "spurious_filtered", "true_unfiltered", "true_lost")}
    start = Counter()
    causes, causes_unf = Counter(), Counter()
    scores = []
    for counts, pts, labelled, figures, c_f, c_u in rows:
        for name in ("tracks", "real", "kept", "kept_real", "ever_kept", "ever_kept_real", "nuisance"):
            setattr(tc, name, getattr(tc, name) + getattr(counts, name))
        tc.latency_real += counts.latency_real
        tc.latency_nuisance += counts.latency_nuisance
        for k in p3:
            p3[k] += getattr(pts, k)
        start.update(figures)
        causes.update(c_f)
        causes_unf.update(c_u)
        scores += list(labelled.values())
    s = tc.as_counts()
    latencies = tc.latency_real + tc.latency_nuisance
    p_at, r_at = ratio(start["kept_real_at"], start["kept_at"]), ratio(start["kept_real_at"], start["real"])
    return {
        "precision": tc.precision, "recall": tc.recall, "f1": s["persistence_f1"],
        "decision_latency_frames": float(np.median(latencies)) if latencies else float("nan"),
        "spurious_points_removed": ratio(p3["spurious_unfiltered"] - p3["spurious_filtered"],
                                         p3["spurious_unfiltered"]),
        "true_points_lost": ratio(p3["true_lost"], p3["true_unfiltered"]),
        "tracks": tc.tracks, "real_tracks": tc.real, "ever_kept_precision": s["persistence_ever_kept_precision"],
        "decided_within_3_frames": s["persistence_decided_within_3"],
        "decided_within_3_of_track_start": ratio(start["fast"], start["tracks"]),
        "precision_at_3": p_at, "recall_at_3": r_at,
        "f1_at_3": 2 * p_at * r_at / (p_at + r_at) if p_at + r_at > 0 else 0.0,  # F1 = 2PR / (P + R)
        "latency_real_frames_p50": s["persistence_latency_real_frames_p50"],
        "latency_real_frames_p90": s["persistence_latency_real_frames_p90"],
        "latency_nuisance_frames_p50": s["persistence_latency_nuisance_frames_p50"],
        "spurious_points_unfiltered": p3["spurious_unfiltered"], "spurious_points_filtered": p3["spurious_filtered"],
        "true_points_unfiltered": p3["true_unfiltered"], "true_points_lost_count": p3["true_lost"],
        "spurious_causes": {c: causes[c] for c in CAUSES},
        "spurious_causes_unfiltered": {c: causes_unf[c] for c in CAUSES},
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
    parser.add_argument("--no-images", dest="images", action="store_false",
                        help="triangulate from box centres only (default: with the rendered images, as the pipeline)")
    parser.add_argument("--workers", type=int, default=1, help="runs evaluated at a time (processes)")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"--workers must be >= 1, got {args.workers}")
    seeds = parse_seeds(args.test_seeds)
    if min(seeds) < 1000:
        parser.error("test seeds must be >= 1000")
    import torch

    torch.set_num_threads(1)
    train, val = (TrackSequences.load(args.data / f"{s}.npz") for s in ("train", "val"))
    existence_cfg, existence_tune = tune_existence(train)
    boosting, boosting_tune = fit_persistence_boosting(train, val, WINDOW, BoostingTraining(seed=0))
    params = yaml.safe_load((args.config_dir / "persistence_filter.yaml").read_text())
    params = params["persistence_filter"]["ros__parameters"]
    min_hits = MinHitsConfig(min_hits=int(params["min_hits"]), min_mean_score=float(params["min_mean_score"]))
    methods = Methods(args.weights, args.device, min_hits, existence_cfg, boosting)
    thresholds = methods.build()["transformer"].hysteresis
    world_model = shipped_world_model_config(args.config_dir)
    triangulator = build_config(TriangulatorConfig, node_parameters(args.config_dir, "triangulator"))
    jobs = [(s, None, s, False, seed) for s in sorted(SCENARIOS) for seed in seeds]
    jobs += [(*HELD_OUT_NUISANCE, HELD_OUT_NUISANCE_NAME, True, seed) for seed in seeds]
    splits = ("test_realistic", "test_hard", "heldout_nuisance")
    results: dict[str, dict[str, list]] = {split: {m: [] for m in ("transformer", "min_hits", "existence_probability",
                                                                   "gradient_boosting")} for split in splits}
    work = functools.partial(evaluate_job, methods=methods, world_model=world_model, triangulator=triangulator,
                             images=args.images, frames=args.frames)
    with tqdm(total=len(jobs), desc="evaluate", unit="run") as bar:
        if args.workers > 1:
            with multiprocessing.get_context("spawn").Pool(args.workers, initializer=_one_torch_thread) as workers:
                done = workers.imap(work, jobs)  # imap keeps job order: same pooled figures as one process
                for got in done:
                    for split, method, row in got:
                        results[split][method].append(row)
                    bar.update()
        else:
            for job in jobs:
                for split, method, row in work(job):
                    results[split][method].append(row)
                bar.update()
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
              "test_seeds": args.test_seeds, "images": args.images, "held_out_nuisance": {"name": HELD_OUT_NUISANCE_NAME,
                                                                   "scenario": HELD_OUT_NUISANCE[0],
                                                                   "overrides": HELD_OUT_NUISANCE[1]},
              "tuned": {"min_hits": {"min_hits": min_hits.min_hits, "min_mean_score": min_hits.min_mean_score,
                                     "source": "config/persistence_filter.yaml"},
                        "existence_probability": {"prior": existence_cfg.prior, "decay": existence_cfg.decay,
                                                  "keep_threshold": existence_cfg.keep_threshold,
                                                  "train": existence_tune},
                        "gradient_boosting": {"keep_threshold": boosting.keep_threshold, "val": boosting_tune},
                        "transformer": {"keep_threshold": thresholds.keep_threshold,
                                        "release_threshold": thresholds.release_threshold}},
              "rows": [{k: None if isinstance(v, float) and not np.isfinite(v) else v for k, v in r.items()}
                       for r in rows]}  # JSON has no NaN: an undecided latency is null
    (args.out / "persistence.json").write_text(json.dumps(report, indent=2, default=float) + "\n")
    plot_pr(pr, args.out / "persistence_pr.png")
    head = ("| split | method | precision | recall | F1 | latency p50 (frames) | decided ≤ 3 frames (object / track) | "
            "P / R / F1 at 3 frames | spurious 3D points removed | true 3D points lost |")
    lines = [head, "|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['split']} | {r['method']} | {r['precision']:.4f} | {r['recall']:.4f} | {r['f1']:.4f} | "
              f"{r['decision_latency_frames']:.1f} | {r['decided_within_3_frames']:.3f} / "
              f"{r['decided_within_3_of_track_start']:.3f} | {r['precision_at_3']:.4f} / {r['recall_at_3']:.4f} / "
              f"{r['f1_at_3']:.4f} | {r['spurious_points_removed']:.3f} | {r['true_points_lost']:.4f} |" for r in rows]
    lines += ["", "Spurious 3D points by cause (" + ", ".join(CAUSES) + "), unfiltered → filtered:", ""]
    lines += [f"- {r['split']} {r['method']}: " + ", ".join(
        f"{c} {r['spurious_causes_unfiltered'][c]} → {r['spurious_causes'][c]}" for c in CAUSES) for r in rows]
    (args.out / "persistence.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
