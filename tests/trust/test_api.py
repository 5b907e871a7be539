"""The trust JSON API over HTTP: every route's answer, who may call it, and bad input of every kind
given a clear 4xx (never a 500). On SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

import pytest
from litestar.testing import TestClient

from tests.helpers import add_category, kids_garment, open_shop, run
from trustlive.config import Settings
from trustlive.db import create_engine, create_sessionmaker, transaction
from trustlive.orders import service as orders
from trustlive.trust import service as trust

API = "/api/v1"
ADDRESS = {
    "recipient": "王芳",
    "phone": "13800000000",
    "region": "浙江省杭州市西湖区",
    "detail": "文三路 1 号",
}
KINDS = ("shop", "product", "creator")


async def _mark_paid(url: str, order_id: int, amount: int) -> str:
    engine = create_engine(url)
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            return await orders.mark_paid(session, order_id, amount, f"test-payment-{order_id}")
    finally:
        await engine.dispose()


async def _rebuild_facts(url: str) -> int:
    engine = create_engine(url)
    try:
        return await trust.rebuild_facts(create_sessionmaker(engine))
    finally:
        await engine.dispose()


def rebuild_facts(url: str) -> int:
    """Every order's facts derived now (the app's refresh job is not running in tests)."""
    return run(_rebuild_facts(url))


@pytest.fixture
def world(client: TestClient, users: dict[str, dict[str, str]], settings: Settings) -> dict:
    """merchant1's shop with a published bodysuit; creator1; buyer1 with an address."""
    kids = add_category(client, users["ops1"], "kids", "童装")
    shop = open_shop(client, users["merchant1"], "小小童装")
    product = client.post(
        f"{API}/shops/{shop['id']}/products", json=kids_garment(kids["id"]), headers=users["merchant1"]
    ).json()
    assert (
        client.post(f"{API}/products/{product['id']}/publish", headers=users["merchant1"]).status_code == 200
    )
    address = client.post(f"{API}/me/addresses", json=ADDRESS, headers=users["buyer1"])
    assert address.status_code == 201, address.text
    creator_id = client.get(f"{API}/me", headers=users["creator1"]).json()["id"]
    return {"h": users, "shop": shop, "product": product, "address": address.json()["id"],
            "creator_id": creator_id, "url": settings.database_url}  # fmt: skip


def order(client: TestClient, world: dict, *, creator: bool = True, to: str = "delivered") -> tuple[int, int]:
    """buyer1 buys the bodysuit (through creator1 unless ``creator`` is False); moved on to
    ``to`` (paid, shipped, delivered): (order id, line id)."""
    h = world["h"]
    body = {
        "items": [{"sku_id": world["product"]["skus"][0]["id"], "quantity": 1}],
        "address_id": world["address"],
    }
    if creator:
        body |= {"source": "alliance_link", "creator_id": world["creator_id"]}
    placed = client.post(
        f"{API}/orders", json=body, headers={**h["buyer1"], "Idempotency-Key": uuid.uuid4().hex}
    )
    assert placed.status_code == 201, placed.text
    o = placed.json()
    o = o["orders"][0] if "orders" in o else o
    assert run(_mark_paid(world["url"], o["id"], o["total_fen"])) == "paid"
    if to in ("shipped", "delivered"):
        shipped = client.post(f"{API}/orders/{o['id']}/ship", json={"carrier": "SF", "tracking_no": f"SF{o['id']:08d}"},
                              headers=h["merchant1"])  # fmt: skip
        assert shipped.status_code == 200, shipped.text
    if to == "delivered":
        assert client.post(f"{API}/orders/{o['id']}/delivered", headers=h["merchant1"]).status_code == 200
    detail = client.get(f"{API}/orders/{o['id']}", headers=h["buyer1"]).json()
    return o["id"], detail["lines"][0]["id"]


def error(response) -> str:  # type: ignore[no-untyped-def]
    assert response.status_code < 500, response.text
    return response.json()["error"]["code"]


def test_scores_are_public_and_new_without_data(client: TestClient, world: dict) -> None:
    shop_id, product_id, creator_id = world["shop"]["id"], world["product"]["id"], world["creator_id"]
    for kind, entity_id in zip(KINDS, (shop_id, product_id, creator_id), strict=True):
        response = client.get(f"{API}/scores/{kind}/{entity_id}")  # signed out
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["entity_type"], body["entity_id"], body["status"], body["score"]) == (
            kind,
            entity_id,
            "new",
            None,
        )
        assert body["orders_90"] == 0 and body["min_orders"] >= 1
        history = client.get(f"{API}/scores/{kind}/{entity_id}/history", params={"days": 7})
        assert history.status_code == 200, history.text
        assert len(history.json()) == 7 and all(p["score"] is None for p in history.json())
    # An entity nobody has heard of is simply "new": a score page never reveals what exists.
    assert client.get(f"{API}/scores/shop/987654").json()["status"] == "new"
    assert len(client.get(f"{API}/scores/shop/{shop_id}/history").json()) == 90  # default


