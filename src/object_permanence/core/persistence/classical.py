"""The classical learned model: gradient-boosted trees (scikit-learn's histogram gradient
boosting) on fixed-size summaries of the same per-frame history rows the transformer reads.

Summary of a history prefix (frames 0..t): the newest row, the mean of every column over the
prefix, and the prefix length — 2 F + 1 numbers. Needs scikit-learn (import where installed).
:func:`fit_persistence_boosting` fits it and picks its keep threshold as the transformer's is
picked (training windows, best per-track F1 on the validation tracks); :func:`save_boosting` /
:func:`load_boosting` ship it (a joblib file: load only files you trust, as with any pickle).
"""
from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from object_permanence.core.persistence.history import FEATURES, TrackHistory, pad_histories
from object_permanence.core.types import PersistenceDecision

if TYPE_CHECKING:  # the data tools' types; the node loads a model without them
    from object_permanence.core.persistence.dataset import TrackSequences

#: Where the shipped model lives, relative to the package's share directory or the source tree.
BOOSTING_NAME = "persistence_boosting.joblib"
#: Stride of the sliding training windows (frames), as the transformer's default.
BOOSTING_STRIDE = 8


def sklearn_available() -> bool:
    """Whether scikit-learn can be imported here."""
    return importlib.util.find_spec("sklearn") is not None


def prefix_summaries(x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """(B, T, 2F + 1) summary of every prefix of (B, T, F) left-aligned histories: newest row,
    running mean (mean_t = cumsum_t / (t + 1)), prefix length (t + 1). Padding prefixes are garbage."""
    steps = np.arange(1, x.shape[1] + 1, dtype=np.float32)[None, :, None]
    mean = np.cumsum(x, axis=1) / steps                                   # mean over frames 0..t
    n = np.broadcast_to(steps, (x.shape[0], x.shape[1], 1))
    return np.concatenate([x, mean, n], axis=2).astype(np.float32)


@dataclass
class BoostingTraining:
    """max_iter, learning_rate, max_leaf_nodes: of scikit-learn's HistGradientBoostingClassifier;
    seed: its random_state."""

    max_iter: int = 200
    learning_rate: float = 0.1
    max_leaf_nodes: int = 31
    seed: int = 0


def fit_boosting(x: np.ndarray, lengths: np.ndarray, loss_mask: np.ndarray, labels: np.ndarray,
                 config: BoostingTraining | None = None):
    """A class-balanced HistGradientBoostingClassifier on the summaries of the scored prefixes of
    (N, W, F) windows (``loss_mask`` (N, W) as :func:`training.make_windows` gives it)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    config = config or BoostingTraining()
    s = prefix_summaries(x, lengths)
    idx = np.nonzero(loss_mask)
    y = labels[idx[0]]
    clf = HistGradientBoostingClassifier(max_iter=config.max_iter, learning_rate=config.learning_rate,
                                         max_leaf_nodes=config.max_leaf_nodes, random_state=config.seed,
                                         class_weight="balanced", early_stopping=False)
    clf.fit(s[idx], y)
    return clf


def boosting_scores(clf, x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """(N, W) P(real) at every prefix of (N, W, F) windows."""
    s = prefix_summaries(x, lengths)
    return clf.predict_proba(s.reshape(-1, s.shape[2]))[:, 1].reshape(s.shape[:2])


class BoostingPersistence:
    """:class:`base.PersistenceModel` around a fitted classifier: keep once P(real) at the newest
    frame reaches ``keep_threshold``. Attention: uniform (trees expose no per-frame weights)."""

    name = "gradient_boosting"

    def __init__(self, classifier, keep_threshold: float) -> None:
        if not 0.0 <= keep_threshold <= 1.0:
            raise ValueError(f"keep_threshold must be in [0, 1], got {keep_threshold!r}")
        self.classifier = classifier
        self.keep_threshold = keep_threshold

    def decide(self, histories: Sequence[TrackHistory]) -> list[PersistenceDecision]:
        if not histories:
            return []
        batch, lengths = pad_histories([h.features() for h in histories])
        s = prefix_summaries(batch, lengths)[np.arange(len(histories)), lengths - 1]
        p = self.classifier.predict_proba(s)[:, 1]
        return [PersistenceDecision(track_id=h.track_id, score=float(pi), keep=bool(pi >= self.keep_threshold),
                                    attention=np.full(int(n), 1.0 / int(n), np.float32), frames_observed=int(n),
                                    reason=f"boosting:{pi:.2f}{'>=' if pi >= self.keep_threshold else '<'}"
                                           f"{self.keep_threshold:.2f}")
                for h, pi, n in zip(histories, p, lengths)]


def fit_persistence_boosting(train: TrackSequences, val: TrackSequences, window: int,
                             config: BoostingTraining | None = None) -> tuple[BoostingPersistence, dict]:
    """Boosting fitted on the training windows of ``train`` (newest ``window`` rows, sliding windows
    every :data:`BOOSTING_STRIDE` frames), its keep threshold the best per-track F1 on ``val``
    (sticky keep: a track counts as kept once any frame's score reaches it). Returns the model and
    the validation choice (threshold, precision, recall, f1)."""
    from object_permanence.core.persistence.training import choose_threshold, make_windows, prefix_scores_to_track

    tw, vw = make_windows(train, window, BOOSTING_STRIDE), make_windows(val, window, BOOSTING_STRIDE)
    clf = fit_boosting(tw.x, tw.lengths, tw.loss_mask, tw.labels, config)
    choice = choose_threshold(prefix_scores_to_track(boosting_scores(clf, vw.x, vw.lengths), vw, len(val)), val.labels)
    return BoostingPersistence(clf, choice["threshold"]), choice


def save_boosting(model: BoostingPersistence, path: Path, info: dict | None = None) -> None:
    """Write ``model`` with the feature names it reads (checked on load) and ``info``."""
    import joblib
    import sklearn

    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump({"classifier": model.classifier, "keep_threshold": model.keep_threshold,
                 "features": list(FEATURES), "sklearn": sklearn.__version__, "info": info or {}}, path)


def load_boosting(path: Path) -> BoostingPersistence:
    """Read a model written by :func:`save_boosting`.

    Raises:
        OSError: the file cannot be read; ValueError: not such a model, or one trained on other
            features than :data:`history.FEATURES`.
    """
    import joblib

    if not Path(path).is_file():
        raise OSError(f"{path}: no such file")
    try:
        blob = joblib.load(path)
    except Exception as e:  # noqa: BLE001 (a damaged pickle raises whatever the unpickler met)
        raise ValueError(f"{path}: not a readable joblib file ({type(e).__name__}: {e})") from e
    if not isinstance(blob, dict) or "classifier" not in blob or "keep_threshold" not in blob:
        raise ValueError(f"{path}: not a persistence boosting model (save_boosting's format)")
    if blob.get("features") != list(FEATURES):
        raise ValueError(f"{path}: trained on features {blob.get('features')}, this build reads {list(FEATURES)}")
    return BoostingPersistence(blob["classifier"], float(blob["keep_threshold"]))
