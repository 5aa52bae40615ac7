"""Where a ghost's position error comes from: its start, its velocity, or the object's curved path.

    python -m object_permanence.tools.diagnose_ghost_motion [--scenarios cluttered,long_occlusion,crossing]
        [--seeds 10-17] [--out out/diagnose/ghost_motion.json] [--workers 2]

Each (scenario, seed) is simulated, detected and tracked by the shipped world model as ``make eval``
does (:func:`diagnose_runs.tracked_records`). For every ghost *onset* of a track that the IDF1
identity matching pairs with an object (a frame ``t0`` in state OCCLUDED right after a VISIBLE one,
published again at ``t0 + 1``), and each age ``k`` in :data:`AGES` at which the ghost is still
published, unseen since ``t0``, and the object has a ground-truth entry, the centre errors in pixels against the
object's amodal box centre ``c(t)``:

* ``ghost``: the published ghost's, ``|g(t0 + k) - c(t0 + k)|``;
* ``onset``: where it started, ``|g(t0) - c(t0)|``;
* ``velocity``: its velocity's share, ``k |v_g - v_c|``, ``v_g = g(t0 + 1) - g(t0)`` (a ghost only
  predicts: its velocity is constant) and ``v_c`` the object's over the 4 frames before ``t0``;
* ``curvature``: what a constant velocity misses even when it starts right,
  ``|c(t0) + k v_c - c(t0 + k)|`` (the path's own turn);
* two other velocities the ghost could have had, as ``k |v - v_c|``: ``mean_velocity``, the mean of
  the track's filter velocity over its VISIBLE frames among the 10 before ``t0``, and
  ``whole_box_fit``, a least-squares line through the centres of its last (up to 8) detections of
  the object's whole extent (``w``, ``h`` within 15 % of their median over the last 30), the
  boxes a partial occlusion has not yet cut.

Prints the median and mean of each per age (and the mean as a fraction of the object's width).
Tuning seeds only (< 1000) unless ``--allow-held-out``; ``--out`` writes the per-age summary as JSON.
"""
from __future__ import annotations

import functools
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from object_permanence.core.eval.mot import identity_matching
from object_permanence.core.eval.records import CameraIndex, FrameRecord, tracks_of
from object_permanence.core.extent_gain import WHOLE_TOLERANCE
from object_permanence.core.types import Track, TrackState
from object_permanence.tools.diagnose_runs import run_jobs, run_jobs_of, run_parser, tracked_records

#: Ghost ages (frames after the onset) at which the errors are taken.
AGES = (5, 10, 15, 20)
#: Error columns of a sample, after its age and the object's width.
COLUMNS = ("ghost", "onset", "velocity", "curvature", "mean_velocity", "whole_box_fit")
#: Frames over which the object's true velocity is taken before the onset.
TRUE_VELOCITY_FRAMES = 4


def _whole_box_velocity(history: dict[int, Track], t0: int) -> np.ndarray | None:
    """(2,) px per frame: the least-squares slope of the last (up to 8) whole-extent detection
    centres within 40 frames before ``t0``, or None with fewer than 3 such detections."""
    seen = [(u, np.asarray(history[u].measurement, float)) for u in range(max(0, t0 - 40), t0)
            if u in history and history[u].measurement is not None]
    if len(seen) < 3:
        return None
    size = np.median(np.stack([m[2:4] for _, m in seen[-30:]]), axis=0)
    whole = [(u, m) for u, m in seen if np.all(np.abs(m[2:4] / size - 1.0) <= WHOLE_TOLERANCE)][-8:]
    if len(whole) < 3:
        return None
    frames = np.array([u for u, _ in whole], float)
    design = np.c_[frames - frames[-1], np.ones(frames.size)]
    return np.linalg.lstsq(design, np.stack([m[:2] for _, m in whole]), rcond=None)[0][0]


