"""The demo's live-room stories (sim/stories.py): Lao Du's ended appraisal night with its replay,
雷小石's plaque appraised on air, Teacher Xu's session scheduled in an hour; played twice."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from sqlalchemy import select

from tests.helpers import make_settings, run
from trustlive.accounts import service as accounts
from trustlive.consignment import service as consignment
from trustlive.db import create_engine, create_sessionmaker, transaction, utcnow
from trustlive.live import service as live
from trustlive.live.models import LiveOrder
from trustlive.orders.models import Order, OrderLine
from trustlive.sim import demo, stories


async def _seed(url: str, tmp_path: Path) -> str:
    engine = create_engine(url)
    try:
        return await demo.seed_demo(
            create_sessionmaker(engine),
            media_dir=tmp_path / "media",
            buyers=3,
            settings=make_settings(url, tmp_path),
        )
    finally:
        await engine.dispose()


async def _live_states(url: str) -> dict[str, Any]:
    """What the live stories left, read through the services as the people in them would."""
    engine = create_engine(url)
    try:
        async with transaction(create_sessionmaker(engine)) as s:
            laodu = await accounts.acting_as(s, stories.APPRAISER)
            xu = await accounts.acting_as(s, stories.UPCOMING_CREATOR)
            lei = await accounts.acting_as(s, stories.CONSIGNOR)
            ended = await live.list_my_sessions(s, laodu, before_id=None, limit=100)
            upcoming = await live.list_my_sessions(s, xu, before_id=None, limit=100)
            night = ended[0]
            replay = await live.replay(s, laodu, night.id)
            comments = await live.list_comments(s, None, night.id, before_id=None, limit=100)
            lines = await s.scalars(select(LiveOrder).where(LiveOrder.session_id == night.id))
            order_ids = [line.order_id for line in lines]
            placed = (
                await s.execute(
                    select(OrderLine.source, OrderLine.creator_id, Order.status, Order.buyer_id)
                    .join(Order, Order.id == OrderLine.order_id)
                    .where(Order.id.in_(order_ids))
                )
            ).all()
            items = await consignment.my_items(s, lei, limit=100)
            queue = await consignment.queue(s, laodu, limit=100)
            public = await live.list_public_sessions(s, None, status="scheduled", before_id=None, limit=50)
            return {
                "ended": [(x.title, x.status, x.end_reason) for x in ended],
                "upcoming": [(x.id, x.title, x.status, x.scheduled_at, len(x.product_ids)) for x in upcoming],
                "public_scheduled": [x.id for x in public],
                "night_id": night.id,
                "featured": len(night.product_ids),
                "stats": replay.stats,
                "sales": sorted(
                    (x.order_id, x.quantity, x.flash_sale_id is not None) for x in replay.sales or []
                ),
                "flash": [(x.status, x.sold, x.allocation) for x in replay.flash_sales],
                "comments": sorted((c.display_name, c.text) for c in comments),
                "orders": sorted(
                    (source, creator == laodu.id, status, buyer) for source, creator, status, buyer in placed
                ),
                "items": [
                    (i.title, i.status, i.valuation_fen, i.grade, i.notes, i.session_id, len(i.photos))
                    for i in items
                ],
                "queue": [(i.title, i.status) for i in queue],
            }
    finally:
        await engine.dispose()


def test_the_live_stories_play_once(db_url: str, tmp_path: Path) -> None:
    run(_seed(db_url, tmp_path))
    first = run(_live_states(db_url))

    # Lao Du's appraisal night has ended; its replay has the room's figures, comments and sales.
    assert first["ended"] == [(stories.APPRAISAL_NIGHT, "ended", "creator")]
    assert first["featured"] == len(stories.APPRAISAL_FEATURED)
    stats = first["stats"]
    people = len({u for u, _ in stories.ROOM_COMMENTS})
    assert stats.comments == len(stories.ROOM_COMMENTS) == len(first["comments"])
    assert stats.entries == people and stats.peak_viewers == people and stats.likes == 10 * people
    assert stats.orders == 2 and stats.units == 2 and stats.sales_fen > 0
    assert [with_sale for _, _, with_sale in first["sales"]] == [True, False]  # one in the flash sale
    assert len(first["flash"]) == 1
    status, sold, allocation = first["flash"][0]
    assert status == "ended" and sold == 1 and allocation >= 1  # ending the session ended it
    assert ("雷小石", "杜哥，牌子是我爷爷留下的，麻烦给看看值多少。") in first["comments"]
    # Both orders came from the room, attributed to Lao Du, and are paid (he ships them to QC).
    assert [o[:3] for o in first["orders"]] == [("live_room", True, "paid")] * 2

    # 雷小石's plaque was appraised during that session and waits for his answer.
    assert first["items"] == [(
        stories.CONSIGNED.title, "appraised", stories.APPRAISAL.valuation_fen, stories.APPRAISAL.grade,
        stories.APPRAISAL.notes, first["night_id"], 1,
    )]  # fmt: skip
    assert first["queue"] == [(stories.CONSIGNED.title, "appraised")]

    # Teacher Xu's next session is scheduled about an hour ahead, listed on /live.
    [(upcoming_id, title, status, when, featured)] = first["upcoming"]
    assert (title, status) == (stories.UPCOMING, "scheduled") and featured >= 1
    assert dt.timedelta(minutes=50) < when - utcnow() <= dt.timedelta(hours=1)
    assert first["public_scheduled"] == [upcoming_id]

    assert "created now: nothing" in run(_seed(db_url, tmp_path))
    assert run(_live_states(db_url)) == first


def test_the_scheduled_session_starts_from_the_console(db_url: str, tmp_path: Path) -> None:
    """Teacher Xu can start the scheduled session (nothing else of hers is live)."""
    run(_seed(db_url, tmp_path))
    settings = make_settings(db_url, tmp_path)

    async def start() -> str:
        engine = create_engine(db_url)
        try:
            async with transaction(create_sessionmaker(engine)) as s:
                xu = await accounts.acting_as(s, stories.UPCOMING_CREATOR)
                [room] = await live.list_my_sessions(s, xu, status="scheduled", before_id=None, limit=10)
                return (await live.start_session(s, xu, room.id, settings)).status
        finally:
            await engine.dispose()

    assert run(start()) == "live"
