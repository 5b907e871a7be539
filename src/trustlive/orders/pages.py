"""HTML routes for buyers (cart, checkout, addresses, my orders) and for the merchant's order
console and shipping terms. Thin: parse the form into the API's structs, call orders.service,
render.

Forms re-render with the error and what the user typed when the user can fix the problem (422,
409, and 404s that name a field, such as someone else's address); "not your order" and "no such
thing" get the error page. Checkout forms carry an idempotency key minted when the page renders,
so a double submit places the orders once.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
import secrets
from dataclasses import dataclass
from typing import Annotated, Any, get_args
from urllib.parse import urlencode

from litestar import Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, Parameter
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from trustlive.accounts.service import Principal
from trustlive.aftersales import service as aftersales
from trustlive.catalog import service as catalog
from trustlive.config import Settings
from trustlive.db import utcnow
from trustlive.errors import DomainError, Forbidden, NotFound, ValidationFailed
from trustlive.fulfillment import service as fulfillment
from trustlive.fulfillment.tracking import Tracker
from trustlive.money import MAX_PRICE_FEN, parse_yuan
from trustlive.orders import service
from trustlive.orders.schemas import (
    AddressIn,
    CartCheckoutIn,
    CartItemIn,
    OrderIn,
    OrderOut,
    ReturnsIn,
    ShipIn,
    ShopTermsIn,
    SourceName,
)
from trustlive.payments import service as payments
from trustlive.reviews import service as reviews
from trustlive.trust import pages as trust_pages
from trustlive.trust import service as trust
from trustlive.web.console import my_shops, pick_shop
from trustlive.web.forms import bad_fields, checked, fixable, integer, invalid, parse, safe_next, text
from trustlive.web.i18n import N_, gettext
from trustlive.web.pagination import before_id, trim_page
from trustlive.web.policy import allow, signed_in
from trustlive.web.templating import yuan

log = logging.getLogger(__name__)

Form = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]
Cursor = Annotated[str | None, Parameter(max_length=200)]
Short = Annotated[str, Parameter(max_length=200)]

PAGE_SIZE = 20
CONSOLE_PAGE_SIZE = 50
MAX_ID = 2**62
SOURCES = frozenset(get_args(SourceName))

STATUS_LABELS = service.STATUS_LABELS
# Buyers do not care when the seller was paid out: a settled order is simply completed.
BUYER_LABELS = {**STATUS_LABELS, "settled": STATUS_LABELS["completed"]}


# Timeline notes the service writes as codes or fixed English, as people should read them.
EVENT_NOTES = {
    "buyer_cancelled": N_("cancelled by the buyer"),
    "payment_timeout": N_("not paid in time"),
    "confirmed by buyer": N_("receipt confirmed by the buyer"),
    "confirmed automatically": N_("receipt confirmed automatically"),
    "refunded in full": N_("refunded in full"),
}


@dataclass(frozen=True)
class Tab:
    key: str
    label: str
    statuses: list[str] | None


BUYER_TABS = (
    Tab("", N_("All"), None),
    Tab("pending_payment", N_("To pay"), ["pending_payment"]),
    Tab("paid", N_("To ship"), ["paid"]),
    Tab("shipped", N_("To receive"), ["shipped", "delivered"]),
    Tab("completed", N_("Completed"), ["completed", "settled"]),
    Tab("closed", N_("Cancelled / refunded"), ["cancelled", "refunded"]),
)
# The merchant's work queue comes first: paid orders wait to be shipped.
SHOP_TABS = (
    Tab("paid", N_("To ship"), ["paid"]),
    Tab("pending_payment", N_("Awaiting payment"), ["pending_payment"]),
    Tab("shipped", N_("Shipped"), ["shipped", "delivered"]),
    Tab("completed", N_("Completed"), ["completed", "settled"]),
    Tab("closed", N_("Cancelled / refunded"), ["cancelled", "refunded"]),
    Tab("all", N_("All"), None),
)

# API field paths -> the forms' field names, so the right inputs get marked.
_ORDER_FIELDS = {
    r"items(\[\d+\])?\.quantity": "quantity",
    r"items(\[\d+\])?\.sku_id": "sku_id",
    r"items.*": "quantity",
    r"Idempotency-Key": "idempotency_key",
}
_CHECKOUT_FIELDS = {**_ORDER_FIELDS, r"items.*": "item_ids"}


def _new_key() -> str:
    """An idempotency key for one rendering of a checkout form."""
    return secrets.token_urlsafe(24)


def _tab(tabs: tuple[Tab, ...], key: str) -> Tab:
    for tab in tabs:
        if tab.key == key:
            return tab
    raise invalid("status", gettext("unknown order status"))


def _minutes_left(deadline: dt.datetime) -> int:
    return max(0, math.ceil((deadline - utcnow()).total_seconds() / 60))


async def _shop_names(db: AsyncSession, shop_ids: list[int]) -> dict[int, str]:
    return {s.id: s.name for s in await catalog.shops_by_ids(db, sorted(set(shop_ids)))}


def _common(context: dict[str, Any]) -> dict[str, Any]:
    """What every orders page shows: status labels, carrier names, timeline notes."""
    return {"labels": BUYER_LABELS, "carriers": fulfillment.CARRIERS, "event_notes": EVENT_NOTES, **context}


# --- product page: buy now and add to cart ----------------------------------------------------

_ITEM_FIELDS = ("product_id", "sku_id", "quantity", "source", "creator_id")


def _item(form: dict[str, str]) -> dict[str, Any]:
    """The chosen SKU, quantity and attribution, typed; errors name the form's fields."""
    if not form["sku_id"]:
        raise invalid("sku_id", gettext("choose a variant first"))
    item: dict[str, Any] = {
        "sku_id": integer(form, "sku_id", minimum=1, maximum=MAX_ID),
        "quantity": integer(form, "quantity", minimum=1, maximum=999),
        "source": form["source"] or "shelf",
        "creator_id": integer(form, "creator_id", minimum=1, maximum=MAX_ID) if form["creator_id"] else None,
    }
    if item["source"] not in SOURCES:
        raise invalid("source", gettext("unknown traffic source"))
    return item


