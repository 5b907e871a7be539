"""Trust use cases (docs/scores.md): keeping the facts and scores fresh, reading them, and what
they decide elsewhere (settlement delay, badges, alliance eligibility, flash sales, feed tilt).

Freshness. Every event that can move a score (an order paid, shipped, delivered, refunded; a
review posted or edited; an after-sales request ended; an inspection; a complaint decided) queues
its order (``on_event``, idempotent). ``refresh_dirty`` re-derives the facts of queued orders from
the source domains' current state and moves the stored counts of every shop, product and creator
they touch by the difference between the orders' old and new facts, in batches. Because facts are
re-derived from state, an event delivered twice, late or out of order changes nothing.
``recompute_all`` (nightly, and ``trustlive scores recompute``) counts everything again from the
facts with the same arithmetic and moves the windows to now, so the two agree exactly
(tests/trust/test_scores.py)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from trustlive import events
from trustlive.accounts.service import Principal
from trustlive.aftersales import service as aftersales
from trustlive.catalog import service as catalog
from trustlive.db import add_once, transaction, utcnow
from trustlive.errors import Conflict, Forbidden, NotFound, ValidationFailed, validated
from trustlive.fulfillment import service as fulfillment
from trustlive.orders import service as orders
from trustlive.reviews import service as reviews
from trustlive.trust import repository as repo
from trustlive.trust import scoring
from trustlive.trust.models import Complaint, ComplaintStatus
from trustlive.trust.schemas import (
    BreakdownOut,
    ComplaintDecisionIn,
    ComplaintIn,
    ComplaintOut,
    ComplaintPage,
    DimensionOut,
    DimOut,
    HistoryPoint,
    IndicatorLinesOut,
    IndicatorOut,
    LineRef,
    ScoreOut,
)
from trustlive.web.i18n import N_
from trustlive.web.pagination import MAX_LIMIT, encode_cursor, trim_page

log = logging.getLogger(__name__)
SHANGHAI = ZoneInfo("Asia/Shanghai")
KEY = {"shop": "shop_id", "product": "product_id", "creator": "creator_id"}
LONGEST = scoring.ELIGIBILITY_DAYS * scoring.DAY  # no fact older than this counts anywhere
# A score whose windows were evaluated longer ago than this (the nightly recompute did not run) is
# computed afresh from all its facts on its next event, instead of moved by the event's difference.
STALE_S = 36 * 3600

INDICATOR_LABELS = {
    "negative_review_rate": N_("Negative-review rate"),
    "quality_refund_rate": N_("Quality-return rate"),
    "inspection_failure_rate": N_("Inspection failure rate"),
    "on_time_shipping_rate": N_("On-time shipping rate"),
    "delivery_hours": N_("Pay-to-delivery time"),
    "handling_hours": N_("After-sales handling time"),
    "dispute_rate": N_("Dispute rate"),
    "service_rating": N_("Service rating"),
    "false_claim_rate": N_("Upheld false-claim complaints"),
}
DIMENSION_LABELS = {
    "product": N_("Product"),
    "logistics": N_("Logistics"),
    "aftersales": N_("After-sales"),
    "claims": N_("Truthful selling"),
}
HINTS = {
    "negative_review_rate": N_(
        "Read the 1 and 2 star reviews below: fix what buyers complain about (sizes, colour, quality) "
        "and make the description match the goods."
    ),
    "quality_refund_rate": N_(
        "These refunds were for faulty, wrong or not-as-described goods: check your quality control "
        "and your packing before shipping."
    ),
    "inspection_failure_rate": N_(
        "The lab failed these items: send only goods that match the certificate details you list."
    ),
    "on_time_shipping_rate": N_(
        "These orders shipped after their ship-by time (or not at all): ship earlier, or set a longer "
        "promised shipping time for goods you make to order."
    ),
    "delivery_hours": N_(
        "These orders took longest from payment to delivery: ship sooner and choose a faster carrier "
        "for distant regions."
    ),
    "handling_hours": N_(
        "Answer after-sales requests sooner: a request left until its deadline is approved "
        "automatically and counts in full."
    ),
    "dispute_rate": N_(
        "Ops decided these disputes for the buyer: settle reasonable requests yourself before they "
        "are escalated."
    ),
    "service_rating": N_("Buyers rated your service low on these orders: reply faster and more helpfully."),
    "false_claim_rate": N_(
        "Ops upheld these complaints that goods were not as you described them: say only what you "
        "have checked, on camera and in the product card."
    ),
}
UNITS = {key: unit for key, (_dim, unit, _w) in scoring.INDICATORS.items()}

_config: scoring.Config = scoring.load()


def configure(config: scoring.Config) -> None:
    """Use this configuration from now on (the app loads ``TRUSTLIVE_SCORES_CONFIG`` at start)."""
    global _config
    _config = config


def config() -> scoring.Config:
    return _config


def _kind(entity_type: str) -> str:
    if entity_type not in KEY:
        raise ValidationFailed(
            "entity_type: one of shop, product, creator", field="entity_type", code="bad_entity_type"
        )
    return entity_type


def _ts(value: dt.datetime | None) -> int:
    return int(value.timestamp()) if value is not None else 0


def _day(now: dt.datetime) -> dt.date:
    return now.astimezone(SHANGHAI).date()


# ---- freshness: events -> queue -> facts -> scores ------------------------------------------------

SCORED_TOPICS = (
    "orders.paid", "orders.cancelled", "orders.shipped", "orders.completed", "orders.refunded",
    "reviews.posted", "reviews.edited", "aftersales.refunded", "aftersales.closed", "aftersales.arbitrated",
    "fulfillment.inspection_failed", "fulfillment.inspection_passed", "trust.complaint_decided",
    "orders.delivered",
)  # fmt: skip


async def on_event(session: AsyncSession, event: events.Event) -> None:
    """Outbox subscriber: queue the event's order for a refresh. Idempotent (a redelivered event
    queues the same order again; the refresh reads state, not the event)."""
    order_id = event.payload.get("order_id")
    if isinstance(order_id, int):
        await repo.queue_orders(session, [order_id], utcnow())


async def queue_orders(
    session: AsyncSession, order_ids: Iterable[int], now: dt.datetime | None = None
) -> None:
    await repo.queue_orders(session, order_ids, now or utcnow())


async def derive_facts(session: AsyncSession, order_ids: list[int]) -> list[dict[str, int]]:
    """The fact rows of these orders' paid lines, from the source domains' current state."""
    lines = await orders.score_lines(session, order_ids)
    if not lines:
        return []
    ids = sorted({ln.order_id for ln in lines})
    ratings = await reviews.score_ratings(session, ids)
    requests = await aftersales.score_requests(session, ids)
    inspections = await fulfillment.score_inspections(session, ids)
    claims = await upheld_complaints(session, ids)
    by_order: dict[int, list[aftersales.ScoreRequest]] = {}
    for r in requests:
        by_order.setdefault(r.order_id, []).append(r)
    rows = []
    for ln in lines:
        mine = [r for r in by_order.get(ln.order_id, ()) if r.line_id in (None, ln.line_id)]
        quality = max((_ts(r.resolved_at) for r in mine if r.quality_refund), default=0)
        handled = [r for r in mine if r.handled_seconds is not None]
        last = max(handled, key=lambda r: (r.resolved_at, r.handled_seconds or 0), default=None)
        lost = max((_ts(r.lost_dispute_at) for r in mine if r.lost_dispute_at), default=0)
        inspected_at, failed = inspections.get(ln.order_id, (None, False))
        rating_product, rating_service = ratings.get(ln.line_id, (0, 0))
        row = {
            "line_id": ln.line_id, "order_id": ln.order_id, "shop_id": ln.shop_id, "product_id": ln.product_id,
            "creator_id": ln.creator_id or 0, "category_id": ln.category_id, "paid_ts": _ts(ln.paid_at),
            "ship_by_ts": _ts(ln.ship_by), "shipped_ts": _ts(ln.shipped_at), "delivered_ts": _ts(ln.delivered_at),
            "closed_ts": _ts(ln.closed_at), "rating_product": rating_product, "rating_service": rating_service,
            "quality_refund_ts": quality, "inspected_ts": _ts(inspected_at), "inspection_failed": int(failed),
            "aftersales_ts": _ts(last.resolved_at) if last else 0,
            "aftersales_s": (last.handled_seconds or 0) if last else 0,
            "dispute_lost_ts": lost, "false_claim_ts": _ts(claims.get(ln.line_id)),
        }  # fmt: skip
        row["last_ts"] = max(v for k, v in row.items() if k.endswith("_ts"))
        rows.append(row)
    return rows


async def refresh_dirty(session: AsyncSession, limit: int = 500, now: dt.datetime | None = None) -> int:
    """Refresh up to ``limit`` queued orders: their facts anew, then every entity they touch.
    Returns how many orders were refreshed (0: the queue is empty).

    An entity scored recently (``as_of_ts`` within ``STALE_S``) has its stored counts moved by the
    difference between these orders' old and new facts, both evaluated at its ``as_of_ts``: the
    cost is the orders', not the entity's (a shop with 100,000 lines is not read back for one
    review). Any other entity has all its facts read and is scored as of now."""
    now = now or utcnow()
    await repo.lock_scores(session)
    taken = await repo.take_dirty(session, limit)
    if not taken:
        return 0
    order_ids = [o for o, _ in taken]
    old = await repo.facts_of_orders(session, order_ids)
    rows = await derive_facts(session, order_ids)
    await repo.replace_facts(session, order_ids, rows)
    new = repo.fact_arrays(rows)
    for kind in KEY:
        await _rescore_kind(session, kind, old, new, now)
    await repo.clear_dirty(session, taken)
    return len(taken)


async def _rescore_kind(
    session: AsyncSession, kind: str, old: dict[str, np.ndarray], new: dict[str, np.ndarray], now: dt.datetime
) -> None:
    key = KEY[kind]
    ids = np.union1d(old[key], new[key])
    ids = ids[ids > 0]
    if not len(ids):
        return
    now_ts = int(now.timestamp())
    prior = await repo.scores_of(session, kind, ids.tolist())
    fresh = (prior["as_of_ts"] > 0) & (prior["as_of_ts"] >= now_ts - STALE_S)
    moved = prior["entity_id"][fresh]
    reread = np.setdiff1d(ids, moved)
    if len(reread):
        facts = await repo.facts_of(session, kind, reread.tolist(), now_ts - LONGEST)
        keep = np.isin(prior["entity_id"], reread)
        await _score_and_write(session, kind, facts, {n: v[keep] for n, v in prior.items()}, now, reread)
    if len(moved):
        base = {n: v[fresh] for n, v in prior.items()}
        counts = {name: base[name].copy() for name in scoring.COUNTS}
        for facts, sign in ((old, -1), (new, 1)):
            mine = np.isin(facts[key], moved)
            part = {n: v[mine] for n, v in facts.items()}
            # Each line evaluated at its entity's as_of_ts: the windows the stored counts are for.
            at = base["as_of_ts"][np.searchsorted(moved, part[key])]
            got, delta = scoring.aggregate(part, key, at)
            pos = np.searchsorted(moved, got)
            for name in scoring.COUNTS:
                np.add.at(counts[name], pos, sign * delta[name])
        await _write_scored(session, kind, moved, counts, base["category_id"], base, now, base["as_of_ts"])


async def _category_rules(session: AsyncSession) -> dict[int, tuple[str, scoring.Rules]]:
    """Category id -> (slug whose overrides apply, rules): a category's own overrides, else its
    parent's. Empty when no category has overrides."""
    cfg = config()
    if not cfg.categories:
        return {}
    cats = await catalog.list_categories(session, include_inactive=True)
    by_id = {c.id: c for c in cats}
    out: dict[int, tuple[str, scoring.Rules]] = {}
    for c in cats:
        node, seen = c, 0
        while node is not None and seen < 10:
            if node.slug in cfg.categories:
                out[c.id] = (node.slug, cfg.categories[node.slug])
                break
            node, seen = by_id.get(node.parent_id) if node.parent_id else None, seen + 1
    return out


