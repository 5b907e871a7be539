"""Payment tables: ours (intents, the orders they pay, refunds, webhook events seen) and, apart,
the sandbox provider's own (charges, refunds, webhook deliveries).

The two halves never join: the sandbox plays a payment company that happens to live in the same
database. It knows provider references, amounts and a return URL, never our intents or orders, and
talks to us only through signed webhooks and the provider interface (see docs/payments.md).
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from trustlive.db import Base, BigId, UTCDateTime, utcnow
from trustlive.webhook_delivery import DeliveryColumns


class IntentStatus(enum.StrEnum):
    requires_payment = "requires_payment"
    succeeded = "succeeded"
    failed = "failed"
    partially_refunded = "partially_refunded"
    refunded = "refunded"


# An intent whose money was captured (refunds do not undo the capture).
CAPTURED = (IntentStatus.succeeded, IntentStatus.partially_refunded, IntentStatus.refunded)


class RefundStatus(enum.StrEnum):
    pending = "pending"
    succeeded = "succeeded"
    failed = "failed"


class LinkOutcome(enum.StrEnum):
    """What a captured payment did for one of its orders."""

    paid = "paid"  # the order is paid by this intent
    refunded_late = "refunded_late"  # the order was no longer payable: its share went back


class PaymentIntent(Base):
    """One attempt by a buyer to pay one or more of their orders, at one provider."""

    __tablename__ = "payment_intents"
    __table_args__ = (
        UniqueConstraint("buyer_id", "idempotency_key"),
        CheckConstraint("amount_fen > 0", name="amount_positive"),
        CheckConstraint("refunded_fen >= 0 AND refunded_fen <= amount_fen", name="refunds"),
        CheckConstraint(
            "status IN ('requires_payment', 'succeeded', 'failed', 'partially_refunded', 'refunded')",
            name="status_known",
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    buyer_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False, index=True)
    amount_fen: Mapped[int] = mapped_column(BigInteger, nullable=False)
    refunded_fen: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    status: Mapped[str] = mapped_column(String(24), nullable=False, default=IntentStatus.requires_payment)
    provider: Mapped[str] = mapped_column(String(32), nullable=False)
    # Set in the same transaction that creates the intent (the provider answers synchronously).
    provider_ref: Mapped[str | None] = mapped_column(String(100), nullable=True, unique=True)
    pay_url: Mapped[str | None] = mapped_column(String(500), nullable=True)
    idempotency_key: Mapped[str] = mapped_column(String(100), nullable=False)
    # What the key was used for ("orders:1,2" / "checkout:7"): the same key for something else is refused.
    request_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    succeeded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    failed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    failure_reason: Mapped[str | None] = mapped_column(String(200), nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False
    )


class PaymentIntentOrder(Base):
    """The orders an intent pays and each one's share (its total at checkout)."""

    __tablename__ = "payment_intent_orders"
    __table_args__ = (CheckConstraint("amount_fen > 0", name="amount_positive"),)

    intent_id: Mapped[int] = mapped_column(
        ForeignKey("payment_intents.id", ondelete="CASCADE"), primary_key=True
    )
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), primary_key=True, index=True)
    amount_fen: Mapped[int] = mapped_column(BigInteger, nullable=False)
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)  # LinkOutcome once captured


class Refund(Base):
    """Money going back to the buyer for one order of a captured intent.

    The ledger moves (escrow -> external:buyer_refunds) when the refund is created; the provider is
    asked afterwards by ``tasks.submit_refunds`` (never inside the request that decided it) and its
    ``refund.succeeded`` webhook marks the refund succeeded."""

    __tablename__ = "refunds"
    __table_args__ = (
        CheckConstraint("amount_fen > 0", name="amount_positive"),
        CheckConstraint("status IN ('pending', 'succeeded', 'failed')", name="status_known"),
        Index("ix_refunds_status_next_submit_at", "status", "next_submit_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    intent_id: Mapped[int] = mapped_column(ForeignKey("payment_intents.id"), nullable=False, index=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), nullable=False, index=True)
    amount_fen: Mapped[int] = mapped_column(BigInteger, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=RefundStatus.pending)
    reason: Mapped[str] = mapped_column(String(200), nullable=False)
    # Namespaced: "user:<id>:<client key>" for requests, "late:<intent>:<order>" for automatic ones.
    idempotency_key: Mapped[str] = mapped_column(String(160), nullable=False, unique=True)
    request_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    provider_refund_ref: Mapped[str | None] = mapped_column(String(100), nullable=True, unique=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    submitted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    succeeded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Asking the provider is retried with backoff until it accepts.
    submit_attempts: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    next_submit_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)


class WebhookEvent(Base):
    """Every provider event we accepted (signature valid), once: the dedup record and audit trail."""

    __tablename__ = "webhook_events"
    __table_args__ = (UniqueConstraint("provider", "event_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(String(32), nullable=False)
    event_id: Mapped[str] = mapped_column(String(100), nullable=False)
    type: Mapped[str] = mapped_column(String(40), nullable=False)
    provider_ref: Mapped[str | None] = mapped_column(String(100), nullable=True, index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    # applied | stale | deferred | unknown_intent | unmatched | amount_mismatch | ignored
    outcome: Mapped[str] = mapped_column(String(24), nullable=False)


# --- the sandbox provider's own tables ---------------------------------------------------------


class SandboxCharge(Base):
    """A payment page at the sandbox: what the buyer sees and what happened to it."""

    __tablename__ = "sandbox_charges"
    __table_args__ = (
        CheckConstraint("amount_fen > 0", name="amount_positive"),
        CheckConstraint("refunded_fen >= 0 AND refunded_fen <= amount_fen", name="refunds"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ref: Mapped[str] = mapped_column(String(100), nullable=False, unique=True)
    # The merchant's idempotency key: the same key creates no second charge.
    merchant_key: Mapped[str] = mapped_column(String(160), nullable=False, unique=True)
    amount_fen: Mapped[int] = mapped_column(BigInteger, nullable=False)
    refunded_fen: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False, default="CNY")
    merchant_name: Mapped[str] = mapped_column(String(64), nullable=False)
    description: Mapped[str] = mapped_column(String(200), nullable=False)
    return_url: Mapped[str] = mapped_column(String(500), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="open")  # open|paid
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    paid_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class SandboxRefund(Base):
    __tablename__ = "sandbox_refunds"
    __table_args__ = (CheckConstraint("amount_fen > 0", name="amount_positive"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ref: Mapped[str] = mapped_column(String(100), nullable=False, unique=True)
    charge_id: Mapped[int] = mapped_column(ForeignKey("sandbox_charges.id"), nullable=False, index=True)
    merchant_key: Mapped[str] = mapped_column(String(160), nullable=False, unique=True)
    amount_fen: Mapped[int] = mapped_column(BigInteger, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="succeeded")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class SandboxWebhookDelivery(DeliveryColumns, Base):
    """One event the sandbox must deliver to the merchant, retried with exponential backoff
    (``trustlive.webhook_delivery``)."""

    __tablename__ = "sandbox_webhook_deliveries"
    __table_args__ = (Index("ix_sandbox_webhook_deliveries_due", "delivered_at", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    type: Mapped[str] = mapped_column(String(40), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
