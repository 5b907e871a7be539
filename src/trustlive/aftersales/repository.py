"""Every query of the aftersales domain."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from trustlive.aftersales.models import AftersalesMessage, AftersalesPhoto, AftersalesRequest, Status
from trustlive.db import in_param


async def get_request(session: AsyncSession, request_id: int) -> AftersalesRequest | None:
    stmt = (
        select(AftersalesRequest)
        .where(AftersalesRequest.id == request_id)
        .execution_options(populate_existing=True)  # after a conditional UPDATE, read what it wrote
    )
    return await session.scalar(stmt)


async def transition(
    session: AsyncSession, request_id: int, from_statuses: tuple[str, ...], to_status: str, *,
    where: Sequence[Any] = (), **values: Any,
) -> bool:  # fmt: skip
    """Move one request from one of ``from_statuses`` to ``to_status`` (and ``where`` holds);
    False when it did not match any more (another actor moved it first: the merchant and the
    sweeper racing)."""
    result = await session.execute(
        update(AftersalesRequest)
        .where(AftersalesRequest.id == request_id, AftersalesRequest.status.in_(from_statuses), *where)
        .values(status=to_status, **values)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


async def set_fields(session: AsyncSession, request_id: int, status: str, where: Any, **values: Any) -> bool:
    """Set columns on a request still in ``status`` and matching ``where`` (a column condition)."""
    result = await session.execute(
        update(AftersalesRequest)
        .where(AftersalesRequest.id == request_id, AftersalesRequest.status == status, where)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


async def open_request_at(session: AsyncSession, order_id: int, slot: int | None) -> AftersalesRequest | None:
    """The open request holding one of an order's slots (a line's id, 0: the whole order)."""
    stmt = select(AftersalesRequest).where(
        AftersalesRequest.order_id == order_id, AftersalesRequest.open_slot == slot
    )
    return await session.scalar(stmt)


async def requests_of_order(session: AsyncSession, order_id: int) -> list[AftersalesRequest]:
    stmt = (
        select(AftersalesRequest)
        .where(AftersalesRequest.order_id == order_id)
        .order_by(AftersalesRequest.id.desc())
        .execution_options(populate_existing=True)  # read again after a conditional UPDATE
    )
    return list(await session.scalars(stmt))


async def requests_of_buyer(
    session: AsyncSession, buyer_id: int, before_id: int | None, limit: int
) -> list[AftersalesRequest]:
    stmt = select(AftersalesRequest).where(AftersalesRequest.buyer_id == buyer_id)
    if before_id is not None:
        stmt = stmt.where(AftersalesRequest.id < before_id)
    return list(await session.scalars(stmt.order_by(AftersalesRequest.id.desc()).limit(limit)))


async def requests_by_status(
    session: AsyncSession,
    statuses: tuple[str, ...],
    *,
    shop_id: int | None = None,
    before_id: int | None = None,
    after: tuple[dt.datetime | None, int] | None = None,
    limit: int,
    by_deadline: bool = False,
) -> list[AftersalesRequest]:
    """A queue: the requests in ``statuses`` (of one shop, if given), the nearest deadline first
    (``by_deadline``: what must be answered first; the next page starts ``after`` the last
    (deadline, id) seen) or the newest first (the next page ``before_id``)."""
    stmt = select(AftersalesRequest).where(AftersalesRequest.status.in_(statuses))
    if shop_id is not None:
        stmt = stmt.where(AftersalesRequest.shop_id == shop_id)
    if by_deadline:
        due, rid = AftersalesRequest.due_at, AftersalesRequest.id
        if after is not None and after[0] is None:
            stmt = stmt.where(due.is_(None), rid > after[1])
        elif after is not None:
            stmt = stmt.where(or_(due.is_(None), due > after[0], and_(due == after[0], rid > after[1])))
        # Requests without a deadline in their step (a return on its way) come after the rest.
        stmt = stmt.order_by(due.is_(None), due, rid)
    else:
        if before_id is not None:
            stmt = stmt.where(AftersalesRequest.id < before_id)
        stmt = stmt.order_by(AftersalesRequest.id.desc())
    return list(await session.scalars(stmt.limit(limit)))


async def count_by_status(
    session: AsyncSession, statuses: tuple[str, ...], shop_id: int | None = None
) -> dict[str, int]:
    stmt = select(AftersalesRequest.status, func.count()).where(AftersalesRequest.status.in_(statuses))
    if shop_id is not None:
        stmt = stmt.where(AftersalesRequest.shop_id == shop_id)
    rows = await session.execute(stmt.group_by(AftersalesRequest.status))
    return {status: n for status, n in rows}


async def due_requests(session: AsyncSession, status: str, now: dt.datetime, limit: int) -> list[int]:
    """Requests in ``status`` whose deadline (``due_at``) has come, oldest deadline first."""
    stmt = (
        select(AftersalesRequest.id)
        .where(AftersalesRequest.status == status, AftersalesRequest.due_at <= now)
        .order_by(AftersalesRequest.due_at, AftersalesRequest.id)
        .limit(limit)
    )
    return list(await session.scalars(stmt))


async def undated_requests(
    session: AsyncSession, status: str, after_id: int, limit: int
) -> list[AftersalesRequest]:
    """Requests in ``status`` whose deadline is not known yet (a return waiting for the shop's
    address, a return parcel not reported arrived), by id from ``after_id``."""
    stmt = (
        select(AftersalesRequest)
        .where(
            AftersalesRequest.status == status,
            AftersalesRequest.due_at.is_(None),
            AftersalesRequest.id > after_id,
        )
        .order_by(AftersalesRequest.id)
        .limit(limit)
    )
    return list(await session.scalars(stmt))


async def pending_whole_order(session: AsyncSession, after_id: int, limit: int) -> list[AftersalesRequest]:
    """Whole-order claims (not shipped, not received) still awaiting the shop, by id from
    ``after_id``: the sweeper checks they still fit their order."""
    stmt = (
        select(AftersalesRequest)
        .where(
            AftersalesRequest.status == Status.pending,
            AftersalesRequest.line_id.is_(None),
            AftersalesRequest.id > after_id,
        )
        .order_by(AftersalesRequest.id)
        .limit(limit)
    )
    return list(await session.scalars(stmt))


async def photos_of(session: AsyncSession, request_ids: list[int]) -> list[AftersalesPhoto]:
    if not request_ids:
        return []
    stmt = (
        select(AftersalesPhoto)
        .where(AftersalesPhoto.request_id.in_(sorted(set(request_ids))))
        .order_by(AftersalesPhoto.id)
    )
    return list(await session.scalars(stmt))


async def count_photos(session: AsyncSession, request_id: int, message_id: int | None) -> int:
    stmt = select(func.count()).select_from(AftersalesPhoto).where(AftersalesPhoto.request_id == request_id)
    if message_id is None:
        stmt = stmt.where(AftersalesPhoto.message_id.is_(None))
    else:
        stmt = stmt.where(AftersalesPhoto.message_id == message_id)
    return await session.scalar(stmt) or 0


async def messages_of(session: AsyncSession, request_id: int) -> list[AftersalesMessage]:
    stmt = (
        select(AftersalesMessage)
        .where(AftersalesMessage.request_id == request_id)
        .order_by(AftersalesMessage.id)
    )
    return list(await session.scalars(stmt))


async def get_message(session: AsyncSession, message_id: int) -> AftersalesMessage | None:
    return await session.get(AftersalesMessage, message_id)


async def score_requests(session: AsyncSession, order_ids: list[int]) -> list[Any]:
    """The ended requests of those orders, with the times the trust scores read."""
    r = AftersalesRequest.__table__.c
    stmt = select(
        r.order_id,
        r.line_id,
        r.reason,
        r.seller_cause,
        r.status,
        r.resolution,
        r.created_at,
        r.responded_at,
        r.return_arrived_at,
        r.arbitrated_at,
        r.resolved_at,
    ).where(in_param(r.order_id, "ids", session.bind.dialect.name), r.resolved_at.is_not(None))
    return list((await session.execute(stmt, {"ids": order_ids})).all())
