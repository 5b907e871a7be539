"""The live-room hub: per-room state, the tick that merges and samples messages into one frame per
room, and the fan-out of that frame to every viewer (docs/live-protocol.md).

Message classes: P0 state (``set_state``, latest value per key wins), P1 purchases (``purchase``),
P2 comments (``comment``), P3 counters (``count``). A room's loop builds ONE frame per tick from
what arrived, encodes it once and writes the same bytes to every viewer without awaiting any of
them: a viewer whose queue is full skips frames and gets a fresh snapshot once it has drained, and
one that lags longer than ``slow_limit_s`` is told ``bye`` (``too_slow``) and disconnected.

Without Redis everything is in this process. With a Redis client the messages go through
:class:`trustlive.live.bus.RedisBus` (one publish per room per tick, a Stream per room for the
P0/P1 history, the P0 state in a hash) and come back to every process, this one included.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from trustlive.live import protocol as P
from trustlive.live import wire

if TYPE_CHECKING:
    from trustlive.config import Settings
    from trustlive.live.bus import RedisBus

log = logging.getLogger("trustlive.live")

RECENT_PURCHASES = 5
CATCH_UP_CHUNK = 100
HOUSEKEEPING_S = 1.0
IDLE_ROOM_S = 60.0  # local mode: a room nobody watches is dropped after this long
ROOM_CHECK_S = 10.0  # how often the rooms of this process are checked against the sessions
PRIVATE_TYPES = frozenset({"card", "costream_invite"})  # server frames sent to some users only
FANOUT_SLICE = 500
# A viewer served through the fast path is "full" once its transport buffers more than this
# many bytes AND more than ``queue_frames`` frames of the current size.
MIN_QUEUE_BYTES = 64 * 1024
# The state tick is at least this many times the room's (smoothed) fan-out time, so the fan-out
# takes at most ~80 % of the loop, growing smoothly up to the comment tick as the room grows.
FANOUT_HEADROOM = 1.25
FANOUT_SMOOTHING = 0.3  # weight of the latest frame in the smoothed fan-out time


@dataclass(frozen=True)
class HubConfig:
    tick_ms: int = 100  # comments and counters: at most one frame per room per tick
    state_tick_ms: int = 50  # P0 state and P1 purchases go out on this shorter tick
    comment_cap: int = 20
    purchase_cap: int = 10
    queue_frames: int = 32
    slow_limit_s: float = 10.0
    history: int = 2000
    fanout: str = "batched"  # or "naive" (benchmark baseline only)
    hello_wait_s: float = 0.25
    max_bad_frames: int = P.MAX_BAD_FRAMES

    @classmethod
    def from_settings(cls, settings: Settings) -> HubConfig:
        return cls(
            tick_ms=settings.live_tick_ms,
            state_tick_ms=settings.live_state_tick_ms,
            comment_cap=settings.live_comment_cap,
            purchase_cap=settings.live_purchase_cap,
            queue_frames=settings.live_queue_frames,
            slow_limit_s=float(settings.live_slow_limit_s),
            history=settings.live_history,
            fanout=settings.live_fanout,
        )


class Handler(Protocol):
    """What the live domain gives :meth:`Hub.serve` (see docs/live-protocol.md)."""

    async def on_comment(self, room_id: int, principal: Any, text: str) -> dict[str, Any]: ...
    async def on_like(self, room_id: int, principal: Any, n: int) -> None: ...
    async def on_join(self, room_id: int, principal: Any) -> None: ...
    async def on_leave(self, room_id: int, principal: Any) -> None: ...


def now_ms() -> int:
    return int(time.time() * 1000)


def offset_key(offset: int | str | None) -> tuple[int, int]:
    """Order offsets: local integers, or Redis Stream ids ``"ms-seq"``."""
    if offset is None:
        return (-1, -1)
    if isinstance(offset, int):
        return (offset, 0)
    ms, _, seq = offset.partition("-")
    try:
        return (int(ms), int(seq or 0))
    except ValueError:
        return (-1, -1)


class Out:
    """A server frame encoded once: JSON payload, WebSocket wire bytes, text for the ASGI path."""

    __slots__ = ("_text", "_wire", "payload")

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self._wire: bytes | None = None
        self._text: str | None = None

    @property
    def wire(self) -> bytes:
        if self._wire is None:
            self._wire = wire.frame(self.payload)
        return self._wire

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = self.payload.decode()
        return self._text


PRIORITY_BADGES = frozenset({"creator", "moderator"})


def is_priority(item: dict[str, Any]) -> bool:
    return bool(item.get("pri")) or item.get("badge") in PRIORITY_BADGES


def sample_comments(items: list[dict[str, Any]], cap: int) -> list[dict[str, Any]]:
    """At most ``cap`` of ``items``, in arrival order: every priority item (``"pri": true`` or the
    creator's and moderators' badge) first, the rest an even spread over the window."""
    if len(items) <= cap:
        chosen = items
    else:
        pri = [i for i, item in enumerate(items) if is_priority(item)][:cap]
        rest = [i for i, item in enumerate(items) if not is_priority(item)]
        room = cap - len(pri)
        picked = pri
        if room > 0 and rest:
            step = len(rest) / room
            picked = pri + [rest[int(j * step)] for j in range(room)]
        chosen = [items[i] for i in sorted(picked)]
    return [{k: v for k, v in item.items() if k != "pri"} if "pri" in item else item for item in chosen]


class Viewer:
    """One connection in a room. ``deliver`` never awaits: it writes to the transport (fast path)
    or appends to a bounded queue that the connection's writer task drains (ASGI path)."""

    __slots__ = (
        "bad",
        "closed",
        "hub",
        "kicked",
        "lag_since",
        "principal",
        "proto",
        "queue",
        "ready",
        "room",
        "sending",
        "skipped",
        "socket",
        "stale",
        "task",
        "writer",
    )

    def __init__(self, hub: Hub, room: Room, socket: Any, principal: Any) -> None:
        self.hub = hub
        self.room = room
        self.socket = socket
        self.principal = principal
        self.proto = wire.fast_protocol(socket.scope) if hub.config.fanout != "naive" else None
        self.queue: deque[Out] = deque()
        self.ready = asyncio.Event()
        self.sending = False
        self.stale = False
        self.lag_since: float | None = None
        self.skipped = 0
        self.bad = 0
        self.closed = False
        self.kicked: tuple[str, str] | None = None
        self.task = asyncio.current_task()
        self.writer: asyncio.Task[None] | None = None
        if self.proto is None:
            self.writer = asyncio.create_task(self._write_loop())

    # --- backlog -------------------------------------------------------------------------------
    def drained(self) -> bool:
        if self.proto is not None:
            return self.proto.transport.get_write_buffer_size() == 0
        return not self.queue and not self.sending

    # --- sending -------------------------------------------------------------------------------
    def deliver(self, out: Out, now: float) -> None:
        """A room frame: skipped (and remembered) when this viewer is behind. The common case
        (fast path, not behind) is inlined: this runs once per viewer per frame."""
        if self.closed:
            return
        if not self.stale:
            proto = self.proto
            if proto is not None:
                transport = proto.transport
                buffered = transport.get_write_buffer_size()
                if buffered <= MIN_QUEUE_BYTES or buffered <= self.hub.config.queue_frames * len(out.payload):
                    if not (proto.disconnected or proto.close_sent or transport.is_closing()):
                        transport.write(out.wire)
                    return
            elif len(self.queue) < self.hub.config.queue_frames:
                self.queue.append(out)
                self.ready.set()
                return
            self.stale = True  # full: skip from now on, snapshot once drained
            self.lag_since = now
            self.skipped += 1
            return
        if self.drained():
            self.stale = False
            self.lag_since = None
            self.push(self.room.snapshot())
            return
        self.skipped += 1
        if self.lag_since is not None and now - self.lag_since > self.hub.config.slow_limit_s:
            self.kick(P.TOO_SLOW, "your connection is too slow for this room")

    def check(self, now: float) -> None:
        """Housekeeping for a quiet room: a drained stale viewer gets its snapshot, a stuck one
        past the limit is disconnected."""
        if self.closed or not self.stale:
            return
        if self.drained():
            self.stale = False
            self.lag_since = None
            self.push(self.room.snapshot())
        elif self.lag_since is not None and now - self.lag_since > self.hub.config.slow_limit_s:
            self.kick(P.TOO_SLOW, "your connection is too slow for this room")

    def push(self, out: Out) -> None:
        """Send regardless of the backlog (snapshots, acks, errors, pongs)."""
        if self.closed:
            return
        proto = self.proto
        if proto is not None:
            if proto.disconnected or proto.close_sent or proto.transport.is_closing():
                return
            proto.transport.write(out.wire)
        else:
            self.queue.append(out)
            self.ready.set()

    async def _write_loop(self) -> None:
        send = self.socket.send
        queue = self.queue
        try:
            while True:
                await self.ready.wait()
                self.ready.clear()
                while queue:
                    out = queue.popleft()
                    self.sending = True
                    await send({"type": "websocket.send", "text": out.text})
                    self.sending = False
        except asyncio.CancelledError:
            raise
        except Exception:  # the connection went away: the reader sees the disconnect
            self.closed = True
            self.room.viewers.discard(self)

    def kick(self, code: str, message: str) -> None:
        """``bye`` then close; the viewer leaves the room at once."""
        if self.closed:
            return
        self.closed = True
        self.kicked = (code, message)
        self.room.viewers.discard(self)
        bye = P.bye_frame(code, message)
        proto = self.proto
        if proto is not None:
            transport = proto.transport
            if not transport.is_closing() and not proto.close_sent:
                transport.write(wire.frame(bye) + wire.close_frame(1000, code))
                transport.close()  # flushes what is buffered; abort a peer that never reads
                asyncio.get_running_loop().call_later(2.0, transport.abort)
            return
        self.queue.clear()
        if self.writer is not None:
            self.writer.cancel()
        self.hub._spawn(self._close_asgi(bye))

    async def _close_asgi(self, bye: bytes) -> None:
        try:
            async with asyncio.timeout(2.0):
                await self.socket.send({"type": "websocket.send", "text": bye.decode()})
                await self.socket.send({"type": "websocket.close", "code": 1000, "reason": ""})
        except Exception:
            task = self.task
            if task is not None and not task.done() and task is not asyncio.current_task():
                task.cancel()


