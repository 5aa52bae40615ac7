"""``mot_track``: run the world model offline on MOTChallenge detections, without ROS.

Input: MOTChallenge text, one detection per line, ``frame,id,x,y,w,h,conf[,...]`` (1-based
frames, ``x, y`` the top-left corner, pixels; the id and any columns after ``conf`` are ignored).
Output: the same format, one line per published track and frame:
``frame,track_id,x,y,w,h,score,-1,-1,-1``: VISIBLE tracks, and OCCLUDED ghosts with
``--include-ghosts``. Every frame from 1 to the last one in the file is stepped, also frames
without detections (stamp = frame / fps), so ghosts move on through them.

Every ``WorldModelConfig`` field can be overridden (``--min-hits 2``, ``--max-ghost-age-s 1``...).
Exit codes: 0 done, 2 bad arguments or malformed input (the message names the line), 1 when the
output cannot be written.
"""
from __future__ import annotations

import argparse
import math
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
from tqdm import tqdm

from object_permanence.core.types import Detection, TrackState
from object_permanence.core.world_model import WorldModel, WorldModelConfig

MIN_FIELDS = 7


class MotFormatError(ValueError):
    """A line of a MOTChallenge file that cannot be read (the message has path and line number)."""


@dataclass
class MotTrackRow:
    """One output line: a track's box in one frame (``x, y`` top-left, pixels)."""

    frame: int
    track_id: int
    x: float
    y: float
    w: float
    h: float
    score: float


def read_mot_detections(path: Path, min_score: float = -math.inf) -> dict[int, list[Detection]]:
    """Read MOTChallenge detections, grouped by frame, as ``Detection`` (``cx, cy, w, h`` boxes).

    Detections with ``conf < min_score`` are skipped; empty lines are ignored. Boxes with
    ``w, h <= 0`` are kept (the world model rejects and counts them).

    Raises:
        MotFormatError: on a line with fewer than 7 fields, a field that is not a finite number,
            or a frame that is not an integer >= 1.
        OSError: if the file cannot be read.
    """
    by_frame: dict[int, list[Detection]] = defaultdict(list)
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            text = line.strip()
            if not text:
                continue
            parts = text.split(",")
            if len(parts) < MIN_FIELDS:
                raise MotFormatError(f"{path}:{lineno}: expected at least {MIN_FIELDS} comma-separated "
                                     f"fields (frame,id,x,y,w,h,conf,...), got {len(parts)}: {text!r}")
            try:
                values = [float(p) for p in parts[:MIN_FIELDS]]
            except ValueError:
                raise MotFormatError(f"{path}:{lineno}: non-numeric field in {text!r}") from None
            if not all(math.isfinite(v) for v in values):
                raise MotFormatError(f"{path}:{lineno}: non-finite number in {text!r}")
            frame, _, x, y, w, h, conf = values
            if not (frame.is_integer() and frame >= 1):
                raise MotFormatError(f"{path}:{lineno}: frame must be an integer >= 1, got {parts[0]!r}")
            if conf < min_score:
                continue
            by_frame[int(frame)].append(Detection(box=np.array([x + w / 2, y + h / 2, w, h]),
                                                  score=conf, class_id=0))
    return dict(by_frame)


def track_mot(detections: dict[int, list[Detection]], fps: float, config: WorldModelConfig,
              include_ghosts: bool = False, progress: bool = False) -> tuple[list[MotTrackRow], int]:
    """Run a fresh ``WorldModel`` over frames 1..last; returns the output rows and the number
    of detections the world model rejected."""
    model = WorldModel(config)
    states = {TrackState.VISIBLE, TrackState.OCCLUDED} if include_ghosts else {TrackState.VISIBLE}
    last = max(detections, default=0)
    rows: list[MotTrackRow] = []
    rejected = 0
    for frame in tqdm(range(1, last + 1), disable=not progress, desc="mot_track", unit="frame"):
        result = model.step(frame / fps, detections.get(frame, []))
        rejected += result.rejected
        for t in result.tracks:
            if t.state in states:
                cx, cy, w, h = t.box
                rows.append(MotTrackRow(frame, t.track_id, cx - w / 2, cy - h / 2, w, h, t.score))
    return rows, rejected


def write_mot_tracks(path: Path, rows: Iterable[MotTrackRow]) -> None:
    """Write rows as MOTChallenge text (``frame,id,x,y,w,h,score,-1,-1,-1``)."""
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(f"{r.frame},{r.track_id},{r.x:.2f},{r.y:.2f},{r.w:.2f},{r.h:.2f},"
                    f"{r.score:.4f},-1,-1,-1\n")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mot_track", description="Track MOTChallenge detections with the object_permanence "
        "world model (Kalman + Hungarian + ghosts) and write MOTChallenge tracks.")
    parser.add_argument("detections", type=Path, help="MOTChallenge detections (frame,id,x,y,w,h,conf,...)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="tracks file to write")
    parser.add_argument("--fps", type=float, default=10.0,
                        help="frame rate; stamp = frame / fps (default 10)")
    parser.add_argument("--min-score", type=float, default=0.0,
                        help="skip detections with conf below this (default 0)")
    parser.add_argument("--include-ghosts", action="store_true",
                        help="also write OCCLUDED tracks (their predicted boxes)")
    group = parser.add_argument_group("world model", "overrides of WorldModelConfig fields")
    defaults = WorldModelConfig()
    for f in fields(WorldModelConfig):
        default = getattr(defaults, f.name)
        flag = "--" + f.name.replace("_", "-")
        if isinstance(default, bool):
            group.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None,
                               help=f"(default {default})")
        else:
            group.add_argument(flag, dest=f.name, type=type(default), default=None, metavar="N",
                               help=f"(default {default})")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the process exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not (math.isfinite(args.fps) and args.fps > 0):
        parser.error(f"--fps must be a positive number, got {args.fps!r}")
    overrides = {f.name: getattr(args, f.name) for f in fields(WorldModelConfig)
                 if getattr(args, f.name) is not None}
    try:
        config = WorldModelConfig(**overrides)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        detections = read_mot_detections(args.detections, args.min_score)
    except (MotFormatError, OSError, UnicodeDecodeError) as exc:
        print(f"mot_track: error: {exc}", file=sys.stderr)
        return 2
    rows, rejected = track_mot(detections, args.fps, config, args.include_ghosts,
                               progress=sys.stderr.isatty())
    try:
        write_mot_tracks(args.output, rows)
    except OSError as exc:
        print(f"mot_track: error: cannot write {args.output}: {exc}", file=sys.stderr)
        return 1
    n_tracks = len({r.track_id for r in rows})
    print(f"mot_track: {max(detections, default=0)} frames, {n_tracks} tracks, {len(rows)} boxes "
          f"written to {args.output}; {rejected} invalid detections rejected", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
