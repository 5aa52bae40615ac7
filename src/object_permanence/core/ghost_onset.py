"""The box of a new ghost, corrected for an object that slid behind an occluder.

A detector boxes the visible part of an object. When the object slides behind an occluder its box
shrinks from the occluded side: that edge stops at the occluder while the other one (the trailing
edge, still in view) moves on with the object. The track's filter follows the truncated box, so
when the object is gone the state says the box keeps shrinking (``v_w < 0``), its centre moves at
about half the object's speed and its size is a sliver: the ghost falls off the object it stands for.

At the ghost's onset, per axis (``cx, w`` and ``cy, h``), with the edges moving at

    v_lo = v_c - v_w / 2        v_hi = v_c + v_w / 2        # px/s, from the state

1. velocity: when the box shrinks with its centre moving (``v_w < 0`` and ``|v_c| >= EDGE_MIN_RATIO
   |v_w| / 2``: not both edges closing in, as a receding object's) the faster edge is the trailing
   one, still moving with the object (the other stopped at the occluder):
   ``v_c' = v_lo if |v_lo| >= |v_hi| else v_hi``; in every case the size stops changing, ``v_w' = 0``;
2. extent: an axis truncated below ``TRUNCATED_FRAC`` of the track's steady size ``s`` (see
   :class:`SteadySize`) grows back to ``s`` from its trailing edge, toward the motion
   (``c' = c + sign(v_c') (s - w) / 2``, ``w' = s``), clipped to the image when its size is known
   (the amodal box of an object leaving the view ends at the image border too).

That is the rule of a static occluder. When the occluder is a VISIBLE track whose box reaches
one edge of the new ghost's box (:func:`hidden_side`), that edge is the hidden one whatever the
speeds: the velocity is the other edge's and the box grows behind the occluder. An object
overtaken by a faster one in front has its hidden edge moving with the occluder, the faster of
the two: the static rule took that edge and grew the box the wrong way (ghosts tens of pixels
off at the onset; tuning seeds 10-29, realistic: HOTA / IDF1 up on cluttered,
crossing and reentry by 0.01-0.24 points, crossing ghost precision 89.4 -> 90.6 %, one occlusion
episode fewer recovered on long_occlusion and on crossing each).

When the image size is known, an axis whose box touches the image border (within ``BORDER_PX``)
is left as it is but for ``v_w' = 0``: an object leaving the view is cut by the border, and its
amodal box is cut there as well (correcting those ghosts cost ghost precision and re-entry
reacquire error on the tuning seeds).

The box filter banks of ``motion_model`` ``cv`` and ``damped`` apply it (``BoxFilterBank.shift``);
the ``imm`` bank does not (its per-mode states are left as they are). Only the state's mean moves;
the covariance is kept: restarting the filter at the full extent (its
initial covariance) moved the returning object out of the gate in earlier trials.
Tuned on seeds 0-4 (ghost precision 66.5 -> 71.1 %; HOTA, IDF1, ID switches, occlusion recovery
and reacquire error unchanged or better; the drifting ghost-frames 2145 -> 1648).
"""
from __future__ import annotations

import numpy as np

from object_permanence.core.row_selection import every_row

#: An axis whose size at the ghost's onset is below this fraction of the steady size is truncated.
TRUNCATED_FRAC = 0.7
#: Step of the steady size toward a detected size, per matched frame.
STEADY_RATE = 0.1
#: A detected size below this fraction of the steady size (a box shrinking behind something or a
#: fragment) leaves the steady size as it is.
STEADY_GATE = 0.85

#: A shrinking axis counts as sliding behind an occluder when its centre moves at least this
#: fraction of half its size velocity (1: one edge stopped; 0: both edges move apart symmetrically).
EDGE_MIN_RATIO = 0.5

#: A visible box counts as the occluder of a new ghost's side when it overlaps the strip of this
#: fraction of the steady size (at most the part missing) against that edge (:func:`hidden_side`).
OCCLUDER_STRIP_FRAC = 0.25
#: ... and reaches into the ghost's box by at most this fraction of the steady size (the predicted
#: box lags the shrinking detections by a few pixels); one reaching further overlaps the part of
#: the object that was in view: it is behind the object, not in front.
OCCLUDER_REACH_FRAC = 0.25

