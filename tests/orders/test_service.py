"""Checkout, stock, limits, the state machine, deadlines and settlement, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlalchemy import func, select

from tests.orders.world import World, build, set_shipping, stock_of
from trustlive.db import transaction, utcnow
from trustlive.errors import DomainError
from trustlive.ledger import service as ledger
from trustlive.orders import service as orders
from trustlive.orders import tasks
from trustlive.orders.models import Order, OrderLine
from trustlive.orders.schemas import ItemIn, OrderIn, ShipIn


def order_in(world: World, buyer_index: int, *items: tuple[int, int], **extra: object) -> OrderIn:
    buyer = world.buyers[buyer_index]
    return OrderIn(
        items=[ItemIn(sku_id=s, quantity=q) for s, q in items], address_id=world.addresses[buyer.id], **extra
    )  # type: ignore[arg-type]


async def place(
    world: World, buyer_index: int, *items: tuple[int, int], key: str, **extra: object
) -> orders.Placed:
    async with transaction(world.sessionmaker) as s:
        return await orders.place_order(
            s, world.buyers[buyer_index], order_in(world, buyer_index, *items, **extra), key
        )


async def attempt(world: World, buyer_index: int, *items: tuple[int, int], key: str, **extra: object) -> str:
    try:
        await place(world, buyer_index, *items, key=key, **extra)
        return "ok"
    except DomainError as err:
        return err.code


async def count_orders(world: World) -> int:
    async with transaction(world.sessionmaker) as s:
        return await s.scalar(select(func.count()).select_from(Order)) or 0


async def pay(world: World, order_id: int) -> str:
    async with transaction(world.sessionmaker) as s:
        order = await s.get(Order, order_id)
        # What the payments domain does on a captured payment: escrow it, then mark the order paid.
        await ledger.post(s, kind="capture", ref=f"test:{order_id}", idempotency_key=f"capture:test:{order_id}",
                          postings=ledger.capture_postings(order.total_fen))  # fmt: skip
        return await orders.mark_paid(s, order_id, order.total_fen, f"test-{order_id}")


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_place_order_snapshots_lines_and_takes_stock(db_url: str) -> None:
    async def scenario() -> None:
        w = await build(db_url)
        try:
            await set_shipping(w, 0, flat=800, free_over=20000)
            placed = await place(w, 0, (w.skus[0], 2), key="k1", source="live_room", creator_id=w.creator.id)
            assert not placed.replayed and len(placed.orders) == 1
            order = placed.orders[0]
            assert (order.status, order.goods_fen, order.shipping_fen, order.total_fen) == (
                "pending_payment",
                11800,
                800,
                12600,
            )
            assert order.pay_deadline - order.created_at == dt.timedelta(minutes=15)
            assert await stock_of(w, w.skus[0]) == 8
            async with transaction(w.sessionmaker) as s:
                line = await s.scalar(select(OrderLine).where(OrderLine.order_id == order.id))
                assert (line.title, line.unit_price_fen, line.quantity, line.source, line.creator_id) == (
                    "商品1",
                    5900,
                    2,
                    "live_room",
                    w.creator.id,
                )
                assert (line.commission_bp, line.service_fee_bp, line.requires_inspection) == (
                    2000,
                    500,
                    False,
                )
            # Free shipping from 200 yuan of goods.
            big = await place(w, 0, (w.skus[0], 4), key="k2")
            assert big.orders[0].shipping_fen == 0
        finally:
            await w.engine.dispose()

    run(scenario())


def test_one_order_per_shop(db_url: str) -> None:
    async def scenario() -> None:
        w = await build(db_url)
        try:
            placed = await place(w, 0, (w.skus[0], 1), (w.skus[1], 1), key="multi")
            assert sorted(o.shop_id for o in placed.orders) == sorted(w.shops)
            assert {o.checkout_id for o in placed.orders} == {placed.checkout.id}
            assert placed.checkout.total_fen == 5900 + 128000
            jade_line = next(o for o in placed.orders if o.shop_id == w.shops[1])
            assert jade_line.total_fen == 128000
        finally:
            await w.engine.dispose()

    run(scenario())


def test_idempotency_key(db_url: str) -> None:
    async def scenario() -> None:
        w = await build(db_url)
        try:
            first = await place(w, 0, (w.skus[0], 1), key="same")
            again = await place(w, 0, (w.skus[0], 1), key="same")
            assert again.replayed and [o.id for o in again.orders] == [o.id for o in first.orders]
            assert await stock_of(w, w.skus[0]) == 9 and await count_orders(w) == 1
            assert await attempt(w, 0, (w.skus[0], 2), key="same") == "idempotency_mismatch"
            # Keys are per buyer: another buyer may use the same string.
            assert await attempt(w, 1, (w.skus[0], 1), key="same") == "ok"
            assert await attempt(w, 0, (w.skus[0], 1), key="") == "idempotency_key_required"
            # Twelve concurrent retries of one request create one order.
            results = await asyncio.gather(*(place(w, 1, (w.skus[1], 1), key="retry") for _ in range(12)))
            assert len({r.orders[0].id for r in results}) == 1
            assert await stock_of(w, w.skus[1]) == 9 and await count_orders(w) == 3
        finally:
            await w.engine.dispose()

    run(scenario())


def test_bad_orders_change_nothing(db_url: str) -> None:
    async def scenario() -> None:
        w = await build(db_url)
        try:
            async with transaction(w.sessionmaker) as s:
                from trustlive.catalog import service as catalog

                await catalog.unpublish(
                    s, w.merchants[1], (await catalog.skus_for_sale(s, [w.skus[1]]))[w.skus[1]].product_id
                )
            other_address = w.addresses[w.buyers[1].id]
            outcomes = [
                await attempt(w, 0, (999999, 1), key="a"),
                await attempt(w, 0, (w.skus[1], 1), key="b"),  # unpublished
                await attempt(w, 0, (w.skus[0], 11), key="c"),  # more than the stock
                await attempt(w, 0, (w.skus[0], 1), (w.skus[0], 999), key="d"),  # 1000 of one SKU
                await attempt(w, 0, (w.skus[0], 1), key="e", creator_id=w.buyers[1].id),  # not a creator
            ]
            async with transaction(w.sessionmaker) as s:
                body = OrderIn(items=[ItemIn(sku_id=w.skus[0], quantity=1)], address_id=other_address)
                with pytest.raises(DomainError) as info:
                    await orders.place_order(s, w.buyers[0], body, "f")
                outcomes.append(info.value.code)
                with pytest.raises(DomainError) as info:
                    await orders.place_order(
                        s,
                        w.buyers[0],
                        OrderIn(items=[ItemIn(sku_id=w.skus[0], quantity=0)], address_id=1),
                        "g",
                    )
                outcomes.append(info.value.code)
            assert outcomes == [
                "not_on_sale", "not_on_sale", "out_of_stock", "validation_error", "validation_error",
                "address_not_found", "validation_error",
            ]  # fmt: skip
            assert await count_orders(w) == 0
            assert await stock_of(w, w.skus[0]) == 10
        finally:
            await w.engine.dispose()

    run(scenario())


def test_state_machine_and_illegal_moves(db_url: str) -> None:
    async def scenario() -> None:
        w = await build(db_url)
        try:
            order = (await place(w, 0, (w.skus[0], 1), key="k")).orders[0]
            buyer, other, seller = w.buyers[0], w.buyers[1], w.merchants[0]

            async def code(coro) -> str:  # type: ignore[no-untyped-def]
                try:
                    async with transaction(w.sessionmaker) as s:
                        await coro(s)
                    return "ok"
                except DomainError as err:
                    return err.code

            ship = ShipIn(carrier="顺丰", tracking_no="SF1234567890")
            assert await code(lambda s: orders.ship_order(s, seller, order.id, ship)) == "invalid_transition"
            assert await code(lambda s: orders.confirm_receipt(s, buyer, order.id)) == "invalid_transition"
            assert await pay(w, order.id) == "paid"
            assert await pay(w, order.id) == "already_paid"
            assert await code(lambda s: orders.cancel_order(s, buyer, order.id)) == "invalid_transition"
            assert await code(lambda s: orders.ship_order(s, buyer, order.id, ship)) == "not_your_shop"
            assert (
                await code(lambda s: orders.ship_order(s, w.merchants[1], order.id, ship))
                == "order_not_found"
            )
            assert await code(lambda s: orders.get_order(s, other, order.id)) == "order_not_found"
            assert await code(lambda s: orders.ship_order(s, seller, order.id, ship)) == "ok"
            assert await code(lambda s: orders.ship_order(s, seller, order.id, ship)) == "invalid_transition"
            assert await code(lambda s: orders.confirm_receipt(s, other, order.id)) == "order_not_found"
            assert await code(lambda s: orders.mark_delivered(s, seller, order.id)) == "ok"
            assert await code(lambda s: orders.confirm_receipt(s, buyer, order.id)) == "ok"
            async with transaction(w.sessionmaker) as s:
                detail = await orders.get_order(s, buyer, order.id)
            assert detail.status == "completed"
            assert [e.to_status for e in detail.events] == [
                "pending_payment",
                "paid",
                "shipped",
                "delivered",
                "completed",
            ]
            # Settlement waits for max(return window 7 d, the shop's tier: 15 d while its score is
            # "new", docs/scores.md).
            assert detail.settle_at - detail.completed_at == dt.timedelta(days=15)
        finally:
            await w.engine.dispose()

    run(scenario())


def test_pay_deadline_cancels_and_returns_stock(db_url: str) -> None:
    async def scenario() -> None:
        w = await build(db_url)
        try:
            late = (await place(w, 0, (w.skus[0], 3), key="late")).orders[0]
            paid = (await place(w, 1, (w.skus[0], 2), key="paid")).orders[0]
            assert await pay(w, paid.id) == "paid"
            assert await stock_of(w, w.skus[0]) == 5
            assert await tasks.cancel_unpaid(w.sessionmaker, utcnow()) == 0  # not due yet
            later = utcnow() + dt.timedelta(minutes=16)
            assert await tasks.cancel_unpaid(w.sessionmaker, later) == 1
            assert await tasks.cancel_unpaid(w.sessionmaker, later) == 0  # idempotent
            assert await stock_of(w, w.skus[0]) == 8
            async with transaction(w.sessionmaker) as s:
                detail = await orders.get_order(s, w.buyers[0], late.id)
            assert (detail.status, detail.cancel_reason) == ("cancelled", "payment_timeout")
            # A payment that arrives after the cancellation is not accepted: the caller refunds it.
            assert await pay(w, late.id) == "not_payable"
        finally:
            await w.engine.dispose()

    run(scenario())


def test_settlement_splits_escrow_to_the_fen(db_url: str) -> None:
    async def scenario() -> None:
        w = await build(db_url)
        try:
            await set_shipping(w, 0, flat=1000, free_over=None)
            order = (
                await place(w, 0, (w.skus[0], 3), key="s", source="live_room", creator_id=w.creator.id)
            ).orders[0]
            assert order.total_fen == 3 * 5900 + 1000
            await pay(w, order.id)
            async with transaction(w.sessionmaker) as s:
                await orders.ship_order(
                    s, w.merchants[0], order.id, ShipIn(carrier="中通", tracking_no="ZT0001")
                )
                await orders.confirm_receipt(s, w.buyers[0], order.id)
                await orders.record_refund(s, order.id, 2000, "partial refund")
                await ledger.post(s, kind="refund", ref=f"order:{order.id}", idempotency_key="r1",
                                  postings=ledger.refund_postings(2000))  # fmt: skip
            assert await tasks.settle(w.sessionmaker, utcnow()) == 0
            policy = orders.OrderPolicy(platform_commission_share_bp=1000)
            assert await tasks.settle(w.sessionmaker, utcnow() + dt.timedelta(days=16), policy) == 1
            assert await tasks.settle(w.sessionmaker, utcnow() + dt.timedelta(days=17), policy) == 0
            async with transaction(w.sessionmaker) as s:
                balances = {
                    a: await ledger.balance(s, a)
                    for a in (ledger.ESCROW, ledger.PLATFORM_FEE_REVENUE, ledger.PLATFORM_COMMISSION_REVENUE,
                              ledger.shop_payable(w.shops[0]), ledger.creator_payable(w.creator.id))
                }  # fmt: skip
                report = await ledger.verify(s)
            # goods 17700, refund 2000 off goods -> base 15700; fee 5% = 785; commission 20% = 3140,
            # platform keeps 10% of it = 314, creator 2826; shop = 16700 - 785 - 3140 = 12775.
            assert balances == {
                ledger.ESCROW: 0, ledger.PLATFORM_FEE_REVENUE: 785, ledger.PLATFORM_COMMISSION_REVENUE: 314,
                ledger.shop_payable(w.shops[0]): 12775, ledger.creator_payable(w.creator.id): 2826,
            }  # fmt: skip
            assert report.ok, report.problems
        finally:
            await w.engine.dispose()

    run(scenario())


def test_full_refund_before_shipping_returns_stock(db_url: str) -> None:
    async def scenario() -> None:
        w = await build(db_url)
        try:
            order = (await place(w, 0, (w.skus[0], 4), key="r")).orders[0]
            await pay(w, order.id)
            async with transaction(w.sessionmaker) as s:
                await orders.record_refund(s, order.id, order.total_fen - 1)
            assert await stock_of(w, w.skus[0]) == 6  # partial: nothing comes back
            async with transaction(w.sessionmaker) as s:
                with pytest.raises(DomainError) as info:
                    await orders.record_refund(s, order.id, 2)
                assert info.value.code == "refund_exceeds_payment"
            async with transaction(w.sessionmaker) as s:
                refunded = await orders.record_refund(s, order.id, 1)
            assert refunded.status == "refunded" and refunded.refunded_fen == refunded.paid_fen
            assert await stock_of(w, w.skus[0]) == 10
        finally:
            await w.engine.dispose()

    run(scenario())


def test_auto_confirm_after_delivery(db_url: str) -> None:
    async def scenario() -> None:
        w = await build(db_url)
        try:
            order = (await place(w, 0, (w.skus[0], 1), key="a")).orders[0]
            await pay(w, order.id)
            async with transaction(w.sessionmaker) as s:
                await orders.ship_order(
                    s, w.merchants[0], order.id, ShipIn(carrier="韵达", tracking_no="YD0001")
                )
                await orders.mark_delivered(s, w.merchants[0], order.id)
            assert await tasks.auto_confirm(w.sessionmaker, utcnow() + dt.timedelta(days=9)) == 0
            assert await tasks.auto_confirm(w.sessionmaker, utcnow() + dt.timedelta(days=10, minutes=1)) == 1
            async with transaction(w.sessionmaker) as s:
                assert (await orders.get_order(s, w.buyers[0], order.id)).status == "completed"
        finally:
            await w.engine.dispose()

    run(scenario())


def test_ship_by_deadline_and_lateness(db_url: str) -> None:
    async def scenario() -> None:
        w = await build(db_url)
        ship = ShipIn(carrier="顺丰", tracking_no="SF0001")
        try:
            on_time, late, quick = [(await place(w, 0, (w.skus[0], 1), key=k)).orders[0] for k in "abc"]
            before = utcnow()
            for order in (on_time, late):
                await pay(w, order.id)
            async with transaction(w.sessionmaker) as s:  # a shop promising 2 hours (policy)
                paid = await s.get(Order, quick.id)
                await ledger.post(s, kind="capture", ref="test:quick", idempotency_key="capture:test:quick",
                                  postings=ledger.capture_postings(paid.total_fen))  # fmt: skip
                await orders.mark_paid(
                    s, quick.id, paid.total_fen, "test-quick", orders.OrderPolicy(ship_hours=2)
                )
            async with transaction(w.sessionmaker) as s:
                got = {o.id: await s.get(Order, o.id) for o in (on_time, late, quick)}
                for o in got.values():
                    hours = 2 if o.id == quick.id else 48
                    assert o.ship_by == o.paid_at + dt.timedelta(hours=hours) and o.paid_at >= before
                    assert o.shipped_late_minutes is None  # not shipped yet
                # The seller missed the deadline by 90 minutes and a few seconds.
                got[late.id].ship_by = utcnow() - dt.timedelta(minutes=90, seconds=5)
            async with transaction(w.sessionmaker) as s:
                shown = [await orders.ship_order(s, w.merchants[0], o.id, ship) for o in (on_time, late)]
            assert [o.shipped_late_minutes for o in shown] == [0, 91]  # minutes begun count
            async with transaction(w.sessionmaker) as s:
                stored = await s.get(Order, late.id)
                assert stored.status == "shipped" and stored.shipped_late_minutes == 91
        finally:
            await w.engine.dispose()

    run(scenario())


def test_late_minutes_rounds_up_and_needs_a_deadline() -> None:
    due = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)
    assert orders.late_minutes(due, due) == 0
    assert orders.late_minutes(due, due - dt.timedelta(hours=5)) == 0
    assert orders.late_minutes(due, due + dt.timedelta(seconds=1)) == 1
    assert orders.late_minutes(due, due + dt.timedelta(hours=2)) == 120
    assert orders.late_minutes(None, due) is None  # paid before deadlines existed, never backfilled


# --- refunds for a line or for shipping, settlement holds, inspected orders --------------------


async def _second_product(w: World, price: int) -> int:
    """A second product in shop 0 (kids, 5% fee, 20% commission): its SKU id."""
    from trustlive.catalog import service as catalog
    from trustlive.catalog.schemas import ProductIn, SkuIn

    async with transaction(w.sessionmaker) as s:
        category = (
            await catalog.product_detail(s, w.merchants[0], await _product_of(s, w.skus[0]))
        ).category_id
        product = await catalog.create_product(s, w.merchants[0], w.shops[0], ProductIn(
            title="第二件", category_id=category, commission_bp=2000, skus=[SkuIn(price_fen=price, stock=5)],
        ))  # fmt: skip
        await catalog.publish(s, w.merchants[0], product.id)
        return (await catalog.product_detail(s, w.merchants[0], product.id)).skus[0].id


async def _product_of(s, sku_id: int) -> int:  # type: ignore[no-untyped-def]
    from trustlive.catalog.models import Sku

    return await s.scalar(select(Sku.product_id).where(Sku.id == sku_id))


async def _completed(w: World, *items: tuple[int, int], key: str) -> Order:
    order = (await place(w, 0, *items, key=key, source="live_room", creator_id=w.creator.id)).orders[0]
    await pay(w, order.id)
    async with transaction(w.sessionmaker) as s:
        await orders.ship_order(s, w.merchants[0], order.id, ShipIn(carrier="SF", tracking_no=f"SF{key}"))
        await orders.confirm_receipt(s, w.buyers[0], order.id)
    return order


async def _refund(w: World, order_id: int, amount: int, **parts: object) -> None:
    async with transaction(w.sessionmaker) as s:
        await orders.record_refund(s, order_id, amount, "test", **parts)  # type: ignore[arg-type]
        await ledger.post(s, kind="refund", ref=f"order:{order_id}", idempotency_key=f"r:{order_id}:{amount}",
                          postings=ledger.refund_postings(amount))  # fmt: skip


async def _wallets(w: World) -> dict[str, int]:
    async with transaction(w.sessionmaker) as s:
        return {
            "fee": await ledger.balance(s, ledger.PLATFORM_FEE_REVENUE),
            "creator": await ledger.balance(s, ledger.creator_payable(w.creator.id)),
            "shop": await ledger.balance(s, ledger.shop_payable(w.shops[0])),
            "escrow": await ledger.balance(s, ledger.ESCROW),
        }


def test_a_refund_for_a_line_comes_off_that_line_at_settlement(db_url: str) -> None:
    """A returned line loses its fee and commission base; the other line keeps all of its own
    (spread pro rata, the creator would have lost commission on the item the buyer kept)."""

    async def scenario() -> None:
        w = await build(db_url)
        try:
            await set_shipping(w, 0, flat=1000, free_over=None)
            sku_b = await _second_product(w, 10000)
            order = await _completed(w, (w.skus[0], 1), (sku_b, 1), key="L1")
            async with transaction(w.sessionmaker) as s:
                detail = await orders.load_order(s, order.id)
            line_a, line_b = sorted(detail.lines, key=lambda x: x.unit_price_fen)
            # Refused parts change nothing: more than the line, an unknown line, parts above the amount.
            for amount, parts, code in (
                (10001, {"lines": {line_b.id: 10001}}, "refund_exceeds_line"),
                (500, {"lines": {999999: 500}}, "line_not_found"),
                (500, {"lines": {line_a.id: 400}, "shipping_fen": 200}, "validation_error"),
                (1001, {"shipping_fen": 1001}, "refund_exceeds_shipping"),
            ):
                async with transaction(w.sessionmaker) as s:
                    with pytest.raises(DomainError) as info:
                        await orders.record_refund(s, order.id, amount, "x", **parts)  # type: ignore[arg-type]
                    assert info.value.code == code
            async with transaction(w.sessionmaker) as s:
                unchanged = await orders.load_order(s, order.id)
            assert unchanged.refunded_fen == 0 and all(x.refunded_fen == 0 for x in unchanged.lines)
            # The buyer returns line B and gets the shipping back too (the shop's mistake).
            await _refund(w, order.id, 11000, lines={line_b.id: 10000}, shipping_fen=1000)
            async with transaction(w.sessionmaker) as s:
                after = await orders.load_order(s, order.id)
            assert after.refunded_fen == 11000 and after.shipping_refunded_fen == 1000
            assert {x.id: x.refunded_fen for x in after.lines} == {line_a.id: 0, line_b.id: 10000}
            assert await tasks.settle(w.sessionmaker, utcnow() + dt.timedelta(days=16)) == 1
            # Line A alone: base 5900, fee 5% = 295, commission 20% = 1180; escrow 16900 - 11000 = 5900.
            assert await _wallets(w) == {"fee": 295, "creator": 1180, "shop": 5900 - 295 - 1180, "escrow": 0}
        finally:
            await w.engine.dispose()

    run(scenario())


def test_an_unallocated_refund_is_spread_over_what_is_left_of_the_goods(db_url: str) -> None:
    async def scenario() -> None:
        w = await build(db_url)
        try:
            sku_b = await _second_product(w, 10000)
            order = await _completed(w, (w.skus[0], 1), (sku_b, 1), key="L2")
            async with transaction(w.sessionmaker) as s:
                lines = sorted((await orders.load_order(s, order.id)).lines, key=lambda x: x.unit_price_fen)
            await _refund(w, order.id, 2900, lines={lines[0].id: 2900})  # half of line A, for line A
            await _refund(w, order.id, 1300)  # a goodwill refund: pro rata over 3000 (A) and 10000 (B)
            assert await tasks.settle(w.sessionmaker, utcnow() + dt.timedelta(days=16)) == 1
            # A: 3000 - 300 = 2700; B: 10000 - 1000 = 9000. Fees 135 + 450, commissions 540 + 1800.
            escrow = 15900 - 2900 - 1300
            assert await _wallets(w) == {
                "fee": 585,
                "creator": 2340,
                "shop": escrow - 585 - 2340,
                "escrow": 0,
            }
        finally:
            await w.engine.dispose()

    run(scenario())


def test_settlement_waits_while_an_after_sales_request_holds_it(db_url: str) -> None:
    async def scenario() -> None:
        w = await build(db_url)
        try:
            order = await _completed(w, (w.skus[0], 1), key="H1")
            async with transaction(w.sessionmaker) as s:
                await orders.hold_settlement(s, order.id)
                await orders.hold_settlement(s, order.id)  # two requests open
            later = utcnow() + dt.timedelta(days=16)
            assert await tasks.settle(w.sessionmaker, later) == 0
            async with transaction(w.sessionmaker) as s:
                assert await orders.settle_order(s, order.id, later) is False  # the step refuses too
                await orders.release_settlement(s, order.id)
            assert await tasks.settle(w.sessionmaker, later) == 0
            async with transaction(w.sessionmaker) as s:
                await orders.release_settlement(s, order.id)
                await orders.release_settlement(s, order.id)  # never below zero
            assert await tasks.settle(w.sessionmaker, later) == 1
            async with transaction(w.sessionmaker) as s:
                settled = await s.get(Order, order.id)
                assert settled.status == "settled" and settled.settlement_holds == 0
                with pytest.raises(DomainError) as info:
                    await orders.hold_settlement(s, order.id)
                assert info.value.code == "already_settled"
        finally:
            await w.engine.dispose()

    run(scenario())


def test_an_inspected_order_is_received_only_from_the_qc_warehouse(db_url: str) -> None:
    """Shop 1 sells jade (inspection required): its parcel goes to the QC warehouse, so neither
    the buyer's confirmation nor the shop's "delivered" can close the order while it is shipped."""

    async def scenario() -> None:
        w = await build(db_url)
        try:
            order = (await place(w, 0, (w.skus[1], 1), key="Q1")).orders[0]
            await pay(w, order.id)
            async with transaction(w.sessionmaker) as s:
                shipped = await orders.ship_order(
                    s, w.merchants[1], order.id, ShipIn(carrier="SF", tracking_no="SFQ1")
                )
                assert shipped.requires_inspection
            for actor, call, code in (
                (w.buyers[0], orders.confirm_receipt, "awaiting_inspection"),
                (w.merchants[1], orders.mark_delivered, "inspection_route"),
            ):
                async with transaction(w.sessionmaker) as s:
                    with pytest.raises(DomainError) as info:
                        await call(s, actor, order.id)
                    assert info.value.code == code
            async with transaction(w.sessionmaker) as s:
                assert (await s.get(Order, order.id)).status == "shipped"
                with pytest.raises(DomainError) as info:  # ops too: the item may still be at the lab
                    await orders.mark_delivered(s, w.ops, order.id)
                assert info.value.code == "inspection_route"
            async with transaction(w.sessionmaker) as s:
                # Once fulfillment has checked the warehouse sent it on (fulfillment.service.deliver).
                assert (
                    await orders.mark_delivered(s, w.ops, order.id, inspected_ok=True)
                ).status == "delivered"
                assert (await orders.confirm_receipt(s, w.buyers[0], order.id)).status == "completed"
        finally:
            await w.engine.dispose()

    run(scenario())


# --- refunds and settlement racing (PostgreSQL: SQLite serialises writers at BEGIN IMMEDIATE) ---


def _postgres_only(db_url: str) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite serialises writers (BEGIN IMMEDIATE): this race is PostgreSQL's")


def test_a_refund_after_settlement_committed_is_refused(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """record_refund read the order as completed; settlement commits before its update: the refund
    must not come out of escrow that has been split."""
    _postgres_only(db_url)
    from trustlive.orders import repository as orders_repo

    async def scenario() -> None:
        w = await build(db_url)
        try:
            order = await _completed(w, (w.skus[0], 1), key="R1")
            later = utcnow() + dt.timedelta(days=16)
            real = orders_repo.add_refund

            async def settle_first(session, order_id, amount):  # type: ignore[no-untyped-def]
                async with transaction(w.sessionmaker) as other:
                    assert await orders.settle_order(other, order_id, later)
                return await real(session, order_id, amount)

            monkeypatch.setattr(orders_repo, "add_refund", settle_first)
            async with transaction(w.sessionmaker) as s:
                with pytest.raises(DomainError) as info:
                    await orders.record_refund(s, order.id, 1000, "goodwill")
            assert info.value.code == "not_refundable"
            async with transaction(w.sessionmaker) as s:
                row = await s.get(Order, order.id)
                assert (row.status, row.refunded_fen) == ("settled", 0)
        finally:
            await w.engine.dispose()

    run(scenario())


def test_settlement_splits_again_when_a_refund_commits_after_its_read(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """settle_order computed its split; a refund commits before its update: that split is stale,
    so the order is left for the next pass, which splits what is really left."""
    _postgres_only(db_url)
    from trustlive.orders import repository as orders_repo

    async def scenario() -> None:
        w = await build(db_url)
        try:
            order = await _completed(w, (w.skus[0], 1), key="R2")
            later = utcnow() + dt.timedelta(days=16)
            real = orders_repo.transition
            fired: list[int] = []

            async def refund_first(session, order_id, *args, **kwargs):  # type: ignore[no-untyped-def]
                if args and args[1] == "settled" and not fired:
                    fired.append(order_id)
                    await _refund(w, order_id, 1000)
                return await real(session, order_id, *args, **kwargs)

            monkeypatch.setattr(orders_repo, "transition", refund_first)
            async with transaction(w.sessionmaker) as s:
                assert await orders.settle_order(s, order.id, later) is False
            monkeypatch.setattr(orders_repo, "transition", real)
            assert await tasks.settle(w.sessionmaker, later) == 1
            # 5900 paid, 1000 refunded: fee 5% of 4900 = 245, commission 20% = 980, shop the rest.
            assert await _wallets(w) == {"fee": 245, "creator": 980, "shop": 4900 - 245 - 980, "escrow": 0}
        finally:
            await w.engine.dispose()

    run(scenario())


def test_a_settlement_share_moves_money_on_in_the_settlement_itself(db_url: str) -> None:
    """``add_settlement_share``: another domain's postings (here: half the shop's share of each line
    to the creator) join the settlement's one ledger transaction, computed from the per-line split."""
    seen: list[orders.Split] = []

    async def half_to_creator(session, order, split):  # type: ignore[no-untyped-def]
        seen.append(split)
        moved = sum(line.shop_fen // 2 for line in split.lines)
        return [(ledger.shop_payable(order.shop_id), -moved), (ledger.creator_payable(w.creator.id), moved)]

    async def scenario() -> None:
        nonlocal w
        w = await build(db_url)
        orders.add_settlement_share("test_half", half_to_creator)
        try:
            order = (
                await place(w, 0, (w.skus[0], 2), key="share", source="live_room", creator_id=w.creator.id)
            ).orders[0]
            await pay(w, order.id)
            async with transaction(w.sessionmaker) as s:
                await orders.ship_order(
                    s, w.merchants[0], order.id, ShipIn(carrier="中通", tracking_no="ZT0009")
                )
                await orders.confirm_receipt(s, w.buyers[0], order.id)
            assert await tasks.settle(w.sessionmaker, utcnow() + dt.timedelta(days=16)) == 1
            [split] = seen
            [line] = split.lines
            # goods 11800: fee 5% = 590, commission 20% = 2360, shop 8850 of the line; half of it moves.
            assert (line.base_fen, line.fee_fen, line.creator_fen, line.shop_fen) == (11800, 590, 2360, 8850)
            async with transaction(w.sessionmaker) as s:
                shop = await ledger.balance(s, ledger.shop_payable(w.shops[0]))
                creator = await ledger.balance(s, ledger.creator_payable(w.creator.id))
                settlements = await ledger.statement(s, ledger.shop_payable(w.shops[0]))
                report = await ledger.verify(s)
            assert (shop, creator) == (8850 - 4425, 2360 + 4425)
            assert len(settlements) == 1 and report.ok, report.problems
        finally:
            orders._settlement_shares.pop("test_half", None)
            await w.engine.dispose()

    w: World
    run(scenario())
