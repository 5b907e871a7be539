"""JSON routes for payments: thin wrappers over payments.service.

The webhook route is public: providers authenticate by signature, not by session, and CSRF does
not apply to /api calls without a session cookie (web/security.py).
"""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from sqlalchemy.ext.asyncio import AsyncSession

from trustlive.accounts.service import Principal
from trustlive.config import Settings
from trustlive.orders.service import OrderPolicy
from trustlive.payments import service
from trustlive.payments.providers import get_provider
from trustlive.payments.schemas import OrderPayments, PaymentOut, RefundIn, RefundOut, WebhookAck
from trustlive.web.policy import public, signed_in


def idempotency_key(request: Request[Any, Any, Any]) -> str | None:
    return request.headers.get("idempotency-key")


@post("/orders/{order_id:int}/payments", status_code=201, tags=["payments"], **signed_in())
async def pay_order(
    order_id: int, me: Principal, db: AsyncSession, settings: Settings, request: Request[Any, Any, Any]
) -> PaymentOut:
    """Start paying one of your pending orders. Header `Idempotency-Key` (required): the same key
    returns the same payment. Open `pay_url` to pay (the sandbox's hosted page). 409
    `already_paid` / `not_payable`; someone else's order is 404."""
    intent = await service.create_payment(
        db, me, [order_id], idempotency_key(request), service.default_provider(settings)
    )
    return await service.describe(db, intent)


@post("/checkouts/{checkout_id:int}/payments", status_code=201, tags=["payments"], **signed_in())
async def pay_checkout(
    checkout_id: int, me: Principal, db: AsyncSession, settings: Settings, request: Request[Any, Any, Any]
) -> PaymentOut:
    """Pay every order of a checkout that still awaits payment, in one payment. Header
    `Idempotency-Key` (required)."""
    intent = await service.pay_checkout(
        db, me, checkout_id, idempotency_key(request), service.default_provider(settings)
    )
    return await service.describe(db, intent)


@get("/payments/{intent_id:int}", tags=["payments"], **signed_in())
async def payment_detail(intent_id: int, me: Principal, db: AsyncSession) -> PaymentOut:
    """A payment, its orders and refunds (its buyer and ops)."""
    return await service.get_payment(db, me, intent_id)


@get("/orders/{order_id:int}/payments", tags=["payments"], **signed_in())
async def order_payments(order_id: int, me: Principal, db: AsyncSession) -> OrderPayments:
    """Every payment attempt and refund of an order (its buyer, its shop and ops)."""
    return await service.order_payments(db, me, order_id)


@post("/orders/{order_id:int}/refunds", status_code=201, tags=["payments"], **signed_in())
async def refund_order(
    order_id: int, data: RefundIn, me: Principal, db: AsyncSession, request: Request[Any, Any, Any]
) -> RefundOut:
    """Refund part or all of a paid order (the shop's owner or staff, or ops). Header
    `Idempotency-Key` (required). 409 `refund_exceeds_payment` beyond what was paid, 409
    `not_refundable` for an order without a payment or past settlement."""
    item = await service.refund(db, me, order_id, data.amount_fen, data.reason, idempotency_key(request))
    return service.refund_out(item)


@post("/payments/webhooks/{provider:str}", status_code=200, tags=["payments"], **public())
async def webhook(
    provider: str, request: Request[Any, Any, Any], db: AsyncSession, settings: Settings,
    order_policy: OrderPolicy,
) -> WebhookAck:  # fmt: skip
    """A payment provider's event, authenticated by its signature (sandbox: header
    `X-Sandbox-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">`, 5 minutes tolerance). 400
    `bad_signature` and nothing changes when it does not verify; a repeated event id answers 200
    with outcome `duplicate`."""
    body = await request.body()
    return await service.handle_webhook(
        db, get_provider(settings, provider), dict(request.headers), body, policy=order_policy
    )


routes = [pay_order, pay_checkout, payment_detail, order_payments, refund_order, webhook]
