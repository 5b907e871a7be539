"""Scores from real source rows, on SQLite and PostgreSQL: a shop with known orders checked to the
hundredth at every level, the incremental path (events -> queue -> refresh) giving exactly what a
full recompute from scratch gives, and replayed or reordered events changing nothing."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select, update

from tests.helpers import run
from tests.trust.world import World
from trustlive.accounts.service import Principal
from trustlive.db import create_engine, create_sessionmaker, transaction, utcnow
from trustlive.events import EventBus, OutboxRelay, record
from trustlive.trust import service as trust
from trustlive.trust.models import TrustFact, TrustScore, TrustScoreHistory

NOW = utcnow().replace(second=0, microsecond=0)
OPS = Principal(id=1, username="ops", display_name="ops", roles=frozenset({"ops"}))


def ago(days: float = 0, hours: float = 0) -> dt.datetime:
    return NOW - dt.timedelta(days=days, hours=hours)


async def build(session: Any) -> dict[str, int]:
    """The shop of docs/scores.md's test: 61 paid orders of one product, 20 attributed to a creator."""
    w = World(session)
    owner, creator = await w.user("owner"), await w.user("creator")
    cat = await w.category(f"apparel-{owner}")
    shop = await w.shop(owner)
    product = await w.product(shop, cat)
    lines = []
    for i in range(40):  # paid 20 days ago, shipped in 10 h (ship-by 48 h), delivered at 60 h
        lines.append(await w.order(shop, product, cat, paid=ago(20), creator_id=creator if i < 20 else None))
    for _ in range(4):  # shipped 2 h late, delivered at 70 h
        await w.order(shop, product, cat, paid=ago(20), ship_hours=50, deliver_hours=70)
    await w.order(shop, product, cat, paid=ago(3), ship_hours=None)  # not shipped, ship-by passed
    await w.order(shop, product, cat, paid=ago(hours=1), ship_hours=None)  # not due yet
    for _ in range(10):  # in the 60- and 90-day windows, not the 30-day ones
        await w.order(shop, product, cat, paid=ago(50))
    for _ in range(5):  # out of every window
        await w.order(shop, product, cat, paid=ago(100))
    # Ratings: two 1-star reviews, one edited from 2 to 5 stars (still negative), 27 good ones,
    # two with a 3-star service rating.
    for i, (stars, service, first) in enumerate([(1, 5, None), (1, 5, None), (5, 5, 2)] + [(5, 5, None)] * 27
                                                 + [(4, 3, None)] * 2):  # fmt: skip
        await w.review(*lines[i], stars, service, first=first, shop_id=shop, product_id=product[0])
    # After-sales, opened 15 days ago: two quality refunds (20 h, 30 h), a no-reason refund
    # (10 h), a not-as-described dispute ops decided for the buyer (40 h).
    await w.aftersales(*lines[33], shop, reason="quality", opened=ago(15), hours=20)
    await w.aftersales(*lines[34], shop, reason="quality", opened=ago(15), hours=30)
    await w.aftersales(*lines[35], shop, reason="no_reason", opened=ago(15), hours=10)
    await w.aftersales(*lines[36], shop, reason="not_as_described", opened=ago(15), hours=40,
                       resolution="arbitrated_buyer", arbitrated=True)  # fmt: skip
    # A withdrawn request is not the shop's handling; a rejected not-received claim is not quality.
    await w.aftersales(*lines[37], shop, reason="quality", opened=ago(15), hours=5, status="closed",
                       resolution="withdrawn")  # fmt: skip
    await w.complaint(*lines[5], creator, shop, product[0], decided=ago(4))
    await w.complaint(*lines[6], creator, shop, product[0], decided=ago(4), status="dismissed")
    return {"shop": shop, "product": product[0], "sku": product[1], "category": cat, "creator": creator, "owner": owner,
            "orders": w.orders}  # fmt: skip


async def _world(db_url: str) -> tuple[Any, Any, dict[str, Any]]:
    engine = create_engine(db_url)
    sessionmaker = create_sessionmaker(engine)
    async with transaction(sessionmaker) as session:
        ids = await build(session)
    return engine, sessionmaker, ids


