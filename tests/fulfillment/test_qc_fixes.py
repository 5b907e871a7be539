"""Regression tests for the QC warehouse review, through the services (SQLite and PostgreSQL, the
races on PostgreSQL only): a full refund racing forward, a pass, a lab's pass and a return; hand
delivery of an inspected order; lab certificate numbers too long to store; ids past 2**62; blank
names, addresses, materials and carriers; one tracking number on parcels of several shops; the
buyer's view of the inspection; items refunded while at the lab and the turnaround deadline; the
batched, literal-indexed and race-safe receiving."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient
from sqlalchemy import event, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from tests.fulfillment.qc_util import (
    JADE_PRICE,
    JADE_SHIPPING,
    PARCEL,
    Qc,
    case_row,
    count,
    hours,
    inspect,
    inspection,
    lab_headers,
    qc_world,
    received,
    shipped_jade,
    warehouse_in,
)
from tests.fulfillment.test_qc_pages import within, zh
from tests.helpers import token_for
from tests.payments.util import balance, buyer_pays, deliver, ledger_ok, order_row, place, refunds, start
from tests.web.test_pages import marked, sign_in
from trustlive.catalog.models import Product, Sku
from trustlive.config import Settings
from trustlive.db import transaction, utcnow
from trustlive.errors import DomainError
from trustlive.fulfillment import service, tasks
from trustlive.fulfillment.models import QcCase, QcLab, QcLabEvent, QcWarehouse, Shipment
from trustlive.fulfillment.schemas import InspectorIn, LabIn, ParcelIn, ReceiveIn, RouteIn
from trustlive.ledger import service as ledger
from trustlive.ledger.models import LedgerTransaction
from trustlive.orders import service as orders
from trustlive.orders.schemas import ReturnAddressIn, ReturnsIn, ShipIn
from trustlive.payments import service as payments

TOTAL = JADE_PRICE + JADE_SHIPPING
TOO_BIG = 2**62 + 1  # fits a BIGINT, so only the schema can refuse it


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def pg_only(db_url: str) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite serialises writers (BEGIN IMMEDIATE); this race is PostgreSQL's")


async def refused(q: Qc, call) -> DomainError:  # type: ignore[no-untyped-def]
    """Run ``call(session)`` in its own transaction, expecting a domain error."""
    with pytest.raises(DomainError) as info:
        async with transaction(q.w.sessionmaker) as s:
            await call(s)
    return info.value


async def set_return_address(q: Qc) -> None:
    address = ReturnAddressIn(
        recipient="和田玉坊售后", phone="13900000000", region="新疆和田市", detail="玉龙路 9 号"
    )
    async with transaction(q.w.sessionmaker) as s:
        await orders.set_returns(s, q.merchant, q.w.shops[1], ReturnsIn(return_address=address))


async def while_uncommitted(
    q: Qc, first: Callable[[AsyncSession], Awaitable[Any]], action: Callable[[AsyncSession], Awaitable[Any]]
) -> tuple[bool, Any]:
    """``first`` has written (and holds its locks) but not committed when ``action`` starts in
    another transaction; ``first`` commits once ``action`` waits for one of its locks (or has
    finished). Returns whether ``action`` had to wait (blocked on a lock, as pg_stat_activity
    says) and its result, or the DomainError it raised."""
    pids: list[int] = []

    async def act() -> Any:
        async with transaction(q.w.sessionmaker) as s:
            pids.append(await s.scalar(text("SELECT pg_backend_pid()")))
            return await action(s)

    async with transaction(q.w.sessionmaker) as s:
        await first(s)
        task = asyncio.create_task(act())
        waited = False
        for _ in range(500):  # up to 10 s: until the action finishes or waits for a lock
            await asyncio.sleep(0.02)
            if task.done():
                break
            if pids:
                async with transaction(q.w.sessionmaker) as probe:
                    state = await probe.scalar(
                        text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid"),
                        {"pid": pids[0]},
                    )
                if state == "Lock":
                    waited = True
                    break
    try:
        return waited, await task
    except DomainError as err:
        return waited, err


async def during_uncommitted_refund(
    q: Qc, order_id: int, action: Callable[[AsyncSession], Awaitable[Any]]
) -> tuple[bool, Any]:
    """A full refund (as an approved after-sales request makes it) is written but not committed
    when ``action`` starts in another transaction (``while_uncommitted``)."""

    async def refund(s: AsyncSession) -> None:
        order = await orders.load_order(s, order_id)
        await payments.refund_order(
            s, order_id, order.paid_fen - order.refunded_fen, "after-sales request", "aftersales:race"
        )

    return await while_uncommitted(q, refund, action)


# --- 1. a full refund racing the warehouse's moves (PostgreSQL) -------------------------------


def test_forward_waits_for_a_racing_full_refund_and_then_refuses(db_url: str, tmp_path: Path) -> None:
    pg_only(db_url)

    async def scenario() -> None:
        q = await qc_world(db_url, tmp_path)
        try:
            order_id, case_id = await received(q)
            await inspect(q, case_id, inspection("pass", "RACE-FWD-1"))
            waited, outcome = await during_uncommitted_refund(
                q, order_id, lambda s: service.forward(s, q.inspectors[0], case_id, PARCEL, q.tracker)
            )
            assert waited, "forward read the order without waiting for the refund's lock"
            assert isinstance(outcome, DomainError) and (outcome.status_code, outcome.code) == (
                409,
                "order_refunded",
            )
            case, order = await case_row(q, case_id), await order_row(q.w, order_id)
            assert (case.status, case.forwarded_at, order.status, order.refunded_fen) == (
                "passed", None, "refunded", TOTAL,
            )  # fmt: skip
            assert await count(q, Shipment, order_id=order_id, leg="qc_to_buyer") == 0
            # Back to the shop it goes instead.
            await set_return_address(q)
            async with transaction(q.w.sessionmaker) as s:
                out = await service.return_to_seller(s, q.inspectors[0], case_id, PARCEL, q.tracker)
            assert out.status == "returned"
            await ledger_ok(q.w)
        finally:
            await q.w.engine.dispose()  # type: ignore[attr-defined]

    run(scenario())


@pytest.mark.parametrize("source", ["console", "lab"])
def test_a_pass_waits_for_a_racing_full_refund_and_is_refused(
    db_url: str, tmp_path: Path, source: str
) -> None:
    pg_only(db_url)

    async def scenario() -> None:
        q = await qc_world(db_url, tmp_path)
        try:
            order_id, case_id = await received(q)
            fees = await count(q, LedgerTransaction, kind="inspection_fee")

            async def record(s: AsyncSession) -> Any:
                if source == "console":
                    return await service.record_inspection(
                        s, q.inspectors[0], case_id, inspection("pass", "RACE-PASS-1"), q.policy
                    )
                body = json.dumps({"id": "evt_race", "type": "inspection.completed", "created": 1, "data": {
                    "order_id": order_id, "result": "pass", "material": "和田玉", "weight_mg": 30000,
                    "certificate_no": "RACE-PASS-1"}}).encode()  # fmt: skip
                headers = lab_headers(q.policy, q.labs[0], body)
                return await service.handle_lab_result(s, q.labs[0], headers, body, q.policy)

            waited, outcome = await during_uncommitted_refund(q, order_id, record)
            assert waited
            assert isinstance(outcome, DomainError) and (outcome.status_code, outcome.code) == (
                409,
                "order_refunded",
            )
            case = await case_row(q, case_id)
            assert (case.status, case.result, case.certificate_no, case.fee_fen) == (
                "received",
                None,
                None,
                0,
            )
            assert await count(q, LedgerTransaction, kind="inspection_fee") == fees  # no fee for it
            assert await count(q, QcLabEvent) == 0  # a refused event is not kept
            assert (await order_row(q.w, order_id)).status == "refunded"
            await ledger_ok(q.w)
        finally:
            await q.w.engine.dispose()  # type: ignore[attr-defined]

    run(scenario())


def test_return_waits_for_a_racing_full_refund_and_sends_the_passed_item_back(
    db_url: str, tmp_path: Path
) -> None:
    pg_only(db_url)

    async def scenario() -> None:
        q = await qc_world(db_url, tmp_path)
        try:
            await set_return_address(q)
            order_id, case_id = await received(q)
            await inspect(q, case_id, inspection("pass", "RACE-RET-1"))
            waited, outcome = await during_uncommitted_refund(
                q,
                order_id,
                lambda s: service.return_to_seller(s, q.inspectors[0], case_id, PARCEL, q.tracker),
            )
            assert waited and not isinstance(outcome, DomainError), outcome
            assert outcome.status == "returned" and (await case_row(q, case_id)).status == "returned"
        finally:
            await q.w.engine.dispose()  # type: ignore[attr-defined]

    run(scenario())


def test_a_failure_racing_a_full_refund_refunds_once(db_url: str, tmp_path: Path) -> None:
    """A failure takes no order lock before its refund (which locks the payment intent first):
    it waits at the intent, then finds the order refunded and is refused, no deadlock."""
    pg_only(db_url)

    async def scenario() -> None:
        q = await qc_world(db_url, tmp_path)
        try:
            order_id, case_id = await received(q)
            waited, outcome = await during_uncommitted_refund(
                q, order_id,
                lambda s: service.record_inspection(s, q.inspectors[0], case_id, inspection("fail", "RACE-F-1"),
                                                    q.policy),
            )  # fmt: skip
            assert waited
            assert isinstance(outcome, DomainError) and (outcome.status_code, outcome.code) == (
                409,
                "order_refunded",
            )
            assert [r.amount_fen for r in await refunds(q.w)] == [TOTAL]
            assert (await case_row(q, case_id)).status == "received"
            await ledger_ok(q.w)
        finally:
            await q.w.engine.dispose()  # type: ignore[attr-defined]

    run(scenario())


# --- 2. delivering an inspected order by hand ----------------------------------------------------


def test_deliver_waits_for_the_warehouse_to_forward_an_inspected_order(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        q = await qc_world(db_url, tmp_path)
        try:
            policy = orders.DEFAULT_POLICY
            order_id, case_id = await shipped_jade(q)  # inbound
            for who in (q.w.ops, q.merchant):
                err = await refused(q, lambda s, a=who: service.deliver(s, a, order_id, policy))
                assert (err.status_code, err.code) == (409, "inspection_route")
            err = await refused(q, lambda s: service.deliver(s, q.w.buyers[0], order_id, policy))
            assert err.status_code in (403, 404)  # the buyer: the orders rules
            async with transaction(q.w.sessionmaker) as s:
                await service.receive(s, q.inspectors[0], case_id, q.policy)
            err = await refused(q, lambda s: service.deliver(s, q.w.ops, order_id, policy))
            assert (err.status_code, err.code) == (409, "inspection_route")
            await inspect(q, case_id, inspection("pass", "DELIVER-1"))
            err = await refused(q, lambda s: service.deliver(s, q.w.ops, order_id, policy))
            assert (err.status_code, err.code) == (409, "inspection_route")  # passed, not sent yet
            assert (await order_row(q.w, order_id)).status == "shipped"
            async with transaction(q.w.sessionmaker) as s:
                await service.forward(s, q.inspectors[0], case_id, PARCEL, q.tracker)
            async with transaction(q.w.sessionmaker) as s:
                out = await service.deliver(s, q.w.ops, order_id, policy)
            row = await order_row(q.w, order_id)
            assert (out.status, row.status) == ("delivered", "delivered") and row.auto_confirm_at is not None

            # An order that needs no inspection: the shop marks it delivered as before.
            (plain,) = await place(q.w, 1, (q.w.skus[0], 1), key="plain")
            await buyer_pays(q.w, q.settings, await start(q.w, q.settings, 1, [plain.id], "pay-plain"))
            await deliver(q.w, q.settings)
            async with transaction(q.w.sessionmaker) as s:
                await service.ship(s, q.w.merchants[0], plain.id, ShipIn("SF", "SFPLAIN001"), q.tracker)
            async with transaction(q.w.sessionmaker) as s:
                assert (await service.deliver(s, q.w.merchants[0], plain.id, policy)).status == "delivered"
        finally:
            await q.w.engine.dispose()  # type: ignore[attr-defined]

    run(scenario())


# --- 3, 4, 5. input the schemas now refuse before anything is stored ------------------------------


def lab_event(event_id: str, number: str, **data: object) -> bytes:
    payload = {"result": "pass", "material": "和田玉", "weight_mg": 30000, "certificate_no": number, **data}
    return json.dumps(
        {"id": event_id, "type": "inspection.completed", "created": 1, "data": payload}
    ).encode()


def test_lab_certificate_numbers_are_checked_before_the_event_is_stored(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        q = await qc_world(db_url, tmp_path)
        try:
            _, case_id = await received(q)
            lab = q.labs[0]

            async def post(body: bytes) -> Any:
                async with transaction(q.w.sessionmaker) as s:
                    return await service.handle_lab_result(
                        s, lab, lab_headers(q.policy, lab, body), body, q.policy
                    )

            for number in ("A" * 41, "A" * 45, "B-" * 24, "NGTC/2026"):
                with pytest.raises(DomainError) as info:
                    await post(lab_event(f"evt_{len(number)}_{number[:2]}", number, case_id=case_id))
                assert (info.value.status_code, info.value.code) == (422, "bad_certificate_no"), number
            assert await count(q, QcLabEvent) == 0 and (await case_row(q, case_id)).status == "received"
            # 48 characters with spaces are 40 once normalised: accepted, stored normalised.
            spaced = " ".join(["ABCDEFGHIJ"] * 4) + "   "
            assert len(spaced) == 46
            ack = await post(lab_event("evt_ok", spaced, case_id=case_id))
            assert ack.outcome == "applied"
            async with transaction(q.w.sessionmaker) as s:
                stored = await s.scalar(select(QcLabEvent.certificate_no))
            assert stored == "ABCDEFGHIJ" * 4 == (await case_row(q, case_id)).certificate_no
        finally:
            await q.w.engine.dispose()  # type: ignore[attr-defined]

    run(scenario())


def test_ids_past_2_62_are_refused_by_the_schemas(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        q = await qc_world(db_url, tmp_path)
        try:
            ops = q.w.ops
            for call in (
                lambda s: service.set_route(s, ops, RouteIn(category_id=TOO_BIG, warehouse_id=None)),
                lambda s: service.set_route(s, ops, RouteIn(category_id=q.jade, warehouse_id=TOO_BIG)),
                lambda s: service.add_inspector(s, ops, q.warehouses[0], InspectorIn(user_id=TOO_BIG)),
                lambda s: service.create_warehouse(s, ops, warehouse_in("大仓", TOO_BIG)),
            ):
                err = await refused(q, call)
                assert (err.status_code, err.code) == (422, "validation_error"), err.code
            _, case_id = await received(q)
            for data in ({"case_id": TOO_BIG}, {"order_id": TOO_BIG}):
                body = lab_event("evt_big", "BIG-0001", **data)
                err = await refused(q, lambda s, b=body: service.handle_lab_result(
                    s, q.labs[0], lab_headers(q.policy, q.labs[0], b), b, q.policy))  # fmt: skip
                assert (err.status_code, err.code) == (400, "bad_payload")
            assert await count(q, QcWarehouse) == 2 and (await case_row(q, case_id)).status == "received"
        finally:
            await q.w.engine.dispose()  # type: ignore[attr-defined]

    run(scenario())


def test_blank_names_addresses_materials_and_carriers_are_refused(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        q = await qc_world(db_url, tmp_path)
        try:
            ops = q.w.ops

            async def field_of(call) -> str:  # type: ignore[no-untyped-def]
                err = await refused(q, call)
                assert err.status_code == 422, (err.status_code, err.code)
                return err.fields[0].field

            assert await field_of(lambda s: service.create_lab(s, ops, LabIn(name="   ", cma_no="201901000077"),
                                                               q.policy)) == "name"  # fmt: skip
            assert await field_of(lambda s: service.create_lab(s, ops, LabIn(name=" x ", cma_no="201901000077"),
                                                               q.policy)) == "name"  # fmt: skip
            for name, blank in (("name", "  "), ("recipient", " "), ("region", "   "), ("detail", "  ")):
                data = msgspec.structs.replace(warehouse_in("宁波质检仓", q.labs[0]), **{name: blank})
                assert await field_of(lambda s, d=data: service.create_warehouse(s, ops, d)) == name
            assert (await count(q, QcLab), await count(q, QcWarehouse)) == (2, 2)

            order_id, case_id = await received(q)
            blank = inspection("fail", "BLANK-001", material="   ")
            assert await field_of(lambda s: service.record_inspection(s, q.inspectors[0], case_id, blank,
                                                                      q.policy)) == "material"  # fmt: skip
            assert (await case_row(q, case_id)).status == "received"
            assert (await order_row(q.w, order_id)).status == "shipped"  # no refund
            await inspect(q, case_id, inspection("pass", "BLANK-002"))
            for carrier in ("  ", "Bogus", "sf"):  # only the carriers' codes
                parcel = ParcelIn(carrier, "SFBLANK001")  # type: ignore[arg-type]
                assert await field_of(lambda s, p=parcel: service.forward(s, q.inspectors[0], case_id, p,
                                                                          q.tracker)) == "carrier"  # fmt: skip
            assert (await case_row(q, case_id)).status == "passed"
            assert await count(q, Shipment, order_id=order_id, leg="qc_to_buyer") == 0
        finally:
            await q.w.engine.dispose()  # type: ignore[attr-defined]

    run(scenario())


# --- 6, 9. receiving by tracking number -------------------------------------------------------


async def two_shops_one_number(q: Qc, number: str) -> tuple[int, int]:
    """Shop 0 sells jade too; both shops ship to the default warehouse under ``number`` (shop 1
    with SF, in lower case; shop 0 with YTO). Returns (shop 1's case, shop 0's case)."""
    async with transaction(q.w.sessionmaker) as s:
        product_id = await s.scalar(select(Sku.product_id).where(Sku.id == q.w.skus[0]))
        await s.execute(update(Product).where(Product.id == product_id).values(category_id=q.jade))
    cases = []
    for buyer, sku, merchant, carrier, typed in ((0, q.w.skus[1], q.merchant, "SF", number.lower()),
                                                 (1, q.w.skus[0], q.w.merchants[0], "YTO", number)):  # fmt: skip
        (order,) = await place(q.w, buyer, (sku, 1), key=f"two-{buyer}")
        await buyer_pays(q.w, q.settings, await start(q.w, q.settings, buyer, [order.id], f"pay-two-{buyer}"))
        await deliver(q.w, q.settings)
        async with transaction(q.w.sessionmaker) as s:
            await service.ship(s, merchant, order.id, ShipIn(carrier, typed), q.tracker)
        async with transaction(q.w.sessionmaker) as s:
            cases.append(await s.scalar(select(QcCase.id).where(QcCase.order_id == order.id)))
    return cases[0], cases[1]


def test_one_number_on_parcels_of_two_shops_is_not_received_blindly(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        q = await qc_world(db_url, tmp_path)
        try:
            jade_case, other_case = await two_shops_one_number(q, "8888ZX01")
            assert (await case_row(q, jade_case)).inbound_tracking_no == "8888ZX01"  # stored normalised
            me = q.inspectors[0]
            err = await refused(q, lambda s: service.receive_parcel(s, me, ReceiveIn("8888zx01"), q.policy))
            assert (err.status_code, err.code) == (409, "ambiguous_parcel")
            candidates = err.to_dict()["error"]["candidates"]  # type: ignore[index]
            assert sorted((c["case_id"], c["carrier"], c["shop_id"]) for c in candidates) == sorted(
                [(jade_case, "SF", q.w.shops[1]), (other_case, "YTO", q.w.shops[0])]
            )
            assert all(c["items"] for c in candidates)
            assert {(await case_row(q, c)).status for c in (jade_case, other_case)} == {"inbound"}
            # With the carrier: the one parcel in hand.
            async with transaction(q.w.sessionmaker) as s:
                [got] = await service.receive_parcel(s, me, ReceiveIn("8888zx01", carrier=" sf "), q.policy)
            assert got.id == jade_case and got.status == "received"
            assert (await case_row(q, other_case)).status == "inbound"
            # The other one is now the only parcel waiting under the number.
            async with transaction(q.w.sessionmaker) as s:
                [got] = await service.receive_parcel(s, me, ReceiveIn("8888ZX01"), q.policy)
            assert got.id == other_case
        finally:
            await q.w.engine.dispose()  # type: ignore[attr-defined]

    run(scenario())


def test_receiving_a_parcel_again_is_already_received_and_batched(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        q = await qc_world(db_url, tmp_path)
        try:
            me = q.inspectors[0]
            statements: list[str] = []

            def seen(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
                statements.append(statement)

            async def scan(number: str) -> int:
                statements.clear()
                event.listen(q.w.engine.sync_engine, "before_cursor_execute", seen)  # type: ignore[attr-defined]
                try:
                    async with transaction(q.w.sessionmaker) as s:
                        got = await service.receive_parcel(s, me, ReceiveIn(number), q.policy)
                finally:
                    event.remove(q.w.engine.sync_engine, "before_cursor_execute", seen)  # type: ignore[attr-defined]
                assert {c.status for c in got} == {"received"}
                return len(statements)

            # One parcel of shop 1 carrying one order, and another carrying three.
            await shipped_jade(q, 0, "one", "SFONE0001")
            for i in range(3):
                await shipped_jade(q, i % 2, f"three-{i}", "SFTHREE01")
            assert await scan("SFTHREE01") == await scan("SFONE0001")  # no query per case
            err = await refused(q, lambda s: service.receive_parcel(s, me, ReceiveIn("sfone0001"), q.policy))
            assert (err.status_code, err.code) == (409, "already_received")
        finally:
            await q.w.engine.dispose()  # type: ignore[attr-defined]

    run(scenario())


def test_racing_scans_of_one_parcel_tell_the_loser_already_received(db_url: str, tmp_path: Path) -> None:
    pg_only(db_url)

    async def scenario() -> None:
        q = await qc_world(db_url, tmp_path)
        try:
            _, case_id = await shipped_jade(q, 0, "race", "SFRACE0001")

            def scan(s: AsyncSession) -> Awaitable[Any]:
                return service.receive_parcel(s, q.inspectors[0], ReceiveIn("SFRACE0001"), q.policy)

            waited, err = await while_uncommitted(q, scan, scan)
            # The loser read the case inbound and blocked on the winner's row: its UPDATE (the only
            # statement of a scan that waits for a lock) then found it received, the race's path.
            assert waited, "the loser did not reach its update while the winner's scan was uncommitted"
            assert isinstance(err, DomainError) and (err.status_code, err.code) == (409, "already_received")
            assert (await case_row(q, case_id)).status == "received"
        finally:
            await q.w.engine.dispose()  # type: ignore[attr-defined]

    run(scenario())


# --- 8, 9. refunded while at the lab; the turnaround deadline's queries ----------------------------


def test_an_item_refunded_at_the_lab_is_to_return_not_overdue(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        q = await qc_world(db_url, tmp_path, qc_turnaround_hours=24)
        try:
            refunded_order, refunded_case = await received(q, 0, "gone")
            _, late_case = await received(q, 1, "late")
            async with transaction(q.w.sessionmaker) as s:
                await payments.refund_order(s, refunded_order, TOTAL, "after-sales", "aftersales:gone")
            later = (await case_row(q, late_case)).due_at + hours(1)  # type: ignore[operator]

            statements: list[str] = []

            def seen(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
                statements.append(statement)

            event.listen(q.w.engine.sync_engine, "before_cursor_execute", seen)  # type: ignore[attr-defined]
            try:
                assert await tasks.alert_overdue(q.w.sessionmaker, later) == 1  # the other one only
                async with transaction(q.w.sessionmaker) as s:
                    listed = [c.id for c in await service.overdue(s, q.w.ops, later)]
            finally:
                event.remove(q.w.engine.sync_engine, "before_cursor_execute", seen)  # type: ignore[attr-defined]
            assert listed == [late_case]
            assert (await case_row(q, refunded_case)).overdue_alerted_at is None
            # 'received' is in the SQL itself, as the partial index ix_qc_cases_due's predicate is.
            due_queries = [st for st in statements if "due_at <=" in st]
            assert len(due_queries) >= 3 and all("status = 'received'" in st for st in due_queries), (
                due_queries
            )
            assert await tasks.alert_overdue(q.w.sessionmaker, later + hours(5)) == 0

            async with transaction(q.w.sessionmaker) as s:
                queue = await service.inspector_queue(s, q.inspectors[0], later)
            assert [c.id for c in queue.to_return] == [refunded_case] and not queue.to_return[0].overdue
            assert [c.id for c in queue.arrivals] == [late_case] and [c.id for c in queue.overdue] == [
                late_case
            ]
            assert refunded_case not in [c.id for c in queue.outbound]
        finally:
            await q.w.engine.dispose()  # type: ignore[attr-defined]

    run(scenario())


def test_a_passed_item_refunded_before_forwarding_is_to_return(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        q = await qc_world(db_url, tmp_path)
        try:
            order_id, case_id = await received(q)
            await inspect(q, case_id, inspection("pass", "TO-RETURN-1"))
            async with transaction(q.w.sessionmaker) as s:
                await payments.refund_order(s, order_id, TOTAL, "after-sales", "aftersales:passed")
            async with transaction(q.w.sessionmaker) as s:
                queue = await service.inspector_queue(s, q.inspectors[0])
            assert [c.id for c in queue.to_return] == [case_id] and queue.outbound == []
            assert await balance(q.w, ledger.ESCROW) == 0
        finally:
            await q.w.engine.dispose()  # type: ignore[attr-defined]

    run(scenario())


def test_the_overdue_sweeper_still_alerts_an_order_not_refunded(db_url: str, tmp_path: Path) -> None:
    """The refunded filter leaves partly refunded orders on the list: their result is awaited."""

    async def scenario() -> None:
        q = await qc_world(db_url, tmp_path, qc_turnaround_hours=1)
        try:
            order_id, case_id = await received(q)
            async with transaction(q.w.sessionmaker) as s:
                await payments.refund_order(s, order_id, 100, "goodwill", "goodwill:part")
            later = utcnow() + dt.timedelta(hours=2)
            assert await tasks.alert_overdue(q.w.sessionmaker, later) == 1
            assert (await case_row(q, case_id)).overdue_alerted_at == later
        finally:
            await q.w.engine.dispose()  # type: ignore[attr-defined]

    run(scenario())


# --- 7, and the pages: the buyer's API, the console's choices and items to return ------------------


@pytest.fixture
def qc(client: TestClient, settings: Settings, tmp_path: Path) -> Qc:
    """The QC world in the client's database (as test_qc_pages builds it)."""

    async def build() -> Qc:
        q = await qc_world(settings.database_url, tmp_path / "world")
        await q.w.engine.dispose()  # type: ignore[attr-defined]
        return q

    return run(build())


