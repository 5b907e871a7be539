"""Accounts over the JSON API: registration, tokens, throttling, roles — on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from litestar.testing import TestClient

from tests.helpers import PASSWORD, create_user, make_settings, token_for
from trustlive.app import create_app


def _count_users(client: TestClient, ops: dict[str, str]) -> int:
    response = client.get("/api/v1/users?limit=100", headers=ops)
    assert response.status_code == 200
    return len(response.json()["items"])


def test_register_sign_in_and_me(client: TestClient) -> None:
    response = client.post(
        "/api/v1/auth/register",
        json={
            "username": "Silk_Mei",
            "password": PASSWORD,
            "display_name": "丝绸小梅",
            "roles": ["merchant"],
        },
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["username"] == "silk_mei"  # usernames are case-insensitive, stored lower-case
    assert body["roles"] == ["buyer", "merchant"]

    headers = token_for(client, "SILK_MEI")
    me = client.get("/api/v1/me", headers=headers)
    assert me.status_code == 200
    assert me.json()["display_name"] == "丝绸小梅"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"username": "ab", "password": PASSWORD, "display_name": "x"}, "username"),
        ({"username": "good_name", "password": "short", "display_name": "x"}, "password"),
        ({"username": "good_name", "password": PASSWORD}, "display_name"),
        ({"username": "good_name", "password": PASSWORD, "display_name": ""}, "display_name"),
        ({"username": "bad name!", "password": PASSWORD, "display_name": "x"}, "username"),
        ({"username": 42, "password": PASSWORD, "display_name": "x"}, "username"),
        ({"username": "good_name", "password": PASSWORD, "display_name": "x", "roles": ["ops"]}, "roles"),
        ({"username": "good_name", "password": PASSWORD, "display_name": "x", "admin": True}, "admin"),
    ],
)
def test_register_rejects_bad_input(client: TestClient, payload: dict[str, object], field: str) -> None:
    create_user(client.app.state.settings.database_url, "ops1", "ops")
    ops = token_for(client, "ops1")
    before = _count_users(client, ops)
    response = client.post("/api/v1/auth/register", json=payload)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert any(f["field"].startswith(field) for f in error["fields"]), error
    assert _count_users(client, ops) == before


def test_register_rejects_non_json_and_duplicates(client: TestClient) -> None:
    response = client.post(
        "/api/v1/auth/register", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert 400 <= response.status_code < 500
    ok = {"username": "twin", "password": PASSWORD, "display_name": "Twin"}
    assert client.post("/api/v1/auth/register", json=ok).status_code == 201
    again = client.post("/api/v1/auth/register", json={**ok, "username": "TWIN"})
    assert again.status_code == 409
    assert again.json()["error"]["fields"][0]["field"] == "username"


def test_wrong_password_and_unknown_user_look_the_same(client: TestClient) -> None:
    create_user(client.app.state.settings.database_url, "buyer1", "buyer")
    wrong = client.post("/api/v1/auth/token", json={"username": "buyer1", "password": "nope-nope-nope"})
    unknown = client.post("/api/v1/auth/token", json={"username": "nobody", "password": "nope-nope-nope"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()


def test_login_is_throttled_after_repeated_failures(client: TestClient) -> None:
    create_user(client.app.state.settings.database_url, "buyer1", "buyer")
    for _ in range(5):
        response = client.post(
            "/api/v1/auth/token", json={"username": "buyer1", "password": "wrong-password"}
        )
        assert response.status_code == 401
    blocked = client.post("/api/v1/auth/token", json={"username": "buyer1", "password": PASSWORD})
    assert blocked.status_code == 429
    assert blocked.json()["error"]["code"] == "login_throttled"
    assert int(blocked.headers["retry-after"]) > 0
    # Another account from the same address is not locked out by someone else's failures.
    create_user(client.app.state.settings.database_url, "buyer2", "buyer")
    assert (
        client.post("/api/v1/auth/token", json={"username": "buyer2", "password": PASSWORD}).status_code
        == 200
    )


@pytest.mark.redis
def test_login_throttle_in_redis_is_shared_between_apps(
    sqlite_url: str, redis_url: str, tmp_path: Path
) -> None:
    settings = make_settings(sqlite_url, tmp_path, redis_url=redis_url)
    create_user(sqlite_url, "buyer1", "buyer")
    with TestClient(create_app(settings)) as first:
        for _ in range(5):
            assert (
                first.post("/api/v1/auth/token", json={"username": "buyer1", "password": "x" * 9}).status_code
                == 401
            )
    # A second app (another worker process in production) sees the same count.
    with TestClient(create_app(settings)) as second:
        response = second.post("/api/v1/auth/token", json={"username": "buyer1", "password": PASSWORD})
        assert response.status_code == 429
    from redis import Redis

    keys = Redis.from_url(redis_url).keys("trustlive:login:*")
    assert b"trustlive:login:user:buyer1" in keys


def test_successful_sign_in_resets_the_count(client: TestClient) -> None:
    create_user(client.app.state.settings.database_url, "buyer1", "buyer")
    for _ in range(4):
        client.post("/api/v1/auth/token", json={"username": "buyer1", "password": "wrong-password"})
    token_for(client, "buyer1")
    for _ in range(4):
        client.post("/api/v1/auth/token", json={"username": "buyer1", "password": "wrong-password"})
    assert (
        client.post("/api/v1/auth/token", json={"username": "buyer1", "password": PASSWORD}).status_code
        == 200
    )


def test_revoked_and_forged_tokens_are_refused(client: TestClient) -> None:
    create_user(client.app.state.settings.database_url, "buyer1", "buyer")
    headers = token_for(client, "buyer1")
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    assert client.delete("/api/v1/auth/token", headers=headers).status_code == 204
    assert client.get("/api/v1/me", headers=headers).status_code == 401
    forged = client.get("/api/v1/me", headers={"Authorization": "Bearer tl_forged"})
    assert forged.status_code == 401
    assert forged.json()["error"]["code"] == "not_authenticated"
    assert client.get("/api/v1/me").status_code == 401


def test_api_token_is_not_a_session_cookie(client: TestClient) -> None:
    create_user(client.app.state.settings.database_url, "buyer1", "buyer")
    token = token_for(client, "buyer1")["Authorization"].split()[1]
    client.cookies.set("tl_session", token)
    assert client.get("/api/v1/me").status_code == 401


def test_only_ops_can_grant_roles(client: TestClient, users: dict[str, dict[str, str]]) -> None:
    target = client.get("/api/v1/me", headers=users["buyer1"]).json()["id"]
    for who in ("buyer1", "merchant1", "creator1"):
        response = client.post(f"/api/v1/users/{target}/roles", json={"role": "ops"}, headers=users[who])
        assert response.status_code == 403, who
        assert client.get("/api/v1/users", headers=users[who]).status_code == 403
    assert client.get("/api/v1/me", headers=users["buyer1"]).json()["roles"] == ["buyer"]

    granted = client.post(f"/api/v1/users/{target}/roles", json={"role": "inspector"}, headers=users["ops1"])
    assert granted.status_code == 200
    assert granted.json()["roles"] == ["buyer", "inspector"]
    # Roles take effect on the user's next request; granting twice changes nothing.
    assert client.get("/api/v1/me", headers=users["buyer1"]).json()["roles"] == ["buyer", "inspector"]
    again = client.post(f"/api/v1/users/{target}/roles", json={"role": "inspector"}, headers=users["ops1"])
    assert again.json()["roles"] == ["buyer", "inspector"]

    revoked = client.delete(f"/api/v1/users/{target}/roles/inspector", headers=users["ops1"])
    assert revoked.status_code == 200 and revoked.json()["roles"] == ["buyer"]


def test_role_grant_bad_input(client: TestClient, users: dict[str, dict[str, str]]) -> None:
    ops = users["ops1"]
    me = client.get("/api/v1/me", headers=ops).json()["id"]
    target = client.get("/api/v1/me", headers=users["buyer1"]).json()["id"]
    assert client.post(f"/api/v1/users/{target}/roles", json={"role": "king"}, headers=ops).status_code == 422
    assert client.post(f"/api/v1/users/{target}/roles", json={}, headers=ops).status_code == 422
    assert client.post("/api/v1/users/999999/roles", json={"role": "ops"}, headers=ops).status_code == 404
    assert client.delete(f"/api/v1/users/{target}/roles/buyer", headers=ops).status_code == 422
    assert client.delete(f"/api/v1/users/{target}/roles/king", headers=ops).status_code == 422
    assert client.delete(f"/api/v1/users/{me}/roles/ops", headers=ops).status_code == 409
    assert client.get("/api/v1/me", headers=ops).json()["roles"] == ["buyer", "ops"]


def test_user_listing_pagination(client: TestClient, users: dict[str, dict[str, str]]) -> None:
    ops = users["ops1"]
    first = client.get("/api/v1/users?limit=2", headers=ops).json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    second = client.get(f"/api/v1/users?limit=2&cursor={first['next_cursor']}", headers=ops).json()
    assert {u["id"] for u in first["items"]}.isdisjoint({u["id"] for u in second["items"]})
    assert client.get("/api/v1/users?limit=0", headers=ops).status_code == 422
    assert client.get("/api/v1/users?limit=100000", headers=ops).status_code == 422
    forged = client.get("/api/v1/users?cursor=not-a-cursor", headers=ops)
    assert forged.status_code == 400 and forged.json()["error"]["code"] == "bad_cursor"
    by_role = client.get("/api/v1/users?role=merchant", headers=ops).json()["items"]
    assert sorted(u["username"] for u in by_role) == ["merchant1", "merchant2"]
