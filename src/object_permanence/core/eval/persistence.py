"""Persistence filter scores, judged per track: are real objects kept and nuisances filtered, and
how soon is the right decision reached?

Population: every track ``(camera, id)`` with at least one detection-backed frame (TENTATIVE or
VISIBLE) and at least one persistence decision on a frame where the records hold it confirmed;
both cameras pooled. Decisions on TENTATIVE frames (the world model's ``publish_tentative``: the
filter scores them, never keeps them), or on tracks the records do not hold that frame, are not
counted: a track the world model never confirmed is not the filter's to keep, and a confirmed
track is judged on the decisions it could have been kept by.

* **Real** track: at least 50% of its detection-backed frames cover an ``OBJECT`` (Hungarian,
  IoU ≥ 0.3 against all ground-truth entries of the frame, :class:`matching.TrackToTruth`); every
  other track (reflections, glare, false positives, tracks on nothing) is a nuisance.
* **Kept** (the headline, "final decision"): the filter's decision in the track's last decided
  frame is keep — what the pipeline ends up publishing for it. **Ever kept** (reported beside it):
  some decision kept it (a nuisance kept even once was published, triangulated and drawn).
* Precision = kept ∧ real / kept; recall = kept ∧ real / real; F1 = 2PR / (P + R) — over tracks,
  so a long-lived object does not outweigh a dozen short-lived nuisances.
* **Decision latency** (frames): from the first frame at which the track's object (the ground-truth
  id its detection-backed frames cover most) is detected in that camera within the records (IoU ≥ 0.5
  with its amodal or visible box; the track's own first detection-backed frame when that object is
  never detected so), to the first frame from which the decision is correct — keep for a real
  track, filtered for a nuisance — and stays so for the rest of the track's decisions; clipped at
  0. A track whose final decision is wrong is never decided and has no latency. Reported: median
  and 90th percentile over decided tracks, and the fraction of ALL tracks (real, nuisance, both)
  decided within ``within_frames`` (3) frames — undecided tracks count as not within.

The pooled per-decision view (:func:`persistence_counts`) counts one sample per decision on a
confirmed track (VISIBLE or OCCLUDED in that frame), labelled by the same real/nuisance rule; it
weighs long-lived tracks more and is kept in the counts, named as such.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from object_permanence.core.eval.matching import CAMERAS, OBSERVED_STATES
from object_permanence.core.eval.records import (
    CameraIndex,
    FrameRecord,
    camera_index,
    decisions_of,
    ratio,
    tracks_of,
)
from object_permanence.core.types import TrackState


def _f1(p: float, r: float) -> float:
    return 2.0 * p * r / (p + r) if p + r > 0 else 0.0  # F1 = 2PR / (P + R)


def _percentile(values: Sequence[int], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if len(values) else 0.0


class _KeptRealRates:
    """Precision and recall of keep decisions from the ``kept``, ``real`` and ``kept_real`` counts
    of the dataclass it is mixed into (positive = real object)."""

    @property
    def precision(self) -> float:
        """kept ∧ real / kept (0.0 when nothing kept)."""
        return ratio(self.kept_real, self.kept)

    @property
    def recall(self) -> float:
        """kept ∧ real / real (0.0 when nothing real)."""
        return ratio(self.kept_real, self.real)


@dataclass
class PersistenceTrackCounts(_KeptRealRates):
    """Per-track confusion counts and decision latencies (definitions: module docstring); precision
    and recall are over tracks (final decision)."""

    tracks: int = 0
    real: int = 0
    kept: int = 0
    kept_real: int = 0
    ever_kept: int = 0
    ever_kept_real: int = 0
    nuisance: int = 0
    latency_real: list[int] = field(default_factory=list)
    latency_nuisance: list[int] = field(default_factory=list)
    within_frames: int = 3

    def as_counts(self) -> dict[str, float | int]:
        """Flat dict for ``counts.json`` (``persistence_*`` keys)."""
        ever_p, ever_r = ratio(self.ever_kept_real, self.ever_kept), ratio(self.ever_kept_real, self.real)
        w = self.within_frames
        fast_real = sum(v <= w for v in self.latency_real)
        fast_nuis = sum(v <= w for v in self.latency_nuisance)
        return {
            "persistence_tracks": self.tracks,
            "persistence_tracks_real": self.real,
            "persistence_tracks_kept": self.kept,
            "persistence_tracks_kept_real": self.kept_real,
            "persistence_f1": _f1(self.precision, self.recall),
            "persistence_tracks_ever_kept": self.ever_kept,
            "persistence_tracks_ever_kept_real": self.ever_kept_real,
            "persistence_ever_kept_precision": ever_p,
            "persistence_ever_kept_recall": ever_r,
            "persistence_decided_real": len(self.latency_real),
            "persistence_decided_nuisance": len(self.latency_nuisance),
            "persistence_latency_real_frames_p50": _percentile(self.latency_real, 50.0),
            "persistence_latency_real_frames_p90": _percentile(self.latency_real, 90.0),
            "persistence_latency_nuisance_frames_p50": _percentile(self.latency_nuisance, 50.0),
            "persistence_latency_nuisance_frames_p90": _percentile(self.latency_nuisance, 90.0),
            f"persistence_decided_within_{w}_real": ratio(fast_real, self.real),
            f"persistence_decided_within_{w}_nuisance": ratio(fast_nuis, self.nuisance),
            f"persistence_decided_within_{w}": ratio(fast_real + fast_nuis, self.tracks),
        }


def _stable_from(decisions: list[tuple[int, bool]], target: bool) -> int | None:
    """Position of the first decision of the final run equal to ``target``; None when the last
    decision is not ``target``."""
    keeps = np.array([k for _, k in decisions], dtype=bool)
    if keeps[-1] != target:
        return None
    wrong = np.flatnonzero(keeps != target)
    return decisions[int(wrong[-1]) + 1 if wrong.size else 0][0]


def _add_camera(out: PersistenceTrackCounts, index: CameraIndex) -> None:
    decided: dict[int, list[tuple[int, bool]]] = {}
    first_seen: dict[int, int] = {}
    for t, rec in enumerate(index.records):
        confirmed = set()
        for trk in tracks_of(rec, index.camera):
            if trk.state in OBSERVED_STATES:
                first_seen.setdefault(trk.track_id, t)
            if trk.state != TrackState.TENTATIVE:
                confirmed.add(trk.track_id)
        for dec in decisions_of(rec, index.camera):
            if dec.track_id in confirmed:
                decided.setdefault(dec.track_id, []).append((t, bool(dec.keep)))
    truth = index.truth
    for tid in sorted(set(decided) & set(first_seen)):
        decisions = decided[tid]
        real = truth.is_real(index.camera, tid)
        kept = decisions[-1][1]
        ever = any(k for _, k in decisions)
        out.tracks += 1
        out.real += real
        out.nuisance += not real
        out.kept += kept
        out.kept_real += kept and real
        out.ever_kept += ever
        out.ever_kept_real += ever and real
        stable = _stable_from(decisions, target=real)
        if stable is None:
            continue
        oid = truth.gt_id(index.camera, tid)
        first = index.first_detected(oid) if oid is not None else None
        start = first if first is not None else first_seen[tid]
        (out.latency_real if real else out.latency_nuisance).append(max(0, stable - start))


def _indexes(records: Sequence[FrameRecord], indexes: Mapping[str, CameraIndex] | None) -> list[CameraIndex]:
    return [camera_index(records, cam, (indexes or {}).get(cam)) for cam in CAMERAS]


def persistence_tracks(
    records: Sequence[FrameRecord],
    within_frames: int = 3,
    *,
    indexes: Mapping[str, CameraIndex] | None = None,
) -> PersistenceTrackCounts:
    """Per-track precision, recall and decision latency, both cameras pooled (module docstring).

    indexes: optional ``{"left": CameraIndex, "right": CameraIndex}`` of these records.

    Raises:
        ValueError: ``within_frames`` < 0, records not consecutive.
    """
    if within_frames < 0:
        raise ValueError(f"within_frames must be >= 0; got {within_frames}")
    out = PersistenceTrackCounts(within_frames=within_frames)
    for index in _indexes(records, indexes):
        _add_camera(out, index)
    return out


@dataclass
class PersistenceCounts(_KeptRealRates):
    """Confusion counts of persistence decisions pooled over frames (positive = real object)."""

    decisions: int
    kept: int
    real: int
    kept_real: int


def persistence_counts(
    records: Sequence[FrameRecord], *, indexes: Mapping[str, CameraIndex] | None = None
) -> PersistenceCounts:
    """The pooled per-decision view (module docstring), both cameras.

    Raises:
        ValueError: records not consecutive.
    """
    confirmed = (TrackState.VISIBLE, TrackState.OCCLUDED)
    decisions = kept = real = kept_real = 0
    for index in _indexes(records, indexes):
        for rec in records:
            states = {t.track_id: t.state for t in tracks_of(rec, index.camera)}
            for dec in decisions_of(rec, index.camera):
                if states.get(dec.track_id) not in confirmed:
                    continue
                is_real = index.truth.is_real(index.camera, dec.track_id)
                decisions += 1
                kept += bool(dec.keep)
                real += is_real
                kept_real += bool(dec.keep) and is_real
    return PersistenceCounts(decisions, kept, real, kept_real)
