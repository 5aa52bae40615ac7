"""Labelled per-track feature sequences for training and judging persistence models.

A scenario is simulated, detected (``realistic`` / ``hard`` simulator presets) and tracked by the
shipped world model exactly as the evaluation does; every track of every camera becomes one
sequence of history rows (:data:`history.FEATURES`, stereo context from the other view's tracks of
the same frame, as :class:`filter.PersistenceFilter` computes them) with its label from the ground
truth only (``real``: at least 50% of its detection-backed frames match a real object,
:class:`eval.matching.TrackToTruth`). Labels are for training and evaluation; the features never
read the ground truth.

Splits are by seed: training and validation on seeds 0-999, tests on seeds >= 1000, and a nuisance
setting held out of training entirely (:data:`HELD_OUT_NUISANCE`).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from object_permanence.core.appearance import ColorHistogramEmbedder
from object_permanence.core.eval.peers import WorldModelTracker
from object_permanence.core.eval.records import CameraIndex, FrameRecord
from object_permanence.core.eval.sequences import CameraStream, EvalSequence, detector_config
from object_permanence.core.eval.tracking_eval import build_records, run_tracker
from object_permanence.core.detection.simulated import SimulatedDetector
from object_permanence.core.persistence.features import StereoConfig, context_rows
from object_permanence.core.persistence.history import N_FEATURES, frame_feature_rows
from object_permanence.core.sim.scenarios import ScenarioConfig, make_scenario
from object_permanence.core.sim.world import SimWorld
from object_permanence.core.types import Track, TrackState
from object_permanence.core.world_model import WorldModelConfig

CAMERAS = ("left", "right")
#: The nuisance setting never seen in training: the ``noisy`` scene with long-lived, frequent glare
#: (glare_rate 3.0 births/s lasting 90-180 frames; training sees at most 1.0/s lasting 5-90 frames).
HELD_OUT_NUISANCE = ("noisy", {"glare_rate": 3.0, "glare_frames": (90, 180)})
HELD_OUT_NUISANCE_NAME = "noisy_long_glare"
#: The per-sequence arrays of :class:`TrackSequences`, in field order.
_PER_SEQUENCE = ("labels", "seeds", "cameras", "track_ids", "groups", "tentative_rows")


@dataclass
class TrackSequences:
    """Many track sequences in one flat store.

    features: (sum T_i, N_FEATURES) float32 rows, track after track, oldest first;
    offsets: (n + 1,) int64, sequence i is ``features[offsets[i]:offsets[i + 1]]``;
    labels: (n,) int8, 1 real object, 0 nuisance; seeds: (n,) int64; cameras: (n,) int8 (0 left, 1
    right); track_ids: (n,) int64; groups: (n,) str ``<scenario>-<difficulty>`` of each sequence;
    tentative_rows: (n,) int64, the leading rows of each sequence on which the track was TENTATIVE
    (a world model with ``publish_tentative``; the filter scores them and cannot keep the track
    there: thresholds are chosen on the other rows); None: zeros (files written before it).
    """

    features: np.ndarray
    offsets: np.ndarray
    labels: np.ndarray
    seeds: np.ndarray
    cameras: np.ndarray
    track_ids: np.ndarray
    groups: np.ndarray
    tentative_rows: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.tentative_rows is None:
            self.tentative_rows = np.zeros(len(self.labels), np.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def sequence(self, i: int) -> np.ndarray:
        """(T_i, N_FEATURES) rows of sequence ``i``."""
        return self.features[self.offsets[i]:self.offsets[i + 1]]

    def lengths(self) -> np.ndarray:
        """(n,) T_i."""
        return np.diff(self.offsets)

    def select(self, mask: np.ndarray) -> "TrackSequences":
        """The sequences where ``mask`` (n,) bool is true."""
        idx = np.flatnonzero(mask)
        parts = [self.sequence(i) for i in idx]
        lengths = np.array([len(p) for p in parts], np.int64)
        return TrackSequences(
            np.concatenate(parts) if parts else np.zeros((0, N_FEATURES), np.float32),
            np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            *(getattr(self, n)[idx] for n in _PER_SEQUENCE))

    @staticmethod
    def concat(items: Sequence["TrackSequences"]) -> "TrackSequences":
        """All sequences of ``items``, in order."""
        lengths = np.concatenate([it.lengths() for it in items]).astype(np.int64)
        return TrackSequences(np.concatenate([it.features for it in items]),
                              np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
                              *(np.concatenate([getattr(it, n) for it in items]) for n in _PER_SEQUENCE))

    def save(self, path: Path) -> None:
        """Write an ``.npz``."""
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, **{k: getattr(self, k) for k in ("features", "offsets") + _PER_SEQUENCE})

    @staticmethod
    def load(path: Path) -> "TrackSequences":
        """Read an ``.npz`` written by :meth:`save`.

        Raises:
            ValueError: the rows do not have N_FEATURES columns (written by another feature set).
        """
        with np.load(path, allow_pickle=False) as z:
            out = TrackSequences(**{k: z[k] for k in ("features", "offsets") + _PER_SEQUENCE if k in z.files})
        if out.features.ndim != 2 or out.features.shape[1] != N_FEATURES:
            raise ValueError(f"{path}: rows have shape {out.features.shape}, expected (*, {N_FEATURES})")
        return out


def scenario_config(scenario: str, overrides: dict | None = None) -> ScenarioConfig:
    """The preset ``scenario`` with ``overrides`` (field -> value) applied."""
    return replace(make_scenario(scenario), **(overrides or {}))


def simulate(config: ScenarioConfig, name: str, seed: int, difficulties: Sequence[str],
             n_frames: int | None = None) -> dict[str, EvalSequence]:
    """Like :func:`eval.sequences.simulate_sequences` but for any :class:`ScenarioConfig` (the
    held-out nuisance setting is a preset with overrides): render once, detect per difficulty, embed
    every detection's box as the detector node does. Returns ``{difficulty: EvalSequence}``."""
    world = SimWorld(config, seed=seed)
    n = world.n_frames if n_frames is None else n_frames
    if n < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames!r}")
    detectors = {d: SimulatedDetector(detector_config(d, seed)) for d in difficulties}
    embedder = ColorHistogramEmbedder()
    size = (world.rig.width, world.rig.height)
    out = {d: EvalSequence(name, d, seed, world.config.fps, size, {c: CameraStream([], []) for c in CAMERAS})
           for d in difficulties}
    for k in range(n):
        truth = world.ground_truth(k)
        for cam, gt, image in zip(CAMERAS, (truth.left, truth.right), world.render(k)):
            for difficulty, detector in detectors.items():
                dets = detector.detect(gt, k, cam, (size[1], size[0]))
                if dets:
                    for d, e in zip(dets, embedder.embed(image, np.stack([d.box for d in dets]))):
                        d.embedding = e
                out[difficulty].streams[cam].detections.append(dets)
                out[difficulty].streams[cam].truth.append(gt)
    return out


