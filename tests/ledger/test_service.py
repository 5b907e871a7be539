"""Posting rules, idempotency, balances and statements, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.ledger.util import post, verify, with_db
from trustlive.db import transaction
from trustlive.errors import Conflict, DomainError, ValidationFailed
from trustlive.ledger import service as ledger

SHOP = ledger.shop_payable(3)
CREATOR = ledger.creator_payable(7)


def test_account_names() -> None:
    assert ledger.shop_payable(3) == "shop:3:payable"
    assert ledger.creator_payable(7) == "creator:7:payable"
    assert ledger.parse_account("shop:3:payable") == ledger.Account("shop:3:payable", "shop", 3)
    assert ledger.parse_account("creator:7:payable").owner_id == 7
    for fixed in ledger.FIXED_ACCOUNTS:
        assert ledger.parse_account(fixed) == ledger.Account(fixed)
    bad = [
        "",
        "Escrow",
        "escrow ",
        "shop:0:payable",
        "shop:03:payable",
        "shop:-1:payable",
        "shop:x:payable",
        "shop:3",
        "shop:3:receivable",
        "platform:anything",
        "external:mars",
        "creator:1:payable:x",
        "shop:" + "9" * 40 + ":payable",
        None,
        42,
    ]
    for name in bad:
        with pytest.raises(ValidationFailed) as err:
            ledger.parse_account(name)
        assert err.value.code == "invalid_account"
    for nonsense in (0, -1, True, "3"):
        with pytest.raises(ValidationFailed):
            ledger.shop_payable(nonsense)  # type: ignore[arg-type]


def test_flow_postings_balance() -> None:
    assert ledger.capture_postings(100) == [("external:buyer_payments", -100), ("escrow", 100)]
    assert ledger.refund_postings(30) == [("escrow", -30), ("external:buyer_refunds", 30)]
    legs = ledger.settlement_postings(
        shop_id=3, escrow_fen=10_000, service_fee_fen=500, creator_id=7, creator_commission_fen=1_000
    )
    assert dict(legs) == {
        "escrow": -10_000,
        "platform:fee_revenue": 500,
        "creator:7:payable": 1_000,
        "shop:3:payable": 8_500,
    }  # the zero platform commission is left out
    assert sum(a for _, a in legs) == 0
    assert ledger.compact([("escrow", 5), ("escrow", -5), ("shop:1:payable", 2), ("shop:1:payable", 3)]) == [
        ("shop:1:payable", 5)
    ]
    with pytest.raises(ValidationFailed):
        ledger.settlement_postings(shop_id=3, escrow_fen=100, service_fee_fen=101)
    with pytest.raises(ValidationFailed):
        ledger.settlement_postings(shop_id=3, escrow_fen=100, service_fee_fen=1, creator_commission_fen=5)


BAD_POSTINGS = [
    ([], "too_few_postings"),
    ([("escrow", 0)], "too_few_postings"),
    ([("escrow", 100)], "too_few_postings"),
    ([("escrow", 100), ("external:buyer_payments", -99)], "unbalanced"),
    ([("escrow", 100), ("external:buyer_payments", 0), ("shop:1:payable", -100)], "zero_amount"),
    ([("escrow", 100), ("nowhere", -100)], "invalid_account"),
    ([("escrow", 100), ("escrow", -100)], "duplicate_account"),
    ([("escrow", 1.5), ("external:buyer_payments", -1.5)], "invalid_amount"),
    ([("escrow", True), ("external:buyer_payments", -1)], "invalid_amount"),
    ([("escrow", "100"), ("external:buyer_payments", -100)], "invalid_amount"),
    ([("escrow", 10**16), ("external:buyer_payments", -(10**16))], "invalid_amount"),
    ([("escrow",), ("external:buyer_payments", -100)], "validation_error"),
    ("escrow", "validation_error"),
]


def test_bad_postings_are_refused_with_clear_codes(db_url: str) -> None:
    async def scenario(sm):  # type: ignore[no-untyped-def]
        codes = []
        for legs, _ in BAD_POSTINGS:
            try:
                await post(sm, kind="capture", ref="order:1", idempotency_key="k", postings=legs)
                codes.append("accepted")
            except ValidationFailed as err:
                codes.append(err.code)
        for kwargs in (
            {"kind": "Capture"},
            {"kind": ""},
            {"ref": ""},
            {"ref": "x" * 101},
            {"idempotency_key": ""},
            {"memo": "x" * 501},
            {"memo": "bad\x00memo"},
            {"at": dt.datetime(2026, 1, 1)},
        ):
            body = {
                "kind": "capture",
                "ref": "order:1",
                "idempotency_key": "k",
                "postings": ledger.capture_postings(100),
                **kwargs,
            }
            with pytest.raises(ValidationFailed):
                await post(sm, **body)
        return codes, await verify(sm)

    codes, report = with_db(db_url, scenario)
    assert codes == [code for _, code in BAD_POSTINGS]
    assert report.ok and report.transactions_checked == 0


def test_post_balances_and_statement(db_url: str) -> None:
    async def scenario(sm):  # type: ignore[no-untyped-def]
        t1 = await post(
            sm,
            kind="capture",
            ref="order:1",
            idempotency_key="cap:1",
            postings=ledger.capture_postings(10_000),
        )
        t2 = await post(
            sm,
            kind="settlement",
            ref="order:1",
            idempotency_key="settle:1",
            postings=ledger.settlement_postings(
                shop_id=3, escrow_fen=10_000, service_fee_fen=500, creator_id=7, creator_commission_fen=1_000
            ),
            memo="order 1 settled",
        )
        t3 = await post(
            sm,
            kind="capture",
            ref="order:2",
            idempotency_key="cap:2",
            postings=ledger.capture_postings(2_000),
        )
        t4 = await post(
            sm,
            kind="refund",
            ref="order:2",
            idempotency_key="refund:2",
            postings=ledger.refund_postings(2_000),
        )
        async with transaction(sm) as s:
            balances = {b.account: b.balance_fen for b in await ledger.balances(s)}
            shops_only = await ledger.balances(s, "shop:")
            shop = await ledger.balance(s, SHOP)
            nobody = await ledger.balance(s, "shop:999:payable")
            total = await ledger.total_balance(s)
            escrow_lines = await ledger.statement(s, "escrow")
            page1 = await ledger.statement(s, "escrow", limit=2)
            page2 = await ledger.statement(s, "escrow", before_id=page1[-1].posting_id, limit=2)
            tx = await ledger.transaction_for(s, "settle:1")
            missing = await ledger.transaction_for(s, "nope")
            with pytest.raises(ValidationFailed):
                await ledger.balance(s, "bogus")
        return (
            (t1, t2, t3, t4),
            balances,
            shops_only,
            shop,
            nobody,
            total,
            escrow_lines,
            page1,
            page2,
            tx,
            missing,
        )

    ids, balances, shops_only, shop, nobody, total, lines, page1, page2, tx, missing = with_db(
        db_url, scenario
    )
    assert ids == (1, 2, 3, 4)
    assert balances == {
        "external:buyer_payments": -12_000,
        "external:buyer_refunds": 2_000,
        "escrow": 0,
        "platform:fee_revenue": 500,
        "creator:7:payable": 1_000,
        "shop:3:payable": 8_500,
    }
    assert [b.account for b in shops_only] == ["shop:3:payable"]
    assert shop == 8_500 and nobody == 0 and total == 0
    # Newest first, each with its transaction and the running balance after it.
    assert [(x.kind, x.ref, x.amount_fen, x.balance_after_fen) for x in lines] == [
        ("refund", "order:2", -2_000, 0),
        ("capture", "order:2", 2_000, 2_000),
        ("settlement", "order:1", -10_000, 0),
        ("capture", "order:1", 10_000, 10_000),
    ]
    assert lines[2].memo == "order 1 settled"
    assert page1 + page2 == lines
    assert tx is not None and tx.kind == "settlement" and tx.prev_hash != tx.hash
    assert sorted((p.account, p.amount_fen) for p in tx.postings) == sorted(
        ledger.settlement_postings(
            shop_id=3, escrow_fen=10_000, service_fee_fen=500, creator_id=7, creator_commission_fen=1_000
        )
    )
    assert ledger.transaction_out(tx).postings[0].account == "creator:7:payable"
    assert missing is None


def test_idempotency(db_url: str) -> None:
    async def scenario(sm):  # type: ignore[no-untyped-def]
        legs = ledger.capture_postings(5_000)
        first = await post(sm, kind="capture", ref="order:9", idempotency_key="pay:9", postings=legs)
        # A retry, even with the postings in another order and another memo, is the same transaction.
        again = await post(
            sm, kind="capture", ref="order:9", idempotency_key="pay:9", postings=legs[::-1], memo="retry"
        )
        errors = []
        for change in (
            {"postings": ledger.capture_postings(5_001)},
            {"postings": ledger.transfer("escrow", "external:buyer_payments", 5_000)},
            {"kind": "refund"},
            {"ref": "order:10"},
        ):
            body = {
                "kind": "capture",
                "ref": "order:9",
                "idempotency_key": "pay:9",
                "postings": legs,
                **change,
            }
            try:
                await post(sm, **body)
            except Conflict as err:
                errors.append(err.code)
        # Within one unit of work too: the second call sees the first, uncommitted one.
        async with transaction(sm) as s:
            a = await ledger.post(s, kind="capture", ref="order:10", idempotency_key="pay:10", postings=legs)
            b = await ledger.post(s, kind="capture", ref="order:10", idempotency_key="pay:10", postings=legs)
            same_in_session = a.id == b.id
        async with transaction(sm) as s:
            escrow = await ledger.balance(s, "escrow")
        return first, again, errors, same_in_session, escrow, await verify(sm)

    first, again, errors, same_in_session, escrow, report = with_db(db_url, scenario)
    assert first == again == 1
    assert errors == ["idempotency_mismatch"] * 4
    assert same_in_session
    assert escrow == 10_000  # two captures, not four
    assert report.ok and report.transactions_checked == 2


def test_a_rolled_back_post_leaves_nothing(db_url: str) -> None:
    async def scenario(sm):  # type: ignore[no-untyped-def]
        await post(
            sm, kind="capture", ref="order:1", idempotency_key="a", postings=ledger.capture_postings(100)
        )
        with pytest.raises(RuntimeError):
            async with transaction(sm) as s:
                await ledger.post(
                    s,
                    kind="capture",
                    ref="order:2",
                    idempotency_key="b",
                    postings=ledger.capture_postings(200),
                )
                raise RuntimeError("the order failed after the ledger posted")
        # The ids continue without a gap: the head rolled back with the transaction.
        third = await post(
            sm, kind="capture", ref="order:3", idempotency_key="c", postings=ledger.capture_postings(300)
        )
        async with transaction(sm) as s:
            return (
                third,
                await ledger.balance(s, "escrow"),
                await ledger.transaction_for(s, "b"),
                await ledger.verify(s),
            )

    third, escrow, rolled_back, report = with_db(db_url, scenario)
    assert third == 2 and escrow == 400 and rolled_back is None
    assert report.ok and report.postings_checked == 4


def test_domain_errors_carry_http_statuses() -> None:
    with pytest.raises(DomainError) as err:
        ledger.check_postings([("escrow", 1), ("external:buyer_payments", -2)])
    assert err.value.status_code == 422 and err.value.code == "unbalanced"
