"""Review use cases: a verified buyer rates each line of a completed order once (product,
logistics, service: 1-5; text; up to 9 photos) and may edit it for a short window; the shop
replies once (and may edit its reply); product pages show the ratings and the reviews.

The rules are checked here, the race is decided by the database: one review per order line is a
unique constraint, so two posts at once make one review and one 409.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from trustlive import events
from trustlive.accounts import service as accounts
from trustlive.accounts.service import Principal
from trustlive.catalog import service as catalog
from trustlive.config import Settings
from trustlive.db import add_once, utcnow
from trustlive.errors import N_, Conflict, Forbidden, NotFound, ValidationFailed, validated
from trustlive.orders import service as orders
from trustlive.reviews import repository as repo
from trustlive.reviews.models import MAX_PHOTOS, MAX_TEXT, Review, ReviewPhoto
from trustlive.reviews.schemas import (
    PhotoOut,
    RatingsOut,
    ReplyIn,
    ReplyOut,
    ReviewIn,
    ReviewOut,
    ReviewPatch,
)

REVIEWABLE = frozenset({"completed", "settled"})  # receipt confirmed: the buyer has the goods
LATEST_ON_PRODUCT_PAGE = 3
# The three ratings, in the order forms ask for them, with their names (translated by pages).
RATINGS = (
    ("rating_product", N_("Product")),
    ("rating_logistics", N_("Logistics")),
    ("rating_service", N_("Service")),
)
# The lists' filters, in the order pages offer them: what a caller sends -> the repository's
# filters. On a product a review is low by its product rating; a shop sees any low rating.
PRODUCT_FILTERS: dict[str, tuple[str, ...]] = {"": (), "photos": ("photos",), "low": ("low",)}
SHOP_FILTERS: dict[str, tuple[str, ...]] = {
    "": (), "unreplied": ("unreplied",), "low": ("low_any",), "photos": ("photos",)
}  # fmt: skip


# Other domains' shapes, through their services (a domain imports only services).
ProductOut = catalog.ProductOut
OrderOut = orders.OrderOut
LineOut = orders.LineOut


# --- who may review what ----------------------------------------------------------------------


def blocked_reason(order: OrderOut, line: LineOut) -> str | None:
    """Why the buyer cannot review this line now (a code), or None when they can."""
    if order.status == "refunded":
        return "order_refunded"
    if order.status not in REVIEWABLE:
        return "not_completed"
    if line.refunded_fen >= line.line_total_fen:
        return "line_refunded"  # returned and refunded: the buyer no longer has it
    return None


_BLOCKED = {
    "order_refunded": "this order was refunded in full; it cannot be reviewed",
    "not_completed": "you can review an order once you have confirmed receipt",
    "line_refunded": "this item was returned and refunded; it cannot be reviewed",
}


async def _buyers_line(
    session: AsyncSession, buyer: Principal, order_id: int, line_id: int
) -> tuple[OrderOut, LineOut]:
    """The order and line, if ``buyer`` bought them; 404 for anyone else (even the shop, which
    sees the order but did not buy it)."""
    order = await orders.load_order(session, order_id)
    if order.buyer_id != buyer.id:
        raise NotFound(f"order {order_id} not found", code="order_not_found")
    line = next((line for line in order.lines if line.id == line_id), None)
    if line is None:
        raise NotFound(f"order {order_id} has no line {line_id}", code="line_not_found")
    return order, line


def _photos_fit(uploads: Sequence[catalog.Upload]) -> None:
    if len(uploads) > MAX_PHOTOS:
        raise ValidationFailed(f"photos: at most {MAX_PHOTOS} photos", field="photos", code="too_many_photos")


def _store_photos(
    session: AsyncSession, uploads: Sequence[catalog.Upload], folder: str, settings: Settings
) -> list[catalog.StoredImage]:
    """Check and write every photo (a bad one refuses the request; the files written before it
    are removed when the transaction rolls back)."""
    return [
        catalog.store_image(session, upload, settings.media_dir, folder, settings.max_upload_bytes,
                            field=f"photos[{i}]")
        for i, upload in enumerate(uploads)
    ]  # fmt: skip


def _add_photos(session: AsyncSession, review_id: int, stored: list[catalog.StoredImage]) -> None:
    for position, image in enumerate(stored):
        session.add(ReviewPhoto(review_id=review_id, path=image.path, content_type=image.content_type,
                                byte_size=image.byte_size, width=image.width, height=image.height,
                                position=position))  # fmt: skip


def _payload(review: Review, creator_id: int | None = None, **extra: object) -> dict[str, object]:
    """What the trust scores need from a review event: whose it is and its ratings. ``created_at``
    is the moment the review counts at, edits included."""
    return {
        "review_id": review.id, "order_id": review.order_id, "order_line_id": review.order_line_id,
        "product_id": review.product_id, "shop_id": review.shop_id, "buyer_id": review.buyer_id,
        "creator_id": creator_id, "rating_product": review.rating_product,
        "rating_logistics": review.rating_logistics, "rating_service": review.rating_service,
        "photos": review.photo_count, "has_text": bool(review.text), "created_at": review.created_at.isoformat(),
        **extra,
    }  # fmt: skip


# --- posting and editing ----------------------------------------------------------------------


async def post_review(
    session: AsyncSession,
    buyer: Principal,
    order_id: int,
    line_id: int,
    data: ReviewIn,
    photos: Sequence[catalog.Upload],
    settings: Settings,
    now: dt.datetime | None = None,
) -> ReviewOut:
    """The buyer reviews one line of a completed order. 404 unless it is the buyer's order and
    line; 409 ``not_completed`` / ``order_refunded`` / ``line_refunded`` / ``already_reviewed``;
    422 for ratings, text or too many photos, 413/415 for a photo that is too big or not an image."""
    data = validated(data)
    _photos_fit(photos)
    order, line = await _buyers_line(session, buyer, order_id, line_id)
    reason = blocked_reason(order, line)
    if reason is not None:
        raise Conflict(_BLOCKED[reason], code=reason)
    if await repo.review_of_line(session, line.id) is not None:
        raise Conflict(
            "you have already reviewed this item; edit your review instead", code="already_reviewed"
        )
    stored = _store_photos(session, photos, f"reviews/{order.id}", settings)
    now = now or utcnow()
    review = Review(
        order_id=order.id, order_line_id=line.id, product_id=line.product_id, shop_id=order.shop_id,
        buyer_id=buyer.id, title=line.title, variant=" / ".join(line.option_values)[:200],
        rating_product=data.rating_product, rating_product_first=data.rating_product,
        rating_logistics=data.rating_logistics,
        rating_service=data.rating_service, text=data.text.strip(), photo_count=len(stored), created_at=now,
        edit_until=now + dt.timedelta(hours=settings.review_edit_hours),
    )  # fmt: skip
    # A twin that committed first (a double submit, two devices) wins; this one is a 409.
    if await add_once(session, review, lambda: repo.review_of_line(session, line.id)) is not None:
        raise Conflict(
            "you have already reviewed this item; edit your review instead", code="already_reviewed"
        )
    _add_photos(session, review.id, stored)
    events.record(session, "reviews.posted", _payload(review, line.creator_id))
    await session.flush()
    return (await _outs(session, [review], private=True))[0]


async def edit_review(
    session: AsyncSession,
    buyer: Principal,
    order_id: int,
    line_id: int,
    patch: ReviewPatch,
    photos: Sequence[catalog.Upload],
    settings: Settings,
    now: dt.datetime | None = None,
) -> ReviewOut:
    """The buyer changes their review within the edit window (``edit_until``, fixed at posting);
    after it, 409 ``edit_window_closed``. ``created_at`` never moves; ``edited_at`` records the edit."""
    patch = validated(patch)
    _photos_fit(photos)
    order, line = await _buyers_line(session, buyer, order_id, line_id)
    review = await repo.review_of_line(session, line.id)
    if review is None:
        raise NotFound("you have not reviewed this item yet", code="review_not_found")
    now = now or utcnow()
    if now > review.edit_until:
        raise Conflict("the time to edit this review is over", code="edit_window_closed")
    fields = ("rating_product", "rating_logistics", "rating_service", "text")
    if all(getattr(patch, name) is None for name in fields) and not photos and not patch.clear_photos:
        raise ValidationFailed("body: nothing to change", field="body", code="nothing_to_change")
    for name in fields:
        value = getattr(patch, name)
        if value is not None:
            setattr(review, name, value.strip() if isinstance(value, str) else value)
    if photos or patch.clear_photos:
        stored = _store_photos(session, photos, f"reviews/{order.id}", settings)
        # The old files stay on disk, like a product's removed images: a rolled-back edit must
        # still find them.
        await repo.delete_photos(session, review.id)
        _add_photos(session, review.id, stored)
        review.photo_count = len(stored)
    review.edited_at = now
    await session.flush()
    events.record(session, "reviews.edited", _payload(review, line.creator_id, edited_at=now.isoformat()))
    return (await _outs(session, [review], private=True))[0]


async def reply(
    session: AsyncSession, actor: Principal, review_id: int, data: ReplyIn, now: dt.datetime | None = None
) -> ReviewOut:
    """The shop (owner or staff) answers a review: one reply, which it may edit at any time.
    404 for no such review; 403 ``not_your_shop`` for anyone else (reviews are public, so
    refusing reveals nothing)."""
    data = validated(data)
    text = data.text.strip()
    if not text:
        raise ValidationFailed("text: write a reply", field="text")
    review = await repo.get_review(session, review_id)
    if review is None:
        raise NotFound(f"review {review_id} not found", code="review_not_found")
    if not await catalog.is_shop_member(session, actor, review.shop_id):
        raise Forbidden("only the shop that sold this item can reply", code="not_your_shop")
    now = now or utcnow()
    first = await repo.set_reply(session, review, text, actor.id, now)
    events.record(session, "reviews.replied", {
        "review_id": review.id, "product_id": review.product_id, "shop_id": review.shop_id,
        "order_id": review.order_id, "rating_product": review.rating_product,
        "rating_logistics": review.rating_logistics, "rating_service": review.rating_service,
        "first_reply": first, "replied_at": now.isoformat(),
    })  # fmt: skip
    return (await _outs(session, [review], private=True))[0]


# --- reading ----------------------------------------------------------------------------------


def mask(name: str) -> str:
    """王芳 -> 王**: enough to tell reviews apart, not enough to find the buyer."""
    return (name.strip()[:1] or "*") + "**"


async def _outs(session: AsyncSession, reviews: Sequence[Review], *, private: bool) -> list[ReviewOut]:
    photos = await repo.photos_of(session, [r.id for r in reviews])
    buyers = await accounts.users_by_ids(session, sorted({r.buyer_id for r in reviews}))
    out = []
    for r in reviews:
        buyer = buyers.get(r.buyer_id)
        reply_out = (
            ReplyOut(r.reply_text, r.replied_at, r.reply_edited_at) if r.reply_text and r.replied_at else None
        )
        out.append(ReviewOut(
            id=r.id, product_id=r.product_id, shop_id=r.shop_id, buyer=mask(buyer.display_name if buyer else ""),
            title=r.title, variant=r.variant, rating_product=r.rating_product, rating_logistics=r.rating_logistics,
            rating_service=r.rating_service, text=r.text,
            photos=[PhotoOut(f"/media/{p.path}", p.width, p.height) for p in photos.get(r.id, [])],
            created_at=r.created_at, edited_at=r.edited_at, edit_until=r.edit_until, reply=reply_out,
            order_id=r.order_id if private else None, order_line_id=r.order_line_id if private else None,
        ))  # fmt: skip
    return out


def _average(total: int, count: int) -> float | None:
    if not count:
        return None
    return float((Decimal(total) / Decimal(count)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


async def ratings(session: AsyncSession, product_id: int) -> RatingsOut:
    """The product's rating summary from all its reviews (no visibility check: callers have one)."""
    groups = await repo.rating_groups(session, product_id)
    count = sum(g.count for g in groups)
    distribution = {str(stars): 0 for stars in range(1, 6)}
    for g in groups:
        distribution[str(g.stars)] = g.count
    return RatingsOut(
        product_id=product_id, count=count,
        avg_product=_average(sum(g.stars * g.count for g in groups), count),
        avg_logistics=_average(sum(g.logistics or 0 for g in groups), count),
        avg_service=_average(sum(g.service or 0 for g in groups), count),
        distribution=distribution, with_photos=sum(g.with_photos or 0 for g in groups),
        low=sum(g.count for g in groups if g.stars <= repo.LOW),
    )  # fmt: skip