def test_the_buyer_api_hides_the_shops_fee_and_failures(client: TestClient, qc: Qc) -> None:
    _, earlier = within(qc, lambda q: received(q, 1, "earlier"))
    within(qc, lambda q: inspect(q, earlier, inspection("fail", "EARLIER-FAIL")))
    order_id, case_id = within(qc, lambda q: received(q, 0, "mine"))
    within(qc, lambda q: inspect(q, case_id, inspection("pass", "MINE-PASS")))
    url = f"/api/v1/orders/{order_id}/inspection"
    buyer = client.get(url, headers=token_for(client, "buyer0000")).json()
    assert (buyer["shop_failures"], buyer["case"]["fee_fen"], buyer["case"]["fee_payer"]) == (0, 0, None)
    assert buyer["case"]["certificate_no"] == "MINE-PASS"  # the rest is the buyer's to see
    shop = client.get(url, headers=token_for(client, "merchant2")).json()
    assert (shop["shop_failures"], shop["case"]["fee_fen"], shop["case"]["fee_payer"]) == (1, 2000, "shop")
    ops = client.get(url, headers=token_for(client, "ops1")).json()
    assert ops["shop_failures"] == 1 and ops["case"]["fee_fen"] == 2000


def test_the_console_offers_the_parcels_sharing_a_number_and_the_items_to_return(
    client: TestClient, qc: Qc
) -> None:
    jade_case, other_case = within(qc, lambda q: two_shops_one_number(q, "7777ZX01"))
    api_token = token_for(client, "inspector1")
    token = sign_in(client, "inspector1")
    scan = client.post("/inspect/receive", data={"_csrf_token": token, "tracking_no": "7777zx01"})
    assert scan.status_code == 409 and "tracking_no" in marked(scan.text)
    assert f'data-choice="{jade_case}"' in scan.text and f'data-choice="{other_case}"' in scan.text
    assert f'action="/inspect/cases/{other_case}/receive"' in scan.text
    assert {within(qc, lambda q, c=c: case_row(q, c)).status for c in (jade_case, other_case)} == {"inbound"}
    api = client.post("/api/v1/qc/receive", json={"tracking_no": "7777ZX01"}, headers=api_token)
    assert api.status_code == 409 and api.json()["error"]["code"] == "ambiguous_parcel"
    assert sorted(c["case_id"] for c in api.json()["error"]["candidates"]) == sorted([jade_case, other_case])
    bogus = client.post(
        "/inspect/receive", data={"_csrf_token": token, "tracking_no": "7777ZX01", "carrier": "X"}
    )
    assert bogus.status_code == 422 and "carrier" in marked(bogus.text)
    picked = client.post("/inspect/receive", data={"_csrf_token": token, "tracking_no": "7777ZX01", "carrier": "YTO"},
                         follow_redirects=False)  # fmt: skip
    assert (
        picked.status_code == 303
        and picked.headers["location"] == f"/inspect/cases/{other_case}?done=received"
    )
    assert within(qc, lambda q: case_row(q, jade_case)).status == "inbound"

    # The buyer of the other parcel is refunded in full while it is at the lab: to return.
    async def refund(q: Qc) -> None:
        async with transaction(q.w.sessionmaker) as s:
            case = await s.get(QcCase, other_case)
            assert case is not None
            order = await orders.load_order(s, case.order_id)
            await payments.refund_order(s, order.id, order.paid_fen, "after-sales", "aftersales:page")

    within(qc, refund)
    console = client.get("/inspect").text
    assert 'id="to-return"' in console and "data-to-return" in console
    to_return = console.split('id="to-return"')[1].split("</section>")[0]
    assert f'data-case="{other_case}"' in to_return
    assert "退回商家" in zh(client, "/inspect")


