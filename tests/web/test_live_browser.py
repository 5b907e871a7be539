"""End to end in headless Chromium, the live room's acceptance test: a viewer watching a live room
(anonymous, on a phone) sees a comment typed by another viewer in a second browser, as text (a
comment that looks like markup runs nothing), and sees the flash sale's stock left drop when a
third viewer buys from the pinned card in a third browser.

The app runs under uvicorn with its hub, its comment writer and its outbox relay, as in
production: the purchase reaches the room through the committed event, not through the test.
Drives Debian's /usr/bin/chromium (never a downloaded browser); skipped without it unless
TRUSTLIVE_TEST_REQUIRE_SERVICES=1. TRUSTLIVE_TEST_SCREENSHOT_DIR keeps screenshots.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import PASSWORD, make_settings
from tests.live.util import go_live, live_world, pin_and_sell
from tests.web.browser import launch, require_chromium, serve

pytestmark = pytest.mark.browser

PHONE = {"width": 375, "height": 812}
LAPTOP = {"width": 1280, "height": 900}
TIMEOUT_MS = 15_000
ALLOCATION = 4


@pytest.fixture
def room(sqlite_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A creator live with two featured products, the first pinned on a flash sale (4 units, 2 per
    buyer, 10 minutes); three buyers with addresses. Then the real app serving it."""
    require_chromium()

    async def build() -> dict[str, Any]:
        lw = await live_world(sqlite_url, tmp_path, buyers=3, stock=10)
        try:
            session_id = await go_live(lw)
            await pin_and_sell(lw, session_id, allocation=ALLOCATION, limit=2, seconds=600)
            return {
                "session_id": session_id,
                "buyers": [b.username for b in lw.w.buyers],
                "sku": lw.w.skus[0],
                "addresses": [lw.w.addresses[b.id] for b in lw.w.buyers],
            }
        finally:
            await lw.w.engine.dispose()

    world = asyncio.run(build())
    with serve(make_settings(sqlite_url, tmp_path, task_interval_seconds=0.5)) as url:
        yield {**world, "base": url}


