"""Wallet pages and the ops ledger page, through a cookie session and their forms."""

from __future__ import annotations

import pytest
from litestar.testing import TestClient

from tests.helpers import create_user, open_shop
from tests.ledger.util import raw, sale, with_db
from tests.web.test_pages import csrf_of, marked, sign_in
from trustlive.config import Settings
from trustlive.ledger.tasks import process_payouts


@pytest.fixture
def world(client: TestClient, users: dict[str, dict[str, str]], settings: Settings) -> dict:
    shop = open_shop(client, users["merchant1"])
    create_user(settings.database_url, "staff1")
    create_user(settings.database_url, "newmerchant", "merchant")
    client.post(f"/api/v1/shops/{shop['id']}/staff", json={"username": "staff1"}, headers=users["merchant1"])
    creator_id = client.get("/api/v1/me", headers=users["creator1"]).json()["id"]
    with_db(settings.database_url, lambda sm: sale(sm, 1, 10_000, shop_id=shop["id"], creator_id=creator_id))
    return {"shop": shop, "creator_id": creator_id, "url": settings.database_url}


def test_shop_wallet_shows_the_figures_and_pays_out(client: TestClient, world: dict) -> None:
    token = sign_in(client, "merchant1")
    page = client.get("/wallet")
    assert page.status_code == 200
    text = page.text
    assert "和田玉坊" in text and 'data-figure="balance">¥85.00<' in text
    assert (
        "Settlement" in text
        and "order:1" in text
        and "+&#8288;¥85.00" in text
        and 'data-amount="8500"' in text
    )
    assert 'action="/wallet/shops/' in text

    action = f"/wallet/shops/{world['shop']['id']}/payouts"
    too_much = client.post(
        action, data={"amount": "85.01", "bank_account": "ICBC 1234", "_csrf_token": token}
    )
    assert too_much.status_code == 409
    assert "does not hold that much" in too_much.text and marked(too_much.text) == {"amount"}
    assert 'value="85.01"' in too_much.text  # what was typed comes back
    not_money = client.post(
        action, data={"amount": "lots", "bank_account": "ICBC 1234", "_csrf_token": token}
    )
    assert not_money.status_code == 422 and marked(not_money.text) == {"amount"}
    no_bank = client.post(action, data={"amount": "10", "bank_account": "12", "_csrf_token": token})
    assert no_bank.status_code == 422 and marked(no_bank.text) == {"bank_account"}
    assert (
        client.post(action, data={"amount": "10", "bank_account": "ICBC 1234"}).status_code == 403
    )  # no CSRF

    done = client.post(
        action,
        data={"amount": "50", "bank_account": "ICBC 6222 1234", "_csrf_token": token},
        follow_redirects=False,
    )
    assert done.status_code == 303 and "requested=" in done.headers["location"]
    after = client.get(done.headers["location"]).text
    assert "Payout requested" in after and 'data-figure="balance">¥35.00<' in after
    assert 'data-figure="pending">¥50.00<' in after and "With the bank" in after and "•••• 1234" in after

    with_db(world["url"], process_payouts)
    paid = client.get("/wallet").text
    assert 'data-figure="paid">¥50.00<' in paid and "Paid out" in paid and "Payout paid" not in paid
    assert paid.count("Payout requested") == 1  # the statement line of the shop's own posting

    client.cookies.set("tl_lang", "zh_Hans")
    chinese = client.get("/wallet").text
    assert "可用余额" in chinese and "结算" in chinese


def test_who_sees_which_wallet(client: TestClient, world: dict) -> None:
    shop_id = world["shop"]["id"]
    token = sign_in(client, "staff1")
    staff = client.get("/wallet")
    assert staff.status_code == 200 and 'data-figure="balance">¥85.00<' in staff.text
    assert "Only the shop's owner can request payouts." in staff.text
    refused = client.post(
        f"/wallet/shops/{shop_id}/payouts",
        data={"amount": "1", "bank_account": "ICBC 1234", "_csrf_token": token},
    )
    assert refused.status_code == 403

    sign_in(client, "merchant2")
    assert client.get(f"/wallet?shop={shop_id}").status_code == 403

    sign_in(client, "newmerchant")
    assert "once you have opened a shop" in client.get("/wallet").text

    sign_in(client, "buyer1")
    assert client.get("/wallet").status_code == 403
    assert client.get("/wallet/creator").status_code == 403

    sign_in(client, "ops1")
    assert client.get(f"/wallet?shop={shop_id}").status_code == 200

    client.cookies.clear()
    assert client.get("/wallet", follow_redirects=False).status_code in (302, 303, 307)


def test_creator_wallet(client: TestClient, world: dict) -> None:
    token = sign_in(client, "creator1")
    assert client.get("/wallet", follow_redirects=False).headers["location"] == "/wallet/creator"
    page = client.get("/wallet/creator").text
    assert "Creator wallet" in page and 'data-figure="balance">¥10.00<' in page and "+&#8288;¥10.00" in page
    failed = client.post(
        "/wallet/creator/payouts",
        data={"amount": "10", "bank_account": "FAIL 0001", "_csrf_token": csrf_of(page)},
        follow_redirects=False,
    )
    assert failed.status_code == 303, failed.text
    with_db(world["url"], process_payouts)
    page = client.get("/wallet/creator").text
    assert 'data-figure="balance">¥10.00<' in page and "Failed, money returned" in page
    assert "Payout failed, money returned" in page  # the statement line that brought it back
    assert token


def test_ops_ledger_page(client: TestClient, world: dict) -> None:
    sign_in(client, "ops1")
    page = client.get("/ops/ledger")
    assert page.status_code == 200
    assert f'data-account="shop:{world["shop"]["id"]}:payable"' in page.text and "¥85.00" in page.text
    assert "Buyers' money held until settlement" in page.text
    assert "Sum of all accounts: ¥0.00" in page.text
    assert "data-verify" not in page.text  # verification runs on request
    checked = client.get("/ops/ledger?verify=true").text
    assert 'data-verify="ok"' in checked and "2 transactions and 6 postings" in checked
    shops = client.get("/ops/ledger?prefix=shop:").text
    assert "shop:1:payable" in shops and 'data-account="escrow"' not in shops
    fragment = client.get("/ops/ledger/verify", headers={"HX-Request": "true"})
    assert (
        fragment.status_code == 200 and "<html" not in fragment.text and 'data-verify="ok"' in fragment.text
    )
    assert client.get("/ops/ledger/verify", follow_redirects=False).status_code == 303

    with_db(world["url"], lambda sm: raw(sm, "UPDATE ledger_postings SET amount_fen = 1 WHERE id = 1"))
    broken = client.get("/ops/ledger?verify=true").text
    assert 'data-verify="failed"' in broken and "First bad transaction: 1" in broken

    sign_in(client, "merchant1")
    assert client.get("/ops/ledger").status_code == 403
