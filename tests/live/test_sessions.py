"""Sessions: schedule, edit, start, end, cancel; one live session per creator; the sweeper; the
replay record. Through the services, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from tests.live.util import another_creator, buy, go_live, live_world, row, schedule
from trustlive.db import transaction, utcnow
from trustlive.errors import DomainError
from trustlive.events import OutboxEvent
from trustlive.live import service as live
from trustlive.live import tasks
from trustlive.live.schemas import SessionIn, SessionPatch


def code_of(coro) -> str:  # type: ignore[no-untyped-def]
    async def inner() -> str:
        try:
            await coro
        except DomainError as err:
            return err.code
        return "ok"

    return inner()  # type: ignore[return-value]


async def topics(lw) -> list[str]:  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    async with transaction(lw.sm) as s:
        return list(await s.scalars(select(OutboxEvent.topic).order_by(OutboxEvent.id)))


def test_lifecycle_urls_and_stream_key(db_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> None:
        lw = await live_world(db_url, tmp_path)
        try:
            sid = await schedule(lw)
            async with transaction(lw.sm) as s:
                out = await live.get_session(s, None, sid)
            assert out.status == "scheduled" and out.product_ids == lw.products and out.stream is None
            async with transaction(lw.sm) as s:
                started = await live.start_session(s, lw.creator, sid, lw.settings)
            assert started.status == "live" and started.started_at is not None
            assert started.stream is not None and len(started.stream.stream_key) >= 24
            assert started.stream.ingest_url.endswith(started.stream.stream_key)
            assert started.playback_url == f"http://127.0.0.1:8080/hls/{sid}.m3u8"
            # The key is the creator's secret: nobody else sees it.
            async with transaction(lw.sm) as s:
                public = await live.get_session(s, lw.w.buyers[0], sid)
                anonymous = await live.get_session(s, None, sid)
            assert public.stream is None and anonymous.stream is None and public.playback_url
            async with transaction(lw.sm) as s:
                ended = await live.end_session(s, lw.creator, sid)
            assert ended.status == "ended" and ended.end_reason == "creator" and ended.stream is None
            r = await row(lw, sid)
            assert r.stream_key is None and r.ended_at is not None
            assert {"live.session_started", "live.session_ended"} <= set(await topics(lw))
            # Ended is final.
            async with transaction(lw.sm) as s:
                assert await code_of(live.start_session(s, lw.creator, sid, lw.settings)) == "not_scheduled"
            async with transaction(lw.sm) as s:
                assert await code_of(live.end_session(s, lw.creator, sid)) == "not_live"
        finally:
            await lw.w.engine.dispose()

    asyncio.run(scenario())


def test_one_live_session_per_creator_even_racing(db_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> None:
        lw = await live_world(db_url, tmp_path)
        try:
            ids = [await schedule(lw) for _ in range(4)]

            async def start(sid: int) -> str:
                async with transaction(lw.sm) as s:
                    return await code_of(live.start_session(s, lw.creator, sid, lw.settings))

            results = await asyncio.gather(*(start(i) for i in ids))
            assert results.count("ok") == 1 and set(results) == {"ok", "already_live"}
            statuses = [(await row(lw, i)).status for i in ids]
            assert statuses.count("live") == 1 and statuses.count("scheduled") == 3
            # Another creator may go live at the same time.
            other = await another_creator(lw)
            assert (await row(lw, await go_live(lw, other))).status == "live"
        finally:
            await lw.w.engine.dispose()

    asyncio.run(scenario())


def test_edit_while_scheduled_then_refused(db_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> None:
        lw = await live_world(db_url, tmp_path)
        try:
            sid = await schedule(lw, products=[lw.products[0]])
            later = utcnow() + dt.timedelta(days=2)
            async with transaction(lw.sm) as s:
                out = await live.update_session(
                    s, lw.creator, sid, SessionPatch(title="  新标题 ", scheduled_at=later, product_ids=lw.products),
                    None, lw.settings,
                )  # fmt: skip
            assert out.title == "新标题" and out.product_ids == lw.products
            assert abs((out.scheduled_at - later).total_seconds()) < 1
            # Someone else's session: 403; a cancelled one the creator cannot see... is still theirs.
            other = await another_creator(lw)
            async with transaction(lw.sm) as s:
                assert (
                    await code_of(
                        live.update_session(s, other, sid, SessionPatch(title="x"), None, lw.settings)
                    )
                    == "not_your_session"
                )
            async with transaction(lw.sm) as s:
                await live.start_session(s, lw.creator, sid, lw.settings)
            async with transaction(lw.sm) as s:
                assert (
                    await code_of(
                        live.update_session(s, lw.creator, sid, SessionPatch(title="y"), None, lw.settings)
                    )
                    == "not_scheduled"
                )
            assert (await row(lw, sid)).title == "新标题"
        finally:
            await lw.w.engine.dispose()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "change, code",
    [
        ({"title": "   "}, "validation_error"),
        ({"scheduled_at": dt.datetime(2026, 12, 1, 20, 0)}, "validation_error"),  # naive
        ({"scheduled_at": dt.datetime(2020, 1, 1, tzinfo=dt.UTC)}, "validation_error"),  # past
        ({"product_ids": [999_999]}, "product_not_available"),
    ],
)
def test_bad_sessions_refused_nothing_written(db_url: str, tmp_path, change, code) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> None:
        lw = await live_world(db_url, tmp_path)
        try:
            body = {
                "title": "t",
                "scheduled_at": utcnow() + dt.timedelta(hours=1),
                "product_ids": [],
                **change,
            }
            async with transaction(lw.sm) as s:
                assert (
                    await code_of(live.create_session(s, lw.creator, SessionIn(**body), None, lw.settings))
                    == code
                )
            async with transaction(lw.sm) as s:
                assert await live.list_my_sessions(s, lw.creator, before_id=None, limit=10) == []
            # A buyer (no creator role) cannot schedule at all.
            ok = SessionIn("t", utcnow() + dt.timedelta(hours=1))
            async with transaction(lw.sm) as s:
                assert (
                    await code_of(live.create_session(s, lw.w.buyers[0], ok, None, lw.settings))
                    == "role_required"
                )
        finally:
            await lw.w.engine.dispose()

    asyncio.run(scenario())


def test_unpublished_product_cannot_be_featured(db_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> None:
        from trustlive.catalog import service as catalog

        lw = await live_world(db_url, tmp_path)
        try:
            async with transaction(lw.sm) as s:
                await catalog.unpublish(s, lw.w.merchants[1], lw.products[1])
            body = SessionIn("t", utcnow() + dt.timedelta(hours=1), lw.products)
            async with transaction(lw.sm) as s:
                assert (
                    await code_of(live.create_session(s, lw.creator, body, None, lw.settings))
                    == "product_not_available"
                )
        finally:
            await lw.w.engine.dispose()

    asyncio.run(scenario())


def test_cancel_only_scheduled_and_hidden_from_others(db_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> None:
        lw = await live_world(db_url, tmp_path)
        try:
            sid = await schedule(lw)
            async with transaction(lw.sm) as s:
                assert (await live.cancel_session(s, lw.creator, sid)).status == "cancelled"
            async with transaction(lw.sm) as s:
                assert await code_of(live.get_session(s, lw.w.buyers[0], sid)) == "session_not_found"
                assert (await live.get_session(s, lw.creator, sid)).status == "cancelled"
            async with transaction(lw.sm) as s:
                assert await code_of(live.cancel_session(s, lw.creator, sid)) == "not_scheduled"
            async with transaction(lw.sm) as s:
                assert await code_of(live.start_session(s, lw.creator, sid, lw.settings)) == "not_scheduled"
        finally:
            await lw.w.engine.dispose()

    asyncio.run(scenario())


def test_sweeper_ends_silent_sessions_once(db_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> None:
        lw = await live_world(db_url, tmp_path)
        try:
            sid = await go_live(lw)
            soon = utcnow() + dt.timedelta(seconds=60)
            assert (await tasks.run_once(lw.sm, lw.settings, soon))["sessions_ended"] == 0
            async with transaction(lw.sm) as s:
                await live.heartbeat(s, lw.creator, sid)
            late = utcnow() + dt.timedelta(seconds=lw.settings.live_heartbeat_seconds + 1)
            assert (await tasks.run_once(lw.sm, lw.settings, late))["sessions_ended"] == 1
            assert (await tasks.run_once(lw.sm, lw.settings, late))["sessions_ended"] == 0
            r = await row(lw, sid)
            assert r.status == "ended" and r.end_reason == "no_heartbeat"
            assert (await topics(lw)).count("live.session_ended") == 1
        finally:
            await lw.w.engine.dispose()

    asyncio.run(scenario())


def test_replay_record(db_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> None:
        lw = await live_world(db_url, tmp_path)
        try:
            sid = await go_live(lw)
            async with transaction(lw.sm) as s:
                assert await code_of(live.replay(s, None, sid)) == "not_ended"
            await buy(lw, sid, 0, 2, key="r-1")
            await buy(lw, sid, 1, 1, key="r-2", index=1)
            async with transaction(lw.sm) as s:
                await live.end_session(s, lw.creator, sid)
            async with transaction(lw.sm) as s:
                mine = await live.replay(s, lw.creator, sid)
                public = await live.replay(s, None, sid)
            assert mine.stats.orders == 2 and mine.stats.units == 3
            assert mine.stats.sales_fen == 2 * 5900 + 128000
            assert mine.sales is not None and len(mine.sales) == 2
            assert all(line.buyer.endswith("**") for line in mine.sales)
            assert public.sales is None and public.stats == mine.stats
            assert mine.duration_seconds is not None and mine.duration_seconds >= 0
        finally:
            await lw.w.engine.dispose()

    asyncio.run(scenario())
