"""Each node in-process on one executor, driven over real DDS by a probe node in its own namespace."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy is not importable (source scripts/ros_env.sh)")
pytest.importorskip("object_permanence.msg", reason="object_permanence interfaces are not built (colcon build)")

from builtin_interfaces.msg import Time  # noqa: E402
from geometry_msgs.msg import Point  # noqa: E402
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2  # noqa: E402
from std_msgs.msg import Header  # noqa: E402
from visualization_msgs.msg import Marker, MarkerArray  # noqa: E402

from object_permanence.msg import (  # noqa: E402
    Detection as DetectionMsg,
    DetectionArray,
    Explanation,
    PersistenceDecision as PersistenceDecisionMsg,
    PersistenceDecisionArray,
    SimGroundTruth,
    SimObject,
    Track as TrackMsg,
    Track3DArray,
    TrackArray,
    TrackEvent,
)
from object_permanence.nodes.detector import DetectorNode  # noqa: E402
from object_permanence.nodes.llm_explainer import LlmExplainerNode  # noqa: E402
from object_permanence.nodes.persistence_filter import PersistenceFilterNode  # noqa: E402
from object_permanence.nodes.stereo_capture import StereoCaptureNode  # noqa: E402
from object_permanence.nodes.triangulator import TriangulatorNode  # noqa: E402
from object_permanence.nodes.world_model import WorldModelNode  # noqa: E402
from object_permanence.ros.conversions import (  # noqa: E402
    bgr_to_compressed,
    cloud_to_numpy,
    numpy_to_image,
    sec_to_stamp,
)
from object_permanence.ros.params import ParameterError  # noqa: E402
from object_permanence.ros.qos import EVENT_QOS, RELIABLE_QOS, SENSOR_QOS, VIZ_QOS  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
from fake_openai_server import FakeOpenAIServer  # noqa: E402

pytestmark = pytest.mark.ros

LEFT_FRAME = "left_camera_optical_frame"
RIGHT_FRAME = "right_camera_optical_frame"
WARN = 30  # rcl_interfaces/Log levels
ERROR = 40


def stamp(k: int) -> Time:
    """Stamp of frame ``k`` of a 30 Hz stream."""
    return sec_to_stamp(1000.0 + k / 30.0)


def header(k: int, frame_id: str = LEFT_FRAME) -> Header:
    return Header(stamp=stamp(k), frame_id=frame_id)


def by_stamp(messages: list, t: Time):
    """The message of ``messages`` with header stamp ``t``, or None."""
    return next((m for m in messages if m.header.stamp == t), None)


def stamps_of(messages: list) -> list[tuple[int, int]]:
    return [(m.header.stamp.sec, m.header.stamp.nanosec) for m in messages]


def track_msg(track_id: int, box, state: int = TrackMsg.STATE_VISIBLE, score: float = 0.9, hits: int = 3,
              frames_since_seen: int = 0) -> TrackMsg:
    cx, cy, w, h = (float(v) for v in box)
    return TrackMsg(id=track_id, state=state, class_id=0, class_name="ball", score=score, cx=cx, cy=cy, w=w, h=h,
                    covariance=np.diag([4.0, 4.0, 1.0, 1.0]).astype(np.float32).ravel(), age=hits, hits=hits,
                    frames_since_seen=frames_since_seen, persistence_score=float("nan"))


# --- world_model -----------------------------------------------------------------------------

def moving_box(k: int) -> tuple[float, float, float, float]:
    """The box of a ball moving right at 4 px a frame (120 px/s)."""
    return 200.0 + 4.0 * k, 150.0, 40.0, 60.0


def detections(k: int, boxes) -> DetectionArray:
    return DetectionArray(header=header(k), detections=[
        DetectionMsg(cx=float(cx), cy=float(cy), w=float(w), h=float(h), score=0.9, class_id=0, class_name="ball")
        for cx, cy, w, h in boxes])


class WorldModelProbe:
    """Feeds stereo/left/detections one frame at a time and waits for each frame's TrackArray."""

    def __init__(self, ros) -> None:
        self.ros = ros
        self.tracks = ros.collect(TrackArray, "stereo/left/tracks", RELIABLE_QOS)
        self.events = ros.collect(TrackEvent, "track_events", EVENT_QOS)
        self.publisher = ros.publisher(DetectionArray, "stereo/left/detections", RELIABLE_QOS)
        ros.start(WorldModelNode)
        ros.wait_connected()

    def send(self, msg: DetectionArray) -> TrackArray:
        self.publisher.publish(msg)
        self.ros.spin_until(lambda: by_stamp(self.tracks, msg.header.stamp) is not None,
                            f"the TrackArray of stamp {msg.header.stamp}")
        return by_stamp(self.tracks, msg.header.stamp)


