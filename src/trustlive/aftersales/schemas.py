"""JSON shapes of the aftersales API."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

KindName = Literal["refund_only", "return_refund"]
ReasonName = Literal["no_reason", "quality", "wrong_item", "not_as_described", "not_received", "not_shipped"]
Id = Annotated[int, msgspec.Meta(ge=1, le=2**62)]
Note = Annotated[str, msgspec.Meta(max_length=1000)]


class RequestBrief(msgspec.Struct):
    """The few facts other domains (care cases) need about a request."""

    id: int
    order_id: int
    buyer_id: int
    shop_id: int
    kind: str
    reason: str
    status: str
    amount_fen: int
    created_at: dt.datetime


class RequestIn(msgspec.Struct, forbid_unknown_fields=True):
    """Open a request: on one line (``line_id``) or on the whole order (refund-only before the
    goods arrive). Evidence photos are added afterwards (``POST /aftersales/{id}/photos``)."""

    order_id: Id
    kind: KindName
    reason: ReasonName
    amount_fen: Annotated[int, msgspec.Meta(ge=1, le=1_000_000_000)]
    line_id: Id | None = None
    description: Note = ""


class RejectIn(msgspec.Struct, forbid_unknown_fields=True):
    reason: Annotated[str, msgspec.Meta(min_length=2, max_length=1000)]


class EscalateIn(msgspec.Struct, forbid_unknown_fields=True):
    note: Note = ""


class ShipBackIn(msgspec.Struct, forbid_unknown_fields=True):
    carrier: Annotated[str, msgspec.Meta(min_length=2, max_length=32)]
    tracking_no: Annotated[str, msgspec.Meta(min_length=4, max_length=64, pattern=r"^[A-Za-z0-9-]+$")]


class ArbitrateIn(msgspec.Struct, forbid_unknown_fields=True):
    decision: Literal["buyer", "seller"]
    note: Annotated[str, msgspec.Meta(min_length=2, max_length=1000)]


class MessageIn(msgspec.Struct, forbid_unknown_fields=True):
    body: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]


class PhotoOut(msgspec.Struct):
    id: int
    url: str


class MessageOut(msgspec.Struct):
    id: int
    side: str  # buyer | shop | ops
    author_id: int | None
    author_name: str
    body: str
    created_at: dt.datetime
    photos: list[PhotoOut] = []


class ReturnAddressOut(msgspec.Struct):
    recipient: str
    phone: str
    region: str
    detail: str


class RequestOut(msgspec.Struct):
    id: int
    order_id: int
    line_id: int | None
    line_title: str  # the line's title, or "" for the whole order
    buyer_id: int
    shop_id: int
    kind: str
    reason: str
    seller_cause: bool
    description: str
    amount_fen: int
    status: str
    due_at: dt.datetime | None  # the current step's deadline
    created_at: dt.datetime
    decision: str | None
    responded_at: dt.datetime | None
    reject_reason: str
    escalated_at: dt.datetime | None
    arbitrated_at: dt.datetime | None
    arbitration_note: str
    postage_payer: str | None  # shop (send freight collect, 到付) | buyer
    return_carrier: str | None
    return_tracking_no: str | None
    return_shipped_at: dt.datetime | None
    return_arrived_at: dt.datetime | None
    arrival_confirmed_at: dt.datetime | None
    auto_refunded: bool
    resolution: str | None
    resolved_at: dt.datetime | None
    refund_fen: int
    photos: list[PhotoOut] = []


class RequestDetail(msgspec.Struct):
    """A request with its thread, for one of its parties; ``actions`` are what the reader may do
    now, ``return_address`` is shown once a return is approved (None: the shop has none yet)."""

    request: RequestOut
    messages: list[MessageOut]
    actions: list[str]
    viewer_side: str  # buyer | shop | ops | care
    return_address: ReturnAddressOut | None = None
    shop_name: str = ""
    buyer_name: str = ""


class RequestPage(msgspec.Struct):
    items: list[RequestOut]
    next_cursor: str | None


class OptionOut(msgspec.Struct):
    """One thing the buyer may ask for now: a kind on a line (or the whole order, ``line_id``
    None), the reasons that fit, and at most how much (goods; plus shipping for ``shipping_reasons``)."""

    line_id: int | None
    kind: str
    reasons: list[str]
    goods_fen: int
    shipping_fen: int
    shipping_reasons: list[str]
    no_reason_until: dt.datetime | None = None  # the end of the line's no-reason return window
    no_reason_excluded: bool = False  # its category allows no no-reason returns (window 0)

    def max_fen(self, reason: str) -> int:
        return self.goods_fen + (self.shipping_fen if reason in self.shipping_reasons else 0)


class OrderPanel(msgspec.Struct):
    """What the order pages show: the order's requests its reader may see, and (for its buyer)
    what can be asked for now, per line."""

    order_id: int
    requests: list[RequestOut]
    options: list[OptionOut]
    is_buyer: bool
