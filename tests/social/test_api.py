"""The follow routes over HTTP, on SQLite and PostgreSQL: who may call them, the JSON shapes, every
refusal with its status and code, and nothing changed by a refused request."""

from __future__ import annotations

from litestar.testing import TestClient


def error(response, status: int, code: str | None = None) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    body = response.json()["error"]
    if code is not None:
        assert body["code"] == code, body
    return body


def my_follows(client: TestClient, headers: dict, query: str = "") -> dict:
    response = client.get(f"/api/v1/me/follows{query}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def test_signed_out_callers_get_401_and_counts_are_public(client: TestClient, people: dict) -> None:
    creator = people["ids"]["creator1"]
    error(client.post("/api/v1/follows", json={"target_type": "creator", "target_id": creator}), 401)
    error(client.delete(f"/api/v1/follows/creator/{creator}"), 401)
    error(client.get("/api/v1/me/follows"), 401)
    assert client.get(f"/api/v1/creators/{creator}/followers").json() == {
        "target_type": "creator", "target_id": creator, "followers": 0, "following": None, "is_self": False
    }  # fmt: skip
    shop = people["shop"]["id"]
    assert client.get(f"/api/v1/shops/{shop}/followers").json()["followers"] == 0


def test_follow_list_and_unfollow(client: TestClient, people: dict) -> None:
    h, ids, shop = people["headers"], people["ids"], people["shop"]
    creator = ids["creator1"]
    made = client.post(
        "/api/v1/follows", json={"target_type": "creator", "target_id": creator}, headers=h["buyer1"]
    )
    assert made.status_code == 201, made.text
    assert made.json() == {
        "target_type": "creator", "target_id": creator, "followers": 1, "following": True, "is_self": False
    }  # fmt: skip
    made = client.post(
        "/api/v1/follows", json={"target_type": "shop", "target_id": shop["id"]}, headers=h["buyer1"]
    )
    assert made.status_code == 201 and made.json()["followers"] == 1
    client.post("/api/v1/follows", json={"target_type": "creator", "target_id": creator}, headers=h["buyer2"])

    page = my_follows(client, h["buyer1"])
    assert page["next_cursor"] is None
    assert [(i["target_type"], i["target_id"]) for i in page["items"]] == [
        ("shop", shop["id"]),
        ("creator", creator),
    ]
    first, second = page["items"]
    assert set(first) == {
        "id", "target_type", "target_id", "name", "url", "logo_url", "followers", "available", "followed_at"
    }  # fmt: skip
    assert (first["name"], first["url"], first["followers"], first["available"]) == (
        "小小童装", f"/shops/{shop['slug']}", 1, True
    )  # fmt: skip
    assert (second["name"], second["url"], second["followers"]) == ("Creator1", f"/creators/{creator}", 2)
    one = my_follows(client, h["buyer1"], "?limit=1")
    assert len(one["items"]) == 1 and one["next_cursor"]
    rest = my_follows(client, h["buyer1"], f"?limit=1&cursor={one['next_cursor']}")
    assert [i["target_id"] for i in rest["items"]] == [creator] and rest["next_cursor"] is None
    assert [i["target_type"] for i in my_follows(client, h["buyer1"], "?type=creator")["items"]] == [
        "creator"
    ]

    seen = client.get(f"/api/v1/creators/{creator}/followers", headers=h["buyer1"]).json()
    assert (seen["followers"], seen["following"], seen["is_self"]) == (2, True, False)
    own = client.get(f"/api/v1/creators/{creator}/followers", headers=h["creator1"]).json()
    assert (own["following"], own["is_self"]) == (False, True)
    staff = client.get(f"/api/v1/shops/{shop['id']}/followers", headers=h["staff1"]).json()
    assert (staff["followers"], staff["following"], staff["is_self"]) == (1, False, True)

    gone = client.delete(f"/api/v1/follows/creator/{creator}", headers=h["buyer1"])
    assert gone.status_code == 200, gone.text
    assert gone.json() == {
        "target_type": "creator", "target_id": creator, "followers": 1, "following": False, "is_self": False
    }  # fmt: skip
    assert [i["target_type"] for i in my_follows(client, h["buyer1"])["items"]] == ["shop"]


def test_refusals_with_their_codes_change_nothing(client: TestClient, people: dict) -> None:
    h, ids, shop, other = people["headers"], people["ids"], people["shop"], people["other_shop"]
    creator = ids["creator1"]

    def post(who: str, body: object):  # type: ignore[no-untyped-def]
        return client.post("/api/v1/follows", json=body, headers=h[who])

    assert post("buyer1", {"target_type": "creator", "target_id": creator}).status_code == 201
    error(post("buyer1", {"target_type": "creator", "target_id": creator}), 409, "already_following")
    error(post("creator1", {"target_type": "creator", "target_id": creator}), 409, "cannot_follow_self")
    error(post("merchant1", {"target_type": "shop", "target_id": shop["id"]}), 409, "cannot_follow_self")
    error(post("staff1", {"target_type": "shop", "target_id": shop["id"]}), 409, "cannot_follow_self")
    error(post("buyer1", {"target_type": "creator", "target_id": ids["buyer2"]}), 404, "creator_not_found")
    error(post("buyer1", {"target_type": "shop", "target_id": 999_999}), 404, "shop_not_found")
    for body in (
        {"target_type": "user", "target_id": creator},
        {"target_type": "creator", "target_id": str(creator)},
        {"target_type": "creator", "target_id": 0},
        {"target_type": "creator", "target_id": 2**63},
        {"target_type": "creator"},
        {"target_type": "creator", "target_id": creator, "extra": 1},
    ):
        error(post("buyer2", body), 422)
    error(
        client.post(
            "/api/v1/follows",
            content=b"{not json",
            headers={**h["buyer2"], "content-type": "application/json"},
        ),
        400,
    )
    error(client.delete(f"/api/v1/follows/shop/{other['id']}", headers=h["buyer1"]), 404, "not_following")
    error(client.delete("/api/v1/follows/creator/999999", headers=h["buyer1"]), 404, "creator_not_found")
    error(client.delete(f"/api/v1/follows/user/{creator}", headers=h["buyer1"]), 422, "bad_target_type")
    error(client.delete(f"/api/v1/follows/creator/{2**63}", headers=h["buyer1"]), 404)
    for query in ("?limit=0", "?limit=101", "?limit=x", "?type=user"):
        error(client.get(f"/api/v1/me/follows{query}", headers=h["buyer1"]), 422)
    error(client.get("/api/v1/me/follows?cursor=forged", headers=h["buyer1"]), 400, "bad_cursor")
    error(client.get("/api/v1/creators/999999/followers"), 404, "creator_not_found")
    error(client.get(f"/api/v1/creators/{ids['buyer1']}/followers"), 404, "creator_not_found")
    error(client.get("/api/v1/shops/999999/followers"), 404, "shop_not_found")
    # Nothing changed: one follow, one follower.
    assert [i["target_id"] for i in my_follows(client, h["buyer1"])["items"]] == [creator]
    for who in ("buyer2", "creator1", "merchant1", "staff1"):
        assert my_follows(client, h[who])["items"] == []
    assert client.get(f"/api/v1/creators/{creator}/followers").json()["followers"] == 1
    assert client.get(f"/api/v1/shops/{shop['id']}/followers").json()["followers"] == 0
