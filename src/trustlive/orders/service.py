"""Order use cases: addresses, cart, checkout, the order state machine and its deadlines,
settlement of escrow.

Checkout is one transaction: it records the idempotency key, snapshots every line, claims
per-buyer limits and takes stock with conditional UPDATEs (taken last, so the hot SKU row is
locked only for the commit). Any refusal rolls the whole request back: no half order, no stock
lost. Every status change is a conditional UPDATE, so racing actors cannot both win.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import logging
import math
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from trustlive import events
from trustlive.accounts import service as accounts
from trustlive.accounts.service import Principal
from trustlive.catalog import service as catalog
from trustlive.config import Settings
from trustlive.db import add_once, transaction, utcnow
from trustlive.errors import (
    N_,
    Conflict,
    DomainError,
    FieldError,
    Forbidden,
    InvalidTransition,
    NotFound,
    ValidationFailed,
    require_idempotency_key,
    validated,
)
from trustlive.ledger import service as ledger
from trustlive.money import apply_rate_bp, format_fen
from trustlive.orders import repository as repo
from trustlive.orders.models import (
    Address,
    CartItem,
    Checkout,
    Order,
    OrderEvent,
    OrderLine,
    OrderStatus,
    ShopTerms,
)
from trustlive.orders.schemas import (
    AddressIn,
    AddressOut,
    CartItemIn,
    CartLineOut,
    CartOut,
    CartShopOut,
    EventOut,
    ItemIn,
    LineOut,
    OrderIn,
    OrderOut,
    ReturnsIn,
    ShipIn,
    ShopTermsIn,
    ShopTermsOut,
)

S = OrderStatus
# The state machine. Anything not listed is refused with 409 invalid_transition.
ALLOWED: dict[str, frozenset[str]] = {
    S.pending_payment: frozenset({S.paid, S.cancelled}),
    S.paid: frozenset({S.shipped, S.refunded}),
    S.shipped: frozenset({S.delivered, S.completed, S.refunded}),
    S.delivered: frozenset({S.completed, S.refunded}),
    S.completed: frozenset({S.settled, S.refunded}),
    S.settled: frozenset(),
    S.cancelled: frozenset(),
    S.refunded: frozenset(),
}
# What people call each status (shown through _(); the codes stay in URLs and CSS classes).
STATUS_LABELS = {
    "pending_payment": N_("Awaiting payment"),
    "paid": N_("Awaiting shipment"),
    "shipped": N_("Shipped"),
    "delivered": N_("Delivered"),
    "completed": N_("Completed"),
    "settled": N_("Settled"),
    "cancelled": N_("Cancelled"),
    "refunded": N_("Refunded"),
}
MAX_ADDRESSES = 20
MAX_CART_ITEMS = 100
DEFAULT_SETTLEMENT_DELAY_DAYS = 7

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OrderPolicy:
    pay_minutes: int = 15
    auto_confirm_days: int = 10
    ship_hours: int = 48  # ship-by deadline after payment; later shipments record their lateness
    platform_commission_share_bp: int = 0  # the platform's cut of creator commission

    @classmethod
    def from_settings(cls, settings: Settings) -> OrderPolicy:
        return cls(
            pay_minutes=settings.pay_deadline_minutes,
            auto_confirm_days=settings.auto_confirm_days,
            ship_hours=settings.ship_within_hours,
            platform_commission_share_bp=settings.platform_commission_share_bp,
        )


DEFAULT_POLICY = OrderPolicy()


def _from(*statuses: str) -> tuple[str, ...]:
    return tuple(statuses)


def _check_move(order: Order, to: str) -> None:
    if to not in ALLOWED[order.status]:
        raise InvalidTransition(f"a {order.status} order cannot become {to}", code="invalid_transition")


def _event(
    session: AsyncSession, order_id: int, before: str | None, after: str, actor: int | None, note: str = ""
) -> None:
    session.add(OrderEvent(order_id=order_id, from_status=before, to_status=after, actor_id=actor, note=note))


# --- addresses --------------------------------------------------------------------------------


def address_out(a: Address) -> AddressOut:
    return AddressOut(a.id, a.recipient, a.phone, a.region, a.detail, a.is_default)


async def add_address(session: AsyncSession, buyer: Principal, data: AddressIn) -> Address:
    data = validated(data)
    count = await repo.count_addresses(session, buyer.id)
    if count >= MAX_ADDRESSES:
        raise Conflict(f"you can keep at most {MAX_ADDRESSES} addresses", code="too_many_addresses")
    if data.is_default or count == 0:
        await repo.clear_default_address(session, buyer.id)
    address = Address(
        user_id=buyer.id, recipient=data.recipient.strip(), phone=data.phone.strip(), region=data.region.strip(),
        detail=data.detail.strip(), is_default=data.is_default or count == 0,
    )  # fmt: skip
    session.add(address)
    await session.flush()
    return address


async def list_addresses(session: AsyncSession, buyer: Principal) -> list[Address]:
    return await repo.list_addresses(session, buyer.id)


async def _own_address(session: AsyncSession, buyer: Principal, address_id: int) -> Address:
    address = await repo.get_address(session, address_id)
    # Someone else's address is "not found": no hint that it exists.
    if address is None or address.user_id != buyer.id or address.is_deleted:
        raise NotFound("address_id: no such address in your address book", field="address_id",
                       code="address_not_found")  # fmt: skip
    return address


async def delete_address(session: AsyncSession, buyer: Principal, address_id: int) -> None:
    address = await _own_address(session, buyer, address_id)
    address.is_deleted = True  # orders keep their own snapshot; the row stays for history
    address.is_default = False
    await session.flush()


# --- shop terms -------------------------------------------------------------------------------


# The shop's settlement delay tier, in days, from its trust score (docs/scores.md): the trust
# domain registers it when it is imported (``register_settlement_delay``). Orders cannot import
# trust, which reads orders; without it the delay stored in the shop's terms applies.
SettlementDelay = Callable[[AsyncSession, int], Awaitable[int]]
_settlement_delay: list[SettlementDelay] = []


def register_settlement_delay(fn: SettlementDelay) -> None:
    """``fn(session, shop_id) -> days`` decides every shop's settlement delay from now on
    (registering again replaces it)."""
    _settlement_delay[:] = [fn]


async def settlement_delay_days(session: AsyncSession, shop_id: int, terms: ShopTerms | None = None) -> int:
    """The settlement delay that applies to the shop now: its trust tier when the trust domain
    has registered one, otherwise the delay in its terms (the default without terms)."""
    if _settlement_delay:
        return await _settlement_delay[0](session, shop_id)
    return terms.settlement_delay_days if terms is not None else DEFAULT_SETTLEMENT_DELAY_DAYS


def terms_out(shop_id: int, terms: ShopTerms | None, delay_days: int | None = None) -> ShopTermsOut:
    """The terms as shown; ``delay_days`` is the settlement delay in force (``settlement_delay_days``)."""
    if terms is None:
        return ShopTermsOut(
            shop_id, 0, None, DEFAULT_SETTLEMENT_DELAY_DAYS if delay_days is None else delay_days
        )
    return ShopTermsOut(
        shop_id, terms.flat_fee_fen, terms.free_over_fen,
        terms.settlement_delay_days if delay_days is None else delay_days,
        terms.covers_return_shipping, dict(terms.return_address) if terms.return_address else None,
    )  # fmt: skip


async def _terms_out(session: AsyncSession, shop_id: int, terms: ShopTerms | None) -> ShopTermsOut:
    return terms_out(shop_id, terms, await settlement_delay_days(session, shop_id, terms))


async def _own_terms(session: AsyncSession, actor: Principal, shop_id: int) -> ShopTerms:
    """The shop's terms row for its owner to change (made with the defaults when missing)."""
    await catalog.require_shop_member(session, actor, shop_id, owner_only=True)
    terms = await repo.get_shop_terms(session, shop_id)
    if terms is None:
        terms = ShopTerms(shop_id=shop_id, settlement_delay_days=DEFAULT_SETTLEMENT_DELAY_DAYS, flat_fee_fen=0,
                          covers_return_shipping=False)  # fmt: skip
        session.add(terms)
    return terms


