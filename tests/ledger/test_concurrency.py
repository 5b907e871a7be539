"""Many writers at once on real databases: every append lands on the chain, no balance update is
lost, retries of the same key post once."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import event
from sqlalchemy.util import await_only

from tests.ledger.util import verify, with_db
from trustlive.db import transaction
from trustlive.errors import DomainError
from trustlive.ledger import service as ledger

WRITERS = 40
SHOPS = 4


def test_concurrent_posts_keep_the_chain_and_the_balances(db_url: str) -> None:
    async def scenario(sm):  # type: ignore[no-untyped-def]
        async def write(i: int) -> int:
            # Every writer moves money through escrow into one of a few shops: the balance rows of
            # escrow and of each shop are updated by many transactions at once.
            amount = 100 + i
            async with transaction(sm) as s:
                tx = await ledger.post(
                    s,
                    kind="settlement",
                    ref=f"order:{i}",
                    idempotency_key=f"order:{i}",
                    postings=[
                        (ledger.EXTERNAL_BUYER_PAYMENTS, -amount),
                        (ledger.PLATFORM_FEE_REVENUE, 1),
                        (ledger.shop_payable(1 + i % SHOPS), amount - 1),
                    ],
                )
                await asyncio.sleep(0)  # yield inside the unit of work, before commit
                return tx.id

        async def retry(i: int) -> int | str:
            # The same key from two places at once: one posts, the other gets the same transaction.
            try:
                async with transaction(sm) as s:
                    tx = await ledger.post(
                        s,
                        kind="capture",
                        ref="order:dup",
                        idempotency_key="capture:dup",
                        postings=ledger.capture_postings(999),
                    )
                    return tx.id
            except DomainError as err:
                return err.code

        ids = await asyncio.gather(*(write(i) for i in range(WRITERS)), *(retry(i) for i in range(4)))
        async with transaction(sm) as s:
            shops = {b.account: b.balance_fen for b in await ledger.balances(s, "shop:")}
            external = await ledger.balance(s, ledger.EXTERNAL_BUYER_PAYMENTS)
            fees = await ledger.balance(s, ledger.PLATFORM_FEE_REVENUE)
        return ids, shops, external, fees, await verify(sm)

    ids, shops, external, fees, report = with_db(db_url, scenario)
    writes, retries = ids[:WRITERS], ids[WRITERS:]
    assert sorted(writes + [retries[0]]) == list(range(1, WRITERS + 2))  # no gaps, no duplicates
    assert len(set(retries)) == 1  # every retry got the one transaction
    total = sum(100 + i for i in range(WRITERS))
    assert external == -(total + 999)
    assert fees == WRITERS
    assert shops == {
        ledger.shop_payable(1 + k): sum(100 + i - 1 for i in range(WRITERS) if i % SHOPS == k)
        for k in range(SHOPS)
    }
    assert report.ok, report.problems
    assert report.transactions_checked == WRITERS + 1
    assert report.postings_checked == WRITERS * 3 + 2


def test_the_first_writer_committing_meanwhile_is_not_a_missing_head(db_url: str) -> None:
    """Two first writers: B finds no head, then A creates it, posts and commits before B looks any
    further. B must wait for A's head and append after A's transaction, not report the head as
    missing. (PostgreSQL: a SQLite transaction holds the write lock from its start.)"""
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite writers never overlap")

    async def scenario(sm):  # type: ignore[no-untyped-def]
        a = sm()
        await a.begin()
        first = await ledger.post(a, kind="capture", ref="order:a", idempotency_key="capture:a",
                                  postings=ledger.capture_postings(500))  # fmt: skip
        b = sm()
        await b.begin()
        b_connection = await b.connection()
        seen: list[str] = []

        def commit_a_after_bs_first_look(conn, cursor, statement, params, context, executemany):  # type: ignore[no-untyped-def]
            if "FROM ledger_head" in statement and "FOR UPDATE" in statement and not seen:
                seen.append(statement)
                await_only(a.commit())  # A commits right after B found no head

        event.listen(b_connection.sync_connection, "after_cursor_execute", commit_a_after_bs_first_look)
        try:
            second = await ledger.post(b, kind="capture", ref="order:b", idempotency_key="capture:b",
                                       postings=ledger.capture_postings(700))  # fmt: skip
            await b.commit()
        finally:
            await a.close()
            await b.close()
        return seen, first.id, second.id, await verify(sm)

    seen, first_id, second_id, report = with_db(db_url, scenario)
    assert seen  # B did look before A committed
    assert (first_id, second_id) == (1, 2)
    assert report.ok, report.problems
    assert report.transactions_checked == 2
