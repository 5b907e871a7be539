"""All order queries. State changes are conditional UPDATEs (``WHERE status IN ...``) so that two
actors racing for the same order (a payment webhook and the pay-deadline sweeper, a buyer and a
merchant) can never both win."""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

from sqlalchemy import Table, and_, bindparam, delete, func, literal, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from trustlive.db import in_param, insert_rows
from trustlive.orders.models import (
    Address,
    CartItem,
    Checkout,
    Order,
    OrderEvent,
    OrderLine,
    PurchaseCount,
    ShopTerms,
)


def _insert(session: AsyncSession):  # type: ignore[no-untyped-def]
    return pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert


# --- addresses --------------------------------------------------------------------------------


async def get_address(session: AsyncSession, address_id: int) -> Address | None:
    return await session.get(Address, address_id)


async def list_addresses(session: AsyncSession, user_id: int) -> list[Address]:
    stmt = (
        select(Address)
        .where(Address.user_id == user_id, Address.is_deleted.is_(False))
        .order_by(Address.is_default.desc(), Address.id)
    )
    return list(await session.scalars(stmt))


async def clear_default_address(session: AsyncSession, user_id: int) -> None:
    await session.execute(update(Address).where(Address.user_id == user_id).values(is_default=False))


async def count_addresses(session: AsyncSession, user_id: int) -> int:
    stmt = select(func.count()).where(Address.user_id == user_id, Address.is_deleted.is_(False))
    return await session.scalar(stmt) or 0


# --- shop terms -------------------------------------------------------------------------------


async def shop_terms(session: AsyncSession, shop_ids: list[int]) -> dict[int, Any]:
    """Shipping and settlement terms per shop, as read-only rows (the ShopTerms columns)."""
    if not shop_ids:
        return {}
    conn = await session.connection()  # Core: checkout reads these for every batch
    rows = await conn.execute(
        _shop_terms_statement(session.bind.dialect.name), {"ids": sorted(set(shop_ids))}
    )
    return {t.shop_id: t for t in rows}


@functools.cache
def _shop_terms_statement(dialect: str):  # type: ignore[no-untyped-def]
    return select(*ShopTerms.__table__.c).where(in_param(ShopTerms.shop_id, "ids", dialect))


async def get_shop_terms(session: AsyncSession, shop_id: int) -> ShopTerms | None:
    return await session.get(ShopTerms, shop_id)


# --- cart -------------------------------------------------------------------------------------


async def cart_items(
    session: AsyncSession, buyer_id: int, item_ids: list[int] | None = None
) -> list[CartItem]:
    stmt = select(CartItem).where(CartItem.buyer_id == buyer_id).order_by(CartItem.id)
    if item_ids is not None:
        stmt = stmt.where(CartItem.id.in_(item_ids))
    return list(await session.scalars(stmt))


async def cart_item_for_sku(session: AsyncSession, buyer_id: int, sku_id: int) -> CartItem | None:
    return await session.scalar(
        select(CartItem).where(CartItem.buyer_id == buyer_id, CartItem.sku_id == sku_id)
    )


async def get_cart_item(session: AsyncSession, item_id: int) -> CartItem | None:
    return await session.get(CartItem, item_id)


async def delete_cart_items(session: AsyncSession, buyer_id: int, item_ids: list[int]) -> None:
    if item_ids:
        await session.execute(
            delete(CartItem).where(CartItem.buyer_id == buyer_id, CartItem.id.in_(item_ids))
        )


# --- checkout and orders ----------------------------------------------------------------------


async def find_checkout(session: AsyncSession, buyer_id: int, key: str) -> Checkout | None:
    stmt = select(Checkout).where(Checkout.buyer_id == buyer_id, Checkout.idempotency_key == key)
    return await session.scalar(stmt)


async def orders_of_checkout(session: AsyncSession, checkout_id: int) -> list[Order]:
    return list(
        await session.scalars(select(Order).where(Order.checkout_id == checkout_id).order_by(Order.id))
    )


async def get_order(session: AsyncSession, order_id: int, *, with_lines: bool = False) -> Order | None:
    if not with_lines:
        return await session.get(Order, order_id)
    stmt = (
        select(Order)
        .where(Order.id == order_id)
        .options(selectinload(Order.lines))
        .execution_options(populate_existing=True)
    )
    return await session.scalar(stmt)