def onset_samples(records: Sequence[FrameRecord], camera: str, fps: float) -> list[tuple[float, ...]]:
    """One ``(age, object width, *COLUMNS)`` row per ghost onset and age of ``camera`` (module
    docstring); an alternative velocity that cannot be formed is NaN."""
    index = CameraIndex(records, camera)
    matching = identity_matching(records, camera)
    histories: dict[int, dict[int, Track]] = {}
    for t, rec in enumerate(records):
        for track in tracks_of(rec, camera):
            histories.setdefault(track.track_id, {})[t] = track
    rows: list[tuple[float, ...]] = []
    for track_id, history in histories.items():
        object_id = matching.get(track_id)
        if object_id is None:
            continue
        for t0, track in history.items():
            before, after = history.get(t0 - 1), history.get(t0 + 1)
            if (track.state != TrackState.OCCLUDED or before is None or before.state != TrackState.VISIBLE
                    or after is None or after.state != TrackState.OCCLUDED or t0 < TRUE_VELOCITY_FRAMES):
                continue
            now, earlier = index.get(t0, object_id), index.get(t0 - TRUE_VELOCITY_FRAMES, object_id)
            if now is None or earlier is None:
                continue
            c0 = np.asarray(now.box[:2], float)
            v_true = (c0 - np.asarray(earlier.box[:2], float)) / TRUE_VELOCITY_FRAMES
            g0 = np.asarray(track.box[:2], float)
            v_ghost = np.asarray(after.box[:2], float) - g0
            visible = [history[u].velocity for u in range(t0 - 10, t0)
                       if u in history and history[u].state == TrackState.VISIBLE]
            v_mean = np.mean(visible, axis=0) / fps if visible else np.full(2, np.nan)
            v_fit = _whole_box_velocity(history, t0)
            v_fit = np.full(2, np.nan) if v_fit is None else v_fit
            for k in AGES:
                ghost, entry = history.get(t0 + k), index.get(t0 + k, object_id) if t0 + k < len(records) else None
                if (ghost is None or ghost.state != TrackState.OCCLUDED or entry is None
                        or ghost.frames_since_seen != track.frames_since_seen + k):  # unseen throughout
                    continue
                ck = np.asarray(entry.box[:2], float)
                rows.append((k, float(entry.box[2]), float(np.linalg.norm(np.asarray(ghost.box[:2]) - ck)),
                             float(np.linalg.norm(g0 - c0)), float(k * np.linalg.norm(v_ghost - v_true)),
                             float(np.linalg.norm(c0 + k * v_true - ck)), float(k * np.linalg.norm(v_mean - v_true)),
                             float(k * np.linalg.norm(v_fit - v_true))))
    return rows


def diagnose_run(job: tuple[str, int], difficulty: str, config_dir: Path, n_frames: int | None) -> list:
    """Simulate and track one (scenario, seed); its samples, both cameras."""
    scenario, seed = job
    seq, records = tracked_records(scenario, seed, difficulty, config_dir, n_frames)
    return [row for camera in seq.streams for row in onset_samples(records, camera, seq.fps)]


def summarise(rows: Sequence[tuple[float, ...]]) -> dict[str, dict]:
    """Per age: the sample count and, per column, median and mean px and mean / object width."""
    table = np.asarray(rows, float).reshape(-1, 2 + len(COLUMNS))
    out: dict[str, dict] = {}
    for k in AGES:
        at = table[table[:, 0] == k]
        if not len(at):
            continue
        cells = {}
        for j, name in enumerate(COLUMNS, start=2):
            ok = np.isfinite(at[:, j])
            cells[name] = {"median_px": float(np.median(at[ok, j])) if ok.any() else None,
                           "mean_px": float(np.mean(at[ok, j])) if ok.any() else None,
                           "mean_frac_width": float(np.mean(at[ok, j] / at[ok, 1])) if ok.any() else None,
                           "n": int(ok.sum())}
        out[str(k)] = {"n": len(at), **cells}
    return out


def format_report(summary: dict[str, dict]) -> str:
    """A table: per age, each column's median / mean px (mean fraction of the object's width)."""
    lines = [f"{'age':>4} {'n':>5} " + " ".join(f"{c:>24}" for c in COLUMNS)]
    for age, row in summary.items():
        cells = [f"{row[c]['median_px']:6.1f} / {row[c]['mean_px']:6.1f} ({row[c]['mean_frac_width']:.2f})"
                 if row[c]["n"] else f"{'-':>24}" for c in COLUMNS]
        lines.append(f"{age:>4} {row['n']:>5} " + " ".join(f"{c:>24}" for c in cells))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = run_parser("diagnose_ghost_motion", __doc__, "write the per-age summary as JSON here")
    parser.set_defaults(scenarios="cluttered,long_occlusion,crossing", seeds="10-17")
    args = parser.parse_args(argv)
    scenarios, seeds = run_jobs_of(parser, args)
    run = functools.partial(diagnose_run, difficulty=args.difficulty, config_dir=args.config_dir, n_frames=args.frames)
    rows = [row for result in run_jobs(run, [(s, seed) for s in scenarios for seed in seeds], args.workers)
            for row in result]
    summary = summarise(rows)
    print(f"ghost centre errors after the onset, {','.join(scenarios)}, seeds {args.seeds}, {args.difficulty} "
          "(px, median / mean, mean / object width):")
    print(format_report(summary))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"scenarios": scenarios, "seeds": seeds, "difficulty": args.difficulty,
                                        "ages": summary}, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
