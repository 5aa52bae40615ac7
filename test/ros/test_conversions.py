"""Message conversions, markers, stamp synchronisation and parameter validation (no message traffic)."""
from __future__ import annotations

import math
import struct

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy is not importable (source scripts/ros_env.sh)")
pytest.importorskip("object_permanence.msg", reason="object_permanence interfaces are not built (colcon build)")

from builtin_interfaces.msg import Time  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image, PointField  # noqa: E402
from std_msgs.msg import Header  # noqa: E402
from visualization_msgs.msg import Marker  # noqa: E402

from object_permanence.core.types import (  # noqa: E402
    Detection,
    EventKind,
    GroundTruthObject,
    ObjectKind,
    PersistenceDecision,
    Track,
    Track3D,
    TrackEvent,
    TrackState,
)
from object_permanence.core.world_model import WorldModelConfig  # noqa: E402
from object_permanence.ros.conversions import (  # noqa: E402
    ConversionError,
    as_bgr,
    bgr_to_compressed,
    compressed_image_size,
    camera_info_msg,
    cloud_to_numpy,
    decision_from_msg,
    decision_to_msg,
    detection_to_msg,
    detections_from_msg,
    event_from_msg,
    event_to_msg,
    image_to_numpy,
    numpy_to_image,
    projection_matrix,
    sec_to_stamp,
    sim_objects_from_msg,
    sim_objects_to_msg,
    stamp_to_sec,
    track3d_from_msg,
    track3d_to_msg,
    track_from_msg,
    track_to_msg,
    tracks_to_cloud,
)
from object_permanence.ros.images import image_subscription, image_to_bgr  # noqa: E402
from object_permanence.ros.markers import MIN_DIAMETER_M, tracks_to_markers  # noqa: E402
from object_permanence.ros.params import Param, ParameterError, build_config, declare  # noqa: E402
from object_permanence.ros.sync import ExactStampSynchronizer, header_stamp_key  # noqa: E402

pytestmark = pytest.mark.ros

HEADER = Header(stamp=Time(sec=12, nanosec=345_000_000), frame_id="left_camera_optical_frame")


def _pattern(shape: tuple[int, ...]) -> np.ndarray:
    """A deterministic uint8 image whose pixels all differ from their neighbours."""
    return (np.arange(np.prod(shape), dtype=np.uint32) * 7 % 251).astype(np.uint8).reshape(shape)


# --- images ----------------------------------------------------------------------------------

@pytest.mark.parametrize("encoding, shape", [("bgr8", (6, 5, 3)), ("rgb8", (4, 7, 3)), ("mono8", (5, 9))])
def test_image_round_trip(encoding: str, shape: tuple[int, ...]) -> None:
    image = _pattern(shape)
    msg = numpy_to_image(image, HEADER, encoding)
    assert (msg.height, msg.width, msg.encoding) == (shape[0], shape[1], encoding)
    assert msg.step == shape[1] * (shape[2] if len(shape) == 3 else 1)
    assert msg.header == HEADER
    np.testing.assert_array_equal(image_to_numpy(msg), image)


@pytest.mark.parametrize("encoding, sites", [
    ("bayer_rggb8", ((0, 0, 2), (0, 1, 1), (1, 0, 1), (1, 1, 0))),  # (row, col, BGR channel) of the 2x2 cell
    ("bayer_bggr8", ((0, 0, 0), (0, 1, 1), (1, 0, 1), (1, 1, 2))),
    ("bayer_gbrg8", ((0, 0, 1), (0, 1, 0), (1, 0, 2), (1, 1, 1))),
    ("bayer_grbg8", ((0, 0, 1), (0, 1, 2), (1, 0, 0), (1, 1, 1)))])
