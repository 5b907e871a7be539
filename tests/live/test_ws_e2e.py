"""End to end over real WebSockets: two uvicorn processes (with the fast write path) sharing a
room through Redis, clients from the websockets library."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

websockets = pytest.importorskip("websockets")
from websockets.asyncio.client import connect  # noqa: E402

from tests.live.test_bus_redis import hub_redis_url  # noqa: E402, F401  (fixture)
from trustlive.live.wire import UVICORN_WS  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def servers(hub_redis_url: str) -> Iterator[list[int]]:  # noqa: F811  (the imported fixture)
    prefix = f"e{uuid.uuid4().hex[:8]}"
    yield from _serve(2, {"LIVE_E2E_REDIS_URL": hub_redis_url, "LIVE_E2E_PREFIX": prefix})


@pytest.fixture
def server() -> Iterator[int]:
    """One process, no Redis, a 1 s slow-viewer limit."""
    for ports in _serve(1, {"LIVE_E2E_SLOW_S": "1"}):
        yield ports[0]


def _serve(n: int, extra: dict[str, str]) -> Iterator[list[int]]:
    ports = [_free_port() for _ in range(n)]
    env = {**os.environ, **extra, "PYTHONPATH": str(ROOT)}
    if "LIVE_E2E_REDIS_URL" not in extra:
        env.pop("LIVE_E2E_REDIS_URL", None)
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "tests.live.e2e_app:app",
                "--port",
                str(port),
                "--ws",
                UVICORN_WS,
                "--ws-per-message-deflate",
                "false",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=env,
        )  # fmt: skip
        for port in ports
    ]
    try:
        for port in ports:
            end = time.monotonic() + 20
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/stats/0", timeout=1).read()
                    break
                except OSError:
                    if time.monotonic() > end:
                        raise
                    time.sleep(0.05)
        yield ports
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)


class Client:
    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.frames: list[dict[str, Any]] = []
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                self.frames.append(json.loads(message))
        except websockets.ConnectionClosed:
            pass

    def of(self, t: str) -> list[dict[str, Any]]:
        return [f for f in self.frames if f["t"] == t]

    def comments(self) -> list[str]:
        return [c["x"] for f in self.of("frame") for c in f.get("c", [])]

    def state(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in self.of("frame"):
            out.update(f.get("s", {}))
        return out

    async def send(self, frame: Any) -> None:
        await self.ws.send(frame if isinstance(frame, str) else json.dumps(frame))


async def open_client(port: int, user: str | None, hello: dict[str, Any] | None = None) -> Client:
    query = f"?u={user}" if user else ""
    ws = await connect(f"ws://127.0.0.1:{port}/live/1{query}", compression=None)
    client = Client(ws)
    await client.send(hello or {"t": "hello"})
    await until(lambda: client.of("snapshot") or client.of("frame"))
    return client


async def until(predicate: Any, within: float = 5.0) -> None:
    end = asyncio.get_running_loop().time() + within
    while not predicate():
        if asyncio.get_running_loop().time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def _post(port: int, body: dict[str, Any]) -> None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/state/1", data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"}, method="POST",
    )  # fmt: skip
    urllib.request.urlopen(request, timeout=5).read()


def _stats(port: int) -> dict[str, Any]:
    return json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/stats/1", timeout=5).read())


@pytest.mark.redis
def test_two_processes_share_a_room_over_real_websockets(servers: list[int]) -> None:
    p1, p2 = servers

    async def main() -> None:
        alice = await open_client(p1, "alice")
        bob = await open_client(p2, "bob")
        anon = await open_client(p2, None)
        everyone = (alice, bob, anon)
        assert _stats(p1)["fast"] == 1 and _stats(p2)["fast"] == 2  # frames written to the transport

        await alice.send({"t": "comment", "x": "hello\x07 room", "ref": "r1"})
        await until(lambda: all(c.comments() == ["hello room"] for c in everyone))
        assert alice.of("ack") == [{"t": "ack", "ref": "r1"}]

        await asyncio.to_thread(
            _post,
            p2,
            {
                "key": "pin",
                "value": {"product": 5},
                "purchase": {"id": 1, "u": "bo", "title": "tea", "q": 1, "ts": 0},
            },
        )
        await until(lambda: all(c.state().get("pin") == {"product": 5} for c in everyone))
        await bob.send({"t": "like", "n": 2})
        await until(
            lambda: all(any(f.get("k", {}).get("likes") == 2 for f in c.of("frame")) for c in everyone)
        )
        await anon.send({"t": "comment", "x": "me too", "ref": "r2"})
        await anon.send("{broken")
        await anon.send({"t": "ping"})
        await until(lambda: len(anon.of("error")) == 2 and anon.of("pong"))
        assert [e["code"] for e in anon.of("error")] == ["sign_in_required", "bad_frame"]

        # resume on the other process after missing a purchase: frames, not a snapshot
        last = anon.of("frame")[-1]
        await anon.ws.close()
        await asyncio.to_thread(
            _post,
            p2,
            {"key": "stock", "value": 3, "purchase": {"id": 2, "u": "cy", "title": "cup", "q": 1, "ts": 0}},
        )
        await until(lambda: alice.state().get("stock") == 3)
        back = await open_client(p1, None, {"t": "hello", "resume": {"e": last["e"], "o": last["o"]}})
        await until(lambda: back.state().get("stock") == 3)
        assert not back.of("snapshot")
        assert [p["id"] for f in back.of("frame") for p in f.get("p", [])] == [2]
        for c in (alice, bob):
            purchases = [p["id"] for f in c.of("frame") for p in f.get("p", [])]
            assert purchases == [1, 2]  # each exactly once
        # the session ends on one process: everybody, on both, gets bye and a clean close
        request = urllib.request.Request(f"http://127.0.0.1:{p2}/close/1", data=b"", method="POST")
        await asyncio.to_thread(lambda: urllib.request.urlopen(request, timeout=5).read())
        for c in (alice, bob, back):
            await asyncio.wait_for(c.task, 5)
            assert c.of("bye") == [{"t": "bye", "code": "ended", "message": "that's all"}]
            assert c.ws.close_code == 1000

    asyncio.run(main())


def _raw_viewer(port: int) -> socket.socket:
    """A viewer that says hello and then never reads, with a tiny receive buffer."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /live/1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert b" 101 " in head
    mask, payload = os.urandom(4), b'{"t":"hello"}'
    sock.sendall(
        bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    )
    return sock


