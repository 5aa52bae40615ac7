"""Occlusion recovery and reacquire error: does an object keep its identity through a long gap?

An *episode* of one ``OBJECT`` in one camera (record positions, see ``records.py``):

1. a gap: a maximal run of ≥ ``min_gap`` (10) frames in which the object is hidden
   (``visibility < hidden_vis`` = 0.25, or unlisted) or undetected (no detection with IoU ≥ 0.5 with
   its amodal or visible box — a detector miss is the tracker's occlusion too), **in which the
   object is hidden at least once**: a gap of misses alone, the object in plain view throughout, is
   a detector dropout, not an occlusion (IDF1 / HOTA score it; counted here it made the rate
   look better: trackers keep such tracks far more easily);
2. before it (after the previous gap), the latest frame with ``visibility ≥ visible_vis`` (0.5) in
   which a VISIBLE track covers the object — its id is ``A``. Without such a frame the tracker was
   not holding the object and the episode is not counted;
3. after it (before the next gap), the first frame ``r`` with ``visibility ≥ visible_vis``; an
   object that never shows again within the records is not counted.

The episode is *recovered* when the first detection-backed track covering the object from the
gap's end up to ``r + reacquire_window - 1`` (5) has id ``A``; no cover in that window is a failure.
"Covers": :func:`matching.frame_links` (Hungarian, IoU ≥ 0.3, against all entries of the frame).

*Reacquire error*, every counted episode, recovered or not: the ghost's prediction for the
reacquire frame ``q`` (the first covered frame of the window, else ``r``) — the latest OCCLUDED box
of ``A`` published after the anchor frame and before ``q``, its centre propagated to ``q`` with its
published velocity, ``c + v · (stamp_q − stamp_p)`` — against the object's amodal box centre at
``q``; Euclidean distance in pixels. Failed episodes count too, so a ghost that drifted beyond the
association gate is not left out. An episode in which ``A`` published no ghost (the track was
dropped, or never went OCCLUDED) has no prediction to measure and gives no error sample: it still
counts as an episode (and as a failure unless ``A`` came back), and the number of samples is
reported beside the mean so such episodes are visible as ``episodes − samples``.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from object_permanence.core.eval.records import (
    CameraIndex,
    FrameRecord,
    camera_index,
    check_unit,
    ratio,
    tracks_of,
)
from object_permanence.core.types import GroundTruthObject, Track, TrackState


@dataclass
class Episode:
    """One counted occlusion episode (record positions; ``gap`` is half-open ``[start, end)``)."""

    object_id: int
    gap: tuple[int, int]
    anchor: int
    track_before: int
    reacquire: int
    track_after: int | None
    error_px: float | None

    @property
    def recovered(self) -> bool:
        """The same track id covers the object after the gap as before it."""
        return self.track_after == self.track_before


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs of True in a 1-D bool array as half-open ``(start, end)`` positions."""
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def _check(min_gap: int, visible_vis: float, hidden_vis: float, reacquire_window: int) -> None:
    if min_gap < 1:
        raise ValueError(f"min_gap must be >= 1; got {min_gap}")
    if reacquire_window < 1:
        raise ValueError(f"reacquire_window must be >= 1; got {reacquire_window}")
    check_unit("visible_vis", visible_vis)
    check_unit("hidden_vis", hidden_vis)
    if hidden_vis > visible_vis:
        raise ValueError(f"hidden_vis ({hidden_vis}) must not exceed visible_vis ({visible_vis})")


def _latest_ghost(index: CameraIndex, track_id: int, after: int, before: int) -> tuple[int, Track] | None:
    """Latest position p in (after, before) where ``track_id`` is OCCLUDED, with that track."""
    for p in range(before - 1, after, -1):
        for trk in tracks_of(index.records[p], index.camera):
            if trk.track_id == track_id and trk.state == TrackState.OCCLUDED:
                return p, trk
    return None


def _reacquire_error(ghost: Track, dt: float, truth: GroundTruthObject) -> float:
    """Pixels between the ghost's centre propagated ``dt`` seconds and the ground-truth centre."""
    centre, velocity = np.asarray(ghost.box[:2], float), np.asarray(ghost.velocity, float)
    predicted = centre + velocity * dt  # c(q) = c(p) + v Δt
    return float(np.linalg.norm(predicted - np.asarray(truth.box[:2], float)))


