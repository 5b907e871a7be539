"""Tables of the live domain: sessions, their featured products, flash sales and the buyers'
claims on them, the orders placed from a room, comments (for the replay) and each creator's
moderation (moderators, mutes, bans, blocked words).

Moderation belongs to the creator's room, not to one session: a user banned by a creator stays
banned in every later session of that creator. Room left for what comes next (issue 5's later
parts), keyed the same way: returning customers' notes (creator_id, buyer_id), co-streams
(two session ids), appraisals and consignments (session_id, item) get their own tables.
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from trustlive.db import Base, BigId, TimestampMixin, UTCDateTime, utcnow

MAX_TITLE = 100
MAX_FEATURED = 50
MAX_COMMENT_STORE = 500  # the column's bound; the configured limit (100) is checked on the way in
MAX_WORD = 40
MAX_WORDS = 200


class SessionStatus(enum.StrEnum):
    scheduled = "scheduled"
    live = "live"
    ended = "ended"
    cancelled = "cancelled"


class SaleStatus(enum.StrEnum):
    running = "running"
    ended = "ended"  # its countdown ran out, or it sold out (sweeper or the session's end)
    stopped = "stopped"  # stopped early by the creator or a moderator


class LiveSession(TimestampMixin, Base):
    """One broadcast of a creator: scheduled → live → ended, or scheduled → cancelled.

    The replay's figures are columns, kept up to date while the session is live (counters are
    added in batches; peak viewers only rises), so a replay page reads one row."""

    __tablename__ = "live_sessions"
    __table_args__ = (
        CheckConstraint("status IN ('scheduled', 'live', 'ended', 'cancelled')", name="status_known"),
        CheckConstraint(
            "peak_viewers >= 0 AND entries >= 0 AND likes >= 0 AND comments >= 0 AND orders >= 0"
            " AND units >= 0 AND sales_fen >= 0",
            name="stats_not_negative",
        ),
        # One live session per creator at a time, decided by the database: two starts racing
        # cannot both win (the loser gets 409 already_live).
        Index(
            "ix_live_sessions_one_live",
            "creator_id",
            unique=True,
            postgresql_where=text("status = 'live'"),
            sqlite_where=text("status = 'live'"),
        ),
        Index("ix_live_sessions_creator", "creator_id", "id"),
        Index("ix_live_sessions_status", "status", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    creator_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False)
    title: Mapped[str] = mapped_column(String(MAX_TITLE), nullable=False)
    cover_path: Mapped[str | None] = mapped_column(String(255), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default=SessionStatus.scheduled, nullable=False)
    scheduled_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # ended: "creator", "no_heartbeat" (the sweeper), "ops"; cancelled: "creator".
    end_reason: Mapped[str | None] = mapped_column(String(20), nullable=True)
    # The last sign of life of the broadcast (start, the creator's heartbeat); the sweeper ends a
    # live session whose heartbeat is older than TRUSTLIVE_LIVE_HEARTBEAT_SECONDS.
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The media server's URLs, made at start from the configured templates. The stream key is a
    # secret shown only to the creator; it is cleared when the session ends.
    stream_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    ingest_url: Mapped[str | None] = mapped_column(String(500), nullable=True)
    playback_url: Mapped[str | None] = mapped_column(String(500), nullable=True)
    pinned_product_id: Mapped[int | None] = mapped_column(ForeignKey("products.id"), nullable=True)
    # Replay figures.
    peak_viewers: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    entries: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    likes: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    comments: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    orders: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    units: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    sales_fen: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)


class LiveFeatured(Base):
    """A product featured in a session, in the creator's order."""

    __tablename__ = "live_featured"
    __table_args__ = (UniqueConstraint("session_id", "product_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    session_id: Mapped[int] = mapped_column(
        ForeignKey("live_sessions.id", ondelete="CASCADE"), nullable=False
    )
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), nullable=False)
    position: Mapped[int] = mapped_column(Integer, default=0, nullable=False)


