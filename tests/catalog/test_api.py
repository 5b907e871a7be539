"""Shops, categories, products and SKUs over the JSON API, with every kind of bad input."""

from __future__ import annotations

import pytest
from litestar.testing import TestClient

from tests.helpers import add_category, image_bytes, kids_garment, open_shop


@pytest.fixture
def world(client: TestClient, users: dict[str, dict[str, str]]) -> dict:
    ops = users["ops1"]
    kids = add_category(client, ops, "kids", "童装", service_fee_bp=300)
    jade = add_category(client, ops, "jade", "玉石翡翠", requires_inspection=True, service_fee_bp=500)
    shop = open_shop(client, users["merchant1"])
    return {"kids": kids, "jade": jade, "shop": shop, **users}


def _product_count(client: TestClient, shop_id: int, headers: dict[str, str]) -> int:
    url = f"/api/v1/shops/{shop_id}/products?include_unpublished=true&limit=100"
    response = client.get(url, headers=headers)
    assert response.status_code == 200
    return len(response.json()["items"])


def test_categories_are_ops_managed(client: TestClient, world: dict) -> None:
    body = {"slug": "custom", "name_zh": "定制", "name_en": "Custom-made", "return_window_days": 0}
    for who in ("buyer1", "merchant1", "creator1"):
        assert client.post("/api/v1/categories", json=body, headers=world[who]).status_code == 403
    created = client.post("/api/v1/categories", json=body, headers=world["ops1"])
    assert created.status_code == 201
    assert created.json()["return_window_days"] == 0 and created.json()["service_fee_bp"] == 500
    assert client.post("/api/v1/categories", json=body, headers=world["ops1"]).status_code == 409
    bad = [
        {**body, "slug": "Has Spaces"},
        {**body, "slug": "x2", "service_fee_bp": 20000},
        {**body, "slug": "x3", "return_window_days": -1},
        {**body, "slug": "x4", "parent_id": 99999},
    ]
    for payload in bad:
        response = client.post("/api/v1/categories", json=payload, headers=world["ops1"])
        assert 400 <= response.status_code < 500, payload
    slugs = [c["slug"] for c in client.get("/api/v1/categories").json()]
    assert slugs == ["kids", "jade", "custom"]
    patched = client.patch(
        f"/api/v1/categories/{world['jade']['id']}", json={"service_fee_bp": 600}, headers=world["ops1"]
    )
    assert patched.status_code == 200 and patched.json()["service_fee_bp"] == 600
    denied = client.patch(
        f"/api/v1/categories/{world['jade']['id']}", json={"service_fee_bp": 1}, headers=world["merchant1"]
    )
    assert denied.status_code == 403


def test_only_merchants_open_shops_and_only_one(client: TestClient, world: dict) -> None:
    for who in ("buyer1", "creator1"):
        response = client.post("/api/v1/shops", json={"name": "Not mine"}, headers=world[who])
        assert response.status_code == 403
    again = client.post("/api/v1/shops", json={"name": "Second"}, headers=world["merchant1"])
    assert again.status_code == 409
    taken = client.post("/api/v1/shops", json={"name": "和田玉坊"}, headers=world["merchant2"])
    assert taken.status_code == 409 and taken.json()["error"]["fields"][0]["field"] == "name"
    assert client.post("/api/v1/shops", json={"name": ""}, headers=world["merchant2"]).status_code == 422
    assert (
        client.post("/api/v1/shops", json={"name": "x" * 65}, headers=world["merchant2"]).status_code == 422
    )
    assert (
        client.post(
            "/api/v1/shops", json={"name": "Ok", "slug": "BAD SLUG"}, headers=world["merchant2"]
        ).status_code
        == 422
    )
    assert len(client.get("/api/v1/shops").json()["items"]) == 1


