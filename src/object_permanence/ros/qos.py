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

#: Detections, tracks, decisions, events: reliable — every frame's belief matters
#: downstream (a dropped track update looks like an occlusion).
RELIABLE_QOS: QoSProfile = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=20, reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE)

#: Explanations: reliable and deep — one message per track whose decision changed, so a busy
#: frame publishes dozens at once (the template answers in microseconds); a 20-deep history
#: would overwrite them before the reader has taken them. Subscribers use it too (the reader's
#: history is bounded the same way); depth is not part of QoS matching.
EXPLANATION_QOS: QoSProfile = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=256, reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE)

#: Visualisation outputs (markers, point cloud): reliable, shallow.
VIZ_QOS: QoSProfile = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE)