async def _score_and_write(
    session: AsyncSession,
    kind: str,
    facts: dict[str, np.ndarray],
    prior: dict[str, np.ndarray],
    now: dt.datetime,
    entities: np.ndarray | None = None,
    conditions: tuple[dict[str, np.ndarray], dict[str, np.ndarray]] | None = None,
) -> int:
    """Score ``kind`` from all of ``facts`` as of ``now``, for the entities in them, in
    ``entities`` and in ``prior`` (an entity whose lines all left the windows drops to zero
    counts); ``conditions``: the facts' ``scoring.conditions`` if already worked out. Returns how
    many entities were scored."""
    now_ts = int(now.timestamp())
    key = KEY[kind]
    ids, counts = scoring.group(facts[key], *(conditions or scoring.conditions(facts, now_ts)))
    extra = [prior["entity_id"]] + ([entities] if entities is not None else [])
    all_ids = np.union1d(ids, np.concatenate(extra)) if any(len(e) for e in extra) else ids
    if len(all_ids) != len(ids):
        pos = np.searchsorted(all_ids, ids)
        counts = {name: _spread(values, pos, len(all_ids)) for name, values in counts.items()}
        ids = all_ids
    n = len(ids)
    # The rules' category: the entity's most delivered one, when any category has its own rules.
    if config().categories:
        category = scoring.main_category(facts, key, ids, now_ts)
    else:
        category = np.zeros(n, dtype=np.int64)
    await _write_scored(session, kind, ids, counts, category, prior, now, np.full(n, now_ts, dtype=np.int64))
    return n