async def get_shop_terms(
    session: AsyncSession, shop_id: int, viewer: Principal | None = None, *, private: bool = False
) -> ShopTermsOut:
    """The shop's terms. The return address is left out unless the viewer is the shop's or ops
    (or ``private``: other domains that pass it on to a buyer with a return to send)."""
    await catalog.get_shop(session, shop_id)
    terms = await _terms_out(session, shop_id, await repo.get_shop_terms(session, shop_id))
    if not private and not (
        viewer is not None and (viewer.is_ops or await catalog.is_shop_member(session, viewer, shop_id))
    ):
        terms.return_address = None
    return terms


async def set_shipping(
    session: AsyncSession, actor: Principal, shop_id: int, data: ShopTermsIn
) -> ShopTermsOut:
    data = validated(data)
    terms = await _own_terms(session, actor, shop_id)
    terms.flat_fee_fen = data.flat_fee_fen
    terms.free_over_fen = data.free_over_fen
    await session.flush()
    return await _terms_out(session, shop_id, terms)


async def set_returns(session: AsyncSession, actor: Principal, shop_id: int, data: ReturnsIn) -> ShopTermsOut:
    """The shop's return address (where returned and failed-inspection parcels go) and whether it
    pays the postage of no-reason returns too (otherwise the buyer does; the shop always pays when
    the cause is its own)."""
    data = validated(data)
    terms = await _own_terms(session, actor, shop_id)
    a = data.return_address
    terms.return_address = {"recipient": a.recipient.strip(), "phone": a.phone.strip(),
                            "region": a.region.strip(), "detail": a.detail.strip()}  # fmt: skip
    terms.covers_return_shipping = data.covers_return_shipping
    await session.flush()
    return await _terms_out(session, shop_id, terms)


def shipping_fee(goods_fen: int, terms: ShopTerms | None) -> int:
    if terms is None:
        return 0
    if terms.free_over_fen is not None and goods_fen >= terms.free_over_fen:
        return 0
    return terms.flat_fee_fen


# --- cart -------------------------------------------------------------------------------------


async def add_to_cart(session: AsyncSession, buyer: Principal, data: CartItemIn) -> CartItem:
    data = validated(data)
    skus = await catalog.skus_for_sale(session, [data.sku_id])
    if data.sku_id not in skus or not skus[data.sku_id].on_sale:
        raise NotFound("sku_id: this item is not on sale", field="sku_id", code="not_on_sale")
    if data.creator_id is not None:
        await _check_creator(session, data.creator_id)
    item = await repo.cart_item_for_sku(session, buyer.id, data.sku_id)
    if item is None:
        if len(await repo.cart_items(session, buyer.id)) >= MAX_CART_ITEMS:
            raise Conflict(f"a cart holds at most {MAX_CART_ITEMS} items", code="cart_full")
        item = CartItem(buyer_id=buyer.id, sku_id=data.sku_id, quantity=0, source=data.source)
        session.add(item)
    item.quantity = min(item.quantity + data.quantity, 999)
    item.source, item.creator_id = data.source, data.creator_id  # the latest visit gets the credit
    await session.flush()
    return item


async def _own_cart_item(session: AsyncSession, buyer: Principal, item_id: int) -> CartItem:
    item = await repo.get_cart_item(session, item_id)
    if item is None or item.buyer_id != buyer.id:
        raise NotFound("no such item in your cart", code="cart_item_not_found")
    return item


async def set_cart_quantity(session: AsyncSession, buyer: Principal, item_id: int, quantity: int) -> None:
    if not 1 <= quantity <= 999:
        raise ValidationFailed("quantity: 1-999", field="quantity")
    item = await _own_cart_item(session, buyer, item_id)
    item.quantity = quantity
    await session.flush()


async def remove_from_cart(session: AsyncSession, buyer: Principal, item_id: int) -> None:
    item = await _own_cart_item(session, buyer, item_id)
    await session.delete(item)
    await session.flush()


async def view_cart(session: AsyncSession, buyer: Principal) -> CartOut:
    items = await repo.cart_items(session, buyer.id)
    skus = await catalog.skus_for_sale(session, [i.sku_id for i in items])
    by_shop: dict[int, list[CartLineOut]] = defaultdict(list)
    for item in items:
        sku = skus.get(item.sku_id)
        if sku is None:
            continue
        by_shop[sku.shop_id].append(CartLineOut(
            item.id, sku.sku_id, sku.product_id, sku.title, list(sku.option_values), sku.price_fen, item.quantity,
            sku.price_fen * item.quantity, item.source, item.creator_id, sku.on_sale,
        ))  # fmt: skip
    terms = await repo.shop_terms(session, list(by_shop))
    names = {s.id: s.name for s in await catalog.shops_by_ids(session, list(by_shop))}
    shops = []
    for shop_id, lines in by_shop.items():
        goods = sum(line.line_total_fen for line in lines if line.on_sale)
        fee = shipping_fee(goods, terms.get(shop_id)) if goods else 0
        shops.append(CartShopOut(shop_id, names.get(shop_id, ""), lines, goods, fee, goods + fee))
    return CartOut(shops, sum(s.total_fen for s in shops))


# --- checkout ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlacedCheckout:
    """A checkout as the batched path answers it: plain values, no ORM object to build."""

    id: int
    buyer_id: int
    total_fen: int


@dataclass(frozen=True)
class PlacedOrder:
    """An order as the batched path answers it: the columns a caller reads right after placing."""

    id: int
    checkout_id: int
    buyer_id: int
    shop_id: int
    status: str
    total_fen: int
    pay_deadline: dt.datetime


@dataclass(frozen=True)
class Placed:
    checkout: Checkout | PlacedCheckout
    orders: Sequence[Order | PlacedOrder]
    replayed: bool


# The same text as json.dumps(..., sort_keys=True), without building an encoder per request.
_CANONICAL_JSON = json.JSONEncoder(sort_keys=True)


def _request_hash(data: OrderIn, merged: dict[int, int]) -> str:
    canonical = {
        "items": sorted(merged.items()), "address_id": data.address_id, "source": data.source,
        "creator_id": data.creator_id, "note": data.note,
    }  # fmt: skip
    return hashlib.sha256(_CANONICAL_JSON.encode(canonical).encode()).hexdigest()


def check_idempotency_key(key: str | None) -> str:
    return require_idempotency_key(key, "order")


async def _check_creator(session: AsyncSession, creator_id: int) -> None:
    roles = await accounts.roles_of(session, creator_id)
    if "creator" not in roles:
        raise ValidationFailed("creator_id: not a creator's account", field="creator_id")


async def _replay(session: AsyncSession, checkout: Checkout, request_hash: str) -> Placed:
    if checkout.request_hash != request_hash:
        raise ValidationFailed("Idempotency-Key: already used for a different order", field="Idempotency-Key",
                               code="idempotency_mismatch")  # fmt: skip
    return Placed(checkout, await repo.orders_of_checkout(session, checkout.id), replayed=True)


async def place_order(
    session: AsyncSession,
    buyer: Principal,
    data: OrderIn,
    idempotency_key: str | None,
    policy: OrderPolicy = DEFAULT_POLICY,
) -> Placed:
    """Create one order per shop from ``data.items``, reserving stock atomically."""
    data = validated(data)
    key = check_idempotency_key(idempotency_key)
    merged: dict[int, int] = defaultdict(int)
    position: dict[int, int] = {}
    for i, item in enumerate(data.items):
        merged[item.sku_id] += item.quantity
        position.setdefault(item.sku_id, i)
    request_hash = _request_hash(data, merged)
    existing = await repo.find_checkout(session, buyer.id, key)
    if existing is not None:
        return await _replay(session, existing, request_hash)
    too_many = [
        FieldError(f"items[{position[s]}].quantity", "at most 999 of one SKU")
        for s, q in merged.items()
        if q > 999
    ]
    if too_many:
        raise ValidationFailed(too_many[0].message, fields=too_many)
    address = await _own_address(session, buyer, data.address_id)
    if data.creator_id is not None:
        await _check_creator(session, data.creator_id)
    skus = await catalog.skus_for_sale(session, list(merged))
    unavailable = [
        FieldError(f"items[{position[sku_id]}].sku_id", f"SKU {sku_id} is not on sale")
        for sku_id in merged
        if sku_id not in skus or not skus[sku_id].on_sale
    ]
    if unavailable:
        raise ValidationFailed(
            "; ".join(e.message for e in unavailable), fields=unavailable, code="not_on_sale"
        )
    return await _create_orders(
        session, buyer, data, key, request_hash, merged, position, skus, address, policy
    )


