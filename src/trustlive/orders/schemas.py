"""JSON shapes of the orders API."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

SourceName = Literal["follow_feed", "discovery_feed", "live_room", "short_video", "shelf", "alliance_link"]
Quantity = Annotated[int, msgspec.Meta(ge=1, le=999)]
Id = Annotated[int, msgspec.Meta(ge=1)]
FenAmount = Annotated[int, msgspec.Meta(ge=0, le=1_000_000_000)]


# r"\S": not blank (spaces alone would be stored as an empty address once trimmed)
NotBlank1 = Annotated[str, msgspec.Meta(min_length=1, max_length=32, pattern=r"\S")]
Region = Annotated[str, msgspec.Meta(min_length=2, max_length=64, pattern=r"\S.*\S")]
Detail = Annotated[str, msgspec.Meta(min_length=2, max_length=200, pattern=r"\S.*\S")]
Phone = Annotated[str, msgspec.Meta(pattern=r"^\+?[0-9][0-9 -]{5,18}$")]


class AddressIn(msgspec.Struct, forbid_unknown_fields=True):
    recipient: NotBlank1
    phone: Phone
    region: Region
    detail: Detail
    is_default: bool = False


class AddressOut(msgspec.Struct):
    id: int
    recipient: str
    phone: str
    region: str
    detail: str
    is_default: bool


class ItemIn(msgspec.Struct, forbid_unknown_fields=True):
    sku_id: Id
    quantity: Quantity


class OrderIn(msgspec.Struct, forbid_unknown_fields=True):
    items: Annotated[list[ItemIn], msgspec.Meta(min_length=1, max_length=50)]
    address_id: Id
    source: SourceName = "shelf"
    creator_id: Id | None = None
    note: Annotated[str, msgspec.Meta(max_length=200)] = ""


class CartItemIn(msgspec.Struct, forbid_unknown_fields=True):
    sku_id: Id
    quantity: Quantity
    source: SourceName = "shelf"
    creator_id: Id | None = None


class CartQuantityIn(msgspec.Struct, forbid_unknown_fields=True):
    quantity: Quantity


class CartCheckoutIn(msgspec.Struct, forbid_unknown_fields=True):
    address_id: Id
    item_ids: Annotated[list[Id], msgspec.Meta(max_length=100)] | None = None  # default: the whole cart
    note: Annotated[str, msgspec.Meta(max_length=200)] = ""


class ShopTermsIn(msgspec.Struct, forbid_unknown_fields=True):
    flat_fee_fen: FenAmount = 0
    free_over_fen: Annotated[int, msgspec.Meta(ge=1, le=1_000_000_000)] | None = None


class ReturnAddressIn(msgspec.Struct, forbid_unknown_fields=True):
    recipient: NotBlank1
    phone: Phone
    region: Region
    detail: Detail


class ReturnsIn(msgspec.Struct, forbid_unknown_fields=True):
    """Where returns go, and whether the shop pays the postage of no-reason returns too."""

    return_address: ReturnAddressIn
    covers_return_shipping: bool = False


class ShopTermsOut(msgspec.Struct):
    shop_id: int
    flat_fee_fen: int
    free_over_fen: int | None
    settlement_delay_days: int
    covers_return_shipping: bool = False
    return_address: dict[str, str] | None = None


class ShipIn(msgspec.Struct, forbid_unknown_fields=True):
    carrier: Annotated[str, msgspec.Meta(min_length=2, max_length=32)]
    tracking_no: Annotated[str, msgspec.Meta(min_length=4, max_length=64, pattern=r"^[A-Za-z0-9-]+$")]


class CancelIn(msgspec.Struct, forbid_unknown_fields=True):
    reason: Annotated[str, msgspec.Meta(max_length=64)] = "buyer_cancelled"


class LineOut(msgspec.Struct):
    id: int
    sku_id: int
    product_id: int
    title: str
    sku_code: str
    option_values: list[str]
    unit_price_fen: int
    quantity: int
    line_total_fen: int
    source: str
    creator_id: int | None
    commission_bp: int
    service_fee_bp: int
    return_window_days: int
    requires_inspection: bool
    refunded_fen: int = 0  # refunds made for this line (a return of it)


class EventOut(msgspec.Struct):
    from_status: str | None
    to_status: str
    note: str
    at: dt.datetime


class OrderOut(msgspec.Struct):
    id: int
    checkout_id: int
    buyer_id: int
    shop_id: int
    status: str
    goods_fen: int
    shipping_fen: int
    total_fen: int
    paid_fen: int
    refunded_fen: int
    address: dict[str, str]
    note: str
    pay_deadline: dt.datetime
    paid_at: dt.datetime | None
    ship_by: dt.datetime | None  # paid_at + TRUSTLIVE_SHIP_WITHIN_HOURS
    shipped_late_minutes: int | None  # set when shipped: 0 on time, else minutes past ship_by
    carrier: str | None
    tracking_no: str | None
    shipped_at: dt.datetime | None
    delivered_at: dt.datetime | None
    auto_confirm_at: dt.datetime | None
    completed_at: dt.datetime | None
    settle_at: dt.datetime | None
    settled_at: dt.datetime | None
    cancelled_at: dt.datetime | None
    cancel_reason: str | None
    created_at: dt.datetime
    lines: list[LineOut] = []
    events: list[EventOut] = []
    shipping_refunded_fen: int = 0  # the part of refunded_fen that was for shipping
    settlement_holds: int = 0  # open after-sales requests: escrow waits while any is open

    @property
    def requires_inspection(self) -> bool:
        """Goes seller -> QC warehouse -> buyer (先鉴后发) when any line's category says so."""
        return any(line.requires_inspection for line in self.lines)


class OrderSummary(msgspec.Struct):
    id: int
    shop_id: int
    status: str
    total_fen: int
    pay_deadline: dt.datetime


class OrderPlaced(msgspec.Struct):
    """POST /orders answer. ``id``/``status``/``total_fen``/``pay_deadline`` describe the first
    order; a request spanning several shops creates one order per shop, all listed in ``orders``."""

    id: int
    checkout_id: int
    status: str
    total_fen: int
    pay_deadline: dt.datetime
    orders: list[OrderSummary]
    checkout_total_fen: int


class OrderPage(msgspec.Struct):
    items: list[OrderOut]
    next_cursor: str | None


class OverduePage(msgspec.Struct):
    """Paid orders past their ship-by deadline, the longest overdue first (at most ``limit``)."""

    total: int
    items: list[OrderOut]


class CartLineOut(msgspec.Struct):
    id: int
    sku_id: int
    product_id: int
    title: str
    option_values: list[str]
    unit_price_fen: int
    quantity: int
    line_total_fen: int
    source: str
    creator_id: int | None
    on_sale: bool


class CartShopOut(msgspec.Struct):
    shop_id: int
    shop_name: str
    lines: list[CartLineOut]
    goods_fen: int
    shipping_fen: int
    total_fen: int


class CartOut(msgspec.Struct):
    shops: list[CartShopOut]
    total_fen: int
