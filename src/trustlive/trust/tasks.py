"""Jobs of the trust domain: refresh the scores of orders whose events arrived (every pass of the
scheduler, until the queue is empty), and the nightly full recompute (once a day after
``TRUSTLIVE_SCORES_NIGHTLY_HOUR`` o'clock, Asia/Shanghai; the day is claimed in the database, so
several worker processes run it once). Both are idempotent: a crash loses nothing, the queue and
the day's claim are rows."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from trustlive.config import Settings
from trustlive.trust import service


async def run_once(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, now: dt.datetime | None = None
) -> dict[str, int]:
    out = {"refreshed": await service.refresh_pending(sessionmaker)}
    if await service.nightly_due(sessionmaker, settings.scores_nightly_hour, now):
        done = await service.recompute_all(sessionmaker, now=now, nightly=True)
        out["recomputed"] = sum(done.get(k, 0) for k in service.KEY)
    return out
