"""Deadline sweepers of the reviews domain.

Reviews have one deadline, the edit window (``reviews.edit_until``), and nothing happens when it
passes: an edit after it is simply refused. So there is nothing to sweep.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from trustlive.config import Settings


async def run_once(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, now: dt.datetime | None = None
) -> dict[str, int]:
    """One pass of every due deadline of this domain (the scheduler's job): none."""
    return {}
