"""Why occlusion episodes fail: each failed episode of our world model, classified.

    python -m object_permanence.tools.diagnose_episodes [--scenarios crossing,cluttered]
        [--seeds 10-29] [--max-length 30] [--out out/diagnose/episodes.json] [--workers 2]

Each (scenario, seed) is simulated and detected (``realistic`` unless ``--difficulty``) and tracked
by the shipped world model (``config/world_model.yaml``), as ``make eval`` does; the occlusion
episodes of each camera are those of the metric (:func:`core.eval.occlusion.find_episodes`), the
ones of at most ``--max-length`` gap frames (the issue's bar: 30). A failed episode is classified by

* ``taken_by``: what covered the object first after the gap: ``new_track`` (a track started
  after the gap began: the old identity was not given back), ``other_track`` (an older track, on
  another object before), ``none`` (nothing in the reacquire window);
* the old track's fate: its state at the reacquire frame (``OCCLUDED``: its ghost was alive but
  did not take the object; ``VISIBLE``: it was on something else; ``gone``: LOST before, or
  never published again), and the frame, relative to the gap's start, at which it was last
  published, its state and hits then (a LOST ghost of many hits was in the gallery, one of fewer
  than ``gallery_min_hits`` was not);
* the ghost's reacquire error (px; None without a published ghost).

Tuning seeds only (< 1000) unless ``--allow-held-out``. Prints the recovery and the mean reacquire
error (px, over the counted episodes with a published ghost, recovered or not: ``eval_motion``'s
``short_reacquire_error_px``, the issue's < 20 px bar) per scenario and pooled, and the failures
by class; ``--out`` writes the counts, the errors and every failed episode as JSON.
"""
from __future__ import annotations

import functools
import json
import statistics
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from object_permanence.core.eval.occlusion import find_episodes
from object_permanence.core.eval.records import CameraIndex, FrameRecord, tracks_of
from object_permanence.tools.diagnose_runs import run_jobs, run_jobs_of, run_parser, tracked_records


def failed_episodes(records: Sequence[FrameRecord], camera: str,
                    max_length: int) -> tuple[int, list[float], list[dict[str, Any]]]:
    """``(episodes, errors, failures)`` of one camera: the number of episodes whose gap is at most
    ``max_length`` frames, the reacquire errors (px) of those with a published ghost, and one dict
    per failed one (module docstring)."""
    index = CameraIndex(records, camera)
    ids_at = [{t.track_id: t for t in tracks_of(rec, camera)} for rec in records]
    first_seen: dict[int, int] = {}
    for k, tracks in enumerate(ids_at):
        for tid in tracks:
            first_seen.setdefault(tid, k)
    episodes, errors, failures = 0, [], []
    for ep in find_episodes(index):
        start, end = ep.gap
        if end - start > max_length:
            continue
        episodes += 1
        if ep.error_px is not None:
            errors.append(float(ep.error_px))
        if ep.recovered:
            continue
        if ep.track_after is None:
            taken_by = "none"
        else:
            taken_by = "new_track" if first_seen[ep.track_after] >= start else "other_track"
        old = ids_at[ep.reacquire].get(ep.track_before)
        last = next(((k, ids_at[k][ep.track_before]) for k in range(ep.reacquire, ep.anchor - 1, -1)
                     if ep.track_before in ids_at[k]), None)
        failures.append({
            "camera": camera, "object_id": int(ep.object_id), "gap": [int(start), int(end)],
            "error_px": None if ep.error_px is None else round(float(ep.error_px), 1),
            "taken_by": taken_by, "old_state_at_reacquire": "gone" if old is None else old.state.name,
            "old_last_published": None if last is None else
            {"frame_from_gap_start": last[0] - start, "state": last[1].state.name, "hits": int(last[1].hits)},
        })
    return episodes, errors, failures


def diagnose_run(job: tuple[str, int], difficulty: str, max_length: int, config_dir: Path,
                 n_frames: int | None) -> dict[str, Any]:
    """Simulate, track and classify one (scenario, seed)."""
    scenario, seed = job
    seq, records = tracked_records(scenario, seed, difficulty, config_dir, n_frames)
    episodes, errors, failures = 0, [], []
    for camera in seq.streams:
        n, e, f = failed_episodes(records, camera, max_length)
        episodes += n
        errors += e
        failures += [{"scenario": scenario, "seed": seed, **x} for x in f]
    return {"scenario": scenario, "seed": seed, "episodes": episodes, "errors": errors, "failures": failures}


def _summary(name: str, n: int, n_failed: int, errors: Sequence[float]) -> str:
    """One printed line: episodes, failures, recovery and mean reacquire error."""
    rate = f"{100.0 * (n - n_failed) / n:5.1f} %" if n else "    —"
    error = f"{statistics.fmean(errors):5.1f} px ({len(errors)})" if errors else "    —"
    return f"  {name:15s} {n:4d} episodes, {n_failed:3d} failed, recovery {rate}, reacquire error {error}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = run_parser("diagnose_episodes", __doc__, "write every failed episode as JSON here")
    parser.add_argument("--max-length", type=int, default=30, help="longest gap (frames) of an episode counted")
    args = parser.parse_args(argv)
    scenarios, seeds = run_jobs_of(parser, args)
    if args.max_length < 1:
        parser.error("--max-length must be >= 1")
    jobs = [(s, seed) for s in scenarios for seed in seeds]
    run = functools.partial(diagnose_run, difficulty=args.difficulty, max_length=args.max_length,
                            config_dir=args.config_dir, n_frames=args.frames)
    results = run_jobs(run, jobs, args.workers)
    episodes, failed = Counter(), Counter()
    errors: dict[str, list[float]] = {s: [] for s in scenarios}
    classes: Counter = Counter()
    failures = [f for r in results for f in r["failures"]]
    for r in results:
        episodes[r["scenario"]] += r["episodes"]
        failed[r["scenario"]] += len(r["failures"])
        errors[r["scenario"]] += r["errors"]
    for f in failures:
        last = f["old_last_published"]
        classes[(f["taken_by"], f["old_state_at_reacquire"], None if last is None else last["state"])] += 1
    print(f"episodes of at most {args.max_length} gap frames, seeds {args.seeds}, {args.difficulty}:")
    for s in scenarios:
        print(_summary(s, episodes[s], failed[s], errors[s]))
    print(_summary("pooled", sum(episodes.values()), len(failures), [e for s in scenarios for e in errors[s]]))
    print("failures by (taken by, old track at the reacquire frame, its last published state):")
    for (taken, now, last), count in classes.most_common():
        print(f"  {count:4d}  {taken:11s} {now:9s} last {last}")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"seeds": seeds, "difficulty": args.difficulty, "max_length": args.max_length,
                                        "episodes": dict(episodes), "reacquire_errors_px": errors,
                                        "failures": failures}, indent=1) + "\n",
                            encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
