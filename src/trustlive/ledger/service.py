"""The double-entry ledger: balanced postings between accounts, append-only, hash-chained.

Every money movement is one ``post()``: a transaction of two or more postings whose amounts sum to
zero. Money leaves an account with a negative amount and enters one with a positive amount, so a
payable's balance is what the platform owes its owner and ``escrow`` holds buyers' money until
settlement. The sum over all accounts is zero at all times (``external:*`` accounts mirror the
world outside: ``external:buyer_payments`` goes negative as buyers pay in).

Appends are serialised on the ``ledger_head`` row (``FOR UPDATE`` on PostgreSQL; SQLite takes its
write lock at ``BEGIN IMMEDIATE``), which also allocates transaction and posting ids without gaps.
Each transaction's hash covers the previous hash and a canonical, id-independent JSON of its
content, so ``verify()`` notices an edited, deleted, inserted or reordered row. Services never
commit: ``post()`` joins the caller's unit of work and rolls back with it. See docs/ledger.md.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from trustlive import events
from trustlive.accounts.service import Principal
from trustlive.catalog import service as catalog
from trustlive.db import utcnow
from trustlive.errors import (
    Conflict,
    FieldError,
    Forbidden,
    InvalidTransition,
    NotFound,
    ValidationFailed,
    validated,
)
from trustlive.ledger import repository as repo
from trustlive.ledger.models import (
    ACCOUNT_LENGTH,
    LedgerHead,
    LedgerPosting,
    LedgerTransaction,
    Payout,
    PayoutStatus,
)
from trustlive.ledger.schemas import (
    AccountBalance,
    PayoutIn,
    PayoutOut,
    PostingOut,
    StatementLine,
    TransactionOut,
    VerifyReport,
)
from trustlive.money import format_fen

# --- accounts ---------------------------------------------------------------------------------

ESCROW = "escrow"
PLATFORM_FEE_REVENUE = "platform:fee_revenue"
PLATFORM_COMMISSION_REVENUE = "platform:commission_revenue"
PAYOUTS_PENDING = "payouts:pending"
EXTERNAL_BUYER_PAYMENTS = "external:buyer_payments"
EXTERNAL_BUYER_REFUNDS = "external:buyer_refunds"
EXTERNAL_PAYOUTS = "external:payouts"
EXTERNAL_INSPECTION_FEES = "external:inspection_fees"  # paid to the accredited labs
FIXED_ACCOUNTS = frozenset(
    {
        ESCROW,
        PLATFORM_FEE_REVENUE,
        PLATFORM_COMMISSION_REVENUE,
        PAYOUTS_PENDING,
        EXTERNAL_BUYER_PAYMENTS,
        EXTERNAL_BUYER_REFUNDS,
        EXTERNAL_PAYOUTS,
        EXTERNAL_INSPECTION_FEES,
    }
)
_OWNED_RE = re.compile(r"^(shop|creator|consignor):([1-9][0-9]{0,17}):payable$")


@dataclass(frozen=True)
class Account:
    name: str
    owner_kind: str | None = None  # "shop" | "creator" | "consignor" for payables (wallets)
    owner_id: int | None = None

    @property
    def is_wallet(self) -> bool:
        return self.owner_kind is not None


def shop_payable(shop_id: int) -> str:
    """What the platform owes shop ``shop_id``: its wallet."""
    return _owned("shop", shop_id)


def creator_payable(user_id: int) -> str:
    """What the platform owes creator ``user_id`` (alliance commission): their wallet."""
    return _owned("creator", user_id)


def consignor_payable(user_id: int) -> str:
    """What the platform owes consignor ``user_id`` (consigned items' proceeds): their wallet."""
    return _owned("consignor", user_id)


def _owned(kind: str, owner_id: int) -> str:
    if isinstance(owner_id, bool) or not isinstance(owner_id, int) or owner_id < 1:
        raise ValidationFailed(
            f"{kind} id must be a positive integer", code="invalid_account", field="account"
        )
    return f"{kind}:{owner_id}:payable"


def parse_account(value: object, *, field: str = "account") -> Account:
    """The account named by ``value``; ValidationFailed (``invalid_account``) for anything else."""
    if isinstance(value, str) and len(value) <= ACCOUNT_LENGTH:
        if value in FIXED_ACCOUNTS:
            return Account(value)
        found = _OWNED_RE.match(value)
        if found:
            return Account(value, found.group(1), int(found.group(2)))
    raise ValidationFailed(
        f"{field}: {str(value)[:80]!r} is not a ledger account (escrow, shop:<id>:payable, "
        "creator:<id>:payable, consignor:<id>:payable, platform:fee_revenue, platform:commission_revenue, payouts:pending, "
        "external:buyer_payments, external:buyer_refunds, external:payouts, external:inspection_fees)",
        code="invalid_account",
        field=field,
    )


# --- postings for each flow (see docs/ledger.md) ----------------------------------------------

Postings = list[tuple[str, int]]


def transfer(source: str, target: str, amount_fen: int) -> Postings:
    """``amount_fen`` moves from ``source`` to ``target``."""
    return [(source, -amount_fen), (target, amount_fen)]


def capture_postings(amount_fen: int) -> Postings:
    """A buyer's payment arrives and is held in escrow."""
    return transfer(EXTERNAL_BUYER_PAYMENTS, ESCROW, amount_fen)


def refund_postings(amount_fen: int) -> Postings:
    """Escrowed money goes back to the buyer (full or partial refund)."""
    return transfer(ESCROW, EXTERNAL_BUYER_REFUNDS, amount_fen)


def inspection_fee_postings(payer: str, amount_fen: int) -> Postings:
    """The lab's fee for an inspection, paid by ``payer`` (the shop's payable or the platform's fee
    revenue, as configured) to the lab outside."""
    return transfer(payer, EXTERNAL_INSPECTION_FEES, amount_fen)


def settlement_postings(
    *,
    shop_id: int,
    escrow_fen: int,
    service_fee_fen: int,
    creator_id: int | None = None,
    creator_commission_fen: int = 0,
    platform_commission_fen: int = 0,
) -> Postings:
    """Escrow splits: technical service fee to the platform, commission to the creator and the
    platform's share of it, the rest to the shop. Zero legs are left out."""
    parts = (escrow_fen, service_fee_fen, creator_commission_fen, platform_commission_fen)
    if any(isinstance(x, bool) or not isinstance(x, int) or x < 0 for x in parts):
        raise ValidationFailed(
            "settlement amounts must be non-negative integers of fen", code="invalid_amount"
        )
    if creator_commission_fen and creator_id is None:
        raise ValidationFailed("a creator commission needs a creator_id", code="invalid_amount")
    shop_fen = escrow_fen - service_fee_fen - creator_commission_fen - platform_commission_fen
    if shop_fen < 0:
        raise ValidationFailed("fee and commissions exceed the escrowed amount", code="invalid_amount")
    legs: Postings = [
        (ESCROW, -escrow_fen),
        (PLATFORM_FEE_REVENUE, service_fee_fen),
        (PLATFORM_COMMISSION_REVENUE, platform_commission_fen),
        (shop_payable(shop_id), shop_fen),
    ]
    if creator_id is not None:
        legs.append((creator_payable(creator_id), creator_commission_fen))
    return compact(legs)


def compact(postings: Iterable[tuple[str, int]]) -> Postings:
    """Merge postings to the same account and drop the ones that come to zero."""
    totals: dict[str, int] = defaultdict(int)
    for account, amount in postings:
        totals[account] += amount
    return [(account, amount) for account, amount in totals.items() if amount != 0]


# --- hashing ----------------------------------------------------------------------------------

GENESIS_HASH = "0" * 64
KIND_RE = re.compile(r"^[a-z][a-z0-9_]{1,31}$")
# Large enough for any real movement, small enough that sums never approach BIGINT.
MAX_POSTING_FEN = 10**15


def _timestamp(value: dt.datetime) -> str:
    """Microsecond UTC text: what both databases store and give back unchanged."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical(
    kind: str, ref: str, key: str, memo: str, created_at: dt.datetime, postings: Sequence[tuple[str, int]]
) -> bytes:
    """The content a transaction's hash covers: no ids, postings sorted, JSON with sorted keys."""
    body = {
        "kind": kind,
        "ref": ref,
        "key": key,
        "memo": memo,
        "at": _timestamp(created_at),
        "postings": [[account, amount] for account, amount in sorted(postings)],
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def chain_hash(prev_hash: str, content: bytes) -> str:
    return hashlib.sha256(prev_hash.encode() + b"\n" + content).hexdigest()


# --- posting ----------------------------------------------------------------------------------


def _check_text(value: object, field: str, *, max_length: int, min_length: int = 1) -> str:
    if not isinstance(value, str) or not min_length <= len(value) <= max_length:
        raise ValidationFailed(
            f"{field}: must be text of {min_length} to {max_length} characters", field=field
        )
    if any(ord(c) < 32 for c in value):
        raise ValidationFailed(f"{field}: must not contain control characters", field=field)
    return value


def check_postings(postings: object) -> Postings:
    """Validated postings in canonical (sorted) order, or ValidationFailed naming the rule."""
    if not isinstance(postings, list | tuple):
        raise ValidationFailed("postings: must be a list of (account, amount_fen) pairs", field="postings")
    if len(postings) < 2:
        raise ValidationFailed(
            "postings: a transaction needs at least two postings", code="too_few_postings", field="postings"
        )
    legs: Postings = []
    errors: list[FieldError] = []
    for i, leg in enumerate(postings):
        field = f"postings[{i}]"
        if not isinstance(leg, list | tuple) or len(leg) != 2:
            raise ValidationFailed(f"{field}: must be an (account, amount_fen) pair", field=field)
        account, amount = leg
        parse_account(account, field=f"{field}.account")
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise ValidationFailed(
                f"{field}.amount_fen: must be an integer number of fen", code="invalid_amount", field=field
            )
        if amount == 0:
            raise ValidationFailed(f"{field}.amount_fen: must not be zero", code="zero_amount", field=field)
        if abs(amount) > MAX_POSTING_FEN:
            raise ValidationFailed(f"{field}.amount_fen: too large", code="invalid_amount", field=field)
        legs.append((account, amount))
    accounts = [a for a, _ in legs]
    if len(set(accounts)) != len(accounts):
        twice = sorted({a for a in accounts if accounts.count(a) > 1})
        errors.append(FieldError("postings", f"account(s) posted twice: {', '.join(twice)}"))
        raise ValidationFailed(
            "postings: each account may appear once per transaction (merge them with compact())",
            code="duplicate_account",
            fields=errors,
        )
    total = sum(amount for _, amount in legs)
    if total != 0:
        raise ValidationFailed(
            f"postings: amounts sum to {total} fen; a transaction must balance to zero",
            code="unbalanced",
            field="postings",
        )
    return sorted(legs)


async def _lock_chain(session: AsyncSession) -> LedgerHead:
    """Lock the end of the chain for the rest of the caller's transaction (creating it on first
    use). Every ledger write, and every read that a write depends on, happens after this."""
    head = await repo.lock_head(session)
    if head is None:
        # Create it first, then look: a concurrent first writer may have created it and committed
        # after our lock_head read (checking for transactions first raised a false alarm then).
        await repo.create_head(session, GENESIS_HASH, utcnow())
        head = await repo.lock_head(session)
        assert head is not None
        if head.last_transaction_id == 0 and await repo.last_transaction_id(session) is not None:
            raise Conflict(  # the caller's rollback takes the new head away again
                "the ledger head is missing although transactions exist; run `trustlive ledger verify`",
                code="ledger_head_missing",
            )
    return head


def _same(existing: LedgerTransaction, kind: str, ref: str, legs: Postings) -> bool:
    stored = sorted((p.account, p.amount_fen) for p in existing.postings)
    return existing.kind == kind and existing.ref == ref and stored == legs


async def post(
    session: AsyncSession,
    *,
    kind: str,
    ref: str,
    idempotency_key: str,
    postings: Sequence[tuple[str, int]],
    memo: str = "",
    at: dt.datetime | None = None,
) -> LedgerTransaction:
    """Append one balanced transaction, or return the one already posted with this key.

    The same key with the same kind, ref and postings returns the existing transaction (a retry);
    with anything else it is a Conflict ``idempotency_mismatch``. Never commits.
    """
    kind = _check_text(kind, "kind", max_length=32)
    if not KIND_RE.match(kind):
        raise ValidationFailed("kind: lower-case letters, digits and _ (e.g. capture)", field="kind")
    ref = _check_text(ref, "ref", max_length=100)
    idempotency_key = _check_text(idempotency_key, "idempotency_key", max_length=200)
    memo = _check_text(memo, "memo", max_length=500, min_length=0)
    legs = check_postings(postings)

    existing = await repo.transaction_by_key(session, idempotency_key)
    if existing is None:
        head = await _lock_chain(session)
        # Look again under the lock: a concurrent retry may have committed meanwhile.
        existing = await repo.transaction_by_key(session, idempotency_key)
    if existing is not None:
        if not _same(existing, kind, ref, legs):
            raise Conflict(
                f"idempotency_key: {idempotency_key!r} was already used for different postings",
                code="idempotency_mismatch",
                field="idempotency_key",
            )
        return existing

    created_at = at or utcnow()
    if created_at.tzinfo is None:
        raise ValidationFailed("at: must be an aware datetime", field="at")
    digest = chain_hash(head.last_hash, canonical(kind, ref, idempotency_key, memo, created_at, legs))
    tx_id = head.last_transaction_id + 1
    first_posting = head.last_posting_id + 1
    transaction = LedgerTransaction(
        id=tx_id,
        kind=kind,
        ref=ref,
        idempotency_key=idempotency_key,
        memo=memo,
        created_at=created_at,
        prev_hash=head.last_hash,
        hash=digest,
        postings=[
            LedgerPosting(id=first_posting + i, transaction_id=tx_id, account=account, amount_fen=amount)
            for i, (account, amount) in enumerate(legs)
        ],
    )
    session.add(transaction)
    head.last_transaction_id = tx_id
    head.last_posting_id = first_posting + len(legs) - 1
    head.last_hash = digest
    head.updated_at = created_at
    await session.flush()
    await repo.add_balance_deltas(session, dict(legs), utcnow())
    return transaction


# --- reads ------------------------------------------------------------------------------------


async def balance(session: AsyncSession, account: str) -> int:
    return await repo.balance(session, parse_account(account).name)


async def balances(
    session: AsyncSession, prefix: str | None = None, *, offset: int = 0, limit: int = 10_000
) -> list[AccountBalance]:
    """Balances of every account that has postings, by name (``prefix`` e.g. "shop:")."""
    rows = await repo.balances(session, prefix=prefix or None, offset=offset, limit=limit)
    return [AccountBalance(b.account, b.balance_fen) for b in rows]


async def total_balance(session: AsyncSession) -> int:
    """The sum over every account: zero, always (``verify`` says so when it is not)."""
    return await repo.total_balance(session)


async def statement(
    session: AsyncSession, account: str, *, before_id: int | None = None, limit: int = 50
) -> list[StatementLine]:
    """The account's postings, newest first, each with its transaction and the balance after it.
    Page with ``before_id`` = the last line's ``posting_id``."""
    name = parse_account(account).name
    rows = await repo.statement(session, name, before_id=before_id, limit=limit)
    if not rows:
        return []
    running = await repo.sum_up_to(session, name, rows[0][0].id)
    lines = []
    for posting, tx in rows:
        lines.append(
            StatementLine(
                posting.id, tx.id, tx.kind, tx.ref, tx.memo, posting.amount_fen, running, tx.created_at
            )
        )
        running -= posting.amount_fen
    return lines


async def transaction_for(session: AsyncSession, idempotency_key: str) -> LedgerTransaction | None:
    """The transaction posted with this key (postings loaded), if any."""
    return await repo.transaction_by_key(session, idempotency_key)


def transaction_out(tx: LedgerTransaction) -> TransactionOut:
    return TransactionOut(
        tx.id,
        tx.kind,
        tx.ref,
        tx.idempotency_key,
        tx.memo,
        tx.created_at,
        tx.hash,
        [PostingOut(p.account, p.amount_fen) for p in tx.postings],
    )


# --- verification -----------------------------------------------------------------------------


async def verify(session: AsyncSession, *, batch: int = 1000, max_problems: int = 50) -> VerifyReport:
    """Recompute the chain and check every rule: each transaction balances, ids run without gaps,
    hashes match content and link to the previous one, the head names the last transaction, and
    ``ledger_balances`` equals the sum of postings per account, all of which sum to zero."""
    problems: list[str] = []
    first_bad: int | None = None
    if session.bind.dialect.name == "postgresql":
        if not session.in_transaction():
            # One snapshot for the whole check, without blocking writers. (SQLite's BEGIN
            # IMMEDIATE already gives one, by holding the write lock.)
            await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        else:
            # Too late for a snapshot: hold appends off instead (they all lock the head first), so
            # postings and balances cannot change between the queries below.
            await repo.share_head(session)

    def problem(text: str, tx_id: int | None = None) -> None:
        nonlocal first_bad
        if tx_id is not None:
            first_bad = tx_id if first_bad is None else min(first_bad, tx_id)
        if len(problems) < max_problems:
            problems.append(text)

    head = await repo.get_head(session)
    head_last = head.last_transaction_id if head is not None else 0
    first_beyond: int | None = None  # the first transaction past the one the head names
    prev_hash, expected_tx, expected_posting = GENESIS_HASH, 1, 1
    tx_count = posting_count = 0
    last_id = 0
    while txs := await repo.transactions_after(session, last_id, batch):
        postings = await repo.postings_between(session, txs[0].id, txs[-1].id)
        by_tx: dict[int, list[Any]] = defaultdict(list)
        previous_tx = 0
        for p in postings:
            if p.id != expected_posting:
                problem(
                    f"transaction {p.transaction_id}: posting id {p.id} where {expected_posting} was "
                    "expected (a posting was deleted, inserted or renumbered)",
                    p.transaction_id,
                )
                expected_posting = p.id
            if p.transaction_id < previous_tx:
                problem(
                    f"transaction {p.transaction_id}: posting {p.id} comes after postings of transaction "
                    f"{previous_tx} (rows were reordered)",
                    p.transaction_id,
                )
            previous_tx = max(previous_tx, p.transaction_id)
            expected_posting += 1
            by_tx[p.transaction_id].append(p)
        posting_count += len(postings)
        for tx in txs:
            reasons = []
            if tx.id != expected_tx:
                reasons.append(
                    f"id {tx.id} where {expected_tx} was expected (a transaction was deleted, inserted "
                    "or renumbered)"
                )
            legs = [(p.account, p.amount_fen) for p in by_tx.get(tx.id, [])]
            reasons.extend(_posting_problems(legs))
            content = canonical(tx.kind, tx.ref, tx.idempotency_key, tx.memo, tx.created_at, legs)
            if chain_hash(tx.prev_hash, content) != tx.hash:
                reasons.append("its hash does not match its content (a column was edited)")
            if tx.prev_hash != prev_hash:
                reasons.append(
                    f"prev_hash does not match the hash of transaction {expected_tx - 1 or 'genesis'} "
                    "before it (the chain is broken)"
                    if tx.id == expected_tx
                    else "prev_hash does not link to the transaction before it (the chain is broken)"
                )
            if reasons:
                problem(f"transaction {tx.id}: " + "; ".join(reasons), tx.id)
            if first_beyond is None and tx.id > head_last:
                first_beyond = tx.id
            prev_hash, expected_tx = tx.hash, tx.id + 1
        tx_count += len(txs)
        last_id = txs[-1].id

    for orphan in await repo.orphan_postings(session):
        problem(
            f"posting {orphan.id} belongs to transaction {orphan.transaction_id}, which does not exist",
            orphan.transaction_id,
        )
        posting_count += 1

    if tx_count == 0:
        if head is not None and (head.last_transaction_id != 0 or head.last_hash != GENESIS_HASH):
            problem(
                f"transaction 1: missing; the head names transaction {head.last_transaction_id} as the last, "
                "but there are no transactions (they were deleted)",
                1,
            )
    elif head is None:
        problem("the ledger head row is missing (it names the end of the chain; it was deleted)")
    else:
        where = f"transaction {head.last_transaction_id} (hash {head.last_hash[:12]}…)"
        if last_id < head.last_transaction_id:
            problem(
                f"transaction {last_id + 1}: missing; the head names {where} as the last, but the chain "
                f"ends at {last_id} (transactions were deleted from the end)",
                last_id + 1,
            )
        elif first_beyond is not None:
            problem(
                f"transaction {first_beyond}: not part of the chain the head names, which ends at {where} "
                "(transactions were added behind the ledger's back)",
                first_beyond,
            )
        elif head.last_hash != prev_hash:
            problem(
                f"transaction {last_id}: its hash is not the one the head recorded for it "
                f"({head.last_hash[:12]}…): the end of the chain was rewritten",
                last_id,
            )
        if head.last_posting_id != expected_posting - 1:
            problem(
                f"the head names posting {head.last_posting_id} as the last, but postings end at "
                f"{expected_posting - 1}"
            )

    sums = await repo.posting_sums(session)
    stored = await repo.all_balances(session)
    for account in sorted(set(sums) | set(stored)):
        if account not in stored:
            problem(f"account {account}: no balance row, but its postings sum to {sums[account]} fen")
        elif account not in sums:
            problem(f"account {account}: a balance row of {stored[account]} fen, but no postings")
        elif sums[account] != stored[account]:
            problem(
                f"account {account}: balance says {stored[account]} fen, but its postings sum to "
                f"{sums[account]} fen"
            )
    if sum(stored.values()) != 0:
        problem(f"the balances of all accounts sum to {sum(stored.values())} fen, not 0")
    if sum(sums.values()) != 0:
        problem(f"all postings sum to {sum(sums.values())} fen, not 0")

    return VerifyReport(
        ok=not problems,
        transactions_checked=tx_count,
        postings_checked=posting_count,
        problems=problems,
        head_hash=head.last_hash if head is not None else None,
        first_bad_transaction=first_bad,
    )


def _posting_problems(legs: list[tuple[str, int]]) -> list[str]:
    found = []
    if len(legs) < 2:
        found.append(f"it has {len(legs)} posting(s), at least 2 are needed")
    for account, amount in legs:
        try:
            parse_account(account)
        except ValidationFailed:
            found.append(f"posting to an invalid account {account!r}")
        if amount == 0:
            found.append(f"a zero posting to {account}")
    if len({a for a, _ in legs}) != len(legs):
        found.append("an account is posted twice")
    total = sum(amount for _, amount in legs)
    if total != 0:
        found.append(f"its postings sum to {total} fen, not 0")
    if legs != sorted(legs):
        found.append("its postings are out of order (rows were swapped)")
    return found


# --- wallets ----------------------------------------------------------------------------------


@dataclass
class Wallet:
    """A shop's or creator's payable account as its owner sees it. ``lines`` holds up to
    ``limit + 1`` statement lines, newest first: the extra one says there is another page."""

    account: str
    owner_kind: str
    owner_id: int
    balance_fen: int
    pending_payouts_fen: int
    paid_out_fen: int
    lines: list[StatementLine]
    payouts: list[Payout]


async def wallet(
    session: AsyncSession, account: str, *, before_id: int | None = None, limit: int = 20, payouts: int = 20
) -> Wallet:
    """A wallet's figures, statement page and recent payouts. No permission check: callers check."""
    acct = parse_account(account)
    if not acct.is_wallet:
        raise ValidationFailed(
            "account: only shop, creator and consignor payables are wallets", code="not_a_wallet"
        )
    totals = await repo.payout_totals(session, acct.name)
    return Wallet(
        account=acct.name,
        owner_kind=acct.owner_kind or "",
        owner_id=acct.owner_id or 0,
        balance_fen=await repo.balance(session, acct.name),
        pending_payouts_fen=totals.get(PayoutStatus.requested, 0),
        paid_out_fen=totals.get(PayoutStatus.paid, 0),
        lines=await statement(session, acct.name, before_id=before_id, limit=limit + 1),
        payouts=await repo.payouts_of(session, acct.name, payouts),
    )


async def can_view_shop_wallet(session: AsyncSession, actor: Principal, shop_id: int) -> bool:
    if actor.is_ops:
        return True
    return any(s.id == shop_id for s in await catalog.shops_of(session, actor))


async def shop_wallet(
    session: AsyncSession, actor: Principal, shop_id: int, *, before_id: int | None = None, limit: int = 20
) -> Wallet:
    """Shop ``shop_id``'s wallet, for its owner, its staff and ops."""
    await catalog.get_shop(session, shop_id)  # 404 for a shop that does not exist
    if not await can_view_shop_wallet(session, actor, shop_id):
        raise Forbidden("this is not your shop", code="not_your_shop")
    return await wallet(session, shop_payable(shop_id), before_id=before_id, limit=limit)


async def creator_wallet(
    session: AsyncSession,
    actor: Principal,
    user_id: int | None = None,
    *,
    before_id: int | None = None,
    limit: int = 20,
) -> Wallet:
    """A creator's wallet (the caller's own unless ``user_id`` is given; others' for ops only)."""
    user_id = actor.id if user_id is None else user_id
    if user_id != actor.id and not actor.is_ops:
        raise Forbidden("this is not your wallet", code="not_your_wallet")
    return await wallet(session, creator_payable(user_id), before_id=before_id, limit=limit)


async def consignor_wallet(
    session: AsyncSession,
    actor: Principal,
    user_id: int | None = None,
    *,
    before_id: int | None = None,
    limit: int = 20,
) -> Wallet:
    """A consignor's wallet: proceeds of their consigned items (the caller's own; others' for ops)."""
    user_id = actor.id if user_id is None else user_id
    if user_id != actor.id and not actor.is_ops:
        raise Forbidden("this is not your wallet", code="not_your_wallet")
    return await wallet(session, consignor_payable(user_id), before_id=before_id, limit=limit)


def mask_bank_account(text: str) -> str:
    tail = text.replace(" ", "")[-4:]
    return f"•••• {tail}"


def payout_out(p: Payout) -> PayoutOut:
    return PayoutOut(
        p.id,
        p.account,
        p.amount_fen,
        p.status,
        mask_bank_account(p.bank_account),
        p.created_at,
        p.completed_at,
        p.failure_reason,
    )


# --- payouts ----------------------------------------------------------------------------------


async def _authorize_payout(session: AsyncSession, actor: Principal, acct: Account) -> None:
    if acct.owner_kind == "shop":
        assert acct.owner_id is not None
        shop = await catalog.get_shop(session, acct.owner_id)
        if shop.owner_id != actor.id:
            raise Forbidden("only the shop's owner can pay out its wallet", code="not_your_shop")
    elif acct.owner_kind in ("creator", "consignor"):
        if acct.owner_id != actor.id:
            raise Forbidden("only the wallet's owner can pay it out", code="not_your_wallet")
    else:
        raise ValidationFailed(
            "account: only shop, creator and consignor wallets can be paid out",
            code="not_a_wallet",
            field="account",
        )


async def request_payout(
    session: AsyncSession, actor: Principal, account: str, amount_fen: int, bank_account: str
) -> Payout:
    """Move ``amount_fen`` from the wallet to ``payouts:pending`` and ask the bank to pay it.

    Only the shop's owner pays out a shop wallet, only the creator their own. The amount must be
    positive and at most the balance (409 ``insufficient_funds``); the check runs under the chain
    lock, so two requests at once cannot both spend the same money.
    """
    data = validated(PayoutIn(amount_fen=amount_fen, bank_account=bank_account))
    bank = " ".join(data.bank_account.split())
    if len(bank) < 4:
        raise ValidationFailed("bank_account: at least 4 characters", field="bank_account")
    acct = parse_account(account)
    await _authorize_payout(session, actor, acct)
    await _lock_chain(session)
    available = await repo.balance(session, acct.name)
    if data.amount_fen > available:
        raise Conflict(
            f"amount_fen: {format_fen(data.amount_fen)} is more than the {format_fen(available)} "
            "available in this wallet",
            code="insufficient_funds",
            field="amount_fen",
        )
    payout = Payout(
        account=acct.name,
        owner_kind=acct.owner_kind,
        owner_id=acct.owner_id,
        amount_fen=data.amount_fen,
        status=PayoutStatus.requested,
        bank_account=bank,
        requested_by=actor.id,
        created_at=utcnow(),
    )
    session.add(payout)
    await session.flush()
    await post(
        session,
        kind="payout_request",
        ref=f"payout:{payout.id}",
        idempotency_key=f"payout:{payout.id}:request",
        postings=transfer(acct.name, PAYOUTS_PENDING, data.amount_fen),
        memo=f"payout to {mask_bank_account(bank)}",
    )
    events.record(
        session,
        "ledger.payout_requested",
        {"payout_id": payout.id, "account": acct.name, "amount_fen": data.amount_fen},
    )
    return payout


async def get_payout(session: AsyncSession, payout_id: int) -> Payout:
    payout = await repo.get_payout(session, payout_id)
    if payout is None:
        raise NotFound(f"payout {payout_id} not found", code="payout_not_found")
    return payout


async def due_payouts(
    session: AsyncSession, now: dt.datetime, *, after_id: int = 0, limit: int = 100
) -> list[int]:
    """Ids of payouts requested at or before ``now`` and still waiting for the bank, ascending."""
    return list(await repo.due_payout_ids(session, now, after_id=after_id, limit=limit))


async def complete_payout(
    session: AsyncSession,
    payout_id: int,
    *,
    paid: bool,
    reason: str | None = None,
    now: dt.datetime | None = None,
) -> bool:
    """The bank's answer: paid (``payouts:pending`` → ``external:payouts``) or failed (the money
    goes back to the wallet). True if the payout changed now; False if it already had this outcome
    (a repeated answer). A different outcome for a finished payout is an InvalidTransition."""
    payout = await repo.get_payout(session, payout_id, lock=True)
    if payout is None:
        raise NotFound(f"payout {payout_id} not found", code="payout_not_found")
    outcome = PayoutStatus.paid if paid else PayoutStatus.failed
    if payout.status != PayoutStatus.requested:
        if payout.status == outcome:
            return False
        raise InvalidTransition(f"payout {payout_id} is already {payout.status}", code="invalid_transition")
    now = now or utcnow()
    reason = (reason or "the bank refused the payout")[:500] if not paid else None
    await post(
        session,
        kind=f"payout_{outcome}",
        ref=f"payout:{payout.id}",
        idempotency_key=f"payout:{payout.id}:{outcome}",
        postings=transfer(PAYOUTS_PENDING, EXTERNAL_PAYOUTS if paid else payout.account, payout.amount_fen),
        memo=reason or "",
        at=now,
    )
    payout.status = outcome
    payout.completed_at = now
    payout.failure_reason = reason
    await session.flush()
    events.record(
        session,
        f"ledger.payout_{outcome}",
        {"payout_id": payout.id, "account": payout.account, "amount_fen": payout.amount_fen},
    )
    return True
