"""Feed use cases (docs/feed.md): the follow feed (private domain: what the people and shops you
follow are doing), the discovery feed (public domain: collaborative filtering, fresh content and
new creators, re-ranked so exposure spreads across creators), the record of every served page,
impression, view and click (attribution, exposure accounting, traffic-reward budgets), the grants
themselves and the ops exposure dashboard.

Requests must stay fast over a catalogue of a million items and a hundred thousand creators, so
nothing here scans all items or all creators per request: candidates come from indexed queries
(a user's recent history, the neighbours of those items, the newest items, the newest items of
new creators, the rooms on air) and from in-process caches with short lifetimes (providers'
window exposure, running grants, trust multipliers, the pools). What a request writes is one
row (the served page); impressions write counters by increments.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import functools
import json
import math
import secrets
import time
import weakref
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from trustlive import events
from trustlive.accounts import service as accounts
from trustlive.accounts.service import Principal
from trustlive.catalog import service as catalog
from trustlive.config import Settings
from trustlive.content import service as content
from trustlive.db import utcnow
from trustlive.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    TooManyRequests,
    ValidationFailed,
    validated,
)
from trustlive.feed import ranking
from trustlive.feed import repository as repo
from trustlive.feed.models import FeedGrant, FeedServe
from trustlive.feed.schemas import (
    EventIn,
    EventsIn,
    EventsOut,
    ExposureDayOut,
    ExposureOut,
    FeedItemOut,
    FeedPageOut,
    GrantIn,
    GrantOut,
    LorenzOut,
)
from trustlive.live import service as live
from trustlive.orders import service as orders
from trustlive.social import service as social
from trustlive.trust import service as trust

FEEDS = ("follow", "discovery")
SOURCES = {"follow": "follow_feed", "discovery": "discovery_feed"}  # the order line's source
DEFAULT_LIMIT = 20
MAX_LIMIT = 50
MAX_PAGES = 25  # a discovery scroll is at most this many pages (500 items at 20 a page)
MAX_LIVE_ON_TOP = 50  # live rooms of followed creators put on top of the follow feed
SERVE_TTL = dt.timedelta(hours=24)  # reports and cursors for older pages are refused
MAX_POSITION = 100_000

# The relevance priors (freshness, rooms on air, items seen) are configuration: relevance.fresh,
# relevance.live and relevance.seen_factor (ranking.DEFAULTS, docs/feed.md).
HISTORY_FETCH = 12  # neighbours are read for the 12 most recent history items (weight >= 2%)...
NEIGHBOURS_FETCH = 40  # ...their 40 nearest each (the model keeps ``relevance.neighbours``)
POOL_FRESH = 300
POOL_NEW = 300
POOL_TAIL = 200
POOL_LIVE = 100

# In-process caches (per database): seconds before each is read again.
PROVIDERS_TTL = 30.0
GRANTS_TTL = 15.0
POOLS_TTL = 30.0
LIVE_TTL = 10.0
TRUST_TTL = 300.0
CARDS_TTL = 30.0  # cards (title, cover, price, name) of videos and products shown
MAX_CACHED_CARDS = 200_000
READ_OVERLAP = dt.timedelta(minutes=2)  # providers' rows are re-read this far back (late commits)

# Reports: requests per caller (user, or address when signed out) per minute, in each process.
EVENTS_PER_MINUTE = 240
CLICKS_PER_MINUTE = 120

# Tasks.
NEIGHBOURS_EVERY_S = 3600
NEIGHBOUR_DAYS = 90
PRUNE_AFTER = dt.timedelta(days=30)
PRUNE_BATCH = 5000
BACKFILL_STEP = 20_000  # video ids scanned, products indexed, per task pass until the backfill is done
BACKFILL_PAGE = 1000

EVENT_KINDS = ("impression", "view", "click")
LAYOUTS = ("grid", "single")
GRANT_STATUSES = repo.GRANT_STATUSES
DASHBOARD_FEEDS = ("all", "discovery", "follow")
DASHBOARD_PROVIDERS = ("all", "creator", "shop")
MAX_DASHBOARD_DAYS = 90
MAX_GRANT_DAYS = 366
# Interaction kinds -> the relevance model's kinds (a click counts as a view).
MODEL_KIND = {
    "impression": "impression",
    "view": "view",
    "click": "view",
    "like": "like",
    "purchase": "purchase",
}


def pkey(provider_type: str, provider_id: int) -> int:
    """A provider as one integer for the re-ranker: creator c -> 2c, shop s -> 2s + 1."""
    return provider_id * 2 + (1 if provider_type == "shop" else 0)


@functools.cache
def _config_from(path: str | None) -> ranking.Config:
    return ranking.load_file(path)


def config_for(settings: Settings) -> ranking.Config:
    """The ranking configuration of ``TRUSTLIVE_FEED_CONFIG`` (read once per path)."""
    return _config_from(settings.feed_config)


def _hour(at: dt.datetime) -> int:
    return int(at.timestamp() // 3600)


def _ts(at: dt.datetime) -> float:
    return at.timestamp()


# --- in-process caches ----------------------------------------------------------------------------


@dataclass
class _Caches:
    """What requests read without asking the database every time, per database (engine)."""

    # provider key -> (window impressions, has something published, first item (unix seconds))
    providers: dict[int, tuple[int, bool, float]] = field(default_factory=dict)
    window_total: int = 0
    active_count: int = 0
    providers_read_at: dt.datetime | None = None
    providers_checked: float = -math.inf
    grants: dict[int, tuple[int, int]] = field(default_factory=dict)  # provider key -> (grant id, left)
    grants_checked: float = -math.inf
    pools: dict[str, tuple[float, Any]] = field(default_factory=dict)
    trust: dict[tuple[str, int], tuple[float, float]] = field(default_factory=dict)
    cards: dict[tuple[str, int], tuple[float, Any]] = field(default_factory=dict)

    def put_provider(self, key: int, window: int, active: bool, first: float) -> None:
        old = self.providers.get(key)
        if old is not None:
            self.window_total -= old[0]
            self.active_count -= 1 if (old[1] or old[0] > 0) else 0
        self.providers[key] = (window, active, first)
        self.window_total += window
        self.active_count += 1 if (active or window > 0) else 0

    def add_window(self, key: int, n: int) -> None:
        window, active, first = self.providers.get(key, (0, False, time.time()))
        self.put_provider(key, window + n, active, first)


_CACHES: weakref.WeakKeyDictionary[Any, _Caches] = weakref.WeakKeyDictionary()


def _caches(session: AsyncSession) -> _Caches:
    engine = session.bind
    found = _CACHES.get(engine)
    if found is None:
        found = _CACHES[engine] = _Caches()
    return found


def reset_caches(session: AsyncSession) -> None:
    """Forget this database's cached state (tests; after a bulk load)."""
    _CACHES.pop(session.bind, None)


async def _provider_state(session: AsyncSession) -> _Caches:
    """The providers' window exposure, refreshed every PROVIDERS_TTL seconds by reading only the
    rows changed since the last read (a little overlap catches transactions that committed late;
    rows hold absolute values, so reading one twice is harmless)."""
    c = _caches(session)
    if time.monotonic() - c.providers_checked < PROVIDERS_TTL:
        return c
    started = utcnow()
    since = c.providers_read_at - READ_OVERLAP if c.providers_read_at is not None else None
    for ptype, pid, window, active_items, first in await repo.providers_changed(session, since):
        c.put_provider(pkey(ptype, pid), int(window), active_items > 0, _ts(first))
    c.providers_read_at = started
    c.providers_checked = time.monotonic()
    return c


async def _running_grants(session: AsyncSession, now: dt.datetime) -> dict[int, tuple[int, int]]:
    """Provider key -> (grant id, impressions left) of the grants running now (the one ending
    first when a provider has several)."""
    c = _caches(session)
    if time.monotonic() - c.grants_checked >= GRANTS_TTL:
        found: dict[int, tuple[int, int]] = {}
        for gid, ptype, pid, budget, used in await repo.running_grants(session, now):
            found.setdefault(pkey(ptype, pid), (gid, budget - used))
        c.grants, c.grants_checked = found, time.monotonic()
    return c.grants


