"""The feeds through the services, on SQLite and PostgreSQL: the follow feed's order and pages,
the discovery feed's pools and re-ranking, paging without repeats, strict cursors and limits,
reports only for served positions and counted once, grant budgets used exactly (also under
concurrency), the event-driven item index, collaborative filtering's neighbours, the rolling
window, and the dashboard's figures on a known world."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from tests.feed.world import World, build
from trustlive.db import transaction, utcnow
from trustlive.errors import DomainError
from trustlive.events import Event, OutboxEvent
from trustlive.feed import ranking, service, tasks
from trustlive.feed.models import (
    FeedEvent,
    FeedExposure,
    FeedInteraction,
    FeedNeighbour,
    FeedProvider,
    FeedServe,
)
from trustlive.feed.schemas import EventIn, EventsIn, FeedPageOut, GrantIn


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def hours(n: float) -> dt.timedelta:
    return dt.timedelta(hours=n)


async def refused(coro, status: int, code: str | None = None) -> DomainError:  # type: ignore[no-untyped-def]
    with pytest.raises(DomainError) as info:
        await coro
    assert info.value.status_code == status, info.value
    if code is not None:
        assert info.value.code == code, info.value
    return info.value


async def discovery(w: World, who=None, **kw) -> FeedPageOut:  # type: ignore[no-untyped-def]
    async with transaction(w.sessionmaker) as s:
        return await service.discovery_feed(s, who, kw.pop("config", ranking.DEFAULT), **kw)


async def following(w: World, who, **kw) -> FeedPageOut:  # type: ignore[no-untyped-def]
    async with transaction(w.sessionmaker) as s:
        return await service.follow_feed(s, who, **kw)


async def report(w: World, who, *events: tuple[str, int, str], now=None):  # type: ignore[no-untyped-def]
    async with transaction(w.sessionmaker) as s:
        data = EventsIn([EventIn(serve, position, kind) for serve, position, kind in events])  # type: ignore[arg-type]
        return await service.record_events(s, who, data, caller=f"test-{uuid.uuid4().hex}", now=now)


def keys(page: FeedPageOut) -> list[tuple[str, int]]:
    return [(i.kind, i.id) for i in page.items]


async def fresh_caches(w: World) -> None:
    """Forget the cached pools and grants (another worker would see the change after the TTLs)."""
    async with transaction(w.sessionmaker) as s:
        service.reset_caches(s)


# --- the follow feed ------------------------------------------------------------------------------


def test_follow_feed_puts_live_rooms_first_then_the_newest(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        w = await build(db_url, tmp_path, creators=3, merchants=2)
        try:
            now = utcnow()
            buyer = w.buyers[0]
            old_video = await w.video(0, at=now - hours(3))
            new_video = await w.video(2, at=now - hours(1))
            await w.video(1, at=now - hours(0.5))  # not followed
            product = await w.product(0, at=now - hours(2))
            await w.product(1, at=now - hours(0.2))  # not followed
            room = await w.go_live(2)
            await w.go_live(1)  # not followed
            for kind, target in (
                ("creator", w.creators[0].id),
                ("creator", w.creators[2].id),
                ("shop", w.shops[0]),
            ):
                await w.follow(0, kind, target)
            expected = [("live", room), ("video", new_video), ("product", product), ("video", old_video)]
            whole = await following(w, buyer)
            assert keys(whole) == expected and whole.next_cursor is None
            assert [i.position for i in whole.items] == [0, 1, 2, 3]
            assert whole.items[2].target_url == f"/p/{product}?source=follow_feed"
            assert (
                whole.items[0].target_url == f"/live/{room}"
                and whole.items[1].target_url == f"/videos/{new_video}"
            )
            # Two at a time: the same order, nothing twice, positions running on.
            seen, cursor, positions = [], None, []
            while True:
                page = await following(w, buyer, limit=2, cursor=cursor)
                seen += keys(page)
                positions += [i.position for i in page.items]
                cursor = page.next_cursor
                if cursor is None:
                    break
            assert seen == expected and positions == [0, 1, 2, 3]
            # Every page was recorded with its items, for this buyer, on the follow feed.
            serves = await w.serves()
            assert all(s.feed == "follow" and s.user_id == buyer.id for s in serves)
            assert len(serves) == 4  # the whole page, then three pages of two (the last one empty)
            # Nothing followed: an empty page, no cursor.
            empty = await following(w, w.buyers[1])
            assert empty.items == [] and empty.next_cursor is None
        finally:
            await w.close()

    run(scenario())


def test_follow_feed_orders_ties_and_pages_through_them(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        w = await build(db_url, tmp_path, creators=1, merchants=1)
        try:
            at = utcnow().replace(microsecond=123456) - hours(1)
            videos = [await w.video(0, at=at) for _ in range(3)]
            products = [await w.product(0, at=at) for _ in range(3)]
            await w.follow(0, "creator", w.creators[0].id)
            await w.follow(0, "shop", w.shops[0])
            # Same instant: videos before products, the higher id first within a kind.
            expected = [("video", v) for v in reversed(videos)] + [("product", p) for p in reversed(products)]
            for size in (1, 2, 4):
                seen, cursor = [], None
                while True:
                    page = await following(w, w.buyers[0], limit=size, cursor=cursor)
                    seen += keys(page)
                    if (cursor := page.next_cursor) is None:
                        break
                assert seen == expected, size
        finally:
            await w.close()

    run(scenario())


def test_follow_feed_impressions_become_interactions(db_url: str, tmp_path: Path) -> None:
    """The private domain's cards carry their feed item ids: what a buyer sees and opens there
    feeds collaborative filtering like the discovery feed's reports do."""

    async def scenario() -> None:
        w = await build(db_url, tmp_path, creators=1, merchants=1)
        try:
            video = await w.video(0)
            product = await w.product(0)
            await w.drain()
            await w.follow(0, "creator", w.creators[0].id)
            await w.follow(0, "shop", w.shops[0])
            buyer = w.buyers[0]
            page = await following(w, buyer)
            assert sorted(keys(page)) == [("product", product), ("video", video)]
            result = await report(w, buyer, *((page.serve_id, i.position, "impression") for i in page.items),
                                  (page.serve_id, page.items[0].position, "view"))  # fmt: skip
            assert result.recorded == 3
            indexed = {(i.kind, i.ref_id): i.id for i in await w.items()}
            async with transaction(w.sessionmaker) as s:
                rows = (await s.execute(select(FeedInteraction.item_id, FeedInteraction.kind,
                                               FeedInteraction.user_id))).all()  # fmt: skip
            first = indexed[(page.items[0].kind, page.items[0].id)]
            assert sorted(rows) == sorted([
                (indexed[("video", video)], "impression", buyer.id),
                (indexed[("product", product)], "impression", buyer.id),
                (first, "view", buyer.id),
            ])  # fmt: skip
            # Exposure is counted on the follow feed.
            assert {(c.feed, c.impressions) for c in await w.exposure()} == {("follow", 1)}
        finally:
            await w.close()

    run(scenario())


