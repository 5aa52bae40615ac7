"""`make demo`: run the `pipeline` executable on a simulated scenario, record its outputs over
DDS, evaluate them against the simulator's ground truth and write metrics, plots and a GIF.

    python -m object_permanence.tools.demo --scenario cluttered --frames 300 --out out/demo
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

PACKAGE = "object_permanence"


def package_share() -> Path:
    """The installed share/ folder (config files), from the ament index."""
    from ament_index_python.packages import get_package_share_directory

    return Path(get_package_share_directory(PACKAGE))


def pipeline_executable() -> Path:
    from ament_index_python.packages import get_package_prefix

    return Path(get_package_prefix(PACKAGE)) / "lib" / PACKAGE / "pipeline"


def merged_params(config_dir: Path, overrides: dict[str, dict]) -> dict:
    """All node blocks (``<node>: {ros__parameters: ...}``) of ``config_dir/*.yaml`` merged, then
    ``overrides`` per node; other YAML files there (e.g. eval_peers.yaml) are not node parameters."""
    merged: dict = {}
    for path in sorted(config_dir.glob("*.yaml")):
        for node, block in (yaml.safe_load(path.read_text()) or {}).items():
            if isinstance(block, dict) and "ros__parameters" in block:
                merged.setdefault(node, {"ros__parameters": {}})["ros__parameters"].update(block["ros__parameters"])
    for node, values in overrides.items():
        merged.setdefault(node, {"ros__parameters": {}})["ros__parameters"].update(values)
    return merged


def stop_pipeline(proc: subprocess.Popen, timeout_s: float) -> None:
    """SIGINT the pipeline's process group (a clean ROS shutdown), SIGKILL it after ``timeout_s``."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def record(params_file: Path, run_frames: int, log_path: Path, timeout_s: float, fps: float,
           sim_time: bool = False, frame_timeout_s: float = 10.0):
    """Start the pipeline process, record until frame ``run_frames - 1`` is through (or nothing
    arrives for 2 s), stop it (SIGINT) and check that it stopped cleanly.

    ``sim_time``: the pipeline runs on simulated time that this process publishes, one frame at a
    time (:class:`~object_permanence.ros.sim_clock.SimClockDriver`): a frame is started when the
    previous one is through (or ``frame_timeout_s`` passed), so a slow detector drops nothing, and
    latency is measured on the wall clock from the frame's start."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from object_permanence.ros.recorder import PipelineRecorder
    from object_permanence.ros.runner import use_package_dds_profile
    from object_permanence.ros.sim_clock import SimClockDriver

    use_package_dds_profile()  # the recorder on loopback only, as the pipeline it records
    rclpy.init()
    clock_box: list[SimClockDriver] = []
    recorder = PipelineRecorder(latency_origin=(lambda stamp: clock_box[0].latency_origin(stamp)) if sim_time else None)
    if sim_time:
        # rclpy's timer period in ns is int(1e9 / fps): stepping by exactly that fires it once per step
        clock_box.append(SimClockDriver(recorder, period_ns=int(1e9 / fps)))
    executor = SingleThreadedExecutor()
    executor.add_node(recorder)
    with open(log_path, "w") as log:
        proc = subprocess.Popen([str(pipeline_executable()), "--ros-args", "--params-file", str(params_file)],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        from tqdm import tqdm

        deadline = time.monotonic() + timeout_s
        last = run_frames - 1
        step_started = last_publish = time.monotonic()
        with tqdm(total=run_frames, desc="frames through the pipeline", unit="frame", disable=None) as bar:
            while time.monotonic() < deadline:
                executor.spin_once(timeout_sec=0.01 if sim_time else 0.1)
                complete = recorder.complete()
                newest = complete[-1][1].frame_index if complete else -1
                bar.update(newest + 1 - bar.n)
                if proc.poll() is not None:
                    raise RuntimeError(f"pipeline exited early with code {proc.returncode}; see {log_path}")
                if newest >= last or (complete and time.monotonic() - recorder.last_message_time > 2.0
                                      and not sim_time):
                    break
                if sim_time:
                    driver = clock_box[0]
                    through = recorder.records.get(driver.stamp)
                    waited = time.monotonic() - step_started
                    if through is not None and through.tracks3d is not None or (complete and waited > frame_timeout_s):
                        driver.advance()
                        step_started = last_publish = time.monotonic()
                    elif waited > 0.1 * (1 + int(waited / 0.1)) - 0.1:
                        driver.publish()  # until discovery is done the first publications may be lost
    finally:
        stop_pipeline(proc, timeout_s=10.0)
        executor.shutdown()
        recorder.destroy_node()
        rclpy.shutdown()
    if proc.returncode != 0:
        print(f"warning: the pipeline did not stop cleanly (exit code {proc.returncode}); see {log_path}",
              file=sys.stderr)
    return recorder


def build_records(recorder, world, triangulator_params: dict, frames: range, fps: float):
    """One FrameRecord per frame index in ``frames``, dropped frames included; returns
    ``(records, dropped)`` with the number of frames the pipeline did not deliver whole.

    Ground truth comes from the deterministic simulator (the same the capture node published);
    whatever the pipeline published for the frame's stamp fills the rest, and a frame it dropped
    (nothing published, or not every output) keeps empty outputs, so it counts against the
    pipeline instead of leaving the denominator. The unfiltered 3D tracks are computed offline by
    the same triangulator core and configuration on all confirmed tracks (and the same images,
    re-rendered), run from the first recorded frame as the pipeline's triangulator was: one
    started cold at the window's first frame lacked the 3D tracks (ghosts above all, which cannot
    start one) that the live output carried into the window, and counted them against the filter.
    The records hold the confirmed tracks (as :func:`core.eval.tracking_eval.build_records`): a
    world model publishing TENTATIVE ones for the filter is judged on what it confirms."""
    from object_permanence.core.eval.metrics import FrameRecord
    from object_permanence.core.eval.tracking_eval import confirmed
    from object_permanence.core.triangulation import StereoTriangulator
    from object_permanence.core.triangulator_config import TriangulatorConfig
    from object_permanence.ros.params import build_config

    config = build_config(TriangulatorConfig, triangulator_params)
    refine = triangulator_params.get("refine_with_images", True)
    unfiltered = StereoTriangulator(world.rig.P_left, world.rig.P_right, config)
    published = {r.frame_index: ((sec, nsec), r) for (sec, nsec), r in recorder.records.items()
                 if r.frame_index is not None}
    # a dropped frame's stamp: the capture timer's, extrapolated from the first delivered frame
    k0, ((sec0, nsec0), _) = min(published.items()) if published else (0, ((0, 0), None))
    records, dropped = [], 0

    def triangulate_unfiltered(k: int, r, stamp: float) -> list:
        return unfiltered.step(confirmed(r.tracks["left"]), confirmed(r.tracks["right"]), stamp,
                               world.render(k) if refine else None, (world.rig.width, world.rig.height))

    for k in sorted(i for i in published if i < frames.start):  # the frames before the window: warm-up only
        (sec, nsec), r = published[k]
        if len(r.tracks) == 2:
            triangulate_unfiltered(k, r, sec + nsec * 1e-9)
    for k in frames:
        truth = world.ground_truth(k)
        (sec, nsec), r = published.get(k, ((sec0, nsec0), None))
        stamp = sec + nsec * 1e-9 + (0.0 if r is not None else (k - k0) / fps)
        record = FrameRecord(index=k, stamp=stamp, gt_left=truth.left, gt_right=truth.right)
        if r is not None and len(r.tracks) == 2 and r.tracks3d is not None:
            record.detections_left = r.detections.get("left", [])
            record.detections_right = r.detections.get("right", [])
            record.tracks_left, record.tracks_right = confirmed(r.tracks["left"]), confirmed(r.tracks["right"])
            record.decisions_left = r.decisions.get("left", [])
            record.decisions_right = r.decisions.get("right", [])
            record.tracks3d = r.tracks3d
            record.tracks3d_unfiltered = triangulate_unfiltered(k, r, stamp)
            record.latency_s = r.latency_s
        else:
            dropped += 1
        records.append(record)
    return records, dropped


def save_recorded_detections(recorder, path: Path, meta: dict) -> None:
    """Every frame the recorder holds (frame index order) with its detections, to ``path``
    (:mod:`object_permanence.core.eval.recorded_detections`)."""
    from object_permanence.core.eval.recorded_detections import RecordedFrame, save_detections

    frames = sorted((RecordedFrame(r.frame_index, sec + nsec * 1e-9, dict(r.detections))
                     for (sec, nsec), r in recorder.records.items() if r.frame_index is not None),
                    key=lambda f: f.index)
    save_detections(path, frames, meta)


def main(argv: list[str] | None = None) -> int:
    from object_permanence.core.eval.export import export_raw_outputs
    from object_permanence.core.eval.metrics import evaluate_with_counts
    from object_permanence.core.sim.scenarios import SCENARIOS, make_scenario
    from object_permanence.core.sim.world import SimWorld
    from object_permanence.ros.shipped import shipped_model
    from object_permanence.tools.visualize import annotated_gif, plot_trajectories

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", default="cluttered", choices=sorted(SCENARIOS))
    parser.add_argument("--frames", type=int, default=300, help="frames to evaluate (a few more are run)")
    parser.add_argument("--seed", type=int, default=1000,
                        help="scene seed (default 1000; seeds 0-999 are for tuning and training, "
                        "reported figures use seeds >= 1000)")
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--out", type=Path, default=Path("out/demo"))
    parser.add_argument("--config-dir", type=Path, default=None, help="default: the installed config/")
    parser.add_argument("--gif-frames", type=int, default=150, help="frames in the annotated GIF (0: none)")
    parser.add_argument("--detector", choices=("sim", "yolo"), default="sim",
                        help="sim: the detector simulator (realistic) over the ground truth; yolo: the shipped YOLO "
                        "trained on the simulated world (int8 models/detector/sim_yolo_int8.onnx, ONNX Runtime) on the rendered "
                        "pixels (implies --pace sim unless given)")
    parser.add_argument("--yolo-weights", type=Path, default=None,
                        help="--detector yolo: the .onnx to run (default: the shipped int8 quantization "
                        "models/detector/sim_yolo_int8.onnx, chosen on tuning scenes: as accurate for the tracker, "
                        "faster; models/detector/sim_yolo.onnx is the float model)")
    parser.add_argument("--save-detections", action="store_true",
                        help="also write <out>/detections.npz: every recorded frame's detections, both cameras, "
                        "for tools/replay_tracking (the world model again on exactly this input)")
    parser.add_argument("--pace", choices=("wall", "sim"), default=None,
                        help="wall: the capture node publishes at --fps on the wall clock (frames the pipeline "
                        "cannot keep up with are dropped and count against it); sim: simulated time advances one "
                        "frame when the previous one is through (nothing dropped on a slow CPU; latency measured "
                        "on the wall clock from each frame's start)")
    args = parser.parse_args(argv)
    if args.pace is None:
        args.pace = "sim" if args.detector == "yolo" else "wall"
    if args.yolo_weights is not None:
        if args.detector != "yolo":
            parser.error("--yolo-weights needs --detector yolo")
        if args.yolo_weights.suffix != ".onnx":
            parser.error(f"--yolo-weights must be an .onnx file (the detector node's onnxruntime backend), "
                         f"got {args.yolo_weights}")
        if not args.yolo_weights.is_file():
            parser.error(f"--yolo-weights {args.yolo_weights} not found")
        args.yolo_weights = args.yolo_weights.resolve()
    if args.frames < 1:
        parser.error(f"--frames must be >= 1, got {args.frames}")
    if args.seed < 1000:
        print(f"warning: seed {args.seed} is a tuning seed (0-999); held-out figures need --seed >= 1000",
              file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    # The recorder may miss the first frames while DDS discovery runs: a 3 s margin is run first.
    run_frames = args.frames + int(3 * args.fps)
    overrides = {
        "stereo_capture": {"source": "sim", "scenario": args.scenario, "seed": args.seed, "fps": args.fps,
                           "max_frames": run_frames, "publish_ground_truth": True},
        "world_model": {"events_jsonl": str((args.out / "events.jsonl").resolve())},
        # the detector simulator's noise is seeded with the scene: one held-out seed for both
        "detector": {"backend": "simulated", "sim.seed": args.seed} if args.detector == "sim" else
        {"backend": "onnxruntime", "weights": str(args.yolo_weights or shipped_model("detector/sim_yolo_int8.onnx"))},
    }
    (args.out / "events.jsonl").unlink(missing_ok=True)
    params_file = args.out / "params.yaml"
    params = merged_params(args.config_dir or package_share() / "config", overrides)
    if args.pace == "sim":
        for block in params.values():
            block["ros__parameters"]["use_sim_time"] = True
    params_file.write_text(yaml.safe_dump(params))
    print(f"running `pipeline` on scenario '{args.scenario}' (seed {args.seed}), {run_frames} frames at "
          f"{args.fps:g} Hz ({args.pace} time, {args.detector} detector); ROS_DOMAIN_ID={os.environ.get('ROS_DOMAIN_ID')}", flush=True)
    timeout_s = 30.0 + (3.0 * run_frames / args.fps if args.pace == "wall" else 2.0 * run_frames)
    recorder = record(params_file, run_frames, args.out / "pipeline.log", timeout_s=timeout_s, fps=args.fps,
                      sim_time=args.pace == "sim")
    world = SimWorld(make_scenario(args.scenario), seed=args.seed)
    # Evaluate a fixed window, the last --frames frames: the same frames every run, whatever
    # DDS discovery cost at start-up (the pipeline itself sees every frame from 0).
    first = run_frames - args.frames
    records, dropped = build_records(recorder, world, params["triangulator"]["ros__parameters"],
                                     range(first, run_frames), args.fps)
    if dropped == len(records):
        print(f"no complete frame was recorded; see {args.out / 'pipeline.log'}", file=sys.stderr)
        return 1
    if args.save_detections:
        save_recorded_detections(recorder, args.out / "detections.npz",
                                 {"scenario": args.scenario, "seed": args.seed, "fps": args.fps, "first": first,
                                  "frames": run_frames, "detector": args.detector})
    metrics, counts = evaluate_with_counts(records)
    counts["frames_dropped"] = dropped
    export_raw_outputs(records, args.out, f"{args.scenario}-{args.seed}", (world.rig.width, world.rig.height),
                       args.fps)
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2, allow_nan=False) + "\n")
    (args.out / "counts.json").write_text(json.dumps(counts, indent=2) + "\n")
    (args.out / "explanations.jsonl").write_text("".join(
        json.dumps({"camera": e.camera, "track_id": e.track_id, "kept": e.kept, "score": round(e.score, 3),
                    "source": e.source, "text": e.text}) + "\n" for e in recorder.explanations))
    plot_trajectories(records, world, args.out / "trajectories.png")
    if args.gif_frames:
        annotated_gif(records[: args.gif_frames], world, args.out / "demo.gif")
    print_summary(metrics, counts, len(recorder.explanations), args.out)
    return 0


def print_summary(metrics: dict, counts: dict, n_explanations: int, out: Path) -> None:
    from object_permanence.core.eval.spurious import CAUSES as SPURIOUS_CAUSES

    rows = [
        ("frames evaluated", f"{metrics['frames']:.0f}"),
        ("IDF1 / MOTA / HOTA", f"{metrics['idf1']:.3f} / {metrics['mota']:.3f} / {metrics['hota']:.3f}"),
        ("ID switches per 100 frames", f"{metrics['id_switches_per_100_frames']:.2f}"),
        ("occlusion recovery", f"{metrics['occlusion_recovery_rate']:.2f}"),
        ("ghost precision", f"{metrics['ghost_precision']:.3f}"),
        ("reacquire error (px)", f"{metrics['reacquire_error_px']:.1f}"),
        ("spurious 3D points unfiltered -> filtered",
         f"{metrics['spurious_points_unfiltered']:.0f} -> {metrics['spurious_points_filtered']:.0f}"),
        ("  by cause, unfiltered -> filtered", ", ".join(
            f"{c} {counts[f'spurious_unfiltered_{c}']} -> {counts[f'spurious_filtered_{c}']}"
            for c in SPURIOUS_CAUSES if counts[f"spurious_unfiltered_{c}"] or counts[f"spurious_filtered_{c}"])
         or "none"),
        ("persistence precision / recall",
         f"{metrics['persistence_precision']:.3f} / {metrics['persistence_recall']:.3f}"),
        ("3D position RMSE (m): identity-matched / per frame / per frame at 3 m",
         f"{metrics['position_rmse_m']:.3f} / {counts['position_rmse_per_frame_m']:.3f} / "
         f"{counts['position_rmse_per_frame_3m_m']:.3f} ({counts['position_rmse_per_frame_unlinked']} "
         "visible points unscored: left track on no object)"),
        ("latency p50 / p95 (ms)", f"{metrics['latency_ms_p50']:.1f} / {metrics['latency_ms_p95']:.1f}"),
        ("explanations published", f"{n_explanations}"),
    ]
    width = max(len(r[0]) for r in rows)
    print("\nobject_permanence demo — " + str(out))
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    print(f"  (denominators in {out / 'counts.json'}; plots: trajectories.png, demo.gif)")


if __name__ == "__main__":
    sys.exit(main())