def test_score_routes_refuse_bad_input(client: TestClient, world: dict) -> None:
    h, shop_id = world["h"], world["shop"]["id"]
    for path in (f"/scores/bogus/{shop_id}", f"/scores/SHOP/{shop_id}", f"/scores/bogus/{shop_id}/history"):
        response = client.get(API + path)
        assert response.status_code == 422, (path, response.text)
    for path in (
        f"/scores/bogus/{shop_id}/breakdown",
        f"/scores/bogus/{shop_id}/indicators/dispute_rate/lines",
    ):
        assert client.get(API + path, headers=h["ops1"]).status_code == 422, path
    assert client.get(f"{API}/scores/shop/{2**63}").status_code == 404  # beyond any id
    assert client.get(f"{API}/scores/shop/-1").status_code in (400, 404)
    assert client.get(f"{API}/scores/shop/abc").status_code in (400, 404)
    for days in ("0", "366", "-5", "abc", "1e3", "99999999999999999999"):
        response = client.get(f"{API}/scores/shop/{shop_id}/history", params={"days": days})
        assert response.status_code in (400, 422), (days, response.text)
    assert client.get(f"{API}/scores/shop/{shop_id}/history", params={"days": 365}).status_code == 200


def test_breakdown_and_lines_are_for_the_shop_the_creator_and_ops(client: TestClient, world: dict) -> None:
    h, shop_id, product_id, creator_id = (
        world["h"],
        world["shop"]["id"],
        world["product"]["id"],
        world["creator_id"],
    )
    order(client, world)
    base = f"{API}/scores/shop/{shop_id}"
    assert client.get(f"{base}/breakdown").status_code == 401  # signed out
    for who in ("merchant1", "ops1"):
        response = client.get(f"{base}/breakdown", headers=h[who])
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["score"]["entity_id"] == shop_id and body["settlement_days"] is not None
        keys = {i["key"] for d in body["dimensions"] for i in d["indicators"]}
        assert {"negative_review_rate", "on_time_shipping_rate", "dispute_rate"} <= keys
        assert all(i["hint"] and i["curve"] for d in body["dimensions"] for i in d["indicators"])

    def status(path: str, who: str) -> int:
        return client.get(API + path, headers=h[who]).status_code

    for who in ("merchant2", "buyer1", "creator1"):
        assert status(f"/scores/shop/{shop_id}/breakdown", who) in (403, 404), who
        assert status(f"/scores/shop/{shop_id}/indicators/on_time_shipping_rate/lines", who) in (403, 404), (
            who
        )
    assert status(f"/scores/product/{product_id}/breakdown", "merchant1") == 200
    assert status(f"/scores/product/{product_id}/breakdown", "merchant2") in (403, 404)
    assert status("/scores/product/987654/breakdown", "merchant1") in (403, 404)
    assert status(f"/scores/creator/{creator_id}/breakdown", "creator1") == 200
    assert status(f"/scores/creator/{creator_id}/breakdown", "merchant1") in (403, 404)
    assert status(f"/scores/creator/{creator_id}/breakdown", "ops1") == 200

    lines = f"{base}/indicators/on_time_shipping_rate/lines"
    response = client.get(lines, headers=h["merchant1"], params={"limit": 5})
    assert response.status_code == 200, response.text
    assert response.json()["indicator"] == "on_time_shipping_rate"
    assert isinstance(response.json()["items"], list)
    for params in ({"limit": 0}, {"limit": 101}, {"limit": "x"}, {"limit": 10**30}):
        assert client.get(lines, headers=h["merchant1"], params=params).status_code in (400, 422), params
    for cursor in ("garbage!", "eyJ4IjoxfQ", "12abc", "-1"):
        response = client.get(lines, headers=h["merchant1"], params={"cursor": cursor})
        assert (response.status_code, response.json()["error"]["code"]) == (400, "bad_cursor"), cursor
    too_long = client.get(lines, headers=h["merchant1"], params={"cursor": "x" * 300})
    assert too_long.status_code == 422
    for key in ("bogus", "DISPUTE_RATE", "x" * 200):
        response = client.get(f"{base}/indicators/{key}/lines", headers=h["merchant1"])
        assert 400 <= response.status_code < 500, (key, response.text)


