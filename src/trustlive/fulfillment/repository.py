"""Every query of the fulfillment domain."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import and_, column, delete, exists, func, literal, or_, select, table, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from trustlive.db import in_param
from trustlive.fulfillment.models import (
    QcCase,
    QcInspector,
    QcLab,
    QcLabEvent,
    QcPhoto,
    QcRoute,
    QcWarehouse,
    Shipment,
    TrackingEvent,
)


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


# --- the QC warehouse: set-up -----------------------------------------------------------------


async def get_lab(session: AsyncSession, lab_id: int) -> QcLab | None:
    return await session.get(QcLab, lab_id)


async def lab_by_name(session: AsyncSession, name: str) -> QcLab | None:
    return await session.scalar(select(QcLab).where(QcLab.name == name))


async def list_labs(session: AsyncSession) -> list[QcLab]:
    return list(await session.scalars(select(QcLab).order_by(QcLab.id)))


async def labs_by_ids(session: AsyncSession, lab_ids: list[int]) -> dict[int, QcLab]:
    if not lab_ids:
        return {}
    rows = await session.scalars(select(QcLab).where(QcLab.id.in_(sorted(set(lab_ids)))))
    return {lab.id: lab for lab in rows}


async def get_warehouse(session: AsyncSession, warehouse_id: int) -> QcWarehouse | None:
    return await session.get(QcWarehouse, warehouse_id)


async def warehouse_by_name(session: AsyncSession, name: str) -> QcWarehouse | None:
    return await session.scalar(select(QcWarehouse).where(QcWarehouse.name == name))


async def list_warehouses(session: AsyncSession) -> list[QcWarehouse]:
    return list(await session.scalars(select(QcWarehouse).order_by(QcWarehouse.id)))


async def warehouses_by_ids(session: AsyncSession, warehouse_ids: list[int]) -> dict[int, QcWarehouse]:
    if not warehouse_ids:
        return {}
    rows = await session.scalars(select(QcWarehouse).where(QcWarehouse.id.in_(sorted(set(warehouse_ids)))))
    return {w.id: w for w in rows}


async def default_warehouse(session: AsyncSession) -> QcWarehouse | None:
    return await session.scalar(select(QcWarehouse).where(QcWarehouse.is_default.is_(True)))


async def clear_default(session: AsyncSession, keep: int | None) -> None:
    """No warehouse but ``keep`` is the default any more (before ``keep`` becomes it: the partial
    unique index allows one default at a time)."""
    stmt = update(QcWarehouse).where(QcWarehouse.is_default.is_(True))
    if keep is not None:
        stmt = stmt.where(QcWarehouse.id != keep)
    await session.execute(stmt.values(is_default=False).execution_options(synchronize_session=False))


async def list_routes(session: AsyncSession) -> list[QcRoute]:
    stmt = select(QcRoute).order_by(QcRoute.category_id).execution_options(populate_existing=True)
    return list(await session.scalars(stmt))


async def routes_for(session: AsyncSession, category_ids: list[int]) -> dict[int, int]:
    """category id -> warehouse id, for those of ``category_ids`` that have a route."""
    if not category_ids:
        return {}
    stmt = select(QcRoute.category_id, QcRoute.warehouse_id).where(
        QcRoute.category_id.in_(sorted(set(category_ids)))
    )
    return {c: w for c, w in await session.execute(stmt)}


async def put_route(session: AsyncSession, category_id: int, warehouse_id: int, now: dt.datetime) -> None:
    """Route the category to the warehouse: one INSERT … ON CONFLICT DO UPDATE, so a concurrent
    first route of the same category waits for ours and then replaces it (never a duplicate key)."""
    insert = pg_insert if _is_pg(session) else sqlite_insert
    stmt = insert(QcRoute).values(category_id=category_id, warehouse_id=warehouse_id, updated_at=now)
    stmt = stmt.on_conflict_do_update(
        index_elements=[QcRoute.category_id], set_={"warehouse_id": warehouse_id, "updated_at": now}
    )
    await session.execute(stmt)


async def delete_route(session: AsyncSession, category_id: int) -> None:
    """The category goes back to the default warehouse (nothing happens if it had no route)."""
    await session.execute(
        delete(QcRoute).where(QcRoute.category_id == category_id).execution_options(synchronize_session=False)
    )


async def inspectors_of(session: AsyncSession, warehouse_ids: list[int]) -> list[QcInspector]:
    if not warehouse_ids:
        return []
    stmt = (
        select(QcInspector)
        .where(QcInspector.warehouse_id.in_(sorted(set(warehouse_ids))))
        .order_by(QcInspector.id)
    )
    return list(await session.scalars(stmt))


async def inspector(session: AsyncSession, warehouse_id: int, user_id: int) -> QcInspector | None:
    stmt = select(QcInspector).where(QcInspector.warehouse_id == warehouse_id, QcInspector.user_id == user_id)
    return await session.scalar(stmt)


async def warehouse_ids_of(session: AsyncSession, user_id: int) -> list[int]:
    """The warehouses an inspector works at."""
    stmt = (
        select(QcInspector.warehouse_id)
        .where(QcInspector.user_id == user_id)
        .order_by(QcInspector.warehouse_id)
    )
    return list(await session.scalars(stmt))


# --- the QC warehouse: cases ------------------------------------------------------------------


async def get_case(session: AsyncSession, case_id: int, *, lock: bool = False) -> QcCase | None:
    stmt = select(QcCase).where(QcCase.id == case_id).execution_options(populate_existing=True)
    if lock and _is_pg(session):
        stmt = stmt.with_for_update()
    return await session.scalar(stmt)


async def case_of_order(session: AsyncSession, order_id: int) -> QcCase | None:
    return await session.scalar(select(QcCase).where(QcCase.order_id == order_id))


async def case_by_certificate(session: AsyncSession, number: str) -> QcCase | None:
    return await session.scalar(select(QcCase).where(QcCase.certificate_no == number))


async def cases_by_tracking(
    session: AsyncSession, warehouse_ids: list[int], tracking_no: str, limit: int = 50
) -> list[QcCase]:
    """The latest cases of these warehouses whose inbound parcel had this tracking number (stored
    normalised, so ``ix_qc_cases_inbound`` finds them), whatever their status, oldest first."""
    if not warehouse_ids:
        return []
    stmt = (
        select(QcCase)
        .where(QcCase.inbound_tracking_no == tracking_no, QcCase.warehouse_id.in_(sorted(set(warehouse_ids))))
        .order_by(QcCase.id.desc())
        .limit(limit)
        .execution_options(populate_existing=True)
    )
    return list(reversed(list(await session.scalars(stmt))))


async def cases_by_ids(session: AsyncSession, case_ids: list[int]) -> list[QcCase]:
    if not case_ids:
        return []
    stmt = (
        select(QcCase)
        .where(QcCase.id.in_(sorted(set(case_ids))))
        .order_by(QcCase.id)
        .execution_options(populate_existing=True)
    )
    return list(await session.scalars(stmt))


async def receive_cases(
    session: AsyncSession, case_ids: list[int], user_id: int, now: dt.datetime, due_at: dt.datetime
) -> int:
    """Receive these cases in one statement, those still inbound: how many moved (fewer than
    asked when a racing scan received some first)."""
    result = await session.execute(
        update(QcCase)
        .where(QcCase.id.in_(sorted(set(case_ids))), QcCase.status == "inbound")
        .values(status="received", received_at=now, received_by_id=user_id, due_at=due_at, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount


async def cases_in(
    session: AsyncSession, warehouse_ids: list[int], statuses: tuple[str, ...], limit: int
) -> list[QcCase]:
    """A warehouse queue: cases in these statuses, the most urgent first (deadline, then age)."""
    if not warehouse_ids:
        return []
    stmt = (
        select(QcCase)
        .where(QcCase.warehouse_id.in_(sorted(set(warehouse_ids))), QcCase.status.in_(statuses))
        .order_by(QcCase.due_at.asc().nulls_last(), QcCase.id)
        .limit(limit)
    )
    return list(await session.scalars(stmt))


# The orders table, read by two columns in the overdue queries to leave out the cases of orders
# refunded in full: a read-only join, so that the sweeper's batch holds only due work (asking
# orders.service afterwards would let such cases crowd out the rest of every batch).
_orders = table("orders", column("id"), column("status"))
GONE = ("refunded", "cancelled")  # orders whose buyer has had every fen back


def _awaiting_result(now: dt.datetime) -> Any:
    """Received, past the deadline, and the order still wants the result. 'received' is inlined
    so that PostgreSQL can plan with the partial index ``ix_qc_cases_due`` (a bound parameter
    might not match its predicate)."""
    refunded = exists().where(
        _orders.c.id == QcCase.order_id,
        _orders.c.status.in_([literal(s, literal_execute=True) for s in GONE]),
    )
    return and_(QcCase.status == literal("received", literal_execute=True), QcCase.due_at <= now, ~refunded)


async def overdue_cases(
    session: AsyncSession, now: dt.datetime, limit: int, warehouse_ids: list[int] | None = None
) -> list[QcCase]:
    """Received, uninspected cases past their turnaround deadline, the longest overdue first;
    not those whose buyer was refunded in full meanwhile (they go back to the shop uninspected)."""
    stmt = select(QcCase).where(_awaiting_result(now))
    if warehouse_ids is not None:
        if not warehouse_ids:
            return []
        stmt = stmt.where(QcCase.warehouse_id.in_(sorted(set(warehouse_ids))))
    return list(await session.scalars(stmt.order_by(QcCase.due_at, QcCase.id).limit(limit)))


async def due_overdue_alerts(session: AsyncSession, now: dt.datetime, limit: int) -> list[int]:
    stmt = (
        select(QcCase.id)
        .where(_awaiting_result(now), QcCase.overdue_alerted_at.is_(None))
        .order_by(QcCase.due_at, QcCase.id)
        .limit(limit)
    )
    return list(await session.scalars(stmt))


async def move_case(
    session: AsyncSession, case_id: int, from_statuses: tuple[str, ...], **values: Any
) -> bool:
    """Change a case only if it is still in one of ``from_statuses`` (racing inspectors, a lab's
    callback and a console, or two sweepers cannot both win). The case loaded in the session, if
    any, gets the new values (``fetch``: only when the row did change)."""
    result = await session.execute(
        update(QcCase)
        .where(QcCase.id == case_id, QcCase.status.in_(from_statuses))
        .values(**values)
        .execution_options(synchronize_session="fetch")
    )
    return result.rowcount == 1


async def mark_overdue_alerted(session: AsyncSession, case_id: int, now: dt.datetime) -> bool:
    result = await session.execute(
        update(QcCase)
        .where(QcCase.id == case_id, _awaiting_result(now), QcCase.overdue_alerted_at.is_(None))
        .values(overdue_alerted_at=now)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


async def count_failures(session: AsyncSession, shop_id: int) -> int:
    stmt = select(func.count()).where(QcCase.shop_id == shop_id, QcCase.result == "fail")
    return await session.scalar(stmt) or 0


async def photos_of(session: AsyncSession, case_ids: list[int]) -> list[QcPhoto]:
    if not case_ids:
        return []
    stmt = (
        select(QcPhoto)
        .where(QcPhoto.case_id.in_(sorted(set(case_ids))))
        .order_by(QcPhoto.position, QcPhoto.id)
    )
    return list(await session.scalars(stmt))


async def count_photos(session: AsyncSession, case_id: int) -> int:
    return await session.scalar(select(func.count()).where(QcPhoto.case_id == case_id)) or 0


async def lab_event(session: AsyncSession, lab_id: int, event_id: str) -> QcLabEvent | None:
    stmt = select(QcLabEvent).where(QcLabEvent.lab_id == lab_id, QcLabEvent.event_id == event_id)
    return await session.scalar(stmt)


async def score_inspections(session: AsyncSession, order_ids: list[int]) -> list[Any]:
    c = QcCase.__table__.c
    stmt = select(c.order_id, c.inspected_at, c.result).where(
        in_param(c.order_id, "ids", session.bind.dialect.name), c.inspected_at.is_not(None)
    )
    return list((await session.execute(stmt, {"ids": order_ids})).all())