async def _write_scored(
    session: AsyncSession,
    kind: str,
    ids: np.ndarray,
    counts: dict[str, np.ndarray],
    category: np.ndarray,
    prior: dict[str, np.ndarray],
    now: dt.datetime,
    as_of: np.ndarray,
) -> None:
    """Counts -> scores (under the rules of each entity's category), the flash-sale restriction
    (with its hysteresis from ``prior``), the rows written, and today's history for those whose
    score changed. ``ids`` sorted; ``prior`` a subset of them, sorted."""
    cfg = config()
    n = len(ids)
    was_restricted = np.zeros(n, dtype=bool)
    old_score = np.full(n, -2, dtype=np.int64)  # -2: no row yet (any score differs)
    old_dims = {d: np.full(n, -2, dtype=np.int64) for d in scoring.DIMENSIONS}
    if len(prior["entity_id"]):
        pos = np.searchsorted(ids, prior["entity_id"])
        was_restricted[pos] = prior["restricted"] > 0
        old_score[pos] = prior["score_c"]
        for d in scoring.DIMENSIONS:
            old_dims[d][pos] = prior[f"{d}_c"]
    rules_by_cat = await _category_rules(session)
    # A category whose overrides were removed since falls back to the defaults (category 0).
    category = (
        np.where(np.isin(category, list(rules_by_cat)), category, 0)
        if rules_by_cat
        else np.zeros(n, np.int64)
    )
    score_c = np.full(n, -1, dtype=np.int64)
    dims = {d: np.full(n, -1, dtype=np.int64) for d in scoring.DIMENSIONS}
    for cat in np.unique(category).tolist():
        mask = category == cat
        rules = rules_by_cat[cat][1] if cat else cfg.default
        result = scoring.score(kind, {name: values[mask] for name, values in counts.items()}, rules)
        score_c[mask] = result.score_c
        for d in scoring.DIMENSIONS:
            dims[d][mask] = result.dims_c[d]
    restricted = (
        scoring.restriction(counts, was_restricted, cfg.effects)
        if kind == "shop"
        else np.zeros(n, dtype=bool)
    )
    arrays = {"entity_id": ids, "category_id": category, "score_c": score_c,
              **{f"{d}_c": dims[d] for d in scoring.DIMENSIONS}, **counts,
              "restricted": restricted.astype(np.int64), "as_of_ts": as_of}  # fmt: skip
    await repo.write_scores(session, kind, arrays, now)
    changed = old_score != score_c
    for d in scoring.DIMENSIONS:
        changed |= old_dims[d] != dims[d]
    changed &= ~((old_score == -2) & (score_c == -1))  # a new entity still "new": nothing to chart
    await repo.write_history(
        session,
        kind,
        _day(now),
        {
            name: arrays[name][changed]
            for name in ("entity_id", "score_c", *(f"{d}_c" for d in scoring.DIMENSIONS))
        },
    )


