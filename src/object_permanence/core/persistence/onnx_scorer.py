"""The persistence transformer on ONNX Runtime: the shipped model's export scored on the CPU without
torch; on one thread a 64-track batch's decisions take 25-40% less time than through the traced
torch module (``make bench``: ``out/bench/persistence.json``).

The export (:func:`model.export_onnx`) is the transformer's last-frame forward, (B, T, F) rows and
(B,) lengths to (B, 1) logits and (B, 1, T) pooling weights, with a dynamic batch and the sequence
length fixed at the model's ``max_len`` (the exporter bakes the attention's reshapes for one
length): histories are padded to ``max_len``. Padding sits after the valid frames and attention is
causal, so the numbers are the torch module's (the tests compare them to 1e-5). The thresholds
chosen on the validation seeds and the feature columns travel in the file's metadata
(:data:`METADATA_KEYS`).
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from object_permanence.core.onnx_session import open_export
from object_permanence.core.persistence.history import FEATURES, pad_histories

#: Metadata of an exported persistence model: the feature columns (JSON list), the hysteresis
#: thresholds and the padded sequence length.
METADATA_KEYS = ("features", "keep_threshold", "release_threshold", "max_len")


class OnnxTransformerScorer:
    """Scores histories with an exported persistence transformer on ONNX Runtime's CPU provider.

    weights: the ``.onnx`` file; threads: intra-op threads (0: onnxruntime's default, one per core).

    Raises:
        FileNotFoundError: no file at ``weights``. ImportError: onnxruntime is not installed.
        ValueError: bad ``threads``, a file onnxruntime cannot load, without the metadata of an
        export, or trained on other feature columns.
    """

    def __init__(self, weights: str | Path, threads: int = 0) -> None:
        if threads < 0:
            raise ValueError(f"threads must be >= 0 (0: onnxruntime's default), got {threads}")
        self.session, meta = open_export(weights, threads, "persistence transformer", METADATA_KEYS)
        if tuple(json.loads(meta["features"])) != FEATURES:
            raise ValueError(f"{weights}: trained on features {json.loads(meta['features'])}, this code has {FEATURES}")
        self.thresholds = (float(meta["keep_threshold"]), float(meta["release_threshold"]))
        self.max_len = int(meta["max_len"])
        self._inputs = [i.name for i in self.session.get_inputs()]

    def score(self, features: Sequence[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        """Scores in [0, 1] at the last frame of each (T_i, F) history (its newest ``max_len`` rows)
        and the pooling weights over its frames (T_i,), summing to 1; all in one padded batch."""
        features = [f[-self.max_len:] for f in features]
        batch, lengths = pad_histories(features, self.max_len)
        logits, weights = self.session.run(None, dict(zip(self._inputs, (batch, lengths))))
        scores = 1.0 / (1.0 + np.exp(-logits[:, 0].astype(np.float64)))  # p = sigma(logit), newest frame
        return scores, [weights[i, 0, :lengths[i]] for i in range(len(features))]
