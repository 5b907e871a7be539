"""Order deadline sweepers: cancel unpaid orders at their pay deadline (stock goes back),
auto-confirm receipt, settle escrow. Each order is handled in its own short transaction through
the service's conditional transitions, so re-running, crashing half-way or racing another worker
is harmless."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from trustlive.db import transaction, utcnow
from trustlive.orders import repository as repo
from trustlive.orders import service
from trustlive.orders.models import OrderStatus

BATCH = 200


async def _sweep(
    sessionmaker, status: str, column: str, now: dt.datetime, step, *, unheld: bool = False
) -> int:  # type: ignore[no-untyped-def]
    done = 0
    async with transaction(sessionmaker) as session:
        due = await repo.due_orders(session, status, column, now, BATCH, unheld=unheld)
    for order_id in due:
        async with transaction(sessionmaker) as session:
            if await step(session, order_id):
                done += 1
    return done


async def cancel_unpaid(
    sessionmaker: async_sessionmaker[AsyncSession], now: dt.datetime | None = None
) -> int:
    now = now or utcnow()
    return await _sweep(
        sessionmaker,
        OrderStatus.pending_payment,
        "pay_deadline",
        now,
        lambda s, i: service.expire_order(s, i, now),
    )


async def auto_confirm(sessionmaker: async_sessionmaker[AsyncSession], now: dt.datetime | None = None) -> int:
    now = now or utcnow()
    return await _sweep(
        sessionmaker,
        OrderStatus.delivered,
        "auto_confirm_at",
        now,
        lambda s, i: service.auto_confirm(s, i, now),
    )


async def settle(
    sessionmaker: async_sessionmaker[AsyncSession],
    now: dt.datetime | None = None,
    policy: service.OrderPolicy = service.DEFAULT_POLICY,
) -> int:
    now = now or utcnow()
    return await _sweep(
        sessionmaker,
        OrderStatus.completed,
        "settle_at",
        now,
        lambda s, i: service.settle_order(s, i, now, policy),
        unheld=True,
    )


async def run_due(
    sessionmaker: async_sessionmaker[AsyncSession],
    now: dt.datetime | None = None,
    policy: service.OrderPolicy = service.DEFAULT_POLICY,
) -> dict[str, int]:
    """Every order deadline that has come, in lifecycle order."""
    now = now or utcnow()
    return {
        "cancelled": await cancel_unpaid(sessionmaker, now),
        "auto_confirmed": await auto_confirm(sessionmaker, now),
        "settled": await settle(sessionmaker, now, policy),
    }
