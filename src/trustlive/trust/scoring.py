"""The arithmetic of the scores (docs/scores.md), pure and vectorised: facts → counts per entity →
indicators → points on piecewise-linear curves → dimensions → total.

One code path serves every caller: the nightly recompute runs it over millions of facts at once,
the incremental refresh over the few entities an event touched, and the drill-down pages over one
entity. So the incremental and the full recompute agree to the last digit by construction (the
test in tests/trust proves it on real data), and a page never explains a figure with different
arithmetic from the one that produced it.

Configuration is a plain dict (JSON in ``TRUSTLIVE_SCORES_CONFIG``, deep-merged over ``DEFAULTS``)
checked once at start-up: curves rise or fall through 0-5 points over increasing x, weights are
basis points summing to 10000, per-category overrides name a category slug.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

DAY = 86_400

# Indicator key -> (dimension, unit, window in days). Windows are policy, stated in the docs.
INDICATORS: dict[str, tuple[str, str, int]] = {
    "negative_review_rate": ("product", "rate", 60),
    "quality_refund_rate": ("product", "rate", 60),
    "inspection_failure_rate": ("product", "rate", 60),
    "on_time_shipping_rate": ("logistics", "rate", 30),
    "delivery_hours": ("logistics", "hours", 30),
    "handling_hours": ("aftersales", "hours", 30),
    "dispute_rate": ("aftersales", "rate", 30),
    "service_rating": ("aftersales", "stars", 30),
    "false_claim_rate": ("claims", "rate", 60),
}
DIMENSIONS = ("product", "logistics", "aftersales", "claims")
KINDS = ("shop", "product", "creator")
ELIGIBILITY_DAYS = 90
RESTRICTION_DAYS = 7

# The counts kept per entity (TrustScore columns), in a fixed order.
COUNTS = (
    "delivered_90", "delivered_60", "negative_60", "quality_refunds_60", "inspected_60",
    "inspection_failed_60", "ship_due_30", "shipped_on_time_30", "delivered_30", "delivery_s_30",
    "aftersales_30", "aftersales_s_30", "disputes_lost_30", "service_rated_30", "service_sum_30",
    "false_claims_60", "ship_due_7", "shipped_late_7",
)  # fmt: skip

# The fact columns the aggregation reads (TrustFact), in a fixed order.
FACT_COLUMNS = (
    "shop_id", "product_id", "creator_id", "category_id", "paid_ts", "ship_by_ts", "shipped_ts",
    "delivered_ts", "closed_ts", "rating_product", "rating_service", "quality_refund_ts",
    "inspected_ts", "inspection_failed", "aftersales_ts", "aftersales_s", "dispute_lost_ts",
    "false_claim_ts",
)  # fmt: skip

DEFAULTS: dict[str, Any] = {
    # Delivered order lines in the last 90 days an entity needs before it shows a score.
    "min_orders": {"shop": 30, "creator": 30, "product": 10},
    # x (the indicator's value) -> points, linear between the knots and flat beyond the ends.
    "curves": {
        "negative_review_rate": [[0, 5], [0.012, 4], [0.03, 3], [0.06, 2], [0.1, 1], [0.2, 0]],
        "quality_refund_rate": [[0, 5], [0.01, 4], [0.03, 3], [0.05, 2], [0.1, 1], [0.2, 0]],
        "inspection_failure_rate": [[0, 5], [0.02, 4], [0.05, 3], [0.1, 2], [0.2, 1], [0.3, 0]],
        "on_time_shipping_rate": [[0.6, 0], [0.8, 1], [0.9, 2], [0.95, 3], [0.98, 4], [1, 5]],
        "delivery_hours": [[48, 5], [72, 4], [96, 3], [120, 2], [168, 1], [240, 0]],
        "handling_hours": [[12, 5], [24, 4], [48, 3], [72, 2], [120, 1], [168, 0]],
        "dispute_rate": [[0, 5], [0.001, 4], [0.003, 3], [0.006, 2], [0.01, 1], [0.02, 0]],
        "service_rating": [[1, 0], [3, 1], [4, 2.5], [4.5, 4], [4.8, 4.6], [5, 5]],
        "false_claim_rate": [[0, 5], [0.002, 4], [0.005, 3], [0.01, 2], [0.02, 1], [0.05, 0]],
    },
    # Indicator weights inside each dimension, basis points (an indicator with no data, say no
    # after-sales request in 30 days, drops out and the others share its weight).
    "dimensions": {
        "product": {
            "negative_review_rate": 5000,
            "quality_refund_rate": 3000,
            "inspection_failure_rate": 2000,
        },
        "logistics": {"on_time_shipping_rate": 6000, "delivery_hours": 4000},
        "aftersales": {"handling_hours": 4000, "dispute_rate": 4000, "service_rating": 2000},
        "claims": {"false_claim_rate": 10000},
    },
    # Dimension weights of each kind of score, basis points.
    "totals": {
        "shop": {"product": 4000, "logistics": 3000, "aftersales": 3000},
        "product": {"product": 10000},
        "creator": {"product": 3500, "logistics": 2000, "aftersales": 2500, "claims": 2000},
    },
    # Category slug -> any of "curves", "dimensions", "totals", "min_orders" replacing the defaults
    # for products of that category (or a sub-category) and for shops and creators whose most
    # delivered category in 90 days it is.
    "categories": {},
    "effects": {
        # [minimum score (hundredths), days]: the first tier the shop reaches sets its settlement
        # delay; below every tier "default_days"; a shop still "new" gets "new_days".
        "settlement_tiers": [[450, 7], [400, 15]],
        "settlement_default_days": 20,
        "settlement_new_days": 15,
        "trusted_shop_min": 450,
        "alliance_min": 400,
        "alliance_allow_new": True,
        # Late shipping over 7 days blocks new flash sales from enter_bp and lifts below lift_bp,
        # once at least min_due lines were due to ship.
        "flash_sale_enter_bp": 1000,
        "flash_sale_lift_bp": 400,
        "flash_sale_min_due": 5,
        # Score -> feed multiplier; "new" entities get new_multiplier (neutral).
        "quality_curve": [[0, 0.5], [3, 0.8], [4, 1], [4.5, 1.1], [5, 1.2]],
        "new_multiplier": 1.0,
    },
}


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Rules:
    """One resolved set of curves and weights (the defaults, or a category's overrides)."""

    curves: dict[str, tuple[tuple[float, ...], tuple[float, ...]]]
    dimensions: dict[str, dict[str, int]]
    totals: dict[str, dict[str, int]]
    min_orders: dict[str, int]


@dataclass(frozen=True)
class Config:
    default: Rules
    categories: dict[str, Rules]  # slug -> rules
    effects: dict[str, Any]
    raw: dict[str, Any]


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _curve(name: str, knots: Any) -> tuple[tuple[float, ...], tuple[float, ...]]:
    if not isinstance(knots, list) or len(knots) < 2:
        raise ConfigError(f"curves.{name}: at least two [x, points] knots")
    try:
        xs = tuple(float(k[0]) for k in knots)
        ys = tuple(float(k[1]) for k in knots)
    except (TypeError, ValueError, IndexError) as exc:
        raise ConfigError(f"curves.{name}: knots are [x, points] pairs of numbers") from exc
    if any(b <= a for a, b in zip(xs, xs[1:], strict=False)):
        raise ConfigError(f"curves.{name}: x must increase from knot to knot")
    if any(not 0 <= y <= 5 for y in ys):
        raise ConfigError(f"curves.{name}: points must lie between 0 and 5")
    return xs, ys


def _weights(where: str, weights: Any, allowed: tuple[str, ...] | dict[str, Any]) -> dict[str, int]:
    if not isinstance(weights, Mapping) or not weights:
        raise ConfigError(f"{where}: a mapping of weights in basis points")
    for key, value in weights.items():
        if key not in allowed:
            raise ConfigError(f"{where}: unknown {key!r}")
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ConfigError(f"{where}.{key}: a whole number of basis points")
    if sum(weights.values()) != 10_000:
        raise ConfigError(f"{where}: weights must add up to 10000 basis points")
    return dict(weights)


def _rules(raw: Mapping[str, Any], where: str = "") -> Rules:
    curves = {name: _curve(f"{where}{name}", raw["curves"].get(name)) for name in INDICATORS}
    dimensions: dict[str, dict[str, int]] = {}
    for dim in DIMENSIONS:
        allowed = tuple(k for k, v in INDICATORS.items() if v[0] == dim)
        dimensions[dim] = _weights(f"{where}dimensions.{dim}", raw["dimensions"].get(dim), allowed)
    totals = {kind: _weights(f"{where}totals.{kind}", raw["totals"].get(kind), DIMENSIONS) for kind in KINDS}
    mins = raw["min_orders"]
    for kind in KINDS:
        if not isinstance(mins.get(kind), int) or mins[kind] < 1:
            raise ConfigError(f"{where}min_orders.{kind}: a whole number of at least 1")
    return Rules(curves, dimensions, totals, {k: mins[k] for k in KINDS})


def load(overrides: Mapping[str, Any] | None = None) -> Config:
    raw = _merge(DEFAULTS, overrides or {})
    unknown = set(raw) - set(DEFAULTS)
    if unknown:
        raise ConfigError(f"unknown key {sorted(unknown)[0]!r}")
    default = _rules(raw)
    categories = {}
    for slug, over in (raw.get("categories") or {}).items():
        if not isinstance(over, Mapping) or set(over) - {"curves", "dimensions", "totals", "min_orders"}:
            raise ConfigError(f"categories.{slug}: only curves, dimensions, totals, min_orders")
        base = {k: raw[k] for k in ("curves", "dimensions", "totals", "min_orders")}
        categories[str(slug)] = _rules(_merge(base, over), f"categories.{slug}.")
    effects = raw["effects"]
    tiers = effects.get("settlement_tiers")
    if not isinstance(tiers, list) or any(not (isinstance(t, list) and len(t) == 2) for t in tiers):
        raise ConfigError("effects.settlement_tiers: a list of [minimum score in hundredths, days]")
    for key in ("settlement_default_days", "settlement_new_days"):
        if not isinstance(effects.get(key), int) or not 0 <= effects[key] <= 90:
            raise ConfigError(f"effects.{key}: whole days between 0 and 90")
    if not effects["flash_sale_lift_bp"] <= effects["flash_sale_enter_bp"]:
        raise ConfigError("effects: flash_sale_lift_bp must not exceed flash_sale_enter_bp")
    _curve("effects.quality_curve", effects.get("quality_curve"))
    effects = {**effects, "settlement_tiers": sorted(([int(a), int(b)] for a, b in tiers), reverse=True)}
    return Config(default, categories, effects, raw)


def load_file(path: str | None) -> Config:
    """The configuration: the defaults, or the defaults overridden by the JSON file at ``path``.
    A bad file stops start-up with the reason (SystemExit), never a half-applied configuration."""
    if not path:
        return load()
    try:
        overrides = json.loads(Path(path).read_text(encoding="utf-8"))
        return load(overrides)
    except (OSError, json.JSONDecodeError, ConfigError) as exc:
        raise SystemExit(f"TRUSTLIVE_SCORES_CONFIG ({path}): {exc}") from exc


# ---- facts -> counts -----------------------------------------------------------------------


def aggregate(
    facts: Mapping[str, np.ndarray], key: str, now_ts: int | np.ndarray
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Group fact rows by ``key`` (shop_id, product_id or creator_id): the entity ids, sorted, and
    each count of ``COUNTS`` per entity, with the windows ending at ``now_ts`` (one time, or one
    per row). Rows with key 0 (no creator) are left out."""
    return group(facts[key], *conditions(facts, now_ts))


def conditions(
    facts: Mapping[str, np.ndarray], now_ts: int | np.ndarray
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """What each fact row adds to each count of ``COUNTS``: a mask for the counts of lines, the
    value added for the sums (seconds, stars). The same for every kind of entity, so the full
    recompute works them out once for shops, products and creators."""
    f = facts
    since = {days: now_ts - days * DAY for days in (7, 30, 60, 90)}
    delivered = f["delivered_ts"]
    d90, d60, d30 = delivered >= since[90], delivered >= since[60], delivered >= since[30]
    # Shipping owed: paid in the window, and shipped, or past its ship-by without having been
    # refunded or cancelled before that deadline.
    shipped, ship_by, closed = f["shipped_ts"], f["ship_by_ts"], f["closed_ts"]
    owed = (shipped > 0) | ((ship_by > 0) & (ship_by < now_ts) & ~((closed > 0) & (closed <= ship_by)))
    on_time = (shipped > 0) & (shipped <= ship_by)
    paid = f["paid_ts"]
    due30, due7 = owed & (paid >= since[30]), owed & (paid >= since[7])
    rated = d30 & (f["rating_service"] > 0)
    rp = f["rating_product"]
    handled = f["aftersales_ts"] >= since[30]
    inspected = f["inspected_ts"] >= since[60]
    masks = {
        "delivered_90": d90,
        "delivered_60": d60,
        "negative_60": d60 & (rp >= 1) & (rp <= 2),
        "quality_refunds_60": f["quality_refund_ts"] >= since[60],
        "inspected_60": inspected,
        "inspection_failed_60": inspected & (f["inspection_failed"] > 0),
        "ship_due_30": due30,
        "shipped_on_time_30": due30 & on_time,
        "delivered_30": d30,
        "aftersales_30": handled,
        "disputes_lost_30": f["dispute_lost_ts"] >= since[30],
        "service_rated_30": rated,
        "false_claims_60": f["false_claim_ts"] >= since[60],
        "ship_due_7": due7,
        "shipped_late_7": due7 & ~on_time,
    }
    # float64: bincount's weights are doubles anyway, and every sum stays far below 2**53.
    sums = {
        "delivery_s_30": np.where(d30, delivered - paid, 0).astype(np.float64),
        "aftersales_s_30": np.where(handled, f["aftersales_s"], 0).astype(np.float64),
        "service_sum_30": np.where(rated, f["rating_service"], 0).astype(np.float64),
    }
    return masks, sums


def group(
    keys: np.ndarray, masks: Mapping[str, np.ndarray], sums: Mapping[str, np.ndarray]
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The entity ids in ``keys`` (0 left out), sorted, and per entity how many of its rows each
    mask holds and the total of each sum."""
    valid = keys > 0
    top = int(keys.max()) if len(keys) else 0
    if top <= 4 * len(keys) + 1_000_000:  # ids dense enough to index an array by (no sort)
        seen = np.bincount(keys[valid], minlength=top + 1)
        ids = np.flatnonzero(seen)
        dense = np.zeros(top + 1, dtype=np.int64)
        dense[ids] = np.arange(len(ids))
        idx = dense[keys]
    else:
        ids, idx = np.unique(np.where(valid, keys, 0), return_inverse=True)
        if len(ids) and ids[0] == 0:  # rows without an entity: index 0, masked out below
            ids, idx = ids[1:], np.maximum(idx - 1, 0)
    n = len(ids)
    some_invalid = not valid.all()
    counts: dict[str, np.ndarray] = {}
    for name in COUNTS:
        if name in sums:
            weights = np.where(valid, sums[name], 0.0) if some_invalid else sums[name]
            counts[name] = np.rint(np.bincount(idx, weights=weights, minlength=n)).astype(np.int64)
        else:
            mask = masks[name] & valid if some_invalid else masks[name]
            counts[name] = np.bincount(idx[mask], minlength=n).astype(np.int64)
    return ids, counts


def main_category(facts: Mapping[str, np.ndarray], key: str, ids: np.ndarray, now_ts: int) -> np.ndarray:
    """Each entity's most delivered category over 90 days (ties: the lowest id; none: 0)."""
    keep = (facts[key] > 0) & (facts["delivered_ts"] >= now_ts - ELIGIBILITY_DAYS * DAY)
    ent, cat = facts[key][keep], facts["category_id"][keep]
    out = np.zeros(len(ids), dtype=np.int64)
    if not len(ent):
        return out
    pairs, n = np.unique(np.stack([ent, cat]), axis=1, return_counts=True)
    # Sort by entity, then by count descending, then by category ascending: first of each wins.
    order = np.lexsort((pairs[1], -n, pairs[0]))
    pairs = pairs[:, order]
    first = np.ones(pairs.shape[1], dtype=bool)
    first[1:] = pairs[0, 1:] != pairs[0, :-1]
    winners_ent, winners_cat = pairs[0, first], pairs[1, first]
    pos = np.searchsorted(ids, winners_ent)
    out[pos] = winners_cat
    return out


# ---- counts -> scores ----------------------------------------------------------------------


def _ratio(num: np.ndarray, den: np.ndarray, cap: bool = False) -> tuple[np.ndarray, np.ndarray]:
    ok = den > 0
    value = np.divide(num, den, out=np.zeros(len(den), dtype=np.float64), where=ok)
    return (np.minimum(value, 1.0) if cap else value), ok


def indicator_values(counts: Mapping[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Indicator key -> (value, applies): the value where its population is not empty."""
    c = {k: np.asarray(v, dtype=np.float64) for k, v in counts.items()}
    return {
        "negative_review_rate": _ratio(c["negative_60"], c["delivered_60"]),
        "quality_refund_rate": _ratio(c["quality_refunds_60"], c["delivered_60"], cap=True),
        "inspection_failure_rate": _ratio(c["inspection_failed_60"], c["inspected_60"]),
        "on_time_shipping_rate": _ratio(c["shipped_on_time_30"], c["ship_due_30"]),
        "delivery_hours": _ratio(c["delivery_s_30"] / 3600.0, c["delivered_30"]),
        "handling_hours": _ratio(c["aftersales_s_30"] / 3600.0, c["aftersales_30"]),
        "dispute_rate": _ratio(c["disputes_lost_30"], c["delivered_30"], cap=True),
        "service_rating": _ratio(c["service_sum_30"], c["service_rated_30"]),
        "false_claim_rate": _ratio(c["false_claims_60"], c["delivered_60"], cap=True),
    }


def hundredths(x: np.ndarray) -> np.ndarray:
    """0-5 points to whole hundredths, half up (the epsilon keeps 4.625 from becoming 4.62 through
    binary rounding)."""
    return np.floor(np.asarray(x, dtype=np.float64) * 100 + 0.5 + 1e-9).astype(np.int64)


@dataclass
class Scored:
    """Per entity: score and dimensions in hundredths (-1: none), and per indicator its value,
    whether it applied, and its points."""

    score_c: np.ndarray
    dims_c: dict[str, np.ndarray]
    values: dict[str, tuple[np.ndarray, np.ndarray]]
    points: dict[str, np.ndarray]


def score(kind: str, counts: Mapping[str, np.ndarray], rules: Rules) -> Scored:
    """Scores of entities of one kind under one set of rules. An entity is "new" (score -1) below
    the minimum of delivered lines, or when none of its dimensions has data."""
    values = indicator_values(counts)
    n = len(counts["delivered_90"])
    points = {}
    for key, (value, _ok) in values.items():
        xs, ys = rules.curves[key]
        points[key] = np.interp(value, xs, ys)
    dims_c: dict[str, np.ndarray] = {}
    total = np.zeros(n)
    total_w = np.zeros(n)
    for dim, weight in rules.totals[kind].items():
        acc, acc_w = np.zeros(n), np.zeros(n)
        for key, w in rules.dimensions[dim].items():
            ok = values[key][1]
            acc += np.where(ok, points[key] * w, 0.0)
            acc_w += np.where(ok, w, 0)
        has = acc_w > 0
        dim_points = np.divide(acc, acc_w, out=np.zeros(n), where=has)
        dims_c[dim] = np.where(has, hundredths(dim_points), -1)
        if weight:
            total += np.where(has, dim_points * weight, 0.0)
            total_w += np.where(has, weight, 0)
    scored = (np.asarray(counts["delivered_90"]) >= rules.min_orders[kind]) & (total_w > 0)
    score_c = np.where(scored, hundredths(np.divide(total, total_w, out=np.zeros(n), where=total_w > 0)), -1)
    for dim in DIMENSIONS:
        if dim not in dims_c:
            dims_c[dim] = np.full(n, -1, dtype=np.int64)
        dims_c[dim] = np.where(scored, dims_c[dim], -1)
    return Scored(score_c.astype(np.int64), dims_c, values, points)


def restriction(counts: Mapping[str, np.ndarray], was: np.ndarray, effects: Mapping[str, Any]) -> np.ndarray:
    """The flash-sale restriction after these counts: on at a late-shipping rate of enter_bp or
    more, off below lift_bp, unchanged in between (hysteresis) and while too few lines were due."""
    due = np.asarray(counts["ship_due_7"], dtype=np.int64)
    late = np.asarray(counts["shipped_late_7"], dtype=np.int64)
    enough = due >= effects["flash_sale_min_due"]
    # Integer comparisons: late/due >= enter_bp/10000  <=>  late*10000 >= enter_bp*due.
    enter = enough & (late * 10_000 >= effects["flash_sale_enter_bp"] * due)
    lift = (late * 10_000 < effects["flash_sale_lift_bp"] * due) | (due == 0)
    return np.where(enter, True, np.where(lift, False, np.asarray(was, dtype=bool)))


def settlement_days(score_c: int | None, effects: Mapping[str, Any]) -> int:
    if score_c is None:
        return int(effects["settlement_new_days"])
    for minimum, days in effects["settlement_tiers"]:
        if score_c >= minimum:
            return int(days)
    return int(effects["settlement_default_days"])


def quality_multiplier(score_c: int | None, effects: Mapping[str, Any]) -> float:
    if score_c is None:
        return float(effects["new_multiplier"])
    knots = effects["quality_curve"]
    return float(np.interp(score_c / 100, [k[0] for k in knots], [k[1] for k in knots]))


def quality_multipliers(scores_c: Sequence[int | None], effects: Mapping[str, Any]) -> list[float]:
    """``quality_multiplier`` of each score at once (a feed page tilts hundreds of providers)."""
    knots = effects["quality_curve"]
    scores = np.array([np.nan if s is None else s for s in scores_c], dtype=np.float64)
    out = np.interp(scores / 100, [k[0] for k in knots], [k[1] for k in knots])
    out[np.isnan(scores)] = float(effects["new_multiplier"])
    return out.tolist()
