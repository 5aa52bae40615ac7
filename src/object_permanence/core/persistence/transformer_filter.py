"""The learned persistence model behind the :class:`base.PersistenceModel` interface: every track
of a frame scored in one padded batch by the :class:`model.PersistenceTransformer`, with hysteresis
so decisions do not flicker.

A ``.pt`` checkpoint runs on torch (CPU or CUDA; :func:`torch_available` tells callers whether to
fall back to min-hits); its ``.onnx`` export (``tools/export_persistence``) runs on ONNX Runtime's
CPU provider (:mod:`onnx_scorer`): the same numbers, less time on one thread, no torch needed.
"""
from __future__ import annotations

import importlib.util
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from object_permanence.core.persistence.history import FEATURES, TrackHistory, pad_histories
from object_permanence.core.types import PersistenceDecision

DEVICES = ("auto", "cpu", "cuda")
#: Where the shipped weights live, relative to the package's share directory or the source tree:
#: the checkpoint (torch) and its export (ONNX Runtime).
WEIGHTS_NAME = "persistence_transformer.pt"
ONNX_NAME = "persistence_transformer.onnx"


def torch_available() -> bool:
    """Whether torch can be imported here."""
    return importlib.util.find_spec("torch") is not None


def onnxruntime_available() -> bool:
    """Whether onnxruntime can be imported here (the ``.onnx`` path)."""
    return importlib.util.find_spec("onnxruntime") is not None


@dataclass(frozen=True)
class Hysteresis:
    """keep_threshold: a track not kept is kept once its score reaches this; release_threshold: a
    kept track is released once its score falls below this (<= keep_threshold), so a score hovering
    at the threshold does not flip the decision every frame."""

    keep_threshold: float = 0.5
    release_threshold: float = 0.4

    def __post_init__(self) -> None:
        for name in ("keep_threshold", "release_threshold"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"Hysteresis: {name} must be in [0, 1], got {v!r}")
        if self.release_threshold > self.keep_threshold:
            raise ValueError(f"Hysteresis: release_threshold ({self.release_threshold}) must be <= keep_threshold "
                             f"({self.keep_threshold})")


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when available else ``cpu``; ``cuda`` without a GPU raises.

    Raises:
        ValueError: unknown device, or ``cuda`` asked for where none is available.
    """
    import torch

    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' asked for but torch sees no CUDA device")
    return device


class TransformerPersistence:
    """The learned persistence model (:class:`base.PersistenceModel`).

    weights: a checkpoint written by ``tools/train_persistence`` (:func:`model.save_checkpoint`),
    or its ``.onnx`` export (``tools/export_persistence``; ONNX Runtime, CPU only); device: ``auto |
    cpu | cuda``; hysteresis: thresholds on the score (default: those stored in the checkpoint,
    chosen on the validation seeds); traced: score a checkpoint through the traced, frozen module
    (:func:`model.inference_module`, same numbers, about half the per-frame cost on a CPU) instead
    of the eager one; threads: ONNX Runtime's intra-op threads (0: its default; torch's are the
    process's, set by the caller).

    Raises:
        ValueError: bad device (``cuda`` with an ``.onnx`` file), a model trained on other feature
        columns, a file that is not a persistence model.
        FileNotFoundError: no file at ``weights``.
    """

    name = "transformer"

    def __init__(self, weights: str | Path, device: str = "auto", hysteresis: Hysteresis | None = None,
                 traced: bool = True, threads: int = 0) -> None:
        self._kept: weakref.WeakKeyDictionary[TrackHistory, bool] = weakref.WeakKeyDictionary()
        if str(weights).endswith(".onnx"):
            from object_permanence.core.persistence.onnx_scorer import OnnxTransformerScorer

            if device not in DEVICES:
                raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
            if device == "cuda":
                raise ValueError(f"device 'cuda': {weights} runs on ONNX Runtime's CPU provider; the .pt "
                                 "checkpoint runs on CUDA through torch")
            self._onnx: OnnxTransformerScorer | None = OnnxTransformerScorer(weights, threads)
            self.device, self.max_len = "cpu", self._onnx.max_len
            self.hysteresis = hysteresis or Hysteresis(*self._onnx.thresholds)
            return
        self._onnx = None
        import torch

        from object_permanence.core.persistence.model import inference_module, load_checkpoint

        self.device = resolve_device(device)
        if not Path(weights).is_file():
            raise FileNotFoundError(f"persistence weights not found: {weights}")
        self._torch = torch
        self.model, extra = load_checkpoint(weights, map_location=self.device)
        self.model.to(self.device)
        if tuple(extra.get("features", ())) != FEATURES:
            raise ValueError(f"{weights}: trained on features {extra.get('features')}, this code has {FEATURES}")
        self.hysteresis = hysteresis or Hysteresis(float(extra["keep_threshold"]), float(extra["release_threshold"]))
        self.max_len = self.model.config.max_len
        self._forward = inference_module(self.model) if traced else \
            (lambda x, n: self.model(x, n, last_only=True))

    def score(self, features: Sequence[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        """Scores in [0, 1] at the last frame of each (T_i, F) history (the newest ``max_len`` rows)
        and the pooling weights over its frames (T_i,), summing to 1; all in one padded batch."""
        if self._onnx is not None:
            return self._onnx.score(features)
        torch = self._torch
        features = [f[-self.max_len:] for f in features]
        batch, lengths = pad_histories(features)
        with torch.inference_mode():
            x = torch.from_numpy(batch).to(self.device)
            n = torch.from_numpy(lengths).to(self.device)
            logits, weights = self._forward(x, n)
            scores = torch.sigmoid(logits[:, 0]).cpu().numpy()             # p = sigma(logit) at the newest frame
            attention = weights[:, 0].cpu().numpy()                        # (B, T_max), row of the newest frame
        return scores.astype(np.float64), [attention[i, :lengths[i]] for i in range(len(features))]

    def decide(self, histories: Sequence[TrackHistory]) -> list[PersistenceDecision]:
        """One decision per history with hysteresis per history (see :class:`Hysteresis`)."""
        if not histories:
            return []
        scores, attention = self.score([h.features() for h in histories])
        out = []
        hy = self.hysteresis
        for hist, s, a in zip(histories, scores, attention):
            was = self._kept.get(hist, False)
            keep = bool(s >= hy.release_threshold) if was else bool(s >= hy.keep_threshold)
            self._kept[hist] = keep
            top = int(np.argmax(a))
            out.append(PersistenceDecision(
                track_id=hist.track_id, score=float(s), keep=keep, attention=a.astype(np.float32),
                frames_observed=len(hist),
                reason=f"transformer:{s:.2f}{'>=' if keep else '<'}"
                       f"{hy.release_threshold if was else hy.keep_threshold:.2f} top_frame:{top}"))
        return out
