"""The rules of opening a request, through the service on SQLite and PostgreSQL: the no-reason
window (from receipt, or the carrier's delivery before receipt is confirmed; categories with no
window), orders that cannot have one, photos, withdrawing, and the events each step records."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from pathlib import Path

from sqlalchemy import select, update

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
from trustlive.aftersales.models import AftersalesMessage, AftersalesPhoto, AftersalesRequest
from trustlive.aftersales.schemas import ArbitrateIn, EscalateIn, MessageIn, RejectIn, RequestIn, ShipBackIn
from trustlive.catalog import service as catalog
from trustlive.catalog.schemas import CategoryIn, ProductIn, SkuIn
from trustlive.db import transaction, utcnow
from trustlive.errors import DomainError
from trustlive.events import OutboxEvent
from trustlive.orders import service as orders
from trustlive.orders import tasks as order_tasks
from trustlive.orders.models import Order
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


def test_the_automatic_confirmation_does_not_reopen_the_no_reason_window(db_url: str, tmp_path: Path) -> None:
    """Delivered ten days ago and never confirmed: the 7-day window closed three days ago. The
    platform's automatic confirmation today must not start it again (it counts from delivery)."""

    async def scenario() -> None:
        shop = await shop_world(db_url, tmp_path)
        w = shop.w
        try:
            order_id = await delivered_order(shop, (w.skus[0], 1))
            (line,) = await line_rows(shop, order_id)
            delivered_at = utcnow() - dt.timedelta(days=10)
            async with transaction(w.sessionmaker) as s:  # the carrier's report, ten days back
                await s.execute(update(Order).where(Order.id == order_id).values(delivered_at=delivered_at,
                                                                                   auto_confirm_at=utcnow()))  # fmt: skip
            assert await order_tasks.auto_confirm(w.sessionmaker, utcnow() + dt.timedelta(seconds=1)) == 1
            order = await order_row(shop, order_id)
            assert order.status == "completed" and order.completed_at > delivered_at + dt.timedelta(days=9)
            ask = RequestIn(
                order_id=order_id, line_id=line.id, kind="return_refund", reason="no_reason", amount_fen=5900
            )
            await _refused(
                shop, lambda s: service.open_request(s, shop.buyer, ask), 409, "return_window_closed"
            )
            async with transaction(w.sessionmaker) as s:
                panel = await service.order_panel(s, shop.buyer, await orders.load_order(s, order_id))
            (ret,) = [o for o in panel.options if o.kind == "return_refund"]
            assert "no_reason" not in ret.reasons and ret.no_reason_until == delivered_at + dt.timedelta(
                days=7
            )
            assert await as_of(shop, AftersalesRequest) == []
        finally:
            await w.engine.dispose()

    run(scenario())


def test_the_platforms_decision_for_the_seller_is_final_and_requests_are_capped(
    db_url: str, tmp_path: Path
) -> None:
    """Ops decide for the shop: the buyer cannot ask again about that line, in any form (before:
    asked again, the shop stayed silent, and the auto-approval refunded what ops refused). And
    however requests end, three per line (or per whole order) is the most."""

    async def scenario() -> None:
        shop = await shop_world(db_url, tmp_path)
        w = shop.w
        try:
            order_id = await delivered_order(shop, (w.skus[0], 1), (shop.second_sku, 1), confirm=True)
            suit, hat = await line_rows(shop, order_id)
            first = await open_request(shop, order_id, line_id=suit.id, kind="refund_only", reason="quality",
                                       amount_fen=6700)  # fmt: skip
            async with transaction(w.sessionmaker) as s:
                await service.reject(s, shop.merchant, first, RejectIn("没有质量问题"))
                await service.escalate(s, shop.buyer, first, EscalateIn("不服"))
            async with transaction(w.sessionmaker) as s:
                await service.arbitrate(s, w.ops, first, ArbitrateIn("seller", "图片显示无质量问题"))
            for kind, reason in (("refund_only", "quality"), ("return_refund", "not_as_described")):
                again = RequestIn(
                    order_id=order_id, line_id=suit.id, kind=kind, reason=reason, amount_fen=5900
                )  # type: ignore[arg-type]
                await _refused(
                    shop, lambda s, a=again: service.open_request(s, shop.buyer, a), 409, "arbitration_final"
                )
            assert len(await as_of(shop, AftersalesRequest)) == 1
            assert (await order_row(shop, order_id)).settlement_holds == 0
            async with transaction(w.sessionmaker) as s:
                panel = await service.order_panel(s, shop.buyer, await orders.load_order(s, order_id))
            assert {o.line_id for o in panel.options} == {hat.id}  # the other line is untouched

            # Three requests on the hat, withdrawn one after the other; a fourth is refused.
            for _ in range(3):
                rid = await open_request(shop, order_id, line_id=hat.id, kind="return_refund", reason="quality",
                                         amount_fen=3900)  # fmt: skip
                async with transaction(w.sessionmaker) as s:
                    await service.withdraw(s, shop.buyer, rid)
            fourth = RequestIn(
                order_id=order_id, line_id=hat.id, kind="refund_only", reason="quality", amount_fen=100
            )
            await _refused(
                shop, lambda s: service.open_request(s, shop.buyer, fourth), 409, "request_limit_reached"
            )
            assert len(await as_of(shop, AftersalesRequest)) == 4
            assert (await order_row(shop, order_id)).settlement_holds == 0

            # The whole order counts as one target: three "not shipped" claims at most.
            paid = await paid_order(shop, (w.skus[0], 1), key="p")
            for _ in range(3):
                rid = await open_request(shop, paid, kind="refund_only", reason="not_shipped", amount_fen=100)
                async with transaction(w.sessionmaker) as s:
                    await service.withdraw(s, shop.buyer, rid)
            whole = RequestIn(order_id=paid, kind="refund_only", reason="not_shipped", amount_fen=100)
            await _refused(
                shop, lambda s: service.open_request(s, shop.buyer, whole), 409, "request_limit_reached"
            )
            assert (await order_row(shop, paid)).settlement_holds == 0
        finally:
            await w.engine.dispose()

    run(scenario())


