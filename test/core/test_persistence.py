"""The persistence filter core: feature histories, the min-hits baseline, stickiness."""
from __future__ import annotations

import numpy as np
import pytest

from object_permanence.core.persistence import (
    FEATURES,
    N_FEATURES,
    MinHitsBaseline,
    MinHitsConfig,
    PersistenceFilter,
    PersistenceModel,
    TrackHistory,
    step_stereo,
    track_features,
)
from object_permanence.core.persistence.history import TRACK_FEATURES
from object_permanence.core.types import Track, TrackState


def track(track_id: int, state: TrackState = TrackState.VISIBLE, score: float = 0.9, unseen: int = 0) -> Track:
    return Track(track_id=track_id, state=state, box=np.array([100.0, 100.0, 40.0, 80.0]), velocity=np.array([40.0, 0]),
                 covariance=np.diag([4.0, 4.0, 1.0, 1.0]), score=score, class_id=0, class_name="box", age=5, hits=5,
                 frames_since_seen=unseen)


def test_features_of_a_matched_and_of_a_ghost_frame() -> None:
    seen, ghost = track_features(track(1)), track_features(track(1, TrackState.OCCLUDED, unseen=3))
    assert seen.shape == ghost.shape == (len(TRACK_FEATURES),) and seen.dtype == np.float32
    col = {name: i for i, name in enumerate(FEATURES)}
    assert (seen[col["matched"]], seen[col["det_score"]], seen[col["occluded"]]) == (1.0, pytest.approx(0.9), 0.0)
    assert (ghost[col["matched"]], ghost[col["det_score"]], ghost[col["occluded"]]) == (0.0, 0.0, 1.0)
    assert ghost[col["frames_since_seen"]] == 3
    assert seen[col["vx_rel"]] == pytest.approx(40.0 / np.sqrt(40 * 80))  # box sizes per second


def test_history_is_bounded_and_oldest_first() -> None:
    hist = TrackHistory(7, max_len=4)
    for k in range(6):
        hist.append(track(7, score=0.1 * k))
    x = hist.features()
    assert x.shape == (4, N_FEATURES) and len(hist) == 4
    np.testing.assert_allclose(x[:, FEATURES.index("det_score")], [0.2, 0.3, 0.4, 0.5], rtol=1e-6)
    with pytest.raises(ValueError, match="max_len"):
        TrackHistory(1, max_len=0)


def _history(scores: list[float | None]) -> TrackHistory:
    """None is a frame without a matched detection."""
    hist = TrackHistory(1, max_len=30)
    for s in scores:
        hist.append(track(1, score=0.0, unseen=1) if s is None else track(1, score=s))
    return hist


@pytest.mark.parametrize("scores, keep, score", [
    ([0.9, 0.9], False, 0.9 * 2 / 3),  # too few hits: score scaled down, not kept
    ([0.9, None, 0.8, 0.7], True, 0.8),  # three hits, mean 0.8
    ([0.4, 0.5, 0.45], False, 0.45),  # enough hits, mean confidence below the floor
])
def test_baseline_rule(scores, keep: bool, score: float) -> None:
    (d,) = MinHitsBaseline(MinHitsConfig(min_hits=3, min_mean_score=0.5)).decide([_history(scores)])
    assert d.keep is keep and d.score == pytest.approx(score)
    matched = np.array([s is not None for s in scores])
    np.testing.assert_allclose(d.attention, matched / matched.sum())  # uniform over the matched frames
    assert d.frames_observed == len(scores) and d.reason.startswith(f"min_hits:{matched.sum()}/3")


def test_baseline_attention_sums_to_one_without_a_matched_frame() -> None:
    """A window with no matched frame (a ghost from its first frame, a sticky track long unseen):
    uniform over every frame, never all zero (attention is a distribution)."""
    (d,) = MinHitsBaseline(MinHitsConfig(min_hits=3)).decide([_history([None, None])])
    assert not d.keep and d.score == 0.0
    np.testing.assert_allclose(d.attention, [0.5, 0.5])


