"""Stereo pairing of left/right 2D tracks and their triangulation into 3D tracks.

Inputs are world-model :class:`Track` lists of the two *rectified* cameras (ghosts included) and the
two rectified 3x4 projections (ROS convention: ``P_left[:, 3] = 0``, ``P_right[0, 3] = -fx * B``;
both share fx, fy and cy, so a 3D point lands on the same image row in both views).

Pairing is a global assignment (scipy's Hungarian) over a vectorised cost matrix; a pair is feasible
only if it satisfies the epipolar (row) constraint, a disparity inside the configured depth range,
the class and the size-ratio limits. Last frame's pairs get a cost bonus so pairing is stable.

Triangulation uses the closed form of a rectified pair (exact, vectorised, and its Jacobian is
analytic); the tests check it against ``cv2.triangulatePoints``. With ``xl = u_l - cx_l``,
``xr = u_r - cx_r``, disparity ``d = xl - xr`` and ``v = (v_l + v_r) / 2``::

    Z = fx * B / d,    X = xl * Z / fx,    Y = (v - cy) * Z / fy

Positions are metres in the left camera's (rectified) optical frame: x right, y down, z forward.

Box centres carry pixels of detector jitter and Kalman lag, which is metres of depth at a few metres.
Two things bring the error down to centimetres: when the rectified images are given, the disparity
of each VISIBLE pair is refined from the image texture
(:func:`object_permanence.core.stereo_matching.refine_disparities`, about 0.1 px), and every 3D
track runs a constant-velocity Kalman filter (``filterpy``) whose measurement is the triangulated
point with its propagated covariance; ghost pairs only predict.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
from filterpy.common import Q_continuous_white_noise
from filterpy.kalman import KalmanFilter
from scipy.optimize import linear_sum_assignment
from scipy.stats import chi2

from object_permanence.core.stereo_matching import refine_disparities
from object_permanence.core.types import Track, Track3D, TrackState

#: How bad a lifecycle state is, for "the worse of the two states" of a stereo pair.
_STATE_SEVERITY = {
    TrackState.VISIBLE: 0,
    TrackState.TENTATIVE: 1,
    TrackState.OCCLUDED: 2,
    TrackState.LOST: 3,
}

#: Cost given to infeasible pairs before assignment (pairs with it are dropped afterwards).
_INFEASIBLE = 1e6

#: The 3D filter measures the position out of the state ``[x y z vx vy vz]``: H = [I 0].
_H = np.hstack([np.eye(3), np.zeros((3, 3))])

#: States whose 2D boxes are ghost predictions, not observations.
_GHOST_STATES = (TrackState.OCCLUDED, TrackState.LOST)


@dataclass(frozen=True)
class StereoPairingConfig:
    """Gates, weights and memory of the left/right pairing.

    max_row_diff_px, max_row_diff_frac: the rows of the two box centres may differ by at most
        ``max(max_row_diff_px, max_row_diff_frac * h)`` pixels, h the mean box height (epipolar gate).
    min_depth_m, max_depth_m: depth range; gates the disparity to ``[fx B / max_depth, fx B / min_depth]``.
    require_same_class: pairs of different class ids are infeasible.
    max_size_ratio: ``h_left / h_right`` must lie in ``[1 / r, r]``.
    row_weight, size_weight, appearance_weight: cost weights of the normalised row difference,
        the normalised log size ratio and the embedding cosine distance ``(1 - cos) / 2``.
    hysteresis_bonus: cost subtracted from last frame's pairs (kept while they remain feasible).
    trail_length: number of past filtered positions kept per 3D track (for markers).
    pair_memory_s: a pair unseen for longer than this is forgotten (its id is never reused).
    center_sigma_floor_px: 2D centre standard deviation added (in quadrature) to each track's centre
        covariance before propagation, for rectification resampling and box quantisation.
    accel_noise: square root of the spectral density of the white-noise acceleration of the 3D
        constant-velocity Kalman filter, m s^-1.5 (velocity variance grows by accel_noise² m²/s² per s,
        whatever the frame rate).
    initial_velocity_std_mps: velocity std (m/s) of a new 3D track (its velocity starts at 0).
    gate_probability: validation gate of the 3D update: a triangulation whose squared Mahalanobis
        distance to the prediction exceeds the chi² quantile of this probability (3 dof) is skipped.
    max_rejected_updates: after this many gated-out triangulations in a row the 3D filter restarts
        at the measurement.
    border_margin_px: a box within this many pixels of the left or right image border is taken as
        cut by it (its centre column biased).
    update_from_ghosts: also update the 3D filter from ghost pairs (either view OCCLUDED or LOST);
        by default they only predict, as their boxes are 2D predictions, not observations.
    refined_disparity_std_px: disparity std (pixels) of an image-refined pair, used in place of the
        box-centre covariance along the rows.
    refine_search_px: the refined disparity is searched within this many pixels of the box-centre one
        (wide enough for the box centres' disparity error; narrower keeps a nearby object at another
        depth, e.g. a crossing one, from being matched instead).
    refine_min_ncc: minimum peak normalised cross-correlation for a refined disparity to be used.
    refine_inner_frac: side fraction of the left box matched in the right image.
    refine_min_peak_curvature: minimum sharpness (negative second difference) of the correlation
        peak; flatter peaks (stripes along the rows, smooth shading) keep the box-centre disparity.
    """

    max_row_diff_px: float = 4.0
    max_row_diff_frac: float = 0.15
    min_depth_m: float = 0.3
    max_depth_m: float = 40.0
    require_same_class: bool = True
    max_size_ratio: float = 1.5
    row_weight: float = 1.0
    size_weight: float = 1.0
    appearance_weight: float = 1.0
    hysteresis_bonus: float = 1.0
    trail_length: int = 30
    pair_memory_s: float = 5.0
    center_sigma_floor_px: float = 0.25
    accel_noise: float = 0.18
    initial_velocity_std_mps: float = 1.0
    update_from_ghosts: bool = False
    refined_disparity_std_px: float = 0.2
    refine_search_px: float = 4.0
    refine_min_ncc: float = 0.7
    refine_inner_frac: float = 0.6
    refine_min_peak_curvature: float = 0.02
    gate_probability: float = 0.999
    max_rejected_updates: int = 5
    border_margin_px: float = 2.0

    def __post_init__(self) -> None:
        nonnegative = ("max_row_diff_frac", "row_weight", "size_weight", "appearance_weight",
                       "hysteresis_bonus", "pair_memory_s", "center_sigma_floor_px", "border_margin_px")
        positive = ("max_row_diff_px", "min_depth_m", "max_depth_m", "accel_noise", "initial_velocity_std_mps",
                    "refined_disparity_std_px", "refine_search_px", "refine_min_peak_curvature")
        for name in nonnegative + positive:
            value = getattr(self, name)
            if not np.isfinite(value) or value < 0 or (name in positive and value == 0):
                kind = "positive" if name in positive else "non-negative"
                raise ValueError(f"{name} must be finite and {kind}, got {value!r}")
        if self.max_depth_m <= self.min_depth_m:
            raise ValueError(f"max_depth_m ({self.max_depth_m}) must exceed min_depth_m ({self.min_depth_m})")
        if not np.isfinite(self.max_size_ratio) or self.max_size_ratio <= 1.0:
            raise ValueError(f"max_size_ratio must be finite and > 1, got {self.max_size_ratio!r}")
        if isinstance(self.trail_length, bool) or not isinstance(self.trail_length, int) or self.trail_length < 1:
            raise ValueError(f"trail_length must be an integer >= 1, got {self.trail_length!r}")
        if not -1.0 <= self.refine_min_ncc <= 1.0:
            raise ValueError(f"refine_min_ncc must lie in [-1, 1], got {self.refine_min_ncc!r}")
        if not 0.0 < self.refine_inner_frac <= 1.0:
            raise ValueError(f"refine_inner_frac must lie in (0, 1], got {self.refine_inner_frac!r}")
        if not 0.0 < self.gate_probability < 1.0:
            raise ValueError(f"gate_probability must lie in (0, 1), got {self.gate_probability!r}")
        if (isinstance(self.max_rejected_updates, bool) or not isinstance(self.max_rejected_updates, int)
                or self.max_rejected_updates < 0):
            raise ValueError(f"max_rejected_updates must be an integer >= 0, got {self.max_rejected_updates!r}")


@dataclass(frozen=True)
class RectifiedRig:
    """Intrinsics of a rectified horizontal pair, read from the two 3x4 projections.

    fx, fy, cy: shared by both views (pixels); cx_left, cx_right: principal columns; baseline: metres.
    """

    fx: float
    fy: float
    cx_left: float
    cx_right: float
    cy: float
    baseline: float

    @classmethod
    def from_projections(cls, p_left: np.ndarray, p_right: np.ndarray) -> RectifiedRig:
        """Validate ``P_left``/``P_right`` as a rectified horizontal pair and extract the rig.

        Raises:
            ValueError: naming the matrix when shapes, finiteness or the rectified structure are wrong.
        """
        mats = {}
        for name, value in (("P_left", p_left), ("P_right", p_right)):
            mat = np.asarray(value, dtype=np.float64)
            if mat.shape != (3, 4) or not np.all(np.isfinite(mat)):
                raise ValueError(f"{name} must be a finite (3, 4) matrix, got {mat.tolist()}")
            if mat[0, 0] <= 0 or mat[1, 1] <= 0:
                raise ValueError(f"{name} must have fx > 0 and fy > 0, got {mat[0, 0]}, {mat[1, 1]}")
            # Rectified form [[fx, 0, cx, Tx], [0, fy, cy, 0], [0, 0, 1, 0]].
            template = np.array([[mat[0, 0], 0, mat[0, 2], mat[0, 3]], [0, mat[1, 1], mat[1, 2], 0], [0, 0, 1, 0]])
            if not np.allclose(mat, template, rtol=0.0, atol=1e-9):
                raise ValueError(f"{name} is not a rectified projection [[fx,0,cx,Tx],[0,fy,cy,0],[0,0,1,0]]: "
                                 f"{mat.tolist()}")
            mats[name] = mat
        pl, pr = mats["P_left"], mats["P_right"]
        if not np.allclose(pl[[0, 1, 1], [0, 1, 2]], pr[[0, 1, 1], [0, 1, 2]], rtol=1e-6, atol=0.0):
            raise ValueError(f"P_left and P_right must share fx, fy and cy, got {pl.tolist()} / {pr.tolist()}")
        if pl[0, 3] != 0.0:
            raise ValueError(f"P_left[0, 3] must be 0 (left is the reference camera), got {pl[0, 3]}")
        if pr[0, 3] >= 0.0:
            raise ValueError(f"P_right[0, 3] must be -fx * baseline < 0, got {pr[0, 3]}")
        return cls(fx=pl[0, 0], fy=pl[1, 1], cx_left=pl[0, 2], cx_right=pr[0, 2], cy=pl[1, 2],
                   baseline=-pr[0, 3] / pr[0, 0])


def triangulate_rectified(rig: RectifiedRig, pts_left: np.ndarray, pts_right: np.ndarray) -> np.ndarray:
    """Closed-form triangulation of matched points of a rectified pair.

    pts_left, pts_right: (N, 2) pixel ``(u, v)``. Returns (N, 3) metres, left optical frame;
    a non-positive disparity gives non-finite values.
    """
    pts_left, pts_right = np.asarray(pts_left, np.float64), np.asarray(pts_right, np.float64)
    xl = pts_left[:, 0] - rig.cx_left
    xr = pts_right[:, 0] - rig.cx_right
    disparity = xl - xr  # d = xl - xr
    v = 0.5 * (pts_left[:, 1] + pts_right[:, 1])  # the row, averaged over both views
    with np.errstate(divide="ignore", invalid="ignore"):
        z = rig.fx * rig.baseline / np.where(disparity > 0, disparity, np.nan)  # Z = fx B / d
    return np.stack([xl * z / rig.fx, (v - rig.cy) * z / rig.fy, z], axis=1)  # X = xl Z / fx, Y = (v - cy) Z / fy


def triangulation_jacobian(rig: RectifiedRig, pts_left: np.ndarray, pts_right: np.ndarray) -> np.ndarray:
    """Jacobian (N, 3, 4) of :func:`triangulate_rectified` w.r.t. ``(u_l, v_l, u_r, v_r)``."""
    xyz = triangulate_rectified(rig, pts_left, pts_right)
    x, y, z = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    disparity = rig.fx * rig.baseline / z
    jac = np.zeros((len(xyz), 3, 4))
    jac[:, 0, 0] = rig.baseline / disparity - x / disparity  # dX/du_l = B/d - X/d
    jac[:, 0, 2] = x / disparity  # dX/du_r = xl B/d² = X/d
    jac[:, 1, 0] = -y / disparity  # dY/du_l = -Y/d
    jac[:, 1, 2] = y / disparity  # dY/du_r = Y/d
    jac[:, 1, 1] = jac[:, 1, 3] = 0.5 * z / rig.fy  # dY/dv_l = dY/dv_r = Z / (2 fy)
    jac[:, 2, 0] = -z / disparity  # dZ/du_l = -fx B/d² = -Z/d
    jac[:, 2, 2] = z / disparity  # dZ/du_r = Z/d
    return jac


@dataclass
class _PairState:
    """Memory of one (left id, right id) pair: its 3D id, its filter (state ``[x y z vx vy vz]`` in
    m and m/s at ``stamp``) and its trail of filtered positions."""

    track_id: int
    kf: KalmanFilter
    stamp: float
    trail: deque[np.ndarray] = field(default_factory=deque)
    rejected: int = 0  # consecutive measurements outside the validation gate


class StereoTriangulator:
    """Pairs left/right 2D tracks frame by frame and triangulates them into :class:`Track3D`.

    The 3D id is stable per (left id, right id) pair: a pair never seen before (or forgotten after
    ``pair_memory_s``) gets a new id, and ids are never reused. The 3D state is the worse of the two
    2D states (a ghost in either view is a ghost in 3D; LOST if either is LOST).
    """

    def __init__(self, p_left: np.ndarray, p_right: np.ndarray, config: StereoPairingConfig | None = None) -> None:
        self.rig = RectifiedRig.from_projections(p_left, p_right)
        self.config = config if config is not None else StereoPairingConfig()
        self._gate = float(chi2.ppf(self.config.gate_probability, df=3))
        fb = self.rig.fx * self.rig.baseline
        self._disparity_range = (fb / self.config.max_depth_m, fb / self.config.min_depth_m)  # d = fx B / Z
        self._pairs: dict[tuple[int, int], _PairState] = {}
        self._previous_pairs: set[tuple[int, int]] = set()
        self._next_id = 1
        self._last_stamp: float | None = None

    def pair(self, left: list[Track], right: list[Track]) -> list[tuple[int, int]]:
        """Indices ``(i, j)`` of the feasible minimum-cost pairing of ``left[i]`` with ``right[j]``."""
        if not left or not right:
            return []
        cost = self._cost_matrix(left, right)
        rows, cols = linear_sum_assignment(cost)
        return [(int(i), int(j)) for i, j in zip(rows, cols) if cost[i, j] < _INFEASIBLE]

    def _cost_matrix(self, left: list[Track], right: list[Track]) -> np.ndarray:
        """(L, R) pairing cost; infeasible pairs cost ``_INFEASIBLE``."""
        cfg = self.config
        bl = np.array([t.box for t in left], dtype=np.float64).reshape(-1, 4)
        br = np.array([t.box for t in right], dtype=np.float64).reshape(-1, 4)
        ul, vl, hl = bl[:, 0, None], bl[:, 1, None], bl[:, 3, None]
        ur, vr, hr = br[None, :, 0], br[None, :, 1], br[None, :, 3]

        row_tol = np.maximum(cfg.max_row_diff_px, cfg.max_row_diff_frac * 0.5 * (hl + hr))
        row_term = np.abs(vl - vr) / row_tol  # epipolar: rows agree after rectification
        disparity = (ul - self.rig.cx_left) - (ur - self.rig.cx_right)  # d = xl - xr
        with np.errstate(divide="ignore", invalid="ignore"):
            log_ratio = np.abs(np.log(hl / hr))
        size_term = log_ratio / np.log(cfg.max_size_ratio)
        feasible = (
            (row_term <= 1.0)
            & (disparity >= self._disparity_range[0])
            & (disparity <= self._disparity_range[1])
            & (size_term <= 1.0)
        )  # NaN anywhere compares False: NaN boxes are never paired
        if cfg.require_same_class:
            cls_l = np.array([t.class_id for t in left])
            cls_r = np.array([t.class_id for t in right])
            feasible &= cls_l[:, None] == cls_r[None, :]

        cost = cfg.row_weight * row_term + cfg.size_weight * size_term
        if cfg.appearance_weight > 0:
            cost = cost + cfg.appearance_weight * _appearance_distance(left, right)
        if self._previous_pairs:
            # Pairing is one-to-one, so each left id had at most one partner last frame.
            partner = dict(self._previous_pairs)
            had_partner = np.array([t.track_id in partner for t in left])
            previous_right = np.array([partner.get(t.track_id, 0) for t in left])
            ids_r = np.array([t.track_id for t in right])
            was_paired = had_partner[:, None] & (previous_right[:, None] == ids_r[None, :])
            cost = cost - cfg.hysteresis_bonus * was_paired
        return np.where(feasible, cost, _INFEASIBLE)

    def step(self, left: list[Track], right: list[Track], stamp: float,
             images: tuple[np.ndarray, np.ndarray] | None = None,
             image_size: tuple[int, int] | None = None) -> list[Track3D]:
        """Pair, triangulate and filter the 3D tracks for one synchronised frame at ``stamp`` (seconds).

        images: optional rectified ``(left_bgr, right_bgr)`` pair, (H, W, 3) uint8, of this frame;
            when given, the disparity of each pair VISIBLE in both views is refined from the image
            texture (the box-centre disparity is kept where refinement finds no reliable match).
        image_size: ``(width, height)`` in pixels (default: the images' size, else unknown); a pair
            whose box touches the image border and was not refined only predicts its 3D filter.

        Raises:
            ValueError: when ``stamp`` is not finite or goes backwards, or ``images`` are malformed.
        """
        stamp = float(stamp)
        if not np.isfinite(stamp):
            raise ValueError(f"stamp must be finite, got {stamp}")
        if self._last_stamp is not None and stamp < self._last_stamp:
            raise ValueError(f"stamp went backwards: {stamp} < previous {self._last_stamp}")
        self._last_stamp = stamp
        self._pairs = {k: s for k, s in self._pairs.items() if stamp - s.stamp <= self.config.pair_memory_s}

        matches = self.pair(left, right)
        self._previous_pairs = {(left[i].track_id, right[j].track_id) for i, j in matches}
        if not matches:
            return []
        lefts, rights = [left[i] for i, _ in matches], [right[j] for _, j in matches]
        pts_l = np.array([t.box[:2] for t in lefts], dtype=np.float64)
        pts_r = np.array([t.box[:2] for t in rights], dtype=np.float64)
        sigma2 = self._centre_covariances(lefts, rights)
        boxes_l = np.array([t.box for t in lefts], dtype=np.float64)
        boxes_r = np.array([t.box for t in rights], dtype=np.float64)
        refined = np.zeros(len(lefts), dtype=bool)
        if images is not None:
            visible = np.array([a.state == TrackState.VISIBLE and b.state == TrackState.VISIBLE
                                for a, b in zip(lefts, rights)])
            refined[self._refine(images, boxes_l[visible], pts_l, pts_r, sigma2, np.flatnonzero(visible))] = True
            image_size = image_size or (images[0].shape[1], images[0].shape[0])
        # A box cut by the image border has a biased centre (the part outside is missing): unless
        # the images gave the disparity, such a pair does not update its 3D filter.
        clipped = _at_border(boxes_l, image_size, self.config.border_margin_px) \
            | _at_border(boxes_r, image_size, self.config.border_margin_px)
        positions = triangulate_rectified(self.rig, pts_l, pts_r)
        jac = triangulation_jacobian(self.rig, pts_l, pts_r)
        covariances = np.einsum("nij,njk,nlk->nil", jac, sigma2, jac)  # Σ3 = J Σ2 J'
        return [self._update_pair(a, b, positions[k], covariances[k], stamp, measured=refined[k] or not clipped[k])
                for k, (a, b) in enumerate(zip(lefts, rights))]

    def _centre_covariances(self, left: list[Track], right: list[Track]) -> np.ndarray:
        """(N, 4, 4) covariance Σ2 of the pixel observations ``(u_l, v_l, u_r, v_r)``.

        Block-diagonal (the two views' errors are independent): each block is the track's (cx, cy)
        covariance plus ``center_sigma_floor_px²`` I; a non-finite block is replaced by the floor alone.
        """
        floor = self.config.center_sigma_floor_px**2 * np.eye(2)
        sigma2 = np.zeros((len(left), 4, 4))
        for offset, tracks in ((0, left), (2, right)):
            centre = np.array([np.asarray(t.covariance, dtype=np.float64)[:2, :2] for t in tracks])
            centre[~np.all(np.isfinite(centre), axis=(1, 2))] = 0.0
            sigma2[:, offset:offset + 2, offset:offset + 2] = centre + floor
        return sigma2

    def _refine(self, images: tuple[np.ndarray, np.ndarray], boxes_l: np.ndarray, pts_l: np.ndarray,
                pts_r: np.ndarray, sigma2: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Refine the disparity of pairs ``rows`` (left boxes ``boxes_l``, (M, 4)) from the images, in
        place; returns the indices of the pairs that were refined.

        A refined pair gets ``u_r = u_l - d_img`` (d_img the refined column shift) and the covariance
        of ``(u_l, v_l, u_l - d_img, v_r)`` with ``σ_d = refined_disparity_std_px``; a refinement
        outside the depth-range gate is discarded like a failed one.

        Raises:
            ValueError: when ``images`` is not a pair of equally sized uint8 images.
        """
        if len(images) != 2:
            raise ValueError(f"images must be a (left_bgr, right_bgr) pair, got {len(images)} items")
        cfg = self.config
        guess = pts_l[rows, 0] - pts_r[rows, 0]  # column shift u_l - u_r of the box centres
        shift, _ = refine_disparities(images[0], images[1], boxes_l, guess, search_px=cfg.refine_search_px,
                                      min_ncc=cfg.refine_min_ncc, inner_frac=cfg.refine_inner_frac,
                                      min_peak_curvature=cfg.refine_min_peak_curvature)
        disparity = shift - (self.rig.cx_left - self.rig.cx_right)  # d = xl - xr = (u_l - u_r) - (cx_l - cx_r)
        with np.errstate(invalid="ignore"):
            ok = (disparity >= self._disparity_range[0]) & (disparity <= self._disparity_range[1])
        refined = rows[ok]
        if not len(refined):
            return refined
        pts_r[refined, 0] = pts_l[refined, 0] - shift[ok]  # u_r = u_l - d_img
        # Observation (u_l, v_l, d_img, v_r) with d_img independent of the rest; u_r = u_l - d_img: Σ2 = A Σ' A'.
        sigma_obs = sigma2[refined].copy()
        sigma_obs[:, 2, :] = sigma_obs[:, :, 2] = 0.0
        sigma_obs[:, 2, 2] = cfg.refined_disparity_std_px**2
        a = np.array([[1.0, 0, 0, 0], [0, 1, 0, 0], [1, 0, -1, 0], [0, 0, 0, 1]])
        sigma2[refined] = a @ sigma_obs @ a.T
        return refined

    def _gated_update(self, state: _PairState, position: np.ndarray, covariance: np.ndarray) -> None:
        """Kalman update inside a validation gate: a triangulation farther than the chi² gate from
        the prediction (a partly hidden object whose image match latched onto the occluder, a bad
        pairing) is skipped and the filter coasts; after ``max_rejected_updates`` in a row the
        filter is re-initialised there (the track itself has moved on)."""
        cfg = self.config
        if _innovation_d2(state.kf, position, covariance) <= self._gate:
            state.kf.update(position, R=covariance)  # K = P H' (H P H' + R)⁻¹, x += K (z - H x)
            state.rejected = 0
            return
        state.rejected += 1
        if state.rejected > cfg.max_rejected_updates:
            state.kf = _new_filter(position, covariance, cfg.initial_velocity_std_mps)
            state.rejected = 0

    def _update_pair(self, a: Track, b: Track, position: np.ndarray, covariance: np.ndarray, stamp: float,
                     measured: bool = True) -> Track3D:
        """Run the pair's 3D filter to ``stamp`` and publish it.

        A new pair initialises from this triangulation; a known one predicts over the time since its
        last frame and, unless it is a ghost pair (``update_from_ghosts`` off) or the triangulation
        is not a usable measurement (``measured`` false: a box cut by the border), updates with it.
        A repeated stamp is not fused twice.
        """
        cfg = self.config
        key = (a.track_id, b.track_id)
        worse = TrackState(max(a.state, b.state, key=_STATE_SEVERITY.__getitem__))
        state = self._pairs.get(key)
        if state is None:
            state = _PairState(self._next_id, _new_filter(position, covariance, cfg.initial_velocity_std_mps),
                               stamp, deque(maxlen=cfg.trail_length))
            self._next_id += 1
            self._pairs[key] = state
        elif stamp > state.stamp:
            dt = stamp - state.stamp
            state.kf.predict(F=_transition(dt), Q=Q_continuous_white_noise(  # x = F x, P = F P F' + Q
                dim=2, dt=dt, spectral_density=cfg.accel_noise**2, block_size=3, order_by_dim=False))
            if measured and (worse not in _GHOST_STATES or cfg.update_from_ghosts):
                self._gated_update(state, position, covariance)
        state.stamp = stamp
        x, p = state.kf.x[:, 0], state.kf.P
        state.trail.append(x[:3].copy())
        return Track3D(
            track_id=state.track_id,
            state=worse,
            class_id=a.class_id,
            class_name=a.class_name,
            position=x[:3].copy(),
            velocity=x[3:].copy(),
            covariance=0.5 * (p[:3, :3] + p[:3, :3].T),
            left_track_id=a.track_id,
            right_track_id=b.track_id,
            persistence_score=float(np.fmin(a.persistence_score, b.persistence_score)),  # NaN-aware min
            frames_since_seen=max(a.frames_since_seen, b.frames_since_seen),
            trail=list(state.trail),
        )


def _at_border(boxes: np.ndarray, image_size: tuple[int, int] | None, margin: float) -> np.ndarray:
    """(N,) whether each box ``cx, cy, w, h`` comes within ``margin`` px of the left or right image
    border (its centre column is then biased); all False when the size is unknown."""
    if image_size is None or len(boxes) == 0:
        return np.zeros(len(boxes), dtype=bool)
    return (boxes[:, 0] - boxes[:, 2] / 2 <= margin) | (boxes[:, 0] + boxes[:, 2] / 2 >= image_size[0] - margin)


def _innovation_d2(kf: KalmanFilter, z: np.ndarray, r: np.ndarray) -> float:
    """Squared Mahalanobis distance of measurement ``z`` (3,) with covariance ``r`` (3, 3)."""
    y = z - (_H @ kf.x)[:, 0]  # y = z - H x
    s = _H @ kf.P @ _H.T + r  # S = H P H' + R
    return float(y @ np.linalg.solve(s, y))


def _transition(dt: float) -> np.ndarray:
    """(6, 6) constant-velocity transition over ``dt`` seconds: p ← p + v dt, v ← v."""
    f = np.eye(6)
    f[:3, 3:] = dt * np.eye(3)
    return f


def _new_filter(position: np.ndarray, covariance: np.ndarray, velocity_std: float) -> KalmanFilter:
    """A 3D constant-velocity filter at ``position`` (3,) m, covariance (3, 3) m², velocity 0 ± ``velocity_std``."""
    kf = KalmanFilter(dim_x=6, dim_z=3)
    kf.x = np.concatenate([position, np.zeros(3)])[:, None]
    kf.P = np.zeros((6, 6))
    kf.P[:3, :3] = covariance
    kf.P[3:, 3:] = velocity_std**2 * np.eye(3)
    kf.H = _H
    return kf


def _appearance_distance(left: list[Track], right: list[Track]) -> np.ndarray:
    """(L, R) cosine distance ``(1 - cos) / 2`` in [0, 1]; 0.5 (uninformative) where an embedding is missing."""
    dist = np.full((len(left), len(right)), 0.5)
    li = [i for i, t in enumerate(left) if t.embedding is not None and np.size(t.embedding)]
    ri = [j for j, t in enumerate(right) if t.embedding is not None and np.size(t.embedding)]
    if not li or not ri:
        return dist
    el = np.array([np.ravel(left[i].embedding) for i in li], dtype=np.float64)
    er = np.array([np.ravel(right[j].embedding) for j in ri], dtype=np.float64)
    if el.shape[1] != er.shape[1]:
        return dist
    el /= np.maximum(np.linalg.norm(el, axis=1, keepdims=True), 1e-12)
    er /= np.maximum(np.linalg.norm(er, axis=1, keepdims=True), 1e-12)
    dist[np.ix_(li, ri)] = 0.5 * (1.0 - el @ er.T)  # (1 - cos) / 2
    return dist