def find_episodes(
    index: CameraIndex,
    min_gap: int = 10,
    visible_vis: float = 0.5,
    hidden_vis: float = 0.25,
    reacquire_window: int = 5,
) -> list[Episode]:
    """Every counted episode of one camera (definition: module docstring), by object then time.

    Raises:
        ValueError: ``min_gap`` or ``reacquire_window`` < 1, thresholds outside [0, 1] or
        ``hidden_vis > visible_vis``.
    """
    _check(min_gap, visible_vis, hidden_vis, reacquire_window)
    n = len(index)
    out: list[Episode] = []
    for oid in index.objects():
        vis = index.visibility(oid)
        gaps = [(s, e) for s, e in runs((vis < hidden_vis) | ~index.detected_mask(oid)) if e - s >= min_gap]
        for k, (start, end) in enumerate(gaps):
            if not np.any(vis[start:end] < hidden_vis):  # a dropout in plain view (it still bounds its neighbours)
                continue
            prev_end = gaps[k - 1][1] if k else 0
            next_start = gaps[k + 1][0] if k + 1 < len(gaps) else n
            anchors = [t for t in range(prev_end, start) if vis[t] >= visible_vis
                       and (c := index.covering[t].get(oid)) is not None and c.state == TrackState.VISIBLE]
            shows = np.flatnonzero(vis[end:next_start] >= visible_vis)
            if not anchors or shows.size == 0:
                continue
            anchor, reappear = anchors[-1], end + int(shows[0])
            track_a = index.covering[anchor][oid].track_id
            window = range(end, min(reappear + reacquire_window, next_start))
            q = next((t for t in window if oid in index.covering[t]), None)
            after = index.covering[q][oid].track_id if q is not None else None
            q = reappear if q is None else q
            ghost = _latest_ghost(index, track_a, anchor, q)
            error = None
            if ghost is not None:
                p, trk = ghost
                error = _reacquire_error(trk, index.records[q].stamp - index.records[p].stamp, index.get(q, oid))
            out.append(Episode(oid, (start, end), anchor, track_a, q, after, error))
    return out


def occlusion_episodes(
    records: Sequence[FrameRecord],
    camera: str = "left",
    min_gap: int = 10,
    visible_vis: float = 0.5,
    hidden_vis: float = 0.25,
    reacquire_window: int = 5,
    *,
    index: CameraIndex | None = None,
) -> tuple[int, int, list[float]]:
    """Count occlusion episodes (module docstring) and the ones after which the object gets its
    old identity back.

    ``index``: a :class:`CameraIndex` of these records and camera, to share its work between metrics.

    Returns ``(n_recovered, n_episodes, reacquire_errors_px)``; ``len(errors)`` ≤ ``n_episodes``
    (episodes without a ghost of the old id give no error sample).

    Raises:
        ValueError: unknown ``camera``, ``min_gap`` or ``reacquire_window`` < 1, thresholds
        outside [0, 1] or ``hidden_vis > visible_vis``, records not consecutive.
    """
    index = camera_index(records, camera, index)
    episodes = find_episodes(index, min_gap, visible_vis, hidden_vis, reacquire_window)
    errors = [e.error_px for e in episodes if e.error_px is not None]
    return sum(e.recovered for e in episodes), len(episodes), errors


def occlusion_recovery(
    records: Sequence[FrameRecord],
    camera: str = "left",
    min_gap: int = 10,
    visible_vis: float = 0.5,
    hidden_vis: float = 0.25,
    reacquire_window: int = 5,
) -> tuple[float, int, list[float]]:
    """Fraction of occlusion episodes recovered (see :func:`occlusion_episodes`).

    Returns ``(rate, n_episodes, reacquire_errors_px)``; rate is 0.0 without episodes.
    """
    n_recovered, n_episodes, errors = occlusion_episodes(
        records, camera, min_gap, visible_vis, hidden_vis, reacquire_window
    )
    return ratio(n_recovered, n_episodes), n_episodes, errors
