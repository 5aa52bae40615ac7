"""`make bench` (pipeline part): the composed ``pipeline`` executable on the simulated scene at a
requested rate — how many frames a second it delivers on ``tracks3d``, its capture-to-``tracks3d``
latency and whether its memory stays flat — with the demo's parameters (``tools/demo.py``).

    python -m object_permanence.tools.bench_pipeline --frames 6000 --runs 3 --out out/bench

Each run starts the installed ``pipeline`` in its own process (as ``make demo`` does) and a small
recorder in this one that subscribes to ``tracks3d`` only, so that the measurement costs the
machine as little as possible. Per run:

* latency of a frame = wall time its Track3DArray arrived - its stamp (the capture node stamps a
  simulated frame with its scene time, the first frame's clock time + k periods, at or before the
  tick that renders it, so rendering and a late tick are included; the recorder's own delay is too);
* delivered frames a second = distinct ``tracks3d`` stamps received / the stamp span they cover
  (a frame the pipeline dropped, or one the capture skipped because it fell behind the clock,
  lowers it);
* RSS growth = the least-squares slope of the process's VmRSS (``/proc/<pid>/status``, sampled
  every ``--rss-period`` s) against frames delivered, after the first ``--rss-warmup-s`` seconds
  (60), per 1000 frames: a leak, not the filling of the pipeline's bounded memories, which fill
  during the first 30 s (the world model's gallery keeps LOST tracks ``gallery_retention_s`` = 30 s,
  the persistence filter a missing track's history ``forget_after_frames`` = 900 frames). The slope
  after the first ``--warmup-s`` seconds, which includes that filling, is kept beside it
  (``rss_growth_mb_per_1000_frames_incl_fill``).

The file holds the median over the runs of each figure and every run's own figures.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import yaml

from object_permanence.tools.demo import merged_params, package_share, pipeline_executable, stop_pipeline

KEYS = ("fps_requested", "fps_delivered", "latency_ms_p50", "latency_ms_p95", "rss_growth_mb_per_1000_frames")


@dataclass
class RunResult:
    """The figures of one run (see the module docstring for their definitions)."""

    frames_delivered: int
    fps_delivered: float
    latency_ms_p50: float
    latency_ms_p95: float
    rss_growth_mb_per_1000_frames: float
    rss_growth_mb_per_1000_frames_incl_fill: float
    rss_mb_start: float
    rss_mb_end: float


def rss_mb(pid: int) -> float | None:
    """Resident set size (VmRSS) of process ``pid`` in MB (10^6 bytes); None once it is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024 / 1e6  # kB -> MB
    except OSError:
        return None
    return None


