"""Why 3D points of correctly paired visible tracks are off: per-point records and a cause table.

    python -m object_permanence.tools.diagnose_3d [--scenarios cluttered,crossing,long_occlusion,noisy]
        [--seeds 0-3] [--out out/diagnose/3d.json] [--cache out/diagnose/runs] [--frames N]

Each (scenario, seed) is simulated, detected (``realistic``) and tracked by the shipped world model
(:func:`core.persistence.dataset.tracked_runs`, ``config/world_model.yaml``), exactly as
``tools/eval_persistence.run_methods`` does; the shipped triangulator (``config/triangulator.yaml``)
then runs on every confirmed track with the rendered images (the ``tracks3d_unfiltered`` path).
``--cache`` keeps the tracked runs (pickles), so that triangulator changes are compared on the same
2D tracks whatever happens to the world model meanwhile.

For every VISIBLE or OCCLUDED 3D point whose left and right tracks are real and cover the same
object (over their lives and in this frame: a *correct pair*), one record: the error of the published (filtered)
position against the object's true centre, split into depth (Z) and lateral (X, Y); this frame's
triangulation and its disparity against the true disparity of the centre ``fx B / Z``; which method
gave the disparity (:class:`core.box_disparity.DisparitySource`; ``none``: box centres) and whether
the 3D filter took it; the object's visible fraction in each view; the column offset of each view's
detection box centre from the object's amodal box centre; the object's depth; the 3D track's age
and the frames since the pair was last a ghost.

Causes (:data:`CAUSES`, first that holds): ``ghost`` (an OCCLUDED point: its own row, not in the
shares of the visible points' squared error), ``first_3d_frames`` (3D track age < 3 frames),
``after_ghost`` (within ``--after-ghost`` frames of a ghost period), ``border`` (a detection box
within 2 px of an image border), ``partial_occlusion`` (visible fraction below ``--partial`` in
either view), ``disparity_<source>`` (the rest, by the method that measured the disparity).
Per cause: the points, the points off by more than 0.3 m (spurious), the share of the VISIBLE
points' summed squared error, the RMS depth / lateral error and the RMS disparity error of the
frame's triangulation. Also the headline figures of the same runs: position RMSE on the
unfiltered output, identity-matched and per frame (all depths, and objects at 3 ± 0.5 m;
:mod:`core.eval.points3d`) and the spurious causes of
``core/eval/spurious.spurious_causes``.

Writes ``--out`` (JSON: the tables and the headline) and ``<out>.npz`` (the per-point records).
Tuning seeds only (< 1000) unless ``--allow-held-out`` (one confirmation run on held-out seeds).
``--headline-only`` needs nothing but ``StereoTriangulator.step`` (an older triangulator's figures
beside the current one's, on the same cached runs).
"""
from __future__ import annotations

import argparse
import json
import pickle
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from object_permanence.core.box_disparity import DisparitySource
from object_permanence.core.eval.mot import identity_matching
from object_permanence.core.eval.points3d import (
    DEPTH_BAND_3M,
    POINT_DISTANCE_M,
    object_positions,
    points3d_counts,
    position_rmse,
    position_rmse_per_frame,
)
from object_permanence.core.eval.records import CameraIndex
from object_permanence.core.persistence.dataset import TrackedRun, scenario_config, tracked_runs
from object_permanence.core.sim.world import SimWorld
from object_permanence.core.triangulation import StereoTriangulator
from object_permanence.core.triangulator_config import TriangulatorConfig
from object_permanence.core.types import TrackState, duplicate_track_ids
from object_permanence.core.eval.spurious import CAUSES as SPURIOUS_CAUSES
from object_permanence.core.eval.spurious import spurious_causes
from object_permanence.tools.eval_tracking import parse_seeds, shipped_world_model_config

#: Causes of a correct pair's 3D error, in the order they are tested (module docstring).
CAUSES = ("ghost", "first_3d_frames", "after_ghost", "border", "partial_occlusion", "disparity_none", "disparity_ncc",
          "disparity_sgbm")
#: Frames of a new 3D track counted as its first frames (as ``spurious_causes`` counts them).
FIRST_FRAMES = 3
#: A box within this many pixels of the image's left or right border is cut by it.
BORDER_PX = 2.0
_GHOSTS = (TrackState.OCCLUDED, TrackState.LOST)
_SOURCE_NAMES = {DisparitySource.NONE: "none", DisparitySource.NCC: "ncc", DisparitySource.SGBM: "sgbm"}