def test_world_model_keeps_a_stable_id_and_turns_it_into_a_ghost(ros) -> None:
    wm = WorldModelProbe(ros)
    track_ids = set()
    for k in range(20):
        msg = detections(k, [moving_box(k)])
        out = wm.send(msg)
        assert out.header == msg.header, "the image header is carried through unchanged"
        if k < 1:  # two strong hits (score 0.9, a steady box) confirm a track at once (fast_confirm_*)
            assert list(out.tracks) == [], "tentative tracks are not published"
            continue
        (track,) = out.tracks
        assert track.state == TrackMsg.STATE_VISIBLE and track.frames_since_seen == 0
        assert abs(track.cx - moving_box(k)[0]) < 3.0 and abs(track.cy - 150.0) < 3.0
        track_ids.add(track.id)
    assert len(track_ids) == 1
    (track_id,) = track_ids
    last_cx = wm.send(detections(20, [moving_box(20)])).tracks[0].cx

    variances = []
    for k in range(21, 27):
        (ghost,) = wm.send(detections(k, [])).tracks
        assert (ghost.id, ghost.state, ghost.frames_since_seen) == (track_id, TrackMsg.STATE_OCCLUDED, k - 20)
        variances.append(ghost.covariance[0])
    assert np.all(np.diff(variances) > 0), f"the ghost's cx variance must grow: {variances}"
    assert ghost.cx > last_cx + 10.0, "the ghost keeps moving with the filter's velocity"

    ros.spin_until(lambda: len(wm.events) >= 2, "BIRTH and OCCLUDED events")
    assert [(e.event, e.track_id, e.camera) for e in wm.events] == [
        (TrackEvent.BIRTH, track_id, "left"), (TrackEvent.OCCLUDED, track_id, "left")]
    assert wm.events[0].header.stamp == stamp(1) and wm.events[1].header.stamp == stamp(21)


def test_world_model_survives_nan_boxes_and_stamps_going_backwards(ros) -> None:
    wm = WorldModelProbe(ros)
    for k in range(5):
        out = wm.send(detections(k, [moving_box(k)]))
    (track,) = out.tracks

    with_nan = wm.send(detections(5, [moving_box(5), (np.nan, 150.0, 40.0, 60.0)]))
    assert [(t.id, t.state) for t in with_nan.tracks] == [(track.id, TrackMsg.STATE_VISIBLE)]
    ros.spin_until(lambda: any("rejected 1 invalid detection" in m for m in ros.log_lines("world_model", WARN)),
                   "the warning about the NaN box")

    backwards = detections(3, [moving_box(3)])
    wm.publisher.publish(backwards)
    ros.spin_until(lambda: any("stamp went backwards" in m for m in ros.log_lines("world_model", ERROR)),
                   "the error about the stamp going backwards")
    after = wm.send(detections(6, [moving_box(6)]))
    assert [(t.id, t.state, t.frames_since_seen) for t in after.tracks] == [(track.id, TrackMsg.STATE_VISIBLE, 0)]
    assert stamps_of(wm.tracks).count((stamp(3).sec, stamp(3).nanosec)) == 1, \
        "the frame that went backwards is not published (frame 3 only once, from its first pass)"


def test_world_model_resets_on_a_time_jump_back_and_goes_on(ros) -> None:
    """A bag replayed again (or a clock reset) jumps time back by more than time_jump_reset_s: the
    tracks are reset with one warning and the new frames are tracked, instead of all dropped."""
    wm = WorldModelProbe(ros)
    for k in range(100, 105):
        first = wm.send(detections(k, [moving_box(k)]))
    (old,) = first.tracks
    outs = [wm.send(detections(k, [moving_box(k)])) for k in range(0, 4)]  # 3.3 s earlier
    ros.spin_until(lambda: any("time jumped back" in m for m in ros.log_lines("world_model", WARN)),
                   "the warning about the time jump")
    assert list(outs[0].tracks) == [], "fresh tracks: tentative again (confirmed at their 2nd strong hit)"
    (new,) = outs[3].tracks
    assert new.id > old.id and new.state == TrackMsg.STATE_VISIBLE
    # whoever follows track_events forgets the old track too: its LOST event, stamped when the jump was seen
    ros.spin_until(lambda: any(e.event == TrackEvent.LOST for e in wm.events), "the old track's LOST event")
    (lost,) = [e for e in wm.events if e.event == TrackEvent.LOST]
    assert lost.track_id == old.id and lost.header.stamp == stamp(0)


def test_world_model_events_of_a_busy_frame_all_arrive(ros) -> None:
    """40 tracks hidden in one frame (a passer-by in front of the rig): 40 OCCLUDED events in one
    burst, none overwritten before the reader takes them (EVENT_QOS)."""
    wm = WorldModelProbe(ros)
    boxes = [(20.0 + 15.0 * i, 100.0 + 200.0 * (i % 2), 10.0, 14.0) for i in range(40)]
    for k in range(3):
        confirmed = wm.send(detections(k, boxes))
    assert len(confirmed.tracks) == 40
    wm.send(detections(3, []))
    ros.spin_until(lambda: sum(e.event == TrackEvent.OCCLUDED for e in wm.events) >= 40, "40 OCCLUDED events")
    assert {e.track_id for e in wm.events if e.event == TrackEvent.OCCLUDED} == {t.id for t in confirmed.tracks}