def machine() -> dict:
    """The CPUs this ran on: count and model (from /proc/cpuinfo where there is one)."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu_model": model, "load_average_1min_at_start": os.getloadavg()[0]}


def fps_from_stamps(stamps_s: np.ndarray) -> float:
    """Frames a second that ``stamps_s`` (distinct capture stamps of delivered frames, s) cover:
    ``(n - 1) / (last - first)``."""
    stamps_s = np.unique(stamps_s)
    if stamps_s.size < 2 or stamps_s[-1] <= stamps_s[0]:
        return 0.0
    return float((stamps_s.size - 1) / (stamps_s[-1] - stamps_s[0]))


def rss_slope_mb_per_1000(frames: np.ndarray, rss: np.ndarray) -> float:
    """Least-squares slope of RSS (MB) against frames delivered, per 1000 frames (NaN with < 2
    distinct frame counts)."""
    if np.unique(frames).size < 2:
        return float("nan")
    slope, _ = np.polyfit(frames.astype(np.float64), rss.astype(np.float64), 1)  # rss ~ slope * frames + b
    return float(1000.0 * slope)


def run_once(params_file: Path, run_frames: int, log_path: Path, timeout_s: float, warmup_s: float,
             rss_warmup_s: float, rss_period_s: float, profile: Path | None = None) -> RunResult:
    """One run of the pipeline process until it has published frame ``run_frames - 1`` on
    ``tracks3d`` (or nothing arrived for 3 s); returns its figures."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node

    from object_permanence.msg import Track3DArray
    from object_permanence.ros.qos import RELIABLE_QOS
    from object_permanence.ros.runner import use_package_dds_profile

    use_package_dds_profile()
    rclpy.init()
    node = Node("bench_pipeline_recorder")
    arrivals: list[tuple[float, float]] = []  # (stamp s, arrival s), wall clock

    def on_tracks3d(msg: Track3DArray) -> None:
        arrivals.append((msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9, time.time()))

    node.create_subscription(Track3DArray, "tracks3d", on_tracks3d, RELIABLE_QOS)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    command = [str(pipeline_executable()), "--ros-args", "--params-file", str(params_file)]
    if profile is not None:  # the same entry point under cProfile (writes its stats at a clean stop)
        command = [sys.executable, "-m", "cProfile", "-o", str(profile)] + command
    with open(log_path, "w") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    samples: list[tuple[float, int, float]] = []  # (time s, frames delivered, RSS MB)
    try:
        from tqdm import tqdm

        start = time.monotonic()
        deadline = start + timeout_s
        next_sample = start
        with tqdm(total=run_frames, desc="frames on tracks3d", unit="frame", disable=None) as bar:
            while time.monotonic() < deadline:
                executor.spin_once(timeout_sec=0.05)
                now = time.monotonic()
                if now >= next_sample:
                    rss = rss_mb(proc.pid)
                    if rss is not None:
                        samples.append((now - start, len(arrivals), rss))
                    next_sample = now + rss_period_s
                bar.update(len(arrivals) - bar.n)
                if proc.poll() is not None:
                    raise RuntimeError(f"pipeline exited early with code {proc.returncode}; see {log_path}")
                if len(arrivals) >= run_frames or (arrivals and time.time() - arrivals[-1][1] > 3.0):
                    break
    finally:
        stop_pipeline(proc, timeout_s=20.0)
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown()
    if not arrivals:
        raise RuntimeError(f"no tracks3d message arrived; see {log_path}")
    stamps, arrived = (np.array(v) for v in zip(*arrivals))
    t0 = stamps.min() + warmup_s  # steady state: frames captured after the warm-up
    steady = stamps >= t0
    if steady.sum() < 2:
        raise RuntimeError(f"fewer than 2 frames after the {warmup_s:g} s warm-up; run more frames")
    latency_ms = 1e3 * (arrived[steady] - stamps[steady])
    sample = np.array(samples).reshape(-1, 3)
    late, settled = sample[:, 0] >= warmup_s, sample[:, 0] >= rss_warmup_s
    return RunResult(
        frames_delivered=int(steady.sum()), fps_delivered=fps_from_stamps(stamps[steady]),
        latency_ms_p50=float(np.percentile(latency_ms, 50)), latency_ms_p95=float(np.percentile(latency_ms, 95)),
        rss_growth_mb_per_1000_frames=rss_slope_mb_per_1000(sample[settled, 1], sample[settled, 2]),
        rss_growth_mb_per_1000_frames_incl_fill=rss_slope_mb_per_1000(sample[late, 1], sample[late, 2]),
        rss_mb_start=float(sample[settled, 2][0]) if settled.any() else float("nan"),
        rss_mb_end=float(sample[-1, 2]) if len(sample) else float("nan"))


