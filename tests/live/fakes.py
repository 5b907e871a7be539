"""Fake WebSocket connections for the hub's tests: an ASGI-style socket (the fallback path, whose
sends can be held to make a slow viewer) and a uvicorn-like transport (the fast path)."""

from __future__ import annotations

import asyncio
import json
import struct
from typing import Any

from trustlive.live import protocol as P
from trustlive.live import wire


def parse_wire(data: bytes) -> list[tuple[int, bytes]]:
    """Unmasked server frames -> [(opcode, payload)]."""
    frames, i = [], 0
    while i < len(data):
        opcode = data[i] & 0x0F
        n = data[i + 1] & 0x7F
        i += 2
        if n == 126:
            (n,) = struct.unpack("!H", data[i : i + 2])
            i += 2
        elif n == 127:
            (n,) = struct.unpack("!Q", data[i : i + 8])
            i += 8
        frames.append((opcode, data[i : i + n]))
        i += n
    return frames


class FakeSocket:
    """ASGI path. ``hold()`` makes sends block (a viewer that stopped reading)."""

    def __init__(self, scope: dict[str, Any] | None = None) -> None:
        self.scope = scope or {"type": "websocket", "extensions": {}}
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.frames: list[dict[str, Any]] = []
        self.close_code: int | None = None
        self.gate = asyncio.Event()
        self.gate.set()
        self.new = asyncio.Event()

    async def accept(self) -> None:
        return None

    async def receive(self) -> dict[str, Any]:
        return await self.inbox.get()

    async def send(self, message: dict[str, Any]) -> None:
        await self.gate.wait()
        if message["type"] == "websocket.send":
            self.frames.append(json.loads(message["text"]))
            self.new.set()
        elif message["type"] == "websocket.close":
            self.close_code = message.get("code", 1000)
            self.inbox.put_nowait({"type": "websocket.disconnect", "code": self.close_code})

    def hold(self) -> None:
        self.gate.clear()

    def release(self) -> None:
        self.gate.set()

    def say(self, frame: Any) -> None:
        text = frame if isinstance(frame, str) else json.dumps(frame)
        self.inbox.put_nowait({"type": "websocket.receive", "text": text})

    def leave(self) -> None:
        self.inbox.put_nowait({"type": "websocket.disconnect", "code": 1000})

    def of(self, t: str) -> list[dict[str, Any]]:
        return [f for f in self.frames if f["t"] == t]


class FakeTransport:
    def __init__(self, on_lost: Any) -> None:
        self.data = bytearray()
        self.buffered = 0  # what get_write_buffer_size reports (tests set it)
        self.closing = False
        self.aborted = False
        self.on_lost = on_lost

    def write(self, data: bytes) -> None:
        assert not self.closing, "write after close"
        self.data += data

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        if not self.closing:
            self.closing = True
            self.on_lost()

    def abort(self) -> None:
        self.aborted = True
        self.close()


class FakeProto:
    def __init__(self, socket: FastSocket) -> None:
        self.transport = FakeTransport(socket.leave)
        self.disconnected = False
        self.close_sent = False


class FastSocket(FakeSocket):
    """Fast path: the hub writes wire frames to ``proto.transport``."""

    def __init__(self) -> None:
        super().__init__({"type": "websocket", "extensions": {}})
        self.proto = FakeProto(self)
        self.scope["extensions"][wire.EXTENSION] = self.proto

    @property
    def wire_frames(self) -> list[dict[str, Any]]:
        out = []
        for opcode, payload in parse_wire(bytes(self.proto.transport.data)):
            if opcode == 1:
                out.append(json.loads(payload))
            elif opcode == 8:
                out.append({"t": "<close>", "code": struct.unpack("!H", payload[:2])[0]})
        return out

    def of(self, t: str) -> list[dict[str, Any]]:
        return [f for f in self.wire_frames + self.frames if f["t"] == t]


class Handler:
    """A trivial live domain: principal strings; "banned" is refused at the door."""

    def __init__(self) -> None:
        self.likes = 0
        self.joined: list[Any] = []
        self.left: list[Any] = []
        self.seq = 0

    async def on_comment(self, room_id: int, principal: Any, text: str) -> dict[str, Any]:
        if "spam" in text:
            raise P.Refused(P.BLOCKED_WORD, "blocked word")
        if principal == "muted":
            raise P.Refused(P.MUTED, "muted")
        if principal == "badguy":
            raise P.Refused(P.BANNED, "banned", close=True)
        self.seq += 1
        return {"id": self.seq, "uid": 1, "u": str(principal), "x": text, "ts": 0}

    async def on_like(self, room_id: int, principal: Any, n: int) -> None:
        self.likes += n

    async def on_join(self, room_id: int, principal: Any) -> None:
        if principal == "banned":
            raise P.Refused(P.BANNED, "banned", close=True)
        self.joined.append(principal)

    async def on_leave(self, room_id: int, principal: Any) -> None:
        self.left.append(principal)


async def until(predicate: Any, within: float = 2.0, step: float = 0.005) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + within
    while not predicate():
        if loop.time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(step)
