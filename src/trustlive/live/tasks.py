"""Deadline sweepers of the live domain: end live sessions nobody keeps alive, and flash sales
past their countdown.

A live session's last sign of life is ``heartbeat_at`` (set at start and by the creator's
heartbeat); one older than ``TRUSTLIVE_LIVE_HEARTBEAT_SECONDS`` ends the session with reason
``no_heartbeat`` (the room is closed after commit, like a creator's end). A running flash sale
whose ``ends_at`` has passed ends. Each item goes in its own short transaction through the same
conditional UPDATE the requests use, so a second pass or another worker finds nothing to do.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from trustlive.config import Settings
from trustlive.db import transaction, utcnow
from trustlive.live import repository as repo
from trustlive.live import service

BATCH = 200


async def end_silent_sessions(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, now: dt.datetime | None = None
) -> int:
    now = now or utcnow()
    cutoff = now - dt.timedelta(seconds=settings.live_heartbeat_seconds)
    async with transaction(sessionmaker) as session:
        due = await repo.silent_sessions(session, cutoff, BATCH)
    ended = 0
    for session_id in due:
        async with transaction(sessionmaker) as session:
            if await service.end_silent(session, session_id, now):
                ended += 1
    return ended


async def end_due_sales(
    sessionmaker: async_sessionmaker[AsyncSession], now: dt.datetime | None = None
) -> int:
    now = now or utcnow()
    async with transaction(sessionmaker) as session:
        due = [sale.id for sale in await repo.due_sales(session, now, BATCH)]
    ended = 0
    for sale_id in due:
        async with transaction(sessionmaker) as session:
            if await service.end_due_sale(session, sale_id, now):
                ended += 1
    return ended


async def run_once(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, now: dt.datetime | None = None
) -> dict[str, int]:
    """One pass of every due deadline of this domain (the scheduler's job)."""
    return {
        "flash_sales_ended": await end_due_sales(sessionmaker, now),
        "sessions_ended": await end_silent_sessions(sessionmaker, settings, now),
    }
