"""MOTChallenge text files: reading and writing detections and tracks, and ``seqinfo.ini``.

One line per box, comma-separated: ``frame,id,x,y,w,h,conf,a,b,c`` with 1-based integer frames
and ``x, y`` the top-left corner in pixels. The meaning of the last three columns depends on the
file: MOT15 ground truth and tracker output hold world coordinates (``-1`` when unknown); MOT16+
ground truth holds class and visibility. Detection files written here put the detector's class id
in column 8 (``frame,-1,x,y,w,h,conf,class,-1,-1``) so a tracker that gates on classes can read
it back; readers that do not ask for it ignore every column after ``conf``.

Inside the core, boxes are ``cx, cy, w, h`` (see ``core/types.py``); the conversion happens here.
"""
from __future__ import annotations

import configparser
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from object_permanence.core.types import Detection

#: Fields every line must have: ``frame, id, x, y, w, h, conf``.
MIN_FIELDS = 7
#: Column (0-based) of the class id in the detection files this module writes.
CLASS_COLUMN = 7


class MotFormatError(ValueError):
    """A line of a MOTChallenge file that cannot be read (the message has path and line number)."""


@dataclass
class MotTrackRow:
    """One track output line: a track's box in one frame (``x, y`` top-left, pixels)."""

    frame: int
    track_id: int
    x: float
    y: float
    w: float
    h: float
    score: float


@dataclass(frozen=True)
class SeqInfo:
    """The fields of a MOTChallenge ``seqinfo.ini`` that tracking needs.

    width, height: image size in pixels; fps: frame rate (Hz); length: number of frames, or
    None when the file does not say.
    """

    width: int
    height: int
    fps: float
    length: int | None = None


def read_mot_array(path: Path, n_columns: int = MIN_FIELDS) -> np.ndarray:
    """Read the first ``n_columns`` (>= 7) fields of every non-empty line as an (N, n_columns)
    float64 array; lines may carry more fields (ignored) but not fewer than 7. Missing columns
    between 7 and ``n_columns`` read as -1 (the MOTChallenge "unknown").

    Raises:
        ValueError: ``n_columns`` < 7.
        MotFormatError: a line with fewer than 7 fields, a field that is not a finite number, or
            a frame that is not an integer >= 1 (the message names the file and line).
        OSError: the file cannot be read.
    """
    if n_columns < MIN_FIELDS:
        raise ValueError(f"n_columns must be >= {MIN_FIELDS}, got {n_columns!r}")
    rows: list[list[float]] = []
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
                values = [float(p) for p in parts[:n_columns]]
            except ValueError:
                raise MotFormatError(f"{path}:{lineno}: non-numeric field in {text!r}") from None
            if not all(math.isfinite(v) for v in values):
                raise MotFormatError(f"{path}:{lineno}: non-finite number in {text!r}")
            if not (values[0].is_integer() and values[0] >= 1):
                raise MotFormatError(f"{path}:{lineno}: frame must be an integer >= 1, got {parts[0]!r}")
            rows.append(values + [-1.0] * (n_columns - len(values)))
    return np.array(rows, dtype=np.float64).reshape(-1, n_columns)


def xywh_to_cxcywh(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) top-left ``x, y, w, h`` -> centre ``cx, cy, w, h`` (pixels)."""
    out = np.array(boxes, dtype=np.float64).reshape(-1, 4)
    out[:, :2] += out[:, 2:] / 2.0  # c = corner + size / 2
    return out


def cxcywh_to_xywh(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) centre ``cx, cy, w, h`` -> top-left ``x, y, w, h`` (pixels)."""
    out = np.array(boxes, dtype=np.float64).reshape(-1, 4)
    out[:, :2] -= out[:, 2:] / 2.0  # corner = c - size / 2
    return out


def read_mot_detections(path: Path, min_score: float = -math.inf,
                        with_class: bool = False) -> dict[int, list[Detection]]:
    """Read MOTChallenge detections, grouped by frame in file order, as ``Detection`` objects
    (``cx, cy, w, h`` boxes, no embedding).

    Detections with ``conf < min_score`` are skipped. ``with_class``: take ``class_id`` from
    column 8 (as :func:`write_mot_detections` writes it; a negative value reads as 0); otherwise
    every detection has class 0. Boxes with ``w, h <= 0`` are kept (a tracker decides).

    Raises:
        MotFormatError, OSError: as :func:`read_mot_array`.
    """
    rows = read_mot_array(path, CLASS_COLUMN + 1 if with_class else MIN_FIELDS)
    rows = rows[rows[:, 6] >= min_score]
    boxes = xywh_to_cxcywh(rows[:, 2:6])
    classes = np.maximum(rows[:, CLASS_COLUMN], 0).astype(np.int64) if with_class \
        else np.zeros(len(rows), dtype=np.int64)
    by_frame: dict[int, list[Detection]] = defaultdict(list)
    for frame, box, score, cls in zip(rows[:, 0].astype(np.int64), boxes, rows[:, 6], classes):
        by_frame[int(frame)].append(Detection(box=box, score=float(score), class_id=int(cls)))
    return dict(by_frame)


