"""The persistence filter: keeps per-track histories, asks a model for decisions, and passes on
only the tracks judged persistent (with their score set)."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from object_permanence.core.persistence.base import PersistenceModel
from object_permanence.core.persistence.features import StereoConfig, context_rows
from object_permanence.core.persistence.history import TrackHistory, frame_feature_rows
from object_permanence.core.types import PersistenceDecision, Track, TrackState, duplicate_track_ids


@dataclass
class _Frame:
    """One camera's frame between :meth:`PersistenceFilter._prepare` and ``_finish``."""

    tracks: list[Track]  # duplicates left out
    histories: list[TrackHistory]  # one per track, this frame's row appended
    duplicates: list[int]


@dataclass
class FilterResult:
    kept: list[Track]  # persistent tracks, persistence_score set, ghosts included
    decisions: list[PersistenceDecision]  # one per input track, duplicates left out
    duplicate_ids: list[int] = field(default_factory=list)  # ids named twice in the input: left out


class PersistenceFilter:
    """Runs a :class:`PersistenceModel` over every track each frame.

    A track once judged persistent stays kept for the rest of its life (sticky): object
    permanence means its ghost must not be dropped because it stopped producing evidence.
    Tentative tracks are scored but never passed on.

    A track missing from a frame's list keeps its history (and its sticky keep) for
    ``forget_after`` frames, and so does a LOST track: the world model holds some ghosts
    unpublished (too little evidence to claim a hidden object, ``ghost_min_hits``) and publishes
    them again when their object is seen, and gives a LOST track's identity back when its object
    returns (the gallery, ``gallery_retention_s``); a message may be lost. Without this such a
    track came back with an empty history and had to be decided again from scratch (the training
    data, one history per track id, never saw that).

    camera: ``"left"`` or ``"right"``, the view whose tracks this filter sees (the sign of the
    disparity to the other view's tracks, given to :meth:`step`); stereo: how a partner there is
    recognised (:class:`features.StereoConfig`).
    """

    def __init__(self, model: PersistenceModel, history_len: int = 30, sticky: bool = True,
                 camera: str = "left", stereo: StereoConfig | None = None, forget_after: int = 900) -> None:
        if history_len < 1:
            raise ValueError(f"history_len must be >= 1, got {history_len}")
        if forget_after < 0:
            raise ValueError(f"forget_after must be >= 0, got {forget_after}")
        if camera not in ("left", "right"):
            raise ValueError(f"camera must be 'left' or 'right', got {camera!r}")
        self.model = model
        self.camera = camera
        self.stereo = stereo or StereoConfig()
        self.history_len = history_len
        self.sticky = sticky
        self.forget_after = forget_after
        self._histories: dict[int, TrackHistory] = {}
        self._kept_ids: set[int] = set()
        self._absent: dict[int, int] = {}  # track id -> consecutive frames missing from the input

    def step(self, tracks: list[Track], other_view_tracks: list[Track] | None = None) -> FilterResult:
        """Decide on this frame's tracks. Tracks whose id occurs twice in ``tracks`` are left out
        (their histories would merge two objects) and reported in ``duplicate_ids``.

        other_view_tracks: the other camera's tracks of the same stamp (stereo consistency
        evidence); None when not available (every track then has no partner this frame)."""
        frame = self._prepare(tracks, other_view_tracks)
        return self._finish(frame, self.model.decide(frame.histories) if frame.histories else [])

    def _prepare(self, tracks: list[Track], other_view_tracks: list[Track] | None) -> _Frame:
        """Everything of :meth:`step` before the model: duplicates out, absences counted, this
        frame's feature row appended to each track's history."""
        duplicates = duplicate_track_ids(tracks)
        if duplicates:
            tracks = [t for t in tracks if t.track_id not in duplicates]
        present = {t.track_id for t in tracks}
        for tid in present:
            self._absent.pop(tid, None)
        for missing in [i for i in self._histories if i not in present]:
            self._absent[missing] = self._absent.get(missing, 0) + 1
            if self._absent[missing] > self.forget_after:
                self._forget(missing)
        histories = [self._histories.get(t.track_id) for t in tracks]
        context = context_rows(tracks, other_view_tracks, 1.0 if self.camera == "left" else -1.0, self.stereo,
                               [h.last_embedding if h is not None else None for h in histories])
        rows = frame_feature_rows(tracks, context)
        for i, t in enumerate(tracks):
            if histories[i] is None:
                histories[i] = self._histories[t.track_id] = TrackHistory(t.track_id, self.history_len)
            histories[i].append_row(rows[i], t)
        return _Frame(tracks, histories, duplicates)

    def _finish(self, frame: _Frame, decisions: list[PersistenceDecision]) -> FilterResult:
        """Everything of :meth:`step` after the model: TENTATIVE tracks never kept, sticky keeps."""
        kept = []
        for t, d in zip(frame.tracks, decisions):
            if t.state == TrackState.TENTATIVE:  # scored (its history starts here), not the filter's to keep yet
                d.keep = False
                d.reason += " tentative"
            elif self.sticky and (d.keep or t.track_id in self._kept_ids):
                if not d.keep:
                    d.reason += " sticky"
                self._kept_ids.add(t.track_id)
                d.keep = True
            if d.keep:
                kept.append(replace(t, persistence_score=d.score))
        return FilterResult(kept=kept, decisions=decisions, duplicate_ids=frame.duplicates)

    def _forget(self, track_id: int) -> None:
        self._histories.pop(track_id, None)
        self._kept_ids.discard(track_id)
        self._absent.pop(track_id, None)

    def reset(self) -> None:
        self._histories.clear()
        self._kept_ids.clear()
        self._absent.clear()


def step_stereo(left: PersistenceFilter, right: PersistenceFilter, left_tracks: list[Track],
                right_tracks: list[Track]) -> tuple[FilterResult, FilterResult]:
    """Both views' filters on one stereo pair (each view the other's stereo evidence), as
    ``left.step(left_tracks, right_tracks)`` and ``right.step(right_tracks, left_tracks)`` decide
    them, with one call of the model for every track of the frame when the two filters share it
    (one padded batch for the transformer: the per-call cost of a forward pass is paid once)."""
    if left.model is not right.model:
        return left.step(left_tracks, right_tracks), right.step(right_tracks, left_tracks)
    lf, rf = left._prepare(left_tracks, right_tracks), right._prepare(right_tracks, left_tracks)
    histories = lf.histories + rf.histories
    decisions = left.model.decide(histories) if histories else []
    n = len(lf.histories)
    return left._finish(lf, decisions[:n]), right._finish(rf, decisions[n:])
