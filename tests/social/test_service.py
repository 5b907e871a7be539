"""Follows through the services, on SQLite and PostgreSQL: following and unfollowing creators and
shops, who may not follow what, bad input changing nothing, the kept counts exact under
concurrency, the followed list and the functions other domains call."""

from __future__ import annotations

import asyncio

from tests.social.util import (
    close_shop,
    counts,
    events_of,
    follow,
    follow_rows,
    refused,
    unfollow,
    world,
)
from trustlive.db import transaction
from trustlive.social import service
from trustlive.social.schemas import FollowStateOut


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_follow_and_unfollow_a_creator_and_a_shop(db_url: str) -> None:
    async def scenario() -> None:
        sw = await world(db_url, buyers=2)
        w, buyer, other = sw.w, sw.w.buyers[0], sw.w.buyers[1]
        creator, shop = w.creator.id, w.shops[1]
        try:
            assert await follow(sw, buyer, "creator", creator) == FollowStateOut("creator", creator, 1, True)
            assert (await follow(sw, other, "creator", creator)).followers == 2
            assert (await follow(sw, buyer, "shop", shop)).followers == 1
            assert await follow_rows(sw) == [
                (buyer.id, "creator", creator), (other.id, "creator", creator), (buyer.id, "shop", shop)
            ]  # fmt: skip
            assert await counts(sw) == {("creator", creator): 2, ("shop", shop): 1}
            async with transaction(sw.sessionmaker) as s:
                assert await service.followed_ids(s, buyer.id) == {"creator": [creator], "shop": [shop]}
                assert await service.followed_ids(s, w.ops.id) == {"creator": [], "shop": []}
                assert await service.is_following(s, buyer.id, "shop", [w.shops[0], shop, 999]) == {shop}
                assert await service.is_following(s, other.id, "shop", [shop]) == set()
                assert await service.follower_counts(s, "creator", [creator, buyer.id, 2**63]) == {
                    creator: 2, buyer.id: 0, 2**63: 0
                }  # fmt: skip
                state = await service.follow_state(s, other, "creator", creator)
                assert (state.followers, state.following, state.is_self) == (2, True, False)
                assert (await service.follow_state(s, None, "shop", shop)).following is None

            assert await unfollow(sw, buyer, "creator", creator) == FollowStateOut(
                "creator", creator, 1, False
            )
            assert await unfollow(sw, buyer, "shop", shop) == FollowStateOut("shop", shop, 0, False)
            assert await follow_rows(sw) == [(other.id, "creator", creator)]
            assert await counts(sw) == {("creator", creator): 1, ("shop", shop): 0}
            followed = [
                (buyer.id, "creator", creator),
                (other.id, "creator", creator),
                (buyer.id, "shop", shop),
            ]
            assert [
                (e["user_id"], e["target_type"], e["target_id"])
                for e in await events_of(sw, "social.followed")
            ] == followed
            assert await events_of(sw, "social.unfollowed") == [
                {"user_id": buyer.id, "target_type": "creator", "target_id": creator},
                {"user_id": buyer.id, "target_type": "shop", "target_id": shop},
            ]
            # Following again after unfollowing is a new follow.
            assert (await follow(sw, buyer, "shop", shop)).followers == 1
        finally:
            await w.engine.dispose()  # type: ignore[attr-defined]

    run(scenario())


def test_refusals_change_nothing(db_url: str) -> None:
    async def scenario() -> None:
        sw = await world(db_url, buyers=1)
        w, buyer = sw.w, sw.w.buyers[0]
        try:
            await follow(sw, buyer, "creator", w.creator.id)
            before = (await follow_rows(sw), await counts(sw), await events_of(sw, "social.followed"))
            # Yourself: your own creator account, the shop you own, the shop you work for.
            await refused(follow(sw, w.creator, "creator", w.creator.id), 409, "cannot_follow_self")
            await refused(follow(sw, w.merchants[0], "shop", w.shops[0]), 409, "cannot_follow_self")
            await refused(follow(sw, sw.staff, "shop", w.shops[0]), 409, "cannot_follow_self")
            # Twice.
            await refused(follow(sw, buyer, "creator", w.creator.id), 409, "already_following")
            # Unknown or unavailable targets: a user who is not a creator, no such id, a closed shop.
            await refused(follow(sw, buyer, "creator", w.merchants[0].id), 404, "creator_not_found")
            await refused(follow(sw, buyer, "creator", 987_654), 404, "creator_not_found")
            await refused(follow(sw, buyer, "creator", 2**63), 404, "creator_not_found")
            await refused(follow(sw, buyer, "shop", 987_654), 404, "shop_not_found")
            await close_shop(sw, w.shops[1])
            await refused(follow(sw, buyer, "shop", w.shops[1]), 404, "shop_not_found")
            # Another kind of thing.
            for kind in ("user", "product", "", "Creator"):
                await refused(follow(sw, buyer, kind, w.creator.id), 422, "bad_target_type")
                await refused(unfollow(sw, buyer, kind, w.creator.id), 422, "bad_target_type")
            # Unfollowing what you do not follow; what does not exist.
            await refused(unfollow(sw, buyer, "shop", w.shops[0]), 404, "not_following")
            await refused(unfollow(sw, w.ops, "creator", w.creator.id), 404, "not_following")
            await refused(unfollow(sw, buyer, "creator", 987_654), 404, "creator_not_found")
            await refused(unfollow(sw, buyer, "shop", 0), 404, "shop_not_found")
            assert (await follow_rows(sw), await counts(sw), await events_of(sw, "social.followed")) == before
            assert await events_of(sw, "social.unfollowed") == []
            # The owner and the creator may follow each other.
            assert (await follow(sw, w.creator, "shop", w.shops[0])).followers == 1
            assert (await follow(sw, w.merchants[0], "creator", w.creator.id)).followers == 2
        finally:
            await w.engine.dispose()  # type: ignore[attr-defined]

    run(scenario())


