"""Raw outputs for anyone to re-score, and TrackEval re-scoring them.

:func:`export_raw_outputs` writes, under ``out``:

* ``mot/`` — a TrackEval ``MotChallenge2DBox`` tree (``SKIP_SPLIT_FOL``, benchmark
  :data:`BENCHMARK`, split :data:`SPLIT`), one sequence per camera named ``<sequence>-<camera>``:

  - ``mot/gt/<seq>/gt/gt.txt``: ``frame,id,x,y,w,h,1,class,visibility`` per ``OBJECT`` entry; class
    1 (pedestrian, scored) at ``visibility >= min_visibility``, class 8 (distractor) below it, so
    TrackEval's own preprocessing removes tracker boxes on hidden objects exactly as
    :mod:`core.eval.mot` does. Nuisances are not written (a track on one is a false positive).
  - ``mot/gt/<seq>/seqinfo.ini`` (name, frameRate, seqLength, imWidth, imHeight, imExt) and the
    seqmap ``mot/gt/seqmaps/<BENCHMARK>-<SPLIT>.txt`` listing every sequence under ``mot/gt``.
  - ``mot/trackers/object_permanence/data/<seq>.txt``: VISIBLE tracks,
    ``frame,id,x,y,w,h,score,-1,-1,-1``.
  - ``mot/ghosts/<seq>.txt``: the ghosts (OCCLUDED tracks) in the same format, kept apart so that
    a re-scorer does not count predictions as detections.
  - Track ids in those two files are compact (1, 2, ... in order of first appearance, one mapping
    per sequence shared by both files): the pipeline's ids are 64-bit, clock-seeded, and TrackEval
    sizes an array by the largest id. ``mot/id_map/<seq>.csv`` (``mot_id,track_id``) maps back.

  Boxes are ``x_left, y_top, w, h`` pixels written with 17 significant digits (exact doubles);
  frames are 1-based and consecutive (record position + 1).
* ``tracks3d.csv`` and ``tracks3d_unfiltered.csv``: ``stamp,id,x,y,z,state`` (seconds, metres in
  the left optical frame, state name); ``truth3d.csv``: ``stamp,id,x,y,z,visibility_left,
  visibility_right`` for each real object with a finite position (visibility 0 where unlisted).

:func:`rescore_trackeval` runs TrackEval's ``Evaluator`` on ``mot/`` — its own file loader,
preprocessing and metrics — and returns IDF1, HOTA and MOTA per sequence; they equal
:func:`mot.mot_metrics` on the same records (a test checks it).
TrackEval 1.3.0 loads these files under NumPy 2 as they are: no patching, no options beyond
switching its printing, plotting, output files and parallelism off.
"""
from __future__ import annotations

import contextlib
import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path


import numpy as np

from object_permanence.core.eval.matching import CAMERAS
from object_permanence.core.eval.mot import MOT_IOU, MotRows, mot_rows, track_rows
from object_permanence.core.eval.mot_io import write_seqinfo
from object_permanence.core.eval.points3d import object_positions
from object_permanence.core.eval.records import FrameRecord, check_records, check_unit, gt_of, tracks_of
from object_permanence.core.types import Track3D, TrackState

#: Benchmark and split names of the exported tree (any name but 'MOT15' keeps preprocessing on).
BENCHMARK = "OP"
SPLIT = "all"
#: Tracker folder name under ``mot/trackers``.
TRACKER_NAME = "object_permanence"
_SEQ_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass
class ExportedFiles:
    """Paths written by :func:`export_raw_outputs`."""

    mot_dir: Path
    sequences: list[str]
    tracks3d: Path
    tracks3d_unfiltered: Path
    truth3d: Path


def _write_rows(path: Path, frames: Sequence[MotRows], gt: bool) -> None:
    """MOTChallenge rows of every frame (frame = position + 1) to ``path``."""
    blocks = [np.column_stack([np.full(len(r.ids), t + 1), r.ids, r.xywh,
                               np.ones(len(r.ids)) if gt else r.conf, r.classes, r.visibility])
              for t, r in enumerate(frames)]
    table = np.concatenate(blocks) if blocks else np.zeros((0, 9))
    path.parent.mkdir(parents=True, exist_ok=True)
    g = "%.17g"
    fmt = ",".join(["%d", "%d", g, g, g, g] + (["%d", "%d", g] if gt else [g, "-1", "-1", "-1"]))
    cols = table if gt else table[:, :7]
    np.savetxt(path, cols, fmt=fmt, delimiter=",")