async def _create_orders(
    session: AsyncSession, buyer: Principal, data: OrderIn, key: str, request_hash: str,
    merged: dict[int, int], position: dict[int, int], skus: dict[int, catalog.SkuForSale],
    address: Address, policy: OrderPolicy,
) -> Placed:  # fmt: skip
    terms = await repo.shop_terms(session, sorted({skus[s].shop_id for s in merged}))
    now = utcnow()
    orders = _build_orders(buyer, data, merged, skus, terms, address, now, policy)
    checkout = Checkout(buyer_id=buyer.id, idempotency_key=key, request_hash=request_hash,
                        total_fen=sum(o.total_fen for o in orders), created_at=now)  # fmt: skip
    # A concurrent request with the same key may have committed first: answer as it did.
    if (
        existing := await add_once(session, checkout, lambda: repo.find_checkout(session, buyer.id, key))
    ) is not None:
        return await _replay(session, existing, request_hash)
    for order in orders:
        order.checkout_id = checkout.id
    session.add_all(orders)
    await session.flush()
    for order in orders:
        _event(session, order.id, None, S.pending_payment, buyer.id)
    events.record(session, "orders.placed", {"checkout_id": checkout.id, "order_ids": [o.id for o in orders]})
    # Limits, then stock, in SKU order (a fixed lock order: no deadlocks between multi-SKU orders).
    for sku_id in sorted(merged):
        limit = skus[sku_id].per_buyer_limit
        if limit is not None and not await repo.claim_purchase(
            session, buyer.id, sku_id, merged[sku_id], limit
        ):
            raise Conflict(
                f"items[{position[sku_id]}].quantity: at most {limit} per buyer", code="limit_exceeded",
                field=f"items[{position[sku_id]}].quantity",
            )  # fmt: skip
    for sku_id in sorted(merged):
        if not await catalog.reserve_stock(session, sku_id, merged[sku_id]):
            raise Conflict(f"items[{position[sku_id]}]: not enough stock", code="out_of_stock",
                           field=f"items[{position[sku_id]}].quantity")  # fmt: skip
    return Placed(checkout, orders, replayed=False)


async def checkout_cart(
    session: AsyncSession, buyer: Principal, address_id: int, idempotency_key: str | None,
    item_ids: list[int] | None = None, note: str = "", policy: OrderPolicy = DEFAULT_POLICY,
) -> Placed:  # fmt: skip
    """Turn cart items (all, or those named) into orders, one per shop, and empty those items.

    Every item keeps its own attribution (source, creator), and a checkout carries one: items are
    grouped by attribution and each group is placed as its own checkout, keyed ``key``, ``key#1``,
    ... so that a retry of the whole request finds all of them."""
    key = check_idempotency_key(idempotency_key)
    replayed = await _replay_cart_checkout(session, buyer, key)
    if replayed is not None:
        return replayed  # a double submit or a retry: the first request emptied those items
    items = await repo.cart_items(session, buyer.id, item_ids)
    if item_ids is not None and len(items) != len(set(item_ids)):
        raise NotFound(
            "item_ids: not all of these are in your cart", field="item_ids", code="cart_item_not_found"
        )
    if not items:
        raise ValidationFailed("the cart is empty", field="item_ids", code="cart_empty")
    groups: dict[tuple[str, int | None], list[CartItem]] = defaultdict(list)
    for item in items:
        groups[(item.source, item.creator_id)].append(item)
    placed: list[Placed] = []
    for n, ((source, creator_id), group) in enumerate(
        sorted(groups.items(), key=lambda g: (g[0][0], g[0][1] or 0))
    ):
        body = OrderIn(
            items=[ItemIn(sku_id=i.sku_id, quantity=i.quantity) for i in group],
            address_id=address_id,
            source=source,  # type: ignore[arg-type]
            creator_id=creator_id,
            note=note,
        )
        placed.append(await place_order(session, buyer, body, f"{key}#{n}" if n else key, policy))
    if not any(p.replayed for p in placed):
        await repo.delete_cart_items(session, buyer.id, [i.id for i in items])
    first = placed[0]
    return Placed(first.checkout, [o for p in placed for o in p.orders], replayed=first.replayed)


async def _replay_cart_checkout(session: AsyncSession, buyer: Principal, key: str) -> Placed | None:
    """The orders an earlier cart checkout with ``key`` placed (its groups use ``key#1``, ...)."""
    first = await repo.find_checkout(session, buyer.id, key)
    if first is None:
        return None
    orders = await repo.orders_of_checkout(session, first.id)
    n = 1
    while (more := await repo.find_checkout(session, buyer.id, f"{key}#{n}")) is not None:
        orders += await repo.orders_of_checkout(session, more.id)
        n += 1
    return Placed(first, orders, replayed=True)


# --- reading ----------------------------------------------------------------------------------


def order_out(order: Order, order_events: list[OrderEvent] | None = None) -> OrderOut:
    return OrderOut(
        id=order.id, checkout_id=order.checkout_id, buyer_id=order.buyer_id, shop_id=order.shop_id,
        status=order.status, goods_fen=order.goods_fen, shipping_fen=order.shipping_fen, total_fen=order.total_fen,
        paid_fen=order.paid_fen, refunded_fen=order.refunded_fen, address=dict(order.address), note=order.note,
        pay_deadline=order.pay_deadline, paid_at=order.paid_at, ship_by=order.ship_by,
        shipped_late_minutes=order.shipped_late_minutes, carrier=order.carrier, tracking_no=order.tracking_no,
        shipped_at=order.shipped_at, delivered_at=order.delivered_at, auto_confirm_at=order.auto_confirm_at,
        completed_at=order.completed_at, settle_at=order.settle_at, settled_at=order.settled_at,
        cancelled_at=order.cancelled_at, cancel_reason=order.cancel_reason, created_at=order.created_at,
        lines=[
            LineOut(
                line.id, line.sku_id, line.product_id, line.title, line.sku_code, list(line.option_values),
                line.unit_price_fen, line.quantity, line.line_total_fen, line.source, line.creator_id,
                line.commission_bp, line.service_fee_bp, line.return_window_days, line.requires_inspection,
                line.refunded_fen,
            )
            for line in order.lines
        ],
        events=[EventOut(e.from_status, e.to_status, e.note, e.at) for e in order_events or []],
        shipping_refunded_fen=order.shipping_refunded_fen, settlement_holds=order.settlement_holds,
    )  # fmt: skip


async def _load(session: AsyncSession, order_id: int) -> Order:
    order = await repo.get_order(session, order_id, with_lines=True)
    if order is None:
        raise NotFound(f"order {order_id} not found", code="order_not_found")
    return order


async def _visible(session: AsyncSession, viewer: Principal, order: Order) -> bool:
    return (
        order.buyer_id == viewer.id
        or viewer.is_ops
        or await catalog.is_shop_member(session, viewer, order.shop_id)
    )


async def get_order(session: AsyncSession, viewer: Principal, order_id: int) -> OrderOut:
    """The order for its buyer, its shop's staff and ops; 404 for everyone else."""
    order = await _load(session, order_id)
    if not await _visible(session, viewer, order):
        raise NotFound(f"order {order_id} not found", code="order_not_found")
    return order_out(order, await repo.events_of(session, order.id))


async def load_order(session: AsyncSession, order_id: int) -> OrderOut:
    """For other domains, which check who may see it themselves (after-sales, inspection,
    reviews): the order with its lines and timeline; 404 when there is none."""
    order = await _load(session, order_id)
    return order_out(order, await repo.events_of(session, order.id))


async def lock_order(session: AsyncSession, order_id: int) -> str:
    """For other domains' moves that must not race a refund (the QC warehouse forwarding an item):
    hold the order's row until commit and return its status (404 when there is none). Lock order:
    payment intent → order → stock → ledger head; refunds lock the intent first, so never take a
    payment intent's lock after this one."""
    status = await repo.lock_order(session, order_id)
    if status is None:
        raise NotFound(f"order {order_id} not found", code="order_not_found")
    return status


