"""Payment providers: the interface, a registry by name, webhook signatures, and the sandbox.

A provider creates a hosted payment for an amount and gives back its reference and the URL of
its pay page; refunds (part of) a captured payment under an idempotency key; and turns a webhook
request into a verified, provider-neutral ``ProviderEvent`` (or refuses it with 400
``bad_signature``). A real provider is added by registering a factory under its name
(``register_provider``); routes and services look providers up by that name.

The **sandbox** behaves like an outside payment company that happens to share our database: it
keeps its own tables (``sandbox_charges``, ``sandbox_refunds``, ``sandbox_webhook_deliveries``),
shows its own hosted pay page, and tells us what happened only through signed webhooks, delivered
later, retried with backoff, possibly twice or out of order (``tasks.deliver_webhooks``).

Signatures (``trustlive.signing``) follow Stripe's scheme: header ``X-Sandbox-Signature:
t=<unix time>,v1=<hex>`` where ``<hex>`` is HMAC-SHA256 over ``"{t}.{body}"`` with the shared
webhook secret; a timestamp more than five minutes away from our clock is refused, so a captured
request cannot be replayed later (and a replay within the window is caught by the event-id dedup).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from trustlive.config import Settings
from trustlive.db import utcnow
from trustlive.errors import BadRequest, Conflict, NotFound
from trustlive.payments import repository as repo
from trustlive.payments.models import SandboxCharge, SandboxRefund, SandboxWebhookDelivery
from trustlive.payments.schemas import ProviderEvent
from trustlive.signing import check_signature, sign

SANDBOX = "sandbox"
SANDBOX_SIGNATURE_HEADER = "x-sandbox-signature"
EVENT_TYPES = ("payment.succeeded", "payment.failed", "refund.succeeded")


@dataclass(frozen=True)
class ChargeRequest:
    """What we ask a provider to collect. ``key`` makes the request idempotent at the provider."""

    key: str
    amount_fen: int
    merchant_name: str
    description: str
    return_url: str
    currency: str = "CNY"


class PaymentProvider(Protocol):
    name: str

    async def create_payment(self, session: AsyncSession, request: ChargeRequest) -> tuple[str, str]:
        """Create a hosted payment; returns ``(provider_ref, pay_url)``."""
        ...

    async def refund(
        self, session: AsyncSession, provider_ref: str, amount_fen: int, idempotency_key: str
    ) -> str:
        """Refund part or all of a captured payment; returns the provider's refund reference.
        The same key twice refunds once and returns the same reference."""
        ...

    def verify_webhook(
        self, headers: Mapping[str, str], body: bytes, now: dt.datetime | None = None
    ) -> ProviderEvent:
        """A verified event, or BadRequest 400 ``bad_signature`` / ``bad_payload``."""
        ...


def webhook_secret(settings: Settings) -> str:
    """TRUSTLIVE_PAYMENT_WEBHOOK_SECRET, else one derived from the secret key."""
    return settings.payment_webhook_secret or derive_webhook_secret(settings.secret_key)


def derive_webhook_secret(secret_key: str) -> str:
    return hmac.new(secret_key.encode(), b"trustlive/payments/webhook-secret", hashlib.sha256).hexdigest()


# --- registry ---------------------------------------------------------------------------------

ProviderFactory = Callable[[Settings], PaymentProvider]
_factories: dict[str, ProviderFactory] = {}


def register_provider(name: str, factory: ProviderFactory) -> None:
    """Make a provider available by name (e.g. ``register_provider("alipay", AlipayProvider.from_settings)``)."""
    _factories[name] = factory


def provider_names() -> list[str]:
    return sorted(_factories)


def get_provider(settings: Settings, name: str) -> PaymentProvider:
    factory = _factories.get(name)
    if factory is None:
        raise NotFound(f"unknown payment provider {name[:32]!r}", code="unknown_provider")
    return factory(settings)


# --- the sandbox ------------------------------------------------------------------------------


def _new_ref(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(18)}"


class SandboxProvider:
    """The sandbox payment company. Its methods with a ``session`` change only its own tables."""

    name = SANDBOX

    def __init__(self, secret: str) -> None:
        self.secret = secret

    @classmethod
    def from_settings(cls, settings: Settings) -> SandboxProvider:
        return cls(webhook_secret(settings))

    # -- the merchant-facing API --

    async def create_payment(self, session: AsyncSession, request: ChargeRequest) -> tuple[str, str]:
        existing = await repo.sandbox_charge_by_key(session, request.key)
        if existing is None:
            charge = SandboxCharge(
                ref=_new_ref("pay"),
                merchant_key=request.key,
                amount_fen=request.amount_fen,
                currency=request.currency,
                merchant_name=request.merchant_name[:64],
                description=request.description[:200],
                return_url=request.return_url[:500],
                status="open",
                created_at=utcnow(),
            )
            session.add(charge)
            await session.flush()
            existing = charge
        elif existing.amount_fen != request.amount_fen:
            raise Conflict("the sandbox already has this key for another amount", code="idempotency_mismatch")
        return existing.ref, self.pay_url(existing.ref)

    async def refund(
        self, session: AsyncSession, provider_ref: str, amount_fen: int, idempotency_key: str
    ) -> str:
        existing = await repo.sandbox_refund_by_key(session, idempotency_key)
        if existing is not None:
            return existing.ref
        charge = await repo.sandbox_charge(session, provider_ref, lock=True)
        if charge is None:
            raise NotFound("the sandbox has no such payment", code="provider_payment_not_found")
        if not await repo.add_sandbox_refund(session, charge.id, amount_fen):
            raise Conflict("the sandbox refuses: not paid, or more than the payment", code="provider_refused")
        refund = SandboxRefund(
            ref=_new_ref("re"), charge_id=charge.id, merchant_key=idempotency_key, amount_fen=amount_fen,
            status="succeeded", created_at=utcnow(),
        )  # fmt: skip
        session.add(refund)
        await session.flush()
        self.queue_event(
            session,
            "refund.succeeded",
            {"object": "refund", "ref": refund.ref, "charge": charge.ref, "amount_fen": amount_fen,
             "merchant_key": idempotency_key},
        )  # fmt: skip
        return refund.ref

    def verify_webhook(
        self, headers: Mapping[str, str], body: bytes, now: dt.datetime | None = None
    ) -> ProviderEvent:
        header = next((v for k, v in headers.items() if k.lower() == SANDBOX_SIGNATURE_HEADER), None)
        check_signature(self.secret, header, body, now)
        return parse_sandbox_event(body)

    @staticmethod
    def pay_url(ref: str) -> str:
        return f"/sandbox/pay/{ref}"

    # -- the sandbox's own business: its pay page and its webhook queue --

    async def charge(self, session: AsyncSession, ref: str) -> SandboxCharge:
        charge = await repo.sandbox_charge(session, ref)
        if charge is None:
            raise NotFound("no such payment at the sandbox", code="provider_payment_not_found")
        return charge

    async def pay(self, session: AsyncSession, ref: str) -> SandboxCharge:
        """The buyer pressed Pay: capture (once) and tell the merchant."""
        charge = await repo.sandbox_charge(session, ref, lock=True)
        if charge is None:
            raise NotFound("no such payment at the sandbox", code="provider_payment_not_found")
        if charge.status == "paid":
            return charge  # pressing Pay twice charges once
        charge.status = "paid"
        charge.paid_at = utcnow()
        await session.flush()
        self.queue_event(
            session,
            "payment.succeeded",
            {
                "object": "charge",
                "ref": charge.ref,
                "amount_fen": charge.amount_fen,
                "currency": charge.currency,
            },
        )
        return charge

    async def decline(
        self, session: AsyncSession, ref: str, reason: str = "declined by the buyer"
    ) -> SandboxCharge:
        """The buyer pressed Decline (or the card was refused): a failed attempt. The page stays
        open, so a later Pay can still succeed."""
        charge = await repo.sandbox_charge(session, ref, lock=True)
        if charge is None:
            raise NotFound("no such payment at the sandbox", code="provider_payment_not_found")
        if charge.status == "paid":
            raise Conflict("this payment is already paid", code="already_paid")
        charge.failed_attempts += 1
        await session.flush()
        self.queue_event(
            session,
            "payment.failed",
            {"object": "charge", "ref": charge.ref, "amount_fen": charge.amount_fen, "failure_reason": reason,
             "attempt": charge.failed_attempts},
        )  # fmt: skip
        return charge

    def queue_event(
        self, session: AsyncSession, type_: str, data: dict[str, Any], *, at: dt.datetime | None = None
    ) -> SandboxWebhookDelivery:
        """Queue a webhook for delivery (``tasks.deliver_webhooks`` sends it)."""
        now = at or utcnow()
        event_id = _new_ref("evt")
        body = json.dumps(
            {"id": event_id, "type": type_, "created": int(now.timestamp()), "data": data},
            separators=(",", ":"),
            ensure_ascii=False,
        )
        delivery = SandboxWebhookDelivery(
            event_id=event_id, type=type_, body=body, attempts=0, next_attempt_at=now, created_at=now
        )
        session.add(delivery)
        return delivery

    def signed_headers(self, body: bytes, now: dt.datetime | None = None) -> dict[str, str]:
        timestamp = int((now or utcnow()).timestamp())
        return {"Content-Type": "application/json", "X-Sandbox-Signature": sign(self.secret, body, timestamp)}


class _SandboxData(msgspec.Struct):
    ref: str
    amount_fen: int
    object: str = "charge"
    charge: str | None = None
    merchant_key: str | None = None
    failure_reason: str | None = None


class _SandboxEvent(msgspec.Struct):
    id: str
    type: str
    created: int
    data: _SandboxData


def parse_sandbox_event(body: bytes) -> ProviderEvent:
    """The sandbox's JSON event in our neutral shape; 400 ``bad_payload`` if it is not one."""
    try:
        event = msgspec.json.decode(body, type=_SandboxEvent)
        raw = json.loads(body)
    except (msgspec.ValidationError, msgspec.DecodeError, ValueError):
        raise BadRequest("webhook body is not a sandbox event", code="bad_payload") from None
    if (
        event.type not in EVENT_TYPES
        or not 0 < len(event.id) <= 100
        or not 0 < event.data.amount_fen <= 10**15
    ):
        raise BadRequest(f"unsupported webhook event {event.type[:40]!r}", code="bad_payload")
    data = event.data
    refs = (data.ref, data.charge or "", data.merchant_key or "")
    if not 0 < len(data.ref) <= 100 or any(len(r) > 100 for r in refs) or not 0 <= event.created < 2**40:
        raise BadRequest("webhook event fields out of range", code="bad_payload")
    if event.type == "refund.succeeded":
        if not data.charge:
            raise BadRequest("refund event without its payment", code="bad_payload")
        return ProviderEvent(
            id=event.id, type=event.type, provider_ref=data.charge, amount_fen=data.amount_fen,
            created=event.created, refund_ref=data.ref, refund_key=data.merchant_key, raw=raw,
        )  # fmt: skip
    return ProviderEvent(
        id=event.id, type=event.type, provider_ref=data.ref, amount_fen=data.amount_fen, created=event.created,
        failure_reason=data.failure_reason, raw=raw,
    )  # fmt: skip


register_provider(SANDBOX, SandboxProvider.from_settings)
