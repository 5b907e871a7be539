"""End to end across a cluster: two processes of the REAL app (``trustlive serve``, fast WebSocket
path) sharing PostgreSQL and Redis, with the outbox relay and the sweepers running, seeded through
the services and driven through the JSON API; viewers are real WebSocket clients (the
``websockets`` library) on BOTH processes, and each test asserts what every viewer receives.

Every message class (P0 state incl. viewers, sale, pin, costream and appraisal; P1 purchases; P2
comments; P3 likes), the resume rule across processes, moderation across processes, flash-sale
stock and its per-buyer limit, co-stream attribution, a consignment appraisal, and deleting
comments across processes. See ``cluster.py`` for how the servers are isolated from the rest of
the suite. About 20 s on an idle 2-core machine (servers started once per module).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("websockets")

from tests.conftest import REDIS_URL, _missing, _reachable, _wipe
from tests.live.cluster import (
    Api,
    Cluster,
    Viewer,
    bump_session_ids,
    login,
    new_key,
    own_redis_url,
    run,
    seed,
    serve,
    until,
    watch,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

QUIET_S = 0.6  # several ticks (50/100 ms): long enough for a wrong or duplicate frame to show up
NOTICE_S = 0.5  # a moderation change reaching the other process (relay + Redis notice)


@pytest.fixture(scope="module")
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The two servers over the worker's migrated PostgreSQL database (conftest's
    ``postgres_schema``, emptied first, as ``db_url`` does) and a Redis database of our own."""
    if not _reachable(REDIS_URL, 6379):
        _missing("redis", REDIS_URL)
    url = request.getfixturevalue("postgres_schema")  # skips when PostgreSQL is not there
    from redis import Redis

    redis_url = own_redis_url(REDIS_URL)
    redis = Redis.from_url(redis_url)
    redis.flushdb()
    var_dir = tmp_path_factory.mktemp("cluster")
    try:
        run(_wipe(url))
        run(bump_session_ids(url))
        world = run(seed(url))
        for ports, logs in serve(url, redis_url, var_dir):
            c = Cluster(ports, world, logs, redis_url, url)
            for username in [*world.creators, *world.buyers]:
                c.tokens[username] = login(c.a, username)
            yield c
    finally:
        redis.flushdb()
        redis.close()
        shutil.rmtree(var_dir, ignore_errors=True)


@pytest.fixture(autouse=True)
def _server_logs_on_failure(request: pytest.FixtureRequest, cluster: Cluster) -> Iterator[None]:
    failed = request.session.testsfailed
    yield
    if request.session.testsfailed > failed:  # pragma: no cover - diagnostics
        print(cluster.log_tail())


def soon() -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=30)).isoformat()


async def go_live(c: Cluster, creator: str, products: list[int], port: int | None = None) -> int:
    api = Api(c, port or c.a, creator)
    session = await api.ok(
        "POST",
        "/live/sessions",
        {"title": f"{creator}的直播", "scheduled_at": soon(), "product_ids": products},
    )
    await api.ok("POST", f"/live/sessions/{session['id']}/start")
    return session["id"]


async def end(c: Cluster, creator: str, room: int, *viewers: Viewer) -> None:
    """End the session through process A: every viewer, on either process, gets bye ``ended``."""
    await Api(c, c.a, creator).ok("POST", f"/live/sessions/{room}/end")
    for v in viewers:
        await asyncio.wait_for(v.task, 8)
        assert v.of("bye")[-1]["code"] == "ended", v.name


def left(v: Viewer) -> Any:
    return (v.state().get("sale") or {}).get("left")


