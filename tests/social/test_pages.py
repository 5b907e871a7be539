"""The follow button and the /following page with a cookie session and CSRF tokens, in English
and Chinese, on SQLite and PostgreSQL: the creator and shop pages load the button, signed-out
visitors are asked to sign in, the form follows and unfollows and comes back, refusals re-render
with the error and change nothing."""

from __future__ import annotations

import re
from urllib.parse import quote

from litestar.testing import TestClient

from tests.web.test_pages import csrf_of, sign_in

HTMX = {"HX-Request": "true"}


def followers(client: TestClient, kind: str, target: int) -> int:
    return client.get(f"/api/v1/{kind}s/{target}/followers").json()["followers"]


def test_creator_and_shop_pages_load_the_button(client: TestClient, people: dict) -> None:
    creator, shop = people["ids"]["creator1"], people["shop"]
    client.cookies.set("tl_lang", "en")
    page = client.get(f"/creators/{creator}")
    assert page.status_code == 200
    assert f'hx-get="/follow/creator/{creator}?next=/creators/{creator}"' in page.text
    assert f'href="/follow/creator/{creator}?next=/creators/{creator}"' in page.text  # without JS
    page = client.get(f"/shops/{shop['slug']}")
    assert page.status_code == 200
    assert f'hx-get="/follow/shop/{shop["id"]}?next={quote("/shops/" + shop["slug"])}"' in page.text


def test_signed_out_visitors_are_asked_to_sign_in(client: TestClient, people: dict) -> None:
    creator = people["ids"]["creator1"]
    client.cookies.set("tl_lang", "en")
    fragment = client.get(f"/follow/creator/{creator}?next=/creators/{creator}", headers=HTMX)
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert "Followers <strong>0</strong>" in fragment.text and "Sign in to follow" in fragment.text
    assert f'href="/login?next=/creators/{creator}"' in fragment.text and "<form" not in fragment.text
    page = client.get(f"/follow/creator/{creator}")  # the page for browsers without JavaScript
    assert page.status_code == 200 and "<html" in page.text and "Creator1" in page.text
    # Posting signed out goes to the sign-in page; /following too.
    token = csrf_of(page.text)
    posted = client.post(
        f"/follow/creator/{creator}", data={"action": "follow", "_csrf_token": token}, follow_redirects=False
    )
    assert posted.status_code in (302, 303) and posted.headers["location"].startswith("/login?next=")
    listing = client.get("/following", follow_redirects=False)
    assert listing.status_code in (302, 303) and listing.headers["location"] == "/login?next=/following"
    assert followers(client, "creator", creator) == 0


