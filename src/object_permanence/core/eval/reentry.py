"""Re-entry identity: does an object that left the view get its old identity back when it returns,
and is a look-alike newcomer kept apart from the object it resembles?

Per camera, over the records of one sequence (record positions, see ``records.py``):

* An object is *out of view* at t when it has no ground-truth entry or its amodal box (clipped to
  the image by the simulator) has zero area: wholly outside the image — not merely hidden behind
  something, which is the occlusion metric's business (:mod:`.occlusion`).
* A *return* is a maximal out-of-view run of at least ``min_away_frames`` (default 2 s of frames)
  with the object in view before and after it. Its *identity before* is the id of the last
  VISIBLE track covering the object (:class:`records.CameraIndex` ``covering``: Hungarian, IoU ≥
  0.3) in the in-view stretch before the run; without one the tracker never held the object and
  the return is not counted. Its *identity after* is the id of the first VISIBLE track covering it
  in the in-view stretch after the run. The return *keeps its identity* when the two are equal; a
  return never covered afterwards counts as not kept.
* A *look-alike newcomer* (``newcomers``: object ids, e.g. the simulator's objects with
  ``SimObjectSpec.lookalike_of`` set) is *wrongly re-identified* when some VISIBLE track covering
  it during its first in-view stretch carries an *old* id: one that covered another object
  before the newcomer first came into view. A newcomer never covered in that stretch counts in
  the denominator, not as an error.

Every tracker's output is judged the same way (the peers' ids too).
"""
from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np

from object_permanence.core.eval.occlusion import runs
from object_permanence.core.eval.records import CameraIndex, FrameRecord, camera_index
from object_permanence.core.types import TrackState

#: Shortest absence (seconds) that makes a return, as the re-entry bar defines it.
MIN_AWAY_S = 2.0


@dataclass
class ReentryCounts:
    """Counts of one camera (or summed over cameras and sequences).

    returns: counted returns; kept: those that kept their identity; newcomers: look-alike newcomers
    that came into view; wrong: those wrongly given an old identity.
    """

    returns: int = 0
    kept: int = 0
    newcomers: int = 0
    wrong: int = 0

    def __add__(self, other: ReentryCounts) -> ReentryCounts:
        return ReentryCounts(self.returns + other.returns, self.kept + other.kept,
                             self.newcomers + other.newcomers, self.wrong + other.wrong)

    @property
    def identity_rate(self) -> float | None:
        """kept / returns, None without returns."""
        return self.kept / self.returns if self.returns else None

    @property
    def lookalike_error_rate(self) -> float | None:
        """wrong / newcomers, None without newcomers."""
        return self.wrong / self.newcomers if self.newcomers else None


def _in_view(index: CameraIndex, oid: int) -> np.ndarray:
    """(T,) bool: ``oid`` listed with a box of positive area."""
    return np.array([(g := frame.get(oid)) is not None and float(g.box[2]) > 0.0 and float(g.box[3]) > 0.0
                     for frame in index.frames], dtype=bool)


def _visible_ids(index: CameraIndex, oid: int) -> list[int | None]:
    """Per position, the id of the VISIBLE track covering ``oid`` (None where none)."""
    return [trk.track_id if (trk := cover.get(oid)) is not None and trk.state == TrackState.VISIBLE else None
            for cover in index.covering]


