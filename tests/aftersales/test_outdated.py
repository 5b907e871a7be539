"""Whole-order refund-only claims the order has outgrown, on SQLite and PostgreSQL: "not
shipped" after the shop shipped, "not received" after the buyer confirmed receipt. The automatic
approval does not apply to them: they close as ``outdated`` with no money moved and the hold
released, while the shop's own approval stays a human decision."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.aftersales.util import (
    as_of,
    carrier_reports,
    hours,
    ledger_ok,
    line_rows,
    open_request,
    order_row,
    paid_order,
    request_row,
    ship,
    shop_world,
    sweep,
)
from trustlive.aftersales import service
from trustlive.aftersales.schemas import RejectIn
from trustlive.db import transaction
from trustlive.errors import DomainError
from trustlive.events import OutboxEvent
from trustlive.orders import service as orders
from trustlive.payments.models import Refund


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


async def _closed_outdated(shop, request_id: int, order_id: int) -> None:  # type: ignore[no-untyped-def]
    """Closed as outdated: no refund at all on the order, the hold gone, the event recorded."""
    row = await request_row(shop, request_id)
    assert (row.status, row.resolution, row.refund_fen, row.decision) == ("closed", "outdated", 0, None)
    order = await order_row(shop, order_id)
    assert (order.refunded_fen, order.settlement_holds) == (0, 0)
    assert await as_of(shop, Refund, order_id=order_id) == []
    closed = [e.payload for e in await as_of(shop, OutboxEvent, topic="aftersales.closed")]
    assert {"request_id": request_id, "resolution": "outdated"}.items() <= next(
        p for p in closed if p["request_id"] == request_id
    ).items()


def test_not_received_then_receipt_confirmed_closes_without_a_refund(db_url: str, tmp_path: Path) -> None:
    """Scenario A: "not received" on a shipped order; the parcel arrives and the buyer confirms
    receipt. The shop answering it meanwhile is refused (409, nothing changes); reading it, or
    the next sweep long before the answer deadline, closes it; the buyer may then ask for a
    return instead. Before: auto-approved 48 h later and refunded in full."""

    async def scenario() -> None:
        shop = await shop_world(db_url, tmp_path)
        w = shop.w
        try:
            claims = []
            for key in ("a", "b"):
                order_id = await paid_order(shop, (w.skus[0], 1), key=key)
                await ship(shop, order_id, f"SF{key.upper()}0001")
                rid = await open_request(
                    shop, order_id, kind="refund_only", reason="not_received", amount_fen=6700
                )
                claims.append((rid, order_id))
            await carrier_reports(shop, hours(49))
            for _, order_id in claims:
                async with transaction(w.sessionmaker) as s:
                    await orders.confirm_receipt(s, shop.buyer, order_id)
            (swept, swept_order), (read, read_order) = claims

            answers = (
                lambda s: service.approve(s, shop.merchant, swept),
                lambda s: service.reject(s, shop.merchant, swept, RejectIn("买家已确认收货")),
            )
            for answer in answers:
                try:
                    async with transaction(w.sessionmaker) as s:
                        await answer(s)
                    raise AssertionError("the shop answered a claim the buyer retracted")
                except DomainError as err:
                    assert (err.status_code, err.code) == (409, "request_outdated")
            assert (await request_row(shop, swept)).status == "pending"

            # The next look at the other one closes it.
            async with transaction(w.sessionmaker) as s:
                detail = await service.get_detail(s, shop.buyer, read)
            assert (detail.request.status, detail.request.resolution) == ("closed", "outdated")
            await _closed_outdated(shop, read, read_order)

            result = await sweep(shop, hours(1))  # well before the 48 h deadline
            assert (result["claims_outdated"], result["auto_approved"]) == (1, 0)
            await _closed_outdated(shop, swept, swept_order)
            assert (await order_row(shop, swept_order)).status == "completed"
            assert (await sweep(shop, hours(49)))["auto_approved"] == 0
            await _closed_outdated(shop, swept, swept_order)

            # Nothing is pending any more: a return or a quality claim can be asked for instead.
            (line,) = await line_rows(shop, swept_order)
            async with transaction(w.sessionmaker) as s:
                panel = await service.order_panel(s, shop.buyer, await orders.load_order(s, swept_order))
            assert panel is not None
            assert {(o.line_id, o.kind) for o in panel.options} == {
                (line.id, "return_refund"),
                (line.id, "refund_only"),
            }
            await ledger_ok(w)
        finally:
            await w.engine.dispose()

    run(scenario())


def test_not_shipped_then_shipped_is_not_approved_automatically(db_url: str, tmp_path: Path) -> None:
    """Scenario B: "not shipped", the shop ships anyway and does not answer. Before its deadline
    the claim waits (the shop may still approve it); at the deadline it closes as outdated rather
    than refunding the order in full while the parcel travels — by the sweeper, or by the
    auto-approve step itself if it gets there first. The shop approving such a claim is its own
    decision and still refunds."""

    async def scenario() -> None:
        shop = await shop_world(db_url, tmp_path)
        w = shop.w
        try:
            claims = []
            for key in ("a", "b", "c"):
                order_id = await paid_order(shop, (w.skus[0], 1), key=key)
                rid = await open_request(
                    shop, order_id, kind="refund_only", reason="not_shipped", amount_fen=6700
                )
                await ship(shop, order_id, f"SF{key.upper()}0001")
                claims.append((rid, order_id))
            (swept, swept_order), (step, step_order), (approved, approved_order) = claims

            assert (await sweep(shop, hours(47)))["claims_outdated"] == 0
            assert (await request_row(shop, swept)).status == "pending"

            # The auto-approve step on its own refuses to approve and closes it.
            async with transaction(w.sessionmaker) as s:
                assert not await service.auto_approve(s, step, hours(49), service.DEFAULT_POLICY)
            await _closed_outdated(shop, step, step_order)

            # The shop approves the third by hand: refunded, as the shop decided.
            async with transaction(w.sessionmaker) as s:
                out = await service.approve(s, shop.merchant, approved)
            assert (out.status, out.resolution, out.refund_fen) == ("refunded", "approved", 6700)

            result = await sweep(shop, hours(49))
            assert (result["claims_outdated"], result["auto_approved"]) == (1, 0)
            await _closed_outdated(shop, swept, swept_order)
            assert (await order_row(shop, swept_order)).status == "shipped"
            assert (await order_row(shop, approved_order)).refunded_fen == 6700
            await ledger_ok(w)
        finally:
            await w.engine.dispose()

    run(scenario())


def test_not_received_still_fits_until_receipt_is_confirmed(db_url: str, tmp_path: Path) -> None:
    """The carrier says delivered, the buyer says not received and has not confirmed: the claim
    still fits, and the shop's silence approves it at the deadline as before."""

    async def scenario() -> None:
        shop = await shop_world(db_url, tmp_path)
        w = shop.w
        try:
            order_id = await paid_order(shop, (w.skus[0], 1))
            await ship(shop, order_id)
            await carrier_reports(shop, hours(49))
            assert (await order_row(shop, order_id)).status == "delivered"
            rid = await open_request(
                shop, order_id, kind="refund_only", reason="not_received", amount_fen=6700
            )
            result = await sweep(shop, hours(98))
            assert (result["claims_outdated"], result["auto_approved"]) == (0, 1)
            row = await request_row(shop, rid)
            assert (row.status, row.resolution, row.refund_fen) == ("refunded", "auto_approved", 6700)
            await ledger_ok(w)
        finally:
            await w.engine.dispose()

    run(scenario())


