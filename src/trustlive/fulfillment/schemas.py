"""Shapes of the fulfillment domain's answers and of a verified tracking event."""

from __future__ import annotations

import datetime as dt

import msgspec


class TrackingUpdate(msgspec.Struct, frozen=True):
    """A verified tracking event, in our own terms whatever the tracking service."""

    id: str
    carrier: str
    tracking_no: str
    stage: str
    at: dt.datetime
    location: str = ""


class TrackingAck(msgspec.Struct):
    received: bool
    event_id: str
    outcome: str  # applied | stale | unknown_shipment | duplicate


class TrackingEventOut(msgspec.Struct):
    stage: str
    at: dt.datetime
    location: str


class ShipmentOut(msgspec.Struct):
    id: int
    order_id: int
    leg: str
    carrier: str
    tracking_no: str
    stage: str
    stage_at: dt.datetime
    shipped_at: dt.datetime  # handed to the carrier
    delivered_at: dt.datetime | None
    events: list[TrackingEventOut]