async def _trust_of(session: AsyncSession, keys: list[int]) -> np.ndarray:
    """Trust multipliers of providers (``pkey``s; creators by their reputation score, shops by
    their experience score), aligned with ``keys`` and cached TRUST_TTL seconds."""
    c = _caches(session)
    now = time.monotonic()
    hits = [c.trust.get(k) for k in keys]
    out = np.ones(len(keys))
    missing: dict[str, list[int]] = defaultdict(list)
    where: dict[int, int] = {}
    for j, (k, hit) in enumerate(zip(keys, hits, strict=True)):
        if hit is not None and hit[1] > now:
            out[j] = hit[0]
        else:
            missing[PROVIDER_TYPES[k & 1]].append(k >> 1)
            where[k] = j
    for ptype, ids in missing.items():
        for pid, value in (await trust.quality_multipliers(session, ptype, ids)).items():
            k = pkey(ptype, pid)
            out[where[k]] = value
            c.trust[k] = (value, now + TRUST_TTL)
    return out


async def _pool(session: AsyncSession, name: str, ttl: float, load: Any) -> Any:
    c = _caches(session)
    hit = c.pools.get(name)
    if hit is not None and hit[0] > time.monotonic():
        return hit[1]
    value = await load()
    c.pools[name] = (time.monotonic() + ttl, value)
    return value


# --- rate limits --------------------------------------------------------------------------------