def _item_query(item: dict[str, Any]) -> str:
    return urlencode({k: v for k, v in item.items() if v is not None})


async def _product_page(db: AsyncSession, viewer: Principal, product_id: int, **extra: Any) -> Template:
    """The product page again, with the buy box's error (the same context catalog builds)."""
    product = await catalog.product_detail(db, viewer, product_id)
    category = await catalog.get_category(db, product.category_id)
    skus = [s for s in product.skus if s.is_active]
    status = extra.pop("status_code", 200)
    context = {
        "product": product,
        "category": category,
        "skus": skus,
        "min_price": min((s.price_fen for s in skus), default=0),
        "max_price": max((s.price_fen for s in skus), default=0),
        "stock": sum(s.stock for s in skus),
        "manages": await catalog.is_shop_member(db, viewer, product.shop_id),
        "reviews": await reviews.product_reviews(db, product_id),
        "trust_score": await trust.score_of(db, "product", product_id),
        "shop_score": await trust.score_of(db, "shop", product.shop_id),
        **extra,
    }
    return Template("catalog/product.html", context=context, status_code=status)


async def _back_to_product(
    db: AsyncSession, me: Principal, form: dict[str, str], err: DomainError
) -> Template:
    fixable(err)
    if not form["product_id"].isdigit():
        raise err
    return await _product_page(
        db, me, int(form["product_id"]), buy_form=form, buy_error=err,
        bad=bad_fields(err, _ORDER_FIELDS), status_code=err.status_code,
    )  # fmt: skip


@post("/cart/items", **signed_in())
async def add_to_cart(data: Form, db: AsyncSession, me: Principal) -> Template | Redirect:
    form = {name: text(data, name) for name in _ITEM_FIELDS}
    try:
        await service.add_to_cart(db, me, parse(CartItemIn, _item(form)))
    except DomainError as err:
        await db.rollback()
        return await _back_to_product(db, me, form, err)
    return Redirect("/cart?added=1", status_code=303)


# --- buy now: the checkout page for one item --------------------------------------------------


