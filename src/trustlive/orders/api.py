"""JSON routes for orders: thin wrappers over orders.service."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, delete, get, patch, post, put
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from trustlive.accounts.service import Principal
from trustlive.fulfillment import service as fulfillment
from trustlive.fulfillment.tracking import Tracker
from trustlive.orders import service
from trustlive.orders.schemas import (
    AddressIn,
    AddressOut,
    CancelIn,
    CartCheckoutIn,
    CartItemIn,
    CartOut,
    CartQuantityIn,
    OrderIn,
    OrderOut,
    OrderPage,
    OrderPlaced,
    OrderSummary,
    OverduePage,
    ReturnsIn,
    ShipIn,
    ShopTermsIn,
    ShopTermsOut,
)
from trustlive.web.pagination import DEFAULT_LIMIT, MAX_LIMIT, decode_cursor, encode_cursor
from trustlive.web.policy import allow, public, signed_in

Limit = Annotated[int, Parameter(ge=1, le=MAX_LIMIT)]
Cursor = Annotated[str | None, Parameter(max_length=200)]
Status = Annotated[str | None, Parameter(max_length=200, description="comma-separated statuses")]


def placed_out(placed: service.Placed) -> OrderPlaced:
    first = placed.orders[0]
    return OrderPlaced(
        id=first.id, checkout_id=placed.checkout.id, status=first.status, total_fen=first.total_fen,
        pay_deadline=first.pay_deadline,
        orders=[OrderSummary(o.id, o.shop_id, o.status, o.total_fen, o.pay_deadline) for o in placed.orders],
        checkout_total_fen=sum(o.total_fen for o in placed.orders),
    )  # fmt: skip


def idempotency_key(request: Request[Any, Any, Any]) -> str | None:
    return request.headers.get("idempotency-key")


def _statuses(status: str | None) -> list[str] | None:
    return [s.strip() for s in status.split(",") if s.strip()] if status else None


def _page(orders: list[Any], limit: int) -> OrderPage:
    more = len(orders) > limit
    orders = orders[:limit]
    return OrderPage(
        [service.order_out(o) for o in orders], encode_cursor({"before": orders[-1].id}) if more else None
    )


def _before(cursor: str | None) -> int | None:
    decoded = decode_cursor(cursor, "before")
    return decoded["before"] if decoded else None


# --- addresses --------------------------------------------------------------------------------


@get("/me/addresses", tags=["orders"], **signed_in())
async def list_addresses(me: Principal, db: AsyncSession) -> list[AddressOut]:
    return [service.address_out(a) for a in await service.list_addresses(db, me)]


@post("/me/addresses", status_code=201, tags=["orders"], **signed_in())
async def add_address(data: AddressIn, me: Principal, db: AsyncSession) -> AddressOut:
    return service.address_out(await service.add_address(db, me, data))


@delete("/me/addresses/{address_id:int}", status_code=204, tags=["orders"], **signed_in())
async def delete_address(address_id: int, me: Principal, db: AsyncSession) -> None:
    await service.delete_address(db, me, address_id)


# --- shop terms -------------------------------------------------------------------------------


@get("/shops/{shop_id:int}/terms", tags=["orders"], **public())
async def shop_terms(shop_id: int, db: AsyncSession, viewer: Principal | None) -> ShopTermsOut:
    """Shipping fee, settlement tier and return terms; the return address only for the shop's
    own people and ops (buyers see it on an approved return)."""
    return await service.get_shop_terms(db, shop_id, viewer)


@put("/shops/{shop_id:int}/shipping", tags=["orders"], **signed_in())
async def set_shipping(shop_id: int, data: ShopTermsIn, me: Principal, db: AsyncSession) -> ShopTermsOut:
    """The shop owner sets the shipping fee: flat, and free from a goods value (both optional)."""
    return await service.set_shipping(db, me, shop_id, data)


@put("/shops/{shop_id:int}/returns", tags=["orders"], **signed_in())
async def set_returns(shop_id: int, data: ReturnsIn, me: Principal, db: AsyncSession) -> ShopTermsOut:
    """The shop owner sets the return address (returns and parcels that fail inspection go there)
    and whether the shop pays the postage of no-reason returns too."""
    return await service.set_returns(db, me, shop_id, data)


# --- cart -------------------------------------------------------------------------------------


@get("/me/cart", tags=["orders"], **signed_in())
async def view_cart(me: Principal, db: AsyncSession) -> CartOut:
    return await service.view_cart(db, me)


@post("/me/cart/items", status_code=201, tags=["orders"], **signed_in())
async def add_to_cart(data: CartItemIn, me: Principal, db: AsyncSession) -> CartOut:
    await service.add_to_cart(db, me, data)
    return await service.view_cart(db, me)


@patch("/me/cart/items/{item_id:int}", tags=["orders"], **signed_in())
async def set_quantity(item_id: int, data: CartQuantityIn, me: Principal, db: AsyncSession) -> CartOut:
    await service.set_cart_quantity(db, me, item_id, data.quantity)
    return await service.view_cart(db, me)


@delete("/me/cart/items/{item_id:int}", status_code=200, tags=["orders"], **signed_in())
async def remove_from_cart(item_id: int, me: Principal, db: AsyncSession) -> CartOut:
    await service.remove_from_cart(db, me, item_id)
    return await service.view_cart(db, me)


@post("/me/cart/checkout", status_code=201, tags=["orders"], **signed_in())
async def checkout_cart(
    data: CartCheckoutIn,
    me: Principal,
    db: AsyncSession,
    request: Request[Any, Any, Any],
    order_policy: service.OrderPolicy,
) -> OrderPlaced:
    """Place the cart (or the named items) as one order per shop. Header `Idempotency-Key`."""
    placed = await service.checkout_cart(
        db, me, data.address_id, idempotency_key(request), data.item_ids, data.note,
        order_policy,
    )  # fmt: skip
    return placed_out(placed)


# --- orders -----------------------------------------------------------------------------------


@post("/orders", status_code=201, tags=["orders"], **signed_in())
async def place_order(
    data: OrderIn, me: Principal, request: Request[Any, Any, Any], checkout_batcher: service.CheckoutBatcher
) -> OrderPlaced:
    """Buy now: reserve stock and create one order per shop. Header `Idempotency-Key` (required):
    repeating a request with the same key returns the same orders. 409 `out_of_stock` or
    `limit_exceeded` when stock or the per-buyer limit does not allow it; nothing is kept then.
    Concurrent requests are placed in batches, one transaction each (see docs/orders.md)."""
    return placed_out(await checkout_batcher.place(me, data, idempotency_key(request)))


@get("/orders", tags=["orders"], **signed_in())
async def my_orders(
    me: Principal,
    db: AsyncSession,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    status: Status = None,
) -> OrderPage:
    orders = await service.list_my_orders(
        db, me, statuses=_statuses(status), before_id=_before(cursor), limit=limit + 1
    )
    return _page(orders, limit)


@get("/ops/overdue-shipments", tags=["orders"], **allow("ops"))
async def overdue_shipments(me: Principal, db: AsyncSession, limit: Limit = MAX_LIMIT) -> OverduePage:
    """Paid orders that should have shipped by now, the longest overdue first, and how many in all."""
    found = await service.overdue_shipments(db, me, limit=limit)
    return OverduePage(found.total, found.orders)


@get("/shops/{shop_id:int}/orders", tags=["orders"], **signed_in())
async def shop_orders(
    shop_id: int, me: Principal, db: AsyncSession, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None,
    status: Status = None,
) -> OrderPage:  # fmt: skip
    """The shop's orders for its owner and staff (and ops); filter with `status=paid,shipped`."""
    orders = await service.list_shop_orders(
        db, me, shop_id, statuses=_statuses(status), before_id=_before(cursor), limit=limit + 1
    )
    return _page(orders, limit)


