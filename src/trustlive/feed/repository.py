"""Every query of the feed domain.

Counters (exposure, windows, grants, interactions) move by increments inside the database, never
read-modify-write in Python, so concurrent writers add up exactly. Rows that several transactions
may lock together are always taken in the same order (sorted keys), so they queue, never deadlock.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from typing import Any

import msgspec
from sqlalchemy import (
    BigInteger,
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    select,
    text,
    true,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from trustlive.db import in_param
from trustlive.feed.models import (
    FeedEvent,
    FeedExposure,
    FeedGrant,
    FeedInteraction,
    FeedItem,
    FeedNeighbour,
    FeedProvider,
    FeedServe,
    FeedState,
)


def _insert(session: AsyncSession):  # type: ignore[no-untyped-def]
    return pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert


# --- the item index and its providers -----------------------------------------------------------


async def item_by_ref(
    session: AsyncSession, kind: str, ref_id: int, *, lock: bool = False
) -> FeedItem | None:
    stmt = select(FeedItem).where(FeedItem.kind == kind, FeedItem.ref_id == ref_id)
    if lock:
        stmt = stmt.with_for_update()
    return await session.scalar(stmt.execution_options(populate_existing=True))


async def insert_item(session: AsyncSession, row: dict[str, Any]) -> int | None:
    """The new item's id, or None when the (kind, ref_id) is indexed already."""
    stmt = (
        _insert(session)(FeedItem)
        .values(**row)
        .on_conflict_do_nothing(index_elements=["kind", "ref_id"])
        .returning(FeedItem.id)
    )
    return await session.scalar(stmt)


async def set_item_active(session: AsyncSession, item_id: int, active: bool) -> None:
    await session.execute(update(FeedItem).where(FeedItem.id == item_id).values(active=active))


async def insert_items(session: AsyncSession, rows: list[dict[str, Any]]) -> list[Any]:
    """Index many items, skipping the (kind, ref_id) indexed already: (provider_type, provider_id,
    published_at) of each one inserted."""
    if not rows:
        return []
    t = FeedItem.__table__
    stmt = (
        _insert(session)(t)
        .on_conflict_do_nothing(index_elements=["kind", "ref_id"])
        .returning(t.c.provider_type, t.c.provider_id, t.c.published_at)
    )
    return list((await session.execute(stmt, rows)).all())


async def upsert_providers(
    session: AsyncSession, changes: Sequence[tuple[str, int, dt.datetime, int]], now: dt.datetime
) -> None:
    """For each (provider_type, provider_id, first item at, n >= 0): make sure the provider is
    known, keep the earliest first item, and add n to its count of published items; marks the
    rows changed for the exposure caches. One statement, rows in key order."""
    if not changes:
        return
    rows = [
        {"provider_type": t, "provider_id": i, "first_item_at": at, "active_items": n,
         "window_impressions": 0, "exposure_at": now}
        for t, i, at, n in sorted(changes, key=lambda c: (c[0], c[1]))
    ]  # fmt: skip
    t = FeedProvider.__table__
    ins = _insert(session)(t)
    stmt = ins.on_conflict_do_update(
        index_elements=["provider_type", "provider_id"],
        set_={
            "first_item_at": case(
                (ins.excluded.first_item_at < t.c.first_item_at, ins.excluded.first_item_at),
                else_=t.c.first_item_at,
            ),
            "active_items": t.c.active_items + ins.excluded.active_items,
            "exposure_at": ins.excluded.exposure_at,
        },
    )
    await session.execute(stmt, rows)


async def drop_active(session: AsyncSession, provider_type: str, provider_id: int, now: dt.datetime) -> None:
    """One published item fewer for the provider (never below 0)."""
    p = FeedProvider
    await session.execute(
        update(p)
        .where(p.provider_type == provider_type, p.provider_id == provider_id)
        .values(active_items=case((p.active_items > 0, p.active_items - 1), else_=0), exposure_at=now)
    )


_ITEM_COLUMNS = (
    FeedItem.id,
    FeedItem.kind,
    FeedItem.ref_id,
    FeedItem.provider_type,
    FeedItem.provider_id,
    FeedItem.published_at,
)