#: Per-point record fields (arrays of the ``.npz``): float unless noted.
FIELDS = ("scenario", "seed", "frame", "track3d", "object", "err_x", "err_y", "err_z", "raw_err_x", "raw_err_y",
          "raw_err_z", "disparity", "disparity_gt", "source", "measured", "fused", "vis_left", "vis_right",
          "du_left", "du_right", "depth", "age", "since_ghost", "at_border", "ghost")


@dataclass
class PointRecords:
    """Column store of per-point records (:data:`FIELDS`)."""

    columns: dict[str, list] = field(default_factory=lambda: {f: [] for f in FIELDS})

    def add(self, **values: object) -> None:
        """Append one record (every field of :data:`FIELDS`)."""
        for name in FIELDS:
            self.columns[name].append(values[name])

    def arrays(self) -> dict[str, np.ndarray]:
        """Field -> (N,) array."""
        return {name: np.asarray(values) for name, values in self.columns.items()}


def load_runs(scenario: str, seed: int, config_dir: Path, cache: Path | None,
              n_frames: int | None = None) -> TrackedRun:
    """The ``realistic`` tracked run of ``scenario`` / ``seed`` (its first ``n_frames``; from
    ``cache`` when there)."""
    name = f"{scenario}-{seed}" + (f"-{n_frames}f" if n_frames is not None else "")
    path = cache / f"{name}.pkl" if cache is not None else None
    if path is not None and path.exists():
        with path.open("rb") as f:
            return pickle.load(f)
    (run,) = tracked_runs(scenario, seed, ("realistic",), shipped_world_model_config(config_dir), n_frames=n_frames)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as f:
            pickle.dump(run, f)
    return run


def diagnose_run(run: TrackedRun, world: SimWorld, config: TriangulatorConfig, records: PointRecords | None,
                 scenario_index: int) -> None:
    """Triangulate every confirmed track of ``run`` (images rendered by ``world``) into
    ``rec.tracks3d_unfiltered`` and append the correct pairs' VISIBLE and OCCLUDED points to
    ``records`` (None: triangulate only, for the headline of a triangulator without
    ``StereoTriangulator.last_details``, e.g. an older version for comparison)."""
    rig = world.rig
    size = (rig.width, rig.height)
    fb = rig.fx * rig.baseline
    tri = StereoTriangulator(rig.P_left, rig.P_right, config)
    details = []
    for k, rec in enumerate(run.records):
        left, right = run.tracks["left"][k], run.tracks["right"][k]
        confirmed = [[t for t in ts if t.state != TrackState.TENTATIVE and t.track_id not in dup]
                     for ts, dup in ((left, duplicate_track_ids(left)), (right, duplicate_track_ids(right)))]
        rec.tracks3d_unfiltered = tri.step(confirmed[0], confirmed[1], rec.stamp, world.render(k), size)
        if records is not None:
            details.append(tri.last_details)
    if records is None:
        return
    index = {c: CameraIndex(run.records, c) for c in ("left", "right")}
    first: dict[int, int] = {}
    last_ghost: dict[int, int] = {}
    for t, (rec, det) in enumerate(zip(run.records, details)):
        by_pair = {(int(a), int(b)): i for i, (a, b) in enumerate(zip(det.left_ids, det.right_ids))}
        tracks = ({trk.track_id: trk for trk in rec.tracks_left}, {trk.track_id: trk for trk in rec.tracks_right})
        truth = object_positions(rec)
        for p in rec.tracks3d_unfiltered:
            first.setdefault(p.track_id, t)
            if p.state in _GHOSTS:
                last_ghost[p.track_id] = t
            if p.state not in (TrackState.VISIBLE, TrackState.OCCLUDED):
                continue
            lid, rid = p.left_track_id, p.right_track_id
            oid = index["left"].truth.gt_id("left", lid)
            gl, gr = index["left"].links[t].get(lid), index["right"].links[t].get(rid)
            if not (index["left"].truth.is_real("left", lid) and index["right"].truth.is_real("right", rid)) \
                    or oid != index["right"].truth.gt_id("right", rid) or oid not in truth \
                    or (gl is not None and gr is not None and gl.object_id != gr.object_id):
                continue
            i, ghost = by_pair[(lid, rid)], p.state != TrackState.VISIBLE
            gt = truth[oid]
            err, raw_err = np.asarray(p.position) - gt, det.positions[i] - gt
            offsets, visibility, border = [], [], False
            for cam, trk in zip(("left", "right"), (tracks[0][lid], tracks[1][rid])):
                g = index[cam].get(t, oid)
                box = np.asarray(trk.measurement if trk.measurement is not None else trk.box, np.float64)
                offsets.append(box[0] - g.box[0] if g is not None else np.nan)  # detected - amodal centre column
                visibility.append(g.visibility if g is not None else 0.0)
                border |= bool(box[0] - box[2] / 2 <= BORDER_PX or box[0] + box[2] / 2 >= size[0] - BORDER_PX)
            records.add(scenario=scenario_index, seed=run.seed, frame=t, track3d=p.track_id, object=oid,
                        err_x=err[0], err_y=err[1], err_z=err[2], raw_err_x=raw_err[0], raw_err_y=raw_err[1],
                        raw_err_z=raw_err[2], disparity=det.disparity[i], disparity_gt=fb / gt[2],  # d = fx B / Z
                        source=int(det.source[i]), measured=bool(det.measured[i]), fused=bool(det.fused[i]),
                        vis_left=visibility[0], vis_right=visibility[1], du_left=offsets[0], du_right=offsets[1],
                        depth=gt[2], age=t - first[p.track_id],
                        since_ghost=t - last_ghost[p.track_id] if p.track_id in last_ghost else 10**6,
                        at_border=border, ghost=ghost)


