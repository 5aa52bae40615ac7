"""Where our world model's ID switches come from: every CLEAR switch, classified.

    python -m object_permanence.tools.diagnose_switches [--scenarios cluttered,noisy]
        [--seeds 10-29] [--out out/diagnose/switches.json] [--workers 2]

Each (scenario, seed) is simulated, detected (``realistic`` unless ``--difficulty``) and tracked by
the shipped world model as ``make eval`` does (:func:`diagnose_runs.tracked_records`). The switches
are CLEAR MOT's, found by replaying TrackEval's own matching on the same preprocessed sequence
(:func:`clear_switches`; their count per camera equals TrackEval's ``IDSW``). Each switch of an
object from its old track to a new one at frame ``t`` is classified by

* ``new_track``: the new track first appeared after the object's last match (a new identity for
  an object that came back) — else ``older_track`` (a track that existed before: a swap);
* the old track's state at ``t``: VISIBLE, OCCLUDED, LOST or ``gone`` (no longer published);
* the gap: frames since the object's last match (``1``, ``<10``, ``>=10``).

Tuning seeds only (< 1000) unless ``--allow-held-out``. Prints the count of each class per
scenario; ``--out`` writes every switch as JSON.
"""
from __future__ import annotations

import functools
import json
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from object_permanence.core.eval.mot import MOT_IOU, mot_rows, preprocess
from object_permanence.core.eval.records import FrameRecord, tracks_of
from object_permanence.tools.diagnose_runs import run_jobs, run_jobs_of, run_parser, tracked_records

_EPS = np.finfo("float").eps


def clear_switches(data: dict, threshold: float = MOT_IOU) -> list[tuple[int, int, int, int, int]]:
    """The ID switches of a preprocessed sequence (TrackEval's layout: per-frame ``gt_ids``,
    ``tracker_ids``, ``similarity_scores``) as CLEAR counts them: ``(t, gt, old tracker, new
    tracker, frame of the old match)`` labels. Matching per frame as TrackEval's CLEAR: a pair
    matched in the previous frame is preferred (+1000), pairs below ``threshold`` IoU are not
    allowed, Hungarian; a switch is a match to another tracker than the object's last match (at any
    earlier frame)."""
    last_match: dict[int, tuple[int, int]] = {}  # gt label -> (tracker label, frame) of its last match
    prev_step: dict[int, int] = {}  # gt label -> tracker label matched in the previous frame
    out = []
    for t, (gt, trk, sim) in enumerate(zip(data["gt_ids"], data["tracker_ids"], data["similarity_scores"])):
        step: dict[int, int] = {}
        if len(gt) and len(trk):
            previous = np.array([prev_step.get(int(g), -1) for g in gt])
            score = 1000.0 * (previous[:, None] == trk[None, :]) + sim
            score[sim < threshold - _EPS] = 0.0
            rows, cols = linear_sum_assignment(-score)
            ok = score[rows, cols] > _EPS
            for g, h in zip(gt[rows[ok]].tolist(), trk[cols[ok]].tolist()):
                if g in last_match and last_match[g][0] != h:
                    out.append((t, g, last_match[g][0], h, last_match[g][1]))
                last_match[g] = (h, t)
                step[g] = h
        prev_step = step
    return out


def classify_switches(records: Sequence[FrameRecord], camera: str) -> list[dict[str, Any]]:
    """Every CLEAR switch of one camera's records, classified (module docstring)."""
    seq = preprocess(mot_rows(records, camera))
    first_seen: dict[int, int] = {}
    for t, trk in enumerate(seq.data["tracker_ids"]):
        for h in trk.tolist():
            first_seen.setdefault(h, t)
    out = []
    for t, g, old, new, last in clear_switches(seq.data):
        old_id = int(seq.tracker_labels[old])
        states = {trk.track_id: trk.state.name for trk in tracks_of(records[t], camera)}
        out.append(dict(frame=t, object_id=int(seq.gt_labels[g]), old_track=old_id,
                        new_track=int(seq.tracker_labels[new]), gap=t - last,
                        taken_by="new_track" if first_seen[new] > last else "older_track",
                        old_state=states.get(old_id, "gone")))
    return out


def gap_class(gap: int) -> str:
    """``1``, ``<10`` or ``>=10`` frames since the object's last match."""
    return "1" if gap <= 1 else "<10" if gap < 10 else ">=10"


def diagnose_run(job: tuple[str, int], difficulty: str, config_dir: Path, n_frames: int | None) -> list[dict[str, Any]]:
    """The classified switches of both cameras of one (scenario, seed)."""
    scenario, seed = job
    _, records = tracked_records(scenario, seed, difficulty, config_dir, n_frames)
    return [dict(scenario=scenario, seed=seed, camera=camera, **s)
            for camera in ("left", "right") for s in classify_switches(records, camera)]


def report(scenarios: Sequence[str], switches: Sequence[dict[str, Any]],
           classify: Callable[[dict[str, Any]], tuple[str, ...]], out: Path | None, header: dict[str, Any]) -> None:
    """Print how many ``switches`` fall in each class (``classify``: a switch's printed fields),
    per scenario, most first; with ``out``, write ``header`` and every switch there as JSON."""
    classes = Counter((s["scenario"], *classify(s)) for s in switches)
    for scenario in scenarios:
        rows = sorted(((k, n) for k, n in classes.items() if k[0] == scenario), key=lambda kn: -kn[1])
        print(f"  {scenario}: {sum(n for _, n in rows)}")
        for key, n in rows:
            print(f"    {n:4d}  " + " ".join(key[1:]))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({**header, "switches": list(switches)}, indent=1) + "\n", encoding="utf-8")


def run_main(prog: str, doc: str | None, diagnose: Callable[..., list[dict[str, Any]]], title: str,
             classify: Callable[[dict[str, Any]], tuple[str, ...]], argv: Sequence[str] | None) -> int:
    """A switch diagnosis tool's command line: ``diagnose(job, difficulty, config_dir, n_frames)``
    on every (scenario, seed), then :func:`report` under ``title`` (its seeds and difficulty
    filled in)."""
    parser = run_parser(prog, doc, "write every switch as JSON here")
    args = parser.parse_args(argv)
    scenarios, seeds = run_jobs_of(parser, args)
    run = functools.partial(diagnose, difficulty=args.difficulty, config_dir=args.config_dir, n_frames=args.frames)
    switches = [s for r in run_jobs(run, [(s, seed) for s in scenarios for seed in seeds], args.workers) for s in r]
    print(title.format(seeds=args.seeds, difficulty=args.difficulty))
    report(scenarios, switches, classify, args.out, {"seeds": seeds, "difficulty": args.difficulty})
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_main("diagnose_switches", __doc__, diagnose_run,
                    "ID switches, seeds {seeds}, {difficulty}, both cameras, by (taken by, old track then, gap):",
                    lambda s: (f"{s['taken_by']:11s}", f"{s['old_state']:9s}", f"gap {gap_class(s['gap'])}"), argv)


if __name__ == "__main__":
    sys.exit(main())