def test_a_malformed_message_is_dropped_and_the_node_goes_on(ros) -> None:
    """An unknown lifecycle state (7) cannot be converted: the message is dropped with an error
    naming the topic; the next good message is processed (the process, possibly holding every node
    of the pipeline, does not die)."""
    filtered = ros.collect(TrackArray, "stereo/left/tracks/filtered", RELIABLE_QOS)
    pub = ros.publisher(TrackArray, "stereo/left/tracks", RELIABLE_QOS)
    ros.start(PersistenceFilterNode, {"min_hits": 1, "min_mean_score": 0.0})
    ros.wait_connected()
    pub.publish(TrackArray(header=header(0), tracks=[track_msg(5, moving_box(0), state=7)]))
    ros.spin_until(lambda: any("stereo/left/tracks: dropped a message" in m and "state 7" in m
                               for m in ros.log_lines("persistence_filter", ERROR)), "the error naming the topic")
    good = TrackArray(header=header(1), tracks=[track_msg(5, moving_box(1))])
    ros.retry_until(lambda _: pub.publish(good), lambda: by_stamp(filtered, good.header.stamp) is not None,
                    "the next good message processed")


def test_parameters_are_read_only_at_run_time(ros) -> None:
    """The nodes build their core objects from the parameters once: a change at run time would not
    take effect, so it is refused with a reason instead of reported as applied."""
    node = ros.start(WorldModelNode)
    from rclpy.parameter import Parameter

    (result,) = node.set_parameters([Parameter("min_hits", value=50)])
    assert not result.successful and "read-only" in result.reason
    assert node.get_parameter("min_hits").value == 3


# --- persistence_filter ----------------------------------------------------------------------

def test_persistence_filter_passes_tracks_after_min_hits(ros) -> None:
    filtered = ros.collect(TrackArray, "stereo/left/tracks/filtered", RELIABLE_QOS)
    decisions = ros.collect(PersistenceDecisionArray, "persistence/decisions", RELIABLE_QOS)
    pub = ros.publisher(TrackArray, "stereo/left/tracks", RELIABLE_QOS)
    ros.start(PersistenceFilterNode, {"min_hits": 3, "min_mean_score": 0.5})
    ros.wait_connected()

    for k in range(3):
        msg = TrackArray(header=header(k), tracks=[
            track_msg(5, moving_box(k), score=0.8, hits=k + 1),
            track_msg(6, (400.0, 300.0, 30.0, 30.0), state=TrackMsg.STATE_TENTATIVE, score=0.95, hits=k + 1)])
        pub.publish(msg)
        ros.spin_until(lambda: by_stamp(filtered, msg.header.stamp) and by_stamp(decisions, msg.header.stamp),
                       f"filtered tracks and decisions of frame {k}")
        out, verdicts = by_stamp(filtered, msg.header.stamp), by_stamp(decisions, msg.header.stamp)
        assert out.header == msg.header and verdicts.header == msg.header
        assert verdicts.model == "min_hits_baseline"
        by_id = {d.track_id: d for d in verdicts.decisions}
        assert set(by_id) == {5, 6} and all(d.camera == "left" for d in verdicts.decisions)
        for d in verdicts.decisions:
            assert len(d.attention) == k + 1 and d.frames_observed == k + 1
            assert sum(d.attention) == pytest.approx(1.0, abs=1e-6)
        assert not by_id[6].keep and by_id[6].reason.endswith(" tentative"), "tentative tracks are never passed on"
        if k < 2:
            assert list(out.tracks) == [] and not by_id[5].keep
    (kept,) = out.tracks
    assert kept.id == 5 and kept.persistence_score == pytest.approx(0.8, abs=1e-6)  # mean score x min(1, 3/3)
    assert by_id[5].keep and by_id[5].score == pytest.approx(0.8, abs=1e-6)
    assert by_id[5].reason.startswith("min_hits:3/3")


# --- triangulator ----------------------------------------------------------------------------

FX, CX, CY, BASELINE = 500.0, 320.0, 240.0, 0.12
POINT = np.array([0.2, -0.1, 3.0])  # metres, left optical frame


def camera_info(frame_id: str, tx: float, valid: bool = True) -> CameraInfo:
    p = [FX, 0.0, CX, tx, 0.0, FX, CY, 0.0, 0.0, 0.0, 1.0, 0.0] if valid else [0.0] * 12
    return CameraInfo(header=Header(frame_id=frame_id), width=640, height=480, distortion_model="plumb_bob",
                      d=[0.0] * 5, k=[FX, 0.0, CX, 0.0, FX, CY, 0.0, 0.0, 1.0],
                      r=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0], p=p)


