"""Consignment through the services, on SQLite and PostgreSQL: the whole path from submitting an
item to the consignor's wallet (with and without a fee waiver), declined and withdrawn items, and
who may do what."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.helpers import image_bytes, run
from tests.live.util import LiveWorld, go_live, live_world, orders_of
from tests.orders.test_service import pay
from trustlive.accounts import service as accounts
from trustlive.accounts.service import Principal
from trustlive.catalog import service as catalog
from trustlive.catalog.schemas import ShopIn
from trustlive.catalog.service import Upload
from trustlive.consignment import service as consignment
from trustlive.consignment.models import ConsignedItem
from trustlive.consignment.schemas import AppraisalIn, FeatureIn, ItemIn, WaiverIn
from trustlive.db import transaction, utcnow
from trustlive.errors import DomainError
from trustlive.events import Event, OutboxEvent
from trustlive.ledger import service as ledger
from trustlive.live import service as live
from trustlive.live.schemas import LiveOrderIn
from trustlive.orders import service as orders
from trustlive.orders import tasks
from trustlive.orders.models import OrderLine
from trustlive.orders.schemas import ShipIn


class FakeHub:
    def __init__(self) -> None:
        self.state: dict[int, dict[str, Any]] = {}
        self.purchases: list[dict[str, Any]] = []

    def set_state(self, room: int, key: str, value: Any) -> None:
        self.state.setdefault(room, {})[key] = value

    def purchase(self, room: int, item: dict[str, Any]) -> None:
        self.purchases.append(item)

    async def close_room(self, room: int, code: str = "", message: str = "") -> None:
        return None


async def relay(lw: LiveWorld, hub: FakeHub, after: int = 0) -> int:
    """What the outbox relay does with the committed live events: the hub calls."""
    handlers = live.hub_subscribers(hub)
    async with transaction(lw.sm) as s:
        rows = list(
            await s.scalars(select(OutboxEvent).where(OutboxEvent.id > after).order_by(OutboxEvent.id))
        )
        for r in rows:
            if r.topic in handlers:
                await handlers[r.topic](s, Event(r.id, r.topic, r.payload, r.created_at))
    return rows[-1].id if rows else after


async def appraiser_of(lw: LiveWorld, username: str = "jadehouse") -> Principal:
    async with transaction(lw.sm) as s:
        user = await accounts.create_user(s, username=username, password="correct-horse-9",
                                          roles=["creator", "merchant"])  # fmt: skip
    who = Principal(user.id, user.username, user.display_name, frozenset({"buyer", "creator", "merchant"}))
    async with transaction(lw.sm) as s:
        await catalog.open_shop(s, who, ShopIn(name=f"{username}的店"))
    return who


async def category(lw: LiveWorld, slug: str = "kids") -> int:
    async with transaction(lw.sm) as s:
        return (await catalog.get_category_by_slug(s, slug)).id


async def submit(lw: LiveWorld, consignor: Principal, appraiser: Principal, **extra: Any) -> int:
    photo = Upload("stone.png", "image/png", image_bytes())
    async with transaction(lw.sm) as s:
        item = await consignment.submit(
            s, consignor,
            ItemIn(appraiser_id=appraiser.id, title="和田玉籽料手镯", category_id=await category(lw),
                   description="祖传", asking_fen=100_000, **extra),
            [photo], lw.settings,
        )  # fmt: skip
    return item.id


async def act(lw: LiveWorld, fn: Any, *args: Any) -> Any:
    async with transaction(lw.sm) as s:
        return await fn(s, *args)


async def code_of(lw: LiveWorld, fn: Any, *args: Any) -> str:
    try:
        await act(lw, fn, *args)
    except DomainError as err:
        return err.code
    return "ok"


async def item_row(lw: LiveWorld, item_id: int) -> ConsignedItem:
    async with transaction(lw.sm) as s:
        return await s.scalar(select(ConsignedItem).where(ConsignedItem.id == item_id))


async def sell_and_settle(lw: LiveWorld, appraiser: Principal, room: int, item_id: int) -> int:
    """Buyer 0 buys the listed item in the room; shipped, received, settled. The order id."""
    row = await item_row(lw, item_id)
    buyer = lw.w.buyers[0]
    async with transaction(lw.sm) as s:
        placed = await live.buy(
            s, buyer, room, LiveOrderIn(row.sku_id, 1, lw.w.addresses[buyer.id]), f"c-{item_id}"
        )
    order_id = placed.order_ids[0]
    assert await pay(lw.w, order_id) == "paid"
    async with transaction(lw.sm) as s:
        await orders.ship_order(
            s, appraiser, order_id, ShipIn(carrier="顺丰", tracking_no=f"SF{item_id:08d}")
        )
        await orders.confirm_receipt(s, buyer, order_id)
    assert await tasks.settle(lw.sm, utcnow() + dt.timedelta(days=30)) == 1
    return order_id


async def balances(lw: LiveWorld, shop_id: int, consignor: Principal) -> tuple[int, int, bool]:
    async with transaction(lw.sm) as s:
        shop = await ledger.balance(s, ledger.shop_payable(shop_id))
        mine = await ledger.balance(s, ledger.consignor_payable(consignor.id))
        report = await ledger.verify(s)
    return shop, mine, report.ok


@pytest.mark.parametrize("waived", [False, True])
def test_the_whole_path_settles_to_the_consignor(db_url: str, tmp_path: Path, waived: bool) -> None:
    async def scenario() -> None:
        lw = await live_world(db_url, tmp_path)
        try:
            appraiser = await appraiser_of(lw)
            consignor = lw.w.buyers[1]
            item_id = await submit(lw, consignor, appraiser)
            queue = await act(lw, consignment.queue, appraiser)
            assert [i.id for i in queue] == [item_id] and queue[0].status == "submitted"
            assert queue[0].photos and queue[0].photos[0].url.startswith("/media/consignment/")
            room = await go_live(lw, appraiser, [])
            if waived:
                now = utcnow()
                terms = await act(lw, consignment.add_waiver, appraiser,
                                  WaiverIn(now - dt.timedelta(hours=1), now + dt.timedelta(days=3)), lw.settings)  # fmt: skip
                assert terms.fee_bp_now == 0 and terms.waived_until is not None
            hub = FakeHub()
            await relay(lw, hub)
            # Appraised in the room: the viewers' P0 state carries the card.
            out = await act(lw, consignment.appraise, appraiser, item_id,
                            AppraisalIn(session_id=room, valuation_fen=88_000, grade="A", notes="油润"), lw.settings)  # fmt: skip
            assert out.status == "appraised" and out.valuation_fen == 88_000
            await relay(lw, hub)
            card = hub.state[room]["appraisal"]
            assert (card["item_id"], card["valuation_fen"], card["grade"], card["notes"]) == (
                item_id,
                88_000,
                "A",
                "油润",
            )
            assert card["fee_bp"] == (0 if waived else 300)
            if waived:
                assert hub.state[room]["consignment"]["fee_bp"] == 0
                assert hub.state[room]["consignment"]["waived_until"]
            # Accepted: listed in the creator's shop (stock 1, its category) and featured in the room.
            listed = await act(lw, consignment.accept, consignor, item_id, lw.settings)
            assert listed.status == "listed" and listed.product_id and not listed.sold
            row = await item_row(lw, item_id)
            async with transaction(lw.sm) as s:
                sku = (await catalog.skus_for_sale(s, [row.sku_id]))[row.sku_id]
                featured = await live.featured_cards(s, None, room)
            assert (sku.stock, sku.price_fen, sku.on_sale, sku.category_id) == (
                1,
                88_000,
                True,
                await category(lw),
            )
            assert listed.product_id in [c.id for c in featured]
            # Bought in the room, shipped, confirmed, settled.
            order_id = await sell_and_settle(lw, appraiser, room, item_id)
            row = await item_row(lw, item_id)
            # kids: 5% service fee of 88,000 = 4,400; no commission; shop share 83,600.
            fee = 0 if waived else 2_640  # 3% of the line's base
            assert (row.status, row.order_id, row.fee_fen, row.proceeds_fen) == (
                "settled",
                order_id,
                fee,
                83_600 - fee,
            )
            shop, mine, ok = await balances(lw, row.shop_id, consignor)
            assert (shop, mine, ok) == (fee, 83_600 - fee, True)
            # The consignor sees the wallet and pays it out like a creator.
            async with transaction(lw.sm) as s:
                wallet = await ledger.consignor_wallet(s, consignor)
                assert wallet.balance_fen == 83_600 - fee and wallet.owner_kind == "consignor"
                await ledger.request_payout(
                    s, consignor, ledger.consignor_payable(consignor.id), 1_000, "6222 0000 1234"
                )
                with pytest.raises(DomainError):
                    await ledger.request_payout(
                        s, lw.w.buyers[0], ledger.consignor_payable(consignor.id), 1, "6222 0000 1234"
                    )
            assert (await act(lw, consignment.get_item, consignor, item_id)).sold
        finally:
            await lw.w.engine.dispose()

    run(scenario())


def test_declined_withdrawn_and_who_may_do_what(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        lw = await live_world(db_url, tmp_path, buyers=3)
        try:
            appraiser = await appraiser_of(lw)
            other = await appraiser_of(lw, "silverhouse")
            consignor, stranger = lw.w.buyers[1], lw.w.buyers[2]
            # Only a creator with a shop takes consignments; not oneself.
            bad = ItemIn(appraiser_id=lw.creator.id, title="x", category_id=await category(lw))
            assert (
                await code_of(lw, consignment.submit, consignor, bad, [], lw.settings) == "not_an_appraiser"
            )
            bad = ItemIn(appraiser_id=stranger.id, title="x", category_id=await category(lw))
            assert (
                await code_of(lw, consignment.submit, consignor, bad, [], lw.settings) == "not_an_appraiser"
            )
            own = ItemIn(appraiser_id=appraiser.id, title="x", category_id=await category(lw))
            assert await code_of(lw, consignment.submit, appraiser, own, [], lw.settings) == "own_item"
            blank = ItemIn(appraiser_id=appraiser.id, title="   ", category_id=await category(lw))
            assert (
                await code_of(lw, consignment.submit, consignor, blank, [], lw.settings) == "validation_error"
            )
            notimg = [Upload("a.png", "image/png", b"not an image")]
            assert (
                await code_of(lw, consignment.submit, consignor, own, notimg, lw.settings)
                == "unsupported_media_type"
            )
            assert await act(lw, consignment.my_items, consignor) == []

            first, second, third = [await submit(lw, consignor, appraiser) for _ in range(3)]
            room = await go_live(lw, appraiser, [])
            other_room = await go_live(lw, other, [])
            appraisal = AppraisalIn(session_id=room, valuation_fen=50_000, grade="B")
            # Other people's items are not found; the consignor is not the appraiser.
            assert await code_of(lw, consignment.get_item, stranger, first) == "item_not_found"
            assert (
                await code_of(lw, consignment.appraise, other, first, appraisal, lw.settings)
                == "item_not_found"
            )
            assert (
                await code_of(lw, consignment.appraise, consignor, first, appraisal, lw.settings)
                == "not_appraiser"
            )
            assert await code_of(lw, consignment.accept, stranger, first, lw.settings) == "item_not_found"
            assert await code_of(lw, consignment.accept, appraiser, first, lw.settings) == "not_consignor"
            # Only during the appraiser's own live session.
            elsewhere = AppraisalIn(session_id=other_room, valuation_fen=50_000, grade="B")
            assert (
                await code_of(lw, consignment.appraise, appraiser, first, elsewhere, lw.settings)
                == "not_your_session"
            )
            # Not yet appraised: nothing to accept or decline.
            assert await code_of(lw, consignment.accept, consignor, first, lw.settings) == "not_appraised"
            assert await code_of(lw, consignment.decline, consignor, first) == "not_appraised"
            assert (await item_row(lw, first)).status == "submitted"

            for item in (first, second, third):
                await act(lw, consignment.appraise, appraiser, item, appraisal, lw.settings)
            # Declined: closed for good.
            assert (await act(lw, consignment.decline, consignor, first)).status == "declined"
            assert await code_of(lw, consignment.accept, consignor, first, lw.settings) == "not_appraised"
            assert (
                await code_of(lw, consignment.appraise, appraiser, first, appraisal, lw.settings)
                == "not_appraisable"
            )
            assert await code_of(lw, consignment.withdraw, consignor, first) == "closed"
            # Withdrawn before listing; withdrawn once listed (the product is unlisted).
            assert (await act(lw, consignment.withdraw, consignor, second)).status == "withdrawn"
            listed = await act(lw, consignment.accept, consignor, third, lw.settings)
            assert (
                await code_of(lw, consignment.feature, stranger, third, FeatureIn(room)) == "item_not_found"
            )
            assert (await act(lw, consignment.feature, appraiser, third, FeatureIn(room))).status == "listed"
            assert (await act(lw, consignment.withdraw, consignor, third)).status == "withdrawn"
            row = await item_row(lw, third)
            async with transaction(lw.sm) as s:
                sku = (await catalog.skus_for_sale(s, [row.sku_id]))[row.sku_id]
            assert (sku.on_sale, sku.stock) == (False, 0) and listed.product_id == row.product_id
            assert await code_of(lw, consignment.withdraw, consignor, third) == "closed"
            # A sold item cannot be withdrawn.
            fourth = await submit(lw, consignor, appraiser)
            await act(lw, consignment.appraise, appraiser, fourth, appraisal, lw.settings)
            await act(lw, consignment.accept, consignor, fourth, lw.settings)
            await buy_item(lw, room, fourth)
            assert await code_of(lw, consignment.withdraw, consignor, fourth) == "already_sold"
            assert (await item_row(lw, fourth)).status == "listed"
            # Waivers: forward, not over, at most a year.
            now = utcnow()
            for frm, to in ((now, now - dt.timedelta(hours=1)), (now - dt.timedelta(days=2), now - dt.timedelta(days=1)),
                            (now, now + dt.timedelta(days=400))):  # fmt: skip
                code = await code_of(lw, consignment.add_waiver, appraiser, WaiverIn(frm, to), lw.settings)
                assert code in ("validation_error", "in_the_past"), code
            naive = WaiverIn(dt.datetime(2030, 1, 1), dt.datetime(2030, 2, 1))
            assert (
                await code_of(lw, consignment.add_waiver, appraiser, naive, lw.settings) == "validation_error"
            )
            assert await code_of(lw, consignment.add_waiver, consignor, WaiverIn(now, now + dt.timedelta(days=1)),
                                 lw.settings) == "role_required"  # fmt: skip
            assert (await act(lw, consignment.terms, appraiser.id, lw.settings)).waivers == []
        finally:
            await lw.w.engine.dispose()

    run(scenario())


async def buy_item(lw: LiveWorld, room: int, item_id: int) -> None:
    row = await item_row(lw, item_id)
    buyer = lw.w.buyers[0]
    async with transaction(lw.sm) as s:
        await live.buy(s, buyer, room, LiveOrderIn(row.sku_id, 1, lw.w.addresses[buyer.id]), f"b-{item_id}")


def test_an_item_of_an_inspected_category_goes_through_the_qc_warehouse(db_url: str, tmp_path: Path) -> None:
    """A consigned jade bangle is an ordinary product of an inspected category: its order line says
    so, so it ships seller → QC warehouse → buyer like any other (docs/inspection.md)."""

    async def scenario() -> None:
        lw = await live_world(db_url, tmp_path)
        try:
            appraiser = await appraiser_of(lw)
            consignor = lw.w.buyers[1]
            async with transaction(lw.sm) as s:
                item = await consignment.submit(
                    s,
                    consignor,
                    ItemIn(appraiser.id, "和田玉手镯", await category(lw, "jade")),
                    [],
                    lw.settings,
                )
            room = await go_live(lw, appraiser, [])
            appraisal = AppraisalIn(session_id=room, valuation_fen=128_000, grade="A")
            await act(lw, consignment.appraise, appraiser, item.id, appraisal, lw.settings)
            await act(lw, consignment.accept, consignor, item.id, lw.settings)
            await buy_item(lw, room, item.id)
            [order] = await orders_of(lw)
            async with transaction(lw.sm) as s:
                lines = list(await s.scalars(select(OrderLine).where(OrderLine.order_id == order.id)))
            assert [line.requires_inspection for line in lines] == [True]
            assert (lines[0].source, lines[0].creator_id) == ("live_room", appraiser.id)
        finally:
            await lw.w.engine.dispose()

    run(scenario())


def test_a_running_waiver_is_shown_in_each_new_room(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        lw = await live_world(db_url, tmp_path)
        try:
            appraiser = await appraiser_of(lw)
            now = utcnow()
            # Not live: nothing to show yet; coming waivers are listed, not running.
            later = WaiverIn(now + dt.timedelta(days=10), now + dt.timedelta(days=11))
            await act(lw, consignment.add_waiver, appraiser, later, lw.settings)
            running = WaiverIn(now - dt.timedelta(minutes=1), now + dt.timedelta(days=2))
            terms = await act(lw, consignment.add_waiver, appraiser, running, lw.settings)
            assert [w.active for w in terms.waivers] == [True, False] and terms.fee_bp_now == 0
            hub = FakeHub()
            seen = await relay(lw, hub)
            assert hub.state == {}
            room = await go_live(lw, appraiser, [])
            async with transaction(lw.sm) as s:  # the app's live.session_started subscriber
                [row] = await s.scalars(
                    select(OutboxEvent).where(OutboxEvent.topic == "live.session_started")
                )
                await consignment.on_session_started(s, Event(row.id, row.topic, row.payload, row.created_at),
                                                     settings=lw.settings)  # fmt: skip
            await relay(lw, hub, seen)
            terms_state = hub.state[room]["consignment"]
            assert terms_state["fee_bp"] == 0 and terms_state["waived_until_text"]
        finally:
            await lw.w.engine.dispose()

    run(scenario())
