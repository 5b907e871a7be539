"""End to end in headless Chromium, the commerce core's acceptance test: a buyer on a phone buys
two SKUs from two shops (one of them through a creator's live-room link), pays in the sandbox,
the merchants ship, the buyer confirms receipt, settlement runs, and the wallets show the split
to the fen.

The app runs under uvicorn with its scheduler on (every 0.2 s), so the sandbox's signed webhooks
are delivered by the app itself, as in production; the test only waits for them. Settlement is
run by the test at "now + 30 days" (after the return window and the shop's delay tier) through
``orders.tasks.settle`` with its own engine on the same SQLite file.

Drives Debian's /usr/bin/chromium (never a downloaded browser). Without it the test is skipped,
unless TRUSTLIVE_TEST_REQUIRE_SERVICES=1, which makes a missing browser a failure. Set
TRUSTLIVE_TEST_SCREENSHOT_DIR to keep screenshots of the pay page, the return page, the shop's
refund form and the wallets.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import PASSWORD, create_user, make_settings
from tests.web.browser import launch, serve
from trustlive.db import create_engine, create_sessionmaker, transaction, utcnow
from trustlive.ledger import service as ledger
from trustlive.money import format_fen
from trustlive.orders import tasks as order_tasks

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1280, "height": 900}
TIMEOUT_MS = 15_000

# The world. Prices are chosen so that every fee and commission falls on half a fen: the expected
# figures below pin the documented rounding (half up), not just the rates.
FEE_A_BP, FEE_B_BP = 500, 300  # the categories' technical service fees: 5% and 3%
COMMISSION_A_BP, COMMISSION_B_BP = 1500, 1000  # the products' creator commission rates
PRICE_A, QTY_A = 6995, 2  # shop A: 80 / 浅粉, bought twice via the creator's live room
PRICE_B, QTY_B = 128850, 1  # shop B: from the shelf, no creator
SHIPPING_A = {"flat_fee_fen": 800, "free_over_fen": 20000}  # ¥139.90 of goods: ¥8 shipping
SHIPPING_B = {"flat_fee_fen": 1000, "free_over_fen": None}


def _rate(amount: int, bp: int) -> int:
    """``amount`` × ``bp`` / 10000, rounded half up (docs/orders.md, money.apply_rate_bp)."""
    return (amount * bp + 5_000) // 10_000


def expected_split() -> dict[str, int]:
    """The split by the documented rules (docs/orders.md "Settlement"), no refunds: per line,
    base = line total; fee = category rate × base; commission = product rate × base only when a
    creator is attributed (platform share 0%); the shop gets escrow − fee − commission, shipping
    included."""
    base_a, base_b = PRICE_A * QTY_A, PRICE_B * QTY_B
    escrow_a = base_a + (SHIPPING_A["flat_fee_fen"] if base_a < SHIPPING_A["free_over_fen"] else 0)
    escrow_b = base_b + SHIPPING_B["flat_fee_fen"]
    fee_a, fee_b = _rate(base_a, FEE_A_BP), _rate(base_b, FEE_B_BP)
    commission = _rate(base_a, COMMISSION_A_BP)  # shop B's line has no creator: no commission
    return {
        "total_a": escrow_a,
        "total_b": escrow_b,
        "fee": fee_a + fee_b,
        "creator": commission,
        "shop_a": escrow_a - fee_a - commission,
        "shop_b": escrow_b - fee_b,
    }


@pytest.fixture
def live_server(sqlite_url: str, tmp_path: Path) -> Iterator[str]:
    """The real app, its scheduler on: it delivers the sandbox's webhooks by itself."""
    with serve(make_settings(sqlite_url, tmp_path, task_interval_seconds=0.2)) as url:
        yield url


def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


