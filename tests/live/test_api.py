"""The live JSON API over HTTP: every route's policy, stable error codes for bad input (and no
change), and the happy path from scheduling to the replay."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pytest
from litestar.testing import TestClient

from tests.helpers import image_bytes, token_for
from tests.live.util import live_world
from trustlive.config import Settings
from trustlive.db import utcnow


@dataclass
class Ids:
    products: list[int]
    skus: list[int]
    addresses: dict[str, int]  # username -> address id
    buyer_ids: dict[str, int]


def world(settings: Settings, tmp_path: Path) -> Ids:
    async def build() -> Ids:
        lw = await live_world(settings.database_url, tmp_path, buyers=3, stock=10)
        try:
            return Ids(
                lw.products, lw.w.skus, {b.username: lw.w.addresses[b.id] for b in lw.w.buyers},
                {b.username: b.id for b in lw.w.buyers},
            )  # fmt: skip
        finally:
            await lw.w.engine.dispose()

    return asyncio.run(build())


@pytest.fixture
def ids(client: TestClient, settings: Settings, tmp_path: Path) -> Ids:
    return world(settings, tmp_path)


def soon() -> str:
    return (utcnow() + dt.timedelta(hours=1)).isoformat()


def new_session(client: TestClient, creator: dict[str, str], ids: Ids, **extra: object) -> dict:
    body = {"title": "翡翠专场", "scheduled_at": soon(), "product_ids": ids.products, **extra}
    response = client.post("/api/v1/live/sessions", json=body, headers=creator)
    assert response.status_code == 201, response.text
    return response.json()


def test_policies_and_ownership(client: TestClient, ids: Ids) -> None:
    creator, buyer = token_for(client, "creator1"), token_for(client, "buyer0000")
    body = {"title": "t", "scheduled_at": soon()}
    assert client.post("/api/v1/live/sessions", json=body).status_code == 401
    r = client.post("/api/v1/live/sessions", json=body, headers=buyer)
    assert r.status_code == 403 and r.json()["error"]["code"] == "role_required"
    session = new_session(client, creator, ids)
    sid = session["id"]
    assert session["status"] == "scheduled" and session["can_manage"]
    # Someone else's session: seen, not managed.
    for method, path in [("post", "start"), ("post", "end"), ("post", "cancel")]:
        r = getattr(client, method)(f"/api/v1/live/sessions/{sid}/{path}", headers=buyer)
        assert r.status_code == 403, (path, r.text)
    r = client.patch(f"/api/v1/live/sessions/{sid}", json={"title": "x"}, headers=buyer)
    assert r.status_code == 403
    r = client.put(f"/api/v1/live/sessions/{sid}/pin", json={"product_id": ids.products[0]}, headers=buyer)
    assert r.status_code == 403 and r.json()["error"]["code"] == "not_moderator"
    assert client.get("/api/v1/live/sessions/999999").json()["error"]["code"] == "session_not_found"
    assert client.get(f"/api/v1/live/sessions/{sid}").json()["can_manage"] is False
    mine = client.get("/api/v1/live/sessions/mine", headers=creator).json()
    assert [s["id"] for s in mine["items"]] == [sid]


@pytest.mark.parametrize(
    "body, status, field",
    [
        ({"title": "", "scheduled_at": "soon"}, 422, None),
        ({"title": "x" * 101, "scheduled_at": "SOON"}, 422, "title"),
        ({"title": "t", "scheduled_at": "tomorrow"}, 422, "scheduled_at"),
        ({"title": "t", "scheduled_at": "2026-12-01T20:00:00"}, 422, "scheduled_at"),
        ({"title": "t", "scheduled_at": "SOON", "product_ids": [0]}, 422, None),
        ({"title": "t", "scheduled_at": "SOON", "product_ids": [424242]}, 422, "product_ids[0]"),
        ({"title": "t", "scheduled_at": "SOON", "product_ids": ["1"]}, 422, None),
        ({"title": "t", "scheduled_at": "SOON", "colour": "red"}, 422, "colour"),
    ],
)
def test_bad_session_bodies(client: TestClient, ids: Ids, body: dict, status: int, field: str | None) -> None:
    creator = token_for(client, "creator1")
    body = {k: (soon() if v == "SOON" else v) for k, v in body.items()}
    r = client.post("/api/v1/live/sessions", json=body, headers=creator)
    assert r.status_code == status, r.text
    if field:
        assert field in [f["field"] for f in r.json()["error"].get("fields", [])], r.text
    assert client.get("/api/v1/live/sessions/mine", headers=creator).json()["items"] == []


def test_cover_upload(client: TestClient, ids: Ids) -> None:
    creator = token_for(client, "creator1")
    form = {
        "title": "封面测试",
        "scheduled_at": soon(),
        "product_ids": f"{ids.products[0]},{ids.products[1]}",
    }
    r = client.post(
        "/api/v1/live/sessions",
        data=form,
        files={"cover": ("c.png", image_bytes(), "image/png")},
        headers=creator,
    )
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["cover_url"].startswith("/media/live/") and out["product_ids"] == ids.products
    assert client.get(out["cover_url"]).status_code == 200
    r = client.post(
        "/api/v1/live/sessions",
        data=form,
        files={"cover": ("c.png", b"not an image", "image/png")},
        headers=creator,
    )
    assert r.status_code == 415
    r = client.post("/api/v1/live/sessions", content=b"x", headers={**creator, "Content-Type": "text/plain"})
    assert r.status_code == 415


def test_live_room_end_to_end(client: TestClient, ids: Ids) -> None:
    creator, b0, b1 = (token_for(client, u) for u in ("creator1", "buyer0000", "buyer0001"))
    sid = new_session(client, creator, ids)["id"]
    r = client.post(f"/api/v1/live/sessions/{sid}/start", headers=creator)
    assert r.status_code == 200 and r.json()["stream"]["stream_key"]
    assert "stream" not in client.get(f"/api/v1/live/sessions/{sid}", headers=b0).json() or (
        client.get(f"/api/v1/live/sessions/{sid}", headers=b0).json()["stream"] is None
    )
    assert [s["id"] for s in client.get("/api/v1/live/sessions").json()["items"]] == [sid]
    second = new_session(client, creator, ids)["id"]
    r = client.post(f"/api/v1/live/sessions/{second}/start", headers=creator)
    assert r.status_code == 409 and r.json()["error"]["code"] == "already_live"
    assert client.post(f"/api/v1/live/sessions/{sid}/heartbeat", headers=creator).status_code == 200
    # Pin, flash sale.
    r = client.put(f"/api/v1/live/sessions/{sid}/pin", json={"product_id": ids.products[0]}, headers=creator)
    assert r.status_code == 200 and r.json()["skus"][0]["stock"] == 10
    assert client.get(f"/api/v1/live/sessions/{sid}/flash-sale").json()["error"]["code"] == "no_sale"
    sale = {"sku_id": ids.skus[0], "allocation": 3, "per_buyer_limit": 1, "seconds": 60}
    r = client.post(
        f"/api/v1/live/sessions/{sid}/flash-sale", json={**sale, "allocation": 0}, headers=creator
    )
    assert r.status_code == 422
    r = client.post(f"/api/v1/live/sessions/{sid}/flash-sale", json=sale, headers=creator)
    assert r.status_code == 201 and r.json()["left"] == 3
    # Buying.
    order = {"sku_id": ids.skus[0], "quantity": 1, "address_id": ids.addresses["buyer0000"]}
    r = client.post(f"/api/v1/live/sessions/{sid}/orders", json=order, headers=b0)
    assert r.status_code == 400 and r.json()["error"]["code"] == "idempotency_key_required"
    r = client.post(
        f"/api/v1/live/sessions/{sid}/orders", json=order, headers={**b0, "Idempotency-Key": "o1"}
    )
    assert r.status_code == 201, r.text
    first = r.json()
    assert first["sale"]["left"] == 2 and not first["replayed"]
    r = client.post(
        f"/api/v1/live/sessions/{sid}/orders", json=order, headers={**b0, "Idempotency-Key": "o1"}
    )
    assert r.json()["order_ids"] == first["order_ids"] and r.json()["replayed"]
    r = client.post(
        f"/api/v1/live/sessions/{sid}/orders", json=order, headers={**b0, "Idempotency-Key": "o2"}
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "limit_exceeded"
    # Someone else's address is not yours.
    r = client.post(
        f"/api/v1/live/sessions/{sid}/orders", json=order, headers={**b1, "Idempotency-Key": "o3"}
    )
    assert r.status_code == 404
    r = client.post(
        f"/api/v1/live/sessions/{sid}/orders",
        json={**order, "quantity": "1"},
        headers={**b1, "Idempotency-Key": "o4"},
    )
    assert r.status_code == 422
    assert client.get(f"/api/v1/live/sessions/{sid}/flash-sale").json()["sold"] == 1
    # Moderation routes.
    r = client.post("/api/v1/live/moderators", json={"user_id": ids.buyer_ids["buyer0001"]}, headers=creator)
    assert r.status_code == 201 and len(r.json()["items"]) == 1
    r = client.post(f"/api/v1/live/sessions/{sid}/mutes", json={"user_id": ids.buyer_ids["buyer0002"], "minutes": 5},
                    headers=b1)  # fmt: skip
    assert r.status_code == 201 and r.json()["until"]
    assert len(client.get(f"/api/v1/live/sessions/{sid}/mutes", headers=creator).json()["items"]) == 1
    r = client.post(f"/api/v1/live/sessions/{sid}/bans", json={"user_id": 999_999}, headers=creator)
    assert r.status_code == 422 and r.json()["error"]["code"] == "user_not_found"
    r = client.put("/api/v1/live/blocklist", json={"words": ["VX"]}, headers=creator)
    assert r.json() == {"words": ["vx"]}
    assert client.put("/api/v1/live/blocklist", json={"words": [""]}, headers=creator).status_code == 422
    assert client.get("/api/v1/live/blocklist", headers=b0).status_code == 403
    # First renders.
    view = client.get(f"/api/v1/live/sessions/{sid}/view").json()
    assert view["pin"]["product_id"] == ids.products[0] and view["sale"]["sold"] == 1 and not view["banned"]
    assert client.get(f"/api/v1/live/sessions/{sid}/console", headers=b0).status_code == 403
    console = client.get(f"/api/v1/live/sessions/{sid}/console", headers=creator).json()
    assert console["blocked_words"] == ["vx"] and console["session"]["stream"]["stream_key"]
    # Comments and the replay.
    assert (
        client.get(f"/api/v1/live/sessions/{sid}/comments?cursor=%%%").json()["error"]["code"] == "bad_cursor"
    )
    assert client.get(f"/api/v1/live/sessions/{sid}/comments").json() == {"items": [], "next_cursor": None}
    assert client.get(f"/api/v1/live/sessions/{sid}/replay").json()["error"]["code"] == "not_ended"
    r = client.post(f"/api/v1/live/sessions/{sid}/end", headers=creator)
    assert r.status_code == 200 and r.json()["status"] == "ended"
    replay = client.get(f"/api/v1/live/sessions/{sid}/replay", headers=creator).json()
    assert replay["stats"]["orders"] == 1 and replay["sales"][0]["buyer"].endswith("**")
    assert client.get(f"/api/v1/live/sessions/{sid}/replay").json()["sales"] is None
    assert client.get("/api/v1/live/sessions?status=ended").json()["items"][0]["id"] == sid
    assert client.get("/api/v1/live/sessions?status=bogus").status_code == 422


def test_live_domain_imports_only_other_domains_services() -> None:
    from tests.aftersales.test_imports import DOMAINS, ROOT, SHARED, _imports

    wrong = []
    for path in sorted((ROOT / "live").glob("*.py")):
        for name in sorted(_imports(path)):
            parts = name.split(".")
            if len(parts) < 3 or parts[0] != "trustlive" or parts[1] not in DOMAINS or parts[1] == "live":
                continue
            if parts[2] != "service" and name not in SHARED:
                wrong.append(f"live/{path.name}: {name}")
    assert wrong == []


BAD_BODIES: list[object] = [None, [], "x", {"unknown": 1}, {"user_id": -1}, {"user_id": "1"}, {"product_id": 0},
                            {"sku_id": 1, "allocation": 0, "per_buyer_limit": 1, "seconds": 60},
                            {"sku_id": 1, "allocation": 1, "per_buyer_limit": 1, "seconds": 1},
                            {"user_id": 1, "minutes": 0}, {"user_id": 1, "reason": "x" * 201},
                            {"words": ["x" * 41]}, {"words": "spam"}, {"product_ids": [1] * 51},
                            {"sku_id": 1, "quantity": 1000, "address_id": 1}]  # fmt: skip


def test_bad_input_is_a_clear_4xx_everywhere(client: TestClient, ids: Ids) -> None:
    """Every write route of the domain, every malformed body: a JSON 4xx with a code, never a 500,
    and the session unchanged."""
    creator = token_for(client, "creator1")
    sid = new_session(client, creator, ids)["id"]
    assert client.post(f"/api/v1/live/sessions/{sid}/start", headers=creator).status_code == 200
    before = client.get(f"/api/v1/live/sessions/{sid}", headers=creator).json()
    routes = [
        ("post", "/api/v1/live/sessions"), ("patch", f"/api/v1/live/sessions/{sid}"),
        ("put", f"/api/v1/live/sessions/{sid}/products"), ("put", f"/api/v1/live/sessions/{sid}/pin"),
        ("post", f"/api/v1/live/sessions/{sid}/flash-sale"), ("post", f"/api/v1/live/sessions/{sid}/orders"),
        ("post", f"/api/v1/live/sessions/{sid}/mutes"), ("post", f"/api/v1/live/sessions/{sid}/bans"),
        ("post", "/api/v1/live/moderators"), ("put", "/api/v1/live/blocklist"),
    ]  # fmt: skip
    for method, path in routes:
        for body in BAD_BODIES:
            r = getattr(client, method)(path, json=body, headers={**creator, "Idempotency-Key": "k"})
            assert 400 <= r.status_code < 500, (method, path, body, r.status_code, r.text)
            assert r.json()["error"]["code"], (path, body)
    for path in ("/api/v1/live/sessions/1/comments?limit=0", "/api/v1/live/sessions/1/comments?limit=x",
                 "/api/v1/live/sessions?status=" + "x" * 30, "/api/v1/live/sessions/x"):  # fmt: skip
        assert 400 <= client.get(path).status_code < 500, path
    for method, path in (("delete", "/api/v1/live/moderators/99999"), ("delete", f"/api/v1/live/sessions/{sid}/mutes/99999"),
                         ("delete", f"/api/v1/live/sessions/{sid}/bans/99999"),
                         ("delete", f"/api/v1/live/sessions/{sid}/comments/99999"),
                         ("delete", f"/api/v1/live/sessions/{sid}/flash-sale"),
                         ("put", "/api/v1/live/sessions/99999/pin")):  # fmt: skip
        r = (
            getattr(client, method)(path, headers=creator)
            if method == "delete"
            else client.put(path, json={"product_id": ids.products[0]}, headers=creator)
        )
        assert r.status_code in (404, 409), (path, r.status_code, r.text)
    after = client.get(f"/api/v1/live/sessions/{sid}", headers=creator).json()
    assert after == before