async def newest_items(session: AsyncSession, limit: int) -> list[Any]:
    """The fresh pool: the newest active items (index ``ix_feed_items_fresh``)."""
    stmt = (
        select(*_ITEM_COLUMNS)
        .where(FeedItem.active.is_(True))
        .order_by(FeedItem.published_at.desc(), FeedItem.id.desc())
        .limit(limit)
    )
    return list((await session.execute(stmt)).all())


async def least_exposed_providers(session: AsyncSession, since: dt.datetime | None, limit: int) -> list[Any]:
    """(provider_type, provider_id) of providers with something published, the least exposed over
    the window first (ties: by key), whose first item came at or after ``since`` when given: the
    new-creator and long-tail pools. As impressions come in, the next ones take their place."""
    p = FeedProvider
    stmt = (
        select(p.provider_type, p.provider_id)
        .where(p.active_items > 0)
        .order_by(p.window_impressions, p.provider_type, p.provider_id)
        .limit(limit)
    )
    if since is not None:
        stmt = stmt.where(p.first_item_at >= since)
    return [(t, i) for t, i in (await session.execute(stmt)).all()]


async def newest_item_of(session: AsyncSession, providers: Sequence[tuple[str, int]]) -> list[Any]:
    """Each provider's newest active item, in the order of ``providers``."""
    if not providers:
        return []
    stmt = select(*_ITEM_COLUMNS).where(
        FeedItem.active.is_(True), tuple_(FeedItem.provider_type, FeedItem.provider_id).in_(list(providers))
    )
    newest: dict[tuple[str, int], Any] = {}
    for row in (await session.execute(stmt)).all():
        key = (row.provider_type, row.provider_id)
        if key not in newest or (row.published_at, row.id) > (newest[key].published_at, newest[key].id):
            newest[key] = row
    return [newest[k] for k in providers if k in newest]


async def item_ids_of(session: AsyncSession, kind: str, ref_ids: Sequence[int]) -> dict[int, int]:
    """ref id -> feed item id, for the refs that are indexed."""
    if not ref_ids:
        return {}
    conn = await session.connection()
    rows = await conn.execute(
        _item_ids_statement(session.bind.dialect.name), {"kind": kind, "ids": sorted(set(ref_ids))}
    )
    return {ref: item for ref, item in rows}


@functools.cache
def _item_ids_statement(dialect: str):  # type: ignore[no-untyped-def]
    return select(FeedItem.ref_id, FeedItem.id).where(
        FeedItem.kind == bindparam("kind"), in_param(FeedItem.ref_id, "ids", dialect)
    )


# --- history and neighbours -----------------------------------------------------------------------


async def history(session: AsyncSession, user_id: int, limit: int) -> list[Any]:
    """The user's latest interactions, newest first: (item_id, kind, provider_type, provider_id)."""
    conn = await session.connection()
    return list(await conn.execute(_HISTORY, {"user_id": user_id, "limit": limit}))


_HISTORY = (
    select(FeedInteraction.item_id, FeedInteraction.kind, FeedItem.provider_type, FeedItem.provider_id)
    .join(FeedItem, FeedItem.id == FeedInteraction.item_id)
    .where(FeedInteraction.user_id == bindparam("user_id"))
    .order_by(FeedInteraction.last_at.desc(), FeedInteraction.item_id.desc())
    .limit(bindparam("limit"))
)


async def neighbours_of(session: AsyncSession, item_ids: Sequence[int], ranks: int) -> list[Any]:
    """(item_id, neighbour_id, sim, kind, ref_id, provider_type, provider_id, published_at) of the
    ``ranks`` nearest neighbours of ``item_ids``, as of the last build (a neighbour unpublished
    since is still here: the page's card check leaves it out)."""
    if not item_ids:
        return []
    conn = await session.connection()
    rows = await conn.execute(
        _neighbours_statement(session.bind.dialect.name), {"ids": sorted(set(item_ids)), "ranks": ranks}
    )
    return list(rows.all())


_NEIGHBOUR_FIELDS = (FeedNeighbour.kind, FeedNeighbour.ref_id, FeedNeighbour.provider_type,
                     FeedNeighbour.provider_id, FeedNeighbour.published_at)  # fmt: skip


