"""The feed's JSON routes over HTTP, on SQLite and PostgreSQL: who may call what, the shapes,
absurd limits and forged cursors refused with nothing recorded, reports of served positions only,
and the ops routes (grants, the exposure dashboard)."""

from __future__ import annotations

import asyncio
import datetime as dt

from litestar.testing import TestClient
from sqlalchemy import func, select

from tests.feed.conftest import drain
from trustlive.config import Settings
from trustlive.db import create_engine, create_sessionmaker, transaction
from trustlive.feed.models import FeedEvent, FeedServe


def count(settings: Settings, model: object) -> int:
    async def go() -> int:
        engine = create_engine(settings.database_url)
        try:
            async with transaction(create_sessionmaker(engine)) as s:
                return await s.scalar(select(func.count()).select_from(model)) or 0  # type: ignore[arg-type]
        finally:
            await engine.dispose()

    return asyncio.run(go())


def test_follow_feed_api(client: TestClient, seeded: dict, settings: Settings) -> None:
    h = seeded["headers"]
    assert client.get("/api/v1/feed/following").status_code == 401
    page = client.get("/api/v1/feed/following", headers=h["fbuyer0"])
    assert page.status_code == 200, page.text
    body = page.json()
    assert body["feed"] == "follow" and body["serve_id"] and body["next_cursor"] is None
    items = body["items"]
    # The followed creator's room on top, then newest first: the shop's product, the creator's video.
    assert [(i["kind"], i["id"]) for i in items] == [
        ("live", seeded["room"]), ("product", seeded["product"]), ("video", seeded["videos"][1])
    ]  # fmt: skip
    first = items[0]
    assert (
        first["url"] == f"/feed/go/{body['serve_id']}/0" and first["target_url"] == f"/live/{seeded['room']}"
    )
    assert items[1]["price_fen"] == 5900 and items[1]["target_url"].endswith("?source=follow_feed")
    assert items[1]["provider_type"] == "shop" and items[2]["provider_type"] == "creator"
    two = client.get("/api/v1/feed/following?limit=2", headers=h["fbuyer0"]).json()
    assert len(two["items"]) == 2 and two["next_cursor"]
    rest = client.get(
        f"/api/v1/feed/following?limit=2&cursor={two['next_cursor']}", headers=h["fbuyer0"]
    ).json()
    assert [i["position"] for i in rest["items"]] == [2] and rest["items"][0]["id"] == seeded["videos"][1]
    serves = count(settings, FeedServe)
    for query, status in (("limit=0", 422), ("limit=51", 422), ("limit=abc", 422), ("limit=99999999999999999999", 422),
                          ("cursor=forged", 400), ("cursor=" + "x" * 300, 422), ("cursor=eyJzIjoiYWJjIn0", 400)):  # fmt: skip
        refused = client.get(f"/api/v1/feed/following?{query}", headers=h["fbuyer0"])
        assert refused.status_code == status, (query, refused.text)
    assert client.get("/api/v1/feed/following?cursor=forged", headers=h["fbuyer0"]).json()["error"][
        "code"
    ] == ("bad_cursor")
    assert count(settings, FeedServe) == serves  # nothing recorded for a refused request


def test_discovery_api_and_reports(client: TestClient, seeded: dict, settings: Settings) -> None:
    h = seeded["headers"]
    anon = client.get("/api/v1/feed/discovery")
    assert anon.status_code == 200, anon.text
    body = anon.json()
    kinds = {(i["kind"], i["id"]) for i in body["items"]}
    assert {("live", seeded["room"]), ("product", seeded["product"]), ("video", seeded["videos"][0])} <= kinds
    product = next(i for i in body["items"] if i["kind"] == "product")
    assert product["target_url"] == f"/p/{seeded['product']}?source=discovery_feed"
    serve = body["serve_id"]
    events = [{"serve": serve, "position": i["position"], "kind": "impression"} for i in body["items"]]
    sent = client.post("/api/v1/feed/events", json={"events": events})
    assert sent.status_code == 200 and sent.json() == {"recorded": len(events), "repeated": 0}
    again = client.post("/api/v1/feed/events", json={"events": events[:2]})
    assert again.json() == {"recorded": 0, "repeated": 2}
    # Someone else's page (the signed-out one's, reported by a signed-in buyer), a position
    # never served, bad shapes: refused, nothing written.
    before = count(settings, FeedEvent)
    bad = [
        ({"events": [{"serve": serve, "position": 0, "kind": "view"}]}, h["fbuyer0"], "not_served"),
        ({"events": [{"serve": serve, "position": 999, "kind": "view"}]}, {}, "not_served"),
        ({"events": [{"serve": "nope", "position": 0, "kind": "view"}]}, {}, "not_served"),
        ({"events": [{"serve": serve, "position": 0, "kind": "purchase"}]}, {}, None),
        ({"events": [{"serve": serve, "position": -1, "kind": "view"}]}, {}, None),
        ({"events": []}, {}, None),
        ({"events": [{"serve": serve, "position": 0, "kind": "view"}] * 101}, {}, None),
        ({"events": [{"serve": serve, "position": "0", "kind": "view"}]}, {}, None),
        ({"events": [{"serve": serve, "position": 0, "kind": "view", "extra": 1}]}, {}, None),
    ]
    for payload, headers, code in bad:
        refused = client.post("/api/v1/feed/events", json=payload, headers=headers)
        assert refused.status_code == 422, (payload, refused.text)
        if code:
            assert refused.json()["error"]["code"] == code
    assert count(settings, FeedEvent) == before
    # Signed in: a personal page, the cursor continues it without repeats; a cursor of another
    # user is refused.
    mine = client.get("/api/v1/feed/discovery?limit=2", headers=h["fbuyer0"]).json()
    assert len(mine["items"]) == 2 and mine["next_cursor"]
    more = client.get(
        f"/api/v1/feed/discovery?limit=2&cursor={mine['next_cursor']}", headers=h["fbuyer0"]
    ).json()
    ids = [(i["kind"], i["id"]) for i in mine["items"] + more["items"]]
    assert len(ids) == len(set(ids)) and [i["position"] for i in more["items"]] == [2, 3]
    stolen = client.get(f"/api/v1/feed/discovery?cursor={mine['next_cursor']}", headers=h["fcreator0"])
    assert stolen.status_code == 400 and stolen.json()["error"]["code"] == "bad_cursor"
    assert client.get(f"/api/v1/feed/discovery?cursor={mine['next_cursor']}").status_code == 400


