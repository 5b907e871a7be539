"""The feed pages over HTTP with a cookie session, on SQLite and PostgreSQL: both feeds in both
layouts (the choice remembered), the next page as a fragment, the click-through that logs and
leads on with the attribution an order then carries, and the ops pages (dashboard, grants)."""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import parse_qs, urlsplit

from litestar.testing import TestClient

from tests.orders.test_pages import add_address, buy_now, hidden
from tests.web.test_pages import csrf_of, sign_in
from trustlive.config import Settings

PHONE = {
    "User-Agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"
}
DESKTOP = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36"}
CARD = re.compile(r'data-serve="([^"]+)" data-position="(\d+)" data-kind="(\w+)" data-id="(\d+)"')


def cards(page: str) -> list[tuple[str, int, str, int]]:
    return [(s, int(p), k, int(i)) for s, p, k, i in CARD.findall(page)]


def test_discovery_page_in_both_layouts_remembers_the_choice(client: TestClient, seeded: dict) -> None:
    client.cookies.set("tl_lang", "en")
    for headers in (PHONE, DESKTOP):
        page = client.get("/feed", headers=headers)
        assert page.status_code == 200, page.text
        assert 'name="viewport"' in page.text and 'class="feed feed-grid"' in page.text
        assert "/static/feed.js" in page.text and "/static/feed.css" in page.text
        assert {(k, i) for _s, _p, k, i in cards(page.text)} >= {
            ("live", seeded["room"]), ("product", seeded["product"]), ("video", seeded["videos"][0])
        }  # fmt: skip
    assert client.get("/discover").status_code == 200  # the same feed
    single = client.get("/feed?layout=single", headers=PHONE)
    assert single.status_code == 200 and 'class="feed feed-single"' in single.text
    assert "tl_feed_layout=single" in single.headers.get("set-cookie", "")
    assert 'data-video="' in single.text and "playsinline" in single.text and "muted" in single.text
    # Remembered: the next visit (either feed) opens full screen; asking for the grid switches back.
    assert 'class="feed feed-single"' in client.get("/feed").text
    assert 'class="feed feed-grid"' in client.get("/feed?layout=grid").text
    assert 'class="feed feed-grid"' in client.get("/feed").text
    assert client.get("/feed?layout=sideways").status_code == 200  # unknown: the remembered one
    # The next page as a fragment: cards only, continuing the positions, nothing repeated.
    first = client.get("/feed?layout=grid")
    more = re.search(r'data-next="([^"]+)"', first.text)
    if more:
        fragment = client.get(more.group(1).replace("&amp;", "&") + "&partial=1")
        assert fragment.status_code == 200 and "<html" not in fragment.text
        assert not {(k, i) for _s, _p, k, i in cards(fragment.text)} & {
            (k, i) for _s, _p, k, i in cards(first.text)
        }
    forged = client.get("/feed?cursor=forged")
    assert forged.status_code == 400 and 'data-code="bad_cursor"' in forged.text


def test_follow_page_needs_sign_in_and_shows_the_followed(client: TestClient, seeded: dict) -> None:
    signed_out = client.get("/feed/following", follow_redirects=False)
    assert signed_out.status_code in (302, 303) and signed_out.headers["location"].startswith("/login?next=")
    sign_in(client, "fbuyer0")
    for headers in (PHONE, DESKTOP):
        page = client.get("/feed/following", headers=headers)
        assert page.status_code == 200, page.text
        got = [(k, i) for _s, _p, k, i in cards(page.text)]
        assert got == [
            ("live", seeded["room"]),
            ("product", seeded["product"]),
            ("video", seeded["videos"][1]),
        ]
    assert 'class="feed feed-single"' in client.get("/feed/following?layout=single").text
    # Someone who follows nobody gets a way to discover.
    sign_in(client, "fcreator0")
    empty = client.get("/feed/following")
    assert empty.status_code == 200 and 'href="/feed"' in empty.text and "data-serve" not in empty.text


def _click(client: TestClient, page: str, kind: str, ident: int) -> str:
    serve, position = next((s, p) for s, p, k, i in cards(page) if (k, i) == (kind, ident))
    response = client.get(f"/feed/go/{serve}/{position}", follow_redirects=False)
    assert response.status_code == 303, response.text
    return response.headers["location"]


