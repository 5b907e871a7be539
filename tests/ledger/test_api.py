"""The wallet and ledger JSON API, per role, with bad input of every kind."""

from __future__ import annotations

import pytest
from litestar.testing import TestClient

from tests.helpers import create_user, open_shop, token_for
from tests.ledger.util import sale, with_db
from trustlive.config import Settings
from trustlive.ledger import service as ledger
from trustlive.ledger.tasks import process_payouts


@pytest.fixture
def world(client: TestClient, users: dict[str, dict[str, str]], settings: Settings) -> dict:
    """merchant1's shop sold 10000 fen with creator1 attributed (shop 8500, creator 1000);
    staff1 works for the shop."""
    shop = open_shop(client, users["merchant1"])
    other = open_shop(client, users["merchant2"], name="童装小铺")
    create_user(settings.database_url, "staff1")
    added = client.post(
        f"/api/v1/shops/{shop['id']}/staff", json={"username": "staff1"}, headers=users["merchant1"]
    )
    assert added.status_code == 201, added.text
    creator_id = client.get("/api/v1/me", headers=users["creator1"]).json()["id"]
    with_db(settings.database_url, lambda sm: sale(sm, 1, 10_000, shop_id=shop["id"], creator_id=creator_id))
    return {
        "shop": shop,
        "other": other,
        "creator_id": creator_id,
        "staff1": token_for(client, "staff1"),
        **users,
    }


def test_shop_wallet_by_role(client: TestClient, world: dict) -> None:
    url = f"/api/v1/wallets/shops/{world['shop']['id']}"
    for who in ("merchant1", "staff1", "ops1"):
        response = client.get(url, headers=world[who])
        assert response.status_code == 200, (who, response.text)
        body = response.json()
        assert body["account"] == f"shop:{world['shop']['id']}:payable"
        assert (body["balance_fen"], body["pending_payouts_fen"], body["paid_out_fen"]) == (8_500, 0, 0)
        assert [(x["kind"], x["ref"], x["amount_fen"], x["balance_after_fen"]) for x in body["lines"]] == [
            ("settlement", "order:1", 8_500, 8_500)
        ]
    for who in ("merchant2", "buyer1", "creator1"):
        response = client.get(url, headers=world[who])
        assert response.status_code == 403 and response.json()["error"]["code"] == "not_your_shop", who
    assert client.get(url).status_code == 401
    assert client.get("/api/v1/wallets/shops/999999", headers=world["ops1"]).status_code == 404
    assert client.get(url + "?cursor=garbage", headers=world["merchant1"]).status_code == 400
    assert client.get(url + "?limit=0", headers=world["merchant1"]).status_code == 422


def test_creator_wallet_and_payouts(client: TestClient, world: dict) -> None:
    mine = client.get("/api/v1/wallets/creators/me", headers=world["creator1"])
    assert mine.status_code == 200 and mine.json()["balance_fen"] == 1_000
    assert mine.json()["owner_id"] == world["creator_id"]
    for who in ("merchant1", "buyer1"):
        assert client.get("/api/v1/wallets/creators/me", headers=world[who]).status_code == 403
    url = "/api/v1/wallets/creators/me/payouts"
    assert (
        client.post(
            url, json={"amount_fen": 1_001, "bank_account": "ICBC 1234"}, headers=world["creator1"]
        ).json()["error"]["code"]
        == "insufficient_funds"
    )
    made = client.post(
        url, json={"amount_fen": 1_000, "bank_account": "ICBC 6222 1234"}, headers=world["creator1"]
    )
    assert made.status_code == 201, made.text
    assert made.json()["status"] == "requested" and made.json()["bank_account"] == "•••• 1234"
    assert (
        client.post(
            url, json={"amount_fen": 1_000, "bank_account": "x" * 4}, headers=world["merchant1"]
        ).status_code
        == 403
    )


