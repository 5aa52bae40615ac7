"""The demo's lock-step pacing: the capture node, on simulated time, publishes exactly one frame
per advance of the /clock driver, stamped with the driver's time."""
from __future__ import annotations

import pytest

pytest.importorskip("rclpy", reason="rclpy is not importable (source scripts/ros_env.sh)")
pytest.importorskip("object_permanence.msg", reason="object_permanence interfaces are not built (colcon build)")

from sensor_msgs.msg import Image  # noqa: E402

from object_permanence.msg import SimGroundTruth  # noqa: E402
from object_permanence.nodes.stereo_capture import StereoCaptureNode  # noqa: E402
from object_permanence.ros.qos import RELIABLE_QOS, SENSOR_QOS  # noqa: E402
from object_permanence.ros.sim_clock import SimClockDriver  # noqa: E402


def test_driver_rejects_bad_arguments(ros):
    with pytest.raises(ValueError, match="period_ns"):
        SimClockDriver(ros.probe, period_ns=0)
    with pytest.raises(ValueError, match="start_periods"):
        SimClockDriver(ros.probe, period_ns=10, start_periods=0)


def test_capture_publishes_one_frame_per_clock_step(ros):
    fps = 30.0
    driver = SimClockDriver(ros.probe, period_ns=int(1e9 / fps))
    truths = ros.collect(SimGroundTruth, "sim/ground_truth", RELIABLE_QOS)
    images = ros.collect(Image, "stereo/left/image_raw", SENSOR_QOS)
    ros.start(StereoCaptureNode, {"source": "sim", "scenario": "clean", "seed": 1000, "fps": fps,
                                  "use_sim_time": True})
    ros.wait_connected()
    ros.retry_until(lambda _: driver.publish(), lambda: len(truths) >= 1, "the first simulated frame",
                    attempt_s=0.2)
    for step in range(1, 6):
        driver.advance()
        ros.spin_until(lambda: len(truths) >= step + 1, f"frame {step} after clock step {step}")
    ros.poll(lambda: False, 0.3)  # nothing more arrives while the clock stands still
    stamps = [(m.header.stamp.sec, m.header.stamp.nanosec) for m in truths]
    assert [m.frame_index for m in truths] == list(range(6))
    assert stamps[-1] == driver.stamp
    step_ns = [(b[0] - a[0]) * 10**9 + b[1] - a[1] for a, b in zip(stamps, stamps[1:])]
    assert step_ns == [driver.period_ns] * 5
    assert set(stamps) <= set(driver.published_wall_s)
    assert driver.latency_origin(stamps[0]) is not None
    ros.spin_until(lambda: len(images) >= 4, "the images of the stepped frames")
