"""Every after-sales path through the services, on SQLite and PostgreSQL: refund-only before
shipping and when not received, return-and-refund with the shop's approval and confirmation,
the deadlines (auto-approve, auto-refund after arrival, returns not sent, rejections not
escalated), who pays return postage, escalation and arbitration both ways, partial refunds with
the commission recomputed at settlement, settlement holds. The ledger is balanced throughout."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest

from tests.aftersales.util import (
    RETURN_ADDRESS,
    as_of,
    balance,
    carrier_reports,
    days,
    delivered_order,
    hours,
    ledger_ok,
    line_rows,
    open_request,
    order_row,
    paid_order,
    request_row,
    settle,
    ship,
    shop_world,
    stock_of,
    sweep,
    tracker,
)
from trustlive.aftersales import service
from trustlive.aftersales.models import AftersalesRequest
from trustlive.aftersales.schemas import ArbitrateIn, EscalateIn, RejectIn, RequestIn, ShipBackIn
from trustlive.db import transaction
from trustlive.errors import DomainError
from trustlive.fulfillment.models import Shipment
from trustlive.ledger import service as ledger
from trustlive.orders import service as orders
from trustlive.orders.schemas import ReturnsIn
from trustlive.payments import service as payments
from trustlive.payments.models import Refund


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_refund_only_before_shipping(db_url: str, tmp_path: Path) -> None:
    """Not shipped yet: the whole order, shipping included, is refunded on approval; the order
    ends refunded and its stock goes back on sale."""

    async def scenario() -> None:
        shop = await shop_world(db_url, tmp_path)
        w = shop.w
        try:
            order_id = await paid_order(shop, (w.skus[0], 2))
            assert await stock_of(w, w.skus[0]) == 8
            request_id = await open_request(
                shop, order_id, kind="refund_only", reason="not_shipped", amount_fen=12600
            )
            assert (await order_row(shop, order_id)).settlement_holds == 1
            async with transaction(w.sessionmaker) as s:
                out = await service.approve(s, shop.merchant, request_id)
            assert (out.status, out.resolution, out.refund_fen) == ("refunded", "approved", 12600)
            order = await order_row(shop, order_id)
            assert (
                order.status,
                order.refunded_fen,
                order.shipping_refunded_fen,
                order.settlement_holds,
            ) == (
                "refunded",
                12600,
                800,
                0,
            )
            assert [line.refunded_fen for line in await line_rows(shop, order_id)] == [11800]
            assert await stock_of(w, w.skus[0]) == 10
            assert await balance(shop, ledger.ESCROW) == 0
            assert await balance(shop, ledger.EXTERNAL_BUYER_REFUNDS) == 12600
            await ledger_ok(w)
        finally:
            await w.engine.dispose()

    run(scenario())


async def _refused(shop, step, status: int, code: str) -> None:  # type: ignore[no-untyped-def]
    """``step(session)`` is refused with this status and code, and its transaction rolls back."""
    try:
        async with transaction(shop.w.sessionmaker) as s:
            await step(s)
    except DomainError as err:
        assert (err.status_code, err.code) == (status, code), (err.status_code, err.code, err.message)
        return
    raise AssertionError(f"expected {status} {code}")


def test_refund_only_when_not_received(db_url: str, tmp_path: Path) -> None:
    """Shipped but never arrived: the shop approves and the order is refunded in full from
    ``shipped`` (the stock stays out: the parcel is somewhere)."""

    async def scenario() -> None:
        shop = await shop_world(db_url, tmp_path)
        w = shop.w
        try:
            order_id = await paid_order(shop, (w.skus[0], 1))
            await ship(shop, order_id)
            (line,) = await line_rows(shop, order_id)
            # Not received is the only reason while shipped; a return needs the goods first.
            await _refused(shop, lambda s: service.open_request(s, shop.buyer, RequestIn(
                order_id=order_id, kind="return_refund", reason="quality", amount_fen=100, line_id=line.id)),
                409, "wrong_kind")  # fmt: skip
            await _refused(shop, lambda s: service.open_request(s, shop.buyer, RequestIn(
                order_id=order_id, kind="refund_only", reason="not_shipped", amount_fen=100)), 422, "reason_not_possible")  # fmt: skip
            request_id = await open_request(shop, order_id, kind="refund_only", reason="not_received", amount_fen=6700,
                                            description="三周了还没到")  # fmt: skip
            row = await request_row(shop, request_id)
            assert row.seller_cause and row.line_id is None and row.status == "pending"
            async with transaction(w.sessionmaker) as s:
                await service.approve(s, shop.merchant, request_id)
            order = await order_row(shop, order_id)
            assert (order.status, order.refunded_fen, order.shipping_refunded_fen) == ("refunded", 6700, 800)
            assert await stock_of(w, w.skus[0]) == 9
            assert (await request_row(shop, request_id)).refund_fen == 6700
            await ledger_ok(w)
        finally:
            await w.engine.dispose()

    run(scenario())


def test_return_with_approval_ship_back_and_confirmed_arrival(db_url: str, tmp_path: Path) -> None:
    """退货退款, no reason, after receipt: approve → the buyer sees the return address and pays
    the postage → ships back with tracking → the shop confirms arrival → refunded at once. At
    settlement the shop gets the shipping, nothing of the returned line."""

    async def scenario() -> None:
        shop = await shop_world(db_url, tmp_path)
        w = shop.w
        try:
            order_id = await delivered_order(shop, (w.skus[0], 2), confirm=True)
            (line,) = await line_rows(shop, order_id)
            request_id = await open_request(shop, order_id, kind="return_refund", reason="no_reason",
                                            amount_fen=11800, line_id=line.id)  # fmt: skip
            async with transaction(w.sessionmaker) as s:
                out = await service.approve(s, shop.merchant, request_id)
                detail = await service.get_detail(s, shop.buyer, request_id)
            assert (out.status, out.postage_payer, out.decision) == ("awaiting_return", "buyer", "approved")
            assert detail.return_address is not None and detail.return_address.recipient == "退货组"
            assert "ship_back" in detail.actions and "withdraw" in detail.actions
            async with transaction(w.sessionmaker) as s:
                out = await service.ship_back(
                    s, shop.buyer, request_id, ShipBackIn("YTO", "yt7001"), tracker(shop)
                )
            assert (out.status, out.return_carrier, out.return_tracking_no) == (
                "return_shipped",
                "YTO",
                "YT7001",
            )
            parcels = await as_of(shop, Shipment, order_id=order_id, leg="return")
            assert [(p.carrier, p.tracking_no) for p in parcels] == [("YTO", "YT7001")]
            assert (await order_row(shop, order_id)).refunded_fen == 0  # nothing before the item is back
            async with transaction(w.sessionmaker) as s:
                out = await service.confirm_arrival(s, shop.merchant, request_id)
            assert (out.status, out.resolution, out.refund_fen, out.auto_refunded) == (
                "refunded",
                "approved",
                11800,
                False,
            )
            row = await request_row(shop, request_id)
            assert row.arrival_confirmed_by == shop.merchant.id and row.resolved_at is not None
            order = await order_row(shop, order_id)
            assert (
                order.status,
                order.refunded_fen,
                order.shipping_refunded_fen,
                order.settlement_holds,
            ) == (
                "completed",
                11800,
                0,
                0,
            )
            assert await settle(shop, days(30)) == 1
            assert await balance(shop, ledger.shop_payable(w.shops[0])) == 800
            assert await balance(shop, ledger.creator_payable(w.creator.id)) == 0
            assert await balance(shop, ledger.PLATFORM_FEE_REVENUE) == 0
            await ledger_ok(w)
        finally:
            await w.engine.dispose()

    run(scenario())


def test_auto_approve_at_the_deadline_and_not_before(db_url: str, tmp_path: Path) -> None:
    """The shop does not answer within 48 h: a refund-only request is refunded automatically, a
    return is approved automatically (and the item must come back first)."""

    async def scenario() -> None:
        shop = await shop_world(db_url, tmp_path)
        w = shop.w
        try:
            refund_order = await paid_order(shop, (w.skus[0], 1), key="a")
            refund_id = await open_request(
                shop, refund_order, kind="refund_only", reason="not_shipped", amount_fen=6700
            )
            return_order = await delivered_order(shop, (w.skus[0], 1), key="b")
            (line,) = await line_rows(shop, return_order)
            return_id = await open_request(shop, return_order, kind="return_refund", reason="quality",
                                           amount_fen=5900, line_id=line.id)  # fmt: skip
            assert (await sweep(shop, hours(47.9)))["auto_approved"] == 0
            assert (await request_row(shop, refund_id)).status == "pending"
            assert (await order_row(shop, refund_order)).refunded_fen == 0
            assert (await sweep(shop, hours(48.1)))["auto_approved"] == 2
            row = await request_row(shop, refund_id)
            assert (row.status, row.resolution, row.decision, row.responder_id, row.refund_fen) == (
                "refunded",
                "auto_approved",
                "auto_approved",
                None,
                6700,
            )
            assert row.responded_at is not None
            assert (await order_row(shop, refund_order)).status == "refunded"
            back = await request_row(shop, return_id)
            assert (back.status, back.decision, back.postage_payer) == (
                "awaiting_return",
                "auto_approved",
                "shop",
            )
            # Sweeping again changes nothing.
            assert (await sweep(shop, hours(48.2)))["auto_approved"] == 0
            await ledger_ok(w)
        finally:
            await w.engine.dispose()

    run(scenario())


def test_auto_refund_seven_days_after_the_return_arrived(db_url: str, tmp_path: Path) -> None:
    """The carrier reports the return delivered; the shop never confirms: 7 days after the
    arrival (not before) the refund is issued automatically."""

    async def scenario() -> None:
        shop = await shop_world(db_url, tmp_path)
        w = shop.w
        try:
            order_id = await delivered_order(shop, (w.skus[0], 1))
            (line,) = await line_rows(shop, order_id)
            request_id = await open_request(shop, order_id, kind="return_refund", reason="wrong_item",
                                            amount_fen=5900, line_id=line.id)  # fmt: skip
            async with transaction(w.sessionmaker) as s:
                await service.approve(s, shop.merchant, request_id)
                await service.ship_back(
                    s, shop.buyer, request_id, ShipBackIn("ZTO", "ZT555001"), tracker(shop)
                )
            shipped_at = (await request_row(shop, request_id)).return_shipped_at
            assert (await sweep(shop, hours(30)))["returns_arrived"] == 0  # still on its way
            await carrier_reports(shop, hours(49))
            assert (await sweep(shop, hours(49)))["returns_arrived"] == 1
            row = await request_row(shop, request_id)
            arrived = (shipped_at + dt.timedelta(hours=48)).replace(microsecond=0)  # carriers report seconds
            assert row.return_arrived_at == arrived and row.due_at == arrived + dt.timedelta(days=7)
            assert (await sweep(shop, arrived + dt.timedelta(days=7, minutes=-1)))["auto_refunded"] == 0
            assert (await request_row(shop, request_id)).status == "return_shipped"
            assert (await sweep(shop, arrived + dt.timedelta(days=7, minutes=1)))["auto_refunded"] == 1
            row = await request_row(shop, request_id)
            assert (row.status, row.auto_refunded, row.refund_fen, row.arrival_confirmed_by) == (
                "refunded",
                True,
                5900,
                None,
            )
            order = await order_row(shop, order_id)
            # Wrong item is the seller's cause: the shipping comes back too when it was asked for;
            # here only the goods were.
            assert (order.refunded_fen, order.settlement_holds) == (5900, 0)
            # Too late for the shop now.
            await _refused(
                shop,
                lambda s: service.confirm_arrival(s, shop.merchant, request_id),
                409,
                "invalid_transition",
            )
            await ledger_ok(w)
        finally:
            await w.engine.dispose()

    run(scenario())


def test_return_not_sent_closes_and_releases_the_hold(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        shop = await shop_world(db_url, tmp_path)
        w = shop.w
        try:
            order_id = await delivered_order(shop, (w.skus[0], 1), confirm=True)
            (line,) = await line_rows(shop, order_id)
            request_id = await open_request(shop, order_id, kind="return_refund", reason="no_reason",
                                            amount_fen=5900, line_id=line.id)  # fmt: skip
            async with transaction(w.sessionmaker) as s:
                await service.approve(s, shop.merchant, request_id)
            assert (await sweep(shop, days(6.9)))["returns_not_sent"] == 0
            assert (await order_row(shop, order_id)).settlement_holds == 1
            assert await settle(shop, days(30)) == 0  # held
            assert (await sweep(shop, days(7.1)))["returns_not_sent"] == 1
            row = await request_row(shop, request_id)
            assert (row.status, row.resolution, row.refund_fen, row.open_slot) == (
                "closed",
                "return_not_sent",
                0,
                None,
            )
            assert (await order_row(shop, order_id)).settlement_holds == 0
            await _refused(shop, lambda s: service.ship_back(s, shop.buyer, request_id, ShipBackIn("SF", "SF9"*3),
                                                            tracker(shop)), 409, "invalid_transition")  # fmt: skip
            assert await settle(shop, days(30)) == 1
            await ledger_ok(w)
        finally:
            await w.engine.dispose()

    run(scenario())


def test_who_pays_return_postage(db_url: str, tmp_path: Path) -> None:
    """No reason: the buyer, unless the shop covers return postage; the seller's cause: the shop."""

    async def scenario() -> None:
        shop = await shop_world(db_url, tmp_path)
        w = shop.w
        try:
            payers = []
            for key, reason, covers in (
                ("n", "no_reason", False),
                ("c", "no_reason", True),
                ("q", "quality", False),
            ):
                async with transaction(w.sessionmaker) as s:
                    await orders.set_returns(s, shop.merchant, w.shops[0], ReturnsIn(RETURN_ADDRESS, covers))
                order_id = await delivered_order(shop, (w.skus[0], 1), key=key)
                (line,) = await line_rows(shop, order_id)
                request_id = await open_request(shop, order_id, kind="return_refund", reason=reason, amount_fen=5900,
                                                line_id=line.id)  # fmt: skip
                async with transaction(w.sessionmaker) as s:
                    payers.append((await service.approve(s, shop.merchant, request_id)).postage_payer)
            assert payers == ["buyer", "shop", "shop"]
        finally:
            await w.engine.dispose()

    run(scenario())


