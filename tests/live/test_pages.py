"""The live pages with a cookie session and CSRF tokens, on SQLite and PostgreSQL: the viewer page's
first render (useful before the socket connects), who sees what (stream key, buy form, comment
box, console), the buy form and the console's forms, which refuse bad input in place with a 4xx
and change nothing."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from litestar.testing import TestClient
from sqlalchemy import func, select

from tests.live.util import LiveWorld, go_live, live_world, pin_and_sell, schedule
from tests.web.test_pages import csrf_of, sign_in
from trustlive.config import Settings
from trustlive.db import transaction, utcnow
from trustlive.live import repository as repo
from trustlive.live import service as live
from trustlive.live.models import FlashSale, LiveComment, LiveSession
from trustlive.orders.models import Order


def setup(
    settings: Settings, tmp_path: Path, then: Callable[[LiveWorld], Awaitable[Any]] | None = None
) -> Any:
    """The live world (a creator, two shops' products, buyers with addresses), then ``then``."""

    async def build() -> Any:
        lw = await live_world(settings.database_url, tmp_path, buyers=3, stock=10)
        try:
            return lw, (await then(lw) if then else None)
        finally:
            await lw.w.engine.dispose()

    return asyncio.run(build())


def count(settings: Settings, model: Any) -> int:
    async def run() -> int:
        from trustlive.db import create_engine, create_sessionmaker

        engine = create_engine(settings.database_url)
        try:
            async with transaction(create_sessionmaker(engine)) as s:
                return int(await s.scalar(select(func.count()).select_from(model)) or 0)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def sale_left(settings: Settings) -> int:
    async def run() -> int:
        from trustlive.db import create_engine, create_sessionmaker

        engine = create_engine(settings.database_url)
        try:
            async with transaction(create_sessionmaker(engine)) as s:
                sale = await s.scalar(select(FlashSale).order_by(FlashSale.id.desc()))
                return sale.allocation - sale.sold
        finally:
            await engine.dispose()

    return asyncio.run(run())


def stock_shown(page: str) -> int:
    found = re.search(r'data-stock data-value="(-?\d+)"', page)
    assert found, "the page shows no stock"
    return int(found.group(1))


async def _live_with_sale(lw: LiveWorld) -> int:
    session_id = await go_live(lw)
    await pin_and_sell(lw, session_id, allocation=4, limit=2, seconds=600)
    return session_id


def test_viewer_page_renders_the_room_before_the_socket(
    client: TestClient, settings: Settings, tmp_path: Path
) -> None:
    lw, session_id = setup(settings, tmp_path, _live_with_sale)
    client.cookies.set("tl_lang", "en")
    page = client.get(f"/live/{session_id}")
    assert page.status_code == 200, page.text
    text = page.text
    assert "和田玉专场" in text and 'data-status="live"' in text
    assert f'data-ws="/api/v1/live/sessions/{session_id}/ws"' in text
    assert f'data-pin-card data-product="{lw.products[0]}"' in text
    assert stock_shown(text) == 4 and "Limit 2 per buyer" in text and "Flash sale" in text
    assert "/static/live.js" in text
    # Anonymous: watch, but sign in to comment and to buy; no stream key anywhere.
    assert "Sign in to comment" in text and "Sign in to buy" in text
    assert "data-comment-form" not in text and "data-buy-form" not in text
    assert "rtmp://" not in text

    sign_in(client, lw.w.buyers[0].username)
    signed = client.get(f"/live/{session_id}").text
    assert "data-comment-form" in signed and "data-buy-form" in signed
    assert f'<option value="{lw.w.addresses[lw.w.buyers[0].id]}"' in signed
    assert "rtmp://" not in signed

    client.cookies.set("tl_lang", "zh_Hans")
    zh = client.get(f"/live/{session_id}").text
    assert "秒杀" in zh and "每人限购 2 件" in zh and "说点什么" in zh and "马上抢" in zh
    assert "Sign in" not in zh


def test_comments_are_text_never_markup(client: TestClient, settings: Settings, tmp_path: Path) -> None:
    async def then(lw: LiveWorld) -> int:
        session_id = await go_live(lw)
        buyer = lw.w.buyers[0]
        async with transaction(lw.sm) as s:
            await repo.insert_comments(s, [{
                "id": 1, "session_id": session_id, "user_id": buyer.id, "display_name": "<b>x</b>",
                "text": "<script>alert(1)</script>", "created_at": utcnow(), "deleted_at": None,
                "deleted_by_id": None,
            }])  # fmt: skip
        return session_id

    _, session_id = setup(settings, tmp_path, then)
    text = client.get(f"/live/{session_id}").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "<script>alert(1)" not in text
    assert "&lt;b&gt;x&lt;/b&gt;" in text


def test_scheduled_and_ended_rooms(client: TestClient, settings: Settings, tmp_path: Path) -> None:
    lw, session_id = setup(settings, tmp_path, lambda lw: schedule(lw))
    client.cookies.set("tl_lang", "en")
    page = client.get(f"/live/{session_id}").text
    assert "Starts" in page and "data-ws=" not in page

    async def end(lw: LiveWorld) -> None:
        async with transaction(lw.sm) as s:
            await live.start_session(s, lw.creator, session_id, lw.settings)
        async with transaction(lw.sm) as s:
            await live.end_session(s, lw.creator, session_id)

    setup_again(settings, lw, end)
    page = client.get(f"/live/{session_id}").text
    assert "The live has ended." in page and f'href="/live/{session_id}/replay"' in page
    assert "data-ws=" not in page
    replay = client.get(f"/live/{session_id}/replay")
    assert replay.status_code == 200 and 'data-stat="orders">0<' in replay.text
    assert client.get("/live/999999").status_code == 404
    assert client.get("/live/999999/replay").status_code == 404


def setup_again(settings: Settings, lw: LiveWorld, then: Callable[[LiveWorld], Awaitable[Any]]) -> Any:
    """Run ``then`` on the world already built (a fresh engine on the same database)."""
    from trustlive.db import create_engine, create_sessionmaker

    async def run() -> Any:
        engine = create_engine(settings.database_url)
        lw.w.engine, lw.w.sessionmaker = engine, create_sessionmaker(engine)
        try:
            return await then(lw)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_live_list_shows_live_then_upcoming(client: TestClient, settings: Settings, tmp_path: Path) -> None:
    async def then(lw: LiveWorld) -> tuple[int, int]:
        return await go_live(lw), await schedule(lw)

    _, (live_id, upcoming_id) = setup(settings, tmp_path, then)
    page = client.get("/live")
    assert page.status_code == 200
    now, _, later = page.text.partition('id="upcoming"')
    assert f'data-session="{live_id}"' in now and f'data-session="{upcoming_id}"' in later


def test_buy_form_places_the_order_and_refuses_in_place(
    client: TestClient, settings: Settings, tmp_path: Path
) -> None:
    lw, session_id = setup(settings, tmp_path, _live_with_sale)
    buyer = lw.w.buyers[0]
    address = lw.w.addresses[buyer.id]
    form = {"sku_id": str(lw.w.skus[0]), "quantity": "1", "address_id": str(address)}
    # Anonymous: to the sign-in page, nothing placed.
    anonymous = client.post(f"/live/{session_id}/buy", data=form, follow_redirects=False)
    assert anonymous.status_code in (303, 403) and count(settings, Order) == 0

    token = sign_in(client, buyer.username)
    placed = client.post(
        f"/live/{session_id}/buy", data={**form, "idempotency_key": "k-1", "_csrf_token": token},
        follow_redirects=False,
    )  # fmt: skip
    assert placed.status_code == 303, placed.text
    assert re.fullmatch(r"/orders/\d+\?placed=1", placed.headers["location"])
    assert count(settings, Order) == 1 and sale_left(settings) == 3
    assert stock_shown(client.get(f"/live/{session_id}").text) == 3

    bad_inputs = [
        ({**form, "quantity": "3"}, 409, "more than the flash sale allows"),  # over the limit of 2
        ({**form, "quantity": "0"}, 422, None),
        ({**form, "quantity": "abc"}, 422, None),
        ({**form, "address_id": ""}, 422, None),
        ({**form, "sku_id": "99999999"}, 422, None),
        ({**form, "sku_id": str(lw.w.skus[0]) + "x"}, 422, None),
    ]
    for data, status, message in bad_inputs:
        response = client.post(
            f"/live/{session_id}/buy", data={**data, "idempotency_key": f"k-{status}-{len(str(data))}",
                                             "_csrf_token": token},
        )  # fmt: skip
        assert response.status_code == status, (data, response.text[:300])
        assert 'class="alert"' in response.text and "data-pin-card" in response.text
        if message:
            assert message in response.text
    assert count(settings, Order) == 1 and sale_left(settings) == 3
    # No CSRF token: refused, nothing placed.
    assert client.post(f"/live/{session_id}/buy", data={**form, "idempotency_key": "k-x"}).status_code == 403
    assert count(settings, Order) == 1


def test_buyer_without_an_address_is_sent_to_add_one(
    client: TestClient, settings: Settings, tmp_path: Path
) -> None:
    from tests.helpers import create_user

    lw, session_id = setup(settings, tmp_path, _live_with_sale)
    create_user(settings.database_url, "newbuyer", "buyer")
    sign_in(client, "newbuyer")
    page = client.get(f"/live/{session_id}").text
    assert f'href="/addresses?next=/live/{session_id}"' in page and "data-buy-form" not in page


def test_console_who_may_see_what(client: TestClient, settings: Settings, tmp_path: Path) -> None:
    lw, session_id = setup(settings, tmp_path, _live_with_sale)
    client.cookies.set("tl_lang", "en")
    sign_in(client, lw.w.buyers[0].username)
    assert client.get("/console/live").status_code == 403
    assert client.get(f"/console/live/{session_id}").status_code == 403
    sign_in(client, "creator1")
    mine = client.get("/console/live")
    assert mine.status_code == 200 and f'data-session="{session_id}"' in mine.text
    console = client.get(f"/console/live/{session_id}")
    assert console.status_code == 200
    assert "rtmp://" in console.text and "data-stream-key" in console.text
    assert 'data-live-mode="console"' in console.text and "Stop the flash sale" in console.text
    # Anonymous: the console sends to sign in.
    client.cookies.clear()
    anonymous = client.get(f"/console/live/{session_id}", follow_redirects=False)
    assert anonymous.status_code in (302, 303) and "/login" in anonymous.headers["location"]


def test_console_forms_schedule_start_pin_sale_moderate(
    client: TestClient, settings: Settings, tmp_path: Path
) -> None:
    lw, _ = setup(settings, tmp_path)
    token = sign_in(client, "creator1")
    when = (utcnow() + dt.timedelta(hours=2)).astimezone(dt.timezone(dt.timedelta(hours=8)))
    good = {"title": "童装专场", "scheduled_at": when.strftime("%Y-%m-%dT%H:%M"), "_csrf_token": token}
    # Bad input, each refused in place with nothing created.
    for data, status in (
        ({**good, "title": ""}, 422),
        ({**good, "scheduled_at": "tomorrow"}, 422),
        ({**good, "scheduled_at": "2001-01-01T10:00"}, 422),
        ({**good, "product_ids": "abc"}, 422),
        ({**good, "product_ids": "99999999"}, 422),
    ):
        response = client.post(
            "/console/live", data=data, files={"cover": ("", b"", "application/octet-stream")}
        )
        assert response.status_code == status, (data, response.text[:300])
        assert 'class="alert"' in response.text and 'id="schedule"' in response.text
    assert count(settings, LiveSession) == 0
    created = client.post(
        "/console/live", data={**good, "product_ids": [str(p) for p in lw.products]},
        files={"cover": ("", b"", "application/octet-stream")}, follow_redirects=False,
    )  # fmt: skip
    assert created.status_code == 303, created.text[:500]
    session_id = int(re.search(r"/console/live/(\d+)", created.headers["location"]).group(1))

    started = client.post(
        f"/console/live/{session_id}/start", data={"_csrf_token": token}, follow_redirects=False
    )
    assert started.status_code == 303
    again = client.post(f"/console/live/{session_id}/start", data={"_csrf_token": token})
    assert again.status_code == 409 and 'class="alert"' in again.text

    base = f"/console/live/{session_id}"
    # A sale before a pin: refused in place.
    sale = {"sku_id": str(lw.w.skus[0]), "allocation": "3", "per_buyer_limit": "1", "seconds": "60"}
    response = client.post(f"{base}/sale", data={**sale, "_csrf_token": token})
    assert response.status_code == 409 and "Pin a product first" in response.text
    assert client.post(f"{base}/pin", data={"product_id": "abc", "_csrf_token": token}).status_code == 422
    pinned = client.post(f"{base}/pin", data={"product_id": str(lw.products[0]), "_csrf_token": token},
                         follow_redirects=False)  # fmt: skip
    assert pinned.status_code == 303
    for bad in ({**sale, "allocation": "11"}, {**sale, "allocation": "0"}, {**sale, "seconds": "1"},
                {**sale, "sku_id": str(lw.w.skus[1])}):  # fmt: skip
        response = client.post(f"{base}/sale", data={**bad, "_csrf_token": token})
        assert response.status_code == 422, (bad, response.text[:300])
        assert 'class="alert"' in response.text
    assert count(settings, FlashSale) == 0
    assert (
        client.post(f"{base}/sale", data={**sale, "_csrf_token": token}, follow_redirects=False).status_code
        == 303
    )
    assert count(settings, FlashSale) == 1
    viewer = client.get(f"/live/{session_id}").text
    assert stock_shown(viewer) == 3

    # Moderation: bad user ids in place; the creator cannot mute themself.
    buyer = lw.w.buyers[0]
    assert client.post(f"{base}/mutes", data={"user_id": "x", "_csrf_token": token}).status_code == 422
    assert (
        client.post(f"{base}/mutes", data={"user_id": str(lw.creator.id), "_csrf_token": token}).status_code
        == 422
    )
    muted = client.post(f"{base}/mutes", data={"user_id": str(buyer.id), "minutes": "5", "_csrf_token": token},
                        follow_redirects=False)  # fmt: skip
    assert muted.status_code == 303
    assert f'data-muted="{buyer.id}"' in client.get(base).text
    words = client.post(
        f"{base}/blocklist", data={"words": "微信\n加V", "_csrf_token": token}, follow_redirects=False
    )
    assert words.status_code == 303 and "加v" in client.get(base).text
    too_long = client.post(f"{base}/blocklist", data={"words": "x" * 41, "_csrf_token": token})
    assert too_long.status_code == 422
    unknown = client.post(f"{base}/moderators", data={"username": "nobody", "_csrf_token": token})
    assert unknown.status_code == 422 and 'class="alert"' in unknown.text
    added = client.post(f"{base}/moderators", data={"username": buyer.username, "_csrf_token": token},
                        follow_redirects=False)  # fmt: skip
    assert added.status_code == 303 and f'data-moderator="{buyer.id}"' in client.get(base).text

    ended = client.post(f"{base}/end", data={"_csrf_token": token}, follow_redirects=False)
    assert ended.status_code == 303
    assert "The live has ended." in client.get(f"/live/{session_id}").text


def test_comment_delete_from_the_console(client: TestClient, settings: Settings, tmp_path: Path) -> None:
    async def then(lw: LiveWorld) -> int:
        session_id = await go_live(lw)
        async with transaction(lw.sm) as s:
            await repo.insert_comments(s, [{
                "id": 7, "session_id": session_id, "user_id": lw.w.buyers[0].id, "display_name": "Buyer",
                "text": "加微信", "created_at": utcnow(), "deleted_at": None, "deleted_by_id": None,
            }])  # fmt: skip
        return session_id

    lw, session_id = setup(settings, tmp_path, then)
    assert "加微信" in client.get(f"/live/{session_id}").text
    token = sign_in(client, lw.w.buyers[1].username)
    refused = client.post(f"/console/live/{session_id}/comments/7/delete", data={"_csrf_token": token})
    assert refused.status_code == 403
    token = sign_in(client, "creator1")
    done = client.post(f"/console/live/{session_id}/comments/7/delete", data={"_csrf_token": token},
                       follow_redirects=False)  # fmt: skip
    assert done.status_code == 303
    client.cookies.clear()
    assert "加微信" not in client.get(f"/live/{session_id}").text
    assert count(settings, LiveComment) == 1


def test_every_live_page_has_its_csrf_meta(client: TestClient, settings: Settings, tmp_path: Path) -> None:
    _, session_id = setup(settings, tmp_path, _live_with_sale)
    for path in ("/live", f"/live/{session_id}"):
        assert csrf_of(client.get(path).text)


def test_a_moderator_gets_the_console_without_the_stream_key(
    client: TestClient, settings: Settings, tmp_path: Path
) -> None:
    async def then(lw: LiveWorld) -> int:
        session_id = await _live_with_sale(lw)
        async with transaction(lw.sm) as s:
            await live.add_moderator(s, lw.creator, lw.w.buyers[2].id)
        return session_id

    lw, session_id = setup(settings, tmp_path, then)
    token = sign_in(client, lw.w.buyers[2].username)
    console = client.get(f"/console/live/{session_id}")
    assert console.status_code == 200
    assert "rtmp://" not in console.text and "data-stream-key" not in console.text
    assert 'id="pin"' in console.text and 'id="moderation"' in console.text
    assert 'id="moderators"' not in console.text and 'id="blocklist"' not in console.text
    # The creator's own lists are not a moderator's to change; the creator's session list neither.
    refused = client.post(f"/console/live/{session_id}/blocklist", data={"words": "x", "_csrf_token": token})
    assert refused.status_code == 403
    assert client.get("/console/live").status_code == 403
    assert client.post(f"/console/live/{session_id}/end", data={"_csrf_token": token}).status_code == 403
    # A moderator may stop the sale from the console.
    stopped = client.post(
        f"/console/live/{session_id}/sale/stop", data={"_csrf_token": token}, follow_redirects=False
    )
    assert stopped.status_code == 303


def test_the_replay_shows_sales_to_the_creator_only(
    client: TestClient, settings: Settings, tmp_path: Path
) -> None:
    from tests.live.util import buy

    async def then(lw: LiveWorld) -> int:
        session_id = await _live_with_sale(lw)
        await buy(lw, session_id, 0, 2, key="replay-1")
        async with transaction(lw.sm) as s:
            await live.end_session(s, lw.creator, session_id)
        return session_id

    lw, session_id = setup(settings, tmp_path, then)
    client.cookies.set("tl_lang", "en")
    public = client.get(f"/live/{session_id}/replay")
    assert public.status_code == 200
    assert 'data-stat="orders">1<' in public.text and 'data-stat="units">2<' in public.text
    assert 'id="flash-sales"' in public.text and 'id="sales"' not in public.text
    sign_in(client, "creator1")
    mine = client.get(f"/live/{session_id}/replay")
    assert 'id="sales"' in mine.text and "<td>b**</td>" in mine.text
    assert client.get(f"/live/{session_id}/replay?cursor=bogus").status_code == 400
