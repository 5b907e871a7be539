"""Co-streaming (连麦): invite / accept / decline / end rules, both rooms' P0 ``costream`` over
the hub (the partner's pinned card kept current), buying the partner's pinned product from one's
own room (attributed to the room's creator, recorded with the link), and the agreed revenue share
at settlement through the ledger. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from pathlib import Path

from sqlalchemy import select

from tests.live.fakes import FakeSocket, until
from tests.live.fakes import Handler as FakeHandler
from tests.live.test_sessions import code_of
from tests.live.util import LiveWorld, another_creator, buy, go_live, live_world, schedule
from tests.orders.test_service import pay
from trustlive.accounts.service import Principal
from trustlive.db import transaction, utcnow
from trustlive.events import EventBus, OutboxRelay
from trustlive.ledger import service as ledger
from trustlive.live import service as live
from trustlive.live.hub import Hub, HubConfig
from trustlive.live.models import LiveOrder
from trustlive.live.schemas import CostreamIn, FlashSaleIn
from trustlive.orders import service as orders
from trustlive.orders import tasks as order_tasks
from trustlive.orders.models import OrderLine
from trustlive.orders.schemas import ShipIn


async def two_rooms(lw: LiveWorld) -> tuple[Principal, int, int]:
    """Creator A live with product 0 featured, creator B live with product 1."""
    b = await another_creator(lw)
    room_a = await go_live(lw, products=[lw.products[0]])
    room_b = await go_live(lw, b, products=[lw.products[1]])
    return b, room_a, room_b


async def invite(lw: LiveWorld, actor: Principal, room: int, partner: int, share: int = 0):  # type: ignore[no-untyped-def]
    async with transaction(lw.sm) as s:
        return await live.invite_costream(s, actor, room, CostreamIn(partner, share))


async def code(lw: LiveWorld, call) -> str:  # type: ignore[no-untyped-def]
    async with transaction(lw.sm) as s:
        return await code_of(call(s))


def test_invite_accept_decline_end_rules(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        lw = await live_world(db_url, tmp_path)
        try:
            b, room_a, room_b = await two_rooms(lw)
            a, buyer = lw.creator, lw.w.buyers[0]
            later = await schedule(lw)  # A's scheduled (not live) session
            body = CostreamIn(room_b, 1000)
            cases = [
                (buyer, room_a, body, "not_your_session"),  # 403
                (a, 999999, body, "session_not_found"),  # 404
                (a, later, body, "not_live"),  # 409
                (a, room_a, CostreamIn(999999), "session_not_found"),  # 404: no partner session
                (a, room_a, CostreamIn(later), "cannot_costream_self"),  # 422
            ]
            for actor, room, data, expected in cases:
                assert (
                    await code(lw, lambda s, x=(actor, room, data): live.invite_costream(s, *x)) == expected
                )
            c = await another_creator(lw, "creator3")
            not_live = await schedule(lw, c, products=[lw.products[0]])
            assert (
                await code(lw, lambda s: live.invite_costream(s, a, room_a, CostreamIn(not_live)))
                == "partner_not_live"
            )
            link = await invite(lw, a, room_a, room_b, 1000)
            assert (link.status, link.share_bp, link.invitee.creator_id) == ("invited", 1000, b.id)
            assert (
                await code(lw, lambda s: live.invite_costream(s, a, room_a, CostreamIn(room_b)))
                == "already_linked"
            )
            assert (
                await code(lw, lambda s: live.invite_costream(s, b, room_b, CostreamIn(room_a)))
                == "already_linked"
            )
            assert await code(lw, lambda s: live.accept_costream(s, a, link.id)) == "not_invitee"  # 403
            assert await code(lw, lambda s: live.accept_costream(s, buyer, link.id)) == "costream_not_found"
            async with transaction(lw.sm) as s:
                assert (await live.decline_costream(s, b, link.id)).status == "declined"
            assert await code(lw, lambda s: live.accept_costream(s, b, link.id)) == "not_invited"
            link = await invite(lw, a, room_a, room_b, 500)
            async with transaction(lw.sm) as s:
                active = await live.accept_costream(s, b, link.id)
            assert active.status == "active" and active.accepted_at is not None
            async with transaction(lw.sm) as s:
                assert [x.id for x in await live.my_costreams(s, b)] == [link.id, link.id - 1]
            async with transaction(lw.sm) as s:
                assert (await live.end_costream(s, b, link.id)).status == "ended"
            assert await code(lw, lambda s: live.end_costream(s, a, link.id)) == "not_open"
            # A link ends with either session.
            link = await invite(lw, b, room_b, room_a)
            async with transaction(lw.sm) as s:
                await live.accept_costream(s, a, link.id)
            async with transaction(lw.sm) as s:
                await live.end_session(s, a, room_a)
            async with transaction(lw.sm) as s:
                assert (await live.get_costream(s, b, link.id)).status == "ended"
                assert await live.open_costream(s, room_b) is None
        finally:
            await lw.w.engine.dispose()

    asyncio.run(scenario())


def test_both_rooms_show_the_link_and_the_partners_pinned_card(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        lw = await live_world(db_url, tmp_path, stock=10)
        hub = Hub(HubConfig())
        await hub.start()
        bus = EventBus()
        for topic, handler in live.hub_subscribers(hub).items():
            bus.subscribe(topic, handler)
        relay = OutboxRelay(lw.sm, bus)
        try:
            b, room_a, room_b = await two_rooms(lw)
            a = lw.creator
            console_b = FakeSocket()  # B's console: the invitation comes to it as a private frame
            asyncio.create_task(hub.serve(console_b, room_b, b, FakeHandler()))
            await until(lambda: console_b.of("snapshot"))
            link = await invite(lw, a, room_a, room_b, 2000)
            await relay.drain()
            await until(lambda: console_b.of("costream_invite"))
            assert console_b.of("costream_invite")[0]["costream"]["id"] == link.id
            assert hub.snapshot_state(room_a).get("costream") is None  # not linked until accepted
            async with transaction(lw.sm) as s:
                await live.accept_costream(s, b, link.id)
            await relay.drain()
            seen_a, seen_b = hub.snapshot_state(room_a)["costream"], hub.snapshot_state(room_b)["costream"]
            assert [c["id"] for c in seen_a["creators"]] == [a.id, b.id]
            assert [c["id"] for c in seen_b["creators"]] == [b.id, a.id]
            assert seen_a["share_bp"] == seen_b["share_bp"] == 2000
            assert seen_a["partner"]["pin"] is None  # B has pinned nothing yet
            async with transaction(lw.sm) as s:
                await live.pin(s, b, room_b, lw.products[1])
            async with transaction(lw.sm) as s:
                await live.start_flash_sale(s, b, room_b, FlashSaleIn(lw.w.skus[1], 3, 2, 60))
            await relay.drain()
            partner = hub.snapshot_state(room_a)["costream"]["partner"]
            assert partner["pin"]["product_id"] == lw.products[1] and partner["sale"]["left"] == 3
            # A viewer of room A buys B's pinned product: placed through room A, attributed to A.
            placed = await buy(lw, room_a, 0, 2, key="partner", index=1)
            assert placed.costream_id == link.id and placed.session_id == room_a
            await relay.drain()
            assert hub.snapshot_state(room_a)["costream"]["partner"]["sale"]["left"] == 1
            assert hub.snapshot_state(room_b)["sale"]["left"] == 1
            async with transaction(lw.sm) as s:
                line = await s.scalar(select(OrderLine).where(OrderLine.order_id == placed.order_ids[0]))
                room_order = await s.scalar(
                    select(LiveOrder).where(LiveOrder.order_id == placed.order_ids[0])
                )
            assert (line.source, line.creator_id) == ("live_room", a.id)
            assert (room_order.session_id, room_order.costream_id) == (room_a, link.id)
            async with transaction(lw.sm) as s:
                await live.unpin(s, b, room_b)
            await relay.drain()
            assert hub.snapshot_state(room_a)["costream"]["partner"]["pin"] is None
            # Once B unpinned, room A cannot sell it any more; after the link, neither.
            assert (
                await code(lw, lambda s: live.buy(s, lw.w.buyers[1], room_a, _order_in(lw, 1), "late"))
                == "not_featured"
            )
            async with transaction(lw.sm) as s:
                await live.end_costream(s, a, link.id)
            await relay.drain()
            assert (
                hub.snapshot_state(room_a)["costream"] is None
                and hub.snapshot_state(room_b)["costream"] is None
            )
        finally:
            await hub.stop()
            await lw.w.engine.dispose()

    asyncio.run(scenario())


def _order_in(lw: LiveWorld, index: int, buyer: int = 1):  # type: ignore[no-untyped-def]
    from trustlive.live.schemas import LiveOrderIn

    return LiveOrderIn(lw.w.skus[index], 1, lw.w.addresses[lw.w.buyers[buyer].id])


async def settle(lw: LiveWorld, order_id: int, buyer: int) -> None:
    await pay(lw.w, order_id)
    async with transaction(lw.sm) as s:
        await orders.ship_order(
            s, lw.w.merchants[0], order_id, ShipIn(carrier="中通", tracking_no=f"ZT{order_id:06d}")
        )
        await orders.confirm_receipt(s, lw.w.buyers[buyer], order_id)
    # Past the return window and a new shop's settlement delay (15 days, docs/scores.md).
    assert await order_tasks.settle(lw.sm, utcnow() + dt.timedelta(days=16)) == 1


async def payables(lw: LiveWorld, *creators: Principal) -> list[int]:
    async with transaction(lw.sm) as s:
        report = await ledger.verify(s)
        assert report.ok, report.problems
        return [await ledger.balance(s, ledger.creator_payable(c.id)) for c in creators]


def test_the_agreed_share_moves_at_settlement(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        lw = await live_world(db_url, tmp_path)
        try:
            b, room_a, room_b = await two_rooms(lw)
            a = lw.creator
            # Before any link: A keeps the whole commission (5900: fee 5% 295, commission 20% 1180).
            before = await buy(lw, room_a, 0, key="before")
            assert before.costream_id is None
            await settle(lw, before.order_ids[0], 0)
            assert await payables(lw, a, b) == [1180, 0]
            # Linked with a 20% share: 236 of A's 1180 goes to B in the settlement itself.
            link = await invite(lw, a, room_a, room_b, 2000)
            async with transaction(lw.sm) as s:
                await live.accept_costream(s, b, link.id)
            during = await buy(lw, room_a, 1, key="during")
            assert during.costream_id == link.id
            await settle(lw, during.order_ids[0], 1)
            assert await payables(lw, a, b) == [1180 + 944, 236]
            async with transaction(lw.sm) as s:
                [entry] = [e for e in await ledger.statement(s, ledger.creator_payable(b.id))]
            assert entry is not None
            # A link with no share moves nothing.
            async with transaction(lw.sm) as s:
                await live.end_costream(s, a, link.id)
            link = await invite(lw, a, room_a, room_b, 0)
            async with transaction(lw.sm) as s:
                await live.accept_costream(s, b, link.id)
            zero = await buy(lw, room_a, 2, key="zero")
            await settle(lw, zero.order_ids[0], 2)
            assert await payables(lw, a, b) == [1180 + 944 + 1180, 236]
        finally:
            await lw.w.engine.dispose()

    asyncio.run(scenario())


def test_console_and_room_pages(client, settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The console invites, answers and ends from forms (errors in place); the viewer page shows
    the partner's pinned product once linked; the cards panel is on the creator's console."""
    import time as _time

    from tests.live.test_pages import setup
    from tests.web.test_pages import sign_in

    async def rooms(lw: LiveWorld) -> tuple[int, int]:
        b, room_a, room_b = await two_rooms(lw)
        async with transaction(lw.sm) as s:
            await live.pin(s, b, room_b, lw.products[1])
        return room_a, room_b

    lw, (room_a, room_b) = setup(settings, tmp_path, rooms)
    token = sign_in(client, "creator1")
    console = client.get(f"/console/live/{room_a}")
    assert console.status_code == 200 and 'id="costream"' in console.text and "data-cards" in console.text
    bad = client.post(f"/console/live/{room_a}/costream",
                      data={"partner_session_id": str(room_a), "share_pct": "10", "_csrf_token": token})  # fmt: skip
    assert bad.status_code == 422 and "Invite another creator&#39;s live session." in bad.text
    sent = client.post(f"/console/live/{room_a}/costream", follow_redirects=False,
                       data={"partner_session_id": str(room_b), "share_pct": "10", "_csrf_token": token})  # fmt: skip
    assert sent.status_code == 303
    assert "Waiting for" in client.get(f"/console/live/{room_a}").text
    token = sign_in(client, "creator2")
    page = client.get(f"/console/live/{room_b}").text
    assert "invites you to co-stream" in page and "share 10.0%" in page
    link_id = int(re.search(r"/costream/(\d+)/accept", page).group(1))  # type: ignore[union-attr]
    accepted = client.post(f"/console/live/{room_b}/costream/{link_id}/accept", data={"_csrf_token": token},
                           follow_redirects=False)  # fmt: skip
    assert accepted.status_code == 303
    assert "Co-streaming with" in client.get(f"/console/live/{room_b}").text
    # The viewer page of room A: the partner's pinned product (the hub state after the relay).
    deadline = _time.monotonic() + 5
    while _time.monotonic() < deadline:
        state = client.get(f"/api/v1/live/sessions/{room_a}/view").json()["state"]
        if (state.get("costream") or {}).get("partner", {}).get("pin"):
            break
        _time.sleep(0.05)
    assert state["costream"]["partner"]["pin"]["product_id"] == lw.products[1]
    room = client.get(f"/live/{room_a}").text
    assert "data-costream " in room and "Co-streaming with" in room and "商品2" in room
    ended = client.post(f"/console/live/{room_b}/costream/{link_id}/end", data={"_csrf_token": token},
                        follow_redirects=False)  # fmt: skip
    assert ended.status_code == 303
    again = client.post(f"/console/live/{room_b}/costream/{link_id}/end", data={"_csrf_token": token})
    assert again.status_code == 409 and "That co-stream is over already." in again.text
