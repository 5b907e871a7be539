"""Migrations build exactly the schema the models describe, and run down and up again."""

from __future__ import annotations

import asyncio

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from trustlive import migrate
from trustlive.db import create_engine
from trustlive.models import metadata


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
