"""Returning customers (熟客): the creator's console gets a card (past orders, options bought,
total spent, last visit, private notes) when a buyer who has bought from the creator enters or
comments; once per session, again on a comment after a few minutes; never to anyone else.
On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

from litestar.testing import TestClient
from sqlalchemy import update

from tests.helpers import PASSWORD, make_settings, token_for
from tests.live.test_api import Ids, ids  # noqa: F401  (fixture)
from tests.live.util import LiveWorld, buy, go_live, live_world
from tests.orders.test_service import pay
from trustlive.accounts import service as accounts
from trustlive.catalog import service as catalog
from trustlive.config import Settings
from trustlive.db import create_engine, create_sessionmaker, transaction, utcnow
from trustlive.live import service as live
from trustlive.live.handler import CommentWriter, ModerationCache, RoomHandler
from trustlive.live.models import LiveVisit
from trustlive.live.schemas import NoteIn
from trustlive.orders import service as orders
from trustlive.orders.models import OrderLine
from trustlive.orders.schemas import ItemIn, OrderIn


class RecordingHub:
    """What the handler uses of the hub, recording the private frames."""

    def __init__(self) -> None:
        self.private: list[tuple[int, list[int], dict[str, Any]]] = []
        self.on_room_dropped: list[Any] = []
        self.room_check: Any = None

    def send_private(self, room_id: int, user_ids: list[int], payload: dict[str, Any]) -> None:
        self.private.append((room_id, list(user_ids), payload))

    def count(self, *args: Any) -> None:
        pass

    def set_state(self, *args: Any) -> None:
        pass

    def snapshot_state(self, room_id: int) -> dict[str, Any]:
        return {}

    async def fetch_state(self, room_id: int) -> dict[str, Any]:
        return {"pin": None}


def handler(lw: LiveWorld, tmp_path: Path) -> tuple[RoomHandler, RecordingHub]:
    hub = RecordingHub()
    settings = make_settings(lw.settings.database_url, tmp_path, live_comment_rate="100/1s")
    writer = CommentWriter(lw.sm, interval_s=3600)
    return RoomHandler(lw.sm, settings, writer, moderation=ModerationCache(), hub=hub), hub


async def paid_room_order(lw: LiveWorld, sid: int, buyer: int, key: str, index: int = 0) -> int:
    placed = await buy(lw, sid, buyer, key=key, index=index)
    await pay(lw.w, placed.order_ids[0])
    return placed.order_ids[0]


def test_a_returning_customer_gets_a_card_once_per_session(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        lw = await live_world(db_url, tmp_path, buyers=3)
        try:
            sid = await go_live(lw)
            b0, b1, b2 = lw.w.buyers
            first = await paid_room_order(lw, sid, 0, "k1")
            await paid_room_order(lw, sid, 0, "k2", index=1)
            await buy(lw, sid, 0, key="unpaid")  # pending: not counted
            async with transaction(lw.sm) as s:  # a size on the first order's line
                await s.execute(
                    update(OrderLine).where(OrderLine.order_id == first).values(option_values=["110cm"])
                )
            async with transaction(lw.sm) as s:  # an order not from this creator: not counted
                other = await orders.place_order(
                    s, b0, OrderIn(items=[ItemIn(sku_id=lw.w.skus[0], quantity=1)],
                                   address_id=lw.w.addresses[b0.id], source="shelf"), "direct",
                )  # fmt: skip
            await pay(lw.w, other.orders[0].id)
            h, hub = handler(lw, tmp_path)
            await h.on_join(sid, lw.creator)  # the creator: no card of themselves
            await h.on_join(sid, b0)
            await h.on_join(sid, b1)  # never bought: no card, but the visit is recorded
            await h.drain()
            [(room, to, card)] = hub.private
            assert (room, to) == (sid, [lw.creator.id]) and card["t"] == "card" and card["session_id"] == sid
            assert (card["user_id"], card["orders"], card["spent_fen"]) == (b0.id, 2, 5900 + 128000)
            assert card["options"] == ["110cm"] and card["last_visit"] is None and card["note"] == ""
            assert [r["title"] for r in card["recent"]] == ["商品2", "商品1"]
            assert card["recent"][1]["options"] == ["110cm"]
            # Again in the same session: no second card (join or comment within minutes).
            h._card_tried.clear()
            await h.on_join(sid, b0)
            await h.on_comment(sid, b0, "还有110的吗")
            await h.drain()
            assert len(hub.private) == 1
            # A comment minutes later brings it back (the notes may have changed meanwhile).
            async with transaction(lw.sm) as s:
                await live.set_note(s, lw.creator, b0.id, NoteIn("儿子穿110，\n喜欢蓝色"))
                await s.execute(update(LiveVisit).values(card_at=utcnow() - dt.timedelta(minutes=4)))
            h._card_tried.clear()
            await h.on_comment(sid, b0, "来了")
            await h.drain()
            assert len(hub.private) == 2 and hub.private[1][2]["note"] == "儿子穿110，\n喜欢蓝色"
            # The next session: the card comes again, with the last visit (the previous session's).
            async with transaction(lw.sm) as s:
                await live.end_session(s, lw.creator, sid)
            sid2 = await go_live(lw)
            await h.on_join(sid2, b0)
            await h.drain()
            assert len(hub.private) == 3
            card = hub.private[2][2]
            assert card["session_id"] == sid2 and card["last_visit"] is not None and card["orders"] == 2
            async with transaction(lw.sm) as s:
                mine = await live.customer_card(s, lw.creator, b0.id)
            assert mine.visits == 2 and mine.orders == 2
        finally:
            await lw.w.engine.dispose()

    asyncio.run(scenario())


def test_a_shop_the_creator_staffs_counts(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        lw = await live_world(db_url, tmp_path)
        try:
            b0 = lw.w.buyers[0]
            async with transaction(lw.sm) as s:
                await catalog.add_staff(s, lw.w.merchants[1], lw.w.shops[1], lw.creator.username)
            async with transaction(lw.sm) as s:
                placed = await orders.place_order(
                    s, b0, OrderIn(items=[ItemIn(sku_id=lw.w.skus[1], quantity=1)],
                                   address_id=lw.w.addresses[b0.id], source="shelf"), "shelf",
                )  # fmt: skip
            async with transaction(lw.sm) as s:
                assert (await live.customer_card(s, lw.creator, b0.id)).orders == 0  # unpaid
            await pay(lw.w, placed.orders[0].id)
            async with transaction(lw.sm) as s:
                history = await orders.customer_history(s, b0.id, lw.creator.id)
            assert (history.orders, history.spent_fen) == (1, 128000)
        finally:
            await lw.w.engine.dispose()

    asyncio.run(scenario())


def test_notes_api_is_the_creators_alone(client: TestClient, ids: Ids, settings: Settings) -> None:  # noqa: F811
    creator, buyer = token_for(client, "creator1"), token_for(client, "buyer0000")
    target = ids.buyer_ids["buyer0001"]
    url = f"/api/v1/live/customers/{target}/notes"
    assert client.get(url).status_code == 401
    assert client.get(url, headers=buyer).status_code == 403  # not a creator
    assert client.get(url, headers=creator).json() == {"buyer_id": target, "note": "", "updated_at": None}
    response = client.put(url, json={"note": "  喜欢翡翠手镯 "}, headers=creator)
    assert response.status_code == 200 and response.json()["note"] == "喜欢翡翠手镯"
    assert client.get(url, headers=creator).json()["note"] == "喜欢翡翠手镯"
    assert client.put(url, json={"note": "x" * 1001}, headers=creator).status_code == 422
    assert client.get("/api/v1/live/customers/999999/notes", headers=creator).status_code == 422
    card = client.get(f"/api/v1/live/customers/{target}", headers=creator).json()
    assert card["orders"] == 0 and card["note"] == "喜欢翡翠手镯"
    # Another creator sees their own (empty) notes, never these.
    asyncio.run(add_creator(settings, "creator2"))
    other = token_for(client, "creator2")
    assert client.get(url, headers=other).json()["note"] == ""


async def add_creator(settings: Settings, username: str) -> None:
    engine = create_engine(settings.database_url)
    try:
        async with transaction(create_sessionmaker(engine)) as s:
            await accounts.create_user(s, username=username, password=PASSWORD, roles=["creator"])
    finally:
        await engine.dispose()


def test_the_card_reaches_the_creators_socket_only(client: TestClient, ids: Ids, settings: Settings) -> None:  # noqa: F811
    """Over the real app: a buyer who has paid for an order from this room enters; the creator's
    console socket gets the card, the buyer's and an anonymous viewer's sockets never do."""
    from tests.live.test_ws import hello, live_session, until

    sid, creator = live_session(client, ids)
    b0 = token_for(client, "buyer0000")
    order = {"sku_id": ids.skus[0], "quantity": 1, "address_id": ids.addresses["buyer0000"]}
    placed = client.post(
        f"/api/v1/live/sessions/{sid}/orders", json=order, headers={**b0, "Idempotency-Key": "c1"}
    )
    assert placed.status_code == 201, placed.text

    async def paid() -> None:
        engine = create_engine(settings.database_url)
        try:
            world = type("W", (), {"sessionmaker": create_sessionmaker(engine)})()
            await pay(world, placed.json()["order_ids"][0])  # type: ignore[arg-type]
        finally:
            await engine.dispose()

    asyncio.run(paid())
    url = f"/api/v1/live/sessions/{sid}/ws"
    with (
        client.websocket_connect(url, headers=creator) as console,
        client.websocket_connect(url) as anon,
    ):
        hello(console)
        hello(anon)
        with client.websocket_connect(url, headers=b0) as buyer:
            hello(buyer)
            card, _ = until(console, lambda f: f["t"] == "card")
            assert (card["user_id"], card["orders"], card["spent_fen"]) == (
                ids.buyer_ids["buyer0000"],
                1,
                5900,
            )
            assert card["session_id"] == sid and card["name"] == "buyer0000"
            buyer.send_json({"t": "ping"})
            _, seen = until(buyer, lambda f: f["t"] == "pong")
            assert all(f["t"] != "card" for f in seen)
        anon.send_json({"t": "ping"})
        _, seen = until(anon, lambda f: f["t"] == "pong")
        assert all(f["t"] != "card" for f in seen)
