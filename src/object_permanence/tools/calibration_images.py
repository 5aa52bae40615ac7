"""A robot's own camera images for calibrating a quantized detector (``quantize_detector
--calib-images``): evenly spaced frames of a folder of image files, a video, or one image topic of
a rosbag2 recording (``sensor_msgs/Image`` or ``CompressedImage``, as robots record their cameras),
grouped in pairs as the stereo detector runs them.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TypeVar

import numpy as np

T = TypeVar("T")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
#: Message types of an image topic a bag may hold.
BAG_IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")


def evenly_spaced(total: int, count: int) -> list[int]:
    """Up to ``count`` distinct indices in ``0 .. total - 1``, evenly spaced, first and last included."""
    return np.unique(np.linspace(0, total - 1, count).round().astype(int)).tolist() if total > 0 else []


def image_pairs(source: Path, pairs: int = 32, topic: str | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Up to ``pairs`` pairs of BGR images, evenly spaced over ``source``: a rosbag2 folder (one with a
    ``metadata.yaml``; ``topic`` names the image topic), another folder (its image files, by name)
    or a video file.

    Raises:
        ValueError: ``pairs`` < 1, fewer than two readable images, an image OpenCV cannot read or
        decode, a bag without ``topic`` or whose ``topic`` is missing or holds no images.
        FileNotFoundError: no such folder or file.
    """
    if pairs < 1:
        raise ValueError(f"pairs must be >= 1, got {pairs}")
    if not source.exists():
        raise FileNotFoundError(f"calibration images not found: {source}")
    if (source / "metadata.yaml").is_file():
        frames = list(_bag_frames(source, topic, 2 * pairs))
    elif topic is not None:
        raise ValueError(f"a topic ({topic}) was given but {source} is not a rosbag2 folder (no metadata.yaml)")
    elif source.is_dir():
        frames = list(_file_frames(source, 2 * pairs))
    else:
        frames = list(_video_frames(source, 2 * pairs))
    if len(frames) < 2:
        raise ValueError(f"calibration images: {source} gave {len(frames)} readable image(s); at least 2 are needed")
    return [(frames[k], frames[k + 1]) for k in range(0, len(frames) - 1, 2)]


def _file_frames(folder: Path, count: int) -> Iterator[np.ndarray]:
    import cv2

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    for index in evenly_spaced(len(files), count):
        frame = cv2.imread(str(files[index]), cv2.IMREAD_COLOR)
        if frame is None:
            raise ValueError(f"calibration image {files[index]}: OpenCV cannot read it")
        yield frame


def _video_frames(path: Path, count: int) -> Iterator[np.ndarray]:
    import cv2

    video = cv2.VideoCapture(str(path))
    try:
        if not video.isOpened():
            raise ValueError(f"calibration images: OpenCV cannot open {path} as a video (nor is it a folder)")
        total = int(video.get(cv2.CAP_PROP_FRAME_COUNT))
        if total <= 0:
            raise ValueError(f"calibration images: {path} reports no frame count (a stream?); extract frames "
                             "into a folder and pass the folder")
        reads = iter(video.read, (False, None))  # read in order: seeking is unreliable in some codecs
        yield from (frame for ok, frame in _at(reads, evenly_spaced(total, count)) if ok)
    finally:
        video.release()


def _at(items: Iterable[T], positions: list[int]) -> Iterator[T]:
    """The items of a sequential iterable at the sorted ``positions``, reading no further than the last."""
    wanted = iter(positions)
    target = next(wanted, None)
    if target is None:
        return
    for index, item in enumerate(items):
        if index == target:
            yield item
            target = next(wanted, None)
            if target is None:
                return


def _bag_frames(bag: Path, topic: str | None, count: int) -> Iterator[np.ndarray]:
    from rclpy.serialization import deserialize_message
    from rosbags.rosbag2 import Reader
    from sensor_msgs.msg import CompressedImage, Image

    from object_permanence.ros.images import image_to_bgr

    with Reader(bag) as reader:
        images = sorted(f"{c.topic} ({c.msgtype})" for c in reader.connections if c.msgtype in BAG_IMAGE_TYPES)
        if topic is None:
            raise ValueError(f"{bag} is a rosbag2 recording: name its image topic (--calib-topic); image topics "
                             f"in it: {', '.join(images) or 'none'}")
        connections = [c for c in reader.connections if c.topic == topic]
        if not connections:
            raise ValueError(f"{bag}: no topic {topic}; image topics in it: {', '.join(images) or 'none'}")
        msgtype = connections[0].msgtype
        if msgtype not in BAG_IMAGE_TYPES:
            raise ValueError(f"{bag}: {topic} holds {msgtype}, not one of {', '.join(BAG_IMAGE_TYPES)}")
        cls = CompressedImage if msgtype.endswith("CompressedImage") else Image
        positions = evenly_spaced(sum(c.msgcount for c in connections), count)
        for _, _, raw in _at(reader.messages(connections=connections), positions):
            try:  # only the picked messages are deserialised and decoded
                yield image_to_bgr(deserialize_message(raw, cls))
            except (ValueError, RuntimeError) as exc:  # ConversionError (bad encoding, size, compressed
                # data) or rclpy's RMWError (CDR that does not deserialise)
                raise ValueError(f"{bag}: an image of {topic} cannot be read: {exc}") from exc