def _spread(values: np.ndarray, pos: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n, dtype=values.dtype)
    out[pos] = values
    return out


Progress = Callable[[str, int, int], None]


async def recompute_all(
    sessionmaker: async_sessionmaker[AsyncSession], progress: Progress | None = None, now: dt.datetime | None = None,
    *, nightly: bool = False,
) -> dict[str, int]:  # fmt: skip
    """Rescore every shop, product and creator from the facts (windows as of ``now``), in one
    transaction. ``progress(stage, done, total)`` reports as it goes. ``nightly``: only if today's
    (Asia/Shanghai) run has not happened yet; returns {} when it has."""
    now = now or utcnow()
    now_ts = int(now.timestamp())
    out: dict[str, int] = {}
    async with transaction(sessionmaker) as session:
        await repo.lock_scores(session)
        claimed = await repo.claim_recompute(session, _day(now), now)
        if nightly and not claimed:
            return {}
        if progress:
            progress("facts", 0, 1)
        facts = await repo.facts_window(session, now_ts - LONGEST)
        out["facts"] = len(facts["shop_id"])
        if progress:
            progress("facts", 1, 1)
        conditions = scoring.conditions(facts, now_ts)  # the same for every kind: worked out once
        for i, kind in enumerate(KEY):
            prior = await repo.all_scores(session, kind)
            out[kind] = await _score_and_write(session, kind, facts, prior, now, conditions=conditions)
            if progress:
                progress("scores", i + 1, len(KEY))
        await repo.finish_recompute(session, _day(now), utcnow(), sum(out[k] for k in KEY))
    return out


async def nightly_due(
    sessionmaker: async_sessionmaker[AsyncSession], hour: int, now: dt.datetime | None = None
) -> bool:
    """Whether today's full recompute is due: past ``hour`` o'clock (Asia/Shanghai) and not run."""
    now = now or utcnow()
    if now.astimezone(SHANGHAI).hour < hour:
        return False
    async with transaction(sessionmaker) as session:
        last = await repo.last_recompute(session)
    return last is None or last.day < _day(now)


async def rebuild_facts(
    sessionmaker: async_sessionmaker[AsyncSession], progress: Progress | None = None, batch: int = 2000
) -> int:
    """Derive every paid order's facts anew from the source domains (a repair after a bug or a
    restored backup; the nightly recompute does not need it). Batches of ``batch`` orders, each in
    its own transaction. Returns the number of fact rows written."""
    async with transaction(sessionmaker) as session:
        lo, hi = await orders.order_id_range(session)
    written, after = 0, lo - 1
    total = max(0, hi - lo + 1)
    while after < hi:
        upto = min(hi, after + batch)
        async with transaction(sessionmaker) as session:
            ids = list(range(after + 1, upto + 1))
            rows = await derive_facts(session, ids)
            await repo.replace_facts(session, ids, rows)
            written += len(rows)
        after = upto
        if progress:
            progress("facts", after - lo + 1, total)
    async with transaction(sessionmaker) as session:
        await repo.analyze_facts(session)
    return written


