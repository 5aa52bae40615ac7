"""Calibration of the detector simulator against the trained detector (issue 9, item 4).

The trained detector runs on rendered held-out sequences (both views in one batch); its detections
are attributed to the ground truth by :func:`match_detections` (Hungarian on IoU with the visible
boxes of every entry, nuisances included) and wrapped as a traced detector
(:class:`MatchedDetector`), so that the simulator's own
:func:`~object_permanence.core.detection.sim_detector_stats.detector_statistics` computes the same
figures for both (recall by visibility, miss runs, left/right miss correlation, mean scores);
:func:`box_and_nuisance_figures` adds box jitter by size, nuisance firing rates and score
quantiles. :class:`PooledRuns` pools several runs exactly. Used by :mod:`eval_detector`.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from object_permanence.core.detection.sim_detector_boxes import union
from object_permanence.core.detection.sim_detector_stats import detector_statistics
from object_permanence.core.detection.simulated import Origin, SimulatedDetector, TracedDetection
from object_permanence.core.eval.matching import box_iou
from object_permanence.core.eval.sequences import detector_config
from object_permanence.core.sim.rig import CAMERA_SIDES
from object_permanence.core.sim.scenarios import make_scenario
from object_permanence.core.sim.world import SimWorld
from object_permanence.core.types import Detection, GroundTruthObject, ObjectKind

SIZE_BINS_PX = (0.0, 32.0, 64.0, 128.0, np.inf)  # sqrt(area) of the visible box, source pixels
NUISANCE_KINDS = (ObjectKind.REFLECTION, ObjectKind.GLARE, ObjectKind.FALSE_POSITIVE)


def match_detections(det_boxes: np.ndarray, det_scores: np.ndarray, truth_boxes: np.ndarray,
                     iou_threshold: float = 0.3, merge_iou: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Attribute one image's detections to its ground-truth entries.

    det_boxes: (M, 4) with det_scores (M,); truth_boxes: (N, 4) visible boxes; ``cx, cy, w, h`` px.
    In decreasing score order (COCO's greedy matching: the most confident box is *the* detection,
    so a lower-scoring second box of another class on the same object is a duplicate, not a class
    confusion), each detection claims the free entry it overlaps most, if by at least
    ``iou_threshold`` -> TRUTH; a detection overlapping an already claimed entry by at least
    ``iou_threshold`` -> DUPLICATE of its best entry; a detection (claiming or not) that fits the
    union box of two entries with IoU >= ``merge_iou``, better than it fits any one entry, while no
    other detection holds either of the two -> MERGED (a box around two side-by-side objects
    overlaps each of them by about 0.5); anything else -> HALLUCINATED.

    Returns (origin (M,) Origin values, truth (M, 2) entry indices: [i, -1] for TRUTH and DUPLICATE,
    [i, j] for MERGED, [-1, -1] for HALLUCINATED).
    """
    det_boxes, truth_boxes = np.asarray(det_boxes, float).reshape(-1, 4), np.asarray(truth_boxes, float).reshape(-1, 4)
    det_scores = np.asarray(det_scores, float).reshape(-1)
    if len(det_scores) != len(det_boxes):
        raise ValueError(f"match_detections: det_scores must hold one score per box ({len(det_boxes)}), "
                         f"got {len(det_scores)}")
    m, n = len(det_boxes), len(truth_boxes)
    origin = np.full(m, int(Origin.HALLUCINATED), dtype=np.int64)
    truth = np.full((m, 2), -1, dtype=np.int64)
    if m == 0 or n == 0:
        return origin, truth
    iou = box_iou(det_boxes, truth_boxes)  # (M, N)
    holder = np.full(n, -1, dtype=np.int64)  # the detection holding each entry as TRUTH
    for d in np.argsort(-det_scores, kind="stable"):  # sequential by nature: each claim removes an entry
        free = np.where(holder == -1, iou[d], -1.0)
        g = int(free.argmax())
        if free[g] >= iou_threshold:
            origin[d], truth[d, 0], holder[g] = int(Origin.TRUTH), g, d
    rest = (origin != int(Origin.TRUTH)) & (iou.max(axis=1) >= iou_threshold)
    origin[rest], truth[rest, 0] = int(Origin.DUPLICATE), iou[rest].argmax(axis=1)
    if n >= 2:
        first, second = np.triu_indices(n, k=1)
        pair_iou = box_iou(det_boxes, union(truth_boxes[first], truth_boxes[second]))  # (M, pairs)
        best = pair_iou.argmax(axis=1)
        a, b = first[best], second[best]
        own = np.arange(m)
        free = ((holder[a] == -1) | (holder[a] == own)) & ((holder[b] == -1) | (holder[b] == own))
        merged = ((origin != int(Origin.DUPLICATE)) & free & (pair_iou[own, best] >= merge_iou)
                  & (pair_iou[own, best] > iou.max(axis=1)))
        origin[merged] = int(Origin.MERGED)
        truth[merged] = np.column_stack([a[merged], b[merged]])
    return origin, truth


