"""The review pages with a cookie session and CSRF tokens, in English and Chinese, on SQLite and
PostgreSQL: the product page's summary, all reviews, the order page's form, the edit page, the
shop's console and its replies."""

from __future__ import annotations

import re

from litestar.testing import TestClient

from tests.helpers import image_bytes, open_shop
from tests.reviews.conftest import order_to
from tests.web.test_pages import csrf_of, sign_in

RATINGS = {"rating_product": "5", "rating_logistics": "4", "rating_service": "5"}


def api_review(client: TestClient, shop: dict, buyer: str, fields: dict, n_photos: int = 0) -> dict:
    order = order_to(client, shop, buyer)
    files = [("photos", (f"p{i}.png", image_bytes(), "image/png")) for i in range(n_photos)]
    response = client.post(
        f"/api/v1/orders/{order['id']}/lines/{order['lines'][0]['id']}/review",
        data=fields, files=files or None, headers=shop["headers"][buyer],
    )  # fmt: skip
    assert response.status_code == 201, response.text
    return response.json()


def reviews_of(client: TestClient, shop: dict) -> list[dict]:
    return client.get(
        f"/api/v1/shops/{shop['shop']['id']}/reviews", headers=shop["headers"]["merchant1"]
    ).json()["items"]


def speaking(client: TestClient, lang: str) -> TestClient:
    """The client with its language cookie set (kept for the requests after)."""
    client.cookies.set("tl_lang", lang)
    return client


def checked_value(page: str, name: str) -> str | None:
    found = re.search(rf'name="{name}" value="(\d)" checked', page)
    return found.group(1) if found else None


def test_product_page_shows_ratings_in_both_languages(client: TestClient, shop: dict) -> None:
    product_id = shop["product"]["id"]
    empty = speaking(client, "en").get(f"/p/{product_id}")
    assert "No reviews yet" in empty.text
    first = api_review(client, shop, "buyer1", {**RATINGS, "text": "面料软，宝宝穿着舒服"}, n_photos=1)
    api_review(
        client, shop, "buyer2", {"rating_product": "2", "rating_logistics": "3", "rating_service": "4"}
    )
    client.post(
        f"/api/v1/reviews/{first['id']}/reply",
        json={"text": "谢谢亲的支持"},
        headers=shop["headers"]["merchant1"],
    )
    client.cookies.clear()
    en = speaking(client, "en").get(f"/p/{product_id}")
    assert en.status_code == 200
    assert "Reviews" in en.text and "See all (2)" in en.text and "2 reviews" in en.text
    # Averages: product (5+2)/2, logistics (4+3)/2, service (5+4)/2.
    assert "<strong>3.50</strong>" in en.text and "<dd>4.50</dd>" in en.text and "<dd>3.50</dd>" in en.text
    bars = dict(re.findall(r'data-stars="(\d)">.*?<span class="bar-count">(\d+)</span>', en.text))
    assert bars == {"5": "1", "4": "0", "3": "0", "2": "1", "1": "0"}
    assert "B**" in en.text and "Buyer1" not in en.text and "Buyer2" not in en.text
    assert "面料软，宝宝穿着舒服" in en.text and "谢谢亲的支持" in en.text and "Shop's reply" in en.text
    assert first["photos"][0]["url"] in en.text
    zh = speaking(client, "zh_Hans").get(f"/p/{product_id}")
    assert "评价" in zh.text and "查看全部 (2)" in zh.text and "商家回复" in zh.text
    assert "See all" not in zh.text

    everything = speaking(client, "en").get(f"/p/{product_id}/reviews")
    assert everything.status_code == 200 and everything.text.count('class="review"') == 2
    with_photos = speaking(client, "en").get(f"/p/{product_id}/reviews?filter=photos")
    assert with_photos.text.count('class="review"') == 1 and "面料软" in with_photos.text
    low = speaking(client, "zh_Hans").get(f"/p/{product_id}/reviews?filter=low")
    assert low.text.count('class="review"') == 1 and "面料软" not in low.text and "差评" in low.text
    assert client.get(f"/p/{product_id}/reviews?filter=best").status_code == 422
    assert client.get("/p/999999/reviews").status_code == 404