def test_bayer_images_are_demosaiced_to_bgr(encoding: str, sites) -> None:
    """A raw camera's colour mosaic of a flat colour comes out as that colour (away from the border)."""
    colour = np.array([30, 120, 200], np.uint8)  # B, G, R
    mosaic = np.zeros((8, 8), np.uint8)
    for row, col, channel in sites:
        mosaic[row::2, col::2] = colour[channel]
    msg = Image(header=HEADER, height=8, width=8, encoding=encoding, step=8, data=mosaic.tobytes())
    bgr = as_bgr(image_to_numpy(msg), encoding)
    assert bgr.shape == (8, 8, 3)
    np.testing.assert_array_equal(bgr[2:6, 2:6], np.broadcast_to(colour, (4, 4, 3)))


def test_yuv422_images_are_converted_to_bgr() -> None:
    """Packed YUV 4:2:2 in both byte orders ROS names (yuv422: UYVY, yuv422_yuy2: YUYV) gives the
    same BGR image, and a high V (red difference) with a low U comes out red."""
    planes = {"Y": 128, "U": 64, "V": 192}
    out = []
    for encoding, order in (("yuv422", "UYVY"), ("yuv422_yuy2", "YUYV")):
        packed = np.tile(np.array([planes[c] for c in order] * 2, np.uint8), (3, 1))  # 3 rows of 4 pixels
        msg = Image(header=HEADER, height=3, width=4, encoding=encoding, step=8, data=packed.tobytes())
        out.append(as_bgr(image_to_numpy(msg), encoding))
    assert out[0].shape == (3, 4, 3)
    np.testing.assert_array_equal(out[0], out[1])
    b, g, r = (int(v) for v in out[0][1, 1])
    assert r > g + 50 and r > b + 50


def test_image_with_padded_step_is_cropped_to_width() -> None:
    image = _pattern((4, 5, 3))
    step = 5 * 3 + 7  # 7 bytes of row padding
    padded = np.full((4, step), 0xEE, dtype=np.uint8)
    padded[:, :15] = image.reshape(4, 15)
    msg = Image(header=HEADER, height=4, width=5, encoding="bgr8", step=step, data=padded.tobytes())
    out = image_to_numpy(msg)
    assert out.shape == (4, 5, 3)
    np.testing.assert_array_equal(out, image)


def test_image_to_numpy_is_a_view_of_the_message_buffer() -> None:
    msg = numpy_to_image(_pattern((8, 6, 3)), HEADER, "bgr8")
    view = image_to_numpy(msg)
    assert np.shares_memory(view, np.frombuffer(msg.data, dtype=np.uint8))


def test_numpy_to_image_owns_a_copy_of_the_pixels() -> None:
    image = _pattern((3, 4, 3))
    msg = numpy_to_image(image, HEADER, "bgr8")
    image[0, 0, 0] ^= 0xFF
    assert image_to_numpy(msg)[0, 0, 0] != image[0, 0, 0]


@pytest.mark.parametrize("kwargs, needle", [
    ({"encoding": "32FC1", "height": 2, "width": 2, "step": 8, "data": bytes(16)}, "32FC1"),
    ({"encoding": "bgr8", "height": 0, "width": 4, "step": 12, "data": b""}, "empty"),
    ({"encoding": "bgr8", "height": 2, "width": 2, "step": 6, "data": bytes(11)}, "does not match"),
    ({"encoding": "bgr8", "height": 2, "width": 2, "step": 5, "data": bytes(10)}, "does not match"),
    ({"encoding": "mono8", "height": 9000, "width": 9000, "step": 9000, "data": b""}, "too large"),
])
def test_image_to_numpy_rejects_bad_images(kwargs: dict, needle: str) -> None:
    with pytest.raises(ConversionError, match=needle):
        image_to_numpy(Image(header=HEADER, **kwargs))


@pytest.mark.parametrize("image, encoding", [
    (np.zeros((2, 2, 3), np.float32), "bgr8"),
    (np.zeros((2, 2, 3), np.uint8), "mono8"),
    (np.zeros((2, 2), np.uint8), "bgr8"),
    (np.zeros((2, 2, 3), np.uint8), "yuv422"),
])
def test_numpy_to_image_rejects_mismatched_arrays(image: np.ndarray, encoding: str) -> None:
    with pytest.raises(ConversionError):
        numpy_to_image(image, HEADER, encoding)


# --- the compressed image transport ------------------------------------------------------------

