"""``mot_track``: run the world model offline on MOTChallenge detections, without ROS.

Input: MOTChallenge text, one detection per line, ``frame,id,x,y,w,h,conf[,...]`` (1-based
frames, ``x, y`` the top-left corner, pixels; the id and any columns after ``conf`` are ignored).
Output: the same format, one line per published track and frame:
``frame,track_id,x,y,w,h,score,-1,-1,-1``: VISIBLE tracks, and OCCLUDED ghosts with
``--include-ghosts``. Every frame from 1 to the last one in the file is stepped, also frames
without detections (stamp = frame / fps), so ghosts move on through them.

Image size and frame rate: ``--image-size WxH`` and ``--fps``, or else a MOTChallenge
``seqinfo.ini`` beside the detections file or one folder up (``<seq>/det/det.txt`` ->
``<seq>/seqinfo.ini``; ``--seqinfo`` names another). With an image size a ghost whose predicted
centre leaves the image ends (LOST) at once instead of haunting outside the view; without one
ghosts end only by age. The frame rate defaults to 10 Hz when neither gives it.

The world model starts from the ``world_model`` block of ``<config-dir>/world_model.yaml`` — by
default ``./config`` when it holds one, else the installed package's ``config/``: the shipped node's
configuration, so offline results are the node's — and every ``WorldModelConfig`` field can be
overridden on top (``--min-hits 2``, ``--max-ghost-age-s 1``...).
Exit codes: 0 done, 2 bad arguments or malformed input (the message names the line), 1 when the
output cannot be written.
"""
from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path

from tqdm import tqdm

from object_permanence.core.eval.mot_io import (
    MotFormatError,
    MotTrackRow,
    SeqInfo,
    read_mot_detections,
    read_seqinfo,
    write_mot_tracks,
)
from object_permanence.core.parameters import build_config, node_parameters
from object_permanence.core.types import Detection, TrackState
from object_permanence.core.world_model import WorldModel, WorldModelConfig

__all__ = ["MotFormatError", "MotTrackRow", "find_seqinfo", "main", "parse_image_size",
           "read_mot_detections", "track_mot", "write_mot_tracks"]

DEFAULT_FPS = 10.0


def parse_image_size(text: str) -> tuple[int, int]:
    """``"640x480"`` -> ``(640, 480)`` (width, height in pixels).

    Raises:
        ValueError: not two positive integers joined by ``x``.
    """
    parts = text.lower().split("x")
    try:
        width, height = (int(p) for p in parts)
    except ValueError:
        raise ValueError(f"image size must be WIDTHxHEIGHT in pixels (e.g. 640x480), got {text!r}") from None
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {text!r}")
    return width, height


def find_seqinfo(detections_path: Path) -> Path | None:
    """The ``seqinfo.ini`` beside ``detections_path`` or in its parent folder, if there is one."""
    for folder in (detections_path.parent, detections_path.parent.parent):
        candidate = folder / "seqinfo.ini"
        if candidate.is_file():
            return candidate
    return None


