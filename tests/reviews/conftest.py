"""An HTTP world for the review routes and pages: merchant1's shop with a published bodysuit,
buyers with addresses, and orders taken to completion through the API (paid through the orders
service: money is not what these tests are about)."""

from __future__ import annotations

import uuid

import pytest
from litestar.testing import TestClient

from tests.helpers import add_category, create_user, kids_garment, open_shop, run, token_for
from trustlive.config import Settings
from trustlive.db import create_engine, create_sessionmaker, transaction
from trustlive.orders import service as orders

ADDRESS = {
    "recipient": "王芳",
    "phone": "13800000000",
    "region": "浙江省杭州市西湖区",
    "detail": "文三路 1 号",
}


async def _mark_paid(url: str, order_id: int, amount: int) -> str:
    engine = create_engine(url)
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            return await orders.mark_paid(session, order_id, amount, f"test-payment-{order_id}")
    finally:
        await engine.dispose()


@pytest.fixture
def shop(client: TestClient, users: dict[str, dict[str, str]], settings: Settings) -> dict:
    kids = add_category(client, users["ops1"], "kids", "童装")
    shop = open_shop(client, users["merchant1"], "小小童装")
    product = client.post(
        f"/api/v1/shops/{shop['id']}/products", json=kids_garment(kids["id"]), headers=users["merchant1"]
    ).json()
    published = client.post(f"/api/v1/products/{product['id']}/publish", headers=users["merchant1"])
    assert published.status_code == 200, published.text
    create_user(settings.database_url, "buyer2", "buyer")
    create_user(settings.database_url, "staff1", "buyer")
    headers = {**users, "buyer2": token_for(client, "buyer2"), "staff1": token_for(client, "staff1")}
    staff = client.post(
        f"/api/v1/shops/{shop['id']}/staff", json={"username": "staff1"}, headers=users["merchant1"]
    )
    assert staff.status_code == 201, staff.text
    addresses = {}
    for name in ("buyer1", "buyer2"):
        made = client.post("/api/v1/me/addresses", json=ADDRESS, headers=headers[name])
        assert made.status_code == 201, made.text
        addresses[name] = made.json()["id"]
    return {
        "headers": headers,
        "shop": shop,
        "product": product,
        "addresses": addresses,
        "settings": settings,
    }


def order_to(
    client: TestClient, shop: dict, buyer: str, status: str = "completed", sku_index: int = 0
) -> dict:
    """A new order of ``buyer`` moved to ``status`` (paid, shipped, delivered or completed)."""
    h = shop["headers"]
    sku = shop["product"]["skus"][sku_index]
    placed = client.post(
        "/api/v1/orders",
        json={"items": [{"sku_id": sku["id"], "quantity": 1}], "address_id": shop["addresses"][buyer]},
        headers={**h[buyer], "Idempotency-Key": uuid.uuid4().hex},
    )
    assert placed.status_code == 201, placed.text
    order = placed.json()
    assert run(_mark_paid(shop["settings"].database_url, order["id"], order["total_fen"])) == "paid"
    steps = [
        ("shipped", f"/api/v1/orders/{order['id']}/ship", "merchant1", {"carrier": "SF", "tracking_no": f"SF{order['id']:08d}"}),
        ("delivered", f"/api/v1/orders/{order['id']}/delivered", "merchant1", None),
        ("completed", f"/api/v1/orders/{order['id']}/confirm-receipt", buyer, None),
    ]  # fmt: skip
    for reached, path, actor, body in steps:
        if status == "paid":
            break
        response = (
            client.post(path, json=body, headers=h[actor]) if body else client.post(path, headers=h[actor])
        )
        assert response.status_code == 200, response.text
        if reached == status:
            break
    detail = client.get(f"/api/v1/orders/{order['id']}", headers=h[buyer]).json()
    assert detail["status"] == status
    return detail
