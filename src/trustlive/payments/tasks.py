"""Payment background work: ask the provider for decided refunds, and the sandbox's webhook
deliveries. Each item runs in its own short transaction; re-running, crashing half-way or racing
another worker is harmless (row claims, conditional updates, idempotency keys everywhere).

``deliver_webhooks`` is the sandbox company's delivery service. By default it delivers in
process: it calls ``service.handle_webhook`` (what ``POST /api/v1/payments/webhooks/sandbox``
runs) in its own transaction, exactly as the HTTP endpoint would; pass ``send`` to deliver over
HTTP instead (``http_sender``). Claims, retries with backoff and the test knobs are
``trustlive.webhook_delivery``'s, shared with the tracking sandbox.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from trustlive import webhook_delivery
from trustlive.config import Settings
from trustlive.db import transaction, utcnow
from trustlive.orders.service import OrderPolicy
from trustlive.payments import service
from trustlive.payments.models import SandboxWebhookDelivery
from trustlive.payments.providers import SANDBOX, SandboxProvider, get_provider
from trustlive.webhook_delivery import DeliveryReport, Sender

log = logging.getLogger(__name__)

BATCH = webhook_delivery.BATCH
WEBHOOK_PATH = "/api/v1/payments/webhooks/sandbox"
backoff = webhook_delivery.backoff  # the tests read the schedule from here


def local_sender(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, now: dt.datetime | None = None
) -> Sender:
    """Deliver by calling the webhook handler in process, in its own transaction."""
    policy = OrderPolicy.from_settings(settings)
    return webhook_delivery.local_sender(
        sessionmaker,
        lambda session, headers, body: service.handle_webhook(
            session, get_provider(settings, SANDBOX), headers, body, now, policy
        ),
    )


def http_sender(client: Any, path: str = WEBHOOK_PATH) -> Sender:
    """Deliver over HTTP (``webhook_delivery.http_sender``) to the payment webhook."""
    return webhook_delivery.http_sender(client, path)


async def deliver_webhooks(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    send: Sender | None = None,
    now: dt.datetime | None = None,
    *,
    duplicates: bool = False,
    reverse: bool = False,
    limit: int = BATCH,
) -> DeliveryReport:
    """Send every due sandbox webhook once (one pass). Returns what happened."""
    now = now or utcnow()
    sandbox = get_provider(settings, SANDBOX)
    assert isinstance(sandbox, SandboxProvider)
    return await webhook_delivery.deliver_due(
        sessionmaker, SandboxWebhookDelivery, sandbox.signed_headers, send or local_sender(sessionmaker, settings, now),
        now, duplicates=duplicates, reverse=reverse, limit=limit,
    )  # fmt: skip


async def submit_refunds(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, now: dt.datetime | None = None
) -> int:
    """Ask the provider for every decided refund that it has not accepted yet."""
    now = now or utcnow()
    async with transaction(sessionmaker) as session:
        due = await service.due_refund_submissions(session, now, BATCH)
    done = 0
    for refund_id in due:
        try:
            async with transaction(sessionmaker) as session:
                done += await service.submit_refund(session, settings, refund_id, now)
        except Exception as exc:
            log.warning("refund %s could not be submitted: %s", refund_id, exc)
            async with transaction(sessionmaker) as session:
                await service.refund_submit_failed(session, refund_id, f"{type(exc).__name__}: {exc}", now)
    return done


async def run_once(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, now: dt.datetime | None = None
) -> dict[str, int]:
    """One pass of everything payments does in the background (the scheduler's job)."""
    now = now or utcnow()
    submitted = await submit_refunds(sessionmaker, settings, now)
    report = await deliver_webhooks(sessionmaker, settings, now=now)
    return {"refunds_submitted": submitted, "webhooks_delivered": report.delivered,
            "webhooks_failed": report.failed + report.gave_up}  # fmt: skip
