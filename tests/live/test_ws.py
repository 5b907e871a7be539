"""The room's WebSocket route, through the whole app (test client): anonymous watching, comments
checked by the domain and persisted for the replay, purchases and pins reaching viewers after
commit, bans, the end of the session, cross-site cookie sockets refused."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from litestar.exceptions import WebSocketDisconnect
from litestar.testing import TestClient

from tests.helpers import PASSWORD, token_for
from tests.live.test_api import Ids, new_session, world
from trustlive.config import Settings


@pytest.fixture
def ids(client: TestClient, settings: Settings, tmp_path) -> Ids:  # type: ignore[no-untyped-def]
    return world(settings, tmp_path)


def until(ws: Any, match: Callable[[dict], bool], timeout: float = 5.0) -> tuple[dict, list[dict]]:
    """Frames until one matches (returned with everything seen), or fail after ``timeout``."""
    seen: list[dict] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            message = ws.receive(timeout=max(0.05, deadline - time.monotonic()))
        except Exception:  # queue.Empty
            break
        if message.get("type") == "websocket.close":
            seen.append({"t": "_closed", "code": message.get("code")})
            if match(seen[-1]):
                return seen[-1], seen
            break
        frame = json.loads(message["text"])
        seen.append(frame)
        if match(frame):
            return frame, seen
    raise AssertionError(f"no matching frame; saw {seen}")


def live_session(client: TestClient, ids: Ids) -> tuple[int, dict[str, str]]:
    creator = token_for(client, "creator1")
    sid = new_session(client, creator, ids)["id"]
    assert client.post(f"/api/v1/live/sessions/{sid}/start", headers=creator).status_code == 200
    return sid, creator


def hello(ws: Any) -> dict:
    ws.send_json({"t": "hello"})
    frame, _ = until(ws, lambda f: f["t"] == "snapshot")
    return frame


def test_not_live_rooms_refuse(client: TestClient, ids: Ids) -> None:
    creator = token_for(client, "creator1")
    sid = new_session(client, creator, ids)["id"]
    with (
        pytest.raises(WebSocketDisconnect) as closed,
        client.websocket_connect(f"/api/v1/live/sessions/{sid}/ws") as ws,
    ):
        ws.receive_json()
    assert closed.value.code == 4404
    with (
        pytest.raises(WebSocketDisconnect),
        client.websocket_connect("/api/v1/live/sessions/987654/ws") as ws,
    ):
        ws.receive_json()


def test_watch_comment_buy_and_end(client: TestClient, ids: Ids) -> None:
    sid, creator = live_session(client, ids)
    b0 = token_for(client, "buyer0000")
    r = client.put(f"/api/v1/live/sessions/{sid}/pin", json={"product_id": ids.products[0]}, headers=creator)
    assert r.status_code == 200
    with (
        client.websocket_connect(f"/api/v1/live/sessions/{sid}/ws") as anon,
        client.websocket_connect(f"/api/v1/live/sessions/{sid}/ws", headers=b0) as viewer,
    ):
        snapshot = hello(anon)
        hello(viewer)
        # The pin reaches viewers through the outbox: in the snapshot, or in a frame soon after.
        if snapshot["s"].get("pin") is None:
            snapshot, _ = until(anon, lambda f: (f.get("s") or {}).get("pin") is not None)
        assert snapshot["s"]["pin"]["product_id"] == ids.products[0]
        anon.send_json({"t": "comment", "x": "hi", "ref": "a1"})
        err, _ = until(anon, lambda f: f["t"] == "error")
        assert err["code"] == "sign_in_required" and err["ref"] == "a1"
        viewer.send_json({"t": "comment", "x": "<script>alert(1)</script>好看\u202e", "ref": "c1"})
        ack, _ = until(viewer, lambda f: f["t"] == "ack")
        assert ack["ref"] == "c1"
        frame, _ = until(anon, lambda f: bool(f.get("c")))
        (comment,) = frame["c"]
        assert comment["x"] == "<script>alert(1)</script>好看" and comment["u"] == "buyer0000"
        viewer.send_json({"t": "comment", "x": "x" * 101, "ref": "c2"})
        err, _ = until(viewer, lambda f: f["t"] == "error")
        assert err["code"] == "too_long"
        viewer.send_json({"t": "like", "n": 3})
        # A flash sale and a purchase: every viewer sees "X just bought" and the stock left.
        sale = {"sku_id": ids.skus[0], "allocation": 5, "per_buyer_limit": 2, "seconds": 60}
        assert (
            client.post(f"/api/v1/live/sessions/{sid}/flash-sale", json=sale, headers=creator).status_code
            == 201
        )
        frame, _ = until(anon, lambda f: ((f.get("s") or {}).get("sale") or {}).get("left") == 5)
        order = {"sku_id": ids.skus[0], "quantity": 2, "address_id": ids.addresses["buyer0000"]}
        r = client.post(
            f"/api/v1/live/sessions/{sid}/orders", json=order, headers={**b0, "Idempotency-Key": "w1"}
        )
        assert r.status_code == 201, r.text
        frame, seen = until(anon, lambda f: ((f.get("s") or {}).get("sale") or {}).get("left") == 3)
        bought = [p for f in seen for p in f.get("p") or []]
        assert bought and bought[-1]["u"] == "b**" and bought[-1]["q"] == 2
        assert frame["s"]["pin"]["skus"][0]["stock"] == 3
        # The comment reached the replay (the writer flushes about once a second).
        deadline = time.monotonic() + 5
        stored: list[dict] = []
        while time.monotonic() < deadline and not stored:
            stored = client.get(f"/api/v1/live/sessions/{sid}/comments").json()["items"]
            time.sleep(0.1)
        assert [c["text"] for c in stored] == ["<script>alert(1)</script>好看"]
        assert stored[0]["id"] == comment["id"]
        # The end: everybody gets bye "ended".
        assert client.post(f"/api/v1/live/sessions/{sid}/end", headers=creator).status_code == 200
        bye, _ = until(anon, lambda f: f["t"] == "bye")
        assert bye["code"] == "ended"
    stats = client.get(f"/api/v1/live/sessions/{sid}").json()["stats"]
    assert stats["entries"] >= 2 and stats["likes"] == 3 and stats["comments"] == 1 and stats["orders"] == 1


def test_ban_disconnects_and_refuses_rejoin(client: TestClient, ids: Ids) -> None:
    sid, creator = live_session(client, ids)
    b1 = token_for(client, "buyer0001")
    with client.websocket_connect(f"/api/v1/live/sessions/{sid}/ws", headers=b1) as ws:
        hello(ws)
        r = client.post(f"/api/v1/live/sessions/{sid}/bans", json={"user_id": ids.buyer_ids["buyer0001"]},
                        headers=creator)  # fmt: skip
        assert r.status_code == 201
        bye, _ = until(ws, lambda f: f["t"] == "bye")
        assert bye["code"] == "banned"
    with client.websocket_connect(f"/api/v1/live/sessions/{sid}/ws", headers=b1) as ws:
        bye, _ = until(ws, lambda f: f["t"] == "bye")
        assert bye["code"] == "banned"
    order = {"sku_id": ids.skus[0], "quantity": 1, "address_id": ids.addresses["buyer0001"]}
    r = client.post(f"/api/v1/live/sessions/{sid}/orders", json=order, headers={**b1, "Idempotency-Key": "x"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "banned"


def _cookie_sign_in(client: TestClient, username: str) -> None:
    page = client.get("/login")
    token = re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    r = client.post("/login", data={"username": username, "password": PASSWORD, "_csrf_token": token, "next": "/"},
                    follow_redirects=False)  # fmt: skip
    assert r.status_code == 303


def test_cross_site_cookie_socket_refused(client: TestClient, ids: Ids) -> None:
    sid, _ = live_session(client, ids)
    _cookie_sign_in(client, "buyer0002")
    with (
        pytest.raises(WebSocketDisconnect) as closed,
        client.websocket_connect(
            f"/api/v1/live/sessions/{sid}/ws", headers={"Origin": "https://evil.example"}
        ) as ws,
    ):
        ws.receive_json()
    assert closed.value.code == 4403
    # Same site: fine, and the cookie's user may comment.
    with client.websocket_connect(
        f"/api/v1/live/sessions/{sid}/ws", headers={"Origin": "http://testserver.local"}
    ) as ws:
        hello(ws)
        ws.send_json({"t": "comment", "x": "同站", "ref": 1})
        ack, _ = until(ws, lambda f: f["t"] == "ack")
        assert ack["ref"] == 1


def test_with_redis_the_room_and_bans_still_work(sqlite_url: str, redis_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The same app with TRUSTLIVE_REDIS_URL: the hub goes through Redis, moderation notices too."""
    from tests.helpers import make_settings
    from trustlive.app import create_app

    settings = make_settings(sqlite_url, tmp_path, redis_url=redis_url)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        ids = world(settings, tmp_path)
        sid, creator = live_session(client, ids)
        b0, b1 = token_for(client, "buyer0000"), token_for(client, "buyer0001")
        with client.websocket_connect(f"/api/v1/live/sessions/{sid}/ws", headers=b0) as watcher, \
                client.websocket_connect(f"/api/v1/live/sessions/{sid}/ws", headers=b1) as banned:  # fmt: skip
            hello(watcher)
            hello(banned)
            banned.send_json({"t": "comment", "x": "first", "ref": "r"})
            frame, _ = until(watcher, lambda f: bool(f.get("c")))
            assert frame["c"][0]["x"] == "first"
            r = client.post(f"/api/v1/live/sessions/{sid}/bans", json={"user_id": ids.buyer_ids["buyer0001"]},
                            headers=creator)  # fmt: skip
            assert r.status_code == 201
            bye, _ = until(banned, lambda f: f["t"] == "bye")
            assert bye["code"] == "banned"
            assert client.post(f"/api/v1/live/sessions/{sid}/end", headers=creator).status_code == 200
            bye, _ = until(watcher, lambda f: f["t"] == "bye")
            assert bye["code"] == "ended"