async def orders_by_ids(session: AsyncSession, order_ids: list[int]) -> dict[int, OrderOut]:
    """For other domains' lists: orders with their lines (no timeline), in one query."""
    return {o.id: order_out(o) for o in await repo.orders_with_lines(session, sorted(set(order_ids)))}


@dataclass(frozen=True)
class PastOrder:
    order_id: int
    at: dt.datetime  # when it was paid (placed, if the payment time is unknown)
    title: str  # the first matching line's product title (+ "…" when there are more lines)
    options: tuple[str, ...]  # that line's option values (size, colour)
    quantity: int
    spent_fen: int


@dataclass(frozen=True)
class CustomerHistory:
    """What a buyer has bought from a creator (``customer_history``)."""

    orders: int
    spent_fen: int
    recent: tuple[PastOrder, ...]
    options: tuple[str, ...]  # every option value bought (sizes, colours), most frequent first
    first_at: dt.datetime | None
    last_at: dt.datetime | None


BOUGHT_STATUSES = (S.paid, S.shipped, S.delivered, S.completed, S.settled)


async def customer_history(
    session: AsyncSession, buyer_id: int, creator_id: int, *, recent: int = 5, scan: int = 500
) -> CustomerHistory:
    """A buyer's paid orders (paid, shipped, delivered, completed, settled: never pending or
    cancelled) bought from a creator: with a line attributed to the creator, or from a shop the
    creator owns or staffs. Spent is what the buyer paid for the matching lines (a whole order
    from the creator's shop), net of refunds. The newest ``scan`` orders are looked at."""
    shop_ids = [shop.id for shop in await catalog.shops_of_user(session, creator_id)]
    rows = await repo.bought_from(session, buyer_id, creator_id, shop_ids, BOUGHT_STATUSES, scan)
    counts: dict[str, int] = defaultdict(int)
    past: list[PastOrder] = []
    spent = 0
    for order in rows:
        whole = order.shop_id in shop_ids
        lines = [ln for ln in order.lines if whole or ln.creator_id == creator_id]
        if not lines:
            continue
        order_spent = (
            order.paid_fen - order.refunded_fen
            if whole
            else sum(ln.line_total_fen - ln.refunded_fen for ln in lines)
        )
        spent += order_spent
        for ln in lines:
            for value in ln.option_values or []:
                counts[str(value)] += ln.quantity
        first = lines[0]
        title = first.title + (" …" if len(lines) > 1 else "")
        past.append(PastOrder(order.id, order.paid_at or order.created_at, title, tuple(first.option_values or ()),
                              sum(ln.quantity for ln in lines), order_spent))  # fmt: skip
    options = tuple(sorted(counts, key=lambda v: (-counts[v], v)))
    return CustomerHistory(
        orders=len(past), spent_fen=spent, recent=tuple(past[:recent]), options=options,
        first_at=past[-1].at if past else None, last_at=past[0].at if past else None,
    )  # fmt: skip


async def list_my_orders(
    session: AsyncSession, buyer: Principal, *, statuses: list[str] | None, before_id: int | None, limit: int
) -> list[Order]:
    _check_statuses(statuses)
    return await repo.list_orders(
        session, buyer_id=buyer.id, statuses=statuses, before_id=before_id, limit=limit
    )


async def list_shop_orders(
    session: AsyncSession, actor: Principal, shop_id: int, *, statuses: list[str] | None,
    before_id: int | None, limit: int,
) -> list[Order]:  # fmt: skip
    if not actor.is_ops:
        await catalog.require_shop_member(session, actor, shop_id)
    _check_statuses(statuses)
    return await repo.list_orders(
        session, shop_id=shop_id, statuses=statuses, before_id=before_id, limit=limit
    )


@dataclass(frozen=True)
class OverdueShipments:
    orders: list[OrderOut]
    total: int  # all overdue orders; ``orders`` holds the longest overdue first, at most ``limit``


async def overdue_shipments(
    session: AsyncSession, actor: Principal, now: dt.datetime | None = None, limit: int = 200
) -> OverdueShipments:
    """For ops: paid orders that should have shipped by now (past ``ship_by``), the longest
    overdue first. How late each one leaves is recorded when it ships and counts in the scores."""
    if not actor.is_ops:
        raise Forbidden("only ops can see every shop's overdue shipments", code="ops_only")
    orders, total = await repo.overdue_shipments(session, now or utcnow(), limit)
    return OverdueShipments([order_out(o) for o in orders], total)


def _check_statuses(statuses: list[str] | None) -> None:
    for status in statuses or []:
        if status not in ALLOWED:
            raise ValidationFailed(f"status: unknown status {status!r}", field="status")


async def payable_orders(session: AsyncSession, buyer: Principal, order_ids: list[int]) -> list[Order]:
    """For payments: the buyer's orders that still await payment (else 404 / 409)."""
    orders = await repo.orders_with_lines(session, order_ids)
    if len(orders) != len(set(order_ids)) or any(o.buyer_id != buyer.id for o in orders):
        raise NotFound("order not found", code="order_not_found")
    for order in orders:
        if order.status != S.pending_payment:
            raise Conflict(f"order {order.id} is {order.status}, not awaiting payment", code="not_payable")
    return orders


async def placed_with_key(session: AsyncSession, buyer: Principal, idempotency_key: str) -> list[Order]:
    """The orders the buyer placed under this idempotency key (none if the key is unused): lets a
    script that places orders again (the demo stories) find them without repeating the request."""
    checkout = await repo.find_checkout(session, buyer.id, idempotency_key)
    return await repo.orders_of_checkout(session, checkout.id) if checkout is not None else []


async def orders_of_checkout(session: AsyncSession, buyer: Principal, checkout_id: int) -> list[Order]:
    orders = await repo.orders_of_checkout(session, checkout_id)
    if not orders or orders[0].buyer_id != buyer.id:
        raise NotFound(f"checkout {checkout_id} not found", code="checkout_not_found")
    return orders


# --- the state machine ------------------------------------------------------------------------


async def mark_paid(
    session: AsyncSession,
    order_id: int,
    amount_fen: int,
    payment_ref: str,
    policy: OrderPolicy = DEFAULT_POLICY,
) -> str:
    """Record a captured payment and start the ship-by clock. Returns "paid", "already_paid" (same
    payment seen before) or "not_payable" (cancelled meanwhile, or paid by another payment): the
    caller refunds then."""
    order = await _load(session, order_id)
    if order.status != S.pending_payment:
        if order.payment_ref == payment_ref and order.paid_fen == amount_fen:
            return "already_paid"
        return "not_payable"
    if amount_fen != order.total_fen:
        raise Conflict(f"payment of {amount_fen} fen does not match order total {order.total_fen}",
                       code="amount_mismatch")  # fmt: skip
    now = utcnow()
    if not await repo.transition(session, order.id, _from(S.pending_payment), S.paid, paid_fen=amount_fen,
                                 paid_at=now, payment_ref=payment_ref, updated_at=now,
                                 ship_by=now + dt.timedelta(hours=policy.ship_hours)):  # fmt: skip
        return "not_payable"
    _event(session, order.id, S.pending_payment, S.paid, None, f"payment {payment_ref}")
    events.record(session, "orders.paid", {"order_id": order.id, "amount_fen": amount_fen})
    return "paid"


async def _release(session: AsyncSession, order: Order) -> None:
    for line in order.lines:
        await catalog.release_stock(session, line.sku_id, line.quantity)
        await repo.release_purchase(session, order.buyer_id, line.sku_id, line.quantity)


async def cancel_order(
    session: AsyncSession, actor: Principal, order_id: int, reason: str = "buyer_cancelled"
) -> OrderOut:
    """The buyer (or ops) cancels an unpaid order; its stock goes back on sale."""
    order = await _load(session, order_id)
    if order.buyer_id != actor.id and not actor.is_ops:
        raise NotFound(f"order {order_id} not found", code="order_not_found")
    await _cancel(session, order, reason[:64] or "buyer_cancelled", actor.id)
    return order_out(await _load(session, order_id))


