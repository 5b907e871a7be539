"""Values no row can have or no column can hold are refused with a 4xx, never a 500, on SQLite and
PostgreSQL: ids past 64 bits (in the path, the query or a body) and NUL characters in text."""

from __future__ import annotations

from litestar.testing import TestClient
from sqlalchemy import func, select

from tests.helpers import add_category, kids_garment, open_shop, run
from tests.web.test_pages import sign_in
from trustlive.catalog.models import Product
from trustlive.config import Settings
from trustlive.db import create_engine, create_sessionmaker, transaction

HUGE = 2**63 + 5


async def _products(url: str) -> int:
    engine = create_engine(url)
    try:
        async with transaction(create_sessionmaker(engine)) as s:
            return await s.scalar(select(func.count()).select_from(Product)) or 0
    finally:
        await engine.dispose()


def test_ids_past_64_bits_are_not_found(client: TestClient, users: dict[str, dict[str, str]]) -> None:
    for path in (f"/api/v1/orders/{HUGE}", f"/api/v1/products/{HUGE}", f"/api/v1/aftersales/{HUGE}",
                 f"/api/v1/care/cases/{HUGE}", f"/api/v1/products/{HUGE}/reviews", f"/p/{HUGE}"):  # fmt: skip
        response = client.get(path, headers=users["ops1"])
        assert response.status_code == 404, (path, response.text)
    # In a query string or a body they reach the service: refused as bad input, nothing changes.
    listed = client.get(f"/api/v1/shops/1/orders?cursor={HUGE}", headers=users["merchant1"])
    assert 400 <= listed.status_code < 500
    opened = client.post(
        "/api/v1/care/cases", json={"risk_summary": "x", "buyer_id": HUGE}, headers=users["ops1"]
    )
    assert 400 <= opened.status_code < 500, opened.text


def test_nul_characters_are_refused_or_dropped(
    client: TestClient, users: dict[str, dict[str, str]], settings: Settings
) -> None:
    kids = add_category(client, users["ops1"], "kids", "童装")
    shop = open_shop(client, users["merchant1"])
    body = {**kids_garment(kids["id"]), "title": "连体衣\u0000"}
    refused = client.post(f"/api/v1/shops/{shop['id']}/products", json=body, headers=users["merchant1"])
    assert refused.status_code == 422 and refused.json()["error"]["fields"][0]["field"] == "title"
    assert run(_products(settings.database_url)) == 0
    # A form cannot smuggle one in either: it is dropped from what was typed.
    token = sign_in(client, "merchant1")
    page = client.post(
        "/console/shipping", data={"shop_id": str(shop["id"]), "flat_fee": "8\u0000", "free_over": "",
                                   "_csrf_token": token}, follow_redirects=False,
    )  # fmt: skip
    assert page.status_code == 303
    assert client.get(f"/api/v1/shops/{shop['id']}/terms").json()["flat_fee_fen"] == 800