class Room:
    """One live session's channel: P0 state, P1 history, what is pending for the next frame."""

    def __init__(self, hub: Hub, room_id: int, epoch: int | str) -> None:
        self.hub = hub
        self.id = room_id
        self.epoch: int | str = epoch
        self.offset: int | str = 0  # the last P0/P1 history entry
        self.state: dict[str, Any] = {}
        self.counters: dict[str, int] = {}
        self.history: deque[tuple[int | str, str, str, Any]] = deque(maxlen=hub.config.history)
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT_PURCHASES)
        self.viewers: set[Viewer] = set()
        self.loaded = hub.bus is None  # Redis mode: state read from Redis once subscribed
        self.loaded_offset: int | str | None = None
        self.preload: list[tuple[str, str]] | None = None
        self.empty_since: float | None = None
        self.closed = False
        # pending for the next frame
        self.p_state: dict[str, Any] = {}
        self.p_purchases: list[dict[str, Any]] = []
        self.p_comments: list[dict[str, Any]] = []
        self.p_cn = 0
        self.p_counters = False
        self.p_offset_changed = False
        self._snapshot: Out | None = None
        self.wake = asyncio.Event()  # something is pending
        self.urgent = asyncio.Event()  # P0/P1 is pending (goes out on the state tick)
        # When the next comment/counter flush is planned (loop time): every ``tick_ms`` from the
        # previous plan, not from when the last one happened to go out, so that comments go out
        # ``1000 / tick_ms`` times a second even when the state ticks do not line up with them.
        self.comment_due = 0.0
        self.comment_frames = 0
        self.frames_out = 0
        self.deliveries = 0
        self.fanout_s = 0.0
        self.last_fanout_s = 0.0
        self.fanout_avg_s = 0.0  # smoothed (exponential moving average)
        self.task: asyncio.Task[None] | None = None
        if hub.config.fanout != "naive":
            self.task = asyncio.create_task(self._run(), name=f"live-room-{room_id}")

    # --- applying messages (from this process or from the bus) ---------------------------------
    def apply_state(self, key: str, value: Any, offset: int | str | None) -> None:
        self.state[key] = value
        self.p_state[key] = value
        if offset is not None:
            self.offset = offset
            self.history.append((offset, "s", key, value))
            self.p_offset_changed = True
        self._snapshot = None
        self._poke({"s": {key: value}}, urgent=True)

    def apply_purchase(self, item: dict[str, Any], offset: int | str | None) -> None:
        self.p_purchases.append(item)
        self.recent.append(item)
        if offset is not None:
            self.offset = offset
            self.history.append((offset, "p", "", item))
            self.p_offset_changed = True
        self._snapshot = None
        self._poke({"p": [item]}, urgent=True)

    def apply_comment(self, item: dict[str, Any]) -> None:
        self.p_cn += 1
        comments = self.p_comments
        limit = self.hub.config.comment_cap * 20
        if len(comments) < limit or is_priority(item):
            comments.append(item)
        else:  # a flood: keep a uniform sample of the window (reservoir)
            j = random.randrange(self.p_cn)
            if j < len(comments) and not is_priority(comments[j]):
                comments[j] = item
        self._poke({"c": [item], "cn": 1})

    def apply_counter(self, name: str, total: int) -> None:
        self.counters[name] = total
        self.p_counters = True
        self._snapshot = None
        self._poke({"k": {name: total}})

    def next_local_offset(self) -> int | None:
        if self.hub.bus is not None:  # Redis mode (degraded): no history entry without Redis
            return None
        assert isinstance(self.offset, int)
        return self.offset + 1

    def _poke(self, naive: dict[str, Any], urgent: bool = False) -> None:
        if self.task is not None:
            self.wake.set()
            if urgent:
                self.urgent.set()
            return
        # naive mode: this message, at once, as its own frame, to every viewer
        self._reset_pending()
        out = Out(P.encode({"t": "frame", "e": self.epoch, "o": self.offset, "ts": now_ms(), **naive}))
        for viewer in list(self.viewers):
            viewer.push(out)

    def _reset_pending(self) -> None:
        self.p_state = {}
        self.p_purchases = []
        self.p_comments = []
        self.p_cn = 0
        self.p_counters = False
        self.p_offset_changed = False

    # --- frames --------------------------------------------------------------------------------
    def snapshot(self) -> Out:
        if self._snapshot is None:
            self._snapshot = Out(
                P.encode(
                    {
                        "t": "snapshot",
                        "e": self.epoch,
                        "o": self.offset,
                        "ts": now_ms(),
                        "s": self.state,
                        "p": list(self.recent),
                        "k": self.counters,
                    }
                )
            )
        return self._snapshot

    def comment_slack(self) -> float:
        """How early (s) a state tick may carry the comments planned for a little later: half a
        state tick, so a state tick falling just short of the planned time does not make them
        wait for the next one."""
        return self.hub.config.state_tick_ms / 2000

    def build_frame(self, now: float) -> Out | None:
        """The next frame from what is pending, or None (nothing due). P0/P1 go out on every call
        (the state tick); comments and counters once their planned flush (``comment_due``, every
        ``tick_ms``) is at most half a state tick away. Counters also ride any P0/P1 frame."""
        config = self.hub.config
        comments_due = now >= self.comment_due - self.comment_slack()
        has_state = bool(self.p_state or self.p_purchases)
        has_comments = bool(self.p_cn)
        if not has_state and not ((has_comments or self.p_counters) and comments_due):
            return None
        if comments_due and (has_comments or self.p_counters):
            tick = config.tick_ms / 1000
            planned = self.comment_due + tick  # a tick after the plan, not after now
            if planned < now + tick / 2:  # after a quiet spell (or far behind): from now
                planned = now + tick
            self.comment_due = planned
        frame: dict[str, Any] = {"t": "frame", "e": self.epoch, "o": self.offset, "ts": now_ms()}
        if self.p_state:
            frame["s"] = self.p_state
            self.p_state = {}
        if self.p_purchases:
            purchases = self.p_purchases
            cap = config.purchase_cap
            frame["p"] = purchases[-cap:]
            if len(purchases) > cap:
                frame["pn"] = len(purchases) - cap
            self.p_purchases = []
        if has_comments and comments_due:
            frame["c"] = sample_comments(self.p_comments, config.comment_cap)
            frame["cn"] = self.p_cn
            self.p_comments = []
            self.p_cn = 0
            self.comment_frames += 1
        if self.p_counters:
            frame["k"] = dict(self.counters)
            self.p_counters = False
        self.p_offset_changed = False
        return Out(P.encode(frame))

    def flush(self, now: float) -> int:
        """Build and fan out one frame at once (tests); return how many viewers it went to."""
        out = self.build_frame(now)
        if out is None:
            return 0
        started = time.perf_counter()
        viewers = list(self.viewers)
        for viewer in viewers:
            viewer.deliver(out, now)
        self._count(len(viewers), time.perf_counter() - started)
        return len(viewers)

    async def fan_out(self, out: Out, now: float) -> None:
        """Write ``out`` to every viewer, yielding to the event loop every ``FANOUT_SLICE``
        viewers so that a big room does not hold up readers, acks and other rooms."""
        viewers = list(self.viewers)
        busy = 0.0
        for start in range(0, len(viewers), FANOUT_SLICE):
            if start:
                await asyncio.sleep(0)
            began = time.perf_counter()
            for viewer in viewers[start : start + FANOUT_SLICE]:
                viewer.deliver(out, now)
            busy += time.perf_counter() - began
        self._count(len(viewers), busy)

    def _count(self, sent: int, busy: float) -> None:
        self.frames_out += 1
        self.deliveries += sent
        self.fanout_s += busy
        self.last_fanout_s = busy
        avg = self.fanout_avg_s
        self.fanout_avg_s = busy if avg == 0.0 else avg + FANOUT_SMOOTHING * (busy - avg)

    def stats(self) -> dict[str, Any]:
        """Counters for the benchmark and operators: frames built, viewer deliveries, time spent
        building and writing them, frames skipped by slow viewers."""
        return {
            "viewers": len(self.viewers),
            "frames": self.frames_out,
            "comment_frames": self.comment_frames,
            "deliveries": self.deliveries,
            "fanout_s": round(self.fanout_s, 6),
            "skipped": sum(v.skipped for v in self.viewers),
            "fast": sum(v.proto is not None for v in self.viewers),
        }

    def state_gap(self) -> float:
        """Seconds between two frames of this room: the state tick, or 1.25 × the smoothed
        fan-out when that is longer, at most the comment tick."""
        config = self.hub.config
        return max(
            config.state_tick_ms / 1000, min(config.tick_ms / 1000, self.fanout_avg_s * FANOUT_HEADROOM)
        )

    async def _run(self) -> None:
        """At most one frame per state tick; the next tick starts after this frame went out.
        P0/P1 go out on the short state tick while the room's fan-out (smoothed) takes at most
        1/FANOUT_HEADROOM of it; in a bigger room (thousands of viewers on a busy machine) the
        tick grows with the fan-out, up to the comment tick, which bounds the CPU the fan-out
        takes (one slow frame no longer doubles the next wait). While only comments and counters
        are pending the loop sleeps until their planned flush, and a P0/P1 arriving meanwhile
        ends that sleep (it goes out at its own tick, not with the comments)."""
        loop = asyncio.get_running_loop()
        last = -1e9  # when the last frame went out (a build with nothing due does not count)
        while True:
            await self.wake.wait()
            gap = self.state_gap()
            at = last + gap
            if not (self.p_state or self.p_purchases):
                at = max(at, self.comment_due - self.comment_slack())
                delay = at - loop.time()
                if delay > 0:
                    self.urgent.clear()
                    try:
                        async with asyncio.timeout(delay):
                            await self.urgent.wait()
                    except TimeoutError:
                        pass
                    else:
                        continue  # a P0/P1 came in: its own (earlier) tick
            wait = at - loop.time()
            await asyncio.sleep(max(wait, 0))  # always yields, even when behind
            self.wake.clear()
            self.urgent.clear()
            now = loop.time()
            try:
                out = self.build_frame(now)
                if out is not None:
                    last = now
                    await self.fan_out(out, now)
            except Exception:
                log.exception("live room %s: frame failed", self.id)
            if self.p_cn or self.p_counters or self.p_state or self.p_purchases:  # their tick
                self.wake.set()
                if self.p_state or self.p_purchases:
                    self.urgent.set()

    # --- history and resume --------------------------------------------------------------------
    def entries_since(self, epoch: Any, offset: Any) -> list[tuple[int | str, str, str, Any]] | None:
        """The P0/P1 entries after ``offset`` from local history, or None when it cannot tell."""
        if epoch != self.epoch or not isinstance(offset, int | str):
            return None
        if type(offset) is not type(self.offset) and self.offset != 0:
            return None
        key = offset_key(offset)
        if key == offset_key(self.offset):
            return []
        if not self.history:
            return None
        oldest = offset_key(self.history[0][0])
        if key > offset_key(self.offset):
            return None
        if isinstance(offset, int):
            if oldest[0] > offset + 1:
                return None
        elif oldest > key:
            return None
        return [entry for entry in self.history if offset_key(entry[0]) > key]

    def catch_up_frames(self, entries: list[tuple[int | str, str, str, Any]]) -> list[Out]:
        frames = []
        for start in range(0, len(entries), CATCH_UP_CHUNK):
            chunk = entries[start : start + CATCH_UP_CHUNK]
            state = {key: value for _, kind, key, value in chunk if kind == "s"}
            purchases = [value for _, kind, _, value in chunk if kind == "p"]
            frame: dict[str, Any] = {"t": "frame", "e": self.epoch, "o": chunk[-1][0], "ts": now_ms()}
            if state:
                frame["s"] = state
            if purchases:
                frame["p"] = purchases
            frames.append(Out(P.encode(frame)))
        return frames

    def resnapshot(self) -> None:
        """Everybody gets a fresh snapshot (after a Redis outage)."""
        self._snapshot = None
        for viewer in list(self.viewers):
            viewer.push(self.snapshot())

    def stop(self) -> None:
        self.closed = True
        if self.task is not None:
            self.task.cancel()


