"""Tables of the trust domain (docs/scores.md): the per-line facts the scores are computed from,
the scores themselves with the counts behind them, their daily history, the queue of orders
whose facts are due for a refresh, and buyers' complaints of false claims by creators."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from trustlive.db import Base, BigId, UTCDateTime, utcnow


class EntityType(enum.StrEnum):
    shop = "shop"
    product = "product"
    creator = "creator"


class ComplaintStatus(enum.StrEnum):
    pending = "pending"
    upheld = "upheld"
    dismissed = "dismissed"


class TrustFact(Base):
    """What one order line contributed to the scores, derived from its order, shipment,
    inspection, after-sales requests, review and complaint. Derived state: rebuilt for an order
    whenever one of its events arrives (idempotent: the same sources give the same row) and for
    all orders by ``trustlive scores recompute --rebuild-facts``.

    Every column is a NOT NULL integer so the nightly recompute can stream the table in one
    fixed-width binary COPY: times are whole seconds since the Unix epoch, 0 meaning "never";
    ``creator_id`` 0 means no creator; ratings 0 mean no review."""

    __tablename__ = "trust_facts"
    __table_args__ = (
        Index("ix_trust_facts_shop", "shop_id"),
        Index("ix_trust_facts_product", "product_id"),
        Index("ix_trust_facts_creator", "creator_id"),
        Index("ix_trust_facts_order", "order_id"),
        Index("ix_trust_facts_last", "last_ts"),
    )

    line_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    order_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    shop_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    product_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    creator_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    category_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    paid_ts: Mapped[int] = mapped_column(BigInteger, nullable=False)
    ship_by_ts: Mapped[int] = mapped_column(BigInteger, nullable=False)
    shipped_ts: Mapped[int] = mapped_column(BigInteger, nullable=False)
    delivered_ts: Mapped[int] = mapped_column(BigInteger, nullable=False)
    # The order was refunded or cancelled before it shipped: no shipping is owed after this.
    closed_ts: Mapped[int] = mapped_column(BigInteger, nullable=False)
    # The lower of the product rating as first posted and as it stands: an edit cannot erase a
    # negative review (docs/scores.md, "Gaming").
    rating_product: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    rating_service: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    quality_refund_ts: Mapped[int] = mapped_column(BigInteger, nullable=False)
    inspected_ts: Mapped[int] = mapped_column(BigInteger, nullable=False)
    inspection_failed: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    aftersales_ts: Mapped[int] = mapped_column(BigInteger, nullable=False)  # the last request resolved
    aftersales_s: Mapped[int] = mapped_column(BigInteger, nullable=False)  # its handling time
    dispute_lost_ts: Mapped[int] = mapped_column(BigInteger, nullable=False)
    false_claim_ts: Mapped[int] = mapped_column(BigInteger, nullable=False)
    # The latest of the times above: a line whose last_ts left the longest window counts nowhere,
    # so the nightly recompute reads only lines with a recent last_ts.
    last_ts: Mapped[int] = mapped_column(BigInteger, nullable=False)


class TrustScore(Base):
    """The current score of one shop, product or creator, with the counts it was computed from
    (the drill-down pages explain the score from these) and the state of the shop's flash-sale
    restriction (it has hysteresis, so it is state, not a pure function of the counts)."""

    __tablename__ = "trust_scores"
    __table_args__ = (
        CheckConstraint("score_c IS NULL OR (score_c >= 0 AND score_c <= 500)", name="score_range"),
    )

    entity_type: Mapped[str] = mapped_column(String(8), primary_key=True)
    entity_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    category_id: Mapped[int] = mapped_column(BigInteger, nullable=False)  # whose curves applied; 0: default
    # Hundredths: 462 is 4.62. NULL while the entity is "new" (too little data).
    score_c: Mapped[int | None] = mapped_column(Integer, nullable=True)
    product_c: Mapped[int | None] = mapped_column(Integer, nullable=True)
    logistics_c: Mapped[int | None] = mapped_column(Integer, nullable=True)
    aftersales_c: Mapped[int | None] = mapped_column(Integer, nullable=True)
    claims_c: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The counts behind the indicators (see scoring.COUNTS for each one's meaning and window).
    delivered_90: Mapped[int] = mapped_column(Integer, nullable=False)
    delivered_60: Mapped[int] = mapped_column(Integer, nullable=False)
    negative_60: Mapped[int] = mapped_column(Integer, nullable=False)
    quality_refunds_60: Mapped[int] = mapped_column(Integer, nullable=False)
    inspected_60: Mapped[int] = mapped_column(Integer, nullable=False)
    inspection_failed_60: Mapped[int] = mapped_column(Integer, nullable=False)
    ship_due_30: Mapped[int] = mapped_column(Integer, nullable=False)
    shipped_on_time_30: Mapped[int] = mapped_column(Integer, nullable=False)
    delivered_30: Mapped[int] = mapped_column(Integer, nullable=False)
    delivery_s_30: Mapped[int] = mapped_column(BigInteger, nullable=False)
    aftersales_30: Mapped[int] = mapped_column(Integer, nullable=False)
    aftersales_s_30: Mapped[int] = mapped_column(BigInteger, nullable=False)
    disputes_lost_30: Mapped[int] = mapped_column(Integer, nullable=False)
    service_rated_30: Mapped[int] = mapped_column(Integer, nullable=False)
    service_sum_30: Mapped[int] = mapped_column(Integer, nullable=False)
    false_claims_60: Mapped[int] = mapped_column(Integer, nullable=False)
    ship_due_7: Mapped[int] = mapped_column(Integer, nullable=False)
    shipped_late_7: Mapped[int] = mapped_column(Integer, nullable=False)
    flash_sale_restricted: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    computed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    # The time (epoch seconds) the counts' windows are evaluated at: the last full computation of
    # this entity (the nightly recompute, or a refresh that read all its facts). Events in between
    # move the counts by their own lines' difference, evaluated at this same time; 0: unknown.
    as_of_ts: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0", nullable=False)


class TrustScoreHistory(Base):
    """One row per entity per day on which its score changed (the chart carries a value forward
    until the next row), so a year of history costs only the days that moved."""

    __tablename__ = "trust_score_history"

    entity_type: Mapped[str] = mapped_column(String(8), primary_key=True)
    entity_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)  # Asia/Shanghai calendar day
    score_c: Mapped[int | None] = mapped_column(Integer, nullable=True)
    product_c: Mapped[int | None] = mapped_column(Integer, nullable=True)
    logistics_c: Mapped[int | None] = mapped_column(Integer, nullable=True)
    aftersales_c: Mapped[int | None] = mapped_column(Integer, nullable=True)
    claims_c: Mapped[int | None] = mapped_column(Integer, nullable=True)


class TrustDirtyOrder(Base):
    """Orders whose facts are due for a refresh: an event handler queues the order (idempotent),
    the refresh job re-derives their facts and rescores what they touch, in batches."""

    __tablename__ = "trust_dirty_orders"

    order_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    # Bumped by every event for the order: the refresh clears only the version it read, so an
    # event that lands while the order is being refreshed queues it again.
    version: Mapped[int] = mapped_column(Integer, default=1, nullable=False)
    queued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class TrustRecompute(Base):
    """One full recompute per day (Asia/Shanghai): the nightly job claims the day, so several
    worker processes run it once, and ops can see when scores were last recomputed in full."""

    __tablename__ = "trust_recomputes"

    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    entities: Mapped[int] = mapped_column(Integer, default=0, nullable=False)


class Complaint(Base):
    """A buyer's complaint that an item was not as the creator described it (虚假宣传), filed
    from a delivered order line attributed to a creator; ops uphold or dismiss it. An upheld one
    counts against the creator's reputation score."""

    __tablename__ = "trust_complaints"
    __table_args__ = (
        UniqueConstraint("order_line_id"),  # one complaint per line, decided by the database
        CheckConstraint("length(claim) BETWEEN 1 AND 500", name="claim_length"),
        Index("ix_trust_complaints_status", "status", "id"),
        Index("ix_trust_complaints_creator", "creator_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), nullable=False, index=True)
    order_line_id: Mapped[int] = mapped_column(ForeignKey("order_lines.id"), nullable=False)
    buyer_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False, index=True)
    creator_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id"), nullable=False)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), nullable=False)
    title: Mapped[str] = mapped_column(String(120), nullable=False)  # the line's, at filing
    claim: Mapped[str] = mapped_column(Text, nullable=False)  # what was said vs what came
    status: Mapped[str] = mapped_column(String(12), default=ComplaintStatus.pending, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    decision_note: Mapped[str] = mapped_column(Text, default="", nullable=False)
