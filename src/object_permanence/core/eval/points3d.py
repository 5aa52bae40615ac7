"""3D outputs: spurious points, true points lost by filtering, and position error.

Every 3D track in a frame, any state (ghosts included), is one *point*. The real objects of a
frame are the ``OBJECT`` entries with a finite ground-truth position in that frame's ground truth
of either camera (visible or hidden: a ghost of a hidden object is where an object is).

* **True** point: one that stands for a real object of the frame: the frame's finite points and
  its objects are assigned one to one (Hungarian on the Euclidean distance), and a point paired
  with an object within ``max_distance_m`` (0.3 m) is true (:func:`true_point_mask`). No identity
  is involved: a point is judged by where it is, so a nuisance triangulated onto an object's
  position is true when no other point stands for that object, and a real track triangulated a
  metre off is not.
* **Spurious** point: not true — not finite, farther than 0.3 m from every object, or a second
  point on an object another point already stands for (a duplicate 3D track of one object; until
  this session such points counted as true).
* **True points lost by filtering**: per frame, the true points of the unfiltered output (the same
  triangulator on all confirmed tracks) whose ``left_track_id`` has no point in the filtered
  output of that frame — what the persistence filter cost in real objects.
* **Position RMSE** (m): over VISIBLE points of ``tracks3d`` with a finite position whose left
  track is paired with an object by the left camera's IDF1 identity matching, and that object has
  a finite position in the frame (left entry, else right): ``sqrt(mean ||p − p_gt||²)``. An
  identity figure as much as a position one: a track that switched objects is scored against the
  one object of its whole life, so the frames it spends on another count metres.
* **Per-frame position RMSE** (m), CLEAR MOT's MOTP correspondence: VISIBLE points, each scored
  against the object its left track covers *in that frame* (the link of
  :class:`records.CameraIndex`: one to one, IoU ≥ ``LINK_IOU`` with the object's amodal box) —
  what the triangulation and the stereo pairing cost, without the identity term
  (:func:`position_rmse_per_frame`; optionally only objects in a band of true depth). The 3D error
  itself is not gated, but the 2D link is: a point whose left track covers no object in that
  frame (a small visible part of a partly hidden object, a track drifted off, the second track of
  a duplicate pair, a nuisance) is not scored; those points are counted (``unlinked``) so that the
  figure is read with them.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy.optimize import linear_sum_assignment

from object_permanence.core.eval.mot import identity_matching
from object_permanence.core.eval.records import CameraIndex, FrameRecord, camera_index, check_records
from object_permanence.core.types import GroundTruthObject, ObjectKind, Track3D, TrackState

#: Distance (m) within which a 3D point stands for a real object.
POINT_DISTANCE_M = 0.3
#: Band of true depths (near, far) in metres of the objects behind the 3D bar "position RMSE < 5 cm
#: at 3 m on the simulated rig".
DEPTH_BAND_3M = (2.5, 3.5)


def object_positions(rec: FrameRecord) -> dict[int, np.ndarray]:
    """Object id → (3,) ground-truth position (m, left optical frame) of the frame's real objects
    with a finite position; the left camera's entry first, else the right's."""
    out: dict[int, np.ndarray] = {}
    entries: list[GroundTruthObject] = [*rec.gt_left, *rec.gt_right]
    for g in entries:
        pos = np.asarray(g.position, dtype=np.float64)
        if g.kind == ObjectKind.OBJECT and g.object_id not in out and np.all(np.isfinite(pos)):
            out[g.object_id] = pos
    return out


def true_point_mask(points: Sequence[Track3D], objects: np.ndarray,
                    max_distance_m: float = POINT_DISTANCE_M) -> np.ndarray:
    """(N,) bool: the points that stand for a real object: a one-to-one assignment of the frame's
    finite points to its objects (K, 3) (Hungarian on the distance), a pair within
    ``max_distance_m``. A second point on an object already stood for (a duplicate 3D track of one
    object) is spurious: one object does not vouch for any number of points."""
    if not points:
        return np.zeros(0, dtype=bool)
    pos = np.stack([np.asarray(p.position, dtype=np.float64) for p in points])  # (N, 3)
    out = np.zeros(len(points), dtype=bool)
    if objects.size == 0:
        return out
    with np.errstate(invalid="ignore"):
        dist = np.linalg.norm(pos[:, None, :] - objects[None, :, :], axis=2)  # (N, K) ||p - p_obj||
    near = np.isfinite(dist) & (dist <= max_distance_m)
    if not near.any():
        return out
    cost = np.where(near, dist, max_distance_m * 1e3)  # pairs beyond the gate only as a last resort
    rows, cols = linear_sum_assignment(cost)
    out[rows[near[rows, cols]]] = True
    return out


@dataclass
class Points3DCounts:
    """Point counts of the filtered and unfiltered 3D outputs (definitions: module docstring)."""

    points_unfiltered: int = 0
    spurious_unfiltered: int = 0
    points_filtered: int = 0
    spurious_filtered: int = 0
    true_unfiltered: int = 0
    true_filtered: int = 0
    true_lost: int = 0


def points3d_counts(records: Sequence[FrameRecord], max_distance_m: float = POINT_DISTANCE_M) -> Points3DCounts:
    """Spurious and true points of both outputs, and true points lost by filtering.

    Raises:
        ValueError: ``max_distance_m`` not positive, records not consecutive.
    """
    if not max_distance_m > 0.0:
        raise ValueError(f"max_distance_m must be > 0; got {max_distance_m}")
    check_records(records)
    out = Points3DCounts()
    for rec in records:
        objects = np.array(list(object_positions(rec).values()), dtype=np.float64).reshape(-1, 3)
        true_unf = true_point_mask(rec.tracks3d_unfiltered, objects, max_distance_m)
        true_f = true_point_mask(rec.tracks3d, objects, max_distance_m)
        out.points_unfiltered += len(true_unf)
        out.spurious_unfiltered += int(np.count_nonzero(~true_unf))
        out.points_filtered += len(true_f)
        out.spurious_filtered += int(np.count_nonzero(~true_f))
        out.true_unfiltered += int(np.count_nonzero(true_unf))
        out.true_filtered += int(np.count_nonzero(true_f))
        published = {p.left_track_id for p in rec.tracks3d}
        out.true_lost += sum(p.left_track_id not in published
                             for p, ok in zip(rec.tracks3d_unfiltered, true_unf) if ok)
    return out


def spurious_points(
    records: Sequence[FrameRecord], filtered: bool = True, max_distance_m: float = POINT_DISTANCE_M
) -> tuple[int, int]:
    """``(n_spurious, n_points)`` of ``tracks3d`` (``filtered``) or ``tracks3d_unfiltered``.

    Raises:
        ValueError: ``max_distance_m`` not positive, records not consecutive.
    """
    c = points3d_counts(records, max_distance_m)
    return (c.spurious_filtered, c.points_filtered) if filtered else (c.spurious_unfiltered, c.points_unfiltered)


def true_points_lost(records: Sequence[FrameRecord], max_distance_m: float = POINT_DISTANCE_M) -> tuple[int, int]:
    """``(n_lost, n_true_unfiltered)``: true unfiltered points the filtered output does not carry.

    Raises:
        ValueError: ``max_distance_m`` not positive, records not consecutive.
    """
    c = points3d_counts(records, max_distance_m)
    return c.true_lost, c.true_unfiltered


def position_rmse(
    records: Sequence[FrameRecord], matching: Mapping[int, int] | None = None
) -> tuple[float, int]:
    """Root-mean-square 3D position error (m) of VISIBLE points of real objects (module docstring).

    matching: the left camera's identity matching (track id → object id); computed when None.
    Returns ``(rmse_m, n_samples)``; 0.0 without samples.

    Raises:
        ValueError: records not consecutive.
    """
    check_records(records)
    matching = matching if matching is not None else identity_matching(records, "left")
    sq: list[float] = []
    for rec in records:
        truth = object_positions(rec)
        for p in rec.tracks3d:
            pos = np.asarray(p.position, dtype=np.float64)
            oid = matching.get(p.left_track_id)
            if p.state != TrackState.VISIBLE or oid not in truth or not np.all(np.isfinite(pos)):
                continue
            sq.append(float(np.sum((pos - truth[oid]) ** 2)))  # ||p - p_gt||²
    if not sq:
        return 0.0, 0
    return float(np.sqrt(np.mean(sq))), len(sq)  # RMSE = sqrt(mean ||p - p_gt||²)


class PerFrameRmse(NamedTuple):
    """:func:`position_rmse_per_frame`'s result: the RMSE (m; 0.0 without samples), the points
    scored, and the VISIBLE finite points not scored because their left track covered no object
    in that frame (in the depth band, when one is given, by their own estimated depth)."""

    rmse_m: float
    samples: int
    unlinked: int


def position_rmse_per_frame(
    records: Sequence[FrameRecord], depth_range_m: tuple[float, float] | None = None,
    *, index: CameraIndex | None = None,
) -> PerFrameRmse:
    """Root-mean-square 3D position error (m) of VISIBLE points against the object their left
    track covers in the same frame (module docstring: per-frame position RMSE).

    depth_range_m: ``(near, far)``: only objects whose true depth Z lies in ``[near, far]`` m.
    index: the left camera's :class:`CameraIndex` of these records, to share work.

    Raises:
        ValueError: records not consecutive, an empty or reversed ``depth_range_m``.
    """
    if depth_range_m is not None and not depth_range_m[0] < depth_range_m[1]:
        raise ValueError(f"depth_range_m must be (near, far) with near < far, got {depth_range_m!r}")
    index = camera_index(records, "left", index)

    def in_band(z: float) -> bool:
        return depth_range_m is None or depth_range_m[0] <= z <= depth_range_m[1]

    sq: list[float] = []
    unlinked = 0
    for t, rec in enumerate(records):
        for p in rec.tracks3d:
            pos = np.asarray(p.position, dtype=np.float64)
            if p.state != TrackState.VISIBLE or not np.all(np.isfinite(pos)):
                continue
            g = index.links[t].get(p.left_track_id)
            truth = None if g is None or g.kind != ObjectKind.OBJECT else np.asarray(g.position, dtype=np.float64)
            if truth is None or not np.all(np.isfinite(truth)):
                unlinked += in_band(float(pos[2]))
            elif in_band(float(truth[2])):
                sq.append(float(np.sum((pos - truth) ** 2)))  # ||p - p_gt||²
    if not sq:
        return PerFrameRmse(0.0, 0, unlinked)
    return PerFrameRmse(float(np.sqrt(np.mean(sq))), len(sq), unlinked)