def _compact_ids(visible: list[MotRows], ghosts: list[MotRows], id_map: Path) -> tuple[list[MotRows], list[MotRows]]:
    """Both row sets with track ids renumbered 1..N in order of first appearance (visible rows
    first in each frame); the mapping is written to ``id_map`` as ``mot_id,track_id``."""
    order = np.concatenate([r.ids for pair in zip(visible, ghosts) for r in pair] or [np.zeros(0, np.int64)])
    unique, first = np.unique(order, return_index=True)
    originals = unique[np.argsort(first)]
    lookup = {int(t): k + 1 for k, t in enumerate(originals)}
    id_map.parent.mkdir(parents=True, exist_ok=True)
    id_map.write_text("mot_id,track_id\n" + "".join(f"{k + 1},{int(t)}\n" for k, t in enumerate(originals)),
                      encoding="utf-8")

    def renumber(rows: list[MotRows]) -> list[MotRows]:
        return [replace(r, ids=np.array([lookup[int(i)] for i in r.ids], dtype=np.int64)) for r in rows]

    return renumber(visible), renumber(ghosts)


def write_seqmap(folder: Path) -> Path:
    """List every sequence of ``folder`` (sub-folders with ``gt/gt.txt``) in the TrackEval seqmap
    ``folder/seqmaps/<BENCHMARK>-<SPLIT>.txt`` and return its path.

    Raises:
        OSError: the folder cannot be listed or the file written.
    """
    names = sorted(p.name for p in folder.iterdir() if (p / "gt" / "gt.txt").is_file())
    path = folder / "seqmaps" / f"{BENCHMARK}-{SPLIT}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("name\n" + "".join(f"{n}\n" for n in names), encoding="utf-8")
    return path


def _write_points(path: Path, records: Sequence[FrameRecord], unfiltered: bool) -> None:
    with path.open("w", newline="") as fp:
        w = csv.writer(fp)
        w.writerow(["stamp", "id", "x", "y", "z", "state"])
        for rec in records:
            points: list[Track3D] = rec.tracks3d_unfiltered if unfiltered else rec.tracks3d
            for p in points:
                x, y, z = (repr(float(v)) for v in np.asarray(p.position, dtype=np.float64))
                w.writerow([repr(float(rec.stamp)), p.track_id, x, y, z, TrackState(p.state).name])


def _write_truth3d(path: Path, records: Sequence[FrameRecord]) -> None:
    with path.open("w", newline="") as fp:
        w = csv.writer(fp)
        w.writerow(["stamp", "id", "x", "y", "z", "visibility_left", "visibility_right"])
        for rec in records:
            vis = {cam: {g.object_id: g.visibility for g in gt_of(rec, cam)} for cam in CAMERAS}
            for oid, pos in sorted(object_positions(rec).items()):
                w.writerow([repr(float(rec.stamp)), oid, *(repr(float(v)) for v in pos),
                            repr(float(vis["left"].get(oid, 0.0))), repr(float(vis["right"].get(oid, 0.0)))])


def export_raw_outputs(
    records: Sequence[FrameRecord],
    out: Path,
    sequence: str = "sim",
    image_size: tuple[int, int] = (640, 480),
    frame_rate: float = 30.0,
    min_visibility: float = 0.25,
) -> ExportedFiles:
    """Write the raw files described in the module docstring for both cameras.

    sequence: name prefix of the MOT sequences (letters, digits, ``_``, ``.``, ``-``); writing another
    sequence into the same ``out`` adds it to the seqmap. image_size: ``(width, height)`` pixels.

    Raises:
        ValueError: bad ``sequence``, ``image_size``, ``frame_rate`` or ``min_visibility``, records
        not consecutive.
    """
    if not _SEQ_NAME.match(sequence):
        raise ValueError(f"sequence must match {_SEQ_NAME.pattern}; got {sequence!r}")
    if len(image_size) != 2 or min(image_size) < 1:
        raise ValueError(f"image_size must be (width, height) >= 1; got {image_size}")
    if not frame_rate > 0.0:
        raise ValueError(f"frame_rate must be > 0; got {frame_rate}")
    check_unit("min_visibility", min_visibility)
    check_records(records)
    out = Path(out)
    mot_dir = out / "mot"
    names = []
    for camera in CAMERAS:
        name = f"{sequence}-{camera}"
        names.append(name)
        rows = mot_rows(records, camera, min_visibility)
        seq_dir = mot_dir / "gt" / name
        _write_rows(seq_dir / "gt" / "gt.txt", [g for g, _ in rows], gt=True)
        write_seqinfo(seq_dir / "seqinfo.ini", name, frame_rate, len(records), *image_size)
        visible, ghosts = _compact_ids([h for _, h in rows],
                                       [track_rows(tracks_of(r, camera), TrackState.OCCLUDED) for r in records],
                                       mot_dir / "id_map" / f"{name}.csv")
        _write_rows(mot_dir / "trackers" / TRACKER_NAME / "data" / f"{name}.txt", visible, gt=False)
        _write_rows(mot_dir / "ghosts" / f"{name}.txt", ghosts, gt=False)
    write_seqmap(mot_dir / "gt")
    files = ExportedFiles(mot_dir, names, out / "tracks3d.csv", out / "tracks3d_unfiltered.csv", out / "truth3d.csv")
    _write_points(files.tracks3d, records, unfiltered=False)
    _write_points(files.tracks3d_unfiltered, records, unfiltered=True)
    _write_truth3d(files.truth3d, records)
    return files