async def _buy_page(db: AsyncSession, me: Principal, item: dict[str, Any], **extra: Any) -> Template:
    skus = await catalog.skus_for_sale(db, [item["sku_id"]])
    sku = skus.get(item["sku_id"])
    if sku is None or not sku.on_sale:
        raise NotFound("sku_id: this item is not on sale", code="not_on_sale")
    goods = sku.price_fen * item["quantity"]
    terms = await service.get_shop_terms(db, sku.shop_id)
    # ShopTermsOut carries the same two fields the fee rule reads.
    shipping = service.shipping_fee(goods, terms)  # type: ignore[arg-type]
    status = extra.pop("status_code", 200)
    context = _common({
        "sku": sku,
        "item": item,
        "shop_name": (await _shop_names(db, [sku.shop_id])).get(sku.shop_id, ""),
        "terms": terms,
        "goods_fen": goods,
        "shipping_fen": shipping,
        "total_fen": goods + shipping,
        "addresses": await service.list_addresses(db, me),
        "here": "/buy?" + _item_query(item),
        "idempotency_key": _new_key(),
        "form": {},
        "error": None,
        "bad": set(),
        **extra,
    })  # fmt: skip
    return Template("orders/buy.html", context=context, status_code=status)


@get("/buy", **signed_in())
async def buy_page(
    db: AsyncSession, me: Principal, sku_id: Short = "", quantity: Short = "1", source: Short = "",
    creator_id: Short = "",
) -> Template:  # fmt: skip
    """Buy now: the item, its price and shipping, and the address to send it to."""
    form = {"sku_id": sku_id, "quantity": quantity, "source": source, "creator_id": creator_id}
    return await _buy_page(db, me, _item({k: v.strip() for k, v in form.items()}))


def _placed_target(placed: service.Placed) -> str:
    if len(placed.orders) == 1:
        return f"/orders/{placed.orders[0].id}?placed=1"
    return "/orders?checkout=" + ",".join(str(c) for c in sorted({o.checkout_id for o in placed.orders}))


async def _to_payment(
    db: AsyncSession, me: Principal, placed: service.Placed, settings: Settings
) -> Redirect:
    """After a checkout: straight on to the provider's pay page, one payment for every order of it
    still awaiting payment. A double submit replays the checkout, and ``start_payment`` reuses the
    buyer's open payment for exactly those orders, so it lands on the same pay page. When the
    payment cannot be started (paid meanwhile, the provider refusing) the orders stay placed and
    the buyer sees them, with their "Pay" buttons."""
    # Read before the savepoint: rolling it back expires what it touched.
    target, checkout_id = _placed_target(placed), placed.checkout.id
    pending = [o.id for o in placed.orders if o.status == "pending_payment"]
    if not pending:
        return Redirect(target, status_code=303)  # paid already: a replay after paying
    try:
        async with db.begin_nested():
            intent = await payments.start_payment(db, me, pending, payments.default_provider(settings))
            pay_url = intent.pay_url or f"/pay/return?intent={intent.id}"
    except DomainError as err:
        log.warning("checkout %s: could not start the payment: %s", checkout_id, err)
        return Redirect(target, status_code=303)
    return Redirect(pay_url, status_code=303)


@post("/buy", **signed_in())
async def buy_now(
    data: Form, db: AsyncSession, me: Principal, order_policy: service.OrderPolicy, settings: Settings
) -> Template | Redirect:
    """Without an idempotency key this is the product page's "Buy now": on to the checkout page.
    With one (the checkout page's form) it places the order and sends the buyer on to pay."""
    form = {name: text(data, name) for name in (*_ITEM_FIELDS, "address_id", "note", "idempotency_key")}
    if not form["idempotency_key"]:
        try:
            item = _item(form)
        except DomainError as err:
            return await _back_to_product(db, me, form, err)
        return Redirect("/buy?" + _item_query(item), status_code=303)
    item = None
    try:
        item = _item(form)
        if not form["address_id"]:
            raise invalid("address_id", gettext("choose an address to send it to, or add one"))
        order = parse(OrderIn, {
            "items": [{"sku_id": item["sku_id"], "quantity": item["quantity"]}],
            "address_id": integer(form, "address_id", minimum=1, maximum=MAX_ID),
            "source": item["source"], "creator_id": item["creator_id"], "note": form["note"],
        })  # fmt: skip
        placed = await service.place_order(db, me, order, form["idempotency_key"], order_policy)
    except DomainError as err:
        await db.rollback()
        fixable(err)
        if item is None:
            if not form["sku_id"].isdigit():
                raise
            item = {"sku_id": int(form["sku_id"]), "quantity": 1, "source": "shelf", "creator_id": None}
        return await _buy_page(
            db,
            me,
            item,
            form=form,
            error=err,
            bad=bad_fields(err, _ORDER_FIELDS),
            status_code=err.status_code,
        )
    return await _to_payment(db, me, placed, settings)


