"""tools/play_bag: a simulated MCAP bag played into the graph reaches a subscriber that was there
first completely (the player waits for matched subscriptions), with /clock for use_sim_time;
a wait that cannot succeed ends with a clear message instead of hanging."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("rclpy", reason="rclpy is not importable (source scripts/ros_env.sh)")
pytest.importorskip("object_permanence.msg", reason="object_permanence interfaces are not built (colcon build)")

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from rosbags.rosbag2 import Reader  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

from object_permanence.core.sim.bag import TOPIC_GROUND_TRUTH, TOPIC_IMAGE, TOPIC_INFO, write_bag  # noqa: E402
from object_permanence.core.sim.scenarios import make_scenario  # noqa: E402
from object_permanence.core.sim.world import SimWorld  # noqa: E402
from object_permanence.msg import SimGroundTruth  # noqa: E402
from object_permanence.tools.play_bag import PlayOptions, remap_list, topic_list  # noqa: E402

pytestmark = pytest.mark.ros

FRAMES = 6
TOPICS = {TOPIC_IMAGE["left"]: Image, TOPIC_IMAGE["right"]: Image, TOPIC_INFO["left"]: CameraInfo,
          TOPIC_INFO["right"]: CameraInfo, TOPIC_GROUND_TRUTH: SimGroundTruth}
#: Reliable and deep enough for the whole bag: a message lost here is the player's fault.
KEEP_ALL = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)
PLAYER_TIMEOUT_S = 60.0


@pytest.fixture(scope="module")
def sim_bag(tmp_path_factory) -> Path:
    return write_bag(SimWorld(make_scenario("clean"), seed=1000), tmp_path_factory.mktemp("bag") / "sim", FRAMES)


def bag_counts(bag: Path) -> Counter:
    with Reader(bag) as reader:
        return Counter(connection.topic for connection, _, _ in reader.messages())


def run_player(*args: str, timeout_s: float = PLAYER_TIMEOUT_S, spin=None) -> tuple[int, str]:
    """Run ``python -m object_permanence.tools.play_bag args`` (this session's DDS domain), calling
    ``spin()`` until it exits; exit code and output."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", RCUTILS_COLORIZED_OUTPUT="0")
    process = subprocess.Popen([sys.executable, "-m", "object_permanence.tools.play_bag", *args],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                               start_new_session=True)
    try:
        if spin is not None:
            spin(lambda: process.poll() is not None, timeout_s)
        output, _ = process.communicate(timeout=timeout_s)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, output


def test_a_subscriber_that_starts_first_gets_every_message(ros_root, sim_bag) -> None:
    received = {topic: ros_root.collect(msg_type, topic, KEEP_ALL) for topic, msg_type in TOPICS.items()}
    clock = ros_root.collect(Clock, "/clock", KEEP_ALL)
    # At 20x the bag lasts a few ms: without the wait every message goes out before discovery
    # has matched the probe (all of them were lost when this was tried without --wait-for).
    code, output = run_player(str(sim_bag), "--clock", "--rate", "20", "--wait-for", ",".join(TOPICS),
                              spin=lambda done, timeout_s: ros_root.poll(done, timeout_s))
    assert code == 0, output
    expected = bag_counts(sim_bag)
    assert expected == {topic: FRAMES for topic in TOPICS}
    # The player waited for the acknowledgements before it exited; a last spin takes what is queued.
    ros_root.poll(lambda: all(len(received[t]) >= n for t, n in expected.items()), 5.0)
    assert {topic: len(messages) for topic, messages in received.items()} == expected, output
    assert "Traceback" not in output, output
    # Recorded order and content: the frame indices of the ground truth, the images' size.
    assert [m.frame_index for m in received[TOPIC_GROUND_TRUTH]] == list(range(FRAMES))
    for image in received[TOPIC_IMAGE["left"]]:
        assert image.encoding == "bgr8" and len(image.data) == image.step * image.height > 0
    # /clock: one tick per recorded time, at the messages' stamps, in order.
    ticks = [m.clock.sec * 10**9 + m.clock.nanosec for m in clock]
    stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in received[TOPIC_GROUND_TRUTH]]
    assert ticks == stamps


