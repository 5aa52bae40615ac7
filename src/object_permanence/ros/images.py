"""Camera images over either of image_transport's two common transports, for the nodes that read
them (detector, triangulator).

``raw``: sensor_msgs/Image on the base topic (``stereo/<cam>/image_raw``), as a camera driver or
this package's ``stereo_capture`` publishes it. ``compressed``: sensor_msgs/CompressedImage (JPEG
or PNG) on ``<base topic>/compressed``, as image_transport's compressed transport publishes it and
as robots usually record their cameras in a rosbag. Both come out of :func:`image_to_bgr` as the
BGR array the algorithms work on; a compressed image is decoded only when a node uses it.
"""
from __future__ import annotations

from typing import Union

import numpy as np
from sensor_msgs.msg import CompressedImage, Image

from object_permanence.ros.conversions import as_bgr, compressed_to_bgr, image_to_numpy
from object_permanence.ros.params import Param

ImageMsg = Union[Image, CompressedImage]

IMAGE_TRANSPORTS = ("raw", "compressed")

IMAGE_TRANSPORT_PARAM = Param(
    "image_transport", "raw", "Transport of the camera images (image_transport's names): raw subscribes to "
    "sensor_msgs/Image on stereo/<cam>/image_raw; compressed to sensor_msgs/CompressedImage (JPEG or PNG) on "
    "stereo/<cam>/image_raw/compressed, as a robot's rosbag usually holds its cameras (remap the recorded "
    "topics there).", choices=IMAGE_TRANSPORTS)


def image_subscription(camera: str, transport: str) -> tuple[type, str]:
    """The message type and (relative) topic of ``camera``'s images over ``transport``."""
    base = f"stereo/{camera}/image_raw"
    if transport == "raw":
        return Image, base
    if transport == "compressed":
        return CompressedImage, f"{base}/compressed"
    raise ValueError(f"image transport {transport!r} is not one of {', '.join(IMAGE_TRANSPORTS)}")


def image_to_bgr(msg: ImageMsg) -> np.ndarray:
    """A BGR (H, W, 3) uint8 array of an Image (a view where it is bgr8, else one converted copy)
    or a CompressedImage (decoded).

    Raises:
        ConversionError: naming what is wrong with the message (see ``image_to_numpy`` and
            ``compressed_to_bgr``).
    """
    if isinstance(msg, CompressedImage):
        return compressed_to_bgr(msg)
    return as_bgr(image_to_numpy(msg), msg.encoding)
