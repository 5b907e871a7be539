"""The demo's past trade (sim/history.py): after seeding, the demo shops and creators have real
trust scores that differ for reasons the drill-down shows, the moved timeline is coherent, the
ledger is intact, and seeding again changes nothing."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from tests.helpers import make_settings, run
from trustlive.accounts import service as accounts
from trustlive.aftersales.models import AftersalesRequest
from trustlive.catalog import service as catalog
from trustlive.db import create_engine, create_sessionmaker, transaction, utcnow
from trustlive.fulfillment.models import QcCase, Shipment
from trustlive.ledger import service as ledger
from trustlive.orders.models import Checkout, Order, OrderEvent
from trustlive.reviews.models import Review
from trustlive.sim import demo, history
from trustlive.trust import service as trust
from trustlive.trust.models import Complaint

BUYERS = history.FIRST_BUYER + history.BUYERS - 1  # the history's last buyer, and no more


async def _seed(url: str, tmp_path: Path) -> str:
    engine = create_engine(url)
    try:
        return await demo.seed_demo(
            create_sessionmaker(engine),
            media_dir=tmp_path / "media",
            buyers=BUYERS,
            settings=make_settings(url, tmp_path),
        )
    finally:
        await engine.dispose()


async def _latest(s: Any, ours: Any) -> dt.datetime:
    """The latest moment recorded about the history's orders, outside the money rows (which keep
    the moments they were made) and deadlines (which may lie ahead)."""
    columns = [
        (OrderEvent.at, OrderEvent.order_id), (Shipment.created_at, Shipment.order_id),
        (Shipment.stage_at, Shipment.order_id), (Shipment.delivered_at, Shipment.order_id),
        (QcCase.created_at, QcCase.order_id), (QcCase.received_at, QcCase.order_id),
        (QcCase.inspected_at, QcCase.order_id), (QcCase.forwarded_at, QcCase.order_id),
        (QcCase.returned_at, QcCase.order_id), (QcCase.updated_at, QcCase.order_id),
        (Review.created_at, Review.order_id), (Review.replied_at, Review.order_id),
        (AftersalesRequest.updated_at, AftersalesRequest.order_id),
        (Complaint.decided_at, Complaint.order_id), (Order.updated_at, Order.id),
    ]  # fmt: skip
    found = [
        await s.scalar(select(func.max(column)).where(order_id.in_(ours))) for column, order_id in columns
    ]
    return max(x for x in found if x is not None)


async def _state(url: str) -> dict[str, Any]:
    """Scores, drill-downs and the history's rows, read through the services where they exist."""
    engine = create_engine(url)
    try:
        async with transaction(create_sessionmaker(engine)) as s:
            jade = await catalog.get_shop_by_slug(s, history.JADE)
            kids = await catalog.get_shop_by_slug(s, history.KIDS)
            laodu = await accounts.acting_as(s, "laodu")
            xu = await accounts.acting_as(s, "teacher_xu")
            kids_down = await trust.breakdown(s, xu, "shop", kids.id)
            xu_down = await trust.breakdown(s, xu, "creator", xu.id)
            negative = await trust.indicator_lines(
                s, xu, "shop", kids.id, "negative_review_rate", before=None, limit=20
            )
            ours = select(Order.id).join(Checkout, Checkout.id == Order.checkout_id)
            ours = ours.where(Checkout.idempotency_key.like("history:%"))
            order_rows = (await s.execute(select(Order).where(Order.id.in_(ours)))).scalars().all()
            return {
                "jade": await trust.score_of(s, "shop", jade.id),
                "kids": await trust.score_of(s, "shop", kids.id),
                "laodu": await trust.score_of(s, "creator", laodu.id),
                "xu": await trust.score_of(s, "creator", xu.id),
                "kids_indicators": {i.key: i for d in kids_down.dimensions for i in d.indicators},
                "xu_indicators": {i.key: i for d in xu_down.dimensions for i in d.indicators},
                "negative_lines": negative.items,
                "orders": [
                    (
                        o.status,
                        o.created_at,
                        o.paid_at,
                        o.ship_by,
                        o.shipped_at,
                        o.delivered_at,
                        o.completed_at,
                    )
                    for o in order_rows
                ],
                "late": sum(1 for o in order_rows if o.shipped_late_minutes),
                "latest": await _latest(s, ours),
                "reviews": sorted(
                    (r.created_at, r.rating_product)
                    for r in (await s.execute(select(Review).where(Review.order_id.in_(ours)))).scalars()
                ),
                "requests": (
                    await s.execute(
                        select(
                            AftersalesRequest.reason,
                            AftersalesRequest.status,
                            AftersalesRequest.created_at,
                            AftersalesRequest.resolved_at,
                        ).where(AftersalesRequest.order_id.in_(ours))
                    )
                ).all(),
                "complaints": (await s.execute(select(Complaint.status, Complaint.creator_id))).all(),
                "ledger": await ledger.verify(s),
            }
    finally:
        await engine.dispose()


