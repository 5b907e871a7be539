"""End to end in headless Chromium, the QC warehouse's acceptance test (先鉴后发): a buyer on a
phone orders a jade bangle and pays in the sandbox; the merchant ships it from the console to the
QC warehouse; the inspector receives it, records a pass with a certificate number and a photo, and
forwards it; the carrier delivers it; the buyer sees the certificate and confirms receipt;
settlement pays the shop its share to the fen (the lab's fee taken). Then the fail path: another
jade order fails inspection, the buyer's page shows the full refund to the fen, the ledger has it,
and the inspector sends the item back to the shop.

The app runs under uvicorn with its scheduler on (every 0.2 s), so the payment sandbox's webhooks
arrive by themselves. The tracking sandbox's deliveries (due 48 h after shipping) and settlement
(at now + 30 days) are run by the test at those simulated times, with its own engine on the same
SQLite file, in a thread of their own (Playwright's sync API keeps an event loop in this one).

Skipped without /usr/bin/chromium, unless TRUSTLIVE_TEST_REQUIRE_SERVICES=1. Set
TRUSTLIVE_TEST_SCREENSHOT_DIR to keep screenshots.
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

from tests.helpers import PASSWORD, create_user, image_bytes, make_settings
from tests.web.browser import launch, serve
from trustlive.config import Settings
from trustlive.db import create_engine, create_sessionmaker, transaction, utcnow
from trustlive.fulfillment import tasks as fulfillment_tasks
from trustlive.ledger import service as ledger
from trustlive.money import format_fen
from trustlive.orders import tasks as order_tasks

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
TIMEOUT_MS = 15_000
PRICE, SHIPPING = 268800, 1500  # a Hetian jade bangle, ¥15 shipping
FEE_BP = 300  # the jade category's technical service fee: 3%
QC_FEE = 2000  # the lab's fee per inspection (TRUSTLIVE_QC_FEE_FEN default), paid by the shop
TOTAL = PRICE + SHIPPING


@pytest.fixture
def settings(sqlite_url: str, tmp_path: Path) -> Settings:  # type: ignore[override]
    return make_settings(sqlite_url, tmp_path, task_interval_seconds=0.2)


@pytest.fixture
def live_server(settings: Settings) -> Iterator[str]:
    with serve(settings) as url:
        yield url


def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


@pytest.fixture
def world(live_server: str, sqlite_url: str) -> dict[str, Any]:
    """Ops' jade category, lab and default QC warehouse with its inspector; a merchant with a
    published bangle, shipping and a return address; a buyer with an address. All through the API."""
    for name, role in (
        ("ops1", "ops"),
        ("merchant1", "merchant"),
        ("inspector1", "inspector"),
        ("buyer1", "buyer"),
    ):
        create_user(sqlite_url, name, role)
    with httpx.Client(base_url=live_server, timeout=10) as api:

        def auth(username: str) -> dict[str, str]:
            body = {"username": username, "password": PASSWORD}
            return {
                "Authorization": f"Bearer {_ok(api.post('/api/v1/auth/token', json=body))['access_token']}"
            }

        ops, merchant, buyer = auth("ops1"), auth("merchant1"), auth("buyer1")
        jade = _ok(api.post("/api/v1/categories", headers=ops, json={
            "slug": "hetian-jade", "name_zh": "和田玉", "name_en": "Hetian jade", "service_fee_bp": FEE_BP,
            "requires_inspection": True,
        }), 201)  # fmt: skip
        lab = _ok(
            api.post(
                "/api/v1/qc/labs", headers=ops, json={"name": "国检珠宝检测中心", "cma_no": "201901123456"}
            ),
            201,
        )
        _ok(api.post("/api/v1/qc/warehouses", headers=ops, json={
            "name": "杭州质检仓", "recipient": "质检仓收货组", "phone": "0571-88880000", "region": "浙江省杭州市余杭区",
            "detail": "仓前街道 8 号", "lab_id": lab["id"], "is_default": True,
        }), 201)  # fmt: skip
        warehouses = _ok(api.get("/api/v1/qc", headers=ops))["warehouses"]
        inspector = _ok(api.get("/api/v1/me", headers=auth("inspector1")))
        _ok(api.post(f"/api/v1/qc/warehouses/{warehouses[0]['id']}/inspectors", headers=ops,
                     json={"user_id": inspector["id"]}), 201)  # fmt: skip
        shop = _ok(api.post("/api/v1/shops", headers=merchant, json={"name": "和田玉坊"}), 201)
        bangle = _ok(api.post(f"/api/v1/shops/{shop['id']}/products", headers=merchant, json={
            "title": "和田玉籽料手镯", "category_id": jade["id"], "skus": [{"price_fen": PRICE, "stock": 5}],
        }), 201)  # fmt: skip
        _ok(api.post(f"/api/v1/products/{bangle['id']}/publish", headers=merchant))
        _ok(
            api.put(f"/api/v1/shops/{shop['id']}/shipping", headers=merchant, json={"flat_fee_fen": SHIPPING})
        )
        _ok(api.put(f"/api/v1/shops/{shop['id']}/returns", headers=merchant, json={"return_address": {
            "recipient": "和田玉坊售后", "phone": "13900000000", "region": "新疆和田市", "detail": "玉龙路 9 号"}}))  # fmt: skip
        _ok(api.post("/api/v1/me/addresses", headers=buyer, json={
            "recipient": "王芳", "phone": "13800000000", "region": "浙江省杭州市西湖区", "detail": "文三路 1 号",
        }), 201)  # fmt: skip
    return {"base": live_server, "sqlite_url": sqlite_url, "shop": shop["id"], "product": bangle["id"],
            "merchant": merchant, "buyer": buyer}  # fmt: skip


def _in_thread(coro_fn, *args):  # type: ignore[no-untyped-def]
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro_fn(*args)).result(timeout=60)


async def _deliver_parcels(settings: Settings, when: dt.datetime) -> int:
    """What the tracking sandbox would have sent by ``when`` (2 days on: every parcel delivered)."""
    engine = create_engine(settings.database_url)
    try:
        report = await fulfillment_tasks.deliver_tracking(create_sessionmaker(engine), settings, now=when)
        return report.delivered
    finally:
        await engine.dispose()


async def _settle_and_read(url: str, shop_id: int, when: dt.datetime) -> dict[str, Any]:
    engine = create_engine(url)
    try:
        sessionmaker = create_sessionmaker(engine)
        settled = await order_tasks.settle(sessionmaker, when)
        async with transaction(sessionmaker) as s:
            return {
                "settled": settled,
                "verify": await ledger.verify(s),
                "total": await ledger.total_balance(s),
                "escrow": await ledger.balance(s, ledger.ESCROW),
                "shop": await ledger.balance(s, ledger.shop_payable(shop_id)),
                "fees": await ledger.balance(s, ledger.EXTERNAL_INSPECTION_FEES),
                "refunds": await ledger.balance(s, ledger.EXTERNAL_BUYER_REFUNDS),
            }
    finally:
        await engine.dispose()


def test_jade_is_inspected_before_it_reaches_the_buyer_pass_and_fail(
    world: dict[str, Any], settings: Settings
) -> None:
    from playwright.sync_api import Page, expect, sync_playwright

    base = str(world["base"])
    errors: list[str] = []
    shots = os.environ.get("TRUSTLIVE_TEST_SCREENSHOT_DIR")
    photo = Path(settings.var_dir) / "bangle.jpg"
    photo.write_bytes(image_bytes("JPEG", (320, 240)))
    expected_share = TOTAL - (PRICE * FEE_BP + 5_000) // 10_000 - QC_FEE

    def shoot(page: Page, name: str) -> None:
        if shots:
            Path(shots).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(Path(shots) / f"jade-{name}.png"), full_page=True)

    def fits(page: Page) -> None:
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{page.url} is {width}px wide on a {PHONE['width']}px phone"

    with sync_playwright() as pw:
        browser = launch(pw)
        try:

            def person(username: str) -> Page:
                ctx = browser.new_context(viewport=PHONE, locale="zh-CN", device_scale_factor=2, is_mobile=True,
                                          has_touch=True)  # fmt: skip
                ctx.set_default_timeout(TIMEOUT_MS)
                page = ctx.new_page()
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                page.goto(f"{base}/login?next=/")
                page.fill("input[name=username]", username)
                page.fill("input[name=password]", PASSWORD)
                page.click("form[action='/login'] button[type=submit]")
                page.wait_for_url(f"{base}/")
                return page

            buyer, merchant, inspector = person("buyer1"), person("merchant1"), person("inspector1")
            ops = person("ops1")
            ops.goto(f"{base}/ops/qc")
            expect(ops.locator("#warehouses li[data-warehouse]")).to_have_count(1)
            fits(ops)
            shoot(ops, "0-ops")
            ops.context.close()

            def buy_and_pay() -> int:
                buyer.goto(f"{base}/p/{world['product']}")
                buyer.locator("form[data-buy-form] button[formaction='/buy']").click()
                buyer.wait_for_url(re.compile(r".*/buy\?.*"))
                buyer.locator("form[action='/buy'][method=post] button[type=submit]").click()
                buyer.wait_for_url(re.compile(r".*/sandbox/pay/pay_[A-Za-z0-9_-]+$"))
                expect(buyer.locator("#amount")).to_have_attribute("data-amount", str(TOTAL))
                buyer.locator("button.pay").click()
                buyer.wait_for_url(re.compile(r".*/pay/return\?intent=\d+$"))
                expect(buyer.locator("#pay-status")).to_have_attribute(
                    "data-status", "succeeded", timeout=20_000
                )
                return int(buyer.locator("#pay-status li[data-order]").first.get_attribute("data-order") or 0)

            def ship(order_id: int, tracking: str) -> None:
                merchant.goto(f"{base}/console/orders/{order_id}")
                expect(merchant.locator("#ship-to-qc")).to_contain_text("杭州质检仓")
                expect(merchant.locator("#ship-to-qc")).to_contain_text("仓前街道 8 号")
                form = merchant.locator(f"form[action='/console/orders/{order_id}/ship']")
                form.locator("select[name=carrier]").select_option("SF")
                form.locator("input[name=tracking_no]").fill(tracking)
                form.locator("button[type=submit]").click()
                merchant.wait_for_url(re.compile(r".*\?saved=shipped$"))
                expect(merchant.locator("#inspection")).to_have_attribute("data-qc", "inbound")

            # --- pass: order, pay, ship to the warehouse --------------------------------------------
            order_id = buy_and_pay()
            buyer.goto(f"{base}/orders/{order_id}")
            expect(buyer.locator(".order-hero")).to_have_attribute("data-status", "paid")
            ship(order_id, "SF1000000001")
            shoot(merchant, "1-shipped-to-qc")

            # --- the inspector: scan, inspect with a photo, forward ------------------------------
            inspector.goto(f"{base}/inspect")
            expect(inspector.locator("#inbound li[data-case]")).to_have_count(1)
            inspector.locator("#scan input[name=tracking_no]").fill("SF1000000001")
            inspector.locator("#scan button[type=submit]").click()
            inspector.wait_for_url(re.compile(r".*/inspect/cases/\d+\?done=received$"))
            case_url = inspector.url.split("?")[0]
            record = inspector.locator("#record form")
            record.locator("input[name=result][value=pass]").check()
            record.locator("input[name=material]").fill("和田玉")
            record.locator("input[name=weight]").fill("58.62")
            record.locator("input[name=certificate_no]").fill("NGTC-2026-118800")
            record.locator("textarea[name=notes]").fill("籽料，油润度好，无裂")
            record.locator("input[name=photos]").set_input_files(str(photo))
            fits(inspector)
            shoot(inspector, "2-inspection-form")
            record.locator("button[type=submit]").click()
            inspector.wait_for_url(f"{case_url}?done=pass")
            expect(inspector.locator("#certificate .qc-photos img")).to_have_count(1)
            forward = inspector.locator("#forward form")
            expect(inspector.locator("#forward")).to_contain_text("文三路 1 号")  # the buyer's address
            forward.locator("select[name=carrier]").select_option("SF")
            forward.locator("input[name=tracking_no]").fill("SF2000000002")
            forward.locator("button[type=submit]").click()
            inspector.wait_for_url(f"{case_url}?done=forwarded")
            expect(inspector.locator("[data-case-status]").first).to_have_attribute(
                "data-case-status", "forwarded"
            )

            inspector.goto(f"{base}/inspect")
            expect(inspector.locator("#outbound li[data-case]")).to_have_count(0)  # forwarded: off the list
            fits(inspector)

            # --- the carrier delivers it (two days on, simulated) -----------------------------------
            delivered = _in_thread(_deliver_parcels, settings, utcnow() + dt.timedelta(hours=49))
            assert delivered == 6  # three stages of the seller's parcel, three of the warehouse's

            # --- the buyer: the certificate on the order, its public page, confirm receipt --------
            buyer.goto(f"{base}/orders/{order_id}")
            expect(buyer.locator(".order-hero")).to_have_attribute("data-status", "delivered")
            link = buyer.locator("#inspection a[data-certificate]")
            expect(link).to_have_text("NGTC-2026-118800")
            expect(buyer.locator("#inspection")).to_contain_text("国检珠宝检测中心")
            expect(buyer.locator("#inspection .qc-photos img")).to_have_count(1)
            fits(buyer)
            shoot(buyer, "3-order-with-certificate")
            link.click()
            buyer.wait_for_url(f"{base}/certificates/NGTC-2026-118800")
            expect(buyer.locator(".qc-cert")).to_have_attribute("data-result", "pass")
            expect(buyer.locator(".qc-cert")).to_contain_text("58.62")
            expect(buyer.locator(".qc-cert")).not_to_contain_text("王芳")
            fits(buyer)
            shoot(buyer, "4-certificate")
            buyer.goto(f"{base}/orders/{order_id}")
            buyer.locator(f"form[action='/orders/{order_id}/confirm'] button").click()
            buyer.wait_for_url(re.compile(r".*\?done=confirmed$"))
            expect(buyer.locator(".order-hero")).to_have_attribute("data-status", "completed")

            # --- settlement, then the shop's wallet to the fen --------------------------------------
            figures = _in_thread(
                _settle_and_read, world["sqlite_url"], world["shop"], utcnow() + dt.timedelta(days=30)
            )
            assert figures["settled"] == 1
            assert figures["shop"] == expected_share and figures["fees"] == QC_FEE
            merchant.goto(f"{base}/wallet")
            expect(merchant.locator("[data-figure=balance]")).to_have_text(format_fen(expected_share))
            expect(merchant.locator("#statement tr[data-kind=settlement]")).to_have_attribute(
                "data-amount", str(TOTAL - (PRICE * FEE_BP + 5_000) // 10_000)
            )
            expect(merchant.locator("#statement tr[data-kind=inspection_fee]")).to_have_attribute(
                "data-amount", str(-QC_FEE)
            )
            shoot(merchant, "5-wallet")

            # --- fail: another order, a failed inspection, the full refund, back to the shop ------
            failed_id = buy_and_pay()
            ship(failed_id, "SF1000000003")
            inspector.goto(f"{base}/inspect")
            inspector.locator("#inbound li[data-case] a").first.click()
            inspector.wait_for_url(re.compile(r".*/inspect/cases/\d+$"))
            inspector.locator("form[action$='/receive'] button[type=submit]").click()
            inspector.wait_for_url(re.compile(r".*\?done=received$"))
            record = inspector.locator("#record form")
            record.locator("input[name=result][value=fail]").check()
            record.locator("input[name=material]").fill("岫玉（非和田玉）")
            record.locator("input[name=weight]").fill("61.05")
            record.locator("input[name=certificate_no]").fill("NGTC-2026-118801")
            record.locator("button[type=submit]").click()
            inspector.wait_for_url(re.compile(r".*\?done=fail$"))
            back = inspector.locator("#return form")
            expect(inspector.locator("#return")).to_contain_text("玉龙路 9 号")  # the shop's return address
            back.locator("select[name=carrier]").select_option("YTO")
            back.locator("input[name=tracking_no]").fill("YT3000000004")
            back.locator("button[type=submit]").click()
            inspector.wait_for_url(re.compile(r".*\?done=returned$"))
            expect(inspector.locator(".qc-parcel[data-leg=qc_to_seller]")).to_contain_text("YT3000000004")

            buyer.goto(f"{base}/orders/{failed_id}")
            expect(buyer.locator(".order-hero")).to_have_attribute("data-status", "refunded")
            expect(buyer.locator(".order-hero")).to_contain_text(format_fen(TOTAL))
            expect(buyer.locator("#qc-refund")).to_contain_text(format_fen(TOTAL))
            expect(buyer.locator("#inspection")).to_have_attribute("data-qc", "returned")
            fits(buyer)
            shoot(buyer, "6-refunded")
            for page in (buyer, merchant, inspector):
                page.context.close()
        finally:
            browser.close()

    figures = _in_thread(
        _settle_and_read, world["sqlite_url"], world["shop"], utcnow() + dt.timedelta(days=30)
    )
    assert figures["verify"].ok, figures["verify"].problems
    assert figures["total"] == 0 and figures["escrow"] == 0
    assert figures["refunds"] == TOTAL  # the failed order's money, back to the buyer to the fen
    assert figures["fees"] == 2 * QC_FEE and figures["shop"] == expected_share - QC_FEE
    assert not errors, f"JavaScript errors: {errors}"