def camera_sequences(tracks: dict[str, list[list[Track]]], camera: str,
                     stereo: StereoConfig) -> dict[int, tuple[np.ndarray, int]]:
    """Per track id of ``camera`` confirmed at least once, its (T, N_FEATURES) history rows over the
    whole run, computed frame by frame as :class:`filter.PersistenceFilter` does (other view of the
    same frame), and how many of them, first, were TENTATIVE. When the world model publishes
    TENTATIVE tracks (``publish_tentative``) their rows are in the history, as the filter sees them,
    but a track never confirmed is no sequence: the filter never keeps one, so there is no decision
    to learn (and the evaluation leaves it out)."""
    other = CAMERAS[1 - CAMERAS.index(camera)]
    rows: dict[int, list[np.ndarray]] = {}
    confirmed_at: dict[int, int] = {}  # track id -> rows before its first confirmed one
    last_embedding: dict[int, np.ndarray | None] = {}
    for frame, others in zip(tracks[camera], tracks[other]):
        if not frame:
            continue
        context = context_rows(frame, others, 1.0 if camera == "left" else -1.0, stereo,
                               [last_embedding.get(t.track_id) for t in frame])
        frame_rows = frame_feature_rows(frame, context)
        for t, row in zip(frame, frame_rows):
            rows.setdefault(t.track_id, []).append(row)
            last_embedding[t.track_id] = t.embedding
            if t.state != TrackState.TENTATIVE:
                confirmed_at.setdefault(t.track_id, len(rows[t.track_id]) - 1)
    return {tid: (np.stack(r).astype(np.float32), confirmed_at[tid])
            for tid, r in rows.items() if tid in confirmed_at}


