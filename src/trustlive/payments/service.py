"""Payment use cases: pay orders through a provider, apply its webhooks, refund.

Money moves in the ledger at three moments, each posted once under its own idempotency key:

- capture, when a ``payment.succeeded`` webhook is applied:
  ``external:buyer_payments -amount, escrow +amount`` (kind ``capture``, key ``capture:<intent>``);
- refund, when a refund is decided (by the shop, ops, or automatically for a late payment):
  ``escrow -amount, external:buyer_refunds +amount`` (kind ``refund``, key ``refund:<refund>``).

Webhooks are verified first (400 ``bad_signature``: nothing changes), then recorded by event id
(a repeat answers 200 ``duplicate`` and changes nothing), then applied with conditional updates so
any delivery order ends in the same state. Rules (docs/payments.md):

- ``payment.succeeded`` captures an intent that awaits payment or had a failed attempt; once
  captured, further success events are ``stale``;
- ``payment.failed`` only marks an intent that still awaits payment; after a capture it is ``stale``
  (a later success wins over an earlier failure, whatever order they arrive in);
- ``refund.succeeded`` that arrives before its payment's capture is stored as ``deferred`` and
  applied right after the capture; for a captured intent it marks our refund succeeded; a refund
  we never asked for is kept as ``unmatched`` for ops and moves no money.

An order that is no longer payable when its payment is captured (cancelled at its pay deadline
meanwhile, or paid by another payment) keeps its status; its share of the payment is refunded
automatically (reason ``late_payment``). Lock order everywhere: intent, then orders, then the
ledger head, so a webhook, a refund and the pay-deadline sweeper cannot deadlock.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
from collections.abc import Mapping, Sequence

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from trustlive import events
from trustlive.accounts.service import Principal
from trustlive.catalog import service as catalog
from trustlive.config import Settings
from trustlive.db import add_once, utcnow
from trustlive.errors import (
    Conflict,
    Forbidden,
    InvalidTransition,
    NotFound,
    ValidationFailed,
    require_idempotency_key,
)
from trustlive.ledger import service as ledger
from trustlive.money import format_fen
from trustlive.orders import service as orders
from trustlive.payments import repository as repo
from trustlive.payments.models import (
    CAPTURED,
    IntentStatus,
    LinkOutcome,
    PaymentIntent,
    PaymentIntentOrder,
    Refund,
    RefundStatus,
    SandboxCharge,
    WebhookEvent,
)
from trustlive.payments.providers import (
    SANDBOX,
    ChargeRequest,
    PaymentProvider,
    SandboxProvider,
    get_provider,
)
from trustlive.payments.schemas import (
    OrderPayments,
    PaymentOrderOut,
    PaymentOut,
    ProviderEvent,
    RefundOut,
    WebhookAck,
)

log = logging.getLogger(__name__)

MERCHANT_NAME = "trustlive"
MAX_ORDERS_PER_PAYMENT = 50
LATE_PAYMENT = "late_payment"
DUPLICATE_PAYMENT = "duplicate_payment"
REFUND_BACKOFF_BASE = dt.timedelta(seconds=30)
REFUND_BACKOFF_MAX = dt.timedelta(hours=6)


def payment_ref(intent_id: int) -> str:
    """What an order records as the payment that paid it (and the ledger's ``ref``)."""
    return f"payment:{intent_id}"


def provider_refund_key(refund_id: int) -> str:
    """The idempotency key we give the provider for a refund: one refund, one key, forever."""
    return f"trustlive-refund-{refund_id}"


def default_provider(settings: Settings) -> PaymentProvider:
    return get_provider(settings, SANDBOX)


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def check_key(key: str | None) -> str:
    return require_idempotency_key(key, "payment")


# --- reading ----------------------------------------------------------------------------------


def refund_out(r: Refund) -> RefundOut:
    return RefundOut(
        r.id, r.intent_id, r.order_id, r.amount_fen, r.status, r.reason, r.created_at, r.succeeded_at
    )


def payment_out(
    intent: PaymentIntent, links: Sequence[PaymentIntentOrder], refunds: Sequence[Refund] = ()
) -> PaymentOut:
    # The pay page is offered only while paying is still possible (a failed attempt can be retried).
    payable = intent.status in (IntentStatus.requires_payment, IntentStatus.failed)
    return PaymentOut(
        id=intent.id,
        status=intent.status,
        amount_fen=intent.amount_fen,
        refunded_fen=intent.refunded_fen,
        provider=intent.provider,
        pay_url=intent.pay_url if payable else None,
        orders=[PaymentOrderOut(link.order_id, link.amount_fen, link.outcome) for link in links],
        created_at=intent.created_at,
        succeeded_at=intent.succeeded_at,
        failure_reason=intent.failure_reason,
        refunds=[refund_out(r) for r in refunds],
    )


async def describe(session: AsyncSession, intent: PaymentIntent) -> PaymentOut:
    links = await repo.links_of(session, [intent.id])
    return payment_out(intent, links, await repo.refunds_of_intent(session, intent.id))


async def get_payment(session: AsyncSession, viewer: Principal, intent_id: int) -> PaymentOut:
    """A payment for its buyer (and ops); 404 for everyone else."""
    intent = await repo.get_intent(session, intent_id)
    if intent is None or (intent.buyer_id != viewer.id and not viewer.is_ops):
        raise NotFound(f"payment {intent_id} not found", code="payment_not_found")
    return await describe(session, intent)


async def order_payments(session: AsyncSession, viewer: Principal, order_id: int) -> OrderPayments:
    """Payments and refunds of one order, for whoever may see the order (buyer, shop, ops)."""
    await orders.get_order(session, viewer, order_id)  # 404 for everyone else
    intents = await repo.intents_of_order(session, order_id)
    links = await repo.links_of(session, [i.id for i in intents])
    refunds = await repo.refunds_of_orders(session, [order_id])
    return OrderPayments(
        order_id=order_id,
        payments=[payment_out(i, [link for link in links if link.intent_id == i.id]) for i in intents],
        refunds=[refund_out(r) for r in refunds],
    )


async def payment_state_of_order(session: AsyncSession, order_id: int) -> str | None:
    """For the buyer's order page: "started" while a payment for the pending order is open at the
    provider (we cannot know whether the buyer has paid there until its webhook comes), "failed"
    if the latest attempt failed, else None. No permission check."""
    intents = await repo.intents_of_order(session, order_id)
    if not intents:
        return None
    latest = intents[-1]
    if latest.status == IntentStatus.requires_payment:
        return "started"
    if latest.status == IntentStatus.failed:
        return "failed"
    return None


# --- paying -----------------------------------------------------------------------------------


async def create_payment(
    session: AsyncSession,
    buyer: Principal,
    order_ids: Sequence[int],
    idempotency_key: str | None,
    provider: PaymentProvider,
    *,
    scope: str | None = None,
) -> PaymentIntent:
    """Start paying the buyer's pending orders: one intent for their total, at ``provider``.

    The same key again returns the same intent (whatever happened to it since); the same key for
    other orders is 422 ``idempotency_mismatch``. Others' orders are 404, an order that already has
    a captured payment is 409 ``already_paid``, any other non-pending order 409 ``not_payable``.
    """
    key = check_key(idempotency_key)
    ids = sorted(set(order_ids))
    if not ids or len(ids) > MAX_ORDERS_PER_PAYMENT:
        raise ValidationFailed(f"order_ids: 1 to {MAX_ORDERS_PER_PAYMENT} orders", field="order_ids")
    request_hash = _hash(scope or "orders:" + ",".join(map(str, ids)))
    existing = await repo.intent_by_key(session, buyer.id, key)
    if existing is not None:
        return _replay(existing, request_hash)
    paid = await repo.captured_intents_for_orders(session, buyer.id, ids)
    if paid:
        raise Conflict(f"order {paid[0]} is already paid", code="already_paid")
    payable = await orders.payable_orders(session, buyer, ids)
    intent = PaymentIntent(
        buyer_id=buyer.id, amount_fen=sum(o.total_fen for o in payable), refunded_fen=0,
        status=IntentStatus.requires_payment, provider=provider.name, idempotency_key=key,
        request_hash=request_hash, created_at=utcnow(),
    )  # fmt: skip
    # A concurrent request with the same key may have committed first: answer as it did.
    if (
        existing := await add_once(session, intent, lambda: repo.intent_by_key(session, buyer.id, key))
    ) is not None:
        return _replay(existing, request_hash)
    for order in payable:
        session.add(PaymentIntentOrder(intent_id=intent.id, order_id=order.id, amount_fen=order.total_fen))
    names = {s.id: s.name for s in await catalog.shops_by_ids(session, list({o.shop_id for o in payable}))}
    description = "; ".join(f"#{o.id} {names.get(o.shop_id, '')}".strip() for o in payable)
    ref, url = await provider.create_payment(
        session,
        ChargeRequest(
            key=f"trustlive-intent-{intent.id}", amount_fen=intent.amount_fen, merchant_name=MERCHANT_NAME,
            description=description, return_url=f"/pay/return?intent={intent.id}",
        ),
    )  # fmt: skip
    intent.provider_ref, intent.pay_url = ref, url
    await session.flush()
    events.record(session, "payments.created", {"intent_id": intent.id, "order_ids": ids,
                                                "amount_fen": intent.amount_fen})  # fmt: skip
    return intent


def _replay(intent: PaymentIntent, request_hash: str) -> PaymentIntent:
    if intent.request_hash != request_hash:
        raise ValidationFailed("Idempotency-Key: already used for a different payment", field="Idempotency-Key",
                               code="idempotency_mismatch")  # fmt: skip
    return intent


async def _pending_of_checkout(session: AsyncSession, buyer: Principal, checkout_id: int) -> list[int]:
    """The checkout's orders still awaiting payment (404 for others' checkouts; 409 if none)."""
    all_orders = await orders.orders_of_checkout(session, buyer, checkout_id)
    pending = [o.id for o in all_orders if o.status == "pending_payment"]
    if not pending:
        if await repo.captured_intents_for_orders(session, buyer.id, [o.id for o in all_orders]):
            raise Conflict(f"checkout {checkout_id} is already paid", code="already_paid")
        raise Conflict(f"no order of checkout {checkout_id} awaits payment", code="not_payable")
    return pending


async def pay_checkout(
    session: AsyncSession,
    buyer: Principal,
    checkout_id: int,
    idempotency_key: str | None,
    provider: PaymentProvider,
) -> PaymentIntent:
    """Pay every order of a checkout that still awaits payment, in one intent."""
    key = check_key(idempotency_key)
    scope = f"checkout:{checkout_id}"
    existing = await repo.intent_by_key(session, buyer.id, key)
    if existing is not None:
        return _replay(existing, _hash(scope))
    pending = await _pending_of_checkout(session, buyer, checkout_id)
    return await create_payment(session, buyer, pending, key, provider, scope=scope)


async def start_payment(
    session: AsyncSession, buyer: Principal, order_ids: Sequence[int], provider: PaymentProvider
) -> PaymentIntent:
    """For pages (no client key): reuse the buyer's open intent for exactly these orders, else
    open a new one. Pressing "Pay" twice therefore shows the same pay page."""
    ids = sorted(set(order_ids))
    for intent_id in await repo.open_intents_for_orders(session, buyer.id, ids):
        links = await repo.links_of(session, [intent_id])
        if sorted(link.order_id for link in links) == ids:
            intent = await repo.get_intent(session, intent_id)
            if intent is not None and intent.provider == provider.name:
                return intent
    return await create_payment(session, buyer, ids, f"web-{secrets.token_urlsafe(16)}", provider)


async def start_checkout_payment(
    session: AsyncSession, buyer: Principal, checkout_id: int, provider: PaymentProvider
) -> PaymentIntent:
    """For pages: pay what is still pending in a checkout (409 when nothing is)."""
    return await start_payment(
        session, buyer, await _pending_of_checkout(session, buyer, checkout_id), provider
    )


# --- webhooks ---------------------------------------------------------------------------------


async def handle_webhook(
    session: AsyncSession,
    provider: PaymentProvider,
    headers: Mapping[str, str],
    body: bytes,
    now: dt.datetime | None = None,
    policy: orders.OrderPolicy = orders.DEFAULT_POLICY,
) -> WebhookAck:
    """Verify, dedupe and apply one provider event. Used by the HTTP route and by the sandbox's
    in-process deliverer alike. Raises 400 (nothing changes) for a bad signature or payload."""
    event = provider.verify_webhook(headers, body, now)
    now = now or utcnow()
    record = WebhookEvent(
        provider=provider.name, event_id=event.id, type=event.type, provider_ref=event.provider_ref,
        payload=msgspec.to_builtins(event), received_at=now, outcome="received",
    )  # fmt: skip
    if (
        await add_once(session, record, lambda: repo.webhook_event(session, provider.name, event.id))
        is not None
    ):
        return WebhookAck(True, event.id, "duplicate")
    record.outcome = await _apply(session, provider, event, now, policy)
    await session.flush()
    return WebhookAck(True, event.id, record.outcome)


async def _apply(
    session: AsyncSession, provider: PaymentProvider, event: ProviderEvent, now: dt.datetime,
    policy: orders.OrderPolicy,
) -> str:  # fmt: skip
    if event.type == "payment.succeeded":
        return await _capture(session, provider, event, now, policy)
    if event.type == "payment.failed":
        return await _fail(session, provider, event, now)
    if event.type == "refund.succeeded":
        return await _refund_succeeded(session, provider, event, now)
    return "ignored"


async def _capture(
    session: AsyncSession, provider: PaymentProvider, event: ProviderEvent, now: dt.datetime,
    policy: orders.OrderPolicy,
) -> str:  # fmt: skip
    intent = await repo.intent_by_ref(session, provider.name, event.provider_ref, lock=True)
    if intent is None:
        log.warning("payment.succeeded %s for unknown payment %s", event.id, event.provider_ref)
        return "unknown_intent"
    if event.amount_fen != intent.amount_fen:
        log.error("payment.succeeded %s: %s fen, intent %s expects %s", event.id, event.amount_fen, intent.id,
                  intent.amount_fen)  # fmt: skip
        return "amount_mismatch"
    if not await repo.move_intent(
        session, intent.id, (IntentStatus.requires_payment, IntentStatus.failed), IntentStatus.succeeded,
        succeeded_at=now, failure_reason=None, updated_at=now,
    ):  # fmt: skip
        return "stale"  # captured before: another event said so already
    links = await repo.links_of(session, [intent.id])
    late: list[PaymentIntentOrder] = []
    for link in links:  # orders before the ledger head (lock order)
        result = await orders.mark_paid(
            session, link.order_id, link.amount_fen, payment_ref(intent.id), policy
        )
        if result in ("paid", "already_paid"):
            link.outcome = LinkOutcome.paid
        else:
            link.outcome = LinkOutcome.refunded_late
            late.append(link)
    await ledger.post(
        session, kind="capture", ref=payment_ref(intent.id), idempotency_key=f"capture:{intent.id}",
        postings=ledger.capture_postings(intent.amount_fen), memo=f"{provider.name} {event.provider_ref}"[:500],
    )  # fmt: skip
    for link in late:
        await _refund_late(session, intent, link, now)
    await session.flush()
    events.record(session, "payments.succeeded", {"intent_id": intent.id, "amount_fen": intent.amount_fen,
        "paid_order_ids": [x.order_id for x in links if x.outcome == LinkOutcome.paid],
        "refunded_order_ids": [x.order_id for x in late]})  # fmt: skip
    for deferred in await repo.deferred_events(session, provider.name, event.provider_ref):
        deferred.outcome = await _refund_succeeded(
            session, provider, msgspec.convert(deferred.payload, ProviderEvent), now
        )
    return "applied"


async def _fail(
    session: AsyncSession, provider: PaymentProvider, event: ProviderEvent, now: dt.datetime
) -> str:
    intent = await repo.intent_by_ref(session, provider.name, event.provider_ref, lock=True)
    if intent is None:
        return "unknown_intent"
    reason = (event.failure_reason or "the payment failed")[:200]
    if not await repo.move_intent(
        session, intent.id, (IntentStatus.requires_payment,), IntentStatus.failed, failed_at=now,
        failure_reason=reason, updated_at=now,
    ):  # fmt: skip
        return "stale"  # captured already (a success wins), or failed before
    events.record(session, "payments.failed", {"intent_id": intent.id, "reason": reason})
    return "applied"


async def _refund_succeeded(
    session: AsyncSession, provider: PaymentProvider, event: ProviderEvent, now: dt.datetime
) -> str:
    intent = await repo.intent_by_ref(session, provider.name, event.provider_ref, lock=True)
    if intent is None:
        return "unknown_intent"
    if intent.status not in CAPTURED:
        return "deferred"  # applied right after the capture (see _capture)
    refund = await repo.refund_by_provider_ref(session, event.refund_ref) if event.refund_ref else None
    if refund is None and event.refund_key and event.refund_key.startswith("trustlive-refund-"):
        number = event.refund_key.removeprefix("trustlive-refund-")
        refund = (
            await repo.get_refund(session, int(number)) if number.isdigit() and len(number) < 19 else None
        )
    if refund is None or refund.intent_id != intent.id:
        log.warning(
            "refund.succeeded %s matches no refund of ours (payment %s)", event.id, event.provider_ref
        )
        return "unmatched"
    if refund.amount_fen != event.amount_fen:
        log.error("refund.succeeded %s: %s fen, refund %s is %s", event.id, event.amount_fen, refund.id,
                  refund.amount_fen)  # fmt: skip
        return "amount_mismatch"
    if refund.provider_refund_ref is None:
        refund.provider_refund_ref = event.refund_ref
    if not await repo.mark_refund_succeeded(session, refund.id, now):
        return "stale"
    events.record(session, "payments.refund_succeeded", {"refund_id": refund.id, "order_id": refund.order_id,
                                                         "amount_fen": refund.amount_fen})  # fmt: skip
    return "applied"


# --- refunds ----------------------------------------------------------------------------------


async def _insert_refund(
    session: AsyncSession, intent: PaymentIntent, order_id: int, amount_fen: int, reason: str, key: str,
    request_hash: str, actor_id: int | None, now: dt.datetime,
) -> tuple[Refund, bool]:  # fmt: skip
    """Insert a pending refund under its key; ``(refund, False)`` if the key was taken already
    (a retry, or a concurrent request with the same key that committed first)."""
    item = Refund(
        intent_id=intent.id, order_id=order_id, amount_fen=amount_fen, status=RefundStatus.pending,
        reason=reason[:200], idempotency_key=key, request_hash=request_hash, created_by=actor_id,
        created_at=now, next_submit_at=now,
    )  # fmt: skip
    if (existing := await add_once(session, item, lambda: repo.refund_by_key(session, key))) is not None:
        return existing, False
    return item, True


async def _pay_back(session: AsyncSession, intent: PaymentIntent, item: Refund) -> None:
    """Move a refund's money out of escrow and count it on the intent. The provider is asked
    later (``tasks.submit_refunds``), once this transaction has committed."""
    await ledger.post(
        session, kind="refund", ref=f"refund:{item.id}", idempotency_key=f"refund:{item.id}",
        postings=ledger.refund_postings(item.amount_fen), memo=f"order {item.order_id}: {item.reason}"[:500],
    )  # fmt: skip
    if not await repo.add_intent_refund(session, intent.id, item.amount_fen):
        raise Conflict("refunds would exceed the payment", code="refund_exceeds_payment", field="amount_fen")
    events.record(session, "payments.refund_created", {"refund_id": item.id, "order_id": item.order_id,
                                                       "amount_fen": item.amount_fen, "reason": item.reason})  # fmt: skip


async def _refund_late(
    session: AsyncSession, intent: PaymentIntent, link: PaymentIntentOrder, now: dt.datetime
) -> None:
    """An order that could not take this payment gets its share back: cancelled at its pay
    deadline meanwhile (``late_payment``), or already paid by another of the buyer's payments
    (``duplicate_payment``). The order itself is left alone: this money never counted as its
    payment, so ``orders.record_refund`` does not apply."""
    reason = DUPLICATE_PAYMENT if await repo.paying_link(session, link.order_id) else LATE_PAYMENT
    item, created = await _insert_refund(
        session, intent, link.order_id, link.amount_fen, reason, f"late:{intent.id}:{link.order_id}",
        _hash(f"{link.order_id}:{link.amount_fen}"), None, now,
    )  # fmt: skip
    if created:
        await _pay_back(session, intent, item)


async def refund(
    session: AsyncSession,
    actor: Principal,
    order_id: int,
    amount_fen: int,
    reason: str,
    idempotency_key: str | None,
) -> Refund:
    """Refund part or all of a paid order: its shop's owner or staff, or ops.

    The order counts the refund (409 ``refund_exceeds_payment`` beyond what was paid, 409
    ``not_refundable`` for orders that were never paid, are cancelled or settled); escrow pays it
    back at once in the ledger; the provider is asked right after commit. The same key again
    returns the same refund; for another order or amount it is 422 ``idempotency_mismatch``.
    """
    key = check_key(idempotency_key)
    amount = _refund_amount(amount_fen)
    reason = " ".join(reason.split())[:200]
    if not reason:
        raise ValidationFailed("reason: say why the money goes back", field="reason")
    order = await orders.get_order(session, actor, order_id)  # 404 unless buyer, shop or ops
    if not actor.is_ops and not await catalog.is_shop_member(session, actor, order.shop_id):
        raise Forbidden("only the shop or the platform can refund an order", code="not_your_shop")
    return await refund_order(session, order_id, amount, reason, f"user:{actor.id}:{key}", actor_id=actor.id)


def _refund_amount(amount_fen: object) -> int:
    """A positive number of fen. Its upper bound is what the order has left to refund (checked by
    the order's own conditional update), not the price cap: an order may hold many items."""
    if (
        isinstance(amount_fen, bool)
        or not isinstance(amount_fen, int)
        or not 0 < amount_fen <= ledger.MAX_POSTING_FEN
    ):
        raise ValidationFailed("amount_fen: a positive whole number of fen", field="amount_fen")
    return amount_fen


async def refund_order(
    session: AsyncSession, order_id: int, amount_fen: int, reason: str, key: str, *,
    actor_id: int | None = None, lines: dict[int, int] | None = None, shipping_fen: int = 0,
) -> Refund:  # fmt: skip
    """A refund decided by a rule rather than asked for by a person at a form: an approved
    after-sales request, a failed inspection, an arbitration. The caller has checked who may
    decide it. ``key`` is stored as given (name it after what decided the refund, e.g.
    ``aftersales:12``): the same key again returns the same refund; for another order or amount
    it is 422 ``idempotency_mismatch``. ``lines`` and ``shipping_fen`` say what it pays back
    (``orders.record_refund``), so settlement takes it off the right lines."""
    amount = _refund_amount(amount_fen)
    reason = " ".join(reason.split())[:200] or "refund"
    parts = ",".join(f"{k}={v}" for k, v in sorted((lines or {}).items()))
    request_hash = _hash(
        f"{order_id}:{amount}" + (f":{parts}:{shipping_fen}" if parts or shipping_fen else "")
    )
    existing = await repo.refund_by_key(session, key)
    if existing is not None:
        return _replay_refund(existing, request_hash)
    link = await repo.paying_link(session, order_id)
    if link is None:
        raise InvalidTransition(f"order {order_id} has no captured payment to refund", code="not_refundable")
    intent = await repo.get_intent(session, link.intent_id, lock=True)
    assert intent is not None
    item, created = await _insert_refund(
        session, intent, order_id, amount, reason, key, request_hash, actor_id, utcnow()
    )
    if not created:
        return _replay_refund(item, request_hash)
    await orders.record_refund(session, order_id, amount, f"refund {format_fen(amount)}: {reason}",
                               lines=lines, shipping_fen=shipping_fen)  # fmt: skip
    await _pay_back(session, intent, item)
    return item


def _replay_refund(existing: Refund, request_hash: str) -> Refund:
    if existing.request_hash != request_hash:
        raise ValidationFailed("Idempotency-Key: already used for a different refund", field="Idempotency-Key",
                               code="idempotency_mismatch")  # fmt: skip
    return existing


async def due_refund_submissions(session: AsyncSession, now: dt.datetime, limit: int = 100) -> list[int]:
    return await repo.due_refund_submissions(session, now, limit)


async def submit_refund(session: AsyncSession, settings: Settings, refund_id: int, now: dt.datetime) -> bool:
    """Ask the provider for one pending refund (idempotent at the provider by our key). True if it
    was submitted now; False if someone else has it or it was submitted before."""
    item = await repo.get_refund(session, refund_id, lock=True)
    if item is None or item.status != RefundStatus.pending or item.provider_refund_ref is not None:
        return False
    intent = await repo.get_intent(session, item.intent_id)
    assert intent is not None and intent.provider_ref is not None
    provider = get_provider(settings, intent.provider)
    ref = await provider.refund(session, intent.provider_ref, item.amount_fen, provider_refund_key(item.id))
    item.provider_refund_ref = ref
    item.submitted_at = now
    item.submit_attempts += 1
    item.next_submit_at = None
    item.last_error = None
    await session.flush()
    return True


async def refund_submit_failed(session: AsyncSession, refund_id: int, error: str, now: dt.datetime) -> None:
    """Count a failed submission and try again later (exponential backoff, capped)."""
    item = await repo.get_refund(session, refund_id)
    if item is None or item.status != RefundStatus.pending or item.provider_refund_ref is not None:
        return
    item.submit_attempts += 1
    delay = min(REFUND_BACKOFF_BASE * 2 ** min(item.submit_attempts - 1, 16), REFUND_BACKOFF_MAX)
    item.next_submit_at = now + delay
    item.last_error = error[:2000]
    await session.flush()


# --- the sandbox's own pages ------------------------------------------------------------------


async def sandbox_charge(session: AsyncSession, ref: str) -> SandboxCharge:
    if not ref or len(ref) > 100:
        raise NotFound("no such payment at the sandbox", code="provider_payment_not_found")
    return await SandboxProvider("").charge(session, ref)


async def sandbox_answer(session: AsyncSession, settings: Settings, ref: str, pay: bool) -> SandboxCharge:
    """The buyer's answer on the sandbox pay page: Pay (capture, once) or Decline (a failed
    attempt; the page stays open). Either queues a signed webhook to us."""
    sandbox = get_provider(settings, SANDBOX)
    assert isinstance(sandbox, SandboxProvider)
    await sandbox_charge(session, ref)
    if pay:
        return await sandbox.pay(session, ref)
    return await sandbox.decline(session, ref)


# --- refund locks ---------------------------------------------------------------------------------


async def lock_refunds(session: AsyncSession, order_id: int) -> None:
    """Lock the intent that paid ``order_id`` (FOR UPDATE on PostgreSQL; SQLite serialises writers
    already), the lock ``refund_order`` takes and the first in the lock order. A caller that sizes
    a refund from the order's current figures (an after-sales request capped by what is left)
    takes it before reading them, so two such refunds of one order are sized one after the other
    and the second sees the first. An order without a captured payment: nothing to lock."""
    link = await repo.paying_link(session, order_id)
    if link is not None:
        await repo.get_intent(session, link.intent_id, lock=True)
