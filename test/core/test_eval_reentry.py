"""Tests of the re-entry metric: returns after >= 2 s out of view, look-alike newcomers."""
from __future__ import annotations

import numpy as np
import pytest

from object_permanence.core.eval.reentry import (
    REENTRY_KEYS,
    ReentryCounts,
    add_reentry_columns,
    reentry_counts,
    reentry_markdown,
)
from object_permanence.core.eval.records import FrameRecord
from object_permanence.core.types import GroundTruthObject, ObjectKind, Track, TrackState

FPS = 10.0  # 2 s = 20 frames
OUT = np.zeros(4)  # an amodal box clipped to nothing: wholly outside the image


def gt(oid: int, box) -> GroundTruthObject:
    box = np.asarray(box, float)
    return GroundTruthObject(object_id=oid, kind=ObjectKind.OBJECT, class_id=0, box=box,
                             visibility=1.0 if box[2] > 0 else 0.0, position=np.zeros(3), visible_box=box)


def track(tid: int, box, state: TrackState = TrackState.VISIBLE) -> Track:
    return Track(track_id=tid, state=state, box=np.asarray(box, float), velocity=np.zeros(2),
                 covariance=np.eye(4), score=0.9, class_id=0, class_name="", age=0, hits=5, frames_since_seen=0)


def records(script: list[tuple[list, list]]) -> list[FrameRecord]:
    """One record per (ground truth, tracks) pair of the left camera."""
    return [FrameRecord(index=k, stamp=k / FPS, gt_left=g, tracks_left=t) for k, (g, t) in enumerate(script)]


BOX_A = [100.0, 100.0, 40.0, 80.0]
BOX_B = [400.0, 300.0, 40.0, 80.0]


def leave_and_return(away: int, id_after: int | None, ghost_while_away: bool = False) -> list[FrameRecord]:
    """Object 1 in view 10 frames (track 7), out of view ``away`` frames, back 10 frames (track
    ``id_after``, none if None)."""
    script = [([gt(1, BOX_A)], [track(7, BOX_A)]) for _ in range(10)]
    script += [([gt(1, OUT)], [track(7, BOX_A, TrackState.OCCLUDED)] if ghost_while_away else [])
               for _ in range(away)]
    script += [([gt(1, BOX_A)], [track(id_after, BOX_A)] if id_after is not None else []) for _ in range(10)]
    return records(script)


def test_a_return_with_the_old_id_is_kept() -> None:
    c = reentry_counts(leave_and_return(25, 7, ghost_while_away=True), fps=FPS)
    assert (c.returns, c.kept, c.identity_rate) == (1, 1, 1.0)


def test_a_return_with_a_new_id_or_untracked_is_not_kept() -> None:
    assert reentry_counts(leave_and_return(25, 8), fps=FPS) == ReentryCounts(1, 0, 0, 0)
    assert reentry_counts(leave_and_return(25, None), fps=FPS) == ReentryCounts(1, 0, 0, 0)


def test_a_short_absence_is_not_a_return() -> None:
    assert reentry_counts(leave_and_return(19, 8), fps=FPS).returns == 0  # 1.9 s < 2 s
    assert reentry_counts(leave_and_return(20, 8), fps=FPS).returns == 1


def test_an_object_never_held_before_leaving_is_not_counted() -> None:
    script = [([gt(1, BOX_A)], []) for _ in range(10)] + [([gt(1, OUT)], []) for _ in range(30)]
    script += [([gt(1, BOX_A)], [track(3, BOX_A)]) for _ in range(5)]
    assert reentry_counts(records(script), fps=FPS).returns == 0


def test_the_first_id_after_the_return_decides() -> None:
    """A new id first, the old one later (a late re-identification): not kept."""
    script = [([gt(1, BOX_A)], [track(7, BOX_A)]) for _ in range(10)] + [([gt(1, OUT)], []) for _ in range(30)]
    script += [([gt(1, BOX_A)], [track(8, BOX_A)]) for _ in range(3)]
    script += [([gt(1, BOX_A)], [track(7, BOX_A)]) for _ in range(5)]
    assert reentry_counts(records(script), fps=FPS) == ReentryCounts(1, 0, 0, 0)


def test_an_unlisted_object_is_out_of_view_too_and_ghosts_do_not_cover() -> None:
    script = [([gt(1, BOX_A)], [track(7, BOX_A)]) for _ in range(10)]
    script += [([], [track(7, BOX_A, TrackState.OCCLUDED)]) for _ in range(30)]
    script += [([gt(1, BOX_A)], [track(7, BOX_A)]) for _ in range(3)]
    assert reentry_counts(records(script), fps=FPS) == ReentryCounts(1, 1, 0, 0)


def newcomer_scene(newcomer_id: int) -> list[FrameRecord]:
    """Object 1 (track 7) leaves; object 2, its look-alike, enters elsewhere and is tracked as
    ``newcomer_id``."""
    script = [([gt(1, BOX_A), gt(2, OUT)], [track(7, BOX_A)]) for _ in range(10)]
    script += [([gt(1, OUT), gt(2, OUT)], []) for _ in range(10)]
    script += [([gt(1, OUT), gt(2, BOX_B)], [track(newcomer_id, BOX_B)]) for _ in range(10)]
    return records(script)


def test_a_newcomer_given_an_old_identity_is_an_error() -> None:
    wrong = reentry_counts(newcomer_scene(7), fps=FPS, newcomers=[2])
    right = reentry_counts(newcomer_scene(9), fps=FPS, newcomers=[2])
    assert (wrong.newcomers, wrong.wrong, wrong.lookalike_error_rate) == (1, 1, 1.0)
    assert (right.newcomers, right.wrong, right.lookalike_error_rate) == (1, 0, 0.0)
    assert reentry_counts(newcomer_scene(7), fps=FPS).newcomers == 0  # not declared a newcomer


def test_counts_add_rates_and_report_columns() -> None:
    total = ReentryCounts(3, 2, 4, 1) + ReentryCounts(1, 1, 0, 0)
    assert total == ReentryCounts(4, 3, 4, 1) and total.identity_rate == 0.75 and total.lookalike_error_rate == 0.25
    assert ReentryCounts().identity_rate is None and ReentryCounts().lookalike_error_rate is None
    rows = [{"dataset": "reentry", "difficulty": "realistic", "tracker": "ours"},
            {"dataset": "clean", "difficulty": "realistic", "tracker": "ours"}]
    add_reentry_columns(rows, [("reentry", "realistic", "ours", ReentryCounts(2, 1, 2, 0)),
                               ("reentry", "realistic", "ours", ReentryCounts(2, 2, 2, 1))])
    assert {k: rows[0][k] for k in REENTRY_KEYS} == {"reentry_returns": 4, "reentry_identity": 0.75,
                                                     "lookalike_newcomers": 4, "lookalike_errors": 0.25}
    assert rows[1]["reentry_returns"] == 0 and rows[1]["reentry_identity"] is None
    table = reentry_markdown(rows)
    assert "| realistic | reentry | ours | 4 | 75.0 | 4 | 25.0 |" in table and "| clean |" not in table


@pytest.mark.parametrize("kwargs", [{"fps": 0.0}, {"fps": float("nan")}, {"min_away_s": 0.0}, {"camera": "top"}])
def test_bad_arguments_raise(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        reentry_counts(leave_and_return(25, 7), **kwargs)
