"""The discovery feed's ranking core (docs/feed.md): inclusive re-ranking (普惠分发) of one
request's candidates, its configuration, and the metrics of quality and of exposure. Pure,
vectorised numpy, deterministic (every tie is broken by the lower item id).

Relevance alone sends most impressions to a few head creators: popular items co-occur with
everything, so they are everybody's nearest neighbours. The re-ranker takes the relevance of a
request's candidates and tilts it by what the platform knows about their creators: trust
(``trust.service.quality_multiplier``), how much exposure each creator already had over the
rolling window, whether they are new, whether ops granted them a traffic reward (川流). Each
mechanism is one configuration weight (0 disables it), so ops can see and change the trade-off
between relevance and spread, and bench/feed_quality.py measures it (NDCG against exposure
Gini) on public data with the shipped defaults.

Exposure is measured relative to the average creator (``exposure / max(window_total /
active_creators, min_average)``), so the same weights mean the same thing on a test catalogue
with a thousand creators and in production with a hundred thousand.

Configuration is a plain dict (JSON in ``TRUSTLIVE_FEED_CONFIG``, deep-merged over ``DEFAULTS``)
checked once at start-up, in the style of ``trust.scoring``: a bad value stops start-up with
its dotted path and the reason, never a half-applied configuration.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

KINDS = ("impression", "view", "like", "purchase")

DEFAULTS: dict[str, Any] = {
    # Hours of the rolling window over which each creator's exposure (real impressions) is
    # accounted; the re-ranker reads the counts of that window.
    "window_hours": 24,
    # Days after their first post during which a creator counts as new.
    "new_creator_days": 30,
    "relevance": {
        # Interaction kind -> weight in the users x items matrix (several events on one item
        # keep the strongest); must increase impression < view < like < purchase.
        "weights": {"impression": 0.05, "view": 1.0, "like": 2.0, "purchase": 4.0},
        # Neighbours kept per item, and the shrinkage of the cosine similarity (co-occurrence
        # counts seen by few users are pulled toward 0).
        "neighbours": 100,
        "shrink": 5.0,
        # A user's candidates come from their most recent ``history_items`` interactions, the
        # i-th most recent weighing 0.5 ** (i / half_life_items): taste drifts, and the last
        # few items say most about the next one.
        "history_items": 50,
        "half_life_items": 2.0,
        # Collaborative-filtering candidates per request (the fresh-content and new-creator
        # pools come on top of them).
        "candidates": 500,
        # Priors added to every candidate's relevance (in units of the request's best
        # collaborative score): freshness, weight x 0.5 ** (age in hours / half_life_hours),
        # so new items are seen before they have interactions of their own...
        "fresh": {"weight": 0.3, "half_life_hours": 48.0},
        # ...a room on air, weight, plus affinity when the user has interacted with its
        # creator's items (a live room is now or never)...
        "live": {"weight": 0.6, "affinity": 0.4},
        # ...and an item the user already interacted with keeps this share of its relevance.
        "seen_factor": 0.2,
    },
    "rerank": {
        # score *= trust ** weight (trust: trust.service.quality_multiplier, 1.0 when unknown).
        "trust_weight": 1.0,
        # The first positions of a page go by relevance (times trust) alone; the inclusive
        # mechanisms below place the rest. The top of a page is where a user decides whether the
        # feed is worth scrolling, and what costs relevance least to spread is the bottom.
        "protect_top": 5,
        # The average creator's exposure is taken as at least this many impressions, so the
        # first impressions of a fresh (or quiet) window do not swing the ranking.
        "min_average": 8,
        # score /= 1 + weight * ln(1 + max(0, x - knee)), x = the creator's exposure over the
        # average creator's in the window: concave, diminishing returns beyond knee x average.
        "diminishing": {"weight": 1.0, "knee": 1.0},
        # A creator holding more than ``share`` of all impressions in the window (once it holds
        # at least ``min_window`` impressions): score *= (1 - weight); 1 pushes them to the
        # bottom of the page's candidates.
        "head_cap": {"weight": 0.5, "share": 0.02, "min_window": 1000},
        # A creator below ``level`` x the average exposure: score += weight * (1 - x / level),
        # fading to nothing as they reach the floor.
        "floor": {"weight": 0.3, "level": 0.5},
        # A new creator's items: score += weight * max(0, 1 - x / level), a boost that fades
        # as their exposure nears ``level`` x the average creator's (by then their items have
        # interactions of their own to be ranked by).
        "new_creator": {"weight": 0.1, "level": 1.0},
        # score += weight while a creator's traffic-reward grant has impressions left; each
        # impression served consumes one.
        "grant": {"weight": 0.5},
        # At most this many items of one creator in a page (0: no limit).
        "per_creator": 2,
    },
}


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Config:
    weights: dict[str, float]  # interaction kind -> weight
    neighbours: int
    shrink: float
    history_items: int
    half_life_items: float
    candidates: int
    fresh_weight: float
    fresh_half_life_hours: float
    live_weight: float
    live_affinity: float
    seen_factor: float
    trust_weight: float
    protect_top: int
    min_average: float
    diminishing_weight: float
    diminishing_knee: float
    cap_weight: float
    cap_share: float
    cap_min_window: int
    floor_weight: float
    floor_level: float
    new_weight: float
    new_level: float
    grant_weight: float
    per_creator: int
    window_hours: int
    new_creator_days: int
    raw: dict[str, Any]


def _merge(base: dict[str, Any], over: Mapping[str, Any], where: str = "") -> dict[str, Any]:
    """``over`` deep-merged into ``base``; a key ``base`` does not have is an error (a typo in a
    weight's name would otherwise be ignored silently)."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        path = f"{where}{key}"
        if key not in out:
            raise ConfigError(f"unknown key {path!r}")
        if isinstance(out[key], dict):
            if not isinstance(value, Mapping):
                raise ConfigError(f"{path}: a mapping")
            out[key] = _merge(out[key], value, f"{path}.")
        else:
            out[key] = copy.deepcopy(value)
    return out


def _number(raw: Mapping[str, Any], path: str, lo: float, hi: float, *, above: bool = False) -> float:
    node: Any = raw
    for part in path.split("."):
        node = node[part]
    ok = isinstance(node, int | float) and not isinstance(node, bool) and np.isfinite(node)
    if not ok or not ((node > lo) if above else (node >= lo)) or node > hi:
        low = f"above {lo:g}" if above else f"at least {lo:g}"
        raise ConfigError(f"{path}: a number {low} and at most {hi:g}")
    return float(node)


def _whole(raw: Mapping[str, Any], path: str, lo: int, hi: int) -> int:
    node: Any = raw
    for part in path.split("."):
        node = node[part]
    if not isinstance(node, int) or isinstance(node, bool) or not lo <= node <= hi:
        raise ConfigError(f"{path}: a whole number from {lo} to {hi}")
    return node


def load(overrides: Mapping[str, Any] | None = None) -> Config:
    """The defaults, deep-merged with ``overrides`` and checked."""
    if overrides is not None and not isinstance(overrides, Mapping):
        raise ConfigError("the configuration is a JSON object")
    raw = _merge(DEFAULTS, overrides or {})
    weights = {kind: _number(raw, f"relevance.weights.{kind}", 0, 1000) for kind in KINDS}
    if any(weights[a] >= weights[b] for a, b in zip(KINDS, KINDS[1:], strict=False)):
        raise ConfigError("relevance.weights: must increase impression < view < like < purchase")
    return Config(
        weights=weights,
        neighbours=_whole(raw, "relevance.neighbours", 1, 1000),
        shrink=_number(raw, "relevance.shrink", 0, 1e6),
        history_items=_whole(raw, "relevance.history_items", 1, 1000),
        half_life_items=_number(raw, "relevance.half_life_items", 0, 1000, above=True),
        candidates=_whole(raw, "relevance.candidates", 1, 10_000),
        fresh_weight=_number(raw, "relevance.fresh.weight", 0, 100),
        fresh_half_life_hours=_number(raw, "relevance.fresh.half_life_hours", 0, 24 * 3650, above=True),
        live_weight=_number(raw, "relevance.live.weight", 0, 100),
        live_affinity=_number(raw, "relevance.live.affinity", 0, 100),
        seen_factor=_number(raw, "relevance.seen_factor", 0, 1),
        trust_weight=_number(raw, "rerank.trust_weight", 0, 10),
        protect_top=_whole(raw, "rerank.protect_top", 0, 1000),
        min_average=_number(raw, "rerank.min_average", 0, 1e9, above=True),
        diminishing_weight=_number(raw, "rerank.diminishing.weight", 0, 100),
        diminishing_knee=_number(raw, "rerank.diminishing.knee", 0, 1e6),
        cap_weight=_number(raw, "rerank.head_cap.weight", 0, 1),
        cap_share=_number(raw, "rerank.head_cap.share", 0, 1, above=True),
        cap_min_window=_whole(raw, "rerank.head_cap.min_window", 0, 10**12),
        floor_weight=_number(raw, "rerank.floor.weight", 0, 100),
        floor_level=_number(raw, "rerank.floor.level", 0, 1e6, above=True),
        new_weight=_number(raw, "rerank.new_creator.weight", 0, 100),
        new_level=_number(raw, "rerank.new_creator.level", 0, 1e6, above=True),
        grant_weight=_number(raw, "rerank.grant.weight", 0, 100),
        per_creator=_whole(raw, "rerank.per_creator", 0, 1000),
        window_hours=_whole(raw, "window_hours", 1, 24 * 90),
        new_creator_days=_whole(raw, "new_creator_days", 0, 3650),
        raw=raw,
    )


def load_file(path: str | None) -> Config:
    """The configuration: the defaults, or the defaults overridden by the JSON file at ``path``
    (``TRUSTLIVE_FEED_CONFIG``). A bad file stops start-up with the reason (SystemExit)."""
    if not path:
        return load()
    try:
        return load(json.loads(Path(path).read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError, ConfigError) as exc:
        raise SystemExit(f"TRUSTLIVE_FEED_CONFIG ({path}): {exc}") from exc


DEFAULT = load()


def kind_weights(kinds: Any, config: Config = DEFAULT) -> np.ndarray:
    """The interaction weight of each event kind (``KINDS`` names); an unknown kind is an error."""
    table = config.weights
    try:
        return np.array([table[str(k)] for k in kinds], dtype=np.float64)
    except KeyError as exc:
        raise ValueError(f"unknown interaction kind {exc.args[0]!r}") from None


def history_weights(kind_weights: Any, config: Config = DEFAULT) -> np.ndarray:
    """The weights of a user's history given the interaction weights of its items, most recent
    first: the first ``history_items`` only, the i-th (from 0) times 0.5 ** (i / half_life_items)."""
    w = np.asarray(kind_weights, dtype=np.float64)[: config.history_items]
    return w * 0.5 ** (np.arange(len(w)) / config.half_life_items)


# ---- one request ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidates:
    """One request's candidates, aligned arrays: the item, its relevance (any scale; only ratios
    within the request matter), its creator, whether the creator is new, and the creator's trust
    multiplier (1.0 when unknown)."""

    item_ids: np.ndarray
    relevance: np.ndarray
    creator_ids: np.ndarray
    is_new: np.ndarray
    trust: np.ndarray

    @classmethod
    def of(
        cls,
        item_ids: Any,
        relevance: Any,
        creator_ids: Any,
        is_new: Any = None,
        trust: Any = None,
    ) -> Candidates:
        items = np.asarray(item_ids, dtype=np.int64)
        n = len(items)
        rel = np.asarray(relevance, dtype=np.float64)
        creators = np.asarray(creator_ids, dtype=np.int64)
        new = np.zeros(n, dtype=bool) if is_new is None else np.asarray(is_new, dtype=bool)
        tr = np.ones(n) if trust is None else np.asarray(trust, dtype=np.float64)
        if not (len(rel) == len(creators) == len(new) == len(tr) == n):
            raise ValueError("candidate arrays must have the same length")
        if len(np.unique(items)) != n:
            raise ValueError("an item is a candidate at most once")
        if not (np.isfinite(rel).all() and np.isfinite(tr).all()) or (tr < 0).any():
            raise ValueError("relevance and trust must be finite, trust not negative")
        return cls(items, rel, creators, new, tr)


@dataclass(frozen=True)
class CreatorState:
    """What the window knows about creators: impressions each had in the rolling window, the
    impressions left on their traffic-reward grants, all impressions in the window, and how
    many creators had something to show (the denominator of the average exposure). Creators not
    listed had no impression and no grant."""

    creator_ids: np.ndarray  # sorted, unique
    exposure: np.ndarray
    grants: np.ndarray
    window_total: int
    active_creators: int

    @classmethod
    def of(
        cls,
        exposure: Mapping[int, int],
        grants: Mapping[int, int] | None = None,
        *,
        window_total: int | None = None,
        active_creators: int = 1,
    ) -> CreatorState:
        grants = grants or {}
        ids = np.array(sorted(set(exposure) | set(grants)), dtype=np.int64)
        exp = np.array([exposure.get(int(c), 0) for c in ids], dtype=np.int64)
        gr = np.array([grants.get(int(c), 0) for c in ids], dtype=np.int64)
        total = int(exp.sum()) if window_total is None else int(window_total)
        return cls(ids, exp, gr, total, max(int(active_creators), 1))

    @classmethod
    def dense(
        cls, exposure: np.ndarray, grants: np.ndarray | None = None, active_creators: int = 0
    ) -> CreatorState:
        """Creator ids 0..n-1 (the benchmark's accounting arrays, used in place)."""
        exposure = np.asarray(exposure)
        n = len(exposure)
        return cls(
            np.arange(n, dtype=np.int64),
            exposure,
            np.zeros(n, dtype=np.int64) if grants is None else np.asarray(grants),
            int(exposure.sum()),
            max(active_creators or n, 1),
        )

    def lookup(self, creator_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(exposure, grant left) of each of ``creator_ids``; 0 for unknown creators."""
        if not len(self.creator_ids):
            z = np.zeros(len(creator_ids), dtype=np.int64)
            return z, z.copy()
        pos = np.minimum(np.searchsorted(self.creator_ids, creator_ids), len(self.creator_ids) - 1)
        found = self.creator_ids[pos] == creator_ids
        return np.where(found, self.exposure[pos], 0), np.where(found, self.grants[pos], 0)


@dataclass(frozen=True)
class Page:
    """A page, best first, and what serving it costs: impressions per creator (to add to the
    window) and the grant impressions it consumes per creator."""

    item_ids: np.ndarray
    creator_ids: np.ndarray
    scores: np.ndarray  # the re-ranked score each item was placed by
    relevance: np.ndarray
    exposure_creators: np.ndarray  # sorted
    exposure_counts: np.ndarray
    grant_creators: np.ndarray  # sorted; only creators whose grant this page draws on
    grant_used: np.ndarray


def _normalised(c: Candidates) -> np.ndarray:
    rel = np.maximum(c.relevance, 0.0)
    top = rel.max() if len(rel) else 0.0
    return rel / top if top > 0 else np.zeros(len(rel))


def tilted(c: Candidates, config: Config = DEFAULT) -> np.ndarray:
    """Relevance over the request's best (0 when all are 0) times trust ** trust_weight: what
    the protected top of a page is ranked by."""
    r = _normalised(c)
    return r * c.trust**config.trust_weight if config.trust_weight else r


def scores(c: Candidates, state: CreatorState, config: Config = DEFAULT) -> np.ndarray:
    """The inclusive score of each candidate (docs/feed.md, "Re-ranking"):

        r  = relevance / max relevance in the request            (0 when all are 0)
        x  = creator's window exposure / max(window_total / active_creators, min_average)
        s  = r * trust ** trust_weight / (1 + diminishing_weight * ln(1 + max(0, x - knee)))
             + floor_weight * max(0, 1 - x / floor_level)
             + new_weight * is_new * max(0, 1 - x / new_level)
             + grant_weight * [grant left > 0]
        s *= 1 - cap_weight     if the creator holds more than cap_share of the window
                                and the window holds at least cap_min_window impressions

    Boosts are additive, in units of the request's best relevance, so they lift items the
    collaborative filter knows nothing about (a new creator's first video) yet, among the
    boosted, the most relevant go first. Exposure is relative to the average creator so the
    weights mean the same on a small catalogue and on a large one."""
    n = len(c.item_ids)
    if not n:
        return np.zeros(0)
    exposure, grant_left = state.lookup(c.creator_ids)
    mean = max(state.window_total / state.active_creators, config.min_average)
    x = exposure / mean
    s = tilted(c, config)
    if config.diminishing_weight:
        s = s / (1.0 + config.diminishing_weight * np.log1p(np.maximum(0.0, x - config.diminishing_knee)))
    if config.floor_weight:
        s = s + config.floor_weight * np.maximum(0.0, 1.0 - x / config.floor_level)
    if config.new_weight:
        s = s + config.new_weight * c.is_new * np.maximum(0.0, 1.0 - x / config.new_level)
    if config.grant_weight:
        s = s + config.grant_weight * (grant_left > 0)
    if config.cap_weight and state.window_total >= max(config.cap_min_window, 1):
        over = exposure > config.cap_share * state.window_total
        s = np.where(over, s * (1.0 - config.cap_weight), s)
    return s


def pick(
    c: Candidates, s: np.ndarray, k: int, per_creator: int = 0, *, taken: np.ndarray | None = None
) -> np.ndarray:
    """Positions (into the candidates) of the ``k`` best by ``s`` (ties: the lower item id), at
    most ``per_creator`` of one creator (0: no limit) counting the creators of ``taken`` (items
    already on the page, never picked again); fewer than ``k`` when candidates run out."""
    order = np.lexsort((c.item_ids, -s))
    if taken is not None and len(taken):
        free = np.ones(len(s), dtype=bool)
        free[taken] = False
        order = order[free[order]]
    if per_creator:
        creators = c.creator_ids[order]
        # Rank of each candidate among its creator's, in page order: a stable sort by creator
        # keeps page order within a creator.
        by_creator = np.argsort(creators, kind="stable")
        sorted_creators = creators[by_creator]
        starts = np.ones(len(order), dtype=bool)
        starts[1:] = sorted_creators[1:] != sorted_creators[:-1]
        group_start = np.maximum.accumulate(np.where(starts, np.arange(len(order)), 0))
        rank = np.empty(len(order), dtype=np.int64)
        rank[by_creator] = np.arange(len(order)) - group_start
        if taken is not None and len(taken):
            used_ids, used = np.unique(c.creator_ids[taken], return_counts=True)
            pos = np.minimum(np.searchsorted(used_ids, creators), len(used_ids) - 1)
            rank = rank + np.where(used_ids[pos] == creators, used[pos], 0)
        order = order[rank < per_creator]
    return order[: max(int(k), 0)]


def rerank(c: Candidates, state: CreatorState, k: int, config: Config = DEFAULT) -> Page:
    """The page of ``k`` items for one request: the first ``protect_top`` by ``tilted``
    relevance (only candidates with some relevance: for a user the filter knows nothing about,
    the inclusive scores place the whole page), the rest by the inclusive ``scores``, at most
    ``per_creator`` of one creator in all; with the exposure and grant impressions it will
    consume when served."""
    t = tilted(c, config)
    top = pick(c, t, min(config.protect_top, k), config.per_creator)
    top = top[t[top] > 0]
    s = scores(c, state, config)
    rest = pick(c, s, k - len(top), config.per_creator, taken=top)
    placed = s.copy()
    placed[top] = t[top]
    return _page(c, placed, np.concatenate([top, rest]), state)


def plain(c: Candidates, k: int) -> Page:
    """The page by relevance alone (the benchmark's "plain relevance ranker")."""
    s = c.relevance.astype(np.float64)
    return _page(c, s, pick(c, s, k), None)


def _page(c: Candidates, s: np.ndarray, chosen: np.ndarray, state: CreatorState | None) -> Page:
    creators = c.creator_ids[chosen]
    ids, counts = np.unique(creators, return_counts=True)
    if state is not None and len(ids):
        left = state.lookup(ids)[1]
        used = np.minimum(counts, np.maximum(left, 0))
        has = used > 0
        grant_ids, grant_used = ids[has], used[has]
    else:
        grant_ids, grant_used = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return Page(
        c.item_ids[chosen], creators, s[chosen], c.relevance[chosen], ids, counts, grant_ids, grant_used
    )


# ---- metrics ----------------------------------------------------------------------------------


def hits(ranked: np.ndarray, relevant: list[np.ndarray]) -> np.ndarray:
    """A (users x positions) boolean matrix: whether each ranked item is among that user's
    relevant items (-1 in ``ranked`` pads short lists and is never a hit)."""
    ranked = np.asarray(ranked)
    out = np.zeros(ranked.shape, dtype=bool)
    for u, rel in enumerate(relevant):
        out[u] = np.isin(ranked[u], rel) & (ranked[u] >= 0)
    return out


def ndcg_at_k(hit: np.ndarray, n_relevant: np.ndarray, k: int) -> float:
    """Mean NDCG@k over users with at least one relevant item: DCG = sum of 1 / log2(position
    + 1) over the hits in the first k positions, divided by the DCG of min(n_relevant, k)
    hits at the top."""
    hit = np.asarray(hit, dtype=bool)[:, :k]
    n_rel = np.asarray(n_relevant)
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (hit * disc[: hit.shape[1]]).sum(axis=1)
    idcg = np.concatenate([[0.0], np.cumsum(disc)])[np.minimum(n_rel, k)]
    ok = n_rel > 0
    return float((dcg[ok] / idcg[ok]).mean()) if ok.any() else 0.0


def recall_at_k(hit: np.ndarray, n_relevant: np.ndarray, k: int) -> float:
    """Mean over users with at least one relevant item of hits in the first k / relevant items."""
    hit = np.asarray(hit, dtype=bool)[:, :k]
    n_rel = np.asarray(n_relevant)
    ok = n_rel > 0
    return float((hit.sum(axis=1)[ok] / n_rel[ok]).mean()) if ok.any() else 0.0


def gini(exposure: Any) -> float:
    """Gini coefficient of exposure over providers, every provider counted (zeros included): 0
    when all have the same, (n - 1) / n when one has everything. 0 for no exposure at all."""
    x = np.sort(np.asarray(exposure, dtype=np.float64))
    n, total = len(x), x.sum()
    if n == 0 or total <= 0:
        return 0.0
    return float(2.0 * np.dot(np.arange(1, n + 1), x) / (n * total) - (n + 1) / n)


def lorenz(exposure: Any, points: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The Lorenz curve: (share of providers, share of exposure they hold), providers from the
    least exposed up, from (0, 0) to (1, 1). ``points`` > 0 samples it at that many evenly spaced
    population shares (a chart needs ~100 points, not 100k), interpolating between providers."""
    x = np.sort(np.asarray(exposure, dtype=np.float64))
    n, total = len(x), x.sum()
    pop = np.linspace(0.0, 1.0, n + 1)
    share = np.concatenate([[0.0], np.cumsum(x) / total]) if total > 0 else pop.copy()
    if points and n:
        at = np.linspace(0.0, 1.0, max(int(points), 2))
        return at, np.interp(at, pop, share)
    return pop, share


def bottom_half_share(exposure: Any) -> float:
    """Share of all exposure held by the least exposed half of providers (n // 2 of them)."""
    x = np.sort(np.asarray(exposure, dtype=np.float64))
    total = x.sum()
    return float(x[: len(x) // 2].sum() / total) if total > 0 else 0.0


def zero_share(exposure: Any) -> float:
    """Share of providers with no exposure at all."""
    x = np.asarray(exposure)
    return float((x == 0).mean()) if len(x) else 0.0


def coverage(served_items: Any, n_items: int) -> float:
    """Share of the catalogue's items served at least once."""
    served = np.asarray(served_items).ravel()
    return float(len(np.unique(served[served >= 0])) / n_items) if n_items else 0.0