class RateLimiter:
    """At most ``limit`` calls per minute per key, counted in this process (fixed one-minute
    windows). Several worker processes each allow the limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._windows: dict[str, tuple[int, int]] = {}

    def hit(self, key: str) -> bool:
        minute = int(time.monotonic() // 60)
        if len(self._windows) > 50_000:
            self._windows = {k: v for k, v in self._windows.items() if v[0] == minute}
        start, count = self._windows.get(key, (minute, 0))
        if start != minute:
            start, count = minute, 0
        if count >= self.limit:
            return False
        self._windows[key] = (start, count + 1)
        return True


_LIMITERS: dict[str, RateLimiter] = {}


def _limit_rate(kind: str, key: str, per_minute: int) -> None:
    limiter = _LIMITERS.get(kind)
    if limiter is None or limiter.limit != per_minute:
        limiter = _LIMITERS[kind] = RateLimiter(per_minute)
    if not limiter.hit(key):
        raise TooManyRequests(
            "too many reports; wait a minute", code="too_many_requests", headers={"Retry-After": "60"}
        )


def caller_key(viewer: Principal | None, address: str | None) -> str:
    return f"user:{viewer.id}" if viewer is not None else f"addr:{address or '-'}"


# --- cursors ------------------------------------------------------------------------------------

_CURSOR_KEYS = {
    "discovery": ({"s"},),
    "follow": ({"o", "l"}, {"o", "t", "k", "i"}),
}
_CURSOR_BOUNDS = {
    "o": (0, MAX_POSITION),
    "l": (0, MAX_LIVE_ON_TOP),
    "t": (0, 2**53),
    "k": (0, 1),
    "i": (0, 2**62),
}


def _bad_cursor() -> BadRequest:
    return BadRequest("cursor: not a cursor this feed issued", code="bad_cursor")


def encode_cursor(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(feed: str, cursor: str | None) -> dict[str, Any] | None:
    """The cursor's fields, checked strictly: 400 ``bad_cursor`` for anything this feed did not
    issue (wrong shape, wrong types, values out of bounds)."""
    if cursor is None or cursor == "":
        return None
    try:
        if len(cursor) > 200:
            raise ValueError
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise _bad_cursor() from None
    if not isinstance(data, dict) or set(data) not in _CURSOR_KEYS[feed]:
        raise _bad_cursor()
    for key, value in data.items():
        if key == "s":
            if not isinstance(value, str) or not 1 <= len(value) <= 32:
                raise _bad_cursor()
            continue
        low, high = _CURSOR_BOUNDS[key]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise _bad_cursor()
    return data


def check_limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise ValidationFailed(f"limit: from 1 to {MAX_LIMIT}", field="limit", code="bad_limit")
    return limit


# --- the item index (kept by the outbox events) -------------------------------------------------


async def _sync_item(
    session: AsyncSession,
    kind: str,
    ref_id: int,
    provider: tuple[str, int] | None,
    published_at: dt.datetime | None,
    now: dt.datetime,
) -> int | None:
    """Bring the index in line with the item as its domain holds it now (``published_at`` None:
    not published any more). Reads state, not the event, so redelivered or reordered events
    change nothing. Returns the feed item id, if indexed."""
    existing = await repo.item_by_ref(session, kind, ref_id, lock=True)
    if published_at is None or provider is None:
        if existing is not None and existing.active:
            await repo.set_item_active(session, existing.id, False)
            await repo.drop_active(session, existing.provider_type, existing.provider_id, now)
        return existing.id if existing is not None else None
    if existing is None:
        new_id = await repo.insert_item(
            session,
            {"kind": kind, "ref_id": ref_id, "provider_type": provider[0], "provider_id": provider[1],
             "published_at": published_at, "active": True},
        )  # fmt: skip
        if new_id is not None:
            await repo.upsert_providers(session, [(provider[0], provider[1], published_at, 1)], now)
            return new_id
        existing = await repo.item_by_ref(session, kind, ref_id, lock=True)  # a twin indexed it
        if existing is None:
            return None
    if not existing.active:
        await repo.set_item_active(session, existing.id, True)
        await repo.upsert_providers(
            session, [(existing.provider_type, existing.provider_id, existing.published_at, 1)], now
        )
    return existing.id


async def sync_video(session: AsyncSession, video_id: int, now: dt.datetime | None = None) -> int | None:
    card = (await content.video_cards(session, [video_id])).get(video_id)
    published = card is not None and card.status == "published"
    return await _sync_item(
        session, "video", video_id, ("creator", card.creator_id) if card else None,
        card.created_at if card and published else None, now or utcnow(),
    )  # fmt: skip


async def sync_product(session: AsyncSession, product_id: int, now: dt.datetime | None = None) -> int | None:
    found = await catalog.published_after(session, product_id - 1, 1)
    row = found[0] if found and found[0][0] == product_id else None
    return await _sync_item(
        session,
        "product",
        product_id,
        ("shop", row[1]) if row else None,
        row[2] if row else None,
        now or utcnow(),
    )


async def index_items(
    session: AsyncSession,
    items: Sequence[tuple[str, int, str, int, dt.datetime]],
    now: dt.datetime | None = None,
) -> int:
    """Index many published items at once, (kind, ref_id, provider_type, provider_id,
    published_at) each, skipping those indexed already: the first run's backfill, and loaders of
    big worlds (the simulator, the benchmarks). Returns how many were new."""
    now = now or utcnow()
    added = 0
    for start in range(0, len(items), BACKFILL_PAGE):
        chunk = items[start : start + BACKFILL_PAGE]
        rows = [
            {"kind": k, "ref_id": r, "provider_type": t, "provider_id": p, "published_at": at, "active": True}
            for k, r, t, p, at in chunk
        ]
        new = await repo.insert_items(session, rows)
        added += len(new)
        per: dict[tuple[str, int], list[Any]] = {}
        for ptype, pid, at in new:
            entry = per.setdefault((ptype, pid), [at, 0])
            entry[0] = min(entry[0], at)
            entry[1] += 1
        await repo.upsert_providers(session, [(t, p, at, n) for (t, p), (at, n) in per.items()], now)
    return added


_DONE = -1


async def backfill(session: AsyncSession, now: dt.datetime | None = None) -> int:
    """Index what was published before the feed listened to events, a step per call (BACKFILL_STEP
    video ids and as many products), so no transaction runs long: videos by scanning their ids up
    to the newest (``content.video_cards`` says which are published), products in id order
    (``catalog.published_after``). The position is kept in ``feed_state`` (``backfill_videos``,
    ``backfill_products``; -1 when done) and claimed by compare-and-set: of several workers, one
    scans each step. Items indexed already are skipped. Returns how many were new."""
    now = now or utcnow()
    added = 0
    at = await repo.get_state(session, "backfill_videos")
    if at != _DONE:
        newest = await content.recent_videos(session, since=dt.datetime(2000, 1, 1, tzinfo=dt.UTC), limit=500)
        top = max((v.id for v in newest), default=0)  # ids grow with time: the newest hold the largest
        start = at or 1
        stop = min(start + BACKFILL_STEP, top + 1)
        if await repo.swap_state(session, "backfill_videos", at, stop if stop <= top else _DONE, now):
            for chunk in range(start, stop, BACKFILL_PAGE):
                cards = await content.video_cards(
                    session, list(range(chunk, min(chunk + BACKFILL_PAGE, stop)))
                )
                added += await index_items(session, [
                    ("video", v.id, "creator", v.creator_id, v.created_at)
                    for v in cards.values() if v.status == "published"
                ], now)  # fmt: skip
    after = await repo.get_state(session, "backfill_products")
    if after != _DONE:
        page = await catalog.published_after(session, after or 0, BACKFILL_STEP)
        done = len(page) < BACKFILL_STEP
        if await repo.swap_state(session, "backfill_products", after, _DONE if done else page[-1][0], now):
            added += await index_items(
                session, [("product", pid, "shop", sid, at) for pid, sid, at in page], now
            )
    return added


TOPICS = (
    "content.video_published",
    "content.video_hidden",
    "content.video_liked",
    "content.video_unliked",
    "catalog.product_published",
    "catalog.product_unpublished",
    "orders.paid",
    "live.session_started",
)


async def on_event(session: AsyncSession, event: events.Event) -> None:
    """Outbox subscriber (``TOPICS``): keep the item index in line with videos and products, make a
    live-streaming creator a provider, and record likes and purchases as interactions.
    Idempotent: items are synced from their current state; a like or a purchase is one row per
    user and item, which a redelivered event only touches."""
    p = event.payload
    now = utcnow()
    topic = event.topic
    if topic in ("content.video_published", "content.video_hidden") and isinstance(p.get("video_id"), int):
        await sync_video(session, p["video_id"], now)
    elif topic in ("catalog.product_published", "catalog.product_unpublished") and isinstance(
        p.get("product_id"), int
    ):
        await sync_product(session, p["product_id"], now)
    elif (
        topic == "content.video_liked"
        and isinstance(p.get("video_id"), int)
        and isinstance(p.get("user_id"), int)
    ):
        item_id = await _indexed(session, "video", p["video_id"], now)
        if item_id is not None:
            await repo.add_interactions(
                session, [_interaction(p["user_id"], item_id, "like", event.created_at)], count=False
            )
    elif (
        topic == "content.video_unliked"
        and isinstance(p.get("video_id"), int)
        and isinstance(p.get("user_id"), int)
    ):
        item_id = (await repo.item_ids_of(session, "video", [p["video_id"]])).get(p["video_id"])
        if item_id is not None:
            await repo.remove_interaction(session, p["user_id"], item_id, "like")
    elif topic == "orders.paid" and isinstance(p.get("order_id"), int):
        await _purchased(session, p["order_id"], event.created_at, now)
    elif topic == "live.session_started" and isinstance(p.get("creator_id"), int):
        await repo.ensure_providers(session, [("creator", p["creator_id"])], now)


async def _indexed(session: AsyncSession, kind: str, ref_id: int, now: dt.datetime) -> int | None:
    found = (await repo.item_ids_of(session, kind, [ref_id])).get(ref_id)
    if found is not None:
        return found
    return await (sync_video if kind == "video" else sync_product)(session, ref_id, now)


def _interaction(user_id: int, item_id: int, kind: str, at: dt.datetime) -> dict[str, Any]:
    return {"user_id": user_id, "item_id": item_id, "kind": kind, "count": 1, "last_at": at}


async def _purchased(session: AsyncSession, order_id: int, at: dt.datetime, now: dt.datetime) -> None:
    try:
        order = await orders.load_order(session, order_id)
    except NotFound:
        return
    rows = []
    for product_id in sorted({line.product_id for line in order.lines}):
        item_id = await _indexed(session, "product", product_id, now)
        if item_id is not None:
            rows.append(_interaction(order.buyer_id, item_id, "purchase", at))
    await repo.add_interactions(session, rows, count=False)


# --- candidates and pages -----------------------------------------------------------------------


@dataclass
class _Cand:
    """One item on its way to a page (the chosen few; the many candidates travel as ``_Arrays``)."""

    key: int  # the re-ranker's item id: the feed item id, or -session id for a live room
    kind: str
    ref_id: int
    ptype: str
    pid: int
    item_id: int  # 0 for a live room
    published_at: dt.datetime | None


KINDS = ("live", "video", "product")
PROVIDER_TYPES = ("creator", "shop")
_NO_TIME = float("nan")


@dataclass(frozen=True)
class _Arrays:
    """Candidates as aligned arrays, so a request handles hundreds of them without making an
    object for each: key (feed item id, -session id for a live room), kind (index into KINDS),
    ref id, provider key (``pkey``), published (unix seconds; NaN unknown)."""

    keys: np.ndarray
    kinds: np.ndarray
    refs: np.ndarray
    pkeys: np.ndarray
    published: np.ndarray

    @classmethod
    def of(cls, rows: Sequence[tuple[int, str, int, str, int, dt.datetime | None]]) -> _Arrays:
        return cls(
            np.array([r[0] for r in rows], dtype=np.int64),
            np.array([KINDS.index(r[1]) for r in rows], dtype=np.int8),
            np.array([r[2] for r in rows], dtype=np.int64),
            np.array([pkey(r[3], r[4]) for r in rows], dtype=np.int64),
            np.array([r[5].timestamp() if r[5] is not None else _NO_TIME for r in rows], dtype=np.float64),
        )

    def take(self, which: np.ndarray) -> _Arrays:
        return _Arrays(self.keys[which], self.kinds[which], self.refs[which], self.pkeys[which],
                       self.published[which])  # fmt: skip

    @staticmethod
    def join(*parts: _Arrays) -> _Arrays:
        return _Arrays(
            *(np.concatenate([getattr(p, f) for p in parts]) for f in _Arrays.__dataclass_fields__)
        )

    def cand(self, i: int) -> _Cand:
        key, kind, pk = int(self.keys[i]), KINDS[int(self.kinds[i])], int(self.pkeys[i])
        at = float(self.published[i])
        published = None if math.isnan(at) else dt.datetime.fromtimestamp(at, dt.UTC)
        return _Cand(key, kind, int(self.refs[i]), PROVIDER_TYPES[pk & 1], pk >> 1, max(key, 0), published)


_EMPTY = _Arrays.of([])
_UNKNOWN_PROVIDER = (0, False, 0.0)  # no impression in the window, nothing published, not new


async def _pool_arrays(session: AsyncSession, config: ranking.Config, now: dt.datetime) -> _Arrays:
    """The fresh-content pool (the POOL_FRESH newest items), the new-creator pool (the newest item
    of each of the POOL_NEW least exposed new creators) and the long-tail pool (the same for the
    POOL_TAIL least exposed of all providers: the exposure floor needs them as candidates, and the
    long tail is most creators, with one item each), deduplicated; read every POOLS_TTL seconds.
    As impressions come in, the least exposed change, so the pools turn over."""

    async def load() -> _Arrays:
        since = now - dt.timedelta(days=config.new_creator_days)
        rows: dict[int, Any] = {}
        for row in [
            *await repo.newest_items(session, POOL_FRESH),
            *await repo.newest_item_of(session, await repo.least_exposed_providers(session, since, POOL_NEW)),
            *await repo.newest_item_of(session, await repo.least_exposed_providers(session, None, POOL_TAIL)),
        ]:
            rows.setdefault(row[0], tuple(row[:6]))
        return _Arrays.of(list(rows.values()))

    return await _pool(session, "pools", POOLS_TTL, load)


async def _live_pool(session: AsyncSession) -> list[Any]:
    """The rooms on air (at most POOL_LIVE), read every LIVE_TTL seconds."""
    return await _pool(
        session, "live", LIVE_TTL,
        lambda: live.list_public_sessions(session, None, status="live", before_id=None, limit=POOL_LIVE),
    )  # fmt: skip


async def _history(
    session: AsyncSession, user_id: int, config: ranking.Config
) -> tuple[list[int], np.ndarray, set[int]]:
    """The user's recent items, most recent first, each once with its strongest interaction's
    model weight, weighted by recency (``ranking.history_weights``); and the providers (keys) of
    what they interacted with (their live rooms are more relevant to them)."""
    rows = await repo.history(session, user_id, config.history_items * 3)
    strongest: dict[int, float] = {}
    order: list[int] = []
    providers: set[int] = set()
    for item_id, kind, ptype, pid in rows:
        providers.add(pkey(ptype, pid))
        weight = config.weights[MODEL_KIND[kind]]
        if item_id not in strongest:
            order.append(item_id)
            strongest[item_id] = weight
        else:
            strongest[item_id] = max(strongest[item_id], weight)
    order = order[: config.history_items]
    weights = ranking.history_weights(np.array([strongest[i] for i in order], dtype=np.float64), config)
    return order, weights, providers


async def _collaborative(
    session: AsyncSession, items: list[int], weights: np.ndarray, config: ranking.Config
) -> tuple[_Arrays, np.ndarray]:
    """Collaborative-filtering candidates: the neighbours of the user's recent items, each scored
    sum(history weight x similarity) (``relevance.score_user``'s formula over the stored
    neighbours), the user's own items left out; the best ``candidates``, scores over the best."""
    head = items[:HISTORY_FETCH]
    if not head:
        return _EMPTY, np.zeros(0)
    w = dict(zip(head, weights[: len(head)].tolist(), strict=True))
    history = set(items)
    scores: dict[int, float] = defaultdict(float)
    info: dict[int, tuple[Any, ...]] = {}
    for item_id, neighbour_id, sim, kind, ref_id, ptype, pid, published_at in await repo.neighbours_of(
        session, head, NEIGHBOURS_FETCH
    ):
        if neighbour_id not in history:
            scores[neighbour_id] += w[item_id] * sim
            info[neighbour_id] = (neighbour_id, kind, ref_id, ptype, pid, published_at)
    best = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[: config.candidates]
    if not best:
        return _EMPTY, np.zeros(0)
    top = best[0][1]
    return _Arrays.of([info[i] for i, _ in best]), np.array([v / top if top > 0 else 0.0 for _, v in best])


