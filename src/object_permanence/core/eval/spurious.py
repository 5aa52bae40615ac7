"""Why a 3D point is spurious: each spurious point of a 3D output, by the first cause that holds.

A spurious point (:mod:`core.eval.points3d`: farther than 0.3 m from every object, or a second
point on an object another point stands for) is blamed on one stage of the pipeline, so that a
count of spurious points says which stage to fix: the persistence filter (a nuisance track kept),
the triangulator (a wrong stereo pair, a 3D prediction drifted, a new 3D track's first frames, a
visible pair triangulated off) or the world model (its 2D ghost drifted off the object).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np

from object_permanence.core.eval.matching import box_iou
from object_permanence.core.eval.points3d import POINT_DISTANCE_M, object_positions, true_point_mask
from object_permanence.core.eval.records import CameraIndex, FrameRecord
from object_permanence.core.types import Track3D, TrackState

#: Causes of a spurious 3D point (:func:`spurious_causes`), in the order they are tested.
CAUSES = ("duplicate_point", "nuisance_track", "wrong_pairing", "ghost_2d_off_object", "ghost_3d_drift",
          "first_3d_frames", "visible_pair_error")
_GHOSTS = (TrackState.OCCLUDED, TrackState.LOST)


def spurious_causes(records: Sequence[FrameRecord], indexes: Mapping[str, CameraIndex], filtered: bool = True,
                    max_distance_m: float = POINT_DISTANCE_M) -> Counter:
    """Spurious 3D points (not standing for a real object of the frame:
    :func:`core.eval.points3d.true_point_mask`) of ``tracks3d`` (``filtered``) or
    ``tracks3d_unfiltered``, counted by the first cause of :data:`CAUSES` that holds:

    * ``duplicate_point``: within ``max_distance_m`` of an object that another point of the frame
      stands for, and that object is its own (its left track covers it in this frame, or over its
      life when it covers none now): a second 3D track of one object. A point that lands on
      *another* object than its own (a partly hidden object triangulated onto the nearer one that
      hides it) is not a duplicate: it takes one of the causes below;
    * ``nuisance_track``: its left or right 2D track is not real (the persistence filter's to drop);
    * ``wrong_pairing``: both are real but cover different objects in this frame (over their
      lives when either covers none now) — the triangulator's stereo pairing;
    * ``ghost_2d_off_object``: a 3D ghost whose left 2D ghost box no longer overlaps its object's
      amodal box (IoU < 0.3) — the world model's 2D prediction drifted;
    * ``ghost_3d_drift``: a 3D ghost whose 2D ghost is still on its object — the triangulator's 3D
      prediction drifted;
    * ``first_3d_frames``: the first 3 frames of a 3D track (its filter has one triangulation);
    * ``visible_pair_error``: a correctly paired real pair seen in both views, triangulated off.
    """
    out: Counter = Counter()
    first: dict[int, int] = {}
    left, right = indexes["left"], indexes["right"]
    for t, rec in enumerate(records):
        points: list[Track3D] = rec.tracks3d if filtered else rec.tracks3d_unfiltered
        if not points:
            continue
        truth = object_positions(rec)
        ids = np.array(list(truth), np.int64)
        objects = np.array(list(truth.values()), np.float64).reshape(-1, 3)
        pos = np.stack([np.asarray(p.position, np.float64) for p in points])
        with np.errstate(invalid="ignore"):
            dist = np.linalg.norm(pos[:, None] - objects[None], axis=2)  # (N, K) ||p - p_obj||
        near = dist <= max_distance_m
        true = true_point_mask(points, objects, max_distance_m)
        boxes = {trk.track_id: trk for trk in rec.tracks_left}
        for i, (p, ok) in enumerate(zip(points, true)):
            first.setdefault(p.track_id, t)
            if ok:
                continue
            lid, rid = p.left_track_id, p.right_track_id
            oid = left.truth.gt_id("left", lid)
            gl, gr = left.links[t].get(lid), right.links[t].get(rid)
            own = gl.object_id if gl is not None else oid
            if near[i].any() and own == int(ids[np.nanargmin(dist[i])]):
                cause = "duplicate_point"
            elif not (left.truth.is_real("left", lid) and right.truth.is_real("right", rid)):
                cause = "nuisance_track"
            elif (gl.object_id != gr.object_id if gl is not None and gr is not None
                  else oid != right.truth.gt_id("right", rid)):
                cause = "wrong_pairing"
            elif p.state in _GHOSTS:
                g, trk = left.get(t, oid), boxes.get(lid)
                on = g is not None and trk is not None \
                    and box_iou(np.asarray(trk.box)[None], np.asarray(g.box)[None])[0, 0] >= 0.3
                cause = "ghost_3d_drift" if on else "ghost_2d_off_object"
            elif t - first[p.track_id] < 3:
                cause = "first_3d_frames"
            else:
                cause = "visible_pair_error"
            out[cause] += 1
    return out
