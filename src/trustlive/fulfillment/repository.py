"""Every query of the fulfillment domain."""

from __future__ import annotations

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from trustlive.fulfillment.models import Shipment, TrackingEvent


def _is_pg(session: AsyncSession) -> bool:
    return session.bind.dialect.name == "postgresql"


async def shipments_by_tracking(session: AsyncSession, carrier: str, tracking_no: str) -> list[Shipment]:
    """The shipments travelling under this tracking number, locked (one parcel may carry
    several orders of one shop)."""
    stmt = (
        select(Shipment)
        .where(Shipment.carrier == carrier, Shipment.tracking_no == tracking_no)
        .order_by(Shipment.id)
        .execution_options(populate_existing=True)
    )
    if _is_pg(session):
        stmt = stmt.with_for_update()
    return list(await session.scalars(stmt))


async def shipments_of(session: AsyncSession, order_id: int) -> list[Shipment]:
    return list(
        await session.scalars(select(Shipment).where(Shipment.order_id == order_id).order_by(Shipment.id))
    )


async def shipments_of_orders(session: AsyncSession, order_ids: list[int], leg: str | None) -> list[Shipment]:
    if not order_ids:
        return []
    stmt = select(Shipment).where(Shipment.order_id.in_(sorted(set(order_ids))))
    if leg is not None:
        stmt = stmt.where(Shipment.leg == leg)
    return list(await session.scalars(stmt.order_by(Shipment.id)))


async def events_of(session: AsyncSession, parcels: list[tuple[str, str]]) -> list[TrackingEvent]:
    """The accepted events of these (carrier, tracking number) parcels, oldest first."""
    if not parcels:
        return []
    stmt = (
        select(TrackingEvent)
        .where(
            TrackingEvent.outcome != "unknown_shipment",
            or_(
                *[
                    and_(TrackingEvent.carrier == c, TrackingEvent.tracking_no == t)
                    for c, t in sorted(set(parcels))
                ]
            ),
        )
        .order_by(TrackingEvent.at, TrackingEvent.id)
    )
    return list(await session.scalars(stmt))


async def tracking_event(session: AsyncSession, provider: str, event_id: str) -> TrackingEvent | None:
    stmt = select(TrackingEvent).where(TrackingEvent.provider == provider, TrackingEvent.event_id == event_id)
    return await session.scalar(stmt)
