"""The video pages with a cookie session and CSRF tokens, on SQLite and PostgreSQL: the creator's
console (post, refusals re-rendered, edit, hide, delete), the video page (player, creator, likes,
buy links), the creator page's grid, ops' take-down, and a purchase from a video that reaches the
order line as source short_video with the creator attributed."""

from __future__ import annotations

import html
import re
import uuid
from pathlib import Path

from litestar.testing import TestClient

from tests.content.conftest import cover_file, video_file
from tests.content.util import MP4, stored_files
from tests.helpers import image_bytes
from tests.web.test_pages import csrf_of, marked, sign_in


def post_form(client: TestClient, token: str, data: dict, files: list):  # type: ignore[no-untyped-def]
    return client.post(
        "/console/videos", data={"_csrf_token": token, **data}, files=files, follow_redirects=False
    )


def posted_id(response) -> int:  # type: ignore[no-untyped-def]
    assert response.status_code == 303, response.text
    found = re.fullmatch(r"/videos/(\d+)\?saved=posted", response.headers["location"])
    assert found, response.headers["location"]
    return int(found.group(1))


def test_creator_posts_from_the_console_and_the_page_plays_it(client: TestClient, world: dict) -> None:
    token = sign_in(client, "creator1")
    form = client.get("/console/videos/new")
    assert form.status_code == 200 and 'name="video"' in form.text and 'name="video_url"' in form.text
    own, alliance = world["own"]["id"], world["alliance"]["id"]
    assert f'value="{own}"' in form.text and f'value="{alliance}"' in form.text  # own and alliance choices
    video_id = posted_id(post_form(
        client, token, {"title": "宝宝春装", "description": "纯棉", "product_ids": [str(own)]},
        [cover_file(), video_file(MP4)],
    ))  # fmt: skip
    page = client.get(f"/videos/{video_id}?saved=posted")
    assert page.status_code == 200 and "Your video is published." in page.text
    player = re.search(r"<video [^>]*>", page.text).group(0)  # type: ignore[union-attr]
    for attribute in ("controls", "playsinline", 'preload="metadata"', 'poster="/media/videos/'):
        assert attribute in player, player
    assert re.search(r'<source src="/media/videos/\d+/[0-9a-f]{32}\.mp4" type="video/mp4">', page.text)
    assert f'href="/creators/{world["ids"]["creator1"]}"' in page.text and "宝宝春装" in page.text
    assert f'href="/p/{own}?source=short_video&amp;creator={world["ids"]["creator1"]}"' in page.text
    assert "data-like-count>0<" in page.text and "/static/content.js" in page.text

    listed = client.get("/console/videos")
    assert listed.status_code == 200 and f'data-video="{video_id}"' in listed.text
    client.cookies.clear()
    anonymous = client.get(f"/videos/{video_id}")
    assert anonymous.status_code == 200 and f"/login?next=/videos/{video_id}" in anonymous.text
    assert "作品里的商品" in anonymous.text and "去购买" in anonymous.text  # the default language: Chinese
    assert client.get("/console/videos", follow_redirects=False).status_code in (302, 303, 401)


def test_refusals_come_back_to_the_form(client: TestClient, world: dict) -> None:
    token = sign_in(client, "creator1")
    bad_type = post_form(client, token, {"title": "我的视频"}, [cover_file(), video_file(image_bytes("PNG"))])
    assert bad_type.status_code == 415 and "The video must be an MP4 or WebM file." in bad_type.text
    assert 'value="我的视频"' in bad_type.text and "video" in marked(bad_type.text)
    both = post_form(client, token, {"title": "我的视频", "video_url": "https://a.example/v"},
                     [cover_file(), video_file(MP4)])  # fmt: skip
    assert both.status_code == 422 and 'value="https://a.example/v"' in both.text
    assert {"video", "video_url"} <= marked(both.text)
    too_big = post_form(client, token, {"title": "大视频"}, [cover_file(), video_file(MP4 + b"\0" * 70_000)])
    assert too_big.status_code == 413 and "too large" in too_big.text
    no_title = post_form(client, token, {"title": " ", "video_url": "https://a.example/v"}, [cover_file()])
    assert no_title.status_code == 422 and "title" in marked(no_title.text)
    assert client.get("/console/videos").text.count("data-video=") == 0
    assert stored_files(Path(world["settings"].media_dir)) == []
    # Without the creator role: refused.
    buyer_token = sign_in(client, "buyer1")
    assert post_form(client, buyer_token, {"title": "x"}, [cover_file()]).status_code == 403
    assert client.get("/console/videos/new").status_code == 403


