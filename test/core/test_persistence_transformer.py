"""The persistence transformer and its PersistenceModel: causality, padding, attention, batching,
hysteresis, checkpoints, and the shipped weights."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from object_permanence.core.persistence import (  # noqa: E402
    FEATURES,
    N_FEATURES,
    FilterResult,
    PersistenceFilter,
    PersistenceModel,
    TrackHistory,
    step_stereo,
)
from object_permanence.core.persistence.model import (  # noqa: E402
    PersistenceTransformer,
    TransformerConfig,
    count_parameters,
    load_checkpoint,
    save_checkpoint,
)
from object_permanence.core.persistence.transformer_filter import (  # noqa: E402
    Hysteresis,
    TransformerPersistence,
    resolve_device,
)
from object_permanence.core.types import Track, TrackState  # noqa: E402

SHIPPED = Path(__file__).resolve().parents[2] / "models" / "persistence" / "persistence_transformer.pt"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


#: (running_mean, running_max): the causal running aggregates a model may be fed.
AGGREGATES = [(False, False), (True, False), (False, True), (True, True)]


def _model(seed: int = 0, running_mean: bool = False, running_max: bool = False) -> PersistenceTransformer:
    torch.manual_seed(seed)
    return PersistenceTransformer(TransformerConfig(n_features=N_FEATURES, running_mean=running_mean,
                                                    running_max=running_max)).eval()


def test_config_validates_and_model_is_small() -> None:
    assert count_parameters(_model()) <= 1_000_000
    with pytest.raises(ValueError, match="divisible"):
        TransformerConfig(n_features=4, d_model=30, n_heads=4)
    with pytest.raises(ValueError, match="n_features"):
        TransformerConfig(n_features=0)


@pytest.mark.parametrize("running_mean,running_max", AGGREGATES)
def test_scores_are_causal_and_padding_does_not_leak(running_mean: bool, running_max: bool) -> None:
    m = _model(running_mean=running_mean, running_max=running_max)
    x = torch.randn(3, 12, N_FEATURES)
    lengths = torch.tensor([12, 5, 1])
    with torch.inference_mode():
        full, w = m(x, lengths)
        cut, _ = m(x[:, :6], torch.clamp(lengths, max=6))
        x2 = x.clone()
        x2[1, 5:] = 1e3  # garbage in the padding of sequence 1
        padded, _ = m(x2, lengths)
        last, w_last = m(x, lengths, last_only=True)
    torch.testing.assert_close(full[:, :5], cut[:, :5])  # frame t never sees frames after t
    torch.testing.assert_close(full[1, :5], padded[1, :5])
    rows = torch.arange(3)
    torch.testing.assert_close(last[:, 0], full[rows, lengths - 1])
    torch.testing.assert_close(w_last[:, 0], w[rows, lengths - 1])
    # pooling weights: rows sum to 1 over s <= t within the valid frames, 0 beyond
    torch.testing.assert_close(w[0].sum(-1), torch.ones(12))
    assert torch.all(torch.triu(w[0], diagonal=1) == 0)
    assert torch.all(w[1, :, 5:] == 0) and torch.all(w[1, 5:] == 0)
    with pytest.raises(ValueError, match="max_len"):
        m(torch.randn(1, 40, N_FEATURES), torch.tensor([40]))


def _checkpoint(tmp_path: Path, keep: float = 0.5, release: float = 0.4, features=FEATURES,
                model: PersistenceTransformer | None = None) -> Path:
    path = tmp_path / "w.pt"
    save_checkpoint(path, model or _model(), {"features": list(features), "keep_threshold": keep,
                                              "release_threshold": release})
    return path


def track(tid: int, k: int, score: float = 0.9) -> Track:
    return Track(track_id=tid, state=TrackState.VISIBLE, box=np.array([100.0 + k, 100.0, 40.0, 80.0]),
                 velocity=np.zeros(2), covariance=np.eye(4), score=score, class_id=0, class_name="box", age=k,
                 hits=k, frames_since_seen=0)


def test_batched_decisions_equal_one_by_one(tmp_path: Path) -> None:
    model = TransformerPersistence(_checkpoint(tmp_path), "cpu")
    assert isinstance(model, PersistenceModel) and model.name == "transformer"
    rng = np.random.default_rng(0)
    hists = [TrackHistory.from_rows(i, rng.normal(size=(n, N_FEATURES)), 32) for i, n in enumerate((1, 7, 32, 40))]
    batch = model.score([h.features() for h in hists])
    for h, s, a in zip(hists, *batch):
        (alone,), (att,) = model.score([h.features()])
        assert s == pytest.approx(alone, abs=1e-5)
        np.testing.assert_allclose(a, att, atol=1e-5)
        assert len(a) == min(len(h), 32) and a.sum() == pytest.approx(1.0, abs=1e-5)
    decisions = model.decide(hists)
    assert [d.track_id for d in decisions] == [0, 1, 2, 3] and all(0 <= d.score <= 1 for d in decisions)
    assert model.decide([]) == []


def test_hysteresis_keeps_until_the_release_threshold(tmp_path: Path) -> None:
    model = TransformerPersistence(_checkpoint(tmp_path), "cpu", hysteresis=Hysteresis(0.6, 0.3))
    hist = TrackHistory(1, 32)
    hist.append(track(1, 0))
    seq = iter([0.5, 0.7, 0.5, 0.31, 0.29, 0.5, 0.61])
    model.score = lambda feats: (np.array([next(seq)]), [np.ones(len(feats[0])) / len(feats[0])])
    keeps = [model.decide([hist])[0].keep for _ in range(7)]
    assert keeps == [False, True, True, True, False, False, True]
    with pytest.raises(ValueError, match="release_threshold"):
        Hysteresis(0.3, 0.6)


def test_checkpoint_round_trip_and_refusals(tmp_path: Path) -> None:
    path = _checkpoint(tmp_path, keep=0.7, release=0.6)
    model, extra = load_checkpoint(path)
    assert extra["keep_threshold"] == 0.7 and not model.training
    assert TransformerPersistence(path, "cpu").hysteresis == Hysteresis(0.7, 0.6)
    with pytest.raises(ValueError, match="features"):
        TransformerPersistence(_checkpoint(tmp_path, features=FEATURES[:-1]), "cpu")
    with pytest.raises(FileNotFoundError):
        TransformerPersistence(tmp_path / "missing.pt", "cpu")
    with pytest.raises(ValueError, match="device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="cuda"):
            resolve_device("cuda")
        assert resolve_device("auto") == "cpu"


def test_filter_runs_the_transformer_with_stereo(tmp_path: Path) -> None:
    filt = PersistenceFilter(TransformerPersistence(_checkpoint(tmp_path), "cpu"), history_len=32)
    for k in range(5):
        res = filt.step([track(1, k), track(2, k)], [track(7, k - 20)])
    assert [d.frames_observed for d in res.decisions] == [5, 5] and len(res.decisions[0].attention) == 5


def test_stereo_step_decides_both_views_in_one_batch_as_two_steps_would(tmp_path: Path) -> None:
    path = _checkpoint(tmp_path, keep=0.5, release=0.45)
    shared = TransformerPersistence(path, "cpu")
    calls = []
    decide = shared.decide
    shared.decide = lambda hists: calls.append(len(hists)) or decide(hists)
    pair = {cam: PersistenceFilter(shared, history_len=32, camera=cam) for cam in ("left", "right")}
    alone = {cam: PersistenceFilter(TransformerPersistence(path, "cpu"), history_len=32, camera=cam)
             for cam in ("left", "right")}
    for k in range(6):
        left = [track(1, k), track(2, k, score=0.3 + 0.1 * k)] + ([track(5, k)] if k >= 2 else [])
        right = [track(1, k - 20), track(3, k)]
        got = step_stereo(pair["left"], pair["right"], left, right)
        want = (alone["left"].step(left, right), alone["right"].step(right, left))
        for g, w in zip(got, want):
            assert [d.track_id for d in g.decisions] == [d.track_id for d in w.decisions]
            np.testing.assert_allclose([d.score for d in g.decisions], [d.score for d in w.decisions], atol=1e-5)
            assert [d.keep for d in g.decisions] == [d.keep for d in w.decisions]
            assert [t.track_id for t in g.kept] == [t.track_id for t in w.kept]
    assert calls == [4, 4, 5, 5, 5, 5]  # one model call a frame, both views' tracks in it
    assert step_stereo(pair["left"], pair["right"], [], []) == (FilterResult([], []), FilterResult([], []))


@pytest.mark.skipif(not SHIPPED.is_file(), reason="no shipped weights yet (make train-persistence)")
def test_shipped_weights_are_small_and_beat_min_hits_on_a_held_out_run() -> None:
    """A full held-out run (seed 1000, never trained on) of the nuisance-heavy scene: per-track F1
    of the shipped transformer at least that of the tuned min-hits rule."""
    from object_permanence.core.eval.persistence import persistence_tracks
    from object_permanence.core.eval.records import CameraIndex
    from object_permanence.core.persistence import MinHitsBaseline, MinHitsConfig
    from object_permanence.core.persistence.dataset import tracked_runs
    from object_permanence.core.world_model import WorldModelConfig
    from object_permanence.tools.eval_tracking import shipped_world_model_config

    assert SHIPPED.stat().st_size <= 5 * 1024 * 1024
    config_dir = SHIPPED.parents[2] / "config"
    wm = shipped_world_model_config(config_dir) if config_dir.is_dir() else WorldModelConfig()
    (run,) = tracked_runs("noisy", 1000, ("realistic",), wm)  # the full 300-frame run
    f1 = {}
    for name, model in (("transformer", TransformerPersistence(SHIPPED, "cpu")),
                        ("min_hits", MinHitsBaseline(MinHitsConfig(min_hits=2, min_mean_score=0.65)))):
        filters = {c: PersistenceFilter(model, 32, camera=c) for c in ("left", "right")}
        for k, rec in enumerate(run.records):
            left, right = run.tracks["left"][k], run.tracks["right"][k]
            rec.decisions_left = filters["left"].step(left, right).decisions
            rec.decisions_right = filters["right"].step(right, left).decisions
        counts = persistence_tracks(run.records, indexes={c: CameraIndex(run.records, c) for c in ("left", "right")})
        f1[name] = counts.as_counts()["persistence_f1"]
    assert f1["transformer"] >= f1["min_hits"], f1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
@pytest.mark.skipif(not SHIPPED.is_file(), reason="no shipped weights yet (make train-persistence)")
def test_cuda_scores_match_the_cpu() -> None:
    """The shipped model on the GPU: the same scores (float32 tolerance), decisions and attention as
    on the CPU for one padded batch of histories of different lengths."""
    rng = np.random.default_rng(3)
    lengths = [1, 4, 17, 32, 40]
    histories = [TrackHistory.from_rows(i, rng.normal(size=(n, N_FEATURES)).astype(np.float32), 32)
                 for i, n in enumerate(lengths)]
    cpu = TransformerPersistence(SHIPPED, "cpu").decide(histories)
    gpu_model = TransformerPersistence(SHIPPED, "cuda")
    assert next(gpu_model.model.parameters()).device.type == "cuda"
    gpu = gpu_model.decide(histories)
    for c, g in zip(cpu, gpu):
        assert abs(c.score - g.score) < 1e-4 and c.keep == g.keep and c.frames_observed == g.frames_observed
        np.testing.assert_allclose(g.attention, c.attention, atol=1e-4)


@pytest.mark.parametrize("running_mean,running_max", AGGREGATES)
def test_traced_scoring_matches_the_eager_model(tmp_path: Path, running_mean: bool, running_max: bool) -> None:
    """The traced, frozen module the filter scores with gives the eager model's scores and attention
    for batches of other sizes and lengths than it was traced with (1 to max_len frames), with
    every choice of running aggregates."""
    path = _checkpoint(tmp_path, model=_model(running_mean=running_mean, running_max=running_max))
    traced, eager = TransformerPersistence(path, "cpu"), TransformerPersistence(path, "cpu", traced=False)
    rng = np.random.default_rng(5)
    for lengths in ([1], [3, 7], [13, 20, 5], [3, 32, 7], [32] * 9, [2, 40, 16, 1, 31]):
        feats = [rng.normal(size=(n, N_FEATURES)).astype(np.float32) for n in lengths]
        (s_t, a_t), (s_e, a_e) = traced.score(feats), eager.score(feats)
        np.testing.assert_allclose(s_t, s_e, atol=1e-6)
        for x, y, n in zip(a_t, a_e, lengths):
            assert len(x) == min(n, traced.max_len)
            np.testing.assert_allclose(x, y, atol=1e-6)
