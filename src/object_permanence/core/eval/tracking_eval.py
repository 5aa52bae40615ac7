"""Tracking comparison: run trackers on evaluation sequences, score them, aggregate over seeds.

Every tracker (ours and the peers, :mod:`~object_permanence.core.eval.peers`) gets a fresh
instance per camera stream, stepped once per frame (stamp ``k / fps``, the image size known),
and is scored by the shared metrics of :mod:`~object_permanence.core.eval.metrics` — the same
functions for every tracker:

* ``hota``, ``idf1``, ``mota``: ``mot_metrics`` per camera (TrackEval), mean over the cameras
  with ground truth.
* ``id_switches_per_100_frames``: 100 · ID switches of all cameras / (cameras · frames).
* ``occlusion_recovery_rate``: :func:`occlusion_episodes`, recovered / episodes of all cameras.
* ``reacquire_error_px``: mean of the episodes' reacquire errors (ghost prediction vs. truth).
* ``ghost_precision``: :func:`ghost_counts` over every published ghost (the world model's raw
  output: no persistence filter here), correct / ghosts, against the IDF1 identity matching.

Per camera these are the figures the demo's ``evaluate_with_counts`` computes (for ghosts its
``ghosts_all`` counts), and the cameras are combined the same way.

A figure without samples (no episode, no ghost: a peer publishes no ghosts) is ``None`` (JSON
``null``), not 0. Over seeds (:func:`aggregate`), ``hota``, ``idf1`` and ``mota`` are the mean of
the per-seed values; the others pool their counts (switches over frames, recovered over episodes,
all reacquire errors, correct over ghosts), so a seed without episodes does not weigh as 0.
"""
from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from object_permanence.core.eval.metrics import FrameRecord, ghost_counts, occlusion_episodes
from object_permanence.core.eval.mot import mot_evaluation
from object_permanence.core.eval.peers import FrameTracker
from object_permanence.core.eval.records import CameraIndex
from object_permanence.core.eval.sequences import EvalSequence
from object_permanence.core.types import Track, TrackState

#: Keys of every row of ``tracking.json``, in order.
ROW_KEYS = ("dataset", "difficulty", "seeds", "tracker", "hota", "idf1", "mota", "id_switches_per_100_frames",
            "occlusion_recovery_rate", "reacquire_error_px", "ghost_precision")


@dataclass
class SequenceScore:
    """The figures and counts of one tracker on one sequence (all cameras).

    hota, idf1, mota: means over the cameras with ground truth; camera_frames: frames x cameras;
    id_switches, episodes, recovered, ghosts, ghosts_correct: sums over cameras;
    reacquire_errors: every episode's error in pixels.
    """

    dataset: str
    difficulty: str
    seed: int
    tracker: str
    hota: float
    idf1: float
    mota: float
    camera_frames: int
    id_switches: int
    episodes: int = 0
    recovered: int = 0
    reacquire_errors: list[float] = field(default_factory=list)
    ghosts: int = 0
    ghosts_correct: int = 0


def run_tracker(seq: EvalSequence, make: Callable[[], FrameTracker]) -> dict[str, list[list[Track]]]:
    """Track every camera stream of ``seq`` with a fresh tracker from ``make``; returns, per
    camera, the published tracks of each frame."""
    out: dict[str, list[list[Track]]] = {}
    for cam, stream in seq.streams.items():
        tracker = make()
        out[cam] = [tracker.step(k / seq.fps, dets, seq.image_size) for k, dets in enumerate(stream.detections)]
    return out


def confirmed(tracks: Sequence[Track]) -> list[Track]:
    """``tracks`` without the TENTATIVE ones."""
    return [t for t in tracks if t.state != TrackState.TENTATIVE]


def build_records(seq: EvalSequence, tracks: Mapping[str, list[list[Track]]]) -> list[FrameRecord]:
    """One :class:`FrameRecord` per frame: ground truth, confirmed tracks and detections (which
    tell an undetected object from a tracked one) of the sequence's cameras; a camera the sequence
    lacks stays empty. TENTATIVE tracks (a world model publishing them for its persistence filter,
    ``publish_tentative``) are left out: a tracker is judged on what it confirms, and the label of
    a track (which object it covers) on its confirmed frames."""
    records = []
    for k in range(seq.n_frames):
        kwargs: dict[str, Any] = {}
        for cam, stream in seq.streams.items():
            kwargs[f"gt_{cam}"] = stream.truth[k]
            kwargs[f"tracks_{cam}"] = confirmed(tracks[cam][k])
            kwargs[f"detections_{cam}"] = stream.detections[k]
        records.append(FrameRecord(index=k, stamp=k / seq.fps, **kwargs))
    return records