async def _cancel(session: AsyncSession, order: Order, reason: str, actor_id: int | None) -> bool:
    _check_move(order, S.cancelled)
    now = utcnow()
    if not await repo.transition(session, order.id, _from(S.pending_payment), S.cancelled, cancelled_at=now,
                                 cancel_reason=reason, updated_at=now):  # fmt: skip
        return False  # paid or cancelled a moment ago: nothing to give back
    await _release(session, order)
    _event(session, order.id, S.pending_payment, S.cancelled, actor_id, reason)
    events.record(session, "orders.cancelled", {"order_id": order.id, "reason": reason})
    return True


async def expire_order(session: AsyncSession, order_id: int, now: dt.datetime) -> bool:
    """The pay-deadline sweeper's step: cancel if still unpaid past its deadline (idempotent)."""
    order = await _load(session, order_id)
    if order.status != S.pending_payment or order.pay_deadline > now:
        return False
    return await _cancel(session, order, "payment_timeout", None)


async def ship_order(session: AsyncSession, actor: Principal, order_id: int, data: ShipIn) -> OrderOut:
    data = validated(data)
    order = await _load(session, order_id)
    await _require_seller(session, actor, order)
    _check_move(order, S.shipped)
    now = utcnow()
    if not await repo.transition(session, order.id, _from(S.paid), S.shipped, carrier=data.carrier.strip(),
                                 tracking_no=data.tracking_no.strip(), shipped_at=now, updated_at=now,
                                 shipped_late_minutes=late_minutes(order.ship_by, now)):  # fmt: skip
        raise InvalidTransition("the order changed meanwhile; reload it", code="invalid_transition")
    _event(session, order.id, S.paid, S.shipped, actor.id, f"{data.carrier} {data.tracking_no}")
    events.record(session, "orders.shipped", {"order_id": order.id})
    return order_out(await _load(session, order_id))


def late_minutes(ship_by: dt.datetime | None, shipped_at: dt.datetime) -> int | None:
    """How late a shipment left, in whole minutes begun (0: on time; None: no deadline was set)."""
    if ship_by is None:
        return None
    return max(0, math.ceil((shipped_at - ship_by).total_seconds() / 60))


async def mark_delivered(
    session: AsyncSession, actor: Principal, order_id: int, policy: OrderPolicy = DEFAULT_POLICY, *,
    inspected_ok: bool = False,
) -> OrderOut:  # fmt: skip
    """Delivery confirmed by the seller or ops (when the tracking service has not said so yet).
    Starts the auto-confirm clock. An inspected order is refused unless the caller has checked
    that the QC warehouse has sent it on (``inspected_ok``: ``fulfillment.service.deliver``)."""
    order = await _load(session, order_id)
    if not actor.is_ops:
        await _require_seller(session, actor, order)
    if _inspected(order) and not (inspected_ok and actor.is_ops):
        raise InvalidTransition("this order goes through the QC warehouse: the warehouse's parcel "
                                "delivers it", code="inspection_route")  # fmt: skip
    _check_move(order, S.delivered)
    if not await _deliver(session, order.id, utcnow(), actor.id, "", policy):
        raise InvalidTransition("the order changed meanwhile; reload it", code="invalid_transition")
    return order_out(await _load(session, order_id))


async def carrier_delivered(
    session: AsyncSession, order_id: int, at: dt.datetime, carrier: str, policy: OrderPolicy = DEFAULT_POLICY
) -> bool:
    """The tracking service reports the parcel delivered at ``at``: the same move as
    ``mark_delivered``, dated by the carrier. False when the order is no longer shipped (the
    seller marked it delivered already, or it was refunded): nothing to do then."""
    return await _deliver(session, order_id, at, None, f"delivered ({carrier})", policy)


async def _deliver(
    session: AsyncSession,
    order_id: int,
    at: dt.datetime,
    actor_id: int | None,
    note: str,
    policy: OrderPolicy,
) -> bool:
    auto = at + dt.timedelta(days=policy.auto_confirm_days)
    if not await repo.transition(session, order_id, _from(S.shipped), S.delivered, delivered_at=at,
                                 auto_confirm_at=auto, updated_at=utcnow()):  # fmt: skip
        return False
    _event(session, order_id, S.shipped, S.delivered, actor_id, note)
    events.record(session, "orders.delivered", {"order_id": order_id})
    return True


async def confirm_receipt(session: AsyncSession, buyer: Principal, order_id: int) -> OrderOut:
    """确认收货: the buyer says the goods arrived. Starts the return window and settlement clock."""
    order = await _load(session, order_id)
    if order.buyer_id != buyer.id:
        raise NotFound(f"order {order_id} not found", code="order_not_found")
    if order.status == S.shipped and _inspected(order):
        raise InvalidTransition("the goods are still with the inspection lab or on their way from it",
                                code="awaiting_inspection")  # fmt: skip
    await _complete(session, order, buyer.id, "confirmed by buyer")
    return order_out(await _load(session, order_id))


async def auto_confirm(session: AsyncSession, order_id: int, now: dt.datetime) -> bool:
    order = await _load(session, order_id)
    if order.status != S.delivered or order.auto_confirm_at is None or order.auto_confirm_at > now:
        return False
    return await _complete(session, order, None, "confirmed automatically")


async def _complete(session: AsyncSession, order: Order, actor_id: int | None, note: str) -> bool:
    _check_move(order, S.completed)
    now = utcnow()
    delay = await settlement_delay_days(
        session, order.shop_id, await repo.get_shop_terms(session, order.shop_id)
    )
    window = max((line.return_window_days for line in order.lines), default=0)
    # Escrow is split once the return window has closed and the shop's delay tier has passed.
    settle_at = now + dt.timedelta(days=max(window, delay))
    before = order.status
    if not await repo.transition(session, order.id, _from(S.shipped, S.delivered), S.completed, completed_at=now,
                                 settle_at=settle_at, updated_at=now):  # fmt: skip
        return False
    _event(session, order.id, before, S.completed, actor_id, note)
    events.record(session, "orders.completed", {"order_id": order.id})
    return True


def _inspected(order: Order) -> bool:
    """The order travels seller -> QC warehouse -> buyer (先鉴后发)."""
    return any(line.requires_inspection for line in order.lines)


async def _require_seller(session: AsyncSession, actor: Principal, order: Order) -> None:
    if not await catalog.is_shop_member(session, actor, order.shop_id):
        if order.buyer_id == actor.id:
            raise Forbidden("only the shop can do this", code="not_your_shop")
        raise NotFound(f"order {order.id} not found", code="order_not_found")


async def record_refund(
    session: AsyncSession, order_id: int, amount_fen: int, note: str = "", *,
    lines: dict[int, int] | None = None, shipping_fen: int = 0,
) -> Order:  # fmt: skip
    """For payments: count a refund. A full refund ends the order as refunded (and puts the stock
    back when nothing was shipped). Refunds after settlement are refused: escrow is gone.

    ``lines`` (order line id -> fen) and ``shipping_fen`` say what the refund is for (a returned
    line, the shipping fee): settlement takes those amounts off exactly those lines, so a creator
    loses commission only on what came back. The rest of ``amount_fen``, if any, is spread over
    the goods pro rata at settlement (``split_order``)."""
    order = await _load(session, order_id)
    lines = dict(lines or {})
    if amount_fen <= 0:
        raise ValidationFailed("amount_fen: must be positive", field="amount_fen")
    if (
        any(v <= 0 for v in lines.values())
        or shipping_fen < 0
        or sum(lines.values()) + shipping_fen > amount_fen
    ):
        raise ValidationFailed("amount_fen: the parts of a refund cannot exceed it", field="amount_fen")
    if order.status in (S.pending_payment, S.cancelled, S.refunded, S.settled):
        raise InvalidTransition(f"a {order.status} order cannot be refunded", code="not_refundable")
    known = {line.id: line for line in order.lines}
    for line_id, fen in sorted(lines.items()):
        line = known.get(line_id)
        if line is None:
            raise NotFound(
                f"line_id: order {order.id} has no line {line_id}", field="line_id", code="line_not_found"
            )
        if not await repo.add_line_refund(session, line_id, fen):
            raise Conflict(f"refunds for this line would exceed its {line.line_total_fen} fen",
                           code="refund_exceeds_line", field="amount_fen")  # fmt: skip
    if shipping_fen and not await repo.add_shipping_refund(session, order.id, shipping_fen):
        raise Conflict(f"refunds would exceed the {order.shipping_fen} fen of shipping",
                       code="refund_exceeds_shipping", field="amount_fen")  # fmt: skip
    if not await repo.add_refund(session, order.id, amount_fen):
        now_status = (await _load(session, order.id)).status
        if now_status not in repo.REFUNDABLE:  # settled (or refunded) since it was read
            raise InvalidTransition(f"a {now_status} order cannot be refunded", code="not_refundable")
        raise Conflict(f"refunds would exceed the {order.paid_fen} fen paid", code="refund_exceeds_payment",
                       field="amount_fen")  # fmt: skip
    now = utcnow()
    order = await _load(session, order_id)
    if order.refunded_fen == order.paid_fen:
        before = order.status
        if await repo.transition(session, order.id, _from(S.paid, S.shipped, S.delivered, S.completed),
                                 S.refunded, updated_at=now):  # fmt: skip
            if before == S.paid:
                await _release(session, order)
            _event(session, order.id, before, S.refunded, None, note or "refunded in full")
    else:
        _event(session, order.id, order.status, order.status, None, note or f"refunded {amount_fen} fen")
    events.record(session, "orders.refunded", {"order_id": order.id, "amount_fen": amount_fen})
    return await _load(session, order_id)


