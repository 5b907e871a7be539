"""All ledger queries. Appends go through ``lock_head`` first, so they are serialised."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from trustlive.ledger.models import (
    LedgerBalance,
    LedgerHead,
    LedgerPosting,
    LedgerTransaction,
    Payout,
    PayoutStatus,
)

HEAD_ID = 1


def _insert(session: AsyncSession, table):  # type: ignore[no-untyped-def]
    """INSERT with ON CONFLICT support for the session's database."""
    dialect = session.bind.dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def _is_postgres(session: AsyncSession) -> bool:
    return session.bind.dialect.name == "postgresql"


# --- the chain head ---------------------------------------------------------------------------


async def lock_head(session: AsyncSession) -> LedgerHead | None:
    """The head row, locked for the rest of the transaction (PostgreSQL: FOR UPDATE; SQLite
    transactions already hold the write lock from BEGIN IMMEDIATE)."""
    stmt = select(LedgerHead).where(LedgerHead.id == HEAD_ID).execution_options(populate_existing=True)
    if _is_postgres(session):
        stmt = stmt.with_for_update()
    return await session.scalar(stmt)


async def share_head(session: AsyncSession) -> None:
    """PostgreSQL: a share lock on the head, which keeps appends out until the transaction ends."""
    if _is_postgres(session):
        await session.execute(
            select(LedgerHead.id).where(LedgerHead.id == HEAD_ID).with_for_update(read=True)
        )


async def create_head(session: AsyncSession, genesis: str, now: dt.datetime) -> None:
    """Insert the head row unless a concurrent transaction already did (then wait for it)."""
    stmt = (
        _insert(session, LedgerHead)
        .values(id=HEAD_ID, last_transaction_id=0, last_posting_id=0, last_hash=genesis, updated_at=now)
        .on_conflict_do_nothing(index_elements=["id"])
    )
    await session.execute(stmt)


async def get_head(session: AsyncSession) -> LedgerHead | None:
    stmt = select(LedgerHead).where(LedgerHead.id == HEAD_ID).execution_options(populate_existing=True)
    return await session.scalar(stmt)


async def last_transaction_id(session: AsyncSession) -> int | None:
    return await session.scalar(select(func.max(LedgerTransaction.id)))


# --- transactions and postings ----------------------------------------------------------------


async def transaction_by_key(session: AsyncSession, key: str) -> LedgerTransaction | None:
    stmt = (
        select(LedgerTransaction)
        .where(LedgerTransaction.idempotency_key == key)
        .options(selectinload(LedgerTransaction.postings))
    )
    return await session.scalar(stmt)


async def add_balance_deltas(session: AsyncSession, deltas: dict[str, int], now: dt.datetime) -> None:
    """Atomic increments: one upsert per account (``balance = balance + delta``)."""
    for account, delta in sorted(deltas.items()):
        stmt = _insert(session, LedgerBalance).values(account=account, balance_fen=delta, updated_at=now)
        stmt = stmt.on_conflict_do_update(
            index_elements=["account"],
            set_={
                "balance_fen": LedgerBalance.balance_fen + stmt.excluded.balance_fen,
                "updated_at": stmt.excluded.updated_at,
            },
        )
        await session.execute(stmt)


async def balance(session: AsyncSession, account: str) -> int:
    value = await session.scalar(select(LedgerBalance.balance_fen).where(LedgerBalance.account == account))
    return int(value or 0)


async def balances(
    session: AsyncSession, *, prefix: str | None, offset: int, limit: int
) -> list[LedgerBalance]:
    stmt = select(LedgerBalance).order_by(LedgerBalance.account).offset(offset).limit(limit)
    if prefix:
        stmt = stmt.where(LedgerBalance.account.startswith(prefix, autoescape=True))
    return list(await session.scalars(stmt))


async def total_balance(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.coalesce(func.sum(LedgerBalance.balance_fen), 0))) or 0)


async def statement(
    session: AsyncSession, account: str, *, before_id: int | None, limit: int
) -> list[tuple[LedgerPosting, LedgerTransaction]]:
    stmt = (
        select(LedgerPosting, LedgerTransaction)
        .join(LedgerTransaction, LedgerTransaction.id == LedgerPosting.transaction_id)
        .where(LedgerPosting.account == account)
        .order_by(LedgerPosting.id.desc())
        .limit(limit)
    )
    if before_id is not None:
        stmt = stmt.where(LedgerPosting.id < before_id)
    return [(p, t) for p, t in (await session.execute(stmt)).all()]


