"""Several hubs (as several processes would be) sharing rooms through Redis: each message reaches
each viewer exactly once, history and snapshots come from Redis, the viewers count is the sum, and
a Redis outage degrades to local delivery and recovers."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.live.fakes import FastSocket, Handler, until
from tests.live.test_hub import join, merged
from trustlive.live.hub import Hub, HubConfig

pytestmark = pytest.mark.redis

CONFIG = HubConfig(tick_ms=20, state_tick_ms=10, hello_wait_s=0.01)


@pytest.fixture
def hub_redis_url(redis_url: str) -> Iterator[str]:
    """A Redis database of this xdist worker's own (10-14): the shared one (redis_url) is
    flushed by other workers' tests at any moment. Keys and channels also get a prefix per test
    (pub/sub channels are not per database)."""
    from redis import Redis

    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw2")
    db = 10 + int(worker.removeprefix("gw") or 0) % 5
    url = urlsplit(redis_url)._replace(path=f"/{db}").geturl()
    client = Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


def run(redis_url: str, n: int, body: Callable[..., Awaitable[None]], config: HubConfig = CONFIG) -> None:
    from redis.asyncio import Redis

    prefix = f"t{uuid.uuid4().hex[:8]}"

    async def main() -> None:
        clients = [Redis.from_url(redis_url, decode_responses=True) for _ in range(n)]
        hubs = [Hub(config, client, bus_prefix=prefix) for client in clients]
        for hub in hubs:
            await hub.start()
        try:
            await body(*hubs)
        finally:
            for hub in hubs:
                await hub.stop()
            for client in clients:
                await client.aclose()

    asyncio.run(main())


def ids(socket: Any, kind: str) -> list[Any]:
    return [item["id"] for f in socket.of("frame") for item in f.get(kind, [])]


def test_a_message_from_any_process_reaches_every_viewer_exactly_once(hub_redis_url: str) -> None:
    async def body(a: Hub, b: Hub, c: Hub) -> None:
        handler = Handler()
        va, _ = await join(a, handler, "a")
        vb, _ = await join(b, handler, "b", socket=FastSocket())
        vb2, _ = await join(b, handler, "b2")
        for i in range(10):
            a.purchase(1, {"id": i, "u": "x", "title": "tea", "q": 1, "ts": i})
            b.comment(1, {"id": 100 + i, "x": "hi"})
            c.set_state(1, "n", i)  # a process with no viewer of the room
            c.count(1, "likes", 1)
            await asyncio.sleep(0.003)
        va.say({"t": "comment", "x": "from a viewer", "ref": "r"})
        for s in (va, vb, vb2):
            await until(lambda s=s: len(ids(s, "p")) >= 10 and len(ids(s, "c")) >= 11
                        and merged(s.of("frame")).get("n") == 9
                        and any(f.get("k", {}).get("likes") == 10 for f in s.of("frame")))  # fmt: skip
        await asyncio.sleep(0.1)
        for s in (va, vb, vb2):
            assert sorted(ids(s, "p")) == list(range(10))  # once each
            assert sorted(i for i in ids(s, "c") if i >= 100) == list(range(100, 110))
            assert len(ids(s, "c")) == 11
            offsets = [f["o"] for f in s.of("frame")]
            assert all(isinstance(o, str) for o in offsets) and offsets == sorted(offsets, key=_key)
        assert ids(va, "p") == ids(vb, "p") == ids(vb2, "p")  # the same order on every process

    run(hub_redis_url, 3, body)


def _key(o: str) -> tuple[int, int]:
    ms, seq = o.split("-")
    return int(ms), int(seq)


def test_snapshot_and_resume_come_from_the_stream(hub_redis_url: str) -> None:
    async def body(a: Hub, b: Hub) -> None:
        handler = Handler()
        va, ta = await join(a, handler, "a")
        a.set_state(1, "pin", {"product": 3})
        a.purchase(1, {"id": 1, "u": "x", "title": "tea", "q": 1, "ts": 1})
        await until(lambda: ids(va, "p") == [1])
        last = va.of("frame")[-1]
        va.leave()
        await ta
        a.set_state(1, "pin", {"product": 4})
        a.purchase(1, {"id": 2, "u": "y", "title": "cup", "q": 2, "ts": 2})
        await asyncio.sleep(0.1)
        # a fresh process builds the snapshot from Redis
        vb, _ = await join(b, handler, "b")
        snap = vb.of("snapshot")[0]
        assert snap["s"]["pin"] == {"product": 4} and [p["id"] for p in snap["p"]] == [1, 2]
        assert snap["e"] == last["e"]
        # resume on the other process: only the missed entries
        hello = {"t": "hello", "resume": {"e": last["e"], "o": last["o"]}}
        vr, _ = await join(b, handler, "r", hello=hello)
        assert not vr.of("snapshot")
        assert merged(vr.of("frame")) == {"pin": {"product": 4}} and ids(vr, "p") == [2]
        assert vr.of("frame")[-1]["o"] == snap["o"]
        stale = {"t": "hello", "resume": {"e": last["e"], "o": "1-0"}}  # trimmed long ago
        vs, _ = await join(b, handler, "s", hello=stale)
        assert vs.of("snapshot")

    run(hub_redis_url, 2, body, HubConfig(tick_ms=20, state_tick_ms=10, hello_wait_s=0.5))


def test_history_is_served_from_redis_when_this_process_has_not_got_it(hub_redis_url: str) -> None:
    async def body(a: Hub, b: Hub) -> None:
        handler = Handler()
        va, _ = await join(a, handler, "a")
        a.set_state(1, "n", 1)
        await until(lambda: va.of("frame"))
        o = va.of("frame")[-1]["o"]
        a.set_state(1, "n", 2)
        await until(lambda: merged(va.of("frame")).get("n") == 2)
        vb, _ = await join(b, handler, "b")
        b.rooms[1].history.clear()  # as if b had joined after the entries
        fetched = await b.bus.history_since(b.rooms[1], o)
        assert fetched is not None and [e[3] for e in fetched] == [2]

    run(hub_redis_url, 2, body)


def test_the_viewers_count_is_the_sum_over_processes(hub_redis_url: str) -> None:
    async def body(a: Hub, b: Hub) -> None:
        handler = Handler()
        va, _ = await join(a, handler, "a")
        await join(b, handler, "b")
        await join(b, handler, "c")
        await a.housekeep_once(0)
        await b.housekeep_once(0)
        await a.housekeep_once(0)
        await until(lambda: merged(va.of("frame")).get("viewers") == 3)
        assert b.snapshot_state(1)["viewers"] == 3

    run(hub_redis_url, 2, body)


def test_close_room_reaches_viewers_of_every_process(hub_redis_url: str) -> None:
    async def body(a: Hub, b: Hub) -> None:
        handler = Handler()
        va, ta = await join(a, handler, "a")
        vb, tb = await join(b, handler, "b", socket=FastSocket())
        await a.close_room(1, message="over")
        await asyncio.wait_for(asyncio.gather(ta, tb), 3)
        assert va.of("bye")[0]["code"] == vb.of("bye")[0]["code"] == "ended"

    run(hub_redis_url, 2, body)


# --- Redis going away -------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    def __init__(self, port: int) -> None:
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--save", "", "--appendonly", "no", "--bind", "127.0.0.1"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        end = time.monotonic() + 5
        while time.monotonic() < end:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(5)
            self.proc = None


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    if not (shutil.which("redis-server") or os.path.exists("/usr/bin/redis-server")):
        pytest.skip("redis-server not installed")
    server = RedisServer(_free_port())
    server.start()
    yield server
    server.stop()


def test_redis_going_away_degrades_to_local_delivery_and_recovers(own_redis: RedisServer) -> None:
    url = f"redis://127.0.0.1:{own_redis.port}/0"

    async def body(a: Hub, b: Hub) -> None:
        for hub in (a, b):
            hub.bus.retry_s = 0.1
        handler = Handler()
        va, _ = await join(a, handler, "a")
        vb, _ = await join(b, handler, "b")
        a.set_state(1, "n", 1)
        await until(lambda: merged(vb.of("frame")).get("n") == 1)
        await asyncio.to_thread(own_redis.stop)
        a.set_state(1, "n", 2)  # Redis is gone: a's own viewer still gets it
        a.purchase(1, {"id": 7, "u": "x", "title": "tea", "q": 1, "ts": 1})
        await until(lambda: merged(va.of("frame")).get("n") == 2 and ids(va, "p") == [7], within=5)
        assert a.bus.degraded
        await asyncio.to_thread(own_redis.start)
        a.set_state(1, "n", 3)
        await until(lambda: not a.bus.degraded, within=5)
        await until(lambda: len(va.of("snapshot")) >= 2, within=5)  # recovered: fresh snapshot
        await until(lambda: not b.bus.degraded or b.bus.pubsub is not None, within=5)
        await asyncio.sleep(0.3)
        a.set_state(1, "n", 4)
        a.purchase(1, {"id": 8, "u": "x", "title": "tea", "q": 1, "ts": 1})
        for s in (va, vb):
            await until(lambda s=s: merged(s.of("frame")).get("n") == 4 and 8 in ids(s, "p"), within=5)
            assert ids(s, "p").count(8) == 1

    run(url, 2, body)


def test_a_process_follows_a_room_only_while_it_has_viewers_of_it(hub_redis_url: str) -> None:
    async def body(a: Hub, b: Hub) -> None:
        handler = Handler()
        va, ta = await join(a, handler, "a")
        vb, _ = await join(b, handler, "b")
        channel = a.bus.channel(1)
        assert (await a.bus.redis.pubsub_numsub(channel))[0][1] == 2
        va.leave()
        await ta
        a.rooms[1].empty_since -= 5  # the grace second has passed
        await a.housekeep_once(0)
        assert 1 not in a.rooms and channel not in a.bus.channels
        assert (await a.bus.redis.pubsub_numsub(channel))[0][1] == 1
        b.set_state(1, "n", 1)  # a no longer follows the room...
        await until(lambda: merged(vb.of("frame")).get("n") == 1)
        vc, _ = await join(a, handler, "c")  # ...until a viewer comes back: state read from Redis
        assert vc.of("snapshot")[0]["s"]["n"] == 1
        b.set_state(1, "n", 2)
        await until(lambda: merged(vc.of("frame")).get("n") == 2)

    run(hub_redis_url, 2, body)


def test_a_message_that_cannot_be_encoded_is_dropped_without_degrading(hub_redis_url: str) -> None:
    async def body(a: Hub, b: Hub) -> None:
        va, _ = await join(b, Handler(), "a")
        a.set_state(1, "bad", object())
        await asyncio.sleep(0.05)
        a.set_state(1, "n", 1)
        await until(lambda: merged(va.of("frame")).get("n") == 1)
        assert not a.bus.degraded and "bad" not in merged(va.of("frame"))

    run(hub_redis_url, 2, body)
