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
from object_permanence.ros.qos import EVENT_QOS, RELIABLE_QOS  # noqa: E402

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


@pytest.mark.parametrize("right_offset_s", [0.0, 0.007], ids=["same-stamp", "free-running-7ms"])
def test_stereo_pairs_reach_each_cameras_filter_with_the_transformer(ros, tmp_path: Path,
                                                                     right_offset_s: float) -> None:
    """Left and right arrays are paired (and each track gets the other view's stereo evidence)
    when they carry one stamp, and when two free-running cameras stamped them 7 ms apart (the
    detector's sync_slop_s pairs those images; the filter's default stereo_slop_s equals it)."""
    decisions = ros.collect(PersistenceDecisionArray, "persistence/decisions", RELIABLE_QOS)
    pubs = {c: ros.publisher(TrackArray, f"stereo/{c}/tracks", RELIABLE_QOS) for c in ("left", "right")}
    node = ros.start(PersistenceFilterNode, {"model": "transformer", "weights": str(checkpoint(tmp_path)),
                                             "device": "cpu", "pair_timeout_s": 5.0})
    ros.wait_connected()
    for k in range(3):
        left = TrackArray(header=header(k, "left"), tracks=[track_msg(5, 300.0 + k), track_msg(6, 600.0)])
        right = TrackArray(header=Header(stamp=sec_to_stamp(1000.0 + k / 30.0 + right_offset_s), frame_id="right"),
                           tracks=[track_msg(9, 280.0 + k)])
        pubs["left"].publish(left)
        pubs["right"].publish(right)
        ros.spin_until(lambda: by_stamp_and_camera(decisions, left.header.stamp, "left")
                       and by_stamp_and_camera(decisions, right.header.stamp, "right"), f"decisions of frame {k}")
    verdicts = by_stamp_and_camera(decisions, left.header.stamp, "left")
    assert verdicts.model == "transformer"
    assert {d.track_id for d in verdicts.decisions} == {5, 6}
    assert all(len(d.attention) == 3 and abs(sum(d.attention) - 1.0) < 1e-5 for d in verdicts.decisions)
    # decided as a pair (well within the 5 s timeout): 5 has its partner 9 in the right view, 6 none
    rows = {tid: h.features()[-1] for tid, h in node._filters["left"]._histories.items()}
    match = FEATURES.index("stereo_match")
    assert rows[5][match] == 1.0 and rows[6][match] == 0.0
    assert node._filters["right"]._histories[9].features()[-1][match] == 1.0


def test_kept_tracks_are_published_as_received_with_their_score(ros) -> None:
    """tracks/filtered carries each kept track's message unchanged (embedding, covariance, state,
    ...) but for persistence_score, the decision's score; a track not kept is left out."""
    filtered = ros.collect(TrackArray, "stereo/left/tracks/filtered", RELIABLE_QOS)
    inputs = ros.collect(TrackArray, "stereo/left/tracks", RELIABLE_QOS)  # what the node received (float32)
    decisions = ros.collect(PersistenceDecisionArray, "persistence/decisions", RELIABLE_QOS)
    pub = ros.publisher(TrackArray, "stereo/left/tracks", RELIABLE_QOS)
    ros.start(PersistenceFilterNode, {"model": "min_hits_baseline", "min_hits": 1, "min_mean_score": 0.5,
                                      "pair_timeout_s": 0.05})
    ros.wait_connected()
    strong, weak = track_msg(5, 300.0, score=0.9), track_msg(6, 500.0, score=0.2)
    strong.embedding = [0.6, 0.8]
    msg = TrackArray(header=header(0, "left"), tracks=[strong, weak])
    ros.retry_until(lambda _: pub.publish(msg), lambda: by_stamp_and_camera(decisions, msg.header.stamp, "left")
                    and any(m.header.stamp == msg.header.stamp for m in filtered), "the frame's filtered tracks")
    (out,) = [m for m in filtered if m.header.stamp == msg.header.stamp]
    (kept,) = out.tracks
    verdict = {d.track_id: d for d in by_stamp_and_camera(decisions, msg.header.stamp, "left").decisions}
    assert verdict[5].keep and not verdict[6].keep
    assert kept.persistence_score == pytest.approx(verdict[5].score)
    (sent,) = [m.tracks[0] for m in inputs if m.header.stamp == msg.header.stamp][:1]
    kept.persistence_score = sent.persistence_score = 0.0  # (NaN != NaN)
    assert kept == sent


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


