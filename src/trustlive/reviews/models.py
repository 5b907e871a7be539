"""Tables of the reviews domain: one review per order line, its photos, and the shop's reply."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    CheckConstraint,
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

MAX_TEXT = 500  # characters of a review, and of a shop's reply
MAX_PHOTOS = 9


class Review(Base):
    """A verified buyer's ratings of one order line (product, logistics, service: 1-5), with
    optional text and photos, and the shop's one reply. Title and variant are snapshots of the
    line, so lists need no join into orders."""

    __tablename__ = "reviews"
    __table_args__ = (
        # One review per line, decided by the database: two racing posts cannot both land.
        UniqueConstraint("order_line_id"),
        CheckConstraint("rating_product BETWEEN 1 AND 5", name="rating_product"),
        CheckConstraint("rating_logistics BETWEEN 1 AND 5", name="rating_logistics"),
        CheckConstraint("rating_service BETWEEN 1 AND 5", name="rating_service"),
        CheckConstraint(f"photo_count BETWEEN 0 AND {MAX_PHOTOS}", name="photo_count"),
        CheckConstraint(f"length(text) <= {MAX_TEXT}", name="text_length"),
        CheckConstraint(f"reply_text IS NULL OR length(reply_text) <= {MAX_TEXT}", name="reply_length"),
        # Product pages and shop consoles read newest first within one product / one shop.
        Index("ix_reviews_product", "product_id", "id"),
        Index("ix_reviews_shop", "shop_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), nullable=False, index=True)
    order_line_id: Mapped[int] = mapped_column(ForeignKey("order_lines.id"), nullable=False)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), nullable=False)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id"), nullable=False)
    buyer_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False, index=True)
    title: Mapped[str] = mapped_column(String(120), nullable=False)  # the line's, at posting
    variant: Mapped[str] = mapped_column(String(200), default="", nullable=False)  # "90 / 米白"
    rating_product: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    # The product rating as first posted: an edit cannot take a negative review out of the scores.
    rating_product_first: Mapped[int | None] = mapped_column(SmallInteger, nullable=True)
    rating_logistics: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    rating_service: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    text: Mapped[str] = mapped_column(Text, default="", nullable=False)
    photo_count: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    # Never changed by an edit: the trust scores count a review in the window of its creation.
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    # The edit deadline, fixed when posted (created_at + TRUSTLIVE_REVIEW_EDIT_HOURS).
    edit_until: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    edited_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    reply_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    reply_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    replied_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    reply_edited_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ReviewPhoto(Base):
    __tablename__ = "review_photos"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    review_id: Mapped[int] = mapped_column(
        ForeignKey("reviews.id", ondelete="CASCADE"), nullable=False, index=True
    )
    path: Mapped[str] = mapped_column(String(255), nullable=False)
    content_type: Mapped[str] = mapped_column(String(32), nullable=False)
    byte_size: Mapped[int] = mapped_column(Integer, nullable=False)
    width: Mapped[int] = mapped_column(Integer, nullable=False)
    height: Mapped[int] = mapped_column(Integer, nullable=False)
    position: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
