"""The world model's long-range re-identification stage and the cover test of its ghosts.

A young track (TENTATIVE and matched this frame, or new) may be an object the model has seen
before: one that left the view or was lost (a LOST track kept in the gallery) or one whose ghost's
prediction missed it (an older ghost). :func:`reidentify_lost` gives it that identity back when
appearance, scale and motion all agree; :func:`covered_by_visible` tells which ghosts are hidden
behind a visible track (they live longer). Both work on the stacked arrays of
:class:`~object_permanence.core.track_table.TrackTable`, all candidates at once.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from object_permanence.core.association import assign, intersection_matrix, within_ratio
from object_permanence.core.track_table import LostGallery, TrackTable
from object_permanence.core.types import TrackState
from object_permanence.core.world_model_config import WorldModelConfig

_VISIBLE, _OCCLUDED = int(TrackState.VISIBLE), int(TrackState.OCCLUDED)


def reidentify_lost(t: TrackTable, g: LostGallery, cfg: WorldModelConfig, rows: np.ndarray,
                    stamp: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Give young tracks ``rows`` (TENTATIVE and matched this frame, or new) the identity of a
    LOST track in the gallery or of a ghost missed this frame (an older one, unseen >
    ``recent_ghost_s``: its prediction missed the object, which came back elsewhere; a recent one:
    the object's detection failed its stage-1 association, another class for a few frames or just
    outside the gate) they match: long-term appearance cost at most ``gallery_max_appearance_cost``
    (``recent_ghost_max_appearance_cost`` for a recent ghost: a look-alike next to an object just
    missed, its reflection, must not take it; for any other candidate the larger of that and
    ``gallery_near_max_appearance_cost`` when the young track's centre lies closer to the
    candidate's path than ``gallery_near_frac`` of the motion reach below and than ``h``: such
    near pairs are assigned after the others, among the rows and candidates those left; another
    class adds ``class_mismatch_cost`` to the cost the
    assignment ranks by, without a gate: the first detections of a re-entering object are
    often partial and confused), a plausible motion (centre within
    ``h (gallery_distance_base + per_s gap)`` of the path from the last detection on at the
    velocity it had, over the gap: stopped or carried on; ``h`` its steady height, ``gap`` the seconds
    unseen; ``per_s`` is ``gallery_exit_distance_per_s`` for a track lost by leaving the image,
    which comes back through the border where it left, else ``gallery_distance_per_s``; height
    ratio to ``h`` at most ``gallery_max_scale_ratio``; ``h`` is the object's extent
    (:class:`~object_permanence.core.ghost_onset.SteadySize`), not the height of its last box, a
    sliver when it sank behind something; taking the larger of the two, for an approaching object
    whose steady size lags, was worse on tuning seeds 0-9), and no VISIBLE track that looks clearly more like
    it (by ``gallery_veto_margin``: a reflection or duplicate of a visible object keeps a new
    identity), and the young track started after the candidate was last seen
    (:func:`born_after_last_seen`: one that was followed while the candidate was still detected is
    another object, a look-alike next to it); a gallery entry of fewer hits than ``gallery_min_hits``
    (``gallery_covered_min_hits``; admitted by ``gallery_confirmed_min_hits``) goes back to a
    confirmed young track only, and without its hits. An identity is never on two tracks: the gallery holds
    LOST tracks only and an entry leaves it when taken back; a ghost taken over is removed. Stereo
    consistency (a reflection has no consistent disparity) is judged downstream, by the
    persistence filter and the triangulator, which see both cameras; this model sees one.

    The matched rows become VISIBLE with the old id, hits and memory (then their own recent
    looks). Returns the rows (K,), the frames each was unseen (K,) and the ghost rows taken
    over (to be dropped)."""
    empty = np.zeros(0, np.intp)
    c = reid_candidates(t, g, cfg, rows, stamp)
    if c is None or not c.ok.any():
        return empty, np.zeros(0, np.int64), empty
    rows, ghosts, app, strict, near, ok = c.rows, c.ghosts, c.app, c.strict, c.near, c.ok
    # another class ranks a candidate lower (a detector confuses classes) but does not forbid it
    penalty = np.where(t.class_id[rows][:, None] == c.cand_class[None, :], 0.0, cfg.class_mismatch_cost)
    cost = app + penalty
    # the pairs within their own cap first; the looser near pairs only among the rows and candidates
    # left (an assignment maximises the matches first: a weak near pair must not displace a strong one)
    top = max(cfg.gallery_max_appearance_cost, cfg.recent_ghost_max_appearance_cost,
              cfg.gallery_near_max_appearance_cost) + cfg.class_mismatch_cost
    pairs, free_r, free_c = assign(np.where(ok & strict, cost, np.inf), top)
    if free_r.size and free_c.size:
        more, _, _ = assign(np.where(ok & near, cost, np.inf)[np.ix_(free_r, free_c)], top)
        pairs = np.concatenate([pairs, np.stack([free_r[more[:, 0]], free_c[more[:, 1]]], axis=1)])
    r, e = rows[pairs[:, 0]], pairs[:, 1]
    from_gallery = e < len(g)
    rg, eg = r[from_gallery], e[from_gallery]
    rh, eh = r[~from_gallery], ghosts[e[~from_gallery] - len(g)]
    own = t.memory.take(r)
    unseen = np.concatenate([g.frames_since_seen[eg], t.frames_since_seen[eh]])
    t.ids[rg], t.ids[rh] = g.ids[eg], t.ids[eh]
    # an entry of few hits gives its identity back, not its hits: a nuisance that took one would
    # otherwise look steadily detected (core/ghost_life.py) and live on as a ghost
    strong = ~few_hits(g, cfg)[eg]
    t.hits[rg] += np.where(strong, g.hits[eg], 0)
    t.hits[rh] += t.hits[eh]
    # an identity lost in plain view (undetected where it could have been seen: more likely a
    # nuisance that ended) is given back, but its hits do not let the ghosts of its return be claimed
    t.claim_hits[rg] += np.where((g.hidden[eg] | g.left_view[eg]) & strong, g.claim_hits[eg], 0)
    t.claim_hits[rh] += t.claim_hits[eh]
    t.memory.put(rg, g.memory, eg)
    t.memory.put(rh, t.memory.take(eh), np.arange(eh.size))
    order = np.concatenate([np.flatnonzero(from_gallery), np.flatnonzero(~from_gallery)])
    t.memory.update(np.concatenate([rg, rh]), own.summary[order], own.has[order])
    t.state[r] = _VISIBLE
    keep = np.ones(len(g), bool)
    keep[eg] = False
    g.select(np.flatnonzero(keep))
    return np.concatenate([rg, rh]), unseen, eh