# --- settlement -------------------------------------------------------------------------------


async def hold_settlement(session: AsyncSession, order_id: int) -> None:
    """For after-sales: while a request is open the order's escrow is not split (a refund may
    still have to come out of it). 409 ``already_settled`` when it is too late for that."""
    if not await repo.add_settlement_hold(session, order_id, 1):
        raise InvalidTransition("this order has been settled; after-sales is closed for it",
                                code="already_settled")  # fmt: skip


async def release_settlement(session: AsyncSession, order_id: int) -> None:
    """The request is closed: settlement goes ahead at ``settle_at`` (at once if that has passed)."""
    await repo.add_settlement_hold(session, order_id, -1)


@dataclass(frozen=True)
class LineSplit:
    """One line's part of a split: its base (total minus its refunds) and who gets what of it."""

    line_id: int
    product_id: int
    sku_id: int
    base_fen: int
    fee_fen: int
    creator_id: int | None
    creator_fen: int
    platform_commission_fen: int
    shop_fen: int


@dataclass(frozen=True)
class Split:
    escrow_fen: int
    fee_fen: int
    creator_fen: dict[int, int]
    platform_commission_fen: int
    shop_fen: int
    lines: tuple[LineSplit, ...] = ()


# Another domain's share of a settlement (a consignor's proceeds, a co-stream partner's cut): given
# the order and its split, the postings that move money on from the shop's or the creators'
# payables. They are posted in the settlement's own ledger transaction, so the money never sits in
# a wallet it could be paid out of meanwhile.
SettlementShare = Callable[[AsyncSession, Order, Split], Awaitable[list[tuple[str, int]]]]
_settlement_shares: dict[str, SettlementShare] = {}


def add_settlement_share(name: str, share: SettlementShare) -> None:
    """Register ``share`` (by name: registering again replaces it) for every settlement."""
    _settlement_shares[name] = share