# --- the final read: races in the set-up, one tracking rule, cheaper reads -------------------------


def test_two_first_routes_of_a_category_at_once_do_not_collide(db_url: str, tmp_path: Path) -> None:
    """Both see no route for the category; the second waits for the first's insert, then its
    route replaces it (an upsert), instead of a duplicate key becoming a 500."""
    pg_only(db_url)

    async def scenario() -> None:
        q = await qc_world(db_url, tmp_path)
        try:

            def route_to(warehouse: int) -> Callable[[AsyncSession], Awaitable[Any]]:
                return lambda s: service.set_route(
                    s, q.w.ops, RouteIn(category_id=q.jade, warehouse_id=warehouse)
                )

            waited, outcome = await while_uncommitted(q, route_to(q.warehouses[0]), route_to(q.warehouses[1]))
            assert waited and not isinstance(outcome, DomainError), outcome
            assert [(r.category_id, r.warehouse_id) for r in outcome] == [(q.jade, q.warehouses[1])]
            async with transaction(q.w.sessionmaker) as s:
                routes = [
                    (r.category_id, r.warehouse_id)
                    for r in (await service.setup(s, q.w.ops, q.policy)).routes
                ]
            assert routes == [(q.jade, q.warehouses[1])]
            _, case_id = await shipped_jade(q)
            assert (await case_row(q, case_id)).warehouse_id == q.warehouses[1]
            # Back to the default, twice (the second finds nothing to remove).
            for _ in range(2):
                async with transaction(q.w.sessionmaker) as s:
                    assert (
                        await service.set_route(s, q.w.ops, RouteIn(category_id=q.jade, warehouse_id=None))
                        == []
                    )
        finally:
            await q.w.engine.dispose()  # type: ignore[attr-defined]

    run(scenario())


