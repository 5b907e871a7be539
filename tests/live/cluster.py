"""Two processes of the real trustlive app (``trustlive serve``: uvicorn with the fast WebSocket
protocol) sharing one PostgreSQL database and one Redis database, with the outbox relay and
the sweepers running; plus small HTTP and WebSocket clients for the end-to-end tests in
``test_cluster_e2e.py``.

Isolation from the rest of the suite running at the same time:

- PostgreSQL: the worker's own migrated database (conftest's ``postgres_schema``), emptied first.
- Redis: a database number of its own (5-9, by xdist worker), away from the shared one (15, which
  other tests FLUSHDB at any moment) and ``hub_redis_url``'s (10-14). Pub/sub channels are not per
  database, and the app's room channels are ``live:{session id}:ch``: the live session ids start
  at a random high number so that no other test's room can share a channel with ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct-horse-9"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def own_redis_url(redis_url: str) -> str:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    db = 5 + int(worker.removeprefix("gw") or 0) % 5
    return urlsplit(redis_url)._replace(path=f"/{db}").geturl()


# --- seeding through the services --------------------------------------------------------------


@dataclass
class Seed:
    """What the world holds: ids and usernames (everybody's password is PASSWORD)."""

    products: list[int]  # [kids product, jade product] of two merchants' shops
    skus: list[int]  # their one SKU each (stock 50)
    jade_category: int
    creators: dict[str, int]  # username -> user id (role creator; "appraiser" is also a merchant)
    buyers: dict[str, int]  # username -> user id
    addresses: dict[str, int]  # buyer username -> address id


async def seed(url: str) -> Seed:
    from sqlalchemy import select

    from tests.orders.world import build
    from trustlive.accounts import service as accounts
    from trustlive.catalog import service as catalog
    from trustlive.catalog.models import Category
    from trustlive.db import transaction

    w = await build(url, buyers=6, stock=50)
    try:
        hashed = await accounts.hash_password(PASSWORD)
        creators = {"creator1": w.creator.id}
        async with transaction(w.sessionmaker) as s:
            for name in ("creator2", "creator3", "creator4", "creator5", "creator6"):
                user = await accounts.create_user(s, username=name, password_hash=hashed, roles=["creator"])
                creators[name] = user.id
            user = await accounts.create_user(
                s, username="appraiser", password_hash=hashed, roles=["creator", "merchant"]
            )
            creators["appraiser"] = user.id
            jade = await s.scalar(select(Category.id).where(Category.slug == "jade"))
            skus = await catalog.skus_for_sale(s, w.skus)
        return Seed(
            products=[skus[k].product_id for k in w.skus],
            skus=list(w.skus),
            jade_category=jade,
            creators=creators,
            buyers={b.username: b.id for b in w.buyers},
            addresses={b.username: w.addresses[b.id] for b in w.buyers},
        )
    finally:
        await w.engine.dispose()  # type: ignore[attr-defined]


async def bump_session_ids(url: str) -> int:
    """Start live session ids (the rooms) at a random high number; returns it."""
    from sqlalchemy import text

    from trustlive.db import create_engine

    start = random.randrange(10_000_000, 2_000_000_000)
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            seq = await conn.scalar(text("SELECT pg_get_serial_sequence('live_sessions', 'id')"))
            await conn.execute(text(f"ALTER SEQUENCE {seq} RESTART WITH {start}"))
    finally:
        await engine.dispose()
    return start


# --- the two server processes ------------------------------------------------------------------


@dataclass
class Cluster:
    ports: list[int]
    seed: Seed
    logs: list[Path]
    redis_url: str
    database_url: str = ""
    tokens: dict[str, str] = field(default_factory=dict)
    viewers: list[Viewer] = field(default_factory=list)

    async def relayed(self, topic: str, within: float = 8.0) -> None:
        """Wait until every ``topic`` event is relayed (its handlers ran in some process and it
        was published on Redis): what another process hears of a change made through one."""
        from sqlalchemy import func, select

        from trustlive.db import create_engine, create_sessionmaker, transaction
        from trustlive.events import OutboxEvent

        engine = create_engine(self.database_url)
        try:
            stmt = select(func.count()).where(OutboxEvent.topic == topic, OutboxEvent.published_at.is_(None))
            loop = asyncio.get_running_loop()
            end = loop.time() + within
            while True:
                async with transaction(create_sessionmaker(engine)) as session:
                    if not await session.scalar(stmt):
                        return
                if loop.time() > end:
                    raise AssertionError(f"{topic} events not relayed within {within} s")
                await asyncio.sleep(0.02)
        finally:
            await engine.dispose()

    def run(self, coro: Any) -> Any:
        """Run a scenario; whatever happens, close the viewers it left open (an open socket would
        hold up the servers' graceful shutdown)."""

        async def scenario() -> Any:
            try:
                return await coro
            finally:
                for viewer in self.viewers:
                    if not viewer.closed:
                        with contextlib.suppress(Exception):
                            await viewer.close()
                self.viewers.clear()

        return asyncio.run(scenario())

    @property
    def a(self) -> int:
        return self.ports[0]

    @property
    def b(self) -> int:
        return self.ports[1]

    def log_tail(self, chars: int = 4000) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-chars:]}" for p in self.logs)