# --- cart -------------------------------------------------------------------------------------


async def _cart_page(db: AsyncSession, me: Principal, **extra: Any) -> Template:
    status = extra.pop("status_code", 200)
    cart = await service.view_cart(db, me)
    context = _common({
        "cart": cart,
        "count": sum(len(s.lines) for s in cart.shops),
        "addresses": await service.list_addresses(db, me),
        "idempotency_key": _new_key(),
        "form": {},
        "error": None,
        "error_item": None,
        "bad": set(),
        "added": False,
        **extra,
    })  # fmt: skip
    return Template("orders/cart.html", context=context, status_code=status)


@get("/cart", **signed_in())
async def cart_page(db: AsyncSession, me: Principal, added: bool = False) -> Template:
    """The cart, grouped by shop with each shop's shipping fee, and the checkout form."""
    return await _cart_page(db, me, added=added)


@post("/cart/items/{item_id:int}", **signed_in())
async def set_quantity(item_id: int, data: Form, db: AsyncSession, me: Principal) -> Template | Redirect:
    form = {"quantity": text(data, "quantity")}
    try:
        quantity = integer(form, "quantity", minimum=1, maximum=999)
        await service.set_cart_quantity(db, me, item_id, quantity)
    except DomainError as err:
        await db.rollback()
        return await _cart_page(
            db, me, error=fixable(err), error_item=item_id, form=form, bad=bad_fields(err),
            status_code=err.status_code,
        )  # fmt: skip
    return Redirect(f"/cart#item-{item_id}", status_code=303)


@post("/cart/items/{item_id:int}/remove", **signed_in())
async def remove_item(item_id: int, db: AsyncSession, me: Principal) -> Redirect:
    await service.remove_from_cart(db, me, item_id)
    return Redirect("/cart", status_code=303)


def _ids(data: dict[str, Any], name: str) -> list[int] | None:
    raw = data.get(name)
    values = raw if isinstance(raw, list) else [raw] if raw not in (None, "") else []
    if not values:
        return None
    if not all(isinstance(v, str) and v.strip().isdigit() and 0 < int(v) < MAX_ID for v in values):
        raise invalid(name, gettext("reload the page and try again"))
    return [int(v) for v in values]


@post("/cart/checkout", **signed_in())
async def checkout(
    data: Form, db: AsyncSession, me: Principal, order_policy: service.OrderPolicy, settings: Settings
) -> Template | Redirect:
    """Place the cart's lines shown on the page (one order per shop) and go on to pay for them all."""
    form = {name: text(data, name) for name in ("address_id", "note", "idempotency_key")}
    try:
        if not form["address_id"]:
            raise invalid("address_id", gettext("choose an address to send it to, or add one"))
        body = parse(CartCheckoutIn, {
            "address_id": integer(form, "address_id", minimum=1, maximum=MAX_ID),
            "item_ids": _ids(data, "item_ids"), "note": form["note"],
        })  # fmt: skip
        placed = await service.checkout_cart(
            db, me, body.address_id, form["idempotency_key"], body.item_ids, body.note, order_policy
        )
    except DomainError as err:
        await db.rollback()
        return await _cart_page(
            db, me, error=fixable(err), form=form, bad=bad_fields(err, _CHECKOUT_FIELDS),
            status_code=err.status_code,
        )  # fmt: skip
    return await _to_payment(db, me, placed, settings)


# --- addresses --------------------------------------------------------------------------------

_ADDRESS_FIELDS = ("recipient", "phone", "region", "detail")


async def _addresses_page(db: AsyncSession, me: Principal, next_url: str, **extra: Any) -> Template:
    status = extra.pop("status_code", 200)
    context = {
        "addresses": await service.list_addresses(db, me),
        "next": next_url,
        "form": {},
        "error": None,
        "bad": set(),
        **extra,
    }
    return Template("orders/addresses.html", context=context, status_code=status)


