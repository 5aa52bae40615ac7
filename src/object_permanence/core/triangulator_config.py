"""Configuration of the stereo triangulator: pairing gates and weights, measurement noise, the 3D
filter and the image disparity (all scalars, so the node declares each as a ROS parameter)."""
from __future__ import annotations

import math
from dataclasses import dataclass

from object_permanence.core.box_disparity import DISPARITY_METHODS, BoxDisparityConfig


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class TriangulatorConfig:
    """Parameters of :class:`object_permanence.core.triangulation.StereoTriangulator`.

    max_row_diff_px, max_row_diff_frac: the rows of the two box centres may differ by at most
        ``max(max_row_diff_px, max_row_diff_frac * h)`` pixels, h the mean box height (epipolar gate).
    min_depth_m, max_depth_m: depth range; gates the disparity to ``[fx B / max_depth, fx B / min_depth]``.
    require_same_class: pairs of different class ids are infeasible.
    max_size_ratio: ``h_left / h_right`` must lie in ``[1 / r, r]``.
    row_weight, size_weight, appearance_weight: cost weights of the normalised row difference,
        the normalised log size ratio and the embedding cosine distance ``(1 - cos) / 2``.
    hysteresis_bonus: cost subtracted from last frame's pairs (kept while they remain feasible).
    trail_length: number of past filtered positions kept per 3D track (for markers).
    pair_memory_s: a pair whose two tracks are still present but not paired together is forgotten
        after this many seconds (a pair is forgotten at once when either track is LOST or gone).
    detection_std_px: floor of the standard deviation of a detection box centre, pixels per
        coordinate (rectification resampling, box quantisation); also added to a ghost's 2D covariance.
    detection_std_frac: standard deviation of a detection box centre as a fraction of the box width
        (column) and height (row): the detector's localisation noise (the simulated detector's
        realistic box_noise_frac is 0.04).
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
    ghost_velocity_damping_s: while a pair is a ghost its 3D velocity decays with this time
        constant (seconds; 0: constant velocity), so a velocity estimated from a few noisy depths
        is not extrapolated for seconds.
    box_depth_without_match: with images, a pair VISIBLE in both views whose disparity no image
        method measured is triangulated from its box centres (true), or its 3D filter takes only the
        bearing of its left box (false; nor does such a pair start a 3D track): under partial
        occlusion the two views box different parts of the object and the box centres' disparity is
        off by many pixels (metres at 4 m), and even unoccluded it is a few pixels off.
    confirm_new_tracks: a new pair's 3D track is published once a second measured triangulation,
        within 0.3 s, falls inside the validation gate of its first (a partly hidden object's
        first measurement, a nuisance seen once, a wrong pairing are often alone); one outside
        it, or later, restarts the pair there, still unpublished. False, the dataclass default,
        publishes from the first measurement; the shipped ``config/triangulator.yaml`` sets true.
    max_extrapolation_std_m: a 3D track is published while the standard deviation of its position
        along its least certain direction (the square root of the largest eigenvalue of its position
        covariance) exceeds its value right after the pair's last fused measurement by at most this
        many metres; past it the pair's filter runs on unpublished (a depth extrapolated for seconds
        without a measurement) and shows again at its next measurement. Growth, not the absolute
        value: a far object's measured depth is uncertain by itself. 0 (this default): no limit.
    ghost_bearing_update: an OCCLUDED pair's 3D filter takes the bearing of its left box (the 2D
        ghost's prediction, or the detection when the left view still sees it): the 3D ghost is
        moved sideways onto that ray at its own depth.
    truncation_std_frac: a detection box narrower or shorter than its track's steady size (the
        object partly hidden) has its centre's standard deviation grown, per coordinate, by this
        fraction of half the missing extent (in quadrature, the two views' cuts moving both
        centres alike; core/box_truncation.py): its centre is off the object's by up to that much,
        on a side one frame cannot tell. 0 (this default): a truncated box's centre is as certain
        as a whole one's.
    disparity_method: how the image disparity of a visible pair is measured: auto (template
        matching where its cells agree to refine_max_spread_px, else semi-global matching on the
        box's strip), ncc (template matching only) or sgbm (semi-global matching only).
    refined_disparity_std_px: disparity std (pixels) of a template-matched pair, used in place of
        the box-centre covariance along the rows.
    sgbm_disparity_std_px: disparity std (pixels) of a pair measured by semi-global matching
        (about its mean error on real images, tools/eval_stereo.py).
    refine_search_px: the image disparity is searched within this many pixels of the box-centre one
        (wide enough for the box centres' disparity error; narrower keeps a nearby object at another
        depth, e.g. a crossing one, from being matched instead).
    refine_min_ncc: minimum peak normalised cross-correlation for a template match to be used.
    refine_inner_frac: side fraction of the left box matched in the right image.
    refine_min_peak_curvature: minimum sharpness (negative second difference) of the correlation
        peak; flatter peaks (stripes along the rows, smooth shading) give no template match.
    refine_max_spread_px: with disparity_method auto, a template match is used when its agreeing
        cells' standard deviation is at most this (pixels).
    sgbm_block_size: odd block side (pixels) of the semi-global matcher.
    sgbm_uniqueness_ratio: uniqueness margin (percent) of the semi-global matcher.
    sgbm_min_ncc: a semi-global disparity is used only when the right image, warped by the plane
        fitted to it, correlates with the left box at least this much (zero-mean NCC); views that
        disagree (a reflection, glare, an occluder in one view) score about 0.
    sgbm_split_px: when the semi-global planes of the left and right halves of a box depart by more
        than this (pixels) from the whole box's plane (a slanted surface's halves lie on it), the box
        spans a depth edge (a partly hidden object ends at its occluder's edge) and the farther
        half's disparity is used; 0: the whole box always.

    Raises:
        ValueError: naming the field and its value, also for inconsistent combinations, a flag that
            is not a bool (``'false'`` or ``1``) or a number that is one.
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
    detection_std_px: float = 1.0
    detection_std_frac: float = 0.04
    accel_noise: float = 0.18
    initial_velocity_std_mps: float = 1.0
    gate_probability: float = 0.999
    max_rejected_updates: int = 5
    border_margin_px: float = 2.0
    update_from_ghosts: bool = False
    ghost_velocity_damping_s: float = 0.0
    ghost_bearing_update: bool = False
    box_depth_without_match: bool = False
    confirm_new_tracks: bool = False
    max_extrapolation_std_m: float = 0.0
    truncation_std_frac: float = 0.0
    # the image-disparity fields: BoxDisparityConfig's, under this node's parameter names
    disparity_method: str = BoxDisparityConfig.method
    refined_disparity_std_px: float = BoxDisparityConfig.ncc_std_px
    sgbm_disparity_std_px: float = BoxDisparityConfig.sgbm_std_px
    refine_search_px: float = BoxDisparityConfig.search_px
    refine_min_ncc: float = BoxDisparityConfig.min_ncc
    refine_inner_frac: float = BoxDisparityConfig.inner_frac
    refine_min_peak_curvature: float = BoxDisparityConfig.min_peak_curvature
    refine_max_spread_px: float = BoxDisparityConfig.max_ncc_spread_px
    sgbm_block_size: int = BoxDisparityConfig.sgbm_block_size
    sgbm_uniqueness_ratio: int = BoxDisparityConfig.sgbm_uniqueness_ratio
    sgbm_min_ncc: float = BoxDisparityConfig.sgbm_min_ncc
    sgbm_split_px: float = BoxDisparityConfig.sgbm_split_px

    def __post_init__(self) -> None:
        nonnegative = ("max_row_diff_frac", "row_weight", "size_weight", "appearance_weight",
                       "hysteresis_bonus", "pair_memory_s", "detection_std_frac", "border_margin_px",
                       "ghost_velocity_damping_s", "max_extrapolation_std_m", "truncation_std_frac")
        positive = ("max_row_diff_px", "min_depth_m", "max_depth_m", "detection_std_px", "accel_noise",
                    "initial_velocity_std_mps")
        for name in ("require_same_class", "update_from_ghosts", "ghost_bearing_update", "box_depth_without_match",
                     "confirm_new_tracks"):
            if not isinstance(getattr(self, name), bool):  # 'false' or 1 would be truthy or work as ints
                raise ValueError(f"{name} must be a bool, got {getattr(self, name)!r}")
        for name in nonnegative + positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not (isinstance(value, (int, float)) and math.isfinite(value)) or value < 0 \
                    or (name in positive and value == 0):
                kind = "positive" if name in positive else "non-negative"
                raise ValueError(f"{name} must be finite and {kind}, got {value!r}")
        if self.max_depth_m <= self.min_depth_m:
            raise ValueError(f"max_depth_m ({self.max_depth_m}) must exceed min_depth_m ({self.min_depth_m})")
        if not math.isfinite(self.max_size_ratio) or self.max_size_ratio <= 1.0:
            raise ValueError(f"max_size_ratio must be finite and > 1, got {self.max_size_ratio!r}")
        if not _is_int(self.trail_length) or self.trail_length < 1:
            raise ValueError(f"trail_length must be an integer >= 1, got {self.trail_length!r}")
        if not 0.0 < self.gate_probability < 1.0:
            raise ValueError(f"gate_probability must lie in (0, 1), got {self.gate_probability!r}")
        if not _is_int(self.max_rejected_updates) or self.max_rejected_updates < 0:
            raise ValueError(f"max_rejected_updates must be an integer >= 0, got {self.max_rejected_updates!r}")
        if self.disparity_method not in DISPARITY_METHODS:
            raise ValueError(f"disparity_method must be one of {DISPARITY_METHODS}, got {self.disparity_method!r}")
        try:
            self.disparity_config()
        except ValueError as exc:  # name this config's field, not the forwarded one
            raise ValueError(f"{self._disparity_field(str(exc))}: {exc}") from None

    # Field of BoxDisparityConfig -> field of this config.
    _DISPARITY_FIELDS = {
        "method": "disparity_method", "search_px": "refine_search_px", "min_ncc": "refine_min_ncc",
        "inner_frac": "refine_inner_frac", "min_peak_curvature": "refine_min_peak_curvature",
        "max_ncc_spread_px": "refine_max_spread_px", "ncc_std_px": "refined_disparity_std_px",
        "sgbm_std_px": "sgbm_disparity_std_px", "sgbm_block_size": "sgbm_block_size",
        "sgbm_uniqueness_ratio": "sgbm_uniqueness_ratio", "sgbm_min_ncc": "sgbm_min_ncc",
        "sgbm_split_px": "sgbm_split_px",
    }

    def _disparity_field(self, message: str) -> str:
        """This config's name of the BoxDisparityConfig field a validation message starts with."""
        forwarded = message.split(" ", 1)[0]
        return self._DISPARITY_FIELDS.get(forwarded, forwarded)

    def disparity_config(self) -> BoxDisparityConfig:
        """The image-disparity part, as :class:`BoxDisparityConfig`."""
        return BoxDisparityConfig(**{inner: getattr(self, outer) for inner, outer in self._DISPARITY_FIELDS.items()})
