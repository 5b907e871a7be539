"""JSON routes of the aftersales domain: thin wrappers over aftersales.service.

Who may do what is decided by the service from the request's parties (its buyer, its shop's
owner and staff, ops): a stranger gets 404, a party acting out of turn 403, a move the request's
state does not allow 409."""

from __future__ import annotations

from typing import Annotated

from litestar import get, post
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.params import Body, Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from trustlive.accounts.service import Principal
from trustlive.aftersales import service
from trustlive.aftersales.schemas import (
    ArbitrateIn,
    EscalateIn,
    MessageIn,
    MessageOut,
    OrderPanel,
    PhotoOut,
    RejectIn,
    RequestDetail,
    RequestIn,
    RequestOut,
    RequestPage,
    ShipBackIn,
)
from trustlive.config import Settings
from trustlive.fulfillment.tracking import Tracker
from trustlive.orders import service as orders
from trustlive.web.forms import to_upload
from trustlive.web.pagination import DEFAULT_LIMIT, MAX_LIMIT, before_id, trim_page
from trustlive.web.policy import allow, signed_in

Limit = Annotated[int, Parameter(ge=1, le=MAX_LIMIT)]
Cursor = Annotated[str | None, Parameter(max_length=200)]
Tab = Annotated[str, Parameter(max_length=20)]
Multipart = Body(media_type=RequestEncodingType.MULTI_PART)
TAG = ["aftersales"]


def _policy(settings: Settings) -> service.AftersalesPolicy:
    return service.AftersalesPolicy.from_settings(settings)


@post("/aftersales", status_code=201, tags=TAG, **signed_in())
async def open_request(data: RequestIn, me: Principal, db: AsyncSession, settings: Settings) -> RequestOut:
    """The buyer opens a request: `kind` `refund_only` (仅退款) or `return_refund` (退货退款), a
    `reason`, the `amount_fen` asked, on one `line_id` or (refund-only before the goods arrive) the
    whole order. Evidence photos follow with `POST /aftersales/{id}/photos`."""
    return await service.open_request(db, me, data, _policy(settings))


