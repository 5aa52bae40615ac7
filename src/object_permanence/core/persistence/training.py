"""Training windows and per-track scoring for the persistence models (no torch here: the windows
are numpy arrays any learner consumes).

A track's history window in the filter is its newest ``window`` rows. Two kinds of window teach a
model every decision the filter asks of it:

* the **prefix** window, frames ``0 .. min(T, window) - 1``: the loss counts at every frame (a score
  must exist and be right from the first frame on; this is where decision latency is won);
* **sliding** windows ending at frames ``window, window + stride, ...``: the loss counts at the
  last frame only (what the filter asks once the history is full), or, with ``all_frames``, at
  every frame of the window (each frame then scored from the window's frames up to it: more
  supervised frames per window, as if the track's history had started at the window's start).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from object_permanence.core.persistence.dataset import TrackSequences
from object_permanence.core.persistence.history import HISTORY_LEN  # noqa: F401 (the tools import it from here)


@dataclass
class Windows:
    """x: (N, W, F) float32 left-aligned rows; lengths: (N,) valid frames; loss_mask: (N, W) bool
    frames whose score is trained; labels: (N,) float32; track: (N,) index of the source sequence;
    decidable: (N, W) bool, the frames of ``loss_mask`` on which the filter may keep the track (not
    its TENTATIVE rows, :attr:`dataset.TrackSequences.tentative_rows`): what a threshold is chosen on."""

    x: np.ndarray
    lengths: np.ndarray
    loss_mask: np.ndarray
    labels: np.ndarray
    track: np.ndarray
    decidable: np.ndarray


def make_windows(data: TrackSequences, window: int, stride: int, all_frames: bool = False) -> Windows:
    """Prefix and sliding windows of every sequence (module docstring); ``all_frames``: the loss
    mask of a sliding window covers all its frames, not only its last.

    Raises:
        ValueError: ``window`` or ``stride`` < 1.
    """
    if window < 1 or stride < 1:
        raise ValueError(f"window and stride must be >= 1, got {window}, {stride}")
    ends, starts, tracks, prefix = [], [], [], []
    lengths = data.lengths()
    for i, n in enumerate(lengths):
        e = np.concatenate([[min(n, window)], np.arange(window + stride, n + 1, stride)]) if n > window \
            else np.array([n])
        if n > window and e[-1] != n:
            e = np.append(e, n)  # the track's final full window too
        ends.append(e)
        starts.append(np.maximum(e - window, 0))
        tracks.append(np.full(len(e), i))
        prefix.append(np.arange(len(e)) == 0)
    ends_a, starts_a = np.concatenate(ends), np.concatenate(starts)
    track_a, prefix_a = np.concatenate(tracks), np.concatenate(prefix)
    lens = (ends_a - starts_a).astype(np.int64)
    x = np.zeros((len(lens), window, data.features.shape[1]), np.float32)
    row0 = data.offsets[track_a] + starts_a
    for j in range(window):  # one vector copy per window position, not per window
        ok = j < lens
        x[ok, j] = data.features[row0[ok] + j]
    steps = np.arange(window)[None, :]
    mask = np.where(prefix_a[:, None] | all_frames, steps < lens[:, None], steps == (lens[:, None] - 1))
    decidable = mask & (starts_a[:, None] + steps >= data.tentative_rows[track_a][:, None])
    return Windows(x, lens, mask, data.labels[track_a].astype(np.float32), track_a, decidable)


def prefix_scores_to_track(scores: np.ndarray, windows: Windows, n_tracks: int) -> np.ndarray:
    """Per track, the largest score over its scored frames on which the filter may keep it
    (``windows.decidable``): (n_tracks,). With a sticky filter a track is kept once any such frame's
    score reaches the threshold, so this is the score a threshold is compared against. scores:
    (N, W) per window frame."""
    best = np.full(n_tracks, -np.inf)
    masked = np.where(windows.decidable, scores, -np.inf).max(axis=1)
    np.maximum.at(best, windows.track, masked)
    return best


def choose_threshold(track_scores: np.ndarray, labels: np.ndarray,
                     min_precision: float | None = None) -> dict[str, float]:
    """The keep threshold on per-track scores: the best F1 (ties: the higher precision) — the
    criterion the min-hits rule is tuned by — or, with ``min_precision``, the best recall among the
    thresholds reaching that precision (the best F1 when none does); returns threshold, precision,
    recall, f1."""
    candidates = np.unique(track_scores[np.isfinite(track_scores)])
    labels = labels.astype(bool)
    kept = track_scores[None, :] >= candidates[:, None]                       # (C, n)
    tp = (kept & labels[None]).sum(1)
    precision = tp / np.maximum(kept.sum(1), 1)
    recall = tp / max(labels.sum(), 1)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)       # F1 = 2PR / (P + R)
    ok = precision >= (min_precision if min_precision is not None else np.inf)
    if ok.any():
        i = int(np.argmax(np.where(ok, recall + 1e-6 * precision, -1.0)))
    else:
        i = int(np.argmax(np.round(f1, 9) + 1e-12 * precision))
    return {"threshold": float(candidates[i]), "precision": float(precision[i]), "recall": float(recall[i]),
            "f1": float(f1[i])}
