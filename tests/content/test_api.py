"""The video API over HTTP, on SQLite and PostgreSQL: who may call what, the multipart upload and
its refusals (nothing stored), shapes, likes, lists and their cursors, moderation."""

from __future__ import annotations

from pathlib import Path

from litestar.testing import TestClient

from tests.content.conftest import MAX_VIDEO, cover_file, video_file
from tests.content.util import MP4, WEBM, stored_files
from tests.helpers import image_bytes

VIDEO_KEYS = {
    "id", "creator_id", "creator_name", "title", "description", "cover_url", "playback_url", "source",
    "video_type", "status", "like_count", "product_ids", "products", "created_at", "updated_at", "liked",
    "taken_down_reason",
}  # fmt: skip


def post_video(
    client: TestClient, headers: dict[str, str], data: dict | None = None, files: list | None = None
):  # type: ignore[no-untyped-def]
    body = {"title": "春装上新", **(data or {})}
    return client.post("/api/v1/videos", data=body, files=files if files is not None else [cover_file()],
                       headers=headers)  # fmt: skip


def videos_in(client: TestClient, world: dict) -> list[dict]:
    return client.get("/api/v1/me/videos", headers=world["headers"]["creator1"]).json()["items"]


def test_post_a_video_and_read_it(client: TestClient, world: dict) -> None:
    h, own, alliance = world["headers"], world["own"]["id"], world["alliance"]["id"]
    made = post_video(client, h["creator1"], {"description": "宝宝春装", "product_ids": f"{own},{alliance}"},
                      [cover_file(), video_file(MP4 + b"\0" * 1000)])  # fmt: skip
    assert made.status_code == 201, made.text
    video = made.json()
    assert set(video) == VIDEO_KEYS
    assert (video["status"], video["source"], video["video_type"], video["like_count"]) == (
        "published", "file", "video/mp4", 0)  # fmt: skip
    assert video["product_ids"] == [own, alliance] and [p["id"] for p in video["products"]] == [own, alliance]
    assert video["creator_id"] == world["ids"]["creator1"] and video["liked"] is False
    public = client.get(f"/api/v1/videos/{video['id']}")
    assert public.status_code == 200 and public.json()["liked"] is None
    assert public.json()["taken_down_reason"] is None
    served = client.get(video["playback_url"])
    assert served.status_code == 200 and served.content == MP4 + b"\0" * 1000
    assert client.get(video["cover_url"]).status_code == 200

    external = post_video(client, h["creator1"], {"video_url": "https://cdn.example.com/a.webm"})
    assert external.status_code == 201, external.text
    assert (external.json()["source"], external.json()["playback_url"]) == (
        "external",
        "https://cdn.example.com/a.webm",
    )
    webm = post_video(
        client, h["creator2"], files=[cover_file(), video_file(WEBM, "a.bin", "application/octet-stream")]
    )
    assert webm.status_code == 201 and webm.json()["video_type"] == "video/webm"


def test_refused_uploads_store_nothing(client: TestClient, world: dict, settings) -> None:  # type: ignore[no-untyped-def]
    h = world["headers"]
    good = [cover_file(), video_file(MP4)]
    assert post_video(client, {}, files=good).status_code == 401
    buyer = post_video(client, h["buyer1"], files=good)
    assert (buyer.status_code, buyer.json()["error"]["code"]) == (403, "role_required")
    as_json = client.post(
        "/api/v1/videos", json={"title": "x", "video_url": "https://a.example/v"}, headers=h["creator1"]
    )
    assert as_json.status_code == 415
    cases = [
        ([cover_file(), video_file(image_bytes("PNG"), "clip.mp4")], {}, 415, "bad_video_type"),
        ([cover_file(), video_file(MP4 + b"\0" * MAX_VIDEO)], {}, 413, "video_too_large"),
        ([cover_file(), video_file(MP4 + b"\0" * (2 * 1024 * 1024))], {}, 413, "video_too_large"),  # announced
        ([cover_file(), video_file(MP4)], {"video_url": "https://a.example/v.mp4"}, 422, "video_source"),
        ([cover_file()], {}, 422, "video_source"),
        ([cover_file()], {"video_url": "javascript:alert(1)"}, 422, "bad_video_url"),
        ([video_file(MP4)], {}, 422, "cover_required"),
        ([("cover", ("c.png", MP4, "image/png")), video_file(MP4)], {}, 415, None),
        ([cover_file(), video_file(MP4)], {"title": "长" * 81}, 422, None),
        ([cover_file(), video_file(MP4)], {"product_ids": "x"}, 422, None),
        ([cover_file(), video_file(MP4)], {"product_ids": str(world["own"]["id"] + 1000)}, 422, "product_not_available"),
    ]  # fmt: skip
    for files, data, status, code in cases:
        response = post_video(client, h["creator1"], data, files)
        assert response.status_code == status, (data, response.text)
        if code:
            assert response.json()["error"]["code"] == code, response.text
    assert videos_in(client, world) == [] and stored_files(Path(settings.media_dir)) == []