def test_a_viewer_that_stops_reading_is_skipped_then_told_too_slow(server: int) -> None:
    """Over real sockets and the fast path: the kernel buffers fill, the hub skips the viewer (the
    transport's buffer is its queue), the fast viewer is not held up, and past the limit the slow
    one gets bye too_slow and a close frame at the end of what it had not read."""

    async def main() -> None:
        fast = await open_client(server, "fast")
        slow = await asyncio.to_thread(_raw_viewer, server)
        await until(lambda: _stats(server).get("viewers") == 2)
        big = "x" * 60_000
        skipped_seen = False
        lateness = []
        for i in range(400):
            sent = time.monotonic()
            await asyncio.to_thread(_post, server, {"key": "blob", "value": f"{big}{i}"})
            await until(lambda i=i: fast.state().get("blob", "").endswith(str(i)))
            lateness.append(time.monotonic() - sent)
            stats = _stats(server)
            skipped_seen = skipped_seen or stats["skipped"] > 0
            if stats["viewers"] == 1:
                break
        assert skipped_seen and _stats(server)["viewers"] == 1
        assert sorted(lateness)[int(len(lateness) * 0.95)] < 0.5  # the fast viewer kept up
        slow.settimeout(2)
        data = b""
        while chunk := await asyncio.to_thread(slow.recv, 1 << 20):
            data += chunk
        slow.close()
        tail = data[-120:]
        assert b'"t":"bye","code":"too_slow"' in tail and tail.endswith(b"\x88\x0a\x03\xe8too_slow")
        await fast.send({"t": "ping"})
        await until(lambda: fast.of("pong"))
        await fast.ws.close()

    asyncio.run(main())
