"""launch_testing test of pipeline.launch.py in both modes (one process per node, and composed):
every launch argument reaches its node, read back from the running nodes through their
``get_parameters`` services; the clean sim scenario publishes 3D track points; every process
exits 0 without a traceback on shutdown.

Runs on a ROS 2 install (``launch_test test/launch/test_pipeline_launch.py`` or ``colcon test``
with ``add_launch_test``); elsewhere it skips, since launch_testing is not on PyPI.
"""
import sys
import unittest
from pathlib import Path

import pytest

pytest.importorskip("launch_testing", reason="launch_testing is not installable from PyPI; this test runs on a ROS 2 "
                    "install")
pytest.importorskip("launch_ros", reason="launch_ros is not installable from PyPI; this test runs on a ROS 2 install")
pytest.importorskip("launch_testing_ros", reason="launch_testing_ros is not installable from PyPI; this test runs on a "
                    "ROS 2 install")

import launch  # noqa: E402
import launch_testing  # noqa: E402
import launch_testing.actions  # noqa: E402
import launch_testing.asserts  # noqa: E402
import launch_testing_ros  # noqa: E402
import rclpy  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
from rcl_interfaces.srv import GetParameters  # noqa: E402
from rclpy.context import Context  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import parameter_value_to_python  # noqa: E402
from sensor_msgs.msg import PointCloud2  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # launch_test imports this file by path
from launch_facts import NODE_ARGUMENTS  # noqa: E402

PIPELINE_LAUNCH = Path(__file__).resolve().parents[2] / "launch" / "pipeline.launch.py"
#: Start-up of six processes, DDS discovery and the tracks' confirmation fit well within this.
FIRST_CLOUD_TIMEOUT_S = 30.0
#: Seconds for a node's parameter service to appear and answer.
SERVICE_TIMEOUT_S = 30.0
#: Launch arguments: the values differ from the parameter files' wherever the pipeline still runs
#: the clean sim with them (source, backend and calibration must stay the sim's).
ARGUMENTS = {"source": "sim", "calibration_file": "", "scenario": "clean", "detector_backend": "simulated",
             "weights": "/nonexistent/unused_by_the_simulated_backend.pt", "device": "cpu",
             "llm_backend": "template", "llm_base_url": "http://127.0.0.1:9/v1"}


@pytest.mark.launch_test
@launch_testing.parametrize("composed", ["false", "true"])
def generate_test_description(composed: str) -> launch.LaunchDescription:
    pipeline = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(PIPELINE_LAUNCH)),
        launch_arguments={**ARGUMENTS, "composed": composed, "rviz": "false", "llm": "true"}.items())
    return launch.LaunchDescription([pipeline, launch_testing.actions.ReadyToTest()])


def get_parameters(node: Node, executor: SingleThreadedExecutor, target: str, names: list[str]) -> dict:
    """``names`` of node ``/target`` through its get_parameters service, as Python values
    (``executor`` spins ``node``)."""
    client = node.create_client(GetParameters, f"/{target}/get_parameters")
    try:
        if not client.wait_for_service(timeout_sec=SERVICE_TIMEOUT_S):
            raise AssertionError(f"/{target}/get_parameters not available within {SERVICE_TIMEOUT_S} s")
        future = client.call_async(GetParameters.Request(names=names))
        executor.spin_until_future_complete(future, timeout_sec=SERVICE_TIMEOUT_S)
        if not future.done() or future.result() is None:
            raise AssertionError(f"/{target}/get_parameters did not answer within {SERVICE_TIMEOUT_S} s")
        return {name: parameter_value_to_python(value) for name, value in zip(names, future.result().values)}
    finally:
        node.destroy_client(client)


class TestPipelineRunsWithItsArguments(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.context = Context()
        rclpy.init(context=cls.context)
        cls.node = rclpy.create_node("pipeline_launch_probe", context=cls.context)
        cls.executor = SingleThreadedExecutor(context=cls.context)
        cls.executor.add_node(cls.node)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.executor.shutdown()
        cls.node.destroy_node()
        rclpy.shutdown(context=cls.context)

    def test_every_argument_reaches_its_node(self, composed: str) -> None:
        for target in sorted({node for node, _ in NODE_ARGUMENTS.values()}):
            names = [param for node, param in NODE_ARGUMENTS.values() if node == target]
            values = get_parameters(self.node, self.executor, target, names)
            for argument, (node, param) in NODE_ARGUMENTS.items():
                if node == target:
                    self.assertEqual(values[param], ARGUMENTS[argument],
                                     f"composed:={composed}: {argument} did not reach {node}.{param}")

    def test_track_points_published(self, composed: str) -> None:
        wait = launch_testing_ros.WaitForTopics([("tracks3d/points", PointCloud2)], timeout=FIRST_CLOUD_TIMEOUT_S)
        try:
            self.assertTrue(wait.wait(), f"composed:={composed}: no message on {wait.topics_not_received()} "
                                         f"within {FIRST_CLOUD_TIMEOUT_S} s")
            cloud = wait.received_messages("tracks3d/points")[-1]
        finally:
            wait.shutdown()
        self.assertEqual(cloud.header.frame_id, "left_camera_optical_frame")
        self.assertLessEqual({"x", "y", "z", "track_id", "state", "persistence"}, {f.name for f in cloud.fields})


@launch_testing.post_shutdown_test()
class TestPipelineShutdown(unittest.TestCase):
    def test_exit_codes(self, proc_info) -> None:
        # A stop never exits non-zero (ros/runner.py records SIGINT/SIGTERM instead of raising).
        launch_testing.asserts.assertExitCodes(proc_info, allowable_exit_codes=[launch_testing.asserts.EXIT_OK])

    def test_no_traceback(self, proc_output) -> None:
        for output in proc_output:
            self.assertNotIn(b"Traceback", output.text, f"{output.process_name} printed a traceback")
