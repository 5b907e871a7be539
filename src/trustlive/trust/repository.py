"""Every query of the trust domain. Facts and scores move in bulk: arrays in, arrays out.

On PostgreSQL the nightly recompute streams the facts out and the scores back in with binary
COPY of fixed-width int8 rows, parsed and built by numpy without a Python object per row: that is
what makes ten million lines a matter of seconds (bench/scores.py). SQLite, the embedded default,
takes the plain SELECT/executemany path; both give the same arrays.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import io
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from sqlalchemy import and_, bindparam, delete, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from trustlive.db import in_param
from trustlive.trust.models import (
    Complaint,
    ComplaintStatus,
    TrustDirtyOrder,
    TrustFact,
    TrustRecompute,
    TrustScore,
    TrustScoreHistory,
)
from trustlive.trust.scoring import COUNTS, DIMENSIONS, FACT_COLUMNS

FACT_FIELDS = ("line_id", "order_id", *FACT_COLUMNS, "last_ts")
# A score row as arrays: the entity, its rules' category, score and dimensions (-1: none), counts,
# the restriction flag, the time its windows are evaluated at.
SCORE_FIELDS = ("entity_id", "category_id", "score_c", *(f"{d}_c" for d in DIMENSIONS), *COUNTS, "restricted",
                "as_of_ts")  # fmt: skip
_NULLABLE = frozenset({"score_c", *(f"{d}_c" for d in DIMENSIONS)})
_ENTITY_COLUMN = {"shop": "shop_id", "product": "product_id", "creator": "creator_id"}

# Serialises the nightly recompute with the incremental refresh on PostgreSQL, so a refresh that
# commits while a recompute is running cannot be overwritten by the recompute's older snapshot.
ADVISORY_KEY = 0x7472757374  # "trust"


def _insert(session: AsyncSession):  # type: ignore[no-untyped-def]
    return pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert


def _pg(session: AsyncSession) -> bool:
    return session.bind.dialect.name == "postgresql"


async def lock_scores(session: AsyncSession) -> None:
    if _pg(session):
        await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": ADVISORY_KEY})


# --- the refresh queue ------------------------------------------------------------------------


async def queue_orders(session: AsyncSession, order_ids: Iterable[int], now: dt.datetime) -> None:
    rows = [{"order_id": i, "version": 1, "queued_at": now} for i in sorted(set(order_ids))]
    if not rows:
        return
    t = TrustDirtyOrder.__table__
    stmt = _insert(session)(t)
    stmt = stmt.on_conflict_do_update(
        index_elements=[t.c.order_id], set_={"version": t.c.version + 1, "queued_at": stmt.excluded.queued_at}
    )
    await session.execute(stmt, rows)


async def take_dirty(session: AsyncSession, limit: int) -> list[tuple[int, int]]:
    """(order id, version) of the oldest queued orders; on PostgreSQL locked, so two refreshers
    never take the same order."""
    c = TrustDirtyOrder.__table__.c
    stmt = select(c.order_id, c.version).order_by(c.queued_at, c.order_id).limit(limit)
    if _pg(session):
        stmt = stmt.with_for_update(skip_locked=True)
    return [(r.order_id, r.version) for r in await session.execute(stmt)]


async def clear_dirty(session: AsyncSession, taken: Sequence[tuple[int, int]]) -> None:
    if taken:
        c = TrustDirtyOrder.__table__.c
        stmt = delete(TrustDirtyOrder.__table__).where(
            c.order_id == bindparam("oid"), c.version == bindparam("ver")
        )
        await session.execute(
            stmt, [{"oid": o, "ver": v} for o, v in taken], execution_options={"synchronize_session": False}
        )


# --- facts ------------------------------------------------------------------------------------


async def replace_facts(session: AsyncSession, order_ids: list[int], rows: list[dict[str, int]]) -> None:
    """The facts of those orders become ``rows`` (their lines, derived anew)."""
    t = TrustFact.__table__
    dialect = session.bind.dialect.name
    await session.execute(delete(t).where(in_param(t.c.order_id, "ids", dialect)), {"ids": order_ids})
    if rows:
        await session.execute(t.insert(), rows)


async def facts_of_orders(session: AsyncSession, order_ids: list[int]) -> dict[str, np.ndarray]:
    """The stored facts of these orders' lines (before a refresh replaces them)."""
    t = TrustFact.__table__
    stmt = select(*(t.c[n] for n in FACT_FIELDS)).where(
        in_param(t.c.order_id, "ids", session.bind.dialect.name)
    )
    return _columns((await session.execute(stmt, {"ids": order_ids})).all(), FACT_FIELDS)


