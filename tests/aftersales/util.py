"""A shop world for after-sales tests, built through the services (fast, no HTTP): paid,
shipped, delivered and completed orders, the deadline sweepers run at chosen moments, and the
outcome read straight from the tables."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from tests.helpers import make_settings
from tests.orders.world import World, build, stock_of
from tests.payments.util import buyer_pays, deliver, ledger_ok, start
from trustlive.aftersales import service, tasks
from trustlive.aftersales.models import AftersalesRequest
from trustlive.aftersales.schemas import RequestIn
from trustlive.catalog import service as catalog
from trustlive.catalog.schemas import ProductIn, SkuIn
from trustlive.config import Settings
from trustlive.db import transaction, utcnow
from trustlive.fulfillment import service as fulfillment
from trustlive.fulfillment import tasks as fulfillment_tasks
from trustlive.fulfillment.tracking import SANDBOX, get_tracker
from trustlive.ledger import service as ledger
from trustlive.orders import service as orders
from trustlive.orders import tasks as order_tasks
from trustlive.orders.models import Order, OrderLine
from trustlive.orders.schemas import ItemIn, OrderIn, ReturnAddressIn, ReturnsIn, ShipIn, ShopTermsIn

__all__ = ["World", "ledger_ok", "stock_of"]

RETURN_ADDRESS = ReturnAddressIn(
    recipient="退货组", phone="0571-8888888", region="浙江省杭州市余杭区", detail="仓前街道 8 号"
)


@dataclass
class Shop:
    w: World
    settings: Settings
    second_sku: int  # another SKU of shop 0 (¥39.00), for orders of two lines

    @property
    def buyer(self):  # type: ignore[no-untyped-def]
        return self.w.buyers[0]

    @property
    def merchant(self):  # type: ignore[no-untyped-def]
        return self.w.merchants[0]


async def shop_world(
    db_url: str, tmp_path: Path, *, shipping: int = 800, return_address: bool = True, **overrides: object
) -> Shop:
    """Shop 0 sells a ¥59.00 bodysuit and a ¥39.00 hat (kids: 5% service fee, 20% commission
    through the creator), ships for a flat ¥8.00 and has a return address (unless not)."""
    settings = make_settings(db_url, tmp_path, **overrides)
    w = await build(db_url, buyers=2, stock=10)
    async with transaction(w.sessionmaker) as s:
        product = await catalog.create_product(
            s, w.merchants[0], w.shops[0],
            ProductIn(title="儿童帽子", category_id=(await catalog.get_category_by_slug(s, "kids")).id,
                      commission_bp=2000, skus=[SkuIn(price_fen=3900, stock=10)]),
        )  # fmt: skip
        await catalog.publish(s, w.merchants[0], product.id)
        second = (await catalog.product_detail(s, w.merchants[0], product.id)).skus[0].id
        await orders.set_shipping(s, w.merchants[0], w.shops[0], _flat(shipping))
        if return_address:
            await orders.set_returns(s, w.merchants[0], w.shops[0], ReturnsIn(RETURN_ADDRESS))
    return Shop(w, settings, second)


def _flat(fen: int) -> ShopTermsIn:
    return ShopTermsIn(flat_fee_fen=fen)


async def paid_order(
    shop: Shop, *items: tuple[int, int], buyer: int = 0, creator: bool = True, key: str = "o"
) -> int:
    """An order placed (attributed to the creator) and paid through the sandbox."""
    w = shop.w
    person = w.buyers[buyer]
    data = OrderIn(items=[ItemIn(sku_id=s, quantity=q) for s, q in items], address_id=w.addresses[person.id],  # type: ignore[arg-type]
                   source="alliance_link" if creator else "shelf", creator_id=w.creator.id if creator else None)  # fmt: skip
    async with transaction(w.sessionmaker) as s:
        (order,) = (await orders.place_order(s, person, data, key)).orders
    intent = await start(w, shop.settings, buyer, [order.id], f"pay-{key}")
    await buyer_pays(w, shop.settings, intent)
    await deliver(w, shop.settings)
    return order.id


async def ship(shop: Shop, order_id: int, tracking_no: str = "SF10001") -> None:
    async with transaction(shop.w.sessionmaker) as s:
        await fulfillment.ship(s, shop.merchant, order_id, ShipIn("SF", tracking_no), tracker(shop))


def tracker(shop: Shop):  # type: ignore[no-untyped-def]
    return get_tracker(shop.settings, SANDBOX)


async def carrier_reports(shop: Shop, now: dt.datetime) -> None:
    """The sandbox tracking service sends every event due by ``now``."""
    await fulfillment_tasks.deliver_tracking(shop.w.sessionmaker, shop.settings, now=now)


async def delivered_order(
    shop: Shop, *items: tuple[int, int], confirm: bool = False, key: str = "o", **kw: object
) -> int:
    """Paid, shipped, delivered by the carrier (and received, with ``confirm``)."""
    order_id = await paid_order(shop, *items, key=key, **kw)  # type: ignore[arg-type]
    await ship(shop, order_id, f"SF{key.upper().replace('-', '')}01")
    await carrier_reports(shop, utcnow() + dt.timedelta(hours=49))
    assert (await order_row(shop, order_id)).status == "delivered"
    if confirm:
        async with transaction(shop.w.sessionmaker) as s:
            await orders.confirm_receipt(s, shop.buyer, order_id)
    return order_id


async def open_request(shop: Shop, order_id: int, *, buyer: int = 0, **fields: object) -> int:
    async with transaction(shop.w.sessionmaker) as s:
        out = await service.open_request(s, shop.w.buyers[buyer], RequestIn(order_id=order_id, **fields))  # type: ignore[arg-type]
    return out.id


async def sweep(shop: Shop, now: dt.datetime) -> dict[str, int]:
    return await tasks.run_once(shop.w.sessionmaker, shop.settings, now)


async def request_row(shop: Shop, request_id: int) -> AftersalesRequest:
    async with transaction(shop.w.sessionmaker) as s:
        row = await s.get(AftersalesRequest, request_id)
        assert row is not None
        return row


async def order_row(shop: Shop, order_id: int) -> Order:
    async with transaction(shop.w.sessionmaker) as s:
        order = await s.get(Order, order_id)
        assert order is not None
        return order


async def line_rows(shop: Shop, order_id: int) -> list[OrderLine]:
    async with transaction(shop.w.sessionmaker) as s:
        return list(
            await s.scalars(select(OrderLine).where(OrderLine.order_id == order_id).order_by(OrderLine.id))
        )


async def balance(shop: Shop, account: str) -> int:
    async with transaction(shop.w.sessionmaker) as s:
        return await ledger.balance(s, account)


async def settle(shop: Shop, now: dt.datetime) -> int:
    return await order_tasks.settle(shop.w.sessionmaker, now)


async def as_of(shop: Shop, table: type, **where: object) -> list:  # type: ignore[type-arg]
    async with transaction(shop.w.sessionmaker) as s:
        stmt = select(table).filter_by(**where)
        return list(await s.scalars(stmt))


def hours(n: float) -> dt.datetime:
    return utcnow() + dt.timedelta(hours=n)


def days(n: float) -> dt.datetime:
    return utcnow() + dt.timedelta(days=n)
