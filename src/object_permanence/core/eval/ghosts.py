"""Ghost precision (strict): does a published ghost stand for a hidden or undetected real object,
where that object is?

Every track-frame in state OCCLUDED is one ghost (with ``kept_only``, only the ghosts of tracks the
persistence filter kept in that frame — the pipeline's output, what is triangulated and drawn).
A ghost at record position t is correct only when all of these hold:

1. its track is paired with an object by the IDF1 identity matching of that camera
   (:func:`mot.identity_matching`: the global track ↔ object assignment that IDF1 scores);
2. that object has a ground-truth entry at t — no entry, no pass (there is no box to check the
   ghost against, and "hidden" cannot be told from "gone");
3. the ghost's box has IoU ≥ :data:`GHOST_IOU` (0.3) with the object's amodal box (the full
   extent, where a prediction of a hidden object should be);
4. the object is hidden (``visibility < hidden_vis`` = 0.5) or undetected at t (no detection of
   that camera and frame has IoU ≥ 0.5 with its amodal or visible-part box, ``records.py``): a
   ghost beside a visible, detected object means the tracker lost an object it could see.

Ghosts of nuisances, of tracks paired with nothing, of a track paired with another object, drifted
away from their object or standing for a visible and detected object are wrong.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from object_permanence.core.eval.matching import box_iou
from object_permanence.core.eval.mot import identity_matching
from object_permanence.core.eval.records import (
    CameraIndex,
    FrameRecord,
    camera_index,
    check_unit,
    decisions_of,
    ratio,
    tracks_of,
)
from object_permanence.core.types import TrackState

#: IoU a ghost's box needs with its object's amodal box.
GHOST_IOU = 0.3
#: Visibility below which an object counts as hidden (the default ``hidden_vis``).
HIDDEN_VIS = 0.5


def ghost_counts(
    records: Sequence[FrameRecord],
    camera: str = "left",
    truth: Mapping[int, int] | None = None,
    hidden_vis: float = HIDDEN_VIS,
    kept_only: bool = False,
    *,
    index: CameraIndex | None = None,
) -> tuple[int, int]:
    """Count ghosts and the correct ones (definition: module docstring).

    truth: the identity matching of this camera (track id → object id), as
    :func:`mot.identity_matching` returns it; computed from ``records`` when None.
    index: a :class:`CameraIndex` of these records and camera, to share work between metrics.

    Returns ``(n_correct, n_ghosts)``.

    Raises:
        ValueError: unknown ``camera``, ``hidden_vis`` outside [0, 1], records not consecutive.
    """
    check_unit("hidden_vis", hidden_vis)
    index = camera_index(records, camera, index)
    matching = truth if truth is not None else identity_matching(records, camera)
    n_ghosts = n_correct = 0
    for t, rec in enumerate(records):
        kept = {d.track_id for d in decisions_of(rec, camera) if d.keep}
        ghosts = [g for g in tracks_of(rec, camera)
                  if g.state == TrackState.OCCLUDED and (not kept_only or g.track_id in kept)]
        n_ghosts += len(ghosts)
        pairs = [(g, entry) for g in ghosts
                 if (oid := matching.get(g.track_id)) is not None and (entry := index.get(t, oid)) is not None]
        if not pairs:
            continue
        ghost_boxes = np.stack([np.asarray(g.box, float) for g, _ in pairs])
        gt_boxes = np.stack([np.asarray(e.box, float) for _, e in pairs])
        iou = np.diag(box_iou(ghost_boxes, gt_boxes))  # IoU of each ghost with its own object
        missed = np.array([e.visibility < hidden_vis or e.object_id not in index.detected[t] for _, e in pairs])
        n_correct += int(np.count_nonzero((iou >= GHOST_IOU) & missed))
    return n_correct, n_ghosts


def ghost_precision(
    records: Sequence[FrameRecord],
    camera: str = "left",
    truth: Mapping[int, int] | None = None,
    hidden_vis: float = HIDDEN_VIS,
    kept_only: bool = False,
) -> tuple[float, int]:
    """Fraction of ghosts that are correct (see :func:`ghost_counts`).

    Returns ``(precision, n_ghosts)``; precision is 0.0 without ghosts.
    """
    n_correct, n_ghosts = ghost_counts(records, camera, truth, hidden_vis, kept_only)
    return ratio(n_correct, n_ghosts), n_ghosts
