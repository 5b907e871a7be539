"""Alembic environment: async engine, one metadata for every domain."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from trustlive.config import load_settings
from trustlive.db import create_engine
from trustlive.models import metadata

config = context.config
target_metadata = metadata


def _url() -> str:
    return config.attributes.get("database_url") or load_settings().database_url


def _include(obj, name, type_, reflected, compare_to):  # type: ignore[no-untyped-def]
    # The full-text index (FTS5 and its shadow tables, or the tsvector table) is managed by hand.
    return not (type_ == "table" and name and name.startswith("product_search"))


def _run(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # SQLite rebuilds a table to change its constraints (batch mode: copy, drop, rename), and
        # with foreign keys on, dropping a table that other rows refer to fails. SQLite's own
        # procedure for schema changes: keys off outside the transaction, check them before commit.
        _pragma(connection, "PRAGMA foreign_keys=OFF")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=sqlite,
        compare_type=True,
        include_object=_include,
    )
    try:
        with context.begin_transaction():
            context.run_migrations()
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"the migration left rows with broken foreign keys: {broken[:5]}")
    finally:
        if sqlite:
            _pragma(connection, "PRAGMA foreign_keys=ON")


def _pragma(connection: Connection, sql: str) -> None:
    """Run a PRAGMA on the driver's connection, outside any transaction (where SQLite ignores
    foreign_keys), without SQLAlchemy beginning one."""
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql)
    finally:
        cursor.close()


async def _run_async() -> None:
    engine = create_engine(_url())
    async with engine.connect() as connection:
        await connection.run_sync(_run)
        await connection.commit()
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_async())
