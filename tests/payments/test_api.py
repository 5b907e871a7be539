"""Payments over HTTP: the JSON API, the sandbox's hosted page with CSRF, signed webhooks to our
endpoint, the return page and refunds, with the bad input a real client would send."""

from __future__ import annotations

import asyncio
import re
import time

import pytest
from litestar.testing import TestClient

from tests.helpers import add_category, create_user, kids_garment, open_shop, token_for
from trustlive.app import create_app
from trustlive.config import Settings
from trustlive.db import create_engine, create_sessionmaker
from trustlive.payments import tasks
from trustlive.payments.providers import SandboxProvider, get_provider


@pytest.fixture
def shop(client: TestClient, users: dict[str, dict[str, str]], settings: Settings) -> dict:
    """merchant1's shop with one published product, and two buyers with an address each."""
    kids = add_category(client, users["ops1"], "kids", "童装")
    shop = open_shop(client, users["merchant1"])
    created = client.post(f"/api/v1/shops/{shop['id']}/products", json=kids_garment(kids["id"]),
                          headers=users["merchant1"])  # fmt: skip
    assert created.status_code == 201, created.text
    product = created.json()
    assert (
        client.post(f"/api/v1/products/{product['id']}/publish", headers=users["merchant1"]).status_code
        == 200
    )
    create_user(settings.database_url, "buyer2", "buyer")
    buyers = {"buyer1": users["buyer1"], "buyer2": token_for(client, "buyer2")}
    addresses = {}
    for name, headers in buyers.items():
        body = {
            "recipient": "王芳",
            "phone": "13800000000",
            "region": "浙江省杭州市",
            "detail": "文三路 1 号",
        }
        response = client.post("/api/v1/me/addresses", json=body, headers=headers)
        assert response.status_code == 201, response.text
        addresses[name] = response.json()["id"]
    return {**users, **buyers, "sku": product["skus"][0], "addresses": addresses, "shop": shop}


def buy(
    client: TestClient, world: dict, who: str = "buyer1", key: str = "order-1", quantity: int = 1
) -> dict:
    body = {
        "items": [{"sku_id": world["sku"]["id"], "quantity": quantity}],
        "address_id": world["addresses"][who],
    }
    response = client.post("/api/v1/orders", json=body, headers={**world[who], "Idempotency-Key": key})
    assert response.status_code == 201, response.text
    return response.json()


def pay(client: TestClient, world: dict, order_id: int, key: str = "pay-1", who: str = "buyer1"):  # type: ignore[no-untyped-def]
    return client.post(f"/api/v1/orders/{order_id}/payments", headers={**world[who], "Idempotency-Key": key})


def deliver(client: TestClient, settings: Settings) -> tasks.DeliveryReport:
    """The sandbox sends its queued webhooks to our HTTP endpoint."""

    async def run() -> tasks.DeliveryReport:
        engine = create_engine(settings.database_url)
        try:
            return await tasks.deliver_webhooks(
                create_sessionmaker(engine), settings, tasks.http_sender(client)
            )
        finally:
            await engine.dispose()

    return asyncio.run(run())


def submit_refunds(settings: Settings) -> int:
    async def run() -> int:
        engine = create_engine(settings.database_url)
        try:
            return await tasks.submit_refunds(create_sessionmaker(engine), settings)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def csrf_of(client: TestClient, pay_url: str) -> str:
    page = client.get(pay_url)
    assert page.status_code == 200
    token = re.search(r'name="_csrf_token" value="([^"]+)"', page.text)
    assert token, page.text
    return token.group(1)


def press(client: TestClient, pay_url: str, action: str):  # type: ignore[no-untyped-def]
    """Open the sandbox's page in a browser-like client and press a button (with its CSRF token)."""
    token = csrf_of(client, pay_url)
    return client.post(pay_url, data={"_csrf_token": token, "action": action}, follow_redirects=False)