def test_comments_likes_and_viewers_span_both_processes(cluster: Cluster) -> None:
    c = cluster

    async def main() -> None:
        room = await go_live(c, "creator1", c.seed.products)
        a0 = await watch(c, c.a, room, "buyer0000")
        b1 = await watch(c, c.b, room, "buyer0001")
        anon = await watch(c, c.b, room)
        everyone = (a0, b1, anon)
        # P0 viewers: the sum over both processes (each writes its count every second).
        await until(lambda: all(v.state().get("viewers") == 3 for v in everyone), what="viewers == 3")

        # P2: a comment sent on A reaches the viewers on A and on B exactly once, and back.
        await a0.send({"t": "comment", "x": "hello from A", "ref": "r1"})
        await until(lambda: a0.of("ack"), what="ack")
        assert a0.of("ack") == [{"t": "ack", "ref": "r1"}]
        await b1.send({"t": "comment", "x": "hi from B\u202e", "ref": "r2"})
        await until(lambda: all(len(v.comments()) == 2 for v in everyone), what="two comments")
        await asyncio.sleep(QUIET_S)
        for v in everyone:
            assert sorted(x["x"] for x in v.comments()) == ["hello from A", "hi from B"], v.name
            assert len({x["id"] for x in v.comments()}) == 2
        first = next(x for x in anon.comments() if x["x"] == "hello from A")
        assert (first["u"], first["uid"]) == ("buyer0000", c.seed.buyers["buyer0000"])
        assert next(x for x in a0.comments() if x["uid"] == c.seed.buyers["buyer0001"])["x"] == "hi from B"

        # P3: likes are room totals over both processes.
        await anon.send({"t": "like", "n": 3})
        await a0.send({"t": "like", "n": 2})
        await until(lambda: all(v.counters().get("likes") == 5 for v in everyone), what="likes == 5")
        assert all(v.counters().get("entries", 0) >= 3 for v in everyone)

        # One viewer leaves B: the count follows.
        await anon.close()
        await until(lambda: a0.state().get("viewers") == 2 and b1.state().get("viewers") == 2)

        # Both comments reached the replay once each (each process writes its own, ids never clash).
        api = Api(c, c.b)
        stored: list[dict[str, Any]] = []
        for _ in range(60):
            stored = (await api.ok("GET", f"/live/sessions/{room}/comments"))["items"]
            if len(stored) >= 2:
                break
            await asyncio.sleep(0.1)
        assert sorted((s["id"], s["text"]) for s in stored) == sorted(
            (x["id"], x["x"]) for x in a0.comments()
        )
        await end(c, "creator1", room, a0, b1)

    c.run(main())


def test_a_flash_sale_purchase_on_a_reaches_b_and_the_limit_holds(cluster: Cluster) -> None:
    c = cluster
    sku, product = c.seed.skus[0], c.seed.products[0]

    async def main() -> None:
        room = await go_live(c, "creator2", [product])
        creator = Api(c, c.a, "creator2")
        on_b = await watch(c, c.b, room)
        on_a = await watch(c, c.a, room, "buyer0003")
        pinned = await creator.ok("PUT", f"/live/sessions/{room}/pin", {"product_id": product})
        assert pinned
        await creator.ok(
            "POST", f"/live/sessions/{room}/flash-sale",
            {"sku_id": sku, "allocation": 5, "per_buyer_limit": 2, "seconds": 120},
        )  # fmt: skip
        await until(lambda: left(on_b) == 5 and left(on_a) == 5, what="sale left 5 on both")
        stock_before = on_b.state()["pin"]["skus"][0]["stock"]

        buyer = Api(c, c.a, "buyer0002")
        order = {"sku_id": sku, "quantity": 2, "address_id": c.seed.addresses["buyer0002"]}
        r = await buyer.call("POST", f"/live/sessions/{room}/orders", order, **{"Idempotency-Key": new_key()})
        assert r.status_code == 201, r.text
        await until(lambda: on_b.purchases() and left(on_b) == 3, what="P1 and left 3 on B")
        (bought,) = on_b.purchases()
        assert bought["q"] == 2 and bought["u"].endswith("**")  # the name shortened for privacy
        assert on_b.state()["pin"]["skus"][0]["stock"] == stock_before - 2
        await until(lambda: left(on_a) == 3 and len(on_a.purchases()) == 1)

        # Past the per-buyer limit: 409, and nobody's `left` moves.
        mark_a, mark_b = len(on_a.frames), len(on_b.frames)
        order["quantity"] = 1
        r = await buyer.call("POST", f"/live/sessions/{room}/orders", order, **{"Idempotency-Key": new_key()})
        assert r.status_code == 409 and r.json()["error"]["code"] == "limit_exceeded", r.text
        await asyncio.sleep(QUIET_S)
        for v, mark in ((on_a, mark_a), (on_b, mark_b)):
            later = v.frames[mark:]
            assert not [p for f in later for p in f.get("p", [])], v.name
            assert all(f.get("s", {}).get("sale", {"left": 3})["left"] == 3 for f in later), v.name
            assert left(v) == 3
        sale = await Api(c, c.b).ok("GET", f"/live/sessions/{room}/flash-sale")
        assert sale["left"] == 3
        await end(c, "creator2", room, on_a, on_b)

    c.run(main())