async def refresh_pending(
    sessionmaker: async_sessionmaker[AsyncSession], batch: int = 500, now: dt.datetime | None = None
) -> int:
    """The job: refresh queued orders until the queue is empty, a batch per transaction."""
    done = 0
    while True:
        async with transaction(sessionmaker) as session:
            n = await refresh_dirty(session, batch, now)
        done += n
        if n < batch:
            return done


# ---- reading scores ---------------------------------------------------------------------------


def _c(value: int | None) -> str | None:
    return None if value is None else f"{value // 100}.{value % 100:02d}"


def _score_out(kind: str, entity_id: int, row: Any, rules: scoring.Rules) -> ScoreOut:
    cfg = config()
    weights = rules.totals[kind]
    score_c = row.score_c if row is not None else None
    dims = [DimOut(d, _c(getattr(row, f"{d}_c")) if row is not None else None, w)
            for d, w in weights.items() if w]  # fmt: skip
    trusted = kind == "shop" and score_c is not None and score_c >= cfg.effects["trusted_shop_min"]
    if row is not None and row.flash_sale_restricted:
        trusted = False
    return ScoreOut(
        entity_type=kind, entity_id=entity_id, status="new" if score_c is None else "scored",
        score=_c(score_c), score_c=score_c, dims=dims, trusted=trusted,
        orders_90=row.delivered_90 if row is not None else 0, min_orders=rules.min_orders[kind],
        computed_at=row.computed_at if row is not None else None,
        as_of=dt.datetime.fromtimestamp(row.as_of_ts, dt.UTC) if row is not None and row.as_of_ts else None,
    )  # fmt: skip


async def score_of(session: AsyncSession, entity_type: str, entity_id: int) -> ScoreOut:
    kind = _kind(entity_type)
    row = await repo.get_score(session, kind, entity_id)
    return _score_out(kind, entity_id, row, (await _row_rules(session, row))[1])


async def scores_of(session: AsyncSession, entity_type: str, ids: Iterable[int]) -> dict[int, ScoreOut]:
    kind = _kind(entity_type)
    wanted = list(dict.fromkeys(ids))
    rows = {r.entity_id: r for r in await repo.get_scores(session, kind, wanted)}
    by_cat = await _category_rules(session)
    return {
        i: _score_out(
            kind,
            i,
            rows.get(i),
            by_cat.get(getattr(rows.get(i), "category_id", 0), ("", config().default))[1],
        )
        for i in wanted
    }


async def require_may_view(session: AsyncSession, actor: Principal, entity_type: str, entity_id: int) -> None:
    """The drill-down is for the shop's people (shop, its products), the creator, and ops."""
    kind = _kind(entity_type)
    if actor.is_ops:
        return
    if kind == "creator":
        if actor.id != entity_id:
            raise Forbidden("only the creator and ops can see this breakdown", code="not_yours")
        return
    shop_id = entity_id
    if kind == "product":
        cards = await catalog.product_cards(session, [entity_id])
        if not cards:
            raise NotFound("no such product", code="product_not_found")
        shop_id = cards[0].shop_id
    if not await catalog.is_shop_member(session, actor, shop_id):
        raise Forbidden("only the shop's people and ops can see this breakdown", code="not_yours")


def _display(unit: str, value: float | None) -> str:
    if value is None:
        return "—"
    if unit == "rate":
        return f"{value * 100:.2f}%"
    if unit == "hours":
        return f"{value:.2f} h"
    return f"{value:.2f}"


_FRACTION = {
    "negative_review_rate": ("negative_60", "delivered_60"),
    "quality_refund_rate": ("quality_refunds_60", "delivered_60"),
    "inspection_failure_rate": ("inspection_failed_60", "inspected_60"),
    "on_time_shipping_rate": ("shipped_on_time_30", "ship_due_30"),
    "delivery_hours": ("delivery_s_30", "delivered_30"),
    "handling_hours": ("aftersales_s_30", "aftersales_30"),
    "dispute_rate": ("disputes_lost_30", "delivered_30"),
    "service_rating": ("service_sum_30", "service_rated_30"),
    "false_claim_rate": ("false_claims_60", "delivered_60"),
}


