"""The feed's periodic work (docs/feed.md, "Exposure and grants"): index what was published
before the feed listened to events (a step per pass until done), keep the providers'
rolling-window exposure true as hours leave the window, rebuild the item neighbours of
collaborative filtering in batch (at most hourly), forget old pages and reports, and keep this
process's caches warm. Every step is idempotent and, where several workers run the same job, one
of them does each step (``feed_state`` compare-and-set), so a restart loses nothing and nothing
is applied twice.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from trustlive.config import Settings
from trustlive.db import transaction, utcnow
from trustlive.feed import ranking
from trustlive.feed import service as feed


async def build_neighbours(
    sessionmaker: async_sessionmaker[AsyncSession],
    config: ranking.Config,
    *,
    now: dt.datetime | None = None,
    force: bool = False,
) -> int | None:
    """Rebuild the neighbour table from the interactions of the last NEIGHBOUR_DAYS days, when
    NEIGHBOURS_EVERY_S has passed since the last build (or ``force``). The model is computed in a
    worker thread, outside any transaction; the table is swapped in one transaction. Returns the
    rows written, or None when it was not this worker's turn."""
    now = now or utcnow()
    async with transaction(sessionmaker) as session:
        if not await feed.claim_neighbours_build(session, now, force=force):
            return None
        rows = await feed.interactions_for_build(session, now)
    table = await asyncio.to_thread(feed.neighbour_rows, rows, config)
    async with transaction(sessionmaker) as session:
        await feed.store_neighbours(session, table)
    return len(table)


async def run_once(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, now: dt.datetime | None = None
) -> dict[str, int | None]:
    """One pass: a backfill step (until done), the window, the neighbours (when due), pruning, and
    this process's caches warmed."""
    config = feed.config_for(settings)
    now = now or utcnow()
    done: dict[str, int | None] = {}
    async with transaction(sessionmaker) as session:
        done["backfilled"] = await feed.backfill(session, now)
    async with transaction(sessionmaker) as session:
        done["window"] = await feed.advance_window(session, config, now)
    done["neighbours"] = await build_neighbours(sessionmaker, config, now=now)
    async with transaction(sessionmaker) as session:
        done["pruned"] = await feed.prune(session, now)
    async with transaction(sessionmaker) as session:
        done["providers"] = await feed.warm(session, config, now)
    return done


def job(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> Callable[[], Awaitable[object]]:
    """The scheduler's feed job. Reads the ranking configuration now (``TRUSTLIVE_FEED_CONFIG``),
    so a bad file stops the app at start-up with the reason, not a request later."""
    feed.config_for(settings)
    return lambda: run_once(sessionmaker, settings)
