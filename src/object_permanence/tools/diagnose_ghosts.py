"""Why published ghosts are wrong: every ghost of our world model, classified.

    python -m object_permanence.tools.diagnose_ghosts [--scenarios cluttered,noisy,long_occlusion,crossing]
        [--seeds 10-29] [--out out/diagnose/ghosts.json] [--workers 2]

Each (scenario, seed) is simulated and detected (``realistic`` unless ``--difficulty``) and tracked
by the shipped world model (``config/world_model.yaml``), as ``make eval`` does. Every published
ghost (a track-frame in state OCCLUDED, both cameras) gets the first class that holds, in the order
of the ghost-precision metric's own conditions (:mod:`core.eval.ghosts`), so that ``correct`` is
exactly the metric's numerator:

* ``nuisance_track`` / ``unmatched_real``: the track is paired with no object by the IDF1 identity
  matching, and its detection-backed frames mostly covered a nuisance / a real object
  (:class:`core.eval.records.TrackToTruth`);
* ``no_truth``: its object has no ground-truth entry in that frame;
* ``in_view``: its object is visible (visibility >= 0.5) and detected in that frame: the tracker
  lost an object it could see;
* ``drift_position`` / ``drift_size`` / ``drift_both``: the box has IoU < 0.3 with the object's
  amodal box; the ghost's box moved onto the object's centre would pass (the position is what is
  off) / the object's size at the ghost's centre would pass (the size is off) / neither alone;
  ``drift`` when both alone would;
* ``correct``.

Each ghost is also binned by its age, frames since the track's last VISIBLE frame (``<5``,
``5-14``, ``15-29``, ``>=30``). Tuning seeds only (< 1000) unless ``--allow-held-out``. Prints the
share of each class per scenario; ``--out`` writes the counts as JSON.
"""
from __future__ import annotations

import functools
import json
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from object_permanence.core.eval.ghosts import GHOST_IOU, HIDDEN_VIS
from object_permanence.core.eval.matching import box_iou
from object_permanence.core.eval.mot import identity_matching
from object_permanence.core.eval.records import CameraIndex, FrameRecord, tracks_of
from object_permanence.core.types import TrackState
from object_permanence.tools.diagnose_runs import run_jobs, run_jobs_of, run_parser, tracked_records

CLASSES = ("correct", "nuisance_track", "unmatched_real", "no_truth", "in_view", "drift_position", "drift_size",
           "drift_both", "drift")
AGES = ("<5", "5-14", "15-29", ">=30")


def age_bin(frames: int) -> str:
    """The :data:`AGES` bin of a ghost ``frames`` after its track's last VISIBLE frame."""
    return AGES[int(np.searchsorted([5, 15, 30], frames, side="right"))]


def drift_class(ghost_box: np.ndarray, object_box: np.ndarray) -> str:
    """Which part of a drifted ghost box (``cx, cy, w, h``, IoU < GHOST_IOU with the object's) is off."""
    centred = np.r_[object_box[:2], ghost_box[2:]]  # the ghost's size at the object's centre
    resized = np.r_[ghost_box[:2], object_box[2:]]  # the object's size at the ghost's centre
    pos_ok, size_ok = (box_iou(b[None], object_box[None])[0, 0] >= GHOST_IOU for b in (centred, resized))
    return {(True, False): "drift_position", (False, True): "drift_size", (False, False): "drift_both"}.get(
        (pos_ok, size_ok), "drift")


def classify_ghosts(records: Sequence[FrameRecord], camera: str) -> Counter:
    """Counts of ``(class, age bin)`` over every OCCLUDED track-frame of ``camera`` (module docstring)."""
    index = CameraIndex(records, camera)
    matching = identity_matching(records, camera)
    out: Counter = Counter()
    last_visible: dict[int, int] = {}
    for t, rec in enumerate(records):
        for g in tracks_of(rec, camera):
            if g.state == TrackState.VISIBLE:
                last_visible[g.track_id] = t
            if g.state != TrackState.OCCLUDED:
                continue
            age = age_bin(t - last_visible.get(g.track_id, t))
            oid = matching.get(g.track_id)
            entry = None if oid is None else index.get(t, oid)
            if oid is None:
                cls = "unmatched_real" if index.truth.is_real(camera, g.track_id) else "nuisance_track"
            elif entry is None:
                cls = "no_truth"
            elif entry.visibility >= HIDDEN_VIS and entry.object_id in index.detected[t]:
                cls = "in_view"
            else:
                box, truth = np.asarray(g.box, np.float64), np.asarray(entry.box, np.float64)
                ok = box_iou(box[None], truth[None])[0, 0] >= GHOST_IOU
                cls = "correct" if ok else drift_class(box, truth)
            out[(cls, age)] += 1
    return out


def diagnose_run(job: tuple[str, int], difficulty: str, config_dir: Path, n_frames: int | None) -> dict:
    """Simulate, track and classify the ghosts of one (scenario, seed), both cameras."""
    scenario, seed = job
    seq, records = tracked_records(scenario, seed, difficulty, config_dir, n_frames)
    counts: Counter = Counter()
    for camera in seq.streams:
        counts += classify_ghosts(records, camera)
    return {"scenario": scenario, "seed": seed, "counts": {f"{c}|{a}": n for (c, a), n in counts.items()}}


def format_report(totals: dict[str, Counter]) -> str:
    """Per scenario: ghosts, precision, and each class's share (with its age bins)."""
    lines = []
    for scenario, counts in totals.items():
        n = sum(counts.values())
        by_class = Counter()
        for (cls, _), k in counts.items():
            by_class[cls] += k
        precision = 100.0 * by_class["correct"] / n if n else 0.0
        lines.append(f"{scenario}: {n} ghosts, precision {precision:.1f} %")
        for cls in CLASSES:
            if by_class[cls]:
                ages = ", ".join(f"{a} {counts[(cls, a)]}" for a in AGES if counts[(cls, a)])
                lines.append(f"  {cls:15s} {100.0 * by_class[cls] / n:5.1f} %  ({ages})")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = run_parser("diagnose_ghosts", __doc__, "write the counts as JSON here")
    args = parser.parse_args(argv)
    scenarios, seeds = run_jobs_of(parser, args)
    jobs = [(s, seed) for s in scenarios for seed in seeds]
    run = functools.partial(diagnose_run, difficulty=args.difficulty, config_dir=args.config_dir, n_frames=args.frames)
    results = run_jobs(run, jobs, args.workers)
    totals: dict[str, Counter] = {s: Counter() for s in scenarios}
    for r in results:
        for key, n in r["counts"].items():
            cls, age = key.split("|")
            totals[r["scenario"]][(cls, age)] += n
    print(f"ghosts of seeds {args.seeds}, {args.difficulty}, by class (age bins: frames since last VISIBLE):")
    print(format_report(totals))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"seeds": seeds, "difficulty": args.difficulty, "runs": results}, indent=1)
                            + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