def test_the_shop_shipping_while_the_sweeper_approves_not_shipped_refunds_nothing(
    db_url: str, tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """PostgreSQL: the sweeper found the claim still fitting (order paid) and approved it; the
    shop's shipment commits before the refund step locks the order. The refund step sees the
    order shipped under its lock and backs out: no money moves, the claim closes as outdated at
    the next sweep, and the parcel travels."""
    if not db_url.startswith("postgresql"):
        import pytest

        pytest.skip("SQLite serialises writers (BEGIN IMMEDIATE): this race is PostgreSQL's")
    from trustlive.payments import service as payments

    async def scenario() -> None:
        shop = await shop_world(db_url, tmp_path)
        w = shop.w
        try:
            order_id = await paid_order(shop, (w.skus[0], 1), key="race")
            rid = await open_request(
                shop, order_id, kind="refund_only", reason="not_shipped", amount_fen=6700
            )
            real = payments.lock_refunds

            async def ship_first(session, order):  # type: ignore[no-untyped-def]
                await ship(shop, order, "SFRACE0001")  # another transaction, committed now
                return await real(session, order)

            monkeypatch.setattr(payments, "lock_refunds", ship_first)
            raised = None
            try:
                async with transaction(w.sessionmaker) as s:  # the sweeper's own transaction
                    await service.auto_approve(s, rid, hours(49), service.DEFAULT_POLICY)
            except DomainError as err:
                raised = err.code
            monkeypatch.setattr(payments, "lock_refunds", real)
            assert raised == "request_outdated"
            assert (await request_row(shop, rid)).status == "pending"  # rolled back
            assert (await order_row(shop, order_id)).status == "shipped"
            assert (await sweep(shop, hours(49)))["claims_outdated"] == 1
            await _closed_outdated(shop, rid, order_id)
            await ledger_ok(w)
        finally:
            await w.engine.dispose()  # type: ignore[attr-defined]

    run(scenario())
