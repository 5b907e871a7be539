"""Background work of fulfillment: the sandbox tracking service delivers its due events.

Like the payment sandbox (``payments/tasks.py``): each due event is claimed for a lease, sent
signed, and on failure retried with exponential backoff until it is given up."""

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
from trustlive.fulfillment import repository as repo
from trustlive.fulfillment import service
from trustlive.fulfillment.schemas import TrackingDeliveryReport
from trustlive.fulfillment.tracking import SANDBOX, SandboxTracker, get_tracker
from trustlive.orders.service import OrderPolicy

log = logging.getLogger(__name__)

BATCH = 100
LEASE = dt.timedelta(minutes=2)
MAX_ATTEMPTS = 12
BACKOFF_BASE = 10.0
BACKOFF_MAX = 6 * 3600.0
WEBHOOK_PATH = "/api/v1/logistics/webhooks/sandbox"

Sender = Callable[[dict[str, str], bytes], Awaitable[int] | int]


def backoff(attempts: int) -> dt.timedelta:
    """Wait after the ``attempts``-th failed try: 10 s, 20 s, 40 s ... at most 6 h."""
    return dt.timedelta(seconds=min(BACKOFF_BASE * 2 ** min(max(attempts - 1, 0), 20), BACKOFF_MAX))


def local_sender(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, now: dt.datetime | None = None
) -> Sender:
    """Deliver by calling the webhook handler in process, in its own transaction."""

    async def send(headers: dict[str, str], body: bytes) -> int:
        try:
            async with transaction(sessionmaker) as session:
                await service.handle_webhook(session, get_tracker(settings, SANDBOX), headers, body, now,
                                             OrderPolicy.from_settings(settings))  # fmt: skip
        except DomainError as err:
            return err.status_code
        return 200

    return send


def http_sender(client: Any, path: str = WEBHOOK_PATH) -> Sender:
    """Deliver over HTTP with any client that has ``post(url, content=, headers=)``, sync or async."""

    async def send(headers: dict[str, str], body: bytes) -> int:
        response = client.post(path, content=body, headers=headers)
        if inspect.isawaitable(response):
            response = await response
        return int(response.status_code)

    return send


async def deliver_tracking(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    send: Sender | None = None,
    now: dt.datetime | None = None,
    *,
    duplicates: bool = False,
    reverse: bool = False,
    limit: int = BATCH,
) -> TrackingDeliveryReport:
    """Send every due sandbox tracking event once (one pass). ``duplicates`` sends each twice and
    ``reverse`` sends them newest first, as real services sometimes do."""
    now = now or utcnow()
    sandbox = get_tracker(settings, SANDBOX)
    assert isinstance(sandbox, SandboxTracker)
    send = send or local_sender(sessionmaker, settings, now)
    report = TrackingDeliveryReport()
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
            except Exception as exc:  # the receiver's failure is the sandbox's retry
                status, error = 0, f"{type(exc).__name__}: {exc}"
                log.warning("sandbox tracking event %s failed: %s", event_id, error)
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


async def run_once(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, now: dt.datetime | None = None
) -> dict[str, int]:
    """One pass of everything fulfillment does in the background (the scheduler's job)."""
    report = await deliver_tracking(sessionmaker, settings, now=now)
    return {"tracking_delivered": report.delivered, "tracking_failed": report.failed + report.gave_up}