def projected_boxes(point: np.ndarray) -> tuple[tuple, tuple]:
    """Left and right boxes (40 x 60 px) centred on the projections of ``point``."""
    x, y, z = point
    u_left = FX * x / z + CX  # u = fx X / Z + cx
    v = FX * y / z + CY
    u_right = u_left - FX * BASELINE / z  # u_R = u_L - fx B / Z
    return (u_left, v, 40.0, 60.0), (u_right, v, 40.0, 60.0)


class TriangulatorProbe:
    def __init__(self, ros) -> None:
        self.ros = ros
        self.tracks3d = ros.collect(Track3DArray, "tracks3d", RELIABLE_QOS)
        self.points = ros.collect(PointCloud2, "tracks3d/points", VIZ_QOS)
        self.markers = ros.collect(MarkerArray, "tracks3d/markers", VIZ_QOS)
        self._info = {c: ros.publisher(CameraInfo, f"stereo/{c}/camera_info", SENSOR_QOS) for c in ("left", "right")}
        self._tracks = {c: ros.publisher(TrackArray, f"stereo/{c}/tracks/filtered", RELIABLE_QOS)
                        for c in ("left", "right")}
        ros.start(TriangulatorNode)
        ros.wait_connected()
        self.frame = 0

    def send(self, valid_info: bool) -> Time:
        """Publish camera_info (valid or all-zero P) and then a left/right pair of a new stamp."""
        self._info["left"].publish(camera_info(LEFT_FRAME, 0.0, valid_info))
        self._info["right"].publish(camera_info(RIGHT_FRAME, -FX * BASELINE, valid_info))
        box_left, box_right = projected_boxes(POINT)
        self.frame += 1
        for cam, box, track_id in (("left", box_left, 1), ("right", box_right, 2)):
            tracks = [track_msg(track_id, box)]
            tracks[0].persistence_score = 0.9
            self._tracks[cam].publish(TrackArray(header=header(self.frame, f"{cam}_camera_optical_frame"),
                                                 tracks=tracks))
        return stamp(self.frame)

    def published(self, t: Time) -> bool:
        return all(by_stamp(m, t) is not None for m in (self.tracks3d, self.points))

    def send_until_published(self) -> Time:
        self.ros.retry_until(lambda _: self.send(True), lambda: self.published(stamp(self.frame)),
                             "tracks3d and tracks3d/points of a stereo pair")
        return stamp(self.frame)


def assert_triangulated(probe: TriangulatorProbe, t: Time) -> None:
    out = by_stamp(probe.tracks3d, t)
    assert out.header.frame_id == LEFT_FRAME
    (track,) = out.tracks
    position = np.array([track.position.x, track.position.y, track.position.z])
    assert np.linalg.norm(position - POINT) < 0.01
    assert (track.left_track_id, track.right_track_id, track.state) == (1, 2, TrackMsg.STATE_VISIBLE)
    assert track.persistence_score == pytest.approx(0.9)
    cloud = by_stamp(probe.points, t)
    assert [f.name for f in cloud.fields] == ["x", "y", "z", "track_id", "state", "persistence"]
    (point,) = cloud_to_numpy(cloud)
    np.testing.assert_allclose([point["x"], point["y"], point["z"]], POINT, atol=0.01)
    assert point["track_id"] == track.id


def test_triangulator_triangulates_and_recovers_from_bad_camera_info(ros) -> None:
    probe = TriangulatorProbe(ros)
    good = probe.send_until_published()
    assert_triangulated(probe, good)
    ros.spin_until(lambda: any(a.markers[0].header.stamp == good for a in probe.markers), "tracks3d/markers")
    markers = next(a.markers for a in probe.markers if a.markers[0].header.stamp == good)
    assert markers[0].action == Marker.DELETEALL
    spheres = [m for m in markers if m.type == Marker.SPHERE]
    assert len(spheres) == 1 and abs(spheres[0].pose.position.z - POINT[2]) < 0.01

    def inconsistent_info_logged() -> bool:
        return any("inconsistent camera_info" in m for m in ros.log_lines("triangulator", ERROR))

    # Until the zero-P camera_info has arrived, pairs are still triangulated with the good one;
    # each pair is waited for until it is either published or rejected (the first error is logged).
    for _ in range(30):
        probe.send(False)
        ros.spin_until(lambda: inconsistent_info_logged() or probe.published(stamp(probe.frame)),
                       "a stereo pair to be triangulated or rejected")
        if inconsistent_info_logged():
            break
    else:
        raise AssertionError("the zero-P camera_info never reached the triangulator")
    rejected = stamp(probe.frame)

    recovered = probe.send_until_published()
    assert_triangulated(probe, recovered)
    # Same publishers, in order: had the rejected pair been published, it would have arrived first.
    assert by_stamp(probe.tracks3d, rejected) is None and by_stamp(probe.points, rejected) is None


