"""The installed node executables as separate processes, wired over DDS as a launch file would
start them, observed by a probe node in this process."""
from __future__ import annotations

import subprocess

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy is not importable (source scripts/ros_env.sh)")
pytest.importorskip("object_permanence.msg", reason="object_permanence interfaces are not built (colcon build)")

from sensor_msgs.msg import PointCloud2  # noqa: E402

from object_permanence.msg import Track3DArray, TrackEvent  # noqa: E402
from object_permanence.ros.conversions import cloud_to_numpy  # noqa: E402
from object_permanence.ros.qos import EVENT_QOS, RELIABLE_QOS, VIZ_QOS  # noqa: E402

pytestmark = pytest.mark.ros

#: Downstream first, so that every subscriber exists before the capture publishes.
CONSUMERS = ("llm_explainer", "triangulator", "persistence_filter", "world_model", "detector")
ALL_NODES = ("stereo_capture", *CONSUMERS)
CAPTURE_OVERRIDES = {"max_frames": 150, "scenario": "clean"}
STARTUP_TIMEOUT_S = 30.0  # five Python processes importing numpy/scipy/cv2 at once on two cores
OUTPUT_TIMEOUT_S = 30.0
MIN_CLOUDS = 10


class GraphProbe:
    """Collects what the graph's last stages publish."""

    def __init__(self, ros) -> None:
        self.ros = ros
        self.points = ros.collect(PointCloud2, "tracks3d/points", VIZ_QOS)
        self.tracks3d = ros.collect(Track3DArray, "tracks3d", RELIABLE_QOS)
        self.events = ros.collect(TrackEvent, "track_events", EVENT_QOS)

    def non_empty_clouds(self) -> list[PointCloud2]:
        return [m for m in self.points if m.width > 0]

    def wait_for_output(self, processes) -> None:
        """Spin until enough non-empty clouds, a non-empty Track3DArray and an event arrived;
        fail at once, with its output, if a node process died."""
        def done() -> bool:
            for process in processes:
                if process.popen.poll() is not None:
                    raise AssertionError(f"{process.name} exited with {process.popen.returncode}:\n{process.output()}")
            return (len(self.non_empty_clouds()) >= MIN_CLOUDS and any(m.tracks for m in self.tracks3d)
                    and len(self.events) > 0)

        self.ros.spin_until(done, f"{MIN_CLOUDS} point clouds, 3D tracks and track events", OUTPUT_TIMEOUT_S)

    def assert_plausible(self, births_seen: bool = True) -> None:
        """``births_seen``: the probe was matched before the first frame (the capture started
        after the graph formed), so the BIRTH events must be among those received."""
        for cloud in self.non_empty_clouds():
            assert [f.name for f in cloud.fields] == ["x", "y", "z", "track_id", "state", "persistence"]
            assert cloud.header.frame_id == "left_camera_optical_frame"
            points = cloud_to_numpy(cloud)
            xyz = np.stack([points["x"], points["y"], points["z"]], axis=1)
            assert np.all(np.isfinite(xyz)), xyz
            assert np.all((xyz[:, 2] > 1.0) & (xyz[:, 2] < 10.0)), f"depths outside (1, 10) m: {xyz[:, 2]}"
            assert np.all(points["state"] <= 3)
        kinds = {e.event for e in self.events}
        assert kinds <= {TrackEvent.BIRTH, TrackEvent.OCCLUDED, TrackEvent.REACQUIRED, TrackEvent.LOST}
        if births_seen:
            assert TrackEvent.BIRTH in kinds
        assert {e.camera for e in self.events} <= {"left", "right"}


def assert_clean_exit(results: dict[str, tuple[int, str]]) -> None:
    for name, (code, output) in results.items():
        assert code == 0, f"{name} exited with {code} on SIGINT:\n{output}"
        assert "Traceback" not in output, f"{name} printed a traceback:\n{output}"


def test_separate_node_processes_produce_3d_points(ros_root, launcher) -> None:
    probe = GraphProbe(ros_root)
    consumers = [launcher.start(name, [name]) for name in CONSUMERS]
    graph = ros_root.probe

    def consumers_ready() -> bool:
        return (graph.count_subscribers("/stereo/left/image_raw") >= 1
                and graph.count_subscribers("/stereo/right/detections") >= 1
                and graph.count_subscribers("/stereo/left/tracks") >= 2  # persistence_filter, llm_explainer
                and graph.count_subscribers("/stereo/right/tracks/filtered") >= 1
                and graph.count_publishers("/tracks3d/points") >= 1
                and graph.count_publishers("/track_events") >= 1)

    ros_root.spin_until(consumers_ready, "the five consumer nodes to join the graph", STARTUP_TIMEOUT_S)
    capture = launcher.start("stereo_capture", ["stereo_capture"], CAPTURE_OVERRIDES)
    probe.wait_for_output([*consumers, capture])
    probe.assert_plausible()
    results = launcher.stop_all()
    assert len(results) == len(ALL_NODES)
    assert_clean_exit(results)


def test_pipeline_process_produces_3d_points(ros_root, launcher) -> None:
    probe = GraphProbe(ros_root)
    pipeline = launcher.start("pipeline", list(ALL_NODES), CAPTURE_OVERRIDES)
    probe.wait_for_output([pipeline])
    probe.assert_plausible(births_seen=False)  # capture starts at once: early events may precede discovery
    assert_clean_exit(launcher.stop_all())


def test_node_process_with_a_bad_parameter_exits_non_zero(launcher) -> None:
    process = launcher.start("world_model", ["world_model"], {"min_hits": 0})
    try:
        code = process.wait(timeout_s=OUTPUT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"world_model kept running with min_hits:=0:\n{process.output()}")
    output = process.output()
    assert code != 0
    assert "min_hits" in output, output
    assert "Traceback" not in output, output