@functools.cache
def _neighbours_statement(dialect: str):  # type: ignore[no-untyped-def]
    # One statement whatever the number of items: prepared once per connection.
    n = FeedNeighbour
    if dialect != "postgresql":
        return select(n.item_id, n.neighbour_id, n.sim, *_NEIGHBOUR_FIELDS).where(
            in_param(n.item_id, "ids", dialect), n.rank < bindparam("ranks")
        )
    # On PostgreSQL each item's neighbours are read in a lateral join over the array of ids: for a
    # plain IN it plans a parallel bitmap scan, and starting the worker costs more than the read.
    h = func.unnest(bindparam("ids", type_=ARRAY(BigInteger))).table_valued("id").render_derived(name="h")
    near = (
        select(n.item_id, n.neighbour_id, n.sim, *_NEIGHBOUR_FIELDS)
        .where(n.item_id == h.c.id, n.rank < bindparam("ranks"))
        .lateral("n")
    )
    return select(near).select_from(h).join(near, true())


async def interactions_since(session: AsyncSession, since: dt.datetime) -> list[Any]:
    """Every interaction touched since ``since`` on an active item: (user_id, item_id, kind,
    last_at), for the batch build of the neighbours."""
    i = FeedInteraction
    stmt = (
        select(i.user_id, i.item_id, i.kind, i.last_at)
        .join(FeedItem, FeedItem.id == i.item_id)
        .where(i.last_at >= since, FeedItem.active.is_(True))
    )
    return list((await session.execute(stmt)).all())


async def replace_neighbours(session: AsyncSession, rows: list[dict[str, Any]], chunk: int = 5000) -> None:
    """The new neighbour table (rows: item_id, rank, neighbour_id, sim) in place of the old one, in
    the caller's transaction: readers see the old table or the new one, never half of each. Each
    row gets its neighbour's kind, ref, provider and publishing time from the item index, in the
    insert itself; a neighbour the index does not hold is left out."""
    await session.execute(delete(FeedNeighbour))
    conn = await session.connection()
    stmt = _NEIGHBOURS_INSERT[session.bind.dialect.name]
    for start in range(0, len(rows), chunk):
        await conn.execute(stmt, {"rows": msgspec.json.encode(rows[start : start + chunk]).decode()})


_NEIGHBOUR_COLUMNS = (
    "item_id, rank, neighbour_id, sim, kind, ref_id, provider_type, provider_id, published_at"
)
_ITEM_FIELDS = "i.kind, i.ref_id, i.provider_type, i.provider_id, i.published_at"
# The rows travel as one JSON array per chunk, read by the database's own JSON functions.
_NEIGHBOURS_INSERT = {
    "postgresql": text(
        f"INSERT INTO feed_neighbours ({_NEIGHBOUR_COLUMNS}) "
        f"SELECT r.item_id, r.rank, r.neighbour_id, r.sim, {_ITEM_FIELDS} "
        "FROM json_to_recordset(CAST(:rows AS json)) "
        "AS r(item_id bigint, rank smallint, neighbour_id bigint, sim double precision) "
        "JOIN feed_items AS i ON i.id = r.neighbour_id"
    ),
    "sqlite": text(
        f"INSERT INTO feed_neighbours ({_NEIGHBOUR_COLUMNS}) "
        "SELECT json_extract(r.value, '$.item_id'), json_extract(r.value, '$.rank'), "
        f"json_extract(r.value, '$.neighbour_id'), json_extract(r.value, '$.sim'), {_ITEM_FIELDS} "
        "FROM json_each(:rows) AS r JOIN feed_items AS i ON i.id = json_extract(r.value, '$.neighbour_id')"
    ),
}


async def remove_interaction(session: AsyncSession, user_id: int, item_id: int, kind: str) -> None:
    i = FeedInteraction
    await session.execute(delete(i).where(i.user_id == user_id, i.item_id == item_id, i.kind == kind))


