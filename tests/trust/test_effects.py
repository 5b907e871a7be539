"""What the scores decide elsewhere (docs/scores.md, "Effects"): the shop's settlement delay tier,
the flash-sale restriction for late shipping, alliance eligibility of creators, and the feed's
quality multiplier. On SQLite and PostgreSQL.

Scores come two ways: built from real orders and the full recompute where a handful of orders
makes the case (a perfect shop of 30 orders, a shop shipping late), and written straight into
``trust_scores`` where a precise figure (4.60, 4.20, 3.50) would take hundreds of crafted orders.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from tests.helpers import run
from tests.live.util import LiveWorld, go_live, live_world, schedule
from tests.orders.world import World, build
from tests.reviews.util import advance, placed
from trustlive.catalog import service as catalog
from trustlive.db import transaction, utcnow
from trustlive.errors import DomainError, ValidationFailed
from trustlive.live import service as live
from trustlive.live.models import FlashSale, LiveSession
from trustlive.live.schemas import FeaturedIn, FlashSaleIn
from trustlive.orders import service as orders
from trustlive.orders.models import Order
from trustlive.orders.schemas import ShipIn
from trustlive.trust import scoring
from trustlive.trust import service as trust
from trustlive.trust.models import TrustScore


async def put_score(sm, kind: str, entity_id: int, score_c: int | None, *, restricted: bool = False) -> None:  # type: ignore[no-untyped-def]
    """A score row as the recompute would leave it, with the figure given (None: "new")."""
    async with transaction(sm) as s:
        await s.merge(
            TrustScore(
                entity_type=kind,
                entity_id=entity_id,
                category_id=0,
                score_c=score_c,
                product_c=score_c,
                logistics_c=score_c,
                aftersales_c=score_c,
                claims_c=None,
                **{name: 0 for name in scoring.COUNTS},
                flash_sale_restricted=restricted,
                computed_at=utcnow(),
            )  # fmt: skip
        )


async def drop_scores(sm) -> None:  # type: ignore[no-untyped-def]
    async with transaction(sm) as s:
        for row in await s.scalars(select(TrustScore)):
            await s.delete(row)


async def recompute(sm, now: dt.datetime | None = None) -> None:  # type: ignore[no-untyped-def]
    await trust.rebuild_facts(sm)
    await trust.recompute_all(sm, now=now)


async def code_of(sm, call) -> str:  # type: ignore[no-untyped-def]
    try:
        async with transaction(sm) as s:
            await call(s)
    except DomainError as err:
        return err.code
    return "ok"


# --- settlement delay -------------------------------------------------------------------------


async def complete_one(w: World, key: str) -> dt.timedelta:
    """A new order of shop 0 taken to completion: how long its escrow waits (settle_at - completed_at)."""
    order_id = await placed(w, 0, key)
    await advance(w, order_id, "completed")
    async with transaction(w.sessionmaker) as s:
        order = await orders.load_order(s, order_id)
    assert order.settle_at is not None and order.completed_at is not None
    return order.settle_at - order.completed_at


def test_settlement_delay_follows_the_shop_score_tier(db_url: str) -> None:
    async def scenario() -> None:
        w = await build(db_url, buyers=1, stock=20)
        try:
            shop, owner = w.shops[0], w.merchants[0]
            effects = trust.config().effects
            new_days = effects["settlement_new_days"]
            # (score written, tier): the defaults are >= 4.50 -> 7 days, >= 4.00 -> 15, else 20.
            cases = [(460, 7), (450, 7), (420, 15), (400, 15), (399, 20), (350, 20), (None, new_days)]
            for i, (score_c, days) in enumerate(cases):
                await put_score(w.sessionmaker, "shop", shop, score_c)
                async with transaction(w.sessionmaker) as s:
                    assert await trust.settlement_delay_days(s, shop) == days, score_c
                    # What the shop's terms say is what settlement applies, to the owner and to anyone.
                    assert (await orders.get_shop_terms(s, shop, owner)).settlement_delay_days == days
                    assert (await orders.get_shop_terms(s, shop)).settlement_delay_days == days
                    assert (await trust.breakdown(s, owner, "shop", shop)).settlement_days == days
                # The kids' category returns within 7 days: settlement waits for the longer of the two.
                assert await complete_one(w, f"tier-{i}") == dt.timedelta(days=max(7, days)), score_c
            # A shop the scores have never seen is "new".
            await drop_scores(w.sessionmaker)
            async with transaction(w.sessionmaker) as s:
                assert await trust.settlement_delay_days(s, shop) == new_days
                assert (await orders.get_shop_terms(s, shop)).settlement_delay_days == new_days
            assert await complete_one(w, "unseen") == dt.timedelta(days=max(7, new_days))
        finally:
            await w.engine.dispose()

    run(scenario())


def test_a_perfect_shop_earns_the_fastest_tier_from_real_orders(db_url: str) -> None:
    """30 orders shipped on time and delivered, nothing returned or disputed: after the full
    recompute the shop scores 5.00 and is settled after 7 days instead of a new shop's delay."""

    async def scenario() -> None:
        w = await build(db_url, buyers=1, stock=40)
        try:
            shop = w.shops[0]
            minimum = trust.config().default.min_orders["shop"]
            for i in range(minimum):
                await advance(w, await placed(w, 0, f"o{i}"), "delivered")
            async with transaction(w.sessionmaker) as s:
                assert (await trust.score_of(s, "shop", shop)).status == "new"
                assert (
                    await trust.settlement_delay_days(s, shop)
                    == trust.config().effects["settlement_new_days"]
                )
            await recompute(w.sessionmaker)
            async with transaction(w.sessionmaker) as s:
                score = await trust.score_of(s, "shop", shop)
                assert (score.status, score.score, score.orders_90) == ("scored", "5.00", minimum)
                assert await trust.settlement_delay_days(s, shop) == 7
                assert (await orders.get_shop_terms(s, shop)).settlement_delay_days == 7
            assert await complete_one(w, "after") == dt.timedelta(days=7)
        finally:
            await w.engine.dispose()

    run(scenario())