def test_nobody_touches_another_merchants_shop(client: TestClient, world: dict) -> None:
    shop_id = world["shop"]["id"]
    product = client.post(
        f"/api/v1/shops/{shop_id}/products",
        json=kids_garment(world["kids"]["id"]),
        headers=world["merchant1"],
    ).json()
    sku_id = product["skus"][0]["id"]
    open_shop(client, world["merchant2"], "竞争对手")
    for who in ("merchant2", "buyer1", "creator1", "ops1"):
        h = world[who]
        attempts = [
            client.patch(f"/api/v1/shops/{shop_id}", json={"name": "Hijacked"}, headers=h),
            client.post(
                f"/api/v1/shops/{shop_id}/products", json=kids_garment(world["kids"]["id"]), headers=h
            ),
            client.patch(f"/api/v1/products/{product['id']}", json={"title": "Hijacked"}, headers=h),
            client.patch(f"/api/v1/products/{product['id']}/skus/{sku_id}", json={"price_fen": 1}, headers=h),
            client.post(f"/api/v1/products/{product['id']}/publish", headers=h),
            client.post(f"/api/v1/shops/{shop_id}/staff", json={"username": "buyer1"}, headers=h),
            client.put(
                f"/api/v1/shops/{shop_id}/logo",
                files={"data": ("a.png", image_bytes(), "image/png")},
                headers=h,
            ),
        ]
        assert [r.status_code for r in attempts] == [403] * len(attempts), who
    detail = client.get(f"/api/v1/products/{product['id']}", headers=world["merchant1"]).json()
    assert detail["title"] == "儿童纯棉连体衣" and detail["status"] == "draft"
    assert detail["skus"][0]["price_fen"] == 5900
    assert client.get(f"/api/v1/shops/{shop_id}").json()["name"] == "和田玉坊"
    # Anonymous callers are asked to sign in, not told "forbidden".
    assert client.patch(f"/api/v1/shops/{shop_id}", json={"name": "x"}).status_code == 401


def test_product_with_two_options_and_sku_matrix(client: TestClient, world: dict) -> None:
    shop_id = world["shop"]["id"]
    response = client.post(
        f"/api/v1/shops/{shop_id}/products",
        json=kids_garment(world["kids"]["id"]),
        headers=world["merchant1"],
    )
    assert response.status_code == 201, response.text
    product = response.json()
    assert product["status"] == "draft"
    assert [o["name"] for o in product["options"]] == ["尺码", "颜色"]
    assert len(product["skus"]) == 6
    assert {tuple(s["option_values"]) for s in product["skus"]} == {
        (s, c) for s in ("73", "80", "90") for c in ("米白", "浅粉")
    }
    codes = [s["code"] for s in product["skus"]]
    assert len(set(codes)) == 6  # generated, unique within the shop
    assert product["return_window_days"] == 7 and product["requires_inspection"] is False


def test_mattress_left_and_right_firmness(client: TestClient, world: dict) -> None:
    firmness = ["软", "适中", "硬"]
    body = {
        "title": "立方体床垫 1.8米",
        "category_id": world["kids"]["id"],
        "options": [{"name": "左侧软硬", "values": firmness}, {"name": "右侧软硬", "values": firmness}],
        "skus": [
            {"option_values": [left, right], "price_fen": 599900, "stock": 5, "code": f"CUBE-{i}{j}"}
            for i, left in enumerate(firmness)
            for j, right in enumerate(firmness)
        ],
    }
    response = client.post(
        f"/api/v1/shops/{world['shop']['id']}/products", json=body, headers=world["merchant1"]
    )
    assert response.status_code == 201, response.text
    assert sorted(s["code"] for s in response.json()["skus"]) == sorted(
        f"CUBE-{i}{j}" for i in range(3) for j in range(3)
    )


@pytest.mark.parametrize(
    ("mutate", "status", "field"),
    [
        (lambda b: b["skus"][0].update(price_fen=-300), 422, "price_fen"),
        (lambda b: b["skus"][0].update(price_fen=0), 422, "price_fen"),
        (lambda b: b["skus"][0].update(price_fen=10**13), 422, "price_fen"),
        (lambda b: b["skus"][0].update(price_fen="59.00"), 422, "price_fen"),
        (lambda b: b["skus"][0].update(stock=-1), 422, "stock"),
        (lambda b: b["skus"][0].update(stock=10**9), 422, "stock"),
        (lambda b: b["skus"][0].update(stock="many"), 422, "stock"),
        (lambda b: b["skus"][1].update(option_values=["73", "米白"]), 422, "option_values"),
        (lambda b: b["skus"][0].update(option_values=["999", "米白"]), 422, "option_values"),
        (lambda b: b["skus"][0].update(option_values=["73"]), 422, "option_values"),
        (lambda b: [s.update(code="SAME-1") for s in b["skus"][:2]], 422, "code"),
        (lambda b: b["skus"][0].update(code="bad code!"), 422, "code"),
        (lambda b: b.update(title=""), 422, "title"),
        (lambda b: b.update(title="   "), 422, "title"),
        (lambda b: b.update(title="x" * 121), 422, "title"),
        (lambda b: b.update(category_id=999999), 404, "category_id"),
        (lambda b: b.update(category_id="kids"), 422, "category_id"),
        (lambda b: b.update(skus=[]), 422, "skus"),
        (lambda b: b.pop("skus"), 422, "skus"),
        (lambda b: b["options"][1].update(values=["米白", "米白"]), 422, "options"),
        (lambda b: b["options"][1].update(name="尺码"), 422, "options"),
        (
            lambda b: b.update(
                options=[*b["options"], {"name": "a", "values": ["1"]}, {"name": "b", "values": ["1"]}]
            ),
            422,
            "options",
        ),
        (lambda b: b.update(surprise=True), 422, "surprise"),
    ],
)
def test_bad_products_are_refused_and_change_nothing(
    client: TestClient, world: dict, mutate, status: int, field: str
) -> None:  # type: ignore[no-untyped-def]
    shop_id = world["shop"]["id"]
    body = kids_garment(world["kids"]["id"])
    mutate(body)
    response = client.post(f"/api/v1/shops/{shop_id}/products", json=body, headers=world["merchant1"])
    assert response.status_code == status, response.text
    error = response.json()["error"]
    named = [f["field"] for f in error.get("fields", [])]
    assert any(field in name for name in named), error
    assert _product_count(client, shop_id, world["merchant1"]) == 0


