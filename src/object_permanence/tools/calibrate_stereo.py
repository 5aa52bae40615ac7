"""Calibrate and rectify a stereo pair from chessboard images; write the stereo YAML that
``stereo_capture`` reads (``calibration_file``).

    python -m object_permanence.tools.calibrate_stereo --left 'calib/left*.jpg' \\
        --right 'calib/right*.jpg' --pattern 9x6 --square 0.025 -o stereo.yaml
"""
from __future__ import annotations

import argparse
import glob
import re
import sys
from pathlib import Path

import cv2

from object_permanence.core.calibration import calibrate_stereo_from_chessboards, save_stereo_calibration


def _pattern(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+)x(\d+)", text)
    if not m:
        raise argparse.ArgumentTypeError(f"pattern must look like 9x6 (inner corners), got {text!r}")
    return int(m.group(1)), int(m.group(2))


def _images(pattern: str) -> list:
    paths = sorted(glob.glob(pattern))
    if not paths:
        raise FileNotFoundError(f"no image matches {pattern!r}")
    images = []
    for path in paths:
        image = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
        if image is None:
            raise ValueError(f"cannot read image {path}")
        images.append(image)
    return images


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--left", required=True, help="glob of left images (sorted order pairs them)")
    parser.add_argument("--right", required=True, help="glob of right images")
    parser.add_argument("--pattern", type=_pattern, default=(9, 6), help="inner corners, COLSxROWS (default 9x6)")
    parser.add_argument("--square", type=float, default=0.025, help="square edge in metres (default 0.025)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="stereo YAML to write")
    args = parser.parse_args(argv)
    try:
        left, right = _images(args.left), _images(args.right)
        if len(left) != len(right):
            raise ValueError(f"{len(left)} left but {len(right)} right images")
        calibration, rms = calibrate_stereo_from_chessboards(left, right, args.pattern, args.square)
    except (OSError, ValueError) as exc:
        print(f"calibrate_stereo: {exc}", file=sys.stderr)
        return 2
    save_stereo_calibration(calibration, args.output)
    print(f"stereo RMS {rms:.3f} px, fx {calibration.left.fx:.1f} px, baseline {calibration.baseline:.4f} m "
          f"-> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