def test_pay_an_order_over_http(client: TestClient, shop: dict, settings: Settings) -> None:
    order = buy(client, shop, quantity=2)
    created = pay(client, shop, order["id"])
    assert created.status_code == 201, created.text
    payment = created.json()
    assert payment["status"] == "requires_payment" and payment["amount_fen"] == order["total_fen"]
    assert payment["orders"] == [{"order_id": order["id"], "amount_fen": order["total_fen"], "outcome": None}]
    assert pay(client, shop, order["id"]).json()["id"] == payment["id"]  # same key, same payment

    page = client.get(payment["pay_url"])
    assert page.status_code == 200 and "¥118.00" in page.text and "trustlive" in page.text
    assert client.post(payment["pay_url"], data={"action": "pay"}).status_code == 403  # no CSRF token
    paid = press(client, payment["pay_url"], "pay")
    assert paid.status_code == 303 and paid.headers["location"] == f"/pay/return?intent={payment['id']}"

    landing = client.get(f"/pay/return?intent={payment['id']}", headers=shop["buyer1"])
    assert landing.status_code == 200 and 'data-status="requires_payment"' in landing.text
    assert f'href="/orders/{order["id"]}"' in landing.text and "hx-get" in landing.text

    report = deliver(client, settings)
    assert report.delivered == 1
    detail = client.get(f"/api/v1/payments/{payment['id']}", headers=shop["buyer1"]).json()
    assert detail["status"] == "succeeded" and detail["pay_url"] is None
    assert detail["orders"][0]["outcome"] == "paid"
    assert client.get(f"/api/v1/orders/{order['id']}", headers=shop["buyer1"]).json()["status"] == "paid"
    status = client.get(
        f"/pay/return?intent={payment['id']}", headers={**shop["buyer1"], "HX-Request": "true"}
    )
    assert 'data-status="succeeded"' in status.text and "hx-get" not in status.text

    again = pay(client, shop, order["id"], key="pay-2")
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_paid"
    listed = client.get(f"/api/v1/orders/{order['id']}/payments", headers=shop["merchant1"])
    assert listed.status_code == 200 and [p["id"] for p in listed.json()["payments"]] == [payment["id"]]


def test_pay_a_checkout_and_the_pay_buttons(client: TestClient, shop: dict, settings: Settings) -> None:
    order = buy(client, shop)
    response = client.post(f"/api/v1/checkouts/{order['checkout_id']}/payments",
                           headers={**shop["buyer1"], "Idempotency-Key": "c-1"})  # fmt: skip
    assert response.status_code == 201 and response.json()["amount_fen"] == order["checkout_total_fen"]
    other = client.post(f"/api/v1/checkouts/{order['checkout_id']}/payments",
                        headers={**shop["buyer2"], "Idempotency-Key": "c-1"})  # fmt: skip
    assert other.status_code == 404
    # The page button sends the buyer to the provider; pressing it twice gives the same page.
    first = client.post(f"/orders/{order['id']}/pay", headers=shop["buyer1"], follow_redirects=False)
    second = client.post(
        f"/checkouts/{order['checkout_id']}/pay", headers=shop["buyer1"], follow_redirects=False
    )
    assert first.status_code == second.status_code == 303
    assert first.headers["location"].startswith("/sandbox/pay/pay_")
    assert first.headers["location"] == second.headers["location"]


def test_bad_payment_requests(client: TestClient, shop: dict) -> None:
    order = buy(client, shop)
    cases = [
        (client.post(f"/api/v1/orders/{order['id']}/payments", headers=shop["buyer1"]), 400,
         "idempotency_key_required"),
        (pay(client, shop, order["id"], who="buyer2"), 404, "order_not_found"),
        (pay(client, shop, 999999), 404, "order_not_found"),
        (client.post(f"/api/v1/orders/{order['id']}/payments", headers={"Idempotency-Key": "x"}), 401,
         "not_authenticated"),
        (client.get("/api/v1/payments/999999", headers=shop["buyer1"]), 404, "payment_not_found"),
    ]  # fmt: skip
    for response, status, code in cases:
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), response.text
    mine = pay(client, shop, order["id"]).json()
    assert client.get(f"/api/v1/payments/{mine['id']}", headers=shop["buyer2"]).status_code == 404
    assert client.get(f"/pay/return?intent={mine['id']}", headers=shop["buyer2"]).status_code == 404
    assert client.get("/sandbox/pay/pay_nope").status_code == 404
    assert client.get("/sandbox/pay/" + "x" * 200).status_code == 404