async def breakdown(
    session: AsyncSession, actor: Principal, entity_type: str, entity_id: int
) -> BreakdownOut:
    """Total -> dimensions -> indicators (value, points, window, curve, weight, hint), from the
    counts stored with the score, through the same arithmetic that produced it."""
    await require_may_view(session, actor, entity_type, entity_id)
    kind = entity_type
    row = await repo.get_score(session, kind, entity_id)
    slug, rules = await _row_rules(session, row)
    counts = {
        name: np.array([getattr(row, name) if row is not None else 0], dtype=np.int64)
        for name in scoring.COUNTS
    }
    result = scoring.score(kind, counts, rules)
    dimensions = []
    for dim, weight in rules.totals[kind].items():
        if not weight:
            continue
        indicators = []
        for key, w in rules.dimensions[dim].items():
            value, applies = result.values[key]
            num, den = _FRACTION[key]
            unit = UNITS[key]
            shown = float(value[0]) if applies[0] else None
            indicators.append(IndicatorOut(
                key=key, dimension=dim, unit=unit, window_days=scoring.INDICATORS[key][2], applies=bool(applies[0]),
                value=round(shown, 6) if shown is not None else None, display=_display(unit, shown),
                numerator=int(counts[num][0]), denominator=int(counts[den][0]),
                points=_c(int(scoring.hundredths(result.points[key])[0])) if applies[0] else None,
                weight_bp=w, curve=[[x, y] for x, y in zip(*rules.curves[key], strict=True)], hint=HINTS[key],
            ))  # fmt: skip
        dim_c = getattr(row, f"{dim}_c") if row is not None else None
        dimensions.append(DimensionOut(dim, _c(dim_c), weight, indicators))
    score = _score_out(kind, entity_id, row, rules)
    restricted = bool(row.flash_sale_restricted) if (row is not None and kind == "shop") else False
    days = scoring.settlement_days(score.score_c, config().effects) if kind == "shop" else None
    return BreakdownOut(score=score, dimensions=dimensions, rules=slug, flash_sale_restricted=restricted,
                        settlement_days=days)  # fmt: skip


async def _row_rules(session: AsyncSession, row: Any) -> tuple[str, scoring.Rules]:
    if row is None or not row.category_id:
        return "default", config().default
    found = (await _category_rules(session)).get(row.category_id)
    return found if found else ("default", config().default)


def _threshold(rules: scoring.Rules, key: str) -> float:
    """For an hours indicator: the x of the first knot worth fewer than 4 points (96 h to delivery,
    48 h handling by default); lines beyond it are the ones the drill-down flags."""
    xs, ys = rules.curves[key]
    for x, y in zip(xs, ys, strict=True):
        if y < 4:
            return x
    return xs[-1]


def _line_detail(key: str, f: Any) -> str:
    if key in ("negative_review_rate", "service_rating"):
        stars = f.rating_product if key == "negative_review_rate" else f.rating_service
        return f"rated {stars}★" if stars else "not reviewed"
    if key == "quality_refund_rate":
        return "refunded: faulty, wrong or not as described" if f.quality_refund_ts else "no quality refund"
    if key == "inspection_failure_rate":
        return "failed inspection" if f.inspection_failed else "passed inspection"
    if key in ("on_time_shipping_rate",):
        if not f.shipped_ts:
            return "not shipped; ship-by passed"
        late = f.shipped_ts - f.ship_by_ts
        return f"shipped {late / 3600:.1f} h late" if late > 0 else "shipped on time"
    if key == "delivery_hours":
        return f"delivered {(f.delivered_ts - f.paid_ts) / 3600:.1f} h after payment"
    if key == "handling_hours":
        return f"handled in {f.aftersales_s / 3600:.1f} h"
    if key == "dispute_rate":
        return "dispute decided for the buyer" if f.dispute_lost_ts else "no dispute lost"
    return "complaint upheld" if f.false_claim_ts else "no complaint upheld"


def _line_at(key: str, f: Any) -> int:
    return {
        "quality_refund_rate": f.quality_refund_ts or f.delivered_ts,
        "inspection_failure_rate": f.inspected_ts,
        "on_time_shipping_rate": f.paid_ts,
        "handling_hours": f.aftersales_ts,
        "dispute_rate": f.dispute_lost_ts or f.delivered_ts,
        "false_claim_rate": f.false_claim_ts or f.delivered_ts,
    }.get(key, f.delivered_ts)


async def indicator_lines(
    session: AsyncSession, actor: Principal, entity_type: str, entity_id: int, indicator: str,
    before: int | None, limit: int, *, against_only: bool = True, now: dt.datetime | None = None,
) -> IndicatorLinesOut:  # fmt: skip
    """The order lines behind one indicator, newest first: by default those counting against it
    (the ones to fix), else every line it was computed over."""
    await require_may_view(session, actor, entity_type, entity_id)
    if indicator not in scoring.INDICATORS:
        raise NotFound("no such indicator", code="indicator_not_found")
    if not 1 <= limit <= 100:
        raise ValidationFailed("limit: between 1 and 100", field="limit")
    row = await repo.get_score(session, entity_type, entity_id)
    _slug, rules = await _row_rules(session, row)
    # The windows of the stored counts, so the lines listed are the ones behind the figures shown.
    now_ts = row.as_of_ts if row is not None and row.as_of_ts else int((now or utcnow()).timestamp())
    population, against = repo.indicator_filter(indicator, now_ts, _threshold(rules, indicator))
    conditions = [population, against] if against_only else [population]
    facts = await repo.entity_lines(session, entity_type, entity_id, conditions, before, limit + 1)
    more = len(facts) > limit
    facts = facts[:limit]
    titles = await orders.line_titles(session, [f.line_id for f in facts])
    against_ids = set()
    if not against_only and facts:
        hits = await repo.entity_lines(session, entity_type, entity_id, [population, against],
                                       facts[0].line_id + 1, len(facts) * 4 + 10)  # fmt: skip
        against_ids = {f.line_id for f in hits}
    items = [
        LineRef(
            order_id=f.order_id,
            line_id=f.line_id,
            title=titles.get(f.line_id, ""),
            at=dt.datetime.fromtimestamp(_line_at(indicator, f), dt.UTC) if _line_at(indicator, f) else None,
            detail=_line_detail(indicator, f),
            counts_against=against_only or f.line_id in against_ids,
        )  # fmt: skip
        for f in facts
    ]
    return IndicatorLinesOut(indicator, items, encode_cursor({"before": facts[-1].line_id}) if more else None)


