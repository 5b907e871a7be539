"""Every query of the consignment domain."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from trustlive.consignment.models import Appraisal, ConsignedItem, ConsignedPhoto, FeeWaiver, ItemStatus


async def get_item(session: AsyncSession, item_id: int, *, fresh: bool = False) -> ConsignedItem | None:
    stmt = select(ConsignedItem).where(ConsignedItem.id == item_id)
    if fresh:
        stmt = stmt.execution_options(populate_existing=True)
    return (await session.scalars(stmt)).first()


async def list_items(
    session: AsyncSession,
    *,
    consignor_id: int | None = None,
    appraiser_id: int | None = None,
    statuses: tuple[str, ...] = (),
    before_id: int | None = None,
    limit: int = 20,
) -> list[ConsignedItem]:
    stmt = select(ConsignedItem).order_by(ConsignedItem.id.desc()).limit(limit)
    if consignor_id is not None:
        stmt = stmt.where(ConsignedItem.consignor_id == consignor_id)
    if appraiser_id is not None:
        stmt = stmt.where(ConsignedItem.appraiser_id == appraiser_id)
    if statuses:
        stmt = stmt.where(ConsignedItem.status.in_(statuses))
    if before_id is not None:
        stmt = stmt.where(ConsignedItem.id < before_id)
    return list(await session.scalars(stmt))


async def transition(
    session: AsyncSession, item_id: int, frm: tuple[str, ...], to: str, **values: Any
) -> bool:
    """One conditional UPDATE: racing requests cannot both move the item."""
    result = await session.execute(
        update(ConsignedItem)
        .where(ConsignedItem.id == item_id, ConsignedItem.status.in_(frm))
        .values(status=to, **values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def photos_of(session: AsyncSession, item_ids: list[int]) -> dict[int, list[ConsignedPhoto]]:
    found: dict[int, list[ConsignedPhoto]] = defaultdict(list)
    if item_ids:
        rows = await session.scalars(
            select(ConsignedPhoto)
            .where(ConsignedPhoto.item_id.in_(item_ids))
            .order_by(ConsignedPhoto.item_id, ConsignedPhoto.position)
        )
        for p in rows:
            found[p.item_id].append(p)
    return found


async def appraisals_of(session: AsyncSession, item_id: int) -> list[Appraisal]:
    return list(
        await session.scalars(
            select(Appraisal).where(Appraisal.item_id == item_id).order_by(Appraisal.id.desc())
        )
    )


async def listed_items_of_products(session: AsyncSession, product_ids: list[int]) -> list[ConsignedItem]:
    if not product_ids:
        return []
    return list(
        await session.scalars(
            select(ConsignedItem).where(
                ConsignedItem.product_id.in_(product_ids), ConsignedItem.status == ItemStatus.listed
            )
        )
    )


async def waivers_of(
    session: AsyncSession, creator_id: int, since: dt.datetime, limit: int = 50
) -> list[FeeWaiver]:
    return list(
        await session.scalars(
            select(FeeWaiver)
            .where(FeeWaiver.creator_id == creator_id, FeeWaiver.ends_at > since)
            .order_by(FeeWaiver.starts_at)
            .limit(limit)
        )
    )


async def waiver_covering(session: AsyncSession, creator_id: int, at: dt.datetime) -> FeeWaiver | None:
    return (
        await session.scalars(
            select(FeeWaiver)
            .where(FeeWaiver.creator_id == creator_id, FeeWaiver.starts_at <= at, FeeWaiver.ends_at > at)
            .order_by(FeeWaiver.ends_at.desc())
            .limit(1)
        )
    ).first()
