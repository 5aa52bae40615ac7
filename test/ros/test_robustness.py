"""Robot-day-one robustness over real DDS: ids never reused by a restarted node, bad items of a
message answered one by one while the rest is processed."""
from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy is not importable (source scripts/ros_env.sh)")
pytest.importorskip("object_permanence.msg", reason="object_permanence interfaces are not built (colcon build)")

from std_msgs.msg import Header  # noqa: E402

from object_permanence.core.id_allocator import CLOCK_IDS_PER_SECOND, ID_EPOCH_S  # noqa: E402
from object_permanence.msg import (  # noqa: E402
    Detection as DetectionMsg,
    DetectionArray,
    Explanation,
    PersistenceDecision as PersistenceDecisionMsg,
    PersistenceDecisionArray,
    Track as TrackMsg,
    TrackArray,
)
from object_permanence.nodes.llm_explainer import LlmExplainerNode  # noqa: E402
from object_permanence.nodes.world_model import WorldModelNode  # noqa: E402
from object_permanence.ros.conversions import sec_to_stamp  # noqa: E402
from object_permanence.ros.qos import EVENT_QOS, RELIABLE_QOS  # noqa: E402

pytestmark = pytest.mark.ros

WARN, ERROR = 30, 40


def header(k: int) -> Header:
    return Header(stamp=sec_to_stamp(1000.0 + k / 30.0), frame_id="left_camera_optical_frame")


def detections(k: int, boxes, scores=None) -> DetectionArray:
    scores = scores or [0.9] * len(boxes)
    return DetectionArray(header=header(k), image_width=640, image_height=480, detections=[
        DetectionMsg(cx=float(cx), cy=float(cy), w=float(w), h=float(h), score=float(s), class_id=0, class_name="ball")
        for (cx, cy, w, h), s in zip(boxes, scores)])


def first_track_id(ros) -> int:
    """Start a world model, feed one object until it is confirmed, return its id; the node is
    destroyed with the harness (the next call starts a new one: a restart)."""
    tracks = ros.collect(TrackArray, "stereo/left/tracks", RELIABLE_QOS)
    pub = ros.publisher(DetectionArray, "stereo/left/detections", RELIABLE_QOS)
    ros.start(WorldModelNode)
    ros.wait_connected()
    for k in range(4):
        pub.publish(detections(k, [(200.0 + 4 * k, 150.0, 40.0, 60.0)]))
    ros.spin_until(lambda: any(m.tracks for m in tracks), "a confirmed track")
    return next(m for m in tracks if m.tracks).tracks[0].id


def test_a_restarted_world_model_never_reuses_an_id(ros) -> None:
    harness_cls = type(ros)  # a harness per run: the first run's node is destroyed before the second starts
    ids = []
    for run in range(2):
        harness = harness_cls(ros.context, f"{ros.namespace}/run{run}")
        try:
            ids.append(first_track_id(harness))
        finally:
            harness.close()
    assert ids[1] > ids[0], f"the second run's first id {ids[1]} must lie above the first run's {ids[0]}"
    seeded = (time.time() - ID_EPOCH_S) * CLOCK_IDS_PER_SECOND
    assert 0.9 * seeded < ids[0] < 1.1 * seeded, "ids are seeded from the wall clock, not from 1"


def test_world_model_names_each_rejected_detection_and_tracks_the_rest(ros) -> None:
    tracks = ros.collect(TrackArray, "stereo/left/tracks", RELIABLE_QOS)
    pub = ros.publisher(DetectionArray, "stereo/left/detections", RELIABLE_QOS)
    ros.start(WorldModelNode, {"min_hits": 1})
    ros.wait_connected()
    msg = detections(0, [(200.0, 150.0, 40.0, 60.0), (900.0, 150.0, 40.0, 60.0), (400.0, 300.0, 40.0, 60.0)],
                     [0.9, 0.9, 1.7])
    pub.publish(msg)
    ros.spin_until(lambda: any(m.header.stamp == msg.header.stamp for m in tracks), "the frame's tracks")
    out = next(m for m in tracks if m.header.stamp == msg.header.stamp)
    assert [(round(t.cx), round(t.cy)) for t in out.tracks] == [(200, 150)]

    def logged() -> bool:
        return any("entirely outside the 640x480 image" in m and "score must lie in [0, 1], got 1.7" in m
                   for m in ros.log_lines("world_model", WARN))

    ros.spin_until(logged, "one warning naming both rejected detections and their problems")