def fact_arrays(rows: Sequence[dict[str, int]]) -> dict[str, np.ndarray]:
    """Fact rows (as ``replace_facts`` takes them) as the arrays the scoring reads."""
    return _columns([[r[n] for n in FACT_FIELDS] for r in rows], FACT_FIELDS)


async def analyze_facts(session: AsyncSession) -> None:
    """Fresh planner statistics after every fact was rewritten (servers may run without
    autovacuum, and the refresh's lookups by entity rely on them)."""
    if _pg(session):
        await session.execute(text("ANALYZE trust_facts"))


def _empty_facts() -> dict[str, np.ndarray]:
    return {name: np.zeros(0, dtype=np.int64) for name in FACT_FIELDS}


def _columns(rows: Sequence[Sequence[int]], names: Sequence[str]) -> dict[str, np.ndarray]:
    if not rows:
        return {name: np.zeros(0, dtype=np.int64) for name in names}
    matrix = np.array(rows, dtype=np.int64).reshape(len(rows), len(names))
    return {name: np.ascontiguousarray(matrix[:, i]) for i, name in enumerate(names)}


async def facts_of(
    session: AsyncSession, kind: str, ids: Sequence[int], since_ts: int
) -> dict[str, np.ndarray]:
    """The facts of these entities that can still count (``last_ts`` within the longest window)."""
    if not ids:
        return _empty_facts()
    if _pg(session):  # a big shop has many lines: binary COPY, parsed by numpy, not row objects
        wanted = ",".join(str(int(i)) for i in ids)  # ints only: nothing to inject
        return await _copy_facts(
            session, f"{_ENTITY_COLUMN[kind]} = ANY('{{{wanted}}}'::int8[]) AND last_ts >= {int(since_ts)}"
        )
    t = TrustFact.__table__
    key = t.c[_ENTITY_COLUMN[kind]]
    stmt = select(*(t.c[n] for n in FACT_FIELDS)).where(
        in_param(key, "ids", session.bind.dialect.name), t.c.last_ts >= since_ts
    )
    rows = (await session.execute(stmt, {"ids": list(ids)})).all()
    return _columns(rows, FACT_FIELDS)


async def facts_window(session: AsyncSession, since_ts: int, progress: Any = None) -> dict[str, np.ndarray]:
    """Every fact that can still count: the ``FACT_COLUMNS`` the arithmetic reads, as arrays.
    PostgreSQL: packed binary COPY in two parallel parts (``_copy_window``); SQLite: a plain
    SELECT, in pages."""
    t = TrustFact.__table__
    if not _pg(session):
        out: list[Any] = []
        stmt = select(*(t.c[n] for n in FACT_COLUMNS)).where(t.c.last_ts >= since_ts)
        result = await session.stream(stmt)
        async for part in result.partitions(50_000):
            out.extend(part)
            if progress:
                progress(len(part))
        return _columns(out, FACT_COLUMNS)
    return await _copy_window(session, int(since_ts), progress)


# PostgreSQL's binary COPY costs mostly per field sent, so the recompute's read packs what it
# needs into 10 int8 fields instead of 18: two timestamps per field (each in 32 bits, shifted by
# 2**31, so 0 = never and every time until 2106 fit exactly) and the small ratings and flags in
# one. Ids and the handling seconds travel as they are.
_PAIRS = (
    ("paid_ts", "ship_by_ts"), ("shipped_ts", "delivered_ts"), ("closed_ts", "quality_refund_ts"),
    ("inspected_ts", "aftersales_ts"), ("dispute_lost_ts", "false_claim_ts"),
)  # fmt: skip
_SMALL = ("rating_product", "rating_service", "inspection_failed")  # 8 bits each
_PLAIN = ("shop_id", "product_id", "creator_id", "category_id", "aftersales_s")
_PACKED = (*_PLAIN, *(f"{a}__{b}" for a, b in _PAIRS), "small")
_COPY_PARTS = 2  # one reader per core of the database machine