def test_duplicate_sku_code_across_products(client: TestClient, world: dict) -> None:
    shop_id = world["shop"]["id"]
    first = kids_garment(world["kids"]["id"])
    first["skus"][0]["code"] = "KID-73-W"
    assert (
        client.post(f"/api/v1/shops/{shop_id}/products", json=first, headers=world["merchant1"]).status_code
        == 201
    )
    second = kids_garment(world["kids"]["id"])
    second["skus"][3]["code"] = "KID-73-W"
    response = client.post(f"/api/v1/shops/{shop_id}/products", json=second, headers=world["merchant1"])
    assert response.status_code == 422
    assert "KID-73-W" in response.json()["error"]["message"]
    assert _product_count(client, shop_id, world["merchant1"]) == 1
    # The same code in another shop is fine: codes are per shop.
    other = open_shop(client, world["merchant2"], "竞争对手")
    assert (
        client.post(
            f"/api/v1/shops/{other['id']}/products", json=second, headers=world["merchant2"]
        ).status_code
        == 201
    )


def test_sku_updates(client: TestClient, world: dict) -> None:
    shop_id = world["shop"]["id"]
    product = client.post(
        f"/api/v1/shops/{shop_id}/products",
        json=kids_garment(world["kids"]["id"]),
        headers=world["merchant1"],
    ).json()
    a, b = product["skus"][0], product["skus"][1]
    url = f"/api/v1/products/{product['id']}/skus/{a['id']}"
    h = world["merchant1"]
    ok = client.patch(url, json={"price_fen": 6900, "stock": 3, "code": "KID-NEW"}, headers=h)
    assert ok.status_code == 200 and ok.json()["price_fen"] == 6900 and ok.json()["stock"] == 3
    assert client.patch(url, json={"price_fen": -1}, headers=h).status_code == 422
    assert client.patch(url, json={"stock": -5}, headers=h).status_code == 422
    assert client.patch(url, json={"code": b["code"]}, headers=h).status_code == 409
    assert (
        client.patch(
            f"/api/v1/products/{product['id']}/skus/999999", json={"stock": 1}, headers=h
        ).status_code
        == 404
    )
    final = client.get(f"/api/v1/products/{product['id']}", headers=h).json()["skus"][0]
    assert (final["price_fen"], final["stock"], final["code"]) == (6900, 3, "KID-NEW")


def test_publish_lifecycle_and_visibility(client: TestClient, world: dict) -> None:
    shop_id = world["shop"]["id"]
    h = world["merchant1"]
    product = client.post(
        f"/api/v1/shops/{shop_id}/products", json=kids_garment(world["kids"]["id"]), headers=h
    ).json()
    pid = product["id"]
    # Drafts are invisible outside the shop.
    assert client.get(f"/api/v1/products/{pid}").status_code == 404
    assert client.get(f"/api/v1/products/{pid}", headers=world["buyer1"]).status_code == 404
    assert client.get(f"/api/v1/products/{pid}", headers=h).status_code == 200
    assert client.post(f"/api/v1/products/{pid}/unpublish", headers=h).status_code == 409
    published = client.post(f"/api/v1/products/{pid}/publish", headers=h)
    assert published.status_code == 200 and published.json()["status"] == "published"
    assert client.get(f"/api/v1/products/{pid}").json()["published_at"]
    assert client.post(f"/api/v1/products/{pid}/publish", headers=h).status_code == 200  # idempotent
    listed = client.get(f"/api/v1/shops/{shop_id}/products").json()["items"]
    assert [p["id"] for p in listed] == [pid]
    assert listed[0]["min_price_fen"] == 5900 and listed[0]["max_price_fen"] == 7900
    assert client.post(f"/api/v1/products/{pid}/unpublish", headers=h).json()["status"] == "unpublished"
    assert client.get(f"/api/v1/products/{pid}").status_code == 404
    assert client.get(f"/api/v1/shops/{shop_id}/products").json()["items"] == []
    denied = client.get(f"/api/v1/shops/{shop_id}/products?include_unpublished=true", headers=world["buyer1"])
    assert denied.status_code == 403