def serve(
    database_url: str, redis_url: str, var_dir: Path, n: int = 2
) -> Iterator[tuple[list[int], list[Path]]]:
    """``n`` processes of ``trustlive serve`` on free ports; yields (ports, log files) once all
    answer /healthz, and stops them (SIGTERM: a clean lifespan shutdown) afterwards."""
    ports = [free_port() for _ in range(n)]
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src") + os.pathsep + str(ROOT),
        "TRUSTLIVE_DATABASE_URL": database_url,
        "TRUSTLIVE_REDIS_URL": redis_url,
        "TRUSTLIVE_SECRET_KEY": "cluster-e2e-secret-" + "k" * 32,  # both processes sign alike
        "TRUSTLIVE_VAR_DIR": str(var_dir),
        "TRUSTLIVE_COOKIE_SECURE": "false",
        "TRUSTLIVE_TASK_INTERVAL_SECONDS": "1",  # the sweepers run
    }
    logs = [var_dir / f"server-{i}.log" for i in range(n)]
    procs = []
    for port, log in zip(ports, logs, strict=True):
        with log.open("wb") as out:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "trustlive.cli", "serve", "--port", str(port)],
                    cwd=var_dir,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )  # fmt: skip
            )
    try:
        for port, proc in zip(ports, procs, strict=True):
            end = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None or time.monotonic() > end:
                    tails = "\n".join(p.read_text(errors="replace")[-3000:] for p in logs)
                    raise RuntimeError(f"trustlive serve on port {port} did not come up:\n{tails}")
                time.sleep(0.1)
        yield ports, logs
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


# --- HTTP --------------------------------------------------------------------------------------


class Api:
    """The JSON API of one process, as one user (or anonymous)."""

    def __init__(self, cluster: Cluster, port: int, user: str | None = None) -> None:
        self.base = f"http://127.0.0.1:{port}/api/v1"
        self.headers = {"Authorization": f"Bearer {cluster.tokens[user]}"} if user else {}

    async def call(self, method: str, path: str, body: Any = None, **headers: str) -> httpx.Response:
        async with httpx.AsyncClient(timeout=10) as client:
            return await client.request(
                method, self.base + path, json=body, headers={**self.headers, **headers}
            )

    async def ok(self, method: str, path: str, body: Any = None, **headers: str) -> Any:
        r = await self.call(method, path, body, **headers)
        assert r.status_code < 300, f"{method} {path}: {r.status_code} {r.text}"
        return r.json() if r.content else None


def login(port: int, username: str) -> str:
    r = httpx.post(
        f"http://127.0.0.1:{port}/api/v1/auth/token",
        json={"username": username, "password": PASSWORD}, timeout=10,
    )  # fmt: skip
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


# --- WebSocket viewers -------------------------------------------------------------------------


class Viewer:
    """A real WebSocket client of a room, recording every frame it receives."""

    def __init__(self, ws: ClientConnection, name: str) -> None:
        self.ws = ws
        self.name = name
        self.frames: list[dict[str, Any]] = []
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                self.frames.append(json.loads(message))
        except ConnectionClosed:
            pass

    @property
    def closed(self) -> bool:
        return self.task.done()

    def of(self, t: str) -> list[dict[str, Any]]:
        return [f for f in self.frames if f["t"] == t]

    def stream(self) -> list[dict[str, Any]]:
        """Snapshots and frames, in order."""
        return [f for f in self.frames if f["t"] in ("snapshot", "frame")]

    def comments(self) -> list[dict[str, Any]]:
        return [c for f in self.of("frame") for c in f.get("c", [])]

    def purchases(self) -> list[dict[str, Any]]:
        return [p for f in self.of("frame") for p in f.get("p", [])]

    def state(self) -> dict[str, Any]:
        """The P0 keys as the viewer's screen has them: latest value wins, snapshots reset."""
        out: dict[str, Any] = {}
        for f in self.stream():
            if f["t"] == "snapshot":
                out = dict(f.get("s", {}))
            else:
                out.update(f.get("s", {}))
        return out

    def counters(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in self.stream():
            out.update(f.get("k", {}))
        return out

    def position(self) -> dict[str, Any]:
        last = self.stream()[-1]
        return {"e": last["e"], "o": last["o"]}

    async def send(self, frame: Any) -> None:
        await self.ws.send(frame if isinstance(frame, str) else json.dumps(frame))

    async def close(self) -> None:
        await self.ws.close()
        await asyncio.wait_for(self.task, 5)


async def watch(
    cluster: Cluster, port: int, room: int, user: str | None = None, *, resume: dict[str, Any] | None = None
) -> Viewer:
    """Join a room on a process and wait for the first snapshot or frame (or a bye)."""
    headers = {"Authorization": f"Bearer {cluster.tokens[user]}"} if user else {}
    ws = await connect(
        f"ws://127.0.0.1:{port}/api/v1/live/sessions/{room}/ws", additional_headers=headers, compression=None
    )
    viewer = Viewer(ws, f"{user or 'anon'}@{port}")
    cluster.viewers.append(viewer)
    await viewer.send({"t": "hello", "resume": resume} if resume else {"t": "hello"})
    await until(lambda: viewer.stream() or viewer.of("bye") or viewer.closed)
    return viewer


async def until(predicate: Callable[[], Any], within: float = 8.0, what: str = "") -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + within
    while not predicate():
        if loop.time() > end:
            raise AssertionError(f"not met within {within} s: {what or predicate}")
        await asyncio.sleep(0.01)


def new_key() -> str:
    return uuid.uuid4().hex


def run(coro: Any) -> Any:
    return asyncio.run(coro)
