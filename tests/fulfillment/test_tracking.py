"""Shipping an order, the sandbox tracking service's signed events (due on its timeline, forged,
repeated, out of order) and the delivery they bring, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.helpers import make_settings
from tests.orders.world import World, build
from trustlive.db import transaction
from trustlive.errors import DomainError
from trustlive.fulfillment import service, tasks
from trustlive.fulfillment.models import SandboxTrackingDelivery, Shipment, TrackingEvent
from trustlive.fulfillment.tracking import SandboxTracker, get_tracker
from trustlive.ledger import service as ledger
from trustlive.orders import service as orders
from trustlive.orders.models import Order, OrderEvent
from trustlive.orders.schemas import ItemIn, OrderIn, ShipIn

SHIP = ShipIn(carrier="SF", tracking_no="SF1234567890")


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


async def paid_order(w: World, buyer: int = 0, key: str = "k") -> int:
    """A paid order of shop 0 (what a captured payment does: escrow, then paid)."""
    async with transaction(w.sessionmaker) as s:
        b = w.buyers[buyer]
        data = OrderIn(items=[ItemIn(sku_id=w.skus[0], quantity=1)], address_id=w.addresses[b.id])
        order = (await orders.place_order(s, b, data, f"{key}-{buyer}")).orders[0]
        await ledger.post(s, kind="capture", ref=f"test:{order.id}", idempotency_key=f"capture:test:{order.id}",
                          postings=ledger.capture_postings(order.total_fen))  # fmt: skip
        assert await orders.mark_paid(s, order.id, order.total_fen, f"test-{order.id}") == "paid"
    return order.id


async def shipped_order(w: World, settings, buyer: int = 0, ship: ShipIn = SHIP) -> tuple[int, dt.datetime]:  # type: ignore[no-untyped-def]
    """A paid order of shop 0, shipped with the sandbox tracker; returns its id and ship time."""
    order_id = await paid_order(w, buyer, ship.tracking_no)
    async with transaction(w.sessionmaker) as s:
        out = await service.ship(s, w.merchants[0], order_id, ship, get_tracker(settings, "sandbox"))
    assert out.status == "shipped" and out.shipped_at is not None
    return order_id, out.shipped_at


async def rows(w: World, model, **where):  # type: ignore[no-untyped-def]
    async with transaction(w.sessionmaker) as s:
        stmt = select(model).filter_by(**where)
        return list(await s.scalars(stmt))


async def delivered_events(w: World, order_id: int) -> int:
    async with transaction(w.sessionmaker) as s:
        stmt = (
            select(func.count())
            .select_from(OrderEvent)
            .where(OrderEvent.order_id == order_id, OrderEvent.to_status == "delivered")
        )
        return await s.scalar(stmt) or 0


def test_the_timeline_reports_each_stage_and_delivers_the_order(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        settings = make_settings(db_url, tmp_path)
        w = await build(db_url)
        try:
            order_id, shipped_at = await shipped_order(w, settings)
            [shipment] = await rows(w, Shipment, order_id=order_id)
            assert (shipment.stage, shipment.carrier, shipment.tracking_no) == (
                "shipped",
                "SF",
                "SF1234567890",
            )
            assert len(await rows(w, SandboxTrackingDelivery)) == 3  # picked up, in transit, delivered

            report = await tasks.deliver_tracking(
                w.sessionmaker, settings, now=shipped_at + dt.timedelta(hours=1)
            )
            assert report.attempted == 0  # nothing has happened yet
            report = await tasks.deliver_tracking(
                w.sessionmaker, settings, now=shipped_at + dt.timedelta(hours=3)
            )
            assert report.delivered == 1
            [shipment] = await rows(w, Shipment, order_id=order_id)
            assert shipment.stage == "picked_up"
            [order] = await rows(w, Order, id=order_id)
            assert order.status == "shipped"

            report = await tasks.deliver_tracking(
                w.sessionmaker, settings, now=shipped_at + dt.timedelta(hours=49)
            )
            assert report.delivered == 2
            [order] = await rows(w, Order, id=order_id)
            arrived = shipped_at + dt.timedelta(hours=48)
            assert order.status == "delivered"
            assert abs(order.delivered_at - arrived) < dt.timedelta(seconds=1)  # the carrier's time
            assert abs(order.auto_confirm_at - arrived - dt.timedelta(days=10)) < dt.timedelta(seconds=1)
            assert await delivered_events(w, order_id) == 1

            async with transaction(w.sessionmaker) as s:
                [seen] = await service.shipments_of_order(s, w.buyers[0], order_id)
                assert [e.stage for e in seen.events] == ["picked_up", "in_transit", "delivered"]
                assert seen.stage == "delivered" and seen.events[-1].location == "已签收"
                assert len(await service.shipments_of_order(s, w.merchants[0], order_id)) == 1
            async with transaction(w.sessionmaker) as s:
                with pytest.raises(DomainError) as err:
                    await service.shipments_of_order(s, w.buyers[1], order_id)
                assert err.value.status_code == 404
        finally:
            await w.engine.dispose()  # type: ignore[attr-defined]

    run(scenario())


def test_forged_repeated_and_late_events_change_nothing(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        settings = make_settings(db_url, tmp_path)
        w = await build(db_url)
        try:
            order_id, shipped_at = await shipped_order(w, settings)
            later = shipped_at + dt.timedelta(hours=49)
            tracker = get_tracker(settings, "sandbox")
            assert isinstance(tracker, SandboxTracker)
            [*_, last] = await rows(w, SandboxTrackingDelivery)
            body = last.body.encode()  # the "delivered" event
            forged = SandboxTracker("not-the-secret").signed_headers(body, later)
            tampered = body.replace(b"SF1234567890", b"SF0000000000")
            for headers, payload in (
                (forged, body),
                (tracker.signed_headers(body, later), tampered),
                (tracker.signed_headers(body, later - dt.timedelta(minutes=6)), body),  # too old
                ({}, body),
            ):
                async with transaction(w.sessionmaker) as s:
                    with pytest.raises(DomainError) as err:
                        await service.handle_webhook(s, tracker, headers, payload, later)
                    assert (err.value.status_code, err.value.code) == (400, "bad_signature")
            for stage, at in (
                ("teleported", 1),
                ("delivered", 2**39),
                ("delivered", -1),
            ):  # 2**39: year 19391
                bad = json.dumps({"id": "x", "type": "tracking.updated", "created": 1, "data": {
                    "carrier": "SF", "tracking_no": "SF1234567890", "stage": stage, "at": at}}).encode()  # fmt: skip
                async with transaction(w.sessionmaker) as s:
                    with pytest.raises(DomainError) as err:
                        await service.handle_webhook(
                            s, tracker, tracker.signed_headers(bad, later), bad, later
                        )
                    assert err.value.code == "bad_payload", (stage, at)
            assert await rows(w, TrackingEvent) == []
            [order] = await rows(w, Order, id=order_id)
            assert order.status == "shipped"

            # Newest first, each twice: delivered applies once, the older stages are stale.
            report = await tasks.deliver_tracking(
                w.sessionmaker, settings, now=later, reverse=True, duplicates=True
            )
            assert (report.attempted, report.delivered) == (6, 3)
            events = await rows(w, TrackingEvent)
            assert sorted((e.stage, e.outcome) for e in events) == [
                ("delivered", "applied"), ("in_transit", "stale"), ("picked_up", "stale")
            ]  # fmt: skip
            [shipment] = await rows(w, Shipment, order_id=order_id)
            assert shipment.stage == "delivered"
            assert await delivered_events(w, order_id) == 1
        finally:
            await w.engine.dispose()  # type: ignore[attr-defined]

    run(scenario())


def test_unknown_parcels_and_a_shop_that_marked_delivery_first(db_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        settings = make_settings(db_url, tmp_path)
        w = await build(db_url)
        try:
            order_id, shipped_at = await shipped_order(w, settings)
            tracker = get_tracker(settings, "sandbox")
            assert isinstance(tracker, SandboxTracker)
            at = shipped_at + dt.timedelta(hours=3)
            stray = json.dumps({"id": "trk_stray", "type": "tracking.updated", "created": int(at.timestamp()), "data": {
                "carrier": "YTO", "tracking_no": "YT999", "stage": "delivered", "at": int(at.timestamp())}}).encode()  # fmt: skip
            async with transaction(w.sessionmaker) as s:
                ack = await service.handle_webhook(s, tracker, tracker.signed_headers(stray, at), stray, at)
            assert ack.outcome == "unknown_shipment"

            async with transaction(w.sessionmaker) as s:  # the shop is quicker than the carrier
                marked = await orders.mark_delivered(s, w.merchants[0], order_id)
            report = await tasks.deliver_tracking(
                w.sessionmaker, settings, now=shipped_at + dt.timedelta(hours=49)
            )
            assert report.delivered == 3 and report.failed == 0
            [order] = await rows(w, Order, id=order_id)
            assert order.status == "delivered" and order.delivered_at == marked.delivered_at  # unchanged
            assert await delivered_events(w, order_id) == 1
            [shipment] = await rows(w, Shipment, order_id=order_id)
            assert shipment.stage == "delivered"  # the parcel's own journey is still recorded
        finally:
            await w.engine.dispose()  # type: ignore[attr-defined]

    run(scenario())


def test_webhook_and_shipments_over_http(sqlite_url: str, tmp_path: Path) -> None:
    from litestar.testing import TestClient

    from trustlive.app import create_app

    async def prepare():  # type: ignore[no-untyped-def]
        settings = make_settings(sqlite_url, tmp_path)
        w = await build(sqlite_url)
        order_id, shipped_at = await shipped_order(w, settings)
        async with transaction(w.sessionmaker) as s:
            from trustlive.accounts import service as accounts
            from trustlive.accounts.models import User

            tokens = {}
            for who in (w.buyers[0], w.buyers[1], w.merchants[0]):
                user = await s.get(User, who.id)
                tokens[who.id] = (await accounts.open_session(s, user, kind="api", days=1))[0]
        body = (await rows(w, SandboxTrackingDelivery))[0].body.encode()
        unshipped = await paid_order(w, 1, "api")
        await w.engine.dispose()  # type: ignore[attr-defined]
        return settings, w, order_id, unshipped, tokens, body

    settings, w, order_id, unshipped, tokens, body = run(prepare())
    tracker = get_tracker(settings, "sandbox")
    assert isinstance(tracker, SandboxTracker)

    def bearer(user_id: int) -> dict[str, str]:
        return {"Authorization": f"Bearer {tokens[user_id]}"}

    with TestClient(create_app(settings, relay_in_background=False)) as client:
        url = "/api/v1/logistics/webhooks/sandbox"
        forged = client.post(url, content=body, headers=SandboxTracker("x").signed_headers(body))
        assert forged.status_code == 400 and forged.json()["error"]["code"] == "bad_signature"
        assert client.post("/api/v1/logistics/webhooks/nobody", content=body).status_code == 404
        ok = client.post(url, content=body, headers=tracker.signed_headers(body))
        again = client.post(url, content=body, headers=tracker.signed_headers(body))
        assert (ok.status_code, ok.json()["outcome"]) == (200, "applied")
        assert (again.status_code, again.json()["outcome"]) == (200, "duplicate")
        mine = client.get(
            f"/api/v1/orders/{order_id}/shipments",
            headers={"Authorization": f"Bearer {tokens[w.buyers[0].id]}"},
        )
        assert mine.status_code == 200
        [parcel] = mine.json()
        assert parcel["stage"] == "picked_up" and [e["stage"] for e in parcel["events"]] == ["picked_up"]
        theirs = client.get(
            f"/api/v1/orders/{order_id}/shipments",
            headers={"Authorization": f"Bearer {tokens[w.buyers[1].id]}"},
        )
        assert theirs.status_code == 404
        assert client.get(f"/api/v1/orders/{order_id}/shipments").status_code == 401

        # Shipping through the JSON API records the parcel and registers it for tracking too.
        ship = {"carrier": "YTO", "tracking_no": "YT20261122"}
        buyer_tries = client.post(
            f"/api/v1/orders/{unshipped}/ship", json=ship, headers=bearer(w.buyers[1].id)
        )
        assert buyer_tries.status_code in (403, 404)
        shipped = client.post(
            f"/api/v1/orders/{unshipped}/ship", json=ship, headers=bearer(w.merchants[0].id)
        )
        assert shipped.status_code == 200 and shipped.json()["status"] == "shipped"
        [parcel] = client.get(f"/api/v1/orders/{unshipped}/shipments", headers=bearer(w.buyers[1].id)).json()
        assert (parcel["carrier"], parcel["tracking_no"], parcel["stage"], parcel["events"]) == (
            "YTO", "YT20261122", "shipped", []
        )  # fmt: skip