def test_explainer_skips_bad_and_tentative_decisions_and_explains_the_rest(ros) -> None:
    explanations = ros.collect(Explanation, "explanations", EVENT_QOS)
    tracks = ros.publisher(TrackArray, "stereo/left/tracks", RELIABLE_QOS)
    decisions = ros.publisher(PersistenceDecisionArray, "persistence/decisions", RELIABLE_QOS)
    ros.start(LlmExplainerNode, {"backend": "template"})
    ros.wait_connected()

    def track(track_id: int, state: int = TrackMsg.STATE_VISIBLE) -> TrackMsg:
        return TrackMsg(id=track_id, state=state, class_id=0, class_name="ball", score=0.9,
                        cx=100.0 * track_id, cy=150.0, w=40.0, h=60.0, covariance=np.eye(4, dtype=np.float32).ravel(),
                        age=3, hits=3, persistence_score=float("nan"))

    def send(k: int) -> None:  # track 9 is TENTATIVE: scored, not explained
        tracks.publish(TrackArray(header=header(k), tracks=[track(7), track(8), track(9, TrackMsg.STATE_TENTATIVE)]))
        decisions.publish(PersistenceDecisionArray(header=header(k), model="min_hits_baseline", decisions=[
            PersistenceDecisionMsg(track_id=7, camera="left", score=float("nan"), keep=True, attention=[1.0],
                                   frames_observed=3, reason="bad"),
            PersistenceDecisionMsg(track_id=8, camera="left", score=0.85, keep=True, attention=[0.5, 0.5],
                                   frames_observed=3, reason="min_hits:3/2"),
            PersistenceDecisionMsg(track_id=9, camera="left", score=0.85, keep=False, attention=[0.5, 0.5],
                                   frames_observed=2, reason="min_hits:2/3 tentative")]))

    ros.retry_until(send, lambda: len(explanations) > 0, "the good decision's explanation")
    ros.spin_until(lambda: any("decision on track 7 (left): score nan is not in [0, 1]" in m
                               for m in ros.log_lines("llm_explainer", ERROR)), "the error naming the bad decision")
    # explanations come in order from one worker: once a later track's is here, track 9's would be too
    tracks.publish(TrackArray(header=header(50), tracks=[track(10)]))
    decisions.publish(PersistenceDecisionArray(header=header(50), model="min_hits_baseline", decisions=[
        PersistenceDecisionMsg(track_id=10, camera="left", score=0.85, keep=True, attention=[0.5, 0.5],
                               frames_observed=3, reason="min_hits:3/2")]))
    ros.spin_until(lambda: any(e.track_id == 10 for e in explanations), "the later track's explanation")
    assert {e.track_id for e in explanations} == {8, 10}


def test_template_explainer_is_not_rate_limited(ros) -> None:
    """A busy scene changes more decisions a second than a language model is asked to explain;
    with the template (no language model) every change is explained at once, whatever
    ``rate_limit_hz`` says (``max_queue`` still bounds a burst: 40 fit in its default)."""
    explanations = ros.collect(Explanation, "explanations", EVENT_QOS)
    tracks = ros.publisher(TrackArray, "stereo/left/tracks", RELIABLE_QOS)
    decisions = ros.publisher(PersistenceDecisionArray, "persistence/decisions", RELIABLE_QOS)
    ros.start(LlmExplainerNode, {"backend": "template", "rate_limit_hz": 0.01})
    ros.wait_connected()
    ids = range(1, 41)

    def send(k: int) -> None:
        tracks.publish(TrackArray(header=header(k), tracks=[
            TrackMsg(id=i, state=TrackMsg.STATE_VISIBLE, class_id=0, class_name="ball", score=0.9, cx=15.0 * i,
                     cy=150.0, w=10.0, h=10.0, covariance=np.eye(4, dtype=np.float32).ravel(), age=3, hits=3,
                     persistence_score=float("nan")) for i in ids]))
        decisions.publish(PersistenceDecisionArray(header=header(k), model="min_hits_baseline", decisions=[
            PersistenceDecisionMsg(track_id=i, camera="left", score=0.85, keep=True, attention=[0.5, 0.5],
                                   frames_observed=3, reason="min_hits:3/2") for i in ids]))

    ros.retry_until(send, lambda: len({e.track_id for e in explanations}) == len(ids), "all 40 explanations")
