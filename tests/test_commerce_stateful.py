"""Random sequences of the whole commerce core — order, pay, cancel, expire, refund, ship and
confirm, settle, pay out — with the invariants checked after every step:

- the ledger verifies: every transaction balances, the chain is intact, each account's balance
  equals its postings, all accounts sum to zero;
- escrow holds exactly what buyers paid for orders not yet settled, minus refunds;
- stock is conserved: what is on sale plus what orders hold equals what the shop stocked.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from sqlalchemy import select

from tests.conftest import _wipe
from tests.helpers import make_settings
from tests.orders.world import build
from trustlive.catalog.models import Sku
from trustlive.db import transaction, utcnow
from trustlive.errors import DomainError
from trustlive.ledger import service as ledger
from trustlive.ledger import tasks as ledger_tasks
from trustlive.orders import service as orders
from trustlive.orders import tasks as order_tasks
from trustlive.orders.models import Order, OrderLine
from trustlive.orders.schemas import ItemIn, OrderIn, ShipIn
from trustlive.payments import service as payments
from trustlive.payments import tasks as payment_tasks
from trustlive.payments.providers import get_provider

STOCK = 6
HOLDING = ("pending_payment", "paid", "shipped", "delivered", "completed", "settled")


def make_machine(url: str, tmp: Path) -> type[RuleBasedStateMachine]:
    class Commerce(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.loop = asyncio.new_event_loop()
            self.run(_wipe(url))
            self.world = self.run(build(url, buyers=3, stock=STOCK))
            self.settings = make_settings(url, tmp)
            self.provider = get_provider(self.settings, "sandbox")
            self.orders: list[int] = []
            self.keys = 0
            self.clock = utcnow()

        def run(self, coro):  # type: ignore[no-untyped-def]
            return self.loop.run_until_complete(coro)

        def teardown(self) -> None:
            self.run(self.world.engine.dispose())
            self.loop.close()

        async def attempt(self, step) -> bool:  # type: ignore[no-untyped-def]
            try:
                async with transaction(self.world.sessionmaker) as s:
                    await step(s)
                return True
            except DomainError:
                return False  # refused, and (checked by the invariants) nothing changed

        def now(self) -> dt.datetime:
            """The machine's clock: real time, or later once time_passes has moved it on."""
            self.clock = max(self.clock, utcnow())
            return self.clock

        def key(self) -> str:
            self.keys += 1
            return f"k{self.keys}"

        def order(self, index: int, *statuses: str) -> int | None:
            """One of the orders in ``statuses`` (any order when none are named), so that steps
            mostly make progress instead of being refused."""

            async def pick() -> list[int]:
                async with transaction(self.world.sessionmaker) as s:
                    stmt = select(Order.id).order_by(Order.id)
                    if statuses:
                        stmt = stmt.where(Order.status.in_(statuses))
                    return list(await s.scalars(stmt))

            ids = self.run(pick()) if (statuses or self.orders) else []
            return ids[index % len(ids)] if ids else None

        @initialize()
        def start(self) -> None:
            pass

        @rule(buyer=st.integers(0, 2), shop=st.integers(0, 1), qty=st.integers(1, 3))
        def place(self, buyer: int, shop: int, qty: int) -> None:
            w = self.world
            person = w.buyers[buyer]
            data = OrderIn(
                items=[ItemIn(sku_id=w.skus[shop], quantity=qty)], address_id=w.addresses[person.id]
            )

            async def step(s):  # type: ignore[no-untyped-def]
                placed = await orders.place_order(s, person, data, self.key())
                self.orders.extend(o.id for o in placed.orders)

            self.run(self.attempt(step))

        @rule(index=st.integers(0, 50), pay=st.booleans())
        def pay(self, index: int, pay: bool) -> None:
            order_id = self.order(index, "pending_payment")
            if order_id is None:
                return
            buyer = self.run(self.buyer_of(order_id))

            async def step(s):  # type: ignore[no-untyped-def]
                intent = await payments.create_payment(s, buyer, [order_id], self.key(), self.provider)
                await payments.sandbox_answer(s, self.settings, intent.provider_ref, pay=pay)

            if self.run(self.attempt(step)):
                self.run(
                    payment_tasks.deliver_webhooks(self.world.sessionmaker, self.settings, now=self.now())
                )

        @rule(index=st.integers(0, 50))
        def cancel(self, index: int) -> None:
            order_id = self.order(index, "pending_payment", "paid")
            if order_id is not None:
                buyer = self.run(self.buyer_of(order_id))
                self.run(self.attempt(lambda s: orders.cancel_order(s, buyer, order_id)))

        @rule()
        def time_passes(self) -> None:
            self.clock += dt.timedelta(minutes=20)
            self.run(order_tasks.cancel_unpaid(self.world.sessionmaker, self.clock))

        @rule(index=st.integers(0, 50), share=st.sampled_from([1, 2, 4]))
        def refund(self, index: int, share: int) -> None:
            order_id = self.order(index, "paid", "shipped", "completed")
            if order_id is None:
                return
            w = self.world
            paid = self.run(self.paid_of(order_id))
            merchant = w.merchants[w.shops.index(self.run(self.shop_of(order_id)))]
            self.run(
                self.attempt(
                    lambda s: payments.refund(
                        s, merchant, order_id, max(paid // share, 1), "test", self.key()
                    )
                )
            )
            self.run(payment_tasks.run_once(w.sessionmaker, self.settings, now=self.now()))

        @rule(index=st.integers(0, 50))
        def ship_and_confirm(self, index: int) -> None:
            order_id = self.order(index, "paid")
            if order_id is None:
                return
            w = self.world
            merchant = w.merchants[w.shops.index(self.run(self.shop_of(order_id)))]
            buyer = self.run(self.buyer_of(order_id))
            ship = ShipIn(carrier="顺丰", tracking_no="SF0001")
            self.run(self.attempt(lambda s: orders.ship_order(s, merchant, order_id, ship)))
            self.run(self.attempt(lambda s: orders.confirm_receipt(s, buyer, order_id)))

        @rule()
        def settle(self) -> None:
            self.run(order_tasks.settle(self.world.sessionmaker, utcnow() + dt.timedelta(days=30)))

        @rule(shop=st.integers(0, 1), fail=st.booleans())
        def payout(self, shop: int, fail: bool) -> None:
            w = self.world
            account = ledger.shop_payable(w.shops[shop])

            async def step(s):  # type: ignore[no-untyped-def]
                balance = await ledger.balance(s, account)
                if balance <= 0:
                    return
                await ledger.request_payout(
                    s, w.merchants[shop], account, max(balance // 2, 1), "FAIL" if fail else "6222 0001"
                )

            self.run(self.attempt(step))
            self.run(ledger_tasks.process_payouts(w.sessionmaker))

        async def buyer_of(self, order_id: int):  # type: ignore[no-untyped-def]
            async with transaction(self.world.sessionmaker) as s:
                buyer_id = await s.scalar(select(Order.buyer_id).where(Order.id == order_id))
            return next(b for b in self.world.buyers if b.id == buyer_id)

        async def shop_of(self, order_id: int) -> int:
            async with transaction(self.world.sessionmaker) as s:
                return await s.scalar(select(Order.shop_id).where(Order.id == order_id))

        async def paid_of(self, order_id: int) -> int:
            async with transaction(self.world.sessionmaker) as s:
                return (
                    await s.scalar(select(Order.paid_fen - Order.refunded_fen).where(Order.id == order_id))
                    or 0
                )

        @invariant()
        def ledger_verifies(self) -> None:
            async def check():  # type: ignore[no-untyped-def]
                async with transaction(self.world.sessionmaker) as s:
                    return await ledger.verify(s)

            report = self.run(check())
            assert report.ok, report.problems

        @invariant()
        def escrow_matches_orders(self) -> None:
            async def check() -> tuple[int, int]:
                async with transaction(self.world.sessionmaker) as s:
                    rows = (await s.execute(select(Order.status, Order.paid_fen, Order.refunded_fen))).all()
                    return await ledger.balance(s, ledger.ESCROW), sum(
                        p - r for st_, p, r in rows if st_ != "settled"
                    )

            escrow, expected = self.run(check())
            assert escrow == expected

        @invariant()
        def stock_is_conserved(self) -> None:
            async def check() -> list[tuple[int, int]]:
                out = []
                async with transaction(self.world.sessionmaker) as s:
                    for sku_id in self.world.skus:
                        lines = (
                            await s.execute(
                                select(OrderLine.quantity, Order.status, Order.shipped_at)
                                .join(Order, Order.id == OrderLine.order_id)
                                .where(OrderLine.sku_id == sku_id)
                            )
                        ).all()
                        held = sum(
                            q
                            for q, status, shipped in lines
                            if status in HOLDING or (status == "refunded" and shipped)
                        )
                        available = await s.scalar(select(Sku.stock).where(Sku.id == sku_id))
                        out.append((available + held, available))
                return out

            for total, available in self.run(check()):
                assert available >= 0
                assert total == STOCK

    return Commerce


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_commerce_state_machine(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    url = request.getfixturevalue("sqlite_schema" if backend == "sqlite" else "postgres_schema")
    machine = make_machine(url, tmp_path)
    machine.TestCase.settings = settings(
        max_examples=12, stateful_step_count=25, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )  # fmt: skip
    machine.TestCase().runTest()