class FlashSale(Base):
    """A flash sale on one SKU of the pinned product: a stock allocation for the session, a
    per-buyer limit and a countdown. ``sold`` is claimed with one conditional UPDATE per order."""

    __tablename__ = "live_flash_sales"
    __table_args__ = (
        CheckConstraint("allocation > 0", name="allocation_positive"),
        CheckConstraint("sold >= 0 AND sold <= allocation", name="sold_within_allocation"),
        CheckConstraint("per_buyer_limit >= 1", name="limit_positive"),
        CheckConstraint("status IN ('running', 'ended', 'stopped')", name="status_known"),
        # One running sale per session (the room shows one countdown).
        Index(
            "ix_live_flash_sales_running",
            "session_id",
            unique=True,
            postgresql_where=text("status = 'running'"),
            sqlite_where=text("status = 'running'"),
        ),
        Index("ix_live_flash_sales_session", "session_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("live_sessions.id"), nullable=False)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), nullable=False)
    sku_id: Mapped[int] = mapped_column(ForeignKey("skus.id"), nullable=False)
    allocation: Mapped[int] = mapped_column(Integer, nullable=False)
    sold: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    per_buyer_limit: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[str] = mapped_column(String(16), default=SaleStatus.running, nullable=False)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    ends_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    started_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False)


class FlashSaleClaim(Base):
    """Units of a flash sale a buyer has bought: the per-buyer limit, held by a conditional upsert."""

    __tablename__ = "live_flash_sale_claims"
    __table_args__ = (CheckConstraint("quantity >= 0", name="quantity_not_negative"),)

    sale_id: Mapped[int] = mapped_column(
        ForeignKey("live_flash_sales.id", ondelete="CASCADE"), primary_key=True
    )
    buyer_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    quantity: Mapped[int] = mapped_column(Integer, nullable=False)


class LiveOrder(Base):
    """An order placed from a live room: the replay's sales list and the session's figures."""

    __tablename__ = "live_orders"
    __table_args__ = (Index("ix_live_orders_session", "session_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("live_sessions.id"), nullable=False)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), unique=True, nullable=False)
    buyer_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), nullable=False)
    sku_id: Mapped[int] = mapped_column(ForeignKey("skus.id"), nullable=False)
    sale_id: Mapped[int | None] = mapped_column(ForeignKey("live_flash_sales.id"), nullable=True)
    quantity: Mapped[int] = mapped_column(Integer, nullable=False)
    amount_fen: Mapped[int] = mapped_column(BigInteger, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    # The co-stream link the room was in when the order was placed (its revenue share applies).
    costream_id: Mapped[int | None] = mapped_column(ForeignKey("live_costreams.id"), nullable=True)


class LiveComment(Base):
    """A comment as the replay keeps it. Written in batches by the process's comment writer, with
    ids from the process's reserved block (``LiveIdBlock``), so the id the room saw is the id in
    the table."""

    __tablename__ = "live_comments"
    __table_args__ = (
        CheckConstraint(f"length(text) <= {MAX_COMMENT_STORE}", name="text_length"),
        Index("ix_live_comments_session", "session_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    session_id: Mapped[int] = mapped_column(
        ForeignKey("live_sessions.id", ondelete="CASCADE"), nullable=False
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False)
    display_name: Mapped[str] = mapped_column(String(64), nullable=False)
    text: Mapped[str] = mapped_column(String(MAX_COMMENT_STORE), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    deleted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)


class LiveModerator(Base):
    """A user the creator appointed to moderate their room."""

    __tablename__ = "live_moderators"

    creator_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class LiveMute(Base):
    """A user who may not comment in the creator's room until ``until``."""

    __tablename__ = "live_mutes"

    creator_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    until: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    by_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class LiveBan(Base):
    """A user banned from the creator's room: disconnected, cannot rejoin, comment or buy."""

    __tablename__ = "live_bans"

    creator_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    by_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False)
    reason: Mapped[str] = mapped_column(String(200), default="", nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class LiveBlockedWord(Base):
    """A word the creator blocks in comments (stored lower-cased; matched as a substring)."""

    __tablename__ = "live_blocked_words"

    creator_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    word: Mapped[str] = mapped_column(String(MAX_WORD), primary_key=True)


# --- returning customers (熟客), co-streaming (连麦), comment ids (0015) --------------------------


class CostreamStatus(enum.StrEnum):
    invited = "invited"
    active = "active"
    declined = "declined"
    ended = "ended"


MAX_NOTE = 1000
MAX_SHARE_BP = 5000


class LiveVisit(Base):
    """A viewer's visits to a creator's sessions: the session they were last in and when, the
    time of the visit before it (the card's "last visit"), and when their card was last shown
    to the creator (one card per buyer per session, again on a comment after a few minutes,
    decided by one conditional UPDATE so that two processes never both send it)."""

    __tablename__ = "live_visits"

    creator_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("live_sessions.id"), nullable=False)
    visited_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    previous_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    visits: Mapped[int] = mapped_column(Integer, default=1, nullable=False)
    card_session_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    card_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class LiveCustomerNote(Base):
    """A creator's private notes about one buyer (only that creator ever reads them)."""

    __tablename__ = "live_customer_notes"

    creator_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    buyer_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    note: Mapped[str] = mapped_column(String(MAX_NOTE), default="", nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class LiveCostream(Base):
    """A co-stream link between two live sessions of two creators: invited → active → ended, or
    invited → declined / ended (withdrawn). ``share_bp`` of the attributed creator's commission on
    orders placed in either room while active goes to the other creator at settlement."""

    __tablename__ = "live_costreams"
    __table_args__ = (
        CheckConstraint("share_bp >= 0 AND share_bp <= 5000", name="share_range"),
        CheckConstraint("status IN ('invited', 'active', 'declined', 'ended')", name="status_known"),
        CheckConstraint("inviter_session_id <> invitee_session_id", name="two_sessions"),
        # One open link (invited or active) per session on each side, decided by the database.
        Index(
            "ix_live_costreams_open_inviter",
            "inviter_session_id",
            unique=True,
            postgresql_where=text("status IN ('invited', 'active')"),
            sqlite_where=text("status IN ('invited', 'active')"),
        ),
        Index(
            "ix_live_costreams_open_invitee",
            "invitee_session_id",
            unique=True,
            postgresql_where=text("status IN ('invited', 'active')"),
            sqlite_where=text("status IN ('invited', 'active')"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    inviter_session_id: Mapped[int] = mapped_column(ForeignKey("live_sessions.id"), nullable=False)
    invitee_session_id: Mapped[int] = mapped_column(ForeignKey("live_sessions.id"), nullable=False)
    inviter_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False)
    invitee_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False, index=True)
    share_bp: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    status: Mapped[str] = mapped_column(String(16), default=CostreamStatus.invited, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    accepted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ended_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)


class LiveIdBlock(Base):
    """Id blocks handed to processes (``handler.CommentIds``): each process reserves the next
    block of comment ids with one UPDATE, so ids from two processes never collide."""

    __tablename__ = "live_id_blocks"

    name: Mapped[str] = mapped_column(String(20), primary_key=True)
    next_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