def test_the_shipped_gradient_boosting_model_decides_and_a_bad_file_falls_back(ros, tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    decisions = ros.collect(PersistenceDecisionArray, "persistence/decisions", RELIABLE_QOS)
    pub = ros.publisher(TrackArray, "stereo/left/tracks", RELIABLE_QOS)
    ros.start(PersistenceFilterNode, {"model": "gradient_boosting", "pair_timeout_s": 0.05})
    ros.wait_connected()
    msg = TrackArray(header=header(0, "left"), tracks=[track_msg(5, 300.0), track_msg(6, 500.0)])
    ros.retry_until(lambda _: pub.publish(msg), lambda: by_stamp_and_camera(decisions, msg.header.stamp, "left"),
                    "a decision of the boosting model")
    verdicts = by_stamp_and_camera(decisions, msg.header.stamp, "left")
    assert verdicts.model == "gradient_boosting" and {d.track_id for d in verdicts.decisions} == {5, 6}
    assert all(0.0 <= d.score <= 1.0 and len(d.attention) == 1 for d in verdicts.decisions)
    bad = tmp_path / "bad.joblib"
    bad.write_bytes(b"not a model")
    from object_permanence.nodes.persistence_filter import PARAMS, make_model

    warnings: list[str] = []
    values = {p.name: p.default for p in PARAMS} | {"model": "gradient_boosting", "weights": str(bad)}
    assert make_model(values, warnings.append).name == "min_hits_baseline"
    assert "falling back to min_hits_baseline" in warnings[0]


def test_transformer_runs_on_the_threads_asked_for(ros, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # another node (or torch's default) may have left it at 1
    try:
        ros.start(PersistenceFilterNode, {"model": "transformer", "weights": str(checkpoint(tmp_path)),
                                          "device": "cpu", "threads": 1})
        assert torch.get_num_threads() == 1
        with pytest.raises(ParameterError, match="threads"):
            ros.start(PersistenceFilterNode, {"model": "transformer", "threads": -1})
    finally:
        torch.set_num_threads(before)


def test_the_shipped_transformer_runs_on_onnxruntime_on_the_cpu_torch_or_not(monkeypatch, tmp_path: Path) -> None:
    """Empty weights on the CPU: the shipped ONNX export, also where torch is not installed; a .pt
    without torch, or the export without onnxruntime, falls back to the rule with a warning naming
    the library."""
    import sys

    import object_permanence.nodes.persistence_filter as node
    from object_permanence.ros.shipped import shipped_model

    if not shipped_model("persistence/persistence_transformer.onnx").is_file():
        pytest.skip("the shipped persistence export is not there")
    values = {p.name: p.default for p in node.PARAMS} | {"model": "transformer", "device": "cpu"}
    warnings: list[str] = []
    model = node.make_model(values, warnings.append)
    assert model.name == "transformer" and model._onnx is not None and not warnings
    monkeypatch.setattr(node, "torch_available", lambda: False)
    monkeypatch.setitem(sys.modules, "torch", None)  # and any `import torch` fails, as where it is absent
    model = node.make_model(values | {"device": "auto"}, warnings.append)
    assert model.name == "transformer" and model._onnx is not None and not warnings
    pt = shipped_model("persistence/persistence_transformer.pt")
    assert node.make_model(values | {"weights": str(pt)}, warnings.append).name == "min_hits_baseline"
    assert "torch is not installed" in warnings[0]
    monkeypatch.setattr(node, "onnxruntime_available", lambda: False)
    assert node.make_model(values, warnings.append).name == "min_hits_baseline"
    assert "onnxruntime is not installed" in warnings[1]


def test_auto_asks_torch_for_a_gpu_only_where_a_gpu_device_file_exists(monkeypatch) -> None:
    """device auto on a machine without an NVIDIA device file takes the ONNX export without
    importing torch (about 0.5 GB of memory); with one, torch's answer decides."""
    import sys
    import types

    import object_permanence.ros.shipped as shipped

    def installed_torch(cuda=None) -> types.ModuleType:  # what find_spec finds; asking .cuda of None raises
        fake = types.ModuleType("torch")
        fake.__spec__, fake.cuda = types.SimpleNamespace(name="torch"), cuda
        return fake

    monkeypatch.setattr(shipped.glob, "glob", lambda pattern: [])
    monkeypatch.setitem(sys.modules, "torch", installed_torch())
    assert shipped.on_cuda("auto") is False  # no device file: torch is not asked
    assert shipped.on_cuda("cpu") is False and shipped.on_cuda("cuda") is True
    monkeypatch.setattr(shipped.glob, "glob", lambda pattern: ["/dev/nvidia0"] if "nvidia" in pattern else [])
    for sees_gpu in (True, False):
        monkeypatch.setitem(sys.modules, "torch", installed_torch(types.SimpleNamespace(is_available=lambda: sees_gpu)))
        assert shipped.on_cuda("auto") is sees_gpu


def test_bad_device_is_rejected(ros) -> None:
    with pytest.raises(ParameterError, match="device"):
        ros.start(PersistenceFilterNode, {"device": "tpu"})


# --- the decision's per-frame evidence and the explainer that reads it ----------------------------

def test_decisions_carry_what_happened_in_each_frame(ros) -> None:
    from object_permanence.core.persistence import evidence
    from object_permanence.msg import PersistenceDecision as PersistenceDecisionMsg

    assert (PersistenceDecisionMsg.FRAME_MATCHED, PersistenceDecisionMsg.FRAME_OCCLUDED,
            PersistenceDecisionMsg.FRAME_STEREO_MISMATCH, PersistenceDecisionMsg.FRAME_CONFIDENCE_DIP) == \
        (evidence.FRAME_MATCHED, evidence.FRAME_OCCLUDED, evidence.FRAME_STEREO_MISMATCH,
         evidence.FRAME_CONFIDENCE_DIP)
    decisions = ros.collect(PersistenceDecisionArray, "persistence/decisions", RELIABLE_QOS)
    pubs = {c: ros.publisher(TrackArray, f"stereo/{c}/tracks", RELIABLE_QOS) for c in ("left", "right")}
    ros.start(PersistenceFilterNode, {"pair_timeout_s": 5.0})
    ros.wait_connected()
    scores = [0.9, 0.9, 0.5]  # the third frame dips below the median confidence
    for k, s in enumerate(scores):
        left = TrackArray(header=header(k, "left"), tracks=[track_msg(5, 300.0 + k, s), track_msg(6, 600.0)])
        right = TrackArray(header=header(k, "right"), tracks=[track_msg(9, 280.0 + k)])
        pubs["left"].publish(left)
        pubs["right"].publish(right)
        ros.spin_until(lambda: by_stamp_and_camera(decisions, left.header.stamp, "left"), f"decisions of frame {k}")
    verdicts = {d.track_id: d for d in by_stamp_and_camera(decisions, left.header.stamp, "left").decisions}
    M, S, D = evidence.FRAME_MATCHED, evidence.FRAME_STEREO_MISMATCH, evidence.FRAME_CONFIDENCE_DIP
    assert list(verdicts[5].frame_flags) == [M, M, M | D]  # partner 9 in the right view every frame
    assert list(verdicts[6].frame_flags) == [M | S] * 3  # never a partner
    np.testing.assert_allclose(verdicts[5].frame_scores, scores, rtol=1e-6)
    assert all(len(d.frame_flags) == len(d.frame_scores) == len(d.attention) for d in verdicts.values())


def test_decision_evidence_round_trips_and_bad_evidence_is_named() -> None:
    from object_permanence.core.types import PersistenceDecision
    from object_permanence.msg import PersistenceDecision as PersistenceDecisionMsg
    from object_permanence.ros.conversions import ConversionError, decision_from_msg, decision_to_msg

    decision = PersistenceDecision(track_id=7, score=0.8, keep=True, attention=np.array([0.2, 0.3, 0.5]),
                                   frames_observed=3, reason="transformer:0.80>=0.50",
                                   frame_flags=np.array([1, 2, 13], np.uint8), frame_scores=np.array([0.9, 0.0, 0.4]))
    back = decision_from_msg(decision_to_msg(decision, "left"))
    np.testing.assert_array_equal(back.frame_flags, decision.frame_flags)
    np.testing.assert_allclose(back.frame_scores, decision.frame_scores, rtol=1e-6)
    bare = decision_from_msg(decision_to_msg(PersistenceDecision(7, 0.8, True, np.array([1.0]), 1, "min_hits:1/1"),
                                             "left"))
    assert bare.frame_flags is None and bare.frame_scores is None
    for bad, needle in (({"frame_flags": [1, 1]}, "2 frame_flags for 3 attention weights"),
                        ({"frame_flags": [1, 1, 64]}, "bits other than FRAME_"),
                        ({"frame_scores": [0.5, 0.5, 1.5]}, "frame_scores must be in")):
        msg = PersistenceDecisionMsg(track_id=7, camera="left", score=0.8, keep=True, attention=[0.2, 0.3, 0.5],
                                     frames_observed=3, **bad)
        with pytest.raises(ConversionError, match=needle):
            decision_from_msg(msg)


class ExplainerFeed:
    """A kept track 17 and the transformer's decision on it, with its per-frame evidence."""

    def __init__(self, ros, params: dict) -> None:
        from object_permanence.msg import Explanation as ExplanationMsg
        from object_permanence.nodes.llm_explainer import LlmExplainerNode

        self.ros = ros
        self.explanations = ros.collect(ExplanationMsg, "explanations", EVENT_QOS)
        self._tracks = ros.publisher(TrackArray, "stereo/left/tracks", RELIABLE_QOS)
        self._decisions = ros.publisher(PersistenceDecisionArray, "persistence/decisions", RELIABLE_QOS)
        ros.start(LlmExplainerNode, params)
        ros.wait_connected()

    def send(self, k: int) -> None:
        from object_permanence.msg import PersistenceDecision as PersistenceDecisionMsg

        M, D = PersistenceDecisionMsg.FRAME_MATCHED, PersistenceDecisionMsg.FRAME_CONFIDENCE_DIP
        self._tracks.publish(TrackArray(header=header(k, "left"), tracks=[track_msg(17, 300.0, 0.9)]))
        self._decisions.publish(PersistenceDecisionArray(header=header(k, "left"), model="transformer", decisions=[
            PersistenceDecisionMsg(track_id=17, camera="left", score=0.93, keep=True,
                                   attention=[0.05, 0.15, 0.05, 0.25, 0.3, 0.2], frames_observed=6,
                                   reason="transformer:0.93>=0.50 top_frame:4",
                                   frame_flags=[M, M | D, M, M, M, M], frame_scores=[0.9, 0.6, 0.9, 0.91, 0.93, 0.92])]))

    def explanation(self):
        self.ros.retry_until(self.send, lambda: len(self.explanations) > 0, "an explanation")
        return self.explanations[0]


def test_explainer_node_words_the_frames_the_attention_weighed(ros) -> None:
    explanation = ExplainerFeed(ros, {"backend": "template"}).explanation()
    assert explanation.source == "template" and explanation.rejected_reply == ""
    assert explanation.text == (
        "Kept track 17 (ball, left camera): score 0.93, seen in 3 of 3 frames with mean confidence 0.90. "
        "The model looked most at frames 4-6, where it was matched at steady confidence 0.91 to 0.93, with a "
        "partner in the right view; the runner-up evidence was frame 2 (matched at a dipped confidence of 0.60, "
        "with a partner in the right view)."
    )


def test_explainer_node_rejects_an_ungrounded_llm_reply(ros, monkeypatch) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
    from fake_openai_server import FakeOpenAIServer

    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    with FakeOpenAIServer(reply="Track 17 was kept with score 0.97 after frame 9.") as server:
        explanation = ExplainerFeed(ros, {"backend": "openai", "base_url": server.base_url, "model": "fake-model",
                                          "timeout_s": 5.0}).explanation()
    assert explanation.source == "template (llm:fake-model reply rejected: ungrounded 0.97, frame 9)"
    assert explanation.rejected_reply == "Track 17 was kept with score 0.97 after frame 9."
    assert explanation.text.startswith("Kept track 17 (ball, left camera): score 0.93")
    assert "The model looked most at frames 4-6" in explanation.text and "frame 2" in explanation.text