def test_remapped_topics_are_played_under_their_new_names(ros_root, sim_bag) -> None:
    """A robot's bag under its own topic names, played on the names the nodes subscribe to."""
    received = ros_root.collect(Image, "/robot/cam_left/image", KEEP_ALL)
    old = ros_root.collect(Image, TOPIC_IMAGE["left"], KEEP_ALL)
    code, output = run_player(str(sim_bag), "--rate", "20", "--remap", f"{TOPIC_IMAGE['left']}=/robot/cam_left/image",
                              "--topics", TOPIC_IMAGE["left"], "--wait-for", "/robot/cam_left/image",
                              spin=lambda done, timeout_s: ros_root.poll(done, timeout_s))
    assert code == 0, output
    ros_root.poll(lambda: len(received) >= FRAMES, 5.0)
    assert len(received) == FRAMES and old == []
    # onto a topic the bag plays as well: two types on one topic, refused before playing
    code, output = run_player(str(sim_bag), "--remap", f"{TOPIC_IMAGE['left']}={TOPIC_INFO['left']}", timeout_s=30.0)
    assert code == 2 and f"--remap plays two bag topics on {TOPIC_INFO['left']}" in output, output


def test_wait_times_out_without_subscribers(sim_bag) -> None:
    code, output = run_player(str(sim_bag), "--wait-for", "/stereo/left/image_raw", "--wait-timeout", "1.5",
                              timeout_s=30.0)
    assert code == 1, output
    assert "no subscriber on /stereo/left/image_raw after 1.5 s" in output


def test_wait_for_a_topic_the_bag_lacks_is_refused(sim_bag) -> None:
    code, output = run_player(str(sim_bag), "--wait-for", "/not/in/bag", timeout_s=30.0)
    assert code == 2, output
    assert "/not/in/bag" in output


def test_a_missing_bag_is_reported(tmp_path) -> None:
    code, output = run_player(str(tmp_path / "absent"), timeout_s=30.0)
    assert code == 2, output
    assert "absent" in output and "Traceback" not in output


def test_options_are_validated() -> None:
    assert topic_list("stereo/left/image_raw, /clock,,/clock") == ("/stereo/left/image_raw", "/clock")
    with pytest.raises(ValueError, match="rate"):
        PlayOptions(bag=Path("b"), rate=0.0)
    with pytest.raises(ValueError, match="wait_timeout_s"):
        PlayOptions(bag=Path("b"), wait_timeout_s=-1.0)
    with pytest.raises(ValueError, match="delay_s"):
        PlayOptions(bag=Path("b"), delay_s=float("nan"))
    with pytest.raises(ValueError, match="wait_only"):
        PlayOptions(bag=Path("b"), wait_only=True)
    with pytest.raises(ValueError, match="absolute"):
        PlayOptions(bag=Path("b"), topics=("relative",))
    assert remap_list("a=/b, /c=d,") == (("/a", "/b"), ("/c", "/d"))
    for bad in ("a", "a=", "=b", "a:=b"):
        with pytest.raises(argparse.ArgumentTypeError):
            remap_list(bad)
    with pytest.raises(ValueError, match="remapped twice"):
        PlayOptions(bag=Path("b"), remap=(("/a", "/c"), ("/b", "/c")))


def test_a_jpeg_bag_reaches_a_detector_reading_the_compressed_transport(ros_root, tmp_path) -> None:
    """A bag holding CompressedImage (JPEG, as robots record their cameras; ``make_bag
    --image-transport compressed``) played into a detector with ``image_transport: compressed``:
    rosbags' CDR of CompressedImage is what rclpy reads, and every frame is decoded and detected."""
    from object_permanence.msg import DetectionArray
    from object_permanence.nodes.detector import DetectorNode

    bag = write_bag(SimWorld(make_scenario("clean"), seed=1000), tmp_path / "jpeg", FRAMES,
                    image_transport="compressed")
    detections = {c: ros_root.collect(DetectionArray, f"/stereo/{c}/detections", KEEP_ALL) for c in ("left", "right")}
    ros_root.start(DetectorNode, {"image_transport": "compressed", "sim.difficulty": "easy"})
    wait_for = f"{TOPIC_IMAGE['left']}/compressed,{TOPIC_IMAGE['right']}/compressed,{TOPIC_GROUND_TRUTH}"
    code, output = run_player(str(bag), "--rate", "0.5", "--wait-for", wait_for,
                              spin=lambda done, timeout_s: ros_root.poll(done, timeout_s))
    assert code == 0, output
    ros_root.poll(lambda: all(len(d) >= FRAMES for d in detections.values()), 5.0)
    for camera, arrays in detections.items():
        assert len({(m.header.stamp.sec, m.header.stamp.nanosec) for m in arrays}) == FRAMES, (camera, output)
        assert all((m.image_width, m.image_height) == (640, 480) for m in arrays)
        assert sum(len(m.detections) for m in arrays) >= FRAMES, "the clean scene's objects are detected"
        assert all(len(d.embedding) > 0 for m in arrays for d in m.detections)
