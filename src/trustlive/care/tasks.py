"""Deadline sweepers of the care domain: flag follow-ups that have become overdue, once each.

Each follow-up is flagged in its own short transaction through a conditional UPDATE (``WHERE
alerted_at IS NULL``), so a second pass, a restart or another worker racing this one finds nothing
left to do and records no second ``care.follow_up_overdue``."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from trustlive.care import repository as repo
from trustlive.care import service
from trustlive.config import Settings
from trustlive.db import transaction, utcnow

BATCH = 200


async def alert_overdue(
    sessionmaker: async_sessionmaker[AsyncSession], now: dt.datetime | None = None
) -> int:
    """Flag every follow-up past due (of an open case, not done) not flagged yet."""
    now = now or utcnow()
    async with transaction(sessionmaker) as session:
        due = await repo.overdue_unalerted(session, now, BATCH)
    alerted = 0
    for follow_up_id in due:
        async with transaction(sessionmaker) as session:
            if await service.alert_overdue(session, follow_up_id, now):
                alerted += 1
    return alerted


async def run_once(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, now: dt.datetime | None = None
) -> dict[str, int]:
    """One pass of every due deadline of this domain (the scheduler's job)."""
    return {"follow_ups_overdue": await alert_overdue(sessionmaker, now)}