def test_edit_hide_like_list_and_moderate(client: TestClient, world: dict, settings) -> None:  # type: ignore[no-untyped-def]
    h, ids, own = world["headers"], world["ids"], world["own"]["id"]
    first = post_video(client, h["creator1"], {"video_url": "https://a.example/1"}).json()
    second = post_video(client, h["creator1"], {"video_url": "https://a.example/2"}).json()
    url = f"/api/v1/videos/{first['id']}"

    edited = client.patch(url, json={"title": "新标题", "product_ids": [own]}, headers=h["creator1"])
    assert edited.status_code == 200 and (edited.json()["title"], edited.json()["product_ids"]) == (
        "新标题",
        [own],
    )
    assert client.patch(url, json={"product_ids": [str(own)]}, headers=h["creator1"]).status_code == 422
    assert client.patch(url, json={"colour": "red"}, headers=h["creator1"]).status_code == 422
    assert client.patch(url, json={}, headers=h["creator1"]).json()["error"]["code"] == "nothing_to_change"
    other = client.patch(url, json={"title": "x"}, headers=h["creator2"])
    assert (other.status_code, other.json()["error"]["code"]) == (403, "not_your_video")
    assert (
        client.patch(url, json={"title": "x"}, headers=h["merchant1"]).json()["error"]["code"]
        == "role_required"
    )

    liked = client.put(f"{url}/like", headers=h["buyer1"])
    assert liked.status_code == 200 and liked.json() == {
        "video_id": first["id"],
        "liked": True,
        "like_count": 1,
    }
    assert client.put(f"{url}/like", headers=h["buyer1"]).json()["like_count"] == 1
    assert client.put(f"{url}/like", headers=h["creator2"]).json()["like_count"] == 2
    assert client.put(f"{url}/like").status_code == 401
    assert client.get(url, headers=h["buyer1"]).json()["liked"] is True
    unliked = client.delete(f"{url}/like", headers=h["buyer1"])
    assert (
        unliked.status_code == 200 and unliked.json()["like_count"] == 1 and unliked.json()["liked"] is False
    )
    assert client.put("/api/v1/videos/999999/like", headers=h["buyer1"]).status_code == 404

    listed = client.get(f"/api/v1/creators/{ids['creator1']}/videos?limit=1")
    assert listed.status_code == 200 and [v["id"] for v in listed.json()["items"]] == [second["id"]]
    rest = client.get(
        f"/api/v1/creators/{ids['creator1']}/videos?limit=1&cursor={listed.json()['next_cursor']}"
    )
    assert [v["id"] for v in rest.json()["items"]] == [first["id"]] and rest.json()["next_cursor"] is None
    assert client.get(f"/api/v1/creators/{ids['creator1']}/videos?cursor=forged").status_code == 400
    assert client.get(f"/api/v1/creators/{ids['creator1']}/videos?limit=1000").status_code == 422
    nobody = client.get(f"/api/v1/creators/{ids['buyer1']}/videos")
    assert (nobody.status_code, nobody.json()["error"]["code"]) == (404, "creator_not_found")

    hidden = client.post(f"/api/v1/videos/{second['id']}/hide", headers=h["creator1"])
    assert hidden.status_code == 200 and hidden.json()["status"] == "hidden"
    assert client.get(f"/api/v1/videos/{second['id']}").status_code == 404
    assert [v["id"] for v in client.get(f"/api/v1/creators/{ids['creator1']}/videos").json()["items"]] == [
        first["id"]
    ]
    assert [v["status"] for v in videos_in(client, world)] == ["hidden", "published"]
    assert client.get("/api/v1/me/videos", headers=h["buyer1"]).status_code == 403

    refused = client.post(f"{url}/take-down", json={"reason": "x"}, headers=h["creator1"])
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "role_required")
    assert client.post(f"{url}/take-down", json={"reason": ""}, headers=h["ops1"]).status_code == 422
    down = client.post(f"{url}/take-down", json={"reason": "侵权"}, headers=h["ops1"])
    assert down.status_code == 200 and down.json()["status"] == "taken_down"
    assert client.get(url, headers=h["creator1"]).json()["taken_down_reason"] == "侵权"
    again = client.post(f"{url}/unhide", headers=h["creator1"])
    assert (again.status_code, again.json()["error"]["code"]) == (409, "taken_down")
    assert client.post(f"{url}/restore", headers=h["ops1"]).json()["status"] == "published"

    assert client.delete(url, headers=h["creator2"]).status_code == 403
    assert client.delete(url, headers=h["creator1"]).status_code == 204
    assert client.get(url, headers=h["creator1"]).status_code == 404
    assert client.delete(url, headers=h["creator1"]).status_code == 404
