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

#: Detections, tracks, decisions, events, explanations: reliable — every frame's belief matters
#: downstream (a dropped track update looks like an occlusion).
RELIABLE_QOS: QoSProfile = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=20, reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE)

#: Visualisation outputs (markers, point cloud): reliable, shallow.
VIZ_QOS: QoSProfile = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE)
