"""Re-identification scores of an embedding on the query/gallery protocol of :func:`dataset.sample_probes`.

Each identity has one query and one gallery sighting; a query is ranked against the gallery
sightings of every identity of its sequence batch by cosine distance
(:func:`~object_permanence.core.association.appearance_cost`). With one true gallery entry the
average precision of a query is 1 / rank, so mAP is the mean reciprocal rank. Ties count against
the query (an embedding that maps everything to one vector scores rank-1 = 0, not 1).
"""
from __future__ import annotations

import numpy as np

from object_permanence.core.association import appearance_cost
from object_permanence.core.reid.dataset import Probes


def _ranks(cost: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """(I,) rank (1 = best) of the true entry (the diagonal) of each row among the allowed columns.

    rank_i = 1 + #{j != i allowed : d_ij <= d_ii}   (ties count against the query)
    """
    d = np.where(allowed, cost, np.inf)
    own = np.diag(d)[:, None]
    ahead = (d <= own) & allowed
    np.fill_diagonal(ahead, False)
    return 1 + ahead.sum(axis=1)


def retrieval_metrics(embeddings: np.ndarray, probes: Probes) -> dict[str, float]:
    """Rank-1, mAP and the look-alike figures of one embedding of the probe rows.

    Args:
        embeddings: (P, D) one vector per probe row (a zero vector: no appearance; its distances
            are undefined and count as the largest, 2).
        probes: the protocol.

    Returns:
        ``rank1``, ``map`` (gallery = the identity's sequence batch); ``rank1_within_sequence``,
        ``map_within_sequence`` (gallery = the identities of the query's own world, what a tracker
        meets); ``rank1_same_camera``, ``rank1_cross_camera``; ``lookalike_to_original`` (share of
        look-alike newcomers whose nearest gallery entry is their original: they would take its
        identity), ``lookalike_closer_to_original`` (share closer to their original's gallery entry
        than to their own); ``same_identity_cost_p50`` / ``_p95`` and
        ``nearest_other_cost_p05`` / ``_p50`` (the cosine distances a re-ID gate must separate:
        own gallery entry vs nearest other identity of the same world); the counts
        ``n_queries``, ``n_lookalikes``, ``n_batches``.

    Raises:
        ValueError: embeddings whose row count is not the probe count.
    """
    embeddings = np.asarray(embeddings)
    if embeddings.ndim != 2 or len(embeddings) != len(probes.world):
        raise ValueError(f"embeddings must be ({len(probes.world)}, D), got {embeddings.shape}")
    q, g = probes.ordered_rows()
    cost = np.nan_to_num(appearance_cost(embeddings[q], embeddings[g]), nan=2.0)  # d_ij = 1 - cos(q_i, g_j)
    same_batch = probes.identity_batch[:, None] == probes.identity_batch[None, :]
    same_world = probes.identity_world[:, None] == probes.identity_world[None, :]
    ranks, ranks_world = _ranks(cost, same_batch), _ranks(cost, same_world)
    cross = probes.cross_camera
    newcomers = np.flatnonzero(probes.identity_original >= 0)
    originals = probes.identity_original[newcomers]
    nearest = np.argmin(np.where(same_batch, cost, np.inf), axis=1)
    own = np.diag(cost)
    others = np.where(same_world & ~np.eye(len(own), dtype=bool), cost, np.inf).min(axis=1)
    others = others[np.isfinite(others)]

    def mean(values: np.ndarray) -> float:
        return float(np.mean(values)) if values.size else float("nan")

    def pct(values: np.ndarray, p: float) -> float:
        return float(np.percentile(values, p)) if values.size else float("nan")

    return {
        "rank1": mean(ranks == 1), "map": mean(1.0 / ranks),
        "rank1_within_sequence": mean(ranks_world == 1), "map_within_sequence": mean(1.0 / ranks_world),
        "rank1_same_camera": mean(ranks[~cross] == 1), "rank1_cross_camera": mean(ranks[cross] == 1),
        "lookalike_to_original": mean(nearest[newcomers] == originals),
        "lookalike_closer_to_original": mean(cost[newcomers, originals] < own[newcomers]),
        "same_identity_cost_p50": pct(own, 50), "same_identity_cost_p95": pct(own, 95),
        "nearest_other_cost_p05": pct(others, 5), "nearest_other_cost_p50": pct(others, 50),
        "n_queries": int(len(q)), "n_lookalikes": int(newcomers.size),
        "n_batches": int(np.unique(probes.identity_batch).size),
    }
