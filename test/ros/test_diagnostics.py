"""Node health on /diagnostics: the report of one period (no message traffic), and a node's
reports over DDS as frames flow, are dropped, and stop."""
from __future__ import annotations

import pytest

pytest.importorskip("rclpy", reason="rclpy is not importable (source scripts/ros_env.sh)")
pytest.importorskip("diagnostic_msgs", reason="diagnostic_msgs is not installed")
pytest.importorskip("object_permanence.msg", reason="object_permanence interfaces are not built (colcon build)")

from builtin_interfaces.msg import Time  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from object_permanence.msg import Detection as DetectionMsg, DetectionArray  # noqa: E402
from object_permanence.nodes.world_model import WorldModelNode  # noqa: E402
from object_permanence.ros.conversions import sec_to_stamp  # noqa: E402
from object_permanence.ros.diagnostics import HARDWARE_ID, FrameWindow  # noqa: E402
from object_permanence.ros.qos import RELIABLE_QOS  # noqa: E402

pytestmark = pytest.mark.ros


def test_a_period_with_frames_is_ok_and_says_how_many_how_fast_and_how_late() -> None:
    level, message, values = FrameWindow(durations_s=[0.002, 0.004], ages_s=[0.010, 0.030]).report(
        "stereo pairs", 0.5, 10)
    assert level == DiagnosticStatus.OK and message == "4.0 stereo pairs/s"
    assert dict(values) == {
        "stereo pairs in the last period": "2", "rate (Hz)": "4.00", "stereo pairs since start-up": "10",
        "stereo pairs dropped in the last period": "0", "processing time mean (ms)": "3.00",
        "processing time max (ms)": "4.00", "frame age at output mean (ms)": "20.0",
        "frame age at output max (ms)": "30.0"}


def test_a_period_without_frames_or_with_dropped_ones_warns() -> None:
    level, message, values = FrameWindow().report("stereo pairs", 1.0, 7)
    assert level == DiagnosticStatus.WARN and message == "no stereo pairs in the last 1 s"
    assert dict(values)["rate (Hz)"] == "0.00" and "processing time max (ms)" not in dict(values)
    level, message, _ = FrameWindow(durations_s=[0.001], dropped=2).report("frames", 1.0, 3)
    assert level == DiagnosticStatus.WARN and message == "2 frames dropped in the last 1 s (see the log)"


def _detections(stamp: Time, cx: float) -> DetectionArray:
    return DetectionArray(header=Header(stamp=stamp, frame_id="left"), detections=[
        DetectionMsg(cx=cx, cy=150.0, w=40.0, h=60.0, score=0.9, class_id=0, class_name="ball")])


def test_a_node_reports_its_frames_then_a_dropped_one_then_that_input_stopped(ros) -> None:
    diagnostics = ros.collect(DiagnosticArray, "/diagnostics", RELIABLE_QOS)
    node = ros.start(WorldModelNode, {"diagnostics_period_s": 0.2})
    publisher = ros.publisher(DetectionArray, "stereo/left/detections", RELIABLE_QOS)
    ros.wait_connected()
    name = f"{node.get_fully_qualified_name().lstrip('/')}: detection arrays"  # /diagnostics is global

    def statuses() -> list[DiagnosticStatus]:
        return [s for array in diagnostics for s in array.status if s.name == name]

    k = 0
    while not any(s.level == DiagnosticStatus.OK for s in statuses()):  # 30 Hz until a period is all frames
        assert k < 300, f"no OK report of {name} after {k} frames: {[s.message for s in statuses()]}"
        publisher.publish(_detections(sec_to_stamp(1000.0 + k / 30.0), 200.0 + 4.0 * k))
        ros.poll(lambda: False, 1 / 30)
        k += 1
    ok = next(s for s in statuses() if s.level == DiagnosticStatus.OK)
    values = {v.key: v.value for v in ok.values}
    assert ok.hardware_id == HARDWARE_ID and ok.message.endswith("detection arrays/s")
    assert float(values["rate (Hz)"]) > 0 and int(values["detection arrays since start-up"]) > 0
    assert float(values["processing time max (ms)"]) > 0 and "frame age at output max (ms)" in values

    reports = len(statuses())
    publisher.publish(_detections(sec_to_stamp(1000.0 + (k - 2) / 30.0), 200.0))  # its stamp goes back
    ros.spin_until(lambda: any(s.message.startswith("1 detection arrays dropped") for s in statuses()[reports:]),
                   "a report of the dropped array")
    ros.spin_until(lambda: statuses()[-1].message == "no detection arrays in the last 0.2 s"
                   and statuses()[-1].level == DiagnosticStatus.WARN, "a report that the input stopped")


@pytest.mark.parametrize("period_s, publishes", [(0.0, False), (1.0, True)])
def test_a_node_publishes_on_diagnostics_unless_the_period_is_zero(ros, period_s: float, publishes: bool) -> None:
    node = ros.start(WorldModelNode, {"diagnostics_period_s": period_s})
    topics = {name for name, _ in node.get_publisher_names_and_types_by_node(node.get_name(), node.get_namespace())}
    assert ("/diagnostics" in topics) is publishes, topics