async def orders_with_lines(session: AsyncSession, order_ids: list[int]) -> list[Order]:
    if not order_ids:
        return []
    stmt = (
        select(Order)
        .where(Order.id.in_(order_ids))
        .options(selectinload(Order.lines))
        .order_by(Order.id)
        .execution_options(populate_existing=True)
    )
    return list(await session.scalars(stmt))


async def events_of(session: AsyncSession, order_id: int) -> list[OrderEvent]:
    stmt = select(OrderEvent).where(OrderEvent.order_id == order_id).order_by(OrderEvent.id)
    return list(await session.scalars(stmt))


async def list_orders(
    session: AsyncSession,
    *,
    buyer_id: int | None = None,
    shop_id: int | None = None,
    statuses: list[str] | None = None,
    before_id: int | None = None,
    limit: int,
) -> list[Order]:
    stmt = select(Order).options(selectinload(Order.lines)).order_by(Order.id.desc()).limit(limit)
    if buyer_id is not None:
        stmt = stmt.where(Order.buyer_id == buyer_id)
    if shop_id is not None:
        stmt = stmt.where(Order.shop_id == shop_id)
    if statuses:
        stmt = stmt.where(Order.status.in_(statuses))
    if before_id is not None:
        stmt = stmt.where(Order.id < before_id)
    return list(await session.scalars(stmt))


async def bought_from(
    session: AsyncSession, buyer_id: int, creator_id: int, shop_ids: list[int], statuses: tuple[str, ...],
    limit: int,
) -> list[Order]:  # fmt: skip
    """The buyer's orders in ``statuses`` with a line attributed to ``creator_id`` or from one of
    ``shop_ids``, newest first, with their lines."""
    attributed = select(OrderLine.order_id).where(OrderLine.creator_id == creator_id)
    match = Order.id.in_(attributed)
    if shop_ids:
        match = match | Order.shop_id.in_(shop_ids)
    stmt = (
        select(Order)
        .options(selectinload(Order.lines))
        .where(Order.buyer_id == buyer_id, Order.status.in_(statuses), match)
        .order_by(Order.id.desc())
        .limit(limit)
    )
    return list(await session.scalars(stmt))


async def overdue_shipments(session: AsyncSession, now: dt.datetime, limit: int) -> tuple[list[Order], int]:
    """Paid orders past their ship-by deadline, the longest overdue first, and how many there are
    (through the partial index of paid orders' deadlines)."""
    due = and_(Order.status == literal("paid", literal_execute=True), Order.ship_by < now)
    rows = await session.scalars(
        select(Order)
        .options(selectinload(Order.lines))
        .where(due)
        .order_by(Order.ship_by, Order.id)
        .limit(limit)
    )
    total = await session.scalar(select(func.count()).select_from(Order).where(due))
    return list(rows), total or 0


async def lock_order(session: AsyncSession, order_id: int) -> str | None:
    """Lock the order's row until commit (PostgreSQL; SQLite writers are serialised anyway) and
    return its status. FOR NO KEY UPDATE: it waits for, and makes wait, other updates of the order
    (a refund's), but not rows that merely refer to it."""
    stmt = select(Order.status).where(Order.id == order_id)
    if session.bind.dialect.name == "postgresql":
        stmt = stmt.with_for_update(key_share=True)
    return await session.scalar(stmt)


