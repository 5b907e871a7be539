"""The review routes over HTTP, on SQLite and PostgreSQL: multipart and JSON posts, bad input
refused with nothing stored, edits, replies, the public lists and the shop's list."""

from __future__ import annotations

from pathlib import Path

from litestar.testing import TestClient

from tests.helpers import image_bytes
from tests.reviews.conftest import order_to

RATINGS = {"rating_product": "5", "rating_logistics": "4", "rating_service": "5"}
RATINGS_JSON = {"rating_product": 5, "rating_logistics": 4, "rating_service": 5}


def review_url(order: dict) -> str:
    return f"/api/v1/orders/{order['id']}/lines/{order['lines'][0]['id']}/review"


def photos(n: int, fmt: str = "PNG") -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("photos", (f"p{i}.{fmt.lower()}", image_bytes(fmt), f"image/{fmt.lower()}")) for i in range(n)]


def stored(settings) -> list[Path]:  # type: ignore[no-untyped-def]
    folder = settings.media_dir / "reviews"
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def product_reviews(client: TestClient, product_id: int, query: str = "") -> dict:
    response = client.get(f"/api/v1/products/{product_id}/reviews{query}")
    assert response.status_code == 200, response.text
    return response.json()


def test_post_with_photos_and_read_back(client: TestClient, shop: dict) -> None:
    h, product = shop["headers"], shop["product"]
    order = order_to(client, shop, "buyer1")
    created = client.post(
        review_url(order), data={**RATINGS, "text": "面料很软"}, files=photos(2), headers=h["buyer1"]
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["rating_product"], body["rating_logistics"], body["text"]) == (5, 4, "面料很软")
    assert body["buyer"] == "B**" and body["order_id"] == order["id"] and len(body["photos"]) == 2
    photo = client.get(body["photos"][0]["url"])
    assert photo.status_code == 200 and photo.content == image_bytes("PNG")
    assert len(stored(shop["settings"])) == 2
    # JSON works too (no photos), for another line.
    other = order_to(client, shop, "buyer2")
    json_post = client.post(
        review_url(other),
        json={"rating_product": 2, "rating_logistics": 5, "rating_service": 4},
        headers=h["buyer2"],
    )
    assert json_post.status_code == 201, json_post.text
    listed = product_reviews(client, product["id"])
    assert [r["id"] for r in listed["items"]] == [json_post.json()["id"], body["id"]]
    assert listed["items"][0]["order_id"] is None and listed["next_cursor"] is None
    assert [r["id"] for r in product_reviews(client, product["id"], "?filter=photos")["items"]] == [
        body["id"]
    ]
    assert [r["id"] for r in product_reviews(client, product["id"], "?filter=low")["items"]] == [
        json_post.json()["id"]
    ]
    page = product_reviews(client, product["id"], "?limit=1")
    assert len(page["items"]) == 1 and page["next_cursor"]
    rest = product_reviews(client, product["id"], f"?limit=1&cursor={page['next_cursor']}")
    assert [r["id"] for r in rest["items"]] == [body["id"]] and rest["next_cursor"] is None
    ratings = client.get(f"/api/v1/products/{product['id']}/ratings").json()
    assert ratings == {
        "product_id": product["id"], "count": 2, "avg_product": 3.5, "avg_logistics": 4.5, "avg_service": 4.5,
        "distribution": {"1": 0, "2": 1, "3": 0, "4": 0, "5": 1}, "with_photos": 1, "low": 1,
    }  # fmt: skip
    # Twice: 409, and nothing more stored.
    again = client.post(review_url(order), data=RATINGS, files=photos(1), headers=h["buyer1"])
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_reviewed"
    assert len(stored(shop["settings"])) == 2