def test_a_viewer_sees_another_viewers_comment_and_the_stock_drop_when_a_third_buys(
    room: dict[str, Any],
) -> None:
    from playwright.sync_api import Page, expect, sync_playwright

    base, session_id = room["base"], room["session_id"]
    errors: list[str] = []
    dialogs: list[str] = []
    shots = os.environ.get("TRUSTLIVE_TEST_SCREENSHOT_DIR")

    def shoot(page: Page, name: str) -> None:
        if shots:
            Path(shots).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(Path(shots) / f"live-{name}.png"), full_page=True)

    with sync_playwright() as pw:
        browser = launch(pw)
        try:

            def open_room(viewport: dict[str, int], username: str | None, **phone: Any) -> Page:
                ctx = browser.new_context(viewport=viewport, locale="zh-CN", **phone)
                ctx.set_default_timeout(TIMEOUT_MS)
                page = ctx.new_page()
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
                if username:
                    page.goto(f"{base}/login?next=/live/{session_id}")
                    page.fill("input[name=username]", username)
                    page.fill("input[name=password]", PASSWORD)
                    page.click("form[action='/login'] button[type=submit]")
                    page.wait_for_url(f"{base}/live/{session_id}")
                else:
                    page.goto(f"{base}/live/{session_id}")
                # Connected: the socket is open and the first snapshot has arrived.
                expect(page.locator("[data-live]")).to_have_attribute("data-conn", "open")
                expect(page.locator("[data-live]")).to_have_attribute("data-at", re.compile(r"^.+:\d+$"))
                return page

            # --- the watcher: anonymous, on a phone ------------------------------------------------
            watcher = open_room(PHONE, None, device_scale_factor=2, is_mobile=True, has_touch=True)
            stock = watcher.locator("[data-pin-card] [data-stock]")
            expect(stock).to_have_text(str(ALLOCATION))
            expect(watcher.locator("[data-countdown]")).to_have_text(re.compile(r"^(09|10):\d\d$"))
            expect(watcher.locator("a[href^='/login']", has_text=re.compile("弹幕|comment"))).to_be_visible()
            assert watcher.locator("[data-comment-form]").count() == 0
            width = watcher.evaluate("document.documentElement.scrollWidth")
            assert width <= PHONE["width"], f"the room is {width}px wide on a {PHONE['width']}px phone"
            shoot(watcher, "1-watcher")

            # --- a second viewer comments -----------------------------------------------------------
            talker = open_room(LAPTOP, room["buyers"][0])
            box = talker.locator("[data-comment-form] input[name=text]")
            box.fill("这个手镯好看吗？")
            talker.locator("[data-comment-form] button[type=submit]").click()
            expect(box).to_have_value("")  # acked: the input clears
            comments = watcher.locator("[data-comments] .live-comment")
            expect(comments.filter(has_text="这个手镯好看吗？")).to_have_count(1)
            expect(comments.filter(has_text="这个手镯好看吗？").locator(".live-name")).to_have_text(
                room["buyers"][0]
            )

            # Markup in a comment is shown as text, never run.
            trap = '<img src=x onerror="alert(1)"><script>alert(2)</script>'
            box.fill(trap)
            talker.locator("[data-comment-form] button[type=submit]").click()
            expect(box).to_have_value("")
            expect(watcher.locator("[data-comments] .live-text").filter(has_text="<img src=x")).to_have_count(
                1
            )
            assert watcher.locator("[data-comments] img, [data-comments] script").count() == 0
            shoot(talker, "2-talker")

            # --- a third viewer buys from the pinned card ------------------------------------------
            buyer = open_room(PHONE, room["buyers"][1], device_scale_factor=2, is_mobile=True, has_touch=True)
            expect(buyer.locator("[data-pin-card] [data-stock]")).to_have_text(str(ALLOCATION))
            buyer.locator("[data-buy-form] [data-buy]").click()
            status = buyer.locator("[data-buy-status]")
            expect(status).to_have_attribute("data-kind", "ok")
            expect(status.locator("a[href^='/orders/']")).to_have_count(1)
            # Every viewer sees the stock left drop, through the room.
            expect(stock).to_have_text(str(ALLOCATION - 1))
            expect(buyer.locator("[data-pin-card] [data-stock]")).to_have_text(str(ALLOCATION - 1))
            expect(watcher.locator("[data-purchases] .live-purchase")).to_have_count(1)
            shoot(watcher, "3-watcher-after-purchase")

            # Over the per-buyer limit: refused on the card, the stock stays.
            buyer.locator("[data-buy-form] input[name=quantity]").fill("2")
            buyer.locator("[data-buy-form] [data-buy]").click()
            expect(status).to_have_attribute("data-code", "limit_exceeded")
            expect(status).to_have_attribute("data-kind", "error")
            expect(stock).to_have_text(str(ALLOCATION - 1))
            shoot(buyer, "4-buyer-limit")

            # --- the creator's console: the same comments, live, with moderation tools --------------
            creator = browser.new_context(viewport=LAPTOP, locale="zh-CN").new_page()
            creator.set_default_timeout(TIMEOUT_MS)
            creator.on("pageerror", lambda exc: errors.append(str(exc)))
            creator.goto(f"{base}/login?next=/console/live/{session_id}")
            creator.fill("input[name=username]", "creator1")
            creator.fill("input[name=password]", PASSWORD)
            creator.click("form[action='/login'] button[type=submit]")
            creator.wait_for_url(f"{base}/console/live/{session_id}")
            expect(creator.locator("[data-live]")).to_have_attribute("data-conn", "open")
            expect(creator.locator("[data-stream-key]")).to_have_count(1)
            box.fill("加我微信")
            talker.locator("[data-comment-form] button[type=submit]").click()
            expect(box).to_have_value("")
            line = creator.locator("[data-comments] .live-comment", has_text="加我微信")
            expect(line).to_have_count(1)
            expect(watcher.locator("[data-comments] .live-comment", has_text="加我微信")).to_have_count(1)
            shoot(creator, "5-console")
            # Deleting it takes it off every viewer's screen.
            line.locator("form[action$='/delete'] button").click()
            creator.wait_for_url(re.compile(r".*\?saved=deleted.*"))
            expect(watcher.locator("[data-comments] .live-comment", has_text="加我微信")).to_have_count(0)

            # --- the creator ends the live: every viewer sees it, with the replay ------------------
            creator.locator(f"form[action='/console/live/{session_id}/end'] button").click()
            creator.wait_for_url(re.compile(r".*/console/live\?saved=ended$"))
            ended = watcher.locator("[data-ended]")
            expect(ended).to_be_visible()
            expect(ended.locator(f"a[href='/live/{session_id}/replay']")).to_be_visible()
            expect(watcher.locator("[data-live]")).to_have_attribute("data-conn", "closed")
            shoot(watcher, "6-ended")

            assert dialogs == [], f"a comment ran script: {dialogs}"
            assert errors == [], errors
        finally:
            browser.close()


