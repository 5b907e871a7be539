"""Scale-out of the live hub over Redis (docs/live-protocol.md, "Several processes").

- A process gathers each room's messages for a short tick and publishes ONE Redis message per room
  per tick (all rooms' publishes pipelined). A Lua script appends the P0/P1 entries to the room's
  Stream (``XADD MAXLEN ~``, the history; its ids are the offsets), writes P0 into the state hash,
  adds P3 to the counters hash and publishes the batch with the new ids and counter totals, all in
  one step, so every process sees the room's entries in Stream order.
- Every process, the publishing one included, delivers a batch when it comes back from Redis:
  each message reaches each viewer exactly once (never locally AND from Redis).
- One subscription per process per followed room: subscribe when the first local viewer joins,
  unsubscribe when the last has left. Joining reads the state, counters, epoch and recent history
  from Redis, so any process can build the snapshot.
- Redis away: log once, deliver locally (degraded: this process's viewers still get this
  process's messages), retry in the background; once back, resubscribe, reload every followed
  room and send its viewers a fresh snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any

import msgspec
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from trustlive.live.hub import offset_key

if TYPE_CHECKING:
    from trustlive.live.hub import Hub, Room

log = logging.getLogger("trustlive.live")

PREFIX = "live"
RETRY_S = 0.5
VIEWER_TTL_MS = 5000
KEY_TTL_S = 24 * 3600  # a closed room's keys linger a day (replays, late readers)

_PUBLISH = """
local nh = tonumber(ARGV[3])
local ids = {}
local i = 4
for j = 1, nh do
  local kind, field, value = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  ids[j] = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'k', kind, 'f', field, 'v', value)
  if kind == 's' then redis.call('HSET', KEYS[2], field, value) end
  i = i + 3
end
local nk = tonumber(ARGV[i])
i = i + 1
local totals = {}
for j = 1, nk do
  totals[j] = ARGV[i] .. '=' .. redis.call('HINCRBY', KEYS[3], ARGV[i], ARGV[i + 1])
  i = i + 2
