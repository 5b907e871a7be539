"""The hub's private frames (``send_private``: the returning-customer card), ``kick_user``, and
local rooms dropped once nobody follows them or their session is over; with and without Redis."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from tests.live.fakes import FakeSocket, FastSocket, Handler, until
from tests.live.test_bus_redis import hub_redis_url  # noqa: F401  (fixture)
from tests.live.test_bus_redis import run as run_redis
from tests.live.test_hub import join
from tests.live.test_hub import run as run_local
from trustlive.live.hub import Hub

CREATOR, BUYER, OTHER = SimpleNamespace(id=1), SimpleNamespace(id=2), SimpleNamespace(id=3)
CARD = {"t": "card", "user_id": 2, "name": "王芳", "orders": 3}


def test_a_private_frame_reaches_only_its_users_locally() -> None:
    async def body(hub: Hub, handler: Handler) -> None:
        creator, _ = await join(hub, handler, CREATOR)
        console, _ = await join(hub, handler, CREATOR, socket=FastSocket())  # a second tab
        buyer, _ = await join(hub, handler, BUYER)
        anonymous, _ = await join(hub, handler, None)
        hub.send_private(1, [CREATOR.id], CARD)
        await until(lambda: creator.of("card") and console.of("card"))
        await asyncio.sleep(0.05)
        assert creator.of("card") == console.of("card") == [CARD]
        assert buyer.of("card") == anonymous.of("card") == []
        assert "card" not in str(hub.snapshot_state(1))  # not state, not history
        hub.send_private(99, [CREATOR.id], CARD)  # a room nobody is in: nothing, no room made
        assert 99 not in hub.rooms
        with pytest.raises(ValueError):
            hub.send_private(1, [CREATOR.id], {"t": "frame"})

    run_local(body)


def test_kick_user_closes_only_that_users_connections() -> None:
    async def body(hub: Hub, handler: Handler) -> None:
        a, ta = await join(hub, handler, BUYER)
        b, tb = await join(hub, handler, BUYER, socket=FastSocket())
        other, _ = await join(hub, handler, OTHER)
        assert hub.kick_user(1, BUYER.id, "banned", "you are banned from this room") == 2
        await asyncio.wait_for(asyncio.gather(ta, tb), 3)
        assert a.of("bye")[0]["code"] == b.of("bye")[0]["code"] == "banned"
        assert other.of("bye") == [] and hub.viewer_count(1) == 1
        assert hub.kick_user(1, 42, "banned", "x") == 0 and hub.kick_user(7, 1, "banned", "x") == 0

    run_local(body)


def test_local_rooms_are_dropped_when_idle_or_over() -> None:
    async def body(hub: Hub, handler: Handler) -> None:
        dropped: list[int] = []
        hub.on_room_dropped.append(dropped.append)
        hub.set_state(5, "pin", {"p": 1})  # a room nobody watches (a pin, no viewer yet)
        hub.idle_room_s = 0.05
        await asyncio.sleep(0.1)
        await hub.housekeep_once(0.0)
        assert 5 not in hub.rooms and dropped == [5]
        # A watched room whose session ended elsewhere (the sweeper, another process):
        viewer, task = await join(hub, handler, BUYER, room=6)
        asked: list[list[int]] = []

        async def over(room_ids: list[int]) -> list[int]:
            asked.append(room_ids)
            return [6]

        hub.room_check = over
        assert await hub.check_rooms() == [6]
        await asyncio.wait_for(task, 3)
        assert viewer.of("bye")[0]["code"] == "ended" and 6 not in hub.rooms and asked == [[6]]
        assert dropped == [5, 6]

    run_local(body)


def test_a_private_frame_crosses_processes_exactly_once(hub_redis_url: str) -> None:  # noqa: F811
    async def body(a: Hub, b: Hub, c: Hub) -> None:
        handler = Handler()
        on_a, _ = await join(a, handler, CREATOR)
        on_b, _ = await join(b, handler, CREATOR, socket=FastSocket())
        buyer_b, _ = await join(b, handler, BUYER)
        c.send_private(1, [CREATOR.id], CARD)  # from a process with no viewer of the room
        await until(lambda: on_a.of("card") and on_b.of("card"))
        await asyncio.sleep(0.2)
        assert on_a.of("card") == on_b.of("card") == [CARD]
        assert buyer_b.of("card") == []

    run_redis(hub_redis_url, 3, body)


def test_the_asgi_path_gets_private_frames_too() -> None:
    async def body(hub: Hub, handler: Handler) -> None:
        socket, _ = await join(hub, handler, CREATOR, socket=FakeSocket())
        hub.send_private(1, [1], {"t": "costream_invite", "costream": {"id": 3}})
        await until(lambda: socket.of("costream_invite"))

    run_local(body)