def test_edit_hide_delete_from_the_console(client: TestClient, world: dict) -> None:
    token = sign_in(client, "creator1")
    video_id = posted_id(
        post_form(client, token, {"title": "旧标题", "video_url": "https://a.example/v"}, [cover_file()])
    )
    edit = client.get(f"/console/videos/{video_id}")
    assert edit.status_code == 200 and 'value="旧标题"' in edit.text
    own = world["own"]["id"]
    saved = client.post(f"/console/videos/{video_id}", data={"_csrf_token": token, "title": "新标题", "description": "",
                                                             "product_ids": [str(own)]}, follow_redirects=False)  # fmt: skip
    assert saved.status_code == 303 and saved.headers["location"] == f"/console/videos/{video_id}?saved=saved"
    assert 'value="新标题"' in client.get(f"/console/videos/{video_id}").text
    bad = client.post(f"/console/videos/{video_id}", data={"_csrf_token": token, "title": "新标题",
                                                           "product_ids": ["999999"]})  # fmt: skip
    assert bad.status_code == 422 and "product_ids" in bad.text
    hide = client.post(
        f"/console/videos/{video_id}/hide", data={"_csrf_token": token}, follow_redirects=False
    )
    assert hide.status_code == 303
    assert 'data-status="hidden"' in client.get("/console/videos").text
    twice = client.post(f"/console/videos/{video_id}/hide", data={"_csrf_token": token})
    assert twice.status_code == 409
    other = sign_in(client, "creator2")
    assert client.get(f"/console/videos/{video_id}").status_code == 404
    assert client.post(f"/console/videos/{video_id}/delete", data={"_csrf_token": other}).status_code == 404
    token = sign_in(client, "creator1")
    gone = client.post(
        f"/console/videos/{video_id}/delete", data={"_csrf_token": token}, follow_redirects=False
    )
    assert gone.status_code == 303 and client.get(f"/videos/{video_id}").status_code == 404


def test_likes_on_the_page_and_with_htmx(client: TestClient, world: dict) -> None:
    token = sign_in(client, "creator1")
    video_id = posted_id(
        post_form(client, token, {"title": "点赞", "video_url": "https://a.example/v"}, [cover_file()])
    )
    token = sign_in(client, "buyer1")
    liked = client.post(
        f"/videos/{video_id}/like", data={"_csrf_token": token, "action": "like"}, follow_redirects=False
    )
    assert liked.status_code == 303 and liked.headers["location"] == f"/videos/{video_id}#like"
    page = client.get(f"/videos/{video_id}")
    assert 'aria-pressed="true"' in page.text and "data-like-count>1<" in page.text
    fragment = client.post(f"/videos/{video_id}/like", data={"action": "unlike"},
                           headers={"HX-Request": "true", "X-CSRF-Token": csrf_of(page.text)})  # fmt: skip
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert 'aria-pressed="false"' in fragment.text and "data-like-count>0<" in fragment.text
    assert (
        client.post(f"/videos/{video_id}/like", data={"_csrf_token": token, "action": "love"}).status_code
        == 422
    )