@dataclass(frozen=True)
class ReidCandidates:
    """The tests of :func:`reidentify_lost` for R young tracks against C candidates (the gallery's
    G entries, then the H ghosts), each an (R, C) mask: ``motion`` (centre within the reach of the
    candidate's path), ``scale`` (height ratio), ``strict`` (appearance within the plain cap) or
    ``near`` (near the path, within the looser one), ``born_after`` (:func:`born_after_last_seen`),
    ``vetoed`` (a VISIBLE track looks clearly more like the young one; computed only where every
    other test passed) and ``ok``: all of them, and for a gallery entry of fewer hits than
    ``gallery_min_hits`` a confirmed young track (``gallery_confirmed_min_hits``). ``app``:
    long-term cosine distances (NaN: no look);
    ``dist`` and ``reach``: the young track's distance from the candidate's path and the motion
    reach, px."""

    rows: np.ndarray  # (R,) the young tracks with a look
    ghosts: np.ndarray  # (H,) rows of the ghost candidates
    cand_class: np.ndarray  # (C,)
    app: np.ndarray  # (R, C)
    dist: np.ndarray
    reach: np.ndarray
    motion: np.ndarray
    scale: np.ndarray
    strict: np.ndarray
    near: np.ndarray
    born_after: np.ndarray
    vetoed: np.ndarray
    ok: np.ndarray


