"""`make bench` (world model): step time of our world model against ``trackers``' ByteTrack, SORT
and OC-SORT on the same detections, in the same run.

For each n (default 10, 100, 500): n objects move with constant velocity (random directions and
speeds, 20-90 px boxes, in a field that grows with n so the density stays alike) and are detected
every frame with Gaussian jitter, so each frame has n detections (the same ones for every tracker).
Each tracker gets warm-up frames, then its step is timed over ``--frames`` frames (median):

* ``ours``: :meth:`WorldModel.step` on a ``list[Detection]`` (with ``--embedding-dim`` appearance
  embeddings, as the detector node sends them; 0 for none), publishing ``Track`` objects, with the
  shipped configuration (``<config-dir>/world_model.yaml``, as the node and ``make eval`` build it);
  ``ours[<model>]`` the same with ``motion_model=<model>`` for each of ``--motion-models`` (default
  none);
* ``bytetrack``, ``sort``, ``ocsort``: the peer's ``update`` on a ``supervision.Detections`` built
  beforehand (library defaults, 30 fps), returning its arrays.

The trackers take turns over ``--rounds`` rounds (each round a fresh tracker of each, warm-up
included), and each median is over the timed frames of every round: a shared 2-core machine has
slow spells lasting seconds (the same work taking up to twice as long), and taking turns lets
them fall on every tracker alike instead of on whichever ran during one.

Writes ``<out>/world_model.json``: rows ``tracker``, ``n``, ``step_ms_median``,
``step_ms_round_medians`` (one per round: the spread) and ``ratio_to_ours`` (the peer's median
over ours at that n: > 1 means ours is faster), plus the load average before and after; prints a
table. Timings depend on the machine's load: run it on a quiet machine.

    python -m object_permanence.tools.bench_world_model --out out/bench [--sizes 10,100,500]
        [--config-dir config]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

import numpy as np

from object_permanence.core.eval.peers import _trackers_classes
from object_permanence.core.motion_models import BASE_MODELS
from object_permanence.core.types import Detection
from object_permanence.core.world_model import WorldModel, WorldModelConfig
from object_permanence.tools.eval_tracking import shipped_world_model_config

FPS = 30.0
PEERS = ("bytetrack", "sort", "ocsort")


def make_frames(n: int, frames: int, embedding_dim: int, seed: int = 0) -> list[np.ndarray]:
    """Detections of n constant-velocity objects for each frame: a list of (n, 4) boxes
    ``cx, cy, w, h`` px, with the per-object embedding index implied by the row."""
    rng = np.random.default_rng(seed)
    side = 400.0 * np.sqrt(n)  # field side (px): about 1600 px² per object
    pos = rng.uniform(0, side, (n, 2))
    vel = rng.uniform(-120, 120, (n, 2))  # px/s
    size = rng.uniform(20, 90, (n, 2))
    out = []
    for k in range(frames):
        xy = pos + vel * k / FPS + rng.normal(0, 1.0, (n, 2))  # x = x0 + v t + noise
        wh = size + rng.normal(0, 0.5, (n, 2))
        out.append(np.column_stack([xy, wh]))
    return out


def _embeddings(n: int, dim: int, seed: int = 1) -> np.ndarray | None:
    if dim <= 0:
        return None
    e = np.random.default_rng(seed).random((n, dim)).astype(np.float32)
    return e / np.linalg.norm(e, axis=1, keepdims=True)


def time_ours(frames: list[np.ndarray], embeddings: np.ndarray | None, warmup: int,
              config: WorldModelConfig) -> list[float]:
    """Step times (ms) of our world model with ``config`` after ``warmup`` frames."""
    wm = WorldModel(config)
    inputs = [[Detection(box=b, score=0.9, class_id=0, class_name="thing",
                         embedding=None if embeddings is None else embeddings[i])
               for i, b in enumerate(boxes)] for boxes in frames]
    times = []
    for k, dets in enumerate(inputs):
        t0 = time.perf_counter()
        wm.step(k / FPS, dets)
        if k >= warmup:
            times.append((time.perf_counter() - t0) * 1e3)
    return times


def time_peer(name: str, frames: list[np.ndarray], warmup: int) -> list[float]:
    """Step times (ms) of one ``trackers`` peer after ``warmup`` frames."""
    import supervision as sv

    tracker = _trackers_classes()[name](frame_rate=FPS)
    inputs = []
    for boxes in frames:
        xyxy = np.concatenate([boxes[:, :2] - boxes[:, 2:] / 2, boxes[:, :2] + boxes[:, 2:] / 2], axis=1)
        inputs.append(sv.Detections(xyxy=xyxy.astype(np.float32), confidence=np.full(len(boxes), 0.9, np.float32),
                                    class_id=np.zeros(len(boxes), int)))
    times = []
    for k, dets in enumerate(inputs):
        t0 = time.perf_counter()
        tracker.update(dets)
        if k >= warmup:
            times.append((time.perf_counter() - t0) * 1e3)
    return times


def run(sizes: list[int], frames: int, warmup: int, embedding_dim: int, config: WorldModelConfig,
        motion_models: tuple[str, ...] = (), rounds: int = 1) -> list[dict]:
    """The benchmark rows, ours (``config``) first for each n, then ours with each of
    ``motion_models``, then the peers; the trackers take turns over ``rounds`` rounds (module
    docstring)."""
    rows = []
    for n in sizes:
        boxes = make_frames(n, warmup + frames, embedding_dim)
        embeddings = _embeddings(n, embedding_dim)
        timers = {"ours": lambda: time_ours(boxes, embeddings, warmup, config)}
        for model in motion_models:
            config_m = dataclasses.replace(config, motion_model=model)
            timers[f"ours[{model}]"] = lambda config_m=config_m: time_ours(boxes, embeddings, warmup, config_m)
        for name in PEERS:
            timers[name] = lambda name=name: time_peer(name, boxes, warmup)
        times: dict[str, list[list[float]]] = {name: [] for name in timers}
        for _ in range(rounds):
            for name, timer in timers.items():
                times[name].append(timer())
        medians = {name: float(np.median(np.concatenate(t))) for name, t in times.items()}
        for name, t in times.items():
            rows.append({"tracker": name, "n": n, "step_ms_median": round(medians[name], 4),
                         "step_ms_round_medians": [round(float(np.median(r)), 4) for r in t],
                         "ratio_to_ours": round(medians[name] / medians["ours"], 3)})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="out/bench", help="output folder (default out/bench)")
    parser.add_argument("--sizes", default="10,100,500", help="tracks x detections per frame, comma-separated")
    parser.add_argument("--frames", type=int, default=60, help="timed frames per tracker and size (>= 50)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed frames first (default 10)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds the trackers take turns over (default 5)")
    parser.add_argument("--embedding-dim", type=int, default=128,
                        help="appearance embedding length given to ours (default 128, the detector's; 0: none)")
    parser.add_argument("--motion-models", default="",
                        help=f"also time ours with these motion models, comma-separated from {','.join(BASE_MODELS)}")
    parser.add_argument("--config-dir", type=Path, default=Path("config"),
                        help="folder of world_model.yaml, the configuration ours runs (default config)")
    args = parser.parse_args(argv)
    models = tuple(m.strip() for m in args.motion_models.split(",") if m.strip())
    if any(m not in BASE_MODELS for m in models):
        parser.error(f"--motion-models must be a comma-separated subset of {','.join(BASE_MODELS)}, "
                     f"got {args.motion_models!r}")
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if not sizes or min(sizes) < 1:
        parser.error(f"--sizes must be positive integers, got {args.sizes!r}")
    if args.frames < 50:
        parser.error(f"--frames must be >= 50, got {args.frames}")
    if args.warmup < 0 or args.embedding_dim < 0:
        parser.error("--warmup and --embedding-dim must be >= 0")
    if args.rounds < 1:
        parser.error(f"--rounds must be >= 1, got {args.rounds}")
    try:
        config = shipped_world_model_config(args.config_dir)
    except (OSError, ValueError) as exc:
        parser.error(f"--config-dir {args.config_dir}: {exc}")
    load_before = os.getloadavg()
    rows = run(sizes, args.frames, args.warmup, args.embedding_dim, config, models, args.rounds)
    load_after = os.getloadavg()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    doc = {"rows": rows, "frames": args.frames, "warmup": args.warmup, "rounds": args.rounds,
           "embedding_dim": args.embedding_dim, "config": str(args.config_dir / "world_model.yaml"),
           "load_average_1m": {"before": load_before[0], "after": load_after[0]}, "cpu_count": os.cpu_count()}
    (out / "world_model.json").write_text(json.dumps(doc, indent=2) + "\n")
    print(f"{'tracker':<14} {'n':>5} {'step_ms_median':>15} {'ratio_to_ours':>14}  round medians")
    for r in rows:
        spread = " ".join(f"{v:.3f}" for v in r["step_ms_round_medians"])
        print(f"{r['tracker']:<14} {r['n']:>5} {r['step_ms_median']:>15.3f} {r['ratio_to_ours']:>14.2f}  {spread}")
    print(f"load average (1 min) before {load_before[0]:.2f}, after {load_after[0]:.2f}; wrote {out / 'world_model.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