def test_shop_payouts(client: TestClient, world: dict, settings: Settings) -> None:
    shop_id = world["shop"]["id"]
    url = f"/api/v1/wallets/shops/{shop_id}/payouts"
    good = {"amount_fen": 5_000, "bank_account": "ICBC 6222 0000 1234"}
    bad_bodies = [
        {},
        {"amount_fen": 5_000},
        {"bank_account": "ICBC 1234"},
        {**good, "amount_fen": 0},
        {**good, "amount_fen": -1},
        {**good, "amount_fen": "5000"},
        {**good, "amount_fen": 50.5},
        {**good, "amount_fen": True},
        {**good, "amount_fen": 10**12},
        {**good, "bank_account": "123"},
        {**good, "bank_account": "x" * 65},
        {**good, "extra": 1},
    ]
    for body in bad_bodies:
        response = client.post(url, json=body, headers=world["merchant1"])
        assert response.status_code in (400, 422), (body, response.text)
    assert (
        client.post(
            url, content=b"{not json", headers={**world["merchant1"], "content-type": "application/json"}
        ).status_code
        == 400
    )
    too_much = client.post(url, json={**good, "amount_fen": 8_501}, headers=world["merchant1"])
    assert too_much.status_code == 409 and too_much.json()["error"]["code"] == "insufficient_funds"
    for who, status in (("merchant2", 403), ("staff1", 403), ("ops1", 403), ("buyer1", 403)):
        assert client.post(url, json=good, headers=world[who]).status_code == status, who
    assert client.post(url, json=good).status_code == 401
    assert (
        client.post("/api/v1/wallets/shops/999999/payouts", json=good, headers=world["merchant1"]).status_code
        == 404
    )

    paid = client.post(url, json=good, headers=world["merchant1"])
    failed = client.post(
        url, json={**good, "amount_fen": 1_000, "bank_account": "FAIL 0000"}, headers=world["merchant1"]
    )
    assert paid.status_code == failed.status_code == 201
    wallet = client.get(f"/api/v1/wallets/shops/{shop_id}", headers=world["merchant1"]).json()
    assert (wallet["balance_fen"], wallet["pending_payouts_fen"]) == (2_500, 6_000)

    with_db(settings.database_url, lambda sm: process_payouts(sm))
    wallet = client.get(f"/api/v1/wallets/shops/{shop_id}", headers=world["merchant1"]).json()
    assert (wallet["balance_fen"], wallet["pending_payouts_fen"], wallet["paid_out_fen"]) == (3_500, 0, 5_000)
    assert {p["id"]: p["status"] for p in wallet["payouts"]} == {
        paid.json()["id"]: "paid",
        failed.json()["id"]: "failed",
    }
    page = client.get(f"/api/v1/wallets/shops/{shop_id}?limit=2", headers=world["merchant1"]).json()
    assert len(page["lines"]) == 2 and page["next_cursor"]
    rest = client.get(
        f"/api/v1/wallets/shops/{shop_id}?limit=10&cursor={page['next_cursor']}", headers=world["merchant1"]
    ).json()
    assert [x["posting_id"] for x in page["lines"] + rest["lines"]] == [
        x["posting_id"] for x in wallet["lines"]
    ]
    assert rest["next_cursor"] is None


def test_ledger_routes_are_for_ops(client: TestClient, world: dict) -> None:
    for path in (
        "/api/v1/ledger/accounts",
        "/api/v1/ledger/verify",
        "/api/v1/ledger/statement?account=escrow",
    ):
        for who in ("merchant1", "creator1", "buyer1"):
            assert client.get(path, headers=world[who]).status_code == 403, (path, who)
        assert client.get(path).status_code == 401
    accounts = client.get("/api/v1/ledger/accounts", headers=world["ops1"]).json()
    balances = {a["account"]: a["balance_fen"] for a in accounts["items"]}
    assert sum(balances.values()) == 0 and balances["escrow"] == 0
    assert balances[ledger.shop_payable(world["shop"]["id"])] == 8_500
    shops = client.get("/api/v1/ledger/accounts?prefix=shop:", headers=world["ops1"]).json()["items"]
    assert [a["account"] for a in shops] == [ledger.shop_payable(world["shop"]["id"])]
    first = client.get("/api/v1/ledger/accounts?limit=2", headers=world["ops1"]).json()
    second = client.get(
        f"/api/v1/ledger/accounts?limit=100&cursor={first['next_cursor']}", headers=world["ops1"]
    ).json()
    assert [a["account"] for a in first["items"] + second["items"]] == [
        a["account"] for a in accounts["items"]
    ]

    report = client.get("/api/v1/ledger/verify", headers=world["ops1"]).json()
    assert report["ok"] is True and report["transactions_checked"] == 2 and report["problems"] == []
    statement = client.get("/api/v1/ledger/statement?account=escrow", headers=world["ops1"]).json()
    assert [x["amount_fen"] for x in statement["items"]] == [-10_000, 10_000]
    bad = client.get("/api/v1/ledger/statement?account=nowhere", headers=world["ops1"])
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_account"
