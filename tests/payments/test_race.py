"""The pay-deadline sweeper racing the payment webhook, in separate transactions, many times, on
SQLite and PostgreSQL: every outcome is consistent, and the ledger balances."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import select

from tests.orders.world import stock_of
from tests.payments.util import (
    balance,
    build,
    buyer_pays,
    intent_row,
    later,
    ledger_ok,
    order_row,
    place,
    queued,
    refunds,
    sandbox,
    settings_for,
    settle_refunds,
    start,
)
from trustlive.db import transaction
from trustlive.ledger import service as ledger
from trustlive.orders import service as orders
from trustlive.payments import service
from trustlive.payments.models import PaymentIntentOrder

ROUNDS = 24
STOCK = 100
JITTER = (0, 0.001, 0.003, 0.006, 0.01, 0.02, 0.04, 0.002)  # seconds


def test_deadline_cancel_racing_the_payment_webhook(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        settings = settings_for(db_url, tmp_path)
        provider = sandbox(settings)
        w = await build(db_url, buyers=1, stock=STOCK)
        try:
            deadline_passed = later()
            results: list[str] = []
            paid_total = refunded_total = 0
            for i in range(ROUNDS):
                (order,) = await place(w, 0, (w.skus[0], 1), key=f"race-{i}")
                intent = await start(w, settings, 0, [order.id], f"pay-{i}")
                await buyer_pays(w, settings, intent)
                (delivery,) = await queued(w)
                body = delivery.body.encode()

                # One side waits a varying moment, the sweeper on even rounds, the webhook on odd ones:
                # from "starts first" to "starts well inside the other's transaction".
                lag = JITTER[(i // 2) % len(JITTER)]
                expire_lag, webhook_lag = (lag, 0.0) if i % 2 == 0 else (0.0, lag)

                async def expire(order_id: int = order.id, wait: float = expire_lag) -> bool:
                    await asyncio.sleep(wait)
                    async with transaction(w.sessionmaker) as s:
                        return await orders.expire_order(s, order_id, deadline_passed)

                async def webhook(body: bytes = body, wait: float = webhook_lag) -> str:
                    await asyncio.sleep(wait)
                    async with transaction(w.sessionmaker) as s:
                        return (
                            await service.handle_webhook(s, provider, provider.signed_headers(body), body)
                        ).outcome

                outcome, cancelled = await asyncio.gather(webhook(), expire())
                assert outcome == "applied"
                await _mark_delivered(w, delivery.id)

                row = await order_row(w, order.id)
                paid_intent = await intent_row(w, intent.id)
                assert paid_intent.status in ("succeeded", "refunded")
                if row.status == "paid":
                    assert not cancelled and paid_intent.status == "succeeded"
                    assert row.paid_fen == order.total_fen and row.payment_ref == f"payment:{intent.id}"
                    paid_total += order.total_fen
                else:
                    assert row.status == "cancelled" and cancelled
                    assert (row.paid_fen, row.refunded_fen) == (0, 0)
                    assert paid_intent.status == "refunded" and paid_intent.refunded_fen == order.total_fen
                    refunded_total += order.total_fen
                results.append(row.status)

            paid = results.count("paid")
            assert paid + results.count("cancelled") == ROUNDS
            # Stock: paid orders keep their unit, cancelled ones gave it back.
            assert await stock_of(w, w.skus[0]) == STOCK - paid
            # Money: every capture is in escrow unless it was refunded; nothing made or lost.
            assert await balance(w, ledger.ESCROW) == paid_total
            assert await balance(w, ledger.EXTERNAL_BUYER_REFUNDS) == refunded_total
            assert await balance(w, ledger.EXTERNAL_BUYER_PAYMENTS) == -(paid_total + refunded_total)
            late = await refunds(w)
            assert len(late) == ROUNDS - paid and {r.reason for r in late} <= {"late_payment"}
            async with transaction(w.sessionmaker) as s:
                links = list(await s.scalars(select(PaymentIntentOrder.outcome)))
            assert sorted(links) == sorted(["paid"] * paid + ["refunded_late"] * (ROUNDS - paid))
            assert await settle_refunds(w, settings) == ROUNDS - paid
            assert {r.status for r in await refunds(w)} <= {"succeeded"}
            await ledger_ok(w)
        finally:
            await w.engine.dispose()

    asyncio.run(scenario())


async def _mark_delivered(w, delivery_id: int) -> None:  # type: ignore[no-untyped-def]
    """The race called the handler directly; take the delivery off the sandbox's queue."""
    from trustlive.db import utcnow
    from trustlive.payments.models import SandboxWebhookDelivery

    async with transaction(w.sessionmaker) as s:
        row = await s.get(SandboxWebhookDelivery, delivery_id)
        assert row is not None
        row.delivered_at, row.next_attempt_at = utcnow(), None