def test_creator_page_shows_the_videos_grid(client: TestClient, world: dict) -> None:
    token = sign_in(client, "creator1")
    video_id = posted_id(
        post_form(client, token, {"title": "网格里", "video_url": "https://a.example/v"}, [cover_file()])
    )
    creator_id = world["ids"]["creator1"]
    client.cookies.clear()
    page = client.get(f"/creators/{creator_id}")
    assert page.status_code == 200 and f'hx-get="/creators/{creator_id}/videos"' in page.text
    grid = client.get(f"/creators/{creator_id}/videos", headers={"HX-Request": "true"})
    assert grid.status_code == 200 and "<html" not in grid.text
    assert f'href="/videos/{video_id}"' in grid.text and "网格里" in grid.text
    full = client.get(f"/creators/{creator_id}/videos")
    assert full.status_code == 200 and "<html" in full.text and f'href="/videos/{video_id}"' in full.text
    assert client.get(f"/creators/{world['ids']['buyer1']}/videos").status_code == 404


def test_ops_take_a_video_down_from_its_page(client: TestClient, world: dict) -> None:
    token = sign_in(client, "creator1")
    video_id = posted_id(
        post_form(client, token, {"title": "违规", "video_url": "https://a.example/v"}, [cover_file()])
    )
    token = sign_in(client, "ops1")
    page = client.get(f"/videos/{video_id}")
    assert f'action="/videos/{video_id}/take-down"' in page.text
    empty = client.post(f"/videos/{video_id}/take-down", data={"_csrf_token": token, "reason": ""})
    assert empty.status_code == 422 and "reason" in marked(empty.text)
    down = client.post(f"/videos/{video_id}/take-down", data={"_csrf_token": token, "reason": "搬运"},
                       follow_redirects=False)  # fmt: skip
    assert down.status_code == 303
    client.cookies.clear()
    assert client.get(f"/videos/{video_id}").status_code == 404
    sign_in(client, "creator1")
    mine = client.get(f"/videos/{video_id}")
    assert mine.status_code == 200 and "搬运" in mine.text and 'data-status="taken_down"' in mine.text
    token = sign_in(client, "buyer1")
    assert (
        client.post(f"/videos/{video_id}/take-down", data={"_csrf_token": token, "reason": "x"}).status_code
        == 403
    )


def test_buying_from_a_video_attributes_the_order_line(client: TestClient, world: dict) -> None:
    """Video page → its buy link → the product page → Buy now → the order line says short_video
    and names the creator."""
    token = sign_in(client, "creator1")
    own = world["own"]
    video_id = posted_id(post_form(client, token, {"title": "带货", "video_url": "https://a.example/v",
                                                   "product_ids": [str(own["id"])]}, [cover_file()]))  # fmt: skip
    token = sign_in(client, "buyer1")
    page = client.get(f"/videos/{video_id}")
    buy = html.unescape(
        re.search(r'class="button small primary buy-link" href="([^"]+)"', page.text).group(1)
    )  # type: ignore[union-attr]
    creator_id = world["ids"]["creator1"]
    assert buy == f"/p/{own['id']}?source=short_video&creator={creator_id}"
    product = client.get(buy)
    assert product.status_code == 200
    assert 'name="source" value="short_video"' in product.text
    assert f'name="creator_id" value="{creator_id}"' in product.text
    sku = own["skus"][0]["id"]
    placed = client.post("/buy", data={
        "_csrf_token": csrf_of(product.text), "product_id": str(own["id"]), "sku_id": str(sku), "quantity": "1",
        "source": "short_video", "creator_id": str(creator_id), "address_id": str(world["address_id"]),
        "idempotency_key": uuid.uuid4().hex,
    }, follow_redirects=False)  # fmt: skip
    assert placed.status_code == 303, placed.text
    orders = client.get("/api/v1/orders", headers=world["headers"]["buyer1"]).json()["items"]
    (order,) = orders
    detail = client.get(f"/api/v1/orders/{order['id']}", headers=world["headers"]["buyer1"]).json()
    (line,) = detail["lines"]
    assert (line["source"], line["creator_id"], line["sku_id"]) == ("short_video", creator_id, sku)
