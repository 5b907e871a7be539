"""Shelf search: real full-text search (FTS5 / tsvector) that understands Chinese terms."""

from __future__ import annotations

import pytest
from litestar.testing import TestClient

from tests.helpers import add_category, open_shop
from trustlive.catalog.repository import segment


@pytest.fixture
def shelf(client: TestClient, users: dict[str, dict[str, str]]) -> dict:
    ops, h = users["ops1"], users["merchant1"]
    jade = add_category(client, ops, "jade", "玉石翡翠", requires_inspection=True)
    kids = add_category(client, ops, "kids", "童装")
    shop = open_shop(client, h, "周记玉坊")
    titles = {
        "bangle": ("新疆和田玉手镯 正圈 56mm", jade["id"], "羊脂白玉，附CMA质检证书"),
        "pendant": ("翡翠平安扣吊坠", jade["id"], "缅甸A货 jadeite pendant"),
        "bodysuit": ("儿童纯棉连体衣 73-90cm", kids["id"], "宝宝 baby bodysuit, organic cotton"),
        "draft": ("和田玉籽料原石（草稿）", jade["id"], "未上架"),
    }
    ids = {}
    for key, (title, category_id, description) in titles.items():
        body = {
            "title": title,
            "category_id": category_id,
            "description": description,
            "skus": [{"price_fen": 128000, "stock": 3}],
        }
        product = client.post(f"/api/v1/shops/{shop['id']}/products", json=body, headers=h).json()
        ids[key] = product["id"]
        if key != "draft":
            assert client.post(f"/api/v1/products/{product['id']}/publish", headers=h).status_code == 200
    return {"ids": ids, "jade": jade, "kids": kids, "shop": shop, "merchant": h}


def _search(client: TestClient, q: str, **params: object) -> list[int]:
    response = client.get("/api/v1/search", params={"q": q, **params})
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def test_chinese_terms_of_any_length_match(client: TestClient, shelf: dict) -> None:
    ids = shelf["ids"]
    assert _search(client, "和田玉") == [ids["bangle"]]
    assert _search(client, "和田") == [ids["bangle"]]  # two characters: too short for trigram search
    assert _search(client, "镯") == [ids["bangle"]]
    assert _search(client, "连体衣") == [ids["bodysuit"]]
    # 翡翠 is in the pendant's title and in both jade products' category: title matches rank first.
    assert _search(client, "翡翠") == [ids["pendant"], ids["bangle"]]
    assert set(_search(client, "玉石翡翠")) == {ids["bangle"], ids["pendant"]}  # category name
    assert _search(client, "周记玉坊") != []  # shop name


def test_phrases_not_scattered_characters(client: TestClient, shelf: dict) -> None:
    # 手 and 玉 both occur in the bangle's title, but not as the phrase 玉手.
    assert _search(client, "玉手") == [shelf["ids"]["bangle"]]  # "和田玉手镯" does contain 玉手
    assert _search(client, "手玉") == []


def test_latin_words_numbers_and_several_terms(client: TestClient, shelf: dict) -> None:
    ids = shelf["ids"]
    assert _search(client, "Jadeite") == [ids["pendant"]]
    assert _search(client, "baby cotton") == [ids["bodysuit"]]
    assert _search(client, "56mm") == [ids["bangle"]]
    assert _search(client, "和田 手镯") == [ids["bangle"]]
    assert _search(client, "和田 连体衣") == []


def test_only_published_products_are_found(client: TestClient, shelf: dict) -> None:
    ids = shelf["ids"]
    assert ids["draft"] not in _search(client, "籽料")
    client.post(f"/api/v1/products/{ids['draft']}/publish", headers=shelf["merchant"])
    assert _search(client, "籽料") == [ids["draft"]]
    client.post(f"/api/v1/products/{ids['bangle']}/unpublish", headers=shelf["merchant"])
    assert _search(client, "手镯") == []
    # Editing a published product re-indexes it.
    client.patch(
        f"/api/v1/products/{ids['pendant']}", json={"title": "冰种翡翠观音"}, headers=shelf["merchant"]
    )
    assert _search(client, "观音") == [ids["pendant"]]
    assert _search(client, "平安扣") == []


def test_category_filter_and_pagination(client: TestClient, shelf: dict) -> None:
    ids = shelf["ids"]
    assert _search(client, "和田", category_id=shelf["kids"]["id"]) == []
    assert _search(client, "玉", category_id=shelf["kids"]["id"]) == [shelf["ids"]["bodysuit"]]  # shop name
    assert set(_search(client, "玉", category_id=shelf["jade"]["id"])) == {ids["bangle"], ids["pendant"]}
    first = client.get("/api/v1/search", params={"q": "玉石翡翠", "limit": 1}).json()
    assert len(first["items"]) == 1 and first["next_cursor"]
    second = client.get(
        "/api/v1/search", params={"q": "玉石翡翠", "limit": 1, "cursor": first["next_cursor"]}
    ).json()
    assert len(second["items"]) == 1 and second["items"][0]["id"] != first["items"][0]["id"]
    assert second["next_cursor"] is None


@pytest.mark.parametrize(
    "q",
    ['"', "'", "*", "NEAR(a b)", "a OR b", "-", "^玉", '玉"手', "(", ")", "\\", "%", "_", "AND", "👍", "　"],
)
def test_query_syntax_cannot_break_search(client: TestClient, shelf: dict, q: str) -> None:
    response = client.get("/api/v1/search", params={"q": q})
    assert response.status_code in (200, 422), response.text


def test_bad_search_input(client: TestClient, shelf: dict) -> None:
    assert client.get("/api/v1/search").status_code == 422
    assert client.get("/api/v1/search", params={"q": ""}).status_code == 422
    assert client.get("/api/v1/search", params={"q": "玉" * 101}).status_code == 422
    assert client.get("/api/v1/search", params={"q": "玉", "limit": 0}).status_code == 422
    assert client.get("/api/v1/search", params={"q": "玉", "cursor": "%%%"}).status_code == 400
    assert client.get("/api/v1/search", params={"q": "玉", "category_id": 999}).status_code == 404


def test_segment() -> None:
    assert segment("新疆和田玉 Hetian-Jade 56mm") == ["新", "疆", "和", "田", "玉", "hetian", "jade", "56mm"]
    assert segment("!!!") == []