def test_indicator_lines_page_with_the_cursor_they_hand_out(client: TestClient, world: dict) -> None:
    """Three complaints upheld against creator1 reach its facts; the false-claim indicator's lines
    walk them in pages of two with the cursor each page hands out."""
    h, creator_id = world["h"], world["creator_id"]
    made = []
    for _ in range(3):
        order_id, line_id = order(client, world)
        filed = client.post(f"{API}/orders/{order_id}/lines/{line_id}/complaint", json={"claim": "不符"},
                            headers=h["buyer1"])  # fmt: skip
        decided = client.post(f"{API}/complaints/{filed.json()['id']}/decision", json={"decision": "upheld"},
                              headers=h["ops1"])  # fmt: skip
        assert decided.status_code == 200, decided.text
        made.append((order_id, line_id))
    rebuild_facts(world["url"])
    assert client.post(f"{API}/scores/recompute", headers=h["ops1"]).status_code == 200
    path = f"{API}/scores/creator/{creator_id}/indicators/false_claim_rate/lines"
    seen, cursor = [], None
    for _ in range(5):
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        response = client.get(path, headers=h["creator1"], params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        assert all(i["counts_against"] for i in page["items"])
        seen += [(i["order_id"], i["line_id"]) for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(made, reverse=True)
    breakdown = client.get(f"{API}/scores/creator/{creator_id}/breakdown", headers=h["creator1"]).json()
    (claims,) = [
        i for d in breakdown["dimensions"] for i in d["indicators"] if i["key"] == "false_claim_rate"
    ]
    assert (claims["numerator"], claims["denominator"]) == (3, 3)


def test_filing_a_complaint_over_http(client: TestClient, world: dict) -> None:
    h = world["h"]
    order_id, line_id = order(client, world)
    path = f"{API}/orders/{order_id}/lines/{line_id}/complaint"
    assert client.post(path, json={"claim": "说是A货"}).status_code == 401
    bad_bodies = [{}, {"claim": ""}, {"claim": "   "}, {"claim": "假" * 501}, {"claim": 5}, {"claim": None},
                  {"claim": "ok", "extra": 1}, [], "text"]  # fmt: skip
    for body in bad_bodies:
        response = client.post(path, json=body, headers=h["buyer1"])
        assert response.status_code in (400, 422), (body, response.text)
    response = client.post(
        path, content=b"{not json", headers={**h["buyer1"], "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert error(client.post(path, json={"claim": "说是A货"}, headers=h["merchant1"])) == "order_not_found"
    assert client.get(f"{API}/complaints", headers=h["ops1"]).json()["items"] == []  # nothing stored

    response = client.post(path, json={"claim": " 说是A货翡翠，收到的是染色石英岩 "}, headers=h["buyer1"])
    assert response.status_code == 201, response.text
    made = response.json()
    assert (made["order_id"], made["line_id"], made["creator_id"], made["status"], made["claim"]) == (
        order_id, line_id, world["creator_id"], "pending", "说是A货翡翠，收到的是染色石英岩"
    )  # fmt: skip
    assert error(client.post(path, json={"claim": "again"}, headers=h["buyer1"])) == "already_complained"
    assert client.post(path, json={"claim": "again"}, headers=h["buyer1"]).status_code == 409

    no_creator = order(client, world, creator=False)
    not_delivered = order(client, world, to="shipped")
    cases = [
        (f"{API}/orders/{no_creator[0]}/lines/{no_creator[1]}/complaint", 409, "no_creator"),
        (f"{API}/orders/{not_delivered[0]}/lines/{not_delivered[1]}/complaint", 409, "not_delivered"),
        (f"{API}/orders/{order_id}/lines/{no_creator[1]}/complaint", 404, "order_not_found"),
        (f"{API}/orders/987654/lines/{line_id}/complaint", 404, "order_not_found"),
        (f"{API}/orders/{2**63}/lines/{line_id}/complaint", 404, None),
    ]
    for url, status, code in cases:
        response = client.post(url, json={"claim": "说是A货"}, headers=h["buyer1"])
        assert response.status_code == status, (url, response.text)
        if code:
            assert response.json()["error"]["code"] == code


def test_listing_and_deciding_complaints_over_http(client: TestClient, world: dict) -> None:
    h = world["h"]
    ids = []
    for _ in range(3):
        order_id, line_id = order(client, world)
        response = client.post(f"{API}/orders/{order_id}/lines/{line_id}/complaint", json={"claim": "不符"},
                               headers=h["buyer1"])  # fmt: skip
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])

    assert client.get(f"{API}/complaints").status_code == 401
    mine = client.get(f"{API}/complaints", headers=h["buyer1"]).json()
    assert [c["id"] for c in mine["items"]] == ids[::-1]
    assert client.get(f"{API}/complaints", headers=h["merchant2"]).json() == {
        "items": [],
        "next_cursor": None,
    }
    first = client.get(f"{API}/complaints", headers=h["ops1"], params={"limit": 2}).json()
    assert [c["id"] for c in first["items"]] == ids[::-1][:2] and first["next_cursor"]
    rest = client.get(
        f"{API}/complaints", headers=h["ops1"], params={"limit": 2, "cursor": first["next_cursor"]}
    )
    assert [c["id"] for c in rest.json()["items"]] == [ids[0]] and rest.json()["next_cursor"] is None
    for params, status in (({"status": "bogus"}, 422), ({"status": "x" * 50}, 400), ({"limit": 0}, 400),
                           ({"limit": 1000}, 400), ({"cursor": "forged"}, 400), ({"cursor": "eyJhIjoxfQ"}, 400)):  # fmt: skip
        response = client.get(f"{API}/complaints", headers=h["ops1"], params=params)
        assert response.status_code in (status, 422 if status == 400 else status), (params, response.text)

    decision = f"{API}/complaints/{ids[0]}/decision"
    for who in ("buyer1", "merchant1", "creator1"):
        assert client.post(decision, json={"decision": "upheld"}, headers=h[who]).status_code == 403, who
    assert client.post(decision, json={"decision": "upheld"}).status_code == 401
    for body in ({"decision": "maybe"}, {}, {"decision": "upheld", "note": "x" * 501}, {"decision": "upheld", "x": 1},
                 {"decision": 1}):  # fmt: skip
        assert client.post(decision, json=body, headers=h["ops1"]).status_code == 422, body
    assert error(
        client.post(f"{API}/complaints/987654/decision", json={"decision": "upheld"}, headers=h["ops1"])
    ) == ("complaint_not_found")
    assert client.get(f"{API}/complaints", headers=h["ops1"], params={"status": "pending"}).json()["items"]

    response = client.post(decision, json={"decision": "upheld", "note": "回放核实"}, headers=h["ops1"])
    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["decision_note"]) == ("upheld", "回放核实")
    again = client.post(decision, json={"decision": "dismissed"}, headers=h["ops1"])
    assert (again.status_code, again.json()["error"]["code"]) == (409, "already_decided")
    upheld = client.get(f"{API}/complaints", headers=h["ops1"], params={"status": "upheld"}).json()
    assert [c["id"] for c in upheld["items"]] == [ids[0]]
    dismissed = client.post(
        f"{API}/complaints/{ids[1]}/decision", json={"decision": "dismissed"}, headers=h["ops1"]
    )
    assert dismissed.json()["status"] == "dismissed"
    pending = client.get(f"{API}/complaints", headers=h["ops1"], params={"status": "pending"}).json()
    assert [c["id"] for c in pending["items"]] == [ids[2]]


def test_recompute_is_for_ops(client: TestClient, world: dict) -> None:
    h = world["h"]
    order(client, world)
    assert client.post(f"{API}/scores/recompute").status_code == 401
    for who in ("buyer1", "merchant1", "creator1"):
        assert client.post(f"{API}/scores/recompute", headers=h[who]).status_code == 403, who
    rebuild_facts(world["url"])
    response = client.post(f"{API}/scores/recompute", headers=h["ops1"])
    assert response.status_code == 200, response.text
    body = response.json()
    assert isinstance(body, dict) and all(isinstance(v, int) for v in body.values())
    # The one delivered order was scored: the shop now has a row with its count (still "new").
    score = client.get(f"{API}/scores/shop/{world['shop']['id']}").json()
    assert (score["status"], score["orders_90"]) == ("new", 1) and score["computed_at"] is not None


def test_the_routes_are_in_the_openapi_schema(client: TestClient) -> None:
    paths = client.get("/schema/openapi.json").json()["paths"]
    for path in (
        "/api/v1/scores/{entity_type}/{entity_id}",
        "/api/v1/scores/{entity_type}/{entity_id}/breakdown",
        "/api/v1/scores/{entity_type}/{entity_id}/indicators/{key}/lines",
        "/api/v1/scores/{entity_type}/{entity_id}/history",
        "/api/v1/orders/{order_id}/lines/{line_id}/complaint",
        "/api/v1/complaints",
        "/api/v1/complaints/{complaint_id}/decision",
        "/api/v1/scores/recompute",
    ):
        assert path in paths, path
