"""Shared pieces of the payment tests: a shop world (from the order tests), paying through the
sandbox as a buyer would, and reading the outcome straight from the tables."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import func, select

from tests.helpers import make_settings
from tests.orders.world import World, build
from trustlive.config import Settings
from trustlive.db import transaction
from trustlive.ledger import service as ledger
from trustlive.orders import service as orders
from trustlive.orders.models import Order
from trustlive.orders.schemas import ItemIn, OrderIn
from trustlive.payments import service, tasks
from trustlive.payments.models import PaymentIntent, Refund, SandboxWebhookDelivery, WebhookEvent
from trustlive.payments.providers import SandboxProvider, get_provider

__all__ = ["World", "build"]


def settings_for(url: str, tmp_path: Path) -> Settings:
    return make_settings(url, tmp_path)


def sandbox(settings: Settings) -> SandboxProvider:
    provider = get_provider(settings, "sandbox")
    assert isinstance(provider, SandboxProvider)
    return provider


async def place(w: World, buyer: int, *items: tuple[int, int], key: str) -> list[Order]:
    person = w.buyers[buyer]
    data = OrderIn(items=[ItemIn(sku_id=s, quantity=q) for s, q in items], address_id=w.addresses[person.id])  # type: ignore[arg-type]
    async with transaction(w.sessionmaker) as s:
        return (await orders.place_order(s, person, data, key)).orders


async def start(
    w: World, settings: Settings, buyer: int, order_ids: Sequence[int], key: str
) -> PaymentIntent:
    async with transaction(w.sessionmaker) as s:
        return await service.create_payment(s, w.buyers[buyer], order_ids, key, sandbox(settings))


async def buyer_pays(w: World, settings: Settings, intent: PaymentIntent) -> None:
    """The buyer presses "Pay" on the sandbox's page."""
    assert intent.provider_ref
    async with transaction(w.sessionmaker) as s:
        await service.sandbox_answer(s, settings, intent.provider_ref, pay=True)


async def buyer_declines(w: World, settings: Settings, intent: PaymentIntent) -> None:
    assert intent.provider_ref
    async with transaction(w.sessionmaker) as s:
        await service.sandbox_answer(s, settings, intent.provider_ref, pay=False)


async def deliver(w: World, settings: Settings, **knobs: object):  # type: ignore[no-untyped-def]
    return await tasks.deliver_webhooks(w.sessionmaker, settings, **knobs)  # type: ignore[arg-type]


async def settle_refunds(w: World, settings: Settings) -> int:
    """The background pass: submit decided refunds to the sandbox, deliver its webhooks."""
    submitted = await tasks.submit_refunds(w.sessionmaker, settings)
    await deliver(w, settings)
    return submitted


async def balance(w: World, account: str) -> int:
    async with transaction(w.sessionmaker) as s:
        return await ledger.balance(s, account)


async def ledger_ok(w: World) -> None:
    async with transaction(w.sessionmaker) as s:
        report = await ledger.verify(s)
        assert report.ok, report.problems
        total = sum(b.balance_fen for b in await ledger.balances(s))
    assert total == 0


async def order_row(w: World, order_id: int) -> Order:
    async with transaction(w.sessionmaker) as s:
        order = await s.get(Order, order_id)
        assert order is not None
        return order


async def intent_row(w: World, intent_id: int) -> PaymentIntent:
    async with transaction(w.sessionmaker) as s:
        intent = await s.get(PaymentIntent, intent_id)
        assert intent is not None
        return intent


async def refunds(w: World) -> list[Refund]:
    async with transaction(w.sessionmaker) as s:
        return list(await s.scalars(select(Refund).order_by(Refund.id)))


async def count(w: World, table: type) -> int:
    async with transaction(w.sessionmaker) as s:
        return await s.scalar(select(func.count()).select_from(table)) or 0


async def outcomes(w: World) -> list[tuple[str, str]]:
    async with transaction(w.sessionmaker) as s:
        rows = await s.execute(select(WebhookEvent.type, WebhookEvent.outcome).order_by(WebhookEvent.id))
        return [(t, o) for t, o in rows]


async def queued(w: World) -> list[SandboxWebhookDelivery]:
    async with transaction(w.sessionmaker) as s:
        rows = await s.scalars(
            select(SandboxWebhookDelivery)
            .where(SandboxWebhookDelivery.delivered_at.is_(None))
            .order_by(SandboxWebhookDelivery.id)
        )
        return list(rows)


def later(minutes: int = 16) -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes)
