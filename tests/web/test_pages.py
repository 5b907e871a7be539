"""The HTML pages: shelf, merchant console and ops console, driven through their forms with a
cookie session and CSRF tokens, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from urllib.parse import unquote

import pytest
from litestar.testing import TestClient

from tests.helpers import PASSWORD, add_category, image_bytes, kids_garment, open_shop

SIZES = "73 80 90 100 110 120 130 140 150 160"
COLOURS = "米白，浅粉"


def csrf_of(page: str) -> str:
    found = re.search(r'<meta name="csrf-token" content="([^"]+)"', page)
    assert found, "page has no CSRF meta tag"
    return found.group(1)


def sign_in(client: TestClient, username: str) -> str:
    """Sign in through the login form like a browser; returns the CSRF token for later forms."""
    client.cookies.clear()
    client.cookies.set("tl_lang", "en")
    token = csrf_of(client.get("/login").text)
    response = client.post(
        "/login",
        data={"username": username, "password": PASSWORD, "next": "/", "_csrf_token": token},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return token


def marked(page: str) -> set[str]:
    """Names of the inputs a re-rendered form marks as wrong."""
    return set(re.findall(r'name="([\w]+)"[^>]*aria-invalid="true"', page))


def product_id_from(location: str) -> int:
    found = re.fullmatch(r"/console/products/(\d+)", location)
    assert found, location
    return int(found.group(1))


def new_product_form(token: str, shop_id: int, category_id: int, /, **changes: str) -> dict[str, str]:
    form = {
        "_csrf_token": token,
        "shop_id": str(shop_id),
        "title": "儿童纯棉连体衣",
        "category_id": str(category_id),
        "description": "A类纯棉，婴儿可穿",
        "option1_name": "Size",
        "option1_values": SIZES,
        "option2_name": "Colour",
        "option2_values": COLOURS,
        "price": "59.00",
        "stock": "20",
    }
    form.update(changes)
    return form


def shop_product_count(client: TestClient, shop_id: int, headers: dict[str, str]) -> int:
    url = f"/api/v1/shops/{shop_id}/products?include_unpublished=true&limit=100"
    response = client.get(url, headers=headers)
    assert response.status_code == 200, response.text
    return len(response.json()["items"])


@pytest.fixture
def world(client: TestClient, users: dict[str, dict[str, str]]) -> dict:
    ops = users["ops1"]
    kids = add_category(client, ops, "kids", "童装")
    bodysuits = add_category(client, ops, "bodysuits", "连体衣", parent_id=kids["id"])
    jade = add_category(client, ops, "jade", "玉石翡翠", requires_inspection=True)
    custom = add_category(client, ops, "custom", "定制", return_window_days=0)
    return {"kids": kids, "bodysuits": bodysuits, "jade": jade, "custom": custom, **users}


def merchant_with_shop(client: TestClient, world: dict) -> tuple[str, int]:
    """merchant1 signed in by cookie, with a shop opened through the console form."""
    token = sign_in(client, "merchant1")
    response = client.post(
        "/console/shops",
        data={"name": "小小童装", "description": "Cotton for little ones", "_csrf_token": token},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    shop_id = int(re.search(r"shop=(\d+)", response.headers["location"]).group(1))
    return token, shop_id


# --- CSRF and access --------------------------------------------------------------------------


def test_forms_refuse_a_post_without_csrf_token(client: TestClient, world: dict) -> None:
    client.cookies.set("tl_lang", "en")
    client.get("/login")
    no_token = client.post("/login", data={"username": "merchant1", "password": PASSWORD})
    assert no_token.status_code == 403
    assert "form expired" in no_token.text

    token = sign_in(client, "merchant1")
    refused = client.post("/console/shops", data={"name": "No token shop"}, follow_redirects=False)
    assert refused.status_code == 403
    wrong = client.post("/console/shops", data={"name": "Forged", "_csrf_token": "x" * 64})
    assert wrong.status_code == 403
    assert client.get("/api/v1/me/shops").json() == []
    # The same form with the page's token goes through.
    ok = client.post(
        "/console/shops", data={"name": "Real shop", "_csrf_token": token}, follow_redirects=False
    )
    assert ok.status_code == 303


@pytest.mark.parametrize("path", ["/console", "/console/products/new", "/ops", "/ops/categories", "/me"])
def test_anonymous_visitors_are_sent_to_sign_in(client: TestClient, path: str) -> None:
    response = client.get(path, follow_redirects=False)
    assert response.status_code in (302, 303)
    location = response.headers["location"]
    assert location.startswith("/login?next=") and unquote(location.split("=", 1)[1]) == path


def test_buyer_cannot_use_the_consoles(client: TestClient, world: dict) -> None:
    shop = open_shop(client, world["merchant1"])
    product = client.post(
        f"/api/v1/shops/{shop['id']}/products",
        json=kids_garment(world["kids"]["id"]),
        headers=world["merchant1"],
    ).json()
    token = sign_in(client, "buyer1")
    assert client.get("/console").status_code == 403
    assert client.get("/console/products/new").status_code == 403
    assert client.get(f"/console/products/{product['id']}").status_code in (403, 404)
    posts = [
        ("/console/shops", {"name": "Mine now"}),
        (f"/console/shops/{shop['id']}", {"name": "Taken over"}),
        (f"/console/shops/{shop['id']}/staff", {"username": "buyer1"}),
        ("/console/products/new", new_product_form(token, shop["id"], world["kids"]["id"])),
        (f"/console/products/{product['id']}/publish", {}),
        (f"/console/products/{product['id']}/skus/{product['skus'][0]['id']}", {"price": "1", "stock": "1"}),
        ("/ops/categories", {"slug": "mine", "name_zh": "我的", "name_en": "Mine"}),
        (f"/ops/users/{1}/roles", {"role": "ops", "action": "grant"}),
    ]
    for path, data in posts:
        response = client.post(path, data={**data, "_csrf_token": token}, follow_redirects=False)
        assert response.status_code in (403, 404), (path, response.status_code)
    for path in ("/ops", "/ops/categories", "/ops/users"):
        page = client.get(path)
        assert page.status_code == 403
        assert 'data-status="403"' in page.text and "You cannot do that" in page.text
    after = client.get(f"/api/v1/products/{product['id']}", headers=world["merchant1"]).json()
    assert after["status"] == "draft" and after["skus"] == product["skus"]
    assert client.get("/api/v1/shops/1", headers=world["merchant1"]).json()["name"] == shop["name"]
    assert [
        u["username"] for u in client.get("/api/v1/shops/1/staff", headers=world["merchant1"]).json()
    ] == ["merchant1"]


def test_another_merchant_cannot_touch_my_products(client: TestClient, world: dict) -> None:
    shop = open_shop(client, world["merchant1"])
    body = kids_garment(world["kids"]["id"])
    product = client.post(
        f"/api/v1/shops/{shop['id']}/products", json=body, headers=world["merchant1"]
    ).json()
    client.post(f"/api/v1/products/{product['id']}/publish", headers=world["merchant1"])
    token = sign_in(client, "merchant2")
    assert client.get(f"/console/products/{product['id']}").status_code == 403
    sku = product["skus"][0]
    response = client.post(
        f"/console/products/{product['id']}/skus/{sku['id']}",
        data={"price": "0.01", "stock": "0", "code": "HACK", "_csrf_token": token},
    )
    assert response.status_code == 403
    assert client.get(f"/api/v1/products/{product['id']}").json()["skus"][0] == sku


# --- merchant console -------------------------------------------------------------------------


def test_merchant_opens_a_shop_and_creates_a_product_with_the_full_sku_matrix(
    client: TestClient, world: dict
) -> None:
    token = sign_in(client, "merchant1")
    first = client.get("/console")
    assert first.status_code == 200 and 'action="/console/shops"' in first.text
    token, shop_id = merchant_with_shop(client, world)
    console = client.get(f"/console?shop={shop_id}")
    assert console.status_code == 200 and "小小童装" in console.text and "No products yet" in console.text

    assert client.get(f"/console/products/new?shop={shop_id}").status_code == 200
    created = client.post(
        "/console/products/new",
        data=new_product_form(token, shop_id, world["bodysuits"]["id"]),
        follow_redirects=False,
    )
    assert created.status_code == 303, created.text
    product_id = product_id_from(created.headers["location"])

    product = client.get(f"/api/v1/products/{product_id}").json()  # the cookie session may read it
    assert product["status"] == "draft"
    assert [o["name"] for o in product["options"]] == ["Size", "Colour"]
    assert product["options"][1]["values"] == ["米白", "浅粉"]
    combos = {tuple(s["option_values"]) for s in product["skus"]}
    assert combos == {(size, colour) for size in SIZES.split() for colour in ("米白", "浅粉")}
    assert len(product["skus"]) == 20
    assert {(s["price_fen"], s["stock"]) for s in product["skus"]} == {(5900, 20)}

    editor = client.get(f"/console/products/{product_id}")
    assert editor.status_code == 200 and editor.text.count('class="sku-row') == 20

    # Edit one SKU row (plain form post), then the product details, then publish.
    sku = product["skus"][3]
    saved = client.post(
        f"/console/products/{product_id}/skus/{sku['id']}",
        data={
            "code": "BODY-90-PINK",
            "price": "64.50",
            "stock": "7",
            "is_active": "on",
            "_csrf_token": token,
        },
        follow_redirects=False,
    )
    assert saved.status_code == 303
    details = client.post(
        f"/console/products/{product_id}",
        data={
            "title": "儿童纯棉连体衣 A类",
            "category_id": str(world["bodysuits"]["id"]),
            "description": "Soft",
            "_csrf_token": token,
        },
        follow_redirects=False,
    )
    assert details.status_code == 303
    published = client.post(
        f"/console/products/{product_id}/publish", data={"_csrf_token": token}, follow_redirects=False
    )
    assert published.status_code == 303
    product = client.get(f"/api/v1/products/{product_id}").json()
    assert product["status"] == "published" and product["title"] == "儿童纯棉连体衣 A类"
    edited = next(s for s in product["skus"] if s["id"] == sku["id"])
    assert (edited["code"], edited["price_fen"], edited["stock"]) == ("BODY-90-PINK", 6450, 7)

    # The public page shows it, with the edited SKU's price in its table.
    page = client.get(f"/p/{product_id}")
    assert page.status_code == 200
    assert "儿童纯棉连体衣 A类" in page.text and "¥64.50" in page.text and "¥59.00" in page.text
    assert "7-day no-reason returns" in page.text and "Inspected before shipping" not in page.text

    unpublished = client.post(
        f"/console/products/{product_id}/unpublish", data={"_csrf_token": token}, follow_redirects=False
    )
    assert unpublished.status_code == 303
    assert client.get(f"/api/v1/products/{product_id}").json()["status"] == "unpublished"


def test_sku_row_saves_in_place_over_htmx(client: TestClient, world: dict) -> None:
    token, shop_id = merchant_with_shop(client, world)
    created = client.post(
        "/console/products/new",
        data=new_product_form(token, shop_id, world["kids"]["id"], option2_name="", option2_values=""),
        follow_redirects=False,
    )
    product_id = product_id_from(created.headers["location"])
    sku = client.get(f"/api/v1/products/{product_id}").json()["skus"][0]
    url = f"/console/products/{product_id}/skus/{sku['id']}"
    htmx = {"HX-Request": "true", "X-CSRF-Token": token}
    ok = client.post(
        url, data={"code": sku["code"], "price": "88", "stock": "3", "is_active": "on"}, headers=htmx
    )
    assert ok.status_code == 200
    assert ok.text.lstrip().startswith('<form class="sku-row') and "<html" not in ok.text
    assert 'value="88.00"' in ok.text and "Saved" in ok.text
    bad = client.post(url, data={"code": sku["code"], "price": "-3", "stock": "3"}, headers=htmx)
    assert bad.status_code == 422
    assert marked(bad.text) == {"price"} and 'value="-3"' in bad.text
    assert client.get(f"/api/v1/products/{product_id}").json()["skus"][0]["price_fen"] == 8800


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"price": "-3"}, "price"),
        ({"price": "abc"}, "price"),
        ({"price": "0"}, "price"),
        ({"price": "99999999999"}, "price"),
        ({"stock": "abc"}, "stock"),
        ({"stock": "-1"}, "stock"),
        ({"title": ""}, "title"),
        ({"title": "   "}, "title"),
        ({"title": "x" * 121}, "title"),
        ({"category_id": ""}, "category_id"),
        ({"category_id": "999999"}, "category_id"),
        ({"option1_values": "73 73 80"}, "option1_values"),
        ({"option1_name": ""}, "option1_name"),
        ({"option2_values": ""}, "option2_values"),
    ],
)
def test_bad_new_product_input_rerenders_the_form_and_changes_nothing(
    client: TestClient, world: dict, changes: dict[str, str], field: str
) -> None:
    token, shop_id = merchant_with_shop(client, world)
    response = client.post(
        "/console/products/new", data=new_product_form(token, shop_id, world["kids"]["id"], **changes)
    )
    assert 400 <= response.status_code < 500, response.text
    assert 'id="new-product"' in response.text and 'role="alert"' in response.text
    assert field in marked(response.text) or f'data-field="{field}"' in response.text
    # What the user typed is still there.
    assert f'value="{changes.get("option1_values", SIZES)}"' in response.text
    if "category_id" not in changes:
        assert f'<option value="{world["kids"]["id"]}" selected>' in response.text
    assert shop_product_count(client, shop_id, world["merchant1"]) == 0


def test_bad_sku_and_details_input_changes_nothing(client: TestClient, world: dict) -> None:
    token, shop_id = merchant_with_shop(client, world)
    created = client.post(
        "/console/products/new",
        data=new_product_form(token, shop_id, world["kids"]["id"]),
        follow_redirects=False,
    )
    product_id = product_id_from(created.headers["location"])
    before = client.get(f"/api/v1/products/{product_id}").json()
    sku, other = before["skus"][0], before["skus"][1]
    url = f"/console/products/{product_id}/skus/{sku['id']}"
    for data, field in [
        ({"price": "-3", "stock": "1"}, "price"),
        ({"price": "1.234", "stock": "1"}, "price"),
        ({"price": "10", "stock": "abc"}, "stock"),
        ({"price": "10", "stock": "1000001"}, "stock"),
        ({"price": "10", "stock": "1", "code": "has space"}, "code"),
        ({"price": "10", "stock": "1", "code": other["code"]}, "code"),
    ]:
        response = client.post(url, data={"code": sku["code"], **data, "_csrf_token": token})
        assert response.status_code in (409, 422), (data, response.status_code)
        assert field in marked(response.text), (data, marked(response.text))
    details = client.post(
        f"/console/products/{product_id}",
        data={"title": "", "category_id": str(world["kids"]["id"]), "description": "", "_csrf_token": token},
    )
    assert details.status_code == 422 and "title" in marked(details.text)
    assert client.get(f"/api/v1/products/{product_id}").json() == before


def test_bad_shop_input_rerenders(client: TestClient, world: dict) -> None:
    token = sign_in(client, "merchant1")
    blank = client.post("/console/shops", data={"name": "", "_csrf_token": token})
    assert blank.status_code == 422 and "name" in marked(blank.text)
    open_shop(client, world["merchant2"], name="Taken name")
    taken = client.post(
        "/console/shops", data={"name": "Taken name", "description": "kept", "_csrf_token": token}
    )
    assert taken.status_code == 409 and "kept" in taken.text
    assert client.get("/api/v1/me/shops").json() == []


def test_shop_owner_manages_details_logo_and_staff(client: TestClient, world: dict) -> None:
    token, shop_id = merchant_with_shop(client, world)
    edited = client.post(
        f"/console/shops/{shop_id}",
        data={"name": "小小童装旗舰店", "description": "New words", "_csrf_token": token},
        follow_redirects=False,
    )
    assert edited.status_code == 303
    logo = client.post(
        f"/console/shops/{shop_id}/logo",
        data={"_csrf_token": token},
        files={"file": ("logo.png", image_bytes(), "image/png")},
        follow_redirects=False,
    )
    assert logo.status_code == 303, logo.text
    not_an_image = client.post(
        f"/console/shops/{shop_id}/logo",
        data={"_csrf_token": token},
        files={"file": ("logo.png", b"not an image at all", "image/png")},
    )
    assert not_an_image.status_code == 415 and "file" in marked(not_an_image.text)
    unknown = client.post(
        f"/console/shops/{shop_id}/staff", data={"username": "nobody-here", "_csrf_token": token}
    )
    assert unknown.status_code == 404 and "username" in marked(unknown.text)
    added = client.post(
        f"/console/shops/{shop_id}/staff",
        data={"username": "buyer1", "_csrf_token": token},
        follow_redirects=False,
    )
    assert added.status_code == 303
    shop = client.get(f"/api/v1/shops/{shop_id}").json()
    assert shop["name"] == "小小童装旗舰店" and shop["logo_url"].startswith("/media/shops/")
    staff = client.get(f"/api/v1/shops/{shop_id}/staff").json()
    assert [(s["username"], s["role"]) for s in staff] == [("merchant1", "owner"), ("buyer1", "staff")]
    page = client.get(f"/shops/{shop['slug']}")
    assert page.status_code == 200 and shop["logo_url"] in page.text

    # Staff (a buyer account with no merchant role) run the products, not the shop.
    product = client.post(
        f"/api/v1/shops/{shop_id}/products",
        json=kids_garment(world["kids"]["id"]),
        headers=world["merchant1"],
    ).json()
    staff_token = sign_in(client, "buyer1")
    me = client.get("/me")
    assert "小小童装旗舰店" in me.text and f'href="/console?shop={shop_id}"' in me.text
    console = client.get("/console")
    assert console.status_code == 200 and "Only the shop's owner can change" in console.text
    assert (
        client.post(
            f"/console/shops/{shop_id}", data={"name": "Staff rename", "_csrf_token": staff_token}
        ).status_code
        == 403
    )
    assert (
        client.post(
            f"/console/shops/{shop_id}/staff", data={"username": "creator1", "_csrf_token": staff_token}
        ).status_code
        == 403
    )
    sku = product["skus"][0]
    saved = client.post(
        f"/console/products/{product['id']}/skus/{sku['id']}",
        data={
            "code": sku["code"],
            "price": "12",
            "stock": "4",
            "is_active": "on",
            "_csrf_token": staff_token,
        },
        follow_redirects=False,
    )
    assert saved.status_code == 303

    token = sign_in(client, "merchant1")
    removed = client.post(
        f"/console/shops/{shop_id}/staff/{staff[1]['user_id']}/remove",
        data={"_csrf_token": token},
        follow_redirects=False,
    )
    assert removed.status_code == 303
    assert len(client.get(f"/api/v1/shops/{shop_id}/staff").json()) == 1


def test_product_images_upload_and_delete(client: TestClient, world: dict) -> None:
    token, shop_id = merchant_with_shop(client, world)
    created = client.post(
        "/console/products/new",
        data=new_product_form(token, shop_id, world["kids"]["id"]),
        follow_redirects=False,
    )
    product_id = product_id_from(created.headers["location"])
    url = f"/console/products/{product_id}/images"
    ok = client.post(
        url, data={"_csrf_token": token}, files={"file": ("a.jpg", image_bytes("JPEG"), "image/jpeg")},
        follow_redirects=False,
    )  # fmt: skip
    assert ok.status_code == 303, ok.text
    bad = client.post(url, data={"_csrf_token": token}, files={"file": ("a.txt", b"hello", "text/plain")})
    assert bad.status_code == 415 and "file" in marked(bad.text)
    missing = client.post(url, data={"_csrf_token": token, "file": ""})
    assert missing.status_code == 422
    images = client.get(f"/api/v1/products/{product_id}").json()["images"]
    assert len(images) == 1
    editor = client.get(f"/console/products/{product_id}")
    assert images[0]["url"] in editor.text
    deleted = client.post(
        f"{url}/{images[0]['id']}/delete", data={"_csrf_token": token}, follow_redirects=False
    )
    assert deleted.status_code == 303
    assert client.get(f"/api/v1/products/{product_id}").json()["images"] == []


# --- shelf ------------------------------------------------------------------------------------


def test_unpublished_products_are_404_to_buyers(client: TestClient, world: dict) -> None:
    shop = open_shop(client, world["merchant1"])
    product = client.post(
        f"/api/v1/shops/{shop['id']}/products",
        json=kids_garment(world["kids"]["id"]),
        headers=world["merchant1"],
    ).json()
    path = f"/p/{product['id']}"
    client.cookies.set("tl_lang", "en")
    anonymous = client.get(path)
    assert anonymous.status_code == 404 and 'data-status="404"' in anonymous.text
    assert "儿童纯棉连体衣" not in anonymous.text
    sign_in(client, "buyer1")
    assert client.get(path).status_code == 404
    sign_in(client, "merchant1")
    own = client.get(path)
    assert own.status_code == 200 and "Only your shop and the platform can see this page" in own.text
    client.post(f"/api/v1/products/{product['id']}/publish", headers=world["merchant1"])
    client.cookies.clear()
    assert client.get(path).status_code == 200
    client.post(f"/api/v1/products/{product['id']}/unpublish", headers=world["merchant1"])
    assert client.get(path).status_code == 404
    assert client.get("/p/999999").status_code == 404


def _publish(client: TestClient, world: dict, shop_id: int, title: str, category: str = "kids") -> int:
    body = {**kids_garment(world[category]["id"]), "title": title}
    product = client.post(f"/api/v1/shops/{shop_id}/products", json=body, headers=world["merchant1"]).json()
    assert (
        client.post(f"/api/v1/products/{product['id']}/publish", headers=world["merchant1"]).status_code
        == 200
    )
    return product["id"]


def test_search_page_finds_products_by_a_chinese_term(
    client: TestClient, world: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop = open_shop(client, world["merchant1"])
    bodysuit = _publish(client, world, shop["id"], "儿童纯棉连体衣")
    bangle = _publish(client, world, shop["id"], "新疆和田玉手镯", "jade")
    client.cookies.set("tl_lang", "en")

    empty = client.get("/search")
    assert empty.status_code == 200 and "What are you looking for?" in empty.text
    assert client.get("/search?q=%20%20").status_code == 200

    found = client.get("/search", params={"q": "连体衣"})
    assert found.status_code == 200
    assert f'href="/p/{bodysuit}"' in found.text and "儿童纯棉连体衣" in found.text
    assert f'href="/p/{bangle}"' not in found.text and "手镯" not in found.text
    assert 'value="连体衣"' in found.text  # the query stays in the search box

    nothing = client.get("/search", params={"q": "不存在的东西"})
    assert nothing.status_code == 200 and "Nothing matches" in nothing.text
    too_long = client.get("/search", params={"q": "长" * 101})
    assert too_long.status_code == 422
    assert client.get("/search", params={"q": "连体衣", "cursor": "garbage!"}).status_code == 400

    # Pagination: "more" carries an offset cursor and the query.
    monkeypatch.setattr("trustlive.catalog.pages.PAGE_SIZE", 2)
    for i in range(2):
        _publish(client, world, shop["id"], f"婴儿连体衣 {i}")
    page1 = client.get("/search", params={"q": "连体衣"})
    assert page1.text.count('class="product-card"') == 2
    more = re.search(r'rel="next" href="\?([^"]+)"', page1.text)
    assert more, "no more link"
    page2 = client.get("/search?" + more.group(1).replace("&amp;", "&"))
    assert page2.status_code == 200 and page2.text.count('class="product-card"') == 1
    assert 'rel="next"' not in page2.text


def test_category_shop_and_product_pages(client: TestClient, world: dict) -> None:
    shop = open_shop(client, world["merchant1"], name="Jade and kids")
    bodysuit = _publish(client, world, shop["id"], "儿童纯棉连体衣", "bodysuits")
    bangle = _publish(client, world, shop["id"], "新疆和田玉手镯", "jade")
    custom = _publish(client, world, shop["id"], "定制旗袍", "custom")
    client.cookies.set("tl_lang", "en")

    kids = client.get("/c/kids")
    assert kids.status_code == 200
    assert 'href="/c/bodysuits"' in kids.text  # subcategory chip
    assert f'href="/p/{bodysuit}"' in kids.text and f'href="/p/{bangle}"' not in kids.text
    assert client.get("/c/no-such-category").status_code == 404

    page = client.get(f"/shops/{shop['slug']}")
    assert page.status_code == 200 and "Jade and kids" in page.text
    assert all(f'href="/p/{pid}"' in page.text for pid in (bodysuit, bangle, custom))
    assert client.get("/shops/no-such-shop").status_code == 404

    jade = client.get(f"/p/{bangle}")
    assert "Inspected before shipping" in jade.text and "7-day no-reason returns" in jade.text
    assert f'href="/shops/{shop["slug"]}"' in jade.text
    assert "¥59.00" in jade.text and "¥79.00" in jade.text  # price range
    assert jade.text.count('type="radio"') == 5  # 3 sizes + 2 colours as chips
    assert jade.text.count("data-sku=") == 6
    tailored = client.get(f"/p/{custom}")
    assert "No no-reason returns" in tailored.text and "Inspected before shipping" not in tailored.text


# --- ops console ------------------------------------------------------------------------------


def test_ops_manage_categories_through_forms(client: TestClient, world: dict) -> None:
    token = sign_in(client, "ops1")
    home = client.get("/ops")
    assert (
        home.status_code == 200 and 'href="/ops/categories"' in home.text and 'href="/ops/users"' in home.text
    )
    page = client.get("/ops/categories")
    assert page.status_code == 200 and "玉石翡翠" in page.text

    form = {
        "slug": "porcelain",
        "name_zh": "瓷器",
        "name_en": "Porcelain",
        "parent_id": "",
        "return_window_days": "7",
        "service_fee": "0.6",
        "position": "3",
        "requires_inspection": "on",
        "_csrf_token": token,
    }
    created = client.post("/ops/categories", data=form, follow_redirects=False)
    assert created.status_code == 303, created.text
    porcelain = next(c for c in client.get("/api/v1/categories").json() if c["slug"] == "porcelain")
    assert porcelain["service_fee_bp"] == 60 and porcelain["requires_inspection"] is True

    for changes, field, status in [
        ({"service_fee": "abc"}, "service_fee", 422),
        ({"service_fee": "101"}, "service_fee", 422),
        ({"return_window_days": "-1"}, "return_window_days", 422),
        ({"slug": "Has Spaces"}, "slug", 422),
        ({"slug": "porcelain"}, "slug", 409),
        ({"name_zh": ""}, "name_zh", 422),
    ]:
        response = client.post("/ops/categories", data={**form, **changes})
        assert response.status_code == status, (changes, response.status_code)
        assert field in marked(response.text), (changes, marked(response.text))
    assert len(client.get("/api/v1/categories").json()) == 5

    # Edit: untick inspection, fee 5.5%, close it.
    edit = {**form, "service_fee": "5.5", "requires_inspection": "", "_csrf_token": token}
    edit.pop("slug")
    edited = client.post(f"/ops/categories/{porcelain['id']}", data=edit, follow_redirects=False)
    assert edited.status_code == 303
    bad_edit = client.post(f"/ops/categories/{porcelain['id']}", data={**edit, "service_fee": "x"})
    assert bad_edit.status_code == 422 and "service_fee" in marked(bad_edit.text)
    listed = client.get("/ops/categories")
    assert "Closed" in listed.text  # is_active was not ticked: the category is closed
    assert all(c["slug"] != "porcelain" for c in client.get("/api/v1/categories").json())


def test_ops_grant_roles_and_return_to_the_account(client: TestClient, world: dict) -> None:
    token = sign_in(client, "ops1")
    buyer_id = client.get("/api/v1/me", headers=world["buyer1"]).json()["id"]
    granted = client.post(
        f"/ops/users/{buyer_id}/roles", data={"role": "merchant", "action": "grant", "_csrf_token": token},
        follow_redirects=False,
    )  # fmt: skip
    assert granted.status_code == 303
    assert granted.headers["location"].startswith("/ops/users?q=buyer1")
    listing = client.get(granted.headers["location"])
    assert 'data-user="buyer1"' in listing.text and "merchant" in listing.text
    refused = client.post(
        f"/ops/users/{buyer_id}/roles", data={"role": "buyer", "action": "revoke", "_csrf_token": token}
    )
    assert refused.status_code == 422 and 'role="alert"' in refused.text
    assert "merchant" in client.get(f"/api/v1/users/{buyer_id}", headers=world["ops1"]).json()["roles"]


def test_friendly_error_pages(client: TestClient) -> None:
    client.cookies.set("tl_lang", "en")
    missing = client.get("/no/such/page")
    assert missing.status_code == 404
    assert "We could not find that" in missing.text and 'href="/search"' in missing.text
    bad_id = client.get("/p/not-a-number")
    assert bad_id.status_code in (400, 404, 422) and "<html" in bad_id.text
    api = client.get("/api/v1/products/999999")
    assert api.status_code == 404 and api.json()["error"]["code"] == "product_not_found"


# --- navigation to the money pages ------------------------------------------------------------


def test_wallet_and_ledger_are_linked_for_those_who_have_them(client: TestClient, world: dict) -> None:
    wallet_links = re.compile(r'href="(/wallet[^"]*)"[^>]*class="nav-wallet"')
    sign_in(client, "buyer1")
    assert not wallet_links.findall(client.get("/").text)
    _, shop_id = merchant_with_shop(client, world)
    assert wallet_links.findall(client.get("/").text) == ["/wallet"]
    # The shop console's sections lead to the shop's wallet too.
    for section in (f"/console?shop={shop_id}", f"/console/orders?shop={shop_id}",
                    f"/console/shipping?shop={shop_id}"):  # fmt: skip
        assert f'href="/wallet?shop={shop_id}"' in client.get(section).text, section
    sign_in(client, "creator1")
    assert wallet_links.findall(client.get("/").text) == ["/wallet/creator"]
    assert client.get("/wallet/creator").status_code == 200
    sign_in(client, "ops1")
    ops = client.get("/ops")
    assert 'href="/ops/ledger"' in ops.text and "Ledger" in ops.text
    assert client.get("/ops/ledger").status_code == 200


def test_money_errors_have_page_text_in_both_languages() -> None:
    """The codes the commerce pages show are explained in one place, and in Chinese too."""
    from trustlive.web import i18n
    from trustlive.web.errors import ERROR_TEXT

    codes = ("insufficient_funds", "not_your_wallet", "not_a_wallet", "already_paid", "refund_exceeds_payment",
             "not_refundable", "out_of_stock", "limit_exceeded", "not_payable", "invalid_transition",
             "idempotency_mismatch", "payment_not_found", "order_not_found")  # fmt: skip
    missing = [code for code in codes if code not in ERROR_TEXT]
    assert not missing, missing
    chinese = i18n.translations("zh_Hans")
    untranslated = [code for code in codes if chinese.gettext(ERROR_TEXT[code]) == ERROR_TEXT[code]]
    assert not untranslated, untranslated
