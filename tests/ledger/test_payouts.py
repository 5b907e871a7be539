"""Payouts through the service and the sandbox bank: who may pay out, how much, and what a failed
bank transfer does. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt

from tests.ledger.util import make_people, sale, verify, with_db
from trustlive.db import transaction
from trustlive.errors import DomainError
from trustlive.ledger import service as ledger
from trustlive.ledger.tasks import process_payouts


async def _try(sm, actor, account, amount, bank="ICBC 6222 0000 1234"):  # type: ignore[no-untyped-def]
    try:
        async with transaction(sm) as s:
            payout = await ledger.request_payout(s, actor, account, amount, bank)
            return payout.id
    except DomainError as err:
        return (err.status_code, err.code)


def test_payout_rules(db_url: str) -> None:
    async def scenario(sm):  # type: ignore[no-untyped-def]
        p = await make_people(sm)
        shop = ledger.shop_payable(p.shop_id)
        creator = ledger.creator_payable(p.creator.id)
        await sale(sm, 1, 10_000, shop_id=p.shop_id, creator_id=p.creator.id)  # shop 8500, creator 1000
        results = {
            "too much": await _try(sm, p.merchant, shop, 8_501),
            "zero": await _try(sm, p.merchant, shop, 0),
            "negative": await _try(sm, p.merchant, shop, -5),
            "not an int": await _try(sm, p.merchant, shop, "100"),
            "short bank account": await _try(sm, p.merchant, shop, 100, "  12 "),
            "someone else's shop": await _try(sm, p.other_merchant, shop, 100),
            "staff": await _try(sm, p.staff, shop, 100),
            "ops": await _try(sm, p.ops, shop, 100),
            "no such shop": await _try(sm, p.merchant, ledger.shop_payable(999_999), 100),
            "escrow": await _try(sm, p.ops, ledger.ESCROW, 100),
            "bad account": await _try(sm, p.merchant, "shop:abc:payable", 100),
            "another creator": await _try(sm, p.other_creator, creator, 100),
            "creator too much": await _try(sm, p.creator, creator, 1_001),
            "empty wallet": await _try(sm, p.other_merchant, ledger.shop_payable(p.other_shop_id), 1),
        }
        first = await _try(sm, p.merchant, shop, 8_000)
        rest = await _try(sm, p.merchant, shop, 600)  # 500 left
        creator_all = await _try(sm, p.creator, creator, 1_000)
        async with transaction(sm) as s:
            figures = {
                "shop": await ledger.balance(s, shop),
                "creator": await ledger.balance(s, creator),
                "pending": await ledger.balance(s, ledger.PAYOUTS_PENDING),
            }
            payout = await ledger.get_payout(s, first)
        return results, first, rest, creator_all, figures, payout, await verify(sm)

    results, first, rest, creator_all, figures, payout, report = with_db(db_url, scenario)
    assert results == {
        "too much": (409, "insufficient_funds"),
        "zero": (422, "validation_error"),
        "negative": (422, "validation_error"),
        "not an int": (422, "validation_error"),
        "short bank account": (422, "validation_error"),
        "someone else's shop": (403, "not_your_shop"),
        "staff": (403, "not_your_shop"),
        "ops": (403, "not_your_shop"),
        "no such shop": (404, "shop_not_found"),
        "escrow": (422, "not_a_wallet"),
        "bad account": (422, "invalid_account"),
        "another creator": (403, "not_your_wallet"),
        "creator too much": (409, "insufficient_funds"),
        "empty wallet": (409, "insufficient_funds"),
    }
    assert isinstance(first, int) and isinstance(creator_all, int)
    assert rest == (409, "insufficient_funds")
    assert figures == {"shop": 500, "creator": 0, "pending": 9_000}
    assert payout.status == "requested" and payout.owner_kind == "shop" and payout.amount_fen == 8_000
    assert ledger.payout_out(payout).bank_account == "•••• 1234"
    assert report.ok


def test_sandbox_bank_pays_and_fails(db_url: str) -> None:
    async def scenario(sm):  # type: ignore[no-untyped-def]
        p = await make_people(sm)
        shop = ledger.shop_payable(p.shop_id)
        await sale(sm, 1, 10_000, shop_id=p.shop_id)  # shop 9500
        paid = await _try(sm, p.merchant, shop, 3_000)
        failed = await _try(sm, p.merchant, shop, 2_000, "FAIL-0001")
        later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)
        done = await process_payouts(sm, now=later)
        again = await process_payouts(sm, now=later)  # nothing twice
        # A payout requested after "now" waits for the next pass.
        waiting = await _try(sm, p.merchant, shop, 500)
        early = await process_payouts(sm, now=later - dt.timedelta(minutes=1))
        async with transaction(sm) as s:
            wallet = await ledger.shop_wallet(s, p.merchant, p.shop_id)
            staff_view = await ledger.shop_wallet(s, p.staff, p.shop_id)
            figures = {
                "shop": await ledger.balance(s, shop),
                "pending": await ledger.balance(s, ledger.PAYOUTS_PENDING),
                "external": await ledger.balance(s, ledger.EXTERNAL_PAYOUTS),
            }
            statuses = {i: (await ledger.get_payout(s, i)).status for i in (paid, failed, waiting)}
            failure = (await ledger.get_payout(s, failed)).failure_reason
            # The bank's answer again, or the opposite answer, changes nothing.
            repeat = await ledger.complete_payout(s, paid, paid=True)
            try:
                await ledger.complete_payout(s, paid, paid=False)
                flip = "accepted"
            except DomainError as err:
                flip = err.code
        return (
            done,
            again,
            early,
            wallet,
            staff_view,
            figures,
            statuses,
            failure,
            repeat,
            flip,
            await verify(sm),
        )

    done, again, early, wallet, staff_view, figures, statuses, failure, repeat, flip, report = with_db(
        db_url, scenario
    )
    assert (done, again, early) == (2, 0, 0)
    assert list(statuses.values()) == ["paid", "failed", "requested"]
    assert "FAIL" in (failure or "")
    # 9500 - 3000 paid - 2000 failed (and returned) - 500 waiting = 6000
    assert figures == {"shop": 6_000, "pending": 500, "external": 3_000}
    assert (wallet.balance_fen, wallet.pending_payouts_fen, wallet.paid_out_fen) == (6_000, 500, 3_000)
    assert [line.kind for line in wallet.lines] == [
        "payout_request",
        "payout_failed",
        "payout_request",
        "payout_request",
        "settlement",
    ]
    assert [line.balance_after_fen for line in wallet.lines] == [6_000, 6_500, 4_500, 6_500, 9_500]
    assert [x.status for x in wallet.payouts] == ["requested", "failed", "paid"]
    assert staff_view.balance_fen == 6_000
    assert repeat is False and flip == "invalid_transition"
    assert report.ok


def test_fail_if_and_wallet_access(db_url: str) -> None:
    async def scenario(sm):  # type: ignore[no-untyped-def]
        p = await make_people(sm)
        creator = ledger.creator_payable(p.creator.id)
        await sale(sm, 1, 10_000, shop_id=p.shop_id, creator_id=p.creator.id)  # creator 1000
        a = await _try(sm, p.creator, creator, 400)
        b = await _try(sm, p.creator, creator, 600)
        done = await process_payouts(sm, fail_if=lambda payout: "bank closed" if payout.id == b else False)
        denied = []
        async with transaction(sm) as s:
            mine = await ledger.creator_wallet(s, p.creator)
            as_ops = await ledger.creator_wallet(s, p.ops, p.creator.id)
            for call in (
                ledger.creator_wallet(s, p.other_creator, p.creator.id),
                ledger.shop_wallet(s, p.other_merchant, p.shop_id),
                ledger.shop_wallet(s, p.creator, p.shop_id),
                ledger.shop_wallet(s, p.merchant, 999_999),
            ):
                try:
                    await call
                    denied.append("allowed")
                except DomainError as err:
                    denied.append(err.code)
            ops_view = await ledger.shop_wallet(s, p.ops, p.shop_id)
        return a, b, done, mine, as_ops, denied, ops_view

    a, b, done, mine, as_ops, denied, ops_view = with_db(db_url, scenario)
    assert done == 2
    assert mine.balance_fen == as_ops.balance_fen == 600  # the failed 600 came back
    assert {x.id: (x.status, x.failure_reason) for x in mine.payouts} == {
        a: ("paid", None),
        b: ("failed", "bank closed"),
    }
    assert denied == ["not_your_wallet", "not_your_shop", "not_your_shop", "shop_not_found"]
    assert ops_view.balance_fen == 8_500


def test_concurrent_payouts_never_overdraw(db_url: str) -> None:
    """Ten requests of 3000 at once against 8500: exactly two succeed, on either database."""

    async def scenario(sm):  # type: ignore[no-untyped-def]
        p = await make_people(sm)
        shop = ledger.shop_payable(p.shop_id)
        await sale(sm, 1, 10_000, shop_id=p.shop_id, creator_id=p.creator.id)  # shop 8500
        results = await asyncio.gather(*(_try(sm, p.merchant, shop, 3_000) for _ in range(10)))
        async with transaction(sm) as s:
            left = await ledger.balance(s, shop)
        return results, left, await verify(sm)

    results, left, report = with_db(db_url, scenario)
    assert sum(isinstance(r, int) for r in results) == 2
    assert [r for r in results if not isinstance(r, int)] == [(409, "insufficient_funds")] * 8
    assert left == 2_500 and report.ok
