"""Every query of the care domain. Changes to a case's state are conditional UPDATEs (``WHERE
status = ...``, ``WHERE specialist_id IS NULL``) so two staff acting at once cannot both win."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ColumnElement, case, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from trustlive.care.models import PRIORITIES, CareCase, CareEntry, CareFollowUp

# Most urgent first wherever cases are listed.
PRIORITY_RANK = case(
    {p: rank for rank, p in enumerate(PRIORITIES)}, value=CareCase.priority, else_=len(PRIORITIES)
)


async def get_case(session: AsyncSession, case_id: int, *, for_update: bool = False) -> CareCase | None:
    """One case; ``for_update`` locks its row (PostgreSQL) so that a use case changing the case or
    its schedule works on what the last writer committed (SQLite writers queue anyway)."""
    stmt = select(CareCase).where(CareCase.id == case_id).execution_options(populate_existing=True)
    if for_update and session.bind.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return await session.scalar(stmt)


async def open_case_for(session: AsyncSession, buyer_id: int, request_id: int | None) -> CareCase | None:
    stmt = select(CareCase).where(CareCase.buyer_id == buyer_id, CareCase.status == "open")
    stmt = stmt.where(
        CareCase.request_id.is_(None) if request_id is None else CareCase.request_id == request_id
    )
    return await session.scalar(stmt.limit(1))


async def follow_ups_of(session: AsyncSession, case_id: int) -> list[CareFollowUp]:
    stmt = (
        select(CareFollowUp)
        .where(CareFollowUp.case_id == case_id)
        .order_by(CareFollowUp.done_at.is_not(None), CareFollowUp.due_at, CareFollowUp.id)
    )
    return list(await session.scalars(stmt))


async def get_follow_up(session: AsyncSession, follow_up_id: int) -> CareFollowUp | None:
    return await session.get(CareFollowUp, follow_up_id, populate_existing=True)


async def finish_follow_up(
    session: AsyncSession, follow_up_id: int, actor_id: int, result: str, at: dt.datetime
) -> bool:
    """Mark a follow-up done, once: False when it was done already."""
    outcome = await session.execute(
        update(CareFollowUp)
        .where(CareFollowUp.id == follow_up_id, CareFollowUp.done_at.is_(None))
        .values(done_at=at, done_by_id=actor_id, result=result)
        .execution_options(synchronize_session=False)
    )
    return outcome.rowcount == 1


async def refresh_next_due(session: AsyncSession, case_id: int) -> None:
    """The case's next contact due: the earliest follow-up not done yet (None when there is none)."""
    earliest = (
        select(func.min(CareFollowUp.due_at))
        .where(CareFollowUp.case_id == case_id, CareFollowUp.done_at.is_(None))
        .scalar_subquery()
    )
    await session.execute(
        update(CareCase)
        .where(CareCase.id == case_id)
        .values(next_due_at=earliest)
        .execution_options(synchronize_session=False)
    )


async def entries_of(session: AsyncSession, case_id: int, *, to_buyer_only: bool = False) -> list[CareEntry]:
    stmt = select(CareEntry).where(CareEntry.case_id == case_id).order_by(CareEntry.id)
    if to_buyer_only:
        stmt = stmt.where(CareEntry.to_buyer.is_(True))
    return list(await session.scalars(stmt))


async def set_specialist(
    session: AsyncSession, case_id: int, specialist_id: int, *, only_if_unassigned: bool
) -> bool:
    """Assign an open case; with ``only_if_unassigned`` (a specialist taking it from the queue)
    only while nobody has it, so two specialists taking it at once cannot both get it."""
    conditions = [CareCase.id == case_id, CareCase.status == "open"]
    if only_if_unassigned:
        conditions.append(CareCase.specialist_id.is_(None))
    result = await session.execute(
        update(CareCase).where(*conditions).values(specialist_id=specialist_id)
        .execution_options(synchronize_session=False)
    )  # fmt: skip
    return result.rowcount == 1