def test_moderation_made_on_a_holds_on_b(cluster: Cluster) -> None:
    c = cluster

    async def main() -> None:
        room = await go_live(c, "creator3", c.seed.products)
        creator = Api(c, c.a, "creator3")
        talker = await watch(c, c.b, room, "buyer0003")
        troll = await watch(c, c.b, room, "buyer0004")
        onlooker = await watch(c, c.a, room)
        # B's moderation cache for the room is loaded by a first comment.
        await talker.send({"t": "comment", "x": "first", "ref": "t1"})
        await until(lambda: talker.of("ack"), what="first comment acked")

        # A mute made through A refuses the user's next comment sent on B.
        await creator.ok(
            "POST", f"/live/sessions/{room}/mutes", {"user_id": c.seed.buyers["buyer0003"], "minutes": 10}
        )
        # The other process hears of it through the outbox relay and a Redis notice, a few ms
        # after the answer (a comment sent on B within that window is still accepted): wait for
        # the relay, then for the notice to cross Redis.
        await c.relayed("live.moderation_changed")
        await asyncio.sleep(NOTICE_S)
        await talker.send({"t": "comment", "x": "second", "ref": "t2"})
        await until(lambda: talker.of("error") or len(talker.of("ack")) > 1, what="answer to t2")
        assert [e["code"] for e in talker.of("error")] == ["muted"], talker.frames[-3:]
        assert talker.of("error")[0]["ref"] == "t2"
        assert len(talker.of("ack")) == 1 and not talker.closed  # refused, still connected
        await asyncio.sleep(QUIET_S)
        assert [x["x"] for x in onlooker.comments()] == ["first"]

        # A ban made through A kicks the user's socket on B; reconnecting (on either) is refused.
        await creator.ok("POST", f"/live/sessions/{room}/bans", {"user_id": c.seed.buyers["buyer0004"]})
        await asyncio.wait_for(troll.task, 8)
        assert troll.of("bye") and troll.of("bye")[-1]["code"] == "banned"
        for port in (c.b, c.a):
            again = await watch(c, port, room, "buyer0004")
            await asyncio.wait_for(again.task, 8)
            assert [f["t"] for f in again.frames] == ["bye"] and again.frames[0]["code"] == "banned"
        order = {"sku_id": c.seed.skus[0], "quantity": 1, "address_id": c.seed.addresses["buyer0004"]}
        r = await Api(c, c.b, "buyer0004").call(
            "POST", f"/live/sessions/{room}/orders", order, **{"Idempotency-Key": new_key()}
        )
        assert r.status_code == 403 and r.json()["error"]["code"] == "banned"
        assert not talker.closed and not onlooker.closed
        await end(c, "creator3", room, talker, onlooker)

    c.run(main())


def test_resume_on_the_other_process(cluster: Cluster) -> None:
    c = cluster
    sku, product = c.seed.skus[0], c.seed.products[0]

    async def main() -> None:
        room = await go_live(c, "creator4", [product])
        await Api(c, c.a, "creator4").ok("PUT", f"/live/sessions/{room}/pin", {"product_id": product})
        stay = await watch(c, c.b, room)  # B follows the room throughout
        gone = await watch(c, c.a, room)
        await until(lambda: gone.state().get("pin") and stay.state().get("pin"), what="pin")
        await asyncio.sleep(QUIET_S)
        where = gone.position()
        stock = gone.state()["pin"]["skus"][0]["stock"]
        await gone.close()

        order = {"sku_id": sku, "quantity": 1, "address_id": c.seed.addresses["buyer0005"]}
        r = await Api(c, c.a, "buyer0005").call(
            "POST", f"/live/sessions/{room}/orders", order, **{"Idempotency-Key": new_key()}
        )
        assert r.status_code == 201, r.text
        await until(lambda: stay.purchases(), what="purchase on B")
        (missed,) = stay.purchases()

        # Back on B with (epoch, offset): the missed P1 and P0 as frames, not a snapshot.
        back = await watch(c, c.b, room, resume=where)
        await until(lambda: back.purchases() and back.state().get("pin"), what="catch-up frames")
        assert not back.of("snapshot"), back.frames[:2]
        assert back.purchases() == [missed]
        assert back.state()["pin"]["skus"][0]["stock"] == stock - 1

        # The same position on A, which has had no viewer of the room since: served from Redis.
        again = await watch(c, c.a, room, resume=where)
        await until(lambda: again.purchases() and again.state().get("pin"), what="catch-up on A")
        assert not again.of("snapshot") and again.purchases() == [missed]
        await again.close()

        # A far-too-old offset (before anything the Stream holds), one from the future, another
        # epoch: a snapshot.
        answers = {}
        for case, resume in {
            "too old": {"e": where["e"], "o": "1-0"},
            "from the future": {"e": where["e"], "o": "99999999999999-0"},
            "another epoch": {"e": "not-the-epoch", "o": where["o"]},
        }.items():
            fresh = await watch(c, c.b, room, resume=resume)
            first = fresh.stream()[0]
            answers[case] = first["t"]
            if first["t"] == "snapshot":
                assert first["s"]["pin"]["skus"][0]["stock"] == stock - 1
                assert [p["id"] for p in first.get("p", [])][-1:] == [missed["id"]]
            await fresh.close()
        assert answers == dict.fromkeys(answers, "snapshot"), answers
        await end(c, "creator4", room, stay, back)

    c.run(main())