def test_a_click_then_an_order_carries_the_feed(client: TestClient, seeded: dict, settings: Settings) -> None:
    token = sign_in(client, "fbuyer0")
    address = add_address(client, token)
    for path, source in (("/feed", "discovery_feed"), ("/feed/following", "follow_feed")):
        feed = client.get(path)
        target = _click(client, feed.text, "product", seeded["product"])
        assert target == f"/p/{seeded['product']}?source={source}"
        product = client.get(target)
        assert hidden(product.text, "source") == source
        location = buy_now(client, token, seeded["sku"], 1, address, source=source)
        assert urlsplit(location).path.startswith("/sandbox/pay/")
        order_page = client.get("/orders")
        newest = re.search(r'id="order-(\d+)"', order_page.text)
        assert newest
        detail = client.get(f"/api/v1/orders/{newest.group(1)}")
        assert detail.status_code == 200, detail.text
        line = detail.json()["lines"][0]
        assert (line["source"], line["creator_id"]) == (source, None)
    # The video and the room lead to their pages; the click is logged once per card.
    feed = client.get("/feed")
    assert _click(client, feed.text, "video", seeded["videos"][0]) == f"/videos/{seeded['videos'][0]}"
    assert _click(client, feed.text, "live", seeded["room"]) == f"/live/{seeded['room']}"
    # A card link of someone else's page, or a made-up one: refused.
    serve, position, _k, _i = cards(feed.text)[0]
    client.cookies.clear()
    refused = client.get(f"/feed/go/{serve}/{position}", follow_redirects=False)
    assert refused.status_code == 422
    assert client.get("/feed/go/nothing/0", follow_redirects=False).status_code == 422
    assert client.get(f"/feed/go/{'x' * 40}/0", follow_redirects=False).status_code in (400, 422)


def test_ops_pages(client: TestClient, seeded: dict) -> None:
    sign_in(client, "fbuyer0")
    for path in ("/ops/feed/exposure", "/ops/feed/grants"):
        assert client.get(path).status_code == 403, path
    client.cookies.clear()
    assert client.get("/ops/feed/exposure", follow_redirects=False).status_code in (302, 303)
    token = sign_in(client, "fops1")
    for headers in (PHONE, DESKTOP):
        dashboard = client.get("/ops/feed/exposure?days=14", headers=headers)
        assert dashboard.status_code == 200, dashboard.text
        assert "chart.umd.min.js" in dashboard.text and "data-exposure-data" in dashboard.text
        assert dashboard.text.count("<tr data-day=") == 14
    assert client.get("/ops/feed/exposure?days=0").status_code == 422
    in_a_month = (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).strftime("%Y-%m-%dT%H:%M")
    grants = client.get("/ops/feed/grants")
    assert grants.status_code == 200 and 'action="/ops/feed/grants"' in grants.text
    form = {"_csrf_token": token, "provider_type": "shop", "provider_id": str(seeded["shop"]), "budget": "300",
            "reason": "品牌自播扶持", "ends_at": in_a_month}  # fmt: skip
    made = client.post("/ops/feed/grants", data=form, follow_redirects=False)
    assert made.status_code == 303, made.text
    grant_id = int(parse_qs(urlsplit(made.headers["location"]).query)["created"][0])
    listed = client.get(made.headers["location"])
    assert f'data-grant="{grant_id}" data-status="running"' in listed.text and "fshop" not in listed.text
    assert 'data-used="0" data-budget="300"' in listed.text
    for changes in ({"budget": "0"}, {"ends_at": "yesterday"}, {"ends_at": "2001-01-01T00:00"}, {"reason": ""},
                    {"provider_id": "99999"}, {"provider_type": "robot"}):  # fmt: skip
        again = client.post("/ops/feed/grants", data={**form, **changes})
        assert again.status_code in (404, 422), (changes, again.status_code)
        assert 'role="alert"' in again.text
    revoked = client.post(
        f"/ops/feed/grants/{grant_id}/revoke", data={"_csrf_token": token}, follow_redirects=False
    )
    assert revoked.status_code == 303
    assert (
        f'data-grant="{grant_id}" data-status="revoked"' in client.get("/ops/feed/grants?status=revoked").text
    )
    twice = client.post(f"/ops/feed/grants/{grant_id}/revoke", data={"_csrf_token": token})
    assert twice.status_code == 409 and "over already" in twice.text
    assert csrf_of(twice.text)