def classify(points: dict[str, np.ndarray], after_ghost: int, partial: float) -> np.ndarray:
    """(N,) cause index into :data:`CAUSES` of each record (module docstring)."""
    n = len(points["frame"])
    cause = np.full(n, -1, dtype=np.int64)
    tests = [
        points["ghost"].astype(bool),
        points["age"] < FIRST_FRAMES,
        points["since_ghost"] <= after_ghost,
        points["at_border"].astype(bool),
        np.minimum(points["vis_left"], points["vis_right"]) < partial,
        points["source"] == DisparitySource.NONE,
        points["source"] == DisparitySource.NCC,
        points["source"] == DisparitySource.SGBM,
    ]
    for c, hit in enumerate(tests):
        cause[(cause < 0) & hit] = c
    return cause


def cause_table(points: dict[str, np.ndarray], cause: np.ndarray) -> dict[str, dict[str, float]]:
    """Per cause: points, spurious (error > 0.3 m), share of the summed squared error, RMS depth and
    lateral error (m), RMS disparity error (px) of this frame's triangulation."""
    sq = points["err_x"] ** 2 + points["err_y"] ** 2 + points["err_z"] ** 2  # ||p - p_gt||²
    total = float(sq[~points["ghost"].astype(bool)].sum())  # shares of the VISIBLE points' squared error
    d_err = points["disparity"] - points["disparity_gt"]
    out = {}
    for c, name in enumerate(CAUSES):
        m = cause == c
        k = int(m.sum())
        rms = (lambda v: float(np.sqrt(np.mean(v[m] ** 2))) if k else 0.0)  # sqrt(mean e²)
        out[name] = {
            "points": k, "spurious": int(np.count_nonzero(sq[m] > POINT_DISTANCE_M**2)),
            "sq_error_share": float(sq[m].sum() / total) if total > 0 else 0.0,
            "rms_z_m": rms(points["err_z"]), "rms_lateral_m": rms(np.hypot(points["err_x"], points["err_y"])),
            "rms_disparity_err_px": float(np.sqrt(np.nanmean(d_err[m] ** 2))) if k else 0.0,
        }
    return out


