"""Tests of the stacked appearance memories (ema, bank, dual): updates, similarity, row handling."""
from __future__ import annotations

import numpy as np
import pytest

from object_permanence.core.appearance_memory import MEMORY_KINDS, AppearanceMemory, normalise_rows


def unit_rows(rng: np.random.Generator, k: int, dim: int) -> np.ndarray:
    v = rng.random((k, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def memory(kind: str, dim: int = 16, **kw) -> AppearanceMemory:
    m = AppearanceMemory(kind, **kw)
    m.set_dim(dim)
    return m


@pytest.mark.parametrize("kind", MEMORY_KINDS)
@pytest.mark.parametrize("dim", [3, 128, 512])
def test_any_dimension_and_shapes(kind: str, dim: int) -> None:
    rng = np.random.default_rng(0)
    m = memory(kind, dim)
    m.append(unit_rows(rng, 4, dim), np.array([True, True, False, True]))
    assert len(m) == 4 and m.summary.shape == (4, dim) and m.has.tolist() == [True, True, False, True]
    cost = m.cost(unit_rows(rng, 5, dim))
    assert cost.shape == (4, 5)
    assert np.all(np.isnan(cost[2])) and np.all((cost[[0, 1, 3]] >= 0) & (cost[[0, 1, 3]] <= 2))
    np.testing.assert_allclose(np.linalg.norm(m.summary[m.has], axis=1), 1.0, rtol=1e-6)


@pytest.mark.parametrize("kind", MEMORY_KINDS)
def test_own_embedding_costs_zero_and_zero_embeddings_are_ignored(kind: str) -> None:
    rng = np.random.default_rng(1)
    e = unit_rows(rng, 3, 8)
    m = memory(kind, 8)
    m.append(3.0 * e, np.ones(3, bool))  # scale does not matter
    np.testing.assert_allclose(np.diag(m.cost(e)), 0.0, atol=1e-6)
    before = m.summary.copy()
    m.update(np.array([0, 1]), np.zeros((2, 8)), np.ones(2, bool))  # zero embeddings: nothing changes
    np.testing.assert_array_equal(m.summary, before)
    assert np.all(np.isnan(m.cost(np.zeros((1, 8)))))


def test_ema_follows_its_formula() -> None:
    rng = np.random.default_rng(2)
    e1, e2 = unit_rows(rng, 2, 8)
    m = memory("ema", 8, momentum=0.9)
    m.append(e1[None], np.ones(1, bool))
    m.update(np.array([0]), e2[None], np.ones(1, bool))
    expected = 0.9 * e1 + 0.1 * e2
    np.testing.assert_allclose(m.summary[0], expected / np.linalg.norm(expected), rtol=1e-6)


def test_dual_working_memory_is_the_mean_of_the_last_entries() -> None:
    rng = np.random.default_rng(3)
    seq = unit_rows(rng, 13, 16)
    m = memory("dual", 16, working_size=8)
    m.append(seq[:1], np.ones(1, bool))
    for e in seq[1:]:
        m.update(np.array([0]), e[None], np.ones(1, bool))
    last = seq[-8:].mean(axis=0)
    np.testing.assert_allclose(m.summary[0], last / np.linalg.norm(last), rtol=1e-5)
    np.testing.assert_allclose(m.cost(seq[-1:])[0, 0], 1.0 - m.summary[0] @ seq[-1], rtol=1e-5)


def test_dual_episodic_memory_replaces_the_most_similar_entry_when_full() -> None:
    dim, size = 8, 4
    basis = np.eye(dim, dtype=np.float32)
    m = memory("dual", dim, working_size=1, episodic_size=size)  # every embedding is consolidated
    m.append(basis[:1], np.ones(1, bool))
    for e in basis[1:size]:
        m.update(np.array([0]), e[None], np.ones(1, bool))
    episodic = slice(m.fifo, m.n_slots)
    np.testing.assert_array_equal(m.slots[0, episodic], basis[:size])  # filled in order while not full
    near_2 = (basis[2] + 0.1 * basis[7]) / np.linalg.norm(basis[2] + 0.1 * basis[7])
    m.update(np.array([0]), near_2[None], np.ones(1, bool))
    kept = m.slots[0, episodic]
    np.testing.assert_array_equal(kept[[0, 1, 3]], basis[[0, 1, 3]])  # the diverse entries stay
    np.testing.assert_allclose(kept[2], near_2, rtol=1e-6)
    assert m.valid[0].all()


def test_dual_long_term_similarity_remembers_an_old_look() -> None:
    """Seen from the front (a) for 8 frames, then long from the side (b): the working memory forgets
    a, the episodic memory keeps it (the consolidated working mean), so the fused long-term cost of
    a is small, the short-term one large."""
    dim = 8
    a, b = np.eye(dim, dtype=np.float32)[:2]
    m = memory("dual", dim, working_size=8)
    m.append(a[None], np.ones(1, bool))
    for _ in range(7):
        m.update(np.array([0]), a[None], np.ones(1, bool))
    assert m.valid[0, m.fifo:].sum() == 1  # consolidated once the working memory was full
    for _ in range(20):
        m.update(np.array([0]), b[None], np.ones(1, bool))
    short, long = m.cost(a[None])[0, 0], m.cost(a[None], long_term=True)[0, 0]
    assert short > 0.9 and long == pytest.approx(0.0, abs=1e-6)
    assert m.cost(b[None], long_term=True)[0, 0] <= m.cost(b[None])[0, 0] + 1e-9


def test_bank_is_a_fifo_of_its_size_and_takes_the_best_entry() -> None:
    dim = 6
    basis = np.eye(dim, dtype=np.float32)
    m = memory("bank", dim, bank_size=3)
    m.append(basis[:1], np.ones(1, bool))
    for e in basis[1:5]:
        m.update(np.array([0]), e[None], np.ones(1, bool))
    # entries 2, 3, 4 remain: cost 0 for each of them, 1 for the forgotten 0 and 1
    np.testing.assert_allclose(m.cost(basis[:5])[0], [1.0, 1.0, 0.0, 0.0, 0.0], atol=1e-6)


@pytest.mark.parametrize("kind", MEMORY_KINDS)
def test_batched_update_equals_row_by_row(kind: str) -> None:
    rng = np.random.default_rng(4)
    n, dim, steps = 5, 12, 45
    a, b = memory(kind, dim, working_size=2, episodic_size=6), memory(kind, dim, working_size=2, episodic_size=6)
    first = unit_rows(rng, n, dim)
    a.append(first, np.ones(n, bool))
    b.append(first, np.ones(n, bool))
    for _ in range(steps):
        rows = rng.choice(n, size=3, replace=False)
        e = unit_rows(rng, 3, dim)
        a.update(rows, e, np.ones(3, bool))
        for r, x in zip(rows, e):
            b.update(np.array([r]), x[None], np.ones(1, bool))
    np.testing.assert_allclose(a.slots, b.slots)
    np.testing.assert_array_equal(a.valid, b.valid)
    np.testing.assert_allclose(a.summary, b.summary, rtol=1e-6)


@pytest.mark.parametrize("kind", MEMORY_KINDS)
def test_rows_select_take_extend_put(kind: str) -> None:
    rng = np.random.default_rng(5)
    m = memory(kind, 8)
    e = unit_rows(rng, 4, 8)
    m.append(e, np.ones(4, bool))
    part = m.take(np.array([3, 1]))
    np.testing.assert_array_equal(part.summary, m.summary[[3, 1]])
    m.select(np.array([0, 2]))
    assert len(m) == 2
    np.testing.assert_allclose(m.summary, normalise_rows(e[[0, 2]])[0], rtol=1e-6)
    m.extend(part)
    assert len(m) == 4
    np.testing.assert_array_equal(m.summary[2:], part.summary)
    m.put(np.array([0]), part, np.array([1]))
    np.testing.assert_array_equal(m.summary[0], part.summary[1])
    with pytest.raises(ValueError, match="other"):
        m.extend(memory("ema" if kind != "ema" else "dual", 8))


def test_set_dim_clears_and_empty_inputs() -> None:
    m = AppearanceMemory("dual")
    m.append(np.zeros((2, 0), np.float32), np.zeros(2, bool))  # no dimension yet: rows without memory
    assert len(m) == 2 and not m.has.any()
    m.set_dim(4)
    assert m.summary.shape == (2, 4) and m.cost(np.zeros((0, 4))).shape == (2, 0)
    assert m.cost(np.ones((3, 4)), rows=np.zeros(0, np.intp)).shape == (0, 3)


@pytest.mark.parametrize("kwargs, name", [
    ({"kind": "lstm"}, "kind"), ({"momentum": 1.0}, "momentum"), ({"momentum": -0.1}, "momentum"),
    ({"working_size": 0}, "working_size"), ({"episodic_size": 2.5}, "episodic_size"),
    ({"bank_size": True}, "bank_size"),
])
def test_constructor_validates(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        AppearanceMemory(**kwargs)


@pytest.mark.parametrize("kind", MEMORY_KINDS)
def test_normalised_entry_points_equal_the_raw_ones(kind: str) -> None:
    """``update_unit`` / ``cost_pairs_unit`` on a frame normalised once give the very numbers of
    ``update`` / ``cost_pairs`` on the raw embeddings (rows are normalised each on its own)."""
    rng = np.random.default_rng(9)
    raw = 5.0 * rng.random((12, 16)).astype(np.float32)
    raw[3] = 0.0  # no appearance
    a = memory(kind, 16, working_size=3, episodic_size=2, bank_size=4)
    a.append(unit_rows(rng, 6, 16), np.ones(6, bool))
    b = a.take(np.arange(6))
    unit, ok = normalise_rows(raw)
    for _ in range(7):  # enough to fill and consolidate the working memory
        rows, cols = rng.permutation(6)[:5], rng.permutation(12)[:5]
        has = rng.random(5) > 0.2
        a.update(rows, raw[cols], has)
        b.update_unit(rows, unit[cols], ok[cols], has)
        for name in AppearanceMemory._FIELDS:
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        pr, pc = np.repeat(np.arange(6), 12), np.tile(np.arange(12), 6)
        np.testing.assert_array_equal(a.cost_pairs(raw, pr, pc), b.cost_pairs_unit(unit, ok, pr, pc))
        np.testing.assert_allclose(a.cost_pairs(raw, pr, pc).reshape(6, 12), a.cost(raw), rtol=1e-6, atol=1e-6)
