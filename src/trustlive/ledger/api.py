"""JSON routes for wallets, payouts and the ledger (ops): thin wrappers over ledger.service."""

from __future__ import annotations

from typing import Annotated

from litestar import get, post
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from trustlive.accounts.service import Principal
from trustlive.ledger import service
from trustlive.ledger.schemas import (
    AccountPage,
    PayoutIn,
    PayoutOut,
    StatementPage,
    VerifyReport,
    WalletOut,
)
from trustlive.web.pagination import DEFAULT_LIMIT, MAX_LIMIT, decode_cursor, encode_cursor
from trustlive.web.policy import allow, signed_in

Limit = Annotated[int, Parameter(ge=1, le=MAX_LIMIT)]
Cursor = Annotated[str | None, Parameter(max_length=200)]
AccountName = Annotated[str, Parameter(min_length=1, max_length=64)]
Prefix = Annotated[str | None, Parameter(max_length=64)]


def before_id(cursor: str | None) -> int | None:
    decoded = decode_cursor(cursor, "before")
    return decoded["before"] if decoded else None


def wallet_out(wallet: service.Wallet, limit: int) -> WalletOut:
    lines = wallet.lines[:limit]
    more = len(wallet.lines) > limit
    return WalletOut(
        account=wallet.account,
        owner_kind=wallet.owner_kind,
        owner_id=wallet.owner_id,
        balance_fen=wallet.balance_fen,
        pending_payouts_fen=wallet.pending_payouts_fen,
        paid_out_fen=wallet.paid_out_fen,
        lines=lines,
        next_cursor=encode_cursor({"before": lines[-1].posting_id}) if more else None,
        payouts=[service.payout_out(p) for p in wallet.payouts],
    )


# --- wallets ----------------------------------------------------------------------------------


@get("/wallets/shops/{shop_id:int}", tags=["wallets"], **signed_in())
async def shop_wallet(
    shop_id: int, me: Principal, db: AsyncSession, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> WalletOut:
    """A shop's wallet (its payable account): balance, statement lines newest first, payouts.
    For the shop's owner and staff, and ops."""
    wallet = await service.shop_wallet(db, me, shop_id, before_id=before_id(cursor), limit=limit)
    return wallet_out(wallet, limit)


@get("/wallets/creators/me", tags=["wallets"], **allow("creator"))
async def my_creator_wallet(
    me: Principal, db: AsyncSession, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> WalletOut:
    """The calling creator's wallet: alliance commissions settled to them, and their payouts."""
    wallet = await service.creator_wallet(db, me, before_id=before_id(cursor), limit=limit)
    return wallet_out(wallet, limit)


@post("/wallets/shops/{shop_id:int}/payouts", status_code=201, tags=["wallets"], **signed_in())
async def request_shop_payout(shop_id: int, data: PayoutIn, me: Principal, db: AsyncSession) -> PayoutOut:
    """Pay out of the shop's wallet to a bank account (the shop's owner only). 409
    `insufficient_funds` when the wallet holds less. The bank answers asynchronously."""
    payout = await service.request_payout(
        db, me, service.shop_payable(shop_id), data.amount_fen, data.bank_account
    )
    return service.payout_out(payout)


@post("/wallets/creators/me/payouts", status_code=201, tags=["wallets"], **allow("creator"))
async def request_creator_payout(data: PayoutIn, me: Principal, db: AsyncSession) -> PayoutOut:
    """Pay out of the calling creator's wallet to a bank account."""
    payout = await service.request_payout(
        db, me, service.creator_payable(me.id), data.amount_fen, data.bank_account
    )
    return service.payout_out(payout)


@get("/wallets/consignors/me", tags=["wallets"], **signed_in())
async def my_consignor_wallet(
    me: Principal, db: AsyncSession, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> WalletOut:
    """The caller's consignor wallet: proceeds of their consigned items (docs/consignment.md)."""
    wallet = await service.consignor_wallet(db, me, before_id=before_id(cursor), limit=limit)
    return wallet_out(wallet, limit)


@post("/wallets/consignors/me/payouts", status_code=201, tags=["wallets"], **signed_in())
async def request_consignor_payout(data: PayoutIn, me: Principal, db: AsyncSession) -> PayoutOut:
    """Pay out of the caller's consignor wallet to a bank account."""
    payout = await service.request_payout(
        db, me, service.consignor_payable(me.id), data.amount_fen, data.bank_account
    )
    return service.payout_out(payout)


# --- the ledger, for ops ----------------------------------------------------------------------


@get("/ledger/accounts", tags=["ledger"], **allow("ops"))
async def list_accounts(
    db: AsyncSession, prefix: Prefix = None, limit: Limit = MAX_LIMIT, cursor: Cursor = None
) -> AccountPage:
    """Every account with postings and its balance, by name; `prefix` filters (e.g. `shop:`)."""
    decoded = decode_cursor(cursor, "offset")
    start = decoded["offset"] if decoded else 0
    rows = await service.balances(db, prefix, offset=start, limit=limit + 1)
    more = len(rows) > limit
    return AccountPage(rows[:limit], encode_cursor({"offset": start + limit}) if more else None)


@get("/ledger/statement", tags=["ledger"], **allow("ops"))
async def account_statement(
    account: AccountName, db: AsyncSession, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> StatementPage:
    """Any account's postings, newest first, with the balance after each."""
    lines = await service.statement(db, account, before_id=before_id(cursor), limit=limit + 1)
    more = len(lines) > limit
    lines = lines[:limit]
    return StatementPage(
        account=account,
        balance_fen=await service.balance(db, account),
        items=lines,
        next_cursor=encode_cursor({"before": lines[-1].posting_id}) if more else None,
    )


@get("/ledger/verify", tags=["ledger"], **allow("ops"))
async def verify(db: AsyncSession) -> VerifyReport:
    """Recompute the hash chain and check every balance (as `trustlive ledger verify` does)."""
    return await service.verify(db)


routes = [
    shop_wallet,
    my_creator_wallet,
    request_shop_payout,
    request_creator_payout,
    my_consignor_wallet,
    request_consignor_payout,
    list_accounts,
    account_statement,
    verify,
]