def test_a_closed_shop_can_still_be_unfollowed(db_url: str) -> None:
    async def scenario() -> None:
        sw = await world(db_url, buyers=1)
        w, buyer = sw.w, sw.w.buyers[0]
        try:
            await follow(sw, buyer, "shop", w.shops[1])
            await close_shop(sw, w.shops[1])
            async with transaction(sw.sessionmaker) as s:
                page = await service.follows_page(s, buyer)
                assert [(f.target_id, f.available, f.followers) for f in page.items] == [
                    (w.shops[1], False, 1)
                ]
                await refused(service.follow_state(s, buyer, "shop", w.shops[1]), 404, "shop_not_found")
            assert (await unfollow(sw, buyer, "shop", w.shops[1])).followers == 0
            assert await follow_rows(sw) == [] and await counts(sw) == {("shop", w.shops[1]): 0}
        finally:
            await w.engine.dispose()  # type: ignore[attr-defined]

    run(scenario())


def test_concurrent_follows_by_one_user_make_one_row(db_url: str) -> None:
    """N follows of the same target by the same user at once (a double tap, two devices): the
    unique constraint lets exactly one in; the others are 409 and change nothing."""

    async def scenario() -> None:
        sw = await world(db_url, buyers=1)
        w, buyer, n = sw.w, sw.w.buyers[0], 8
        try:
            for kind, target in (("creator", w.creator.id), ("shop", w.shops[0])):
                results = await asyncio.gather(
                    *(follow(sw, buyer, kind, target) for _ in range(n)), return_exceptions=True
                )
                ok = [r for r in results if isinstance(r, FollowStateOut)]
                failed = [r for r in results if not isinstance(r, FollowStateOut)]
                assert len(ok) == 1 and ok[0].followers == 1, results
                assert [getattr(e, "code", e) for e in failed] == ["already_following"] * (n - 1)
                assert [r for r in await follow_rows(sw) if r[1] == kind] == [(buyer.id, kind, target)]
                assert (await counts(sw))[(kind, target)] == 1
                assert (
                    len([e for e in await events_of(sw, "social.followed") if e["target_type"] == kind]) == 1
                )
        finally:
            await w.engine.dispose()  # type: ignore[attr-defined]

    run(scenario())


def test_a_follow_racing_an_uncommitted_twin_gets_409(db_url: str) -> None:
    """The twin is inserted but not committed when the second follow arrives: the second waits on
    the unique index (PostgreSQL) or the write lock (SQLite), then refuses."""

    async def scenario() -> None:
        sw = await world(db_url, buyers=1)
        w, buyer = sw.w, sw.w.buyers[0]
        try:
            async with transaction(sw.sessionmaker) as first:
                await service.follow(first, buyer, "creator", w.creator.id)
                second = asyncio.create_task(follow(sw, buyer, "creator", w.creator.id))
                await asyncio.sleep(0.3)
                assert not second.done()
            await refused(second, 409, "already_following")
            assert await follow_rows(sw) == [(buyer.id, "creator", w.creator.id)]
            assert await counts(sw) == {("creator", w.creator.id): 1}
        finally:
            await w.engine.dispose()  # type: ignore[attr-defined]

    run(scenario())


def test_counts_stay_exact_when_many_follow_and_unfollow_at_once(db_url: str) -> None:
    """Different users following and unfollowing one target at the same moment, with duplicate
    taps among them: the kept count ends equal to the rows, never negative."""

    async def scenario() -> None:
        sw = await world(db_url, buyers=16)
        w, target = sw.w, sw.w.shops[0]
        early, late = w.buyers[:8], w.buyers[8:]
        try:
            for buyer in early:
                await follow(sw, buyer, "shop", target)
            moves = [unfollow(sw, b, "shop", target) for b in early[:6]]  # 6 leave
            moves += [follow(sw, b, "shop", target) for b in late]  # 8 join
            moves += [follow(sw, b, "shop", target) for b in late[:4]]  # 4 double taps: 409
            moves += [unfollow(sw, b, "shop", target) for b in early[:2]]  # 2 double taps: 404
            results = await asyncio.gather(*moves, return_exceptions=True)
            refusals = sorted(getattr(r, "code", "") for r in results if isinstance(r, Exception))
            assert refusals == ["already_following"] * 4 + ["not_following"] * 2, results
            rows = [r for r in await follow_rows(sw) if r[1] == "shop"]
            assert sorted(r[0] for r in rows) == sorted(b.id for b in [*early[6:], *late])
            assert (await counts(sw))[("shop", target)] == len(rows) == 10
            async with transaction(sw.sessionmaker) as s:
                assert await service.kept_and_counted(s, "shop", target) == (10, 10)
            # Everyone leaves at once: 0, not below.
            await asyncio.gather(*(unfollow(sw, b, "shop", target) for b in [*early[6:], *late]))
            assert (await counts(sw))[("shop", target)] == 0 and await follow_rows(sw) == []
        finally:
            await w.engine.dispose()  # type: ignore[attr-defined]

    run(scenario())


