"""Per-frame context features of a track that its own state does not hold: stereo consistency with
the other view, appearance stability and the Kalman innovation.

Why: a reflection or a glare spot is often detected confidently for many frames, so hit counts and
confidences alone cannot tell it from an object. It rarely has a partner in the other rectified view
on the same rows with a plausible disparity and a similar size and appearance, and its appearance
and measured box jump more than an object's. All functions work on whole frames (vectorised over
the tracks of both views).

Appearance also separates nuisances by itself: a glare spot is a bright, unsaturated blob; a
reflection is a dimmed copy of an object in the same view (an appearance twin).
:func:`histogram_moments` reads brightness and saturation from the colour-histogram embedding and
:func:`twin_similarity` the closest appearance twin in the same view.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from object_permanence.core.types import Track

#: Columns appended to each history row (see :data:`history.FEATURES`).
CONTEXT_FEATURES = (
    "stereo_match",        # 1 when the other view has a consistent partner track this frame
    "stereo_dy_rel",       # |cy - cy_other| / box height of the best partner (clipped; 1 when none)
    "stereo_log_size",     # |log(h / h_other)| of the best partner (clipped; 1 when none)
    "stereo_disp_rel",     # disparity of the best partner / max_disparity_px (0 when none)
    "stereo_app_sim",      # cosine similarity of the embeddings of track and partner (0 when none)
    "innovation_rel",      # |measured centre - filtered centre| / box size (0 when unmatched)
    "app_sim_prev",        # cosine similarity of this frame's embedding with the previous one (1 when unknown)
    "twin_app_sim",        # largest cosine similarity with another track of the same view (0 when none)
)
N_CONTEXT = len(CONTEXT_FEATURES)

_CLIP = 1.0  # the relative errors above are clipped to [0, _CLIP]

#: Hue, saturation and value bins of the colour-histogram embedding (C order, as
#: :class:`appearance.ColorHistogramEmbedder` writes it by default).
HISTOGRAM_BINS = (8, 4, 4)


@dataclass(frozen=True)
class StereoConfig:
    """How a partner in the other rectified view is recognised.

    max_dy_rel: largest |Δcy| / box height of a partner (rectified rows agree up to box noise);
    max_log_size: largest |log(h / h_other)| (both views see the object at about the same size);
    max_disparity_px: largest plausible disparity in pixels (the nearest object the rig expects:
    ``fx * baseline / z_min``; 500 px * 0.12 m / 0.6 m = 100 px on the simulated rig).
    """

    max_dy_rel: float = 0.25
    max_log_size: float = 0.3
    max_disparity_px: float = 100.0

    def __post_init__(self) -> None:
        for name in ("max_dy_rel", "max_log_size", "max_disparity_px"):
            value = getattr(self, name)
            if not np.isfinite(value) or value <= 0:
                raise ValueError(f"StereoConfig: {name} must be a finite number > 0, got {value!r}")


def _boxes(tracks: Sequence[Track]) -> np.ndarray:
    return np.stack([np.asarray(t.box, np.float64) for t in tracks]) if tracks else np.zeros((0, 4))


def _unit_embeddings(tracks: Sequence[Track]) -> np.ndarray | None:
    """(N, D) unit-norm embeddings, or None when any track lacks one (or their sizes differ)."""
    if not tracks or any(t.embedding is None for t in tracks):
        return None
    dims = {np.asarray(t.embedding).size for t in tracks}
    if len(dims) != 1:
        return None
    e = np.stack([np.asarray(t.embedding, np.float64).ravel() for t in tracks])
    return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)


def stereo_features(tracks: Sequence[Track], others: Sequence[Track] | None, disparity_sign: float,
                    config: StereoConfig) -> np.ndarray:
    """(N, 5) stereo columns (``stereo_*`` of :data:`CONTEXT_FEATURES`) of ``tracks`` against the other
    view's tracks of the same stamp.

    disparity_sign: +1 when ``tracks`` are in the left view (d = cx - cx_other), -1 in the right
    view (d = cx_other - cx); a partner needs 0 < d < max_disparity_px, |Δcy| / h <= max_dy_rel and
    |log(h / h_other)| <= max_log_size. Among partners the one with the smallest
    |Δcy| / h + |log size ratio| is reported. ``others`` None or empty: no partner for anyone.
    """
    n = len(tracks)
    out = np.zeros((n, 5), np.float32)
    out[:, 1] = out[:, 2] = _CLIP
    if n == 0 or not others:
        return out
    a, b = _boxes(tracks), _boxes(others)
    h_a, h_b = np.maximum(a[:, 3:4], 1.0), np.maximum(b[None, :, 3], 1.0)
    dy = np.abs(a[:, 1:2] - b[None, :, 1]) / h_a                # |cy - cy'| / h          (N, M)
    dsize = np.abs(np.log(h_a / h_b))                           # |log(h / h')|           (N, M)
    disp = disparity_sign * (a[:, 0:1] - b[None, :, 0])         # d = ±(cx - cx')         (N, M)
    ok = (dy <= config.max_dy_rel) & (dsize <= config.max_log_size) & (disp > 0) & (disp < config.max_disparity_px)
    cost = np.where(ok, dy + dsize, np.inf)
    best = np.argmin(cost, axis=1)
    rows = np.arange(n)
    found = np.isfinite(cost[rows, best])
    out[:, 0] = found
    out[:, 1] = np.where(found, np.minimum(dy[rows, best], _CLIP), _CLIP)
    out[:, 2] = np.where(found, np.minimum(dsize[rows, best], _CLIP), _CLIP)
    out[:, 3] = np.where(found, disp[rows, best] / config.max_disparity_px, 0.0)
    ea, eb = _unit_embeddings(tracks), _unit_embeddings(others)
    if ea is not None and eb is not None and ea.shape[1] == eb.shape[1]:
        sim = np.einsum("nd,nd->n", ea, eb[best])               # cos = <e, e'> of unit vectors
        out[:, 4] = np.where(found, sim, 0.0)
    return out


def histogram_moments(embedding: np.ndarray | None,
                      bins: tuple[int, int, int] = HISTOGRAM_BINS) -> tuple[float, float]:
    """(mean saturation, mean value), each in [0, 1], of a colour-histogram embedding of ``bins``
    (H, S, V) bins: the histogram mass per bin is proportional to the embedding (an L2-normalised
    count vector), w = e / sum(e), and mean_S = sum_i w_i s_i / (S - 1) with s_i the bin's
    saturation index (value alike). (0.5, 0.5) when the embedding is missing, empty or of another
    size (no evidence)."""
    sat, val = histogram_moment_rows([embedding], bins)[0]
    return float(sat), float(val)


def histogram_moment_rows(embeddings: Sequence[np.ndarray | None],
                          bins: tuple[int, int, int] = HISTOGRAM_BINS) -> np.ndarray:
    """(N, 2) float64 :func:`histogram_moments` of many embeddings at once ((0.5, 0.5) where one
    is missing, empty, of another size or all zero)."""
    out = np.full((len(embeddings), 2), 0.5)
    size = int(np.prod(bins))
    rows = [i for i, e in enumerate(embeddings) if e is not None and np.size(e) == size]
    if not rows:
        return out
    e = np.clip(np.array([np.ravel(embeddings[i]) for i in rows], np.float64), 0.0, None)
    total = e.sum(axis=1)
    ok = total > 0
    w = e[ok].reshape(-1, *bins) / total[ok, None, None, None]       # w_hsv = e_hsv / sum e
    sat = w.sum(axis=(1, 3)) @ np.arange(bins[1]) / max(bins[1] - 1, 1)   # mean_S = sum_s w_s s / (S-1)
    val = w.sum(axis=(1, 2)) @ np.arange(bins[2]) / max(bins[2] - 1, 1)   # mean_V = sum_v w_v v / (V-1)
    out[np.asarray(rows)[ok]] = np.stack([sat, val], axis=1)
    return out


def twin_similarity(tracks: Sequence[Track]) -> np.ndarray:
    """(N,) largest cosine similarity of each track's embedding with any other track of the same
    view (a reflection's source looks like it); 0 when alone or when embeddings are missing."""
    out = np.zeros(len(tracks), np.float32)
    e = _unit_embeddings(tracks)
    if e is None or len(tracks) < 2:
        return out
    sim = e @ e.T                                                   # cos_ij = <e_i, e_j> of unit vectors
    np.fill_diagonal(sim, -np.inf)
    return np.clip(sim.max(axis=1), 0.0, 1.0).astype(np.float32)


def innovation_features(tracks: Sequence[Track]) -> np.ndarray:
    """(N,) |measured centre - filtered centre| / sqrt(w h) per track (0 when unmatched this frame)."""
    out = np.zeros(len(tracks), np.float32)
    for i, t in enumerate(tracks):  # Track objects, not array elements: one attribute read each
        if t.measurement is not None:
            size = np.sqrt(max(float(t.box[2]) * float(t.box[3]), 1.0))
            out[i] = min(float(np.hypot(*(np.asarray(t.measurement[:2]) - np.asarray(t.box[:2])))) / size, _CLIP)
    return out


def cosine(a: np.ndarray | None, b: np.ndarray | None) -> float:
    """Cosine similarity of two embeddings; 1.0 when either is missing or their sizes differ
    (no evidence of an appearance change)."""
    if a is None or b is None or np.asarray(a).size != np.asarray(b).size:
        return 1.0
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    den = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / den) if den > 0 else 1.0  # cos = a.b / (|a| |b|)


def context_rows(tracks: Sequence[Track], others: Sequence[Track] | None, disparity_sign: float,
                 config: StereoConfig, previous_embeddings: Sequence[np.ndarray | None]) -> np.ndarray:
    """(N, N_CONTEXT) float32 context rows of one frame's tracks, columns :data:`CONTEXT_FEATURES`.

    previous_embeddings: per track, its embedding at its previous frame (None when new or unknown).
    """
    if len(previous_embeddings) != len(tracks):
        raise ValueError(f"previous_embeddings must have one entry per track ({len(tracks)}), "
                         f"got {len(previous_embeddings)}")
    stereo = stereo_features(tracks, others, disparity_sign, config)
    innov = innovation_features(tracks)
    app = np.array([cosine(t.embedding, p) if t.frames_since_seen == 0 else 1.0
                    for t, p in zip(tracks, previous_embeddings)], np.float32)
    twin = twin_similarity(tracks)
    return np.concatenate([stereo, innov[:, None], app[:, None], twin[:, None]], axis=1).astype(np.float32)
