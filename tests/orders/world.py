"""A small shop world for order tests, built through the services (fast, no HTTP)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select

from trustlive.accounts import service as accounts
from trustlive.accounts.service import Principal
from trustlive.catalog import service as catalog
from trustlive.catalog.models import Sku
from trustlive.catalog.schemas import CategoryIn, ProductIn, ShopIn, SkuIn
from trustlive.db import create_engine, create_sessionmaker, transaction
from trustlive.orders import service as orders
from trustlive.orders.schemas import AddressIn, ShopTermsIn


@dataclass
class World:
    engine: object
    sessionmaker: object
    ops: Principal
    merchants: list[Principal]
    shops: list[int]
    skus: list[int]  # one SKU per shop, in shop order
    creator: Principal
    buyers: list[Principal] = field(default_factory=list)
    addresses: dict[int, int] = field(default_factory=dict)  # buyer id -> address id


def principal(user, *roles: str) -> Principal:  # type: ignore[no-untyped-def]
    return Principal(user.id, user.username, user.display_name, frozenset({"buyer", *roles}))


async def build(url: str, *, buyers: int = 2, stock: int = 10, per_buyer_limit: int | None = None) -> World:
    engine = create_engine(url)
    sessionmaker = create_sessionmaker(engine)
    hashed = await accounts.hash_password("correct-horse-9")
    async with transaction(sessionmaker) as s:
        ops = principal(
            await accounts.create_user(s, username="ops1", password_hash=hashed, roles=["ops"]), "ops"
        )
        m = [
            principal(
                await accounts.create_user(
                    s, username=f"merchant{i}", password_hash=hashed, roles=["merchant"]
                ),
                "merchant",
            )
            for i in (1, 2)
        ]
        creator = principal(
            await accounts.create_user(s, username="creator1", password_hash=hashed, roles=["creator"]),
            "creator",
        )
        people = [
            principal(await accounts.create_user(s, username=f"buyer{i:04d}", password_hash=hashed))
            for i in range(buyers)
        ]
    async with transaction(sessionmaker) as s:
        kids = await catalog.create_category(
            s, ops, CategoryIn(slug="kids", name_zh="童装", name_en="Kids", service_fee_bp=500)
        )
        jade = await catalog.create_category(
            s,
            ops,
            CategoryIn(
                slug="jade", name_zh="玉石", name_en="Jade", requires_inspection=True, service_fee_bp=300
            ),
        )
    shops, skus = [], []
    for i, (merchant, category, price) in enumerate(((m[0], kids, 5900), (m[1], jade, 128000))):
        async with transaction(sessionmaker) as s:
            shop = await catalog.open_shop(s, merchant, ShopIn(name=f"店铺{i + 1}"))
            product = await catalog.create_product(
                s, merchant, shop.id,
                ProductIn(title=f"商品{i + 1}", category_id=category.id, commission_bp=2000,
                          skus=[SkuIn(price_fen=price, stock=stock, per_buyer_limit=per_buyer_limit)]),
            )  # fmt: skip
            await catalog.publish(s, merchant, product.id)
            detail = await catalog.product_detail(s, merchant, product.id)
            shops.append(shop.id)
            skus.append(detail.skus[0].id)
    world = World(engine, sessionmaker, ops, m, shops, skus, creator, people)
    async with transaction(sessionmaker) as s:
        for buyer in people:
            address = await orders.add_address(
                s,
                buyer,
                AddressIn(
                    recipient="王芳", phone="13800000000", region="浙江省杭州市西湖区", detail="文三路 1 号"
                ),
            )
            world.addresses[buyer.id] = address.id
    return world


async def set_shipping(world: World, shop_index: int, flat: int, free_over: int | None) -> None:
    async with transaction(world.sessionmaker) as s:
        await orders.set_shipping(
            s, world.merchants[shop_index], world.shops[shop_index], ShopTermsIn(flat, free_over)
        )


async def stock_of(world: World, sku_id: int) -> int:
    """Straight from the table: tests assert outcomes, not what a service reports."""
    async with transaction(world.sessionmaker) as s:
        return await s.scalar(select(Sku.stock).where(Sku.id == sku_id))
