"""JSON routes of the consignment domain: thin wrappers over consignment.service.

An item travels as JSON (no photos) or as a form: the same fields as form fields and the photos as
multipart files named ``photos`` (at most 9; JPEG, PNG or WebP).
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, get, post
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from trustlive.accounts.service import Principal
from trustlive.catalog.service import Upload
from trustlive.config import Settings
from trustlive.consignment import service
from trustlive.consignment.schemas import (
    AppraisalIn,
    FeatureIn,
    ItemIn,
    ItemOut,
    ItemPage,
    TermsOut,
    WaiverIn,
)
from trustlive.errors import UnsupportedMediaType
from trustlive.reviews.api import read_photos
from trustlive.web.forms import parse, text
from trustlive.web.pagination import DEFAULT_LIMIT, MAX_LIMIT, before_id, trim_page
from trustlive.web.policy import allow, public, signed_in
from trustlive.web.validation import decode_strict

Limit = Annotated[int, Parameter(ge=1, le=MAX_LIMIT)]
Cursor = Annotated[str | None, Parameter(max_length=200)]
Status = Annotated[str | None, Parameter(max_length=100)]


async def item_body(request: Request[Any, Any, Any], settings: Settings) -> tuple[ItemIn, list[Upload]]:
    """The item's fields, strictly typed, and the photos: from JSON, or from a multipart form."""
    kind = request.content_type[0]
    if kind == "application/json":
        return decode_strict(await request.body(), ItemIn), []
    if kind not in ("multipart/form-data", "application/x-www-form-urlencoded"):
        raise UnsupportedMediaType("send JSON, or a form (multipart/form-data with the photos)")
    form = await request.form()
    fields: dict[str, Any] = {
        k: text(form, k) for k in ItemIn.__struct_fields__ if isinstance(form.get(k), str) and text(form, k)
    }
    photos = await read_photos(form.getall("photos") if "photos" in form else None, settings.max_upload_bytes)
    return parse(ItemIn, fields), photos


@post("/consignments", status_code=201, tags=["consignment"], **signed_in())
async def submit(
    request: Request[Any, Any, Any], me: Principal, db: AsyncSession, settings: Settings
) -> ItemOut:
    """Send an item to an appraiser creator (`appraiser_id`: a creator with a shop): `title`,
    `category_id`, `description`, optional `asking_fen`, photos. 422 `not_an_appraiser`,
    `own_item`, bad fields; 413/415 a photo too large or not an image."""
    data, photos = await item_body(request, settings)
    return await service.submit(db, me, data, photos, settings)


@get("/consignments/mine", tags=["consignment"], **signed_in())
async def mine(
    me: Principal,
    db: AsyncSession,
    status: Status = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> ItemPage:
    """The caller's consigned items, newest first (`status=a,b` filters)."""
    items = await service.my_items(db, me, status=status, before_id=before_id(cursor), limit=limit)
    return ItemPage(*trim_page(items, limit))


@get("/consignments/queue", tags=["consignment"], **allow("creator"))
async def creator_queue(
    me: Principal,
    db: AsyncSession,
    status: Status = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> ItemPage:
    """Items sent to the calling creator, newest first (`status=submitted` for the ones to value)."""
    items = await service.queue(db, me, status=status, before_id=before_id(cursor), limit=limit)
    return ItemPage(*trim_page(items, limit))


@get("/consignments/{item_id:int}", tags=["consignment"], **signed_in())
async def get_item(item_id: int, me: Principal, db: AsyncSession) -> ItemOut:
    """One item with its appraisals: for its consignor, its appraiser and ops (404 otherwise)."""
    return await service.get_item(db, me, item_id)


@post("/consignments/{item_id:int}/appraisal", status_code=200, tags=["consignment"], **allow("creator"))
async def appraise(
    item_id: int, data: AppraisalIn, me: Principal, db: AsyncSession, settings: Settings
) -> ItemOut:
    """The appraiser values the item during their live session `session_id` (shown in the room):
    `valuation_fen`, `grade`, `notes`. 403 `not_appraiser` / `not_your_session`; 409 `not_live`,
    `not_appraisable`."""
    return await service.appraise(db, me, item_id, data, settings)


@post("/consignments/{item_id:int}/accept", status_code=200, tags=["consignment"], **signed_in())
async def accept(item_id: int, me: Principal, db: AsyncSession, settings: Settings) -> ItemOut:
    """The consignor accepts the valuation: the item is listed in the creator's shop."""
    return await service.accept(db, me, item_id, settings)


@post("/consignments/{item_id:int}/decline", status_code=200, tags=["consignment"], **signed_in())
async def decline(item_id: int, me: Principal, db: AsyncSession) -> ItemOut:
    """The consignor declines the valuation: the item is closed."""
    return await service.decline(db, me, item_id)


@post("/consignments/{item_id:int}/withdraw", status_code=200, tags=["consignment"], **signed_in())
async def withdraw(item_id: int, me: Principal, db: AsyncSession) -> ItemOut:
    """The consignor takes the item back before it sells (409 `already_sold`, `closed`)."""
    return await service.withdraw(db, me, item_id)


@post("/consignments/{item_id:int}/feature", status_code=200, tags=["consignment"], **allow("creator"))
async def feature(item_id: int, data: FeatureIn, me: Principal, db: AsyncSession) -> ItemOut:
    """Feature a listed item in one of the creator's scheduled or live sessions."""
    return await service.feature(db, me, item_id, data)


@get("/consignments/terms/{creator_id:int}", tags=["consignment"], **public())
async def creator_terms(creator_id: int, db: AsyncSession, settings: Settings) -> TermsOut:
    """A creator's consignment fee, the fee now, and the current and coming waivers."""
    return await service.terms(db, creator_id, settings)


@post("/consignments/waivers", status_code=201, tags=["consignment"], **allow("creator"))
async def add_waiver(data: WaiverIn, me: Principal, db: AsyncSession, settings: Settings) -> TermsOut:
    """Waive the consignment fee for orders placed from `starts_at` until `ends_at`."""
    return await service.add_waiver(db, me, data, settings)


routes = [
    submit,
    mine,
    creator_queue,
    get_item,
    appraise,
    accept,
    decline,
    withdraw,
    feature,
    creator_terms,
    add_waiver,
]
