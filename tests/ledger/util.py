"""Shared pieces of the ledger tests: a database session per call, people and shops, tampering."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from trustlive.accounts import service as accounts
from trustlive.accounts.service import Principal
from trustlive.catalog import service as catalog
from trustlive.catalog.schemas import ShopIn
from trustlive.db import create_engine, create_sessionmaker, transaction
from trustlive.ledger import service as ledger

T = TypeVar("T")
# Any valid argon2 hash will do: these accounts never sign in.
PASSWORD_HASH = accounts.hash_password_sync("correct-horse-9")


def principal(user_id: int, username: str, *roles: str) -> Principal:
    return Principal(user_id, username, username, frozenset({"buyer", *roles}))


@dataclass
class People:
    merchant: Principal
    other_merchant: Principal
    staff: Principal
    creator: Principal
    other_creator: Principal
    ops: Principal
    shop_id: int
    other_shop_id: int


async def make_people(sessionmaker: async_sessionmaker[AsyncSession]) -> People:
    """Two merchants with a shop each (the first with a staff member), two creators, an ops."""
    async with transaction(sessionmaker) as s:
        ids = {}
        for name, roles in (
            ("merchant1", ["merchant"]),
            ("merchant2", ["merchant"]),
            ("staff1", []),
            ("creator1", ["creator"]),
            ("creator2", ["creator"]),
            ("ops1", ["ops"]),
        ):
            user = await accounts.create_user(s, username=name, password_hash=PASSWORD_HASH, roles=roles)
            ids[name] = user.id
    merchant = principal(ids["merchant1"], "merchant1", "merchant")
    other = principal(ids["merchant2"], "merchant2", "merchant")
    async with transaction(sessionmaker) as s:
        shop = await catalog.open_shop(s, merchant, ShopIn(name="和田玉坊"))
        other_shop = await catalog.open_shop(s, other, ShopIn(name="童装小铺"))
        await catalog.add_staff(s, merchant, shop.id, "staff1")
    return People(
        merchant=merchant,
        other_merchant=other,
        staff=principal(ids["staff1"], "staff1"),
        creator=principal(ids["creator1"], "creator1", "creator"),
        other_creator=principal(ids["creator2"], "creator2", "creator"),
        ops=principal(ids["ops1"], "ops1", "ops"),
        shop_id=shop.id,
        other_shop_id=other_shop.id,
    )


def with_db(url: str, work: Callable[[async_sessionmaker[AsyncSession]], Awaitable[T]]) -> T:
    """Run ``work(sessionmaker)`` on a fresh engine for ``url`` and dispose of it afterwards."""

    async def main() -> T:
        engine = create_engine(url)
        try:
            return await work(create_sessionmaker(engine))
        finally:
            await engine.dispose()

    return asyncio.run(main())


async def post(sessionmaker: async_sessionmaker[AsyncSession], **kwargs: Any) -> int:
    async with transaction(sessionmaker) as s:
        tx = await ledger.post(s, **kwargs)
        return tx.id


async def verify(sessionmaker: async_sessionmaker[AsyncSession]) -> Any:
    async with transaction(sessionmaker) as s:
        return await ledger.verify(s)


async def raw(sessionmaker: async_sessionmaker[AsyncSession], *statements: str, **params: Any) -> None:
    """Tamper with the tables behind the service's back, in one transaction."""
    async with transaction(sessionmaker) as s:
        for sql in statements:
            await s.execute(text(sql), params)


async def sale(
    sessionmaker: async_sessionmaker[AsyncSession],
    order_id: int,
    amount: int,
    *,
    shop_id: int,
    creator_id: int | None = None,
) -> None:
    """A paid and settled order: capture, then settlement with a 5% fee and 10% commission."""
    fee = amount * 5 // 100
    commission = amount * 10 // 100 if creator_id else 0
    await post(
        sessionmaker,
        kind="capture",
        ref=f"order:{order_id}",
        idempotency_key=f"capture:{order_id}",
        postings=ledger.capture_postings(amount),
    )
    await post(
        sessionmaker,
        kind="settlement",
        ref=f"order:{order_id}",
        idempotency_key=f"settle:{order_id}",
        postings=ledger.settlement_postings(
            shop_id=shop_id,
            escrow_fen=amount,
            service_fee_fen=fee,
            creator_id=creator_id,
            creator_commission_fen=commission,
        ),
    )