def test_ops_do_not_arbitrate_their_own_disputes(db_url: str, tmp_path: Path) -> None:
    """An ops account that is the request's buyer, or a member of its shop, is a party: 403
    ``conflict_of_interest``, nothing decided; it writes in the thread on its own side, never as
    the platform. A colleague decides."""

    async def scenario() -> None:
        shop = await shop_world(db_url, tmp_path)
        w = shop.w
        try:
            order_id = await delivered_order(shop, (w.skus[0], 1), confirm=True)
            (line,) = await line_rows(shop, order_id)
            rid = await open_request(shop, order_id, line_id=line.id, kind="refund_only", reason="quality",
                                     amount_fen=6700)  # fmt: skip
            async with transaction(w.sessionmaker) as s:
                await service.reject(s, shop.merchant, rid, RejectIn("没有质量问题"))
                await service.escalate(s, shop.buyer, rid, EscalateIn())
            ops_buyer = dataclasses.replace(shop.buyer, roles=frozenset({"buyer", "ops"}))
            ops_merchant = dataclasses.replace(shop.merchant, roles=frozenset({"merchant", "ops"}))
            for party in (ops_buyer, ops_merchant):
                for decision in ("buyer", "seller"):
                    await _refused(shop, lambda s, p=party, d=decision: service.arbitrate(s, p, rid, ArbitrateIn(d, "我来定")),  # type: ignore[misc]
                                   403, "conflict_of_interest")  # fmt: skip
            row = await request_row(shop, rid)
            assert (row.status, row.arbitrator_id, row.refund_fen) == ("escalated", None, 0)
            async with transaction(w.sessionmaker) as s:
                said = await service.post_message(s, ops_buyer, rid, MessageIn("我是买家"))
                detail = await service.get_detail(s, ops_merchant, rid)
            assert said.side == "buyer" and detail.viewer_side == "shop" and "arbitrate" not in detail.actions
            async with transaction(w.sessionmaker) as s:
                await service.arbitrate(s, w.ops, rid, ArbitrateIn("buyer", "证据充分"))
            row = await request_row(shop, rid)
            assert (row.status, row.arbitrator_id, row.refund_fen) == ("refunded", w.ops.id, 6700)
            await ledger_ok(w)
        finally:
            await w.engine.dispose()

    run(scenario())


def test_blank_text_is_refused_naming_the_field(db_url: str, tmp_path: Path) -> None:
    """A reason, note, message or carrier of spaces passes the length checks of the structs; it is
    a 422 naming the field, and nothing is stored empty."""

    async def scenario() -> None:
        shop = await shop_world(db_url, tmp_path)
        w = shop.w
        try:
            order_id = await delivered_order(shop, (w.skus[0], 1), (shop.second_sku, 1), confirm=True)
            suit, hat = await line_rows(shop, order_id)
            rid = await open_request(shop, order_id, line_id=suit.id, kind="refund_only", reason="quality",
                                     amount_fen=100)  # fmt: skip

            async def field_of(step) -> str:  # type: ignore[no-untyped-def]
                try:
                    async with transaction(w.sessionmaker) as s:
                        await step(s)
                except DomainError as err:
                    return f"{err.status_code} {err.fields[0].field if err.fields else '-'}"
                return "ok"

            assert (
                await field_of(lambda s: service.reject(s, shop.merchant, rid, RejectIn("    ")))
                == "422 reason"
            )
            assert (
                await field_of(lambda s: service.post_message(s, shop.buyer, rid, MessageIn("  \n ")))
                == "422 body"
            )
            assert await as_of(shop, AftersalesMessage) == []
            async with transaction(w.sessionmaker) as s:
                await service.reject(s, shop.merchant, rid, RejectIn("不是质量问题"))
                await service.escalate(s, shop.buyer, rid, EscalateIn("   "))
            assert await as_of(shop, AftersalesMessage) == []  # a blank note is no message
            assert (
                await field_of(lambda s: service.arbitrate(s, w.ops, rid, ArbitrateIn("buyer", "   ")))
                == "422 note"
            )
            assert (await request_row(shop, rid)).status == "escalated"

            ret = await open_request(shop, order_id, line_id=hat.id, kind="return_refund", reason="quality",
                                     amount_fen=3900)  # fmt: skip
            async with transaction(w.sessionmaker) as s:
                await service.approve(s, shop.merchant, ret)
            parcel = ShipBackIn("   ", "SF7007007")
            assert (
                await field_of(lambda s: service.ship_back(s, shop.buyer, ret, parcel, tracker(shop)))
                == "422 carrier"
            )
            assert (await request_row(shop, ret)).status == "awaiting_return"
        finally:
            await w.engine.dispose()

    run(scenario())
