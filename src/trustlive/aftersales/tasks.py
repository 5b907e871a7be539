"""Deadline sweepers of the aftersales domain: close whole-order claims their order has outgrown
(shipped after "not shipped", receipt confirmed after "not received"), auto-approve requests the
shop did not answer, start the ship-back clock once a shop has a return address, close returns
not sent back in time, note return parcels the carrier delivered and refund them automatically
when the shop has not confirmed them in time, close rejections not escalated in time.

Each request is handled in its own short transaction through the service's conditional
transitions (the same ones the shop's and the buyer's requests use), so re-running, crashing
half-way or racing another worker or the shop itself is harmless: one side wins, the other finds
nothing left to do."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from trustlive.aftersales import service
from trustlive.aftersales.models import Status
from trustlive.config import Settings
from trustlive.db import transaction, utcnow
from trustlive.errors import DomainError

BATCH = 200
log = logging.getLogger(__name__)

Step = Callable[[AsyncSession, int], Awaitable[bool]]


async def _each(sessionmaker: async_sessionmaker[AsyncSession], ids: list[int], step: Step) -> int:
    """Run ``step`` on every id, each in its own transaction. A refusal (say the order was settled
    by hand meanwhile) is logged and leaves that request for ops; the rest go on."""
    done = 0
    for request_id in ids:
        try:
            async with transaction(sessionmaker) as session:
                if await step(session, request_id):
                    done += 1
        except DomainError as err:
            log.warning("after-sales request %s: %s (%s)", request_id, err.message, err.code)
    return done


async def _due(
    sessionmaker: async_sessionmaker[AsyncSession], status: str, now: dt.datetime, step: Step
) -> int:
    async with transaction(sessionmaker) as session:
        ids = await service.due(session, status, now, BATCH)
    return await _each(sessionmaker, ids, step)


async def close_outdated(sessionmaker: async_sessionmaker[AsyncSession], now: dt.datetime) -> int:
    """Pending whole-order claims, checked against their orders a page at a time."""
    done, after = 0, 0
    while after is not None:
        async with transaction(sessionmaker) as session:
            ids, after = await service.outdated_to_close(session, now, after, BATCH)
        done += await _each(sessionmaker, ids, lambda s, i: service.close_outdated(s, i, now))
    return done


async def auto_approve(
    sessionmaker: async_sessionmaker[AsyncSession], now: dt.datetime, policy: service.AftersalesPolicy
) -> int:
    return await _due(sessionmaker, Status.pending, now, lambda s, i: service.auto_approve(s, i, now, policy))


async def start_return_clocks(
    sessionmaker: async_sessionmaker[AsyncSession], now: dt.datetime, policy: service.AftersalesPolicy
) -> int:
    done, after = 0, 0
    while after is not None:
        async with transaction(sessionmaker) as session:
            ids, after = await service.clocks_to_start(session, after, BATCH)
        done += await _each(sessionmaker, ids, lambda s, i: service.start_return_clock(s, i, now, policy))
    return done


async def close_unsent(sessionmaker: async_sessionmaker[AsyncSession], now: dt.datetime) -> int:
    return await _due(sessionmaker, Status.awaiting_return, now, lambda s, i: service.close_unsent(s, i, now))


async def note_arrivals(
    sessionmaker: async_sessionmaker[AsyncSession], policy: service.AftersalesPolicy
) -> int:
    """Returns on their way are checked in pages (one query for their parcels per page)."""
    done, after = 0, 0
    while after is not None:
        async with transaction(sessionmaker) as session:
            arrived, after = await service.arrivals_to_note(session, after, BATCH)
        at = dict(arrived)

        async def step(session: AsyncSession, request_id: int, at: dict[int, dt.datetime] = at) -> bool:
            return await service.note_arrival(session, request_id, at[request_id], policy)

        done += await _each(sessionmaker, list(at), step)
    return done


async def auto_refund(sessionmaker: async_sessionmaker[AsyncSession], now: dt.datetime) -> int:
    return await _due(sessionmaker, Status.return_shipped, now, lambda s, i: service.auto_refund(s, i, now))


async def close_rejected(sessionmaker: async_sessionmaker[AsyncSession], now: dt.datetime) -> int:
    return await _due(sessionmaker, Status.rejected, now, lambda s, i: service.close_rejected(s, i, now))


async def run_once(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, now: dt.datetime | None = None
) -> dict[str, int]:
    """One pass of every due deadline of this domain (the scheduler's job)."""
    now = now or utcnow()
    policy = service.AftersalesPolicy.from_settings(settings)
    return {
        "claims_outdated": await close_outdated(sessionmaker, now),
        "auto_approved": await auto_approve(sessionmaker, now, policy),
        "return_clocks_started": await start_return_clocks(sessionmaker, now, policy),
        "returns_not_sent": await close_unsent(sessionmaker, now),
        "returns_arrived": await note_arrivals(sessionmaker, policy),
        "auto_refunded": await auto_refund(sessionmaker, now),
        "rejections_closed": await close_rejected(sessionmaker, now),
    }