def test_a_viewer_who_lost_the_connection_resumes_and_gets_what_it_missed(room: dict[str, Any]) -> None:
    """The socket drops (cut by the test between browser and server), a purchase happens meanwhile,
    and the page reconnects with back-off: its first frame is a hello with the (epoch, offset) it
    last saw, and the missed purchase and stock reach it."""
    from playwright.sync_api import WebSocketRoute, expect, sync_playwright

    base, session_id = room["base"], room["session_id"]
    hellos: list[dict[str, Any]] = []
    sockets: list[WebSocketRoute] = []
    blocked = {"now": False}
    errors: list[str] = []

    def route(ws: WebSocketRoute) -> None:
        if blocked["now"]:
            ws.close()  # the network is still down: the page backs off and tries again
            return
        server = ws.connect_to_server()
        sockets.append(ws)

        def from_page(message: str | bytes) -> None:
            frame = json.loads(message)
            if frame.get("t") == "hello":
                hellos.append(frame)
            server.send(message)

        ws.on_message(from_page)

    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            ctx = browser.new_context(viewport=PHONE, locale="zh-CN")
            ctx.set_default_timeout(TIMEOUT_MS)
            page = ctx.new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.route_web_socket(re.compile(r".*/api/v1/live/sessions/\d+/ws$"), route)
            page.goto(f"{base}/live/{session_id}")
            root = page.locator("[data-live]")
            expect(root).to_have_attribute("data-conn", "open")
            stock = page.locator("[data-pin-card] [data-stock]")
            expect(stock).to_have_text(str(ALLOCATION))
            assert hellos == [{"t": "hello"}]  # a first visit resumes nothing
            # "open" comes before the snapshot: cut only once the page knows where it is.
            expect(root).to_have_attribute("data-at", re.compile(r"^.+:\d+$"))

            # The connection drops and stays down while someone buys.
            blocked["now"] = True
            sockets[-1].close()
            expect(root).to_have_attribute("data-conn", "reconnecting")
            seen = root.get_attribute("data-at")  # the last frame before the cut
            with httpx.Client(base_url=base, timeout=10) as api:
                token = api.post(
                    "/api/v1/auth/token", json={"username": room["buyers"][2], "password": PASSWORD}
                )
                placed = api.post(
                    f"/api/v1/live/sessions/{session_id}/orders",
                    json={"sku_id": room["sku"], "quantity": 2, "address_id": room["addresses"][2]},
                    headers={"Authorization": f"Bearer {token.json()['access_token']}", "Idempotency-Key": "resume-1"},
                )  # fmt: skip
                assert placed.status_code == 201, placed.text
            page.wait_for_timeout(300)
            expect(stock).to_have_text(str(ALLOCATION))  # nothing reached the page meanwhile

            # Back: the page resumes from what it saw and catches up.
            blocked["now"] = False
            expect(root).to_have_attribute("data-conn", "open", timeout=20_000)
            expect(stock).to_have_text(str(ALLOCATION - 2))  # by now the server has read the hello
            resumed = hellos[-1]
            assert "resume" in resumed, hellos
            assert f"{resumed['resume']['e']}:{resumed['resume']['o']}" == seen, hellos
            assert errors == [], errors
        finally:
            browser.close()


@pytest.fixture
def regular(sqlite_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A creator live; a buyer who has paid for an order from the creator's room before."""
    require_chromium()
    from tests.live.util import buy
    from tests.orders.test_service import pay

    async def build() -> dict[str, Any]:
        lw = await live_world(sqlite_url, tmp_path, buyers=2, stock=10)
        try:
            session_id = await go_live(lw)
            placed = await buy(lw, session_id, 0, key="before")
            await pay(lw.w, placed.order_ids[0])
            return {"session_id": session_id, "buyer": lw.w.buyers[0].username, "buyer_id": lw.w.buyers[0].id}
        finally:
            await lw.w.engine.dispose()

    world = asyncio.run(build())
    with serve(make_settings(sqlite_url, tmp_path, task_interval_seconds=0.5)) as url:
        yield {**world, "base": url}


def test_the_creators_console_shows_a_returning_customers_card_and_keeps_notes(
    regular: dict[str, Any],
) -> None:
    """The creator's console (a laptop) gets the card when a buyer who has bought before enters
    the room (a phone); the creator writes a note in the card and saves it; the buyer's own page
    never shows a card."""
    from playwright.sync_api import expect, sync_playwright

    base, session_id = regular["base"], regular["session_id"]
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = launch(pw)
        try:

            def signed_in(viewport: dict[str, int], username: str, path: str) -> Any:
                ctx = browser.new_context(viewport=viewport, locale="zh-CN")
                ctx.set_default_timeout(TIMEOUT_MS)
                page = ctx.new_page()
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                page.goto(f"{base}/login?next={path}")
                page.fill("input[name=username]", username)
                page.fill("input[name=password]", PASSWORD)
                page.click("form[action='/login'] button[type=submit]")
                page.wait_for_url(f"{base}{path}")
                expect(page.locator("[data-live]")).to_have_attribute("data-conn", "open")
                return page

            console = signed_in(LAPTOP, "creator1", f"/console/live/{session_id}")
            viewer = signed_in(PHONE, regular["buyer"], f"/live/{session_id}")
            card = console.locator(f"[data-cards] [data-card='{regular['buyer_id']}']")
            expect(card).to_have_count(1)
            expect(card.locator("strong")).to_contain_text(regular["buyer"])
            expect(card).to_contain_text("1")
            card.locator("textarea").fill("儿子穿110，喜欢蓝色")
            card.locator("button").click()
            expect(card.locator("button")).to_have_text(re.compile("已保存|Saved"))
            assert viewer.locator("[data-cards] [data-card]").count() == 0
            with httpx.Client(base_url=base, timeout=10) as api:
                token = api.post("/api/v1/auth/token", json={"username": "creator1", "password": PASSWORD})
                notes = api.get(
                    f"/api/v1/live/customers/{regular['buyer_id']}/notes",
                    headers={"Authorization": f"Bearer {token.json()['access_token']}"},
                )
            assert notes.json()["note"] == "儿子穿110，喜欢蓝色"
            assert errors == [], errors
        finally:
            browser.close()
