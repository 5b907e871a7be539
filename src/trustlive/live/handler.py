"""The live domain's side of a room connection: the hub calls :class:`RoomHandler` for every
comment, like, join and leave. Everything here is per process and in memory, so the hot path
never waits for the database:

- :class:`ModerationCache`: each creator's moderators, mutes, bans and blocked words, loaded once
  and dropped when they change (at once in this process, through the hub in the others; a short
  time-to-live bounds staleness if a notice is lost);
- :class:`RateLimiter`: a token bucket per user (``TRUSTLIVE_LIVE_COMMENT_RATE``);
- :class:`CommentWriter`: a buffer of accepted comments and room counters, written about once a
  second in one INSERT (and at shutdown), not one transaction per comment.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import re
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from trustlive.accounts.service import Principal
from trustlive.config import Settings
from trustlive.db import transaction, utcnow
from trustlive.live import repository as repo
from trustlive.live.models import SessionStatus
from trustlive.live.protocol import (
    BANNED,
    BLOCKED_WORD,
    MUTED,
    RATE_LIMITED,
    SIGN_IN_REQUIRED,
    Refused,
    strip_controls,
)

log = logging.getLogger(__name__)

MODERATION_TTL_S = 2.0  # after this, a creator's moderation is reloaded in the background
MODERATION_MAX_STALE_S = 30.0  # older than this (a quiet room), a comment waits for the reload
ROOM_TTL_S = 30.0  # how long "this session is live" is believed without asking again
CARD_RETRY_S = 60.0  # a commenter's card is looked for at most this often per process
CARD_QUEUE_MAX = 10_000  # visits/cards waiting for the database; beyond, a join records none
CARD_BATCH = 100  # visits/cards handled in one transaction


# --- comment ids ------------------------------------------------------------------------------

ID_BLOCK = 1000  # comment ids reserved per trip to the database
ID_BLOCK_TTL_S = 2.0  # a block older than this is given up, so ids stay roughly time-ordered


class CommentIds:
    """Comment ids that never collide between processes: each process reserves a block of ids
    from the database (``live_id_blocks``, one UPDATE ... RETURNING) and hands them out in order,
    so the id a room shows is the id the replay stores. A block is given up after
    ``ID_BLOCK_TTL_S``, so ids from several processes interleave in time order within a couple of
    seconds (the replay lists by id). Ids stay below 2**53, so browsers read them exactly."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        block: int = ID_BLOCK,
        ttl_s: float = ID_BLOCK_TTL_S,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.block = block
        self.ttl_s = ttl_s
        self._next = 0
        self._end = 0
        self._taken = 0.0
        self._lock = asyncio.Lock()

    def _fresh(self) -> bool:
        return self._next < self._end and time.monotonic() - self._taken < self.ttl_s

    async def next(self) -> int:
        if not self._fresh():
            async with self._lock:
                if not self._fresh():
                    async with transaction(self.sessionmaker) as s:
                        first = await repo.reserve_ids(s, "comment", self.block)
                    self._next, self._end, self._taken = first, first + self.block, time.monotonic()
        value = self._next
        self._next += 1
        return value


# --- rate limit -------------------------------------------------------------------------------

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)\s*s?\s*$")


def parse_rate(text: str) -> tuple[int, float]:
    """``"3/6s"`` → (burst 3, refill 3 tokens over 6 s)."""
    found = _RATE.match(text or "")
    if not found or int(found.group(1)) < 1 or float(found.group(2)) <= 0:
        raise ValueError(f"TRUSTLIVE_LIVE_COMMENT_RATE must look like 3/6s, got {text!r}")
    return int(found.group(1)), float(found.group(2))


class RateLimiter:
    """A token bucket per key: ``burst`` at once, refilled at burst/period tokens per second."""

    def __init__(self, burst: int, period_s: float) -> None:
        self.burst = burst
        self.per_second = burst / period_s
        self._buckets: dict[Any, tuple[float, float]] = {}

    def allow(self, key: Any, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.per_second)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return False
        self._buckets[key] = (tokens - 1.0, now)
        if len(self._buckets) > 100_000:  # forget full buckets: they would allow anyway
            full = now - self.burst / self.per_second
            self._buckets = {k: v for k, v in self._buckets.items() if v[1] > full}
        return True


# --- moderation cache -------------------------------------------------------------------------