# --- flash-sale restriction -------------------------------------------------------------------


async def ship_late(lw: LiveWorld, count: int) -> None:
    """``count`` orders of shop 0 paid and shipped a day after their ship-by deadline."""
    w = lw.w
    for i in range(count):
        order_id = await placed(w, i % len(w.buyers), f"late{i}")
        async with transaction(w.sessionmaker) as s:
            await s.execute(
                update(Order).where(Order.id == order_id).values(ship_by=utcnow() - dt.timedelta(days=1))
            )
        async with transaction(w.sessionmaker) as s:
            await orders.ship_order(
                s, w.merchants[0], order_id, ShipIn(carrier="SF", tracking_no=f"SF{order_id:06d}")
            )


async def start_sale(lw: LiveWorld, room: int) -> str:
    return await code_of(
        lw.sm, lambda s: live.start_flash_sale(s, lw.creator, room, FlashSaleIn(lw.w.skus[0], 2, 1, 60))
    )


async def sales(lw: LiveWorld) -> int:
    async with transaction(lw.sm) as s:
        return int(await s.scalar(select(func.count()).select_from(FlashSale)) or 0)


def test_late_shipping_blocks_new_flash_sales_until_lifted(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        lw = await live_world(db_url, tmp_path, buyers=3, stock=20)
        try:
            shop, other_shop = lw.w.shops
            await ship_late(lw, trust.config().effects["flash_sale_min_due"])
            await recompute(lw.sm)
            async with transaction(lw.sm) as s:
                assert await trust.flash_sales_blocked(s, shop)
                assert not await trust.flash_sales_blocked(s, other_shop)
                assert (await trust.breakdown(s, lw.w.merchants[0], "shop", shop)).flash_sale_restricted
            room = await go_live(lw)
            async with transaction(lw.sm) as s:
                await live.pin(s, lw.creator, room, lw.products[0])
            assert await start_sale(lw, room) == "flash_sale_restricted"
            assert await sales(lw) == 0  # nothing written
            # A week on the late shipments have left the 7-day window: the restriction lifts.
            await recompute(lw.sm, now=utcnow() + dt.timedelta(days=8))
            async with transaction(lw.sm) as s:
                assert not await trust.flash_sales_blocked(s, shop)
            assert await start_sale(lw, room) == "ok"
            assert await sales(lw) == 1
        finally:
            await lw.w.engine.dispose()

    run(scenario())


def test_the_restriction_state_alone_decides(db_url: str, tmp_path: Path) -> None:
    """Hysteresis lives in the stored flag: while it is set sales are refused whatever the score."""

    async def scenario() -> None:
        lw = await live_world(db_url, tmp_path)
        try:
            shop = lw.w.shops[0]
            room = await go_live(lw)
            async with transaction(lw.sm) as s:
                await live.pin(s, lw.creator, room, lw.products[0])
            await put_score(lw.sm, "shop", shop, 480, restricted=True)
            assert await start_sale(lw, room) == "flash_sale_restricted"
            await put_score(lw.sm, "shop", shop, 480, restricted=False)
            assert await start_sale(lw, room) == "ok"
        finally:
            await lw.w.engine.dispose()

    run(scenario())


# --- alliance eligibility ---------------------------------------------------------------------


async def sessions(lw: LiveWorld) -> int:
    async with transaction(lw.sm) as s:
        return int(await s.scalar(select(func.count()).select_from(LiveSession)) or 0)


def test_alliance_products_need_an_eligible_creator(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        lw = await live_world(db_url, tmp_path)
        try:
            creator = lw.creator
            own, alliance = lw.products  # the creator joins shop 0's staff below; shop 1 is another's
            async with transaction(lw.sm) as s:
                await catalog.add_staff(s, lw.w.merchants[0], lw.w.shops[0], creator.username)
            minimum = trust.config().effects["alliance_min"]

            await put_score(lw.sm, "creator", creator.id, minimum - 1)
            async with transaction(lw.sm) as s:
                assert not await trust.alliance_eligible(s, creator.id)
            with pytest.raises(DomainError) as refused:
                await schedule(lw, products=[own, alliance])
            assert (refused.value.status_code, refused.value.code) == (409, "alliance_not_eligible")
            assert [f.field for f in refused.value.fields] == ["product_ids[1]"]
            assert await sessions(lw) == 0  # nothing written
            # Their own shop's products are always theirs to sell.
            room = await schedule(lw, products=[own])
            for call in (
                lambda s: live.set_featured(s, creator, room, FeaturedIn([own, alliance])),  # type: ignore[arg-type]
                lambda s: live.feature_product(s, creator, room, alliance),
            ):
                assert await code_of(lw.sm, call) == "alliance_not_eligible"
            async with transaction(lw.sm) as s:
                assert [c.id for c in await live.featured_cards(s, creator, room)] == [own]

            await put_score(lw.sm, "creator", creator.id, minimum)  # at the threshold: eligible
            assert (
                await code_of(
                    lw.sm, lambda s: live.set_featured(s, creator, room, FeaturedIn([own, alliance]))
                )
                == "ok"
            )  # type: ignore[arg-type]
            assert await schedule(lw, products=[alliance])

            await put_score(lw.sm, "creator", creator.id, None)  # "new": eligible by default
            assert await schedule(lw, products=[alliance])
            await drop_scores(lw.sm)  # never scored at all: the same
            assert await schedule(lw, products=[alliance])
        finally:
            await lw.w.engine.dispose()

    run(scenario())


def test_new_creators_can_be_kept_out_of_the_alliance_by_configuration(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        lw = await live_world(db_url, tmp_path)
        before = trust.config()
        try:
            trust.configure(scoring.load({"effects": {"alliance_allow_new": False, "alliance_min": 450}}))
            assert await code_of(lw.sm, lambda s: live.create_session(
                s, lw.creator, _session_in([lw.products[1]]), None, lw.settings)) == "alliance_not_eligible"  # fmt: skip
            await put_score(lw.sm, "creator", lw.creator.id, 440)
            async with transaction(lw.sm) as s:
                assert not await trust.alliance_eligible(s, lw.creator.id)
            await put_score(lw.sm, "creator", lw.creator.id, 450)
            assert await schedule(lw, products=[lw.products[1]])
        finally:
            trust.configure(before)
            await lw.w.engine.dispose()

    run(scenario())


def _session_in(products: list[int]):  # type: ignore[no-untyped-def]
    from trustlive.live.schemas import SessionIn

    return SessionIn(title="和田玉专场", scheduled_at=utcnow() + dt.timedelta(hours=1), product_ids=products)


# --- quality multiplier -----------------------------------------------------------------------


def test_quality_multiplier_at_the_curve_knots_and_for_new(db_url: str) -> None:
    async def scenario() -> None:
        w = await build(db_url, buyers=1)
        try:
            effects = trust.config().effects
            knots = {int(round(x * 100)): y for x, y in effects["quality_curve"]}
            assert knots == {0: 0.5, 300: 0.8, 400: 1.0, 450: 1.1, 500: 1.2}  # the documented defaults
            between = {150: 0.65, 350: 0.9, 425: 1.05, 475: 1.15, 462: 1.124}
            for kind in ("shop", "product", "creator"):
                for entity_id, (score_c, expected) in enumerate({**knots, **between}.items(), start=100):
                    await put_score(w.sessionmaker, kind, entity_id, score_c)
                    async with transaction(w.sessionmaker) as s:
                        got = await trust.quality_multiplier(s, kind, entity_id)
                    assert got == pytest.approx(expected, abs=1e-9), (kind, score_c)
                await put_score(w.sessionmaker, kind, 1, None)
                async with transaction(w.sessionmaker) as s:
                    assert await trust.quality_multiplier(s, kind, 1) == effects["new_multiplier"] == 1.0
                    assert await trust.quality_multiplier(s, kind, 999_999) == 1.0  # never scored
                    # Many at once: the same values, the unscored neutral.
                    ids = [1, 999_999, *range(100, 100 + len(knots) + len(between))]
                    each = {i: await trust.quality_multiplier(s, kind, i) for i in ids}
                    assert await trust.quality_multipliers(s, kind, [*ids, 1]) == each
            async with transaction(w.sessionmaker) as s:
                with pytest.raises(ValidationFailed):
                    await trust.quality_multiplier(s, "bogus", 1)
        finally:
            await w.engine.dispose()

    run(scenario())