def test_costream_purchase_is_attributed_to_the_room_it_was_made_in(cluster: Cluster) -> None:
    c = cluster
    (kids, jade), (_, jade_sku) = c.seed.products, c.seed.skus

    async def main() -> None:
        room_x = await go_live(c, "creator5", [kids])
        room_y = await go_live(c, "creator6", [jade], port=c.b)
        in_x = await watch(c, c.b, room_x)
        in_y = await watch(c, c.a, room_y)
        link = await Api(c, c.a, "creator5").ok(
            "POST", f"/live/sessions/{room_x}/costream", {"partner_session_id": room_y, "share_bp": 1000}
        )
        partner = Api(c, c.b, "creator6")
        await partner.ok("POST", f"/live/costreams/{link['id']}/accept")
        x, y = c.seed.creators["creator5"], c.seed.creators["creator6"]
        await until(
            lambda: (
                (in_x.state().get("costream") or {}).get("id") == link["id"]
                and (in_y.state().get("costream") or {}).get("id") == link["id"]
            ),
            what="costream in both rooms",
        )
        assert [p["id"] for p in in_x.state()["costream"]["creators"]] == [x, y]
        assert [p["id"] for p in in_y.state()["costream"]["creators"]] == [y, x]

        # Y pins the jade and runs a sale on it (through B): room X shows the partner's card.
        await partner.ok("PUT", f"/live/sessions/{room_y}/pin", {"product_id": jade})
        await partner.ok(
            "POST", f"/live/sessions/{room_y}/flash-sale",
            {"sku_id": jade_sku, "allocation": 4, "per_buyer_limit": 2, "seconds": 120},
        )  # fmt: skip

        def partner_left(v: Viewer) -> Any:
            return ((v.state().get("costream") or {}).get("partner") or {}).get("sale", {}) or {}

        await until(lambda: partner_left(in_x).get("left") == 4, what="partner sale in X")
        assert in_x.state()["costream"]["partner"]["pin"]["product_id"] == jade

        # A viewer of X buys the partner's pinned product in X (on A): attributed to X's creator.
        buyer = Api(c, c.a, "buyer0000")
        order = {"sku_id": jade_sku, "quantity": 1, "address_id": c.seed.addresses["buyer0000"]}
        placed = await buyer.ok(
            "POST", f"/live/sessions/{room_x}/orders", order, **{"Idempotency-Key": new_key()}
        )
        assert placed["session_id"] == room_x and placed["costream_id"] == link["id"]
        (order_id,) = placed["order_ids"]
        got = await Api(c, c.b, "buyer0000").ok("GET", f"/orders/{order_id}")
        assert [(line["source"], line["creator_id"]) for line in got["lines"]] == [("live_room", x)]
        # Both rooms' state moves: X's partner card and Y's own sale show the same stock left.
        await until(lambda: partner_left(in_x).get("left") == 3, what="X's partner card left 3")
        await until(lambda: left(in_y) == 3, what="Y's sale left 3")
        assert in_x.purchases() and in_x.purchases()[-1]["q"] == 1
        await end(c, "creator5", room_x, in_x)
        await until(lambda: in_y.state().get("costream") is None, what="link ended with X's session")
        await end(c, "creator6", room_y, in_y)

    c.run(main())