def reentry_counts(records: Sequence[FrameRecord], camera: str = "left", fps: float = 30.0,
                   newcomers: Collection[int] = (), min_away_s: float = MIN_AWAY_S, *,
                   index: CameraIndex | None = None) -> ReentryCounts:
    """Returns and look-alike newcomers of one camera (definitions: module docstring).

    fps: frames per second of the records (``min_away_s`` in frames is ``ceil(min_away_s fps)``);
    newcomers: ids of the look-alike newcomers; index: a shared :class:`CameraIndex`.

    Raises:
        ValueError: unknown ``camera``, records not consecutive, ``fps`` or ``min_away_s`` not positive.
    """
    if not (np.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number; got {fps}")
    if not (np.isfinite(min_away_s) and min_away_s > 0):
        raise ValueError(f"min_away_s must be a positive number; got {min_away_s}")
    index = camera_index(records, camera, index)
    min_frames = int(np.ceil(min_away_s * fps - 1e-9))
    counts = ReentryCounts()
    newcomer_set = set(newcomers)
    first_cover: dict[int, dict[int, int]] = {}  # track id -> {object id: first position covered}
    ids_of: dict[int, list[int | None]] = {}
    for oid in index.objects():
        ids_of[oid] = ids = _visible_ids(index, oid)
        for t, tid in enumerate(ids):
            if tid is not None:
                first_cover.setdefault(tid, {}).setdefault(oid, t)
    for oid, ids in ids_of.items():
        stretches = runs(_in_view(index, oid))
        if oid in newcomer_set and stretches:
            counts.newcomers += 1
            start, end = stretches[0]
            # old: the id covered another object before the newcomer came into view
            counts.wrong += int(any(
                tid is not None and any(o != oid and t < start for o, t in first_cover[tid].items())
                for tid in set(ids[start:end])))
        for (b0, b1), (a0, a1) in zip(stretches, stretches[1:]):
            if a0 - b1 < min_frames:
                continue
            before = next((tid for tid in reversed(ids[b0:b1]) if tid is not None), None)
            if before is None:
                continue
            after = next((tid for tid in ids[a0:a1] if tid is not None), None)
            counts.returns += 1
            counts.kept += int(after == before)
    return counts


#: Keys added to every ``tracking.json`` row: returns counted, the share keeping their identity,
#: look-alike newcomers counted, the share wrongly given an old identity (None: none counted).
REENTRY_KEYS = ("reentry_returns", "reentry_identity", "lookalike_newcomers", "lookalike_errors")


def reentry_fields(counts: ReentryCounts) -> dict[str, int | float | None]:
    """The :data:`REENTRY_KEYS` of ``counts``."""
    return {"reentry_returns": counts.returns, "reentry_identity": counts.identity_rate,
            "lookalike_newcomers": counts.newcomers, "lookalike_errors": counts.lookalike_error_rate}


def add_reentry_columns(rows: Sequence[dict], counts: Sequence[tuple[str, str, str, ReentryCounts]]) -> None:
    """Add the :data:`REENTRY_KEYS` to each row (keys ``dataset``, ``difficulty``, ``tracker``) from
    the ``(dataset, difficulty, tracker, counts)`` of its sequences, pooled (summed) over seeds."""
    pooled: dict[tuple[str, str, str], ReentryCounts] = {}
    for dataset, difficulty, tracker, c in counts:
        key = (dataset, difficulty, tracker)
        pooled[key] = pooled.get(key, ReentryCounts()) + c
    for row in rows:
        row.update(reentry_fields(pooled.get((row["dataset"], row["difficulty"], row["tracker"]), ReentryCounts())))


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100.0 * value:.1f}"


def reentry_markdown(rows: Sequence[dict]) -> str:
    """A markdown table of the re-entry columns of ``rows`` with at least one return or newcomer:
    difficulty, dataset, tracker, returns, identity kept (%), newcomers, wrongly re-identified (%)."""
    lines = ["### Re-entry: identity after >= 2 s out of view, look-alike newcomers\n",
             "| difficulty | dataset | tracker | returns | identity kept | look-alike newcomers "
             "| wrongly re-identified |",
             "|---|---|---|---:|---:|---:|---:|"]
    lines += [f"| {r['difficulty']} | {r['dataset']} | {r['tracker']} | {r['reentry_returns']} | "
              f"{_percent(r['reentry_identity'])} | {r['lookalike_newcomers']} | {_percent(r['lookalike_errors'])} |"
              for r in rows if r.get("reentry_returns") or r.get("lookalike_newcomers")]
    return "\n".join(lines) + "\n"
