"""persistence_filter: scores every 2D track as persistent or transient and passes on the
persistent ones (``stereo/<cam>/tracks`` -> ``stereo/<cam>/tracks/filtered``,
``persistence/decisions``).

The two cameras' track arrays are paired by stamp (:class:`ros.sync.ApproximateTimeSynchronizer`)
so each camera's filter sees the other view's tracks of the same frame (stereo consistency is
evidence). A message whose partner has not come within ``pair_timeout_s`` is decided alone (a
monocular stream, a camera that stopped), so one silent camera never stalls the other.
"""
from __future__ import annotations

import time
from pathlib import Path

from rclpy.node import Node

from object_permanence.core.persistence import (
    FilterResult,
    MinHitsBaseline,
    MinHitsConfig,
    PersistenceFilter,
    step_stereo,
)
from object_permanence.core.persistence.classical import BOOSTING_NAME, load_boosting, sklearn_available
from object_permanence.core.persistence.evidence import WithFrameEvidence
from object_permanence.core.persistence.history import HISTORY_LEN
from object_permanence.core.persistence.transformer_filter import (
    DEVICES,
    ONNX_NAME,
    WEIGHTS_NAME,
    onnxruntime_available,
    torch_available,
)
from object_permanence.msg import PersistenceDecisionArray, TrackArray
from object_permanence.ros.conversions import decision_to_msg, track_from_msg
from object_permanence.ros.diagnostics import DIAGNOSTICS_PERIOD_PARAM, NodeDiagnostics
from object_permanence.ros.guard import guarded_timer, subscribe
from object_permanence.ros.params import Param, declare
from object_permanence.ros.qos import RELIABLE_QOS
from object_permanence.ros.runner import main_for
from object_permanence.ros.shipped import on_cuda, shipped_model
from object_permanence.ros.sync import ApproximateTimeSynchronizer, header_stamp_key

CAMERAS = ("left", "right")
MODELS = ("min_hits_baseline", "transformer", "gradient_boosting")

PARAMS = (
    Param("model", "min_hits_baseline", "Persistence model. min_hits_baseline: enough matched frames with enough "
          "mean confidence (the honest baseline). transformer: the learned model (models/persistence; its "
          "attention says which frames mattered); gradient_boosting: boosted trees on the same features "
          "(models/persistence; behind the transformer on the final decision, ahead at a track's 3rd frame; "
          "no per-frame attention). Without torch (a .pt transformer), onnxruntime (a .onnx one) or scikit-learn "
          "(gradient_boosting), or "
          "without its model file, the node warns and falls back to min_hits_baseline.", choices=MODELS),
    Param("weights", "", "transformer / gradient_boosting: model file; empty = the shipped one in "
          f"share/object_permanence/models/persistence: for the transformer on the CPU {ONNX_NAME} (ONNX "
          f"Runtime: no torch needed, and faster than torch on one thread: make bench), on CUDA {WEIGHTS_NAME} "
          f"(torch); {BOOSTING_NAME} for boosting. A transformer .onnx runs on ONNX Runtime, a .pt on torch. A "
          "boosting file is a pickle: load only files you trust."),
    Param("device", "auto", "transformer: auto (CUDA where an NVIDIA GPU's device file exists and torch sees "
          "it, else the CPU), cpu or cuda (a .pt only).", choices=DEVICES),
    Param("threads", 1, "transformer on the CPU: ONNX Runtime's intra-op threads (a .onnx), or torch's of this "
          "process (a .pt); gradient_boosting: its "
          "OpenMP threads (0: the library's default, one per core). 1 keeps a small model from fighting the other "
          "nodes for the cores: in the composed 30 Hz pipeline on 2 cores, torch's default gave a p95 latency of "
          "843 ms, 1 thread 63 ms.", low=0, high=256),
    Param("min_hits", 3, "Baseline: matched frames needed before a track is kept.", low=1, high=1000),
    Param("min_mean_score", 0.5, "Baseline: floor on the mean detection confidence of a kept track.",
          low=0.0, high=1.0),
    Param("history_len", HISTORY_LEN, "Frames of each track's history a model looks at.", low=1, high=10000),
    Param("sticky", True, "A track once kept stays kept while it lives (its ghost is not dropped)."),
    Param("forget_after_frames", 900, "Frames a track may be missing from the track arrays before its history "
          "(and sticky keep) is forgotten: the world model holds weak ghosts unpublished and publishes them again "
          "when their object is seen, and gives a LOST track's id back when its object returns (900: 30 s at "
          "30 Hz, the world model's gallery_retention_s).", low=0, high=1000000),
    Param("stereo_slop_s", 0.01, "Largest stamp difference (s) of a left/right track pair (they carry their images' "
          "stamps; keep it equal to the detector's sync_slop_s, or free-running cameras' pairs are decided as if "
          "alone: no stereo evidence, a reflection's signature).", low=0.0, high=1.0),
    Param("pair_timeout_s", 0.1, "A track array without a partner after this long (s) is decided alone.",
          low=0.0, high=10.0),
    DIAGNOSTICS_PERIOD_PARAM,
)