def _photo_like(height: int = 96, width: int = 128) -> np.ndarray:
    """A smooth BGR image (JPEG keeps it within a few grey levels; noise it would not)."""
    import cv2

    coarse = np.random.default_rng(3).integers(0, 256, (6, 8, 3)).astype(np.uint8)
    return cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)


def test_png_compressed_images_decode_to_the_same_pixels() -> None:
    image = np.random.default_rng(0).integers(0, 256, (30, 41, 3), dtype=np.uint8)  # odd width: no padding
    msg = bgr_to_compressed(image, HEADER, "png")
    assert msg.format == "bgr8; png compressed bgr8" and msg.header == HEADER
    assert np.array_equal(image_to_bgr(msg), image)


def test_jpeg_compressed_images_decode_close_to_the_original() -> None:
    image = _photo_like()
    decoded = image_to_bgr(bgr_to_compressed(image, HEADER, "jpeg", quality=95))
    assert decoded.shape == image.shape and decoded.dtype == np.uint8
    assert np.abs(decoded.astype(int) - image).mean() < 2.0


@pytest.mark.parametrize("fmt", ["rgb8; jpeg compressed bgr8", "jpeg", "JPG", "", "mono8; png compressed mono8"])
def test_compressed_formats_image_transport_and_drivers_write_are_read(fmt: str) -> None:
    """compressed_image_transport compresses colour in BGR order whatever the source encoding
    (the format's first word); drivers write a bare codec name, or nothing."""
    import cv2

    image = _photo_like()
    if fmt.startswith("mono8"):
        ok, data = cv2.imencode(".png", image[:, :, 1])
        expected = np.repeat(image[:, :, 1:2], 3, axis=2)  # grey comes out as three equal channels
    else:
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        expected = image
    assert ok
    decoded = image_to_bgr(CompressedImage(header=HEADER, format=fmt, data=data.tobytes()))
    assert decoded.shape == expected.shape
    assert np.abs(decoded.astype(int) - expected).mean() < 2.0


@pytest.mark.parametrize("fmt, data, needle", [
    ("16UC1; compressedDepth png", b"\x89PNG", "depth image"),
    ("bgr8; tiff compressed bgr8", b"II*", "unsupported compressed image format"),
    ("jpeg", b"", "empty compressed image"),
    ("jpeg", b"\xff\xd8 not a jpeg", "does not decode"),
])
def test_compressed_images_that_are_not_camera_images_are_named(fmt: str, data: bytes, needle: str) -> None:
    with pytest.raises(ConversionError, match=needle):
        image_to_bgr(CompressedImage(header=HEADER, format=fmt, data=data))


