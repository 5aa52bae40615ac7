"""QoS profiles chosen on purpose for each kind of stream."""
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)

#: Images and camera info: best effort, keep the newest few — a late frame is worth less than
#: a fresh one, and a slow consumer must not stall the camera.
SENSOR_QOS: QoSProfile = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=5, reliability=qos_profile_sensor_data.reliability,
    durability=DurabilityPolicy.VOLATILE)

#: The detector's image inputs: best effort, the newest 2. A reader takes the oldest sample of its
#: history, so a detector slower than the camera behind a 5-deep queue would always work on frames
#: about 5 periods old (~150 ms at 30 Hz); with 2 it works on the newest pair (one frame of slack
#: for the partner view) and the frames it cannot keep up with are skipped.
DETECTOR_IMAGE_QOS: QoSProfile = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=2, reliability=qos_profile_sensor_data.reliability,
    durability=DurabilityPolicy.VOLATILE)

#: Detections, tracks, decisions: reliable — every frame's belief matters
#: downstream (a dropped track update looks like an occlusion).
RELIABLE_QOS: QoSProfile = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=20, reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE)

#: Track events and explanations: reliable and deep — one message per event (a track born,
#: occluded, lost; a decision explained), so one frame can publish dozens at once (a passer-by
#: hides ten tracks, the template explains every decision that changed); a 20-deep history would
#: overwrite them before the reader has taken them. Subscribers use it too (the reader's history is
#: bounded the same way); depth is not part of QoS matching.
EVENT_QOS: QoSProfile = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=256, reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE)

#: Visualisation outputs (markers, point cloud): reliable, shallow.
VIZ_QOS: QoSProfile = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE)
