"""Tests for core.box_truncation (the centre of a truncated box) and its use by the triangulator."""
from __future__ import annotations

import numpy as np
import pytest

from object_permanence.core.box_truncation import SteadyExtents, truncation_std
from object_permanence.core.ghost_onset import STEADY_GATE, STEADY_RATE
from object_permanence.core.triangulation import StereoTriangulator
from object_permanence.core.triangulator_config import TriangulatorConfig
from stereo_scenes import FX, projections, stereo_tracks


def box(w: float, h: float) -> np.ndarray:
    return np.array([[100.0, 100.0, w, h]])


def test_steady_extent_follows_whole_boxes_and_ignores_cut_ones():
    steady = SteadyExtents()
    steady.update([7], box(60.0, 100.0))  # the first detected size
    np.testing.assert_allclose(steady.sizes([7], box(1.0, 1.0)), [[60.0, 100.0]])
    steady.update([7], box(70.0, 100.0))  # nearer: a step toward it
    np.testing.assert_allclose(steady.sizes([7], box(1.0, 1.0)), [[60.0 + STEADY_RATE * 10.0, 100.0]])
    cut = STEADY_GATE * 61.0 - 1.0
    steady.update([7], box(cut, 100.0))  # a box cut below the gate leaves the width as it is
    np.testing.assert_allclose(steady.sizes([7], box(1.0, 1.0)), [[61.0, 100.0]])
    # a track without a steady size gets its own box's size (no truncation); keep forgets the others
    np.testing.assert_allclose(steady.sizes([8], box(30.0, 40.0)), [[30.0, 40.0]])
    steady.keep([8])
    np.testing.assert_allclose(steady.sizes([7], box(30.0, 40.0)), [[30.0, 40.0]])


def test_truncation_std_is_the_fraction_of_half_the_missing_extent():
    sizes = np.array([[60.0, 100.0], [24.0, 100.0], [70.0, 50.0]])
    steady = np.array([[60.0, 100.0], [60.0, 100.0], [60.0, 100.0]])
    np.testing.assert_allclose(truncation_std(sizes, steady, 1.0), [[0, 0], [18.0, 0], [0, 25.0]])
    np.testing.assert_allclose(truncation_std(sizes, steady, 0.5), [[0, 0], [9.0, 0], [0, 12.5]])


@pytest.mark.parametrize("cut_side", [1.0, -1.0])
def test_a_cut_box_moves_the_3d_point_across_the_ray_slowly_and_not_in_depth(cut_side):
    """A standing object (3 m away, 60 x 100 px boxes) is seen whole for 10 frames, then cut to 40%
    of its width on one side in both views for 6 frames (the time an object takes to slide behind
    a pillar): the box centres move 18 px (0.11 m at 3 m) off the object's. Taken as certain, they
    are gated out five times and then restart the 3D filter there; with ``truncation_std_frac`` 1
    they are fused, weighted as what they are: the 3D point moves a little across the ray, and its
    depth under 2 cm (the two views' cuts move both centres alike, which the measurement's
    covariance says; what moves the depth is the filter's prior correlation of X and Z)."""
    point = np.array([[0.0, 0.0, 3.0]])
    out = {}
    for frac in (0.0, 1.0):
        tri = StereoTriangulator(*projections(), TriangulatorConfig(truncation_std_frac=frac))
        for k in range(16):
            left, right = stereo_tracks(point, np.array([0.6]))
            for t in left + right:
                t.measurement = t.box.copy()
                if k >= 10:  # the hidden side's edge moves in: the box keeps 40% of its width
                    t.measurement[0] -= cut_side * 0.3 * t.box[2]
                    t.measurement[2] *= 0.4
            (out[frac],) = tri.step(left, right, stamp=k / 30.0)
    shift_m = 0.3 * 60.0 * 3.0 / FX  # 18 px at 3 m
    assert out[0.0].position[0] == pytest.approx(-cut_side * shift_m, abs=1e-3)
    assert abs(out[1.0].position[0]) < 0.15 * shift_m
    assert out[1.0].position[2] == pytest.approx(3.0, abs=0.02)
    assert np.all(np.linalg.eigvalsh(out[1.0].covariance) > 0)
