"""Conversions between ROS messages and the core's numpy arrays / dataclasses.

The project's stand-ins for ``cv_bridge`` and ``sensor_msgs_py`` (neither is installable from
PyPI): images are viewed without a copy on the way in and copied exactly once on the way out;
point clouds are packed from a structured numpy array in one pass.
"""
from __future__ import annotations

import array
import math

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, Vector3
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, PointField
from std_msgs.msg import Header

from object_permanence.core.types import (
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
from object_permanence.msg import (
    Detection as DetectionMsg,
    PersistenceDecision as PersistenceDecisionMsg,
    SimObject,
    Track as TrackMsg,
    Track3D as Track3DMsg,
    TrackEvent as TrackEventMsg,
)

# encoding -> (numpy dtype, channels)
_ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    "bgr8": (np.dtype(np.uint8), 3),
    "rgb8": (np.dtype(np.uint8), 3),
    "bgra8": (np.dtype(np.uint8), 4),
    "rgba8": (np.dtype(np.uint8), 4),
    "mono8": (np.dtype(np.uint8), 1),
    "8UC3": (np.dtype(np.uint8), 3),
    "8UC1": (np.dtype(np.uint8), 1),
    # what machine-vision camera drivers publish raw: a colour filter mosaic, packed YUV 4:2:2
    "bayer_rggb8": (np.dtype(np.uint8), 1),
    "bayer_bggr8": (np.dtype(np.uint8), 1),
    "bayer_gbrg8": (np.dtype(np.uint8), 1),
    "bayer_grbg8": (np.dtype(np.uint8), 1),
    "yuv422": (np.dtype(np.uint8), 2),  # UYVY (ROS's name)
    "yuv422_yuy2": (np.dtype(np.uint8), 2),  # YUYV
}
SUPPORTED_ENCODINGS = tuple(_ENCODINGS)
MAX_IMAGE_PIXELS = 8192 * 8192


class ConversionError(ValueError):
    """A message that cannot be converted; the text names the problem."""


def _enum(kind: type, value: int, field: str):
    """``kind(value)``, or a ConversionError naming the field and the allowed values."""
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(f"{e.value} ({e.name})" for e in kind)
        raise ConversionError(f"{field} {value} is not a valid {kind.__name__}; allowed: {allowed}") from None


def stamp_to_sec(stamp: Time) -> float:
    """Header stamp -> seconds (float)."""
    return stamp.sec + stamp.nanosec * 1e-9


def sec_to_stamp(t: float) -> Time:
    """Seconds -> header stamp."""
    sec = math.floor(t)
    return Time(sec=int(sec), nanosec=min(int(round((t - sec) * 1e9)), 999_999_999))


def _bytes_array(a: np.ndarray) -> array.array:
    """One copy of a contiguous array's bytes into the array.array that rosidl stores."""
    out = array.array("B")
    out.frombytes(np.ascontiguousarray(a).reshape(-1).view(np.uint8).data)
    return out


def _float_array(a: np.ndarray | None) -> array.array:
    out = array.array("f")
    if a is not None and len(a):
        out.frombytes(np.ascontiguousarray(a, dtype=np.float32).reshape(-1).view(np.uint8).data)
    return out


def image_to_numpy(msg: Image) -> np.ndarray:
    """View an Image as an (H, W, C) uint8 array without copying (C=1 images give (H, W)).

    Raises:
        ConversionError: unsupported encoding, empty or huge image, or a data size that does
            not match height * step.
    """
    if msg.encoding not in _ENCODINGS:
        raise ConversionError(
            f"unsupported image encoding '{msg.encoding}' (supported: {', '.join(SUPPORTED_ENCODINGS)})")
    if msg.height == 0 or msg.width == 0:
        raise ConversionError(f"empty image ({msg.width}x{msg.height})")
    if msg.height * msg.width > MAX_IMAGE_PIXELS:
        raise ConversionError(f"image too large ({msg.width}x{msg.height} > {MAX_IMAGE_PIXELS} pixels)")
    dtype, channels = _ENCODINGS[msg.encoding]
    row_bytes = msg.width * channels * dtype.itemsize
    if msg.step < row_bytes or len(msg.data) != msg.height * msg.step:
        raise ConversionError(
            f"image data size {len(msg.data)} does not match height {msg.height} x step {msg.step} "
            f"(width {msg.width}, encoding {msg.encoding})")
    flat = np.frombuffer(msg.data, dtype=np.uint8).reshape(msg.height, msg.step)[:, :row_bytes]
    shape = (msg.height, msg.width) if channels == 1 else (msg.height, msg.width, channels)
    return flat.view(dtype).reshape(shape)