@get("/addresses", **signed_in())
async def addresses_page(db: AsyncSession, me: Principal, request: Request[Any, Any, Any]) -> Template:
    """The address book; ``?next=`` leads back to the checkout that sent the buyer here."""
    return await _addresses_page(db, me, safe_next(request.query_params.get("next"), ""))


@post("/addresses", **signed_in())
async def add_address(data: Form, db: AsyncSession, me: Principal) -> Template | Redirect:
    form = {name: text(data, name) for name in _ADDRESS_FIELDS}
    form["is_default"] = "on" if checked(data, "is_default") else ""
    next_url = safe_next(text(data, "next"), "")
    try:
        await service.add_address(db, me, parse(AddressIn, {**form, "is_default": bool(form["is_default"])}))
    except DomainError as err:
        await db.rollback()
        return await _addresses_page(
            db, me, next_url, form=form, error=fixable(err), bad=bad_fields(err), status_code=err.status_code
        )
    return Redirect(next_url or "/addresses", status_code=303)


@post("/addresses/{address_id:int}/delete", **signed_in())
async def delete_address(address_id: int, data: Form, db: AsyncSession, me: Principal) -> Redirect:
    await service.delete_address(db, me, address_id)
    next_url = safe_next(text(data, "next"), "")
    return Redirect("/addresses" + (f"?{urlencode({'next': next_url})}" if next_url else ""), status_code=303)


# --- my orders --------------------------------------------------------------------------------


def _checkout_ids(raw: str) -> list[int]:
    parts = [p.strip() for p in raw.split(",") if p.strip()]
    if not parts or len(parts) > 20 or not all(p.isdigit() and 0 < int(p) < MAX_ID for p in parts):
        raise invalid("checkout", gettext("that link is broken; see all your orders instead"))
    return [int(p) for p in parts]


@get("/orders", **signed_in())
async def my_orders(
    db: AsyncSession, me: Principal, status: Short = "", cursor: Cursor = None, checkout: Short = ""
) -> Template:
    """My orders by status tab; ``?checkout=`` shows the orders one checkout just placed."""
    tab = _tab(BUYER_TABS, status)
    if checkout:
        placed = [o for c in _checkout_ids(checkout) for o in await service.orders_of_checkout(db, me, c)]
        orders, next_cursor = [], None
    else:
        placed = []
        items = await service.list_my_orders(
            db, me, statuses=tab.statuses, before_id=before_id(cursor), limit=PAGE_SIZE + 1
        )
        orders, next_cursor = trim_page(items, PAGE_SIZE)
    context = _common({
        "tabs": BUYER_TABS,
        "tab": tab,
        "orders": orders,
        "placed": placed,
        "next_cursor": next_cursor,
        "shop_names": await _shop_names(db, [o.shop_id for o in [*orders, *placed]]),
    })  # fmt: skip
    return Template("orders/list.html", context=context)


async def _order_page(db: AsyncSession, me: Principal, order_id: int, **extra: Any) -> Template | Redirect:
    order = await service.get_order(db, me, order_id)
    if order.buyer_id != me.id and not me.is_ops:
        return Redirect(f"/console/orders/{order_id}", status_code=303)  # the shop's view of it
    status = extra.pop("status_code", 200)
    is_buyer = order.buyer_id == me.id
    # "processing": a payment awaits the provider's answer (the page polls until the webhook has
    # been applied); "failed": the latest attempt failed. Only while the order awaits payment.
    paying = (
        await payments.payment_state_of_order(db, order.id)
        if is_buyer and order.status == "pending_payment"
        else None
    )
    context = _common({
        "order": order,
        "is_buyer": is_buyer,
        "payment_state": paying,
        "shop_name": (await _shop_names(db, [order.shop_id])).get(order.shop_id, ""),
        "minutes_left": _minutes_left(order.pay_deadline),
        "shipments": await fulfillment.journeys(db, order) if order.shipped_at else [],
        **await _panels(db, me, order),
        "is_console": False,
        "error": None,
        "notice": None,
        **extra,
    })  # fmt: skip
    return Template("orders/detail.html", context=context, status_code=status)