end
redis.call('PUBLISH', KEYS[4], ARGV[2] .. '\\n' .. table.concat(ids, ',') .. '\\n' .. table.concat(totals, ','))
return nh
"""

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.decode


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisBus:
    def __init__(self, hub: Hub, redis: Any, *, prefix: str = PREFIX, retry_s: float = RETRY_S) -> None:
        self.hub = hub
        self.redis = redis
        self.prefix = prefix
        self.retry_s = retry_s
        self.node = uuid.uuid4().hex[:12]
        self.degraded = False
        self.outbox: dict[int, list[tuple[str, str, Any]]] = {}
        self.wake = asyncio.Event()
        self.recovered = asyncio.Event()
        self.recovered.set()
        self.pubsub: Any = None
        self.channels: set[str] = set()
        self._script = redis.register_script(_PUBLISH)
        self._tasks: list[asyncio.Task[None]] = []
        self._recovering: asyncio.Task[None] | None = None
        self._loading: dict[int, asyncio.Event] = {}
        period = hub.config.state_tick_ms / 2000
        self.period = max(period, 0.005)

    # --- keys ----------------------------------------------------------------------------------
    def key(self, room_id: int, part: str) -> str:
        return f"{self.prefix}:{room_id}:{part}"

    def channel(self, room_id: int) -> str:
        return f"{self.prefix}:{room_id}:ch"

    # --- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        self.pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        self._tasks = [
            asyncio.create_task(self._flush_loop(), name="live-bus-flush"),
            asyncio.create_task(self._read_loop(), name="live-bus-read"),
        ]

    async def stop(self) -> None:
        for task in [*self._tasks, self._recovering]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self.outbox:
            with contextlib.suppress(Exception):
                await self._publish(self.outbox)
        if self.pubsub is not None:
            with contextlib.suppress(Exception):
                await self.pubsub.aclose()

    # --- publishing ----------------------------------------------------------------------------
    def enqueue(self, room_id: int, entry: tuple[str, str, Any]) -> None:
        self.outbox.setdefault(room_id, []).append(entry)
        self.wake.set()

    async def _flush_loop(self) -> None:
        loop = asyncio.get_running_loop()
        last = 0.0
        while True:
            await self.wake.wait()
            wait = last + self.period - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            self.wake.clear()
            last = loop.time()
            batches, self.outbox = self.outbox, {}
            if batches:
                try:
                    await self._publish(batches)
                except Exception:  # never let the publisher die
                    log.exception("live: publishing failed")

    async def _publish(self, batches: dict[int, list[tuple[str, str, Any]]]) -> None:
        if self.degraded:
            for room_id, entries in batches.items():
                self.hub.apply_local(room_id, entries)
            return
        calls = []
        for room_id, entries in batches.items():
            try:
                calls.append((room_id, self._script_args(room_id, entries)))
            except (TypeError, ValueError, msgspec.EncodeError):  # the caller's bug, not Redis's
                log.exception("live room %s: a message could not be encoded; dropped", room_id)
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for _, (keys, args) in calls:
                    await self._script(keys=keys, args=args, client=pipe)
                await pipe.execute()
        except (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError) as err:
            # Redis away: this process's viewers still get this process's messages
            self._degrade(err)
            for room_id, _ in calls:
                self.hub.apply_local(room_id, [e for e in batches[room_id] if e[0] != "x"])
        except RedisError:
            log.exception("live: publishing to Redis failed")

    def _script_args(self, room_id: int, entries: list[tuple[str, str, Any]]) -> tuple[list[str], list[Any]]:
        history: list[Any] = []
        comments = []
        counters: dict[str, int] = {}
        close = None
        private = []
        for kind, key, value in entries:
            if kind in ("s", "p"):
                history.append([kind, key, value])
            elif kind == "c":
                comments.append(value)
            elif kind == "k":
                counters[key] = counters.get(key, 0) + value
            elif kind == "x":
                close = [key, value]
            elif kind == "v":
                private.append(value)
        head: dict[str, Any] = {"n": self.node}
        if history:
            head["h"] = history
        if comments:
            head["c"] = comments
        if private:
            head["v"] = private
        if close:
            head["x"] = close
        args: list[Any] = [str(self.hub.config.history), _encode(head).decode(), len(history)]
        for kind, key, value in history:
            args += [kind, key, _encode(value).decode()]
        args.append(len(counters))
        for name, n in counters.items():
            args += [name, n]
        keys = [self.key(room_id, "h"), self.key(room_id, "s"), self.key(room_id, "k"), self.channel(room_id)]
        return keys, args

    async def close_room(self, room_id: int, code: str, message: str) -> None:
        await self._publish({room_id: [("x", code, message)]})
        with contextlib.suppress(Exception):
            async with self.redis.pipeline(transaction=False) as pipe:
                for part in ("h", "s", "k", "e", "v"):
                    pipe.expire(self.key(room_id, part), KEY_TTL_S)
                await pipe.execute()

    # --- receiving -----------------------------------------------------------------------------
    async def _read_loop(self) -> None:
        while True:
            if self.degraded:
                await self.recovered.wait()
                continue
            pubsub = self.pubsub
            if not self.channels or getattr(pubsub, "connection", True) is None:
                await asyncio.sleep(0.05)
                continue
            try:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception as err:
                if pubsub is self.pubsub:
                    self._degrade(err)
                continue
            if message is not None and message.get("type") == "message":
                try:
                    self._on_message(_s(message["channel"]), _s(message["data"]))
                except Exception:
                    log.exception("live bus: bad message on %s", message.get("channel"))

    def _on_message(self, channel: str, data: str) -> None:
        room_id = int(channel.split(":")[-2])
        room = self.hub.rooms.get(room_id)
        if room is None:
            return
        if not room.loaded:
            if room.preload is not None:
                room.preload.append((channel, data))
            return
        self.deliver(room, data)

    def deliver(self, room: Room, data: str) -> None:
        head_raw, _, rest = data.partition("\n")
        ids_raw, _, totals_raw = rest.partition("\n")
        head = _decode(head_raw)
        ids = ids_raw.split(",") if ids_raw else []
        floor = room.loaded_offset
        floor_key = offset_key(floor)
        for (kind, key, value), entry_id in zip(head.get("h", ()), ids, strict=False):
            if floor is not None and offset_key(entry_id) <= floor_key:
                continue  # already in the state read from Redis
            if kind == "s":
                room.apply_state(key, value, entry_id)
            else:
                room.apply_purchase(value, entry_id)
        for item in head.get("c", ()):
            room.apply_comment(item)
        for users, payload in head.get("v", ()):
            self.hub.deliver_private(room.id, users, payload)
        if totals_raw:
            for pair in totals_raw.split(","):
                name, _, total = pair.rpartition("=")
                room.apply_counter(name, int(total))
        if "x" in head:
            code, message = head["x"]
            self.hub.close_local(room.id, code, message)

    # --- following rooms -----------------------------------------------------------------------
    async def follow(self, room: Room) -> None:
        """Subscribe to the room's channel, then read its state (the first local viewer)."""
        event = self._loading[room.id] = asyncio.Event()
        room.preload = []
        channel = self.channel(room.id)
        try:
            if not self.degraded:
                await self.pubsub.subscribe(channel)
                self.channels.add(channel)
                await self.load(room)
        except Exception as err:
            self._degrade(err)
        finally:
            room.loaded = True
            buffered, room.preload = room.preload or [], None
            for _, data in buffered:
                self.deliver(room, data)
            event.set()
            self._loading.pop(room.id, None)

    async def wait_loaded(self, room: Room) -> None:
        event = self._loading.get(room.id)
        if event is not None:
            await event.wait()

    async def unsubscribe(self, room_id: int) -> None:
        channel = self.channel(room_id)
        self.channels.discard(channel)
        with contextlib.suppress(Exception):
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.hdel(self.key(room_id, "v"), self.node)
                await pipe.execute()
            if not self.degraded:
                await self.pubsub.unsubscribe(channel)

    async def load(self, room: Room) -> None:
        """Epoch, state, counters and recent history of the room from Redis."""
        history = self.hub.config.history
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(self.key(room.id, "e"), str(int(time.time() * 1000)), nx=True)
            pipe.get(self.key(room.id, "e"))
            pipe.hgetall(self.key(room.id, "s"))
            pipe.hgetall(self.key(room.id, "k"))
            pipe.xrevrange(self.key(room.id, "h"), count=history)
            _, epoch, state, counters, entries = await pipe.execute()
        room.epoch = int(_s(epoch))
        viewers = room.state.get("viewers")
        room.state = {_s(k): _decode(_s(v)) for k, v in state.items()}
        if viewers is not None:
            room.state["viewers"] = viewers
        room.counters = {_s(k): int(v) for k, v in counters.items()}
        room.history.clear()
        room.recent.clear()
        parsed = [self._entry(entry) for entry in reversed(entries)]
        for entry in parsed:
            room.history.append(entry)
            if entry[1] == "p":
                room.recent.append(entry[3])
        room.offset = parsed[-1][0] if parsed else "0-0"
        room.loaded_offset = room.offset
        room._snapshot = None

    @staticmethod
    def _entry(raw: Any) -> tuple[str, str, str, Any]:
        entry_id, fields = raw
        fields = {_s(k): _s(v) for k, v in fields.items()}
        return (_s(entry_id), fields["k"], fields.get("f", ""), _decode(fields["v"]))

    async def history_since(self, room: Room, offset: Any) -> list[tuple[Any, str, str, Any]] | None:
        """P0/P1 entries after ``offset`` from the Stream, or None when it no longer holds them."""
        if not isinstance(offset, str) or self.degraded:
            return None
        stream = self.key(room.id, "h")
        try:
            oldest = await self.redis.xrange(stream, count=1)
            if not oldest:
                return None
            newest = await self.redis.xrevrange(stream, count=1)
            # Older than the Stream holds, or newer than anything it holds (an offset from the
            # future, or from a stream since recreated): the caller sends a snapshot.
            if offset_key(_s(oldest[0][0])) > offset_key(offset) or offset_key(offset) > offset_key(
                _s(newest[0][0])
            ):
                return None
            entries = await self.redis.xrange(stream, min=f"({offset}", max="+")
        except Exception:
            return None
        return [self._entry(entry) for entry in entries]

    async def read_state(self, room_id: int) -> dict[str, Any]:
        try:
            state = await self.redis.hgetall(self.key(room_id, "s"))
        except Exception:
            return {}
        return {_s(k): _decode(_s(v)) for k, v in state.items()}

    async def viewer_counts(self, local: dict[int, int]) -> dict[int, int]:
        """Each process writes its local count per room; the room's count is the sum of fresh ones."""
        if not local:
            return {}
        now = int(time.time() * 1000)
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for room_id, n in local.items():
                    pipe.hset(self.key(room_id, "v"), self.node, f"{n}:{now}")
                    pipe.hgetall(self.key(room_id, "v"))
                results = await pipe.execute()
        except (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError) as err:
            self._degrade(err)
            return local
        except RedisError:
            log.exception("live: viewer counts failed")
            return local
        totals = {}
        for i, room_id in enumerate(local):
            total = 0
            for value in results[2 * i + 1].values():
                n, _, at = _s(value).partition(":")
                if now - int(at or 0) <= VIEWER_TTL_MS:
                    total += int(n)
            totals[room_id] = total
        return totals

    # --- outage and recovery -------------------------------------------------------------------
    def _degrade(self, err: BaseException) -> None:
        if self.degraded:
            return
        self.degraded = True
        self.recovered.clear()
        log.warning("live: Redis unreachable (%r); delivering locally until it is back", err)
        if self._recovering is None or self._recovering.done():
            self._recovering = asyncio.create_task(self._recover(), name="live-bus-recover")

    async def _recover(self) -> None:
        old = self.pubsub
        with contextlib.suppress(Exception):
            await old.aclose()
        while True:
            await asyncio.sleep(self.retry_s)
            try:
                await self.redis.ping()
                pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
                rooms = list(self.hub.rooms.values())
                self.channels = {self.channel(room.id) for room in rooms}
                if self.channels:
                    await pubsub.subscribe(*self.channels)
                for room in rooms:
                    await self.load(room)
            except asyncio.CancelledError:
                raise
            except Exception:
                continue
            self.pubsub = pubsub
            self.degraded = False
            self.recovered.set()
            log.warning("live: Redis is back; %d room(s) resubscribed", len(rooms))
            for room in rooms:
                room.resnapshot()
            return