def rescore_trackeval(mot_dir: Path) -> dict[str, dict[str, float]]:
    """Score every sequence of an exported ``mot/`` tree with TrackEval's own pipeline.

    Runs ``trackeval.Evaluator`` (serial, nothing printed, plotted or written) on
    ``trackeval.datasets.MotChallenge2DBox`` (benchmark :data:`BENCHMARK`, so its distractor
    preprocessing runs) with ``HOTA``, ``CLEAR`` and ``Identity`` at IoU 0.5. Returns
    ``{sequence: {"idf1", "hota", "mota", "num_switches"}}``, HOTA averaged over its 19 alphas.

    Raises:
        ValueError: ``mot_dir`` lacks the exported layout, or TrackEval rejects the files (its
        message is included).
    """
    import trackeval  # imported here: only re-scoring needs the dataset and evaluator machinery

    mot_dir = Path(mot_dir)
    if not (mot_dir / "gt" / "seqmaps" / f"{BENCHMARK}-{SPLIT}.txt").is_file():
        raise ValueError(f"mot_dir {mot_dir} has no seqmap gt/seqmaps/{BENCHMARK}-{SPLIT}.txt; "
                         "write it with export_raw_outputs")
    eval_config = dict(USE_PARALLEL=False, BREAK_ON_ERROR=True, RETURN_ON_ERROR=False, LOG_ON_ERROR=None,
                       PRINT_RESULTS=False, PRINT_ONLY_COMBINED=False, PRINT_CONFIG=False,
                       TIME_PROGRESS=False, DISPLAY_LESS_PROGRESS=True, OUTPUT_SUMMARY=False,
                       OUTPUT_EMPTY_CLASSES=False, OUTPUT_DETAILED=False, PLOT_CURVES=False)
    dataset_config = dict(GT_FOLDER=str(mot_dir / "gt"), TRACKERS_FOLDER=str(mot_dir / "trackers"),
                          OUTPUT_FOLDER=None, TRACKERS_TO_EVAL=[TRACKER_NAME], CLASSES_TO_EVAL=["pedestrian"],
                          BENCHMARK=BENCHMARK, SPLIT_TO_EVAL=SPLIT, INPUT_AS_ZIP=False, PRINT_CONFIG=False,
                          DO_PREPROC=True, TRACKER_SUB_FOLDER="data", SKIP_SPLIT_FOL=True)
    metric_config = {"THRESHOLD": MOT_IOU, "PRINT_CONFIG": False}
    log = io.StringIO()
    try:
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            evaluator = trackeval.Evaluator(eval_config)
            dataset = trackeval.datasets.MotChallenge2DBox(dataset_config)
            metrics = [trackeval.metrics.HOTA(), trackeval.metrics.CLEAR(metric_config),
                       trackeval.metrics.Identity(metric_config)]
            results, _ = evaluator.evaluate([dataset], metrics)
    except trackeval.utils.TrackEvalException as err:
        raise ValueError(f"TrackEval rejected {mot_dir}: {err}") from err
    per_seq = results[dataset.get_name()][TRACKER_NAME]
    return {
        seq: {
            "idf1": float(res["pedestrian"]["Identity"]["IDF1"]),
            "hota": float(np.mean(res["pedestrian"]["HOTA"]["HOTA"])),
            "mota": float(res["pedestrian"]["CLEAR"]["MOTA"]),
            "num_switches": float(res["pedestrian"]["CLEAR"]["IDSW"]),
        }
        for seq, res in per_seq.items() if seq != "COMBINED_SEQ"
    }
