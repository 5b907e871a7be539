"""Database engine, sessions and the declarative base shared by every domain.

SQLite (WAL) is the embedded default; PostgreSQL is used in production. Both run the same
migrations. Services receive an ``AsyncSession`` and never commit: the request or task boundary
owns the transaction (see ``transaction``).
"""

from __future__ import annotations

import datetime as dt
import functools
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec
from sqlalchemy import (
    BigInteger,
    DateTime,
    Integer,
    MetaData,
    Table,
    TextClause,
    any_,
    bindparam,
    event,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# BIGINT primary keys on PostgreSQL; SQLite needs plain INTEGER for rowid aliasing.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def in_param(column: Any, name: str, dialect: str) -> Any:
    """``column IN :name`` in a form the database prepares once whatever the list's length: an
    array compared with ``= ANY`` on PostgreSQL (an expanded IN would be a new statement, parsed
    and planned anew, for every length), an expanding IN on SQLite. For statements built once
    per dialect and run with a list bound to ``name``."""
    if dialect == "postgresql":
        return column == any_(bindparam(name, type_=ARRAY(column.type)))
    return column.in_(bindparam(name, expanding=True))


async def insert_rows(
    session: AsyncSession, *parts: tuple[Table, list[dict[str, Any]]], suffix: str = ""
) -> Any:
    """Insert rows into one or more tables in ONE statement. In each part the rows carry the same
    keys and every value a column needs: on PostgreSQL absent columns are NULL (column defaults
    are not applied) and values bypass column types such as UTCDateTime (datetimes must be aware).

    On PostgreSQL each part travels as one JSON array expanded by ``json_populate_recordset``:
    one prepared statement and one executor run for any number of rows, where executemany costs a
    round of the protocol per row. Parts before the last go in data-modifying CTEs, so parents and
    their children can be inserted together (foreign keys are checked at the statement's end).
    ``suffix`` (PostgreSQL only) closes the last part, e.g. ``ON CONFLICT ... RETURNING ...``.
    On SQLite, one executemany per part. Returns the last part's result."""
    parts = tuple((table, rows) for table, rows in parts if rows)
    if not parts:
        return None
    conn = await session.connection()  # Core: no unit of work, no ORM rows
    if session.bind.dialect.name == "postgresql":
        shape = tuple((table.name, tuple(rows[0])) for table, rows in parts)
        params = {f"rows{i}": msgspec.json.encode(rows).decode() for i, (_, rows) in enumerate(parts)}
        return await conn.execute(_json_insert(shape, suffix), params)
    if suffix:
        raise ValueError("insert_rows: a suffix is for PostgreSQL only")
    result = None
    for table, rows in parts:
        result = await conn.execute(table.insert(), rows)
    return result


@functools.cache
def _json_insert(shape: tuple[tuple[str, tuple[str, ...]], ...], suffix: str) -> TextClause:
    inserts = []
    for i, (table, columns) in enumerate(shape):
        names = ", ".join(columns)  # our own table and column names, never user input
        inserts.append(
            f"INSERT INTO {table} ({names}) SELECT {names} "
            f"FROM json_populate_recordset(NULL::{table}, CAST(:rows{i} AS json))"
        )
    ctes = ", ".join(f"part{i} AS ({sql})" for i, sql in enumerate(inserts[:-1]))
    return text(f"{'WITH ' + ctes + ' ' if ctes else ''}{inserts[-1]} {suffix}")


async def add_once(
    session: AsyncSession, row: Any, existing: Callable[[], Awaitable[Any | None]]
) -> Any | None:
    """Insert ``row`` in a savepoint and return None; or, when a unique constraint refuses it
    because the same record is there already (a retried request, a webhook event seen before, a
    concurrent twin that committed first), add nothing and return that record, as ``existing()``
    finds it. Any other integrity error is raised."""
    try:
        async with session.begin_nested():
            session.add(row)
            await session.flush()
    except IntegrityError:
        if (found := await existing()) is None:
            raise
        return found
    return None


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Aware UTC datetimes on every backend (SQLite stores them naive, as UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class TimestampMixin:
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False
    )


def create_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, echo=echo, connect_args={"timeout": 30})
        _configure_sqlite(engine)
        return engine
    # A steady pool: connections opened beyond pool_size are closed on return, and opening one
    # (TLS negotiation, authentication) costs more than most requests; no pre-ping round trip on
    # every checkout either: stale connections are recycled and the rare failure surfaces as a retry.
    # No overflow: under a burst, requests wait a moment for a pooled connection instead of each
    # opening and closing one of their own.
    pool_size = int(os.environ.get("TRUSTLIVE_DB_POOL_SIZE", "20"))
    return create_async_engine(
        url, echo=echo, pool_size=pool_size, max_overflow=0, pool_recycle=1800, pool_timeout=30
    )


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        # Let SQLAlchemy issue BEGIN itself so that "BEGIN IMMEDIATE" below is honoured.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn):  # type: ignore[no-untyped-def]
        # IMMEDIATE takes the write lock up front: concurrent writers queue on busy_timeout
        # instead of failing with "database is locked" when a read transaction upgrades.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


def create_read_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions for single-statement reads on the hot path (who is asking): autocommit, so no
    BEGIN/COMMIT round trips and, on SQLite, no write lock taken for a lookup."""
    return async_sessionmaker(engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False)


@asynccontextmanager
async def transaction(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One unit of work: commit on success, roll back on any exception."""
    async with sessionmaker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


# --- files that belong to a transaction -------------------------------------------------------

_FILES_KEY = "trustlive_files_written"


def delete_on_rollback(session: AsyncSession | Session, path: Path) -> None:
    """Remove ``path`` if the transaction that wrote it rolls back, so an upload refused later in
    the same request (or a failed commit) leaves no orphan file behind."""
    session.info.setdefault(_FILES_KEY, []).append(path)


@event.listens_for(Session, "after_commit")
def _keep_files(session: Session) -> None:
    session.info.pop(_FILES_KEY, None)


@event.listens_for(Session, "after_rollback")
def _remove_files(session: Session) -> None:
    for path in session.info.pop(_FILES_KEY, []):
        path.unlink(missing_ok=True)