@dataclass
class Moderation:
    moderators: set[int] = field(default_factory=set)
    mutes: dict[int, dt.datetime] = field(default_factory=dict)
    bans: set[int] = field(default_factory=set)
    words: list[str] = field(default_factory=list)
    loaded: float = 0.0

    def muted_until(self, user_id: int, now: dt.datetime) -> dt.datetime | None:
        until = self.mutes.get(user_id)
        return until if until is not None and until > now else None

    def blocked(self, text: str) -> str | None:
        lowered = text.casefold()
        return next((w for w in self.words if w in lowered), None)


class ModerationCache:
    """Per process: creator id → :class:`Moderation`, and room (session) id → creator id.

    A creator's moderation older than ``ttl_s`` is still served while ONE background task
    reloads it (stale-while-revalidate), so comments never wait for that database read; only a
    creator not cached (first use, or dropped by :meth:`invalidate`: a change made in this
    process or announced by another) or cached longer than ``max_stale_s`` ago waits for the
    load, one load per creator however many callers wait. A reload that began before an
    :meth:`invalidate` is not kept (it may predate the change). Room lookups are single-flight
    too: one database read per room, every caller in flight shares its answer."""

    def __init__(self, ttl_s: float = MODERATION_TTL_S, max_stale_s: float = MODERATION_MAX_STALE_S) -> None:
        self.ttl_s = ttl_s
        self.max_stale_s = max_stale_s
        self._by_creator: dict[int, Moderation] = {}
        # session id -> (creator id, status, when read); only live sessions are kept, for
        # ROOM_TTL_S at most (an end is also announced: ModerationNotices).
        self._rooms: dict[int, tuple[int, str, float]] = {}
        self._locks: dict[int, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._generation = 0  # bumped by every invalidate/forget: loads begun before are not kept
        self._refreshing: dict[int, asyncio.Task[Any]] = {}
        self._room_loads: dict[int, asyncio.Future[tuple[int, str] | None]] = {}
        self.reloads = 0  # database reads of moderation (tests, diagnostics)

    def invalidate(self, creator_id: int | None = None) -> None:
        self._generation += 1
        if creator_id is None:
            self._by_creator.clear()
        else:
            self._by_creator.pop(creator_id, None)

    def forget_room(self, room_id: int) -> None:
        self._generation += 1
        self._rooms.pop(room_id, None)

    def clear(self) -> None:
        """Forget everything (an app starting: what an earlier app in this process cached may
        describe another database, and its tasks ran on another event loop)."""
        self._generation += 1
        self._by_creator.clear()
        self._rooms.clear()
        self._locks.clear()
        self._refreshing.clear()
        self._room_loads.clear()

    async def room(
        self, sessionmaker: async_sessionmaker[AsyncSession], room_id: int
    ) -> tuple[int, str] | None:
        cached = self._rooms.get(room_id)
        if cached is not None and time.monotonic() - cached[2] < ROOM_TTL_S:
            return cached[0], cached[1]
        loop = asyncio.get_running_loop()
        pending = self._room_loads.get(room_id)
        if pending is None or pending.get_loop() is not loop or pending.done():
            pending = asyncio.ensure_future(self._load_room(sessionmaker, room_id))
            self._room_loads[room_id] = pending
            pending.add_done_callback(lambda f: self._room_loads.pop(room_id, None) if self._room_loads.get(room_id) is f else None)  # fmt: skip
        return await asyncio.shield(pending)  # a caller cancelled does not cancel the others'

    async def _load_room(
        self, sessionmaker: async_sessionmaker[AsyncSession], room_id: int
    ) -> tuple[int, str] | None:
        generation = self._generation
        async with sessionmaker() as s:
            row = await repo.get_session(s, room_id)
            if row is None:
                return None
            found = (row.creator_id, row.status)
        if found[1] == SessionStatus.live:  # only a live room's answer stays true for a while
            if generation == self._generation:
                self._rooms[room_id] = (*found, time.monotonic())
        else:
            self._rooms.pop(room_id, None)
        return found

    async def _load(self, sessionmaker: async_sessionmaker[AsyncSession], creator_id: int) -> Moderation:
        generation = self._generation
        self.reloads += 1
        async with sessionmaker() as s:
            data = await repo.moderation_of(s, creator_id, utcnow())
        found = Moderation(**data, loaded=time.monotonic())
        if generation == self._generation:  # else a change came meanwhile: do not keep this
            self._by_creator[creator_id] = found
        return found

    def _revalidate(self, sessionmaker: async_sessionmaker[AsyncSession], creator_id: int) -> None:
        running = self._refreshing.get(creator_id)
        if running is not None and not running.done() and running.get_loop() is asyncio.get_running_loop():
            return
        task = asyncio.create_task(self._reload(sessionmaker, creator_id))
        self._refreshing[creator_id] = task
        task.add_done_callback(lambda t: self._refreshing.pop(creator_id, None) if self._refreshing.get(creator_id) is t else None)  # fmt: skip

    async def _reload(self, sessionmaker: async_sessionmaker[AsyncSession], creator_id: int) -> None:
        try:
            await self._load(sessionmaker, creator_id)
        except Exception:  # the stale value stays; the next comment after the TTL tries again
            log.warning("reloading the live moderation of creator %s failed", creator_id, exc_info=True)

    async def of(self, sessionmaker: async_sessionmaker[AsyncSession], creator_id: int) -> Moderation:
        found = self._by_creator.get(creator_id)
        if found is not None:
            age = time.monotonic() - found.loaded
            if age < self.ttl_s:
                return found
            if age < self.max_stale_s:
                self._revalidate(sessionmaker, creator_id)
                return found
        async with self._locks[creator_id]:  # one load per creator, however many comments wait
            found = self._by_creator.get(creator_id)
            if found is not None and time.monotonic() - found.loaded < self.ttl_s:
                return found
            return await self._load(sessionmaker, creator_id)


MODERATION = ModerationCache()


WRITERS: list[CommentWriter] = []  # the process's running writers (one per app)


# --- the comment writer -----------------------------------------------------------------------


@dataclass
class _Counts:
    entries: int = 0
    likes: int = 0
    comments: int = 0
    viewers: int = 0


class CommentWriter:
    """Accepted comments and room counters, buffered in the process and written every
    ``interval_s`` in one transaction: one multi-row INSERT for the comments, one UPDATE per room
    for the counters. A failed write keeps the rows for the next pass (up to ``max_buffer``)."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        interval_s: float = 1.0,
        max_buffer: int = 200_000,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.interval_s = interval_s
        self.max_buffer = max_buffer
        self._rows: list[dict[str, Any]] = []
        self._counts: dict[int, _Counts] = defaultdict(_Counts)
        self._stopping = False
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self.written = 0
        # Rooms whose creator is connected in this process (the console open): their sessions'
        # heartbeat is refreshed every ``heartbeat_every_s``, so a creator whose console is open
        # is never taken for gone by the sweeper.
        self.creators_here: dict[int, int] = defaultdict(int)
        self.heartbeat_every_s = 30.0
        self._last_beat = 0.0
        WRITERS.append(self)

    def add_comment(self, row: dict[str, Any]) -> None:
        if len(self._rows) >= self.max_buffer:
            log.warning("live comment buffer full: a comment is kept out of the replay")
            return
        self._rows.append(row)
        self._counts[row["session_id"]].comments += 1

    def add(self, room_id: int, *, entries: int = 0, likes: int = 0, viewers: int = 0) -> None:
        counts = self._counts[room_id]
        counts.entries += entries
        counts.likes += likes
        counts.viewers = max(counts.viewers, viewers)

    @property
    def pending(self) -> int:
        return len(self._rows)

    def _beating(self) -> list[int]:
        now = time.monotonic()
        if not self.creators_here or now - self._last_beat < self.heartbeat_every_s:
            return []
        self._last_beat = now
        return sorted(room for room, n in self.creators_here.items() if n > 0)

    async def flush(self) -> int:
        async with self._lock:
            rows, self._rows = self._rows, []
            counts, self._counts = self._counts, defaultdict(_Counts)
            beating = self._beating()
            if not rows and not counts and not beating:
                return 0
            try:
                async with transaction(self.sessionmaker) as s:
                    await repo.insert_comments(s, rows)
                    for room_id in beating:
                        await repo.heartbeat(s, room_id, utcnow())
                    for room_id in sorted(counts):
                        c = counts[room_id]
                        await repo.add_counters(
                            s, room_id, entries=c.entries, likes=c.likes, comments=c.comments,
                            viewers=c.viewers,
                        )  # fmt: skip
            except Exception:
                log.exception("writing %d live comments failed; kept for the next pass", len(rows))
                self._rows[:0] = rows[: self.max_buffer - len(self._rows)]
                for room_id, c in counts.items():
                    mine = self._counts[room_id]
                    mine.entries += c.entries
                    mine.likes += c.likes
                    mine.comments += c.comments
                    mine.viewers = max(mine.viewers, c.viewers)
                return 0
            self.written += len(rows)
            return len(rows)

    async def run_forever(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.interval_s)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:  # never let the writer die
                log.exception("live comment writer pass failed")

    async def stop(self) -> None:
        """Stop between passes, then write what is left."""
        self._stopping = True
        self._wake.set()
        await self.flush()
        if self in WRITERS:
            WRITERS.remove(self)


def delete_pending(session_id: int, comment_id: int, by_id: int, now: dt.datetime) -> bool:
    """Mark a comment still in a writer's buffer as deleted; False when none holds it."""
    found = False
    for writer in WRITERS:  # one per app; every one that holds it (tests run many apps)
        for row in writer._rows:
            if row["id"] == comment_id and row["session_id"] == session_id:
                row["deleted_at"], row["deleted_by_id"] = now, by_id
                found = True
    return found


async def writes_done() -> None:
    """Wait until no writer of this process is in the middle of a write."""
    for writer in list(WRITERS):
        async with writer._lock:
            pass


# --- the hub handler --------------------------------------------------------------------------


def mask_name(name: str) -> str:
    """A buyer's display name shortened for privacy: 王芳 → 王**."""
    name = (name or "").strip()
    return (name[0] + "**") if name else "**"


class RoomHandler:
    """What the hub calls for each viewer's comment, like, join and leave (docs/live-protocol.md)."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
        writer: CommentWriter,
        *,
        moderation: ModerationCache = MODERATION,
        hub: Any = None,
        ids: CommentIds | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.settings = settings
        self.writer = writer
        self.moderation = moderation
        self.hub = hub
        self.ids = ids or CommentIds(sessionmaker)
        burst, period = parse_rate(settings.live_comment_rate)
        self.rate = RateLimiter(burst, period)
        self.max_chars = settings.live_comment_max_chars
        self.viewers: dict[int, int] = defaultdict(int)  # this process's viewers per room
        self._seeded: set[int] = set()
        self._creator_of: dict[int, int] = {}  # rooms whose creator is connected here
        # Returning customers: (room, user) -> when this process last looked for their card.
        self._card_tried: dict[tuple[int, int], float] = {}
        # Visits and cards wait here for ONE background worker, which takes them in batches of
        # CARD_BATCH per transaction: a join storm holds one pooled connection, never the pool.
        self._card_jobs: deque[tuple[int, int, int, bool]] = deque()
        self._card_worker: asyncio.Task[None] | None = None
        self.cards_dropped = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        if hub is not None and hasattr(hub, "on_room_dropped"):
            hub.on_room_dropped.append(self._seeded.discard)
            hub.room_check = self.rooms_over

    async def rooms_over(self, room_ids: list[int]) -> list[int]:
        """Of this process's rooms, those whose session is no longer live (the hub closes them)."""
        async with self.sessionmaker() as s:
            over = await repo.sessions_not_live(s, room_ids)
        for room_id in over:
            self.moderation.forget_room(room_id)
        return over

    # --- returning customers (熟客) -------------------------------------------------------------
    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _customer(self, room_id: int, creator_id: int, principal: Principal | None, *, comment: bool) -> None:
        """Look for the viewer's card in the background (never delaying the join or the comment):
        a comment looks again at most every CARD_RETRY_S in this process."""
        if principal is None or principal.id == creator_id or self.hub is None:
            return
        key = (room_id, principal.id)
        now = time.monotonic()
        if comment and now - self._card_tried.get(key, -1e9) < CARD_RETRY_S:
            return
        if len(self._card_jobs) >= CARD_QUEUE_MAX:  # the database is far behind: skip this one
            self.cards_dropped += 1
            return
        if len(self._card_tried) > 100_000:
            self._card_tried.clear()
        self._card_tried[key] = now
        self._card_jobs.append((room_id, creator_id, principal.id, comment))
        worker = self._card_worker
        if worker is None or worker.done():
            self._card_worker = asyncio.create_task(self._card_loop())

    async def _card_loop(self) -> None:
        jobs = self._card_jobs
        while jobs:
            batch = [jobs.popleft() for _ in range(min(CARD_BATCH, len(jobs)))]
            try:
                await self._send_cards(batch)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("the returning-customer cards of %d viewers failed", len(batch))

    async def _send_cards(self, batch: list[tuple[int, int, int, bool]]) -> None:
        """One transaction for the batch, a savepoint per viewer (one failing loses only its own
        visit/card); the cards are sent once it committed."""
        from trustlive.live.service import room_customer  # the service imports this module

        cards: list[tuple[int, int, dict[str, Any]]] = []
        now = utcnow()
        async with transaction(self.sessionmaker) as s:
            for room_id, creator_id, user_id, comment in batch:
                try:
                    async with s.begin_nested():
                        card = await room_customer(s, creator_id, room_id, user_id, now, comment=comment)
                except Exception:
                    log.exception(
                        "the returning-customer card of user %s in room %s failed", user_id, room_id
                    )
                    continue
                if card is not None:
                    cards.append((room_id, creator_id, card))
        for room_id, creator_id, card in cards:
            self.hub.send_private(room_id, [creator_id], card)

    async def drain(self) -> None:
        """Wait for the cards being looked up (tests, shutdown)."""
        while self._tasks or (self._card_worker is not None and not self._card_worker.done()):
            waiting = list(self._tasks)
            if self._card_worker is not None and not self._card_worker.done():
                waiting.append(self._card_worker)
            await asyncio.gather(*waiting, return_exceptions=True)

    async def _creator(self, room_id: int) -> int:
        found = await self.moderation.room(self.sessionmaker, room_id)
        if found is None or found[1] != SessionStatus.live:
            raise Refused("not_live", "this session is not live", close=True)
        return found[0]

    async def check_viewer(self, room_id: int, principal: Principal | None) -> int:
        """Refuse a banned viewer (bye ``banned``) or a room that is not live; the creator's id."""
        creator_id = await self._creator(room_id)
        if principal is not None:
            moderation = await self.moderation.of(self.sessionmaker, creator_id)
            if principal.id in moderation.bans:
                raise Refused(BANNED, "you are banned from this room", close=True)
        return creator_id

    async def on_comment(self, room_id: int, principal: Principal | None, text: str) -> dict[str, Any]:
        if principal is None:
            raise Refused(SIGN_IN_REQUIRED, "sign in to comment")
        creator_id = await self._creator(room_id)
        moderation = await self.moderation.of(self.sessionmaker, creator_id)
        if principal.id in moderation.bans:
            raise Refused(BANNED, "you are banned from this room", close=True)
        now = utcnow()
        until = moderation.muted_until(principal.id, now)
        if until is not None:
            raise Refused(MUTED, f"you are muted until {until.isoformat(timespec='seconds')}")
        cleaned = strip_controls(text)
        if not cleaned:
            raise Refused("empty", "the comment is empty")
        if len(cleaned) > self.max_chars:
            raise Refused("too_long", f"at most {self.max_chars} characters")
        if moderation.blocked(cleaned) is not None:
            raise Refused(BLOCKED_WORD, "the comment contains a word blocked in this room")
        if not self.rate.allow(principal.id):
            raise Refused(RATE_LIMITED, "too many comments: wait a moment")
        comment_id = await self.ids.next()
        self.writer.add_comment(
            {
                "id": comment_id, "session_id": room_id, "user_id": principal.id,
                "display_name": principal.display_name[:64], "text": cleaned, "created_at": now,
                "deleted_at": None, "deleted_by_id": None,
            }
        )  # fmt: skip
        item: dict[str, Any] = {
            "id": comment_id,
            "uid": principal.id,
            "u": principal.display_name,
            "x": cleaned,
            "ts": int(now.timestamp() * 1000),
        }
        if principal.id == creator_id:
            item["badge"] = "creator"
            item["pri"] = True  # the creator's own lines are never sampled away
        elif principal.id in moderation.moderators:
            item["badge"] = "moderator"
        self._customer(room_id, creator_id, principal, comment=True)
        return item

    async def on_like(self, room_id: int, principal: Principal | None, n: int) -> None:
        self.writer.add(room_id, likes=max(0, min(int(n), 10)))

    def _room_viewers(self, room_id: int) -> int:
        count = self.viewers[room_id]
        if self.hub is not None:
            with contextlib.suppress(Exception):
                shown = self.hub.snapshot_state(room_id).get("viewers")
                if isinstance(shown, int):
                    count = max(count, shown)
        return count

    async def on_join(self, room_id: int, principal: Principal | None) -> None:
        creator_id = await self.check_viewer(room_id, principal)
        self.viewers[room_id] += 1
        if principal is not None and principal.id == creator_id:
            self._creator_of[room_id] = creator_id
            self.writer.creators_here[room_id] += 1
        self.writer.add(room_id, entries=1, viewers=self._room_viewers(room_id))
        if self.hub is not None:
            self.hub.count(room_id, "entries", 1)
            await self._seed(room_id)
        self._customer(room_id, creator_id, principal, comment=False)

    async def _seed(self, room_id: int) -> None:
        """Give a room the domain's P0 keys (pin, sale) from the database when the hub has none
        (a restarted process, a room nobody has changed yet): once per room and process."""
        if room_id in self._seeded:
            return
        self._seeded.add(room_id)
        try:
            if "pin" in await self.hub.fetch_state(room_id):
                return
            from trustlive.live.service import room_state  # the service imports this module

            async with self.sessionmaker() as s:
                values = await room_state(s, room_id)
            for key, value in values.items():
                self.hub.set_state(room_id, key, value)
        except Exception:  # the room works without it; the next change sets the keys
            self._seeded.discard(room_id)
            log.exception("seeding the state of live room %s failed", room_id)

    async def on_leave(self, room_id: int, principal: Principal | None) -> None:
        self.viewers[room_id] = max(0, self.viewers[room_id] - 1)
        if self.viewers[room_id] == 0:
            self.viewers.pop(room_id, None)
        if principal is not None and self._creator_of.get(room_id) == principal.id:
            here = self.writer.creators_here
            here[room_id] = max(0, here[room_id] - 1)
            if here[room_id] == 0:
                here.pop(room_id, None)
                self._creator_of.pop(room_id, None)


# --- moderation notices across processes ------------------------------------------------------

NOTICE_CHANNEL = "trustlive:live:moderation"


class ModerationNotices:
    """A moderation change reaching every process: the ``live.moderation_changed`` event is
    handled in the one process that relays it, which publishes a notice here; every process
    (itself included) drops the creator's cached moderation and disconnects a banned user's
    viewers. Without Redis, :meth:`publish` applies the notice in this process only. Lost notices
    (Redis away) are bounded by the cache's time-to-live."""

    def __init__(self, hub: Any, redis: Any = None, cache: ModerationCache = MODERATION) -> None:
        self.hub = hub
        self.redis = redis
        self.cache = cache
        self._stopping = False

    def apply(self, notice: dict[str, Any]) -> None:
        creator_id = notice.get("creator_id")
        if isinstance(creator_id, int):
            self.cache.invalidate(creator_id)
        ended = notice.get("ended_session_id")
        if isinstance(ended, int):
            self.cache.forget_room(ended)
        room_id, banned = notice.get("session_id"), notice.get("banned_user_id")
        if isinstance(room_id, int) and isinstance(banned, int):
            self.hub.kick_user(room_id, banned, BANNED, "you are banned from this room")

    async def publish(self, notice: dict[str, Any]) -> None:
        if self.redis is None:
            self.apply(notice)
            return
        try:
            await self.redis.publish(NOTICE_CHANNEL, json.dumps(notice))
        except Exception:  # Redis away: this process at least
            log.warning("live moderation notice not published; applied locally")
            self.apply(notice)

    async def run_forever(self) -> None:
        """Listen for notices (Redis only), reconnecting after a failure."""
        while not self._stopping and self.redis is not None:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(NOTICE_CHANNEL)
                while not self._stopping:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
                    if message is None:
                        continue
                    try:
                        notice = json.loads(message["data"])
                    except (TypeError, ValueError):
                        continue
                    if isinstance(notice, dict):
                        self.apply(notice)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("live moderation notices: Redis failed; retrying in 1 s")
                self.cache.clear()  # notices may have been missed
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    def stop(self) -> None:
        self._stopping = True
