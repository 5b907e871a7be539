"""The QC warehouse (先鉴后发) through its services, on SQLite and PostgreSQL: ops' set-up and its
bad input, routing, shipping to the warehouse, the inspector's state rules, the pass path to
delivery on the sandbox's tracking timeline, the fail path's full refund to the fen, certificate
numbers, the lab's fee for both payers, the turnaround sweeper."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.fulfillment.qc_util import (
    JADE_PRICE,
    JADE_SHIPPING,
    PARCEL,
    Qc,
    case_row,
    count,
    events_of,
    hours,
    inspect,
    inspection,
    lab_headers,
    paid_jade,
    qc_world,
    received,
    shipped_jade,
    warehouse_in,
)
from tests.helpers import image_bytes
from tests.payments.util import balance, ledger_ok, order_row, refunds
from trustlive.catalog import service as catalog
from trustlive.db import transaction, utcnow
from trustlive.errors import DomainError
from trustlive.fulfillment import service, tasks
from trustlive.fulfillment.models import (
    QcCase,
    QcInspector,
    QcLab,
    QcLabEvent,
    QcPhoto,
    QcRoute,
    QcWarehouse,
    Shipment,
)
from trustlive.fulfillment.schemas import InspectorIn, LabIn, ParcelIn, ReceiveIn, RouteIn
from trustlive.ledger import service as ledger
from trustlive.ledger.models import LedgerTransaction
from trustlive.orders import service as orders
from trustlive.orders.models import Order, OrderLine
from trustlive.orders.schemas import ReturnAddressIn, ReturnsIn, ShipIn
from trustlive.orders.tasks import settle
from trustlive.payments import service as payments

TOTAL = JADE_PRICE + JADE_SHIPPING


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


async def refused(q: Qc, call) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    """Run ``call(session)`` in its own transaction, expecting a domain error: (status, code)."""
    with pytest.raises(DomainError) as info:
        async with transaction(q.w.sessionmaker) as s:
            await call(s)
    return info.value.status_code, info.value.code


async def set_return_address(q: Qc) -> None:
    address = ReturnAddressIn(
        recipient="和田玉坊售后", phone="13900000000", region="新疆和田市", detail="玉龙路 9 号"
    )
    async with transaction(q.w.sessionmaker) as s:
        await orders.set_returns(s, q.merchant, q.w.shops[1], ReturnsIn(return_address=address))


def test_ops_set_up_and_its_bad_input(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        q = await qc_world(db_url, tmp_path)
        try:
            ops, lab_a = q.w.ops, q.labs[0]
            before = (await count(q, QcLab), await count(q, QcWarehouse), await count(q, QcInspector))
            for data, field_code in (
                (LabIn(name="无资质实验室"), (422, "accreditation_required")),
                (LabIn(name="坏编号实验室", cma_no="12345678901"), (422, "validation_error")),  # 11 digits
                (LabIn(name="坏编号实验室", cnas_no="X1234"), (422, "validation_error")),
                (LabIn(name="国检珠宝检测中心", cma_no="201901999999"), (409, "lab_name_taken")),
            ):
                assert (
                    await refused(q, lambda s, d=data: service.create_lab(s, ops, d, q.policy)) == field_code
                )
            assert await refused(
                q, lambda s: service.create_lab(s, q.w.merchants[0], LabIn(name="x实验室", cma_no="201901000001"),
                                                q.policy)
            ) == (403, "ops_only")  # fmt: skip
            for data, expected in (
                (warehouse_in("北京质检仓", 999), (404, "lab_not_found")),
                (warehouse_in("杭州质检仓", lab_a), (409, "warehouse_name_taken")),
                (
                    warehouse_in("关着的默认仓", lab_a, is_active=False, is_default=True),
                    (422, "default_inactive"),
                ),
            ):
                assert await refused(q, lambda s, d=data: service.create_warehouse(s, ops, d)) == expected
            merchant = q.w.merchants[0]
            assert await refused(
                q, lambda s: service.add_inspector(s, ops, q.warehouses[0], InspectorIn(user_id=merchant.id))
            ) == (422, "not_an_inspector")
            assert await refused(
                q, lambda s: service.add_inspector(s, ops, q.warehouses[0], InspectorIn(username="nobody"))
            ) == (404, "user_not_found")
            kids = None
            async with transaction(q.w.sessionmaker) as s:
                kids = (await catalog.get_category_by_slug(s, "kids")).id
            assert await refused(
                q,
                lambda s: service.set_route(s, ops, RouteIn(category_id=kids, warehouse_id=q.warehouses[0])),
            ) == (422, "not_inspected")
            assert await refused(
                q, lambda s: service.set_route(s, ops, RouteIn(category_id=q.jade, warehouse_id=999))
            ) == (404, "warehouse_not_found")
            assert (await count(q, QcLab), await count(q, QcWarehouse), await count(q, QcInspector)) == before
            assert await count(q, QcRoute) == 0

            # The accreditation numbers are kept as labs write them; a new default replaces the old.
            async with transaction(q.w.sessionmaker) as s:
                lab = await service.get_lab(s, ops, q.labs[1], q.policy)
                assert (lab.cma_no, lab.cnas_no) == (None, "L1234")
                assert (
                    lab.callback_path == f"/api/v1/qc/labs/{lab.id}/results"
                    and len(lab.callback_secret) == 64
                )
                third = await service.create_warehouse(
                    s, ops, warehouse_in("成都质检仓", lab_a, is_default=True)
                )
                again = await service.add_inspector(s, ops, third.id, InspectorIn(username="inspector1"))
                again = await service.add_inspector(s, ops, third.id, InspectorIn(user_id=q.inspectors[0].id))
                assert [i.username for i in again.inspectors] == ["inspector1"]  # assigned once
            async with transaction(q.w.sessionmaker) as s:
                defaults = list(
                    await s.scalars(select(QcWarehouse.id).where(QcWarehouse.is_default.is_(True)))
                )
                assert defaults == [third.id]
                setup = await service.setup(s, ops, q.policy)
                assert setup.default_warehouse_id == third.id and len(setup.warehouses) == 3
        finally:
            await q.w.engine.dispose()  # type: ignore[attr-defined]

    run(scenario())


def test_routing_picks_the_category_route_then_the_default_and_none_is_409(
    db_url: str, tmp_path: Path
) -> None:
    async def scenario() -> None:
        q = await qc_world(db_url, tmp_path)
        try:
            _, first = await shipped_jade(q, 0, "a")
            assert (await case_row(q, first)).warehouse_id == q.warehouses[0]  # no route: the default
            async with transaction(q.w.sessionmaker) as s:
                await service.set_route(s, q.w.ops, RouteIn(category_id=q.jade, warehouse_id=q.warehouses[1]))
            _, second = await shipped_jade(q, 1, "b")
            assert (await case_row(q, second)).warehouse_id == q.warehouses[1]  # the category's route

            # No route and no open default: nothing ships, nothing changes.
            async with transaction(q.w.sessionmaker) as s:
                await service.set_route(s, q.w.ops, RouteIn(category_id=q.jade, warehouse_id=None))
                await service.update_warehouse(s, q.w.ops, q.warehouses[0],
                                               warehouse_in("杭州质检仓", q.labs[0], is_default=False))  # fmt: skip
            order_id = await paid_jade(q, 0, "c")
            async with transaction(q.w.sessionmaker) as s:
                panel = await service.qc_of_order(s, await orders.load_order(s, order_id))
                assert panel is not None and panel.warehouse is None and panel.case is None
            shipments = await count(q, Shipment)
            assert await refused(
                q, lambda s: service.ship(s, q.merchant, order_id, ShipIn("SF", "SF7777777"), q.tracker)
            ) == (409, "no_qc_warehouse")
            order = await order_row(q.w, order_id)
            assert (order.status, order.tracking_no) == ("paid", None)
            assert await count(q, Shipment) == shipments and await count(q, QcCase) == 2
        finally:
            await q.w.engine.dispose()  # type: ignore[attr-defined]

    run(scenario())


def test_shipping_to_the_warehouse_opens_the_case_and_a_to_qc_parcel(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        q = await qc_world(db_url, tmp_path)
        try:
            order_id = await paid_jade(q)
            async with transaction(q.w.sessionmaker) as s:
                panel = await service.qc_of_order(s, await orders.load_order(s, order_id))
                assert panel is not None and panel.case is None
                assert panel.warehouse is not None and panel.warehouse.name == "杭州质检仓"
                assert panel.warehouse.inspectors == []  # order pages do not name the staff
            async with transaction(q.w.sessionmaker) as s:
                await service.ship(s, q.merchant, order_id, ShipIn("SF", "SF20261129"), q.tracker)
            [case] = [c for c in [await case_row(q, 1)] if c.order_id == order_id]
            assert (case.status, case.shop_id, case.warehouse_id) == (
                "inbound",
                q.w.shops[1],
                q.warehouses[0],
            )
            assert (case.inbound_carrier, case.inbound_tracking_no, case.received_at) == (
                "SF",
                "SF20261129",
                None,
            )
            async with transaction(q.w.sessionmaker) as s:
                [parcel] = list(await s.scalars(select(Shipment).where(Shipment.order_id == order_id)))
            assert (parcel.leg, parcel.tracking_no) == ("to_qc", "SF20261129")
            assert await events_of(q, "fulfillment.inspection_opened") == [
                {
                    "case_id": case.id,
                    "order_id": order_id,
                    "shop_id": q.w.shops[1],
                    "warehouse_id": q.warehouses[0],
                }
            ]
            # The buyer cannot confirm receipt while the item is with the lab.
            assert await refused(q, lambda s: orders.confirm_receipt(s, q.w.buyers[0], order_id)) == (
                409, "awaiting_inspection",
            )  # fmt: skip
        finally:
            await q.w.engine.dispose()  # type: ignore[attr-defined]

    run(scenario())


def test_state_rules_and_another_warehouses_inspector(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        q = await qc_world(db_url, tmp_path)
        try:
            await set_return_address(q)
            _, case_id = await shipped_jade(q)
            me, other = q.inspectors[0], q.inspectors[1]
            # Another warehouse's inspector sees nothing of it, whatever the action.
            for call in (
                lambda s: service.get_case(s, other, case_id),
                lambda s: service.receive(s, other, case_id, q.policy),
                lambda s: service.record_inspection(s, other, case_id, inspection(), q.policy),
                lambda s: service.forward(s, other, case_id, PARCEL, q.tracker),
                lambda s: service.return_to_seller(s, other, case_id, PARCEL, q.tracker),
            ):
                assert await refused(q, call) == (404, "case_not_found")
            tracking = (await case_row(q, case_id)).inbound_tracking_no
            assert await refused(
                q, lambda s: service.receive_parcel(s, other, ReceiveIn(tracking), q.policy)
            ) == (404, "parcel_not_found")
            # Wrong order of steps: 409, nothing changes.
            assert await refused(q, lambda s: service.record_inspection(s, me, case_id, inspection(), q.policy)) == (
                409, "not_received",
            )  # fmt: skip
            assert await refused(q, lambda s: service.forward(s, me, case_id, PARCEL, q.tracker)) == (
                409,
                "not_received",
            )
            assert (await case_row(q, case_id)).status == "inbound"
            async with transaction(q.w.sessionmaker) as s:
                [got] = await service.receive_parcel(
                    s, me, ReceiveIn("sf00000001"), q.policy
                )  # scanned lower-case
            assert got.id == case_id and got.status == "received"
            assert await refused(q, lambda s: service.receive(s, me, case_id, q.policy)) == (
                409,
                "already_received",
            )
            assert await refused(q, lambda s: service.forward(s, me, case_id, PARCEL, q.tracker)) == (
                409,
                "not_inspected",
            )
            assert await refused(q, lambda s: service.return_to_seller(s, me, case_id, PARCEL, q.tracker)) == (
                409, "not_inspected",
            )  # fmt: skip
            await inspect(q, case_id, inspection("fail", "GTC-001"))
            row = await case_row(q, case_id)
            assert await refused(q, lambda s: service.record_inspection(s, me, case_id, inspection("pass", "GTC-002"),
                                                                        q.policy)) == (409, "already_inspected")  # fmt: skip
            assert await refused(q, lambda s: service.forward(s, me, case_id, PARCEL, q.tracker)) == (
                409, "inspection_failed",
            )  # fmt: skip
            after = await case_row(q, case_id)
            assert (after.status, after.result, after.certificate_no, after.updated_at) == (
                "failed", "fail", "GTC-001", row.updated_at,
            )  # fmt: skip
            async with transaction(q.w.sessionmaker) as s:
                await service.return_to_seller(s, me, case_id, PARCEL, q.tracker)
            assert await refused(q, lambda s: service.return_to_seller(s, me, case_id, ParcelIn("SF", "SF9999"),
                                                                       q.tracker)) == (409, "already_sent")  # fmt: skip

            # A passed item is forwarded, never returned.
            _, passed = await received(q, 1, "p")
            await inspect(q, passed, inspection("pass", "GTC-003"))
            assert await refused(q, lambda s: service.return_to_seller(s, me, passed, PARCEL, q.tracker)) == (
                409, "inspection_passed",
            )  # fmt: skip
            assert (await case_row(q, passed)).status == "passed"
        finally:
            await q.w.engine.dispose()  # type: ignore[attr-defined]

    run(scenario())


def test_pass_path_delivers_through_the_tracking_timeline_and_settles(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        q = await qc_world(db_url, tmp_path)
        try:
            order_id, case_id = await shipped_jade(q)
            shipped_at = (await order_row(q.w, order_id)).shipped_at
            # The seller's parcel reaches the warehouse: that delivers nothing to the buyer.
            await tasks.deliver_tracking(q.w.sessionmaker, q.settings, now=shipped_at + hours(49))
            assert (await order_row(q.w, order_id)).status == "shipped"
            async with transaction(q.w.sessionmaker) as s:
                queue = await service.inspector_queue(s, q.inspectors[0])
                assert [c.id for c in queue.inbound] == [case_id] and queue.inbound[
                    0
                ].inbound_stage == "delivered"
                await service.receive(s, q.inspectors[0], case_id, q.policy)
            async with transaction(q.w.sessionmaker) as s:
                await service.add_photo(
                    s, q.inspectors[0], case_id, catalog.Upload("a.png", "image/png", image_bytes()),
                    q.settings.media_dir, q.settings.max_upload_bytes,
                )  # fmt: skip
                await service.record_inspection(
                    s, q.inspectors[0], case_id, inspection("pass", " ngtc 2026 0001 "), q.policy,
                    photos=[catalog.Upload("b.jpg", "image/jpeg", image_bytes("JPEG"))],
                    media_dir=q.settings.media_dir, max_bytes=q.settings.max_upload_bytes,
                )  # fmt: skip
            case = await case_row(q, case_id)
            assert (case.status, case.result, case.certificate_no) == ("passed", "pass", "NGTC20260001")
            assert (case.material, case.weight_mg, case.lab_id, case.source) == (
                "和田玉",
                52340,
                q.labs[0],
                "console",
            )
            assert (case.fee_fen, case.fee_payer, case.inspected_by_id) == (2000, "shop", q.inspectors[0].id)
            assert await count(q, QcPhoto, case_id=case_id) == 2
            assert await events_of(q, "fulfillment.inspection_passed") == [
                {
                    "case_id": case_id,
                    "order_id": order_id,
                    "shop_id": q.w.shops[1],
                    "certificate_no": "NGTC20260001",
                }
            ]
            inbound = (await case_row(q, case_id)).inbound_tracking_no
            assert await refused(
                q,
                lambda s: service.forward(
                    s, q.inspectors[0], case_id, ParcelIn("SF", inbound.lower()), q.tracker
                ),
            ) == (409, "tracking_in_use")
            async with transaction(q.w.sessionmaker) as s:
                out = await service.forward(
                    s, q.inspectors[0], case_id, ParcelIn("SF", "SFQC1001"), q.tracker
                )
            assert out.status == "forwarded" and [(p.leg, p.tracking_no) for p in out.parcels] == [
                ("qc_to_buyer", "SFQC1001")
            ]
            assert out.forwarded_at is not None
            # The carrier delivers the forwarded parcel: the order is delivered, dated by the carrier.
            await tasks.deliver_tracking(q.w.sessionmaker, q.settings, now=out.forwarded_at + hours(49))
            order = await order_row(q.w, order_id)
            assert order.status == "delivered"
            assert abs(order.delivered_at - (out.forwarded_at + hours(48))) < dt.timedelta(seconds=1)
            async with transaction(q.w.sessionmaker) as s:
                panel = await service.qc_of_order(s, await orders.get_order(s, q.w.buyers[0], order_id))
                assert (
                    panel is not None
                    and panel.case is not None
                    and panel.case.certificate_no == "NGTC20260001"
                )
                assert len(panel.case.photos) == 2
                await orders.confirm_receipt(s, q.w.buyers[0], order_id)
            assert await settle(q.w.sessionmaker, utcnow() + dt.timedelta(days=30)) == 1
            fee = (JADE_PRICE * 300 + 5000) // 10000  # the jade category's 3% service fee
            assert await balance(q.w, ledger.shop_payable(q.w.shops[1])) == TOTAL - fee - 2000
            assert await balance(q.w, ledger.EXTERNAL_INSPECTION_FEES) == 2000
            assert await balance(q.w, ledger.ESCROW) == 0
            await ledger_ok(q.w)
        finally:
            await q.w.engine.dispose()  # type: ignore[attr-defined]

    run(scenario())


def test_fail_path_refunds_in_full_to_the_fen_and_returns_the_item(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        q = await qc_world(db_url, tmp_path)
        try:
            order_id, case_id = await received(q)
            await inspect(q, case_id, inspection("fail", "NGTC-F-1", notes="树脂充填，B货"))
            order = await order_row(q.w, order_id)
            assert (order.status, order.paid_fen, order.refunded_fen) == ("refunded", TOTAL, TOTAL)
            assert order.shipping_refunded_fen == JADE_SHIPPING
            async with transaction(q.w.sessionmaker) as s:
                [line] = list(await s.scalars(select(OrderLine).where(OrderLine.order_id == order_id)))
            assert line.refunded_fen == JADE_PRICE  # each line's remainder, so the base is right
            [refund] = await refunds(q.w)
            assert (refund.order_id, refund.amount_fen, refund.idempotency_key) == (
                order_id,
                TOTAL,
                f"qc:{case_id}",
            )
            assert await balance(q.w, ledger.ESCROW) == 0
            assert await balance(q.w, ledger.EXTERNAL_BUYER_REFUNDS) == TOTAL
            assert await balance(q.w, ledger.shop_payable(q.w.shops[1])) == -2000  # the lab's fee
            await ledger_ok(q.w)
            case = await case_row(q, case_id)
            assert (case.status, case.result, case.refunded_fen, case.notes) == (
                "failed",
                "fail",
                TOTAL,
                "树脂充填，B货",
            )
            [failure] = await events_of(q, "fulfillment.inspection_failed")
            assert failure == {
                "case_id": case_id, "order_id": order_id, "shop_id": q.w.shops[1], "product_ids": [line.product_id],
                "certificate_no": "NGTC-F-1", "refunded_fen": TOTAL,
            }  # fmt: skip

            # Held until the shop sets a return address; then back it goes.
            async with transaction(q.w.sessionmaker) as s:
                panel = await service.qc_of_order(s, await orders.load_order(s, order_id))
                assert panel is not None and panel.held and panel.shop_failures == 1
                assert (await service.get_case(s, q.inspectors[0], case_id)).send_to is None
            assert await refused(
                q, lambda s: service.return_to_seller(s, q.inspectors[0], case_id, PARCEL, q.tracker)
            ) == (409, "no_return_address")
            assert (await case_row(q, case_id)).status == "failed"
            await set_return_address(q)
            async with transaction(q.w.sessionmaker) as s:
                out = await service.return_to_seller(
                    s, q.inspectors[0], case_id, ParcelIn("ZTO", "ZTO-BACK-1"), q.tracker
                )
            assert out.status == "returned" and out.returned_at is not None
            async with transaction(q.w.sessionmaker) as s:
                legs = [(p.leg, p.tracking_no) for p in await service.parcels_of(s, [order_id])]
                panel = await service.qc_of_order(s, await orders.load_order(s, order_id))
            assert legs == [("to_qc", "SF00000001"), ("qc_to_seller", "ZTO-BACK-1")]
            assert panel is not None and not panel.held
            assert len(await events_of(q, "fulfillment.inspection_failed")) == 1
            assert len(await refunds(q.w)) == 1  # the refund was made once
        finally:
            await q.w.engine.dispose()  # type: ignore[attr-defined]

    run(scenario())


def test_a_fail_after_an_order_level_partial_refund_refunds_the_rest(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        q = await qc_world(db_url, tmp_path, qc_fee_fen=0)
        try:
            order_id, case_id = await received(q)
            async with transaction(q.w.sessionmaker) as s:  # a goodwill refund, not for a line
                await payments.refund_order(s, order_id, 5000, "goodwill", "goodwill:1")
            await inspect(q, case_id, inspection("fail", "NGTC-F-2"))
            order = await order_row(q.w, order_id)
            assert (order.status, order.refunded_fen) == ("refunded", TOTAL)
            assert [r.amount_fen for r in await refunds(q.w)] == [5000, TOTAL - 5000]
            assert (await case_row(q, case_id)).refunded_fen == TOTAL - 5000
            assert await balance(q.w, ledger.ESCROW) == 0
            assert await balance(q.w, ledger.EXTERNAL_INSPECTION_FEES) == 0  # no fee configured
            assert (await case_row(q, case_id)).fee_payer is None
            await ledger_ok(q.w)
        finally:
            await q.w.engine.dispose()  # type: ignore[attr-defined]

    run(scenario())


def test_a_certificate_number_is_used_once_and_a_reuse_stores_nothing(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        q = await qc_world(db_url, tmp_path)
        try:
            _, first = await received(q, 0, "a")
            order_id, second = await received(q, 1, "b")
            await inspect(q, first, inspection("pass", "CERT-777"))
            transactions = await count(q, LedgerTransaction)
            for number in ("CERT-777", "cert-777", " CERT-777 "):
                assert await refused(
                    q, lambda s, n=number: service.record_inspection(
                        s, q.inspectors[0], second, inspection("fail", n), q.policy,
                        photos=[catalog.Upload("c.png", "image/png", image_bytes())],
                        media_dir=q.settings.media_dir, max_bytes=q.settings.max_upload_bytes,
                    )
                ) == (409, "certificate_taken")  # fmt: skip
            case = await case_row(q, second)
            assert (case.status, case.result, case.certificate_no, case.fee_fen) == (
                "received",
                None,
                None,
                0,
            )
            assert await count(q, QcPhoto, case_id=second) == 0
            assert not (q.settings.media_dir / f"qc/{second}").exists() or not any(
                (q.settings.media_dir / f"qc/{second}").iterdir()
            )  # the photo written before the refusal was removed with the rollback
            assert await count(q, LedgerTransaction) == transactions  # no fee, no refund
            assert (await order_row(q.w, order_id)).status == "shipped"
            assert await refused(
                q,
                lambda s: service.record_inspection(
                    s, q.inspectors[0], second, inspection("pass", "CERT 7/7!"), q.policy
                ),
            ) == (422, "bad_certificate_no")
            # Bad weights and results never reach the case.
            for bad in ({"weight_mg": 12345}, {"weight_mg": 0}, {"result": "maybe"}, {"material": ""}):
                assert (await refused(
                    q, lambda s, b=bad: service.record_inspection(
                        s, q.inspectors[0], second, inspection(**{"result": "pass", "number": "CERT-778", **b}), q.policy)
                ))[0] == 422, bad  # fmt: skip
            assert (await case_row(q, second)).status == "received"
        finally:
            await q.w.engine.dispose()  # type: ignore[attr-defined]

    run(scenario())


@pytest.mark.parametrize("payer", ["shop", "platform"])
def test_the_labs_fee_is_posted_for_either_payer(db_url: str, tmp_path: Path, payer: str) -> None:
    async def scenario() -> None:
        q = await qc_world(db_url, tmp_path, qc_fee_payer=payer, qc_fee_fen=3500)
        try:
            _, case_id = await received(q)
            await inspect(q, case_id, inspection("pass", "FEE-1"))
            account = ledger.shop_payable(q.w.shops[1]) if payer == "shop" else ledger.PLATFORM_FEE_REVENUE
            other = ledger.PLATFORM_FEE_REVENUE if payer == "shop" else ledger.shop_payable(q.w.shops[1])
            assert await balance(q.w, account) == -3500
            assert await balance(q.w, other) == 0
            assert await balance(q.w, ledger.EXTERNAL_INSPECTION_FEES) == 3500
            case = await case_row(q, case_id)
            assert (case.fee_fen, case.fee_payer) == (3500, payer)
            async with transaction(q.w.sessionmaker) as s:
                posted = await ledger.transaction_for(s, f"qcfee:{case_id}")
                assert posted is not None and (posted.kind, posted.ref) == ("inspection_fee", f"qc:{case_id}")
            await ledger_ok(q.w)
        finally:
            await q.w.engine.dispose()  # type: ignore[attr-defined]

    run(scenario())


def test_the_turnaround_sweeper_alerts_once_and_survives_restarts(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        q = await qc_world(db_url, tmp_path, qc_turnaround_hours=24)
        try:
            _, case_id = await received(q)
            _, done = await received(q, 1, "b")
            await inspect(q, done, inspection("pass", "SWEEP-1"))  # inspected in time: never overdue
            due = (await case_row(q, case_id)).due_at
            assert await tasks.alert_overdue(q.w.sessionmaker, due - hours(1)) == 0
            later = due + hours(1)
            results = await asyncio.gather(*(tasks.alert_overdue(q.w.sessionmaker, later) for _ in range(3)))
            assert sum(results) == 1  # racing sweepers: one wins
            assert (
                await tasks.alert_overdue(q.w.sessionmaker, later + hours(5)) == 0
            )  # a restart: done already
            assert (await case_row(q, case_id)).overdue_alerted_at == later
            events = await events_of(q, "fulfillment.inspection_overdue")
            assert [e["case_id"] for e in events] == [case_id]
            async with transaction(q.w.sessionmaker) as s:
                assert [c.id for c in await service.overdue(s, q.w.ops, later)] == [case_id]
                queue = await service.inspector_queue(s, q.inspectors[0], later)
                assert [c.id for c in queue.overdue] == [case_id] and queue.overdue[0].overdue
                assert await refused(q, lambda s: service.overdue(s, q.inspectors[0], later)) == (
                    403,
                    "ops_only",
                )
            await inspect(q, case_id, inspection("pass", "SWEEP-2"))
            async with transaction(q.w.sessionmaker) as s:
                assert await service.overdue(s, q.w.ops, later) == []
            assert (await tasks.run_once(q.w.sessionmaker, q.settings, later))["inspections_overdue"] == 0
        finally:
            await q.w.engine.dispose()  # type: ignore[attr-defined]

    run(scenario())


def test_an_order_refunded_while_at_the_lab_goes_back_uninspected(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        q = await qc_world(db_url, tmp_path)
        try:
            await set_return_address(q)
            order_id, case_id = await received(q)
            async with transaction(q.w.sessionmaker) as s:
                await payments.refund_order(s, order_id, TOTAL, "not received", "aftersales:test")
            assert await refused(
                q, lambda s: service.record_inspection(s, q.inspectors[0], case_id, inspection(), q.policy)
            ) == (409, "order_refunded")
            async with transaction(q.w.sessionmaker) as s:
                out = await service.return_to_seller(s, q.inspectors[0], case_id, PARCEL, q.tracker)
            assert (out.status, out.result, out.fee_fen) == ("returned", None, 0)
            async with transaction(q.w.sessionmaker) as s:
                assert (await s.get(Order, order_id)).refunded_fen == TOTAL
        finally:
            await q.w.engine.dispose()  # type: ignore[attr-defined]

    run(scenario())


def lab_body(event_id: str, case_id: int | None, number: str, result: str = "pass", **data: object) -> bytes:
    payload = {"result": result, "material": "翡翠", "weight_mg": 18880, "certificate_no": number, "notes": "A货",
               **({"case_id": case_id} if case_id is not None else {}), **data}  # fmt: skip
    return json.dumps(
        {"id": event_id, "type": "inspection.completed", "created": 1, "data": payload}
    ).encode()


def test_lab_callbacks_valid_duplicate_forged_stale_and_another_labs_case(
    db_url: str, tmp_path: Path
) -> None:
    async def scenario() -> None:
        q = await qc_world(db_url, tmp_path)
        try:
            order_id, case_id = await received(q)  # at warehouse 0, whose lab is labs[0]
            lab = q.labs[0]
            now = utcnow()

            async def post(lab_id: int, body: bytes, headers: dict[str, str]) -> object:
                async with transaction(q.w.sessionmaker) as s:
                    return await service.handle_lab_result(s, lab_id, headers, body, q.policy, now)

            body = lab_body("evt_1", case_id, "LAB-0001")
            forged = lab_headers(service.QcPolicy(secret_key="someone-else"), lab, body, now)
            stale = lab_headers(q.policy, lab, body, now - dt.timedelta(minutes=6))
            other_key = lab_headers(q.policy, q.labs[1], body, now)  # the other lab's key
            tampered = body.replace(b"LAB-0001", b"LAB-0002")
            for headers, payload in ((forged, body), (stale, body), ({}, body), (other_key, body),
                                     (lab_headers(q.policy, lab, body, now), tampered)):  # fmt: skip
                with pytest.raises(DomainError) as err:
                    await post(lab, payload, headers)
                assert (err.value.status_code, err.value.code) == (400, "bad_signature")
            malformed = (
                b'{"id": "evt_x", "type": "inspection.completed", "created": 1, "data": {"result": "ok"}}'
            )
            with pytest.raises(DomainError) as err:
                await post(lab, malformed, lab_headers(q.policy, lab, malformed, now))
            assert (err.value.status_code, err.value.code) == (400, "bad_payload")
            # Signed by the other lab, about this lab's case: not theirs to report.
            theirs = lab_body("evt_2", case_id, "LAB-0003")
            with pytest.raises(DomainError) as err:
                await post(q.labs[1], theirs, lab_headers(q.policy, q.labs[1], theirs, now))
            assert (err.value.status_code, err.value.code) == (404, "case_not_found")
            assert await count(q, QcLabEvent) == 0 and (await case_row(q, case_id)).status == "received"

            ack = await post(lab, body, lab_headers(q.policy, lab, body, now))
            assert (ack.outcome, ack.case_id) == ("applied", case_id)  # type: ignore[attr-defined]
            case = await case_row(q, case_id)
            assert (case.status, case.certificate_no, case.source, case.inspected_by_id, case.weight_mg) == (
                "passed", "LAB-0001", "lab", None, 18880,
            )  # fmt: skip
            again = await post(lab, body, lab_headers(q.policy, lab, body, now))
            assert again.outcome == "duplicate"  # type: ignore[attr-defined]
            assert (
                await count(q, QcLabEvent) == 1
                and await count(q, LedgerTransaction, kind="inspection_fee") == 1
            )

            # The console's rules: a reused number is a 409 and nothing is kept; by order id works.
            other_order, other_case = await received(q, 1, "b")
            reuse = lab_body("evt_3", None, "lab-0001", "fail", order_id=other_order)
            with pytest.raises(DomainError) as err:
                await post(lab, reuse, lab_headers(q.policy, lab, reuse, now))
            assert (err.value.status_code, err.value.code) == (409, "certificate_taken")
            assert await count(q, QcLabEvent) == 1 and (await order_row(q.w, other_order)).status == "shipped"
            fail = lab_body("evt_3", None, "LAB-0004", "fail", order_id=other_order)
            assert (await post(lab, fail, lab_headers(q.policy, lab, fail, now))).outcome == "applied"  # type: ignore[attr-defined]
            assert (await order_row(q.w, other_order)).status == "refunded"
            assert (await case_row(q, other_case)).status == "failed"
            mismatch = lab_body("evt_4", case_id, "LAB-0005", order_id=other_order)
            with pytest.raises(DomainError) as err:
                await post(lab, mismatch, lab_headers(q.policy, lab, mismatch, now))
            assert err.value.status_code == 404
            await ledger_ok(q.w)
            assert order_id != other_order
        finally:
            await q.w.engine.dispose()  # type: ignore[attr-defined]

    run(scenario())