# --- detector --------------------------------------------------------------------------------

TRUTH_BOX = (320.0, 240.0, 60.0, 80.0)
DISPARITY = 20.0


def scene(shift: float) -> np.ndarray:
    """(480, 640, 3) bgr8: grey background with a red block at TRUTH_BOX shifted ``shift`` px left."""
    image = np.full((480, 640, 3), 90, np.uint8)
    cx, cy, w, h = TRUTH_BOX
    x0, y0 = int(cx - shift - w / 2), int(cy - h / 2)
    image[y0:y0 + int(h), x0:x0 + int(w)] = (30, 30, 220)
    return image


def sim_object(shift: float) -> SimObject:
    cx, cy, w, h = TRUTH_BOX
    return SimObject(id=1, kind=SimObject.KIND_OBJECT, class_id=0, cx=cx - shift, cy=cy, w=w, h=h, visibility=1.0,
                     position=Point(x=0.0, y=0.0, z=3.0))


class DetectorProbe:
    """A detector on the simulated backend (easy preset) fed one object per view, over the raw or
    the compressed image transport (lossless PNG, so both give the same detections)."""

    def __init__(self, ros, transport: str = "raw") -> None:
        self.ros = ros
        self.transport = transport
        self.out = {c: ros.collect(DetectionArray, f"stereo/{c}/detections", RELIABLE_QOS) for c in ("left", "right")}
        msg_type, suffix = (Image, "") if transport == "raw" else (CompressedImage, "/compressed")
        self._images = {c: ros.publisher(msg_type, f"stereo/{c}/image_raw{suffix}", SENSOR_QOS)
                        for c in ("left", "right")}
        self._truth = ros.publisher(SimGroundTruth, "sim/ground_truth", RELIABLE_QOS)
        # the easy preset adds no boxes; with no misses either, one detection per view and frame
        ros.start(DetectorNode, {"backend": "simulated", "sim.difficulty": "easy", "sim.miss_prob_visible": 0.0,
                                 "sim.miss_prob_half_hidden": 0.0, "embedding_bins": [8, 4, 4],
                                 "image_transport": transport})
        ros.wait_connected()
        self.frame = 0

    def _image(self, image: np.ndarray, head: Header):
        return numpy_to_image(image, head, "bgr8") if self.transport == "raw" else bgr_to_compressed(image, head, "png")

    def send(self, left_encoding: str = "bgr8", right_crop: bool = False, left_corrupt: bool = False) -> Time:
        self.frame += 1
        left = self._image(scene(0.0), header(self.frame, LEFT_FRAME))
        if left_encoding != "bgr8":
            left.encoding, left.step = left_encoding, left.width * 4
            left.data = bytes(left.height * left.step)
        if left_corrupt:
            left.data = bytes(left.data[:100])  # a truncated PNG
        self._images["left"].publish(left)
        right = scene(DISPARITY)
        if right_crop:
            right = np.ascontiguousarray(right[:-16])
        self._images["right"].publish(self._image(right, header(self.frame, RIGHT_FRAME)))
        self._truth.publish(SimGroundTruth(header=header(self.frame), frame_index=self.frame,
                                           left=[sim_object(0.0)], right=[sim_object(DISPARITY)]))
        return stamp(self.frame)

    def published(self) -> bool:
        return all(by_stamp(self.out[c], stamp(self.frame)) is not None for c in ("left", "right"))

    def send_until_published(self) -> Time:
        self.ros.retry_until(lambda _: self.send(), self.published, "detections of an image pair")
        return stamp(self.frame)

    def rejected_then_recovered(self, needle: str, what: str, **bad) -> None:
        """Send bad pairs (``send(**bad)``) until the detector logs an error containing ``needle``:
        that pair gets no detections, and the next good pair gets its one per view."""
        self.ros.retry_until(lambda _: self.send(**bad),
                             lambda: any(needle in m for m in self.ros.log_lines("detector", ERROR)), what)
        rejected = stamp(self.frame)
        recovered = self.send_until_published()
        assert all(len(by_stamp(self.out[c], recovered).detections) == 1 for c in ("left", "right"))
        assert all(by_stamp(self.out[c], rejected) is None for c in ("left", "right"))