def reid_candidates(t: TrackTable, g: LostGallery, cfg: WorldModelConfig, rows: np.ndarray,
                    stamp: float) -> ReidCandidates | None:
    """Every test of :func:`reidentify_lost` (its docstring says which) for the young tracks
    ``rows`` against the gallery and the ghosts missed this frame; None when no young track has a
    look or there is no candidate."""
    ghosts = ((t.state == _OCCLUDED) & t.memory.has).nonzero()[0]  # every ghost missed this frame
    rows = rows[t.memory.has[rows]] if (len(g) or ghosts.size) and rows.size else rows[:0]
    if rows.size == 0:
        return None
    query = t.memory.summary[rows]
    # candidates: the gallery's G entries, then the H older ghosts
    app = np.concatenate([g.memory.cost(query, long_term=True),
                          t.memory.cost(query, ghosts, long_term=True)]).T  # (R, G + H)
    cand_box = np.concatenate([g.box, t.measurement[ghosts]])
    cand_class = np.concatenate([g.class_id, t.class_id[ghosts]])
    gap = stamp - np.concatenate([g.last_seen_stamp, t.last_seen_stamp[ghosts]])  # s unseen
    box = t.measurement[rows]
    per_s = np.where(np.concatenate([g.left_view, np.zeros(ghosts.size, bool)]),
                     cfg.gallery_exit_distance_per_s, cfg.gallery_distance_per_s)
    cand_h = np.concatenate([g.size[:, 1], t.filters.steady_sizes[ghosts, 1]])  # the object's, not a sliver's
    reach = cand_h[None, :] * (cfg.gallery_distance_base + per_s * gap)[None, :]
    # distance to the path it was on: the segment from its last detection a to a + v gap
    a = cand_box[:, :2]
    ab = np.concatenate([g.velocity, t.filters.velocities[ghosts]]) * gap[:, None]  # v gap, (C, 2)
    ap = box[:, None, :2] - a[None, :, :]  # (R, C, 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        u = np.clip(np.einsum("rcd,cd->rc", ap, ab) / np.einsum("cd,cd->c", ab, ab)[None, :], 0.0, 1.0)
    u[np.isnan(u)] = 0.0  # no motion: the point a itself
    closest = ap - u[:, :, None] * ab[None, :, :]  # p - (a + u (b - a))
    dist = np.hypot(closest[:, :, 0], closest[:, :, 1])
    scale = box[:, None, 3] / cand_h[None, :]
    # appearance cap per candidate: a recent ghost's is stricter (recent_ghost_max_appearance_cost)
    recent = np.concatenate([np.zeros(len(g), bool), gap[len(g):] <= cfg.recent_ghost_s])
    max_app = np.where(recent, cfg.recent_ghost_max_appearance_cost, cfg.gallery_max_appearance_cost)  # (C,)
    unseen_c = np.concatenate([g.frames_since_seen, t.frames_since_seen[ghosts]])  # (C,) frames
    app_inf = np.nan_to_num(app, nan=np.inf)
    # close to the path it was on (within gallery_near_frac of the reach, at most its height: the
    # reach grows with the gap), a looser appearance cap, not for a recent ghost: the first boxes
    # of an object coming back are often partial, and a look-alike elsewhere is held off by the motion
    near = (dist < np.minimum(cfg.gallery_near_frac * reach, cand_h[None, :])) & ~recent[None, :] \
        & (app_inf <= cfg.gallery_near_max_appearance_cost)
    strict = app_inf <= max_app[None, :]
    motion, scale_ok = dist <= reach, within_ratio(scale, cfg.gallery_max_scale_ratio)
    born = born_after_last_seen(t.age[rows], unseen_c).T
    ok = motion & scale_ok & (strict | near) & born
    if cfg.gallery_confirmed_min_hits > 0:  # an entry of few hits goes back to a confirmed track only
        ok[:, :len(g)] &= ~(few_hits(g, cfg)[None, :] & (t.state[rows] != _VISIBLE)[:, None])
    vetoed = np.zeros_like(ok)
    rivals = t.state == _VISIBLE
    rivals[rows] = False  # a young track is no rival of itself
    visible = np.flatnonzero(rivals)
    if visible.size and ok.any():
        # ambiguity veto: the nearest VISIBLE look, long-term, against the candidate's
        rival = np.nan_to_num(t.memory.cost(query, visible, long_term=True), nan=np.inf).min(axis=0)  # (R,)
        vetoed = ok & (rival[:, None] + cfg.gallery_veto_margin < app)
        ok &= ~vetoed
    return ReidCandidates(rows, ghosts, cand_class, app, dist, np.broadcast_to(reach, dist.shape), motion, scale_ok,
                          strict, near, born, vetoed, ok)


def may_be_returning(t: TrackTable, g: LostGallery, cfg: WorldModelConfig, rows: np.ndarray,
                     stamp: float) -> np.ndarray:
    """(K,) mask of the tracks ``rows`` (K,, sorted), confirmed this frame under a new identity, that may
    still be an object back from a gap: against some candidate of :func:`reid_candidates` (a
    gallery entry of ``gallery_min_hits`` or more, or a ghost) they pass the motion, scale and
    ``born_after`` tests and look like it within ``reid_defer_max_appearance_cost``, a looser cap
    than the stage's. An object coming out from behind something is seen first as a sliver whose
    look is not yet its own; publishing it under a new identity and renaming it a few frames later
    costs two identity switches, holding its confirmation a few frames none."""
    held = np.zeros(rows.size, bool)
    c = reid_candidates(t, g, cfg, rows, stamp)
    if c is None:
        return held
    strong = np.concatenate([~few_hits(g, cfg), np.ones(c.ghosts.size, bool)])  # few-hit entries wait for confirmed tracks
    close = np.nan_to_num(c.app, nan=np.inf) <= cfg.reid_defer_max_appearance_cost
    held[np.searchsorted(rows, c.rows)] = (c.motion & c.scale & c.born_after & close & strong[None, :]).any(axis=1)
    return held


