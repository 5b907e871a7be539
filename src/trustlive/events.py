"""Side effects after commit, through a transactional outbox.

A service calls ``record(session, topic, payload)`` inside its unit of work; the event row commits
or rolls back with the data it describes, so a published event is never lost and never seen before
its data is committed. The ``OutboxRelay`` delivers committed events to in-process subscribers and,
when Redis is configured, publishes them on ``trustlive:events`` so that every worker process sees
them (live rooms fan out from there). Delivery is at least once: handlers must be idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import json
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import JSON, Index, Integer, String, Table, Text, bindparam, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from trustlive.db import Base, BigId, UTCDateTime, in_param, transaction, utcnow

log = logging.getLogger(__name__)

REDIS_CHANNEL = "trustlive:events"
MAX_ATTEMPTS = 10


class OutboxEvent(Base):
    __tablename__ = "outbox_events"
    # The relay reads pending events in id order; the index holds only those, so it stays small
    # however long the history grows, and marking an event delivered adds no index entry.
    __table_args__ = (
        Index("ix_outbox_events_pending", "id", postgresql_where=text("published_at IS NULL"),
              sqlite_where=text("published_at IS NULL")),
    )  # fmt: skip

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    topic: Mapped[str] = mapped_column(String(100), nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    published_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)


@dataclass(frozen=True)
class Event:
    id: int
    topic: str
    payload: dict[str, Any]
    created_at: dt.datetime


Handler = Callable[[AsyncSession, Event], Awaitable[None]]


def record(session: AsyncSession, topic: str, payload: dict[str, Any]) -> None:
    """Queue an event in the caller's transaction. JSON-serialisable payloads only."""
    json.dumps(payload)  # fail loudly now, not in the relay
    session.add(OutboxEvent(topic=topic, payload=payload))
    session.info["outbox_dirty"] = True


def outbox_rows(
    session: AsyncSession, items: list[tuple[str, dict[str, Any]]]
) -> tuple[Table, list[dict[str, Any]]]:
    """Events as outbox rows, for a caller that writes them together with the rows they announce
    (``db.insert_rows``: one statement for the batched checkout). The relay is woken after commit."""
    for _, payload in items:
        json.dumps(payload)  # fail loudly now, not in the relay
    now = utcnow()
    session.info["outbox_dirty"] = True
    return OutboxEvent.__table__, [
        {"topic": t, "payload": p, "created_at": now, "attempts": 0} for t, p in items
    ]


class EventBus:
    """Topic -> handlers. ``*`` subscribes to everything."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = defaultdict(list)

    def subscribe(self, topic: str, handler: Handler) -> None:
        self._handlers[topic].append(handler)

    def handlers_for(self, topic: str) -> list[Handler]:
        return [*self._handlers.get(topic, []), *self._handlers.get("*", [])]


class OutboxRelay:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        bus: EventBus,
        redis: Any | None = None,
        *,
        poll_seconds: float = 1.0,
        batch: int = 100,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.bus = bus
        self.redis = redis
        self.poll_seconds = poll_seconds
        self.batch = batch
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._stopping = False

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """Ask ``run_forever`` to return after the pass in progress. Cancelling it mid-pass could
        abandon a database connection inside an open transaction (on SQLite: a held write lock)."""
        self._stopping = True
        self._wake.set()

    async def run_once(self) -> int:
        """Deliver one batch of committed, unpublished events. Returns how many were published."""
        return (await self._pass())[1]

    async def _pass(self) -> tuple[int, int]:
        """One batch: (events read, events delivered)."""
        async with self._lock, transaction(self.sessionmaker) as session:
            dialect = session.bind.dialect.name
            conn = await session.connection()  # Core: plain rows, one UPDATE for the delivered ones
            rows = (await conn.execute(_pending_statement(dialect), {"limit": self.batch})).all()
            delivered: list[int] = []
            for row in rows:
                event = Event(row.id, row.topic, dict(row.payload), row.created_at)
                handlers = self.bus.handlers_for(row.topic)
                try:
                    if handlers:  # a savepoint only where there is work that could fail half-way
                        async with session.begin_nested():
                            for handler in handlers:
                                await handler(session, event)
                    if self.redis is not None:
                        await self.redis.publish(REDIS_CHANNEL, _encode(event))
                except Exception as exc:  # a failing handler must not block the others
                    log.exception("outbox event %s (%s) failed", row.id, row.topic)
                    await conn.execute(
                        update(OutboxEvent.__table__)
                        .where(OutboxEvent.id == row.id)
                        .values(
                            attempts=OutboxEvent.attempts + 1,
                            last_error=f"{type(exc).__name__}: {exc}"[:2000],
                        )
                    )
                    continue
                delivered.append(row.id)
            if delivered:
                await conn.execute(_delivered_statement(dialect), {"ids": delivered, "now": utcnow()})
            return len(rows), len(delivered)

    async def drain(self) -> int:
        """Deliver everything pending. A short batch means nothing more was pending when it was
        read (events committed since then wake the relay again), so no pass is spent finding none."""
        total = 0
        while True:
            read, delivered = await self._pass()
            total += delivered
            if read < self.batch or not delivered:
                return total

    async def run_forever(self) -> None:
        while not self._stopping:
            try:
                await self.drain()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay pass failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_seconds)
            self._wake.clear()


@functools.cache
def _pending_statement(dialect: str):  # type: ignore[no-untyped-def]
    t = OutboxEvent.__table__.c
    stmt = (
        select(t.id, t.topic, t.payload, t.created_at)
        .where(t.published_at.is_(None), t.attempts < MAX_ATTEMPTS)
        .order_by(t.id)
        .limit(bindparam("limit"))
    )
    # Several workers may relay at once; each row goes to exactly one of them.
    return stmt.with_for_update(skip_locked=True) if dialect == "postgresql" else stmt


@functools.cache
def _delivered_statement(dialect: str):  # type: ignore[no-untyped-def]
    return (
        update(OutboxEvent.__table__)
        .where(in_param(OutboxEvent.id, "ids", dialect))
        .values(published_at=bindparam("now", type_=UTCDateTime()), attempts=OutboxEvent.attempts + 1)
    )


def _encode(event: Event) -> str:
    return json.dumps(
        {"id": event.id, "topic": event.topic, "payload": event.payload, "at": event.created_at.isoformat()},
        ensure_ascii=False,
    )


def decode(message: str | bytes) -> Event:
    data = json.loads(message)
    return Event(data["id"], data["topic"], data["payload"], dt.datetime.fromisoformat(data["at"]))