def test_two_warehouses_made_the_default_at_once_is_its_own_409(db_url: str, tmp_path: Path) -> None:
    """The second waits for the first (both unset the old default), then finds another default:
    409 ``default_taken`` on the default box, not "another warehouse has this name"."""
    pg_only(db_url)

    async def scenario() -> None:
        q = await qc_world(db_url, tmp_path)
        try:
            async with transaction(q.w.sessionmaker) as s:
                third = (await service.create_warehouse(s, q.w.ops, warehouse_in("宁波质检仓", q.labs[0]))).id

            def make_default(warehouse: int, name: str) -> Callable[[AsyncSession], Awaitable[Any]]:
                data = warehouse_in(name, q.labs[0], is_default=True)
                return lambda s: service.update_warehouse(s, q.w.ops, warehouse, data)

            waited, outcome = await while_uncommitted(
                q, make_default(q.warehouses[1], "深圳质检仓"), make_default(third, "宁波质检仓")
            )
            assert waited
            assert isinstance(outcome, DomainError), outcome
            assert (outcome.status_code, outcome.code, outcome.fields[0].field) == (
                409,
                "default_taken",
                "is_default",
            )
            async with transaction(q.w.sessionmaker) as s:
                rows = {w.id: w.is_default for w in await s.scalars(select(QcWarehouse))}
            assert rows == {q.warehouses[0]: False, q.warehouses[1]: True, third: False}
            # Asked again, it is the default (the old one is unset as usual).
            async with transaction(q.w.sessionmaker) as s:
                assert (await make_default(third, "宁波质检仓")(s)).is_default
        finally:
            await q.w.engine.dispose()  # type: ignore[attr-defined]

    run(scenario())