def headline(runs: Sequence[TrackedRun]) -> dict[str, object]:
    """Position RMSE of the unfiltered output's VISIBLE points (identity-matched, per frame, per
    frame at 3 m: :mod:`core.eval.points3d`; per frame with the points left unscored), spurious
    counts and causes."""
    sq, n = np.zeros(3), np.zeros(3, dtype=int)
    unlinked = np.zeros(2, dtype=int)
    spurious, true = 0, 0
    causes: Counter = Counter()
    for run in runs:
        for rec in run.records:
            rec.tracks3d = rec.tracks3d_unfiltered  # the RMSEs read tracks3d
        index = {c: CameraIndex(run.records, c) for c in ("left", "right")}
        per_frame = [position_rmse_per_frame(run.records, band, index=index["left"]) for band in (None, DEPTH_BAND_3M)]
        results = [position_rmse(run.records, identity_matching(run.records, "left")),
                   *((r.rmse_m, r.samples) for r in per_frame)]
        for i, (rmse, count) in enumerate(results):
            sq[i] += rmse**2 * count
            n[i] += count
        unlinked += [r.unlinked for r in per_frame]
        counts = points3d_counts(run.records)
        spurious += counts.spurious_unfiltered
        true += counts.true_unfiltered
        causes += spurious_causes(run.records, index, filtered=False)
    rmse = [float(np.sqrt(total / count)) if count else 0.0 for total, count in zip(sq, n)]
    return {"position_rmse_m": rmse[0], "rmse_points": int(n[0]),
            "position_rmse_per_frame_m": rmse[1], "rmse_per_frame_points": int(n[1]),
            "rmse_per_frame_unlinked": int(unlinked[0]),
            "position_rmse_per_frame_3m_m": rmse[2], "rmse_per_frame_3m_points": int(n[2]),
            "rmse_per_frame_3m_unlinked": int(unlinked[1]),
            "spurious_points": spurious, "true_points": true,
            "spurious_causes": {c: causes[c] for c in SPURIOUS_CAUSES}}


def format_table(table: dict[str, dict[str, float]]) -> str:
    """The cause table as aligned text."""
    lines = [f"{'cause':<18} {'points':>7} {'>0.3 m':>7} {'sq.err share':>12} {'RMS Z m':>8} {'RMS XY m':>8} "
             f"{'RMS d px':>8}"]
    for name, r in table.items():
        lines.append(f"{name:<18} {r['points']:>7d} {r['spurious']:>7d} {r['sq_error_share']:>12.3f} "
                     f"{r['rms_z_m']:>8.3f} {r['rms_lateral_m']:>8.3f} {r['rms_disparity_err_px']:>8.3f}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", default="cluttered,crossing,long_occlusion,noisy")
    parser.add_argument("--seeds", default="0-3")
    parser.add_argument("--config-dir", type=Path, default=Path("config"))
    parser.add_argument("--out", type=Path, default=Path("out/diagnose/3d.json"))
    parser.add_argument("--cache", type=Path, default=None, help="folder of cached tracked runs (pickles)")
    parser.add_argument("--frames", type=int, default=None, help="only the first frames of each run")
    parser.add_argument("--after-ghost", type=int, default=10,
                        help="frames after a ghost period counted as after_ghost")
    parser.add_argument("--partial", type=float, default=0.9, help="visible fraction below which a view is partial")
    parser.add_argument("--allow-held-out", action="store_true", help="allow seeds >= 1000 (confirmation only)")
    parser.add_argument("--headline-only", action="store_true",
                        help="only the headline figures (works with a triangulator that has no last_details)")
    args = parser.parse_args(argv)
    seeds = parse_seeds(args.seeds)
    if max(seeds) >= 1000 and not args.allow_held_out:
        parser.error("tuning seeds are < 1000; held-out seeds need --allow-held-out")
    scenarios = [s for s in args.scenarios.split(",") if s]
    from object_permanence.core.parameters import build_config, node_parameters

    config = build_config(TriangulatorConfig, node_parameters(args.config_dir, "triangulator"))
    records = None if args.headline_only else PointRecords()
    runs = []
    jobs = [(i, s, seed) for i, s in enumerate(scenarios) for seed in seeds]
    for i, scenario, seed in tqdm(jobs, desc="diagnose", unit="run"):
        run = load_runs(scenario, seed, args.config_dir, args.cache, args.frames)
        diagnose_run(run, SimWorld(scenario_config(scenario), seed=seed), config, records, i)
        runs.append(run)
    head = headline(runs)
    report = {"command": "python -m object_permanence.tools.diagnose_3d " + " ".join(argv or sys.argv[1:]),
              "scenarios": scenarios, "seeds": args.seeds, "headline": head}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if records is not None:
        points = records.arrays()
        cause = classify(points, args.after_ghost, args.partial)
        report["causes"] = cause_table(points, cause)
        np.savez_compressed(args.out.with_suffix(".npz"), cause=cause, scenarios=np.array(scenarios), **points)
        print(format_table(report["causes"]))
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(head))
    return 0


if __name__ == "__main__":
    sys.exit(main())
