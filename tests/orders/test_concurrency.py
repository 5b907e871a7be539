"""No oversell, ever: many buyers at once against little stock, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt

from sqlalchemy import func, select

from tests.orders.test_service import attempt, pay
from tests.orders.world import build, stock_of
from trustlive.db import transaction, utcnow
from trustlive.orders import service as orders
from trustlive.orders.models import Order, OrderLine, PurchaseCount

BUYERS = 300
UNITS = 50


def test_300_buyers_50_units_exactly_50_orders(db_url: str) -> None:
    async def scenario() -> None:
        w = await build(db_url, buyers=BUYERS, stock=UNITS)
        try:
            results = await asyncio.gather(
                *(attempt(w, i, (w.skus[0], 1), key=f"rush-{i}") for i in range(BUYERS))
            )
            assert results.count("ok") == UNITS
            assert set(results) == {"ok", "out_of_stock"}
            async with transaction(w.sessionmaker) as s:
                orders_made = await s.scalar(select(func.count()).select_from(Order))
                sold = await s.scalar(
                    select(func.sum(OrderLine.quantity)).where(OrderLine.sku_id == w.skus[0])
                )
            assert orders_made == UNITS and sold == UNITS
            assert await stock_of(w, w.skus[0]) == 0  # reserved + sold == stock: nothing oversold
        finally:
            await w.engine.dispose()

    asyncio.run(scenario())


def test_per_buyer_limit_holds_under_concurrency(db_url: str) -> None:
    async def scenario() -> None:
        w = await build(db_url, buyers=2, stock=100, per_buyer_limit=3)
        try:
            results = await asyncio.gather(*(attempt(w, 0, (w.skus[0], 1), key=f"l-{i}") for i in range(12)))
            assert results.count("ok") == 3 and set(results) == {"ok", "limit_exceeded"}
            assert await attempt(w, 1, (w.skus[0], 4), key="too-many") == "limit_exceeded"
            assert await attempt(w, 1, (w.skus[0], 3), key="fine") == "ok"
            assert await stock_of(w, w.skus[0]) == 94
            # Cancelling gives the buyer's allowance back with the stock.
            async with transaction(w.sessionmaker) as s:
                first = await s.scalar(select(Order.id).where(Order.buyer_id == w.buyers[0].id).limit(1))
                await orders.cancel_order(s, w.buyers[0], first)
            assert await attempt(w, 0, (w.skus[0], 1), key="again") == "ok"
            async with transaction(w.sessionmaker) as s:
                held = await s.scalar(
                    select(PurchaseCount.quantity).where(PurchaseCount.buyer_id == w.buyers[0].id)
                )
            assert held == 3
        finally:
            await w.engine.dispose()

    asyncio.run(scenario())


def test_deadline_cancel_racing_the_payment(db_url: str) -> None:
    """Whichever wins, the order and the stock agree: paid with stock kept, or cancelled with
    stock returned (and the payment is then refunded by the payments domain)."""

    async def scenario() -> None:
        w = await build(db_url, buyers=20, stock=100)
        try:
            later = utcnow() + dt.timedelta(minutes=16)
            outcomes = []
            for i in range(20):
                order = (await orders_place(w, i)).orders[0]

                async def expire(order_id: int = order.id) -> bool:
                    async with transaction(w.sessionmaker) as s:
                        return await orders.expire_order(s, order_id, later)

                cancelled, payment = await asyncio.gather(expire(), pay(w, order.id))
                async with transaction(w.sessionmaker) as s:
                    status = await s.scalar(select(Order.status).where(Order.id == order.id))
                assert (status, cancelled, payment) in {
                    ("paid", False, "paid"),
                    ("cancelled", True, "not_payable"),
                }
                outcomes.append(status)
            paid = outcomes.count("paid")
            assert await stock_of(w, w.skus[0]) == 100 - paid
        finally:
            await w.engine.dispose()

    async def orders_place(w, i):  # type: ignore[no-untyped-def]
        from tests.orders.test_service import place

        return await place(w, i, (w.skus[0], 1), key=f"race-{i}")

    asyncio.run(scenario())