def label_sequences(records: Sequence[FrameRecord], tracks: dict[str, list[list[Track]]], seed: int, group: str,
                    stereo: StereoConfig) -> TrackSequences:
    """Every track of both cameras of one run as labelled sequences (labels from the ground truth)."""
    feats, labels, cams, tids, tentative = [], [], [], [], []
    for ci, cam in enumerate(CAMERAS):
        truth = CameraIndex(records, cam).truth
        for tid, (x, n_tentative) in sorted(camera_sequences(tracks, cam, stereo).items()):
            feats.append(x)
            labels.append(int(truth.is_real(cam, tid)))
            cams.append(ci)
            tids.append(tid)
            tentative.append(n_tentative)
    lengths = np.array([len(f) for f in feats], np.int64)
    n = len(feats)
    return TrackSequences(np.concatenate(feats) if feats else np.zeros((0, N_FEATURES), np.float32),
                          np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64), np.array(labels, np.int8),
                          np.full(n, seed, np.int64), np.array(cams, np.int8), np.array(tids, np.int64),
                          np.array([group] * n, dtype="U64"), np.array(tentative, np.int64))


@dataclass
class TrackedRun:
    """One simulated, detected and tracked run: records (ground truth, detections and the confirmed
    tracks, :func:`eval.tracking_eval.build_records`) and the published tracks per camera and frame."""

    name: str
    difficulty: str
    seed: int
    records: list[FrameRecord]
    tracks: dict[str, list[list[Track]]]


def tracked_runs(scenario: str, seed: int, difficulties: Sequence[str], world_model: WorldModelConfig,
                 overrides: dict | None = None, name: str | None = None,
                 n_frames: int | None = None) -> list[TrackedRun]:
    """Simulate ``scenario`` (with ``overrides``) once and track it at each difficulty."""
    seqs = simulate(scenario_config(scenario, overrides), name or scenario, seed, difficulties, n_frames)
    out = []
    for difficulty, seq in seqs.items():
        tracks = run_tracker(seq, lambda: WorldModelTracker(world_model))
        out.append(TrackedRun(name or scenario, difficulty, seed, build_records(seq, tracks), tracks))
    return out


def generate(scenarios: Sequence[str], seeds: Sequence[int], difficulties: Sequence[str],
             world_model: WorldModelConfig, stereo: StereoConfig | None = None, overrides: dict | None = None,
             name: str | None = None, n_frames: int | None = None,
             on_run: Callable[[], None] | None = None) -> TrackSequences:
    """Labelled sequences of every (scenario, seed, difficulty); ``on_run`` is called after each
    simulated (scenario, seed) (progress)."""
    stereo = stereo or StereoConfig()
    parts = []
    for scenario in scenarios:
        for seed in seeds:
            for run in tracked_runs(scenario, seed, difficulties, world_model, overrides, name, n_frames):
                parts.append(label_sequences(run.records, run.tracks, seed, f"{run.name}-{run.difficulty}", stereo))
            if on_run is not None:
                on_run()
    return TrackSequences.concat(parts)