def test_buyer_reviews_on_the_order_page_and_edits(client: TestClient, shop: dict) -> None:
    order = order_to(client, shop, "buyer1")
    line_id = order["lines"][0]["id"]
    token = sign_in(client, "buyer1")
    page = client.get(f"/orders/{order['id']}")
    assert page.status_code == 200
    action = f'action="/orders/{order["id"]}/lines/{line_id}/review"'
    assert action in page.text and 'enctype="multipart/form-data"' in page.text
    panel_form = page.text[page.text.index(action) :]
    assert re.search(r'name="_csrf_token" value="[^"]+"', panel_form[: panel_form.index("</form>")])
    assert len(re.findall(r'type="radio" id="r\d+-rating_product-\d"', page.text)) == 5
    url = f"/orders/{order['id']}/lines/{line_id}/review"

    # A missing rating: the form comes back (422) with what was typed, nothing stored.
    bad = client.post(url, data={"_csrf_token": token, "mode": "new", "rating_product": "4", "text": "挺好"})
    assert bad.status_code == 422 and "Rate Logistics from 1 to 5 stars." in bad.text
    assert "挺好</textarea>" in bad.text and checked_value(bad.text, "rating_product") == "4"
    assert re.search(r'<fieldset class="star-picker" aria-invalid="true">\s*<legend>Logistics', bad.text)
    # A photo that is not an image: 415 with the form again.
    fake = client.post(url, data={"_csrf_token": token, "mode": "new", **RATINGS},
                       files=[("photos", ("x.png", b"nope", "image/png"))])  # fmt: skip
    assert fake.status_code == 415 and "Only JPEG, PNG or WebP images are accepted." in fake.text
    assert reviews_of(client, shop) == []

    done = client.post(
        url, data={"_csrf_token": token, "mode": "new", **RATINGS, "text": "宝宝穿着正合适"},
        files=[("photos", ("a.png", image_bytes(), "image/png"))], follow_redirects=False,
    )  # fmt: skip
    assert (
        done.status_code == 303
        and done.headers["location"] == f"/orders/{order['id']}?done=reviewed#review-line-{line_id}"
    )
    (review,) = reviews_of(client, shop)
    assert (review["rating_product"], review["rating_logistics"], review["text"], len(review["photos"])) == (
        5,
        4,
        "宝宝穿着正合适",
        1,
    )
    after = client.get(f"/orders/{order['id']}?done=reviewed")
    assert (
        "Thank you for your review." in after.text
        and "Edit review" in after.text
        and action not in after.text
    )
    again = client.post(url, data={"_csrf_token": token, "mode": "new", **RATINGS})
    assert again.status_code == 409 and "You have already reviewed this item" in again.text

    edit = client.get(url)
    assert (
        edit.status_code == 200
        and "Edit your review" in edit.text
        and checked_value(edit.text, "rating_product") == "5"
    )
    assert 'name="clear_photos"' in edit.text
    saved = client.post(url, data={"_csrf_token": token, "mode": "edit", **RATINGS, "rating_product": "3",
                                   "text": "洗后有点缩水", "clear_photos": "1"}, follow_redirects=False)  # fmt: skip
    assert saved.status_code == 303
    (review,) = reviews_of(client, shop)
    assert (review["rating_product"], review["text"], review["photos"]) == (3, "洗后有点缩水", [])
    assert review["edited_at"] is not None

    zh = speaking(client, "zh_Hans").get(f"/orders/{order['id']}")
    assert "修改评价" in zh.text and "评价" in zh.text
    # Someone else's order: not found; the review form of an unfinished order: 409.
    sign_in(client, "buyer2")
    assert client.get(url).status_code == 404
    shipped = order_to(client, shop, "buyer2", "shipped")
    early = client.get(f"/orders/{shipped['id']}/lines/{shipped['lines'][0]['id']}/review")
    assert early.status_code == 409 and "once you have confirmed receipt" in early.text
    assert 'class="card order-reviews"' not in client.get(f"/orders/{shipped['id']}").text


