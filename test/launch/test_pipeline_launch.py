"""launch_testing test of pipeline.launch.py: the separate-process pipeline on the clean sim
scenario publishes 3D track points, and every process exits cleanly on shutdown.

Runs on a ROS 2 install (``launch_test test/launch/test_pipeline_launch.py`` or ``colcon test``
with ``add_launch_test``); elsewhere it skips, since launch_testing is not on PyPI.
"""
import signal
import unittest
from pathlib import Path

import pytest

pytest.importorskip("launch_testing", reason="launch_testing is not installable from PyPI; this test runs on a ROS 2 "
                    "install")
pytest.importorskip("launch_ros", reason="launch_ros is not installable from PyPI; this test runs on a ROS 2 install")
pytest.importorskip("launch_testing_ros", reason="launch_testing_ros is not installable from PyPI; this test runs on a "
                    "ROS 2 install")

import launch  # noqa: E402
import launch_testing.actions  # noqa: E402
import launch_testing.asserts  # noqa: E402
import launch_testing_ros  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
from sensor_msgs.msg import PointCloud2  # noqa: E402

PIPELINE_LAUNCH = Path(__file__).resolve().parents[2] / "launch" / "pipeline.launch.py"
#: Start-up of five processes, DDS discovery and the tracks' confirmation fit well within this.
FIRST_CLOUD_TIMEOUT_S = 30.0


@pytest.mark.launch_test
def generate_test_description() -> launch.LaunchDescription:
    pipeline = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(PIPELINE_LAUNCH)),
        launch_arguments={"source": "sim", "scenario": "clean", "rviz": "false", "llm": "false"}.items())
    return launch.LaunchDescription([pipeline, launch_testing.actions.ReadyToTest()])


class TestPipelinePublishesPoints(unittest.TestCase):
    def test_track_points_published(self, proc_output):
        wait = launch_testing_ros.WaitForTopics([("tracks3d/points", PointCloud2)], timeout=FIRST_CLOUD_TIMEOUT_S)
        try:
            self.assertTrue(wait.wait(), f"no message on {wait.topics_not_received()} "
                                         f"within {FIRST_CLOUD_TIMEOUT_S} s")
            cloud = wait.received_messages("tracks3d/points")[-1]
        finally:
            wait.shutdown()
        self.assertEqual(cloud.header.frame_id, "left_camera_optical_frame")
        self.assertLessEqual({"x", "y", "z", "track_id", "state", "persistence"}, {f.name for f in cloud.fields})


@launch_testing.post_shutdown_test()
class TestPipelineShutdown(unittest.TestCase):
    def test_exit_codes(self, proc_info):
        # Nodes exit 0 on SIGINT; one interrupted before rclpy installed its handler shows -SIGINT.
        launch_testing.asserts.assertExitCodes(
            proc_info, allowable_exit_codes=[launch_testing.asserts.EXIT_OK, -signal.SIGINT])