async def transition(
    session: AsyncSession, order_id: int, from_statuses: tuple[str, ...], to_status: str, *,
    unheld: bool = False, refunded_fen: int | None = None, **values: Any,
) -> bool:  # fmt: skip
    """Move one order from one of ``from_statuses`` to ``to_status``; False when it was not in one
    of them any more (someone else moved it first), with ``unheld`` when an after-sales request
    holds its settlement, and with ``refunded_fen`` when its refunds are no longer that amount (a
    refund committed after the caller read the order)."""
    conditions = [Order.id == order_id, Order.status.in_(from_statuses)]
    if unheld:
        conditions.append(Order.settlement_holds == 0)
    if refunded_fen is not None:
        conditions.append(Order.refunded_fen == refunded_fen)
    result = await session.execute(
        update(Order)
        .where(*conditions)
        .values(status=to_status, **values)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


# Orders whose escrow still holds their money: a refund can only come out of these.
REFUNDABLE = ("paid", "shipped", "delivered", "completed")


async def add_refund(session: AsyncSession, order_id: int, amount: int) -> bool:
    """Count a refund on an order without ever exceeding what was paid, and only while its escrow
    is not split: a settlement committing first makes this match no row."""
    result = await session.execute(
        update(Order)
        .where(
            Order.id == order_id,
            Order.status.in_(REFUNDABLE),
            Order.refunded_fen + amount <= Order.paid_fen,
        )
        .values(refunded_fen=Order.refunded_fen + amount)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


async def add_line_refund(session: AsyncSession, line_id: int, amount: int) -> bool:
    """Count a refund made for one line, never beyond the line's total."""
    result = await session.execute(
        update(OrderLine)
        .where(OrderLine.id == line_id, OrderLine.refunded_fen + amount <= OrderLine.line_total_fen)
        .values(refunded_fen=OrderLine.refunded_fen + amount)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


async def add_shipping_refund(session: AsyncSession, order_id: int, amount: int) -> bool:
    result = await session.execute(
        update(Order)
        .where(Order.id == order_id, Order.shipping_refunded_fen + amount <= Order.shipping_fen)
        .values(shipping_refunded_fen=Order.shipping_refunded_fen + amount)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


async def add_settlement_hold(session: AsyncSession, order_id: int, delta: int) -> bool:
    """Take (+1) or give back (-1) a hold on settlement; a hold is only taken before settlement,
    and never goes below zero."""
    stmt = update(Order).where(Order.id == order_id).values(settlement_holds=Order.settlement_holds + delta)
    if delta > 0:
        stmt = stmt.where(Order.status != literal("settled"))
    else:
        stmt = stmt.where(Order.settlement_holds + delta >= 0)
    result = await session.execute(stmt.execution_options(synchronize_session=False))
    return result.rowcount == 1


async def due_orders(
    session: AsyncSession, status: str, column: str, now: dt.datetime, limit: int, *, unheld: bool = False
) -> list[int]:
    """Orders in ``status`` whose ``column`` deadline has come; with ``unheld``, only those no
    after-sales request holds (held ones wait, and do not crowd out the rest of the batch)."""
    deadline = getattr(Order, column)
    # The status as a literal, so that the planner can use the partial index of that status.
    stmt = (
        select(Order.id)
        .where(
            and_(
                Order.status == literal(str(status), literal_execute=True),
                deadline.is_not(None),
                deadline <= now,
                *([Order.settlement_holds == 0] if unheld else []),
            )
        )
        .order_by(deadline)
        .limit(limit)
    )
    return list(await session.scalars(stmt))


# --- per-buyer limits -------------------------------------------------------------------------


async def claim_purchase(
    session: AsyncSession, buyer_id: int, sku_id: int, quantity: int, limit: int
) -> bool:
    """Add ``quantity`` to what the buyer holds of this SKU, only while it stays within ``limit``.
    One statement, so concurrent orders by the same buyer cannot both squeeze under the limit."""
    if quantity > limit:
        return False
    insert = _insert(session)
    stmt = insert(PurchaseCount).values(buyer_id=buyer_id, sku_id=sku_id, quantity=quantity)
    stmt = stmt.on_conflict_do_update(
        index_elements=[PurchaseCount.buyer_id, PurchaseCount.sku_id],
        set_={"quantity": PurchaseCount.quantity + quantity},
        where=PurchaseCount.quantity + quantity <= limit,
    ).returning(PurchaseCount.quantity)
    return (await session.execute(stmt)).first() is not None


async def release_purchase(session: AsyncSession, buyer_id: int, sku_id: int, quantity: int) -> None:
    await session.execute(
        update(PurchaseCount)
        .where(PurchaseCount.buyer_id == buyer_id, PurchaseCount.sku_id == sku_id)
        .values(quantity=func.max(PurchaseCount.quantity - quantity, 0))
        if session.bind.dialect.name == "sqlite"
        else update(PurchaseCount)
        .where(PurchaseCount.buyer_id == buyer_id, PurchaseCount.sku_id == sku_id)
        .values(quantity=func.greatest(PurchaseCount.quantity - quantity, 0))
    )


# --- batched checkout -------------------------------------------------------------------------


# The batched checkout's statements are built once per dialect and take lists as parameters, so
# the database prepares each once per connection whatever the batch size (see db.in_param).


async def find_checkouts(
    session: AsyncSession, pairs: list[tuple[int, str]]
) -> dict[tuple[int, str], Checkout]:
    if not pairs:
        return {}
    wanted = set(pairs)
    # Buyers × keys covers the pairs; the exact ones are picked here (keys are all but unique).
    # Ids first through Core: the usual answer is "none", and that should cost one round trip.
    params = {"buyer_ids": sorted({b for b, _ in wanted}), "keys": sorted({k for _, k in wanted})}
    conn = await session.connection()
    rows = await conn.execute(_checkout_keys_statement(session.bind.dialect.name), params)
    ids = [cid for cid, buyer, key in rows if (buyer, key) in wanted]
    if not ids:
        return {}
    found = await session.scalars(select(Checkout).where(Checkout.id.in_(ids)))
    return {(c.buyer_id, c.idempotency_key): c for c in found}


@functools.cache
def _checkout_keys_statement(dialect: str):  # type: ignore[no-untyped-def]
    return select(Checkout.id, Checkout.buyer_id, Checkout.idempotency_key).where(
        in_param(Checkout.buyer_id, "buyer_ids", dialect), in_param(Checkout.idempotency_key, "keys", dialect)
    )


async def addresses_by_ids(session: AsyncSession, ids: list[int]) -> dict[int, Any]:
    """Addresses as read-only rows (the Address columns), for the batched checkout."""
    if not ids:
        return {}
    conn = await session.connection()
    rows = await conn.execute(_addresses_statement(session.bind.dialect.name), {"ids": sorted(set(ids))})
    return {a.id: a for a in rows}


@functools.cache
def _addresses_statement(dialect: str):  # type: ignore[no-untyped-def]
    return select(*Address.__table__.c).where(in_param(Address.id, "ids", dialect))


async def insert_checkouts(session: AsyncSession, rows: list[dict[str, Any]]) -> dict[tuple[int, str], int]:
    """Insert checkouts, skipping (buyer, key) pairs that exist already; returns the new ids."""
    if not rows:
        return {}
    if session.bind.dialect.name == "postgresql":
        result = await insert_rows(
            session, (Checkout.__table__, rows),
            suffix="ON CONFLICT (buyer_id, idempotency_key) DO NOTHING RETURNING id, buyer_id, idempotency_key",
        )  # fmt: skip
    else:
        stmt = (
            sqlite_insert(Checkout)
            .values(rows)
            .on_conflict_do_nothing(index_elements=[Checkout.buyer_id, Checkout.idempotency_key])
            .returning(Checkout.id, Checkout.buyer_id, Checkout.idempotency_key)
        )
        result = await (await session.connection()).execute(stmt)
    return {(buyer, key): cid for cid, buyer, key in result}


async def delete_checkouts(session: AsyncSession, ids: list[int]) -> None:
    if ids:
        await session.execute(delete(Checkout).where(Checkout.id.in_(ids)))


async def lock_purchase_counts(
    session: AsyncSession, pairs: list[tuple[int, int]]
) -> dict[tuple[int, int], int]:
    """Current counts for (buyer, sku) pairs, rows created and locked (in key order) for update."""
    if not pairs:
        return {}
    pairs = sorted(set(pairs))
    await session.execute(
        _insert(session)(PurchaseCount)
        .values([{"buyer_id": b, "sku_id": s, "quantity": 0} for b, s in pairs])
        .on_conflict_do_nothing(index_elements=[PurchaseCount.buyer_id, PurchaseCount.sku_id])
    )
    stmt = (
        select(PurchaseCount.buyer_id, PurchaseCount.sku_id, PurchaseCount.quantity)
        .where(tuple_(PurchaseCount.buyer_id, PurchaseCount.sku_id).in_(pairs))
        .order_by(PurchaseCount.buyer_id, PurchaseCount.sku_id)
    )
    if session.bind.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return {(b, s): q for b, s, q in await session.execute(stmt)}


async def add_purchase_counts(session: AsyncSession, increments: dict[tuple[int, int], int]) -> None:
    for (buyer_id, sku_id), quantity in sorted(increments.items()):
        await session.execute(
            update(PurchaseCount)
            .where(PurchaseCount.buyer_id == buyer_id, PurchaseCount.sku_id == sku_id)
            .values(quantity=PurchaseCount.quantity + quantity)
        )


async def number_orders(session: AsyncSession, orders: list[dict[str, Any]]) -> None:
    """Give new order rows their "id" before they are written, so that their lines, events and
    announcements can go in with them. PostgreSQL: from the orders sequence. SQLite: after the
    highest id; every SQLite transaction holds the write lock from its start (BEGIN IMMEDIATE),
    so no one else can take them, and SQLite would itself have picked the same."""
    if not orders:
        return
    conn = await session.connection()
    if session.bind.dialect.name == "postgresql":
        ids = list((await conn.scalars(_order_ids_pg(), {"n": len(orders)})).all())
    else:
        top = await conn.scalar(select(func.coalesce(func.max(Order.id), 0)))
        ids = list(range(top + 1, top + 1 + len(orders)))
    for row, order_id in zip(orders, ids, strict=True):
        row["id"] = order_id


async def bulk_insert_orders(
    session: AsyncSession,
    drafts: list[tuple[dict[str, Any], list[dict[str, Any]]]],
    actor_id: int | None,
    *also: tuple[Table, list[dict[str, Any]]],
) -> None:
    """Insert numbered new orders (``number_orders``; column values, each with its lines), their
    first timeline events and the rows in ``also`` (such as their outbox events) with one
    statement on PostgreSQL (``db.insert_rows``): the batched checkout's hot path, no unit of work."""
    orders = [row for row, _ in drafts]
    lines = [{**line, "order_id": row["id"]} for row, order_lines in drafts for line in order_lines]
    first_events = [
        {"order_id": o["id"], "from_status": None, "to_status": o["status"], "actor_id": actor_id or o["buyer_id"],
         "note": "", "at": o["created_at"]} for o in orders
    ]  # fmt: skip
    await insert_rows(
        session,
        (Order.__table__, orders),
        (OrderLine.__table__, lines),
        (OrderEvent.__table__, first_events),
        *also,
    )


@functools.cache
def _order_ids_pg():  # type: ignore[no-untyped-def]
    sequence = f"{Order.__tablename__}_id_seq"  # the BIGSERIAL sequence of orders.id
    return select(func.nextval(sequence)).select_from(func.generate_series(1, bindparam("n")))


# --- trust scores -----------------------------------------------------------------------------


async def score_lines(session: AsyncSession, order_ids: list[int]) -> list[Any]:
    """The lines of those orders that were paid, with the order times the scores read."""
    o, ln = Order.__table__.c, OrderLine.__table__.c
    stmt = (
        select(ln.id.label("line_id"), ln.order_id, o.shop_id, ln.product_id, ln.creator_id, ln.category_id,
               o.status, o.paid_at, o.ship_by, o.shipped_at, o.delivered_at, o.completed_at, o.cancelled_at, o.updated_at)
        .join_from(OrderLine.__table__, Order.__table__, o.id == ln.order_id)
        .where(in_param(ln.order_id, "ids", session.bind.dialect.name), o.paid_at.is_not(None))
    )  # fmt: skip
    return list((await session.execute(stmt, {"ids": order_ids})).all())


async def line_titles(session: AsyncSession, line_ids: list[int]) -> dict[int, str]:
    ln = OrderLine.__table__.c
    stmt = select(ln.id, ln.title).where(in_param(ln.id, "ids", session.bind.dialect.name))
    return {r.id: r.title for r in await session.execute(stmt, {"ids": line_ids})}


async def order_id_range(session: AsyncSession) -> tuple[int, int]:
    o = Order.__table__.c
    lo, hi = (await session.execute(select(func.min(o.id), func.max(o.id)))).one()
    return (lo or 1), (hi or 0)
