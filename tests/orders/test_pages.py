"""The buyer's and the merchant's order pages, driven through their forms with a cookie session and
CSRF tokens, on SQLite and PostgreSQL: buy now, cart across shops, checkout replays, addresses,
shipping, delivery, confirmation, and who may see what."""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from litestar.testing import TestClient

from tests.helpers import add_category, create_user, kids_garment, open_shop, run, token_for
from tests.web.test_pages import csrf_of, marked, sign_in
from trustlive.config import Settings
from trustlive.db import create_engine, create_sessionmaker, transaction, utcnow
from trustlive.fulfillment import tasks as fulfillment_tasks
from trustlive.orders import pages
from trustlive.orders import service as orders
from trustlive.orders.models import Order
from trustlive.payments import tasks as payment_tasks

JADE_PRICE = 129900


@pytest.fixture
def shop_world(client: TestClient, users: dict[str, dict[str, str]], settings: Settings) -> dict:
    """Two shops with published products: merchant1's bodysuit (six SKUs, ¥8 shipping, free from
    ¥100) and merchant2's jade bangle (one SKU, free shipping); a second buyer with an address."""
    kids = add_category(client, users["ops1"], "kids", "童装")
    jade = add_category(client, users["ops1"], "jade", "玉石翡翠", requires_inspection=True)
    shop1 = open_shop(client, users["merchant1"], "小小童装")
    shop2 = open_shop(client, users["merchant2"], "和田玉坊")
    bodysuit = client.post(
        f"/api/v1/shops/{shop1['id']}/products", json=kids_garment(kids["id"]), headers=users["merchant1"]
    ).json()
    bangle = client.post(
        f"/api/v1/shops/{shop2['id']}/products",
        json={
            "title": "和田玉手镯",
            "category_id": jade["id"],
            "skus": [{"price_fen": JADE_PRICE, "stock": 5}],
        },
        headers=users["merchant2"],
    ).json()
    for product, merchant in ((bodysuit, "merchant1"), (bangle, "merchant2")):
        published = client.post(f"/api/v1/products/{product['id']}/publish", headers=users[merchant])
        assert published.status_code == 200, published.text
    terms = client.put(
        f"/api/v1/shops/{shop1['id']}/shipping",
        json={"flat_fee_fen": 800, "free_over_fen": 10000},
        headers=users["merchant1"],
    )
    assert terms.status_code == 200, terms.text
    create_user(settings.database_url, "buyer2", "buyer")
    buyer2 = token_for(client, "buyer2")
    other_address = client.post("/api/v1/me/addresses", json=ADDRESS, headers=buyer2)
    assert other_address.status_code == 201, other_address.text
    creator = client.get("/api/v1/me", headers=users["creator1"]).json()
    return {
        **users,
        "buyer2": buyer2,
        "shop1": shop1,
        "shop2": shop2,
        "bodysuit": bodysuit,
        "bangle": bangle,
        "other_address": other_address.json()["id"],
        "creator_id": creator["id"],
    }


ADDRESS = {
    "recipient": "王芳",
    "phone": "13800000000",
    "region": "浙江省杭州市西湖区",
    "detail": "文三路 1 号",
}


def add_address(client: TestClient, token: str, **changes: str) -> int:
    """Through the address form, as a buyer would; returns the new address's id."""
    form = {**ADDRESS, "is_default": "on", **changes, "_csrf_token": token}
    response = client.post("/addresses", data=form, follow_redirects=False)
    assert response.status_code == 303, response.text
    ids = re.findall(r'action="/addresses/(\d+)/delete"', client.get("/addresses").text)
    return max(int(i) for i in ids)


