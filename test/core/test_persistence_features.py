"""Stereo and context features, the filter's stereo API, training windows, the Bayesian existence
baseline and the gradient-boosting baseline (no torch needed)."""
from __future__ import annotations

import numpy as np
import pytest

from object_permanence.core.persistence import FEATURES, N_FEATURES, PersistenceFilter, PersistenceModel, TrackHistory
from object_permanence.core.persistence.dataset import TrackSequences
from object_permanence.core.persistence.existence import BayesianExistence, ExistenceConfig, existence_curves
from object_permanence.core.persistence.features import (
    HISTOGRAM_BINS,
    StereoConfig,
    context_rows,
    cosine,
    histogram_moments,
    stereo_features,
    twin_similarity,
)
from object_permanence.core.persistence.history import NO_CONTEXT, pad_histories
from object_permanence.core.persistence.training import choose_threshold, make_windows, prefix_scores_to_track
from object_permanence.core.types import Track, TrackState

COL = {name: i for i, name in enumerate(FEATURES)}


def trk(tid: int, cx: float, cy: float, h: float = 80.0, score: float = 0.9, unseen: int = 0,
        embedding: np.ndarray | None = None, measurement: np.ndarray | None = None,
        state: TrackState = TrackState.VISIBLE) -> Track:
    return Track(track_id=tid, state=state, box=np.array([cx, cy, h / 2, h]), velocity=np.zeros(2),
                 covariance=np.eye(4), score=score, class_id=0, class_name="box", age=3, hits=3,
                 frames_since_seen=unseen, embedding=embedding, measurement=measurement)


def test_stereo_partner_needs_same_rows_positive_plausible_disparity_and_size() -> None:
    cfg = StereoConfig(max_dy_rel=0.25, max_log_size=0.3, max_disparity_px=100.0)
    left = [trk(1, 300, 200), trk(2, 300, 200), trk(3, 300, 200), trk(4, 300, 200), trk(5, 300, 200)]
    # partners: 1 ok (d = 20), 2 on other rows, 3 negative disparity, 4 disparity too large, 5 other size
    right = [trk(11, 280, 205), trk(12, 100, 290), trk(13, 320, 200), trk(14, 150, 200), trk(15, 250, 200, h=160)]
    f = stereo_features(left[:1], right, +1.0, cfg)
    assert f[0, 0] == 1.0 and f[0, 3] == pytest.approx(0.2) and f[0, 1] == pytest.approx(5 / 80)
    for t, partner in zip(left[1:], right[1:]):
        g = stereo_features([t], [partner], +1.0, cfg)
        assert g[0, 0] == 0.0 and g[0, 1] == 1.0 and g[0, 3] == 0.0, partner.track_id
    # seen from the right view the sign flips: right x 280 has the left track at 300 as partner
    assert stereo_features([right[0]], [left[0]], -1.0, cfg)[0, 0] == 1.0
    assert stereo_features([right[0]], [left[0]], +1.0, cfg)[0, 0] == 0.0
    assert stereo_features(left, None, 1.0, cfg).shape == (5, 5)
    with pytest.raises(ValueError, match="max_disparity_px"):
        StereoConfig(max_disparity_px=0.0)


def test_context_rows_carry_appearance_and_innovation() -> None:
    e1, e2 = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    a = trk(1, 300, 200, embedding=e1, measurement=np.array([308.0, 200.0, 40, 80]))
    rows = context_rows([a], [trk(2, 280, 200, embedding=e1)], 1.0, StereoConfig(), [e2])
    c = {n: rows[0, COL[n] - (N_FEATURES - rows.shape[1])] for n in FEATURES[N_FEATURES - rows.shape[1]:]}
    assert c["stereo_app_sim"] == pytest.approx(1.0) and c["app_sim_prev"] == pytest.approx(0.0)
    assert c["innovation_rel"] == pytest.approx(8.0 / np.sqrt(40 * 80))
    assert cosine(None, e1) == 1.0 and cosine(e1, e2) == 0.0
    with pytest.raises(ValueError, match="previous_embeddings"):
        context_rows([a], None, 1.0, StereoConfig(), [])


