"""JSON shapes of the feed API: the pages of both feeds, the impression/view/click reports, the
traffic-reward grants and the ops exposure dashboard."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

from trustlive.feed.models import MAX_REASON, SERVE_ID_LENGTH

Id = Annotated[int, msgspec.Meta(ge=1, le=2**62)]
MAX_EVENTS = 100  # reports in one batch
MAX_BUDGET = 10_000_000  # impressions one grant may hold

ServeId = Annotated[str, msgspec.Meta(min_length=1, max_length=SERVE_ID_LENGTH)]
Position = Annotated[int, msgspec.Meta(ge=0, le=1_000_000)]
EventKind = Literal["impression", "view", "click"]
ProviderType = Literal["creator", "shop"]


class FeedItemOut(msgspec.Struct):
    """One card of a feed page. ``url`` is the way in from the feed (it logs the click, then
    leads to ``target_url``, with the feed's attribution for products)."""

    position: int
    kind: str  # "live", "video" or "product"
    id: int  # the live session, video or product
    title: str
    image_url: str | None
    provider_type: str  # "creator" (live rooms, videos) or "shop" (products)
    provider_id: int
    provider_name: str
    url: str
    target_url: str
    published_at: dt.datetime | None = None  # a live room: when it went on air
    price_fen: int | None = None  # products: the lowest price of the active SKUs
    like_count: int | None = None  # videos
    new_creator: bool = False
    boosted: bool = False  # shown under a traffic-reward grant (川流)


class FeedPageOut(msgspec.Struct):
    feed: str  # "follow" or "discovery"
    serve_id: str  # name it when reporting impressions, views and clicks of this page
    items: list[FeedItemOut]
    next_cursor: str | None


class EventIn(msgspec.Struct, forbid_unknown_fields=True):
    serve: ServeId
    position: Position
    kind: EventKind


class EventsIn(msgspec.Struct, forbid_unknown_fields=True):
    """A batch of reports: every one must name a position served to the caller in that serve."""

    events: Annotated[list[EventIn], msgspec.Meta(min_length=1, max_length=MAX_EVENTS)]


class EventsOut(msgspec.Struct):
    recorded: int  # new reports written
    repeated: int  # reports already recorded before (a replay): nothing changed for them


class GrantIn(msgspec.Struct, forbid_unknown_fields=True):
    """A traffic reward: ``budget`` discovery impressions for a creator or a shop, from
    ``starts_at`` (default: now) until ``ends_at``, with the reason ops give."""

    provider_type: ProviderType
    provider_id: Id
    budget: Annotated[int, msgspec.Meta(ge=1, le=MAX_BUDGET)]
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_REASON)]
    ends_at: dt.datetime
    starts_at: dt.datetime | None = None


class GrantOut(msgspec.Struct):
    id: int
    provider_type: str
    provider_id: int
    provider_name: str
    budget: int
    used: int
    left: int
    reason: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    status: str  # running, scheduled, spent, ended, revoked
    created_by: int
    created_at: dt.datetime
    revoked_at: dt.datetime | None


class GrantPage(msgspec.Struct):
    items: list[GrantOut]
    next_cursor: str | None


class ExposureDayOut(msgspec.Struct):
    day: dt.date  # Asia/Shanghai
    impressions: int
    providers: int  # the population: providers with something published by that day
    gini: float
    bottom_half_share: float
    new_share: float  # share of the day's impressions that went to new creators
    zero_share: float  # share of the population with no impression that day


class LorenzOut(msgspec.Struct):
    population: list[float]  # share of providers, the least exposed first
    exposure: list[float]  # share of impressions they hold


class ExposureOut(msgspec.Struct):
    """The exposure dashboard over ``days`` days (today included), per day and over the whole
    window (the Lorenz curve and the window's figures)."""

    days: int
    feed: str  # all, discovery, follow
    provider_type: str  # all, creator, shop
    impressions: int
    providers: int
    gini: float
    bottom_half_share: float
    new_share: float
    zero_share: float
    per_day: list[ExposureDayOut]
    lorenz: LorenzOut