def test_a_parcels_number_is_checked_once_for_every_leg(db_url: str, tmp_path: Path) -> None:
    """``send_parcel`` refuses a number one of the order's parcels on another leg has, compared
    without spaces and case and whatever the carrier; one box may carry two parcels of a leg."""

    async def scenario() -> None:
        q = await qc_world(db_url, tmp_path)
        try:
            order_id, _ = await shipped_jade(q, 0, "legs", "SFLEGS001")  # leg to_qc

            async def send(leg: str, carrier: str, number: str) -> None:
                async with transaction(q.w.sessionmaker) as s:
                    await service.send_parcel(s, order_id, leg, carrier, number, q.tracker)

            for leg, carrier, number in (
                (service.RETURN, "YTO", "sflegs001"),
                (service.QC_TO_BUYER, "SF", " SFLEGS 001 "),
            ):
                err = await refused(q, lambda s, a=(leg, carrier, number): service.send_parcel(s, order_id, *a,
                                                                                               q.tracker))  # fmt: skip
                assert (err.status_code, err.code, err.fields[0].field) == (
                    409,
                    "tracking_in_use",
                    "tracking_no",
                )
            await send(service.RETURN, "SF", "SFBACK0001")
            await send(service.RETURN, "SF", "SFBACK0001")  # two returns of the order in one box
            err = await refused(q, lambda s: service.send_parcel(s, order_id, service.QC_TO_SELLER, "EMS", "sfback0001",
                                                                 q.tracker))  # fmt: skip
            assert (err.status_code, err.code) == (409, "tracking_in_use")
            assert await count(q, Shipment, order_id=order_id) == 3
        finally:
            await q.w.engine.dispose()  # type: ignore[attr-defined]

    run(scenario())


