"""Use cases of fulfillment: ship an order (and have its parcel tracked), apply tracking events,
show a parcel's journey."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from sqlalchemy.ext.asyncio import AsyncSession

from trustlive.accounts.service import Principal
from trustlive.db import add_once, utcnow
from trustlive.fulfillment import repository as repo
from trustlive.fulfillment.models import STAGES, Shipment, TrackingEvent
from trustlive.fulfillment.schemas import ShipmentOut, TrackingAck, TrackingEventOut, TrackingUpdate
from trustlive.fulfillment.tracking import Tracker
from trustlive.orders import service as orders
from trustlive.orders.schemas import OrderOut, ShipIn

# A shipment's leg: where the parcel goes. The seller ships ``to_buyer``, or ``to_qc`` when the
# order must be inspected first (先鉴后发); the QC warehouse forwards a passed item ``qc_to_buyer``
# and sends a failed one back ``qc_to_seller``; a buyer's return goes back ``return``.
TO_BUYER = "to_buyer"
TO_QC = "to_qc"
QC_TO_BUYER = "qc_to_buyer"
QC_TO_SELLER = "qc_to_seller"
RETURN = "return"
LEGS = (TO_BUYER, TO_QC, QC_TO_BUYER, QC_TO_SELLER, RETURN)
# Legs whose delivery is the buyer receiving the order (starts auto-confirm).
DELIVERS_ORDER = frozenset({TO_BUYER, QC_TO_BUYER})


async def ship(
    session: AsyncSession, actor: Principal, order_id: int, data: ShipIn, tracker: Tracker
) -> OrderOut:
    """The seller hands the parcel to the carrier: the order moves to shipped (its rules and
    errors are the orders domain's), a shipment records the parcel, and the tracking service is
    asked to report its stages."""
    order = await orders.ship_order(session, actor, order_id, data)
    assert order.carrier is not None and order.tracking_no is not None and order.shipped_at is not None
    session.add(Shipment(order_id=order.id, leg=TO_BUYER, carrier=order.carrier, tracking_no=order.tracking_no,
                         stage=STAGES[0], stage_at=order.shipped_at, created_at=utcnow()))  # fmt: skip
    tracker.subscribe(session, order.carrier, order.tracking_no, order.shipped_at)
    await session.flush()
    return order


async def send_parcel(
    session: AsyncSession, order_id: int, leg: str, carrier: str, tracking_no: str, tracker: Tracker,
    at: dt.datetime | None = None,
) -> Shipment:  # fmt: skip
    """For other domains (the QC warehouse's forward and return legs, a buyer's return): record a
    parcel of ``order_id`` on its ``leg`` and have the tracking service report its stages. The
    caller has checked who may send it; the order's own status is not touched here."""
    if leg not in LEGS:
        raise ValueError(f"unknown leg {leg!r}")
    at = at or utcnow()
    shipment = Shipment(order_id=order_id, leg=leg, carrier=carrier, tracking_no=tracking_no, stage=STAGES[0],
                        stage_at=at, created_at=at)  # fmt: skip
    session.add(shipment)
    tracker.subscribe(session, carrier, tracking_no, at)
    await session.flush()
    return shipment


async def parcels_of(
    session: AsyncSession, order_ids: list[int], leg: str | None = None
) -> list[ShipmentOut]:
    """For other domains: the parcels of these orders (on one leg, if given), without their
    journeys, oldest first. No permission check."""
    return [_shipment_out(s, []) for s in await repo.shipments_of_orders(session, order_ids, leg)]


async def handle_webhook(
    session: AsyncSession,
    tracker: Tracker,
    headers: Mapping[str, str],
    body: bytes,
    now: dt.datetime | None = None,
    policy: orders.OrderPolicy = orders.DEFAULT_POLICY,
) -> TrackingAck:
    """Verify, dedupe and apply one tracking event. 400 (nothing changes) for a bad signature or
    payload; a repeated event id is acknowledged as ``duplicate`` and changes nothing."""
    update = tracker.verify_webhook(headers, body, now)
    shipments = await repo.shipments_by_tracking(session, update.carrier, update.tracking_no)
    record = TrackingEvent(
        provider=tracker.name, event_id=update.id, carrier=update.carrier, tracking_no=update.tracking_no,
        stage=update.stage, at=update.at, location=update.location, received_at=now or utcnow(),
        outcome="unknown_shipment" if not shipments else "stale",
    )  # fmt: skip
    if (
        await add_once(session, record, lambda: repo.tracking_event(session, tracker.name, update.id))
        is not None
    ):
        return TrackingAck(True, update.id, "duplicate")
    for shipment in shipments:
        if await _advance(session, shipment, update, policy):
            record.outcome = "applied"
    await session.flush()
    return TrackingAck(True, update.id, record.outcome)


async def _advance(
    session: AsyncSession, shipment: Shipment, update: TrackingUpdate, policy: orders.OrderPolicy
) -> bool:
    """Move the shipment forward to the event's stage; an older stage arriving late is stale."""
    if STAGES.index(update.stage) <= STAGES.index(shipment.stage):
        return False
    shipment.stage, shipment.stage_at = update.stage, update.at
    if update.stage == "delivered":
        shipment.delivered_at = update.at
        if shipment.leg in DELIVERS_ORDER:
            await orders.carrier_delivered(session, shipment.order_id, update.at, shipment.carrier, policy)
    return True


async def shipments_of_order(session: AsyncSession, viewer: Principal, order_id: int) -> list[ShipmentOut]:
    """The order's parcels with their journeys, for the buyer, the shop and ops (404 for anyone
    else, like the order itself)."""
    return await journeys(session, await orders.get_order(session, viewer, order_id))


async def journeys(session: AsyncSession, order: OrderOut) -> list[ShipmentOut]:
    """The parcels of an order its reader was already allowed to see (``order`` comes from
    ``orders.get_order``), for pages that show the order anyway."""
    shipments = await repo.shipments_of(session, order.id)
    events = await repo.events_of(session, [(s.carrier, s.tracking_no) for s in shipments])
    return [
        _shipment_out(s, [TrackingEventOut(e.stage, e.at, e.location) for e in events
                          if (e.carrier, e.tracking_no) == (s.carrier, s.tracking_no)])
        for s in shipments
    ]  # fmt: skip


def _shipment_out(s: Shipment, events: list[TrackingEventOut]) -> ShipmentOut:
    return ShipmentOut(s.id, s.order_id, s.leg, s.carrier, s.tracking_no, s.stage, s.stage_at, s.created_at,
                       s.delivered_at, events)  # fmt: skip


async def qc_of_order(session: AsyncSession, order: OrderOut) -> object | None:
    """What the order pages show about the order's inspection (None when it has none)."""
    return None