@pytest.fixture
def world(live_server: str, sqlite_url: str) -> dict[str, Any]:
    """Ops' two categories (5% and 3% service fee); two merchants with a shop, shipping terms and
    a published product each; a creator; a buyer. All through the JSON API."""
    for name, role in (("ops1", "ops"), ("merchant_a", "merchant"), ("merchant_b", "merchant"),
                       ("creator1", "creator"), ("buyer1", "buyer")):  # fmt: skip
        create_user(sqlite_url, name, role)
    with httpx.Client(base_url=live_server, timeout=10) as api:

        def auth(username: str) -> dict[str, str]:
            body = {"username": username, "password": PASSWORD}
            return {
                "Authorization": f"Bearer {_ok(api.post('/api/v1/auth/token', json=body))['access_token']}"
            }

        ops, merchant_a, merchant_b = auth("ops1"), auth("merchant_a"), auth("merchant_b")
        kids = _ok(api.post("/api/v1/categories", headers=ops, json={
            "slug": "kids", "name_zh": "童装", "name_en": "Kids' clothing", "service_fee_bp": FEE_A_BP,
        }), 201)  # fmt: skip
        jade = _ok(api.post("/api/v1/categories", headers=ops, json={
            "slug": "jade", "name_zh": "和田玉", "name_en": "Hetian jade", "service_fee_bp": FEE_B_BP,
        }), 201)  # fmt: skip
        shop_a = _ok(api.post("/api/v1/shops", headers=merchant_a, json={"name": "豆豆童装"}), 201)
        shop_b = _ok(api.post("/api/v1/shops", headers=merchant_b, json={"name": "和田玉坊"}), 201)
        sizes, colours = ["73", "80", "90"], ["米白", "浅粉"]
        bodysuit = _ok(api.post(f"/api/v1/shops/{shop_a['id']}/products", headers=merchant_a, json={
            "title": "儿童纯棉连体衣", "category_id": kids["id"], "commission_bp": COMMISSION_A_BP,
            "options": [{"name": "尺码", "values": sizes}, {"name": "颜色", "values": colours}],
            "skus": [{"option_values": [s, c], "price_fen": PRICE_A if (s, c) == ("80", "浅粉") else 5900,
                      "stock": 20} for s in sizes for c in colours],
        }), 201)  # fmt: skip
        bangle = _ok(api.post(f"/api/v1/shops/{shop_b['id']}/products", headers=merchant_b, json={
            "title": "和田玉手镯", "category_id": jade["id"], "commission_bp": COMMISSION_B_BP,
            "skus": [{"price_fen": PRICE_B, "stock": 3}],
        }), 201)  # fmt: skip
        for product, shop, headers, terms in (
            (bodysuit, shop_a, merchant_a, SHIPPING_A),
            (bangle, shop_b, merchant_b, SHIPPING_B),
        ):
            _ok(api.post(f"/api/v1/products/{product['id']}/publish", headers=headers))
            _ok(api.put(f"/api/v1/shops/{shop['id']}/shipping", headers=headers, json=terms))
        creator = _ok(api.get("/api/v1/me", headers=auth("creator1")))
        buyer = auth("buyer1")
    sku_a = next(s for s in bodysuit["skus"] if s["option_values"] == ["80", "浅粉"])
    return {
        "base": live_server,
        "sqlite_url": sqlite_url,
        "shop_a": shop_a["id"],
        "shop_b": shop_b["id"],
        "product_a": bodysuit["id"],
        "product_b": bangle["id"],
        "sku_a": sku_a["id"],
        "sku_b": bangle["skus"][0]["id"],
        "creator_id": creator["id"],
        "buyer": buyer,
    }


async def _settle_and_verify(url: str, when: dt.datetime) -> tuple[int, ledger.VerifyReport, dict[str, int]]:
    """What the settlement sweeper does at ``when``, from the test's own engine; then the ledger."""
    engine = create_engine(url)
    try:
        sessionmaker = create_sessionmaker(engine)
        settled = await order_tasks.settle(sessionmaker, when)
        async with transaction(sessionmaker) as session:
            report = await ledger.verify(session)
            figures = {
                "total": await ledger.total_balance(session),
                "escrow": await ledger.balance(session, ledger.ESCROW),
                "fee": await ledger.balance(session, ledger.PLATFORM_FEE_REVENUE),
                "commission": await ledger.balance(session, ledger.PLATFORM_COMMISSION_REVENUE),
            }
        return settled, report, figures
    finally:
        await engine.dispose()


