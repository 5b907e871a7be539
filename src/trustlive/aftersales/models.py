"""Tables of the after-sales domain (docs/aftersales.md)."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import BigInteger, Boolean, CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from trustlive.db import Base, BigId, UTCDateTime, utcnow


class Kind(enum.StrEnum):
    refund_only = "refund_only"  # 仅退款
    return_refund = "return_refund"  # 退货退款


class Reason(enum.StrEnum):
    no_reason = "no_reason"  # 七天无理由
    quality = "quality"
    wrong_item = "wrong_item"
    not_as_described = "not_as_described"
    not_received = "not_received"
    not_shipped = "not_shipped"


class Status(enum.StrEnum):
    pending = "pending"  # waiting for the shop's answer
    rejected = "rejected"  # the shop said no; the buyer may escalate
    escalated = "escalated"  # ops arbitrate
    awaiting_return = "awaiting_return"  # approved return: the buyer ships the item back
    return_shipped = "return_shipped"  # on its way back; refunded on arrival
    refunded = "refunded"  # end
    closed = "closed"  # end without a refund (see resolution)


OPEN = (Status.pending, Status.rejected, Status.escalated, Status.awaiting_return, Status.return_shipped)
ENDED = (Status.refunded, Status.closed)


class Resolution(enum.StrEnum):
    approved = "approved"  # by the shop
    auto_approved = "auto_approved"
    rejected = "rejected"
    arbitrated_buyer = "arbitrated_buyer"
    arbitrated_seller = "arbitrated_seller"
    withdrawn = "withdrawn"
    return_not_sent = "return_not_sent"
    # Approved, but the order had been refunded by other means meanwhile (nothing left to pay).
    already_refunded = "already_refunded"
    # A whole-order claim the order has outgrown (shipped after "not shipped", receipt confirmed
    # after "not received"): closed by the sweeper instead of being approved automatically.
    outdated = "outdated"


class AftersalesRequest(Base):
    """A buyer's refund (仅退款) or return-and-refund (退货退款) request on one order line or on the
    whole order, from opening to refund or closure. Every deadline is a column so the sweeper
    finds due work with one indexed query, and every transition is a conditional UPDATE."""

    __tablename__ = "aftersales_requests"
    __table_args__ = (
        CheckConstraint("amount_fen > 0", name="amount"),
        CheckConstraint("refund_fen >= 0", name="refund"),
        # One open request per line (slot = line id) or per whole order (slot = 0); NULL once ended.
        UniqueConstraint("order_id", "open_slot"),
        Index("ix_aftersales_requests_shop_status", "shop_id", "status"),
        Index("ix_aftersales_requests_status_due", "status", "due_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), nullable=False, index=True)
    line_id: Mapped[int | None] = mapped_column(
        ForeignKey("order_lines.id"), nullable=True
    )  # None: whole order
    buyer_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False, index=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id"), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    reason: Mapped[str] = mapped_column(String(20), nullable=False)
    seller_cause: Mapped[bool] = mapped_column(Boolean, nullable=False)
    description: Mapped[str] = mapped_column(Text, default="", nullable=False)
    amount_fen: Mapped[int] = mapped_column(BigInteger, nullable=False)  # asked
    status: Mapped[str] = mapped_column(String(20), nullable=False, default=Status.pending)
    open_slot: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # The next deadline of the current status (answer, escalate, ship back, refund on arrival).
    due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    # The shop's answer (or the sweeper's: auto_approved, responder None).
    decision: Mapped[str | None] = mapped_column(String(20), nullable=True)
    responded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    responder_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    reject_reason: Mapped[str] = mapped_column(Text, default="", nullable=False)
    # Arbitration by ops after the buyer escalated a rejection.
    escalated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    arbitrated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    arbitrator_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    arbitration_note: Mapped[str] = mapped_column(Text, default="", nullable=False)
    # The return parcel: who pays its postage (shop = sent freight collect, 到付), the parcel.
    postage_payer: Mapped[str | None] = mapped_column(String(8), nullable=True)
    return_shipment_id: Mapped[int | None] = mapped_column(ForeignKey("shipments.id"), nullable=True)
    return_carrier: Mapped[str | None] = mapped_column(String(32), nullable=True)
    return_tracking_no: Mapped[str | None] = mapped_column(String(64), nullable=True)
    return_shipped_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    return_arrived_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    arrival_confirmed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    arrival_confirmed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    # The end: how it ended, when, and the money returned.
    resolution: Mapped[str | None] = mapped_column(String(20), nullable=True)
    resolved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    refund_fen: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    auto_refunded: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)  # by the sweeper
    refund_id: Mapped[int | None] = mapped_column(ForeignKey("refunds.id"), nullable=True)


class AftersalesMessage(Base):
    """The request's thread: buyer, shop and ops post here (the arbitration's record)."""

    __tablename__ = "aftersales_messages"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("aftersales_requests.id", ondelete="CASCADE"), nullable=False, index=True
    )
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)  # None: the system
    side: Mapped[str] = mapped_column(String(8), nullable=False)  # buyer | shop | ops | system
    body: Mapped[str] = mapped_column(Text, default="", nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class AftersalesPhoto(Base):
    """An evidence photo: of the request itself (message_id None) or of one message."""

    __tablename__ = "aftersales_photos"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("aftersales_requests.id", ondelete="CASCADE"), nullable=False, index=True
    )
    message_id: Mapped[int | None] = mapped_column(
        ForeignKey("aftersales_messages.id", ondelete="CASCADE"), nullable=True
    )
    path: Mapped[str] = mapped_column(String(200), nullable=False)  # under the media dir
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