async def _panels(db: AsyncSession, viewer: Principal, order: OrderOut) -> dict[str, Any]:
    """What the other domains show on an order page (the buyer's and the shop's): its inspection,
    its after-sales requests, its reviews. Each domain renders its own part of the page
    (``fulfillment/_order_qc.html``, ``aftersales/_order_panel.html``, ``reviews/_order_panel.html``)."""
    return {
        "qc": await fulfillment.qc_of_order(db, order),
        "aftersales": await aftersales.order_panel(db, viewer, order),
        "reviews": await reviews.order_panel(db, viewer, order),
        **await trust_pages.order_complaints(db, viewer, order),  # trust/_order_complaints.html
    }


@get("/orders/{order_id:int}", **signed_in())
async def order_page(
    order_id: int, db: AsyncSession, me: Principal, placed: bool = False, done: Short = ""
) -> Template | Redirect:
    """One order: lines, money, address, timeline, and what the buyer can do next."""
    return await _order_page(db, me, order_id, notice="placed" if placed else done)


@post("/orders/{order_id:int}/cancel", **signed_in())
async def cancel_order(order_id: int, db: AsyncSession, me: Principal) -> Template | Redirect:
    try:
        await service.cancel_order(db, me, order_id)
    except DomainError as err:
        await db.rollback()
        return await _order_page(db, me, order_id, error=fixable(err), status_code=err.status_code)
    return Redirect(f"/orders/{order_id}?done=cancelled", status_code=303)


@post("/orders/{order_id:int}/confirm", **signed_in())
async def confirm_receipt(order_id: int, db: AsyncSession, me: Principal) -> Template | Redirect:
    """确认收货: the buyer says the goods arrived; escrow is released after the return window."""
    try:
        await service.confirm_receipt(db, me, order_id)
    except DomainError as err:
        await db.rollback()
        return await _order_page(db, me, order_id, error=fixable(err), status_code=err.status_code)
    return Redirect(f"/orders/{order_id}?done=confirmed", status_code=303)


# --- merchant console: orders -----------------------------------------------------------------


def _console_context(
    shops: list[catalog.Shop], shop: catalog.Shop, me: Principal, context: dict[str, Any]
) -> dict[str, Any]:
    """A console page's context: the shop picker, and status names as the shop reads them."""
    return _common({
        "shops": shops,
        "shop": shop,
        "owns_a_shop": any(s.owner_id == me.id for s in shops),
        "is_owner": shop.owner_id == me.id,
        **context,
        "labels": STATUS_LABELS,
    })  # fmt: skip


@get("/console/orders", **signed_in())
async def console_orders(
    db: AsyncSession, me: Principal, shop: int | None = None, status: Short = "paid", cursor: Cursor = None
) -> Template | Redirect:
    """The shop's orders by status; paid orders (to ship) first."""
    shops = await my_shops(db, me)
    if not shops:
        return Redirect("/console", status_code=303)  # open a shop first
    chosen = pick_shop(shops, me, shop)
    tab = _tab(SHOP_TABS, status)
    items = await service.list_shop_orders(
        db, me, chosen.id, statuses=tab.statuses, before_id=before_id(cursor), limit=CONSOLE_PAGE_SIZE + 1
    )
    orders, next_cursor = trim_page(items, CONSOLE_PAGE_SIZE)
    context = _console_context(
        shops, chosen, me, {"tabs": SHOP_TABS, "tab": tab, "orders": orders, "next_cursor": next_cursor}
    )
    return Template("orders/console_list.html", context=context)