def test_two_shops_pay_ship_confirm_settle_and_the_wallets_show_the_split(world: dict[str, Any]) -> None:
    from playwright.sync_api import Page, expect, sync_playwright

    base = str(world["base"])
    want = expected_split()
    errors: list[str] = []

    shots = os.environ.get("TRUSTLIVE_TEST_SCREENSHOT_DIR")

    def shoot(page: Page, name: str) -> None:
        if shots:
            Path(shots).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(Path(shots) / f"commerce-{name}.png"), full_page=True)

    def sign_in(page: Page, username: str, then: str) -> None:
        page.goto(f"{base}/login?next=/")
        page.fill("input[name=username]", username)
        page.fill("input[name=password]", PASSWORD)
        page.click("form[action='/login'] button[type=submit]")
        page.wait_for_url(f"{base}/")
        page.goto(f"{base}{then}")

    with sync_playwright() as pw:
        browser = launch(pw)
        try:

            def context(viewport: dict[str, int], **phone: Any) -> Page:
                ctx = browser.new_context(viewport=viewport, locale="zh-CN", **phone)
                ctx.set_default_timeout(TIMEOUT_MS)
                page = ctx.new_page()
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                return page

            # --- the buyer, on a phone: two shops into the cart -----------------------------------
            buyer = context(PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
            live_link = f"/p/{world['product_a']}?source=live_room&creator={world['creator_id']}"
            sign_in(buyer, "buyer1", live_link)
            box = buyer.locator("form[data-buy-form]")
            expect(box.locator("input[name=source]")).to_have_value("live_room")
            expect(box.locator("input[name=creator_id]")).to_have_value(str(world["creator_id"]))
            buyer.locator("label.chip-option", has_text="80").click()
            buyer.locator("label.chip-option", has_text="浅粉").click()
            expect(box.locator("[data-sku-input]")).to_have_value(str(world["sku_a"]))
            expect(buyer.locator("[data-price-range]")).to_have_text(format_fen(PRICE_A))
            box.locator("input[name=quantity]").fill(str(QTY_A))
            box.locator("button[type=submit]:not([formaction])").click()  # add to cart
            buyer.wait_for_url(f"{base}/cart?added=1")

            buyer.goto(f"{base}/p/{world['product_b']}")
            box = buyer.locator("form[data-buy-form]")
            expect(box.locator("input[name=source]")).to_have_value("shelf")
            assert box.locator("input[name=creator_id]").count() == 0
            box.locator("button[type=submit]:not([formaction])").click()
            buyer.wait_for_url(f"{base}/cart?added=1")
            expect(buyer.locator("section.cart-shop")).to_have_count(2)

            # No address yet: add one from the checkout, which brings the buyer back.
            buyer.locator("#checkout a[href^='/addresses']").click()
            buyer.wait_for_url(re.compile(r".*/addresses\?next=.*"))
            new = buyer.locator("form[action='/addresses']")
            new.locator("input[name=recipient]").fill("王芳")
            new.locator("input[name=phone]").fill("13800000000")
            new.locator("input[name=region]").fill("浙江省 杭州市 西湖区")
            new.locator("input[name=detail]").fill("文三路 1 号")
            new.locator("button[type=submit]").click()
            buyer.wait_for_url(f"{base}/cart#checkout")
            expect(buyer.locator(".checkout .grand strong")).to_have_text(
                format_fen(want["total_a"] + want["total_b"])
            )
            width = buyer.evaluate("document.documentElement.scrollWidth")
            assert width <= PHONE["width"], f"the cart is {width}px wide on a {PHONE['width']}px phone"

            # --- checkout goes straight to the sandbox's pay page; pay ----------------------------
            buyer.locator("form[action='/cart/checkout'] button[type=submit]").click()
            buyer.wait_for_url(re.compile(r".*/sandbox/pay/pay_[A-Za-z0-9_-]+$"))
            expect(buyer.locator("#amount")).to_have_attribute(
                "data-amount", str(want["total_a"] + want["total_b"])
            )
            shoot(buyer, "1-sandbox-pay")
            buyer.locator("button.pay").click()
            buyer.wait_for_url(re.compile(r".*/pay/return\?intent=\d+$"))
            # "Payment processing" until the app has applied the sandbox's webhook (htmx polls).
            status = buyer.locator("#pay-status")
            expect(status).to_have_attribute("data-status", "succeeded", timeout=20_000)
            paid = buyer.locator("#pay-status li[data-order]")
            expect(paid).to_have_count(2)
            expect(status.locator("[data-outcome='paid']")).to_have_count(2)
            shoot(buyer, "2-paid")
            order_ids = [int(x) for x in paid.evaluate_all("els => els.map(e => e.dataset.order)")]
            for order_id in order_ids:
                buyer.goto(f"{base}/orders/{order_id}")
                expect(buyer.locator(".order-hero")).to_have_attribute("data-status", "paid")

            # Which order is whose, and what each line recorded, from the buyer's API.
            with httpx.Client(base_url=base, timeout=10, headers=world["buyer"]) as api:
                orders = {o["shop_id"]: o for o in (_ok(api.get(f"/api/v1/orders/{i}")) for i in order_ids)}
            order_a, order_b = orders[world["shop_a"]], orders[world["shop_b"]]
            assert (order_a["total_fen"], order_b["total_fen"]) == (want["total_a"], want["total_b"])
            [line_a], [line_b] = order_a["lines"], order_b["lines"]
            assert (line_a["source"], line_a["creator_id"]) == ("live_room", world["creator_id"])
            assert (line_b["source"], line_b["creator_id"]) == ("shelf", None)

            # --- each merchant ships from the console ---------------------------------------------
            for username, order, carrier, tracking in (
                ("merchant_a", order_a, "SF", "SF1234567890"),
                ("merchant_b", order_b, "ZTO", "ZTO-7788-0099"),
            ):
                merchant = context(LAPTOP)
                sign_in(merchant, username, "/console/orders")  # the "to ship" queue
                merchant.locator(f"a[href='/console/orders/{order['id']}']").click()
                merchant.wait_for_url(f"{base}/console/orders/{order['id']}")
                expect(merchant.locator("#refund form input[name=idempotency_key]")).to_have_count(1)
                shoot(merchant, f"3-console-{username}")
                ship = merchant.locator(f"form[action='/console/orders/{order['id']}/ship']")
                ship.locator("select[name=carrier]").select_option(carrier)
                ship.locator("input[name=tracking_no]").fill(tracking)
                ship.locator("button[type=submit]").click()
                merchant.wait_for_url(re.compile(r".*\?saved=shipped$"))
                expect(merchant.locator(".flash")).to_be_visible()
                expect(merchant.locator(".facts .mono").first).to_have_text(tracking)
                merchant.context.close()

            # --- the buyer confirms receipt of both -----------------------------------------------
            for order in (order_a, order_b):
                buyer.goto(f"{base}/orders/{order['id']}")
                expect(buyer.locator(".order-hero")).to_have_attribute("data-status", "shipped")
                buyer.locator(f"form[action='/orders/{order['id']}/confirm'] button").click()
                buyer.wait_for_url(re.compile(r".*\?done=confirmed$"))
                expect(buyer.locator(".order-hero")).to_have_attribute("data-status", "completed")
            buyer.context.close()

            # --- settlement, after the return window and the shop's delay tier -------------------
            # (In a thread of its own: Playwright's sync API keeps an event loop in this one.)
            when = utcnow() + dt.timedelta(days=30)
            with ThreadPoolExecutor(1) as pool:
                settled, report, figures = pool.submit(
                    asyncio.run, _settle_and_verify(str(world["sqlite_url"]), when)
                ).result(timeout=60)
            assert settled == 2

            # --- the wallets, to the fen ----------------------------------------------------------
            for username, amount in (("merchant_a", want["shop_a"]), ("merchant_b", want["shop_b"])):
                merchant = context(LAPTOP)
                sign_in(merchant, username, "/")
                merchant.locator("header a.nav-wallet").click()
                merchant.wait_for_url(f"{base}/wallet")
                expect(merchant.locator("[data-figure=balance]")).to_have_text(format_fen(amount))
                line = merchant.locator("#statement tr[data-kind=settlement]")
                expect(line).to_have_count(1)
                expect(line).to_have_attribute("data-amount", str(amount))
                shoot(merchant, f"4-wallet-{username}")
                merchant.context.close()

            creator = context(PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
            sign_in(creator, "creator1", "/")
            creator.locator("header a.nav-wallet").click()
            creator.wait_for_url(f"{base}/wallet/creator")
            expect(creator.locator("[data-figure=balance]")).to_have_text(format_fen(want["creator"]))
            expect(creator.locator("#statement tr[data-kind=settlement]")).to_have_attribute(
                "data-amount", str(want["creator"])
            )
            shoot(creator, "5-wallet-creator")
            creator.context.close()
        finally:
            browser.close()

    # The ledger: intact, balanced, escrow emptied, the fees where they belong.
    assert report.ok, report.problems
    assert report.transactions_checked == 3  # one capture, two settlements
    assert figures == {"total": 0, "escrow": 0, "fee": want["fee"], "commission": 0}
    assert not errors, f"JavaScript errors: {errors}"
