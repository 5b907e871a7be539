"""msgspec shapes of the live domain's JSON API (docs/live.md)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import msgspec

from trustlive.catalog.service import ProductCard

Id = Annotated[int, msgspec.Meta(ge=1)]
Title = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
ProductIds = Annotated[list[Id], msgspec.Meta(max_length=50)]
Word = Annotated[str, msgspec.Meta(min_length=1, max_length=40)]


class SessionIn(msgspec.Struct, forbid_unknown_fields=True):
    title: Title
    scheduled_at: dt.datetime
    product_ids: ProductIds = []


class SessionPatch(msgspec.Struct, forbid_unknown_fields=True):
    title: Title | None = None
    scheduled_at: dt.datetime | None = None
    product_ids: ProductIds | None = None


class FeaturedIn(msgspec.Struct, forbid_unknown_fields=True):
    product_ids: ProductIds


class PinIn(msgspec.Struct, forbid_unknown_fields=True):
    product_id: Id


class FlashSaleIn(msgspec.Struct, forbid_unknown_fields=True):
    sku_id: Id
    allocation: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)]
    per_buyer_limit: Annotated[int, msgspec.Meta(ge=1, le=999)]
    seconds: Annotated[int, msgspec.Meta(ge=5, le=24 * 3600)]  # the countdown


class LiveOrderIn(msgspec.Struct, forbid_unknown_fields=True):
    sku_id: Id
    quantity: Annotated[int, msgspec.Meta(ge=1, le=999)]
    address_id: Id


class UserIn(msgspec.Struct, forbid_unknown_fields=True):
    user_id: Id


class MuteIn(msgspec.Struct, forbid_unknown_fields=True):
    user_id: Id
    minutes: Annotated[int, msgspec.Meta(ge=1, le=30 * 24 * 60)] = 10


class BanIn(msgspec.Struct, forbid_unknown_fields=True):
    user_id: Id
    reason: Annotated[str, msgspec.Meta(max_length=200)] = ""


class BlocklistIn(msgspec.Struct, forbid_unknown_fields=True):
    words: Annotated[list[Word], msgspec.Meta(max_length=200)]


class StatsOut(msgspec.Struct):
    peak_viewers: int
    entries: int
    likes: int
    comments: int
    orders: int
    units: int
    sales_fen: int


class StreamOut(msgspec.Struct):
    """For the creator only: where to push the stream, with its secret key."""

    ingest_url: str
    stream_key: str


class SessionOut(msgspec.Struct):
    id: int
    creator_id: int
    creator_name: str
    title: str
    cover_url: str | None
    status: str
    scheduled_at: dt.datetime
    started_at: dt.datetime | None
    ended_at: dt.datetime | None
    end_reason: str | None
    playback_url: str | None
    pinned_product_id: int | None
    product_ids: list[int]
    stats: StatsOut
    stream: StreamOut | None = None
    can_manage: bool = False  # the caller is the creator (or a moderator, for pins and moderation)


class SessionPage(msgspec.Struct):
    items: list[SessionOut]
    next_cursor: str | None


class SkuCardOut(msgspec.Struct):
    id: int
    option_values: list[str]
    price_fen: int
    stock: int


class PinOut(msgspec.Struct):
    """The pinned product's card, as P0 ``pin`` carries it."""

    product_id: int
    title: str
    image_url: str | None
    min_price_fen: int
    max_price_fen: int
    skus: list[SkuCardOut]


class SaleOut(msgspec.Struct):
    """A flash sale, as P0 ``sale`` carries it (``left`` = allocation - sold)."""

    id: int
    product_id: int
    sku_id: int
    allocation: int
    sold: int
    left: int
    limit: int
    ends_at: dt.datetime
    status: str


class FeaturedOut(msgspec.Struct):
    items: list[ProductCard]


class LivePlacedOut(msgspec.Struct):
    session_id: int
    checkout_id: int
    order_ids: list[int]
    total_fen: int
    replayed: bool
    sale: SaleOut | None = None
    costream_id: int | None = None  # the co-stream link the order was placed during


class CommentOut(msgspec.Struct):
    id: int
    user_id: int
    display_name: str
    text: str
    created_at: dt.datetime
    deleted: bool = False


class CommentPage(msgspec.Struct):
    items: list[CommentOut]
    next_cursor: str | None


class SaleLineOut(msgspec.Struct):
    order_id: int
    buyer: str  # masked: first character and "**"
    product_id: int
    sku_id: int
    quantity: int
    amount_fen: int
    flash_sale_id: int | None
    created_at: dt.datetime


class ReplayOut(msgspec.Struct):
    session: SessionOut
    stats: StatsOut
    duration_seconds: int | None
    sales: list[SaleLineOut] | None  # to the creator and ops only
    flash_sales: list[SaleOut]


class UserRefOut(msgspec.Struct):
    user_id: int
    display_name: str
    until: dt.datetime | None = None
    reason: str | None = None


class UserRefList(msgspec.Struct):
    items: list[UserRefOut]


class BlocklistOut(msgspec.Struct):
    words: list[str]


class ViewerView(msgspec.Struct):
    """What the viewer page's first render needs."""

    session: SessionOut
    featured: list[ProductCard]
    pin: PinOut | None
    sale: SaleOut | None
    state: dict[str, Any]  # the hub's current P0 keys (empty when the room is not open)
    banned: bool
    signed_in: bool


class ConsoleView(msgspec.Struct):
    """What the creator console's first render needs."""

    session: SessionOut
    featured: list[ProductCard]
    pin: PinOut | None
    sale: SaleOut | None
    state: dict[str, Any]
    moderators: list[UserRefOut]
    blocked_words: list[str]
    costream: CostreamOut | None = None  # the session's open co-stream link (invited or active)


# --- returning customers (熟客) -----------------------------------------------------------------

Note = Annotated[str, msgspec.Meta(max_length=1000)]
ShareBp = Annotated[int, msgspec.Meta(ge=0, le=5000)]


class NoteIn(msgspec.Struct, forbid_unknown_fields=True):
    note: Note


class NoteOut(msgspec.Struct):
    """The creator's private notes about a buyer (only that creator ever reads them)."""

    buyer_id: int
    note: str
    updated_at: dt.datetime | None


class PastOrderOut(msgspec.Struct):
    order_id: int
    at: dt.datetime
    title: str
    options: list[str]
    quantity: int
    spent_fen: int


class CustomerCardOut(msgspec.Struct):
    """A returning customer's card, as the console shows it (the ``card`` frame carries the
    same fields with ``"t": "card"`` and ``session_id``)."""

    user_id: int
    name: str
    orders: int
    spent_fen: int
    recent: list[PastOrderOut]
    options: list[str]
    last_visit: dt.datetime | None
    visits: int
    note: str


# --- co-streaming (连麦) ------------------------------------------------------------------------


class CostreamIn(msgspec.Struct, forbid_unknown_fields=True):
    partner_session_id: Id
    share_bp: ShareBp = 0


class CostreamSideOut(msgspec.Struct):
    session_id: int
    creator_id: int
    creator_name: str
    title: str


class CostreamOut(msgspec.Struct):
    """A co-stream link: invited → active → ended, or invited → declined / ended."""

    id: int
    status: str
    share_bp: int
    inviter: CostreamSideOut
    invitee: CostreamSideOut
    created_at: dt.datetime
    accepted_at: dt.datetime | None
    ended_at: dt.datetime | None


class CostreamList(msgspec.Struct):
    items: list[CostreamOut]