def main(argv: list[str] | None = None) -> int:
    from object_permanence.core.sim.scenarios import SCENARIOS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=6000,
                        help="frames per run (6000 at 30 Hz: 140 s after the RSS warm-up for the RSS figure)")
    parser.add_argument("--runs", type=int, default=3, help="runs; the file holds each figure's median")
    parser.add_argument("--fps", type=float, default=30.0, help="requested capture rate (Hz)")
    parser.add_argument("--scenario", default="cluttered", choices=sorted(SCENARIOS))
    parser.add_argument("--seed", type=int, default=1000, help="scene and detector-simulator seed")
    parser.add_argument("--warmup-s", type=float, default=5.0,
                        help="seconds at the start of each run left out of every figure (DDS discovery, imports)")
    parser.add_argument("--rss-warmup-s", type=float, default=60.0,
                        help="seconds at the start of each run left out of the RSS slope (the bounded memories fill "
                             "during the first 30 s)")
    parser.add_argument("--rss-period-s", type=float, default=1.0, help="RSS sampling period (s)")
    parser.add_argument("--out", type=Path, default=Path("out/bench"))
    parser.add_argument("--config-dir", type=Path, default=None, help="default: the installed config/")
    parser.add_argument("--profile", type=Path, default=None,
                        help="also write cProfile stats of the pipeline process of each run to PROFILE.<run>")
    args = parser.parse_args(argv)
    if args.frames < 2:
        parser.error(f"--frames must be >= 2, got {args.frames}")
    if args.runs < 1:
        parser.error(f"--runs must be >= 1, got {args.runs}")
    if not args.fps > 0.0:
        parser.error(f"--fps must be > 0, got {args.fps}")
    if args.frames / args.fps <= max(args.warmup_s, args.rss_warmup_s) + 10.0:
        parser.error(f"--frames {args.frames} at {args.fps:g} Hz do not reach 10 s past the {args.warmup_s:g} s "
                     f"warm-up and the {args.rss_warmup_s:g} s RSS warm-up")
    args.out.mkdir(parents=True, exist_ok=True)
    overrides = {  # as make demo runs it (tools/demo.py), without its recorder's extra subscriptions
        "stereo_capture": {"source": "sim", "scenario": args.scenario, "seed": args.seed, "fps": args.fps,
                           "max_frames": args.frames, "publish_ground_truth": True},
        "world_model": {"events_jsonl": str((args.out / "pipeline_events.jsonl").resolve())},
        "detector": {"backend": "simulated", "sim.seed": args.seed},
    }
    params_file = args.out / "pipeline_params.yaml"
    params_file.write_text(yaml.safe_dump(merged_params(args.config_dir or package_share() / "config", overrides)))
    host = machine()
    runs: list[RunResult] = []
    for i in range(args.runs):
        (args.out / "pipeline_events.jsonl").unlink(missing_ok=True)
        print(f"run {i + 1}/{args.runs}: `pipeline` on '{args.scenario}' (seed {args.seed}), {args.frames} frames at "
              f"{args.fps:g} Hz; load average {os.getloadavg()[0]:.2f}", flush=True)
        profile = args.profile.with_suffix(f".{i}") if args.profile else None
        result = run_once(params_file, args.frames, args.out / f"pipeline_run{i}.log",
                          timeout_s=60.0 + 3.0 * args.frames / args.fps, warmup_s=args.warmup_s,
                          rss_warmup_s=args.rss_warmup_s, rss_period_s=args.rss_period_s, profile=profile)
        runs.append(result)
        print(f"  {result.fps_delivered:.2f} fps, latency p50 {result.latency_ms_p50:.1f} ms p95 "
              f"{result.latency_ms_p95:.1f} ms, RSS {result.rss_mb_start:.1f} -> {result.rss_mb_end:.1f} MB "
              f"({result.rss_growth_mb_per_1000_frames:+.2f} MB / 1000 frames after {args.rss_warmup_s:g} s; "
              f"{result.rss_growth_mb_per_1000_frames_incl_fill:+.2f} after {args.warmup_s:g} s)", flush=True)
    report = {
        "fps_requested": args.fps,
        "fps_delivered": float(np.median([r.fps_delivered for r in runs])),
        "latency_ms_p50": float(np.median([r.latency_ms_p50 for r in runs])),
        "latency_ms_p95": float(np.median([r.latency_ms_p95 for r in runs])),
        "rss_growth_mb_per_1000_frames": float(np.median([r.rss_growth_mb_per_1000_frames for r in runs])),
        "rss_growth_mb_per_1000_frames_incl_fill": float(np.median(
            [r.rss_growth_mb_per_1000_frames_incl_fill for r in runs])),
        "warmup_s": args.warmup_s,
        "rss_warmup_s": args.rss_warmup_s,
        "runs": [asdict(r) for r in runs],
        "frames": args.frames,
        "scenario": args.scenario,
        "seed": args.seed,
        "machine": host,
    }
    (args.out / "pipeline.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"{args.out / 'pipeline.json'}: " + ", ".join(f"{k} {report[k]:.2f}" for k in KEYS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
