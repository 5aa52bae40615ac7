"""Calibration images for the quantized detector (tools/calibration_images): evenly spaced frames
of a folder, a video or a rosbag2 image topic, in pairs, and named refusals."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def write_images(folder: Path, n: int) -> list[np.ndarray]:
    import cv2

    folder.mkdir()
    images = [np.full((48, 64, 3), 20 * k, np.uint8) for k in range(n)]
    for k, image in enumerate(images):
        cv2.imwrite(str(folder / f"frame_{k:03d}.png"), image)
    (folder / "notes.txt").write_text("not an image")
    return images


def test_image_pairs_from_a_folder_are_evenly_spaced_and_in_name_order(tmp_path) -> None:
    from object_permanence.tools.calibration_images import image_pairs

    images = write_images(tmp_path / "frames", 9)
    pairs = image_pairs(tmp_path / "frames", pairs=2)  # 4 of 9: frames 0, 3, 5, 8
    assert [(int(a[0, 0, 0]), int(b[0, 0, 0])) for a, b in pairs] == [(0, 60), (100, 160)]
    assert len(image_pairs(tmp_path / "frames", pairs=50)) == 4  # no more than there are (9 -> 4 pairs)
    assert np.array_equal(image_pairs(tmp_path / "frames", pairs=1)[0][1], images[-1])


def test_image_pairs_from_a_video_and_the_refusals(tmp_path) -> None:
    import cv2

    from object_permanence.tools.calibration_images import image_pairs

    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for k in range(10):
        writer.write(np.full((48, 64, 3), 20 * k, np.uint8))
    writer.release()
    pairs = image_pairs(path, pairs=1)  # frames 0 and 9
    assert len(pairs) == 1 and abs(int(pairs[0][0].mean())) < 5 and abs(int(pairs[0][1].mean()) - 180) < 5
    with pytest.raises(FileNotFoundError, match="not found"):
        image_pairs(tmp_path / "missing")
    with pytest.raises(ValueError, match="pairs must be >= 1"):
        image_pairs(path, pairs=0)
    (tmp_path / "notes.txt").write_text("not a video")
    with pytest.raises(ValueError, match="cannot open .*notes.txt as a video"):
        image_pairs(tmp_path / "notes.txt")
    (tmp_path / "one").mkdir()
    cv2.imwrite(str(tmp_path / "one" / "a.png"), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="1 readable image"):
        image_pairs(tmp_path / "one")
    (tmp_path / "bad").mkdir()
    for name in ("a.png", "b.jpg"):
        (tmp_path / "bad" / name).write_bytes(b"not a picture")
    with pytest.raises(ValueError, match="cannot read"):
        image_pairs(tmp_path / "bad")


@pytest.mark.parametrize("transport", ["raw", "compressed"])
def test_image_pairs_from_a_bag_topic_are_its_frames(tmp_path, transport) -> None:
    """A rosbag2 recording of the simulated scene (make_bag): the picked messages decode to the
    rendered frames (exactly for raw images, within JPEG's loss for compressed ones)."""
    pytest.importorskip("rclpy")
    from object_permanence.core.sim.bag import write_bag
    from object_permanence.core.sim.scenarios import make_scenario
    from object_permanence.core.sim.world import SimWorld
    from object_permanence.tools.calibration_images import image_pairs

    world = SimWorld(make_scenario("clean"), seed=3)
    bag = write_bag(world, tmp_path / "bag", 5, image_transport=transport)
    topic = "/stereo/left/image_raw" + ("/compressed" if transport == "compressed" else "")
    pairs = image_pairs(bag, pairs=1, topic=topic)  # messages 0 and 4
    assert len(pairs) == 1
    for got, k in zip(pairs[0], (0, 4)):
        expected = world.render(k)[0].astype(int)
        error = np.abs(got.astype(int) - expected)
        assert (error.max() == 0) if transport == "raw" else (error.mean() < 3.0), error.mean()


def test_a_bag_needs_an_existing_image_topic(tmp_path) -> None:
    pytest.importorskip("rclpy")
    from object_permanence.core.sim.bag import write_bag
    from object_permanence.core.sim.scenarios import make_scenario
    from object_permanence.core.sim.world import SimWorld
    from object_permanence.tools.calibration_images import image_pairs

    bag = write_bag(SimWorld(make_scenario("clean"), seed=3), tmp_path / "bag", 2)
    with pytest.raises(ValueError, match="name its image topic.*/stereo/left/image_raw"):
        image_pairs(bag)
    with pytest.raises(ValueError, match="no topic /cam/missing"):
        image_pairs(bag, topic="/cam/missing")
    with pytest.raises(ValueError, match="holds sensor_msgs/msg/CameraInfo"):
        image_pairs(bag, topic="/stereo/left/camera_info")
    (tmp_path / "frames").mkdir()
    with pytest.raises(ValueError, match="is not a rosbag2 folder"):
        image_pairs(tmp_path / "frames", topic="/stereo/left/image_raw")


def test_picks_read_no_further_than_the_last_wanted_item() -> None:
    from object_permanence.tools.calibration_images import _at, evenly_spaced

    read: list[int] = []

    def items():
        for k in range(100):
            read.append(k)
            yield k

    assert list(_at(items(), [0, 3, 5])) == [0, 3, 5] and read == list(range(6))
    read.clear()
    assert list(_at(items(), [])) == [] and read == []
    assert evenly_spaced(9, 4) == [0, 3, 5, 8] and evenly_spaced(3, 10) == [0, 1, 2] and evenly_spaced(0, 4) == []