def test_histogram_moments_read_brightness_and_saturation_of_the_embedder() -> None:
    from object_permanence.core.appearance import ColorHistogramEmbedder

    embedder = ColorHistogramEmbedder()
    assert embedder.bins == HISTOGRAM_BINS
    box = np.array([[25.0, 25.0, 40.0, 40.0]])
    glare = np.full((50, 50, 3), 255, np.uint8)                      # white: no saturation, full value
    dim_red = np.zeros((50, 50, 3), np.uint8)
    dim_red[..., 2] = 120                                            # BGR red at V = 120: S = 255, V bin 1 of 4
    assert histogram_moments(embedder.embed(glare, box)[0]) == pytest.approx((0.0, 1.0))
    assert histogram_moments(embedder.embed(dim_red, box)[0]) == pytest.approx((1.0, 1.0 / 3.0))
    assert histogram_moments(None) == histogram_moments(np.ones(5)) == histogram_moments(np.zeros(128)) == (0.5, 0.5)
    row = TrackHistory(1, 2)
    row.append(trk(1, 100, 100, embedding=embedder.embed(glare, box)[0]))
    assert (row.features()[0, COL["app_saturation"]], row.features()[0, COL["app_value"]]) == (0.0, 1.0)


def test_twin_similarity_finds_the_look_alike_in_the_same_view() -> None:
    e = np.array([[1.0, 0.0, 0.0], [0.9, 0.1, 0.0], [0.0, 0.0, 1.0]])
    tracks = [trk(i, 100 * i, 100, embedding=e[i]) for i in range(3)]
    sim = twin_similarity(tracks)
    cos01 = 0.9 / np.hypot(0.9, 0.1)                                 # cos = <a, b> / (|a| |b|)
    np.testing.assert_allclose(sim, [cos01, cos01, 0.0], rtol=1e-6)
    assert twin_similarity(tracks[:1]).tolist() == [0.0]             # alone: no twin
    assert twin_similarity([trk(1, 0, 0), *tracks[:1]]).tolist() == [0.0, 0.0]  # an embedding missing
    rows = context_rows(tracks, None, 1.0, StereoConfig(), [None] * 3)
    np.testing.assert_allclose(rows[:, -1], sim)
    assert rows.shape[1] == len(NO_CONTEXT)


def test_filter_step_uses_the_other_view_and_validates_camera() -> None:
    class Record:
        name = "record"

        def __init__(self):
            self.seen = []

        def decide(self, histories):
            self.seen.append([h.features()[-1].copy() for h in histories])
            return BayesianExistence().decide(histories)

    model = Record()
    assert isinstance(model, PersistenceModel)
    filt = PersistenceFilter(model, history_len=4, camera="right")
    filt.step([trk(1, 280, 200)], [trk(9, 300, 200)])  # right view: partner to its right
    filt.step([trk(1, 280, 200)])  # no other view this frame
    assert model.seen[0][0][COL["stereo_match"]] == 1.0 and model.seen[1][0][COL["stereo_match"]] == 0.0
    with pytest.raises(ValueError, match="camera"):
        PersistenceFilter(model, camera="middle")
    hist = TrackHistory(1, 3)
    with pytest.raises(ValueError, match="context"):
        hist.append(trk(1, 0, 0), np.zeros(3))
    hist.append(trk(1, 0, 0))
    np.testing.assert_array_equal(hist.features()[0, -len(NO_CONTEXT):], NO_CONTEXT)


def _sequences(lengths: list[int], labels: list[int]) -> TrackSequences:
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(sum(lengths), N_FEATURES)).astype(np.float32)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    n = len(lengths)
    return TrackSequences(feats, offsets, np.array(labels, np.int8), np.zeros(n, np.int64), np.zeros(n, np.int8),
                          np.arange(n), np.array(["g"] * n))


def test_windows_prefix_every_frame_and_sliding_last_frame(tmp_path) -> None:
    data = _sequences([3, 10], [1, 0])
    w = make_windows(data, window=4, stride=3)
    # track 0: one prefix window of 3; track 1: prefix 0..3, then windows ending at 7, 10
    np.testing.assert_array_equal(w.track, [0, 1, 1, 1])
    np.testing.assert_array_equal(w.lengths, [3, 4, 4, 4])
    np.testing.assert_array_equal(w.loss_mask[0], [True, True, True, False])
    np.testing.assert_array_equal(w.loss_mask[2], [False, False, False, True])
    np.testing.assert_array_equal(w.x[3], data.sequence(1)[6:10])
    np.testing.assert_array_equal(w.labels, [1, 0, 0, 0])
    scores = np.array([[0.1, 0.9, 0.2, 0.0], [0.3, 0.1, 0.1, 0.1], [0.0, 0.0, 0.0, 0.6], [0.99, 0.99, 0.99, 0.2]])
    np.testing.assert_allclose(prefix_scores_to_track(scores, w, 2), [0.9, 0.6])  # masked frames ignored
    data.save(tmp_path / "d.npz")
    again = TrackSequences.load(tmp_path / "d.npz")
    np.testing.assert_array_equal(again.sequence(1), data.sequence(1))
    assert len(again.select(again.labels == 1)) == 1
    every = make_windows(data, window=4, stride=3, all_frames=True)  # same windows, every sliding frame scored
    np.testing.assert_array_equal(every.x, w.x)
    np.testing.assert_array_equal(every.loss_mask[0], w.loss_mask[0])
    np.testing.assert_array_equal(every.loss_mask[2], [True, True, True, True])