def _packed_select(since_ts: int, lo_page: int, hi_page: int | None) -> str:
    pairs = [f"(({a} - 2147483648) << 32) | {b}" for a, b in _PAIRS]
    small = " | ".join(f"({n}::int8 << {8 * i})" for i, n in enumerate(_SMALL))
    where = [f"last_ts >= {since_ts}", f"ctid >= '({lo_page},0)'::tid"]
    if hi_page is not None:
        where.append(f"ctid < '({hi_page},0)'::tid")
    return f"SELECT {', '.join(f'{n}::int8' for n in _PLAIN)}, {', '.join(pairs)}, {small} FROM trust_facts WHERE {' AND '.join(where)}"


def _unpack(packed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = {n: packed[n] for n in _PLAIN}
    for a, b in _PAIRS:
        v = packed[f"{a}__{b}"]
        out[a] = (v >> 32) + 2147483648
        out[b] = v & 0xFFFFFFFF
    for i, n in enumerate(_SMALL):
        out[n] = (packed["small"] >> (8 * i)) & 0xFF
    return {n: out[n] for n in FACT_COLUMNS}


async def _copy_window(session: AsyncSession, since_ts: int, progress: Any = None) -> dict[str, np.ndarray]:
    """The window's facts, read by ``_COPY_PARTS`` connections at once, each a range of the
    table's pages (a TID range scan reads only its own), all in one snapshot exported by this
    session's transaction, so the parts add up to one consistent read."""
    snapshot = await session.scalar(text("SELECT pg_export_snapshot()"))
    pages = int(
        await session.scalar(
            text("SELECT pg_relation_size('trust_facts') / current_setting('block_size')::int")
        )
        or 0
    )
    step = pages // _COPY_PARTS + 1
    bounds = [(i * step, (i + 1) * step if i < _COPY_PARTS - 1 else None) for i in range(_COPY_PARTS)]
    engine = session.bind if isinstance(session.bind, AsyncEngine) else session.bind.engine
    row_size = _binary_dtype(_PACKED).itemsize

    async def part(lo: int, hi: int | None) -> bytes:
        chunks: list[bytes] = []

        async def sink(chunk: bytes) -> None:
            chunks.append(bytes(chunk))
            if progress:
                progress(len(chunk) // row_size)

        async with engine.connect() as conn:
            raw = (await conn.get_raw_connection()).driver_connection
            async with raw.transaction(isolation="repeatable_read", readonly=True):
                await raw.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
                await raw.copy_from_query(_packed_select(since_ts, lo, hi), output=sink, format="binary")
        return b"".join(chunks)

    bufs = await asyncio.gather(*(part(lo, hi) for lo, hi in bounds))
    parsed = [_parse_binary(buf, _PACKED) for buf in bufs]
    return _unpack({n: np.concatenate([p[n] for p in parsed]) for n in _PACKED})


async def _copy_facts(session: AsyncSession, where: str, progress: Any = None) -> dict[str, np.ndarray]:
    """PostgreSQL: the facts matching ``where`` (built by the callers from ints) in one binary COPY."""
    cols = ", ".join(f"{n}::int8" for n in FACT_FIELDS)
    raw = await _driver(session)
    chunks: list[bytes] = []

    async def sink(chunk: bytes) -> None:
        chunks.append(bytes(chunk))
        if progress:
            progress(len(chunk) // (2 + 12 * len(FACT_FIELDS)))

    await raw.copy_from_query(f"SELECT {cols} FROM trust_facts WHERE {where}", output=sink, format="binary")
    return _parse_binary(b"".join(chunks), FACT_FIELDS)


async def _driver(session: AsyncSession) -> Any:
    conn = await session.connection()
    raw = await conn.get_raw_connection()
    return raw.driver_connection


def _binary_dtype(names: Sequence[str]) -> np.dtype:
    fields: list[tuple[str, str]] = [("_n", ">i2")]
    for name in names:
        fields += [(f"_l_{name}", ">i4"), (name, ">i8")]
    return np.dtype(fields)


def _parse_binary(buf: bytes, names: Sequence[str]) -> dict[str, np.ndarray]:
    """PostgreSQL binary COPY of NOT NULL int8 columns: a header, fixed-size tuples, a trailer."""
    if not buf:
        return {name: np.zeros(0, dtype=np.int64) for name in names}
    ext = int.from_bytes(buf[15:19], "big")
    start = 19 + ext
    dtype = _binary_dtype(names)
    count = (len(buf) - start - 2) // dtype.itemsize
    rows = np.frombuffer(buf, dtype=dtype, count=count, offset=start)
    return {name: rows[name].astype(np.int64) for name in names}


def _build_binary(columns: dict[str, np.ndarray], names: Sequence[str]) -> bytes:
    n = len(columns[names[0]])
    dtype = _binary_dtype(names)
    rows = np.zeros(n, dtype=dtype)
    rows["_n"] = len(names)
    for name in names:
        rows[f"_l_{name}"] = 8
        rows[name] = columns[name]
    return (
        b"PGCOPY\n\xff\r\n\x00"
        + (0).to_bytes(4, "big")
        + (0).to_bytes(4, "big")
        + rows.tobytes()
        + b"\xff\xff"
    )


# --- scores -----------------------------------------------------------------------------------


def _score_arrays(rows: Sequence[Any]) -> dict[str, np.ndarray]:
    values = [[(-1 if v is None else int(v)) for v in r] for r in rows]
    return _columns(values, SCORE_FIELDS)


def _score_select(kind: str):  # type: ignore[no-untyped-def]
    c = TrustScore.__table__.c
    cols = [c.entity_id, c.category_id, c.score_c, *(c[f"{d}_c"] for d in DIMENSIONS), *(c[n] for n in COUNTS),
            c.flash_sale_restricted, c.as_of_ts]  # fmt: skip
    return select(*cols).where(c.entity_type == kind)


async def scores_of(session: AsyncSession, kind: str, ids: Sequence[int]) -> dict[str, np.ndarray]:
    c = TrustScore.__table__.c
    stmt = (
        _score_select(kind)
        .where(in_param(c.entity_id, "ids", session.bind.dialect.name))
        .order_by(c.entity_id)
    )
    return _score_arrays((await session.execute(stmt, {"ids": list(ids)})).all())


# What a full recompute needs of the previous rows: the scores (today's history records a change)
# and the restriction (it has hysteresis).
PRIOR_FIELDS = ("entity_id", "score_c", *(f"{d}_c" for d in DIMENSIONS), "restricted")


async def all_scores(session: AsyncSession, kind: str) -> dict[str, np.ndarray]:
    """Every row of ``kind``, sorted by entity: the ``PRIOR_FIELDS`` (-1: NULL)."""
    assert kind in _ENTITY_COLUMN  # one of three literals: safe in the query below
    if not _pg(session):
        c = TrustScore.__table__.c
        rows = (await session.execute(_score_select(kind).order_by(c.entity_id))).all()
        arrays = _score_arrays(rows)
        return {n: arrays[n] for n in PRIOR_FIELDS}
    cols = ", ".join(
        f"coalesce({n}, -1)::int8" if n in _NULLABLE else f"{n}::int8" for n in PRIOR_FIELDS[:-1]
    )
    query = (
        f"SELECT {cols}, flash_sale_restricted::int::int8 FROM trust_scores "
        f"WHERE entity_type = '{kind}' ORDER BY entity_id"
    )
    raw = await _driver(session)
    chunks: list[bytes] = []

    async def sink(chunk: bytes) -> None:
        chunks.append(bytes(chunk))

    await raw.copy_from_query(query, output=sink, format="binary")
    return _parse_binary(b"".join(chunks), PRIOR_FIELDS)


def _score_rows(kind: str, arrays: dict[str, np.ndarray], now: dt.datetime) -> list[dict[str, Any]]:
    names = SCORE_FIELDS
    lists = {n: arrays[n].tolist() for n in names}
    out = []
    for i in range(len(lists["entity_id"])):
        row: dict[str, Any] = {"entity_type": kind, "computed_at": now}
        for n in names:
            v = lists[n][i]
            if n == "restricted":
                row["flash_sale_restricted"] = bool(v)
            else:
                row[n] = None if (n in _NULLABLE and v < 0) else v
        out.append(row)
    return out


async def write_scores(
    session: AsyncSession, kind: str, arrays: dict[str, np.ndarray], now: dt.datetime
) -> None:
    """Upsert these entities' score rows."""
    if not len(arrays["entity_id"]):
        return
    t = TrustScore.__table__
    if _pg(session) and len(arrays["entity_id"]) > 2000:
        await _copy_scores(session, kind, arrays, now)
        return
    rows = _score_rows(kind, arrays, now)
    stmt = _insert(session)(t)
    keep = {c.name: stmt.excluded[c.name] for c in t.c if c.name not in ("entity_type", "entity_id")}
    stmt = stmt.on_conflict_do_update(index_elements=[t.c.entity_type, t.c.entity_id], set_=keep)
    await session.execute(stmt, rows)


async def _copy_scores(
    session: AsyncSession, kind: str, arrays: dict[str, np.ndarray], now: dt.datetime
) -> None:
    """Many rows: COPY them into a temporary table in binary, then one upsert from it."""
    cols = ", ".join(f"{n} int8 NOT NULL" for n in SCORE_FIELDS)
    await session.execute(
        text(f"CREATE TEMPORARY TABLE IF NOT EXISTS trust_scores_in ({cols}) ON COMMIT DELETE ROWS")
    )
    await session.execute(text("TRUNCATE trust_scores_in"))
    raw = await _driver(session)
    await raw.copy_to_table(
        "trust_scores_in", source=io.BytesIO(_build_binary(arrays, SCORE_FIELDS)), columns=list(SCORE_FIELDS),
        format="binary",
    )  # fmt: skip
    target = ["entity_type", "entity_id", "category_id", "score_c", *(f"{d}_c" for d in DIMENSIONS), *COUNTS,
              "flash_sale_restricted", "computed_at", "as_of_ts"]  # fmt: skip
    source = ["CAST(:kind AS varchar)", "entity_id", "category_id",
              *(f"nullif({n}, -1)" for n in ("score_c", *(f"{d}_c" for d in DIMENSIONS))),
              *COUNTS, "restricted <> 0", "CAST(:now AS timestamptz)", "as_of_ts"]  # fmt: skip
    updates = ", ".join(f"{n} = excluded.{n}" for n in target[2:])
    await session.execute(
        text(
            f"INSERT INTO trust_scores ({', '.join(target)}) SELECT {', '.join(source)} FROM trust_scores_in "
            f"ON CONFLICT (entity_type, entity_id) DO UPDATE SET {updates}"
        ),
        {"kind": kind, "now": now},
    )


async def write_history(
    session: AsyncSession, kind: str, day: dt.date, arrays: dict[str, np.ndarray]
) -> None:
    """Today's history rows for these entities (their score changed today)."""
    if not len(arrays["entity_id"]):
        return
    names = ("entity_id", "score_c", *(f"{d}_c" for d in DIMENSIONS))
    lists = {n: arrays[n].tolist() for n in names}
    rows = [
        {"entity_type": kind, "day": day,
         **{n: (lists[n][i] if n == "entity_id" or lists[n][i] >= 0 else None) for n in names}}
        for i in range(len(lists["entity_id"]))
    ]  # fmt: skip
    t = TrustScoreHistory.__table__
    stmt = _insert(session)(t)
    stmt = stmt.on_conflict_do_update(
        index_elements=[t.c.entity_type, t.c.entity_id, t.c.day],
        set_={n: stmt.excluded[n] for n in names if n != "entity_id"},
    )
    for i in range(0, len(rows), 5000):
        await session.execute(stmt, rows[i : i + 5000])


async def get_score(session: AsyncSession, kind: str, entity_id: int) -> TrustScore | None:
    return await session.get(TrustScore, (kind, entity_id))


async def get_scores(session: AsyncSession, kind: str, ids: Sequence[int]) -> list[TrustScore]:
    if not ids:
        return []
    c = TrustScore.__table__.c
    stmt = select(TrustScore).where(
        c.entity_type == kind, in_param(c.entity_id, "ids", session.bind.dialect.name)
    )
    return list((await session.scalars(stmt, {"ids": list(ids)})).all())


async def score_cs(session: AsyncSession, kind: str, ids: Sequence[int]) -> dict[int, float]:
    """Entity id -> its consumer score (score_c), for those scored (the feed's trust tilt of a page
    of candidates: read-only rows, one statement prepared once)."""
    if not ids:
        return {}
    conn = await session.connection()
    rows = await conn.execute(
        _score_cs_statement(session.bind.dialect.name), {"kind": kind, "ids": list(ids)}
    )
    return {entity_id: score_c for entity_id, score_c in rows}


@functools.cache
def _score_cs_statement(dialect: str):  # type: ignore[no-untyped-def]
    c = TrustScore.__table__.c
    return select(c.entity_id, c.score_c).where(
        c.entity_type == bindparam("kind"), in_param(c.entity_id, "ids", dialect)
    )


async def history(session: AsyncSession, kind: str, entity_id: int, since: dt.date) -> tuple[Any, list[Any]]:
    """The last row before ``since`` (the value carried into the period) and the rows from it."""
    c = TrustScoreHistory.__table__.c
    key = and_(c.entity_type == kind, c.entity_id == entity_id)
    before = (
        await session.execute(
            select(c.day, c.score_c).where(key, c.day < since).order_by(c.day.desc()).limit(1)
        )
    ).first()
    rows = (await session.execute(select(c.day, c.score_c).where(key, c.day >= since).order_by(c.day))).all()
    return before, list(rows)


def indicator_filter(key: str, now_ts: int, threshold: float) -> tuple[Any, Any]:
    """(the lines an indicator is computed over, the ones among them counting against it), as
    the same conditions ``scoring.aggregate`` applies (``threshold``: hours above which a line
    counts against an hours indicator)."""
    f = TrustFact
    s7, s30, s60 = (now_ts - d * 86_400 for d in (7, 30, 60))
    owed = or_(f.shipped_ts > 0, and_(f.ship_by_ts > 0, f.ship_by_ts < now_ts,
                                      ~and_(f.closed_ts > 0, f.closed_ts <= f.ship_by_ts)))  # fmt: skip
    on_time = and_(f.shipped_ts > 0, f.shipped_ts <= f.ship_by_ts)
    d30, d60 = f.delivered_ts >= s30, f.delivered_ts >= s60
    seconds = int(threshold * 3600)
    return {
        "negative_review_rate": (d60, f.rating_product.between(1, 2)),
        "quality_refund_rate": (or_(d60, f.quality_refund_ts >= s60), f.quality_refund_ts >= s60),
        "inspection_failure_rate": (f.inspected_ts >= s60, f.inspection_failed > 0),
        "on_time_shipping_rate": (and_(owed, f.paid_ts >= s30), ~on_time),
        "delivery_hours": (d30, f.delivered_ts - f.paid_ts > seconds),
        "handling_hours": (f.aftersales_ts >= s30, f.aftersales_s > seconds),
        "dispute_rate": (or_(d30, f.dispute_lost_ts >= s30), f.dispute_lost_ts >= s30),
        "service_rating": (and_(d30, f.rating_service > 0), f.rating_service <= 3),
        "false_claim_rate": (or_(d60, f.false_claim_ts >= s60), f.false_claim_ts >= s60),
        "late_shipping_7": (and_(owed, f.paid_ts >= s7), ~on_time),
    }[key]


async def entity_lines(
    session: AsyncSession,
    kind: str,
    entity_id: int,
    conditions: Sequence[Any],
    before: int | None,
    limit: int,
) -> list[TrustFact]:
    """One entity's facts meeting ``conditions``, newest line first (cursor: line id)."""
    t = TrustFact
    stmt = select(t).where(getattr(t, _ENTITY_COLUMN[kind]) == entity_id, *conditions)
    if before is not None:
        stmt = stmt.where(t.line_id < before)
    stmt = stmt.order_by(t.line_id.desc()).limit(limit)
    return list((await session.scalars(stmt)).all())


# --- complaints -------------------------------------------------------------------------------


async def complaint_of_line(session: AsyncSession, line_id: int) -> Complaint | None:
    """The complaint filed on an order line, if any (read afresh: a twin may have just committed)."""
    stmt = (
        select(Complaint).where(Complaint.order_line_id == line_id).execution_options(populate_existing=True)
    )
    return await session.scalar(stmt)


async def get_complaint(session: AsyncSession, complaint_id: int) -> Complaint | None:
    stmt = select(Complaint).where(Complaint.id == complaint_id).execution_options(populate_existing=True)
    return await session.scalar(stmt)


async def list_complaints(
    session: AsyncSession, *, status: str | None, buyer_id: int | None, before_id: int | None, limit: int
) -> list[Complaint]:
    """Newest first: all of them (ops; ``ix_trust_complaints_status`` serves a status filter) or
    one buyer's."""
    stmt = select(Complaint).order_by(Complaint.id.desc()).limit(limit)
    if status is not None:
        stmt = stmt.where(Complaint.status == status)
    if buyer_id is not None:
        stmt = stmt.where(Complaint.buyer_id == buyer_id)
    if before_id is not None:
        stmt = stmt.where(Complaint.id < before_id)
    return list((await session.scalars(stmt)).all())


async def decide_complaint(
    session: AsyncSession, complaint_id: int, status: str, note: str, by_id: int, at: dt.datetime
) -> bool:
    """Pending → ``status``, in one conditional UPDATE: of two deciders racing, one changes the row
    and the other finds it decided (False)."""
    result = await session.execute(
        update(Complaint)
        .where(Complaint.id == complaint_id, Complaint.status == ComplaintStatus.pending)
        .values(status=status, decision_note=note, decided_by_id=by_id, decided_at=at)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


async def upheld_complaints(session: AsyncSession, order_ids: Sequence[int]) -> dict[int, dt.datetime]:
    """Order line id -> when its complaint was upheld, for the upheld complaints of these orders."""
    if not order_ids:
        return {}
    c = Complaint.__table__.c
    stmt = select(c.order_line_id, c.decided_at).where(
        in_param(c.order_id, "ids", session.bind.dialect.name), c.status == ComplaintStatus.upheld
    )
    rows = (await session.execute(stmt, {"ids": sorted(set(order_ids))})).all()
    return {r.order_line_id: r.decided_at for r in rows if r.decided_at is not None}


# ---- end of complaints (helper B) ----


# --- full recomputes --------------------------------------------------------------------------


async def claim_recompute(session: AsyncSession, day: dt.date, now: dt.datetime) -> bool:
    """Claim ``day``'s full recompute; False when a run already claimed it."""
    t = TrustRecompute.__table__
    stmt = _insert(session)(t).values(day=day, started_at=now, entities=0).on_conflict_do_nothing()
    return bool((await session.execute(stmt)).rowcount)


async def finish_recompute(session: AsyncSession, day: dt.date, now: dt.datetime, entities: int) -> None:
    t = TrustRecompute.__table__
    await session.execute(t.update().where(t.c.day == day).values(finished_at=now, entities=entities))


async def last_recompute(session: AsyncSession) -> TrustRecompute | None:
    stmt = select(TrustRecompute).order_by(TrustRecompute.day.desc()).limit(1)
    return (await session.scalars(stmt)).first()
