"""A world for care-case tests, built through the services (fast, no HTTP): the order tests' shop
world, two care specialists, and helpers to make an after-sales request and read outcomes straight
from the tables."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from tests.orders.world import World, build, principal
from trustlive.accounts import service as accounts
from trustlive.accounts.service import Principal
from trustlive.aftersales import service as aftersales
from trustlive.aftersales.schemas import RequestIn
from trustlive.care.models import CareCase, CareEntry, CareFollowUp
from trustlive.db import create_engine, create_sessionmaker, transaction
from trustlive.events import OutboxEvent
from trustlive.orders import service as orders
from trustlive.orders.schemas import ItemIn, OrderIn

# A fixed moment (10:00 in Shanghai), so "due today" does not depend on when the suite runs.
T0 = dt.datetime(2026, 12, 1, 2, 0, tzinfo=dt.UTC)


@dataclass
class CareWorld:
    world: World
    specialists: list[Principal]

    @property
    def sessionmaker(self):  # type: ignore[no-untyped-def]
        return self.world.sessionmaker

    @property
    def ops(self) -> Principal:
        return self.world.ops

    @property
    def buyers(self) -> list[Principal]:
        return self.world.buyers


async def build_care(url: str, *, buyers: int = 3) -> CareWorld:
    world = await build(url, buyers=buyers)
    hashed = await accounts.hash_password("correct-horse-9")
    async with transaction(world.sessionmaker) as s:
        specialists = [
            principal(
                await accounts.create_user(
                    s, username=f"carer{i}", display_name=f"Carer {i}", password_hash=hashed,
                    roles=["care_specialist"],
                ),
                "care_specialist",
            )
            for i in (1, 2)
        ]  # fmt: skip
    return CareWorld(world, specialists)


def in_db(w: CareWorld, url: str, fn: Callable[[CareWorld], Awaitable[Any]]) -> Any:
    """Run ``fn(w)`` from a synchronous HTTP test: in its own event loop, with its own engine (the
    app under test runs in the client's loop; a connection cannot cross loops)."""

    async def go() -> Any:
        engine = create_engine(url)
        world = dataclasses.replace(w.world, engine=engine, sessionmaker=create_sessionmaker(engine))
        try:
            return await fn(dataclasses.replace(w, world=world))
        finally:
            await engine.dispose()

    return asyncio.run(go())


async def paid_order(w: CareWorld, buyer: int = 0, key: str = "care-order") -> int:
    """A paid, unshipped order of the kids' shop for buyer ``buyer``."""
    person = w.buyers[buyer]
    data = OrderIn(
        items=[ItemIn(sku_id=w.world.skus[0], quantity=1)], address_id=w.world.addresses[person.id]
    )  # type: ignore[arg-type]
    async with transaction(w.sessionmaker) as s:
        placed = await orders.place_order(s, person, data, key)
        order = placed.orders[0]
        await orders.mark_paid(s, order.id, order.total_fen, f"pay-{key}")
        return order.id


async def open_request(w: CareWorld, buyer: int = 0, key: str = "care-order") -> tuple[int, int]:
    """An after-sales request (refund only: not shipped) on a new paid order: (request, order)."""
    order_id = await paid_order(w, buyer, key)
    async with transaction(w.sessionmaker) as s:
        order = await orders.load_order(s, order_id)
        request = await aftersales.open_request(
            s, w.buyers[buyer],
            RequestIn(order_id=order_id, kind="refund_only", reason="not_shipped", amount_fen=order.paid_fen),
        )  # fmt: skip
        return request.id, order_id


async def count(w: CareWorld, model: type) -> int:
    async with transaction(w.sessionmaker) as s:
        return await s.scalar(select(func.count()).select_from(model)) or 0


async def case_row(w: CareWorld, case_id: int) -> CareCase:
    async with transaction(w.sessionmaker) as s:
        row = await s.get(CareCase, case_id)
        assert row is not None
        return row


async def entries(w: CareWorld, case_id: int) -> list[CareEntry]:
    async with transaction(w.sessionmaker) as s:
        return list(
            await s.scalars(select(CareEntry).where(CareEntry.case_id == case_id).order_by(CareEntry.id))
        )


async def follow_ups(w: CareWorld, case_id: int) -> list[CareFollowUp]:
    async with transaction(w.sessionmaker) as s:
        stmt = select(CareFollowUp).where(CareFollowUp.case_id == case_id).order_by(CareFollowUp.id)
        return list(await s.scalars(stmt))


async def outbox(w: CareWorld, topic: str) -> list[dict]:
    async with transaction(w.sessionmaker) as s:
        stmt = select(OutboxEvent.payload).where(OutboxEvent.topic == topic).order_by(OutboxEvent.id)
        return list(await s.scalars(stmt))
