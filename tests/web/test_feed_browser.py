"""End to end in headless Chromium, the feeds' acceptance test (issue 7), on a phone: a buyer
follows a creator from the creator's page, finds the creator's live room at the top of the follow
feed, swipes through the single-column discovery feed to the creator's short video, opens it and
buys the product it links; the order line says ``short_video`` and names the creator.

The app runs under uvicorn with its tasks and outbox relay, as in production. Drives Debian's
/usr/bin/chromium (never a downloaded browser); skipped without it unless
TRUSTLIVE_TEST_REQUIRE_SERVICES=1. TRUSTLIVE_TEST_SCREENSHOT_DIR keeps screenshots.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.content.util import fields, mp4, post, video_world
from tests.helpers import PASSWORD, make_settings
from tests.web.browser import launch, require_chromium, serve
from trustlive.db import create_engine, create_sessionmaker, transaction, utcnow
from trustlive.live import service as live
from trustlive.live.schemas import SessionIn
from trustlive.orders.models import OrderLine

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
TIMEOUT_MS = 15_000
# The card the single-column feed shows: its top where the feed's scrolling box starts.
SHOWING = (
    "el => Math.abs(el.getBoundingClientRect().top - el.closest('#feed').getBoundingClientRect().top) < 4"
)


@pytest.fixture
def world(sqlite_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """creator1 (staff of shop 0) live now with the shop's products, and a short video linking the
    first of them; buyer1 with an address. Then the real app serving it."""
    require_chromium()
    settings = make_settings(sqlite_url, tmp_path, task_interval_seconds=0.5)

    async def build() -> dict[str, Any]:
        vw = await video_world(sqlite_url, settings, buyers=2)
        try:
            async with transaction(vw.sm) as s:
                session = await live.create_session(
                    s, vw.creator, SessionIn(title="春装上新专场", scheduled_at=utcnow() + dt.timedelta(hours=1),
                                             product_ids=vw.own), None, settings,
                )  # fmt: skip
            async with transaction(vw.sm) as s:
                await live.start_session(s, vw.creator, session.id, settings)
            video = await post(vw, data=fields("开衫怎么搭", product_ids=[vw.own[0]]), video=mp4())
            # Another creator's video, so the discovery feed has more than one creator to swipe through.
            await post(vw, vw.other_creator, fields("联盟好物试用", product_ids=[vw.alliance]), video=mp4())
            buyer = vw.w.buyers[0]
            return {"creator": vw.creator.id, "session": session.id, "video": video.id, "product": vw.own[0],
                    "buyer": buyer.username, "buyer_id": buyer.id}  # fmt: skip
        finally:
            await vw.w.engine.dispose()

    built = asyncio.run(build())
    with serve(settings) as url:
        yield {**built, "base": url, "db": sqlite_url}


async def _lines_of(url: str, buyer_id: int) -> list[tuple[str, int | None, int]]:
    engine = create_engine(url)
    try:
        async with transaction(create_sessionmaker(engine)) as s:
            rows = await s.execute(select(OrderLine.source, OrderLine.creator_id, OrderLine.product_id))
            return [(r.source, r.creator_id, r.product_id) for r in rows]
    finally:
        await engine.dispose()


def test_follow_see_the_live_room_first_swipe_discovery_and_buy_from_a_video(world: dict[str, Any]) -> None:
    from playwright.sync_api import Page, expect, sync_playwright

    base = world["base"]
    errors: list[str] = []
    shots = os.environ.get("TRUSTLIVE_TEST_SCREENSHOT_DIR")

    def shoot(page: Page, name: str) -> None:
        if shots:
            Path(shots).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(Path(shots) / f"feed-{name}.png"))

    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            page = browser.new_context(
                viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True, locale="zh-CN"
            ).new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{base}/login?next=/creators/{world['creator']}")
            page.fill("input[name=username]", world["buyer"])
            page.fill("input[name=password]", PASSWORD)
            page.click("form[action='/login'] button[type=submit]")
            page.wait_for_url(f"{base}/creators/{world['creator']}")

            # --- follow the creator from their page (the button loads in place) -----------------
            follow = page.locator(f"#follow-creator-{world['creator']}")
            follow.locator("button[aria-pressed=false]").click()
            expect(follow.locator("button[aria-pressed=true]")).to_have_count(1)
            expect(page.locator(f"#follow-creator-{world['creator']}")).to_have_attribute(
                "data-followers", "1"
            )
            shoot(page, "1-followed")

            # --- the follow feed: the creator's live room comes first ------------------------------
            page.goto(f"{base}/feed/following")
            first = page.locator("#feed .feed-card").first
            expect(first).to_have_attribute("data-kind", "live")
            expect(first).to_have_attribute("data-id", str(world["session"]))
            expect(
                page.locator(f"#feed .feed-card[data-kind=video][data-id='{world['video']}']")
            ).to_have_count(1)
            shoot(page, "2-follow-feed")

            # --- the discovery feed, one item at a time: swipe to the creator's video -------------
            page.goto(f"{base}/feed?layout=single")
            feed = page.locator("#feed")
            expect(feed).to_have_attribute("data-layout", "single")
            cards = feed.locator(".feed-card")
            expect(cards.first).to_be_visible()
            assert cards.count() >= 2
            target = feed.locator(f".feed-card[data-kind=video][data-id='{world['video']}']")
            expect(target).to_have_count(1)
            # One card fills the screen: swipe up (the arrow key scrolls one screen, as a swipe
            # does) until the video's card is the one showing.
            for _ in range(cards.count()):
                if target.evaluate(SHOWING):
                    break
                before = feed.evaluate("el => el.scrollTop")
                page.keyboard.press("ArrowDown")
                page.wait_for_function(f"document.querySelector('#feed').scrollTop > {before}")
                page.wait_for_timeout(400)  # the smooth scroll settles on the next card
            assert target.evaluate(SHOWING), "never reached the video"
            height = target.evaluate("el => el.getBoundingClientRect().height")
            assert height >= PHONE["height"] * 0.6, f"a single-column card is {height}px tall"
            shoot(page, "3-discovery-single")

            # --- the video, then buy what it links --------------------------------------------------
            target.locator("a.slide-go").click()
            page.wait_for_url(re.compile(rf".*/videos/{world['video']}$"))
            buy = page.locator("a.buy-link").first
            expect(buy).to_have_attribute(
                "href", f"/p/{world['product']}?source=short_video&creator={world['creator']}"
            )
            buy.click()
            page.wait_for_url(re.compile(rf".*/p/{world['product']}\?source=short_video.*"))
            page.locator("form[data-buy-form] button[formaction='/buy']").click()
            page.wait_for_url(re.compile(r".*/buy(\?.*)?$"))
            shoot(page, "4-confirm")
            page.locator("form[method=post][action='/buy'] button[type=submit]").click()
            page.wait_for_url(re.compile(r".*/sandbox/pay/pay_[A-Za-z0-9_-]+$"))
            page.locator("button.pay").click()
            page.wait_for_url(re.compile(r".*/pay/return\?intent=\d+$"))
            expect(page.locator("#pay-status")).to_have_attribute("data-status", "succeeded", timeout=20_000)
            shoot(page, "5-paid")
            assert errors == [], errors
        finally:
            browser.close()

    lines = asyncio.run(_lines_of(world["db"], world["buyer_id"]))
    assert lines == [("short_video", world["creator"], world["product"])]