def test_publish_needs_an_active_sku(client: TestClient, world: dict) -> None:
    h = world["merchant1"]
    body = {"title": "单品", "category_id": world["kids"]["id"], "skus": [{"price_fen": 100, "stock": 1}]}
    product = client.post(f"/api/v1/shops/{world['shop']['id']}/products", json=body, headers=h).json()
    sku = product["skus"][0]["id"]
    client.patch(f"/api/v1/products/{product['id']}/skus/{sku}", json={"is_active": False}, headers=h)
    response = client.post(f"/api/v1/products/{product['id']}/publish", headers=h)
    assert response.status_code == 409 and response.json()["error"]["code"] == "no_active_sku"


def test_staff_manage_products_but_not_the_shop(client: TestClient, world: dict) -> None:
    shop_id = world["shop"]["id"]
    added = client.post(
        f"/api/v1/shops/{shop_id}/staff", json={"username": "creator1"}, headers=world["merchant1"]
    )
    assert added.status_code == 201
    assert sorted(s["role"] for s in added.json()) == ["owner", "staff"]
    assert (
        client.post(
            f"/api/v1/shops/{shop_id}/staff", json={"username": "creator1"}, headers=world["merchant1"]
        ).status_code
        == 409
    )
    assert (
        client.post(
            f"/api/v1/shops/{shop_id}/staff", json={"username": "ghost_user"}, headers=world["merchant1"]
        ).status_code
        == 404
    )
    staff = world["creator1"]
    created = client.post(
        f"/api/v1/shops/{shop_id}/products", json=kids_garment(world["kids"]["id"]), headers=staff
    )
    assert created.status_code == 201
    assert (
        client.patch(f"/api/v1/shops/{shop_id}", json={"name": "Staff rename"}, headers=staff).status_code
        == 403
    )
    assert [s["name"] for s in client.get("/api/v1/me/shops", headers=staff).json()] == ["和田玉坊"]
    creator_id = client.get("/api/v1/me", headers=staff).json()["id"]
    owner_id = client.get("/api/v1/me", headers=world["merchant1"]).json()["id"]
    assert (
        client.delete(f"/api/v1/shops/{shop_id}/staff/{owner_id}", headers=world["merchant1"]).status_code
        == 404
    )
    assert (
        client.delete(f"/api/v1/shops/{shop_id}/staff/{creator_id}", headers=world["merchant1"]).status_code
        == 200
    )
    assert (
        client.post(
            f"/api/v1/shops/{shop_id}/products", json=kids_garment(world["kids"]["id"]), headers=staff
        ).status_code
        == 403
    )


def test_images_are_checked(client: TestClient, world: dict) -> None:
    h = world["merchant1"]
    product = client.post(
        f"/api/v1/shops/{world['shop']['id']}/products", json=kids_garment(world["kids"]["id"]), headers=h
    ).json()
    url = f"/api/v1/products/{product['id']}/images"
    ok = client.post(url, files={"data": ("bodysuit.jpg", image_bytes("JPEG"), "image/jpeg")}, headers=h)
    assert ok.status_code == 201, ok.text
    assert ok.json()["content_type"] == "image/jpeg" and ok.json()["width"] == 64
    assert client.get(ok.json()["url"]).status_code == 200
    fake = client.post(
        url, files={"data": ("evil.png", b"<script>alert(1)</script>", "image/png")}, headers=h
    )
    assert fake.status_code == 415
    text = client.post(url, files={"data": ("notes.txt", b"hello", "text/plain")}, headers=h)
    assert text.status_code == 415
    gif = client.post(url, files={"data": ("a.gif", image_bytes("GIF"), "image/gif")}, headers=h)
    assert gif.status_code == 415
    big = client.post(
        url, files={"data": ("big.png", b"\x89PNG" + b"0" * (6 * 1024 * 1024), "image/png")}, headers=h
    )
    assert big.status_code == 413
    empty = client.post(url, files={"data": ("e.png", b"", "image/png")}, headers=h)
    assert empty.status_code == 422
    missing = client.post(url, data={"note": "no file here"}, files={}, headers=h)
    assert 400 <= missing.status_code < 500
    for _ in range(8):
        assert (
            client.post(url, files={"data": ("a.png", image_bytes(), "image/png")}, headers=h).status_code
            == 201
        )
    tenth = client.post(url, files={"data": ("a.png", image_bytes(), "image/png")}, headers=h)
    assert tenth.status_code == 409
    images = client.get(f"/api/v1/products/{product['id']}", headers=h).json()["images"]
    assert len(images) == 9
    assert client.delete(f"{url}/{images[0]['id']}", headers=h).status_code == 204
    assert client.delete(f"{url}/{images[0]['id']}", headers=h).status_code == 404


