"""The triangulator node over DDS: duplicate 2D ids are logged and left out (the rest is published),
3D ids continue across a rebuild (a new camera calibration) and can be seeded by a parameter."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy")

from builtin_interfaces.msg import Time  # noqa: E402
from sensor_msgs.msg import CameraInfo  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from object_permanence.msg import Track as TrackMsg  # noqa: E402
from object_permanence.msg import Track3DArray, TrackArray  # noqa: E402
from object_permanence.nodes.triangulator import TriangulatorNode  # noqa: E402
from object_permanence.ros.conversions import sec_to_stamp  # noqa: E402
from object_permanence.ros.qos import RELIABLE_QOS, SENSOR_QOS  # noqa: E402

pytestmark = pytest.mark.ros

FX, CX, CY, BASELINE = 500.0, 320.0, 240.0, 0.12
ERROR, WARN = 40, 30  # rcl_interfaces/Log levels
POINTS = {1: np.array([0.2, -0.1, 3.0]), 3: np.array([-0.4, 0.2, 4.0])}  # left id -> metres; right id = left + 1


def camera_info(tx: float) -> CameraInfo:
    return CameraInfo(header=Header(frame_id="left_camera_optical_frame"), width=640, height=480,
                      distortion_model="plumb_bob", d=[0.0] * 5, k=[FX, 0.0, CX, 0.0, FX, CY, 0.0, 0.0, 1.0],
                      r=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
                      p=[FX, 0.0, CX, tx, 0.0, FX, CY, 0.0, 0.0, 0.0, 1.0, 0.0])


def track_msg(track_id: int, point: np.ndarray, right: bool) -> TrackMsg:
    x, y, z = point
    u = FX * (x - (BASELINE if right else 0.0)) / z + CX  # u = fx (X - b) / Z + cx (the rig of the first P)
    return TrackMsg(id=track_id, state=TrackMsg.STATE_VISIBLE, class_id=0, class_name="ball", score=0.9,
                    cx=float(u), cy=float(FX * y / z + CY), w=40.0, h=60.0,
                    covariance=np.diag([4.0, 4.0, 1.0, 1.0]).astype(np.float32).ravel(), age=3, hits=3,
                    persistence_score=0.9)


class Probe:
    def __init__(self, ros, params: dict | None = None) -> None:
        self.ros = ros
        self.baseline = BASELINE
        self.left_info = camera_info(0.0)
        self.tracks3d = ros.collect(Track3DArray, "tracks3d", RELIABLE_QOS)
        self._info = {c: ros.publisher(CameraInfo, f"stereo/{c}/camera_info", SENSOR_QOS) for c in ("left", "right")}
        self._tracks = {c: ros.publisher(TrackArray, f"stereo/{c}/tracks/filtered", RELIABLE_QOS)
                        for c in ("left", "right")}
        self.node = ros.start(TriangulatorNode, params)
        ros.wait_connected()

    def send(self, t: float, left_ids: list[int], duplicate_left: int | None = None) -> Time:
        """camera_info, then a left/right pair at ``t`` seconds of the objects ``left_ids`` (and a
        second left track with id ``duplicate_left`` at the first object's place, offset by 30 px)."""
        self._info["left"].publish(self.left_info)
        self._info["right"].publish(camera_info(-FX * self.baseline))
        left = [track_msg(i, POINTS[i], right=False) for i in left_ids]
        if duplicate_left is not None:
            extra = track_msg(duplicate_left, POINTS[left_ids[0]], right=False)
            extra.cx += 30.0
            left.append(extra)
        right = [track_msg(i + 1, POINTS[i], right=True) for i in left_ids]
        stamp = sec_to_stamp(t)
        for cam, tracks in (("left", left), ("right", right)):
            self._tracks[cam].publish(TrackArray(header=Header(stamp=stamp, frame_id=f"{cam}_optical"), tracks=tracks))
        return stamp

    def published(self, stamp: Time) -> Track3DArray | None:
        return next((m for m in self.tracks3d if m.header.stamp == stamp), None)

    def send_until_published(self, t0: float, left_ids: list[int], duplicate_left: int | None = None) -> Track3DArray:
        """Send frames ``t0, t0 + 1/30, ...`` until one is published (camera_info is best effort)."""
        sent: list[Time] = []
        self.ros.retry_until(lambda k: sent.append(self.send(t0 + k / 30.0, left_ids, duplicate_left)),
                             lambda: self.published(sent[-1]) is not None, "a published tracks3d")
        return self.published(sent[-1])


def test_duplicate_ids_are_logged_and_left_out_the_rest_is_triangulated(ros) -> None:
    probe = Probe(ros)
    out = probe.send_until_published(1000.0, [1, 3], duplicate_left=1)
    (only,) = out.tracks  # left 1 occurs twice: both left out; (3, 4) goes through
    assert (only.left_track_id, only.right_track_id) == (3, 4)
    position = np.array([only.position.x, only.position.y, only.position.z])
    assert np.linalg.norm(position - POINTS[3]) < 0.01
    errors = ros.log_lines("triangulator", ERROR)
    assert any("duplicate track ids [1]" in m and "stereo/left" in m for m in errors), errors


def test_ids_continue_across_a_rebuild_and_can_be_seeded(ros) -> None:
    probe = Probe(ros, {"first_track_id": 500})
    first = probe.send_until_published(1000.0, [1])
    assert [t.id for t in first.tracks] == [500]
    probe.baseline = 0.125  # a new calibration: the triangulator is rebuilt
    ros.retry_until(lambda k: probe.send(1001.0 + k / 30.0, [1]),
                    lambda: any(t.id != 500 for m in probe.tracks3d for t in m.tracks),
                    "a 3D track of the rebuilt triangulator")
    assert sorted({t.id for m in probe.tracks3d for t in m.tracks}) == [500, 501]  # not 1 again


def test_default_ids_are_seeded_from_the_clock(ros) -> None:
    probe = Probe(ros)
    (track,) = probe.send_until_published(1000.0, [1]).tracks
    assert track.id > 1000  # not 1: a restarted node does not reuse the ids of an earlier run


def test_tracks_later_than_the_image_buffer_are_triangulated_from_boxes_with_a_warning(ros) -> None:
    """The images of a frame are kept image_buffer_s behind the newest; tracks that come later
    (a slow detector) are still triangulated, from the box centres, and a warning names the lag."""
    from sensor_msgs.msg import Image

    probe = Probe(ros, {"image_buffer_s": 0.2})
    images = {c: ros.publisher(Image, f"stereo/{c}/image_raw", SENSOR_QOS) for c in ("left", "right")}
    ros.wait_connected()
    buffered = probe.node._images["left"]

    def publish(k: int) -> None:
        for cam, pub in images.items():
            pub.publish(Image(header=Header(stamp=sec_to_stamp(1000.0 + k / 30.0), frame_id=cam), height=480,
                              width=640, encoding="mono8", step=640, data=bytes(640 * 480)))

    for k in range(15):  # 0.5 s of frames, each until the node has it: the first ones leave the 0.2 s buffer
        key = (sec_to_stamp(1000.0 + k / 30.0).sec, sec_to_stamp(1000.0 + k / 30.0).nanosec)
        ros.retry_until(lambda _, k=k: publish(k), lambda key=key: key in buffered or
                        (buffered and next(reversed(buffered)) > key), f"image {k}")
    out = probe.send_until_published(1000.0, [1])  # tracks of frames it held once, now evicted
    position = np.array([out.tracks[0].position.x, out.tracks[0].position.y, out.tracks[0].position.z])
    assert np.linalg.norm(position - POINTS[1]) < 0.05
    warnings = ros.log_lines("triangulator", WARN)
    assert any("have left the buffer" in m and "image_buffer_s" in m for m in warnings), warnings


def test_camera_info_of_unrectified_images_is_warned_about_once(ros) -> None:
    """D != 0 (or R != I) says the images are not rectified, which the triangulator assumes."""
    probe = Probe(ros)
    probe.left_info.d = [-0.2, 0.05, 0.0, 0.0, 0.0]
    sent: list[Time] = []
    ros.retry_until(lambda k: sent.append(probe.send(1000.0 + k / 30.0, [1])),
                    lambda: len(probe.tracks3d) >= 2, "two published frames")
    warnings = [m for m in ros.log_lines("triangulator", WARN) if "not rectified" in m]
    assert len(warnings) == 1 and "D != 0 or R != I" in warnings[0]


def test_compressed_images_refine_the_depth_of_boxes_that_are_off(ros) -> None:
    """image_transport: compressed: the triangulator decodes the JPEG/PNG images of each stamp and
    measures the disparity in them. The right boxes here are 3 px off (box centres alone: Z = 3.53
    m instead of 3.0); the decoded images put the object at its true depth."""
    from object_permanence.ros.conversions import bgr_to_compressed
    from sensor_msgs.msg import CompressedImage

    probe = Probe(ros, {"image_transport": "compressed"})
    images = {c: ros.publisher(CompressedImage, f"stereo/{c}/image_raw/compressed", SENSOR_QOS)
              for c in ("left", "right")}
    ros.wait_connected()
    rng = np.random.default_rng(7)
    background = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)  # far: no disparity
    board = rng.integers(0, 256, (60, 40, 3), dtype=np.uint8)
    left_box, right_box = track_msg(1, POINTS[1], right=False), track_msg(2, POINTS[1], right=True)
    views = {}
    for cam, box in (("left", left_box), ("right", right_box)):
        view = background.copy()
        x0, y0 = int(round(box.cx - 20)), int(round(box.cy - 30))
        view[y0:y0 + 60, x0:x0 + 40] = board
        views[cam] = view
    right_box.cx += 3.0  # the box is off; the image is not
    buffered = probe.node._images["left"]
    sent: list[Time] = []

    def send(k: int) -> None:
        stamp = sec_to_stamp(1000.0 + k / 30.0)
        key = (stamp.sec, stamp.nanosec)
        for cam, pub in images.items():
            pub.publish(bgr_to_compressed(views[cam], Header(stamp=stamp, frame_id=cam), "png"))
        ros.retry_until(lambda _: None, lambda: key in buffered, f"compressed image {k}")
        probe._info["left"].publish(probe.left_info)
        probe._info["right"].publish(camera_info(-FX * probe.baseline))
        for cam, track in (("left", left_box), ("right", right_box)):
            probe._tracks[cam].publish(TrackArray(header=Header(stamp=stamp, frame_id=cam), tracks=[track]))
        sent.append(stamp)

    ros.retry_until(send, lambda: probe.published(sent[-1]) is not None, "a published tracks3d")
    (out,) = probe.published(sent[-1]).tracks
    position = np.array([out.position.x, out.position.y, out.position.z])
    assert np.linalg.norm(position - POINTS[1]) < 0.05, position