async def add_interactions(session: AsyncSession, rows: list[dict[str, Any]], *, count: bool = True) -> None:
    """Upsert (user_id, item_id, kind, count, last_at): counts add up (unless ``count`` is False:
    an event-sourced like or purchase, which a redelivery must not count twice), the latest time
    wins."""
    if not rows:
        return
    rows = sorted(rows, key=lambda r: (r["user_id"], r["item_id"], r["kind"]))
    t = FeedInteraction.__table__
    ins = _insert(session)(t)
    stmt = ins.on_conflict_do_update(
        index_elements=["user_id", "item_id", "kind"],
        set_={
            "count": t.c.count + ins.excluded.count if count else t.c.count,
            "last_at": case((ins.excluded.last_at > t.c.last_at, ins.excluded.last_at), else_=t.c.last_at),
        },
    )
    await session.execute(stmt, rows)


# --- serves and events ------------------------------------------------------------------------


async def add_serve(session: AsyncSession, row: dict[str, Any]) -> None:
    # Through the connection: every page served writes one, and the ORM session adds nothing here.
    await (await session.connection()).execute(_ADD_SERVE, row)


_ADD_SERVE = FeedServe.__table__.insert()


async def serves_by_ids(session: AsyncSession, ids: Sequence[str]) -> dict[str, FeedServe]:
    if not ids:
        return {}
    rows = await session.scalars(select(FeedServe).where(FeedServe.id.in_(sorted(set(ids)))))
    return {s.id: s for s in rows}


async def insert_events(session: AsyncSession, rows: list[dict[str, Any]]) -> list[Any]:
    """Insert the events that are not there yet: (id, serve_id, position, kind) of those inserted
    (a replay inserts nothing; two racing twins insert one)."""
    if not rows:
        return []
    t = FeedEvent.__table__
    stmt = (
        _insert(session)(t)
        .on_conflict_do_nothing(index_elements=["serve_id", "position", "kind"])
        .returning(t.c.id, t.c.serve_id, t.c.position, t.c.kind)
    )
    return list((await session.execute(stmt, rows)).all())


async def mark_grant(session: AsyncSession, grant_id: int, event_ids: list[int]) -> None:
    await session.execute(update(FeedEvent).where(FeedEvent.id.in_(event_ids)).values(grant_id=grant_id))