def test_detector_publishes_detections_with_embeddings_and_drops_bad_encodings(ros) -> None:
    probe = DetectorProbe(ros)
    t = probe.send_until_published()
    for cam, shift, frame_id in (("left", 0.0, LEFT_FRAME), ("right", DISPARITY, RIGHT_FRAME)):
        out = by_stamp(probe.out[cam], t)
        assert out.header == header(probe.frame, frame_id), "the image header is carried through unchanged"
        (det,) = out.detections
        assert abs(det.cx - (TRUTH_BOX[0] - shift)) < 8.0 and abs(det.cy - TRUTH_BOX[1]) < 8.0
        assert det.class_id == 0 and 0.0 < det.score <= 1.0
        assert len(det.embedding) == 8 * 4 * 4
        assert np.linalg.norm(det.embedding) == pytest.approx(1.0, abs=1e-5)

    probe.rejected_then_recovered("32FC1", "the error about the 32FC1 image", left_encoding="32FC1")


def test_detector_reads_the_compressed_transport_and_names_an_image_that_does_not_decode(ros) -> None:
    """image_transport: compressed (a robot's rosbag): the same detections as from raw images; a
    truncated PNG drops its pair with an error naming it, and the next pair is detected."""
    probe = DetectorProbe(ros, transport="compressed")
    t = probe.send_until_published()
    for cam, shift, frame_id in (("left", 0.0, LEFT_FRAME), ("right", DISPARITY, RIGHT_FRAME)):
        out = by_stamp(probe.out[cam], t)
        assert out.header == header(probe.frame, frame_id)
        assert (out.image_width, out.image_height) == (640, 480)
        (det,) = out.detections
        assert abs(det.cx - (TRUTH_BOX[0] - shift)) < 8.0 and abs(det.cy - TRUTH_BOX[1]) < 8.0
        assert len(det.embedding) == 8 * 4 * 4

    probe.rejected_then_recovered("does not decode", "the error about the truncated PNG", left_corrupt=True)


def test_detector_rejects_a_pair_of_two_image_sizes_and_goes_on(ros) -> None:
    probe = DetectorProbe(ros)
    probe.send_until_published()

    probe.rejected_then_recovered("left image is 640x480 but right is 640x464", "the error about the image sizes",
                                  right_crop=True)


# --- stereo_capture --------------------------------------------------------------------------

def test_stereo_capture_publishes_pairs_info_and_truth_with_one_stamp(ros) -> None:
    images = {c: ros.collect(Image, f"stereo/{c}/image_raw", SENSOR_QOS) for c in ("left", "right")}
    infos = {c: ros.collect(CameraInfo, f"stereo/{c}/camera_info", SENSOR_QOS) for c in ("left", "right")}
    truth = ros.collect(SimGroundTruth, "sim/ground_truth", RELIABLE_QOS)
    ros.start(StereoCaptureNode, {"source": "sim", "scenario": "clean", "max_frames": 5})

    def complete_stamps() -> set:
        sets = [set(stamps_of(m)) for m in (*images.values(), *infos.values(), truth)]
        return set.intersection(*sets)

    ros.spin_until(lambda: truth and truth[-1].frame_index == 4 and len(complete_stamps()) >= 2,
                   "the last of five frames, with images, info and truth")
    indices = [m.frame_index for m in truth]
    assert indices[0] == 0 and indices == sorted(set(indices)), "in order, none twice (a late tick skips)"
    assert len(set(stamps_of(truth))) == len(truth), "one stamp per frame"
    # each frame is stamped with its scene time: the first frame's stamp + k timer periods
    period_ns = int(1e9 / 30.0)
    t0 = truth[0].header.stamp.sec * 10**9 + truth[0].header.stamp.nanosec
    assert [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec - t0 for m in truth] == \
        [k * period_ns for k in indices]
    for sec, nanosec in complete_stamps():
        t = Time(sec=sec, nanosec=nanosec)
        left, right = by_stamp(images["left"], t), by_stamp(images["right"], t)
        assert (left.header.frame_id, right.header.frame_id) == (LEFT_FRAME, RIGHT_FRAME)
        assert (left.width, left.height, left.encoding) == (right.width, right.height, right.encoding) == \
            (640, 480, "bgr8")
        info_left, info_right = by_stamp(infos["left"], t), by_stamp(infos["right"], t)
        assert info_left.p[3] == 0.0 and info_right.p[3] < 0.0
        assert info_right.p[0] == info_left.p[0] > 0.0
        assert by_stamp(truth, t).left, "the clean scene has objects in view"