def make_model(values: dict, warn=lambda message: None):
    """The persistence model the parameters name; ``transformer`` and ``gradient_boosting`` fall
    back to the min-hits rule (calling ``warn`` with the reason) when their library or model file is
    missing or unusable."""
    baseline = MinHitsBaseline(MinHitsConfig(min_hits=values["min_hits"], min_mean_score=values["min_mean_score"]))
    name = values["model"]
    if name == "transformer":
        path = Path(values["weights"]) if values["weights"] else shipped_model(
            f"persistence/{WEIGHTS_NAME if on_cuda(values['device']) else ONNX_NAME}")
        library, available = ("onnxruntime", onnxruntime_available) if path.suffix == ".onnx" else \
            ("torch", torch_available)
    elif name == "gradient_boosting":
        library, available = "scikit-learn", sklearn_available
        path = Path(values["weights"]) if values["weights"] else shipped_model(f"persistence/{BOOSTING_NAME}")
    else:
        return baseline
    if not available():
        warn(f"model '{name}' ({path.name}) asked for but {library} is not installed: falling back to "
             "min_hits_baseline")
        return baseline
    try:
        return _load_learned(name, path, values)
    except (OSError, ValueError, RuntimeError, KeyError, ImportError) as e:
        warn(f"model '{name}' could not be loaded ({e}): falling back to min_hits_baseline")
        return baseline


def _load_learned(name: str, path: Path, values: dict):
    """The learned model ``name`` from ``path``, its CPU threads set process-wide (the node, the
    application, decides them: ``threads``, 0 keeps the library's default)."""
    if name == "gradient_boosting":
        if values["threads"]:
            from threadpoolctl import threadpool_limits  # scikit-learn's own dependency

            threadpool_limits(values["threads"], user_api="openmp")
        return load_boosting(path)
    from object_permanence.core.persistence.transformer_filter import TransformerPersistence

    if path.suffix == ".onnx":
        return TransformerPersistence(path, values["device"], threads=values["threads"])
    import torch

    if values["threads"]:
        torch.set_num_threads(values["threads"])
    return TransformerPersistence(path, values["device"])


