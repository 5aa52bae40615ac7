"""tools/run_video: the real detection path (shipped ONNX detector, embeddings, world model) on a
video file, as both views; the timing summary it writes."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from object_permanence.tools import run_video

ONNX = Path(__file__).resolve().parents[2] / "models" / "detector" / "sim_yolo.onnx"


def test_run_video_writes_a_timing_summary(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    import cv2

    from object_permanence.core.sim.scenarios import make_scenario
    from object_permanence.core.sim.world import SimWorld

    world = SimWorld(make_scenario("clean"), seed=1000)
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (world.rig.width, world.rig.height))
    for k in range(6):
        writer.write(world.render(k)[0])
    writer.release()
    assert run_video.main(["--video", str(video), "--weights", str(ONNX), "--out", str(tmp_path / "out")]) == 0
    summary = json.loads((tmp_path / "out" / "video.json").read_text())
    assert summary["frames"] == 6 and summary["image_size"] == [world.rig.width, world.rig.height]
    assert summary["detections_per_view_mean"] > 0, "the sim-trained detector finds the sim's objects"
    for key in ("detect_pair_ms_median", "embed_pair_ms_median", "world_model_pair_ms_median", "frame_ms_median"):
        assert np.isfinite(summary[key]) and summary[key] > 0


def test_run_video_names_an_unreadable_video(tmp_path: Path, capsys) -> None:
    assert run_video.main(["--video", str(tmp_path / "missing.avi"), "--weights", str(ONNX)]) == 2
    assert "cannot open video" in capsys.readouterr().err
