from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from trustlive.db import Base, BigId, TimestampMixin, UTCDateTime


class ProductStatus(enum.StrEnum):
    draft = "draft"
    published = "published"
    unpublished = "unpublished"


class Category(TimestampMixin, Base):
    __tablename__ = "categories"
    __table_args__ = (
        CheckConstraint("return_window_days >= 0 AND return_window_days <= 90", name="return_window"),
        CheckConstraint("service_fee_bp >= 0 AND service_fee_bp <= 10000", name="service_fee"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    name_zh: Mapped[str] = mapped_column(String(64), nullable=False)
    name_en: Mapped[str] = mapped_column(String(64), nullable=False)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("categories.id"), nullable=True)
    requires_inspection: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    # No-reason return window after receipt; 0 excludes the category (custom-made, perishable).
    return_window_days: Mapped[int] = mapped_column(Integer, default=7, nullable=False)
    # Platform technical service fee in basis points: 500 = 5%.
    service_fee_bp: Mapped[int] = mapped_column(Integer, default=500, nullable=False)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
    position: Mapped[int] = mapped_column(Integer, default=0, nullable=False)


class Shop(TimestampMixin, Base):
    __tablename__ = "shops"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False, index=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    description: Mapped[str] = mapped_column(Text, default="", nullable=False)
    logo_path: Mapped[str | None] = mapped_column(String(255), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="active", nullable=False)

    staff: Mapped[list[ShopStaff]] = relationship(lazy="raise", cascade="all, delete-orphan")


class ShopStaff(Base):
    __tablename__ = "shop_staff"
    __table_args__ = (UniqueConstraint("shop_id", "user_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"), nullable=False)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False, index=True)
    role: Mapped[str] = mapped_column(String(16), nullable=False)  # "owner" | "staff"
    added_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)


class Product(TimestampMixin, Base):
    __tablename__ = "products"
    __table_args__ = (CheckConstraint("commission_bp >= 0 AND commission_bp <= 9000", name="commission"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id"), nullable=False, index=True)
    category_id: Mapped[int] = mapped_column(ForeignKey("categories.id"), nullable=False, index=True)
    title: Mapped[str] = mapped_column(String(120), nullable=False)
    description: Mapped[str] = mapped_column(Text, default="", nullable=False)
    status: Mapped[str] = mapped_column(String(16), default=ProductStatus.draft, nullable=False, index=True)
    published_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Alliance commission offered to creators, basis points of the commission base (0-90%).
    commission_bp: Mapped[int] = mapped_column(Integer, default=0, server_default="0", nullable=False)

    options: Mapped[list[ProductOption]] = relationship(
        lazy="raise", cascade="all, delete-orphan", order_by="ProductOption.position"
    )
    skus: Mapped[list[Sku]] = relationship(lazy="raise", cascade="all, delete-orphan", order_by="Sku.id")
    images: Mapped[list[ProductImage]] = relationship(
        lazy="raise", cascade="all, delete-orphan", order_by="ProductImage.position"
    )


class ProductOption(Base):
    """One axis of variation, e.g. "Size" with values 73..160, or "Left firmness"."""

    __tablename__ = "product_options"
    __table_args__ = (UniqueConstraint("product_id", "position"), UniqueConstraint("product_id", "name"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"), nullable=False)
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    name: Mapped[str] = mapped_column(String(32), nullable=False)
    values: Mapped[list[str]] = mapped_column(JSON, nullable=False)


class Sku(TimestampMixin, Base):
    __tablename__ = "skus"
    __table_args__ = (
        UniqueConstraint("shop_id", "code"),
        UniqueConstraint("product_id", "combo_key"),
        CheckConstraint("price_fen > 0", name="price_positive"),
        CheckConstraint("stock >= 0", name="stock_not_negative"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"), nullable=False)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id"), nullable=False, index=True)
    code: Mapped[str] = mapped_column(String(64), nullable=False)
    # Option values in option order; combo_key is the same joined, so the database refuses twins.
    option_values: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    combo_key: Mapped[str] = mapped_column(String(400), nullable=False)
    price_fen: Mapped[int] = mapped_column(BigInteger, nullable=False)
    # Available to sell: checkout decrements it atomically, cancellation gives it back.
    stock: Mapped[int] = mapped_column(Integer, nullable=False)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
    per_buyer_limit: Mapped[int | None] = mapped_column(Integer, nullable=True)


class ProductImage(Base):
    __tablename__ = "product_images"
    # Every product card looks up its first picture: without this, a scan of all pictures
    # (bench/feed_latency.py: 38 of 57 ms of a discovery page at 1M items).
    __table_args__ = (Index("ix_product_images_product", "product_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"), nullable=False)
    path: Mapped[str] = mapped_column(String(255), nullable=False)
    content_type: Mapped[str] = mapped_column(String(32), nullable=False)
    byte_size: Mapped[int] = mapped_column(Integer, nullable=False)
    width: Mapped[int] = mapped_column(Integer, nullable=False)
    height: Mapped[int] = mapped_column(Integer, nullable=False)
    position: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    uploaded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)


def combo_key(values: list[str] | tuple[str, ...] | Any) -> str:
    return "\x1f".join(values)