def test_webhook_endpoint_checks_signatures(client: TestClient, shop: dict, settings: Settings) -> None:
    order = buy(client, shop)
    payment = pay(client, shop, order["id"]).json()
    press(client, payment["pay_url"], "pay")
    sandbox = get_provider(settings, "sandbox")
    assert isinstance(sandbox, SandboxProvider)
    body = (
        '{"id":"evt_forged","type":"payment.succeeded","created":1,"data":{"object":"charge",'
        f'"ref":"{payment["pay_url"].rsplit("/", 1)[1]}","amount_fen":{order["total_fen"]}}}}}'
    ).encode()
    url = "/api/v1/payments/webhooks/sandbox"
    forged = SandboxProvider("not-the-secret").signed_headers(body)
    for headers in ({}, forged, {"X-Sandbox-Signature": "t=1,v1=00"}):
        response = client.post(url, content=body, headers={"Content-Type": "application/json", **headers})
        assert response.status_code == 400 and response.json()["error"]["code"] == "bad_signature"
    unknown = client.post(
        "/api/v1/payments/webhooks/paypal", content=body, headers=sandbox.signed_headers(body)
    )
    assert unknown.status_code == 404
    assert (
        client.get(f"/api/v1/orders/{order['id']}", headers=shop["buyer1"]).json()["status"]
        == "pending_payment"
    )
    # Correctly signed, it is accepted once; a replay is acknowledged and changes nothing.
    ok = client.post(url, content=body, headers=sandbox.signed_headers(body))
    assert ok.status_code == 200 and ok.json() == {
        "received": True,
        "event_id": "evt_forged",
        "outcome": "applied",
    }
    replay = client.post(url, content=body, headers=sandbox.signed_headers(body))
    assert replay.status_code == 200 and replay.json()["outcome"] == "duplicate"
    assert client.get(f"/api/v1/orders/{order['id']}", headers=shop["buyer1"]).json()["status"] == "paid"
    deliver(client, settings)  # the sandbox's own copy of the event: a second success is stale
    assert (
        client.get(f"/api/v1/payments/{payment['id']}", headers=shop["buyer1"]).json()["status"]
        == "succeeded"
    )


def test_refunds_over_http(client: TestClient, shop: dict, settings: Settings) -> None:
    order = buy(client, shop, quantity=2)
    total = order["total_fen"]
    payment = pay(client, shop, order["id"]).json()
    press(client, payment["pay_url"], "pay")
    deliver(client, settings)
    url = f"/api/v1/orders/{order['id']}/refunds"

    def refund(who: str, amount: object, key: str | None = "r-1", reason: object = "wrong size"):  # type: ignore[no-untyped-def]
        headers = {**shop[who], **({"Idempotency-Key": key} if key else {})}
        return client.post(url, json={"amount_fen": amount, "reason": reason}, headers=headers)

    assert refund("buyer1", 100).status_code == 403
    assert refund("buyer2", 100).status_code == 404
    assert refund("merchant2", 100).status_code == 404
    assert refund("merchant1", 100, key=None).json()["error"]["code"] == "idempotency_key_required"
    assert refund("merchant1", "100").status_code == 422  # no strings for money
    assert refund("merchant1", -5).status_code == 422
    assert refund("merchant1", 100, reason="").status_code == 422
    too_much = refund("merchant1", total + 1)
    assert too_much.status_code == 409 and too_much.json()["error"]["code"] == "refund_exceeds_payment"
    partial = refund("merchant1", 1000)
    assert partial.status_code == 201 and partial.json()["status"] == "pending"
    assert refund("merchant1", 1000).json()["id"] == partial.json()["id"]
    rest = refund("ops1", total - 1000, key="r-2")
    assert rest.status_code == 201
    assert client.get(f"/api/v1/orders/{order['id']}", headers=shop["buyer1"]).json()["status"] == "refunded"
    assert submit_refunds(settings) == 2
    deliver(client, settings)
    listed = client.get(f"/api/v1/orders/{order['id']}/payments", headers=shop["buyer1"]).json()
    assert [r["status"] for r in listed["refunds"]] == ["succeeded", "succeeded"]
    assert listed["payments"][0]["status"] == "refunded"


