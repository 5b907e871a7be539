"""Payment background work: ask the provider for decided refunds, and the sandbox's webhook
deliveries. Each item runs in its own short transaction; re-running, crashing half-way or racing
another worker is harmless (row claims, conditional updates, idempotency keys everywhere).

``deliver_webhooks`` is the sandbox company's delivery service. By default it delivers in
process: it calls ``service.handle_webhook`` (what ``POST /api/v1/payments/webhooks/sandbox``
runs) in its own transaction, exactly as the HTTP endpoint would; pass ``send`` to deliver over
HTTP instead (``http_sender``). A delivery that fails (non-2xx or an exception) is retried with
exponential backoff (``attempts``, ``next_attempt_at``) up to ``MAX_ATTEMPTS``. For tests,
``duplicates`` sends every event twice and ``reverse`` sends a batch newest first.
"""

from __future__ import annotations

import datetime as dt
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from trustlive.config import Settings
from trustlive.db import transaction, utcnow
from trustlive.errors import DomainError
from trustlive.orders.service import OrderPolicy
from trustlive.payments import repository as repo
from trustlive.payments import service
from trustlive.payments.providers import SANDBOX, SandboxProvider, get_provider
from trustlive.payments.schemas import DeliveryReport

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 10
BACKOFF_BASE = dt.timedelta(seconds=10)
BACKOFF_MAX = dt.timedelta(hours=6)
LEASE = dt.timedelta(minutes=2)  # a claimed delivery is due again if its deliverer died
BATCH = 100
WEBHOOK_PATH = "/api/v1/payments/webhooks/sandbox"

# headers, body -> HTTP status the merchant answered
Sender = Callable[[dict[str, str], bytes], Awaitable[int] | int]


def backoff(attempts: int) -> dt.timedelta:
    """Wait after the ``attempts``-th failed try: 10 s, 20 s, 40 s ... at most 6 h."""
    return min(BACKOFF_BASE * 2 ** min(max(attempts - 1, 0), 20), BACKOFF_MAX)


def local_sender(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, now: dt.datetime | None = None
) -> Sender:
    """Deliver by calling the webhook handler in process, in its own transaction."""

    async def send(headers: dict[str, str], body: bytes) -> int:
        try:
            async with transaction(sessionmaker) as session:
                await service.handle_webhook(session, get_provider(settings, SANDBOX), headers, body, now,
                                             OrderPolicy.from_settings(settings))  # fmt: skip
        except DomainError as err:
            return err.status_code
        return 200

    return send


def http_sender(client: Any, path: str = WEBHOOK_PATH) -> Sender:
    """Deliver over HTTP with any client that has ``post(url, content=, headers=)`` (httpx,
    Litestar's TestClient), sync or async."""

    async def send(headers: dict[str, str], body: bytes) -> int:
        response = client.post(path, content=body, headers=headers)
        if inspect.isawaitable(response):
            response = await response
        return int(response.status_code)

    return send


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
    send = send or local_sender(sessionmaker, settings, now)
    report = DeliveryReport()
    async with transaction(sessionmaker) as session:
        claimed = [
            (d.id, d.event_id, d.body, d.attempts)
            for d in await repo.claim_deliveries(session, now, limit, LEASE)
        ]
    if reverse:
        claimed.reverse()
    for delivery_id, event_id, body, attempts in claimed:
        raw = body.encode()
        status, error = 0, None
        for _ in range(2 if duplicates else 1):
            report.attempted += 1
            try:
                result = send(sandbox.signed_headers(raw, now), raw)
                status = int(await result) if inspect.isawaitable(result) else int(result)
                error = None if 200 <= status < 300 else f"HTTP {status}"
            except Exception as exc:  # the merchant's failure is the sandbox's retry
                status, error = 0, f"{type(exc).__name__}: {exc}"
                log.warning("sandbox webhook %s failed: %s", event_id, error)
        async with transaction(sessionmaker) as session:
            row = await repo.get_delivery(session, delivery_id)
            if row is None:
                continue
            row.last_status = status or None
            if error is None:
                row.delivered_at, row.next_attempt_at, row.last_error = now, None, None
                report.delivered += 1
            elif attempts >= MAX_ATTEMPTS:
                row.next_attempt_at, row.last_error = None, error[:2000]  # gave up
                report.gave_up += 1
            else:
                row.next_attempt_at, row.last_error = now + backoff(attempts), error[:2000]
                report.failed += 1
    return report


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