async def _discovery_candidates(
    session: AsyncSession,
    viewer: Principal | None,
    config: ranking.Config,
    now: dt.datetime,
    skip: np.ndarray,
) -> tuple[_Arrays, np.ndarray]:
    """Every candidate of the request and its relevance (docs/feed.md, "Feeds"): collaborative
    filtering (signed in), the pools, the rooms on air; ``skip``: keys served already."""
    cf, cf_rel = _EMPTY, np.zeros(0)
    history = np.zeros(0, dtype=np.int64)
    affinity: set[int] = set()
    if viewer is not None:
        items, weights, affinity = await _history(session, viewer.id, config)
        history = np.array(items, dtype=np.int64)
        cf, cf_rel = await _collaborative(session, items, weights, config)
    pools = await _pool_arrays(session, config, now)
    pools = pools.take(~np.isin(pools.keys, cf.keys))
    cands = _Arrays.join(cf, pools)
    relevance = np.concatenate([cf_rel, np.zeros(len(pools.keys))])
    age_h = np.maximum(now.timestamp() - cands.published, 0.0) / 3600
    relevance += np.where(
        np.isnan(age_h),
        0.0,
        config.fresh_weight * 0.5 ** (np.nan_to_num(age_h) / config.fresh_half_life_hours),
    )
    relevance = np.where(np.isin(cands.keys, history), relevance * config.seen_factor, relevance)
    rooms = [s for s in await _live_pool(session) if s.status == "live"]
    if rooms:
        on_air = _Arrays.of([(-s.id, "live", s.id, "creator", s.creator_id, s.started_at) for s in rooms])
        cands = _Arrays.join(cands, on_air)
        relevance = np.concatenate([
            relevance,
            [config.live_weight + (config.live_affinity if pkey("creator", s.creator_id) in affinity else 0.0)
             for s in rooms],
        ])  # fmt: skip
    keep = ~np.isin(cands.keys, skip)
    return cands.take(keep), relevance[keep]


async def _rank(
    session: AsyncSession, cands: _Arrays, relevance: np.ndarray, k: int, config: ranking.Config,
    now: dt.datetime,
) -> tuple[list[_Cand], dict[int, tuple[int, int]], _Caches]:  # fmt: skip
    """The re-ranked page (``ranking.rerank``) with trust multipliers, new-creator flags, window
    exposure and grants of the candidates' providers; with the running grants and the provider
    state it was ranked with."""
    state = await _provider_state(session)
    grants = await _running_grants(session, now)
    if not len(cands.keys):
        return [], grants, state
    providers, inverse = np.unique(cands.pkeys, return_inverse=True)
    keys = providers.tolist()
    trust_of = await _trust_of(session, keys)
    # The providers' window exposure and first item, and the impressions left on their grants,
    # as arrays aligned with ``providers`` (sorted, unique: a ranking.CreatorState as it is).
    known = [state.providers.get(p, _UNKNOWN_PROVIDER) for p in keys]
    window = np.fromiter((kn[0] for kn in known), dtype=np.int64, count=len(keys))
    first = np.fromiter((kn[2] for kn in known), dtype=np.float64, count=len(keys))
    left = np.zeros(len(keys), dtype=np.int64)
    if grants:
        granted = np.fromiter(grants, dtype=np.int64, count=len(grants))
        pos = np.minimum(np.searchsorted(providers, granted), len(keys) - 1)
        hit = providers[pos] == granted
        left[pos[hit]] = np.maximum([g[1] for g in grants.values()], 0)[hit]
    new_since = (now - dt.timedelta(days=config.new_creator_days)).timestamp()
    candidates = ranking.Candidates.of(
        cands.keys, relevance, cands.pkeys, (first >= new_since)[inverse], trust_of[inverse]
    )
    creator_state = ranking.CreatorState(
        providers, window, left, state.window_total, max(state.active_count, 1)
    )
    page = ranking.rerank(candidates, creator_state, k, config)
    order = np.argsort(cands.keys)
    at = order[np.searchsorted(cands.keys, page.item_ids, sorter=order)]
    return [cands.cand(int(i)) for i in at], grants, state


@dataclass
class _Shown:
    cand: _Cand
    title: str
    image_url: str | None
    provider_name: str
    price_fen: int | None = None
    like_count: int | None = None


async def _cached_cards(session: AsyncSession, kind: str, ids: Sequence[int], load: Any) -> dict[int, Any]:
    """Cards by id, from the cache when younger than CARDS_TTL, the rest through ``load(ids)``."""
    c = _caches(session)
    now = time.monotonic()
    found: dict[int, Any] = {}
    missing = []
    for i in dict.fromkeys(ids):
        hit = c.cards.get((kind, i))
        if hit is not None and hit[0] > now:
            found[i] = hit[1]
        else:
            missing.append(i)
    if missing:
        if len(c.cards) > MAX_CACHED_CARDS:
            c.cards.clear()
        for i, card in (await load(missing)).items():
            found[i] = card
            c.cards[(kind, i)] = (now + CARDS_TTL, card)
    return found


async def _load_videos(session: AsyncSession, ids: list[int]) -> dict[int, Any]:
    return await content.video_cards(session, ids)


async def _load_products(session: AsyncSession, ids: list[int]) -> dict[int, Any]:
    return {p.id: p for p in await catalog.product_cards(session, ids)}


async def _load_names(session: AsyncSession, ids: list[int]) -> dict[int, str]:
    return await accounts.display_names(session, ids)


