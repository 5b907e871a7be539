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
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from trustlive.db import Base, BigId, TimestampMixin, UTCDateTime, utcnow


class OrderStatus(enum.StrEnum):
    pending_payment = "pending_payment"
    paid = "paid"
    shipped = "shipped"
    delivered = "delivered"
    completed = "completed"
    settled = "settled"
    cancelled = "cancelled"
    refunded = "refunded"


class Source(enum.StrEnum):
    """Where the buyer came from: every order line records it (traffic attribution)."""

    follow_feed = "follow_feed"
    discovery_feed = "discovery_feed"
    live_room = "live_room"
    short_video = "short_video"
    shelf = "shelf"
    alliance_link = "alliance_link"


class Address(TimestampMixin, Base):
    __tablename__ = "addresses"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False, index=True)
    recipient: Mapped[str] = mapped_column(String(32), nullable=False)
    phone: Mapped[str] = mapped_column(String(20), nullable=False)
    region: Mapped[str] = mapped_column(String(64), nullable=False)  # province / city / district
    detail: Mapped[str] = mapped_column(String(200), nullable=False)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    is_deleted: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)


class ShopTerms(Base):
    """A shop's selling terms: shipping fee (flat, free from a goods-value threshold) and its
    settlement delay tier (days after completion before escrow is split; the scores issue sets it)."""

    __tablename__ = "shop_terms"
    __table_args__ = (
        CheckConstraint("flat_fee_fen >= 0", name="flat_fee"),
        CheckConstraint("free_over_fen IS NULL OR free_over_fen > 0", name="free_over"),
        CheckConstraint("settlement_delay_days >= 0 AND settlement_delay_days <= 90", name="delay"),
    )

    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id"), primary_key=True)
    flat_fee_fen: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    free_over_fen: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    settlement_delay_days: Mapped[int] = mapped_column(Integer, default=7, nullable=False)
    # Returns: some shops pay the postage of no-reason returns too (the buyer sends freight collect).
    covers_return_shipping: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    return_address: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False
    )