async def move(session: AsyncSession, case_id: int, from_status: str, **values: Any) -> bool:
    """Close or reopen a case, only from ``from_status``."""
    result = await session.execute(
        update(CareCase)
        .where(CareCase.id == case_id, CareCase.status == from_status)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


# --- lists ------------------------------------------------------------------------------------


def _visible_to(viewer_id: int, ops: bool) -> list[ColumnElement[bool]]:
    """Ops see every case, a specialist their own and the unassigned ones; nobody sees the staff
    side of a case about themselves."""
    conditions = [CareCase.buyer_id != viewer_id]
    if not ops:
        conditions.append((CareCase.specialist_id == viewer_id) | CareCase.specialist_id.is_(None))
    return conditions


async def due_cases(
    session: AsyncSession, *, viewer_id: int, ops: bool, before: dt.datetime, after: dt.datetime | None = None,
    limit: int,
) -> list[CareCase]:  # fmt: skip
    """Open cases the viewer sees whose next contact is due before ``before`` (and not before
    ``after``), the earliest first."""
    stmt = select(CareCase).where(
        CareCase.status == "open", CareCase.next_due_at.is_not(None), CareCase.next_due_at < before,
        *_visible_to(viewer_id, ops),
    )  # fmt: skip
    if after is not None:
        stmt = stmt.where(CareCase.next_due_at >= after)
    stmt = stmt.order_by(CareCase.next_due_at, PRIORITY_RANK, CareCase.id).limit(limit)
    return list(await session.scalars(stmt))


async def assigned_to(session: AsyncSession, specialist_id: int, limit: int) -> list[CareCase]:
    """A specialist's open cases: the most urgent first, then by next contact (none last)."""
    stmt = (
        select(CareCase)
        .where(CareCase.status == "open", CareCase.specialist_id == specialist_id)
        .order_by(PRIORITY_RANK, CareCase.next_due_at.is_(None), CareCase.next_due_at, CareCase.id)
        .limit(limit)
    )
    return list(await session.scalars(stmt))


async def unassigned(session: AsyncSession, viewer_id: int, limit: int) -> list[CareCase]:
    """The queue: open cases nobody has taken yet, the most urgent and the oldest first."""
    stmt = (
        select(CareCase)
        .where(CareCase.status == "open", CareCase.specialist_id.is_(None), CareCase.buyer_id != viewer_id)
        .order_by(PRIORITY_RANK, CareCase.id)
        .limit(limit)
    )
    return list(await session.scalars(stmt))


async def list_cases(
    session: AsyncSession, *, viewer_id: int, ops: bool, status: str | None, priority: str | None,
    assignee: int | None, unassigned_only: bool, buyer_id: int | None, before_id: int | None, limit: int,
) -> list[CareCase]:  # fmt: skip
    """The cases the viewer sees, newest first, filtered."""
    stmt = select(CareCase).where(*_visible_to(viewer_id, ops)).order_by(CareCase.id.desc()).limit(limit)
    if status is not None:
        stmt = stmt.where(CareCase.status == status)
    if priority is not None:
        stmt = stmt.where(CareCase.priority == priority)
    if assignee is not None:
        stmt = stmt.where(CareCase.specialist_id == assignee)
    if unassigned_only:
        stmt = stmt.where(CareCase.specialist_id.is_(None))
    if buyer_id is not None:
        stmt = stmt.where(CareCase.buyer_id == buyer_id)
    if before_id is not None:
        stmt = stmt.where(CareCase.id < before_id)
    return list(await session.scalars(stmt))


async def buyer_cases(session: AsyncSession, buyer_id: int) -> list[CareCase]:
    """The buyer's cases that hold something addressed to them, open ones first, newest first."""
    addressed = exists().where(CareEntry.case_id == CareCase.id, CareEntry.to_buyer.is_(True))
    stmt = (
        select(CareCase)
        .where(CareCase.buyer_id == buyer_id, addressed)
        .order_by(CareCase.status != "open", CareCase.id.desc())
    )
    return list(await session.scalars(stmt))


async def latest_buyer_entries(session: AsyncSession, case_ids: list[int]) -> dict[int, CareEntry]:
    """The newest buyer-visible entry of each case, in one query (for the buyer's list)."""
    if not case_ids:
        return {}
    newest = (
        select(func.max(CareEntry.id))
        .where(CareEntry.case_id.in_(case_ids), CareEntry.to_buyer.is_(True))
        .group_by(CareEntry.case_id)
    )
    rows = await session.scalars(select(CareEntry).where(CareEntry.id.in_(newest)))
    return {e.case_id: e for e in rows}


# --- the overdue sweeper ----------------------------------------------------------------------


async def overdue_unalerted(session: AsyncSession, now: dt.datetime, limit: int) -> list[int]:
    """Follow-ups of open cases, not done, past due and not alerted yet, the oldest first."""
    stmt = (
        select(CareFollowUp.id)
        .join(CareCase, CareCase.id == CareFollowUp.case_id)
        .where(
            CareFollowUp.done_at.is_(None),
            CareFollowUp.alerted_at.is_(None),
            CareFollowUp.due_at <= now,
            CareCase.status == "open",
        )
        .order_by(CareFollowUp.due_at, CareFollowUp.id)
        .limit(limit)
    )
    return list(await session.scalars(stmt))


async def mark_alerted(session: AsyncSession, follow_up_id: int, now: dt.datetime) -> bool:
    """Flag an overdue follow-up once: False when another pass (or its completion) came first."""
    result = await session.execute(
        update(CareFollowUp)
        .where(
            CareFollowUp.id == follow_up_id,
            CareFollowUp.alerted_at.is_(None),
            CareFollowUp.done_at.is_(None),
            CareFollowUp.due_at <= now,
        )
        .values(alerted_at=now)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1
