"""An HTTP world for the video routes and pages: merchant1's shop with a published bodysuit and
creator1 on its staff (so it is creator1's own product), merchant2's shop with a published
product (an alliance product for creator1), a second creator, and a buyer with an address. Video
uploads are limited to 64 KiB here, images to 256 KiB."""

from __future__ import annotations

from pathlib import Path

import pytest
from litestar.testing import TestClient

from tests.helpers import (
    add_category,
    create_user,
    image_bytes,
    kids_garment,
    make_settings,
    open_shop,
    token_for,
)
from tests.reviews.conftest import ADDRESS
from trustlive.config import Settings

MAX_VIDEO = 64 * 1024
MAX_IMAGE = 256 * 1024


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return make_settings(db_url, tmp_path, max_video_bytes=MAX_VIDEO, max_upload_bytes=MAX_IMAGE)


def publish(client: TestClient, headers: dict[str, str], shop_id: int, body: dict) -> dict:
    product = client.post(f"/api/v1/shops/{shop_id}/products", json=body, headers=headers)
    assert product.status_code == 201, product.text
    published = client.post(f"/api/v1/products/{product.json()['id']}/publish", headers=headers)
    assert published.status_code == 200, published.text
    return published.json()


@pytest.fixture
def world(client: TestClient, users: dict[str, dict[str, str]], settings: Settings) -> dict:
    kids = add_category(client, users["ops1"], "kids", "童装")
    shop = open_shop(client, users["merchant1"], "小小童装")
    own = publish(client, users["merchant1"], shop["id"], kids_garment(kids["id"]))
    other_shop = open_shop(client, users["merchant2"], "和田玉坊")
    alliance = publish(client, users["merchant2"], other_shop["id"], {
        "title": "和田玉手镯", "category_id": kids["id"], "skus": [{"price_fen": 128000, "stock": 3}]})  # fmt: skip
    staff = client.post(
        f"/api/v1/shops/{shop['id']}/staff", json={"username": "creator1"}, headers=users["merchant1"]
    )
    assert staff.status_code == 201, staff.text
    create_user(settings.database_url, "creator2", "creator")
    headers = {**users, "creator2": token_for(client, "creator2")}
    address = client.post("/api/v1/me/addresses", json=ADDRESS, headers=users["buyer1"])
    assert address.status_code == 201, address.text
    me = {name: client.get("/api/v1/me", headers=h).json()["id"] for name, h in headers.items()}
    return {"headers": headers, "ids": me, "shop": shop, "own": own, "alliance": alliance,
            "address_id": address.json()["id"], "settings": settings}  # fmt: skip


def cover_file(name: str = "cover.png") -> tuple[str, tuple[str, bytes, str]]:
    return ("cover", (name, image_bytes("PNG", (90, 160)), "image/png"))


def video_file(
    data: bytes, name: str = "clip.mp4", content_type: str = "video/mp4"
) -> tuple[str, tuple[str, bytes, str]]:
    return ("video", (name, data, content_type))
