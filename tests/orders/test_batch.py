"""Batched checkout (group commit): the same rules as one-by-one, decided per request."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from tests.orders.world import build, stock_of
from trustlive.db import transaction
from trustlive.errors import DomainError
from trustlive.orders import service as orders
from trustlive.orders.models import Checkout, Order
from trustlive.orders.schemas import ItemIn, OrderIn


def body(w, buyer_index: int, *items: tuple[int, int], address: int | None = None, **extra) -> OrderIn:  # type: ignore[no-untyped-def]
    buyer = w.buyers[buyer_index]
    return OrderIn(
        items=[ItemIn(sku_id=s, quantity=q) for s, q in items],
        address_id=address or w.addresses[buyer.id],
        **extra,
    )


async def outcome(batcher: orders.CheckoutBatcher, buyer, data: OrderIn, key: str) -> str | orders.Placed:  # type: ignore[no-untyped-def]
    try:
        return await batcher.place(buyer, data, key)
    except DomainError as err:
        return err.code


def test_rush_through_the_batcher_never_oversells(db_url: str) -> None:
    async def scenario() -> None:
        w = await build(db_url, buyers=300, stock=50)
        batcher = orders.CheckoutBatcher(w.sessionmaker, orders.DEFAULT_POLICY)
        try:
            results = await asyncio.gather(
                *(outcome(batcher, w.buyers[i], body(w, i, (w.skus[0], 1)), f"k{i}") for i in range(300))
            )
            placed = [r for r in results if isinstance(r, orders.Placed)]
            assert len(placed) == 50
            assert {r for r in results if isinstance(r, str)} == {"out_of_stock"}
            assert len({p.orders[0].id for p in placed}) == 50
            async with transaction(w.sessionmaker) as s:
                count = await s.scalar(select(func.count()).select_from(Order))
                checkouts = await s.scalar(select(func.count()).select_from(Checkout))
            assert count == 50 and checkouts == 50  # refused requests left no checkout behind
            assert await stock_of(w, w.skus[0]) == 0
            # Every acknowledged order exists and matches what was answered.
            async with transaction(w.sessionmaker) as s:
                for p in placed[:10]:
                    detail = await orders.get_order(s, p.orders[0].buyer_id and w.ops, p.orders[0].id)
                    assert detail.total_fen == 5900 and detail.checkout_id == p.checkout.id
        finally:
            await w.engine.dispose()

    asyncio.run(scenario())


def test_one_batch_mixed_outcomes(db_url: str) -> None:
    async def scenario() -> None:
        w = await build(db_url, buyers=6, stock=5, per_buyer_limit=2)
        batcher = orders.CheckoutBatcher(w.sessionmaker, orders.DEFAULT_POLICY)
        try:
            other = w.addresses[w.buyers[1].id]
            jobs = [
                (0, body(w, 0, (w.skus[0], 1)), "a"),  # fine
                (1, body(w, 1, (w.skus[0], 3)), "b"),  # over the per-buyer limit
                (2, body(w, 2, (w.skus[0], 1), address=other), "c"),  # someone else's address
                (3, body(w, 3, (999999, 1)), "d"),  # unknown SKU
                (4, body(w, 4, (w.skus[0], 2), (w.skus[1], 1)), "e"),  # two shops
                (5, body(w, 5, (w.skus[0], 2)), "f"),  # only 2 left after a and e
                (5, body(w, 5, (w.skus[0], 2)), "f"),  # the same request twice at once
                (0, body(w, 0, (w.skus[0], 1)), "g"),  # stock is gone by now
                (1, body(w, 1, (w.skus[0], 1)), ""),  # no key
            ]
            results = await asyncio.gather(*(outcome(batcher, w.buyers[i], d, k) for i, d, k in jobs))
            kinds = [r if isinstance(r, str) else len(r.orders) for r in results]
            assert kinds == [1, "limit_exceeded", "address_not_found", "not_on_sale", 2, 1, 1, "out_of_stock",
                             "idempotency_key_required"]  # fmt: skip
            assert results[5].orders[0].id == results[6].orders[0].id  # type: ignore[union-attr]
            assert await stock_of(w, w.skus[0]) == 0 and await stock_of(w, w.skus[1]) == 4
            # A replay after the commit answers with the same orders; a changed body is refused.
            again = await outcome(batcher, w.buyers[4], body(w, 4, (w.skus[0], 2), (w.skus[1], 1)), "e")
            assert [o.id for o in again.orders] == [o.id for o in results[4].orders]  # type: ignore[union-attr]
            assert (
                await outcome(batcher, w.buyers[4], body(w, 4, (w.skus[1], 1)), "e") == "idempotency_mismatch"
            )
            # A replay is answered as it was even when the request would be refused today: the
            # stock is gone and the address has been deleted since.
            async with transaction(w.sessionmaker) as s:
                await orders.delete_address(s, w.buyers[0], w.addresses[w.buyers[0].id])
            replay = await outcome(batcher, w.buyers[0], body(w, 0, (w.skus[0], 1)), "a")
            assert [o.id for o in replay.orders] == [o.id for o in results[0].orders]  # type: ignore[union-attr]
            async with transaction(w.sessionmaker) as s:
                assert await s.scalar(select(func.count()).select_from(Order)) == 4
        finally:
            await w.engine.dispose()

    asyncio.run(scenario())


def test_two_workers_batching_on_one_sku(db_url: str) -> None:
    """Two batchers (two worker processes in production) rush the same SKU. Their optimistic
    batches collide near the end of the stock and are re-run with the rows locked: still exactly
    as many orders as units."""

    async def scenario() -> None:
        w = await build(db_url, buyers=200, stock=50)
        first = orders.CheckoutBatcher(w.sessionmaker, orders.DEFAULT_POLICY)
        second = orders.CheckoutBatcher(w.sessionmaker, orders.DEFAULT_POLICY)
        try:
            results = await asyncio.gather(
                *(
                    outcome(first if i % 2 else second, w.buyers[i], body(w, i, (w.skus[0], 1)), f"k{i}")
                    for i in range(200)
                )
            )
            assert sum(isinstance(r, orders.Placed) for r in results) == 50
            assert {r for r in results if isinstance(r, str)} == {"out_of_stock"}
            assert await stock_of(w, w.skus[0]) == 0
            async with transaction(w.sessionmaker) as s:
                assert await s.scalar(select(func.count()).select_from(Order)) == 50
        finally:
            await first.stop()
            await second.stop()
            await w.engine.dispose()

    asyncio.run(scenario())