def split_order(order: Order, commission_share_bp: int) -> Split:
    """How an order's escrow is divided. A refund made for a line (a return) comes off that line,
    one made for shipping off shipping; any other refund comes off the goods still unrefunded,
    pro rata over lines (largest remainder, so the fen add up), then off shipping. Per line: the
    category's service fee and the creator's commission on the line's base (its total minus its
    refunds: the commission base); the commission is capped so the shop's share never goes
    negative; the platform keeps ``commission_share_bp`` of each commission; the shop gets the
    rest, shipping included."""
    escrow = order.paid_fen - order.refunded_fen
    remaining = [line.line_total_fen - line.refunded_fen for line in order.lines]
    unallocated = (
        order.refunded_fen - sum(line.refunded_fen for line in order.lines) - order.shipping_refunded_fen
    )
    pool = sum(remaining)
    goods_refund = min(max(unallocated, 0), pool)
    shares = [r * goods_refund for r in remaining]
    cuts = [s // pool if pool else 0 for s in shares]
    leftover = goods_refund - sum(cuts)
    by_remainder = sorted(range(len(shares)), key=lambda i: -(shares[i] % pool if pool else 0))
    for i in by_remainder[:leftover]:
        cuts[i] += 1
    fee = 0
    platform = 0
    creator: dict[int, int] = defaultdict(int)
    lines: list[LineSplit] = []
    for line, left, cut in zip(order.lines, remaining, cuts, strict=True):
        base = max(left - cut, 0)
        line_fee = apply_rate_bp(base, line.service_fee_bp)
        commission = min(apply_rate_bp(base, line.commission_bp), base - line_fee) if line.creator_id else 0
        keep = apply_rate_bp(commission, commission_share_bp)
        fee += line_fee
        platform += keep
        if line.creator_id and commission - keep:
            creator[line.creator_id] += commission - keep
        lines.append(LineSplit(line.id, line.product_id, line.sku_id, base, line_fee, line.creator_id,
                               commission - keep, keep, base - line_fee - commission))  # fmt: skip
    shop = escrow - fee - platform - sum(creator.values())
    return Split(escrow, fee, dict(creator), platform, shop, tuple(lines))


def settlement_memo(order: Order, split: Split) -> str:
    """The split in one line, shown on every wallet statement the settlement touches."""
    commission = split.platform_commission_fen + sum(split.creator_fen.values())
    parts = [
        f"order {order.id}: goods {format_fen(order.goods_fen)} + shipping {format_fen(order.shipping_fen)}"
    ]
    if order.refunded_fen:
        parts.append(f"- refunds {format_fen(order.refunded_fen)}")
    parts.append(f"- service fee {format_fen(split.fee_fen)}")
    if commission:
        parts.append(f"- commission {format_fen(commission)}")
    return " ".join(parts) + f" = shop {format_fen(split.shop_fen)}"


async def settle_order(
    session: AsyncSession, order_id: int, now: dt.datetime, policy: OrderPolicy = DEFAULT_POLICY
) -> bool:
    """Split a completed order's escrow through the ledger once its settle_at has come."""
    order = await _load(session, order_id)
    if order.status != S.completed or order.settle_at is None or order.settle_at > now:
        return False
    if order.settlement_holds:
        return False  # an after-sales request is open: its refund must come out of escrow first
    split = split_order(order, policy.platform_commission_share_bp)
    if not await repo.transition(
        session,
        order.id,
        _from(S.completed),
        S.settled,
        unheld=True,
        refunded_fen=order.refunded_fen,
        settled_at=now,
        updated_at=now,
    ):  # the split was made from this read: a refund committed meanwhile means split again later
        return False
    postings = [
        (ledger.ESCROW, -split.escrow_fen),
        (ledger.PLATFORM_FEE_REVENUE, split.fee_fen),
        (ledger.PLATFORM_COMMISSION_REVENUE, split.platform_commission_fen),
        (ledger.shop_payable(order.shop_id), split.shop_fen),
        *[(ledger.creator_payable(uid), fen) for uid, fen in sorted(split.creator_fen.items())],
    ]
    for name in sorted(_settlement_shares):
        postings += await _settlement_shares[name](session, order, split)
    postings = ledger.compact(postings)
    if postings:
        await ledger.post(session, kind="settlement", ref=f"order:{order.id}", idempotency_key=f"settle:order:{order.id}",
                          postings=postings, memo=settlement_memo(order, split))  # fmt: skip
    _event(
        session, order.id, S.completed, S.settled, None, f"shop {split.shop_fen} fen, fee {split.fee_fen} fen"
    )
    events.record(session, "orders.settled", {"order_id": order.id, "shop_fen": split.shop_fen})
    return True


# --- batched checkout (flash sales) -----------------------------------------------------------


@dataclass(eq=False)  # compared by identity: field-by-field equality made the batch quadratic
class CheckoutRequest:
    buyer: Principal
    data: OrderIn
    key: str
    result: Placed | DomainError | None = None
    # Filled in while the batch is processed.
    merged: dict[int, int] | None = None
    position: dict[int, int] | None = None
    request_hash: str = ""


class StockContention(Exception):
    """An optimistic batch found its stock taken meanwhile: run it again with the rows locked."""


async def place_orders_batch(
    session: AsyncSession,
    requests: list[CheckoutRequest],
    policy: OrderPolicy = DEFAULT_POLICY,
    *,
    lock: bool = True,
) -> list[CheckoutRequest]:
    """Place many independent orders in ONE transaction (group commit).

    The same rules as ``place_order``, decided per request: a request that fails gets its error
    in ``result`` and leaves nothing behind, the others go through. Reads are made once for the
    whole batch, stock and per-buyer counts are locked once (in key order, like ``place_order``)
    and allocated in arrival order, rows are inserted in bulk, and one commit acknowledges all.
    Requests whose key another transaction committed meanwhile are answered after the commit by
    the caller (``result`` stays None)."""
    live: list[CheckoutRequest] = []
    for r in requests:
        try:
            r.data = validated(r.data)
            r.key = check_idempotency_key(r.key)
            merged: dict[int, int] = defaultdict(int)
            position: dict[int, int] = {}
            for i, item in enumerate(r.data.items):
                merged[item.sku_id] += item.quantity
                position.setdefault(item.sku_id, i)
            if any(q > 999 for q in merged.values()):
                raise ValidationFailed("items: at most 999 of one SKU", field="items")
            r.merged, r.position, r.request_hash = dict(merged), position, _request_hash(r.data, merged)
            live.append(r)
        except DomainError as err:
            r.result = err
    # Keys are not looked up first: a repeated key conflicts at the checkout insert below and is
    # answered after the commit, as a replay. Only requests refused here are checked for an
    # earlier checkout (a replay is answered as it was, even if it would be refused today).
    seen: dict[tuple[int, str], CheckoutRequest] = {}
    fresh: list[CheckoutRequest] = []
    for r in live:
        pair = (r.buyer.id, r.key)
        if pair in seen:
            continue  # the same request twice in one batch: answered after commit, like a replay
        seen[pair] = r
        fresh.append(r)
    addresses = await repo.addresses_by_ids(session, [r.data.address_id for r in fresh])
    creators = {r.data.creator_id for r in fresh if r.data.creator_id is not None}
    roles = await accounts.roles_of_many(session, sorted(creators)) if creators else {}
    skus = await catalog.skus_for_sale(session, sorted({s for r in fresh for s in r.merged or {}}))
    ok: list[CheckoutRequest] = []
    for r in fresh:
        address = addresses.get(r.data.address_id)
        if address is None or address.user_id != r.buyer.id or address.is_deleted:
            r.result = NotFound("address_id: no such address in your address book", field="address_id",
                                code="address_not_found")  # fmt: skip
        elif r.data.creator_id is not None and "creator" not in roles.get(r.data.creator_id, set()):
            r.result = ValidationFailed("creator_id: not a creator's account", field="creator_id")
        elif bad := [s for s in r.merged or {} if s not in skus or not skus[s].on_sale]:
            r.result = ValidationFailed(f"SKU {bad[0]} is not on sale", code="not_on_sale",
                                        field=f"items[{(r.position or {})[bad[0]]}].sku_id")  # fmt: skip
        else:
            ok.append(r)
    refused = [r for r in fresh if r.result is not None]
    if refused:
        existing = await repo.find_checkouts(session, [(r.buyer.id, r.key) for r in refused])
        for r in refused:
            if (checkout := existing.get((r.buyer.id, r.key))) is not None:
                r.result = await _replay_or_error(session, checkout, r.request_hash)
    now = utcnow()
    terms = await repo.shop_terms(session, sorted({skus[s].shop_id for r in ok for s in r.merged or {}}))
    drafts = {
        id(r): _order_rows(
            r.buyer, r.data, r.merged or {}, skus, terms, addresses[r.data.address_id], now, policy
        )
        for r in ok
    }
    ids = await repo.insert_checkouts(session, [
        {"buyer_id": r.buyer.id, "idempotency_key": r.key, "request_hash": r.request_hash,
         "total_fen": sum(row["total_fen"] for row, _ in drafts[id(r)]), "created_at": now}
        for r in ok
    ])  # fmt: skip
    # The rest already have a checkout (a repeated key, or a twin another worker committed
    # meanwhile): they are answered after the commit, as replays.
    ok = [r for r in ok if (r.buyer.id, r.key) in ids]
    # Per-buyer limits, then stock: lock, allocate in arrival order, write back once.
    limited = sorted(
        {(r.buyer.id, s) for r in ok for s in r.merged or {} if skus[s].per_buyer_limit is not None}
    )
    held = await repo.lock_purchase_counts(session, limited)
    # Optimistic (lock=False): go by the stock read above, unlocked, and hold the hot row only from
    # the final conditional decrement to the commit; if that finds too little, StockContention.
    wanted = sorted({s for r in ok for s in r.merged or {}})
    available = await catalog.lock_stock(session, wanted) if lock else {s: skus[s].stock for s in wanted}
    taken: dict[int, int] = defaultdict(int)
    claimed: dict[tuple[int, int], int] = defaultdict(int)
    placed: list[CheckoutRequest] = []
    for r in ok:
        merged = r.merged or {}
        over = next((s for s in sorted(merged) if skus[s].per_buyer_limit is not None
                     and held[(r.buyer.id, s)] + claimed[(r.buyer.id, s)] + merged[s] > (skus[s].per_buyer_limit or 0)),
                    None)  # fmt: skip
        short = next((s for s in sorted(merged) if available.get(s, 0) - taken[s] < merged[s]), None)
        if over is not None:
            field = f"items[{(r.position or {})[over]}].quantity"
            r.result = Conflict(f"{field}: at most {skus[over].per_buyer_limit} per buyer", code="limit_exceeded",
                                field=field)  # fmt: skip
        elif short is not None:
            field = f"items[{(r.position or {})[short]}].quantity"
            r.result = Conflict(f"{field}: not enough stock", code="out_of_stock", field=field)
        else:
            for s, q in merged.items():
                taken[s] += q
                if skus[s].per_buyer_limit is not None:
                    claimed[(r.buyer.id, s)] += q
            placed.append(r)
    kept = set(placed)
    await repo.delete_checkouts(session, [ids[(r.buyer.id, r.key)] for r in ok if r not in kept])
    if not placed:
        return requests
    # Rows and plain answers, not the unit of work: building ORM objects cost more than writing.
    rows = []
    for r in placed:
        checkout_id = ids[(r.buyer.id, r.key)]
        for row, _ in drafts[id(r)]:
            row["checkout_id"] = checkout_id
        rows.extend(drafts[id(r)])
    await repo.number_orders(session, [row for row, _ in rows])
    outbox = []
    for r in placed:
        orders = [PlacedOrder(row["id"], row["checkout_id"], row["buyer_id"], row["shop_id"], row["status"],
                              row["total_fen"], row["pay_deadline"]) for row, _ in drafts[id(r)]]  # fmt: skip
        checkout = PlacedCheckout(ids[(r.buyer.id, r.key)], r.buyer.id, sum(o.total_fen for o in orders))
        r.result = Placed(checkout, orders, replayed=False)
        outbox.append(("orders.placed", {"checkout_id": checkout.id, "order_ids": [o.id for o in orders]}))
    # Orders, lines, first events and their announcements: one statement on PostgreSQL.
    await repo.bulk_insert_orders(session, rows, None, events.outbox_rows(session, outbox))
    await repo.add_purchase_counts(session, dict(claimed))
    await session.flush()  # every other write first: the stock rows are locked from here to the commit
    for sku_id in sorted(taken):
        if not await catalog.reserve_stock(session, sku_id, taken[sku_id]):
            raise StockContention(sku_id)  # only possible unlocked: another batch took it meanwhile
    return requests


async def _replay_or_error(
    session: AsyncSession, checkout: Checkout, request_hash: str
) -> Placed | DomainError:
    try:
        return await _replay(session, checkout, request_hash)
    except DomainError as err:
        return err


def _order_rows(
    buyer: Principal, data: OrderIn, merged: dict[int, int], skus: dict[int, catalog.SkuForSale],
    terms: dict[int, Any], address: Any, now: dt.datetime, policy: OrderPolicy,
) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:  # fmt: skip
    """One order per shop as column values, with its lines snapshotted (``checkout_id`` and the
    ids are filled in when written)."""
    by_shop: dict[int, list[int]] = defaultdict(list)
    for sku_id in merged:
        by_shop[skus[sku_id].shop_id].append(sku_id)
    snapshot = {"recipient": address.recipient, "phone": address.phone, "region": address.region,
                "detail": address.detail}  # fmt: skip
    deadline = now + dt.timedelta(minutes=policy.pay_minutes)
    drafts = []
    for shop_id, sku_ids in sorted(by_shop.items()):
        goods = sum(skus[s].price_fen * merged[s] for s in sku_ids)
        fee = shipping_fee(goods, terms.get(shop_id))
        order = {
            "checkout_id": 0, "buyer_id": buyer.id, "shop_id": shop_id, "status": S.pending_payment.value,
            "goods_fen": goods, "shipping_fen": fee, "total_fen": goods + fee, "paid_fen": 0, "refunded_fen": 0,
            "shipping_refunded_fen": 0, "settlement_holds": 0, "address": snapshot, "note": data.note.strip(),
            "pay_deadline": deadline, "created_at": now, "updated_at": now,
        }  # fmt: skip
        lines = [
            {
                "sku_id": s, "product_id": skus[s].product_id, "title": skus[s].title, "sku_code": skus[s].code,
                "option_values": list(skus[s].option_values), "unit_price_fen": skus[s].price_fen,
                "quantity": merged[s], "line_total_fen": skus[s].price_fen * merged[s], "refunded_fen": 0,
                "source": data.source,
                "creator_id": data.creator_id, "commission_bp": skus[s].commission_bp if data.creator_id else 0,
                "category_id": skus[s].category_id, "service_fee_bp": skus[s].service_fee_bp,
                "return_window_days": skus[s].return_window_days, "requires_inspection": skus[s].requires_inspection,
            }
            for s in sorted(sku_ids)
        ]  # fmt: skip
        drafts.append((order, lines))
    return drafts


def _build_orders(
    buyer: Principal, data: OrderIn, merged: dict[int, int], skus: dict[int, catalog.SkuForSale],
    terms: dict[int, Any], address: Any, now: dt.datetime, policy: OrderPolicy,
) -> list[Order]:  # fmt: skip
    """One order per shop with its lines snapshotted (not yet added to a session)."""
    return [
        Order(**row, lines=[OrderLine(**line) for line in lines])
        for row, lines in _order_rows(buyer, data, merged, skus, terms, address, now, policy)
    ]


class CheckoutBatcher:
    """Collects concurrent buy-now requests in this worker and places them a batch at a time,
    one transaction each: one lock on a hot SKU row and one commit for many orders. Requests that
    arrive while a batch is being written form the next one (group commit); a batch also waits up
    to ``max_wait`` (5 ms, measured best on bench/flash_sale.py) for company. ``in_flight``
    batches may overlap; one measured best on a hot SKU (overlapping batches only collide on its
    row). A batch that fails as a whole (a database error) is logged and retried one request at
    a time, so one bad request never fails the others."""

    def __init__(  # type: ignore[no-untyped-def]
        self,
        sessionmaker,
        policy: OrderPolicy,
        *,
        max_batch: int = 250,
        max_wait: float = 0.005,
        in_flight: int = 1,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.policy = policy
        self.max_batch = max_batch
        self.max_wait = max_wait
        self._queue: asyncio.Queue[tuple[CheckoutRequest, asyncio.Future[Placed]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._slots = asyncio.Semaphore(in_flight)
        self._running: set[asyncio.Task[None]] = set()

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._slots.release()

    async def place(self, buyer: Principal, data: OrderIn, key: str | None) -> Placed:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        future: asyncio.Future[Placed] = asyncio.get_running_loop().create_future()
        await self._queue.put((CheckoutRequest(buyer, data, key or ""), future))
        return await future

    async def stop(self) -> None:
        """Finish the batch in progress, then stop (never cancel it mid-transaction)."""
        if self._task is not None and not self._task.done():
            await self._queue.put(None)  # type: ignore[arg-type]
            await self._task
        if self._running:
            await asyncio.gather(*self._running)

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            if first is None:
                return
            batch = [first]
            deadline = asyncio.get_running_loop().time() + self.max_wait
            while len(batch) < self.max_batch:
                timeout = deadline - asyncio.get_running_loop().time()
                if timeout <= 0 and self._queue.empty():
                    break
                try:
                    item = (self._queue.get_nowait() if not self._queue.empty()
                            else await asyncio.wait_for(self._queue.get(), timeout=max(timeout, 0)))  # fmt: skip
                except TimeoutError:
                    break
                if item is None:
                    await self._queue.put(None)  # type: ignore[arg-type]  # stop after this batch
                    break
                batch.append(item)
            # Up to ``in_flight`` batches overlap: while one waits on the database the next is built.
            await self._slots.acquire()
            task = asyncio.create_task(self._settle(batch))
            self._running.add(task)
            task.add_done_callback(self._finished)

    async def _settle(self, batch: list[tuple[CheckoutRequest, asyncio.Future[Placed]]]) -> None:
        requests = [r for r, _ in batch]
        try:
            try:
                async with transaction(self.sessionmaker) as session:
                    await place_orders_batch(session, requests, self.policy, lock=False)
            except StockContention:
                for r in requests:
                    r.result = None
                async with transaction(self.sessionmaker) as session:
                    await place_orders_batch(session, requests, self.policy, lock=True)
        except Exception:  # fall back to one transaction per request
            log.warning(
                "checkout batch of %d failed; placing its orders one by one", len(requests), exc_info=True
            )
            for r in requests:
                r.result = None
                try:
                    async with transaction(self.sessionmaker) as session:
                        r.result = await place_order(session, r.buyer, r.data, r.key, self.policy)
                except DomainError as err:
                    r.result = err
                except Exception as exc:
                    r.result = exc  # type: ignore[assignment]
        for r, future in batch:
            if future.done():
                continue
            if r.result is None:  # a concurrent twin committed first: answer as a replay
                try:
                    async with transaction(self.sessionmaker) as session:
                        r.result = await place_order(session, r.buyer, r.data, r.key, self.policy)
                except Exception as exc:
                    r.result = exc  # type: ignore[assignment]
            if isinstance(r.result, BaseException):
                future.set_exception(r.result)
            else:
                future.set_result(r.result)


# --- trust scores -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoreLine:
    """What the trust scores read of one paid order line (docs/scores.md)."""

    line_id: int
    order_id: int
    shop_id: int
    product_id: int
    creator_id: int | None
    category_id: int
    paid_at: dt.datetime
    ship_by: dt.datetime | None
    shipped_at: dt.datetime | None
    delivered_at: dt.datetime | None  # or, confirmed before the carrier reported it, completed
    # Refunded in full or cancelled before it shipped: from then on no shipment is owed.
    closed_at: dt.datetime | None


async def score_lines(session: AsyncSession, order_ids: list[int]) -> list[ScoreLine]:
    out = []
    for r in await repo.score_lines(session, order_ids):
        closed = None
        if r.shipped_at is None and r.status in (S.refunded, S.cancelled):
            closed = r.cancelled_at or r.updated_at
        out.append(ScoreLine(r.line_id, r.order_id, r.shop_id, r.product_id, r.creator_id, r.category_id,
                             r.paid_at, r.ship_by, r.shipped_at, r.delivered_at or r.completed_at, closed))  # fmt: skip
    return out


async def line_titles(session: AsyncSession, line_ids: list[int]) -> dict[int, str]:
    """Order line id -> title, for other domains' lists of lines (the scores' drill-down)."""
    return await repo.line_titles(session, line_ids) if line_ids else {}


async def order_id_range(session: AsyncSession) -> tuple[int, int]:
    """The lowest and highest order ids (1, 0 when there are none), for batch jobs over orders."""
    return await repo.order_id_range(session)