def test_unknown_ids_are_404(client: TestClient, world: dict) -> None:
    h = world["merchant1"]
    assert client.get("/api/v1/products/424242").status_code == 404
    assert client.get("/api/v1/shops/424242").status_code == 404
    assert client.get("/api/v1/categories/nope/products").status_code == 404
    assert client.post("/api/v1/products/424242/publish", headers=h).status_code == 404
    assert (
        client.post(
            "/api/v1/shops/424242/products", json=kids_garment(world["kids"]["id"]), headers=h
        ).status_code
        == 404
    )
    assert client.get("/api/v1/products/not-a-number").status_code in (400, 404, 422)


def test_category_browse_includes_children(client: TestClient, world: dict) -> None:
    ops, h = world["ops1"], world["merchant1"]
    furniture = add_category(client, ops, "furniture", "家具")
    mattresses = add_category(client, ops, "mattresses", "床垫", parent_id=furniture["id"])
    body = {
        "title": "立方体床垫",
        "category_id": mattresses["id"],
        "skus": [{"price_fen": 399900, "stock": 4}],
    }
    product = client.post(f"/api/v1/shops/{world['shop']['id']}/products", json=body, headers=h).json()
    client.post(f"/api/v1/products/{product['id']}/publish", headers=h)
    for slug in ("furniture", "mattresses"):
        items = client.get(f"/api/v1/categories/{slug}/products").json()["items"]
        assert [p["title"] for p in items] == ["立方体床垫"], slug
    assert client.get("/api/v1/categories/kids/products").json()["items"] == []


def test_categories_move_between_parents(client: TestClient, world: dict) -> None:
    ops = world["ops1"]
    furniture = add_category(client, ops, "furniture", "家具")
    mattresses = add_category(client, ops, "mattresses", "床垫", parent_id=furniture["id"])
    url = f"/api/v1/categories/{mattresses['id']}"
    moved = client.patch(url, json={"parent_id": world["kids"]["id"]}, headers=ops)
    assert moved.status_code == 200 and moved.json()["parent_id"] == world["kids"]["id"]
    untouched = client.patch(url, json={"name_en": "Mattresses"}, headers=ops)
    assert untouched.json()["parent_id"] == world["kids"]["id"]  # an absent parent_id keeps it
    top = client.patch(url, json={"parent_id": None}, headers=ops)
    assert top.status_code == 200 and top.json()["parent_id"] is None
    refused = [
        (client.patch(url, json={"parent_id": mattresses["id"]}, headers=ops), 422),  # itself
        (client.patch(url, json={"parent_id": 999999}, headers=ops), 404),
        (client.patch(url, json={"parent_id": "kids"}, headers=ops), 422),
    ]
    client.patch(url, json={"parent_id": furniture["id"]}, headers=ops)
    refused += [
        # furniture has a child now: it cannot become a child itself, and nothing nests under a child.
        (
            client.patch(
                f"/api/v1/categories/{furniture['id']}", json={"parent_id": world["kids"]["id"]}, headers=ops
            ),
            422,
        ),
        (
            client.patch(
                f"/api/v1/categories/{world['jade']['id']}", json={"parent_id": mattresses["id"]}, headers=ops
            ),
            422,
        ),
        (
            client.post(
                "/api/v1/categories",
                json={"slug": "deep", "name_zh": "深", "name_en": "Deep", "parent_id": mattresses["id"]},
                headers=ops,
            ),
            422,
        ),
    ]
    assert [(r.status_code, expected) for r, expected in refused] == [(e, e) for _, e in refused]
    assert all(r.json()["error"]["fields"][0]["field"] == "parent_id" for r, _ in refused)
    by_slug = {c["slug"]: c for c in client.get("/api/v1/categories").json()}
    assert by_slug["mattresses"]["parent_id"] == furniture["id"] and by_slug["furniture"]["parent_id"] is None
