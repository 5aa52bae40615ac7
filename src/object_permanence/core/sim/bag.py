"""Write a simulated stereo sequence to a rosbag2 (MCAP) file with the pure-Python ``rosbags`` library.

The bag holds exactly what a real stereo rig plus the simulator's ground truth would record, so the
replay path (``replay.launch.py``, ``use_sim_time``) is exercised as with a real bag. No ROS install
is needed: messages are built and CDR-serialised through a rosbags typestore into which the
package's own ``SimGroundTruth``/``SimObject`` definitions are registered.
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from object_permanence.core.sim.world import SimWorld
from object_permanence.core.types import GroundTruthObject

PACKAGE = "object_permanence"
TOPIC_IMAGE = {"left": "/stereo/left/image_raw", "right": "/stereo/right/image_raw"}
TOPIC_INFO = {"left": "/stereo/left/camera_info", "right": "/stereo/right/camera_info"}
TOPIC_GROUND_TRUTH = "/sim/ground_truth"
#: How the images are written: sensor_msgs/Image on TOPIC_IMAGE, or image_transport's compressed
#: transport (sensor_msgs/CompressedImage, JPEG) on TOPIC_IMAGE + "/compressed", as robots record.
IMAGE_TRANSPORTS = ("raw", "compressed")
JPEG_QUALITY = 90
FRAME_ID = {"left": "left_camera_optical_frame", "right": "right_camera_optical_frame"}
GROUND_TRUTH_TYPE = f"{PACKAGE}/msg/SimGroundTruth"
SIM_OBJECT_TYPE = f"{PACKAGE}/msg/SimObject"
_CUSTOM_MSGS = ("SimObject", "SimGroundTruth")


def find_msg_dir(msg_dir: Path | None = None) -> Path:
    """The folder holding the package's ``.msg`` files.

    Uses ``msg_dir`` when given; otherwise searches upwards from this file for the repository's
    ``msg/`` (source checkout) or ``share/object_permanence/msg`` (install space), then under every
    ``AMENT_PREFIX_PATH`` entry. Raises FileNotFoundError naming the places tried.
    """
    if msg_dir is not None:
        if not (Path(msg_dir) / "SimGroundTruth.msg").is_file():
            raise FileNotFoundError(f"msg_dir {msg_dir} holds no SimGroundTruth.msg")
        return Path(msg_dir)
    candidates = []
    for parent in Path(__file__).resolve().parents:
        candidates += [parent / "msg", parent / "share" / PACKAGE / "msg"]
    candidates += [Path(prefix) / "share" / PACKAGE / "msg"
                   for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if prefix]
    for candidate in candidates:
        if (candidate / "SimGroundTruth.msg").is_file():
            return candidate
    raise FileNotFoundError(f"SimGroundTruth.msg not found; tried {[str(c) for c in candidates]}")


def make_typestore(msg_dir: Path | None = None) -> Typestore:
    """A ROS 2 Kilted typestore with ``object_permanence/msg/SimObject`` and ``SimGroundTruth`` registered."""
    folder = find_msg_dir(msg_dir)
    typestore = get_typestore(Stores.ROS2_KILTED)
    types = {}
    for name in _CUSTOM_MSGS:
        types.update(get_types_from_msg((folder / f"{name}.msg").read_text(), f"{PACKAGE}/msg/{name}"))
    typestore.register(types)
    return typestore


def write_bag(world: SimWorld, path: Path, n_frames: int, start_stamp_ns: int = 0,
              msg_dir: Path | None = None, image_transport: str = "raw") -> Path:
    """Write frames ``0..n_frames-1`` of ``world`` to a new rosbag2 MCAP folder at ``path``.

    Topics: left/right ``sensor_msgs/msg/Image`` (bgr8; with ``image_transport="compressed"``
    ``sensor_msgs/msg/CompressedImage``, JPEG of quality ``JPEG_QUALITY``, on ``<image topic>/compressed``),
    left/right ``sensor_msgs/msg/CameraInfo`` and ``/sim/ground_truth``
    (``object_permanence/msg/SimGroundTruth``), all five stamped ``start_stamp_ns + round(k / fps * 1e9)``
    for frame k. Raises ValueError on bad arguments and rosbags' WriterError when ``path`` exists
    already. Returns ``path``.
    """
    if isinstance(n_frames, bool) or not isinstance(n_frames, (int, np.integer)) or n_frames < 1:
        raise ValueError(f"write_bag: n_frames must be a positive integer, got {n_frames!r}")
    if isinstance(start_stamp_ns, bool) or not isinstance(start_stamp_ns, (int, np.integer)) or start_stamp_ns < 0:
        raise ValueError(f"write_bag: start_stamp_ns must be a non-negative integer, got {start_stamp_ns!r}")
    if image_transport not in IMAGE_TRANSPORTS:
        raise ValueError(f"write_bag: image_transport must be one of {', '.join(IMAGE_TRANSPORTS)}, "
                         f"got {image_transport!r}")
    compressed = image_transport == "compressed"
    image_topic = {side: TOPIC_IMAGE[side] + ("/compressed" if compressed else "") for side in TOPIC_IMAGE}
    image_type = "sensor_msgs/msg/CompressedImage" if compressed else "sensor_msgs/msg/Image"
    path = Path(path)
    typestore = make_typestore(msg_dir)
    types = typestore.types
    infos = {side: world.rig.camera_info(side) for side in ("left", "right")}
    with Writer(path, version=8, storage_plugin=StoragePlugin.MCAP) as writer:
        connections = {}
        for side in ("left", "right"):
            connections[image_topic[side]] = writer.add_connection(image_topic[side], image_type, typestore=typestore)
            connections[TOPIC_INFO[side]] = writer.add_connection(
                TOPIC_INFO[side], "sensor_msgs/msg/CameraInfo", typestore=typestore)
        connections[TOPIC_GROUND_TRUTH] = writer.add_connection(
            TOPIC_GROUND_TRUTH, GROUND_TRUTH_TYPE, typestore=typestore)
        for k in range(int(n_frames)):
            stamp_ns = int(start_stamp_ns) + round(world.frame_time(k) * 1e9)
            stamp = types["builtin_interfaces/msg/Time"](sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9)
            images = dict(zip(("left", "right"), world.render(k)))
            truth = world.ground_truth(k)
            for side in ("left", "right"):
                header = types["std_msgs/msg/Header"](stamp=stamp, frame_id=FRAME_ID[side])
                image_msg = _image_msg(types, header, images[side], compressed)
                info = infos[side]
                info_msg = types["sensor_msgs/msg/CameraInfo"](
                    header=header, height=info["height"], width=info["width"],
                    distortion_model=info["distortion_model"], d=info["d"], k=info["k"], r=info["r"],
                    p=info["p"], binning_x=0, binning_y=0,
                    roi=types["sensor_msgs/msg/RegionOfInterest"](
                        x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))
                for topic, msg, msgtype in ((image_topic[side], image_msg, image_type),
                                            (TOPIC_INFO[side], info_msg, "sensor_msgs/msg/CameraInfo")):
                    writer.write(connections[topic], stamp_ns, typestore.serialize_cdr(msg, msgtype))
            truth_msg = types[GROUND_TRUTH_TYPE](
                header=types["std_msgs/msg/Header"](stamp=stamp, frame_id=FRAME_ID["left"]),
                frame_index=k, left=[_sim_object(types, g) for g in truth.left],
                right=[_sim_object(types, g) for g in truth.right])
            writer.write(connections[TOPIC_GROUND_TRUTH], stamp_ns,
                         typestore.serialize_cdr(truth_msg, GROUND_TRUTH_TYPE))
    return path


def _image_msg(types: dict, header: object, image: np.ndarray, compressed: bool) -> object:
    """A ``sensor_msgs/Image`` (bgr8) of ``image``, or the ``CompressedImage`` (JPEG) that
    image_transport's compressed publisher writes of it."""
    if not compressed:
        return types["sensor_msgs/msg/Image"](
            header=header, height=image.shape[0], width=image.shape[1], encoding="bgr8",
            is_bigendian=0, step=image.shape[1] * 3, data=image.reshape(-1))
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError(f"write_bag: JPEG encoding of a {image.shape[1]}x{image.shape[0]} image failed")
    return types["sensor_msgs/msg/CompressedImage"](header=header, format="bgr8; jpeg compressed bgr8",
                                                    data=data.reshape(-1))


def _sim_object(types: dict, entry: GroundTruthObject) -> object:
    """One ``SimObject`` message of a ground-truth entry: amodal and visible boxes, reflection source,
    position (NaN for nuisances)."""
    cx, cy, w, h = (float(v) for v in entry.box)
    vis_cx, vis_cy, vis_w, vis_h = (float(v) for v in entry.visible_box)
    x, y, z = (float(v) for v in entry.position)
    return types[SIM_OBJECT_TYPE](
        id=int(entry.object_id), kind=int(entry.kind), class_id=int(entry.class_id), cx=cx, cy=cy, w=w, h=h,
        visibility=float(entry.visibility), vis_cx=vis_cx, vis_cy=vis_cy, vis_w=vis_w, vis_h=vis_h,
        source_id=int(entry.source_id), position=types["geometry_msgs/msg/Point"](x=x, y=y, z=z))
