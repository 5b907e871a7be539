"""An HTTP world for the follow routes and pages: creator1, merchant1's shop (with staff1),
merchant2's shop, and buyers, each with bearer headers; ids read back through the API."""

from __future__ import annotations

import pytest
from litestar.testing import TestClient

from tests.helpers import create_user, open_shop, token_for
from trustlive.config import Settings


@pytest.fixture
def people(client: TestClient, users: dict[str, dict[str, str]], settings: Settings) -> dict:
    create_user(settings.database_url, "buyer2", "buyer")
    create_user(settings.database_url, "staff1", "buyer")
    headers = {**users, "buyer2": token_for(client, "buyer2"), "staff1": token_for(client, "staff1")}
    shop = open_shop(client, users["merchant1"], "小小童装")
    other = open_shop(client, users["merchant2"], "和田玉坊")
    staff = client.post(
        f"/api/v1/shops/{shop['id']}/staff", json={"username": "staff1"}, headers=users["merchant1"]
    )
    assert staff.status_code == 201, staff.text
    ids = {name: client.get("/api/v1/me", headers=h).json()["id"] for name, h in headers.items()}
    return {"headers": headers, "ids": ids, "shop": shop, "other_shop": other, "settings": settings}
