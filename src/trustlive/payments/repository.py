"""All payment queries: ours first, then the sandbox provider's (which never touch ours).

Rows that change under concurrency (an intent a webhook captures, a refund being submitted, a
delivery being sent) are locked with ``FOR UPDATE`` on PostgreSQL; SQLite serialises writers at
``BEGIN IMMEDIATE`` already. State changes are conditional UPDATEs, so two actors cannot both win.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import case, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from trustlive.payments.models import (
    CAPTURED,
    IntentStatus,
    LinkOutcome,
    PaymentIntent,
    PaymentIntentOrder,
    Refund,
    RefundStatus,
    SandboxCharge,
    SandboxRefund,
    WebhookEvent,
)


def _is_pg(session: AsyncSession) -> bool:
    return session.bind.dialect.name == "postgresql"


# --- intents ----------------------------------------------------------------------------------


async def get_intent(session: AsyncSession, intent_id: int, *, lock: bool = False) -> PaymentIntent | None:
    stmt = (
        select(PaymentIntent).where(PaymentIntent.id == intent_id).execution_options(populate_existing=True)
    )
    if lock and _is_pg(session):
        stmt = stmt.with_for_update()
    return await session.scalar(stmt)


async def intent_by_ref(
    session: AsyncSession, provider: str, provider_ref: str, *, lock: bool = False
) -> PaymentIntent | None:
    stmt = (
        select(PaymentIntent)
        .where(PaymentIntent.provider == provider, PaymentIntent.provider_ref == provider_ref)
        .execution_options(populate_existing=True)
    )
    if lock and _is_pg(session):
        stmt = stmt.with_for_update()
    return await session.scalar(stmt)


async def intent_by_key(session: AsyncSession, buyer_id: int, key: str) -> PaymentIntent | None:
    stmt = select(PaymentIntent).where(
        PaymentIntent.buyer_id == buyer_id, PaymentIntent.idempotency_key == key
    )
    return await session.scalar(stmt)


async def links_of(session: AsyncSession, intent_ids: Sequence[int]) -> list[PaymentIntentOrder]:
    if not intent_ids:
        return []
    stmt = (
        select(PaymentIntentOrder)
        .where(PaymentIntentOrder.intent_id.in_(set(intent_ids)))
        .order_by(PaymentIntentOrder.intent_id, PaymentIntentOrder.order_id)
        .execution_options(populate_existing=True)
    )
    return list(await session.scalars(stmt))


async def captured_intents_for_orders(
    session: AsyncSession, buyer_id: int, order_ids: Sequence[int]
) -> list[int]:
    """Order ids among ``order_ids`` already paid by one of the buyer's captured intents."""
    stmt = (
        select(PaymentIntentOrder.order_id)
        .join(PaymentIntent, PaymentIntent.id == PaymentIntentOrder.intent_id)
        .where(
            PaymentIntent.buyer_id == buyer_id,
            PaymentIntent.status.in_(CAPTURED),
            PaymentIntentOrder.order_id.in_(set(order_ids)),
            or_(PaymentIntentOrder.outcome.is_(None), PaymentIntentOrder.outcome == LinkOutcome.paid),
        )
    )
    return sorted(set(await session.scalars(stmt)))


async def open_intents_for_orders(
    session: AsyncSession, buyer_id: int, order_ids: Sequence[int]
) -> list[int]:
    """Ids of the buyer's intents not captured yet (awaiting payment, or after a failed attempt:
    the provider's page stays open for another try) that cover any of ``order_ids``, newest first."""
    stmt = (
        select(PaymentIntentOrder.intent_id)
        .join(PaymentIntent, PaymentIntent.id == PaymentIntentOrder.intent_id)
        .where(
            PaymentIntent.buyer_id == buyer_id,
            PaymentIntent.status.in_((IntentStatus.requires_payment, IntentStatus.failed)),
            PaymentIntentOrder.order_id.in_(set(order_ids)),
        )
        .order_by(PaymentIntentOrder.intent_id.desc())
    )
    return list(dict.fromkeys(await session.scalars(stmt)))


async def intents_of_order(session: AsyncSession, order_id: int) -> list[PaymentIntent]:
    stmt = (
        select(PaymentIntent)
        .join(PaymentIntentOrder, PaymentIntentOrder.intent_id == PaymentIntent.id)
        .where(PaymentIntentOrder.order_id == order_id)
        .order_by(PaymentIntent.id)
    )
    return list(await session.scalars(stmt))


async def paying_link(session: AsyncSession, order_id: int) -> PaymentIntentOrder | None:
    """The link through which a captured intent paid this order (at most one can)."""
    stmt = select(PaymentIntentOrder).where(
        PaymentIntentOrder.order_id == order_id, PaymentIntentOrder.outcome == LinkOutcome.paid
    )
    return await session.scalar(stmt)


