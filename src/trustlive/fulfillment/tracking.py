"""Tracking services: the interface, a registry by name, and the sandbox.

A tracking service (a logistics aggregator, like the ones Chinese shops use for every carrier)
is told about each parcel when it ships (``subscribe``) and later calls our webhook, signed, with
each stage the carrier reports: picked up, in transit, delivered. A real service is added by
registering a factory under its name (``register_tracker``).

The **sandbox** plays such a service on a simulated timeline: subscribing queues one event per
stage, due when that stage "happens" (``SANDBOX_TIMELINE`` after shipping), in its own table
(``sandbox_tracking_deliveries``); ``tasks.deliver_tracking`` sends the due ones, signed like the
payment sandbox's (``trustlive.signing``), retried with backoff, possibly twice or out of order.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable, Mapping
from typing import Protocol, runtime_checkable

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from trustlive.config import Settings
from trustlive.db import utcnow
from trustlive.errors import BadRequest, NotFound
from trustlive.fulfillment.models import STAGES, SandboxTrackingDelivery
from trustlive.fulfillment.schemas import TrackingUpdate
from trustlive.signing import check_signature, sign

SANDBOX = "sandbox"
# Event times beyond this (year 3058) are refused: later ones do not fit a datetime, or not once
# the auto-confirm days are added to a delivery.
MAX_EVENT_TIME = 2**35
SIGNATURE_HEADER = "x-sandbox-signature"
# When each stage happens after the parcel is handed over (a domestic parcel's usual pace).
SANDBOX_TIMELINE = (
    ("picked_up", dt.timedelta(hours=2), "揽收网点"),
    ("in_transit", dt.timedelta(hours=20), "转运中心"),
    ("delivered", dt.timedelta(hours=48), "已签收"),
)


@runtime_checkable  # routes receive it as a dependency, and Litestar checks their types
class Tracker(Protocol):
    name: str

    def subscribe(
        self, session: AsyncSession, carrier: str, tracking_no: str, shipped_at: dt.datetime
    ) -> None:
        """Ask to be told about this parcel's stages."""
        ...

    def verify_webhook(
        self, headers: Mapping[str, str], body: bytes, now: dt.datetime | None = None
    ) -> TrackingUpdate:
        """A verified event, or BadRequest 400 ``bad_signature`` / ``bad_payload``."""
        ...


TrackerFactory = Callable[[Settings], Tracker]
_factories: dict[str, TrackerFactory] = {}


def register_tracker(name: str, factory: TrackerFactory) -> None:
    _factories[name] = factory


def get_tracker(settings: Settings, name: str) -> Tracker:
    factory = _factories.get(name)
    if factory is None:
        raise NotFound(f"unknown tracking service {name[:32]!r}", code="unknown_tracker")
    return factory(settings)


def webhook_secret(settings: Settings) -> str:
    """TRUSTLIVE_TRACKING_WEBHOOK_SECRET, else one derived from the secret key."""
    derived = hmac.new(settings.secret_key.encode(), b"trustlive/fulfillment/webhook-secret", hashlib.sha256)
    return settings.tracking_webhook_secret or derived.hexdigest()


class SandboxTracker:
    name = SANDBOX

    def __init__(self, secret: str) -> None:
        self.secret = secret

    @classmethod
    def from_settings(cls, settings: Settings) -> SandboxTracker:
        return cls(webhook_secret(settings))

    def subscribe(
        self, session: AsyncSession, carrier: str, tracking_no: str, shipped_at: dt.datetime
    ) -> None:
        for stage, after, location in SANDBOX_TIMELINE:
            at = shipped_at + after
            event_id = f"trk_{secrets.token_urlsafe(18)}"
            body = json.dumps(
                {"id": event_id, "type": "tracking.updated", "created": int(at.timestamp()),
                 "data": {"carrier": carrier, "tracking_no": tracking_no, "stage": stage, "at": int(at.timestamp()),
                          "location": location}},
                separators=(",", ":"), ensure_ascii=False,
            )  # fmt: skip
            session.add(SandboxTrackingDelivery(event_id=event_id, body=body, attempts=0, next_attempt_at=at,
                                                created_at=utcnow()))  # fmt: skip

    def verify_webhook(
        self, headers: Mapping[str, str], body: bytes, now: dt.datetime | None = None
    ) -> TrackingUpdate:
        header = next((v for k, v in headers.items() if k.lower() == SIGNATURE_HEADER), None)
        check_signature(self.secret, header, body, now)
        return parse_sandbox_event(body)

    def signed_headers(self, body: bytes, now: dt.datetime | None = None) -> dict[str, str]:
        timestamp = int((now or utcnow()).timestamp())
        return {"Content-Type": "application/json", "X-Sandbox-Signature": sign(self.secret, body, timestamp)}


class _Data(msgspec.Struct):
    carrier: str
    tracking_no: str
    stage: str
    at: int
    location: str = ""


class _Event(msgspec.Struct):
    id: str
    type: str
    created: int
    data: _Data


def parse_sandbox_event(body: bytes) -> TrackingUpdate:
    """The sandbox's JSON event in our shape; 400 ``bad_payload`` if it is not one."""
    try:
        event = msgspec.json.decode(body, type=_Event)
    except (msgspec.ValidationError, msgspec.DecodeError):
        raise BadRequest("webhook body is not a tracking event", code="bad_payload") from None
    data = event.data
    if (
        event.type != "tracking.updated"
        or data.stage not in STAGES[1:]
        or not 0 < len(event.id) <= 100
        or not 0 < len(data.carrier) <= 32
        or not 0 < len(data.tracking_no) <= 64
        or len(data.location) > 64
        or not 0 <= data.at < MAX_EVENT_TIME
    ):
        raise BadRequest("unsupported or out-of-range tracking event", code="bad_payload")
    at = dt.datetime.fromtimestamp(data.at, dt.UTC)
    return TrackingUpdate(event.id, data.carrier, data.tracking_no, data.stage, at, data.location)


register_tracker(SANDBOX, SandboxTracker.from_settings)
