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
        task_interval_seconds=0,  # tests run the sweepers themselves, at the moments they choose
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


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (64, 48)) -> bytes:
    """A real, small image made with Pillow."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, (200, 170, 120)).save(buf, format=fmt)
    return buf.getvalue()


def open_shop(client: TestClient, headers: dict[str, str], name: str = "和田玉坊") -> dict:
    response = client.post("/api/v1/shops", json={"name": name, "description": "新疆和田玉"}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def add_category(client: TestClient, ops: dict[str, str], slug: str, name_zh: str, **policy: object) -> dict:
    body = {"slug": slug, "name_zh": name_zh, "name_en": slug.title(), **policy}
    response = client.post("/api/v1/categories", json=body, headers=ops)
    assert response.status_code == 201, response.text
    return response.json()


def kids_garment(category_id: int) -> dict:
    """A kids' bodysuit: two options, Size x Colour, six SKUs."""
    sizes, colours = ["73", "80", "90"], ["米白", "浅粉"]
    return {
        "title": "儿童纯棉连体衣",
        "category_id": category_id,
        "description": "A类纯棉，婴儿可穿",
        "options": [{"name": "尺码", "values": sizes}, {"name": "颜色", "values": colours}],
        "skus": [
            {"option_values": [s, c], "price_fen": 5900 + 1000 * i, "stock": 20}
            for i, s in enumerate(sizes)
            for c in colours
        ],
    }
