"""A small ASGI app for the end-to-end tests: the hub over Redis behind a Litestar WebSocket route,
with a trivial handler (the principal is the ``u`` query parameter). Run by uvicorn subprocesses:
``uvicorn tests.live.e2e_app:app --ws trustlive.live.wire:FastWebSocketProtocol``."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

from litestar import Litestar, WebSocket, get, post, websocket
from redis.asyncio import Redis

from trustlive.live.hub import Hub, HubConfig


class TrivialHandler:
    async def on_comment(self, room_id: int, principal: Any, text: str) -> dict[str, Any]:
        return {"id": os.urandom(6).hex(), "uid": 0, "u": principal, "x": text, "ts": 0}

    async def on_like(self, room_id: int, principal: Any, n: int) -> None:
        return None

    async def on_join(self, room_id: int, principal: Any) -> None:
        return None

    async def on_leave(self, room_id: int, principal: Any) -> None:
        return None


@contextlib.asynccontextmanager
async def lifespan(app: Litestar) -> AsyncIterator[None]:
    url = os.environ.get("LIVE_E2E_REDIS_URL")
    redis = Redis.from_url(url, decode_responses=True) if url else None
    config = HubConfig(
        tick_ms=int(os.environ.get("LIVE_E2E_TICK_MS", 30)),
        state_tick_ms=int(os.environ.get("LIVE_E2E_STATE_TICK_MS", 15)),
        hello_wait_s=0.5,
        slow_limit_s=float(os.environ.get("LIVE_E2E_SLOW_S", 10)),
    )
    hub = Hub(config, redis, bus_prefix=os.environ.get("LIVE_E2E_PREFIX", "live"))
    await hub.start()
    app.state.hub = hub
    try:
        yield
    finally:
        await hub.stop()
        if redis is not None:
            await redis.aclose()


@websocket("/live/{room:int}")
async def live(socket: WebSocket, room: int) -> None:
    principal = socket.query_params.get("u") or None
    await socket.app.state.hub.serve(socket, room, principal, TrivialHandler())


@post("/state/{room:int}", status_code=200)
async def set_state(room: int, data: dict[str, Any], request: Any) -> dict[str, Any]:
    hub: Hub = request.app.state.hub
    hub.set_state(room, data["key"], data["value"])
    if "purchase" in data:
        hub.purchase(room, data["purchase"])
    return {}


@post("/close/{room:int}", status_code=200)
async def close(room: int, request: Any) -> dict[str, Any]:
    await request.app.state.hub.close_room(room, message="that's all")
    return {}


@get("/stats/{room:int}")
async def stats(room: int, request: Any) -> dict[str, Any]:
    hub: Hub = request.app.state.hub
    return hub.stats(room)


@post("/load/{room:int}", status_code=200)
async def load(room: int, rate: int, seconds: float, request: Any) -> dict[str, Any]:
    """Feed the room ``rate`` messages/s for ``seconds`` (60% comments, 20% purchases, 20% state),
    each stamped with its creation time in ms (latency probes)."""
    import asyncio
    import time

    hub: Hub = request.app.state.hub

    async def feed() -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        sent = 0
        while loop.time() - start < seconds:
            due = int((loop.time() - start) * rate)
            while sent < due:
                ts = int(time.time() * 1000)
                kind = sent % 5
                if kind < 3:
                    hub.comment(room, {"id": sent, "uid": sent, "u": "u", "x": "nice tea!", "ts": ts})
                elif kind == 3:
                    hub.purchase(room, {"id": sent, "u": "u", "title": "tea", "q": 1, "ts": ts})
                else:
                    hub.set_state(room, "stock", {"n": sent, "ts": ts})
                sent += 1
            await asyncio.sleep(0.002)

    request.app.state.feeder = asyncio.create_task(feed())
    return {}


app = Litestar([live, set_state, stats, load, close], lifespan=[lifespan])