def test_thresholds_are_chosen_on_frames_the_filter_may_keep_a_track(tmp_path) -> None:
    """``publish_tentative``: a track's first rows were TENTATIVE; its score there is trained but
    no threshold is chosen on it (the filter cannot keep the track there)."""
    data = _sequences([3, 10], [1, 0])
    data.tentative_rows = np.array([2, 5])
    w = make_windows(data, window=4, stride=3)
    np.testing.assert_array_equal(w.loss_mask[0], [True, True, True, False])  # trained from the first row
    np.testing.assert_array_equal(w.decidable[0], [False, False, True, False])
    np.testing.assert_array_equal(w.decidable[1], [False] * 4)  # rows 0-3 of track 1: all TENTATIVE
    np.testing.assert_array_equal(w.decidable[2], [False, False, False, True])
    scores = np.array([[0.1, 0.9, 0.2, 0.0], [0.3, 0.1, 0.8, 0.1], [0.0, 0.0, 0.0, 0.6], [0.99, 0.99, 0.99, 0.2]])
    np.testing.assert_allclose(prefix_scores_to_track(scores, w, 2), [0.2, 0.6])
    data.save(tmp_path / "d.npz")
    again = TrackSequences.load(tmp_path / "d.npz")
    np.testing.assert_array_equal(again.tentative_rows, [2, 5])
    np.testing.assert_array_equal(again.select(again.labels == 0).tentative_rows, [5])
    np.testing.assert_array_equal(TrackSequences.concat([again, again]).tentative_rows, [2, 5, 2, 5])
    old = {k: getattr(data, k) for k in ("features", "offsets", "labels", "seeds", "cameras", "track_ids", "groups")}
    np.savez_compressed(tmp_path / "old.npz", **old)  # written before the field: no TENTATIVE rows
    np.testing.assert_array_equal(TrackSequences.load(tmp_path / "old.npz").tentative_rows, [0, 0])


def test_choose_threshold_best_f1_or_recall_at_a_precision_floor() -> None:
    scores = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.3])
    labels = np.array([1, 1, 1, 0, 1, 0])
    c = choose_threshold(scores, labels, min_precision=0.99)
    assert c["threshold"] == 0.8 and c["precision"] == 1.0 and c["recall"] == 0.75
    assert choose_threshold(scores, labels, min_precision=0.8)["threshold"] == 0.6
    best = choose_threshold(scores, labels)  # F1: 0.8 -> 6/7, 0.6 -> 8/9
    assert best["threshold"] == 0.6 and best["f1"] == pytest.approx(8 / 9)


def test_existence_probability_follows_the_bayes_update() -> None:
    cfg = ExistenceConfig(prior=0.5, decay=0.5, keep_threshold=0.8)
    x = np.zeros((1, 3, N_FEATURES), np.float32)
    x[0, :, COL["matched"]] = [1, 1, 0]
    x[0, :, COL["det_score"]] = [0.8, 0.8, 0.0]
    p = existence_curves(x, np.array([3]), cfg)[0]
    p1 = 0.5 * 0.8 / (0.5 * 0.8 + 0.5 * 0.2)
    p2 = p1 * 0.8 / (p1 * 0.8 + (1 - p1) * 0.2)
    np.testing.assert_allclose(p, [p1, p2, 0.5 * p2])
    hist = TrackHistory.from_rows(4, x[0], 32)
    (d,) = BayesianExistence(cfg).decide([hist])
    assert d.score == pytest.approx(0.5 * p2) and d.keep == (0.5 * p2 >= 0.8)
    assert d.attention.sum() == pytest.approx(1.0) and d.attention[2] == 0.0
    with pytest.raises(ValueError, match="prior"):
        ExistenceConfig(prior=1.0)


def test_pad_histories_left_aligns() -> None:
    a, b = np.ones((2, N_FEATURES), np.float32), 2 * np.ones((4, N_FEATURES), np.float32)
    batch, lengths = pad_histories([a, b])
    assert batch.shape == (2, 4, N_FEATURES) and lengths.tolist() == [2, 4]
    assert (batch[0, :2] == 1).all() and (batch[0, 2:] == 0).all() and (batch[1] == 2).all()