async def _through_events(sessionmaker: Any, order_ids: list[int], shuffle: int | None = None) -> None:
    """What the source domains' events do: the relay hands them to trust.on_event, then the job runs."""
    topics = ["orders.paid", "orders.shipped", "orders.delivered", "reviews.posted", "aftersales.refunded"]
    items = [(t, {"order_id": o}) for o in order_ids for t in topics]
    if shuffle is not None:
        random.Random(shuffle).shuffle(items)
    async with transaction(sessionmaker) as session:
        for topic, payload in items:
            record(session, topic, payload)
    bus = EventBus()
    for topic in trust.SCORED_TOPICS:
        bus.subscribe(topic, trust.on_event)
    await OutboxRelay(sessionmaker, bus).drain()
    await trust.refresh_pending(sessionmaker, batch=7, now=NOW)  # small batches: several passes


async def _snapshot(sessionmaker: Any) -> dict[Any, tuple]:
    async with transaction(sessionmaker) as session:
        rows = (await session.scalars(select(TrustScore))).all()
        facts = (await session.scalars(select(TrustFact))).all()
    out: dict[Any, tuple] = {}
    for r in rows:
        out[(r.entity_type, r.entity_id)] = tuple(
            getattr(r, c.name) for c in TrustScore.__table__.c if c.name != "computed_at"
        )
    for f in facts:
        out[("fact", f.line_id)] = tuple(getattr(f, c.name) for c in TrustFact.__table__.c)
    return out


