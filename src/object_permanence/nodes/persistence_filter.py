"""persistence_filter: scores every 2D track as persistent or transient and passes on the
persistent ones (``stereo/<cam>/tracks`` -> ``stereo/<cam>/tracks/filtered``,
``persistence/decisions``)."""
from __future__ import annotations

from rclpy.node import Node

from object_permanence.core.persistence import MinHitsBaseline, MinHitsConfig, PersistenceFilter
from object_permanence.msg import PersistenceDecisionArray, TrackArray
from object_permanence.ros.conversions import decision_to_msg, track_from_msg, track_to_msg
from object_permanence.ros.params import Param, declare
from object_permanence.ros.guard import subscribe
from object_permanence.ros.qos import RELIABLE_QOS
from object_permanence.ros.runner import main_for

CAMERAS = ("left", "right")
MODELS = ("min_hits_baseline",)

PARAMS = (
    Param("model", "min_hits_baseline", "Persistence model. min_hits_baseline: enough matched frames with enough "
          "mean confidence (the honest baseline the learned model is compared against).", choices=MODELS),
    Param("min_hits", 3, "Baseline: matched frames needed before a track is kept.", low=1, high=1000),
    Param("min_mean_score", 0.5, "Baseline: floor on the mean detection confidence of a kept track.", low=0.0, high=1.0),
    Param("history_len", 30, "Frames of each track's history a model looks at.", low=1, high=10000),
    Param("sticky", True, "A track once kept stays kept while it lives (its ghost is not dropped)."),
)


def make_model(values: dict):
    """The persistence model the parameters name."""
    return MinHitsBaseline(MinHitsConfig(min_hits=values["min_hits"], min_mean_score=values["min_mean_score"]))


class PersistenceFilterNode(Node):
    """One :class:`PersistenceFilter` per camera over a shared model."""

    def __init__(self, **kwargs) -> None:
        super().__init__("persistence_filter", **kwargs)
        p = declare(self, PARAMS)
        model = make_model(p)
        self._filters = {cam: PersistenceFilter(model, p["history_len"], p["sticky"]) for cam in CAMERAS}
        self._model_name = model.name
        self._pub_decisions = self.create_publisher(PersistenceDecisionArray, "persistence/decisions", RELIABLE_QOS)
        self._pub_tracks = {}
        for cam in CAMERAS:
            self._pub_tracks[cam] = self.create_publisher(TrackArray, f"stereo/{cam}/tracks/filtered", RELIABLE_QOS)
            subscribe(self, TrackArray, f"stereo/{cam}/tracks", lambda m, c=cam: self._on_tracks(c, m), RELIABLE_QOS)
        self.get_logger().info(f"persistence model: {self._model_name}")

    def _on_tracks(self, camera: str, msg: TrackArray) -> None:
        result = self._filters[camera].step([track_from_msg(t) for t in msg.tracks])
        if result.duplicate_ids:
            self.get_logger().error(f"duplicate track ids {result.duplicate_ids} in one stereo/{camera}/tracks message: "
                                    "those tracks are left out of this frame, the rest is decided",
                                    throttle_duration_sec=2.0)
        self._pub_tracks[camera].publish(TrackArray(header=msg.header, tracks=[track_to_msg(t) for t in result.kept]))
        self._pub_decisions.publish(PersistenceDecisionArray(
            header=msg.header, model=self._model_name,
            decisions=[decision_to_msg(d, camera) for d in result.decisions]))


main = main_for(PersistenceFilterNode)
