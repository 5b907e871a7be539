"""Every query of the reviews domain."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import case, delete, func, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from trustlive.db import in_param
from trustlive.reviews.models import Review, ReviewPhoto

LOW = 2  # a rating of 1 or 2 stars is a low (negative) one

# List filters: product pages count a review as low by its product rating (the one the product
# score reads); a shop's console shows every review with any low rating, which the shop should answer.
_FILTERS: dict[str, Any] = {
    "photos": Review.photo_count > 0,
    "low": Review.rating_product <= LOW,
    "low_any": or_(
        Review.rating_product <= LOW, Review.rating_logistics <= LOW, Review.rating_service <= LOW
    ),
    "unreplied": Review.reply_text.is_(None),
}


async def get_review(session: AsyncSession, review_id: int) -> Review | None:
    return await session.get(Review, review_id)


async def review_of_line(session: AsyncSession, line_id: int) -> Review | None:
    stmt = select(Review).where(Review.order_line_id == line_id).execution_options(populate_existing=True)
    return await session.scalar(stmt)


async def reviews_of_order(session: AsyncSession, order_id: int) -> list[Review]:
    return list(await session.scalars(select(Review).where(Review.order_id == order_id).order_by(Review.id)))


async def list_reviews(
    session: AsyncSession,
    *,
    product_id: int | None = None,
    shop_id: int | None = None,
    filters: tuple[str, ...] = (),
    before_id: int | None = None,
    limit: int,
) -> list[Review]:
    """Newest first, within one product or one shop (each has its index on (key, id))."""
    stmt = select(Review).order_by(Review.id.desc()).limit(limit)
    if product_id is not None:
        stmt = stmt.where(Review.product_id == product_id)
    if shop_id is not None:
        stmt = stmt.where(Review.shop_id == shop_id)
    for name in filters:
        stmt = stmt.where(_FILTERS[name])
    if before_id is not None:
        stmt = stmt.where(Review.id < before_id)
    return list(await session.scalars(stmt))


async def photos_of(session: AsyncSession, review_ids: list[int]) -> dict[int, list[ReviewPhoto]]:
    if not review_ids:
        return {}
    stmt = (
        select(ReviewPhoto)
        .where(ReviewPhoto.review_id.in_(sorted(set(review_ids))))
        .order_by(ReviewPhoto.review_id, ReviewPhoto.position, ReviewPhoto.id)
    )
    found: dict[int, list[ReviewPhoto]] = {}
    for photo in await session.scalars(stmt):
        found.setdefault(photo.review_id, []).append(photo)
    return found


async def delete_photos(session: AsyncSession, review_id: int) -> None:
    await session.execute(delete(ReviewPhoto).where(ReviewPhoto.review_id == review_id))


async def rating_groups(session: AsyncSession, product_id: int) -> list[Any]:
    """Per product rating (1-5): how many reviews, the sums of their other two ratings, and how
    many have photos. Five rows at most, from the product's index."""
    stmt = (
        select(
            Review.rating_product.label("stars"),
            func.count().label("count"),
            func.sum(Review.rating_logistics).label("logistics"),
            func.sum(Review.rating_service).label("service"),
            func.sum(case((Review.photo_count > 0, 1), else_=0)).label("with_photos"),
        )
        .where(Review.product_id == product_id)
        .group_by(Review.rating_product)
    )
    return list(await session.execute(stmt))


async def set_reply(
    session: AsyncSession, review: Review, text: str, actor_id: int, now: dt.datetime
) -> bool:
    """Write the shop's reply; True when it is the first one. One UPDATE decides on the row as the
    database holds it (a first reply sets ``replied_at``, a later one ``reply_edited_at``), so two
    staff replying at once make one first reply and one edit, never two first replies. Its
    RETURNING brings ``review`` up to date: no second read."""
    first = Review.reply_text.is_(None)
    at = literal(now, Review.replied_at.type)
    stmt = (
        update(Review)
        .where(Review.id == review.id)
        .values(
            reply_text=text,
            reply_by_id=actor_id,
            replied_at=case((first, at), else_=Review.replied_at),
            reply_edited_at=case((first, Review.reply_edited_at), else_=at),
        )
        .returning(Review)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    await session.scalar(stmt)
    return review.reply_edited_at is None  # a reply that was never edited is the first one


async def score_ratings(session: AsyncSession, order_ids: list[int]) -> list[Any]:
    r = Review.__table__.c
    stmt = select(r.order_line_id, r.rating_product, r.rating_product_first, r.rating_service).where(
        in_param(r.order_id, "ids", session.bind.dialect.name)
    )
    return list((await session.execute(stmt, {"ids": order_ids})).all())
