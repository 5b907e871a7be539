"""Shipments, the tracking events we accepted, the sandbox tracking service's delivery queue, and
the QC warehouse: labs, warehouses, routing, inspectors, inspection cases and their photos, and
the labs' result callbacks."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
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
from sqlalchemy.orm import Mapped, mapped_column

from trustlive.db import Base, BigId, UTCDateTime, utcnow
from trustlive.webhook_delivery import DeliveryColumns

# A parcel's stages in order; a stage only ever moves forward (events may arrive out of order).
STAGES = ("shipped", "picked_up", "in_transit", "delivered")


class Shipment(Base):
    """One parcel leg of an order (``service.LEGS``): to the buyer, to the QC warehouse and on from it,
    or a return."""

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


# --- the QC warehouse (先鉴后发): labs, warehouses, routing, inspectors, cases ----------------


class QcLab(Base):
    """An accredited inspection lab: CMA (资质认定) and/or CNAS accreditation numbers."""

    __tablename__ = "qc_labs"
    __table_args__ = (CheckConstraint("cma_no IS NOT NULL OR cnas_no IS NOT NULL", name="accredited"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    cma_no: Mapped[str | None] = mapped_column(String(12), nullable=True)
    cnas_no: Mapped[str | None] = mapped_column(String(8), nullable=True)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False
    )


class QcWarehouse(Base):
    """A QC warehouse: where sellers send goods that must be inspected, and the lab working there.
    At most one is the default, for inspection categories without a route of their own."""

    __tablename__ = "qc_warehouses"
    __table_args__ = (
        Index("uq_qc_warehouses_default", "is_default", unique=True,
              postgresql_where=text("is_default"), sqlite_where=text("is_default")),
    )  # fmt: skip

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    recipient: Mapped[str] = mapped_column(String(32), nullable=False)
    phone: Mapped[str] = mapped_column(String(20), nullable=False)
    region: Mapped[str] = mapped_column(String(64), nullable=False)
    detail: Mapped[str] = mapped_column(String(200), nullable=False)
    lab_id: Mapped[int] = mapped_column(ForeignKey("qc_labs.id"), nullable=False, index=True)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False
    )


class QcRoute(Base):
    """Orders of this (inspection) category go to this warehouse."""

    __tablename__ = "qc_routes"

    category_id: Mapped[int] = mapped_column(ForeignKey("categories.id"), primary_key=True)
    warehouse_id: Mapped[int] = mapped_column(ForeignKey("qc_warehouses.id"), nullable=False, index=True)
    updated_at: Mapped[dt.datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False
    )


class QcInspector(Base):
    """An inspector account working at a warehouse (one account may work at several)."""

    __tablename__ = "qc_inspectors"
    __table_args__ = (UniqueConstraint("warehouse_id", "user_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    warehouse_id: Mapped[int] = mapped_column(ForeignKey("qc_warehouses.id"), nullable=False)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False, index=True)
    added_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    added_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class QcCase(Base):
    """One order's inspection, from the seller's parcel to the warehouse until the item leaves it
    again: ``inbound`` → ``received`` → ``passed`` → ``forwarded``, or ``received`` → ``failed`` →
    ``returned``. The result columns are the certificate (its number is unique platform-wide)."""

    __tablename__ = "qc_cases"
    __table_args__ = (
        CheckConstraint("weight_mg IS NULL OR weight_mg > 0", name="weight"),
        CheckConstraint("fee_fen >= 0 AND refunded_fen >= 0", name="money"),
        Index("ix_qc_cases_queue", "warehouse_id", "status"),
        Index("ix_qc_cases_inbound", "inbound_tracking_no"),
        # The turnaround sweeper and ops' overdue list read only received, uninspected cases.
        Index("ix_qc_cases_due", "due_at", postgresql_where=text("status = 'received'"),
              sqlite_where=text("status = 'received'")),
    )  # fmt: skip

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), unique=True, nullable=False)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id"), nullable=False, index=True)
    warehouse_id: Mapped[int] = mapped_column(ForeignKey("qc_warehouses.id"), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    inbound_carrier: Mapped[str] = mapped_column(String(32), nullable=False)
    inbound_tracking_no: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    received_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    received_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)  # received + turnaround
    overdue_alerted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The inspection (one per case) and its certificate.
    result: Mapped[str | None] = mapped_column(String(8), nullable=True)  # pass | fail
    certificate_no: Mapped[str | None] = mapped_column(String(40), unique=True, nullable=True)
    material: Mapped[str | None] = mapped_column(String(64), nullable=True)
    weight_mg: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    notes: Mapped[str] = mapped_column(Text, default="", nullable=False)
    lab_id: Mapped[int | None] = mapped_column(ForeignKey("qc_labs.id"), nullable=True)
    inspected_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    inspected_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    source: Mapped[str | None] = mapped_column(String(8), nullable=True)  # console | lab
    # The lab's fee and who paid it (shop | platform; None when no fee), and the buyer's refund.
    fee_fen: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    fee_payer: Mapped[str | None] = mapped_column(String(16), nullable=True)
    refunded_fen: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    forwarded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    returned_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False
    )


class QcPhoto(Base):
    """A photo of the inspected item (at most 9 per case), part of its certificate."""

    __tablename__ = "qc_photos"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(
        ForeignKey("qc_cases.id", ondelete="CASCADE"), nullable=False, index=True
    )
    path: Mapped[str] = mapped_column(String(255), nullable=False)
    content_type: Mapped[str] = mapped_column(String(32), nullable=False)
    byte_size: Mapped[int] = mapped_column(Integer, nullable=False)
    width: Mapped[int] = mapped_column(Integer, nullable=False)
    height: Mapped[int] = mapped_column(Integer, nullable=False)
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    uploaded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class QcLabEvent(Base):
    """Every result callback a lab sent us that was accepted, once (unique per lab and event id)."""

    __tablename__ = "qc_lab_events"
    __table_args__ = (UniqueConstraint("lab_id", "event_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    lab_id: Mapped[int] = mapped_column(ForeignKey("qc_labs.id"), nullable=False)
    event_id: Mapped[str] = mapped_column(String(100), nullable=False)
    case_id: Mapped[int] = mapped_column(ForeignKey("qc_cases.id"), nullable=False, index=True)
    result: Mapped[str] = mapped_column(String(8), nullable=False)
    certificate_no: Mapped[str] = mapped_column(String(40), nullable=False)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