async def _hydrate(
    session: AsyncSession,
    cands: list[_Cand],
    lives: dict[int, Any] | None = None,
    videos: dict[int, Any] | None = None,
) -> list[_Shown]:
    """The cards of the chosen items, in the given order (cached up to CARDS_TTL seconds, so a
    video hidden or a product unpublished leaves the feed within that time even before its event
    reaches the index); items no longer visible (hidden, unpublished, off air) are left out.
    ``lives`` and ``videos``: cards the caller has read already."""
    video_ids = [c.ref_id for c in cands if c.kind == "video"]
    product_ids = [c.ref_id for c in cands if c.kind == "product"]
    if videos is None:
        videos = await _cached_cards(session, "video", video_ids, functools.partial(_load_videos, session))
    products = await _cached_cards(
        session, "product", product_ids, functools.partial(_load_products, session)
    )
    names = await _cached_cards(
        session,
        "name",
        sorted({v.creator_id for v in videos.values()}),
        functools.partial(_load_names, session),
    )
    lives = lives if lives is not None else {s.id: s for s in await _live_pool(session)}
    out = []
    for c in cands:
        if c.kind == "video":
            v = videos.get(c.ref_id)
            if v is None or v.status != "published":
                continue
            out.append(_Shown(c, v.title, v.cover_url, names.get(v.creator_id, ""), like_count=v.like_count))
        elif c.kind == "product":
            p = products.get(c.ref_id)
            if p is None or p.status != "published":
                continue
            out.append(_Shown(c, p.title, p.image_url, p.shop_name, price_fen=p.min_price_fen))
        else:
            s = lives.get(c.ref_id)
            if s is None or s.status != "live":
                continue
            out.append(_Shown(c, s.title, s.cover_url, s.creator_name))
    return out


def target_url(feed: str, kind: str, ref_id: int) -> str:
    """Where a card leads: a product page carries the feed as the order's traffic source; a video
    page attributes its own purchases (short_video, its creator); a live room its own."""
    if kind == "product":
        return f"/p/{ref_id}?source={SOURCES[feed]}"
    if kind == "video":
        return f"/videos/{ref_id}"
    return f"/live/{ref_id}"


async def _serve(
    session: AsyncSession,
    feed: str,
    viewer: Principal | None,
    shown: list[_Shown],
    *,
    first_position: int,
    page: int,
    seen: list[int],
    grants: dict[int, tuple[int, int]],
    new_since: float | None,
    state: _Caches | None,
    now: dt.datetime,
) -> tuple[str, list[FeedItemOut]]:
    """Record the page (its unguessable id, items and positions) and build its cards. A discovery
    item whose provider has a running grant with budget left is served under that grant: its
    impressions will draw on it."""
    serve_id = secrets.token_urlsafe(16)
    items: list[list[Any]] = []
    out: list[FeedItemOut] = []
    for i, s in enumerate(shown):
        c = s.cand
        position = first_position + i
        grant = grants.get(pkey(c.ptype, c.pid)) if feed == "discovery" else None
        grant_id = grant[0] if grant is not None and grant[1] > 0 else 0
        items.append([c.kind, c.ref_id, c.ptype, c.pid, c.item_id, grant_id])
        first = (state.providers.get(pkey(c.ptype, c.pid)) if state else None) or None
        out.append(FeedItemOut(
            position=position, kind=c.kind, id=c.ref_id, title=s.title, image_url=s.image_url,
            provider_type=c.ptype, provider_id=c.pid, provider_name=s.provider_name,
            url=f"/feed/go/{serve_id}/{position}", target_url=target_url(feed, c.kind, c.ref_id),
            published_at=c.published_at, price_fen=s.price_fen, like_count=s.like_count,
            new_creator=bool(first is not None and new_since is not None and first[2] >= new_since),
            boosted=bool(grant_id),
        ))  # fmt: skip
    await repo.add_serve(session, {
        "id": serve_id, "feed": feed, "user_id": viewer.id if viewer else None, "created_at": now,
        "page": page, "first_position": first_position, "items": items, "seen": seen,
    })  # fmt: skip
    return serve_id, out


async def _previous_serve(
    session: AsyncSession, feed: str, viewer: Principal | None, serve_id: str, now: dt.datetime
) -> FeedServe:
    serve = (await repo.serves_by_ids(session, [serve_id])).get(serve_id)
    if (
        serve is None
        or serve.feed != feed
        or serve.user_id != (viewer.id if viewer else None)
        or now - serve.created_at > SERVE_TTL
        or serve.page >= MAX_PAGES
    ):
        raise _bad_cursor()
    return serve


async def discovery_feed(
    session: AsyncSession,
    viewer: Principal | None,
    config: ranking.Config = ranking.DEFAULT,
    *,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
    now: dt.datetime | None = None,
) -> FeedPageOut:
    """A page of the discovery feed (发现): for a signed-in user, collaborative-filtering
    candidates from their recent history, plus the fresh-content and new-creator pools and the
    live rooms on air (signed out: the pools and the rooms); relevance, trust tilt and the
    inclusive re-ranking (``ranking.rerank``). ``cursor`` continues the scroll: nothing served on
    its earlier pages comes again. 422 ``bad_limit``, 400 ``bad_cursor`` (also for a cursor of another
    user, of the other feed, or over a day old); nothing is recorded then."""
    limit = check_limit(limit)
    data = decode_cursor("discovery", cursor)
    now = now or utcnow()
    seen: list[int] = []
    first_position, page = 0, 1
    if data is not None:
        previous = await _previous_serve(session, "discovery", viewer, data["s"], now)
        seen = list(previous.seen)
        first_position = previous.first_position + len(previous.items)
        page = previous.page + 1
    cands, relevance = await _discovery_candidates(
        session, viewer, config, now, np.array(seen, dtype=np.int64)
    )
    chosen, grants, state = await _rank(session, cands, relevance, limit + 4, config, now)
    shown = await _hydrate(session, chosen)
    if len(shown) < min(limit, len(chosen)):
        # More chosen items than the margin are no longer shown (hidden or unpublished since the
        # neighbours were built or the pools read): rank once more without them.
        gone = np.array(sorted({c.key for c in chosen} - {s.cand.key for s in shown}), dtype=np.int64)
        keep = ~np.isin(cands.keys, gone)
        cands, relevance = cands.take(keep), relevance[keep]
        chosen, grants, state = await _rank(session, cands, relevance, limit + 4, config, now)
        shown = await _hydrate(session, chosen)
    shown = shown[:limit]
    new_since = (now - dt.timedelta(days=config.new_creator_days)).timestamp()
    serve_id, items = await _serve(
        session, "discovery", viewer, shown, first_position=first_position, page=page,
        seen=[*seen, *(s.cand.key for s in shown)], grants=grants, new_since=new_since, state=state, now=now,
    )  # fmt: skip
    # More while candidates are left (a page may be short when the per-creator limit held some back).
    more = bool(shown) and len(cands.keys) > len(shown) and page < MAX_PAGES
    return FeedPageOut("discovery", serve_id, items, encode_cursor({"s": serve_id}) if more else None)


_RANK = {"video": 0, "product": 1}  # at the same instant, videos come before products