def test_bad_posts_change_nothing(client: TestClient, shop: dict) -> None:
    h = shop["headers"]
    order = order_to(client, shop, "buyer1")
    url = review_url(order)
    cases = [
        ({**RATINGS, "rating_product": "0"}, [], 422),
        ({**RATINGS, "rating_service": "6"}, [], 422),
        ({**RATINGS, "rating_logistics": "four"}, [], 422),
        ({"rating_product": "5", "rating_logistics": "5"}, [], 422),
        ({**RATINGS, "text": "长" * 501}, [], 422),
        (RATINGS, photos(10), 422),
        (RATINGS, [*photos(1), ("photos", ("notes.txt", b"just text", "text/plain"))], 415),
        (RATINGS, [("photos", ("fake.png", b"\x89PNG not really", "image/png"))], 415),
        (RATINGS, photos(1, "GIF"), 415),
    ]
    for fields, files, status in cases:
        response = client.post(url, data=fields, files=files or None, headers=h["buyer1"])
        assert response.status_code == status, (fields, response.text)
    too_many = client.post(url, data=RATINGS, files=photos(10), headers=h["buyer1"])
    assert too_many.json()["error"]["code"] == "too_many_photos"
    strict = client.post(
        url, json={"rating_product": "5", "rating_logistics": 5, "rating_service": 5}, headers=h["buyer1"]
    )
    assert strict.status_code == 422 and strict.json()["error"]["fields"][0]["field"] == "rating_product"
    assert (
        client.post(
            url, content=b"rating_product=5", headers={**h["buyer1"], "Content-Type": "text/plain"}
        ).status_code
        == 415
    )
    assert (
        client.post(
            url, content=b"{", headers={**h["buyer1"], "Content-Type": "application/json"}
        ).status_code
        == 400
    )
    # Not your order, not the shop's to review, unknown line, not signed in.
    assert client.post(url, data=RATINGS, headers=h["buyer2"]).status_code == 404
    assert client.post(url, data=RATINGS, headers=h["merchant1"]).status_code == 404
    assert (
        client.post(
            f"/api/v1/orders/{order['id']}/lines/999999/review", data=RATINGS, headers=h["buyer1"]
        ).status_code
        == 404
    )
    assert client.post(url, data=RATINGS).status_code == 401
    # Not completed yet: 409.
    shipped = order_to(client, shop, "buyer1", "shipped")
    early = client.post(review_url(shipped), data=RATINGS, headers=h["buyer1"])
    assert early.status_code == 409 and early.json()["error"]["code"] == "not_completed"
    assert product_reviews(client, shop["product"]["id"])["items"] == []
    assert stored(shop["settings"]) == []


def test_edit_then_reply(client: TestClient, shop: dict) -> None:
    h = shop["headers"]
    order = order_to(client, shop, "buyer1")
    posted = client.post(
        review_url(order), data={**RATINGS, "text": "还行"}, files=photos(1), headers=h["buyer1"]
    ).json()
    edited = client.patch(
        review_url(order), json={"rating_product": 3, "text": "洗后缩水"}, headers=h["buyer1"]
    )
    assert edited.status_code == 200, edited.text
    body = edited.json()
    assert (body["rating_product"], body["rating_logistics"], body["text"]) == (3, 4, "洗后缩水")
    assert (
        body["created_at"] == posted["created_at"]
        and body["edited_at"] is not None
        and len(body["photos"]) == 1
    )
    replaced = client.patch(
        review_url(order), data={"clear_photos": "true"}, files=photos(3), headers=h["buyer1"]
    )
    assert replaced.status_code == 200 and len(replaced.json()["photos"]) == 3
    assert client.patch(review_url(order), json={"rating_product": 3}, headers=h["buyer2"]).status_code == 404
    assert client.patch(review_url(order), json={}, headers=h["buyer1"]).status_code == 422
    assert client.patch(review_url(order), json={"stars": 5}, headers=h["buyer1"]).status_code == 422

    reply_url = f"/api/v1/reviews/{posted['id']}/reply"
    assert client.post(reply_url, json={"text": "亲，抱歉"}, headers=h["merchant2"]).status_code == 403
    assert client.post(reply_url, json={"text": "亲，抱歉"}, headers=h["buyer1"]).status_code == 403
    assert client.post(reply_url, json={"text": ""}, headers=h["merchant1"]).status_code == 422
    assert (
        client.post("/api/v1/reviews/999999/reply", json={"text": "x"}, headers=h["merchant1"]).status_code
        == 404
    )
    first = client.post(reply_url, json={"text": "亲，抱歉，已补发"}, headers=h["staff1"])
    assert first.status_code == 200, first.text
    assert first.json()["reply"]["text"] == "亲，抱歉，已补发" and first.json()["reply"]["edited_at"] is None
    second = client.post(reply_url, json={"text": "已补发，请查收"}, headers=h["merchant1"]).json()
    assert (
        second["reply"]["replied_at"] == first.json()["reply"]["replied_at"] and second["reply"]["edited_at"]
    )
    public = product_reviews(client, shop["product"]["id"])["items"][0]
    assert public["reply"]["text"] == "已补发，请查收"