async def add_exposure(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Upsert hourly counters (hour, feed, provider_type, provider_id, impressions, clicks)."""
    if not rows:
        return
    rows = sorted(rows, key=lambda r: (r["hour"], r["feed"], r["provider_type"], r["provider_id"]))
    t = FeedExposure.__table__
    ins = _insert(session)(t)
    stmt = ins.on_conflict_do_update(
        index_elements=["hour", "feed", "provider_type", "provider_id"],
        set_={
            "impressions": t.c.impressions + ins.excluded.impressions,
            "clicks": t.c.clicks + ins.excluded.clicks,
        },
    )
    await session.execute(stmt, rows)


_P = FeedProvider.__table__.c


async def add_window(session: AsyncSession, deltas: dict[tuple[str, int], int], now: dt.datetime) -> None:
    """Move providers' window exposure by ``deltas`` in one upsert (rows in key order, so
    concurrent reports lock them in the same order); a provider without a row yet (a live-only
    creator at their first impression) gets one holding its delta."""
    rows = [
        {"provider_type": t, "provider_id": i, "first_item_at": now, "active_items": 0,
         "window_impressions": n, "exposure_at": now}
        for (t, i), n in sorted(deltas.items()) if n
    ]  # fmt: skip
    if rows:
        t = FeedProvider.__table__
        ins = _insert(session)(t)
        stmt = ins.on_conflict_do_update(
            index_elements=["provider_type", "provider_id"],
            set_={
                "window_impressions": t.c.window_impressions + ins.excluded.window_impressions,
                "exposure_at": ins.excluded.exposure_at,
            },
        )
        await session.execute(stmt, rows)


async def ensure_providers(session: AsyncSession, keys: Sequence[tuple[str, int]], now: dt.datetime) -> None:
    """A provider row for each key (a live-only creator gets one at their first impression)."""
    if not keys:
        return
    rows = [
        {"provider_type": t, "provider_id": i, "first_item_at": now, "active_items": 0,
         "window_impressions": 0, "exposure_at": now}
        for t, i in sorted(set(keys))
    ]  # fmt: skip
    stmt = _insert(session)(FeedProvider.__table__).on_conflict_do_nothing(
        index_elements=["provider_type", "provider_id"]
    )
    await session.execute(stmt, rows)


async def providers_changed(session: AsyncSession, since: dt.datetime | None) -> list[Any]:
    """(provider_type, provider_id, window_impressions, active_items, first_item_at) of every
    provider row changed after ``since`` (all of them when None)."""
    p = FeedProvider
    stmt = select(p.provider_type, p.provider_id, p.window_impressions, p.active_items, p.first_item_at)
    if since is not None:
        stmt = stmt.where(p.exposure_at > since)
    return list((await session.execute(stmt)).all())


async def hour_sums(session: AsyncSession, from_hour: int, to_hour: int) -> list[Any]:
    """(provider_type, provider_id, impressions) summed over hours [from_hour, to_hour), all feeds."""
    e = FeedExposure
    stmt = (
        select(e.provider_type, e.provider_id, func.sum(e.impressions))
        .where(e.hour >= from_hour, e.hour < to_hour)
        .group_by(e.provider_type, e.provider_id)
    )
    return [(t, i, int(n or 0)) for t, i, n in (await session.execute(stmt)).all()]


async def nonzero_windows(session: AsyncSession) -> list[tuple[str, int]]:
    """Providers whose window exposure is not 0 (a full recompute must zero those it does not set)."""
    stmt = select(_P.provider_type, _P.provider_id).where(_P.window_impressions != 0)
    return [(t, i) for t, i in (await session.execute(stmt)).all()]


async def set_windows(session: AsyncSession, values: dict[tuple[str, int], int], now: dt.datetime) -> None:
    """Set providers' window exposure (one executemany, rows in key order: concurrent reports,
    which lock providers in the same order, queue instead of deadlocking)."""
    rows = [{"t": t, "i": i, "n": n, "now": now} for (t, i), n in sorted(values.items())]
    if rows:
        stmt = (
            update(FeedProvider.__table__)
            .where(_P.provider_type == bindparam("t"), _P.provider_id == bindparam("i"))
            .values(window_impressions=bindparam("n"), exposure_at=bindparam("now"))
        )
        await session.execute(stmt, rows)


# --- grants -----------------------------------------------------------------------------------


async def add_grant(session: AsyncSession, grant: FeedGrant) -> FeedGrant:
    session.add(grant)
    await session.flush()
    return grant


async def get_grant(session: AsyncSession, grant_id: int, *, lock: bool = False) -> FeedGrant | None:
    stmt = select(FeedGrant).where(FeedGrant.id == grant_id).execution_options(populate_existing=True)
    if lock:
        stmt = stmt.with_for_update()
    return await session.scalar(stmt)


async def lock_grants(session: AsyncSession, ids: Sequence[int]) -> list[FeedGrant]:
    """The grants, locked in id order (concurrent impressions of one grant queue here)."""
    if not ids:
        return []
    stmt = (
        select(FeedGrant)
        .where(FeedGrant.id.in_(sorted(set(ids))))
        .order_by(FeedGrant.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return list(await session.scalars(stmt))


async def use_grant(session: AsyncSession, grant_id: int, n: int) -> None:
    await session.execute(update(FeedGrant).where(FeedGrant.id == grant_id).values(used=FeedGrant.used + n))


def _running(now: dt.datetime) -> Any:
    return and_(FeedGrant.revoked_at.is_(None), FeedGrant.starts_at <= now, FeedGrant.ends_at > now)


async def running_grants(session: AsyncSession, now: dt.datetime) -> list[Any]:
    """(id, provider_type, provider_id, budget, used) of grants running now with budget left."""
    g = FeedGrant
    stmt = (
        select(g.id, g.provider_type, g.provider_id, g.budget, g.used)
        .where(_running(now), g.used < g.budget)
        .order_by(g.ends_at, g.id)
    )
    return list((await session.execute(stmt)).all())


GRANT_STATUSES = ("running", "scheduled", "spent", "ended", "revoked")


def grant_status(g: FeedGrant, now: dt.datetime) -> str:
    if g.revoked_at is not None:
        return "revoked"
    if g.ends_at <= now:
        return "ended"
    if g.used >= g.budget:
        return "spent"
    if g.starts_at > now:
        return "scheduled"
    return "running"


async def list_grants(
    session: AsyncSession,
    *,
    status: str,
    now: dt.datetime,
    provider: tuple[str, int] | None,
    before_id: int | None,
    limit: int,
) -> list[FeedGrant]:
    g = FeedGrant
    stmt = select(g).order_by(g.id.desc()).limit(limit)
    if provider is not None:
        stmt = stmt.where(g.provider_type == provider[0], g.provider_id == provider[1])
    if before_id is not None:
        stmt = stmt.where(g.id < before_id)
    live = and_(g.revoked_at.is_(None), g.ends_at > now)
    filters = {
        "running": and_(live, g.starts_at <= now, g.used < g.budget),
        "scheduled": and_(live, g.starts_at > now, g.used < g.budget),
        "spent": and_(live, g.used >= g.budget),
        "ended": and_(g.revoked_at.is_(None), g.ends_at <= now),
        "revoked": g.revoked_at.is_not(None),
    }
    if status:
        stmt = stmt.where(filters[status])
    return list(await session.scalars(stmt))


# --- the dashboard ------------------------------------------------------------------------------


async def exposure_by_day(
    session: AsyncSession, from_hour: int, to_hour: int, feeds: Sequence[str]
) -> list[Any]:
    """(day index, provider_type, provider_id, impressions) over [from_hour, to_hour): day index =
    (hour + 8) // 24, the Asia/Shanghai day."""
    e = FeedExposure
    day = ((e.hour + 8) // 24).label("day")  # floor division: hours and days are never negative
    stmt = (
        select(day, e.provider_type, e.provider_id, func.sum(e.impressions))
        .where(e.hour >= from_hour, e.hour < to_hour, e.feed.in_(list(feeds)))
        .group_by(day, e.provider_type, e.provider_id)
    )
    return [(int(d), t, i, int(n or 0)) for d, t, i, n in (await session.execute(stmt)).all()]


async def population(session: AsyncSession, until: dt.datetime) -> list[Any]:
    """(provider_type, provider_id, first_item_at, active_items) of providers whose first item came
    before ``until``."""
    p = FeedProvider
    stmt = select(p.provider_type, p.provider_id, p.first_item_at, p.active_items).where(
        p.first_item_at < until
    )
    return list((await session.execute(stmt)).all())


# --- state and housekeeping ---------------------------------------------------------------------


async def get_state(session: AsyncSession, key: str) -> int | None:
    return await session.scalar(select(FeedState.value).where(FeedState.key == key))


async def swap_state(
    session: AsyncSession, key: str, expected: int | None, value: int, now: dt.datetime
) -> bool:
    """Set ``key`` to ``value`` if it still holds ``expected`` (None: absent). True when this call
    made the change: of several workers running the same step, exactly one goes on."""
    if expected is None:
        stmt = (
            _insert(session)(FeedState)
            .values(key=key, value=value, updated_at=now)
            .on_conflict_do_nothing(index_elements=["key"])
            .returning(FeedState.key)
        )
        return await session.scalar(stmt) is not None
    result = await session.execute(
        update(FeedState)
        .where(FeedState.key == key, FeedState.value == expected)
        .values(value=value, updated_at=now)
        .returning(FeedState.key)
    )
    return result.first() is not None


async def put_state(session: AsyncSession, key: str, value: int, now: dt.datetime) -> None:
    ins = _insert(session)(FeedState).values(key=key, value=value, updated_at=now)
    await session.execute(
        ins.on_conflict_do_update(index_elements=["key"], set_={"value": value, "updated_at": now})
    )


async def prune(session: AsyncSession, before: dt.datetime, limit: int) -> int:
    """Delete up to ``limit`` old events that no grant accounts for, then the old serves no event
    names any more. Returns how many rows went."""
    old_events = (
        select(FeedEvent.id)
        .where(FeedEvent.created_at < before, FeedEvent.grant_id.is_(None))
        .limit(limit)
        .scalar_subquery()
    )
    gone = (await session.execute(delete(FeedEvent).where(FeedEvent.id.in_(old_events)))).rowcount or 0
    referenced = exists().where(FeedEvent.serve_id == FeedServe.id)
    old_serves = (
        select(FeedServe.id).where(FeedServe.created_at < before, ~referenced).limit(limit).scalar_subquery()
    )
    gone += (await session.execute(delete(FeedServe).where(FeedServe.id.in_(old_serves)))).rowcount or 0
    return gone
