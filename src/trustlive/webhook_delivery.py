"""The sandboxes' webhook delivery service, shared by the payment sandbox and the tracking
sandbox: each queues signed events in a table of its own with the columns of
``DeliveryColumns``, and ``deliver_due`` sends the due ones.

A due delivery is claimed for ``LEASE`` (another deliverer skips it meanwhile; a crashed one's
claims fall due again when the lease ends), sent, and marked delivered on a 2xx; otherwise it is
retried with exponential backoff (10 s, 20 s, 40 s ... at most 6 h) until ``MAX_ATTEMPTS``, then
given up. For tests, ``duplicates`` sends every event twice and ``reverse`` sends a batch newest
first, as real services sometimes do.
"""

from __future__ import annotations

import datetime as dt
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from sqlalchemy import Integer, String, Text, and_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from trustlive.db import UTCDateTime, transaction, utcnow
from trustlive.errors import DomainError

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 10
BACKOFF_BASE = dt.timedelta(seconds=10)
BACKOFF_MAX = dt.timedelta(hours=6)
LEASE = dt.timedelta(minutes=2)  # a claimed delivery is due again if its deliverer died
BATCH = 100

# headers, body -> HTTP status the receiver answered
Sender = Callable[[dict[str, str], bytes], Awaitable[int] | int]


class DeliveryColumns:
    """The columns of a sandbox's delivery queue (mixed into its table)."""

    event_id: Mapped[str] = mapped_column(String(100), nullable=False, unique=True)
    body: Mapped[str] = mapped_column(Text, nullable=False)  # the exact JSON text that is signed
    attempts: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)


class DeliveryReport(msgspec.Struct):
    attempted: int = 0
    delivered: int = 0
    failed: int = 0
    gave_up: int = 0


def backoff(attempts: int) -> dt.timedelta:
    """Wait after the ``attempts``-th failed try: 10 s, 20 s, 40 s ... at most 6 h."""
    return min(BACKOFF_BASE * 2 ** min(max(attempts - 1, 0), 20), BACKOFF_MAX)


def local_sender(
    sessionmaker: async_sessionmaker[AsyncSession],
    handle: Callable[[AsyncSession, dict[str, str], bytes], Awaitable[Any]],
) -> Sender:
    """Deliver in process: ``handle`` (what the webhook route runs) in its own transaction; a
    domain error answers its HTTP status, as the route would."""

    async def send(headers: dict[str, str], body: bytes) -> int:
        try:
            async with transaction(sessionmaker) as session:
                await handle(session, headers, body)
        except DomainError as err:
            return err.status_code
        return 200

    return send


def http_sender(client: Any, path: str) -> Sender:
    """Deliver over HTTP with any client that has ``post(url, content=, headers=)`` (httpx,
    Litestar's TestClient), sync or async."""

    async def send(headers: dict[str, str], body: bytes) -> int:
        response = client.post(path, content=body, headers=headers)
        if inspect.isawaitable(response):
            response = await response
        return int(response.status_code)

    return send


async def claim(
    session: AsyncSession, model: Any, now: dt.datetime, limit: int, lease: dt.timedelta
) -> list[Any]:
    """Due deliveries of ``model``, claimed for ``lease``."""
    stmt = (
        select(model)
        .where(
            and_(
                model.delivered_at.is_(None), model.next_attempt_at.is_not(None), model.next_attempt_at <= now
            )
        )
        .order_by(model.next_attempt_at, model.id)
        .limit(limit)
    )
    if session.bind.dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    rows = list(await session.scalars(stmt))
    for row in rows:
        row.attempts += 1
        row.next_attempt_at = now + lease
    await session.flush()
    return rows


async def deliver_due(
    sessionmaker: async_sessionmaker[AsyncSession],
    model: Any,
    signed_headers: Callable[[bytes, dt.datetime], dict[str, str]],
    send: Sender,
    now: dt.datetime | None = None,
    *,
    duplicates: bool = False,
    reverse: bool = False,
    limit: int = BATCH,
) -> DeliveryReport:
    """Send every due delivery of ``model`` once (one pass), each in its own transaction."""
    now = now or utcnow()
    report = DeliveryReport()
    async with transaction(sessionmaker) as session:
        claimed = [
            (d.id, d.event_id, d.body, d.attempts) for d in await claim(session, model, now, limit, LEASE)
        ]
    if reverse:
        claimed.reverse()
    for delivery_id, event_id, body, attempts in claimed:
        raw = body.encode()
        status, error = 0, None
        for _ in range(2 if duplicates else 1):
            report.attempted += 1
            try:
                result = send(signed_headers(raw, now), raw)
                status = int(await result) if inspect.isawaitable(result) else int(result)
                error = None if 200 <= status < 300 else f"HTTP {status}"
            except Exception as exc:  # the receiver's failure is the sandbox's retry
                status, error = 0, f"{type(exc).__name__}: {exc}"
                log.warning("sandbox webhook %s failed: %s", event_id, error)
        async with transaction(sessionmaker) as session:
            row = await session.get(model, delivery_id)
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