@get("/orders/{order_id:int}", tags=["orders"], **signed_in())
async def order_detail(order_id: int, me: Principal, db: AsyncSession) -> OrderOut:
    return await service.get_order(db, me, order_id)


@post("/orders/{order_id:int}/cancel", status_code=200, tags=["orders"], **signed_in())
async def cancel(order_id: int, me: Principal, db: AsyncSession, data: CancelIn | None = None) -> OrderOut:
    """Cancel an unpaid order (its buyer, or ops); the stock goes back on sale."""
    return await service.cancel_order(db, me, order_id, (data or CancelIn()).reason)


@post("/orders/{order_id:int}/ship", status_code=200, tags=["orders"], **signed_in())
async def ship(order_id: int, data: ShipIn, me: Principal, db: AsyncSession, tracker: Tracker) -> OrderOut:
    """The shop ships a paid order with carrier and tracking number; the tracking service then
    reports the parcel's stages (`GET /api/v1/orders/{id}/shipments`) and its delivery."""
    return await fulfillment.ship(db, me, order_id, data, tracker)


@post("/orders/{order_id:int}/delivered", status_code=200, tags=["orders"], **signed_in())
async def delivered(
    order_id: int, me: Principal, db: AsyncSession, order_policy: service.OrderPolicy
) -> OrderOut:
    """The shop (or ops) says the parcel arrived, when the tracking service has not; an inspected
    order only once the QC warehouse has sent it on (409 `inspection_route` before)."""
    return await fulfillment.deliver(db, me, order_id, order_policy)


@post("/orders/{order_id:int}/confirm-receipt", status_code=200, tags=["orders"], **signed_in())
async def confirm_receipt(order_id: int, me: Principal, db: AsyncSession) -> OrderOut:
    """确认收货: the buyer confirms the goods arrived."""
    return await service.confirm_receipt(db, me, order_id)


routes = [
    list_addresses, add_address, delete_address, shop_terms, set_shipping, set_returns,
    view_cart, add_to_cart, set_quantity, remove_from_cart, checkout_cart,
    place_order, my_orders, overdue_shipments, shop_orders, order_detail, cancel, ship, delivered, confirm_receipt,
]  # fmt: skip
