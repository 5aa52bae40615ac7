"""Choosing the peers' thresholds: a grid search on tuning sequences (seeds 0–999 only).

A peer crippled by a default that does not suit the data is not a fair comparison, so each peer of
:mod:`~object_permanence.core.eval.peers` gets the setting of its grid (:func:`peers.peer_grid`)
that maximises :func:`tracking_eval.identity_objective` — mean (HOTA + IDF1) / 2 — over the
tuning sequences. The library defaults are a candidate too (an empty parameter set), so a peer
never gets a setting worse than its defaults. Our world model is not
tuned here: it runs with its shipped configuration.
"""
from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from object_permanence.core.eval.peers import make_tracker, peer_grid
from object_permanence.core.eval.sequences import EvalSequence
from object_permanence.core.eval.tracking_eval import identity_objective, run_tracker, score_run
from object_permanence.core.world_model import WorldModelConfig

#: The tuning sequences, set before the worker processes fork (they inherit it: nothing is pickled).
_SEQUENCES: list[EvalSequence] = []


@dataclass
class PeerChoice:
    """The outcome for one peer: the chosen ``params`` (empty: the library defaults), their
    ``objective`` and the objective of the library defaults (``default_objective``), both in [0, 1]."""

    params: dict[str, Any]
    objective: float
    default_objective: float


def _objective(job: tuple[str, dict[str, Any]]) -> tuple[str, dict[str, Any], float]:
    """The objective of one peer setting over the tuning sequences."""
    peer, params = job
    scores = []
    for seq in _SEQUENCES:
        tracks = run_tracker(seq, lambda: make_tracker(peer, WorldModelConfig(), {peer: params}, seq.fps))
        scores.append(score_run(seq, peer, tracks, identity_only=True))
    return peer, params, identity_objective(scores)


def _before(a: dict[str, Any], b: dict[str, Any] | None) -> bool:
    """Tie-break between equal objectives, independent of the order results arrive in (the
    defaults, an empty set, first)."""
    return b is None or sorted(a.items()) < sorted(b.items())


def tune_peers(sequences: Sequence[EvalSequence], peers: Sequence[str], workers: int = 1,
               on_setting: Callable[[], None] | None = None) -> dict[str, PeerChoice]:
    """Grid search per peer over ``sequences`` in ``workers`` processes (forked); ``on_setting``
    is called after each setting is scored (progress). Returns ``{peer: PeerChoice}``.

    Raises:
        ValueError: no sequences, ``workers`` < 1, or an unknown peer.
    """
    if not sequences:
        raise ValueError("tune_peers needs at least one sequence")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers!r}")
    jobs = [(peer, params) for peer in peers for params in [{}, *peer_grid(peer)]]
    best: dict[str, tuple[dict[str, Any] | None, float]] = {p: (None, -1.0) for p in peers}
    defaults: dict[str, float] = {}
    _SEQUENCES[:] = sequences
    pool = multiprocessing.get_context("fork").Pool(workers) if workers > 1 else None
    try:
        for peer, params, value in (pool.imap_unordered(_objective, jobs) if pool else map(_objective, jobs)):
            if not params:
                defaults[peer] = value
            if value > best[peer][1] or (value == best[peer][1] and _before(params, best[peer][0])):
                best[peer] = (params, value)
            if on_setting is not None:
                on_setting()
    finally:
        _SEQUENCES.clear()
        if pool is not None:
            pool.close()
            pool.join()
    return {p: PeerChoice(dict(best[p][0] or {}), best[p][1], defaults[p]) for p in peers}
