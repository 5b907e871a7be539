"""Tamper detection: after valid postings, edit, delete, insert or reorder rows with raw SQL behind
the service's back; `verify` (and `trustlive ledger verify`) must report it, naming the first bad
transaction. On SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from tests.ledger.util import post, raw, verify, with_db
from trustlive.db import transaction
from trustlive.errors import DomainError
from trustlive.ledger import service as ledger
from trustlive.ledger.service import EXTERNAL_BUYER_PAYMENTS

SHOP, CREATOR = ledger.shop_payable(3), ledger.creator_payable(7)


async def five_transactions(sm) -> None:  # type: ignore[no-untyped-def]
    """1 capture, 2 capture, 3 settlement (four postings: ids 5-8), 4 refund, 5 capture."""
    await post(
        sm, kind="capture", ref="order:1", idempotency_key="cap:1", postings=ledger.capture_postings(10_000)
    )
    await post(
        sm, kind="capture", ref="order:2", idempotency_key="cap:2", postings=ledger.capture_postings(20_000)
    )
    await post(
        sm,
        kind="settlement",
        ref="order:1",
        idempotency_key="settle:1",
        postings=ledger.settlement_postings(
            shop_id=3, escrow_fen=10_000, service_fee_fen=500, creator_id=7, creator_commission_fen=1_000
        ),
        memo="settled",
    )
    await post(
        sm, kind="refund", ref="order:2", idempotency_key="refund:2", postings=ledger.refund_postings(5_000)
    )
    await post(
        sm, kind="capture", ref="order:3", idempotency_key="cap:3", postings=ledger.capture_postings(3_000)
    )


async def _swap_transactions(sm, a: int, b: int) -> None:  # type: ignore[no-untyped-def]
    """Exchange two transactions completely (content and postings): a reordering of the chain."""
    cols = "kind, ref, idempotency_key, memo, created_at, prev_hash, hash"
    async with transaction(sm) as s:
        rows = {
            r.id: r._mapping
            for r in (
                await s.execute(
                    text(f"SELECT id, {cols} FROM ledger_transactions WHERE id IN (:a, :b)"), {"a": a, "b": b}
                )
            )
        }
        await s.execute(
            text("UPDATE ledger_transactions SET idempotency_key = 'tmp' WHERE id = :a"), {"a": a}
        )
        for target, source in ((b, a), (a, b)):
            values = {k: rows[source][k] for k in rows[source] if k != "id"}
            sets = ", ".join(f"{k} = :{k}" for k in values)
            await s.execute(
                text(f"UPDATE ledger_transactions SET {sets} WHERE id = :id"), {**values, "id": target}
            )
        await s.execute(
            text(
                "UPDATE ledger_postings SET transaction_id = CASE WHEN transaction_id = :a THEN :b ELSE :a END "
                "WHERE transaction_id IN (:a, :b)"
            ),
            {"a": a, "b": b},
        )


async def _append_forged(sm) -> None:  # type: ignore[no-untyped-def]
    """Someone who knows the hashing appends a well-formed transaction but cannot move the head."""
    legs = sorted([(SHOP, 1_000_000), (EXTERNAL_BUYER_PAYMENTS, -1_000_000)])
    at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    async with transaction(sm) as s:
        last = (await s.execute(text("SELECT hash FROM ledger_transactions WHERE id = 5"))).scalar_one()
        digest = ledger.chain_hash(last, ledger.canonical("capture", "order:x", "forged", "", at, legs))
        await s.execute(
            text(
                "INSERT INTO ledger_transactions (id, kind, ref, idempotency_key, memo, created_at, prev_hash, hash) "
                "VALUES (6, 'capture', 'order:x', 'forged', '', :at, :prev, :hash)"
            ),
            {
                "at": at.replace(tzinfo=None) if s.bind.dialect.name == "sqlite" else at,
                "prev": last,
                "hash": digest,
            },
        )
        for i, (account, amount) in enumerate(legs):
            await s.execute(
                text(
                    "INSERT INTO ledger_postings (id, transaction_id, account, amount_fen) VALUES (:id, 6, :a, :x)"
                ),
                {"id": 13 + i, "a": account, "x": amount},
            )
            await s.execute(
                text("UPDATE ledger_balances SET balance_fen = balance_fen + :x WHERE account = :a"),
                {"a": account, "x": amount},
            )


def _sql(*statements: str):  # type: ignore[no-untyped-def]
    return lambda sm: raw(sm, *statements)


# name -> (tampering, the first bad transaction verify must name (None: not a transaction's fault))
TAMPERING = {
    "posting amount": (_sql("UPDATE ledger_postings SET amount_fen = amount_fen + 1 WHERE id = 5"), 3),
    "amounts moved within a transaction, balances fixed up": (
        _sql(
            f"UPDATE ledger_postings SET amount_fen = amount_fen + 100 WHERE transaction_id = 3 AND account = '{CREATOR}'",
            f"UPDATE ledger_postings SET amount_fen = amount_fen - 100 WHERE transaction_id = 3 AND account = '{SHOP}'",
            f"UPDATE ledger_balances SET balance_fen = balance_fen + 100 WHERE account = '{CREATOR}'",
            f"UPDATE ledger_balances SET balance_fen = balance_fen - 100 WHERE account = '{SHOP}'",
        ),
        3,
    ),
    "memo": (_sql("UPDATE ledger_transactions SET memo = 'nothing to see' WHERE id = 3"), 3),
    "kind": (_sql("UPDATE ledger_transactions SET kind = 'refund' WHERE id = 2"), 2),
    "ref": (_sql("UPDATE ledger_transactions SET ref = 'order:99' WHERE id = 2"), 2),
    "idempotency key": (_sql("UPDATE ledger_transactions SET idempotency_key = 'other' WHERE id = 4"), 4),
    "created_at": (
        _sql(
            "UPDATE ledger_transactions SET created_at = (SELECT created_at FROM ledger_transactions WHERE id = 1) WHERE id = 4"
        ),
        4,
    ),
    "prev_hash": (_sql("UPDATE ledger_transactions SET prev_hash = hash WHERE id = 2"), 2),
    "hash": (_sql("UPDATE ledger_transactions SET hash = prev_hash WHERE id = 2"), 2),
    "posting account": (
        _sql(f"UPDATE ledger_postings SET account = 'shop:99:payable' WHERE account = '{SHOP}'"),
        3,
    ),
    "posting moved to another transaction": (
        _sql("UPDATE ledger_postings SET transaction_id = 4 WHERE id = 8"),
        3,
    ),
    "posting ids swapped within a transaction": (
        _sql(
            "UPDATE ledger_postings SET id = 1000 WHERE id = 5",
            "UPDATE ledger_postings SET id = 5 WHERE id = 6",
            "UPDATE ledger_postings SET id = 6 WHERE id = 1000",
        ),
        3,
    ),
    "posting deleted": (_sql("DELETE FROM ledger_postings WHERE id = 6"), 3),
    "transaction deleted": (
        _sql(
            "DELETE FROM ledger_postings WHERE transaction_id = 2",
            "DELETE FROM ledger_transactions WHERE id = 2",
        ),
        3,
    ),
    "last transaction deleted, balances fixed up": (
        _sql(
            "DELETE FROM ledger_postings WHERE transaction_id = 5",
            "DELETE FROM ledger_transactions WHERE id = 5",
            "UPDATE ledger_balances SET balance_fen = balance_fen - 3000 WHERE account = 'escrow'",
            f"UPDATE ledger_balances SET balance_fen = balance_fen + 3000 WHERE account = '{EXTERNAL_BUYER_PAYMENTS}'",
        ),
        5,
    ),
    "transaction renumbered": (
        _sql(
            "UPDATE ledger_postings SET transaction_id = 1 WHERE transaction_id = 5",
            "UPDATE ledger_transactions SET idempotency_key = 'x' WHERE id = 5",
            "INSERT INTO ledger_transactions (id, kind, ref, idempotency_key, memo, created_at, prev_hash, hash) "
            "SELECT 7, kind, ref, 'cap:3', memo, created_at, prev_hash, hash FROM ledger_transactions WHERE id = 5",
            "UPDATE ledger_postings SET transaction_id = 7 WHERE id IN (11, 12)",
            "DELETE FROM ledger_transactions WHERE id = 5",
        ),
        7,
    ),
    "two transactions swapped": (lambda sm: _swap_transactions(sm, 2, 3), 2),
    "forged transaction appended": (_append_forged, 6),
    "balance edited": (
        _sql("UPDATE ledger_balances SET balance_fen = balance_fen + 1 WHERE account = 'escrow'"),
        None,
    ),
    "balance row deleted": (_sql(f"DELETE FROM ledger_balances WHERE account = '{CREATOR}'"), None),
    "head deleted": (_sql("DELETE FROM ledger_head"), None),
}


@pytest.mark.parametrize("name", list(TAMPERING))
def test_verify_detects_tampering(db_url: str, name: str) -> None:
    tamper, first_bad = TAMPERING[name]

    async def scenario(sm):  # type: ignore[no-untyped-def]
        await five_transactions(sm)
        before = await verify(sm)
        await tamper(sm)
        return before, await verify(sm)

    before, after = with_db(db_url, scenario)
    assert before.ok and before.transactions_checked == 5 and before.postings_checked == 12
    assert not after.ok, name
    assert after.problems
    assert after.first_bad_transaction == first_bad, after.problems
    if first_bad is not None:
        assert after.problems[0].startswith(f"transaction {first_bad}:"), after.problems


def test_extra_balance_row_and_unbalanced_ledger(db_url: str) -> None:
    async def scenario(sm):  # type: ignore[no-untyped-def]
        await five_transactions(sm)
        await raw(
            sm,
            "INSERT INTO ledger_balances (account, balance_fen, updated_at) VALUES ('shop:42:payable', 7, :at)",
            at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        )
        return await verify(sm)

    report = with_db(db_url, scenario)
    assert not report.ok
    assert any("shop:42:payable" in p and "no postings" in p for p in report.problems)
    assert any("sum to 7 fen, not 0" in p for p in report.problems)


def test_a_broken_head_stops_new_postings(db_url: str) -> None:
    async def scenario(sm):  # type: ignore[no-untyped-def]
        await five_transactions(sm)
        await raw(sm, "DELETE FROM ledger_head")
        try:
            await post(
                sm,
                kind="capture",
                ref="order:9",
                idempotency_key="cap:9",
                postings=ledger.capture_postings(1),
            )
        except DomainError as err:
            return err.code
        return "accepted"

    assert with_db(db_url, scenario) == "ledger_head_missing"


@pytest.fixture
def cli_env(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("TRUSTLIVE_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("TRUSTLIVE_DATABASE_URL", db_url)
    monkeypatch.setenv("COLUMNS", "200")
    return db_url


def test_cli_verify_exit_codes(cli_env: str) -> None:
    from trustlive.cli import app

    runner = CliRunner()
    with_db(cli_env, five_transactions)
    ok = runner.invoke(app, ["ledger", "verify"])
    assert ok.exit_code == 0, ok.output
    assert "ledger OK" in ok.output and "5 transactions" in ok.output

    balances = runner.invoke(app, ["ledger", "balances"])
    assert balances.exit_code == 0, balances.output
    assert SHOP in balances.output and "8500" in balances.output

    with_db(cli_env, _sql("UPDATE ledger_transactions SET memo = 'edited' WHERE id = 3"))
    bad = runner.invoke(app, ["ledger", "verify"])
    assert bad.exit_code == 1, bad.output
    assert "FAILED" in bad.output and "first bad transaction: 3" in bad.output
    assert "transaction 3:" in bad.output
