"""JSON shapes of the ledger and wallet API (also what the service hands to pages and the CLI)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec

# A payout is at most 10 million yuan at once (the platform's money bound, money.MAX_PRICE_FEN).
PayoutFen = Annotated[int, msgspec.Meta(ge=1, le=1_000_000_000)]
BankAccount = Annotated[str, msgspec.Meta(min_length=4, max_length=64)]


class PayoutIn(msgspec.Struct, forbid_unknown_fields=True):
    amount_fen: PayoutFen
    bank_account: BankAccount


class PostingOut(msgspec.Struct):
    account: str
    amount_fen: int


class TransactionOut(msgspec.Struct):
    id: int
    kind: str
    ref: str
    idempotency_key: str
    memo: str
    created_at: dt.datetime
    hash: str
    postings: list[PostingOut]


class StatementLine(msgspec.Struct):
    """One posting of an account, with the transaction it belongs to."""

    posting_id: int
    transaction_id: int
    kind: str
    ref: str
    memo: str
    amount_fen: int
    balance_after_fen: int
    created_at: dt.datetime


class PayoutOut(msgspec.Struct):
    id: int
    account: str
    amount_fen: int
    status: str
    bank_account: str  # masked: only the last four characters are shown
    created_at: dt.datetime
    completed_at: dt.datetime | None
    failure_reason: str | None


class WalletOut(msgspec.Struct):
    account: str
    owner_kind: str  # "shop" | "creator"
    owner_id: int
    balance_fen: int  # available to pay out
    pending_payouts_fen: int  # requested, the bank has not answered yet
    paid_out_fen: int  # paid to the bank, all time
    lines: list[StatementLine]
    next_cursor: str | None
    payouts: list[PayoutOut]


class AccountBalance(msgspec.Struct):
    account: str
    balance_fen: int


class AccountPage(msgspec.Struct):
    items: list[AccountBalance]
    next_cursor: str | None


class StatementPage(msgspec.Struct):
    account: str
    balance_fen: int
    items: list[StatementLine]
    next_cursor: str | None


class VerifyReport(msgspec.Struct):
    ok: bool
    transactions_checked: int
    postings_checked: int
    problems: list[str]
    first_bad_transaction: int | None = None  # the lowest transaction id a problem names
    head_hash: str | None = None  # the chain's last hash: record it elsewhere to anchor the ledger
