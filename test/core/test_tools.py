"""The offline command-line tools: stereo calibration and sim bag writing."""
from __future__ import annotations


import numpy as np
import pytest
import yaml

from object_permanence.core.calibration import load_stereo_calibration
from object_permanence.tools import calibrate_stereo, make_bag


def test_calibrate_stereo_cli_writes_a_loadable_rectified_calibration(tmp_path, capsys, shared_data) -> None:
    data = shared_data / "stereo_calibration"
    out = tmp_path / "stereo.yaml"
    assert calibrate_stereo.main(["--left", str(data / "left*.jpg"), "--right", str(data / "right*.jpg"),
                                  "--pattern", "9x6", "-o", str(out)]) == 0
    calibration = load_stereo_calibration(out)
    assert calibration.left.width == 640 and abs(calibration.left.fx - 536) < 30
    assert calibration.baseline > 0
    assert "stereo RMS" in capsys.readouterr().out


def test_calibrate_stereo_cli_reports_bad_input(tmp_path, capsys) -> None:
    code = calibrate_stereo.main(["--left", str(tmp_path / "none*.jpg"), "--right", str(tmp_path / "x*.jpg"),
                                  "-o", str(tmp_path / "s.yaml")])
    assert code == 2 and "no image matches" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        calibrate_stereo.main(["--left", "a", "--right", "b", "--pattern", "nine", "-o", "s.yaml"])


def test_make_bag_writes_a_readable_mcap(tmp_path) -> None:
    from rosbags.rosbag2 import Reader

    out = tmp_path / "bag"
    assert make_bag.main([str(out), "--scenario", "clean", "--frames", "3"]) == 0
    with Reader(out) as reader:
        topics = {c.topic for c in reader.connections}
        assert {"/stereo/left/image_raw", "/stereo/right/image_raw", "/sim/ground_truth"} <= topics
        assert reader.message_count == 3 * 5
    assert make_bag.main([str(out)]) == 2  # refuses to overwrite
    assert yaml.safe_load((out / "metadata.yaml").read_text())["rosbag2_bagfile_information"]


def test_make_bag_writes_compressed_images_as_image_transport_does(tmp_path) -> None:
    """--image-transport compressed: JPEG CompressedImage on <image topic>/compressed, decoding to
    the rendered frame within JPEG's loss; camera_info and truth as in a raw bag."""
    import cv2
    from rosbags.rosbag2 import Reader
    from rosbags.typesys import Stores, get_typestore

    from object_permanence.core.sim.scenarios import make_scenario
    from object_permanence.core.sim.world import SimWorld

    out = tmp_path / "bag"
    assert make_bag.main([str(out), "--scenario", "clean", "--frames", "2", "--image-transport", "compressed"]) == 0
    typestore = get_typestore(Stores.ROS2_KILTED)
    rendered = SimWorld(make_scenario("clean"), seed=0).render(1)[0]
    with Reader(out) as reader:
        types = {c.topic: c.msgtype for c in reader.connections}
        assert types["/stereo/left/image_raw/compressed"] == "sensor_msgs/msg/CompressedImage"
        assert "/stereo/left/image_raw" not in types and "/sim/ground_truth" in types
        assert reader.message_count == 2 * 5
        (connection,) = [c for c in reader.connections if c.topic == "/stereo/left/image_raw/compressed"]
        *_, (_, _, raw) = reader.messages(connections=[connection])
    msg = typestore.deserialize_cdr(raw, "sensor_msgs/msg/CompressedImage")
    assert msg.format == "bgr8; jpeg compressed bgr8"
    decoded = cv2.imdecode(np.asarray(msg.data, dtype=np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == rendered.shape and np.abs(decoded.astype(int) - rendered).mean() < 3.0
    with pytest.raises(SystemExit):  # argparse names the allowed transports
        make_bag.main([str(tmp_path / "b2"), "--image-transport", "theora"])