async def console_order_page(
    db: AsyncSession,
    me: Principal,
    order_id: int,
    policy: service.OrderPolicy,
    *,
    error: DomainError | None = None,
    **extra: Any,
) -> Template:
    """The shop's view of one order, also re-rendered with a console form's error (ship,
    delivered, and the payments domain's refund form). Errors the shop cannot fix on the form
    (403, a 404 naming no field) go to the error page instead."""
    if error is not None:
        fixable(error)
        extra.setdefault("status_code", error.status_code)
    shops = await catalog.shops_of(db, me) if me.is_ops else await my_shops(db, me)
    order = await service.get_order(db, me, order_id)
    shop = next((s for s in shops if s.id == order.shop_id), None)
    if shop is None and me.is_ops:
        # Ops act on any shop's order (refunds): they see it as the shop does.
        shop = (await catalog.shops_by_ids(db, [order.shop_id]))[0]
        shops = [*shops, shop]
    if shop is None:
        if order.buyer_id == me.id:
            raise Forbidden(gettext("only the shop can do this"), code="not_your_shop")
        raise NotFound(f"order {order_id} not found", code="order_not_found")
    status = extra.pop("status_code", 200)
    context = _console_context(
        shops, shop, me,
        {"order": order, "auto_confirm_days": policy.auto_confirm_days, "now": utcnow(), "form": {}, "error": error,
         "error_form": None, "bad": set(), "saved": None, "refund_key": _new_key(),
         "refundable_fen": max(order.paid_fen - order.refunded_fen, 0),
         "shipments": await fulfillment.journeys(db, order) if order.shipped_at else [],
         **await _panels(db, me, order), "is_console": True, **extra},
    )  # fmt: skip
    return Template("orders/console_detail.html", context=context, status_code=status)


@get("/console/orders/{order_id:int}", **signed_in())
async def console_order(
    order_id: int, db: AsyncSession, me: Principal, order_policy: service.OrderPolicy, saved: Short = "",
    done: Short = "",
) -> Template:  # fmt: skip
    """One order for the shop: what to send where, and the ship / delivered actions. ``done`` is
    what the payments domain's refund form comes back with."""
    return await console_order_page(db, me, order_id, order_policy, saved=saved or done or None)


_TRACKING_RE = re.compile(r"[A-Za-z0-9-]{4,64}")


@post("/console/orders/{order_id:int}/ship", **signed_in())
async def ship_order(
    order_id: int,
    data: Form,
    db: AsyncSession,
    me: Principal,
    order_policy: service.OrderPolicy,
    tracker: Tracker,
) -> Template | Redirect:
    form = {"carrier": text(data, "carrier"), "tracking_no": text(data, "tracking_no").replace(" ", "")}
    try:
        if form["carrier"] not in fulfillment.CARRIERS:
            raise invalid("carrier", gettext("choose the carrier"))
        if not _TRACKING_RE.fullmatch(form["tracking_no"]):
            raise invalid("tracking_no", gettext("4 to 64 letters, digits or dashes, as on the waybill"))
        await fulfillment.ship(db, me, order_id, parse(ShipIn, form), tracker)
    except DomainError as err:
        await db.rollback()
        return await console_order_page(
            db, me, order_id, order_policy, form=form, error=err, error_form="ship", bad=bad_fields(err)
        )
    return Redirect(f"/console/orders/{order_id}?saved=shipped", status_code=303)


@post("/console/orders/{order_id:int}/delivered", **signed_in())
async def mark_delivered(
    order_id: int, db: AsyncSession, me: Principal, order_policy: service.OrderPolicy
) -> Template | Redirect:
    """When the tracking service has not reported delivery (yet), the shop marks it; auto-confirm
    starts."""
    try:
        await fulfillment.deliver(db, me, order_id, order_policy)
    except DomainError as err:
        await db.rollback()
        return await console_order_page(db, me, order_id, order_policy, error=err)
    return Redirect(f"/console/orders/{order_id}?saved=delivered", status_code=303)


# --- ops: overdue shipments --------------------------------------------------------------------


@get("/ops/shipping", **allow("ops"))
async def overdue_shipments(db: AsyncSession, me: Principal) -> Template:
    """Paid orders past their ship-by deadline, the longest overdue first, with their shops."""
    found = await service.overdue_shipments(db, me)
    context = _common({
        "found": found,
        "now": utcnow(),
        "shop_names": await _shop_names(db, [o.shop_id for o in found.orders]),
        "labels": STATUS_LABELS,
    })  # fmt: skip
    return Template("orders/ops_overdue.html", context=context)


# --- merchant console: shipping terms ---------------------------------------------------------


def _amount(form: dict[str, str], name: str, *, allow_zero: bool) -> int | None:
    """An optional amount typed in yuan, as fen; blank is None."""
    if not form[name]:
        return None
    try:
        fen = parse_yuan(form[name], field=name)
    except ValidationFailed:
        raise invalid(name, gettext("enter an amount in yuan, e.g. 12.50, or leave it blank")) from None
    if fen > MAX_PRICE_FEN or (fen == 0 and not allow_zero):
        raise invalid(name, gettext("enter an amount above zero, or leave it blank"))
    return fen