def _cursor(data: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def test_feeds_refuse_absurd_limits_and_forged_cursors(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        w = await build(db_url, tmp_path, creators=1, merchants=1)
        try:
            await w.video(0)
            await w.drain()
            buyer, other = w.buyers
            for limit in (0, -1, 51, 10**9, True):
                await refused(following(w, buyer, limit=limit), 422, "bad_limit")
                await refused(discovery(w, buyer, limit=limit), 422, "bad_limit")
            forged = [
                "not-a-cursor", "%%%", "x" * 300, _cursor([1, 2]), _cursor({"o": 0}), _cursor({"o": -1, "l": 0}),
                _cursor({"o": 0, "l": 51}), _cursor({"o": True, "l": 0}), _cursor({"o": 0, "t": "x", "k": 0, "i": 1}),
                _cursor({"o": 0, "t": 1, "k": 2, "i": 1}), _cursor({"o": 0, "t": 2**60, "k": 0, "i": 1}),
                _cursor({"o": 10**9, "l": 0}), _cursor({"s": "abc"}),
            ]  # fmt: skip
            for cursor in forged:
                await refused(following(w, buyer, cursor=cursor), 400, "bad_cursor")
            for cursor in [
                *forged[:5],
                _cursor({"s": "no-such-serve"}),
                _cursor({"s": 5}),
                _cursor({"o": 0, "l": 0}),
            ]:
                await refused(discovery(w, buyer, cursor=cursor), 400, "bad_cursor")
            assert await w.serves() == []  # nothing recorded for a refused request
            # A real cursor is the user's own: another user, the signed-out, the other feed, or
            # a day later, it is refused too.
            await discovery(w, buyer, limit=1)
            first = (await w.serves())[0].id
            mine = _cursor({"s": first})
            await refused(discovery(w, other, cursor=mine), 400, "bad_cursor")
            await refused(discovery(w, None, cursor=mine), 400, "bad_cursor")
            await refused(following(w, buyer, cursor=mine), 400, "bad_cursor")
            await refused(discovery(w, buyer, cursor=mine, now=utcnow() + hours(25)), 400, "bad_cursor")
            assert len(await w.serves()) == 1
        finally:
            await w.close()

    run(scenario())


# --- the discovery feed ---------------------------------------------------------------------------


def test_discovery_shows_fresh_items_new_creators_and_live_rooms(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        w = await build(db_url, tmp_path, creators=3, merchants=1)
        try:
            now = utcnow()
            # creator0 has posted for months; creator1 posted first an hour ago (new); creator2 is live.
            veteran = [await w.video(0, at=now - dt.timedelta(days=90 - i)) for i in range(3)]
            newcomer = await w.video(1, at=now - hours(1))
            product = await w.product(0, at=now - hours(2))
            room = await w.go_live(2)
            await w.drain()
            async with transaction(w.sessionmaker) as s:  # creator0's first item: 90 days ago
                rows = {(p.provider_type, p.provider_id): p for p in await s.scalars(select(FeedProvider))}
            assert rows[("creator", w.creators[0].id)].first_item_at < now - dt.timedelta(days=60)
            assert rows[("creator", w.creators[1].id)].active_items == 1
            for who in (None, w.buyers[0]):
                page = await discovery(w, who)
                got = keys(page)
                assert ("video", newcomer) in got and ("product", product) in got and ("live", room) in got
                by_key = {(i.kind, i.id): i for i in page.items}
                shown_veteran = [by_key[("video", v)] for v in veteran if ("video", v) in by_key]
                assert by_key[("video", newcomer)].new_creator and not any(
                    i.new_creator for i in shown_veteran
                )
                # At most two items of one creator on a page (the default diversity).
                assert sum(1 for k in got if k[0] == "video" and k[1] in veteran) == 2
                assert by_key[("product", product)].target_url == f"/p/{product}?source=discovery_feed"
                # The freshest and the new come before the months-old.
                assert got.index(("video", newcomer)) < min(
                    got.index(("video", v)) for v in veteran if ("video", v) in got
                )
            # A hidden video leaves the feed at once (its card is checked) and the index with the event.
            async with transaction(w.sessionmaker) as s:
                await s.execute(text("UPDATE videos SET status = 'hidden' WHERE id = :id"), {"id": newcomer})
            await fresh_caches(w)
            assert ("video", newcomer) not in keys(await discovery(w))
        finally:
            await w.close()

    run(scenario())


def test_relevance_priors_are_configuration(db_url: str, tmp_path: Path) -> None:
    """The freshness and live-room priors come from the feed's configuration: the same world
    puts the room or the fresh video first depending on them."""

    async def scenario() -> None:
        w = await build(db_url, tmp_path, creators=2, merchants=1)
        try:
            video = await w.video(0, at=utcnow() - hours(1))
            room = await w.go_live(1)
            await w.drain()
            rooms_first = ranking.load({"relevance": {"live": {"weight": 5.0}, "fresh": {"weight": 0.0}}})
            fresh_first = ranking.load({"relevance": {"live": {"weight": 0.0}, "fresh": {"weight": 5.0}}})
            for who in (None, w.buyers[0]):
                assert keys(await discovery(w, who, config=rooms_first))[:2] == [
                    ("live", room),
                    ("video", video),
                ]
                assert keys(await discovery(w, who, config=fresh_first))[:2] == [
                    ("video", video),
                    ("live", room),
                ]
        finally:
            await w.close()

    run(scenario())


def test_discovery_pages_never_repeat_and_number_positions_on(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        w = await build(db_url, tmp_path, creators=4, merchants=2)
        try:
            now = utcnow()
            for c in range(4):
                for k in range(4):
                    await w.video(c, at=now - hours(c + k / 10))
            for shop in range(2):
                for k in range(3):
                    await w.product(shop, at=now - hours(shop + k / 10))
            await w.drain()
            for who in (None, w.buyers[0]):
                seen, positions, cursor, pages = [], [], None, 0
                while True:
                    page = await discovery(w, who, limit=3, cursor=cursor)
                    pages += 1
                    assert len({(i.provider_type, i.provider_id) for i in page.items}) * 2 >= len(page.items)
                    seen += keys(page)
                    positions += [i.position for i in page.items]
                    if (cursor := page.next_cursor) is None:
                        break
                assert len(seen) == len(set(seen)) == 22  # every item once, nothing twice
                assert positions == list(range(22)) and pages >= 8
        finally:
            await w.close()

    run(scenario())


def test_reranking_moves_exposure_away_from_a_head_creator(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        w = await build(db_url, tmp_path, creators=3, merchants=1)
        try:
            now = utcnow()
            head = w.creators[0].id
            for k in range(4):  # the head's videos are the freshest: plain relevance puts them on top
                await w.video(0, at=now - dt.timedelta(minutes=k))
            for c in (1, 2):
                for k in range(2):
                    await w.video(c, at=now - hours(2 + k))
            await w.drain()
            first = await discovery(w, None, limit=2)
            assert [i.provider_id for i in first.items] == [head, head]
            # Real impressions of the head's items pile up in the window...
            for _ in range(30):
                page = await discovery(w, None, limit=6)
                mine = [
                    (page.serve_id, i.position, "impression") for i in page.items if i.provider_id == head
                ]
                await report(w, None, *mine)
            async with transaction(w.sessionmaker) as s:
                window = await s.scalar(
                    select(FeedProvider.window_impressions).where(FeedProvider.provider_id == head,
                                                                  FeedProvider.provider_type == "creator")
                )  # fmt: skip
            assert window == 60
            # ...and past the protected top (ranked by relevance alone), the re-ranker gives the
            # page to the others.
            protected = ranking.DEFAULT.raw["rerank"]["protect_top"]
            after = await discovery(w, None, limit=protected + 2)
            assert head not in [i.provider_id for i in after.items[protected:]]
            unprotected = ranking.load({"rerank": {"protect_top": 0}})
            after = await discovery(w, None, limit=2, config=unprotected)
            assert head not in [i.provider_id for i in after.items]
            # The head cap proper: past its share of the window, the head goes to the bottom.
            capped = ranking.load({"rerank": {"head_cap": {"weight": 1.0, "share": 0.3, "min_window": 10},
                                              "diminishing": {"weight": 0.0}, "floor": {"weight": 0.0},
                                              "protect_top": 0}})  # fmt: skip
            page = await discovery(w, None, limit=8, config=capped)
            assert [i.provider_id for i in page.items][-2:] == [head, head]
        finally:
            await w.close()

    run(scenario())


def test_collaborative_filtering_candidates_come_from_the_neighbours(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        w = await build(db_url, tmp_path, creators=3, merchants=1, buyers=4)
        try:
            now = utcnow()
            x = await w.video(0, at=now - dt.timedelta(days=20))
            y = await w.video(1, at=now - dt.timedelta(days=21))  # old: the pools alone rank it last
            for c in (0, 1, 2):
                await w.video(c, at=now - hours(1))
            await w.drain()
            async with transaction(w.sessionmaker) as s:
                items = {i.ref_id: i.id for i in await s.scalars(select(service.repo.FeedItem))}
                rows = [
                    {"user_id": b.id, "item_id": items[v], "kind": "like", "count": 1, "last_at": now}
                    for b in w.buyers[1:] for v in (x, y)
                ]  # fmt: skip
                rows.append({"user_id": w.buyers[0].id, "item_id": items[x], "kind": "purchase", "count": 1,
                             "last_at": now})  # fmt: skip
                await service.repo.add_interactions(s, rows)
            before = keys(await discovery(w, w.buyers[0], limit=10))
            assert before.index(("video", y)) >= 3  # after the three fresh videos
            built = await tasks.build_neighbours(w.sessionmaker, ranking.DEFAULT, force=True)
            assert built and built >= 2
            assert (await tasks.build_neighbours(w.sessionmaker, ranking.DEFAULT)) is None  # not due yet
            async with transaction(w.sessionmaker) as s:
                pairs = {(n.item_id, n.neighbour_id) for n in await s.scalars(select(FeedNeighbour))}
            assert (items[x], items[y]) in pairs and (items[y], items[x]) in pairs
            after = keys(await discovery(w, w.buyers[0], limit=10))
            assert after[0] == ("video", y)  # y goes with x, which this buyer bought
            # A neighbour row carries what the ranking needs of its item, copied at the build.
            async with transaction(w.sessionmaker) as s:
                row = await s.get(FeedNeighbour, (items[x], 0))
                item = await s.get(service.repo.FeedItem, items[y])
            assert row is not None and item is not None and row.neighbour_id == items[y]
            assert (row.kind, row.ref_id, row.provider_type, row.provider_id, row.published_at) == (
                "video", y, "creator", w.creators[1].id, item.published_at)  # fmt: skip
            # Hidden after the build (its event not yet indexed): still a neighbour, never shown.
            async with transaction(w.sessionmaker) as s:
                await s.execute(text("UPDATE videos SET status = 'hidden' WHERE id = :id"), {"id": y})
            await fresh_caches(w)
            hidden = keys(await discovery(w, w.buyers[0], limit=10))
            assert ("video", y) not in hidden and len(hidden) == len(after) - 1
        finally:
            await w.close()

    run(scenario())


def test_a_page_is_filled_past_items_hidden_since_they_were_ranked(db_url: str, tmp_path: Path) -> None:
    """Candidates come from the neighbours and pools as last built and read; the cards say what
    is still published. When more of the chosen are gone than the page's margin, it ranks again
    without them."""

    async def scenario() -> None:
        w = await build(db_url, tmp_path, creators=4, merchants=1)
        try:
            videos = [await w.video(c) for c in range(4) for _ in range(2)]
            await w.drain()
            assert len(keys(await discovery(w, None, limit=2))) == 2
            kept = videos[0]
            async with transaction(w.sessionmaker) as s:  # hidden, their events not yet indexed
                await s.execute(text("UPDATE videos SET status = 'hidden' WHERE id <> :id"), {"id": kept})
            await fresh_caches(w)
            assert keys(await discovery(w, None, limit=2)) == [("video", kept)]
        finally:
            await w.close()

    run(scenario())


def test_events_keep_the_index_and_record_likes_and_purchases(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        from trustlive.content import service as content
        from trustlive.orders import service as orders
        from trustlive.orders.schemas import AddressIn, ItemIn, OrderIn

        w = await build(db_url, tmp_path, creators=1, merchants=1)
        try:
            video = await w.video(0)
            product = await w.product(0)
            await w.drain()
            assert {(i.kind, i.ref_id, i.active) for i in await w.items()} == {
                ("video", video, True),
                ("product", product, True),
            }
            buyer = w.buyers[0]
            async with transaction(w.sessionmaker) as s:
                await content.like(s, buyer, video)
                address = await orders.add_address(
                    s,
                    buyer,
                    AddressIn(
                        recipient="王芳", phone="13800000000", region="浙江省杭州市西湖区", detail="1 号"
                    ),
                )  # type: ignore[arg-type]
                placed = await orders.place_order(
                    s, buyer, OrderIn(items=[ItemIn(sku_id=w.skus[product], quantity=1)], address_id=address.id),  # type: ignore[arg-type]
                    "feed-test-order",
                )  # fmt: skip
                order = placed.orders[0]
                await orders.mark_paid(s, order.id, order.total_fen, "feed-test")
                await content.hide_video(s, w.creators[0], video)
            await w.drain()
            async with transaction(w.sessionmaker) as s:  # a redelivery changes nothing
                for row in await s.scalars(select(OutboxEvent).where(OutboxEvent.topic.in_(service.TOPICS))):
                    await service.on_event(s, Event(row.id, row.topic, dict(row.payload), row.created_at))
            async with transaction(w.sessionmaker) as s:
                kinds = {(r.kind, r.count) for r in await s.scalars(select(FeedInteraction))}
                providers = {(p.provider_type, p.active_items) for p in await s.scalars(select(FeedProvider))}
            assert kinds == {("like", 1), ("purchase", 1)}
            assert {(i.kind, i.active) for i in await w.items()} == {("video", False), ("product", True)}
            assert providers == {("creator", 0), ("shop", 1)}
            # The backfill indexes what came before the feed listened, in steps, once.
            more = [await w.video(0) for _ in range(3)]
            async with transaction(w.sessionmaker) as s:
                await s.execute(text("DELETE FROM feed_items"))
                await s.execute(text("DELETE FROM feed_providers"))
            original = service.BACKFILL_STEP
            service.BACKFILL_STEP = 2  # two video ids and two products a step
            try:
                added = []
                for _ in range(4):
                    async with transaction(w.sessionmaker) as s:
                        added.append(await service.backfill(s))
            finally:
                service.BACKFILL_STEP = original
            assert sum(added) == 4 and added[-1] == 0  # the three new videos and the product
            assert sorted((i.kind, i.ref_id) for i in await w.items()) == sorted(
                [("product", product), *(("video", v) for v in more)]
            )
        finally:
            await w.close()

    run(scenario())


# --- impressions, views, clicks -------------------------------------------------------------------


def test_reports_are_accepted_only_for_served_positions_and_counted_once(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        w = await build(db_url, tmp_path, creators=2, merchants=1)
        try:
            await w.video(0)
            await w.video(1)
            await w.product(0)
            await w.drain()
            buyer, other = w.buyers
            page = await discovery(w, buyer)
            anon = await discovery(w, None)
            n = len(page.items)
            assert n == 3
            bad = [
                [("no-such-serve", 0, "impression")],
                [(page.serve_id, n, "impression")],  # past the page
                [(page.serve_id, 0, "impression"), (page.serve_id, 99, "click")],  # one bad: all refused
            ]
            for events in bad:
                await refused(report(w, buyer, *events), 422, "not_served")
            await refused(report(w, other, (page.serve_id, 0, "impression")), 422, "not_served")
            await refused(report(w, None, (page.serve_id, 0, "impression")), 422, "not_served")
            await refused(report(w, buyer, (anon.serve_id, 0, "impression")), 422, "not_served")
            await refused(report(w, buyer, (page.serve_id, 0, "impression"), now=utcnow() + hours(25)), 422,
                          "not_served")  # fmt: skip
            async with transaction(w.sessionmaker) as s:
                await refused(service.click(s, other, page.serve_id, 0, caller="x"), 422, "not_served")
            assert await w.events() == [] and await w.exposure() == []
            # Served positions: recorded once each, however often reported.
            first = await report(w, buyer, (page.serve_id, 0, "impression"), (page.serve_id, 0, "impression"),
                                 (page.serve_id, 1, "impression"), (page.serve_id, 1, "view"))  # fmt: skip
            assert (first.recorded, first.repeated) == (3, 1)
            again = await report(w, buyer, (page.serve_id, 0, "impression"), (page.serve_id, 1, "view"))
            assert (again.recorded, again.repeated) == (0, 2)
            async with transaction(w.sessionmaker) as s:
                target = await service.click(s, buyer, page.serve_id, 2, caller="x")
            async with transaction(w.sessionmaker) as s:
                assert await service.click(s, buyer, page.serve_id, 2, caller="x") == target
            item = page.items[2]
            assert target == item.target_url
            events = await w.events()
            assert sorted((e.position, e.kind) for e in events) == [(0, "impression"), (1, "impression"),
                                                                   (1, "view"), (2, "click")]  # fmt: skip
            assert all(e.user_id == buyer.id and e.feed == "discovery" for e in events)
            counters = {
                (c.provider_type, c.provider_id): (c.impressions, c.clicks) for c in await w.exposure()
            }
            assert sum(v[0] for v in counters.values()) == 2 and sum(v[1] for v in counters.values()) == 1
            assert counters[(item.provider_type, item.provider_id)][1] == 1
            async with transaction(w.sessionmaker) as s:
                interactions = await s.scalar(select(func.count()).select_from(FeedInteraction))
            assert interactions == 4  # 2 impressions, a view, a click: all the buyer's
            # The signed-out report their own pages.
            assert (await report(w, None, (anon.serve_id, 0, "impression"))).recorded == 1
        finally:
            await w.close()

    run(scenario())


# --- grants ------------------------------------------------------------------------------------------


async def _grant(w: World, provider_type: str, provider_id: int, budget: int, **kw):  # type: ignore[no-untyped-def]
    actor = kw.pop("actor", w.ops)
    async with transaction(w.sessionmaker) as s:
        data = GrantIn(provider_type=provider_type, provider_id=provider_id, budget=budget, reason="川流计划",  # type: ignore[arg-type]
                       ends_at=kw.pop("ends_at", utcnow() + dt.timedelta(days=7)), **kw)  # fmt: skip
        return await service.create_grant(s, actor, data)


def test_a_grant_boosts_its_provider_and_its_budget_is_used_exactly(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        w = await build(db_url, tmp_path, creators=3, merchants=1)
        try:
            now = utcnow()
            rewarded = w.creators[2].id
            for c in (0, 1):
                for k in range(2):
                    await w.video(c, at=now - dt.timedelta(days=3, hours=k))
            for k in range(2):
                await w.video(2, at=now - dt.timedelta(days=4, hours=k))  # older: last without the grant
            await w.drain()
            unprotected = ranking.load({"rerank": {"protect_top": 0}})  # the whole page re-ranked
            before = await discovery(w, None, limit=4, config=unprotected)
            assert rewarded not in [i.provider_id for i in before.items]
            grant = await _grant(w, "creator", rewarded, 3)
            assert (grant.status, grant.left) == ("running", 3)
            on_top = await discovery(w, None, limit=2, config=unprotected)
            assert [i.provider_id for i in on_top.items] == [rewarded, rewarded]
            boosted_pages = []
            for _ in range(3):
                page = await discovery(w, None, limit=6)
                got = [i for i in page.items if i.provider_id == rewarded]
                assert got and all(i.boosted for i in got)
                assert all(not i.boosted for i in page.items if i.provider_id != rewarded)
                boosted_pages.append(page)
            for page in boosted_pages:  # 6 impressions of its items: 3 use the budget
                await report(w, None, *[(page.serve_id, i.position, "impression") for i in page.items])
            stored = await w.grant(grant.id)
            assert (stored.used, stored.budget) == (3, 3)
            async with transaction(w.sessionmaker) as s:
                counted = await s.scalar(select(func.count()).where(FeedEvent.grant_id == grant.id))
            assert counted == 3
            # Spent: no more boost, and the follow feed never draws on a grant.
            await fresh_caches(w)
            page = await discovery(w, None, limit=4)
            assert not any(i.boosted for i in page.items)
            async with transaction(w.sessionmaker) as s:
                listed = await service.list_grants(s, w.ops, status="spent", limit=10)
                assert [g.id for g in listed] == [grant.id] and listed[0].used == 3
                assert await service.list_grants(s, w.ops, status="running", limit=10) == []
        finally:
            await w.close()

    run(scenario())


def test_concurrent_impressions_never_overspend_a_grant(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        w = await build(db_url, tmp_path, creators=1, merchants=1)
        try:
            await w.video(0)
            await w.drain()
            grant = await _grant(w, "creator", w.creators[0].id, 5)
            pages = [await discovery(w, None) for _ in range(12)]
            assert all(p.items and p.items[0].boosted for p in pages)

            async def one(page: FeedPageOut) -> int:
                return (await report(w, None, (page.serve_id, 0, "impression"))).recorded

            recorded = await asyncio.gather(*(one(p) for p in pages), *(one(p) for p in pages[:4]))
            assert sum(recorded) == 12  # each impression once, the replays nothing
            stored = await w.grant(grant.id)
            assert stored.used == 5
            async with transaction(w.sessionmaker) as s:
                assert await s.scalar(select(func.count()).where(FeedEvent.grant_id == grant.id)) == 5
                total = await s.scalar(select(func.sum(FeedExposure.impressions)))
                window = await s.scalar(
                    select(FeedProvider.window_impressions).where(
                        FeedProvider.provider_id == w.creators[0].id, FeedProvider.provider_type == "creator"
                    )
                )
            assert total == 12 and window == 12
        finally:
            await w.close()

    run(scenario())


def test_grants_are_for_ops_with_a_known_provider_and_a_sane_period(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        w = await build(db_url, tmp_path, creators=1, merchants=1)
        try:
            creator = w.creators[0].id
            await refused(_grant(w, "creator", creator, 10, actor=w.buyers[0]), 403, "ops_only")
            await refused(_grant(w, "creator", w.buyers[0].id, 10), 404, "provider_not_found")
            await refused(_grant(w, "shop", 999_999, 10), 404, "provider_not_found")
            await refused(_grant(w, "creator", creator, 0), 422)
            await refused(_grant(w, "creator", creator, 10, ends_at=utcnow() - hours(1)), 422, "bad_period")
            await refused(_grant(w, "creator", creator, 10, ends_at=utcnow() + dt.timedelta(days=400)), 422,
                          "bad_period")  # fmt: skip
            await refused(
                _grant(w, "creator", creator, 10, ends_at=dt.datetime(2099, 1, 1)), 422
            )  # no time zone
            async with transaction(w.sessionmaker) as s:
                assert await service.list_grants(s, w.ops, limit=10) == []
                await refused(service.list_grants(s, w.buyers[0], limit=10), 403, "ops_only")
                await refused(service.list_grants(s, w.ops, status="nope", limit=10), 422, "bad_status")
            shop_grant = await _grant(w, "shop", w.shops[0], 100)
            assert shop_grant.provider_name == "店铺0"
            async with transaction(w.sessionmaker) as s:
                revoked = await service.revoke_grant(s, w.ops, shop_grant.id)
                assert revoked.status == "revoked"
            async with transaction(w.sessionmaker) as s:
                await refused(service.revoke_grant(s, w.ops, shop_grant.id), 409, "grant_over")
                await refused(service.revoke_grant(s, w.ops, 123456), 404, "grant_not_found")
                await refused(service.revoke_grant(s, w.buyers[0], shop_grant.id), 403, "ops_only")
        finally:
            await w.close()

    run(scenario())


# --- the rolling window and the dashboard ----------------------------------------------------------


def test_the_window_forgets_hours_that_leave_it(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        w = await build(db_url, tmp_path, creators=1, merchants=1)
        try:
            await w.video(0)
            await w.drain()
            config = ranking.load({"window_hours": 2})
            noon = dt.datetime.combine(utcnow().date(), dt.time(4, 0), dt.UTC)  # 12:00 in Shanghai
            async with transaction(w.sessionmaker) as s:
                assert (
                    await service.advance_window(s, config, noon) == 0
                )  # first run: recomputed (nothing yet)
            page = await discovery(w, None, now=noon)
            await report(w, None, (page.serve_id, 0, "impression"), now=noon)

            async def window() -> int:
                async with transaction(w.sessionmaker) as s:
                    return await s.scalar(select(FeedProvider.window_impressions)) or 0

            assert await window() == 1
            async with transaction(w.sessionmaker) as s:
                assert await service.advance_window(s, config, noon + hours(1)) == 0  # still inside
            assert await window() == 1
            async with transaction(w.sessionmaker) as s:
                assert await service.advance_window(s, config, noon + hours(2)) == 1  # its hour left
            async with transaction(w.sessionmaker) as s:
                assert await service.advance_window(s, config, noon + hours(2)) == 0  # once only
            assert await window() == 0
            # A new day (Asia/Shanghai) recomputes from the counters, healing any drift.
            async with transaction(w.sessionmaker) as s:
                await s.execute(text("UPDATE feed_providers SET window_impressions = 7"))
            async with transaction(w.sessionmaker) as s:
                await service.advance_window(s, config, noon + hours(13))
            assert await window() == 0
        finally:
            await w.close()

    run(scenario())


def test_dashboard_figures_on_a_known_world(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        w = await build(db_url, tmp_path, creators=0, merchants=0)
        try:
            # Noon on 30 November 2026 in Shanghai; the days are 28, 29 and 30 November.
            now = dt.datetime(2026, 11, 30, 4, 0, tzinfo=dt.UTC)
            day = lambda d, h=12: dt.datetime(2026, 11, d, h, tzinfo=dt.timezone(hours(8)))  # noqa: E731
            september = dt.datetime(2026, 9, 1, tzinfo=dt.UTC)
            providers = [  # (type, id, first item, active items)
                ("creator", 1, september, 1), ("creator", 2, september, 1), ("creator", 3, day(20), 1),
                ("shop", 1, day(25), 2), ("creator", 4, day(29), 1),  # joins on the 29th
                ("creator", 5, september, 0),  # nothing published any more, no impression: left out
            ]  # fmt: skip
            impressions = {  # day -> provider -> impressions
                28: {("creator", 2): 10, ("creator", 3): 30, ("shop", 1): 60},
                29: {
                    ("creator", 1): 4,
                    ("creator", 2): 6,
                    ("creator", 3): 6,
                    ("shop", 1): 4,
                    ("creator", 4): 80,
                },
            }
            async with transaction(w.sessionmaker) as s:
                for t, i, first, active in providers:
                    await s.execute(
                        FeedProvider.__table__.insert().values(provider_type=t, provider_id=i, first_item_at=first,
                                                               active_items=active, window_impressions=0,
                                                               exposure_at=now)
                    )  # fmt: skip
                rows = [
                    {"hour": service._hour(day(d, h)), "feed": feed, "provider_type": t, "provider_id": i,
                     "impressions": n // 2 if feed == "discovery" else n - n // 2, "clicks": 0}
                    for d, counts in impressions.items() for (t, i), n in counts.items()
                    for h, feed in ((9, "discovery"), (23, "follow"))
                ]  # fmt: skip
                await service.repo.add_exposure(s, rows)
                out = await service.exposure_dashboard(s, w.ops, days=3, now=now)
                discovery_only = await service.exposure_dashboard(s, w.ops, days=3, feed="discovery", now=now)
                shops = await service.exposure_dashboard(s, w.ops, days=3, provider_type="shop", now=now)
                await refused(service.exposure_dashboard(s, w.ops, days=0, now=now), 422, "bad_days")
                await refused(service.exposure_dashboard(s, w.ops, feed="x", now=now), 422, "bad_feed")
                await refused(service.exposure_dashboard(s, w.buyers[0], now=now), 403, "ops_only")
            d28, d29, d30 = out.per_day
            assert [str(d.day) for d in out.per_day] == ["2026-11-28", "2026-11-29", "2026-11-30"]
            # 28th: four providers (creator 4 not yet), x = [0, 10, 30, 60].
            assert (d28.providers, d28.impressions) == (4, 100)
            assert d28.gini == pytest.approx(0.5, abs=5e-4)
            assert d28.bottom_half_share == pytest.approx(0.1) and d28.zero_share == pytest.approx(0.25)
            # New creators (first item within 30 days): creator 3 (20th) and shop 1 (25th): 90%.
            assert d28.new_share == pytest.approx(0.9)
            # 29th: five providers, x = [4, 4, 6, 6, 80]: G = 2*(4+8+18+24+400)/(5*100) - 6/5 = 0.616.
            assert (d29.providers, d29.impressions) == (5, 100)
            assert d29.gini == pytest.approx(0.616, abs=5e-4)
            assert d29.new_share == pytest.approx(0.9)  # creators 3, 4 and shop 1: 6 + 80 + 4
            assert (d30.impressions, d30.gini) == (0, 0.0)
            # The window: x = [4, 16, 36, 64, 80] over 200; G = 2*(4+32+108+256+400)/(5*200) - 1.2 = 0.4.
            assert out.impressions == 200 and out.providers == 5
            assert out.gini == pytest.approx(0.4, abs=5e-4)
            assert out.bottom_half_share == pytest.approx(0.1)  # (4 + 16) / 200
            assert out.lorenz.population[0] == 0.0 and out.lorenz.exposure[-1] == 1.0
            assert len(out.lorenz.population) == 101
            assert discovery_only.impressions == 100  # half of each day's counts came from each feed
            assert shops.providers == 1 and shops.impressions == 64 and shops.gini == 0.0
        finally:
            await w.close()

    run(scenario())


def test_pruning_forgets_old_pages_but_not_what_grants_account_for(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        w = await build(db_url, tmp_path, creators=1, merchants=1)
        try:
            await w.video(0)
            await w.drain()
            old = utcnow() - dt.timedelta(days=31)
            grant = await _grant(w, "creator", w.creators[0].id, 10, starts_at=old)
            kept = await discovery(w, None, now=old)
            gone = await discovery(w, None, now=old)
            await discovery(w, None)  # recent: stays
            await report(w, None, (kept.serve_id, 0, "impression"), now=old)
            await report(w, None, (gone.serve_id, 0, "click"), now=old)
            async with transaction(w.sessionmaker) as s:
                assert await service.prune(s) == 2  # the click, then its page
            assert {s.id for s in await w.serves()} >= {kept.serve_id}
            assert gone.serve_id not in {s.id for s in await w.serves()}
            assert [e.grant_id for e in await w.events()] == [grant.id]
            async with transaction(w.sessionmaker) as s:
                assert await s.scalar(select(func.count()).select_from(FeedServe)) == 2
        finally:
            await w.close()

    run(scenario())
