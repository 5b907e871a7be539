"""Tables of the care domain (docs/care.md): a care case about one buyer (optionally opened from
an after-sales request), its follow-up schedule and its timeline of notes, calls and messages."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from trustlive.db import Base, BigId, TimestampMixin, UTCDateTime, utcnow

# The most urgent first: the table's constraint, the lists' order and the filter's check use it
# (care/schemas.py spells the same values as ``Priority``; a test keeps them equal).
PRIORITIES = ("urgent", "high", "normal")


class CareCase(TimestampMixin, Base):
    """A buyer a care specialist (高危专员) follows until the case is closed."""

    __tablename__ = "care_cases"
    __table_args__ = (
        CheckConstraint("status IN ('open', 'closed')", name="status"),
        CheckConstraint(f"priority IN ({', '.join(repr(p) for p in PRIORITIES)})", name="priority"),
        # At most one open case per buyer and after-sales request, and one open case per buyer
        # opened without a request (NULLs never collide in a unique index, hence two).
        Index(
            "uq_care_cases_open_request", "buyer_id", "request_id", unique=True,
            postgresql_where=text("status = 'open' AND request_id IS NOT NULL"),
            sqlite_where=text("status = 'open' AND request_id IS NOT NULL"),
        ),
        Index(
            "uq_care_cases_open_direct", "buyer_id", unique=True,
            postgresql_where=text("status = 'open' AND request_id IS NULL"),
            sqlite_where=text("status = 'open' AND request_id IS NULL"),
        ),
        # The overdue list and "due today": open cases by their next contact.
        Index(
            "ix_care_cases_open_due", "next_due_at",
            postgresql_where=text("status = 'open'"), sqlite_where=text("status = 'open'"),
        ),
    )  # fmt: skip

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    buyer_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False, index=True)
    request_id: Mapped[int | None] = mapped_column(
        ForeignKey("aftersales_requests.id"), nullable=True, index=True
    )
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), nullable=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="open")
    priority: Mapped[str] = mapped_column(String(16), nullable=False, default="normal")
    risk_summary: Mapped[str] = mapped_column(Text, nullable=False)
    specialist_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True, index=True)
    opened_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False)
    # The earliest follow-up not done yet: kept by the service whenever the schedule changes.
    next_due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)
    outcome_note: Mapped[str] = mapped_column(Text, nullable=False, default="")
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    closed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)


class CareFollowUp(Base):
    """A planned contact with the buyer; done when the specialist records what happened."""

    __tablename__ = "care_follow_ups"
    __table_args__ = (
        # The sweeper's work: follow-ups not done and not yet alerted, by due time.
        Index(
            "ix_care_follow_ups_alert_due", "due_at",
            postgresql_where=text("done_at IS NULL AND alerted_at IS NULL"),
            sqlite_where=text("done_at IS NULL AND alerted_at IS NULL"),
        ),
    )  # fmt: skip

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(
        ForeignKey("care_cases.id", ondelete="CASCADE"), nullable=False, index=True
    )
    due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    plan: Mapped[str] = mapped_column(Text, nullable=False)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    done_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    done_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    result: Mapped[str] = mapped_column(Text, nullable=False, default="")
    # Set once by the sweeper when the follow-up first became overdue (care.follow_up_overdue).
    alerted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class CareEntry(Base):
    """One line of the case's timeline: a note, call, visit or message by staff, a buyer's reply,
    or what happened to the case (opened, assigned, closed, reopened). ``to_buyer`` entries are
    the only ones the buyer ever sees."""

    __tablename__ = "care_entries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(
        ForeignKey("care_cases.id", ondelete="CASCADE"), nullable=False, index=True
    )
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False, default="")
    to_buyer: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    follow_up_id: Mapped[int | None] = mapped_column(
        ForeignKey("care_follow_ups.id", ondelete="SET NULL"), nullable=True
    )
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)  # kind "assigned"
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)  # kind "closed"
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