class MatchedDetector:
    """A traced detector made of precomputed detections: ``detect_traced`` attributes them to the
    ground truth with :func:`match_detections`, so that the simulator's statistics apply unchanged.

    detections: (frame index, camera) -> that image's detections; those scoring under ``threshold``
    are left out (the simulator's reporting threshold).
    """

    def __init__(self, detections: dict[tuple[int, str], list[Detection]], threshold: float = 0.25,
                 iou_threshold: float = 0.3) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"MatchedDetector: threshold must lie in [0, 1], got {threshold!r}")
        self.detections, self.threshold, self.iou_threshold = detections, threshold, iou_threshold

    def detect_traced(self, truth: list[GroundTruthObject], frame_index: int, camera: str,
                      image_shape: tuple[int, int]) -> list[TracedDetection]:
        """The stored detections of that image above the threshold, each with its origin and truth ids."""
        dets = [d for d in self.detections[(int(frame_index), camera)] if d.score >= self.threshold]
        seen = [g for g in truth if g.visibility > 0.0]
        boxes = np.array([d.box for d in dets], dtype=float).reshape(-1, 4)
        origin, index = match_detections(boxes, np.array([d.score for d in dets], float),
                                         np.array([g.visible_box for g in seen], float).reshape(-1, 4),
                                         self.iou_threshold)
        return [TracedDetection(d, Origin(int(o)), tuple(seen[i].object_id for i in idx if i >= 0))
                for d, o, idx in zip(dets, origin, index)]


def box_and_nuisance_figures(world: SimWorld, detector, frames: Iterable[int]) -> dict:
    """Box jitter by size, nuisance firing rates and score quantiles of a traced ``detector`` on ``frames``.

    jitter: over TRUTH detections of objects, per SIZE_BINS_PX bin of the visible box: robust std
    (1.4826 MAD) of the centre error as a fraction of the box size (``dcx / w``, ``dcy / h`` pooled;
    comparable to the simulator's box_noise_frac), robust std of the log size error, median IoU with
    the visible box, count. fire_rate: per nuisance kind, the share of (entry, frame, camera) in view
    that some detection covers; hallucinations_per_image: unattributed boxes per image.
    score_quantiles: 10/50/90 % score quantiles per source.
    """
    shape = (world.rig.height, world.rig.width)
    sizes, centre, log_size, ious = [], [], [], []
    seen = {kind: 0 for kind in NUISANCE_KINDS}
    fired = {kind: 0 for kind in NUISANCE_KINDS}
    scores: dict[str, list[float]] = {"object": [], "reflection": [], "glare": [], "false_positive": [],
                                      "hallucinated": []}
    images = 0
    for k in frames:
        truth = world.ground_truth(k)
        for camera in CAMERA_SIDES:
            entries = {g.object_id: g for g in getattr(truth, camera)}
            images += 1
            covered: set[int] = set()
            for traced in detector.detect_traced(list(entries.values()), k, camera, shape):
                covered.update(traced.truth_ids)
                if traced.origin == Origin.HALLUCINATED:
                    scores["hallucinated"].append(traced.detection.score)
                    continue
                if traced.origin != Origin.TRUTH:
                    continue
                source = entries[traced.truth_ids[0]]
                scores[source.kind.name.lower()].append(traced.detection.score)
                if source.kind == ObjectKind.OBJECT:
                    true, det = np.asarray(source.visible_box, float), np.asarray(traced.detection.box, float)
                    sizes.append(np.sqrt(true[2] * true[3]))
                    centre.append((det[:2] - true[:2]) / true[2:])  # (dcx / w, dcy / h)
                    log_size.append(np.log(det[2:] / true[2:]))  # log(w' / w), log(h' / h)
                    ious.append(float(box_iou(det[None], true[None])[0, 0]))
            for g in entries.values():
                if g.kind in seen and g.visibility > 0.0:
                    seen[g.kind] += 1
                    fired[g.kind] += int(g.object_id in covered)
    sizes_a, centre_a, log_a, iou_a = (np.asarray(v, float) for v in (sizes, centre, log_size, ious))
    jitter = {}
    for low, high in zip(SIZE_BINS_PX[:-1], SIZE_BINS_PX[1:]):
        inside = (sizes_a > low) & (sizes_a <= high)
        jitter[f"({low:g}, {high:g}] px"] = {
            "centre_noise_frac": _robust_std(centre_a[inside]), "log_size_noise": _robust_std(log_a[inside]),
            "iou_median": float(np.median(iou_a[inside])) if inside.any() else float("nan"),
            "count": int(inside.sum())}
    return {"images": images, "jitter": jitter,
            "jitter_all": {"centre_noise_frac": _robust_std(centre_a), "log_size_noise": _robust_std(log_a),
                           "iou_median": float(np.median(iou_a)) if iou_a.size else float("nan")},
            "fire_rate": {kind.name.lower(): fired[kind] / seen[kind] if seen[kind] else float("nan")
                          for kind in NUISANCE_KINDS},
            "hallucinations_per_image": len(scores["hallucinated"]) / max(images, 1),
            "score_quantiles": {name: [float(q) for q in np.quantile(v, (0.1, 0.5, 0.9))] if v else []
                                for name, v in scores.items()}}


