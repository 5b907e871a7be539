"""The rules of opening a request, through the service on SQLite and PostgreSQL: the no-reason
window (from receipt, or the carrier's delivery before receipt is confirmed; categories with no
window), orders that cannot have one, photos, withdrawing, and the events each step records."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

from sqlalchemy import select

from tests.aftersales.util import (
    as_of,
    days,
    delivered_order,
    hours,
    ledger_ok,
    line_rows,
    open_request,
    order_row,
    paid_order,
    request_row,
    ship,
    shop_world,
    tracker,
)
from tests.helpers import image_bytes
from trustlive.aftersales import service
from trustlive.aftersales.models import AftersalesPhoto, AftersalesRequest
from trustlive.aftersales.schemas import RejectIn, RequestIn, ShipBackIn
from trustlive.catalog import service as catalog
from trustlive.catalog.schemas import CategoryIn, ProductIn, SkuIn
from trustlive.db import transaction
from trustlive.errors import DomainError
from trustlive.events import OutboxEvent
from trustlive.orders import service as orders
from trustlive.orders.schemas import ItemIn, OrderIn


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


async def _refused(shop, step, status: int, code: str) -> None:  # type: ignore[no-untyped-def]
    try:
        async with transaction(shop.w.sessionmaker) as s:
            await step(s)
    except DomainError as err:
        assert (err.status_code, err.code) == (status, code), (err.status_code, err.code, err.message)
        return
    raise AssertionError(f"expected {status} {code}")


def test_no_reason_window_counts_from_receipt(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        shop = await shop_world(db_url, tmp_path)
        w = shop.w
        try:
            order_id = await delivered_order(shop, (w.skus[0], 1))
            (line,) = await line_rows(shop, order_id)
            delivered_at = (await order_row(shop, order_id)).delivered_at
            ask = RequestIn(
                order_id=order_id, line_id=line.id, kind="return_refund", reason="no_reason", amount_fen=5900
            )
            late = delivered_at + dt.timedelta(days=7, minutes=1)
            # Not confirmed yet: the window runs from the carrier's delivery.
            await _refused(
                shop,
                lambda s: service.open_request(s, shop.buyer, ask, now=late),
                409,
                "return_window_closed",
            )
            # A fault can still be returned after the no-reason window.
            fault = RequestIn(
                order_id=order_id, line_id=line.id, kind="return_refund", reason="quality", amount_fen=5900
            )
            async with transaction(w.sessionmaker) as s:
                out = await service.open_request(s, shop.buyer, fault, now=late)
                await service.withdraw(s, shop.buyer, out.id)
            # Confirmed receipt: the window runs from then.
            async with transaction(w.sessionmaker) as s:
                await orders.confirm_receipt(s, shop.buyer, order_id)
            completed_at = (await order_row(shop, order_id)).completed_at
            async with transaction(w.sessionmaker) as s:
                out = await service.open_request(
                    s, shop.buyer, ask, now=completed_at + dt.timedelta(days=6, hours=23)
                )
            assert out.status == "pending" and out.seller_cause is False
        finally:
            await w.engine.dispose()

    run(scenario())


def test_categories_without_no_reason_returns(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        shop = await shop_world(db_url, tmp_path)
        w = shop.w
        try:
            async with transaction(w.sessionmaker) as s:
                custom = await catalog.create_category(
                    s,
                    w.ops,
                    CategoryIn(slug="custom", name_zh="定制", name_en="Custom", return_window_days=0),
                )
                product = await catalog.create_product(s, shop.merchant, w.shops[0], ProductIn(
                    title="定制姓名手链", category_id=custom.id, skus=[SkuIn(price_fen=9900, stock=5)]))  # fmt: skip
                await catalog.publish(s, shop.merchant, product.id)
                sku = (await catalog.product_detail(s, shop.merchant, product.id)).skus[0].id
            order_id = await delivered_order(shop, (sku, 1), creator=False)
            (line,) = await line_rows(shop, order_id)
            async with transaction(w.sessionmaker) as s:
                panel = await service.order_panel(s, shop.buyer, await orders.load_order(s, order_id))
            (ret,) = [o for o in panel.options if o.kind == "return_refund"]
            assert ret.no_reason_excluded and "no_reason" not in ret.reasons and "quality" in ret.reasons
            ask = RequestIn(
                order_id=order_id, line_id=line.id, kind="return_refund", reason="no_reason", amount_fen=9900
            )
            await _refused(
                shop, lambda s: service.open_request(s, shop.buyer, ask), 409, "no_reason_excluded"
            )
            assert await as_of(shop, AftersalesRequest) == []
        finally:
            await w.engine.dispose()

    run(scenario())


def test_orders_that_cannot_have_a_request(db_url: str, tmp_path: Path) -> None:
    """Unpaid, cancelled, fully refunded: 409 and no request, no hold."""

    async def scenario() -> None:
        shop = await shop_world(db_url, tmp_path)
        w = shop.w
        try:
            data = OrderIn(
                items=[ItemIn(sku_id=w.skus[0], quantity=1)], address_id=w.addresses[shop.buyer.id]
            )  # type: ignore[arg-type]
            async with transaction(w.sessionmaker) as s:
                (unpaid,) = (await orders.place_order(s, shop.buyer, data, "unpaid")).orders
            ask = RequestIn(order_id=unpaid.id, kind="refund_only", reason="not_shipped", amount_fen=100)
            await _refused(
                shop, lambda s: service.open_request(s, shop.buyer, ask), 409, "order_not_eligible"
            )
            async with transaction(w.sessionmaker) as s:
                await orders.cancel_order(s, shop.buyer, unpaid.id)
            await _refused(
                shop, lambda s: service.open_request(s, shop.buyer, ask), 409, "order_not_eligible"
            )
            paid = await paid_order(shop, (w.skus[0], 1))
            first = await open_request(shop, paid, kind="refund_only", reason="not_shipped", amount_fen=6700)
            async with transaction(w.sessionmaker) as s:
                await service.approve(s, shop.merchant, first)
            again = RequestIn(order_id=paid, kind="refund_only", reason="not_shipped", amount_fen=100)
            await _refused(
                shop, lambda s: service.open_request(s, shop.buyer, again), 409, "order_not_eligible"
            )
            assert len(await as_of(shop, AftersalesRequest)) == 1
            assert (await order_row(shop, unpaid.id)).settlement_holds == 0
            await ledger_ok(w)
        finally:
            await w.engine.dispose()

    run(scenario())


def test_evidence_photos_on_opening(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        shop = await shop_world(db_url, tmp_path)
        w = shop.w
        media = service.Media(tmp_path / "media", 1024 * 1024)
        try:
            order_id = await delivered_order(shop, (w.skus[0], 1))
            (line,) = await line_rows(shop, order_id)
            ask = RequestIn(
                order_id=order_id, line_id=line.id, kind="return_refund", reason="quality", amount_fen=5900
            )
            png = catalog.Upload("a.png", "image/png", image_bytes())
            await _refused(shop, lambda s: service.open_request(s, shop.buyer, ask, photos=[png] * 10, media=media),
                           422, "too_many_photos")  # fmt: skip
            bad = catalog.Upload("a.pdf", "application/pdf", b"%PDF-1.4")
            await _refused(shop, lambda s: service.open_request(s, shop.buyer, ask, photos=[png, bad], media=media),
                           415, "unsupported_media_type")  # fmt: skip
            assert await as_of(shop, AftersalesRequest) == [] and await as_of(shop, AftersalesPhoto) == []
            # A refused request leaves no file behind either.
            assert not list((tmp_path / "media").rglob("*.png"))
            async with transaction(w.sessionmaker) as s:
                out = await service.open_request(s, shop.buyer, ask, photos=[png] * 3, media=media)
            assert len(out.photos) == 3 and len(list((tmp_path / "media").rglob("*.png"))) == 3
        finally:
            await w.engine.dispose()

    run(scenario())


def test_withdraw_only_before_the_item_is_on_its_way_back(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        shop = await shop_world(db_url, tmp_path)
        w = shop.w
        try:
            order_id = await delivered_order(shop, (w.skus[0], 1))
            (line,) = await line_rows(shop, order_id)
            request_id = await open_request(shop, order_id, kind="return_refund", reason="quality", amount_fen=5900,
                                            line_id=line.id)  # fmt: skip
            async with transaction(w.sessionmaker) as s:
                await service.approve(s, shop.merchant, request_id)
                await service.ship_back(
                    s, shop.buyer, request_id, ShipBackIn("SF", "SF3003003"), tracker(shop)
                )
            await _refused(
                shop, lambda s: service.withdraw(s, shop.buyer, request_id), 409, "invalid_transition"
            )
            assert (await request_row(shop, request_id)).status == "return_shipped"
        finally:
            await w.engine.dispose()

    run(scenario())


def test_every_transition_records_an_event(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        shop = await shop_world(db_url, tmp_path)
        w = shop.w
        try:
            order_id = await paid_order(shop, (w.skus[0], 1))
            await ship(shop, order_id)
            request_id = await open_request(
                shop, order_id, kind="refund_only", reason="not_received", amount_fen=6700
            )
            async with transaction(w.sessionmaker) as s:
                await service.approve(s, shop.merchant, request_id)
            async with transaction(w.sessionmaker) as s:
                rows = await s.scalars(
                    select(OutboxEvent).where(OutboxEvent.topic.like("aftersales.%")).order_by(OutboxEvent.id)
                )
                topics = [(e.topic, e.payload["request_id"]) for e in rows]
            assert topics == [("aftersales.opened", request_id), ("aftersales.approved", request_id),
                              ("aftersales.refunded", request_id)]  # fmt: skip
        finally:
            await w.engine.dispose()

    run(scenario())


def test_late_answers_and_late_returns_are_refused(db_url: str, tmp_path: Path) -> None:
    """Past its deadline the shop can no longer say no (the request is approved automatically),
    and the buyer can no longer send the item back (the request closes)."""

    async def scenario() -> None:
        shop = await shop_world(db_url, tmp_path)
        w = shop.w
        try:
            order_id = await delivered_order(shop, (w.skus[0], 1), (shop.second_sku, 1))
            suit, hat = await line_rows(shop, order_id)
            first = await open_request(shop, order_id, kind="return_refund", reason="quality", amount_fen=5900,
                                       line_id=suit.id)  # fmt: skip
            await _refused(shop, lambda s: service.reject(s, shop.merchant, first, RejectIn("不是质量问题"),
                                                          now=hours(48.1)), 409, "response_deadline_passed")  # fmt: skip
            assert (await request_row(shop, first)).status == "pending"
            second = await open_request(shop, order_id, kind="return_refund", reason="quality", amount_fen=3900,
                                        line_id=hat.id)  # fmt: skip
            async with transaction(w.sessionmaker) as s:
                await service.approve(s, shop.merchant, second)
            parcel = ShipBackIn("SF", "SF4004004")
            await _refused(shop, lambda s: service.ship_back(s, shop.buyer, second, parcel, tracker(shop), now=days(7.1)),
                           409, "return_deadline_passed")  # fmt: skip
            row = await request_row(shop, second)
            assert (row.status, row.return_tracking_no) == ("awaiting_return", None)
        finally:
            await w.engine.dispose()

    run(scenario())