async def follow_feed(
    session: AsyncSession,
    viewer: Principal,
    *,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
    now: dt.datetime | None = None,
) -> FeedPageOut:
    """A page of the follow feed (关注, private domain): the live rooms on air of the creators the
    user follows first (latest start first), then the followed creators' videos and the followed
    shops' products, newest first. Cursor pages; 422 ``bad_limit`` / ``bad_cursor`` (nothing
    recorded then)."""
    limit = check_limit(limit)
    data = decode_cursor("follow", cursor) or {"o": 0, "l": 0}
    now = now or utcnow()
    followed = await social.followed_ids(session, viewer.id)
    creators, shops = followed.get("creator", []), followed.get("shop", [])
    chosen: list[_Cand] = []
    lives: dict[int, Any] = {}
    live_done = data.get("l", MAX_LIVE_ON_TOP)
    if "l" in data:
        rooms = (await live.live_now_of(session, creators))[:MAX_LIVE_ON_TOP] if creators else []
        lives = {s.id: s for s in rooms}
        for s in rooms[data["l"] : data["l"] + limit]:
            chosen.append(_Cand(-s.id, "live", s.id, "creator", s.creator_id, 0, s.started_at))
        live_done = data["l"] + len(chosen)
    room = limit - len(chosen)
    timeline: list[_Cand] = []
    loaded: dict[int, Any] = {}  # the video cards read for the page: fresh, not from the cache
    if room > 0:
        at = _EPOCH + dt.timedelta(microseconds=data["t"]) if "t" in data else None
        last_rank, last_id = data.get("k", 0), data.get("i", 0)
        video_before = product_before = None
        if at is not None:
            video_before = (at, last_id if last_rank == 0 else 0)
            product_before = (at, last_id if last_rank == 1 else 2**62)
        videos = (
            await content.recent_videos_of(session, creators, limit=room, before=video_before)
            if creators
            else []
        )
        products = (
            await catalog.published_of_shops(session, shops, limit=room, before=product_before)
            if shops
            else []
        )
        # The cards carry their feed item ids, so impressions and views of the private domain
        # become interactions for collaborative filtering too (an item not indexed yet: 0).
        video_items = await repo.item_ids_of(session, "video", [v.id for v in videos])
        product_items = await repo.item_ids_of(session, "product", [p[0] for p in products])
        for v in videos:
            item_id = video_items.get(v.id, 0)
            timeline.append(_Cand(item_id, "video", v.id, "creator", v.creator_id, item_id, v.created_at))
            loaded[v.id] = v
        for pid, sid, published_at in products:
            item_id = product_items.get(pid, 0)
            timeline.append(_Cand(item_id, "product", pid, "shop", sid, item_id, published_at))
        timeline.sort(key=lambda c: (-_micros(c.published_at), _RANK[c.kind], -c.ref_id))
        timeline = timeline[:room]
    shown = await _hydrate(session, [*chosen, *timeline], lives, loaded)
    serve_id, items = await _serve(
        session, "follow", viewer, shown, first_position=data["o"], page=1, seen=[], grants={},
        new_since=None, state=None, now=now,
    )  # fmt: skip
    next_cursor = None
    position = data["o"] + len(shown)
    if position < MAX_POSITION:
        if timeline and len(chosen) + len(timeline) == limit:
            last = timeline[-1]
            next_cursor = encode_cursor(
                {"o": position, "t": _micros(last.published_at), "k": _RANK[last.kind], "i": last.ref_id}
            )
        elif not timeline and len(chosen) == limit:
            next_cursor = encode_cursor({"o": position, "l": live_done})
    return FeedPageOut("follow", serve_id, items, next_cursor)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _micros(at: dt.datetime | None) -> int:
    """Microseconds since 1970 UTC, exactly (a float timestamp would round)."""
    return (at - _EPOCH) // dt.timedelta(microseconds=1) if at is not None else 0


# --- impressions, views, clicks -----------------------------------------------------------------


def _not_served() -> ValidationFailed:
    return ValidationFailed(
        "events: every report must name an item served to you in that page", field="events", code="not_served"
    )


async def record_events(
    session: AsyncSession,
    viewer: Principal | None,
    data: EventsIn,
    *,
    caller: str,
    now: dt.datetime | None = None,
) -> EventsOut:
    """Record a batch of impressions, views and clicks. Every report must name a position of a page
    served to the caller (the same user, or signed out for a page served signed out) within the
    last day, else the whole batch is refused with 422 ``not_served`` and nothing is written.
    Each (page, position, kind) counts once: a replay changes nothing. New impressions add to
    the provider's exposure (hourly counters and the rolling window) and, on the discovery feed,
    use one unit of the grant the item was served under while it has budget left. 429 past
    EVENTS_PER_MINUTE requests a minute per caller."""
    data = validated(data)
    _limit_rate("events", caller, EVENTS_PER_MINUTE)
    return await _record(session, viewer, data.events, now or utcnow())


async def click(
    session: AsyncSession,
    viewer: Principal | None,
    serve_id: str,
    position: int,
    *,
    caller: str,
    now: dt.datetime | None = None,
) -> str:
    """Log a click on a served card (once per page and position) and say where it leads (with the
    feed's attribution for a product). 422 ``not_served`` as for reports."""
    _limit_rate("clicks", caller, CLICKS_PER_MINUTE)
    if not 1 <= len(serve_id) <= 32 or not 0 <= position <= MAX_POSITION:
        raise _not_served()
    now = now or utcnow()
    await _record(session, viewer, [EventIn(serve_id, position, "click")], now)  # type: ignore[arg-type]
    serve = (await repo.serves_by_ids(session, [serve_id])).get(serve_id)
    if serve is None:  # _record refused anything else
        raise _not_served()
    kind, ref_id = serve.items[position - serve.first_position][:2]
    return target_url(serve.feed, str(kind), int(ref_id))


async def _record(
    session: AsyncSession, viewer: Principal | None, reports: Sequence[EventIn], now: dt.datetime
) -> EventsOut:
    serves = await repo.serves_by_ids(session, [e.serve for e in reports])
    user_id = viewer.id if viewer is not None else None
    rows = []
    served: dict[tuple[str, int], list[Any]] = {}
    for e in reports:
        serve = serves.get(e.serve)
        index = e.position - serve.first_position if serve is not None else -1
        if serve is None or serve.user_id != user_id or now - serve.created_at > SERVE_TTL \
                or not 0 <= index < len(serve.items):  # fmt: skip
            raise _not_served()
        kind, ref_id, ptype, pid, item_id, grant_id = serve.items[index]
        served[(e.serve, e.position)] = [serve.feed, kind, ref_id, ptype, pid, item_id, grant_id]
        rows.append({
            "serve_id": e.serve, "position": e.position, "kind": e.kind, "feed": serve.feed, "user_id": user_id,
            "item_kind": kind, "ref_id": ref_id, "provider_type": ptype, "provider_id": pid, "grant_id": None,
            "created_at": now,
        })  # fmt: skip
    unique = {(r["serve_id"], r["position"], r["kind"]): r for r in rows}
    inserted = await repo.insert_events(session, list(unique.values()))
    if not inserted:
        return EventsOut(0, len(reports))
    hour = _hour(now)
    counters: dict[tuple[str, str, int], list[int]] = defaultdict(lambda: [0, 0])
    window: dict[tuple[str, int], int] = defaultdict(int)
    by_grant: dict[int, list[int]] = defaultdict(list)
    interactions: dict[tuple[int, str], dict[str, Any]] = {}
    for event_id, serve_id, position, kind in inserted:
        feed, item_kind, _ref, ptype, pid, item_id, grant_id = served[(serve_id, position)]
        counter = counters[(feed, ptype, pid)]
        if kind == "impression":
            counter[0] += 1
            window[(ptype, pid)] += 1
            if grant_id and feed == "discovery":
                by_grant[int(grant_id)].append(event_id)
        elif kind == "click":
            counter[1] += 1
        if user_id is not None and item_id:
            key = (int(item_id), kind)
            if key in interactions:
                interactions[key]["count"] += 1
            else:
                interactions[key] = _interaction(user_id, int(item_id), kind, now)
    await _use_grants(session, by_grant, now)
    await repo.add_exposure(session, [
        {"hour": hour, "feed": f, "provider_type": t, "provider_id": p, "impressions": n[0], "clicks": n[1]}
        for (f, t, p), n in counters.items()
    ])  # fmt: skip
    if window:
        await repo.add_window(session, dict(window), now)
        c = _caches(session)
        for (ptype, pid), n in window.items():
            c.add_window(pkey(ptype, pid), n)
    await repo.add_interactions(session, list(interactions.values()))
    return EventsOut(len(inserted), len(reports) - len(inserted))


async def _use_grants(session: AsyncSession, by_grant: dict[int, list[int]], now: dt.datetime) -> None:
    """Each new discovery impression of an item served under a grant uses one unit of it, while
    the grant runs and has budget left. The grant rows are locked (in id order) first, so
    concurrent reports queue and the budget is never overspent; the events that used a unit
    carry the grant's id (``used`` = their number)."""
    if not by_grant:
        return
    cache = _caches(session)
    for grant in await repo.lock_grants(session, list(by_grant)):
        if grant.revoked_at is not None or not grant.starts_at <= now < grant.ends_at:
            continue
        take = by_grant[grant.id][: max(grant.budget - grant.used, 0)]
        if not take:
            continue
        await repo.use_grant(session, grant.id, len(take))
        await repo.mark_grant(session, grant.id, take)
        key = pkey(grant.provider_type, grant.provider_id)
        held = cache.grants.get(key)
        if held is not None and held[0] == grant.id:
            cache.grants[key] = (grant.id, held[1] - len(take))


# --- grants ---------------------------------------------------------------------------------------