def few_hits(g: LostGallery, cfg: WorldModelConfig) -> np.ndarray:
    """(G,) mask of the gallery entries with fewer hits than ``gallery_min_hits``
    (``gallery_covered_min_hits`` for one hidden behind another track): those admitted by
    ``gallery_confirmed_min_hits`` alone."""
    return g.hits < np.where(g.hidden, cfg.gallery_covered_min_hits, cfg.gallery_min_hits)


def born_after_last_seen(age: np.ndarray, frames_since_seen: np.ndarray) -> np.ndarray:
    """(C, Y) mask: was each track of age ``age`` (Y,) started after each candidate, unseen for
    ``frames_since_seen`` (C,) frames, was last detected? Both counted at this frame (a track's age
    is 0 in the frame it starts and grows by one a frame, matched or not; frames_since_seen is 0 in
    a frame it is matched), so the track started at frame ``now - age`` and the candidate was last
    seen at ``now - frames_since_seen``. A track started while the candidate was still detected was
    followed next to it, on a detection of its own: another object (a look-alike beside it, the one
    it walked behind), not that object coming back nor a second identity it got once missed."""
    return age[None, :] < frames_since_seen[:, None]  # now - age > now - frames_since_seen


def _inside_fraction(inner: np.ndarray, outer: np.ndarray) -> np.ndarray:
    """(A, B) fraction of the area of each ``inner`` box (A, 4) inside each ``outer`` box (B, 4)."""
    return intersection_matrix(inner, outer) / (inner[:, 2] * inner[:, 3])[:, None]


def covered_by_visible(visible: np.ndarray, ghosts: np.ndarray, boxes: np.ndarray, cover_frac: float) -> np.ndarray:
    """(N,) mask of the ``ghosts`` (mask (N,)) whose predicted box (``boxes`` (N, 4), cx cy w h) has
    at least ``cover_frac`` of its area inside the box of another ``visible`` (mask (N,)) track (the
    covering tracks: VISIBLE ones, and for the ghosts' lives also those missed a moment ago; a track
    never covers itself)."""
    covered = np.zeros(ghosts.shape[0], bool)
    g, v = ghosts.nonzero()[0], visible.nonzero()[0]
    if g.size == 0 or v.size == 0:
        return covered
    inside = _inside_fraction(boxes[g], boxes[v])
    inside[g[:, None] == v[None, :]] = 0.0
    covered[g] = inside.max(axis=1) >= cover_frac
    return covered


def frames_followed_together(age_a: np.ndarray, age_b: np.ndarray, frames_since_seen_b: np.ndarray) -> np.ndarray:
    """(B, A) frames in which each track ``a`` (ages (A,)) and each track ``b`` (ages and
    frames unseen (B,)) were both followed while ``b`` was still detected: from the later start,
    ``now - min(age_a, age_b)``, to ``b``'s last sight, ``now - frames_since_seen_b``, both ends
    counted (ages and frames unseen counted at this frame, as in :func:`born_after_last_seen`);
    0 or less when ``a`` started after ``b`` was last seen."""
    return np.minimum(age_a[None, :], age_b[:, None]) - frames_since_seen_b[:, None] + 1


def twins_of_visible(t: TrackTable, covered: np.ndarray, boxes: np.ndarray, cover_frac: float,
                     max_cost: float, min_together: int) -> np.ndarray:
    """(N,) mask of the ``covered`` ghosts (mask (N,), from :func:`covered_by_visible`) whose
    predicted box lies behind (``cover_frac``) a VISIBLE track that looks the same (long-term
    cosine distance at most ``max_cost``) and was not followed next to it for ``min_together``
    frames or more while the ghost was still detected (:func:`frames_followed_together`): a second
    track of that very object (it got a new identity while this ghost lived on behind it, or a
    duplicate box started it a few frames before), not an object hidden by another. Left alive it
    would take the object's detection back whenever its twin misses one: identity switches back and
    forth. Two tracks followed side by side, each on a detection of its own, for ``min_together``
    frames are two objects (of one look, one walking behind the other): that ghost lives on,
    covered. ``boxes``: (N, 4) predicted boxes, cx cy w h."""
    twins = np.zeros(covered.shape[0], bool)
    if not covered.any():
        return twins
    g = np.flatnonzero(covered & t.memory.has)
    v = np.flatnonzero((t.state == _VISIBLE) & t.memory.has)
    if g.size == 0 or v.size == 0:
        return twins
    behind = _inside_fraction(boxes[g], boxes[v]) >= cover_frac  # (G, V)
    apart = frames_followed_together(t.age[v], t.age[g], t.frames_since_seen[g]) >= min_together  # (G, V)
    suspect = behind & ~apart
    if not suspect.any():  # no look to compare
        return twins
    app = t.memory.cost(t.memory.summary[v], g, long_term=True)  # (G, V) ghost memory vs visible look
    twins[g] = (suspect & (app <= max_cost)).any(axis=1)  # NaN (no look) compares False
    return twins
