"""persistence_filter node over DDS: stereo pairing of the two track streams, the transformer model,
the min-hits fallback, and a monocular stream that is not stalled by the silent other camera."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy is not importable (source scripts/ros_env.sh)")
pytest.importorskip("object_permanence.msg", reason="object_permanence interfaces are not built (colcon build)")

from std_msgs.msg import Header  # noqa: E402

from object_permanence.core.persistence import FEATURES  # noqa: E402
from object_permanence.msg import PersistenceDecisionArray, Track as TrackMsg, TrackArray  # noqa: E402
from object_permanence.nodes.persistence_filter import PersistenceFilterNode  # noqa: E402
from object_permanence.ros.conversions import sec_to_stamp  # noqa: E402
from object_permanence.ros.params import ParameterError  # noqa: E402
from object_permanence.ros.qos import RELIABLE_QOS  # noqa: E402

pytestmark = pytest.mark.ros
WARN = 30


def header(k: int, frame_id: str) -> Header:
    return Header(stamp=sec_to_stamp(1000.0 + k / 30.0), frame_id=frame_id)


def track_msg(track_id: int, cx: float, score: float = 0.9) -> TrackMsg:
    return TrackMsg(id=track_id, state=TrackMsg.STATE_VISIBLE, class_id=0, class_name="ball", score=score, cx=cx,
                    cy=150.0, w=40.0, h=60.0, covariance=np.diag([4.0, 4.0, 1.0, 1.0]).astype(np.float32).ravel(),
                    age=3, hits=3, frames_since_seen=0, persistence_score=float("nan"))


def by_stamp_and_camera(messages: list, stamp, camera: str):
    return next((m for m in messages if m.header.stamp == stamp and m.decisions
                 and m.decisions[0].camera == camera), None)


def checkpoint(tmp_path: Path) -> Path:
    torch = pytest.importorskip("torch")
    from object_permanence.core.persistence.model import PersistenceTransformer, TransformerConfig, save_checkpoint

    torch.manual_seed(0)
    path = tmp_path / "w.pt"
    save_checkpoint(path, PersistenceTransformer(TransformerConfig(n_features=len(FEATURES))).eval(),
                    {"features": list(FEATURES), "keep_threshold": 0.5, "release_threshold": 0.4})
    return path


def test_stereo_pairs_reach_each_cameras_filter_with_the_transformer(ros, tmp_path: Path) -> None:
    decisions = ros.collect(PersistenceDecisionArray, "persistence/decisions", RELIABLE_QOS)
    pubs = {c: ros.publisher(TrackArray, f"stereo/{c}/tracks", RELIABLE_QOS) for c in ("left", "right")}
    node = ros.start(PersistenceFilterNode, {"model": "transformer", "weights": str(checkpoint(tmp_path)),
                                             "device": "cpu", "pair_timeout_s": 5.0})
    ros.wait_connected()
    for k in range(3):
        left = TrackArray(header=header(k, "left"), tracks=[track_msg(5, 300.0 + k), track_msg(6, 600.0)])
        right = TrackArray(header=header(k, "right"), tracks=[track_msg(9, 280.0 + k)])
        pubs["left"].publish(left)
        pubs["right"].publish(right)
        ros.spin_until(lambda: by_stamp_and_camera(decisions, left.header.stamp, "left")
                       and by_stamp_and_camera(decisions, left.header.stamp, "right"), f"decisions of frame {k}")
    verdicts = by_stamp_and_camera(decisions, left.header.stamp, "left")
    assert verdicts.model == "transformer"
    assert {d.track_id for d in verdicts.decisions} == {5, 6}
    assert all(len(d.attention) == 3 and abs(sum(d.attention) - 1.0) < 1e-5 for d in verdicts.decisions)
    # decided as a pair (well within the 5 s timeout): 5 has its partner 9 in the right view, 6 none
    rows = {tid: h.features()[-1] for tid, h in node._filters["left"]._histories.items()}
    match = FEATURES.index("stereo_match")
    assert rows[5][match] == 1.0 and rows[6][match] == 0.0
    assert node._filters["right"]._histories[9].features()[-1][match] == 1.0


def test_missing_weights_fall_back_to_min_hits_with_a_warning(ros, tmp_path: Path) -> None:
    decisions = ros.collect(PersistenceDecisionArray, "persistence/decisions", RELIABLE_QOS)
    pub = ros.publisher(TrackArray, "stereo/left/tracks", RELIABLE_QOS)
    ros.start(PersistenceFilterNode, {"model": "transformer", "weights": str(tmp_path / "none.pt"),
                                      "pair_timeout_s": 0.05})
    ros.wait_connected()
    msg = TrackArray(header=header(0, "left"), tracks=[track_msg(5, 300.0)])
    ros.retry_until(lambda _: pub.publish(msg), lambda: by_stamp_and_camera(decisions, msg.header.stamp, "left"),
                    "a decision of the left-only stream (the right camera is silent)")
    assert by_stamp_and_camera(decisions, msg.header.stamp, "left").model == "min_hits_baseline"
    assert any("falling back to min_hits_baseline" in m for m in ros.log_lines("persistence_filter", WARN))


def test_bad_device_is_rejected(ros) -> None:
    with pytest.raises(ParameterError, match="device"):
        ros.start(PersistenceFilterNode, {"device": "tpu"})
