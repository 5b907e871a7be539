"""End to end in headless Chromium, the score drill-down: a merchant opens their shop's score from
the shop console, sees the total, a dimension and an indicator with its hint, sees the 90-day
history drawn as a chart, and follows the indicator's link to the order lines that pull it down.
Then the same pages and the public badge on a phone (390 px): nothing wider than the screen.

The scores come from real orders (tests/trust/test_pages.py's world: 31 delivered orders, three
rated 1 star) through ``rebuild_facts`` and ``recompute_all``. Drives Debian's /usr/bin/chromium
(never a downloaded browser); skipped without it unless TRUSTLIVE_TEST_REQUIRE_SERVICES=1.
TRUSTLIVE_TEST_SCREENSHOT_DIR keeps screenshots.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import PASSWORD, make_settings
from tests.trust.test_pages import NEGATIVE, scored_world
from tests.web.browser import launch, require_chromium, serve

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1280, "height": 900}
TIMEOUT_MS = 15_000


@pytest.fixture
def scored(sqlite_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    require_chromium()
    settings = make_settings(sqlite_url, tmp_path)
    world = asyncio.run(scored_world(sqlite_url, settings))
    with serve(settings) as url:
        shop = httpx.get(f"{url}/api/v1/scores/shop/{world.shop_ids[0]}").json()
        yield {"base": url, "world": world, "shop": shop}


def test_a_merchant_drills_down_from_the_score_to_the_orders_behind_it(scored: dict[str, Any]) -> None:
    from playwright.sync_api import Page, expect, sync_playwright

    base, world, shop = scored["base"], scored["world"], scored["shop"]
    shop_id = world.shop_ids[0]
    errors: list[str] = []
    shots = os.environ.get("TRUSTLIVE_TEST_SCREENSHOT_DIR")

    def shoot(page: Page, name: str) -> None:
        if shots:
            Path(shots).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(Path(shots) / f"trust-{name}.png"), full_page=True)

    def fits(page: Page) -> None:
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{page.url} is {width}px wide on a {PHONE['width']}px phone"

    with sync_playwright() as pw:
        browser = launch(pw)
        try:

            def signed_in(viewport: dict[str, int], next_path: str, **phone: Any) -> Page:
                ctx = browser.new_context(viewport=viewport, locale="en-US", **phone)
                ctx.set_default_timeout(TIMEOUT_MS)
                ctx.add_cookies([{"name": "tl_lang", "value": "en", "url": base}])
                page = ctx.new_page()
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                page.goto(f"{base}/login?next={next_path}")
                page.fill("input[name=username]", "merchant1")
                page.fill("input[name=password]", PASSWORD)
                page.click("form[action='/login'] button[type=submit]")
                page.wait_for_url(f"{base}{next_path}")
                return page

            # --- laptop: from the console to the score, its parts, its chart --------------------
            page = signed_in(LAPTOP, f"/console?shop={shop_id}")
            page.locator(".console-nav a", has_text="Scores").click()
            page.wait_for_url(f"{base}/console/scores/shop/{shop_id}")
            expect(page.locator("[data-total]")).to_have_text(shop["score"])
            product = page.locator("[data-dimension=product]")
            expect(product.locator("h2")).to_have_text("Product")
            dim_score = next(d["score"] for d in shop["dims"] if d["key"] == "product")
            expect(product.locator(".trust-dim-score strong")).to_have_text(dim_score)
            negative = page.locator("[data-indicator=negative_review_rate]")
            expect(negative.locator("h3")).to_have_text("Negative-review rate")
            expect(negative.locator("[data-hint]")).to_contain_text("Read the 1 and 2 star reviews")
            expect(negative.locator("[data-value]")).to_contain_text("%")
            # The curve's knots are there on request.
            negative.locator("summary", has_text="How points are given").click()
            expect(negative.locator(".trust-curve tbody tr").first).to_be_visible()

            # The history chart: Chart.js drew on the canvas, with today's score among its points.
            canvas = page.locator("[data-trust-chart]")
            canvas.scroll_into_view_if_needed()
            expect(canvas).to_have_attribute("data-drawn", "true")
            drawn = page.evaluate(
                """() => {
                  const canvas = document.querySelector("[data-trust-chart]");
                  const chart = window.Chart.getChart(canvas);
                  const { data } = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
                  let inked = 0;
                  for (let i = 3; i < data.length; i += 4) if (data[i] > 0) inked++;
                  return { points: chart.data.datasets[0].data.filter((v) => v !== null),
                           days: chart.data.labels.length, inked, width: canvas.width };
                }"""
            )
            assert drawn["days"] == 90 and drawn["width"] > 0
            assert float(shop["score"]) in drawn["points"]
            assert drawn["inked"] > 1000, drawn
            shoot(page, "1-breakdown")

            # Follow the indicator to the orders behind it: the three rated 1 star.
            negative.locator("[data-lines-link]").click()
            page.wait_for_url(f"{base}/console/scores/shop/{shop_id}/indicators/negative_review_rate")
            rows = page.locator("[data-counts-against]")
            expect(rows).to_have_count(NEGATIVE)
            expect(rows.first).to_contain_text("rated 1★")
            orders = sorted(int(rows.nth(i).get_attribute("data-order") or 0) for i in range(NEGATIVE))
            assert orders == sorted(o for o, _ in world.creator_orders[:NEGATIVE])
            rows.first.locator("a", has_text="Order").click()
            page.wait_for_url("**/console/orders/*")
            shoot(page, "2-lines")

            # --- a phone: the same pages and the public badge fit the screen -------------------------
            phone = signed_in(
                PHONE,
                f"/console/scores/shop/{shop_id}",
                device_scale_factor=2,
                is_mobile=True,
                has_touch=True,
            )
            expect(phone.locator("[data-total]")).to_have_text(shop["score"])
            expect(phone.locator("[data-trust-chart]")).to_have_attribute("data-drawn", "true")
            phone.locator("[data-indicator=negative_review_rate] summary").click()
            fits(phone)
            shoot(phone, "3-phone-breakdown")
            phone.goto(f"{base}/console/scores/shop/{shop_id}/indicators/negative_review_rate?show=all")
            expect(phone.locator("[data-line]")).to_have_count(20)
            fits(phone)
            phone.goto(f"{base}/shops/{world.slugs[0]}")
            expect(phone.locator("[data-trust-badge] [data-score]")).to_have_text(shop["score"])
            fits(phone)
            phone.goto(f"{base}/p/{world.product_ids[0]}")
            expect(phone.locator("[data-trust-badge][data-entity=product]")).to_be_visible()
            fits(phone)
            shoot(phone, "4-phone-product")
        finally:
            browser.close()
    assert not errors, errors