class CartItem(Base):
    __tablename__ = "cart_items"
    __table_args__ = (
        UniqueConstraint("buyer_id", "sku_id"),
        CheckConstraint("quantity > 0", name="quantity"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    buyer_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False, index=True)
    sku_id: Mapped[int] = mapped_column(ForeignKey("skus.id", ondelete="CASCADE"), nullable=False)
    quantity: Mapped[int] = mapped_column(Integer, nullable=False)
    source: Mapped[str] = mapped_column(String(20), nullable=False)
    creator_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    added_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class Checkout(Base):
    """One buyer request that became one order per shop; the idempotency key lives here."""

    __tablename__ = "checkouts"
    __table_args__ = (UniqueConstraint("buyer_id", "idempotency_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    buyer_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False)
    idempotency_key: Mapped[str] = mapped_column(String(100), nullable=False)
    request_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    total_fen: Mapped[int] = mapped_column(BigInteger, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


DUE_INDEXES = (
    ("ix_orders_pay_due", "pay_deadline", OrderStatus.pending_payment.value),
    ("ix_orders_ship_due", "ship_by", OrderStatus.paid.value),  # ops' list of overdue shipments
    ("ix_orders_confirm_due", "auto_confirm_at", OrderStatus.delivered.value),
    ("ix_orders_settle_due", "settle_at", OrderStatus.completed.value),
)


class Order(TimestampMixin, Base):
    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint(
            "goods_fen >= 0 AND shipping_fen >= 0 AND total_fen = goods_fen + shipping_fen", name="sums"
        ),
        CheckConstraint("refunded_fen >= 0 AND refunded_fen <= paid_fen", name="refunds"),
        CheckConstraint(
            "shipping_refunded_fen >= 0 AND shipping_refunded_fen <= shipping_fen", name="shipping_refunds"
        ),
        CheckConstraint("settlement_holds >= 0", name="settlement_holds"),
        # Deadline sweepers find due work through these. Each holds only the orders in the status
        # its deadline belongs to, so an order is in one of them at most: a new order costs one
        # index entry here, not three (repository.due_orders names the status as a literal).
        *(
            Index(
                name,
                column,
                postgresql_where=text(f"status = '{status}'"),
                sqlite_where=text(f"status = '{status}'"),
            )
            for name, column, status in DUE_INDEXES
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    checkout_id: Mapped[int] = mapped_column(ForeignKey("checkouts.id"), nullable=False, index=True)
    buyer_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False, index=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id"), nullable=False, index=True)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default=OrderStatus.pending_payment)
    goods_fen: Mapped[int] = mapped_column(BigInteger, nullable=False)
    shipping_fen: Mapped[int] = mapped_column(BigInteger, nullable=False)
    total_fen: Mapped[int] = mapped_column(BigInteger, nullable=False)
    paid_fen: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    refunded_fen: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    # The part of refunded_fen that was refunded for shipping (the rest is off the goods).
    shipping_refunded_fen: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    # Open after-sales requests: escrow is not split while any is open.
    settlement_holds: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    address: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)  # snapshot at checkout
    note: Mapped[str] = mapped_column(String(200), default="", nullable=False)
    pay_deadline: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    paid_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    payment_ref: Mapped[str | None] = mapped_column(String(100), nullable=True)
    ship_by: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)  # set when paid
    shipped_late_minutes: Mapped[int | None] = mapped_column(Integer, nullable=True)  # set when shipped
    carrier: Mapped[str | None] = mapped_column(String(32), nullable=True)
    tracking_no: Mapped[str | None] = mapped_column(String(64), nullable=True)
    shipped_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    auto_confirm_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    completed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    settle_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    settled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    cancel_reason: Mapped[str | None] = mapped_column(String(64), nullable=True)

    lines: Mapped[list[OrderLine]] = relationship(lazy="raise", order_by="OrderLine.id")


class OrderLine(Base):
    """What was bought, frozen at checkout: title, SKU, price, attribution and the rates in force."""

    __tablename__ = "order_lines"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity"),
        CheckConstraint("unit_price_fen > 0 AND line_total_fen = unit_price_fen * quantity", name="amounts"),
        CheckConstraint("refunded_fen >= 0 AND refunded_fen <= line_total_fen", name="line_refunds"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    order_id: Mapped[int] = mapped_column(
        ForeignKey("orders.id", ondelete="CASCADE"), nullable=False, index=True
    )
    sku_id: Mapped[int] = mapped_column(ForeignKey("skus.id"), nullable=False, index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), nullable=False)
    title: Mapped[str] = mapped_column(String(120), nullable=False)
    sku_code: Mapped[str] = mapped_column(String(64), nullable=False)
    option_values: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    unit_price_fen: Mapped[int] = mapped_column(BigInteger, nullable=False)
    quantity: Mapped[int] = mapped_column(Integer, nullable=False)
    line_total_fen: Mapped[int] = mapped_column(BigInteger, nullable=False)
    # Refunds made for this line (a return of it); order-level refunds are spread at settlement.
    refunded_fen: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    source: Mapped[str] = mapped_column(String(20), nullable=False)
    creator_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True, index=True)
    commission_bp: Mapped[int] = mapped_column(Integer, nullable=False)
    category_id: Mapped[int] = mapped_column(ForeignKey("categories.id"), nullable=False)
    service_fee_bp: Mapped[int] = mapped_column(Integer, nullable=False)
    return_window_days: Mapped[int] = mapped_column(Integer, nullable=False)
    requires_inspection: Mapped[bool] = mapped_column(Boolean, nullable=False)


class OrderEvent(Base):
    """The order's timeline: every transition, who made it and why."""

    __tablename__ = "order_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    order_id: Mapped[int] = mapped_column(
        ForeignKey("orders.id", ondelete="CASCADE"), nullable=False, index=True
    )
    from_status: Mapped[str | None] = mapped_column(String(20), nullable=True)
    to_status: Mapped[str] = mapped_column(String(20), nullable=False)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    note: Mapped[str] = mapped_column(Text, default="", nullable=False)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class PurchaseCount(Base):
    """Units of a SKU a buyer holds in live orders, so per-buyer limits hold under concurrency."""

    __tablename__ = "purchase_counts"
    __table_args__ = (CheckConstraint("quantity >= 0", name="quantity"),)

    buyer_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    sku_id: Mapped[int] = mapped_column(ForeignKey("skus.id", ondelete="CASCADE"), primary_key=True)
    quantity: Mapped[int] = mapped_column(Integer, nullable=False)