def test_shop_console_lists_and_replies(client: TestClient, shop: dict) -> None:
    shop_id = shop["shop"]["id"]
    low = api_review(client, shop, "buyer1", {**RATINGS, "rating_product": "1", "text": "开线了"})
    good = api_review(client, shop, "buyer2", RATINGS)
    token = sign_in(client, "merchant1")
    page = client.get(f"/console/reviews?shop={shop_id}")
    assert page.status_code == 200 and page.text.count('class="review"') == 2
    assert f'action="/console/reviews/{low["id"]}/reply"' in page.text and "开线了" in page.text
    assert "B**" in page.text and f"/console/orders/{low['order_id']}" in page.text
    # Each reply form carries its own CSRF token (the macro renders it without the page's context).
    form = page.text[page.text.index(f'action="/console/reviews/{low["id"]}/reply"') :]
    assert re.search(r'name="_csrf_token" value="[^"]+"', form[: form.index("</form>")])
    low_only = client.get(f"/console/reviews?shop={shop_id}&filter=low")
    assert low_only.text.count('class="review"') == 1 and "开线了" in low_only.text

    empty = client.post(
        f"/console/reviews/{low['id']}/reply", data={"_csrf_token": token, "shop": str(shop_id), "text": ""}
    )
    assert empty.status_code == 422 and "Write your reply first." in empty.text
    too_long = client.post(
        f"/console/reviews/{low['id']}/reply",
        data={"_csrf_token": token, "shop": str(shop_id), "text": "长" * 501},
    )
    assert too_long.status_code == 422 and "长" * 501 + "</textarea>" in too_long.text
    assert all(r["reply"] is None for r in reviews_of(client, shop))

    sent = client.post(
        f"/console/reviews/{low['id']}/reply", data={"_csrf_token": token, "shop": str(shop_id), "text": "抱歉，已为您换新"},
        follow_redirects=False,
    )  # fmt: skip
    assert sent.status_code == 303 and f"saved={low['id']}" in sent.headers["location"]
    shown = client.get(sent.headers["location"])
    assert "Reply saved." in shown.text and "抱歉，已为您换新" in shown.text
    unreplied = client.get(f"/console/reviews?shop={shop_id}&filter=unreplied")
    assert unreplied.text.count('class="review"') == 1 and f'id="review-{good["id"]}"' in unreplied.text
    # From the console order page, back to it.
    order_page = client.get(f"/console/orders/{good['order_id']}")
    assert f'action="/console/reviews/{good["id"]}/reply"' in order_page.text
    back = client.post(
        f"/console/reviews/{good['id']}/reply",
        data={"_csrf_token": token, "shop": str(shop_id), "text": "谢谢", "next": f"/console/orders/{good['order_id']}#review-{good['id']}"},
        follow_redirects=False,
    )  # fmt: skip
    assert back.headers["location"] == f"/console/orders/{good['order_id']}#review-{good['id']}"
    zh = speaking(client, "zh_Hans").get(f"/console/reviews?shop={shop_id}")
    assert "未回复" in zh.text and "修改回复" in zh.text

    # Another merchant: not their shop, and not their review to answer.
    open_shop(client, shop["headers"]["merchant2"], "和田玉坊")
    other = sign_in(client, "merchant2")
    assert client.get(f"/console/reviews?shop={shop_id}").status_code == 403
    refused = client.post(f"/console/reviews/{low['id']}/reply", data={"_csrf_token": other, "text": "hi"})
    assert refused.status_code == 403
    assert [r["reply"]["text"] for r in reviews_of(client, shop) if r["id"] == low["id"]] == [
        "抱歉，已为您换新"
    ]
    assert csrf_of(client.get("/").text)


def test_reply_with_a_broken_shop_field_is_refused(client: TestClient, shop: dict) -> None:
    """The reply form's hidden ``shop`` must be a plain id: "²" (a digit to str.isdigit, not to
    int) or any other mangled value is a 422, not a 500, and no reply is saved."""
    review = api_review(client, shop, "buyer1", RATINGS)
    token = sign_in(client, "merchant1")
    for bad in ("²", "0", "-1", "x1", str(2**63)):
        response = client.post(
            f"/console/reviews/{review['id']}/reply", data={"_csrf_token": token, "shop": bad, "text": "谢谢"}
        )
        assert response.status_code == 422, (bad, response.text)
        assert "Please check what you entered" in response.text
    assert [r["reply"] for r in reviews_of(client, shop)] == [None]