def test_no_return_address_yet_keeps_the_approval_and_waits(db_url: str, tmp_path: Path) -> None:
    """A shop without a return address: the approval stands, the buyer cannot ship yet and the
    ship-back clock starts only once the shop gives one."""

    async def scenario() -> None:
        shop = await shop_world(db_url, tmp_path, return_address=False)
        w = shop.w
        try:
            order_id = await delivered_order(shop, (w.skus[0], 1))
            (line,) = await line_rows(shop, order_id)
            request_id = await open_request(shop, order_id, kind="return_refund", reason="not_as_described",
                                            amount_fen=5900, line_id=line.id)  # fmt: skip
            async with transaction(w.sessionmaker) as s:
                out = await service.approve(s, shop.merchant, request_id)
                detail = await service.get_detail(s, shop.buyer, request_id)
            assert (out.status, out.due_at) == ("awaiting_return", None)
            assert detail.return_address is None and "ship_back" not in detail.actions
            await _refused(shop, lambda s: service.ship_back(s, shop.buyer, request_id, ShipBackIn("SF", "SF123456"),
                                                            tracker(shop)), 409, "no_return_address")  # fmt: skip
            assert (await sweep(shop, days(30)))["returns_not_sent"] == 0
            async with transaction(w.sessionmaker) as s:
                await orders.set_returns(s, shop.merchant, w.shops[0], ReturnsIn(RETURN_ADDRESS))
            now = days(1)
            assert (await sweep(shop, now))["return_clocks_started"] == 1
            assert (await request_row(shop, request_id)).due_at == now + dt.timedelta(days=7)
        finally:
            await w.engine.dispose()

    run(scenario())