def score_run(seq: EvalSequence, tracker: str, tracks: Mapping[str, list[list[Track]]],
                   identity_only: bool = False) -> SequenceScore:
    """Score one tracker's output on ``seq`` with the shared metrics (see the module docstring).
    ``identity_only``: only the MOT figures (HOTA, IDF1, MOTA, switches), e.g. for tuning."""
    records = build_records(seq, tracks)
    cams = list(seq.streams)
    mot = {cam: mot_evaluation(records, cam) for cam in cams}
    scored = [m.metrics for m in mot.values() if m.metrics["num_gt_dets"] > 0] or [m.metrics for m in mot.values()]
    score = SequenceScore(
        dataset=seq.dataset, difficulty=seq.difficulty, seed=seq.seed, tracker=tracker,
        hota=statistics.fmean(m["hota"] for m in scored), idf1=statistics.fmean(m["idf1"] for m in scored),
        mota=statistics.fmean(m["mota"] for m in scored), camera_frames=len(cams) * seq.n_frames,
        id_switches=sum(int(m.metrics["num_switches"]) for m in mot.values()))
    if identity_only:
        return score
    for cam in cams:
        index = CameraIndex(records, cam)
        recovered, episodes, errors = occlusion_episodes(records, cam, index=index)
        correct, ghosts = ghost_counts(records, cam, mot[cam].matching, index=index)
        score.recovered += int(recovered)
        score.episodes += int(episodes)
        score.reacquire_errors += [float(e) for e in errors]
        score.ghosts_correct += int(correct)
        score.ghosts += int(ghosts)
    return score


def _ratio_or_none(num: float, den: float) -> float | None:
    return float(num) / float(den) if den > 0 else None


def aggregate(scores: Sequence[SequenceScore]) -> dict[str, Any]:
    """One ``tracking.json`` row (keys :data:`ROW_KEYS`) from the scores of one tracker on one
    dataset and difficulty over its seeds (see the module docstring for mean vs. pooled).

    Raises:
        ValueError: empty ``scores``, or scores of different trackers, datasets or difficulties.
    """
    if not scores:
        raise ValueError("aggregate needs at least one score")
    keys = {(s.dataset, s.difficulty, s.tracker) for s in scores}
    if len(keys) != 1:
        raise ValueError(f"aggregate takes one tracker, dataset and difficulty; got {sorted(keys)}")
    first = scores[0]
    errors = [e for s in scores for e in s.reacquire_errors]
    switches = _ratio_or_none(sum(s.id_switches for s in scores), sum(s.camera_frames for s in scores))
    return {
        "dataset": first.dataset,
        "difficulty": first.difficulty,
        "seeds": sorted(s.seed for s in scores),
        "tracker": first.tracker,
        "hota": statistics.fmean(s.hota for s in scores),
        "idf1": statistics.fmean(s.idf1 for s in scores),
        "mota": statistics.fmean(s.mota for s in scores),
        "id_switches_per_100_frames": None if switches is None else 100.0 * switches,
        "occlusion_recovery_rate": _ratio_or_none(sum(s.recovered for s in scores), sum(s.episodes for s in scores)),
        "reacquire_error_px": statistics.fmean(errors) if errors else None,
        "ghost_precision": _ratio_or_none(sum(s.ghosts_correct for s in scores), sum(s.ghosts for s in scores)),
    }


def rows_from_scores(scores: Sequence[SequenceScore], trackers: Sequence[str], difficulty_order: Sequence[str] = (),
                     dataset_order: Sequence[str] = ()) -> list[dict[str, Any]]:
    """``tracking.json`` rows: the :func:`aggregate` of every (difficulty, dataset, tracker) over its
    seeds, ordered by difficulty then dataset (as listed in the orders; unlisted ones after, by
    name) then tracker (in ``trackers`` order; others are left out)."""
    groups: dict[tuple[str, str], dict[str, list[SequenceScore]]] = {}
    for s in scores:
        groups.setdefault((s.difficulty, s.dataset), {}).setdefault(s.tracker, []).append(s)
    rank_d = {d: i for i, d in enumerate(difficulty_order)}
    rank_s = {d: i for i, d in enumerate(dataset_order)}
    keys = sorted(groups, key=lambda k: (rank_d.get(k[0], len(rank_d)), k[0] if k[0] not in rank_d else "",
                                         rank_s.get(k[1], len(rank_s)), k[1] if k[1] not in rank_s else ""))
    return [aggregate(groups[key][t]) for key in keys for t in trackers if t in groups[key]]


def identity_objective(scores: Sequence[SequenceScore]) -> float:
    """The peers' tuning objective: mean over sequences of (HOTA + IDF1) / 2, in [0, 1]."""
    if not scores:
        raise ValueError("identity_objective needs at least one score")
    return statistics.fmean((s.hota + s.idf1) / 2.0 for s in scores)