def test_gradient_boosting_baseline_learns_a_separable_rule() -> None:
    pytest.importorskip("sklearn")
    from object_permanence.core.persistence.classical import BoostingPersistence, BoostingTraining, fit_boosting

    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 6, N_FEATURES)).astype(np.float32)
    labels = (rng.random(200) < 0.5).astype(np.float32)
    x[:, :, COL["stereo_match"]] = labels[:, None]  # real tracks always have a stereo partner
    lengths = np.full(200, 6)
    mask = np.ones((200, 6), bool)
    clf = fit_boosting(x, lengths, mask, labels, BoostingTraining(max_iter=20))
    model = BoostingPersistence(clf, 0.5)
    decisions = model.decide([TrackHistory.from_rows(i, x[i], 32) for i in range(20)])
    assert [d.keep for d in decisions] == [bool(v) for v in labels[:20]]
    with pytest.raises(ValueError, match="keep_threshold"):
        BoostingPersistence(clf, 1.5)


def test_boosting_fit_on_track_sequences_saves_loads_and_checks_its_features(tmp_path) -> None:
    pytest.importorskip("sklearn")
    from object_permanence.core.persistence.classical import (
        BoostingTraining,
        fit_persistence_boosting,
        load_boosting,
        save_boosting,
    )
    from object_permanence.core.persistence.dataset import TrackSequences

    def sequences(seed: int, n: int) -> TrackSequences:
        rng = np.random.default_rng(seed)
        labels = (np.arange(n) % 2).astype(np.int8)
        lengths = rng.integers(3, 50, n)
        rows = rng.normal(size=(int(lengths.sum()), N_FEATURES)).astype(np.float32)
        rows[:, COL["stereo_match"]] = np.repeat(labels, lengths)  # real tracks have a stereo partner
        return TrackSequences(rows, np.concatenate([[0], np.cumsum(lengths)]), labels, np.full(n, seed),
                              np.zeros(n, np.int8), np.arange(n), np.full(n, "g"))

    model, choice = fit_persistence_boosting(sequences(0, 60), sequences(1, 20), 32, BoostingTraining(max_iter=10))
    assert choice["f1"] == 1.0 and 0.0 <= model.keep_threshold <= 1.0
    path = tmp_path / "b.joblib"
    save_boosting(model, path, {"note": "test"})
    loaded = load_boosting(path)
    val = sequences(2, 6)
    histories = [TrackHistory.from_rows(i, val.sequence(i), 32) for i in range(len(val))]
    assert [d.keep for d in loaded.decide(histories)] == [bool(v) for v in val.labels]
    assert [d.score for d in loaded.decide(histories)] == [d.score for d in model.decide(histories)]
    import joblib

    joblib.dump({"classifier": model.classifier, "keep_threshold": 0.5, "features": ["other"]}, path)
    with pytest.raises(ValueError, match="features"):
        load_boosting(path)
    joblib.dump([1, 2], path)
    with pytest.raises(ValueError, match="not a persistence boosting model"):
        load_boosting(path)


def test_decision_facts_and_faithfulness_of_explanations() -> None:
    from object_permanence.core.persistence.evidence import decision_facts, template_text, ungrounded_numbers

    rows = np.zeros((5, N_FEATURES), np.float32)
    rows[:, COL["matched"]] = [1, 1, 0, 1, 1]
    rows[:, COL["det_score"]] = [0.9, 0.9, 0.0, 0.5, 0.9]
    rows[:, COL["stereo_match"]] = [1, 1, 0, 1, 0]
    rows[2, COL["occluded"]] = 1
    attention = np.array([0.05, 0.05, 0.1, 0.6, 0.2])
    facts = decision_facts(rows, attention, 0.374, keep=False, top_k=2)
    assert facts["score"] == 0.37 and facts["decision"] == "filtered" and facts["frames_total"] == 5
    assert [f["frame"] for f in facts["top_frames"]] == [4, 5]
    assert facts["top_frames"][0]["events"] == ["matched", "confidence_dip"]
    assert facts["top_frames"][1]["events"] == ["matched", "stereo_mismatch"]
    assert facts["runner_up"]["frame"] == 3 and facts["runner_up"]["events"] == ["unmatched", "occluded"]
    text = template_text(facts)
    assert "frame 4" in text and "0.37" in text and ungrounded_numbers(text, facts) == []
    # an invented number (a frame index or a score the facts do not hold) is caught
    assert ungrounded_numbers(text + " It was seen 12 times with score 0.95.", facts) == ["12", "0.95"]
    assert ungrounded_numbers("score 0.7", facts) == ["0.7"]
    assert ungrounded_numbers("score 0.37, about 0.4", facts) == []  # a coarser rounding of a fact is faithful
    with pytest.raises(ValueError, match="same length"):
        decision_facts(rows, attention[:3], 0.5, True)