def test_an_appraisal_recorded_on_a_is_shown_on_b(cluster: Cluster) -> None:
    c = cluster

    async def main() -> None:
        appraiser = Api(c, c.a, "appraiser")
        await appraiser.ok("POST", "/shops", {"name": "翡翠鉴定坊", "description": "鉴宝"})
        item = await Api(c, c.a, "buyer0001").ok(
            "POST", "/consignments",
            {"appraiser_id": c.seed.creators["appraiser"], "title": "冰种翡翠手镯",
             "category_id": c.seed.jade_category, "asking_fen": 90000},
        )  # fmt: skip
        room = await go_live(c, "appraiser", [])
        on_b = await watch(c, c.b, room)
        on_a = await watch(c, c.a, room)
        notes = "<script>alert(1)</script>水头足"
        await appraiser.ok(
            "POST", f"/consignments/{item['id']}/appraisal",
            {"session_id": room, "valuation_fen": 88000, "grade": "A货", "notes": notes},
        )  # fmt: skip
        await until(
            lambda: on_b.state().get("appraisal") and on_a.state().get("appraisal"), what="P0 appraisal"
        )
        shown = on_b.state()["appraisal"]
        assert (shown["item_id"], shown["valuation_fen"], shown["grade"]) == (item["id"], 88000, "A货")
        assert shown["notes"] == notes and shown["fee_bp"] == 300  # text, as typed
        assert on_a.state()["appraisal"] == shown
        # The consignor accepts on B: the item is listed and featured in the live room.
        listed = await Api(c, c.b, "buyer0001").ok("POST", f"/consignments/{item['id']}/accept")
        assert listed["status"] == "listed" and listed["product_id"]
        featured = await Api(c, c.b).ok("GET", f"/live/sessions/{room}/products")
        assert [p["id"] for p in featured["items"]] == [listed["product_id"]]
        await end(c, "appraiser", room, on_a, on_b)

    c.run(main())


def test_deleted_comments_add_up_whichever_process_deletes(cluster: Cluster) -> None:
    """P0 ``deleted`` is "the last 50 deleted ids of the room" (docs/live.md): a deletion made
    through B must not make the viewers forget one made through A."""
    c = cluster

    async def main() -> None:
        room = await go_live(c, "creator1", c.seed.products)
        on_a = await watch(c, c.a, room, "buyer0000")
        on_b = await watch(c, c.b, room, "buyer0001")
        await on_a.send({"t": "comment", "x": "spam one", "ref": "d1"})
        await on_b.send({"t": "comment", "x": "spam two", "ref": "d2"})
        await until(lambda: len(on_a.comments()) == 2 and len(on_b.comments()) == 2, what="two comments")
        ids = {x["x"]: x["id"] for x in on_a.comments()}
        api = Api(c, c.a)
        for _ in range(60):  # both written by their process's comment writer (about once a second)
            if len((await api.ok("GET", f"/live/sessions/{room}/comments"))["items"]) == 2:
                break
            await asyncio.sleep(0.1)
        await Api(c, c.a, "creator1").ok("DELETE", f"/live/sessions/{room}/comments/{ids['spam one']}")
        await until(lambda: all(v.state().get("deleted") == [ids["spam one"]] for v in (on_a, on_b)))
        await Api(c, c.b, "creator1").ok("DELETE", f"/live/sessions/{room}/comments/{ids['spam two']}")
        both = sorted(ids.values())
        try:
            await until(lambda: all(sorted(v.state().get("deleted", [])) == both for v in (on_a, on_b)), 3)
        except AssertionError:
            shown = {v.name: v.state().get("deleted") for v in (on_a, on_b)}
            raise AssertionError(f"P0 deleted should hold both {both}; viewers have {shown}") from None
        await end(c, "creator1", room, on_a, on_b)

    c.run(main())


def test_a_comment_made_on_b_can_be_deleted_through_a_at_once(cluster: Cluster) -> None:
    """A moderator sees a comment and deletes it at once, through whichever process their request
    reaches: the comment may still be in its own process's writer buffer (written about once a
    second), which must not make the deletion a 404."""
    c = cluster

    async def main() -> None:
        room = await go_live(c, "creator2", c.seed.products)
        on_b = await watch(c, c.b, room, "buyer0005")
        on_a = await watch(c, c.a, room)
        await on_b.send({"t": "comment", "x": "buy elsewhere!", "ref": "s1"})
        await until(lambda: on_a.comments(), what="the comment on A")
        (spam,) = on_a.comments()
        r = await Api(c, c.a, "creator2").call("DELETE", f"/live/sessions/{room}/comments/{spam['id']}")
        assert r.status_code == 204, r.text
        await until(lambda: on_a.state().get("deleted") == [spam["id"]], what="P0 deleted")
        await asyncio.sleep(1.5)  # written by now: hidden from the replay
        stored = (await Api(c, c.b).ok("GET", f"/live/sessions/{room}/comments"))["items"]
        assert stored == []
        await end(c, "creator2", room, on_a, on_b)

    c.run(main())