async def sum_up_to(session: AsyncSession, account: str, posting_id: int) -> int:
    """The account's balance just after posting ``posting_id``."""
    stmt = select(func.coalesce(func.sum(LedgerPosting.amount_fen), 0)).where(
        LedgerPosting.account == account, LedgerPosting.id <= posting_id
    )
    return int(await session.scalar(stmt) or 0)


# --- verification scans -----------------------------------------------------------------------


# Plain rows (attribute access like the models), not ORM objects: a scan of millions of rows
# must not fill the session's identity map.
_TX_COLUMNS = (
    LedgerTransaction.id,
    LedgerTransaction.kind,
    LedgerTransaction.ref,
    LedgerTransaction.idempotency_key,
    LedgerTransaction.memo,
    LedgerTransaction.created_at,
    LedgerTransaction.prev_hash,
    LedgerTransaction.hash,
)
_POSTING_COLUMNS = (
    LedgerPosting.id,
    LedgerPosting.transaction_id,
    LedgerPosting.account,
    LedgerPosting.amount_fen,
)


async def transactions_after(session: AsyncSession, after_id: int, limit: int) -> Sequence[Row[Any]]:
    stmt = (
        select(*_TX_COLUMNS)
        .where(LedgerTransaction.id > after_id)
        .order_by(LedgerTransaction.id)
        .limit(limit)
    )
    return (await session.execute(stmt)).all()


async def postings_between(session: AsyncSession, first_tx: int, last_tx: int) -> Sequence[Row[Any]]:
    stmt = (
        select(*_POSTING_COLUMNS)
        .where(LedgerPosting.transaction_id >= first_tx, LedgerPosting.transaction_id <= last_tx)
        .order_by(LedgerPosting.id)
    )
    return (await session.execute(stmt)).all()


async def orphan_postings(session: AsyncSession, limit: int = 10) -> Sequence[Row[Any]]:
    stmt = (
        select(*_POSTING_COLUMNS)
        .outerjoin(LedgerTransaction, LedgerTransaction.id == LedgerPosting.transaction_id)
        .where(LedgerTransaction.id.is_(None))
        .order_by(LedgerPosting.id)
        .limit(limit)
    )
    return (await session.execute(stmt)).all()


async def posting_sums(session: AsyncSession) -> dict[str, int]:
    stmt = select(LedgerPosting.account, func.sum(LedgerPosting.amount_fen)).group_by(LedgerPosting.account)
    return {account: int(total) for account, total in (await session.execute(stmt)).all()}


async def all_balances(session: AsyncSession) -> dict[str, int]:
    rows = (await session.execute(select(LedgerBalance.account, LedgerBalance.balance_fen))).all()
    return {account: int(value) for account, value in rows}


# --- payouts ----------------------------------------------------------------------------------


async def get_payout(session: AsyncSession, payout_id: int, *, lock: bool = False) -> Payout | None:
    stmt = select(Payout).where(Payout.id == payout_id).execution_options(populate_existing=True)
    if lock and _is_postgres(session):
        stmt = stmt.with_for_update()
    return await session.scalar(stmt)


async def payouts_of(session: AsyncSession, account: str, limit: int) -> list[Payout]:
    stmt = select(Payout).where(Payout.account == account).order_by(Payout.id.desc()).limit(limit)
    return list(await session.scalars(stmt))


async def payout_totals(session: AsyncSession, account: str) -> dict[str, int]:
    stmt = (
        select(Payout.status, func.sum(Payout.amount_fen))
        .where(Payout.account == account)
        .group_by(Payout.status)
    )
    return {status: int(total) for status, total in (await session.execute(stmt)).all()}


async def due_payout_ids(
    session: AsyncSession, now: dt.datetime, *, after_id: int, limit: int
) -> Sequence[int]:
    stmt = (
        select(Payout.id)
        .where(Payout.status == PayoutStatus.requested, Payout.created_at <= now, Payout.id > after_id)
        .order_by(Payout.id)
        .limit(limit)
    )
    return list(await session.scalars(stmt))
