"""Shipments, the tracking events we accepted, and the sandbox tracking service's delivery queue."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from trustlive.db import Base, BigId, UTCDateTime, utcnow
from trustlive.webhook_delivery import DeliveryColumns

# A parcel's stages in order; a stage only ever moves forward (events may arrive out of order).
STAGES = ("shipped", "picked_up", "in_transit", "delivered")


class Shipment(Base):
    """One parcel leg of an order. ``to_buyer`` today; the QC and return legs come with them."""

    __tablename__ = "shipments"
    __table_args__ = (Index("ix_shipments_tracking", "carrier", "tracking_no"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), nullable=False, index=True)
    leg: Mapped[str] = mapped_column(String(16), nullable=False)
    carrier: Mapped[str] = mapped_column(String(32), nullable=False)
    tracking_no: Mapped[str] = mapped_column(String(64), nullable=False)
    stage: Mapped[str] = mapped_column(String(16), nullable=False)
    stage_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class TrackingEvent(Base):
    """Every tracking event we accepted (signature valid), once: the dedup record and the
    parcel's history as the buyer sees it."""

    __tablename__ = "tracking_events"
    __table_args__ = (
        UniqueConstraint("provider", "event_id"),
        Index("ix_tracking_events_parcel", "carrier", "tracking_no"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(String(32), nullable=False)
    event_id: Mapped[str] = mapped_column(String(100), nullable=False)
    carrier: Mapped[str] = mapped_column(String(32), nullable=False)
    tracking_no: Mapped[str] = mapped_column(String(64), nullable=False)
    stage: Mapped[str] = mapped_column(String(16), nullable=False)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)  # when the carrier saw it
    location: Mapped[str] = mapped_column(String(64), default="", nullable=False)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    outcome: Mapped[str] = mapped_column(String(24), nullable=False)  # applied | stale | unknown_shipment


class SandboxTrackingDelivery(DeliveryColumns, Base):
    """One tracking event the sandbox service must deliver, due at the simulated moment it
    happens and then retried with exponential backoff (``trustlive.webhook_delivery``)."""

    __tablename__ = "sandbox_tracking_deliveries"
    __table_args__ = (Index("ix_sandbox_tracking_deliveries_due", "delivered_at", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
