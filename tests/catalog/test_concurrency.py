"""Races on real databases: many concurrent writers, one winner, nothing half-written."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from trustlive.accounts import service as accounts
from trustlive.accounts.models import User
from trustlive.catalog import service as catalog
from trustlive.catalog.models import Product, Sku
from trustlive.catalog.schemas import CategoryIn, OptionIn, ProductIn, ShopIn, SkuIn
from trustlive.db import create_engine, create_sessionmaker, transaction
from trustlive.errors import DomainError

WRITERS = 12


async def _race(url: str) -> dict[str, object]:
    engine = create_engine(url)
    sessionmaker = create_sessionmaker(engine)
    hashed = await accounts.hash_password("correct-horse-9")
    try:
        async with transaction(sessionmaker) as s:
            ops = await accounts.create_user(s, username="ops1", password_hash=hashed, roles=["ops"])
            merchant = await accounts.create_user(
                s, username="merchant1", password_hash=hashed, roles=["merchant"]
            )
        ops_p = accounts.Principal(ops.id, "ops1", "ops1", frozenset({"ops", "buyer"}))
        m_p = accounts.Principal(merchant.id, "merchant1", "merchant1", frozenset({"merchant", "buyer"}))
        async with transaction(sessionmaker) as s:
            category = await catalog.create_category(
                s, ops_p, CategoryIn(slug="kids", name_zh="童装", name_en="Kids")
            )
            shop = await catalog.open_shop(s, m_p, ShopIn(name="童装小铺"))

        async def register(i: int) -> str:
            try:
                async with transaction(sessionmaker) as s:
                    await accounts.create_user(
                        s, username="same_name", password_hash=hashed, display_name=f"#{i}"
                    )
                return "ok"
            except DomainError as err:
                return err.code

        async def create(i: int) -> str:
            # Every writer claims the shop-wide code RACE-1 plus a code of its own.
            body = ProductIn(
                title=f"连体衣 {i}",
                category_id=category.id,
                options=[OptionIn(name="尺码", values=["73", "80"])],
                skus=[
                    SkuIn(price_fen=5900, stock=10, code="RACE-1", option_values=["73"]),
                    SkuIn(price_fen=5900, stock=10, code=f"U-{i}", option_values=["80"]),
                ],
            )
            try:
                async with transaction(sessionmaker) as s:
                    await catalog.create_product(s, m_p, shop.id, body)
                return "ok"
            except DomainError as err:
                return err.code

        registered = await asyncio.gather(*(register(i) for i in range(WRITERS)))
        created = await asyncio.gather(*(create(i) for i in range(WRITERS)))
        async with transaction(sessionmaker) as s:
            users = await s.scalar(select(func.count()).select_from(User).where(User.username == "same_name"))
            products = await s.scalar(select(func.count()).select_from(Product))
            skus = await s.scalar(select(func.count()).select_from(Sku))
            race_skus = await s.scalar(select(func.count()).select_from(Sku).where(Sku.code == "RACE-1"))
        return {
            "registered": registered,
            "created": created,
            "users": users,
            "products": products,
            "skus": skus,
            "race_skus": race_skus,
        }
    finally:
        await engine.dispose()


def test_concurrent_writers_one_winner(db_url: str) -> None:
    result = asyncio.run(_race(db_url))
    assert result["registered"].count("ok") == 1
    assert set(result["registered"]) == {"ok", "username_taken"}
    assert result["users"] == 1
    assert result["created"].count("ok") == 1
    assert set(result["created"]) <= {"ok", "sku_code_taken", "validation_error"}
    # The losers left nothing behind: no product without its SKUs, no second RACE-1.
    assert result["products"] == 1 and result["skus"] == 2 and result["race_skus"] == 1
