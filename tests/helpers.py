"""Test helpers shared across domains (fixtures live in conftest.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from litestar.testing import TestClient

from trustlive.accounts import service as accounts
from trustlive.config import Settings
from trustlive.db import create_engine, create_sessionmaker, transaction

PASSWORD = "correct-horse-9"


def make_settings(database_url: str, tmp_path: Path, **overrides: object) -> Settings:
    base = Settings(
        database_url=database_url,
        redis_url=None,
        secret_key="test-secret-key-" + "x" * 32,
        var_dir=tmp_path,
        media_dir=tmp_path / "media",
        cookie_secure="false",
    )
    return base.with_overrides(**overrides) if overrides else base


def run(coro):  # type: ignore[no-untyped-def]
    """Run a coroutine from a synchronous test (the app's loop lives in the client's thread)."""
    return asyncio.run(coro)


async def _create_user(url: str, username: str, roles: tuple[str, ...], password: str) -> int:
    engine = create_engine(url)
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            user = await accounts.create_user(
                session, username=username, password=password, display_name=username.title(), roles=roles
            )
            return user.id
    finally:
        await engine.dispose()


def create_user(url: str, username: str, *roles: str, password: str = PASSWORD) -> int:
    """Create an account straight through the service (ops and other staff roles included)."""
    return run(_create_user(url, username, roles, password))


def token_for(client: TestClient, username: str, password: str = PASSWORD) -> dict[str, str]:
    response = client.post("/api/v1/auth/token", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}