def test_ops_routes_are_for_ops_only(client: TestClient, seeded: dict) -> None:
    h = seeded["headers"]
    routes = [("get", "/api/v1/ops/feed/exposure"), ("get", "/api/v1/ops/feed/grants"),
              ("post", "/api/v1/ops/feed/grants"), ("post", "/api/v1/ops/feed/grants/1/revoke"),
              ("get", "/api/v1/ops/feed/grants/1")]  # fmt: skip
    for method, path in routes:
        assert getattr(client, method)(path).status_code == 401, path
        assert getattr(client, method)(path, headers=h["fbuyer0"]).status_code == 403, path
        assert getattr(client, method)(path, headers=h["fcreator0"]).status_code == 403, path
    ends = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).isoformat()
    body = {"provider_type": "creator", "provider_id": seeded["creators"][0], "budget": 500,
            "reason": "新人扶持", "ends_at": ends}  # fmt: skip
    made = client.post("/api/v1/ops/feed/grants", json=body, headers=h["fops1"])
    assert made.status_code == 201, made.text
    grant = made.json()
    assert (grant["status"], grant["used"], grant["left"], grant["provider_name"]) == (
        "running",
        0,
        500,
        "Creator0",
    )
    for changes, status in (({"budget": 0}, 422), ({"provider_type": "user"}, 422), ({"reason": ""}, 422),
                            ({"provider_id": seeded["buyer"]}, 404), ({"ends_at": "2020-01-01T00:00:00Z"}, 422),
                            ({"budget": "500"}, 422), ({"surprise": 1}, 422)):  # fmt: skip
        refused = client.post("/api/v1/ops/feed/grants", json={**body, **changes}, headers=h["fops1"])
        assert refused.status_code == status, (changes, refused.text)
    listed = client.get("/api/v1/ops/feed/grants?status=running", headers=h["fops1"]).json()
    assert [g["id"] for g in listed["items"]] == [grant["id"]]
    assert client.get("/api/v1/ops/feed/grants?status=bogus", headers=h["fops1"]).status_code == 422
    assert client.get(f"/api/v1/ops/feed/grants/{grant['id']}", headers=h["fops1"]).json()["budget"] == 500
    revoked = client.post(f"/api/v1/ops/feed/grants/{grant['id']}/revoke", headers=h["fops1"])
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    twice = client.post(f"/api/v1/ops/feed/grants/{grant['id']}/revoke", headers=h["fops1"])
    assert twice.status_code == 409 and twice.json()["error"]["code"] == "grant_over"
    exposure = client.get("/api/v1/ops/feed/exposure?days=3", headers=h["fops1"])
    assert exposure.status_code == 200, exposure.text
    out = exposure.json()
    assert out["days"] == 3 and len(out["per_day"]) == 3 and len(out["lorenz"]["population"]) in (0, 101)
    for query in ("days=0", "days=91", "feed=other", "provider_type=user"):
        assert client.get(f"/api/v1/ops/feed/exposure?{query}", headers=h["fops1"]).status_code == 422, query


def test_impressions_reach_the_dashboard(client: TestClient, seeded: dict) -> None:
    h = seeded["headers"]
    page = client.get("/api/v1/feed/discovery").json()
    events = [
        {"serve": page["serve_id"], "position": i["position"], "kind": "impression"} for i in page["items"]
    ]
    assert client.post("/api/v1/feed/events", json={"events": events}).status_code == 200
    drain(client)
    out = client.get("/api/v1/ops/feed/exposure?days=1", headers=h["fops1"]).json()
    assert out["impressions"] == len(events) == out["per_day"][0]["impressions"]
    # Two creators and a shop, each with one impression or more (the room's creator has the room
    # and a video: one or two impressions).
    assert out["providers"] == 3
