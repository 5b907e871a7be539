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
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_object=_include,
    )
    with context.begin_transaction():
        context.run_migrations()


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
