"""A small live world built through the services: the orders test world (a creator, two shops
with one published product each, buyers with addresses) plus live sessions."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from tests.helpers import make_settings
from tests.orders.world import World, build
from trustlive.accounts import service as accounts
from trustlive.accounts.service import Principal
from trustlive.catalog import service as catalog
from trustlive.config import Settings
from trustlive.db import transaction, utcnow
from trustlive.live import service as live
from trustlive.live.models import FlashSale, LiveSession
from trustlive.live.schemas import FlashSaleIn, LiveOrderIn, SessionIn
from trustlive.orders.models import Order


@dataclass
class LiveWorld:
    w: World
    settings: Settings
    products: list[int]  # one per shop, in shop order (w.skus[i] belongs to products[i])

    @property
    def creator(self) -> Principal:
        return self.w.creator

    @property
    def sm(self):  # type: ignore[no-untyped-def]
        return self.w.sessionmaker


async def live_world(url: str, tmp_path: Path, *, buyers: int = 3, stock: int = 10) -> LiveWorld:
    w = await build(url, buyers=buyers, stock=stock)
    async with transaction(w.sessionmaker) as s:
        skus = await catalog.skus_for_sale(s, w.skus)
    return LiveWorld(w, make_settings(url, tmp_path), [skus[k].product_id for k in w.skus])


async def another_creator(lw: LiveWorld, username: str = "creator2") -> Principal:
    async with transaction(lw.sm) as s:
        user = await accounts.create_user(s, username=username, password="correct-horse-9", roles=["creator"])
    return Principal(user.id, user.username, user.display_name, frozenset({"buyer", "creator"}))


async def schedule(lw: LiveWorld, creator: Principal | None = None, products: list[int] | None = None) -> int:
    async with transaction(lw.sm) as s:
        out = await live.create_session(
            s, creator or lw.creator,
            SessionIn(title="和田玉专场", scheduled_at=utcnow() + dt.timedelta(hours=1),
                      product_ids=lw.products if products is None else products),
            None, lw.settings,
        )  # fmt: skip
    return out.id


async def go_live(lw: LiveWorld, creator: Principal | None = None, products: list[int] | None = None) -> int:
    session_id = await schedule(lw, creator, products)
    async with transaction(lw.sm) as s:
        await live.start_session(s, creator or lw.creator, session_id, lw.settings)
    return session_id


async def pin_and_sell(
    lw: LiveWorld, session_id: int, *, allocation: int, limit: int, seconds: int = 60, index: int = 0
) -> int:
    async with transaction(lw.sm) as s:
        await live.pin(s, lw.creator, session_id, lw.products[index])
    async with transaction(lw.sm) as s:
        sale = await live.start_flash_sale(
            s, lw.creator, session_id, FlashSaleIn(lw.w.skus[index], allocation, limit, seconds)
        )
    return sale.id


async def buy(
    lw: LiveWorld, session_id: int, buyer_index: int, quantity: int = 1, *, key: str, index: int = 0
):  # type: ignore[no-untyped-def]
    buyer = lw.w.buyers[buyer_index]
    async with transaction(lw.sm) as s:
        return await live.buy(
            s, buyer, session_id, LiveOrderIn(lw.w.skus[index], quantity, lw.w.addresses[buyer.id]), key
        )


async def attempt(lw: LiveWorld, session_id: int, buyer_index: int, quantity: int = 1, *, key: str) -> str:
    from trustlive.errors import DomainError

    try:
        await buy(lw, session_id, buyer_index, quantity, key=key)
        return "ok"
    except DomainError as err:
        return err.code


async def row(lw: LiveWorld, session_id: int) -> LiveSession:
    async with transaction(lw.sm) as s:
        return await s.scalar(select(LiveSession).where(LiveSession.id == session_id))


async def sale_row(lw: LiveWorld, sale_id: int) -> FlashSale:
    async with transaction(lw.sm) as s:
        return await s.scalar(select(FlashSale).where(FlashSale.id == sale_id))


async def orders_of(lw: LiveWorld) -> list[Order]:
    async with transaction(lw.sm) as s:
        return list(await s.scalars(select(Order).order_by(Order.id)))