async def product_ratings(session: AsyncSession, viewer: Principal | None, product_id: int) -> RatingsOut:
    """For the API: 404 when the product is not visible to the viewer (as its page)."""
    await catalog.require_visible_product(session, viewer, product_id)
    return await ratings(session, product_id)


def _filters(name: str, allowed: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    if name not in allowed:
        choices = ", ".join(f for f in allowed if f)
        raise ValidationFailed(f"filter: one of {choices}, or none", field="filter", code="bad_filter")
    return allowed[name]


async def list_product_reviews(
    session: AsyncSession, viewer: Principal | None, product_id: int, *, filter: str = "",
    before_id: int | None, limit: int,
) -> list[ReviewOut]:  # fmt: skip
    """A product's reviews, newest first; ``filter`` "photos" (with photos) or "low" (product
    rating 1-2). 404 when the product is not visible to the viewer."""
    wanted = _filters(filter, PRODUCT_FILTERS)
    await catalog.require_visible_product(session, viewer, product_id)
    found = await repo.list_reviews(
        session, product_id=product_id, filters=wanted, before_id=before_id, limit=limit
    )
    return await _outs(session, found, private=False)


async def product_review_page(
    session: AsyncSession, viewer: Principal | None, product_id: int, *, filter: str = "",
    before_id: int | None, limit: int,
) -> tuple[ProductOut, RatingsOut, list[ReviewOut]]:  # fmt: skip
    """The "all reviews" page: the product (404 unless the viewer may see it), its ratings and
    one page of its reviews."""
    wanted = _filters(filter, PRODUCT_FILTERS)
    product = await catalog.product_detail(session, viewer, product_id)
    found = await repo.list_reviews(
        session, product_id=product_id, filters=wanted, before_id=before_id, limit=limit
    )
    return product, await ratings(session, product_id), await _outs(session, found, private=False)


async def list_shop_reviews(
    session: AsyncSession, actor: Principal, shop_id: int, *, filter: str = "", before_id: int | None,
    limit: int,
) -> list[ReviewOut]:  # fmt: skip
    """The shop's reviews for its owner and staff (and ops), newest first; ``filter``
    "unreplied", "low" (any rating 1-2) or "photos"."""
    wanted = _filters(filter, SHOP_FILTERS)
    if not actor.is_ops:
        await catalog.require_shop_member(session, actor, shop_id)
    found = await repo.list_reviews(
        session, shop_id=shop_id, filters=wanted, before_id=before_id, limit=limit
    )
    return await _outs(session, found, private=True)


@dataclass(frozen=True)
class ProductReviews:
    """What a product page shows: the summary and the latest reviews."""

    ratings: RatingsOut
    latest: list[ReviewOut]


async def product_reviews(session: AsyncSession, product_id: int) -> ProductReviews:
    """The ratings summary and latest reviews a product page shows (the page checked the product)."""
    latest = await repo.list_reviews(session, product_id=product_id, limit=LATEST_ON_PRODUCT_PAGE)
    return ProductReviews(await ratings(session, product_id), await _outs(session, latest, private=False))


@dataclass(frozen=True)
class LineReview:
    line: LineOut
    review: ReviewOut | None
    blocked: str | None  # why the buyer cannot review it (blocked_reason); None: they can
    editable: bool  # the viewer may still edit the review


@dataclass(frozen=True)
class OrderPanel:
    lines: list[LineReview]
    is_buyer: bool
    can_reply: bool  # the viewer works for the shop
    max_text: int = MAX_TEXT
    max_photos: int = MAX_PHOTOS
    ratings: tuple[tuple[str, str], ...] = RATINGS


async def order_panel(session: AsyncSession, viewer: Principal, order: OrderOut) -> OrderPanel | None:
    """What the order pages show about reviews for ``order`` (already visible to ``viewer``): per
    line the review form (buyer, when allowed) or the review with the shop's reply. None when
    there is nothing to show (not received yet, and no reviews)."""
    found = {r.order_line_id: r for r in await repo.reviews_of_order(session, order.id)}
    if not found and order.status not in REVIEWABLE:
        return None
    outs = {out.order_line_id: out for out in await _outs(session, list(found.values()), private=True)}
    is_buyer = order.buyer_id == viewer.id
    now = utcnow()
    lines = [
        LineReview(
            line,
            outs.get(line.id),
            blocked_reason(order, line),
            is_buyer and line.id in found and now <= found[line.id].edit_until,
        )
        for line in order.lines
    ]
    can_reply = not is_buyer and await catalog.is_shop_member(session, viewer, order.shop_id)
    return OrderPanel(lines, is_buyer, can_reply)


async def review_form(
    session: AsyncSession, buyer: Principal, order_id: int, line_id: int
) -> tuple[OrderOut, LineOut, ReviewOut | None]:
    """For the review page: the buyer's line and its review, if any. The same 404/409 as posting
    (or editing, when there is a review) would give, so the page never offers a form that must fail."""
    order, line = await _buyers_line(session, buyer, order_id, line_id)
    review = await repo.review_of_line(session, line.id)
    if review is None:
        reason = blocked_reason(order, line)
        if reason is not None:
            raise Conflict(_BLOCKED[reason], code=reason)
        return order, line, None
    if utcnow() > review.edit_until:
        raise Conflict("the time to edit this review is over", code="edit_window_closed")
    return order, line, (await _outs(session, [review], private=True))[0]


async def score_ratings(session: AsyncSession, order_ids: list[int]) -> dict[int, tuple[int, int]]:
    """For the trust scores: order line id -> (product rating, service rating) of the reviews of
    those orders. The product rating is the lower of the first-posted and the current one, so an
    edit made under pressure cannot erase a negative review."""
    return {
        r.order_line_id: (min(r.rating_product, r.rating_product_first or r.rating_product), r.rating_service)
        for r in await repo.score_ratings(session, order_ids)
    }
