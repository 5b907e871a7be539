"""The real path from the source domains to a score, on SQLite and PostgreSQL: an order bought in
a creator's live room, paid, shipped, received and reviewed through the services; their events go
through the outbox to the trust subscriber and the refresh job; the facts and scores that come
out are the ones those actions imply (an edited review stays negative)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from tests.helpers import run
from tests.orders.test_service import order_in, pay
from tests.orders.world import build
from trustlive.db import transaction
from trustlive.events import EventBus, OutboxRelay
from trustlive.orders import service as orders
from trustlive.orders.schemas import ShipIn
from trustlive.reviews import service as reviews
from trustlive.reviews.schemas import ReviewIn, ReviewPatch
from trustlive.trust import service as trust
from trustlive.trust.models import TrustDirtyOrder, TrustFact


def test_service_events_reach_the_scores(db_url: str, tmp_path: Path, settings) -> None:  # type: ignore[no-untyped-def]
    async def relay(w) -> int:  # type: ignore[no-untyped-def]
        bus = EventBus()
        for topic in trust.SCORED_TOPICS:
            bus.subscribe(topic, trust.on_event)
        await OutboxRelay(w.sessionmaker, bus).drain()
        return await trust.refresh_pending(w.sessionmaker)

    async def scenario() -> None:
        w = await build(db_url)
        try:
            body = order_in(w, 0, (w.skus[0], 1), source="live_room", creator_id=w.creator.id)
            async with transaction(w.sessionmaker) as s:
                placed = await orders.place_order(s, w.buyers[0], body, "trust-1")
            order_id = placed.orders[0].id
            assert await relay(w) == 0  # unpaid: nothing to score
            await pay(w, order_id)
            assert await relay(w) == 1
            async with transaction(w.sessionmaker) as s:
                fact = (await s.scalars(select(TrustFact))).one()
                assert fact.paid_ts > 0 and fact.shipped_ts == 0 and fact.creator_id == w.creator.id
                await orders.ship_order(
                    s, w.merchants[0], order_id, ShipIn(carrier="顺丰", tracking_no="SF0001")
                )
            async with transaction(w.sessionmaker) as s:
                await orders.confirm_receipt(s, w.buyers[0], order_id)
            async with transaction(w.sessionmaker) as s:
                order = await orders.get_order(s, w.buyers[0], order_id)
                line_id = order.lines[0].id
                await reviews.post_review(s, w.buyers[0], order_id, line_id,
                                          ReviewIn(rating_product=1, rating_logistics=5, rating_service=4), [], settings)  # fmt: skip
            async with transaction(w.sessionmaker) as s:
                await reviews.edit_review(
                    s, w.buyers[0], order_id, line_id, ReviewPatch(rating_product=5), [], settings
                )
            assert await relay(w) == 1  # several events, one refresh of the order
            async with transaction(w.sessionmaker) as s:
                fact = (await s.scalars(select(TrustFact))).one()
                assert fact.shipped_ts >= fact.paid_ts and fact.delivered_ts >= fact.shipped_ts > 0
                assert (fact.rating_product, fact.rating_service) == (1, 4)  # the edit does not erase it
                assert (await s.scalars(select(TrustDirtyOrder))).all() == []
                shop = await trust.score_of(s, "shop", w.shops[0])
                creator = await trust.score_of(s, "creator", w.creator.id)
            assert shop.status == "new" and shop.orders_90 == 1 and shop.min_orders == 30
            assert creator.status == "new" and creator.orders_90 == 1
        finally:
            await w.engine.dispose()

    run(scenario())