def test_stereo_capture_sends_jpeg_on_the_compressed_transport_to_a_subscriber(ros) -> None:
    """image_transport's compressed transport: the frame of the raw topic, stamp and frame_id
    alike, JPEG within its loss; encoded only because this test subscribes."""
    import cv2

    raw = ros.collect(Image, "stereo/left/image_raw", SENSOR_QOS)
    compressed = ros.collect(CompressedImage, "stereo/left/image_raw/compressed", SENSOR_QOS)
    ros.start(StereoCaptureNode, {"source": "sim", "scenario": "clean", "max_frames": 5, "jpeg_quality": 95})
    ros.spin_until(lambda: set(stamps_of(raw)) & set(stamps_of(compressed)), "a frame on both transports")
    (stamp_key, *_) = sorted(set(stamps_of(raw)) & set(stamps_of(compressed)))
    t = Time(sec=stamp_key[0], nanosec=stamp_key[1])
    jpeg, image = by_stamp(compressed, t), by_stamp(raw, t)
    assert jpeg.format == "bgr8; jpeg compressed bgr8" and jpeg.header == image.header
    decoded = cv2.imdecode(np.frombuffer(jpeg.data, np.uint8), cv2.IMREAD_COLOR)
    pixels = np.frombuffer(image.data, np.uint8).reshape(image.height, image.width, 3)
    assert decoded.shape == pixels.shape and np.abs(decoded.astype(int) - pixels).mean() < 3.0
    assert len(jpeg.data) < len(image.data) / 5


def test_a_slow_sim_capture_skips_frames_and_keeps_the_scene_time(ros, monkeypatch) -> None:
    """A capture slower than its timer drops frames as a camera's reader does: the published
    frames keep the scene's own time, not a slowed-down world under wall-clock stamps."""
    import time

    from object_permanence.core.sim.world import SimWorld

    render = SimWorld.render
    monkeypatch.setattr(SimWorld, "render", lambda self, k: time.sleep(0.09) or render(self, k))  # > 2 periods
    truth = ros.collect(SimGroundTruth, "sim/ground_truth", RELIABLE_QOS)
    ros.start(StereoCaptureNode, {"source": "sim", "scenario": "clean", "max_frames": 12})
    ros.spin_until(lambda: truth and truth[-1].frame_index == 11, "the last frame")
    indices = [m.frame_index for m in truth]
    assert indices[0] == 0 and indices == sorted(set(indices)) and len(indices) < 12, indices
    period_ns = int(1e9 / 30.0)
    t0 = truth[0].header.stamp.sec * 10**9 + truth[0].header.stamp.nanosec
    assert [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec - t0 for m in truth] == \
        [k * period_ns for k in indices]


# --- llm_explainer ---------------------------------------------------------------------------

class ExplainerProbe:
    def __init__(self, ros, base_url: str) -> None:
        self.ros = ros
        self.explanations = ros.collect(Explanation, "explanations", EVENT_QOS)
        self._tracks = ros.publisher(TrackArray, "stereo/left/tracks", RELIABLE_QOS)
        self._decisions = ros.publisher(PersistenceDecisionArray, "persistence/decisions", RELIABLE_QOS)
        ros.start(LlmExplainerNode, {"backend": "openai", "base_url": base_url, "model": "fake-model",
                                     "timeout_s": 5.0})
        ros.wait_connected()

    def send(self, k: int) -> None:
        """A kept track 7 and the decision on it (the node needs the track before the decision)."""
        self._tracks.publish(TrackArray(header=header(k), tracks=[track_msg(7, moving_box(k))]))
        self._decisions.publish(PersistenceDecisionArray(header=header(k), model="min_hits_baseline", decisions=[
            PersistenceDecisionMsg(track_id=7, camera="left", score=0.85, keep=True, attention=[1 / 3] * 3,
                                   frames_observed=3, reason="min_hits:3/3 mean_score:0.85>=0.50")]))

    def explain(self) -> Explanation:
        self.ros.retry_until(self.send, lambda: len(self.explanations) > 0, "an explanation")
        (explanation,) = self.explanations
        assert (explanation.track_id, explanation.camera, explanation.kept) == (7, "left", True)
        return explanation