def write_mot_detections(path: Path, detections: Mapping[int, Sequence[Detection]]) -> None:
    """Write detections per 1-based frame as ``frame,-1,x,y,w,h,conf,class,-1,-1`` lines, frames
    ascending and each frame's detections in list order (boxes to 0.01 px, scores to 1e-4).

    Raises:
        ValueError: a frame number below 1.
        OSError: the file cannot be written.
    """
    with open(path, "w", encoding="utf-8") as f:
        for frame in sorted(detections):
            if frame < 1:
                raise ValueError(f"frame numbers must be >= 1, got {frame!r}")
            dets = detections[frame]
            if not dets:
                continue
            xywh = cxcywh_to_xywh(np.stack([d.box for d in dets]))
            f.writelines(f"{frame},-1,{x:.2f},{y:.2f},{w:.2f},{h:.2f},{d.score:.4f},{d.class_id},-1,-1\n"
                         for (x, y, w, h), d in zip(xywh, dets))


def write_mot_tracks(path: Path, rows: Iterable[MotTrackRow], exact: bool = False) -> None:
    """Write rows as MOTChallenge tracker output (``frame,id,x,y,w,h,score,-1,-1,-1``), boxes to
    0.01 px and scores to 1e-4, or with ``exact`` every number as the shortest text that reads
    back as the same double (so a re-scorer gets exactly what was scored).

    Raises:
        OSError: the file cannot be written.
    """
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            if exact:
                x, y, w, h, score = (repr(float(v)) for v in (r.x, r.y, r.w, r.h, r.score))
                f.write(f"{r.frame},{r.track_id},{x},{y},{w},{h},{score},-1,-1,-1\n")
            else:
                f.write(f"{r.frame},{r.track_id},{r.x:.2f},{r.y:.2f},{r.w:.2f},{r.h:.2f},"
                        f"{r.score:.4f},-1,-1,-1\n")


def read_seqinfo(path: Path) -> SeqInfo:
    """Read a MOTChallenge ``seqinfo.ini`` (section ``[Sequence]``: ``imWidth``, ``imHeight``,
    ``frameRate``, optional ``seqLength``).

    Raises:
        ValueError: the section or a required key is missing, or a value is not a positive number
            (the message names the file and key).
        OSError: the file cannot be read.
    """
    parser = configparser.ConfigParser()
    parser.optionxform = str  # keys are camelCase
    with open(path, encoding="utf-8") as f:
        try:
            parser.read_file(f)
        except configparser.Error as exc:
            raise ValueError(f"{path}: not an ini file: {exc}") from None
    if not parser.has_section("Sequence"):
        raise ValueError(f"{path}: no [Sequence] section")
    section = parser["Sequence"]

    def number(key: str, kind: type, required: bool = True) -> float | int | None:
        if key not in section:
            if required:
                raise ValueError(f"{path}: [Sequence] has no {key}")
            return None
        try:
            value = kind(section[key])
        except ValueError:
            raise ValueError(f"{path}: {key} must be a positive {kind.__name__}, got {section[key]!r}") from None
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{path}: {key} must be a positive {kind.__name__}, got {section[key]!r}")
        return value

    return SeqInfo(width=number("imWidth", int), height=number("imHeight", int),
                   fps=number("frameRate", float), length=number("seqLength", int, required=False))


def write_seqinfo(path: Path, name: str, frame_rate: float, length: int, width: int, height: int,
                  im_ext: str = ".jpg") -> None:
    """Write a MOTChallenge ``seqinfo.ini`` (section ``[Sequence]``: ``name``, ``imDir=img1``,
    ``frameRate`` (Hz, ``%g``), ``seqLength`` (frames), ``imWidth``, ``imHeight`` (pixels),
    ``imExt``), as :func:`read_seqinfo` and TrackEval read it.

    Raises:
        OSError: the file cannot be written.
    """
    Path(path).write_text("[Sequence]\n"
                          f"name={name}\nimDir=img1\nframeRate={frame_rate:g}\nseqLength={length}\n"
                          f"imWidth={width}\nimHeight={height}\nimExt={im_ext}\n", encoding="utf-8")
