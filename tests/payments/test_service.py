"""Paying, webhooks (forged, replayed, out of order), late payments and refunds, on SQLite and
PostgreSQL, through the services and the sandbox provider as a buyer would use them."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.orders.world import stock_of
from tests.payments.util import (
    balance,
    build,
    buyer_declines,
    buyer_pays,
    count,
    deliver,
    intent_row,
    later,
    ledger_ok,
    order_row,
    outcomes,
    place,
    queued,
    refunds,
    sandbox,
    settings_for,
    settle_refunds,
    start,
)
from trustlive import webhook_delivery
from trustlive.db import transaction, utcnow
from trustlive.errors import DomainError
from trustlive.ledger import service as ledger
from trustlive.ledger.models import LedgerTransaction
from trustlive.orders import service as orders
from trustlive.payments import service, tasks
from trustlive.payments.models import WebhookEvent

ESCROW = ledger.ESCROW
PAID_IN = ledger.EXTERNAL_BUYER_PAYMENTS
PAID_BACK = ledger.EXTERNAL_BUYER_REFUNDS


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_pay_flow_end_to_end(db_url: str, tmp_path: Path) -> None:
    """Intent -> the sandbox's pay page -> a signed webhook, delivered later -> order paid,
    money in escrow."""

    async def scenario() -> None:
        settings = settings_for(db_url, tmp_path)
        w = await build(db_url, buyers=1, stock=5)
        try:
            (order,) = await place(w, 0, (w.skus[0], 2), key="o-1")
            intent = await start(w, settings, 0, [order.id], "pay-1")
            assert intent.status == "requires_payment" and intent.amount_fen == order.total_fen == 11800
            assert intent.pay_url == f"/sandbox/pay/{intent.provider_ref}"
            # Nothing moves before the provider says so.
            await buyer_pays(w, settings, intent)
            assert (await order_row(w, order.id)).status == "pending_payment"
            assert await balance(w, ESCROW) == 0
            report = await deliver(w, settings)
            assert (report.attempted, report.delivered) == (1, 1)
            paid = await order_row(w, order.id)
            assert (paid.status, paid.paid_fen, paid.payment_ref) == ("paid", 11800, f"payment:{intent.id}")
            after = await intent_row(w, intent.id)
            assert after.status == "succeeded" and after.succeeded_at is not None
            assert await balance(w, ESCROW) == 11800 and await balance(w, PAID_IN) == -11800
            assert await outcomes(w) == [("payment.succeeded", "applied")]
            assert await queued(w) == []
            assert await stock_of(w, w.skus[0]) == 3
            await ledger_ok(w)
            # The same key answers with the same payment; another key for a paid order is refused.
            assert (await start(w, settings, 0, [order.id], "pay-1")).id == intent.id
            with pytest.raises(DomainError) as twice:
                await start(w, settings, 0, [order.id], "pay-2")
            assert (twice.value.status_code, twice.value.code) == (409, "already_paid")
        finally:
            await w.engine.dispose()

    run(scenario())


def test_one_payment_for_a_checkout_of_two_shops(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        settings = settings_for(db_url, tmp_path)
        w = await build(db_url, buyers=1)
        try:
            first, second = await place(w, 0, (w.skus[0], 1), (w.skus[1], 1), key="two-shops")
            async with transaction(w.sessionmaker) as s:
                intent = await service.pay_checkout(
                    s, w.buyers[0], first.checkout_id, "c-1", sandbox(settings)
                )
                described = await service.describe(s, intent)
            assert intent.amount_fen == first.total_fen + second.total_fen
            assert [o.order_id for o in described.orders] == [first.id, second.id]
            await buyer_pays(w, settings, intent)
            await deliver(w, settings)
            assert {(await order_row(w, o.id)).status for o in (first, second)} == {"paid"}
            assert await balance(w, ESCROW) == intent.amount_fen
            async with transaction(w.sessionmaker) as s:
                with pytest.raises(DomainError) as again:
                    await service.pay_checkout(s, w.buyers[0], first.checkout_id, "c-2", sandbox(settings))
            assert again.value.code == "already_paid"
        finally:
            await w.engine.dispose()

    run(scenario())


def test_bad_requests_to_pay(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        settings = settings_for(db_url, tmp_path)
        w = await build(db_url, buyers=2)
        try:
            (order,) = await place(w, 0, (w.skus[0], 1), key="mine")

            async def code(buyer: int, order_ids: list[int], key: str | None) -> tuple[int, str]:
                try:
                    async with transaction(w.sessionmaker) as s:
                        await service.create_payment(s, w.buyers[buyer], order_ids, key, sandbox(settings))
                except DomainError as err:
                    return err.status_code, err.code
                return 201, "created"

            assert await code(1, [order.id], "theirs") == (404, "order_not_found")
            assert await code(0, [order.id + 999], "nope") == (404, "order_not_found")
            assert await code(0, [order.id], None) == (400, "idempotency_key_required")
            assert await code(0, [order.id], " ") == (400, "idempotency_key_required")
            assert await code(0, [order.id], "k" * 101) == (400, "bad_idempotency_key")
            assert await code(0, [], "empty") == (422, "validation_error")
            assert await code(0, [order.id], "k1") == (201, "created")
            (other,) = await place(w, 0, (w.skus[0], 1), key="mine-2")
            assert await code(0, [other.id], "k1") == (422, "idempotency_mismatch")
            async with transaction(w.sessionmaker) as s:
                await orders.cancel_order(s, w.buyers[0], other.id)
            assert await code(0, [other.id], "k2") == (409, "not_payable")
            assert await count(w, WebhookEvent) == 0
        finally:
            await w.engine.dispose()

    run(scenario())


def test_forged_or_stale_webhooks_change_nothing(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        settings = settings_for(db_url, tmp_path)
        w = await build(db_url, buyers=1)
        try:
            (order,) = await place(w, 0, (w.skus[0], 1), key="o")
            intent = await start(w, settings, 0, [order.id], "p")
            await buyer_pays(w, settings, intent)
            (delivery,) = await queued(w)
            body = delivery.body.encode()
            good = sandbox(settings).signed_headers(body)
            forged_body = body.replace(b'"amount_fen":5900', b'"amount_fen":1')
            cases = {
                "no signature": ({}, body),
                "wrong secret": (
                    sandbox(
                        settings_for(db_url, tmp_path).with_overrides(payment_webhook_secret="someone-else")
                    ).signed_headers(body),
                    body,
                ),  # fmt: skip
                "tampered body": (good, forged_body),
                "stale": (sandbox(settings).signed_headers(body, later(-6)), body),
                "future": (sandbox(settings).signed_headers(body, later(6)), body),
                "garbage header": ({"X-Sandbox-Signature": "t=abc,v1="}, body),
            }
            for name, (headers, payload) in cases.items():
                with pytest.raises(DomainError) as refused:
                    async with transaction(w.sessionmaker) as s:
                        await service.handle_webhook(s, sandbox(settings), headers, payload)
                assert (refused.value.status_code, refused.value.code) == (400, "bad_signature"), name
            # A valid signature over something that is not an event is a 400 too.
            junk = b'{"hello":"world"}'
            with pytest.raises(DomainError) as bad:
                async with transaction(w.sessionmaker) as s:
                    await service.handle_webhook(
                        s, sandbox(settings), sandbox(settings).signed_headers(junk), junk
                    )
            assert (bad.value.status_code, bad.value.code) == (400, "bad_payload")
            assert await count(w, WebhookEvent) == 0
            assert (await order_row(w, order.id)).status == "pending_payment"
            assert (await intent_row(w, intent.id)).status == "requires_payment"
            assert await balance(w, ESCROW) == 0
        finally:
            await w.engine.dispose()

    run(scenario())


def test_replayed_webhooks_capture_once(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        settings = settings_for(db_url, tmp_path)
        w = await build(db_url, buyers=1)
        try:
            (order,) = await place(w, 0, (w.skus[0], 1), key="o")
            intent = await start(w, settings, 0, [order.id], "p")
            await buyer_pays(w, settings, intent)
            await buyer_pays(w, settings, intent)  # pressing Pay twice charges once
            (delivery,) = await queued(w)
            report = await deliver(w, settings, duplicates=True)
            assert (report.attempted, report.delivered) == (2, 1)
            # A replay of the same event later, freshly signed, is acknowledged and ignored.
            body = delivery.body.encode()
            async with transaction(w.sessionmaker) as s:
                ack = await service.handle_webhook(
                    s, sandbox(settings), sandbox(settings).signed_headers(body), body
                )
            assert (ack.received, ack.outcome) == (True, "duplicate")
            assert await outcomes(w) == [("payment.succeeded", "applied")]
            assert await balance(w, ESCROW) == order.total_fen
            async with transaction(w.sessionmaker) as s:
                kinds = list(await s.scalars(select(LedgerTransaction.kind)))
            assert kinds == ["capture"]
            await ledger_ok(w)
        finally:
            await w.engine.dispose()

    run(scenario())


def test_out_of_order_success_wins_over_an_earlier_failure(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        settings = settings_for(db_url, tmp_path)
        w = await build(db_url, buyers=1)
        try:
            (order,) = await place(w, 0, (w.skus[0], 1), key="o")
            intent = await start(w, settings, 0, [order.id], "p")
            await buyer_declines(w, settings, intent)  # a refused card first ...
            await buyer_pays(w, settings, intent)  # ... then the buyer pays
            await deliver(w, settings, reverse=True)  # success arrives first, the failure after it
            assert await outcomes(w) == [("payment.succeeded", "applied"), ("payment.failed", "stale")]
            assert (await intent_row(w, intent.id)).status == "succeeded"
            assert (await order_row(w, order.id)).status == "paid"
            # In order, the failure is shown first and the success still wins.
            (order2,) = await place(w, 0, (w.skus[0], 1), key="o2")
            intent2 = await start(w, settings, 0, [order2.id], "p2")
            await buyer_declines(w, settings, intent2)
            await deliver(w, settings)
            failed = await intent_row(w, intent2.id)
            assert failed.status == "failed" and failed.failure_reason == "declined by the buyer"
            assert (await order_row(w, order2.id)).status == "pending_payment"  # until its deadline
            await buyer_pays(w, settings, intent2)
            await deliver(w, settings)
            assert (await intent_row(w, intent2.id)).status == "succeeded"
            assert await balance(w, ESCROW) == order.total_fen + order2.total_fen
            await ledger_ok(w)
        finally:
            await w.engine.dispose()

    run(scenario())


def test_refund_event_before_the_payment_event(db_url: str, tmp_path: Path) -> None:
    """A refund event for a payment we have not seen captured is deferred, then re-examined right
    after the capture; one we never asked for moves no money and stays for ops."""

    async def scenario() -> None:
        settings = settings_for(db_url, tmp_path)
        w = await build(db_url, buyers=1)
        try:
            (order,) = await place(w, 0, (w.skus[0], 1), key="o")
            intent = await start(w, settings, 0, [order.id], "p")
            await buyer_pays(w, settings, intent)
            async with transaction(w.sessionmaker) as s:  # the provider refunds on its own
                sandbox(settings).queue_event(
                    s, "refund.succeeded",
                    {"object": "refund", "ref": "re_dashboard", "charge": intent.provider_ref, "amount_fen": 100,
                     "merchant_key": "dashboard"},
                )  # fmt: skip
            await deliver(w, settings, reverse=True)
            assert await outcomes(w) == [("refund.succeeded", "unmatched"), ("payment.succeeded", "applied")]
            assert (await intent_row(w, intent.id)).status == "succeeded"
            assert (await order_row(w, order.id)).status == "paid"
            assert await balance(w, ESCROW) == order.total_fen and await balance(w, PAID_BACK) == 0
            await ledger_ok(w)
        finally:
            await w.engine.dispose()

    run(scenario())


def test_refund_events_out_of_order_with_duplicates(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        settings = settings_for(db_url, tmp_path)
        w = await build(db_url, buyers=1)
        try:
            (order,) = await place(w, 0, (w.skus[0], 1), key="o")
            intent = await start(w, settings, 0, [order.id], "p")
            await buyer_pays(w, settings, intent)
            (payment_event,) = await queued(w)
            await deliver(w, settings)
            async with transaction(w.sessionmaker) as s:
                await service.refund(s, w.merchants[0], order.id, 900, "scratched", "r-1")
            assert await tasks.submit_refunds(w.sessionmaker, settings) == 1
            # The provider's refund event and an old copy of the payment event, newest first, twice.
            async with transaction(w.sessionmaker) as s:
                sandbox(settings).queue_event(s, "payment.succeeded", json.loads(payment_event.body)["data"])
            await deliver(w, settings, reverse=True, duplicates=True)
            assert [o for _, o in await outcomes(w)] == ["applied", "stale", "applied"]
            (item,) = await refunds(w)
            assert item.status == "succeeded" and item.provider_refund_ref
            assert (await intent_row(w, intent.id)).status == "partially_refunded"
            assert await balance(w, ESCROW) == order.total_fen - 900 and await balance(w, PAID_BACK) == 900
            await ledger_ok(w)
        finally:
            await w.engine.dispose()

    run(scenario())


def test_payment_after_the_deadline_cancel_is_refunded(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        settings = settings_for(db_url, tmp_path)
        w = await build(db_url, buyers=1, stock=5)
        try:
            (order,) = await place(w, 0, (w.skus[0], 2), key="o")
            intent = await start(w, settings, 0, [order.id], "p")
            async with transaction(w.sessionmaker) as s:
                assert await orders.expire_order(s, order.id, later())
            assert await stock_of(w, w.skus[0]) == 5
            await buyer_pays(w, settings, intent)  # the buyer pays on a page left open too long
            await deliver(w, settings)
            cancelled = await order_row(w, order.id)
            assert (cancelled.status, cancelled.paid_fen, cancelled.refunded_fen) == ("cancelled", 0, 0)
            assert (await intent_row(w, intent.id)).status == "refunded"
            (item,) = await refunds(w)
            assert (item.reason, item.amount_fen, item.status, item.created_by) == (
                "late_payment", order.total_fen, "pending", None,
            )  # fmt: skip
            assert await balance(w, ESCROW) == 0
            assert await balance(w, PAID_BACK) == order.total_fen == -await balance(w, PAID_IN)
            assert await settle_refunds(w, settings) == 1
            assert (await refunds(w))[0].status == "succeeded"
            assert await stock_of(w, w.skus[0]) == 5
            async with transaction(w.sessionmaker) as s:
                described = await service.get_payment(s, w.buyers[0], intent.id)
            assert (
                described.orders[0].outcome == "refunded_late" and described.refunded_fen == order.total_fen
            )
            await ledger_ok(w)
        finally:
            await w.engine.dispose()

    run(scenario())


def test_partial_then_full_refund(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        settings = settings_for(db_url, tmp_path)
        w = await build(db_url, buyers=2, stock=5)
        try:
            (order,) = await place(w, 0, (w.skus[0], 2), key="o")
            total = order.total_fen
            intent = await start(w, settings, 0, [order.id], "p")
            await buyer_pays(w, settings, intent)
            await deliver(w, settings)

            async def refund(actor, amount: int, key: str) -> str:  # type: ignore[no-untyped-def]
                try:
                    async with transaction(w.sessionmaker) as s:
                        item = await service.refund(s, actor, order.id, amount, "size too small", key)
                        return f"ok:{item.id}"
                except DomainError as err:
                    return err.code

            merchant, other_merchant, ops = w.merchants[0], w.merchants[1], w.ops
            buyer, stranger = w.buyers
            assert await refund(buyer, 100, "b") == "not_your_shop"
            assert await refund(stranger, 100, "s") == "order_not_found"
            assert await refund(other_merchant, 100, "m2") == "order_not_found"
            assert await refund(merchant, total + 1, "too-much") == "refund_exceeds_payment"
            assert await refund(merchant, 0, "zero") == "validation_error"
            assert await refund(merchant, True, "bool") == "validation_error"  # type: ignore[arg-type]
            # Bounded by what the order has left, not by the price cap (an order holds many items).
            assert await refund(merchant, 10_000_000_01, "above-cap") == "refund_exceeds_payment"
            first = await refund(merchant, 1000, "r-1")
            assert first.startswith("ok:")
            assert await refund(merchant, 1000, "r-1") == first  # a retry is the same refund
            assert await refund(merchant, 999, "r-1") == "idempotency_mismatch"
            assert (await order_row(w, order.id)).status == "paid"
            assert (await intent_row(w, intent.id)).status == "partially_refunded"
            assert await refund(ops, total - 1000 + 1, "r-2") == "refund_exceeds_payment"
            assert (await refund(ops, total - 1000, "r-2")).startswith("ok:")
            assert await refund(merchant, 1, "r-3") == "not_refundable"
            done = await order_row(w, order.id)
            assert (done.status, done.refunded_fen) == ("refunded", total)
            assert (await intent_row(w, intent.id)).status == "refunded"
            assert await stock_of(w, w.skus[0]) == 5  # refunded before shipping: stock is back
            assert await balance(w, ESCROW) == 0 and await balance(w, PAID_BACK) == total
            assert [r.status for r in await refunds(w)] == ["pending", "pending"]
            assert await settle_refunds(w, settings) == 2
            assert [r.status for r in await refunds(w)] == ["succeeded", "succeeded"]
            assert await settle_refunds(w, settings) == 0  # nothing twice
            await ledger_ok(w)
        finally:
            await w.engine.dispose()

    run(scenario())


def test_failed_deliveries_are_retried_with_backoff(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        settings = settings_for(db_url, tmp_path)
        w = await build(db_url, buyers=1)
        try:
            (order,) = await place(w, 0, (w.skus[0], 1), key="o")
            intent = await start(w, settings, 0, [order.id], "p")
            await buyer_pays(w, settings, intent)

            async def down(headers: dict[str, str], body: bytes) -> int:
                return 503

            now = utcnow()
            report = await deliver(w, settings, send=down, now=now)
            assert (report.failed, report.delivered) == (1, 0)
            (row,) = await queued(w)
            assert (
                row.attempts == 1 and row.last_status == 503 and row.next_attempt_at == now + tasks.backoff(1)
            )
            assert (await deliver(w, settings, now=now)).attempted == 0  # not due yet
            assert (
                tasks.backoff(2) == 2 * tasks.backoff(1) and tasks.backoff(50) == webhook_delivery.BACKOFF_MAX
            )
            report = await deliver(w, settings, now=now + tasks.backoff(1))
            assert report.delivered == 1
            assert (await order_row(w, order.id)).status == "paid"
        finally:
            await w.engine.dispose()

    run(scenario())


def test_two_pay_pages_both_paid_refunds_the_second(db_url: str, tmp_path: Path) -> None:
    """A buyer opens two payments for one order (two devices) and pays both: the order is paid
    once, the second payment goes back in full."""

    async def scenario() -> None:
        settings = settings_for(db_url, tmp_path)
        w = await build(db_url, buyers=1)
        try:
            (order,) = await place(w, 0, (w.skus[0], 1), key="o")
            first = await start(w, settings, 0, [order.id], "phone")
            second = await start(w, settings, 0, [order.id], "laptop")
            assert first.id != second.id
            await buyer_pays(w, settings, first)
            await buyer_pays(w, settings, second)
            await deliver(w, settings)
            paid = await order_row(w, order.id)
            assert (paid.status, paid.paid_fen, paid.payment_ref) == (
                "paid",
                order.total_fen,
                f"payment:{first.id}",
            )
            assert (await intent_row(w, first.id)).status == "succeeded"
            assert (await intent_row(w, second.id)).status == "refunded"
            (item,) = await refunds(w)
            assert (item.intent_id, item.reason, item.amount_fen) == (
                second.id,
                "duplicate_payment",
                order.total_fen,
            )
            assert (
                await balance(w, ESCROW) == order.total_fen and await balance(w, PAID_BACK) == order.total_fen
            )
            # The shop's refunds apply to the payment that paid the order.
            async with transaction(w.sessionmaker) as s:
                again = await service.refund(s, w.merchants[0], order.id, 500, "goodwill", "g-1")
            assert again.intent_id == first.id
            assert await settle_refunds(w, settings) == 2
            await ledger_ok(w)
        finally:
            await w.engine.dispose()

    run(scenario())


def test_the_pay_button_reuses_an_open_payment(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        settings = settings_for(db_url, tmp_path)
        w = await build(db_url, buyers=1)
        try:
            (order,) = await place(w, 0, (w.skus[0], 1), key="o")

            async def button():  # type: ignore[no-untyped-def]
                async with transaction(w.sessionmaker) as s:
                    return await service.start_payment(s, w.buyers[0], [order.id], sandbox(settings))

            first = await button()
            assert (await button()).id == first.id
            await buyer_declines(w, settings, first)
            await deliver(w, settings)
            assert (await button()).id == first.id  # after a declined card: the same page, try again
            async with transaction(w.sessionmaker) as s:
                assert await service.payment_state_of_order(s, order.id) == "failed"
            await buyer_pays(w, settings, first)
            async with transaction(w.sessionmaker) as s:
                assert await service.payment_state_of_order(s, order.id) == "failed"  # no webhook yet
            await deliver(w, settings)
            async with transaction(w.sessionmaker) as s:
                assert await service.payment_state_of_order(s, order.id) is None
        finally:
            await w.engine.dispose()

    run(scenario())