def test_baseline_implements_the_model_interface_and_validates() -> None:
    assert isinstance(MinHitsBaseline(), PersistenceModel)
    with pytest.raises(ValueError, match="min_hits"):
        MinHitsConfig(min_hits=0)
    with pytest.raises(ValueError, match="min_mean_score"):
        MinHitsConfig(min_mean_score=1.5)


def test_filter_keeps_ghosts_of_kept_tracks_and_never_tentative_ones() -> None:
    filt = PersistenceFilter(MinHitsBaseline(MinHitsConfig(min_hits=3, min_mean_score=0.5)), history_len=30)
    for _ in range(3):
        result = filt.step([track(1), track(2, TrackState.TENTATIVE)])
    assert [t.track_id for t in result.kept] == [1] and result.kept[0].persistence_score == pytest.approx(0.9)
    assert {d.track_id: d.keep for d in result.decisions} == {1: True, 2: False}
    assert result.decisions[1].reason.endswith(" tentative")  # its 3 hits would keep it: the state does not
    for _ in range(40):  # a long ghost: the evidence leaves the 30-frame window, the track stays kept
        result = filt.step([track(1, TrackState.OCCLUDED, unseen=1)])
    assert [t.track_id for t in result.kept] == [1] and "sticky" in result.decisions[0].reason


def test_filter_without_stickiness_drops_a_ghost_whose_evidence_left_the_window() -> None:
    filt = PersistenceFilter(MinHitsBaseline(), history_len=5, sticky=False)
    for _ in range(3):
        filt.step([track(1)])
    for _ in range(5):
        result = filt.step([track(1, TrackState.OCCLUDED, unseen=1)])
    assert result.kept == []


def test_filter_keeps_missing_and_lost_tracks_for_forget_after_frames() -> None:
    filt = PersistenceFilter(MinHitsBaseline(MinHitsConfig(min_hits=1)), forget_after=3)
    filt.step([track(1), track(2)])
    result = filt.step([track(1, TrackState.LOST, unseen=10)])  # 2 missing, 1 reported LOST
    assert [d.track_id for d in result.decisions] == [1]
    assert filt.step([]).decisions == []
    back = filt.step([track(1), track(2, TrackState.OCCLUDED, unseen=4)])  # 1 re-identified, 2 back
    assert [d.frames_observed for d in back.decisions] == [3, 2] and [t.track_id for t in back.kept] == [1, 2]
    for _ in range(4):  # missing 4 frames > forget_after: forgotten
        filt.step([])
    fresh = filt.step([track(1, TrackState.TENTATIVE), track(2, TrackState.TENTATIVE)])
    assert [d.frames_observed for d in fresh.decisions] == [1, 1]
    with pytest.raises(ValueError, match="history_len"):
        PersistenceFilter(MinHitsBaseline(), history_len=0)
    with pytest.raises(ValueError, match="forget_after"):
        PersistenceFilter(MinHitsBaseline(), forget_after=-1)


def test_filter_leaves_out_duplicate_ids_and_decides_the_rest() -> None:
    filt = PersistenceFilter(MinHitsBaseline(MinHitsConfig(min_hits=1, min_mean_score=0.0)))
    result = filt.step([track(1), track(2), track(2, score=0.3), track(3)])
    assert result.duplicate_ids == [2]
    assert [d.track_id for d in result.decisions] == [1, 3] and [t.track_id for t in result.kept] == [1, 3]
    again = filt.step([track(2)])  # a later, well-formed message about track 2 starts a clean history
    assert again.duplicate_ids == [] and again.decisions[0].frames_observed == 1


def test_stereo_step_with_a_model_per_view_steps_each_view_on_its_own() -> None:
    models = [MinHitsBaseline(MinHitsConfig(min_hits=2, min_mean_score=0.5)) for _ in range(2)]
    filters = [PersistenceFilter(m, camera=cam) for m, cam in zip(models, ("left", "right"))]
    for _ in range(2):
        left, right = step_stereo(*filters, [track(1), track(2, score=0.2)], [track(1)])
    assert [t.track_id for t in left.kept] == [1] and [t.track_id for t in right.kept] == [1]
    assert [d.frames_observed for d in left.decisions] == [2, 2]
