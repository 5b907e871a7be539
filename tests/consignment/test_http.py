"""The consignment API and pages over HTTP, on SQLite and PostgreSQL: every route's guard, clear
4xx for bad input with nothing changed, the happy path through the pages, and the appraisal card
reaching the room's hub state."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from litestar.testing import TestClient

from tests.helpers import add_category, create_user, image_bytes, open_shop, token_for
from trustlive.config import Settings


def setup(client: TestClient, settings: Settings) -> dict:
    url = settings.database_url
    create_user(url, "ops1", "ops")
    appraiser_id = create_user(url, "jadehouse", "creator", "merchant")
    create_user(url, "creator2", "creator")
    create_user(url, "owner1")
    create_user(url, "stranger")
    ops = token_for(client, "ops1")
    h = {name: token_for(client, name) for name in ("jadehouse", "creator2", "owner1", "stranger")}
    cat = add_category(client, ops, "jade", "玉石")
    shop = open_shop(client, h["jadehouse"])
    return {"h": h, "cat": cat["id"], "shop": shop["id"], "appraiser": appraiser_id}


def local(days: int) -> str:
    """A ``datetime-local`` form value (Asia/Shanghai) ``days`` from now."""
    return (datetime.now(UTC) + timedelta(days=days, hours=8)).strftime("%Y-%m-%dT%H:%M")


def item_body(w: dict, **extra: object) -> dict:
    return {"appraiser_id": w["appraiser"], "title": "和田玉手镯", "category_id": w["cat"], **extra}


def count_items(client: TestClient, headers: dict) -> int:
    return len(client.get("/api/v1/consignments/mine", headers=headers).json()["items"])


def test_api_guards_and_bad_input(client: TestClient, settings: Settings) -> None:
    w = setup(client, settings)
    h = w["h"]
    assert client.post("/api/v1/consignments", json=item_body(w)).status_code == 401
    assert client.get("/api/v1/consignments/mine").status_code == 401
    for bad, code in [
        ({"title": ""}, 400), ({"asking_fen": 0}, 400), ({"asking_fen": "59"}, 400), ({"unknown": 1}, 400),
        ({"appraiser_id": 999999}, 422), ({"category_id": 999999}, 404), ({"title": "   "}, 422),
    ]:  # fmt: skip
        r = client.post("/api/v1/consignments", json=item_body(w, **bad), headers=h["owner1"])
        assert r.status_code in (code, 422) and r.status_code < 500, (bad, r.text)
    r = client.post(
        "/api/v1/consignments", json=item_body(w, appraiser_id=w["appraiser"]), headers=h["jadehouse"]
    )
    assert r.json()["error"]["code"] == "own_item"
    r = client.post(
        "/api/v1/consignments", content=b"x", headers={**h["owner1"], "Content-Type": "text/plain"}
    )
    assert r.status_code == 415
    assert count_items(client, h["owner1"]) == 0
    # A form with photos.
    r = client.post(
        "/api/v1/consignments", headers=h["owner1"],
        data={"appraiser_id": str(w["appraiser"]), "title": "翡翠", "category_id": str(w["cat"]), "asking_fen": "90000"},
        files=[("photos", ("a.png", image_bytes(), "image/png"))],
    )  # fmt: skip
    assert r.status_code == 201, r.text
    item = r.json()
    assert item["status"] == "submitted" and len(item["photos"]) == 1 and item["asking_fen"] == 90000
    iid = item["id"]
    # Who sees what.
    assert client.get(f"/api/v1/consignments/{iid}", headers=h["stranger"]).status_code == 404
    assert client.get(f"/api/v1/consignments/{iid}", headers=h["jadehouse"]).status_code == 200
    assert client.get("/api/v1/consignments/queue", headers=h["owner1"]).status_code == 403
    assert [
        i["id"] for i in client.get("/api/v1/consignments/queue", headers=h["jadehouse"]).json()["items"]
    ] == [iid]
    assert client.get("/api/v1/consignments/queue?status=nope", headers=h["jadehouse"]).status_code == 422
    appraisal = {"session_id": 1, "valuation_fen": 80000, "grade": "A"}
    assert (
        client.post(f"/api/v1/consignments/{iid}/appraisal", json=appraisal, headers=h["owner1"]).status_code
        == 403
    )
    r = client.post(f"/api/v1/consignments/{iid}/appraisal", json=appraisal, headers=h["creator2"])
    assert r.status_code == 404 and r.json()["error"]["code"] == "item_not_found"
    assert client.post(f"/api/v1/consignments/{iid}/accept", headers=h["stranger"]).status_code == 404
    r = client.post(f"/api/v1/consignments/{iid}/accept", headers=h["owner1"])
    assert r.status_code == 409 and r.json()["error"]["code"] == "not_appraised"
    # Appraising needs the creator's own live session.
    r = client.post(f"/api/v1/consignments/{iid}/appraisal", json=appraisal, headers=h["jadehouse"])
    assert r.status_code == 404 and r.json()["error"]["code"] == "session_not_found"
    soon = "2030-01-01T10:00:00+08:00"
    later = (datetime.now(UTC) + timedelta(minutes=30)).isoformat()
    session = client.post("/api/v1/live/sessions", json={"title": "鉴宝", "scheduled_at": later},
                          headers=h["jadehouse"])  # fmt: skip
    sid = session.json()["id"]
    r = client.post(
        f"/api/v1/consignments/{iid}/appraisal", json={**appraisal, "session_id": sid}, headers=h["jadehouse"]
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "not_live"  # scheduled, not live yet
    assert client.get(f"/api/v1/consignments/{iid}", headers=h["owner1"]).json()["status"] == "submitted"
    # Waivers.
    assert client.post("/api/v1/consignments/waivers", json={"starts_at": soon, "ends_at": soon},
                       headers=h["jadehouse"]).status_code == 422  # fmt: skip
    assert client.post("/api/v1/consignments/waivers", json={"starts_at": soon, "ends_at": soon},
                       headers=h["owner1"]).status_code == 403  # fmt: skip
    assert client.get(f"/api/v1/consignments/terms/{w['appraiser']}").json()["fee_bp"] == 300
    # The consignor's wallet.
    wallet = client.get("/api/v1/wallets/consignors/me", headers=h["owner1"]).json()
    assert wallet["account"].startswith("consignor:") and wallet["balance_fen"] == 0
    r = client.post("/api/v1/wallets/consignors/me/payouts", json={"amount_fen": 1, "bank_account": "6222 0000 1234"},
                    headers=h["owner1"])  # fmt: skip
    assert r.status_code == 409 and r.json()["error"]["code"] == "insufficient_funds"


def test_pages_and_the_room(client: TestClient, settings: Settings) -> None:
    w = setup(client, settings)
    h = w["h"]
    soon = (datetime.now(UTC) + timedelta(minutes=30)).isoformat()
    sid = client.post(
        "/api/v1/live/sessions", json={"title": "鉴宝", "scheduled_at": soon}, headers=h["jadehouse"]
    ).json()["id"]
    assert client.post(f"/api/v1/live/sessions/{sid}/start", headers=h["jadehouse"]).status_code == 200
    client.cookies.set("tl_lang", "en")
    # The consignor's page: submit through the form.
    page = client.get("/consignments", headers=h["owner1"])
    assert page.status_code == 200 and "Consign an item" in page.text
    r = client.post("/consignments", headers=h["owner1"], follow_redirects=False,
                    data={"appraiser": "nobody", "title": "翡翠", "category_id": str(w["cat"])},
                    files=[("photos", ("a.png", image_bytes(), "image/png"))])  # fmt: skip
    assert r.status_code == 422 and "not a creator with a shop" in r.text
    r = client.post("/consignments", headers=h["owner1"], follow_redirects=False,
                    data={"appraiser": "jadehouse", "title": "翡翠", "category_id": str(w["cat"]), "asking": "900"},
                    files=[("photos", ("a.png", image_bytes(), "image/png"))])  # fmt: skip
    assert r.status_code == 303, r.text
    [item] = client.get("/api/v1/consignments/mine", headers=h["owner1"]).json()["items"]
    # The creator's console: appraise during the live session.
    assert client.get("/console/consignments", headers=h["owner1"]).status_code == 403
    console = client.get("/console/consignments", headers=h["jadehouse"])
    assert console.status_code == 200 and "Show the appraisal in the room" in console.text
    r = client.post(f"/console/consignments/{item['id']}/appraise", headers=h["jadehouse"], follow_redirects=False,
                    data={"session_id": str(sid), "valuation": "880", "grade": "A", "notes": "<b>油润</b>"})  # fmt: skip
    assert r.status_code == 303, r.text
    hub = client.app.state.live_hub
    deadline = time.monotonic() + 5
    while "appraisal" not in hub.snapshot_state(sid) and time.monotonic() < deadline:
        time.sleep(0.05)
    card = hub.snapshot_state(sid)["appraisal"]
    assert (card["item_id"], card["valuation_fen"], card["notes"]) == (item["id"], 88000, "<b>油润</b>")
    # Waiver from the console: shown in the room and on the page.
    r = client.post("/console/consignments/waivers", headers=h["jadehouse"], follow_redirects=False,
                    data={"starts_at": local(-1), "ends_at": local(30)})  # fmt: skip
    assert r.status_code == 303, r.text
    assert "0% fee until" in client.get("/console/consignments", headers=h["jadehouse"]).text
    deadline = time.monotonic() + 5
    while "consignment" not in hub.snapshot_state(sid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert hub.snapshot_state(sid)["consignment"]["fee_bp"] == 0
    # The viewers' page renders both from the room's state, text escaped.
    room = client.get(f"/live/{sid}").text
    assert "data-appraisal aria-live" in room and "&lt;b&gt;油润&lt;/b&gt;" in room and "¥880.00" in room
    assert "0% consignment fee until" in room
    # Accept on the consignor's page: listed and featured in the room.
    mine = client.get("/consignments", headers=h["owner1"]).text
    assert "Accept and list" in mine and "&lt;b&gt;油润&lt;/b&gt;" in mine
    assert client.post(f"/consignments/{item['id']}/bogus", headers=h["owner1"]).status_code == 404
    assert client.post(f"/consignments/{item['id']}/accept", headers=h["stranger"]).status_code == 404
    r = client.post(f"/consignments/{item['id']}/accept", headers=h["owner1"], follow_redirects=False)
    assert r.status_code == 303, r.text
    listed = client.get(f"/api/v1/consignments/{item['id']}", headers=h["owner1"]).json()
    assert listed["status"] == "listed"
    products = client.get(f"/api/v1/live/sessions/{sid}/products").json()
    assert listed["product_id"] in [
        p["id"] for p in (products["items"] if isinstance(products, dict) else products)
    ]
    r = client.post(f"/consignments/{item['id']}/decline", headers=h["owner1"], follow_redirects=False)
    assert r.status_code == 409
    r = client.post(f"/consignments/{item['id']}/withdraw", headers=h["owner1"], follow_redirects=False)
    assert r.status_code == 303
    assert (
        client.get(f"/api/v1/consignments/{item['id']}", headers=h["owner1"]).json()["status"] == "withdrawn"
    )
    # The consignor's wallet page: nothing settled yet, so a payout is refused and nothing moves.
    page = client.get("/wallet/consignor", headers=h["owner1"])
    assert page.status_code == 200 and "Consignor wallet" in page.text
    r = client.post(
        "/wallet/consignor/payouts",
        headers=h["owner1"],
        data={"amount": "1", "bank_account": "6222 0000 1234"},
    )
    assert r.status_code == 409
    assert client.get("/api/v1/wallets/consignors/me", headers=h["owner1"]).json()["payouts"] == []
    assert client.get("/wallet/consignor", follow_redirects=False).status_code in (302, 303, 401)
    # The same pages in Chinese.
    client.cookies.set("tl_lang", "zh_Hans")
    assert "我的寄卖" in client.get("/consignments", headers=h["owner1"]).text
    assert "服务费 0%，至" in client.get("/console/consignments", headers=h["jadehouse"]).text
    assert "寄卖服务费 0%，至" in client.get(f"/live/{sid}").text