async def history(session: AsyncSession, entity_type: str, entity_id: int, days: int = 90,
                  now: dt.datetime | None = None) -> list[HistoryPoint]:  # fmt: skip
    """One point per day of the last ``days`` (1-365), each day's score carried forward from the
    last day it changed; None while "new"."""
    kind = _kind(entity_type)
    if not 1 <= days <= 365:
        raise ValidationFailed("days: between 1 and 365", field="days")
    today = _day(now or utcnow())
    start = today - dt.timedelta(days=days - 1)
    before, rows = await repo.history(session, kind, entity_id, start)
    changes = {r.day: r.score_c for r in rows}
    current = before.score_c if before is not None else None
    out = []
    for i in range(days):
        day = start + dt.timedelta(days=i)
        if day in changes:
            current = changes[day]
        out.append(HistoryPoint(day, _c(current)))
    return out


# ---- effects ----------------------------------------------------------------------------------


async def _score_c(session: AsyncSession, kind: str, entity_id: int) -> int | None:
    row = await repo.get_score(session, kind, entity_id)
    return row.score_c if row is not None else None


async def quality_multiplier(session: AsyncSession, entity_type: str, entity_id: int) -> float:
    """How much the feed tilts traffic toward (>1) or away from (<1) this entity; neutral for
    entities still "new"."""
    return scoring.quality_multiplier(
        await _score_c(session, _kind(entity_type), entity_id), config().effects
    )


async def quality_multipliers(
    session: AsyncSession, entity_type: str, ids: Iterable[int]
) -> dict[int, float]:
    """``quality_multiplier`` for many entities in one query (the feed tilts a page of candidates
    at once); every id asked for gets a value, neutral for the "new"."""
    kind = _kind(entity_type)
    wanted = list(dict.fromkeys(ids))
    scored = await repo.score_cs(session, kind, wanted)
    values = scoring.quality_multipliers([scored.get(i) for i in wanted], config().effects)
    return dict(zip(wanted, values, strict=True))


async def settlement_delay_days(session: AsyncSession, shop_id: int) -> int:
    """Days after completion before the shop's escrow is split, by its score tier."""
    return scoring.settlement_days(await _score_c(session, "shop", shop_id), config().effects)


async def flash_sales_blocked(session: AsyncSession, shop_id: int) -> bool:
    row = await repo.get_score(session, "shop", shop_id)
    return bool(row is not None and row.flash_sale_restricted)


async def alliance_eligible(session: AsyncSession, creator_id: int) -> bool:
    effects = config().effects
    score_c = await _score_c(session, "creator", creator_id)
    if score_c is None:
        return bool(effects["alliance_allow_new"])
    return score_c >= effects["alliance_min"]


# ---- complaints ---------------------------------------------------------------------------------
# Buyers' complaints that goods were not as the creator described them (虚假宣传, docs/scores.md):
# filed from a received order line attributed to a creator, within COMPLAINT_WINDOW_DAYS of
# delivery, one per line (a unique constraint decides racing twins); ops uphold or dismiss each
# once (a conditional UPDATE decides racing deciders). An upheld complaint counts against the
# creator's reputation score: the facts read ``upheld_complaints``.

COMPLAINT_WINDOW_DAYS = 30
COMPLAINT_STATUSES = tuple(s.value for s in ComplaintStatus)


def complaint_out(c: Complaint) -> ComplaintOut:
    return ComplaintOut(
        id=c.id, order_id=c.order_id, line_id=c.order_line_id, product_id=c.product_id, shop_id=c.shop_id,
        creator_id=c.creator_id, title=c.title, claim=c.claim, status=c.status, created_at=c.created_at,
        decided_at=c.decided_at, decision_note=c.decision_note,
    )  # fmt: skip


def _complaint_payload(c: Complaint, **extra: object) -> dict[str, object]:
    return {"complaint_id": c.id, "order_id": c.order_id, "line_id": c.order_line_id,
            "creator_id": c.creator_id, **extra}  # fmt: skip


def _already_complained() -> Conflict:
    return Conflict("you have already complained about this item", code="already_complained")