def recording(q: Qc) -> tuple[list[str], Callable[[], None]]:
    """The SQL statements run from now on, and how to stop recording them."""
    statements: list[str] = []

    def seen(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        statements.append(statement)

    engine = q.w.engine.sync_engine  # type: ignore[attr-defined]
    event.listen(engine, "before_cursor_execute", seen)
    return statements, lambda: event.remove(engine, "before_cursor_execute", seen)


def test_the_order_panel_reads_little_and_counts_failures_for_the_shop_only(
    db_url: str, tmp_path: Path
) -> None:
    async def scenario() -> None:
        q = await qc_world(db_url, tmp_path)
        try:
            _, earlier = await received(q, 1, "earlier")
            await inspect(q, earlier, inspection("fail", "PANEL-FAIL"))
            order_id, case_id = await received(q, 0, "panel")
            async with transaction(q.w.sessionmaker) as s:
                order = await orders.get_order(s, q.w.buyers[0], order_id)
                statements, stop = recording(q)
                try:
                    panel = await service.qc_of_order(s, order, q.w.buyers[0])
                finally:
                    stop()
                assert panel is not None and panel.case is not None and panel.warehouse is not None
                assert (panel.case.id, panel.shop_failures, panel.warehouse.lab_name) == (
                    case_id,
                    0,
                    "国检珠宝检测中心",
                )
                assert panel.warehouse.inspectors == [] and panel.warehouse.category_ids == []
                # No count for the buyer, no inspectors, users or routes, and the order is not reloaded.
                read = " ".join(statements).lower()
                for table in ("count(", "qc_inspectors", "qc_routes", "from users", "from orders"):
                    assert table not in read, (table, statements)
                for viewer in (q.merchant, q.w.ops, None):
                    assert (await service.qc_of_order(s, order, viewer)).shop_failures == 1  # type: ignore[union-attr]
        finally:
            await q.w.engine.dispose()  # type: ignore[attr-defined]

    run(scenario())


def test_the_inspectors_moves_answer_with_the_row_they_moved(db_url: str, tmp_path: Path) -> None:
    """Receiving and recording answer with the case as moved, without checking the inspector's
    warehouses again; a failure stores its result and refund in one UPDATE."""

    async def scenario() -> None:
        q = await qc_world(db_url, tmp_path)
        try:
            _, case_id = await shipped_jade(q)
            async with transaction(q.w.sessionmaker) as s:
                statements, stop = recording(q)
                try:
                    out = await service.receive(s, q.inspectors[0], case_id, q.policy)
                finally:
                    stop()
            assert (out.status, out.received_at is not None, out.due_at is not None) == (
                "received",
                True,
                True,
            )
            assert sum("qc_inspectors" in st for st in statements) == 1, statements
            async with transaction(q.w.sessionmaker) as s:
                statements, stop = recording(q)
                try:
                    out = await service.record_inspection(s, q.inspectors[0], case_id,
                                                          inspection("fail", "ONE-UPDATE-1"), q.policy)  # fmt: skip
                finally:
                    stop()
            assert (out.status, out.result, out.refunded_fen, out.fee_fen) == ("failed", "fail", TOTAL, 2000)
            assert out.send_to is None  # the shop has no return address yet: held
            assert sum(st.lstrip().upper().startswith("UPDATE QC_CASES") for st in statements) == 1, (
                statements
            )
            assert sum("qc_inspectors" in st for st in statements) == 1, statements
            row = await case_row(q, case_id)
            assert (row.status, row.refunded_fen) == ("failed", TOTAL)
            await set_return_address(q)
            async with transaction(q.w.sessionmaker) as s:
                case = await service.get_case(s, q.inspectors[0], case_id)
            assert (
                case.send_to is not None
                and case.send_to["recipient"] == "和田玉坊售后"
                and not case.to_return
            )
            async with transaction(q.w.sessionmaker) as s:
                out = await service.return_to_seller(s, q.inspectors[0], case_id, PARCEL, q.tracker)
            assert (out.status, out.returned_at is not None) == ("returned", True)
            assert [(p.leg, p.tracking_no) for p in out.parcels] == [("qc_to_seller", PARCEL.tracking_no)]
        finally:
            await q.w.engine.dispose()  # type: ignore[attr-defined]

    run(scenario())
