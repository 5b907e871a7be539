"""Ledger tables: transactions, their postings, running balances, the chain head, payouts.

Rows of ``ledger_transactions`` and ``ledger_postings`` are only ever inserted. Their ids are
allocated from ``ledger_head`` while it is locked, so they run 1, 2, 3 ... without gaps, in chain
order; ``service.verify`` relies on that to notice a deleted, inserted or renumbered row.
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from trustlive.db import Base, BigId, UTCDateTime, utcnow

ACCOUNT_LENGTH = 64
HASH_LENGTH = 64  # sha256, hex


class LedgerTransaction(Base):
    __tablename__ = "ledger_transactions"

    # Allocated from ledger_head (no database sequence): contiguous, in chain order.
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    ref: Mapped[str] = mapped_column(String(100), nullable=False, index=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), nullable=False, unique=True)
    memo: Mapped[str] = mapped_column(String(500), nullable=False, default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    prev_hash: Mapped[str] = mapped_column(String(HASH_LENGTH), nullable=False)
    hash: Mapped[str] = mapped_column(String(HASH_LENGTH), nullable=False)

    postings: Mapped[list[LedgerPosting]] = relationship(lazy="raise", order_by="LedgerPosting.id")


class LedgerPosting(Base):
    __tablename__ = "ledger_postings"
    __table_args__ = (
        CheckConstraint("amount_fen <> 0", name="amount_nonzero"),
        Index("ix_ledger_postings_account_id", "account", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    transaction_id: Mapped[int] = mapped_column(
        ForeignKey("ledger_transactions.id"), nullable=False, index=True
    )
    account: Mapped[str] = mapped_column(String(ACCOUNT_LENGTH), nullable=False)
    # Signed: money moves out of an account with a negative amount and into one with a positive.
    amount_fen: Mapped[int] = mapped_column(BigInteger, nullable=False)


class LedgerBalance(Base):
    """SUM(amount_fen) of an account's postings, kept in step inside the posting transaction."""

    __tablename__ = "ledger_balances"

    account: Mapped[str] = mapped_column(String(ACCOUNT_LENGTH), primary_key=True)
    balance_fen: Mapped[int] = mapped_column(BigInteger, nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)


class LedgerHead(Base):
    """One row: the end of the chain. Locked (FOR UPDATE on PostgreSQL) to serialise appends."""

    __tablename__ = "ledger_head"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_transaction_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    last_posting_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    last_hash: Mapped[str] = mapped_column(String(HASH_LENGTH), nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)


class PayoutStatus(enum.StrEnum):
    requested = "requested"
    paid = "paid"
    failed = "failed"


class Payout(Base):
    __tablename__ = "payouts"
    __table_args__ = (
        CheckConstraint("amount_fen > 0", name="amount_positive"),
        CheckConstraint("status IN ('requested', 'paid', 'failed')", name="status_known"),
        Index("ix_payouts_account_id", "account", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account: Mapped[str] = mapped_column(String(ACCOUNT_LENGTH), nullable=False)
    owner_kind: Mapped[str] = mapped_column(String(16), nullable=False)  # "shop" | "creator"
    owner_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    amount_fen: Mapped[int] = mapped_column(BigInteger, nullable=False)
    status: Mapped[str] = mapped_column(
        String(16), nullable=False, default=PayoutStatus.requested, index=True
    )
    bank_account: Mapped[str] = mapped_column(String(64), nullable=False)
    requested_by: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    completed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    failure_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
