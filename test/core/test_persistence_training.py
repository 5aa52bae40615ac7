"""The persistence transformer's training tool: the learning-rate schedule, and one short run
end to end with every training option (running aggregates, all-frames loss, label smoothing,
cosine schedule, weight averaging, F1 selection) whose weights the filter then loads."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("matplotlib")

from object_permanence.core.persistence import FEATURES, N_FEATURES  # noqa: E402
from object_permanence.core.persistence.dataset import TrackSequences  # noqa: E402
from object_permanence.core.persistence.transformer_filter import TransformerPersistence  # noqa: E402
from object_permanence.tools.train_persistence import cosine_with_warmup, main  # noqa: E402


def test_cosine_schedule_warms_up_then_decays_to_zero() -> None:
    f = [cosine_with_warmup(s, warmup=4, total=40) for s in range(41)]
    assert f[0] == pytest.approx(0.25) and f[3] == pytest.approx(0.5 * (1 + math.cos(math.pi * 3 / 40)))
    assert all(a >= b for a, b in zip(f[3:], f[4:]))  # non-increasing after the warm-up
    assert f[20] == pytest.approx(0.5) and f[40] == pytest.approx(0.0, abs=1e-12)
    assert cosine_with_warmup(100, warmup=4, total=40) == pytest.approx(0.0, abs=1e-12)  # held at 0 past the end


def _sequences(n: int, seed: int) -> TrackSequences:
    """n tracks of 6-45 frames; real tracks have a high det_score, nuisances a low one (noisy)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(6, 46, n)
    labels = (np.arange(n) % 2).astype(np.int8)
    feats = rng.normal(size=(int(lengths.sum()), N_FEATURES)).astype(np.float32)
    score = FEATURES.index("det_score")
    feats[:, score] += 3.0 * np.repeat(labels, lengths)                # det_score carries the label
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return TrackSequences(feats, offsets, labels, np.full(n, seed, np.int64), np.zeros(n, np.int8),
                          np.arange(n, dtype=np.int64), np.array(["clean-realistic"] * n))


def test_training_run_with_every_option_writes_weights_the_filter_loads(tmp_path: Path) -> None:
    data = tmp_path / "data"
    train = _sequences(240, 0)
    train.seeds = np.repeat([0, 1, 2, 7], 60)  # seeds in two ranges: the card lists them as such
    train.save(data / "train.npz")
    _sequences(60, 1).save(data / "val.npz")
    weights, out = tmp_path / "model" / "w.pt", tmp_path / "train"
    argv = ["--data", str(data), "--weights", str(weights), "--out", str(out), "--epochs", "3", "--patience", "3",
            "--batch", "32", "--lr", "0.003", "--stride", "8", "--running-mean", "--running-max", "--all-frames",
            "--label-smoothing", "0.05", "--schedule", "cosine", "--ema", "0.9", "--select", "f1", "--d-model", "16",
            "--layers", "1", "--heads", "2", "--d-ff", "32"]
    assert main(argv) == 0
    history = json.loads((out / "history.json").read_text())
    assert len(history["history"]) == 3
    summary = history["summary"]
    assert summary["val"]["f1"] == max(h["val_f1"] for h in history["history"])  # --select f1: the best F1 kept
    assert summary["val"]["f1"] >= 0.9  # the label is in det_score: learnt within 3 epochs
    config = summary["config"]
    assert config["running_mean"] and config["running_max"] and config["d_model"] == 16 and config["n_layers"] == 1
    card = (weights.parent / "MODEL_CARD.md").read_text()
    assert "running mean and max" in card and "--ema 0.9" in card
    assert "Train seeds 0-2,7 (240 tracks" in card and "validation seeds 1 (60 tracks" in card
    assert (weights.parent / "training_curves.png").is_file()
    model = TransformerPersistence(weights, "cpu")
    assert model.model.config.running_max and model.hysteresis.keep_threshold == pytest.approx(
        summary["keep_threshold"])
    val = TrackSequences.load(data / "val.npz")
    scores, _ = model.score([val.sequence(i) for i in range(len(val))])
    real = val.labels.astype(bool)
    auc = (scores[real][:, None] > scores[~real][None, :]).mean()  # P(score of a real > score of a nuisance)
    assert auc >= 0.8  # the shipped path (traced, newest 32 rows) ranks the tracks as trained
