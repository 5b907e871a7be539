"""Pin and flash sale, buying from the room: allocation, per-buyer limit, countdown, idempotency,
and the rush of many buyers at once, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from sqlalchemy import func, select

from tests.live.test_sessions import code_of
from tests.live.util import attempt, buy, go_live, live_world, orders_of, pin_and_sell, row, sale_row
from tests.orders.test_service import pay
from tests.orders.world import stock_of
from trustlive.db import transaction, utcnow
from trustlive.events import Event
from trustlive.live import service as live
from trustlive.live import tasks
from trustlive.live.models import FlashSaleClaim, LiveOrder
from trustlive.live.schemas import FlashSaleIn
from trustlive.orders import service as orders
from trustlive.orders.models import Order, OrderLine
from trustlive.orders.schemas import ShipIn


def test_pin_card_and_who_may_pin(db_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> None:
        lw = await live_world(db_url, tmp_path)
        try:
            sid = await go_live(lw, products=[lw.products[0]])
            buyer = lw.w.buyers[0]
            async with transaction(lw.sm) as s:
                assert await code_of(live.pin(s, buyer, sid, lw.products[0])) == "not_moderator"
            async with transaction(lw.sm) as s:
                assert await code_of(live.pin(s, lw.creator, sid, lw.products[1])) == "not_featured"
            async with transaction(lw.sm) as s:
                card = await live.pin(s, lw.creator, sid, lw.products[0])
            assert card.product_id == lw.products[0] and card.min_price_fen == 5900
            assert card.skus[0].stock == 10 and card.skus[0].id == lw.w.skus[0]
            assert (await row(lw, sid)).pinned_product_id == lw.products[0]
            # A moderator may pin too.
            async with transaction(lw.sm) as s:
                await live.add_moderator(s, lw.creator, buyer.id)
            async with transaction(lw.sm) as s:
                await live.unpin(s, buyer, sid)
            assert (await row(lw, sid)).pinned_product_id is None
        finally:
            await lw.w.engine.dispose()

    asyncio.run(scenario())


def test_flash_sale_rules(db_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> None:
        lw = await live_world(db_url, tmp_path, stock=10)
        try:
            sid = await go_live(lw)
            sku = lw.w.skus[0]
            async with transaction(lw.sm) as s:
                assert (
                    await code_of(live.start_flash_sale(s, lw.creator, sid, FlashSaleIn(sku, 5, 1, 60)))
                    == "nothing_pinned"
                )
            async with transaction(lw.sm) as s:
                await live.pin(s, lw.creator, sid, lw.products[0])
            cases = [
                (lw.w.buyers[0], FlashSaleIn(sku, 5, 1, 60), "not_moderator"),
                (lw.creator, FlashSaleIn(lw.w.skus[1], 5, 1, 60), "sku_not_pinned"),
                (lw.creator, FlashSaleIn(sku, 11, 1, 60), "allocation_exceeds_stock"),
            ]
            for actor, body, code in cases:
                async with transaction(lw.sm) as s:
                    assert await code_of(live.start_flash_sale(s, actor, sid, body)) == code
            async with transaction(lw.sm) as s:
                sale = await live.start_flash_sale(s, lw.creator, sid, FlashSaleIn(sku, 5, 2, 60))
            assert (sale.allocation, sale.left, sale.limit, sale.status) == (5, 5, 2, "running")
            async with transaction(lw.sm) as s:
                assert (
                    await code_of(live.start_flash_sale(s, lw.creator, sid, FlashSaleIn(sku, 5, 1, 60)))
                    == "sale_running"
                )
            async with transaction(lw.sm) as s:
                stopped = await live.stop_flash_sale(s, lw.creator, sid)
            assert stopped.status == "stopped"
            async with transaction(lw.sm) as s:
                assert await code_of(live.stop_flash_sale(s, lw.creator, sid)) == "no_sale"
        finally:
            await lw.w.engine.dispose()

    asyncio.run(scenario())


def test_buying_from_the_room(db_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> None:
        lw = await live_world(db_url, tmp_path, stock=10)
        try:
            sid = await go_live(lw, products=[lw.products[0]])
            sale_id = await pin_and_sell(lw, sid, allocation=3, limit=2)
            placed = await buy(lw, sid, 0, 2, key="k-1")
            assert placed.sale is not None and placed.sale.left == 1 and not placed.replayed
            (order,) = await orders_of(lw)
            async with transaction(lw.sm) as s:
                line = await s.scalar(select(OrderLine).where(OrderLine.order_id == order.id))
            assert (line.source, line.creator_id) == ("live_room", lw.creator.id)
            # A replayed key answers the first order and claims nothing twice.
            again = await buy(lw, sid, 0, 2, key="k-1")
            assert again.replayed and again.order_ids == placed.order_ids
            assert (await sale_row(lw, sale_id)).sold == 2
            assert await attempt(lw, sid, 0, 1, key="k-2") == "limit_exceeded"
            assert await attempt(lw, sid, 1, 2, key="k-3") == "sold_out"
            assert await attempt(lw, sid, 1, 1, key="k-4") == "ok"
            assert await attempt(lw, sid, 2, 1, key="k-5") == "sold_out"
            assert (await sale_row(lw, sale_id)).sold == 3
            assert await stock_of(lw.w, lw.w.skus[0]) == 7
            # Refusals changed nothing: two orders, three units.
            assert len(await orders_of(lw)) == 2
            r = await row(lw, sid)
            assert (r.orders, r.units, r.sales_fen) == (2, 3, 3 * 5900)
            # Not featured, bad key, not live.
            async with transaction(lw.sm) as s:
                from trustlive.live.schemas import LiveOrderIn

                b = lw.w.buyers[2]
                assert (
                    await code_of(
                        live.buy(s, b, sid, LiveOrderIn(lw.w.skus[1], 1, lw.w.addresses[b.id]), "x")
                    )
                    == "not_featured"
                )
                assert (
                    await code_of(
                        live.buy(s, b, sid, LiveOrderIn(lw.w.skus[0], 1, lw.w.addresses[b.id]), None)
                    )
                    == "idempotency_key_required"
                )
        finally:
            await lw.w.engine.dispose()

    asyncio.run(scenario())


def test_countdown_ends_the_sale(db_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> None:
        lw = await live_world(db_url, tmp_path, stock=10)
        try:
            sid = await go_live(lw, products=[lw.products[0]])
            sale_id = await pin_and_sell(lw, sid, allocation=3, limit=1, seconds=5)
            later = utcnow() + dt.timedelta(seconds=6)
            assert (await tasks.run_once(lw.sm, lw.settings, later))["flash_sales_ended"] == 1
            assert (await tasks.run_once(lw.sm, lw.settings, later))["flash_sales_ended"] == 0
            assert (await sale_row(lw, sale_id)).status == "ended"
            # After the sale the SKU sells at its normal terms, without the sale's limit.
            assert await attempt(lw, sid, 0, 2, key="after") == "ok"
            assert (await sale_row(lw, sale_id)).sold == 0
        finally:
            await lw.w.engine.dispose()

    asyncio.run(scenario())


def test_banned_buyer_and_ended_session(db_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> None:
        lw = await live_world(db_url, tmp_path)
        try:
            sid = await go_live(lw)
            async with transaction(lw.sm) as s:
                await live.ban(s, lw.creator, sid, lw.w.buyers[0].id, "spam")
            assert await attempt(lw, sid, 0, key="b-1") == "banned"
            async with transaction(lw.sm) as s:
                await live.end_session(s, lw.creator, sid)
            assert await attempt(lw, sid, 1, key="b-2") == "not_live"
            assert await orders_of(lw) == []
        finally:
            await lw.w.engine.dispose()

    asyncio.run(scenario())


def test_cancelled_order_gives_units_back_to_the_sale(db_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> None:
        lw = await live_world(db_url, tmp_path, stock=10)
        try:
            sid = await go_live(lw, products=[lw.products[0]])
            sale_id = await pin_and_sell(lw, sid, allocation=2, limit=1)
            placed = await buy(lw, sid, 0, 1, key="c-1")
            async with transaction(lw.sm) as s:
                await orders.cancel_order(s, lw.w.buyers[0], placed.order_ids[0])
            async with transaction(lw.sm) as s:
                await live.order_cancelled(s, placed.order_ids[0])
            async with transaction(lw.sm) as s:
                await live.order_cancelled(s, placed.order_ids[0])  # at least once: idempotent
            assert (await sale_row(lw, sale_id)).sold == 0
            assert await attempt(lw, sid, 0, 1, key="c-2") == "ok"
        finally:
            await lw.w.engine.dispose()

    asyncio.run(scenario())


BUYERS = 60
ALLOCATION = 15
LIMIT = 2


def test_rush_on_a_flash_sale(db_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Many buyers at once, each trying 1-3 units twice: sold ends at the allocation exactly, no
    buyer over the limit, the SKU's stock down by exactly what was sold."""

    async def scenario() -> None:
        lw = await live_world(db_url, tmp_path, buyers=BUYERS, stock=40)
        try:
            sid = await go_live(lw, products=[lw.products[0]])
            sale_id = await pin_and_sell(lw, sid, allocation=ALLOCATION, limit=LIMIT)
            tries = [(i, 1 + (i % 3), f"rush-{i}-{n}") for n in range(2) for i in range(BUYERS)]
            results = await asyncio.gather(*(attempt(lw, sid, i, q, key=k) for i, q, k in tries))
            assert set(results) <= {"ok", "sold_out", "limit_exceeded"}, set(results)
            sale = await sale_row(lw, sale_id)
            async with transaction(lw.sm) as s:
                sold = await s.scalar(
                    select(func.sum(OrderLine.quantity)).where(OrderLine.sku_id == lw.w.skus[0])
                )
                per_buyer = dict((await s.execute(select(Order.buyer_id, func.sum(OrderLine.quantity))
                                  .join(OrderLine, OrderLine.order_id == Order.id).group_by(Order.buyer_id))).all())  # fmt: skip
                claims = dict(
                    (await s.execute(select(FlashSaleClaim.buyer_id, FlashSaleClaim.quantity))).all()
                )
                live_units = await s.scalar(
                    select(func.sum(LiveOrder.quantity)).where(LiveOrder.session_id == sid)
                )
            assert sale.sold == ALLOCATION == sold == live_units
            assert max(per_buyer.values()) <= LIMIT
            assert {b: q for b, q in claims.items() if q} == per_buyer
            assert await stock_of(lw.w, lw.w.skus[0]) == 40 - ALLOCATION
            r = await row(lw, sid)
            assert r.units == ALLOCATION and r.sales_fen == ALLOCATION * 5900
        finally:
            await lw.w.engine.dispose()

    asyncio.run(scenario())


