"""The outbox: events leave only after their transaction commits, and none is lost."""

from __future__ import annotations

import asyncio
import json

import pytest

from trustlive import events
from trustlive.db import create_engine, create_sessionmaker, transaction
from trustlive.events import EventBus, OutboxEvent, OutboxRelay


async def _scenario(url: str, redis_url: str | None = None) -> dict[str, object]:
    engine = create_engine(url)
    sessionmaker = create_sessionmaker(engine)
    seen: list[tuple[str, dict]] = []
    bus = EventBus()

    async def handler(session, event):  # type: ignore[no-untyped-def]
        seen.append((event.topic, event.payload))

    async def flaky(session, event):  # type: ignore[no-untyped-def]
        if event.payload.get("explode"):
            raise RuntimeError("handler failed")

    bus.subscribe("shop.*", handler)  # not a pattern: nothing arrives here
    bus.subscribe("*", handler)
    bus.subscribe("demo.flaky", flaky)
    redis = None
    if redis_url:
        from redis.asyncio import Redis

        redis = Redis.from_url(redis_url, decode_responses=True)
    relay = OutboxRelay(sessionmaker, bus, redis)
    try:
        async with transaction(sessionmaker) as session:
            events.record(session, "demo.committed", {"n": 1})
        with pytest.raises(RuntimeError):
            async with transaction(sessionmaker) as session:
                events.record(session, "demo.rolled_back", {"n": 2})
                raise RuntimeError("request failed")
        async with transaction(sessionmaker) as session:
            events.record(session, "demo.flaky", {"explode": True})
            events.record(session, "demo.after_flaky", {"n": 3})

        received: list[dict] = []
        listener = None
        if redis is not None:
            pubsub = redis.pubsub()
            await pubsub.subscribe(events.REDIS_CHANNEL)

            async def listen() -> None:
                async for message in pubsub.listen():
                    if message["type"] == "message":
                        received.append(json.loads(message["data"]))
                        if len(received) == 2:
                            return

            listener = asyncio.create_task(listen())
            await asyncio.sleep(0.1)

        published = await relay.drain()
        again = await relay.drain()  # delivered events are not delivered twice
        if listener is not None:
            await asyncio.wait_for(listener, timeout=5)
        async with transaction(sessionmaker) as session:
            from sqlalchemy import select

            rows = (await session.scalars(select(OutboxEvent).order_by(OutboxEvent.id))).all()
            state = [(r.topic, r.published_at is not None, r.attempts, r.last_error) for r in rows]
        return {"seen": seen, "published": published, "again": again, "state": state, "redis": received}
    finally:
        if redis is not None:
            await redis.aclose()
        await engine.dispose()


def test_outbox_delivers_committed_events_once(db_url: str) -> None:
    result = asyncio.run(_scenario(db_url))
    assert result["seen"] == [("demo.committed", {"n": 1}), ("demo.after_flaky", {"n": 3})]
    assert result["published"] == 2 and result["again"] == 0
    state = result["state"]
    assert [s[0] for s in state] == [
        "demo.committed",
        "demo.flaky",
        "demo.after_flaky",
    ]  # rollback left nothing
    flaky = state[1]
    assert (
        flaky[1] is False and flaky[2] >= 1 and "handler failed" in flaky[3]
    )  # kept for retry, with the error


@pytest.mark.redis
def test_outbox_publishes_to_redis(sqlite_url: str, redis_url: str) -> None:
    result = asyncio.run(_scenario(sqlite_url, redis_url))
    assert [m["topic"] for m in result["redis"]] == ["demo.committed", "demo.after_flaky"]
    assert result["redis"][0]["payload"] == {"n": 1}


def test_record_refuses_unserialisable_payloads(sqlite_url: str) -> None:
    async def attempt() -> None:
        engine = create_engine(sqlite_url)
        try:
            async with transaction(create_sessionmaker(engine)) as session:
                events.record(session, "demo.bad", {"when": object()})
        finally:
            await engine.dispose()

    with pytest.raises(TypeError):
        asyncio.run(attempt())


def test_drain_goes_on_while_batches_are_full_and_stops_at_a_short_one(db_url: str) -> None:
    async def scenario() -> tuple[int, int, int]:
        engine = create_engine(db_url)
        sessionmaker = create_sessionmaker(engine)
        passes = 0
        relay = OutboxRelay(sessionmaker, EventBus(), batch=2)
        counted = relay._pass

        async def counting_pass() -> tuple[int, int]:
            nonlocal passes
            passes += 1
            return await counted()

        relay._pass = counting_pass  # type: ignore[method-assign]
        try:
            async with transaction(sessionmaker) as session:
                for n in range(5):
                    events.record(session, "demo.many", {"n": n})
            delivered = await relay.drain()
            async with transaction(sessionmaker) as session:
                from sqlalchemy import func, select

                pending = await session.scalar(
                    select(func.count()).select_from(OutboxEvent).where(OutboxEvent.published_at.is_(None))
                )
            return delivered, passes, pending or 0
        finally:
            await engine.dispose()

    delivered, passes, pending = asyncio.run(scenario())
    # 2 + 2 + 1: the short third batch ends the drain without a fourth pass that finds nothing.
    assert (delivered, passes, pending) == (5, 3, 0)