#: An axis whose box edge is within this many pixels of the image border is cut by the image, not
#: by an occluder: neither its velocity nor its extent is corrected.
BORDER_PX = 4.0

#: Columns of the state ``cx, cy, w, h, vcx, vcy, vw, vh``.
_CENTRE, _SIZE, _V_CENTRE, _V_SIZE = slice(0, 2), slice(2, 4), slice(4, 6), slice(6, 8)


def steady_step(steady: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Steady sizes ``steady`` (K, 2) after one detected size each, ``size`` (K, 2): a step of
    ``STEADY_RATE`` toward it, unless it is below ``STEADY_GATE`` of the steady size (a box
    shrinking behind something, a fragment), which leaves it as it is."""
    return np.where(size >= STEADY_GATE * steady, steady + STEADY_RATE * (size - steady), steady)


class SteadySize:
    """Each track's steady box size ``w, h`` (px): an exponential average of its detected sizes
    (step ``STEADY_RATE``) that ignores a size below ``STEADY_GATE`` of it, so that it holds the
    object's extent while the box shrinks behind an occluder, and follows an object that comes
    nearer or recedes (a few percent a frame). Rows follow the filter bank's rows."""

    def __init__(self) -> None:
        self._size = np.zeros((0, 2))

    @property
    def sizes(self) -> np.ndarray:
        """(N, 2) steady ``w, h`` px (a copy)."""
        return self._size.copy()

    def append(self, z: np.ndarray) -> None:
        """New rows at boxes ``z`` (K, 4)."""
        self._size = np.concatenate([self._size, np.asarray(z, float).reshape(-1, 4)[:, 2:4]])

    def select(self, rows: np.ndarray) -> None:
        """Keep ``rows`` (int (K,)), in that order."""
        self._size = self._size[np.asarray(rows, dtype=np.intp)]

    def restart(self, rows: np.ndarray, z: np.ndarray) -> None:
        """Restart ``rows`` (K,) at boxes ``z`` (K, 4)."""
        self._size[np.asarray(rows, dtype=np.intp)] = np.asarray(z, float).reshape(-1, 4)[:, 2:4]

    def update(self, rows: np.ndarray, z: np.ndarray) -> None:
        """Move ``rows`` (K,) toward the detected sizes of boxes ``z`` (K, 4)."""
        rows = np.asarray(rows, dtype=np.intp)
        every = every_row(rows, self._size.shape[0])  # the usual frame: no gather, no scatter
        s = self._size if every else self._size.take(rows, axis=0)
        s = steady_step(s, np.asarray(z, float).reshape(-1, 4)[:, 2:4])
        if every:
            self._size = s
        else:
            self._size[rows] = s


def hidden_side(boxes: np.ndarray, steady: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """(K, 2) per axis (x, y) of new ghosts, the side of their box a VISIBLE track hides: +1 the
    high side (right, bottom), -1 the low side, 0 unknown (no visible box beside the part missing).

    boxes: (K, 4) the ghosts' boxes ``cx, cy, w, h`` px; steady: (K, 2) their steady sizes;
    visible: (V, 4) the VISIBLE tracks' boxes. Per axis, a strip of the part of the object missing
    from its box (``steady - size`` when positive, at most ``OCCLUDER_STRIP_FRAC`` of the steady
    size) is laid against either edge of the box; a visible box that overlaps it over at least
    half the box's extent on the other axis, and reaches into the box by at most
    ``OCCLUDER_REACH_FRAC`` of the steady size (one further over the part in view is behind it),
    reaches that edge: the side it overlaps more is hidden. A visible box further off (a nuisance
    or another object nearby, not the one in front) says nothing: the static-occluder rule of
    :func:`onset_correction` decides then. Limit: one frame's boxes cannot tell an occluder from a
    tracked object following right behind the edge of an object that slides behind a static
    occluder (a wall that is no track): that follower is taken for the occluder.
    """
    boxes = np.asarray(boxes, dtype=float).reshape(-1, 4)
    visible = np.asarray(visible, dtype=float).reshape(-1, 4)
    side = np.zeros((boxes.shape[0], 2))
    if boxes.shape[0] == 0 or visible.shape[0] == 0:
        return side
    c, size = boxes[:, _CENTRE], boxes[:, _SIZE]
    steady = np.asarray(steady, dtype=float).reshape(-1, 2)
    strip = np.clip(steady - size, 0.0, OCCLUDER_STRIP_FRAC * steady)
    v_lo, v_hi = visible[:, :2] - visible[:, 2:4] / 2, visible[:, :2] + visible[:, 2:4] / 2  # (V, 2)

    def overlap(lo: np.ndarray, hi: np.ndarray, axis: int) -> np.ndarray:
        """(K, V) overlap length of each [lo, hi] (K,) with each visible box along ``axis``."""
        return np.clip(np.minimum(hi[:, None], v_hi[None, :, axis]) - np.maximum(lo[:, None], v_lo[None, :, axis]),
                       0.0, None)

    for a in (0, 1):
        o = 1 - a
        across = overlap(c[:, o] - size[:, o] / 2, c[:, o] + size[:, o] / 2, o)  # (K, V)
        across = np.where(across >= 0.5 * size[:, o, None], across, 0.0)
        edge_hi, edge_lo = c[:, a] + size[:, a] / 2, c[:, a] - size[:, a] / 2
        # a box reaching far over the part in view is behind it, not in front
        across = np.where(overlap(edge_lo, edge_hi, a) <= OCCLUDER_REACH_FRAC * steady[:, a, None], across, 0.0)
        plus = (overlap(edge_hi, edge_hi + strip[:, a], a) * across).max(axis=1)
        minus = (overlap(edge_lo - strip[:, a], edge_lo, a) * across).max(axis=1)
        side[:, a] = np.sign(plus - minus)
    return side


def onset_correction(x: np.ndarray, steady: np.ndarray, image_size: tuple[int, int] | None = None,
                     hidden: np.ndarray | None = None) -> np.ndarray:
    """(K, 8) additive corrections of new ghosts' states ``x`` (K, 8) (module docstring).

    steady: (K, 2) their steady sizes px; image_size: ``(width, height)`` px or None; hidden:
    (K, 2) the side a VISIBLE track hides per axis (:func:`hidden_side`; None: unknown everywhere).
    """
    x = np.asarray(x, dtype=float)
    dx = np.zeros_like(x)
    v_c, v_w = x[:, _V_CENTRE], x[:, _V_SIZE]
    v_lo, v_hi = v_c - v_w / 2, v_c + v_w / 2  # edge velocities
    hidden = np.zeros_like(v_c) if hidden is None else np.asarray(hidden, dtype=float).reshape(v_c.shape)
    # the edge still in view: the one away from a known occluder, else the faster (trailing) one
    trailing = np.where(hidden > 0, v_lo, np.where(hidden < 0, v_hi,
                                                   np.where(np.abs(v_lo) >= np.abs(v_hi), v_lo, v_hi)))
    # shrinking behind a known occluder, or with the centre moving (not a symmetric shrink)
    sliding = (v_w < 0) & ((hidden != 0) | (np.abs(v_c) >= EDGE_MIN_RATIO * np.abs(v_w) / 2))
    size, centre = x[:, _SIZE], x[:, _CENTRE]
    known = image_size is not None and min(image_size) > 0
    if known:  # an axis cut by the image border is left to the filter (the amodal box is cut there too)
        inside = (centre - size / 2 > BORDER_PX) & (centre + size / 2 < np.asarray(image_size, float) - BORDER_PX)
        sliding &= inside
    v_new = np.where(sliding, trailing, v_c)  # v_c' = the trailing edge's when sliding behind
    dx[:, _V_CENTRE] = v_new - v_c
    dx[:, _V_SIZE] = -v_w  # v_w' = 0
    truncated = size < TRUNCATED_FRAC * steady
    if known:
        truncated &= inside
    grow = np.where(truncated, steady - size, 0.0)
    toward = np.where(hidden != 0, hidden, np.sign(v_new))  # behind the occluder, else ahead of the motion
    new_centre = centre + toward * grow / 2  # the edge in view stays
    new_size = size + grow
    if known:
        lo = np.maximum(new_centre - new_size / 2, 0.0)
        hi = np.minimum(new_centre + new_size / 2, np.asarray(image_size, float))
        restored = truncated & (hi > lo)
        new_centre = np.where(restored, (lo + hi) / 2, centre)
        new_size = np.where(restored, hi - lo, size)
    dx[:, _CENTRE] = new_centre - centre
    dx[:, _SIZE] = new_size - size
    return dx
