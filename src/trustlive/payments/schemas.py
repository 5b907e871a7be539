"""JSON shapes of the payments API, and the events providers send us."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import msgspec

Fen = Annotated[int, msgspec.Meta(ge=1, le=1_000_000_000)]


class PaymentOrderOut(msgspec.Struct):
    order_id: int
    amount_fen: int
    outcome: str | None  # "paid" | "refunded_late" once the payment is captured


class RefundOut(msgspec.Struct):
    id: int
    intent_id: int
    order_id: int
    amount_fen: int
    status: str
    reason: str
    created_at: dt.datetime
    succeeded_at: dt.datetime | None


class PaymentOut(msgspec.Struct):
    id: int
    status: str
    amount_fen: int
    refunded_fen: int
    provider: str
    pay_url: str | None
    orders: list[PaymentOrderOut]
    created_at: dt.datetime
    succeeded_at: dt.datetime | None
    failure_reason: str | None
    refunds: list[RefundOut] = []


class OrderPayments(msgspec.Struct):
    """Every payment attempt and refund of one order (for its buyer, its shop and ops)."""

    order_id: int
    payments: list[PaymentOut]
    refunds: list[RefundOut]


class RefundIn(msgspec.Struct, forbid_unknown_fields=True):
    amount_fen: Fen
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class WebhookAck(msgspec.Struct):
    received: bool
    event_id: str
    outcome: str


class ProviderEvent(msgspec.Struct, frozen=True):
    """A verified provider event, in the provider-neutral shape our handler applies.

    ``provider_ref`` names the payment; refund events also carry the provider's ``refund_ref`` and
    the idempotency key we gave when asking for the refund (so we can match it even before we
    stored the provider's reference)."""

    id: str
    type: str
    provider_ref: str
    amount_fen: int
    created: int
    refund_ref: str | None = None
    refund_key: str | None = None
    failure_reason: str | None = None
    raw: dict[str, Any] = {}