def _robust_std(values: np.ndarray) -> float:
    """1.4826 x the median absolute deviation of all values (a std that outliers do not inflate); NaN if none."""
    values = np.asarray(values, float).ravel()
    if values.size == 0:
        return float("nan")
    return float(1.4826 * np.median(np.abs(values - np.median(values))))


class PooledRuns:
    """Several simulated runs (``frames`` first frames of each world) seen as one world, so that the
    statistics pool them exactly (ratios of summed counts, not means of ratios).

    Pooled frame ``K`` is frame ``K % frames`` of world ``K // frames``; object ids are offset so
    that each run's objects are distinct (nuisance ids, >= 1000, are kept); :meth:`detector` wraps
    one traced detector per world so that each sees its own world's frame indices and ids.
    """

    def __init__(self, worlds: Sequence[SimWorld], frames: int, keep_truth: bool = False) -> None:
        if not worlds:
            raise ValueError("PooledRuns: worlds must hold at least one SimWorld")
        if frames < 1 or any(frames > w.n_frames for w in worlds):
            raise ValueError(f"PooledRuns: frames must lie in 1..{min(w.n_frames for w in worlds)}, got {frames!r}")
        self.worlds, self.frames, self.rig = list(worlds), int(frames), worlds[0].rig
        counts = [len(w.objects) for w in worlds]
        self.offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(int)
        self.objects = tuple(range(int(sum(counts))))  # detector_statistics reads only its length
        self._truth: dict[int, object] | None = {} if keep_truth else None  # pooled frame -> truth, when kept

    @property
    def n_frames(self) -> int:
        """Pooled frames: runs x frames."""
        return len(self.worlds) * self.frames

    def ground_truth(self, index: int):
        """The truth of pooled frame ``index`` with object ids offset to the pooled numbering (computed
        once per frame with ``keep_truth``: for callers that read every frame many times, not to change it)."""
        if self._truth is not None and index in self._truth:
            return self._truth[index]
        w, k = divmod(int(index), self.frames)
        truth = self.worlds[w].ground_truth(k)
        for camera in CAMERA_SIDES:
            setattr(truth, camera, [self._shift(g, self.offsets[w]) for g in getattr(truth, camera)])
        if self._truth is not None:
            self._truth[index] = truth
        return truth

    @staticmethod
    def _shift(g: GroundTruthObject, offset: int) -> GroundTruthObject:
        """A copy of ``g`` with its id moved by ``offset`` when it is a real object (nuisances keep theirs)."""
        return replace(g, object_id=g.object_id + offset) if g.kind == ObjectKind.OBJECT else g

    def detector(self, per_world: Sequence) -> _PooledDetector:
        """A traced detector over the pooled frames that runs ``per_world[w]`` on world ``w``."""
        if len(per_world) != len(self.worlds):
            raise ValueError(f"PooledRuns.detector: need one detector per world ({len(self.worlds)}), "
                             f"got {len(per_world)}")
        return _PooledDetector(self, list(per_world))


