"""Tables of the feed domain (docs/feed.md): the item index the discovery feed ranks over, the
providers behind the items, every served page and what was seen and clicked on it, exposure
counters, traffic-reward grants, the interactions collaborative filtering learns from, and the
item neighbours it learnt.

Items live in their own domains (videos in content, products in catalog, live rooms in live);
``feed_items`` indexes the videos and products under one id space, so interactions and neighbours
need no per-kind tables, and the fresh and new-creator pools are one indexed query each. Live rooms
are not indexed: the rooms on air are few and come from the live domain (cached briefly).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from trustlive.db import Base, BigId, UTCDateTime, utcnow

SERVE_ID_LENGTH = 32  # room for secrets.token_urlsafe(16) (22 characters)
MAX_REASON = 200


class FeedItem(Base):
    """A video or a product the discovery feed may show, with its provider: the video's creator,
    the product's shop. ``active`` follows publishing (hidden, unpublished: inactive)."""

    __tablename__ = "feed_items"
    __table_args__ = (
        UniqueConstraint("kind", "ref_id"),
        CheckConstraint("kind IN ('video', 'product')", name="kind_known"),
        CheckConstraint("provider_type IN ('creator', 'shop')", name="provider_known"),
        # The fresh pool: the newest active items.
        Index("ix_feed_items_fresh", "active", "published_at", "id"),
        Index("ix_feed_items_provider", "provider_type", "provider_id", "published_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(8), nullable=False)
    ref_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    provider_type: Mapped[str] = mapped_column(String(8), nullable=False)
    provider_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    published_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)


class FeedProvider(Base):
    """A creator or shop that has published something. ``first_item_at`` decides whether it is a
    new creator (boosted) and when it joins the dashboard's population; ``active_items`` counts
    its published videos and products. ``window_impressions`` is its exposure over the rolling
    window, kept by adding each impression and subtracting each day leaving the window, so the
    in-process cache reloads only the rows changed since it last looked (``exposure_at``)."""

    __tablename__ = "feed_providers"
    __table_args__ = (
        PrimaryKeyConstraint("provider_type", "provider_id"),
        CheckConstraint("active_items >= 0", name="active_items"),
        Index("ix_feed_providers_first", "first_item_at"),
        Index("ix_feed_providers_exposure_at", "exposure_at"),
        # The new-creator and long-tail pools: the least exposed providers with something published.
        Index(
            "ix_feed_providers_tail",
            "window_impressions",
            "provider_type",
            "provider_id",
            postgresql_where=text("active_items > 0"),
            sqlite_where=text("active_items > 0"),
        ),  # fmt: skip
    )

    provider_type: Mapped[str] = mapped_column(String(8), nullable=False)
    provider_id: Mapped[int] = mapped_column(BigInteger, autoincrement=False, nullable=False)
    first_item_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    active_items: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    window_impressions: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    exposure_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class FeedServe(Base):
    """One served page: who got it, which feed, and its items in order. ``id`` is random and
    unguessable: events and clicks name it, and only the items it holds can be reported.
    Positions run on across the pages of one scroll (``first_position``). ``seen`` (discovery)
    is every item served on this scroll so far, which the next page leaves out."""

    __tablename__ = "feed_serves"
    __table_args__ = (
        CheckConstraint("feed IN ('follow', 'discovery')", name="feed_known"),
        Index("ix_feed_serves_created", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(SERVE_ID_LENGTH), primary_key=True)
    feed: Mapped[str] = mapped_column(String(12), nullable=False)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    page: Mapped[int] = mapped_column(SmallInteger, default=1, nullable=False)
    first_position: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    # [[kind, ref_id, provider_type, provider_id, feed item id or 0 (live rooms), grant id or 0],
    # ...] in position order.
    items: Mapped[list[list[object]]] = mapped_column(JSON, nullable=False)
    seen: Mapped[list[int]] = mapped_column(JSON, nullable=False)  # item keys (feed item id, -room id)


class FeedEvent(Base):
    """An impression, view or click of one served position. Unique per (serve, position, kind):
    a replayed report adds nothing. ``grant_id``: the traffic-reward grant this impression used
    one unit of (each grant's ``used`` equals the number of its events)."""

    __tablename__ = "feed_events"
    __table_args__ = (
        UniqueConstraint("serve_id", "position", "kind"),
        CheckConstraint("kind IN ('impression', 'view', 'click')", name="kind_known"),
        Index("ix_feed_events_grant", "grant_id"),
        Index("ix_feed_events_created", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    serve_id: Mapped[str] = mapped_column(ForeignKey("feed_serves.id"), nullable=False)
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    kind: Mapped[str] = mapped_column(String(12), nullable=False)
    feed: Mapped[str] = mapped_column(String(12), nullable=False)
    user_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    item_kind: Mapped[str] = mapped_column(String(8), nullable=False)
    ref_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    provider_type: Mapped[str] = mapped_column(String(8), nullable=False)
    provider_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    grant_id: Mapped[int | None] = mapped_column(ForeignKey("feed_grants.id"), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class FeedExposure(Base):
    """Impressions and clicks per hour, feed and provider: the rolling window and the ops
    dashboard read these counters, never the event log. ``hour``: hours since 1970-01-01 UTC
    (Asia/Shanghai days are whole hours too: UTC+8)."""

    __tablename__ = "feed_exposure"
    __table_args__ = (
        PrimaryKeyConstraint("hour", "feed", "provider_type", "provider_id"),
        CheckConstraint("impressions >= 0 AND clicks >= 0", name="counts_not_negative"),
    )

    hour: Mapped[int] = mapped_column(BigInteger, autoincrement=False, nullable=False)
    feed: Mapped[str] = mapped_column(String(12), nullable=False)
    provider_type: Mapped[str] = mapped_column(String(8), nullable=False)
    provider_id: Mapped[int] = mapped_column(BigInteger, autoincrement=False, nullable=False)
    impressions: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    clicks: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)


class FeedGrant(Base):
    """A traffic reward (川流): ops grant a creator or a shop (a merchant's self-broadcast) a budget
    of discovery impressions until ``ends_at``. The re-ranker boosts the provider while budget
    remains; each impression it gets uses one unit, never more than the budget (the check below
    is the last line; the service locks the row)."""

    __tablename__ = "feed_grants"
    __table_args__ = (
        CheckConstraint("provider_type IN ('creator', 'shop')", name="provider_known"),
        CheckConstraint("budget > 0", name="budget_positive"),
        CheckConstraint("used >= 0 AND used <= budget", name="used_within_budget"),
        Index("ix_feed_grants_provider", "provider_type", "provider_id"),
        Index("ix_feed_grants_ends", "ends_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    provider_type: Mapped[str] = mapped_column(String(8), nullable=False)
    provider_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    budget: Mapped[int] = mapped_column(Integer, nullable=False)
    used: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    reason: Mapped[str] = mapped_column(String(MAX_REASON), nullable=False)
    starts_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    ends_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class FeedInteraction(Base):
    """What a user did with an item, one row per (user, item, kind) with a count and the latest
    time: the implicit matrix collaborative filtering learns from, and a user's recent history."""

    __tablename__ = "feed_interactions"
    __table_args__ = (
        PrimaryKeyConstraint("user_id", "item_id", "kind"),
        CheckConstraint("kind IN ('impression', 'view', 'click', 'like', 'purchase')", name="kind_known"),
        Index("ix_feed_interactions_recent", "user_id", "last_at"),
        Index("ix_feed_interactions_last", "last_at"),
    )

    user_id: Mapped[int] = mapped_column(BigInteger, autoincrement=False, nullable=False)
    item_id: Mapped[int] = mapped_column(BigInteger, autoincrement=False, nullable=False)
    kind: Mapped[str] = mapped_column(String(12), nullable=False)
    count: Mapped[int] = mapped_column(Integer, default=1, nullable=False)
    last_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)


class FeedNeighbour(Base):
    """An item's nearest items (item-item collaborative filtering), rebuilt in batch by the task:
    rank 0 is the most similar. Each row carries what the ranking needs of the neighbour (its
    kind, ref, provider and publishing time, copied from ``feed_items`` at the build), so a page
    reads its collaborative candidates from this table alone."""

    __tablename__ = "feed_neighbours"
    __table_args__ = (PrimaryKeyConstraint("item_id", "rank"),)

    item_id: Mapped[int] = mapped_column(BigInteger, autoincrement=False, nullable=False)
    rank: Mapped[int] = mapped_column(SmallInteger, autoincrement=False, nullable=False)
    neighbour_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    sim: Mapped[float] = mapped_column(Float, nullable=False)
    kind: Mapped[str] = mapped_column(String(8), nullable=False)
    ref_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    provider_type: Mapped[str] = mapped_column(String(8), nullable=False)
    provider_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    published_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)


class FeedState(Base):
    """Small named values the task keeps between runs (when the neighbours were built, the first
    day of the exposure window, whether the item index was filled from the catalogue)."""

    __tablename__ = "feed_state"

    key: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