async def move_intent(
    session: AsyncSession, intent_id: int, from_statuses: Sequence[str], to_status: str, **values: Any
) -> bool:
    result = await session.execute(
        update(PaymentIntent)
        .where(PaymentIntent.id == intent_id, PaymentIntent.status.in_(list(from_statuses)))
        .values(status=to_status, **values)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


async def add_intent_refund(session: AsyncSession, intent_id: int, amount: int) -> bool:
    """Count a refund against the intent, never above what it captured; then set its status."""
    result = await session.execute(
        update(PaymentIntent)
        .where(
            PaymentIntent.id == intent_id,
            PaymentIntent.status.in_(CAPTURED),
            PaymentIntent.refunded_fen + amount <= PaymentIntent.amount_fen,
        )
        .values(refunded_fen=PaymentIntent.refunded_fen + amount)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return False
    status = case(
        (PaymentIntent.refunded_fen >= PaymentIntent.amount_fen, IntentStatus.refunded.value),
        else_=IntentStatus.partially_refunded.value,
    )
    await session.execute(
        update(PaymentIntent)
        .where(PaymentIntent.id == intent_id)
        .values(status=status, updated_at=dt.datetime.now(dt.UTC))
        .execution_options(synchronize_session=False)
    )
    return True


# --- refunds ----------------------------------------------------------------------------------


async def refund_by_key(session: AsyncSession, key: str) -> Refund | None:
    return await session.scalar(select(Refund).where(Refund.idempotency_key == key))


async def get_refund(session: AsyncSession, refund_id: int, *, lock: bool = False) -> Refund | None:
    stmt = select(Refund).where(Refund.id == refund_id).execution_options(populate_existing=True)
    if lock and _is_pg(session):
        stmt = stmt.with_for_update(skip_locked=True)
    return await session.scalar(stmt)


async def refund_by_provider_ref(session: AsyncSession, ref: str) -> Refund | None:
    return await session.scalar(select(Refund).where(Refund.provider_refund_ref == ref))


async def refunds_of_orders(session: AsyncSession, order_ids: Sequence[int]) -> list[Refund]:
    if not order_ids:
        return []
    stmt = select(Refund).where(Refund.order_id.in_(set(order_ids))).order_by(Refund.id)
    return list(await session.scalars(stmt))


async def refunds_of_intent(session: AsyncSession, intent_id: int) -> list[Refund]:
    return list(
        await session.scalars(select(Refund).where(Refund.intent_id == intent_id).order_by(Refund.id))
    )


async def due_refund_submissions(session: AsyncSession, now: dt.datetime, limit: int) -> list[int]:
    stmt = (
        select(Refund.id)
        .where(
            Refund.status == RefundStatus.pending,
            Refund.provider_refund_ref.is_(None),
            Refund.next_submit_at.is_not(None),
            Refund.next_submit_at <= now,
        )
        .order_by(Refund.next_submit_at, Refund.id)
        .limit(limit)
    )
    return list(await session.scalars(stmt))


async def mark_refund_succeeded(session: AsyncSession, refund_id: int, now: dt.datetime) -> bool:
    result = await session.execute(
        update(Refund)
        .where(Refund.id == refund_id, Refund.status == RefundStatus.pending)
        .values(status=RefundStatus.succeeded, succeeded_at=now, next_submit_at=None)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


# --- webhook events ---------------------------------------------------------------------------


async def webhook_event(session: AsyncSession, provider: str, event_id: str) -> WebhookEvent | None:
    stmt = select(WebhookEvent).where(WebhookEvent.provider == provider, WebhookEvent.event_id == event_id)
    return await session.scalar(stmt)


async def deferred_events(session: AsyncSession, provider: str, provider_ref: str) -> list[WebhookEvent]:
    stmt = (
        select(WebhookEvent)
        .where(
            WebhookEvent.provider == provider,
            WebhookEvent.provider_ref == provider_ref,
            WebhookEvent.outcome == "deferred",
        )
        .order_by(WebhookEvent.id)
        .execution_options(populate_existing=True)
    )
    return list(await session.scalars(stmt))


async def events_of_ref(session: AsyncSession, provider: str, provider_ref: str) -> list[WebhookEvent]:
    stmt = (
        select(WebhookEvent)
        .where(WebhookEvent.provider == provider, WebhookEvent.provider_ref == provider_ref)
        .order_by(WebhookEvent.id)
    )
    return list(await session.scalars(stmt))


# --- the sandbox provider ---------------------------------------------------------------------


async def sandbox_charge(session: AsyncSession, ref: str, *, lock: bool = False) -> SandboxCharge | None:
    stmt = select(SandboxCharge).where(SandboxCharge.ref == ref).execution_options(populate_existing=True)
    if lock and _is_pg(session):
        stmt = stmt.with_for_update()
    return await session.scalar(stmt)


async def sandbox_charge_by_key(session: AsyncSession, key: str) -> SandboxCharge | None:
    return await session.scalar(select(SandboxCharge).where(SandboxCharge.merchant_key == key))


async def sandbox_refund_by_key(session: AsyncSession, key: str) -> SandboxRefund | None:
    return await session.scalar(select(SandboxRefund).where(SandboxRefund.merchant_key == key))


async def add_sandbox_refund(session: AsyncSession, charge_id: int, amount: int) -> bool:
    result = await session.execute(
        update(SandboxCharge)
        .where(
            SandboxCharge.id == charge_id,
            SandboxCharge.status == "paid",
            SandboxCharge.refunded_fen + amount <= SandboxCharge.amount_fen,
        )
        .values(refunded_fen=SandboxCharge.refunded_fen + amount)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1
