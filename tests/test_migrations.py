"""Migrations build exactly the schema the models describe, run down and up again, and fill in
what they add for the rows already there."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from tests.conftest import _pg_admin, _pg_database_url
from tests.orders.world import build
from trustlive import migrate
from trustlive.db import UTCDateTime, create_engine, create_sessionmaker, transaction
from trustlive.fulfillment.models import Shipment
from trustlive.models import metadata
from trustlive.orders import service as orders
from trustlive.orders.models import Order
from trustlive.orders.schemas import ItemIn, OrderIn, ShipIn


async def _diff(url: str) -> list[object]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:

            def compare(sync_conn):  # type: ignore[no-untyped-def]
                context = MigrationContext.configure(sync_conn, opts={"compare_type": True})
                return compare_metadata(context, metadata)

            diff = await conn.run_sync(compare)
    finally:
        await engine.dispose()
    # The full-text index is created by hand in the migration (FTS5 / tsvector), not by a model.
    return [d for d in diff if "product_search" not in repr(d)]


def test_models_match_migrations(db_url: str) -> None:
    assert asyncio.run(_diff(db_url)) == []


def test_downgrade_and_upgrade_again(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite+aiosqlite:///{tmp_path / 'roundtrip.db'}"
    migrate.upgrade(url)
    migrate.downgrade(url, "base")
    migrate.upgrade(url)
    assert asyncio.run(_diff(url)) == []


async def _orders_before_0006(url: str) -> tuple[int, int, int]:
    """An unpaid order, a paid one and a shipped one (at head, through the services)."""
    world = await build(url)
    try:
        ids = []
        for key in ("unpaid", "paid", "shipped"):
            async with transaction(world.sessionmaker) as s:
                placed = await orders.place_order(s, world.buyers[0], OrderIn(
                    items=[ItemIn(sku_id=world.skus[0], quantity=1)], address_id=world.addresses[world.buyers[0].id],
                ), key)  # fmt: skip
                ids.append(placed.orders[0].id)
                if key != "unpaid":
                    await orders.mark_paid(s, ids[-1], placed.orders[0].total_fen, f"test-{key}")
                if key == "shipped":
                    await orders.ship_order(
                        s, world.merchants[0], ids[-1], ShipIn(carrier="SF", tracking_no="SF0001")
                    )
        return ids[0], ids[1], ids[2]
    finally:
        await world.engine.dispose()  # type: ignore[attr-defined]


async def _set_times(url: str, paid_id: int, shipped_id: int, paid_at: dt.datetime) -> None:
    engine = create_engine(url)
    times = sa.table(
        "orders", sa.column("id"), sa.column("paid_at", UTCDateTime()), sa.column("shipped_at", UTCDateTime())
    )
    try:
        async with engine.begin() as conn:
            await conn.execute(times.update().where(times.c.id == paid_id).values(paid_at=paid_at))
            await conn.execute(times.update().where(times.c.id == shipped_id).values(
                paid_at=paid_at, shipped_at=paid_at + dt.timedelta(hours=50, seconds=1)))  # fmt: skip
    finally:
        await engine.dispose()


async def _ship_fields(url: str) -> dict[int, tuple[dt.datetime | None, int | None]]:
    engine = create_engine(url)
    try:
        async with transaction(create_sessionmaker(engine)) as s:
            return {o.id: (o.ship_by, o.shipped_late_minutes) for o in await s.scalars(sa.select(Order))}
    finally:
        await engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_0006_gives_paid_orders_a_ship_by_and_shipped_ones_their_lateness(backend: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    name = f"trustlive_test_0006_{uuid.uuid4().hex[:6]}"
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'backfill.db'}"
    else:
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
        url = _pg_database_url(name)
    try:
        migrate.upgrade(url)
        unpaid, paid, shipped = asyncio.run(_orders_before_0006(url))
        migrate.downgrade(url, "0005_partial_indexes")  # the columns go; the orders stay
        paid_at = dt.datetime(2026, 11, 20, 8, 30, tzinfo=dt.UTC)
        asyncio.run(_set_times(url, paid, shipped, paid_at))
        migrate.upgrade(url)
        fields = asyncio.run(_ship_fields(url))
    finally:
        if backend == "postgres":
            asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    due = paid_at + dt.timedelta(hours=48)
    assert fields == {unpaid: (None, None), paid: (due, None), shipped: (due, 121)}  # 2 h 1 s: 121 begun


async def _shipments(url: str) -> list[tuple[int, str, str, str, bool]]:
    engine = create_engine(url)
    try:
        async with transaction(create_sessionmaker(engine)) as s:
            found = []
            for shipment in await s.scalars(sa.select(Shipment).order_by(Shipment.id)):
                order = await s.get(Order, shipment.order_id)
                found.append((shipment.order_id, shipment.leg, shipment.tracking_no, shipment.stage,
                              shipment.stage_at == order.shipped_at))  # fmt: skip
            return found
    finally:
        await engine.dispose()


def test_0007_gives_orders_already_shipped_their_shipment(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite+aiosqlite:///{tmp_path / 'shipments.db'}"
    migrate.upgrade(url)
    _, _, shipped = asyncio.run(_orders_before_0006(url))  # shipped through orders alone: no shipment
    migrate.downgrade(url, "0006_ship_by")
    migrate.upgrade(url)
    assert asyncio.run(_shipments(url)) == [(shipped, "to_buyer", "SF0001", "shipped", True)]