class _PooledDetector:
    """See :meth:`PooledRuns.detector`."""

    def __init__(self, runs: PooledRuns, per_world: list) -> None:
        self.runs, self.per_world = runs, per_world

    def detect_traced(self, truth: list[GroundTruthObject], frame_index: int, camera: str,
                      image_shape: tuple[int, int]) -> list[TracedDetection]:
        w, k = divmod(int(frame_index), self.runs.frames)
        offset = int(self.runs.offsets[w])
        own = [PooledRuns._shift(g, -offset) for g in truth]
        objects = {g.object_id for g in own if g.kind == ObjectKind.OBJECT}
        out = self.per_world[w].detect_traced(own, k, camera, image_shape)
        return [TracedDetection(t.detection, t.origin, tuple(i + offset if i in objects else i for i in t.truth_ids))
                for t in out]


def yolo_detections(world: SimWorld, detector, frames: Iterable[int]) -> dict[tuple[int, str], list[Detection]]:
    """Run ``detector`` (``.detect([left, right])``, both views in one batch) on ``frames`` of ``world``."""
    out = {}
    for k in frames:
        for camera, dets in zip(CAMERA_SIDES, detector.detect(list(world.render(k)))):
            out[(k, camera)] = dets
    return out


def run_yolo(weights: Path, worlds: Sequence[SimWorld], frames: int, imgsz: int, score_floor: float = 0.05,
             nms_iou: float = 0.7, agnostic_nms: bool = False) -> list[dict[tuple[int, str], list[Detection]]]:
    """The trained detector's boxes scoring >= ``score_floor`` on the first ``frames`` frames of each
    world (both views in one batch), after NMS at ``nms_iou`` (class-agnostic with ``agnostic_nms``:
    pass the detector node's settings to measure the detector as deployed)."""
    from object_permanence.core.detection.ultralytics_backend import UltralyticsDetector

    yolo = UltralyticsDetector(str(weights), device="cpu", imgsz=imgsz, conf=score_floor, iou=nms_iou,
                               agnostic=agnostic_nms)
    return [yolo_detections(w, yolo, range(frames)) for w in tqdm(worlds, desc="YOLO on the runs", unit="run")]


def figures(runs, detector) -> dict:
    """Every calibration figure of a traced ``detector`` on all pooled frames of ``runs``."""
    indices = range(runs.n_frames)
    return {"statistics": asdict(detector_statistics(runs, detector, indices)),
            **box_and_nuisance_figures(runs, detector, indices)}


def calibration(weights: Path, scenarios: Sequence[str], seeds: Sequence[int], frames: int, imgsz: int,
                threshold: float = 0.25, score_floor: float = 0.05, nms_iou: float = 0.7,
                agnostic_nms: bool = False, presets: Sequence[str] = ("realistic",)) -> dict:
    """Figures of the trained detector and of the simulator's ``presets`` on the same runs.

    Every (scenario, seed) world, its first ``frames`` frames; YOLO (:func:`run_yolo`) is judged at
    ``threshold`` (the simulator's reporting threshold) except for ``yolo_low_threshold``. The first
    preset is the table's ``simulator`` column; the others are kept as ``simulator_<preset>``.
    """
    worlds = [SimWorld(make_scenario(s), seed) for s in scenarios for seed in seeds]
    detections = run_yolo(weights, worlds, frames, imgsz, score_floor, nms_iou, agnostic_nms)
    runs = PooledRuns(worlds, frames)
    detectors = {("simulator" if i == 0 else f"simulator_{preset}"):
                 runs.detector([SimulatedDetector(detector_config(preset, w.seed)) for w in worlds])
                 for i, preset in enumerate(presets)}
    detectors |= {"yolo": runs.detector([MatchedDetector(d, threshold) for d in detections]),
                  "yolo_low_threshold": runs.detector([MatchedDetector(d, score_floor) for d in detections])}
    result = {"runs": [f"{s}-{seed}" for s in scenarios for seed in seeds], "frames_per_run": frames,
              "threshold": threshold, "score_floor": score_floor, "imgsz": imgsz, "nms_iou": nms_iou,
              "agnostic_nms": agnostic_nms, "presets": list(presets)}
    for name, det in detectors.items():
        result[name] = figures(runs, det)
    return result