async def file_complaint(
    session: AsyncSession,
    buyer: Principal,
    order_id: int,
    line_id: int,
    data: ComplaintIn,
    now: dt.datetime | None = None,
) -> ComplaintOut:
    """The buyer complains that a line was not as its creator described it. 404 ``order_not_found``
    unless the line is on the buyer's order; 409 ``no_creator`` (no creator sold it),
    ``not_delivered``, ``complaint_window_closed`` (more than 30 days after delivery),
    ``already_complained``; 422 for a claim empty or over 500 characters once trimmed."""
    data = validated(data)
    claim = data.claim.strip()
    if not claim:
        raise ValidationFailed("claim: say what was claimed and what arrived", field="claim")
    order = (await orders.orders_by_ids(session, [order_id])).get(order_id)
    if order is None or order.buyer_id != buyer.id:
        raise NotFound(f"order {order_id} not found", code="order_not_found")
    line = next((line for line in order.lines if line.id == line_id), None)
    if line is None:
        raise NotFound(f"order {order_id} has no line {line_id}", code="order_not_found")
    if line.creator_id is None:
        raise Conflict("no creator sold this item: there is no claim of theirs to complain about",
                       code="no_creator")  # fmt: skip
    # Received: delivered, or confirmed by the buyer before the carrier said so.
    received = order.delivered_at or order.completed_at
    if received is None:
        raise Conflict("you can complain once the item has arrived", code="not_delivered")
    now = now or utcnow()
    if now > received + dt.timedelta(days=COMPLAINT_WINDOW_DAYS):
        raise Conflict(f"complaints are taken within {COMPLAINT_WINDOW_DAYS} days of delivery",
                       code="complaint_window_closed")  # fmt: skip
    if await repo.complaint_of_line(session, line.id) is not None:
        raise _already_complained()
    row = Complaint(
        order_id=order.id, order_line_id=line.id, buyer_id=buyer.id, creator_id=line.creator_id,
        shop_id=order.shop_id, product_id=line.product_id, title=line.title[:120], claim=claim,
        status=ComplaintStatus.pending, created_at=now, decision_note="",
    )  # fmt: skip
    # A twin that committed first (a double submit, two devices) wins; this one is a 409.
    if await add_once(session, row, lambda: repo.complaint_of_line(session, line.id)) is not None:
        raise _already_complained()
    events.record(session, "trust.complaint_filed", _complaint_payload(row))
    return complaint_out(row)


async def complaint_of_line(session: AsyncSession, buyer: Principal, line_id: int) -> ComplaintOut | None:
    """The complaint on this line, for the buyer who filed it (and ops); None for anyone else."""
    row = await repo.complaint_of_line(session, line_id)
    if row is None or not (row.buyer_id == buyer.id or buyer.is_ops):
        return None
    return complaint_out(row)


async def list_complaints(
    session: AsyncSession, actor: Principal, status: str | None, before: int | None, limit: int
) -> ComplaintPage:
    """Newest first: every complaint for ops (``status``: pending, upheld or dismissed), the
    buyer's own for anyone else. 422 for another status or a limit outside 1-100."""
    status = status or None
    if status is not None and status not in COMPLAINT_STATUSES:
        raise ValidationFailed(f"status: one of {', '.join(COMPLAINT_STATUSES)}", field="status")
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationFailed(f"limit: between 1 and {MAX_LIMIT}", field="limit")
    rows = await repo.list_complaints(
        session, status=status, buyer_id=None if actor.is_ops else actor.id, before_id=before, limit=limit + 1
    )
    items, cursor = trim_page([complaint_out(r) for r in rows], limit)
    return ComplaintPage(items, cursor)


async def decide_complaint(
    session: AsyncSession,
    actor: Principal,
    complaint_id: int,
    data: ComplaintDecisionIn,
    now: dt.datetime | None = None,
) -> ComplaintOut:
    """Ops uphold or dismiss a pending complaint, once: 403 ``ops_only``, 404
    ``complaint_not_found``, 409 ``already_decided`` (also for the loser of two racing decisions)."""
    if not actor.is_ops:
        raise Forbidden("only ops decide complaints", code="ops_only")
    data = validated(data)
    row = await repo.get_complaint(session, complaint_id)
    if row is None:
        raise NotFound(f"complaint {complaint_id} not found", code="complaint_not_found")
    decided = Conflict(f"this complaint was {row.status} already", code="already_decided")
    if row.status != ComplaintStatus.pending:
        raise decided
    now = now or utcnow()
    if not await repo.decide_complaint(session, row.id, data.decision, data.note.strip(), actor.id, now):
        raise Conflict("this complaint was decided meanwhile", code="already_decided")
    row = await repo.get_complaint(session, complaint_id)
    assert row is not None
    events.record(session, "trust.complaint_decided", _complaint_payload(row, decision=data.decision))
    return complaint_out(row)


async def upheld_complaints(session: AsyncSession, order_ids: list[int]) -> dict[int, dt.datetime]:
    """Order line id -> when its complaint was upheld, over these orders (for the facts)."""
    return await repo.upheld_complaints(session, order_ids)


# The shop's settlement delay follows its score tier (orders cannot import trust: it asks through
# this hook).
orders.register_settlement_delay(settlement_delay_days)