def hidden(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert found, f"no hidden {name} on the page"
    return found.group(1)


def buy_now(
    client: TestClient, token: str, sku_id: int, quantity: int, address_id: int, **query: object
) -> str:
    """Product page → checkout page → place order; returns the redirect target: the provider's
    pay page, since placing an order starts paying for it."""
    page = client.get("/buy", params={"sku_id": sku_id, "quantity": quantity, **query})
    assert page.status_code == 200, page.text
    form = {
        "_csrf_token": token,
        "idempotency_key": hidden(page.text, "idempotency_key"),
        "sku_id": str(sku_id),
        "quantity": str(quantity),
        "source": hidden(page.text, "source"),
        "address_id": str(address_id),
    }
    if "creator_id" in query:
        form["creator_id"] = str(query["creator_id"])
    placed = client.post("/buy", data=form, follow_redirects=False)
    assert placed.status_code == 303, placed.text
    return placed.headers["location"]


PAY_PAGE = re.compile(r"/sandbox/pay/pay_[A-Za-z0-9_-]+")


def order_id_from(client: TestClient, location: str) -> int:
    """The order a checkout just placed (the newest of the signed-in buyer's), after checking
    the checkout sent the buyer on to the provider's pay page."""
    assert PAY_PAGE.fullmatch(location), location
    newest = re.search(r'id="order-(\d+)"', client.get("/orders").text)
    assert newest, "the buyer has no orders"
    return int(newest.group(1))


def api_orders(client: TestClient, headers: dict[str, str]) -> list[dict]:
    response = client.get("/api/v1/orders", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["items"]


def api_cart(client: TestClient, headers: dict[str, str]) -> dict:
    return client.get("/api/v1/me/cart", headers=headers).json()


def sku_stock(client: TestClient, product_id: int, sku_id: int) -> int:
    product = client.get(f"/api/v1/products/{product_id}").json()
    return next(s["stock"] for s in product["skus"] if s["id"] == sku_id)


async def _mark_paid(url: str, order_id: int, amount: int) -> str:
    engine = create_engine(url)
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            return await orders.mark_paid(session, order_id, amount, "test-payment")
    finally:
        await engine.dispose()


def mark_paid(settings: Settings, order_id: int, amount: int) -> None:
    """What a captured payment does to the order (the payments domain is not needed here)."""
    assert run(_mark_paid(settings.database_url, order_id, amount)) == "paid"


# --- buy now ----------------------------------------------------------------------------------


def test_buy_now_from_the_product_page_places_a_pending_order(client: TestClient, shop_world: dict) -> None:
    w = shop_world
    token = sign_in(client, "buyer1")
    address_id = add_address(client, token)
    product = w["bodysuit"]
    sku = product["skus"][3]  # 80 / 浅粉, ¥69.00: below the ¥100 free-shipping threshold

    page = client.get(f"/p/{product['id']}")
    assert page.status_code == 200
    assert 'action="/cart/items"' in page.text and 'formaction="/buy"' in page.text
    assert f'<option value="{sku["id"]}"' in page.text  # the variant select, for browsers without JS
    assert hidden(page.text, "source") == "shelf" and 'name="creator_id"' not in page.text

    # "Buy now" carries the choice on to the checkout page, where the address is chosen.
    form = {"_csrf_token": token, "product_id": str(product["id"]), "sku_id": str(sku["id"]),
            "quantity": "1", "source": "shelf"}  # fmt: skip
    started = client.post("/buy", data=form, follow_redirects=False)
    assert started.status_code == 303
    target = urlsplit(started.headers["location"])
    assert target.path == "/buy"
    assert parse_qs(target.query) == {"sku_id": [str(sku["id"])], "quantity": ["1"], "source": ["shelf"]}
    checkout = client.get(started.headers["location"])
    assert checkout.status_code == 200
    assert "儿童纯棉连体衣" in checkout.text and "80 / 浅粉" in checkout.text and "¥69.00" in checkout.text
    assert "¥8.00" in checkout.text and "¥77.00" in checkout.text
    # Two of them pass the threshold: the quantity form recomputes, shipping becomes free.
    two = client.get("/buy", params={"sku_id": sku["id"], "quantity": 2, "source": "shelf"})
    assert "¥138.00" in two.text and "Free" in two.text and "¥8.00" not in two.text
    assert f'<option value="{address_id}" selected' in checkout.text

    location = buy_now(client, token, sku["id"], 1, address_id)
    order_id = order_id_from(client, location)
    # Placing the order sends the buyer straight on to pay for it, at the provider.
    pay_page = client.get(location)
    assert pay_page.status_code == 200 and "¥77.00" in pay_page.text and f"#{order_id}" in pay_page.text
    detail = client.get(f"/orders/{order_id}")
    assert detail.status_code == 200
    assert 'data-status="pending_payment"' in detail.text and "Awaiting payment" in detail.text
    assert "¥77.00" in detail.text and "Pay within" in detail.text
    # A payment is open: the page says so, without claiming the buyer has paid, and polls until
    # the provider's answer has arrived.
    assert 'data-payment-state="started"' in detail.text and "Payment started" in detail.text
    assert "Payment processing" not in detail.text
    assert f'hx-get="/orders/{order_id}"' in detail.text
    # The order page's "Pay" button (to pay later) reopens the same pay page.
    assert f'action="/orders/{order_id}/pay"' in detail.text
    again = client.post(f"/orders/{order_id}/pay", data={"_csrf_token": token}, follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"] == location
    assert f'action="/orders/{order_id}/cancel"' in detail.text
    assert "王芳" in detail.text and "文三路 1 号" in detail.text
    [order] = api_orders(client, w["buyer1"])
    assert order["id"] == order_id and order["status"] == "pending_payment" and order["total_fen"] == 7700
    assert order["lines"][0]["source"] == "shelf" and order["lines"][0]["creator_id"] is None
    assert sku_stock(client, product["id"], sku["id"]) == sku["stock"] - 1

    # The list shows it under "To pay", not under "To ship"; Chinese shows 待付款.
    assert f'id="order-{order_id}"' in client.get("/orders?status=pending_payment").text
    assert f'id="order-{order_id}"' not in client.get("/orders?status=paid").text
    client.cookies.set("tl_lang", "zh_Hans")
    assert "待付款" in client.get(f"/orders/{order_id}").text


def test_attribution_from_a_live_room_link_reaches_the_order(client: TestClient, shop_world: dict) -> None:
    w = shop_world
    token = sign_in(client, "buyer1")
    address_id = add_address(client, token)
    bangle = w["bangle"]
    page = client.get(f"/p/{bangle['id']}", params={"source": "live_room", "creator": w["creator_id"]})
    assert hidden(page.text, "source") == "live_room"
    assert hidden(page.text, "creator_id") == str(w["creator_id"])
    assert hidden(page.text, "sku_id") == str(bangle["skus"][0]["id"])  # one SKU: nothing to choose
    location = buy_now(
        client, token, bangle["skus"][0]["id"], 1, address_id, source="live_room", creator_id=w["creator_id"]
    )
    [order] = api_orders(client, w["buyer1"])
    assert order["id"] == order_id_from(client, location) and order["total_fen"] == JADE_PRICE
    assert order["lines"][0]["source"] == "live_room" and order["lines"][0]["creator_id"] == w["creator_id"]
    # A made-up source is refused, not recorded.
    form = {"_csrf_token": token, "product_id": str(bangle["id"]), "sku_id": str(bangle["skus"][0]["id"]),
            "quantity": "1", "source": "billboard"}  # fmt: skip
    assert client.post("/cart/items", data=form).status_code == 422
    assert api_cart(client, w["buyer1"])["shops"] == []


def test_anonymous_visitors_see_sign_in_to_buy(client: TestClient, shop_world: dict) -> None:
    client.cookies.set("tl_lang", "en")
    page = client.get(f"/p/{shop_world['bangle']['id']}")
    assert page.status_code == 200 and "Sign in to buy" in page.text and 'formaction="/buy"' not in page.text


@pytest.mark.parametrize("quantity", ["0", "abc", "-1", "1000", "", "1.5"])
def test_bad_quantity_rerenders_and_creates_nothing(
    client: TestClient, shop_world: dict, quantity: str
) -> None:
    w = shop_world
    token = sign_in(client, "buyer1")
    address_id = add_address(client, token)
    product, sku = w["bodysuit"], w["bodysuit"]["skus"][0]
    form = {"_csrf_token": token, "product_id": str(product["id"]), "sku_id": str(sku["id"]),
            "quantity": quantity, "source": "shelf"}  # fmt: skip
    for action in ("/cart/items", "/buy"):
        response = client.post(action, data=form, follow_redirects=False)
        assert response.status_code == 422, (action, response.status_code)
        assert "quantity" in marked(response.text), action
        assert "儿童纯棉连体衣" in response.text  # the product page again, with the buy box marked
    placed = client.post(
        "/buy",
        data={**form, "idempotency_key": "k-" + quantity, "address_id": str(address_id)},
        follow_redirects=False,
    )
    assert placed.status_code == 422
    assert client.get("/buy", params={"sku_id": sku["id"], "quantity": quantity}).status_code == 422
    assert api_cart(client, w["buyer1"])["shops"] == []
    assert api_orders(client, w["buyer1"]) == []
    assert sku_stock(client, product["id"], sku["id"]) == sku["stock"]

    # The cart's own quantity form: refused, marked, unchanged.
    good = {**form, "quantity": "2"}
    assert client.post("/cart/items", data=good, follow_redirects=False).status_code == 303
    item_id = api_cart(client, w["buyer1"])["shops"][0]["lines"][0]["id"]
    update = client.post(f"/cart/items/{item_id}", data={"quantity": quantity, "_csrf_token": token})
    assert update.status_code == 422 and marked(update.text) == {"quantity"}
    assert api_cart(client, w["buyer1"])["shops"][0]["lines"][0]["quantity"] == 2


def test_no_variant_chosen_is_marked(client: TestClient, shop_world: dict) -> None:
    token = sign_in(client, "buyer1")
    product = shop_world["bodysuit"]
    form = {"_csrf_token": token, "product_id": str(product["id"]), "sku_id": "", "quantity": "1"}
    response = client.post("/cart/items", data=form)
    assert response.status_code == 422 and "sku_id" in marked(response.text)
    assert api_cart(client, shop_world["buyer1"])["shops"] == []


# --- cart and checkout ------------------------------------------------------------------------


def fill_cart(client: TestClient, token: str, w: dict) -> None:
    """Two bodysuit SKUs from shop 1 (¥59 + 2 × ¥69 = ¥197: free shipping) and the bangle."""
    body, bangle = w["bodysuit"], w["bangle"]
    for product, sku, quantity in (
        (body, body["skus"][0], 1),
        (body, body["skus"][3], 2),
        (bangle, bangle["skus"][0], 1),
    ):
        form = {"_csrf_token": token, "product_id": str(product["id"]), "sku_id": str(sku["id"]),
                "quantity": str(quantity)}  # fmt: skip
        added = client.post("/cart/items", data=form, follow_redirects=False)
        assert added.status_code == 303 and added.headers["location"] == "/cart?added=1"


def checkout_form(page: str, token: str, address_id: int) -> dict[str, object]:
    return {
        "_csrf_token": token,
        "address_id": str(address_id),
        "idempotency_key": hidden(page, "idempotency_key"),
        "item_ids": re.findall(r'name="item_ids" value="(\d+)"', page),
        "note": "请周末送",
    }


def test_cart_across_two_shops_checks_out_into_two_orders_once(client: TestClient, shop_world: dict) -> None:
    w = shop_world
    token = sign_in(client, "buyer1")
    address_id = add_address(client, token)
    fill_cart(client, token, w)
    cart = client.get("/cart?added=1")
    assert cart.status_code == 200 and "Added to your cart" in cart.text
    assert "小小童装" in cart.text and "和田玉坊" in cart.text
    assert "¥197.00" in cart.text and "¥1,299.00" in cart.text and "¥1,496.00" in cart.text
    assert cart.text.count('name="item_ids"') == 3

    form = checkout_form(cart.text, token, address_id)
    first = client.post("/cart/checkout", data=form, follow_redirects=False)
    assert first.status_code == 303, first.text
    # The same form again (a double click, a reload): the same answer, no new orders.
    second = client.post("/cart/checkout", data=form, follow_redirects=False)
    assert second.status_code == 303, second.text
    assert second.headers["location"] == first.headers["location"]
    # On to the provider: one payment for both orders, the same one for the double submit.
    assert PAY_PAGE.fullmatch(first.headers["location"]), first.headers["location"]
    pay_page = client.get(first.headers["location"])
    assert pay_page.status_code == 200 and "¥1,496.00" in pay_page.text

    placed = api_orders(client, w["buyer1"])
    assert len(placed) == 2
    assert sorted(o["total_fen"] for o in placed) == [19700, JADE_PRICE]
    assert {o["shop_id"] for o in placed} == {w["shop1"]["id"], w["shop2"]["id"]}
    assert all(o["note"] == "请周末送" and o["status"] == "pending_payment" for o in placed)
    assert api_cart(client, w["buyer1"])["shops"] == []
    summary = client.get(f"/orders?checkout={placed[0]['checkout_id']}")
    assert summary.status_code == 200 and "小小童装" in summary.text and "和田玉坊" in summary.text
    for o in placed:
        assert f'action="/orders/{o["id"]}/pay"' in summary.text
    assert (
        f'action="/checkouts/{placed[0]["checkout_id"]}/pay"' in summary.text and "¥1,496.00" in summary.text
    )
    assert "Your cart is empty" in client.get("/cart").text


def test_cart_lines_update_and_remove(client: TestClient, shop_world: dict) -> None:
    w = shop_world
    token = sign_in(client, "buyer1")
    fill_cart(client, token, w)
    lines = {
        line["sku_id"]: line["id"] for s in api_cart(client, w["buyer1"])["shops"] for line in s["lines"]
    }
    cheap = lines[w["bodysuit"]["skus"][0]["id"]]
    updated = client.post(
        f"/cart/items/{cheap}", data={"quantity": "3", "_csrf_token": token}, follow_redirects=False
    )
    assert updated.status_code == 303
    removed = client.post(
        f"/cart/items/{lines[w['bangle']['skus'][0]['id']]}/remove", data={"_csrf_token": token}
    )
    assert removed.status_code == 200
    cart = api_cart(client, w["buyer1"])
    assert [s["shop_id"] for s in cart["shops"]] == [w["shop1"]["id"]]
    assert cart["total_fen"] == 3 * 5900 + 2 * 6900  # ¥315: free shipping
    # Someone else's cart line: 404, nothing changes.
    other = sign_in(client, "buyer2")
    assert (
        client.post(f"/cart/items/{cheap}", data={"quantity": "9", "_csrf_token": other}).status_code == 404
    )
    assert client.post(f"/cart/items/{cheap}/remove", data={"_csrf_token": other}).status_code == 404
    assert api_cart(client, w["buyer1"])["total_fen"] == 3 * 5900 + 2 * 6900


def test_someone_elses_address_places_no_order(client: TestClient, shop_world: dict) -> None:
    w = shop_world
    token = sign_in(client, "buyer1")
    add_address(client, token)
    sku = w["bangle"]["skus"][0]
    page = client.get("/buy", params={"sku_id": sku["id"], "quantity": 1})
    form = {"_csrf_token": token, "idempotency_key": hidden(page.text, "idempotency_key"),
            "sku_id": str(sku["id"]), "quantity": "1", "source": "shelf",
            "address_id": str(w["other_address"])}  # fmt: skip
    refused = client.post("/buy", data=form)
    assert refused.status_code in (404, 422) and "address_id" in marked(refused.text)
    assert "Choose one of your own addresses" in refused.text

    fill_cart(client, token, w)
    cart = client.get("/cart").text
    checkout = client.post("/cart/checkout", data=checkout_form(cart, token, w["other_address"]))
    assert checkout.status_code in (404, 422) and "address_id" in marked(checkout.text)
    assert api_orders(client, w["buyer1"]) == []
    assert len(api_cart(client, w["buyer1"])["shops"]) == 2
    assert sku_stock(client, w["bangle"]["id"], sku["id"]) == sku["stock"]

    no_address = client.post("/cart/checkout", data={**checkout_form(cart, token, 1), "address_id": ""})
    assert no_address.status_code == 422 and "address_id" in marked(no_address.text)


def test_addresses_page_adds_validates_and_deletes(client: TestClient, shop_world: dict) -> None:
    token = sign_in(client, "buyer1")
    page = client.get("/addresses", params={"next": "/cart#checkout"})
    assert page.status_code == 200 and 'href="/cart#checkout"' in page.text
    bad = client.post("/addresses", data={**ADDRESS, "phone": "call me", "region": "", "_csrf_token": token})
    assert bad.status_code == 422 and marked(bad.text) & {"phone", "region"}
    assert client.get("/api/v1/me/addresses", headers=shop_world["buyer1"]).json() == []
    saved = client.post(
        "/addresses", data={**ADDRESS, "next": "/cart#checkout", "_csrf_token": token}, follow_redirects=False
    )
    assert saved.status_code == 303 and saved.headers["location"] == "/cart#checkout"
    evil = client.post(
        "/addresses", data={**ADDRESS, "next": "//evil.example", "_csrf_token": token}, follow_redirects=False
    )
    assert evil.headers["location"] == "/addresses"
    mine = client.get("/api/v1/me/addresses", headers=shop_world["buyer1"]).json()
    assert len(mine) == 2 and mine[0]["is_default"]
    other = client.post(f"/addresses/{shop_world['other_address']}/delete", data={"_csrf_token": token})
    assert other.status_code == 404
    gone = client.post(
        f"/addresses/{mine[1]['id']}/delete", data={"_csrf_token": token}, follow_redirects=False
    )
    assert gone.status_code == 303
    assert len(client.get("/api/v1/me/addresses", headers=shop_world["buyer1"]).json()) == 1
    assert len(client.get("/api/v1/me/addresses", headers=shop_world["buyer2"]).json()) == 1


# --- orders: pay, ship, deliver, confirm ------------------------------------------------------


def test_merchant_ships_and_the_buyer_confirms_receipt(
    client: TestClient, shop_world: dict, settings: Settings
) -> None:
    w = shop_world
    token = sign_in(client, "buyer1")
    address_id = add_address(client, token)
    order_id = order_id_from(client, buy_now(client, token, w["bodysuit"]["skus"][0]["id"], 1, address_id))
    token = sign_in(client, "merchant1")
    unpaid = {"carrier": "SF", "tracking_no": "SF1234567890", "_csrf_token": token}
    assert client.post(f"/console/orders/{order_id}/ship", data=unpaid).status_code == 409  # not paid yet
    mark_paid(settings, order_id, 5900 + 800)

    console = client.get("/console")
    assert 'href="/console/orders?shop=' in console.text and 'href="/console/shipping?shop=' in console.text
    queue = client.get("/console/orders")
    assert queue.status_code == 200
    assert f'href="/console/orders/{order_id}"' in queue.text and "王芳" in queue.text
    assert "儿童纯棉连体衣" in queue.text and "¥67.00" in queue.text
    assert f'href="/console/orders/{order_id}"' not in client.get("/console/orders?status=shipped").text
    detail = client.get(f"/console/orders/{order_id}")
    assert detail.status_code == 200 and f'action="/console/orders/{order_id}/ship"' in detail.text
    assert 'value="SF"' in detail.text and "文三路 1 号" in detail.text

    ship = f"/console/orders/{order_id}/ship"
    for bad, field in (
        ({"carrier": "SF", "tracking_no": "bad no!"}, "tracking_no"),
        ({"carrier": "SF", "tracking_no": "12"}, "tracking_no"),
        ({"carrier": "XX", "tracking_no": "SF1234567890"}, "carrier"),
        ({"carrier": "", "tracking_no": "SF1234567890"}, "carrier"),
    ):
        response = client.post(ship, data={**bad, "_csrf_token": token})
        assert response.status_code == 422, bad
        assert field in marked(response.text), (bad, marked(response.text))
    assert client.get(f"/api/v1/orders/{order_id}", headers=w["merchant1"]).json()["status"] == "paid"

    shipped = client.post(
        ship,
        data={"carrier": "SF", "tracking_no": "SF1234567890", "_csrf_token": token},
        follow_redirects=False,
    )
    assert shipped.status_code == 303
    page = client.get(shipped.headers["location"])
    assert "Marked as shipped" in page.text and "SF Express" in page.text and "SF1234567890" in page.text
    again = client.post(ship, data={"carrier": "SF", "tracking_no": "SF1234567890", "_csrf_token": token})
    assert again.status_code == 409
    delivered = client.post(
        f"/console/orders/{order_id}/delivered", data={"_csrf_token": token}, follow_redirects=False
    )
    assert delivered.status_code == 303

    token = sign_in(client, "buyer1")
    mine = client.get(f"/orders/{order_id}")
    assert "Delivered" in mine.text and f'action="/orders/{order_id}/confirm"' in mine.text
    assert "SF Express" in mine.text and "SF1234567890" in mine.text
    confirmed = client.post(
        f"/orders/{order_id}/confirm", data={"_csrf_token": token}, follow_redirects=False
    )
    assert confirmed.status_code == 303
    done = client.get(confirmed.headers["location"])
    assert 'data-status="completed"' in done.text and "Thank you for confirming receipt" in done.text
    assert "receipt confirmed by the buyer" in done.text  # the timeline
    twice = client.post(f"/orders/{order_id}/confirm", data={"_csrf_token": token})
    assert twice.status_code == 409 and 'data-status="completed"' in twice.text
    assert client.get(f"/api/v1/orders/{order_id}", headers=w["buyer1"]).json()["status"] == "completed"


async def _deliver_tracking(settings: Settings, after: dt.timedelta) -> None:
    engine = create_engine(settings.database_url)
    try:
        await fulfillment_tasks.deliver_tracking(create_sessionmaker(engine), settings, now=utcnow() + after)
    finally:
        await engine.dispose()


async def _move_ship_by(url: str, order_id: int, hours: float) -> None:
    engine = create_engine(url)
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            order = await session.get(Order, order_id)
            order.ship_by = order.ship_by + dt.timedelta(hours=hours)
    finally:
        await engine.dispose()


def test_the_console_shows_the_ship_by_deadline_and_how_late_it_shipped(
    client: TestClient, shop_world: dict, settings: Settings
) -> None:
    w = shop_world
    token = sign_in(client, "buyer1")
    address_id = add_address(client, token)
    order_id = order_id_from(client, buy_now(client, token, w["bodysuit"]["skus"][0]["id"], 1, address_id))
    mark_paid(settings, order_id, 5900 + 800)
    token = sign_in(client, "merchant1")
    detail = client.get(f"/console/orders/{order_id}")
    assert 'class="hint" id="ship-by"' in detail.text and "Ship by" in detail.text
    run(_move_ship_by(settings.database_url, order_id, -50))  # 48 h after payment, 50 h ago: 2 h late
    overdue = client.get(f"/console/orders/{order_id}")
    assert 'class="alert" role="alert" id="ship-by"' in overdue.text and "Overdue" in overdue.text
    shipped = client.post(
        f"/console/orders/{order_id}/ship",
        data={"carrier": "SF", "tracking_no": "SF1234567890", "_csrf_token": token},
        follow_redirects=False,
    )
    assert shipped.status_code == 303
    page = client.get(shipped.headers["location"])
    assert re.search(r'id="lateness">2 h [01] min late<', page.text), page.text
    api = client.get(f"/api/v1/orders/{order_id}", headers=w["merchant1"]).json()
    assert api["status"] == "shipped" and 120 <= api["shipped_late_minutes"] <= 121
    assert "Parcel tracking" in page.text and "Handed to the carrier" in page.text
    client.cookies.set("tl_lang", "zh_Hans")
    assert "迟发 2 小时" in client.get(shipped.headers["location"]).text
    client.cookies.set("tl_lang", "en")

    # Two days later the tracking service has reported every stage: the buyer sees the journey.
    run(_deliver_tracking(settings, dt.timedelta(hours=49)))
    sign_in(client, "buyer1")
    mine = client.get(f"/orders/{order_id}").text
    stages = ["Delivered to the address", "In transit", "Picked up by the carrier", "Handed to the carrier"]
    assert all(stage in mine for stage in stages)
    assert [mine.index(stage) for stage in stages] == sorted(
        mine.index(stage) for stage in stages
    )  # newest first
    assert "已签收" in mine  # the carrier's own place note
    assert client.get(f"/api/v1/orders/{order_id}", headers=w["buyer1"]).json()["status"] == "delivered"


def test_buyer_cancels_an_unpaid_order_and_the_stock_returns(client: TestClient, shop_world: dict) -> None:
    w = shop_world
    token = sign_in(client, "buyer1")
    address_id = add_address(client, token)
    sku = w["bangle"]["skus"][0]
    order_id = order_id_from(client, buy_now(client, token, sku["id"], 2, address_id))
    assert sku_stock(client, w["bangle"]["id"], sku["id"]) == sku["stock"] - 2

    other = sign_in(client, "buyer2")
    assert client.post(f"/orders/{order_id}/cancel", data={"_csrf_token": other}).status_code == 404
    assert client.post(f"/orders/{order_id}/confirm", data={"_csrf_token": other}).status_code == 404

    token = sign_in(client, "buyer1")
    cancelled = client.post(f"/orders/{order_id}/cancel", data={"_csrf_token": token}, follow_redirects=False)
    assert cancelled.status_code == 303
    page = client.get(cancelled.headers["location"])
    assert 'data-status="cancelled"' in page.text and "cancelled by the buyer" in page.text
    assert f'action="/orders/{order_id}/pay"' not in page.text
    assert sku_stock(client, w["bangle"]["id"], sku["id"]) == sku["stock"]
    assert f'id="order-{order_id}"' in client.get("/orders?status=closed").text


def test_who_may_see_which_order(client: TestClient, shop_world: dict) -> None:
    w = shop_world
    token = sign_in(client, "buyer1")
    address_id = add_address(client, token)
    order_id = order_id_from(client, buy_now(client, token, w["bangle"]["skus"][0]["id"], 1, address_id))
    # The buyer is not the shop.
    assert client.get("/console/orders").status_code == 403
    assert client.get(f"/console/orders/{order_id}").status_code in (403, 404)
    ship = {"carrier": "SF", "tracking_no": "SF1234567890", "_csrf_token": token}
    assert client.post(f"/console/orders/{order_id}/ship", data=ship).status_code in (403, 404)
    assert client.get("/console/shipping").status_code == 403
    # Another buyer sees nothing.
    sign_in(client, "buyer2")
    assert client.get(f"/orders/{order_id}").status_code == 404
    assert f'id="order-{order_id}"' not in client.get("/orders").text
    # Another shop neither; the bangle's own shop sees it in its console.
    sign_in(client, "merchant1")
    assert client.get(f"/console/orders/{order_id}").status_code == 404
    assert f'href="/console/orders/{order_id}"' not in client.get("/console/orders?status=all").text
    sign_in(client, "merchant2")
    assert client.get(f"/console/orders/{order_id}").status_code == 200
    assert client.get(f"/orders/{order_id}", follow_redirects=False).headers["location"] == (
        f"/console/orders/{order_id}"
    )
    assert client.get(f"/console/orders?status=pending_payment&shop={w['shop1']['id']}").status_code == 403
    assert client.get("/orders?status=bogus").status_code == 422
    assert client.get("/console/orders?status=bogus").status_code == 422
    assert client.get("/orders?cursor=garbage!").status_code == 400
    assert client.get("/orders/999999").status_code == 404


@pytest.mark.parametrize(
    "path", ["/cart", "/orders", "/orders/1", "/addresses", "/buy?sku_id=1", "/console/orders"]
)
def test_anonymous_visitors_are_sent_to_sign_in(client: TestClient, path: str) -> None:
    response = client.get(path, follow_redirects=False)
    assert response.status_code in (302, 303)
    location = response.headers["location"]
    assert location.startswith("/login?next=") and unquote(location.split("=", 1)[1]) == path


def test_my_orders_pages_with_a_cursor(
    client: TestClient, shop_world: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pages, "PAGE_SIZE", 2)
    token = sign_in(client, "buyer1")
    address_id = add_address(client, token)
    ids = [order_id_from(client, buy_now(client, token, shop_world["bangle"]["skus"][0]["id"], 1, address_id))
           for _ in range(3)]  # fmt: skip
    first = client.get("/orders")
    shown = [int(i) for i in re.findall(r'id="order-(\d+)"', first.text)]
    assert shown == ids[::-1][:2]
    more = re.search(r'href="\?cursor=([^"]+)"', first.text)
    assert more, "no link to the next page"
    second = client.get(f"/orders?cursor={more.group(1)}")
    assert [int(i) for i in re.findall(r'id="order-(\d+)"', second.text)] == [ids[0]]
    assert 'rel="next"' not in second.text


# --- shipping terms ---------------------------------------------------------------------------


def test_owner_sets_shipping_terms(client: TestClient, shop_world: dict) -> None:
    w = shop_world
    token = sign_in(client, "merchant2")
    page = client.get("/console/shipping")
    assert page.status_code == 200 and 'name="flat_fee"' in page.text
    shop_id = str(w["shop2"]["id"])
    for bad, field in (
        ({"flat_fee": "abc", "free_over": ""}, "flat_fee"),
        ({"flat_fee": "-5", "free_over": ""}, "flat_fee"),
        ({"flat_fee": "8", "free_over": "0"}, "free_over"),
        ({"flat_fee": "8", "free_over": "1.234"}, "free_over"),
    ):
        response = client.post("/console/shipping", data={**bad, "shop_id": shop_id, "_csrf_token": token})
        assert response.status_code == 422, bad
        assert field in marked(response.text), (bad, marked(response.text))
    terms = client.get(f"/api/v1/shops/{shop_id}/terms").json()
    assert terms["flat_fee_fen"] == 0 and terms["free_over_fen"] is None
    saved = client.post(
        "/console/shipping",
        data={"flat_fee": "12", "free_over": "2000.50", "shop_id": shop_id, "_csrf_token": token},
        follow_redirects=False,
    )
    assert saved.status_code == 303
    page = client.get(saved.headers["location"])
    assert 'value="12.00"' in page.text and 'value="2000.50"' in page.text and "Saved" in page.text
    terms = client.get(f"/api/v1/shops/{shop_id}/terms").json()
    assert terms["flat_fee_fen"] == 1200 and terms["free_over_fen"] == 200050
    # Someone else's shop: refused, unchanged.
    theirs = {"flat_fee": "99", "free_over": "", "shop_id": str(w["shop1"]["id"]), "_csrf_token": token}
    assert client.post("/console/shipping", data=theirs).status_code == 403
    assert client.get(f"/api/v1/shops/{w['shop1']['id']}/terms").json()["flat_fee_fen"] == 800
    # Blank means free.
    cleared = {"flat_fee": "", "free_over": "", "shop_id": shop_id, "_csrf_token": token}
    assert client.post("/console/shipping", data=cleared, follow_redirects=False).status_code == 303
    assert client.get(f"/api/v1/shops/{shop_id}/terms").json()["flat_fee_fen"] == 0


def test_checkout_page_csrf(client: TestClient, shop_world: dict) -> None:
    """The checkout forms ride on the session cookie: without the page's token nothing is placed."""
    token = sign_in(client, "buyer1")
    address_id = add_address(client, token)
    fill_cart(client, token, shop_world)
    form = checkout_form(client.get("/cart").text, token, address_id)
    del form["_csrf_token"]
    assert client.post("/cart/checkout", data=form).status_code == 403
    assert api_orders(client, shop_world["buyer1"]) == []
    assert csrf_of(client.get("/cart").text)


# --- paying after checkout, and the shop's refund form ----------------------------------------


async def _deliver(settings: Settings) -> int:
    engine = create_engine(settings.database_url)
    try:
        report = await payment_tasks.deliver_webhooks(create_sessionmaker(engine), settings)
        return report.delivered
    finally:
        await engine.dispose()


def deliver(settings: Settings) -> int:
    """The sandbox's queued webhooks, applied in process (what the app's scheduler does)."""
    return run(_deliver(settings))


def press(client: TestClient, pay_url: str, action: str) -> str:
    """The sandbox's hosted page: press Pay or Decline (with the page's CSRF token)."""
    page = client.get(pay_url)
    assert page.status_code == 200, page.text
    done = client.post(
        pay_url,
        data={"_csrf_token": hidden(page.text, "_csrf_token"), "action": action},
        follow_redirects=False,
    )
    assert done.status_code in (200, 303), done.text
    return done.headers.get("location", "")


def test_checkout_pays_and_the_order_page_follows_the_payment(
    client: TestClient, shop_world: dict, settings: Settings
) -> None:
    w = shop_world
    token = sign_in(client, "buyer1")
    address_id = add_address(client, token)
    sku = w["bangle"]["skus"][0]
    page = client.get("/buy", params={"sku_id": sku["id"], "quantity": 1})
    form = {"_csrf_token": token, "idempotency_key": hidden(page.text, "idempotency_key"),
            "sku_id": str(sku["id"]), "quantity": "1", "source": "shelf", "address_id": str(address_id)}  # fmt: skip
    placed = client.post("/buy", data=form, follow_redirects=False)
    pay_url = placed.headers["location"]
    order_id = order_id_from(client, pay_url)
    # A double submit of the checkout form: the same order, the same payment, the same pay page.
    again = client.post("/buy", data=form, follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"] == pay_url
    assert len(api_orders(client, w["buyer1"])) == 1

    back = press(client, pay_url, "pay")
    assert re.fullmatch(r"/pay/return\?intent=\d+", back), back
    landing = client.get(back)
    assert 'data-status="requires_payment"' in landing.text and "hx-get" in landing.text
    assert 'data-payment-state="started"' in client.get(f"/orders/{order_id}").text

    assert deliver(settings) == 1  # the webhook arrives
    detail = client.get(f"/orders/{order_id}")
    assert 'data-status="paid"' in detail.text and 'data-payment-state=""' in detail.text
    assert f'hx-get="/orders/{order_id}"' not in detail.text
    assert f'action="/orders/{order_id}/pay"' not in detail.text
    status = client.get(back, headers={"HX-Request": "true"})
    assert 'data-status="succeeded"' in status.text and 'data-outcome="paid"' in status.text
    # The same form once more, now that it is paid: no new payment, the order itself.
    replay = client.post("/buy", data=form, follow_redirects=False)
    assert replay.status_code == 303 and replay.headers["location"] == f"/orders/{order_id}?placed=1"


def test_a_declined_payment_shows_on_the_order_page(
    client: TestClient, shop_world: dict, settings: Settings
) -> None:
    token = sign_in(client, "buyer1")
    address_id = add_address(client, token)
    pay_url = buy_now(client, token, shop_world["bangle"]["skus"][0]["id"], 1, address_id)
    order_id = order_id_from(client, pay_url)
    assert press(client, pay_url, "decline") == ""  # the sandbox's page stays, to try again
    deliver(settings)
    detail = client.get(f"/orders/{order_id}")
    assert 'data-status="pending_payment"' in detail.text and 'data-payment-state="failed"' in detail.text
    assert "did not go through" in detail.text and f'hx-get="/orders/{order_id}"' not in detail.text
    # "Pay" again: the same payment (its page stays open after a decline).
    retry = client.post(f"/orders/{order_id}/pay", data={"_csrf_token": token}, follow_redirects=False)
    assert retry.headers["location"] == pay_url


def test_shop_refunds_from_the_console(client: TestClient, shop_world: dict, settings: Settings) -> None:
    w = shop_world
    token = sign_in(client, "buyer1")
    address_id = add_address(client, token)
    pay_url = buy_now(client, token, w["bodysuit"]["skus"][0]["id"], 1, address_id)  # ¥59 + ¥8
    order_id = order_id_from(client, pay_url)
    sign_in(client, "merchant1")
    assert 'id="refund"' not in client.get(f"/console/orders/{order_id}").text  # nothing paid yet
    sign_in(client, "buyer1")
    press(client, pay_url, "pay")
    deliver(settings)

    token = sign_in(client, "merchant1")
    page = client.get(f"/console/orders/{order_id}")
    assert 'id="refund"' in page.text and f'action="/console/orders/{order_id}/refund"' in page.text
    assert "Up to ¥67.00 can still be refunded" in page.text
    key = re.search(r'id="refund".*?name="idempotency_key" value="([^"]+)"', page.text, re.S)
    assert key, "the refund form has no idempotency key"
    url = f"/console/orders/{order_id}/refund"
    good = {"amount": "10.50", "reason": "a button is missing", "idempotency_key": key.group(1),
            "_csrf_token": token}  # fmt: skip
    for bad, field, status in (
        ({"amount": "ten"}, "amount", 422),
        ({"amount": "0"}, "amount", 422),
        ({"reason": ""}, "reason", 422),
        ({"amount": "67.01"}, "amount", 409),  # more than was paid
    ):
        refused = client.post(url, data={**good, **bad})
        assert refused.status_code == status, (bad, refused.status_code)
        assert marked(refused.text) == {field}, (bad, marked(refused.text))
        assert 'id="refund"' in refused.text and f"Order {order_id}" in refused.text  # the console page
        assert f'value="{bad.get("amount", good["amount"])}"' in refused.text  # what was typed stays
    assert "more than is left to refund" in refused.text
    for _ in range(2):  # a double submit refunds once
        done = client.post(url, data=good, follow_redirects=False)
        assert (
            done.status_code == 303
            and done.headers["location"] == f"/console/orders/{order_id}?done=refunded"
        )
    after = client.get(done.headers["location"])
    assert "Refund recorded" in after.text and "Up to ¥56.50 can still be refunded" in after.text
    refunds = client.get(f"/api/v1/orders/{order_id}/payments", headers=w["merchant1"]).json()["refunds"]
    assert [(r["amount_fen"], r["reason"]) for r in refunds] == [(1050, "a button is missing")]
    # The same key for another amount, then the rest in full: the order closes, the form goes.
    mismatch = client.post(url, data={**good, "amount": "11"})
    assert mismatch.status_code == 422 and "already sent with other details" in mismatch.text
    rest = {**good, "amount": "56.50", "idempotency_key": "rest-1"}
    assert client.post(url, data=rest, follow_redirects=False).status_code == 303
    assert client.get(f"/api/v1/orders/{order_id}", headers=w["buyer1"]).json()["status"] == "refunded"
    assert 'id="refund"' not in client.get(f"/console/orders/{order_id}").text
    late = client.post(url, data={**good, "amount": "1", "idempotency_key": "late-1"})
    assert late.status_code == 409 and "cannot be refunded" in late.text  # shown though the form is gone
    # Not the shop: refused outright (the error page), nothing refunded.
    buyer_token = sign_in(client, "buyer1")
    other = client.post(url, data={**good, "idempotency_key": "b-1", "_csrf_token": buyer_token})
    assert other.status_code == 403
    other_shop = sign_in(client, "merchant2")
    refused = client.post(url, data={**good, "idempotency_key": "m-2", "_csrf_token": other_shop})
    assert refused.status_code == 404
    refunds = client.get(f"/api/v1/orders/{order_id}/payments", headers=w["merchant1"]).json()["refunds"]
    assert sum(r["amount_fen"] for r in refunds) == 6700


def test_ops_refund_lands_on_the_order_and_the_timeline_reads_well(
    client: TestClient, shop_world: dict, settings: Settings
) -> None:
    w = shop_world
    token = sign_in(client, "buyer1")
    address_id = add_address(client, token)
    pay_url = buy_now(client, token, w["bodysuit"]["skus"][0]["id"], 1, address_id)  # ¥59 + ¥8
    order_id = order_id_from(client, pay_url)
    press(client, pay_url, "pay")
    deliver(settings)

    # Ops are not the shop's staff, yet may refund; they land on the order as the shop sees it.
    ops_token = sign_in(client, "ops1")
    page = client.get(f"/console/orders/{order_id}")
    assert page.status_code == 200 and 'id="refund"' in page.text
    form = {"amount": "10.50", "reason": "goodwill", "idempotency_key": "ops-1", "_csrf_token": ops_token}
    done = client.post(f"/console/orders/{order_id}/refund", data=form, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == f"/console/orders/{order_id}?done=refunded"
    landed = client.get(done.headers["location"])
    assert landed.status_code == 200 and "Up to ¥56.50 can still be refunded" in landed.text
    refunds = client.get(f"/api/v1/orders/{order_id}/payments", headers=w["merchant1"]).json()["refunds"]
    assert [(r["amount_fen"], r["reason"]) for r in refunds] == [(1050, "goodwill")]

    # The buyer's timeline: the payment by its number, in the reader's language; no raw codes.
    sign_in(client, "buyer1")
    detail = client.get(f"/orders/{order_id}")
    assert re.search(r"paid with payment no\. \d+", detail.text), detail.text
    assert "payment payment:" not in detail.text
    client.cookies.set("tl_lang", "zh_Hans")
    zh = client.get(f"/orders/{order_id}").text
    assert "已付款，支付单号" in zh and "payment payment:" not in zh


def test_owner_sets_return_terms_and_the_address_stays_private(client: TestClient, shop_world: dict) -> None:
    w = shop_world
    token = sign_in(client, "merchant2")
    shop_id = str(w["shop2"]["id"])
    page = client.get(f"/console/shipping?shop={shop_id}")
    assert (
        page.status_code == 200
        and 'action="/console/returns"' in page.text
        and "No return address" in page.text
    )
    good = {"recipient": "退货组", "phone": "13900000000", "region": "广东省深圳市南山区", "detail": "科技园 8 号",
            "covers": "1", "shop_id": shop_id, "_csrf_token": token}  # fmt: skip
    bad = client.post("/console/returns", data={**good, "phone": "call me"})
    assert bad.status_code == 422 and "phone" in marked(bad.text)
    assert client.get(f"/api/v1/shops/{shop_id}/terms").json()["return_address"] is None
    saved = client.post("/console/returns", data=good, follow_redirects=False)
    assert saved.status_code == 303
    page = client.get(saved.headers["location"])
    assert "科技园 8 号" in page.text and "checked" in page.text
    mine = client.get(f"/api/v1/shops/{shop_id}/terms").json()
    assert mine["covers_return_shipping"] is True and mine["return_address"]["detail"] == "科技园 8 号"
    # Visitors learn whether the shop pays return postage, not where it lives.
    client.cookies.clear()
    public = client.get(f"/api/v1/shops/{shop_id}/terms").json()
    assert public["covers_return_shipping"] is True and public["return_address"] is None
    # Someone else's shop: refused, unchanged; the JSON API has the same rules.
    other = token_for(client, "merchant1")
    body = {"return_address": {k: good[k] for k in ("recipient", "phone", "region", "detail")}}
    assert client.put(f"/api/v1/shops/{shop_id}/returns", json=body, headers=other).status_code == 403
    assert (
        client.put(f"/api/v1/shops/{w['shop1']['id']}/returns", json=body, headers=other).status_code == 200
    )
    assert (
        client.put(
            f"/api/v1/shops/{w['shop1']['id']}/returns", json={"return_address": {}}, headers=other
        ).status_code
        == 422
    )
    for blank in ("recipient", "region", "detail"):  # spaces alone would be stored as an empty address
        spaced = {"return_address": {**body["return_address"], blank: "   "}}
        refused = client.put(f"/api/v1/shops/{w['shop1']['id']}/returns", json=spaced, headers=other)
        assert refused.status_code == 422
        assert refused.json()["error"]["fields"][0]["field"] == f"return_address.{blank}"


def test_ops_see_overdue_shipments_longest_overdue_first(
    client: TestClient, shop_world: dict, settings: Settings
) -> None:
    w = shop_world
    token = sign_in(client, "buyer1")
    address_id = add_address(client, token)
    ids = []
    for _ in range(3):
        ids.append(
            order_id_from(client, buy_now(client, token, w["bodysuit"]["skus"][0]["id"], 1, address_id))
        )
        mark_paid(settings, ids[-1], 5900 + 800)
    run(_move_ship_by(settings.database_url, ids[0], -50))  # 2 h overdue
    run(_move_ship_by(settings.database_url, ids[1], -53))  # 5 h overdue: listed first
    # ids[2] is within its 48 hours.
    listed = client.get("/api/v1/ops/overdue-shipments", headers=w["ops1"])
    assert listed.status_code == 200
    assert listed.json()["total"] == 2 and [o["id"] for o in listed.json()["items"]] == [ids[1], ids[0]]
    assert client.get("/api/v1/ops/overdue-shipments", headers=w["merchant1"]).status_code == 403
    assert client.get("/ops/shipping").status_code == 403  # the buyer, signed in
    sign_in(client, "ops1")
    page = client.get("/ops/shipping")
    assert page.status_code == 200 and "2 orders are overdue" in page.text
    assert page.text.index(f'data-order="{ids[1]}"') < page.text.index(f'data-order="{ids[0]}"')
    assert f'data-order="{ids[2]}"' not in page.text and re.search(r"5 h [01] min late", page.text)
    client.cookies.set("tl_lang", "zh_Hans")
    assert "超时未发货" in client.get("/ops/shipping").text
    client.cookies.set("tl_lang", "en")
    # Once shipped it leaves the list.
    merchant = sign_in(client, "merchant1")
    shipped = client.post(f"/console/orders/{ids[1]}/ship", follow_redirects=False,
                          data={"carrier": "SF", "tracking_no": "SF99887766", "_csrf_token": merchant})  # fmt: skip
    assert shipped.status_code == 303
    assert [
        o["id"] for o in client.get("/api/v1/ops/overdue-shipments", headers=w["ops1"]).json()["items"]
    ] == [ids[0]]