class Hub:
    """Every live room of this process. See the module docstring and docs/live-protocol.md."""

    def __init__(
        self, config: HubConfig | None = None, redis: Any = None, *, bus_prefix: str = "live"
    ) -> None:
        self.config = config or HubConfig()
        self.rooms: dict[int, Room] = {}
        self.bus: RedisBus | None = None
        if redis is not None:
            from trustlive.live.bus import RedisBus

            self.bus = RedisBus(self, redis, prefix=bus_prefix)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._housekeeping: asyncio.Task[None] | None = None
        # The live domain's answer to "which of these rooms are over?" (sessions ended by the
        # sweeper or in another process): asked every ROOM_CHECK_S, those rooms are closed here.
        self.room_check: Callable[[list[int]], Awaitable[list[int]]] | None = None
        self.on_room_dropped: list[Callable[[int], None]] = []
        self.idle_room_s = IDLE_ROOM_S
        self._last_room_check = 0.0

    @classmethod
    def from_settings(cls, settings: Settings, redis: Any = None) -> Hub:
        return cls(HubConfig.from_settings(settings), redis)

    # --- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        if self.bus is not None:
            await self.bus.start()
        self._housekeeping = asyncio.create_task(self._housekeep(), name="live-housekeeping")

    async def stop(self) -> None:
        if self._housekeeping is not None:
            self._housekeeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._housekeeping
        for room in list(self.rooms.values()):
            for viewer in list(room.viewers):
                viewer.kick(P.SHUTDOWN, "the server is restarting; reconnect")
            room.stop()
        self.rooms.clear()
        if self._tasks:  # the byes on the ASGI path
            await asyncio.wait(list(self._tasks), timeout=1.0)
        if self.bus is not None:
            await self.bus.stop()
        for task in list(self._tasks):
            task.cancel()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- the API the live domain uses ----------------------------------------------------------
    def set_state(self, room_id: int, key: str, value: Any) -> None:
        """P0: ``key`` of the room's state is now ``value`` (latest wins), for every viewer."""
        self._ingest(room_id, ("s", key, value))

    def purchase(self, room_id: int, item: dict[str, Any]) -> None:
        """P1: somebody bought (``{"id","u","title","q","ts"}``)."""
        self._ingest(room_id, ("p", "", item))

    def comment(self, room_id: int, item: dict[str, Any]) -> None:
        """P2: a comment the domain has checked and cleaned (``"pri": true`` = always shown)."""
        self._ingest(room_id, ("c", "", item))

    def count(self, room_id: int, name: str, n: int = 1) -> None:
        """P3: add ``n`` to the room's counter ``name`` (frames carry the totals)."""
        self._ingest(room_id, ("k", name, int(n)))

    def send_private(self, room_id: int, user_ids: Iterable[int], payload: dict[str, Any]) -> None:
        """A frame for some users only (``payload["t"]`` one of PRIVATE_TYPES, e.g. ``"card"``):
        every connection of those users to the room, in every process (Redis mode: one publish
        on the room's channel, delivered once by each process to its own viewers), never to
        anyone else; not part of the room's state or history (a reconnect does not replay it)."""
        if payload.get("t") not in PRIVATE_TYPES:
            raise ValueError(f"private frame type must be one of {sorted(PRIVATE_TYPES)}")
        users = sorted({int(u) for u in user_ids})
        if not users:
            return
        bus = self.bus
        if bus is not None and not bus.degraded:
            bus.enqueue(room_id, ("v", "", [users, payload]))
            return
        self.deliver_private(room_id, users, payload)

    def deliver_private(self, room_id: int, user_ids: list[int], payload: dict[str, Any]) -> int:
        """Push a private frame to this process's connections of ``user_ids``; how many."""
        room = self.rooms.get(room_id)
        if room is None:
            return 0
        wanted = set(user_ids)
        out: Out | None = None
        sent = 0
        for viewer in list(room.viewers):
            if getattr(viewer.principal, "id", None) in wanted:
                if out is None:
                    out = Out(P.encode(payload))
                viewer.push(out)
                sent += 1
        return sent

    def kick_user(self, room_id: int, user_id: int, code: str, message: str) -> int:
        """``bye`` ``code`` and close every connection of ``user_id`` to the room in this process
        (cluster-wide bans: the live domain's notices call this in every process). How many."""
        room = self.rooms.get(room_id)
        if room is None:
            return 0
        kicked = 0
        for viewer in list(room.viewers):
            if getattr(viewer.principal, "id", None) == user_id:
                viewer.kick(code, message)
                kicked += 1
        return kicked

    def snapshot_state(self, room_id: int) -> dict[str, Any]:
        """The room's current P0 keys as this process knows them (pages' first render)."""
        room = self.rooms.get(room_id)
        return dict(room.state) if room is not None else {}

    async def fetch_state(self, room_id: int) -> dict[str, Any]:
        """The room's P0 keys, read from Redis when this process does not follow the room."""
        room = self.rooms.get(room_id)
        if room is not None and room.loaded:
            return dict(room.state)
        if self.bus is not None and not self.bus.degraded:
            return await self.bus.read_state(room_id)
        return {}

    def stats(self, room_id: int) -> dict[str, Any]:
        room = self.rooms.get(room_id)
        return room.stats() if room is not None else {}

    def viewer_count(self, room_id: int) -> int:
        room = self.rooms.get(room_id)
        return len(room.viewers) if room is not None else 0

    async def close_room(
        self, room_id: int, code: str = P.ENDED, message: str = "the live has ended"
    ) -> None:
        """``bye`` to every viewer of the room (in every process) and drop the room."""
        if self.bus is not None and not self.bus.degraded:
            await self.bus.close_room(room_id, code, message)
        self.close_local(room_id, code, message)

    def close_local(self, room_id: int, code: str, message: str) -> None:
        room = self.rooms.pop(room_id, None)
        if room is None:
            return
        for viewer in list(room.viewers):
            viewer.kick(code, message)
        room.stop()
        self._dropped(room_id)
        if self.bus is not None:
            self._spawn(self.bus.unsubscribe(room_id))

    def _dropped(self, room_id: int) -> None:
        for callback in self.on_room_dropped:
            try:
                callback(room_id)
            except Exception:
                log.exception("live room %s: on_room_dropped failed", room_id)

    # --- ingest --------------------------------------------------------------------------------
    def _ingest(self, room_id: int, entry: tuple[str, str, Any]) -> None:
        bus = self.bus
        if bus is not None and not bus.degraded:
            bus.enqueue(room_id, entry)  # encoded (and checked) when published
            return
        if entry[0] == "v":  # private: only to viewers here, never creates a room
            self.deliver_private(room_id, *entry[2])
            return
        if entry[0] != "k":
            try:
                P.encode(entry[2])  # a value that cannot be sent must not get into the state
            except (TypeError, ValueError):
                log.exception("live room %s: a message could not be encoded; dropped", room_id)
                return
        self.apply_local(room_id, [entry])

    def room(self, room_id: int) -> Room:
        room = self.rooms.get(room_id)
        if room is None:
            room = self.rooms[room_id] = Room(self, room_id, now_ms())
            room.empty_since = time.monotonic()
        return room

    def apply_local(self, room_id: int, entries: Iterable[tuple[str, str, Any]]) -> None:
        """Messages that do not go through Redis: local mode, or Redis away (degraded)."""
        if self.bus is not None:
            room = self.rooms.get(room_id)  # only rooms with viewers here are followed
            if room is None:
                return
        else:
            room = self.room(room_id)
        for kind, key, value in entries:
            if kind == "s":
                room.apply_state(key, value, room.next_local_offset())
            elif kind == "p":
                room.apply_purchase(value, room.next_local_offset())
            elif kind == "c":
                room.apply_comment(value)
            elif kind == "k":
                room.apply_counter(key, room.counters.get(key, 0) + value)
            elif kind == "v":
                self.deliver_private(room_id, *value)

    # --- viewers -------------------------------------------------------------------------------
    async def _room_for_viewer(self, room_id: int) -> Room:
        room = self.rooms.get(room_id)
        if room is None:
            room = self.room(room_id)
            if self.bus is not None:
                await self.bus.follow(room)
        elif not room.loaded and self.bus is not None:
            await self.bus.wait_loaded(room)
        room.empty_since = None
        return room

    async def serve(self, socket: Any, room_id: int, principal: Any, handler: Handler) -> None:
        """Run one viewer's WebSocket: accept, snapshot (or resume), then read its frames until it
        leaves. Never raises for the client's misbehaviour; returns when the connection is over
        (a client gone before the handshake completed is an ordinary disconnect)."""
        try:
            await socket.accept()
        except Exception as err:  # WebSocketDisconnect, ClientDisconnected, a reset transport
            log.debug("live viewer of room %s left before the handshake: %r", room_id, err)
            return
        on_join = getattr(handler, "on_join", None)
        if on_join is not None:
            try:
                await on_join(room_id, principal)
            except P.Refused as refusal:
                await self._refuse_at_door(socket, refusal)
                return
        room = await self._room_for_viewer(room_id)
        viewer = Viewer(self, room, socket, principal)
        try:
            pending: Any = None
            resume = None
            try:
                event = await asyncio.wait_for(socket.receive(), self.config.hello_wait_s)
            except TimeoutError:
                event = None
            if event is not None:
                if event["type"] == "websocket.disconnect":
                    return
                pending = event.get("text") if event.get("text") is not None else event.get("bytes")
                try:
                    first = P.parse_client_frame(pending or b"")
                except P.Refused:
                    first = None
                if isinstance(first, P.Hello):
                    resume = first.resume
                    pending = None
            await self._join(room, viewer, resume)
            if pending is not None:
                await self._handle(room_id, viewer, handler, pending)
            while not viewer.closed:
                event = await socket.receive()
                if event["type"] == "websocket.disconnect":
                    break
                data = event.get("text") if event.get("text") is not None else event.get("bytes")
                await self._handle(room_id, viewer, handler, data or b"")
        except asyncio.CancelledError:
            if viewer.kicked is None:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
        except Exception as err:  # the peer went away mid-send/receive
            if type(err).__name__ not in ("WebSocketDisconnect", "ClientDisconnected"):
                log.debug("live viewer of room %s ended: %r", room_id, err)
        finally:
            self._leave(room, viewer)
            on_leave = getattr(handler, "on_leave", None)
            if on_leave is not None:
                try:
                    await on_leave(room_id, principal)
                except Exception:
                    log.exception("live on_leave failed")

    async def _refuse_at_door(self, socket: Any, refusal: P.Refused) -> None:
        with contextlib.suppress(Exception):
            await socket.send(
                {"type": "websocket.send", "text": P.bye_frame(refusal.code, refusal.message).decode()}
            )
            await socket.send({"type": "websocket.close", "code": 1000, "reason": ""})

    async def _join(self, room: Room, viewer: Viewer, resume: P.Resume | None) -> None:
        frames: list[Out] | None = None
        if resume is not None:
            entries = room.entries_since(resume.e, resume.o)
            if entries is None and self.bus is not None and resume.e == room.epoch:
                fetched = await self.bus.history_since(room, resume.o)
                if fetched is not None:
                    last = offset_key(fetched[-1][0]) if fetched else offset_key(resume.o)
                    entries = fetched + [e for e in room.history if offset_key(e[0]) > last]
            if entries is not None:
                frames = room.catch_up_frames(entries)
        if viewer.closed:
            return
        if room.closed:  # the room closed while this viewer was saying hello
            viewer.kick(P.ENDED, "the live has ended")
            return
        if frames is None:
            viewer.push(room.snapshot())
        else:
            for out in frames:
                viewer.push(out)
        room.viewers.add(viewer)

    def _leave(self, room: Room, viewer: Viewer) -> None:
        viewer.closed = True
        room.viewers.discard(viewer)
        if viewer.writer is not None:
            viewer.writer.cancel()
        if not room.viewers:
            room.empty_since = time.monotonic()

    async def _handle(self, room_id: int, viewer: Viewer, handler: Handler, data: str | bytes) -> None:
        ref: object = None
        try:
            frame = P.parse_client_frame(data)
            if isinstance(frame, P.Ping):
                viewer.push(_PONG)
            elif isinstance(frame, P.Comment):
                ref = frame.ref
                if viewer.principal is None:
                    raise P.Refused(P.SIGN_IN_REQUIRED, "sign in to comment")
                item = await handler.on_comment(room_id, viewer.principal, P.strip_controls(frame.x))
                self.comment(room_id, item)
                viewer.push(Out(P.ack_frame(ref)))
            elif isinstance(frame, P.Like):
                await handler.on_like(room_id, viewer.principal, frame.n)
                self.count(room_id, "likes", frame.n)
            elif isinstance(frame, P.Hello) and not viewer.closed:  # late hello: resume again
                viewer.room.viewers.discard(viewer)
                await self._join(viewer.room, viewer, frame.resume)
        except P.Refused as refusal:
            if refusal.code == P.BAD_FRAME:
                viewer.bad += 1
                if viewer.bad >= self.config.max_bad_frames:
                    viewer.kick(P.TOO_MANY_BAD_FRAMES, "too many bad frames")
                    return
            if refusal.close:
                viewer.kick(refusal.code, refusal.message)
            else:
                viewer.push(Out(P.error_frame(refusal.code, refusal.message, ref)))

    # --- housekeeping --------------------------------------------------------------------------
    async def _housekeep(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(HOUSEKEEPING_S)
            try:
                await self.housekeep_once(loop.time())
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("live housekeeping failed")

    async def housekeep_once(self, now: float) -> None:
        """Stale viewers (snapshot or disconnect), the viewers count, rooms nobody follows."""
        counts: dict[int, int] = {}
        for room in list(self.rooms.values()):
            for viewer in list(room.viewers):
                viewer.check(now)
            counts[room.id] = len(room.viewers)
        if self.bus is not None and not self.bus.degraded:
            totals = await self.bus.viewer_counts(counts)
        else:
            totals = counts
        for room_id, total in totals.items():
            room = self.rooms.get(room_id)
            if room is not None and room.state.get("viewers") != total:
                room.apply_state("viewers", total, None)
        mono = time.monotonic()
        # Rooms nobody follows: in Redis mode after a second (the state stays in Redis); in local
        # mode after ``idle_room_s`` (the live domain seeds the state again from the database on
        # the next join), so a process never keeps rooms of sessions long over.
        idle = 1.0 if self.bus is not None else self.idle_room_s
        for room in list(self.rooms.values()):
            if not room.viewers and room.empty_since is not None and mono - room.empty_since > idle:
                self.rooms.pop(room.id, None)
                room.stop()
                self._dropped(room.id)
                if self.bus is not None:
                    await self.bus.unsubscribe(room.id)
        if self.room_check is not None and self.rooms and mono - self._last_room_check >= ROOM_CHECK_S:
            self._last_room_check = mono
            await self.check_rooms()

    async def check_rooms(self) -> list[int]:
        """Close here the rooms whose session is over (ended by the sweeper, in another process,
        or while this process missed the notice). Which were closed."""
        if self.room_check is None or not self.rooms:
            return []
        over = await self.room_check(sorted(self.rooms))
        for room_id in over:
            self.close_local(room_id, P.ENDED, "the live has ended")
        return list(over)


_PONG = Out(P.PONG)


def get_hub(app_or_state: Any) -> Hub:
    """The app's hub (``app.state.live_hub``), from an app, a state or a request."""
    state = getattr(app_or_state, "state", app_or_state)
    hub = getattr(state, "live_hub", None)
    if hub is None:
        app = getattr(app_or_state, "app", None)
        hub = getattr(getattr(app, "state", None), "live_hub", None)
    if hub is None:
        raise RuntimeError("the live hub is not running (app lifespan not started?)")
    return hub