def test_an_order_refunded_in_full_before_shipping_gives_units_back(db_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Its stock went back to the SKU, so its units go back to the sale; a partial refund or a
    refund after shipping gives nothing back (the goods were sold)."""

    async def refunded(order_id: int) -> None:
        async with transaction(lw.sm) as s:  # delivered at least once: twice here
            for _ in range(2):
                event = Event(0, "orders.refunded", {"order_id": order_id, "amount_fen": 1}, utcnow())
                await live.on_order_refunded(s, event)

    async def scenario() -> None:
        nonlocal lw
        lw = await live_world(db_url, tmp_path, stock=10)
        try:
            sid = await go_live(lw, products=[lw.products[0]])
            sale_id = await pin_and_sell(lw, sid, allocation=3, limit=2)
            first = (await buy(lw, sid, 0, 1, key="r-1")).order_ids[0]
            second = (await buy(lw, sid, 1, 1, key="r-2")).order_ids[0]
            for order_id in (first, second):
                await pay(lw.w, order_id)
            async with transaction(lw.sm) as s:
                await orders.record_refund(s, first, 100, "partial")
            await refunded(first)
            assert (await sale_row(lw, sale_id)).sold == 2  # partial: nothing back
            async with transaction(lw.sm) as s:
                await orders.ship_order(
                    s, lw.w.merchants[0], second, ShipIn(carrier="中通", tracking_no="ZT7001")
                )
                order = await orders.load_order(s, second)
                await orders.record_refund(s, second, order.paid_fen, "after shipping")
            await refunded(second)
            assert (await sale_row(lw, sale_id)).sold == 2  # shipped: the unit was sold
            async with transaction(lw.sm) as s:
                order = await orders.load_order(s, first)
                await orders.record_refund(s, first, order.paid_fen - order.refunded_fen, "in full")
            await refunded(first)
            assert (await sale_row(lw, sale_id)).sold == 1
            assert await attempt(lw, sid, 0, 2, key="r-3") == "ok"  # the buyer's count went back too
        finally:
            await lw.w.engine.dispose()

    lw: Any
    asyncio.run(scenario())
