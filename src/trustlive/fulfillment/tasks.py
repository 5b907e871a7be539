"""Background work of fulfillment: the sandbox tracking service delivers its due events (claims,
retries with backoff and the test knobs are ``trustlive.webhook_delivery``'s, shared with the
payment sandbox). In process, through ``service.handle_webhook`` as the HTTP endpoint runs it (pass
``send=webhook_delivery.http_sender(client, path)`` to go over HTTP). And the QC warehouse's
turnaround deadline: received items past it without a result are flagged for ops, once each."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from trustlive import webhook_delivery
from trustlive.config import Settings
from trustlive.db import transaction, utcnow
from trustlive.fulfillment import service
from trustlive.fulfillment.models import SandboxTrackingDelivery
from trustlive.fulfillment.tracking import SANDBOX, SandboxTracker, get_tracker
from trustlive.orders.service import OrderPolicy
from trustlive.webhook_delivery import DeliveryReport, Sender


def local_sender(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, now: dt.datetime | None = None
) -> Sender:
    """Deliver by calling the webhook handler in process, in its own transaction."""
    policy = OrderPolicy.from_settings(settings)
    return webhook_delivery.local_sender(
        sessionmaker,
        lambda session, headers, body: service.handle_webhook(
            session, get_tracker(settings, SANDBOX), headers, body, now, policy
        ),
    )


async def deliver_tracking(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    send: Sender | None = None,
    now: dt.datetime | None = None,
    *,
    duplicates: bool = False,
    reverse: bool = False,
    limit: int = webhook_delivery.BATCH,
) -> DeliveryReport:
    """Send every due sandbox tracking event once (one pass). Returns what happened."""
    now = now or utcnow()
    sandbox = get_tracker(settings, SANDBOX)
    assert isinstance(sandbox, SandboxTracker)
    return await webhook_delivery.deliver_due(
        sessionmaker, SandboxTrackingDelivery, sandbox.signed_headers, send or local_sender(sessionmaker, settings, now),
        now, duplicates=duplicates, reverse=reverse, limit=limit,
    )  # fmt: skip


async def run_once(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, now: dt.datetime | None = None
) -> dict[str, int]:
    """One pass of everything fulfillment does in the background (the scheduler's job)."""
    report = await deliver_tracking(sessionmaker, settings, now=now)
    return {
        "tracking_delivered": report.delivered,
        "tracking_failed": report.failed + report.gave_up,
        "inspections_overdue": await alert_overdue(sessionmaker, now),
    }


async def alert_overdue(
    sessionmaker: async_sessionmaker[AsyncSession], now: dt.datetime | None = None
) -> int:
    """Flag every received case past its turnaround deadline without a result (``overdue_alerted_at``
    and an outbox event ``fulfillment.inspection_overdue``), each in its own short transaction.
    Idempotent: a case is alerted once, whoever sweeps and however often."""
    now = now or utcnow()
    async with transaction(sessionmaker) as session:
        due = await service.due_overdue_alerts(session, now)
    alerted = 0
    for case_id in due:
        async with transaction(sessionmaker) as session:
            if await service.alert_overdue(session, case_id, now):
                alerted += 1
    return alerted
