"""Many writers at once on real databases: every append lands on the chain, no balance update is
lost, retries of the same key post once."""

from __future__ import annotations

import asyncio

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