@pytest.mark.parametrize("ext, params", [(".png", []), (".jpg", []), (".jpg", ["progressive"])])
def test_compressed_image_size_is_read_from_the_header(ext: str, params: list) -> None:
    import cv2

    flags = [cv2.IMWRITE_JPEG_PROGRESSIVE, 1] if params else []
    ok, data = cv2.imencode(ext, np.zeros((37, 53, 3), np.uint8), flags)
    assert ok and compressed_image_size(data.tobytes()) == (53, 37)
    assert compressed_image_size(b"neither") is None and compressed_image_size(b"\xff\xd8\xff") is None


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_a_compressed_image_claiming_a_huge_size_is_refused_before_decoding(ext: str) -> None:
    """A header of 60000 x 60000 (10 GB of BGR pixels) is refused from the header alone."""
    import cv2

    ok, data = cv2.imencode(ext, np.zeros((8, 8, 3), np.uint8))
    data = bytearray(data.tobytes())
    huge = (60000).to_bytes(2, "big")
    if ext == ".png":
        data[16:24] = (60000).to_bytes(4, "big") * 2  # IHDR width, height
    else:
        sof = next(i for i in range(2, len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xC0)
        data[sof + 5:sof + 9] = huge + huge  # SOF0 height, width
    assert compressed_image_size(bytes(data)) == (60000, 60000)
    with pytest.raises(ConversionError, match="too large .* not decoded"):
        image_to_bgr(CompressedImage(header=HEADER, format="", data=bytes(data)))


def test_image_subscription_names_the_image_transport_topics() -> None:
    assert image_subscription("left", "raw") == (Image, "stereo/left/image_raw")
    assert image_subscription("right", "compressed") == (CompressedImage, "stereo/right/image_raw/compressed")
    with pytest.raises(ValueError, match="theora"):
        image_subscription("left", "theora")


# --- stamps, camera info ---------------------------------------------------------------------

@pytest.mark.parametrize("t", [0.0, 12.345, 1_700_000_000.123456789, 3.9999999999])
def test_stamp_round_trip(t: float) -> None:
    stamp = sec_to_stamp(t)
    assert 0 <= stamp.nanosec <= 999_999_999
    assert stamp_to_sec(stamp) == pytest.approx(t, rel=1e-15, abs=2e-9)  # 1 ns resolution


def test_projection_matrix_validates_camera_info() -> None:
    fields = {"width": 640, "height": 480, "distortion_model": "plumb_bob", "d": [0.0] * 5,
              "k": [500.0, 0, 320, 0, 500, 240, 0, 0, 1], "r": np.eye(3).ravel().tolist(),
              "p": [500.0, 0, 320, -60.0, 0, 500, 240, 0, 0, 0, 1, 0]}
    info = camera_info_msg(fields, HEADER)
    np.testing.assert_array_equal(projection_matrix(info), np.array(fields["p"]).reshape(3, 4))
    with pytest.raises(ConversionError, match="projection"):
        projection_matrix(camera_info_msg({**fields, "p": [0.0] * 12}, HEADER))
    with pytest.raises(ConversionError, match="projection"):
        projection_matrix(camera_info_msg({**fields, "p": [math.nan] + fields["p"][1:]}, HEADER))


# --- object messages -------------------------------------------------------------------------

def _track(track_id: int = 4, state: TrackState = TrackState.OCCLUDED, embedding: bool = True) -> Track:
    cov = np.diag([4.0, 9.0, 1.0, 2.25])
    cov[0, 1] = cov[1, 0] = 0.5
    return Track(track_id=track_id, state=state, box=np.array([100.5, 200.25, 40.0, 80.0]),
                 velocity=np.array([3.5, -1.25]), covariance=cov, score=0.75, class_id=2, class_name="car",
                 age=17, hits=12, frames_since_seen=3,
                 embedding=np.array([0.6, 0.8, 0.0], np.float32) if embedding else None,
                 persistence_score=0.875)


def test_track_round_trip() -> None:
    for track in (_track(), _track(embedding=False)):
        back = track_from_msg(track_to_msg(track))
        for name in ("track_id", "state", "score", "class_id", "class_name", "age", "hits", "frames_since_seen",
                     "persistence_score"):
            assert getattr(back, name) == getattr(track, name), name
        np.testing.assert_array_equal(back.box, track.box)
        np.testing.assert_array_equal(back.velocity, track.velocity)
        np.testing.assert_array_equal(back.covariance, track.covariance)
        if track.embedding is None:
            assert back.embedding is None
        else:
            np.testing.assert_array_equal(back.embedding, track.embedding)


def test_track_round_trip_keeps_unscored_nan() -> None:
    track = _track()
    track.persistence_score = float("nan")
    assert math.isnan(track_from_msg(track_to_msg(track)).persistence_score)


def test_detection_round_trip() -> None:
    dets = [Detection(box=np.array([10.0, 20.0, 30.0, 40.0]), score=0.5, class_id=1, class_name="person",
                      embedding=np.array([1.0, 0.0], np.float32)),
            Detection(box=np.array([1.5, 2.5, 3.0, 4.0]), score=0.25, class_id=0)]
    back = detections_from_msg([detection_to_msg(d) for d in dets])
    assert len(back) == 2
    for a, b in zip(dets, back):
        np.testing.assert_array_equal(b.box, a.box)
        assert (b.score, b.class_id, b.class_name) == (a.score, a.class_id, a.class_name)
    np.testing.assert_array_equal(back[0].embedding, dets[0].embedding)
    assert back[1].embedding is None


def test_track3d_round_trip() -> None:
    cov = np.array([[0.01, 0.002, 0.0], [0.002, 0.02, 0.0], [0.0, 0.0, 0.09]])
    track = Track3D(track_id=9, state=TrackState.VISIBLE, class_id=3, class_name="box",
                    position=np.array([0.25, -0.5, 3.0]), velocity=np.array([0.1, 0.0, -0.2]), covariance=cov,
                    left_track_id=4, right_track_id=5, persistence_score=0.5, frames_since_seen=0,
                    trail=[np.zeros(3)])
    back = track3d_from_msg(track3d_to_msg(track))
    for name in ("track_id", "state", "class_id", "class_name", "left_track_id", "right_track_id",
                 "persistence_score", "frames_since_seen"):
        assert getattr(back, name) == getattr(track, name), name
    np.testing.assert_array_equal(back.position, track.position)
    np.testing.assert_array_equal(back.velocity, track.velocity)
    np.testing.assert_array_equal(back.covariance, cov)


def test_decision_round_trip() -> None:
    decision = PersistenceDecision(track_id=7, score=0.625, keep=True, attention=np.array([0.25, 0.25, 0.5]),
                                   frames_observed=3, reason="min_hits:3/3 mean_score:0.80>=0.50")
    msg = decision_to_msg(decision, "right")
    assert msg.camera == "right"
    back = decision_from_msg(msg)
    assert (back.track_id, back.score, back.keep, back.frames_observed, back.reason) == \
        (7, 0.625, True, 3, decision.reason)
    np.testing.assert_array_equal(back.attention, decision.attention)
    assert back.attention.sum() == pytest.approx(1.0)


def test_event_round_trip() -> None:
    event = TrackEvent(track_id=11, kind=EventKind.REACQUIRED, state=TrackState.VISIBLE,
                       box=np.array([320.5, 240.25, 30.0, 60.0]), frames_unseen=14)
    msg = event_to_msg(event, HEADER, "left")
    assert (msg.header, msg.camera) == (HEADER, "left")
    back = event_from_msg(msg)
    assert (back.track_id, back.kind, back.state, back.frames_unseen) == (11, EventKind.REACQUIRED,
                                                                          TrackState.VISIBLE, 14)
    np.testing.assert_array_equal(back.box[:2], event.box[:2])


# --- simulator ground truth ------------------------------------------------------------------

def test_sim_objects_round_trip_amodal_and_visible_boxes_and_reflection_sources() -> None:
    entries = [
        GroundTruthObject(object_id=3, kind=ObjectKind.OBJECT, class_id=2, box=np.array([100.5, 200.25, 40.0, 80.0]),
                          visibility=0.5, position=np.array([0.25, -0.5, 3.0]),
                          visible_box=np.array([90.5, 200.25, 20.0, 80.0])),
        GroundTruthObject(object_id=1009, kind=ObjectKind.REFLECTION, class_id=2,
                          box=np.array([100.5, 300.0, 40.0, 80.0]), visibility=1.0, position=np.full(3, np.nan),
                          visible_box=np.array([100.5, 300.0, 40.0, 80.0]), source_id=3),
        GroundTruthObject(object_id=4, kind=ObjectKind.OBJECT, class_id=0, box=np.array([640.0, 10.0, 0.0, 20.0]),
                          visibility=0.0, position=np.array([2.0, 0.0, 4.0])),  # wholly off-image
    ]
    msgs = sim_objects_to_msg(entries)
    assert [(m.vis_cx, m.vis_cy, m.vis_w, m.vis_h, m.source_id) for m in msgs] == \
        [(90.5, 200.25, 20.0, 80.0, 0), (100.5, 300.0, 40.0, 80.0, 3), (0.0, 0.0, 0.0, 0.0, 0)]
    back = sim_objects_from_msg(msgs)
    for a, b in zip(entries, back):
        assert (b.object_id, b.kind, b.class_id, b.visibility, b.source_id) == \
            (a.object_id, a.kind, a.class_id, a.visibility, a.source_id)
        np.testing.assert_array_equal(b.box, a.box)
        np.testing.assert_array_equal(b.visible_box, a.visible_box)
        np.testing.assert_array_equal(b.position, a.position)  # NaN for the reflection, kept
    bad = sim_objects_to_msg(entries[:1])
    bad[0].kind = 9
    with pytest.raises(ConversionError, match="kind 9"):
        sim_objects_from_msg(bad)


def test_sim_objects_round_trip_a_simulated_frame() -> None:
    from dataclasses import replace

    from object_permanence.core.sim import SimWorld, make_scenario

    world = SimWorld(replace(make_scenario("noisy"), textures="synthetic", reflection_rate=20.0), seed=2)
    truth = world.ground_truth(5)
    for entries in (truth.left, truth.right):
        back = sim_objects_from_msg(sim_objects_to_msg(entries))
        assert [(g.object_id, g.kind, g.source_id) for g in back] == [(g.object_id, g.kind, g.source_id)
                                                                      for g in entries]
        np.testing.assert_allclose([g.visible_box for g in back], [g.visible_box for g in entries], atol=1e-3)
        np.testing.assert_allclose([g.box for g in back], [g.box for g in entries], atol=1e-3)
    assert any(g.source_id for g in truth.left + truth.right)  # reflections present, with their sources
    assert any(0.0 < g.visibility < 1.0 for g in truth.left + truth.right)


# --- point cloud -----------------------------------------------------------------------------

def _track3d(track_id: int, state: TrackState, position, cov_diag=(1e-4, 1e-4, 1e-3), persistence=0.9) -> Track3D:
    return Track3D(track_id=track_id, state=state, class_id=0, class_name="ball",
                   position=np.asarray(position, dtype=np.float64), velocity=np.zeros(3),
                   covariance=np.diag(cov_diag), left_track_id=track_id, right_track_id=track_id + 100,
                   persistence_score=persistence, frames_since_seen=0 if state == TrackState.VISIBLE else 5,
                   trail=[np.asarray(position, dtype=np.float64) - 0.1, np.asarray(position, dtype=np.float64)])


def test_point_cloud_layout() -> None:
    big_id = 2**40 + 7  # a clock-seeded 64-bit id: exact in the FLOAT64 field
    tracks = [_track3d(3, TrackState.VISIBLE, [0.5, -0.25, 3.0], persistence=0.75),
              _track3d(big_id, TrackState.OCCLUDED, [-1.0, 0.125, 6.5], persistence=0.5)]
    msg = tracks_to_cloud(tracks, HEADER)
    layout = [(f.name, f.offset, f.datatype, f.count) for f in msg.fields]
    assert layout == [("x", 0, PointField.FLOAT32, 1), ("y", 4, PointField.FLOAT32, 1), ("z", 8, PointField.FLOAT32, 1),
                      ("track_id", 16, PointField.FLOAT64, 1), ("state", 12, PointField.UINT8, 1),
                      ("persistence", 24, PointField.FLOAT32, 1)]
    assert (msg.height, msg.width, msg.point_step, msg.row_step) == (1, 2, 32, 64)
    assert msg.header == HEADER and not msg.is_bigendian and len(msg.data) == 64
    raw = bytes(msg.data)
    for k, t in enumerate(tracks):
        base = k * msg.point_step
        x, y, z, state = struct.unpack_from("<fffB", raw, base)
        (track_id, persistence) = struct.unpack_from("<df", raw, base + 16)
        assert (x, y, z) == tuple(np.float32(t.position))
        assert (int(track_id), state, persistence) == (t.track_id, int(t.state), t.persistence_score)


def test_point_cloud_round_trip() -> None:
    tracks = [_track3d(i, TrackState.VISIBLE, [0.1 * i, 0.2, 2.0 + i]) for i in range(1, 5)]
    points = cloud_to_numpy(tracks_to_cloud(tracks, HEADER))
    assert len(points) == 4
    np.testing.assert_allclose(np.stack([points["x"], points["y"], points["z"]], axis=1),
                               np.array([t.position for t in tracks]), rtol=1e-6)
    np.testing.assert_array_equal(points["track_id"], [1, 2, 3, 4])
    empty = tracks_to_cloud([], HEADER)
    assert (empty.width, len(empty.data), len(cloud_to_numpy(empty))) == (0, 0, 0)


def test_cloud_to_numpy_rejects_foreign_layouts() -> None:
    msg = tracks_to_cloud([_track3d(1, TrackState.VISIBLE, [0, 0, 2])], HEADER)
    msg.fields = msg.fields[:3]
    with pytest.raises(ConversionError, match="layout"):
        cloud_to_numpy(msg)


# --- markers ---------------------------------------------------------------------------------

def test_markers_ghosts_translucent_and_covariance_sized() -> None:
    visible = _track3d(1, TrackState.VISIBLE, [0.0, 0.0, 3.0])
    ghost = _track3d(2, TrackState.OCCLUDED, [0.5, 0.0, 4.0], cov_diag=(0.04, 0.09, 0.25))
    lost = _track3d(3, TrackState.LOST, [1.0, 0.0, 5.0])
    markers = tracks_to_markers([visible, ghost, lost], HEADER).markers
    assert markers[0].action == Marker.DELETEALL
    spheres = {m.id: m for m in markers if m.type == Marker.SPHERE}
    assert set(spheres) == {1, 2}, "LOST tracks are not drawn"
    assert all(m.id != 3 for m in markers[1:])
    assert spheres[2].color.a < 0.5 <= spheres[1].color.a
    np.testing.assert_allclose([spheres[1].scale.x, spheres[1].scale.y, spheres[1].scale.z], MIN_DIAMETER_M)
    # 2-sigma each side: diameter 4 sigma, sigma = (0.2, 0.3, 0.5) m
    np.testing.assert_allclose([spheres[2].scale.x, spheres[2].scale.y, spheres[2].scale.z], [0.8, 1.2, 2.0])
    assert spheres[2].ns != spheres[1].ns
    assert all(m.header == HEADER for m in markers)


# --- exact-stamp synchroniser ----------------------------------------------------------------

def test_synchronizer_completes_sets_in_input_order() -> None:
    calls = []
    sync = ExactStampSynchronizer(3, lambda *m: calls.append(m), queue_size=5)
    sync.add(2, (1, 0), "c1")
    sync.add(0, (1, 0), "a1")
    assert calls == []
    sync.add(1, (1, 0), "b1")
    assert calls == [("a1", "b1", "c1")]
    assert sync.dropped == 0


def test_synchronizer_drops_stale_sets() -> None:
    calls = []
    sync = ExactStampSynchronizer(2, lambda *m: calls.append(m), queue_size=5)
    sync.add(0, (1, 0), "a1")
    sync.add(0, (2, 0), "a2")
    sync.add(1, (2, 0), "b2")
    assert calls == [("a2", "b2")]
    assert sync.dropped == 1  # stamp 1 can no longer complete in order
    sync.add(0, (3, 0), "a3")
    sync.add(1, (3, 0), "b3")
    assert calls[-1] == ("a3", "b3") and sync.dropped == 1


def test_synchronizer_is_bounded() -> None:
    calls = []
    sync = ExactStampSynchronizer(2, lambda *m: calls.append(m), queue_size=3)
    for sec in range(1, 6):
        sync.add(0, (sec, 0), f"a{sec}")
    assert sync.dropped == 2  # stamps 1 and 2 evicted, 3..5 wait
    sync.add(1, (1, 0), "b1")  # its partner is gone: it waits alone and evicts stamp 3
    assert calls == [] and sync.dropped == 3
    sync.add(1, (5, 0), "b5")
    assert calls == [("a5", "b5")]
    assert sync.dropped == 5  # stamps 4 and 1 are older than the completed 5


def test_synchronizer_inputs_use_header_stamps() -> None:
    calls = []
    sync = ExactStampSynchronizer(2, lambda *m: calls.append(m))
    left, right = sync.inputs(header_stamp_key)
    a, b = Image(header=HEADER), Image(header=Header(stamp=HEADER.stamp, frame_id="right"))
    left(a)
    right(Image(header=Header(stamp=Time(sec=12, nanosec=0))))  # an earlier frame without a partner
    right(b)
    assert calls == [(a, b)]


@pytest.mark.parametrize("n_inputs, queue_size, needle", [(0, 10, "n_inputs"), (2, 0, "queue_size")])
def test_synchronizer_validates_arguments(n_inputs: int, queue_size: int, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        ExactStampSynchronizer(n_inputs, print, queue_size)


# --- parameters ------------------------------------------------------------------------------

PARAMS = (
    Param("rate_hz", 2.0, "A rate.", low=0.1, high=10.0, read_only=False),
    Param("count", 3, "A count.", low=1, high=100, read_only=False),
    Param("mode", "fast", "A mode.", choices=("fast", "slow"), read_only=False),
    Param("frozen", 1, "Read-only (the default: nodes read parameters once)."),
    Param("gain", 1.0, "Open-ended (no range descriptor: only declare() checks it).", low=0.0, read_only=False),
)


def _node(context, overrides: dict) -> Node:
    return Node("params_under_test", context=context, start_parameter_services=False, enable_rosout=False,
                parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()])


def test_declare_returns_validated_values(ros_context) -> None:
    node = _node(ros_context, {"rate_hz": 5.0, "mode": "slow"})
    try:
        assert declare(node, PARAMS) == {"rate_hz": 5.0, "count": 3, "mode": "slow", "frozen": 1, "gain": 1.0}
        descriptor = node.describe_parameter("count")
        assert (descriptor.integer_range[0].from_value, descriptor.integer_range[0].to_value) == (1, 100)
        assert "fast, slow" in node.describe_parameter("mode").description
    finally:
        node.destroy_node()


@pytest.mark.parametrize("overrides, needle", [
    ({"rate_hz": 50.0}, r"parameter 'rate_hz'.*out of range"),  # the descriptor's range, checked by rclpy
    ({"count": 0}, r"parameter 'count'.*out of range"),
    ({"mode": "turbo"}, r"'mode' is 'turbo'; allowed values: 'fast', 'slow'"),
    ({"gain": -0.5}, r"'gain' is -0.5; allowed range: \[0.0, inf\]"),
    ({"gain": float("nan")}, r"'gain' must be finite"),
    ({"rate_hz": "quick"}, r"parameter 'rate_hz'"),
])
def test_declare_rejects_bad_start_values(ros_context, overrides: dict, needle: str) -> None:
    node = _node(ros_context, overrides)
    try:
        with pytest.raises(ParameterError, match=needle):
            declare(node, PARAMS)
    finally:
        node.destroy_node()


def test_set_parameters_is_validated_by_the_same_rules(ros_context) -> None:
    node = _node(ros_context, {})
    try:
        declare(node, PARAMS)
        bad = node.set_parameters([Parameter("mode", value="turbo")])[0]
        assert not bad.successful and "'mode'" in bad.reason and "'fast'" in bad.reason
        negative = node.set_parameters([Parameter("gain", value=-1.0)])[0]
        assert not negative.successful and "'gain'" in negative.reason and "allowed range" in negative.reason
        frozen = node.set_parameters([Parameter("frozen", value=2)])[0]
        assert not frozen.successful and "read-only" in frozen.reason
        assert node.get_parameter("mode").value == "fast"
        good = node.set_parameters([Parameter("mode", value="slow")])[0]
        assert good.successful and node.get_parameter("mode").value == "slow"
    finally:
        node.destroy_node()


def test_build_config_names_the_rejected_field() -> None:
    with pytest.raises(ParameterError, match="min_hits"):
        build_config(WorldModelConfig, {"min_hits": 0})
    from object_permanence.core.triangulator_config import TriangulatorConfig

    with pytest.raises(ParameterError, match="parameter 'max_depth_m'"):  # the one set wrong, named first
        build_config(TriangulatorConfig, {"max_depth_m": 0.1})
    assert build_config(WorldModelConfig, {"min_hits": 5, "unrelated": 1}).min_hits == 5
