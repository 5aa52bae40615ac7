"""The demo's evaluated records (``tools/demo.build_records``) from a recorded pipeline run."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

pytest.importorskip("rclpy")

from object_permanence.core.sim.scenarios import make_scenario  # noqa: E402
from object_permanence.core.sim.world import SimWorld  # noqa: E402
from object_permanence.core.types import ObjectKind, Track, TrackState  # noqa: E402
from object_permanence.ros.recorder import StampRecord  # noqa: E402
from object_permanence.tools.demo import build_records  # noqa: E402

CONFIG = Path(__file__).resolve().parents[2] / "config" / "triangulator.yaml"
FPS = 30.0


def recorded_run(world: SimWorld, frames: int, object_id: int) -> SimpleNamespace:
    """A recorder as the demo's, holding ``frames`` frames in which one object is tracked VISIBLE in
    both views at its visible box (track id 1 left, 2 right) and nothing was published in 3D."""
    records = {}
    for k in range(frames):
        truth = world.ground_truth(k)
        rec = StampRecord(frame_index=k, gt_left=truth.left, gt_right=truth.right, tracks3d=[], latency_s=0.01)
        for camera, tid, entries in (("left", 1, truth.left), ("right", 2, truth.right)):
            g = next(e for e in entries if e.object_id == object_id)
            rec.tracks[camera] = [Track(tid, TrackState.VISIBLE, np.asarray(g.visible_box, float), np.zeros(2),
                                        np.eye(4), 0.9, g.class_id, "obj", age=k, hits=k + 1, frames_since_seen=0)]
            rec.detections[camera] = []
        records[(int(k // FPS), int(round((k % FPS) / FPS * 1e9)))] = rec  # (sec, nanosec) at 30 Hz
    return SimpleNamespace(records=records)


def test_the_unfiltered_triangulator_runs_from_the_first_recorded_frame_not_the_window():
    world = SimWorld(make_scenario("clean"), seed=0)
    seen = [g.object_id for g in world.ground_truth(0).left if g.kind == ObjectKind.OBJECT and g.visibility > 0.9
            and all(e.visibility > 0.9 for k in range(30) for e in world.ground_truth(k).right if e.object_id == g.object_id)]
    assert seen, "the clean scene has an object in full view of both cameras for 30 frames"
    params = {**yaml.safe_load(CONFIG.read_text())["triangulator"]["ros__parameters"], "refine_with_images": False}
    records, dropped = build_records(recorded_run(world, 30, seen[0]), world, params, range(20, 30), FPS)
    assert dropped == 0 and [r.index for r in records] == list(range(20, 30))
    # a triangulator started at frame 20 would publish the pair only once a second measurement
    # confirmed it; the live one had been running since frame 0, and so is the offline one now
    first = records[0].tracks3d_unfiltered
    assert len(first) == 1 and (first[0].left_track_id, first[0].right_track_id) == (1, 2)
    assert all(len(r.tracks3d_unfiltered) == 1 for r in records)


def test_saved_detections_hold_every_recorded_frame_in_order(tmp_path):
    from object_permanence.core.eval.recorded_detections import load_detections
    from object_permanence.core.types import Detection
    from object_permanence.tools.demo import save_recorded_detections

    world = SimWorld(make_scenario("clean"), seed=0)
    recorder = recorded_run(world, 12, object_id=1)
    for (sec, nsec), rec in recorder.records.items():
        rec.detections["left"] = [Detection(np.array([10.0 + rec.frame_index, 20.0, 5.0, 8.0]), 0.8, 0, "box")]
    recorder.records[(99, 0)] = StampRecord(frame_index=None)  # a stamp that is no frame of the run
    save_recorded_detections(recorder, tmp_path / "d.npz", {"scenario": "clean", "seed": 0, "first": 4})
    meta, frames = load_detections(tmp_path / "d.npz")
    assert meta["first"] == 4
    assert [f.index for f in frames] == list(range(12))
    np.testing.assert_allclose([f.stamp for f in frames], np.arange(12) / FPS, atol=1e-9)
    assert [f.detections["left"][0].box[0] for f in frames] == [10.0 + k for k in range(12)]
    assert all(f.detections["right"] == [] for f in frames)


def test_yolo_weights_need_the_yolo_detector_and_an_existing_file(tmp_path, capsys) -> None:
    from object_permanence.tools.demo import main

    with pytest.raises(SystemExit):
        main(["--yolo-weights", str(CONFIG), "--out", str(tmp_path)])
    assert "--yolo-weights needs --detector yolo" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--detector", "yolo", "--yolo-weights", str(tmp_path / "missing.onnx"), "--out", str(tmp_path)])
    assert "missing.onnx not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--detector", "yolo", "--yolo-weights", str(CONFIG), "--out", str(tmp_path)])
    assert "must be an .onnx file" in capsys.readouterr().err