def as_bgr(image: np.ndarray, encoding: str) -> np.ndarray:
    """Return a BGR (H, W, 3) view or converted copy of an image of the given encoding (a
    Bayer mosaic is demosaiced, YUV 4:2:2 converted: one copy either way)."""
    import cv2

    if encoding in ("bgr8", "8UC3"):
        return image
    conversions = {
        "rgb8": cv2.COLOR_RGB2BGR, "bgra8": cv2.COLOR_BGRA2BGR, "rgba8": cv2.COLOR_RGBA2BGR,
        "mono8": cv2.COLOR_GRAY2BGR, "8UC1": cv2.COLOR_GRAY2BGR,
        "bayer_rggb8": cv2.COLOR_BayerRGGB2BGR, "bayer_bggr8": cv2.COLOR_BayerBGGR2BGR,
        "bayer_gbrg8": cv2.COLOR_BayerGBRG2BGR, "bayer_grbg8": cv2.COLOR_BayerGRBG2BGR,
        "yuv422": cv2.COLOR_YUV2BGR_UYVY, "yuv422_yuy2": cv2.COLOR_YUV2BGR_YUY2,
    }
    return cv2.cvtColor(image, conversions[encoding])


#: The codecs of image_transport's ``compressed`` transport (its ``format`` field names one).
COMPRESSED_CODECS = ("jpeg", "png")
#: The words a ``format`` may name them by (drivers write ``jpg`` too).
_CODEC_WORDS = ("jpeg", "jpg", "png")


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: JPEG start-of-frame markers (they carry the image size): 0xC0-0xCF but DHT, JPG and DAC.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def compressed_image_size(data) -> tuple[int, int] | None:
    """``(width, height)`` from a PNG's IHDR or a JPEG's start-of-frame header, read without
    decoding (so that a header claiming a huge image is refused before any pixel is allocated);
    None when the bytes are neither, or their header is cut short."""
    view = memoryview(data).cast("B")
    if len(view) >= 24 and bytes(view[:8]) == _PNG_SIGNATURE and bytes(view[12:16]) == b"IHDR":
        return int.from_bytes(view[16:20], "big"), int.from_bytes(view[20:24], "big")
    if len(view) < 4 or view[0] != 0xFF or view[1] != 0xD8:
        return None
    i = 2
    while i + 9 <= len(view):
        if view[i] != 0xFF:
            return None
        marker = view[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
        elif marker in _JPEG_SOF:
            return int.from_bytes(view[i + 7:i + 9], "big"), int.from_bytes(view[i + 5:i + 7], "big")
        elif marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            i += 2
        else:
            i += 2 + int.from_bytes(view[i + 2:i + 4], "big")
    return None


def compressed_to_bgr(msg: CompressedImage) -> np.ndarray:
    """Decode a CompressedImage of image_transport's ``compressed`` transport to a BGR (H, W, 3)
    uint8 array (one decode, no other copy).

    ``format`` is what compressed_image_transport writes (``"bgr8; jpeg compressed bgr8"``,
    ``"rgb8; png compressed bgr8"``, ``"mono8; jpeg compressed mono8"``: colour is compressed in BGR
    order whatever the source encoding) or a driver's bare ``"jpeg"`` / ``"png"``; an empty format is
    decoded by content. A grey image comes out as three equal channels, a 16-bit PNG scaled to 8 bits.

    Raises:
        ConversionError: a depth image (``compressedDepth``), another codec, empty data, a header
            that claims more than ``MAX_IMAGE_PIXELS`` (refused before decoding), data that does not
            decode, or a decoded image larger than that.
    """
    import cv2

    fmt = msg.format.strip().lower()
    if "compresseddepth" in fmt:
        raise ConversionError(f"compressed image format '{msg.format}' is a depth image (compressedDepth), "
                              "not a camera image")
    if fmt and not any(word in fmt for word in _CODEC_WORDS):
        raise ConversionError(f"unsupported compressed image format '{msg.format}' (supported: "
                              f"{', '.join(COMPRESSED_CODECS)}, as image_transport's compressed transport writes)")
    if len(msg.data) == 0:
        raise ConversionError("empty compressed image")
    size = compressed_image_size(msg.data)
    if size is not None and size[0] * size[1] > MAX_IMAGE_PIXELS:
        raise ConversionError(f"compressed image too large ({size[0]}x{size[1]} > {MAX_IMAGE_PIXELS} pixels), "
                              "not decoded")
    image = cv2.imdecode(np.frombuffer(msg.data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise ConversionError(f"compressed image ({len(msg.data)} bytes, format '{msg.format}') does not decode")
    if image.shape[0] * image.shape[1] > MAX_IMAGE_PIXELS:
        raise ConversionError(f"image too large ({image.shape[1]}x{image.shape[0]} > {MAX_IMAGE_PIXELS} pixels)")
    return image


def bgr_to_compressed(image: np.ndarray, header: Header, codec: str = "jpeg", quality: int = 90) -> CompressedImage:
    """Encode a BGR (H, W, 3) uint8 array as image_transport's ``compressed`` transport does
    (``format`` ``"bgr8; jpeg compressed bgr8"`` or ``"bgr8; png compressed bgr8"``); ``quality``
    is JPEG's (1-100)."""
    import cv2

    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ConversionError(f"expected an (H, W, 3) uint8 BGR array, got {image.dtype} {image.shape}")
    if codec not in COMPRESSED_CODECS:
        raise ConversionError(f"codec '{codec}' is not one of {', '.join(COMPRESSED_CODECS)}")
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if codec == "jpeg" else []
    ok, data = cv2.imencode(".jpg" if codec == "jpeg" else ".png", image, params)
    if not ok:
        raise ConversionError(f"{codec} encoding failed for a {image.shape[1]}x{image.shape[0]} image")
    msg = CompressedImage(header=header, format=f"bgr8; {codec} compressed bgr8")
    msg.data = _bytes_array(data)
    return msg


def numpy_to_image(image: np.ndarray, header: Header, encoding: str = "bgr8") -> Image:
    """Build an Image from an (H, W[, C]) uint8 array, copying the pixels exactly once."""
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ConversionError(f"expected an (H, W[, C]) uint8 array, got {image.dtype} {image.shape}")
    channels = 1 if image.ndim == 2 else image.shape[2]
    if _ENCODINGS.get(encoding, (None, -1))[1] != channels:
        raise ConversionError(f"encoding '{encoding}' does not fit an image with {channels} channels")
    msg = Image(header=header, height=image.shape[0], width=image.shape[1], encoding=encoding,
                is_bigendian=0, step=image.shape[1] * channels)
    msg.data = _bytes_array(image)
    return msg


def camera_info_msg(fields: dict, header: Header) -> CameraInfo:
    """CameraInfo from a dict with width, height, distortion_model, d, k, r, p (flat lists)."""
    return CameraInfo(
        header=header, width=int(fields["width"]), height=int(fields["height"]),
        distortion_model=str(fields["distortion_model"]), d=[float(v) for v in fields["d"]],
        k=np.asarray(fields["k"], dtype=np.float64).reshape(9), r=np.asarray(fields["r"], dtype=np.float64).reshape(9),
        p=np.asarray(fields["p"], dtype=np.float64).reshape(12))


def projection_matrix(info: CameraInfo) -> np.ndarray:
    """The (3, 4) projection matrix P of a CameraInfo, validated.

    Raises:
        ConversionError: P is all zeros, not finite, or has a non-positive focal length.
    """
    p = np.asarray(info.p, dtype=np.float64).reshape(3, 4)
    if not np.all(np.isfinite(p)) or p[0, 0] <= 0 or p[1, 1] <= 0 or p[2, 2] != 1.0:
        raise ConversionError(f"camera_info P is not a valid projection matrix: {p.ravel().tolist()}")
    return p


def detections_from_msg(msgs) -> list[Detection]:
    """DetectionArray.detections -> core Detections (boxes as given; validation is the core's)."""
    return [
        Detection(box=np.array([d.cx, d.cy, d.w, d.h], dtype=np.float64), score=float(d.score),
                  class_id=int(d.class_id), class_name=d.class_name,
                  embedding=np.asarray(d.embedding, dtype=np.float32) if len(d.embedding) else None)
        for d in msgs
    ]


def detection_to_msg(det: Detection) -> DetectionMsg:
    cx, cy, w, h = (float(v) for v in det.box)
    return DetectionMsg(cx=cx, cy=cy, w=w, h=h, score=float(det.score), class_id=int(det.class_id),
                        class_name=det.class_name, embedding=_float_array(det.embedding))


def track_to_msg(t: Track) -> TrackMsg:
    cx, cy, w, h = (float(v) for v in t.box)
    return TrackMsg(
        id=int(t.track_id), state=int(t.state), class_id=int(t.class_id), class_name=t.class_name,
        score=float(t.score), cx=cx, cy=cy, w=w, h=h, vx=float(t.velocity[0]), vy=float(t.velocity[1]),
        covariance=np.asarray(t.covariance, dtype=np.float32).reshape(16), age=int(t.age), hits=int(t.hits),
        frames_since_seen=int(t.frames_since_seen), persistence_score=float(t.persistence_score),
        embedding=_float_array(t.embedding),
        measurement=np.full(4, np.nan, np.float32) if t.measurement is None else np.asarray(t.measurement, np.float32))


def track_from_msg(m: TrackMsg) -> Track:
    return Track(
        track_id=m.id, state=_enum(TrackState, m.state, 'state'), box=np.array([m.cx, m.cy, m.w, m.h], dtype=np.float64),
        velocity=np.array([m.vx, m.vy], dtype=np.float64),
        covariance=np.asarray(m.covariance, dtype=np.float64).reshape(4, 4), score=float(m.score),
        class_id=m.class_id, class_name=m.class_name, age=m.age, hits=m.hits,
        frames_since_seen=m.frames_since_seen,
        embedding=np.asarray(m.embedding, dtype=np.float32) if len(m.embedding) else None,
        persistence_score=float(m.persistence_score), measurement=_measurement(m.measurement))


def _measurement(values) -> np.ndarray | None:
    """A Track message's raw detection box, None when it holds NaN (unmatched this frame)."""
    box = np.asarray(values, dtype=np.float64)
    return box if np.all(np.isfinite(box)) else None


def track3d_to_msg(t: Track3D) -> Track3DMsg:
    x, y, z = (float(v) for v in t.position)
    vx, vy, vz = (float(v) for v in t.velocity)
    return Track3DMsg(
        id=int(t.track_id), state=int(t.state), class_id=int(t.class_id), class_name=t.class_name,
        position=Point(x=x, y=y, z=z), velocity=Vector3(x=vx, y=vy, z=vz),
        covariance=np.asarray(t.covariance, dtype=np.float64).reshape(9),
        left_track_id=int(t.left_track_id), right_track_id=int(t.right_track_id),
        persistence_score=float(t.persistence_score), frames_since_seen=int(t.frames_since_seen))


def track3d_from_msg(m: Track3DMsg) -> Track3D:
    return Track3D(
        track_id=m.id, state=_enum(TrackState, m.state, 'state'), class_id=m.class_id, class_name=m.class_name,
        position=np.array([m.position.x, m.position.y, m.position.z]),
        velocity=np.array([m.velocity.x, m.velocity.y, m.velocity.z]),
        covariance=np.asarray(m.covariance, dtype=np.float64).reshape(3, 3),
        left_track_id=m.left_track_id, right_track_id=m.right_track_id,
        persistence_score=float(m.persistence_score), frames_since_seen=m.frames_since_seen)


def decision_to_msg(d: PersistenceDecision, camera: str) -> PersistenceDecisionMsg:
    """The message of a decision; frame_flags and frame_scores stay empty when the decision has none."""
    flags = array.array("B")
    if d.frame_flags is not None and len(d.frame_flags):
        flags.frombytes(np.ascontiguousarray(d.frame_flags, dtype=np.uint8).tobytes())
    return PersistenceDecisionMsg(
        track_id=int(d.track_id), camera=camera, score=float(d.score), keep=bool(d.keep),
        attention=_float_array(d.attention), frames_observed=int(d.frames_observed), reason=d.reason,
        frame_flags=flags, frame_scores=_float_array(d.frame_scores))


def decision_from_msg(m: PersistenceDecisionMsg) -> PersistenceDecision:
    """The decision of a PersistenceDecision message; ConversionError naming the track and the
    problem for a score outside [0, 1], attention weights that are not finite and >= 0, or frame
    flags / scores neither empty nor one per attention weight (scores in [0, 1], flags of known
    bits). Empty frame flags and scores become None (not recorded)."""
    where = f"decision on track {m.track_id} ({m.camera})"
    if not 0.0 <= m.score <= 1.0:  # also rejects NaN
        raise ConversionError(f"{where}: score {m.score} is not in [0, 1]")
    attention = np.asarray(m.attention, dtype=np.float32)
    if not np.all(np.isfinite(attention) & (attention >= 0.0)):
        raise ConversionError(f"{where}: attention weights must be finite and >= 0")
    flags = np.frombuffer(bytes(m.frame_flags), dtype=np.uint8).copy() if len(m.frame_flags) else None
    scores = np.asarray(m.frame_scores, dtype=np.float32) if len(m.frame_scores) else None
    all_bits = (PersistenceDecisionMsg.FRAME_MATCHED | PersistenceDecisionMsg.FRAME_OCCLUDED
                | PersistenceDecisionMsg.FRAME_STEREO_MISMATCH | PersistenceDecisionMsg.FRAME_CONFIDENCE_DIP)
    for name, value in (("frame_flags", flags), ("frame_scores", scores)):
        if value is not None and len(value) != len(attention):
            raise ConversionError(f"{where}: {len(value)} {name} for {len(attention)} attention weights")
    if flags is not None and np.any(flags & ~np.uint8(all_bits)):
        raise ConversionError(f"{where}: frame_flags hold bits other than FRAME_*")
    if scores is not None and not np.all((scores >= 0.0) & (scores <= 1.0)):
        raise ConversionError(f"{where}: frame_scores must be in [0, 1]")
    return PersistenceDecision(
        track_id=m.track_id, score=float(m.score), keep=bool(m.keep),
        attention=attention, frames_observed=m.frames_observed, reason=m.reason,
        frame_flags=flags, frame_scores=scores)


def event_to_msg(e: TrackEvent, header: Header, camera: str) -> TrackEventMsg:
    return TrackEventMsg(
        header=header, camera=camera, track_id=int(e.track_id), event=int(e.kind), state=int(e.state),
        frames_unseen=int(e.frames_unseen), cx=float(e.box[0]), cy=float(e.box[1]))


def event_from_msg(m: TrackEventMsg) -> TrackEvent:
    return TrackEvent(track_id=m.track_id, kind=_enum(EventKind, m.event, 'event'), state=_enum(TrackState, m.state, 'state'),
                      box=np.array([m.cx, m.cy, np.nan, np.nan]), frames_unseen=m.frames_unseen)


def sim_objects_to_msg(objects: list[GroundTruthObject]) -> list[SimObject]:
    """SimObject messages of ground-truth entries: amodal box, visible-part box, visibility,
    reflection source and position (NaN for nuisances)."""
    out = []
    for o in objects:
        cx, cy, w, h = (float(v) for v in o.box)
        vis_cx, vis_cy, vis_w, vis_h = (float(v) for v in o.visible_box)
        x, y, z = (float(v) for v in o.position)
        out.append(SimObject(id=int(o.object_id), kind=int(o.kind), class_id=int(o.class_id), cx=cx, cy=cy, w=w,
                             h=h, visibility=float(o.visibility), vis_cx=vis_cx, vis_cy=vis_cy, vis_w=vis_w,
                             vis_h=vis_h, source_id=int(o.source_id), position=Point(x=x, y=y, z=z)))
    return out


def sim_objects_from_msg(msgs) -> list[GroundTruthObject]:
    """Ground-truth entries of SimObject messages (the inverse of :func:`sim_objects_to_msg`)."""
    return [
        GroundTruthObject(object_id=m.id, kind=_enum(ObjectKind, m.kind, 'kind'), class_id=m.class_id,
                          box=np.array([m.cx, m.cy, m.w, m.h], dtype=np.float64), visibility=float(m.visibility),
                          position=np.array([m.position.x, m.position.y, m.position.z]),
                          visible_box=np.array([m.vis_cx, m.vis_cy, m.vis_w, m.vis_h], dtype=np.float64),
                          source_id=int(m.source_id))
        for m in msgs
    ]


POINT_DTYPE = np.dtype([
    ("x", np.float32), ("y", np.float32), ("z", np.float32), ("state", np.uint8), ("_pad", np.uint8, 3),
    ("track_id", np.float64), ("persistence", np.float32), ("_pad_end", np.uint8, 4),
])
# track_id is FLOAT64: PointCloud2 has no 64-bit integer field, and a float64 holds every integer
# below 2^53 exactly (ids are seeded at 10^6 a second since 2025: exact until after the year 2200).
_POINT_FIELDS = [
    PointField(name="x", offset=0, datatype=PointField.FLOAT32, count=1),
    PointField(name="y", offset=4, datatype=PointField.FLOAT32, count=1),
    PointField(name="z", offset=8, datatype=PointField.FLOAT32, count=1),
    PointField(name="track_id", offset=16, datatype=PointField.FLOAT64, count=1),
    PointField(name="state", offset=12, datatype=PointField.UINT8, count=1),
    PointField(name="persistence", offset=24, datatype=PointField.FLOAT32, count=1),
]


def tracks_to_cloud(tracks: list[Track3D], header: Header) -> PointCloud2:
    """One point per 3D track: x, y, z (float32), track_id (float64, an exact integer), state (uint8),
    persistence (float32); 32 bytes a point, track_id 8-byte aligned."""
    points = np.zeros(len(tracks), dtype=POINT_DTYPE)
    if tracks:
        points["x"], points["y"], points["z"] = np.array([t.position for t in tracks], dtype=np.float32).T
        points["track_id"] = [t.track_id for t in tracks]
        points["state"] = [int(t.state) for t in tracks]
        points["persistence"] = [t.persistence_score for t in tracks]
    msg = PointCloud2(header=header, height=1, width=len(tracks), fields=_POINT_FIELDS, is_bigendian=False,
                      point_step=POINT_DTYPE.itemsize, row_step=POINT_DTYPE.itemsize * len(tracks), is_dense=True)
    msg.data = _bytes_array(points)
    return msg


def cloud_to_numpy(msg: PointCloud2) -> np.ndarray:
    """Structured array view of a PointCloud2 packed by :func:`tracks_to_cloud` (checks the layout)."""
    names = [f.name for f in msg.fields]
    if names != [f.name for f in _POINT_FIELDS] or msg.point_step != POINT_DTYPE.itemsize:
        raise ConversionError(f"unexpected PointCloud2 layout: fields {names}, point_step {msg.point_step}")
    return np.frombuffer(msg.data, dtype=POINT_DTYPE, count=msg.width * msg.height)