async def _shipping_page(
    db: AsyncSession, me: Principal, shop_id: int | None, **extra: Any
) -> Template | Redirect:
    shops = await my_shops(db, me)
    if not shops:
        return Redirect("/console", status_code=303)
    shop = pick_shop(shops, me, shop_id)
    terms = await service.get_shop_terms(db, shop.id, me)
    status = extra.pop("status_code", 200)
    form = {
        "flat_fee": yuan(terms.flat_fee_fen) if terms.flat_fee_fen else "",
        "free_over": yuan(terms.free_over_fen) if terms.free_over_fen else "",
    }
    address = terms.return_address or {}
    returns_form = {**{k: address.get(k, "") for k in RETURN_FIELDS}, "covers": terms.covers_return_shipping}
    context = _console_context(
        shops, shop, me,
        {"terms": terms, "form": form, "returns_form": returns_form, "error": None, "error_form": None,
         "bad": set(), "saved": False, **extra},
    )  # fmt: skip
    return Template("orders/shipping.html", context=context, status_code=status)


@get("/console/shipping", **signed_in())
async def shipping_page(
    db: AsyncSession, me: Principal, shop: int | None = None, saved: Short = ""
) -> Template | Redirect:
    """The shop's shipping fee (flat, and free from a goods value; both optional) and its return
    terms (return address, who pays the postage of no-reason returns)."""
    return await _shipping_page(db, me, shop, saved=saved)


def _form_shop_id(form: dict[str, str]) -> int | None:
    value = form.get("shop_id", "")
    return int(value) if value.isdigit() and 0 < int(value) < MAX_ID else None


RETURN_FIELDS = ("recipient", "phone", "region", "detail")


@post("/console/returns", **signed_in())
async def set_returns(data: Form, db: AsyncSession, me: Principal) -> Template | Redirect:
    form: dict[str, Any] = {name: text(data, name) for name in ("shop_id", *RETURN_FIELDS)}
    form["covers"] = checked(data, "covers")
    shop_id = _form_shop_id(form)
    try:
        if shop_id is None:
            raise invalid("shop_id", gettext("reload the page and try again"))
        body = {
            "return_address": {k: form[k] for k in RETURN_FIELDS},
            "covers_return_shipping": form["covers"],
        }
        await service.set_returns(db, me, shop_id, parse(ReturnsIn, body))
    except DomainError as err:
        await db.rollback()
        fixable(err)
        bad = {f.removeprefix("return_address.") for f in bad_fields(err)}
        return await _shipping_page(db, me, shop_id, returns_form=form, error=err, error_form="returns", bad=bad,
                                    status_code=err.status_code)  # fmt: skip
    return Redirect(f"/console/shipping?shop={shop_id}&saved=returns", status_code=303)


@post("/console/shipping", **signed_in())
async def set_shipping(data: Form, db: AsyncSession, me: Principal) -> Template | Redirect:
    form = {name: text(data, name) for name in ("shop_id", "flat_fee", "free_over")}
    shop_id = _form_shop_id(form)
    try:
        if shop_id is None:
            raise invalid("shop_id", gettext("reload the page and try again"))
        terms = {
            "flat_fee_fen": _amount(form, "flat_fee", allow_zero=True) or 0,
            "free_over_fen": _amount(form, "free_over", allow_zero=False),
        }
        await service.set_shipping(db, me, shop_id, parse(ShopTermsIn, terms))
    except DomainError as err:
        await db.rollback()
        fixable(err)
        return await _shipping_page(
            db,
            me,
            shop_id,
            form=form,
            error=err,
            error_form="shipping",
            bad=bad_fields(err),
            status_code=err.status_code,
        )
    return Redirect(f"/console/shipping?shop={shop_id}&saved=shipping", status_code=303)


routes = [
    add_to_cart,
    buy_page,
    buy_now,
    cart_page,
    set_quantity,
    remove_item,
    checkout,
    addresses_page,
    add_address,
    delete_address,
    my_orders,
    order_page,
    cancel_order,
    confirm_receipt,
    console_orders,
    console_order,
    ship_order,
    mark_delivered,
    overdue_shipments,
    shipping_page,
    set_shipping,
    set_returns,
]