def _require_ops(actor: Principal) -> None:
    if not actor.is_ops:
        raise Forbidden("only platform ops manage traffic rewards", code="ops_only")


async def _provider_names(
    session: AsyncSession, pairs: Iterable[tuple[str, int]]
) -> dict[tuple[str, int], str]:
    pairs = set(pairs)
    users = await accounts.users_by_ids(session, sorted(i for t, i in pairs if t == "creator"))
    shops = await catalog.shops_by_ids(session, sorted(i for t, i in pairs if t == "shop"))
    names = {("creator", i): u.display_name for i, u in users.items()}
    names.update({("shop", s.id): s.name for s in shops})
    return names


def grant_out(g: FeedGrant, name: str, now: dt.datetime) -> GrantOut:
    return GrantOut(
        id=g.id, provider_type=g.provider_type, provider_id=g.provider_id, provider_name=name, budget=g.budget,
        used=g.used, left=max(g.budget - g.used, 0), reason=g.reason, starts_at=g.starts_at, ends_at=g.ends_at,
        status=repo.grant_status(g, now), created_by=g.created_by, created_at=g.created_at, revoked_at=g.revoked_at,
    )  # fmt: skip


async def _grant_outs(session: AsyncSession, grants: Sequence[FeedGrant], now: dt.datetime) -> list[GrantOut]:
    names = await _provider_names(session, [(g.provider_type, g.provider_id) for g in grants])
    return [grant_out(g, names.get((g.provider_type, g.provider_id), ""), now) for g in grants]


def _aware(value: dt.datetime, name: str) -> dt.datetime:
    if value.tzinfo is None:
        raise ValidationFailed(f"{name}: give a time zone (e.g. 2026-12-31T23:59:00+08:00)", field=name)
    return value.astimezone(dt.UTC)


async def create_grant(
    session: AsyncSession, actor: Principal, data: GrantIn, now: dt.datetime | None = None
) -> GrantOut:
    """Ops grant a traffic reward (川流): a budget of discovery impressions for a creator or a shop
    (a merchant's self-broadcast) until ``ends_at``, with a reason. 403 ``ops_only``; 404
    ``provider_not_found`` (not a creator's account, no such shop or a closed one); 422 for the
    budget (1 to 10,000,000), the reason (1-200 characters) or the period (``bad_period``: it must
    end after it starts, in the future, within 366 days)."""
    _require_ops(actor)
    data = validated(data)
    now = now or utcnow()
    reason = data.reason.strip()
    if not reason:
        raise ValidationFailed("reason: say why the reward is given", field="reason")
    starts = _aware(data.starts_at, "starts_at") if data.starts_at is not None else now
    ends = _aware(data.ends_at, "ends_at")
    if ends <= max(starts, now) or ends - starts > dt.timedelta(days=MAX_GRANT_DAYS):
        raise ValidationFailed(
            f"ends_at: after the start and now, at most {MAX_GRANT_DAYS} days after the start",
            field="ends_at", code="bad_period",
        )  # fmt: skip
    if data.provider_type == "creator":
        if "creator" not in await accounts.roles_of(session, data.provider_id):
            raise NotFound(
                f"creator {data.provider_id} not found", field="provider_id", code="provider_not_found"
            )
    else:
        shops = await catalog.shops_by_ids(session, [data.provider_id])
        if not shops or shops[0].status != "active":
            raise NotFound(
                f"shop {data.provider_id} not found", field="provider_id", code="provider_not_found"
            )
    grant = await repo.add_grant(session, FeedGrant(
        provider_type=data.provider_type, provider_id=data.provider_id, budget=data.budget, used=0, reason=reason,
        starts_at=starts, ends_at=ends, created_by=actor.id, created_at=now,
    ))  # fmt: skip
    events.record(session, "feed.grant_created", {
        "grant_id": grant.id, "provider_type": grant.provider_type, "provider_id": grant.provider_id,
        "budget": grant.budget, "ends_at": ends.isoformat(), "by": actor.id,
    })  # fmt: skip
    _caches(session).grants_checked = -math.inf
    return (await _grant_outs(session, [grant], now))[0]


async def revoke_grant(
    session: AsyncSession, actor: Principal, grant_id: int, now: dt.datetime | None = None
) -> GrantOut:
    """Stop a grant now (what it used stays used). 403 ``ops_only``, 404 ``grant_not_found``, 409
    ``grant_over`` when it was revoked already or has ended."""
    _require_ops(actor)
    now = now or utcnow()
    grant = await repo.get_grant(session, grant_id, lock=True)
    if grant is None:
        raise NotFound(f"grant {grant_id} not found", code="grant_not_found")
    if grant.revoked_at is not None or grant.ends_at <= now:
        raise Conflict("this grant is over already", code="grant_over")
    grant.revoked_at = now
    await session.flush()
    events.record(session, "feed.grant_revoked", {"grant_id": grant.id, "used": grant.used, "by": actor.id})
    _caches(session).grants_checked = -math.inf
    return (await _grant_outs(session, [grant], now))[0]


async def get_grant(
    session: AsyncSession, actor: Principal, grant_id: int, now: dt.datetime | None = None
) -> GrantOut:
    _require_ops(actor)
    grant = await repo.get_grant(session, grant_id)
    if grant is None:
        raise NotFound(f"grant {grant_id} not found", code="grant_not_found")
    return (await _grant_outs(session, [grant], now or utcnow()))[0]


async def list_grants(
    session: AsyncSession,
    actor: Principal,
    *,
    status: str = "",
    provider_type: str = "",
    provider_id: int | None = None,
    before_id: int | None = None,
    limit: int,
    now: dt.datetime | None = None,
) -> list[GrantOut]:
    """Grants, newest first, with what each has used: ``status`` running, scheduled, spent, ended
    or revoked (none: all); ``provider_type`` and ``provider_id`` together for one provider."""
    _require_ops(actor)
    if status and status not in GRANT_STATUSES:
        raise ValidationFailed(
            f"status: one of {', '.join(GRANT_STATUSES)}", field="status", code="bad_status"
        )
    provider = None
    if provider_type or provider_id is not None:
        if provider_type not in ("creator", "shop") or provider_id is None:
            raise ValidationFailed(
                "provider_type: creator or shop, with provider_id", field="provider_type", code="bad_provider"
            )
        provider = (provider_type, provider_id)
    now = now or utcnow()
    found = await repo.list_grants(
        session, status=status, now=now, provider=provider, before_id=before_id, limit=limit
    )
    return await _grant_outs(session, found, now)


# --- the exposure dashboard -------------------------------------------------------------------------


def _day_index(at: dt.datetime) -> int:
    return (_hour(at) + 8) // 24  # Asia/Shanghai is UTC+8 all year


def _day_start(index: int) -> dt.datetime:
    return dt.datetime.fromtimestamp((index * 24 - 8) * 3600, dt.UTC)


def _round(x: float) -> float:
    return round(float(x), 4)


