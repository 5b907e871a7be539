"""JSON routes of the reviews domain: thin wrappers over reviews.service.

A review travels as JSON (no photos) or as a form: the same fields as form fields, and the photos
as multipart files named ``photos`` (at most 9; JPEG, PNG or WebP).
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from litestar import Request, get, patch, post
from litestar.datastructures import UploadFile
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from trustlive.accounts.service import Principal
from trustlive.catalog.service import Upload
from trustlive.config import Settings
from trustlive.errors import UnsupportedMediaType
from trustlive.reviews import service
from trustlive.reviews.schemas import RatingsOut, ReplyIn, ReviewIn, ReviewOut, ReviewPage, ReviewPatch
from trustlive.web.forms import parse, text, to_upload
from trustlive.web.pagination import DEFAULT_LIMIT, MAX_LIMIT, before_id, trim_page
from trustlive.web.policy import public, signed_in
from trustlive.web.validation import decode_strict

Limit = Annotated[int, Parameter(ge=1, le=MAX_LIMIT)]
Cursor = Annotated[str | None, Parameter(max_length=200)]
Filter = Annotated[str, Parameter(max_length=20)]
S = TypeVar("S", ReviewIn, ReviewPatch)


async def read_photos(parts: Any, max_bytes: int) -> list[Upload]:
    """The files of a form's ``photos`` input (one part or a list of them; an empty file input
    still sends one part with no name: skipped). The service decides how many may come."""
    parts = parts if isinstance(parts, list) else [parts] if parts is not None else []
    return [await to_upload(p, max_bytes) for p in parts if isinstance(p, UploadFile) and p.filename]


async def _review_body(
    request: Request[Any, Any, Any], struct: type[S], settings: Settings
) -> tuple[S, list[Upload]]:
    """The review fields, strictly typed, and the photos: from JSON, or from a multipart form."""
    kind = request.content_type[0]
    if kind == "application/json":
        return decode_strict(await request.body(), struct), []
    if kind not in ("multipart/form-data", "application/x-www-form-urlencoded"):
        raise UnsupportedMediaType("send JSON, or a form (multipart/form-data with the photos)")
    form = await request.form()
    fields: dict[str, Any] = {
        k: text(form, k) for k in struct.__struct_fields__ if isinstance(form.get(k), str)
    }
    if "clear_photos" in fields:
        fields["clear_photos"] = fields["clear_photos"].lower() in ("1", "true", "on", "yes")
    data = parse(struct, fields)
    return data, await read_photos(
        form.getall("photos") if "photos" in form else None, settings.max_upload_bytes
    )


@post("/orders/{order_id:int}/lines/{line_id:int}/review", status_code=201, tags=["reviews"], **signed_in())
async def post_review(
    order_id: int, line_id: int, request: Request[Any, Any, Any], me: Principal, db: AsyncSession,
    settings: Settings,
) -> ReviewOut:  # fmt: skip
    """The buyer reviews one line of a completed order: `rating_product`, `rating_logistics`,
    `rating_service` (1-5), `text` (at most 500 characters), photos. 404 unless it is your order;
    409 `not_completed`, `order_refunded`, `line_refunded`, `already_reviewed`; 422 bad fields or
    more than 9 photos; 413/415 a photo too large or not a JPEG/PNG/WebP."""
    data, photos = await _review_body(request, ReviewIn, settings)
    return await service.post_review(db, me, order_id, line_id, data, photos, settings)


@patch("/orders/{order_id:int}/lines/{line_id:int}/review", tags=["reviews"], **signed_in())
async def edit_review(
    order_id: int, line_id: int, request: Request[Any, Any, Any], me: Principal, db: AsyncSession,
    settings: Settings,
) -> ReviewOut:  # fmt: skip
    """Edit your review within `TRUSTLIVE_REVIEW_EDIT_HOURS` (24) of posting it (then 409
    `edit_window_closed`): only the fields sent change; new photos replace the old ones,
    `clear_photos` removes them. The review keeps its `created_at`."""
    data, photos = await _review_body(request, ReviewPatch, settings)
    return await service.edit_review(db, me, order_id, line_id, data, photos, settings)


@post("/reviews/{review_id:int}/reply", status_code=200, tags=["reviews"], **signed_in())
async def reply(review_id: int, data: ReplyIn, me: Principal, db: AsyncSession) -> ReviewOut:
    """The shop's owner or staff reply to a review (`{"text": ...}`, 1-500 characters); again
    to edit the reply. 403 for anyone else."""
    return await service.reply(db, me, review_id, data)


@get("/products/{product_id:int}/reviews", tags=["reviews"], **public())
async def product_reviews(
    product_id: int, db: AsyncSession, viewer: Principal | None, filter: Filter = "", limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> ReviewPage:  # fmt: skip
    """A product's reviews, newest first, buyers masked; `filter=photos` or `filter=low`
    (product rating 1-2)."""
    items = await service.list_product_reviews(
        db, viewer, product_id, filter=filter, before_id=before_id(cursor), limit=limit + 1
    )
    return ReviewPage(*trim_page(items, limit))


@get("/products/{product_id:int}/ratings", tags=["reviews"], **public())
async def product_ratings(product_id: int, db: AsyncSession, viewer: Principal | None) -> RatingsOut:
    """Averages of the three ratings (two decimals), the number of reviews and how many gave each
    number of stars for the product."""
    return await service.product_ratings(db, viewer, product_id)


@get("/shops/{shop_id:int}/reviews", tags=["reviews"], **signed_in())
async def shop_reviews(
    shop_id: int, me: Principal, db: AsyncSession, filter: Filter = "", limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> ReviewPage:  # fmt: skip
    """The shop's reviews for its owner, staff and ops, newest first; `filter=unreplied`, `low`
    (any rating 1-2) or `photos`."""
    items = await service.list_shop_reviews(
        db, me, shop_id, filter=filter, before_id=before_id(cursor), limit=limit + 1
    )
    return ReviewPage(*trim_page(items, limit))


routes = [post_review, edit_review, reply, product_reviews, product_ratings, shop_reviews]