def test_reject_escalate_and_arbitrate_for_the_buyer(db_url: str, tmp_path: Path) -> None:
    """The shop rejects; the buyer escalates with a note; ops decide for the buyer: refund-only
    is refunded at once, a return goes back first."""

    async def scenario() -> None:
        shop = await shop_world(db_url, tmp_path)
        w = shop.w
        try:
            order_id = await delivered_order(shop, (w.skus[0], 1), (shop.second_sku, 1))
            first, second = await line_rows(shop, order_id)
            partial = await open_request(shop, order_id, kind="refund_only", reason="quality", amount_fen=2000,
                                         line_id=first.id, description="开线了")  # fmt: skip
            back = await open_request(shop, order_id, kind="return_refund", reason="not_as_described",
                                      amount_fen=3900, line_id=second.id)  # fmt: skip
            for request_id in (partial, back):
                async with transaction(w.sessionmaker) as s:
                    out = await service.reject(s, shop.merchant, request_id, RejectIn("质量没有问题"))
                    assert (out.status, out.decision, out.reject_reason) == (
                        "rejected",
                        "rejected",
                        "质量没有问题",
                    )
                async with transaction(w.sessionmaker) as s:
                    out = await service.escalate(s, shop.buyer, request_id, EscalateIn("请平台看看照片"))
                assert out.status == "escalated" and out.escalated_at is not None
            # Only ops arbitrate.
            await _refused(shop, lambda s: service.arbitrate(s, shop.merchant, partial, ArbitrateIn("seller", "no")),
                           403, "ops_only")  # fmt: skip
            async with transaction(w.sessionmaker) as s:
                out = await service.arbitrate(s, w.ops, partial, ArbitrateIn("buyer", "照片显示开线"))
                detail = await service.get_detail(s, w.ops, partial)
            assert (out.status, out.resolution, out.refund_fen, out.arbitration_note) == (
                "refunded",
                "arbitrated_buyer",
                2000,
                "照片显示开线",
            )
            assert [m.body for m in detail.messages] == ["请平台看看照片"]
            row = await request_row(shop, partial)
            assert row.arbitrator_id == w.ops.id and row.arbitrated_at is not None
            async with transaction(w.sessionmaker) as s:
                out = await service.arbitrate(s, w.ops, back, ArbitrateIn("buyer", "与描述不符"))
            assert (out.status, out.decision, out.postage_payer) == (
                "awaiting_return",
                "arbitrated_buyer",
                "shop",
            )
            async with transaction(w.sessionmaker) as s:
                await service.ship_back(s, shop.buyer, back, ShipBackIn("SF", "SF777001"), tracker(shop))
                out = await service.confirm_arrival(s, shop.merchant, back)
            assert (out.resolution, out.refund_fen) == ("arbitrated_buyer", 3900)
            lines = await line_rows(shop, order_id)
            assert [line.refunded_fen for line in lines] == [2000, 3900]
            await ledger_ok(w)
        finally:
            await w.engine.dispose()

    run(scenario())


