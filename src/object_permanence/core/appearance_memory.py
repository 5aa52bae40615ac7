"""Per-track appearance memory for re-identification, stacked for all tracks.

Three memories, chosen by name (:data:`MEMORY_KINDS`), behind one class so the world model, its
gallery of LOST tracks and the ablation use the same code:

* ``ema``: one embedding per track, ``e = m e_old + (1 - m) e_new`` renormalised (StrongSORT,
  BoT-SORT; ``m = 0.9``). Similarity: the cosine with that mean.
* ``bank``: the last ``bank_size`` (100) embeddings, FIFO (DeepSORT's ``nn_budget``). Similarity:
  the largest cosine over the bank (DeepSORT's smallest cosine distance), in every stage.
* ``dual`` (after VLM²'s dual memory): a *working* memory of the last ``working_size`` (8)
  embeddings, FIFO, and an *episodic* memory of up to ``episodic_size`` (32) kept diverse. Each
  time the working memory has been filled anew (every ``working_size`` embeddings) its mean is
  consolidated into the episodic memory: added while there is room, else replacing the stored entry
  most similar to it (so the stored looks stay spread over what the track has shown: front, side,
  partly hidden). Consolidating means, not every frame, keeps the per-frame cost low and the
  entries free of single-frame noise.
  Short-term similarity (frame-to-frame association) is the cosine with the working mean; the
  long-term similarity (re-identification of older ghosts and LOST tracks) fuses both with a fixed
  gate, ``max(cos(working mean, d), max_e cos(episodic_e, d))``: either the current look or a
  remembered one may vouch for the detection.

All memories of N tracks are arrays: ``slots`` (N, S, D) float32 unit vectors (zeros where not
``valid``: a slot is written and marked valid together, and rows start zeroed), ``valid`` (N, S),
a FIFO write position ``head`` (N,), the running sum of the FIFO entries ``fifo_sum`` (N, D), and
the ``summary`` (N, D) each track publishes (the EMA, the normalised working mean, or the
normalised bank mean). Any embedding dimension D works; a
zero or missing embedding leaves a track's memory as it is. Nothing loops over tracks in Python.
"""
from __future__ import annotations

import numpy as np

from object_permanence.core.row_selection import every_row

#: The memory kinds, as the ``appearance_memory`` config field names them.
MEMORY_KINDS = ("ema", "bank", "dual")