def test_a_known_shop_to_the_hundredth(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        engine, sessionmaker, ids = await _world(db_url)
        try:
            await trust.rebuild_facts(sessionmaker)
            await trust.recompute_all(sessionmaker, now=NOW)
            async with transaction(sessionmaker) as session:
                b = await trust.breakdown(session, OPS, "shop", ids["shop"])
                product = await trust.score_of(session, "product", ids["product"])
                creator = await trust.breakdown(session, OPS, "creator", ids["creator"])
                history = await trust.history(session, "shop", ids["shop"], 3, now=NOW)
                lines = await trust.indicator_lines(session, OPS, "shop", ids["shop"], "negative_review_rate", None, 10,
                                                    now=NOW)  # fmt: skip
        finally:
            await engine.dispose()
        assert b.score.status == "scored" and b.score.orders_90 == 54 and b.score.min_orders == 30
        ind = {i.key: i for d in b.dimensions for i in d.indicators}
        figures = {k: (i.display, i.numerator, i.denominator, i.points) for k, i in ind.items()}
        assert figures == {
            "negative_review_rate": ("5.56%", 3, 54, "2.15"),
            "quality_refund_rate": ("5.56%", 3, 54, "1.89"),
            "inspection_failure_rate": ("—", 0, 0, None),
            "on_time_shipping_rate": ("88.89%", 40, 45, "1.89"),
            "delivery_hours": ("60.91 h", 2680 * 3600, 44, "4.46"),
            "handling_hours": ("25.00 h", 100 * 3600, 4, "3.96"),
            "dispute_rate": ("2.27%", 1, 44, "0.00"),
            "service_rating": ("4.88", 156, 32, "4.75"),
        }
        assert [(d.key, d.score, d.weight_bp) for d in b.dimensions] == [
            ("product", "2.05", 4000), ("logistics", "2.92", 3000), ("aftersales", "2.53", 3000)
        ]  # fmt: skip
        assert b.score.score == "2.46" and b.score.score_c == 246 and not b.score.trusted
        assert b.settlement_days == 20 and b.flash_sale_restricted is False
        assert product.status == "scored" and product.score == "2.05"
        # The creator: 20 lines (below 30, so "new"), one upheld complaint, one dismissed.
        assert creator.score.status == "new" and creator.score.orders_90 == 20
        claims = {i.key: i for d in creator.dimensions for i in d.indicators}["false_claim_rate"]
        assert (claims.numerator, claims.denominator, claims.display) == (1, 20, "5.00%")
        assert [p.score for p in history] == [None, None, "2.46"]
        assert {ln.line_id for ln in lines.items} and all(ln.counts_against for ln in lines.items)
        assert len(lines.items) == 3 and {ln.detail for ln in lines.items} == {"rated 1★", "rated 2★"}

    run(scenario())


def test_incremental_equals_recompute_and_replays_change_nothing(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        engine, sessionmaker, ids = await _world(db_url)
        try:
            await _through_events(sessionmaker, ids["orders"])
            incremental = await _snapshot(sessionmaker)
            assert incremental[("shop", ids["shop"])][3] == 246  # score_c
            # The same events again, twice over and in another order: nothing moves.
            await _through_events(sessionmaker, ids["orders"], shuffle=7)
            await _through_events(sessionmaker, list(reversed(ids["orders"])), shuffle=11)
            assert await _snapshot(sessionmaker) == incremental
            # From scratch: no facts, no scores; rebuild the facts and recompute everything.
            async with transaction(sessionmaker) as session:
                for table in (TrustFact, TrustScore, TrustScoreHistory):
                    await session.execute(delete(table))
            await trust.rebuild_facts(sessionmaker, batch=5)
            await trust.recompute_all(sessionmaker, now=NOW)
            assert await _snapshot(sessionmaker) == incremental
        finally:
            await engine.dispose()

    run(scenario())


def test_a_refresh_moves_the_counts_as_of_the_last_recompute(db_url: str, tmp_path: Path) -> None:
    """Hours after a full recompute at T, new orders arrive with a 1-star review, a quality refund
    and an upheld complaint: the touched shop, product and creator keep their windows at T
    (as_of_ts) and end exactly where a recompute at T from scratch ends. A score last evaluated
    longer ago than STALE_S is instead read afresh, as of now."""
    at = NOW - dt.timedelta(hours=5)
    at_ts, now_ts = int(at.timestamp()), int(NOW.timestamp())

    async def scenario() -> None:
        engine, sessionmaker, ids = await _world(db_url)
        key = {"shop": ids["shop"], "product": ids["product"], "creator": ids["creator"]}
        try:
            await trust.rebuild_facts(sessionmaker, batch=50)
            await trust.recompute_all(sessionmaker, now=at)
            before = await _snapshot(sessionmaker)
            async with transaction(sessionmaker) as session:
                w = World(session)
                sku = (ids["product"], ids["sku"])
                new = [await w.order(ids["shop"], sku, ids["category"], paid=ago(4), creator_id=ids["creator"])
                       for _ in range(3)]  # fmt: skip
                await w.review(*new[0], 1, 2, shop_id=ids["shop"], product_id=ids["product"])
                await w.aftersales(*new[1], ids["shop"], reason="quality", opened=ago(1), hours=3)
                await w.complaint(*new[2], ids["creator"], ids["shop"], ids["product"], decided=ago(hours=2))
                # Delivered 60 days and 2 hours ago: inside the 60-day windows as of T, not as of now.
                edge = await w.order(
                    ids["shop"], sku, ids["category"], paid=ago(60, hours=62), creator_id=ids["creator"]
                )
                await w.review(*edge, 1, 5, shop_id=ids["shop"], product_id=ids["product"])
                new.append(edge)
            await _through_events(sessionmaker, [o for o, _ in new])
            moved = await _snapshot(sessionmaker)
            for kind, entity in key.items():
                row = moved[(kind, entity)]
                assert row[-1] == at_ts  # as_of_ts: still the recompute's
                assert row[_col("delivered_90")] == before[(kind, entity)][_col("delivered_90")] + 4
            assert moved[("shop", ids["shop"])][_col("negative_60")] == 5
            assert moved[("creator", ids["creator"])][_col("false_claims_60")] == 2
            # A recompute at T from scratch ends in the same place.
            async with transaction(sessionmaker) as session:
                await session.execute(delete(TrustScore))
            await trust.recompute_all(sessionmaker, now=at)
            assert await _snapshot(sessionmaker) == moved

            # The shop's windows are old (no nightly recompute for two days): read afresh, as of now.
            async with transaction(sessionmaker) as session:
                await session.execute(
                    update(TrustScore)
                    .where(TrustScore.entity_type == "shop")
                    .values(as_of_ts=at_ts - 2 * 86_400)
                )
            await _through_events(sessionmaker, [new[0][0]])
            fresh = await _snapshot(sessionmaker)
            assert fresh[("shop", ids["shop"])][-1] == now_ts
            assert fresh[("product", ids["product"])][-1] == at_ts
            await trust.recompute_all(sessionmaker, now=NOW)
            assert (await _snapshot(sessionmaker))[("shop", ids["shop"])] == fresh[("shop", ids["shop"])]
        finally:
            await engine.dispose()

    run(scenario())


def _col(name: str) -> int:
    """Where a column sits in a _snapshot tuple (computed_at left out)."""
    return [c.name for c in TrustScore.__table__.c if c.name != "computed_at"].index(name)
