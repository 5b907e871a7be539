"""The trust pages with a cookie session and CSRF tokens, on SQLite and PostgreSQL: the public
badges on shop, product and creator pages; the owner's drill-down and the order lines behind an
indicator (and who may not see them); the buyer's report of a false claim from the order page;
ops' complaint queue, decisions and the recompute button.

Scores come from real orders: a kids' shop with 30 orders a creator sold (three of them rated
1 star) and one shelf order, all delivered, then the lead's ``rebuild_facts`` + ``recompute_all``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import func, select

from tests.helpers import run
from tests.orders.world import World, build
from tests.reviews.util import advance, rating
from tests.web.test_pages import sign_in
from trustlive.catalog import service as catalog
from trustlive.config import Settings
from trustlive.db import transaction
from trustlive.orders import service as orders
from trustlive.orders.schemas import ItemIn, OrderIn
from trustlive.reviews import service as reviews
from trustlive.trust import service as trust
from trustlive.trust.models import Complaint

CREATOR_ORDERS = 30
NEGATIVE = 3  # of the creator's orders: completed and rated 1 star for the product


@dataclass
class Scored:
    w: World
    shop_ids: list[int]
    slugs: list[str]
    product_ids: list[int]
    creator_orders: list[tuple[int, int]]  # (order id, line id), delivered, sold by the creator
    shelf_order: tuple[int, int]  # delivered, no creator
    paid_order: tuple[int, int]  # sold by the creator, paid, not shipped
    buyers: list[str]  # usernames, in the order of w.buyers


async def place(w: World, buyer_index: int, key: str, creator: bool = True) -> tuple[int, int]:
    """A paid order of the kids' shop's SKU (paid straight through the orders service)."""
    buyer = w.buyers[buyer_index]
    data = OrderIn(
        items=[ItemIn(sku_id=w.skus[0], quantity=1)],  # type: ignore[arg-type]
        address_id=w.addresses[buyer.id],  # type: ignore[arg-type]
        source="live_room" if creator else "shelf",  # type: ignore[arg-type]
        creator_id=w.creator.id if creator else None,  # type: ignore[arg-type]
    )
    async with transaction(w.sessionmaker) as s:
        order = (await orders.place_order(s, buyer, data, key)).orders[0]
        await orders.mark_paid(s, order.id, order.total_fen, f"test:{key}")
        return order.id, order.lines[0].id


async def scored_world(url: str, settings: Settings) -> Scored:
    """Shop 1 (kids) with 31 delivered orders, 30 of them sold by creator1 and 3 of those rated
    1 star; shop 2 (jade) with none. Facts rebuilt, every score recomputed."""
    w = await build(url, buyers=3, stock=500)
    try:
        sold = []
        for i in range(CREATOR_ORDERS):
            order_id, line_id = await place(w, i % 3, f"c{i}")
            await advance(w, order_id, "completed" if i < NEGATIVE else "delivered")
            sold.append((order_id, line_id))
        for i, (order_id, line_id) in enumerate(sold[:NEGATIVE]):
            buyer = w.buyers[i % 3]
            async with transaction(w.sessionmaker) as s:
                await reviews.post_review(
                    s, buyer, order_id, line_id, rating(p=1, text="和描述不符"), [], settings
                )
        shelf = await place(w, 0, "shelf", creator=False)
        await advance(w, shelf[0], "delivered")
        paid = await place(w, 1, "paid")
        await trust.rebuild_facts(w.sessionmaker)
        await trust.recompute_all(w.sessionmaker)
        async with transaction(w.sessionmaker) as s:
            shops = [await catalog.get_shop(s, shop_id) for shop_id in w.shops]
            products = [(await catalog.shop_products(s, None, shop_id, after_id=None, limit=5))[0].id
                        for shop_id in w.shops]  # fmt: skip
        return Scored(
            w, list(w.shops), [s.slug for s in shops], products, sold, shelf, paid,
            [b.username for b in w.buyers],
        )  # fmt: skip
    finally:
        await w.engine.dispose()


async def _complaints(url: str) -> list[Complaint]:
    from trustlive.db import create_engine, create_sessionmaker

    engine = create_engine(url)
    try:
        async with transaction(create_sessionmaker(engine)) as s:
            return list(await s.scalars(select(Complaint).order_by(Complaint.id)))
    finally:
        await engine.dispose()


async def _count_complaints(url: str) -> int:
    from trustlive.db import create_engine, create_sessionmaker

    engine = create_engine(url)
    try:
        async with transaction(create_sessionmaker(engine)) as s:
            return await s.scalar(select(func.count()).select_from(Complaint)) or 0
    finally:
        await engine.dispose()


@pytest.fixture
def world(client: TestClient, settings: Settings) -> Scored:
    return run(scored_world(settings.database_url, settings))


def speaking(client: TestClient, lang: str) -> TestClient:
    client.cookies.set("tl_lang", lang)
    return client


def badge(page: str, entity: str) -> str:
    """The HTML of the score badge about ``entity`` (shop, product, creator) on a page."""
    found = re.search(rf'<div class="trust-badge[^"]*"[^>]*data-entity="{entity}".*?</div>', page, re.S)
    assert found, f"no {entity} badge"
    return found.group(0)


def api_score(client: TestClient, kind: str, entity_id: int) -> dict[str, Any]:
    response = client.get(f"/api/v1/scores/{kind}/{entity_id}")
    assert response.status_code == 200, response.text
    return response.json()


# --- public badges ---------------------------------------------------------------------------


def test_badges_show_the_score_or_new_on_shop_product_and_creator_pages(
    client: TestClient, world: Scored
) -> None:
    shop = api_score(client, "shop", world.shop_ids[0])
    product = api_score(client, "product", world.product_ids[0])
    creator = api_score(client, "creator", world.w.creator.id)
    assert shop["status"] == product["status"] == creator["status"] == "scored"
    assert shop["orders_90"] == CREATOR_ORDERS + 1 and creator["orders_90"] == CREATOR_ORDERS

    page = speaking(client, "en").get(f"/shops/{world.slugs[0]}")
    assert page.status_code == 200
    b = badge(page.text, "shop")
    assert 'data-status="scored"' in b and "Shop experience score" in b
    assert f'<strong class="trust-score" data-score>{shop["score"]}</strong>' in b
    # A bar per dimension, with its figure.
    dims = dict(re.findall(r'<li data-dim="(\w+)">.*?<span class="num">([^<]+)</span>', b, re.S))
    assert dims == {d["key"]: d["score"] or "–" for d in shop["dims"]}
    assert set(dims) == {"product", "logistics", "aftersales"}
    assert ("Trusted shop" in b) == shop["trusted"]

    # The jade shop has no orders: "New", and how far it is from a score.
    new = badge(client.get(f"/shops/{world.slugs[1]}").text, "shop")
    assert 'data-status="new"' in new and ">New<" in new and "Not enough orders yet: 0 of 30" in new
    assert "Trusted shop" not in new and "trust-dims" not in new

    product_page = client.get(f"/p/{world.product_ids[0]}")
    assert product_page.status_code == 200
    pb = badge(product_page.text, "product")
    assert "Product score" in pb and f">{product['score']}<" in pb
    assert f">{shop['score']}<" in badge(product_page.text, "shop")  # next to the shop's link
    other = client.get(f"/p/{world.product_ids[1]}")
    assert "Not enough orders yet: 0 of 10" in badge(other.text, "product")

    creator_page = client.get(f"/creators/{world.w.creator.id}")
    assert creator_page.status_code == 200 and f">{world.w.creator.display_name}<" in creator_page.text
    cb = badge(creator_page.text, "creator")
    assert "Creator reputation score" in cb and f">{creator['score']}<" in cb
    assert 'data-dim="claims"' in cb
    # Not a creator, or nobody: not found.
    assert client.get(f"/creators/{world.w.merchants[0].id}").status_code == 404
    assert client.get("/creators/999999").status_code == 404

    zh = speaking(client, "zh_Hans")
    assert "店铺体验分" in zh.get(f"/shops/{world.slugs[0]}").text
    zh_new = badge(zh.get(f"/shops/{world.slugs[1]}").text, "shop")
    assert ">新<" in zh_new and "New" not in zh_new
    assert "带货口碑分" in zh.get(f"/creators/{world.w.creator.id}").text


# --- the owner's drill-down ------------------------------------------------------------------


def test_the_drill_down_is_for_the_shop_its_creator_and_ops(client: TestClient, world: Scored) -> None:
    shop_id = world.shop_ids[0]
    url = f"/console/scores/shop/{shop_id}"
    assert client.get(url, follow_redirects=False).status_code in (302, 303, 401)  # signed out

    sign_in(client, "merchant1")
    page = client.get(url)
    assert page.status_code == 200, page.text
    shop = api_score(client, "shop", shop_id)
    assert f"<strong data-total>{shop['score']}</strong>" in page.text
    for dim in ("product", "logistics", "aftersales"):
        assert f'data-dimension="{dim}"' in page.text
    assert 'data-dimension="claims"' not in page.text
    # Every indicator: its figures, its curve, its hint (the service's, translated) and its lines.
    for key in ("negative_review_rate", "on_time_shipping_rate", "delivery_hours", "handling_hours"):
        assert f'data-indicator="{key}"' in page.text
        assert f'href="/console/scores/shop/{shop_id}/indicators/{key}"' in page.text
    assert "Negative-review rate" in page.text and "Read the 1 and 2 star reviews below" in page.text
    section = page.text[page.text.index('data-indicator="negative_review_rate"') :]
    section = section[: section.index("</article>")]
    assert "last 60 days" in section and "How points are given" in section and "<td>1.2%</td>" in section
    # The shop's effects, and the history as JSON for the chart.
    assert "data-settlement-days" in page.text and 'data-flash-sale="allowed"' in page.text
    history = re.search(
        r"<script type=\"application/json\" data-trust-history>(.*?)</script>", page.text, re.S
    )
    assert history and f"{float(shop['score'])}" in history.group(1)
    # The product's drill-down too; the console links here.
    assert client.get(f"/console/scores/product/{world.product_ids[0]}").status_code == 200
    assert f'href="/console/scores/shop/{shop_id}"' in client.get(f"/console?shop={shop_id}").text
    zh = speaking(client, "zh_Hans").get(url)
    assert "计分规则" in zh.text and "店铺体验分" in zh.text
    speaking(client, "en")

    # Someone else's shop: refused, and nothing of it shown.
    sign_in(client, "merchant2")
    other = client.get(url)
    assert other.status_code in (403, 404) and shop["score"] not in other.text
    assert client.get(f"/console/scores/product/{world.product_ids[0]}").status_code in (403, 404)
    assert client.get(f"/console/scores/shop/{shop_id}/indicators/negative_review_rate").status_code in (
        403,
        404,
    )
    sign_in(client, world.buyers[0])
    assert client.get(url).status_code in (403, 404)
    assert client.get(f"/console/scores/creator/{world.w.creator.id}").status_code in (403, 404)
    # Bad things in the path: 4xx.
    assert client.get(f"/console/scores/planet/{shop_id}").status_code == 422

    sign_in(client, "creator1")
    mine = client.get(f"/console/scores/creator/{world.w.creator.id}")
    assert mine.status_code == 200 and 'data-dimension="claims"' in mine.text
    assert "Upheld false-claim complaints" in mine.text
    assert client.get(url).status_code in (403, 404)
    assert f'href="/console/scores/creator/{world.w.creator.id}"' in client.get("/console/live").text

    sign_in(client, "ops1")
    assert client.get(url).status_code == 200
    assert client.get(f"/console/scores/creator/{world.w.creator.id}").status_code == 200
    assert client.get("/console/scores/shop/999999").status_code == 404


def test_the_indicator_page_lists_the_lines_behind_it(client: TestClient, world: Scored) -> None:
    shop_id = world.shop_ids[0]
    base = f"/console/scores/shop/{shop_id}/indicators/negative_review_rate"
    sign_in(client, "merchant1")
    page = client.get(base)
    assert page.status_code == 200
    rows = re.findall(
        r'<li class="row-item static trust-line against" data-line="(\d+)" data-order="(\d+)"', page.text
    )
    assert sorted(int(o) for _, o in rows) == sorted(o for o, _ in world.creator_orders[:NEGATIVE])
    assert page.text.count("data-counts-against") == NEGATIVE and "rated 1★" in page.text
    assert f'href="/console/orders/{world.creator_orders[0][0]}"' in page.text
    assert "Read the 1 and 2 star reviews below" in page.text

    # Every line in the window, 20 a page, those against the score marked.
    first = client.get(f"{base}?show=all")
    listed = re.findall(r'data-line="(\d+)"', first.text)
    assert len(listed) == 20
    more = re.search(r'href="\?show=all&amp;cursor=([^"]+)"', first.text)
    assert more, "no link to the next page"
    second = client.get(f"{base}?show=all&cursor={more.group(1)}")
    assert second.status_code == 200
    listed += re.findall(r'data-line="(\d+)"', second.text)
    assert len(listed) == len(set(listed)) == CREATOR_ORDERS + 1
    against = re.findall(r'data-line="(\d+)" data-order="\d+" data-counts-against', first.text + second.text)
    assert sorted(int(x) for x in against) == sorted(line for _, line in world.creator_orders[:NEGATIVE])

    assert client.get(f"/console/scores/shop/{shop_id}/indicators/nonsense").status_code == 404
    for bad in ("not-a-cursor", "9" * 19, "9" * 30, "0"):
        assert client.get(f"{base}?cursor={bad}").status_code == 400, bad


# --- the buyer's complaint -------------------------------------------------------------------


def test_a_buyer_reports_a_false_claim_from_the_order_page(
    client: TestClient, world: Scored, settings: Settings
) -> None:
    url_db = settings.database_url
    order_id, line_id = world.creator_orders[NEGATIVE]  # delivered, buyer index NEGATIVE % 3 == 0
    buyer = world.buyers[NEGATIVE % 3]
    token = sign_in(client, buyer)
    page = client.get(f"/orders/{order_id}")
    action = f'action="/orders/{order_id}/lines/{line_id}/complaint"'
    assert page.status_code == 200 and action in page.text and "Report false claim" in page.text
    url = f"/orders/{order_id}/lines/{line_id}/complaint"

    # Bad input: the form again with the error and what was typed; nothing stored.
    empty = client.post(url, data={"_csrf_token": token, "claim": "   "})
    assert empty.status_code == 422 and "Say what the creator claimed and what you received." in empty.text
    assert 'name="claim"' in empty.text and 'aria-invalid="true"' in empty.text
    long = "说是纯棉" * 126  # 504 characters
    too_long = client.post(url, data={"_csrf_token": token, "claim": long})
    assert too_long.status_code == 422 and f"{long}</textarea>" in too_long.text
    assert "Keep it to 500 characters (it has 504)." in too_long.text
    assert run(_count_complaints(url_db)) == 0

    # Not possible here: a line no creator sold, an order not delivered yet, someone else's order.
    shelf_order, shelf_line = world.shelf_order
    token0 = sign_in(client, world.buyers[0])
    no_creator = client.post(
        f"/orders/{shelf_order}/lines/{shelf_line}/complaint", data={"_csrf_token": token0, "claim": "x"}
    )
    assert no_creator.status_code == 409 and "No creator sold you this item" in no_creator.text
    assert f'action="/orders/{shelf_order}/lines/' not in client.get(f"/orders/{shelf_order}").text
    paid_order, paid_line = world.paid_order
    token1 = sign_in(client, world.buyers[1])
    early = client.post(
        f"/orders/{paid_order}/lines/{paid_line}/complaint", data={"_csrf_token": token1, "claim": "x"}
    )
    assert early.status_code == 409 and "once the item has been delivered" in early.text
    assert (
        f'action="/orders/{paid_order}/lines/{paid_line}/complaint"'
        not in client.get(f"/orders/{paid_order}").text
    )
    assert client.post(url, data={"_csrf_token": token1, "claim": "不是我的订单"}).status_code == 404
    assert run(_count_complaints(url_db)) == 0

    # The buyer files it: back to the order, which shows it waiting for the platform.
    token = sign_in(client, buyer)
    done = client.post(
        url, data={"_csrf_token": token, "claim": "主播说是纯棉，收到的是化纤"}, follow_redirects=False
    )
    assert (
        done.status_code == 303
        and done.headers["location"] == f"/orders/{order_id}?done=complained#complaint-line-{line_id}"
    )
    shown = client.get(done.headers["location"])
    assert (
        "The platform will look into your report." in shown.text and "Waiting for the platform" in shown.text
    )
    assert action not in shown.text
    (stored,) = run(_complaints(url_db))
    assert (stored.order_line_id, stored.claim, stored.status) == (
        line_id,
        "主播说是纯棉，收到的是化纤",
        "pending",
    )
    again = client.post(url, data={"_csrf_token": token, "claim": "再投诉一次"})
    assert again.status_code == 409 and "You have already reported this item." in again.text
    assert run(_count_complaints(url_db)) == 1
    zh = speaking(client, "zh_Hans").get(f"/orders/{order_id}")
    assert "等待平台处理" in zh.text


# --- ops -------------------------------------------------------------------------------------


def test_ops_decide_complaints_and_recompute_scores(
    client: TestClient, world: Scored, settings: Settings
) -> None:
    url_db = settings.database_url
    filed = []
    for order_id, line_id in world.creator_orders[NEGATIVE : NEGATIVE + 2]:
        buyer = world.buyers[world.creator_orders.index((order_id, line_id)) % 3]
        token = sign_in(client, buyer)
        response = client.post(
            f"/orders/{order_id}/lines/{line_id}/complaint", data={"_csrf_token": token, "claim": f"虚假宣传 {order_id}"},
            follow_redirects=False,
        )  # fmt: skip
        assert response.status_code == 303, response.text
        filed.append(order_id)
    first, second = run(_complaints(url_db))

    # Not for buyers.
    assert client.get("/ops/complaints").status_code == 403
    assert (
        client.post(
            f"/ops/complaints/{first.id}/decision", data={"_csrf_token": token, "decision": "upheld"}
        ).status_code
        == 403
    )

    token = sign_in(client, "ops1")
    assert 'href="/ops/complaints"' in client.get("/ops").text
    queue = client.get("/ops/complaints")
    assert queue.status_code == 200
    assert (
        f'action="/ops/complaints/{first.id}/decision"' in queue.text and f"虚假宣传 {filed[0]}" in queue.text
    )
    assert queue.text.count('data-complaint-status="pending"') == 2

    # A decision that is neither: refused, nothing changes; a note too long: the same, note kept.
    bad = client.post(
        f"/ops/complaints/{first.id}/decision", data={"_csrf_token": token, "decision": "maybe"}
    )
    assert bad.status_code == 422 and "Choose uphold or dismiss." in bad.text
    long = client.post(
        f"/ops/complaints/{first.id}/decision",
        data={"_csrf_token": token, "decision": "upheld", "note": "长" * 501},
    )
    assert long.status_code == 422 and "长" * 501 + "</textarea>" in long.text
    assert [c.status for c in run(_complaints(url_db))] == ["pending", "pending"]

    upheld = client.post(
        f"/ops/complaints/{first.id}/decision", data={"_csrf_token": token, "decision": "upheld", "note": "直播回放属实", "status": "pending"},
        follow_redirects=False,
    )  # fmt: skip
    assert (
        upheld.status_code == 303
        and upheld.headers["location"] == f"/ops/complaints?status=pending&decided={first.id}"
    )
    after = client.get(upheld.headers["location"])
    assert (
        f"Complaint {first.id} decided." in after.text
        and after.text.count('data-complaint-status="pending"') == 1
    )
    dismissed = client.post(
        f"/ops/complaints/{second.id}/decision",
        data={"_csrf_token": token, "decision": "dismissed"},
        follow_redirects=False,
    )
    assert dismissed.status_code == 303
    twice = client.post(
        f"/ops/complaints/{first.id}/decision", data={"_csrf_token": token, "decision": "dismissed"}
    )
    assert twice.status_code == 409 and "This complaint has already been decided." in twice.text
    assert [(c.status, c.decision_note) for c in run(_complaints(url_db))] == [
        ("upheld", "直播回放属实"),
        ("dismissed", ""),
    ]
    upheld_tab = client.get("/ops/complaints?status=upheld")
    assert (
        f'data-complaint="{first.id}"' in upheld_tab.text
        and f'data-complaint="{second.id}"' not in upheld_tab.text
    )
    assert client.get("/ops/complaints?status=all").text.count("data-complaint-status=") == 2

    # The buyer sees the decision on the order page.
    buyer = world.buyers[NEGATIVE % 3]
    sign_in(client, buyer)
    assert "直播回放属实" in client.get(f"/orders/{first.order_id}").text

    # Recompute everything now: back to the queue, saying how many were scored.
    token = sign_in(client, "ops1")
    done = client.post("/ops/scores/recompute", data={"_csrf_token": token}, follow_redirects=False)
    assert done.status_code == 303
    count = int(re.fullmatch(r"/ops/complaints\?recomputed=(\d+)", done.headers["location"]).group(1))
    assert count >= 3  # the kids' shop, its product and the creator at least
    assert (
        f"Scores recomputed: {count} shops, products and creators scored."
        in client.get(done.headers["location"]).text
    )
    token = sign_in(client, world.buyers[0])
    assert client.post("/ops/scores/recompute", data={"_csrf_token": token}).status_code == 403