def normalise_rows(e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``e`` (K, D) divided by their L2 norm, and a (K,) mask of the rows whose norm is
    positive and finite (the others are set to zero)."""
    e = np.asarray(e, dtype=np.float32)
    norm = np.sqrt(np.einsum("kd,kd->k", e, e))  # |e|
    ok = (norm > 0) & np.isfinite(norm)
    if ok.all():  # the usual case: no row to mask
        return e / norm[:, None], ok  # e / |e|
    out = e / np.where(ok, norm, 1.0)[:, None]
    out[~ok] = 0.0
    return out, ok


class AppearanceMemory:
    """Appearance memories of N tracks (row i: track i), stepped together.

    Args:
        kind: one of :data:`MEMORY_KINDS`.
        momentum: weight of the old value in the ``ema`` memory, in [0, 1).
        working_size: FIFO length of the ``dual`` working memory (>= 1).
        episodic_size: capacity of the ``dual`` episodic memory (>= 1).
        bank_size: FIFO length of the ``bank`` memory (>= 1).

    Raises:
        ValueError: naming the argument and its value.
    """

    def __init__(self, kind: str = "dual", momentum: float = 0.9, working_size: int = 8,
                 episodic_size: int = 32, bank_size: int = 100) -> None:
        if kind not in MEMORY_KINDS:
            raise ValueError(f"kind must be one of {MEMORY_KINDS}, got {kind!r}")
        if not (isinstance(momentum, (int, float)) and 0.0 <= momentum < 1.0):
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        for name, value in (("working_size", working_size), ("episodic_size", episodic_size),
                            ("bank_size", bank_size)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        self.kind = kind
        self.momentum = float(momentum)
        self.working_size = int(working_size)
        self.episodic_size = int(episodic_size)
        self.bank_size = int(bank_size)
        #: FIFO slots: [0, fifo) (the working memory or the bank); episodic slots after them.
        self.fifo = {"ema": 0, "bank": self.bank_size, "dual": self.working_size}[kind]
        self.n_slots = self.fifo + (self.episodic_size if kind == "dual" else 0)
        self.dim = 0
        self.slots = np.zeros((0, self.n_slots, 0), np.float32)
        self.valid = np.zeros((0, self.n_slots), bool)
        self.head = np.zeros(0, np.int64)
        self.fifo_sum = np.zeros((0, 0), np.float32)
        self.summary = np.zeros((0, 0), np.float32)
        self.has = np.zeros(0, bool)

    #: The per-row arrays, moved together by select, take, extend, put and append.
    _FIELDS = ("slots", "valid", "head", "fifo_sum", "summary", "has")

    def __len__(self) -> int:
        return self.has.shape[0]

    def empty_like(self) -> AppearanceMemory:
        """A memory of the same kind, sizes and dimension, with no rows."""
        out = AppearanceMemory(self.kind, self.momentum, self.working_size, self.episodic_size, self.bank_size)
        out.set_dim(self.dim)
        return out

    def set_dim(self, dim: int) -> None:
        """Give every array ``dim`` embedding columns (when the first embedding's length is known);
        the existing rows are cleared if the dimension changes."""
        if dim == self.dim:
            return
        n = len(self)
        self.dim = int(dim)
        self.slots = np.zeros((n, self.n_slots, self.dim), np.float32)
        self.valid = np.zeros((n, self.n_slots), bool)
        self.head = np.zeros(n, np.int64)
        self.fifo_sum = np.zeros((n, self.dim), np.float32)
        self.summary = np.zeros((n, self.dim), np.float32)
        self.has = np.zeros(n, bool)

    def select(self, rows: np.ndarray) -> None:
        """Keep only ``rows`` (int (K,)), in that order (a no-op for all rows in order)."""
        rows = np.asarray(rows, dtype=np.intp)
        if rows.size == len(self) and np.array_equal(rows, np.arange(rows.size)):
            return
        for name in self._FIELDS:
            setattr(self, name, getattr(self, name)[rows])

    def take(self, rows: np.ndarray) -> AppearanceMemory:
        """A new memory holding copies of ``rows`` (int (K,)), in that order."""
        out = self.empty_like()
        rows = np.asarray(rows, dtype=np.intp)
        for name in self._FIELDS:
            setattr(out, name, getattr(self, name)[rows])
        return out

    def extend(self, other: AppearanceMemory) -> None:
        """Append the rows of ``other`` (same kind, sizes and dimension).

        Raises:
            ValueError: ``other`` is of another kind, size or dimension.
        """
        if (other.kind, other.n_slots, other.dim) != (self.kind, self.n_slots, self.dim):
            raise ValueError(f"other must be a {self.kind} memory of {self.n_slots} slots and dimension "
                             f"{self.dim}, got {other.kind}, {other.n_slots}, {other.dim}")
        if len(other) == 0:
            return
        for name in self._FIELDS:
            setattr(self, name, np.concatenate([getattr(self, name), getattr(other, name)]))

    def put(self, rows: np.ndarray, other: AppearanceMemory, other_rows: np.ndarray) -> None:
        """Overwrite ``rows`` (K,) with copies of ``other``'s ``other_rows`` (K,) (same kind and
        dimension): a re-identified track takes back the memory it had."""
        for name in self._FIELDS:
            getattr(self, name)[rows] = getattr(other, name)[other_rows]

    def append(self, embeddings: np.ndarray, has: np.ndarray) -> None:
        """Add K rows started with ``embeddings`` (K, D) raw (normalised here) where ``has`` (K,);
        a row without one (or with a zero one) starts empty."""
        k = has.shape[0]
        if k == 0:
            return
        for name in self._FIELDS:
            now = getattr(self, name)
            setattr(self, name, np.concatenate([now, np.zeros((k, *now.shape[1:]), now.dtype)]))
        if self.dim:
            self.update(np.arange(len(self) - k, len(self)), embeddings, has)

    def update(self, rows: np.ndarray, embeddings: np.ndarray, has: np.ndarray) -> None:
        """Remember the embeddings (K, D) of the detections matched to ``rows`` (K,, distinct);
        ``has`` (K,) False (or a zero embedding) leaves that row as it is."""
        rows = np.asarray(rows, dtype=np.intp)
        if rows.size == 0 or self.dim == 0:
            return
        self.update_unit(rows, *normalise_rows(embeddings), has)

    def update_unit(self, rows: np.ndarray, e: np.ndarray, ok: np.ndarray, has: np.ndarray) -> None:
        """:meth:`update` with the embeddings already through :func:`normalise_rows` (``e`` (K, D),
        ``ok`` (K,)), e.g. rows of the normalised detections of a frame (rows are normalised each
        on its own, so the numbers are the same)."""
        rows = np.asarray(rows, dtype=np.intp)
        if rows.size == 0 or self.dim == 0:
            return
        use = np.asarray(has, bool) & ok
        if not use.all():
            rows, e = rows[use], e[use]
            if rows.size == 0:
                return
        if self.kind == "ema":
            old = self.has[rows][:, None]
            m = self.momentum
            blended = np.where(old, m * self.summary[rows] + (1.0 - m) * e, e)  # e = m e_old + (1-m) e_new
            self.summary[rows], _ = normalise_rows(blended)
            self.has[rows] = True
            return
        # FIFO part (working memory or bank): write at head, advance it; keep the running sum
        every = every_row(rows, len(self))  # the usual frame: the per-row arrays whole, no scatters
        slot = self.head[rows]
        evicted = self.slots[rows, slot]  # zeros where the slot was never written (not valid)
        total = self.fifo_sum if every else self.fifo_sum[rows]  # the sum over the FIFO entries, in place
        total += e
        total -= evicted
        self.slots[rows, slot] = e
        self.valid[rows, slot] = True
        head = (slot + 1) % self.fifo
        summary, _ = normalise_rows(total)  # the normalised mean of the FIFO entries
        if every:
            self.head, self.summary = head, summary
            self.has[:] = True
        else:
            self.fifo_sum[rows], self.head[rows], self.summary[rows] = total, head, summary
            self.has[rows] = True
        if self.kind == "dual" and (head == 0).any():  # the working memory filled anew: consolidate
            full = rows[head == 0]
            self._remember_episode(full, self.summary[full])

    def _remember_episode(self, rows: np.ndarray, e: np.ndarray) -> None:
        """Episodic write of ``e`` (K, D) unit vectors: the first free slot while not full; when
        full, the entry most similar to the new one is replaced (keeps the memory diverse)."""
        ep = slice(self.fifo, self.n_slots)
        valid = self.valid[rows, ep]  # (K, E)
        count = valid.sum(axis=1)
        sim = np.einsum("ked,kd->ke", self.slots[rows, ep], e)  # cos(episodic_e, new)
        most_similar = np.argmax(np.where(valid, sim, -np.inf), axis=1)
        free = np.argmin(valid, axis=1)  # first False
        target = np.where(count < self.episodic_size, free, most_similar) + self.fifo
        self.slots[rows, target] = e
        self.valid[rows, target] = True

    def cost_pairs(self, detections: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """(P,) short-term cosine distance of track rows[p] to detection cols[p] (NaN: no memory /
        zero embedding); the pairs of ``cost(detections)``."""
        return self.cost_pairs_unit(*normalise_rows(detections), rows, cols)

    def cost_pairs_unit(self, unit: np.ndarray, unit_ok: np.ndarray, rows: np.ndarray,
                        cols: np.ndarray) -> np.ndarray:
        """:meth:`cost_pairs` with the detections already through :func:`normalise_rows` (``unit``
        (M, D), ``unit_ok`` (M,)): a frame's detections are normalised once for every use."""
        cols = np.asarray(cols, dtype=np.intp)
        d, d_ok = unit.take(cols, axis=0), unit_ok[cols]
        rows = np.asarray(rows, dtype=np.intp)
        if rows.size == 0 or self.dim == 0:
            return np.full(rows.size, np.nan)
        if self.kind == "bank":
            slots, valid = self.slots[rows], self.valid[rows]
            sim = np.where(valid, np.einsum("psd,pd->ps", slots, d), -np.inf).max(axis=1)
        else:
            sim = np.einsum("pd,pd->p", self.summary.take(rows, axis=0), d)  # cos(summary, d)
        cost = 1.0 - np.minimum(np.maximum(sim.astype(np.float64), -1.0), 1.0)  # 1 - cos clipped to [-1, 1]
        cost[~self.has[rows] | ~d_ok] = np.nan
        return cost

    def cost(self, detections: np.ndarray, rows: np.ndarray | None = None, long_term: bool = False) -> np.ndarray:
        """Cosine distance ``1 - similarity`` of tracks ``rows`` (default all) to ``detections``
        (M, D) raw embeddings.

        Short-term (``long_term=False``): ema and dual use the summary (EMA / working mean), bank
        its best entry. Long-term: dual fuses working mean and episodic best (module docstring).

        Returns:
            (R, M) in [0, 2]; NaN where a track has no memory or a detection a zero embedding.
        """
        d, d_ok = normalise_rows(detections)
        sel = slice(None) if rows is None else np.asarray(rows, dtype=np.intp)
        has = self.has[sel]
        r = has.shape[0]
        if r == 0 or d.shape[0] == 0 or self.dim == 0:
            return np.full((r, d.shape[0]), np.nan)
        if self.kind == "bank" or (self.kind == "dual" and long_term):
            first = 0 if self.kind == "bank" else self.fifo
            slots, valid = self.slots[sel, first:], self.valid[sel, first:]
            sim = np.einsum("rsd,md->rms", slots, d)  # cos(entry_s, d)
            sim = np.where(valid[:, None, :], sim, -np.inf).max(axis=2)
            if self.kind == "dual":
                sim = np.maximum(sim, np.einsum("rd,md->rm", self.summary[sel], d))  # fused: max of the two
        else:
            sim = np.einsum("rd,md->rm", self.summary[sel], d)  # cos(summary, d)
        cost = 1.0 - np.clip(sim.astype(np.float64), -1.0, 1.0)
        cost[~has, :] = np.nan
        cost[:, ~d_ok] = np.nan
        return cost