def test_followed_list_pages_newest_first(db_url: str) -> None:
    async def scenario() -> None:
        sw = await world(db_url, buyers=1, creators=3)
        w, buyer = sw.w, sw.w.buyers[0]
        c1, c2, c3 = (c.id for c in sw.creators)
        try:
            order = [
                ("creator", c1),
                ("shop", w.shops[0]),
                ("creator", c2),
                ("shop", w.shops[1]),
                ("creator", c3),
            ]
            for kind, target in order:
                await follow(sw, buyer, kind, target)
            await follow(sw, w.ops, "creator", c3)
            async with transaction(sw.sessionmaker) as s:
                seen, cursor = [], None
                while True:
                    page = await service.follows_page(s, buyer, cursor=cursor, limit=2)
                    seen += [(f.target_type, f.target_id) for f in page.items]
                    assert len(page.items) <= 2
                    if page.next_cursor is None:
                        break
                    cursor = page.next_cursor
                assert seen == order[::-1]
                first = (await service.follows_page(s, buyer, limit=1)).items[0]
                assert (first.name, first.url, first.followers, first.available) == (
                    "creator3",
                    f"/creators/{c3}",
                    2,
                    True,
                )
                shops = (await service.follows_page(s, buyer, target_type="shop")).items
                assert [f.target_id for f in shops] == [w.shops[1], w.shops[0]]
                assert shops[0].url.startswith("/shops/") and shops[0].name == "店铺2"
                everything = await service.follows_page(s, buyer, limit=100)
                assert len(everything.items) == 5 and everything.next_cursor is None
                assert (await service.followed_ids(s, buyer.id)) == {
                    "creator": [c3, c2, c1],
                    "shop": [w.shops[1], w.shops[0]],
                }
                for limit in (0, -1, 101, 10_000):
                    await refused(service.follows_page(s, buyer, limit=limit), 422, "bad_limit")
                for cursor in ("forged", "eyJiZWZvcmUiOi0xfQ", "eyJhZnRlciI6MX0", "x" * 300):
                    await refused(service.follows_page(s, buyer, cursor=cursor), 400, "bad_cursor")
                await refused(service.follows_page(s, buyer, target_type="user"), 422, "bad_target_type")
                await refused(service.follower_counts(s, "user", [1]), 422, "bad_target_type")
        finally:
            await w.engine.dispose()  # type: ignore[attr-defined]

    run(scenario())


def test_follow_many_skips_what_follow_would_refuse(db_url: str) -> None:
    async def scenario() -> None:
        sw = await world(db_url, buyers=3)
        w, (b0, b1, b2) = sw.w, sw.w.buyers
        try:
            await follow(sw, b0, "creator", w.creator.id)
            await close_shop(sw, w.shops[1])
            wanted = [
                (b0.id, "creator", w.creator.id),  # already there
                (b1.id, "creator", w.creator.id), (b1.id, "creator", w.creator.id),  # new, twice
                (b2.id, "creator", w.creator.id), (b2.id, "shop", w.shops[0]),  # new
                (w.creator.id, "creator", w.creator.id),  # oneself
                (sw.staff.id, "shop", w.shops[0]), (w.merchants[0].id, "shop", w.shops[0]),  # own shop
                (b1.id, "shop", w.shops[1]),  # closed
                (b1.id, "creator", w.merchants[1].id),  # not a creator
            ]  # fmt: skip
            async with transaction(sw.sessionmaker) as s:
                assert await service.follow_many(s, wanted) == 3
            assert await counts(sw) == {("creator", w.creator.id): 3, ("shop", w.shops[0]): 1}
            assert len(await follow_rows(sw)) == 4 and len(await events_of(sw, "social.followed")) == 4
            async with transaction(sw.sessionmaker) as s:
                assert await service.follow_many(s, wanted) == 0  # again: nothing new
                assert await service.follow_many(s, []) == 0
                await refused(service.follow_many(s, [(b0.id, "user", 1)]), 422, "bad_target_type")
            assert await counts(sw) == {("creator", w.creator.id): 3, ("shop", w.shops[0]): 1}
        finally:
            await w.engine.dispose()  # type: ignore[attr-defined]

    run(scenario())
