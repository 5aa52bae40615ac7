"""A run's recorded detections: saved and loaded as they were, and the world model replayed on them."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from object_permanence.core.eval.recorded_detections import RecordedFrame, load_detections, save_detections
from object_permanence.core.sim.scenarios import make_scenario
from object_permanence.core.sim.world import SimWorld
from object_permanence.core.types import Detection, ObjectKind
from object_permanence.tools import replay_tracking
from object_permanence.tools.eval_tracking import shipped_world_model_config
from object_permanence.tools.replay_tracking import suppress


def _det(cx: float, score: float, emb: bool = True, name: str = "box") -> Detection:
    return Detection(box=np.array([cx, 100.0, 20.0, 40.0]), score=score, class_id=0, class_name=name,
                     embedding=np.arange(4, dtype=np.float32) + cx if emb else None)


def test_detections_round_trip(tmp_path) -> None:
    frames = [RecordedFrame(5, 0.5, {"left": [_det(10.0, 0.9), _det(50.0, 0.4, emb=False, name="ball")],
                                     "right": []}),
              RecordedFrame(6, 0.6, {"left": [], "right": [_det(12.0, 0.8)]})]
    save_detections(tmp_path / "d.npz", frames, {"scenario": "clean", "seed": 3})
    meta, loaded = load_detections(tmp_path / "d.npz")
    assert meta == {"scenario": "clean", "seed": 3}
    assert [(f.index, f.stamp) for f in loaded] == [(5, 0.5), (6, 0.6)]
    for before, after in zip(frames, loaded):
        for cam in ("left", "right"):
            assert len(before.detections[cam]) == len(after.detections[cam])
            for a, b in zip(before.detections[cam], after.detections[cam]):
                np.testing.assert_array_equal(a.box, b.box)
                assert (a.score, a.class_id, a.class_name) == (b.score, b.class_id, b.class_name)
                assert (a.embedding is None) == (b.embedding is None)
                if a.embedding is not None:
                    np.testing.assert_array_equal(a.embedding, b.embedding)
    mixed = [RecordedFrame(0, 0.0, {"left": [_det(1.0, 0.9), Detection(np.ones(4), 0.5, 0, embedding=np.ones(3))]})]
    with pytest.raises(ValueError, match="several lengths"):
        save_detections(tmp_path / "bad.npz", mixed, {})


def test_suppress_drops_weaker_overlapping_and_low_scoring_boxes() -> None:
    dets = [_det(100.0, 0.5), _det(104.0, 0.9), _det(200.0, 0.3), _det(300.0, 0.2)]  # 0 and 1 overlap (IoU 0.67)
    assert [d.score for d in suppress(dets)] == [0.5, 0.9, 0.3, 0.2]
    assert [d.score for d in suppress(dets, nms_iou=0.5)] == [0.9, 0.3, 0.2]  # input order kept
    assert [d.score for d in suppress(dets, nms_iou=0.7)] == [0.5, 0.9, 0.3, 0.2]  # 0.67 <= 0.7: both stay
    assert [d.score for d in suppress(dets, nms_iou=0.5, min_score=0.25)] == [0.9, 0.3]


def _perfect_run(tmp_path, seed: int, n: int = 60, first: int = 15):
    """A recorded run of the `crossing` scene whose detector reported every real object's visible box."""
    world = SimWorld(make_scenario("crossing"), seed=seed)
    frames = []
    for k in range(n):
        truth = world.ground_truth(k)
        frames.append(RecordedFrame(k, k / 30.0, {cam: [
            Detection(box=g.visible_box.copy(), score=0.9, class_id=g.class_id, class_name="box")
            for g in getattr(truth, cam) if g.kind == ObjectKind.OBJECT and g.visibility >= 0.3]
            for cam in ("left", "right")}))
    path = tmp_path / f"run{seed}.npz"
    save_detections(path, frames, {"scenario": "crossing", "seed": seed, "fps": 30.0, "first": first,
                                   "detector": "perfect"})
    return path


def test_replay_scores_the_window_and_writes_its_figures(tmp_path, capsys) -> None:
    path = _perfect_run(tmp_path, seed=3)
    out = tmp_path / "replay.json"
    assert replay_tracking.main([str(path), "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["pooled"]["seeds"] == [3] and doc["pooled"]["idf1"] > 0.9
    meta, frames = load_detections(path)
    seq, tracks = replay_tracking.replay(meta, frames, shipped_world_model_config(Path("config")))
    assert seq.n_frames == 45 and all(len(tracks[cam]) == 45 for cam in ("left", "right"))


def test_replay_refuses_held_out_seeds_unless_asked(tmp_path) -> None:
    path = _perfect_run(tmp_path, seed=1000, n=20, first=5)
    with pytest.raises(SystemExit):
        replay_tracking.main([str(path)])
    assert replay_tracking.main([str(path), "--allow-held-out"]) == 0


def test_simulate_replaces_the_recorded_boxes_by_the_presets_on_the_same_frames(tmp_path) -> None:
    """``--simulate``: the same frames and stamps, the simulator's boxes at that preset (as the
    evaluation draws them for the run's seed) with the rendered image's embeddings."""
    from object_permanence.core.detection.simulated import SimulatedDetector
    from object_permanence.core.eval.sequences import simulate_sequences
    from object_permanence.core.eval.sequences import detector_config

    path = _perfect_run(tmp_path, seed=3, n=12, first=2)
    meta, frames = load_detections(path)
    frames = frames[::3]  # not every frame: the draws depend on the frame index, not the position
    simulated = replay_tracking.simulated_frames(meta, frames, "sim_yolo")
    assert [(f.index, f.stamp) for f in simulated] == [(f.index, f.stamp) for f in frames]
    seq = simulate_sequences("crossing", 3, ["sim_yolo"], n_frames=12)["sim_yolo"]
    for f in simulated:
        for cam in ("left", "right"):
            expected = seq.streams[cam].detections[f.index]
            assert [d.box.tolist() for d in f.detections[cam]] == [d.box.tolist() for d in expected]
            assert all(np.array_equal(a.embedding, b.embedding) for a, b in zip(f.detections[cam], expected))
    assert SimulatedDetector(detector_config("sim_yolo", 3)).config != SimulatedDetector(
        detector_config("realistic", 3)).config
    out = tmp_path / "sim.json"
    assert replay_tracking.main([str(path), "--simulate", "realistic", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["simulate"] == "realistic"