def test_shop_list_is_for_the_shop(client: TestClient, shop: dict) -> None:
    h, shop_id = shop["headers"], shop["shop"]["id"]
    low = client.post(
        review_url(order_to(client, shop, "buyer1")),
        data={**RATINGS, "rating_service": "1"},
        headers=h["buyer1"],
    ).json()
    good = client.post(review_url(order_to(client, shop, "buyer2")), data=RATINGS, headers=h["buyer2"]).json()
    client.post(f"/api/v1/reviews/{good['id']}/reply", json={"text": "谢谢"}, headers=h["merchant1"])
    url = f"/api/v1/shops/{shop_id}/reviews"
    for who in ("merchant1", "staff1", "ops1"):
        listed = client.get(url, headers=h[who])
        assert listed.status_code == 200 and [r["id"] for r in listed.json()["items"]] == [
            good["id"],
            low["id"],
        ]
    assert [
        r["id"] for r in client.get(url + "?filter=unreplied", headers=h["merchant1"]).json()["items"]
    ] == [low["id"]]
    # Low in the shop's list: any rating of 1-2 (here the service rating).
    assert [r["id"] for r in client.get(url + "?filter=low", headers=h["merchant1"]).json()["items"]] == [
        low["id"]
    ]
    assert client.get(url + "?filter=everything", headers=h["merchant1"]).status_code == 422
    assert client.get(url, headers=h["merchant2"]).status_code == 403
    assert client.get(url, headers=h["buyer1"]).status_code == 403
    assert client.get(url).status_code == 401
    assert client.get("/api/v1/products/999999/reviews").status_code == 404
    assert client.get("/api/v1/products/999999/ratings").status_code == 404
    assert client.get(f"/api/v1/products/{shop['product']['id']}/reviews?cursor=bogus").status_code == 400


def test_nul_characters(client: TestClient, shop: dict) -> None:
    """JSON text holding a NUL (which PostgreSQL cannot store) is a 422 naming the field, nothing
    stored, on both databases; a form drops NUL characters, as every form does."""
    h = shop["headers"]
    order = order_to(client, shop, "buyer1")
    refused = client.post(review_url(order), json={**RATINGS_JSON, "text": "a\x00b"}, headers=h["buyer1"])
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["fields"][0]["field"] == "text"
    assert product_reviews(client, shop["product"]["id"])["items"] == []

    posted = client.post(review_url(order), data={**RATINGS, "text": "面料\x00很软"}, headers=h["buyer1"])
    assert posted.status_code == 201, posted.text
    assert posted.json()["text"] == "面料很软"
    edit = client.patch(review_url(order), json={"text": "洗后\x00缩水"}, headers=h["buyer1"])
    assert edit.status_code == 422 and edit.json()["error"]["fields"][0]["field"] == "text"
    (review,) = product_reviews(client, shop["product"]["id"])["items"]
    assert (review["text"], review["edited_at"]) == ("面料很软", None)
    reply = client.post(
        f"/api/v1/reviews/{review['id']}/reply", json={"text": "谢\x00谢"}, headers=h["merchant1"]
    )
    assert reply.status_code == 422 and reply.json()["error"]["fields"][0]["field"] == "text"
    assert product_reviews(client, shop["product"]["id"])["items"][0]["reply"] is None


def test_reviews_of_a_product_off_the_shelf(client: TestClient, shop: dict) -> None:
    """Taken off the shelf, a product's reviews and ratings are its shop's and ops' to read (as
    its page): 404 for everyone else."""
    h, product_id = shop["headers"], shop["product"]["id"]
    posted = client.post(review_url(order_to(client, shop, "buyer1")), data=RATINGS, headers=h["buyer1"])
    assert posted.status_code == 201, posted.text
    off = client.post(f"/api/v1/products/{product_id}/unpublish", headers=h["merchant1"])
    assert off.status_code == 200, off.text
    for who in (None, "buyer1", "merchant2"):
        headers = h[who] if who else {}
        assert client.get(f"/api/v1/products/{product_id}/reviews", headers=headers).status_code == 404
        ratings = client.get(f"/api/v1/products/{product_id}/ratings", headers=headers)
        assert ratings.status_code == 404 and ratings.json()["error"]["code"] == "product_not_found"
    for who in ("merchant1", "staff1", "ops1"):
        listed = client.get(f"/api/v1/products/{product_id}/reviews", headers=h[who])
        assert listed.status_code == 200 and [r["id"] for r in listed.json()["items"]] == [
            posted.json()["id"]
        ]
        ratings = client.get(f"/api/v1/products/{product_id}/ratings", headers=h[who])
        assert ratings.status_code == 200 and ratings.json()["count"] == 1
