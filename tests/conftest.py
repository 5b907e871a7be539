"""Shared fixtures: every test that takes ``client`` or ``db_url`` runs on SQLite and on PostgreSQL.

PostgreSQL and Redis tests need the servers named by TRUSTLIVE_TEST_POSTGRES_URL and
TRUSTLIVE_TEST_REDIS_URL (defaults: the local ones). When a server is missing those tests are
skipped with a reason in the summary, unless TRUSTLIVE_TEST_REQUIRE_SERVICES=1 (CI), which turns
the skip into a failure.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

# Real argon2id, at a lower cost so that hundreds of test sign-ins stay fast (set before import).
os.environ.setdefault("TRUSTLIVE_ARGON2_TIME_COST", "1")
os.environ.setdefault("TRUSTLIVE_ARGON2_MEMORY_KIB", "8192")
os.environ.setdefault("TRUSTLIVE_ARGON2_PARALLELISM", "1")
from litestar.testing import TestClient
from sqlalchemy import text
from typer.testing import CliRunner

from tests.helpers import create_user, make_settings, token_for
from trustlive import migrate
from trustlive.app import create_app
from trustlive.cli import app as cli_app
from trustlive.config import Settings, normalise_database_url
from trustlive.db import create_engine
from trustlive.models import metadata

REQUIRE_SERVICES = os.environ.get("TRUSTLIVE_TEST_REQUIRE_SERVICES") == "1"
PG_URL = os.environ.get("TRUSTLIVE_TEST_POSTGRES_URL", "postgresql://root@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TRUSTLIVE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=2):
            return True
    except OSError:
        return False


def _missing(service: str, url: str) -> None:
    message = f"{service} not reachable at {url} (set TRUSTLIVE_TEST_{service.upper()}_URL)"
    if REQUIRE_SERVICES:
        pytest.fail(f"{message}; TRUSTLIVE_TEST_REQUIRE_SERVICES=1 makes this a failure", pytrace=False)
    pytest.skip(message)


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


async def _pg_admin(sql: str) -> None:
    import asyncpg

    dsn = PG_URL.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _pg_database_url(name: str) -> str:
    parts = urlsplit(PG_URL)
    return normalise_database_url(parts._replace(path=f"/{name}").geturl())


@pytest.fixture(scope="session")
def sqlite_schema(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("db") / "trustlive.db"
    url = f"sqlite+aiosqlite:///{path}"
    migrate.upgrade(url)
    return url


@pytest.fixture(scope="session")
def postgres_schema() -> Iterator[str]:
    if not _reachable(PG_URL, 5432):
        _missing("postgres", PG_URL)
    name = f"trustlive_test_{_worker()}_{uuid.uuid4().hex[:6]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    url = _pg_database_url(name)
    try:
        migrate.upgrade(url)
        yield url
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _wipe(url: str) -> None:
    """Empty every table so each test starts from nothing (faster than re-migrating)."""
    engine = create_engine(url)
    tables = [t.name for t in reversed(metadata.sorted_tables)]
    try:
        async with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                await conn.execute(
                    text(f"TRUNCATE {', '.join(tables)}, product_search RESTART IDENTITY CASCADE")
                )
            else:
                for name in [*tables, "product_search"]:
                    await conn.execute(text(f"DELETE FROM {name}"))
    finally:
        await engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """A migrated, empty database: SQLite and PostgreSQL in turn."""
    url = request.getfixturevalue("sqlite_schema" if request.param == "sqlite" else "postgres_schema")
    asyncio.run(_wipe(url))
    return url


@pytest.fixture
def sqlite_url(sqlite_schema: str) -> str:
    """SQLite only, for tests whose subject is not the database (browser, CLI)."""
    asyncio.run(_wipe(sqlite_schema))
    return sqlite_schema


@pytest.fixture
def redis_url() -> Iterator[str]:
    if not _reachable(REDIS_URL, 6379):
        _missing("redis", REDIS_URL)
    from redis import Redis

    client = Redis.from_url(REDIS_URL)
    client.flushdb()
    yield REDIS_URL
    client.flushdb()
    client.close()


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return make_settings(db_url, tmp_path)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def users(client: TestClient, settings: Settings) -> dict[str, dict[str, str]]:
    """One signed-in account per role, as bearer headers, plus two merchants and a buyer."""
    url = settings.database_url
    create_user(url, "buyer1", "buyer")
    create_user(url, "merchant1", "merchant")
    create_user(url, "merchant2", "merchant")
    create_user(url, "ops1", "ops")
    create_user(url, "creator1", "creator")
    return {
        name: token_for(client, name) for name in ("buyer1", "merchant1", "merchant2", "ops1", "creator1")
    }


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # type: ignore[no-untyped-def]
    """Say plainly which database/Redis/browser tests did not run and why."""
    skipped = terminalreporter.stats.get("skipped", [])
    reasons: dict[str, int] = {}
    for report in skipped:
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        reason = reason.removeprefix("Skipped: ")
        if any(word in reason for word in ("postgres", "redis", "chromium")):
            reasons[reason] = reasons.get(reason, 0) + 1
    if reasons:
        terminalreporter.section("services not available: these tests were skipped")
        for reason, count in sorted(reasons.items()):
            terminalreporter.write_line(f"{count:4d} skipped: {reason}")


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[CliRunner, str]:
    """The command line against a migrated SQLite file of its own: the runner and the file's URL."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'trustlive.db'}"
    monkeypatch.setenv("TRUSTLIVE_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("TRUSTLIVE_DATABASE_URL", url)
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()
    assert runner.invoke(cli_app, ["migrate"]).exit_code == 0
    return runner, url
