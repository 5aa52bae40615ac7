"""Plots and the annotated GIF of a demo run (boxes, ids, ghosts dashed)."""
from __future__ import annotations

import colorsys
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from object_permanence.core.types import Track, TrackState


def _color(track_id: int) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb((track_id * 0.618034) % 1.0, 0.85, 1.0)
    return int(b * 255), int(g * 255), int(r * 255)


def _dashed_rect(image: np.ndarray, p1: tuple[int, int], p2: tuple[int, int], color, dash: int = 6) -> None:
    (x1, y1), (x2, y2) = p1, p2
    for a, b in (((x1, y1), (x2, y1)), ((x2, y1), (x2, y2)), ((x2, y2), (x1, y2)), ((x1, y2), (x1, y1))):
        length = int(np.hypot(b[0] - a[0], b[1] - a[1]))
        for s in range(0, length, 2 * dash):
            t0, t1 = s / max(length, 1), min(s + dash, length) / max(length, 1)
            cv2.line(image, (int(a[0] + (b[0] - a[0]) * t0), int(a[1] + (b[1] - a[1]) * t0)),
                     (int(a[0] + (b[0] - a[0]) * t1), int(a[1] + (b[1] - a[1]) * t1)), color, 2, cv2.LINE_AA)


def draw_tracks(image: np.ndarray, tracks: Sequence[Track], kept_ids: set[int]) -> None:
    """Draw tracks in place: persistent ones solid (ghosts dashed), filtered ones thin grey."""
    for t in tracks:
        if t.state in (TrackState.LOST, TrackState.TENTATIVE):
            continue
        cx, cy, w, h = t.box
        p1, p2 = (int(cx - w / 2), int(cy - h / 2)), (int(cx + w / 2), int(cy + h / 2))
        if t.track_id not in kept_ids:
            cv2.rectangle(image, p1, p2, (128, 128, 128), 1)
            continue
        color = _color(t.track_id)
        ghost = t.state == TrackState.OCCLUDED
        if ghost:
            _dashed_rect(image, p1, p2, color)
        else:
            cv2.rectangle(image, p1, p2, color, 2, cv2.LINE_AA)
        # clock-seeded ids are long: the last four digits tell the tracks of one scene apart
        label = f"#{t.track_id % 10000:04d}{' ghost' if ghost else ''}"
        cv2.putText(image, label, (p1[0], max(p1[1] - 5, 12)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, color, 2, cv2.LINE_AA)


def annotated_gif(records, world, path: Path, stride: int = 2, scale: float = 0.5) -> None:
    """Both views side by side per recorded frame (re-rendered from the deterministic sim)."""
    import imageio.v2 as imageio
    from tqdm import tqdm

    frames = []
    for rec in tqdm(records[::stride], desc="annotated GIF", unit="frame", disable=None):
        views = []
        for image, tracks, decisions in zip(world.render(rec.index), (rec.tracks_left, rec.tracks_right),
                                            (rec.decisions_left, rec.decisions_right)):
            image = image.copy()
            draw_tracks(image, tracks, {d.track_id for d in decisions if d.keep})
            views.append(image)
        pair = np.hstack(views)
        cv2.putText(pair, f"frame {rec.index}  (solid: visible, dashed: ghost, grey: filtered)", (10, 22),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2, cv2.LINE_AA)
        pair = cv2.resize(pair, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        frames.append(cv2.cvtColor(pair, cv2.COLOR_BGR2RGB))
    imageio.mimsave(path, frames, duration=1000.0 * stride / world.config.fps, loop=0)


def plot_trajectories(records, world, path: Path) -> None:
    """Top view (x, z) of ground truth and 3D tracks with ghost spans dashed, and a timeline of
    each 3D track's state."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, timeline) = plt.subplots(1, 2, figsize=(13, 5.5), gridspec_kw={"width_ratios": [1.1, 1]})
    idx = [r.index for r in records]
    gt = np.array([world.object_positions(k) for k in idx])  # (T, N, 3)
    for n in range(gt.shape[1]):
        top.plot(gt[:, n, 0], gt[:, n, 2], color="0.75", lw=4, zorder=1, label="ground truth" if n == 0 else None)
    series: dict[int, list[tuple[int, np.ndarray, TrackState]]] = {}
    for r in records:
        for t in r.tracks3d:
            series.setdefault(t.track_id, []).append((r.index, t.position, t.state))
    for tid, points in series.items():
        pos = np.array([p for _, p, _ in points])
        ghost = np.array([s == TrackState.OCCLUDED for _, _, s in points])
        color = np.array(_color(tid)[::-1]) / 255.0
        for mask, style in ((~ghost, "-"), (ghost, "--")):
            masked = np.where(mask[:, None], pos, np.nan)
            top.plot(masked[:, 0], masked[:, 2], style, color=color, lw=1.5, zorder=2)
        frames = np.array([k for k, _, _ in points])
        timeline.scatter(frames[~ghost], np.full((~ghost).sum(), tid), s=4, color=color, marker="s")
        timeline.scatter(frames[ghost], np.full(ghost.sum(), tid), s=4, color=color, marker="x", alpha=0.5)
    top.plot([], [], "k-", label="3D track (visible)")
    top.plot([], [], "k--", label="3D track (ghost)")
    top.set(xlabel="x (m, right)", ylabel="z (m, forward)", title="Top view: tracks vs ground truth")
    top.legend(loc="upper right", fontsize=8)
    top.set_aspect("equal", adjustable="datalim")
    timeline.set(xlabel="frame", ylabel="3D track id", title="Track states (squares: visible, crosses: ghost)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
