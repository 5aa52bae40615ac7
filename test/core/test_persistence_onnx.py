"""The persistence transformer's ONNX export and its torch-free scorer: the checkpoint's numbers,
its thresholds from the file, and named refusals."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from object_permanence.core.persistence.history import FEATURES, pad_histories

torch = pytest.importorskip("torch")  # the export (and the reference scores) need torch
pytest.importorskip("onnx")

MODELS = Path(__file__).resolve().parents[2] / "models" / "persistence"


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Path, Path]:
    """A small random checkpoint (thresholds 0.6 / 0.45) and its export."""
    from object_permanence.core.persistence.model import (
        PersistenceTransformer,
        TransformerConfig,
        export_onnx,
        save_checkpoint,
    )

    folder = tmp_path_factory.mktemp("persistence_onnx")
    torch.manual_seed(1)
    model = PersistenceTransformer(TransformerConfig(n_features=len(FEATURES), d_model=16, n_heads=2, n_layers=1,
                                                     d_ff=32, max_len=12, running_mean=True)).eval()
    model.set_normalisation(torch.linspace(-1, 1, len(FEATURES)), torch.linspace(0.5, 2, len(FEATURES)))
    pt = folder / "small.pt"
    save_checkpoint(pt, model, {"features": list(FEATURES), "keep_threshold": 0.6, "release_threshold": 0.45})
    return pt, export_onnx(model, folder / "small.onnx", 0.6, 0.45, FEATURES)


def _histories(lengths, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(0.0, 1.5, (n, len(FEATURES))).astype(np.float32) for n in lengths]


def test_the_export_scores_as_the_checkpoint_at_every_length(exported) -> None:
    from object_permanence.core.persistence.transformer_filter import TransformerPersistence

    pt, onnx_path = exported
    histories = _histories([1, 2, 5, 11, 12, 13, 30] * 3)  # 13 and 30 rows: cut to the newest 12
    reference = TransformerPersistence(pt, "cpu", traced=False)
    exported_model = TransformerPersistence(onnx_path, "cpu")
    scores, weights = exported_model.score(histories)
    ref_scores, ref_weights = reference.score(histories)
    assert np.abs(scores - ref_scores).max() < 1e-5
    assert scores.std() > 0.01  # the histories are told apart: the comparison is not of constants
    for h, w, rw in zip(histories, weights, ref_weights):
        assert w.shape == (min(len(h), 12),) and np.isclose(w.sum(), 1.0, atol=1e-5)
        assert np.abs(w - rw).max() < 1e-5
    assert exported_model.hysteresis.keep_threshold == 0.6 and exported_model.hysteresis.release_threshold == 0.45
    assert exported_model.device == "cpu" and exported_model.max_len == 12


def test_decisions_through_the_export_keep_and_release_with_hysteresis(exported) -> None:
    """Thresholds between the scores: some tracks kept, some not; a release threshold below a kept
    track's score holds it, one above releases it."""
    from object_permanence.core.persistence.history import TrackHistory
    from object_permanence.core.persistence.transformer_filter import Hysteresis, TransformerPersistence

    _, onnx_path = exported
    histories = [TrackHistory.from_rows(k, rows, 32) for k, rows in enumerate(_histories([3, 8, 5, 12, 1, 7], seed=4))]
    scores, _ = TransformerPersistence(onnx_path, "cpu").score([h.features() for h in histories])
    split = float(np.median(scores))
    model = TransformerPersistence(onnx_path, "cpu", hysteresis=Hysteresis(split, float(scores.min())))
    first = model.decide(histories)
    assert [d.track_id for d in first] == list(range(6))
    assert [d.keep for d in first] == [bool(s >= split) for s in scores] and 0 < sum(d.keep for d in first) < 6
    assert all(d.reason.startswith("transformer:") for d in first)
    held = model.decide(histories)  # the same scores: kept tracks stay above the release threshold
    assert [d.keep for d in held] == [d.keep for d in first]
    model.hysteresis = Hysteresis(1.0, 1.0)  # nothing reaches it: every kept track is released
    assert not any(d.keep for d in model.decide(histories))


