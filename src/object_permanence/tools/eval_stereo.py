"""Box disparity on real rectified stereo pairs: our methods against OpenCV StereoSGBM's median.

    python -m object_permanence.tools.eval_stereo [--data ../shared/data] [--out out/eval/stereo.json]

Data sets (real images, ground truth without any model):

* ``chessboard``: the 13 OpenCV sample chessboard pairs of ``shared/data/stereo_calibration``,
  calibrated and rectified by :mod:`object_permanence.core.calibration`. The 9x6 inner corners,
  found in both rectified views, are ground-truth correspondences; the board is planar, so its
  disparity is affine in the rectified image, ``d = a u + b v + c``, fitted to the 54 corner
  disparities (residuals about 0.1-0.3 px, reported). Boxes: random 40-120 px boxes inside the
  board's corner hull, plus the box of the whole corner grid; truth = the plane at the box centre
  (for a box on the plane that is also the median of its pixels' disparities).
* ``middlebury_motorcycle``: the Middlebury 2014 ``Motorcycle`` pair shipped in scikit-image
  (``skimage.data.stereo_motorcycle``, a quarter resolution, dense ground-truth disparity). Boxes:
  random 40-120 px boxes with ground truth on at least half their pixels; truth = its median.

Each box gets a disparity guess, the truth plus Gaussian noise (``--guess-std-px`` per view: the
disparity of two detector box centres), as the triangulator has. Methods:

* ``sgbm_full_median`` (the reference): ``cv2.StereoSGBM`` on the whole image with the data set's
  disparity range (a multiple of 16 covering the truth with 16 px to spare on each side), block 5,
  ``P1 = 8 * 5²``, ``P2 = 32 * 5²``, uniqueness 10, speckle window 100 / range 2, disp12MaxDiff 1;
  the median of its valid disparities inside the box (coverage: at least 20% valid).
* ``auto``, ``ncc``, ``sgbm``: :func:`object_permanence.core.box_disparity.box_disparities` with the
  triangulator's default configuration and that method.

Written per data set and method: coverage (fraction of boxes answered), mean / median / 90th
percentile absolute error (pixels) over the answered boxes, and milliseconds per box; and whether
each method meets the bar (error <= the reference's, coverage >= 0.9).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from object_permanence.core.box_disparity import DISPARITY_METHODS, BoxDisparityConfig, box_disparities
from object_permanence.core.calibration import calibrate_stereo_from_chessboards, find_chessboard, rectify_maps
from object_permanence.core.triangulator_config import TriangulatorConfig
from object_permanence.tools.shared_data import SHARED_DATA_ENV, shared_data_root

#: The chessboard pairs of shared/data/stereo_calibration (there is no pair 10).
CHESSBOARD_PAIRS = ("01", "02", "03", "04", "05", "06", "07", "08", "09", "11", "12", "13", "14")
BOARD = (9, 6)
REFERENCE = "sgbm_full_median"
#: The bar: at least this fraction of boxes answered.
MIN_COVERAGE = 0.9


@dataclass
class StereoCase:
    """One rectified pair with boxes and their true disparities.

    left, right: (H, W) uint8 rectified grey images. boxes: (N, 4) ``cx, cy, w, h`` px in the left
    image. truth: (N,) true disparity ``u_left - u_right`` px. disparity_range: (lo, hi) the
    reference SGBM searches (multiples of 16). truth_residual_px: RMS residual of the ground truth's
    own fit (NaN where the truth is given).
    """

    name: str
    left: np.ndarray
    right: np.ndarray
    boxes: np.ndarray
    truth: np.ndarray
    disparity_range: tuple[int, int]
    truth_residual_px: float = float("nan")


def _range16(lo: float, hi: float) -> tuple[int, int]:
    """A 16-multiple range covering ``[lo, hi]`` with 16 px to spare on each side."""
    return int(np.floor((lo - 16.0) / 16.0) * 16), int(np.ceil((hi + 16.0) / 16.0) * 16)


def _random_boxes(rng: np.random.Generator, n: int, accept, x_range: tuple[float, float],
                  y_range: tuple[float, float], max_tries: int = 20000) -> np.ndarray:
    """(<= n, 4) random boxes of sides 40-120 px with centres in the ranges that ``accept(box)`` takes."""
    boxes = []
    for _ in range(max_tries):
        if len(boxes) == n:
            break
        box = np.array([rng.uniform(*x_range), rng.uniform(*y_range), *rng.uniform(40.0, 120.0, 2)])
        if accept(box):
            boxes.append(box)
    return np.array(boxes, dtype=np.float64).reshape(-1, 4)


def _box_corners(box: np.ndarray) -> np.ndarray:
    cx, cy, w, h = box
    return np.array([[cx - w / 2, cy - h / 2], [cx + w / 2, cy - h / 2], [cx - w / 2, cy + h / 2],
                     [cx + w / 2, cy + h / 2]])


def chessboard_cases(folder: Path, rng: np.random.Generator, boxes_per_pair: int = 30,
                     pairs: tuple[str, ...] = CHESSBOARD_PAIRS) -> list[StereoCase]:
    """Cases of the chessboard pairs ``pairs`` (the calibration always uses all 13).

    Raises:
        FileNotFoundError: naming a missing image. ValueError: when calibration fails.
    """
    images = {}
    for name in CHESSBOARD_PAIRS:
        for side in ("left", "right"):
            path = folder / f"{side}{name}.jpg"
            image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            if image is None:
                raise FileNotFoundError(f"cannot read chessboard image {path}")
            images[side, name] = image
    calibration, _ = calibrate_stereo_from_chessboards([images["left", n] for n in CHESSBOARD_PAIRS],
                                                       [images["right", n] for n in CHESSBOARD_PAIRS], BOARD)
    map_lx, map_ly, map_rx, map_ry = rectify_maps(calibration)
    cases = []
    for name in pairs:
        left = cv2.remap(images["left", name], map_lx, map_ly, cv2.INTER_LINEAR)
        right = cv2.remap(images["right", name], map_rx, map_ry, cv2.INTER_LINEAR)
        corners_l, corners_r = find_chessboard(left, BOARD), find_chessboard(right, BOARD)
        if corners_l is None or corners_r is None:
            continue
        disparity = (corners_l[:, 0] - corners_r[:, 0]).astype(np.float64)  # d = u_l - u_r per corner
        design = np.column_stack([corners_l, np.ones(len(corners_l))])
        plane = np.linalg.lstsq(design, disparity, rcond=None)[0]  # d = a u + b v + c
        residual = float(np.sqrt(np.mean((disparity - design @ plane) ** 2)))
        hull = cv2.convexHull(corners_l.astype(np.float32))

        def on_board(box: np.ndarray) -> bool:
            return all(cv2.pointPolygonTest(hull, (float(u), float(v)), False) >= 0 for u, v in _box_corners(box))

        lo, hi = corners_l.min(axis=0), corners_l.max(axis=0)
        boxes = _random_boxes(rng, boxes_per_pair, on_board, (lo[0], hi[0]), (lo[1], hi[1]))
        boxes = np.vstack([boxes, [(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, hi[0] - lo[0], hi[1] - lo[1]]])
        truth = np.column_stack([boxes[:, :2], np.ones(len(boxes))]) @ plane
        cases.append(StereoCase(f"chessboard{name}", left, right, boxes, truth,
                                _range16(disparity.min(), disparity.max()), residual))
    return cases


def motorcycle_case(rng: np.random.Generator, n_boxes: int = 300) -> StereoCase:
    """The Middlebury 2014 Motorcycle pair of scikit-image (no network: it ships in the wheel)."""
    from skimage.data import stereo_motorcycle

    left_rgb, right_rgb, truth_map = stereo_motorcycle()
    left = cv2.cvtColor(left_rgb, cv2.COLOR_RGB2GRAY)
    right = cv2.cvtColor(right_rgb, cv2.COLOR_RGB2GRAY)
    known = np.isfinite(truth_map)
    height, width = left.shape

    def pixels(box: np.ndarray) -> tuple[slice, slice]:
        return (slice(int(round(box[1] - box[3] / 2)), int(round(box[1] + box[3] / 2))),
                slice(int(round(box[0] - box[2] / 2)), int(round(box[0] + box[2] / 2))))

    def with_truth(box: np.ndarray) -> bool:
        rows, cols = pixels(box)
        inside = rows.start >= 0 and cols.start >= 0 and rows.stop <= height and cols.stop <= width
        return inside and known[rows, cols].mean() >= 0.5

    boxes = _random_boxes(rng, n_boxes, with_truth, (0.0, float(width)), (0.0, float(height)))
    truth = np.array([np.median(truth_map[pixels(b)][known[pixels(b)]]) for b in boxes])
    return StereoCase("middlebury_motorcycle", left, right, boxes, truth,
                      _range16(truth_map[known].min(), truth_map[known].max()))


def reference_sgbm_median(case: StereoCase, min_valid_frac: float = 0.2) -> np.ndarray:
    """(N,) the reference: median of full-image StereoSGBM disparities inside each box (NaN when < 20% valid)."""
    lo, hi = case.disparity_range
    block = 5
    matcher = cv2.StereoSGBM_create(minDisparity=lo, numDisparities=hi - lo, blockSize=block, P1=8 * block**2,
                                    P2=32 * block**2, uniquenessRatio=10, speckleWindowSize=100, speckleRange=2,
                                    disp12MaxDiff=1)
    dense = matcher.compute(case.left, case.right).astype(np.float64) / 16.0
    valid = dense >= lo  # invalid pixels are (lo - 1)
    out = np.full(len(case.boxes), np.nan)
    for i, (cx, cy, w, h) in enumerate(case.boxes):
        rows = slice(max(int(round(cy - h / 2)), 0), int(round(cy + h / 2)))
        cols = slice(max(int(round(cx - w / 2)), 0), int(round(cx + w / 2)))
        inside = valid[rows, cols]
        if inside.size and inside.mean() >= min_valid_frac:
            out[i] = np.median(dense[rows, cols][inside])
    return out


def _scores(estimate: np.ndarray, truth: np.ndarray, seconds: float) -> dict:
    answered = np.isfinite(estimate)
    error = np.abs(estimate[answered] - truth[answered])
    stat = (lambda f: float(f(error))) if error.size else (lambda f: float("nan"))
    return {"boxes": int(len(truth)), "coverage": float(answered.mean()) if len(truth) else float("nan"),
            "mean_abs_error_px": stat(np.mean), "median_abs_error_px": stat(np.median),
            "p90_abs_error_px": stat(lambda e: np.percentile(e, 90)),
            "ms_per_box": 1000.0 * seconds / max(len(truth), 1)}


def evaluate(cases: list[StereoCase], config: BoxDisparityConfig, rng: np.random.Generator,
             guess_std_px: float = 1.0, methods: tuple[str, ...] = DISPARITY_METHODS) -> dict:
    """Scores of the reference and of each of ``methods`` over ``cases`` (all boxes pooled).

    Returns ``{method: scores}`` with the keys of the module docstring, plus ``meets_bar`` for ours.
    """
    estimates: dict[str, list[np.ndarray]] = {m: [] for m in (REFERENCE, *methods)}
    seconds = dict.fromkeys(estimates, 0.0)
    truths = []
    for case in cases:
        guess = case.truth + rng.normal(0.0, guess_std_px * np.sqrt(2.0), len(case.truth))  # σ_d = √2 σ_view
        start = time.perf_counter()
        estimates[REFERENCE].append(reference_sgbm_median(case))
        seconds[REFERENCE] += time.perf_counter() - start
        for method in methods:
            start = time.perf_counter()
            result = box_disparities(case.left, case.right, case.boxes, guess,
                                     dataclasses.replace(config, method=method))
            seconds[method] += time.perf_counter() - start
            estimates[method].append(result.disparity)
        truths.append(case.truth)
    truth = np.concatenate(truths) if truths else np.zeros(0)
    scores = {m: _scores(np.concatenate(e) if e else np.zeros(0), truth, seconds[m]) for m, e in estimates.items()}
    ref = scores[REFERENCE]["mean_abs_error_px"]
    for method in methods:
        s = scores[method]
        s["meets_bar"] = bool(s["coverage"] >= MIN_COVERAGE and s["mean_abs_error_px"] <= ref)
    return scores


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path,
                        default=shared_data_root(),
                        help=f"the shared/data folder (default: ${SHARED_DATA_ENV}, else ../shared/data from the "
                        "working directory, the repository root under make)")
    parser.add_argument("--out", type=Path, default=Path("out/eval/stereo.json"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--boxes-per-pair", type=int, default=30, help="random boxes per chessboard pair")
    parser.add_argument("--motorcycle-boxes", type=int, default=300, help="random boxes on the Middlebury pair")
    parser.add_argument("--guess-std-px", type=float, default=1.0,
                        help="std of each view's box-centre error, pixels (the guess's disparity error is √2 x)")
    parser.add_argument("--search-px", type=float, default=None, help="default: the triangulator's")
    args = parser.parse_args(argv)
    if args.boxes_per_pair < 1 or args.motorcycle_boxes < 1:
        parser.error("--boxes-per-pair and --motorcycle-boxes must be >= 1")
    if not (np.isfinite(args.guess_std_px) and args.guess_std_px >= 0):
        parser.error(f"--guess-std-px must be finite and >= 0, got {args.guess_std_px}")
    config = TriangulatorConfig().disparity_config()
    if args.search_px is not None:
        config = dataclasses.replace(config, search_px=args.search_px)
    rng = np.random.default_rng(args.seed)
    try:
        datasets = {"chessboard": chessboard_cases(args.data / "stereo_calibration", rng, args.boxes_per_pair),
                    "middlebury_motorcycle": [motorcycle_case(rng, args.motorcycle_boxes)]}
    except (OSError, ValueError) as exc:
        print(f"eval_stereo: {exc}", file=sys.stderr)
        return 2
    report = {"seed": args.seed, "guess_std_px": args.guess_std_px, "reference": REFERENCE,
              "config": dataclasses.asdict(config), "datasets": {}}
    for name, cases in datasets.items():
        scores = evaluate(cases, config, rng, args.guess_std_px)
        residuals = [c.truth_residual_px for c in cases if np.isfinite(c.truth_residual_px)]
        report["datasets"][name] = {"pairs": len(cases), "methods": scores,
                                    "truth_fit_rms_px": float(np.mean(residuals)) if residuals else None}
        for method, s in scores.items():
            print(f"{name:22s} {method:17s} coverage {s['coverage']:.3f}  mean |err| {s['mean_abs_error_px']:.3f} px  "
                  f"median {s['median_abs_error_px']:.3f}  p90 {s['p90_abs_error_px']:.3f}  "
                  f"{s['ms_per_box']:.2f} ms/box" + (f"  bar {'met' if s['meets_bar'] else 'MISSED'}"
                                                      if "meets_bar" in s else ""))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