def test_follow_from_the_page_and_back(client: TestClient, people: dict) -> None:
    creator, shop = people["ids"]["creator1"], people["shop"]
    token = sign_in(client, "buyer1")
    fragment = client.get(f"/follow/creator/{creator}?next=/creators/{creator}", headers=HTMX)
    assert (
        '<input type="hidden" name="action" value="follow">' in fragment.text and "+ Follow" in fragment.text
    )
    # Without JavaScript: post, then back to the creator's page.
    done = client.post(
        f"/follow/creator/{creator}",
        data={"action": "follow", "next": f"/creators/{creator}", "_csrf_token": token},
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"] == f"/creators/{creator}"
    assert followers(client, "creator", creator) == 1
    fragment = client.get(f"/follow/creator/{creator}?next=/creators/{creator}", headers=HTMX)
    assert "Followers <strong>1</strong>" in fragment.text and "Followed" in fragment.text
    assert '<input type="hidden" name="action" value="unfollow">' in fragment.text
    # With htmx: the button comes back in place.
    swapped = client.post(
        f"/follow/shop/{shop['id']}",
        data={"action": "follow", "next": f"/shops/{shop['slug']}", "_csrf_token": token},
        headers=HTMX,
    )
    assert swapped.status_code == 200 and "<html" not in swapped.text
    assert f'id="follow-shop-{shop["id"]}"' in swapped.text and "Followers <strong>1</strong>" in swapped.text
    # An off-site "next" is ignored.
    client.post(
        f"/follow/shop/{shop['id']}", data={"action": "unfollow", "next": "//evil.example", "_csrf_token": token},
        follow_redirects=False,
    )  # fmt: skip
    assert followers(client, "shop", shop["id"]) == 0
    # In Chinese.
    client.cookies.set("tl_lang", "zh_Hans")
    zh = client.get(f"/follow/creator/{creator}", headers=HTMX)
    assert "已关注" in zh.text and "粉丝 <strong>1</strong>" in zh.text


def test_refusals_re_render_with_the_error(client: TestClient, people: dict) -> None:
    creator, shop = people["ids"]["creator1"], people["shop"]
    token = sign_in(client, "buyer1")
    form = {"action": "follow", "next": f"/creators/{creator}", "_csrf_token": token}
    assert client.post(f"/follow/creator/{creator}", data=form, follow_redirects=False).status_code == 303
    twice = client.post(f"/follow/creator/{creator}", data=form)
    assert twice.status_code == 409 and "You already follow this." in twice.text and "<html" in twice.text
    twice = client.post(f"/follow/creator/{creator}", data=form, headers=HTMX)
    assert twice.status_code == 409 and "You already follow this." in twice.text and "<html" not in twice.text
    bad = client.post(f"/follow/creator/{creator}", data={**form, "action": "like"})
    assert bad.status_code == 422 and "Choose to follow or to unfollow." in bad.text
    not_yet = client.post(f"/follow/shop/{shop['id']}", data={**form, "action": "unfollow"})
    assert not_yet.status_code == 404 and "You do not follow this." in not_yet.text
    assert client.post("/follow/user/1", data=form).status_code == 422
    assert client.post("/follow/creator/999999", data=form).status_code == 404
    assert client.get("/follow/creator/999999").status_code == 404
    assert client.get("/follow/planet/1").status_code == 422
    no_csrf = client.post(f"/follow/shop/{shop['id']}", data={"action": "follow"})
    assert no_csrf.status_code == 403
    # Your own shop: no button, and posting is refused.
    token = sign_in(client, "staff1")
    own = client.get(f"/follow/shop/{shop['id']}", headers=HTMX)
    assert own.status_code == 200 and "<form" not in own.text and "Followers <strong>0</strong>" in own.text
    refused = client.post(f"/follow/shop/{shop['id']}", data={**form, "_csrf_token": token})
    assert refused.status_code == 409 and "You cannot follow yourself or a shop you work for." in refused.text
    assert followers(client, "creator", creator) == 1 and followers(client, "shop", shop["id"]) == 0


def test_following_page_lists_and_unfollows(client: TestClient, people: dict) -> None:
    creator, shop = people["ids"]["creator1"], people["shop"]
    token = sign_in(client, "buyer1")
    empty = client.get("/following")
    assert empty.status_code == 200 and "You do not follow anyone yet." in empty.text
    assert 'href="/following"' in empty.text  # the navigation link
    for kind, target in (("creator", creator), ("shop", shop["id"])):
        form = {"action": "follow", "next": "/", "_csrf_token": token}
        assert client.post(f"/follow/{kind}/{target}", data=form, follow_redirects=False).status_code == 303
    page = client.get("/following")
    rows = re.findall(r'id="followed-(\w+)-(\d+)"', page.text)
    assert rows == [("shop", str(shop["id"])), ("creator", str(creator))]  # newest first
    assert f'href="/shops/{shop["slug"]}"' in page.text and f'href="/creators/{creator}"' in page.text
    assert "小小童装" in page.text and "Creator1" in page.text and "Followers 1" in page.text
    shops_only = client.get("/following?type=shop")
    assert re.findall(r'id="followed-(\w+)-', shops_only.text) == ["shop"]
    assert client.get("/following?type=user").status_code == 422
    assert client.get("/following?cursor=forged").status_code == 400
    gone = client.post(
        f"/follow/shop/{shop['id']}",
        data={"action": "unfollow", "next": "/following?type=shop", "_csrf_token": token},
        follow_redirects=False,
    )
    assert gone.status_code == 303 and gone.headers["location"] == "/following?type=shop"
    assert re.findall(r'id="followed-(\w+)-', client.get("/following").text) == ["creator"]
    client.cookies.set("tl_lang", "zh_Hans")
    zh = client.get("/following")
    assert "你关注的主播和店铺" in zh.text and "取消关注" in zh.text