async def exposure_dashboard(
    session: AsyncSession,
    actor: Principal,
    config: ranking.Config = ranking.DEFAULT,
    *,
    days: int = 7,
    feed: str = "all",
    provider_type: str = "all",
    now: dt.datetime | None = None,
) -> ExposureOut:
    """How evenly impressions spread over providers, per Asia/Shanghai day over the last ``days``
    days (today so far included) and over the whole window. A day's population: every provider
    (creator or shop, or one kind with ``provider_type``) whose first item came before the day
    ended and who has something published now or had an impression in the window, zero exposure
    included. Gini, bottom-half share and zero share over it; new-creator share: the share of the
    day's impressions that went to providers new that day (first item within ``new_creator_days``).
    403 for anyone but ops; 422 for a bad ``days`` (1-90), ``feed`` or ``provider_type``."""
    _require_ops(actor)
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DASHBOARD_DAYS:
        raise ValidationFailed(f"days: from 1 to {MAX_DASHBOARD_DAYS}", field="days", code="bad_days")
    if feed not in DASHBOARD_FEEDS:
        raise ValidationFailed("feed: all, discovery or follow", field="feed", code="bad_feed")
    if provider_type not in DASHBOARD_PROVIDERS:
        raise ValidationFailed(
            "provider_type: all, creator or shop", field="provider_type", code="bad_provider"
        )
    now = now or utcnow()
    today = _day_index(now)
    first_day = today - days + 1
    feeds = FEEDS if feed == "all" else (feed,)
    rows = await repo.exposure_by_day(session, first_day * 24 - 8, (today + 1) * 24 - 8, feeds)
    people = await repo.population(session, _day_start(today + 1))
    wanted = ("creator", "shop") if provider_type == "all" else (provider_type,)
    people = [p for p in people if p[0] in wanted]
    rows = [r for r in rows if r[1] in wanted]
    index = {(t, i): n for n, (t, i, _f, _a) in enumerate(people)}
    exposed = {(t, i) for _d, t, i, _n in rows}
    for t, i in sorted(exposed - set(index)):  # exposure of a provider not indexed (cannot happen often)
        index[(t, i)] = len(people)
        people.append((t, i, _day_start(first_day), 0))
    n = len(people)
    first_ts = np.array([p[2].timestamp() for p in people]) if n else np.zeros(0)
    keep = np.array([p[3] > 0 or (p[0], p[1]) in exposed for p in people], dtype=bool)
    per_day = np.zeros((days, n), dtype=np.int64)
    for d, t, i, imps in rows:
        per_day[d - first_day, index[(t, i)]] += imps
    new_span = config.new_creator_days * 86400
    out_days = []
    for k in range(days):
        end = _day_start(first_day + k + 1).timestamp()
        members = keep & (first_ts < end)
        x = per_day[k][members]
        total = int(x.sum())
        new = members & (first_ts >= end - new_span)
        out_days.append(ExposureDayOut(
            day=_day_start(first_day + k).astimezone(dt.timezone(dt.timedelta(hours=8))).date(),
            impressions=total, providers=int(members.sum()), gini=_round(ranking.gini(x)),
            bottom_half_share=_round(ranking.bottom_half_share(x)),
            new_share=_round(per_day[k][new].sum() / total) if total else 0.0,
            zero_share=_round(ranking.zero_share(x)),
        ))  # fmt: skip
    window = per_day.sum(axis=0)[keep] if n else np.zeros(0, dtype=np.int64)
    total = int(window.sum())
    pop, share = ranking.lorenz(window, points=101 if len(window) else 0)
    new_all = (first_ts >= now.timestamp() - new_span)[keep] if n else np.zeros(0, dtype=bool)
    return ExposureOut(
        days=days, feed=feed, provider_type=provider_type, impressions=total, providers=int(keep.sum()),
        gini=_round(ranking.gini(window)), bottom_half_share=_round(ranking.bottom_half_share(window)),
        new_share=_round(window[new_all].sum() / total) if total else 0.0, zero_share=_round(ranking.zero_share(window)),
        per_day=out_days, lorenz=LorenzOut([_round(v) for v in pop], [_round(v) for v in share]),
    )  # fmt: skip


# --- the task's steps -------------------------------------------------------------------------------


async def warm(session: AsyncSession, config: ranking.Config, now: dt.datetime | None = None) -> int:
    """Fill this process's caches (providers' window exposure, running grants, the pools), so the
    first requests after a start do not pay for it. Returns the providers known."""
    now = now or utcnow()
    state = await _provider_state(session)
    await _running_grants(session, now)
    await _pool_arrays(session, config, now)
    return len(state.providers)


async def advance_window(
    session: AsyncSession, config: ranking.Config, now: dt.datetime | None = None
) -> int:
    """Keep providers' window exposure (``window_hours``) true as hours leave the window:
    subtract the counters of the hours that left. Recomputed from the counters instead when the
    window's length changed, the feed first runs, or a new Asia/Shanghai day began (which also
    heals anything an interrupted step left). Of several workers, one does each step (the
    ``feed_state`` compare-and-set). Returns the providers changed."""
    now = now or utcnow()
    current = _hour(now)
    start = current - config.window_hours + 1
    stored_start = await repo.get_state(session, "window_from")
    stored_hours = await repo.get_state(session, "window_hours")
    stored_day = await repo.get_state(session, "window_day")
    today = _day_index(now)
    if stored_start is None or stored_hours != config.window_hours or stored_day != today:
        if not await repo.swap_state(session, "window_day", stored_day, today, now):
            return 0
        await repo.put_state(session, "window_hours", config.window_hours, now)
        await repo.put_state(session, "window_from", start, now)
        sums = await repo.hour_sums(session, start, current + 1)
        values = {key: 0 for key in await repo.nonzero_windows(session)}
        values.update({(t, i): n for t, i, n in sums})
        await repo.set_windows(session, values, now)
        return len(sums)
    if start <= stored_start:
        return 0
    if not await repo.swap_state(session, "window_from", stored_start, start, now):
        return 0
    gone = await repo.hour_sums(session, stored_start, start)
    await repo.add_window(session, {(t, i): -n for t, i, n in gone}, now)
    return len(gone)


def _weights_of(kinds: Sequence[str], config: ranking.Config) -> np.ndarray:
    table = {k: config.weights[m] for k, m in MODEL_KIND.items()}
    return np.array([table[k] for k in kinds], dtype=np.float64)


def neighbour_rows(rows: Sequence[Any], config: ranking.Config) -> list[dict[str, Any]]:
    """The neighbour table from interactions (user_id, item_id, kind, last_at): item-item
    collaborative filtering (``relevance.item_knn``) over each user's ``history_items`` most
    recent items. Pure and CPU-bound: the task runs it in a worker thread."""
    from trustlive.feed import relevance

    if not rows:
        return []
    users = np.array([r[0] for r in rows], dtype=np.int64)
    items = np.array([r[1] for r in rows], dtype=np.int64)
    weights = _weights_of([r[2] for r in rows], config)
    stamps = np.array([r[3].timestamp() for r in rows])
    user_ids, u = np.unique(users, return_inverse=True)
    item_ids, i = np.unique(items, return_inverse=True)
    inter = relevance.interactions(u, i, weights, len(user_ids), len(item_ids))
    # The latest time of each (user, item), aligned with the folded matrix (sorted by user, item).
    key = u.astype(np.int64) * len(item_ids) + i
    order = np.lexsort((stamps, key))
    key_sorted, stamp_sorted = key[order], stamps[order]
    last = np.ones(len(key_sorted), dtype=bool)
    last[:-1] = key_sorted[1:] != key_sorted[:-1]
    uniq_keys, uniq_ts = key_sorted[last], stamp_sorted[last]
    folded = np.repeat(np.arange(inter.n_users), np.diff(inter.user_ptr)) * len(item_ids) + inter.user_items
    user_ts = uniq_ts[np.searchsorted(uniq_keys, folded)]
    inter = relevance.recent(inter, user_ts, config.history_items)
    nb = relevance.item_knn(inter, k=config.neighbours, shrink=config.shrink)
    a, r = np.nonzero(nb.index >= 0)
    return [
        {"item_id": x, "rank": y, "neighbour_id": z, "sim": w}
        for x, y, z, w in zip(
            item_ids[a].tolist(), r.tolist(), item_ids[nb.index[a, r]].tolist(),
            nb.sim[a, r].astype(np.float64).tolist(), strict=True,
        )
    ]  # fmt: skip


async def interactions_for_build(session: AsyncSession, now: dt.datetime) -> list[Any]:
    return await repo.interactions_since(session, now - dt.timedelta(days=NEIGHBOUR_DAYS))


async def claim_neighbours_build(session: AsyncSession, now: dt.datetime, force: bool = False) -> bool:
    """True when this worker should rebuild the neighbours now (at most every NEIGHBOURS_EVERY_S,
    one worker of several)."""
    last = await repo.get_state(session, "neighbours_at")
    if not force and last is not None and now.timestamp() - last < NEIGHBOURS_EVERY_S:
        return False
    return await repo.swap_state(session, "neighbours_at", last, int(now.timestamp()), now)


async def store_neighbours(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    await repo.replace_neighbours(session, rows)


async def prune(session: AsyncSession, now: dt.datetime | None = None) -> int:
    """Forget pages and reports older than PRUNE_AFTER (never the reports a grant accounts for):
    the counters and the interactions keep what they taught."""
    return await repo.prune(session, (now or utcnow()) - PRUNE_AFTER, PRUNE_BATCH)