def test_llm_explainer_uses_the_language_model(ros, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    with FakeOpenAIServer() as server:
        explanation = ExplainerProbe(ros, server.base_url).explain()
        assert explanation.source == "llm:fake-model"
        assert explanation.text == "Track 7 was kept (fake model fake-model)."
        assert server.authorizations[0] == "Bearer test-key"
        facts = json.loads(server.requests[0]["messages"][-1]["content"])
        assert (facts["track_id"], facts["camera"], facts["decision"]) == (7, "left", "kept")


def test_llm_explainer_falls_back_to_the_template(ros, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    with FakeOpenAIServer(status=500) as server:
        explanation = ExplainerProbe(ros, server.base_url).explain()
        assert explanation.source == "template"
        assert "7" in explanation.text and "fake" not in explanation.text
        assert server.request_count >= 1, "the language model was asked first"


# --- bad parameters --------------------------------------------------------------------------

@pytest.mark.parametrize("node_cls, params, needle", [
    pytest.param(WorldModelNode, {"min_hits": 0}, "min_hits", id="world_model-min_hits"),
    pytest.param(WorldModelNode, {"max_ghost_age_s": -1.0}, "max_ghost_age_s", id="world_model-max_ghost_age_s"),
    pytest.param(PersistenceFilterNode, {"min_hits": 0}, "min_hits", id="persistence_filter-min_hits"),
    pytest.param(DetectorNode, {"backend": "foo"}, "'backend' is 'foo'", id="detector-backend"),
    pytest.param(DetectorNode, {"embedding_bins": [8, 4]}, "embedding_bins", id="detector-embedding_bins"),
    pytest.param(DetectorNode, {"image_transport": "theora"}, "'image_transport' is 'theora'; allowed values: "
                 "'raw', 'compressed'", id="detector-image_transport"),
    pytest.param(DetectorNode, {"backend": "ultralytics", "weights": "/nonexistent/yolo.pt"},
                 "weights file not found", id="detector-ultralytics-weights"),
    pytest.param(DetectorNode, {"sim.miss_prob_visible": 2.0}, "parameter 'sim.miss_prob_visible'",
                 id="detector-sim.miss_prob_visible"),
    pytest.param(DetectorNode, {"sim.difficulty": "nightmare"}, "'sim.difficulty' is 'nightmare'; allowed values: "
                 "'easy', 'realistic', 'hard', 'sim_yolo'", id="detector-sim.difficulty"),
    pytest.param(DetectorNode, {"sim.difficulty": "easy", "sim.miss_prob_half_hidden": 0.01},
                 "parameter 'sim.miss_prob_half_hidden'", id="detector-sim.preset_conflict"),
    pytest.param(StereoCaptureNode, {"source": "video"}, "'calibration_file' is required",
                 id="stereo_capture-calibration_file"),
    pytest.param(StereoCaptureNode, {"scenario": "nowhere"}, "'scenario'", id="stereo_capture-scenario"),
    pytest.param(WorldModelNode, {"events_jsonl": "/nonexistent/dir/events.jsonl"}, "parameter 'events_jsonl'",
                 id="world_model-events_jsonl"),
    pytest.param(TriangulatorNode, {"min_depth_m": -1.0}, "min_depth_m", id="triangulator-min_depth_m"),
    pytest.param(LlmExplainerNode, {"backend": "openai", "api_key_env": "OBJECT_PERMANENCE_TEST_UNSET"},
                 "backend 'openai'", id="llm_explainer-no_key"),
])
def test_bad_parameters_raise_parameter_error(ros, monkeypatch, node_cls: type, params: dict, needle: str) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ParameterError, match=needle):
        ros.start(node_cls, params)


CALIBRATION_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "stereo_calibration"


@pytest.mark.skipif(not CALIBRATION_DATA.is_dir(), reason=f"{CALIBRATION_DATA} not found")
def test_stereo_capture_rectifies_real_image_pairs_with_a_calibration(ros, tmp_path) -> None:
    """The real-camera path: image folders + a calibration made by calibrate_stereo -> rectified
    pairs (chessboard corners on the same rows) with the CameraInfo of the rectified images."""
    import cv2

    from object_permanence.core.calibration import find_chessboard
    from object_permanence.ros.conversions import image_to_numpy
    from object_permanence.tools import calibrate_stereo

    calibration = tmp_path / "stereo.yaml"
    assert calibrate_stereo.main(["--left", str(CALIBRATION_DATA / "left*.jpg"), "--right",
                                  str(CALIBRATION_DATA / "right*.jpg"), "-o", str(calibration)]) == 0
    images = {c: ros.collect(Image, f"stereo/{c}/image_raw", SENSOR_QOS) for c in ("left", "right")}
    infos = {c: ros.collect(CameraInfo, f"stereo/{c}/camera_info", SENSOR_QOS) for c in ("left", "right")}
    ros.start(StereoCaptureNode, {"source": "images", "images_left": str(CALIBRATION_DATA / "left*.jpg"),
                                  "images_right": str(CALIBRATION_DATA / "right*.jpg"),
                                  "calibration_file": str(calibration), "fps": 10.0, "max_frames": 3})
    ros.spin_until(lambda: all(len(images[c]) >= 2 and infos[c] for c in images), "rectified pairs and camera_info")
    assert infos["right"][0].p[3] < 0.0 and infos["left"][0].width == 640
    for info in (infos["left"][0], infos["right"][0]):  # the camera_info of rectified images (ROS convention)
        assert not any(info.d) and list(info.r) == [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
        np.testing.assert_array_equal(np.reshape(info.k, (3, 3)), np.reshape(info.p, (3, 4))[:, :3])
    for left_msg, right_msg in zip(images["left"], images["right"]):
        if stamps_of([left_msg]) != stamps_of([right_msg]):
            continue
        corners = [find_chessboard(cv2.cvtColor(image_to_numpy(m), cv2.COLOR_BGR2GRAY), (9, 6))
                   for m in (left_msg, right_msg)]
        if all(c is not None for c in corners):
            assert np.median(np.abs(corners[0][:, 1] - corners[1][:, 1])) < 1.0  # rows aligned
            return
    pytest.fail("no rectified pair with the chessboard found in both views")
