"""Deadline sweepers of the care domain."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from trustlive.config import Settings


async def run_once(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, now: dt.datetime | None = None
) -> dict[str, int]:
    """One pass of every due deadline of this domain (the scheduler's job)."""
    return {}