def test_decline_then_pay_on_the_sandbox_page(client: TestClient, shop: dict, settings: Settings) -> None:
    order = buy(client, shop)
    payment = pay(client, shop, order["id"]).json()
    declined = press(client, payment["pay_url"], "decline")
    assert declined.status_code == 200 and "declined" in declined.text.lower() or "拒绝" in declined.text
    deliver(client, settings)
    failed = client.get(f"/api/v1/payments/{payment['id']}", headers=shop["buyer1"]).json()
    assert failed["status"] == "failed" and failed["pay_url"] == payment["pay_url"]
    token = csrf_of(client, payment["pay_url"])
    for _ in range(2):  # pressing Pay twice (a double tap) charges once and goes back to the shop
        again = client.post(
            payment["pay_url"], data={"_csrf_token": token, "action": "pay"}, follow_redirects=False
        )
        assert again.status_code == 303
    assert "Paid" in client.get(payment["pay_url"], headers={"Accept-Language": "en"}).text
    deliver(client, settings)
    assert (
        client.get(f"/api/v1/payments/{payment['id']}", headers=shop["buyer1"]).json()["status"]
        == "succeeded"
    )


def test_the_app_delivers_webhooks_in_the_background(
    client: TestClient, shop: dict, settings: Settings
) -> None:
    """With the scheduler on (as in production), a paid order becomes paid with no test help."""
    order = buy(client, shop)
    payment = pay(client, shop, order["id"]).json()
    press(client, payment["pay_url"], "pay")
    # A second app on the same database, as a second worker process would be, with its scheduler on.
    with TestClient(create_app(settings.with_overrides(task_interval_seconds=0.1))) as live:
        for _ in range(100):
            status = live.get(f"/api/v1/payments/{payment['id']}", headers=shop["buyer1"]).json()["status"]
            if status == "succeeded":
                break
            time.sleep(0.05)
        assert status == "succeeded"
        assert live.get(f"/api/v1/orders/{order['id']}", headers=shop["buyer1"]).json()["status"] == "paid"


def test_refund_form_in_the_shop_console(client: TestClient, shop: dict, settings: Settings) -> None:
    order = buy(client, shop)
    payment = pay(client, shop, order["id"]).json()
    press(client, payment["pay_url"], "pay")
    deliver(client, settings)
    url = f"/console/orders/{order['id']}/refund"
    form = {"amount": "10.50", "reason": "a button is missing", "idempotency_key": "form-1"}
    for _ in range(2):  # a double submit refunds once
        done = client.post(url, data=form, headers=shop["merchant1"], follow_redirects=False)
        assert (
            done.status_code == 303
            and done.headers["location"] == f"/console/orders/{order['id']}?done=refunded"
        )
    assert client.post(url, data=form, headers=shop["buyer1"], follow_redirects=False).status_code == 403
    bad = client.post(
        url, data={**form, "amount": "ten", "idempotency_key": "form-2"}, headers=shop["merchant1"]
    )
    assert bad.status_code == 422
    listed = client.get(f"/api/v1/orders/{order['id']}/payments", headers=shop["merchant1"]).json()
    assert [(r["amount_fen"], r["reason"]) for r in listed["refunds"]] == [(1050, "a button is missing")]
