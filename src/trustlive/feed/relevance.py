"""Relevance for the discovery feed: item-item collaborative filtering over implicit interactions
(docs/feed.md, "Relevance"). Pure numpy, vectorised and deterministic.

Why item-item kNN: the catalogue is large (1M items, 100k creators) and the people who look at it
are many more, so whatever is learnt must be per item, not per user, and small: each item keeps
its ``k`` most similar items (cosine similarity with shrinkage) and nothing else, ``n_items * k``
ids and weights (1M items x 100 neighbours: 800 MB as int32 + float32). The table is rebuilt
offline in blocks of items, so memory stays bounded whatever the catalogue; online a user's
candidates are the neighbours of the items in their recent history, one small gather and sum,
with no model evaluation over the whole catalogue. A new interaction helps that user's next page
at once (their history changed) even before the table is rebuilt.

EASE (a closed form over the item-item Gram matrix) is offered as well for small catalogues: it
needs a dense ``n_items x n_items`` inverse, so it is a yardstick for the benchmark, not the
product's ranker.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Cells of the dense per-block accumulator (float64): 2**24 cells = 128 MB.
BLOCK_CELLS = 1 << 24
# Co-occurring pairs expanded per block (each costs ~24 bytes while the block is built).
BLOCK_PAIRS = 1 << 23


@dataclass(frozen=True)
class Interactions:
    """A sparse users x items matrix of interaction weights in both orientations (CSR by user,
    CSC by item), with duplicate (user, item) pairs already folded into one weight."""

    n_users: int
    n_items: int
    user_ptr: np.ndarray  # (n_users + 1,) int64: user u's items are user_items[user_ptr[u]:user_ptr[u+1]]
    user_items: np.ndarray  # int64, sorted within each user
    user_w: np.ndarray  # float64
    item_ptr: np.ndarray  # (n_items + 1,) int64
    item_users: np.ndarray  # int64, sorted within each item
    item_w: np.ndarray  # float64

    def row(self, user: int) -> tuple[np.ndarray, np.ndarray]:
        a, b = self.user_ptr[user], self.user_ptr[user + 1]
        return self.user_items[a:b], self.user_w[a:b]

    def dense(self) -> np.ndarray:
        """The dense matrix (small catalogues only: tests and EASE)."""
        out = np.zeros((self.n_users, self.n_items))
        users = np.repeat(np.arange(self.n_users), np.diff(self.user_ptr))
        out[users, self.user_items] = self.user_w
        return out


def interactions(
    users: np.ndarray, items: np.ndarray, weights: np.ndarray, n_users: int, n_items: int
) -> Interactions:
    """The matrix of events (user, item, weight). Several events on the same (user, item) keep the
    strongest weight, not the sum: a view then a purchase is a purchase, and ten impressions of an
    ignored item are no stronger a signal than one."""
    users = np.asarray(users, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    weights = np.asarray(weights, dtype=np.float64)
    if not (len(users) == len(items) == len(weights)):
        raise ValueError("users, items and weights must have the same length")
    if len(users) and (
        users.min() < 0 or users.max() >= n_users or items.min() < 0 or items.max() >= n_items
    ):
        raise ValueError("user or item index out of range")
    keep = weights > 0
    users, items, weights = users[keep], items[keep], weights[keep]
    key = users * n_items + items
    # Sort by key, then by weight descending: the first of each key is its strongest event.
    order = np.lexsort((-weights, key))
    key, weights = key[order], weights[order]
    first = np.ones(len(key), dtype=bool)
    first[1:] = key[1:] != key[:-1]
    key, weights = key[first], weights[first]
    u, i = key // n_items, key % n_items
    user_ptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(u, minlength=n_users), out=user_ptr[1:])
    by_item = np.lexsort((u, i))
    item_ptr = np.zeros(n_items + 1, dtype=np.int64)
    np.cumsum(np.bincount(i, minlength=n_items), out=item_ptr[1:])
    return Interactions(n_users, n_items, user_ptr, i, weights, item_ptr, u[by_item], weights[by_item])


def recent(inter: Interactions, user_ts: np.ndarray, keep: int) -> Interactions:
    """The same matrix keeping each user's ``keep`` most recent items (``user_ts`` aligned with
    ``inter.user_items``; ties: the higher item id counts as more recent). Bounds the pairs a
    heavy user adds to the neighbour build (quadratic in their history) and follows taste drift."""
    n = np.diff(inter.user_ptr)
    if not len(n) or n.max() <= keep:
        return inter
    users = np.repeat(np.arange(inter.n_users), n)
    order = np.lexsort((-inter.user_items, -np.asarray(user_ts), users))
    rank = np.arange(len(order)) - np.repeat(inter.user_ptr[:-1], n)
    chosen = order[rank < keep]
    return interactions(
        users[chosen], inter.user_items[chosen], inter.user_w[chosen], inter.n_users, inter.n_items
    )


@dataclass(frozen=True)
class Neighbours:
    """Each item's ``k`` most similar items, most similar first (ties: the lower id first); -1
    and 0.0 pad items with fewer than ``k`` neighbours of positive similarity."""

    index: np.ndarray  # (n_items, k) int32
    sim: np.ndarray  # (n_items, k) float32


def _blocks(cost_pairs: np.ndarray, max_rows: int, pairs: int) -> list[tuple[int, int]]:
    """Consecutive item ranges of at most ``max_rows`` items whose expanded pairs stay near the
    ``pairs`` budget (a range ends once it passes a multiple of the budget; an item whose pairs
    alone exceed it gets a range of its own)."""
    n = len(cost_pairs)
    if not n:
        return []
    cum = np.cumsum(cost_pairs)
    cuts = np.searchsorted(cum, np.arange(pairs, cum[-1], max(pairs, 1)), side="right")
    edges = np.unique(np.concatenate([[0, n], cuts, np.arange(0, n, max(max_rows, 1))]))
    edges = edges[(edges >= 0) & (edges <= n)]
    return [(int(x), int(y)) for x, y in zip(edges[:-1], edges[1:], strict=False) if y > x]


def _expand(inter: Interactions, a: int, b: int, row_len: np.ndarray) -> tuple[np.ndarray, ...]:
    """The co-occurrences of items a..b-1: for every user of a block item, that user's whole row.
    Returns (row in the block, other item, x_ui * x_uj) per pair."""
    lo, hi = inter.item_ptr[a], inter.item_ptr[b]
    users = inter.item_users[lo:hi]
    local = np.repeat(np.arange(b - a), np.diff(inter.item_ptr[a : b + 1]))
    lengths = row_len[users]
    total = int(lengths.sum())
    starts = np.repeat(inter.user_ptr[users] - (np.cumsum(lengths) - lengths), lengths)
    pos = starts + np.arange(total)
    return (
        np.repeat(local, lengths),
        inter.user_items[pos],
        np.repeat(inter.item_w[lo:hi], lengths) * inter.user_w[pos],
    )


def item_knn(
    inter: Interactions,
    k: int = 100,
    shrink: float = 10.0,
    *,
    block_cells: int = BLOCK_CELLS,
    block_pairs: int = BLOCK_PAIRS,
    method: str = "auto",
) -> Neighbours:
    """Item-item cosine similarity with shrinkage, top ``k`` per item:

        sim(i, j) = sum_u x_ui x_uj / (|x_i| |x_j| + shrink)

    ``shrink`` pulls the similarity of items seen together by few users toward zero (two items
    each watched by the same 2 people are not "identical"). Built in blocks of items: for each
    block, every user of a block item contributes their whole row (the co-occurrences); the
    block's rows keep their top ``k`` and everything else of the block is dropped. Two ways to
    sum a block, same result: ``dense`` adds into a (block rows x n_items) array (fast while the
    catalogue is small), ``sparse`` sorts the pairs and adds equal ones (its cost follows the
    pairs, not n_items^2: the way for a large catalogue); ``auto`` picks dense when the dense
    arrays of all blocks hold at most 16 cells per pair. Cost: the sum over users of their row
    length squared (bound it with ``recent``); memory: the block budgets."""
    if method not in ("auto", "dense", "sparse"):
        raise ValueError("method is auto, dense or sparse")
    n_items = inter.n_items
    k = int(min(k, max(n_items - 1, 1)))
    index = np.full((n_items, k), -1, dtype=np.int32)
    sims = np.zeros((n_items, k), dtype=np.float32)
    if not len(inter.user_items):
        return Neighbours(index, sims)
    norms = np.sqrt(np.bincount(inter.user_items, weights=inter.user_w**2, minlength=n_items))
    row_len = np.diff(inter.user_ptr)
    # Pairs each item expands to: the row lengths of its users.
    cost = np.bincount(
        np.repeat(np.arange(n_items), np.diff(inter.item_ptr)),
        weights=row_len[inter.item_users],
        minlength=n_items,
    )
    dense = method == "dense" or (method == "auto" and n_items * n_items <= 16 * cost.sum())
    max_rows = max(1, block_cells // n_items) if dense else n_items
    for a, b in _blocks(cost, max_rows, block_pairs):
        if inter.item_ptr[a] == inter.item_ptr[b]:
            continue
        rows, cols, vals = _expand(inter, a, b, row_len)
        if dense:
            _dense_block(a, b, rows, cols, vals, norms, shrink, k, index, sims)
        else:
            _sparse_block(a, rows, cols, vals, norms, shrink, k, index, sims)
    return Neighbours(index, sims)


def _dense_block(
    a: int,
    b: int,
    rows: np.ndarray,
    cols: np.ndarray,
    vals: np.ndarray,
    norms: np.ndarray,
    shrink: float,
    k: int,
    index: np.ndarray,
    sims: np.ndarray,
) -> None:
    n_items = len(norms)
    acc = np.bincount(rows * n_items + cols, weights=vals, minlength=(b - a) * n_items).reshape(
        b - a, n_items
    )
    acc[np.arange(b - a), np.arange(a, b)] = 0.0  # an item is not its own neighbour
    den = np.outer(norms[a:b], norms) + shrink
    np.divide(acc, den, out=acc, where=den > 0)  # an item nobody touched has no neighbours
    top = _top_k(acc, k)
    top_sim = np.take_along_axis(acc, top, axis=1)
    ok = top_sim > 0
    index[a:b] = np.where(ok, top, -1)
    sims[a:b] = np.where(ok, top_sim, 0.0)


def _sparse_block(
    a: int,
    rows: np.ndarray,
    cols: np.ndarray,
    vals: np.ndarray,
    norms: np.ndarray,
    shrink: float,
    k: int,
    index: np.ndarray,
    sims: np.ndarray,
) -> None:
    n_items = len(norms)
    keep = cols != rows + a  # an item is not its own neighbour
    keys = rows[keep] * n_items + cols[keep]
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    if not len(keys):
        return
    first = np.ones(len(keys), dtype=bool)
    first[1:] = keys[1:] != keys[:-1]
    starts = np.flatnonzero(first)
    co = np.add.reduceat(vals[keep][order], starts)
    r, c = keys[starts] // n_items, keys[starts] % n_items
    den = norms[r + a] * norms[c] + shrink
    sim = np.divide(co, den, out=np.zeros(len(co)), where=den > 0)
    ok = sim > 0
    r, c, sim = r[ok], c[ok], sim[ok]
    # Per row: similarity descending, ties by the lower item id; the first k of each row.
    order = np.lexsort((c, -sim, r))
    r, c, sim = r[order], c[order], sim[order]
    head = np.ones(len(r), dtype=bool)
    head[1:] = r[1:] != r[:-1]
    row_start = np.maximum.accumulate(np.where(head, np.arange(len(r)), 0))
    rank = np.arange(len(r)) - row_start
    sel = rank < k
    index[r[sel] + a, rank[sel]] = c[sel]
    sims[r[sel] + a, rank[sel]] = sim[sel]


def _top_k(values: np.ndarray, k: int) -> np.ndarray:
    """Column indices of each row's ``k`` largest values, largest first, ties by the lower index:
    every value above the row's k-th largest, then the lowest-index columns equal to it, so the
    choice among ties never depends on the partition algorithm."""
    rows, n = values.shape
    if k >= n:
        part = np.broadcast_to(np.arange(n), values.shape)
    else:
        kth = -np.partition(-values, k - 1, axis=1)[:, k - 1 : k]
        above = values > kth
        tied = values == kth
        room = k - above.sum(axis=1, keepdims=True)
        chosen = above | (tied & (np.cumsum(tied, axis=1) <= room))
        part = np.nonzero(chosen)[1].reshape(rows, k)  # row-major: ascending columns per row
    v = np.take_along_axis(values, part, axis=1)
    order = np.lexsort((part, -v), axis=1)
    return np.take_along_axis(part, order, axis=1)


def score_user(
    nb: Neighbours,
    items: np.ndarray,
    weights: np.ndarray,
    *,
    exclude: np.ndarray | None = None,
    limit: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """A user's candidates and their relevance from the items of their (recent) history:

        score(j) = sum over history items i of  w_i * sim(i, j)

    over the neighbours of the history only (an item no history item is close to scores 0 and is
    not a candidate). History items and ``exclude`` are left out. Returns (items, scores), best
    first, ties by the lower id, at most ``limit`` (0: all)."""
    items = np.asarray(items, dtype=np.int64)
    weights = np.asarray(weights, dtype=np.float64)
    if not len(items):
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    idx = nb.index[items].ravel().astype(np.int64)
    val = (nb.sim[items].astype(np.float64) * weights[:, None]).ravel()
    ok = idx >= 0
    cand, inv = np.unique(idx[ok], return_inverse=True)
    score = np.bincount(inv, weights=val[ok], minlength=len(cand))
    drop = np.isin(cand, items)
    if exclude is not None and len(exclude):
        drop |= np.isin(cand, exclude)
    cand, score = cand[~drop], score[~drop]
    order = np.lexsort((cand, -score))
    if limit:
        order = order[:limit]
    return cand[order], score[order]


def score_all(nb: Neighbours, dense_x: np.ndarray) -> np.ndarray:
    """Every user's score for every item at once, ``X @ S`` (small catalogues: the benchmark's
    full-catalogue ranking; the same numbers as ``score_user`` for each row)."""
    n_items = nb.index.shape[0]
    s = np.zeros((n_items, n_items))
    rows = np.repeat(np.arange(n_items), nb.index.shape[1])
    cols = nb.index.ravel()
    ok = cols >= 0
    s[rows[ok], cols[ok]] = nb.sim.ravel()[ok]
    return dense_x @ s


def ease(dense_x: np.ndarray, lam: float = 500.0) -> np.ndarray:
    """EASE (Steck 2019): the item-item weights B minimising |X - XB|^2 + lam |B|^2 with a zero
    diagonal, in closed form: P = (X'X + lam I)^-1, B = -P / diag(P), diag(B) = 0. A dense
    n_items^2 inverse: small catalogues only (the benchmark's yardstick)."""
    g = dense_x.T @ dense_x
    g[np.diag_indices_from(g)] += lam
    p = np.linalg.inv(g)
    b = -p / np.diag(p)
    b[np.diag_indices_from(b)] = 0.0
    return b