@get("/aftersales", tags=TAG, **signed_in())
async def my_requests(
    me: Principal, db: AsyncSession, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> RequestPage:
    """The caller's own requests as a buyer, newest first."""
    found = await service.list_mine(db, me, before_id=before_id(cursor), limit=limit + 1)
    return RequestPage(*trim_page(found, limit))


@get("/aftersales/options/{order_id:int}", tags=TAG, **signed_in())
async def order_options(order_id: int, me: Principal, db: AsyncSession) -> OrderPanel:
    """For one of the caller's orders: its requests and what may be asked for now, per line
    (kinds, reasons, the most refundable)."""
    order = await orders.get_order(db, me, order_id)
    return await service.order_panel(db, me, order) or OrderPanel(order.id, [], [], order.buyer_id == me.id)


@get("/aftersales/shop/{shop_id:int}", tags=TAG, **signed_in())
async def shop_requests(
    shop_id: int, me: Principal, db: AsyncSession, tab: Tab = "answer", limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> RequestPage:  # fmt: skip
    """A shop's queue for its owner and staff: `tab` `answer` (awaiting the shop, nearest deadline
    first), `returns`, `disputes` (nearest deadline first), `closed` (newest first). `next_cursor`
    continues the same tab."""
    before, after = service.queue_position(cursor, tab)
    found = await service.shop_queue(db, me, shop_id, tab, before_id=before, after=after, limit=limit + 1)
    return RequestPage(*service.queue_page(found, limit, tab))


@get("/aftersales/escalated", tags=TAG, **allow("ops"))
async def escalated(
    me: Principal,
    db: AsyncSession,
    tab: Tab = "escalated",
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> RequestPage:
    """Ops: requests escalated for arbitration (`tab=open` every open one, `closed`)."""
    found = await service.ops_queue(db, me, tab, before_id=before_id(cursor), limit=limit + 1)
    return RequestPage(*trim_page(found, limit))


@get("/aftersales/{request_id:int}", tags=TAG, **signed_in())
async def request_detail(
    request_id: int, me: Principal, db: AsyncSession, settings: Settings
) -> RequestDetail:
    """One request with its evidence, thread, what the caller may do now and (for an approved
    return) the shop's return address."""
    return await service.get_detail(db, me, request_id, _policy(settings))


@post("/aftersales/{request_id:int}/photos", status_code=201, tags=TAG, **signed_in())
async def add_photo(
    request_id: int,
    data: Annotated[UploadFile, Multipart],
    me: Principal,
    db: AsyncSession,
    settings: Settings,
) -> PhotoOut:
    """An evidence photo (JPEG, PNG or WebP; at most 9) on the buyer's open request."""
    upload = await to_upload(data, settings.max_upload_bytes)
    return await service.add_evidence(db, me, request_id, upload, service.Media.from_settings(settings))


@post("/aftersales/{request_id:int}/approve", status_code=200, tags=TAG, **signed_in())
async def approve(request_id: int, me: Principal, db: AsyncSession, settings: Settings) -> RequestOut:
    """The shop approves: refund-only is refunded at once; a return waits for the item."""
    return await service.approve(db, me, request_id, _policy(settings))


@post("/aftersales/{request_id:int}/reject", status_code=200, tags=TAG, **signed_in())
async def reject(
    request_id: int, data: RejectIn, me: Principal, db: AsyncSession, settings: Settings
) -> RequestOut:
    """The shop rejects, with its reason; the buyer may escalate within the escalation days."""
    return await service.reject(db, me, request_id, data, _policy(settings))


@post("/aftersales/{request_id:int}/confirm-arrival", status_code=200, tags=TAG, **signed_in())
async def confirm_arrival(request_id: int, me: Principal, db: AsyncSession) -> RequestOut:
    """The shop has the returned item: the refund is issued at once."""
    return await service.confirm_arrival(db, me, request_id)


@post("/aftersales/{request_id:int}/ship-back", status_code=200, tags=TAG, **signed_in())
async def ship_back(
    request_id: int, data: ShipBackIn, me: Principal, db: AsyncSession, tracker: Tracker
) -> RequestOut:
    """The buyer sent the item back: carrier and tracking number (tracked like any parcel)."""
    return await service.ship_back(db, me, request_id, data, tracker)


@post("/aftersales/{request_id:int}/escalate", status_code=200, tags=TAG, **signed_in())
async def escalate(
    request_id: int, me: Principal, db: AsyncSession, data: EscalateIn | None = None
) -> RequestOut:
    """The buyer asks ops to arbitrate a rejection (409 `escalation_closed` when too late)."""
    return await service.escalate(db, me, request_id, data or EscalateIn())


@post("/aftersales/{request_id:int}/withdraw", status_code=200, tags=TAG, **signed_in())
async def withdraw(request_id: int, me: Principal, db: AsyncSession) -> RequestOut:
    """The buyer drops an open request (not once the item is on its way back)."""
    return await service.withdraw(db, me, request_id)


@post("/aftersales/{request_id:int}/arbitrate", status_code=200, tags=TAG, **allow("ops"))
async def arbitrate(
    request_id: int, data: ArbitrateIn, me: Principal, db: AsyncSession, settings: Settings
) -> RequestOut:
    """Ops decide an escalated request: `decision` `buyer` (continues as approved) or `seller`
    (closed), with a `note` the parties see."""
    return await service.arbitrate(db, me, request_id, data, _policy(settings))


@get("/aftersales/{request_id:int}/messages", tags=TAG, **signed_in())
async def messages(request_id: int, me: Principal, db: AsyncSession, settings: Settings) -> list[MessageOut]:
    """The request's thread, oldest first."""
    return (await service.get_detail(db, me, request_id, _policy(settings))).messages


@post("/aftersales/{request_id:int}/messages", status_code=201, tags=TAG, **signed_in())
async def post_message(request_id: int, data: MessageIn, me: Principal, db: AsyncSession) -> MessageOut:
    """A message on an open request from its buyer, its shop or ops; photos follow with
    `POST /aftersales/{id}/messages/{message_id}/photos`."""
    return await service.post_message(db, me, request_id, data)


@post(
    "/aftersales/{request_id:int}/messages/{message_id:int}/photos", status_code=201, tags=TAG, **signed_in()
)
async def add_message_photo(
    request_id: int, message_id: int, data: Annotated[UploadFile, Multipart], me: Principal, db: AsyncSession,
    settings: Settings,
) -> PhotoOut:  # fmt: skip
    """A photo (JPEG, PNG or WebP; at most 9) on one's own message."""
    upload = await to_upload(data, settings.max_upload_bytes)
    media = service.Media.from_settings(settings)
    return await service.add_message_photo(db, me, request_id, message_id, upload, media)


routes = [
    open_request, my_requests, order_options, shop_requests, escalated, request_detail, add_photo, approve,
    reject, confirm_arrival, ship_back, escalate, withdraw, arbitrate, messages, post_message, add_message_photo,
]  # fmt: skip