def track_mot(detections: dict[int, list[Detection]], fps: float, config: WorldModelConfig,
              include_ghosts: bool = False, progress: bool = False,
              image_size: tuple[int, int] | None = None) -> tuple[list[MotTrackRow], int]:
    """Run a fresh ``WorldModel`` over frames 1..last (stamp = frame / fps seconds); returns the
    output rows and the number of detections the world model rejected. ``image_size``
    ``(width, height)`` px: ghosts whose predicted centre leaves the image end there."""
    model = WorldModel(config)
    states = {TrackState.VISIBLE, TrackState.OCCLUDED} if include_ghosts else {TrackState.VISIBLE}
    last = max(detections, default=0)
    rows: list[MotTrackRow] = []
    rejected = 0
    for frame in tqdm(range(1, last + 1), disable=not progress, desc="mot_track", unit="frame"):
        result = model.step(frame / fps, detections.get(frame, []), image_size)
        rejected += result.rejected
        for t in result.tracks:
            if t.state in states:
                cx, cy, w, h = t.box
                rows.append(MotTrackRow(frame, t.track_id, cx - w / 2, cy - h / 2, w, h, t.score))
    return rows, rejected


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mot_track", description="Track MOTChallenge detections with the object_permanence "
        "world model (Kalman + Hungarian + ghosts) and write MOTChallenge tracks.")
    parser.add_argument("detections", type=Path, help="MOTChallenge detections (frame,id,x,y,w,h,conf,...)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="tracks file to write")
    parser.add_argument("--fps", type=float, default=None,
                        help=f"frame rate; stamp = frame / fps (default: seqinfo.ini's frameRate, else {DEFAULT_FPS:g})")
    parser.add_argument("--image-size", default=None, metavar="WxH",
                        help="image size in pixels, e.g. 640x480: ghosts end when they leave the image "
                        "(default: seqinfo.ini's imWidth x imHeight, else unknown)")
    parser.add_argument("--seqinfo", type=Path, default=None,
                        help="MOTChallenge seqinfo.ini (default: one beside the detections or a folder up)")
    parser.add_argument("--min-score", type=float, default=0.0,
                        help="skip detections with conf below this (default 0)")
    parser.add_argument("--include-ghosts", action="store_true",
                        help="also write OCCLUDED tracks (their predicted boxes)")
    parser.add_argument("--config-dir", type=Path, default=None,
                        help="folder of the world_model.yaml to start from (default: ./config if it holds one, "
                             "else the installed package's config/)")
    group = parser.add_argument_group("world model", "overrides of WorldModelConfig fields (of the YAML's values)")
    defaults = WorldModelConfig()
    for f in fields(WorldModelConfig):
        default = getattr(defaults, f.name)
        flag = "--" + f.name.replace("_", "-")
        if isinstance(default, bool):
            group.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None)
        else:
            group.add_argument(flag, dest=f.name, type=type(default), default=None, metavar="N")
    return parser


def default_config_dir() -> Path | None:
    """``./config`` when it holds a world_model.yaml, else the installed package's ``config/``
    (None without either)."""
    if Path("config/world_model.yaml").is_file():
        return Path("config")
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

        share = Path(get_package_share_directory("object_permanence")) / "config"
        return share if (share / "world_model.yaml").is_file() else None
    except (ImportError, PackageNotFoundError):
        return None


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the process exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        image_size = None if args.image_size is None else parse_image_size(args.image_size)
    except ValueError as exc:
        parser.error(f"--image-size: {exc}")
    if args.fps is not None and not (math.isfinite(args.fps) and args.fps > 0):
        parser.error(f"--fps must be a positive number, got {args.fps!r}")
    seqinfo_path = args.seqinfo if args.seqinfo is not None else find_seqinfo(args.detections)
    info: SeqInfo | None = None
    if seqinfo_path is not None and (args.fps is None or image_size is None):
        try:
            info = read_seqinfo(seqinfo_path)
        except (ValueError, OSError) as exc:
            print(f"mot_track: error: {exc}", file=sys.stderr)
            return 2
    fps = args.fps if args.fps is not None else (info.fps if info is not None else DEFAULT_FPS)
    if image_size is None and info is not None:
        image_size = (info.width, info.height)
    overrides = {f.name: getattr(args, f.name) for f in fields(WorldModelConfig)
                 if getattr(args, f.name) is not None}
    config_dir = args.config_dir if args.config_dir is not None else default_config_dir()
    try:
        base = node_parameters(config_dir, "world_model") if config_dir is not None else {}
        config = build_config(WorldModelConfig, {**base, **overrides})
    except (ValueError, OSError) as exc:
        parser.error(str(exc))
    if config_dir is None:
        print("mot_track: warning: no config/world_model.yaml found (here or installed): core defaults, not the "
              "shipped node's configuration", file=sys.stderr)
    try:
        detections = read_mot_detections(args.detections, args.min_score)
    except (MotFormatError, OSError, UnicodeDecodeError) as exc:
        print(f"mot_track: error: {exc}", file=sys.stderr)
        return 2
    rows, rejected = track_mot(detections, fps, config, args.include_ghosts,
                               progress=sys.stderr.isatty(), image_size=image_size)
    try:
        write_mot_tracks(args.output, rows)
    except OSError as exc:
        print(f"mot_track: error: cannot write {args.output}: {exc}", file=sys.stderr)
        return 1
    n_tracks = len({r.track_id for r in rows})
    size = "unknown image size" if image_size is None else f"{image_size[0]}x{image_size[1]} px"
    print(f"mot_track: {max(detections, default=0)} frames at {fps:g} Hz, {size}, {n_tracks} tracks, "
          f"{len(rows)} boxes written to {args.output}; {rejected} invalid detections rejected", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
