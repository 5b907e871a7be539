"""End to end in headless Chromium: a merchant lists a product with options and SKUs through the
console, publishes it, and a buyer on a phone finds it by a Chinese search term.

Drives Debian's /usr/bin/chromium (never a downloaded browser). Without it the test is skipped,
unless TRUSTLIVE_TEST_REQUIRE_SERVICES=1, which makes a missing browser a failure. Set
TRUSTLIVE_TEST_SCREENSHOT_DIR to keep the phone screenshot of the product page.
"""

from __future__ import annotations

import io
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import PASSWORD, create_user, make_settings
from tests.web.browser import launch, serve

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}


@pytest.fixture
def live_server(sqlite_url: str, tmp_path: Path) -> Iterator[str]:
    """The real app under uvicorn on a free local port."""
    with serve(make_settings(sqlite_url, tmp_path)) as url:
        yield url


@pytest.fixture
def world(live_server: str, sqlite_url: str) -> dict[str, object]:
    """A merchant account and the category it sells in (made by ops over the API)."""
    create_user(sqlite_url, "kidsmum", "merchant")
    create_user(sqlite_url, "ops1", "ops")
    with httpx.Client(base_url=live_server, timeout=10) as api:
        token = api.post("/api/v1/auth/token", json={"username": "ops1", "password": PASSWORD}).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        body = {"slug": "kids", "name_zh": "童装", "name_en": "Kids' clothing"}
        category = api.post("/api/v1/categories", json=body, headers=headers)
        assert category.status_code == 201, category.text
    return {"base": live_server, "category_id": category.json()["id"]}


def _photo(path: Path) -> Path:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (800, 800), (250, 238, 228))
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((200, 160, 600, 700), radius=90, fill=(246, 205, 200))
    draw.ellipse((330, 90, 470, 230), fill=(250, 238, 228), outline=(230, 180, 170), width=8)
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=85)
    path.write_bytes(buf.getvalue())
    return path


def test_merchant_lists_a_product_and_a_phone_buyer_finds_it(world: dict, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    base = str(world["base"])
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            # --- the merchant, on a laptop, in the default language (Chinese) ---------------------
            merchant = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
            merchant.set_default_timeout(15_000)
            page = merchant.new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))

            page.goto(f"{base}/login?next=/console")
            page.fill("input[name=username]", "kidsmum")
            page.fill("input[name=password]", PASSWORD)
            page.click("form[action='/login'] button[type=submit]")
            page.wait_for_url(f"{base}/console")

            page.fill("form[action='/console/shops'] input[name=name]", "豆豆童装")
            page.fill("form[action='/console/shops'] textarea[name=description]", "宝妈自己挑的纯棉童装")
            page.click("form[action='/console/shops'] button[type=submit]")
            page.wait_for_url(re.compile(r".*/console\?shop=\d+$"))
            expect(page.locator("h1")).to_have_text("豆豆童装")

            page.click("a[href^='/console/products/new']")
            form = page.locator("#new-product")
            form.locator("input[name=title]").fill("儿童纯棉连体衣")
            form.locator("select[name=category_id]").select_option(str(world["category_id"]))
            form.locator("textarea[name=description]").fill("A类纯棉，宝宝贴身穿")
            form.locator("input[name=option1_name]").fill("尺码")
            form.locator("input[name=option1_values]").fill("73 80 90")
            form.locator("input[name=option2_name]").fill("颜色")
            form.locator("input[name=option2_values]").fill("米白，浅粉")
            form.locator("input[name=price]").fill("59")
            form.locator("input[name=stock]").fill("20")
            form.locator("button[type=submit]").click()
            page.wait_for_url(re.compile(r".*/console/products/\d+$"))
            product_url = page.url
            product_id = product_url.rsplit("/", 1)[1]

            rows = page.locator("form.sku-row")
            expect(rows).to_have_count(6)
            # Third SKU in matrix order is 80 / 米白: give it its own price, saved in place (htmx).
            row = rows.nth(2)
            expect(row.locator(".combo")).to_have_text("80 / 米白")
            row_id = row.get_attribute("id")
            # A bad price comes back in place with the error (422 is swapped in, not dropped).
            row.locator("input[name=price]").fill("-3")
            row.locator("button[type=submit]").click()
            bad_row = page.locator(f"#{row_id}.has-error")
            expect(bad_row.locator(".row-error")).to_be_visible()
            expect(bad_row.locator("input[name=price]")).to_have_attribute("aria-invalid", "true")
            row = page.locator(f"#{row_id}")
            row.locator("input[name=price]").fill("69.90")
            row.locator("button[type=submit]").click()
            saved_row = page.locator(f"#{row_id}:not(.has-error)")
            expect(saved_row.locator(".row-saved")).to_be_visible()
            expect(saved_row.locator("input[name=price]")).to_have_value("69.90")
            assert page.url == product_url  # no reload: the row was swapped in

            page.set_input_files("#images input[type=file]", str(_photo(tmp_path / "bodysuit.jpg")))
            page.click("#images form[enctype] button[type=submit]")
            page.wait_for_url(re.compile(r".*saved=image.*"))
            expect(page.locator("#images .thumbs img")).to_have_count(1)

            page.click(f"form[action='/console/products/{product_id}/publish'] button")
            page.wait_for_url(re.compile(r".*saved=published.*"))
            expect(page.locator(".editor-head .status")).to_have_text("已上架")

            page.click("form[action='/logout'] button")
            page.wait_for_url(f"{base}/")
            expect(page.locator("a[href='/login']")).to_be_visible()
            merchant.close()

            # --- a buyer on a phone, not signed in ------------------------------------------------
            buyer = browser.new_context(
                viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True, locale="zh-CN"
            )
            buyer.set_default_timeout(15_000)
            page = buyer.new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(base)
            page.fill("header input[name=q]", "连体衣")
            page.press("header input[name=q]", "Enter")
            page.wait_for_url(re.compile(r".*/search\?q=.*"))
            card = page.locator(f".product-card a[href='/p/{product_id}']")
            expect(card).to_be_visible()
            expect(card.locator(".title")).to_have_text("儿童纯棉连体衣")
            expect(card.locator(".price")).to_contain_text("¥59.00")

            card.click()
            page.wait_for_url(f"{base}/p/{product_id}")
            expect(page.locator("h1.product-title")).to_have_text("儿童纯棉连体衣")
            price = page.locator("[data-price-range]")
            expect(price).to_contain_text("¥59.00")
            expect(price).to_be_visible()
            expect(page.locator(".badges")).to_contain_text("7天无理由退货")
            # Picking 80 / 米白 shows that SKU's own price and stock.
            page.locator("label.chip-option", has_text="80").click()
            page.locator("label.chip-option", has_text="米白").click()
            expect(price).to_have_text("¥69.90")
            expect(page.locator("[data-selected]")).to_have_text("库存 20 件")

            # The layout fits the phone: nothing wider than the viewport.
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= PHONE["width"], f"page is {width}px wide on a {PHONE['width']}px phone"
            shot = tmp_path / "product-phone.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            keep = os.environ.get("TRUSTLIVE_TEST_SCREENSHOT_DIR")
            if keep:
                Path(keep).mkdir(parents=True, exist_ok=True)
                shutil.copy(shot, Path(keep) / shot.name)
            buyer.close()
        finally:
            browser.close()
    assert not errors, f"JavaScript errors: {errors}"