def test_the_demo_shops_have_scores_from_their_past(db_url: str, tmp_path: Path) -> None:
    summary = run(_seed(db_url, tmp_path))
    assert f"{len(history.plan())} orders of past trade" in summary
    first = run(_state(db_url))

    # 老杜's jade shop: scored, a trusted shop; 许老师's kids' shop scored lower, both with enough orders.
    jade, kids = first["jade"], first["kids"]
    assert jade.status == "scored" and jade.trusted and jade.score_c >= 450
    assert jade.orders_90 >= jade.min_orders
    assert kids.status == "scored" and not kids.trusted
    assert 300 <= kids.score_c < jade.score_c - 50
    # Why it is lower, as the drill-down explains: 1-2 star reviews, quality refunds, late parcels.
    indicators = first["kids_indicators"]
    assert indicators["negative_review_rate"].applies and indicators["negative_review_rate"].numerator >= 1
    assert first["negative_lines"] and all(line.counts_against for line in first["negative_lines"])
    assert indicators["quality_refund_rate"].numerator == 2
    on_time = indicators["on_time_shipping_rate"]
    assert on_time.numerator < on_time.denominator
    assert first["late"] == 5

    # Both creators sold enough in their rooms to be scored; 许老师's upheld complaint counts.
    assert first["laodu"].status == "scored" and first["xu"].status == "scored"
    assert first["xu"].score_c < first["laodu"].score_c
    assert first["xu_indicators"]["false_claim_rate"].numerator == 1
    assert first["complaints"] == [("upheld", first["xu"].entity_id)]

    # The moved timeline holds together, spread over the last three months, nothing in the future.
    now = utcnow()
    spans = []
    for status, created, paid, ship_by, shipped, delivered, completed in first["orders"]:
        assert created < paid < ship_by and paid < shipped
        if status == "refunded":  # the jadeite bangle the lab failed
            assert delivered is None
            continue
        assert shipped < delivered < completed < now
        spans.append((now - paid).days)
    assert min(spans) < 10 and max(spans) > 80
    assert first["latest"] < now - dt.timedelta(hours=1)
    assert all(created < now for created, _ in first["reviews"])
    assert {stars for _, stars in first["reviews"]} >= {1, 2, 5}
    assert (
        sorted((reason, status) for reason, status, _, _ in first["requests"])
        == [("quality", "refunded")] * 2
    )
    assert all(opened < resolved < now for _, _, opened, resolved in first["requests"])

    # Money moved only through the services: the ledger checks out.
    assert first["ledger"].ok, first["ledger"].problems

    # Seeding again finds the history played: nothing new, the same scores.
    assert "created now: nothing" in run(_seed(db_url, tmp_path))
    again = run(_state(db_url))
    assert again["orders"] == first["orders"] and again["reviews"] == first["reviews"]
    assert (again["jade"].score_c, again["kids"].score_c) == (jade.score_c, kids.score_c)
    assert again["ledger"].ok


def test_a_small_world_gets_no_history(db_url: str, tmp_path: Path) -> None:
    """Too few generated buyers for the history's: it is skipped, the stories alone are played."""
    engine = create_engine(db_url)

    async def go() -> int:
        try:
            sm = create_sessionmaker(engine)
            await demo.seed_demo(sm, media_dir=tmp_path / "media", buyers=3)
            return await history.play_history(sm, make_settings(db_url, tmp_path))
        finally:
            await engine.dispose()

    assert run(go()) == 0