def stat_rows(fig: dict) -> list[tuple[str, float]]:
    """(statistic, value) rows of one detector's :func:`figures`, in the calibration table's order."""
    st = fig["statistics"]
    rows = [("recall of visible objects", st["recall"])]
    rows += [(f"miss rate, visibility {bucket}", 1.0 - value) for bucket, value in st["recall_by_visibility"].items()]
    rows += [(label, st[key]) for key, label in (("miss_rate_well_seen", "miss rate, visibility >= 0.75"),
                                                 ("miss_run_mean", "mean miss-run length (frames)"),
                                                 ("independent_run_bound", "miss-run length if independent"),
                                                 ("lr_miss_correlation", "left/right miss correlation (phi)"))]
    rows += [(f"mean score, {name}", value) for name, value in st["score_mean"].items()]
    rows += [(f"fires on {kind} (share of entries in view)", value) for kind, value in fig["fire_rate"].items()]
    rows.append(("unattributed boxes per image", fig["hallucinations_per_image"]))
    rows += [(label, st["counts"][key] / fig["images"]) for label, key in (
        ("duplicates per image", "duplicate"), ("merged boxes per image", "merged"),
        ("class confusions per image", "class_confusions"))]
    for bucket, jitter in fig["jitter"].items():
        rows += [(f"centre noise / size, box {bucket}", jitter["centre_noise_frac"]),
                 (f"log-size noise, box {bucket}", jitter["log_size_noise"]),
                 (f"median IoU with visible box, box {bucket}", jitter["iou_median"])]
    rows += [(f"{label}, all", fig["jitter_all"][key])
             for label, key in (("centre noise / size", "centre_noise_frac"), ("log-size noise", "log_size_noise"))]
    return rows


def simulator_columns(result: dict) -> list[tuple[str, str]]:
    """(result key, preset name) of each simulator column of a :func:`calibration` result."""
    presets = result.get("presets", ["realistic"])
    return [("simulator" if i == 0 else f"simulator_{p}", p) for i, p in enumerate(presets)]


def calibration_rows(result: dict) -> list[tuple[str, ...]]:
    """(statistic, simulator value per preset..., YOLO value) rows of the calibration table."""
    columns = [stat_rows(result[key]) for key, _ in simulator_columns(result)] + [stat_rows(result["yolo"])]
    return [(column[0][0], *(value for _, value in column)) for column in zip(*columns)]


def calibration_markdown(result: dict) -> str:
    """The calibration table (and the YOLO score quantiles) as Markdown."""
    names = [f"simulator `{p}`" for _, p in simulator_columns(result)]
    lines = ["# Detector calibration: simulator vs trained YOLO",
             "", f"Runs: {', '.join(result['runs'])}, {result['frames_per_run']} frames each, both "
             f"cameras; YOLO at imgsz {result['imgsz']}, NMS IoU {result.get('nms_iou', 0.7)} "
             f"({'class-agnostic' if result.get('agnostic_nms') else 'per class'}), judged at conf "
             f"{result['threshold']}.", "",
             "| statistic | " + " | ".join(names) + " | trained YOLO |", "|---" * (len(names) + 2) + "|"]
    lines += ["| " + " | ".join([row[0]] + [f"{v:.3f}" for v in row[1:]]) + " |" for row in calibration_rows(result)]
    lines += ["", f"Score quantiles (10/50/90 %) of YOLO boxes >= {result['score_floor']}:", "",
              "| source | quantiles | fires on (share in view) |", "|---|---|---|"]
    low = result["yolo_low_threshold"]
    for name, q in low["score_quantiles"].items():
        fire = low["fire_rate"].get(name, float("nan"))
        lines.append(f"| {name} | {' / '.join(f'{v:.2f}' for v in q) or 'none'} | {fire:.3f} |")
    return "\n".join(lines) + "\n"
