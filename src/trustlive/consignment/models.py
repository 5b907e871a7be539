"""Tables of the consignment domain: items a consignor sends to an appraiser creator, their photos,
the appraisals recorded during the creator's live sessions, and the creator's fee waivers.

An item's life: ``submitted`` → ``appraised`` (again as often as the creator re-values it) →
``listed`` (the consignor accepted: a product with one SKU of stock 1 in the creator's shop) →
``settled`` (its order settled: the proceeds went to the consignor's wallet). ``declined`` (the
consignor refused the valuation) and ``withdrawn`` (taken back before it sold) are closed.
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from trustlive.db import Base, BigId, TimestampMixin, UTCDateTime, utcnow

MAX_TITLE = 100
MAX_DESCRIPTION = 2000
MAX_GRADE = 20
MAX_NOTES = 500
MAX_PHOTOS = 9


class ItemStatus(enum.StrEnum):
    submitted = "submitted"
    appraised = "appraised"
    listed = "listed"
    settled = "settled"
    declined = "declined"
    withdrawn = "withdrawn"


class ConsignedItem(TimestampMixin, Base):
    __tablename__ = "consigned_items"
    __table_args__ = (
        CheckConstraint(
            "status IN ('submitted', 'appraised', 'listed', 'settled', 'declined', 'withdrawn')",
            name="status_known",
        ),
        CheckConstraint("asking_fen IS NULL OR asking_fen > 0", name="asking_positive"),
        CheckConstraint("valuation_fen IS NULL OR valuation_fen > 0", name="valuation_positive"),
        CheckConstraint("fee_bp IS NULL OR fee_bp BETWEEN 0 AND 10000", name="fee_bp_range"),
        Index("ix_consigned_items_appraiser", "appraiser_id", "id"),
        Index("ix_consigned_items_consignor", "consignor_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    consignor_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False)
    appraiser_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id"), nullable=False)  # the appraiser's
    category_id: Mapped[int] = mapped_column(ForeignKey("categories.id"), nullable=False)
    title: Mapped[str] = mapped_column(String(MAX_TITLE), nullable=False)
    description: Mapped[str] = mapped_column(Text, default="", nullable=False)
    asking_fen: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default=ItemStatus.submitted, nullable=False)
    # The latest appraisal (the history is in consignment_appraisals).
    valuation_fen: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    grade: Mapped[str | None] = mapped_column(String(MAX_GRADE), nullable=True)
    notes: Mapped[str] = mapped_column(Text, default="", nullable=False)
    session_id: Mapped[int | None] = mapped_column(ForeignKey("live_sessions.id"), nullable=True)
    appraised_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Set when listed: the fee in force then, and the product sold in the creator's shop.
    fee_bp: Mapped[int | None] = mapped_column(Integer, nullable=True)
    product_id: Mapped[int | None] = mapped_column(ForeignKey("products.id"), nullable=True, unique=True)
    sku_id: Mapped[int | None] = mapped_column(ForeignKey("skus.id"), nullable=True)
    # Set when settled: the order, the fee kept by the shop and what reached the consignor.
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), nullable=True)
    fee_fen: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    proceeds_fen: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    settled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ConsignedPhoto(Base):
    __tablename__ = "consigned_photos"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("consigned_items.id"), nullable=False, index=True)
    path: Mapped[str] = mapped_column(String(200), nullable=False)
    content_type: Mapped[str] = mapped_column(String(40), nullable=False)
    byte_size: Mapped[int] = mapped_column(Integer, nullable=False)
    width: Mapped[int] = mapped_column(Integer, nullable=False)
    height: Mapped[int] = mapped_column(Integer, nullable=False)
    position: Mapped[int] = mapped_column(Integer, nullable=False)


class Appraisal(Base):
    """One valuation of an item, recorded during one of the appraiser's live sessions."""

    __tablename__ = "consignment_appraisals"
    __table_args__ = (CheckConstraint("valuation_fen > 0", name="valuation_positive"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("consigned_items.id"), nullable=False, index=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("live_sessions.id"), nullable=False)
    appraiser_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False)
    valuation_fen: Mapped[int] = mapped_column(BigInteger, nullable=False)
    grade: Mapped[str] = mapped_column(String(MAX_GRADE), nullable=False)
    notes: Mapped[str] = mapped_column(Text, default="", nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class FeeWaiver(Base):
    """The creator charges no consignment fee on sales whose order was placed in [starts_at, ends_at)."""

    __tablename__ = "consignment_fee_waivers"
    __table_args__ = (
        CheckConstraint("ends_at > starts_at", name="period_forward"),
        Index("ix_consignment_fee_waivers_creator", "creator_id", "ends_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    creator_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False)
    starts_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    ends_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