def test_refusals_are_named(exported, tmp_path) -> None:
    import onnx

    from object_permanence.core.persistence.transformer_filter import TransformerPersistence

    _, onnx_path = exported
    with pytest.raises(FileNotFoundError, match="not found"):
        TransformerPersistence(tmp_path / "missing.onnx", "cpu")
    with pytest.raises(ValueError, match="CPU provider"):
        TransformerPersistence(onnx_path, "cuda")
    model = onnx.load(str(onnx_path))
    features = next(p for p in model.metadata_props if p.key == "features")
    features.value = json.dumps(list(FEATURES[:-1]))
    onnx.save(model, str(tmp_path / "other_features.onnx"))
    with pytest.raises(ValueError, match="trained on features"):
        TransformerPersistence(tmp_path / "other_features.onnx", "cpu")
    del model.metadata_props[:]
    onnx.save(model, str(tmp_path / "bare.onnx"))
    with pytest.raises(ValueError, match="not a persistence transformer export"):
        TransformerPersistence(tmp_path / "bare.onnx", "cpu")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="cannot load"):
        TransformerPersistence(tmp_path / "junk.onnx", "cpu")


def test_padding_to_a_fixed_length() -> None:
    batch, lengths = pad_histories([np.ones((2, 3), np.float32), np.ones((4, 3), np.float32)], length=6)
    assert batch.shape == (2, 6, 3) and lengths.tolist() == [2, 4]
    assert batch[0, 2:].sum() == 0 and batch[1, :4].sum() == 12
    with pytest.raises(ValueError, match="does not fit"):
        pad_histories([np.ones((7, 3), np.float32)], length=6)


def test_export_tool_checks_the_export_and_fails_beyond_its_tolerance(exported, tmp_path) -> None:
    from object_permanence.tools.export_persistence import main

    pt, _ = exported
    report = tmp_path / "check.json"
    assert main(["--weights", str(pt), "--out", str(tmp_path / "cli.onnx"), "--histories", "30",
                 "--report", str(report)]) == 0
    got = json.loads(report.read_text())
    assert got["histories"] == 30 and max(got["max_abs_diff"].values()) < 1e-5
    assert main(["--weights", str(pt), "--out", str(tmp_path / "cli.onnx"), "--histories", "30",
                 "--tolerance", "-1"]) == 1  # a difference is never below a negative tolerance


def test_the_shipped_export_is_the_shipped_checkpoint() -> None:
    """models/persistence/persistence_transformer.onnx scores as the .pt beside it (a retrained
    checkpoint needs `make export-persistence`)."""
    from object_permanence.core.persistence.transformer_filter import TransformerPersistence
    from object_permanence.tools.export_persistence import check_histories

    pt, onnx_path = MODELS / "persistence_transformer.pt", MODELS / "persistence_transformer.onnx"
    if not (pt.is_file() and onnx_path.is_file()):
        pytest.skip("the shipped persistence models are not there")
    reference = TransformerPersistence(pt, "cpu")
    model = reference.model
    histories = check_histories(model.mean.numpy(), model.std.numpy(), 64, model.config.max_len, seed=3)
    exported_model = TransformerPersistence(onnx_path, "cpu")
    assert np.abs(exported_model.score(histories)[0] - reference.score(histories)[0]).max() < 1e-5
    assert exported_model.hysteresis == reference.hysteresis


def test_the_export_needs_no_torch(exported, monkeypatch) -> None:
    import sys

    from object_permanence.core.persistence.transformer_filter import TransformerPersistence

    _, onnx_path = exported
    monkeypatch.setitem(sys.modules, "torch", None)  # any `import torch` now raises ImportError
    scores, weights = TransformerPersistence(onnx_path, "auto").score(_histories([4, 9]))
    assert scores.shape == (2,) and [w.shape for w in weights] == [(4,), (9,)]