class PersistenceFilterNode(Node):
    """One :class:`PersistenceFilter` per camera over a shared model, fed stereo pairs."""

    def __init__(self, **kwargs) -> None:
        super().__init__("persistence_filter", **kwargs)
        p = declare(self, PARAMS)
        # the decisions also carry what happened in each frame they weighed (for the explainer)
        model = WithFrameEvidence(make_model(p, warn=self.get_logger().warning))
        self._filters = {cam: PersistenceFilter(model, p["history_len"], p["sticky"], camera=cam,
                                                forget_after=p["forget_after_frames"]) for cam in CAMERAS}
        self._model_name = model.name
        self._timeout_s = p["pair_timeout_s"]
        self._pending: dict[str, dict] = {cam: {} for cam in CAMERAS}  # stamp key -> (arrival s, msg, tracks)
        self._sync = ApproximateTimeSynchronizer(2, self._on_pair, queue_size=10, slop_s=p["stereo_slop_s"])
        self._pub_decisions = self.create_publisher(PersistenceDecisionArray, "persistence/decisions", RELIABLE_QOS)
        self._diag = NodeDiagnostics(self, p["diagnostics_period_s"], "stereo pairs")
        self._pub_tracks = {}
        for i, cam in enumerate(CAMERAS):
            self._pub_tracks[cam] = self.create_publisher(TrackArray, f"stereo/{cam}/tracks/filtered", RELIABLE_QOS)
            subscribe(self, TrackArray, f"stereo/{cam}/tracks", lambda m, c=cam, j=i: self._on_tracks(c, j, m),
                      RELIABLE_QOS)
        self._timer = self.create_timer(max(self._timeout_s / 2.0, 0.01),
                                        guarded_timer(self, "persistence_filter timer", self._flush_unpaired))
        self.get_logger().info(f"persistence model: {self._model_name}")

    def _on_tracks(self, camera: str, index: int, msg: TrackArray) -> None:
        tracks = [track_from_msg(t) for t in msg.tracks]  # raises on a malformed message: dropped by the guard
        self._pending[camera][header_stamp_key(msg)] = (time.monotonic(), msg, tracks)
        self._sync.add(index, header_stamp_key(msg), msg)

    def _on_pair(self, left: TrackArray, right: TrackArray) -> None:
        with self._diag.frame(left.header.stamp):
            self._decide_pair(left, right)

    def _decide_pair(self, left: TrackArray, right: TrackArray) -> None:
        for cam, msg in (("left", left), ("right", right)):
            self._flush(cam, lambda key, _t, k=header_stamp_key(msg): key < k)  # each filter sees stamp order
        lp = self._pending["left"].pop(header_stamp_key(left), None)
        rp = self._pending["right"].pop(header_stamp_key(right), None)
        if lp is not None and rp is not None:  # the usual pair: every track of both views in one model call
            results = step_stereo(self._filters["left"], self._filters["right"], lp[2], rp[2])
            for cam, msg, result in zip(CAMERAS, (left, right), results):
                self._publish(cam, msg, result)
        elif lp is not None:
            self._decide("left", left, lp[2], None)
        elif rp is not None:
            self._decide("right", right, rp[2], None)

    def _flush_unpaired(self) -> None:
        """Decide alone every message that waited longer than pair_timeout_s."""
        now = time.monotonic()
        for cam in CAMERAS:
            self._flush(cam, lambda _key, arrival: now - arrival >= self._timeout_s)

    def _flush(self, camera: str, due) -> None:
        """Decide alone, in stamp order, the pending messages of ``camera`` for which
        ``due(stamp_key, arrival_s)`` holds (with every older one, so the filter sees stamp order)."""
        pending = self._pending[camera]
        keys = sorted(pending)
        due_keys = [k for k in keys if due(k, pending[k][0])]
        for key in [k for k in keys if due_keys and k <= due_keys[-1]]:
            _, msg, tracks = pending.pop(key)
            self._decide(camera, msg, tracks, None)

    def _decide(self, camera: str, msg: TrackArray, tracks: list, other_view: list | None) -> None:
        self._publish(camera, msg, self._filters[camera].step(tracks, other_view))

    def _publish(self, camera: str, msg: TrackArray, result: FilterResult) -> None:
        """The kept tracks and every decision of one view's frame."""
        if result.duplicate_ids:
            self.get_logger().error(f"duplicate track ids {result.duplicate_ids} in one stereo/{camera}/tracks "
                                    "message: those tracks are left out of this frame, the rest is decided",
                                    throttle_duration_sec=2.0)
        # the kept tracks are published as they came, with their persistence score set: no conversion
        # back from the core dataclasses (the filter changes nothing else of a track)
        received = {m.id: m for m in msg.tracks}
        kept = []
        for t in result.kept:
            m = received[t.track_id]
            m.persistence_score = float(t.persistence_score)
            kept.append(m)
        self._pub_tracks[camera].publish(TrackArray(header=msg.header, tracks=kept))
        self._pub_decisions.publish(PersistenceDecisionArray(
            header=msg.header, model=self._model_name,
            decisions=[decision_to_msg(d, camera) for d in result.decisions]))


main = main_for(PersistenceFilterNode)