def test_arbitration_for_the_seller_closes(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        shop = await shop_world(db_url, tmp_path)
        w = shop.w
        try:
            order_id = await delivered_order(shop, (w.skus[0], 1), confirm=True)
            (line,) = await line_rows(shop, order_id)
            request_id = await open_request(shop, order_id, kind="refund_only", reason="quality", amount_fen=5900,
                                            line_id=line.id)  # fmt: skip
            async with transaction(w.sessionmaker) as s:
                await service.reject(s, shop.merchant, request_id, RejectIn("no flaw on the photos"))
                await service.escalate(s, shop.buyer, request_id, EscalateIn())
                out = await service.arbitrate(s, w.ops, request_id, ArbitrateIn("seller", "照片看不出问题"))
            assert (out.status, out.resolution, out.refund_fen) == ("closed", "arbitrated_seller", 0)
            order = await order_row(shop, order_id)
            assert (order.refunded_fen, order.settlement_holds) == (0, 0)
            await _refused(shop, lambda s: service.arbitrate(s, w.ops, request_id, ArbitrateIn("buyer", "again")),
                           409, "invalid_transition")  # fmt: skip
            # The platform's decision is final: the line cannot be asked about again.
            again = RequestIn(order_id=order_id, kind="return_refund", reason="quality", amount_fen=5900,
                              line_id=line.id)  # fmt: skip
            await _refused(
                shop, lambda s: service.open_request(s, shop.buyer, again), 409, "arbitration_final"
            )
            assert len(await as_of(shop, AftersalesRequest)) == 1
        finally:
            await w.engine.dispose()

    run(scenario())


def test_escalation_too_late_is_refused_and_the_rejection_stands(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        shop = await shop_world(db_url, tmp_path)
        w = shop.w
        try:
            order_id = await delivered_order(shop, (w.skus[0], 1))
            (line,) = await line_rows(shop, order_id)
            request_id = await open_request(shop, order_id, kind="return_refund", reason="quality", amount_fen=5900,
                                            line_id=line.id)  # fmt: skip
            async with transaction(w.sessionmaker) as s:
                await service.reject(s, shop.merchant, request_id, RejectIn("人为损坏"))
            await _refused(shop, lambda s: service.escalate(s, shop.buyer, request_id, EscalateIn(), now=days(7.1)),
                           409, "escalation_closed")  # fmt: skip
            assert (await request_row(shop, request_id)).status == "rejected"
            assert (await sweep(shop, days(6.9)))["rejections_closed"] == 0
            assert (await sweep(shop, days(7.1)))["rejections_closed"] == 1
            row = await request_row(shop, request_id)
            assert (row.status, row.resolution) == ("closed", "rejected")
            assert (await order_row(shop, order_id)).settlement_holds == 0
            await _refused(shop, lambda s: service.escalate(s, shop.buyer, request_id, EscalateIn()), 409,
                           "invalid_transition")  # fmt: skip
        finally:
            await w.engine.dispose()

    run(scenario())


def test_partial_refunds_recompute_fee_and_commission_at_settlement(db_url: str, tmp_path: Path) -> None:
    """One line of two returned in full, the other partly refunded while kept: settlement takes
    the fee (5%) and the creator's commission (20%) on what is left of each line, to the fen."""

    async def scenario() -> None:
        shop = await shop_world(db_url, tmp_path)
        w = shop.w
        try:
            order_id = await delivered_order(shop, (w.skus[0], 1), (shop.second_sku, 1), confirm=True)
            suit, hat = await line_rows(shop, order_id)
            keep = await open_request(shop, order_id, kind="refund_only", reason="quality", amount_fen=1000,
                                      line_id=hat.id)  # fmt: skip
            back = await open_request(shop, order_id, kind="return_refund", reason="no_reason", amount_fen=5900,
                                      line_id=suit.id)  # fmt: skip
            async with transaction(w.sessionmaker) as s:
                await service.approve(s, shop.merchant, keep)
                await service.approve(s, shop.merchant, back)
                await service.ship_back(s, shop.buyer, back, ShipBackIn("EMS", "EMS00012"), tracker(shop))
                await service.confirm_arrival(s, shop.merchant, back)
            order = await order_row(shop, order_id)
            assert (order.paid_fen, order.refunded_fen, order.shipping_refunded_fen) == (10600, 6900, 0)
            assert [line.refunded_fen for line in await line_rows(shop, order_id)] == [5900, 1000]
            assert await settle(shop, days(30)) == 1
            # Left: the hat's 2900 and shipping 800 = 3700 of escrow. Fee 5% of 2900 = 145;
            # commission 20% of 2900 = 580; the shop gets 3700 - 145 - 580 = 2975.
            assert await balance(shop, ledger.PLATFORM_FEE_REVENUE) == 145
            assert await balance(shop, ledger.creator_payable(w.creator.id)) == 580
            assert await balance(shop, ledger.shop_payable(w.shops[0])) == 2975
            assert await balance(shop, ledger.ESCROW) == 0
            await ledger_ok(w)
        finally:
            await w.engine.dispose()

    run(scenario())


def test_settlement_waits_while_a_request_is_open(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        shop = await shop_world(db_url, tmp_path)
        w = shop.w
        try:
            order_id = await delivered_order(shop, (w.skus[0], 1), confirm=True)
            (line,) = await line_rows(shop, order_id)
            request_id = await open_request(shop, order_id, kind="return_refund", reason="no_reason", amount_fen=5900,
                                            line_id=line.id)  # fmt: skip
            assert await settle(shop, days(30)) == 0
            assert (await order_row(shop, order_id)).status == "completed"
            async with transaction(w.sessionmaker) as s:
                out = await service.withdraw(s, shop.buyer, request_id)
            assert (out.status, out.resolution) == ("closed", "withdrawn")
            assert (await order_row(shop, order_id)).settlement_holds == 0
            assert await settle(shop, days(30)) == 1
            # Settled: after-sales is closed for the order.
            await _refused(shop, lambda s: service.open_request(s, shop.buyer, RequestIn(
                order_id=order_id, kind="return_refund", reason="quality", amount_fen=100, line_id=line.id)),
                409, "order_not_eligible")  # fmt: skip
            await ledger_ok(w)
        finally:
            await w.engine.dispose()

    run(scenario())


def test_whole_order_refund_spreads_over_lines_and_shipping(db_url: str, tmp_path: Path) -> None:
    """A partial refund-only on the whole order is spread over the lines' remaining amounts
    (largest remainder) and shipping; after an order-level refund by hand, no parts are given."""

    async def scenario() -> None:
        shop = await shop_world(db_url, tmp_path)
        w = shop.w
        try:
            order_id = await paid_order(shop, (w.skus[0], 1), (shop.second_sku, 1))
            request_id = await open_request(
                shop, order_id, kind="refund_only", reason="not_shipped", amount_fen=10001
            )
            async with transaction(w.sessionmaker) as s:
                await service.approve(s, shop.merchant, request_id)
            order = await order_row(shop, order_id)
            assert [line.refunded_fen for line in await line_rows(shop, order_id)] == [5900, 3900]
            assert (order.refunded_fen, order.shipping_refunded_fen) == (10001, 201)

            other = await paid_order(shop, (w.skus[0], 1), (shop.second_sku, 1), key="o2")
            async with transaction(w.sessionmaker) as s:
                await payments.refund(s, shop.merchant, other, 500, "少发了赠品", "hand-1")
            request_id = await open_request(
                shop, other, kind="refund_only", reason="not_shipped", amount_fen=10100
            )
            async with transaction(w.sessionmaker) as s:
                out = await service.approve(s, shop.merchant, request_id)
            assert out.refund_fen == 10100
            order = await order_row(shop, other)
            assert (order.status, order.refunded_fen, order.shipping_refunded_fen) == ("refunded", 10600, 0)
            assert [line.refunded_fen for line in await line_rows(shop, other)] == [0, 0]
            await ledger_ok(w)
        finally:
            await w.engine.dispose()

    run(scenario())


def test_approved_after_a_refund_by_other_means_closes_without_money(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        shop = await shop_world(db_url, tmp_path)
        w = shop.w
        try:
            order_id = await paid_order(shop, (w.skus[0], 1))
            request_id = await open_request(
                shop, order_id, kind="refund_only", reason="not_shipped", amount_fen=6700
            )
            async with transaction(w.sessionmaker) as s:
                await payments.refund(s, w.ops, order_id, 6700, "客服全额退款", "hand-2")
            assert (await sweep(shop, hours(49)))["auto_approved"] == 1
            row = await request_row(shop, request_id)
            assert (row.status, row.resolution, row.refund_fen) == ("closed", "already_refunded", 0)
            assert (await order_row(shop, order_id)).settlement_holds == 0
            await ledger_ok(w)
        finally:
            await w.engine.dispose()

    run(scenario())


def test_merchant_approval_racing_the_auto_approve_refunds_once(db_url: str, tmp_path: Path) -> None:
    """At the deadline the shop presses approve while the sweeper auto-approves: one wins, one
    refund is made, the loser changes nothing."""

    async def scenario() -> None:
        shop = await shop_world(db_url, tmp_path)
        w = shop.w
        try:
            for round_no in range(4):
                order_id = await paid_order(shop, (w.skus[0], 1), key=f"race{round_no}")
                request_id = await open_request(shop, order_id, kind="refund_only", reason="not_shipped",
                                                amount_fen=6700)  # fmt: skip

                async def merchant(request_id: int = request_id) -> str:
                    try:
                        async with transaction(w.sessionmaker) as s:
                            await service.approve(s, shop.merchant, request_id)
                        return "merchant"
                    except DomainError as err:
                        assert err.code == "invalid_transition"
                        return "lost"

                results = await asyncio.gather(merchant(), sweep(shop, hours(48.5)))
                row = await request_row(shop, request_id)
                winners = (results[0] == "merchant") + results[1]["auto_approved"]
                assert winners == 1, results
                assert row.resolution == ("approved" if results[0] == "merchant" else "auto_approved")
                refunds = await as_of(shop, Refund, idempotency_key=f"aftersales:{request_id}")
                assert [r.amount_fen for r in refunds] == [6700]
                assert (await order_row(shop, order_id)).refunded_fen == 6700
            await ledger_ok(w)
        finally:
            await w.engine.dispose()

    run(scenario())


def test_two_requests_of_one_order_approved_at_once_are_capped_not_refused(
    db_url: str, tmp_path: Path
) -> None:
    """PostgreSQL (SQLite serialises writers): two lines of one order each ask for their goods and
    the ¥8.00 shipping; the shop approves both at the same moment. The second refund is sized
    after the first (the payment's refund lock comes before reading the order), so it is capped
    to its goods instead of failing with ``refund_exceeds_shipping``; shipping is refunded once."""
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite serialises writers (BEGIN IMMEDIATE): this race is PostgreSQL's")

    async def scenario() -> None:
        shop = await shop_world(db_url, tmp_path)
        w = shop.w
        try:
            for round_no in range(3):
                order_id = await delivered_order(shop, (w.skus[0], 1), (shop.second_sku, 1), confirm=True,
                                                 key=f"both{round_no}")  # fmt: skip
                suit, hat = await line_rows(shop, order_id)
                ids = [
                    await open_request(
                        shop,
                        order_id,
                        line_id=line.id,
                        kind="refund_only",
                        reason="quality",
                        amount_fen=line.line_total_fen + 800,
                    )  # fmt: skip
                    for line in (suit, hat)
                ]

                async def approve(request_id: int) -> str:
                    try:
                        async with transaction(w.sessionmaker) as s:
                            await service.approve(s, shop.merchant, request_id)
                        return "ok"
                    except DomainError as err:
                        return err.code

                assert await asyncio.gather(*(approve(i) for i in ids)) == ["ok", "ok"]
                rows = [await request_row(shop, i) for i in ids]
                assert all(r.status == "refunded" for r in rows)
                # Whichever came first took the shipping; the other got its goods only.
                assert sorted(r.refund_fen for r in rows) in ([3900, 6700], [4700, 5900])
                order = await order_row(shop, order_id)
                assert (order.status, order.refunded_fen, order.shipping_refunded_fen, order.settlement_holds) == (
                    "refunded", 10600, 800, 0,
                )  # fmt: skip
            await ledger_ok(w)
        finally:
            await w.engine.dispose()

    run(scenario())
